package api

import (
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"keyward/web/apikey"
	"keyward/web/events"
	"keyward/web/problem"
)

// keyInfo is GET /key's answer. It never holds a secret.
type keyInfo struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Prefix      string    `json:"prefix"`
	Tenant      string    `json:"tenant"`
	Environment string    `json:"environment"`
	Scopes      []string  `json:"scopes"`
	Sources     []string  `json:"sources"`
	IPAllowlist []string  `json:"ip_allowlist"`
	RateLimit   rateInfo  `json:"rate_limit"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   *string   `json:"expires_at"`
}

type rateInfo struct {
	Requests      int    `json:"requests"`
	WindowSeconds int    `json:"window_seconds"`
	From          string `json:"from"` // "key" or "plan"
}

func (h *Handler) handleKey(c echo.Context) error {
	noStore(c)
	return c.JSONBlob(http.StatusOK, h.keyViews.get(principal(c)))
}

// keyViews memoises GET /key's answer per principal. Principals never
// change (a changed key is a new principal), so the answer is encoded once
// per cache fill instead of on every call of a hot route. Bounded: when
// full it starts over.
type keyViews struct {
	mu sync.Mutex
	m  map[*apikey.Principal][]byte
}

const maxKeyViews = 10_000

func (v *keyViews) get(p *apikey.Principal) []byte {
	v.mu.Lock()
	b, ok := v.m[p]
	v.mu.Unlock()
	if ok {
		return b
	}
	b, err := json.Marshal(Envelope{Success: true, Data: keyInfoOf(p)})
	if err != nil {
		panic(err) // strings, numbers and times always encode
	}
	v.mu.Lock()
	if v.m == nil || len(v.m) >= maxKeyViews {
		v.m = make(map[*apikey.Principal][]byte)
	}
	v.m[p] = b
	v.mu.Unlock()
	return b
}

func keyInfoOf(p *apikey.Principal) keyInfo {
	info := keyInfo{
		ID: p.KeyID, Name: p.Name, Prefix: p.Prefix + "…", Tenant: p.TenantSlug, Environment: string(p.Environment),
		Scopes: append([]string{}, p.Scopes...), Sources: append([]string{}, p.Sources...), IPAllowlist: []string{}, CreatedAt: p.CreatedAt.UTC(),
		RateLimit: rateInfo{Requests: p.RateLimit.Requests, WindowSeconds: int(p.RateLimit.Window / time.Second), From: "plan"},
	}
	if p.KeyOverride {
		info.RateLimit.From = "key"
	}
	for _, n := range p.IPAllowlist {
		info.IPAllowlist = append(info.IPAllowlist, n.String())
	}
	if p.ExpiresAt != nil {
		s := p.ExpiresAt.UTC().Format(time.RFC3339)
		info.ExpiresAt = &s
	}
	return info
}

func (h *Handler) handleIngest(c echo.Context) error {
	return h.ingest(c, false, func(evs []events.Event) any { return evs[0] })
}

func (h *Handler) handleIngestBatch(c echo.Context) error {
	return h.ingest(c, true, func(evs []events.Event) any {
		ids := make([]string, len(evs))
		for i, e := range evs {
			ids[i] = e.ID
		}
		return map[string]any{"accepted": len(evs), "ids": ids}
	})
}

// ingest is the shared path of both ingestion routes: the media type and
// the body here, then the events service, whose answer a retry replays.
func (h *Handler) ingest(c echo.Context, batch bool, data func([]events.Event) any) error {
	r := c.Request()
	if mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType)); err != nil || mt != echo.MIMEApplicationJSON {
		return problem.Unsupported()
	}
	if err := events.CheckIdempotencyKey(r.Header.Get("Idempotency-Key")); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	res, err := h.Events.Ingest(r.Context(), caller(principal(c)), events.IngestRequest{
		Route: c.Path(), Batch: batch, Body: body, IdempotencyKey: r.Header.Get("Idempotency-Key"),
		Render: func(evs []events.Event) (int, []byte, error) {
			b, err := json.Marshal(Envelope{Success: true, Data: data(evs)})
			return http.StatusCreated, b, err
		},
	})
	if err != nil {
		return err
	}
	if res.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return c.Blob(res.Status, echo.MIMEApplicationJSON, res.Body)
}

type page struct {
	Events     []events.Event `json:"events"`
	NextCursor *string        `json:"next_cursor"`
}

func (h *Handler) handleList(c echo.Context) error {
	q := events.Query{Source: c.QueryParam("source"), Type: c.QueryParam("type"), After: c.QueryParam("cursor")}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			n = -1 // given but not a page size: the service says what limit takes
		}
		q.Limit = n
	}
	evs, next, err := h.Events.List(c.Request().Context(), caller(principal(c)), q)
	if err != nil {
		return err
	}
	out := page{Events: evs}
	if next != "" {
		out.NextCursor = &next
	}
	noStore(c)
	return OK(c, http.StatusOK, out)
}

func (h *Handler) handleGet(c echo.Context) error {
	ev, err := h.Events.Get(c.Request().Context(), caller(principal(c)), c.Param("id"))
	if err != nil {
		return err
	}
	noStore(c)
	return OK(c, http.StatusOK, ev)
}

// caller is the key as the events service sees it.
func caller(p *apikey.Principal) events.Caller {
	return events.Caller{Partition: events.Partition{TenantID: p.TenantID, Environment: string(p.Environment), KeyID: p.KeyID}, Sources: p.Sources}
}

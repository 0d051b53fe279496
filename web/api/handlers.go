package api

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"keyward/db"
	"keyward/web/apikey"
	"keyward/web/events"
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
	return h.ingest(c, func(body []byte, now time.Time) ([]events.Event, error) {
		in, err := events.ParseOne(body)
		if err != nil {
			return nil, err
		}
		ev, errs := in.Validate("", now)
		if errs != nil {
			return nil, errs
		}
		return []events.Event{ev}, nil
	}, func(evs []events.Event) any { return evs[0] })
}

func (h *Handler) handleIngestBatch(c echo.Context) error {
	return h.ingest(c, func(body []byte, now time.Time) ([]events.Event, error) {
		ins, err := events.ParseBatch(body)
		if err != nil {
			return nil, err
		}
		out := make([]events.Event, 0, len(ins))
		var errs events.FieldErrors
		for i, in := range ins {
			ev, fe := in.Validate("events["+strconv.Itoa(i)+"].", now)
			errs = append(errs, fe...)
			out = append(out, ev)
		}
		if errs != nil {
			return nil, errs
		}
		return out, nil
	}, func(evs []events.Event) any {
		ids := make([]string, len(evs))
		for i, e := range evs {
			ids[i] = e.ID
		}
		return map[string]any{"accepted": len(evs), "ids": ids}
	})
}

// ingest is the shared path of both ingestion routes: media type, the
// idempotency key, the body cap, validation, the key's sources, then one
// transaction that stores the events with the response a retry replays.
func (h *Handler) ingest(c echo.Context, parse func([]byte, time.Time) ([]events.Event, error), data func([]events.Event) any) error {
	r := c.Request()
	if mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType)); err != nil || mt != echo.MIMEApplicationJSON {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupported, Message: "Send the body as Content-Type: application/json."}
	}
	idem := r.Header.Get("Idempotency-Key")
	if idem == "" || len(idem) > events.MaxIdemKeyLen || strings.ContainsFunc(idem, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return &Error{Status: http.StatusBadRequest, Code: CodeValidation, Field: "Idempotency-Key",
			Message: "Send an Idempotency-Key header: 1–255 visible ASCII characters, such as a UUID, unique per operation."}
	}
	body, err := io.ReadAll(r.Body)
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return err // the body limit's 413
	} else if err != nil {
		return &Error{Status: http.StatusBadRequest, Code: CodeValidation, Field: "body",
			Message: "The request body ended early or took too long to arrive: send it again."}
	}
	now := h.Now()
	evs, err := parse(body, now)
	if err != nil {
		return validationError(err)
	}
	p := principal(c)
	for i, e := range evs {
		if !p.AllowsSource(e.Source) {
			field := "source"
			if len(evs) > 1 || c.Path() == Prefix+"/events/batch" {
				field = "events[" + strconv.Itoa(i) + "].source"
			}
			return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Field: field, Message: fmt.Sprintf(
				"This key may not write to source %q: it is limited to %s.", e.Source, strings.Join(p.Sources, ", "))}
		}
	}
	hash := sha256.Sum256(append([]byte(c.Path()+"\n"), body...))
	res, err := events.Ingest(r.Context(), h.Store.Queries, partition(p), idem, hash, evs, func(evs []events.Event) (int, []byte, error) {
		b, err := json.Marshal(Envelope{Success: true, Data: data(evs)})
		return http.StatusCreated, b, err
	}, now)
	switch {
	case errors.Is(err, events.ErrInFlight):
		return &Error{Status: http.StatusConflict, Code: CodeIdempotencyInFlight,
			Message: "A request with this Idempotency-Key is still being processed: retry in a moment to get its result."}
	case errors.Is(err, events.ErrKeyReused):
		return &Error{Status: http.StatusUnprocessableEntity, Code: CodeIdempotencyReused,
			Message: "This Idempotency-Key was already used with a different request body: use a new key for a new request."}
	case err != nil:
		return err
	}
	if res.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return c.Blob(res.Status, echo.MIMEApplicationJSON, res.Body)
}

func validationError(err error) error {
	var fe *events.FieldError
	var fes events.FieldErrors
	switch {
	case errors.As(err, &fe):
		return &Error{Status: http.StatusBadRequest, Code: CodeValidation, Field: fe.Field, Message: fe.Message}
	case errors.As(err, &fes):
		ae := &Error{Status: http.StatusBadRequest, Code: CodeValidation, Field: fes[0].Field,
			Message: fmt.Sprintf("%d field(s) need fixing; nothing was stored. First: %s: %s", len(fes), fes[0].Field, fes[0].Message)}
		for _, f := range fes {
			ae.Details = append(ae.Details, Detail{Field: f.Field, Message: f.Message})
		}
		return ae
	}
	return err
}

type page struct {
	Events     []events.Event `json:"events"`
	NextCursor *string        `json:"next_cursor"`
}

func (h *Handler) handleList(c echo.Context) error {
	p := principal(c)
	q := events.Query{Source: c.QueryParam("source"), Type: c.QueryParam("type"), After: c.QueryParam("cursor"),
		Limit: events.DefaultPageSize, Sources: p.Sources}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > events.MaxPageSize {
			return &Error{Status: http.StatusBadRequest, Code: CodeValidation, Field: "limit",
				Message: fmt.Sprintf("limit must be a whole number from 1 to %d.", events.MaxPageSize)}
		}
		q.Limit = n
	}
	if q.Source != "" && !p.AllowsSource(q.Source) {
		return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Field: "source", Message: fmt.Sprintf(
			"This key may not read source %q: it is limited to %s.", q.Source, strings.Join(p.Sources, ", "))}
	}
	evs, next, err := events.List(c.Request().Context(), h.Store.Queries, partition(p), q)
	if err != nil {
		return validationError(err)
	}
	out := page{Events: evs}
	if next != "" {
		out.NextCursor = &next
	}
	noStore(c)
	return OK(c, http.StatusOK, out)
}

func (h *Handler) handleGet(c echo.Context) error {
	p := principal(c)
	ev, err := events.Get(c.Request().Context(), h.Store.Queries, partition(p), c.Param("id"))
	if errors.Is(err, db.ErrNotFound) || err == nil && !p.AllowsSource(ev.Source) {
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "No event with this id in this key's environment."}
	}
	if err != nil {
		return err
	}
	noStore(c)
	return OK(c, http.StatusOK, ev)
}

func partition(p *apikey.Principal) events.Partition {
	return events.Partition{TenantID: p.TenantID, Environment: string(p.Environment), KeyID: p.KeyID}
}

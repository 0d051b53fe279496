package api

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/errs"
	"keyward/web/problem"
	"keyward/web/ratelimit"
	"keyward/web/usage"
)

const ctxPrincipal = "api.principal"

func principal(c echo.Context) *apikey.Principal {
	p, _ := c.Get(ctxPrincipal).(*apikey.Principal)
	return p
}

func unauthorized(code, msg string) *errs.Error { return errs.New(errs.Unauthorized, code, msg) }

// presentedKey reads the key from Authorization: Bearer or X-API-Key, and
// never from the query string. Both headers with different keys is an
// error, not a choice.
func presentedKey(r *http.Request) (string, error) {
	var bearer string
	if a := r.Header.Get(echo.HeaderAuthorization); a != "" {
		scheme, rest, _ := strings.Cut(a, " ")
		if strings.EqualFold(scheme, "Bearer") {
			bearer = strings.TrimSpace(rest)
		}
	}
	xkey := strings.TrimSpace(r.Header.Get("X-API-Key"))
	switch {
	case bearer != "" && xkey != "" && bearer != xkey:
		return "", unauthorized(errs.CodeUnauthorized, "Two different API keys were sent: send one, as Authorization: Bearer <key> or X-API-Key: <key>.")
	case bearer != "":
		return bearer, nil
	case xkey != "":
		return xkey, nil
	}
	return "", unauthorized(errs.CodeUnauthorized, "Missing API key: send it as Authorization: Bearer <key> or X-API-Key: <key>.")
}

// HeaderKeyExpires carries the key's expiry (RFC 3339, UTC) on every
// answer to a request whose key was accepted from an address its allowlist
// allows (all but 401s and 403 IP_NOT_ALLOWED) when the key expires within
// KeyExpiresWithin, as GitHub tells of a token's expiry.
// It is in canonical form, to be set without canonicalising.
const HeaderKeyExpires = "Keyward-Key-Expires"

// KeyExpiresWithin is how near its expiry a key must be for its answers to
// carry HeaderKeyExpires.
const KeyExpiresWithin = 7 * 24 * time.Hour

// authenticate runs the checks of docs/api.md in order: key present, well formed and
// known (no database work for a malformed one), status, tenant, host
// environment, IP allowlist, then the rate limit. Scopes and sources are
// per route.
func (h *Handler) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := h.check(c, next)
		if errs.Is(err, errs.Unauthorized) {
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="keyward"`)
		}
		return err
	}
}

// check is authenticate without the header bookkeeping.
func (h *Handler) check(c echo.Context, next echo.HandlerFunc) error {
	r := c.Request()
	raw, err := presentedKey(r)
	if err != nil {
		return err
	}
	ipText := c.RealIP()
	p, err := h.Verifier.VerifyFrom(r.Context(), raw, ipText)
	if p != nil {
		c.Set(ctxPrincipal, p) // even when refused: the tenant's request log shows it
	}
	if err != nil {
		return err
	}
	if tn := r.Header.Get("X-TN"); tn != "" && tn != p.TenantSlug {
		return unauthorized(errs.CodeTenantMismatch, "This key does not belong to the tenant named in X-TN.")
	}
	env, bound := h.Hosts.For(apikey.RequestHost(r))
	switch {
	case bound && env != p.Environment:
		return unauthorized(errs.CodeEnvironmentMismatch, fmt.Sprintf(
			"This is a %s key, but this host serves the %s environment: use a %s key here, or the %s host.",
			p.Environment, env, env, p.Environment))
	case !bound && h.HostsStrict:
		msg := fmt.Sprintf("This host serves no environment: no %s host is configured.", p.Environment)
		if hosts := h.Hosts.Serving(p.Environment); len(hosts) > 0 {
			msg = fmt.Sprintf("This host serves no environment: send this %s key to %s.", p.Environment, errs.Join(hosts))
		}
		return unauthorized(errs.CodeEnvironmentMismatch, msg)
	}
	ip, perr := netip.ParseAddr(ipText)
	if perr != nil || !p.AllowsIP(ip) {
		return errs.New(errs.Forbidden, errs.CodeIPNotAllowed, fmt.Sprintf("Requests from %s are not in this key's IP allowlist.", ipText))
	}
	now := h.Now()
	// From here on every answer, refusals included, is to a client the
	// key accepted from where it is: tell it the key expires soon. A
	// client outside the allowlist learns nothing of the key.
	if p.ExpiresAt != nil && p.ExpiresAt.Sub(now) <= KeyExpiresWithin {
		c.Response().Header()[HeaderKeyExpires] = []string{p.ExpiresAt.UTC().Format(time.RFC3339)}
	}
	res := h.Limiter.Allow(r.Context(), p.KeyID, p.RateLimit)
	setRateHeaders(c.Response().Header(), res, now)
	if !res.Allowed {
		h.Metrics.RateLimited.Inc()
		e := errs.Throttle(fmt.Sprintf("This key's limit of %d requests per %s is used up", res.Limit.Requests, apikey.WindowName(res.Limit.Window)), res.RetryAfter)
		return e
	}
	h.Usage.Used(p.TenantID, p.KeyID, ip.String(), now)
	return next(c)
}

// setRateHeaders writes the X-RateLimit-* trio and the IETF draft's
// RateLimit-Policy and RateLimit fields. Every keyed response pays for
// this, so the five values are built in one buffer, made one string and
// sliced, and share one backing array of slices: two allocations.
func setRateHeaders(hd http.Header, res ratelimit.Result, now time.Time) {
	reset := int64((res.ResetAfter + time.Second - 1) / time.Second)
	window := int64(res.Limit.Window / time.Second)
	limit, remaining := int64(res.Limit.Requests), int64(res.Remaining)
	var buf [160]byte
	b := buf[:0]
	var ends [5]int
	b = strconv.AppendInt(b, limit, 10)
	ends[0] = len(b)
	b = strconv.AppendInt(b, remaining, 10)
	ends[1] = len(b)
	b = strconv.AppendInt(b, now.Unix()+reset, 10)
	ends[2] = len(b)
	b = strconv.AppendInt(append(b, `"key";q=`...), limit, 10)
	b = strconv.AppendInt(append(b, ";w="...), window, 10)
	ends[3] = len(b)
	b = strconv.AppendInt(append(b, `"key";r=`...), remaining, 10)
	b = strconv.AppendInt(append(b, ";t="...), reset, 10)
	ends[4] = len(b)
	all := string(b)
	v := make([]string, 5)
	for i, start := range [5]int{0, ends[0], ends[1], ends[2], ends[3]} {
		v[i] = all[start:ends[i]]
	}
	hd["X-Ratelimit-Limit"] = v[0:1:1]
	hd["X-Ratelimit-Remaining"] = v[1:2:2]
	hd["X-Ratelimit-Reset"] = v[2:3:3]
	hd["Ratelimit-Policy"] = v[3:4:4]
	hd["Ratelimit"] = v[4:5:5]
}

// requireScope refuses a key without scope, naming it.
func requireScope(scope string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if !principal(c).HasScope(scope) {
				return errs.Newf(errs.Forbidden, "This key lacks the %s scope, which this route needs.", scope)
			}
			return next(c)
		}
	}
}

// maxLoggedPath and maxLoggedUserAgent bound the path and the user agent
// a request-log row keeps.
const (
	maxLoggedPath      = 512
	maxLoggedUserAgent = 512
)

// logRequest queues a request-log row for every request whose key was
// identified, refused or not. Unknown keys belong to no tenant and are
// only counted in metrics. A refusal carries its envelope code, which the
// row keeps and by which usage counts refusals past the key's budget
// together.
func (h *Handler) logRequest(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start, at := time.Now(), h.Now() // latency on the machine's clock, the row's time on the application's
		err := next(c)
		p := principal(c)
		if p == nil {
			return err
		}
		var code string
		if err != nil {
			code = problem.Of(err).Code // what the error handler answers with
			c.Error(err)                // write the response now, to log its status
		}
		// The path and user agent are the client's: clean them, or one odd
		// byte would fail the whole COPY batch they land in.
		path := audit.CleanText(c.Request().URL.Path, maxLoggedPath)
		ua := audit.CleanText(c.Request().UserAgent(), maxLoggedUserAgent)
		h.Usage.Log(usage.Request{
			TenantID: p.TenantID, KeyID: p.KeyID, KeyPrefix: p.Prefix, Method: c.Request().Method, Path: path,
			Status: c.Response().Status, Code: code, UserAgent: ua, IP: c.RealIP(), Latency: time.Since(start),
			RequestID: c.Response().Header().Get(echo.HeaderXRequestID), At: at,
		})
		return nil
	}
}

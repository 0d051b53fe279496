// Package api is the JSON side of Keyward. It holds the public API that
// API consumers call, the route group under /api/v1 that takes API keys and
// nothing else: no session is read, no CSRF token is checked, no cookie is
// set. Middleware authenticates the key (web/apikey's verifier), applies the
// host's environment, the IP allowlist and the key's rate limit; handlers
// turn HTTP into calls to web/events. It also owns the response envelope
// (envelope.go), which the portal's console routes answer with too.
package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"keyward/web/apikey"
	"keyward/web/errs"
	"keyward/web/events"
	"keyward/web/metrics"
	"keyward/web/problem"
	"keyward/web/ratelimit"
	"keyward/web/secretscan"
	"keyward/web/usage"
)

// Prefix is the public API's path prefix.
const Prefix = "/api/v1"

// Handler carries the public API's dependencies.
type Handler struct {
	Events   *events.Service
	Verifier *apikey.Verifier
	Limiter  ratelimit.Limiter
	Usage    *usage.Recorder
	Metrics  *metrics.Set
	// Hosts binds host names to environments (KEYWARD_API_HOSTS).
	Hosts apikey.Hosts
	// HostsStrict refuses keyed requests to hosts not in Hosts
	// (KEYWARD_API_HOSTS_STRICT).
	HostsStrict bool
	// Keys applies the leak policy to reported keys (leaks.go).
	Keys *apikey.Service
	// SecretScanning holds the secret-scanning partner's public keys
	// (KEYWARD_SECRET_SCANNING_KEYS); nil turns the partner route off.
	SecretScanning *secretscan.KeySet
	// ReportLimit bounds the public key reports of one address; zero
	// means DefaultReportLimit.
	ReportLimit ratelimit.Limit
	// Now is the application's clock (web.Config.Now), which the verifier
	// and the events service read too.
	Now func() time.Time

	keyViews keyViews
	// signFailures counts each address's partner reports refused for
	// their signature (leaks.go), in this instance: a flood of bad
	// signatures costs each instance, so each bounds its own.
	signFailures *ratelimit.Memory
}

// Register mounts the public API on e. Each route lists its middleware
// itself, so nothing of this group leaks onto the portal's console routes
// under /api/v1/orgs.
func (h *Handler) Register(e *echo.Echo) {
	keyed := func(scope string) []echo.MiddlewareFunc {
		m := []echo.MiddlewareFunc{h.logRequest, h.authenticate}
		if scope != "" {
			m = append(m, requireScope(scope))
		}
		return m
	}
	ingest := append(keyed(apikey.ScopeEventsWrite), problem.BodyLimit(events.MaxBody))
	var routes [][2]string // method, path
	add := func(method, path string, hf echo.HandlerFunc, m ...echo.MiddlewareFunc) {
		// The chain is built once here; echo would rebuild it (and its
		// closures) on every request of these hot routes.
		for i := len(m) - 1; i >= 0; i-- {
			hf = m[i](hf)
		}
		methods := []string{method}
		if method == http.MethodGet {
			// HEAD wherever GET, as HTTP asks; echo adds no HEAD route by
			// itself. The server drops a HEAD answer's body.
			methods = append(methods, http.MethodHead)
		}
		for _, meth := range methods {
			e.Add(meth, Prefix+path, hf)
			routes = append(routes, [2]string{meth, Prefix + path})
		}
	}
	add(http.MethodGet, "/openapi.json", serveOpenAPI)
	add(http.MethodGet, "/key", h.handleKey, keyed("")...)
	add(http.MethodPost, "/events", h.handleIngest, ingest...)
	add(http.MethodPost, "/events/batch", h.handleIngestBatch, ingest...)
	add(http.MethodGet, "/events", h.handleList, keyed(apikey.ScopeEventsRead)...)
	add(http.MethodGet, "/events/:id", h.handleGet, keyed(apikey.ScopeEventsRead)...)
	// Reports of leaked keys take no API key (leaks.go): the partner's
	// signature, or nothing at all.
	// The partner route refuses bad signature headers before the body
	// limit and the body: a report that cannot verify costs no read.
	h.signFailures = &ratelimit.Memory{MaxBuckets: 100_000}
	add(http.MethodPost, "/secret-scanning/reports", h.handleSecretScanning, h.scanningGate, problem.BodyLimit(secretscan.MaxBody))
	add(http.MethodPost, "/keys/report", h.handleKeyReport, problem.BodyLimit(secretscan.MaxPublicBody))
	// Anything else under the prefix gets the API's own 404 or 405, in
	// JSON, rather than falling to the portal's catch-all (and its CSRF
	// check).
	notFound := func(c echo.Context) error {
		var allow []string
		for _, r := range routes {
			if samePath(r[1], c.Request().URL.Path) {
				allow = append(allow, r[0])
			}
		}
		if len(allow) > 0 {
			c.Response().Header().Set(echo.HeaderAllow, strings.Join(allow, ", "))
			return echo.ErrMethodNotAllowed
		}
		return errs.New(errs.NotFound, "", "There is no such route: GET "+Prefix+"/openapi.json lists them.")
	}
	for _, p := range []string{"/api", "/api/*", Prefix, Prefix + "/*"} {
		e.RouteNotFound(p, notFound)
	}
}

// samePath matches a request path against a route pattern whose ":name"
// segments match any one segment.
func samePath(pattern, path string) bool {
	ps, qs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(qs) {
		return false
	}
	for i := range ps {
		if strings.HasPrefix(ps[i], ":") && qs[i] == "" || !strings.HasPrefix(ps[i], ":") && ps[i] != qs[i] {
			return false
		}
	}
	return true
}

func noStore(c echo.Context) { c.Response().Header().Set("Cache-Control", "no-store") }

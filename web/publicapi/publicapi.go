// Package publicapi is what API consumers call: the route group under
// /api/v1 that takes API keys and nothing else. No session is read, no CSRF
// token is checked, no cookie is set. Middleware authenticates the key
// (web/apikey's verifier), applies the host's environment, the IP allowlist
// and the key's rate limit; handlers turn HTTP into calls to web/events.
package publicapi

import (
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"keyward/db"
	"keyward/web/apikey"
	"keyward/web/ratelimit"
	"keyward/web/usage"
)

// Prefix is the public API's path prefix.
const Prefix = "/api/v1"

// Handler carries the public API's dependencies.
type Handler struct {
	Store    *db.Store
	Verifier *apikey.Verifier
	Limiter  ratelimit.Limiter
	Usage    *usage.Recorder
	// Hosts binds host names to environments (KEYWARD_API_HOSTS).
	Hosts apikey.Hosts
	// Now is the clock of rate limits and event times; the verifier has
	// its own.
	Now func() time.Time
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
	ingest := append(keyed(apikey.ScopeEventsWrite), middleware.BodyLimit("1M"))
	e.GET(Prefix+"/openapi.json", serveOpenAPI)
	e.GET(Prefix+"/key", h.handleKey, keyed("")...)
	e.POST(Prefix+"/events", h.handleIngest, ingest...)
	e.POST(Prefix+"/events/batch", h.handleIngestBatch, ingest...)
	e.GET(Prefix+"/events", h.handleList, keyed(apikey.ScopeEventsRead)...)
	e.GET(Prefix+"/events/:id", h.handleGet, keyed(apikey.ScopeEventsRead)...)
}

func noStore(c echo.Context) { c.Response().Header().Set("Cache-Control", "no-store") }

package web

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"keyward/web/metrics"
	"keyward/web/portal"
)

// loggedPath is a request's path as log lines show it: an invitation's
// path is its secret, so only its route is written.
func loggedPath(route, path string) string {
	if route == portal.InviteRoute || strings.HasPrefix(path, "/invite/") {
		return "/invite/…"
	}
	return path
}

// requestLogger writes one line per request and counts it by route pattern
// and status. With quietSuccess it writes lines only for failed requests
// (status 400 and up) but still counts every one. It logs the path without
// the query string, and never headers or bodies, so no secret reaches a log.
//
// A handler that cuts its response short (panic(http.ErrAbortHandler), as
// an export failing after its first bytes does) never returns to echo's
// logger: it gets its line here, with "aborted": true and the status it
// had sent, whatever quietSuccess says, and is counted with status
// "aborted".
func requestLogger(log *slog.Logger, quietSuccess bool, m *metrics.Set) echo.MiddlewareFunc {
	count := func(route, method, status string) {
		if route == "" {
			route = "unmatched" // bounded label set: never the raw path
		}
		switch method {
		case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		default:
			method = "other"
		}
		m.Requests.WithLabelValues(route, method, status).Inc()
	}
	logged := middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogURIPath: true, LogMethod: true, LogLatency: true,
		LogRequestID: true, LogRemoteIP: true, LogRoutePath: true, HandleError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			if !quietSuccess || v.Status >= http.StatusBadRequest {
				log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
					slog.String("request_id", v.RequestID),
					slog.String("method", v.Method),
					slog.String("path", loggedPath(v.RoutePath, v.URIPath)),
					slog.String("route", v.RoutePath),
					slog.Int("status", v.Status),
					slog.Duration("latency", v.Latency),
					slog.String("ip", v.RemoteIP),
				)
			}
			count(v.RoutePath, v.Method, strconv.Itoa(v.Status))
			return nil
		},
	})
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		h := logged(next)
		return func(c echo.Context) error {
			start := time.Now()
			defer func() {
				r := recover()
				if r == nil {
					return
				}
				if r == http.ErrAbortHandler {
					req := c.Request()
					log.LogAttrs(req.Context(), slog.LevelWarn, "request",
						slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)),
						slog.String("method", req.Method),
						slog.String("path", loggedPath(c.Path(), req.URL.Path)),
						slog.String("route", c.Path()),
						slog.Int("status", c.Response().Status),
						slog.Duration("latency", time.Since(start)),
						slog.String("ip", c.RealIP()),
						slog.Bool("aborted", true),
						slog.Int64("bytes", c.Response().Size),
					)
					count(c.Path(), req.Method, "aborted")
				}
				panic(r)
			}()
			return h(c)
		}
	}
}

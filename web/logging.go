package web

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"

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
func requestLogger(log *slog.Logger, quietSuccess bool, m *metrics.Set) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogURIPath: true, LogMethod: true, LogLatency: true,
		LogRequestID: true, LogRemoteIP: true, LogRoutePath: true, HandleError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			if !quietSuccess || v.Status >= http.StatusBadRequest {
				path := loggedPath(v.RoutePath, v.URIPath)
				log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
					slog.String("request_id", v.RequestID),
					slog.String("method", v.Method),
					slog.String("path", path),
					slog.String("route", v.RoutePath),
					slog.Int("status", v.Status),
					slog.Duration("latency", v.Latency),
					slog.String("ip", v.RemoteIP),
				)
			}
			route := v.RoutePath
			if route == "" {
				route = "unmatched" // bounded label set: never the raw path
			}
			method := v.Method
			switch method {
			case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
			default:
				method = "other"
			}
			m.Requests.WithLabelValues(route, method, strconv.Itoa(v.Status)).Inc()
			return nil
		},
	})
}

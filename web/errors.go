package web

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"keyward/web/api"
	"keyward/web/portal"
	"keyward/web/problem"
)

// errorHandler renders every error a handler returns, through the one
// table (web/problem): the JSON envelope under /api/, the portal's error
// page elsewhere. Faults of ours are logged in full; refusals in a line.
func errorHandler(log *slog.Logger, p *portal.Handler) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		prob := problem.Of(err)
		rid := c.Response().Header().Get(echo.HeaderXRequestID)
		path := loggedPath(c.Path(), c.Request().URL.Path)
		if prob.Internal || prob.Status >= 500 {
			log.Error("request failed", "request_id", rid, "path", path, "err", err)
		} else {
			log.Info("request refused", "request_id", rid, "path", path, "status", prob.Status, "code", prob.Code)
		}
		problem.SetRetryAfter(c.Response().Header(), prob.RetryAfter)
		if strings.HasPrefix(c.Request().URL.Path, "/api/") {
			if rerr := api.Fail(c, prob); rerr != nil {
				log.Error("writing error envelope", "request_id", rid, "err", rerr)
			}
			return
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(prob.Status)
			return
		}
		if rerr := p.RenderError(c, prob); rerr != nil {
			log.Error("rendering error page", "request_id", rid, "err", rerr)
			_ = c.String(http.StatusInternalServerError, "Keyward could not show this page. It has been logged; please try again.\n")
		}
	}
}

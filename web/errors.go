package web

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"keyward/db"
	"keyward/web/api"
	"keyward/web/apikey"
	"keyward/web/auth"
	"keyward/web/portal"
)

// Problem is an error as a person sees it.
type Problem struct {
	Status  int
	Title   string
	Message string
}

// problemFor is the one table from errors to statuses. Anything it does not
// know is a 500 whose details go to the log, not to the user.
func problemFor(err error) (Problem, bool) {
	var he *echo.HTTPError
	var te *auth.ThrottledError
	var fe *apikey.FieldError
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		return Problem{ae.Status, ae.Code, ae.Message}, true
	case errors.As(err, &fe):
		return Problem{http.StatusBadRequest, "Check your input", fe.Message}, true
	case errors.Is(err, apikey.ErrRevoked):
		return Problem{http.StatusConflict, "Key revoked", "This key is revoked: it can never be enabled or changed again. Its history is kept."}, true
	case errors.As(err, &te):
		return Problem{http.StatusTooManyRequests, "Too many attempts", te.Error()}, true
	case errors.Is(err, db.ErrNotFound):
		return Problem{http.StatusNotFound, "Not found", "There is nothing at this address, or you do not have access to it."}, true
	case errors.Is(err, auth.ErrInvalidInput), errors.Is(err, auth.ErrPasswordPolicy):
		return Problem{http.StatusBadRequest, "Check your input", err.Error()}, true
	case errors.As(err, &he):
		return httpProblem(he), true
	}
	return Problem{http.StatusInternalServerError, "Something went wrong",
		"Keyward could not complete this request. It has been logged; please try again."}, false
}

func httpProblem(he *echo.HTTPError) Problem {
	msg := fmt.Sprint(he.Message)
	switch he.Code {
	case http.StatusNotFound:
		return Problem{he.Code, "Page not found", "There is no page at this address. Check the link, or go back to Keyward."}
	case http.StatusMethodNotAllowed:
		return Problem{he.Code, "Method not allowed", "This address does not accept that kind of request."}
	case http.StatusRequestEntityTooLarge:
		return Problem{he.Code, "Request too large", "The form you sent is larger than Keyward accepts. Shorten it and try again."}
	case http.StatusForbidden, http.StatusBadRequest:
		if msg == "invalid csrf token" || msg == "cross-site request blocked by CSRF" || len(msg) > 12 && msg[:12] == "missing csrf" {
			return Problem{http.StatusForbidden, "Form expired",
				"This form could not be verified (missing or stale security token). Reload the page and submit it again."}
		}
	}
	title := http.StatusText(he.Code)
	if title == "" {
		title = "Error " + strconv.Itoa(he.Code)
	}
	return Problem{he.Code, title, msg}
}

func errorHandler(log *slog.Logger, p *portal.Handler) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		prob, known := problemFor(err)
		rid := c.Response().Header().Get(echo.HeaderXRequestID)
		if !known || prob.Status >= 500 {
			log.Error("request failed", "request_id", rid, "path", c.Request().URL.Path, "err", err)
		} else {
			log.Info("request refused", "request_id", rid, "path", c.Request().URL.Path, "status", prob.Status, "reason", prob.Title)
		}
		var te *auth.ThrottledError
		if errors.As(err, &te) {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(te.RetryAfter.Seconds())))
		}
		var ae *api.Error // problemFor already turned it into prob; JSON wants its code
		errors.As(err, &ae)
		if strings.HasPrefix(c.Request().URL.Path, "/api/") {
			if ae == nil {
				ae = &api.Error{Status: prob.Status, Code: api.CodeFor(prob.Status), Message: prob.Message}
				if prob.Status == http.StatusRequestEntityTooLarge {
					ae.Message = "The request body is larger than this route accepts (1 MiB): send fewer or smaller events."
				}
			}
			if rerr := api.Fail(c, ae); rerr != nil {
				log.Error("writing error envelope", "request_id", rid, "err", rerr)
			}
			return
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(prob.Status)
			return
		}
		if rerr := p.RenderError(c, prob.Status, prob.Title, prob.Message); rerr != nil {
			log.Error("rendering error page", "request_id", rid, "err", rerr)
		}
	}
}

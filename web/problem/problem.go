// Package problem is the one table from errors to HTTP: status, envelope
// code and the title of the portal's error page. The portal and the JSON
// routes both render what Of returns; no other code picks a status for an
// error. Domain packages return *errs.Error values and never import this.
package problem

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"keyward/web/errs"
)

// P is an error as a client sees it.
type P struct {
	Status  int
	Code    string
	Title   string
	Message string
	Fields  []errs.Field
	// RetryAfter, when positive, is sent as Retry-After.
	RetryAfter time.Duration
	// Internal marks a fault of ours: logged in full, shown in general terms.
	Internal bool
}

// Field is the first field's name, or "".
func (p P) Field() string {
	if len(p.Fields) > 0 {
		return p.Fields[0].Name
	}
	return ""
}

type row struct {
	status int
	code   string
	title  string
}

// byKind is the table. A kind's status and code hold for every error of
// that kind, except the few codes in byCode.
var byKind = map[errs.Kind]row{
	errs.Invalid:      {http.StatusBadRequest, errs.CodeValidation, "Check your input"},
	errs.NotFound:     {http.StatusNotFound, errs.CodeNotFound, "Not found"},
	errs.Conflict:     {http.StatusConflict, errs.CodeConflict, "Conflict"},
	errs.Forbidden:    {http.StatusForbidden, errs.CodeForbidden, "Not allowed"},
	errs.Unauthorized: {http.StatusUnauthorized, errs.CodeUnauthorized, "Not authorised"},
	errs.Throttled:    {http.StatusTooManyRequests, errs.CodeRateLimited, "Too many attempts"},
	errs.Unavailable:  {http.StatusServiceUnavailable, errs.CodeUnavailable, "Temporarily unavailable"},
	errs.Internal:     {http.StatusInternalServerError, errs.CodeInternal, "Something went wrong"},
}

// byCode: codes whose status is not their kind's. HTTP itself has words
// for these (422, 415, 413, 405), and clients rely on them.
var byCode = map[string]int{
	errs.CodeIdempotencyReused: http.StatusUnprocessableEntity,
	errs.CodeUnsupported:       http.StatusUnsupportedMediaType,
	errs.CodeTooLarge:          http.StatusRequestEntityTooLarge,
	errs.CodeMethod:            http.StatusMethodNotAllowed,
}

const internalMessage = "Keyward could not complete this request. It has been logged; please try again."

// Of looks err up in the table.
func Of(err error) P {
	if e, ok := errs.As(err); ok {
		return ofError(e)
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return ofError(fromHTTP(he))
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return ofError(TooLarge(tooBig.Limit))
	}
	return ofError(&errs.Error{Kind: errs.Internal, Err: err})
}

func ofError(e *errs.Error) P {
	r, ok := byKind[e.Kind]
	if !ok {
		r = byKind[errs.Internal]
	}
	p := P{Status: r.status, Code: r.code, Title: r.title, Message: e.Message, Fields: e.Fields, RetryAfter: e.RetryAfter}
	if e.Code != "" {
		p.Code = e.Code
		if s, ok := byCode[e.Code]; ok {
			p.Status = s
		}
	}
	if e.Title != "" {
		p.Title = e.Title
	}
	if e.Kind == errs.Internal {
		p.Internal, p.Message = true, internalMessage
	}
	return p
}

// fromHTTP classifies the errors echo itself raises: unknown routes,
// methods, and the body limit.
func fromHTTP(he *echo.HTTPError) *errs.Error {
	switch he.Code {
	case http.StatusNotFound:
		return &errs.Error{Kind: errs.NotFound, Title: "Page not found", Message: "There is no page at this address. Check the link, or go back to Keyward.", Err: he}
	case http.StatusMethodNotAllowed:
		return &errs.Error{Kind: errs.Invalid, Code: errs.CodeMethod, Title: "Method not allowed", Message: "This address does not accept that kind of request.", Err: he}
	case http.StatusRequestEntityTooLarge:
		return TooLarge(0)
	case http.StatusUnsupportedMediaType:
		return Unsupported()
	}
	kinds := map[int]errs.Kind{http.StatusUnauthorized: errs.Unauthorized, http.StatusForbidden: errs.Forbidden,
		http.StatusConflict: errs.Conflict, http.StatusTooManyRequests: errs.Throttled, http.StatusServiceUnavailable: errs.Unavailable}
	if k, ok := kinds[he.Code]; ok {
		return &errs.Error{Kind: k, Message: fmt.Sprint(he.Message), Err: he}
	}
	if he.Code >= 400 && he.Code < 500 {
		return &errs.Error{Kind: errs.Invalid, Message: fmt.Sprint(he.Message), Err: he}
	}
	return &errs.Error{Kind: errs.Internal, Err: he}
}

// TooLarge refuses a body over limit bytes (0: unknown).
func TooLarge(limit int64) *errs.Error {
	msg := "The request body is larger than this route accepts: send less."
	switch {
	case limit >= 1<<20 && limit%(1<<20) == 0:
		msg = fmt.Sprintf("The request body is larger than this route accepts (%d MiB): send less.", limit>>20)
	case limit >= 1<<10:
		msg = fmt.Sprintf("The request body is larger than this route accepts (%d KiB): send less.", limit>>10)
	}
	return &errs.Error{Kind: errs.Invalid, Code: errs.CodeTooLarge, Title: "Request too large", Message: msg}
}

// BodyLimit is echo's body limit whose refusal names the limit: a client
// told "1 MiB" knows what to send instead.
func BodyLimit(limit int64) echo.MiddlewareFunc {
	limited := middleware.BodyLimit(strconv.FormatInt(limit>>10, 10) + "K")
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		h := limited(next)
		return func(c echo.Context) error {
			err := h(c)
			var he *echo.HTTPError
			var tooBig *http.MaxBytesError
			if errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge || errors.As(err, &tooBig) {
				return TooLarge(limit)
			}
			return err
		}
	}
}

// Unsupported refuses a body that is not JSON on a JSON route.
func Unsupported() *errs.Error {
	return &errs.Error{Kind: errs.Invalid, Code: errs.CodeUnsupported, Title: "Unsupported media type",
		Message: "Send the body as JSON, with Content-Type: application/json."}
}

// ErrCSRF is a state-changing request whose CSRF token is missing, stale or
// forged, or that a browser marked as cross-site. echo's CSRF middleware
// returns it from its ErrorHandler.
var ErrCSRF = &errs.Error{Kind: errs.Forbidden, Title: "Form expired",
	Message: "This form could not be verified (missing or stale security token). Reload the page and submit it again."}

// SetRetryAfter is the one place Retry-After is written: d in whole
// seconds, rounded up, at least 1 — the number messages quote too.
func SetRetryAfter(h http.Header, d time.Duration) {
	if d > 0 {
		h.Set("Retry-After", strconv.Itoa(errs.Seconds(d)))
	}
}

// Package errs is the vocabulary of failure shared by every domain package:
// an error carries a kind (invalid input, not found, conflict, forbidden,
// unauthorised, throttled, unavailable), a message a person can act on, and,
// where clients branch on it, a stable code. It knows nothing of HTTP: the
// one table that turns kinds into statuses lives in web/problem. It must not
// import echo or any other package of ours.
package errs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind says what sort of failure an error is.
type Kind uint8

// The kinds. Internal is the zero value: an error nobody classified is a
// fault of ours, logged in full and never shown.
const (
	Internal Kind = iota
	Invalid
	NotFound
	Conflict
	Forbidden
	Unauthorized
	Throttled
	Unavailable
)

var kindNames = [...]string{"internal", "invalid", "not found", "conflict", "forbidden", "unauthorized", "throttled", "unavailable"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind " + strconv.Itoa(int(k))
}

// Kinds lists every kind, for tests that walk them all.
var Kinds = []Kind{Internal, Invalid, NotFound, Conflict, Forbidden, Unauthorized, Throttled, Unavailable}

// Stable error codes of the JSON envelope. Clients branch on these; never
// rename one. A kind has a default code (web/problem); an error names a
// code of its own only where clients need the finer distinction.
const (
	CodeUnauthorized = "UNAUTHORIZED"
	CodeForbidden    = "FORBIDDEN"
	CodeNotFound     = "NOT_FOUND"
	CodeMethod       = "METHOD_NOT_ALLOWED"
	CodeValidation   = "VALIDATION_ERROR"
	CodeInvalidCode  = "INVALID_CODE"
	CodeConflict     = "CONFLICT"
	CodeRateLimited  = "RATE_LIMITED"
	CodeTooLarge     = "PAYLOAD_TOO_LARGE"
	CodeUnsupported  = "UNSUPPORTED_MEDIA_TYPE"
	CodeUnavailable  = "SERVICE_UNAVAILABLE"
	CodeInternal     = "INTERNAL"

	// Public API key checks.
	CodeKeyDisabled         = "KEY_DISABLED"
	CodeKeyExpired          = "KEY_EXPIRED"
	CodeKeyRevoked          = "KEY_REVOKED"
	CodeTenantMismatch      = "TENANT_MISMATCH"
	CodeEnvironmentMismatch = "ENVIRONMENT_MISMATCH"
	CodeIPNotAllowed        = "IP_NOT_ALLOWED"

	// Idempotent ingestion.
	CodeIdempotencyInFlight = "IDEMPOTENCY_KEY_IN_USE"
	CodeIdempotencyReused   = "IDEMPOTENCY_KEY_REUSED"
)

// Field is one field's problem.
type Field struct {
	Name    string
	Message string
}

// Error is a failure with a kind and a message for a person.
type Error struct {
	Kind Kind
	// Code is the stable envelope code; empty means the kind's default.
	Code    string
	Message string
	// Title heads the portal's error page; empty means the kind's.
	Title string
	// Fields lists every field problem of an Invalid error, in form order.
	// A form shows each next to its field; the envelope names the first.
	Fields []Field
	// RetryAfter says when to try again (Throttled, Unavailable).
	RetryAfter time.Duration
	// Err is the cause, kept for errors.Is and for the log; never shown.
	Err error
}

// Error is the message, and the cause's text when the cause is not itself
// one of these (a sentinel that only marks what sort of error it is).
func (e *Error) Error() string {
	if _, marker := e.Err.(*Error); e.Err != nil && !marker {
		if e.Message == "" {
			return e.Err.Error()
		}
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Field returns the first field's name, or "".
func (e *Error) Field() string {
	if len(e.Fields) > 0 {
		return e.Fields[0].Name
	}
	return ""
}

// New makes an error of kind with a message.
func New(kind Kind, code, msg string) *Error { return &Error{Kind: kind, Code: code, Message: msg} }

// Newf makes an error of kind with a formatted message and no code of its own.
func Newf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// InvalidField is an Invalid error about one field.
func InvalidField(field, msg string) *Error {
	return &Error{Kind: Invalid, Message: msg, Fields: []Field{{field, msg}}}
}

// Fields collects field problems; Err returns them as one Invalid error.
type Fields []Field

// Add records a problem with field, unless the field already has one.
func (fs *Fields) Add(field, msg string) {
	if !fs.Has(field) {
		*fs = append(*fs, Field{field, msg})
	}
}

// Has reports whether field already has a problem.
func (fs Fields) Has(field string) bool {
	for _, f := range fs {
		if f.Name == field {
			return true
		}
	}
	return false
}

// Err is nil when there are no problems, else an Invalid error listing
// them all, whose message names the first.
func (fs Fields) Err() error {
	if len(fs) == 0 {
		return nil
	}
	msg := fs[0].Message
	if len(fs) > 1 {
		msg = fmt.Sprintf("%d fields need fixing. First, %s: %s", len(fs), fs[0].Name, fs[0].Message)
	}
	return &Error{Kind: Invalid, Message: msg, Fields: fs}
}

// Throttle is a Throttled error that says when to retry, in whole seconds
// rounded up, the same number the Retry-After header carries.
func Throttle(what string, retry time.Duration) *Error {
	return &Error{Kind: Throttled, Code: CodeRateLimited, RetryAfter: retry,
		Message: fmt.Sprintf("%s: try again in %s.", what, Wait(retry))}
}

// Seconds is d in whole seconds, rounded up, at least 1: what Retry-After
// says and what messages quote.
func Seconds(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}

// Wait says d in words a person reads at a glance: "12 seconds",
// "3 minutes", "about 2 hours".
func Wait(d time.Duration) string {
	s := Seconds(d)
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return strconv.Itoa(n) + " " + unit + "s"
	}
	switch {
	case s < 90:
		return plural(s, "second")
	case s < 90*60:
		return plural((s+59)/60, "minute")
	}
	return "about " + plural((s+1799)/3600, "hour")
}

// As returns err's *Error, if it has one.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// KindOf is err's kind; Internal for an error nobody classified.
func KindOf(err error) Kind {
	if e, ok := As(err); ok {
		return e.Kind
	}
	return Internal
}

// Is reports whether err is of kind.
func Is(err error, kind Kind) bool { return err != nil && KindOf(err) == kind }

// Join lists things in a message: "a", "a and b", "a, b and c".
func Join(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

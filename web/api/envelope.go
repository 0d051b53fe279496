package api

// The response envelope and its stable error codes. Every JSON route, the
// public API's and the portal's console routes alike, answers through it.

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// Stable error codes. Clients branch on these; never rename one.
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
	CodeInternal     = "INTERNAL"

	// Public API key checks (docs/api.md's check table).
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

// Envelope is every JSON response's shape.
type Envelope struct {
	Success bool       `json:"success"`
	Data    any        `json:"data,omitempty"`
	Error   *ErrorBody `json:"error,omitempty"`
}

// ErrorBody says what went wrong.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// Details lists every field problem of a request that had several,
	// such as a batch.
	Details   []Detail `json:"details,omitempty"`
	RequestID string   `json:"request_id"`
}

// Detail is one field problem.
type Detail struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is an error that already knows its status, code and message.
type Error struct {
	Status  int
	Code    string
	Message string
	Field   string
	Details []Detail
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// OK writes {"success":true,"data":data}.
func OK(c echo.Context, status int, data any) error {
	return c.JSON(status, Envelope{Success: true, Data: data})
}

// Fail writes the error envelope with the request's id.
func Fail(c echo.Context, e *Error) error {
	return c.JSON(e.Status, Envelope{Error: &ErrorBody{
		Code: e.Code, Message: e.Message, Field: e.Field, Details: e.Details,
		RequestID: c.Response().Header().Get(echo.HeaderXRequestID),
	}})
}

// CodeFor is the default code of a status.
func CodeFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeValidation
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusMethodNotAllowed:
		return CodeMethod
	case http.StatusConflict:
		return CodeConflict
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusUnsupportedMediaType:
		return CodeUnsupported
	case http.StatusTooManyRequests:
		return CodeRateLimited
	}
	if status >= 500 {
		return CodeInternal
	}
	return CodeValidation
}

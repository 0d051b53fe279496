package api

// The response envelope. Every JSON route, the public API's and the
// portal's console routes alike, answers through it; the stable codes are
// web/errs's, and web/problem decides which status and code an error gets.

import (
	"github.com/labstack/echo/v4"

	"keyward/web/problem"
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
	// Details lists every field problem of the request, so a client can
	// fix them all at once; Field names the first.
	Details   []Detail `json:"details,omitempty"`
	RequestID string   `json:"request_id"`
}

// Detail is one field problem.
type Detail struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// OK writes {"success":true,"data":data}.
func OK(c echo.Context, status int, data any) error {
	return c.JSON(status, Envelope{Success: true, Data: data})
}

// Fail writes p as the error envelope, with the request's id.
func Fail(c echo.Context, p problem.P) error {
	body := &ErrorBody{Code: p.Code, Message: p.Message, Field: p.Field(),
		RequestID: c.Response().Header().Get(echo.HeaderXRequestID)}
	if len(p.Fields) > 0 {
		for _, f := range p.Fields {
			body.Details = append(body.Details, Detail{Field: f.Name, Message: f.Message})
		}
	}
	return c.JSON(p.Status, Envelope{Error: body})
}

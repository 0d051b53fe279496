package api

import (
	"errors"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"keyward/web/errs"
)

// readBody reads a request body (an ingestion, a leak report); the body
// limit's refusal, 413, passes through.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	var he *echo.HTTPError
	var tooBig *http.MaxBytesError
	if errors.As(err, &he) || errors.As(err, &tooBig) {
		return nil, err
	} else if err != nil {
		return nil, errs.InvalidField("body", "The request body ended early or took too long to arrive: send it again.")
	}
	return body, nil
}

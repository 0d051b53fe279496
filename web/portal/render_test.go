package portal

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
)

// TestRenderSendsNothingWhenATemplateFails: a page is rendered into a
// buffer first, so a template that fails half way has written no status
// and no byte, and the error handler can still send a clean error page.
func TestRenderSendsNothingWhenATemplateFails(t *testing.T) {
	broken := templ.ComponentFunc(func(ctx context.Context, w io.Writer) error {
		io.WriteString(w, "<html><body><h1>Half a page")
		return errors.New("template failed")
	})
	rec := httptest.NewRecorder()
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/", nil), rec)
	if err := render(c, http.StatusOK, broken); err == nil {
		t.Fatal("render hid the template's error")
	}
	if c.Response().Committed || rec.Body.Len() != 0 {
		t.Fatalf("render wrote %q (committed %v) before the template finished", rec.Body.String(), c.Response().Committed)
	}
	ok := templ.ComponentFunc(func(ctx context.Context, w io.Writer) error { _, err := io.WriteString(w, "<p>fine</p>"); return err })
	if err := render(c, http.StatusTeapot, ok); err != nil || rec.Code != http.StatusTeapot || rec.Body.String() != "<p>fine</p>" {
		t.Fatalf("a good page: %v %d %q", err, rec.Code, rec.Body.String())
	}
}

// TestStateWithoutItsMiddlewarePanicsClearly: a route wired without
// loadSession fails loudly, naming the missing middleware, instead of
// dereferencing nil somewhere later.
func TestStateWithoutItsMiddlewarePanicsClearly(t *testing.T) {
	c := echo.New().NewContext(httptest.NewRequest(http.MethodGet, "/settings/developers/api-keys", nil), httptest.NewRecorder())
	defer func() {
		msg, _ := recover().(string)
		if msg == "" || !strings.Contains(msg, "loadSession") {
			t.Fatalf("getState without loadSession: panic %q, want one naming loadSession", msg)
		}
	}()
	getState(c)
}

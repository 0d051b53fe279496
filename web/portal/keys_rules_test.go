package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"keyward/web/auth"
	"keyward/web/mfa"
	"keyward/web/webtest"
)

// keyState is everything an operation could change, to prove that a
// refused one changed nothing.
func keyState(t *testing.T, e *webtest.Env) string {
	t.Helper()
	var s string
	err := e.Store.Pool.QueryRow(context.Background(), `SELECT
		coalesce((SELECT string_agg(k::text, '|' ORDER BY id) FROM api_keys k), '') ||
		coalesce((SELECT string_agg(s::text, '|' ORDER BY id) FROM api_key_secrets s), '')`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Every operation, refused for each reason the issue names: a wrong code,
// a replayed code, a viewer, a missing CSRF token, another tenant's key.
// Each refusal gets its status and leaves every key and secret as it was.
func TestEveryOperationRefusesAndChangesNothing(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	id, _ := a.create(t, keyForm("Worker"))
	v := newAdmin(t, e, "vic@acme.test", auth.RoleViewer)
	other := e.NewTenant("globex")
	_, gs, _ := e.EnrolledUser(other, "gus@globex.test", auth.RoleOwner)
	g := &admin{e: e, c: e.SignIn("gus@globex.test", gs), secret: gs}

	ops := []struct {
		name, path string
		form       url.Values
	}{
		{"create", "/settings/developers/api-keys", keyForm("New one")},
		{"edit", "/settings/developers/api-keys/" + id, url.Values{"name": {"Renamed"}, "preset": {"read_only"}}},
		{"rotate", "/settings/developers/api-keys/" + id + "/rotate", url.Values{"grace": {"1h"}}},
		{"disable", "/settings/developers/api-keys/" + id + "/disable", url.Values{}},
		{"revoke", "/settings/developers/api-keys/" + id + "/revoke", url.Values{"confirm_name": {"Worker"}}},
	}
	post := func(c *webtest.Client, path string, form url.Values, code string, csrf bool) webtest.Response {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		f.Set("code", code)
		c.Get("/settings/developers/api-keys")
		if csrf {
			return c.PostForm(path, f)
		}
		return c.PostFormRaw(path, f)
	}
	for _, op := range ops {
		before := keyState(t, e)
		if s := post(a.c, op.path, op.form, wrongCode(e, a.secret), true).Status; s != http.StatusUnauthorized {
			t.Errorf("%s with a wrong code: %d", op.name, s)
		}
		// The code of the last step ann used (on sign-in or an operation)
		// is a replay, as long as that step is still inside the ±30 s window.
		var step int64
		e.Store.Pool.QueryRow(context.Background(), `SELECT totp_last_step FROM users WHERE email = 'ann@acme.test'`).Scan(&step)
		e.Clock.Set(time.Unix(step*30, 0)) // back to ann's last step
		spent, _ := mfa.CodeFor(a.secret, time.Unix(step*30, 0))
		if r := post(a.c, op.path, op.form, spent, true); r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "already used") {
			t.Errorf("%s with a replayed code: %d", op.name, r.Status)
		}
		if s := post(v.c, op.path, op.form, e.NextCode(v.secret), true).Status; s != http.StatusForbidden {
			t.Errorf("%s by a viewer: %d", op.name, s)
		}
		if s := post(a.c, op.path, op.form, e.NextCode(a.secret), false).Status; s != http.StatusForbidden {
			t.Errorf("%s without CSRF: %d", op.name, s)
		}
		if op.name != "create" {
			if s := post(g.c, op.path, op.form, e.NextCode(g.secret), true).Status; s != http.StatusNotFound {
				t.Errorf("%s on another tenant's key: %d", op.name, s)
			}
		}
		if keyState(t, e) != before {
			t.Errorf("a refused %s changed a key", op.name)
		}
		// Clear the MFA throttle the wrong codes built up.
		e.Store.Pool.Exec(context.Background(), `DELETE FROM auth_throttle`)
	}
}

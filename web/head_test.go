package web_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"keyward/web/apikey"
	"keyward/web/auth"
	"keyward/web/webtest"
)

// volatile headers differ between any two requests.
var volatile = map[string]bool{
	"Date": true, "X-Request-Id": true, "Set-Cookie": true,
	// The rate limit: each request, HEAD included, uses one.
	"X-Ratelimit-Remaining": true, "X-Ratelimit-Reset": true, "Ratelimit": true,
}

// HEAD answers wherever GET does, on the portal, the operations routes
// and the public API: the same status and headers, and no body.
// (Content-Length may be left out, as HTTP allows; when sent, it is
// GET's.)
func TestHeadAnswersLikeGet(t *testing.T) {
	e := webtest.New(t)
	owner := e.User(e.Tenant, "owner@acme.test", auth.RoleOwner)
	_, key := e.Key(e.Tenant, owner, apikey.Config{Name: "head", Environment: apikey.Production, Scopes: apikey.AllScopes})
	_, secret, _ := e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	signedIn := *e.SignIn("ann@acme.test", secret).HTTP
	signedIn.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	anonymous := &http.Client{CheckRedirect: signedIn.CheckRedirect}

	for _, c := range []struct {
		path   string
		client *http.Client
		key    string
		status int
	}{
		{"/healthz", anonymous, "", 200},
		{"/readyz", anonymous, "", 200},
		{"/metrics", anonymous, "", 200},
		{"/static/style.css", anonymous, "", 200},
		{"/login", anonymous, "", 200},
		{"/account", anonymous, "", 303},
		{"/account", &signedIn, "", 200},
		{"/settings/developers/api-keys", &signedIn, "", 200},
		{"/api/v1/key", anonymous, key, 200},
		{"/api/v1/events?limit=5", anonymous, key, 200},
		{"/api/v1/key", anonymous, "", 401},
		{"/api/v1/openapi.json", anonymous, "", 200},
		{"/api/v1/no-such-route", anonymous, key, 404},
	} {
		get, getBody := send(t, c.client, http.MethodGet, e.Server.URL+c.path, c.key)
		head, headBody := send(t, c.client, http.MethodHead, e.Server.URL+c.path, c.key)
		what := "HEAD " + c.path
		if get.StatusCode != c.status || head.StatusCode != get.StatusCode {
			t.Errorf("%s: %d, GET %d; want both %d", what, head.StatusCode, get.StatusCode, c.status)
			continue
		}
		if len(headBody) != 0 || len(getBody) == 0 && c.status != 303 {
			t.Errorf("%s: a body of %d bytes (GET: %d)", what, len(headBody), len(getBody))
		}
		for name, values := range get.Header {
			if volatile[name] {
				continue
			}
			got := head.Header.Values(name)
			if name == "Content-Length" && len(got) == 0 {
				continue // HTTP lets a HEAD answer leave it out
			}
			if strings.Join(got, "\n") != strings.Join(values, "\n") {
				t.Errorf("%s: %s is %q, GET's is %q", what, name, got, values)
			}
		}
		for name := range head.Header {
			if _, ok := get.Header[name]; !ok && !volatile[name] {
				t.Errorf("%s: header %s, which GET lacks", what, name)
			}
		}
	}
}

func send(t *testing.T, c *http.Client, method, url, key string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

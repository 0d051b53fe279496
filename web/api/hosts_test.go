package api_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"keyward/web"
	"keyward/web/apikey"
	"keyward/web/webtest"
)

// hostsFixture serves the API with api.example.com bound to production
// and sandbox.example.com to staging, strictly or not, and returns a key
// of each environment.
func hostsFixture(t *testing.T, strict bool) (f fixture, prod, stag string) {
	hosts, err := apikey.ParseHosts("api.example.com=prod, sandbox.example.com=staging")
	if err != nil {
		t.Fatal(err)
	}
	f = newFixture(t, webtest.Options{Config: func(c *web.Config) { c.APIHosts, c.APIHostsStrict = hosts, strict }})
	_, prod = f.key(apikey.Config{Environment: apikey.Production})
	_, stag = f.key(apikey.Config{Environment: apikey.Staging})
	return f, prod, stag
}

// onHost sends GET /api/v1/key with key to host, in process.
func onHost(f fixture, host, key string) webtest.Response {
	req := httptest.NewRequest(http.MethodGet, "/api/v1/key", nil)
	req.Host = host
	req.Header.Set("Authorization", "Bearer "+key)
	return f.Serve(req)
}

// With KEYWARD_API_HOSTS_STRICT, a key is served only on a listed host of
// its environment, however the request spells it; any other host gets
// 401 ENVIRONMENT_MISMATCH naming the host to use. Without it, a host not
// listed serves every environment.
func TestStrictAPIHosts(t *testing.T) {
	f, prod, stag := hostsFixture(t, true)
	for _, host := range []string{"api.example.com", "API.Example.COM", "api.example.com.", "api.example.com:8443", "Api.Example.Com.:443"} {
		if r := onHost(f, host, prod); r.Status != http.StatusOK {
			t.Errorf("production key on %q: %d %s", host, r.Status, r.Body)
		}
	}
	e := wantError(t, onHost(f, "sandbox.example.com", prod), http.StatusUnauthorized, "ENVIRONMENT_MISMATCH")
	if !strings.Contains(e.Error.Message, "staging environment") {
		t.Errorf("another environment's host: %q", e.Error.Message)
	}
	for _, host := range []string{"127.0.0.1:8080", "evil.example", "api.example.com.evil.example", "api.example.com..", "", "[::1]"} {
		r := onHost(f, host, prod)
		e := wantError(t, r, http.StatusUnauthorized, "ENVIRONMENT_MISMATCH")
		if e.Error.Message != "This host serves no environment: send this production key to api.example.com." {
			t.Errorf("production key on unlisted %q: %q", host, e.Error.Message)
		}
		if r.Header.Get("WWW-Authenticate") == "" || r.Header.Get("X-RateLimit-Limit") != "" {
			t.Errorf("unlisted %q: a refusal before the rate limit must carry WWW-Authenticate and no rate-limit headers: %v", host, r.Header)
		}
	}
	e = wantError(t, onHost(f, "evil.example", stag), http.StatusUnauthorized, "ENVIRONMENT_MISMATCH")
	if !strings.Contains(e.Error.Message, "staging key to sandbox.example.com") {
		t.Errorf("staging key on an unlisted host: %q", e.Error.Message)
	}
	// A request built with an absolute URL whose Host field says
	// otherwise is matched by the URL's host, as the request line's
	// authority wins over Host.
	req := httptest.NewRequest(http.MethodGet, "http://evil.example/api/v1/key", nil)
	req.Host = "api.example.com"
	req.Header.Set("Authorization", "Bearer "+prod)
	if r := f.Serve(req); r.Status != http.StatusUnauthorized {
		t.Errorf("absolute URL evil.example with Host api.example.com: %d", r.Status)
	}

	loose, prod, _ := hostsFixture(t, false)
	if r := onHost(loose, "evil.example", prod); r.Status != http.StatusOK {
		t.Errorf("without strict mode an unlisted host serves every environment: %d %s", r.Status, r.Body)
	}
}

// An absolute-form request line names the host over the wire: its
// authority is what counts, not the Host header that comes with it.
func TestStrictAPIHostsAbsoluteForm(t *testing.T) {
	f, prod, _ := hostsFixture(t, true)
	for _, c := range []struct {
		target, host string
		want         int
	}{
		{"http://API.EXAMPLE.COM.:80/api/v1/key", "evil.example", http.StatusOK},
		{"http://evil.example/api/v1/key", "api.example.com", http.StatusUnauthorized},
		{"/api/v1/key", "Api.Example.Com:1234", http.StatusOK},
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(f.Server.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", c.target, c.host, prod)
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != c.want {
			t.Errorf("GET %s with Host %s: %d %s, want %d", c.target, c.host, res.StatusCode, body, c.want)
		}
		req, _ := http.NewRequest(http.MethodGet, f.Server.URL+"/api/v1/key", nil)
		req.Header.Set("Authorization", "Bearer "+prod)
		webtest.Check(t, webtest.Exchange{Request: req, Status: res.StatusCode, Header: res.Header, Body: body})
	}
}

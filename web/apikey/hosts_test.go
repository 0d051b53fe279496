package apikey_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"keyward/web/apikey"
)

// ParseHosts refuses a host For could never match, and says why.
func TestParseHostsRefuses(t *testing.T) {
	for list, want := range map[string]string{
		"api.example.com:8443=production": "write api.example.com alone",
		"[::1]:8080=dev":                  "write [::1] alone",
		"api.example.com:=prod":           "leave out the port",
		"fe80::1%eth0=dev":                "zone",
		"[fe80::1%eth0]=dev":              "zone",
		"[127.0.0.1]=prod":                "neither a name",
		"a:b:c=prod":                      "neither a name",
		"[api.example.com]=prod":          "neither a name",
		"api.example.com..=prod":          "empty label",
		".example.com=prod":               "empty label",
		"a..b=prod":                       "empty label",
		"..=prod":                         "empty label",
		".=prod":                          "missing",
		"=prod":                           "missing",
		"api.example.com=qa":              "host=environment",
	} {
		h, err := apikey.ParseHosts("ok.example=prod, " + list)
		if err == nil || h != nil || !strings.Contains(err.Error(), `"`+list+`"`) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseHosts(%q) = %v, %v; want an error quoting the item and saying %q", list, h, err, want)
		}
	}
}

// An IPv6 address is bound bare or in brackets, and matched in any
// spelling a request gives it.
func TestHostsIPv6(t *testing.T) {
	h, err := apikey.ParseHosts("::1=dev, [2001:DB8:0:0::1]=prod, 192.0.2.1=stag")
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]apikey.Environment{
		"[::1]":                  apikey.Development,
		"[::1]:8080":             apikey.Development,
		"[0:0:0:0:0:0:0:1]:443":  apikey.Development,
		"[2001:db8::1]":          apikey.Production,
		"[2001:0DB8::0001]:8443": apikey.Production,
		"192.0.2.1:80":           apikey.Staging,
		"[::ffff:192.0.2.1]":     "",
		"[::2]":                  "",
		"[fe80::1%25eth0]":       "",
		"[2001:db8::1]extra":     "",
		"2001:db8::1.example":    "",
	} {
		got, ok := h.For(host)
		if got != want || ok != (want != "") {
			t.Errorf("For(%q) = %q, %v; want %q", host, got, ok, want)
		}
	}
}

// A request's host is the authority of an absolute-form request line when
// it has one, else its Host; For matches either in any spelling.
func TestRequestHost(t *testing.T) {
	h, err := apikey.ParseHosts("api.example.com=prod, [2001:db8::1]=dev")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		target, host string
		want         apikey.Environment
	}{
		{"/api/v1/key", "API.example.COM.:8443", apikey.Production},
		{"http://api.example.com./api/v1/key", "elsewhere.example", apikey.Production},
		{"http://elsewhere.example/api/v1/key", "api.example.com", ""},
		{"http://[2001:DB8:0::1]:8080/api/v1/key", "", apikey.Development},
		{"/api/v1/key", "", ""},
	} {
		r := httptest.NewRequest(http.MethodGet, c.target, nil)
		r.Host = c.host
		got, ok := h.For(apikey.RequestHost(r))
		if got != c.want || ok != (c.want != "") {
			t.Errorf("GET %s, Host %q: %q %v, want %q", c.target, c.host, got, ok, c.want)
		}
	}
}

// Serving names the hosts of one environment as a request would.
func TestHostsServing(t *testing.T) {
	h, err := apikey.ParseHosts("b.example=prod, A.example.=prod, ::1=prod, sandbox.example=stag")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.Serving(apikey.Production), " "); got != "[::1] a.example b.example" {
		t.Errorf("production hosts: %q", got)
	}
	if got := h.Serving(apikey.Development); len(got) != 0 {
		t.Errorf("development hosts: %q", got)
	}
}

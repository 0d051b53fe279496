package apikey_test

import (
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

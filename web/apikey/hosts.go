package apikey

import (
	"fmt"
	"net"
	"strings"
)

// Hosts binds public-API host names to environments
// (KEYWARD_API_HOSTS=api.example.com=production,…). A host not in the map
// serves every environment.
type Hosts map[string]Environment

// ParseHosts reads "host=environment,…". Environments may be written in
// full or as their key token (prod, stag, dev).
func ParseHosts(s string) (Hosts, error) {
	h := Hosts{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		host, env, ok := strings.Cut(item, "=")
		host = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
		e := Environment(strings.TrimSpace(env))
		for full, tok := range envTokens {
			if string(e) == tok {
				e = full
			}
		}
		if !ok || host == "" || !e.Valid() {
			return nil, fmt.Errorf("KEYWARD_API_HOSTS: %q is not host=environment (production, staging or development)", item)
		}
		h[host] = e
	}
	return h, nil
}

// For returns the environment bound to the request host (port ignored),
// and whether there is one.
func (h Hosts) For(host string) (Environment, bool) {
	if len(h) == 0 {
		return "", false
	}
	if hn, _, err := net.SplitHostPort(host); err == nil {
		host = hn
	}
	e, ok := h[strings.TrimSuffix(strings.ToLower(host), ".")]
	return e, ok
}

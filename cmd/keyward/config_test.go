package main

import (
	"flag"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The log format defaults by mode; a flag beats the variable.
func TestLogFormat(t *testing.T) {
	for _, c := range []struct {
		mode, env string
		args      []string
		want      string
	}{
		{"development", "", nil, "text"},
		{"production", "", nil, "json"},
		{"development", "json", nil, "json"},
		{"production", "text", nil, "text"},
		{"production", "text", []string{"--log-format", "json"}, "json"},
	} {
		t.Setenv("KEYWARD_MODE", c.mode)
		t.Setenv("KEYWARD_LOG_FORMAT", c.env)
		var cfg config
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		cfg.dbFlags(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		if err := cfg.validate(); err != nil || cfg.LogFormat != c.want {
			t.Errorf("%s, KEYWARD_LOG_FORMAT=%q, %v: %q %v, want %q", c.mode, c.env, c.args, cfg.LogFormat, err, c.want)
		}
	}
}

// KEYWARD_REQUEST_LOG_BUFFER reads sizes as PostgreSQL does (units of
// 1024, any letter case), defaults to 64MB, and a flag beats it; what it
// cannot read, or reads as under 1MB, stops serve.
func TestRequestLogBuffer(t *testing.T) {
	for _, c := range []struct {
		env  string
		args []string
		want int64 // -1: refused
	}{
		{"", nil, 64 << 20},
		{"128MB", nil, 128 << 20},
		{"2gb", nil, 2 << 30},
		{"1GiB", nil, 1 << 30},
		{" 3 MB ", nil, 3 << 20},
		{"1048576", nil, 1 << 20},
		{"4096kB", nil, 4 << 20},
		{"64MB", []string{"--request-log-buffer", "16MB"}, 16 << 20},
		{"1023kB", nil, -1},
		{"0", nil, -1},
		{"-5MB", nil, -1},
		{"+5MB", nil, -1},
		{"1.5GB", nil, -1},
		{"64 megs", nil, -1},
		{"MB", nil, -1},
		{"99999999999TB", nil, -1},
	} {
		t.Setenv("KEYWARD_REQUEST_LOG_BUFFER", c.env)
		var cfg config
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		cfg.serveFlags(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		err := cfg.validateServe()
		switch {
		case c.want < 0 && (err == nil || !strings.HasPrefix(err.Error(), "KEYWARD_REQUEST_LOG_BUFFER must be")):
			t.Errorf("%q: %v, want it refused", c.env, err)
		case c.want >= 0 && (err != nil || int64(cfg.LogBuffer) != c.want):
			t.Errorf("%q %v: %d %v, want %d", c.env, c.args, cfg.LogBuffer, err, c.want)
		}
	}
	if s := byteSize(64 << 20); s.String() != "64MB" {
		t.Errorf("64 MiB is written %q", s.String())
	}
}

// FuzzTrustedProxies: the parser never panics, and whatever it accepts is
// one valid, masked network per non-blank entry.
func FuzzTrustedProxies(f *testing.F) {
	for _, s := range []string{
		"", " , ,", "10.0.0.0/8", "10.1.2.3/8, 192.168.0.0/16", "::1/128,fd00::/8",
		"2001:db8::1/48", "0.0.0.0/0", "::/0", "10.0.0.1", "10.0.0.0/33", "fe80::1%eth0/64",
		"::ffff:10.0.0.1/104", "1.2.3.4/08", "10.0.0.0/8,,garbage",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		nets, err := parseTrustedProxies(list)
		if err != nil {
			if nets != nil {
				t.Errorf("%q: an error and networks %v", list, nets)
			}
			if !strings.HasPrefix(err.Error(), "KEYWARD_TRUSTED_PROXIES: ") || strings.Contains(err.Error(), "\n") {
				t.Errorf("%q: error %q is not one line naming the setting", list, err)
			}
			return
		}
		entries := 0
		for _, s := range strings.Split(list, ",") {
			if strings.TrimSpace(s) != "" {
				entries++
			}
		}
		if len(nets) != entries {
			t.Errorf("%q: %d networks from %d entries", list, len(nets), entries)
		}
		for _, n := range nets {
			ones, bits := n.Mask.Size()
			if bits == 0 || (bits != 32 && bits != 128) || len(n.IP)*8 != bits || ones > bits {
				t.Fatalf("%q: %v has IP length %d and mask %d/%d", list, n, len(n.IP), ones, bits)
			}
			if !n.IP.Equal(n.IP.Mask(n.Mask)) {
				t.Errorf("%q: %v is not masked", list, n)
			}
			// Its string form parses back to the same network.
			_, again, err := net.ParseCIDR(n.String())
			if err != nil || again.String() != n.String() {
				t.Errorf("%q: %v does not parse back: %v %v", list, n, again, err)
			}
		}
	})
}

// The pool's size defaults from the CPUs; the variable sets it and the
// flag beats the variable.
func TestDBMaxConns(t *testing.T) {
	for _, c := range []struct {
		env  string
		args []string
		want int32
	}{
		{"", nil, int32(max(4, 4*runtime.GOMAXPROCS(0)))},
		{"12", nil, 12},
		{" 12 ", nil, 12},
		{"12", []string{"--db-max-conns", "9"}, 9},
	} {
		t.Setenv("KEYWARD_DB_MAX_CONNS", c.env)
		var cfg config
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		cfg.serveFlags(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		if err := cfg.validateServe(); err != nil || cfg.DBMaxConns != c.want {
			t.Errorf("KEYWARD_DB_MAX_CONNS=%q, %v: %d %v, want %d", c.env, c.args, cfg.DBMaxConns, err, c.want)
		}
	}
}

// Bad pool and host settings stop serve at once with one line naming
// the setting, before anything is started.
func TestServeRefusesBadPoolAndHostSettings(t *testing.T) {
	for _, c := range []struct {
		env   map[string]string
		flags []string
		says  string
	}{
		{map[string]string{"KEYWARD_DB_MAX_CONNS": "0"}, nil, `KEYWARD_DB_MAX_CONNS must be a whole number from 1 to 1000, not "0"`},
		{map[string]string{"KEYWARD_DB_MAX_CONNS": "-4"}, nil, "KEYWARD_DB_MAX_CONNS must be a whole number"},
		{map[string]string{"KEYWARD_DB_MAX_CONNS": "lots"}, nil, "KEYWARD_DB_MAX_CONNS must be a whole number"},
		{map[string]string{"KEYWARD_DB_MAX_CONNS": "2.5"}, nil, "KEYWARD_DB_MAX_CONNS must be a whole number"},
		{map[string]string{"KEYWARD_DB_MAX_CONNS": "1001"}, nil, "KEYWARD_DB_MAX_CONNS must be a whole number from 1 to 1000"},
		{map[string]string{"KEYWARD_DB_MAX_CONNS": "99999999999"}, nil, "KEYWARD_DB_MAX_CONNS must be a whole number"},
		{nil, []string{"--db-max-conns", "0"}, "KEYWARD_DB_MAX_CONNS must be a whole number"},
		{map[string]string{"KEYWARD_API_HOSTS_STRICT": "yes please"}, nil, `KEYWARD_API_HOSTS_STRICT must be true or false, not "yes please"`},
		{map[string]string{"KEYWARD_API_HOSTS_STRICT": "true"}, nil, "KEYWARD_API_HOSTS_STRICT=true refuses every host not in KEYWARD_API_HOSTS, which lists none"},
		{map[string]string{"KEYWARD_API_HOSTS_STRICT": "true", "KEYWARD_API_HOSTS": " , "}, nil, "which lists none"},
		{nil, []string{"--api-hosts-strict"}, "which lists none"},
		{map[string]string{"KEYWARD_WEBHOOK_ALLOW_NETWORKS": "10.0.0.0/8, 192.168.1.7"}, nil, `KEYWARD_WEBHOOK_ALLOW_NETWORKS: "192.168.1.7" is not a CIDR`},
		{nil, []string{"--webhook-allow-networks", "intranet"}, `KEYWARD_WEBHOOK_ALLOW_NETWORKS: "intranet" is not a CIDR`},
		{map[string]string{"KEYWARD_TEST_JOB_RESCUE_AFTER": "soon"}, nil, `KEYWARD_TEST_JOB_RESCUE_AFTER must be a duration of at least 1s`},
		{map[string]string{"KEYWARD_WEBHOOK_ALLOW_NETWORKS": "0.0.0.0/0"}, nil, `KEYWARD_WEBHOOK_ALLOW_NETWORKS: "0.0.0.0/0" is too broad`},
		{map[string]string{"KEYWARD_WEBHOOK_ALLOW_NETWORKS": "10.1.2.3/8"}, nil, `KEYWARD_WEBHOOK_ALLOW_NETWORKS: "10.1.2.3/8" has host bits set: write the network as 10.0.0.0/8`},
		{map[string]string{"KEYWARD_TEST_JOB_RESCUE_AFTER": "3s", "KEYWARD_MODE": "production", "KEYWARD_SECRET_KEY": "production-secret-key-for-the-config-test-0123456789",
			"KEYWARD_DATABASE_URL": "postgres://keyward@127.0.0.1:1/keyward"}, nil, `KEYWARD_TEST_JOB_RESCUE_AFTER is for crash tests only and is refused in production mode`},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, c.flags...)
		code, _, stderr := keyward(t, "", "", args...)
		if code != 1 || !strings.Contains(stderr, c.says) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%v %v: exit %d, %q; want one line saying %q", c.env, c.flags, code, stderr, c.says)
		}
		for k := range c.env {
			os.Unsetenv(k)
		}
	}
}

// A secret-scanning keys file that is missing or not GitHub's format stops
// serve at once with one line naming the variable and the problem.
func TestServeRefusesBadSecretScanningKeys(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(bad, []byte(`{"public_keys":[{"key_identifier":"k1","key":"not a key","is_current":true}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, says := range map[string]string{
		bad:                             "KEYWARD_SECRET_SCANNING_KEYS: " + bad + ": public_keys[0] (k1): key is not a PEM block",
		filepath.Join(dir, "none.json"): "KEYWARD_SECRET_SCANNING_KEYS: open " + filepath.Join(dir, "none.json"),
	} {
		t.Setenv("KEYWARD_SECRET_SCANNING_KEYS", path)
		code, _, stderr := keyward(t, "", "", "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir())
		if code != 1 || !strings.Contains(stderr, says) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%s: exit %d, %q; want one line saying %q", path, code, stderr, says)
		}
	}
}

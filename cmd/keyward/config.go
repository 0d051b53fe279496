package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"keyward/web/apikey"
	"keyward/web/keyring"
)

// config is the process configuration: KEYWARD_* variables, which flags
// override.
type config struct {
	Addr           string
	DataDir        string
	DatabaseURL    string
	SecretKey      string
	Mode           string
	LogFormat      string
	BaseURL        string
	TrustedProxies string
	APIHosts       string
	// APIHostsStrict refuses public-API requests to hosts not in APIHosts.
	APIHostsStrict bool
	RedisURL       string
	// SMTPURL is the mail server for invitations (KEYWARD_SMTP_URL).
	SMTPURL string
	// SecretScanningKeys names the secret-scanning partner's public keys
	// file (KEYWARD_SECRET_SCANNING_KEYS); empty turns the route off.
	SecretScanningKeys string
	// WebhookAllow lists networks webhooks may reach despite the SSRF
	// rules (KEYWARD_WEBHOOK_ALLOW_NETWORKS).
	WebhookAllow string
	LogRetention time.Duration
	KeyStaleMax  time.Duration
	LogBuffer    byteSize
	// DBMaxConns is the pool's size, read from DBMaxConnsText by
	// validateServe; 0 leaves pgx's default (commands other than serve).
	DBMaxConns     int32
	DBMaxConnsText string

	// envErr is a variable that could not be read when the flags were
	// registered; validateServe reports it.
	envErr error
}

// defaultDataDir is where make run keeps the embedded cluster.
const defaultDataDir = "./.keyward"

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// dbFlags registers what every subcommand that talks to the database needs.
func (c *config) dbFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", env("KEYWARD_DATA_DIR", defaultDataDir), "where the embedded Postgres cluster and generated dev secrets live (KEYWARD_DATA_DIR)")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "external Postgres URL; when set, nothing is started (KEYWARD_DATABASE_URL)")
	fs.StringVar(&c.Mode, "mode", env("KEYWARD_MODE", "development"), "development or production (KEYWARD_MODE)")
	fs.StringVar(&c.LogFormat, "log-format", env("KEYWARD_LOG_FORMAT", ""), "text or json; default text in development, json in production (KEYWARD_LOG_FORMAT)")
}

// validateServe checks the settings only serve has.
func (c *config) validateServe() error {
	if c.envErr != nil {
		return c.envErr
	}
	if c.LogRetention < time.Hour {
		return fmt.Errorf("KEYWARD_REQUEST_LOG_RETENTION must be a duration of at least 1h, such as 720h")
	}
	if c.KeyStaleMax < time.Second || c.KeyStaleMax > 24*time.Hour {
		return fmt.Errorf("KEYWARD_KEY_STALE_MAX must be a duration from 1s to 24h, such as 10m")
	}
	if c.LogBuffer < minLogBuffer {
		return fmt.Errorf("KEYWARD_REQUEST_LOG_BUFFER must be a size of at least 1MB, such as 64MB")
	}
	n, err := strconv.ParseInt(strings.TrimSpace(c.DBMaxConnsText), 10, 32)
	if err != nil || n < 1 || n > maxDBConns {
		return fmt.Errorf("KEYWARD_DB_MAX_CONNS must be a whole number from 1 to %d, not %q", maxDBConns, c.DBMaxConnsText)
	}
	c.DBMaxConns = int32(n)
	return nil
}

// maxDBConns bounds KEYWARD_DB_MAX_CONNS: more from one instance is a
// typing mistake, not a plan.
const maxDBConns = 1000

// defaultDBMaxConns sizes the pool from the CPUs Go may use: four
// connections each, at least four. Sign-ins hold one only for short
// transactions, so the pool serves API cache misses, portal requests and
// the background writers; docs/configuration.md says how to size it.
func defaultDBMaxConns() int { return max(4, 4*runtime.GOMAXPROCS(0)) }

// apiHosts parses KEYWARD_API_HOSTS. Strict mode with no host listed
// would refuse every API request, so it is a configuration error.
func (c *config) apiHosts() (apikey.Hosts, error) {
	hosts, err := apikey.ParseHosts(c.APIHosts)
	if err != nil {
		return nil, err
	}
	if c.APIHostsStrict && len(hosts) == 0 {
		return nil, errors.New("KEYWARD_API_HOSTS_STRICT=true refuses every host not in KEYWARD_API_HOSTS, which lists none: set KEYWARD_API_HOSTS")
	}
	return hosts, nil
}

// serveFlags registers the server's own settings.
func (c *config) serveFlags(fs *flag.FlagSet) {
	c.dbFlags(fs)
	fs.StringVar(&c.Addr, "addr", env("KEYWARD_ADDR", "127.0.0.1:8080"), "listen address (KEYWARD_ADDR)")
	fs.StringVar(&c.SecretKey, "secret-key", "", "encrypts TOTP secrets and signs cookies; generated into the data dir in development, required in production (KEYWARD_SECRET_KEY)")
	fs.StringVar(&c.BaseURL, "base-url", env("KEYWARD_BASE_URL", ""), "public URL of the portal (KEYWARD_BASE_URL; default derived from the listen address)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", env("KEYWARD_TRUSTED_PROXIES", ""), "comma-separated CIDRs whose X-Forwarded-For is believed (KEYWARD_TRUSTED_PROXIES)")
	fs.StringVar(&c.APIHosts, "api-hosts", env("KEYWARD_API_HOSTS", ""), "host=environment,… binding for the public API; unset serves every environment (KEYWARD_API_HOSTS)")
	strict, err := strconv.ParseBool(env("KEYWARD_API_HOSTS_STRICT", "false"))
	if err != nil {
		c.envErr = fmt.Errorf("KEYWARD_API_HOSTS_STRICT must be true or false, not %q", os.Getenv("KEYWARD_API_HOSTS_STRICT"))
	}
	fs.BoolVar(&c.APIHostsStrict, "api-hosts-strict", strict, "refuse public-API requests to hosts not in KEYWARD_API_HOSTS (KEYWARD_API_HOSTS_STRICT)")
	fs.StringVar(&c.DBMaxConnsText, "db-max-conns", env("KEYWARD_DB_MAX_CONNS", strconv.Itoa(defaultDBMaxConns())), "most database connections this instance's pool opens; default 4 per CPU, at least 4 (KEYWARD_DB_MAX_CONNS)")
	fs.StringVar(&c.RedisURL, "redis-url", "", "Redis URL for rate limits shared across instances; unset keeps them in memory (KEYWARD_REDIS_URL)")
	fs.StringVar(&c.SMTPURL, "smtp-url", "", "mail server for invitation links, such as smtp://user:password@mail.example.com:587?from=keyward@example.com; unset: links are only shown (KEYWARD_SMTP_URL)")
	fs.StringVar(&c.SecretScanningKeys, "secret-scanning-keys", env("KEYWARD_SECRET_SCANNING_KEYS", ""), "file of the secret-scanning partner's public keys, in the JSON GitHub publishes them in; unset: POST /api/v1/secret-scanning/reports answers 404 (KEYWARD_SECRET_SCANNING_KEYS)")
	fs.StringVar(&c.WebhookAllow, "webhook-allow-networks", env("KEYWARD_WEBHOOK_ALLOW_NETWORKS", ""), "comma-separated CIDRs webhook deliveries may reach despite the rules against private, loopback and link-local addresses (KEYWARD_WEBHOOK_ALLOW_NETWORKS)")
	retention, err := time.ParseDuration(env("KEYWARD_REQUEST_LOG_RETENTION", "720h"))
	if err != nil {
		retention = -1 // reported by validate
	}
	fs.DurationVar(&c.LogRetention, "request-log-retention", retention, "how long API request logs are kept (KEYWARD_REQUEST_LOG_RETENTION)")
	staleMax, err := time.ParseDuration(env("KEYWARD_KEY_STALE_MAX", "10m"))
	if err != nil {
		staleMax = -1 // reported by validate
	}
	fs.DurationVar(&c.KeyStaleMax, "key-stale-max", staleMax, "how long cached API keys are served while the database is unreachable (KEYWARD_KEY_STALE_MAX)")
	if err := c.LogBuffer.Set(env("KEYWARD_REQUEST_LOG_BUFFER", "64MB")); err != nil {
		c.LogBuffer = -1 // reported by validateServe
	}
	fs.Var(&c.LogBuffer, "request-log-buffer", "memory for request-log rows waiting to be written, such as 64MB; past it rows are dropped and counted (KEYWARD_REQUEST_LOG_BUFFER)")
}

// minLogBuffer is the least KEYWARD_REQUEST_LOG_BUFFER: a few thousand
// rows.
const minLogBuffer = 1 << 20

// byteSize is a number of bytes, written as a whole number and a unit, as
// PostgreSQL reads its memory settings: B, kB, MB, GB or TB, each 1024
// times the one before (KiB, MiB, … and letter case are accepted too).
type byteSize int64

// sizeShifts are the units byteSize reads, as powers of two.
var sizeShifts = map[string]uint{
	"": 0, "b": 0,
	"k": 10, "kb": 10, "kib": 10,
	"m": 20, "mb": 20, "mib": 20,
	"g": 30, "gb": 30, "gib": 30,
	"t": 40, "tb": 40, "tib": 40,
}

func (b *byteSize) Set(s string) error {
	v := strings.TrimSpace(s)
	digits := strings.TrimRight(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ")
	shift, ok := sizeShifts[strings.ToLower(strings.TrimSpace(v[len(digits):]))]
	n, err := strconv.ParseInt(digits, 10, 64)
	if !ok || err != nil || n < 0 || digits[0] == '+' || n > math.MaxInt64>>shift {
		return fmt.Errorf("%q is not a size such as 64MB", s)
	}
	*b = byteSize(n << shift)
	return nil
}

// String writes the size in the largest unit that divides it.
func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range []struct {
		name  string
		shift uint
	}{{"TB", 40}, {"GB", 30}, {"MB", 20}, {"kB", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

func (c *config) production() bool { return c.Mode == "production" }

// validate checks the settings and fills the secret ones (the database,
// Redis and SMTP URLs and the secret key) from the environment. Those are
// not flag defaults, so --help never prints them.
func (c *config) validate() error {
	if c.DatabaseURL == "" {
		c.DatabaseURL = os.Getenv("KEYWARD_DATABASE_URL")
	}
	if c.SecretKey == "" {
		c.SecretKey = os.Getenv("KEYWARD_SECRET_KEY")
	}
	if c.RedisURL == "" {
		c.RedisURL = os.Getenv("KEYWARD_REDIS_URL")
	}
	if c.SMTPURL == "" {
		c.SMTPURL = os.Getenv("KEYWARD_SMTP_URL")
	}
	if c.Mode != "development" && c.Mode != "production" {
		return fmt.Errorf("KEYWARD_MODE must be development or production, not %q", c.Mode)
	}
	switch c.LogFormat {
	case "":
		c.LogFormat = "text"
		if c.production() {
			c.LogFormat = "json"
		}
	case "text", "json":
	default:
		return fmt.Errorf("KEYWARD_LOG_FORMAT must be text or json, not %q", c.LogFormat)
	}
	return nil
}

// logger writes to w in the configured format: slog's key=value text, easy
// to read in a terminal, or one JSON object a line for a log collector.
// Call it after validate.
func (c *config) logger(w io.Writer) *slog.Logger {
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

func (c *config) baseURL() string {
	if c.BaseURL != "" {
		return strings.TrimRight(c.BaseURL, "/")
	}
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return "http://" + c.Addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func (c *config) trustedProxies() ([]*net.IPNet, error) { return parseTrustedProxies(c.TrustedProxies) }

// parseTrustedProxies parses KEYWARD_TRUSTED_PROXIES: CIDRs separated by
// commas, blanks ignored. Each network comes back masked (10.1.2.3/8 is
// 10.0.0.0/8).
func parseTrustedProxies(list string) ([]*net.IPNet, error) {
	var nets []*net.IPNet
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("KEYWARD_TRUSTED_PROXIES: %q is not a CIDR", s)
		}
		nets = append(nets, n)
	}
	return nets, nil
}

// secretKey returns the master key. In production it must be given and
// strong; in development one is generated once into the data dir.
func (c *config) secretKey() (*keyring.Ring, error) {
	if c.SecretKey != "" {
		ring, err := keyring.New([]byte(c.SecretKey))
		if err != nil {
			return nil, fmt.Errorf("KEYWARD_SECRET_KEY: %w", err)
		}
		return ring, nil
	}
	if c.production() {
		return nil, errors.New("KEYWARD_SECRET_KEY is required in production (generate one with: openssl rand -hex 32)")
	}
	path := filepath.Join(c.DataDir, "secret.key")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		raw := make([]byte, 32)
		rand.Read(raw)
		b = []byte(hex.EncodeToString(raw))
		if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	return keyring.New([]byte(strings.TrimSpace(string(b))))
}

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"keyward/db"
	"keyward/db/pglocal"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/keyring"
)

// benchSecret is the server's KEYWARD_SECRET_KEY; the seed keys its audit
// events with the same keys.
const benchSecret = "kwbench-secret-key-0123456789abcdefghijklmnop"

// benchRateLimit is the key's override: far above anything a run can
// spend, so the limiter decides every request without ever refusing one.
const benchRateLimit = 100_000_000

// fixture is what the benchmark creates in the database.
type fixture struct {
	TenantID int64
	OwnerID  int64
	Owner    string // the owner's email
	KeyID    string
	Key      string // the full secret
}

// startCluster starts a private cluster with default durability (as
// `make run` does) and returns it with a migrated database's URL.
func startCluster(ctx context.Context, dir string) (*pglocal.Cluster, string, error) {
	c, err := pglocal.Start(ctx, pglocal.Options{Dir: dir, Logf: logf})
	if err != nil {
		return nil, "", err
	}
	if err := c.EnsureDatabase(ctx, "kwbench"); err != nil {
		c.Stop()
		return nil, "", err
	}
	url := c.URL("kwbench")
	if err := db.MigrateURL(ctx, url); err != nil {
		c.Stop()
		return nil, "", err
	}
	return c, url, nil
}

// seed creates the "bench" tenant on the stack plan, its owner and one
// production key with every scope, in one transaction. The key's rate
// limit is then raised past what Config accepts (1,000,000 per window)
// with a direct UPDATE, so the limiter never refuses a benchmark request.
func seed(ctx context.Context, store *db.Store) (fixture, error) {
	var f fixture
	ring, err := keyring.New([]byte(benchSecret))
	if err != nil {
		return f, err
	}
	keys := audit.NewKeys(ring)
	// Through InTx, whose queries map pgx's errors as the application's do
	// (a tenant without key policies reads as db.ErrNotFound).
	err = store.InTx(ctx, func(q *db.Queries) error {
		t, err := auth.CreateTenant(ctx, q, keys, "bench", "Benchmark Inc.", "stack", time.Now())
		if err != nil {
			return err
		}
		owner, err := auth.CreateUser(ctx, q, keys, t.ID, ownerEmail, auth.RoleOwner, auth.GeneratePassword(), true, audit.Actor{Type: audit.ActorSystem, ID: "kwbench"}, time.Now())
		if err != nil {
			return err
		}
		by := audit.Actor{TenantID: &t.ID, Type: audit.ActorSystem, ID: "kwbench"}
		cfg := apikey.Config{Name: "bench", Environment: apikey.Production, Scopes: apikey.AllScopes,
			RateLimit: &apikey.RateLimit{Requests: 1_000_000, Window: time.Hour}}
		k, full, err := apikey.Create(ctx, q, keys, t.ID, cfg, by, owner.ID, time.Now())
		if err != nil {
			return err
		}
		f = fixture{TenantID: t.ID, OwnerID: owner.ID, Owner: ownerEmail, KeyID: k.ID, Key: full}
		return nil
	})
	if err != nil {
		return f, err
	}
	_, err = store.Pool.Exec(ctx, "UPDATE api_keys SET rate_limit_requests = $1, rate_limit_window_s = 3600 WHERE id = $2", benchRateLimit, f.KeyID)
	return f, err
}

// ownerEmail is the bench tenant's owner, whose password the sign-in flood
// guesses.
const ownerEmail = "owner@bench.test"

// seedMissKeys creates n more production keys of the bench tenant, the
// same way seed creates its key (apikey.Create, plan rate limit), in one
// transaction, and returns their secrets. The server has never seen them:
// each is sent once, so each of those requests misses the server's cache.
func seedMissKeys(ctx context.Context, store *db.Store, f fixture, n int) ([]string, error) {
	ring, err := keyring.New([]byte(benchSecret))
	if err != nil {
		return nil, err
	}
	auditKeys := audit.NewKeys(ring)
	keys := make([]string, 0, n)
	err = store.InTx(ctx, func(q *db.Queries) error {
		by := audit.Actor{TenantID: &f.TenantID, Type: audit.ActorSystem, ID: "kwbench"}
		for i := range n {
			cfg := apikey.Config{Name: fmt.Sprintf("miss-%05d", i), Environment: apikey.Production, Scopes: apikey.AllScopes}
			_, full, err := apikey.Create(ctx, q, auditKeys, f.TenantID, cfg, by, f.OwnerID, time.Now())
			if err != nil {
				return err
			}
			keys = append(keys, full)
		}
		return nil
	})
	return keys, err
}

// pgSettings reads the settings that decide what a commit costs.
func pgSettings(ctx context.Context, pool *pgxpool.Pool) string {
	var parts []string
	for _, name := range []string{"server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers", "max_connections"} {
		var v string
		if err := pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			v = "?"
		}
		parts = append(parts, name+"="+v)
	}
	return strings.Join(parts, ", ")
}

// buildKeyward builds ./cmd/keyward into bin.
func buildKeyward(ctx context.Context, bin string) error {
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/keyward")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/keyward: %w\n%s", err, out)
	}
	return nil
}

// server is a running `keyward serve`.
type server struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{} // closed when the process has ended
	err    error         // Wait's result, once exited is closed
}

// serverEnv is what the bench sets for keyward serve: production mode, as
// an operator runs it (a JSON log line per request, Secure __Host-
// cookies, no demo data), X-Forwarded-For believed from loopback
// only (the sign-in flood speaks for many addresses through it), and
// every setting that sizes the server left empty so its default holds:
// the pool (KEYWARD_DB_MAX_CONNS), the request-log buffer, GOGC (serve
// then sets 200) and GOMEMLIMIT.
func serverEnv(dbURL, dataDir string) []string {
	return append(os.Environ(),
		"KEYWARD_DATABASE_URL="+dbURL,
		"KEYWARD_SECRET_KEY="+benchSecret,
		"KEYWARD_MODE=production",
		"KEYWARD_DATA_DIR="+dataDir,
		"KEYWARD_TRUSTED_PROXIES="+trustedProxies,
		"KEYWARD_REDIS_URL=", "KEYWARD_API_HOSTS=", "KEYWARD_API_HOSTS_STRICT=", "KEYWARD_BASE_URL=",
		"KEYWARD_DB_MAX_CONNS=", "KEYWARD_REQUEST_LOG_BUFFER=", "KEYWARD_LOG_FORMAT=", "KEYWARD_KEY_STALE_MAX=",
		"KEYWARD_REQUEST_LOG_RETENTION=", "GOGC=", "GOMEMLIMIT=", "GOMAXPROCS=",
	)
}

// trustedProxies is the server's KEYWARD_TRUSTED_PROXIES.
const trustedProxies = "127.0.0.1/32"

// csrfCookie is the portal's CSRF cookie in production mode.
const csrfCookie = "__Host-kw_csrf"

// startServer starts bin on a free loopback port against dbURL and waits
// for /readyz. Its stdout and stderr (a JSON line per request) go to
// /dev/null.
func startServer(bin, dbURL, dataDir string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(abs, "serve", "--addr", addr)
	cmd.Env = serverEnv(dbURL, dataDir)
	// nil Stdout/Stderr: the child writes to /dev/null, with no copying
	// goroutine in this process.
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, addr: addr, exited: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.exited) }()

	deadline := time.Now().Add(90 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		res, err := client.Get(s.base() + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("keyward serve exited before it was ready: %v", s.err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			return nil, errors.New("keyward serve did not answer /readyz within 90 s")
		}
	}
}

func (s *server) base() string { return "http://" + s.addr }

// stop sends SIGTERM and waits for the exit; it returns the exit error
// (nil for status 0).
func (s *server) stop(timeout time.Duration) error {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-s.exited:
		return s.err
	case <-time.After(timeout):
		s.kill()
		return fmt.Errorf("did not exit within %v of SIGTERM (killed)", timeout)
	}
}

// kill ends the process if it still runs.
func (s *server) kill() {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// procStatusKB reads one "kB" field (VmRSS, VmHWM) of /proc/<pid>/status.
func procStatusKB(pid int, field string) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			break
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

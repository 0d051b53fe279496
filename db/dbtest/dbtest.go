// Package dbtest gives each test its own freshly migrated PostgreSQL database.
//
// A package whose tests need the database wires it up once:
//
//	func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }
//
// and then each test calls New (a *pgxpool.Pool) or NewURL (a connection URL,
// e.g. for a server process it starts).
//
// The first call sets up a server: the one named by KEYWARD_TEST_DATABASE_URL
// if set (its role must be allowed to CREATE DATABASE), otherwise a private
// throwaway cluster (package pglocal) in a temporary directory. It then
// builds a template database with all migrations applied. Every test gets a
// clone of that template, which is cheap, and the clone is dropped when the
// test ends. Run stops the private cluster and removes its directory.
//
// There is no skipping: a test that asks for a database and cannot get one
// fails.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"keyward/db"
	"keyward/db/pglocal"
)

// EnvURL names an existing server to use instead of a private cluster.
const EnvURL = "KEYWARD_TEST_DATABASE_URL"

var (
	once     sync.Once
	setupErr error

	mu       sync.Mutex // guards everything below; held during clones (Postgres refuses concurrent clones of one template)
	cluster  *pglocal.Cluster
	tmpDir   string
	server   *url.URL      // server URL; its path is replaced per database
	admin    *pgxpool.Pool // maintenance connection for CREATE/DROP DATABASE
	template string        // kwtpl_<tag>, once created
	tag      string        // random, keeps names unique on a shared server
	clones   int
	strategy string // " STRATEGY FILE_COPY" where supported: faster for small databases
)

// Run runs the tests and then tears down what setup made. It returns the exit
// code for os.Exit.
func Run(m *testing.M) int {
	code := m.Run()
	if err := teardown(); err != nil {
		fmt.Fprintln(os.Stderr, "dbtest: teardown:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// New returns a pool on a new database holding the migrated schema and no
// data. The pool is closed and the database dropped when the test ends.
// configure, if given, adjusts the pool's configuration (a tracer, say).
func New(t testing.TB, configure ...func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	u := NewURL(t)
	cfg, err := pgxpool.ParseConfig(u)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	cfg.MaxConns = 8
	for _, f := range configure {
		f(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		t.Fatalf("dbtest: connecting to test database: %v", err)
	}
	t.Cleanup(pool.Close) // runs before NewURL's drop (cleanups run last-in first-out)
	return pool
}

// NewURL is New for callers that connect themselves: it returns the URL of a
// new migrated database, dropped when the test ends.
func NewURL(t testing.TB) string {
	t.Helper()
	once.Do(func() { setupErr = setup() })
	if setupErr != nil {
		t.Fatalf("dbtest: setting up test database server: %v", setupErr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mu.Lock()
	clones++
	name := fmt.Sprintf("kwt_%s_%d", tag, clones)
	_, err := admin.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(template)+strategy)
	mu.Unlock()
	if err != nil {
		t.Fatalf("dbtest: cloning template database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("dbtest: dropping %s: %v", name, err)
		}
	})
	return dbURL(name)
}

// setup finds or starts a server and builds the migrated template database.
func setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mu.Lock()
	defer mu.Unlock()

	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	tag = hex.EncodeToString(b)

	if serverURL := os.Getenv(EnvURL); serverURL != "" {
		if err := prepare(ctx, serverURL); err != nil {
			return fmt.Errorf("server from %s: %w", EnvURL, err)
		}
		return nil
	}

	dir, err := os.MkdirTemp("", "kwtest")
	if err != nil {
		return err
	}
	tmpDir = dir
	// 0755: when running as root the server runs as another user, who must
	// be able to enter this directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	if cluster, err = pglocal.Start(ctx, pglocal.Options{Dir: dir, Fast: true}); err != nil {
		return err
	}
	return prepare(ctx, cluster.URL("postgres"))
}

// prepare connects to the server and builds the template database.
func prepare(ctx context.Context, serverURL string) error {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return errors.New("not a postgres:// URL")
	}
	server = u

	if admin, err = pgxpool.New(ctx, serverURL); err != nil {
		return err
	}
	var version int
	if err := admin.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return err
	}
	if version >= 150000 {
		strategy = " STRATEGY FILE_COPY"
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+ident("kwtpl_"+tag)); err != nil {
		return fmt.Errorf("creating template database: %w", err)
	}
	template = "kwtpl_" + tag
	if err := db.MigrateURL(ctx, dbURL(template)); err != nil {
		return fmt.Errorf("migrating template database: %w", err)
	}
	// No one may be connected to a template while it is cloned: refuse new
	// connections and end any the migration left behind.
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+ident(template)+" ALLOW_CONNECTIONS false"); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", template); err != nil {
		return err
	}
	return nil
}

// teardown drops the template (on a shared server), stops the private
// cluster and removes its directory.
func teardown() error {
	mu.Lock()
	defer mu.Unlock()
	var errs []error
	if admin != nil {
		if cluster == nil && template != "" { // shared server: leave nothing behind
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(template)+" WITH (FORCE)")
			cancel()
			errs = append(errs, err)
		}
		admin.Close()
	}
	if cluster != nil {
		errs = append(errs, cluster.Stop())
	}
	if tmpDir != "" {
		errs = append(errs, os.RemoveAll(tmpDir))
	}
	return errors.Join(errs...)
}

// dbURL is the server URL pointed at database name.
func dbURL(name string) string {
	u := *server
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// OwnCluster starts a private PostgreSQL cluster for one test, with a
// migrated database, and returns it with that database's URL. Fault tests
// stop and restart it (pglocal's Stop, Resume and Restart) without touching
// the cluster every other test shares. It is stopped and removed when the
// test ends.
func OwnCluster(t testing.TB) (*pglocal.Cluster, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "kwfault")
	if err != nil {
		t.Fatal(err)
	}
	// 0755: when running as root the server runs as another user, who must
	// be able to enter this directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := pglocal.Start(ctx, pglocal.Options{Dir: dir, Fast: true})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("dbtest: starting a cluster of the test's own: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("dbtest: stopping the test's own cluster: %v", err)
		}
		os.RemoveAll(dir)
	})
	if err := c.EnsureDatabase(ctx, "keyward"); err != nil {
		t.Fatal(err)
	}
	u := c.URL("keyward")
	if err := db.MigrateURL(ctx, u); err != nil {
		t.Fatal(err)
	}
	return c, u
}

package pglocal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// newDir makes a cluster directory the postgres user can reach when the
// tests run as root (t.TempDir is 0700).
func newDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kwpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func start(t *testing.T, ctx context.Context, dir string) *Cluster {
	t.Helper()
	c, err := Start(ctx, Options{Dir: dir, Fast: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() }) // no-op if the test stopped it
	return c
}

func TestStartReuseStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := newDir(t)

	c := start(t, ctx, dir)
	if err := c.EnsureDatabase(ctx, "kwtest"); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureDatabase(ctx, "kwtest"); err != nil { // idempotent
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.URL("kwtest"))
	if err != nil {
		t.Fatal(err)
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE survivor (v text); INSERT INTO survivor VALUES ('still here')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	fi, err := os.Stat(filepath.Join(dir, "pg-password"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("pg-password mode = %v, want 0600", fi.Mode().Perm())
	}
	pw := c.password
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil { // stopping twice is fine
		t.Fatal(err)
	}

	c2 := start(t, ctx, dir)
	if c2.password != pw {
		t.Error("password changed on reuse")
	}
	conn, err = pgx.Connect(ctx, c2.URL("kwtest"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SELECT v FROM survivor").Scan(&v); err != nil || v != "still here" {
		t.Fatalf("after restart: %q, %v", v, err)
	}
	if err := c2.Stop(); err != nil {
		t.Fatal(err)
	}
}

// A second Start on a running cluster (an admin command while serve runs)
// joins it, and its Stop leaves the first process's server running.
func TestJoinRunningServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := newDir(t)
	first := start(t, ctx, dir)
	second := start(t, ctx, dir)
	if second.Port != first.Port {
		t.Fatalf("second Start picked port %d, the running server is on %d", second.Port, first.Port)
	}
	if err := second.Stop(); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, first.URL("postgres"))
	if err != nil {
		t.Fatalf("the first server died when the joiner stopped: %v", err)
	}
	conn.Close(ctx)
}

func TestURLEscapes(t *testing.T) {
	c := &Cluster{Port: 5432, password: "a/b@c:d"}
	got := c.URL("kw")
	want := "postgres://keyward:a%2Fb%40c%3Ad@127.0.0.1:5432/kw?sslmode=disable"
	if got != want {
		t.Errorf("URL = %s, want %s", got, want)
	}
	cfg, err := pgx.ParseConfig(got)
	if err != nil || cfg.Password != "a/b@c:d" || cfg.Database != "kw" {
		t.Errorf("ParseConfig: %+v, %v", cfg, err)
	}
}

func TestBinariesMissing(t *testing.T) {
	old := debianRoot
	debianRoot = t.TempDir()
	defer func() { debianRoot = old }()
	t.Setenv("PATH", t.TempDir())
	_, _, err := findBinaries()
	if !errors.Is(err, ErrBinariesMissing) || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "apt-get install postgresql") {
		t.Fatalf("err = %v", err)
	}
}

func TestFindBinariesPicksHighestVersion(t *testing.T) {
	old := debianRoot
	debianRoot = t.TempDir()
	defer func() { debianRoot = old }()
	for _, v := range []string{"9.6", "16", "10", "17"} {
		bin := filepath.Join(debianRoot, v, "bin")
		os.MkdirAll(bin, 0o755)
		for _, f := range []string{"pg_ctl", "initdb"} {
			if v == "17" && f == "initdb" {
				continue // incomplete install: skipped
			}
			os.WriteFile(filepath.Join(bin, f), nil, 0o755)
		}
	}
	pgCtl, initdb, err := findBinaries()
	if err != nil || pgCtl != filepath.Join(debianRoot, "16/bin/pg_ctl") || initdb != filepath.Join(debianRoot, "16/bin/initdb") {
		t.Fatalf("got %s %s %v", pgCtl, initdb, err)
	}
}

func TestCheckTraversable(t *testing.T) {
	blocked, err := os.MkdirTemp("", "kwpgb") // 0700, ours
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(blocked)
	inner := filepath.Join(blocked, "data")
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	other := &syscall.Credential{Uid: 65534, Gid: 65534}
	err = checkTraversable(inner, other, "nobody")
	if err == nil || !strings.Contains(err.Error(), blocked+" ") || !strings.Contains(err.Error(), "KEYWARD_DATA_DIR") {
		t.Fatalf("err = %v", err)
	}
	if err := os.Chmod(blocked, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := checkTraversable(inner, other, "nobody"); err != nil {
		t.Fatal(err)
	}
}

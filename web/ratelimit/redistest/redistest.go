// Package redistest gives each test its own empty Redis database.
//
// A package whose tests need Redis wires it up once:
//
//	func TestMain(m *testing.M) { os.Exit(redistest.Run(m)) }
//
// and then each test calls URL for a redis:// URL of its own.
//
// The first call sets up a server: the one named by KEYWARD_TEST_REDIS_URL
// if set, otherwise a private redis-server (Debian's package redis-server)
// started from the system binary on a free 127.0.0.1 port, with a temporary
// working directory and no persistence. Run stops the private server and
// removes its directory.
//
// Isolation: Redis has numbered logical databases. Database 0 is kept for
// leases; every other database is handed to one test at a time. URL takes a
// free database by setting a lease key in database 0 (SET NX, so the lease
// also holds between test binaries sharing a KEYWARD_TEST_REDIS_URL server,
// as `go test ./...` runs packages at once), empties it with FLUSHDB, and
// returns it; when the test ends the database is emptied again and the lease
// released. Tests may therefore run in parallel. When every database is
// leased, URL waits for one to be released. The private server has 64
// databases; a shared server has what its "databases" setting says (16 by
// default). A shared server's databases are flushed: use one kept for tests.
//
// There is no skipping: a test that asks for Redis and cannot get it fails.
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvURL names an existing server to use instead of a private one.
const EnvURL = "KEYWARD_TEST_REDIS_URL"

// privateDatabases is the number of logical databases of the private server.
const privateDatabases = 64

// leaseTTL bounds how long a lease outlives a test binary that was killed
// before releasing it.
const leaseTTL = time.Hour

// leaseWait is how long URL waits for a free database before failing.
const leaseWait = 5 * time.Minute

var (
	once     sync.Once
	setupErr error

	mu        sync.Mutex // guards the server state below against Stop
	proc      *exec.Cmd
	exited    chan struct{} // closed when proc has exited
	tmpDir    string
	server    *url.URL      // server URL; its path is replaced per database
	admin     *redis.Client // database 0: the leases
	databases int
	owner     string // random, this process's lease value
)

// releaseLease deletes a lease only if it is still ours.
var releaseLease = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)

// Run runs the tests and then stops the private server. It returns the exit
// code for os.Exit.
func Run(m *testing.M) int {
	code := m.Run()
	if err := Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "redistest: stop:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// URL returns the URL of an empty Redis database that belongs to the test
// until it ends.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(func() { setupErr = setup() })
	if setupErr != nil {
		t.Fatalf("redistest: %v", setupErr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), leaseWait+time.Minute)
	defer cancel()
	db, lease, err := acquire(ctx)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	u := dbURL(db)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := flush(ctx, u); err != nil {
			t.Errorf("redistest: emptying database %d: %v", db, err)
		}
		if err := releaseLease.Run(ctx, admin, []string{lease}, owner).Err(); err != nil {
			t.Errorf("redistest: releasing database %d: %v", db, err)
		}
	})
	return u
}

// acquire leases a free database (1..databases-1) and empties it.
func acquire(ctx context.Context) (int, string, error) {
	deadline := time.Now().Add(leaseWait)
	for {
		for db := 1; db < databases; db++ {
			lease := "keyward:redistest:lease:" + strconv.Itoa(db)
			ok, err := admin.SetNX(ctx, lease, owner, leaseTTL).Result()
			if err != nil {
				return 0, "", fmt.Errorf("leasing a database: %w", err)
			}
			if !ok {
				continue
			}
			if err := flush(ctx, dbURL(db)); err != nil {
				_ = releaseLease.Run(ctx, admin, []string{lease}, owner).Err()
				return 0, "", fmt.Errorf("emptying database %d: %w", db, err)
			}
			return db, lease, nil
		}
		if time.Now().After(deadline) {
			return 0, "", fmt.Errorf("all %d Redis databases stayed leased for %v (leases are keys keyward:redistest:lease:N in database 0)", databases-1, leaseWait)
		}
		select {
		case <-ctx.Done():
			return 0, "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func flush(ctx context.Context, u string) error {
	opt, err := redis.ParseURL(u)
	if err != nil {
		return err
	}
	c := redis.NewClient(opt)
	defer c.Close()
	return c.FlushDB(ctx).Err()
}

// Stop stops the private server and removes its directory. Run calls it;
// calling it again does nothing. Tests cannot get a database after Stop.
func Stop() error {
	once.Do(func() { setupErr = errors.New("stopped") }) // no setup after Stop
	mu.Lock()
	defer mu.Unlock()
	var errs []error
	if admin != nil {
		errs = append(errs, admin.Close())
		admin = nil
	}
	if proc != nil {
		_ = proc.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = proc.Process.Kill()
			<-exited
		}
		proc = nil
	}
	if tmpDir != "" {
		errs = append(errs, os.RemoveAll(tmpDir))
		tmpDir = ""
	}
	return errors.Join(errs...)
}

// setup finds or starts a server and connects to its database 0.
func setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mu.Lock()
	defer mu.Unlock()

	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	owner = hex.EncodeToString(b)

	if s := os.Getenv(EnvURL); s != "" {
		if err := connect(ctx, s, 0); err != nil {
			return fmt.Errorf("server from %s: %w", EnvURL, err)
		}
		return nil
	}
	if err := start(ctx); err != nil {
		return err
	}
	return nil
}

// connect points the package at the server at serverURL, waits until it
// answers PING, and reads its number of databases unless n is given.
func connect(ctx context.Context, serverURL string, n int) error {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return errors.New("not a redis:// or rediss:// URL")
	}
	server = u
	opt, err := redis.ParseURL(dbURL(0))
	if err != nil {
		return err
	}
	admin = redis.NewClient(opt)
	if err := waitReady(ctx); err != nil {
		return err
	}
	databases = n
	if databases == 0 {
		databases = 16 // Redis's default, when CONFIG is not allowed
		if v, err := admin.ConfigGet(ctx, "databases").Result(); err == nil {
			if d, err := strconv.Atoi(v["databases"]); err == nil {
				databases = d
			}
		}
	}
	if databases < 2 {
		return fmt.Errorf("server has %d database(s); redistest needs at least 2", databases)
	}
	return nil
}

// start runs a private redis-server in a new temporary directory.
func start(ctx context.Context) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if _, serr := os.Stat("/usr/bin/redis-server"); serr != nil {
			return errors.New("redis-server not found: install Debian's redis-server package (make test does this as root)")
		}
		bin = "/usr/bin/redis-server"
	}
	if tmpDir, err = os.MkdirTemp("", "kwredis"); err != nil {
		return err
	}
	logFile := filepath.Join(tmpDir, "redis.log")

	var startErr error
	for attempt := 0; attempt < 2; attempt++ { // retry once: another process may grab the port first
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("picking a port: %w", err)
		}
		cmd := exec.Command(bin,
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--protected-mode", "yes",
			"--save", "",
			"--appendonly", "no",
			"--dir", tmpDir,
			"--databases", strconv.Itoa(privateDatabases),
			"--logfile", logFile,
			"--daemonize", "no",
		)
		cmd.Dir = tmpDir
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = sysProcAttr()
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", bin, err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		proc, exited = cmd, done

		cctx, cancel := context.WithCancel(ctx)
		go func() { // stop waiting for PING when the server dies
			select {
			case <-done:
				cancel()
			case <-cctx.Done():
			}
		}()
		startErr = connect(cctx, "redis://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), privateDatabases)
		cancel()
		if startErr == nil {
			return nil
		}
		if admin != nil {
			_ = admin.Close()
			admin = nil
		}
		_ = cmd.Process.Kill()
		<-done
		proc = nil
		startErr = fmt.Errorf("redis-server on 127.0.0.1:%d did not start: %w\n%s\nlast lines of %s:\n%s",
			port, startErr, strings.TrimSpace(out.String()), logFile, tail(logFile, 20))
		if ctx.Err() != nil {
			break
		}
	}
	return startErr
}

// waitReady waits until the server answers PING.
func waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := admin.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("no answer to PING: %w", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// dbURL is the server URL pointed at database n.
func dbURL(n int) string {
	u := *server
	u.Path = "/" + strconv.Itoa(n)
	u.RawPath = ""
	q := u.Query()
	q.Del("db") // go-redis would prefer it to the path
	u.RawQuery = q.Encode()
	return u.String()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of the file at path (or why it can't).
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

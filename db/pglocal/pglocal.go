// Package pglocal runs a private PostgreSQL cluster for keyward from the
// system's PostgreSQL server binaries (Debian layout: /usr/lib/postgresql/N/bin).
//
// It owns everything under Options.Dir that concerns the database: the
// cluster's data directory (Dir/pg), the generated password of the "keyward"
// superuser (Dir/pg-password, mode 0600) and the server log (Dir/pg.log). The
// cluster listens on 127.0.0.1 only, on a free port picked at every Start, and
// is reused by the next Start on the same Dir.
//
// PostgreSQL refuses to run as root, so when the process is root the server
// runs as the system user "postgres" (or "keyward-pg", created on demand).
package pglocal

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrBinariesMissing is wrapped by Start's error when initdb and pg_ctl
// cannot be found.
var ErrBinariesMissing = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found")

// debianRoot is where Debian installs PostgreSQL server versions (a
// variable so tests can hide it).
var debianRoot = "/usr/lib/postgresql"

// superuser is the cluster's only role; its password is in Dir/pg-password.
const superuser = "keyward"

// Options configures Start.
type Options struct {
	// Dir holds the cluster (Dir/pg), its password file (Dir/pg-password,
	// 0600) and the server log (Dir/pg.log). It is created 0755 if missing.
	Dir string
	// Fast trades durability for speed (fsync, synchronous_commit and
	// full_page_writes off). For tests only; applied when the cluster is
	// initialised.
	Fast bool
	// Logf, if set, receives progress messages.
	Logf func(format string, args ...any)
}

// Cluster is a running private PostgreSQL server.
type Cluster struct {
	Dir  string // as in Options.Dir
	Port int    // TCP port on 127.0.0.1

	password string
	pgCtl    string              // path of pg_ctl
	initdb   string              // path of initdb
	runAs    *syscall.Credential // nil: run as ourselves
	runAsTag string              // user name for messages
	joined   bool                // another process started the server: Stop leaves it running
}

// runningPort reads the port of a running server from postmaster.pid,
// whose fourth line is the port.
func runningPort(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0, errors.New("pglocal: postmaster.pid too short")
	}
	return strconv.Atoi(strings.TrimSpace(lines[3]))
}

// Start initialises the cluster on first use, then starts it and waits until
// it accepts connections.
func Start(ctx context.Context, opt Options) (*Cluster, error) {
	if opt.Dir == "" {
		return nil, errors.New("pglocal: Options.Dir is empty")
	}
	logf := opt.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dir, err := filepath.Abs(opt.Dir)
	if err != nil {
		return nil, fmt.Errorf("pglocal: %w", err)
	}
	pgCtl, initdb, err := findBinaries()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, pgCtl: pgCtl, initdb: initdb}

	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("pglocal: %w", err)
		}
		if err := os.Chmod(dir, 0o755); err != nil { // undo the umask
			return nil, fmt.Errorf("pglocal: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("pglocal: %w", err)
	}

	initialised := fileExists(filepath.Join(c.dataDir(), "PG_VERSION"))
	if os.Geteuid() == 0 {
		if err := c.chooseRunAs(initialised); err != nil {
			return nil, err
		}
		if err := checkTraversable(dir, c.runAs, c.runAsTag); err != nil {
			return nil, err
		}
	}

	if initialised {
		b, err := os.ReadFile(c.passwordFile())
		if err != nil {
			return nil, fmt.Errorf("pglocal: cluster %s exists but its password file cannot be read: %w", c.dataDir(), err)
		}
		c.password = strings.TrimSpace(string(b))
	} else {
		logf("pglocal: initialising PostgreSQL cluster in %s (%s)", c.dataDir(), initdb)
		if err := c.initCluster(ctx, opt.Fast); err != nil {
			return nil, err
		}
	}
	if err := c.prepareLog(); err != nil {
		return nil, err
	}

	// A server already running on this data dir belongs to another keyward
	// process (serve, while an admin runs `keyward user create`), or was left
	// by a crash. Either way it is usable: join it, and leave it running.
	if _, err := c.runPgCtl(ctx, "status", "-D", c.dataDir()); err == nil {
		if port, perr := runningPort(c.dataDir()); perr == nil {
			c.Port, c.joined = port, true
			if err := c.waitReady(ctx); err == nil {
				logf("pglocal: joined PostgreSQL already running on 127.0.0.1:%d (data %s)", c.Port, c.dataDir())
				return c, nil
			}
		}
		logf("pglocal: stopping unusable PostgreSQL server left running on %s", c.dataDir())
		if out, err := c.runPgCtl(ctx, "stop", "-D", c.dataDir(), "-m", "fast", "-w"); err != nil {
			return nil, fmt.Errorf("pglocal: stopping leftover server: %w: %s", err, oneLine(out))
		}
		c.joined = false
	}

	var startErr error
	for attempt := 0; attempt < 2; attempt++ { // retry once: another process may grab the port first
		if c.Port, err = freePort(); err != nil {
			return nil, fmt.Errorf("pglocal: picking a port: %w", err)
		}
		out, err := c.runPgCtl(ctx, "start", "-D", c.dataDir(), "-l", c.logFile(), "-w", "-t", "60",
			"-o", "-p "+strconv.Itoa(c.Port))
		if err == nil {
			startErr = nil
			break
		}
		startErr = fmt.Errorf("pglocal: pg_ctl start failed: %w: %s", err, oneLine(out))
		if ctx.Err() != nil {
			break
		}
	}
	if startErr != nil {
		return nil, fmt.Errorf("%w\nlast lines of %s:\n%s", startErr, c.logFile(), tail(c.logFile(), 20))
	}
	if err := c.waitReady(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	logf("pglocal: PostgreSQL running on 127.0.0.1:%d (data %s)", c.Port, c.dataDir())
	return c, nil
}

// URL returns the connection URL for database dbname on this cluster.
func (c *Cluster) URL(dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, c.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// EnsureDatabase creates database name unless it exists.
func (c *Cluster) EnsureDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pglocal: %w", err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("pglocal: %w", err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: created concurrently
		return nil
	}
	if err != nil {
		return fmt.Errorf("pglocal: creating database %s: %w", name, err)
	}
	return nil
}

// Stop shuts the server down (fast mode: connections are closed, no crash
// recovery needed next time). Stopping a stopped cluster is not an error, and
// a cluster joined from another process is left running.
func (c *Cluster) Stop() error {
	if c.joined {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := c.runPgCtl(ctx, "stop", "-D", c.dataDir(), "-m", "fast", "-w")
	if err == nil {
		return nil
	}
	if _, serr := c.runPgCtl(ctx, "status", "-D", c.dataDir()); serr != nil {
		return nil // not running
	}
	return fmt.Errorf("pglocal: pg_ctl stop failed: %w: %s", err, oneLine(out))
}

// Restart restarts the server on the same port (fast mode: every
// connection is closed), as an operator's `pg_ctl restart` would. Fault
// tests use it on a cluster of their own.
func (c *Cluster) Restart(ctx context.Context) error {
	if out, err := c.runPgCtl(ctx, "restart", "-D", c.dataDir(), "-l", c.logFile(), "-m", "fast", "-w", "-t", "60",
		"-o", "-p "+strconv.Itoa(c.Port)); err != nil {
		return fmt.Errorf("pglocal: pg_ctl restart failed: %w: %s", err, oneLine(out))
	}
	return c.waitReady(ctx)
}

// Resume starts a stopped cluster again on the port it had, so clients
// holding its URL reconnect.
func (c *Cluster) Resume(ctx context.Context) error {
	if out, err := c.runPgCtl(ctx, "start", "-D", c.dataDir(), "-l", c.logFile(), "-w", "-t", "60",
		"-o", "-p "+strconv.Itoa(c.Port)); err != nil {
		return fmt.Errorf("pglocal: pg_ctl start failed: %w: %s", err, oneLine(out))
	}
	return c.waitReady(ctx)
}

func (c *Cluster) dataDir() string      { return filepath.Join(c.Dir, "pg") }
func (c *Cluster) passwordFile() string { return filepath.Join(c.Dir, "pg-password") }
func (c *Cluster) logFile() string      { return filepath.Join(c.Dir, "pg.log") }

// initCluster creates Dir/pg with initdb and a fresh random password.
func (c *Cluster) initCluster(ctx context.Context, fast bool) error {
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("pglocal: %w", err)
	}
	c.password = hex.EncodeToString(buf)
	if err := os.WriteFile(c.passwordFile(), []byte(c.password+"\n"), 0o600); err != nil {
		return fmt.Errorf("pglocal: writing password file: %w", err)
	}
	if err := os.Chmod(c.passwordFile(), 0o600); err != nil { // if it already existed
		return fmt.Errorf("pglocal: %w", err)
	}

	if err := os.MkdirAll(c.dataDir(), 0o700); err != nil {
		return fmt.Errorf("pglocal: %w", err)
	}
	if err := c.chown(c.dataDir()); err != nil {
		return err
	}

	// initdb reads the password from a file, which must be readable by the
	// user initdb runs as; it lives only until initdb is done.
	pw, err := os.CreateTemp(c.Dir, ".initdb-pw-*")
	if err != nil {
		return fmt.Errorf("pglocal: %w", err)
	}
	defer os.Remove(pw.Name())
	_, err = pw.WriteString(c.password + "\n")
	if cerr := pw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pglocal: %w", err)
	}
	if err := c.chown(pw.Name()); err != nil {
		return err
	}

	args := []string{"-D", c.dataDir(), "-U", superuser, "--auth=scram-sha-256",
		"--pwfile=" + pw.Name(), "-E", "UTF8", "--locale=C"}
	if fast {
		args = append(args, "--no-sync")
	}
	if out, err := c.run(ctx, c.initdb, args...); err != nil {
		return fmt.Errorf("pglocal: initdb failed: %w\n%s", err, strings.TrimSpace(string(out)))
	}

	conf := "\n# added by keyward (pglocal)\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
	if fast {
		conf += "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
	}
	f, err := os.OpenFile(filepath.Join(c.dataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pglocal: %w", err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pglocal: writing postgresql.conf: %w", err)
	}
	return nil
}

// prepareLog makes sure the server (running as runAs) can append to Dir/pg.log.
func (c *Cluster) prepareLog() error {
	f, err := os.OpenFile(c.logFile(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("pglocal: %w", err)
	}
	f.Close()
	return c.chown(c.logFile())
}

// chooseRunAs picks the unprivileged user the server runs as when we are
// root: the owner of an existing cluster, else "postgres", else
// "keyward-pg" (created if needed).
func (c *Cluster) chooseRunAs(initialised bool) error {
	if initialised {
		if fi, err := os.Stat(c.dataDir()); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
				c.runAs = &syscall.Credential{Uid: st.Uid, Gid: st.Gid}
				c.runAsTag = "uid " + strconv.Itoa(int(st.Uid))
				if u, err := user.LookupId(strconv.Itoa(int(st.Uid))); err == nil {
					c.runAsTag = u.Username
				}
				return nil
			}
		}
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		u, err = user.Lookup("keyward-pg")
	}
	if err != nil {
		out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "keyward-pg").CombinedOutput()
		if err != nil {
			return fmt.Errorf("pglocal: PostgreSQL cannot run as root and creating system user keyward-pg failed: %w: %s", err, oneLine(out))
		}
		if u, err = user.Lookup("keyward-pg"); err != nil {
			return fmt.Errorf("pglocal: %w", err)
		}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("pglocal: user %s: %w", u.Username, err)
	}
	c.runAs = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	c.runAsTag = u.Username
	return nil
}

// checkTraversable fails unless the run-as user can reach dir: it needs
// search (x) permission on dir and every directory above it.
func checkTraversable(dir string, cred *syscall.Credential, name string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pglocal: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode().Perm()
		switch {
		case mode&0o001 != 0:
		case ok && st.Uid == cred.Uid && mode&0o100 != 0:
		case ok && st.Gid == cred.Gid && mode&0o010 != 0:
		default:
			return fmt.Errorf("pglocal: PostgreSQL runs as user %s, which cannot enter directory %s (mode %v): set KEYWARD_DATA_DIR to a directory elsewhere (e.g. under /var/lib)", name, d, mode)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// chown gives path to the run-as user (no-op when not root).
func (c *Cluster) chown(path string) error {
	if c.runAs == nil {
		return nil
	}
	if err := os.Chown(path, int(c.runAs.Uid), int(c.runAs.Gid)); err != nil {
		return fmt.Errorf("pglocal: %w", err)
	}
	return nil
}

func (c *Cluster) runPgCtl(ctx context.Context, args ...string) ([]byte, error) {
	return c.run(ctx, c.pgCtl, args...)
}

// run runs one of the server binaries as the run-as user and returns its
// combined output, which never reaches our stdout.
func (c *Cluster) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = "/"
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PG") // PGDATA, PGPORT, ... must not steer the tools
	})
	if c.runAs != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.runAs}
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

// waitReady waits until the server accepts a connection.
func (c *Cluster) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, c.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pglocal: server started but does not accept connections: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pglocal: waiting for server: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// findBinaries returns the paths of pg_ctl and initdb: from the highest
// /usr/lib/postgresql/VERSION/bin that has both, else from PATH (initdb
// preferably next to pg_ctl).
func findBinaries() (pgCtl, initdb string, err error) {
	dirs, _ := filepath.Glob(filepath.Join(debianRoot, "*", "bin"))
	var best string
	var bestVer []int
	for _, d := range dirs {
		if !fileExists(filepath.Join(d, "pg_ctl")) || !fileExists(filepath.Join(d, "initdb")) {
			continue
		}
		v := parseVersion(filepath.Base(filepath.Dir(d)))
		if best == "" || slices.Compare(v, bestVer) > 0 {
			best, bestVer = d, v
		}
	}
	if best != "" {
		return filepath.Join(best, "pg_ctl"), filepath.Join(best, "initdb"), nil
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if q := filepath.Join(filepath.Dir(p), "initdb"); fileExists(q) {
			return p, q, nil
		}
		if q, err := exec.LookPath("initdb"); err == nil {
			return p, q, nil
		}
	}
	return "", "", fmt.Errorf("%w: install Debian's postgresql package (apt-get install postgresql), or set KEYWARD_DATABASE_URL", ErrBinariesMissing)
}

// parseVersion turns "15" or "9.6" into comparable numbers; junk counts as -1.
func parseVersion(s string) []int {
	var v []int
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			n = -1
		}
		v = append(v, n)
	}
	return v
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// oneLine squeezes command output into a single line for an error message.
func oneLine(b []byte) string {
	return strings.Join(strings.Fields(string(b)), " ")
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
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

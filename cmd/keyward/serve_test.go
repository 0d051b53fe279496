package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestServeEmbeddedFirstRun builds the binary and runs `keyward serve` as
// `make run` does: no database configured, so it starts its own cluster,
// migrates, seeds the demo tenant and prints how to sign in, after every
// start-up log line. Development logs are text and leave successful
// requests out. SIGTERM stops it cleanly; a second start, with JSON logs,
// reuses the cluster, seeds nothing and says how to get a new password,
// which the command it prints does while the server runs.
func TestServeEmbeddedFirstRun(t *testing.T) {
	bin := buildKeyward(t)
	dataDir, err := os.MkdirTemp("", "kwserve")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dataDir, 0o755) // the cluster may run as another user
	t.Cleanup(func() { os.RemoveAll(dataDir) })

	addr := freeAddr(t)

	// start runs serve with stdout and stderr into out and errOut; the
	// same buffer for both keeps the order in which they were written.
	start := func(out, errOut *syncBuffer, env ...string) *exec.Cmd {
		cmd := exec.Command(bin, "serve", "--addr", addr, "--data-dir", dataDir)
		cmd.Env = append(os.Environ(), append([]string{"KEYWARD_DATABASE_URL=", "KEYWARD_MODE=development", "KEYWARD_LOG_FORMAT="}, env...)...)
		cmd.Stdout, cmd.Stderr = out, errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	get := func(path string, want int) string {
		t.Helper()
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("GET %s: %d, want %d", path, res.StatusCode, want)
		}
		return string(body)
	}
	stop := func(cmd *exec.Cmd) {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("serve exited with %v after SIGTERM", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("serve did not stop after SIGTERM")
		}
	}
	const missing = "/static/no-such-file.css"

	// First start, text logs.
	var both syncBuffer
	cmd := start(&both, &both)
	waitReady(t, addr)
	get("/healthz", http.StatusOK)
	get("/login", http.StatusOK)
	get(missing, http.StatusNotFound)
	// Unlogged, yet counted.
	if m := get("/metrics", http.StatusOK); !strings.Contains(m, `keyward_http_requests_total{method="GET",route="/healthz",status="200"} 1`) {
		t.Errorf("GET /healthz was not counted:\n%s", m)
	}
	stop(cmd)
	if _, err := os.Stat(filepath.Join(dataDir, "pg", "postmaster.pid")); !os.IsNotExist(err) {
		t.Error("the embedded cluster is still running after shutdown")
	}
	text := both.String()
	top, rest, ok := strings.Cut(text, "\n─── Keyward is ready ")
	if !ok {
		t.Fatalf("no first-run banner in:\n%s", text)
	}
	banner, after, ok := strings.Cut(rest, "\n"+strings.Repeat("─", bannerWidth)+"\n")
	if !ok {
		t.Fatalf("the banner does not end with a rule:\n%s", text)
	}
	if !strings.Contains(banner, "http://"+addr+"/login") || !strings.Contains(banner, "owner@demo.keyward.test") ||
		!regexp.MustCompile(`\n    Password +[A-Z2-7]{26}\n`).MatchString(banner) {
		t.Errorf("first-run banner: %q", banner)
	}
	if !strings.HasSuffix(top, "\n") || !strings.Contains(top, `msg="keyward listening"`) || !strings.Contains(top, "migration applied") {
		t.Errorf("the start-up lines do not all come before the banner, after a blank line:\n%s", text)
	}
	// After the banner: the 404's line first, then only the shutdown.
	lines := strings.Split(strings.TrimSpace(after), "\n")
	if len(lines) == 0 || !strings.Contains(lines[0], "path="+missing) || !strings.Contains(lines[0], "status=404") {
		t.Errorf("the first line after the banner is not the failed request's:\n%s", after)
	}
	for _, l := range append(strings.Split(strings.TrimSpace(top), "\n"), lines...) {
		if !strings.HasPrefix(l, "time=") || !strings.Contains(l, " level=") {
			t.Errorf("not a text log line: %q", l)
		}
	}
	for _, ok := range []string{"/healthz", "path=/login", "/readyz", "/metrics"} {
		if strings.Contains(after, ok) {
			t.Errorf("development logged a successful request to %s:\n%s", ok, after)
		}
	}

	// Second start, JSON logs: the banner on stdout, only JSON on stderr.
	var out, errOut syncBuffer
	cmd = start(&out, &errOut, "KEYWARD_LOG_FORMAT=json")
	waitReady(t, addr)
	get("/healthz", http.StatusOK)
	get(missing, http.StatusNotFound)
	banner = out.String()
	reset := regexp.MustCompile(`(?m)^    keyward (user reset-password --tenant demo --email owner@demo.keyward.test --data-dir \S+)$`).FindStringSubmatch(banner)
	if !strings.Contains(banner, "Keyward is running") || !strings.Contains(banner, "http://"+addr+"/login") || reset == nil {
		t.Fatalf("second-start banner: %q", banner)
	}
	if regexp.MustCompile(`Password +[A-Z2-7]{26}`).MatchString(banner) {
		t.Error("the second start printed demo credentials again")
	}
	// The printed command works while serve runs: it joins the cluster.
	rc := exec.Command(bin, strings.Fields(reset[1])...)
	rc.Env = append(os.Environ(), "KEYWARD_DATABASE_URL=")
	pw, err := rc.Output()
	if err != nil || !regexp.MustCompile(`^[A-Z2-7]{26}\n$`).Match(pw) {
		t.Errorf("%s: %v %q", reset[1], err, pw)
	}
	stop(cmd)
	var sawFailed bool
	for _, l := range strings.Split(strings.TrimSpace(errOut.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("not a JSON log line: %q", l)
			continue
		}
		if rec["msg"] == "request" {
			if rec["path"] != missing || rec["status"] != 404.0 {
				t.Errorf("development logged a request it should not have: %q", l)
			}
			sawFailed = true
		}
	}
	if !sawFailed {
		t.Errorf("no JSON line for the failed request:\n%s", errOut.String())
	}
}

// syncBuffer is a bytes.Buffer that a child's stdout and stderr copiers
// can write to at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// buildKeyward builds the binary into the test's temporary directory.
func buildKeyward(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "keyward")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitReady waits until the server at addr answers /readyz.
func waitReady(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get("http://" + addr + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("keyward serve did not become ready")
}

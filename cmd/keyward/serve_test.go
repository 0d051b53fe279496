package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeEmbeddedFirstRun builds the binary and runs `keyward serve` as
// `make run` does: no database configured, so it starts its own cluster,
// migrates, seeds the demo tenant and prints how to sign in. SIGTERM stops
// it cleanly; a second start reuses the cluster and seeds nothing.
func TestServeEmbeddedFirstRun(t *testing.T) {
	bin := buildKeyward(t)
	dataDir, err := os.MkdirTemp("", "kwserve")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dataDir, 0o755) // the cluster may run as another user
	t.Cleanup(func() { os.RemoveAll(dataDir) })

	addr := freeAddr(t)

	start := func() (*exec.Cmd, *bufio.Reader) {
		cmd := exec.Command(bin, "serve", "--addr", addr, "--data-dir", dataDir)
		cmd.Env = append(os.Environ(), "KEYWARD_DATABASE_URL=", "KEYWARD_MODE=development")
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, bufio.NewReader(stdout)
	}
	waitReady := func() { waitReady(t, addr) }
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

	cmd, out := start()
	waitReady()
	banner := make([]byte, 4096)
	n, _ := out.Read(banner)
	text := string(banner[:n])
	if !strings.Contains(text, "http://"+addr+"/login") || !regexp.MustCompile(`Password\s+[A-Z2-7]{26}`).MatchString(text) {
		t.Fatalf("first-run banner: %q", text)
	}
	res, err := http.Get("http://" + addr + "/login")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /login: %v %v", res, err)
	}
	res.Body.Close()
	stop(cmd)
	if _, err := os.Stat(filepath.Join(dataDir, "pg", "postmaster.pid")); !os.IsNotExist(err) {
		t.Error("the embedded cluster is still running after shutdown")
	}

	cmd, out = start()
	waitReady()
	stop(cmd)
	rest, _ := io.ReadAll(out)
	if strings.Contains(string(rest), "Password") {
		t.Error("the second start printed demo credentials again")
	}
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

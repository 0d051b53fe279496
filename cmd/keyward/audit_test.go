package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"keyward/db/dbtest"
	"keyward/web/audit"
	"keyward/web/keyring"
)

// TestAuditCheckpointsEndToEnd: serve, stopped, logs a checkpoint of each
// chain that changed; `audit verify --checkpoints` accepts those log
// lines. Events then cut off the end of a chain, its head moved back with
// them, pass plain `audit verify`, and not `--checkpoints`. `audit
// public-key` prints the key the checkpoints verify with.
func TestAuditCheckpointsEndToEnd(t *testing.T) {
	url := dbtest.NewURL(t)
	if code, _, stderr := keyward(t, url, "", "tenant", "create", "--slug", "acme", "--name", "Acme"); code != 0 {
		t.Fatalf("tenant create: %s", stderr)
	}
	for _, email := range []string{"ann@acme.test", "bob@acme.test"} {
		if code, _, stderr := keyward(t, url, "", "user", "create", "--tenant", "acme", "--email", email); code != 0 {
			t.Fatalf("user create: %s", stderr)
		}
	}

	// serve, in process, until it is stopped as by SIGTERM.
	addr := freeAddr(t)
	ctx, stop := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, []string{"serve", "--addr", addr}, strings.NewReader(""), &out, &errOut) }()
	waitReady(t, addr)
	stop()
	if code := <-exited; code != 0 {
		t.Fatalf("serve: exit %d\n%s", code, errOut.String())
	}
	log := filepath.Join(t.TempDir(), "checkpoints.log")
	var lines []string
	for _, l := range strings.Split(errOut.String(), "\n") {
		if strings.Contains(l, `msg="audit checkpoint"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d checkpoint lines at shutdown, want one (one chain):\n%s", len(lines), errOut.String())
	}
	if err := os.WriteFile(log, []byte(errOut.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := keyward(t, url, "", "audit", "verify", "--checkpoints", log)
	if code != 0 || !strings.Contains(stdout, "ok: 4 events in 1 chains") || !strings.Contains(stdout, "ok: 1 checkpoints") {
		t.Fatalf("verify --checkpoints: %d %q %q", code, stdout, stderr)
	}

	if code, _, stderr := keyward(t, url, "no checkpoint here\n", "audit", "verify", "--checkpoints", "-"); code != 1 || !strings.Contains(stderr, "no audit checkpoint in -") {
		t.Errorf("verify --checkpoints with none: %d %q", code, stderr)
	}

	// Cut the user events and the checkpoint, and move the head back to
	// the tenant's creation, as a superuser can.
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	err = pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		for _, sql := range []string{
			`SET LOCAL session_replication_role = replica`,
			`DELETE FROM audit_events WHERE seq > 1`,
			`UPDATE audit_chain_heads h SET seq = 1, hash = e.hash FROM audit_events e WHERE e.chain_id = h.chain_id AND e.seq = 1`,
		} {
			if _, err := tx.Exec(context.Background(), sql); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if code, stdout, _ := keyward(t, url, "", "audit", "verify"); code != 0 || !strings.Contains(stdout, "ok: 1 events") {
		t.Fatalf("plain verify of the cut chain: %d %q", code, stdout)
	}
	code, stdout, stderr = keyward(t, url, strings.Join(lines, "\n"), "audit", "verify", "--checkpoints", "-")
	if code != 1 || !strings.Contains(stdout, "BROKEN: checkpoint of tenant") || !strings.Contains(stdout, "no event at seq 3") {
		t.Fatalf("verify --checkpoints of the cut chain: %d %q %q", code, stdout, stderr)
	}

	// The printed key is the one the checkpoints are signed with.
	cps, err := audit.ParseCheckpoints(strings.NewReader(lines[0]))
	if err != nil || len(cps) != 1 {
		t.Fatal(cps, err)
	}
	code, stdout, _ = keyward(t, "", "", "audit", "public-key")
	block, _ := pem.Decode([]byte(stdout))
	if code != 0 || block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("public-key: %d %q", code, stdout)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if k, ok := pub.(ed25519.PublicKey); err != nil || !ok || !ed25519.Verify(k, cps[0].Message(), cps[0].Signature) {
		t.Fatalf("the PEM key does not verify the checkpoint (%v)", err)
	}
	code, stdout, _ = keyward(t, "", "", "audit", "public-key", "--base64")
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(stdout))
	if code != 0 || err != nil || !bytes.Equal(raw, pub.(ed25519.PublicKey)) {
		t.Fatalf("public-key --base64: %d %q", code, stdout)
	}
	ring, _ := keyring.New([]byte(testSecret))
	if !bytes.Equal(raw, audit.NewKeys(ring).PublicKey()) {
		t.Fatal("the printed key is not the one derived from KEYWARD_SECRET_KEY")
	}
}

// TestAuditCommandsNeedTheServersSecret: with no KEYWARD_SECRET_KEY and no
// secret in the data dir, verify and public-key refuse rather than
// check with a new secret, and so do the commands that write events to an
// external database.
func TestAuditCommandsNeedTheServersSecret(t *testing.T) {
	t.Setenv("KEYWARD_SECRET_KEY", "")
	dir := t.TempDir()
	for _, args := range [][]string{
		{"audit", "verify", "--data-dir", dir},
		{"audit", "public-key", "--data-dir", dir},
		{"tenant", "create", "--slug", "acme", "--name", "Acme", "--data-dir", dir},
	} {
		code, _, stderr := keyward(t, "postgres://unused", "", args...)
		if code != 1 || !strings.Contains(stderr, "KEYWARD_SECRET_KEY is not set") {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a secret was made in the data dir: %v", entries)
	}
}

package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"keyward/db"
	"keyward/web/mfa"
	"keyward/web/webtest"
)

// TestWebhookDeliverySurvivesSIGKILL: a key created through the portal
// of a real keyward serve commits its audit event and, in the same
// transaction, a delivery to the endpoint subscribed to it. The receiver
// holds the first attempt unanswered, and the server is killed with
// SIGKILL while it waits: committed, not delivered. A new server started
// on the database delivers the event, with the same webhook-id and the
// same body, signed so that a Standard Webhooks check passes.
//
// The kill happens after River fetched the job, the harder case: the job
// stays "running" in the database, and River hands it out again only
// after its rescuer finds it older than RescueStuckJobsAfter (an hour by
// default). The server reads KEYWARD_TEST_JOB_RESCUE_AFTER, for this test
// only, to make that 3 seconds. The new server's rescuer runs once it is
// elected leader (the killed leader's lease runs out first, about 15
// seconds), and leaves a job alone for its worker's timeout too (15
// seconds for a delivery), then every 30 seconds.
// Killing before the fetch would prove less: such a job is simply
// available to the next server.
func TestWebhookDeliverySurvivesSIGKILL(t *testing.T) {
	const secret = "sigkill-webhook-test-secret-key-0123456789abcdef"
	dbURL, store := freshStore(t)
	ctx := context.Background()
	_, owner, totp, recovery := enrolledOwner(t, store, secret, "crash")

	rcv := webtest.NewReceiver(t, false)
	rcv.Hang.Store(true)
	began := time.Now()
	bin := buildKeyward(t)
	t.Logf("built in %v", time.Since(began).Round(time.Second))
	start := func() (string, *exec.Cmd, *syncBuffer) {
		addr := freeAddr(t)
		cmd := exec.Command(bin, "serve", "--addr", addr)
		cmd.Env = append(os.Environ(), "KEYWARD_DATABASE_URL="+dbURL, "KEYWARD_SECRET_KEY="+secret, "KEYWARD_MODE=development",
			"KEYWARD_TEST_JOB_RESCUE_AFTER=3s")
		logs := &syncBuffer{}
		cmd.Stderr = logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		waitReady(t, addr)
		return "http://" + addr, cmd, logs
	}
	base, first, _ := start()

	c := webtest.NewClient(t, base)
	c.Get("/login")
	if r := c.PostForm("/login", url.Values{"email": {owner.Email}, "password": {webtest.Password}}); r.Path != "/login/totp" {
		t.Fatalf("password step: %d %s", r.Status, r.Path)
	}
	code, _ := mfa.CodeFor(totp, time.Now())
	if r := c.PostForm("/login/totp", url.Values{"code": {code}}); r.Path != "/settings/developers/api-keys" {
		t.Fatalf("TOTP step: %d %s", r.Status, r.Path)
	}
	c.Get("/settings/developers/webhooks")
	r := c.PostForm("/settings/developers/webhooks", url.Values{"url": {rcv.Server.URL + "/hook"}, "actions": {"api_key.created"}, "code": {recovery[0]}})
	m := regexp.MustCompile(`data-testid="webhook-secret">(whsec_[A-Za-z0-9+/=]+)<`).FindStringSubmatch(r.Body)
	if r.Status != 200 || m == nil {
		t.Fatalf("registering the endpoint: %d %s", r.Status, r.Body)
	}
	whsec := m[1]
	c.Get("/settings/developers/api-keys/new")
	if r := c.PostForm("/settings/developers/api-keys", url.Values{"name": {"Crash"}, "environment": {"staging"}, "preset": {"full_access"},
		"code": {recovery[1]}}); r.Status != 200 {
		t.Fatalf("creating a key: %d %s", r.Status, r.Body)
	}

	// The first attempt reaches the receiver, which holds it: kill now.
	rcv.Wait(t, 1)
	if err := first.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	var state string
	if err := store.Pool.QueryRow(ctx, `SELECT state FROM river_job WHERE kind = 'webhook_delivery'`).Scan(&state); err != nil || state != "running" {
		t.Fatalf("after the kill the delivery is %q (%v), want running", state, err)
	}
	if n := count(t, store.Pool, `SELECT count(*) FROM webhook_attempts`); n != 0 {
		t.Fatalf("%d attempts recorded before the kill; the attempt should have died with the server", n)
	}

	rcv.Hang.Store(false)
	killed := time.Now()
	_, _, logs := start()
	t.Logf("second server ready %v after the kill", time.Since(killed).Round(time.Second))
	got := rcv.Wait(t, 2)
	t.Logf("delivered %v after the kill", time.Since(killed).Round(time.Second))
	if a, b := got[0].Header.Get("webhook-id"), got[1].Header.Get("webhook-id"); a == "" || a != b {
		t.Fatalf("webhook-id %q before the kill, %q after", a, b)
	}
	if !bytes.Equal(got[0].Body, got[1].Body) {
		t.Fatalf("the body changed across the restart:\n%s\n%s", got[0].Body, got[1].Body)
	}
	if err := webtest.VerifyStandardWebhook(whsec, got[1].Header, got[1].Body, time.Now()); err != nil {
		t.Fatalf("the delivery after the restart does not verify: %v", err)
	}
	for deadline := time.Now().Add(20 * time.Second); count(t, store.Pool, `SELECT count(*) FROM river_job WHERE kind = 'webhook_delivery' AND state = 'completed'`) != 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the delivery did not complete; server log:\n%s", logs.String())
		}
	}
	if n := count(t, store.Pool, `SELECT count(*) FROM webhook_attempts WHERE status_code = 200`); n != 1 {
		t.Errorf("%d successful attempts recorded, want 1", n)
	}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCommandEventsReachWebhooks: an event a command writes (a member
// disabled from the command line) is enqueued for the endpoints that
// subscribe to it, in the command's transaction, as the server's are.
func TestCommandEventsReachWebhooks(t *testing.T) {
	dbURL, store := freshStore(t)
	ctx := context.Background()
	if code, _, stderr := keyward(t, dbURL, "", "tenant", "create", "--slug", "acme", "--name", "Acme"); code != 0 {
		t.Fatalf("tenant create: %s", stderr)
	}
	tn, err := store.GetTenantBySlug(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	// The endpoint as the portal stores it; this test only looks at what
	// is enqueued, so its secret is never opened.
	ep, err := store.CreateWebhookEndpoint(ctx, db.CreateWebhookEndpointParams{ID: "7c4f3f43-8a53-4a36-9d77-8a0a3a1b2c3d", TenantID: tn.ID,
		Url: "https://hooks.example.com/k", Actions: []string{"user.created", "user.disabled"}, SecretSealed: []byte("sealed"), Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"user", "create", "--tenant", "acme", "--email", "olga@acme.test", "--role", "owner"},
		{"user", "create", "--tenant", "acme", "--email", "ann@acme.test", "--role", "admin"},
		{"user", "disable", "--tenant", "acme", "--email", "ann@acme.test"},
	} {
		if code, _, stderr := keyward(t, dbURL, "", args...); code != 0 {
			t.Fatalf("%v: %s", args, stderr)
		}
	}
	rows, err := store.Pool.Query(ctx, `SELECT args->>'type' FROM river_job WHERE kind = 'webhook_delivery' AND args->>'endpoint_id' = $1 ORDER BY id`, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		types = append(types, s)
	}
	if strings.Join(types, " ") != "user.created user.created user.disabled" {
		t.Errorf("deliveries enqueued by the commands: %v", types)
	}
}

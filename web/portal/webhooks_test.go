package portal_test

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/jobs"
	"keyward/web/webhook"
	"keyward/web/webtest"
)

var (
	webhookSecretRe = regexp.MustCompile(`data-testid="webhook-secret">(whsec_[A-Za-z0-9+/=]+)<`)
	webhookIDRe     = regexp.MustCompile(`href="/settings/developers/webhooks/([0-9a-f-]{36})"`)
)

// startJobs runs the application's River jobs, deliveries included, with
// e's clock, until the test ends.
func startJobs(t *testing.T, e *webtest.Env) *jobs.Runner {
	t.Helper()
	r, err := jobs.New(jobs.Config{Store: e.Store, Sessions: e.App.Sessions, Retention: 24 * time.Hour,
		Log: slog.New(slog.NewJSONHandler(e.Logs, nil)), Now: e.Clock.Now, Audit: e.App.Audit, Webhooks: e.App.Webhooks})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop(context.Background()) })
	return r
}

// registerWebhook registers an endpoint through the portal and returns its
// id and the secret the reveal page shows.
func (a *admin) registerWebhook(t *testing.T, u string, actions ...string) (string, string) {
	t.Helper()
	a.c.Get("/settings/developers/webhooks")
	r := a.c.PostForm("/settings/developers/webhooks", url.Values{"url": {u}, "actions": actions, "code": {a.e.NextCode(a.secret)}})
	m, id := webhookSecretRe.FindStringSubmatch(r.Body), webhookIDRe.FindStringSubmatch(r.Body)
	if r.Status != http.StatusOK || m == nil || id == nil {
		t.Fatalf("register %s: %d %s", u, r.Status, r.Body)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("the reveal page's Cache-Control is %q, want no-store", cc)
	}
	return id[1], m[1]
}

// TestWebhookDeliveries: an owner registers an endpoint (TOTP); its secret
// is shown once. A key created through the portal is delivered, signed so
// that the test's own Standard Webhooks check passes; the receiver's
// first answer, a 500, is retried under the same webhook-id, and both
// attempts are recorded and shown, the answer escaped. The test button
// delivers. Then, with every answer a 500, the clock moved 3 days past
// the first failure makes the next attempt disable the endpoint, audited
// by the system, its pending deliveries cancelled, and nothing more is
// enqueued for it.
func TestWebhookDeliveries(t *testing.T) {
	e := webtest.New(t)
	olga := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	rcv := webtest.NewReceiver(t, false)
	startJobs(t, e)

	id, secret := olga.registerWebhook(t, rcv.Server.URL+"/hook?token=s3cr3t", "api_key.created", "api_key.revoked")
	page := olga.c.Get("/settings/developers/webhooks/" + id)
	list := olga.c.Get("/settings/developers/webhooks")
	for _, r := range []webtest.Response{page, list} {
		if r.Status != 200 || strings.Contains(r.Body, secret) || strings.Contains(r.Body, strings.TrimPrefix(secret, "whsec_")) {
			t.Fatalf("%s: %d, or it shows the secret again", r.Path, r.Status)
		}
	}
	if !strings.Contains(list.Body, rcv.Server.URL+"/hook?token=s3cr3t") || !strings.Contains(list.Body, `data-testid="webhook-status">active<`) {
		t.Errorf("the list does not show the endpoint as active: %s", list.Body)
	}
	var diff string
	if err := e.Store.Pool.QueryRow(context.Background(), `SELECT diff::text FROM audit_events WHERE action = 'webhook.created' AND target_id = $1`, id).Scan(&diff); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(diff, "s3cr3t") || strings.Contains(diff, "/hook") || !strings.Contains(diff, `"origin":"`+rcv.Server.URL+`"`) || strings.Contains(diff, "whsec_") {
		t.Errorf("webhook.created's diff keeps the URL's path or query, or a secret: %s", diff)
	}

	// A 500 first, then a 200: the same delivery twice.
	rcv.Status.Store(http.StatusInternalServerError)
	keyID, fullKey := olga.create(t, keyForm("Alerted"))
	rcv.Wait(t, 1)
	rcv.Status.Store(http.StatusOK)
	got := rcv.Wait(t, 2)
	if got[0].Header.Get("webhook-id") != got[1].Header.Get("webhook-id") || string(got[0].Body) != string(got[1].Body) {
		t.Fatalf("the retry is not the same delivery: %q %q", got[0].Header.Get("webhook-id"), got[1].Header.Get("webhook-id"))
	}
	for i, d := range got {
		if err := webtest.VerifyStandardWebhook(secret, d.Header, d.Body, e.Clock.Now()); err != nil {
			t.Errorf("delivery %d does not verify: %v", i, err)
		}
	}
	tampered := append([]byte(nil), got[1].Body...)
	tampered[len(tampered)-2] ^= 1
	if webtest.VerifyStandardWebhook(secret, got[1].Header, tampered, e.Clock.Now()) == nil {
		t.Fatal("the verification accepts a tampered body: it proves nothing")
	}
	var p struct {
		Type      string    `json:"type"`
		Timestamp time.Time `json:"timestamp"`
		Data      struct {
			Action string `json:"action"`
			Actor  struct{ Type, ID string }
			Target struct{ Type, ID string }
			Diff   map[string]any `json:"diff"`
			Chain  struct {
				ID, Seq int64
				Hash    []byte
			} `json:"chain"`
		} `json:"data"`
	}
	if err := json.Unmarshal(got[1].Body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "api_key.created" || p.Data.Action != p.Type || p.Data.Target.ID != keyID || p.Data.Actor.Type != "user" ||
		p.Data.Chain.ID != e.Tenant.ID || p.Data.Chain.Seq < 1 || len(p.Data.Chain.Hash) != 32 || p.Timestamp.IsZero() || p.Data.Diff["name"] == nil {
		t.Errorf("the payload: %s", got[1].Body)
	}
	var hash []byte
	if err := e.Store.Pool.QueryRow(context.Background(), `SELECT hash FROM audit_events WHERE chain_id = $1 AND seq = $2`, p.Data.Chain.ID, p.Data.Chain.Seq).Scan(&hash); err != nil || string(hash) != string(p.Data.Chain.Hash) {
		t.Errorf("the payload's chain place is not the event's: %v", err)
	}
	if strings.Contains(string(got[1].Body), fullKey) || strings.Contains(string(got[1].Body), "whsec_") {
		t.Error("a delivery carries a secret")
	}
	if got[0].Header.Get("User-Agent") == "" || got[0].Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers: %v", got[0].Header)
	}
	waitFor(t, "both attempts recorded", func() bool {
		return count(t, e, `SELECT count(*) FROM webhook_attempts WHERE endpoint_id = $1`, id) == 2
	})
	page = olga.c.Get("/settings/developers/webhooks/" + id)
	for _, want := range []string{`data-testid="attempt-status">500<`, `data-testid="attempt-status">200<`, "&lt;b&gt;not today&lt;/b&gt;",
		got[0].Header.Get("webhook-id")} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("the endpoint's page lacks %q", want)
		}
	}
	if strings.Contains(page.Body, "<b>not today</b>") {
		t.Error("the page renders the receiver's answer as HTML")
	}

	// The test button.
	r := olga.c.PostForm("/settings/developers/webhooks/"+id+"/test", url.Values{})
	if r.Status != 200 || r.Path != "/settings/developers/webhooks/"+id || !strings.Contains(r.Body, "test event") {
		t.Fatalf("test event: %d %s", r.Status, r.Path)
	}
	got = rcv.Wait(t, 3)
	if !strings.Contains(string(got[2].Body), `"type":"webhook.test"`) || webtest.VerifyStandardWebhook(secret, got[2].Header, got[2].Body, e.Clock.Now()) != nil {
		t.Errorf("the test event: %s", got[2].Body)
	}

	// Failing for 3 days disables the endpoint.
	rcv.Status.Store(http.StatusServiceUnavailable)
	olga.create(t, keyForm("Unheard"))
	rcv.Wait(t, 4)
	waitFor(t, "the failure recorded", func() bool {
		return count(t, e, `SELECT count(*) FROM webhook_endpoints WHERE id = $1 AND failing_since IS NOT NULL`, id) == 1
	})
	e.Clock.Advance(webhook.DisableAfter + time.Minute)
	waitFor(t, "the endpoint disabled", func() bool {
		return count(t, e, `SELECT count(*) FROM webhook_endpoints WHERE id = $1 AND NOT enabled`, id) == 1
	})
	if n := count(t, e, `SELECT count(*) FROM audit_events WHERE action = 'webhook.disabled' AND actor_type = 'system' AND target_id = $1`, id); n != 1 {
		t.Errorf("%d webhook.disabled events by the system, want 1", n)
	}
	waitFor(t, "its delivery cancelled", func() bool {
		return count(t, e, `SELECT count(*) FROM river_job WHERE kind = 'webhook_delivery' AND state NOT IN ('completed', 'cancelled', 'discarded')`) == 0
	})
	jobsBefore := count(t, e, `SELECT count(*) FROM river_job WHERE kind = 'webhook_delivery'`)
	olga = &admin{e: e, c: e.SignIn("olga@acme.test", olga.secret), secret: olga.secret} // the clock ended the session
	olga.create(t, keyForm("After"))
	if n := count(t, e, `SELECT count(*) FROM river_job WHERE kind = 'webhook_delivery'`); n != jobsBefore {
		t.Errorf("a disabled endpoint got %d new deliveries", n-jobsBefore)
	}
	page = olga.c.Get("/settings/developers/webhooks/" + id)
	if !strings.Contains(page.Body, `data-testid="webhook-status">disabled<`) || !strings.Contains(page.Body, "every delivery failed since") {
		t.Errorf("the page does not show the endpoint disabled with its reason")
	}
}

// TestWebhookEditDeleteAndForm: the form's errors come all at once, a
// missing code among them, and before a code is spent; an edit turns the
// endpoint off (webhook.disabled by the owner) and on (webhook.updated);
// a delete removes it (webhook.deleted). Each needs a code. The endpoint's
// URL, a Zapier-style one with its token in the path, reaches neither the
// audit trail nor the session's flash: they name its scheme and host and
// the fingerprint its page shows.
func TestWebhookEditDeleteAndForm(t *testing.T) {
	const zap = "https://hooks.zapier.com/hooks/catch/123/abcsecret/"
	e := webtest.New(t)
	olga := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	olga.c.Get("/settings/developers/webhooks")
	r := olga.c.PostForm("/settings/developers/webhooks", url.Values{"url": {"ftp://x"}, "actions": {"nope"}, "code": {""}})
	if r.Status != 400 || !strings.Contains(r.Body, `id="err-url"`) || !strings.Contains(r.Body, `id="err-actions"`) || !strings.Contains(r.Body, `id="err-code"`) {
		t.Fatalf("bad form: %d %s", r.Status, r.Body)
	}
	r = olga.c.PostForm("/settings/developers/webhooks", url.Values{"url": {"ftp://x"}, "actions": {"nope"}, "code": {"000000"}})
	if r.Status != 400 || !strings.Contains(r.Body, `id="err-url"`) || strings.Contains(r.Body, `id="err-code"`) {
		t.Fatalf("bad form with a code: %d", r.Status)
	}
	if n := count(t, e, `SELECT count(*) FROM audit_events WHERE action = 'auth.mfa.failed'`); n != 0 {
		t.Error("a form with errors spent the code")
	}
	id, _ := olga.registerWebhook(t, zap, "api_key.revoked")
	path := "/settings/developers/webhooks/" + id
	page := olga.c.Get(path)
	fp := regexp.MustCompile(`data-testid="webhook-fingerprint">([0-9a-f]{8})<`).FindStringSubmatch(page.Body)
	if fp == nil {
		t.Fatal("the endpoint's page shows no fingerprint")
	}
	if r := olga.c.PostForm(path, url.Values{"url": {zap}, "actions": {"api_key.revoked"}, "code": {"000000"}}); r.Status != 401 {
		t.Errorf("an edit with a wrong code: %d", r.Status)
	}
	off := olga.c.PostForm(path, url.Values{"url": {zap}, "actions": {"api_key.revoked", "api_key.leaked"}, "code": {e.NextCode(olga.secret)}})
	if off.Status != 200 || !strings.Contains(off.Body, `data-testid="webhook-status">disabled<`) {
		t.Fatalf("turning it off: %d", off.Status)
	}
	on := olga.c.PostForm(path, url.Values{"url": {zap + "v2"}, "actions": {"api_key.revoked"}, "enabled": {"on"}, "code": {e.NextCode(olga.secret)}})
	if on.Status != 200 || !strings.Contains(on.Body, `data-testid="webhook-status">active<`) {
		t.Fatalf("turning it on: %d", on.Status)
	}
	del := olga.c.PostForm(path+"/delete", url.Values{"code": {e.NextCode(olga.secret)}})
	if del.Status != 200 || del.Path != "/settings/developers/webhooks" || strings.Contains(del.Body, "webhook-row") {
		t.Fatalf("delete: %d %s", del.Status, del.Path)
	}
	if !strings.Contains(del.Body, "https://hooks.zapier.com/… (fingerprint ") || strings.Contains(del.Body, "abcsecret") {
		t.Errorf("the delete's flash names the URL otherwise: %s", del.Body)
	}
	for action, want := range map[string]int{"webhook.created": 1, "webhook.disabled": 1, "webhook.updated": 1, "webhook.deleted": 1} {
		if n := count(t, e, `SELECT count(*) FROM audit_events WHERE action = $1 AND actor_type = 'user' AND target_id = $2`, action, id); n != want {
			t.Errorf("%s: %d events, want %d", action, n, want)
		}
	}
	rows, err := e.Store.Pool.Query(context.Background(), `SELECT action, diff::text FROM audit_events WHERE action LIKE 'webhook.%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var action, diff string
		if err := rows.Scan(&action, &diff); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(diff, "abcsecret") || strings.Contains(diff, "/hooks/catch") {
			t.Errorf("%s keeps the URL's path: %s", action, diff)
		}
		if action != "webhook.disabled" && !strings.Contains(diff, `"origin":"https://hooks.zapier.com","fingerprint":"`) ||
			action == "webhook.created" && !strings.Contains(diff, fp[1]) {
			t.Errorf("%s does not name the endpoint by origin and fingerprint %s: %s", action, fp[1], diff)
		}
	}
	if r := olga.c.Get(path); r.Status != 404 {
		t.Errorf("a deleted endpoint's page: %d", r.Status)
	}
}

// TestWebhookTestEventLimits: one test event per endpoint waits at a
// time, and at most 5 a minute are sent; each refusal says why.
func TestWebhookTestEventLimits(t *testing.T) {
	e := webtest.New(t)
	olga := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	id, _ := olga.registerWebhook(t, "http://127.0.0.1:9/h", "api_key.revoked")
	path := "/settings/developers/webhooks/" + id
	olga.c.Get(path)
	send := func() webtest.Response { return olga.c.PostForm(path+"/test", url.Values{}) }
	finish := func() { // as the worker would, with no receiver to wait for
		if _, err := e.Store.Pool.Exec(context.Background(), `UPDATE river_job SET state = 'completed', finalized_at = now() WHERE kind = 'webhook_delivery' AND state = 'available'`); err != nil {
			t.Fatal(err)
		}
	}
	if r := send(); r.Status != 200 || !strings.Contains(r.Body, "test event is on its way") {
		t.Fatalf("first test: %d", r.Status)
	}
	if r := send(); r.Status != 409 || !strings.Contains(r.Body, "on its way already") {
		t.Errorf("a second test while the first waits: %d", r.Status)
	}
	for range webhook.TestsPerMinute - 1 {
		finish()
		if r := send(); r.Status != 200 {
			t.Fatalf("a test after the last one finished: %d", r.Status)
		}
	}
	finish()
	if r := send(); r.Status != 429 || !strings.Contains(r.Body, "At most 5 test events a minute") {
		t.Errorf("a sixth test within the minute: %d", r.Status)
	}
	if n := count(t, e, `SELECT count(*) FROM river_job WHERE kind = 'webhook_delivery'`); n != webhook.TestsPerMinute {
		t.Errorf("%d test deliveries, want %d", n, webhook.TestsPerMinute)
	}
}

// TestWebhookFailureClock: a failure whose attempt started before a
// success recorded meanwhile starts the clock at that success; a new URL
// or turning the endpoint on again stops it.
func TestWebhookFailureClock(t *testing.T) {
	e := webtest.New(t)
	olga := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	id, _ := olga.registerWebhook(t, "http://127.0.0.1:9/h", "api_key.revoked")
	ctx := context.Background()
	now := e.Clock.Now().UTC().Truncate(time.Microsecond)
	if err := e.Store.MarkWebhookSuccess(ctx, db.MarkWebhookSuccessParams{TenantID: e.Tenant.ID, ID: id, Now: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	since, err := e.Store.MarkWebhookFailure(ctx, db.MarkWebhookFailureParams{TenantID: e.Tenant.ID, ID: id, Now: now})
	if err != nil || since == nil || !since.Equal(now.Add(time.Minute)) {
		t.Fatalf("failing since %v (%v), want the success's time %v", since, err, now.Add(time.Minute))
	}
	path := "/settings/developers/webhooks/" + id
	olga.c.Get(path)
	if r := olga.c.PostForm(path, url.Values{"url": {"http://127.0.0.1:9/new"}, "actions": {"api_key.revoked"}, "enabled": {"on"}, "code": {e.NextCode(olga.secret)}}); r.Status != 200 {
		t.Fatalf("new URL: %d", r.Status)
	}
	if n := count(t, e, `SELECT count(*) FROM webhook_endpoints WHERE id = $1 AND failing_since IS NULL`, id); n != 1 {
		t.Error("a new URL kept the old one's failure clock")
	}
	if _, err := e.Store.MarkWebhookFailure(ctx, db.MarkWebhookFailureParams{TenantID: e.Tenant.ID, ID: id, Now: now.Add(2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if r := olga.c.PostForm(path, url.Values{"url": {"http://127.0.0.1:9/new"}, "actions": {"api_key.revoked"}, "enabled": {"on"}, "code": {e.NextCode(olga.secret)}}); r.Status != 400 {
		t.Fatalf("an edit that changes nothing: %d", r.Status)
	}
	if n := count(t, e, `SELECT count(*) FROM webhook_endpoints WHERE id = $1 AND failing_since IS NOT NULL`, id); n != 1 {
		t.Error("the failure was not recorded")
	}
}

// TestWebhookStaleAttempts: a delivery whose endpoint is disabled while
// its attempt is in flight records nothing and is cancelled; one whose
// secret no longer opens fails for good, with an attempt that says why.
func TestWebhookStaleAttempts(t *testing.T) {
	e := webtest.New(t)
	olga := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer slow.Close()
	id, _ := olga.registerWebhook(t, slow.URL+"/h", "api_key.created")
	startJobs(t, e)
	olga.create(t, keyForm("In flight"))
	select {
	case <-arrived:
	case <-time.After(60 * time.Second):
		t.Fatal("no delivery arrived")
	}
	path := "/settings/developers/webhooks/" + id
	olga.c.Get(path)
	if r := olga.c.PostForm(path, url.Values{"url": {slow.URL + "/h"}, "actions": {"api_key.created"}, "code": {e.NextCode(olga.secret)}}); r.Status != 200 {
		t.Fatalf("disabling: %d", r.Status)
	}
	close(release)
	waitFor(t, "the delivery cancelled", func() bool {
		return count(t, e, `SELECT count(*) FROM river_job WHERE kind = 'webhook_delivery' AND state = 'cancelled'`) == 1
	})
	if n := count(t, e, `SELECT count(*) FROM webhook_attempts WHERE endpoint_id = $1`, id); n != 0 {
		t.Errorf("%d attempts recorded for an endpoint disabled during the attempt", n)
	}
	if n := count(t, e, `SELECT count(*) FROM webhook_endpoints WHERE id = $1 AND failing_since IS NULL`, id); n != 1 {
		t.Error("the disabled endpoint's failure clock started")
	}

	// A secret that no longer opens.
	rcv := webtest.NewReceiver(t, false)
	id2, _ := olga.registerWebhook(t, rcv.Server.URL+"/h", "api_key.created")
	if _, err := e.Store.Pool.Exec(context.Background(), `UPDATE webhook_endpoints SET secret_sealed = $2 WHERE id = $1`, id2, make([]byte, 60)); err != nil {
		t.Fatal(err)
	}
	olga.create(t, keyForm("Unsigned"))
	waitFor(t, "the failed attempt recorded", func() bool {
		return count(t, e, `SELECT count(*) FROM webhook_attempts WHERE endpoint_id = $1 AND error LIKE 'the signing secret cannot be read%'`, id2) == 1
	})
	waitFor(t, "that delivery cancelled", func() bool {
		return count(t, e, `SELECT count(*) FROM river_job WHERE kind = 'webhook_delivery' AND args->>'endpoint_id' = $1 AND state = 'cancelled'`, id2) == 1
	})
	if rcv.Count() != 0 {
		t.Error("an unsigned delivery was sent")
	}
	if page := olga.c.Get("/settings/developers/webhooks/" + id2); !strings.Contains(page.Body, "the signing secret cannot be read") {
		t.Error("the endpoint's page does not say its secret cannot be read")
	}
}

// TestWebhookEnqueuedInTheEventsTransaction: a change whose transaction
// rolls back enqueues nothing; the same change committed enqueues one
// delivery, and an action nobody subscribes to enqueues none.
func TestWebhookEnqueuedInTheEventsTransaction(t *testing.T) {
	e := webtest.New(t)
	olga := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	olga.registerWebhook(t, "http://127.0.0.1:9/h", "api_key.created")
	owner, err := e.Store.GetUserByEmail(context.Background(), "olga@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	deliveries := func() int {
		return count(t, e, `SELECT count(*) FROM river_job WHERE kind = 'webhook_delivery'`)
	}
	errRollback := errors.New("roll back")
	create := func(fail bool) error {
		return e.Store.InTx(context.Background(), func(q *db.Queries) error {
			_, _, err := apikey.Create(context.Background(), q, e.App.Audit, e.Tenant.ID, apikey.Config{Name: "tx", Environment: apikey.Staging, Scopes: apikey.AllScopes},
				audit.Actor{TenantID: &e.Tenant.ID, Type: audit.ActorSystem}, owner.ID, e.Clock.Now())
			if err == nil && fail {
				if n := count(t, e, `SELECT count(*) FROM river_job WHERE kind = 'webhook_delivery'`); n != 0 {
					t.Errorf("another connection sees %d uncommitted deliveries", n)
				}
				return errRollback
			}
			return err
		})
	}
	if err := create(true); !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	if n := deliveries(); n != 0 {
		t.Fatalf("a rolled-back change enqueued %d deliveries", n)
	}
	if err := create(false); err != nil {
		t.Fatal(err)
	}
	if n := deliveries(); n != 1 {
		t.Fatalf("a committed change enqueued %d deliveries, want 1", n)
	}
	before := deliveries()
	err = e.Store.InTx(context.Background(), func(q *db.Queries) error {
		return audit.Record(context.Background(), q, e.App.Audit, e.Clock.Now(), audit.Event{TenantID: &e.Tenant.ID, Action: "api_key.rotated", TargetType: "api_key", TargetID: "k"})
	})
	if err != nil || deliveries() != before {
		t.Errorf("an action nobody subscribes to enqueued a delivery (%v)", err)
	}
}

// TestWebhookAddressRules: in strict (production) mode, registering a URL
// on a loopback, private, link-local or IPv4-mapped private address, or
// over http, is refused next to the field. An endpoint stored while the
// rules were off is refused at delivery once they are on, the failed
// attempt recorded, and delivered when its network is allowed.
func TestWebhookAddressRules(t *testing.T) {
	dbURL := dbtest.NewURL(t)
	rcv := webtest.NewReceiver(t, true)
	roots := x509.NewCertPool()
	roots.AddCert(rcv.Server.Certificate())
	strict := func(allow ...string) webtest.Options {
		return webtest.Options{DatabaseURL: dbURL, Config: func(c *web.Config) {
			c.Webhooks = webhook.Options{Strict: true, RootCAs: roots}
			for _, a := range allow {
				c.Webhooks.Allow = append(c.Webhooks.Allow, netip.MustParsePrefix(a))
			}
		}}
	}

	// Registered while the rules are off (development).
	dev := webtest.NewWith(t, webtest.Options{DatabaseURL: dbURL})
	olga := newAdmin(t, dev, "olga@acme.test", auth.RoleOwner)
	id, secret := olga.registerWebhook(t, rcv.Server.URL+"/h", "api_key.created")
	gone, _ := olga.registerWebhook(t, "https://gone.invalid/h", "api_key.revoked") // its host will not resolve

	prod := webtest.NewWith(t, strict())
	prod.Clock.Set(dev.Clock.Now()) // past the TOTP steps used through dev
	po := &admin{e: prod, c: prod.SignIn("olga@acme.test", olga.secret), secret: olga.secret}
	for u, want := range map[string]string{
		"https://127.0.0.1:8443/h":      "a loopback address",
		"https://10.1.2.3/h":            "a private address",
		"https://[fd00::1]/h":           "a private address",
		"https://169.254.169.254/h":     "link-local",
		"https://[fe80::1]/h":           "link-local",
		"https://100.64.0.1/h":          "carrier-grade NAT",
		"https://[::ffff:192.168.1.1]/": "a private address",
		"https://0.0.0.0/":              "unspecified",
		"https://localhost/h":           "resolves to an address Keyward may not reach",
		"http://203.0.113.7/h":          "https://",
	} {
		po.c.Get("/settings/developers/webhooks")
		r := po.c.PostForm("/settings/developers/webhooks", url.Values{"url": {u}, "actions": {"api_key.created"}, "code": {prod.NextCode(po.secret)}})
		if r.Status != 400 || !strings.Contains(r.Body, `id="err-url"`) || !strings.Contains(r.Body, want) || strings.Contains(r.Body, "KEYWARD_") {
			t.Errorf("%s: %d, want 400 saying %q", u, r.Status, want)
		}
	}
	if r := po.c.Get("/settings/developers/webhooks"); strings.Contains(r.Body, "127.0.0.1") && strings.Contains(r.Body, "localhost") {
		t.Error("the form says what localhost resolves to")
	}

	// An endpoint whose host no longer resolves can still be turned off:
	// its unchanged URL is not looked up again.
	gp := "/settings/developers/webhooks/" + gone
	po.c.Get(gp)
	if r := po.c.PostForm(gp, url.Values{"url": {"https://gone.invalid/h"}, "actions": {"api_key.revoked"}, "code": {prod.NextCode(po.secret)}}); r.Status != 200 ||
		!strings.Contains(r.Body, `data-testid="webhook-status">disabled<`) {
		t.Errorf("disabling an endpoint whose host no longer resolves: %d", r.Status)
	}
	if r := po.c.PostForm(gp, url.Values{"url": {"https://gone2.invalid/h"}, "actions": {"api_key.revoked"}, "code": {prod.NextCode(po.secret)}}); r.Status != 400 ||
		!strings.Contains(r.Body, "does not resolve") {
		t.Errorf("a new URL whose host does not resolve: %d", r.Status)
	}
	if _, err := prod.Store.Pool.Exec(context.Background(), `DELETE FROM webhook_endpoints WHERE id = $1`, gone); err != nil {
		t.Fatal(err)
	}
	if n := count(t, prod, `SELECT count(*) FROM webhook_endpoints`); n != 1 {
		t.Fatalf("%d endpoints; the refused ones were stored", n)
	}

	// A delivery with the rules on is refused at the dial.
	runner := startJobs(t, prod)
	owner, _ := prod.Store.GetUserByEmail(context.Background(), "olga@acme.test")
	prod.Key(prod.Tenant, owner, apikey.Config{Name: "k", Environment: apikey.Staging, Scopes: apikey.AllScopes})
	waitFor(t, "the refused attempt recorded", func() bool {
		return count(t, prod, `SELECT count(*) FROM webhook_attempts WHERE endpoint_id = $1 AND status_code IS NULL AND error LIKE '%loopback%'`, id) == 1
	})
	runner.Stop(context.Background())
	if n := rcv.Count(); n != 0 {
		t.Fatalf("the receiver on a loopback address got %d deliveries with the rules on", n)
	}

	// Allowed by KEYWARD_WEBHOOK_ALLOW_NETWORKS: registration and delivery.
	allowed := webtest.NewWith(t, strict("127.0.0.0/8"))
	allowed.Clock.Set(prod.Clock.Now())
	ao := &admin{e: allowed, c: allowed.SignIn("olga@acme.test", olga.secret), secret: olga.secret}
	_, secret2 := ao.registerWebhook(t, rcv.Server.URL+"/second", "user.invited")
	startJobs(t, allowed)
	got := rcv.Wait(t, 1)
	if err := webtest.VerifyStandardWebhook(secret, got[0].Header, got[0].Body, allowed.Clock.Now()); err != nil {
		t.Errorf("the delivery through an allowed network: %v", err)
	}
	// The endpoint registered under the rules receives its own events,
	// signed with its own secret.
	ao.invite(t, "ines@acme.test", auth.RoleViewer)
	got = rcv.Wait(t, 2)
	if !strings.Contains(string(got[1].Body), `"type":"user.invited"`) {
		t.Fatalf("the second delivery: %s", got[1].Body)
	}
	if err := webtest.VerifyStandardWebhook(secret2, got[1].Header, got[1].Body, allowed.Clock.Now()); err != nil {
		t.Errorf("the invite's delivery does not verify with its endpoint's secret: %v", err)
	}
	if webtest.VerifyStandardWebhook(secret, got[1].Header, got[1].Body, allowed.Clock.Now()) == nil {
		t.Error("the invite's delivery verifies with the other endpoint's secret")
	}
}

// TestParseAllowNetworks: the networks KEYWARD_WEBHOOK_ALLOW_NETWORKS
// reads, and the mistakes it refuses.
func TestParseAllowNetworks(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "",
		"10.0.0.0/8, fd00::/32":     "10.0.0.0/8 fd00::/32",
		"::ffff:192.168.0.0/112":    "192.168.0.0/16",
		" 127.0.0.1/32 ,, ::1/128 ": "127.0.0.1/32 ::1/128",
	} {
		got, err := webhook.ParseNetworks(in)
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if err != nil || strings.Join(s, " ") != want {
			t.Errorf("ParseNetworks(%q) = %v, %v; want %s", in, s, err, want)
		}
	}
	for _, bad := range []string{"10.0.0.1", "10.0.0.0/33", "nope", "::ffff:0:0/90", "0.0.0.0/0", "::/0", "10.0.0.0/7", "2001::/31", "::ffff:0.0.0.0/100",
		"10.1.2.3/8", "fd00::1/8"} {
		if _, err := webhook.ParseNetworks(bad); err == nil || !strings.Contains(err.Error(), "KEYWARD_WEBHOOK_ALLOW_NETWORKS") {
			t.Errorf("ParseNetworks(%q): %v, want an error naming the variable", bad, err)
		}
	}
}

// TestCheckpointsReachSubscribers: the checkpoint job, run by River, signs
// the tenant's chain and delivers the audit.checkpoint event to the
// endpoint that subscribes to it; the checkpoint in the delivery verifies
// with the installation's public key. Chain 0, which belongs to no
// tenant, gets a checkpoint too but has no subscriber.
func TestCheckpointsReachSubscribers(t *testing.T) {
	e := webtest.New(t)
	olga := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	rcv := webtest.NewReceiver(t, false)
	id, secret := olga.registerWebhook(t, rcv.Server.URL+"/cp", "audit.checkpoint")
	e.Store.InTx(context.Background(), func(q *db.Queries) error { // an event in chain 0
		return audit.Record(context.Background(), q, e.App.Audit, e.Clock.Now(), audit.Event{Action: "auth.login.failed", TargetType: "user"})
	})
	runner := startJobs(t, e)
	if _, err := runner.Client().Insert(context.Background(), jobs.CheckpointArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	got := rcv.Wait(t, 1)
	if err := webtest.VerifyStandardWebhook(secret, got[0].Header, got[0].Body, e.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	var p struct {
		Type string
		Data struct {
			Diff  audit.Checkpoint
			Chain struct{ ID int64 }
		}
	}
	if err := json.Unmarshal(got[0].Body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "audit.checkpoint" || p.Data.Chain.ID != e.Tenant.ID || p.Data.Diff.Chain != e.Tenant.ID ||
		!ed25519.Verify(e.App.Audit.PublicKey(), p.Data.Diff.Message(), p.Data.Diff.Signature) {
		t.Errorf("the checkpoint delivered: %s", got[0].Body)
	}
	waitFor(t, "chain 0 checkpointed", func() bool {
		return count(t, e, `SELECT count(*) FROM audit_events WHERE chain_id = 0 AND action = 'audit.checkpoint'`) == 1
	})
	if n := count(t, e, `SELECT count(*) FROM river_job WHERE kind = 'webhook_delivery' AND (args->>'tenant_id')::bigint <> $1`, e.Tenant.ID); n != 0 {
		t.Errorf("%d deliveries for another chain", n)
	}
	if n := count(t, e, `SELECT count(*) FROM river_job WHERE kind = 'webhook_delivery' AND args->>'endpoint_id' = $1 AND args->>'type' = 'audit.checkpoint'`, id); n != 1 {
		t.Errorf("%d checkpoint deliveries, want 1", n)
	}
}

// TestWebhookAttemptsExpire: the cleanup job deletes attempts older than
// 30 days and keeps the others.
func TestWebhookAttemptsExpire(t *testing.T) {
	e := webtest.New(t)
	olga := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	id, _ := olga.registerWebhook(t, "http://127.0.0.1:9/h", "api_key.revoked")
	for _, age := range []time.Duration{webhook.AttemptsKept + time.Hour, webhook.AttemptsKept - time.Hour} {
		if err := e.Store.InsertWebhookAttempt(context.Background(), db.InsertWebhookAttemptParams{TenantID: e.Tenant.ID, EndpointID: id,
			DeliveryID: "msg_x", JobID: 1, Attempt: 1, EventType: "api_key.revoked", AttemptedAt: e.Clock.Now().Add(-age)}); err != nil {
			t.Fatal(err)
		}
	}
	runner := startJobs(t, e)
	if _, err := runner.Client().Insert(context.Background(), jobs.CleanupArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old attempt deleted", func() bool {
		return count(t, e, `SELECT count(*) FROM webhook_attempts WHERE endpoint_id = $1`, id) == 1
	})
	if n := count(t, e, `SELECT count(*) FROM webhook_attempts WHERE attempted_at > now() - interval '30 days'`); n != 1 {
		t.Errorf("the recent attempt went too (%d left)", n)
	}
}

// TestWebhookRedirectIsAFailure: a receiver that answers with a redirect
// fails the attempt, which records the 3xx, and the redirect's target
// gets nothing: it could be any address, a private one included.
func TestWebhookRedirectIsAFailure(t *testing.T) {
	e := webtest.New(t)
	olga := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	target := webtest.NewReceiver(t, false)
	redirect := httptest.NewServer(http.RedirectHandler(target.Server.URL+"/inside", http.StatusTemporaryRedirect))
	defer redirect.Close()
	id, _ := olga.registerWebhook(t, redirect.URL+"/h", "webhook.updated")
	startJobs(t, e)
	olga.c.Get("/settings/developers/webhooks/" + id)
	if r := olga.c.PostForm("/settings/developers/webhooks/"+id, url.Values{"url": {redirect.URL + "/h"}, "actions": {"webhook.updated", "api_key.revoked"},
		"enabled": {"on"}, "code": {e.NextCode(olga.secret)}}); r.Status != 200 {
		t.Fatalf("edit: %d", r.Status)
	}
	waitFor(t, "the redirected attempt recorded", func() bool {
		return count(t, e, `SELECT count(*) FROM webhook_attempts WHERE endpoint_id = $1 AND status_code = 307 AND error LIKE '%redirect%'`, id) == 1
	})
	if n := target.Count(); n != 0 {
		t.Errorf("the redirect was followed: its target got %d requests", n)
	}
}

// TestWebhookDeliveryStaysInItsOrganisation: a delivery job names its
// endpoint and the organisation whose event it carries; an endpoint of
// another organisation is not found for it, so nothing is sent or
// recorded and the job is cancelled.
func TestWebhookDeliveryStaysInItsOrganisation(t *testing.T) {
	e := webtest.New(t)
	olga := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	rcv := webtest.NewReceiver(t, false)
	id, _ := olga.registerWebhook(t, rcv.Server.URL+"/hook", "api_key.created")
	other := e.NewTenant("globex")
	err := e.App.Webhooks.Deliver(context.Background(), webhook.DeliveryArgs{EndpointID: id, TenantID: other.ID,
		DeliveryID: "msg_cross", Type: "api_key.created", Body: `{}`}, 1, 1)
	if err == nil || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("a delivery for another organisation's endpoint: %v, want it cancelled as not found", err)
	}
	if n := count(t, e, `SELECT count(*) FROM webhook_attempts`); n != 0 || rcv.Count() != 0 {
		t.Fatalf("%d attempts recorded, %d requests received; want none", n, rcv.Count())
	}
}

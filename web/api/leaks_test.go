package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web"
	"keyward/web/api"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/secretscan"
	"keyward/web/webtest"
)

// partner is a secret-scanning partner made by the test: a P-256 key pair
// whose public half the server reads from a keys file in GitHub's format.
type partner struct {
	id   string
	priv *ecdsa.PrivateKey
	keys *secretscan.KeySet
}

func newPartner(t *testing.T) partner {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	p := partner{id: hex.EncodeToString(sum[:]), priv: priv}
	file, _ := json.Marshal(map[string]any{"public_keys": []map[string]any{{
		"key_identifier": p.id, "key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "is_current": true,
	}}})
	path := filepath.Join(t.TempDir(), "secret_scanning.json")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	if p.keys, err = secretscan.LoadKeys(path); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p partner) sign(t *testing.T, body string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(body))
	sig, err := ecdsa.SignASN1(rand.Reader, p.priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func (p partner) config(c *web.Config) { c.SecretScanning = p.keys }

// send posts body with the given key identifier and signature.
func sendReport(e *webtest.Env, body, id, sig string) webtest.Response {
	return e.API(http.MethodPost, "/api/v1/secret-scanning/reports", "", body,
		secretscan.HeaderKeyIdentifier, id, secretscan.HeaderKeySignature, sig)
}

func (p partner) report(t *testing.T, e *webtest.Env, matches ...secretscan.Match) []secretscan.Label {
	t.Helper()
	b, _ := json.Marshal(matches)
	r := sendReport(e, string(b), p.id, p.sign(t, string(b)))
	if r.Status != http.StatusOK {
		t.Fatalf("report: %d %s", r.Status, r.Body)
	}
	var labels []secretscan.Label
	if err := json.Unmarshal([]byte(r.Body), &labels); err != nil {
		t.Fatal(err)
	}
	if len(labels) != len(matches) {
		t.Fatalf("%d labels for %d tokens: %s", len(labels), len(matches), r.Body)
	}
	for i, l := range labels {
		sum := sha256.Sum256([]byte(matches[i].Token))
		if l.TokenHash != hex.EncodeToString(sum[:]) || l.TokenType != matches[i].Type {
			t.Errorf("label %d names %s/%s, want the SHA-256 and type of its token", i, l.TokenHash, l.TokenType)
		}
		if matches[i].Token != "" && strings.Contains(r.Body, matches[i].Token) {
			t.Errorf("the answer holds token %d itself", i)
		}
	}
	return labels
}

// leakEvents reads the tenant's api_key.leaked events: actor id and diff.
func leakEvents(t *testing.T, e *webtest.Env) []map[string]string {
	t.Helper()
	rows, err := e.Store.Pool.Query(context.Background(),
		`SELECT actor_type, actor_id, target_id, diff::text FROM audit_events WHERE action = 'api_key.leaked' ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []map[string]string
	for rows.Next() {
		var actorType, actor, target, diff string
		if err := rows.Scan(&actorType, &actor, &target, &diff); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{"actor_type": actorType, "actor_id": actor, "target": target, "raw": diff}
		var d map[string]any
		json.Unmarshal([]byte(diff), &d)
		for k, v := range d {
			if s, ok := v.(string); ok {
				m[k] = s
			}
		}
		out = append(out, m)
	}
	return out
}

// banner is the leak banner of a key's page, or the page if it has none.
func banner(page string) string {
	if i := strings.Index(page, `data-testid="api-key-leaked"`); i >= 0 {
		if j := strings.Index(page[i:], "</div>"); j >= 0 {
			return page[i : i+j]
		}
	}
	return page
}

func keyStatus(t *testing.T, e *webtest.Env, id string) (revoked, disabled bool) {
	t.Helper()
	var r, d *time.Time
	if err := e.Store.Pool.QueryRow(context.Background(), `SELECT revoked_at, disabled_at FROM api_keys WHERE id = $1`, id).Scan(&r, &d); err != nil {
		t.Fatal(err)
	}
	return r != nil, d != nil
}

// unknownKey is a well-formed key, checksum and all, that no one holds.
func unknownKey(t *testing.T) string {
	k, err := apikey.Generate(apikey.Production)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSecretScanningRevokes: a signed report revokes the live key it
// names, and a second instance, whose cache held the key, refuses it with
// KEY_REVOKED within a second. The labels are right for a live, a revoked,
// an unknown and a malformed token; only the live key changes, and its
// organisation's trail records where it was found, never the token. The
// key's page and the developers overview show the report.
func TestSecretScanningRevokes(t *testing.T) {
	p := newPartner(t)
	url := dbtest.NewURL(t)
	f := newFixture(t, webtest.Options{DatabaseURL: url, Config: p.config})
	second := webtest.NewWith(t, webtest.Options{DatabaseURL: url})
	live, liveKey := f.key(apikey.Config{Name: "leaky"})
	gone, goneKey := f.key(apikey.Config{Name: "gone"})
	if err := f.Store.InTx(context.Background(), func(q *db.Queries) error {
		return apikey.Revoke(context.Background(), q, f.App.Audit, f.Tenant.ID, gone.ID, actor(f), f.Clock.Now())
	}); err != nil {
		t.Fatal(err)
	}
	// The second instance has the live key in its cache.
	if r := second.API(http.MethodGet, "/api/v1/key", liveKey, ""); r.Status != http.StatusOK {
		t.Fatalf("second instance, before: %d %s", r.Status, r.Body)
	}

	where := "https://github.com/acme/app/blob/0123abc/config.yml"
	malformed := liveKey[:len(liveKey)-1] + "!" // right shape but one character
	badSum := liveKey[:len(liveKey)-1] + map[bool]string{true: "B", false: "A"}[strings.HasSuffix(liveKey, "A")]
	labels := p.report(t, f.Env,
		secretscan.Match{Token: liveKey, Type: "keyward_api_key", URL: where, Source: "content"},
		secretscan.Match{Token: goneKey, Type: "keyward_api_key", URL: where, Source: "content"},
		secretscan.Match{Token: unknownKey(t), Type: "keyward_api_key", Source: "commit"},
		secretscan.Match{Token: malformed, Type: "keyward_api_key"},
		secretscan.Match{Token: badSum, Type: "keyward_api_key"},
		secretscan.Match{Token: "", Type: "other"},
	)
	want := []string{secretscan.TruePositive, secretscan.TruePositive, secretscan.FalsePositive, secretscan.FalsePositive, secretscan.FalsePositive, secretscan.FalsePositive}
	for i, l := range labels {
		if l.Label != want[i] {
			t.Errorf("token %d labelled %s, want %s", i, l.Label, want[i])
		}
	}

	// The second instance refuses the key within a second.
	deadline := time.Now().Add(time.Second)
	for {
		r := second.API(http.MethodGet, "/api/v1/key", liveKey, "")
		if r.Status == http.StatusUnauthorized && strings.Contains(r.Body, `"KEY_REVOKED"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second instance still answers %d %s a second after the report", r.Status, r.Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if revoked, _ := keyStatus(t, f.Env, live.ID); !revoked {
		t.Error("the live key is not revoked")
	}

	evs := leakEvents(t, f.Env)
	if len(evs) != 1 {
		t.Fatalf("%d api_key.leaked events, want 1 (the revoked and unknown tokens change nothing): %v", len(evs), evs)
	}
	ev := evs[0]
	if ev["target"] != live.ID || ev["actor_type"] != audit.ActorSystem || ev["actor_id"] != api.ActorSecretScanning ||
		ev["url"] != where || ev["source"] != "secret scanning: content" || ev["action"] != apikey.LeakActionRevoked ||
		!strings.HasPrefix(liveKey, ev["prefix"]) || len(ev["prefix"]) != len("kw_prod_")+apikey.PrefixLen {
		t.Errorf("api_key.leaked = %v", ev)
	}
	var secrets int
	if err := f.Store.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE strpos(diff::text, $1) > 0`,
		liveKey[len(ev["prefix"]):]).Scan(&secrets); err != nil || secrets != 0 {
		t.Errorf("an audit event holds the token's secret part (%d, %v)", secrets, err)
	}
	var revokedBy string
	f.Store.Pool.QueryRow(context.Background(), `SELECT actor_id FROM audit_events WHERE action = 'api_key.revoked' AND target_id = $1`, live.ID).Scan(&revokedBy)
	if revokedBy != api.ActorSecretScanning {
		t.Errorf("api_key.revoked by %q, want %q", revokedBy, api.ActorSecretScanning)
	}

	// The banner, on the key's page and the developers overview.
	_, secret, _ := f.EnrolledUser(f.Tenant, "olga@acme.test", "owner")
	c := f.SignIn("olga@acme.test", secret)
	page := c.Get("/settings/developers/api-keys/" + live.ID)
	if !strings.Contains(page.Body, `data-testid="api-key-leaked"`) || !strings.Contains(page.Body, where) ||
		!strings.Contains(page.Body, "secret scanning: content") {
		t.Errorf("the key's page shows no leak banner: %s", page.Body)
	}
	if strings.Contains(c.Get("/settings/developers/api-keys/"+gone.ID).Body, `data-testid="api-key-leaked"`) {
		t.Error("the already revoked key shows a leak banner, though nothing changed")
	}
	over := c.Get("/settings/developers")
	if !strings.Contains(over.Body, `data-testid="overview-leaked-key"`) || !strings.Contains(over.Body, "leaky") || strings.Contains(over.Body, ">gone<") {
		t.Errorf("the developers overview does not list the leaked key alone: %s", over.Body)
	}
}

// TestSecretScanningRefusals: a tampered body, an unknown key identifier,
// a missing or garbled signature get 401 and change nothing; missing
// headers or an unknown identifier are refused before the body is read (a
// huge body gets 401, not 413); a signed body that is not a report, or
// holds too many tokens, gets 400; an address whose reports failed their
// signature SignatureFailureLimit times gets 429; a server without partner
// keys answers 404.
func TestSecretScanningRefusals(t *testing.T) {
	p := newPartner(t)
	f := newFixture(t, webtest.Options{Config: p.config})
	live, liveKey := f.key(apikey.Config{})
	body, _ := json.Marshal([]secretscan.Match{{Token: liveKey, Type: "keyward_api_key", Source: "content"}})
	sig := p.sign(t, string(body))
	tampered := strings.Replace(string(body), `"content"`, `"commit"`, 1)
	other := newPartner(t)

	e := wantError(t, sendReport(f.Env, tampered, p.id, sig), http.StatusUnauthorized, "UNAUTHORIZED")
	if !strings.Contains(e.Error.Message, "does not verify") {
		t.Errorf("tampered: %s", e.Error.Message)
	}
	e = wantError(t, sendReport(f.Env, string(body), other.id, other.sign(t, string(body))), http.StatusUnauthorized, "UNAUTHORIZED")
	if !strings.Contains(e.Error.Message, "Unknown") {
		t.Errorf("unknown key identifier: %s", e.Error.Message)
	}
	wantError(t, sendReport(f.Env, string(body), p.id, other.sign(t, string(body))), http.StatusUnauthorized, "UNAUTHORIZED")
	wantError(t, sendReport(f.Env, string(body), p.id, "not base64!"), http.StatusUnauthorized, "UNAUTHORIZED")
	wantError(t, f.API(http.MethodPost, "/api/v1/secret-scanning/reports", "", string(body)), http.StatusUnauthorized, "UNAUTHORIZED")
	if revoked, disabled := keyStatus(t, f.Env, live.ID); revoked || disabled {
		t.Fatal("a refused report changed the key")
	}
	if r := f.API(http.MethodGet, "/api/v1/key", liveKey, ""); r.Status != http.StatusOK {
		t.Fatalf("the key stopped working after refused reports: %d", r.Status)
	}

	for _, bad := range []string{`{"token":"x"}`, `[{"token":1}]`, `[] []`, `[`} {
		wantError(t, sendReport(f.Env, bad, p.id, p.sign(t, bad)), http.StatusBadRequest, "VALIDATION_ERROR")
	}
	many, _ := json.Marshal(make([]secretscan.Match, secretscan.MaxMatches+1))
	e = wantError(t, sendReport(f.Env, string(many), p.id, p.sign(t, string(many))), http.StatusBadRequest, "VALIDATION_ERROR")
	if !strings.Contains(e.Error.Message, "at most 1000") {
		t.Errorf("too many tokens: %s", e.Error.Message)
	}
	huge := `[{"token":"` + strings.Repeat("a", secretscan.MaxBody) + `"}]`
	wantError(t, sendReport(f.Env, huge, p.id, p.sign(t, huge)), http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE")
	// Bad headers are refused before the body limit and the body: 401,
	// not 413.
	e = wantError(t, sendReport(f.Env, huge, other.id, other.sign(t, huge)), http.StatusUnauthorized, "UNAUTHORIZED")
	if !strings.Contains(e.Error.Message, "Unknown") {
		t.Errorf("a huge body with an unknown key identifier: %s", e.Error.Message)
	}
	wantError(t, f.API(http.MethodPost, "/api/v1/secret-scanning/reports", "", huge), http.StatusUnauthorized, "UNAUTHORIZED")
	if n := len(leakEvents(t, f.Env)); n != 0 {
		t.Fatalf("%d api_key.leaked events after refused reports", n)
	}

	// Seven reports from this address were refused for their signature
	// so far; at SignatureFailureLimit its reports are refused unread,
	// even a well-signed one, with the envelope and Retry-After.
	for n := 7; n < api.SignatureFailureLimit.Requests; n++ {
		wantError(t, sendReport(f.Env, string(body), p.id, other.sign(t, string(body))), http.StatusUnauthorized, "UNAUTHORIZED")
	}
	for _, r := range []webtest.Response{
		sendReport(f.Env, string(body), p.id, other.sign(t, string(body))),
		sendReport(f.Env, huge, other.id, other.sign(t, huge)),
		sendReport(f.Env, string(body), p.id, sig),
	} {
		e = wantError(t, r, http.StatusTooManyRequests, "RATE_LIMITED")
		if r.Header.Get("Retry-After") == "" || !strings.Contains(e.Error.Message, "bad signature") {
			t.Errorf("429 without Retry-After, or saying %q", e.Error.Message)
		}
	}
	if revoked, disabled := keyStatus(t, f.Env, live.ID); revoked || disabled {
		t.Fatal("a report refused for the address's failures changed the key")
	}

	off := newFixture(t, webtest.Options{})
	wantError(t, sendReport(off.Env, string(body), p.id, sig), http.StatusNotFound, "NOT_FOUND")
}

// TestLeakPolicyDisable: with the disable policy, a reported key is
// disabled, not revoked. One public report naming it 100 times writes one
// api_key.leaked; a partner's report of it within the hour, naming it
// twice, writes none; two hours on, a report writes one, saying it was
// disabled already. Enabled again, the key's page says the reported secret
// works, not that it no longer does.
func TestLeakPolicyDisable(t *testing.T) {
	p := newPartner(t)
	f := newFixture(t, webtest.Options{Config: p.config})
	if err := f.Store.InTx(context.Background(), func(q *db.Queries) error {
		return apikey.SavePolicy(context.Background(), q, f.Tenant.ID, apikey.Policy{LeakAction: apikey.LeakDisable}, f.Clock.Now())
	}); err != nil {
		t.Fatal(err)
	}
	k, full := f.key(apikey.Config{})
	keys := strings.TrimSuffix(strings.Repeat(`"`+full+`",`, secretscan.MaxPublicKeys), ",")
	if r := f.API(http.MethodPost, "/api/v1/keys/report", "", `{"keys":[`+keys+`]}`); r.Status != http.StatusAccepted {
		t.Fatalf("public report: %d %s", r.Status, r.Body)
	}
	check := func(step string, events int, action string) {
		t.Helper()
		if revoked, disabled := keyStatus(t, f.Env, k.ID); revoked || !disabled {
			t.Fatalf("%s: revoked %v, disabled %v; want disabled only", step, revoked, disabled)
		}
		if evs := leakEvents(t, f.Env); len(evs) != events || evs[events-1]["action"] != action {
			t.Fatalf("%s: events %v, want %d, the last with action %s", step, evs, events, action)
		}
	}
	check("one report naming the key 100 times", 1, apikey.LeakActionDisabled)
	var disabledEvents int
	f.Store.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE action = 'api_key.disabled'`).Scan(&disabledEvents)
	if disabledEvents != 1 {
		t.Errorf("%d api_key.disabled events, want 1", disabledEvents)
	}

	twice := []secretscan.Match{{Token: full, Type: "keyward_api_key", Source: "content"}, {Token: full, Type: "keyward_api_key", Source: "commit"}}
	for _, l := range p.report(t, f.Env, twice...) {
		if l.Label != secretscan.TruePositive {
			t.Fatalf("a repeat report: labelled %s", l.Label)
		}
	}
	check("a partner's report within the hour", 1, apikey.LeakActionDisabled)

	f.Clock.Advance(2 * time.Hour)
	for _, l := range p.report(t, f.Env, twice...) {
		if l.Label != secretscan.TruePositive {
			t.Fatalf("a report two hours on: labelled %s", l.Label)
		}
	}
	check("a report two hours on", 2, apikey.LeakActionAlreadyDisabled)
	wantError(t, f.API(http.MethodGet, "/api/v1/key", full, ""), http.StatusUnauthorized, "KEY_DISABLED")

	_, secret, _ := f.EnrolledUser(f.Tenant, "olga@acme.test", "owner")
	c := f.SignIn("olga@acme.test", secret)
	page := c.Get("/settings/developers/api-keys/" + k.ID)
	if !strings.Contains(page.Body, `data-testid="api-key-leaked"`) || !strings.Contains(page.Body, "It is disabled") {
		t.Errorf("the disabled key's banner: %s", banner(page.Body))
	}
	if err := f.Store.InTx(context.Background(), func(q *db.Queries) error {
		return apikey.SetDisabled(context.Background(), q, f.App.Audit, f.Tenant.ID, k.ID, false, actor(f), f.Clock.Now())
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return f.API(http.MethodGet, "/api/v1/key", full, "").Status == http.StatusOK })
	page = c.Get("/settings/developers/api-keys/" + k.ID)
	if !strings.Contains(page.Body, `data-testid="api-key-leaked"`) || !strings.Contains(page.Body, "The reported secret still works") ||
		strings.Contains(page.Body, "no longer works") {
		t.Errorf("the banner of the key enabled again does not say the reported secret works: %s", banner(page.Body))
	}
}

// TestLeakedRotatedSecret: a secret rotated out and still in its grace is
// the leaked one: it stops at once, the key's current secret goes on. Once
// its grace is over, a report of it changes nothing but is still a real
// token.
func TestLeakedRotatedSecret(t *testing.T) {
	p := newPartner(t)
	f := newFixture(t, webtest.Options{Config: p.config})
	k, old := f.key(apikey.Config{})
	var current string
	if err := f.Store.InTx(context.Background(), func(q *db.Queries) error {
		var err error
		current, err = apikey.Rotate(context.Background(), q, f.App.Audit, f.Tenant.ID, k.ID, time.Hour, actor(f), f.Clock.Now())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if r := f.API(http.MethodGet, "/api/v1/key", old, ""); r.Status != http.StatusOK {
		t.Fatalf("the old secret, in its grace: %d", r.Status)
	}
	if l := p.report(t, f.Env, secretscan.Match{Token: old, Type: "keyward_api_key", Source: "commit"}); l[0].Label != secretscan.TruePositive {
		t.Fatalf("labelled %s", l[0].Label)
	}
	waitFor(t, func() bool { return f.API(http.MethodGet, "/api/v1/key", old, "").Status == http.StatusUnauthorized })
	wantError(t, f.API(http.MethodGet, "/api/v1/key", old, ""), http.StatusUnauthorized, "KEY_EXPIRED")
	if r := f.API(http.MethodGet, "/api/v1/key", current, ""); r.Status != http.StatusOK {
		t.Fatalf("the current secret stopped too: %d %s", r.Status, r.Body)
	}
	if revoked, disabled := keyStatus(t, f.Env, k.ID); revoked || disabled {
		t.Error("the key itself was revoked or disabled")
	}
	evs := leakEvents(t, f.Env)
	if len(evs) != 1 || evs[0]["action"] != apikey.LeakActionSecretEnded || !strings.HasPrefix(old, evs[0]["prefix"]) {
		t.Fatalf("events: %v", evs)
	}
	f.Clock.Advance(2 * time.Hour)
	if l := p.report(t, f.Env, secretscan.Match{Token: old, Type: "keyward_api_key"}); l[0].Label != secretscan.TruePositive {
		t.Errorf("a retired secret labelled %s", l[0].Label)
	}
	if n := len(leakEvents(t, f.Env)); n != 1 {
		t.Errorf("a retired secret's report wrote an event (%d)", n)
	}
}

// TestPublicKeyReport: the public route revokes a live key it is told of,
// with the source "public report", and answers the very same bytes for a
// live, an unknown and a malformed key. Each address may send
// DefaultReportLimit reports; the next gets 429 with Retry-After.
func TestPublicKeyReport(t *testing.T) {
	f := newFixture(t, webtest.Options{})
	k, full := f.key(apikey.Config{})
	report := func(body string) webtest.Response {
		return f.API(http.MethodPost, "/api/v1/keys/report", "", body)
	}
	known := f.API(http.MethodPost, "/api/v1/keys/report", "",
		`{"keys":["`+full+`"],"url":"https://gist.github.com/x/1","note":"pasted `+full+` in a gist"}`, "User-Agent", "reporter/1 ("+full+")")
	unknown := report(`{"keys":["` + unknownKey(t) + `"]}`)
	malformed := report(`{"keys":["kw_prod_nope"]}`)
	for _, r := range []webtest.Response{known, unknown, malformed} {
		if r.Status != http.StatusAccepted || r.Body != known.Body {
			t.Fatalf("answers differ: %d %q vs %d %q", r.Status, r.Body, known.Status, known.Body)
		}
	}
	if revoked, _ := keyStatus(t, f.Env, k.ID); !revoked {
		t.Fatal("the reported key was not revoked")
	}
	wantError(t, f.API(http.MethodGet, "/api/v1/key", full, ""), http.StatusUnauthorized, "KEY_REVOKED")
	evs := leakEvents(t, f.Env)
	if len(evs) != 1 || evs[0]["source"] != "public report" || evs[0]["actor_id"] != api.ActorPublicReport ||
		evs[0]["url"] != "https://gist.github.com/x/1" || evs[0]["action"] != apikey.LeakActionRevoked {
		t.Fatalf("events: %v", evs)
	}
	if strings.Contains(evs[0]["raw"], full[len(evs[0]["prefix"]):]) {
		t.Errorf("the event holds the key quoted in the note: %s", evs[0]["raw"])
	}
	// The key in the reporter's user agent is cut to its prefix in every
	// event the report wrote (api_key.revoked and api_key.leaked).
	rows, err := f.Store.Pool.Query(context.Background(), `SELECT action, user_agent FROM audit_events WHERE actor_id = $1`, api.ActorPublicReport)
	if err != nil {
		t.Fatal(err)
	}
	var uas int
	for rows.Next() {
		var action, ua string
		if err := rows.Scan(&action, &ua); err != nil {
			t.Fatal(err)
		}
		uas++
		if strings.Contains(ua, full[len(evs[0]["prefix"]):]) || ua != "reporter/1 ("+evs[0]["prefix"]+"…)" {
			t.Errorf("%s's user agent is %q, want the key cut to its prefix", action, ua)
		}
	}
	if rows.Close(); uas != 2 {
		t.Errorf("%d events by the public report, want 2", uas)
	}

	// Refusals say what to fix and count against the address too.
	wantError(t, report(`{"keys":[]}`), http.StatusBadRequest, "VALIDATION_ERROR")
	wantError(t, report(`{"keys":["a"],"source":"x"}`), http.StatusBadRequest, "VALIDATION_ERROR")
	wantError(t, f.API(http.MethodPost, "/api/v1/keys/report", "", `{"keys":["a"]}`, "Content-Type", "text/plain"),
		http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE")
	sent := 6
	for ; sent < api.DefaultReportLimit.Requests; sent++ {
		if r := report(`{"keys":["` + unknownKey(t) + `"]}`); r.Status != http.StatusAccepted {
			t.Fatalf("report %d: %d %s", sent+1, r.Status, r.Body)
		}
	}
	r := report(`{"keys":["` + unknownKey(t) + `"]}`)
	wantError(t, r, http.StatusTooManyRequests, "RATE_LIMITED")
	if r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}

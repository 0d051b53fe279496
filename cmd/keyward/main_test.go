package main

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/keyring"
	"keyward/web/mfa"
	"keyward/web/webtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// freshStore opens a store on a new test database, closed when the test
// ends, and returns the database's URL with it.
func freshStore(t *testing.T) (string, *db.Store) {
	t.Helper()
	url := dbtest.NewURL(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return url, db.NewStore(pool)
}

// enrolledOwner makes the tenant slug and its owner owner@<slug>.test,
// with webtest.Password and an authenticator enrolled under the servers'
// secret key, before any server starts. It returns the TOTP secret and the
// recovery codes too.
func enrolledOwner(t *testing.T, store *db.Store, secret, slug string) (db.Tenant, db.User, string, []string) {
	t.Helper()
	ctx := context.Background()
	ring, err := keyring.New([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	auditKeys := audit.NewKeys(ring)
	mfaSvc, err := mfa.New(ring.Key(keyring.PurposeTOTP), ring.Key(keyring.PurposeRecoveryCode), "test")
	if err != nil {
		t.Fatal(err)
	}
	var tenant db.Tenant
	var owner db.User
	var totp string
	var recovery []string
	err = store.InTx(ctx, func(q *db.Queries) error {
		var err error
		if tenant, err = auth.CreateTenant(ctx, q, auditKeys, slug, slug+" Inc.", "team", time.Now()); err != nil {
			return err
		}
		if owner, err = auth.CreateUser(ctx, q, auditKeys, tenant.ID, "owner@"+slug+".test", auth.RoleOwner, webtest.Password, false, audit.Actor{Type: audit.ActorSystem}, time.Now()); err != nil {
			return err
		}
		en, err := mfaSvc.NewEnrolment(owner.Email)
		if err != nil {
			return err
		}
		totp = en.Secret
		recovery, err = mfaSvc.Confirm(ctx, q, owner.ID, en.Secret, time.Now().Unix()/30-1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tenant, owner, totp, recovery
}

// testSecret is the commands' KEYWARD_SECRET_KEY unless a test sets one.
const testSecret = "main-test-secret-key-0123456789abcdef"

// keyward runs the command in-process against the given database.
func keyward(t *testing.T, dbURL, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Setenv("KEYWARD_DATABASE_URL", dbURL)
	if _, ok := os.LookupEnv("KEYWARD_SECRET_KEY"); !ok {
		t.Setenv("KEYWARD_SECRET_KEY", testSecret)
	}
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestEverySubcommandHasHelp(t *testing.T) {
	for _, args := range [][]string{{"serve"}, {"migrate"}, {"tenant", "create"}, {"user", "create"}, {"user", "reset-password"}, {"audit", "verify"}, {"audit", "public-key"}} {
		code, _, stderr := keyward(t, "", "", append(args, "--help")...)
		if code != 0 || !strings.Contains(stderr, "Usage: keyward "+strings.Join(args, " ")) {
			t.Errorf("%v --help: exit %d, %q", args, code, stderr)
		}
	}
	for _, group := range []string{"tenant", "user", "audit"} {
		if code, out, _ := keyward(t, "", "", group, "--help"); code != 0 || !strings.Contains(out, "Usage: keyward "+group) {
			t.Errorf("%s --help: exit %d, %q", group, code, out)
		}
	}
	if code, out, _ := keyward(t, "", "", "version"); code != 0 || !strings.HasPrefix(out, "keyward ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, _ := keyward(t, "", "", "frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

func TestTenantUserAndAuditCommands(t *testing.T) {
	url := dbtest.NewURL(t)
	code, out, stderr := keyward(t, url, "", "tenant", "create", "--slug", "acme", "--name", "Acme Inc.", "--plan", "team")
	if code != 0 || !strings.Contains(out, "tenant acme created") {
		t.Fatalf("tenant create: %d %q %q", code, out, stderr)
	}
	if code, _, stderr := keyward(t, url, "", "tenant", "create", "--slug", "acme", "--name", "Again"); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Errorf("duplicate tenant: %d %q", code, stderr)
	}
	if code, _, stderr := keyward(t, url, "", "tenant", "create", "--slug", "Bad Slug!", "--name", "X"); code != 1 || !strings.Contains(stderr, "slug") {
		t.Errorf("bad slug: %d %q", code, stderr)
	}
	// One-time password on stdout, messages on stderr.
	code, out, stderr = keyward(t, url, "", "user", "create", "--tenant", "acme", "--email", "Ann@Acme.test", "--role", "owner")
	pw := strings.TrimSpace(out)
	if code != 0 || len(pw) < 20 || strings.Contains(stderr, pw) {
		t.Fatalf("user create: %d %q %q", code, out, stderr)
	}
	code, out, stderr = keyward(t, url, "a long enough password\n", "user", "create", "--tenant", "acme", "--email", "bob@acme.test", "--password-stdin")
	if code != 0 || out != "" {
		t.Fatalf("user create --password-stdin: %d %q %q", code, out, stderr)
	}
	if code, _, stderr := keyward(t, url, "short\n", "user", "create", "--tenant", "acme", "--email", "cy@acme.test", "--password-stdin"); code != 1 || !strings.Contains(stderr, "at least 12") {
		t.Errorf("weak password: %d %q", code, stderr)
	}
	if code, _, stderr := keyward(t, url, "", "user", "create", "--tenant", "nope", "--email", "d@acme.test"); code != 1 || !strings.Contains(stderr, "no tenant") {
		t.Errorf("unknown tenant: %d %q", code, stderr)
	}
	code, out, _ = keyward(t, url, "", "audit", "verify")
	if code != 0 || !strings.Contains(out, "ok: 3 events") {
		t.Fatalf("audit verify: %d %q", code, out)
	}
}

func TestProductionRefusesMissingOrWeakSecret(t *testing.T) {
	t.Setenv("KEYWARD_MODE", "production")
	t.Setenv("KEYWARD_SECRET_KEY", "")
	code, _, stderr := keyward(t, "postgres://unused", "", "serve", "--addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "KEYWARD_SECRET_KEY is required") {
		t.Errorf("no secret: %d %q", code, stderr)
	}
	t.Setenv("KEYWARD_SECRET_KEY", "too-short")
	code, _, stderr = keyward(t, "postgres://unused", "", "serve", "--addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "at least 32 bytes") || strings.Contains(stderr, "too-short") {
		t.Errorf("weak secret: %d %q", code, stderr)
	}
}

// Bad public-API settings stop serve at once with one line saying what to
// fix, and a Redis URL's password is never echoed.
func TestServeRefusesBadAPISettings(t *testing.T) {
	for _, c := range []struct{ env, value, says string }{
		{"KEYWARD_REQUEST_LOG_RETENTION", "10m", "at least 1h"},
		{"KEYWARD_REQUEST_LOG_RETENTION", "soon", "at least 1h"},
		{"KEYWARD_KEY_STALE_MAX", "forever", "KEYWARD_KEY_STALE_MAX"},
		{"KEYWARD_KEY_STALE_MAX", "0s", "from 1s to 24h"},
		{"KEYWARD_REQUEST_LOG_BUFFER", "lots", "KEYWARD_REQUEST_LOG_BUFFER must be a size of at least 1MB"},
		{"KEYWARD_REQUEST_LOG_BUFFER", "512kB", "KEYWARD_REQUEST_LOG_BUFFER must be a size of at least 1MB"},
		{"KEYWARD_API_HOSTS", "api.example.com=prod,oops", "host=environment"},
		{"KEYWARD_API_HOSTS", "api.example.com=qa", "host=environment"},
		{"KEYWARD_REDIS_URL", "redis://user:s3cretpw@host:badport/0", "KEYWARD_REDIS_URL is not a valid"},
		{"KEYWARD_LOG_FORMAT", "yaml", `KEYWARD_LOG_FORMAT must be text or json, not "yaml"`},
	} {
		t.Setenv(c.env, c.value)
		code, _, stderr := keyward(t, "", "", "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir())
		if code == 0 || !strings.Contains(stderr, c.says) || strings.Contains(stderr, "s3cretpw") || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("%s=%s: exit %d, %q", c.env, c.value, code, stderr)
		}
		os.Unsetenv(c.env)
	}
}

// reset-password prints a one-time password that signs in at once, even on
// a locked account, and must be changed; it ends the user's sessions, not
// others', and is audited as the system.
func TestUserResetPassword(t *testing.T) {
	url, store := freshStore(t)
	ctx := context.Background()
	if code, _, stderr := keyward(t, url, "", "tenant", "create", "--slug", "acme", "--name", "Acme"); code != 0 {
		t.Fatalf("tenant create: %s", stderr)
	}
	if code, _, stderr := keyward(t, url, "", "tenant", "create", "--slug", "other", "--name", "Other"); code != 0 {
		t.Fatalf("tenant create: %s", stderr)
	}
	var users []db.User
	for _, email := range []string{"ann@acme.test", "bob@acme.test"} {
		if code, _, stderr := keyward(t, url, "", "user", "create", "--tenant", "acme", "--email", email); code != 0 {
			t.Fatalf("user create: %s", stderr)
		}
		u, err := store.GetUserByEmail(ctx, email)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
		for i := 0; i < 2; i++ {
			now := time.Now()
			if err := store.InsertSession(ctx, db.InsertSessionParams{IDHash: []byte(email + strconv.Itoa(i)), UserID: &u.ID,
				Data: []byte("{}"), CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ann, bob := users[0], users[1]
	// Ann's account is locked for an hour.
	if _, err := store.RecordThrottleFailure(ctx, db.RecordThrottleFailureParams{Key: "login:email:ann@acme.test", Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour)
	if err := store.LockThrottle(ctx, db.LockThrottleParams{Key: "login:email:ann@acme.test", LockedUntil: &until}); err != nil {
		t.Fatal(err)
	}

	code, out, stderr := keyward(t, url, "", "user", "reset-password", "--tenant", "acme", "--email", " Ann@Acme.test")
	pw := strings.TrimSpace(out)
	if code != 0 || out != pw+"\n" || len(pw) != 26 || strings.Contains(stderr, pw) || !strings.Contains(stderr, "ann@acme.test") {
		t.Fatalf("reset-password: %d %q %q", code, out, stderr)
	}
	ring, err := keyring.New([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	svc := &auth.Service{Store: store, Now: time.Now, Audit: audit.NewKeys(ring)}
	u, err := svc.PasswordStep(ctx, "ann@acme.test", pw, auth.Origin{IP: "192.0.2.1"})
	if err != nil || u.ID != ann.ID {
		t.Fatalf("signing in with the new password: %v", err)
	}
	if !u.MustChangePassword {
		t.Error("the new password need not be changed")
	}
	var annSessions, bobSessions int
	store.Pool.QueryRow(ctx, "SELECT count(*) FROM sessions WHERE user_id = $1", ann.ID).Scan(&annSessions)
	store.Pool.QueryRow(ctx, "SELECT count(*) FROM sessions WHERE user_id = $1", bob.ID).Scan(&bobSessions)
	if annSessions != 0 || bobSessions != 2 {
		t.Errorf("sessions after the reset: Ann %d (want 0), Bob %d (want 2)", annSessions, bobSessions)
	}
	var actorType, actorID, target string
	err = store.Pool.QueryRow(ctx, "SELECT actor_type, actor_id, target_id FROM audit_events WHERE action = 'user.password_reset' AND tenant_id = $1", ann.TenantID).
		Scan(&actorType, &actorID, &target)
	if err != nil || actorType != "system" || actorID != "cli" || target != strconv.FormatInt(ann.ID, 10) {
		t.Errorf("audit event: %v %q %q %q", err, actorType, actorID, target)
	}
	if code, out, _ := keyward(t, url, "", "audit", "verify"); code != 0 {
		t.Errorf("audit verify: %s", out)
	}

	// Unknown accounts: one line, exit 1. Missing flags: usage, exit 2.
	for _, c := range []struct{ tenant, email, says string }{
		{"nope", "ann@acme.test", `keyward: no tenant with slug "nope"`},
		{"acme", "zed@acme.test", `keyward: no user with email "zed@acme.test" in tenant acme`},
		{"other", "ann@acme.test", `keyward: no user with email "ann@acme.test" in tenant other`},
	} {
		code, out, stderr := keyward(t, url, "", "user", "reset-password", "--tenant", c.tenant, "--email", c.email)
		if code != 1 || out != "" || stderr != c.says+"\n" {
			t.Errorf("%s/%s: exit %d, %q %q", c.tenant, c.email, code, out, stderr)
		}
	}
	if code, _, stderr := keyward(t, url, "", "user", "reset-password", "--tenant", "acme"); code != 2 || !strings.Contains(stderr, "--email are required") {
		t.Errorf("no --email: exit %d, %q", code, stderr)
	}
}

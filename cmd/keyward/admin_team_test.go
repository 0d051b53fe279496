package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"keyward/db"
)

// TestUserDisableEnableResetMFA: the locked-out case from the command
// line. user create audits user.created; each command changes one user,
// ends their sessions where it should, refuses to disable the last owner,
// and is audited as the system with the operator's OS user.
func TestUserDisableEnableResetMFA(t *testing.T) {
	url, store := freshStore(t)
	ctx := context.Background()
	if code, _, stderr := keyward(t, url, "", "tenant", "create", "--slug", "acme", "--name", "Acme"); code != 0 {
		t.Fatalf("tenant create: %s", stderr)
	}
	for _, u := range []struct{ email, role string }{{"olga@acme.test", "owner"}, {"ann@acme.test", "admin"}} {
		if code, _, stderr := keyward(t, url, "", "user", "create", "--tenant", "acme", "--email", u.email, "--role", u.role); code != 0 {
			t.Fatalf("user create: %s", stderr)
		}
	}
	ann, err := store.GetUserByEmail(ctx, "ann@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	// user create writes user.created, by the system, in the tenant.
	var created int
	if err := store.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action = 'user.created' AND target_id = $1
		AND actor_type = 'system' AND tenant_id = $2 AND diff->>'email' = 'ann@acme.test'`, strconv.FormatInt(ann.ID, 10), ann.TenantID).Scan(&created); err != nil || created != 1 {
		t.Errorf("user.created events of the command line: %d (%v), want 1", created, err)
	}
	sessions := func() int {
		var n int
		store.Pool.QueryRow(ctx, "SELECT count(*) FROM sessions WHERE user_id = $1", ann.ID).Scan(&n)
		return n
	}
	addSession := func() {
		now := time.Now()
		if err := store.InsertSession(ctx, db.InsertSessionParams{IDHash: []byte(strconv.FormatInt(now.UnixNano(), 10)), UserID: &ann.ID,
			Data: []byte("{}"), CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	addSession()
	if code, out, stderr := keyward(t, url, "", "user", "disable", "--tenant", "acme", "--email", "Ann@acme.test"); code != 0 || out != "" ||
		!strings.Contains(stderr, "ann@acme.test in tenant acme: disabled") {
		t.Fatalf("disable: %d %q %q", code, out, stderr)
	}
	if u, _ := store.GetUser(ctx, ann.ID); u.DisabledAt == nil || sessions() != 0 {
		t.Errorf("after disable: disabled %v, %d sessions", u.DisabledAt != nil, sessions())
	}
	if code, _, stderr := keyward(t, url, "", "user", "disable", "--tenant", "acme", "--email", "ann@acme.test"); code != 1 || !strings.Contains(stderr, "already disabled") {
		t.Errorf("disable twice: %d %q", code, stderr)
	}
	if code, _, stderr := keyward(t, url, "", "user", "enable", "--tenant", "acme", "--email", "ann@acme.test"); code != 0 {
		t.Fatalf("enable: %q", stderr)
	}
	if u, _ := store.GetUser(ctx, ann.ID); u.DisabledAt != nil {
		t.Error("still disabled after enable")
	}
	// reset-mfa on a user with no authenticator says so.
	if code, _, stderr := keyward(t, url, "", "user", "reset-mfa", "--tenant", "acme", "--email", "ann@acme.test"); code != 1 || !strings.Contains(stderr, "no authenticator") {
		t.Errorf("reset-mfa without one: %d %q", code, stderr)
	}
	now := time.Now()
	if _, err := store.Pool.Exec(ctx, "UPDATE users SET totp_secret_enc = '\\x00', totp_enrolled_at = $2 WHERE id = $1", ann.ID, now); err != nil {
		t.Fatal(err)
	}
	addSession()
	if code, _, stderr := keyward(t, url, "", "user", "reset-mfa", "--tenant", "acme", "--email", "ann@acme.test"); code != 0 {
		t.Fatalf("reset-mfa: %q", stderr)
	}
	if u, _ := store.GetUser(ctx, ann.ID); u.TotpEnrolledAt != nil || u.TotpSecretEnc != nil || sessions() != 0 {
		t.Errorf("after reset-mfa: enrolled %v, %d sessions", u.TotpEnrolledAt != nil, sessions())
	}
	// The last owner cannot be disabled, even from here.
	if code, _, stderr := keyward(t, url, "", "user", "disable", "--tenant", "acme", "--email", "olga@acme.test"); code != 1 || !strings.Contains(stderr, "last active owner") {
		t.Errorf("disabling the last owner: %d %q", code, stderr)
	}
	rows, err := store.Pool.Query(ctx, "SELECT action, actor_type, actor_id FROM audit_events WHERE target_id = $1 AND action IN ('user.disabled', 'user.enabled', 'user.mfa_reset') ORDER BY seq",
		strconv.FormatInt(ann.ID, 10))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var action, actorType, actorID string
		rows.Scan(&action, &actorType, &actorID)
		if actorType != "system" || actorID != "cli:"+osUser() {
			t.Errorf("%s by %s %q", action, actorType, actorID)
		}
		got = append(got, action)
	}
	if strings.Join(got, " ") != "user.disabled user.enabled user.mfa_reset" {
		t.Errorf("events: %v", got)
	}
	if code, _, stderr := keyward(t, url, "", "user", "enable", "--tenant", "acme"); code != 2 || !strings.Contains(stderr, "--email are required") {
		t.Errorf("no --email: %d %q", code, stderr)
	}
	for _, sub := range []string{"disable", "enable", "reset-mfa"} {
		if code, _, stderr := keyward(t, "", "", "user", sub, "--help"); code != 0 || !strings.Contains(stderr, "Usage: keyward user "+sub) {
			t.Errorf("user %s --help: %d %q", sub, code, stderr)
		}
	}
}

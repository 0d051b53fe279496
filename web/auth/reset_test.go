package auth

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/audit"
	"keyward/web/audit/audittest"
	"keyward/web/errs"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// A reset gives a password that signs in at once, even on a locked
// account, must be changed, ends only that user's sessions and is audited
// in the tenant's chain.
func TestResetPassword(t *testing.T) {
	ctx := context.Background()
	store := db.NewStore(dbtest.New(t))
	var ann, bob db.User
	var acme db.Tenant
	err := store.InTx(ctx, func(q *db.Queries) error {
		var err error
		if acme, err = CreateTenant(ctx, q, audittest.Keys(), "acme", "Acme", "team", time.Now()); err != nil {
			return err
		}
		if ann, err = CreateUser(ctx, q, audittest.Keys(), acme.ID, "ann@acme.test", RoleOwner, "ann's first password", false, audit.Actor{}, time.Now()); err != nil {
			return err
		}
		bob, err = CreateUser(ctx, q, audittest.Keys(), acme.ID, "bob@acme.test", RoleAdmin, "bob's own password", false, audit.Actor{}, time.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, u := range []db.User{ann, ann, bob} {
		if err := store.InsertSession(ctx, db.InsertSessionParams{IDHash: []byte(rand.Text()), UserID: &u.ID, Data: []byte("{}"),
			CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	// Lock Ann's account with wrong passwords. The clock stands still, so
	// the lock cannot run out during the test.
	svc := &Service{Store: store, Now: func() time.Time { return now }}
	for i := 0; i < 10; i++ {
		_, err := svc.PasswordStep(ctx, "ann@acme.test", "a wrong password", Origin{IP: "192.0.2.1"})
		if isThrottled(err) {
			break
		}
	}
	if _, err := svc.PasswordStep(ctx, "ann@acme.test", "ann's first password", Origin{IP: "192.0.2.2"}); !isThrottled(err) {
		t.Fatalf("the account should be locked before the reset: %v", err)
	}

	var pw string
	err = store.InTx(ctx, func(q *db.Queries) error {
		var err error
		pw, err = ResetPassword(ctx, q, audittest.Keys(), "acme", " Ann@Acme.test ", audit.Actor{Type: audit.ActorSystem, ID: "cli"}, time.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pw) != 26 {
		t.Errorf("one-time password %q: want 26 characters", pw)
	}
	u, err := svc.PasswordStep(ctx, "ann@acme.test", pw, Origin{IP: "192.0.2.2"})
	if err != nil || u.ID != ann.ID {
		t.Fatalf("signing in with the new password: %v", err)
	}
	row, _ := store.GetUser(ctx, ann.ID)
	if !u.MustChangePassword || CheckPassword(row.PasswordHash, "ann's first password") {
		t.Errorf("after the reset: must change %v, old password still works %v", u.MustChangePassword, CheckPassword(row.PasswordHash, "ann's first password"))
	}
	if n := countSessions(t, store, ann.ID); n != 0 {
		t.Errorf("Ann still has %d sessions", n)
	}
	if n := countSessions(t, store, bob.ID); n != 1 {
		t.Errorf("Bob has %d sessions, want his 1 untouched", n)
	}

	events, err := store.ListAuditEventsInChain(ctx, db.ListAuditEventsInChainParams{ChainID: acme.ID, Seq: 0, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, e := range events {
		if e.Action != "user.password_reset" {
			continue
		}
		found = true
		var diff map[string]any
		json.Unmarshal(e.Diff, &diff)
		if e.ActorType != audit.ActorSystem || e.ActorID != "cli" || e.TargetID != strconv.FormatInt(ann.ID, 10) || diff["email"] != "ann@acme.test" || diff["sessions_ended"] != 2.0 {
			t.Errorf("audit event: %+v %s", e, e.Diff)
		}
		if strings.Contains(string(e.Diff), pw) {
			t.Error("the audit event holds the password")
		}
	}
	if !found {
		t.Error("no user.password_reset event in the tenant's chain")
	}
	if rep, err := audit.Verify(ctx, store.Queries, audittest.Keys()); err != nil || rep.Broken != nil {
		t.Errorf("audit chain: %v %v", rep.Broken, err)
	}
}

// Unknown tenants and emails, and users of another tenant, are refused
// with a message that says which, and change nothing.
func TestResetPasswordRefusesUnknownAccounts(t *testing.T) {
	ctx := context.Background()
	store := db.NewStore(dbtest.New(t))
	err := store.InTx(ctx, func(q *db.Queries) error {
		a, err := CreateTenant(ctx, q, audittest.Keys(), "acme", "Acme", "team", time.Now())
		if err != nil {
			return err
		}
		if _, err := CreateTenant(ctx, q, audittest.Keys(), "other", "Other", "team", time.Now()); err != nil {
			return err
		}
		_, err = CreateUser(ctx, q, audittest.Keys(), a.ID, "ann@acme.test", RoleOwner, "ann's first password", false, audit.Actor{}, time.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ tenant, email, says string }{
		{"nope", "ann@acme.test", `no tenant with slug "nope"`},
		{"acme", "zed@acme.test", `no user with email "zed@acme.test" in tenant acme`},
		{"other", "ann@acme.test", `no user with email "ann@acme.test" in tenant other`},
	} {
		err := store.InTx(ctx, func(q *db.Queries) error {
			_, err := ResetPassword(ctx, q, audittest.Keys(), c.tenant, c.email, audit.Actor{Type: audit.ActorSystem}, time.Now())
			return err
		})
		if !errors.Is(err, ErrInvalidInput) || err.Error() != c.says {
			t.Errorf("%s/%s: %v, want %q", c.tenant, c.email, err, c.says)
		}
	}
	u, err := store.GetUserByEmail(ctx, "ann@acme.test")
	if err != nil || u.MustChangePassword || !CheckPassword(u.PasswordHash, "ann's first password") {
		t.Errorf("a refused reset changed the user: %v", err)
	}
}

func isThrottled(err error) bool { return errs.Is(err, errs.Throttled) }

func countSessions(t *testing.T, store *db.Store, userID int64) int {
	t.Helper()
	var n int
	if err := store.Pool.QueryRow(context.Background(), "SELECT count(*) FROM sessions WHERE user_id = $1", userID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"keyward/db"
	"keyward/web/auth"
	"keyward/web/webtest"
)

// TestConfirmRefusesACallerWhoseRoleChanged: a request checks the
// caller's role when it begins; if the role changes before the confirmed
// change runs, the change is refused and nothing runs. While it runs,
// the user's row is locked, so a demotion waits for it to commit.
func TestConfirmRefusesACallerWhoseRoleChanged(t *testing.T) {
	e := webtest.New(t)
	ctx := context.Background()
	u, secret, _ := e.EnrolledUser(e.Tenant, "bob@acme.test", auth.RoleAdmin)
	user, tenant, err := e.App.Auth.Session(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	by := auth.Caller{User: user, Tenant: tenant}

	// While a confirmed change runs, a demotion waits for it.
	demoted := make(chan time.Time, 1)
	err = e.App.Auth.Confirm(ctx, by, e.Code(secret), func(q *db.Queries, now time.Time) error {
		go func() {
			e.Store.Pool.Exec(ctx, `UPDATE users SET role = 'viewer' WHERE id = $1`, u.ID)
			demoted <- time.Now()
		}()
		time.Sleep(300 * time.Millisecond) // the demotion has been sent and must wait
		select {
		case <-demoted:
			return errors.New("the demotion committed while the confirmed change ran")
		default:
			return nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	<-demoted

	// The request that began as an admin is now refused, before its code
	// is checked, and its change does not run.
	ran := false
	err = e.App.Auth.Confirm(ctx, by, e.NextCode(secret), func(q *db.Queries, now time.Time) error { ran = true; return nil })
	if !errors.Is(err, auth.ErrCallerChanged) || ran {
		t.Fatalf("a caller demoted since the request began: err %v, change ran %v", err, ran)
	}
}

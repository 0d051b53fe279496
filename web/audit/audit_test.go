package audit_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/audit"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

func setup(t *testing.T) (*db.Store, int64) {
	store := db.NewStore(dbtest.New(t))
	tn, err := store.CreateTenant(context.Background(), db.CreateTenantParams{Slug: "acme", Name: "Acme", Plan: "free"})
	if err != nil {
		t.Fatal(err)
	}
	return store, tn.ID
}

func record(t *testing.T, store *db.Store, tenant *int64, action string) {
	t.Helper()
	err := store.InTx(context.Background(), func(q *db.Queries) error {
		return audit.Record(context.Background(), q, time.Now(), audit.Event{TenantID: tenant, ActorType: audit.ActorUser, ActorID: "7",
			Action: action, IP: "192.0.2.1", UserAgent: "test", Diff: map[string]any{"name": map[string]string{"from": "a", "to": "b"}}})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestChainVerifiesAndConcurrentWritersDoNotFork(t *testing.T) {
	store, tenant := setup(t)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); record(t, store, &tenant, "api_key.updated") }()
	}
	wg.Wait()
	record(t, store, nil, "auth.login.failed")
	rep, err := audit.Verify(context.Background(), store.Queries)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Broken != nil || rep.Events != 9 || rep.Chains != 2 {
		t.Fatalf("report = %+v, broken %v", rep, rep.Broken)
	}
}

func TestAppendOnly(t *testing.T) {
	store, tenant := setup(t)
	record(t, store, &tenant, "api_key.created")
	ctx := context.Background()
	for _, sql := range []string{
		`UPDATE audit_events SET action = 'x'`,
		`DELETE FROM audit_events`,
		`TRUNCATE audit_events`,
	} {
		if _, err := store.Pool.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want the append-only refusal", sql, err)
		}
	}
}

func TestVerifyFindsFirstBrokenLink(t *testing.T) {
	store, tenant := setup(t)
	for i := 0; i < 5; i++ {
		record(t, store, &tenant, "api_key.updated")
	}
	ctx := context.Background()
	// Only someone bypassing the trigger (a superuser) can alter a row; the
	// chain must still tell.
	tamper := func(sql string) {
		t.Helper()
		for _, s := range []string{`ALTER TABLE audit_events DISABLE TRIGGER USER`, sql, `ALTER TABLE audit_events ENABLE TRIGGER USER`} {
			if _, err := store.Pool.Exec(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	tamper(`UPDATE audit_events SET diff = '{"name":"forged"}' WHERE seq = 3`)
	rep, err := audit.Verify(ctx, store.Queries)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Broken == nil || rep.Broken.Seq != 3 || !strings.Contains(rep.Broken.Reason, "altered") {
		t.Fatalf("altered event: %+v", rep.Broken)
	}
	tamper(`DELETE FROM audit_events WHERE seq >= 3`)
	record(t, store, &tenant, "api_key.updated") // seq 6 after a gap
	rep, _ = audit.Verify(ctx, store.Queries)
	if rep.Broken == nil || rep.Broken.Seq != 6 || !strings.Contains(rep.Broken.Reason, "missing") {
		t.Fatalf("deleted events: %+v", rep.Broken)
	}
}

func TestVerifyFindsEventsCutFromTheEnd(t *testing.T) {
	store, tenant := setup(t)
	for i := 0; i < 4; i++ {
		record(t, store, &tenant, "api_key.updated")
	}
	ctx := context.Background()
	for _, s := range []string{`ALTER TABLE audit_events DISABLE TRIGGER USER`, `DELETE FROM audit_events WHERE seq = 4`, `ALTER TABLE audit_events ENABLE TRIGGER USER`} {
		if _, err := store.Pool.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := audit.Verify(ctx, store.Queries)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Broken == nil || !strings.Contains(rep.Broken.Reason, "removed from the end") {
		t.Fatalf("truncated chain: %+v", rep.Broken)
	}
}

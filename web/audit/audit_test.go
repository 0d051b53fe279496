package audit_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/audit"
	"keyward/web/audit/audittest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

var keys = audittest.Keys()

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
		return audit.Record(context.Background(), q, keys, time.Now(), audit.Event{TenantID: tenant, ActorType: audit.ActorUser, ActorID: "7",
			Action: action, IP: "192.0.2.1", UserAgent: "test", Diff: map[string]any{"name": map[string]string{"from": "a", "to": "b"}}})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func verify(t *testing.T, store *db.Store) audit.Report {
	t.Helper()
	rep, err := audit.Verify(context.Background(), store.Queries, keys)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// events returns a chain's events in order.
func events(t *testing.T, store *db.Store, chain int64) []db.AuditEvent {
	t.Helper()
	es, err := store.ListAuditEventsInChain(context.Background(), db.ListAuditEventsInChainParams{ChainID: chain, Seq: 0, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// asSuperuser runs statements in one transaction with every trigger off,
// as a database superuser could: the append-only and forward-only
// triggers do not stop them, and the chain must still tell.
func asSuperuser(t *testing.T, store *db.Store, fn func(tx pgx.Tx) error) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, store.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		return fn(tx)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func exec(sql string, args ...any) func(pgx.Tx) error {
	return func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), sql, args...)
		return err
	}
}

// TestConcurrentWritersLeaveOneChain: 20 writers in one tenant at once
// leave one chain, numbered 1 to 20 without a gap, every event keyed, and
// it verifies, as does the chain of events of no tenant.
func TestConcurrentWritersLeaveOneChain(t *testing.T) {
	store, tenant := setup(t)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() { defer wg.Done(); record(t, store, &tenant, "api_key.updated") }()
	}
	wg.Wait()
	record(t, store, nil, "auth.login.failed")
	rep := verify(t, store)
	if rep.Broken != nil || rep.Events != 21 || rep.Chains != 2 {
		t.Fatalf("report = %+v, broken %v", rep, rep.Broken)
	}
	for i, e := range events(t, store, tenant) {
		if e.Seq != int64(i+1) || e.HashAlg != audit.AlgHMAC {
			t.Fatalf("event %d: seq %d, %s", i, e.Seq, e.HashAlg)
		}
	}
	head, err := store.LockAuditChainHead(context.Background(), tenant)
	if err != nil || head.Seq != 20 || !head.Keyed {
		t.Fatalf("head = %+v, %v", head, err)
	}
}

func TestRecordRefusesToWriteWithoutKeys(t *testing.T) {
	store, tenant := setup(t)
	err := store.InTx(context.Background(), func(q *db.Queries) error {
		return audit.Record(context.Background(), q, nil, time.Now(), audit.Event{TenantID: &tenant, Action: "x"})
	})
	if err == nil || len(events(t, store, tenant)) != 0 {
		t.Fatalf("err = %v; an event written without keys", err)
	}
}

func TestAppendOnly(t *testing.T) {
	store, tenant := setup(t)
	record(t, store, &tenant, "api_key.created")
	record(t, store, &tenant, "api_key.updated")
	ctx := context.Background()
	for _, c := range []struct{ sql, says string }{
		{`UPDATE audit_events SET action = 'x'`, "append-only"},
		{`DELETE FROM audit_events`, "append-only"},
		{`TRUNCATE audit_events`, "append-only"},
		{`DELETE FROM audit_chain_heads`, "only moves forward"},
		{`TRUNCATE audit_chain_heads`, "only moves forward"},
		{`UPDATE audit_chain_heads SET seq = seq - 1`, "only moves forward"},
		{`UPDATE audit_chain_heads SET hash = '\x00'`, "only moves forward"},
		{`UPDATE audit_chain_heads SET seq = seq + 1, keyed = false`, "only moves forward"},
	} {
		if _, err := store.Pool.Exec(ctx, c.sql); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: err = %v, want the %s refusal", c.sql, err, c.says)
		}
	}
	if rep := verify(t, store); rep.Broken != nil || rep.Events != 2 {
		t.Fatalf("after refused changes: %+v", rep)
	}
}

func TestVerifyFindsFirstBrokenLink(t *testing.T) {
	store, tenant := setup(t)
	for range 5 {
		record(t, store, &tenant, "api_key.updated")
	}
	asSuperuser(t, store, exec(`UPDATE audit_events SET diff = '{"name":"forged"}' WHERE seq = 3`))
	rep := verify(t, store)
	if rep.Broken == nil || rep.Broken.Seq != 3 || !strings.Contains(rep.Broken.Reason, "altered") {
		t.Fatalf("altered event: %+v", rep.Broken)
	}
	asSuperuser(t, store, exec(`DELETE FROM audit_events WHERE seq >= 3`))
	record(t, store, &tenant, "api_key.updated") // seq 6 after a gap
	rep = verify(t, store)
	if rep.Broken == nil || rep.Broken.Seq != 6 || !strings.Contains(rep.Broken.Reason, "missing") {
		t.Fatalf("deleted events: %+v", rep.Broken)
	}
}

func TestVerifyFindsEventsCutFromTheEnd(t *testing.T) {
	store, tenant := setup(t)
	for range 4 {
		record(t, store, &tenant, "api_key.updated")
	}
	asSuperuser(t, store, exec(`DELETE FROM audit_events WHERE seq = 4`))
	rep := verify(t, store)
	if rep.Broken == nil || !strings.Contains(rep.Broken.Reason, "removed from the end") {
		t.Fatalf("truncated chain: %+v", rep.Broken)
	}
}

// rewrite changes the diff of the event at seq from, then recomputes the
// plain SHA-256 of it and of every later event, relinking each to the
// one before, and moves the head to the new last hash: all that someone
// with the database but not the secret can do. With relabel, the events
// rewritten also claim to be SHA-256 ones; without, they keep claiming
// to be keyed.
func rewrite(t *testing.T, store *db.Store, chain, from int64, relabel bool) {
	t.Helper()
	es := events(t, store, chain)
	ctx := context.Background()
	asSuperuser(t, store, func(tx pgx.Tx) error {
		prev := make([]byte, 32) // the first event's prev_hash
		for _, e := range es {
			if e.Seq < from {
				prev = e.Hash
				continue
			}
			if e.Seq == from {
				e.Diff = []byte(`{"name":"forged"}`)
			}
			if relabel {
				e.HashAlg = audit.AlgSHA256
			}
			e.PrevHash = prev
			e.Hash = audit.Hash(e)
			prev = e.Hash
			if _, err := tx.Exec(ctx, `UPDATE audit_events SET diff = $2, prev_hash = $3, hash = $4, hash_alg = $5 WHERE id = $1`,
				e.ID, e.Diff, e.PrevHash, e.Hash, e.HashAlg); err != nil {
				return err
			}
		}
		keyed := !relabel || from > 1
		_, err := tx.Exec(ctx, `UPDATE audit_chain_heads SET hash = $2, keyed = $3 WHERE chain_id = $1`, chain, prev, keyed)
		return err
	})
}

// TestRewrittenEventWithRecomputedHashesIsReported: an event altered, and
// every hash after it recomputed with plain SHA-256, is reported at the
// altered event, whether the rewritten events still claim to be keyed
// or say they are SHA-256.
func TestRewrittenEventWithRecomputedHashesIsReported(t *testing.T) {
	for _, c := range []struct {
		relabel bool
		says    string
	}{
		{false, "do not match its HMAC"},
		{true, "SHA-256 event after the chain became keyed"},
	} {
		store, tenant := setup(t)
		tn, err := store.CreateTenant(context.Background(), db.CreateTenantParams{Slug: "other", Name: "Other", Plan: "free"})
		if err != nil {
			t.Fatal(err)
		}
		other := tn.ID
		for range 5 {
			record(t, store, &tenant, "api_key.updated")
			record(t, store, &other, "api_key.updated")
		}
		rewrite(t, store, tenant, 3, c.relabel)
		rep := verify(t, store)
		if rep.Broken == nil || rep.Broken.ChainID != tenant || rep.Broken.Seq != 3 || !strings.Contains(rep.Broken.Reason, c.says) {
			t.Errorf("relabel %v: %+v", c.relabel, rep.Broken)
		}
		// Three events of the broken chain were read, to the break, and
		// all five of the other.
		if len(rep.Breaks) != 1 || rep.Chains != 2 || rep.Events != 3+5 {
			t.Errorf("relabel %v: the intact chain is not reported as such: %+v", c.relabel, rep)
		}
	}
}

// TestDeletedHeadIsReported: a chain whose head was deleted is still
// walked, and reported; another chain is not.
func TestDeletedHeadIsReported(t *testing.T) {
	store, tenant := setup(t)
	for range 3 {
		record(t, store, &tenant, "api_key.updated")
	}
	record(t, store, nil, "auth.login.failed")
	asSuperuser(t, store, exec(`DELETE FROM audit_chain_heads WHERE chain_id = $1`, tenant))
	rep := verify(t, store)
	if len(rep.Breaks) != 1 || rep.Broken.ChainID != tenant || !strings.Contains(rep.Broken.Reason, "no head") || rep.Chains != 2 || rep.Events != 4 {
		t.Fatalf("deleted head: %+v", rep)
	}
}

// TestHeadMovedBackIsReported: a head moved back behind its chain's last
// event, leaving the events, is reported.
func TestHeadMovedBackIsReported(t *testing.T) {
	store, tenant := setup(t)
	for range 3 {
		record(t, store, &tenant, "api_key.updated")
	}
	second := events(t, store, tenant)[1]
	asSuperuser(t, store, exec(`UPDATE audit_chain_heads SET seq = 2, hash = $2 WHERE chain_id = $1`, tenant, second.Hash))
	rep := verify(t, store)
	if rep.Broken == nil || !strings.Contains(rep.Broken.Reason, "head was moved back") {
		t.Fatalf("head moved back: %+v", rep.Broken)
	}
}

// TestChainRebuiltUnderAKeyedHeadIsReported: a whole chain rebuilt with
// plain SHA-256 under a head still marked keyed is reported: a keyed head
// always has a keyed event.
func TestChainRebuiltUnderAKeyedHeadIsReported(t *testing.T) {
	store, tenant := setup(t)
	for range 3 {
		record(t, store, &tenant, "api_key.updated")
	}
	rewrite(t, store, tenant, 1, true)
	asSuperuser(t, store, exec(`UPDATE audit_chain_heads SET keyed = true WHERE chain_id = $1`, tenant))
	rep := verify(t, store)
	if rep.Broken == nil || !strings.Contains(rep.Broken.Reason, "none of its events is") {
		t.Fatalf("rebuilt chain under a keyed head: %+v", rep)
	}
}

// TestChainRewrittenAsSHA256IsReported: a keyed chain rebuilt by someone
// without the key, every event relabelled plain SHA-256 with its hash
// recomputed and its head marked unkeyed, is consistent link by link; it
// is reported because none of its events is keyed.
func TestChainRewrittenAsSHA256IsReported(t *testing.T) {
	store, tenant := setup(t)
	for range 3 {
		record(t, store, &tenant, "api_key.updated")
	}
	rewrite(t, store, tenant, 1, true)
	for _, e := range events(t, store, tenant) {
		if e.HashAlg != audit.AlgSHA256 || string(audit.Hash(e)) != string(e.Hash) {
			t.Fatalf("event %d is not a consistent SHA-256 event: the test proves nothing", e.Seq)
		}
	}
	rep := verify(t, store)
	if rep.Broken == nil || rep.Broken.ChainID != tenant || rep.Broken.Seq != 3 ||
		!strings.Contains(rep.Broken.Reason, "none of its events is keyed") || !strings.Contains(rep.Broken.Reason, "rewritten without the key") {
		t.Fatalf("a chain rewritten as SHA-256: %+v", rep.Broken)
	}
}

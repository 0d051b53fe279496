package audit_test

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/audit"
)

// keyedMigration is the migration that keys the chain.
const keyedMigration = 6

// TestChainFromBeforeTheUpgrade: chains of plain SHA-256 events written
// before migration 00006 are reported by verify after it (never sealed:
// anyone could have rebuilt them) until they are sealed. The next event
// recorded on one is preceded by an audit.chain_keyed marker linked to
// the last SHA-256 hash; the checkpoint job seals the other, even though
// its last event is a checkpoint (which a rewritten chain may end with
// too); then every chain verifies. A SHA-256 event appended after a
// marker is reported. The migration's Down runs too.
func TestChainFromBeforeTheUpgrade(t *testing.T) {
	url := dbtest.NewURL(t)
	sqldb, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, sqldb, os.DirFS("../../db/migrations"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.DownTo(ctx, keyedMigration-1); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	// What the previous version's Record wrote: SHA-256 events, the
	// last of them the given actions, and the chain's head.
	oldChain := func(slug string, actions ...string) (int64, []byte) {
		var tenant int64
		if err := sqldb.QueryRowContext(ctx, `INSERT INTO tenants (slug, name, plan) VALUES ($1, $1, 'free') RETURNING id`, slug).Scan(&tenant); err != nil {
			t.Fatal(err)
		}
		prev := make([]byte, 32)
		for i, action := range actions {
			seq := int64(i + 1)
			e := db.AuditEvent{ChainID: tenant, Seq: seq, TenantID: &tenant, OccurredAt: at, ActorType: "user", ActorID: "7",
				Action: action, TargetType: "api_key", TargetID: "k", Diff: []byte(`{"name":{"from":"a","to":"b"}}`), PrevHash: prev}
			e.Hash = audit.Hash(e)
			if _, err := sqldb.ExecContext(ctx, `INSERT INTO audit_events (chain_id, seq, tenant_id, occurred_at, actor_type, actor_id, action,
			target_type, target_id, ip, user_agent, diff, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '', '', $10, $11, $12)`,
				e.ChainID, e.Seq, e.TenantID, e.OccurredAt, e.ActorType, e.ActorID, e.Action, e.TargetType, e.TargetID, e.Diff, e.PrevHash, e.Hash); err != nil {
				t.Fatal(err)
			}
			prev = e.Hash
		}
		if _, err := sqldb.ExecContext(ctx, `INSERT INTO audit_chain_heads (chain_id, seq, hash) VALUES ($1, $2, $3)`, tenant, len(actions), prev); err != nil {
			t.Fatal(err)
		}
		return tenant, prev
	}
	tenant, prev := oldChain("acme", "api_key.updated", "api_key.updated", "api_key.updated")
	other, otherPrev := oldChain("globex", "api_key.updated", audit.ActionCheckpoint)
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}

	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := db.NewStore(pool)
	rep := verify(t, store)
	if rep.Events != 5 || len(rep.Breaks) != 2 || rep.Breaks[0].ChainID != tenant || rep.Breaks[1].ChainID != other {
		t.Fatalf("the old chains after the upgrade: %+v", rep)
	}
	for _, b := range rep.Breaks {
		if !strings.Contains(b.Reason, "none of its events is keyed") || !strings.Contains(b.Reason, "never sealed") {
			t.Errorf("an unsealed chain: %s", b)
		}
	}

	record(t, store, &tenant, "api_key.revoked")
	es := events(t, store, tenant)
	if len(es) != 5 {
		t.Fatalf("%d events, want 3 old, the marker and the new one", len(es))
	}
	marker, next := es[3], es[4]
	if marker.Action != audit.ActionChainKeyed || marker.HashAlg != audit.AlgHMAC || string(marker.PrevHash) != string(prev) ||
		string(marker.Diff) != `{"sha256_events":3}` {
		t.Fatalf("marker: %+v", marker)
	}
	if next.Action != "api_key.revoked" || next.HashAlg != audit.AlgHMAC || string(next.PrevHash) != string(marker.Hash) {
		t.Fatalf("the event after the marker: %+v", next)
	}
	for _, e := range es[:3] {
		if e.HashAlg != audit.AlgSHA256 {
			t.Fatalf("an old event is now %s", e.HashAlg)
		}
	}
	if rep := verify(t, store); rep.Events != 7 || len(rep.Breaks) != 1 || rep.Breaks[0].ChainID != other {
		t.Fatalf("one chain keyed, the other not: %+v", rep)
	}
	record(t, store, &tenant, "api_key.updated") // no second marker
	if es := events(t, store, tenant); len(es) != 6 || es[5].Action != "api_key.updated" {
		t.Fatalf("events after a second record: %d", len(es))
	}

	// The checkpoint job seals the other chain, whose last event, a
	// checkpoint, would otherwise keep it from being checkpointed.
	cps, err := audit.TakeCheckpoints(ctx, store, keys, time.Now())
	if err != nil || len(cps) != 2 {
		t.Fatalf("checkpoints: %v, %v", cps, err)
	}
	oes := events(t, store, other)
	if len(oes) != 4 || oes[2].Action != audit.ActionChainKeyed || string(oes[2].PrevHash) != string(otherPrev) ||
		oes[2].HashAlg != audit.AlgHMAC || oes[3].Action != audit.ActionCheckpoint {
		t.Fatalf("the other chain after the checkpoint job: %+v", oes)
	}
	if n, err := audit.SealChains(ctx, store, keys, time.Now()); err != nil || n != 0 {
		t.Fatalf("sealing again: %d, %v", n, err)
	}
	if rep := verify(t, store); rep.Broken != nil || rep.Events != 11 {
		t.Fatalf("every chain keyed: %+v", rep)
	}

	// Someone without the key appends a SHA-256 event, correctly linked,
	// and moves the head.
	last := events(t, store, tenant)[6]
	forged := db.AuditEvent{ChainID: tenant, Seq: 8, TenantID: &tenant, OccurredAt: at, ActorType: "system",
		Action: "api_key.created", Diff: []byte(`{}`), PrevHash: last.Hash, HashAlg: audit.AlgSHA256}
	forged.Hash = audit.Hash(forged)
	asSuperuser(t, store, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO audit_events (chain_id, seq, tenant_id, occurred_at, actor_type, action, diff, prev_hash, hash, hash_alg)
			VALUES ($1, 8, $2, $3, 'system', 'api_key.created', '{}', $4, $5, 'sha256')`, tenant, tenant, at, forged.PrevHash, forged.Hash); err != nil {
			return err
		}
		return exec(`UPDATE audit_chain_heads SET seq = 8, hash = $2 WHERE chain_id = $1`, tenant, forged.Hash)(tx)
	})
	if stored := events(t, store, tenant)[7]; string(audit.Hash(stored)) != string(stored.Hash) {
		t.Fatal("the forged event's SHA-256 is not right: the test proves nothing")
	}
	rep = verify(t, store)
	if rep.Broken == nil || rep.Broken.Seq != 8 || !strings.Contains(rep.Broken.Reason, "SHA-256 event after the chain became keyed") {
		t.Fatalf("a SHA-256 event after the marker: %+v", rep.Broken)
	}

	// Down: the columns and the triggers go; the events stay.
	if _, err := p.DownTo(ctx, keyedMigration-1); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := sqldb.QueryRowContext(ctx, `SELECT count(*) FROM audit_events`).Scan(&n); err != nil || n != 12 {
		t.Fatalf("%d events after Down (%v)", n, err)
	}
}

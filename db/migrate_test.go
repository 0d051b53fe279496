package db_test

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/apikey"
	"keyward/web/audit/audittest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// TestRequestLogPartitionsMigration: migration 00005 moves the request
// log's rows into day partitions, each row into its day's, and its Down
// turns a counted row back into as many rows.
func TestRequestLogPartitionsMigration(t *testing.T) {
	sqldb, err := sql.Open("pgx", dbtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, sqldb, os.DirFS("migrations"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.DownTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	ats := []time.Time{now.AddDate(0, 0, -2), now.AddDate(0, 0, -1), now, now, now.AddDate(0, 0, 10)}
	for i, at := range ats {
		if _, err := sqldb.ExecContext(ctx, `INSERT INTO api_request_logs
			(tenant_id, key_id, key_prefix, method, path, status, ip, latency_us, request_id, at)
			VALUES (1, gen_random_uuid(), 'kw_prod_x', 'GET', '/api/v1/key', 200, '192.0.2.1', 10, $1, $2)`, string(rune('a'+i)), at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := sqldb.QueryContext(ctx, "SELECT tableoid::regclass::text, at, count FROM api_request_logs ORDER BY request_id")
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for ; rows.Next(); i++ {
		var part string
		var at time.Time
		var n int
		if err := rows.Scan(&part, &at, &n); err != nil {
			t.Fatal(err)
		}
		if want := "api_request_logs_p" + ats[i].Format("20060102"); part != want || !at.Equal(ats[i].Truncate(time.Microsecond)) || n != 1 {
			t.Errorf("row %d: in %s at %v counting %d; want %s at %v counting 1", i, part, at, n, want, ats[i])
		}
	}
	if rows.Close(); i != len(ats) {
		t.Fatalf("%d rows after the migration, want %d", i, len(ats))
	}

	if _, err := sqldb.ExecContext(ctx, "UPDATE api_request_logs SET count = 3 WHERE request_id = 'a'"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := sqldb.QueryRowContext(ctx, "SELECT count(*) FROM api_request_logs").Scan(&n); err != nil || n != len(ats)+2 {
		t.Fatalf("%d rows after Down (%v), want %d", n, err, len(ats)+2)
	}
}

// TestKeyExpiryStageMigration: migration 00011 starts each existing key
// at the expiry stage already due, so the expiry job's first run after an
// upgrade records no expiry, and sends no notice, that came before it;
// the notices still to come do come.
func TestKeyExpiryStageMigration(t *testing.T) {
	pool := dbtest.New(t)
	sqldb := stdlib.OpenDBFromPool(pool)
	defer sqldb.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, sqldb, os.DirFS("migrations"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.DownTo(ctx, 10); err != nil {
		t.Fatal(err)
	}
	var tenant int64
	if err := pool.QueryRow(ctx, "INSERT INTO tenants (slug, name) VALUES ('acme', 'Acme') RETURNING id").Scan(&tenant); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	keys := []struct {
		name    string
		expires *time.Time
		stage   int16
	}{
		{"expired a year ago", new(now.AddDate(-1, 0, 0)), 3},
		{"expired an hour ago", new(now.Add(-time.Hour)), 3},
		{"expires in 12 hours", new(now.Add(12 * time.Hour)), 2},
		{"expires in 10 days", new(now.Add(10 * 24 * time.Hour)), 1},
		{"expires in 30 days", new(now.Add(30 * 24 * time.Hour)), 0},
		{"never expires", nil, 0},
	}
	for _, k := range keys {
		if _, err := pool.Exec(ctx, "INSERT INTO api_keys (tenant_id, name, environment, scopes, expires_at) VALUES ($1, $2, 'production', '{}', $3)",
			tenant, k.name, k.expires); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		var stage int16
		if err := pool.QueryRow(ctx, "SELECT expiry_stage FROM api_keys WHERE name = $1", k.name).Scan(&stage); err != nil || stage != k.stage {
			t.Errorf("%s: stage %d (%v), want %d", k.name, stage, err, k.stage)
		}
	}

	store, audits := db.NewStore(pool), audittest.Keys()
	if got, err := apikey.RecordExpiries(ctx, store, audits, now.Add(time.Minute)); err != nil || got != (apikey.Expiries{}) {
		t.Fatalf("first run after the upgrade: %+v (%v), want nothing", got, err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE action LIKE 'api_key.expir%'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d expiry events (%v)", n, err)
	}
	// A day on, the key that had 12 hours left expires, the one that had
	// 10 days left gets nothing new yet.
	if got, err := apikey.RecordExpiries(ctx, store, audits, now.Add(24*time.Hour)); err != nil || got != (apikey.Expiries{Expired: 1}) {
		t.Fatalf("a day on: %+v (%v), want one expiry", got, err)
	}
}

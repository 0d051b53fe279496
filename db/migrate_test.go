package db_test

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"keyward/db/dbtest"
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

package dbtest

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

func TestNewIsMigrated(t *testing.T) {
	pool := New(t)
	ctx := context.Background()
	var applied int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM goose_db_version WHERE version_id > 0").Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied == 0 {
		t.Fatal("no migration applied")
	}
	var tables int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d migrations, %d tables", applied, tables)
}

// Parallel tests get separate databases: each creates the same table.
func TestIsolation(t *testing.T) {
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			pool := New(t)
			ctx := context.Background()
			if _, err := pool.Exec(ctx, fmt.Sprintf("CREATE TABLE probe (n int); INSERT INTO probe VALUES (%d)", i)); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := pool.QueryRow(ctx, "SELECT sum(n) FROM probe").Scan(&n); err != nil || n != i {
				t.Fatalf("sum = %d, %v", n, err)
			}
		})
	}
}

// NewURL's database is usable over a separate connection and is dropped
// after its test even while that connection is still open.
func TestNewURLDroppedAfterTest(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		conn, err := pgx.Connect(context.Background(), NewURL(t))
		if err != nil {
			t.Fatal(err)
		}
		// Left open on purpose, like a server process still running: the
		// drop must force it closed.
		if err := conn.QueryRow(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	var exists bool
	if err := admin.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if name == "" || exists {
		t.Fatalf("database %q still exists after its test", name)
	}
	var allow bool
	if err := admin.QueryRow(context.Background(), "SELECT datallowconn FROM pg_database WHERE datname = $1", template).Scan(&allow); err != nil || allow {
		t.Fatalf("template accepts connections (%v, %v)", allow, err)
	}
}

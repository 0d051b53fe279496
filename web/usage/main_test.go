package usage_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/usage"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// row is a request-log row of a 200 at at; every row gets its own id.
func row(keyID string, i int, at time.Time) usage.Request {
	return usage.Request{TenantID: 1, KeyID: keyID, KeyPrefix: "kw_prod_abcd", Method: "GET", Path: "/api/v1/key", Status: 200,
		IP: "192.0.2.1", Latency: time.Millisecond, RequestID: fmt.Sprintf("r%06d", i), At: at}
}

func count(t *testing.T, store *db.Store, where string, args ...any) int {
	t.Helper()
	var n int
	if err := store.Pool.QueryRow(context.Background(), "SELECT coalesce(sum(count), 0) FROM api_request_logs WHERE "+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

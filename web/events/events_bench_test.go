package events_test

import (
	"context"
	"crypto/sha256"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/audit/audittest"
	"keyward/web/auth"
	"keyward/web/events"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

func setup(b testing.TB, configure ...func(*pgxpool.Config)) (*db.Store, events.Partition) {
	store := db.NewStore(dbtest.New(b, configure...))
	ctx := context.Background()
	var p events.Partition
	err := store.InTx(ctx, func(q *db.Queries) error {
		t, err := auth.CreateTenant(ctx, q, audittest.Keys(), "bench", "Bench", "stack", time.Now())
		if err != nil {
			return err
		}
		u, err := auth.CreateUser(ctx, q, audittest.Keys(), t.ID, "b@bench.test", auth.RoleOwner, "correct horse battery staple", false, audit.Actor{Type: audit.ActorSystem}, time.Now())
		if err != nil {
			return err
		}
		k, _, err := apikey.Create(ctx, q, audittest.Keys(), t.ID, apikey.Config{Name: "b", Environment: apikey.Production, Scopes: apikey.AllScopes}, audit.Actor{Type: audit.ActorSystem}, u.ID, time.Now())
		p = events.Partition{TenantID: t.ID, Environment: "production", KeyID: k.ID}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return store, p
}

// BenchmarkIngestOne is events.Ingest of one event with a fresh
// idempotency key: the database side of POST /api/v1/events.
func BenchmarkIngestOne(b *testing.B) {
	store, p := setup(b)
	ctx := context.Background()
	in := events.Input{Source: "bench", Type: "t", OccurredAt: "2026-01-02T15:04:05Z", Data: []byte(`{"n":1}`)}
	body := []byte(`{"success":true}`)
	i := 0
	for b.Loop() {
		i++
		ev, _ := in.Validate("", time.Now())
		_, err := events.Ingest(ctx, store.Queries, p, "k"+strconv.Itoa(i), sha256.Sum256(nil), []events.Event{ev},
			func([]events.Event) (int, []byte, error) { return 201, body, nil }, time.Now())
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlainInsert is the same event written by a bare INSERT: the
// floor BenchmarkIngestOne is compared with.
func BenchmarkPlainInsert(b *testing.B) {
	store, p := setup(b)
	ctx := context.Background()
	for b.Loop() {
		id, _ := uuid.NewV7()
		_, err := store.Pool.Exec(ctx, `INSERT INTO events (id, tenant_id, environment, source, type, occurred_at, received_at, data, key_id)
			VALUES ($1, $2, $3, 'bench', 't', $4, $4, '{"n":1}', $5)`, id.String(), p.TenantID, p.Environment, time.Now(), p.KeyID)
		if err != nil {
			b.Fatal(err)
		}
	}
}

package db

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies every pending migration to the database behind pool,
// ours and then those of River's schema (the job queue, web/jobs), and
// returns what it applied. It is safe to run on every start: each step
// holds a Postgres advisory lock, so two instances starting together do
// not race.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	sqldb := stdlib.OpenDBFromPool(pool)
	defer sqldb.Close()
	applied, err := migrate(ctx, sqldb)
	if err != nil {
		return nil, err
	}
	river, err := migrateRiver(ctx, pool)
	return append(applied, river...), err
}

// MigrateURL is Migrate for a database named by URL; the test harness uses it
// to build its template database.
func MigrateURL(ctx context.Context, url string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	_, err = Migrate(ctx, pool)
	return err
}

// riverLock is the advisory lock key that River's migrations run under:
// rivermigrate takes none of its own.
const riverLock = 7301_0005

// migrateRiver installs or upgrades River's tables with its own
// migrations (rivermigrate), under an advisory lock held on a connection
// of its own for the whole run.
func migrateRiver(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate river: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(riverLock)); err != nil {
		return nil, fmt.Errorf("migrate river: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(riverLock))
	// Its logger says only "nothing to apply"; what it applied is returned.
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("migrate river: %w", err)
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return nil, fmt.Errorf("migrate river: %w", err)
	}
	applied := make([]string, 0, len(res.Versions))
	for _, v := range res.Versions {
		applied = append(applied, fmt.Sprintf("river %03d: %s", v.Version, v.Name))
	}
	return applied, nil
}

func migrate(ctx context.Context, sqldb *sql.DB) ([]string, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqldb, sub, goose.WithSessionLocker(locker))
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	applied := make([]string, 0, len(res))
	for _, r := range res {
		applied = append(applied, r.Source.Path)
	}
	return applied, nil
}

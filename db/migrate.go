package db

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies every pending migration to the database behind pool and
// returns the files it applied. It is safe to run on every start: goose holds
// a Postgres advisory lock, so two instances starting together do not race.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	sqldb := stdlib.OpenDBFromPool(pool)
	defer sqldb.Close()
	return migrate(ctx, sqldb)
}

// MigrateURL is Migrate for a database named by URL; the test harness uses it
// to build its template database.
func MigrateURL(ctx context.Context, url string) error {
	sqldb, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer sqldb.Close()
	_, err = migrate(ctx, sqldb)
	return err
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

package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Named errors. Callers test with errors.Is; Wrap turns pgx's errors into
// these once, here, so no other package needs to know SQLSTATEs.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
)

// Wrap maps pgx.ErrNoRows to ErrNotFound and a unique violation (23505) to
// ErrConflict, keeping the original error in the chain.
func Wrap(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

// Store is the application's handle on Postgres.
type Store struct {
	Pool *pgxpool.Pool
	*Queries
}

// NewStore wraps a pool.
func NewStore(pool *pgxpool.Pool) *Store {
	return &Store{Pool: pool, Queries: New(pool)}
}

// InTx runs fn in one transaction and commits when fn returns nil. A change
// and its audit event go through the same fn, so they land together or not at
// all. fn must not start another transaction.
func (s *Store) InTx(ctx context.Context, fn func(q *Queries) error) error {
	return pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		return fn(s.Queries.WithTx(tx))
	})
}

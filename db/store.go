package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"keyward/web/errs"
)

// Named errors. Every query made through a Store's Queries already returns
// these in place of pgx.ErrNoRows and a unique violation (SQLSTATE 23505),
// with the original error kept in the chain: no caller maps them again.
// They carry a kind (web/errs), so a query's "no rows" is a 404 wherever it
// surfaces unless a service says something better.
var (
	ErrNotFound = errs.New(errs.NotFound, "", "There is nothing at this address, or you do not have access to it.")
	ErrConflict = errs.New(errs.Conflict, "", "That already exists.")
	// ErrUnavailable: the database cannot be reached or is shutting down.
	// A client's request did nothing wrong: 503 with Retry-After.
	ErrUnavailable = &errs.Error{Kind: errs.Unavailable, Code: errs.CodeUnavailable, RetryAfter: 2 * time.Second,
		Message: "Keyward cannot reach its database right now: try again in a few seconds."}
)

// mapErr is the one place pgx's errors become named ones.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if _, named := errs.As(err); named {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	var connErr *pgconn.ConnectError
	// Class 08 is a connection exception, 57P an operator or crash
	// shutdown: the database is away, not the request wrong.
	if errors.As(err, &connErr) || errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")) ||
		pgconn.SafeToRetry(err) && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// mapped is a DBTX whose errors went through mapErr.
type mapped struct{ DBTX }

func (m mapped) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	t, err := m.DBTX.Exec(ctx, sql, args...)
	return t, mapErr(err)
}

func (m mapped) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := m.DBTX.Query(ctx, sql, args...)
	return rows, mapErr(err)
}

func (m mapped) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return mappedRow{m.DBTX.QueryRow(ctx, sql, args...)}
}

func (m mapped) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	n, err := m.DBTX.CopyFrom(ctx, table, cols, src)
	return n, mapErr(err)
}

type mappedRow struct{ pgx.Row }

func (r mappedRow) Scan(dest ...any) error { return mapErr(r.Row.Scan(dest...)) }

// Store is the application's handle on Postgres. Services hold one;
// handlers never do.
type Store struct {
	Pool *pgxpool.Pool
	*Queries
}

// NewStore wraps a pool.
func NewStore(pool *pgxpool.Pool) *Store {
	return &Store{Pool: pool, Queries: New(mapped{pool})}
}

// InTx runs fn in one transaction and commits when fn returns nil. A change
// and its audit event go through the same fn, so they land together or not at
// all. fn must not start another transaction.
func (s *Store) InTx(ctx context.Context, fn func(q *Queries) error) error {
	return mapErr(pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		return fn(New(mapped{tx}))
	}))
}

package db

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"keyward/web/errs"
)

// TestMapErr: pgx's errors become named ones once, here, and whatever was
// already named passes as it is.
func TestMapErr(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens here: the connection is refused
	_, connErr := pgx.Connect(context.Background(), "postgres://x:y@"+addr+"/z?connect_timeout=2")
	if connErr == nil {
		t.Fatal("connected to a closed port")
	}
	for _, c := range []struct {
		name string
		in   error
		want error
		kind errs.Kind
	}{
		{"no rows", pgx.ErrNoRows, ErrNotFound, errs.NotFound},
		{"unique violation", &pgconn.PgError{Code: "23505"}, ErrConflict, errs.Conflict},
		{"connection refused", connErr, ErrUnavailable, errs.Unavailable},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, ErrUnavailable, errs.Unavailable},
		{"connection failure", &pgconn.PgError{Code: "08006"}, ErrUnavailable, errs.Unavailable},
		{"syntax error", &pgconn.PgError{Code: "42601"}, nil, errs.Internal},
		{"canceled", context.Canceled, nil, errs.Internal},
	} {
		got := mapErr(c.in)
		if c.want != nil && !errors.Is(got, c.want) || !errors.Is(got, c.in) || errs.KindOf(got) != c.kind {
			t.Errorf("%s: %v (kind %s), want %v of kind %s keeping the cause", c.name, got, errs.KindOf(got), c.want, c.kind)
		}
		if again := mapErr(got); again != got && c.want != nil {
			t.Errorf("%s: mapping twice wrapped again: %v", c.name, again)
		}
	}
}

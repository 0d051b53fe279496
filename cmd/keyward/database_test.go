package main

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"testing"

	"keyward/db/dbtest"
)

// The pool opens at most KEYWARD_DB_MAX_CONNS connections, whatever the
// URL's pool_max_conns says; without the setting (commands other than
// serve) the URL's stands.
func TestPoolSize(t *testing.T) {
	u, err := url.Parse(dbtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "2")
	u.RawQuery = q.Encode()
	for _, c := range []struct{ setting, want int32 }{{7, 7}, {0, 2}} {
		cfg := config{DatabaseURL: u.String(), DBMaxConns: c.setting}
		store, closeDB, err := openDB(context.Background(), &cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if got := store.Pool.Config().MaxConns; got != c.want {
			t.Errorf("DBMaxConns %d: the pool holds up to %d connections, want %d", c.setting, got, c.want)
		}
		closeDB()
	}
}

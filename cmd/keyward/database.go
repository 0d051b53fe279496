package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"keyward/db"
	"keyward/db/pglocal"
)

// openDB connects to KEYWARD_DATABASE_URL, or starts the embedded cluster
// under the data dir, then migrates. close releases both.
func openDB(ctx context.Context, cfg *config, log *slog.Logger) (store *db.Store, close func(), err error) {
	url := cfg.DatabaseURL
	var cluster *pglocal.Cluster
	if url == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, nil, err
		}
		cluster, err = pglocal.Start(ctx, pglocal.Options{Dir: cfg.DataDir, Logf: func(f string, a ...any) {
			log.Info(fmt.Sprintf(f, a...))
		}})
		if err != nil {
			return nil, nil, err
		}
		if err := cluster.EnsureDatabase(ctx, "keyward"); err != nil {
			cluster.Stop()
			return nil, nil, err
		}
		url = cluster.URL("keyward")
	}
	stop := func() {
		if cluster != nil {
			if err := cluster.Stop(); err != nil {
				log.Error("stopping embedded postgres", "err", err)
			}
		}
	}
	pool, err := newPool(ctx, url, cfg.DBMaxConns)
	if err != nil {
		stop()
		return nil, nil, err
	}
	applied, err := db.Migrate(ctx, pool)
	if err != nil {
		pool.Close()
		stop()
		return nil, nil, err
	}
	for _, a := range applied {
		log.Info("migration applied", "file", a)
	}
	if cfg.DBMaxConns > 0 { // serve: say what it was sized to
		log.Info("database pool", "max_conns", pool.Config().MaxConns)
	}
	return db.NewStore(pool), func() { pool.Close(); stop() }, nil
}

// newPool connects a pool of at most maxConns connections (0: pgx's
// default), whatever pool_max_conns the URL says, and pings it.
func newPool(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("connecting to postgres: %w", err) // pgx leaves the password out
	}
	if maxConns > 0 {
		pcfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	return pool, nil
}

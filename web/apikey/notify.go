package apikey

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Channel is the Postgres notification channel of key changes. Every key
// operation in this package sends the key id on it inside its transaction.
const Channel = "keyward_api_keys"

// Listen subscribes v to key changes on a connection of its own. It returns
// once the first LISTEN is in place, so a server that has started listening
// misses nothing, and keeps listening in the background until ctx ends. A
// lost connection empties the cache (notifications may have been missed)
// and is re-established; until then the cache TTL bounds staleness.
func (v *Verifier) Listen(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	conn, err := listenConn(ctx, pool)
	if err != nil {
		return fmt.Errorf("listening for key changes: %w", err)
	}
	go func() {
		for {
			err := v.receive(ctx, conn)
			conn.Close(context.Background())
			if ctx.Err() != nil {
				return
			}
			log.Warn("key-change notifications interrupted; the cache is emptied and trusted for 1 s until the listener is back", "err", err)
			v.listenerDown()
			for conn == nil || conn.IsClosed() {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
				if conn, err = listenConn(ctx, pool); err != nil {
					log.Warn("reconnecting the key-change listener", "err", err)
					conn = nil
				}
			}
			v.listenerUp()
			log.Info("key-change notifications restored")
		}
	}()
	return nil
}

func listenConn(ctx context.Context, pool *pgxpool.Pool) (*pgx.Conn, error) {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	conn := c.Hijack() // ours alone from now on; the pool opens another
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// healthEvery is how long the listener waits in silence before it checks
// its connection: a connection that died without a word (a NAT or load
// balancer dropping it) would otherwise go unnoticed for many minutes.
const healthEvery = 10 * time.Second

func (v *Verifier) receive(ctx context.Context, conn *pgx.Conn) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, healthEvery)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			v.m.Invalidations.Inc()
			v.Invalidate(n.Payload)
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case wctx.Err() == nil:
			return err
		}
		// Silence: prove the connection is alive.
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return err
		}
	}
}

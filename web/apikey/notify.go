package apikey

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"keyward/db"
)

// Channel is the Postgres notification channel of key changes. Every key
// operation in this package sends the key id on it inside its transaction.
const Channel = "keyward_api_keys"

// Listen subscribes v to key changes on a connection of its own. It returns
// once the first LISTEN is in place, so a server that has started listening
// misses nothing, and keeps listening in the background until ctx ends. A
// lost connection is re-established; meanwhile cached keys are served for
// at most the staleness bound, and on reconnect every key changed since
// the cache was last known current is dropped before it is trusted again.
func (v *Verifier) Listen(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	conn, err := listenConn(ctx, pool)
	if err != nil {
		return fmt.Errorf("listening for key changes: %w", err)
	}
	v.markCurrent()
	go func() {
		for {
			err := v.receive(ctx, conn)
			conn.Close(context.Background())
			if ctx.Err() != nil {
				return
			}
			log.Warn("key-change notifications interrupted; cached keys are served, re-read whenever the database answers, until the listener is back",
				"err", err, "stale_max", v.staleMax)
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
					continue
				}
				// Listening again: catch up on what was missed, then trust
				// the cache. A failure here is one more reconnect.
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err = v.listenerUp(cctx, db.New(conn))
				cancel()
				if err != nil {
					log.Warn("catching up on key changes after reconnecting", "err", err)
					conn.Close(context.Background())
					conn = nil
				}
			}
			log.Info("key-change notifications restored; keys changed meanwhile were dropped from the cache")
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
			v.markCurrent()
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
		v.markCurrent()
	}
}

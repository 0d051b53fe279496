package dbtest

import (
	"context"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Counter is a pgx tracer that records every statement and COPY a pool
// sends, so a test can show what a request did (or did not) ask the
// database.
type Counter struct {
	mu   sync.Mutex
	sqls []string
}

// Trace installs c on a pool configuration: pass it to New.
func (c *Counter) Trace(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = c }

// TraceQueryStart implements pgx.QueryTracer.
func (c *Counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.add(d.SQL)
	return ctx
}

// TraceQueryEnd implements pgx.QueryTracer.
func (c *Counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceCopyFromStart implements pgx.CopyFromTracer.
func (c *Counter) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromStartData) context.Context {
	c.add("COPY " + d.TableName.Sanitize())
	return ctx
}

// TraceCopyFromEnd implements pgx.CopyFromTracer.
func (c *Counter) TraceCopyFromEnd(context.Context, *pgx.Conn, pgx.TraceCopyFromEndData) {}

func (c *Counter) add(sql string) {
	c.mu.Lock()
	c.sqls = append(c.sqls, sql)
	c.mu.Unlock()
}

// Len is how many statements were sent so far.
func (c *Counter) Len() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.sqls) }

// Since returns the statements sent after the first n.
func (c *Counter) Since(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.sqls[n:]...)
}

// Matching counts the statements after the first n that contain substr.
func (c *Counter) Matching(n int, substr string) int {
	k := 0
	for _, s := range c.Since(n) {
		if strings.Contains(s, substr) {
			k++
		}
	}
	return k
}

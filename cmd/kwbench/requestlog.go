package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// fillResult is the request log as the keyed runs found it.
type fillResult struct {
	Rows    int64         // rows inserted
	Days    int           // spread over this many days before the run
	Elapsed time.Duration // the INSERT … SELECT and ANALYZE
	Total   int64         // rows in api_request_logs afterwards
	Err     error
}

// fillRequestLog gives the request log n rows of the bench key, spread
// evenly over the days before now, as months of traffic would leave it:
// the partitions of those days are created first (by the migration's own
// function, as the hourly job does), then one INSERT … SELECT
// generate_series writes the rows and ANALYZE reads the table, so the
// runs that follow write into a table with indexes of that size.
func fillRequestLog(ctx context.Context, pool *pgxpool.Pool, f fixture, n int64, days int) fillResult {
	r := fillResult{Rows: n, Days: days}
	start := time.Now()
	var prefix string
	err := pool.QueryRow(ctx, "SELECT prefix FROM api_key_secrets WHERE key_id = $1 ORDER BY id LIMIT 1", f.KeyID).Scan(&prefix)
	if err == nil {
		_, err = pool.Exec(ctx, "SELECT request_log_partitions_ensure($1::timestamptz - make_interval(days => $2), $1::timestamptz + interval '3 days')",
			start, days)
	}
	if err == nil {
		// Rows end a minute before now, so none of them falls in a run's
		// window; each has its own request id.
		_, err = pool.Exec(ctx, `INSERT INTO api_request_logs (tenant_id, key_id, key_prefix, method, path, status, ip, latency_us, request_id, at, count)
SELECT $1, $2, $3, 'GET', '/api/v1/key', 200, '127.0.0.1', 150 + i % 400, 'fill-' || i,
       $4::timestamptz - interval '1 minute' - make_interval(secs => i * ($5 * 86400.0 / $6)), 1
FROM generate_series(1, $6::bigint) AS i`,
			f.TenantID, f.KeyID, prefix, start, days, n)
	}
	if err == nil {
		_, err = pool.Exec(ctx, "ANALYZE api_request_logs")
	}
	if err == nil {
		err = pool.QueryRow(ctx, "SELECT count(*) FROM api_request_logs").Scan(&r.Total)
	}
	r.Elapsed, r.Err = time.Since(start), err
	return r
}

// logCheck is what became of the request-log rows of one keyed run.
type logCheck struct {
	Run      runResult
	Answered uint64  // responses with a status (each one is a logged request)
	Logged   int64   // requests in api_request_logs for the key since the run began
	Written  float64 // request-log rows the server says it wrote meanwhile (keyward_flush_batch_size_sum)
	Dropped  float64 // keyward_buffer_dropped_total{buffer="request_log"}, delta
	Errors   float64 // keyward_flush_errors_total{buffer="request_log"}, delta
	Settle   time.Duration
	Complete bool // every answered request was found in the table
	Err      string
}

// OK reports whether every answered request has its row and none was
// dropped.
func (c logCheck) OK() bool {
	return c.Err == "" && c.Complete && c.Dropped == 0 && c.Logged == int64(c.Answered)
}

// answered counts the responses that came back with a status: each of
// those requests reached the server's handler and was logged.
func answered(r runResult) uint64 { return r.Requests - r.Codes[0] }

// waitLogged polls the rows of keyID logged since `since` until every one
// of want requests is there, or the count has not moved for quiet (the
// server has nothing more to write), or limit passes. It returns the last
// count and how long it waited.
func waitLogged(ctx context.Context, pool *pgxpool.Pool, keyID string, since time.Time, want uint64, quiet, limit time.Duration) (int64, time.Duration, error) {
	start := time.Now()
	var last int64 = -1
	lastMove := start
	for {
		var n int64
		err := pool.QueryRow(ctx, "SELECT coalesce(sum(count), 0) FROM api_request_logs WHERE key_id = $1 AND at >= $2", keyID, since).Scan(&n)
		if err != nil {
			return last, time.Since(start), err
		}
		now := time.Now()
		if n != last {
			last, lastMove = n, now
		}
		if n >= int64(want) || now.Sub(lastMove) >= quiet || now.Sub(start) >= limit {
			return n, now.Sub(start), nil
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return n, time.Since(start), err
		}
	}
}

// promValues reads the server's /metrics into "name{labels}" → value.
func promValues(url string) (map[string]float64, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %d", res.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// The series the request-log checks read.
const (
	mWritten     = `keyward_flush_batch_size_sum{buffer="request_log"}`
	mDropped     = `keyward_buffer_dropped_total{buffer="request_log"}`
	mFlushErrors = `keyward_flush_errors_total{buffer="request_log"}`
	mCacheMiss   = `keyward_apikey_cache_lookups_total{result="miss"}`
)

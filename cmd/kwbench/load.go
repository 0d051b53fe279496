package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"keyward/db"
	"keyward/web/apikey"
	"keyward/web/metrics"
)

// runResult is one load run.
type runResult struct {
	Name     string
	Rate     int // requests per second asked for; 0: as fast as possible
	Workers  int
	Want     int // the status every response must have
	PerReq   int // events per request (ingestion), else 0
	Requests uint64
	Good     uint64 // responses with status Want
	Elapsed  time.Duration
	Codes    map[int]uint64
	Errors   []string // distinct transport errors and unexpected statuses
	P50, P99 time.Duration
	Mean     time.Duration
	CPU      cpuUse // CPU time spent during the run
}

// OK reports whether every response had the wanted status.
func (r runResult) OK() bool { return r.Requests > 0 && r.Good == r.Requests && len(r.Errors) == 0 }

// PerSec is the rate of good responses over the run.
func (r runResult) PerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Good) / r.Elapsed.Seconds()
}

// EventsPerSec is PerSec times the events each request carries.
func (r runResult) EventsPerSec() float64 { return r.PerSec() * float64(max(r.PerReq, 1)) }

// CodesString lists the status codes seen, e.g. "200×12345".
func (r runResult) CodesString() string {
	codes := make([]int, 0, len(r.Codes))
	for c := range r.Codes {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		name := strconv.Itoa(c)
		if c == 0 {
			name = "no response"
		}
		parts = append(parts, fmt.Sprintf("%s×%d", name, r.Codes[c]))
	}
	return strings.Join(parts, ", ")
}

// attack runs one vegeta attack with a fixed number of workers (rate 0:
// unlimited) and checks every response's status.
func attack(ctx context.Context, name string, tr vegeta.Targeter, rate, workers int, dur time.Duration, want, perReq int) runResult {
	a := vegeta.NewAttacker(
		vegeta.Workers(uint64(workers)),
		vegeta.MaxWorkers(uint64(workers)),
		vegeta.KeepAlive(true),
		vegeta.Connections(workers),
		vegeta.Redirects(vegeta.NoFollow),
	)
	stop := context.AfterFunc(ctx, func() { a.Stop() })
	defer stop()
	var m vegeta.Metrics
	r := runResult{Name: name, Rate: rate, Workers: workers, Want: want, PerReq: perReq, Codes: map[int]uint64{}}
	errs := map[string]bool{}
	for res := range a.Attack(tr, vegeta.Rate{Freq: rate, Per: time.Second}, dur, name) {
		m.Add(res)
		r.Codes[int(res.Code)]++
		var bad string
		switch {
		case res.Code == 0:
			bad = res.Error
		case int(res.Code) != want:
			bad = fmt.Sprintf("status %d: %s", res.Code, oneLine(res.Body, 200))
		default:
			r.Good++
		}
		if bad != "" && len(errs) < 100 { // bounded: bodies carry request ids
			errs[bad] = true
		}
	}
	m.Close()
	r.Requests = m.Requests
	r.Elapsed = m.Duration + m.Wait
	r.P50, r.P99, r.Mean = m.Latencies.P50, m.Latencies.P99, m.Latencies.Mean
	for e := range errs {
		r.Errors = append(r.Errors, e)
	}
	sort.Strings(r.Errors)
	if len(r.Errors) > 5 {
		r.Errors = append(r.Errors[:5], fmt.Sprintf("… and %d more distinct errors", len(r.Errors)-5))
	}
	if ctx.Err() != nil {
		r.Errors = append(r.Errors, "interrupted")
	}
	return r
}

func oneLine(b []byte, n int) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// getTargeter always sends the same GET.
func getTargeter(url string, h http.Header) vegeta.Targeter {
	return func(t *vegeta.Target) error {
		t.Method, t.URL, t.Body, t.Header = http.MethodGet, url, nil, h
		return nil
	}
}

// postTargeter sends body to url with a fresh Idempotency-Key each time.
// Workers call it concurrently.
func postTargeter(url, key string, body []byte) vegeta.Targeter {
	var n atomic.Uint64
	prefix := "kwbench-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
	return func(t *vegeta.Target) error {
		t.Method, t.URL, t.Body = http.MethodPost, url, body
		t.Header = http.Header{
			"Content-Type":    {"application/json"},
			"Authorization":   {"Bearer " + key},
			"Idempotency-Key": {prefix + strconv.FormatUint(n.Add(1), 10)},
		}
		return nil
	}
}

// The event every ingestion request (and the SQL baseline) writes.
const (
	eventSource     = "bench"
	eventType       = "t"
	eventOccurredAt = "2026-01-02T15:04:05Z"
	eventData       = `{"n":1}`
)

func singleBody() []byte {
	return []byte(`{"source":"` + eventSource + `","type":"` + eventType + `","occurred_at":"` + eventOccurredAt + `","data":` + eventData + `}`)
}

func batchBody(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"events":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(singleBody())
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// sqlResult is the plain-INSERT baseline.
type sqlResult struct {
	Goroutines, Conns int
	Rows              uint64
	Failed            uint64
	FirstErr          string
	Elapsed           time.Duration
	P50, P99          time.Duration
	CPU               cpuUse
}

func (r sqlResult) OK() bool { return r.Rows > 0 && r.Failed == 0 }

func (r sqlResult) PerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Rows) / r.Elapsed.Seconds()
}

// insertLoop runs goroutines that each INSERT one event row at a time
// (autocommit) for dur, on a pool of conns connections to url (0: pgxpool's
// default size, which is what keyward serve's pool has): the least the
// database must do for one ingested event.
func insertLoop(ctx context.Context, url string, f fixture, goroutines, conns int, dur time.Duration) (sqlResult, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return sqlResult{}, err
	}
	if conns > 0 {
		cfg.MaxConns = int32(conns)
	}
	conns = int(cfg.MaxConns) // else pgxpool's default, as keyward serve has
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return sqlResult{}, err
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return sqlResult{}, err
	}
	// Open every connection before the clock starts.
	var warm []*pgxpool.Conn
	for range conns {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return sqlResult{}, err
		}
		warm = append(warm, c)
	}
	for _, c := range warm {
		c.Release()
	}

	const q = `INSERT INTO events (id, tenant_id, environment, source, type, occurred_at, received_at, data, key_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`
	occurred, _ := time.Parse(time.RFC3339, eventOccurredAt)
	data := json.RawMessage(eventData)

	res := sqlResult{Goroutines: goroutines, Conns: conns}
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(dur)
	for range goroutines {
		wg.Go(func() {
			var mine []time.Duration
			var rows, failed uint64
			var first string
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t0 := time.Now()
				_, err := pool.Exec(ctx, q, uuid.Must(uuid.NewV7()).String(), f.TenantID, string(apikey.Production),
					eventSource, eventType, occurred, t0.UTC(), data, f.KeyID)
				if err != nil {
					failed++
					if first == "" {
						first = err.Error()
					}
					continue
				}
				rows++
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			defer mu.Unlock()
			res.Rows += rows
			res.Failed += failed
			if res.FirstErr == "" {
				res.FirstErr = first
			}
			lat = append(lat, mine...)
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.P50, res.P99 = quantile(lat, 0.50), quantile(lat, 0.99)
	if ctx.Err() != nil && res.FirstErr == "" {
		res.FirstErr = "interrupted"
		res.Failed++
	}
	return res, nil
}

// missResult is the in-process cache-miss verification timing.
type missResult struct {
	N         int
	Failed    int
	FirstErr  string
	P50, P99  time.Duration
	Mean, Max time.Duration
}

// timeMisses empties the verifier's cache before each of n verifications
// of key and times each one: parse, hash, cache miss, one query through
// the pool, principal built and cached. The verifier has the default
// options but one: a key missing from an emptied cache counts against the
// instance-wide budget of lookups (1,000 a second by default), which a
// loop of nothing but misses would exhaust within a second, so the budget
// is raised above n.
func timeMisses(ctx context.Context, store *db.Store, key string, n int) missResult {
	v := apikey.NewVerifier(store.Queries, apikey.VerifierOptions{MaxLookupsPerSecond: 2*n + 1}, metrics.New())
	r := missResult{N: n}
	if _, err := v.Verify(ctx, key); err != nil { // connections and statement cache warm
		r.Failed, r.FirstErr = n, err.Error()
		return r
	}
	lat := make([]time.Duration, 0, n)
	var total time.Duration
	for range n {
		v.InvalidateAll()
		t0 := time.Now()
		_, err := v.Verify(ctx, key)
		d := time.Since(t0)
		if err != nil {
			r.Failed++
			if r.FirstErr == "" {
				r.FirstErr = err.Error()
			}
			continue
		}
		lat = append(lat, d)
		total += d
	}
	if len(lat) > 0 {
		r.Mean = total / time.Duration(len(lat))
		r.Max = slices.Max(lat)
	}
	r.P50, r.P99 = quantile(lat, 0.50), quantile(lat, 0.99)
	return r
}

// quantile sorts d in place and returns its q-quantile (nearest rank).
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(q*float64(len(d))+0.5) - 1
	return d[min(max(i, 0), len(d)-1)]
}

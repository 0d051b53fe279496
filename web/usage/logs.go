package usage

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"keyward/db"
)

// Refusals of one key are logged one by one up to RefusalBudget a minute;
// past it, each (key, status, error code) of that minute is counted into
// one row, written when the minute ends. A revoked key tried 4,000 times
// in a minute is 60 rows and one row of ×3,940, not 4,000 rows.
const (
	RefusalBudget = 60
	// maxBudgets bounds the keys whose refusals this minute are tracked.
	// Past it, a key not tracked yet has its refusals logged one by one
	// (they still go through the byte-bounded buffer).
	maxBudgets = 100_000
	// maxCounted bounds the rows being counted. Past it, a refusal that
	// would start a new one is logged on its own.
	maxCounted = 10_000
)

// Backoff of a failed request-log write: the first retry after
// minBackoff, each next one after twice as long, at most maxBackoff.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// writeTimeout bounds one COPY.
	writeTimeout = 30 * time.Second
)

// rowOverhead is what a buffered row costs besides its strings' bytes.
const rowOverhead = int64(unsafe.Sizeof(Request{}))

// rowBytes is what a buffered row holds in memory, about.
func rowBytes(q *Request) int64 {
	return rowOverhead + int64(len(q.KeyID)+len(q.KeyPrefix)+len(q.Method)+len(q.Path)+len(q.Code)+len(q.UserAgent)+len(q.IP)+len(q.RequestID))
}

// budget is a key's refusals in one minute.
type budget struct {
	minute time.Time
	n      int
}

// countKey is what refusals past the budget are counted by.
type countKey struct {
	keyID  string
	status int
	code   string
	minute time.Time
}

// counted is one row being counted: the first refusal, how many, and
// their latencies added up.
type counted struct {
	first   Request
	n       int
	latency time.Duration
}

// logBuffer is the request log's buffer: rows waiting for a write, the
// batch being written, and the refusals being counted.
type logBuffer struct {
	mu      sync.Mutex
	queue   []Request // waiting, oldest first
	bytes   int64     // of queue and of the batch being written
	limit   int64
	budgets map[string]budget
	counted map[countKey]*counted
	// full wakes the log loop when a batch is full.
	full chan struct{}

	// writing makes writes take turns; it guards batch.
	writing sync.Mutex
	// batch is being written: taken from the front of queue, and kept
	// until written, however many attempts that takes.
	batch []Request
}

func newLogBuffer(limit int64) logBuffer {
	return logBuffer{limit: limit, budgets: map[string]budget{}, counted: map[countKey]*counted{}, full: make(chan struct{}, 1)}
}

// Log queues a request-log row, or counts it with others if it is a
// refusal past its key's budget, and notes the request as the last one
// to present its secret. It drops and counts the row if the buffer
// is full, or if the recorder is closed (a request that outlived
// shutdown). It never blocks on I/O.
func (r *Recorder) Log(req Request) {
	r.closedMu.RLock()
	defer r.closedMu.RUnlock()
	if r.closed {
		r.dropped.Inc()
		return
	}
	b := &r.logs
	b.mu.Lock()
	defer b.mu.Unlock()
	r.presented(&req)
	if req.Status >= 400 && req.Status < 500 && r.countRefusal(req) {
		return
	}
	r.enqueue(req)
}

// countRefusal spends one of the key's refusals of req's minute, and past
// the budget counts req into its row instead; it reports whether it did.
// b.mu is held.
func (r *Recorder) countRefusal(req Request) bool {
	b := &r.logs
	minute := req.At.Truncate(time.Minute)
	bu, tracked := b.budgets[req.KeyID]
	switch {
	case !tracked && len(b.budgets) >= maxBudgets:
		return false
	case tracked && minute.Before(bu.minute):
		return false // a slow request of a minute already left: on its own
	case !tracked || minute.After(bu.minute):
		bu = budget{minute: minute}
	}
	bu.n++
	b.budgets[req.KeyID] = bu
	if bu.n <= RefusalBudget {
		return false
	}
	k := countKey{req.KeyID, req.Status, req.Code, minute}
	c := b.counted[k]
	if c == nil {
		if len(b.counted) >= maxCounted {
			return false
		}
		c = &counted{first: req}
		b.counted[k] = c
	}
	c.n++
	c.latency += req.Latency
	return true
}

// enqueue appends req to the queue, or drops and counts it when the
// buffer is full, and wakes the loop when a batch is full. b.mu is held.
func (r *Recorder) enqueue(req Request) {
	b := &r.logs
	size := rowBytes(&req)
	if b.bytes+size > b.limit {
		r.dropped.Add(float64(max(req.Count, 1)))
		return
	}
	b.queue = append(b.queue, req)
	b.bytes += size
	if len(b.queue) >= LogBatch {
		select {
		case b.full <- struct{}{}:
		default:
		}
	}
}

// closeMinutes queues the counted rows of minutes that ended by now, or
// all of them when now is zero, and forgets budgets of ended minutes.
func (r *Recorder) closeMinutes(now time.Time) {
	b := &r.logs
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, c := range b.counted {
		if now.IsZero() || !k.minute.Add(time.Minute).After(now) {
			row := c.first
			row.Count, row.Latency = c.n, c.latency/time.Duration(c.n)
			r.enqueue(row)
			delete(b.counted, k)
		}
	}
	if now.IsZero() {
		return // budgets of the open minute still hold
	}
	for id, bu := range b.budgets {
		if !bu.minute.Add(time.Minute).After(now) {
			delete(b.budgets, id)
		}
	}
}

// logLoop writes a batch as soon as one is full, and everything, counted
// rows of ended minutes included, at every tick.
func (r *Recorder) logLoop() {
	defer r.done.Done()
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		all := false
		select {
		case <-r.stop:
			return
		case <-t.C:
			all = true
		case <-r.logs.full:
		}
		r.logs.writing.Lock()
		if all {
			r.closeMinutes(r.now())
		}
		r.writeLogs(r.loops, all, r.stop)
		r.logs.writing.Unlock()
	}
}

// flushLogs writes every buffered row and every counted one, retrying
// until done or ctx ends.
func (r *Recorder) flushLogs(ctx context.Context) {
	r.logs.writing.Lock()
	defer r.logs.writing.Unlock()
	r.closeMinutes(time.Time{})
	r.writeLogs(ctx, true, nil)
}

// writeLogs writes buffered rows a batch at a time: all of them when all
// is set, else as long as a full batch waits. A failed write is retried
// after a backoff, the rows waiting in the buffer meanwhile, until it
// succeeds; it gives up only when ctx ends or stop closes, leaving them
// buffered. logs.writing is held.
func (r *Recorder) writeLogs(ctx context.Context, all bool, stop <-chan struct{}) {
	b := &r.logs
	wait := minBackoff
	for {
		if len(b.batch) == 0 && !r.takeBatch(all) {
			return
		}
		actx, cancel := context.WithTimeout(ctx, writeTimeout)
		n, err := r.copyRows(actx, b.batch)
		cancel()
		r.release(n)
		if err == nil {
			wait = minBackoff
			continue
		}
		r.m.FlushErrors.WithLabelValues("request_log").Inc()
		r.log.Error("writing request logs; the rows wait in the buffer and the write is retried", "rows", len(b.batch), "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		case <-stop:
			t.Stop()
			return
		}
		wait = min(2*wait, maxBackoff)
	}
}

// takeBatch moves up to LogBatch rows from the queue to the batch, when a
// full batch waits or all is set; it reports whether it took any.
func (r *Recorder) takeBatch(all bool) bool {
	b := &r.logs
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 || !all && len(b.queue) < LogBatch {
		return false
	}
	n := min(len(b.queue), LogBatch)
	b.batch = b.queue[:n:n]
	b.queue = b.queue[n:]
	if len(b.queue) == 0 {
		b.queue = nil
	}
	return true
}

// release forgets the batch's first n rows, written (or refused for good).
func (r *Recorder) release(n int) {
	b := &r.logs
	var size int64
	for i := range n {
		size += rowBytes(&b.batch[i])
	}
	b.batch = b.batch[n:]
	if len(b.batch) == 0 {
		b.batch = nil
	}
	b.mu.Lock()
	b.bytes -= size
	b.mu.Unlock()
}

// copyRows writes rows with COPY and returns how many of the first ones
// are done with: written, or refused by Postgres for their values (a data
// exception or a constraint), which no retry would change. Such a row is
// found by halving the batch, dropped, counted and logged; the others are
// written. Any other failure returns the error, with the rows from the
// first count on still to write.
func (r *Recorder) copyRows(ctx context.Context, rows []Request) (int, error) {
	params := make([]db.CopyRequestLogsParams, len(rows))
	for i, q := range rows {
		// A key id that does not parse cannot happen (they come from the
		// database); it would go as NULL and be refused like a bad value.
		id, err := uuid.Parse(q.KeyID)
		params[i] = db.CopyRequestLogsParams{
			TenantID: q.TenantID, KeyID: pgtype.UUID{Bytes: id, Valid: err == nil}, KeyPrefix: q.KeyPrefix, Method: q.Method,
			Path: q.Path, Status: int32(q.Status), Ip: q.IP, LatencyUs: q.Latency.Microseconds(), RequestID: q.RequestID,
			At: q.At, Count: int32(max(q.Count, 1)), Code: nullText(q.Code), UserAgent: nullText(q.UserAgent),
		}
	}
	return r.copyParams(ctx, params)
}

func (r *Recorder) copyParams(ctx context.Context, rows []db.CopyRequestLogsParams) (int, error) {
	_, err := r.store.CopyRequestLogs(ctx, rows)
	if err == nil {
		r.m.FlushSize.WithLabelValues("request_log").Observe(float64(len(rows)))
		return len(rows), nil
	}
	if !refused(err) {
		return 0, err
	}
	if len(rows) == 1 {
		r.m.FlushErrors.WithLabelValues("request_log").Inc()
		r.dropped.Add(float64(rows[0].Count))
		r.log.Error("Postgres refused a request-log row; it is dropped", "request_id", rows[0].RequestID, "err", err)
		return 1, nil
	}
	half := len(rows) / 2
	n, err := r.copyParams(ctx, rows[:half])
	if err != nil {
		return n, err
	}
	n, err = r.copyParams(ctx, rows[half:])
	return half + n, err
}

// refused reports whether Postgres refused the rows' values themselves
// (SQLSTATE classes 22, data exception, and 23, integrity constraint), so
// that writing them again would fail again.
func refused(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23"))
}

// dropUnwritten counts what the request-log buffer still holds as dropped
// and empties it: for Close, once its deadline has passed. It returns how
// many requests and rows that was.
func (r *Recorder) dropUnwritten() (requests, rows int) {
	b := &r.logs
	b.writing.Lock()
	defer b.writing.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range [2][]Request{b.batch, b.queue} {
		for _, req := range q {
			requests += max(req.Count, 1)
		}
		rows += len(q)
	}
	for _, c := range b.counted {
		requests += c.n
		rows++
	}
	b.batch, b.queue, b.bytes = nil, nil, 0
	clear(b.counted)
	r.dropped.Add(float64(requests))
	return requests, rows
}

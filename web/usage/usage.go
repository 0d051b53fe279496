// Package usage records what API keys do without writing on the request
// path: last-used time and address, the last request with each secret,
// first use from a new address, and the request log. Requests hand their facts to in-memory buffers; background
// loops write them in batches, and Close flushes what is left. A full
// buffer drops (and counts) rather than slows a request. It must not
// import echo.
//
// The request log keeps every row it can: a batch is written as soon as
// it is full, and a failed write is retried with backoff while its rows
// wait in the buffer, which is bounded in bytes and drops only when full.
// Refusals cannot flood it: past RefusalBudget refusals of one key in a
// minute, further ones are counted, one row per key, status, error code
// and minute (logs.go).
package usage

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/metrics"
)

// Limits of the buffers.
const (
	// LastUsedGap is the least time between two last-used writes of a key.
	LastUsedGap = time.Minute
	// MaxIPsPerKey bounds the addresses remembered per key, in memory and
	// in api_key_ips. Past it, new addresses are no longer audited, so a
	// key used from everywhere cannot flood the audit trail.
	MaxIPsPerKey = 1000
	// DefaultLogBuffer is how many bytes of request-log rows may wait for
	// a write, unless Options say otherwise: some 200,000 rows.
	DefaultLogBuffer = 64 << 20
	// LogBatch is the most rows one COPY writes; a full batch is written
	// at once, without waiting for the tick.
	LogBatch = 5000
	// maxPendingIPs bounds first sightings waiting for a flush.
	maxPendingIPs = 10_000
	// maxSeen bounds the (key, address) pairs remembered in memory. The
	// memory only saves database work: api_key_ips is the authority, so
	// forgetting everything when full loses nothing.
	maxSeen = 200_000
	// maxPendingSecrets bounds the secrets whose last request waits for a
	// write. Only identified keys' secrets get here, so it is reached only
	// by that many secrets in use within a minute; past it, a secret not
	// waiting already is not updated this time.
	maxPendingSecrets = 100_000
)

// Request is one keyed public-API request, for the request log: a row
// read or written.
type Request struct {
	TenantID  int64
	KeyID     string
	KeyPrefix string // of the secret presented
	Method    string
	Path      string
	Status    int
	// Code is the envelope's error code of a refused or failed request,
	// "" when the answer carried none. Refusals past the budget are
	// counted by key, status and code.
	Code string
	// UserAgent is the client's, cleaned and cut like Path.
	UserAgent string
	IP        string
	Latency   time.Duration
	RequestID string
	At        time.Time
	// Count is how many requests the row stands for: 1 (or 0, read as 1)
	// for a request logged on its own, more for refusals counted together,
	// which carry the first one's details and their mean latency.
	Count int
}

// Options size the buffers; zero values take the defaults.
type Options struct {
	// Interval is how often buffers are flushed (default 1 s); last-used
	// writes are further held to one per key per LastUsedGap. A full
	// request-log batch does not wait for it.
	Interval time.Duration
	// LogBuffer bounds, in bytes, the request-log rows waiting for a
	// write, failed writes included (default DefaultLogBuffer). Past it,
	// rows are dropped and counted.
	LogBuffer int64
	// Audit keys the api_key.used_from_new_ip events; without it they
	// cannot be written.
	Audit *audit.Keys
}

type lastUse struct {
	tenantID int64
	at       time.Time
	ip       string
}

// secretRef names a secret as the request log does: its key and display
// prefix.
type secretRef struct {
	keyID, prefix string
}

type keyIP struct {
	tenantID int64
	keyID    string
	ip       string
	at       time.Time
}

// Recorder buffers usage and writes it in the background.
type Recorder struct {
	store    *db.Store
	log      *slog.Logger
	interval time.Duration
	keys     *audit.Keys

	mu      sync.Mutex
	pending map[string]lastUse   // key id → newest use not yet written
	written map[string]time.Time // key id → when its last-used was last written
	seen    map[string]map[string]struct{}
	nSeen   int
	newIPs  []keyIP
	// secrets: when a request last presented each secret, not yet
	// written; secretWritten: when each was last written. Guarded by
	// logs.mu, which Log holds anyway.
	secrets       map[secretRef]lastUse
	secretWritten map[secretRef]time.Time
	logs          logBuffer
	stop          chan struct{}
	done          sync.WaitGroup
	closeOne      sync.Once
	// loops is the context of the loops' flushes; Close cancels it when
	// its own deadline passes, so a flush stuck on the database cannot
	// hold shutdown.
	loops     context.Context
	stopLoops context.CancelFunc
	closedMu  sync.RWMutex // Log holds it to read closed; Close to set it
	closed    bool
	// flushMu makes last-used flushes take turns, so Flush returns only
	// when what was buffered before it is written, even by a loop's flush.
	// logs.writing does the same for the request log.
	flushMu sync.Mutex
	// now is the application's clock.
	now     func() time.Time
	m       *metrics.Set
	dropped prometheus.Counter // request-log rows dropped (a counted row as its requests)
}

// New returns a recorder; call Start to run its loops and Close to end it.
func New(store *db.Store, log *slog.Logger, now func() time.Time, m *metrics.Set, o Options) *Recorder {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.LogBuffer <= 0 {
		o.LogBuffer = DefaultLogBuffer
	}
	loops, stopLoops := context.WithCancel(context.Background())
	return &Recorder{
		loops: loops, stopLoops: stopLoops, now: now, m: m, dropped: m.Dropped.WithLabelValues("request_log"),
		store: store, log: log, interval: o.Interval, keys: o.Audit,
		pending: map[string]lastUse{}, written: map[string]time.Time{}, seen: map[string]map[string]struct{}{},
		secrets: map[secretRef]lastUse{}, secretWritten: map[secretRef]time.Time{},
		logs: newLogBuffer(o.LogBuffer), stop: make(chan struct{}),
	}
}

// Used notes that the key was used from ip at at. It never blocks on I/O.
func (r *Recorder) Used(tenantID int64, keyID, ip string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.pending[keyID]; !ok || p.at.Before(at) {
		r.pending[keyID] = lastUse{tenantID, at, ip}
	}
	ips := r.seen[keyID]
	if _, ok := ips[ip]; ok || len(ips) >= MaxIPsPerKey {
		return
	}
	if len(r.newIPs) >= maxPendingIPs {
		// Not marked seen: the next use from this address tries again.
		r.m.Dropped.WithLabelValues("new_ip").Inc()
		return
	}
	if r.nSeen >= maxSeen {
		clear(r.seen)
		r.nSeen = 0
		ips = nil
	}
	if ips == nil {
		ips = map[string]struct{}{}
		r.seen[keyID] = ips
	}
	ips[ip] = struct{}{}
	r.nSeen++
	r.newIPs = append(r.newIPs, keyIP{tenantID, keyID, ip, at})
}

// Start runs the flush loops until Close.
func (r *Recorder) Start() {
	r.done.Add(2)
	go r.useLoop()
	go r.logLoop()
}

func (r *Recorder) useLoop() {
	defer r.done.Done()
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(r.loops, 30*time.Second)
			r.flushUse(ctx, false)
			cancel()
		}
	}
}

// Close stops the loops and writes everything still buffered, ignoring the
// one-write-per-minute rule and the open minute of counted refusals: at
// shutdown nothing is lost that ctx leaves time to write. Request-log rows
// still unwritten when ctx ends are counted as dropped.
func (r *Recorder) Close(ctx context.Context) {
	r.closeOne.Do(func() { close(r.stop) })
	done := make(chan struct{})
	go func() { r.done.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		// A loop's flush is stuck: abandon it (what it held is counted as
		// dropped, or put back for the flush below).
		r.stopLoops()
		<-done
	}
	r.closedMu.Lock()
	r.closed = true
	r.closedMu.Unlock()
	r.Flush(ctx)
	if n, rows := r.dropUnwritten(); rows > 0 {
		r.log.Error("request-log rows could not be written before shutdown; they are dropped", "rows", rows, "requests", n)
	}
	r.stopLoops()
}

// Flush writes everything buffered now, the open minute's counted
// refusals included, retrying failed request-log writes until they succeed
// or ctx ends. Close and tests use it.
func (r *Recorder) Flush(ctx context.Context) {
	r.flushUse(ctx, true)
	r.flushLogs(ctx)
}

// flushUse writes due last-used values in one statement and audits first
// sightings of addresses.
func (r *Recorder) flushUse(ctx context.Context, all bool) {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	now := r.now()
	var p db.FlushLastUsedParams
	r.mu.Lock()
	for id, u := range r.pending {
		if !all && now.Sub(r.written[id]) < LastUsedGap {
			continue
		}
		p.TenantIds, p.KeyIds, p.Ats, p.Ips = append(p.TenantIds, u.tenantID), append(p.KeyIds, id), append(p.Ats, u.at), append(p.Ips, u.ip)
		r.written[id] = now
		delete(r.pending, id)
	}
	ips := r.newIPs
	r.newIPs = nil
	// Forget write times long past the gap, so the map stays small.
	for id, t := range r.written {
		if now.Sub(t) > 2*LastUsedGap {
			if _, waiting := r.pending[id]; !waiting {
				delete(r.written, id)
			}
		}
	}
	r.mu.Unlock()
	sp := r.dueSecrets(now, all)

	if len(p.KeyIds) > 0 {
		if _, err := r.store.FlushLastUsed(ctx, p); err != nil {
			r.m.FlushErrors.WithLabelValues("last_used").Inc()
			r.log.Error("writing last-used times; they are retried at the next flush", "keys", len(p.KeyIds), "err", err)
			r.restore(p)
		} else {
			r.m.FlushSize.WithLabelValues("last_used").Observe(float64(len(p.KeyIds)))
		}
	}
	if len(sp.KeyIds) > 0 {
		if _, err := r.store.FlushSecretLastRequest(ctx, sp); err != nil {
			r.m.FlushErrors.WithLabelValues("secret_last_request").Inc()
			r.log.Error("writing secrets' last requests; they are retried at the next flush", "secrets", len(sp.KeyIds), "err", err)
			r.restoreSecrets(sp)
		} else {
			r.m.FlushSize.WithLabelValues("secret_last_request").Observe(float64(len(sp.KeyIds)))
		}
	}
	if len(ips) > 0 {
		n, failed, err := r.recordNewIPs(ctx, ips)
		if err != nil {
			r.m.FlushErrors.WithLabelValues("new_ip").Inc()
			r.log.Error("recording new key addresses; they are retried on their next use", "failed", len(failed), "err", err)
			r.forget(failed)
		}
		r.m.FlushSize.WithLabelValues("new_ip").Observe(float64(n))
	}
}

// restore puts last-used values whose write failed back, unless a newer
// use replaced them meanwhile, and lets them be written at once.
func (r *Recorder) restore(p db.FlushLastUsedParams) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, id := range p.KeyIds {
		if cur, ok := r.pending[id]; !ok || cur.at.Before(p.Ats[i]) {
			r.pending[id] = lastUse{p.TenantIds[i], p.Ats[i], p.Ips[i]}
		}
		delete(r.written, id)
	}
}

// presented notes that a request presented the secret req names,
// accepted or refused. logs.mu is held.
func (r *Recorder) presented(req *Request) {
	ref := secretRef{req.KeyID, req.KeyPrefix}
	if p, ok := r.secrets[ref]; ok {
		if p.at.Before(req.At) {
			r.secrets[ref] = lastUse{tenantID: req.TenantID, at: req.At}
		}
		return
	}
	if len(r.secrets) >= maxPendingSecrets {
		return
	}
	r.secrets[ref] = lastUse{tenantID: req.TenantID, at: req.At}
}

// dueSecrets takes the secrets' last requests due for a write: those not
// written in the last LastUsedGap, or all of them.
func (r *Recorder) dueSecrets(now time.Time, all bool) db.FlushSecretLastRequestParams {
	var p db.FlushSecretLastRequestParams
	b := &r.logs
	b.mu.Lock()
	defer b.mu.Unlock()
	for ref, u := range r.secrets {
		if !all && now.Sub(r.secretWritten[ref]) < LastUsedGap {
			continue
		}
		p.TenantIds, p.KeyIds, p.Prefixes, p.Ats = append(p.TenantIds, u.tenantID), append(p.KeyIds, ref.keyID), append(p.Prefixes, ref.prefix), append(p.Ats, u.at)
		r.secretWritten[ref] = now
		delete(r.secrets, ref)
	}
	for ref, t := range r.secretWritten {
		if now.Sub(t) > 2*LastUsedGap {
			if _, waiting := r.secrets[ref]; !waiting {
				delete(r.secretWritten, ref)
			}
		}
	}
	return p
}

// restoreSecrets puts secrets' last requests whose write failed back,
// unless a newer request replaced them meanwhile.
func (r *Recorder) restoreSecrets(p db.FlushSecretLastRequestParams) {
	b := &r.logs
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, id := range p.KeyIds {
		ref := secretRef{id, p.Prefixes[i]}
		if cur, ok := r.secrets[ref]; !ok || cur.at.Before(p.Ats[i]) {
			r.secrets[ref] = lastUse{tenantID: p.TenantIds[i], at: p.Ats[i]}
		}
		delete(r.secretWritten, ref)
	}
}

// forget drops sightings whose write failed, so the next use of the
// address tries again.
func (r *Recorder) forget(ips []keyIP) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range ips {
		if m := r.seen[k.keyID]; m != nil {
			if _, ok := m[k.ip]; ok {
				delete(m, k.ip)
				r.nSeen--
			}
		}
	}
}

// recordNewIPs stores each (key, address) seen for the first time by this
// process; where the database did not know it either, it writes
// api_key.used_from_new_ip in the same transaction.
func (r *Recorder) recordNewIPs(ctx context.Context, ips []keyIP) (int, []keyIP, error) {
	written := 0
	var errs []error
	var failed []keyIP
	for i, k := range ips {
		if ctx.Err() != nil { // out of time: the rest are retried on their next use
			return written, append(failed, ips[i:]...), errors.Join(append(errs, ctx.Err())...)
		}
		err := r.store.InTx(ctx, func(q *db.Queries) error {
			n, err := q.CountKeyIPs(ctx, db.CountKeyIPsParams{TenantID: k.tenantID, KeyID: k.keyID})
			if err != nil || n >= MaxIPsPerKey {
				return err
			}
			rows, err := q.InsertKeyIP(ctx, db.InsertKeyIPParams{KeyID: k.keyID, TenantID: k.tenantID, Ip: k.ip, FirstSeenAt: k.at})
			if err != nil || rows == 0 {
				return err
			}
			written++
			tid := k.tenantID
			ev := audit.Actor{TenantID: &tid, Type: audit.ActorAPIKey, ID: k.keyID, IP: k.ip}.
				Event("api_key.used_from_new_ip", "api_key", k.keyID, map[string]any{"ip": k.ip})
			return audit.Record(ctx, q, r.keys, k.at, ev)
		})
		if err != nil {
			errs = append(errs, err)
			failed = append(failed, k)
		}
	}
	return written, failed, errors.Join(errs...)
}

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"keyward/db"
)

// bench holds everything measured, for the report.
type bench struct {
	o        options
	started  time.Time
	finished time.Time
	m        machine
	pg       string
	gb       goBenchFile

	idleRSS, peakHWM int64 // KiB; 0 when not read
	memErr           []string

	warmups              []runResult
	healthzMax, keyedMax []runResult // every round, in the order run
	orders               []string    // order of each round
	healthzRate, keyRate runResult
	constRate            int

	sql           sqlResult // the best baseline run
	sqlErr        error
	single, batch runResult // single: the best single-event run
	sqlRuns       []sqlResult
	singleRuns    []runResult
	ingestOrders  []string
	ingestRun     bool

	miss     missResult
	counters []string

	audit auditExportResult

	fill                   fillResult
	missKeys               int
	logChecks              []logCheck // every keyed max-throughput run, in the order run
	healthzHigh, keyedHigh runResult  // at o.highWorkers connections
	missQuiet              missRun    // never-seen keys, no flood
	floods                 []floodRun // never-seen keys during each sign-in flood
	serverPool             int
	hwm                    []memMark // VmHWM after each phase
	sequence               []anyRun  // every load run, in the order run

	exitErr error
	failed  []string // what did not work (exit status 1)

	loadStart, loadEnd string // the machine's 1-minute load average
}

// loadAvg is the 1-minute load average of /proc/loadavg, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func (b *bench) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.failed = append(b.failed, msg)
	logf("FAILED: %s", msg)
}

func run(ctx context.Context, o options) int {
	b := &bench{o: o, started: time.Now(), m: machineInfo(), loadStart: loadAvg()}
	if o.gobench != "" {
		b.gb = readGoBench(o.gobench)
		if b.gb.Err != nil {
			logf("Go benchmark figures not available: %v", b.gb.Err)
		}
	}
	if err := b.measure(ctx); err != nil {
		logf("%v", err)
		if errors.Is(err, errSetup) {
			return 1
		}
		b.fail("%v", err)
	}
	if ctx.Err() != nil {
		logf("interrupted: %s is left as it was", o.out)
		return 1
	}
	b.finished, b.loadEnd = time.Now(), loadAvg()
	rows := b.rows()
	if err := os.WriteFile(o.out, []byte(b.markdown(rows)), 0o644); err != nil {
		logf("writing %s: %v", o.out, err)
		return 1
	}
	logf("wrote %s in %v", o.out, b.finished.Sub(b.started).Round(time.Second))
	for _, r := range rows {
		if r.Status == statusMiss || r.Status == statusError || r.Status == statusUnavailable {
			logf("%s: %s — %s (target %s)", strings.ReplaceAll(r.Measure, "`", ""), r.Value, strings.Trim(r.Status.String(), "*"), r.Target)
		}
	}
	if len(b.failed) > 0 {
		return 1
	}
	return 0
}

// errSetup marks a failure before anything was measured: no file is
// written.
var errSetup = errors.New("setup failed")

func (b *bench) measure(ctx context.Context) (err error) {
	o := b.o
	if _, err := os.Stat("go.mod"); err != nil {
		return fmt.Errorf("%w: run kwbench from the repository root (no go.mod here)", errSetup)
	}
	logf("building keyward into %s", o.bin)
	if err := buildKeyward(ctx, o.bin); err != nil {
		return fmt.Errorf("%w: %v", errSetup, err)
	}

	dir, err := os.MkdirTemp("", "kwbench-")
	if err != nil {
		return fmt.Errorf("%w: %v", errSetup, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // PostgreSQL may run as another user
		return fmt.Errorf("%w: %v", errSetup, err)
	}
	if o.keepPGDir {
		logf("cluster directory %s is kept", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	b.m.Storage = filesystemOf(dir)

	logf("starting PostgreSQL (default durability) under %s", dir)
	cluster, url, err := startCluster(ctx, filepath.Join(dir, "pg"))
	if err != nil {
		return fmt.Errorf("%w: %v", errSetup, err)
	}
	defer func() {
		if serr := cluster.Stop(); serr != nil {
			b.fail("stopping PostgreSQL: %v", serr)
		}
	}()
	// kwbench's own connections name themselves, so that the server's can
	// be told apart in pg_stat_activity.
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("%w: %v", errSetup, err)
	}
	pcfg.ConnConfig.RuntimeParams["application_name"] = benchAppName
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("%w: %v", errSetup, err)
	}
	defer pool.Close()
	store := db.NewStore(pool)
	b.pg = pgSettings(ctx, pool)
	b.serverPool = serverPoolSize()
	fx, err := seed(ctx, store)
	if err != nil {
		return fmt.Errorf("%w: creating the tenant, owner and key: %v", errSetup, err)
	}
	// Never-seen keys for the cache-miss runs: one per request of each.
	perRun := int(float64(o.missRate)*o.missDuration.Seconds()) + 1
	missKeys, err := seedMissKeys(ctx, store, fx, 3*perRun)
	if err != nil {
		return fmt.Errorf("%w: creating the keys of the cache-miss runs: %v", errSetup, err)
	}
	b.missKeys = len(missKeys)
	logf("created %d keys for the cache-miss runs", len(missKeys))
	if o.logRows > 0 {
		logf("filling the request log with %s rows over %d days", groupDigits(o.logRows), o.logDays)
		b.fill = fillRequestLog(ctx, pool, fx, o.logRows, o.logDays)
		if b.fill.Err != nil {
			return fmt.Errorf("%w: filling the request log: %v", errSetup, b.fill.Err)
		}
		logf("request log filled in %v (%s rows)", b.fill.Elapsed.Round(100*time.Millisecond), groupDigits(b.fill.Total))
	}

	auditSecret, err := prepareAuditExport(ctx, pool, store, fx, o.auditEvents, &b.audit)
	if err != nil {
		return fmt.Errorf("%w: %v", errSetup, err)
	}

	logf("starting keyward serve")
	srv, err := startServer(o.bin, url, filepath.Join(dir, "keyward"))
	if err != nil {
		return fmt.Errorf("%w: %v", errSetup, err)
	}
	defer srv.kill()
	pid := srv.cmd.Process.Pid
	probe := cpuProbe{serverPID: pid, pgData: filepath.Join(cluster.Dir, "pg")}
	loadW := func(name string, tr vegeta.Targeter, rate, workers int, dur time.Duration, want, perReq int) runResult {
		before := probe.sample()
		r := attack(ctx, name, tr, rate, workers, dur, want, perReq)
		r.CPU = probe.sample().sub(before)
		return b.note(r)
	}
	load := func(name string, tr vegeta.Targeter, rate int, dur time.Duration, want, perReq int) runResult {
		return loadW(name, tr, rate, o.workers, dur, want, perReq)
	}
	metricsURL := srv.base() + "/metrics"
	// keyedLogged is a keyed max-throughput run, then the wait for its
	// request-log rows: every answered request must have its row.
	keyedLogged := func(name string, tr vegeta.Targeter, workers int) runResult {
		m0, merr := promValues(metricsURL)
		since := time.Now()
		r := loadW(name, tr, 0, workers, o.duration, 200, 0)
		c := logCheck{Run: r, Answered: answered(r)}
		n, settle, err := waitLogged(ctx, pool, fx.KeyID, since, c.Answered, 5*time.Second, 90*time.Second)
		c.Logged, c.Settle, c.Complete = n, settle, n >= int64(c.Answered)
		m1, merr2 := promValues(metricsURL)
		switch {
		case err != nil:
			c.Err = "counting rows: " + err.Error()
		case merr != nil || merr2 != nil:
			c.Err = "reading /metrics: " + errors.Join(merr, merr2).Error()
		default:
			c.Written, c.Dropped, c.Errors = m1[mWritten]-m0[mWritten], m1[mDropped]-m0[mDropped], m1[mFlushErrors]-m0[mFlushErrors]
		}
		logf("  request log: %s answered, %s rows found after %v, %s written, %s dropped, %s failed writes",
			groupDigits(int64(c.Answered)), groupDigits(c.Logged), c.Settle.Round(100*time.Millisecond),
			fmtRate(c.Written), fmtRate(c.Dropped), fmtRate(c.Errors))
		if c.Err != "" {
			b.fail("%s: %s", name, c.Err)
		}
		b.logChecks = append(b.logChecks, c)
		return r
	}

	// Idle memory.
	if err := sleep(ctx, o.idleWait); err != nil {
		return err
	}
	if b.idleRSS, err = procStatusKB(pid, "VmRSS"); err != nil {
		b.memErr = append(b.memErr, err.Error())
	}
	logf("idle RSS %s", fmtMB(b.idleRSS))

	// The audit export, before any load raises the memory it starts from.
	measureAuditExport(ctx, pool, fx.TenantID, srv.base(), pid, auditSecret, &b.audit)
	if !b.audit.OK() {
		b.fail("audit export: not every export answered 200 with every event (%s)", b.audit.Err)
	}
	b.markHWM(pid, "the audit exports")

	// Keyed against unkeyed, every keyed request logged.
	auth := http.Header{"Authorization": {"Bearer " + fx.Key}}
	if err := warmKey(ctx, srv.base()+"/api/v1/key", auth); err != nil {
		return err
	}
	healthz := getTargeter(srv.base()+"/healthz", nil)
	keyed := getTargeter(srv.base()+"/api/v1/key", auth)
	if o.warmup > 0 {
		b.warmups = append(b.warmups,
			load("warm-up GET /healthz", healthz, 0, o.warmup, 200, 0),
			load("warm-up GET /api/v1/key", keyed, 0, o.warmup, 200, 0))
	}
	for i := range o.rounds {
		h := func() {
			b.healthzMax = append(b.healthzMax, load("GET /healthz", healthz, 0, o.duration, 200, 0))
		}
		k := func() {
			b.keyedMax = append(b.keyedMax, keyedLogged("GET /api/v1/key", keyed, o.workers))
		}
		if i%2 == 0 {
			b.orders = append(b.orders, "healthz, key")
			h()
			k()
		} else {
			b.orders = append(b.orders, "key, healthz")
			k()
			h()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	b.markHWM(pid, fmt.Sprintf("the runs at %d connections", o.workers))
	// The same at more connections than workers a core can keep busy.
	b.keyedHigh = keyedLogged("GET /api/v1/key", keyed, o.highWorkers)
	b.healthzHigh = loadW("GET /healthz", healthz, 0, o.highWorkers, o.duration, 200, 0)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	b.markHWM(pid, fmt.Sprintf("the runs at %d connections", o.highWorkers))
	// Both routes must be able to keep up, or the latencies would not be
	// taken at the same rate: a fraction of the slower route's best.
	b.constRate = max(int(min(best(b.healthzMax).PerSec(), best(b.keyedMax).PerSec())*o.rateFrac), 1)
	b.healthzRate = load("GET /healthz", healthz, b.constRate, o.duration, 200, 0)
	b.keyRate = load("GET /api/v1/key", keyed, b.constRate, o.duration, 200, 0)
	if ctx.Err() != nil {
		return ctx.Err()
	}

	// Ingestion.
	if !o.skipIngest {
		b.ingestRun = true
		conns := o.baseConns
		if conns <= 0 {
			conns = b.serverPool
		}
		// Rounds alternate which goes first, as for the GET routes: the
		// events table grows during the runs, and the machine is noisy.
		sqlRun := func() {
			logf("SQL baseline: single-row INSERT loop, %d goroutines, %v", o.workers, o.duration)
			before := probe.sample()
			r, err := insertLoop(ctx, url, fx, o.workers, conns, o.duration)
			r.CPU = probe.sample().sub(before)
			switch {
			case err != nil:
				b.sqlErr = err
				b.fail("SQL baseline: %v", err)
			case !r.OK():
				b.fail("SQL baseline: %d failed inserts, first: %s", r.Failed, r.FirstErr)
			default:
				logf("SQL baseline: %s rows/s, cpu/row %s", fmtRate(r.PerSec()), cpuPer(r.CPU, r.Rows))
			}
			b.sqlRuns = append(b.sqlRuns, r)
			b.sequence = append(b.sequence, anyRun{sql: &r})
			if r.PerSec() >= b.sql.PerSec() {
				b.sql = r
			}
		}
		httpRun := func() {
			r := load("POST /api/v1/events", postTargeter(srv.base()+"/api/v1/events", fx.Key, singleBody()), 0, o.duration, 201, 1)
			b.singleRuns = append(b.singleRuns, r)
			if r.EventsPerSec() >= b.single.EventsPerSec() {
				b.single = r
			}
		}
		for i := range o.rounds {
			if i%2 == 0 {
				b.ingestOrders = append(b.ingestOrders, "INSERT loop, POST")
				sqlRun()
				httpRun()
			} else {
				b.ingestOrders = append(b.ingestOrders, "POST, INSERT loop")
				httpRun()
				sqlRun()
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		b.batch = load(fmt.Sprintf("POST /api/v1/events/batch (%d events)", o.batchSize),
			postTargeter(srv.base()+"/api/v1/events/batch", fx.Key, batchBody(o.batchSize)), 0, o.duration, 201, o.batchSize)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}

	b.markHWM(pid, "the constant-rate and ingestion runs")

	// Keys the server has never seen, at a constant rate: without, then
	// during, a sign-in flood.
	missRunOf := func(name string, keys []string) missRun {
		m0, err0 := promValues(metricsURL)
		r := missRun{Run: loadW(name, keysTargeter(srv.base()+"/api/v1/key", keys), o.missRate, o.missWorkers, o.missDuration, 200, 0)}
		m1, err1 := promValues(metricsURL)
		if err0 == nil && err1 == nil {
			r.Misses = m1[mCacheMiss] - m0[mCacheMiss]
		} else {
			r.Misses = -1
		}
		return r
	}
	b.missQuiet = missRunOf("GET /api/v1/key, never-seen keys, no flood", missKeys[:perRun])
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// Two floods, each from addresses of its own: made-up accounts only,
	// then half of the workers on the owner's real account.
	for i, owner := range []bool{false, true} {
		name := "made-up emails"
		if owner {
			name = "half on the owner's account"
		}
		// Attempts of the previous flood still in line finish their hashes
		// first (a second or so).
		if i > 0 {
			if err := sleep(ctx, 2*time.Second); err != nil {
				return err
			}
		}
		first := i * o.floodWorkers
		logf("sign-in flood (%s): %d workers, each from its own address", name, o.floodWorkers)
		fl := startFlood(ctx, srv.base(), csrfCookie, fx.Owner, owner, o.floodWorkers, first)
		if err := sleep(ctx, o.floodRamp); err != nil {
			fl.stop()
			return err
		}
		keys := missKeys[(i+1)*perRun : (i+2)*perRun]
		sampling := sampleConns(ctx, pool)
		m := missRunOf("GET /api/v1/key, never-seen keys, during the sign-in flood ("+name+")", keys)
		conns := sampling()
		res := fl.stop()
		res.Name, res.Workers, res.Owner, res.First = name, o.floodWorkers, owner, first
		b.floods = append(b.floods, floodRun{Miss: m, Flood: res, Conns: conns})
		logf("  server's connections meanwhile (%d samples): busy mean %.1f, max %d; waiting on an advisory lock mean %.1f, max %d",
			conns.Samples, conns.BusyMean(), conns.BusyMax, conns.AdvisoryMean(), conns.AdvisoryMax)
		logf("sign-in flood (%s): %s attempts in %v: %s", name, groupDigits(int64(res.Attempts())), res.Elapsed.Round(100*time.Millisecond),
			runResult{Codes: res.Codes}.CodesString())
		if len(res.Errors) > 0 {
			b.fail("sign-in flood (%s): %s", name, strings.Join(res.Errors, "; "))
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	// Attempts still in line finish their hashes (a second or so).
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}

	// Peak memory, after every HTTP run.
	b.markHWM(pid, "the cache-miss runs and the sign-in floods")
	if len(b.hwm) > 0 {
		b.peakHWM = b.hwm[len(b.hwm)-1].KB
	}
	b.counters = scrapeCounters(metricsURL)

	// Cache-miss verification, in this process.
	logf("timing %d cache-miss verifications in process", o.misses)
	b.miss = timeMisses(ctx, store, fx.Key, o.misses)
	if b.miss.Failed > 0 {
		b.fail("cache-miss verification: %d of %d failed, first: %s", b.miss.Failed, b.miss.N, b.miss.FirstErr)
	}

	// SIGTERM must end the server with status 0.
	logf("stopping keyward (SIGTERM)")
	if b.exitErr = srv.stop(60 * time.Second); b.exitErr != nil {
		b.fail("keyward serve after SIGTERM: %v", b.exitErr)
	}
	if len(b.memErr) > 0 {
		b.fail("reading memory: %s", strings.Join(b.memErr, "; "))
	}
	return nil
}

// serverPoolSize is the size keyward serve gives its pool when
// KEYWARD_DB_MAX_CONNS is not set: 4 per CPU Go may use, at least 4
// (cmd/keyward's defaultDBMaxConns). The server runs on this machine with
// GOMAXPROCS unset, as this process normally does.
func serverPoolSize() int { return max(4, 4*runtime.GOMAXPROCS(0)) }

// note logs a run and records it as a failure when a response was wrong.
func (b *bench) note(r runResult) runResult {
	rate := "max"
	if r.Rate > 0 {
		rate = fmtRate(float64(r.Rate)) + "/s"
	}
	logf("%-42s rate %-9s %8s good/s  p50 %-9s p99 %-9s cpu/req %s  %s", r.Name, rate, fmtRate(r.PerSec()), fmtDur(r.P50), fmtDur(r.P99),
		cpuPer(r.CPU, r.Requests), r.CodesString())
	if !r.OK() {
		b.fail("%s: %d of %d responses were not %d: %s", r.Name, r.Requests-r.Good, r.Requests, r.Want, strings.Join(r.Errors, "; "))
	}
	b.sequence = append(b.sequence, anyRun{http: &r})
	return r
}

// anyRun is one line of the table of every run: a vegeta run or a SQL
// baseline run.
type anyRun struct {
	http *runResult
	sql  *sqlResult
}

// memMark is the server's peak resident set after a phase.
type memMark struct {
	After string
	KB    int64
}

// markHWM records the server's VmHWM after the phase named after.
func (b *bench) markHWM(pid int, after string) {
	kb, err := procStatusKB(pid, "VmHWM")
	if err != nil {
		b.memErr = append(b.memErr, err.Error())
		return
	}
	b.hwm = append(b.hwm, memMark{after, kb})
	logf("VmHWM after %s: %s", after, fmtMB(kb))
}

// best is the run with the most good responses per second.
func best(runs []runResult) runResult {
	var b runResult
	for _, r := range runs {
		if r.PerSec() > b.PerSec() {
			b = r
		}
	}
	return b
}

func allOK(runs ...runResult) bool {
	for _, r := range runs {
		if !r.OK() {
			return false
		}
	}
	return len(runs) > 0
}

// warmKey sends one keyed request so the key is in the server's cache.
func warmKey(ctx context.Context, url string, h http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header = h.Clone()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: warming the key: %v", errSetup, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1024))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: GET /api/v1/key with the benchmark key: %d %s", errSetup, res.StatusCode, oneLine(body, 300))
	}
	return nil
}

// scrapeCounters keeps the server's counters that explain a run: cache
// lookups, rate-limit refusals, dropped and failed buffer flushes.
func scrapeCounters(url string) []string {
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Get(url)
	if err != nil {
		return []string{"(could not read /metrics: " + err.Error() + ")"}
	}
	defer res.Body.Close()
	var out []string
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, p := range []string{"keyward_apikey_cache_lookups_total", "keyward_apikey_verifications_total",
			"keyward_ratelimit_rejections_total", "keyward_buffer_dropped_total", "keyward_flush_errors_total",
			"keyward_flush_batch_size_sum", "keyward_flush_batch_size_count"} {
			if strings.HasPrefix(line, p) {
				out = append(out, line)
			}
		}
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// rows is the results table: one line per measure, with its target.
func (b *bench) rows() []row {
	var rows []row
	mem := func(name string, kb int64, mb float64) row {
		r := row{Measure: name, Value: fmtMB(kb), Target: fmt.Sprintf("< %.0f MB", mb)}
		if kb == 0 {
			r.Value, r.Status = "—", statusUnavailable
		} else {
			r.Status = check(underMB(kb, mb))
		}
		return r
	}
	rows = append(rows, mem(fmt.Sprintf("Idle memory: keyward VmRSS %v after /readyz", b.o.idleWait), b.idleRSS, 60))

	hb, kb := best(b.healthzMax), best(b.keyedMax)
	rows = append(rows,
		row{Measure: fmt.Sprintf("`GET /healthz` (unkeyed), max throughput, best of %d", len(b.healthzMax)),
			Value: fmtRate(hb.PerSec()) + " req/s", Status: runStatus(b.healthzMax...)},
		row{Measure: fmt.Sprintf("`GET /api/v1/key` (keyed, cache hit, every request logged), max throughput, best of %d", len(b.keyedMax)),
			Value: fmtRate(kb.PerSec()) + " req/s", Status: runStatus(b.keyedMax...)})
	ratio := row{Measure: "Keyed / unkeyed max throughput", Target: "≥ 0.85"}
	if hb.PerSec() > 0 {
		r := kb.PerSec() / hb.PerSec()
		ratio.Value = fmt.Sprintf("%.2f", r)
		ratio.Status = check(r >= 0.85)
	} else {
		ratio.Value, ratio.Status = "—", statusUnavailable
	}
	if !allOK(append(b.healthzMax, b.keyedMax...)...) {
		ratio.Status = statusError
	}
	rows = append(rows, ratio)
	if n := min(len(b.healthzMax), len(b.keyedMax)); n > 1 {
		// Each round's two runs are next to each other in time, so their
		// ratio shares more of the machine's state than the two bests do.
		var rs []float64
		var parts []string
		for i := range n {
			if h := b.healthzMax[i].PerSec(); h > 0 {
				r := b.keyedMax[i].PerSec() / h
				rs = append(rs, r)
				parts = append(parts, fmt.Sprintf("%.2f", r))
			}
		}
		if len(rs) > 0 {
			slices.Sort(rs)
			med := rs[len(rs)/2]
			if len(rs)%2 == 0 {
				med = (rs[len(rs)/2-1] + rs[len(rs)/2]) / 2
			}
			rows = append(rows, row{Measure: "Keyed / unkeyed max throughput of each round (its two runs one after the other), and their median",
				Value: strings.Join(parts, ", ") + fmt.Sprintf("; median %.2f", med), Status: runStatus(append(b.healthzMax, b.keyedMax...)...),
				Note: "how far apart the rounds are shows the noise the best-of figures carry"})
		}
	}
	hu, hn := cpuSum(b.healthzMax)
	ku, kn := cpuSum(b.keyedMax)
	if hn > 0 && kn > 0 && hu.Server > 0 {
		hs, ks := hu.Server/time.Duration(hn), ku.Server/time.Duration(kn)
		rows = append(rows, row{Measure: "CPU per request in the max-throughput runs, `/api/v1/key` vs `/healthz`: server / PostgreSQL / load generator",
			Value: cpuPer(ku, kn) + " vs " + cpuPer(hu, hn),
			Note:  fmt.Sprintf("server CPU per request keyed/unkeyed %.2f×; all three share the %d CPUs", float64(ks)/float64(hs), b.m.CPUs)})
		ht, kt := hu.Server+hu.PG+hu.Client, ku.Server+ku.PG+ku.Client
		if kt > 0 {
			rows = append(rows, row{Measure: "Keyed / unkeyed throughput implied by total CPU per request (server + PostgreSQL + load generator)",
				Value: fmt.Sprintf("%.2f", (float64(ht)/float64(hn))/(float64(kt)/float64(kn))),
				Note:  "what the throughput ratio tends to when the CPUs are the bottleneck; far less sensitive to other load on the machine than the measured ratio"})
			per := func(d time.Duration, n uint64) float64 { return float64(d) / float64(n) }
			extra := func(k, h time.Duration) string {
				return fmtSigned(time.Duration(per(k, kn) - per(h, hn)))
			}
			rows = append(rows, row{Measure: "What a keyed request costs more than an unkeyed one, CPU per request: server / PostgreSQL / load generator",
				Value: extra(ku.Server, hu.Server) + " / " + extra(ku.PG, hu.PG) + " / " + extra(ku.Client, hu.Client),
				Note:  "PostgreSQL's share is the request-log row (COPY into the partitioned table and its two indexes); the load generator's is sending the key and reading the larger answer (five rate-limit headers and the key's JSON)"})
			// Were the server's keyed path free, the ratio could not rise above this.
			rows = append(rows, row{Measure: "Keyed / unkeyed throughput implied by CPU if the server spent no more on a keyed request than on `/healthz`",
				Value: fmt.Sprintf("%.2f", per(ht, hn)/(per(kt, kn)-(per(ku.Server, kn)-per(hu.Server, hn)))),
				Note:  "the ceiling that server-side work alone can reach in this setup, the request log and the response's size being what they are"})
		}
	}
	rows = append(rows, b.requestLogRows()...)
	for _, r := range []runResult{b.healthzRate, b.keyRate} {
		if r.Name == "" {
			continue
		}
		x := row{Measure: fmt.Sprintf("`%s` at a constant %s req/s: p50 / p99", r.Name, fmtRate(float64(r.Rate))),
			Value: fmtDur(r.P50) + " / " + fmtDur(r.P99), Status: runStatus(r)}
		if got := r.PerSec(); got < 0.95*float64(r.Rate) {
			x.Note = fmt.Sprintf("fell behind the rate: %s req/s answered", fmtRate(got))
		}
		rows = append(rows, x)
	}
	if b.keyRate.P99 > 0 && b.healthzRate.P99 > 0 {
		rows = append(rows, row{Measure: "Keyed / unkeyed latency at that rate: p50 / p99",
			Value:  fmt.Sprintf("%.2f / %.2f", float64(b.keyRate.P50)/float64(b.healthzRate.P50), float64(b.keyRate.P99)/float64(b.healthzRate.P99)),
			Status: runStatus(b.healthzRate, b.keyRate)})
	}

	if b.ingestRun {
		sqlRow := row{Measure: fmt.Sprintf("Plain single-row `INSERT INTO events` loop, autocommit (%d goroutines, pool of %d), best of %d", b.sql.Goroutines, b.sql.Conns, len(b.sqlRuns))}
		if b.sqlErr != nil || !b.sql.OK() {
			sqlRow.Value, sqlRow.Status = fmtRate(b.sql.PerSec())+" rows/s", statusError
		} else {
			sqlRow.Value = fmtRate(b.sql.PerSec()) + " rows/s"
			sqlRow.Note = "p50 " + fmtDur(b.sql.P50) + ", p99 " + fmtDur(b.sql.P99)
		}
		rows = append(rows, sqlRow,
			row{Measure: fmt.Sprintf("`POST /api/v1/events`, max throughput, best of %d", len(b.singleRuns)), Value: fmtRate(b.single.EventsPerSec()) + " events/s", Status: runStatus(b.single),
				Note: "p50 " + fmtDur(b.single.P50) + ", p99 " + fmtDur(b.single.P99)})
		ing := row{Measure: "Single-event ingestion / plain INSERT", Target: "≥ 0.5"}
		if b.sql.PerSec() > 0 {
			r := b.single.EventsPerSec() / b.sql.PerSec()
			ing.Value, ing.Status = fmt.Sprintf("%.2f", r), check(r >= 0.5)
		} else {
			ing.Value, ing.Status = "—", statusUnavailable
		}
		if !b.single.OK() || b.sqlErr != nil || !b.sql.OK() {
			ing.Status = statusError
		}
		rows = append(rows, ing,
			row{Measure: fmt.Sprintf("`POST /api/v1/events/batch` (%d events a request), max throughput", b.o.batchSize),
				Value: fmtRate(b.batch.EventsPerSec()) + " events/s", Status: runStatus(b.batch),
				Note: fmt.Sprintf("%s req/s; p50 %s, p99 %s", fmtRate(b.batch.PerSec()), fmtDur(b.batch.P50), fmtDur(b.batch.P99))})
		bat := row{Measure: "Batch / single-event ingestion, events/s", Target: "≥ 10×"}
		if b.single.EventsPerSec() > 0 {
			r := b.batch.EventsPerSec() / b.single.EventsPerSec()
			bat.Value, bat.Status = fmt.Sprintf("%.1f×", r), check(r >= 10)
		} else {
			bat.Value, bat.Status = "—", statusUnavailable
		}
		if !b.single.OK() || !b.batch.OK() {
			bat.Status = statusError
		}
		rows = append(rows, bat)
	}

	rows = append(rows, b.floodRows()...)

	miss := row{Measure: fmt.Sprintf("Cache-miss verification in process (`InvalidateAll` then `Verify`, n=%d): p50 / p99", b.miss.N),
		Value: fmtDur(b.miss.P50) + " / " + fmtDur(b.miss.P99), Note: "mean " + fmtDur(b.miss.Mean) + ", max " + fmtDur(b.miss.Max)}
	if b.miss.Failed > 0 || b.miss.N == 0 {
		miss.Status = statusError
	}
	rows = append(rows, miss)
	peak := mem(fmt.Sprintf("Peak memory: keyward VmHWM after every load run (the sign-in floods and the %d-connection runs included)", b.o.highWorkers), b.peakHWM, 150)
	var marks []string
	for _, m := range b.hwm {
		marks = append(marks, fmtMB(m.KB)+" after "+m.After)
	}
	peak.Note = strings.Join(marks, "; ")
	rows = append(rows, peak)

	exit := row{Measure: "`keyward serve` exit status after SIGTERM", Target: "0", Value: "0", Status: statusPass}
	if b.exitErr != nil {
		exit.Value, exit.Status = b.exitErr.Error(), statusMiss
	}
	rows = append(rows, exit)
	if b.o.gobench != "" {
		rows = append(rows, b.gb.cacheHitRows()...)
	}
	return rows
}

// requestLogRows: the keyed runs at both concurrencies, with what became
// of their request-log rows.
func (b *bench) requestLogRows() []row {
	var rows []row
	if b.fill.Rows > 0 {
		rows = append(rows, row{Measure: "Request log before the keyed runs", Value: groupDigits(b.fill.Total) + " rows",
			Note: fmt.Sprintf("%s rows of the bench key spread over the %d days before the run, written by one INSERT … SELECT generate_series in %v (then ANALYZE)",
				groupDigits(b.fill.Rows), b.fill.Days, b.fill.Elapsed.Round(100*time.Millisecond))})
	}
	byWorkers := map[int][]logCheck{}
	var order []int
	for _, c := range b.logChecks {
		if _, ok := byWorkers[c.Run.Workers]; !ok {
			order = append(order, c.Run.Workers)
		}
		byWorkers[c.Run.Workers] = append(byWorkers[c.Run.Workers], c)
	}
	var highest []string
	for _, w := range order {
		cs := byWorkers[w]
		var ans uint64
		var logged int64
		var dropped float64
		ok := true
		var top runResult
		for _, c := range cs {
			ans += c.Answered
			logged += c.Logged
			dropped += c.Dropped
			ok = ok && c.OK()
			if c.Run.PerSec() > top.PerSec() {
				top = c.Run
			}
		}
		r := row{Measure: fmt.Sprintf("Request log of the keyed max-throughput runs at %d connections (%d run%s): requests answered / rows found / rows dropped", w, len(cs), plural(len(cs))),
			Value:  groupDigits(int64(ans)) + " / " + groupDigits(logged) + " / " + fmtRate(dropped),
			Target: "every row, 0 dropped", Status: check(ok)}
		if !allOK(runsOf(cs)...) {
			r.Status = statusError
		}
		rows = append(rows, r)
		highest = append(highest, fmt.Sprintf("%s req/s at %d connections", fmtRate(top.PerSec()), w))
	}
	if len(highest) > 0 {
		rows = append(rows, row{Measure: "Highest keyed (`GET /api/v1/key`) throughput with every request logged", Value: strings.Join(highest, "; ")})
	}
	if h, k := b.healthzHigh, b.keyedHigh; h.Name != "" && k.Name != "" {
		x := row{Measure: fmt.Sprintf("Keyed / unkeyed max throughput at %d connections (one run each)", h.Workers), Status: runStatus(h, k),
			Note: fmt.Sprintf("`/healthz` %s req/s, p99 %s; `/api/v1/key` %s req/s, p99 %s", fmtRate(h.PerSec()), fmtDur(h.P99), fmtRate(k.PerSec()), fmtDur(k.P99))}
		if h.PerSec() > 0 {
			x.Value = fmt.Sprintf("%.2f", k.PerSec()/h.PerSec())
		} else {
			x.Value, x.Status = "—", statusUnavailable
		}
		rows = append(rows, x)
	}
	return rows
}

// floodRows: requests with never-seen keys, without and during each
// sign-in flood, and what the floods' attempts got.
func (b *bench) floodRows() []row {
	q := b.missQuiet
	if q.Run.Name == "" {
		return nil
	}
	missNote := func(m missRun) string {
		if m.Misses < 0 {
			return "server's cache-miss counter not read"
		}
		return fmt.Sprintf("the server counted %s cache misses for %s requests; mean %s", fmtRate(m.Misses), groupDigits(int64(m.Run.Requests)), fmtDur(m.Run.Mean))
	}
	rows := []row{{Measure: fmt.Sprintf("`GET /api/v1/key` with a never-seen key each, %d req/s, no flood: p50 / p99", q.Run.Rate),
		Value: fmtDur(q.Run.P50) + " / " + fmtDur(q.Run.P99), Status: runStatus(q.Run), Note: missNote(q)}}
	for _, fr := range b.floods {
		f, fl := fr.Miss, fr.Flood
		during := row{Measure: fmt.Sprintf("The same during a sign-in flood, %s (%d workers, each from its own address): p50 / p99", fl.Name, fl.Workers),
			Value: fmtDur(f.Run.P50) + " / " + fmtDur(f.Run.P99), Target: "p50 < 50 ms", Status: check(f.Run.P50 > 0 && f.Run.P50 < 50*time.Millisecond), Note: missNote(f)}
		if !f.Run.OK() {
			during.Status = statusError
		}
		rows = append(rows, during)
		if q.Run.P50 > 0 && q.Run.P99 > 0 {
			rows = append(rows, row{Measure: fmt.Sprintf("Never-seen keys during / without the flood (%s): p50 / p99", fl.Name),
				Value: fmt.Sprintf("%.1f× / %.1f×", float64(f.Run.P50)/float64(q.Run.P50), float64(f.Run.P99)/float64(q.Run.P99)), Status: runStatus(q.Run, f.Run)})
		}
		if c := fr.Conns; c.Samples > 0 {
			rows = append(rows, row{Measure: fmt.Sprintf("The server's database connections during that run (%s): busy / waiting on an advisory lock, mean and most at once", fl.Name),
				Value: fmt.Sprintf("%.1f, %d / %.1f, %d", c.BusyMean(), c.BusyMax, c.AdvisoryMean(), c.AdvisoryMax),
				Note:  fmt.Sprintf("of a pool of %d (and one for LISTEN); %d samples of `pg_stat_activity`, one every 100 ms", b.serverPool, c.Samples)})
		} else if c.Err != "" {
			rows = append(rows, row{Measure: fmt.Sprintf("The server's database connections during that run (%s)", fl.Name), Value: "—", Status: statusUnavailable, Note: c.Err})
		}
		st := statusInfo
		if len(fl.Errors) > 0 {
			st = statusError
		}
		secs := fl.Elapsed.Seconds()
		rows = append(rows, row{Measure: fmt.Sprintf("Sign-in attempts of that flood (%s): 401 (checked, wrong) / 429 (address or account locked) / 503 (hash line full)", fl.Name),
			Value:  groupDigits(int64(fl.Codes[401])) + " / " + groupDigits(int64(fl.Codes[429])) + " / " + groupDigits(int64(fl.Codes[503])),
			Status: st, Note: fmt.Sprintf("%s attempts in %.1f s (%s a second)", groupDigits(int64(fl.Attempts())), secs, fmtRate(float64(fl.Attempts())/secs))})
	}
	return rows
}

func runsOf(cs []logCheck) []runResult {
	var rs []runResult
	for _, c := range cs {
		rs = append(rs, c.Run)
	}
	return rs
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func runStatus(runs ...runResult) status {
	for _, r := range runs {
		if !r.OK() {
			return statusError
		}
	}
	return statusInfo
}

func (b *bench) markdown(rows []row) string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format+"\n", args...) }
	o, m := b.o, b.m

	p("# Benchmarks")
	p("")
	p("Written by `make bench` (`cmd/kwbench`) on %s; every run rewrites the whole file. Do not edit it by hand.",
		b.started.UTC().Format("2006-01-02 15:04 MST"))
	p("")
	p("## How these were measured")
	p("")
	p("- **Machine:** %s, %d logical CPUs (kwbench's GOMAXPROCS %d), %s MB memory, Linux %s. The machine is shared and noisy (1-minute load average %s when kwbench started, %s when it ended, its own load included): read the ratios, each of which compares two figures taken in the same run, with the same tool, at the same concurrency; the absolute figures are for orientation only.",
		m.CPU, m.CPUs, m.Procs, groupDigits(m.MemMB), m.Kernel, b.loadStart, b.loadEnd)
	p("- **Software:** %s; vegeta %s, used as a library; PostgreSQL settings: %s.", m.Go, m.Vegeta, b.pg)
	p("- **Database:** a private cluster started by `db/pglocal` in a temporary directory on %s, with default durability (fsync, synchronous_commit and full_page_writes on, as `make run` has; not the tests' fast mode), migrated, holding one tenant on the *stack* plan, its owner, one production key with every scope whose rate limit is raised to %s requests an hour so the limiter (in memory) never refuses a request, and %s more production keys for the cache-miss runs, all made by `apikey.Create` as the portal makes them.",
		m.Storage, groupDigits(benchRateLimit), groupDigits(int64(b.missKeys)))
	p("- **Server:** `keyward serve` built from this tree (`go build -o %s ./cmd/keyward`) with the settings an operator would run it with: `KEYWARD_MODE=production` (so a JSON log line for every request, on every route alike, and Secure `__Host-` cookies), `KEYWARD_TRUSTED_PROXIES=%s` (the sign-in flood's addresses come in `X-Forwarded-For` from loopback, as from a proxy), and every sizing setting left unset so its default holds: `KEYWARD_DB_MAX_CONNS` (a pool of 4 connections per CPU: %d here), `KEYWARD_REQUEST_LOG_BUFFER` (64 MB), `GOGC` (serve sets 200), no `GOMEMLIMIT`, rate limits in memory (no Redis). `KEYWARD_DATABASE_URL` points at the cluster above; stdout and stderr go to `/dev/null`. Load generator, server and PostgreSQL share the CPUs above.", o.bin, trustedProxies, b.serverPool)
	p("- **Load:** HTTP/1.1 with keep-alive, %d vegeta workers (and at most %d connections) in every run unless said otherwise; each measured run lasts %v. Before the max-throughput runs, %v of warm-up per route (not counted). Max-throughput runs use rate 0 (as fast as the workers go), %d rounds per route at %d connections, alternating which route goes first; the best run of each route counts; then one run of each route at %d connections. The constant-rate runs ask both routes for %.0f%% of the slower route's best max-throughput figure at %d connections, so that both can keep up and their latencies are taken at the same rate. A run passes only if every response has the expected status (200, or 201 for ingestion); latencies are vegeta's.", o.workers, o.workers, o.duration, o.warmup, o.rounds, o.workers, o.highWorkers, o.rateFrac*100, o.workers)
	p("- **Request log:** every keyed request (every `GET /api/v1/key` here) queues a request-log row, as in production; nothing in the bench turns that off. Before the server starts, the request log gets %s rows of the bench key spread evenly over the %d days before the run (their partitions created first with the migration's `request_log_partitions_ensure`, then one `INSERT … SELECT … FROM generate_series`, then `ANALYZE`), so the runs write into indexes of that size. After each keyed max-throughput run, kwbench polls `SELECT sum(count) FROM api_request_logs WHERE key_id = <bench key> AND at >= <run start>` every 200 ms until it reaches the number of answered requests (or stands still for 5 s), and reads the server's `/metrics` before the run and after the wait: `keyward_flush_batch_size_sum{buffer=\"request_log\"}` (rows written) and `keyward_buffer_dropped_total{buffer=\"request_log\"}` (rows dropped). A run keeps every row when the rows found equal the requests answered and none was dropped.", groupDigits(o.logRows), o.logDays)
	if b.ingestRun {
		p("- **Ingestion:** `POST /api/v1/events` with a fresh `Idempotency-Key` per request and the body `%s`; the baseline is the same row written by a plain `INSERT INTO events (...) VALUES (...)` in autocommit from %d goroutines over a pgx pool of %d connections (%s), against the same database, for the same %v. The baseline is not HTTP (it is the database's own floor), so this ratio also prices the HTTP layer. %d rounds, alternating which goes first (%s); the best of each counts. The batch route sends %d such events per request.",
			singleBody(), b.sql.Goroutines, b.sql.Conns, poolNote(o.baseConns), o.duration, len(b.ingestOrders), strings.Join(b.ingestOrders, "; "), o.batchSize)
	}
	p("- **Cache misses over HTTP, and the sign-in floods:** `GET /api/v1/key` at a constant %d requests a second for %v (vegeta, %d workers), each request with its own key that the server has never seen, so each one misses the server's key cache and costs a lookup in PostgreSQL (and, in the background, the record of the key's first use from an address, as any new key's first request does); the server's `keyward_apikey_cache_lookups_total{result=\"miss\"}` is read before and after to check it. First without a flood; then twice during a sign-in flood: %d workers start the flood and, %v later, the same run starts with other never-seen keys; the flood stops when it ends, and the next one starts 2 s later. Each flood worker fetches `GET /login` once for its CSRF cookie and token (as a browser does), then posts wrong passwords back to back, never waiting out a `Retry-After`, from its own address (sent as `X-Forwarded-For`; the first flood from 198.18.0.1 on, the second from the next %d addresses of 198.18.0.0/15, so neither inherits the other's address locks). In the first flood every attempt names a made-up email (so only the address's limit applies, and each attempt admitted is hashed); in the second, even-numbered workers guess the tenant owner's real email (so the account lock engages) and odd-numbered ones made-up emails. The flood's workers run in kwbench, on the same CPUs as the server: the figures during a flood include their CPU use. During each of those runs, kwbench samples `pg_stat_activity` every 100 ms and counts the server's connections (its own are told apart by their `application_name`) that are busy (not idle) and those waiting on an advisory lock (the sign-in throttle's per-account and per-address locks). The ratio of the runs' p50 and p99 is what to read.",
		o.missRate, o.missDuration, o.missWorkers, o.floodWorkers, o.floodRamp, o.floodWorkers)
	p("- **Memory:** VmRSS of the keyward process %v after `/readyz` answered (idle), and VmHWM (peak resident set) after each phase and after the last load run (the %d-connection runs and the floods included), from `/proc/<pid>/status`; MB are 10^6 bytes.", o.idleWait, o.highWorkers)
	p("- **Cache miss in process:** in the kwbench process, an `apikey.NewVerifier` with default options, except the instance-wide budget of lookups of keys not cached (1,000 a second by default, raised above the loop's count: the loop makes nothing but misses), on its own pgx pool to the same database; %d times: `InvalidateAll`, then one timed `Verify` of the key (parse, hash, miss, one query, principal cached).", o.misses)
	p("- **Total time** of kwbench: %v (the Go benchmarks, which `make bench` runs first, not included); every run has the length and the number of rounds given above.", b.finished.Sub(b.started).Round(time.Second))
	p("")

	p("## Results")
	p("")
	p("| measure | value | target | result | notes |")
	p("|---|---|---|---|---|")
	for _, r := range rows {
		target := r.Target
		if target == "" {
			target = "—"
		}
		p("| %s | %s | %s | %s | %s |", mdCell(r.Measure), mdCell(r.Value), mdCell(target), r.Status, mdCell(r.Note))
	}
	p("")
	if len(b.failed) > 0 {
		p("**Something did not work in this run:**")
		p("")
		for _, f := range b.failed {
			p("- %s", mdCell(f))
		}
		p("")
	}

	w.WriteString(auditExportSection(b.audit, b.started))

	p("## Every load run")
	p("")
	p("In the order they ran. *good/s* counts responses with the expected status per second of the run.")
	p("")
	p("| # | run | rate asked | workers | length | requests | good/s | p50 | p99 | mean | CPU per request: server / PostgreSQL / load generator | statuses | errors |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for i, x := range b.sequence {
		n := i + 1
		if r := x.sql; r != nil {
			p("| %d | SQL baseline: single-row INSERT loop | max | %d goroutines | %s | %s rows | %s | %s | %s | — | %s | — | %s |", n,
				r.Goroutines, r.Elapsed.Round(10*time.Millisecond), groupDigits(int64(r.Rows)), fmtRate(r.PerSec()),
				fmtDur(r.P50), fmtDur(r.P99), cpuPer(r.CPU, r.Rows), mdCell(sqlRunErrors(*r)))
			continue
		}
		r := x.http
		rate := "max"
		if r.Rate > 0 {
			rate = fmtRate(float64(r.Rate)) + "/s"
		}
		errs := "none"
		if len(r.Errors) > 0 {
			errs = strings.Join(r.Errors, "; ")
		}
		p("| %d | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |", n, mdCell(r.Name), rate, r.Workers,
			r.Elapsed.Round(10*time.Millisecond), groupDigits(int64(r.Requests)), fmtRate(r.PerSec()),
			fmtDur(r.P50), fmtDur(r.P99), fmtDur(r.Mean), cpuPer(r.CPU, r.Requests), mdCell(r.CodesString()), mdCell(errs))
	}
	p("")
	if len(b.logChecks) > 0 {
		p("### The request log of each keyed max-throughput run")
		p("")
		p("In the order they ran. *rows found*: requests of the bench key in `api_request_logs` (the sum of `count`) whose time is at or after the run's start; *written* and *dropped*: the change of `keyward_flush_batch_size_sum{buffer=\"request_log\"}` and `keyward_buffer_dropped_total{buffer=\"request_log\"}` over the run and the wait; *waited*: from the run's end until every answered request was found (or the count stood still for 5 s).")
		p("")
		p("| connections | req/s | requests answered | rows found | rows written (metrics) | rows dropped (metrics) | failed writes | waited | every row |")
		p("|---|---|---|---|---|---|---|---|---|")
		for _, c := range b.logChecks {
			every := "yes"
			if !c.OK() {
				every = "**no**"
			}
			if c.Err != "" {
				every += " (" + c.Err + ")"
			}
			p("| %d | %s | %s | %s | %s | %s | %s | %s | %s |", c.Run.Workers, fmtRate(c.Run.PerSec()), groupDigits(int64(c.Answered)),
				groupDigits(c.Logged), fmtRate(c.Written), fmtRate(c.Dropped), fmtRate(c.Errors), c.Settle.Round(100*time.Millisecond), mdCell(every))
		}
	}
	p("")
	if len(b.counters) > 0 {
		p("Server counters (`/metrics`) after the load runs:")
		p("")
		p("```")
		for _, c := range b.counters {
			p("%s", c)
		}
		p("```")
		p("")
	}

	p("## Go benchmarks")
	p("")
	switch {
	case o.gobench == "":
		p("Not included (kwbench ran with `-gobench ''`).")
	case b.gb.Err != nil:
		p("Not available: %s.", mdCell(b.gb.Err.Error()))
	default:
		p("From `go test -run '^$' -bench . -benchmem ./...`, run by `make bench` just before kwbench (`%s`). Targets: `BenchmarkVerifyCacheHit` under 2 µs/op with 0 allocs/op (checked in the results above).", b.gb.Path)
		if len(b.gb.Header) > 0 {
			p("")
			p("%s", strings.Join(b.gb.Header, "; "))
		}
		p("")
		p("| package | benchmark | iterations | ns/op | B/op | allocs/op | other |")
		p("|---|---|---|---|---|---|---|")
		for _, g := range b.gb.Benches {
			cell := func(unit string) string {
				for _, mt := range g.Metrics {
					if mt.Unit == unit {
						return mt.Raw
					}
				}
				return "—"
			}
			var other []string
			for _, mt := range g.Metrics {
				if mt.Unit != "ns/op" && mt.Unit != "B/op" && mt.Unit != "allocs/op" {
					other = append(other, mt.Raw+" "+mt.Unit)
				}
			}
			p("| %s | `%s` | %s | %s | %s | %s | %s |", shortPkg(g.Pkg), g.Name, g.Iter, cell("ns/op"), cell("B/op"), cell("allocs/op"), mdCell(strings.Join(other, ", ")))
		}
		if len(b.gb.Benches) == 0 {
			p("| — | no benchmark lines found | | | | | |")
		}
		if len(b.gb.Failed) > 0 {
			p("")
			p("**Failures reported by `go test`:** %s", mdCell(strings.Join(b.gb.Failed, "; ")))
		}
	}
	return w.String()
}

// fmtSigned shows d with its sign.
func fmtSigned(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	if d < 0 {
		return "−" + fmtDur(-d)
	}
	return "+" + fmtDur(d)
}

func poolNote(conns int) string {
	if conns > 0 {
		return "set by -baseline-conns"
	}
	return "the size keyward serve's own pool has by default"
}

// cpuPer shows the CPU time of each party divided by n requests.
func cpuPer(u cpuUse, n uint64) string {
	if n == 0 {
		return "—"
	}
	if u.Server == 0 && u.PG == 0 && u.Client == 0 {
		return "—"
	}
	per := func(d time.Duration) string {
		if d <= 0 {
			return "0"
		}
		return fmtDur(d / time.Duration(n))
	}
	return per(u.Server) + " / " + per(u.PG) + " / " + per(u.Client)
}

// cpuSum adds the CPU use and requests of runs.
func cpuSum(runs []runResult) (cpuUse, uint64) {
	var u cpuUse
	var n uint64
	for _, r := range runs {
		u.Server += r.CPU.Server
		u.PG += r.CPU.PG
		u.Client += r.CPU.Client
		n += r.Requests
	}
	return u, n
}

func sqlRunErrors(r sqlResult) string {
	if r.Failed > 0 {
		return fmt.Sprintf("%d failed, first: %s", r.Failed, r.FirstErr)
	}
	return "none"
}

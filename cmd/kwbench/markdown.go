package main

import (
	"fmt"
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
		row{Measure: fmt.Sprintf("`GET /api/v1/key` (keyed, cache hit), max throughput, best of %d", len(b.keyedMax)),
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
		}
	}
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

	miss := row{Measure: fmt.Sprintf("Cache-miss verification in process (`InvalidateAll` then `Verify`, n=%d): p50 / p99", b.miss.N),
		Value: fmtDur(b.miss.P50) + " / " + fmtDur(b.miss.P99), Note: "mean " + fmtDur(b.miss.Mean) + ", max " + fmtDur(b.miss.Max)}
	if b.miss.Failed > 0 || b.miss.N == 0 {
		miss.Status = statusError
	}
	rows = append(rows, miss)
	rows = append(rows, mem("Peak memory: keyward VmHWM after every load run", b.peakHWM, 150))

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
	p("- **Machine:** %s, %d logical CPUs (kwbench's GOMAXPROCS %d), %s MB memory, Linux %s. The machine is shared and noisy: read the ratios, each of which compares two figures taken in the same run, with the same tool, at the same concurrency; the absolute figures are for orientation only.",
		m.CPU, m.CPUs, m.Procs, groupDigits(m.MemMB), m.Kernel)
	p("- **Software:** %s; vegeta %s, used as a library; PostgreSQL settings: %s.", m.Go, m.Vegeta, b.pg)
	p("- **Database:** a private cluster started by `db/pglocal` in a temporary directory on %s, with default durability (fsync, synchronous_commit and full_page_writes on, as `make run` has; not the tests' fast mode), migrated, holding one tenant on the *stack* plan, its owner and one production key with every scope whose rate limit is raised to %s requests an hour so the limiter (in memory) never refuses a request.",
		m.Storage, groupDigits(benchRateLimit))
	p("- **Server:** `keyward serve` built from this tree (`go build -o %s ./cmd/keyward`), `KEYWARD_MODE=development`, `KEYWARD_DATABASE_URL` set (so its pgx pool has the default size), stdout and stderr to `/dev/null` (it still formats a JSON log line per request, on both routes alike). Load generator, server and PostgreSQL share the CPUs above.", o.bin)
	p("- **Load:** HTTP/1.1 with keep-alive, %d vegeta workers (and at most %d connections) in every run; each measured run lasts %v. Before the max-throughput runs, %v of warm-up per route (not counted). Max-throughput runs use rate 0 (as fast as the workers go), %d rounds per route, alternating which route goes first; the best run of each route counts. The constant-rate runs ask both routes for %.0f%% of the slower route's best max-throughput figure, so that both can keep up and their latencies are taken at the same rate. A run passes only if every response has the expected status (200, or 201 for ingestion); latencies are vegeta's.", o.workers, o.workers, o.duration, o.warmup, o.rounds, o.rateFrac*100)
	if b.ingestRun {
		p("- **Ingestion:** `POST /api/v1/events` with a fresh `Idempotency-Key` per request and the body `%s`; the baseline is the same row written by a plain `INSERT INTO events (...) VALUES (...)` in autocommit from %d goroutines over a pgx pool of %d connections (%s), against the same database, for the same %v. The baseline is not HTTP (it is the database's own floor), so this ratio also prices the HTTP layer. %d rounds, alternating which goes first (%s); the best of each counts. The batch route sends %d such events per request.",
			singleBody(), b.sql.Goroutines, b.sql.Conns, poolNote(o.baseConns), o.duration, len(b.ingestOrders), strings.Join(b.ingestOrders, "; "), o.batchSize)
	}
	p("- **Memory:** VmRSS of the keyward process %v after `/readyz` answered (idle), and VmHWM (peak resident set) after the last load run, from `/proc/<pid>/status`; MB are 10^6 bytes.", o.idleWait)
	p("- **Cache miss:** in the kwbench process, an `apikey.NewVerifier` with default options on its own pgx pool to the same database; %d times: `InvalidateAll`, then one timed `Verify` of the key (parse, hash, miss, one query, principal cached).", o.misses)
	p("- **Total time** of kwbench: %v.", b.finished.Sub(b.started).Round(time.Second))
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

	p("## Every load run")
	p("")
	p("In the order they ran. *good/s* counts responses with the expected status per second of the run.")
	p("")
	p("| # | run | rate asked | workers | length | requests | good/s | p50 | p99 | mean | CPU per request: server / PostgreSQL / load generator | statuses | errors |")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	n := 0
	line := func(r runResult) {
		if r.Name == "" {
			return
		}
		n++
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
	for _, r := range b.warmups {
		line(r)
	}
	hi, ki := 0, 0
	for _, order := range b.orders {
		for _, which := range strings.Split(order, ", ") {
			if which == "healthz" && hi < len(b.healthzMax) {
				line(b.healthzMax[hi])
				hi++
			} else if which == "key" && ki < len(b.keyedMax) {
				line(b.keyedMax[ki])
				ki++
			}
		}
	}
	line(b.healthzRate)
	line(b.keyRate)
	if b.ingestRun {
		for i := range max(len(b.sqlRuns), len(b.singleRuns)) {
			sqlLine := func() {
				if i >= len(b.sqlRuns) {
					return
				}
				r := b.sqlRuns[i]
				n++
				p("| %d | SQL baseline: single-row INSERT loop | max | %d goroutines | %s | %s rows | %s | %s | %s | — | %s | — | %s |", n,
					r.Goroutines, r.Elapsed.Round(10*time.Millisecond), groupDigits(int64(r.Rows)), fmtRate(r.PerSec()),
					fmtDur(r.P50), fmtDur(r.P99), cpuPer(r.CPU, r.Rows), mdCell(sqlRunErrors(r)))
			}
			if i%2 == 0 {
				sqlLine()
			}
			if i < len(b.singleRuns) {
				line(b.singleRuns[i])
			}
			if i%2 == 1 {
				sqlLine()
			}
		}
		line(b.batch)
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

func poolNote(conns int) string {
	if conns > 0 {
		return "set by -baseline-conns"
	}
	return "pgxpool's default size, the same as keyward serve's own pool, which is also left at the default"
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

// Command kwbench measures the public API of a real `keyward serve` and
// writes BENCHMARKS.md. `make bench` runs it after the Go benchmarks.
//
// It starts a private PostgreSQL cluster (db/pglocal, default durability),
// migrates a database, creates a tenant, an owner and an API key, builds and
// starts the keyward binary against it, and then drives it with vegeta
// (used as a library). The machine is shared and noisy, so every HTTP
// comparison is a ratio of two figures taken in the same run, with the same
// tool and the same concurrency; absolute figures are reported for
// orientation only.
//
// Measured: idle and peak resident memory of the server; keyed
// (GET /api/v1/key) against unkeyed (GET /healthz) throughput and latency,
// at 32 and at 128 connections, with every keyed request logged into a
// request log that already holds a million rows, and whether every one of
// those rows was written; single-event ingestion against a plain INSERT
// loop on the same database; batch ingestion against single-event
// ingestion; the latency of requests whose key misses the server's cache,
// with and without a flood of wrong-password sign-ins from many addresses;
// the in-process cost of a verification that misses the cache; how much
// the server's memory rises while it exports a million audit events as
// CSV and as JSON Lines (auditexport.go; -audit-only measures that alone
// and rewrites only its section). The
// figures of the Go benchmarks (run by make beforehand, into the file
// named by -gobench) are copied in.
//
// Usage (from the repository root):
//
//	go run ./cmd/kwbench [-duration 10s] [-workers 32] [-out BENCHMARKS.md] [-gobench tmp/gobench.txt]
//	go run ./cmd/kwbench -audit-only [-audit-events 1000000]
//
// It exits 1 when something did not work (setup, a response other than the
// expected status, an unclean server exit), after writing the file if it
// got that far. A missed target is reported in the file and on stderr but
// does not change the exit status: the machines are too noisy for that.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	duration   time.Duration // one measured run
	warmup     time.Duration // unreported run per target before the measured ones
	workers    int           // vegeta workers, and goroutines of the SQL baseline
	rounds     int           // measured max-throughput runs per target (alternating)
	rateFrac   float64       // constant-rate runs, as a fraction of the slower route's best throughput
	batchSize  int           // events per batch request
	misses     int           // cache-miss verifications timed in process
	idleWait   time.Duration // from ready to the idle RSS reading
	out        string
	gobench    string
	bin        string
	keepPGDir  bool
	baseConns  int // pool size of the SQL baseline (0: the server's default pool size)
	skipIngest bool

	auditEvents int64 // audit events the export section exports
	auditOnly   bool  // measure only the audit export, rewriting its section

	highWorkers  int           // connections of the second keyed max-throughput run
	logRows      int64         // rows put in the request log before the keyed runs
	logDays      int           // days they are spread over
	floodWorkers int           // concurrent sign-in attempts, each from its own address
	missRate     int           // cache-miss requests a second, with and without the flood
	missWorkers  int           // vegeta workers of those runs
	missDuration time.Duration // length of each of those two runs
	floodRamp    time.Duration // from the flood's start to the cache-miss run
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured load run")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up run per target before the max-throughput runs")
	flag.IntVar(&o.workers, "workers", 32, "concurrent vegeta workers (and SQL-baseline goroutines)")
	flag.IntVar(&o.rounds, "rounds", 3, "max-throughput runs per target, alternating; the best counts")
	flag.Float64Var(&o.rateFrac, "rate-fraction", 0.5, "constant-rate runs at this fraction of the slower route's best max throughput")
	flag.IntVar(&o.batchSize, "batch", 500, "events per POST /api/v1/events/batch request")
	flag.IntVar(&o.misses, "misses", 2000, "cache-miss verifications timed in process")
	flag.DurationVar(&o.idleWait, "idle-wait", 3*time.Second, "wait after /readyz before reading the idle RSS")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "file to write")
	flag.StringVar(&o.gobench, "gobench", "tmp/gobench.txt", "output of 'go test -bench' to copy in ('' to skip)")
	flag.StringVar(&o.bin, "bin", "tmp/keyward", "where to build the keyward binary")
	flag.IntVar(&o.baseConns, "baseline-conns", 0, "connections of the SQL baseline's pool (0: the size keyward serve's pool has by default)")
	flag.IntVar(&o.highWorkers, "high-workers", 128, "vegeta workers (and connections) of the second keyed max-throughput run")
	flag.Int64Var(&o.logRows, "log-rows", 1_000_000, "rows written into api_request_logs before the keyed runs")
	flag.IntVar(&o.logDays, "log-days", 7, "days before the run those rows are spread over")
	flag.IntVar(&o.floodWorkers, "flood-workers", 48, "concurrent sign-in attempts of the flood, each from its own address")
	flag.IntVar(&o.missRate, "miss-rate", 100, "requests a second with never-seen keys, with and without the sign-in flood")
	flag.IntVar(&o.missWorkers, "miss-workers", 64, "vegeta workers of the cache-miss runs (enough that slow answers do not hold the rate back)")
	flag.DurationVar(&o.missDuration, "miss-duration", 10*time.Second, "length of each cache-miss run over HTTP")
	flag.DurationVar(&o.floodRamp, "flood-ramp", 2*time.Second, "from the flood's start to the cache-miss run during it")
	flag.BoolVar(&o.keepPGDir, "keep", false, "keep the temporary cluster directory (its path is printed)")
	flag.BoolVar(&o.skipIngest, "skip-ingest", false, "skip the ingestion runs")
	flag.Int64Var(&o.auditEvents, "audit-events", 1_000_000, "events put in the audit trail before the audit export is measured")
	flag.BoolVar(&o.auditOnly, "audit-only", false, "measure only the audit log export, on a cluster and server of its own, and rewrite that section of -out alone")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: kwbench [flags]   (run from the repository root; writes BENCHMARKS.md)")
		flag.PrintDefaults()
	}
	flag.Parse()
	if o.workers < 1 || o.rounds < 1 || o.duration <= 0 || o.rateFrac <= 0 || o.batchSize < 1 || o.misses < 1 ||
		o.highWorkers < 1 || o.logRows < 0 || o.logDays < 1 || o.floodWorkers < 1 || o.missRate < 1 || o.missWorkers < 1 || o.missDuration <= 0 || o.floodRamp < 0 {
		fmt.Fprintln(os.Stderr, "kwbench: -workers, -rounds, -duration, -rate-fraction, -batch, -misses, -high-workers, -log-days, -flood-workers, -miss-rate, -miss-workers and -miss-duration must be positive")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var code int
	if o.auditOnly {
		code = runAuditOnly(ctx, o)
	} else {
		code = run(ctx, o)
	}
	stop()
	os.Exit(code)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kwbench: "+format+"\n", args...)
}

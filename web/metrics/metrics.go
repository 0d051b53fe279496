// Package metrics declares Keyward's Prometheus metrics. main builds one
// Set, with its own registry that /metrics serves, and hands it to what
// counts: no global registry, no init(). Domain packages count into the
// Set they are given; nothing else defines a metric.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Set is every Keyward metric, and the registry that serves them with the
// Go runtime's.
type Set struct {
	Registry *prometheus.Registry
	// Requests counts HTTP requests by route pattern, method and status.
	Requests *prometheus.CounterVec
	// Verifications counts API-key verification outcomes: ok, malformed,
	// unknown, disabled, expired, rotated, revoked, error.
	Verifications *prometheus.CounterVec
	// CacheLookups counts verifier cache lookups: hit or miss.
	CacheLookups *prometheus.CounterVec
	// Invalidations counts key-change notifications received.
	Invalidations prometheus.Counter
	// RateLimited counts requests refused with 429.
	RateLimited prometheus.Counter
	// RateLimitErrors counts shared-store failures that fell back to the
	// in-process limiter.
	RateLimitErrors prometheus.Counter
	// FlushSize observes how many rows each background flush wrote, by
	// buffer: last_used, request_log, new_ip.
	FlushSize *prometheus.HistogramVec
	// Dropped counts rows a full buffer had to drop, by buffer.
	Dropped *prometheus.CounterVec
	// FlushErrors counts failed background flushes, by buffer.
	FlushErrors *prometheus.CounterVec
}

// New builds a Set with a registry of its own.
func New() *Set {
	m := &Set{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		Verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_apikey_verifications_total", Help: "API-key verification outcomes.",
		}, []string{"outcome"}),
		CacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_apikey_cache_lookups_total", Help: "Verifier cache lookups by result (hit, miss).",
		}, []string{"result"}),
		Invalidations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyward_apikey_cache_invalidations_total", Help: "Key-change notifications received from Postgres.",
		}),
		RateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyward_ratelimit_rejections_total", Help: "Requests refused by a key's rate limit.",
		}),
		RateLimitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyward_ratelimit_store_errors_total", Help: "Redis rate-limit failures answered by the in-process limiter instead.",
		}),
		FlushSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "keyward_flush_batch_size", Help: "Rows written per background flush, by buffer.",
			Buckets: []float64{1, 10, 50, 100, 250, 500, 1000, 5000},
		}, []string{"buffer"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_buffer_dropped_total", Help: "Rows dropped because a buffer was full, by buffer.",
		}, []string{"buffer"}),
		FlushErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyward_flush_errors_total", Help: "Background flushes that failed, by buffer.",
		}, []string{"buffer"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.Requests, m.Verifications, m.CacheLookups, m.Invalidations, m.RateLimited, m.RateLimitErrors, m.FlushSize, m.Dropped, m.FlushErrors,
	)
	// Known series start at zero, so a dashboard sees them before the first
	// drop or failure.
	for _, b := range []string{"last_used", "request_log", "new_ip"} {
		m.Dropped.WithLabelValues(b)
		m.FlushErrors.WithLabelValues(b)
	}
	for _, r := range []string{"hit", "miss"} {
		m.CacheLookups.WithLabelValues(r)
	}
	return m
}

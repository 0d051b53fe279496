// Package metrics declares Keyward's Prometheus metrics, in one registry
// that /metrics serves. Domain packages count into these; nothing else
// defines a metric.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry holds every Keyward metric and the Go runtime's.
var Registry = prometheus.NewRegistry()

var (
	// Requests counts HTTP requests by route pattern, method and status.
	Requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyward_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
	}, []string{"route", "method", "status"})
	// Verifications counts API-key verification outcomes: ok, malformed,
	// unknown, disabled, expired, rotated, revoked, error.
	Verifications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyward_apikey_verifications_total", Help: "API-key verification outcomes.",
	}, []string{"outcome"})
	// CacheLookups counts verifier cache lookups: hit or miss.
	CacheLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyward_apikey_cache_lookups_total", Help: "Verifier cache lookups by result (hit, miss).",
	}, []string{"result"})
	// Invalidations counts key-change notifications received.
	Invalidations = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "keyward_apikey_cache_invalidations_total", Help: "Key-change notifications received from Postgres.",
	})
	// RateLimited counts requests refused with 429.
	RateLimited = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "keyward_ratelimit_rejections_total", Help: "Requests refused by a key's rate limit.",
	})
	// RateLimitErrors counts shared-store failures that fell back to the
	// in-process limiter.
	RateLimitErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "keyward_ratelimit_store_errors_total", Help: "Redis rate-limit failures answered by the in-process limiter instead.",
	})
	// FlushSize observes how many rows each background flush wrote, by
	// buffer: last_used, request_log, new_ip.
	FlushSize = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "keyward_flush_batch_size", Help: "Rows written per background flush, by buffer.",
		Buckets: []float64{1, 10, 50, 100, 250, 500, 1000, 5000},
	}, []string{"buffer"})
	// Dropped counts rows a full buffer had to drop, by buffer.
	Dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyward_buffer_dropped_total", Help: "Rows dropped because a buffer was full, by buffer.",
	}, []string{"buffer"})
	// FlushErrors counts failed background flushes, by buffer.
	FlushErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyward_flush_errors_total", Help: "Background flushes that failed, by buffer.",
	}, []string{"buffer"})
)

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		Requests, Verifications, CacheLookups, Invalidations, RateLimited, RateLimitErrors, FlushSize, Dropped, FlushErrors,
	)
	// Known series start at zero, so a dashboard sees them before the first
	// drop or failure.
	for _, b := range []string{"last_used", "request_log", "new_ip"} {
		Dropped.WithLabelValues(b)
		FlushErrors.WithLabelValues(b)
	}
	for _, r := range []string{"hit", "miss"} {
		CacheLookups.WithLabelValues(r)
	}
}

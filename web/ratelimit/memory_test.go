package ratelimit

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// MaxBuckets bounds a limiter keyed by something clients choose.
func TestMemoryMaxBuckets(t *testing.T) {
	m := &Memory{MaxBuckets: 10}
	l := Limit{Requests: 1, Window: time.Hour}
	for i := range 1000 {
		if !m.Allow(context.Background(), strconv.Itoa(i), l).Allowed {
			t.Fatalf("id %d refused on its first request", i)
		}
	}
	if n := len(m.buckets); n > 10 {
		t.Fatalf("%d buckets, bound 10", n)
	}
	// The newest id is still tracked: its second request is refused.
	if m.Allow(context.Background(), "999", l).Allowed {
		t.Fatal("the newest id lost its bucket")
	}
}

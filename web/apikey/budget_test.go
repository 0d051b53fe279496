package apikey_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"keyward/db"
	"keyward/web/apikey"
	"keyward/web/errs"
	"keyward/web/metrics"
	"keyward/web/ratelimit"
)

// TestValidKeyOutlastsAFlood: from one address, 40 made-up keys a second
// for 90 seconds (on the verifier's clock) spend that address's lookups of
// unknown keys (100 an hour here); a valid key sent from the same address keeps working the
// whole time, past several expiries of its cache entry, because lookups
// that find a key are never charged and busy keys are refreshed early.
func TestValidKeyOutlastsAFlood(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, valid := f.key(t, apikey.Config{})
	// An hourly budget of 100 unknown-key lookups: real time refills next
	// to nothing however slowly the machine runs the loop.
	v := apikey.NewVerifier(f.store.Queries, apikey.VerifierOptions{TTL: 20 * time.Second,
		LookupsPerClient: ratelimit.Limit{Requests: 100, Window: time.Hour}}, metrics.New())
	var offset atomic.Int64
	v.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	const ip = "198.51.100.7"
	throttled := 0
	for second := range 90 {
		for i := range 40 {
			fake, err := apikey.Generate(apikey.Production)
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.VerifyFrom(ctx, fake, ip)
			switch {
			case errors.Is(err, apikey.ErrLookupsExhausted):
				throttled++
			case !errors.Is(err, apikey.ErrInvalid):
				t.Fatalf("second %d, made-up key %d: %v", second, i, err)
			}
		}
		if _, err := v.VerifyFrom(ctx, valid, ip); err != nil {
			t.Fatalf("second %d: the valid key failed during the flood: %v", second, err)
		}
		offset.Add(int64(time.Second))
	}
	if throttled < 3600-110 {
		t.Errorf("only %d of 3,600 made-up keys were throttled: the flood did not exhaust the address's budget of 100", throttled)
	}
}

// TestLookupCeiling: an attacker with many addresses (each under its own
// budget) still cannot make the instance ask the database more than its
// ceiling allows; the excess gets 503 with Retry-After, and a cached key
// keeps working meanwhile.
func TestLookupCeiling(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, valid := f.key(t, apikey.Config{})
	const ceiling = 5
	v := apikey.NewVerifier(f.store.Queries, apikey.VerifierOptions{MaxLookupsPerSecond: ceiling}, metrics.New())
	if _, err := v.Verify(ctx, valid); err != nil {
		t.Fatal(err)
	}
	start, before := time.Now(), f.tracer.Len()
	unknown, unavailable := 0, 0
	for i := range 60 {
		fake, _ := apikey.Generate(apikey.Production)
		_, err := v.VerifyFrom(ctx, fake, fmt.Sprintf("2001:db8:%x::1", i)) // a /64 each
		e, _ := errs.As(err)
		switch {
		case errors.Is(err, apikey.ErrInvalid):
			unknown++
		case e != nil && e.Kind == errs.Unavailable && e.RetryAfter > 0:
			unavailable++
		default:
			t.Fatalf("made-up key %d: %v", i, err)
		}
		if _, err := v.Verify(ctx, valid); err != nil {
			t.Fatalf("the cached key failed while lookups were saturated: %v", err)
		}
	}
	// The ceiling's bucket holds `ceiling` and refills `ceiling` a second.
	allowed := ceiling + int(time.Since(start).Seconds()*ceiling) + 1
	if lookups := f.tracer.Matching(before, "GetKeyForVerify"); unknown > allowed || lookups > allowed {
		t.Errorf("%d unknown keys were looked up (%d queries), more than the ceiling allows (%d)", unknown, lookups, allowed)
	}
	if unavailable == 0 {
		t.Error("no made-up key was refused at the ceiling")
	}
}

// TestStaleAnswersAreBounded: when the database cannot answer, a key known
// before stands in, but only for StaleMax past its entry's expiry, even
// while the listener reports nothing wrong.
func TestStaleAnswersAreBounded(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, full := f.key(t, apikey.Config{})
	pool, err := pgxpool.NewWithConfig(ctx, f.store.Pool.Config())
	if err != nil {
		t.Fatal(err)
	}
	v := apikey.NewVerifier(db.NewStore(pool).Queries, apikey.VerifierOptions{TTL: time.Minute, StaleMax: 10 * time.Minute}, metrics.New())
	var offset atomic.Int64
	v.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	if _, err := v.Verify(ctx, full); err != nil {
		t.Fatal(err)
	}
	pool.Close() // the database is gone for this verifier
	offset.Store(int64(5 * time.Minute))
	if _, err := v.Verify(ctx, full); err != nil {
		t.Fatalf("4 minutes past its expiry, with the database gone: %v, want the stale answer", err)
	}
	offset.Store(int64(12 * time.Minute))
	if _, err := v.Verify(ctx, full); !errors.Is(err, apikey.ErrUnavailable) {
		t.Fatalf("11 minutes past its expiry: %v, want ErrUnavailable", err)
	}
}

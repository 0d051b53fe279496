package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// floodResult is what the sign-in flood got back.
type floodResult struct {
	Name    string
	Workers int
	Owner   bool // half the workers guessed the owner's password
	First   int  // the first worker's address is floodAddr(First)
	Elapsed time.Duration
	Codes   map[int]uint64 // status → responses
	Errors  []string       // transport errors and statuses other than 401, 429 and 503
}

// Attempts is every answered sign-in attempt.
func (f floodResult) Attempts() uint64 {
	var n uint64
	for _, c := range f.Codes {
		n += c
	}
	return n
}

// floodAddr is address number i, from 198.18.0.0/15 (RFC 2544's range for
// benchmarks), sent as X-Forwarded-For, which the server believes from
// loopback (KEYWARD_TRUSTED_PROXIES=127.0.0.1/32).
func floodAddr(i int) string { return fmt.Sprintf("198.18.%d.%d", i/250, i%250+1) }

// flood is a running sign-in flood: workers that each fetch the sign-in
// form once (for the CSRF cookie and token, as a browser would), then post
// wrong passwords back to back, each worker from its own address, without
// waiting out any Retry-After. Workers send a made-up email each time, so
// only their address's limit applies and every attempt admitted is hashed;
// with owner set, even-numbered workers guess the password of the tenant
// owner's real email instead, so its account lock engages.
type flood struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	start  time.Time

	mu    sync.Mutex
	codes map[int]uint64
	errs  map[string]bool
}

// startFlood starts workers whose addresses are floodAddr(first) on; with
// owner set, half of them guess ownerEmail's password.
func startFlood(ctx context.Context, base, csrfCookie, ownerEmail string, owner bool, workers, first int) *flood {
	ctx, cancel := context.WithCancel(ctx)
	f := &flood{cancel: cancel, start: time.Now(), codes: map[int]uint64{}, errs: map[string]bool{}}
	for i := range workers {
		email := ""
		if owner && i%2 == 0 {
			email = ownerEmail
		}
		f.wg.Go(func() { f.worker(ctx, base, csrfCookie, email, i, floodAddr(first+i)) })
	}
	return f
}

// stop ends the flood and waits for its workers.
func (f *flood) stop() floodResult {
	f.cancel()
	f.wg.Wait()
	r := floodResult{Elapsed: time.Since(f.start), Codes: f.codes}
	for e := range f.errs {
		r.Errors = append(r.Errors, e)
	}
	sort.Strings(r.Errors)
	return r
}

func (f *flood) note(code int, bad string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if code != 0 {
		f.codes[code]++
	}
	if bad != "" && len(f.errs) < 20 {
		f.errs[bad] = true
	}
}

// worker posts wrong passwords for email, or for a made-up email each time
// when email is empty, from addr until ctx ends.
func (f *flood) worker(ctx context.Context, base, csrfCookie, email string, i int, addr string) {
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	token, err := csrfToken(ctx, client, base, addr, csrfCookie)
	if err != nil {
		if ctx.Err() == nil {
			f.note(0, "GET /login: "+err.Error())
		}
		return
	}
	for n := 0; ctx.Err() == nil; n++ {
		guess := email
		if guess == "" {
			guess = fmt.Sprintf("flood-%s-%d@example.invalid", addr, n)
		}
		form := url.Values{"email": {guess}, "password": {fmt.Sprintf("not the password %d", n)}, "csrf_token": {token}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Cookie", csrfCookie+"="+token)
		req.Header.Set("X-Forwarded-For", addr)
		res, err := client.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				f.note(0, err.Error())
			}
			continue
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		bad := ""
		switch res.StatusCode {
		case http.StatusUnauthorized, http.StatusTooManyRequests, http.StatusServiceUnavailable:
		default:
			bad = fmt.Sprintf("POST /login: status %d", res.StatusCode)
		}
		f.note(res.StatusCode, bad)
	}
}

// csrfToken fetches the sign-in form from addr and returns the CSRF token
// its cookie carries (the double-submit token the form repeats). Secure
// cookies are copied by hand: the bench speaks plain HTTP to a server in
// production mode.
func csrfToken(ctx context.Context, client *http.Client, base, addr, cookie string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/login", nil)
	req.Header.Set("X-Forwarded-For", addr)
	res, err := client.Do(req)
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", res.StatusCode)
	}
	for _, c := range res.Cookies() {
		if c.Name == cookie && c.Value != "" {
			if !strings.Contains(string(body), c.Value) {
				return "", errors.New("the form does not carry the cookie's CSRF token")
			}
			return c.Value, nil
		}
	}
	return "", fmt.Errorf("no %s cookie", cookie)
}

// missResultHTTP is cache-miss verification over HTTP: a run of keyed
// requests each with a key used for the first time, and what the server
// counted meanwhile.
type missRun struct {
	Run    runResult
	Misses float64 // keyward_apikey_cache_lookups_total{result="miss"}, delta
}

// floodRun is one sign-in flood, the cache-miss run made during it and
// what the server's connections were doing meanwhile.
type floodRun struct {
	Miss  missRun
	Flood floodResult
	Conns connSamples
}

// benchAppName is the application_name of kwbench's own connections.
const benchAppName = "kwbench"

// connSamples counts, in samples of pg_stat_activity, the server's
// connections to the bench database that were busy (in a statement or in
// an open transaction) and those of them waiting for an advisory lock.
type connSamples struct {
	Samples              int
	Busy, Advisory       int // summed over the samples
	BusyMax, AdvisoryMax int
	Err                  string
}

func (c connSamples) BusyMean() float64     { return float64(c.Busy) / float64(max(c.Samples, 1)) }
func (c connSamples) AdvisoryMean() float64 { return float64(c.Advisory) / float64(max(c.Samples, 1)) }

// sampleConns reads pg_stat_activity every 100 ms until the returned
// function is called, which returns the counts.
func sampleConns(ctx context.Context, pool *pgxpool.Pool) func() connSamples {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan connSamples, 1)
	go func() {
		var c connSamples
		defer func() { done <- c }()
		for ctx.Err() == nil {
			var busy, advisory int
			err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state <> 'idle'),
       count(*) FILTER (WHERE wait_event_type = 'Lock' AND wait_event = 'advisory')
FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend' AND application_name <> $1`, benchAppName).Scan(&busy, &advisory)
			if err != nil {
				if ctx.Err() == nil && c.Err == "" {
					c.Err = err.Error()
				}
				return
			}
			c.Samples++
			c.Busy += busy
			c.Advisory += advisory
			c.BusyMax, c.AdvisoryMax = max(c.BusyMax, busy), max(c.AdvisoryMax, advisory)
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}()
	return func() connSamples {
		cancel()
		return <-done
	}
}

// keysTargeter sends GET url with each key of keys once, in order, and
// then has no more targets.
func keysTargeter(url string, keys []string) vegeta.Targeter {
	var next atomic.Int64
	return func(t *vegeta.Target) error {
		i := next.Add(1) - 1
		if i >= int64(len(keys)) {
			return vegeta.ErrNoTargets
		}
		t.Method, t.URL, t.Body = http.MethodGet, url, nil
		t.Header = http.Header{"Authorization": {"Bearer " + keys[i]}}
		return nil
	}
}

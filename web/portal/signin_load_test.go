package portal_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"keyward/web"
	"keyward/web/auth"
	"keyward/web/webtest"
)

// postLogin posts the sign-in form from c's session as the client at
// addr (X-Forwarded-For, believed from loopback in these tests) and
// returns the status.
func postLogin(t *testing.T, e *webtest.Env, c *webtest.Client, email, password, addr string) (int, error) {
	form := url.Values{"email": {email}, "password": {password}, "csrf_token": {c.CSRF}}
	req, _ := http.NewRequest(http.MethodPost, e.Server.URL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if addr != "" {
		req.Header.Set("X-Forwarded-For", addr)
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

// behindProxy believes X-Forwarded-For from loopback, so one test client
// can speak for many addresses.
func behindProxy(c *web.Config) {
	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	c.TrustedProxies = []*net.IPNet{loopback}
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline. It asserts no duration: the deadline only stops a broken
// test from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// A flood of sign-ins with wrong passwords, each for its own account from
// its own address, holds no pooled connection while it hashes: with every
// attempt parked at the hash limit, the test can take the whole pool; and
// while the flood runs free, sampled pool statistics never show the whole
// pool held, and a connection is always to be had within a second. The
// limit is one hash at a time, what DefaultHashLimit gives two CPUs.
func TestSignInFloodLeavesThePoolFree(t *testing.T) {
	const threads, rounds = 48, 2
	hashes := auth.NewHashLimit(1, 2*threads)
	e := webtest.NewWith(t, webtest.Options{Config: func(c *web.Config) { c.Hashes = hashes; behindProxy(c) }})
	pool := e.Store.Pool
	maxConns := int(pool.Config().MaxConns)
	emails := make([]string, threads)
	for i := range emails {
		emails[i] = fmt.Sprintf("user%02d@acme.test", i)
		e.User(e.Tenant, emails[i], auth.RoleAdmin)
	}
	c := e.Client()
	c.Get("/login")

	// Phase 1: the test holds the hashing turn, so every attempt stops
	// just before its hash.
	gate, holding := make(chan struct{}), make(chan struct{})
	go hashes.Do(context.Background(), func() { close(holding); <-gate })
	<-holding

	statuses := make(chan int, threads*rounds)
	var clients sync.WaitGroup
	for i := range threads {
		clients.Add(1)
		go func() {
			defer clients.Done()
			for range rounds {
				s, err := postLogin(t, e, c, emails[i], "not the password", fmt.Sprintf("198.51.100.%d", i+1))
				if err != nil {
					t.Error(err)
					return
				}
				statuses <- s
			}
		}()
	}
	waitFor(t, fmt.Sprintf("%d sign-ins to wait for a hashing turn", threads), func() bool { return hashes.Waiting() == threads })
	if n := pool.Stat().AcquiredConns(); n != 0 {
		t.Errorf("with %d sign-ins waiting to hash, %d pooled connections are held; want 0", threads, n)
	}
	var conns []*pgxpool.Conn
	for i := range maxConns {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pool.Acquire(ctx)
		cancel()
		if err != nil {
			t.Fatalf("with %d sign-ins waiting to hash, connection %d of %d could not be had: %v", threads, i+1, maxConns, err)
		}
		conns = append(conns, conn)
	}
	for _, conn := range conns {
		conn.Release()
	}

	// Phase 2: the flood runs free. A prober samples the pool and takes a
	// connection, with a short timeout, again and again until it ends.
	var done atomic.Bool
	var probes, failed, peak int
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		for !done.Load() {
			peak = max(peak, int(pool.Stat().AcquiredConns()))
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn, err := pool.Acquire(ctx)
			cancel()
			probes++
			if err != nil {
				failed++
			} else {
				conn.Release()
			}
			time.Sleep(time.Millisecond)
		}
	}()
	close(gate)
	clients.Wait()
	done.Store(true)
	<-probed
	close(statuses)
	t.Logf("%d probes during the flood, %d failed; at most %d of %d connections held at once", probes, failed, peak, maxConns)
	if failed > 0 || probes == 0 {
		t.Errorf("%d of %d attempts to take a connection during the flood failed", failed, probes)
	}
	if peak >= maxConns {
		t.Errorf("the flood held all %d pooled connections at once", maxConns)
	}
	unauthorized := 0
	for s := range statuses {
		if s == http.StatusUnauthorized {
			unauthorized++
		} else {
			t.Errorf("a wrong password got %d, want 401", s)
		}
	}
	if unauthorized != threads*rounds {
		t.Errorf("%d attempts answered 401, want %d", unauthorized, threads*rounds)
	}
	if n := count(t, e, `SELECT count(*) FROM audit_events WHERE action = 'auth.login.failed'`); n != threads*rounds {
		t.Errorf("audited failures = %d, want %d", n, threads*rounds)
	}
	if n := count(t, e, `SELECT count(*) FROM auth_throttle WHERE key LIKE 'login:email:%' AND failures = $1`, rounds); n != threads {
		t.Errorf("%d accounts have %d failures counted, want all %d", n, rounds, threads)
	}
}

// Parallel wrong passwords for one account are judged one after another
// against the count: no burst slips past the lock that the sixth failure
// sets, though no attempt holds a lock while it hashes.
func TestParallelPasswordGuessesAreThrottled(t *testing.T) {
	const guesses = 30
	e := webtest.NewWith(t, webtest.Options{Config: func(c *web.Config) { c.Hashes = auth.NewHashLimit(2, guesses) }})
	e.User(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	c := e.Client()
	c.Get("/login")
	statuses := make(chan int, guesses)
	var wg sync.WaitGroup
	for range guesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postLogin(t, e, c, "ann@acme.test", "not the password", "")
			if err != nil {
				t.Error(err)
				return
			}
			statuses <- s
		}()
	}
	wg.Wait()
	close(statuses)
	checked := 0
	for s := range statuses {
		if s == http.StatusUnauthorized {
			checked++
		} else if s != http.StatusTooManyRequests {
			t.Errorf("status %d", s)
		}
	}
	if checked > 6 {
		t.Fatalf("%d of %d parallel guesses were checked; the lock allows 6", checked, guesses)
	}
	if n := count(t, e, `SELECT count(*) FROM audit_events WHERE action = 'auth.login.failed'`); n != checked {
		t.Errorf("audited failures = %d, want one per checked guess (%d)", n, checked)
	}
	if n := count(t, e, `SELECT failures FROM auth_throttle WHERE key = 'login:email:ann@acme.test'`); n != checked {
		t.Errorf("counted failures = %d, want one per checked guess (%d)", n, checked)
	}
}

// A right password takes back the failure counted on the address before
// it was checked, and clears the account's count.
func TestRightPasswordLeavesNoFailureCounted(t *testing.T) {
	e := webtest.New(t)
	e.User(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	c := e.Client()
	c.Get("/login")
	for range 2 {
		if s, err := postLogin(t, e, c, "ann@acme.test", "not the password", ""); err != nil || s != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d %v", s, err)
		}
	}
	if s, err := postLogin(t, e, c, "ann@acme.test", webtest.Password, ""); err != nil || s != http.StatusOK {
		t.Fatalf("right password: %d %v", s, err)
	}
	if n := count(t, e, `SELECT failures FROM auth_throttle WHERE key LIKE 'login:ip:%'`); n != 2 {
		t.Errorf("the address has %d failures counted, want the 2 wrong passwords", n)
	}
	if n := count(t, e, `SELECT count(*) FROM auth_throttle WHERE key = 'login:email:ann@acme.test'`); n != 0 {
		t.Errorf("the account's count was not cleared by a right password")
	}
}

// When more sign-ins wait to hash than the limit's line holds, the next
// one is refused at once, before any database work, with 503, Retry-After
// and a sign-in page that says when to try again; nothing is counted
// against the account. A password change is refused the same way.
func TestSignInRefusedWhenTooManyWaitToHash(t *testing.T) {
	hashes := auth.NewHashLimit(1, 0)
	e := webtest.NewWith(t, webtest.Options{Config: func(c *web.Config) { c.Hashes = hashes }})
	_, secret, _ := e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	signedIn := e.SignIn("ann@acme.test", secret)
	c := e.Client()
	c.Get("/login")

	gate, holding, finished := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		hashes.Do(context.Background(), func() { close(holding); <-gate })
	}()
	<-holding
	r := c.PostForm("/login", url.Values{"email": {"ann@acme.test"}, "password": {webtest.Password}})
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "1" || !strings.Contains(r.Body, "try again in 1 second") {
		t.Fatalf("sign-in while the line is full: %d, Retry-After %q\n%s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	if !strings.Contains(r.Body, `name="password"`) || !strings.Contains(r.Body, `value="ann@acme.test"`) {
		t.Error("the refusal does not show the sign-in form again with the email kept")
	}
	r = signedIn.PostForm("/account/password", url.Values{"current_password": {webtest.Password},
		"new_password": {"a brand new passphrase"}, "confirm_password": {"a brand new passphrase"}})
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "1" || !strings.Contains(r.Body, "try again in 1 second") {
		t.Fatalf("password change while the line is full: %d, Retry-After %q", r.Status, r.Header.Get("Retry-After"))
	}
	if n := count(t, e, `SELECT coalesce(sum(failures), 0) FROM auth_throttle`); n != 0 {
		t.Errorf("%d failures were counted for refused attempts", n)
	}
	close(gate)
	<-finished
	if r := c.PostForm("/login", url.Values{"email": {"ann@acme.test"}, "password": {webtest.Password}}); r.Path != "/login/totp" {
		t.Fatalf("sign-in once the line has room: %d %s", r.Status, r.Path)
	}
}

// TestOneAccountFloodWaitsWithoutConnections: sign-ins aimed at one account
// take their turn on that account in the process, before they borrow a
// connection. While the account's lock in Postgres is held (here by the
// test, as a slow attempt of another instance would), at most one of this
// instance's attempts waits on it holding a connection; the others wait
// holding none, so the pool stays free for the API. Past the line's bound
// an attempt is refused at once with 503 and Retry-After.
func TestOneAccountFloodWaitsWithoutConnections(t *testing.T) {
	e := webtest.NewWith(t, webtest.Options{Config: behindProxy})
	e.User(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	pool := e.Store.Pool
	c := e.Client()
	c.Get("/login")

	// The test's own connections, outside the app's pool: a starved pool
	// must not stall the test itself.
	ctx := context.Background()
	own, err := pgx.Connect(ctx, pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close(ctx)
	watch, err := pgx.Connect(ctx, pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	tx, err := own.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('login:email:ann@acme.test', 0))`); err != nil {
		t.Fatal(err)
	}
	const threads = 40
	statuses := make(chan int, threads)
	for i := range threads {
		go func() {
			s, err := postLogin(t, e, c, "ann@acme.test", "not the password", fmt.Sprintf("198.51.100.%d", i+1))
			if err != nil {
				t.Error(err)
			}
			statuses <- s
		}()
	}
	// Every attempt is either in line in the process, or refused for the
	// line's length; one has gone on to wait on the lock in Postgres.
	waitFor(t, "one attempt to wait on the account's lock in Postgres", func() bool {
		var n int
		watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'`).Scan(&n)
		return n >= 1
	})
	time.Sleep(200 * time.Millisecond) // let any other attempt reach Postgres, as it would without the line
	var waiting int
	watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'`).Scan(&waiting)
	if waiting != 1 {
		t.Errorf("%d of the app's connections wait on one account's lock, want 1", waiting)
	}
	if held := pool.Stat().AcquiredConns(); held > 1 {
		t.Errorf("%d pooled connections are held while one account's attempts wait, want at most 1", held)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[int]int{}
	for range threads {
		got[<-statuses]++
	}
	if got[http.StatusUnauthorized] == 0 || got[http.StatusInternalServerError] > 0 {
		t.Errorf("statuses %v: want 401s (and 429s once locked, 503s past the line), no 500", got)
	}
}

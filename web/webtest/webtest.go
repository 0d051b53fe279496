// Package webtest starts the real application on a fresh database for
// tests: the real echo router behind httptest, a real Postgres (dbtest), a
// cookie-jar client that speaks the portal's CSRF contract, and a clock the
// TOTP checks read, so a test can step through 30-second windows. Every
// exchange a test has with a path under /api/v1, through Env.API, Env.Serve
// or a Client, is checked against the OpenAPI document (contract.go).
package webtest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web"
	"keyward/web/apikey"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/keyring"
	"keyward/web/mfa"
	"keyward/web/session"
)

// Password is the password of users made by Env.User.
const Password = "correct horse battery staple"

// SecretKey is every Env's KEYWARD_SECRET_KEY: tests that check what an
// outsider holding it can check (an audit export's HMACs) derive keys
// from it.
const SecretKey = "test-secret-key-0123456789abcdef-0123456789"

// Env is one running application.
type Env struct {
	T      testing.TB
	App    *web.App
	Store  *db.Store
	Server *httptest.Server
	Clock  *Clock
	Tenant db.Tenant
	// Logs holds every log line the server wrote.
	Logs *SyncBuffer

	mu     sync.Mutex
	served []Exchange // by Serve, checked when the test ends
}

// Options adjust an Env.
type Options struct {
	// Config changes the server configuration before it is built.
	Config func(*web.Config)
	// Tracer, if set, sees every statement the server's pool sends.
	Tracer *dbtest.Counter
	// DatabaseURL, if set, names the database to use instead of a fresh
	// clone: a fault test's own cluster (dbtest.OwnCluster).
	DatabaseURL string
}

// New starts the application on a fresh database with one tenant, "acme".
func New(t testing.TB) *Env { return NewWith(t, Options{}) }

// NewWith is New with options.
func NewWith(t testing.TB, o Options) *Env {
	t.Helper()
	var configure []func(*pgxpool.Config)
	if o.Tracer != nil {
		configure = append(configure, o.Tracer.Trace)
	}
	var store *db.Store
	if o.DatabaseURL != "" {
		pcfg, err := pgxpool.ParseConfig(o.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range configure {
			c(pcfg)
		}
		pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		store = db.NewStore(pool)
	} else {
		store = db.NewStore(dbtest.New(t, configure...))
	}
	ring, err := keyring.New([]byte(SecretKey))
	if err != nil {
		t.Fatal(err)
	}
	logs := &SyncBuffer{}
	clock := &Clock{}
	cfg := web.Config{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Issuer: "Keyward test", Now: clock.Now}
	if o.Config != nil {
		o.Config(&cfg)
	}
	app, err := web.Build(cfg, store, ring)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app.Echo)
	t.Cleanup(func() {
		srv.Close()
		// Bounded: a test that stopped while its database was unreachable
		// must not hold the package until the test binary's timeout while
		// the last flush retries.
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		app.Close(cctx)
		stop()
	})
	e := &Env{T: t, App: app, Store: store, Server: srv, Clock: clock, Logs: logs}
	t.Cleanup(e.checkServed)
	if t, err := store.GetTenantBySlug(context.Background(), "acme"); err == nil && o.DatabaseURL != "" {
		e.Tenant = t // a second instance on a database of the test's own
	} else {
		e.Tenant = e.NewTenant("acme")
	}
	return e
}

// NewTenant creates another tenant.
func (e *Env) NewTenant(slug string) db.Tenant {
	e.T.Helper()
	var tn db.Tenant
	err := e.Store.InTx(context.Background(), func(q *db.Queries) error {
		var err error
		tn, err = auth.CreateTenant(context.Background(), q, e.App.Audit, slug, strings.ToUpper(slug[:1])+slug[1:]+" Inc.", "team", e.Clock.Now())
		return err
	})
	if err != nil {
		e.T.Fatal(err)
	}
	return tn
}

// User creates a user in tenant with Password and no TOTP yet.
func (e *Env) User(tenant db.Tenant, email, role string) db.User {
	e.T.Helper()
	var u db.User
	err := e.Store.InTx(context.Background(), func(q *db.Queries) error {
		var err error
		u, err = auth.CreateUser(context.Background(), q, e.App.Audit, tenant.ID, email, role, Password, false, audit.Actor{Type: audit.ActorSystem}, e.Clock.Now())
		return err
	})
	if err != nil {
		e.T.Fatal(err)
	}
	return u
}

// EnrolledUser creates a user with TOTP already set up and returns the
// user, the TOTP secret and the recovery codes.
func (e *Env) EnrolledUser(tenant db.Tenant, email, role string) (db.User, string, []string) {
	e.T.Helper()
	u := e.User(tenant, email, role)
	en, err := e.App.MFA.NewEnrolment(email)
	if err != nil {
		e.T.Fatal(err)
	}
	var codes []string
	err = e.Store.InTx(context.Background(), func(q *db.Queries) error {
		codes, err = e.App.MFA.Confirm(context.Background(), q, u.ID, en.Secret, e.Clock.Now().Unix()/30-1)
		return err
	})
	if err != nil {
		e.T.Fatal(err)
	}
	u, _ = e.Store.GetUser(context.Background(), u.ID)
	return u, en.Secret, codes
}

// Key creates an API key in tenant, made by user, and returns its row and
// the full key.
func (e *Env) Key(tenant db.Tenant, user db.User, cfg apikey.Config) (db.APIKey, string) {
	e.T.Helper()
	var k db.APIKey
	var full string
	before := e.invalidations()
	err := e.Store.InTx(context.Background(), func(q *db.Queries) error {
		var err error
		k, full, err = apikey.Create(context.Background(), q, e.App.Audit, tenant.ID, cfg, audit.Actor{TenantID: &tenant.ID, Type: audit.ActorUser, ID: strconv.FormatInt(user.ID, 10)}, user.ID, e.Clock.Now())
		return err
	})
	if err != nil {
		e.T.Fatal(err)
	}
	// Wait for the key's own change notification to reach the server's
	// cache. Arriving later, it would drop the key from the cache after a
	// test's first request put it there, and the test could not tell a
	// cached key from a fresh lookup.
	for deadline := time.Now().Add(5 * time.Second); e.invalidations() <= before; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			e.T.Fatal("webtest: the new key's NOTIFY did not arrive in 5 s")
		}
	}
	return k, full
}

// invalidations reads the app's count of key-change notifications.
func (e *Env) invalidations() float64 {
	var m dto.Metric
	e.App.Metrics.Invalidations.Write(&m)
	return m.GetCounter().GetValue()
}

// API sends a public-API request with key (none if empty) and extra
// header pairs, and returns the response without following redirects. A
// request under /api/v1 is checked against the OpenAPI document
// (CheckExchange); a disagreement fails the test.
func (e *Env) API(method, path, key string, body string, header ...string) Response {
	e.T.Helper()
	return API(e.T, e.Server.URL, method, path, key, body, header...)
}

// API is Env.API for any running server, such as a keyward process a test
// started.
func API(t testing.TB, baseURL, method, path, key string, body string, header ...string) Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, baseURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := &http.Client{CheckRedirect: noRedirects}
	return roundTrip(t, c, req, []byte(body))
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// roundTrip sends req, whose body is body, through hc and reads the
// response. When the request's path is under /api/v1 it checks the
// exchange against the OpenAPI document and fails t on a disagreement.
func roundTrip(t testing.TB, hc *http.Client, req *http.Request, body []byte) Response {
	t.Helper()
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the response: %v", req.Method, req.URL.Path, err)
	}
	r := Response{Status: res.StatusCode, Path: res.Request.URL.Path, Body: string(b), Header: res.Header}
	for p := res.Request.Response; p != nil; p = p.Request.Response {
		r.Redirects = append([]int{p.StatusCode}, r.Redirects...)
	}
	// res.Request is the request as sent, cookies from a jar included; after
	// a redirect it is the last one, whose body this function never saw.
	if res.Request != req {
		body = nil
	}
	checkContract(t, Exchange{Request: res.Request, RequestBody: body, Status: r.Status, Header: r.Header, Body: b})
	return r
}

// Serve hands req to the application's router in this process, with no
// network round trip, for tests that drive thousands of requests. A
// request under /api/v1 is checked against the OpenAPI document like
// API's, but when the test ends: checking takes about a millisecond, and
// done inline it would spread the burst such a test measures out in time.
func (e *Env) Serve(req *http.Request) Response {
	e.T.Helper()
	body := readBody(e.T, req)
	sent := req.Clone(req.Context()) // the server's middleware edits req's header
	rec := httptest.NewRecorder()
	e.App.Echo.ServeHTTP(rec, req)
	r := Response{Status: rec.Code, Path: req.URL.Path, Body: rec.Body.String(), Header: rec.Result().Header}
	if UnderContract(req.URL.Path) {
		e.mu.Lock()
		e.served = append(e.served, Exchange{Request: sent, RequestBody: body, Status: r.Status, Header: r.Header, Body: rec.Body.Bytes()})
		e.mu.Unlock()
	}
	return r
}

// checkServed checks the exchanges Serve kept.
func (e *Env) checkServed() {
	e.mu.Lock()
	served := e.served
	e.served = nil
	e.mu.Unlock()
	for _, x := range served {
		checkContract(e.T, x)
	}
}

// Check fails t if x, when under /api/v1, disagrees with the OpenAPI
// document: for a test that has to send its request some other way, such
// as over a raw connection.
func Check(t testing.TB, x Exchange) {
	t.Helper()
	checkContract(t, x)
}

// checkContract fails t if x, when under /api/v1, disagrees with the
// OpenAPI document.
func checkContract(t testing.TB, x Exchange) {
	t.Helper()
	if !UnderContract(x.Request.URL.Path) {
		return
	}
	if err := CheckExchange(x); err != nil {
		t.Errorf("openapi.json disagrees with %s:\n%v", x, err)
	}
}

// readBody reads req's body and puts an unread copy back.
func readBody(t testing.TB, req *http.Request) []byte {
	t.Helper()
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the request body: %v", req.Method, req.URL.Path, err)
	}
	req.Body.Close()
	req.Body = io.NopCloser(bytes.NewReader(b))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	req.ContentLength = int64(len(b))
	return b
}

// Code is the TOTP code for secret at the env's clock.
func (e *Env) Code(secret string) string {
	e.T.Helper()
	c, err := mfa.CodeFor(secret, e.Clock.Now())
	if err != nil {
		e.T.Fatal(err)
	}
	return c
}

// NextCode moves the clock to the next 30-second step and returns its code:
// each step's code is accepted once only.
func (e *Env) NextCode(secret string) string {
	e.Clock.Advance(30 * time.Second)
	return e.Code(secret)
}

// PasswordStep opens the sign-in page in a new client and submits email
// and Password; it returns the client and where that ended.
func (e *Env) PasswordStep(email string) (*Client, Response) {
	e.T.Helper()
	c := e.Client()
	c.Get("/login")
	return c, c.PostForm("/login", url.Values{"email": {email}, "password": {Password}})
}

// SignIn signs a client in with password and TOTP and fails the test
// unless it lands on the API keys page.
func (e *Env) SignIn(email, secret string) *Client {
	e.T.Helper()
	c, r := e.PasswordStep(email)
	if r.Path != "/login/totp" {
		e.T.Fatalf("sign-in: after password expected /login/totp, got %s (%d)", r.Path, r.Status)
	}
	r = c.PostForm("/login/totp", url.Values{"code": {e.NextCode(secret)}})
	if r.Path != "/settings/developers/api-keys" {
		e.T.Fatalf("sign-in: after TOTP expected the API keys page, got %s (%d): %s", r.Path, r.Status, r.Body)
	}
	return c
}

// Client is a browser-like client: a cookie jar, redirects followed, and
// the CSRF token of the last page it saw.
type Client struct {
	t    testing.TB
	base string
	HTTP *http.Client
	CSRF string
}

// Client returns a new client with an empty cookie jar.
func (e *Env) Client() *Client { return NewClient(e.T, e.Server.URL) }

// NewClient returns a client of any running server, such as a keyward
// process a test started.
func NewClient(t testing.TB, baseURL string) *Client {
	jar, _ := cookiejar.New(nil)
	return &Client{t: t, base: baseURL, HTTP: &http.Client{Jar: jar}}
}

// Response is what a request ended with, after redirects.
type Response struct {
	Status int
	Path   string // final path after redirects
	Body   string
	Header http.Header
	// Redirects lists the statuses of the redirects followed, in order.
	Redirects []int
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]*)"`)

// Do sends a request and reads the final response. A request under
// /api/v1 follows no redirect (the API has none to follow) and is checked
// against the OpenAPI document, as Env.API's are.
func (c *Client) Do(req *http.Request) Response {
	c.t.Helper()
	hc := c.HTTP
	if UnderContract(req.URL.Path) {
		once := *c.HTTP
		once.CheckRedirect = noRedirects
		hc = &once
	}
	r := roundTrip(c.t, hc, req, readBody(c.t, req))
	if m := csrfMeta.FindStringSubmatch(r.Body); m != nil {
		c.CSRF = m[1]
	}
	return r
}

// Get fetches path.
func (c *Client) Get(path string) Response {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	return c.Do(req)
}

// PostForm posts a form with the CSRF token of the last page seen.
func (c *Client) PostForm(path string, form url.Values) Response {
	c.t.Helper()
	form.Set("csrf_token", c.CSRF)
	return c.PostFormRaw(path, form)
}

// PostFormRaw posts a form as given, without adding a CSRF token.
func (c *Client) PostFormRaw(path string, form url.Values) Response {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.Do(req)
}

// Cookie returns the value of the named cookie for the server, or "".
func (c *Client) Cookie(name string) string {
	u, _ := url.Parse(c.base)
	for _, ck := range c.HTTP.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// SetCookie puts a cookie in the jar, as an attacker or a replay would.
func (c *Client) SetCookie(name, value string) {
	u, _ := url.Parse(c.base)
	c.HTTP.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// SessionCookie is the session cookie's value.
func (c *Client) SessionCookie() string { return c.Cookie(session.CookieName) }

// Clock is the application's one clock in tests: real time plus an offset
// the test moves. Sessions, TOTP steps, key expiry, rotation grace, the
// audit trail and the usage buffers all read it, so a test jumps over a
// grace window or an idle timeout instead of sleeping or editing rows.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.offset) }

// Set moves the clock to t. Steps already accepted stay used whatever the
// clock says, so a test can go back to replay one.
func (c *Clock) Set(t time.Time) { c.mu.Lock(); c.offset = time.Until(t); c.mu.Unlock() }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.offset += d; c.mu.Unlock() }

// SyncBuffer is a bytes.Buffer safe for concurrent writers.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

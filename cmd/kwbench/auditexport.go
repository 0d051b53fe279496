package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/auth"
	"keyward/web/keyring"
	"keyward/web/mfa"
)

// The audit export section: the bench tenant's trail gets a million
// events by SQL, then a signed-in viewer downloads the audit log's CSV and
// JSON Lines exports through the running server, reading and discarding
// the bodies, while kwbench watches the server's resident memory. The
// exports stream in batches, so the rise must stay under
// auditExportTargetMB however long the trail is.

// auditExportTargetMB is the most an export may raise the server's peak
// memory by.
const auditExportTargetMB = 50

// auditViewer signs in to download the exports.
const auditViewer = "auditor@bench.test"

// exportRun is one download of an export.
type exportRun struct {
	Format    string
	Events    int64 // events in the chain when the download began
	Status    int
	Bytes     int64
	Lines     int64
	Elapsed   time.Duration
	Settle    time.Duration // waited for the server to settle first
	HeapGC    float64       // bytes: the server's Go heap in use once settled
	RSSBefore int64         // KiB, just before the request
	RSSPeak   int64         // KiB, the highest VmRSS sampled every 20 ms during it
	HWMAfter  int64         // KiB, VmHWM after it, reset just before (0: not reset)
	Err       string
}

// RiseKB is how far the server's resident memory rose above where it was
// before the download: the higher of the sampled peak and the kernel's
// peak (when it could be reset first).
func (r exportRun) RiseKB() int64 { return max(r.RSSPeak, r.HWMAfter) - r.RSSBefore }

// auditExportResult is the section's figures.
type auditExportResult struct {
	Events int64         // events inserted
	Chain  int64         // events in the tenant's chain after the fill
	Fill   time.Duration // the INSERT … SELECT and ANALYZE
	Runs   []exportRun
	Err    string
}

// OK reports whether every export answered 200 with every event.
func (a auditExportResult) OK() bool {
	if a.Err != "" || len(a.Runs) == 0 {
		return false
	}
	for _, r := range a.Runs {
		want := r.Events // JSON Lines: a line an event; CSV: and a header
		if r.Format == audit.FormatCSV {
			want++
		}
		if r.Err != "" || r.Status != http.StatusOK || r.Lines != want {
			return false
		}
	}
	return true
}

// fillAuditTrail appends n events to the tenant's chain with one INSERT …
// SELECT and moves the chain's head past them. Their hashes are made up:
// the chain does not verify, which the export does not care about. The
// head gets the last one's hash, so the checkpoint job still signs it.
func fillAuditTrail(ctx context.Context, pool *pgxpool.Pool, f fixture, n int64) (time.Duration, int64, error) {
	start := time.Now()
	var base int64
	if err := pool.QueryRow(ctx, "SELECT seq FROM audit_chain_heads WHERE chain_id = $1", f.TenantID).Scan(&base); err != nil {
		return 0, 0, err
	}
	hash := make([]byte, 32)
	for i := range hash {
		hash[i] = byte(i + 1)
	}
	_, err := pool.Exec(ctx, `INSERT INTO audit_events (chain_id, seq, tenant_id, occurred_at, actor_type, actor_id, action,
    target_type, target_id, ip, user_agent, diff, prev_hash, hash, hash_alg)
SELECT $1, $2 + i, $1, now() - make_interval(secs => ($3 - i) / 10.0), 'user', $4, 'api_key.updated', 'api_key', $5,
       '203.0.113.' || (i % 250), 'kwbench/1.0 (audit export)',
       ('{"rate_limit":{"from":null,"to":{"requests":' || (i % 5000) || ',"window":"1h"}},"ip_allowlist":{"from":[],"to":["203.0.113.0/24"]}}')::json,
       $6, $6, 'hmac-sha256'
FROM generate_series(1, $3::bigint) AS i`, f.TenantID, base, n, strconv.FormatInt(f.OwnerID, 10), f.KeyID, hash)
	if err == nil {
		_, err = pool.Exec(ctx, "UPDATE audit_chain_heads SET seq = $2, hash = $3 WHERE chain_id = $1", f.TenantID, base+n, hash)
	}
	if err == nil {
		_, err = pool.Exec(ctx, "ANALYZE audit_events")
	}
	return time.Since(start), base + n, err
}

// seedAuditViewer makes a viewer of the bench tenant with a known
// password and an authenticator, as the portal's enrolment leaves one,
// and returns the authenticator's secret.
func seedAuditViewer(ctx context.Context, store *db.Store, f fixture) (string, error) {
	ring, err := keyring.New([]byte(benchSecret))
	if err != nil {
		return "", err
	}
	m, err := mfa.New(ring.Key(keyring.PurposeTOTP), ring.Key(keyring.PurposeRecoveryCode), "kwbench")
	if err != nil {
		return "", err
	}
	en, err := m.NewEnrolment(auditViewer)
	if err != nil {
		return "", err
	}
	err = store.InTx(ctx, func(q *db.Queries) error {
		u, err := auth.CreateUser(ctx, q, audit.NewKeys(ring), f.TenantID, auditViewer, auth.RoleViewer, auditViewerPassword, false,
			audit.Actor{Type: audit.ActorSystem, ID: "kwbench"}, time.Now())
		if err != nil {
			return err
		}
		_, err = m.Confirm(ctx, q, u.ID, en.Secret, time.Now().Unix()/30-2)
		return err
	})
	return en.Secret, err
}

const auditViewerPassword = "kwbench audit viewer password, long enough"

// portalClient speaks to the portal over plain HTTP as a browser would
// over HTTPS: it keeps every cookie, Secure ones included (a cookie jar
// would not send those over http), and follows no redirect by itself.
type portalClient struct {
	base    string
	http    *http.Client
	cookies map[string]string
	csrf    string
}

var csrfMetaRe = regexp.MustCompile(`<meta name="csrf-token" content="([^"]*)"`)

func (c *portalClient) do(ctx context.Context, method, path string, form url.Values) (*http.Response, error) {
	var body io.Reader
	if form != nil {
		form.Set("csrf_token", c.csrf)
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range c.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	for _, ck := range res.Cookies() {
		c.cookies[ck.Name] = ck.Value
	}
	return res, nil
}

// page fetches a page and keeps its CSRF token.
func (c *portalClient) page(ctx context.Context, path string) error {
	res, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d", path, res.StatusCode)
	}
	if m := csrfMetaRe.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	return nil
}

// post submits a form and expects a redirect to want.
func (c *portalClient) post(ctx context.Context, path string, form url.Values, want string) error {
	res, err := c.do(ctx, http.MethodPost, path, form)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || loc != want {
		return fmt.Errorf("POST %s: %d to %q, want 303 to %s", path, res.StatusCode, loc, want)
	}
	return nil
}

// signIn signs the audit viewer in with password and authenticator code.
func signIn(ctx context.Context, base, secret string) (*portalClient, error) {
	c := &portalClient{base: base, cookies: map[string]string{}, http: &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	if err := c.page(ctx, "/login"); err != nil {
		return nil, err
	}
	if err := c.post(ctx, "/login", url.Values{"email": {auditViewer}, "password": {auditViewerPassword}}, "/login/totp"); err != nil {
		return nil, err
	}
	if err := c.page(ctx, "/login/totp"); err != nil {
		return nil, err
	}
	code, err := mfa.CodeFor(secret, time.Now())
	if err != nil {
		return nil, err
	}
	if err := c.post(ctx, "/login/totp", url.Values{"code": {code}}, "/settings/developers/api-keys"); err != nil {
		return nil, err
	}
	return c, c.page(ctx, "/settings/developers/audit-log")
}

// The server's count of finished garbage collections and its Go heap in
// use, from /metrics.
const (
	mGCCount   = "go_gc_duration_seconds_count"
	mHeapInuse = "go_memstats_heap_inuse_bytes"
)

// settle waits until the server's memory is what it holds, not what it
// has yet to collect or hand back: the sign-in's password check
// (argon2id, 19 MiB) or the previous export leaves garbage that the
// collector's pacing would otherwise count into the next download's rise,
// or that the download would reuse unseen. The runtime returns a page to
// the system only once it has stood unused through a whole collection, so
// settle has the server render the audit log page (ordinary work, tens of
// kilobytes of garbage each time) until two collections have ended since
// the call, then waits until VmRSS has stayed within 512 KiB for three
// seconds. It returns how long that took and the Go heap in use then.
func settle(ctx context.Context, c *portalClient, base string, pid int) (time.Duration, float64, error) {
	start := time.Now()
	m, err := promValues(base + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	gcs := m[mGCCount]
	for m[mGCCount] < gcs+2 {
		if time.Since(start) > 3*time.Minute {
			return 0, 0, errors.New("fewer than two garbage collections in 3 minutes")
		}
		if err := c.page(ctx, "/settings/developers/audit-log"); err != nil {
			return 0, 0, err
		}
		if m, err = promValues(base + "/metrics"); err != nil {
			return 0, 0, err
		}
	}
	last, err := procStatusKB(pid, "VmRSS")
	for steady := 0; err == nil && steady < 6; {
		if time.Since(start) > 5*time.Minute {
			return 0, 0, errors.New("VmRSS still moving after 5 minutes")
		}
		if err = sleep(ctx, 500*time.Millisecond); err != nil {
			break
		}
		var kb int64
		if kb, err = procStatusKB(pid, "VmRSS"); err == nil {
			if steady++; kb-last > 512 || last-kb > 512 {
				steady = 0
			}
			last = kb
		}
	}
	if err != nil {
		return 0, 0, err
	}
	return time.Since(start), m[mHeapInuse], nil
}

// download fetches one export, counting and discarding its bytes, while
// a goroutine samples the server's VmRSS.
func download(ctx context.Context, c *portalClient, pool *pgxpool.Pool, tenant int64, base string, pid int, format string) exportRun {
	r := exportRun{Format: format}
	var err error
	if r.Settle, r.HeapGC, err = settle(ctx, c, base, pid); err != nil {
		r.Err = "settling: " + err.Error()
		return r
	}
	// Sign-ins and checkpoints add events: the export holds those up to
	// its start.
	err = pool.QueryRow(ctx, "SELECT max(seq) FROM audit_events WHERE chain_id = $1", tenant).Scan(&r.Events)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	if r.RSSBefore, err = procStatusKB(pid, "VmRSS"); err != nil {
		r.Err = err.Error()
		return r
	}
	// Writing 5 to clear_refs resets VmHWM to the current RSS (Linux 4.0
	// and later), so VmHWM afterwards is this download's peak.
	reset := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if kb, err := procStatusKB(pid, "VmRSS"); err == nil {
				r.RSSPeak = max(r.RSSPeak, kb)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	start := time.Now()
	res, err := c.do(ctx, http.MethodGet, "/settings/developers/audit-log?format="+format, nil)
	if err == nil {
		r.Status = res.StatusCode
		buf := make([]byte, 64<<10)
		for {
			n, rerr := res.Body.Read(buf)
			r.Bytes += int64(n)
			for _, b := range buf[:n] {
				if b == '\n' {
					r.Lines++
				}
			}
			if rerr != nil {
				if !errors.Is(rerr, io.EOF) {
					err = rerr
				}
				break
			}
		}
		res.Body.Close()
	}
	r.Elapsed = time.Since(start)
	close(done)
	wg.Wait()
	if reset {
		r.HWMAfter, _ = procStatusKB(pid, "VmHWM")
	}
	if err != nil {
		r.Err = err.Error()
	}
	logf("audit export %s: %d, %s bytes, %s lines in %v; RSS %s before, rise %s", format, r.Status, groupDigits(r.Bytes), groupDigits(r.Lines),
		r.Elapsed.Round(10*time.Millisecond), fmtMB(r.RSSBefore), fmtMB(r.RiseKB()))
	return r
}

// measureAuditExport signs in and downloads both exports.
func measureAuditExport(ctx context.Context, pool *pgxpool.Pool, tenant int64, base string, pid int, secret string, a *auditExportResult) {
	c, err := signIn(ctx, base, secret)
	if err != nil {
		a.Err = "signing in: " + err.Error()
		return
	}
	for _, f := range []string{audit.FormatCSV, audit.FormatJSONL} {
		a.Runs = append(a.Runs, download(ctx, c, pool, tenant, base, pid, f))
	}
}

// auditExportRows are the section's rows in the results table.
func (a auditExportResult) rows() []row {
	if a.Err != "" {
		return []row{{Measure: "Audit log export", Value: "not measured", Status: statusError, Note: a.Err}}
	}
	var out []row
	for _, r := range a.Runs {
		st := check(r.RiseKB()*1024 <= auditExportTargetMB*1e6 && a.OK())
		note := fmt.Sprintf("%s events, %s MB, %s lines, in %v (%s events/s); RSS %s before, sampled peak %s", groupDigits(r.Events), fmtBytesMB(r.Bytes),
			groupDigits(r.Lines), r.Elapsed.Round(10*time.Millisecond), fmtRate(float64(r.Events)/r.Elapsed.Seconds()), fmtMB(r.RSSBefore), fmtMB(r.RSSPeak))
		note = fmt.Sprintf("settled after %v, Go heap in use %.1f MB; ", r.Settle.Round(time.Second), r.HeapGC/1e6) + note
		if r.HWMAfter > 0 {
			note += ", VmHWM after " + fmtMB(r.HWMAfter)
		}
		if r.Err != "" || r.Status != http.StatusOK {
			note += fmt.Sprintf("; status %d %s", r.Status, r.Err)
		}
		out = append(out, row{Measure: fmt.Sprintf("Server memory rise exporting %s audit events as %s", groupDigits(r.Events), strings.ToUpper(r.Format)),
			Value: fmtMB(r.RiseKB()), Target: fmt.Sprintf("≤ %d MB", auditExportTargetMB), Status: st, Note: note})
	}
	return out
}

func fmtBytesMB(b int64) string { return fmt.Sprintf("%.1f", float64(b)/1e6) }

// auditExportHeading starts the section, which -audit-only rewrites on its
// own.
const auditExportHeading = "## Audit log export"

// auditExportSection is the section: how it was measured and its rows.
func auditExportSection(a auditExportResult, when time.Time) string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format+"\n", args...) }
	p(auditExportHeading)
	p("")
	p("Measured %s. Before the server starts, the bench tenant's audit trail gets %s events with one `INSERT … SELECT … FROM generate_series` (%v with `ANALYZE`; made-up hashes, so the chain does not verify, which the export does not need), %s in the chain in all. A viewer signs in through the portal (password, then authenticator code), then downloads `GET /settings/developers/audit-log?format=csv` and then `?format=jsonl` (no filter: every event) over HTTP/1.1 through the running `keyward serve`, reading and discarding the body. kwbench samples the server's VmRSS every 20 ms during each download and, where the kernel allows, resets VmHWM (`echo 5 > /proc/<pid>/clear_refs`) just before it and reads it after; the rise is the higher peak minus VmRSS just before. Before each download kwbench lets the server settle: it loads the audit log page (ordinary work) until two garbage collections have ended, since the runtime hands a page back to the system only after it stood unused through a whole collection, then waits until VmRSS has held within 512 KiB for three seconds. Without that, the first download's figure mostly measured the sign-in's password check (argon2id allocates 19 MiB), whose garbage the collector's pacing (`GOGC=200`) had left in place; now the baseline is what the idle server holds, and the rise is what the export adds to it. The export reads 500 events at a time and writes them through, so what it holds does not grow with the trail. `go run ./cmd/kwbench -audit-only` measures and rewrites this section alone.",
		when.UTC().Format("2006-01-02 15:04 MST"), groupDigits(a.Events), a.Fill.Round(100*time.Millisecond), groupDigits(a.Chain))
	p("")
	p("| measure | value | target | result | notes |")
	p("|---|---|---|---|---|")
	for _, r := range a.rows() {
		p("| %s | %s | %s | %s | %s |", mdCell(r.Measure), mdCell(r.Value), mdCell(r.Target), r.Status, mdCell(r.Note))
	}
	p("")
	return w.String()
}

// replaceSection puts section in place of the file's audit export section,
// or before its "## Every load run" (or at its end) when it has none.
func replaceSection(file, section string) error {
	b, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s := string(b)
	if i := strings.Index(s, auditExportHeading+"\n"); i >= 0 {
		end := len(s)
		if j := strings.Index(s[i+len(auditExportHeading):], "\n## "); j >= 0 {
			end = i + len(auditExportHeading) + j + 1
		}
		s = s[:i] + section + s[end:]
	} else if i := strings.Index(s, "## Every load run"); i >= 0 {
		s = s[:i] + section + s[i:]
	} else {
		s += "\n" + section
	}
	return os.WriteFile(file, []byte(s), 0o644)
}

// runAuditOnly measures the audit export alone, on a cluster and server of
// its own, and rewrites its section of o.out.
func runAuditOnly(ctx context.Context, o options) int {
	when := time.Now()
	a, err := auditOnly(ctx, o)
	if err != nil {
		logf("%v", err)
		return 1
	}
	if err := replaceSection(o.out, auditExportSection(a, when)); err != nil {
		logf("writing %s: %v", o.out, err)
		return 1
	}
	logf("rewrote the audit export section of %s", o.out)
	if !a.OK() {
		return 1
	}
	return 0
}

func auditOnly(ctx context.Context, o options) (auditExportResult, error) {
	var a auditExportResult
	if err := buildKeyward(ctx, o.bin); err != nil {
		return a, err
	}
	dir, err := os.MkdirTemp("", "kwbench-")
	if err != nil {
		return a, err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		return a, err
	}
	cluster, dbURL, err := startCluster(ctx, dir+"/pg")
	if err != nil {
		return a, err
	}
	defer cluster.Stop()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return a, err
	}
	defer pool.Close()
	store := db.NewStore(pool)
	fx, err := seed(ctx, store)
	if err != nil {
		return a, err
	}
	secret, err := prepareAuditExport(ctx, pool, store, fx, o.auditEvents, &a)
	if err != nil {
		return a, err
	}
	srv, err := startServer(o.bin, dbURL, dir+"/keyward")
	if err != nil {
		return a, err
	}
	defer srv.kill()
	if err := sleep(ctx, o.idleWait); err != nil {
		return a, err
	}
	measureAuditExport(ctx, pool, fx.TenantID, srv.base(), srv.cmd.Process.Pid, secret, &a)
	if err := srv.stop(60 * time.Second); err != nil {
		return a, fmt.Errorf("keyward serve after SIGTERM: %w", err)
	}
	return a, nil
}

// prepareAuditExport fills the trail and makes the viewer, before the
// server starts; it returns the viewer's authenticator secret.
func prepareAuditExport(ctx context.Context, pool *pgxpool.Pool, store *db.Store, fx fixture, n int64, a *auditExportResult) (string, error) {
	secret, err := seedAuditViewer(ctx, store, fx)
	if err != nil {
		return "", fmt.Errorf("creating the audit viewer: %w", err)
	}
	logf("filling the audit trail with %s events", groupDigits(n))
	a.Events = n
	if a.Fill, a.Chain, err = fillAuditTrail(ctx, pool, fx, n); err != nil {
		return "", fmt.Errorf("filling the audit trail: %w", err)
	}
	logf("audit trail filled in %v (%s events in the chain)", a.Fill.Round(100*time.Millisecond), groupDigits(a.Chain))
	return secret, nil
}

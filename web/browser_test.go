package web_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"keyward/web/apikey"
	"keyward/web/auth"
	"keyward/web/webtest"
)

// browser starts Debian's headless Chromium with a fresh profile. A missing
// browser fails the test: `make test` installs it.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: install Debian's chromium package (make test does this as root)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; it must not carry a timeout.
	if _, err := chromedp.Run(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// screenshotDir is KEYWARD_SCREENSHOT_DIR when set (to keep the pictures),
// else the test's temp dir.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("KEYWARD_SCREENSHOT_DIR"); d != "" {
		os.MkdirAll(d, 0o755)
		return d
	}
	return t.TempDir()
}

type page struct {
	t    *testing.T
	ctx  context.Context
	dir  string
	base string
}

func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// signIn signs email in from the sign-in page, with webtest.Password and
// the authenticator code, and waits for the key list it lands on.
func (p *page) signIn(email, code string) {
	p.t.Helper()
	p.do("sign in as "+email,
		chromedp.Navigate(p.base+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=email]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=email]`), email),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), webtest.Password),
		chromedp.Submit(chromedp.CSS(`input[name=password]`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name=code]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=code]`), code),
		chromedp.Submit(chromedp.CSS(`input[name=code]`)),
		// The TOTP page has an h1 too: wait for the page signing in leads to.
		chromedp.WaitVisible(`//h1[text()="API keys"]`),
	)
}

func (p *page) text(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		p.t.Fatalf("reading %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func (p *page) attr(sel, name string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	a, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		p.t.Fatalf("reading %s[%s]: %v", sel, name, err)
	}
	return a.Value
}

// count is how many elements match sel (waiting for at least one).
func (p *page) count(sel string) int {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(sel)))
	if err != nil {
		p.t.Fatalf("finding %s: %v", sel, err)
	}
	return len(nodes)
}

func (p *page) expectPath(want string) {
	p.t.Helper()
	loc, err := chromedp.Run(p.ctx, chromedp.Location())
	if err != nil {
		p.t.Fatal(err)
	}
	if loc != p.base+want {
		p.t.Fatalf("at %s, want %s", loc, p.base+want)
	}
}

func (p *page) shot(name string) {
	p.t.Helper()
	b, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100)) // 100 gives PNG; lower qualities give JPEG
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(p.dir, name+".png")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
}

// TestBrowserSignInWithMFA walks a new admin through the portal in a real
// browser: password, TOTP enrolment (the code computed from the secret on
// the page), recovery codes, sign-out, and sign-in again with password and
// TOTP, ending on the API keys page.
func TestBrowserSignInWithMFA(t *testing.T) {
	e := webtest.New(t)
	e.User(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	p := &page{t: t, ctx: browser(t), dir: screenshotDir(t), base: e.Server.URL}

	signInWithPassword := func() {
		p.do("password step",
			chromedp.Navigate(p.base+"/login"),
			chromedp.WaitVisible(chromedp.CSS(`input[name=email]`)),
			chromedp.SendKeys(chromedp.CSS(`input[name=email]`), "ann@acme.test"),
			chromedp.SendKeys(chromedp.CSS(`input[name=password]`), webtest.Password),
		)
		p.shot("01-login")
		p.do("submit password", chromedp.Submit(chromedp.CSS(`input[name=password]`)))
	}

	signInWithPassword()
	p.do("enrolment page", chromedp.WaitVisible(chromedp.CSS(`.secret.grouped`)))
	p.expectPath("/mfa/enroll")
	p.shot("02-enroll")
	// Typed by hand as shown, in groups of four.
	secret := strings.ReplaceAll(p.text(`.secret.grouped`), " ", "")
	if len(secret) < 32 {
		t.Fatalf("TOTP secret on the page: %q", secret)
	}
	p.do("confirm enrolment",
		chromedp.SendKeys(chromedp.CSS(`input[name=code]`), e.Code(secret)),
		chromedp.Submit(chromedp.CSS(`input[name=code]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=recovery-code]`)),
	)
	p.shot("03-recovery-codes")
	nodes, err := chromedp.Run(p.ctx, chromedp.Nodes(chromedp.CSSAll(`[data-testid=recovery-code]`)))
	if err != nil || len(nodes) != 10 {
		t.Fatalf("recovery codes shown: %d (%v)", len(nodes), err)
	}

	p.do("continue to the portal",
		chromedp.Click(chromedp.CSS(`a.button.primary`)),
		chromedp.WaitVisible(`//h1[text()="API keys"]`),
	)
	p.expectPath("/settings/developers/api-keys")
	p.do("sign out",
		chromedp.Click(`//button[text()="Sign out"]`),
		// The old page must be gone before the sign-in form is looked
		// up, or a node of the page being replaced can be picked up.
		chromedp.WaitNotPresent(`//button[text()="Sign out"]`),
		chromedp.WaitVisible(chromedp.CSS(`input[name=email]`)),
	)
	p.expectPath("/login")
	p.shot("04-signed-out")

	signInWithPassword()
	p.do("TOTP step", chromedp.WaitVisible(chromedp.CSS(`input[name=code]`)))
	p.expectPath("/login/totp")
	p.shot("05-totp")
	p.do("enter TOTP",
		// The enrolment code's step is spent; the next step's code is fresh.
		chromedp.SendKeys(chromedp.CSS(`input[name=code]`), e.NextCode(secret)),
		chromedp.Submit(chromedp.CSS(`input[name=code]`)),
		chromedp.WaitVisible(`//h1[text()="API keys"]`),
	)
	p.expectPath("/settings/developers/api-keys")
	p.shot("06-api-keys")
	if who := p.text(`.who`); !strings.Contains(who, "ann@acme.test") || !strings.Contains(who, "admin") {
		t.Errorf("header shows %q", who)
	}
}

// TestBrowserKeyLifecycle: an admin creates a key with a TOTP code, copies
// it from the reveal-once panel, finds it in the list, rotates it with a
// one-hour grace and revokes it.
func TestBrowserKeyLifecycle(t *testing.T) {
	e := webtest.New(t)
	_, secret, _ := e.EnrolledUser(e.Tenant, "ann@acme.test", auth.RoleAdmin)
	p := &page{t: t, ctx: browser(t), dir: screenshotDir(t), base: e.Server.URL}

	p.signIn("ann@acme.test", e.NextCode(secret))
	p.do("fill the create form",
		chromedp.Click(chromedp.CSS(`a.button.primary`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name=name]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=name]`), "Checkout service"),
		chromedp.Click(chromedp.CSS(`input[name=environment][value=production]`)),
		chromedp.Click(chromedp.CSS(`input[name=preset][value=full_access]`)),
		chromedp.SendKeys(chromedp.CSS(`textarea[name=ip_allowlist]`), "203.0.113.0/24"),
		chromedp.SendKeys(chromedp.CSS(`input[name=code]`), e.NextCode(secret)),
	)
	p.shot("10-create")
	p.do("create", chromedp.Submit(chromedp.CSS(`input[name=code]`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid=api-key-secret]`)))
	p.shot("11-reveal")
	key := p.text(`[data-testid=api-key-secret]`)
	parsed, err := apikey.Parse(key)
	if err != nil || parsed.Env != apikey.Production {
		t.Fatalf("revealed key %q: %v", key, err)
	}
	if snippet := p.text(`pre`); !strings.Contains(snippet, "Authorization: Bearer "+key) {
		t.Errorf("curl snippet: %q", snippet)
	}

	p.do("list", chromedp.Navigate(p.base+"/settings/developers/api-keys"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=api-key-row]`)))
	p.shot("12-list")
	if got := p.text(`[data-testid=api-key-prefix]`); got != apikey.DisplayPrefix(parsed)+"…" {
		t.Errorf("prefix in list = %q, want %q", got, apikey.DisplayPrefix(parsed))
	}
	if env, st := p.text(`[data-testid=api-key-environment]`), p.text(`[data-testid=api-key-status]`); env != "production" || !strings.EqualFold(st, "active") {
		t.Errorf("row shows %q / %q", env, st)
	}
	if body := p.text(`body`); strings.Contains(body, key) {
		t.Error("the list shows the full key")
	}

	p.do("rotate with 1h grace",
		chromedp.Click(`//a[text()="Checkout service"]`),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=rotate-form]`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid=rotate-form] select[name=grace]`), "1h"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=rotate-form] input[name=code]`), e.NextCode(secret)),
		chromedp.Submit(chromedp.CSS(`[data-testid=rotate-form] input[name=code]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=api-key-secret]`)),
	)
	rotated := p.text(`[data-testid=api-key-secret]`)
	if rotated == key {
		t.Fatal("rotation revealed the old key")
	}
	// During the grace window both secrets verify. The key's allowlist does
	// not include this machine, so each gets IP_NOT_ALLOWED, not a 401.
	for _, k := range []string{key, rotated, key} {
		if r := e.API("GET", "/api/v1/key", k, ""); r.Status != 403 || !strings.Contains(r.Body, "IP_NOT_ALLOWED") {
			t.Errorf("during grace: %d %s", r.Status, r.Body)
		}
	}
	e.App.Usage.Flush(context.Background())
	p.do("back to the key", chromedp.Click(chromedp.CSS(`a.button.primary`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid=revoke-form]`)))
	p.shot("13-detail-after-rotate")
	if secrets := p.text(`table`); !strings.Contains(secrets, "rotation grace") {
		t.Errorf("secrets table after rotation: %q", secrets)
	}

	p.do("revoke",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=revoke-form] input[name=confirm_name]`), "Checkout service"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=revoke-form] input[name=code]`), e.NextCode(secret)),
		chromedp.Submit(chromedp.CSS(`[data-testid=revoke-form] input[name=code]`)),
		// Wait for the new page itself: the old one's form vanishes while
		// the next page is still loading.
		chromedp.WaitVisible(chromedp.CSS(`p.notice`)),
	)
	p.shot("14-detail-revoked")
	if st := p.text(`[data-testid=api-key-status]`); !strings.EqualFold(st, "revoked") {
		t.Errorf("status after revoke: %q", st)
	}
	if r := e.API("GET", "/api/v1/key", rotated, ""); r.Status != 401 || !strings.Contains(r.Body, "KEY_REVOKED") {
		t.Errorf("after revoke: %d %s", r.Status, r.Body)
	}
	if total := p.attr(`[data-testid=usage-chart]`, "data-total"); total != "3" {
		t.Errorf("usage chart counts %q requests, want 3", total)
	}

	e.App.Usage.Flush(context.Background())
	p.do("request log", chromedp.Click(`//nav//a[text()="API logs"]`), chromedp.WaitVisible(chromedp.CSS(`[data-testid=api-log-row]`)))
	p.shot("15-api-logs")
	if rows := p.count(`[data-testid=api-log-row]`); rows != 4 {
		t.Errorf("request log shows %d rows, want 4 (3 refused by IP, 1 revoked)", rows)
	}
	// Each row names the secret that was presented: both, during the grace.
	newParsed, _ := apikey.Parse(rotated)
	if log := p.text(`table`); !strings.Contains(log, apikey.DisplayPrefix(parsed)) || !strings.Contains(log, apikey.DisplayPrefix(newParsed)) {
		t.Errorf("the request log does not show both secrets' prefixes: %q", log)
	}
}

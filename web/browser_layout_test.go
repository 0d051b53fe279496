package web_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"keyward/db"
	"keyward/web/apikey"
	"keyward/web/auth"
	"keyward/web/webtest"
)

// axeScript is axe-core's browser build, which `make test` installs with
// npm into tmp/axe (never committed). KEYWARD_AXE_JS names another copy.
func axeScript(t *testing.T) string {
	t.Helper()
	path := os.Getenv("KEYWARD_AXE_JS")
	if path == "" {
		path = filepath.Join("..", "tmp", "axe", "node_modules", "axe-core", "axe.min.js")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("axe-core not found (%v): run `make test`, or `npm install --prefix tmp/axe axe-core` at the repository's root", err)
	}
	return string(b)
}

// viewport is one screen the layout is checked at. Pictures are taken and
// axe runs at the two that matter most: a phone in the dark scheme and a
// laptop in the light one, so both colour schemes are audited.
type viewport struct {
	width int64
	dark  bool
	audit bool // screenshot and axe
}

var viewports = []viewport{
	{width: 360}, {width: 390, dark: true, audit: true}, {width: 768}, {width: 1280, audit: true}, {width: 1920},
}

// layoutReport is what the page says about its own layout at one width.
type layoutReport struct {
	ScrollWidth int      `json:"scrollWidth"`
	InnerWidth  int      `json:"innerWidth"`
	Scrollers   []string `json:"scrollers"` // elements that scroll sideways inside the page
	BadCode     []string `json:"badCode"`   // code fields without the numeric one-time-code hints
}

const layoutJS = `(() => {
  const name = el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\s+/).join(".") : "");
  const scrollers = [];
  for (const el of document.querySelectorAll("body *")) {
    const ox = getComputedStyle(el).overflowX;
    if ((ox === "auto" || ox === "scroll") && el.scrollWidth > el.clientWidth + 1) {
      scrollers.push(name(el) + " " + el.scrollWidth + ">" + el.clientWidth);
    }
  }
  const badCode = [...document.querySelectorAll("input[name=code]")]
    .filter(i => i.inputMode !== "numeric" || i.autocomplete !== "one-time-code").map(name);
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, scrollers, badCode};
})()`

// axeViolation is one rule axe found broken, with the elements.
type axeViolation struct {
	ID      string `json:"id"`
	Impact  string `json:"impact"`
	Help    string `json:"help"`
	Targets []string
	Nodes   []struct {
		Target []any `json:"target"`
	} `json:"nodes"`
}

const axeRunJS = `axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations)`

// audit checks the page the browser shows at every viewport: no sideways
// scrolling of the page, nor inside it (a table's scroll container is
// only a last resort, which no page needs now);
// code fields that bring up a numeric keypad and offer one-time codes; at
// the audited viewports a screenshot and axe-core with no serious or
// critical violation. The page is not reloaded between widths, so a page
// that answers a POST (reveal-once, recovery codes) is checked as well.
type audit struct {
	t   *testing.T
	p   *page
	axe string
}

func (a *audit) check(name string) {
	a.t.Helper()
	a.t.Run(name, func(t *testing.T) {
		p := *a.p
		p.t = t
		defer p.do("light scheme again", setScheme(false))
		for _, v := range viewports {
			p.do(fmt.Sprintf("viewport %d", v.width), chromedp.EmulateViewport(v.width, 900), setScheme(v.dark))
			r := evaluate[layoutReport](&p, layoutJS)
			if r.ScrollWidth > r.InnerWidth {
				t.Errorf("at %d px the page scrolls sideways: %d px wide", v.width, r.ScrollWidth)
			}
			if len(r.Scrollers) > 0 {
				t.Errorf("at %d px these scroll sideways: %v", v.width, r.Scrollers)
			}
			if len(r.BadCode) > 0 {
				t.Errorf("code fields without inputmode=numeric and autocomplete=one-time-code: %v", r.BadCode)
			}
			if !v.audit {
				continue
			}
			scheme := "light"
			if v.dark {
				scheme = "dark"
			}
			p.shot(fmt.Sprintf("layout-%s-%d-%s", name, v.width, scheme))
			if !evaluate[bool](&p, `typeof axe !== "undefined"`) {
				p.do("inject axe-core", chromedp.Evaluate[chromedp.Void](a.axe))
			}
			for _, v := range evaluate[[]axeViolation](&p, axeRunJS, chromedp.EvalAwaitPromise) {
				if v.Impact != "serious" && v.Impact != "critical" {
					continue
				}
				var targets []string
				for _, n := range v.Nodes {
					targets = append(targets, fmt.Sprint(n.Target...))
				}
				t.Errorf("axe, %s scheme: %s (%s): %s: %s", scheme, v.ID, v.Impact, v.Help, strings.Join(targets, "; "))
			}
		}
	})
}

// setScheme emulates the dark or the light colour scheme on screen.
func setScheme(dark bool) chromedp.Action[chromedp.Void] { return emulateMedia("", dark) }

// emulateMedia emulates a CSS media type ("print", or "" for the screen)
// and colour scheme.
func emulateMedia(media string, dark bool) chromedp.Action[chromedp.Void] {
	scheme := "light"
	if dark {
		scheme = "dark"
	}
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Media: media, Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	})
}

func evaluate[T any](p *page, js string, opts ...chromedp.EvaluateOption) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, opts...))
	if err != nil {
		p.t.Fatalf("evaluating %.60q: %v", js, err)
	}
	return v
}

// TestBrowserLayoutAndAccessibility signs an owner and a viewer in and
// visits every portal page, with data in every table, checking each as
// audit.check says: login, enrolment, recovery codes, key list, new key,
// reveal, key detail, edit, API logs, account, error pages and the TOTP
// step. Along the way it checks what the pages promise people: the skip
// link, the current navigation entry, copy buttons only with JavaScript,
// the recovery codes' download and print forms, and the reveal summary.
func TestBrowserLayoutAndAccessibility(t *testing.T) {
	axe := axeScript(t)
	e := webtest.New(t)
	const ownerEmail = "olivia.owner-of-a-rather-long-address@acme.test"
	owner := e.User(e.Tenant, ownerEmail, auth.RoleOwner)
	e.EnrolledUser(e.Tenant, "vic@acme.test", auth.RoleViewer)
	_, viewerSecret, _ := e.EnrolledUser(e.Tenant, "val@acme.test", auth.RoleViewer)
	p := &page{t: t, ctx: browser(t), dir: screenshotDir(t), base: e.Server.URL}
	a := &audit{t: t, p: p, axe: axe}

	// Keys with long values in every column, and requests so the request
	// log and the charts have rows: allowed, refused by scope, by address.
	limit := apikey.RateLimit{Requests: 500, Window: time.Hour}
	expires := e.Clock.Now().Add(40 * 24 * time.Hour)
	_, billing := e.Key(e.Tenant, owner, apikey.Config{Name: "Billing worker for the north-east region invoices", Description: "Sends invoices.",
		Environment: apikey.Production, Scopes: []string{"events:read", "events:write"}, Sources: []string{"billing", "billing.eu-north-1.invoices"},
		RateLimit: &limit, ExpiresAt: &expires})
	// A key that expires within 14 days: the list and the overview mark it.
	soon := e.Clock.Now().Add(5 * 24 * time.Hour)
	e.Key(e.Tenant, owner, apikey.Config{Name: "Expiring reader", Environment: apikey.Development, Scopes: []string{"events:read"}, ExpiresAt: &soon})
	_, staging := e.Key(e.Tenant, owner, apikey.Config{Name: "Staging reader", Environment: apikey.Staging, Scopes: []string{"events:read"},
		IPAllowlist: []string{"2001:db8:1234:5678::/64", "198.51.100.7/32"}})
	for range 3 {
		e.API("GET", "/api/v1/key", billing, "")
	}
	e.API("POST", "/api/v1/events", billing, `{"source":"billing","type":"invoice.paid","occurred_at":"2026-01-02T15:04:05Z"}`,
		"Content-Type", "application/json", "Idempotency-Key", "layout-1")
	e.API("GET", "/api/v1/events?source=billing.eu-north-1.invoices&type=invoice.paid.with.a.long.type.name", billing, "")
	e.API("GET", "/api/v1/key", staging, "")
	// A key reported leaked, found at a long URL: its page and the
	// overview show the report.
	leakedRow, leaked := e.Key(e.Tenant, owner, apikey.Config{Name: "Leaked deploy key", Environment: apikey.Production, Scopes: []string{"events:read"}})
	e.API("POST", "/api/v1/keys/report", "", `{"keys":["`+leaked+`"],"url":"https://github.com/acme/a-rather-long-repository-name/blob/0123456789abcdef0123456789abcdef01234567/config/production/secrets.yml"}`)
	e.App.Usage.Flush(context.Background())

	p.do("login page", chromedp.Navigate(p.base+"/login"), chromedp.WaitVisible(chromedp.CSS(`input[name=email]`)))
	a.check("login")
	p.do("password step",
		chromedp.SendKeys(chromedp.CSS(`input[name=email]`), ownerEmail),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), webtest.Password),
		chromedp.Submit(chromedp.CSS(`input[name=password]`)),
		chromedp.WaitVisible(chromedp.CSS(`.secret.grouped`)),
	)
	a.check("enroll")
	groups := evaluate[[]string](p, `[...document.querySelectorAll(".secret.grouped span")].map(s => s.textContent)`)
	secret := strings.Join(groups, "")
	for i, g := range groups {
		if len(g) != 4 && (i < len(groups)-1 || len(g) > 4) {
			t.Errorf("the TOTP secret is shown as %q, not in groups of four", groups)
			break
		}
	}
	if len(secret) < 32 || secret != evaluate[string](p, `document.getElementById("totp-secret").textContent`) {
		t.Errorf("the TOTP secret shown, %q, is not the one the copy button copies", secret)
	}
	if got := p.attr(`button[data-copy=totp-secret]`, "hidden"); got != "" || p.count(`button[data-copy=totp-secret]:not([hidden])`) != 1 {
		t.Error("with JavaScript the TOTP secret has no copy button shown")
	}
	p.do("without JavaScript", setScriptsOff(true), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`.secret.grouped`)))
	if n := evaluate[int](p, `document.querySelectorAll("button[data-copy]:not([hidden]), button[data-print]:not([hidden])").length`); n != 0 {
		t.Errorf("without JavaScript %d copy buttons show that cannot work", n)
	}
	p.do("JavaScript on again", setScriptsOff(false), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(`.secret.grouped`)))

	p.do("confirm enrolment",
		chromedp.SendKeys(chromedp.CSS(`input[name=code]`), e.Code(secret)),
		chromedp.Submit(chromedp.CSS(`input[name=code]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=recovery-code]`)),
	)
	a.check("recovery-codes")
	codes := evaluate[[]string](p, `[...document.querySelectorAll("[data-testid=recovery-code]")].map(c => c.textContent)`)
	href := p.attr(`[data-testid=recovery-download]`, "href")
	file, err := url.PathUnescape(strings.TrimPrefix(href, "data:text/plain;charset=utf-8,"))
	if err != nil || len(codes) != 10 || !strings.HasSuffix(file, strings.Join(codes, "\n")+"\n") || !strings.Contains(file, ownerEmail) {
		t.Errorf("the download of the %d codes holds %q (%v)", len(codes), file, err)
	}
	if p.attr(`[data-testid=recovery-download]`, "download") == "" {
		t.Error("the recovery codes link does not download")
	}
	p.do("print", emulateMedia("print", false))
	printed := evaluate[[]string](p, `[...document.querySelectorAll("body *")].filter(el => el.checkVisibility() && el.children.length === 0).map(el => el.textContent.trim()).filter(s => s)`)
	p.shot("layout-recovery-codes-print")
	p.do("screen", emulateMedia("", false))
	if len(printed) != len(codes)+2 || !strings.Contains(printed[0], "recovery codes") || printed[len(printed)-1] != codes[len(codes)-1] {
		t.Errorf("printed, the page shows %q, want a title, whose codes they are, and the codes", printed)
	}

	p.do("continue", chromedp.Click(chromedp.CSS(`a.button.primary`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid=api-key-row]`)))
	a.check("keys-list-owner")
	p.do("skip link takes focus first", chromedp.KeyEvent(kb.Tab))
	if got := evaluate[string](p, `document.activeElement.className + " " + getComputedStyle(document.activeElement).outlineStyle + " " + (document.activeElement.getBoundingClientRect().top >= 0)`); got != "skip-link solid true" {
		t.Errorf("after one Tab, focus is on %q, want the skip link, drawn with an outline, on screen", got)
	}
	p.do("skip", chromedp.KeyEvent(kb.Enter))
	if got := evaluate[string](p, `document.activeElement.id`); got != "main" {
		t.Errorf("the skip link moved focus to %q, not to the main content", got)
	}
	if cur := p.text(`nav a[aria-current=page]`); cur != "API keys" {
		t.Errorf("the current navigation entry is %q", cur)
	}

	p.do("new key form", chromedp.Navigate(p.base+"/settings/developers/api-keys/new"), chromedp.WaitVisible(chromedp.CSS(`input[name=name]`)))
	a.check("key-new")
	if p.attr(`input[name=expires_in]:checked`, "value") != "90" {
		t.Error("a new key does not default to a 90-day expiry")
	}
	if evaluate[bool](p, `document.querySelector(".expiry-warning").checkVisibility()`) {
		t.Error("the warning for a key that never expires shows while another expiry is chosen")
	}
	p.do("choose no expiry", chromedp.Click(chromedp.CSS(`input[name=expires_in][value=none]`)))
	if !evaluate[bool](p, `document.querySelector(".expiry-warning").checkVisibility()`) {
		t.Error("choosing no expiry shows no warning")
	}
	p.do("a form with mistakes",
		chromedp.SendKeys(chromedp.CSS(`textarea[name=ip_allowlist]`), "not-a-network"),
		chromedp.Click(chromedp.CSS(`input[name=expires_in][value=custom]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=code]`), e.NextCode(secret)),
		chromedp.Submit(chromedp.CSS(`input[name=code]`)),
		chromedp.WaitVisible(chromedp.CSS(`#err-expires_at`)),
	)
	a.check("key-new-errors")
	if got := evaluate[[]string](p, `[...document.querySelectorAll("[aria-invalid=true]")].map(el => el.name + ">" + el.getAttribute("aria-describedby"))`); strings.Join(got, " ") != "name>err-name ip_allowlist>err-ip_allowlist expires_at>err-expires_at" {
		t.Errorf("fields marked invalid: %q", got)
	}
	p.do("new key form again", chromedp.Navigate(p.base+"/settings/developers/api-keys/new"), chromedp.WaitVisible(chromedp.CSS(`input[name=name]`)))
	p.do("create a key",
		chromedp.SendKeys(chromedp.CSS(`input[name=name]`), "Checkout service"),
		chromedp.Click(chromedp.CSS(`input[name=environment][value=production]`)),
		chromedp.Click(chromedp.CSS(`input[name=preset][value=full_access]`)),
		chromedp.SendKeys(chromedp.CSS(`textarea[name=sources]`), "checkout"),
		chromedp.SendKeys(chromedp.CSS(`textarea[name=ip_allowlist]`), "203.0.113.0/24"),
		chromedp.Click(chromedp.CSS(`input[name=expires_in][value="30"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=code]`), e.NextCode(secret)),
		chromedp.Submit(chromedp.CSS(`input[name=code]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=api-key-secret]`)),
	)
	a.check("key-reveal")
	key := p.text(`[data-testid=api-key-secret]`)
	until := e.Clock.Now().UTC().AddDate(0, 0, 31).Format("2006-01-02") + " 00:00 UTC"
	summary := p.text(`[data-testid=reveal-summary]`)
	for _, want := range []string{"production", "events:read, events:write", "checkout", "203.0.113.0/24", until, "2,000 / hour"} {
		if !strings.Contains(summary, want) {
			t.Errorf("the reveal summary %q lacks %q", summary, want)
		}
	}
	if evaluate[int](p, `document.querySelectorAll(".reveal .alert, .reveal [role=alert]").length`) != 0 {
		t.Error("the reveal panel is styled as an error")
	}
	snippets := evaluate[[]string](p, `[...document.querySelectorAll("pre code")].map(c => c.id + " " + (document.querySelector("button[data-copy='" + c.id + "']:not([hidden])") ? "copy" : "none") + " " + c.textContent)`)
	var events bool
	for _, s := range snippets {
		if !strings.Contains(s, " copy ") || !strings.Contains(s, key) {
			t.Errorf("snippet without a copy button or the key: %.80q", s)
		}
		events = events || strings.Contains(s, "/api/v1/events") && strings.Contains(s, "Idempotency-Key")
	}
	if len(snippets) < 3 || !events {
		t.Errorf("the reveal page has %d snippets, and one that sends an event with an Idempotency-Key: %v", len(snippets), events)
	}
	if p.count(`button[data-copy=api-key-secret]:not([hidden])`) != 1 {
		t.Error("the key has no copy button")
	}

	p.do("detail", chromedp.Click(chromedp.CSS(`a.button.primary`)), chromedp.WaitVisible(chromedp.CSS(`[data-testid=revoke-form]`)))
	a.check("key-detail-owner")
	detail := p.text(`body`)
	if !strings.Contains(detail, until) {
		t.Errorf("the key page does not show the 30-day expiry %s", until)
	}
	p.do("edit", chromedp.Click(`//a[text()="Edit"]`), chromedp.WaitVisible(chromedp.CSS(`input[name=name]`)))
	a.check("key-edit")
	if p.attr(`input[name=expires_in]:checked`, "value") != "custom" || p.attr(`input[name=expires_at]`, "value") != until[:10] {
		t.Error("the edit form does not show the key's expiry as its date")
	}

	p.do("request log", chromedp.Navigate(p.base+"/settings/developers/api-logs"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=api-log-row]`)))
	a.check("api-logs")
	if cur := p.text(`nav a[aria-current=page]`); cur != "API logs" {
		t.Errorf("the current navigation entry is %q", cur)
	}
	p.do("account", chromedp.Navigate(p.base+"/account"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=recovery-codes-left]`)))
	a.check("account")
	if cur := p.text(`nav a[aria-current=page]`); cur != "Account" {
		t.Errorf("the current navigation entry is %q", cur)
	}
	// The settings pages: the hub, the developers overview, the team and
	// a member, the organisation, and one logged request.
	for _, pg := range []struct{ name, path, ready string }{
		{"settings", "/settings", `[data-testid=settings-section]`},
		{"developers", "/settings/developers", `[data-testid=overview-leaked-key]`},
		{"leaked-key", "/settings/developers/api-keys/" + leakedRow.ID, `[data-testid=api-key-leaked]`},
		{"audit-log", "/settings/developers/audit-log", `[data-testid=audit-log-row]`},
		{"audit-log-bad-filter", "/settings/developers/audit-log?from=2026-13-45&actor=nobody", `#err-from`},
		{"team", "/settings/team", `[data-testid=member-row]`},
		{"organization", "/settings/organization", `[data-testid=org-form]`},
		{"authenticator", "/account/authenticator", `input[name=code]`},
	} {
		p.do(pg.name, chromedp.Navigate(p.base+pg.path), chromedp.WaitVisible(chromedp.CSS(pg.ready)))
		a.check(pg.name)
	}
	p.do("a member", chromedp.Navigate(p.base+"/settings/team"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=member-row]`)),
		chromedp.Click(`//a[text()="vic@acme.test"]`), chromedp.WaitVisible(chromedp.CSS(`[data-testid=role-member-form]`)))
	a.check("member")

	// The webhooks: the reveal-once secret, the list, and an endpoint
	// with attempts of each kind (a refusal with a long answer, no answer,
	// a success), all with long values.
	p.do("webhooks", chromedp.Navigate(p.base+"/settings/developers/webhooks"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=webhook-create-form]`)))
	p.do("register an endpoint",
		chromedp.SendKeys(chromedp.CSS(`input[name=url]`), "https://hooks.example.com/keyward/alerts/for-the-security-team-of-the-north-east-region?token=abc"),
		chromedp.Click(chromedp.CSS(`input[name=actions][value="api_key.revoked"]`)),
		chromedp.Click(chromedp.CSS(`input[name=actions][value="audit.checkpoint"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=code]`), e.NextCode(secret)),
		chromedp.Submit(chromedp.CSS(`input[name=code]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=webhook-secret]`)),
	)
	a.check("webhook-reveal")
	hookPath := p.attr(`a.button.primary`, "href")
	hookID := strings.TrimPrefix(hookPath, "/settings/developers/webhooks/")
	for i, at := range []struct {
		status *int32
		err    string
		body   string
	}{
		{ptr[int32](500), "answered 500", strings.Repeat(`{"error":"the-receiver-is-down-for-maintenance","retry":true}`, 20)[:1024]},
		{nil, "dial tcp 203.0.113.7:443: connect: connection timed out after a very long wait for the receiver", ""},
		{ptr[int32](204), "", ""},
	} {
		if err := e.Store.InsertWebhookAttempt(context.Background(), db.InsertWebhookAttemptParams{TenantID: e.Tenant.ID, EndpointID: hookID,
			DeliveryID: "msg_0123456789abcdef0123456789abcdef", JobID: 1, Attempt: int32(i + 1), EventType: "api_key.used_from_new_ip",
			AttemptedAt: e.Clock.Now(), StatusCode: at.status, Error: at.err, LatencyMs: 1234, ResponseBody: at.body}); err != nil {
			t.Fatal(err)
		}
	}
	p.do("webhooks list", chromedp.Navigate(p.base+"/settings/developers/webhooks"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=webhook-row]`)))
	a.check("webhooks")
	p.do("webhook endpoint", chromedp.Navigate(p.base+hookPath), chromedp.WaitVisible(chromedp.CSS(`[data-testid=webhook-attempt]`)))
	a.check("webhook")
	p.do("one request", chromedp.Navigate(p.base+"/settings/developers/api-logs"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=api-log-row]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=api-log-row] a[href*="/api-logs/"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=api-log-request-id]`))) // only the request's page has it: the log's h1 would match at once
	a.check("api-log-detail")
	p.do("a key that does not exist", chromedp.Navigate(p.base+"/settings/developers/api-keys/00000000-0000-0000-0000-000000000000"), chromedp.WaitVisible(`//a[text()="Back to Keyward"]`))
	a.check("error-404")

	p.do("sign out and in again",
		chromedp.Click(`//button[text()="Sign out"]`),
		// The old page must be gone before the sign-in form is looked
		// up, or a node of the page being replaced can be picked up.
		chromedp.WaitNotPresent(`//button[text()="Sign out"]`),
		chromedp.WaitVisible(chromedp.CSS(`input[name=email]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=email]`), ownerEmail),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), webtest.Password),
		chromedp.Submit(chromedp.CSS(`input[name=password]`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name=code]`)),
	)
	p.expectPath("/login/totp")
	a.check("totp")

	// A viewer sees the list and a key without the operations, and an
	// error page where an owner would find the form.
	p.do("sign in as a viewer",
		chromedp.Click(`//button[text()="Cancel and sign out"]`),
		// The old page must be gone before the sign-in form is looked
		// up, or a node of the page being replaced can be picked up.
		chromedp.WaitNotPresent(`//button[text()="Cancel and sign out"]`),
		chromedp.WaitVisible(chromedp.CSS(`input[name=email]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=email]`), "val@acme.test"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), webtest.Password),
		chromedp.Submit(chromedp.CSS(`input[name=password]`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name=code]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=code]`), e.NextCode(viewerSecret)),
		chromedp.Submit(chromedp.CSS(`input[name=code]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=api-key-row]`)),
	)
	a.check("keys-list-viewer")
	p.do("viewer's key page", chromedp.Click(`//a[text()="Staging reader"]`), chromedp.WaitVisible(chromedp.CSS(`[data-testid=usage-chart]`)))
	a.check("key-detail-viewer")
	p.do("viewer asks for the form", chromedp.Navigate(p.base+"/settings/developers/api-keys/new"), chromedp.WaitVisible(`//a[text()="Back to Keyward"]`))
	a.check("error-403")
}

// setScriptsOff turns JavaScript off or on for the page, as a person who
// disabled it would have it.
func setScriptsOff(off bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: off})
		return err
	})
}

func ptr[T any](v T) *T { return &v }

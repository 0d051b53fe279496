package web_test

import (
	"encoding/csv"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"keyward/web/apikey"
	"keyward/web/auth"
	"keyward/web/webtest"
)

// TestBrowserAuditLog: a viewer filters the audit log by action with the
// page's own form, sees only that action, and downloads both exports from
// the page's links (fetched in the page, with its cookies, as the link
// would be): the CSV parses and holds only the filtered events, with the
// chain columns; the JSON Lines file has one object per line.
func TestBrowserAuditLog(t *testing.T) {
	e := webtest.New(t)
	owner := e.User(e.Tenant, "olga@acme.test", auth.RoleOwner)
	for _, name := range []string{"Billing", "Search"} {
		e.Key(e.Tenant, owner, apikey.Config{Name: name, Environment: apikey.Production, Scopes: apikey.AllScopes})
	}
	_, secret, _ := e.EnrolledUser(e.Tenant, "vic@acme.test", auth.RoleViewer)
	p := &page{t: t, ctx: browser(t), dir: screenshotDir(t), base: e.Server.URL}
	p.signIn("vic@acme.test", e.NextCode(secret))
	p.do("audit log", chromedp.Navigate(p.base+"/settings/developers/audit-log"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=audit-log-row]`)))
	if n := p.count(`[data-testid=audit-log-row]`); n < 3 {
		t.Fatalf("the unfiltered log shows %d rows", n)
	}
	p.do("filter by action",
		chromedp.SetValue(chromedp.CSS(`select[name=action]`), "api_key.created"),
		chromedp.Submit(chromedp.CSS(`select[name=action]`)),
		chromedp.WaitReady(chromedp.CSS(`select[name=action] option[value="api_key.created"][selected]`)), // options are never "visible"
	)
	p.shot("audit-log-filtered")
	if n := p.count(`[data-testid=audit-log-row]`); n != 2 {
		t.Fatalf("filtered by api_key.created: %d rows, want 2", n)
	}
	body := p.text(`table`)
	for _, want := range []string{"Billing", "Search"} {
		if !strings.Contains(body, want) {
			t.Errorf("the filtered rows do not name %s: %s", want, body)
		}
	}

	fetch := func(testid string) string {
		t.Helper()
		href := p.attr(`[data-testid=`+testid+`]`, "href")
		if !strings.Contains(href, "action=api_key.created") {
			t.Fatalf("the %s link drops the filter: %s", testid, href)
		}
		u, _ := json.Marshal(href)
		return evaluate[string](p, `fetch(`+string(u)+`, {credentials: "same-origin"}).then(r => r.text())`, chromedp.EvalAwaitPromise)
	}
	records, err := csv.NewReader(strings.NewReader(fetch("audit-export-csv"))).ReadAll()
	if err != nil {
		t.Fatalf("the CSV export does not parse: %v", err)
	}
	if len(records) != 3 || !slices.Contains(records[0], "chain_id") || !slices.Contains(records[0], "hash") {
		t.Fatalf("CSV export: %d records, header %v; want a header and 2 rows", len(records), records[0])
	}
	lines := strings.Split(strings.TrimSpace(fetch("audit-export-jsonl")), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"action":"api_key.created"`) {
		t.Fatalf("JSON Lines export: %q", lines)
	}
}

package portal_test

import (
	"context"
	"html"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"keyward/web/apikey"
	"keyward/web/auth"
	"keyward/web/webtest"
)

var (
	rowNameRe = regexp.MustCompile(`<tr data-testid="api-key-row"><td><a href="/settings/developers/api-keys/[0-9a-f-]{36}">([^<]*)</a>`)
	countRe   = regexp.MustCompile(`data-testid="api-key-count" data-count="(\d+)"`)
	nextRe    = regexp.MustCompile(`href="([^"]*)" rel="next"`)
)

// names lists the key names of a list page, in order.
func names(body string) []string {
	var out []string
	for _, m := range rowNameRe.FindAllStringSubmatch(body, -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}

func matching(t *testing.T, body string) int {
	t.Helper()
	m := countRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("the list has no count")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestKeyListSearchSortAndCount: the list searches names and prefixes in
// the database, sorts by creation, last use and expiry both ways, counts
// what matches, offers to clear filters that match nothing, and keeps
// search and order across pages.
func TestKeyListSearchSortAndCount(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	owner, _ := e.Store.GetUserByEmail(context.Background(), "ann@acme.test")
	mk := func(name string, env apikey.Environment, expires *time.Time) (string, string) {
		k, full := e.Key(e.Tenant, owner, apikey.Config{Name: name, Environment: env, Scopes: apikey.AllScopes, ExpiresAt: expires})
		return k.ID, full
	}
	soon, late := e.Clock.Now().Add(50*time.Hour), e.Clock.Now().Add(90*24*time.Hour+time.Hour)
	_, billingKey := mk("Billing worker", apikey.Production, &late)
	mk("Billing cron", apikey.Staging, &soon)
	_, ingestKey := mk("Ingest", apikey.Development, nil)
	other := e.NewTenant("globex")
	gowner := e.User(other, "gus@globex.test", auth.RoleOwner)
	e.Key(other, gowner, apikey.Config{Name: "Billing elsewhere", Environment: apikey.Production, Scopes: apikey.AllScopes})

	// Use two keys, the billing worker last.
	e.API("GET", "/api/v1/key", ingestKey, "")
	e.Clock.Advance(time.Minute)
	e.API("GET", "/api/v1/key", billingKey, "")
	e.App.Usage.Flush(context.Background())

	list := func(query string) webtest.Response {
		t.Helper()
		r := a.c.Get("/settings/developers/api-keys" + query)
		if r.Status != 200 {
			t.Fatalf("%s: %d", query, r.Status)
		}
		return r
	}
	r := list("")
	if got := names(r.Body); strings.Join(got, "|") != "Ingest|Billing cron|Billing worker" || matching(t, r.Body) != 3 {
		t.Fatalf("newest first: %v, count %d", got, matching(t, r.Body))
	}
	if !strings.Contains(r.Body, `>3 keys<`) || strings.Contains(r.Body, "Clear filters") {
		t.Error("an unfiltered list says how many keys there are and offers no clearing")
	}
	// Environments have a badge each.
	for _, env := range []string{"production", "staging", "development"} {
		if !strings.Contains(r.Body, `class="badge env-`+env+`" data-testid="api-key-environment">`+env+`<`) {
			t.Errorf("no %s badge", env)
		}
	}
	// Relative times from the application's clock, with the exact time.
	if !regexp.MustCompile(`data-testid="api-key-last-used"><time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">just now</time>`).MatchString(r.Body) {
		t.Error("last use is not 'just now' in a <time> with its exact time")
	}
	if !strings.Contains(r.Body, ">in 2 days</time>") || !strings.Contains(r.Body, ">in 3 months</time>") || !strings.Contains(r.Body, ">never<") {
		t.Error("expiries do not read in 2 days, in 3 months and never")
	}
	e.Clock.Advance(3 * time.Minute)
	if r := list(""); !strings.Contains(r.Body, ">3 min ago</time>") {
		t.Error("three minutes later the last use does not read '3 min ago'")
	}

	// Search: name, case ignored; prefix; a full key finds its key and is
	// not shown back.
	if r := list("?q=billing"); strings.Join(names(r.Body), "|") != "Billing cron|Billing worker" || matching(t, r.Body) != 2 || !strings.Contains(r.Body, ">2 keys match<") {
		t.Errorf("search billing: %v", names(r.Body))
	}
	p, _ := apikey.Parse(billingKey)
	prefix := apikey.DisplayPrefix(p)
	if r := list("?q=" + prefix[3:]); strings.Join(names(r.Body), "|") != "Billing worker" {
		t.Errorf("search by prefix %s: %v", prefix[3:], names(r.Body))
	}
	if r := list("?q=" + billingKey); strings.Join(names(r.Body), "|") != "Billing worker" || strings.Contains(r.Body, billingKey) || !strings.Contains(r.Body, `value="`+prefix+`"`) {
		t.Errorf("search by the full key: %v", names(r.Body))
	}
	if r := list("?q=%25"); matching(t, r.Body) != 0 {
		t.Error("a % in the search is a wildcard")
	}
	// Sorting, both ways.
	for _, c := range []struct{ sort, want string }{
		{"created_asc", "Billing worker|Billing cron|Ingest"},
		{"last_used_desc", "Billing worker|Ingest|Billing cron"},
		{"last_used_asc", "Billing cron|Ingest|Billing worker"},
		{"expires_asc", "Billing cron|Billing worker|Ingest"},
		{"expires_desc", "Ingest|Billing worker|Billing cron"},
		{"nonsense", "Ingest|Billing cron|Billing worker"},
	} {
		if got := strings.Join(names(list("?sort="+c.sort).Body), "|"); got != c.want {
			t.Errorf("sort %s: %s, want %s", c.sort, got, c.want)
		}
	}
	// The sorted column says so, and its link turns the order round.
	r = list("?sort=last_used_desc")
	if !strings.Contains(r.Body, `<th scope="col" aria-sort="descending"><a href="/settings/developers/api-keys?sort=last_used_asc" class="sort sorted">`) {
		t.Error("the last-used column is not marked as sorted, or its link does not reverse the order")
	}
	// Filters with the search: a count, and nothing found offers to clear.
	if r := list("?q=billing&environment=staging"); strings.Join(names(r.Body), "|") != "Billing cron" || !strings.Contains(r.Body, ">1 key matches<") {
		t.Errorf("search and environment: %v", names(r.Body))
	}
	r = list("?q=no-such-key&status=active")
	if len(names(r.Body)) != 0 || !strings.Contains(r.Body, "No keys match") || !strings.Contains(r.Body, `href="/settings/developers/api-keys" data-testid="clear-filters"`) || matching(t, r.Body) != 0 {
		t.Errorf("nothing found: %v, no clear-filters link", names(r.Body))
	}

	// Pages keep the search and the order; the count covers every page.
	for i := range 26 {
		mk("Batch "+strconv.Itoa(100+i), apikey.Production, nil)
	}
	r = list("?q=batch&sort=created_asc")
	m := nextRe.FindStringSubmatch(r.Body)
	if matching(t, r.Body) != 26 || len(names(r.Body)) != 25 || names(r.Body)[0] != "Batch 100" || m == nil {
		t.Fatalf("first page of 26: %d shown, count %d, next %v", len(names(r.Body)), matching(t, r.Body), m)
	}
	next := html.UnescapeString(m[1])
	if !strings.Contains(next, "q=batch") || !strings.Contains(next, "sort=created_asc") || !strings.Contains(next, "page=2") {
		t.Fatalf("the next page's link %s loses the search or the order", next)
	}
	if r := list(strings.TrimPrefix(next, "/settings/developers/api-keys")); strings.Join(names(r.Body), "|") != "Batch 125" || matching(t, r.Body) != 26 {
		t.Errorf("second page: %v, count %d", names(r.Body), matching(t, r.Body))
	}
}

// TestKeyListMarksKeysExpiringSoon: an active key that expires within 14
// days carries "Expires in N days" in words on the list, in its row (the
// same markup is the card under 700 px); a key expiring in 30 days, one
// that never expires and a disabled one do not. The clock moved 17 days on
// marks the 30-day key too.
func TestKeyListMarksKeysExpiringSoon(t *testing.T) {
	e := webtest.New(t)
	a := newAdmin(t, e, "ann@acme.test", auth.RoleAdmin)
	owner, _ := e.Store.GetUserByEmail(context.Background(), "ann@acme.test")
	now := e.Clock.Now()
	in3, in30 := now.Add(3*24*time.Hour+time.Hour), now.Add(30*24*time.Hour+time.Hour) // an hour spare for the codes' clock steps
	mk := func(name string, expires *time.Time) string {
		k, _ := e.Key(e.Tenant, owner, apikey.Config{Name: name, Environment: apikey.Staging, Scopes: apikey.AllScopes, ExpiresAt: expires})
		return k.ID
	}
	mk("Three", &in3)
	mk("Thirty", &in30)
	mk("Never", nil)
	off := mk("Off", &in3)
	if _, err := e.Store.Pool.Exec(context.Background(), `UPDATE api_keys SET disabled_at = now() WHERE id = $1`, off); err != nil {
		t.Fatal(err)
	}
	badges := func(c *webtest.Client) map[string]string {
		t.Helper()
		r := c.Get("/settings/developers/api-keys")
		out := map[string]string{}
		for _, row := range strings.Split(r.Body, `data-testid="api-key-row"`)[1:] {
			name := names(`<tr data-testid="api-key-row"` + row)
			badge := regexp.MustCompile(`data-testid="expires-soon">([^<]*)<`).FindStringSubmatch(row)
			if len(name) == 1 && badge != nil {
				out[name[0]] = badge[1]
			}
		}
		return out
	}
	if got := badges(a.c); len(got) != 1 || got["Three"] != "Expires in 3 days" {
		t.Errorf("marks: %v, want only Three, expiring in 3 days", got)
	}
	e.Clock.Advance(17 * 24 * time.Hour) // past the session's life: sign in again
	if got := badges(e.SignIn("ann@acme.test", a.secret)); len(got) != 1 || got["Thirty"] != "Expires in 13 days" {
		t.Errorf("marks 17 days on: %v, want only Thirty, in 13 days (Three has expired)", got)
	}
}

package web_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"keyward/web/auth"
	"keyward/web/webtest"
)

// TestBrowserTeam: an owner invites a member; the member accepts in a
// second browser, sets a password, enrols an authenticator and is signed
// in; the owner makes them a viewer and then disables them; the member's
// open page is sent to sign-in on its next request.
func TestBrowserTeam(t *testing.T) {
	e := webtest.New(t)
	_, ownerSecret, _ := e.EnrolledUser(e.Tenant, "olga@acme.test", auth.RoleOwner)
	dir := screenshotDir(t)
	o := &page{t: t, ctx: browser(t), dir: dir, base: e.Server.URL}

	o.signIn("olga@acme.test", e.NextCode(ownerSecret))
	o.do("invite",
		chromedp.Navigate(o.base+"/settings/team"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=invite-form]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=invite-form] input[name=email]`), "nina@acme.test"),
		chromedp.SetValue(chromedp.CSS(`[data-testid=invite-form] select[name=role]`), "admin"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=invite-form] input[name=code]`), e.NextCode(ownerSecret)),
		chromedp.Submit(chromedp.CSS(`[data-testid=invite-form] input[name=code]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=invite-link]`)),
	)
	o.shot("team-01-invitation")
	link := o.text(`[data-testid=invite-link]`)
	if !strings.HasPrefix(link, e.Server.URL+"/invite/") {
		t.Fatalf("invitation link %q", link)
	}

	// The member, in a browser of their own.
	m := &page{t: t, ctx: browser(t), dir: dir, base: e.Server.URL}
	m.do("accept",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS(`input[name=confirm_password]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), webtest.Password),
		chromedp.SendKeys(chromedp.CSS(`input[name=confirm_password]`), webtest.Password),
	)
	m.shot("team-02-accept")
	m.do("choose the password", chromedp.Submit(chromedp.CSS(`input[name=password]`)), chromedp.WaitVisible(chromedp.CSS(`.secret.grouped`)))
	m.expectPath("/mfa/enroll")
	secret := strings.ReplaceAll(m.text(`.secret.grouped`), " ", "")
	m.do("enrol",
		chromedp.SendKeys(chromedp.CSS(`input[name=code]`), e.Code(secret)),
		chromedp.Submit(chromedp.CSS(`input[name=code]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=recovery-code]`)),
		chromedp.Click(chromedp.CSS(`a.button.primary`)),
		chromedp.WaitVisible(`//h1[text()="API keys"]`),
	)
	if who := m.text(`.who`); !strings.Contains(who, "nina@acme.test") || !strings.Contains(who, "admin") {
		t.Errorf("the member's header: %q", who)
	}

	nina, err := e.Store.GetUserByEmail(context.Background(), "nina@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	member := o.base + "/settings/team/members/" + strconv.FormatInt(nina.ID, 10)
	o.do("make the member a viewer",
		chromedp.Navigate(member),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=role-member-form]`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid=role-member-form] select[name=role]`), "viewer"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=role-member-form] input[name=code]`), e.NextCode(ownerSecret)),
		chromedp.Submit(chromedp.CSS(`[data-testid=role-member-form] input[name=code]`)),
		chromedp.WaitVisible(chromedp.CSS(`p.notice`)),
	)
	o.expectPath("/settings/team")
	if n := o.text(`p.notice`); !strings.Contains(n, "nina@acme.test is now viewer") {
		t.Errorf("notice after the role change: %q", n)
	}
	o.do("disable the member",
		chromedp.Navigate(member),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=disable-member-form]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=disable-member-form] input[name=code]`), e.NextCode(ownerSecret)),
		chromedp.Submit(chromedp.CSS(`[data-testid=disable-member-form] input[name=code]`)),
		chromedp.WaitVisible(chromedp.CSS(`p.notice`)),
	)
	o.shot("team-03-disabled")
	if s := strings.ToLower(o.text(`tbody`)); !strings.Contains(s, "disabled") { // the members table
		t.Errorf("the team page does not show the member disabled: %q", s)
	}

	// The member's open page: its next request goes to sign-in.
	m.do("the member clicks on", chromedp.Click(`//nav//a[text()="API logs"]`), chromedp.WaitVisible(chromedp.CSS(`input[name=email]`)))
	m.expectPath("/login")
	m.shot("team-04-member-signed-out")
}

package portal_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"keyward/web"
	"keyward/web/auth"
	"keyward/web/mail"
	"keyward/web/mail/mailtest"
	"keyward/web/webtest"
)

// TestInvitationMailed: with a mail server configured, the invitation's
// link is mailed to the invitee as well as shown; a mail server that is
// down leaves the invitation made and says so on the page.
func TestInvitationMailed(t *testing.T) {
	rcv := mailtest.Start(t, "", "")
	sender, err := mail.ParseSMTP("smtp://" + rcv.Addr + "?tls=none&from=keyward@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	e := webtest.NewWith(t, webtest.Options{Config: func(c *web.Config) { c.Mail = sender }})
	owner := newAdmin(t, e, "olga@acme.test", auth.RoleOwner)
	owner.c.Get("/settings/team")
	r := owner.c.PostForm("/settings/team/invitations", url.Values{"email": {"nina@acme.test"}, "role": {"viewer"}, "code": {e.NextCode(owner.secret)}})
	link := inviteLinkRe.FindStringSubmatch(r.Body)
	if r.Status != http.StatusOK || link == nil || !strings.Contains(r.Body, "also sent to nina@acme.test") {
		t.Fatalf("invite: %d %s", r.Status, r.Body)
	}
	msgs := rcv.Messages()
	if len(msgs) != 1 || msgs[0].To[0] != "nina@acme.test" || !strings.Contains(msgs[0].Data, link[1]) || !strings.Contains(msgs[0].Data, "Acme Inc.") {
		t.Fatalf("mail received: %+v", msgs)
	}
	// The mailed link works.
	accept(t, e, link[1])

	down, _ := mail.ParseSMTP("smtp://127.0.0.1:1?tls=none&from=keyward@acme.test")
	e2 := webtest.NewWith(t, webtest.Options{Config: func(c *web.Config) { c.Mail = down }})
	owner2 := newAdmin(t, e2, "olga@acme.test", auth.RoleOwner)
	owner2.c.Get("/settings/team")
	r = owner2.c.PostForm("/settings/team/invitations", url.Values{"email": {"nina@acme.test"}, "role": {"viewer"}, "code": {e2.NextCode(owner2.secret)}})
	if r.Status != http.StatusOK || inviteLinkRe.FindStringSubmatch(r.Body) == nil || !strings.Contains(r.Body, "could not be sent") {
		t.Errorf("invite with the mail server down: %d %s", r.Status, r.Body)
	}
}

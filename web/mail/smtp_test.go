package mail_test

import (
	"context"
	"strings"
	"testing"

	"keyward/web/mail"
	"keyward/web/mail/mailtest"
)

func TestSMTPSendsToALocalReceiver(t *testing.T) {
	r := mailtest.Start(t, "", "")
	s, err := mail.ParseSMTP("smtp://" + r.Addr + "?tls=none&from=keyward@example.test")
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), mail.Message{To: "nina@acme.test", Subject: "You are invited", Text: "Open https://portal.test/invite/abc\n"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := r.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages received", len(msgs))
	}
	m := msgs[0]
	if m.From != "keyward@example.test" || len(m.To) != 1 || m.To[0] != "nina@acme.test" ||
		!strings.Contains(m.Data, "Subject: You are invited") || !strings.Contains(m.Data, "https://portal.test/invite/abc") {
		t.Errorf("received %+v", m)
	}
	// STARTTLS is required unless tls=none: this receiver offers none.
	strict, _ := mail.ParseSMTP("smtp://" + r.Addr + "?from=keyward@example.test")
	if err := strict.Send(context.Background(), mail.Message{To: "x@acme.test", Subject: "s", Text: "t"}); err == nil {
		t.Error("sent without STARTTLS")
	}
	if n := len(r.Messages()); n != 1 {
		t.Errorf("%d messages after the refusal", n)
	}
}

// TestSMTPKeepsCredentialsOffPlainConnections: a receiver that asks for a
// password over a connection without TLS gets none, and no mail.
func TestSMTPKeepsCredentialsOffPlainConnections(t *testing.T) {
	r := mailtest.Start(t, "keyward@example.test", "s3cret pass")
	s, err := mail.ParseSMTP("smtp://keyward%40example.test:s3cret%20pass@" + r.Addr + "?tls=none")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.String(), "s3cret") {
		t.Errorf("String shows the password: %s", s)
	}
	if err := s.Send(context.Background(), mail.Message{To: "x@acme.test", Subject: "s", Text: "t"}); err == nil || len(r.Messages()) != 0 {
		t.Errorf("credentials over a plain connection: %v, %d messages", err, len(r.Messages()))
	}
}

func TestParseSMTP(t *testing.T) {
	for _, bad := range []string{
		"mail.example.com", "http://mail.example.com", "smtp://mail.example.com", // no from
		"smtp://mail.example.com?from=x@example.com&tls=maybe", "smtps://mail.example.com?from=x@example.com&tls=none",
		"smtp://mail.example.com:99999?from=x@example.com", "smtp://mail.example.com?from=x@example.com&debug=1",
		"smtp://mail.example.com?from=not-an-address",
	} {
		if _, err := mail.ParseSMTP(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for raw, want := range map[string]string{
		"smtp://u@example.com:pw@mail.example.com":                   "smtp://mail.example.com:587",
		"smtps://mail.example.com?from=keyward@example.com":          "smtps://mail.example.com:465",
		"smtp://127.0.0.1:2525?from=k@example.com&tls=none":          "smtp://127.0.0.1:2525",
		"smtp://mail.example.com:25?from=k@example.com&tls=starttls": "smtp://mail.example.com:25",
	} {
		s, err := mail.ParseSMTP(raw)
		if err != nil || s.String() != want {
			t.Errorf("%q: %v %v, want %s", raw, s, err, want)
		}
	}
}

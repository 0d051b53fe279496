package mail

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTP sends through a mail server, with go-mail (a maintained client
// that speaks STARTTLS, implicit TLS and SMTP AUTH, and builds proper
// MIME messages). One connection per message: invitations are rare.
type SMTP struct {
	host string
	from string
	opts []gomail.Option
	desc string
}

// ParseSMTP reads KEYWARD_SMTP_URL:
//
//	smtp://[user:password@]host[:port][?from=address][&tls=none]
//	smtps://[user:password@]host[:port][?from=address]
//
// smtp:// uses port 587 and requires STARTTLS, unless tls=none (a relay
// on the same machine or network, such as a local mail agent); smtps://
// uses port 465 with TLS from the start. from is the sender's address,
// by default the user name when it is an address. Credentials go over
// TLS only (or to localhost).
func ParseSMTP(raw string) (*SMTP, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("KEYWARD_SMTP_URL must look like smtp://user:password@mail.example.com:587?from=keyward@example.com")
	}
	q := u.Query()
	for k := range q {
		if k != "from" && k != "tls" {
			return nil, fmt.Errorf("KEYWARD_SMTP_URL: unknown parameter %q (from and tls are known)", k)
		}
	}
	s := &SMTP{host: u.Hostname(), opts: []gomail.Option{gomail.WithTimeout(15 * time.Second)}}
	port := 0
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("KEYWARD_SMTP_URL: %q is not a port", p)
		}
	}
	switch u.Scheme {
	case "smtp":
		switch q.Get("tls") {
		case "", "starttls":
			s.opts = append(s.opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
		case "none":
			s.opts = append(s.opts, gomail.WithTLSPolicy(gomail.NoTLS))
		default:
			return nil, fmt.Errorf("KEYWARD_SMTP_URL: tls must be starttls or none, not %q", q.Get("tls"))
		}
		if port == 0 {
			port = 587
		}
	case "smtps":
		if q.Has("tls") {
			return nil, fmt.Errorf("KEYWARD_SMTP_URL: smtps:// is always TLS; tls= is for smtp://")
		}
		s.opts = append(s.opts, gomail.WithSSL())
		if port == 0 {
			port = 465
		}
	default:
		return nil, fmt.Errorf("KEYWARD_SMTP_URL must start with smtp:// or smtps://, not %q", u.Scheme+"://")
	}
	s.opts = append(s.opts, gomail.WithPort(port))
	if u.User != nil && u.User.Username() != "" {
		pw, _ := u.User.Password()
		s.opts = append(s.opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(u.User.Username()), gomail.WithPassword(pw))
	}
	s.from = q.Get("from")
	if s.from == "" && u.User != nil && strings.Contains(u.User.Username(), "@") {
		s.from = u.User.Username()
	}
	if s.from == "" {
		return nil, fmt.Errorf("KEYWARD_SMTP_URL needs the sender's address: add ?from=keyward@example.com")
	}
	if err := gomail.NewMsg().From(s.from); err != nil {
		return nil, fmt.Errorf("KEYWARD_SMTP_URL: from=%q is not an address", s.from)
	}
	s.desc = u.Scheme + "://" + net.JoinHostPort(s.host, strconv.Itoa(port))
	return s, nil
}

// String names the server without its credentials, for logs.
func (s *SMTP) String() string { return s.desc }

// Send delivers m, or says why not, within ctx.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg := gomail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return err
	}
	if err := msg.To(m.To); err != nil {
		return err
	}
	msg.Subject(m.Subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	c, err := gomail.NewClient(s.host, s.opts...)
	if err != nil {
		return err
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("mail to %s through %s: %w", m.To, s.desc, err)
	}
	return nil
}

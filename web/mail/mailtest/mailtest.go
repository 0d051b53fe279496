// Package mailtest runs a local SMTP receiver for tests (emersion's
// go-smtp server): it listens on 127.0.0.1, keeps every message it
// accepts, and can insist on a user name and password.
package mailtest

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one accepted mail.
type Message struct {
	From string
	To   []string
	// Data is the message as sent: headers and body.
	Data string
	// User is who authenticated, if anyone did.
	User string
}

// Receiver is a running SMTP receiver.
type Receiver struct {
	// Addr is host:port to send to.
	Addr string
	mu   sync.Mutex
	msgs []Message
	user string
	pass string
}

// Start runs a receiver until the test ends. With user set, it asks for
// AUTH PLAIN with user and pass (allowed without TLS: it is local).
func Start(t testing.TB, user, pass string) *Receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{Addr: ln.Addr().String(), user: user, pass: pass}
	s := smtp.NewServer(backend{r})
	s.Domain = "localhost"
	s.AllowInsecureAuth = true
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return r
}

// Messages returns the messages accepted so far.
func (r *Receiver) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}

type backend struct{ r *Receiver }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{r: b.r}, nil }

type session struct {
	r    *Receiver
	m    Message
	user string
}

var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}

func (s *session) AuthMechanisms() []string {
	if s.r.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.r.user || pass != s.r.pass {
			return errors.New("invalid credentials")
		}
		s.user = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.r.user != "" && s.user == "" {
		return errAuthRequired
	}
	s.m = Message{From: from, User: s.user}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.m.To = append(s.m.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.Data = string(b)
	s.r.mu.Lock()
	s.r.msgs = append(s.r.msgs, s.m)
	s.r.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.m = Message{} }
func (s *session) Logout() error { return nil }

package session_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"keyward/db"
	"keyward/db/dbtest"
	"keyward/web/session"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

func newStore(t *testing.T, secure bool) *session.Store {
	return session.New(db.NewStore(dbtest.New(t)).Queries, []byte("0123456789abcdef0123456789abcdef"), secure, time.Now)
}

// saved starts a session holding one value, saves it and returns the
// cookie the response set.
func saved(t *testing.T, s *session.Store) *http.Cookie {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "https://portal.example/login", nil)
	sess, err := s.Get(req, session.CookieName)
	if err != nil {
		t.Fatal(err)
	}
	sess.Values["k"] = "v"
	rec := httptest.NewRecorder()
	if err := sess.Save(req, rec); err != nil {
		t.Fatal(err)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("Save set %d cookies: %v", len(cookies), cookies)
	}
	return cookies[0]
}

// loads reports whether a request carrying cookie finds the session.
func loads(t *testing.T, s *session.Store, cookie *http.Cookie) bool {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "https://portal.example/account", nil)
	req.AddCookie(cookie)
	sess, err := s.Get(req, session.CookieName)
	if err != nil {
		t.Fatal(err)
	}
	return !sess.IsNew && sess.Values["k"] == "v"
}

// In production the session cookie is __Host-kw_session, with what the
// prefix demands (Secure, Path=/, no Domain); a cookie of the bare name,
// as a sibling subdomain or a plain-HTTP page could plant, is no session.
// Development keeps kw_session, which plain http://localhost can set.
func TestSessionCookieName(t *testing.T) {
	prod := newStore(t, true)
	c := saved(t, prod)
	if c.Name != "__Host-kw_session" || prod.CookieName() != c.Name || !c.Secure || c.Path != "/" || c.Domain != "" || !c.HttpOnly {
		t.Fatalf("production session cookie: %+v", c)
	}
	if !loads(t, prod, c) {
		t.Fatal("the production store does not read its own cookie back")
	}
	bare := *c
	bare.Name = "kw_session"
	if loads(t, prod, &bare) {
		t.Error("the production store took a session from a cookie without the __Host- prefix")
	}

	dev := newStore(t, false)
	c = saved(t, dev)
	if c.Name != "kw_session" || dev.CookieName() != c.Name || c.Secure {
		t.Fatalf("development session cookie: %+v", c)
	}
	if !loads(t, dev, c) {
		t.Fatal("the development store does not read its own cookie back")
	}
}

// Package session is a gorilla/sessions Store that keeps portal sessions in
// Postgres. The cookie carries only a signed random id; the row is keyed by
// the id's SHA-256, so neither a cookie jar nor a database dump alone gives
// a usable session. Sessions end after an idle timeout, after an absolute
// lifetime, at logout, and when the user is disabled. It must not import
// echo.
package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/gob"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"keyward/db"
	"keyward/web/audit"
)

// CookieName is the portal's session cookie, as callers name it. A Store
// with Secure set sends it as __Host-kw_session (Store.CookieName).
const CookieName = "kw_session"

// Keys of the values kept in a session.
const (
	KeyUserID = "uid" // int64: password checked
	KeyMFA    = "mfa" // bool: second factor checked too
	// KeyPendingTOTP holds the unconfirmed enrolment secret, encrypted.
	KeyPendingTOTP = "pending_totp"
	// KeyFlash holds the confirmation of the last change, with the path of
	// the page that shows it: "path\x00message".
	KeyFlash = "flash"
)

// Store implements sessions.Store.
type Store struct {
	Queries *db.Queries
	// Idle ends a session not used for this long; Absolute ends it this long
	// after it was issued, used or not.
	Idle, Absolute time.Duration
	Secure         bool
	// Now is the application's clock.
	Now func() time.Time
	// Origin, when set, says where a request comes from (client address
	// and user agent); a new session row keeps it, for the account page.
	Origin func(r *http.Request) (ip, userAgent string)
	codec  *securecookie.SecureCookie
}

// New returns a store whose cookies are signed with hashKey.
func New(q *db.Queries, hashKey []byte, secure bool, now func() time.Time) *Store {
	codec := securecookie.New(hashKey, nil)
	// The cookie only names the row; the row's times decide, on the
	// application's clock. securecookie's own age check would read the
	// machine's clock instead.
	codec.MaxAge(0)
	return &Store{Queries: q, Idle: 30 * time.Minute, Absolute: 12 * time.Hour, Secure: secure, Now: now, codec: codec}
}

// Get returns the request's session, cached for the rest of the request.
func (s *Store) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(s, s.cookieName(name))
}

// CookieName is the session cookie's name as browsers see it.
func (s *Store) CookieName() string { return s.cookieName(CookieName) }

// cookieName is the name a cookie called name goes by. With Secure
// (production) it carries the __Host- prefix, like the CSRF cookie: a
// browser then takes it only from an HTTPS page, with Path=/ and no
// Domain, so a sibling subdomain or a plain-HTTP page cannot plant a
// session id (fixation) or overwrite the cookie. Development keeps the
// bare name, which plain http://localhost can set.
func (s *Store) cookieName(name string) string {
	if s.Secure && !strings.HasPrefix(name, "__Host-") {
		return "__Host-" + name
	}
	return name
}

// New loads the session named by the request's cookie, or returns a new,
// empty one when there is none or it has ended.
func (s *Store) New(r *http.Request, name string) (*sessions.Session, error) {
	name = s.cookieName(name)
	sess := sessions.NewSession(s, name)
	sess.Options = s.options()
	sess.IsNew = true
	c, err := r.Cookie(name)
	if err != nil {
		return sess, nil
	}
	var id string
	if err := s.codec.Decode(name, c.Value, &id); err != nil {
		return sess, nil // a forged or stale cookie is simply no session
	}
	ctx := r.Context()
	now := s.Now()
	row, err := s.Queries.GetSession(ctx, db.GetSessionParams{IDHash: hashID(id), Now: now})
	if errors.Is(err, db.ErrNotFound) {
		return sess, nil
	}
	if err != nil {
		return sess, err
	}
	if now.Sub(row.LastSeenAt) > s.Idle {
		return sess, s.Queries.DeleteSession(ctx, row.IDHash)
	}
	if err := gob.NewDecoder(bytes.NewReader(row.Data)).Decode(&sess.Values); err != nil {
		return sess, nil
	}
	// Mark activity at most once a minute: the idle timeout needs no finer
	// grain, and most requests then write nothing.
	if now.Sub(row.LastSeenAt) > time.Minute {
		if err := s.Queries.TouchSession(ctx, db.TouchSessionParams{IDHash: row.IDHash, Now: now}); err != nil {
			return sess, err
		}
	}
	sess.ID = id
	sess.IsNew = false
	return sess, nil
}

// Save writes the session and its cookie. A session with MaxAge < 0 is
// deleted, server-side first.
func (s *Store) Save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	return s.save(r, w, sess, time.Time{}, time.Time{})
}

// save is Save. A session without an id gets a new row, created at
// created and ending at expires, or, where they are zero, now and after
// the absolute lifetime.
func (s *Store) save(r *http.Request, w http.ResponseWriter, sess *sessions.Session, created, expires time.Time) error {
	ctx := r.Context()
	if sess.Options.MaxAge < 0 {
		if sess.ID != "" {
			if err := s.Queries.DeleteSession(ctx, hashID(sess.ID)); err != nil {
				return err
			}
		}
		http.SetCookie(w, sessions.NewCookie(sess.Name(), "", sess.Options))
		return nil
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(sess.Values); err != nil {
		return err
	}
	var uid *int64
	if v, ok := sess.Values[KeyUserID].(int64); ok {
		uid = &v
	}
	now := s.Now()
	if sess.ID == "" {
		if created.IsZero() {
			created = now
		}
		if expires.IsZero() {
			expires = now.Add(s.Absolute)
		}
		sess.ID = newID()
		var ip, ua string
		if s.Origin != nil {
			ip, ua = s.Origin(r)
		}
		if err := s.Queries.InsertSession(ctx, db.InsertSessionParams{
			IDHash: hashID(sess.ID), UserID: uid, Data: buf.Bytes(),
			CreatedAt: created, LastSeenAt: now, ExpiresAt: expires,
			Ip: audit.CleanText(ip, 64), UserAgent: audit.CleanText(ua, 512),
		}); err != nil {
			return err
		}
	} else if err := s.Queries.UpdateSession(ctx, db.UpdateSessionParams{
		IDHash: hashID(sess.ID), UserID: uid, Data: buf.Bytes(), LastSeenAt: now,
	}); err != nil {
		return err
	}
	encoded, err := s.codec.Encode(sess.Name(), sess.ID)
	if err != nil {
		return err
	}
	http.SetCookie(w, sessions.NewCookie(sess.Name(), encoded, sess.Options))
	return nil
}

// Renew gives the session a new id and a new absolute lifetime, deleting
// the old row, so an id planted before sign-in is worthless after it
// (session fixation). Sign-in calls it.
func (s *Store) Renew(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	if sess.ID != "" {
		if err := s.Queries.DeleteSession(r.Context(), hashID(sess.ID)); err != nil {
			return err
		}
	}
	sess.ID = ""
	return s.Save(r, w, sess)
}

// Rotate gives the session a new id but keeps its lifetime: the new id
// ends when the old one would have, the absolute lifetime still counted
// from sign-in. A password change rotates, so that a copy of the old
// cookie is worthless, without letting whoever holds the session extend
// it by changing the password. A session whose row is already gone stays
// ended.
func (s *Store) Rotate(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	ctx := r.Context()
	now := s.Now()
	created, expires := now, now
	if sess.ID != "" {
		old := hashID(sess.ID)
		row, err := s.Queries.GetSession(ctx, db.GetSessionParams{IDHash: old, Now: now})
		switch {
		case err == nil:
			created, expires = row.CreatedAt, row.ExpiresAt
		case !errors.Is(err, db.ErrNotFound):
			return err
		}
		if err := s.Queries.DeleteSession(ctx, old); err != nil {
			return err
		}
	}
	sess.ID = ""
	return s.save(r, w, sess, created, expires)
}

// Destroy ends the session server-side and clears the cookie.
func (s *Store) Destroy(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	sess.Options.MaxAge = -1
	return s.Save(r, w, sess)
}

// Hash is the stored form of a session's id.
func Hash(sess *sessions.Session) []byte {
	if sess.ID == "" {
		return nil
	}
	return hashID(sess.ID)
}

// DeleteExpired removes sessions past their lifetime or idle timeout.
func (s *Store) DeleteExpired(ctx context.Context) (int64, error) {
	now := s.Now()
	return s.Queries.DeleteExpiredSessions(ctx, db.DeleteExpiredSessionsParams{Now: now, IdleBefore: now.Add(-s.Idle)})
}

func (s *Store) options() *sessions.Options {
	// MaxAge 0: a browser-session cookie; the server enforces the lifetimes.
	return &sessions.Options{Path: "/", HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteLaxMode}
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashID(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

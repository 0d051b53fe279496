package auth

import (
	"bytes"
	"context"
	"time"

	"keyward/db"
	"keyward/web/audit"
	"keyward/web/errs"
	"keyward/web/mfa"
)

// Account security: the user's own sessions, recovery codes and
// authenticator.

// SessionInfo is one of the user's active sessions.
type SessionInfo struct {
	CreatedAt  time.Time
	LastSeenAt time.Time
	IP         string
	UserAgent  string
	// Current marks the session of the request that asked.
	Current bool
}

// Sessions lists the caller's sessions that have not ended (idle ones
// ended after idle), most recently used first. current is the hash of the
// asking session.
func (s *Service) Sessions(ctx context.Context, by Caller, current []byte, idle time.Duration) ([]SessionInfo, error) {
	now := s.Now()
	rows, err := s.Store.ListUserSessions(ctx, db.ListUserSessionsParams{UserID: &by.User.ID, Now: now, IdleBefore: now.Add(-idle)})
	if err != nil {
		return nil, err
	}
	out := make([]SessionInfo, len(rows))
	for i, r := range rows {
		out[i] = SessionInfo{CreatedAt: r.CreatedAt, LastSeenAt: r.LastSeenAt, IP: r.Ip, UserAgent: r.UserAgent,
			Current: bytes.Equal(r.IDHash, current)}
	}
	return out, nil
}

// EndOtherSessions signs the caller out everywhere but the session keep
// (its hash), records user.sessions_ended and returns how many ended.
func (s *Service) EndOtherSessions(ctx context.Context, by Caller, keep []byte) (int64, error) {
	var n int64
	err := s.Store.InTx(ctx, func(q *db.Queries) error {
		var err error
		if n, err = q.EndOtherSessions(ctx, db.EndOtherSessionsParams{UserID: &by.User.ID, Keep: keep}); err != nil {
			return err
		}
		return audit.Record(ctx, q, s.Audit, s.Now(), by.Actor().Event("user.sessions_ended", "user", by.Actor().ID, map[string]int64{"sessions_ended": n}))
	})
	return n, err
}

// RegenerateRecoveryCodes replaces the caller's recovery codes, confirmed
// with a current code (a recovery code works too, and is then replaced
// with the rest), and returns the new set, to be shown once.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, by Caller, code string) ([]string, error) {
	var codes []string
	err := s.Confirm(ctx, by, code, func(q *db.Queries, now time.Time) error {
		var err error
		if codes, err = s.MFA.RegenerateRecoveryCodes(ctx, q, by.User.ID); err != nil {
			return err
		}
		return audit.Record(ctx, q, s.Audit, now, by.Actor().Event("auth.mfa.recovery_codes_regenerated", "user", by.Actor().ID,
			map[string]int{"recovery_codes": len(codes)}))
	})
	return codes, err
}

// ReplaceWindow is how long the new authenticator of a replacement may
// take to be confirmed once the current code was accepted.
const ReplaceWindow = 10 * time.Minute

// Replacement is an authenticator replacement under way: the new secret,
// sealed for the user, and when the chance to confirm it ends.
type Replacement struct {
	Sealed string
	Until  time.Time
}

// StartReplacement checks a current code of the caller (authenticator or
// recovery code) and returns a new secret to enrol, good for
// ReplaceWindow. Nothing changes until ConfirmReplacement.
func (s *Service) StartReplacement(ctx context.Context, by Caller, code string) (Replacement, error) {
	var r Replacement
	err := s.Confirm(ctx, by, code, func(q *db.Queries, now time.Time) error {
		_, sealed, err := s.PendingEnrolment(by, "")
		r = Replacement{Sealed: sealed, Until: now.Add(ReplaceWindow)}
		return err
	})
	return r, err
}

// ReplacementEnrolment is what the page shows of a replacement under way:
// the QR code and secret, the same on every reload.
func (s *Service) ReplacementEnrolment(by Caller, r Replacement) (mfa.Enrolment, error) {
	secret, ok := s.openPending(by, r.Sealed)
	if !ok || !s.Now().Before(r.Until) {
		return mfa.Enrolment{}, errReplacementEnded
	}
	return s.MFA.EnrolmentFor(by.User.Email, secret)
}

var errReplacementEnded = errs.New(errs.Invalid, "",
	"The time to set up the new authenticator has run out: start again with a code from your current one.")

// ConfirmReplacement stores the replacement's secret once a code from it
// matches, ends the user's other sessions (keepSession is the current
// one's hash: an authenticator is replaced when the old one may be in
// someone else's hands) and records auth.mfa.replaced. The old
// authenticator stops working at once; recovery codes stay as they are.
func (s *Service) ConfirmReplacement(ctx context.Context, by Caller, r Replacement, code string, keepSession []byte) error {
	secret, ok := s.openPending(by, r.Sealed)
	if !ok || !s.Now().Before(r.Until) {
		return errReplacementEnded
	}
	step, err := s.MFA.CheckEnrolmentCode(secret, code)
	if err != nil {
		const msg = "That code does not match the new authenticator. Check that your device's clock is right and enter the code your app shows now."
		return &errs.Error{Kind: errs.Unauthorized, Code: errs.CodeInvalidCode, Message: msg, Fields: []errs.Field{{Name: "code", Message: msg}}}
	}
	return s.Store.InTx(ctx, func(q *db.Queries) error {
		if err := s.MFA.Replace(ctx, q, by.User.ID, secret, step); err != nil {
			return err
		}
		if err := q.DeleteUserSessionsExcept(ctx, db.DeleteUserSessionsExceptParams{UserID: &by.User.ID, IDHash: keepSession}); err != nil {
			return err
		}
		return audit.Record(ctx, q, s.Audit, s.Now(), by.Actor().Event("auth.mfa.replaced", "user", by.Actor().ID, nil))
	})
}

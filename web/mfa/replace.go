package mfa

import (
	"context"

	"keyward/db"
)

// RegenerateRecoveryCodes replaces every recovery code of the user, used
// or not, with a fresh set in q's transaction, and returns the new codes
// to show once.
func (s *Service) RegenerateRecoveryCodes(ctx context.Context, q *db.Queries, userID int64) ([]string, error) {
	return s.issueRecoveryCodes(ctx, q, userID)
}

// Replace stores a confirmed new secret in place of an enrolled user's
// current one, in q's transaction. step is the new secret's confirming
// time step; it is spent, like any accepted step. ErrNotEnrolled means
// the user has no authenticator to replace (it was reset meanwhile).
func (s *Service) Replace(ctx context.Context, q *db.Queries, userID int64, secret string, step int64) error {
	sealed, err := s.Encrypt(userID, secret)
	if err != nil {
		return err
	}
	n, err := q.ReplaceUserTOTP(ctx, db.ReplaceUserTOTPParams{ID: userID, TotpSecretEnc: sealed, TotpLastStep: step})
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotEnrolled
	}
	return nil
}

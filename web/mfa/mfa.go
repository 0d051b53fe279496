// Package mfa owns TOTP (RFC 6238) and recovery codes: it generates and
// encrypts secrets, verifies codes with replay protection, and issues and
// redeems single-use recovery codes. It never logs or returns a stored
// secret except to the enrolment page, and it must not import echo.
package mfa

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"keyward/db"
	"keyward/web/errs"
	"keyward/web/keyring"
)

// Errors of the second factor, with the words a person sees.
var (
	ErrInvalidCode = &errs.Error{Kind: errs.Unauthorized, Code: errs.CodeInvalidCode,
		Message: "That code is not valid. Enter the current 6-digit code from your app, or an unused recovery code.",
		Fields:  []errs.Field{{Name: "code", Message: "That code is not valid. Enter the current 6-digit code from your app, or an unused recovery code."}}}
	ErrReplayed = &errs.Error{Kind: errs.Unauthorized, Code: errs.CodeInvalidCode,
		Message: "That code was already used. Wait for your app to show the next code.",
		Fields:  []errs.Field{{Name: "code", Message: "That code was already used. Wait for your app to show the next code."}}}
	ErrNotEnrolled = errs.New(errs.Forbidden, "", "Two-factor authentication is not set up: set it up first.")
	// ErrAlreadyEnrolled: another tab confirmed enrolment first.
	ErrAlreadyEnrolled = errs.New(errs.Conflict, "", "Two-factor authentication is already set up.")
)

const (
	period = 30
	// skew is how many 30-second steps either side of now are accepted.
	skew = 1
	// RecoveryCodeCount is how many codes enrolment issues.
	RecoveryCodeCount = 10
)

var validateOpts = totp.ValidateOpts{Period: period, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// Service verifies and enrols.
type Service struct {
	sealer *keyring.Sealer
	recKey []byte
	issuer string
	// Now is the clock codes are checked against; tests move it.
	Now func() time.Time
}

// New builds a Service. encKey (32 bytes) encrypts secrets with AES-256-GCM;
// recoveryKey keys the HMAC that stores recovery codes; issuer names the
// account in authenticator apps.
func New(encKey, recoveryKey []byte, issuer string) (*Service, error) {
	sealer, err := keyring.NewSealer(encKey)
	if err != nil {
		return nil, err
	}
	return &Service{sealer: sealer, recKey: recoveryKey, issuer: issuer, Now: time.Now}, nil
}

// Enrolment is a secret that the user has not confirmed yet.
type Enrolment struct {
	Secret string // base32, shown on the enrolment page
	URL    string // otpauth:// URL, for the QR code
}

// NewEnrolment makes a fresh 160-bit secret for account.
func (s *Service) NewEnrolment(account string) (Enrolment, error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: s.issuer, AccountName: account, Period: period,
		SecretSize: 20, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return Enrolment{}, err
	}
	return Enrolment{Secret: key.Secret(), URL: key.URL()}, nil
}

// EnrolmentFor rebuilds the enrolment for a pending secret (the page is
// shown again after a wrong code).
func (s *Service) EnrolmentFor(account, secret string) (Enrolment, error) {
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		return Enrolment{}, fmt.Errorf("mfa: pending secret: %w", err)
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: s.issuer, AccountName: account, Period: period,
		Secret: raw, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return Enrolment{}, err
	}
	return Enrolment{Secret: key.Secret(), URL: key.URL()}, nil
}

// Encrypt seals a secret for storage, bound to the user id so a ciphertext
// copied to another user's row does not decrypt.
func (s *Service) Encrypt(userID int64, secret string) ([]byte, error) {
	return s.sealer.Seal([]byte(secret), aad(userID)), nil
}

// Decrypt opens a stored secret.
func (s *Service) Decrypt(userID int64, sealed []byte) (string, error) {
	plain, err := s.sealer.Open(sealed, aad(userID))
	if err != nil {
		return "", fmt.Errorf("mfa: decrypt secret: %w", err)
	}
	return string(plain), nil
}

func aad(userID int64) []byte { return []byte("user:" + strconv.FormatInt(userID, 10)) }

// matchStep returns the time step within ±skew whose code equals code.
// Every candidate is compared, in constant time, so timing does not tell
// which step matched.
func (s *Service) matchStep(secret, code string) (int64, bool) {
	code = strings.TrimSpace(code)
	if len(code) != 6 {
		return 0, false
	}
	now := s.Now().Unix() / period
	var found int64
	ok := false
	for step := now - skew; step <= now+skew; step++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*period, 0), validateOpts)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			found, ok = step, true
		}
	}
	return found, ok
}

// CheckEnrolmentCode checks a code against a pending secret and returns
// its time step, which becomes the user's first accepted step.
func (s *Service) CheckEnrolmentCode(secret, code string) (int64, error) {
	step, ok := s.matchStep(secret, code)
	if !ok {
		return 0, ErrInvalidCode
	}
	return step, nil
}

// Confirm stores the confirmed secret and fresh recovery codes for the user
// using q (the caller's transaction) and returns the codes to show once.
func (s *Service) Confirm(ctx context.Context, q *db.Queries, userID int64, secret string, step int64) ([]string, error) {
	sealed, err := s.Encrypt(userID, secret)
	if err != nil {
		return nil, err
	}
	n, err := q.EnrollUserTOTP(ctx, db.EnrollUserTOTPParams{ID: userID, TotpSecretEnc: sealed, TotpLastStep: step})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, ErrAlreadyEnrolled
	}
	return s.issueRecoveryCodes(ctx, q, userID)
}

func (s *Service) issueRecoveryCodes(ctx context.Context, q *db.Queries, userID int64) ([]string, error) {
	if err := q.DeleteRecoveryCodes(ctx, userID); err != nil {
		return nil, err
	}
	codes := make([]string, RecoveryCodeCount)
	for i := range codes {
		codes[i] = newRecoveryCode()
		if err := q.CreateRecoveryCode(ctx, db.CreateRecoveryCodeParams{UserID: userID, CodeHash: s.hashRecovery(codes[i])}); err != nil {
			return nil, err
		}
	}
	return codes, nil
}

// Verify accepts a TOTP code or an unused recovery code for user, and burns
// what it accepts: the TOTP step can never be used again, nor the recovery
// code. It returns ErrReplayed for a TOTP code from a step already accepted,
// ErrInvalidCode otherwise. usedRecovery tells the caller which kind passed.
func (s *Service) Verify(ctx context.Context, q *db.Queries, u db.User, code string) (usedRecovery bool, err error) {
	if u.TotpEnrolledAt == nil || u.TotpSecretEnc == nil {
		return false, ErrNotEnrolled
	}
	code = strings.TrimSpace(code)
	if isTOTPShape(code) {
		secret, err := s.Decrypt(u.ID, u.TotpSecretEnc)
		if err != nil {
			return false, err
		}
		step, ok := s.matchStep(secret, code)
		if !ok {
			return false, ErrInvalidCode
		}
		n, err := q.AdvanceUserTOTPStep(ctx, db.AdvanceUserTOTPStepParams{ID: u.ID, TotpLastStep: step})
		if err != nil {
			return false, err
		}
		if n == 0 {
			return false, ErrReplayed
		}
		return false, nil
	}
	norm, ok := normalizeRecovery(code)
	if !ok {
		return false, ErrInvalidCode
	}
	n, err := q.UseRecoveryCode(ctx, db.UseRecoveryCodeParams{UserID: u.ID, CodeHash: s.hashRecovery(norm)})
	if err != nil {
		return false, err
	}
	if n == 0 {
		return true, ErrInvalidCode
	}
	return true, nil
}

func isTOTPShape(code string) bool {
	if len(code) != 6 {
		return false
	}
	for _, r := range code {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Recovery codes are 10 characters of a 32-letter alphabet without look-alike
// characters (50 bits), shown as xxxxx-xxxxx
// (Crockford's base32 alphabet: no i, l, o or u).
const recoveryAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

func newRecoveryCode() string {
	b := make([]byte, 10)
	rand.Read(b) // crypto/rand.Read never fails
	for i := range b {
		b[i] = recoveryAlphabet[int(b[i])%32]
	}
	return string(b[:5]) + "-" + string(b[5:])
}

// normalizeRecovery lower-cases and drops separators and spaces, so a code
// typed as "ABCDE FGHIJ" still matches.
func normalizeRecovery(code string) (string, bool) {
	var sb strings.Builder
	for _, r := range strings.ToLower(code) {
		switch {
		case r == '-' || r == ' ':
		case strings.ContainsRune(recoveryAlphabet, r):
			sb.WriteRune(r)
		default:
			return "", false
		}
	}
	s := sb.String()
	if len(s) != 10 {
		return "", false
	}
	return s[:5] + "-" + s[5:], true
}

func (s *Service) hashRecovery(code string) []byte {
	m := hmac.New(sha256.New, s.recKey)
	m.Write([]byte(code))
	return m.Sum(nil)
}

// CodeFor returns the current code of a secret. Tests and the demo use it;
// the portal never does.
func CodeFor(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, validateOpts)
}

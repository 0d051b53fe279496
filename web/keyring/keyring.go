// Package keyring derives one key per purpose from KEYWARD_SECRET_KEY, so the
// key that encrypts TOTP secrets is never the one that signs cookies, and
// seals secrets kept in the database with those keys (Sealer). It owns no
// storage and knows nothing of HTTP.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// MinSecretLen is the shortest secret key accepted: 32 bytes, as a 256-bit
// key needs.
const MinSecretLen = 32

// Purposes. Each one yields an unrelated 32-byte key.
const (
	PurposeTOTP         = "keyward totp-secret aes-gcm v1"
	PurposeCookie       = "keyward cookie hmac v1"
	PurposeRecoveryCode = "keyward recovery-code hmac v1"
	// PurposeAuditChain keys the HMAC-SHA256 of every audit event.
	PurposeAuditChain = "keyward audit-chain hmac v1"
	// PurposeAuditCheckpoint is the seed of the Ed25519 key that signs
	// audit checkpoints: the same secret always gives the same key pair,
	// so checkpoints stay verifiable across restarts and instances.
	PurposeAuditCheckpoint = "keyward audit-checkpoint ed25519 v1"
	// PurposeWebhookSecret seals webhook endpoints' signing secrets
	// (AES-GCM): deliveries need them in the clear to sign.
	PurposeWebhookSecret = "keyward webhook-secret aes-gcm v1"
	// PurposeWebhookURL keys the fingerprints that name webhook URLs in
	// the audit trail without their tokens.
	PurposeWebhookURL = "keyward webhook-url-fingerprint hmac v1"
)

// Ring holds the master secret.
type Ring struct{ secret []byte }

// ErrWeakSecret is returned for a secret key shorter than MinSecretLen.
var ErrWeakSecret = errors.New("secret key must be at least 32 bytes (generate one with: openssl rand -hex 32)")

// New checks the master secret's length and returns a Ring.
func New(secret []byte) (*Ring, error) {
	if len(secret) < MinSecretLen {
		return nil, ErrWeakSecret
	}
	return &Ring{secret: append([]byte(nil), secret...)}, nil
}

// Key returns the 32-byte key for purpose.
func (r *Ring) Key(purpose string) []byte {
	k, err := hkdf.Key(sha256.New, r.secret, nil, purpose, 32)
	if err != nil {
		// Only possible for a length hkdf cannot produce; 32 always works.
		panic(err)
	}
	return k
}

// Sealer encrypts small secrets for storage with AES-256-GCM under one of
// the ring's keys, each bound to what it belongs to (its associated data:
// a user, an endpoint), so a sealed value copied onto another row does not
// open. A sealed value is the nonce followed by the ciphertext.
type Sealer struct{ aead cipher.AEAD }

// NewSealer makes a Sealer from a 32-byte key of the ring.
func NewSealer(key []byte) (*Sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plain, bound to boundTo.
func (s *Sealer) Seal(plain, boundTo []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce) // never fails (Go 1.24+)
	return s.aead.Seal(nonce, nonce, plain, boundTo)
}

// ErrUnsealable: a sealed value that does not open with this key and
// binding (another key, another row, or damaged).
var ErrUnsealable = errors.New("keyring: the sealed value does not open")

// Open decrypts what Seal made with the same key and boundTo.
func (s *Sealer) Open(sealed, boundTo []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < ns {
		return nil, ErrUnsealable
	}
	plain, err := s.aead.Open(nil, sealed[:ns], sealed[ns:], boundTo)
	if err != nil {
		return nil, ErrUnsealable
	}
	return plain, nil
}

package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// argon2id parameters: OWASP's and ASVS 5.0's floor for argon2id is 19 MiB of
// memory, 2 passes, 1 lane. The parameters are stored with each hash, so they
// can be raised later without breaking old hashes.
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16
)

// Password length limits (ASVS 5.0 V6.2: at least 8, 15 recommended; at
// least 64 allowed). Any character is allowed, and nothing is truncated.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

var b64 = base64.RawStdEncoding

// ValidatePassword checks a new password against the policy.
func ValidatePassword(pw, email string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case n < MinPasswordLen:
		return policy("new_password", "The password must have at least %d characters.", MinPasswordLen)
	case n > MaxPasswordLen:
		return policy("new_password", "The password must have at most %d characters.", MaxPasswordLen)
	case email != "" && strings.EqualFold(pw, email):
		return policy("new_password", "The password must not be your email address.")
	}
	return nil
}

// HashPassword returns an argon2id hash in the PHC string format.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword reports whether pw matches the PHC-encoded hash, comparing
// in constant time.
func CheckPassword(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var mem, iter uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iter, &threads); err != nil {
		return false
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, iter, mem, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is checked when an email is unknown, so a sign-in for an unknown
// account takes as long as one for a known account. It has the real
// parameters and an all-zero key no password derives, and costs nothing
// to build: no argon2 runs at import time.
var dummyHash = fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
	b64.EncodeToString(make([]byte, saltLen)), b64.EncodeToString(make([]byte, argonKeyLen)))

// GeneratePassword returns a random one-time password: 26 base32
// characters, 128 bits.
func GeneratePassword() string { return rand.Text() }

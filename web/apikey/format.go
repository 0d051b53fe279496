// Package apikey owns API keys as values: their format, checksum, hashing
// and display prefix. Parsing rejects a malformed key or a bad checksum
// before anything asks the database. The full key exists only in the
// response that reveals it once: what is stored is its SHA-256 and a
// non-secret prefix. It must not import echo.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"strings"
)

// Environment partitions a tenant's keys and data.
type Environment string

// The environments, and the token each one puts in its keys.
const (
	Production  Environment = "production"
	Staging     Environment = "staging"
	Development Environment = "development"
)

var envTokens = map[Environment]string{Production: "prod", Staging: "stag", Development: "dev"}

// Token is the environment's part of the key, e.g. "prod".
func (e Environment) Token() string { return envTokens[e] }

// Valid reports whether e is one of the three environments.
func (e Environment) Valid() bool { _, ok := envTokens[e]; return ok }

const (
	brand = "kw"
	// randomLen base62 characters carry 27 × log2(62) ≈ 160.8 bits.
	randomLen   = 27
	checksumLen = 6 // 62^6 > 2^32: any CRC32 fits
	// PrefixLen is how many random characters the display prefix shows.
	PrefixLen = 8
	alphabet  = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// Errors from Parse. Both mean "invalid API key" to a caller.
var (
	ErrMalformed = errors.New("apikey: malformed key")
	ErrChecksum  = errors.New("apikey: checksum mismatch")
)

// Generate returns a new full key for env: kw_<env>_<random><checksum>.
func Generate(env Environment) (string, error) {
	if !env.Valid() {
		return "", errors.New("apikey: unknown environment " + string(env))
	}
	body := brand + "_" + env.Token() + "_" + randomBase62(randomLen)
	return body + checksum(body), nil
}

// Parsed is a key that passed the format and checksum checks. It says
// nothing of whether the key exists.
type Parsed struct {
	Full string
	// Env is what the key claims; the stored key row is the authority.
	Env Environment
}

// Parse checks a presented key's shape and checksum, in that order, and
// touches nothing else.
func Parse(key string) (Parsed, error) {
	rest, ok := strings.CutPrefix(key, brand+"_")
	if !ok {
		return Parsed{}, ErrMalformed
	}
	token, tail, ok := strings.Cut(rest, "_")
	if !ok || len(tail) != randomLen+checksumLen || !isBase62(tail) {
		return Parsed{}, ErrMalformed
	}
	var env Environment
	for e, t := range envTokens {
		if t == token {
			env = e
		}
	}
	if env == "" {
		return Parsed{}, ErrMalformed
	}
	body := key[:len(key)-checksumLen]
	var sum [checksumLen]byte
	checksumInto(&sum, body)
	if string(sum[:]) != key[len(key)-checksumLen:] { // not a secret: a typo check
		return Parsed{}, ErrChecksum
	}
	return Parsed{Full: key, Env: env}, nil
}

// Hash is what the database stores and looks keys up by.
func Hash(key string) []byte {
	h := hashKey(key)
	return h[:]
}

// maxKeyLen bounds the keys hashed without an allocation; every key this
// package makes is shorter.
const maxKeyLen = 64

// hashKey is SHA-256 of key, through a stack buffer for keys of our size.
func hashKey(key string) [32]byte {
	if len(key) > maxKeyLen {
		return sha256.Sum256([]byte(key))
	}
	var buf [maxKeyLen]byte
	n := copy(buf[:], key)
	return sha256.Sum256(buf[:n])
}

// DisplayPrefix is the non-secret part shown in lists and logs:
// "kw_prod_" and the first PrefixLen random characters.
func DisplayPrefix(p Parsed) string {
	head := brand + "_" + p.Env.Token() + "_"
	return head + p.Full[len(head):len(head)+PrefixLen]
}

func checksum(body string) string {
	var out [checksumLen]byte
	checksumInto(&out, body)
	return string(out[:])
}

// checksumInto writes body's CRC32 (IEEE) in base62. It walks the
// standard library's table over the string itself: crc32.ChecksumIEEE would
// need a []byte copy of every presented key on the heap.
func checksumInto(out *[checksumLen]byte, body string) {
	n := ^uint32(0)
	for i := 0; i < len(body); i++ {
		n = crc32.IEEETable[byte(n)^body[i]] ^ n>>8
	}
	n = ^n
	for i := checksumLen - 1; i >= 0; i-- {
		out[i] = alphabet[n%62]
		n /= 62
	}
}

// randomBase62 draws n characters uniformly: bytes ≥ 248 are rejected so
// that every character is equally likely (248 = 4 × 62).
func randomBase62(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4)
	for len(out) < n {
		rand.Read(buf) // crypto/rand.Read never fails
		for _, b := range buf {
			if b < 248 && len(out) < n {
				out = append(out, alphabet[b%62])
			}
		}
	}
	return string(out)
}

func isBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

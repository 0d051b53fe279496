// Package secretscan speaks the protocol of GitHub's secret scanning partner
// program, and reads the public report route's body too. It owns the
// partner's public keys (the JSON file GitHub publishes them in), the check
// of a report's signature (ECDSA P-256 over SHA-256 of the raw body), the
// parsing of both kinds of report, and the partner's answer (one label per
// token, by the token's SHA-256, never the token itself). It knows nothing
// of Keyward's keys (web/apikey acts on the tokens) nor of HTTP (web/api
// hands it bytes and header values); it must not import echo.
package secretscan

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"keyward/web/errs"
)

// The headers a partner report carries, as GitHub names them.
const (
	HeaderKeyIdentifier = "Github-Public-Key-Identifier"
	HeaderKeySignature  = "Github-Public-Key-Signature"
)

// KeySet is the partner's public keys by identifier. It is built once, at
// start, and never changed.
type KeySet struct {
	keys map[string]*ecdsa.PublicKey
}

// keysFile is the format GitHub publishes its secret-scanning keys in.
type keysFile struct {
	PublicKeys []struct {
		KeyIdentifier string `json:"key_identifier"`
		Key           string `json:"key"`
		IsCurrent     bool   `json:"is_current"`
	} `json:"public_keys"`
}

// LoadKeys reads the keys file at path (KEYWARD_SECRET_SCANNING_KEYS).
func LoadKeys(path string) (*KeySet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err // names the path
	}
	ks, err := ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ks, nil
}

// ParseKeys reads a keys file: {"public_keys":[{"key_identifier","key"
// (a PEM public key),"is_current"}]}. Every key must be an ECDSA P-256
// key with an identifier of its own; all of them are accepted, current or
// not, since a partner signs with an older key while it rotates.
func ParseKeys(b []byte) (*KeySet, error) {
	var f keysFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("not the JSON of a public keys file: %w", err)
	}
	if len(f.PublicKeys) == 0 {
		return nil, errors.New(`no keys: the file must hold {"public_keys":[{"key_identifier":…,"key":…}]}`)
	}
	ks := &KeySet{keys: make(map[string]*ecdsa.PublicKey, len(f.PublicKeys))}
	for i, k := range f.PublicKeys {
		if k.KeyIdentifier == "" {
			return nil, fmt.Errorf("public_keys[%d] has no key_identifier", i)
		}
		if _, dup := ks.keys[k.KeyIdentifier]; dup {
			return nil, fmt.Errorf("public_keys[%d]: key_identifier %q appears twice", i, k.KeyIdentifier)
		}
		block, _ := pem.Decode([]byte(k.Key))
		if block == nil {
			return nil, fmt.Errorf("public_keys[%d] (%s): key is not a PEM block", i, k.KeyIdentifier)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public_keys[%d] (%s): %w", i, k.KeyIdentifier, err)
		}
		ec, ok := pub.(*ecdsa.PublicKey)
		if !ok || ec.Curve != elliptic.P256() {
			return nil, fmt.Errorf("public_keys[%d] (%s): not an ECDSA P-256 key", i, k.KeyIdentifier)
		}
		ks.keys[k.KeyIdentifier] = ec
	}
	return ks, nil
}

// Len is how many keys the set holds.
func (ks *KeySet) Len() int { return len(ks.keys) }

// Refusals of a partner report's signature: all 401, none says more than
// what to fix.
var (
	ErrNoSignature = errs.New(errs.Unauthorized, errs.CodeUnauthorized,
		"Missing signature: send the "+HeaderKeyIdentifier+" and "+HeaderKeySignature+" headers.")
	ErrUnknownKey = errs.New(errs.Unauthorized, errs.CodeUnauthorized,
		"Unknown "+HeaderKeyIdentifier+": this server does not hold that public key.")
	ErrBadSignature = errs.New(errs.Unauthorized, errs.CodeUnauthorized,
		"The "+HeaderKeySignature+" does not verify the request body.")
)

// Check is what can be refused before the body is read: both headers
// present and the key identifier one of the set's. A report that fails it
// costs the server no body.
func (ks *KeySet) Check(identifier, signature string) error {
	_, err := ks.key(identifier, signature)
	return err
}

func (ks *KeySet) key(identifier, signature string) (*ecdsa.PublicKey, error) {
	identifier, signature = strings.TrimSpace(identifier), strings.TrimSpace(signature)
	if identifier == "" || signature == "" {
		return nil, ErrNoSignature
	}
	pub, ok := ks.keys[identifier]
	if !ok {
		return nil, ErrUnknownKey
	}
	return pub, nil
}

// Verify checks that signature (base64 of an ASN.1 DER ECDSA signature) was
// made over SHA-256 of body, the raw bytes as received, by the key named
// identifier.
func (ks *KeySet) Verify(identifier, signature string, body []byte) error {
	pub, err := ks.key(identifier, signature)
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(signature))
	if err != nil {
		return ErrBadSignature
	}
	digest := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(pub, digest[:], sig) {
		return ErrBadSignature
	}
	return nil
}

// Match is one token of a partner report.
type Match struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// Bounds of a partner report.
const (
	// MaxMatches is the most tokens one report may carry.
	MaxMatches = 1000
	// MaxBody bounds a partner report's body.
	MaxBody = 1 << 20
	// maxTypeLen bounds a token type echoed back in the answer.
	maxTypeLen = 200
)

// ParseReport reads a partner report: a JSON array of {token, type, url,
// source} objects, at most MaxMatches. Fields it does not know are
// ignored (the partner may add some); known ones must be strings.
func ParseReport(body []byte) ([]Match, error) {
	var ms []Match
	if err := decodeOne(body, &ms, false); err != nil {
		return nil, err
	}
	if ms == nil {
		return nil, errs.InvalidField("body", "The body must be a JSON array of {\"token\",\"type\",\"url\",\"source\"} objects.")
	}
	if len(ms) > MaxMatches {
		return nil, errs.InvalidField("body", fmt.Sprintf("A report may carry at most %d tokens; this one has %d: split it.", MaxMatches, len(ms)))
	}
	return ms, nil
}

// PublicReport is the body of the public report route.
type PublicReport struct {
	Keys []string `json:"keys"`
	URL  string   `json:"url"`
	Note string   `json:"note"`
}

// Bounds of a public report.
const (
	MaxPublicKeys = 100
	MaxPublicBody = 64 << 10
	maxPublicURL  = 2000
	maxPublicNote = 500
)

// ParsePublicReport reads {"keys":[…], "url":…, "note":…}: 1 to
// MaxPublicKeys keys, an optional URL and note. Unknown fields are refused,
// so a misspelt one is not silently dropped. Every problem is reported at
// once.
func ParsePublicReport(body []byte) (PublicReport, error) {
	var r PublicReport
	if err := decodeOne(body, &r, true); err != nil {
		return PublicReport{}, err
	}
	var fs errs.Fields
	switch {
	case len(r.Keys) == 0:
		fs.Add("keys", "List the keys you found, as \"keys\": [\"kw_…\"].")
	case len(r.Keys) > MaxPublicKeys:
		fs.Add("keys", fmt.Sprintf("Report at most %d keys at once; this report has %d.", MaxPublicKeys, len(r.Keys)))
	}
	for i := range r.Keys {
		r.Keys[i] = strings.TrimSpace(r.Keys[i])
	}
	if len(r.URL) > maxPublicURL {
		fs.Add("url", fmt.Sprintf("The URL may be at most %d bytes long.", maxPublicURL))
	}
	if len(r.Note) > maxPublicNote {
		fs.Add("note", fmt.Sprintf("The note may be at most %d bytes long.", maxPublicNote))
	}
	if err := fs.Err(); err != nil {
		return PublicReport{}, err
	}
	return r, nil
}

// decodeOne reads exactly one JSON value into v; strict refuses unknown
// fields.
func decodeOne(body []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return errs.InvalidField(te.Field, fmt.Sprintf("%s must be a %s.", te.Field, jsonType(te.Type.String())))
		}
		if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return errs.InvalidField("body", "Unknown field "+msg+".")
		}
		return errs.InvalidField("body", "The body is not valid JSON of the expected shape.")
	}
	if len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) > 0 {
		return errs.InvalidField("body", "The body must hold one JSON value and nothing after it.")
	}
	return nil
}

func jsonType(goType string) string {
	switch {
	case goType == "string":
		return "string"
	case strings.HasPrefix(goType, "[]"):
		return "JSON array"
	}
	return "JSON object"
}

// Labels, as the partner program spells them.
const (
	TruePositive  = "true_positive"
	FalsePositive = "false_positive"
)

// Label is one token's entry in the answer to a partner report. It names
// the token by its SHA-256 (hex), the partner program's hashed form, so
// the answer never carries a secret.
type Label struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

// LabelFor is the answer's entry for m.
func LabelFor(m Match, real bool) Label {
	sum := sha256.Sum256([]byte(m.Token))
	typ := strings.ToValidUTF8(m.Type, "\uFFFD")
	if len(typ) > maxTypeLen {
		typ = strings.ToValidUTF8(typ[:maxTypeLen], "")
	}
	l := Label{TokenHash: hex.EncodeToString(sum[:]), TokenType: typ, Label: FalsePositive}
	if real {
		l.Label = TruePositive
	}
	return l
}

package secretscan_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"keyward/web/errs"
	"keyward/web/secretscan"
)

func pemOf(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func keysFile(entries ...[3]any) []byte {
	var list []map[string]any
	for _, e := range entries {
		list = append(list, map[string]any{"key_identifier": e[0], "key": e[1], "is_current": e[2]})
	}
	b, _ := json.Marshal(map[string]any{"public_keys": list})
	return b
}

func sign(t *testing.T, k *ecdsa.PrivateKey, body string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(body))
	sig, err := ecdsa.SignASN1(rand.Reader, k, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// TestKeysFileAndSignatures: a file in GitHub's format is read with every
// key, current or not, and each key verifies what it signed and nothing
// else; Check refuses missing headers and unknown identifiers without the
// body; a file that is not one is refused at once, saying why.
func TestKeysFileAndSignatures(t *testing.T) {
	cur, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	old, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	path := filepath.Join(t.TempDir(), "keys.json")
	os.WriteFile(path, keysFile([3]any{"cur", pemOf(t, &cur.PublicKey), true}, [3]any{"old", pemOf(t, &old.PublicKey), false}), 0o600)
	ks, err := secretscan.LoadKeys(path)
	if err != nil || ks.Len() != 2 {
		t.Fatalf("LoadKeys: %v (%d keys)", err, ks.Len())
	}
	body := `[{"token":"kw_prod_x","type":"t","url":"","source":"content"}]`
	cases := []struct {
		name, id, sig, body string
		want                error
	}{
		{"current key", "cur", sign(t, cur, body), body, nil},
		{"older key", "old", sign(t, old, body), body, nil},
		{"padded headers", " cur ", " " + sign(t, cur, body) + " ", body, nil},
		{"tampered body", "cur", sign(t, cur, body), body + " ", secretscan.ErrBadSignature},
		{"other key's signature", "cur", sign(t, old, body), body, secretscan.ErrBadSignature},
		{"unknown identifier", "new", sign(t, cur, body), body, secretscan.ErrUnknownKey},
		{"not base64", "cur", "%%%", body, secretscan.ErrBadSignature},
		{"not DER", "cur", base64.StdEncoding.EncodeToString([]byte("sig")), body, secretscan.ErrBadSignature},
		{"no identifier", "", sign(t, cur, body), body, secretscan.ErrNoSignature},
		{"no signature", "cur", "", body, secretscan.ErrNoSignature},
	}
	for _, c := range cases {
		if err := ks.Verify(c.id, c.sig, []byte(c.body)); err != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		} else if err != nil && !errs.Is(err, errs.Unauthorized) {
			t.Errorf("%s: %v is not unauthorised", c.name, err)
		}
		// Check, without the body, refuses the same headers Verify
		// refuses before it reads the body.
		want := c.want
		if want == secretscan.ErrBadSignature {
			want = nil
		}
		if err := ks.Check(c.id, c.sig); err != want {
			t.Errorf("%s: Check %v, want %v", c.name, err, want)
		}
	}

	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, bad := range []struct {
		file []byte
		says string
	}{
		{[]byte("public_keys"), "not the JSON"},
		{[]byte(`{"public_keys":[]}`), "no keys"},
		{[]byte(`{}`), "no keys"},
		{keysFile([3]any{"", pemOf(t, &cur.PublicKey), true}), "no key_identifier"},
		{keysFile([3]any{"a", pemOf(t, &cur.PublicKey), true}, [3]any{"a", pemOf(t, &old.PublicKey), true}), "appears twice"},
		{keysFile([3]any{"a", "MFkwEwYHKoZIzj0CAQ", true}), "not a PEM block"},
		{keysFile([3]any{"a", pemOf(t, &rsaKey.PublicKey), true}), "not an ECDSA P-256 key"},
		{keysFile([3]any{"a", pemOf(t, &p384.PublicKey), true}), "not an ECDSA P-256 key"},
	} {
		if _, err := secretscan.ParseKeys(bad.file); err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("ParseKeys(%.60s): %v, want an error saying %q", bad.file, err, bad.says)
		}
	}
	if _, err := secretscan.LoadKeys(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("a missing file: %v", err)
	}
}

// TestLabelFor: the answer names a token by its SHA-256 in hex and never
// holds it; a long or invalid type is cut to valid text.
func TestLabelFor(t *testing.T) {
	l := secretscan.LabelFor(secretscan.Match{Token: "kw_prod_abc", Type: "keyward"}, true)
	sum := sha256.Sum256([]byte("kw_prod_abc"))
	if l.TokenHash != hex.EncodeToString(sum[:]) || l.TokenType != "keyward" || l.Label != secretscan.TruePositive {
		t.Errorf("label = %+v", l)
	}
	l = secretscan.LabelFor(secretscan.Match{Token: "x", Type: strings.Repeat("é", 300) + "\xff"}, false)
	if l.Label != secretscan.FalsePositive || len(l.TokenType) > 200 || !json.Valid([]byte(`"`+l.TokenType+`"`)) {
		t.Errorf("label = %+v", l)
	}
}

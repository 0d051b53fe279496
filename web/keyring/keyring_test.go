package keyring

import (
	"bytes"
	"errors"
	"testing"
)

// TestSealer: a sealed value opens with its key and binding only, and
// never holds the plain text.
func TestSealer(t *testing.T) {
	r, err := New(bytes.Repeat([]byte("k"), MinSecretLen))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewSealer(r.Key(PurposeTOTP))
	other, _ := NewSealer(r.Key(PurposeWebhookSecret))
	plain := []byte("JBSWY3DPEHPK3PXP")
	sealed := s.Seal(plain, []byte("user:1"))
	if bytes.Contains(sealed, plain) || bytes.Equal(sealed, s.Seal(plain, []byte("user:1"))) {
		t.Fatal("a sealed value shows its plain text, or two seals are the same (no fresh nonce)")
	}
	if got, err := s.Open(sealed, []byte("user:1")); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %q %v", got, err)
	}
	for name, open := range map[string]func() ([]byte, error){
		"another binding": func() ([]byte, error) { return s.Open(sealed, []byte("user:2")) },
		"another key":     func() ([]byte, error) { return other.Open(sealed, []byte("user:1")) },
		"too short":       func() ([]byte, error) { return s.Open(sealed[:5], []byte("user:1")) },
	} {
		if _, err := open(); !errors.Is(err, ErrUnsealable) {
			t.Errorf("%s: %v, want ErrUnsealable", name, err)
		}
	}
}

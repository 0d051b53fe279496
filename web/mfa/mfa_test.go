package mfa

import (
	"bytes"
	"testing"
	"time"
)

func newService(t *testing.T) *Service {
	s, err := New(bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32), "Keyward test")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMatchStepAcceptsOneStepOfDrift(t *testing.T) {
	s := newService(t)
	en, err := s.NewEnrolment("ann@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	s.Now = func() time.Time { return now }
	step := now.Unix() / 30
	for _, c := range []struct {
		offset time.Duration
		ok     bool
	}{{-60 * time.Second, false}, {-30 * time.Second, true}, {0, true}, {30 * time.Second, true}, {60 * time.Second, false}} {
		code, _ := CodeFor(en.Secret, now.Add(c.offset))
		got, ok := s.matchStep(en.Secret, code)
		if ok != c.ok {
			t.Errorf("offset %s: accepted = %v", c.offset, ok)
		}
		if ok && got != step+int64(c.offset/(30*time.Second)) {
			t.Errorf("offset %s: step %d", c.offset, got)
		}
	}
	if _, ok := s.matchStep(en.Secret, "12345"); ok {
		t.Error("a 5-digit code matched")
	}
}

func TestSecretEncryptionIsBoundToUser(t *testing.T) {
	s := newService(t)
	sealed, err := s.Encrypt(1, "JBSWY3DPEHPK3PXP")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("JBSWY3DPEHPK3PXP")) {
		t.Fatal("the secret is visible in the ciphertext")
	}
	if got, err := s.Decrypt(1, sealed); err != nil || got != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("Decrypt = %q, %v", got, err)
	}
	if _, err := s.Decrypt(2, sealed); err == nil {
		t.Error("a secret copied to another user decrypted")
	}
}

func TestNormalizeRecovery(t *testing.T) {
	cases := []struct{ in, want string }{
		{"abcde-fghjk", "abcde-fghjk"},
		{"ABCDE FGHJK", "abcde-fghjk"},
		{"abcdefghjk", "abcde-fghjk"},
		{"abcde-fghj", ""},
		{"abcde-fghil", ""}, // i and l are not in the alphabet
		{"", ""},
	}
	for _, c := range cases {
		got, ok := normalizeRecovery(c.in)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("normalizeRecovery(%q) = %q, %v", c.in, got, ok)
		}
	}
	for i := 0; i < 50; i++ {
		code := newRecoveryCode()
		if n, ok := normalizeRecovery(code); !ok || n != code {
			t.Fatalf("generated code %q does not normalise to itself", code)
		}
	}
}

func FuzzNormalizeRecovery(f *testing.F) {
	for _, s := range []string{"abcde-fghjk", "ABCDE FGHJK", "", "123456", "ééééé-ééééé"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, ok := normalizeRecovery(in)
		if !ok {
			return
		}
		if len(out) != 11 || out[5] != '-' {
			t.Fatalf("normalizeRecovery(%q) = %q", in, out)
		}
		if again, ok := normalizeRecovery(out); !ok || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, out, again)
		}
	})
}

package apikey

import (
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

func TestGenerateParseRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for _, env := range []Environment{Production, Staging, Development} {
		for i := 0; i < 100; i++ {
			k, err := Generate(env)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(k, "kw_"+env.Token()+"_") || len(k) != len("kw_"+env.Token()+"_")+randomLen+checksumLen {
				t.Fatalf("key %q has the wrong shape", k)
			}
			p, err := Parse(k)
			if err != nil || p.Env != env {
				t.Fatalf("Parse(%q) = %+v, %v", k, p, err)
			}
			if seen[k] {
				t.Fatal("a key was generated twice")
			}
			seen[k] = true
			if pre := DisplayPrefix(p); len(pre) != len("kw_"+env.Token()+"_")+PrefixLen || !strings.HasPrefix(k, pre) {
				t.Fatalf("prefix %q of %q", pre, k)
			}
		}
	}
	if _, err := Generate("qa"); err == nil {
		t.Error("an unknown environment was accepted")
	}
}

func TestParseRejects(t *testing.T) {
	good, _ := Generate(Production)
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	cases := []struct {
		name, key string
		want      error
	}{
		{"empty", "", ErrMalformed},
		{"other brand", "sk" + good[2:], ErrMalformed},
		{"unknown env", strings.Replace(good, "_prod_", "_test_", 1), ErrMalformed},
		{"short", good[:len(good)-1], ErrMalformed},
		{"long", good + "a", ErrMalformed},
		{"bad character", good[:12] + "-" + good[13:], ErrMalformed},
		{"random part changed", flip(good, 10), ErrChecksum},
		{"checksum changed", flip(good, len(good)-1), ErrChecksum},
		{"env swapped", strings.Replace(good, "_prod_", "_stag_", 1), ErrChecksum},
		{"whitespace", " " + good, ErrMalformed},
	}
	for _, c := range cases {
		if _, err := Parse(c.key); !errors.Is(err, c.want) {
			t.Errorf("%s: Parse(%q) = %v, want %v", c.name, c.key, err, c.want)
		}
	}
}

func TestHashIsSHA256(t *testing.T) {
	h := Hash("kw_dev_x")
	if len(h) != 32 || string(h) == string(Hash("kw_dev_y")) {
		t.Fatal("Hash is not a 32-byte digest of its input")
	}
}

func FuzzParse(f *testing.F) {
	for _, env := range []Environment{Production, Staging, Development} {
		k, _ := Generate(env)
		f.Add(k)
	}
	f.Add("kw_prod_")
	f.Add("kw__" + strings.Repeat("a", 33))
	f.Fuzz(func(t *testing.T, key string) {
		p, err := Parse(key)
		if err != nil {
			return
		}
		// Whatever parses must have a consistent checksum and prefix.
		if p.Full != key || !p.Env.Valid() || !strings.HasPrefix(key, DisplayPrefix(p)) {
			t.Fatalf("Parse(%q) = %+v", key, p)
		}
		if checksum(key[:len(key)-checksumLen]) != key[len(key)-checksumLen:] {
			t.Fatalf("accepted a bad checksum: %q", key)
		}
	})
}

// BenchmarkParseAndHash is the per-request cost before any cache lookup.
func BenchmarkParseAndHash(b *testing.B) {
	k, _ := Generate(Production)
	b.ReportAllocs()
	for b.Loop() {
		p, err := Parse(k)
		if err != nil {
			b.Fatal(err)
		}
		Hash(p.Full)
	}
}

// The checksum walks crc32's table by hand; it must equal the library's
// CRC32, or every key issued before would stop parsing.
func TestChecksumIsCRC32IEEE(t *testing.T) {
	for _, body := range []string{"", "kw_prod_", "kw_prod_" + strings.Repeat("Az9", 9), strings.Repeat("x", 200)} {
		n := crc32.ChecksumIEEE([]byte(body))
		want := make([]byte, checksumLen)
		for i := checksumLen - 1; i >= 0; i-- {
			want[i] = alphabet[n%62]
			n /= 62
		}
		if got := checksum(body); got != string(want) {
			t.Errorf("checksum(%q) = %s, want %s", body, got, want)
		}
	}
}

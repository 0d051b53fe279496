package auth

import (
	"strings"
	"testing"
	"time"
)

func TestPasswordHashRoundTrip(t *testing.T) {
	h, err := HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q lacks the argon2id parameters", h)
	}
	h2, _ := HashPassword("correct horse battery staple")
	if h == h2 {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	cases := []struct {
		hash, pw string
		want     bool
	}{
		{h, "correct horse battery staple", true},
		{h, "correct horse battery stapl", false},
		{h, "", false},
		{"", "x", false},
		{"$argon2i$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", "x", false},
		{strings.Replace(h, "v=19", "v=18", 1), "correct horse battery staple", false},
		{"$argon2id$v=19$m=x,t=2,p=1$c2FsdA$aGFzaA", "x", false},
	}
	for _, c := range cases {
		if got := CheckPassword(c.hash, c.pw); got != c.want {
			t.Errorf("CheckPassword(%q, %q) = %v", c.hash, c.pw, got)
		}
	}
}

func TestValidatePassword(t *testing.T) {
	cases := []struct {
		pw, email string
		ok        bool
	}{
		{"twelve chars", "", true},
		{"elevenchars", "", false},
		{strings.Repeat("é", 12), "", true}, // counted in characters, not bytes
		{strings.Repeat("x", 257), "", false},
		{"ann@acme.test", "ANN@acme.test", false},
	}
	for _, c := range cases {
		if err := ValidatePassword(c.pw, c.email); (err == nil) != c.ok {
			t.Errorf("ValidatePassword(%q) = %v", c.pw, err)
		}
	}
}

// An attacker who retries as soon as each lock ends gets fewer than the
// 100 guesses an hour on one account that the product allows at most.
func TestAccountLockBoundsGuessesPerHour(t *testing.T) {
	var now time.Duration
	var failures int32
	for now < time.Hour {
		failures++
		now += accountPolicy.lockFor(failures)
		if accountPolicy.lockFor(failures) == 0 {
			now += time.Second // even unlocked, a guess takes a moment
		}
	}
	if failures >= 100 {
		t.Fatalf("%d guesses in an hour", failures)
	}
	if accountPolicy.lockFor(5) != 0 || accountPolicy.lockFor(6) != time.Second || accountPolicy.lockFor(7) != 2*time.Second {
		t.Error("the lock does not start after 5 failures and double")
	}
	if accountPolicy.lockFor(1000) != 15*time.Minute {
		t.Error("the lock is not capped at 15 minutes")
	}
}

func FuzzCheckPassword(f *testing.F) {
	h, _ := HashPassword("seed password")
	f.Add(h, "seed password")
	f.Add("$argon2id$v=19$m=1,t=1,p=1$$", "")
	f.Add("$$$$$", "x")
	f.Fuzz(func(t *testing.T, hash, pw string) {
		// Outside input must never panic or allocate without bound; cap the
		// cost parameters the fuzzer may pick.
		if strings.Contains(hash, "m=") && !strings.Contains(hash, "m=1,") {
			return
		}
		CheckPassword(hash, pw)
	})
}

// BenchmarkCheckPassword is the cost of one sign-in attempt's hashing.
func BenchmarkCheckPassword(b *testing.B) {
	h, _ := HashPassword("correct horse battery staple")
	for b.Loop() {
		CheckPassword(h, "correct horse battery staple")
	}
}

func TestLoginIPKeyGroupsIPv6By64(t *testing.T) {
	if loginIPKey("2001:db8:1:2:aaaa::1") != loginIPKey("2001:db8:1:2:bbbb::9") {
		t.Error("two addresses of one /64 are counted apart")
	}
	if loginIPKey("2001:db8:1:3::1") == loginIPKey("2001:db8:1:2::1") {
		t.Error("two /64s are counted together")
	}
	if loginIPKey("192.0.2.1") != "login:ip:192.0.2.1" {
		t.Error(loginIPKey("192.0.2.1"))
	}
}

package apikey

import (
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// SECURITY.md tells scanners how to find Keyward keys. These tests read it
// and hold what it says to the code: its regular expression and both rule
// files, and its worked example of the checksum.

// fences returns the contents of SECURITY.md's fenced blocks by info
// string ("regex", "toml", …), in order.
func fences(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("../../SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, m := range regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```$").FindAllStringSubmatch(string(b), -1) {
		out[m[1]] = append(out[m[1]], m[2])
	}
	return out
}

// docPatterns are the regular expressions SECURITY.md gives: its own, the
// gitleaks rule's and the trufflehog detector's, by where they come from,
// with the keywords each rule names.
func docPatterns(t *testing.T) (map[string]*regexp.Regexp, map[string][]string) {
	t.Helper()
	f := fences(t)
	if len(f["regex"]) != 1 || len(f["toml"]) != 1 || len(f["yaml"]) != 1 {
		t.Fatalf("SECURITY.md has %d regex, %d toml and %d yaml blocks, want one each", len(f["regex"]), len(f["toml"]), len(f["yaml"]))
	}
	src := map[string]string{"regex block": strings.TrimSpace(f["regex"][0])}
	keywords := map[string][]string{}
	toml := f["toml"][0]
	if m := regexp.MustCompile(`(?m)^regex = '''(.*)'''$`).FindStringSubmatch(toml); m != nil {
		src["gitleaks rule"] = m[1]
	}
	if !regexp.MustCompile(`(?m)^\[\[rules\]\]$`).MatchString(toml) || !regexp.MustCompile(`(?m)^id = "[a-z-]+"$`).MatchString(toml) {
		t.Errorf("the gitleaks block is not a [[rules]] entry with an id:\n%s", toml)
	}
	if m := regexp.MustCompile(`(?m)^keywords = \[(.*)\]$`).FindStringSubmatch(toml); m != nil {
		for _, k := range strings.Split(m[1], ",") {
			keywords["gitleaks rule"] = append(keywords["gitleaks rule"], strings.Trim(strings.TrimSpace(k), `"`))
		}
	}
	yaml := f["yaml"][0]
	if m := regexp.MustCompile(`(?m)^      key: '(.*)'$`).FindStringSubmatch(yaml); m != nil {
		src["trufflehog detector"] = m[1]
	}
	if m := regexp.MustCompile(`(?s)keywords:\n((?:      - \S+\n)+)`).FindStringSubmatch(yaml); m != nil {
		for _, l := range strings.Split(strings.TrimSpace(m[1]), "\n") {
			keywords["trufflehog detector"] = append(keywords["trufflehog detector"], strings.TrimPrefix(strings.TrimSpace(l), "- "))
		}
	}
	res := map[string]*regexp.Regexp{}
	for _, where := range []string{"regex block", "gitleaks rule", "trufflehog detector"} {
		s, ok := src[where]
		if !ok {
			t.Fatalf("no regular expression found in SECURITY.md's %s", where)
		}
		if s != src["regex block"] {
			t.Errorf("the %s's regular expression %q differs from the page's %q", where, s, src["regex block"])
		}
		re, err := regexp.Compile(s)
		if err != nil {
			t.Fatalf("the %s's regular expression: %v", where, err)
		}
		res[where] = re
	}
	for _, where := range []string{"gitleaks rule", "trufflehog detector"} {
		if len(keywords[where]) != len(envTokens) {
			t.Errorf("the %s names keywords %q, want one per environment", where, keywords[where])
		}
	}
	return res, keywords
}

// found reports whether re finds a key in text that also passes the
// checksum: what a scanner following SECURITY.md reports.
func found(re *regexp.Regexp, text string) bool {
	for _, m := range re.FindAllString(text, -1) {
		if _, err := Parse(m); err == nil {
			return true
		}
	}
	return false
}

// TestSecurityDocFindsKeys: 10,000 generated keys, each in a line of a
// config file, are found by every regular expression of SECURITY.md, pass
// the checksum, and contain one of each rule's keywords.
func TestSecurityDocFindsKeys(t *testing.T) {
	res, keywords := docPatterns(t)
	envs := []Environment{Production, Staging, Development}
	for i := range 10_000 {
		k, err := Generate(envs[i%3])
		if err != nil {
			t.Fatal(err)
		}
		text := fmt.Sprintf("API_KEY=%s\nother: \"%s\"", k, k)
		for where, re := range res {
			if m := re.FindString(text); m != k || !found(re, text) {
				t.Fatalf("the %s finds %q in %q", where, m, text)
			}
		}
		for where, kws := range keywords {
			if !containsAny(k, kws) {
				t.Fatalf("%s holds none of the %s's keywords %q", k, where, kws)
			}
		}
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// nearMisses makes n strings that look like keys and are not: each kind
// of mistake in turn. shape says whether the mistake is in the key's shape
// (every kind but a wrong checksum), which the regular expression alone
// must refuse.
func nearMisses(t *testing.T, n int) (misses []string, shape []bool) {
	rng := rand.New(rand.NewPCG(1, 2))
	randomOf := func(k int) string {
		b := make([]byte, k)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	valid := func(head string, k int) string { body := head + randomOf(k); return body + checksum(body) }
	kinds := []struct {
		shape bool
		make  func(key string) string
	}{
		// Wrong brand or environment, with a checksum that fits them.
		{true, func(string) string { return valid("kx_prod_", randomLen) }},
		{true, func(string) string { return valid("KW_prod_", randomLen) }},
		{true, func(string) string { return valid("kw-prod-", randomLen) }},
		{true, func(string) string { return valid("kw_live_", randomLen) }},
		{true, func(string) string { return valid("kw_PROD_", randomLen) }},
		{true, func(string) string { return valid("kw_prd_", randomLen) }},
		// Wrong length, checksum recomputed.
		{true, func(string) string { return valid("kw_prod_", randomLen-1) }},
		{true, func(string) string { return valid("kw_stag_", randomLen+1) }},
		// A character outside base62 in the random part or the checksum.
		{true, func(k string) string {
			i := 8 + rng.IntN(len(k)-8)
			return k[:i] + string("-+/.=~"[rng.IntN(6)]) + k[i+1:]
		}},
		// Truncated.
		{true, func(k string) string { return k[:len(k)-1-rng.IntN(5)] }},
		// A character too many at either end.
		{true, func(k string) string { return k + randomOf(1) }},
		{true, func(k string) string { return randomOf(1) + k }},
		{true, func(k string) string { return k + "_" }},
		// The right shape with a wrong checksum: one random character or
		// one checksum character changed, or two adjacent ones swapped.
		{false, func(k string) string { return mistype(rng, k, 8+rng.IntN(randomLen)) }},
		{false, func(k string) string { return mistype(rng, k, len(k)-1-rng.IntN(checksumLen)) }},
		{false, func(k string) string {
			for {
				i := 8 + rng.IntN(len(k)-9)
				if k[i] != k[i+1] {
					return k[:i] + string(k[i+1]) + string(k[i]) + k[i+2:]
				}
			}
		}},
	}
	for i := range n {
		k, err := Generate(Production)
		if err != nil {
			t.Fatal(err)
		}
		kind := kinds[i%len(kinds)]
		misses = append(misses, kind.make(k))
		shape = append(shape, kind.shape)
	}
	return misses, shape
}

// mistype replaces the character at i with another base62 character.
func mistype(rng *rand.Rand, k string, i int) string {
	for {
		c := alphabet[rng.IntN(len(alphabet))]
		if c != k[i] {
			return k[:i] + string(c) + k[i+1:]
		}
	}
}

// TestSecurityDocRefusesNearMisses: none of 10,000 near misses is found
// by the regular expression and the checksum together; those whose shape
// is wrong are not even matched by the regular expression.
func TestSecurityDocRefusesNearMisses(t *testing.T) {
	res, _ := docPatterns(t)
	misses, shape := nearMisses(t, 10_000)
	shapes := 0
	for i, m := range misses {
		text := "token: " + m + "\n"
		for where, re := range res {
			if found(re, text) {
				t.Fatalf("the %s and the checksum find the near miss %q", where, m)
			}
			if shape[i] && re.MatchString(text) {
				t.Fatalf("the %s matches %q, whose shape is wrong", where, m)
			}
		}
		if shape[i] {
			shapes++
		}
	}
	if shapes == 0 || shapes == len(misses) {
		t.Fatalf("%d of %d near misses are shape errors: the kinds are not mixed", shapes, len(misses))
	}
}

// TestSecurityDocWorkedExample recomputes each value of SECURITY.md's
// worked example from its key.
func TestSecurityDocWorkedExample(t *testing.T) {
	var block string
	for _, b := range fences(t)["text"] {
		if strings.HasPrefix(b, "key:") {
			block = b
		}
	}
	v := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(block), "\n") {
		name, val, _ := strings.Cut(l, ":")
		v[name] = strings.TrimSpace(val)
	}
	key := v["key"]
	if _, err := Parse(key); err != nil {
		t.Fatalf("the example key %q does not parse: %v", key, err)
	}
	body := key[:len(key)-checksumLen]
	n := crc32.ChecksumIEEE([]byte(body))
	var digits []string
	for m, i := n, 0; i < checksumLen; i, m = i+1, m/62 {
		digits = append([]string{strconv.Itoa(int(m % 62))}, digits...)
	}
	want := map[string]string{
		"body": body, "crc32": fmt.Sprintf("0x%08X", n), "decimal": strconv.FormatUint(uint64(n), 10),
		"digits": strings.Join(digits, " "), "checksum": checksum(body),
	}
	for name, w := range want {
		if v[name] != w {
			t.Errorf("worked example %s: the page says %q, the code %q", name, v[name], w)
		}
	}
	if checksum(body) != key[len(key)-checksumLen:] {
		t.Error("the example's checksum is not its key's last 6 characters")
	}
}

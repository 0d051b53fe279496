package auth

import "testing"

// TestValidEmailTakesBareAddressesOnly: forms mail.ParseAddress accepts
// that would give one mailbox a second spelling, or show one address
// while naming another, are refused.
func TestValidEmailTakesBareAddressesOnly(t *testing.T) {
	for email, want := range map[string]bool{
		"ann@acme.test":                  true,
		"<ann@acme.test>":                false,
		"bob <ann@acme.test>":            false,
		`"ceo@corp.test" <x@evil.test>`:  false,
		"ann@acme.test (c)":              false,
		"not an address":                 false,
		"a@" + string(make([]byte, 260)): false,
	} {
		if got := validEmail(email); got != want {
			t.Errorf("validEmail(%q) = %v, want %v", email, got, want)
		}
	}
}

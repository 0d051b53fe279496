// Package audittest gives tests that write to the audit trail without an
// application (web.Build) the trail's keys.
package audittest

import (
	"keyward/web/audit"
	"keyward/web/keyring"
)

// secret is the test installation's KEYWARD_SECRET_KEY. Never use it
// anywhere else.
const secret = "audittest secret key: tests only, never in production"

// Keys returns the audit keys derived from a fixed test secret: the same
// on every call.
func Keys() *audit.Keys {
	ring, err := keyring.New([]byte(secret))
	if err != nil {
		panic(err)
	}
	return audit.NewKeys(ring)
}

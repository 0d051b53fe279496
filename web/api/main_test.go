package api_test

import (
	"os"
	"testing"

	"keyward/db/dbtest"
	"keyward/web/ratelimit/redistest"
)

func TestMain(m *testing.M) {
	code := dbtest.Run(m)
	if err := redistest.Stop(); err != nil && code == 0 {
		code = 1
	}
	os.Exit(code)
}

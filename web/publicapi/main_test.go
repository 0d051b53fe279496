package publicapi_test

import (
	"os"
	"testing"

	"keyward/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

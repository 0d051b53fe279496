package secretscan_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"

	"keyward/web/errs"
	"keyward/web/secretscan"
)

// The fuzz targets hold the two report parsers to rules written out here:
// whatever the body, the parser answers (no panic), a refusal is a field
// error of kind Invalid, and what it accepts is within the bounds.

var reportSeeds = []string{
	`[{"token":"kw_prod_x","type":"keyward_api_key","url":"https://github.com/a/b","source":"content"}]`,
	`[{"source":"commit","token":"t","type":"ty","url":"","extra":{"nested":[1,2]}}]`,
	`[]`,
	`[{}]`,
	`null`,
	`{"token":"x"}`,
	`[{"token":1}]`,
	`[] []`,
	`[{"TOKEN":"upper"}]`,
	"\ufeff[]",
	`[` + strings.Repeat(`{"token":"a"},`, 1000) + `{"token":"b"}]`,
}

func FuzzParseReport(f *testing.F) {
	for _, s := range reportSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ms, err := secretscan.ParseReport(body)
		if err != nil {
			if e, ok := errs.As(err); !ok || e.Kind != errs.Invalid || e.Field() == "" {
				t.Fatalf("refusal %v is not a field error", err)
			}
			return
		}
		trimmed := strings.TrimLeftFunc(string(body), unicode.IsSpace)
		if !json.Valid(body) || !strings.HasPrefix(trimmed, "[") {
			t.Fatalf("accepted %q, which is not one JSON array", body)
		}
		if len(ms) > secretscan.MaxMatches {
			t.Fatalf("accepted %d matches", len(ms))
		}
	})
}

var publicSeeds = []string{
	`{"keys":["kw_prod_x"],"url":"https://gist.github.com/a/1","note":"found it"}`,
	`{"keys":[" kw_prod_y "]}`,
	`{"keys":[]}`,
	`{"keys":"kw_prod_x"}`,
	`{"keys":["a"],"source":"x"}`,
	`{"keys":["a"],"url":"` + strings.Repeat("u", 2001) + `"}`,
	`{"keys":["a"]} {}`,
	`{"Keys":["case"]}`,
	`[]`,
	``,
	`{"keys":[` + strings.Repeat(`"k",`, 100) + `"k"]}`,
}

func FuzzParsePublicReport(f *testing.F) {
	for _, s := range publicSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := secretscan.ParsePublicReport(body)
		if err != nil {
			if e, ok := errs.As(err); !ok || e.Kind != errs.Invalid || e.Field() == "" {
				t.Fatalf("refusal %v is not a field error", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted %q, which is not JSON", body)
		}
		if len(r.Keys) < 1 || len(r.Keys) > secretscan.MaxPublicKeys || len(r.URL) > 2000 || len(r.Note) > 500 {
			t.Fatalf("accepted out of bounds: %d keys, url %d, note %d bytes", len(r.Keys), len(r.URL), len(r.Note))
		}
		for _, k := range r.Keys {
			if k != strings.TrimSpace(k) {
				t.Fatalf("key %q not trimmed", k)
			}
		}
	})
}

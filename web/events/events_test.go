package events_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"keyward/web/events"
)

// An unknown field with an empty name is reported on the object that
// holds it, not on a field with no name.
func TestEmptyFieldName(t *testing.T) {
	for _, c := range []struct {
		batch bool
		body  string
		field string
	}{
		{false, `{"":1}`, "body"},
		{false, event(`{}`)[:len(event(`{}`))-1] + `,"":1}`, "body"},
		{true, `{"events":[],"":1}`, "body"},
		{true, `{"events":[` + event(`{}`) + `,{"":1}]}`, "events[1]"},
	} {
		var err error
		if c.batch {
			_, err = events.ParseBatch([]byte(c.body))
		} else {
			_, err = events.ParseOne([]byte(c.body))
		}
		var fe *events.FieldError
		var fes events.FieldErrors
		if errors.As(err, &fes) && len(fes) == 1 {
			fe = fes[0]
		} else if !errors.As(err, &fe) {
			t.Fatalf("%s: got %v, want one field error", c.body, err)
		}
		if fe.Field != c.field || !strings.Contains(fe.Message, "empty name") {
			t.Errorf("%s: got %q: %q, want %q about the empty name", c.body, fe.Field, fe.Message, c.field)
		}
	}
}

// An unknown field is named as the client wrote it.
func TestUnknownFieldName(t *testing.T) {
	for body, want := range map[string]string{
		`{"nope":1}`:          "nope",
		`{"a\"":1}`:           `a"`,
		`{"\"":1}`:            `"`,
		`{"\\":1}`:            `\`,
		`{"\u00e9t\u00e9":1}`: "été",
		"{\"\xff\":1}":        "\ufffd", // as the decoder reads it
	} {
		_, err := events.ParseOne([]byte(body))
		var fe *events.FieldError
		if !errors.As(err, &fe) || fe.Field != want {
			t.Errorf("%s: got %v, want the field %q", body, err, want)
		}
	}
}

// Validate refuses, on data, every number Postgres numeric cannot read,
// and says what to do; the bounds themselves pass.
func TestValidateNumbers(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	for data, want := range map[string]string{
		`{"n":0e1073741822}`:           "",
		`{"n":0e1073741823}`:           "exponent",
		`{"n":[0E+1073741823]}`:        "exponent",
		`{"n":-0.0e1073741824}`:        "exponent",
		`{"n":0e-1073741823}`:          "exponent",
		`{"n":0e-9223372036854775808}`: "exponent",
		`{"n":0e99999999999999999999}`: "exponent",
		`{"n":1e-16383}`:               "",
		`{"n":1e-16384}`:               "decimal point",
		`{"n":0.5e-16383}`:             "decimal point",
		`{"n":1e308}`:                  "",
		`{"n":-1e309}`:                 "64-bit float",
	} {
		for _, prefix := range []string{"", "events[2]."} {
			in := events.Input{Source: "a", Type: "b", OccurredAt: "2026-01-02T15:04:05Z", Data: json.RawMessage(data)}
			_, fes := in.Validate(prefix, now)
			switch {
			case want == "" && fes != nil:
				t.Errorf("%s: refused: %v", data, fes)
			case want == "":
			case len(fes) != 1 || fes[0].Field != prefix+"data" || !strings.Contains(fes[0].Message, want):
				t.Errorf("%s with prefix %q: got %v, want one error on %sdata about the %s", data, prefix, fes, prefix, want)
			}
		}
	}
}

// When Postgres refuses data that Validate let through, the error names
// the field as Validate would: data, events[i].data in a batch of one, and
// the batch when Postgres does not say which event it was.
func TestIngestNamesRefusedData(t *testing.T) {
	store, p := setup(t)
	ctx := context.Background()
	now := time.Now()
	in := events.Input{Source: "a", Type: "b", OccurredAt: "2026-01-02T15:04:05Z", Data: json.RawMessage(`{}`)}
	render := func([]events.Event) (int, []byte, error) { return 201, []byte(`{}`), nil }
	for i, c := range []struct {
		prefixes []string
		field    string
	}{
		{[]string{""}, "data"},
		{[]string{"events[0]."}, "events[0].data"},
		{[]string{"events[0].", "events[1]."}, "events"},
	} {
		var evs []events.Event
		for _, prefix := range c.prefixes {
			ev, fes := in.Validate(prefix, now)
			if fes != nil {
				t.Fatal(fes)
			}
			// Past Validate, as data it did not foresee would be.
			ev.Data = json.RawMessage(`{"n":0e1073741823}`)
			evs = append(evs, ev)
		}
		_, err := events.Ingest(ctx, store.Queries, p, "k"+strconv.Itoa(i), sha256.Sum256(nil), evs, render, now)
		var fe *events.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(fe.Message, "cannot be stored") {
			t.Errorf("%d event(s) under %q: got %v, want a field error on %s", len(evs), c.prefixes, err, c.field)
		}
	}
}

package events_test

import (
	"errors"
	"strings"
	"testing"

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

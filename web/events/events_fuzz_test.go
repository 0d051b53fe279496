package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"keyward/db/dbtest"
	"keyward/web/events"
)

// The fuzz targets below check the parsers of ingestion bodies against
// rules written out here on their own (not by calling the package's
// helpers), so that a change to either side shows up as a failure.

// fuzzNow is the "now" of every Validate call: fixed, for determinism.
var fuzzNow = time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.UTC)

// event builds a single-event body around data (raw JSON).
func event(data string) string {
	return `{"source":"billing","type":"invoice.paid","occurred_at":"2026-01-02T15:04:05Z","data":` + data + `}`
}

// batch builds a batch body of n copies of e.
func batch(n int, e string) string {
	return `{"events":[` + strings.TrimSuffix(strings.Repeat(e+",", n), ",") + `]}`
}

// eventSeeds are bodies of POST /events worth starting from. The batch
// target wraps each in a batch, too.
var eventSeeds = []string{
	event(`{"amount":42,"currency":"EUR"}`),
	`{"source":"a","type":"b","occurred_at":"1970-01-01T00:00:00Z"}`,                            // no data
	`{"source":"a","type":"b","occurred_at":"2026-01-02T16:04:05.123456789+01:00","data":null}`, // fractions, offset
	`{"source":"a","type":"b","occurred_at":"2026-01-02T17:00:00Z","data":{}}`,                  // too far ahead
	`{"source":"a","type":"b","occurred_at":"1969-12-31T23:59:59.999999999Z","data":{}}`,        // before 1970
	`{"source":"","type":"` + strings.Repeat("t", 101) + `","occurred_at":"yesterday"}`,
	`{"source":"-a","type":"a\n","occurred_at":"2026-01-02T15:04:05"}`,
	`{"SOURCE":"a","Type":"b","occurred_AT":"2026-01-02T15:04:05Z"}`, // field names match case-insensitively
	``,
	` `,
	`null`,
	`[]`,
	`[` + event(`{}`) + `]`,
	`"event"`,
	`42`,
	`{"source":"a","type":"b","occurred_at":"2026-01-02T15:04:05Z","extra":1}`,
	`{"source":1,"type":["b"],"occurred_at":{},"data":"x"}`,
	event(`[1,2]`),
	event(`"text"`),
	event(`{"n":1e308,"m":-1e308,"o":1e309}`),
	event(`{"n":123456789012345678901234567890}`),
	event(`{"n":1e-16383}`),
	event(`{"n":1.0e-16383}`),
	event(`{"n":0.5e-16383}`),
	event(`{"n":0e1073741822}`),
	event(`{"n":0e1073741823}`),
	event(`{"n":-0.0E+1073741823}`),
	event(`{"n":0e-1073741823}`),
	event(`{"n":0e-9223372036854775808}`),
	event(`{"n":0e-99999999999999999999}`),
	event(`{"s":"a\u0000b"}`),
	event(`{"s":"\\u0000"}`),
	event(`{"\u0000":1}`),
	event(`{"s":"\ud800"}`),
	event(`{"s":"\udfff x"}`),
	event(`{"s":"\ud83d\ude00"}`),
	event(`{"s":"\ud83d\u0041"}`),
	event(`{"s":"\ud83d\\ude00"}`),
	event(`{"s":"\uD83D\uDE00\u00e9\\\"\/\b\f\n\r\t"}`),
	event(`{"s":"` + "\xff\xfe" + `"}`),
	event(`{"a":` + strings.Repeat(`[`, 200) + strings.Repeat(`]`, 200) + `}`),
	event(`{"a":` + strings.Repeat(`{"b":`, 200) + `1` + strings.Repeat(`}`, 200) + `}`),
	event(strings.Repeat(`[`, 10001) + strings.Repeat(`]`, 10001)),
	`{"source":"a","source":"b","type":"c","occurred_at":"2026-01-02T15:04:05Z","data":{"k":1,"k":2}}`,
	event(`{}`) + `{}`,
	event(`{}`) + ` x`,
	event(`{}`) + "\n",
	event(`{"amount":4`),
	`{"source":"a","type`,
	`{"source":"a","type":"b","occurred_at":"2026-01-02T15:04:05Z","data":{` + "\t\n" + `"k" : [ true , false , null ] }}`,
	`{"":1}`,
}

// batchSeeds are bodies of POST /events/batch worth starting from.
var batchSeeds = []string{
	batch(1, event(`{"amount":42}`)),
	batch(3, `{"source":"a","type":"b","occurred_at":"2026-01-02T15:04:05Z"}`),
	`{"events":[` + event(`{}`) + `,{"source":"","type":"b","occurred_at":"x"},` + event(`{"s":"\ud800"}`) + `]}`,
	`{"events":[1,"x",null,[],` + event(`{}`) + `,{"extra":1}]}`,
	batch(events.MaxBatch, `{"source":"a","type":"b","occurred_at":"2026-01-02T15:04:05Z"}`),
	batch(events.MaxBatch+1, `{"source":"a","type":"b","occurred_at":"2026-01-02T15:04:05Z"}`),
	`{"events":[]}`,
	`{"events":null}`,
	`{"events":{}}`,
	`{"events":"x"}`,
	`{}`,
	``,
	`null`,
	`[` + event(`{}`) + `]`,
	`{"events":[` + event(`{}`) + `],"extra":1}`,
	`{"EVENTS":[` + event(`{}`) + `]}`,
	`{"events":[` + event(`{}`) + `],"events":[]}`,
	batch(1, event(`{}`)) + `[]`,
	`{"events":[` + event(`{}`),
	batch(2, event(`{"n":1e400}`)),
	batch(1, event(`{"n":0.`+strings.Repeat("0", 16384)+`1}`)),
	batch(1, event(`{"s":"\u0000"}`)),
	batch(1, event(strings.Repeat(`[`, 9997)+strings.Repeat(`]`, 9997))),
	`{"events":[{"":1}]}`,
}

func FuzzParseOne(f *testing.F) {
	for _, s := range eventSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := events.ParseOne(body)
		in2, err2 := events.ParseOne(body)
		if !reflect.DeepEqual(in, in2) || !reflect.DeepEqual(err, err2) {
			t.Fatalf("ParseOne is not deterministic: %s, %v then %s, %v", showIn(in), err, showIn(in2), err2)
		}
		if err != nil {
			var fe *events.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseOne error %T %v is not a *FieldError", err, err)
			}
			checkFieldError(t, fe, "", "body", "source", "type", "occurred_at", "data")
			if !reflect.DeepEqual(in, events.Input{}) {
				t.Fatalf("ParseOne failed but returned %s", showIn(in))
			}
			return
		}
		if in.Data != nil && !json.Valid(in.Data) {
			t.Fatalf("ParseOne accepted data that is not JSON: %q", in.Data)
		}
		checkValidate(t, in, "")
	})
}

func FuzzParseBatch(f *testing.F) {
	for _, s := range batchSeeds {
		f.Add([]byte(s))
	}
	for _, s := range eventSeeds {
		f.Add([]byte(`{"events":[` + s + `]}`))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ins, err := events.ParseBatch(body)
		ins2, err2 := events.ParseBatch(body)
		if !reflect.DeepEqual(ins, ins2) || !reflect.DeepEqual(err, err2) {
			t.Fatalf("ParseBatch is not deterministic: %+v, %v then %+v, %v", ins, err, ins2, err2)
		}
		if err != nil {
			if ins != nil {
				t.Fatalf("ParseBatch failed but returned %d inputs", len(ins))
			}
			var fe *events.FieldError
			var fes events.FieldErrors
			switch {
			case errors.As(err, &fe):
				// The envelope's problem.
				checkFieldError(t, fe, "", "body", "events")
			case errors.As(err, &fes):
				if len(fes) == 0 || len(fes) > events.MaxBatch {
					t.Fatalf("ParseBatch returned %d field errors", len(fes))
				}
				last := -1
				for _, fe := range fes {
					m := eventField.FindStringSubmatch(fe.Field)
					if m == nil {
						t.Fatalf("batch field error %q does not name events[i]", fe.Field)
					}
					i, _ := strconv.Atoi(m[1])
					if i <= last || i >= events.MaxBatch {
						t.Fatalf("batch field errors out of order or range: %v", fes)
					}
					last = i
					at := "events[" + m[1] + "]"
					checkFieldError(t, fe, at, at, at+".source", at+".type", at+".occurred_at", at+".data")
				}
			default:
				t.Fatalf("ParseBatch error %T %v is neither a FieldError nor FieldErrors", err, err)
			}
			return
		}
		if len(ins) < 1 || len(ins) > events.MaxBatch {
			t.Fatalf("ParseBatch accepted %d events", len(ins))
		}
		// Each event of an accepted batch reads as it would on its own.
		var env struct{ Events []json.RawMessage }
		if err := json.Unmarshal(body, &env); err != nil || len(env.Events) != len(ins) {
			t.Fatalf("accepted batch reads back as %d events, %v", len(env.Events), err)
		}
		for i, raw := range env.Events {
			one, err := events.ParseOne(raw)
			if err != nil || !reflect.DeepEqual(one, ins[i]) {
				t.Fatalf("events[%d] is %s in the batch but %s, %v alone", i, showIn(ins[i]), showIn(one), err)
			}
		}
		// Validate as the batch handler does.
		for i, in := range ins {
			checkValidate(t, in, "events["+strconv.Itoa(i)+"].")
		}
	})
}

// eventField is a field name that points into one event of a batch.
var eventField = regexp.MustCompile(`^events\[(0|[1-9][0-9]*)\](\.|$)`)

// checkFieldError checks that fe says something and names a field under
// prefix: one of names, or for an unknown field the name the client sent.
func checkFieldError(t *testing.T, fe *events.FieldError, prefix string, names ...string) {
	t.Helper()
	if fe == nil {
		t.Fatal("nil *FieldError")
	}
	if strings.TrimSpace(fe.Message) == "" {
		t.Fatalf("field error %q has no message", fe.Field)
	}
	if !strings.HasPrefix(fe.Field, prefix) {
		t.Fatalf("field error %q is not under %q", fe.Field, prefix)
	}
	if strings.HasPrefix(fe.Message, "Unknown field") {
		// Under an event of a batch the name follows a dot; alone, it is
		// the whole field, even when the client named the field ".".
		name := strings.TrimPrefix(fe.Field, prefix)
		if prefix != "" && !strings.HasSuffix(prefix, ".") {
			var dot bool
			if name, dot = strings.CutPrefix(name, "."); !dot {
				t.Fatalf("field error %q has no dot after %q", fe.Field, prefix)
			}
		}
		if name == "" {
			t.Fatalf("field error names no field: %+v", fe)
		}
		return
	}
	for _, n := range names {
		if fe.Field == n {
			return
		}
	}
	t.Fatalf("field error %+v names none of %q", fe, names)
}

// checkValidate validates in with the field prefix and checks the result
// against the rules of the ingestion API, stated here independently.
func checkValidate(t *testing.T, in events.Input, prefix string) {
	t.Helper()
	ev, errs := in.Validate(prefix, fuzzNow)
	ev2, errs2 := in.Validate(prefix, fuzzNow)
	ev2.ID = ev.ID // a new id each time, by design
	if !reflect.DeepEqual(ev, ev2) || !reflect.DeepEqual(errs, errs2) {
		t.Fatalf("Validate is not deterministic: %s %v then %s %v", showEv(ev), errs, showEv(ev2), errs2)
	}

	// Which fields should be refused, and why.
	want := map[string]string{}
	if !validName(in.Source) {
		want["source"] = "not a name"
	}
	if !validName(in.Type) {
		want["type"] = "not a name"
	}
	at, err := time.Parse(time.RFC3339Nano, in.OccurredAt)
	switch {
	case err != nil:
		want["occurred_at"] = "not RFC 3339"
	case at.After(fuzzNow.Add(time.Hour)):
		want["occurred_at"] = "over an hour ahead"
	case at.Before(time.Unix(0, 0)):
		want["occurred_at"] = "before 1970"
	}
	data := []byte(in.Data)
	if len(data) > 0 && string(data) != "null" {
		if data[0] != '{' {
			want["data"] = "not an object"
		} else if why := jsonbRefuses(data); why != "" {
			want["data"] = why
		}
	}

	got := map[string]string{}
	for _, fe := range errs {
		checkFieldError(t, fe, prefix, prefix+"source", prefix+"type", prefix+"occurred_at", prefix+"data")
		f := strings.TrimPrefix(fe.Field, prefix)
		if _, dup := got[f]; dup {
			t.Fatalf("Validate named %q twice: %v", fe.Field, errs)
		}
		got[f] = fe.Message
	}
	for f, why := range want {
		if _, ok := got[f]; !ok {
			t.Fatalf("Validate(%q) accepted %s (%s): %s", prefix, f, why, showIn(in))
		}
	}
	for f := range got {
		if _, ok := want[f]; !ok {
			t.Fatalf("Validate(%q) refused %s, which is valid: %v; %s", prefix, f, errs, showIn(in))
		}
	}
	if errs != nil {
		if !reflect.DeepEqual(ev, events.Event{}) {
			t.Fatalf("Validate refused but returned %s", showEv(ev))
		}
		return
	}

	// The event to store.
	if id, err := uuid.Parse(ev.ID); err != nil || id.Version() != 7 || id.String() != ev.ID {
		t.Fatalf("event id %q is not a canonical UUIDv7", ev.ID)
	}
	if ev.Source != in.Source || ev.Type != in.Type {
		t.Fatalf("event %q/%q from input %q/%q", ev.Source, ev.Type, in.Source, in.Type)
	}
	if wantAt := at.UTC().Truncate(time.Microsecond); !ev.OccurredAt.Equal(wantAt) || ev.OccurredAt.Location() != time.UTC {
		t.Fatalf("occurred_at %v from %q, want %v", ev.OccurredAt, in.OccurredAt, wantAt)
	}
	if ev.OccurredAt.Before(time.Unix(0, 0)) || ev.OccurredAt.After(fuzzNow.Add(time.Hour)) {
		t.Fatalf("stored occurred_at %v is out of bounds", ev.OccurredAt)
	}
	if want := fuzzNow.Truncate(time.Microsecond); !ev.ReceivedAt.Equal(want) || ev.ReceivedAt.Location() != time.UTC {
		t.Fatalf("received_at %v, want %v", ev.ReceivedAt, want)
	}
	wantData := in.Data
	if len(wantData) == 0 || string(wantData) == "null" {
		wantData = json.RawMessage("{}")
	}
	if !bytes.Equal(ev.Data, wantData) || ev.Data[0] != '{' || !json.Valid(ev.Data) {
		t.Fatalf("data %q from %q", ev.Data, in.Data)
	}
	if why := jsonbRefuses(ev.Data); why != "" {
		t.Fatalf("data %q cannot be stored: %s", ev.Data, why)
	}

	// What was accepted is accepted again, unchanged, when sent back as
	// the API shows it.
	again := fmt.Sprintf(`{"source":%q,"type":%q,"occurred_at":%q,"data":%s}`,
		ev.Source, ev.Type, ev.OccurredAt.Format(time.RFC3339Nano), ev.Data)
	in3, err := events.ParseOne([]byte(again))
	if err != nil {
		t.Fatalf("the accepted event does not parse when sent back: %v\n%s", err, again)
	}
	ev3, errs3 := in3.Validate(prefix, fuzzNow)
	ev3.ID = ev.ID
	if errs3 != nil || !reflect.DeepEqual(ev, ev3) {
		t.Fatalf("the accepted event %s comes back as %s, %v", showEv(ev), showEv(ev3), errs3)
	}
}

// showIn and showEv print data as text in failure messages.
func showIn(in events.Input) string {
	return fmt.Sprintf("{source:%q type:%q occurred_at:%q data:%q}", in.Source, in.Type, in.OccurredAt, in.Data)
}

func showEv(ev events.Event) string {
	return fmt.Sprintf("{id:%s source:%q type:%q occurred_at:%s received_at:%s data:%q}",
		ev.ID, ev.Source, ev.Type, ev.OccurredAt.Format(time.RFC3339Nano), ev.ReceivedAt.Format(time.RFC3339Nano), ev.Data)
}

// validName is the rule for source and type: 1–100 ASCII letters, digits,
// '.', '_', ':' or '-', the first a letter or digit.
func validName(s string) bool {
	if len(s) < 1 || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("._:-", rune(c))) {
			return false
		}
	}
	return true
}

// jsonbRefuses says why PostgreSQL 15's jsonb input would refuse b, which
// must be valid JSON, or Keyward's stricter rule that numbers fit a
// float64 would; "" if neither. It walks the text itself: string escapes
// (\u0000, lone or misordered surrogates) and numbers (numeric's limits).
// TestFuzzJSONBOracle holds it against a real server.
func jsonbRefuses(b []byte) string {
	if !utf8.Valid(b) {
		return "not UTF-8"
	}
	for i := 0; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			i++
			for b[i] != '"' {
				if b[i] != '\\' {
					i++
					continue
				}
				if b[i+1] != 'u' {
					i += 2
					continue
				}
				r := hex4(b[i+2 : i+6])
				i += 6
				switch {
				case r == 0:
					return "\\u0000"
				case r >= 0xDC00 && r <= 0xDFFF:
					return "lone low surrogate"
				case r >= 0xD800 && r <= 0xDBFF:
					if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
						return "lone high surrogate"
					}
					if lo := hex4(b[i+2 : i+6]); lo < 0xDC00 || lo > 0xDFFF {
						return "high surrogate without a low one"
					}
					i += 6
				}
			}
			i++
		case c == '-' || '0' <= c && c <= '9':
			j := i
			for j < len(b) && strings.IndexByte("+-0123456789.eE", b[j]) >= 0 {
				j++
			}
			if why := numberRefused(string(b[i:j])); why != "" {
				return why
			}
			i = j
		default:
			i++
		}
	}
	return ""
}

func hex4(b []byte) uint64 {
	n, err := strconv.ParseUint(string(b), 16, 16)
	if err != nil {
		panic(fmt.Sprintf("bad \\u escape %q in text that was valid JSON", b))
	}
	return n
}

// numberRefused applies Keyward's float64 rule and Postgres numeric's
// input limits to a JSON number: an exponent e with |e| < 2^30-1
// (INT_MAX/2), and at most 16,383 digits after the point once the
// exponent is applied (the display scale).
func numberRefused(n string) string {
	if _, err := strconv.ParseFloat(n, 64); err != nil {
		return "beyond float64"
	}
	mant, exp, _ := strings.Cut(strings.ToLower(n), "e")
	e := new(big.Int)
	if exp != "" {
		if _, ok := e.SetString(strings.TrimPrefix(exp, "+"), 10); !ok {
			panic("bad exponent in " + n)
		}
	}
	if limit := big.NewInt(1<<30 - 1); e.CmpAbs(limit) >= 0 {
		return "exponent out of numeric's range"
	}
	_, frac, _ := strings.Cut(mant, ".")
	if scale := int64(len(frac)) - e.Int64(); scale > 16383 {
		return "more than 16383 decimal places"
	}
	return ""
}

// TestFuzzJSONBOracle holds jsonbRefuses against PostgreSQL's jsonb: for
// each sample, the oracle refuses it exactly when the server does (or,
// for numbers, when it is beyond float64, which Keyward refuses first).
// It also stores the data of every seed event that Validate accepts.
func TestFuzzJSONBOracle(t *testing.T) {
	pool := dbtest.New(t)
	ctx := context.Background()
	refused := func(data []byte) error {
		_, err := pool.Exec(ctx, "SELECT $1::text::jsonb", string(data))
		return err
	}
	samples := []struct {
		data    string
		float64 bool // refused only by the float64 rule
	}{
		{`{}`, false},
		{`{"a":[1,-2.5,3e2,true,null,"x"]}`, false},
		{`{"n":1e308}`, false},
		{`{"n":1e309}`, true},
		{`{"n":-1e400}`, true},
		{`{"n":1e-400}`, false},
		{`{"n":1e-16383}`, false},
		{`{"n":1e-16384}`, false},
		{`{"n":1.0e-16383}`, false},
		{`{"n":0.` + strings.Repeat("0", 16382) + `1}`, false},
		{`{"n":0.` + strings.Repeat("0", 16383) + `1}`, false},
		{`{"n":0e1073741822}`, false},
		{`{"n":0e1073741823}`, false},
		{`{"n":0e-1073741822}`, false},
		{`{"n":0e-1073741823}`, false},
		{`{"n":0e-9223372036854775808}`, false},
		{`{"n":-0.0E+99999999999999999999}`, false},
		{`{"s":"\u0000"}`, false},
		{`{"s":"\\u0000"}`, false},
		{`{"s":"\u0001\u00e9\uffff"}`, false},
		{`{"s":"\ud800"}`, false},
		{`{"s":"\udbff\udfff"}`, false},
		{`{"s":"\udc00\ud800"}`, false},
		{`{"s":"\ud800\u0041"}`, false},
		{`{"s":"\ud800\\udc00"}`, false},
		{`{"\ud800":1}`, false},
		{`{"a":` + strings.Repeat(`[`, 9999) + strings.Repeat(`]`, 9999) + `}`, false},
	}
	for _, s := range samples {
		why := jsonbRefuses([]byte(s.data))
		err := refused([]byte(s.data))
		if s.float64 {
			if why != "beyond float64" || err != nil {
				t.Errorf("%.60s: oracle %q, jsonb %v; want refused for float64 only", s.data, why, err)
			}
			continue
		}
		if (why != "") != (err != nil) {
			t.Errorf("%.60s: oracle %q, jsonb %v", s.data, why, err)
		}
	}

	// Every seed event that Validate accepts can be stored.
	var ins []events.Input
	for _, s := range eventSeeds {
		if in, err := events.ParseOne([]byte(s)); err == nil {
			ins = append(ins, in)
		}
	}
	for _, s := range batchSeeds {
		if b, err := events.ParseBatch([]byte(s)); err == nil {
			ins = append(ins, b...)
		}
	}
	stored := 0
	for _, in := range ins {
		ev, errs := in.Validate("", fuzzNow)
		if errs != nil {
			continue
		}
		if err := refused(ev.Data); err != nil {
			t.Errorf("accepted data %.60s cannot be stored: %v", ev.Data, err)
		}
		stored++
	}
	if stored < 10 {
		t.Errorf("only %d seed events were accepted and stored", stored)
	}
}

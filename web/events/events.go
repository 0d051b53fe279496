// Package events owns the data API consumers send: validation, ingestion
// with idempotency, and reads. Every function takes the (tenant,
// environment) partition of the calling key and touches nothing outside
// it. It must not import echo.
package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"keyward/db"
	"keyward/web/errs"
)

// Limits of the ingestion API.
const (
	MaxBatch        = 500
	MaxBody         = 1 << 20 // bytes
	IdempotencyTTL  = 24 * time.Hour
	MaxIdemKeyLen   = 255
	MaxFutureSkew   = time.Hour
	DefaultPageSize = 50
	MaxPageSize     = 100
)

// Errors of ingestion.
var (
	// ErrInFlight: a request with the same idempotency key is still running.
	ErrInFlight = errs.New(errs.Conflict, errs.CodeIdempotencyInFlight,
		"A request with this Idempotency-Key is still being processed: retry in a moment to get its result.")
	// ErrKeyReused: the idempotency key was used with a different body.
	ErrKeyReused = errs.New(errs.Invalid, errs.CodeIdempotencyReused,
		"This Idempotency-Key was already used with a different request body: use a new key for a new request.")
	// ErrNotFound: no such event where the key may look.
	ErrNotFound = errs.New(errs.NotFound, "", "No event with this id in this key's environment.")
)

// FieldError names the field that is wrong and what to do.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// FieldErrors is every problem of a batch, so one report covers the job.
type FieldErrors []*FieldError

func (e FieldErrors) Error() string {
	parts := make([]string, len(e))
	for i, f := range e {
		parts[i] = f.Error()
	}
	return strings.Join(parts, "; ")
}

// Partition is where a key's data lives, and which key acts.
type Partition struct {
	TenantID    int64
	Environment string
	KeyID       string
}

// Input is an event as a client sends it.
type Input struct {
	Source     string          `json:"source"`
	Type       string          `json:"type"`
	OccurredAt string          `json:"occurred_at"`
	Data       json.RawMessage `json:"data"`
}

// Event is a stored event.
type Event struct {
	ID         string          `json:"id"`
	Source     string          `json:"source"`
	Type       string          `json:"type"`
	OccurredAt time.Time       `json:"occurred_at"`
	ReceivedAt time.Time       `json:"received_at"`
	Data       json.RawMessage `json:"data"`

	// field is the prefix Validate named this event's fields with ("" or
	// "events[3]."), so that Ingest can name its data too.
	field string
}

// minTime is the earliest occurred_at accepted.
var minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

var nameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._:-]{0,99}$`)

// ParseOne reads the body of POST /events.
func ParseOne(body []byte) (Input, error) {
	var in Input
	if err := decode(body, &in, ""); err != nil {
		return Input{}, err
	}
	return in, nil
}

// ParseBatch reads the body of POST /events/batch: {"events": [...]}.
// Each event is decoded on its own, so an error names its index.
func ParseBatch(body []byte) ([]Input, error) {
	var b struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := decode(body, &b, "batch"); err != nil {
		return nil, err
	}
	switch {
	case b.Events == nil:
		return nil, &FieldError{"events", "Send a JSON object with an \"events\" array."}
	case len(b.Events) == 0:
		return nil, &FieldError{"events", "The batch is empty: send between 1 and 500 events."}
	case len(b.Events) > MaxBatch:
		return nil, &FieldError{"events", fmt.Sprintf("The batch has %d events; at most %d are accepted per request.", len(b.Events), MaxBatch)}
	}
	ins := make([]Input, len(b.Events))
	var fes FieldErrors
	for i, raw := range b.Events {
		prefix := "events[" + strconv.Itoa(i) + "]"
		if err := decode(raw, &ins[i], prefix); err != nil {
			fes = append(fes, err.(*FieldError))
		}
	}
	if fes != nil {
		return nil, fes
	}
	return ins, nil
}

// decode reads exactly one JSON value into v, refusing unknown fields.
// prefix names where v sits: "" for a single event, "events[3]" for one
// of a batch, "batch" for the batch's envelope.
func decode(body []byte, v any, prefix string) error {
	name := func(f string) string {
		if prefix == "" || prefix == "batch" {
			return f
		}
		return prefix + "." + f
	}
	where := func() string {
		if prefix == "" || prefix == "batch" {
			return "body"
		}
		return prefix
	}
	accepted := "source, type, occurred_at and data"
	if prefix == "batch" {
		accepted = "events"
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			return &FieldError{name(te.Field), fmt.Sprintf("Expected %s here.", te.Type)}
		case errors.As(err, &te):
			return &FieldError{where(), "Expected a JSON object here."}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			// The name is quoted with %q: unquote it, so that a key such as
			// a" is named as sent, not as a\.
			q := strings.TrimPrefix(err.Error(), "json: unknown field ")
			f, uerr := strconv.Unquote(q)
			if uerr != nil {
				f = strings.TrimSuffix(strings.TrimPrefix(q, `"`), `"`)
			}
			if f == "" {
				// name("") would name no field, or "events[0]." in a batch:
				// the object holding the key is the place to point at.
				return &FieldError{where(), "A field with an empty name (\"\") is not accepted: the accepted fields are " + accepted + "."}
			}
			return &FieldError{name(f), "Unknown field: the accepted fields are " + accepted + "."}
		case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return &FieldError{where(), "This is not valid JSON."}
		}
		return &FieldError{where(), "This is not valid JSON: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &FieldError{where(), "The body must hold exactly one JSON value."}
	}
	return nil
}

// Validate checks one input and returns the event to store, received at
// now. field prefixes the field names ("" or "events[3].").
func (in Input) Validate(field string, now time.Time) (Event, FieldErrors) {
	var fes FieldErrors
	bad := func(f, msg string) { fes = append(fes, &FieldError{field + f, msg}) }
	if !nameRe.MatchString(in.Source) {
		bad("source", "Required: 1–100 letters, digits, '.', '_', ':' or '-', starting with a letter or digit.")
	}
	if !nameRe.MatchString(in.Type) {
		bad("type", "Required: 1–100 letters, digits, '.', '_', ':' or '-', starting with a letter or digit.")
	}
	var at time.Time
	if in.OccurredAt == "" {
		bad("occurred_at", "Required: an RFC 3339 time such as 2026-01-02T15:04:05Z.")
	} else if t, err := time.Parse(time.RFC3339Nano, in.OccurredAt); err != nil {
		bad("occurred_at", fmt.Sprintf("%q is not an RFC 3339 time such as 2026-01-02T15:04:05Z.", in.OccurredAt))
	} else if t.After(now.Add(MaxFutureSkew)) {
		bad("occurred_at", "This time is more than an hour in the future: check the sender's clock.")
	} else if t.Before(minTime) {
		bad("occurred_at", "This time is before 1970: check the value.")
	} else {
		// Postgres keeps microseconds: the answer shows what is stored.
		at = t.UTC().Truncate(time.Microsecond)
	}
	data := in.Data
	if len(data) == 0 || string(data) == "null" {
		data = json.RawMessage("{}")
	} else if data[0] != '{' {
		bad("data", "Must be a JSON object, such as {\"amount\": 42}.")
	} else if msg := storable(data); msg != "" {
		bad("data", msg)
	}
	if len(fes) > 0 {
		return Event{}, fes
	}
	id, err := uuid.NewV7()
	if err != nil {
		panic(err) // crypto/rand never fails
	}
	return Event{ID: id.String(), Source: in.Source, Type: in.Type, OccurredAt: at, ReceivedAt: now.UTC().Truncate(time.Microsecond), Data: data, field: field}, nil
}

// storable explains why Postgres's jsonb would refuse JSON text that Go
// accepted, or returns "": invalid UTF-8, the escape \u0000, a lone
// surrogate escape, or a number numberProblem refuses.
func storable(b []byte) string {
	if !utf8.Valid(b) {
		return "Must be UTF-8 text."
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			continue
		}
		if b[i+1] != 'u' || i+6 > len(b) {
			i++ // a two-character escape such as \\ or \"
			continue
		}
		r, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 32)
		if err != nil {
			return "Holds a malformed \\u escape."
		}
		switch {
		case r == 0:
			return "Holds \\u0000, which cannot be stored: drop NUL characters."
		case r >= 0xD800 && r <= 0xDBFF:
			if i+12 > len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
				return "Holds an unpaired surrogate escape (\\uD800–\\uDBFF): send valid UTF-16 pairs."
			}
			lo, err := strconv.ParseUint(string(b[i+8:i+12]), 16, 32)
			if err != nil || lo < 0xDC00 || lo > 0xDFFF {
				return "Holds an unpaired surrogate escape (\\uD800–\\uDBFF): send valid UTF-16 pairs."
			}
			i += 11
			continue
		case r >= 0xDC00 && r <= 0xDFFF:
			return "Holds an unpaired surrogate escape (\\uDC00–\\uDFFF): send valid UTF-16 pairs."
		}
		i += 5
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return "" // io.EOF; the syntax was checked when the body was read
		}
		if n, ok := tok.(json.Number); ok {
			if msg := numberProblem(string(n)); msg != "" {
				return msg
			}
		}
	}
}

// clientDataError reports whether Postgres refused the JSON data itself:
// a number out of range, a character it cannot store, or JSON it cannot
// read. Other data exceptions would be about values the server made, and
// stay server errors.
func clientDataError(e *pgconn.PgError) bool {
	switch e.Code {
	case "22003", "22P05", "22021": // numeric out of range, untranslatable character, not in repertoire
		return true
	case "22P02": // invalid text representation: only json's is the client's
		return strings.Contains(e.Message, "json")
	}
	return false
}

// Limits of Postgres numeric's input, which jsonb uses for numbers.
const (
	// numericMaxExp bounds the decimal exponent: numeric refuses
	// |e| >= INT_MAX/2 outright, before looking at the digits, so even
	// 0e1073741823 is "value overflows numeric format" (22003).
	numericMaxExp = 1<<30 - 1
	// numericMaxScale is the most digits numeric keeps after the point
	// once the exponent is applied (its display scale).
	numericMaxScale = 16383
)

// numberProblem explains why a JSON number cannot be stored, or returns
// "": beyond float64's range (Keyward's rule: clients read numbers as
// doubles), an exponent numeric refuses, or more than 16,383 decimal places
// (a number such as 1e-16384 is a harmless 0 to Go and an error to jsonb).
func numberProblem(n string) string {
	if _, err := strconv.ParseFloat(n, 64); err != nil {
		return fmt.Sprintf("Holds the number %.40s, which is beyond the range of a 64-bit float (about ±1.8e308): send a smaller number.", n)
	}
	mant, exp, _ := strings.Cut(strings.ToLower(n), "e")
	e := int64(0)
	if exp != "" {
		// An exponent that overflows int64 is out of range too; checking
		// the bound first also keeps the scale below from overflowing.
		v, err := strconv.ParseInt(exp, 10, 64)
		if err != nil || v >= numericMaxExp || v <= -numericMaxExp {
			return fmt.Sprintf("Holds the number %.40s, whose exponent cannot be stored: write it with an exponent between -%d and %d (a zero as plain 0).",
				n, numericMaxExp-1, numericMaxExp-1)
		}
		e = v
	}
	_, frac, _ := strings.Cut(mant, ".")
	if int64(len(frac))-e > numericMaxScale {
		return fmt.Sprintf("Holds the number %.40s, which has more than %d digits after the decimal point: round it.", n, numericMaxScale)
	}
	return ""
}

// Response is what an ingestion request answered, stored for replays.
type Response struct {
	Status   int
	Body     []byte
	Replayed bool
}

// Ingest stores evs under one idempotency key of the calling API key, all
// or nothing, in one statement. render builds the response before anything
// is written; it is stored with the idempotency key and replayed byte for
// byte to a retry with the same body (hash). The same key with another
// body is ErrKeyReused; while the first request runs, ErrInFlight.
func Ingest(ctx context.Context, q *db.Queries, p Partition, idemKey string, hash [32]byte, evs []Event,
	render func([]Event) (int, []byte, error), now time.Time) (Response, error) {
	status, body, err := render(evs)
	if err != nil {
		return Response{}, err
	}
	arg := db.IngestEventsParams{
		KeyID: p.KeyID, IdemKey: idemKey, Since: now.Add(-IdempotencyTTL), TenantID: p.TenantID,
		RequestHash: hash[:], Status: int32(status), Body: body, CreatedAt: now, Environment: p.Environment,
		Ids: make([]string, len(evs)), Sources: make([]string, len(evs)), Types: make([]string, len(evs)),
		Occurred: make([]time.Time, len(evs)), Received: make([]time.Time, len(evs)), Datas: make([]string, len(evs)),
	}
	for i, e := range evs {
		arg.Ids[i], arg.Sources[i], arg.Types[i] = e.ID, e.Source, e.Type
		arg.Occurred[i], arg.Received[i], arg.Datas[i] = e.OccurredAt, e.ReceivedAt, string(e.Data)
	}
	// A second run is needed only when a request with the same key
	// committed between this statement's snapshot and its lock.
	for range 2 {
		row, err := q.IngestEvents(ctx, arg)
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && clientDataError(pgErr):
			// A value in the client's data that Validate let through and
			// jsonb refuses: the client's to fix, not a server failure.
			return Response{}, dataRefused(evs, pgErr)
		case err != nil:
			return Response{}, err
		case row.Status != nil:
			// A live stored answer decides, lock or no lock: only a request
			// replacing it at its expiry could hold the lock, and either
			// answer is right at that instant.
			if !bytes.Equal(row.RequestHash, hash[:]) {
				return Response{}, ErrKeyReused
			}
			return Response{Status: int(*row.Status), Body: row.Body, Replayed: true}, nil
		case !row.Locked:
			return Response{}, ErrInFlight
		case row.Inserted == int64(len(evs)):
			return Response{Status: status, Body: body}, nil
		}
	}
	return Response{}, ErrInFlight
}

// dataRefused names the data Postgres refused as Validate would have.
// Postgres does not say which row it was, so in a batch of several the
// error is on the batch.
func dataRefused(evs []Event, e *pgconn.PgError) *FieldError {
	if len(evs) == 1 {
		return &FieldError{evs[0].field + "data", "A value in this event's data cannot be stored: " + e.Message + "."}
	}
	return &FieldError{"events", "A value in the data of one of these events cannot be stored: " + e.Message + "."}
}

// Query filters a list of events.
type Query struct {
	Source string
	Type   string
	// After is the cursor: the last id of the previous page.
	After string
	Limit int
	// Sources restricts a source-bound key to its sources.
	Sources []string
}

// List returns one page, newest first, and the cursor of the next page
// ("" when this is the last).
func List(ctx context.Context, q *db.Queries, p Partition, f Query) ([]Event, string, error) {
	if f.After != "" {
		u, err := uuid.Parse(f.After)
		if err != nil {
			return nil, "", &FieldError{"cursor", "This cursor is not one Keyward gave out: use next_cursor from the previous page."}
		}
		f.After = u.String() // uuid.Parse also takes forms Postgres does not
	}
	for field, v := range map[string]string{"source": f.Source, "type": f.Type} {
		if v != "" && !nameRe.MatchString(v) {
			return nil, "", &FieldError{field, "Filter by 1–100 letters, digits, '.', '_', ':' or '-'."}
		}
	}
	limit := f.Limit
	rows, err := q.ListEvents(ctx, db.ListEventsParams{TenantID: p.TenantID, Environment: p.Environment,
		After: f.After, Source: f.Source, Type: f.Type, Sources: append([]string{}, f.Sources...), Lim: int32(limit + 1)})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = rows[limit-1].ID
	}
	out := make([]Event, len(rows))
	for i, r := range rows {
		out[i] = eventOf(r)
	}
	return out, next, nil
}

// Get returns one event of the partition, or db.ErrNotFound.
func Get(ctx context.Context, q *db.Queries, p Partition, id string) (Event, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return Event{}, db.ErrNotFound
	}
	r, err := q.GetEvent(ctx, db.GetEventParams{TenantID: p.TenantID, Environment: p.Environment, ID: u.String()})
	if err != nil {
		return Event{}, err
	}
	return eventOf(r), nil
}

// ExpireIdempotencyKeys deletes keys older than IdempotencyTTL.
func ExpireIdempotencyKeys(ctx context.Context, q *db.Queries, now time.Time) (int64, error) {
	return q.DeleteExpiredIdempotencyKeys(ctx, now.Add(-IdempotencyTTL))
}

func eventOf(r db.Event) Event {
	return Event{ID: r.ID, Source: r.Source, Type: r.Type, OccurredAt: r.OccurredAt.UTC(), ReceivedAt: r.ReceivedAt.UTC(), Data: r.Data}
}

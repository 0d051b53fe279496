package events

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"keyward/db"
	"keyward/web/errs"
)

// Service is the events aggregate: each method owns its transaction and
// returns events or an *errs.Error.
type Service struct {
	Store *db.Store
	Now   func() time.Time
}

// Caller is the API key acting: where its data lives and which sources it
// may touch (none listed: every source).
type Caller struct {
	Partition
	Sources []string
}

func (c Caller) allows(source string) bool {
	return len(c.Sources) == 0 || slices.Contains(c.Sources, source)
}

// IngestRequest is one POST to an ingestion route.
type IngestRequest struct {
	// Route names the route; it is part of the idempotency hash, so one
	// key cannot replay a single event's answer on the batch route.
	Route string
	Batch bool
	Body  []byte
	// IdempotencyKey is the client's Idempotency-Key header.
	IdempotencyKey string
	// Render builds the response to the stored events, stored with the
	// idempotency key and replayed byte for byte.
	Render func([]Event) (status int, body []byte, err error)
}

// Ingest validates the body (every field problem at once), checks the
// key's sources, and stores the events with their response, all or
// nothing.
func (s *Service) Ingest(ctx context.Context, by Caller, req IngestRequest) (Response, error) {
	idem := req.IdempotencyKey
	if err := CheckIdempotencyKey(idem); err != nil {
		return Response{}, err
	}
	now := s.Now()
	evs, err := parse(req.Batch, req.Body, now)
	if err != nil {
		return Response{}, asError(err)
	}
	for i, e := range evs {
		if !by.allows(e.Source) {
			field := "source"
			if req.Batch {
				field = "events[" + strconv.Itoa(i) + "].source"
			}
			msg := fmt.Sprintf("This key may not write to source %q: it is limited to %s.", e.Source, strings.Join(by.Sources, ", "))
			return Response{}, &errs.Error{Kind: errs.Forbidden, Message: msg, Fields: []errs.Field{{Name: field, Message: msg}}}
		}
	}
	hash := sha256.Sum256(append([]byte(req.Route+"\n"), req.Body...))
	res, err := Ingest(ctx, s.Store.Queries, by.Partition, idem, hash, evs, req.Render, now)
	return res, asError(err)
}

// CheckIdempotencyKey refuses a missing or malformed Idempotency-Key. The
// handler asks before it reads a body, so a request without one is told
// so, whatever its size.
func CheckIdempotencyKey(k string) error {
	if k == "" || len(k) > MaxIdemKeyLen || strings.ContainsFunc(k, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return errs.InvalidField("Idempotency-Key",
			"Send an Idempotency-Key header: 1–255 visible ASCII characters, such as a UUID, unique per operation.")
	}
	return nil
}

func parse(batch bool, body []byte, now time.Time) ([]Event, error) {
	if !batch {
		in, err := ParseOne(body)
		if err != nil {
			return nil, err
		}
		ev, fes := in.Validate("", now)
		if fes != nil {
			return nil, fes
		}
		return []Event{ev}, nil
	}
	ins, err := ParseBatch(body)
	if err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(ins))
	var fes FieldErrors
	for i, in := range ins {
		ev, fe := in.Validate("events["+strconv.Itoa(i)+"].", now)
		fes = append(fes, fe...)
		out = append(out, ev)
	}
	if fes != nil {
		return nil, fes
	}
	return out, nil
}

// asError gives field problems their kind; other errors pass as they are.
func asError(err error) error {
	var fe *FieldError
	var fes FieldErrors
	switch {
	case errors.As(err, &fe):
		return errs.InvalidField(fe.Field, fe.Message)
	case errors.As(err, &fes):
		all := make(errs.Fields, 0, len(fes))
		for _, f := range fes {
			all = append(all, errs.Field{Name: f.Field, Message: f.Message})
		}
		e := all.Err().(*errs.Error)
		e.Message = fmt.Sprintf("%d field(s) need fixing; nothing was stored. First: %s: %s", len(fes), fes[0].Field, fes[0].Message)
		return e
	}
	return err
}

// List returns a page of the caller's events, newest first, and the next
// page's cursor ("" on the last page).
func (s *Service) List(ctx context.Context, by Caller, f Query) ([]Event, string, error) {
	if f.Source != "" && !by.allows(f.Source) {
		msg := fmt.Sprintf("This key may not read source %q: it is limited to %s.", f.Source, strings.Join(by.Sources, ", "))
		return nil, "", &errs.Error{Kind: errs.Forbidden, Message: msg, Fields: []errs.Field{{Name: "source", Message: msg}}}
	}
	if f.Limit == 0 {
		f.Limit = DefaultPageSize
	}
	if f.Limit < 1 || f.Limit > MaxPageSize {
		return nil, "", errs.InvalidField("limit", fmt.Sprintf("limit must be a whole number from 1 to %d.", MaxPageSize))
	}
	f.Sources = by.Sources
	evs, next, err := List(ctx, s.Store.Queries, by.Partition, f)
	return evs, next, asError(err)
}

// Get returns one of the caller's events.
func (s *Service) Get(ctx context.Context, by Caller, id string) (Event, error) {
	ev, err := Get(ctx, s.Store.Queries, by.Partition, id)
	if errors.Is(err, db.ErrNotFound) || err == nil && !by.allows(ev.Source) {
		return Event{}, ErrNotFound
	}
	return ev, err
}

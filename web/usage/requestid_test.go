package usage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"keyward/web/usage"
)

// TestRequestIDsBoundTheSearch: an id made by NewRequestID is found
// without the row's time, and only within the two hours around the time
// it carries: a row whose time lies far from its id's is not found that
// way (proof that the search is bounded), but is with the row's time. An
// id of another shape is still found by reading the log.
func TestRequestIDsBoundTheSearch(t *testing.T) {
	r, store, _ := recorder(t, usage.Options{})
	ctx := context.Background()
	key, now := uuid.NewString(), time.Now().UTC().Truncate(time.Microsecond)
	near, far, old := row(key, 1, now), row(key, 2, now.Add(-3*time.Hour)), row(key, 3, now.Add(-time.Minute))
	near.RequestID = usage.NewRequestID(now)
	far.RequestID = usage.NewRequestID(now) // made now, logged three hours earlier: cannot happen, but shows the bound
	old.RequestID = "Xy7pQ2mN8vL4kR1sT6wZ3bC9dF5gH0jA"
	for _, q := range []usage.Request{near, far, old} {
		r.Log(q)
	}
	r.Flush(ctx)
	reader := &usage.Reader{Store: store}
	for _, q := range []usage.Request{near, old} {
		got, err := reader.Get(ctx, 1, q.RequestID, nil)
		if err != nil || got.RequestID != q.RequestID {
			t.Fatalf("%s without its time: %v %+v", q.RequestID, err, got)
		}
	}
	if _, err := reader.Get(ctx, 1, far.RequestID, nil); !errors.Is(err, usage.ErrNotFound) {
		t.Fatalf("a row three hours from its id's time was found without its time: %v", err)
	}
	if got, err := reader.Get(ctx, 1, far.RequestID, &far.At); err != nil || got.RequestID != far.RequestID {
		t.Fatalf("with its time: %v %+v", err, got)
	}
	if a, b := usage.NewRequestID(now), usage.NewRequestID(now); a == b || len(a) != 32 || a[:12] != b[:12] {
		t.Fatalf("ids %q and %q: want 32 characters, the same time and different randomness", a, b)
	}
}

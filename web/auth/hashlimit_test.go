package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"keyward/web/errs"
)

// A full line is refused at once with a 503's error and Retry-After; an
// attempt whose client leaves while in line gives its place back.
func TestHashLimitLine(t *testing.T) {
	l := NewHashLimit(1, 1)
	gate, running := make(chan struct{}), make(chan struct{})
	go l.Do(context.Background(), func() { close(running); <-gate })
	<-running

	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error)
	go func() {
		waited <- l.Do(ctx, func() { t.Error("a second hash ran while the first held the only turn") })
	}()
	for deadline := time.Now().Add(30 * time.Second); l.Waiting() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second attempt never waited")
		}
	}

	err := l.Do(context.Background(), func() { t.Error("a hash ran beyond the line") })
	e, ok := errs.As(err)
	if !ok || e.Kind != errs.Unavailable || e.RetryAfter != time.Second || !errors.Is(err, ErrBusy) || e.Message != "Keyward is busy checking other passwords: try again in 1 second." {
		t.Fatalf("third attempt with the line full: %#v", err)
	}

	cancel()
	if err := <-waited; !errors.Is(err, context.Canceled) {
		t.Fatalf("the waiting attempt whose client left: %v", err)
	}
	if l.Waiting() != 0 {
		t.Errorf("Waiting = %d after the waiting attempt left", l.Waiting())
	}
	// Its place is free again: an attempt may wait there.
	later := make(chan error)
	ran := false
	go func() { later <- l.Do(context.Background(), func() { ran = true }) }()
	for deadline := time.Now().Add(30 * time.Second); l.Waiting() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no attempt could take the place the cancelled one left")
		}
	}
	close(gate)
	if err := <-later; err != nil || !ran {
		t.Fatalf("the attempt after the first hash: ran %v, %v", ran, err)
	}
	if l.Running() != 0 {
		t.Errorf("Running = %d with nothing hashing", l.Running())
	}
}

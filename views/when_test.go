package views

import (
	"testing"
	"time"
)

func TestRelative(t *testing.T) {
	now := time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "just now"},
		{-59 * time.Second, "just now"},
		{-3*time.Minute - 59*time.Second, "3 min ago"},
		{-time.Hour, "1 hour ago"},
		{-23*time.Hour - 59*time.Minute, "23 hours ago"},
		{-36 * time.Hour, "1 day ago"},
		{-59 * 24 * time.Hour, "59 days ago"},
		{-90 * 24 * time.Hour, "3 months ago"},
		{-800 * 24 * time.Hour, "2 years ago"},
		{30 * time.Second, "in under a minute"},
		{5 * time.Minute, "in 5 min"},
		{2 * time.Hour, "in 2 hours"},
		{30 * 24 * time.Hour, "in 30 days"},
		{366 * 24 * time.Hour, "in 12 months"},
	} {
		if got := Relative(now.Add(c.d), now); got != c.want {
			t.Errorf("Relative(now%+v) = %q, want %q", c.d, got, c.want)
		}
	}
}

package views

import (
	"strconv"
	"time"
)

// When is a moment as pages show it: in words, relative to the
// application's clock when the page was made ("3 min ago", "in 2 days"),
// inside a <time> element that carries the exact UTC time (TimeAgo).
type When struct {
	At    time.Time
	Words string
}

// At makes the When of t seen at now.
func At(t, now time.Time) When { return When{At: t, Words: Relative(t, now)} }

// AtPtr is At for a time that may be missing: nil stays nil.
func AtPtr(t *time.Time, now time.Time) *When {
	if t == nil {
		return nil
	}
	w := At(*t, now)
	return &w
}

// Exact writes t as pages do when they give the exact time:
// "2026-01-02 15:04:05 UTC".
func Exact(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// Machine is t for a datetime attribute: RFC 3339 in UTC.
func Machine(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Relative says how long before or after now t is, in the largest unit
// that fits, rounded down: "just now", "3 min ago", "1 hour ago", "in 5
// days", "2 months ago", "in 1 year".
func Relative(t, now time.Time) string {
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	const day = 24 * time.Hour
	var n int64
	var unit string
	switch {
	case d < time.Minute:
		if future {
			return "in under a minute"
		}
		return "just now"
	case d < time.Hour:
		n, unit = int64(d/time.Minute), "min"
	case d < day:
		n, unit = int64(d/time.Hour), "hour"
	case d < 60*day:
		n, unit = int64(d/day), "day"
	case d < 730*day:
		n, unit = int64(d/(30*day)), "month"
	default:
		n, unit = int64(d/(365*day)), "year"
	}
	s := strconv.FormatInt(n, 10) + " " + unit
	if n != 1 && unit != "min" {
		s += "s"
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

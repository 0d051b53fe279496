package portal

import "time"

// fmtTime writes a time as pages that show exact times do, in UTC, or "—"
// for none.
func fmtTime(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

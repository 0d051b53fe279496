package views

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/a-h/templ"
)

// UsageSeries is a key's requests per hour, oldest first, ending with the
// current hour.
type UsageSeries struct {
	Caption string
	// Hours[i] is the count of the hour First + i hours.
	Hours []int64
	// FirstLabel and LastLabel name the ends of the time axis.
	FirstLabel, LastLabel string
}

// Total is the series' sum.
func (s UsageSeries) Total() int64 {
	var t int64
	for _, n := range s.Hours {
		t += n
	}
	return t
}

// UsageChart draws a series as an inline SVG bar chart: no JavaScript, no
// image endpoint. Everything written is a number or text escaped here.
func UsageChart(s UsageSeries) templ.Component {
	return templ.ComponentFunc(func(ctx context.Context, w io.Writer) error {
		const width, height, top, bottom = 600.0, 180.0, 24.0, 28.0
		var peak int64
		for _, n := range s.Hours {
			peak = max(peak, n)
		}
		plot := height - top - bottom
		step := width / float64(max(len(s.Hours), 1))
		var sb strings.Builder
		fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s: %d requests, at most %d in one hour" data-testid="usage-chart" data-total="%d">`,
			width, height, templ.EscapeString(s.Caption), s.Total(), peak, s.Total())
		for i, n := range s.Hours {
			if n == 0 {
				continue
			}
			h := plot * float64(n) / float64(peak)
			fmt.Fprintf(&sb, `<rect class="bar" x="%.2f" y="%.2f" width="%.2f" height="%.2f"><title>%d</title></rect>`,
				float64(i)*step+step*0.1, top+plot-h, step*0.8, h, n)
		}
		fmt.Fprintf(&sb, `<line class="axis" x1="0" y1="%.1f" x2="%.0f" y2="%.1f"/>`, top+plot, width, top+plot)
		fmt.Fprintf(&sb, `<text x="0" y="16">peak %d/h</text>`, peak)
		fmt.Fprintf(&sb, `<text x="0" y="%.0f">%s</text>`, height-6, templ.EscapeString(s.FirstLabel))
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="end">%s</text>`, width, height-6, templ.EscapeString(s.LastLabel))
		sb.WriteString(`</svg>`)
		_, err := io.WriteString(w, sb.String())
		return err
	})
}

func formatCount(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

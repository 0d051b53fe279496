package views

import (
	"math"
	"strconv"
	"strings"
)

// Outcome is one way requests end, as the usage charts stack them.
type Outcome struct {
	// Class names the outcome in CSS (seg-<Class>, static/data.css) and
	// in the SVG pattern that fills it (kw-pat-<Class>).
	Class string
	// Label is its name in the legend and the table; One and Many count
	// it in a bar's title ("1 client error", "2 client errors").
	Label, One, Many string
	// Fill is the colour shown until the stylesheet says otherwise.
	Fill string
	// Pattern says the outcome is hatched, not only coloured.
	Pattern bool
}

// Outcomes are the outcomes in stacking order, bottom first. Counts index
// them.
var Outcomes = [4]Outcome{
	{Class: "success", Label: "Success (2xx, 3xx)", One: "success", Many: "successes", Fill: "#2f855a"},
	{Class: "client", Label: "Client error (4xx but 429)", One: "client error", Many: "client errors", Fill: "#c77c02", Pattern: true},
	{Class: "limited", Label: "Rate-limited (429)", One: "rate-limited", Many: "rate-limited", Fill: "#6b46c1", Pattern: true},
	{Class: "server", Label: "Server error (5xx)", One: "server error", Many: "server errors", Fill: "#c53030", Pattern: true},
}

// Counts are requests by outcome, in the order of Outcomes.
type Counts [4]int64

// Total is every request counted.
func (c Counts) Total() int64 { return c[0] + c[1] + c[2] + c[3] }

// Bar is one hour or one day of a usage chart.
type Bar struct {
	// Label says which hour or day the bar counts: "Jan 2, 15:00–16:00
	// UTC".
	Label string
	// Tick, when set, is written under the bar: "15:00", "Jan 2". A minor
	// tick is left out on narrow screens.
	Tick  string
	Minor bool
	Counts
}

// Title is the bar's numbers in words, for its SVG <title>: "Jan 2,
// 15:00–16:00 UTC: 7 requests: 3 successes, 2 client errors, 1
// rate-limited, 1 server error".
func (b Bar) Title() string {
	var parts []string
	for i, o := range Outcomes {
		if n := b.Counts[i]; n > 0 {
			parts = append(parts, countOf(n, o.One, o.Many))
		}
	}
	s := b.Label + ": " + countOf(b.Total(), "request", "requests")
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, ", ")
	}
	return s
}

// Chart is one usage chart: bars of equal spans, oldest first.
type Chart struct {
	// ID is unique on the page.
	ID      string
	Caption string // "Last 24 hours"
	// Span names what one bar counts, for the table: "Hour (UTC)".
	Span string
	Bars []Bar
}

// Total is every request in the chart.
func (c Chart) Total() int64 {
	var t int64
	for _, b := range c.Bars {
		t += b.Total()
	}
	return t
}

// Sums are the chart's requests by outcome.
func (c Chart) Sums() Counts {
	var s Counts
	for _, b := range c.Bars {
		for i := range s {
			s[i] += b.Counts[i]
		}
	}
	return s
}

// Summary says the chart in one sentence, for those who cannot see it.
func (c Chart) Summary() string {
	s := c.Caption + ": " + countOf(c.Total(), "request", "requests")
	var parts []string
	for i, o := range Outcomes {
		if n := c.Sums()[i]; n > 0 {
			parts = append(parts, countOf(n, o.One, o.Many))
		}
	}
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s + "."
}

// The chart's drawing, in the units of its viewBox. The SVG scales to its
// box's width; static/data.css enlarges the text, in these units, on
// narrow screens so that it stays legible, and leaves minor ticks out.
const (
	chartW, chartH           = 800.0, 260.0
	chartLeft, chartRight    = 96.0, 24.0 // room for y labels; for the last tick
	chartTop, chartBottom    = 20.0, 44.0 // room for the top label; for x labels
	chartFont                = 13.0       // until the stylesheet says otherwise
	chartPlotW               = chartW - chartLeft - chartRight
	chartPlotH               = chartH - chartTop - chartBottom
	chartXLabelY             = chartH - 12.0
	chartBarShare            = 0.8 // of a bar's slot; the rest is the gap
	chartYLabelX             = chartLeft - 10.0
	chartGridX1, chartGridX2 = chartLeft, chartW - chartRight
)

// ViewBox is the SVG's viewBox.
func (c Chart) ViewBox() string { return "0 0 " + num(chartW) + " " + num(chartH) }

// Seg is one outcome's part of a bar, placed.
type Seg struct {
	Class, Fill string
	X, Y, W, H  string
}

// PlacedBar is a bar with its parts placed.
type PlacedBar struct {
	Bar
	// X, W bound the bar's whole slot, which takes the pointer for its
	// title even where the bar is short.
	X, W string
	Segs []Seg
	// TickX is where its tick is written.
	TickX string
}

// YTick is a value on the y axis.
type YTick struct {
	Y, Label string
}

// Layout is a chart placed in its viewBox.
type Layout struct {
	Bars  []PlacedBar
	Ticks []YTick
	// Empty: there are no requests to draw.
	Empty bool
	// Axis, left to right, at the plot's bottom.
	AxisY, X1, X2, LabelX, XLabelY, Font string
}

// Layout places the chart's bars and its y axis. The axis ends at a round
// value (1, 2 or 5 times a power of ten, times the number of steps) at or
// above the highest bar.
func (c Chart) Layout() Layout {
	var peak int64
	for _, b := range c.Bars {
		peak = max(peak, b.Total())
	}
	step := niceStep(peak)
	top := step * max(1, (peak+step-1)/step)
	l := Layout{Empty: peak == 0, AxisY: num(chartTop + chartPlotH), X1: num(chartGridX1), X2: num(chartGridX2),
		LabelX: num(chartYLabelX), XLabelY: num(chartXLabelY), Font: num(chartFont)}
	for v := int64(0); v <= top; v += step {
		l.Ticks = append(l.Ticks, YTick{Y: num(chartTop + chartPlotH - chartPlotH*float64(v)/float64(top)), Label: compact(v)})
	}
	slot := chartPlotW / float64(max(len(c.Bars), 1))
	for i, b := range c.Bars {
		x := chartLeft + float64(i)*slot
		pb := PlacedBar{Bar: b, X: num(x), W: num(slot), TickX: num(x + slot/2)}
		y := chartTop + chartPlotH
		for k, n := range b.Counts {
			if n == 0 {
				continue
			}
			h := chartPlotH * float64(n) / float64(top)
			y -= h
			o := Outcomes[k]
			fill := o.Fill
			if o.Pattern {
				fill = "url(#kw-pat-" + o.Class + ")"
			}
			pb.Segs = append(pb.Segs, Seg{Class: o.Class, Fill: fill, X: num(x + slot*(1-chartBarShare)/2), Y: num(y), W: num(slot * chartBarShare), H: num(h)})
		}
		l.Bars = append(l.Bars, pb)
	}
	return l
}

// niceStep is the y axis's step for a peak: 1, 2 or 5 times a power of
// ten, so that the axis has at most four steps.
func niceStep(peak int64) int64 {
	if peak <= 4 {
		return 1
	}
	raw := float64(peak) / 4
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			return int64(m * pow)
		}
	}
	return int64(10 * pow)
}

// compact writes an axis value short: 950, 1.5k, 20k, 1.2M.
func compact(n int64) string {
	switch {
	case n < 1000:
		return strconv.FormatInt(n, 10)
	case n < 1_000_000:
		return trimZero(float64(n)/1000) + "k"
	}
	return trimZero(float64(n)/1_000_000) + "M"
}

func trimZero(f float64) string {
	if f >= 10 {
		return strconv.FormatFloat(math.Round(f), 'f', 0, 64)
	}
	return strings.TrimSuffix(strconv.FormatFloat(f, 'f', 1, 64), ".0")
}

// num writes a coordinate with at most two decimals.
func num(f float64) string {
	return strings.TrimRight(strings.TrimRight(strconv.FormatFloat(f, 'f', 2, 64), "0"), ".")
}

// countOf writes n with its noun: "1 request", "1,024 requests".
func countOf(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return formatCount(n) + " " + many
}

// formatCount writes n with commas between groups of three digits.
func formatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

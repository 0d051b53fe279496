package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// row is one line of the results table.
type row struct {
	Measure string
	Value   string
	Target  string // "" when there is none
	Status  status
	Note    string
}

type status int

const (
	statusInfo status = iota // no target
	statusPass
	statusMiss        // a target missed
	statusError       // the measurement itself failed (errors, bad statuses)
	statusUnavailable // could not be measured
)

func (s status) String() string {
	switch s {
	case statusPass:
		return "pass"
	case statusMiss:
		return "**FAIL**"
	case statusError:
		return "**FAIL (errors)**"
	case statusUnavailable:
		return "**not measured**"
	}
	return "—"
}

// check turns a comparison into pass or miss.
func check(ok bool) status {
	if ok {
		return statusPass
	}
	return statusMiss
}

// machine describes where the figures come from.
type machine struct {
	CPU     string
	CPUs    int // logical CPUs in /proc/cpuinfo
	Procs   int // GOMAXPROCS of kwbench (CPUs it may use)
	MemMB   int64
	Kernel  string
	Go      string
	Vegeta  string
	Storage string // filesystem of the cluster directory
}

func machineInfo() machine {
	m := machine{CPU: "unknown", Procs: runtime.GOMAXPROCS(0), Go: runtime.Version(), Vegeta: "v12"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "processor":
				m.CPUs++
			case "model name":
				if m.CPU == "unknown" {
					m.CPU = strings.TrimSpace(v)
				}
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					m.MemMB = kb / 1024
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/tsenart/vegeta/v12" {
				m.Vegeta = d.Version
			}
		}
	}
	return m
}

// filesystemOf names the mount that holds path, from /proc/mounts.
func filesystemOf(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "unknown"
	}
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return "unknown"
	}
	best, desc := "", "unknown"
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, desc = mp, f[2] // the type only: devices and mount points are this machine's business
		}
	}
	return desc
}

// goBench is one line of `go test -bench` output.
type goBench struct {
	Pkg     string
	Name    string // with the -GOMAXPROCS suffix
	Iter    string
	Metrics []metric // in the order printed
}

type metric struct {
	Value float64
	Raw   string
	Unit  string
}

func (b goBench) get(unit string) (float64, bool) {
	for _, m := range b.Metrics {
		if m.Unit == unit {
			return m.Value, true
		}
	}
	return 0, false
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// baseName drops the -GOMAXPROCS suffix.
func (b goBench) baseName() string { return procSuffix.ReplaceAllString(b.Name, "") }

// goBenchFile is the parsed output of the Go benchmarks.
type goBenchFile struct {
	Path    string
	Header  []string // goos, goarch, cpu
	Benches []goBench
	Failed  []string // FAIL lines
	Err     error
}

func readGoBench(path string) goBenchFile {
	gb := goBenchFile{Path: path}
	f, err := os.Open(path)
	if err != nil {
		gb.Err = err
		return gb
	}
	defer f.Close()
	pkg := ""
	seenHeader := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimPrefix(line, "pkg: ")
		case strings.HasPrefix(line, "goos: "), strings.HasPrefix(line, "goarch: "), strings.HasPrefix(line, "cpu: "):
			if !seenHeader[line] {
				seenHeader[line] = true
				gb.Header = append(gb.Header, line)
			}
		case strings.HasPrefix(line, "FAIL"), strings.HasPrefix(line, "--- FAIL"):
			gb.Failed = append(gb.Failed, line)
		case strings.HasPrefix(line, "Benchmark"):
			fields := strings.Fields(line)
			if len(fields) < 4 || len(fields)%2 != 0 {
				continue // a benchmark's own log line, or one that failed
			}
			if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
				continue
			}
			b := goBench{Pkg: pkg, Name: fields[0], Iter: fields[1]}
			for i := 2; i+1 < len(fields); i += 2 {
				v, err := strconv.ParseFloat(fields[i], 64)
				if err != nil {
					continue
				}
				b.Metrics = append(b.Metrics, metric{Value: v, Raw: fields[i], Unit: fields[i+1]})
			}
			gb.Benches = append(gb.Benches, b)
		}
	}
	if err := sc.Err(); err != nil {
		gb.Err = err
	}
	return gb
}

// cacheHitRows checks BenchmarkVerifyCacheHit (and any sub-benchmarks)
// against < 2 µs/op and 0 allocs/op.
func (gb goBenchFile) cacheHitRows() []row {
	const name = "BenchmarkVerifyCacheHit"
	var rows []row
	for _, b := range gb.Benches {
		base := b.baseName()
		if base != name && !strings.HasPrefix(base, name+"/") {
			continue
		}
		ns, okNs := b.get("ns/op")
		allocs, okAllocs := b.get("allocs/op")
		r := row{Measure: "Go: `" + base + "` (" + shortPkg(b.Pkg) + ")", Target: "< 2 µs/op, 0 allocs/op"}
		if okAllocs {
			r.Value = fmt.Sprintf("%s ns/op, %s allocs/op", trimFloat(ns), trimFloat(allocs))
		} else {
			r.Value = fmt.Sprintf("%s ns/op, allocs not reported", trimFloat(ns))
		}
		r.Status = check(okNs && okAllocs && ns < 2000 && allocs == 0)
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		note := "not in " + gb.Path
		if gb.Err != nil {
			note = gb.Err.Error()
		}
		rows = append(rows, row{Measure: "Go: `" + name + "`", Value: "—", Target: "< 2 µs/op, 0 allocs/op",
			Status: statusUnavailable, Note: note})
	}
	return rows
}

func shortPkg(p string) string { return strings.TrimPrefix(p, "keyward/") }

func trimFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// Formatting helpers.

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < 100*time.Microsecond:
		return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func fmtRate(v float64) string { return groupDigits(int64(v + 0.5)) }

func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// fmtMB shows a /proc size (in KiB) in MB of 10^6 bytes.
func fmtMB(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)*1024/1e6) }

// underMB reports whether a /proc size (in KiB) is below mb MB of 10^6 bytes.
func underMB(kb int64, mb float64) bool { return float64(kb)*1024 < mb*1e6 }

// mdCell keeps a table cell on one line and its pipes escaped.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

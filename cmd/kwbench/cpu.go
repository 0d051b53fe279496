package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat (USER_HZ, 100
// on every Linux architecture Go supports).
const userHZ = 100

// cpuUse is CPU time (user + system) spent by each party of a run.
type cpuUse struct {
	Server time.Duration // the keyward process
	PG     time.Duration // the postmaster and every backend
	Client time.Duration // this process: vegeta, or the SQL baseline's loop
}

func (a cpuUse) sub(b cpuUse) cpuUse {
	return cpuUse{Server: a.Server - b.Server, PG: a.PG - b.PG, Client: a.Client - b.Client}
}

// cpuProbe reads the CPU time used so far by the server, PostgreSQL and
// this process. A PostgreSQL backend that has ended is counted through the
// postmaster's "children" times, so connections closed during a run are
// not lost.
type cpuProbe struct {
	serverPID int
	pgData    string // the cluster's data directory, with postmaster.pid
}

func (p cpuProbe) sample() cpuUse {
	var u cpuUse
	u.Server, _, _ = procCPU(p.serverPID)
	u.Client, _, _ = procCPU(os.Getpid())
	if pm := p.postmaster(); pm > 0 {
		own, children, _ := procCPU(pm)
		u.PG = own + children
		for _, pid := range childrenOf(pm) {
			t, _, _ := procCPU(pid)
			u.PG += t
		}
	}
	return u
}

func (p cpuProbe) postmaster() int {
	b, err := os.ReadFile(filepath.Join(p.pgData, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}

// procStat returns the fields of /proc/<pid>/stat after the command name
// (so index 0 is field 3, the state).
func procStat(pid int) ([]string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, false
	}
	return strings.Fields(s[i+1:]), true
}

// procCPU returns a process's own CPU time (utime + stime) and that of
// its ended, reaped children (cutime + cstime).
func procCPU(pid int) (own, children time.Duration, ok bool) {
	f, ok := procStat(pid)
	if !ok || len(f) < 15 {
		return 0, 0, false
	}
	ticks := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
	// Fields 14–17 (utime, stime, cutime, cstime) are indexes 11–14 here.
	toDur := func(t int64) time.Duration { return time.Duration(t) * time.Second / userHZ }
	return toDur(ticks(11) + ticks(12)), toDur(ticks(13) + ticks(14)), true
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// Field 4 (ppid) is index 1 here.
		if f, ok := procStat(child); ok && len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

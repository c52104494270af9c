package main

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuSnap is the machine's busy CPU time and the part of it used by this
// runner and its child processes (servers, Envoys, oauth2-proxy), so a run
// can say how much CPU other work on the machine took while it measured.
type cpuSnap struct {
	at     time.Time
	system time.Duration // user+nice+system+steal of every CPU, /proc/stat
	ours   time.Duration // utime+stime of this process and its direct children
}

func takeCPUSnap() cpuSnap {
	s := cpuSnap{at: time.Now()}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		if len(f) > 8 && f[0] == "cpu" {
			var ticks uint64
			for _, i := range []int{1, 2, 3, 8} {
				v, _ := strconv.ParseUint(f[i], 10, 64)
				ticks += v
			}
			s.system = time.Duration(ticks) * time.Second / clockTicks
		}
	}
	self := os.Getpid()
	if cpu, _, ok := statCPU("self"); ok {
		s.ours += cpu
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if cpu, ppid, ok := statCPU(e.Name()); ok && ppid == self {
			s.ours += cpu
		}
	}
	return s
}

// statCPU reads utime+stime and the parent pid of /proc/<pid>/stat.
func statCPU(pid string) (cpu time.Duration, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks, ppid, true
}

// foreignCores is the average number of CPUs other work used between a and b.
func foreignCores(a, b cpuSnap) float64 {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return 0
	}
	v := ((b.system - a.system) - (b.ours - a.ours)).Seconds() / wall
	if v < 0 {
		return 0
	}
	return v
}

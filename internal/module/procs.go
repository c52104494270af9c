package module

import (
	"fmt"
	"runtime"
)

// Procs is the GOMAXPROCS the module runs the Go runtime with inside Envoy:
// the runtime's default (the CPUs it may use) plus one P per Envoy worker.
//
// Why: an Envoy worker that calls into Go becomes a Go thread, and when the
// hook returns it goes back to Envoy's C++ code still holding its P, as a
// goroutine in a system call does. With GOMAXPROCS at the CPU count and a
// worker per CPU (Envoy's default), every P is held by a worker nearly all
// the time, so the runtime's monitor (sysmon) finds no idle P and takes each
// worker's P back after 20 µs in C++, hands it to a thread it wakes for the
// purpose, and the worker's next request waits to get a P again: a monitor
// waking every few tens of µs and two thread wake-ups per request, which
// cost Envoy more CPU than the decision itself (docs/module.md, "What the
// module costs per request"). With a P per worker on top of the default the
// runtime always has idle Ps, leaves the workers' Ps alone, and its own
// goroutines (the store's follower, the reloader, the GC) keep the Ps a Go
// process would have.
//
// workers is Envoy's concurrency (0 when Envoy did not say: its default, a
// worker per CPU, is assumed). An operator's GOMAXPROCS (env set) is kept:
// Procs returns 0, meaning leave it.
func Procs(defaultProcs, workers int, env string) int {
	if env != "" || defaultProcs < 1 {
		return 0
	}
	if workers < 1 {
		workers = defaultProcs
	}
	return defaultProcs + workers
}

// SetProcs applies Procs to the runtime and says what it did, for Envoy's log;
// "" when GOMAXPROCS was left as the operator set it.
func SetProcs(workers int, env string) string {
	def := runtime.GOMAXPROCS(0)
	n := Procs(def, workers, env)
	if n == 0 {
		return ""
	}
	runtime.GOMAXPROCS(n)
	return fmt.Sprintf("extauthz module: GOMAXPROCS %d (%d for Go, 1 per Envoy worker)", n, def)
}

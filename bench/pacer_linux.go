package main

import (
	"runtime"
	"syscall"
	"time"
)

// prSetTimerSlack is prctl's PR_SET_TIMERSLACK (linux/prctl.h).
const prSetTimerSlack = 29

// precisePacing pins the calling goroutine to its OS thread and lowers that
// thread's timer slack to 1 µs, so pacerSleep wakes within tens of µs of the
// time asked for. The returned func undoes the pinning (the thread keeps its
// slack; it is the runner's own).
//
// While the pacer sleeps in nanosleep its thread may keep its P (the Go
// scheduler takes it back only after a sysmon tick), which would leave the
// callers one P of the runner's two: pacing runs with one more P.
func precisePacing() (undo func()) {
	procs := runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
	runtime.LockOSThread()
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, 1000, 0)
	return func() {
		runtime.UnlockOSThread()
		runtime.GOMAXPROCS(procs)
	}
}

// pacerSleep sleeps d with nanosleep(2) on the pinned thread. time.Sleep
// would not do: when the process has nothing else to run, Go parks in
// epoll_wait, whose timeout is whole milliseconds, so a 100 µs sleep lasts
// about 1.1 ms (measured: p50 1.08 ms on the benchmark machine).
func pacerSleep(d time.Duration) {
	if d <= 0 {
		return
	}
	ts := syscall.NsecToTimespec(int64(d))
	_ = syscall.Nanosleep(&ts, nil)
}

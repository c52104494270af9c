//go:build !linux

package main

import "time"

// precisePacing does nothing off Linux: the runner measures on Linux only
// (it reads /proc), and other systems keep time.Sleep's granularity.
func precisePacing() (undo func()) { return func() {} }

func pacerSleep(d time.Duration) { time.Sleep(d) }

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAnswerCacheInC runs testdata/cache_test.c against cache.c, built with
// AddressSanitizer and UndefinedBehaviorSanitizer: the answer cache's hits
// and misses, the calls a hit replays, and that no request (a header past
// every cap) is copied out of bounds. Go tests cannot use cgo, so the C test
// is a program of its own.
func TestAnswerCacheInC(t *testing.T) {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Skipf("no C compiler (%s): %v", cc, err)
	}
	bin := filepath.Join(t.TempDir(), "cache_test")
	build := exec.Command(cc, "-std=gnu11", "-Wall", "-Werror", "-g", "-O1", "-fsanitize=address,undefined",
		"-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-o", bin, "testdata/cache_test.c", "cache.c")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the C test: %v\n%s", err, out)
	}
	run := exec.Command(bin)
	run.Env = append(os.Environ(), "ASAN_OPTIONS=detect_leaks=0")
	out, err := run.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("the C test failed (%v):\n%s", err, out)
	}
}

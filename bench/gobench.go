package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// goBench is one line of `go test -bench -benchmem` output.
type goBench struct {
	Pkg, Name   string
	N           int
	NsPerOp     float64
	BytesPerOp  float64
	AllocsPerOp float64
}

// goBenchPackages are the in-process benchmarks: the pure decision, and the
// Check handler with the assertion (cached and uncached).
var goBenchPackages = []string{"./internal/decision", "./internal/check"}

func goBenchCommand(benchtime string) []string {
	args := []string{"go", "test", "-run", "^$", "-bench", ".", "-benchmem"}
	if benchtime != "" {
		args = append(args, "-benchtime", benchtime)
	}
	return append(args, goBenchPackages...)
}

// runGoBench runs the in-process benchmarks and parses their results.
func runGoBench(ctx context.Context, root, benchtime string) ([]goBench, string, error) {
	args := goBenchCommand(benchtime)
	out, err := execIn(ctx, root, goTool(), args[1:]...)
	if err != nil {
		return nil, out, fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return parseGoBench(out), out, nil
}

// parseGoBench reads "pkg:" and "BenchmarkX-N  iters  v ns/op  v B/op  v allocs/op" lines.
func parseGoBench(out string) []goBench {
	var res []goBench
	pkg := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		b := goBench{Pkg: pkg, Name: trimProcs(f[0]), N: n}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				b.NsPerOp = v
			case "B/op":
				b.BytesPerOp = v
			case "allocs/op":
				b.AllocsPerOp = v
			}
		}
		res = append(res, b)
	}
	return res
}

// trimProcs drops the "-2" GOMAXPROCS suffix of a benchmark name.
func trimProcs(name string) string {
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			return name[:i]
		}
	}
	return name
}

// profileCheck profiles the in-process Check handler (BenchmarkCheck: allowed,
// denied, no token) and returns `go tool pprof -top` of it: where the
// per-request CPU of our server goes, minus the gRPC transport.
func profileCheck(ctx context.Context, root, dir string) (cmdline, top string, err error) {
	prof := filepath.Join(dir, "check.cpu.prof")
	testBin := filepath.Join(dir, "check.test")
	args := []string{"test", "-run", "^$", "-bench", "^BenchmarkCheck$", "-benchtime", "2s", "-cpuprofile", prof, "-o", testBin, "./internal/check"}
	if out, err := execIn(ctx, root, goTool(), args...); err != nil {
		return "", "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	if top, err = pprofTop(root, testBin, prof, 25); err != nil {
		return "", "", err
	}
	return "go test -run '^$' -bench '^BenchmarkCheck$' -benchtime 2s -cpuprofile cpu.prof ./internal/check && go tool pprof -top -cum check.test cpu.prof", top, nil
}

// pprofTop is `go tool pprof -top` of a profile, without pprof's preamble.
func pprofTop(root, bin, prof string, nodes int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	top, err := execIn(ctx, root, goTool(), "tool", "pprof", "-top", "-cum", "-nodecount", strconv.Itoa(nodes), bin, prof)
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %w\n%s", err, top)
	}
	var keep []string
	started := false
	for _, l := range strings.Split(top, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "Showing nodes") || strings.HasPrefix(t, "Dropped") {
			started = true
		}
		if started {
			keep = append(keep, l)
		}
	}
	if len(keep) > 0 {
		top = strings.Join(keep, "\n")
	}
	return strings.TrimRight(top, "\n"), nil
}

func execIn(ctx context.Context, dir, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func execOutput(ctx context.Context, bin string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// trimTop keeps the first n nodes of pprofTop's output, and says so in its
// "Showing top" line.
func trimTop(top string, n int) string {
	var out []string
	nodes, inNodes := 0, false
	for _, l := range strings.Split(top, "\n") {
		if inNodes {
			if nodes == n {
				break
			}
			nodes++
		} else if t := strings.TrimSpace(l); strings.HasPrefix(t, "flat") {
			inNodes = true
		} else if rest, ok := strings.CutPrefix(t, "Showing top "); ok {
			if _, after, ok := strings.Cut(rest, " nodes"); ok {
				l = fmt.Sprintf("Showing top %d nodes%s", n, after)
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

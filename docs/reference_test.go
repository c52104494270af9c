// Package docs_test keeps docs/reference.md true to the code: every command
// and flag the binary has, every config and route key the config accepts
// (with its environment variable), and every metric the sidecar exports is
// documented, and the page lists nothing the code does not have.
package docs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/metrics"
	"github.com/extauthz/extauthz/internal/store"
)

const reference = "reference.md"

// sections splits a markdown page at its "##" and "###" headings: heading
// text -> the lines below it, up to the next such heading.
func sections(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	current := ""
	for _, line := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			current = h
			continue
		}
		if h, ok := strings.CutPrefix(line, "## "); ok {
			current = h
			continue
		}
		out[current] = append(out[current], line)
	}
	return out
}

// firstColumn returns the first capture of re on each line of a section's
// tables, in order.
func firstColumn(lines []string, re *regexp.Regexp) []string {
	var out []string
	for _, l := range lines {
		if m := re.FindStringSubmatch(l); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// compare reports what is in code but not documented, and the reverse.
func compare(t *testing.T, what string, code, documented []string) {
	t.Helper()
	for _, c := range code {
		if !slices.Contains(documented, c) {
			t.Errorf("%s %s is not documented in docs/%s", what, c, reference)
		}
	}
	for _, d := range documented {
		if !slices.Contains(code, d) {
			t.Errorf("docs/%s documents %s %s, which the code does not have", reference, what, d)
		}
	}
	seen := map[string]bool{}
	for _, d := range documented {
		if seen[d] {
			t.Errorf("docs/%s documents %s %s twice", reference, what, d)
		}
		seen[d] = true
	}
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "extauthz")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/extauthz")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// commandsOf reads the command names from `extauthz help`.
func commandsOf(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command(bin, "help").Output()
	if err != nil {
		t.Fatalf("extauthz help: %v", err)
	}
	_, list, ok := strings.Cut(string(out), "Commands:\n")
	if !ok {
		t.Fatalf("extauthz help lists no commands:\n%s", out)
	}
	var cmds []string
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z][a-z-]*)\s`).FindAllStringSubmatch(list, -1) {
		cmds = append(cmds, m[1])
	}
	if len(cmds) == 0 {
		t.Fatalf("no commands in:\n%s", out)
	}
	return cmds
}

// flagsOf reads a command's flags from its -h output, as the flag package
// prints them ("  -name type").
func flagsOf(t *testing.T, bin, command string) []string {
	t.Helper()
	cmd := exec.Command(bin, command, "-h")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("extauthz %s -h: %v\n%s", command, err, out.String())
	}
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^  (-[A-Za-z0-9_-]+)`).FindAllStringSubmatch(out.String(), -1) {
		flags = append(flags, m[1])
	}
	return flags
}

func TestReferenceDocumentsEveryCommandAndFlag(t *testing.T) {
	bin := buildBinary(t)
	secs := sections(t, reference)
	flagCell := regexp.MustCompile("^\\| `(-[A-Za-z0-9_-]+)")
	var documented []string
	for h := range secs {
		if name, ok := strings.CutPrefix(h, "extauthz "); ok {
			documented = append(documented, name)
		}
	}
	slices.Sort(documented)
	commands := commandsOf(t, bin)
	t.Run("every command has a section and every section a command", func(t *testing.T) {
		compare(t, "command", commands, documented)
	})
	for _, c := range commands {
		t.Run("extauthz "+c+"'s flags are its section's flags", func(t *testing.T) {
			compare(t, "extauthz "+c+" flag", flagsOf(t, bin, c), firstColumn(secs["extauthz "+c], flagCell))
		})
	}
}

func TestReferenceDocumentsEveryConfigKey(t *testing.T) {
	secs := sections(t, reference)
	keyRow := regexp.MustCompile("^\\| `([a-z_]+)` \\| `([A-Z_]+)` \\|")
	var keys, envs []string
	for _, l := range secs["Keys"] {
		if m := keyRow.FindStringSubmatch(l); m != nil {
			keys = append(keys, m[1])
			envs = append(envs, m[2])
		}
	}
	t.Run("the key table is the config's keys", func(t *testing.T) {
		compare(t, "config key", config.Keys(), keys)
	})
	t.Run("each key's environment variable is the one the config reads", func(t *testing.T) {
		for i, k := range keys {
			if want := config.EnvName(k); envs[i] != want {
				t.Errorf("docs/%s says %s is overridden by %s; the config reads %s", reference, k, envs[i], want)
			}
		}
	})
	t.Run("the route key table is the route's keys", func(t *testing.T) {
		compare(t, "route key", config.RouteKeys(), firstColumn(secs["Route keys"], regexp.MustCompile("^\\| `([a-z_]+)` \\|")))
	})
}

func TestReferenceDocumentsEveryMetric(t *testing.T) {
	reg := metrics.New().Registry()
	// serve registers the store's gauge beside the rest.
	st := store.New(store.NewMemory(nil), store.Options{})
	defer st.Close()
	reg.MustRegister(st.Collector())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "extauthz_") {
			names = append(names, f.GetName())
		}
	}
	if len(names) == 0 {
		t.Fatal("the registry has no extauthz_ metrics")
	}
	documented := firstColumn(sections(t, reference)["Metrics"], regexp.MustCompile("^\\| `(extauthz_[a-z_]+)`"))
	compare(t, "metric", names, documented)
}

// TestDocsStayInTheRepository: a clone has no ../shared, so nothing a user
// reads may send them there, and the README must lead to the reference and
// the security model.
func TestDocsStayInTheRepository(t *testing.T) {
	pages, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, "../README.md", "../SECURITY.md", "../CHANGELOG.md")
	for _, p := range pages {
		t.Run(p+" points at nothing outside the repository", func(t *testing.T) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, bad := range []string{"../shared", "CONTRACT.md"} {
				if strings.Contains(string(b), bad) {
					t.Errorf("%s mentions %s, which a clone does not have", p, bad)
				}
			}
		})
	}
	t.Run("the README links the reference and the security model", func(t *testing.T) {
		b, err := os.ReadFile("../README.md")
		if err != nil {
			t.Fatal(err)
		}
		for _, link := range []string{"(docs/reference.md)", "(docs/security.md)"} {
			if !strings.Contains(string(b), link) {
				t.Errorf("README.md has no link %s", link)
			}
		}
	})
}

// TestReadmeLayoutListsEveryPackage: the README's layout table is how a
// newcomer finds their way, so a package added without a row fails here.
func TestReadmeLayoutListsEveryPackage(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, layout, ok := strings.Cut(string(b), "## Layout\n")
	if !ok {
		t.Fatal("README.md has no Layout section")
	}
	layout, _, _ = strings.Cut(layout, "\n## ")
	var want []string
	for _, parent := range []string{"internal", "cmd"} {
		dirs, err := os.ReadDir(filepath.Join("..", parent))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dirs {
			if d.IsDir() && d.Name() != "testdata" {
				want = append(want, "`"+parent+"/"+d.Name()+"`")
			}
		}
	}
	top, err := os.ReadDir("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range top {
		if d.IsDir() && !strings.HasPrefix(d.Name(), ".") && d.Name() != "internal" && d.Name() != "cmd" &&
			d.Name() != "bin" && d.Name() != "dist" {
			want = append(want, "`"+d.Name()+"/`")
		}
	}
	// A row's first cell may name several packages (the test kits share one).
	var firstCells []string
	for _, line := range strings.Split(layout, "\n") {
		if rest, ok := strings.CutPrefix(line, "| "); ok {
			cell, _, _ := strings.Cut(rest, " |")
			firstCells = append(firstCells, ", "+cell+",")
		}
	}
	for _, w := range want {
		if !slices.ContainsFunc(firstCells, func(c string) bool { return strings.Contains(c, " "+w+",") }) {
			t.Errorf("README.md's layout table has no row for %s", w)
		}
	}
}

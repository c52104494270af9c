package check

import (
	"fmt"
	"slices"
	"testing"
)

// TestRequestHeaders holds AddHeader to Envoy's joining of repeated lines,
// whether the list scans for a name or, past indexAfter names, looks it up.
func TestRequestHeaders(t *testing.T) {
	// filler is n distinct lines, so that what follows runs on the index.
	filler := func(n int) []string {
		var lines []string
		for i := range n {
			lines = append(lines, fmt.Sprintf("x-filler-%d", i), "f")
		}
		return lines
	}
	cases := []struct {
		name  string
		lines []string // name, value, name, value...
		get   map[string]string
		names int // how many entries the list holds
	}{
		{"a name is read back lower-cased, exactly",
			[]string{"X-Request-Id", "r1"}, map[string]string{"x-request-id": "r1", "X-Request-Id": "", "x-request": ""}, 1},
		{"a repeated name is joined with a comma, in order",
			[]string{"accept", "text/html", "Accept", "*/*"}, map[string]string{"accept": "text/html, */*"}, 1},
		{"repeated cookie lines are joined with a semicolon",
			[]string{"cookie", "a=1", "Cookie", "b=2"}, map[string]string{"cookie": "a=1; b=2"}, 1},
		{"an empty line still counts when joined",
			[]string{"x-e", "", "x-e", "v"}, map[string]string{"x-e": ", v"}, 1},
		{"an absent name reads as empty",
			[]string{"accept", "text/html"}, map[string]string{"authorization": ""}, 1},
		{"past the names a scan covers, repeated names are still joined",
			append(append([]string{"cookie", "a=1"}, filler(2*indexAfter)...), "Cookie", "b=2", "x-filler-40", "g"),
			map[string]string{"cookie": "a=1; b=2", "x-filler-40": "f, g", "x-filler-0": "f"}, 1 + 2*indexAfter},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			for i := 0; i+1 < len(tc.lines); i += 2 {
				r.AddHeader(tc.lines[i], tc.lines[i+1])
			}
			for name, want := range tc.get {
				if got := r.Headers.Get(name); got != want {
					t.Errorf("Get(%q) = %q, want %q", name, got, want)
				}
			}
			if len(r.Headers) != tc.names {
				t.Errorf("%d entries, want %d: %q", len(r.Headers), tc.names, r.Headers)
			}
			if _, twice := headerMap(r.Headers); twice != "" {
				t.Errorf("%q is held twice", twice)
			}
			if (r.headerIndex != nil) != (tc.names >= indexAfter) {
				t.Errorf("index built: %v, with %d names", r.headerIndex != nil, tc.names)
			}
		})
	}
}

// TestHeaderListSet holds set to a protobuf map's repeated key: the last
// value wins, in the first key's place, scanned or indexed alike.
func TestHeaderListSet(t *testing.T) {
	for _, n := range []int{3, 2 * indexAfter} {
		t.Run(fmt.Sprintf("with %d names the last value of a repeated key wins", n), func(t *testing.T) {
			var l headerList
			var want RequestHeaders
			for i := range n {
				name := fmt.Sprintf("x-%d", i)
				l.set(name, "first")
				want = append(want, Header{name, "first"})
			}
			l.set("x-0", "last")
			l.set(fmt.Sprintf("x-%d", n-1), "")
			want[0].Value, want[n-1].Value = "last", ""
			if !slices.Equal(l.h, want) {
				t.Errorf("got %q, want %q", l.h, want)
			}
		})
	}
}

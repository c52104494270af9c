package requestid

import (
	"strings"
	"testing"
)

func TestPick(t *testing.T) {
	tests := []struct {
		name       string
		candidates []string
		want       string // "" means a fresh id
	}{
		{"Envoy's uuid is kept", []string{"d85750f9-3a93-4515-8bfb-38a6b45859b1"}, "d85750f9-3a93-4515-8bfb-38a6b45859b1"},
		{"the first valid candidate wins", []string{"", "abc:1"}, "abc:1"},
		{"markup is replaced by a fresh id", []string{"<script>alert(1)</script>"}, ""},
		{"a line break is replaced", []string{"a\nb"}, ""},
		{"an over-long id is replaced", []string{strings.Repeat("a", MaxLength+1)}, ""},
		{"no candidate gives a fresh id", nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Pick(tc.candidates...)
			if tc.want != "" && got != tc.want {
				t.Fatalf("Pick = %q, want %q", got, tc.want)
			}
			if tc.want == "" {
				if !Valid(got) || len(got) != 32 {
					t.Fatalf("Pick = %q, want a fresh 32-hex id", got)
				}
				for _, c := range tc.candidates {
					if got == c {
						t.Fatalf("an invalid candidate was echoed")
					}
				}
			}
		})
	}
	if New() == New() {
		t.Error("two fresh ids are equal")
	}
}

package config

import (
	"strings"
	"testing"
)

// TestDecoderKeepsWhatYAMLv3WouldLose pins what the node walker does that
// yaml.v3's own decoding (Decoder.KnownFields into the Config structs, the
// rework #15 proposed) does not: yaml.v3 drops a whole mapping at its first
// duplicate key (so a route with one silently disappears and the rest of its
// mapping goes unchecked), its errors carry a line but no column (two routes
// on one line cannot be told apart), and a bad merge key is a fatal error
// with no place at all. Each case fails under such a decoder.
func TestDecoderKeepsWhatYAMLv3WouldLose(t *testing.T) {
	tests := []struct {
		name string
		src  string
		env  map[string]string
		want []string
	}{
		{
			name: "a duplicate top-level key does not hide the other keys' problems or the secret",
			src:  "shared_secret: " + validSecret + "\ncookie_name: a\ncookie_name: b\nbogus: 1\n",
			want: []string{
				`t.yaml:3:1: cookie_name: is set twice; the first is on line 2`,
				`t.yaml:4:1: bogus: unknown key "bogus"`,
			},
		},
		{
			name: "a duplicate key in a route keeps the route and checks the rest of it",
			src:  "policy:\n  - from: http://a.example\n    from: http://b.example\n    frm: x\n",
			env:  withSecret,
			want: []string{
				`t.yaml:3:5: policy[0].from: is set twice; the first is on line 2`,
				`t.yaml:4:5: policy[0].frm: unknown key "frm" (did you mean "from"?)`,
			},
		},
		{
			name: "two routes on one line are told apart by column",
			src:  "policy: [{from: http://a.example, frm: x}, {from: http://b.example, frm: y}]\n",
			env:  withSecret,
			want: []string{
				`t.yaml:1:35: policy[0].frm: unknown key "frm" (did you mean "from"?)`,
				`t.yaml:1:69: policy[1].frm: unknown key "frm" (did you mean "from"?)`,
			},
		},
		{
			name: "a bad merge key is located and does not stop the rest",
			src:  "<<: abc\nbogus: 1\n",
			env:  withSecret,
			want: []string{
				`t.yaml:1:5: a merge key (<<) must merge a mapping or a list of mappings`,
				`t.yaml:2:1: bogus: unknown key "bogus"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemsOf(t, tt.src, tt.env)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

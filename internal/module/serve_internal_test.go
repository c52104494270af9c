package module

import (
	"testing"

	"github.com/extauthz/extauthz/internal/check"
)

// validMutation refuses each byte Envoy must not write in a value on its own,
// wherever it stands in the value (the assertion is a long one).
func TestValidMutationRefusesEachControlByte(t *testing.T) {
	long := "eyJhbGciOiJFUzI1NiJ9.eyJlbWFpbCI6ImJvYkBjb3JwLmV4YW1wbGUifQ.c2ln"
	cases := []struct {
		name, value string
		refused     bool
	}{
		{"a plain value is written", long, false},
		{"an empty value is written", "", false},
		{"a line feed at the end is refused", long + "\n", true},
		{"a carriage return in the middle is refused", long[:10] + "\r" + long[10:], true},
		{"a NUL at the start is refused", "\x00" + long, true},
		{"a tab is written, as Envoy allows it", "a\tb", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := validMutation(&check.Answer{Allowed: true, Headers: []check.Header{{Name: "x-pomerium-jwt-assertion", Value: c.value}}})
			if (err != nil) != c.refused {
				t.Fatalf("validMutation(%q) = %v, want refused %v", c.value, err, c.refused)
			}
		})
	}
}

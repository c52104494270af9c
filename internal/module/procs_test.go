package module_test

import (
	"testing"

	"github.com/extauthz/extauthz/internal/module"
)

func TestProcs(t *testing.T) {
	cases := []struct {
		name                  string
		defaultProcs, workers int
		env                   string
		want                  int
	}{
		{"each of Envoy's workers gets a P on top of the default", 2, 2, "", 4},
		{"more workers than CPUs each still get one", 4, 16, "", 20},
		{"a worker count Envoy did not give is taken as a worker per CPU", 8, 0, "", 16},
		{"an operator's GOMAXPROCS is kept", 2, 2, "3", 0},
		{"a nonsensical default is left alone", 0, 2, "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := module.Procs(c.defaultProcs, c.workers, c.env); got != c.want {
				t.Fatalf("Procs(%d, %d, %q) = %d, want %d", c.defaultProcs, c.workers, c.env, got, c.want)
			}
		})
	}
}

package compose_test

import (
	"errors"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// replica is one running container of the extauthz service.
type replica struct {
	container string // id
	name      string
	metricsAt string // host:port on the host's loopback where its HTTP listener is published
}

// replicas lists the running containers of the extauthz service.
func replicas(t *testing.T) []replica {
	t.Helper()
	var out []replica
	for _, id := range strings.Fields(run(t, "", "docker", "compose", "ps", "-q", "extauthz")) {
		name := strings.TrimPrefix(strings.TrimSpace(run(t, "", "docker", "inspect", "--format", "{{.Name}}", id)), "/")
		// docker port lists one line per address family; the compose file
		// publishes on 127.0.0.1 only.
		addr := strings.TrimSpace(strings.SplitN(run(t, "", "docker", "port", id, "9292/tcp"), "\n", 2)[0])
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Fatalf("%s publishes 9292 at %q, want an address on 127.0.0.1", name, addr)
		}
		out = append(out, replica{container: id, name: name, metricsAt: addr})
	}
	return out
}

// metrics reads the replica's /metrics, on the loopback port the compose
// file publishes its HTTP listener on.
func (r replica) metrics(t *testing.T) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + r.metricsAt + "/metrics")
	if err != nil {
		t.Fatalf("%s /metrics: %v", r.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

var checksLine = regexp.MustCompile(`(?m)^extauthz_checks_total\{[^}]*\} ([0-9.e+]+)$`)

// checks is the replica's extauthz_checks_total, summed over its series.
func (r replica) checks(t *testing.T) float64 {
	t.Helper()
	var n float64
	for _, m := range checksLine.FindAllStringSubmatch(r.metrics(t), -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		n += v
	}
	return n
}

// check asks this one replica, from inside its container, about a request
// (`extauthz check`): what Envoy would get from it. It returns whether it
// allowed and what it printed.
func (r replica) check(t *testing.T, url, route, token string) (bool, string) {
	t.Helper()
	out, err := exec.Command("docker", "exec", r.container, "/bin/extauthz", "check",
		"--addr", "127.0.0.1:9191", "--url", url, "--route", route, "--token", token).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true, string(out)
	case errors.As(err, &exit) && exit.ExitCode() == 1: // denied
		return false, string(out)
	}
	t.Fatalf("extauthz check in %s: %v\n%s", r.name, err, out)
	return false, ""
}

// replicasActAsOne: the two sidecar replicas share one Redis. Both read it
// (extauthz_store_up 1), Envoy balances Checks over both, and a user signed
// out everywhere by `extauthz revoke` run on one replica is refused by
// both, asked directly and through Envoy.
func replicasActAsOne(t *testing.T, c *http.Client, mint func(...string) string) {
	rs := replicas(t)
	if len(rs) < 2 {
		t.Fatalf("%d extauthz replicas running, want 2", len(rs))
	}
	wiki := "http://wiki.localhost:" + envoyPort + "/headers"
	carol := mint("-email", "carol@corp.example", "-aud", "wiki.localhost", "-iss", "authenticate.localhost", "-sub", "carol")

	t.Run("each replica has read the shared store: extauthz_store_up 1", func(t *testing.T) {
		for _, r := range rs {
			if m := r.metrics(t); !strings.Contains(m, "\nextauthz_store_up 1\n") {
				t.Errorf("%s does not report extauthz_store_up 1", r.name)
			}
		}
	})
	t.Run("Envoy balances Checks over both replicas", func(t *testing.T) {
		before := make([]float64, len(rs))
		for i, r := range rs {
			before[i] = r.checks(t)
		}
		for range 20 {
			if a := get(t, c, wiki, "Authorization", "Pomerium "+carol); a.Status != http.StatusOK {
				t.Fatalf("carol on the wiki: %d %s", a.Status, a.Body)
			}
		}
		for i, r := range rs {
			if n := r.checks(t) - before[i]; n < 1 {
				t.Errorf("%s answered no Check of 20 through Envoy", r.name)
			} else {
				t.Logf("%s answered %.0f of the 20 Checks", r.name, n)
			}
		}
	})
	t.Run("both replicas allow carol before she is signed out", func(t *testing.T) {
		for _, r := range rs {
			if ok, out := r.check(t, wiki, "wiki", carol); !ok {
				t.Errorf("%s refuses carol:\n%s", r.name, out)
			}
		}
	})

	start := time.Now()
	if out, err := exec.Command("docker", "exec", rs[0].container, "/bin/extauthz", "revoke",
		"--config", "/etc/extauthz/config.yaml", "--email", "carol@corp.example").CombinedOutput(); err != nil {
		t.Fatalf("extauthz revoke --email in %s: %v\n%s", rs[0].name, err, out)
	}
	t.Run("signed out everywhere on one replica, carol is refused by every replica", func(t *testing.T) {
		// The contract's bound is 1 s; the deadline leaves room for a loaded
		// CI machine, and the time taken is logged.
		deadline := start.Add(10 * time.Second)
		for _, r := range rs {
			for {
				ok, out := r.check(t, wiki, "wiki", carol)
				if !ok && strings.Contains(out, "401") && strings.Contains(out, "revoked") {
					t.Logf("%s refuses carol %v after the revocation on %s", r.name, time.Since(start).Round(time.Millisecond), rs[0].name)
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s still answers for carol 10 s after the revocation on %s:\n%s", r.name, rs[0].name, out)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
	t.Run("through Envoy carol is refused whichever replica answers, and others are not", func(t *testing.T) {
		for range 10 {
			if a := get(t, c, wiki, "Authorization", "Pomerium "+carol); a.Status != http.StatusUnauthorized {
				t.Fatalf("carol's token after her revocation: %d %s", a.Status, a.Body)
			}
		}
		bob := mint("-email", "bob@corp.example", "-aud", "wiki.localhost", "-iss", "authenticate.localhost", "-sub", "bob")
		if a := get(t, c, wiki, "Authorization", "Pomerium "+bob); a.Status != http.StatusOK {
			t.Errorf("bob on the wiki after carol's revocation: %d %s", a.Status, a.Body)
		}
	})
}

package kubernetes_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/testkit"
)

// The layouts under test: overlay directory, namespace (the overlay's), and
// what the test deletes under load.
var layouts = []struct {
	dir, namespace string
	mtls           bool
	// entry is what the test port-forwards to (never a pod or Service
	// address: traffic goes to 127.0.0.1 only); victim labels the pods one
	// of which is deleted under load.
	entry, victim string
	fixtures      []string
}{
	{dir: "sidecar", namespace: "extauthz-sidecar", entry: "svc/edge", victim: "app.kubernetes.io/name=app", fixtures: []string{"testdata/edge.yaml"}},
	{dir: "shared", namespace: "extauthz-shared", mtls: true, entry: "svc/envoy", victim: "app.kubernetes.io/name=extauthz"},
}

// kube runs kubectl against the cluster in KUBECONFIG.
type kube struct{ t *testing.T }

// requireCluster returns kubectl for the cluster .ci/run brought up
// (KUBECONFIG). Without one it skips, saying why; under CI=true it fails.
func requireCluster(t *testing.T) kube {
	t.Helper()
	fail := t.Skipf
	if envoytest.InCI() {
		fail = t.Fatalf
	}
	if os.Getenv("KUBECONFIG") == "" {
		fail("no KUBECONFIG: .ci/run starts a one-node cluster (../shared/tools/k8s-local) and exports it")
	}
	if _, err := exec.LookPath("kubectl"); err != nil {
		fail("no kubectl on PATH (%v): .ci/run puts the cluster's binaries there", err)
	}
	if out, err := exec.Command("kubectl", "get", "--raw", "/readyz").CombinedOutput(); err != nil {
		fail("the cluster in KUBECONFIG does not answer (kubectl get --raw /readyz: %v): %s", err, out)
	}
	return kube{t}
}

// run runs kubectl with stdin and returns its stdout; a failure fails the test.
func (k kube) run(stdin string, args ...string) string {
	k.t.Helper()
	out, err := k.try(stdin, args...)
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

func (k kube) try(stdin string, args ...string) (string, error) {
	cmd := exec.Command("kubectl", args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// portForward forwards a free port on 127.0.0.1 to port of target (svc/NAME)
// until the test ends, and returns the local port.
func (k kube) portForward(ns, target string, port int) int {
	k.t.Helper()
	cmd := exec.Command("kubectl", "-n", ns, "port-forward", "--address", "127.0.0.1", target, ":"+strconv.Itoa(port))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		k.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	k.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	m := regexp.MustCompile(`127\.0\.0\.1:(\d+) ->`).FindStringSubmatch(line)
	if err != nil || m == nil {
		k.t.Fatalf("kubectl port-forward %s: %q %v", target, line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	p, _ := strconv.Atoi(m[1])
	return p
}

// pods returns name -> restart counts of the containers, for the pods with
// label that are not being deleted.
func (k kube) pods(ns, label string) map[string]string {
	k.t.Helper()
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string
				DeletionTimestamp *string
			}
			Status struct{ ContainerStatuses []struct{ RestartCount int } }
		}
	}
	if err := json.Unmarshal([]byte(k.run("", "-n", ns, "get", "pods", "-l", label, "-o", "json")), &list); err != nil {
		k.t.Fatal(err)
	}
	pods := map[string]string{}
	for _, p := range list.Items {
		if p.Metadata.DeletionTimestamp == nil {
			pods[p.Metadata.Name] = fmt.Sprint(p.Status.ContainerStatuses)
		}
	}
	return pods
}

// timing appends "name seconds" for the phase that began at start to the file
// EXTAUTHZ_TIMINGS names (.ci/run prints it), and to the test log.
func timing(t *testing.T, name string, start time.Time) {
	line := fmt.Sprintf("k8s %-48s %6.1fs\n", name, time.Since(start).Seconds())
	t.Log(strings.TrimSpace(line))
	if f := os.Getenv("EXTAUTHZ_TIMINGS"); f != "" {
		if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			_, _ = fh.WriteString(line)
			_ = fh.Close()
		}
	}
}

// TestLayoutsOnCluster applies each layout to a real cluster and uses it
// through a port-forward on 127.0.0.1 only: allow, deny, impersonation and
// the JWKS-verified assertion; a pod deleted under constant load with no
// request lost; a ConfigMap edit reloaded without a restart.
func TestLayoutsOnCluster(t *testing.T) {
	requireCluster(t)
	for _, l := range layouts {
		t.Run(l.dir, func(t *testing.T) {
			k := kube{t}
			start := time.Now()
			// A fresh start: no namespace left by an earlier run (EXTAUTHZ_K8S_KEEP).
			k.run("", "delete", "namespace", l.namespace, "--ignore-not-found", "--timeout=180s")
			if out, err := exec.Command("sh", "secrets.sh", l.namespace, map[bool]string{true: "--mtls"}[l.mtls]).CombinedOutput(); err != nil {
				t.Fatalf("secrets.sh: %v\n%s", err, out)
			}
			if os.Getenv("EXTAUTHZ_K8S_KEEP") == "" {
				t.Cleanup(func() { _, _ = k.try("", "delete", "namespace", l.namespace, "--wait=false") })
			}
			t.Cleanup(func() {
				if t.Failed() {
					out, _ := k.try("", "-n", l.namespace, "get", "pods,events", "-o", "wide")
					t.Logf("%s:\n%s", l.namespace, out)
				}
			})
			manifests := k.run("", "kustomize", l.dir)
			for _, f := range l.fixtures {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				manifests += "\n---\n" + string(b)
			}
			t.Run("every manifest passes a server-side dry run", func(t *testing.T) {
				out := kube{t}.run(manifests, "-n", l.namespace, "apply", "--dry-run=server", "-f", "-")
				if n := strings.Count(out, "(server dry run)"); n < 8 {
					t.Errorf("only %d objects in the server dry run:\n%s", n, out)
				}
			})
			k.run(manifests, "-n", l.namespace, "apply", "-f", "-")
			k.run("", "-n", l.namespace, "wait", "--for=condition=Available", "deployment", "--all", "--timeout=180s")
			timing(t, l.dir+": secrets, dry run, apply, rollout", start)

			secret := k.secret(l.namespace, "SHARED_SECRET")
			port := k.portForward(l.namespace, l.entry, 8080)
			c := &client{base: "http://127.0.0.1:" + strconv.Itoa(port), http: &http.Client{Timeout: 10 * time.Second}}
			bob := mint(t, secret, identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}})
			// Rolled out is not yet routable: Envoy resolves the pods' DNS names every second.
			for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(500 * time.Millisecond) {
				a, err := c.do("app.localhost", "/headers", bob)
				if err == nil && a.status == http.StatusOK {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no 200 through %s 90 s after the rollout: %d %v %.200s", l.entry, a.status, err, a.body)
				}
			}

			start = time.Now()
			requests(t, c, secret, bob)
			timing(t, l.dir+": allow, deny, impersonation, JWKS", start)

			start = time.Now()
			t.Run("deleting a pod under constant load loses no request", func(t *testing.T) {
				deleteUnderLoad(t, kube{t}, c, l.namespace, l.victim, bob)
			})
			timing(t, l.dir+": a pod deleted under load", start)

			start = time.Now()
			t.Run("a ConfigMap edit changes the policy without a restart", func(t *testing.T) {
				reloadWithoutRestart(t, kube{t}, c, l.namespace, bob)
			})
			timing(t, l.dir+": ConfigMap edit reloaded", start)
		})
	}
}

// secret is one key of the Secret extauthz-secrets.
func (k kube) secret(ns, key string) string {
	k.t.Helper()
	b, err := base64.StdEncoding.DecodeString(k.run("", "-n", ns, "get", "secret", "extauthz-secrets", "-o", "jsonpath={.data."+key+"}"))
	if err != nil || len(b) == 0 {
		k.t.Fatalf("secret key %s: %v", key, err)
	}
	return string(b)
}

// mint signs c for the app route, issued by the config's authenticate host.
func mint(t *testing.T, secret string, c identity.Claims) string {
	c.Subject = strings.Split(c.Email, "@")[0]
	return testkit.Mint(t, secret, testkit.Fill(c, "authenticate.localhost", time.Now(), "app.localhost"))
}

// client sends requests to the port-forward with the Host header of a route.
type client struct {
	base string
	http *http.Client
}

type answer struct {
	status  int
	header  http.Header
	body    []byte
	headers map[string]string // what the echo app received, lower-cased
}

func (c *client) get(t *testing.T, host, path, token string) answer {
	t.Helper()
	a, err := c.do(host, path, token)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (c *client) do(host, path, token string) (answer, error) {
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		return answer{}, err
	}
	req.Host = host
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Pomerium "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	a := answer{status: resp.StatusCode, header: resp.Header, body: body, headers: map[string]string{}}
	var echoed struct{ Headers map[string]string }
	if json.Unmarshal(body, &echoed) == nil {
		for k, v := range echoed.Headers {
			a.headers[strings.ToLower(k)] = v
		}
	}
	return a, err
}

func requests(t *testing.T, c *client, secret, bob string) {
	t.Run("a minted token is allowed, and the app sees its identity in a JWKS-verified assertion", func(t *testing.T) {
		a := c.get(t, "app.localhost", "/headers", bob)
		if a.status != http.StatusOK || a.headers["x-pomerium-claim-email"] != "bob@corp.example" {
			t.Fatalf("status %d, the app sees email %q: %s", a.status, a.headers["x-pomerium-claim-email"], a.body)
		}
		if _, ok := a.headers["authorization"]; ok {
			t.Error("the token reached the app")
		}
		if claims := verify(t, c, a.headers["x-pomerium-jwt-assertion"]); claims["email"] != "bob@corp.example" {
			t.Errorf("assertion email %v", claims["email"])
		}
	})
	t.Run("no token is 401 with a Pomerium challenge", func(t *testing.T) {
		a := c.get(t, "app.localhost", "/", "")
		if a.status != http.StatusUnauthorized || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Pomerium") {
			t.Fatalf("status %d, WWW-Authenticate %q: %s", a.status, a.header.Get("WWW-Authenticate"), a.body)
		}
	})
	t.Run("a token signed with another secret is 401", func(t *testing.T) {
		if a := c.get(t, "app.localhost", "/", mint(t, testkit.Secret(t), identity.Claims{Email: "bob@corp.example", Groups: []string{"engineering"}})); a.status != http.StatusUnauthorized {
			t.Fatalf("status %d: %s", a.status, a.body)
		}
	})
	t.Run("alice impersonating bob reaches the app as bob, with herself as actor", func(t *testing.T) {
		tok := mint(t, secret, identity.Claims{Email: "alice@corp.example", ImpersonateEmail: "bob@corp.example",
			ImpersonateGroups: []string{"engineering"}, ImpersonateReason: "k8s cluster test", ImpersonateAccess: "read_only"})
		a := c.get(t, "app.localhost", "/headers", tok)
		if a.status != http.StatusOK || a.headers["x-pomerium-claim-email"] != "bob@corp.example" {
			t.Fatalf("status %d, the app sees %q: %s", a.status, a.headers["x-pomerium-claim-email"], a.body)
		}
		act, _ := verify(t, c, a.headers["x-pomerium-jwt-assertion"])["act"].(map[string]any)
		if act["email"] != "alice@corp.example" {
			t.Errorf("act %v, want alice", act)
		}
	})
}

// verify checks an x-pomerium-jwt-assertion against the JWKS served at
// /.well-known/pomerium/jwks.json through the same Envoy, and returns its claims.
func verify(t *testing.T, c *client, assertion string) map[string]any {
	t.Helper()
	a := c.get(t, "app.localhost", "/.well-known/pomerium/jwks.json", "")
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(a.body, &set); a.status != http.StatusOK || err != nil {
		t.Fatalf("JWKS: status %d %v: %s", a.status, err, a.body)
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(assertion, claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		if keys := set.Key(kid); len(keys) == 1 {
			return keys[0].Key, nil
		}
		return nil, fmt.Errorf("no key %q in the JWKS", kid)
	}, jwt.WithValidMethods([]string{"ES256"}))
	if err != nil {
		t.Fatalf("the assertion %q does not verify against the served JWKS: %v", assertion, err)
	}
	return claims
}

// deleteUnderLoad sends bob's requests from 8 clients without pause, deletes
// one pod labelled victim, and keeps going until a replacement is ready and
// the deleted pod is gone: every request must be answered 200.
func deleteUnderLoad(t *testing.T, k kube, c *client, ns, victim, bob string) {
	before := k.pods(ns, victim)
	var name string
	for n := range before {
		name = n
	}
	if len(before) < 2 {
		t.Fatalf("%d pods labelled %s, want 2 or more: %v", len(before), victim, before)
	}
	ctx, stop := context.WithCancel(context.Background())
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				a, err := c.do("app.localhost", "/headers", bob)
				if err == nil && a.status == http.StatusOK {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				mu.Lock()
				if len(failures) < 10 {
					failures = append(failures, fmt.Sprintf("%s: status %d %v %.200s", time.Now().Format("15:04:05.000"), a.status, err, a.body))
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(3 * time.Second)
	warm := ok.Load()
	t.Logf("%s: deleting pod %s", time.Now().Format("15:04:05.000"), name)
	k.run("", "-n", ns, "delete", "pod", name, "--wait=false")
	k.run("", "-n", ns, "wait", "--for=delete", "pod/"+name, "--timeout=120s")
	k.run("", "-n", ns, "wait", "--for=condition=Ready", "pod", "-l", victim, "--timeout=120s")
	time.Sleep(3 * time.Second)
	stop()
	wg.Wait()
	t.Logf("%d requests answered 200 (%d before the delete), %d failed", ok.Load(), warm, failed.Load())
	if failed.Load() > 0 || warm == 0 {
		t.Errorf("%d of %d requests failed while pod %s was deleted (%d answered before):\n%s",
			failed.Load(), ok.Load()+failed.Load(), name, warm, strings.Join(failures, "\n"))
	}
	if after := k.pods(ns, victim); len(after) != len(before) {
		t.Errorf("%d pods after, %d before", len(after), len(before))
	}
}

// reloadWithoutRestart edits the app route in the ConfigMap so that bob's
// group no longer reaches it, and waits for every extauthz pod to refuse him,
// with the same pods and no container restarted.
func reloadWithoutRestart(t *testing.T, k kube, c *client, ns, bob string) {
	const label = "app.kubernetes.io/name in (app,extauthz)"
	before := k.pods(ns, label)
	cfg := k.run("", "-n", ns, "get", "configmap", "extauthz-config", "-o", "jsonpath={.data.config\\.yaml}")
	edited := strings.Replace(cfg, "allowed_groups: [engineering]", "allowed_groups: [platform]", 1)
	if edited == cfg {
		t.Fatal("the config has no app route allowing engineering to edit")
	}
	patch, _ := json.Marshal(map[string]any{"data": map[string]string{"config.yaml": edited}})
	k.run("", "-n", ns, "patch", "configmap", "extauthz-config", "--type=merge", "-p", string(patch))
	start := time.Now()
	for pod := range before {
		for !strings.Contains(k.run("", "-n", ns, "logs", pod, "-c", "extauthz"), `"config reloaded"`) {
			if time.Since(start) > 150*time.Second {
				t.Fatalf("pod %s logged no \"config reloaded\" %s after the ConfigMap edit", pod, time.Since(start))
			}
			time.Sleep(time.Second)
		}
	}
	t.Logf("every pod reloaded %.1fs after the ConfigMap edit", time.Since(start).Seconds())
	for range 4 { // spread over the replicas behind the Service
		if a := c.get(t, "app.localhost", "/", bob); a.status != http.StatusForbidden {
			t.Errorf("after the edit bob gets %d, want 403: %s", a.status, a.body)
		}
	}
	if after := k.pods(ns, label); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("pods and restart counts changed: before %v, after %v", before, after)
	}
}

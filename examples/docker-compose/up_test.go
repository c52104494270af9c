package compose_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/testkit"
)

// optInEnv runs TestComposeStackUp outside CI: it builds images and binds
// 127.0.0.1:8080 and :5556, which a plain `go test ./...` should not do.
const optInEnv = "EXTAUTHZ_COMPOSE_TEST"

// The stack's published addresses (docker-compose.yaml).
const (
	envoyPort = "8080"
	idpPort   = "5556"
)

// requireCompose skips the test, saying why, unless a Docker engine with
// Compose v2 is there to use; under CI=true it fails instead of skipping.
func requireCompose(t *testing.T) {
	t.Helper()
	fail := t.Skipf
	if envoytest.InCI() {
		fail = t.Fatalf
	} else if os.Getenv(optInEnv) == "" {
		t.Skipf("brings the compose stack up (builds images, binds 127.0.0.1:%s and :%s): set %s=1 (CI=true always runs it)", envoyPort, idpPort, optInEnv)
	}
	if _, err := exec.LookPath("docker"); err != nil {
		fail("no docker CLI (%v): .ci/run sets up a Docker engine with the Compose v2 plugin", err)
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		fail("no Docker engine answers (docker info: %v): %s", err, out)
	}
	if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err != nil {
		fail("no Compose v2 plugin (docker compose version: %v): %s", err, out)
	}
}

// phases times the steps of a test and reports them all at the end, and to
// the file named by EXTAUTHZ_TIMINGS (which .ci/run prints), if set.
type phases struct {
	t     *testing.T
	start time.Time
	name  string
	lines []string
}

func newPhases(t *testing.T) *phases {
	p := &phases{t: t}
	t.Cleanup(p.report)
	return p
}

// next ends the running phase, if any, and starts one called name.
func (p *phases) next(name string) {
	p.end()
	p.name, p.start = name, time.Now()
	p.t.Logf("phase: %s", name)
}

func (p *phases) end() {
	if p.name == "" {
		return
	}
	p.lines = append(p.lines, fmt.Sprintf("%-52s %6.1fs", p.name, time.Since(p.start).Seconds()))
	p.name = ""
}

func (p *phases) report() {
	p.end()
	out := fmt.Sprintf("%s phases:\n  %s\n", p.t.Name(), strings.Join(p.lines, "\n  "))
	p.t.Log(out)
	if f := os.Getenv("EXTAUTHZ_TIMINGS"); f != "" {
		if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			_, _ = fh.WriteString(out)
			_ = fh.Close()
		}
	}
}

// run runs a command in this directory and returns its stdout; a failure
// fails the test with both outputs.
func run(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// readDotEnv reads the KEY=value lines of .env.
func readDotEnv(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(".env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	return env
}

// stackClient sends every request to the stack's published loopback ports,
// whatever the host name in the URL (app.localhost:8080 -> 127.0.0.1:8080),
// and does not follow redirects.
func stackClient() *http.Client {
	var d net.Dialer
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// get asks for JSON, as scripts do.
func get(t *testing.T, c *http.Client, url string, header ...string) testkit.Answer {
	t.Helper()
	return testkit.Get(t, c, url, append([]string{"Accept", "application/json"}, header...)...)
}

// echoed is what examples/echo answers, with header names lower-cased.
type echoed struct {
	Host    string            `json:"host"`
	Headers map[string]string `json:"headers"`
}

func parseEcho(t *testing.T, body string) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("not the echo app's answer: %v: %s", err, body)
	}
	lower := make(map[string]string, len(e.Headers))
	for k, v := range e.Headers {
		lower[strings.ToLower(k)] = v
	}
	e.Headers = lower
	return e
}

// echoFor GETs url through Envoy with the Pomerium token tok and returns
// what the app saw; anything but the app's 200 fails the test.
func echoFor(t *testing.T, c *http.Client, url, tok string) echoed {
	t.Helper()
	a := get(t, c, url, "Authorization", "Pomerium "+tok)
	if a.Status != http.StatusOK {
		t.Fatalf("status %d: %s", a.Status, a.Body)
	}
	return parseEcho(t, a.Body)
}

// verifyAssertion checks x-pomerium-jwt-assertion against the stack's
// published JWKS and returns its claims.
func verifyAssertion(t *testing.T, c *http.Client, host, assertion string) map[string]any {
	t.Helper()
	a := get(t, c, "http://"+host+":"+envoyPort+"/.well-known/pomerium/jwks.json")
	var jwks jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(a.Body), &jwks); err != nil || a.Status != http.StatusOK {
		t.Fatalf("JWKS: %d %v: %s", a.Status, err, a.Body)
	}
	sig, err := jose.ParseSigned(assertion, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(sig.Signatures) != 1 {
		t.Fatalf("assertion %q: %v", assertion, err)
	}
	keys := jwks.Key(sig.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("the JWKS has %d keys with the assertion's kid %q", len(keys), sig.Signatures[0].Header.KeyID)
	}
	payload, err := sig.Verify(keys[0].Key)
	if err != nil {
		t.Fatalf("the assertion does not verify with the published key: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// renameSave writes data to path as editors save: a new file beside it,
// renamed over it, with the mode of the old one.
func renameSave(t *testing.T, path string, data []byte) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".saving")
	if err := os.WriteFile(tmp, data, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, fi.Mode().Perm()); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		t.Fatal(err)
	}
}

// TestComposeStackUp brings the unchanged docker-compose example up on a real
// Docker engine (images built from this repository, third-party ones stood
// in for by make compose-images where no registry is reachable) and uses it
// as its README says, through Envoy on 127.0.0.1: tokens minted by the
// image's own pomerium-cli, allowed, refused, stripped and impersonated; a
// config saved by rename reloaded; the two sidecar replicas acting as one
// through Redis (replicas_test.go); then the browser flow in headless
// Chromium through the demo provider.
func TestComposeStackUp(t *testing.T) {
	requireCompose(t)
	p := newPhases(t)

	p.next("make compose-env, compose-images (stand-ins)")
	run(t, "", "sh", "compose-env.sh")
	run(t, "", "sh", "standin-images.sh")

	// Down even when a step below fails, with the logs of a failure first.
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("docker", "compose", "logs", "--no-color", "--tail", "80").CombinedOutput()
			t.Logf("docker compose logs:\n%s", out)
		}
		p.next("docker compose down -v")
		if out, err := exec.Command("docker", "compose", "down", "-v", "--remove-orphans").CombinedOutput(); err != nil {
			t.Errorf("docker compose down -v: %v\n%s", err, out)
		}
	})
	p.next("docker compose up -d --build")
	run(t, "", "docker", "compose", "up", "-d", "--build")

	p.next("healthy: Envoy, sidecar, demo provider")
	c := stackClient()
	deadline := time.Now().Add(90 * time.Second)
	for {
		a, errA := c.Get("http://public.localhost:" + envoyPort + "/")
		b, errB := c.Get("http://idp.localhost:" + idpPort + "/.well-known/openid-configuration")
		for _, r := range []*http.Response{a, b} {
			if r != nil {
				r.Body.Close()
			}
		}
		if errA == nil && errB == nil && a.StatusCode == http.StatusOK && b.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stack is not answering after 90 s: public route %v %v, provider %v %v\n%s", a, errA, b, errB,
				run(t, "", "docker", "compose", "ps", "--all"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	ps := run(t, "", "docker", "compose", "ps", "--format", "{{.Service}} {{.Health}}")
	for want, n := range map[string]int{"extauthz healthy": 2, "idp healthy": 1, "redis healthy": 1} {
		if got := strings.Count(ps, want+"\n"); got != n {
			t.Errorf("docker compose ps says %q %d times, want %d:\n%s", want, got, n, ps)
		}
	}

	secret := readDotEnv(t)["SHARED_SECRET"]
	container := strings.Fields(run(t, "", "docker", "compose", "ps", "-q", "extauthz"))[0] // any replica
	image := strings.TrimSpace(run(t, "", "docker", "inspect", "--format", "{{.Image}}", container))
	mint := func(args ...string) string {
		t.Helper()
		out := run(t, secret+"\n", "docker", append([]string{"run", "-i", "--rm", "--network", "none", "--entrypoint", "/bin/pomerium-cli", image}, args...)...)
		return strings.TrimSpace(out)
	}

	p.next("pomerium-cli in the image, as Pomerium documents it")
	t.Run("the image's /bin/pomerium-cli mints a token from the secret on stdin", func(t *testing.T) {
		tok := mint("-email", "bob@pomerium.io", "-aud", "httpbin.int.pomerium.io", "-iss", "authenticate.int.pomerium.io")
		claims := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("authenticate.int.pomerium.io"), jwt.WithAudience("httpbin.int.pomerium.io")); err != nil {
			t.Fatalf("pomerium-cli printed %q, not a token signed with the shared secret: %v", tok, err)
		}
		if claims["email"] != "bob@pomerium.io" {
			t.Errorf("email claim %v", claims["email"])
		}
	})

	p.next("tokens through Envoy")
	app := "http://app.localhost:" + envoyPort + "/headers"
	bob := mint("-email", "bob@corp.example", "-aud", "app.localhost", "-iss", "authenticate.localhost", "-sub", "bob", "-user", "bob", "-groups", "engineering")
	t.Run("a minted token is allowed and the app sees its identity, not the token", func(t *testing.T) {
		e := echoFor(t, c, app, bob)
		if e.Headers["x-pomerium-claim-email"] != "bob@corp.example" {
			t.Errorf("x-pomerium-claim-email %q", e.Headers["x-pomerium-claim-email"])
		}
		if _, ok := e.Headers["authorization"]; ok {
			t.Error("the token reached the app")
		}
		if claims := verifyAssertion(t, c, "app.localhost", e.Headers["x-pomerium-jwt-assertion"]); claims["email"] != "bob@corp.example" {
			t.Errorf("assertion email %v", claims["email"])
		}
	})
	t.Run("no token is 401 with a Pomerium challenge", func(t *testing.T) {
		a := get(t, c, app)
		if a.Status != http.StatusUnauthorized || !strings.HasPrefix(a.Header.Get("WWW-Authenticate"), "Pomerium") {
			t.Fatalf("status %d, WWW-Authenticate %q: %s", a.Status, a.Header.Get("WWW-Authenticate"), a.Body)
		}
	})
	t.Run("a claim header sent by the client is stripped", func(t *testing.T) {
		a := get(t, c, app, "Authorization", "Pomerium "+bob, "X-Pomerium-Claim-Email", "alice@corp.example", "X-Pomerium-Claim-Groups", "admins")
		e := parseEcho(t, a.Body)
		if a.Status != http.StatusOK || e.Headers["x-pomerium-claim-email"] != "bob@corp.example" || strings.Contains(e.Headers["x-pomerium-claim-groups"], "admins") {
			t.Errorf("status %d, the app sees email %q groups %q", a.Status, e.Headers["x-pomerium-claim-email"], e.Headers["x-pomerium-claim-groups"])
		}
		pub := parseEcho(t, get(t, c, "http://public.localhost:"+envoyPort+"/", "X-Pomerium-Claim-Email", "alice@corp.example").Body)
		if v, ok := pub.Headers["x-pomerium-claim-email"]; ok {
			t.Errorf("on the public route the app sees x-pomerium-claim-email %q", v)
		}
	})
	t.Run("bob is refused on the admin route", func(t *testing.T) {
		bobAdmin := mint("-email", "bob@corp.example", "-aud", "admin.localhost", "-iss", "authenticate.localhost", "-sub", "bob")
		if a := get(t, c, "http://admin.localhost:"+envoyPort+"/", "Authorization", "Pomerium "+bobAdmin); a.Status != http.StatusForbidden {
			t.Errorf("status %d: %s", a.Status, a.Body)
		}
	})
	t.Run("alice impersonating bob reaches the app as bob, with herself as actor", func(t *testing.T) {
		tok := mint("-email", "alice@corp.example", "-aud", "app.localhost", "-iss", "authenticate.localhost", "-sub", "alice",
			"-impersonate_email", "bob@corp.example", "-impersonate_groups", "engineering", "-impersonate_reason", "compose test", "-impersonate_access", "read_only")
		e := echoFor(t, c, app, tok)
		if e.Headers["x-pomerium-claim-email"] != "bob@corp.example" {
			t.Errorf("the app sees %q", e.Headers["x-pomerium-claim-email"])
		}
		claims := verifyAssertion(t, c, "app.localhost", e.Headers["x-pomerium-jwt-assertion"])
		if act, _ := claims["act"].(map[string]any); act["email"] != "alice@corp.example" {
			t.Errorf("act %v, want alice", claims["act"])
		}
	})

	p.next("config saved by rename is reloaded")
	t.Run("a config saved by renaming a new file over it is reloaded", func(t *testing.T) {
		// What editors do: a new file beside it, renamed over it. Only the
		// mounted directory shows the container the new file (a single-file
		// mount keeps the old inode). The sidecar reloads only a changed
		// file, so the save adds a comment; the original is put back after.
		orig, err := os.ReadFile(sidecarFile)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { renameSave(t, sidecarFile, orig) })
		reloads := func() int {
			return strings.Count(run(t, "", "docker", "compose", "logs", "--no-color", "extauthz"), `"config reloaded"`)
		}
		before := reloads()
		renameSave(t, sidecarFile, append(slices.Clip(orig), "# saved by TestComposeStackUp (up_test.go), which restores this file\n"...))
		deadline := time.Now().Add(20 * time.Second)
		for reloads() < before+2 { // each replica reloads
			if time.Now().After(deadline) {
				t.Fatalf("not two more \"config reloaded\" in the sidecar replicas' logs 20 s after a rename-save of %s", sidecarFile)
			}
			time.Sleep(250 * time.Millisecond)
		}
	})

	p.next("replicas: revoke on one, refused by both")
	replicasActAsOne(t, c, mint)

	// The pages (cluster extauthz_http) are balanced over both replicas too,
	// so the sign-in below starts and ends on either: it needs the handoffs
	// they share in Redis.
	p.next("browser: sign in, dashboard, sign in as, sign out")
	browserFlow(t)
}

// browserFlow signs alice in through the demo provider in headless
// Chromium, impersonates bob from the dashboard, and signs out everywhere.
// EXTAUTHZ_SCREENSHOTS names a directory for a screenshot of each page.
func browserFlow(t *testing.T) {
	ctx := testkit.Chrome(t, 2*time.Minute)
	base := "http://app.localhost:" + envoyPort
	fail := func(what string, err error) {
		t.Helper()
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, body)
	}
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			fail(what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			fail("reading "+sel, err)
		}
		return s
	}
	shot := func(name string) {
		t.Helper()
		dir := os.Getenv("EXTAUTHZ_SCREENSHOTS")
		if dir == "" {
			return
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "compose-"+name+".png"), png, 0o644)
		}
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
	alice := chromedp.CSS(`input[name=username][value=alice]`)

	step("the dashboard sends an unknown browser to the demo provider",
		chromedp.Navigate(base+"/.pomerium/"),
		chromedp.WaitVisible(alice))
	shot("1-provider")
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasPrefix(loc, "http://idp.localhost:"+idpPort+"/login") {
		t.Errorf("the sign-in went to %s, want the demo provider's login page", loc)
	}

	step("signing in as alice at the provider lands on the dashboard, with the sign-in-as form",
		chromedp.Click(alice),
		chromedp.Click(chromedp.CSS(`button[value=approve]`)),
		chromedp.WaitVisible(chromedp.ID("sign-in-as")))
	shot("2-dashboard")
	session := text("#session")
	for _, want := range []string{"alice@corp.example", "admins"} {
		if !strings.Contains(session, want) {
			t.Errorf("the dashboard's session card lacks %q: %s", want, session)
		}
	}

	step("signing in as bob shows the banner",
		chromedp.SendKeys(chromedp.ID("imp-email"), "bob@corp.example"),
		chromedp.SendKeys(chromedp.ID("imp-groups"), "engineering"),
		chromedp.SendKeys(chromedp.ID("imp-reason"), "compose test: the browser flow"),
		chromedp.Submit(chromedp.ID("imp-email")),
		chromedp.WaitVisible(chromedp.CSS(`.banner`)))
	shot("3-sign-in-as")
	if banner := text(".banner"); !strings.Contains(banner, "bob@corp.example") {
		t.Errorf("banner %q does not name bob", banner)
	}

	step("the app", chromedp.Navigate(base+"/headers"))
	if e := parseEcho(t, text("body")); e.Headers["x-pomerium-claim-email"] != "bob@corp.example" {
		t.Errorf("the app sees %q, want bob", e.Headers["x-pomerium-claim-email"])
	}

	step("sign out of the app, then everywhere",
		chromedp.Navigate(base+"/.pomerium/"),
		chromedp.WaitVisible(chromedp.CSS(`.topbar form button[type=submit]`)),
		chromedp.Click(chromedp.CSS(`.topbar form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("signed-out")),
		chromedp.Click(chromedp.CSS(`#signed-out a[href*="authenticate.localhost"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#sign-out-everywhere button`)),
		chromedp.Click(chromedp.CSS(`#sign-out-everywhere button`)),
		chromedp.WaitNotPresent(chromedp.ID("sign-out-everywhere")))
	shot("4-signed-out")
	step("after signing out everywhere, the app needs the provider again",
		chromedp.Navigate(base+"/headers"),
		chromedp.WaitVisible(alice))
}

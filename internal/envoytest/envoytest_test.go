package envoytest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/internal/envoytest"
	"github.com/extauthz/extauthz/internal/testkit"
)

func TestRewritePorts(t *testing.T) {
	path, err := envoytest.BundledConfig()
	if err != nil {
		t.Fatal(err)
	}
	b, err := envoytest.LoadBootstrap(path)
	if err != nil {
		t.Fatal(err)
	}
	src := mustRead(t, path)
	out, err := envoytest.RewritePorts(src, map[int]int{8080: 18080, 9901: 19901, 9191: 19191, 9292: 19292, 8081: 18081})
	if err != nil {
		t.Fatal(err)
	}
	nb, err := envoytest.DecodeBootstrap(out)
	if err != nil {
		t.Fatalf("rewritten config does not decode: %v\n%s", err, out)
	}
	if got := envoytest.SocketAddress(nb.GetAdmin().GetAddress()).String(); got != "127.0.0.1:19901" {
		t.Errorf("admin %s", got)
	}
	if got := envoytest.SocketAddress(nb.GetStaticResources().GetListeners()[0].GetAddress()).String(); got != "127.0.0.1:18080" {
		t.Errorf("listener %s", got)
	}
	for name, want := range map[string]string{"extauthz_grpc": "127.0.0.1:19191", "extauthz_http": "127.0.0.1:19292", "upstream": "127.0.0.1:18081"} {
		if eps := envoytest.Endpoints(envoytest.Cluster(nb, name)); len(eps) != 1 || eps[0].String() != want {
			t.Errorf("cluster %s: %v, want %s", name, eps, want)
		}
	}
	// Nothing but the ports changed: put the old ports back and compare.
	back, err := envoytest.RewritePorts(out, map[int]int{18080: 8080, 19901: 9901, 19191: 9191, 19292: 9292, 18081: 8081})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := envoytest.DecodeBootstrap(back)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(b, ob) {
		t.Error("rewriting ports changed more than ports")
	}
	// Anchors survive, so the rewritten file stays readable.
	if !strings.Contains(string(out), "&pomerium_pages") || !strings.Contains(string(out), "*pomerium_pages") {
		t.Error("anchors were expanded or lost")
	}

	if _, err := envoytest.RewritePorts(src, map[int]int{8080: 1}); err == nil || !strings.Contains(err.Error(), "9901") {
		t.Errorf("an unmapped port must be an error, got %v", err)
	}
}

func TestBinary(t *testing.T) {
	bin, err := envoytest.Binary()
	if err != nil {
		if envoytest.InCI() {
			t.Fatalf("CI=true but Envoy is required: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	t.Setenv("ENVOY_BIN", bin)
	if got, err := envoytest.Binary(); err != nil || got != bin {
		t.Errorf("with ENVOY_BIN=%s: %q, %v", bin, got, err)
	}
	t.Setenv("ENVOY_BIN", "/nonexistent/envoy")
	if _, err := envoytest.Binary(); err == nil {
		t.Error("a wrong ENVOY_BIN must be an error, not a silent fallback")
	}
}

// recorder is a plain net/http server standing in for the sidecar's pages or
// the app; it remembers what it received and echoes the request as JSON.
type recorder struct {
	name string
	mu   sync.Mutex
	reqs []*http.Request
	srv  *httptest.Server
}

func newRecorder(t *testing.T, name string) *recorder {
	r := &recorder{name: name}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Clone(context.Background()))
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"server": name, "path": req.URL.Path, "host": req.Host, "headers": req.Header})
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) port() int { return r.srv.Listener.Addr().(*net.TCPAddr).Port }

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func (r *recorder) last() *http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		return nil
	}
	return r.reqs[len(r.reqs)-1]
}

// raw sends a request line exactly as written (no client-side path cleaning).
func raw(t *testing.T, e *envoytest.Envoy, host, target string) testkit.Answer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(e.URL(), "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	return testkit.ReadAnswer(resp)
}

// The bundled config through a real Envoy, with plain net/http servers for the
// sidecar's pages and the app, and nothing on the ext_authz gRPC port.
func TestBundledConfigPagesUnderscoresAndFailClosed(t *testing.T) {
	pages := newRecorder(t, "pages")
	app := newRecorder(t, "app")
	e := envoytest.Start(t, envoytest.Options{
		GRPCPort:     envoytest.FreePort(t), // nothing listens: the Check cannot be made
		HTTPPort:     pages.port(),
		UpstreamPort: app.port(),
	})

	t.Run("pages on the catch-all host go to the sidecar's HTTP port", func(t *testing.T) {
		r := testkit.Get(t, e.Client(), e.URLFor("unknown.example")+"/.pomerium/", "x-request-id", "chosen-by-client")
		if r.Status != http.StatusOK || !strings.Contains(r.Body, `"server":"pages"`) {
			t.Fatalf("status %d body %s", r.Status, r.Body)
		}
		got := pages.last()
		if got.URL.Path != "/.pomerium/" || got.Host != "unknown.example:"+fmt.Sprint(e.Options().ListenPort) {
			t.Errorf("pages got %s %s", got.Host, got.URL.Path)
		}
		id := got.Header.Get("X-Request-Id")
		if id == "" || id == "chosen-by-client" {
			t.Errorf("x-request-id upstream %q: Envoy must generate it and replace a client's", id)
		}
		if r.Header.Get("X-Request-Id") != id {
			t.Errorf("response x-request-id %q, want the one the sidecar saw (%q)", r.Header.Get("X-Request-Id"), id)
		}
	})

	t.Run("pages on every app host, JWKS too", func(t *testing.T) {
		for _, host := range []string{"app.localhost", "admin.localhost", "wiki.localhost", "public.localhost", "127.0.0.1"} {
			for _, path := range []string{"/.pomerium", "/.pomerium/sign_in?pomerium_redirect_uri=x", "/.well-known/pomerium/jwks.json"} {
				before := pages.count()
				if r := testkit.Get(t, e.Client(), e.URLFor(host)+path); r.Status != http.StatusOK || pages.count() != before+1 {
					t.Errorf("%s%s: status %d, pages hit %d times", host, path, r.Status, pages.count()-before)
				}
			}
		}
	})

	t.Run("headers with underscores are rejected by Envoy", func(t *testing.T) {
		before := pages.count() + app.count()
		for _, url := range []string{e.URLFor("app.localhost") + "/headers", e.URLFor("app.localhost") + "/.pomerium/", e.URL() + "/"} {
			if r := testkit.Get(t, e.Client(), url, "x_pomerium_foo", "1"); r.Status != http.StatusBadRequest {
				t.Errorf("%s with x_pomerium_foo: status %d, want 400", url, r.Status)
			}
		}
		if n := pages.count() + app.count() - before; n != 0 {
			t.Errorf("%d requests with underscored headers got through", n)
		}
	})

	t.Run("app routes fail closed when the sidecar cannot be reached", func(t *testing.T) {
		for _, url := range []string{
			e.URLFor("app.localhost") + "/headers",
			e.URLFor("public.localhost") + "/",
			e.URLFor("unknown.example") + "/",
			e.URLFor("app.localhost") + "/.pomeriumx",
			e.URLFor("app.localhost") + "/.well-known/other",
		} {
			r := testkit.Get(t, e.Client(), url, "Authorization", "Pomerium whatever")
			t.Logf("%s: %d", url, r.Status)
			if r.Status != http.StatusServiceUnavailable && r.Status != http.StatusForbidden && r.Status < 500 {
				t.Errorf("%s: status %d, want a 5xx or 403", url, r.Status)
			}
		}
		if app.count() != 0 {
			t.Errorf("the app received %d requests without a Check", app.count())
		}
	})

	t.Run("normalized paths cannot ride the page routes", func(t *testing.T) {
		before := pages.count()
		for _, target := range []string{"/.pomerium/../headers", "/.pomerium/..%2Fheaders", "/.well-known/pomerium/../../headers"} {
			r := raw(t, e, "app.localhost", target)
			t.Logf("%s: %d %s", target, r.Status, r.Header.Get("Location"))
			if r.Status == http.StatusOK {
				t.Errorf("%s: status 200, want a redirect or a refusal", target)
			}
		}
		if app.count() != 0 || pages.count() != before {
			t.Errorf("app hit %d, pages hit %d", app.count(), pages.count()-before)
		}
	})
}

// fakeAuthz stands in for the sidecar's Check: it allows everything except
// /deny, overwriting x-pomerium-jwt-assertion and removing authorization.
type fakeAuthz struct {
	authv3.UnimplementedAuthorizationServer
	mu   sync.Mutex
	reqs []*authv3.CheckRequest
}

func (f *fakeAuthz) Check(_ context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	if req.GetAttributes().GetRequest().GetHttp().GetPath() == "/deny" {
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden},
				Body:   "denied by fake",
			}},
		}, nil
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{{
				Header:       &corev3.HeaderValue{Key: "x-pomerium-jwt-assertion", Value: "from-the-sidecar"},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			}},
			HeadersToRemove: []string{"authorization"},
		}},
	}, nil
}

func (f *fakeAuthz) last() *authv3.CheckRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		return nil
	}
	return f.reqs[len(f.reqs)-1]
}

func (f *fakeAuthz) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

// The Check wiring of the bundled config: context_extensions per virtual
// host, x-request-id in the Check, header mutations and denials applied.
func TestBundledConfigCheckWiring(t *testing.T) {
	authz := &fakeAuthz{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, authz)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	pages := newRecorder(t, "pages")
	app := newRecorder(t, "app")
	e := envoytest.Start(t, envoytest.Options{
		GRPCPort:     lis.Addr().(*net.TCPAddr).Port,
		HTTPPort:     pages.port(),
		UpstreamPort: app.port(),
	})

	for host, route := range map[string]string{
		"app.localhost": "app", "admin.localhost": "admin", "wiki.localhost": "wiki", "public.localhost": "public",
		"unknown.example": "", "127.0.0.1": "",
	} {
		r := testkit.Get(t, e.Client(), e.URLFor(host)+"/headers",
			"Authorization", "Pomerium token", "x-pomerium-jwt-assertion", "forged", "Cookie", "a=b")
		if r.Status != http.StatusOK {
			t.Errorf("%s: status %d body %s", host, r.Status, r.Body)
			continue
		}
		check := authz.last()
		if got := check.GetAttributes().GetContextExtensions()["route"]; got != route {
			t.Errorf("%s: context_extensions route %q, want %q", host, got, route)
		}
		upstream := app.last()
		checkHeaders := check.GetAttributes().GetRequest().GetHttp().GetHeaders()
		if id := checkHeaders["x-request-id"]; id == "" || id != upstream.Header.Get("X-Request-Id") || id != r.Header.Get("X-Request-Id") {
			t.Errorf("%s: x-request-id in Check %q, upstream %q, response %q: want one id everywhere",
				host, id, upstream.Header.Get("X-Request-Id"), r.Header.Get("X-Request-Id"))
		}
		if checkHeaders["authorization"] != "Pomerium token" || checkHeaders["cookie"] != "a=b" {
			t.Errorf("%s: the Check did not see the credentials: %v", host, checkHeaders)
		}
		if got := upstream.Header.Values("X-Pomerium-Jwt-Assertion"); len(got) != 1 || got[0] != "from-the-sidecar" {
			t.Errorf("%s: upstream x-pomerium-jwt-assertion %q, want only the sidecar's", host, got)
		}
		if got := upstream.Header.Get("Authorization"); got != "" {
			t.Errorf("%s: upstream still got authorization %q", host, got)
		}
	}

	before := authz.count()
	if r := testkit.Get(t, e.Client(), e.URLFor("app.localhost")+"/.pomerium/"); r.Status != http.StatusOK || !strings.Contains(r.Body, `"server":"pages"`) {
		t.Errorf("dashboard: %d %s", r.Status, r.Body)
	}
	if authz.count() != before {
		t.Error("the pages route made a Check")
	}

	appHits := app.count()
	r := testkit.Get(t, e.Client(), e.URLFor("app.localhost")+"/deny")
	if r.Status != http.StatusForbidden || r.Body != "denied by fake" {
		t.Errorf("deny: %d %q", r.Status, r.Body)
	}
	if app.count() != appHits {
		t.Error("a denied request reached the app")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFreePortIsBelowTheEphemeralRange: a port the kernel could also hand to
// an outgoing connection may be taken before the process it is meant for
// binds it. (Where the ephemeral range starts below 30000, FreePort falls
// back to the kernel's pick; this machine's starts at 32768.)
func TestFreePortIsBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		p := envoytest.FreePort(t)
		if p < 20000 || p >= 30000 {
			t.Fatalf("FreePort() = %d, want one in [20000, 30000)", p)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d from FreePort cannot be bound: %v", p, err)
		}
		l.Close()
	}
}

package module_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/module"
	"github.com/extauthz/extauthz/internal/store/redistest"
	"github.com/extauthz/extauthz/internal/testkit"
)

func TestParseSettings(t *testing.T) {
	cases := []struct {
		name, raw string
		want      module.Settings
		errHas    string
	}{
		{"a config path alone gets info logs in JSON", `{"config":"/etc/extauthz/config.yaml"}`,
			module.Settings{Config: "/etc/extauthz/config.yaml", LogLevel: "info", LogFormat: "json"}, ""},
		{"log level and format are kept", `{"config":"/c.yaml","log_level":"debug","log_format":"console"}`,
			module.Settings{Config: "/c.yaml", LogLevel: "debug", LogFormat: "console"}, ""},
		{"no config path is refused", `{"log_level":"info"}`, module.Settings{}, "config (the path of the extauthz config file) is required"},
		{"a misspelt key is refused, not ignored", `{"config":"/c.yaml","loglevel":"debug"}`, module.Settings{}, "loglevel"},
		{"a plain string is refused", `/etc/extauthz/config.yaml`, module.Settings{}, "must be a Struct"},
		{"an unknown log level is refused", `{"config":"/c.yaml","log_level":"loud"}`, module.Settings{}, "log_level must be"},
		{"an unknown log format is refused", `{"config":"/c.yaml","log_format":"xml"}`, module.Settings{}, "log_format must be"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := module.ParseSettings([]byte(c.raw))
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("err = %v, want one saying %q", err, c.errHas)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

// A config the module cannot serve is refused at load, naming the key.
func TestNewRefusesWhatOnlyTheSidecarCanServe(t *testing.T) {
	cases := []struct {
		name, extra, errHas string
	}{
		{"a memory store (sign-outs in the sidecar would never reach Envoy)", "", "databroker_storage_type must be redis"},
		{"a config with problems", "policy: 7\n", "policy"},
	}
	for _, c := range cases {
		t.Run(c.name+" is refused", func(t *testing.T) {
			config, _ := testkit.DemoConfig(t, 8080, 9191, 9292, c.extra)
			_, err := module.New(module.Settings{Config: testkit.WriteFile(t, "config.yaml", config)}, module.Options{Log: zap.NewNop()})
			if err == nil || !strings.Contains(err.Error(), c.errHas) {
				t.Fatalf("err = %v, want one saying %q", err, c.errHas)
			}
		})
	}
	t.Run("a missing file is refused", func(t *testing.T) {
		_, err := module.New(module.Settings{Config: "/nonexistent/extauthz.yaml"}, module.Options{Log: zap.NewNop()})
		if err == nil {
			t.Fatal("New accepted a missing config file")
		}
	})
	t.Run("ErrNotServable marks the refusals of a valid config", func(t *testing.T) {
		config, _ := testkit.DemoConfig(t, 8080, 9191, 9292, "")
		_, err := module.New(module.Settings{Config: testkit.WriteFile(t, "config.yaml", config)}, module.Options{Log: zap.NewNop()})
		if !errors.Is(err, module.ErrNotServable) {
			t.Fatalf("err = %v, want ErrNotServable", err)
		}
	})
}

// recorder is a module.Stream that records what the filter did.
type recorder struct {
	set     map[string]string
	removed []string
	status  int
	headers map[string]string
	body    string
	details string
}

func newRecorder() *recorder {
	return &recorder{set: map[string]string{}, headers: map[string]string{}}
}

func (r *recorder) SetHeader(name, value string) { r.set[name] = value }
func (r *recorder) RemoveHeader(name string)     { r.removed = append(r.removed, name) }
func (r *recorder) SendResponse(status int, headers []check.Header, body, details string) {
	r.status, r.body, r.details = status, body, details
	for _, h := range headers {
		r.headers[h.Name] = h.Value
	}
}

// request is header lines as Envoy hands them to the module.
func request(lines ...string) *check.Request {
	r := &check.Request{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, ": ")
		r.AddHeader(k, v)
	}
	return r
}

// newFilter loads the demo config on the redis-server at redisURL into a
// module filter, closed when the test ends; secret signs its tokens.
func newFilter(t *testing.T, redisURL string) (f *module.Filter, secret string) {
	t.Helper()
	config, secret := testkit.DemoConfig(t, 8080, 9191, 9292,
		"databroker_storage_type: redis\ndatabroker_storage_connection_string: "+redisURL+"\n")
	f, err := module.New(module.Settings{Config: testkit.WriteFile(t, "config.yaml", config)}, module.Options{Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f, secret
}

// bobToken is bob's token, valid for an hour on the hosts in audience.
func bobToken(t *testing.T, secret string, groups []string, audience ...string) string {
	t.Helper()
	now := time.Now()
	return testkit.Mint(t, secret, identity.Claims{Email: "bob@corp.example", Groups: groups,
		RegisteredClaims: jwt.RegisteredClaims{Issuer: "authenticate.localhost", Subject: "u-bob",
			Audience:  audience,
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute))}})
}

func TestServe(t *testing.T) {
	redis := redistest.Start(t)
	f, secret := newFilter(t, redis.URL())
	if !f.Ready() {
		t.Fatal("the store was not read within StoreWait")
	}
	bob := bobToken(t, secret, []string{"engineering"}, "app.localhost", "admin.localhost")
	base := []string{":scheme: http", ":method: GET", ":path: /x?y=1", "x-request-id: rid-1"}

	t.Run("an allowed request goes on with our headers set and the client's removed", func(t *testing.T) {
		rec := newRecorder()
		r := request(append(base, ":authority: app.localhost:8080", "authorization: Pomerium "+bob,
			"x-pomerium-claim-email: ceo@corp.example", "X-Pomerium-Claim-Role: root")...)
		r.RouteName = "app"
		allowed, replay := f.Serve(r, rec)
		if !allowed {
			t.Fatalf("denied: %d %s", rec.status, rec.body)
		}
		// Bob's token asks for no impersonation, and an allow logs nothing:
		// the answer cache may replay it, for MaxReplay at most.
		if !replay.OK || !replay.NotAfter.After(time.Now()) || replay.NotAfter.After(time.Now().Add(check.MaxReplay)) {
			t.Errorf("replay = %+v, want replayable for at most %v", replay, check.MaxReplay)
		}
		if rec.set["x-pomerium-claim-email"] != "bob@corp.example" || rec.set["x-pomerium-jwt-assertion"] == "" {
			t.Errorf("set = %v", rec.set)
		}
		for _, want := range []string{"authorization", "x-pomerium-claim-role"} {
			if !strings.Contains(strings.Join(rec.removed, " "), want) {
				t.Errorf("removed %v, want %s among them", rec.removed, want)
			}
		}
		if rec.status != 0 {
			t.Errorf("an allowed request was also answered %d", rec.status)
		}
	})

	denials := []struct {
		name, route string
		lines       []string
		status      int
		header      [2]string
		bodyHas     string
	}{
		{"a browser without a token is sent to sign in on its own scheme and host", "app",
			[]string{":authority: app.localhost:8080", "accept: text/html"}, 302,
			[2]string{"location", "/.pomerium/sign_in?pomerium_redirect_uri=http%3A%2F%2Fapp.localhost%3A8080%2Fx%3Fy%3D1"}, ""},
		{"curl without a token gets 401 naming the request id", "app",
			[]string{":authority: app.localhost:8080"}, 401, [2]string{"www-authenticate", "Pomerium"}, "rid-1"},
		{"a route the policy does not allow bob is 403", "admin",
			[]string{":authority: admin.localhost:8080", "authorization: Pomerium " + bob}, 403,
			[2]string{"cache-control", "no-store"}, `route "admin"`},
		{"a route name the policy lacks is 404", "nosuch",
			[]string{":authority: app.localhost:8080", "authorization: Pomerium " + bob}, 404,
			[2]string{"x-request-id", "rid-1"}, "nosuch"},
		{"a request without a host is 400", "", []string{}, 400, [2]string{"x-request-id", "rid-1"}, ""},
	}
	for _, d := range denials {
		t.Run(d.name, func(t *testing.T) {
			rec := newRecorder()
			r := request(append(append([]string{}, base...), d.lines...)...)
			r.RouteName = d.route
			if allowed, replay := f.Serve(r, rec); allowed || replay.OK {
				t.Fatalf("allowed %v, replayable %v", allowed, replay.OK)
			}
			if rec.status != d.status || rec.headers[d.header[0]] != d.header[1] || !strings.Contains(rec.body, d.bodyHas) {
				t.Errorf("answered %d %v %q, want %d with %s: %s and a body saying %q", rec.status, rec.headers, rec.body,
					d.status, d.header[0], d.header[1], d.bodyHas)
			}
			if rec.details != module.DetailsDenied || len(rec.set) != 0 || len(rec.removed) != 0 {
				t.Errorf("details %q, set %v, removed %v", rec.details, rec.set, rec.removed)
			}
		})
	}

	t.Run("a claim with a line break is never written as a header: the answer is a 500", func(t *testing.T) {
		evil := bobToken(t, secret, []string{"engineering\r\nx-evil: 1"}, "wiki.localhost")
		rec := newRecorder()
		r := request(append(base, ":authority: wiki.localhost:8080", "authorization: Pomerium "+evil)...)
		r.RouteName = "wiki"
		if allowed, replay := f.Serve(r, rec); allowed || replay.OK {
			t.Fatalf("allowed %v (set %v), replayable %v", allowed, rec.set, replay.OK)
		}
		if rec.status != 500 || rec.details != module.DetailsInvalidMutation || len(rec.set) != 0 {
			t.Errorf("answered %d %q, set %v; want a 500 and nothing set", rec.status, rec.details, rec.set)
		}
	})

	t.Run("Unavailable answers 503 and lets nothing through", func(t *testing.T) {
		rec := newRecorder()
		module.Unavailable(rec)
		if rec.status != 503 || rec.details != module.DetailsUnavailable || rec.headers["cache-control"] != "no-store" {
			t.Errorf("answered %d %v %q", rec.status, rec.headers, rec.details)
		}
	})
}

// A module whose store cannot be read at load decides nothing, as the sidecar
// in the same state (check.Server.NotReady): each request is answered 503 in
// the client's format, saying why, and it decides once the store is read.
func TestServeBeforeTheStoreIsRead(t *testing.T) {
	redis := redistest.Start(t)
	redis.Kill() // unreachable while New waits StoreWait
	f, secret := newFilter(t, redis.URL())
	bob := bobToken(t, secret, []string{"engineering"}, "app.localhost")
	serve := func(rec *recorder) (allowed, replayable bool) {
		r := request(":scheme: http", ":method: GET", ":path: /", "x-request-id: rid-9", "accept: application/json",
			":authority: app.localhost:8080", "authorization: Pomerium "+bob)
		r.RouteName = "app"
		allowed, replay := f.Serve(r, rec)
		return allowed, replay.OK
	}

	t.Run("while the store is unreachable a valid token is answered 503, saying why", func(t *testing.T) {
		if f.Ready() {
			t.Fatal("Ready before the store was read")
		}
		rec := newRecorder()
		if allowed, replayable := serve(rec); allowed || replayable {
			t.Fatalf("allowed %v (set %v), replayable %v: the not-ready 503 is no verdict", allowed, rec.set, replayable)
		}
		if rec.status != 503 || rec.details != module.DetailsUnavailable || len(rec.set) != 0 {
			t.Errorf("answered %d %q, set %v; want 503 %s and nothing set", rec.status, rec.details, rec.set, module.DetailsUnavailable)
		}
		if rec.headers["retry-after"] != "1" || rec.headers["content-type"] != "application/json" ||
			!strings.Contains(rec.body, check.ReasonStarting) || !strings.Contains(rec.body, "rid-9") {
			t.Errorf("headers %v, body %q; want retry-after, the client's format, why and the request id", rec.headers, rec.body)
		}
	})

	redis.Restart()
	t.Run("once the store has been read it decides", func(t *testing.T) {
		deadline := time.Now().Add(15 * time.Second)
		for !f.Ready() {
			if time.Now().After(deadline) {
				t.Fatal("never ready after redis-server came back")
			}
			time.Sleep(20 * time.Millisecond)
		}
		rec := newRecorder()
		if allowed, _ := serve(rec); !allowed {
			t.Errorf("denied: %d %s", rec.status, rec.body)
		}
	})
}

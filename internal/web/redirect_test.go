package web

import (
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/policy"
)

// TestRedirectTarget is the open-redirect guard of the identity-provider
// sign-in: only this host, the authenticate host and policy route hosts
// (wildcards included) are targets, and nothing a browser might read
// differently from us gets through.
func TestRedirectTarget(t *testing.T) {
	pol, err := policy.Compile([]policy.RouteSpec{
		{Name: "app", From: "http://app.localhost", AllowAnyAuthenticatedUser: true},
		{Name: "api", From: "https://api.localhost:8443", Prefix: "/v1", AllowAnyAuthenticatedUser: true},
		{Name: "tenants", From: "https://*.tenants.localhost", AllowAnyAuthenticatedUser: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	o := &oidcState{authURL: &url.URL{Scheme: "http", Host: "authenticate.localhost:8080"}}
	o.routeHosts, o.routeSuffixes = routeHostsOf(&Settings{Engine: &decision.Engine{Policy: pol}})

	for _, tc := range []struct {
		raw, host string // host: the request's; "" is app.localhost:8080
		https     bool
		want      string // "" refused
	}{
		// Allowed.
		{raw: "/", want: "http://app.localhost:8080/"},
		{raw: "/some/page?x=1#frag", want: "http://app.localhost:8080/some/page?x=1#frag"},
		{raw: "/%0d%0aSet-Cookie:x", want: "http://app.localhost:8080/%0d%0aSet-Cookie:x"},
		{raw: "http://app.localhost:8080/x", want: "http://app.localhost:8080/x"},
		{raw: "http://APP.localhost/x", want: "http://APP.localhost/x"},
		{raw: "https://api.localhost:8443/v1/things", want: "https://api.localhost:8443/v1/things"},
		{raw: "https://api.localhost/other", want: "https://api.localhost/other"}, // host matched, path not: still a route host
		{raw: "http://authenticate.localhost:8080/.pomerium/", want: "http://authenticate.localhost:8080/.pomerium/"},
		{raw: "https://a.tenants.localhost/", want: "https://a.tenants.localhost/"},
		{raw: "https://b.a.tenants.localhost/", want: "https://b.a.tenants.localhost/"},
		{raw: "http://unlisted.localhost/x", host: "unlisted.localhost", want: "http://unlisted.localhost/x"}, // its own host
		{raw: "https://app.localhost/", https: true, want: "https://app.localhost/"},
		// Refused: other hosts.
		{raw: "https://evil.com/"},
		{raw: "//evil.com/"},
		{raw: "///evil.com/"},
		{raw: "http://app.localhost.evil.com/"},
		{raw: "http://evil.com/app.localhost"},
		{raw: "http://evil.com?app.localhost"},
		{raw: "http://evil.com#@app.localhost"},
		{raw: "https://tenants.localhost/"}, // the wildcard's parent is not matched
		{raw: "https://.tenants.localhost/"},
		{raw: "https://xtenants.localhost/"},
		{raw: "http://app.localhost./"},
		// Refused: userinfo tricks.
		{raw: "https://app.localhost@evil.com/"},
		{raw: "https://app.localhost:8080@evil.com/"},
		{raw: "https://user:pass@app.localhost/"},
		{raw: "https://app.localhost%40evil.com/"},
		// Refused: backslashes, whitespace, control characters.
		{raw: "/\\evil.com"},
		{raw: "\\\\evil.com"},
		{raw: "http://evil.com\\@app.localhost/"},
		{raw: "https:\\\\evil.com"},
		{raw: " //evil.com"},
		{raw: "/\t/evil.com"},
		{raw: "/\n/evil.com"},
		{raw: "\x00/x"},
		{raw: "/x\u202e"},
		// Refused: other schemes and opaque forms.
		{raw: "javascript:alert(1)"},
		{raw: "JavaScript:alert(1)"},
		{raw: "data:text/html,<script>alert(1)</script>"},
		{raw: "ftp://app.localhost/"},
		{raw: "https:evil.com"},
		{raw: "http:app.localhost"},
		{raw: "http:/app.localhost/x"},
		{raw: "app.localhost/x"},
		{raw: "evil.com"},
		// Refused: encodings of the host.
		{raw: "http://app%2elocalhost/"},
		{raw: "http://%61pp.localhost/"},
		// Refused: a downgrade from https.
		{raw: "http://app.localhost/", https: true},
		// Refused: empty and too long.
		{raw: ""},
		{raw: "/" + string(make([]byte, 5000))},
	} {
		r := httptest.NewRequest("GET", "http://app.localhost:8080/.pomerium/sign_in", nil)
		r.Host = "app.localhost:8080"
		if tc.host != "" {
			r.Host = tc.host
		}
		if tc.https {
			r.Header.Set("X-Forwarded-Proto", "https")
		}
		u, ok := o.redirectTarget(tc.raw, r)
		got := ""
		if ok {
			got = u.String()
		}
		if got != tc.want {
			t.Errorf("redirectTarget(%q) on %s = %q, want %q", tc.raw, r.Host, got, tc.want)
		}
	}
}

package signin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/policy"
)

// guardForTest allows the origins of these routes and the authenticate
// host http://authenticate.localhost:8080.
func guardForTest(t *testing.T) *Guard {
	t.Helper()
	pol, err := policy.Compile([]policy.RouteSpec{
		{Name: "app", From: "http://app.localhost:8080", AllowAnyAuthenticatedUser: true},
		{Name: "api", From: "https://api.localhost:8443", Prefix: "/v1", AllowAnyAuthenticatedUser: true},
		{Name: "tenants", From: "https://*.tenants.localhost", AllowAnyAuthenticatedUser: true},
		{Name: "plain", From: "http://plain.localhost", AllowAnyAuthenticatedUser: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	return NewGuard("http://authenticate.localhost:8080", &decision.Engine{Policy: pol})
}

func guardRequest(host string, https bool) *http.Request {
	r := httptest.NewRequest("GET", "http://app.localhost:8080/.pomerium/sign_in", nil)
	r.Host = "app.localhost:8080"
	if host != "" {
		r.Host = host
	}
	if https {
		r.Header.Set("X-Forwarded-Proto", "https")
	}
	return r
}

// TestRedirectGuard is the one open-redirect guard of the pages: a target
// goes only to the exact origin (scheme, host, port) of a policy route or of
// the authenticate host, and nothing a browser might read differently from
// us gets through.
func TestRedirectGuard(t *testing.T) {
	g := guardForTest(t)
	for _, tc := range []struct {
		name      string
		raw, host string // host: the request's; "" is app.localhost:8080
		https     bool
		want      string // "" refused
	}{
		// Allowed.
		{name: "a path resolves against the request's own origin", raw: "/", want: "http://app.localhost:8080/"},
		{name: "a path keeps its query and fragment", raw: "/some/page?x=1#frag", want: "http://app.localhost:8080/some/page?x=1#frag"},
		{name: "an escaped line break in a path stays escaped", raw: "/%0d%0aSet-Cookie:x", want: "http://app.localhost:8080/%0d%0aSet-Cookie:x"},
		{name: "a route's origin with its public port is allowed", raw: "http://app.localhost:8080/x", want: "http://app.localhost:8080/x"},
		{name: "the host is compared without case", raw: "http://APP.localhost:8080/x", want: "http://APP.localhost:8080/x"},
		{name: "an https route on its port is allowed", raw: "https://api.localhost:8443/v1/things", want: "https://api.localhost:8443/v1/things"},
		{name: "a route's origin is allowed whatever the path", raw: "https://api.localhost:8443/other", want: "https://api.localhost:8443/other"},
		{name: "the authenticate origin is allowed", raw: "http://authenticate.localhost:8080/.pomerium/", want: "http://authenticate.localhost:8080/.pomerium/"},
		{name: "a host under a wildcard route is allowed on its scheme's default port", raw: "https://a.tenants.localhost/", want: "https://a.tenants.localhost/"},
		{name: "a wildcard matches several labels", raw: "https://b.a.tenants.localhost/", want: "https://b.a.tenants.localhost/"},
		{name: "a wildcard's default port may be written", raw: "https://a.tenants.localhost:443/", want: "https://a.tenants.localhost:443/"},
		{name: "a from without a port is on its scheme's default port", raw: "http://plain.localhost/x", want: "http://plain.localhost/x"},
		{name: "the default port may be written", raw: "http://plain.localhost:80/x", want: "http://plain.localhost:80/x"},
		{name: "a path on another allowed origin resolves there", raw: "/x", host: "plain.localhost", want: "http://plain.localhost/x"},
		{name: "a path resolves with the scheme the browser used", raw: "/x", host: "api.localhost:8443", https: true, want: "https://api.localhost:8443/x"},
		// Refused: another port or scheme of an allowed host.
		{name: "a route host on its scheme's default port instead of its public port is refused", raw: "http://app.localhost/"},
		{name: "a route host on another port is refused", raw: "http://app.localhost:9000/"},
		{name: "a route host on a port written with a leading zero is refused", raw: "http://app.localhost:08080/"},
		{name: "a route host on port 0 is refused", raw: "http://app.localhost:0/"},
		{name: "a route host on a port beyond 65535 is refused", raw: "http://app.localhost:65616/"},
		{name: "a route host with an empty port is refused", raw: "http://app.localhost:/"},
		{name: "a route host with a signed port is refused", raw: "http://app.localhost:+8080/"},
		{name: "a route host with another scheme is refused", raw: "https://app.localhost:8080/"},
		{name: "an https route over http is refused", raw: "http://api.localhost:8443/v1"},
		{name: "an https route on the default port instead of its own is refused", raw: "https://api.localhost/v1"},
		{name: "a wildcard host on another port is refused", raw: "https://a.tenants.localhost:8443/"},
		{name: "a wildcard host with another scheme is refused", raw: "http://a.tenants.localhost/"},
		{name: "the authenticate host on another port is refused", raw: "http://authenticate.localhost:9000/.pomerium/"},
		{name: "the authenticate host on its default port is refused", raw: "http://authenticate.localhost/.pomerium/"},
		{name: "a default-port route on another port is refused", raw: "http://plain.localhost:8080/"},
		{name: "a path on an unlisted host is refused", raw: "/x", host: "unlisted.localhost"},
		{name: "an unlisted host is refused even from itself", raw: "http://unlisted.localhost/x", host: "unlisted.localhost"},
		{name: "a path on a route host reached on another port is refused", raw: "/x", host: "app.localhost:9000"},
		{name: "a path on a route host reached on the default port is refused", raw: "/x", host: "app.localhost"},
		{name: "a path on a route reached over the wrong scheme is refused", raw: "/x", host: "api.localhost:8443"},
		{name: "a path on a request whose host is not a host is refused", raw: "/x", host: "app.localhost:8080@evil.com"},
		// Refused: other hosts.
		{name: "another host is refused", raw: "https://evil.com/"},
		{name: "a protocol-relative URL is refused", raw: "//evil.com/"},
		{name: "a protocol-relative URL with three slashes is refused", raw: "///evil.com/"},
		{name: "a look-alike host ending in another domain is refused", raw: "http://app.localhost.evil.com:8080/"},
		{name: "a route host in another host's path is refused", raw: "http://evil.com/app.localhost:8080"},
		{name: "a route host in another host's query is refused", raw: "http://evil.com?app.localhost:8080"},
		{name: "a route host in another host's fragment is refused", raw: "http://evil.com#@app.localhost:8080"},
		{name: "the parent of a wildcard is refused", raw: "https://tenants.localhost/"},
		{name: "an empty label under a wildcard is refused", raw: "https://.tenants.localhost/"},
		{name: "a host merely ending like a wildcard is refused", raw: "https://xtenants.localhost/"},
		{name: "a trailing dot is refused", raw: "http://app.localhost.:8080/"},
		// Refused: userinfo tricks.
		{name: "a route host as userinfo is refused", raw: "https://app.localhost@evil.com/"},
		{name: "a route origin as userinfo is refused", raw: "http://app.localhost:8080@evil.com/"},
		{name: "credentials on a route are refused", raw: "http://user:pass@app.localhost:8080/"},
		{name: "an escaped @ in the host is refused", raw: "http://app.localhost%40evil.com/"},
		// Refused: backslashes, whitespace, control characters.
		{name: "a backslash path is refused", raw: "/\\evil.com"},
		{name: "a double backslash is refused", raw: "\\\\evil.com"},
		{name: "a backslash before userinfo is refused", raw: "http://evil.com\\@app.localhost:8080/"},
		{name: "backslashes after the scheme are refused", raw: "https:\\\\evil.com"},
		{name: "a leading space is refused", raw: " //evil.com"},
		{name: "a tab-smuggled protocol-relative URL is refused", raw: "/\t/evil.com"},
		{name: "a newline-smuggled protocol-relative URL is refused", raw: "/\n/evil.com"},
		{name: "a NUL is refused", raw: "\x00/x"},
		{name: "a bidirectional override is refused", raw: "/x\u202e"},
		{name: "bytes that are not UTF-8 are refused", raw: "/\xff"},
		// Refused: other schemes and opaque forms.
		{name: "a javascript URL is refused", raw: "javascript:alert(1)"},
		{name: "a javascript URL in capitals is refused", raw: "JavaScript:alert(1)"},
		{name: "a data URL is refused", raw: "data:text/html,<script>alert(1)</script>"},
		{name: "an ftp URL is refused", raw: "ftp://app.localhost:8080/"},
		{name: "a scheme without slashes is refused", raw: "https:evil.com"},
		{name: "a route host without slashes is refused", raw: "http:app.localhost:8080"},
		{name: "a scheme with one slash is refused", raw: "http:/app.localhost:8080/x"},
		{name: "a host without a scheme is refused", raw: "app.localhost:8080/x"},
		{name: "a bare name is refused", raw: "evil.com"},
		// Refused: encodings of the host.
		{name: "an escaped dot in the host is refused", raw: "http://app%2elocalhost:8080/"},
		{name: "an escaped letter in the host is refused", raw: "http://%61pp.localhost:8080/"},
		// Refused: a downgrade from https.
		{name: "a page served over https does not send the browser to http", raw: "http://app.localhost:8080/", https: true},
		// Refused: empty and too long.
		{name: "empty is refused", raw: ""},
		{name: "an overlong URL is refused", raw: "/" + strings.Repeat("a", 5000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := guardRequest(tc.host, tc.https)
			u, ok := g.Target(tc.raw, r)
			got := ""
			if ok {
				got = u.String()
			}
			if got != tc.want {
				t.Errorf("target(%q) on %s = %q, want %q", tc.raw, r.Host, got, tc.want)
			}
		})
	}
}

// The token sign-in page uses the same guard, and keeps a path a path.
func TestSafeRedirect(t *testing.T) {
	g := guardForTest(t)
	for _, tc := range []struct {
		name, raw, host string
		want            string
		ok              bool
	}{
		{name: "a path stays a path", raw: "/a/b?c=d#e", want: "/a/b?c=d#e", ok: true},
		{name: "an absolute URL on an allowed origin stays as written", raw: "http://APP.localhost:8080/x", want: "http://APP.localhost:8080/x", ok: true},
		{name: "another allowed origin is allowed", raw: "https://api.localhost:8443/v1", want: "https://api.localhost:8443/v1", ok: true},
		{name: "an encoded backslash in a path stays a path", raw: "/%5Cevil.com", want: "/%5Cevil.com", ok: true},
		{name: "another port of this host is refused", raw: "http://app.localhost:8443/"},
		{name: "a path on an origin that is no route's is refused", raw: "/x", host: "app.localhost:9000"},
		{name: "a protocol-relative URL is refused", raw: "//evil.com"},
		{name: "another host is refused", raw: "https://evil.com/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := g.Safe(tc.raw, guardRequest(tc.host, false))
			if ok != tc.ok || got != tc.want {
				t.Errorf("Safe(%q) = %q, %v; want %q, %v", tc.raw, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestOriginString(t *testing.T) {
	for _, tc := range []struct {
		name, scheme, authority, want string
	}{
		{name: "the default port is left out", scheme: "http", authority: "App.Localhost:80", want: "http://app.localhost"},
		{name: "another port is kept", scheme: "http", authority: "app.localhost:8080", want: "http://app.localhost:8080"},
		{name: "https defaults to 443", scheme: "https", authority: "app.localhost", want: "https://app.localhost"},
		{name: "an IPv6 host keeps its brackets", scheme: "http", authority: "[::1]:8080", want: "http://[::1]:8080"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, ok := originOf(tc.scheme, tc.authority)
			if !ok || o.String() != tc.want {
				t.Errorf("originOf(%q, %q) = %q, %v; want %q", tc.scheme, tc.authority, o, ok, tc.want)
			}
		})
	}
}

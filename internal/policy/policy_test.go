package policy_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/policy"
)

// routeErrors flattens the errors.Join of Compile into its *RouteErrors.
func routeErrors(t *testing.T, err error) []*policy.RouteError {
	t.Helper()
	var out []*policy.RouteError
	var walk func(error)
	walk = func(e error) {
		if re, ok := e.(*policy.RouteError); ok {
			out = append(out, re)
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, inner := range j.Unwrap() {
				walk(inner)
			}
			return
		}
		t.Fatalf("Compile returned %T %v, want *RouteError", e, e)
	}
	walk(err)
	return out
}

func compile(t *testing.T, specs ...policy.RouteSpec) *policy.Policy {
	t.Helper()
	p, err := policy.Compile(specs)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return p
}

func TestCompileErrors(t *testing.T) {
	ok := policy.RouteSpec{Name: "ok", From: "https://ok.example.com", AllowAnyAuthenticatedUser: true}
	tests := []struct {
		name  string
		specs []policy.RouteSpec
		index int
		field string
		says  string
	}{
		{"a route without from is refused", []policy.RouteSpec{{}}, 0, "from", "required"},
		{"a from that is not a URL is refused", []policy.RouteSpec{{From: "://nope"}}, 0, "from", "not a URL"},
		{"a from with a non-http scheme is refused", []policy.RouteSpec{{From: "ftp://files.example.com"}}, 0, "from", "http or https"},
		{"a from without a scheme is refused", []policy.RouteSpec{{From: "app.example.com"}}, 0, "from", "http or https"},
		{"a from without a host is refused", []policy.RouteSpec{{From: "https://"}}, 0, "from", "no host"},
		{"a from with a path is refused", []policy.RouteSpec{{From: "https://app.example.com/admin"}}, 0, "from", "scheme and host only"},
		{"a from with a query is refused", []policy.RouteSpec{{From: "https://app.example.com?a=b"}}, 0, "from", "scheme and host only"},
		{"a from with a fragment is refused", []policy.RouteSpec{{From: "https://app.example.com#x"}}, 0, "from", "scheme and host only"},
		{"a wildcard in an inner label is refused", []policy.RouteSpec{{From: "https://app.*.example.com"}}, 0, "from", "wildcard"},
		{"a wildcard glued to a label is refused", []policy.RouteSpec{{From: "https://*app.example.com"}}, 0, "from", "wildcard"},
		{"a prefix without a leading slash is refused", []policy.RouteSpec{{From: "https://a.example.com", Prefix: "api"}}, 0, "prefix", "start with /"},
		{"a path without a leading slash is refused", []policy.RouteSpec{{From: "https://a.example.com", Path: "api"}}, 0, "path", "start with /"},
		{"a regex that does not compile is refused", []policy.RouteSpec{{From: "https://a.example.com", Regex: "/items/(["}}, 0, "regex", "does not compile"},
		{"a regex that escapes its anchoring group is refused", []policy.RouteSpec{{From: "https://a.example.com", Regex: "/public)|(.*"}}, 0, "regex", "does not compile"},
		{"prefix and path together are refused", []policy.RouteSpec{{From: "https://a.example.com", Prefix: "/a", Path: "/a"}}, 0, "path", "at most one"},
		{"prefix and regex together are refused", []policy.RouteSpec{{From: "https://a.example.com", Prefix: "/a", Regex: "/a"}}, 0, "path", "at most one"},
		{"path and regex together are refused", []policy.RouteSpec{{From: "https://a.example.com", Path: "/a", Regex: "/a"}}, 0, "path", "at most one"},
		{"a duplicate route name is refused at its second use", []policy.RouteSpec{ok, ok}, 1, "name", "used twice"},
		{"a public route listing users is refused", []policy.RouteSpec{{From: "https://a.example.com",
			AllowPublicUnauthenticatedAccess: true, AllowedUsers: []string{"a@corp.example"}}}, 0, "allow_public_unauthenticated_access", "public"},
		{"a public route listing groups is refused", []policy.RouteSpec{{From: "https://a.example.com",
			AllowPublicUnauthenticatedAccess: true, AllowedGroups: []string{"eng"}}}, 0, "allow_public_unauthenticated_access", "public"},
		{"a public route listing domains is refused", []policy.RouteSpec{{From: "https://a.example.com",
			AllowPublicUnauthenticatedAccess: true, AllowedDomains: []string{"corp.example"}}}, 0, "allow_public_unauthenticated_access", "public"},
		{"a public route also open to any authenticated user is refused", []policy.RouteSpec{{From: "https://a.example.com",
			AllowPublicUnauthenticatedAccess: true, AllowAnyAuthenticatedUser: true}}, 0, "allow_public_unauthenticated_access", "public"},
		{"an allowed user that is not an email is refused", []policy.RouteSpec{{From: "https://a.example.com", AllowedUsers: []string{"alice"}}}, 0, "allowed_users", "not an email"},
		{"an allowed domain with a path is refused", []policy.RouteSpec{{From: "https://a.example.com", AllowedDomains: []string{"corp.example/x"}}}, 0, "allowed_domains", "not a domain"},
		{"an allowed domain that is an email is refused", []policy.RouteSpec{{From: "https://a.example.com", AllowedDomains: []string{"a@corp.example"}}}, 0, "allowed_domains", "not a domain"},
		{"a set header name with a space is refused", []policy.RouteSpec{{From: "https://a.example.com",
			SetRequestHeaders: map[string]string{"X Bad": "v"}}}, 0, "set_request_headers", "letters, digits"},
		{"a set header name with an underscore is refused", []policy.RouteSpec{{From: "https://a.example.com",
			SetRequestHeaders: map[string]string{"x_pomerium_jwt_assertion": "v"}}}, 0, "set_request_headers", "letters, digits"},
		{"an empty set header name is refused", []policy.RouteSpec{{From: "https://a.example.com",
			SetRequestHeaders: map[string]string{"": "v"}}}, 0, "set_request_headers", "empty"},
		{"setting an x-pomerium header is refused", []policy.RouteSpec{{From: "https://a.example.com",
			SetRequestHeaders: map[string]string{"X-Pomerium-Jwt-Assertion": "forged"}}}, 0, "set_request_headers", "reserved"},
		{"setting the host header is refused", []policy.RouteSpec{{From: "https://a.example.com",
			SetRequestHeaders: map[string]string{"Host": "evil"}}}, 0, "set_request_headers", "reserved"},
		{"removing a pseudo-header is refused", []policy.RouteSpec{{From: "https://a.example.com",
			RemoveRequestHeaders: []string{":authority"}}}, 0, "remove_request_headers", "letters, digits"},
		{"removing an x-pomerium header is refused", []policy.RouteSpec{{From: "https://a.example.com",
			RemoveRequestHeaders: []string{"x-pomerium-claim-email"}}}, 0, "remove_request_headers", "reserved"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := policy.Compile(tc.specs)
			if err == nil {
				t.Fatalf("Compile accepted %+v", tc.specs)
			}
			if p != nil {
				t.Errorf("Compile returned a policy alongside errors")
			}
			for _, re := range routeErrors(t, err) {
				if re.Index == tc.index && re.Field == tc.field && strings.Contains(re.Error(), tc.says) {
					if !strings.HasPrefix(re.Error(), "policy[") {
						t.Errorf("error %q does not locate the route", re)
					}
					return
				}
			}
			t.Fatalf("no error at policy[%d].%s mentioning %q in:\n%v", tc.index, tc.field, tc.says, err)
		})
	}
	t.Run("every problem of every route is reported", func(t *testing.T) {
		_, err := policy.Compile([]policy.RouteSpec{
			{From: "ftp://a", Prefix: "x"},
			ok,
			{From: "https://b.example.com", Regex: "("},
		})
		var got []string
		for _, re := range routeErrors(t, err) {
			got = append(got, re.Error()[:strings.Index(re.Error(), ":")])
		}
		if want := []string{"policy[0].from", "policy[0].prefix", "policy[2].regex"}; !slices.Equal(got, want) {
			t.Fatalf("problems = %v, want %v", got, want)
		}
		var re *policy.RouteError
		if !errors.As(err, &re) || re.Unwrap() == nil {
			t.Fatalf("errors.As found %v", re)
		}
	})
	t.Run("an empty policy compiles", func(t *testing.T) {
		if p := compile(t); len(p.Routes) != 0 {
			t.Fatalf("routes = %v", p.Routes)
		}
	})
}

func TestCompileNormalizes(t *testing.T) {
	no := false
	p := compile(t,
		policy.RouteSpec{Name: "a", From: "HTTPS://App.Example.COM:8443/",
			SetRequestHeaders:    map[string]string{"X-Team": "core", "Accept-Language": "en"},
			RemoveRequestHeaders: []string{"X-Debug"}},
		policy.RouteSpec{Name: "b", From: "http://b.example.com", PassIdentityHeaders: &no},
	)
	a, b := p.Routes[0], p.Routes[1]
	t.Run("the host is lower-cased and loses its port", func(t *testing.T) {
		if a.Host != "app.example.com" || a.From != "HTTPS://App.Example.COM:8443/" {
			t.Fatalf("Host %q From %q", a.Host, a.From)
		}
	})
	t.Run("set headers are lower-cased and sorted by name", func(t *testing.T) {
		want := []policy.Header{{Name: "accept-language", Value: "en"}, {Name: "x-team", Value: "core"}}
		if !slices.Equal(a.SetRequestHeaders, want) {
			t.Fatalf("SetRequestHeaders = %v", a.SetRequestHeaders)
		}
	})
	t.Run("removed headers are lower-cased", func(t *testing.T) {
		if !slices.Equal(a.RemoveRequestHeaders, []string{"x-debug"}) {
			t.Fatalf("RemoveRequestHeaders = %v", a.RemoveRequestHeaders)
		}
	})
	t.Run("identity headers are passed unless turned off", func(t *testing.T) {
		if !a.PassIdentityHeaders || b.PassIdentityHeaders {
			t.Fatalf("PassIdentityHeaders = %v, %v", a.PassIdentityHeaders, b.PassIdentityHeaders)
		}
	})
}

func TestMatch(t *testing.T) {
	p := compile(t,
		policy.RouteSpec{Name: "exact", From: "https://app.example.com", Path: "/exact"},
		policy.RouteSpec{Name: "prefix", From: "https://app.example.com", Prefix: "/api/"},
		policy.RouteSpec{Name: "regex", From: "https://app.example.com", Regex: `/items/[0-9]+`},
		policy.RouteSpec{Name: "alt", From: "https://app.example.com", Regex: `/a|/b`},
		policy.RouteSpec{Name: "app", From: "https://App.Example.com"},
		policy.RouteSpec{Name: "wild", From: "https://*.example.com"},
		policy.RouteSpec{Name: "ported", From: "http://other.test:8080", Prefix: "/"},
		policy.RouteSpec{Name: "shadowed", From: "https://other.test"},
	)
	tests := []struct {
		name, host, path, want string // want "" means no route
	}{
		{"an exact path matches its route", "app.example.com", "/exact", "exact"},
		{"an exact path does not match with a trailing slash", "app.example.com", "/exact/", "app"},
		{"an exact path does not match a longer path", "app.example.com", "/exactly", "app"},
		{"the query is ignored when matching a path", "app.example.com", "/exact?next=/admin", "exact"},
		{"the fragment is ignored when matching a path", "app.example.com", "/exact#top", "exact"},
		{"a prefix matches paths below it", "app.example.com", "/api/v1/users", "prefix"},
		{"a prefix matches itself", "app.example.com", "/api/", "prefix"},
		{"a prefix does not match a shorter path", "app.example.com", "/api", "app"},
		{"a regex matches the whole path", "app.example.com", "/items/42", "regex"},
		{"a regex ignores the query", "app.example.com", "/items/42?x=1", "regex"},
		{"a regex is anchored at the end", "app.example.com", "/items/42/edit", "app"},
		{"a regex is anchored at the start", "app.example.com", "/x/items/42", "app"},
		{"a regex alternation is anchored as a whole", "app.example.com", "/b", "alt"},
		{"a regex alternation does not match a longer path", "app.example.com", "/a/deeper", "app"},
		{"the host is compared case-insensitively", "APP.Example.COM", "/exact", "exact"},
		{"the request port is ignored", "app.example.com:8443", "/exact", "exact"},
		{"the route port is ignored", "other.test", "/", "ported"},
		{"any request port matches a route with a port", "other.test:9999", "/x", "ported"},
		{"the first matching route wins", "other.test", "/", "ported"},
		{"a wildcard matches one label", "foo.example.com", "/", "wild"},
		{"a wildcard matches several labels", "a.b.example.com:443", "/", "wild"},
		{"a wildcard does not match the bare domain", "example.com", "/", ""},
		{"a wildcard does not match a look-alike domain", "evilexample.com", "/", ""},
		{"a host that merely contains the domain does not match", "app.example.com.evil.test", "/", ""},
		{"an unknown host matches nothing", "nowhere.test", "/", ""},
		{"an empty host matches nothing", "", "/", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := p.Match(tc.host, tc.path)
			got := ""
			if ok {
				got = r.Name
			}
			if got != tc.want || ok != (tc.want != "") {
				t.Fatalf("Match(%q, %q) = %q, %v; want %q", tc.host, tc.path, got, ok, tc.want)
			}
		})
	}
	t.Run("a wildcard listed first wins over an exact host", func(t *testing.T) {
		p := compile(t,
			policy.RouteSpec{Name: "wild", From: "https://*.example.com"},
			policy.RouteSpec{Name: "app", From: "https://app.example.com"})
		if r, _ := p.Match("app.example.com", "/"); r == nil || r.Name != "wild" {
			t.Fatalf("Match = %v", r)
		}
	})
}

func TestSelect(t *testing.T) {
	p := compile(t,
		policy.RouteSpec{Name: "api", From: "https://app.example.com", Prefix: "/api"},
		policy.RouteSpec{Name: "app", From: "https://app.example.com"},
		policy.RouteSpec{From: "https://unnamed.example.com"},
	)
	tests := []struct {
		name, route, host, path, want string
	}{
		{"a named route is chosen even where the host and path would pick another", "app", "app.example.com", "/api/x", "app"},
		{"a named route is chosen even for another host", "api", "elsewhere.test", "/", "api"},
		{"an unknown route name selects nothing, even where a route matches", "ghost", "app.example.com", "/", ""},
		{"without a name the first host and path match is chosen", "", "app.example.com", "/api/x", "api"},
		{"without a name an unmatched request selects nothing", "", "elsewhere.test", "/", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := p.Select(tc.route, tc.host, tc.path)
			got := ""
			if ok {
				got = r.Name
			}
			if got != tc.want || ok != (tc.want != "") {
				t.Fatalf("Select(%q, %q, %q) = %q, %v; want %q", tc.route, tc.host, tc.path, got, ok, tc.want)
			}
		})
	}
	t.Run("an unnamed route is still matched by host", func(t *testing.T) {
		if r, ok := p.Select("", "unnamed.example.com", "/"); !ok || r.From != "https://unnamed.example.com" {
			t.Fatalf("Select = %v, %v", r, ok)
		}
		if _, ok := p.Lookup(""); ok {
			t.Fatal("an empty name looked up a route")
		}
	})
}

// Browsers send a Unicode host in its ASCII (IDNA) form, so a from written in
// Unicode must match that form (contract section 8, "Host names").
func TestUnicodeHosts(t *testing.T) {
	p := compile(t,
		policy.RouteSpec{Name: "books", From: "https://bücher.example"},
		policy.RouteSpec{Name: "shop", From: "https://*.Ärger.example:8443"},
		policy.RouteSpec{Name: "ascii", From: "https://xn--fa-hia.de"},
	)
	compiled := []struct{ name, route, host string }{
		{"a Unicode from is compiled to its IDNA form", "books", "xn--bcher-kva.example"},
		{"a Unicode wildcard from keeps its wildcard and is compiled to IDNA", "shop", ".xn--rger-koa.example"},
		{"an ASCII from written in IDNA stays as written", "ascii", "xn--fa-hia.de"},
	}
	for _, tc := range compiled {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := p.Lookup(tc.route)
			if r.Host != tc.host {
				t.Fatalf("Host = %q, want %q", r.Host, tc.host)
			}
		})
	}
	matches := []struct{ name, host, want string }{
		{"the IDNA host a browser sends matches the Unicode from", "xn--bcher-kva.example", "books"},
		{"the IDNA host with a port matches the Unicode from", "XN--BCHER-KVA.example:443", "books"},
		{"the Unicode spelling of the host matches too", "Bücher.example", "books"},
		{"a subdomain of a Unicode wildcard matches in IDNA", "a.xn--rger-koa.example", "shop"},
		{"the Unicode spelling of an IDNA from matches it", "faß.de", "ascii"},
		{"the transitional spelling of ß is another host", "fass.de", ""},
		{"the host without the umlaut is another host", "bucher.example", ""},
		{"a Unicode host IDNA refuses matches nothing", "a\u200db.example", ""},
	}
	for _, tc := range matches {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := p.Match(tc.host, "/")
			got := ""
			if ok {
				got = r.Name
			}
			if got != tc.want {
				t.Fatalf("Match(%q) = %q, want %q", tc.host, got, tc.want)
			}
		})
	}
	refused := []struct{ name, from string }{
		{"a Unicode host with a zero-width joiner is refused", "https://a\u200db.example"},
		{"a Unicode host with a label starting with a hyphen is refused", "https://-bü.example"},
		{"a Unicode host with an underscore is refused", "https://bü_x.example"},
		{"a Unicode host mixing right-to-left and left-to-right is refused", "https://\u0663a.example"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policy.Compile([]policy.RouteSpec{{From: tc.from, AllowAnyAuthenticatedUser: true}})
			if err == nil {
				t.Fatalf("Compile accepted %q", tc.from)
			}
			res := routeErrors(t, err)
			if len(res) != 1 || res[0].Field != "from" || !strings.Contains(res[0].Error(), "not a valid internationalized domain name") {
				t.Fatalf("errors = %v", err)
			}
		})
	}
}

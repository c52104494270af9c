package web

import (
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/extauthz/extauthz/internal/identity"
)

// redirectTarget checks pomerium_redirect_uri for the identity-provider
// sign-in and returns it as an absolute URL. It is the guard that keeps
// sign-in (which may end on another host, with a handoff token) from being an
// open redirect. Allowed are:
//
//   - a path on this host: "/..." but never "//..." (another host) nor
//     anything with a backslash, which browsers read as "/";
//   - an absolute http or https URL without userinfo whose host (port
//     ignored, as in route matching) is this host, the authenticate host, or
//     the host of a policy route, a wildcard route allowing every host it
//     matches.
//
// A page served over https never sends the browser to an http URL, and
// anything not plainly text (control characters, spaces, percent-escapes in
// the host) is refused rather than interpreted.
func (o *oidcState) redirectTarget(raw string, r *http.Request) (*url.URL, bool) {
	if raw == "" || len(raw) > maxRedirectLen || !utf8.ValidString(raw) {
		return nil, false
	}
	for _, c := range raw {
		// Browsers ignore tabs and newlines inside URLs and read "\" as "/".
		if c < 0x20 || c == 0x7f || c == '\\' || unicode.IsSpace(c) || isBidiControl(c) {
			return nil, false
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, false
	}
	scheme := requestScheme(r)
	if strings.HasPrefix(raw, "/") {
		if strings.HasPrefix(raw, "//") || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
			return nil, false
		}
		u.Scheme, u.Host = scheme, r.Host
		if !o.allowedHost(u.Host, r) {
			return nil, false
		}
		return u, true
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Opaque != "" || u.User != nil || u.Host == "" {
		return nil, false
	}
	// The raw text must spell the host plainly: "http://app%2elocalhost"
	// or "http:/\app" are for browsers to interpret, not for us.
	if !strings.HasPrefix(strings.ToLower(raw), u.Scheme+"://") || strings.ContainsAny(u.Host, "%@") {
		return nil, false
	}
	if scheme == "https" && u.Scheme != "https" {
		return nil, false
	}
	if !o.allowedHost(u.Host, r) {
		return nil, false
	}
	return u, true
}

// allowedHost reports whether authority (port ignored) may be sent to:
// this request's host, the authenticate host, or a policy route's host.
func (o *oidcState) allowedHost(authority string, r *http.Request) bool {
	host := identity.HostWithoutPort(authority)
	if host == "" || strings.HasPrefix(host, ".") || strings.HasSuffix(host, ".") {
		return false
	}
	if host == identity.HostWithoutPort(r.Host) {
		return true
	}
	if o.authURL != nil && host == identity.HostWithoutPort(o.authURL.Host) {
		return true
	}
	if o.routeHosts[host] {
		return true
	}
	for _, suffix := range o.routeSuffixes {
		if len(host) > len(suffix) && strings.HasSuffix(host, suffix) {
			return true
		}
	}
	return false
}

// routeHostsOf lists the hosts of the policy routes: exact hosts, and the
// suffixes (".example.com") of wildcard routes ("*.example.com").
func routeHostsOf(set *Settings) (map[string]bool, []string) {
	exact := map[string]bool{}
	var suffixes []string
	if set.Engine == nil || set.Engine.Policy == nil {
		return exact, nil
	}
	for _, rt := range set.Engine.Policy.Routes {
		u, err := url.Parse(rt.From)
		if err != nil {
			continue
		}
		h := strings.ToLower(u.Hostname())
		switch {
		case strings.HasPrefix(h, "*."):
			suffixes = append(suffixes, h[1:])
		case h != "":
			exact[h] = true
		}
	}
	return exact, suffixes
}

package signin

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/extauthz/extauthz/internal/decision"
)

// origin is what a browser compares to decide whether two URLs are the same
// site: a scheme, a lower-case host and a port (the scheme's default filled
// in). Redirects and sign-in handoffs are checked against origins, never
// against host names alone: another port of a route host may be someone
// else's server (an upstream's own port, a shared machine), and a handoff
// sent there is an account handed over.
type origin struct{ scheme, host, port string }

// originOf is the origin of scheme and authority ("host" or "host:port");
// false when the authority is not plainly a host with an optional port.
func originOf(scheme, authority string) (origin, bool) {
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" || authority == "" || strings.ContainsAny(authority, "%@/\\?#") {
		return origin{}, false
	}
	u := url.URL{Host: authority}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" || strings.HasPrefix(host, ".") || strings.HasSuffix(host, ".") {
		return origin{}, false
	}
	// Hostname drops a ":" with nothing after it, and keeps a port it cannot
	// read out of the host: both are refused rather than guessed at.
	if strings.HasSuffix(authority, ":") || strings.Contains(host, ":") && !strings.HasPrefix(authority, "[") {
		return origin{}, false
	}
	if port == "" {
		port = defaultPort(scheme)
	} else {
		// Digits only (Port checked that), without a leading zero: spelled
		// plainly, so that equal origins are equal strings.
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return origin{}, false
		}
	}
	return origin{scheme: scheme, host: host, port: port}, true
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// requestOrigin is the origin the browser used for r: requestScheme and the
// Host Envoy forwarded (its :authority, port included).
func requestOrigin(r *http.Request) (origin, bool) {
	return originOf(RequestScheme(r), r.Host)
}

// String is scheme://host, with ":port" unless it is the scheme's default.
func (o origin) String() string {
	h := o.host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if o.port != defaultPort(o.scheme) {
		h += ":" + o.port
	}
	return o.scheme + "://" + h
}

// Guard is the one check of every place the pages send a browser to
// from a URL they were given: the page to return to after signing in (with a
// pasted token or at the identity provider) and the route host a sign-in
// handoff goes to. A target is allowed only when its origin is exactly one
// of:
//
//   - a policy route's from: its scheme, its host, and its port (the
//     scheme's default when the from has none: the public port, which is
//     why the configs write it, http://app.localhost:8080); a wildcard from
//     (*.example.com) matches the host by suffix, the scheme and port
//     exactly;
//   - authenticate_service_url's.
//
// A path ("/...") is on the request's own origin, which must itself be one
// of these. The request's own origin is not trusted for being the request's:
// Envoy may also route other ports or names here.
type Guard struct {
	exact    map[origin]bool
	wildcard []origin // host is the suffix, ".example.com"
}

// NewGuard collects the allowed origins: authenticateServiceURL's and those
// of the routes e decides (none without an engine). A route whose from does
// not parse allows nothing (config validation reports it).
func NewGuard(authenticateServiceURL string, e *decision.Engine) *Guard {
	g := &Guard{exact: map[origin]bool{}}
	if authenticateServiceURL != "" {
		if u, err := url.Parse(authenticateServiceURL); err == nil {
			if o, ok := originOf(u.Scheme, u.Host); ok {
				g.exact[o] = true
			}
		}
	}
	if e == nil || e.Policy == nil {
		return g
	}
	for _, rt := range e.Policy.Routes {
		u, err := url.Parse(rt.From)
		if err != nil || rt.Host == "" {
			continue
		}
		o := origin{scheme: strings.ToLower(u.Scheme), port: u.Port()}
		if o.scheme != "http" && o.scheme != "https" {
			continue
		}
		if o.port == "" {
			o.port = defaultPort(o.scheme)
		} else if n, err := strconv.Atoi(o.port); err != nil || n < 1 || n > 65535 {
			continue
		} else {
			o.port = strconv.Itoa(n)
		}
		// The route's host as the policy matches it (lower-case; a
		// wildcard's is the suffix): the same name Check compares.
		if o.host = rt.Host; strings.HasPrefix(o.host, ".") {
			g.wildcard = append(g.wildcard, o)
		} else {
			g.exact[o] = true
		}
	}
	return g
}

// allows reports whether o is a policy route's or the authenticate origin.
func (g *Guard) allows(o origin) bool {
	if g.exact[o] {
		return true
	}
	for _, w := range g.wildcard {
		if o.scheme == w.scheme && o.port == w.port && len(o.host) > len(w.host) && strings.HasSuffix(o.host, w.host) {
			return true
		}
	}
	return false
}

// Target checks a URL the browser is to be sent to and returns it absolute.
// Besides the origin, it refuses whatever a browser might read differently
// from us: userinfo, backslashes (read as "/"), control characters, spaces
// and bidirectional controls (browsers drop tabs and newlines inside URLs),
// "//host", percent-escapes in the host, and any scheme but http and https.
// A page served over https never sends the browser to http.
func (g *Guard) Target(raw string, r *http.Request) (*url.URL, bool) {
	if raw == "" || len(raw) > MaxRedirectLen || !utf8.ValidString(raw) {
		return nil, false
	}
	for _, c := range raw {
		if c < 0x20 || c == 0x7f || c == '\\' || unicode.IsSpace(c) || IsBidiControl(c) {
			return nil, false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Opaque != "" {
		return nil, false
	}
	scheme := RequestScheme(r)
	if strings.HasPrefix(raw, "/") {
		if strings.HasPrefix(raw, "//") || u.Scheme != "" || u.Host != "" {
			return nil, false
		}
		u.Scheme, u.Host = scheme, r.Host
	} else {
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return nil, false
		}
		// The raw text must spell the authority plainly: "http://app%2elocalhost"
		// or "http:/\app" are for browsers to interpret, not for us.
		if !strings.HasPrefix(strings.ToLower(raw), u.Scheme+"://") || strings.ContainsAny(u.Host, "%@") {
			return nil, false
		}
		if scheme == "https" && u.Scheme != "https" {
			return nil, false
		}
	}
	o, ok := originOf(u.Scheme, u.Host)
	if !ok || !g.allows(o) {
		return nil, false
	}
	return u, true
}

// Safe is where the token sign-in page sends the browser after a pasted
// token: the target as given when Target allows it (a path stays a path),
// else false.
func (g *Guard) Safe(raw string, r *http.Request) (string, bool) {
	u, ok := g.Target(raw, r)
	if !ok {
		return "", false
	}
	if strings.HasPrefix(raw, "/") {
		return raw, true
	}
	return u.String(), true
}

// MaxRedirectLen bounds a URL to send a browser to.
const MaxRedirectLen = 4096

// IsBidiControl reports a bidirectional control character: text that reads
// differently from what it is.
func IsBidiControl(r rune) bool {
	return r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069 || r == 0x200E || r == 0x200F || r == 0x061C
}

// RequestScheme is the scheme the browser used: Envoy sets x-forwarded-proto.
func RequestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	if strings.EqualFold(strings.TrimSpace(proto), "https") {
		return "https"
	}
	return "http"
}

// CookieName names one of the sidecar's own cookies (CSRF, sign-in
// flow, binding, authenticate session): the session cookie's name and a
// suffix, behind the __Host- prefix when cookies are secure. With that prefix
// browsers accept the cookie only with Secure, Path=/ and no Domain, so no
// other host of the domain can set or shadow it. Check removes every one of
// them before a request goes upstream (identity.IsSidecarCookie).
func CookieName(session string, secure bool, suffix string) string {
	if secure {
		return "__Host-" + session + suffix
	}
	return session + suffix
}

// Package policy holds the routes of a config, compiled for matching, and the
// allow rules that decide whether an identity may use a route. It is pure: no
// I/O and no clock.
package policy

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/net/idna"

	"github.com/extauthz/extauthz/internal/identity"
)

// RouteSpec is one route as written in the config (contract section 2).
type RouteSpec struct {
	Name                             string            `yaml:"name" json:"name,omitempty"`
	From                             string            `yaml:"from" json:"from"`
	Prefix                           string            `yaml:"prefix" json:"prefix,omitempty"`
	Path                             string            `yaml:"path" json:"path,omitempty"`
	Regex                            string            `yaml:"regex" json:"regex,omitempty"`
	AllowedUsers                     []string          `yaml:"allowed_users" json:"allowed_users,omitempty"`
	AllowedGroups                    []string          `yaml:"allowed_groups" json:"allowed_groups,omitempty"`
	AllowedDomains                   []string          `yaml:"allowed_domains" json:"allowed_domains,omitempty"`
	AllowPublicUnauthenticatedAccess bool              `yaml:"allow_public_unauthenticated_access" json:"allow_public_unauthenticated_access,omitempty"`
	AllowAnyAuthenticatedUser        bool              `yaml:"allow_any_authenticated_user" json:"allow_any_authenticated_user,omitempty"`
	PassIdentityHeaders              *bool             `yaml:"pass_identity_headers" json:"pass_identity_headers,omitempty"`
	SetRequestHeaders                map[string]string `yaml:"set_request_headers" json:"set_request_headers,omitempty"`
	RemoveRequestHeaders             []string          `yaml:"remove_request_headers" json:"remove_request_headers,omitempty"`
}

// Route is a compiled, immutable route.
type Route struct {
	Name string
	From string // as configured, for display
	// Host is lower-case ASCII without port (a Unicode host in its IDNA form,
	// as browsers send it); a leading "*." matches any one or more labels.
	Host     string
	wildcard bool

	Prefix string
	Path   string
	Regex  *regexp.Regexp

	// users, groups and domains map each allowed value to the reason that
	// names it, prepared once so Evaluate allocates nothing.
	users   map[string]string
	groups  map[string]string
	domains map[string]string
	// sorted copies for display
	userList, groupList, domainList []string
	denyReason                      string
	clientDenial                    string

	Public              bool
	AnyAuthenticated    bool
	PassIdentityHeaders bool
	// SetRequestHeaders are lower-case names with values, sorted by name.
	SetRequestHeaders []Header
	// RemoveRequestHeaders are lower-case names.
	RemoveRequestHeaders []string
}

// Header is a name/value pair set upstream.
type Header struct{ Name, Value string }

// Policy is the ordered list of compiled routes.
type Policy struct {
	Routes []*Route
	byName map[string]*Route
}

// RouteError locates a problem in the route at Index.
type RouteError struct {
	Index int
	Field string
	Err   error
}

func (e *RouteError) Error() string {
	return fmt.Sprintf("policy[%d].%s: %v", e.Index, e.Field, e.Err)
}

func (e *RouteError) Unwrap() error { return e.Err }

// Compile checks and compiles specs in order. Every problem is reported, each a
// *RouteError, joined with errors.Join.
func Compile(specs []RouteSpec) (*Policy, error) {
	p := &Policy{byName: make(map[string]*Route, len(specs))}
	var errs []error
	fail := func(i int, field string, err error) {
		errs = append(errs, &RouteError{Index: i, Field: field, Err: err})
	}
	for i, s := range specs {
		r, rerrs := compileRoute(i, s)
		for _, e := range rerrs {
			fail(i, e.field, e.err)
		}
		if r == nil {
			continue
		}
		if r.Name != "" {
			if _, dup := p.byName[r.Name]; dup {
				fail(i, "name", fmt.Errorf("route name %q is used twice", r.Name))
			}
			p.byName[r.Name] = r
		}
		p.Routes = append(p.Routes, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

type fieldErr struct {
	field string
	err   error
}

func compileRoute(i int, s RouteSpec) (*Route, []fieldErr) {
	var errs []fieldErr
	r := &Route{Name: s.Name, From: s.From, Prefix: s.Prefix, Path: s.Path,
		Public: s.AllowPublicUnauthenticatedAccess, AnyAuthenticated: s.AllowAnyAuthenticatedUser,
		PassIdentityHeaders: s.PassIdentityHeaders == nil || *s.PassIdentityHeaders}

	host, err := parseFrom(s.From)
	if err != nil {
		errs = append(errs, fieldErr{"from", err})
	}
	r.Host = host
	if strings.HasPrefix(host, "*.") {
		r.wildcard = true
		r.Host = host[1:] // ".example.com"
	}
	if s.Prefix != "" && !strings.HasPrefix(s.Prefix, "/") {
		errs = append(errs, fieldErr{"prefix", fmt.Errorf("%q must start with /", s.Prefix)})
	}
	if s.Path != "" && !strings.HasPrefix(s.Path, "/") {
		errs = append(errs, fieldErr{"path", fmt.Errorf("%q must start with /", s.Path)})
	}
	if n := btoi(s.Prefix != "") + btoi(s.Path != "") + btoi(s.Regex != ""); n > 1 {
		errs = append(errs, fieldErr{"path", errors.New("set at most one of prefix, path and regex")})
	}
	if s.Regex != "" {
		// Anchored like Envoy's safe_regex: the whole path must match. The
		// expression must compile on its own first, or a stray ")" (as in
		// "a)|(b") would close the anchoring group and leave an alternative
		// unanchored.
		_, err := regexp.Compile(s.Regex)
		if err == nil {
			r.Regex, err = regexp.Compile(`^(?:` + s.Regex + `)$`)
		}
		if err != nil {
			errs = append(errs, fieldErr{"regex", fmt.Errorf("does not compile: %w", err)})
		}
	}
	if r.Public && (r.AnyAuthenticated || len(s.AllowedUsers)+len(s.AllowedGroups)+len(s.AllowedDomains) > 0) {
		errs = append(errs, fieldErr{"allow_public_unauthenticated_access", errors.New("a public route cannot also list who is allowed")})
	}

	r.users, r.userList = set(s.AllowedUsers, identity.NormalizeEmail, "allowed_users matched ")
	for _, u := range r.userList {
		if !strings.Contains(u, "@") {
			errs = append(errs, fieldErr{"allowed_users", fmt.Errorf("%q is not an email", u)})
		}
	}
	r.groups, r.groupList = set(s.AllowedGroups, strings.TrimSpace, "allowed_groups matched ")
	r.domains, r.domainList = set(s.AllowedDomains, func(d string) string {
		return strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))
	}, "allowed_domains matched ")
	r.denyReason = describeDenial(r.userList, r.groupList, r.domainList)
	r.clientDenial = describeClientDenial(r.Name, r.From)
	for _, d := range r.domainList {
		if strings.ContainsAny(d, "@/ ") {
			errs = append(errs, fieldErr{"allowed_domains", fmt.Errorf("%q is not a domain", d)})
		}
	}
	names := make([]string, 0, len(s.SetRequestHeaders))
	for name := range s.SetRequestHeaders {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := checkHeaderName(name); err != nil {
			errs = append(errs, fieldErr{"set_request_headers", err})
			continue
		}
		r.SetRequestHeaders = append(r.SetRequestHeaders, Header{strings.ToLower(name), s.SetRequestHeaders[name]})
	}
	for _, name := range s.RemoveRequestHeaders {
		if err := checkHeaderName(name); err != nil {
			errs = append(errs, fieldErr{"remove_request_headers", err})
			continue
		}
		r.RemoveRequestHeaders = append(r.RemoveRequestHeaders, strings.ToLower(name))
	}
	return r, errs
}

func checkHeaderName(name string) error {
	if name == "" {
		return errors.New("empty header name")
	}
	for _, c := range name {
		if !(c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return fmt.Errorf("header name %q may only hold letters, digits and '-'", name)
		}
	}
	if l := strings.ToLower(name); strings.HasPrefix(l, "x-pomerium-") || l == "host" || strings.HasPrefix(l, ":") {
		return fmt.Errorf("header %q is reserved", name)
	}
	return nil
}

func parseFrom(from string) (string, error) {
	if from == "" {
		return "", errors.New("is required")
	}
	u, err := url.Parse(from)
	if err != nil {
		return "", fmt.Errorf("is not a URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q must be an http or https URL", from)
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", fmt.Errorf("%q has no host", from)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q must be scheme and host only; use prefix, path or regex for paths", from)
	}
	if strings.Contains(host[min(len(host), 1):], "*") || (strings.HasPrefix(host, "*") && !strings.HasPrefix(host, "*.")) {
		return "", fmt.Errorf("%q: a wildcard is only allowed as the leading label (*.example.com)", from)
	}
	ascii, err := ASCIIHost(host)
	if err != nil {
		return "", fmt.Errorf("%q: the host is not a valid internationalized domain name: %w", from, err)
	}
	return ascii, nil
}

// hostProfile converts a Unicode host the way browsers do before they send it
// (UTS #46 mapping, non-transitional, bidi and joiner rules, DNS lengths).
var hostProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.VerifyDNSLength(true), idna.Transitional(false))

// ASCIIHost returns host (without port) in the ASCII form a browser sends:
// a host already in ASCII is returned as it is, lower-cased; a Unicode one
// ("bücher.example", with a leading "*." kept) becomes its IDNA form
// ("xn--bcher-kva.example"). A Unicode host IDNA refuses is an error.
func ASCIIHost(host string) (string, error) {
	if isASCII(host) {
		return strings.ToLower(host), nil
	}
	prefix, rest := "", host
	if strings.HasPrefix(rest, "*.") {
		prefix, rest = "*.", rest[2:]
	}
	ascii, err := hostProfile.ToASCII(rest)
	if err != nil {
		return "", err
	}
	return prefix + ascii, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func set(in []string, norm func(string) string, reasonPrefix string) (map[string]string, []string) {
	m := make(map[string]string, len(in))
	list := make([]string, 0, len(in))
	for _, v := range in {
		v = norm(v)
		if v == "" {
			continue
		}
		if _, dup := m[v]; !dup {
			m[v] = reasonPrefix + v
			list = append(list, v)
		}
	}
	slices.Sort(list)
	return m, list
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Lookup returns the route with this name.
func (p *Policy) Lookup(name string) (*Route, bool) {
	r, ok := p.byName[name]
	return r, ok
}

// Match returns the first route whose host and path match. host may carry a
// port; path may carry a query, which is ignored. A Unicode host (from
// `extauthz explain --url`; browsers and Envoy send ASCII) is matched in its
// IDNA form, like the routes' hosts.
func (p *Policy) Match(host, path string) (*Route, bool) {
	host = identity.HostWithoutPort(host)
	if !isASCII(host) {
		ascii, err := ASCIIHost(host)
		if err != nil {
			return nil, false
		}
		host = ascii
	}
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	for _, r := range p.Routes {
		if r.matchesHost(host) && r.matchesPath(path) {
			return r, true
		}
	}
	return nil, false
}

// Select picks the route for a request: the one Envoy named in its
// context_extensions when given, else the first host and path match.
func (p *Policy) Select(name, host, path string) (*Route, bool) {
	if name != "" {
		return p.Lookup(name)
	}
	return p.Match(host, path)
}

// MatchesHost reports whether the lower-case, port-less host is this route's.
func (r *Route) matchesHost(host string) bool {
	if r.wildcard {
		return len(host) > len(r.Host) && strings.HasSuffix(host, r.Host)
	}
	return host == r.Host
}

func (r *Route) matchesPath(path string) bool {
	switch {
	case r.Path != "":
		return path == r.Path
	case r.Prefix != "":
		return strings.HasPrefix(path, r.Prefix)
	case r.Regex != nil:
		return r.Regex.MatchString(path)
	}
	return true
}

package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/policy"
	"go.yaml.in/yaml/v3"
)

func parse(data []byte, name string, lookupEnv func(string) (string, bool), o loadOptions) (*Config, error) {
	d := newDecoder(name)
	d.secretOptional = o.secretOptional
	if len(data) > MaxSize {
		d.add(pos{file: name}, "", fmt.Sprintf("is larger than %d MiB; refusing it", MaxSize>>20))
		return nil, d.problems
	}
	c := &Config{Derived: Derived{Source: name}}
	set := map[string]bool{}
	root := d.parseYAML(data, "")
	if root == nil && len(d.problems) > 0 {
		// The YAML did not parse: what follows from reading nothing (a
		// required key "missing") would only hide the one real problem.
		return nil, d.problems
	}
	if root != nil {
		t, aliased := d.enter(root)
		switch {
		case t == nil || isNull(t):
		case t.Kind != yaml.MappingNode:
			d.at(root, "", "the top level must be a mapping of keys (shared_secret: ..., policy: ...), found "+kindName(t))
		default:
			set = d.decodeStruct(reflect.ValueOf(c).Elem(), t, "", configFields)
		}
		d.leave(aliased)
	}
	if d.exhausted {
		sortProblems(d.problems, name)
		return nil, d.problems
	}
	d.applyEnv(c, set, lookupEnv)
	applyDefaults(c, set)
	if err := d.validate(c); err != nil {
		return nil, err
	}
	if len(d.problems) > 0 {
		sortProblems(d.problems, name)
		return nil, d.problems
	}
	return c, nil
}

func applyDefaults(c *Config, set map[string]bool) {
	t := true
	if !set["cookie_name"] {
		c.CookieName = DefaultCookieName
	}
	if c.CookieSecure == nil {
		c.CookieSecure = &t
	}
	if !set["cookie_expire"] {
		c.CookieExpire = Duration(DefaultCookieExpire)
	}
	if !set["grpc_address"] {
		c.GRPCAddress = DefaultGRPCAddress
	}
	if !set["http_address"] {
		c.HTTPAddress = DefaultHTTPAddress
	}
	if !set["impersonation_default_access"] {
		c.ImpersonationDefaultAccess = DefaultImpersonationDefaultAccess
	}
	if !set["impersonation_max_duration"] {
		c.ImpersonationMaxDuration = Duration(DefaultImpersonationMaxDuration)
	}
	if c.ImpersonationRequireReason == nil {
		r := true
		c.ImpersonationRequireReason = &r
	}
	if !set["drain_timeout"] {
		c.DrainTimeout = Duration(DefaultDrainTimeout)
	}
}

// validate checks every key, derives Issuer, the keys and the compiled policy.
// Problems go to d; a returned error is not about the config (no randomness).
func (d *decoder) validate(c *Config) error {
	// Secrets. Messages never quote them.
	if c.SharedSecret == "" {
		if !d.secretOptional {
			d.atPath("shared_secret", fmt.Sprintf("is required: base64 of at least %d random bytes (head -c32 /dev/urandom | base64)", MinSecretBytes))
		}
	} else if msg := checkSecret(c.SharedSecret); msg != "" {
		d.atPath("shared_secret", msg)
	}
	for i, s := range c.PreviousSharedSecrets {
		if msg := checkSecret(s); msg != "" {
			d.atPath(indexPath("previous_shared_secrets", i), msg)
		}
	}

	if c.SigningKey != "" {
		k, err := identity.ParseSigningKey(c.SigningKey)
		if err != nil {
			d.atPath("signing_key", keyMessage(err))
		}
		c.Key = k
	}
	seen := map[string]bool{}
	if c.Key != nil {
		seen[c.Key.ID] = true
	}
	for i, s := range c.PreviousSigningKeys {
		k, err := identity.ParseSigningKey(s)
		if err != nil {
			d.atPath(indexPath("previous_signing_keys", i), keyMessage(err))
			continue
		}
		if !seen[k.ID] {
			seen[k.ID] = true
			c.PreviousKeys = append(c.PreviousKeys, k)
		}
	}

	for i, a := range c.Administrators {
		if msg := checkEmail(a); msg != "" {
			d.atPath(indexPath("administrators", i), msg)
		}
		c.Administrators[i] = identity.NormalizeEmail(a)
	}

	if c.AuthenticateServiceURL != "" {
		if u, msg := checkURL(c.AuthenticateServiceURL); msg != "" {
			d.atPath("authenticate_service_url", msg)
		} else {
			c.Issuer = strings.ToLower(u.Hostname())
		}
	}
	if c.IdpProviderURL != "" {
		if _, msg := checkURL(c.IdpProviderURL); msg != "" {
			d.atPath("idp_provider_url", msg)
		}
		if c.IdpClientID == "" {
			d.add(d.lookup("idp_provider_url"), "idp_client_id", "is required when idp_provider_url is set")
		}
	} else {
		if c.IdpClientID != "" {
			d.atPath("idp_client_id", "is set but idp_provider_url is not")
		}
		if c.IdpClientSecret != "" {
			d.atPath("idp_client_secret", "is set but idp_provider_url is not")
		}
		if c.IdpAllowUnverifiedEmail {
			d.atPath("idp_allow_unverified_email", "is set but idp_provider_url is not")
		}
	}
	for i, s := range c.IdpScopes {
		if s == "" || strings.IndexFunc(s, notVisible) >= 0 {
			d.atPath(indexPath("idp_scopes", i), fmt.Sprintf("%q is not a scope: scopes are single words without spaces", clip(s)))
		}
	}

	if msg := checkCookieName(c.CookieName); msg != "" {
		d.atPath("cookie_name", msg)
	}
	if c.CookieExpire <= 0 {
		d.atPath("cookie_expire", "must be positive, found "+c.CookieExpire.String())
	}
	if c.CookieDomain != "" && strings.IndexFunc(c.CookieDomain, func(r rune) bool {
		return notVisible(r) || strings.ContainsRune("/:;,=\"", r)
	}) >= 0 {
		d.atPath("cookie_domain", fmt.Sprintf("%q is not a domain", clip(c.CookieDomain)))
	}

	grpcOK := d.checkAddress("grpc_address", c.GRPCAddress)
	httpOK := d.checkAddress("http_address", c.HTTPAddress)
	d.checkGRPCTLS(c)
	if grpcOK && httpOK && c.GRPCAddress == c.HTTPAddress && !strings.HasSuffix(c.GRPCAddress, ":0") {
		d.atPath("http_address", fmt.Sprintf("is the same as grpc_address (%s); the two listeners need different addresses", c.GRPCAddress))
	}

	c.ClaimHeaders = d.claimHeaders
	c.JWTClaimsHeaders = nil
	for _, h := range c.ClaimHeaders {
		c.JWTClaimsHeaders = append(c.JWTClaimsHeaders, h.Claim)
	}
	d.checkClaimHeaders(c.ClaimHeaders)

	for i, id := range c.RevokedTokenIDs {
		if id == "" {
			d.atPath(indexPath("revoked_token_ids", i), "is empty")
		}
	}
	if c.MaxServiceAccountLifetime < 0 {
		d.atPath("max_service_account_lifetime", "must not be negative (0 means no limit), found "+c.MaxServiceAccountLifetime.String())
	}

	d.checkStore(c)

	switch c.ImpersonationDefaultAccess {
	case identity.AccessReadOnly, identity.AccessReadWrite:
	default:
		d.atPath("impersonation_default_access", fmt.Sprintf("must be %q or %q, found %q",
			identity.AccessReadOnly, identity.AccessReadWrite, clip(c.ImpersonationDefaultAccess)))
	}
	if c.ImpersonationMaxDuration <= 0 {
		d.atPath("impersonation_max_duration", "must be positive, found "+c.ImpersonationMaxDuration.String())
	}
	for i, p := range c.ImpersonationProtected {
		if p == "" || strings.IndexFunc(p, notVisible) >= 0 {
			d.atPath(indexPath("impersonation_protected", i), fmt.Sprintf("%q is neither an email nor a group name: it must be non-empty, without spaces", clip(p)))
		}
	}
	if c.DrainTimeout <= 0 {
		d.atPath("drain_timeout", "must be positive, found "+c.DrainTimeout.String())
	}

	d.compilePolicy(c)

	if c.Key == nil && c.SigningKey == "" {
		k, err := identity.GenerateSigningKey()
		if err != nil {
			return err
		}
		c.Key, c.KeyGenerated = k, true
	}
	return nil
}

// compilePolicy compiles the routes and places each *policy.RouteError at
// the route's field, or at the route when the field is not written; a field
// that already has a problem is not reported twice.
func (d *decoder) compilePolicy(c *Config) {
	routes, err := policy.Compile(c.Policy)
	if err == nil {
		c.CompiledPolicy = routes
		d.lintPolicy(c)
		return
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var re *policy.RouteError
		if !errors.As(e, &re) || re.Index < 0 || re.Index >= len(d.routePaths) {
			d.atPath("policy", e.Error())
			continue
		}
		route := d.routePaths[re.Index]
		path := route + "." + re.Field
		if d.bad[path] || d.bad[route] {
			continue
		}
		where, ok := d.where[path]
		if !ok {
			where = d.lookup(route)
		}
		d.add(where, path, re.Err.Error())
	}
}

// lintPolicy warns, at the route, about routes that load but cannot be what
// was meant: one that allows no one, and one that an earlier route shadows.
func (d *decoder) lintPolicy(c *Config) {
	routes := c.CompiledPolicy.Routes
	if len(routes) != len(d.routePaths) {
		return // POLICY from the environment: no places to point at
	}
	for i, r := range routes {
		if r.AllowsNoOne() {
			c.Warnings = append(c.Warnings, d.warning(d.routePaths[i], fmt.Sprintf("route %s allows no one: every request on it is denied; add allowed_users, allowed_groups or allowed_domains, or allow_any_authenticated_user", routeLabel(r))))
		}
		for j := range i {
			if routes[j].Shadows(r) {
				c.Warnings = append(c.Warnings, d.warning(d.routePaths[i], fmt.Sprintf("route %s is shadowed by route %s (%s), which comes first and matches every request it would: move it above, or narrow the earlier one's path (it is still used when Envoy names it in context_extensions)", routeLabel(r), routeLabel(routes[j]), d.routePaths[j])))
				break
			}
		}
	}
}

// routeLabel names a route in a message: by its name, else its from.
func routeLabel(r *policy.Route) string {
	if r.Name != "" {
		return strconv.Quote(r.Name)
	}
	return "for " + r.From
}

// warning is a Problem at path's place that does not stop the config from
// loading: allowed, but probably unintended.
func (d *decoder) warning(path, msg string) Problem {
	p := d.lookup(path)
	key := path
	if p.key != "" {
		key = p.key
	}
	return Problem{File: p.file, Line: p.line, Column: p.col, Key: key, Msg: msg}
}

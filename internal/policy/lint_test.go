package policy_test

import (
	"testing"

	"github.com/extauthz/extauthz/internal/policy"
)

func TestShadowsAndAllowsNoOne(t *testing.T) {
	anyUser := func(from, prefix, path, regex string) policy.RouteSpec {
		return policy.RouteSpec{From: from, Prefix: prefix, Path: path, Regex: regex, AllowAnyAuthenticatedUser: true}
	}
	tests := []struct {
		name           string
		earlier, later policy.RouteSpec
		shadows        bool
	}{
		{"a route without a path match shadows a later one on its host", anyUser("https://a.example", "", "", ""), anyUser("https://a.example", "/x", "", ""), true},
		{"a route on another host shadows nothing", anyUser("https://a.example", "", "", ""), anyUser("https://b.example", "", "", ""), false},
		{"a prefix shadows a longer prefix", anyUser("https://a.example", "/api", "", ""), anyUser("https://a.example", "/api/v1", "", ""), true},
		{"a prefix shadows a path under it", anyUser("https://a.example", "/api", "", ""), anyUser("https://a.example", "", "/api/x", ""), true},
		{"a prefix does not shadow a sibling prefix", anyUser("https://a.example", "/a", "", ""), anyUser("https://a.example", "/b", "", ""), false},
		{"a prefix does not shadow a route with no path match", anyUser("https://a.example", "/a", "", ""), anyUser("https://a.example", "", "", ""), false},
		{"a path shadows the same path", anyUser("https://a.example", "", "/x", ""), anyUser("https://a.example", "", "/x", ""), true},
		{"a regex is never judged to shadow", anyUser("https://a.example", "", "", ".*"), anyUser("https://a.example", "", "/x", ""), false},
		{"a wildcard shadows a host under it", anyUser("https://*.a.example", "", "", ""), anyUser("https://x.a.example", "", "", ""), true},
		{"a wildcard shadows a narrower wildcard", anyUser("https://*.a.example", "", "", ""), anyUser("https://*.x.a.example", "", "", ""), true},
		{"a wildcard does not shadow its bare domain", anyUser("https://*.a.example", "", "", ""), anyUser("https://a.example", "", "", ""), false},
		{"an exact host does not shadow a wildcard", anyUser("https://x.a.example", "", "", ""), anyUser("https://*.a.example", "", "", ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := policy.Compile([]policy.RouteSpec{tt.earlier, tt.later})
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Routes[0].Shadows(p.Routes[1]); got != tt.shadows {
				t.Errorf("Shadows = %v, want %v", got, tt.shadows)
			}
		})
	}

	allows := []struct {
		name   string
		spec   policy.RouteSpec
		nobody bool
	}{
		{"a route with no rule allows no one", policy.RouteSpec{From: "https://a.example"}, true},
		{"a public route allows everyone", policy.RouteSpec{From: "https://a.example", AllowPublicUnauthenticatedAccess: true}, false},
		{"a route for any authenticated user allows someone", anyUser("https://a.example", "", "", ""), false},
		{"a route with a domain allows someone", policy.RouteSpec{From: "https://a.example", AllowedDomains: []string{"corp.example"}}, false},
	}
	for _, tt := range allows {
		t.Run(tt.name, func(t *testing.T) {
			p, err := policy.Compile([]policy.RouteSpec{tt.spec})
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Routes[0].AllowsNoOne(); got != tt.nobody {
				t.Errorf("AllowsNoOne = %v, want %v", got, tt.nobody)
			}
		})
	}
}

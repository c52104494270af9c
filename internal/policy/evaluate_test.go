package policy_test

import (
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/policy"
)

func TestEvaluate(t *testing.T) {
	route := func(s policy.RouteSpec) *policy.Route {
		t.Helper()
		s.From = "https://app.example.com"
		return compile(t, s).Routes[0]
	}
	users := route(policy.RouteSpec{AllowedUsers: []string{"Alice@Corp.Example", " carol@corp.example "}})
	groups := route(policy.RouteSpec{AllowedGroups: []string{"engineering", " ops "}})
	domains := route(policy.RouteSpec{AllowedDomains: []string{"corp.example", "@Partner.Example"}})
	anyone := route(policy.RouteSpec{AllowAnyAuthenticatedUser: true})
	public := route(policy.RouteSpec{AllowPublicUnauthenticatedAccess: true})
	nobody := route(policy.RouteSpec{})
	mixed := route(policy.RouteSpec{AllowedUsers: []string{"bob@corp.example", "alice@corp.example"},
		AllowedGroups: []string{"eng"}, AllowedDomains: []string{"partner.example"}})

	tests := []struct {
		name    string
		route   *policy.Route
		id      identity.Identity
		allowed bool
		reason  string // substring of the verdict's reason
	}{
		{"a listed user is allowed", users, identity.Identity{Email: "alice@corp.example"}, true, "allowed_users matched alice@corp.example"},
		{"a listed user is allowed whatever the email's case", users, identity.Identity{Email: "ALICE@corp.EXAMPLE"}, true, "allowed_users"},
		{"a listed user is allowed despite surrounding spaces", users, identity.Identity{Email: " carol@corp.example"}, true, "allowed_users"},
		{"an unlisted user is denied", users, identity.Identity{Email: "mallory@corp.example"}, false, "no rule matched"},
		{"a user whose email only contains a listed one is denied", users, identity.Identity{Email: "xalice@corp.example"}, false, "no rule matched"},
		{"an identity without email is denied by a users rule", users, identity.Identity{}, false, "no rule matched"},
		{"a subject or user name equal to a listed email grants nothing", users, identity.Identity{Subject: "alice@corp.example", User: "alice@corp.example"}, false, "no rule matched"},

		{"a member of a listed group is allowed", groups, identity.Identity{Groups: []string{"sales", "engineering"}}, true, "allowed_groups matched engineering"},
		{"a listed group written with spaces in the config is allowed", groups, identity.Identity{Groups: []string{"ops"}}, true, "allowed_groups matched ops"},
		{"group names are compared exactly", groups, identity.Identity{Groups: []string{"Engineering"}}, false, "no rule matched"},
		{"a member of no listed group is denied", groups, identity.Identity{Email: "a@corp.example", Groups: []string{"sales"}}, false, "no rule matched"},
		{"an empty group name matches nothing", groups, identity.Identity{Groups: []string{""}}, false, "no rule matched"},
		{"an email equal to a group name is not membership", route(policy.RouteSpec{AllowedGroups: []string{"eng@corp.example"}}),
			identity.Identity{Email: "eng@corp.example"}, false, "no rule matched"},

		{"an email in a listed domain is allowed", domains, identity.Identity{Email: "dave@corp.example"}, true, "allowed_domains matched corp.example"},
		{"the domain is compared case-insensitively", domains, identity.Identity{Email: "dave@CORP.Example"}, true, "allowed_domains"},
		{"a domain written with a leading @ in the config is allowed", domains, identity.Identity{Email: "erin@partner.example"}, true, "allowed_domains matched partner.example"},
		{"a subdomain of a listed domain is denied", domains, identity.Identity{Email: "dave@eu.corp.example"}, false, "no rule matched"},
		{"a domain extending a listed one is denied", domains, identity.Identity{Email: "dave@corp.example.evil.test"}, false, "no rule matched"},
		{"a domain that ends with a listed one is denied", domains, identity.Identity{Email: "dave@evilcorp.example"}, false, "no rule matched"},
		{"the domain follows the last @", domains, identity.Identity{Email: "a@b@corp.example"}, true, "allowed_domains matched corp.example"},
		{"a listed domain before the last @ grants nothing", domains, identity.Identity{Email: "a@corp.example@evil.test"}, false, "no rule matched"},
		{"a local part equal to a listed domain grants nothing", domains, identity.Identity{Email: "corp.example"}, false, "no rule matched"},
		{"an email ending in @ has no domain", domains, identity.Identity{Email: "a@"}, false, "no rule matched"},
		{"an identity without email is denied by a domains rule", domains, identity.Identity{Groups: []string{"corp.example"}}, false, "no rule matched"},

		{"any authenticated user is allowed", anyone, identity.Identity{Email: "x@elsewhere.test"}, true, "allow_any_authenticated_user"},
		{"an identity without email or groups is still authenticated", anyone, identity.Identity{}, true, "allow_any_authenticated_user"},
		{"a public route allows everyone", public, identity.Identity{}, true, "allow_public_unauthenticated_access"},
		{"a route with no rules allows no one", nobody, identity.Identity{Email: "alice@corp.example"}, false, "the route allows no one"},

		{"any one rule of several suffices: users", mixed, identity.Identity{Email: "bob@corp.example"}, true, "allowed_users"},
		{"any one rule of several suffices: groups", mixed, identity.Identity{Email: "x@corp.example", Groups: []string{"eng"}}, true, "allowed_groups"},
		{"any one rule of several suffices: domains", mixed, identity.Identity{Email: "x@partner.example"}, true, "allowed_domains"},
		{"the deny reason lists every rule", mixed, identity.Identity{Email: "x@corp.example"}, false,
			"needs one of users alice@corp.example, bob@corp.example; groups eng; domains partner.example"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.route.Evaluate(tc.id)
			if v.Allowed != tc.allowed {
				t.Fatalf("Evaluate(%+v) allowed = %v (%s), want %v", tc.id, v.Allowed, v.Reason, tc.allowed)
			}
			if !strings.Contains(v.Reason, tc.reason) {
				t.Fatalf("reason %q does not contain %q", v.Reason, tc.reason)
			}
		})
	}
}

// What a denied client is told names the route, never whom it allows.
func TestClientDenial(t *testing.T) {
	p := compile(t,
		policy.RouteSpec{Name: "payroll", From: "https://pay.example.com", AllowedUsers: []string{"cfo@corp.example"},
			AllowedGroups: []string{"finance"}, AllowedDomains: []string{"auditor.example"}},
		policy.RouteSpec{From: "https://unnamed.example.com", AllowedGroups: []string{"finance"}},
	)
	tests := []struct {
		name  string
		route *policy.Route
		want  string
	}{
		{"a named route is named", p.Routes[0], `access denied: the policy of route "payroll" does not allow this request`},
		{"an unnamed route is named by its from", p.Routes[1], "access denied: the policy of the route for https://unnamed.example.com does not allow this request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.route.ClientDenial()
			if got != tc.want {
				t.Fatalf("ClientDenial() = %q, want %q", got, tc.want)
			}
			for _, secret := range []string{"cfo@corp.example", "finance", "auditor.example"} {
				if strings.Contains(got, secret) {
					t.Errorf("ClientDenial() discloses %q", secret)
				}
			}
			if v := tc.route.Evaluate(identity.Identity{Email: "eve@evil.example"}); v.Allowed || !strings.Contains(v.Reason, "finance") {
				t.Errorf("Evaluate no longer gives operators the detail: %+v", v)
			}
		})
	}
}

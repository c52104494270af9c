package impersonation_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/impersonation"
)

var now = time.Unix(1_800_000_000, 0)

const leeway = 60 * time.Second

func at(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(now.Add(d)) }

func rules(defaultAccess string) *impersonation.Rules {
	return impersonation.NewRules(
		[]string{"Admin@Corp.Example", " root@corp.example ", ""},
		[]string{"ceo@corp.example", "Finance-Admins", " payroll@corp.example "},
		defaultAccess, leeway)
}

// admin is a token held by an administrator, in groups that must grant nothing
// while impersonating; edit adds the impersonation claims.
func admin(edit func(*identity.Claims)) *identity.Claims {
	c := &identity.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: "admin-sub", ExpiresAt: at(time.Hour)},
		Email:            "admin@corp.example",
		User:             "admin",
		Groups:           []string{"admins", "finance"},
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func user(edit func(*identity.Claims)) *identity.Claims {
	c := admin(edit)
	c.Subject, c.Email, c.User, c.Groups = "mallory-sub", "mallory@corp.example", "mallory", []string{"eng"}
	return c
}

func as(email string, groups ...string) func(*identity.Claims) {
	return func(c *identity.Claims) { c.ImpersonateEmail, c.ImpersonateGroups = email, groups }
}

func and(edits ...func(*identity.Claims)) func(*identity.Claims) {
	return func(c *identity.Claims) {
		for _, e := range edits {
			e(c)
		}
	}
}

func access(a string) func(*identity.Claims) {
	return func(c *identity.Claims) { c.ImpersonateAccess = a }
}

func until(d time.Duration) func(*identity.Claims) {
	return func(c *identity.Claims) { c.ImpersonateExp = at(d) }
}

var adminHolder = identity.Identity{Subject: "admin-sub", User: "admin", Email: "admin@corp.example", Groups: []string{"admins", "finance"}}

func TestApply(t *testing.T) {
	bob := identity.Identity{Subject: "bob@corp.example", User: "bob@corp.example", Email: "bob@corp.example"}
	tests := []struct {
		name          string
		rules         *impersonation.Rules
		claims        *identity.Claims
		method        string
		effective     identity.Identity
		impersonating bool
		ended         bool
		access        string
		denied        string // substring; "" means not denied
	}{
		{name: "a token without impersonation acts as its holder",
			claims: admin(nil), effective: adminHolder},
		{name: "a non-administrator without impersonation acts as themselves",
			claims: user(nil), effective: identity.Identity{Subject: "mallory-sub", User: "mallory", Email: "mallory@corp.example", Groups: []string{"eng"}}},
		{name: "impersonate_access alone is not an impersonation",
			claims: user(access("bogus")), method: "POST",
			effective: identity.Identity{Subject: "mallory-sub", User: "mallory", Email: "mallory@corp.example", Groups: []string{"eng"}}},

		{name: "an administrator impersonating an email acts as that email alone",
			claims: admin(as("bob@corp.example")), effective: bob, impersonating: true, access: "read_write"},
		{name: "an administrator impersonating groups acts as those groups with no email",
			claims: admin(as("", "eng", "support")), effective: identity.Identity{Groups: []string{"eng", "support"}},
			impersonating: true, access: "read_write"},
		{name: "an administrator impersonating an email and groups acts as both",
			claims:        admin(as("bob@corp.example", "eng")),
			effective:     identity.Identity{Subject: "bob@corp.example", User: "bob@corp.example", Email: "bob@corp.example", Groups: []string{"eng"}},
			impersonating: true, access: "read_write"},
		{name: "the administrator's own groups do not carry into the impersonation",
			claims: admin(as("bob@corp.example", "finance")),
			effective: identity.Identity{Subject: "bob@corp.example", User: "bob@corp.example", Email: "bob@corp.example",
				Groups: []string{"finance"}},
			impersonating: true, access: "read_write"},
		{name: "an administrator is recognised whatever the case of their email",
			claims: admin(and(func(c *identity.Claims) { c.Email = " ADMIN@corp.example" }, as("bob@corp.example"))), effective: bob,
			impersonating: true, access: "read_write"},

		{name: "a non-administrator impersonating is denied",
			claims: user(as("bob@corp.example")), effective: bob, impersonating: true, access: "read_write",
			denied: "impersonation requires an administrator"},
		{name: "a non-administrator impersonating groups is denied",
			claims: user(as("", "admins")), effective: identity.Identity{Groups: []string{"admins"}}, impersonating: true, access: "read_write",
			denied: "impersonation requires an administrator"},
		{name: "a token without an email impersonating is denied",
			claims: admin(and(func(c *identity.Claims) { c.Email = "" }, as("bob@corp.example"))), effective: bob,
			impersonating: true, access: "read_write", denied: "impersonation requires an administrator"},
		{name: "a non-administrator is denied before a read-only check",
			claims: user(and(as("bob@corp.example"), access("read_only"))), method: "DELETE", effective: bob, impersonating: true,
			access: "read_only", denied: "impersonation requires an administrator"},

		{name: "an administrator cannot impersonate another administrator",
			claims: admin(as("root@corp.example")), impersonating: true, access: "read_write", denied: "administrators cannot be impersonated"},
		{name: "an administrator cannot impersonate an administrator written in another case",
			claims: admin(as("ROOT@Corp.Example")), impersonating: true, access: "read_write", denied: "administrators cannot be impersonated"},
		{name: "an administrator cannot impersonate an administrator padded with spaces",
			claims: admin(as(" root@corp.example\t")), impersonating: true, access: "read_write", denied: "administrators cannot be impersonated"},
		{name: "an administrator cannot impersonate themselves",
			claims: admin(as("admin@corp.example")), impersonating: true, access: "read_write", denied: "administrators cannot be impersonated"},
		{name: "a protected email cannot be impersonated",
			claims: admin(as("ceo@corp.example")), impersonating: true, access: "read_write", denied: "ceo@corp.example is protected"},
		{name: "a protected email cannot be impersonated in another case",
			claims: admin(as("CEO@Corp.Example")), impersonating: true, access: "read_write", denied: "ceo@corp.example is protected"},
		{name: "a protected entry written with spaces is still protected",
			claims: admin(as("payroll@corp.example")), impersonating: true, access: "read_write", denied: "is protected"},
		{name: "a protected group cannot be impersonated",
			claims: admin(as("", "eng", "Finance-Admins")), impersonating: true, access: "read_write", denied: "group Finance-Admins is protected"},
		{name: "a protected group cannot be impersonated in another case",
			claims: admin(as("", "finance-admins")), impersonating: true, access: "read_write", denied: "group finance-admins is protected"},
		{name: "a protected group cannot be impersonated padded with spaces",
			claims: admin(as("", " FINANCE-ADMINS ")), impersonating: true, access: "read_write", denied: "is protected"},
		{name: "a protected email cannot be impersonated as a group",
			claims: admin(as("bob@corp.example", "ceo@corp.example")), impersonating: true, access: "read_write", denied: "is protected"},
		{name: "a protected group cannot be impersonated as an email",
			claims: admin(as("finance-admins")), impersonating: true, access: "read_write", denied: "is protected"},
		{name: "an administrator's email cannot be impersonated even beside allowed groups",
			claims: admin(as("root@corp.example", "eng")), impersonating: true, access: "read_write", denied: "administrators cannot be impersonated"},

		{name: "an impersonation stating no access gets the default read_write",
			claims: admin(as("bob@corp.example")), method: "DELETE", effective: bob, impersonating: true, access: "read_write"},
		{name: "a read_only default denies writes of an impersonation stating no access",
			rules: rules("read_only"), claims: admin(as("bob@corp.example")), method: "POST", effective: bob, impersonating: true,
			access: "read_only", denied: "read-only impersonation allows only GET, HEAD and OPTIONS, not POST"},
		{name: "a read_only default allows reads of an impersonation stating no access",
			rules: rules("read_only"), claims: admin(as("bob@corp.example")), method: "GET", effective: bob, impersonating: true, access: "read_only"},
		{name: "an impersonation's own read_write overrides a read_only default",
			rules: rules("read_only"), claims: admin(and(as("bob@corp.example"), access("read_write"))), method: "PUT", effective: bob,
			impersonating: true, access: "read_write"},
		{name: "an impersonation's own read_only overrides a read_write default",
			claims: admin(and(as("bob@corp.example"), access("read_only"))), method: "PATCH", effective: bob,
			impersonating: true, access: "read_only", denied: "not PATCH"},
		{name: "an unknown access value is denied",
			claims: admin(and(as("bob@corp.example"), access("admin"))), method: "GET", effective: bob, impersonating: true,
			access: "admin", denied: "impersonate_access must be read_only or read_write"},
		{name: "an access value in another case is denied",
			claims: admin(and(as("bob@corp.example"), access("READ_WRITE"))), method: "GET", effective: bob, impersonating: true,
			access: "READ_WRITE", denied: "impersonate_access must be read_only or read_write"},

		{name: "a full-width look-alike target is denied as not a plain address",
			claims: admin(as("ｃｅｏ@corp.example")), effective: identity.Identity{Subject: "ｃｅｏ@corp.example", User: "ｃｅｏ@corp.example", Email: "ｃｅｏ@corp.example"},
			impersonating: true, access: "read_write", denied: "not a plain address"},
		{name: "an accented look-alike target is denied as not a plain address",
			claims: admin(as("céo@corp.example")), impersonating: true, access: "read_write", denied: "not a plain address"},
		{name: "a Cyrillic look-alike target is denied as not a plain address",
			claims: admin(as("cеo@corp.example")), impersonating: true, access: "read_write", denied: "not a plain address"},
		{name: "a look-alike target in groups-only form is still checked by email",
			claims: admin(as("bob@corp.example ", "eng")), impersonating: true, access: "read_write", denied: "not a plain address"},
		{name: "an impersonation past its impersonate_exp ends and acts as the holder",
			claims: admin(and(as("bob@corp.example"), until(-61*time.Second))), effective: adminHolder, ended: true},
		{name: "an ended impersonation of a protected target acts as the holder without denial",
			claims: admin(and(as("root@corp.example"), until(-time.Hour))), effective: adminHolder, ended: true},
		{name: "an ended impersonation by a non-administrator acts as the holder without denial",
			claims: user(and(as("bob@corp.example"), until(-time.Hour))), ended: true,
			effective: identity.Identity{Subject: "mallory-sub", User: "mallory", Email: "mallory@corp.example", Groups: []string{"eng"}}},
		{name: "an impersonation 59 s past impersonate_exp has ended: the clock-skew leeway does not apply to it",
			claims: admin(and(as("bob@corp.example"), until(-59*time.Second))), effective: adminHolder, ended: true},
		{name: "an impersonation 1 s past impersonate_exp has ended",
			claims: admin(and(as("bob@corp.example"), until(-time.Second))), effective: adminHolder, ended: true},
		{name: "an impersonation ends at the very second of impersonate_exp",
			claims: admin(and(as("bob@corp.example"), until(0))), effective: adminHolder, ended: true},
		{name: "an impersonation 1 s before impersonate_exp is live",
			claims: admin(and(as("bob@corp.example"), until(time.Second))), effective: bob, impersonating: true, access: "read_write"},
		{name: "an impersonation before impersonate_exp is live",
			claims: admin(and(as("bob@corp.example"), until(10*time.Minute))), effective: bob, impersonating: true, access: "read_write"},
		{name: "an impersonate_exp equal to the token's exp is live",
			claims: admin(and(as("bob@corp.example"), until(time.Hour))), effective: bob, impersonating: true, access: "read_write"},
		{name: "an impersonate_exp after the token's exp is not live",
			claims: admin(and(as("bob@corp.example"), until(time.Hour+time.Second))), effective: adminHolder, ended: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.rules
			if r == nil {
				r = rules("")
			}
			method := tc.method
			if method == "" {
				method = "GET"
			}
			out := r.Apply(tc.claims, method, now)
			if tc.denied == "" && out.Refusal != "" {
				t.Fatalf("denied: %s", out.Refusal)
			}
			if tc.denied != "" && !strings.Contains(out.Refusal, tc.denied) {
				t.Fatalf("Refusal = %q, want it to contain %q", out.Refusal, tc.denied)
			}
			if out.Impersonating != tc.impersonating || out.Ended != tc.ended {
				t.Fatalf("Impersonating, Ended = %v, %v; want %v, %v", out.Impersonating, out.Ended, tc.impersonating, tc.ended)
			}
			if out.Access != tc.access {
				t.Errorf("Access = %q, want %q", out.Access, tc.access)
			}
			if tc.denied == "" || tc.effective.Email != "" || tc.effective.Groups != nil {
				if !sameIdentity(out.Effective, tc.effective) {
					t.Errorf("Effective = %+v, want %+v", out.Effective, tc.effective)
				}
			}
			if holder := tc.claims.Holder(); !sameIdentity(out.Actor, holder) {
				t.Errorf("Actor = %+v, want the holder %+v", out.Actor, holder)
			}
		})
	}
}

func sameIdentity(a, b identity.Identity) bool {
	return a.Subject == b.Subject && a.User == b.User && a.Email == b.Email && slices.Equal(a.Groups, b.Groups)
}

func TestApplyCarriesTheReason(t *testing.T) {
	t.Run("the impersonation's reason is reported", func(t *testing.T) {
		c := admin(as("bob@corp.example"))
		c.ImpersonateReason = "ticket 42"
		if out := rules("").Apply(c, "GET", now); out.Reason != "ticket 42" {
			t.Fatalf("Reason = %q", out.Reason)
		}
	})
	t.Run("an ended impersonation reports no reason or access", func(t *testing.T) {
		c := admin(and(as("bob@corp.example"), until(-time.Hour), access("read_only")))
		c.ImpersonateReason = "ticket 42"
		if out := rules("").Apply(c, "GET", now); out.Reason != "" || out.Access != "" {
			t.Fatalf("Reason, Access = %q, %q", out.Reason, out.Access)
		}
	})
}

func TestReadOnlyMethods(t *testing.T) {
	tests := []struct {
		method string
		ok     bool
	}{
		{"GET", true}, {"HEAD", true}, {"OPTIONS", true},
		{"POST", false}, {"PUT", false}, {"PATCH", false}, {"DELETE", false},
		{"CONNECT", false}, {"TRACE", false}, {"PROPFIND", false}, {"get", false}, {"", false},
	}
	for _, tc := range tests {
		verb := "denies"
		if tc.ok {
			verb = "allows"
		}
		t.Run(fmt.Sprintf("read_only %s method %q", verb, tc.method), func(t *testing.T) {
			if got := impersonation.ReadOnlyMethod(tc.method); got != tc.ok {
				t.Fatalf("ReadOnlyMethod(%q) = %v, want %v", tc.method, got, tc.ok)
			}
			c := admin(and(as("bob@corp.example"), access("read_only")))
			out := rules("").Apply(c, tc.method, now)
			if (out.Refusal == "") != tc.ok {
				t.Fatalf("Apply under read_only with %q: Denied = %q", tc.method, out.Refusal)
			}
			if !tc.ok && !strings.Contains(out.Refusal, "read-only impersonation") {
				t.Fatalf("Refusal = %q, want the read-only reason", out.Refusal)
			}
			if rw := rules("").Apply(admin(and(as("bob@corp.example"), access("read_write"))), tc.method, now); rw.Refusal != "" {
				t.Fatalf("read_write denied %q: %s", tc.method, rw.Refusal)
			}
		})
	}
}

func TestRules(t *testing.T) {
	r := rules("")
	admins := []struct {
		name, email string
		want        bool
	}{
		{"a configured administrator is recognised", "admin@corp.example", true},
		{"an administrator is recognised in any case", "ROOT@CORP.EXAMPLE", true},
		{"an administrator is recognised despite spaces", " root@corp.example ", true},
		{"another user is not an administrator", "bob@corp.example", false},
		{"an empty email is never an administrator", "", false},
		{"a blank email is never an administrator", "  ", false},
	}
	for _, tc := range admins {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.IsAdministrator(tc.email); got != tc.want {
				t.Fatalf("IsAdministrator(%q) = %v", tc.email, got)
			}
		})
	}
	t.Run("an unset default access is read_write", func(t *testing.T) {
		if got := impersonation.NewRules(nil, nil, "", 0).DefaultAccess; got != identity.AccessReadWrite {
			t.Fatalf("DefaultAccess = %q", got)
		}
	})
	t.Run("an allowed target has no protection reason", func(t *testing.T) {
		if why := r.ProtectedTarget("bob@corp.example", []string{"eng"}); why != "" {
			t.Fatalf("ProtectedTarget = %q", why)
		}
	})
	t.Run("an empty target has no protection reason", func(t *testing.T) {
		if why := r.ProtectedTarget("", nil); why != "" {
			t.Fatalf("ProtectedTarget = %q", why)
		}
	})
	t.Run("with no administrators nobody may impersonate", func(t *testing.T) {
		out := impersonation.NewRules(nil, nil, "", leeway).Apply(admin(as("bob@corp.example")), "GET", now)
		if out.Refusal != "impersonation requires an administrator" {
			t.Fatalf("Refusal = %q", out.Refusal)
		}
	})
}

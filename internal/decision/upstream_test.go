package decision_test

import (
	"testing"

	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
)

func TestUpstreamIdentityNeverLeavesSubOrUserEmpty(t *testing.T) {
	cases := []struct {
		name          string
		id            identity.Identity
		impersonating bool
		sub, user     string
	}{
		{"sub and user set are kept", identity.Identity{Subject: "u-1", User: "bob", Email: "bob@corp.example"}, false, "u-1", "bob"},
		{"both default to the email", identity.Identity{Email: "ci@corp.example"}, false, "ci@corp.example", "ci@corp.example"},
		{"user defaults to the email when sub is set", identity.Identity{Subject: "u-1", Email: "bob@corp.example"}, false, "u-1", "bob@corp.example"},
		{"without an email each defaults to the other", identity.Identity{User: "bob"}, false, "bob", "bob"},
		{"a group-only impersonation gets the fixed value", identity.Identity{Groups: []string{"eng"}}, true, decision.SubjectGroupImpersonation, decision.SubjectGroupImpersonation},
		{"a token naming no one gets its own fixed value", identity.Identity{Groups: []string{"eng"}}, false, decision.SubjectGroupsOnly, decision.SubjectGroupsOnly},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := decision.UpstreamIdentity(tc.id, tc.impersonating)
			if got.Subject != tc.sub || got.User != tc.user || got.Email != tc.id.Email || len(got.Groups) != len(tc.id.Groups) {
				t.Errorf("UpstreamIdentity(%+v) = %+v, want sub %q user %q and the rest unchanged", tc.id, got, tc.sub, tc.user)
			}
		})
	}
}

package check_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/identity"
)

// An assertion that cannot be signed turns an allow into a 500; the audit
// log records the 500 the client got, not the allow the policy gave.
func TestASigningFailureIsAuditedAsThe500ItBecame(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, func(s *check.Snapshot) {
		// ES256 refuses a P-384 key: every signature fails.
		s.Key = &identity.SigningKey{Private: p384, ID: "wrong-curve"}
	})
	aliceAsBob := mint(t, identity.Claims{Email: "alice@corp.example", ImpersonateEmail: "bob@corp.example",
		ImpersonateGroups: []string{"engineering"}})
	resp := f.check(t, envoyRequest("GET", "https://app.example.com/", map[string]string{"authorization": "Pomerium " + aliceAsBob}, "app"))
	if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != 500 {
		t.Fatalf("status = %d, want 500", got)
	}
	entries := f.logs.FilterLoggerName("audit").All()
	if len(entries) != 1 {
		t.Fatalf("want one audit entry, got %d", len(entries))
	}
	m := entries[0].ContextMap()
	if m["decision"] != "deny" || m["status"] != int64(500) || m["reason"] != "internal error" || m["actor_email"] != "alice@corp.example" {
		t.Errorf("audit entry = %v, want the 500 deny with its actor", m)
	}
}

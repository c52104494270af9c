package web_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/identity"
)

// TestPagesReadSeveralSessionCookiesAsCheckDoes: the pages read a session
// from several _pomerium cookies exactly as Check does, so their order never
// decides (contract section 4) and the dashboard never disagrees with Check.
func TestPagesReadSeveralSessionCookiesAsCheckDoes(t *testing.T) {
	f := newFixture(t)
	expired := f.claims("carol@corp.example")
	expired.ExpiresAt = numeric(f.now.Add(-time.Hour))
	bob, carol, old := f.token(user), f.token("carol@corp.example"), f.mint(expired)
	tests := []struct {
		name       string
		a, b       string
		wantStatus int
		wantBody   string
	}{
		{"an expired and a valid cookie show the valid session", old, bob, http.StatusOK, user},
		{"two people's cookies are refused as disagreeing", bob, carol, http.StatusUnauthorized, identity.ReasonCookiesDisagree},
	}
	for _, tc := range tests {
		for _, order := range [][2]string{{tc.a, tc.b}, {tc.b, tc.a}} {
			t.Run(tc.name+" in either order", func(t *testing.T) {
				b := f.browser()
				b.accept = "application/json"
				r := b.get(appHost, "/.pomerium/", "Cookie", "_pomerium="+order[0]+"; _pomerium="+order[1])
				if r.StatusCode != tc.wantStatus || !strings.Contains(r.body, tc.wantBody) {
					t.Fatalf("status %d, body %.300s; want %d with %q", r.StatusCode, r.body, tc.wantStatus, tc.wantBody)
				}
			})
		}
	}
}

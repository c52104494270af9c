package web_test

import (
	"net/http"
	"testing"
)

// The dashboard names the holder as upstreams see them
// (decision.UpstreamIdentity): a token without a user claim shows its email.
func TestDashboardShowsTheUserUpstreamsSee(t *testing.T) {
	f := newFixture(t)
	c := f.claims("ci@corp.example", "engineering")
	c.User, c.Subject = "", ""
	b := f.browser()
	r := b.get(appHost, "/.pomerium/", "Accept", "application/json", "Authorization", "Pomerium "+f.mint(c))
	if r.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", r.StatusCode, r.body)
	}
	if d := decodeDashboard(t, r); d.User != "ci@corp.example" {
		t.Errorf("user = %q, want the email", d.User)
	}
}

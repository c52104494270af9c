package reload_test

import (
	"testing"

	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/reload"
)

func TestBuildCarriesTheIdentityProviderToThePages(t *testing.T) {
	const idp = "idp_provider_url: https://idp.corp.example\nidp_client_id: extauthz\n"
	for _, tc := range []struct {
		name  string
		extra string
		allow bool
	}{
		{name: "unverified email addresses are refused by default", extra: idp},
		{name: "idp_allow_unverified_email reaches the pages", extra: idp + "idp_allow_unverified_email: true\n", allow: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(spec{Secret: secretA, Extra: tc.extra}.render()), "t.yaml", nil)
			if err != nil {
				t.Fatal(err)
			}
			_, set, err := reload.Build(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if set.IdpProviderURL != "https://idp.corp.example" || set.IdpAllowUnverifiedEmail != tc.allow {
				t.Errorf("settings: provider %q, allow unverified %v; want %v", set.IdpProviderURL, set.IdpAllowUnverifiedEmail, tc.allow)
			}
		})
	}
}

package reload

import (
	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/impersonation"
	"github.com/extauthz/extauthz/internal/web"
)

// AssertionCacheSize bounds the signed assertions a snapshot keeps: about
// 8 MiB. An entry is reused for at most 2.5 minutes, so this covers 8192
// sessions-on-a-route active within that window; beyond it a session pays one
// ES256 signature (~40 µs) per request instead of none, while memory stays flat.
const AssertionCacheSize = 8192

// Build derives the Check snapshot and the page settings from a validated
// config. The verifier accepts the current and the previous shared secrets and
// applies revoked_token_ids and max_service_account_lifetime. The JWKS
// publishes the signing key, then previous_signing_keys, then retired (keys
// that signed assertions before a reload and must verify until those expire),
// each key once.
func Build(cfg *config.Config, retired ...*identity.SigningKey) (*check.Snapshot, *web.Settings, error) {
	engine, err := newEngine(cfg)
	if err != nil {
		return nil, nil, err
	}
	claimHeaders := make([]check.ClaimHeader, 0, len(cfg.ClaimHeaders))
	for _, ch := range cfg.ClaimHeaders {
		claimHeaders = append(claimHeaders, check.ClaimHeader{Claim: ch.Claim, Header: ch.Header})
	}
	snap := &check.Snapshot{
		Engine:       engine,
		Key:          cfg.Key,
		Issuer:       cfg.Issuer,
		ClaimHeaders: claimHeaders,
		Assertions:   check.NewAssertionCache(AssertionCacheSize),
	}
	jwks, err := identity.MarshalJWKS(publishedKeys(cfg, retired)...)
	if err != nil {
		return nil, nil, err
	}
	settings := &web.Settings{
		Engine:                     engine,
		Secret:                     cfg.SharedSecret,
		CookieName:                 cfg.CookieName,
		CookieDomain:               cfg.CookieDomain,
		CookieSecure:               cfg.CookieSecureOrDefault(),
		CookieExpire:               cfg.CookieExpire.Std(),
		Issuer:                     cfg.Issuer,
		JWKS:                       jwks,
		ImpersonationMaxDuration:   cfg.ImpersonationMaxDuration.Std(),
		ImpersonationRequireReason: cfg.ImpersonationRequireReasonOrDefault(),
		AuthenticateServiceURL:     cfg.AuthenticateServiceURL,
		IdpProviderURL:             cfg.IdpProviderURL,
		IdpClientID:                cfg.IdpClientID,
		IdpClientSecret:            cfg.IdpClientSecret,
		IdpScopes:                  cfg.IdpScopes,
		IdpAllowUnverifiedEmail:    cfg.IdpAllowUnverifiedEmail,
	}
	return snap, settings, nil
}

// newEngine builds the decision engine of a validated config. (`extauthz
// explain` needs only the policy: it is given an identity, not a token.)
func newEngine(cfg *config.Config) (*decision.Engine, error) {
	verifier, err := identity.NewVerifier(identity.VerifierOptions{
		Secrets:     cfg.Secrets(),
		Issuer:      cfg.Issuer,
		Leeway:      identity.MaxLeeway,
		RevokedIDs:  cfg.RevokedTokenIDs,
		MaxLifetime: cfg.MaxServiceAccountLifetime.Std(),
	})
	if err != nil {
		return nil, err
	}
	return &decision.Engine{
		Policy:     cfg.CompiledPolicy,
		Verifier:   verifier,
		Rules:      impersonation.NewRules(cfg.Administrators, cfg.ImpersonationProtected, cfg.ImpersonationDefaultAccess, identity.MaxLeeway),
		CookieName: cfg.CookieName,
	}, nil
}

// publishedKeys is the JWKS content: current key first, then previous, then
// retired, without duplicate key ids.
func publishedKeys(cfg *config.Config, retired []*identity.SigningKey) []*identity.SigningKey {
	keys := cfg.SigningKeys()
	out := make([]*identity.SigningKey, 0, len(keys)+len(retired))
	seen := make(map[string]bool, cap(out))
	for _, k := range append(keys, retired...) {
		if k == nil || seen[k.ID] {
			continue
		}
		seen[k.ID] = true
		out = append(out, k)
	}
	return out
}

// RetiredKeyGrace is how long a signing key that a reload replaced stays in
// the JWKS: the lifetime of the assertions it signed, plus the clock skew an
// upstream may tolerate when verifying them.
const RetiredKeyGrace = identity.AssertionLifetime + identity.MaxLeeway

package idp

// This file reads who the provider says a user is: ID token and userinfo
// claims, and whether the provider vouches for the email address.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// claims are the ID token and userinfo claims the sidecar reads.
type claims struct {
	Subject string `json:"sub"`
	Email   string `json:"email"`
	// EmailVerified is kept as sent: see emailVerified.
	EmailVerified json.RawMessage `json:"email_verified"`
	Name          string          `json:"name"`
	// Groups is the "groups" claim: an array of strings, or one string.
	Groups json.RawMessage `json:"groups"`
}

// identity reads the ID token's claims; what it lacks (email, name, groups,
// email_verified) is asked of the userinfo endpoint when the provider has
// one. The email address must be verified (see verification).
func (c *Client) identity(ctx context.Context, d *discovered, idt *oidc.IDToken, tok *oauth2.Token) (*Identity, error) {
	var cl claims
	if err := idt.Claims(&cl); err != nil {
		return nil, &Error{Kind: Invalid, Msg: "the ID token's claims could not be read", Err: err}
	}
	id, err := fromClaims(cl)
	if err != nil {
		return nil, err
	}
	if id.Subject == "" {
		return nil, &Error{Kind: Invalid, Msg: "the ID token has no subject (sub)"}
	}
	_, decided := emailVerified(cl.EmailVerified)
	// Without the ID token's word on the address, userinfo's is needed.
	mustAsk := !decided && !c.cfg.AllowUnverifiedEmail
	var answer *claims
	if (id.Email == "" || cl.Groups == nil || !decided) && d.provider.UserInfoEndpoint() != "" && tok.AccessToken != "" {
		ui, err := c.userinfo(ctx, d, tok)
		var uid *Identity
		if err == nil {
			uid, err = fromClaims(*ui)
		}
		if err != nil && mustAsk {
			return nil, err
		}
		// Otherwise userinfo only fills gaps: a failure leaves them.
		if err == nil && uid.Subject == id.Subject {
			answer = ui
			if id.Email == "" {
				id.Email = uid.Email
			}
			if id.Name == "" {
				id.Name = uid.Name
			}
			if cl.Groups == nil {
				id.Groups = uid.Groups
			}
		}
	}
	if err := c.requireVerified(id, verification(id, cl.EmailVerified, answer), idt.Issuer); err != nil {
		return nil, err
	}
	return id, nil
}

// userinfo asks the userinfo endpoint with the access token of tok.
func (c *Client) userinfo(ctx context.Context, d *discovered, tok *oauth2.Token) (*claims, error) {
	if d.provider.UserInfoEndpoint() == "" {
		return nil, &Error{Kind: Invalid, Msg: "the identity provider returned no ID token on refresh and has no userinfo endpoint"}
	}
	ui, err := d.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return nil, classifyToken(err, "the access token")
	}
	var cl claims
	if err := ui.Claims(&cl); err != nil {
		return nil, &Error{Kind: Invalid, Msg: "the userinfo answer could not be read", Err: err}
	}
	return &cl, nil
}

// emailVerified reads an email_verified claim as sent. Only the JSON boolean
// true and the string "true" (as AWS Cognito sends it) count as verified;
// everything else does not: false, "false", "True", "1", 1, "yes". Being
// lenient here would let a provider's odd spelling of "no" sign someone in.
// present is false when the claim is absent or null, so that another source
// (userinfo) may be asked.
func emailVerified(raw json.RawMessage) (verified, present bool) {
	if len(raw) == 0 {
		return false, false
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, true
	}
	switch v := v.(type) {
	case nil:
		return false, false
	case bool:
		return v, true
	case string:
		return v == "true", true
	default:
		return false, true
	}
}

// verified is the outcome of verification, with what the log needs.
type verified struct {
	ok bool
	// claim is email_verified as sent ("absent" when no source had it).
	claim string
	// source is where it was read: "ID token", "userinfo", or "" when none.
	source string
}

// verification decides whether id.Email is verified. The ID token's
// email_verified decides when present. Else userinfo's (ui; nil when not
// asked) decides, but only when userinfo speaks of the same subject and the
// same address: a verified address that is not the one signing in proves
// nothing. A source that lacks the claim leaves the address unverified.
func verification(id *Identity, token json.RawMessage, ui *claims) verified {
	if ok, present := emailVerified(token); present {
		return verified{ok: ok, claim: describeClaim(token), source: "ID token"}
	}
	if ui == nil {
		return verified{claim: "absent"}
	}
	ok, present := emailVerified(ui.EmailVerified)
	if !present {
		return verified{claim: "absent", source: "userinfo"}
	}
	if ui.Subject != id.Subject || !strings.EqualFold(strings.TrimSpace(ui.Email), id.Email) {
		return verified{claim: describeClaim(ui.EmailVerified) + " for another address", source: "userinfo"}
	}
	return verified{ok: ok, claim: describeClaim(ui.EmailVerified), source: "userinfo"}
}

// describeClaim renders a claim's JSON for the log, short.
func describeClaim(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

// UnverifiedEmailError is the detail of an Unverified error, for the log:
// who signed in, at which provider, and what email_verified said. It holds
// no token.
type UnverifiedEmailError struct {
	Issuer  string
	Subject string
	Email   string
	// Claim is email_verified as sent (JSON), or "absent".
	Claim string
	// Source is where Claim was read: "ID token", "userinfo", or "".
	Source string
}

func (e *UnverifiedEmailError) Error() string {
	src := ""
	if e.Source != "" {
		src = " in the " + e.Source
	}
	return fmt.Sprintf("email_verified is %s%s, want true", e.Claim, src)
}

// requireVerified records v on id and refuses it, unless the configuration
// accepts unverified addresses.
func (c *Client) requireVerified(id *Identity, v verified, issuer string) error {
	id.EmailVerified = v.ok
	if v.ok || c.cfg.AllowUnverifiedEmail {
		return nil
	}
	return &Error{Kind: Unverified,
		Msg: "the identity provider did not confirm that the email address is verified",
		Err: &UnverifiedEmailError{Issuer: issuer, Subject: id.Subject, Email: id.Email, Claim: v.claim, Source: v.source}}
}

func fromClaims(cl claims) (*Identity, error) {
	id := &Identity{Subject: cl.Subject, Email: strings.TrimSpace(cl.Email), Name: strings.TrimSpace(cl.Name)}
	if len(cl.Groups) > 0 && string(cl.Groups) != "null" {
		var list []string
		if err := json.Unmarshal(cl.Groups, &list); err != nil {
			var one string
			if err := json.Unmarshal(cl.Groups, &one); err != nil {
				return nil, &Error{Kind: Invalid, Msg: "the groups claim is neither a list of strings nor a string", Err: err}
			}
			list = []string{one}
		}
		for _, g := range list {
			if g = strings.TrimSpace(g); g != "" && !slices.Contains(id.Groups, g) {
				id.Groups = append(id.Groups, g)
			}
		}
	}
	return id, nil
}

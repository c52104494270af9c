package idp

// This file classifies what can go wrong with a provider into the few kinds
// a page can act on.

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Kind classifies a failure so that the page can say what a person can do.
type Kind int

// Error is a failure talking to the provider. Msg is safe to show; Err has
// the detail for the log.
type Error struct {
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of err, or 0 when it is not an *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

func classifyDiscovery(provider string, err error) error {
	var mismatch *oidc.IssuerMismatchError
	if errors.As(err, &mismatch) {
		return &Error{Kind: Misconfigured, Msg: "the identity provider's discovery document names another issuer than idp_provider_url", Err: err}
	}
	if strings.Contains(err.Error(), "failed to decode provider discovery object") {
		return &Error{Kind: Unreachable, Msg: "the identity provider's discovery document could not be read", Err: err}
	}
	return &Error{Kind: Unreachable, Msg: "the identity provider at " + provider + " could not be reached", Err: err}
}

// classifyToken sorts a failed token-endpoint (or userinfo) call.
func classifyToken(err error, what string) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code := re.ErrorCode
		switch {
		case code == "invalid_client" || code == "unauthorized_client":
			return &Error{Kind: Misconfigured, Msg: "the identity provider refused this client (" + code + "): check idp_client_id and idp_client_secret", Err: err}
		case code != "":
			return &Error{Kind: Refused, Msg: "the identity provider refused " + what + " (" + code + ")", Err: err}
		case re.Response != nil && re.Response.StatusCode >= 500:
			return &Error{Kind: Unreachable, Msg: "the identity provider failed answering " + what, Err: err}
		case re.Response != nil && re.Response.StatusCode >= 400:
			return &Error{Kind: Refused, Msg: "the identity provider refused " + what, Err: err}
		}
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &Error{Kind: Unreachable, Msg: "the identity provider could not be reached", Err: err}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return &Error{Kind: Unreachable, Msg: "the identity provider could not be reached", Err: err}
	}
	return &Error{Kind: Unreachable, Msg: "the identity provider's answer about " + what + " could not be used", Err: err}
}

func classifyVerify(err error) error {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Kind: Unreachable, Msg: "the identity provider's signing keys could not be fetched", Err: err}
	}
	var exp *oidc.TokenExpiredError
	if errors.As(err, &exp) {
		return &Error{Kind: Invalid, Msg: "the ID token has expired (are the clocks in sync?)", Err: err}
	}
	return &Error{Kind: Invalid, Msg: "the ID token did not verify", Err: err}
}

const (
	// Unreachable: the provider could not be reached, timed out, or answered
	// with a server error. Try again later.
	Unreachable Kind = iota + 1
	// Refused: the provider refused the code or the refresh token
	// (invalid_grant and friends). Sign in again.
	Refused
	// Invalid: the provider's answer did not verify (ID token signature,
	// issuer, audience, expiry, nonce) or lacked what is required.
	Invalid
	// Misconfigured: the provider refused our client (invalid_client,
	// unauthorized_client) or the discovery document is unusable.
	Misconfigured
	// Unverified: the provider did not confirm that the email address is
	// verified, and AllowUnverifiedEmail is off. Err is an
	// *UnverifiedEmailError. Verify the address at the provider.
	Unverified
)

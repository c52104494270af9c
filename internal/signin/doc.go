// Package signin is browser sign-in through an OpenID Connect provider
// (idp_provider_url), with single sign-on across route hosts.
//
// The identity-provider session lives on the authenticate host (the host of
// authenticate_service_url), in an "authenticate session" cookie that only
// that host ever sees. A route host never talks to the provider; it gets a
// session of its own, scoped to itself, through a handoff:
//
//  1. Check sends a browser without a session to /.pomerium/sign_in on the
//     route host, which keeps a random secret in a "binding" cookie (on the
//     route host) and redirects to /.pomerium/sign_in on the authenticate
//     host with the page to return to and a keyed commitment to the secret.
//  2. The authenticate host, if it has no (fresh enough) authenticate
//     session, runs the authorization-code flow with PKCE (S256), state and
//     nonce: a signed flow cookie remembers them, the provider signs the user
//     in and redirects to /.pomerium/callback on the authenticate host, which
//     checks the state, redeems the code, verifies the ID token and its
//     nonce, and sets the authenticate session.
//  3. With an authenticate session, the authenticate host redirects to
//     /.pomerium/callback on the route host with a handoff token (a JWT
//     sealed as a JWE), for that route's origin only (scheme, host and port,
//     checked against the policy by Guard), valid 60 seconds, usable once (spent even
//     when the rest of its checks fail), and carrying the commitment of step
//     1, which the route host checks against the secret in the browser's
//     binding cookie. Never a session token: the route host mints its own
//     `_pomerium` session (aud = itself) from the handoff and sends the
//     browser back to the page.
//
// A second route host repeats 1 and 3 only: no second sign-in at the
// provider. When the route session expires, the same dance gives a new one
// silently, re-reading the identity from the provider (refresh token) when
// the authenticate session's identity is older than identityFreshFor.
// Without authenticate_service_url each host is its own authenticate host.
//
// Everything sign-in keeps lives in the browser, signed or sealed with keys
// derived from the shared secret (tokens.go, go-jose JWS and JWE), so any
// replica can continue a sign-in another began; only the handoff ledger,
// which keeps handoffs single-use, and the ended authenticate sessions are
// state, in the store replicas share (Store). The pages around it
// (internal/web) implement Pages: how to answer, and how to set a session.
package signin

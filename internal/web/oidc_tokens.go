package web

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// The sign-in machinery keeps its state in the browser, in values only this
// sidecar (and its replicas, which share the secret) can make:
//
//   - the flow cookie (state, nonce, PKCE verifier, where to go back), and the
//     authenticate session (the identity the provider verified) are signed:
//     JSON, then HMAC-SHA256 over a purpose label, the cookie name and the
//     JSON, with a key derived from the shared secret;
//   - the refresh token inside the authenticate session, and the handoff
//     token, are sealed with AES-256-GCM (key derived from the shared
//     secret): authenticated like the signed values, and unreadable, so that
//     neither the provider's refresh token nor an identity shows in a cookie
//     dump or, for the handoff, in an access log line with the query string;
//   - the binding that ties a handoff to the browser that started the
//     sign-in is a random secret kept in a cookie on the route host; only a
//     keyed commitment to it (HMAC over the route's origin and the secret)
//     travels through the authenticate host and back in the handoff.
//
// Each key is derived under a label of its own, so a value made for one
// purpose never verifies as another, nor as a session token.

// keys derived from the shared secret.
type oidcKeys struct {
	flow, auth, refresh, handoff, binding []byte
}

func deriveKeys(secret string) oidcKeys {
	return oidcKeys{
		flow:    deriveKey(secret, "oidc-flow-cookie"),
		auth:    deriveKey(secret, "authenticate-session"),
		refresh: deriveKey(secret, "refresh-token-aead"),
		handoff: deriveKey(secret, "handoff-aead"),
		binding: deriveKey(secret, "signin-binding"),
	}
}

// deriveKey is HMAC-SHA256 keyed with the shared secret over a label: 32
// bytes of key that reveal nothing about the secret or each other.
func deriveKey(secret, label string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("extauthz/web/" + label + "/v1"))
	return m.Sum(nil)
}

var b64 = base64.RawURLEncoding

// sign returns JSON of v, base64url, "." and its MAC.
func sign(key []byte, purpose string, v any) (string, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	body := b64.EncodeToString(payload)
	return body + "." + b64.EncodeToString(mac(key, purpose, body)), nil
}

// verifySigned checks a value made by sign for purpose and decodes it into v.
func verifySigned(key []byte, purpose, value string, v any) bool {
	body, sig, ok := strings.Cut(value, ".")
	if !ok || len(value) > 8<<10 {
		return false
	}
	got, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(got, mac(key, purpose, body)) {
		return false
	}
	payload, err := b64.DecodeString(body)
	if err != nil {
		return false
	}
	return json.Unmarshal(payload, v) == nil
}

func mac(key []byte, purpose, body string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(body))
	return m.Sum(nil)
}

// seal encrypts and authenticates plaintext with AES-256-GCM; aad binds it to
// its purpose (and whatever else the caller adds).
func seal(key []byte, aad string, plaintext []byte) (string, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return b64.EncodeToString(aead.Seal(nonce, nonce, plaintext, []byte(aad))), nil
}

// open reverses seal; false when the value was not sealed with key and aad.
func open(key []byte, aad, value string) ([]byte, bool) {
	if len(value) > 8<<10 {
		return nil, false
	}
	raw, err := b64.DecodeString(value)
	if err != nil {
		return nil, false
	}
	aead, err := newAEAD(key)
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, false
	}
	out, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(aad))
	if err != nil {
		return nil, false
	}
	return out, true
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// randomID returns 32 random bytes, base64url: states, nonces, bindings.
func randomID() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return b64.EncodeToString(b[:]), nil
}

// cookieSuffix names a per-flow cookie after the start of a random id, so
// that sign-ins running in several tabs at once each keep their own cookie.
// Only base64url characters are accepted: the id comes from a query string.
func cookieSuffix(id string) (string, bool) {
	if len(id) < 16 || len(id) > 128 {
		return "", false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", false
		}
	}
	return id[:12], true
}

// flowCookie is what the authenticate host remembers, in a signed cookie,
// between sending the browser to the provider and the provider's answer.
type flowCookie struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	// Callback is the redirect_uri the code was requested for.
	Callback string `json:"c"`
	// Target is where to go after sign-in (absolute, already checked).
	Target string `json:"t"`
	// Binding is the route host's commitment to its binding secret, for the handoff.
	Binding string `json:"b,omitempty"`
	Expires int64  `json:"e"`
}

// authSession is the identity-provider session on the authenticate host: the
// identity the provider verified, kept in a signed cookie there.
type authSession struct {
	Host    string   `json:"h"` // the authenticate host it was made for
	Subject string   `json:"sub"`
	Email   string   `json:"email,omitempty"`
	Name    string   `json:"name,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	// Refreshed is when the identity was last read from the provider.
	Refreshed int64 `json:"ref"`
	IssuedAt  int64 `json:"iat"`
	Expires   int64 `json:"exp"`
	// RefreshToken is the provider's refresh token, sealed; "" when the
	// provider gave none (or it did not fit in the cookie).
	RefreshToken string `json:"rt,omitempty"`
}

// handoff carries an identity from the authenticate host to one route host,
// once, within handoffLifetime. It travels in the callback URL, sealed.
type handoff struct {
	ID        string   `json:"jti"`
	Issuer    string   `json:"iss"`
	Audience  string   `json:"aud"` // the route host's origin, scheme://host[:port]
	IssuedAt  int64    `json:"iat"`
	ExpiresAt int64    `json:"exp"`
	Subject   string   `json:"sub"`
	Email     string   `json:"email,omitempty"`
	Groups    []string `json:"groups,omitempty"`
	// Target is where the route host sends the browser (on that host).
	Target string `json:"rd"`
	// Binding is the commitment to the secret in the binding cookie the
	// route host set when it sent this browser to sign in: only the browser
	// holding that secret redeems it, so a handoff made for one browser
	// cannot sign in another (login CSRF), and a link's author, who never
	// sees the secret of someone else's browser, cannot choose it.
	Binding string `json:"bnd"`
}

const (
	purposeFlow    = "extauthz oidc flow"
	purposeAuth    = "extauthz authenticate session"
	aadRefresh     = "extauthz refresh token\x00"
	aadHandoff     = "extauthz handoff"
	maxCookieBytes = 4000 // name, value and attributes: browsers keep 4096
)

// bindingCommitment is what the route host at o sends to the authenticate
// host, and gets back in the handoff, for the binding secret it keeps in the
// browser: HMAC-SHA256 under a key of its own, over the origin and the
// secret, so it names neither and fits no other route host.
func (k oidcKeys) bindingCommitment(o origin, secret string) string {
	return b64.EncodeToString(mac(k.binding, "extauthz signin binding\x00"+o.String(), secret))
}

// cookieFits reports whether a cookie is small enough for every browser.
func cookieFits(c *http.Cookie) bool { return len(c.String()) <= maxCookieBytes }

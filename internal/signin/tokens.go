package signin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// The sign-in machinery keeps its state in the browser, in values only this
// sidecar (and its replicas, which share the secret) can make:
//
//   - the flow cookie (state, nonce, PKCE verifier, where to go back), and the
//     authenticate session (the identity the provider verified) are signed:
//     a compact JWS (HS256, go-jose) of their JSON;
//   - the refresh token inside the authenticate session, and the handoff
//     token (a JWT), are sealed: a compact JWE (dir, A256GCM, go-jose),
//     authenticated like the signed values and unreadable, so that
//     neither the provider's refresh token nor an identity shows in a cookie
//     dump or, for the handoff, in an access log line with the query string;
//   - the binding that ties a handoff to the browser that started the
//     sign-in is a random secret kept in a cookie on the route host; only a
//     keyed commitment to it (HMAC over the route's origin and the secret)
//     travels through the authenticate host and back in the handoff.
//
// Each key is derived from the shared secret under a label of its own, and
// each value's key from that under its purpose (with the cookie name, or the
// subject, where the value belongs to one), so a value made for one purpose
// never verifies as another, nor as a session token.

// keys derived from the shared secret.
type keys struct {
	flow, auth, refresh, handoff, binding []byte
}

func deriveKeys(secret string) keys {
	return keys{
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

// maxValue bounds what is parsed at all: cookies and query values are
// smaller than this.
const maxValue = 8 << 10

// subkey is key narrowed to one purpose.
func subkey(key []byte, purpose string) []byte { return mac(key, purpose, "") }

// signValue returns v as a compact JWS (HS256) under key for purpose.
func signValue(key []byte, purpose string, v any) (string, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: subkey(key, purpose)}, nil)
	if err != nil {
		return "", err
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// verifySigned checks a value made by signValue for purpose and decodes it into v.
func verifySigned(key []byte, purpose, value string, v any) bool {
	if len(value) > maxValue {
		return false
	}
	obj, err := jose.ParseSigned(value, []jose.SignatureAlgorithm{jose.HS256})
	if err != nil {
		return false
	}
	payload, err := obj.Verify(subkey(key, purpose))
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

// encrypter seals under key for purpose: direct A256GCM.
func encrypter(key []byte, purpose string) (jose.Encrypter, error) {
	return jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: jose.DIRECT, Key: subkey(key, purpose)}, nil)
}

// seal encrypts and authenticates plaintext as a compact JWE under key for purpose.
func seal(key []byte, purpose string, plaintext []byte) (string, error) {
	enc, err := encrypter(key, purpose)
	if err != nil {
		return "", err
	}
	obj, err := enc.Encrypt(plaintext)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

var (
	keyAlgorithms     = []jose.KeyAlgorithm{jose.DIRECT}
	contentAlgorithms = []jose.ContentEncryption{jose.A256GCM}
)

// open reverses seal; false when the value was not sealed with key for purpose.
func open(key []byte, purpose, value string) ([]byte, bool) {
	if len(value) > maxValue {
		return nil, false
	}
	obj, err := jose.ParseEncryptedCompact(value, keyAlgorithms, contentAlgorithms)
	if err != nil {
		return nil, false
	}
	out, err := obj.Decrypt(subkey(key, purpose))
	if err != nil {
		return nil, false
	}
	return out, true
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
// once, within handoffLifetime: a JWT (jti, iss, aud = the route host's
// origin scheme://host[:port], iat, exp) sealed as a JWE. It travels in the
// callback URL.
type handoff struct {
	josejwt.Claims
	Email  string   `json:"email,omitempty"`
	Groups []string `json:"groups,omitempty"`
	// Target is where the route host sends the browser (on that host).
	Target string `json:"rd"`
	// Binding is the commitment to the secret in the binding cookie the
	// route host set when it sent this browser to sign in: only the browser
	// holding that secret redeems it, so a handoff made for one browser
	// cannot sign in another (login CSRF), and a link's author, who never
	// sees the secret of someone else's browser, cannot choose it.
	Binding string `json:"bnd"`
}

// sealHandoff renders h as a sealed JWT.
func (k keys) sealHandoff(h *handoff) (string, error) {
	enc, err := encrypter(k.handoff, purposeHandoff)
	if err != nil {
		return "", err
	}
	return josejwt.Encrypted(enc).Claims(h).Serialize()
}

// openHandoff opens a sealed handoff; it checks no claim.
func (k keys) openHandoff(raw string) (*handoff, bool) {
	if len(raw) > maxValue {
		return nil, false
	}
	tok, err := josejwt.ParseEncrypted(raw, keyAlgorithms, contentAlgorithms)
	if err != nil {
		return nil, false
	}
	var h handoff
	if err := tok.Claims(subkey(k.handoff, purposeHandoff), &h); err != nil {
		return nil, false
	}
	return &h, true
}

// check applies the handoff's claims at now: issued by issuer for audience
// (josejwt.Expected, with handoffSkew for a replica whose clock is ahead),
// and alive: the expiry is exact (the skew never extends it), and a handoff
// claiming to live longer than handoffLifetime is refused.
func (h *handoff) check(issuer, audience string, now time.Time) error {
	err := h.ValidateWithLeeway(josejwt.Expected{Issuer: issuer, AnyAudience: josejwt.Audience{audience}, Time: now}, handoffSkew)
	if err != nil {
		return err
	}
	if h.Expiry == nil || h.IssuedAt == nil || !now.Before(h.Expiry.Time()) || h.Expiry.Time().Sub(h.IssuedAt.Time()) > handoffLifetime {
		return josejwt.ErrExpired
	}
	return nil
}

const (
	purposeFlow    = "extauthz oidc flow"
	purposeAuth    = "extauthz authenticate session"
	purposeRefresh = "extauthz refresh token\x00"
	purposeHandoff = "extauthz handoff"
	maxCookieBytes = 4000 // name, value and attributes: browsers keep 4096
	maxGroupLen    = 256  // a group longer than this is not kept, as the pages' forms refuse it
)

// MaxCookieValue bounds a session token kept in a browser cookie.
const MaxCookieValue = 3800

// bindingCommitment is what the route host at o sends to the authenticate
// host, and gets back in the handoff, for the binding secret it keeps in the
// browser: HMAC-SHA256 under a key of its own, over the origin and the
// secret, so it names neither and fits no other route host.
func (k keys) bindingCommitment(o origin, secret string) string {
	return b64.EncodeToString(mac(k.binding, "extauthz signin binding\x00"+o.String(), secret))
}

// cookieFits reports whether a cookie is small enough for every browser.
func cookieFits(c *http.Cookie) bool { return len(c.String()) <= maxCookieBytes }

// clip bounds what an unvalidated value contributes to a log entry.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"hash"
	"strings"
	"sync"
)

// The fast path of HS256 verification (issue 19). golang-jwt spends about 70
// allocations on a token: a header map, the signing input joined again, a
// new HMAC per key, the decoded segments. decodeFast does the same checks
// for the shape every minter here writes, with a handful, and hands anything
// else to golang-jwt, so what is accepted and which refusal is named do not
// change (FuzzDecodeFast holds the two paths to that).

// hs256Headers are the encoded JOSE headers the fast path accepts, byte for
// byte: golang-jwt's (and so Mint's and pomerium-cli's), the same with its
// members swapped, and alg alone. Each says alg HS256 and nothing else that
// golang-jwt would read; any other header, however equivalent, takes the
// golang-jwt path.
var hs256Headers = func() []string {
	var out []string
	for _, h := range []string{`{"alg":"HS256","typ":"JWT"}`, `{"typ":"JWT","alg":"HS256"}`, `{"alg":"HS256"}`} {
		out = append(out, base64.RawURLEncoding.EncodeToString([]byte(h)))
	}
	return out
}()

// strictB64 is golang-jwt's decoding under jwt.WithStrictDecoding.
var strictB64 = base64.RawURLEncoding.Strict()

// hs256SigLen is the encoded length of a 32-byte HMAC-SHA256.
var hs256SigLen = base64.RawURLEncoding.EncodedLen(sha256.Size)

// macPool hands out HMAC-SHA256 states for one key, so a verification does
// not build one (hmac.Reset returns it to the keyed start).
type macPool struct{ p sync.Pool }

type macState struct {
	h   hash.Hash
	in  []byte // the signing input, copied: hash.Hash takes bytes
	sum [sha256.Size]byte
}

func newMACPool(key []byte) *macPool {
	k := append([]byte(nil), key...)
	return &macPool{p: sync.Pool{New: func() any { return &macState{h: hmac.New(sha256.New, k)} }}}
}

// equal reports whether sig is the HMAC-SHA256 of input under the pool's
// key, in constant time.
func (m *macPool) equal(input string, sig []byte) bool {
	st := m.p.Get().(*macState)
	defer m.p.Put(st)
	st.h.Reset()
	st.in = append(st.in[:0], input...)
	st.h.Write(st.in)
	return hmac.Equal(st.h.Sum(st.sum[:0]), sig)
}

// decodeFast returns the claims of token when it has three segments, one of
// hs256Headers, a signature that is the HMAC-SHA256 of its signing input
// under one of the verifier's secrets, and claims json.Unmarshal reads, all
// in strict base64url: exactly the tokens golang-jwt's ParseWithClaims
// accepts with that header. ok is false for everything else, a forged
// signature included, and the caller then asks golang-jwt, which names the
// refusal as it always has.
func (v *Verifier) decodeFast(token string) (claims *Claims, ok bool) {
	header, rest, found := strings.Cut(token, ".")
	if !found {
		return nil, false
	}
	payload, sigSeg, found := strings.Cut(rest, ".")
	if !found || strings.IndexByte(sigSeg, '.') >= 0 {
		return nil, false
	}
	known := false
	for _, h := range hs256Headers {
		known = known || header == h
	}
	if !known || len(sigSeg) != hs256SigLen {
		return nil, false
	}
	var sig [sha256.Size]byte
	if n, err := strictB64.Decode(sig[:], []byte(sigSeg)); err != nil || n != sha256.Size {
		return nil, false
	}
	input := token[:len(header)+1+len(payload)]
	signed := false
	for _, m := range v.macs {
		if m.equal(input, sig[:]) {
			signed = true
			break
		}
	}
	if !signed {
		return nil, false
	}
	raw, err := strictB64.DecodeString(payload)
	if err != nil {
		return nil, false
	}
	claims = new(Claims)
	if err := json.Unmarshal(raw, claims); err != nil {
		return nil, false
	}
	return claims, true
}

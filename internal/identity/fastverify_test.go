package identity_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/identity"
)

// fuzzHeaders are JOSE headers the fast path must take (the first three) or
// leave to golang-jwt (the rest).
var fuzzHeaders = []string{
	`{"alg":"HS256","typ":"JWT"}`, `{"typ":"JWT","alg":"HS256"}`, `{"alg":"HS256"}`,
	`{"alg":"HS512","typ":"JWT"}`, `{"alg":"none"}`, `{"alg":"HS256","typ":"JWT","kid":"1"}`,
	`{"ALG":"HS256"}`, `{"alg":"HS256","alg":"none"}`, `{"alg":"RS256"}`, `null`, ``,
}

const fastHeaders = 3

func seg(s []byte) string { return base64.RawURLEncoding.EncodeToString(s) }

// macToken signs header.payload with key's text, as Mint does.
func macToken(header string, payload []byte, key string) string {
	input := seg([]byte(header)) + "." + seg(payload)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(input))
	return input + "." + seg(m.Sum(nil))
}

// FuzzDecodeFast holds the fast HS256 path to golang-jwt's: it accepts only
// tokens golang-jwt accepts, with equal claims, and it does accept every
// token of a known header that golang-jwt accepts with a plain signature
// segment (else the fast path would silently stop being used). Tokens are
// built from fuzzed claims, each header and each key (configured, old, not
// configured), or taken raw.
func FuzzDecodeFast(f *testing.F) {
	for _, p := range []string{
		`{"exp":1800003600,"email":"a@corp.example","aud":["app.example.com"],"groups":["g"]}`,
		`{"exp":1.8e9,"aud":"app.example.com","iat":"1","nbf":null}`,
		`{"EXP":1800003600,"Email":"x","email":"y","impersonate_exp":5}`,
		`null`, `[]`, `{"exp":1e400}`, `{"aud":[1]}`, `{}`, ``, `{"exp":1800003600}trailing`,
	} {
		for h := range fuzzHeaders {
			f.Add([]byte(p), uint8(h), uint8(0), "")
		}
		f.Add([]byte(p), uint8(0), uint8(1), "")
		f.Add([]byte(p), uint8(0), uint8(2), "")
	}
	valid := macToken(fuzzHeaders[0], []byte(`{"exp":1800003600}`), secret)
	for _, raw := range []string{valid, valid + ".", valid + "\n", strings.Replace(valid, ".", "..", 1),
		valid[:len(valid)-1] + "B", "a.b.c", "..", "", valid[:len(valid)-1]} {
		f.Add([]byte(nil), uint8(0), uint8(3), raw)
	}
	v := newVerifier(f, identity.VerifierOptions{Secrets: []string{secret, oldSecret}, Leeway: time.Minute})

	f.Fuzz(func(t *testing.T, payload []byte, header, mode uint8, raw string) {
		token, known := raw, false
		if mode%4 != 3 {
			h := int(header) % len(fuzzHeaders)
			token = macToken(fuzzHeaders[h], payload, []string{secret, oldSecret, otherSecret}[mode%4])
			known = h < fastHeaders
		}
		fast, ok := v.DecodeFast(token)
		slow, err := v.DecodeJWT(token)
		switch {
		case ok && err != nil:
			t.Fatalf("the fast path accepted %q, which golang-jwt refuses: %v", token, err)
		case ok && !reflect.DeepEqual(fast, slow):
			t.Fatalf("the paths decode %q differently:\nfast %+v\njwt  %+v", token, fast, slow)
		case !ok && fast != nil:
			t.Fatalf("the fast path returned claims for a token it refused: %q", token)
		case !ok && err == nil && known:
			t.Fatalf("golang-jwt accepts %q with a header the fast path knows, but the fast path does not", token)
		}
	})
}

func TestVerifierCachesFromSecondSighting(t *testing.T) {
	tok := hs256(t, baseClaims())
	for _, tc := range []struct {
		name     string
		verifies int
		want     int
	}{
		{"a token verified once is not remembered", 1, 0},
		{"a token verified twice is", 2, 1},
		{"and stays one entry", 5, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, identity.VerifierOptions{Secrets: []string{secret}, Leeway: time.Minute})
			for range tc.verifies {
				if _, err := v.Verify(tok, testHost, now); err != nil {
					t.Fatal(err)
				}
			}
			if got := v.CachedTokens(); got != tc.want {
				t.Fatalf("%d tokens cached after %d verifications, want %d", got, tc.verifies, tc.want)
			}
		})
	}
}

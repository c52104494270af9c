package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// SigningKey is an EC P-256 key that signs upstream assertions, with the key
// id published in the JWKS.
type SigningKey struct {
	Private *ecdsa.PrivateKey
	ID      string
}

// ParseSigningKey reads the config's signing_key: base64 of a PEM holding an
// EC P-256 private key, SEC 1 ("EC PRIVATE KEY") or PKCS #8 ("PRIVATE KEY").
// A raw PEM (not base64) is accepted too, since operators paste either.
func ParseSigningKey(value string) (*SigningKey, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, errors.New("signing key is empty")
	}
	pemBytes := []byte(value)
	if !strings.HasPrefix(value, "-----BEGIN") {
		decoded, err := base64.StdEncoding.DecodeString(value)
		if err != nil {
			return nil, fmt.Errorf("signing key is not base64: %w", err)
		}
		pemBytes = decoded
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("signing key is not a PEM block")
	}
	var key *ecdsa.PrivateKey
	switch block.Type {
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("signing key: parsing SEC 1 EC key: %w", err)
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("signing key: parsing PKCS #8 key: %w", err)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("signing key is a %T, want an EC P-256 key", k)
		}
		key = ec
	default:
		return nil, fmt.Errorf("signing key PEM block is %q, want \"EC PRIVATE KEY\" or \"PRIVATE KEY\"", block.Type)
	}
	if key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("signing key uses curve %s, want P-256", key.Curve.Params().Name)
	}
	return NewSigningKey(key)
}

// GenerateSigningKey makes a fresh P-256 key.
func GenerateSigningKey() (*SigningKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating signing key: %w", err)
	}
	return NewSigningKey(k)
}

// NewSigningKey wraps a P-256 key, deriving its key id as the RFC 7638 JWK
// thumbprint, so the same key always has the same kid across restarts.
func NewSigningKey(k *ecdsa.PrivateKey) (*SigningKey, error) {
	jwk, err := publicJWK(&k.PublicKey, "")
	if err != nil {
		return nil, err
	}
	canonical := `{"crv":"P-256","kty":"EC","x":"` + jwk.X + `","y":"` + jwk.Y + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return &SigningKey{Private: k, ID: base64.RawURLEncoding.EncodeToString(sum[:])}, nil
}

// EncodeSigningKey renders a key as the config expects it: base64 of a SEC 1 PEM.
func EncodeSigningKey(k *SigningKey) (string, error) {
	der, err := x509.MarshalECPrivateKey(k.Private)
	if err != nil {
		return "", fmt.Errorf("encoding signing key: %w", err)
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	return base64.StdEncoding.EncodeToString(p), nil
}

// JWK is one public key of a JSON Web Key Set (RFC 7517).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

func publicJWK(pub *ecdsa.PublicKey, kid string) (JWK, error) {
	raw, err := pub.Bytes() // 0x04 || X || Y, 32 bytes each
	if err != nil {
		return JWK{}, fmt.Errorf("encoding public key: %w", err)
	}
	if len(raw) != 65 {
		return JWK{}, errors.New("public key is not P-256")
	}
	return JWK{
		Kty: "EC", Crv: "P-256", Use: "sig", Alg: "ES256", Kid: kid,
		X: base64.RawURLEncoding.EncodeToString(raw[1:33]),
		Y: base64.RawURLEncoding.EncodeToString(raw[33:]),
	}, nil
}

// MarshalJWKS renders the public halves of keys, current key first.
func MarshalJWKS(keys ...*SigningKey) ([]byte, error) {
	set := JWKS{Keys: make([]JWK, 0, len(keys))}
	for _, k := range keys {
		jwk, err := publicJWK(&k.Private.PublicKey, k.ID)
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, jwk)
	}
	return json.Marshal(set)
}

// PublicKeyFromJWK rebuilds an ECDSA public key from a JWK; tests and the
// upstream-side verification use it.
func PublicKeyFromJWK(j JWK) (*ecdsa.PublicKey, error) {
	if j.Kty != "EC" || j.Crv != "P-256" {
		return nil, fmt.Errorf("jwk %q is %s/%s, want EC/P-256", j.Kid, j.Kty, j.Crv)
	}
	x, err := base64.RawURLEncoding.DecodeString(j.X)
	if err != nil || len(x) != 32 {
		return nil, fmt.Errorf("jwk %q: bad x", j.Kid)
	}
	y, err := base64.RawURLEncoding.DecodeString(j.Y)
	if err != nil || len(y) != 32 {
		return nil, fmt.Errorf("jwk %q: bad y", j.Kid)
	}
	raw := append(append([]byte{4}, x...), y...)
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
}

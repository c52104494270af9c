package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
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
	sum, err := (&jose.JSONWebKey{Key: &k.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing key thumbprint: %w", err)
	}
	return &SigningKey{Private: k, ID: base64.RawURLEncoding.EncodeToString(sum)}, nil
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

// MarshalJWKS renders the public halves of keys as a JSON Web Key Set
// (RFC 7517), current key first: EC P-256 keys for ES256 signatures.
func MarshalJWKS(keys ...*SigningKey) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.Private.PublicKey, KeyID: k.ID, Use: "sig", Algorithm: "ES256"})
	}
	return json.Marshal(set)
}

// Package requestid picks the id that ties a request's answer, its logs and
// Envoy's access log together: Envoy's x-request-id when it is a sane token,
// else a fresh random one. The id ends up in HTML pages and logs, so anything
// that could carry markup or split a log line is replaced, never echoed.
package requestid

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// MaxLength bounds an accepted id; Envoy's UUIDs are 36 characters.
const MaxLength = 128

// Pick returns the first valid candidate, or a new id when none is.
func Pick(candidates ...string) string {
	for _, id := range candidates {
		if Valid(id) {
			return id
		}
	}
	return New()
}

// New returns a fresh random id.
func New() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Sprintf("t%d", time.Now().UnixNano())
	}
	return hex.EncodeToString(b[:])
}

// Valid reports whether id is non-empty, at most MaxLength long, and made only
// of letters, digits and - _ . :
func Valid(id string) bool {
	if id == "" || len(id) > MaxLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

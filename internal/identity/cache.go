package identity

import (
	"strings"

	"github.com/extauthz/extauthz/internal/shardcache"
)

// tokenCache remembers verified tokens (shardcache: keyed by a seeded
// 128-bit hash). A hit is confirmed by comparing the token's signature
// segment, which a forger cannot produce without the key. A token is
// cached from its second verification on (shardcache.Doorkeeper), so a
// stream of new sessions does not churn out the ones in use.
type tokenCache struct {
	c    *shardcache.Cache[tokenEntry]
	door *shardcache.Doorkeeper
}

type tokenEntry struct {
	sig    string
	claims *Claims
}

func newTokenCache(size int) *tokenCache {
	return &tokenCache{c: shardcache.New[tokenEntry](size), door: shardcache.NewDoorkeeper(2 * size)}
}

func signature(token string) string {
	if i := strings.LastIndexByte(token, '.'); i >= 0 {
		return token[i+1:]
	}
	return ""
}

func (c *tokenCache) get(token string) (*Claims, bool) {
	e, ok := c.c.Get(c.c.StringKey(token))
	if !ok || e.sig != signature(token) || e.sig == "" {
		return nil, false
	}
	return e.claims, true
}

func (c *tokenCache) put(token string, claims *Claims) {
	k := c.c.StringKey(token)
	if !c.door.Admit(k) {
		return
	}
	// Keep only a copy of the signature, not a slice pinning the whole token.
	c.c.Put(k, tokenEntry{sig: strings.Clone(signature(token)), claims: claims})
}

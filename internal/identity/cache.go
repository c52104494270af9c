package identity

import (
	"hash/maphash"
	"strings"
	"sync"
)

// tokenCache remembers verified tokens. Keys are a 128-bit hash under random
// per-process seeds, so a client cannot steer collisions, and a hit is
// confirmed by comparing the token's signature segment, which a forger cannot
// produce without the key.
type tokenCache struct {
	seed1, seed2 maphash.Seed
	perShard     int
	shards       [tokenCacheShards]tokenShard
}

const tokenCacheShards = 32

type tokenShard struct {
	mu sync.RWMutex
	m  map[[2]uint64]tokenEntry
}

type tokenEntry struct {
	sig    string
	claims *Claims
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed(), perShard: size/tokenCacheShards + 1}
	for i := range c.shards {
		c.shards[i].m = make(map[[2]uint64]tokenEntry)
	}
	return c
}

func (c *tokenCache) key(token string) [2]uint64 {
	return [2]uint64{maphash.String(c.seed1, token), maphash.String(c.seed2, token)}
}

func signature(token string) string {
	if i := strings.LastIndexByte(token, '.'); i >= 0 {
		return token[i+1:]
	}
	return ""
}

func (c *tokenCache) get(token string) (*Claims, bool) {
	k := c.key(token)
	sh := &c.shards[k[0]%tokenCacheShards]
	sh.mu.RLock()
	e, ok := sh.m[k]
	sh.mu.RUnlock()
	if !ok || e.sig != signature(token) || e.sig == "" {
		return nil, false
	}
	return e.claims, true
}

// put remembers claims; when the shard is full an arbitrary entry goes (map
// iteration order is random), which keeps the bound without bookkeeping.
func (c *tokenCache) put(token string, claims *Claims) {
	k := c.key(token)
	sh := &c.shards[k[0]%tokenCacheShards]
	// Keep only a copy of the signature, not a slice pinning the whole token.
	sig := strings.Clone(signature(token))
	sh.mu.Lock()
	if len(sh.m) >= c.perShard {
		for victim := range sh.m {
			delete(sh.m, victim)
			break
		}
	}
	sh.m[k] = tokenEntry{sig: sig, claims: claims}
	sh.mu.Unlock()
}

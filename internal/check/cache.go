package check

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/extauthz/extauthz/internal/identity"
)

// AssertionCache keeps signed assertions per (token, route, host, identity)
// so ES256 signing, the most expensive step of a Check, runs once per session
// and route instead of once per request.
//
// An entry is reused only during the first half of its lifetime: an upstream
// then always receives an assertion valid for at least AssertionLifetime/2
// (2.5 minutes), ample for the hop from Envoy plus clock skew, while a busy
// session signs at most one assertion per route every 2.5 minutes.
type AssertionCache struct {
	seed1, seed2 maphash.Seed
	shards       [cacheShards]cacheShard
	perShard     int
}

const cacheShards = 64

type cacheKey [2]uint64

type cacheEntry struct {
	jws       string
	reuseTill time.Time
}

type cacheShard struct {
	mu sync.Mutex
	m  map[cacheKey]cacheEntry
}

// NewAssertionCache holds at most about max entries.
func NewAssertionCache(max int) *AssertionCache {
	c := &AssertionCache{seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed(), perShard: max/cacheShards + 1}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]cacheEntry)
	}
	return c
}

// Get returns a fresh assertion for a, signing one with key when none is cached.
// The key is a 128-bit keyed hash: collisions cannot be steered by a client,
// since the seeds are random per process.
func (c *AssertionCache) Get(key *identity.SigningKey, token, route string, a identity.Assertion, now time.Time) (string, error) {
	k := c.key(token, route, a)
	sh := &c.shards[k[0]%cacheShards]
	sh.mu.Lock()
	e, ok := sh.m[k]
	sh.mu.Unlock()
	if ok && now.Before(e.reuseTill) {
		return e.jws, nil
	}
	exp, err := a.Expiry(now)
	if err != nil {
		return "", err
	}
	jws, err := key.Sign(a, now)
	if err != nil {
		return "", err
	}
	// Reuse for half the remaining validity: an entry is never served at or
	// after its exp, which is never after the session's or the impersonation's end.
	reuse := now.Add(exp.Sub(now) / 2)
	sh.mu.Lock()
	if len(sh.m) >= c.perShard {
		for victim := range sh.m { // maps iterate in random order: a cheap random eviction
			delete(sh.m, victim)
			break
		}
	}
	sh.m[k] = cacheEntry{jws: jws, reuseTill: reuse}
	sh.mu.Unlock()
	return jws, nil
}

// Len is the number of cached assertions.
func (c *AssertionCache) Len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += len(c.shards[i].m)
		c.shards[i].mu.Unlock()
	}
	return n
}

func (c *AssertionCache) key(token, route string, a identity.Assertion) cacheKey {
	var k cacheKey
	for i, seed := range []maphash.Seed{c.seed1, c.seed2} {
		var h maphash.Hash
		h.SetSeed(seed)
		h.WriteString(token)
		h.WriteByte(0)
		h.WriteString(route)
		h.WriteByte(0)
		h.WriteString(a.Audience)
		h.WriteByte(0)
		// The identity follows from the token except when an impersonation
		// ends; keying on it keeps an ended impersonation's assertion from
		// being served.
		h.WriteString(a.Identity.Email)
		if a.Actor != nil {
			h.WriteByte(1)
		}
		k[i] = h.Sum64()
	}
	return k
}

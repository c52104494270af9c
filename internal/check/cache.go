package check

import (
	"time"

	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/shardcache"
)

// AssertionCache keeps signed assertions per (token, route, host, identity)
// so ES256 signing, the most expensive step of a Check, runs once per session
// and route instead of once per request.
//
// An entry is reused only during the first half of its lifetime: an upstream
// then always receives an assertion valid for at least AssertionLifetime/2
// (2.5 minutes), ample for the hop from Envoy plus clock skew, while a busy
// session signs at most one assertion per route every 2.5 minutes.
//
// An assertion is cached from its second signing on (shardcache.Doorkeeper):
// when sessions are all new, as in a flood of sign-ins or more sessions than
// the cache holds, caching each first one only evicts the assertions in use.
type AssertionCache struct {
	c    *shardcache.Cache[cacheEntry]
	door *shardcache.Doorkeeper
}

type cacheEntry struct {
	jws       string
	reuseTill time.Time
}

// NewAssertionCache holds at most about max entries.
func NewAssertionCache(max int) *AssertionCache {
	return &AssertionCache{c: shardcache.New[cacheEntry](max), door: shardcache.NewDoorkeeper(2 * max)}
}

// Get returns a fresh assertion for a, signing one with key when none is cached.
// The key is a 128-bit keyed hash: collisions cannot be steered by a client,
// since the seeds are random per process.
func (c *AssertionCache) Get(key *identity.SigningKey, token, route string, a identity.Assertion, now time.Time) (string, error) {
	jws, _, err := c.get(key, token, route, a, now)
	return jws, err
}

// get is Get, also saying until when the assertion it returns would be
// returned again: from then on Get signs a fresh one.
func (c *AssertionCache) get(key *identity.SigningKey, token, route string, a identity.Assertion, now time.Time) (string, time.Time, error) {
	// The identity follows from the token except when an impersonation
	// ends; keying on it keeps an ended impersonation's assertion from
	// being served.
	var k shardcache.Key
	if a.Actor != nil {
		k = c.c.Key(token, route, a.Audience, a.Identity.Email, "act")
	} else {
		k = c.c.Key(token, route, a.Audience, a.Identity.Email)
	}
	if e, ok := c.c.Get(k); ok && now.Before(e.reuseTill) {
		return e.jws, e.reuseTill, nil
	}
	exp, err := a.Expiry(now)
	if err != nil {
		return "", time.Time{}, err
	}
	jws, err := key.Sign(a, now)
	if err != nil {
		return "", time.Time{}, err
	}
	reuseTill := reuseUntil(now, exp)
	// Reuse for half the remaining validity: an entry is never served at or
	// after its exp, which is never after the session's or the impersonation's end.
	if c.door.Admit(k) {
		c.c.Put(k, cacheEntry{jws: jws, reuseTill: reuseTill})
	}
	return jws, reuseTill, nil
}

// reuseUntil is when an assertion signed at now, expiring at exp, stops
// being reused: half its validity from now.
func reuseUntil(now, exp time.Time) time.Time { return now.Add(exp.Sub(now) / 2) }

// Len is the number of cached assertions.
func (c *AssertionCache) Len() int { return c.c.Len() }

// Package shardcache is the bounded cache of the Check path (verified
// tokens, signed assertions): a map split into shards, each behind its own
// lock, so concurrent Checks rarely wait on each other.
//
// Keys are 128-bit hashes under two random per-process seeds, so a client
// cannot steer collisions; callers that must be sure confirm a hit against
// the value. When a shard is full an arbitrary entry goes (map iteration
// order is random), which keeps the bound without bookkeeping.
package shardcache

import (
	"hash/maphash"
	"sync"
)

const shards = 64

// Key is a 128-bit keyed hash; build it with Cache.Key.
type Key [2]uint64

// Cache maps keys to values of type V, holding about size entries at most.
// The zero value is not usable; see New.
type Cache[V any] struct {
	seeds    [2]maphash.Seed
	perShard int
	shards   [shards]shard[V]
}

type shard[V any] struct {
	mu sync.RWMutex
	m  map[Key]V
}

// New returns a cache of at most about size entries.
func New[V any](size int) *Cache[V] {
	c := &Cache[V]{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, perShard: size/shards + 1}
	for i := range c.shards {
		c.shards[i].m = make(map[Key]V)
	}
	return c
}

// Key hashes parts, each ended by a NUL (so ("ab", "") and ("a", "b")
// differ), once under each seed.
func (c *Cache[V]) Key(parts ...string) Key {
	var k Key
	for i, seed := range c.seeds {
		var h maphash.Hash
		h.SetSeed(seed)
		for _, p := range parts {
			h.WriteString(p)
			h.WriteByte(0)
		}
		k[i] = h.Sum64()
	}
	return k
}

// StringKey is the key of one string.
func (c *Cache[V]) StringKey(s string) Key {
	return Key{maphash.String(c.seeds[0], s), maphash.String(c.seeds[1], s)}
}

// Get returns the value under k.
func (c *Cache[V]) Get(k Key) (V, bool) {
	sh := &c.shards[k[0]%shards]
	sh.mu.RLock()
	v, ok := sh.m[k]
	sh.mu.RUnlock()
	return v, ok
}

// Put sets the value under k, evicting an arbitrary entry of a full shard.
func (c *Cache[V]) Put(k Key, v V) {
	sh := &c.shards[k[0]%shards]
	sh.mu.Lock()
	if _, ok := sh.m[k]; !ok && len(sh.m) >= c.perShard {
		for victim := range sh.m {
			delete(sh.m, victim)
			break
		}
	}
	sh.m[k] = v
	sh.mu.Unlock()
}

// Len is the number of entries.
func (c *Cache[V]) Len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += len(c.shards[i].m)
		c.shards[i].mu.RUnlock()
	}
	return n
}

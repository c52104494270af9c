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
	Hasher
	perShard int
	shards   [shards]shard[V]
}

// Hasher makes keys: two random seeds, so 128 bits that a client cannot
// steer. It is not generic, so hashing costs nothing for being in a Cache.
type Hasher struct{ seeds [2]maphash.Seed }

type shard[V any] struct {
	mu sync.RWMutex
	m  map[Key]V
}

// New returns a cache of at most about size entries.
func New[V any](size int) *Cache[V] {
	c := &Cache[V]{Hasher: Hasher{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}, perShard: size/shards + 1}
	for i := range c.shards {
		c.shards[i].m = make(map[Key]V)
	}
	return c
}

// Key hashes parts, separated by a NUL (so ("ab", "") and ("a", "b")
// differ), once under each seed.
func (h *Hasher) Key(parts ...string) Key {
	return Key{h.sum(h.seeds[0], parts), h.sum(h.seeds[1], parts)}
}

func (h *Hasher) sum(seed maphash.Seed, parts []string) uint64 {
	var m maphash.Hash
	m.SetSeed(seed)
	for i, p := range parts {
		if i > 0 {
			m.WriteByte(0)
		}
		m.WriteString(p)
	}
	return m.Sum64()
}

// StringKey is the key of one string.
func (h *Hasher) StringKey(s string) Key {
	return Key{maphash.String(h.seeds[0], s), maphash.String(h.seeds[1], s)}
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

package shardcache

import "sync/atomic"

// Doorkeeper lets a cache admit a key on its second sighting only (issue
// 19). When every key is new, as in a flood of fresh sessions or more
// sessions than the cache holds seen in rotation, caching first sightings
// buys nothing: each insert evicts an entry that might have been hit, and
// keeps a value alive for the garbage collector to mark, only for it to be
// evicted unread. A key seen twice within the doorkeeper's memory is cached
// as before, one miss later.
//
// It is a direct-mapped table of fingerprints: a slot remembers the last key
// that landed in it, so a key is forgotten after about len(slots) other
// first sightings. Safe for concurrent use; a lost race costs one more miss.
type Doorkeeper struct {
	slots []atomic.Uint64
	mask  uint64
}

// NewDoorkeeper remembers about size first sightings (rounded up to a power
// of two): 8 bytes each.
func NewDoorkeeper(size int) *Doorkeeper {
	n := 1
	for n < size {
		n <<= 1
	}
	return &Doorkeeper{slots: make([]atomic.Uint64, n), mask: uint64(n - 1)}
}

// Admit reports whether k was sighted before and is still remembered; when
// it was not, it remembers k and reports false.
func (d *Doorkeeper) Admit(k Key) bool {
	slot := &d.slots[k[0]&d.mask]
	fp := k[1] | 1 // never 0, which is an empty slot
	if slot.Load() == fp {
		return true
	}
	slot.Store(fp)
	return false
}

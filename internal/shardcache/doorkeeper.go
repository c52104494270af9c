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
// It is a Bloom filter (TinyLFU's doorkeeper): a sighting sets probes bits,
// and a key whose bits are all set was sighted before. Colliding keys can
// only admit a first sighting early (about 3% of them when full), never
// keep a key out. It used to be a table of one fingerprint a slot, where
// two keys sharing a slot and seen in turn overwrote each other forever:
// with 1000 sessions in rotation about 5% were never cached, and each of
// their requests paid an ES256 signature. After size first sightings it
// forgets everything and starts again, so old keys cannot fill it up.
// Safe for concurrent use; a lost race costs one more miss.
type Doorkeeper struct {
	words []atomic.Uint64
	mask  uint64 // of bit positions
	size  int64
	seen  atomic.Int64 // first sightings since the last reset
}

const (
	// bitsPerKey and probes give a false admission rate of about 3% at
	// size keys: (1 - e^(-probes/bitsPerKey))^probes.
	bitsPerKey = 8
	probes     = 3
)

// NewDoorkeeper remembers size first sightings: 1 byte each, rounded up to
// a power of two.
func NewDoorkeeper(size int) *Doorkeeper {
	size = max(size, 1)
	bits := 64
	for bits < size*bitsPerKey {
		bits <<= 1
	}
	return &Doorkeeper{words: make([]atomic.Uint64, bits/64), mask: uint64(bits - 1), size: int64(size)}
}

// Admit reports whether k was sighted before and is still remembered; when
// it was not, it remembers k and reports false.
func (d *Doorkeeper) Admit(k Key) bool {
	// Double hashing: the key's two independent hashes give every probe.
	h, step := k[0], k[1]|1
	seen := true
	for range probes {
		bit := h & d.mask
		w, b := &d.words[bit/64], uint64(1)<<(bit%64)
		if w.Load()&b == 0 {
			seen = false
			w.Or(b)
		}
		h += step
	}
	if !seen && d.seen.Add(1) >= d.size {
		d.reset()
	}
	return seen
}

// reset forgets every sighting.
func (d *Doorkeeper) reset() {
	d.seen.Store(0)
	for i := range d.words {
		d.words[i].Store(0)
	}
}

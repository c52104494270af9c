package store

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Memory is the Backend of a single replica: today's behaviour, and the
// default. Nothing in it is seen by another process. Everything it holds
// expires: revocations after their TTL, handoff records after their
// handoff, issue counts after a minute.
type Memory struct {
	now func() time.Time

	mu      sync.Mutex
	version uint64
	revs    map[string]Revocation // kind/id -> revocation
	log     []logEntry            // revocations in the order recorded
	changed chan struct{}

	issued  map[string]*issueWindow // user -> handoffs given in the current minute
	windows []*issueWindow          // the same windows, oldest first
	used    map[string]time.Time    // handoff id -> kept until
	expiry  expiryHeap              // the ids of used, soonest first
}

type logEntry struct {
	version uint64
	key     string
}

type issueWindow struct {
	user  string
	start time.Time
	n     int
}

// memoryEpoch names the only Memory a process follows: it never restarts.
const memoryEpoch = "memory"

// NewMemory returns an empty Memory reading the time from now (nil: time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{
		now: now, revs: map[string]Revocation{}, changed: make(chan struct{}, 1),
		issued: map[string]*issueWindow{}, used: map[string]time.Time{},
	}
}

func revocationKey(r Revocation) string { return string(r.Kind) + "/" + r.ID }

// Revoke records r.
func (m *Memory) Revoke(_ context.Context, r Revocation) error {
	if err := r.check(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := revocationKey(r)
	if cur, ok := m.revs[k]; ok {
		r.At, r.Expires = later(r.At, cur.At), later(r.Expires, cur.Expires)
	}
	m.revs[k] = r
	m.version++
	m.log = append(m.log, logEntry{m.version, k})
	select {
	case m.changed <- struct{}{}:
	default:
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Load returns every revocation not yet expired.
func (m *Memory) Load(_ context.Context) (Position, []Revocation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Revocation, 0, len(m.revs))
	for _, r := range m.revs {
		out = append(out, r)
	}
	return Position{memoryEpoch, m.version}, out, nil
}

// Since returns what was recorded after pos.
func (m *Memory) Since(_ context.Context, pos Position) (Position, []Revocation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pos.Epoch != memoryEpoch || pos.Version > m.version {
		return Position{}, nil, ErrStale
	}
	var out []Revocation
	for i := len(m.log) - 1; i >= 0 && m.log[i].version > pos.Version; i-- {
		if r, ok := m.revs[m.log[i].key]; ok {
			out = append(out, r)
		}
	}
	if len(m.log) > 0 && m.log[0].version > pos.Version+1 {
		// The log was swept past pos: some changes are gone from it.
		return Position{}, nil, ErrStale
	}
	return Position{memoryEpoch, m.version}, out, nil
}

// Changed receives after each Revoke.
func (m *Memory) Changed() <-chan struct{} { return m.changed }

// Sweep forgets expired revocations and trims the change log to one entry
// per live revocation.
func (m *Memory) Sweep(_ context.Context, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, r := range m.revs {
		if !r.Expires.After(now) {
			delete(m.revs, k)
		}
	}
	// Keep the last entry of each live revocation, in order.
	seen := make(map[string]bool, len(m.revs))
	kept := make([]logEntry, 0, len(m.revs))
	for i := len(m.log) - 1; i >= 0; i-- {
		e := m.log[i]
		if _, ok := m.revs[e.key]; ok && !seen[e.key] {
			seen[e.key] = true
			kept = append(kept, e)
		}
	}
	slices.Reverse(kept)
	m.log = kept
	return nil
}

// Issue counts a handoff given to user, HandoffsPerUserPerMinute at most.
func (m *Memory) Issue(_ context.Context, user string) error {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireHandoffs(now)
	w := m.issued[user]
	if w == nil || !now.Before(w.start.Add(time.Minute)) {
		w = &issueWindow{user: user, start: now}
		m.issued[user] = w
		m.windows = append(m.windows, w)
	}
	if w.n >= HandoffsPerUserPerMinute {
		return ErrHandoffRateLimited
	}
	w.n++
	return nil
}

// Use records id as redeemed until exp; ErrHandoffUsed if it was before.
func (m *Memory) Use(_ context.Context, id string, exp time.Time) error {
	now := m.now()
	if exp.After(now.Add(MaxHandoffRecord)) {
		// Never a handoff this sidecar made: refuse rather than keep it long.
		return fmt.Errorf("handoff kept until %v, more than %v from now", exp, MaxHandoffRecord)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireHandoffs(now)
	if _, ok := m.used[id]; ok {
		return ErrHandoffUsed
	}
	if !now.Before(exp) {
		return nil // already expired: nothing to remember, the caller refuses it
	}
	m.used[id] = exp
	heap.Push(&m.expiry, usedID{id: id, exp: exp})
	return nil
}

// expireHandoffs forgets used ids whose handoffs can no longer be redeemed
// and issue windows that are over. m.mu is held.
func (m *Memory) expireHandoffs(now time.Time) {
	for len(m.expiry) > 0 && !now.Before(m.expiry[0].exp) {
		delete(m.used, heap.Pop(&m.expiry).(usedID).id)
	}
	for len(m.windows) > 0 && !now.Before(m.windows[0].start.Add(time.Minute)) {
		w := m.windows[0]
		m.windows[0] = nil
		m.windows = m.windows[1:]
		if m.issued[w.user] == w {
			delete(m.issued, w.user)
		}
	}
}

// Shared is false: other processes see nothing of a Memory.
func (m *Memory) Shared() bool { return false }

// Describe names the backend.
func (m *Memory) Describe() string { return "memory" }

// Close does nothing.
func (m *Memory) Close() error { return nil }

// size is how many records m holds (tests check they stay bounded).
func (m *Memory) size() (revocations, log, issued, used int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.revs), len(m.log), len(m.issued), len(m.used)
}

type usedID struct {
	id  string
	exp time.Time
}

type expiryHeap []usedID

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].exp.Before(h[j].exp) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(usedID)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

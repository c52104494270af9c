package signin

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// HandoffLedger keeps sign-in handoffs single-use without a shared limit
// that one signed-in user could exhaust for everyone: what it stores grows
// with each user's own sign-ins, which it bounds per user, and each entry
// lives only as long as its handoff. The memory ledger serves one replica; a
// shared store implements the same two calls when replicas must agree.
type HandoffLedger interface {
	// Issue counts a handoff the authenticate host is about to give user
	// (the provider's subject). It fails with ErrHandoffRateLimited when
	// that user has had HandoffsPerUserPerMinute in the last minute; it
	// never refuses one user because of another.
	Issue(ctx context.Context, user string) error
	// Use records a handoff id as redeemed until exp. It fails with
	// ErrHandoffUsed when the id was redeemed before; any other error means
	// the id cannot be proven unused, and the handoff must be refused.
	Use(ctx context.Context, id string, exp time.Time) error
}

// HandoffsPerUserPerMinute bounds the handoffs one user is given: one per
// route host signed in to, so a person never comes near it.
const HandoffsPerUserPerMinute = 60

// maxHandoffRecord bounds how long the ledger keeps an id: a handoff lives
// 60 s, plus the clock skew tolerated on each side.
const maxHandoffRecord = handoffLifetime + 2*handoffSkew

var (
	// ErrHandoffUsed: the handoff was redeemed before.
	ErrHandoffUsed = errors.New("sign-in handoff already used")
	// ErrHandoffRateLimited: the user was given too many handoffs in the last minute.
	ErrHandoffRateLimited = errors.New("too many sign-in handoffs for this user in the last minute")
)

// memoryLedger is the HandoffLedger of a single replica. Memory is at most
// HandoffsPerUserPerMinute issue records per user who signed in within the
// last minute, and one used-id record per handoff redeemed within the last
// few minutes: both expire, and both are bounded by each user's own rate.
type memoryLedger struct {
	now func() time.Time

	mu      sync.Mutex
	issued  map[string]*issueWindow // user -> handoffs given in the current minute
	windows []*issueWindow          // the same windows, oldest first
	used    map[string]time.Time    // id -> kept until
	expiry  expiryHeap              // the ids of used, soonest first
}

type issueWindow struct {
	user  string
	start time.Time
	n     int
}

// NewMemoryHandoffLedger returns a HandoffLedger in memory, reading the time
// from now.
func NewMemoryHandoffLedger(now func() time.Time) HandoffLedger {
	return &memoryLedger{now: now, issued: map[string]*issueWindow{}, used: map[string]time.Time{}}
}

func (l *memoryLedger) Issue(_ context.Context, user string) error {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	w := l.issued[user]
	if w == nil || !now.Before(w.start.Add(time.Minute)) {
		w = &issueWindow{user: user, start: now}
		l.issued[user] = w
		l.windows = append(l.windows, w)
	}
	if w.n >= HandoffsPerUserPerMinute {
		return ErrHandoffRateLimited
	}
	w.n++
	return nil
}

func (l *memoryLedger) Use(_ context.Context, id string, exp time.Time) error {
	now := l.now()
	if exp.After(now.Add(maxHandoffRecord)) {
		// Never a handoff this sidecar made: refuse rather than keep it long.
		return fmt.Errorf("handoff kept until %v, more than %v from now", exp, maxHandoffRecord)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire(now)
	if _, ok := l.used[id]; ok {
		return ErrHandoffUsed
	}
	if !now.Before(exp) {
		return nil // already expired: nothing to remember, the caller refuses it
	}
	l.used[id] = exp
	heap.Push(&l.expiry, usedID{id: id, exp: exp})
	return nil
}

// expire forgets the ids whose handoffs can no longer be redeemed and the
// issue windows that are over. l.mu is held.
func (l *memoryLedger) expire(now time.Time) {
	for len(l.expiry) > 0 && !now.Before(l.expiry[0].exp) {
		delete(l.used, heap.Pop(&l.expiry).(usedID).id)
	}
	for len(l.windows) > 0 && !now.Before(l.windows[0].start.Add(time.Minute)) {
		w := l.windows[0]
		l.windows[0] = nil
		l.windows = l.windows[1:]
		if l.issued[w.user] == w {
			delete(l.issued, w.user)
		}
	}
}

// size is how many records the ledger holds (tests check it stays bounded).
func (l *memoryLedger) size() (issued, used int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.issued), len(l.used)
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

package store

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/extauthz/extauthz/internal/identity"
)

// tables are the revocations by kind. Values are unix seconds.
type tables struct {
	sid, jti, user, auth map[string]entry
}

type entry struct{ at, exp int64 }

func newTables(hint int) *tables {
	return &tables{sid: make(map[string]entry, hint), jti: map[string]entry{}, user: map[string]entry{}, auth: map[string]entry{}}
}

func (t *tables) size() int { return len(t.sid) + len(t.jti) + len(t.user) + len(t.auth) }

func (t *tables) of(k Kind) map[string]entry {
	switch k {
	case KindSID:
		return t.sid
	case KindJTI:
		return t.jti
	case KindUser:
		return t.user
	}
	return t.auth
}

// put adds e under k and id, keeping the later times of two entries.
func (t *tables) put(k Kind, id string, e entry) {
	m := t.of(k)
	if cur, ok := m[id]; ok {
		e.at, e.exp = max(e.at, cur.at), max(e.exp, cur.exp)
	}
	m[id] = e
}

// copyInto adds t's entries not expired by prune (unix seconds; 0: all) to dst.
func (t *tables) copyInto(dst *tables, prune int64) {
	for _, k := range []Kind{KindSID, KindJTI, KindUser, KindAuth} {
		for id, e := range t.of(k) {
			if e.exp > prune {
				dst.put(k, id, e)
			}
		}
	}
}

// viewSet is one immutable state of the view: a large base, rebuilt rarely,
// and a small overlay of recent revocations, copied on each change, so
// that a revocation costs a copy of the overlay, not of everything.
type viewSet struct {
	base, recent *tables
}

// maxRecent is the overlay size past which it is folded into the base.
const maxRecent = 1024

func (v *viewSet) size() int { return v.base.size() + v.recent.size() }

// lookup returns the entry of kind k for id, combining base and overlay.
func (v *viewSet) lookup(k Kind, id string) (entry, bool) {
	e1, ok1 := v.recent.of(k)[id]
	e2, ok2 := v.base.of(k)[id]
	switch {
	case ok1 && ok2:
		return entry{at: max(e1.at, e2.at), exp: max(e1.exp, e2.exp)}, true
	case ok1:
		return e1, true
	}
	return e2, ok2
}

// has reports whether id is revoked under kind k.
func (v *viewSet) has(k Kind, id string) bool {
	if _, ok := v.recent.of(k)[id]; ok {
		return true
	}
	_, ok := v.base.of(k)[id]
	return ok
}

func (v *viewSet) empty(k Kind) bool { return len(v.recent.of(k)) == 0 && len(v.base.of(k)) == 0 }

// View is every revocation a replica has seen and not yet expired. Reads
// take no lock: they load one immutable set through an atomic pointer;
// writers (the store's loop, a local Revoke) build the next set and swap it
// in. Revocations change rarely and Check runs constantly (see
// docs/store.md for the numbers that chose this over sync.Map).
type View struct {
	cur atomic.Pointer[viewSet]
	mu  sync.Mutex // serialises writers
	// onChange is Options.OnChange, called after each new set is stored.
	onChange func()
}

func (v *View) init() {
	v.cur.Store(&viewSet{base: newTables(0), recent: newTables(0)})
}

// Len is how many revocations the view holds.
func (v *View) Len() int { return v.cur.Load().size() }

// Revoked reports whether a token with these claims is revoked: its jti,
// its session id, or its holder issued at or before a revocation of the
// user. A token without iat is revoked by any revocation of its holder.
func (v *View) Revoked(c *identity.Claims) bool {
	s := v.cur.Load()
	if c.ID != "" && s.has(KindJTI, c.ID) {
		return true
	}
	if sid := c.SessionID(); sid != "" && s.has(KindSID, sid) {
		return true
	}
	if c.Email != "" && !s.empty(KindUser) {
		if e, ok := s.lookup(KindUser, identity.NormalizeEmail(c.Email)); ok {
			return c.IssuedAt == nil || c.IssuedAt.Unix() <= e.at
		}
	}
	return false
}

// AuthSessionEnded reports whether an authenticate session of the user with
// this email, issued at issuedAt, was ended: signed out, or its user revoked.
func (v *View) AuthSessionEnded(email string, issuedAt time.Time) bool {
	s := v.cur.Load()
	if s.empty(KindUser) && s.empty(KindAuth) {
		return false
	}
	email = identity.NormalizeEmail(email)
	for _, k := range []Kind{KindUser, KindAuth} {
		if e, ok := s.lookup(k, email); ok && issuedAt.Unix() <= e.at {
			return true
		}
	}
	return false
}

// add merges revs into the view. With a non-zero prune time it rebuilds the
// base without the entries expired by then; otherwise it copies only the
// overlay, folding it into the base once it is large. Of two revocations of
// one user, the later is kept: it ends more.
func (v *View) add(revs []Revocation, prune time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	old := v.cur.Load()
	fresh := revs[:0:0]
	for _, r := range revs {
		if !r.Kind.valid() || r.ID == "" || (!prune.IsZero() && !r.Expires.After(prune)) {
			continue
		}
		e, ok := old.lookup(r.Kind, r.ID)
		if !ok || r.At.Unix() > e.at || r.Expires.Unix() > e.exp {
			fresh = append(fresh, r)
		}
	}
	if prune.IsZero() && len(fresh) == 0 {
		return // nothing new: copy nothing
	}
	next := &viewSet{base: old.base, recent: newTables(old.recent.size() + len(fresh))}
	if !prune.IsZero() || old.recent.size()+len(fresh) > maxRecent {
		var cut int64
		if !prune.IsZero() {
			cut = prune.Unix()
		}
		next.base = newTables(old.size() + len(fresh))
		old.base.copyInto(next.base, cut)
		old.recent.copyInto(next.base, cut)
		next.recent = newTables(0)
		for _, r := range fresh {
			next.base.put(r.Kind, r.ID, entry{at: r.At.Unix(), exp: r.Expires.Unix()})
		}
	} else {
		old.recent.copyInto(next.recent, 0)
		for _, r := range fresh {
			next.recent.put(r.Kind, r.ID, entry{at: r.At.Unix(), exp: r.Expires.Unix()})
		}
	}
	v.cur.Store(next)
	if v.onChange != nil {
		v.onChange()
	}
}

// prune drops the entries that expired by now.
func (v *View) prune(now time.Time) { v.add(nil, now) }

// Open starts a Store on the backend databroker_storage_type names:
// "memory" (or "") or "redis" with its connection string. The caller
// closes it; serve should not report SERVING before Ready.
func Open(storageType, connectionString string, opt Options) (*Store, error) {
	switch storageType {
	case "", "memory":
		return New(NewMemory(opt.Now), opt), nil
	case "redis":
		b, err := NewRedis(connectionString, DefaultTimeouts, opt.Now)
		if err != nil {
			return nil, err
		}
		return New(b, opt), nil
	}
	return nil, fmt.Errorf("databroker_storage_type %q is not memory or redis", storageType)
}

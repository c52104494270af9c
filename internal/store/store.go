// Package store holds what the sidecar's replicas share (contract section 9):
// revocations by session id, token id or user, the end of a user's
// authenticate sessions, and the sign-in handoffs already redeemed.
//
// A Backend keeps them: Memory for one replica (the default), Redis for many.
// A Store puts a View in front of the backend: every revocation it has seen,
// in memory, which Check reads without locks and without waiting on the
// backend. The view follows the backend's change notifications, polls its
// change counter so that a lost notification costs at most PollInterval, and
// re-reads everything now and then. It only ever adds revocations (each is
// forgotten when it expires), so a backend that goes away, or comes back
// empty, never takes one back: the store fails closed.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/extauthz/extauthz/internal/identity"
)

// Kind is what a revocation names.
type Kind string

const (
	// KindSID ends a session: every token whose session id (its sid, else
	// its jti) is the revocation's ID.
	KindSID Kind = "sid"
	// KindJTI refuses the one token whose jti is the revocation's ID.
	KindJTI Kind = "jti"
	// KindUser refuses every token whose holder's email is the revocation's
	// ID and that was issued at or before At, and ends that user's
	// authenticate sessions issued by then, so that no new route session is
	// minted from them.
	KindUser Kind = "user"
	// KindAuth ends the authenticate sessions of the email in ID issued at or
	// before At (signing out), leaving the user's route sessions alone.
	KindAuth Kind = "auth"
)

// valid reports whether k is one of the kinds above.
func (k Kind) valid() bool {
	return k == KindSID || k == KindJTI || k == KindUser || k == KindAuth
}

// Revocation is one entry of the shared revocation list.
type Revocation struct {
	Kind Kind
	// ID is the sid or jti, or for KindUser and KindAuth the holder's email
	// (normalized with identity.NormalizeEmail).
	ID string
	// At is when it was recorded. For KindUser and KindAuth, what was issued
	// in that second or before is ended: token times have a resolution of
	// one second, and a token of the same second may predate the revocation.
	At time.Time
	// Expires is when the store forgets it: At plus revocation_ttl.
	Expires time.Time
}

// MaxIDLength bounds an id or email in a revocation: longer ones are no id
// this sidecar or pomerium-cli mints.
const MaxIDLength = 512

func (r Revocation) check() error {
	switch {
	case !r.Kind.valid():
		return fmt.Errorf("revocation kind %q is not sid, jti, user or auth", r.Kind)
	case r.ID == "":
		return fmt.Errorf("revocation of a %s names no id", r.Kind)
	case len(r.ID) > MaxIDLength:
		return fmt.Errorf("revocation id is %d bytes, more than %d", len(r.ID), MaxIDLength)
	case !r.Expires.After(r.At):
		return fmt.Errorf("revocation expires at %v, not after it was made (%v)", r.Expires, r.At)
	}
	return nil
}

// Position is how far a reader has followed the backend's changes: the
// backend's identity (a Redis that restarted empty is another one) and the
// number of its last change.
type Position struct {
	Epoch   string
	Version uint64
}

// Backend is one implementation of the shared state.
type Backend interface {
	// Revoke records r. An error means it is not recorded.
	Revoke(ctx context.Context, r Revocation) error
	// Load reads every revocation not yet expired, and the position of the
	// last change included.
	Load(ctx context.Context) (Position, []Revocation, error)
	// Since returns the revocations recorded after pos (some may be older
	// ones rewritten) and the new position. ErrStale means pos is not the
	// backend's any more: Load again.
	Since(ctx context.Context, pos Position) (Position, []Revocation, error)
	// Changed receives, best effort, after every change by anyone. Callers
	// must not rely on it alone: messages can be lost.
	Changed() <-chan struct{}
	// Sweep forgets the revocations that expired by now.
	Sweep(ctx context.Context, now time.Time) error

	// Issue and Use are the sign-in handoff ledger (see
	// HandoffsPerUserPerMinute, ErrHandoffRateLimited and ErrHandoffUsed),
	// with the method set of signin.HandoffLedger.
	Issue(ctx context.Context, user string) error
	Use(ctx context.Context, id string, exp time.Time) error

	// Shared reports whether other replicas see what this backend records.
	Shared() bool
	// Describe names the backend for logs, never with a password.
	Describe() string
	Close() error
}

var (
	// ErrStale: the position given to Since is not the backend's.
	ErrStale = errors.New("store: position is stale, read everything again")
	// ErrUnavailable wraps every failure to reach the backend.
	ErrUnavailable = errors.New("store unavailable")
	// ErrHandoffUsed: the handoff was redeemed before.
	ErrHandoffUsed = errors.New("sign-in handoff already used")
	// ErrHandoffRateLimited: the user was given too many handoffs in the last minute.
	ErrHandoffRateLimited = errors.New("too many sign-in handoffs for this user in the last minute")
)

// HandoffsPerUserPerMinute bounds the handoffs one user is given, on every
// replica together: one per route host signed in to, so a person never comes
// near it, and no one user fills the store for the others.
const HandoffsPerUserPerMinute = 60

// MaxHandoffRecord bounds how long a used handoff id is kept: a handoff lives
// 60 s, plus the clock skew tolerated on each side.
const MaxHandoffRecord = 3 * time.Minute

// DefaultTTL is revocation_ttl's default.
const DefaultTTL = 720 * time.Hour

// Options tune a Store; the zero value of each means its default.
type Options struct {
	// TTL is how long a revocation is kept (revocation_ttl, default 720h).
	TTL time.Duration
	// PollInterval is how often the change counter is read, which bounds
	// how late a replica that lost a notification learns a change, and how
	// soon an outage is noticed (default 500ms).
	PollInterval time.Duration
	// ResyncInterval is how often everything is read again (default 1m).
	ResyncInterval time.Duration
	// SweepInterval is how often expired entries are removed (default 1m).
	SweepInterval time.Duration
	// CallTimeout bounds each read of the backend (default 2s).
	CallTimeout time.Duration
	Logger      *zap.Logger
	Now         func() time.Time
	// OnChange, when set, is called after every change of the view (a
	// revocation seen, read in a resync or expired), once Revoked sees it:
	// whoever keeps decisions made with the view (the module's answer
	// cache) drops them.
	OnChange func()
}

func (o *Options) defaults() {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = time.Minute
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Minute
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Store is a Backend with a View of its revocations, kept current in the
// background. Check reads Revoked; pages call RevokeSID, RevokeUser,
// EndAuthSessions and the handoff ledger (Issue, Use); health reads Ready.
type Store struct {
	b   Backend
	opt Options
	View

	ready atomic.Bool
	up    atomic.Bool
	// Owned by the loop (run).
	downLogged bool
	pos        Position
	loaded     bool

	cancel context.CancelFunc
	done   chan struct{}
}

// New starts following b. Close stops it and closes b.
func New(b Backend, opt Options) *Store {
	opt.defaults()
	s := &Store{b: b, opt: opt, done: make(chan struct{})}
	s.View.init()
	s.View.onChange = opt.OnChange
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(ctx)
	return s
}

// Close stops following the backend and closes it.
func (s *Store) Close() error {
	s.cancel()
	<-s.done
	return s.b.Close()
}

// Backend is the store's backend.
func (s *Store) Backend() Backend { return s.b }

// Ready reports whether the store's revocations were read in full at least
// once: before that, a replica must not serve (it would allow tokens other
// replicas refuse).
func (s *Store) Ready() bool { return s.ready.Load() }

// Up reports whether the last call to the backend succeeded.
func (s *Store) Up() bool { return s.up.Load() }

// WaitReady waits until Ready or ctx ends.
func (s *Store) WaitReady(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !s.Ready() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the first full read of %s: %w", s.b.Describe(), ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Collector exports extauthz_store_up: 1 while the backend answers, 0 while
// it does not (revocations already seen stay in force meanwhile).
func (s *Store) Collector() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "extauthz_store_up",
		Help: "1 when the shared store (databroker_storage_type) answered its last call, 0 when it did not; revocations already seen stay in force either way.",
	}, func() float64 {
		if s.up.Load() {
			return 1
		}
		return 0
	})
}

// Revoke records r in the backend and, once recorded, in this replica's view
// at once. An error means other replicas may not know it.
func (s *Store) Revoke(ctx context.Context, r Revocation) error {
	if err := r.check(); err != nil {
		return err
	}
	if err := s.b.Revoke(ctx, r); err != nil {
		return err
	}
	s.View.add([]Revocation{r}, time.Time{})
	return nil
}

// NewRevocation is a revocation of kind and id made now, kept for ttl. Emails
// are normalized.
func NewRevocation(kind Kind, id string, now time.Time, ttl time.Duration) Revocation {
	if kind == KindUser || kind == KindAuth {
		id = identity.NormalizeEmail(id)
	}
	return Revocation{Kind: kind, ID: id, At: now, Expires: now.Add(ttl)}
}

// RevokeSID ends the session sid on every replica (signing out).
func (s *Store) RevokeSID(ctx context.Context, sid string) error {
	return s.Revoke(ctx, NewRevocation(KindSID, sid, s.opt.Now(), s.opt.TTL))
}

// RevokeUser ends every session of the user with this email, route and
// authenticate sessions alike, issued up to now ("sign out everywhere").
func (s *Store) RevokeUser(ctx context.Context, email string) error {
	return s.Revoke(ctx, NewRevocation(KindUser, email, s.opt.Now(), s.opt.TTL))
}

// EndAuthSessions ends the authenticate sessions of the user with this
// email issued up to now, so that none mints a new route session.
func (s *Store) EndAuthSessions(ctx context.Context, email string) error {
	return s.Revoke(ctx, NewRevocation(KindAuth, email, s.opt.Now(), s.opt.TTL))
}

// Issue counts a handoff given to user (see Backend).
func (s *Store) Issue(ctx context.Context, user string) error { return s.b.Issue(ctx, user) }

// Use records a handoff id as redeemed until exp (see Backend).
func (s *Store) Use(ctx context.Context, id string, exp time.Time) error {
	return s.b.Use(ctx, id, exp)
}

// run follows the backend until ctx ends.
func (s *Store) run(ctx context.Context) {
	defer close(s.done)
	changed := s.b.Changed()
	poll := time.NewTicker(s.opt.PollInterval)
	defer poll.Stop()
	resync := time.NewTicker(s.opt.ResyncInterval)
	defer resync.Stop()
	sweep := time.NewTicker(s.opt.SweepInterval)
	defer sweep.Stop()

	s.sync(ctx, true)
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changed:
			if !ok {
				changed = nil
				continue
			}
			s.sync(ctx, false)
		case <-poll.C:
			s.sync(ctx, false)
		case <-resync.C:
			s.sync(ctx, true)
		case <-sweep.C:
			now := s.opt.Now()
			cctx, cancel := context.WithTimeout(ctx, s.opt.CallTimeout)
			if err := s.b.Sweep(cctx, now); err != nil && ctx.Err() == nil {
				s.opt.Logger.Debug("store: removing expired revocations failed", zap.Error(err))
			}
			cancel()
			s.View.prune(now)
		}
	}
}

// sync brings the view up to date: everything (full, or when the position
// is unknown or stale), else the changes since the last position.
func (s *Store) sync(ctx context.Context, full bool) {
	cctx, cancel := context.WithTimeout(ctx, s.opt.CallTimeout)
	defer cancel()
	var (
		pos  Position
		revs []Revocation
		err  error
	)
	// After an outage, read everything: the backend may have restarted.
	if !full && s.loaded && s.up.Load() {
		pos, revs, err = s.b.Since(cctx, s.pos)
		if errors.Is(err, ErrStale) {
			s.opt.Logger.Info("store: its change log was replaced (restarted empty?); reading everything again",
				zap.String("store", s.b.Describe()))
			full = true
		}
	} else {
		full = true
	}
	if full {
		pos, revs, err = s.b.Load(cctx)
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		s.markDown(err)
		return
	}
	var prune time.Time
	if full {
		prune = s.opt.Now()
	}
	s.View.add(revs, prune)
	s.pos, s.loaded = pos, true
	s.markUp(full)
}

func (s *Store) markDown(err error) {
	s.up.Store(false)
	if s.downLogged {
		return
	}
	s.downLogged = true
	if s.ready.Load() {
		s.opt.Logger.Error("store unavailable: every revocation already seen stays in force, new revocations, sign-outs and sign-ins fail until it is back",
			zap.String("store", s.b.Describe()), zap.Error(err))
	} else {
		s.opt.Logger.Error("store unavailable before its first full read: not ready until it answers",
			zap.String("store", s.b.Describe()), zap.Error(err))
	}
}

func (s *Store) markUp(full bool) {
	if !s.up.Swap(true) && s.downLogged {
		s.downLogged = false
		s.opt.Logger.Info("store available again", zap.String("store", s.b.Describe()))
	}
	if full && !s.ready.Swap(true) {
		s.opt.Logger.Info("store read in full: ready", zap.String("store", s.b.Describe()),
			zap.Int("revocations", s.View.Len()))
	}
}

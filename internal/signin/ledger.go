package signin

import (
	"context"
	"time"

	"github.com/extauthz/extauthz/internal/store"
)

// Store is the state sign-in keeps outside the browser, shared by every
// replica (internal/store, memory or Redis): the handoff ledger, which keeps
// handoffs single-use without a shared limit one signed-in user could
// exhaust for everyone, and the authenticate sessions that were ended.
type Store interface {
	// Issue counts a handoff the authenticate host is about to give user
	// (the provider's subject). It fails with ErrHandoffRateLimited when
	// that user has had HandoffsPerUserPerMinute in the last minute; it
	// never refuses one user because of another.
	Issue(ctx context.Context, user string) error
	// Use records a handoff id as redeemed until exp. It fails with
	// ErrHandoffUsed when the id was redeemed before; any other error
	// (store.ErrUnavailable) means the id cannot be proven unused, and the
	// handoff must be refused.
	Use(ctx context.Context, id string, exp time.Time) error
	// AuthSessionEnded reports whether the authenticate session of this
	// email issued at issuedAt was ended (signed out, or its user signed
	// out everywhere); it reads memory only.
	AuthSessionEnded(email string, issuedAt time.Time) bool
}

// HandoffsPerUserPerMinute bounds the handoffs one user is given: one per
// route host signed in to, so a person never comes near it.
const HandoffsPerUserPerMinute = store.HandoffsPerUserPerMinute

var (
	// ErrHandoffUsed: the handoff was redeemed before.
	ErrHandoffUsed = store.ErrHandoffUsed
	// ErrHandoffRateLimited: the user was given too many handoffs in the last minute.
	ErrHandoffRateLimited = store.ErrHandoffRateLimited
)

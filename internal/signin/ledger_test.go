package signin

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestMemoryHandoffLedger(t *testing.T) {
	ctx := context.Background()
	start := time.Unix(1_000_000, 0)

	t.Run("an id is used once until its handoff expires, then forgotten", func(t *testing.T) {
		c := &fakeClock{t: start}
		l := NewMemoryHandoffLedger(c.now)
		exp := start.Add(handoffLifetime + handoffSkew)
		if err := l.Use(ctx, "a", exp); err != nil {
			t.Fatal(err)
		}
		c.t = exp.Add(-time.Second)
		if err := l.Use(ctx, "a", exp); !errors.Is(err, ErrHandoffUsed) {
			t.Errorf("reuse before expiry: %v, want ErrHandoffUsed", err)
		}
		c.t = exp
		l.Use(ctx, "b", exp.Add(time.Minute))
		if _, used := l.(*memoryLedger).size(); used != 1 {
			t.Errorf("%d ids kept after the first expired, want 1", used)
		}
	})
	t.Run("an id kept longer than any handoff lives is refused", func(t *testing.T) {
		c := &fakeClock{t: start}
		l := NewMemoryHandoffLedger(c.now)
		if err := l.Use(ctx, "a", start.Add(time.Hour)); err == nil || errors.Is(err, ErrHandoffUsed) {
			t.Errorf("Use with an hour to live: %v, want an error", err)
		}
	})
	t.Run("a user is given at most HandoffsPerUserPerMinute a minute, others are not affected", func(t *testing.T) {
		c := &fakeClock{t: start}
		l := NewMemoryHandoffLedger(c.now)
		for i := 0; i < HandoffsPerUserPerMinute; i++ {
			if err := l.Issue(ctx, "mallory"); err != nil {
				t.Fatalf("handoff %d: %v", i+1, err)
			}
		}
		if err := l.Issue(ctx, "mallory"); !errors.Is(err, ErrHandoffRateLimited) {
			t.Errorf("one more: %v, want ErrHandoffRateLimited", err)
		}
		if err := l.Issue(ctx, "bob"); err != nil {
			t.Errorf("another user: %v", err)
		}
		c.t = start.Add(time.Minute)
		if err := l.Issue(ctx, "mallory"); err != nil {
			t.Errorf("a minute later: %v", err)
		}
	})
	// The old used-handoff set held at most 65,536 ids, then answered 503 to
	// every sign-in until they expired: one user minting and redeeming
	// handoffs in a loop locked everyone out.
	t.Run("one user minting and redeeming far more than the old cap does not stop another user, and memory stays bounded", func(t *testing.T) {
		c := &fakeClock{t: start}
		l := NewMemoryHandoffLedger(c.now).(*memoryLedger)
		redeemed, maxIssued, maxUsed := 0, 0, 0
		for i := 0; i < 300_000; i++ {
			if i%1000 == 0 {
				c.t = c.t.Add(time.Second) // a thousand tries a second
			}
			if err := l.Issue(ctx, "mallory"); err != nil {
				if !errors.Is(err, ErrHandoffRateLimited) {
					t.Fatal(err)
				}
				continue
			}
			id := fmt.Sprintf("h%d", i)
			if err := l.Use(ctx, id, c.t.Add(handoffLifetime+handoffSkew)); err != nil {
				t.Fatalf("redeeming %s: %v", id, err)
			}
			redeemed++
			issued, used := l.size()
			maxIssued, maxUsed = max(maxIssued, issued), max(maxUsed, used)
		}
		if err := l.Issue(ctx, "bob"); err != nil {
			t.Fatalf("bob's handoff after mallory's %d tries: %v", 300_000, err)
		}
		if err := l.Use(ctx, "bob's", c.t.Add(handoffLifetime)); err != nil {
			t.Fatalf("bob's redemption: %v", err)
		}
		// 300 s of trying: mallory got 60 a minute, each kept 2 minutes.
		if redeemed != 5*HandoffsPerUserPerMinute {
			t.Errorf("mallory redeemed %d, want %d", redeemed, 5*HandoffsPerUserPerMinute)
		}
		if maxUsed > 3*HandoffsPerUserPerMinute || maxIssued > 1 {
			t.Errorf("the ledger grew to %d used ids and %d users, want at most %d and 1", maxUsed, maxIssued, 3*HandoffsPerUserPerMinute)
		}
	})
	t.Run("many users each signing in once are forgotten after a minute", func(t *testing.T) {
		c := &fakeClock{t: start}
		l := NewMemoryHandoffLedger(c.now).(*memoryLedger)
		for i := 0; i < 10_000; i++ {
			if err := l.Issue(ctx, fmt.Sprintf("user%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		c.t = c.t.Add(3 * time.Minute)
		for i := 0; i < 100; i++ {
			if err := l.Issue(ctx, fmt.Sprintf("later%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if issued, _ := l.size(); issued != 100 {
			t.Errorf("%d users remembered, want the 100 of the last minute", issued)
		}
	})
	t.Run("there is no global cap: far more handoffs in flight than the old set held are all recorded, then forgotten", func(t *testing.T) {
		c := &fakeClock{t: start}
		l := NewMemoryHandoffLedger(c.now).(*memoryLedger)
		exp := start.Add(handoffLifetime + handoffSkew)
		for i := 0; i < 100_000; i++ {
			if err := l.Use(ctx, fmt.Sprintf("h%d", i), exp); err != nil {
				t.Fatalf("handoff %d: %v", i, err)
			}
		}
		if err := l.Use(ctx, "h5", exp); !errors.Is(err, ErrHandoffUsed) {
			t.Errorf("a replay among them: %v, want ErrHandoffUsed", err)
		}
		c.t = exp
		if err := l.Use(ctx, "next", exp.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, used := l.size(); used != 1 {
			t.Errorf("%d ids kept after they expired, want 1", used)
		}
	})
}

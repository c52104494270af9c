package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestMemoryForgetsExpiredRevocations(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(nil)
	for i := range 100 {
		if err := m.Revoke(ctx, NewRevocation(KindSID, fmt.Sprint("s", i), t0, time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := m.Revoke(ctx, NewRevocation(KindSID, "again", t0, time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Revoke(ctx, NewRevocation(KindJTI, "long", t0, 3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	t.Run("revoking the same id again keeps one change in the log", func(t *testing.T) {
		if err := m.Sweep(ctx, t0); err != nil {
			t.Fatal(err)
		}
		if revs, log, _, _ := m.size(); revs != 102 || log != 102 {
			t.Errorf("%d revocations, %d log entries, want 102 and 102", revs, log)
		}
	})
	t.Run("after the ttl only the longer revocation is left", func(t *testing.T) {
		if err := m.Sweep(ctx, t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		_, revs, _ := m.Load(ctx)
		if len(revs) != 1 || revs[0].ID != "long" {
			t.Errorf("left: %v", revs)
		}
		if _, log, _, _ := m.size(); log != 1 {
			t.Errorf("%d log entries left, want 1", log)
		}
	})
	t.Run("a reader whose position was swept past reads everything again", func(t *testing.T) {
		if _, _, err := m.Since(ctx, Position{Epoch: memoryEpoch, Version: 5}); !errors.Is(err, ErrStale) {
			t.Errorf("Since = %v, want ErrStale", err)
		}
	})
}

func TestMemoryHandoffLedger(t *testing.T) {
	ctx := context.Background()
	now := t0
	m := NewMemory(func() time.Time { return now })
	t.Run("a handoff is redeemed once", func(t *testing.T) {
		if err := m.Use(ctx, "h1", now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := m.Use(ctx, "h1", now.Add(time.Minute)); !errors.Is(err, ErrHandoffUsed) {
			t.Errorf("second Use = %v, want ErrHandoffUsed", err)
		}
	})
	t.Run("a handoff kept implausibly long is refused", func(t *testing.T) {
		if err := m.Use(ctx, "h2", now.Add(time.Hour)); err == nil {
			t.Error("accepted")
		}
	})
	t.Run("one user is bounded per minute, others are not", func(t *testing.T) {
		for range HandoffsPerUserPerMinute {
			if err := m.Issue(ctx, "mallory"); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Issue(ctx, "mallory"); !errors.Is(err, ErrHandoffRateLimited) {
			t.Errorf("Issue past the bound = %v, want ErrHandoffRateLimited", err)
		}
		if err := m.Issue(ctx, "alice"); err != nil {
			t.Errorf("another user refused: %v", err)
		}
		now = now.Add(time.Minute)
		if err := m.Issue(ctx, "mallory"); err != nil {
			t.Errorf("refused in the next minute: %v", err)
		}
	})
	t.Run("records expire with their handoffs", func(t *testing.T) {
		now = now.Add(5 * time.Minute)
		_ = m.Issue(ctx, "zed")
		if _, _, issued, used := m.size(); issued != 1 || used != 0 {
			t.Errorf("%d issue windows and %d used ids kept, want 1 and 0", issued, used)
		}
	})
}

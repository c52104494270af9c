package web

import (
	"errors"
	"testing"
	"time"
)

// A reload that keeps the identity provider keeps its client (and so its
// discovery cache); one that changes it builds a new client.
func TestReloadKeepsProviderClient(t *testing.T) {
	set := &Settings{Secret: "a shared secret of sufficient length, 32+", IdpProviderURL: "http://127.0.0.1:1", IdpClientID: "c"}
	s := New(set, nil)
	first := s.state.Load().oidc.client
	same := *set
	s.Swap(&same)
	if s.state.Load().oidc.client != first {
		t.Error("an unchanged provider got a new client on reload")
	}
	changed := *set
	changed.IdpClientID = "other"
	s.Swap(&changed)
	if s.state.Load().oidc.client == first {
		t.Error("a changed provider kept the old client")
	}
	none := *set
	none.IdpProviderURL = ""
	s.Swap(&none)
	if s.state.Load().oidc != nil {
		t.Error("no provider, yet the identity-provider sign-in is on")
	}
}

func TestUsedIDs(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	u := newUsedIDs(2)
	if err := u.use("a", now.Add(time.Minute), now); err != nil {
		t.Fatal(err)
	}
	if err := u.use("a", now.Add(time.Minute), now); !errors.Is(err, errReplayed) {
		t.Errorf("reuse: %v", err)
	}
	if err := u.use("b", now.Add(time.Minute), now); err != nil {
		t.Fatal(err)
	}
	// Full of live ids: fail closed rather than forget one.
	if err := u.use("c", now.Add(time.Minute), now); !errors.Is(err, errFull) {
		t.Errorf("full set: %v", err)
	}
	if err := u.use("a", now.Add(time.Minute), now.Add(30*time.Second)); !errors.Is(err, errReplayed) {
		t.Errorf("a live id was forgotten: %v", err)
	}
	// Expired ids make room.
	later := now.Add(2 * time.Minute)
	if err := u.use("c", later.Add(time.Minute), later); err != nil {
		t.Errorf("after expiry: %v", err)
	}
}

func TestSealedAndSignedValues(t *testing.T) {
	k := deriveKeys("secret one, long enough to be a secret")
	other := deriveKeys("secret two, long enough to be a secret")
	v, err := seal(k.handoff, aadHandoff, []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := open(k.handoff, aadHandoff, v); !ok || string(got) != "payload" {
		t.Fatalf("open: %q %v", got, ok)
	}
	for name, try := range map[string]func() bool{
		"other key":     func() bool { _, ok := open(other.handoff, aadHandoff, v); return ok },
		"other purpose": func() bool { _, ok := open(k.handoff, aadRefresh, v); return ok },
		"refresh key":   func() bool { _, ok := open(k.refresh, aadHandoff, v); return ok },
		"truncated":     func() bool { _, ok := open(k.handoff, aadHandoff, v[:len(v)-1]); return ok },
	} {
		if try() {
			t.Errorf("a sealed value opened with %s", name)
		}
	}
	s, err := sign(k.auth, purposeAuth, authSession{Subject: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	var as authSession
	if !verifySigned(k.auth, purposeAuth, s, &as) || as.Subject != "bob" {
		t.Fatal("a signed value does not verify")
	}
	if verifySigned(k.flow, purposeAuth, s, &as) || verifySigned(k.auth, purposeFlow, s, &as) || verifySigned(other.auth, purposeAuth, s, &as) {
		t.Error("a signed value verifies under another key or purpose")
	}
	if verifySigned(k.auth, purposeAuth, "x"+s, &as) {
		t.Error("an altered value verifies")
	}
}

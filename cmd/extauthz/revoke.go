package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/store"
)

// revokeTimeout bounds how long revoke waits for the store.
const revokeTimeout = 5 * time.Second

// revoke records one revocation in the configured shared store, where every
// replica picks it up within a second (contract section 9).
func revoke(e *env, args []string) error {
	fs := newFlagSet(e, "revoke")
	path := fs.String("config", "", "config file naming the store (required)")
	// One flag per kind of revocation; exactly one is given.
	ids := []struct {
		kind        store.Kind
		name, usage string
		value       *string
	}{
		{kind: store.KindSID, name: "sid", usage: "end this session (a token's sid, or its jti when it has none)"},
		{kind: store.KindJTI, name: "jti", usage: "refuse the one token with this jti"},
		{kind: store.KindUser, name: "email", usage: "sign this user out everywhere: every token and sign-in issued to them until now"},
	}
	for i := range ids {
		ids[i].value = fs.String(ids[i].name, "", ids[i].usage)
	}
	if err := parseOnlyFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return usagef("--config is required.")
	}
	var kind store.Kind
	var id string
	given := 0
	for _, f := range ids {
		if v := strings.TrimSpace(*f.value); v != "" {
			kind, id = f.kind, v
			given++
		}
	}
	switch {
	case given == 0:
		return usagef("give one of --sid, --jti or --email.")
	case given > 1:
		return usagef("give only one of --sid, --jti or --email.")
	case len(id) > store.MaxIDLength:
		return usagef("the id is %d bytes long; no token id is longer than %d.", len(id), store.MaxIDLength)
	case strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r == 0x7f }):
		return usagef("the id contains spaces or control characters.")
	case kind == store.KindUser && (strings.Count(id, "@") != 1 || strings.HasPrefix(id, "@") || strings.HasSuffix(id, "@")):
		return usagef("--email must be an email address, got %q.", id)
	}

	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return errReported
	}
	if !cfg.SharedStore() {
		return errors.New("the memory store lives inside each running sidecar, so there is nothing to record a revocation in: list the token's jti or sid in revoked_token_ids and reload, or set databroker_storage_type: redis.")
	}
	b, err := store.NewRedis(cfg.DatabrokerStorageConnectionString, store.DefaultTimeouts, nil)
	if err != nil {
		return err // validated by Load: not expected
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
	defer cancel()
	r := store.NewRevocation(kind, id, time.Now(), cfg.RevocationTTLOrDefault())
	if err := b.Revoke(ctx, r); err != nil {
		return fmt.Errorf("cannot reach the store at %s (%v), so nothing was revoked: try again once it answers.", b.Describe(), innermost(err))
	}
	what := map[store.Kind]string{store.KindSID: "session", store.KindJTI: "token", store.KindUser: "every session of"}[kind]
	fmt.Fprintf(e.stdout, "revoked %s %s in %s until %s\n", what, r.ID, b.Describe(), r.Expires.UTC().Format(time.RFC3339))
	return nil
}

// innermost is the deepest error err wraps (the network's own words).
func innermost(err error) error {
	for {
		var next error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs := j.Unwrap()
			next = errs[len(errs)-1]
		} else {
			next = errors.Unwrap(err)
		}
		if next == nil {
			return err
		}
		err = next
	}
}

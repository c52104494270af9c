package reload_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/reload"
	"github.com/extauthz/extauthz/internal/testkit"
)

var (
	bobClaims   = identity.Claims{Email: "bob@corp.example", User: "bob", Groups: []string{"engineering"}}
	carolClaims = identity.Claims{Email: "carol@corp.example", User: "carol", Groups: []string{"ops"}}
)

func TestAValidConfigIsSwappedInWithoutRestart(t *testing.T) {
	s := newStack(t, spec{Gen: "A"})
	bob := mint(t, secretA, bobClaims)
	if got := s.check(request(appHost, "/", bearer(bob))); got.status != 200 || got.gen != "A" {
		t.Fatalf("before the reload: %v, want allow gen A", got)
	}
	if err := s.apply(spec{Gen: "B", AppGroups: []string{"ops"}}); err != nil {
		t.Fatalf("reload: %v", err)
	}
	got := s.check(request(appHost, "/", bearer(bob)))
	if got.status != 403 || !strings.Contains(got.reason, "gen-b-marker") {
		t.Errorf("after the reload bob gets %v, want 403 from config B", got)
	}
	carol := mint(t, secretA, carolClaims)
	if got := s.check(request(appHost, "/", bearer(carol))); got.status != 200 || got.gen != "B" {
		t.Errorf("after the reload carol gets %v, want allow gen B", got)
	}
	if s.reloads("ok") != 1 || s.reloads("failed") != 0 {
		t.Errorf("reloads ok=%v failed=%v, want 1 and 0", s.reloads("ok"), s.reloads("failed"))
	}
	if n := s.logs.FilterMessage("config reloaded").Len(); n != 1 {
		t.Errorf("%d 'config reloaded' log entries, want 1", n)
	}
}

func TestAnInvalidConfigIsRefusedAndTheOldOneKeepsServing(t *testing.T) {
	s := newStack(t, spec{Gen: "A"})
	bob := mint(t, secretA, bobClaims)
	broken := spec{Gen: "B", Extra: "cookie_expire: forever\nadministratros: [x@y]\n"}.render()
	s.write(broken)
	err := s.reloader.Reload("SIGHUP")
	var ps config.Problems
	if !errors.As(err, &ps) || len(ps) < 2 {
		t.Fatalf("Reload returned %v, want config.Problems with both problems", err)
	}
	if got := s.check(request(appHost, "/", bearer(bob))); got.status != 200 || got.gen != "A" {
		t.Errorf("after a refused reload: %v, want allow gen A (the old config)", got)
	}
	if s.reloads("failed") != 1 || s.reloads("ok") != 0 {
		t.Errorf("reloads failed=%v ok=%v, want 1 and 0", s.reloads("failed"), s.reloads("ok"))
	}
	if v := counterValue(t, s.metrics, "extauthz_config_last_reload_successful", nil); v != 0 {
		t.Errorf("extauthz_config_last_reload_successful = %v, want 0", v)
	}

	entries := s.logs.FilterMessage("config reload refused; the previous config keeps serving").All()
	if len(entries) != 1 {
		t.Fatalf("%d refusal log entries, want 1", len(entries))
	}
	e := entries[0]
	if e.Level != zapcore.ErrorLevel {
		t.Errorf("refusal logged at %v, want error", e.Level)
	}
	fields := e.ContextMap()
	if fields["trigger"] != "SIGHUP" || fields["problem_count"] != int64(len(ps)) {
		t.Errorf("refusal fields = %v", fields)
	}
	problems, _ := fields["problems"].([]any)
	if len(problems) != len(ps) {
		t.Fatalf("logged problems = %#v, want %d located problems", fields["problems"], len(ps))
	}
	keys := map[string]bool{}
	for _, p := range problems {
		m := p.(map[string]any)
		if m["file"] != s.path || m["line"] == nil || m["message"] == "" {
			t.Errorf("problem %v lacks its location", m)
		}
		keys[m["key"].(string)] = true
	}
	if !keys["cookie_expire"] || !keys["administratros"] {
		t.Errorf("logged problem keys = %v, want cookie_expire and administratros", keys)
	}

	// The file fixed, the next reload applies it.
	if err := s.apply(spec{Gen: "B"}); err != nil {
		t.Fatal(err)
	}
	if got := s.check(request(appHost, "/", bearer(bob))); got.gen != "B" {
		t.Errorf("after the fix: %v, want gen B", got)
	}
	if v := counterValue(t, s.metrics, "extauthz_config_last_reload_successful", nil); v != 1 {
		t.Errorf("extauthz_config_last_reload_successful = %v, want 1", v)
	}
}

func TestAnUnreadableOrEmptyConfigIsRefused(t *testing.T) {
	s := newStack(t, spec{Gen: "A"})
	bob := mint(t, secretA, bobClaims)
	for name, content := range map[string]string{
		"an empty file":        "",
		"a YAML syntax error":  "shared_secret: [unclosed\n",
		"a top-level list":     "- a\n- b\n",
		"binary garbage":       "\x00\xff\xfe\x01",
		"a config over 4 MiB":  "# " + strings.Repeat("x", config.MaxSize) + "\n",
		"a secret that is bad": spec{Gen: "B", Secret: "c2hvcnQ="}.render(),
	} {
		t.Run(name+" is refused", func(t *testing.T) {
			s.write(content)
			if err := s.reloader.Reload("test"); err == nil {
				t.Fatal("Reload accepted it")
			}
			if got := s.check(request(appHost, "/", bearer(bob))); got.status != 200 || got.gen != "A" {
				t.Errorf("%v, want allow gen A", got)
			}
		})
	}
	t.Run("a missing file is refused", func(t *testing.T) {
		if err := os.Remove(s.path); err != nil {
			t.Fatal(err)
		}
		if err := s.reloader.Reload("test"); err == nil {
			t.Fatal("Reload accepted a missing file")
		}
		if got := s.check(request(appHost, "/", bearer(bob))); got.gen != "A" {
			t.Errorf("%v, want allow gen A", got)
		}
	})
}

func TestARevokedTokenIsRefusedAfterAReload(t *testing.T) {
	s := newStack(t, spec{Gen: "A"})
	leaked := bobClaims
	leaked.ID = "leaked-token-1"
	leakedTok := mint(t, secretA, leaked)
	other := mint(t, secretA, bobClaims)
	if got := s.check(request(appHost, "/", bearer(leakedTok))); got.status != 200 {
		t.Fatalf("before revocation: %v", got)
	}
	if err := s.apply(spec{Gen: "A", Revoked: []string{"leaked-token-1"}}); err != nil {
		t.Fatal(err)
	}
	s.wantToken("the revoked token", leakedTok, 401, identity.ReasonRevoked)
	s.wantToken("another token of the same user", other, 200, "")
	if v := counterValue(t, s.metrics, "extauthz_token_verification_failures_total", map[string]string{"reason": "revoked"}); v != 1 {
		t.Errorf("token failures{reason=revoked} = %v, want 1", v)
	}
	// Lifting the revocation is a reload too.
	if err := s.apply(spec{Gen: "A"}); err != nil {
		t.Fatal(err)
	}
	s.wantToken("after the revocation is lifted, the token", leakedTok, 200, "")
}

func TestMaxServiceAccountLifetimeAppliesOnReload(t *testing.T) {
	s := newStack(t, spec{Gen: "A"})
	now := time.Now()
	long := bobClaims
	long.IssuedAt = jwt.NewNumericDate(now.Add(-time.Minute))
	long.ExpiresAt = jwt.NewNumericDate(now.Add(30 * 24 * time.Hour))
	longTok := mint(t, secretA, long)
	shortTok := mint(t, secretA, bobClaims) // one hour
	if got := s.check(request(appHost, "/", bearer(longTok))); got.status != 200 {
		t.Fatalf("before the limit: %v", got)
	}
	if err := s.apply(spec{Gen: "A", MaxLifetime: "24h"}); err != nil {
		t.Fatal(err)
	}
	s.wantToken("a 30-day token", longTok, 401, identity.ReasonLifetime)
	s.wantToken("a 1-hour token", shortTok, 200, "")
}

func TestSharedSecretRotation(t *testing.T) {
	s := newStack(t, spec{Gen: "A", Secret: secretA})
	old := mint(t, secretA, bobClaims)
	// Step 1: the new secret is current, the old one still verifies.
	if err := s.apply(spec{Gen: "A", Secret: secretB, PreviousSecrets: []string{secretA}}); err != nil {
		t.Fatal(err)
	}
	fresh := mint(t, secretB, bobClaims)
	for name, tok := range map[string]string{"old": old, "new": fresh} {
		s.wantToken("during the grace period the "+name+" secret's token", tok, 200, "")
	}
	if got := s.pages.Settings().Secret; got != secretB {
		t.Errorf("the pages sign sessions with %q, want the new secret", got)
	}
	// Step 2: the grace period over, the old secret is dropped.
	if err := s.apply(spec{Gen: "A", Secret: secretB}); err != nil {
		t.Fatal(err)
	}
	s.wantToken("after the grace period the old token", old, 401, identity.ReasonSignature)
	s.wantToken("the new token", fresh, 200, "")
}

func TestSigningKeyRotationKeepsTheOldKeyPublishedWhileItsAssertionsLive(t *testing.T) {
	k1, enc1 := testkit.SigningKey(t)
	k2, enc2 := testkit.SigningKey(t)
	s := newStack(t, spec{Gen: "A", Key: enc1})
	if got := kids(s.jwks()); !slices.Equal(got, []string{k1.ID}) {
		t.Fatalf("JWKS before = %v, want [%s]", got, k1.ID)
	}
	bob := mint(t, secretA, bobClaims)
	before := s.assertion(bob)
	if err := s.apply(spec{Gen: "A", Key: enc2}); err != nil {
		t.Fatal(err)
	}
	set := s.jwks()
	if got := kids(set); !slices.Equal(got, []string{k2.ID, k1.ID}) {
		t.Fatalf("JWKS right after the rotation = %v, want [%s %s] (new first, old kept)", got, k2.ID, k1.ID)
	}
	// An assertion signed with the old key just before the swap still
	// verifies against the JWKS an upstream fetches after it.
	verifyWith(t, set, before, k1.ID)
	after := s.assertion(bob)
	verifyWith(t, set, after, k2.ID)
	if got := s.reloader.RetiredKeyIDs(); !slices.Equal(got, []string{k1.ID}) {
		t.Errorf("retired keys = %v", got)
	}

	// Not yet: a minute before the grace period ends the key stays.
	s.clock.Advance(reload.RetiredKeyGrace - time.Minute)
	s.reloader.ExpireRetiredKeys()
	if got := kids(s.jwks()); len(got) != 2 {
		t.Errorf("JWKS before the grace period ends = %v", got)
	}
	// A reload in between keeps it too.
	if err := s.apply(spec{Gen: "B", Key: enc2}); err != nil {
		t.Fatal(err)
	}
	if got := kids(s.jwks()); !slices.Equal(got, []string{k2.ID, k1.ID}) {
		t.Errorf("JWKS after an unrelated reload = %v", got)
	}
	s.clock.Advance(2 * time.Minute)
	s.reloader.ExpireRetiredKeys()
	if got := kids(s.jwks()); !slices.Equal(got, []string{k2.ID}) {
		t.Errorf("JWKS after the grace period = %v, want only [%s]", got, k2.ID)
	}
	if got := s.reloader.RetiredKeyIDs(); len(got) != 0 {
		t.Errorf("retired keys after the grace period = %v", got)
	}
	// The pages kept the config of the last reload.
	if s.pages.Settings().Engine != s.checker.Snapshot().Engine {
		t.Error("expiring a retired key swapped in stale page settings")
	}
}

func TestAKeyMovedToPreviousSigningKeysStaysPublished(t *testing.T) {
	k1, enc1 := testkit.SigningKey(t)
	k2, enc2 := testkit.SigningKey(t)
	s := newStack(t, spec{Gen: "A", Key: enc1})
	if err := s.apply(spec{Gen: "A", Key: enc2, PreviousKeys: []string{enc1}}); err != nil {
		t.Fatal(err)
	}
	if got := kids(s.jwks()); !slices.Equal(got, []string{k2.ID, k1.ID}) {
		t.Errorf("JWKS = %v, want [%s %s] with k1 once", got, k2.ID, k1.ID)
	}
	if got := s.reloader.RetiredKeyIDs(); len(got) != 0 {
		t.Errorf("a key still configured was retired: %v", got)
	}
	// Rotating back: the key becomes current again and is not retired.
	if err := s.apply(spec{Gen: "A", Key: enc1}); err != nil {
		t.Fatal(err)
	}
	if got := kids(s.jwks()); !slices.Equal(got, []string{k1.ID, k2.ID}) {
		t.Errorf("JWKS after rotating back = %v, want [%s %s]", got, k1.ID, k2.ID)
	}
}

func TestAGeneratedSigningKeySurvivesReloads(t *testing.T) {
	s := newStack(t, spec{Gen: "A"})
	before := s.checker.Snapshot().Key.ID
	if err := s.apply(spec{Gen: "B"}); err != nil {
		t.Fatal(err)
	}
	if after := s.checker.Snapshot().Key.ID; after != before {
		t.Errorf("the generated key changed on reload: %s -> %s", before, after)
	}
	if got := kids(s.jwks()); !slices.Equal(got, []string{before}) {
		t.Errorf("JWKS = %v", got)
	}
}

func TestListenerAddressesNeedARestartAndTheRestIsApplied(t *testing.T) {
	s := newStack(t, spec{Gen: "A"})
	if err := s.apply(spec{Gen: "B", GRPCAddress: "127.0.0.1:19191"}); err != nil {
		t.Fatal(err)
	}
	bob := mint(t, secretA, bobClaims)
	if got := s.check(request(appHost, "/", bearer(bob))); got.gen != "B" {
		t.Errorf("%v, want the rest of config B applied", got)
	}
	warns := s.logs.FilterMessage("a changed key needs a restart to take effect; the rest of the config was applied").All()
	if len(warns) != 1 || warns[0].ContextMap()["key"] != "grpc_address" || warns[0].Level != zapcore.WarnLevel {
		t.Errorf("restart warnings = %v", warns)
	}
}

func TestTheDemoHasNothingToReload(t *testing.T) {
	cfg, err := config.Demo()
	if err != nil {
		t.Fatal(err)
	}
	r := reload.New(cfg, reload.Options{})
	if err := r.Reload("SIGHUP"); !errors.Is(err, reload.ErrNoFile) {
		t.Errorf("Reload = %v, want ErrNoFile", err)
	}
	if _, err := r.Watch(0); !errors.Is(err, reload.ErrNoFile) {
		t.Errorf("Watch = %v, want ErrNoFile", err)
	}
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *stack) watch() {
	s.t.Helper()
	stop, err := s.reloader.Watch(reload.DefaultDebounce)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(stop)
}

func (s *stack) genOf(tok string) string {
	return s.check(request(appHost, "/", bearer(tok))).gen
}

func TestTheWatcherReloadsOnEveryWayOfWritingTheFile(t *testing.T) {
	s := newStack(t, spec{Gen: "A"})
	s.watch()
	tok := mint(t, secretA, identity.Claims{Email: "dan@corp.example", Groups: []string{"engineering", "ops"}})
	gens := []string{"B", "C", "D", "E"}
	writers := []struct {
		name  string
		write func(content string)
	}{
		{"a rename over the file", s.write},
		{"a write in place", func(c string) {
			if err := os.WriteFile(s.path, []byte(c), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"a remove and create", func(c string) {
			_ = os.Remove(s.path)
			if err := os.WriteFile(s.path, []byte(c), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"a write in several steps", func(c string) {
			f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			half := len(c) / 2
			_, _ = f.WriteString(c[:half])
			_ = f.Sync()
			time.Sleep(20 * time.Millisecond)
			_, _ = f.WriteString(c[half:])
			_ = f.Close()
		}},
	}
	for i, w := range writers {
		gen := gens[i]
		t.Run(w.name+" is picked up", func(t *testing.T) {
			w.write(spec{Gen: gen}.render())
			waitFor(t, "config "+gen, func() bool { return s.genOf(tok) == gen })
		})
	}
}

func TestTheWatcherFollowsAKubernetesConfigMapSwap(t *testing.T) {
	// The kubelet's layout: config.yaml -> ..data/config.yaml, ..data ->
	// ..<timestamp>; an update writes a new timestamped directory and renames
	// a new ..data symlink over the old one.
	dir := t.TempDir()
	publish := func(gen, stamp string) {
		d := filepath.Join(dir, ".."+stamp)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "config.yaml"), []byte(spec{Gen: gen}.render()), 0o600); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(".."+stamp, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	publish("A", "2026_11_25_12_00_00.1")
	path := filepath.Join(dir, "config.yaml")
	if err := os.Symlink(filepath.Join("..data", "config.yaml"), path); err != nil {
		t.Fatal(err)
	}
	s := newStackAt(t, path)
	s.watch()
	tok := mint(t, secretA, bobClaims)
	if got := s.genOf(tok); got != "A" {
		t.Fatalf("gen %q, want A", got)
	}
	publish("B", "2026_11_25_12_05_00.2")
	_ = os.RemoveAll(filepath.Join(dir, "..2026_11_25_12_00_00.1"))
	waitFor(t, "config B through the ..data swap", func() bool { return s.genOf(tok) == "B" })
	publish("C", "2026_11_25_12_10_00.3")
	waitFor(t, "config C through a second swap", func() bool { return s.genOf(tok) == "C" })
}

func TestTheWatcherDebouncesABurstAndIgnoresUnchangedContent(t *testing.T) {
	s := newStack(t, spec{Gen: "A"})
	s.watch()
	tok := mint(t, secretA, bobClaims)
	for i := range 20 {
		gen := "A"
		if i == 19 {
			gen = "Z"
		}
		s.write(spec{Gen: gen, Extra: "# write " + string(rune('a'+i)) + "\n"}.render())
	}
	waitFor(t, "the last write of the burst", func() bool { return s.genOf(tok) == "Z" })
	time.Sleep(3 * reload.DefaultDebounce)
	if ok := s.reloads("ok"); ok < 1 || ok > 3 {
		t.Errorf("a burst of 20 writes caused %v reloads, want 1 (at most 3 on a slow machine)", ok)
	}
	// The same content again (and a chmod) reloads nothing.
	before := s.reloads("ok")
	data, err := os.ReadFile(s.path)
	if err != nil {
		t.Fatal(err)
	}
	s.write(string(data))
	if err := os.Chmod(s.path, 0o640); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * reload.DefaultDebounce)
	if after := s.reloads("ok"); after != before {
		t.Errorf("rewriting the same content reloaded (%v -> %v)", before, after)
	}
	// A refused file is logged once, not once per event.
	s.write("shared_secret: [\n")
	waitFor(t, "the refusal", func() bool { return s.reloads("failed") == 1 })
	s.write("shared_secret: [\n")
	time.Sleep(4 * reload.DefaultDebounce)
	if n := s.reloads("failed"); n != 1 {
		t.Errorf("the same broken content was refused %v times", n)
	}
	if got := s.genOf(tok); got != "Z" {
		t.Errorf("gen %q after the refusals, want Z", got)
	}
}

func TestAChangeBeforeTheWatchStartsIsPickedUp(t *testing.T) {
	s := newStack(t, spec{Gen: "A"})
	s.write(spec{Gen: "B"}.render()) // between the first load and the watch
	s.watch()
	tok := mint(t, secretA, bobClaims)
	waitFor(t, "config B", func() bool { return s.genOf(tok) == "B" })
	if got := s.logs.FilterMessage("config reloaded").All(); len(got) != 1 || got[0].ContextMap()["trigger"] != "file changed before the watch started" {
		t.Errorf("reload log = %v", got)
	}
}

// revokeAll is a store view that says every token was revoked.
type revokeAll struct{}

func (revokeAll) Revoked(*identity.Claims) bool { return true }

// TestAReloadKeepsTheStoreAndSaysItsSettingsNeedARestart: the store is
// opened once, at start; an engine a reload builds still refuses what it
// revoked, and a changed store setting is reported, never its value.
func TestAReloadKeepsTheStoreAndSaysItsSettingsNeedARestart(t *testing.T) {
	redis := func(url string) string {
		return "databroker_storage_type: redis\ndatabroker_storage_connection_string: " + url + "\nsigning_key: %s\n"
	}
	tests := []struct {
		name, before, after, key string
	}{
		{"a changed storage type needs a restart", "", redis("redis://127.0.0.1:1/0"), "databroker_storage_type"},
		{"a changed connection string needs a restart and is not logged",
			redis("redis://127.0.0.1:1/0"), redis("redis://user:hunter2@127.0.0.1:1/0"), "databroker_storage_connection_string"},
		{"a changed revocation ttl needs a restart", "", "revocation_ttl: 1000h\n", "revocation_ttl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, key := testkit.SigningKey(t)
			withKey := func(extra string) string {
				if strings.Contains(extra, "%s") {
					return fmt.Sprintf(extra, key)
				}
				return extra
			}
			path := filepath.Join(t.TempDir(), "config.yaml")
			writeAtomic(t, path, spec{Gen: "A", Extra: withKey(tc.before)}.render())
			noEnv := func(string) (string, bool) { return "", false }
			cfg, data, err := reload.Load(path, noEnv)
			if err != nil {
				t.Fatal(err)
			}
			snap, _, err := reload.Build(cfg)
			if err != nil {
				t.Fatal(err)
			}
			core, logs := observer.New(zap.DebugLevel)
			checker := check.New(snap, zap.New(core))
			r := reload.New(cfg, reload.Options{Path: path, Check: checker, Revocations: revokeAll{}, Log: zap.New(core), LookupEnv: noEnv, Content: data})
			t.Cleanup(r.Close)
			writeAtomic(t, path, spec{Gen: "B", Extra: withKey(tc.after)}.render())
			if err := r.Reload("test"); err != nil {
				t.Fatal(err)
			}
			if _, ok := checker.Snapshot().Engine.Revocations.(revokeAll); !ok {
				t.Errorf("the reloaded engine lost the store's revocations: %v", checker.Snapshot().Engine.Revocations)
			}
			var keys []string
			for _, w := range logs.FilterMessage("a changed key needs a restart to take effect; the rest of the config was applied").All() {
				keys = append(keys, w.ContextMap()["key"].(string))
			}
			if !slices.Contains(keys, tc.key) {
				t.Errorf("restart warnings name %v, want %s", keys, tc.key)
			}
			for _, e := range logs.All() {
				if strings.Contains(fmt.Sprint(e.ContextMap()), "hunter2") {
					t.Errorf("a log line holds the connection string's password: %v", e.ContextMap())
				}
			}
		})
	}
}

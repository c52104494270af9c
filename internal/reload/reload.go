// Package reload puts a changed config in force while the sidecar serves.
//
// It watches the config file (see Watcher) and reloads on change or on
// SIGHUP. A valid config becomes a new decision engine, Check snapshot and
// page settings (Build), swapped in together. An invalid one is refused: every
// located problem is logged, and the previous config keeps serving.
//
// A swap is atomic per request: a Check reads the snapshot once when it
// starts and finishes with it, so a reload never fails or mis-decides a Check
// in flight. Keys that cannot change at runtime (grpc_address, http_address)
// are reported as needing a restart and the rest of the config is applied.
//
// Signing-key rotation: when a reload replaces the signing key, the old public
// key stays in the JWKS for RetiredKeyGrace, so assertions it signed just
// before the swap still verify upstream. The new JWKS is published before the
// new key signs anything.
package reload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/decision"
	"github.com/extauthz/extauthz/internal/identity"
	"github.com/extauthz/extauthz/internal/metrics"
	"github.com/extauthz/extauthz/internal/web"
)

// Options wires a Reloader to the servers it swaps configs into.
type Options struct {
	// Path is the config file; empty means there is nothing to reload (the
	// embedded demo config).
	Path string
	// Check and Web receive the new snapshot and settings; either may be nil.
	Check *check.Server
	Web   *web.Server
	// Revocations, when set, are the store's revocations: every engine a
	// reload builds refuses the tokens they cover (the store itself is
	// opened once, at start: changing its settings needs a restart).
	Revocations decision.Revocations
	// Metrics counts reloads; nil counts nothing.
	Metrics *metrics.Metrics
	Log     *zap.Logger
	// LookupEnv supplies the environment overrides; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Now is the clock retired keys are timed by; nil means time.Now.
	Now func() time.Time
	// Content is the file content the initial config was parsed from (see
	// Load). With it, a change made before the watch started is caught when
	// it starts, and a file event that leaves the content as it was reloads
	// nothing; without it the first file event always reloads.
	Content []byte
}

// Reloader applies config changes. Reloads are serialized; it is safe for
// concurrent use.
type Reloader struct {
	o   Options
	log *zap.Logger

	mu sync.Mutex
	// boot is the config the process started with: its listener addresses
	// are the ones bound.
	boot *config.Config
	// cur is the config in force.
	cur *config.Config
	// sum is the digest of the file content last read, so a burst of file
	// events that leaves the content as it was reloads nothing.
	sum     [sha256.Size]byte
	haveSum bool
	retired []retiredKey
	timer   *time.Timer
	closed  bool
}

type retiredKey struct {
	key   *identity.SigningKey
	until time.Time
}

// New returns a Reloader for a process that started with initial, whose
// snapshot and settings (from Build(initial)) are already in o.Check and o.Web.
func New(initial *config.Config, o Options) *Reloader {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Reloader{o: o, log: o.Log, boot: initial, cur: initial}
	if o.Content != nil {
		r.sum, r.haveSum = sha256.Sum256(o.Content), true
	}
	return r
}

// Load reads and parses the config file as config.Load does, and also
// returns the content read, for Options.Content.
func Load(path string, lookupEnv func(string) (string, bool)) (*config.Config, []byte, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	data, err := readConfig(path)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := config.Parse(data, path, lookupEnv)
	if err != nil {
		return nil, nil, err
	}
	return cfg, data, nil
}

// Current returns the config in force.
func (r *Reloader) Current() *config.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// ErrNoFile is returned by Reload when the config has no file (the demo).
var ErrNoFile = errors.New("the config was not read from a file; there is nothing to reload")

// Reload reads the config file again and puts it in force. trigger says why,
// for the log ("SIGHUP", "file changed"). A refused config returns the error
// (a config.Problems when the file has problems) and changes nothing.
func (r *Reloader) Reload(trigger string) error {
	return r.reload(trigger, false)
}

// reload does the work; with onlyIfChanged, a file whose content is what was
// last read is not reloaded.
func (r *Reloader) reload(trigger string, onlyIfChanged bool) error {
	if r.o.Path == "" {
		r.log.Info("config reload requested, but the embedded demo config has no file to reload", zap.String("trigger", trigger))
		return ErrNoFile
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	data, err := readConfig(r.o.Path)
	if err != nil {
		// When the file comes back, reload it even if it is as it was, so
		// the refusal does not stay the last word.
		r.haveSum = false
		return r.refuse(trigger, err)
	}
	sum := sha256.Sum256(data)
	if onlyIfChanged && r.haveSum && sum == r.sum {
		return nil
	}
	r.sum, r.haveSum = sum, true
	next, err := config.Parse(data, r.o.Path, r.o.LookupEnv)
	if err != nil {
		return r.refuse(trigger, err)
	}
	now := r.o.Now()
	if next.KeyGenerated && r.cur.KeyGenerated {
		// No signing_key before or after: keep the key generated at start,
		// so a reload does not invalidate every assertion in flight.
		next.Key = r.cur.Key
	}
	retired := r.retire(next, now)
	snap, settings, err := Build(next, keysOf(retired)...)
	if err != nil {
		return r.refuse(trigger, err)
	}
	snap.Engine.Revocations = r.o.Revocations // settings share the engine
	// Publish first, sign second: the JWKS holds the new key before any
	// assertion signed with it can reach an upstream.
	if r.o.Web != nil {
		r.o.Web.Swap(settings)
	}
	if r.o.Check != nil {
		r.o.Check.Swap(snap)
	}
	prev := r.cur
	r.cur, r.retired = next, retired
	r.scheduleExpiry(now)
	r.o.Metrics.ReloadSucceeded(now, true)

	fields := []zap.Field{
		zap.String("trigger", trigger),
		zap.String("config", next.Source),
		zap.Int("routes", len(next.CompiledPolicy.Routes)),
		zap.String("signing_key_id", next.Key.ID),
		zap.Int("previous_shared_secrets", len(next.PreviousSharedSecrets)),
		zap.Int("revoked_token_ids", len(next.RevokedTokenIDs)),
	}
	if prev.Key.ID != next.Key.ID {
		fields = append(fields, zap.String("retired_signing_key_id", prev.Key.ID),
			zap.Duration("retired_key_published_for", RetiredKeyGrace))
	}
	r.log.Info("config reloaded", fields...)
	if next.KeyGenerated && !prev.KeyGenerated {
		r.log.Warn("signing_key was removed from the config; signing with a key generated in memory, which changes on every restart")
	}
	r.warnRestart(next)
	return nil
}

// refuse logs and counts a config that cannot be used; the one in force stays.
func (r *Reloader) refuse(trigger string, err error) error {
	r.o.Metrics.ReloadFailed()
	fields := []zap.Field{zap.String("trigger", trigger), zap.String("config", r.o.Path)}
	var ps config.Problems
	if errors.As(err, &ps) {
		fields = append(fields, zap.Int("problem_count", len(ps)), zap.Array("problems", problemList(ps)))
	}
	fields = append(fields, zap.Error(err))
	r.log.Error("config reload refused; the previous config keeps serving", fields...)
	return err
}

// warnRestart names the keys whose new values take effect only on restart.
func (r *Reloader) warnRestart(next *config.Config) {
	for _, k := range []struct{ key, bound, want string }{
		{"grpc_address", r.boot.GRPCAddress, next.GRPCAddress},
		{"http_address", r.boot.HTTPAddress, next.HTTPAddress},
		{"grpc_tls_cert_file (TLS on or off)", grpcTransport(r.boot), grpcTransport(next)},
		{"databroker_storage_type", storageType(r.boot), storageType(next)},
		// Never logged: it may hold a password.
		{"databroker_storage_connection_string", "", changed(r.boot.DatabrokerStorageConnectionString, next.DatabrokerStorageConnectionString)},
		{"revocation_ttl", r.boot.RevocationTTLOrDefault().String(), next.RevocationTTLOrDefault().String()},
	} {
		if k.bound != k.want {
			r.log.Warn("a changed key needs a restart to take effect; the rest of the config was applied",
				zap.String("key", k.key), zap.String("in_use", k.bound), zap.String("configured", k.want))
		}
	}
}

// storageType is databroker_storage_type with its default.
func storageType(c *config.Config) string {
	if c.DatabrokerStorageType == "" {
		return config.DefaultDatabrokerStorageType
	}
	return c.DatabrokerStorageType
}

// changed compares two values that must not be logged (a connection string
// may hold a password): "" when equal, else a note that it changed.
func changed(a, b string) string {
	if a != b {
		return "(changed; not shown, it may hold a password)"
	}
	return ""
}

// grpcTransport says whether grpc_address serves TLS: a rotated certificate
// is used without a restart, turning TLS on or off is not.
func grpcTransport(c *config.Config) string {
	if c.GRPCTLS != nil {
		return "tls"
	}
	return "plaintext"
}

// retire returns the retired keys after next replaces the config in force:
// the key in force when next does not publish it any more, plus the earlier
// retired keys still in their grace period that next does not publish.
func (r *Reloader) retire(next *config.Config, now time.Time) []retiredKey {
	published := map[string]bool{}
	for _, k := range next.SigningKeys() {
		published[k.ID] = true
	}
	var out []retiredKey
	for _, rk := range r.retired {
		if now.Before(rk.until) && !published[rk.key.ID] {
			out = append(out, rk)
		}
	}
	if old := r.cur.Key; old != nil && !published[old.ID] {
		out = append(out, retiredKey{key: old, until: now.Add(RetiredKeyGrace)})
	}
	return out
}

func keysOf(rs []retiredKey) []*identity.SigningKey {
	keys := make([]*identity.SigningKey, len(rs))
	for i, rk := range rs {
		keys[i] = rk.key
	}
	return keys
}

// ExpireRetiredKeys drops retired keys whose grace period has ended from the
// JWKS. It runs by itself on a timer; tests with their own clock call it.
func (r *Reloader) ExpireRetiredKeys() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	now := r.o.Now()
	kept := r.retired[:0:0]
	for _, rk := range r.retired {
		if now.Before(rk.until) {
			kept = append(kept, rk)
		}
	}
	if len(kept) != len(r.retired) {
		r.retired = kept
		if r.o.Web != nil {
			jwks, err := identity.MarshalJWKS(publishedKeys(r.cur, keysOf(kept))...)
			if err != nil {
				r.log.Error("rendering the JWKS without the expired retired keys", zap.Error(err))
			} else {
				set := *r.o.Web.Settings()
				set.JWKS = jwks
				r.o.Web.Swap(&set)
				r.log.Info("retired signing keys left the JWKS", zap.Int("still_retired", len(kept)))
			}
		}
	}
	r.scheduleExpiry(now)
}

// scheduleExpiry arms the timer for the earliest retired key's end. Call
// with r.mu held.
func (r *Reloader) scheduleExpiry(now time.Time) {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	if len(r.retired) == 0 || r.closed {
		return
	}
	next := r.retired[0].until
	for _, rk := range r.retired[1:] {
		if rk.until.Before(next) {
			next = rk.until
		}
	}
	r.timer = time.AfterFunc(next.Sub(now)+10*time.Millisecond, r.ExpireRetiredKeys)
}

// RetiredKeyIDs lists the key ids kept in the JWKS after a rotation.
func (r *Reloader) RetiredKeyIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, len(r.retired))
	for i, rk := range r.retired {
		ids[i] = rk.key.ID
	}
	return ids
}

// Watch starts watching the config file (see Watcher) and reloads when its
// content changes. It returns once the watch is in place; stop ends it and
// waits for a reload in progress.
func (r *Reloader) Watch(debounce time.Duration) (stop func(), err error) {
	if r.o.Path == "" {
		return func() {}, ErrNoFile
	}
	w, err := NewWatcher(r.o.Path, debounce, r.log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A change made between the first load and now had no watch to see it.
		_ = r.reload("file changed before the watch started", true)
		w.Run(ctx, func() { _ = r.reload("file changed", true) })
	}()
	return func() { cancel(); <-done }, nil
}

// Close stops the retired-key timer; a closed Reloader reloads nothing.
func (r *Reloader) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}

// readConfig reads at most one byte more than config.MaxSize, so Parse can
// report an oversized file instead of this reading all of it.
func readConfig(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := io.Copy(&b, io.LimitReader(f, config.MaxSize+1)); err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	return b.Bytes(), nil
}

// problemList logs config problems as an array of located objects.
type problemList config.Problems

func (ps problemList) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, p := range ps {
		if err := enc.AppendObject(problem(p)); err != nil {
			return err
		}
	}
	return nil
}

type problem config.Problem

func (p problem) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("file", p.File)
	if p.Line > 0 {
		enc.AddInt("line", p.Line)
	}
	if p.Column > 0 {
		enc.AddInt("column", p.Column)
	}
	if p.Key != "" {
		enc.AddString("key", p.Key)
	}
	enc.AddString("message", p.Msg)
	enc.AddString("at", config.Problem(p).Error())
	return nil
}

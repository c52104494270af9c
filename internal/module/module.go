// Package module is the extauthz decision as it runs inside Envoy, in the
// dynamic module cmd/extauthz-module builds: everything but the C binding.
//
// A Filter is one envoy.filters.http.dynamic_modules filter config. It loads
// the same config file the sidecar serves (reload.Load), builds the same Check
// snapshot (reload.Build), follows the same shared store and reloads on file
// change with the same Reloader; each request is answered by the very
// check.Server.Answer the sidecar's ext_authz Check calls. What differs is
// only how a request comes in (Envoy's request headers, read by the binding)
// and how the answer goes out (headers set on the request, or a local reply).
//
// Because /.pomerium pages stay in the sidecar process (sign-in, sign-out,
// the dashboard, the JWKS), the module needs what a second replica needs: a
// shared store, so a sign-out made in the sidecar reaches Envoy's process,
// and a fixed signing_key, so the assertions it signs verify against the
// sidecar's JWKS. New refuses a config without them.
package module

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/config"
	"github.com/extauthz/extauthz/internal/reload"
	"github.com/extauthz/extauthz/internal/store"
)

// Settings are the filter's filter_config: a google.protobuf.Struct, which
// Envoy hands to the module as JSON.
type Settings struct {
	// Config is the path of the extauthz config file, the one the sidecar
	// serves.
	Config string `json:"config"`
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `json:"log_level"`
	// LogFormat is json (default) or console. Logs go to Envoy's stderr.
	LogFormat string `json:"log_format"`
	// AnswerCache turns the answer cache (docs/module.md) on (default) or
	// off: with it off, every request is decided in Go.
	AnswerCache *bool `json:"answer_cache"`
}

// CacheAnswers reports whether the answer cache is on.
func (s Settings) CacheAnswers() bool { return s.AnswerCache == nil || *s.AnswerCache }

// ParseSettings reads a filter_config. Unknown keys are refused, so a typo
// is an error at load instead of a setting silently ignored.
func ParseSettings(raw []byte) (Settings, error) {
	var s Settings
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Settings{}, fmt.Errorf("filter_config must be a Struct with config (the extauthz config file), log_level, log_format and answer_cache: %w", err)
	}
	if s.Config == "" {
		return Settings{}, errors.New("filter_config: config (the path of the extauthz config file) is required")
	}
	switch s.LogFormat {
	case "":
		s.LogFormat = "json"
	case "json", "console":
	default:
		return Settings{}, fmt.Errorf("filter_config: log_format must be json or console, got %q", s.LogFormat)
	}
	if s.LogLevel == "" {
		s.LogLevel = "info"
	}
	if _, err := zapcore.ParseLevel(s.LogLevel); err != nil {
		return Settings{}, fmt.Errorf("filter_config: log_level must be debug, info, warn or error, got %q", s.LogLevel)
	}
	return s, nil
}

// StoreWait bounds how long New waits for the store's first full read. New
// runs on Envoy's main thread at start-up; a store that is slower than this
// is waited for as the sidecar waits for it (check.Server.HoldUntil):
// requests are answered 503 until it is read.
const StoreWait = 3 * time.Second

// Filter is one filter config's extauthz: the snapshot in force, the store
// it follows and the reloader that swaps it.
type Filter struct {
	checker   *check.Server
	store     *store.Store
	reloader  *reload.Reloader
	stopWatch func()
	stopHold  context.CancelFunc // ends HoldUntil's wait for the store
	log       *zap.Logger
}

// Options are New's dependencies; zero values are the real ones.
type Options struct {
	// LookupEnv supplies config overrides; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Log replaces the logger Settings describe (tests).
	Log *zap.Logger
	// OnChange is called after every change of what a decision reads: a
	// config reload, the store's view, the server becoming ready or not
	// (check.Server.OnChange, store.Options.OnChange). The binding drops
	// its cached answers there.
	OnChange func()
}

// New loads the config Settings name and starts following its store and its
// file. It refuses a config the module cannot serve correctly.
func New(s Settings, o Options) (*Filter, error) {
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	log := o.Log
	if log == nil {
		var err error
		if log, err = newLogger(s); err != nil {
			return nil, err
		}
	}
	cfg, content, err := reload.Load(s.Config, o.LookupEnv)
	if err != nil {
		return nil, err
	}
	if err := Servable(cfg); err != nil {
		return nil, err
	}
	snap, _, err := reload.Build(cfg)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(cfg.DatabrokerStorageType, cfg.DatabrokerStorageConnectionString,
		store.Options{TTL: cfg.RevocationTTLOrDefault(), Logger: log, OnChange: o.OnChange})
	if err != nil {
		return nil, fmt.Errorf("databroker_storage_connection_string: %w", err)
	}
	snap.Engine.Revocations = st
	f := &Filter{checker: check.New(snap, log), store: st, log: log}
	f.checker.OnChange = o.OnChange // before anything can change it
	// No Web: the pages, and so the JWKS a reload republishes, are the
	// sidecar's; it reloads the same file.
	f.reloader = reload.New(cfg, reload.Options{Path: s.Config, Check: f.checker, Revocations: st, Log: log,
		LookupEnv: o.LookupEnv, Content: content})
	if f.stopWatch, err = f.reloader.Watch(reload.DefaultDebounce); err != nil {
		f.reloader.Close()
		_ = st.Close()
		return nil, fmt.Errorf("watching %s: %w", s.Config, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), StoreWait)
	defer cancel()
	var hold context.Context
	hold, f.stopHold = context.WithCancel(context.Background())
	if st.WaitReady(ctx) != nil {
		log.Warn("the shared store was not read in full yet; requests are answered 503 until it is",
			zap.Duration("waited", StoreWait))
		f.checker.HoldUntil(hold, "the first full read of the store ("+st.Backend().Describe()+")", st.WaitReady)
	}
	log.Info("extauthz module ready", zap.String("config", cfg.Source),
		zap.Int("routes", len(cfg.CompiledPolicy.Routes)), zap.String("signing_key_id", cfg.Key.ID))
	return f, nil
}

// ErrNotServable wraps every reason Servable refuses a config.
var ErrNotServable = errors.New("the module cannot serve this config")

// Servable reports whether the module can serve cfg: like a second replica,
// it needs the shared store (sign-outs happen in the sidecar and must reach
// Envoy's process) and so a fixed signing_key (config validation requires
// one with a shared store), whose public key the sidecar's JWKS publishes.
func Servable(cfg *config.Config) error {
	if !cfg.SharedStore() {
		return fmt.Errorf("%w: %s: databroker_storage_type must be redis: the sidecar serves sign-out, and a "+
			"revocation made there reaches the module only through a shared store", ErrNotServable, cfg.Source)
	}
	if cfg.KeyGenerated {
		return fmt.Errorf("%w: %s: signing_key is required: the module's assertions must verify against the "+
			"sidecar's JWKS", ErrNotServable, cfg.Source)
	}
	return nil
}

// Ready reports whether requests are decided: not before the store was read
// in full, as in the sidecar (until then Answer is a 503).
func (f *Filter) Ready() bool { return f.checker.IsReady() }

// Answer answers one request (see check.Server.Answer).
func (f *Filter) Answer(r *check.Request) *check.Answer { return f.checker.Answer(r) }

// Log is the filter's logger.
func (f *Filter) Log() *zap.Logger { return f.log }

// Close stops the watch and the store. Envoy calls it when the filter config
// goes away (a listener update); requests still in flight finish with the
// snapshot they read.
func (f *Filter) Close() {
	f.stopHold()
	f.stopWatch()
	f.reloader.Close()
	if err := f.store.Close(); err != nil {
		f.log.Warn("closing the shared store", zap.Error(err))
	}
	_ = f.log.Sync()
}

func newLogger(s Settings) (*zap.Logger, error) {
	level, _ := zapcore.ParseLevel(s.LogLevel) // ParseSettings checked it
	cfg := zap.NewProductionConfig()
	if s.LogFormat == "console" {
		cfg = zap.NewDevelopmentConfig()
	}
	cfg.Level = zap.NewAtomicLevelAt(level)
	cfg.OutputPaths, cfg.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
	cfg.DisableStacktrace = true
	l, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("building logger: %w", err)
	}
	// The sidecar's logger names ("audit"), so one log pipeline reads both
	// deployments; the field tells the lines Envoy's process wrote.
	return l.With(zap.String("deployment", "module")), nil
}

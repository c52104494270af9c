package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keys. The layout is Pomerium's databroker (pkg/storage/redis):
// server_version, last_version, the last_version_ch channel, a records hash
// and sorted sets of changes, all under one hash tag so that a Redis Cluster
// keeps them on one node and scripts may touch them together. The tag is
// extauthz's own, not {pomerium_v3}: the values are not Pomerium's protobuf
// records, and a Redis shared with a Pomerium must not mix the two.
const (
	KeyPrefix = "{extauthz_v1}."

	keyServerVersion = KeyPrefix + "server_version"  // string: random, set once; a Redis that lost its data gets a new one
	keyLastVersion   = KeyPrefix + "last_version"    // string: the number of the last change
	keyLastVersionCh = KeyPrefix + "last_version_ch" // pub/sub channel: last_version after each change
	keyRecords       = KeyPrefix + "records"         // hash: "revocation/<kind>/<id>" -> "<at> <expires>" (unix seconds)
	keyChanges       = KeyPrefix + "changes"         // sorted set: record field, scored by the change that last wrote it; the last changeLogLength only
	keyChangesFloor  = KeyPrefix + "changes.floor"   // string: the last change trimmed from changes
	keyExpiry        = KeyPrefix + "changes.revocation.expiry"
	// sorted set above: record field, scored by when it expires (unix seconds)

	keyHandoffUsed   = KeyPrefix + "handoff.used."   // + handoff id: set until the handoff expires
	keyHandoffIssued = KeyPrefix + "handoff.issued." // + hex sha256 of the user: handoffs given this minute

	recordPrefix = "revocation/"
)

// Scripts run atomically; every key they touch is passed in KEYS and shares
// the hash tag.
var (
	// revokeScript writes one record (keeping the later of two times), logs
	// the change (trimming the log to ARGV[4] entries) and announces it.
	revokeScript = redis.NewScript(`
local at, exp = tonumber(ARGV[2]), tonumber(ARGV[3])
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then
  local oat, oexp = string.match(old, '^(%d+) (%d+)$')
  if oat then at = math.max(at, tonumber(oat)); exp = math.max(exp, tonumber(oexp)) end
end
local v = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], at .. ' ' .. exp)
redis.call('ZADD', KEYS[3], v, ARGV[1])
redis.call('ZADD', KEYS[4], exp, ARGV[1])
local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[4])
if excess > 0 then
  local gone = redis.call('ZRANGE', KEYS[3], excess - 1, excess - 1, 'WITHSCORES')
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, excess - 1)
  redis.call('SET', KEYS[6], gone[2])
end
redis.call('PUBLISH', KEYS[5], v)
return v`)

	// sinceScript returns the server version, the last version, the last
	// change trimmed from the log and the records changed after ARGV[1]
	// (field, value, field, value...), unless the log no longer reaches
	// back to ARGV[1].
	sinceScript = redis.NewScript(`
local sv = redis.call('GET', KEYS[1])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local floor = tonumber(redis.call('GET', KEYS[5]) or '0')
local out = {sv or '', tostring(last), tostring(floor)}
local since = tonumber(ARGV[1])
if last <= since or since < floor then return out end
local fields = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. since, last)
if #fields == 0 then return out end
local values = redis.call('HMGET', KEYS[4], unpack(fields))
for i, f in ipairs(fields) do
  if values[i] then table.insert(out, f); table.insert(out, values[i]) end
end
return out`)

	// sweepScript removes up to ARGV[2] records that expired by ARGV[1].
	sweepScript = redis.NewScript(`
local f = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #f == 0 then return 0 end
redis.call('HDEL', KEYS[2], unpack(f))
redis.call('ZREM', KEYS[3], unpack(f))
redis.call('ZREM', KEYS[1], unpack(f))
return #f`)

	// issueScript counts a handoff in the user's minute.
	issueScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`)
)

const (
	// sweepBatch bounds the records one sweep script removes, so that
	// Redis is never blocked long.
	sweepBatch = 1000
	// changeLogLength bounds the change log: a replica further behind than
	// that many changes reads everything again.
	changeLogLength = 10000
)

// Redis is the Backend replicas share.
type Redis struct {
	target *Target
	c      redis.UniversalClient
	now    func() time.Time
	// logLength is changeLogLength, smaller in tests.
	logLength int

	subOnce sync.Once
	changed chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
}

// DefaultTimeouts bound each call to Redis: an unreachable store is noticed
// within a second or so, and a command is retried once.
var DefaultTimeouts = Timeouts{Dial: time.Second, Read: time.Second, Write: time.Second, MaxRetries: 1}

// NewRedis returns a Redis backend for the connection string; it connects
// lazily. now is the clock (nil: time.Now).
func NewRedis(connectionString string, to Timeouts, now func() time.Time) (*Redis, error) {
	t, err := ParseConnectionString(connectionString)
	if err != nil {
		return nil, fmt.Errorf("databroker_storage_connection_string %w", err)
	}
	if now == nil {
		now = time.Now
	}
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	return &Redis{target: t, c: t.Client(to), now: now, logLength: changeLogLength, changed: make(chan struct{}, 1), stop: make(chan struct{})}, nil
}

// quiet drops go-redis's own log lines (one per failed dial, on stderr):
// the Store reports an outage once, in the sidecar's structured log.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

// unavailable marks an error of the client as the store being unreachable.
func unavailable(what string, err error) error {
	return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
}

var revokeKeys = []string{keyLastVersion, keyRecords, keyChanges, keyExpiry, keyLastVersionCh, keyChangesFloor}

// Revoke records r and announces it to every replica.
func (b *Redis) Revoke(ctx context.Context, r Revocation) error {
	if err := r.check(); err != nil {
		return err
	}
	err := revokeScript.Run(ctx, b.c, revokeKeys, recordPrefix+revocationKey(r), r.At.Unix(), r.Expires.Unix(), b.logLength).Err()
	if err != nil {
		return unavailable("recording the revocation in "+b.target.String(), err)
	}
	return nil
}

// serverVersion reads the server version, setting it first when the Redis
// has none (new, or emptied).
func (b *Redis) serverVersion(ctx context.Context) (string, error) {
	v, err := b.c.Get(ctx, keyServerVersion).Result()
	if errors.Is(err, redis.Nil) {
		var r [8]byte
		_, _ = rand.Read(r[:])
		if err := b.c.SetNX(ctx, keyServerVersion, hex.EncodeToString(r[:]), 0).Err(); err != nil {
			return "", err
		}
		v, err = b.c.Get(ctx, keyServerVersion).Result()
	}
	return v, err
}

// Load reads every record. The last version is read first, so a change
// made during the read is either in it or after the position returned.
func (b *Redis) Load(ctx context.Context) (Position, []Revocation, error) {
	sv, err := b.serverVersion(ctx)
	if err != nil {
		return Position{}, nil, unavailable("reading "+b.target.String(), err)
	}
	last, err := b.c.Get(ctx, keyLastVersion).Uint64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return Position{}, nil, unavailable("reading "+b.target.String(), err)
	}
	var out []Revocation
	var cursor uint64
	for {
		kv, next, err := b.c.HScan(ctx, keyRecords, cursor, "", 1000).Result()
		if err != nil {
			return Position{}, nil, unavailable("reading "+b.target.String(), err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if r, ok := parseRecord(kv[i], kv[i+1]); ok {
				out = append(out, r)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	return Position{Epoch: sv, Version: last}, out, nil
}

// Since reads the records changed after pos, in one round trip.
func (b *Redis) Since(ctx context.Context, pos Position) (Position, []Revocation, error) {
	keys := []string{keyServerVersion, keyLastVersion, keyChanges, keyRecords, keyChangesFloor}
	res, err := sinceScript.Run(ctx, b.c, keys, pos.Version).StringSlice()
	if err != nil {
		return Position{}, nil, unavailable("reading "+b.target.String(), err)
	}
	if len(res) < 3 {
		return Position{}, nil, fmt.Errorf("reading %s: unexpected answer of %d values", b.target, len(res))
	}
	last, err1 := strconv.ParseUint(res[1], 10, 64)
	floor, err2 := strconv.ParseUint(res[2], 10, 64)
	if err1 != nil || err2 != nil {
		return Position{}, nil, fmt.Errorf("reading %s: last_version or changes.floor is not a number", b.target)
	}
	if res[0] != pos.Epoch || last < pos.Version || pos.Version < floor {
		return Position{}, nil, ErrStale
	}
	var out []Revocation
	for i := 3; i+1 < len(res); i += 2 {
		if r, ok := parseRecord(res[i], res[i+1]); ok {
			out = append(out, r)
		}
	}
	return Position{Epoch: pos.Epoch, Version: last}, out, nil
}

// parseRecord reads one field and value of the records hash; anything
// malformed is skipped (never written by this sidecar).
func parseRecord(field, value string) (Revocation, bool) {
	rest, ok := strings.CutPrefix(field, recordPrefix)
	if !ok {
		return Revocation{}, false
	}
	kind, id, ok := strings.Cut(rest, "/")
	at, exp, ok2 := strings.Cut(value, " ")
	if !ok || !ok2 || !Kind(kind).valid() || id == "" {
		return Revocation{}, false
	}
	a, err1 := strconv.ParseInt(at, 10, 64)
	e, err2 := strconv.ParseInt(exp, 10, 64)
	if err1 != nil || err2 != nil {
		return Revocation{}, false
	}
	return Revocation{Kind: Kind(kind), ID: id, At: time.Unix(a, 0), Expires: time.Unix(e, 0)}, true
}

// Changed receives after each change announced on last_version_ch. The
// subscription starts on the first call and reconnects by itself.
func (b *Redis) Changed() <-chan struct{} {
	b.subOnce.Do(func() {
		ps := b.c.Subscribe(context.Background(), keyLastVersionCh)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer ps.Close()
			msgs := ps.Channel()
			for {
				select {
				case <-b.stop:
					return
				case _, ok := <-msgs:
					if !ok {
						return
					}
					select {
					case b.changed <- struct{}{}:
					default: // one pending wake-up covers every change so far
					}
				}
			}
		}()
	})
	return b.changed
}

// Sweep removes the records that expired by now, in batches.
func (b *Redis) Sweep(ctx context.Context, now time.Time) error {
	keys := []string{keyExpiry, keyRecords, keyChanges}
	for {
		n, err := sweepScript.Run(ctx, b.c, keys, now.Unix(), sweepBatch).Int()
		if err != nil {
			return unavailable("removing expired revocations from "+b.target.String(), err)
		}
		if n < sweepBatch {
			return nil
		}
	}
}

// Issue counts a handoff given to user in the user's current minute, shared
// by every replica.
func (b *Redis) Issue(ctx context.Context, user string) error {
	sum := sha256.Sum256([]byte(user))
	n, err := issueScript.Run(ctx, b.c, []string{keyHandoffIssued + hex.EncodeToString(sum[:16])}, time.Minute.Milliseconds()).Int()
	if err != nil {
		return unavailable("counting the sign-in handoff in "+b.target.String(), err)
	}
	if n > HandoffsPerUserPerMinute {
		return ErrHandoffRateLimited
	}
	return nil
}

// Use records id as redeemed until exp, once across every replica.
func (b *Redis) Use(ctx context.Context, id string, exp time.Time) error {
	now := b.now()
	if exp.After(now.Add(MaxHandoffRecord)) {
		return fmt.Errorf("handoff kept until %v, more than %v from now", exp, MaxHandoffRecord)
	}
	if id == "" || len(id) > MaxIDLength {
		return fmt.Errorf("handoff id of %d bytes is not one this sidecar makes", len(id))
	}
	if !now.Before(exp) {
		// Expired: nothing to remember, the caller refuses it. Still ask
		// whether it was used, so the answer is the memory ledger's.
		n, err := b.c.Exists(ctx, keyHandoffUsed+id).Result()
		if err != nil {
			return unavailable("reading the sign-in handoff from "+b.target.String(), err)
		}
		if n > 0 {
			return ErrHandoffUsed
		}
		return nil
	}
	ok, err := b.c.SetArgs(ctx, keyHandoffUsed+id, "1", redis.SetArgs{Mode: "NX", ExpireAt: exp}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return ErrHandoffUsed
	case err != nil:
		return unavailable("recording the sign-in handoff in "+b.target.String(), err)
	case ok != "OK":
		return ErrHandoffUsed
	}
	return nil
}

// Shared is true: every replica on this Redis sees the same state.
func (b *Redis) Shared() bool { return true }

// Describe names the Redis without its password.
func (b *Redis) Describe() string { return b.target.String() }

// Target is the parsed connection string.
func (b *Redis) Target() *Target { return b.target }

// Client is the Redis client, for tests and measurements.
func (b *Redis) Client() redis.UniversalClient { return b.c }

// Close stops the subscription and closes the client.
func (b *Redis) Close() error {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	err := b.c.Close()
	b.wg.Wait()
	return err
}

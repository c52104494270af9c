package store

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Topology is how a Redis connection string reaches Redis.
type Topology string

// The forms of databroker_storage_connection_string, as Pomerium writes them.
const (
	Standalone Topology = "standalone" // redis://, rediss://, unix://
	Sentinel   Topology = "sentinel"   // redis+sentinel://, rediss+sentinel://
	Cluster    Topology = "cluster"    // redis+cluster://, rediss+cluster://
)

// Target is a parsed connection string. String names it without its
// password, for logs and error messages.
type Target struct {
	Topology Topology
	TLS      bool
	// Addrs are host:port: the server (standalone), the sentinels, or the
	// cluster's seed nodes. A Unix socket is its path.
	Addrs    []string
	Username string
	Password string
	DB       int
	// MasterName is the sentinel's name for the primary (sentinel only).
	MasterName string
	// SentinelPassword is the sentinels' own password (sentinel only).
	SentinelPassword string

	standalone *redis.Options // what redis.ParseURL made of a standalone URL
}

// String is the target with its password left out.
func (t *Target) String() string {
	scheme := "redis"
	switch {
	case t.Topology == Standalone && t.standalone != nil && t.standalone.Network == "unix":
		return "unix://" + t.Addrs[0]
	case t.TLS:
		scheme = "rediss"
	}
	if t.Topology != Standalone {
		scheme += "+" + string(t.Topology)
	}
	path := "/" + strconv.Itoa(t.DB)
	if t.Topology == Sentinel {
		path = "/" + t.MasterName + path
	}
	if t.Topology == Cluster {
		path = ""
	}
	return scheme + "://" + strings.Join(t.Addrs, ",") + path
}

// schemes maps every accepted scheme to its topology and whether it is TLS.
// Pomerium accepts "-" for "+" and "+sentinels"/"+clusters" for TLS too.
var schemes = map[string]struct {
	topology Topology
	tls      bool
}{
	"redis": {Standalone, false}, "rediss": {Standalone, true}, "unix": {Standalone, false},
	"redis+sentinel": {Sentinel, false}, "redis-sentinel": {Sentinel, false},
	"rediss+sentinel": {Sentinel, true}, "rediss-sentinel": {Sentinel, true},
	"redis+sentinels": {Sentinel, true}, "redis-sentinels": {Sentinel, true},
	"redis+cluster": {Cluster, false}, "redis-cluster": {Cluster, false},
	"rediss+cluster": {Cluster, true}, "rediss-cluster": {Cluster, true},
	"redis+clusters": {Cluster, true}, "redis-clusters": {Cluster, true},
}

// ParseConnectionString reads databroker_storage_connection_string:
//
//	redis://[user:password@]host:port[/db]           one server; rediss:// for TLS
//	unix://[user:password@]/path/redis.sock[?db=N]   one server over a Unix socket
//	redis+sentinel://[:password@]host:port[,host:port...]/master[/db]
//	redis+cluster://[user:password@]host:port[,host:port...]
//
// In the sentinel form the password in the userinfo is the sentinels'; the
// primary's user and password are the username and password query
// parameters, as in Pomerium. Errors never repeat the string, which may hold
// a password.
func ParseConnectionString(s string) (*Target, error) {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(s), "://")
	if !ok || scheme == "" {
		return nil, errors.New("must be a URL such as redis://host:6379/0")
	}
	form, ok := schemes[strings.ToLower(scheme)]
	if !ok {
		return nil, fmt.Errorf("scheme %q is not one of redis, rediss, unix, redis+sentinel, rediss+sentinel, redis+cluster, rediss+cluster", clip(scheme))
	}
	t := &Target{Topology: form.topology, TLS: form.tls}
	if form.topology == Standalone {
		opts, err := redis.ParseURL(s)
		if err != nil {
			return nil, errors.New(redactURLError(err))
		}
		if opts.Network != "unix" {
			_, port, err := net.SplitHostPort(opts.Addr)
			if n, perr := strconv.Atoi(port); err != nil || perr != nil || n <= 0 || n > 65535 {
				return nil, fmt.Errorf("port %q is not a number from 1 to 65535", clip(port))
			}
		}
		t.standalone = opts
		t.Addrs = []string{opts.Addr}
		t.Username, t.Password, t.DB = opts.Username, opts.Password, opts.DB
		return t, nil
	}

	// Several hosts, separated by commas, do not make a URL Go parses:
	// take the userinfo and the hosts apart by hand.
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	var user *url.Userinfo
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		u, err := url.Parse("x://" + authority[:at+1] + "h")
		if err != nil || u.User == nil {
			return nil, errors.New("the user and password part is not valid: percent-encode reserved characters")
		}
		user, authority = u.User, authority[at+1:]
	}
	defaultPort := "6379"
	if form.topology == Sentinel {
		defaultPort = "26379" // Sentinel's own port
	}
	for _, h := range strings.Split(authority, ",") {
		if h == "" {
			return nil, errors.New("names an empty host: list hosts as host:port,host:port")
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			host, port = h, defaultPort
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("port %q is not a number from 1 to 65535", clip(port))
		}
		if host == "" || strings.ContainsAny(host, " \t/") {
			return nil, fmt.Errorf("host %q is not a host name or IP address", clip(host))
		}
		t.Addrs = append(t.Addrs, net.JoinHostPort(host, port))
	}
	u, err := url.Parse("x://h" + tail)
	if err != nil {
		return nil, errors.New("the path or query is not valid")
	}
	q := u.Query()
	path := strings.Trim(u.Path, "/")
	switch form.topology {
	case Sentinel:
		parts := strings.Split(path, "/")
		if parts[0] == "" {
			return nil, errors.New("names no primary: write the sentinel's master name as the path, redis+sentinel://host:26379/mymaster")
		}
		// A plain name only: an "@" or ":" here is a user or password that
		// slid into the path, which must never be echoed back in logs.
		if !plainName(parts[0]) {
			// Not quoted back: it may hold a password.
			return nil, errors.New("the master name in the path must be a plain name (letters, digits, '.', '_', '-')")
		}
		t.MasterName = parts[0]
		if len(parts) > 2 {
			return nil, errors.New("path must be /master or /master/db")
		}
		if len(parts) == 2 {
			if t.DB, err = strconv.Atoi(parts[1]); err != nil || t.DB < 0 {
				return nil, fmt.Errorf("database %q is not a number", clip(parts[1]))
			}
		}
		if user != nil {
			t.SentinelPassword, _ = user.Password()
		}
		t.Username, t.Password = q.Get("username"), q.Get("password")
		q.Del("username")
		q.Del("password")
	case Cluster:
		if path != "" {
			return nil, errors.New("a cluster has no database to choose: drop the path")
		}
		if user != nil {
			t.Username = user.Username()
			t.Password, _ = user.Password()
		}
	}
	for k := range q {
		return nil, fmt.Errorf("query parameter %q is not supported here", clip(k))
	}
	return t, nil
}

// Timeouts bound each call to Redis, so that a store that stopped answering
// is noticed quickly and nothing waits on it for long.
type Timeouts struct {
	Dial, Read, Write time.Duration
	// MaxRetries is how often a failed command is retried (-1: never).
	MaxRetries int
}

// Client returns a client for the target. It connects lazily.
func (t *Target) Client(to Timeouts) redis.UniversalClient {
	o := &redis.UniversalOptions{
		Addrs:            t.Addrs,
		Username:         t.Username,
		Password:         t.Password,
		DB:               t.DB,
		MasterName:       t.MasterName,
		SentinelPassword: t.SentinelPassword,
		DialTimeout:      to.Dial,
		ReadTimeout:      to.Read,
		WriteTimeout:     to.Write,
		MaxRetries:       to.MaxRetries,
		DialerRetries:    1,
	}
	if t.TLS {
		host, _, _ := net.SplitHostPort(t.Addrs[0])
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	switch t.Topology {
	case Cluster:
		return redis.NewClusterClient(o.Cluster())
	case Sentinel:
		return redis.NewFailoverClient(o.Failover())
	}
	so := *t.standalone // keeps what ParseURL read: network, TLS server name, query options
	so.DialTimeout, so.ReadTimeout, so.WriteTimeout, so.MaxRetries = to.Dial, to.Read, to.Write, to.MaxRetries
	so.DialerRetries = 1
	return redis.NewClient(&so)
}

// redactURLError keeps what go-redis says is wrong, without the URL.
func redactURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return "is not a valid URL: " + ue.Err.Error()
	}
	msg := err.Error()
	if strings.Contains(msg, "://") || strings.Contains(msg, "@") {
		return "is not a valid redis URL"
	}
	return strings.TrimPrefix(msg, "redis: ")
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// plainName reports whether s is a sentinel master name as people write them.
func plainName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}

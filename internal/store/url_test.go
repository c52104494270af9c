package store

import (
	"slices"
	"strings"
	"testing"
)

func TestParseConnectionString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Target
		str  string
	}{
		{"a plain URL names one server and its database", "redis://127.0.0.1:6379/2",
			Target{Topology: Standalone, Addrs: []string{"127.0.0.1:6379"}, DB: 2}, "redis://127.0.0.1:6379/2"},
		{"a user and password are read from the userinfo", "redis://app:s3cret@redis.internal:6380/0",
			Target{Topology: Standalone, Addrs: []string{"redis.internal:6380"}, Username: "app", Password: "s3cret"}, "redis://redis.internal:6380/0"},
		{"rediss is TLS", "rediss://:pw@redis.internal:6380",
			Target{Topology: Standalone, TLS: true, Addrs: []string{"redis.internal:6380"}, Password: "pw"}, "rediss://redis.internal:6380/0"},
		{"sentinels are a host list with the master name as the path", "redis+sentinel://:sentpw@s1:26379,s2:26380,s3/mymaster/3?password=redispw&username=app",
			Target{Topology: Sentinel, Addrs: []string{"s1:26379", "s2:26380", "s3:26379"}, MasterName: "mymaster", DB: 3,
				SentinelPassword: "sentpw", Username: "app", Password: "redispw"}, "redis+sentinel://s1:26379,s2:26380,s3:26379/mymaster/3"},
		{"rediss+sentinel is sentinels over TLS", "rediss+sentinel://s1/primary",
			Target{Topology: Sentinel, TLS: true, Addrs: []string{"s1:26379"}, MasterName: "primary"}, "rediss+sentinel://s1:26379/primary/0"},
		{"a cluster is a list of seed nodes with the default port filled in", "redis+cluster://app:pw@n1:7000,n2:7001,n3",
			Target{Topology: Cluster, Addrs: []string{"n1:7000", "n2:7001", "n3:6379"}, Username: "app", Password: "pw"}, "redis+cluster://n1:7000,n2:7001,n3:6379"},
		{"Pomerium's other spellings of TLS clusters are accepted", "redis+clusters://n1:7000/",
			Target{Topology: Cluster, TLS: true, Addrs: []string{"n1:7000"}}, "rediss+cluster://n1:7000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConnectionString(tt.in)
			if err != nil {
				t.Fatalf("ParseConnectionString: %v", err)
			}
			if got.Topology != tt.want.Topology || got.TLS != tt.want.TLS || !slices.Equal(got.Addrs, tt.want.Addrs) ||
				got.Username != tt.want.Username || got.Password != tt.want.Password || got.DB != tt.want.DB ||
				got.MasterName != tt.want.MasterName || got.SentinelPassword != tt.want.SentinelPassword {
				t.Errorf("got %+v\nwant %+v", *got, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("String() = %q, want %q", s, tt.str)
			}
			if got.Password != "" && strings.Contains(got.String(), got.Password) {
				t.Errorf("String() shows the password: %s", got)
			}
			if c := got.Client(DefaultTimeouts); c == nil {
				t.Error("no client")
			} else {
				c.Close()
			}
		})
	}
}

func TestParseConnectionStringRefuses(t *testing.T) {
	const secret = "hunter2-secret"
	tests := []struct {
		name, in, want string
	}{
		{"a string that is no URL", "localhost:6379", "must be a URL"},
		{"an unknown scheme", "memcached://" + secret + "@h:1", `scheme "memcached"`},
		{"a plain URL with a bad port", "redis://u:" + secret + "@h:99999999/0", "not a number"},
		{"a plain URL with a bad database", "redis://u:" + secret + "@h:6379/x", "invalid"},
		{"a sentinel URL without a master name", "redis+sentinel://:" + secret + "@s1:26379", "names no primary"},
		{"a sentinel URL with a bad database", "redis+sentinel://s1/m/x", "is not a number"},
		{"a cluster URL with a database", "redis+cluster://:" + secret + "@n1:7000/3", "no database"},
		{"a host list with an empty host", "redis+cluster://n1:7000,,n2", "empty host"},
		{"a host with a bad port", "redis+cluster://n1:port", "not a number"},
		{"an unsupported query parameter", "redis+cluster://n1:7000?pool=3", `"pool" is not supported`},
	}
	for _, tt := range tests {
		t.Run("it refuses "+tt.name, func(t *testing.T) {
			_, err := ParseConnectionString(tt.in)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error repeats the password: %q", err)
			}
		})
	}
}

// FuzzParseConnectionString: any string is parsed or refused, never a panic,
// and an accepted one names its Redis without user or password: no "@" in
// the authority of String(). (A path may hold one: "unix:///@" is the socket
// "/@", a fuzzer's find.)
func FuzzParseConnectionString(f *testing.F) {
	for _, s := range []string{"redis://u:p@h:6379/0", "rediss://h", "unix:///tmp/r.sock?db=2",
		"redis+sentinel://:p@a,b:1/m/2?password=x", "redis+cluster://u:p@a:1,b", "redis+cluster://", "redis://[::1]:6379"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseConnectionString(s)
		if err != nil {
			return
		}
		if len(tg.Addrs) == 0 {
			t.Fatalf("%q parsed without an address", s)
		}
		_, rest, _ := strings.Cut(tg.String(), "://")
		authority, _, _ := strings.Cut(rest, "/")
		if strings.Contains(authority, "@") {
			t.Errorf("String() %q shows a user or password", tg.String())
		}
	})
}

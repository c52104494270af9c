package listen_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/listen"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     listen.Address
		wantErr  string
	}{
		{"host and port is TCP", "127.0.0.1:9191", listen.Address{Network: listen.TCP, Addr: "127.0.0.1:9191"}, ""},
		{"a port alone is TCP on every interface", ":9191", listen.Address{Network: listen.TCP, Addr: ":9191"}, ""},
		{"three slashes name an absolute socket path", "unix:///run/extauthz/grpc.sock", listen.Address{Network: listen.Unix, Addr: "/run/extauthz/grpc.sock"}, ""},
		{"one slash names the same path", "unix:/run/extauthz/grpc.sock", listen.Address{Network: listen.Unix, Addr: "/run/extauthz/grpc.sock"}, ""},
		{"two slashes name a host, which is refused", "unix://run/grpc.sock", listen.Address{}, "names a host"},
		{"a relative socket path is refused", "unix:grpc.sock", listen.Address{}, "must be absolute"},
		{"an empty socket path is refused", "unix://", listen.Address{}, "no socket path"},
		{"a directory is refused", "unix:///run/extauthz/", listen.Address{}, "names a directory"},
		{"a path longer than sun_path is refused", "unix:///" + strings.Repeat("a", 120), listen.Address{}, "at most 103"},
		{"a host without port is refused", "127.0.0.1", listen.Address{}, "must be host:port"},
		{"an empty port is refused", "127.0.0.1:", listen.Address{}, "has no port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := listen.ParseAddress(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseAddress(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseAddress(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if again, err := listen.ParseAddress(got.String()); err != nil || again != got {
				t.Errorf("String %q does not parse back: %v, %v", got.String(), again, err)
			}
		})
	}
}

// socketDir is short: t.TempDir paths can exceed sun_path.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestListenUnix(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantErr string
	}{
		{"a fresh path gets a socket", func(*testing.T, string) {}, ""},
		{"a stale socket left by a dead process is replaced", func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
			if _, err := os.Lstat(path); err != nil {
				t.Fatalf("the stale socket should still exist: %v", err)
			}
		}, ""},
		{"a socket a live process serves is left alone", func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			acceptEach(t, l, func(c net.Conn) { c.Close() })
		}, "another process is listening"},
		{"a regular file at the path is never removed", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is not a socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(socketDir(t), "grpc.sock")
			tc.prepare(t, path)
			l, err := listen.Listen(listen.Address{Network: listen.Unix, Addr: path})
			if tc.wantErr != "" {
				if err == nil {
					l.Close()
					t.Fatalf("Listen succeeded; want an error containing %q", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Listen: %v; want an error containing %q", err, tc.wantErr)
				}
				if _, err := os.Lstat(path); err != nil {
					t.Errorf("the existing file was removed: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != listen.SocketMode {
				t.Errorf("socket mode %v, want a socket with %v", fi.Mode(), listen.SocketMode)
			}
			go func() {
				if c, err := l.Accept(); err == nil {
					c.Close()
				}
			}()
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatalf("dialing the new socket: %v", err)
			}
			c.Close()
			l.Close()
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("closing the listener left the socket file: %v", err)
			}
		})
	}
}

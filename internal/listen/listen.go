// Package listen opens the sidecar's gRPC listener: TCP or a Unix domain
// socket, with optional TLS and client-certificate verification whose files
// can be rotated while it serves.
//
// It exists so the transport choices (where the socket lives, what mode it
// has, which certificate a handshake gets) are decided in one place and
// tested without starting a server; cmd/extauthz only wires it.
package listen

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Network names of an Address.
const (
	TCP  = "tcp"
	Unix = "unix"
)

// SocketMode is the permission of the Unix socket file. Connecting to a Unix
// socket needs write permission on it, so 0660 lets the sidecar's user and
// group in (Envoy in the same pod shares the group: fsGroup, or a common
// supplementary group) and no other local user: anyone who can connect can
// ask for Checks, health and timing of token verification.
const SocketMode os.FileMode = 0o660

// MaxSocketPath is the longest socket path accepted, in bytes: sun_path holds
// 104 bytes on macOS and 108 on Linux, terminating NUL included.
const MaxSocketPath = 103

// Address is a parsed listen address: host:port over TCP, or the path of a
// Unix domain socket.
type Address struct {
	Network string // TCP or Unix
	// Addr is host:port for TCP, the socket's absolute path for Unix.
	Addr string
}

// ParseAddress reads "host:port", "unix:///absolute/path" or
// "unix:/absolute/path". The error says what was expected.
func ParseAddress(s string) (Address, error) {
	rest, ok := strings.CutPrefix(s, "unix:")
	if !ok {
		_, port, err := net.SplitHostPort(s)
		if err != nil {
			return Address{}, fmt.Errorf("must be host:port (127.0.0.1:9191, :9191) or unix:///path/to.sock, found %q", s)
		}
		if port == "" {
			return Address{}, fmt.Errorf("%q has no port", s)
		}
		return Address{Network: TCP, Addr: s}, nil
	}
	path := rest
	if after, ok := strings.CutPrefix(rest, "//"); ok {
		path = after
		if path != "" && !strings.HasPrefix(path, "/") {
			return Address{}, fmt.Errorf("%q names a host, not a path: write unix:///absolute/path (three slashes) or unix:/absolute/path", s)
		}
	}
	switch {
	case path == "" || path == "/":
		return Address{}, fmt.Errorf("%q has no socket path: write unix:///absolute/path/to.sock", s)
	case !strings.HasPrefix(path, "/"):
		return Address{}, fmt.Errorf("the socket path in %q must be absolute (unix:///run/extauthz/grpc.sock): a relative one would depend on the working directory", s)
	case strings.HasSuffix(path, "/"):
		return Address{}, fmt.Errorf("the socket path in %q names a directory; add the socket's file name", s)
	case len(path) > MaxSocketPath:
		return Address{}, fmt.Errorf("the socket path in %q is %d bytes; Unix sockets allow at most %d", s, len(path), MaxSocketPath)
	case strings.ContainsAny(path, "\x00?#"):
		return Address{}, fmt.Errorf("the socket path in %q contains a NUL, ? or #", s)
	}
	return Address{Network: Unix, Addr: path}, nil
}

// String renders a in the form ParseAddress reads: "host:port" or
// "unix:///path".
func (a Address) String() string {
	if a.Network == Unix {
		return "unix://" + a.Addr
	}
	return a.Addr
}

// Target is a's gRPC dial target (grpc.NewClient), which is its String: gRPC
// reads "unix:///path" itself.
func (a Address) Target() string { return a.String() }

// Listen listens on a. For a Unix socket it first removes a stale socket file
// left by a process that died without cleaning up (a socket nobody answers
// on), refuses to touch a path that is not a socket or that a live process
// serves, and sets the socket's mode to SocketMode. Closing the listener
// removes the socket file.
func Listen(a Address) (net.Listener, error) {
	switch a.Network {
	case TCP:
		return net.Listen("tcp", a.Addr)
	case Unix:
		return listenUnix(a.Addr)
	}
	return nil, fmt.Errorf("listen: unknown network %q", a.Network)
}

// staleProbe bounds how long Listen waits to learn whether a process still
// serves an existing socket; a refused or timed-out dial means stale.
const staleProbe = 500 * time.Millisecond

func listenUnix(path string) (net.Listener, error) {
	if err := removeStale(path); err != nil {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	// The socket is created with the umask's mode (0755 under the usual
	// 022: only its owner may connect), so nothing gets in before this.
	if err := os.Chmod(path, SocketMode); err != nil {
		l.Close()
		return nil, fmt.Errorf("setting the mode of %s: %w", path, err)
	}
	// Go removes the file when the listener is closed; say so explicitly,
	// as the sidecar relies on it.
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	return l, nil
}

// ErrInUse is returned when a live process serves the socket path.
var ErrInUse = errors.New("another process is listening on it")

func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("socket %s: the path exists and is not a socket (%s); refusing to replace it", path, fi.Mode().Type())
	}
	if c, err := net.DialTimeout("unix", path, staleProbe); err == nil {
		c.Close()
		return fmt.Errorf("socket %s: %w", path, ErrInUse)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the stale socket %s: %w", path, err)
	}
	return nil
}

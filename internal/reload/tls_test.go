package reload_test

import (
	"testing"

	"github.com/extauthz/extauthz/internal/listen/certtest"
)

// A rotated certificate is applied by a reload, but a listener cannot switch
// between TLS and plaintext while it serves: say so instead of pretending.
func TestTurningGRPCTLSOnOrOffNeedsARestart(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "sidecar CA")
	cert, key := ca.Server(t, "sidecar").Write(t, dir, "server")
	rotatedCert, rotatedKey := ca.Server(t, "rotated").Write(t, dir, "rotated")
	tlsKeys := func(cert, key string) string {
		return "grpc_tls_cert_file: " + cert + "\ngrpc_tls_key_file: " + key + "\n"
	}
	for _, tc := range []struct {
		name          string
		before, after string
		warns         bool
	}{
		{"turning TLS on warns", "", tlsKeys(cert, key), true},
		{"turning TLS off warns", tlsKeys(cert, key), "", true},
		{"rotating the certificate does not warn", tlsKeys(cert, key), tlsKeys(rotatedCert, rotatedKey), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t, spec{Gen: "A", Extra: tc.before})
			if err := s.apply(spec{Gen: "B", Extra: tc.after}); err != nil {
				t.Fatal(err)
			}
			var keys []any
			for _, w := range s.logs.FilterMessage("a changed key needs a restart to take effect; the rest of the config was applied").All() {
				keys = append(keys, w.ContextMap()["key"])
			}
			if got := len(keys) == 1 && keys[0] == "grpc_tls_cert_file (TLS on or off)"; got != tc.warns {
				t.Errorf("restart warnings for keys %v; want one about TLS: %v", keys, tc.warns)
			}
		})
	}
}

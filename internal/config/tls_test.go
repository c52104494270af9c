package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/listen/certtest"
)

func TestGRPCListenerKeys(t *testing.T) {
	f := certtest.NewFiles(t)
	cert, key, otherKey, caFile, empty, missing := f.Cert, f.Key, f.OtherKey, f.CAFile, f.Empty, f.Missing

	tests := []struct {
		name string
		src  string
		env  map[string]string
		want []string
	}{
		{
			name: "a certificate without its key is refused at the certificate",
			src:  "grpc_tls_cert_file: " + cert + "\n",
			want: []string{`t.yaml:1:21: grpc_tls_key_file: is required when grpc_tls_cert_file is set`},
		},
		{
			name: "a key without its certificate is refused at the key",
			src:  "grpc_tls_key_file: " + key + "\n",
			want: []string{`t.yaml:1:20: grpc_tls_cert_file: is required when grpc_tls_key_file is set`},
		},
		{
			name: "a client CA without TLS is refused",
			src:  "grpc_client_ca_file: " + caFile + "\n",
			want: []string{`t.yaml:1:22: grpc_client_ca_file: client certificates are verified during the TLS handshake: set grpc_tls_cert_file and grpc_tls_key_file too`},
		},
		{
			name: "a missing certificate file is named at its key",
			src:  "grpc_tls_cert_file: " + missing + "\ngrpc_tls_key_file: " + key + "\n",
			want: []string{`t.yaml:1:21: grpc_tls_cert_file: ` + missing + ` does not exist`},
		},
		{
			name: "a key that is not the certificate's is a mismatch at the key",
			src:  "grpc_tls_cert_file: " + cert + "\ngrpc_tls_key_file: " + otherKey + "\n",
			want: []string{`t.yaml:2:20: grpc_tls_key_file: ` + otherKey + ` is not the private key of the certificate in ` + cert},
		},
		{
			name: "a CA file without certificates is refused at the CA",
			src:  "grpc_tls_cert_file: " + cert + "\ngrpc_tls_key_file: " + key + "\ngrpc_client_ca_file: " + empty + "\n",
			want: []string{`t.yaml:3:22: grpc_client_ca_file: ` + empty + `: no PEM CERTIFICATE block found`},
		},
		{
			name: "a file named in the environment is reported at its variable",
			src:  "grpc_tls_cert_file: " + cert + "\ngrpc_tls_key_file: " + key + "\n",
			env:  map[string]string{"SHARED_SECRET": validSecret, "GRPC_CLIENT_CA_FILE": missing},
			want: []string{`env: GRPC_CLIENT_CA_FILE: ` + missing + ` does not exist`},
		},
		{
			name: "a Unix socket with a relative path is refused",
			src:  "grpc_address: unix:grpc.sock\n",
			want: []string{`t.yaml:1:15: grpc_address: the socket path in "unix:grpc.sock" must be absolute (unix:///run/extauthz/grpc.sock): a relative one would depend on the working directory`},
		},
		{
			name: "a Unix socket for the pages is refused",
			src:  "http_address: unix:///run/pages.sock\n",
			want: []string{`t.yaml:1:15: http_address: must be host:port; a Unix socket ("unix:///run/pages.sock") is supported for grpc_address only`},
		},
		{
			name: "a Unix socket with an absolute path is accepted",
			src:  "grpc_address: unix:///run/extauthz/grpc.sock\n",
		},
		{
			name: "TLS with client certificates is accepted",
			src:  "grpc_tls_cert_file: " + cert + "\ngrpc_tls_key_file: " + key + "\ngrpc_client_ca_file: " + caFile + "\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if env == nil {
				env = withSecret
			}
			if got := problemsOf(t, tc.src, env); !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}

	t.Run("the files are read into the config", func(t *testing.T) {
		c := mustParse(t, "grpc_tls_cert_file: "+cert+"\ngrpc_tls_key_file: "+key+"\ngrpc_client_ca_file: "+caFile+"\n", withSecret)
		if c.GRPCTLS == nil || !c.GRPCTLS.MutualTLS || c.GRPCTLS.Leaf.Subject.CommonName != "sidecar" {
			t.Fatalf("GRPCTLS = %+v", c.GRPCTLS)
		}
	})
	t.Run("without the keys the listener is plaintext", func(t *testing.T) {
		if c := mustParse(t, "", withSecret); c.GRPCTLS != nil {
			t.Errorf("GRPCTLS = %+v", c.GRPCTLS)
		}
	})
}

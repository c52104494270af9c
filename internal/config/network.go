package config

// This file checks the keys that reach outside the process: the listeners'
// addresses, the gRPC TLS files (read here), and the shared store.

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/extauthz/extauthz/internal/listen"
	"github.com/extauthz/extauthz/internal/store"
)

// checkAddress checks a listener's address, host:port or (grpc_address
// only) unix:///path, and reports whether it is usable.
func (d *decoder) checkAddress(key, addr string) bool {
	if strings.HasPrefix(addr, "unix:") {
		if key != "grpc_address" {
			d.atPath(key, fmt.Sprintf("must be host:port; a Unix socket (%q) is supported for grpc_address only", clip(addr)))
			return false
		}
		if _, err := listen.ParseAddress(addr); err != nil {
			d.atPath(key, err.Error())
			return false
		}
		return true
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		d.atPath(key, fmt.Sprintf("must be host:port, such as 127.0.0.1:9191 or :9191, found %q", clip(addr)))
		return false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		d.atPath(key, fmt.Sprintf("port %q is not a number from 0 to 65535", clip(port)))
		return false
	}
	if strings.IndexFunc(host, notVisible) >= 0 {
		d.atPath(key, fmt.Sprintf("host %q is not a host name or IP address", clip(host)))
		return false
	}
	return true
}

// tlsKeys are the config keys of listen's files.
var tlsKeys = map[listen.Field]string{
	listen.CertFile:     "grpc_tls_cert_file",
	listen.KeyFile:      "grpc_tls_key_file",
	listen.ClientCAFile: "grpc_client_ca_file",
}

// checkGRPCTLS reads the grpc_tls_* files into c.GRPCTLS, reporting each
// problem at the key of the file it is about.
func (d *decoder) checkGRPCTLS(c *Config) {
	cert, key, ca := c.GRPCTLSCertFile, c.GRPCTLSKeyFile, c.GRPCClientCAFile
	switch {
	case cert == "" && key == "" && ca == "":
		return
	case cert == "" && key == "":
		d.atPath("grpc_client_ca_file", "client certificates are verified during the TLS handshake: set grpc_tls_cert_file and grpc_tls_key_file too")
		return
	case cert == "":
		d.add(d.lookup("grpc_tls_key_file"), "grpc_tls_cert_file", "is required when grpc_tls_key_file is set")
		return
	case key == "":
		d.add(d.lookup("grpc_tls_cert_file"), "grpc_tls_key_file", "is required when grpc_tls_cert_file is set")
		return
	}
	m, errs := listen.Load(listen.Files{Cert: cert, Key: key, ClientCA: ca}, time.Now())
	for _, e := range errs {
		d.atPath(tlsKeys[e.Field], e.Msg)
	}
	c.GRPCTLS = m
}

// checkStore checks the databroker_storage_* keys and revocation_ttl, and
// warns when a token could outlive its revocation.
func (d *decoder) checkStore(c *Config) {
	if c.RevocationTTL == 0 {
		if _, written := d.where["revocation_ttl"]; !written {
			c.RevocationTTL = Duration(DefaultRevocationTTL)
		}
	}
	if c.RevocationTTL <= 0 {
		d.atPath("revocation_ttl", "must be positive, found "+c.RevocationTTL.String())
	}
	if c.DatabrokerStorageType == "" {
		c.DatabrokerStorageType = DefaultDatabrokerStorageType
	}
	switch c.DatabrokerStorageType {
	case StorageMemory:
		if c.DatabrokerStorageConnectionString != "" {
			d.atPath("databroker_storage_connection_string", "is set but databroker_storage_type is memory: set databroker_storage_type: redis to use it")
		}
		return
	case StorageRedis:
	default:
		d.atPath("databroker_storage_type", fmt.Sprintf("must be %q or %q, found %q", StorageMemory, StorageRedis, clip(c.DatabrokerStorageType)))
		return
	}
	if c.DatabrokerStorageConnectionString == "" {
		d.add(d.lookup("databroker_storage_type"), "databroker_storage_connection_string",
			"is required when databroker_storage_type is redis (redis://host:6379/0; the DATABROKER_STORAGE_CONNECTION_STRING variable keeps a password out of the file)")
	} else if t, err := store.ParseConnectionString(c.DatabrokerStorageConnectionString); err != nil {
		d.atPath("databroker_storage_connection_string", err.Error())
	} else {
		c.StorageTarget = t
	}
	if c.SigningKey == "" {
		d.add(d.lookup("databroker_storage_type"), "signing_key",
			"is required with a shared store: every replica must sign assertions with the key every other replica's JWKS publishes")
	}
	if c.RevocationTTL <= 0 {
		return
	}
	ttl := c.RevocationTTL.Std()
	if c.CookieExpire.Std() > ttl {
		c.Warnings = append(c.Warnings, d.warning("revocation_ttl", fmt.Sprintf("%s is shorter than cookie_expire (%s): a revoked session would be accepted again once its revocation expires", ttl, c.CookieExpire)))
	}
	switch {
	case c.MaxServiceAccountLifetime == 0:
		c.Warnings = append(c.Warnings, d.warning("revocation_ttl", fmt.Sprintf("max_service_account_lifetime is unset, so a service-account token may live longer than revocation_ttl (%s) and be accepted again once its revocation expires: set max_service_account_lifetime to at most %s", ttl, ttl)))
	case c.MaxServiceAccountLifetime.Std() > ttl:
		c.Warnings = append(c.Warnings, d.warning("revocation_ttl", fmt.Sprintf("%s is shorter than max_service_account_lifetime (%s): a revoked service-account token would be accepted again once its revocation expires", ttl, c.MaxServiceAccountLifetime)))
	}
}

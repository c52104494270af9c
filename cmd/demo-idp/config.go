package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/url"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/extauthz/extauthz/internal/oidctest"
)

// DefaultAddr is where the provider listens when the config names no listen
// address: loopback, as a demo provider that signs anyone in must be.
const DefaultAddr = "127.0.0.1:5556"

// SecretEnv names the variable holding the client secret: the same name the
// sidecar reads idp_client_secret from, so one .env feeds both. It is never
// read from the file, which is meant to be committed.
const SecretEnv = "IDP_CLIENT_SECRET"

// fileConfig is the YAML file, e.g.
//
//	issuer: http://idp.localhost:5556   # the URL both browsers and the sidecar reach
//	listen: 0.0.0.0:5556
//	client_id: extauthz
//	redirect_uris: [http://authenticate.localhost:8080/.pomerium/callback]
//	users:
//	  - name: alice
//	    email: alice@corp.example
//	    groups: [admins, engineering]
type fileConfig struct {
	Issuer       string     `yaml:"issuer"`
	Listen       string     `yaml:"listen"`
	ClientID     string     `yaml:"client_id"`
	RedirectURIs []string   `yaml:"redirect_uris"`
	Users        []fileUser `yaml:"users"`
}

type fileUser struct {
	ID     string   `yaml:"id"`   // the subject; default: the name
	Name   string   `yaml:"name"` // shown on the login page
	Email  string   `yaml:"email"`
	Groups []string `yaml:"groups"`
}

// loadFile reads the config at path; see load.
func loadFile(path string, getenv func(string) string) (oidctest.Options, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return oidctest.Options{}, fmt.Errorf("reading the config: %w", err)
	}
	opts, err := load(data, getenv)
	if err != nil {
		return oidctest.Options{}, fmt.Errorf("%s: %w", path, err)
	}
	return opts, nil
}

// load checks a config and turns it into the provider's options. Every
// mistake is an error naming the key: a provider that started on half a
// config would sign people in as someone else's idea of a user.
func load(data []byte, getenv func(string) string) (oidctest.Options, error) {
	var c fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return oidctest.Options{}, errors.New("the config is empty: it needs issuer, client_id, redirect_uris and users")
		}
		return oidctest.Options{}, err
	}
	opts := oidctest.Options{Issuer: c.Issuer, Addr: c.Listen, ClientID: c.ClientID, RedirectURIs: c.RedirectURIs}
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	var problems []string
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	if u, err := url.Parse(c.Issuer); c.Issuer == "" {
		add("issuer: is required: the URL both browsers and the sidecar reach the provider by (e.g. http://idp.localhost:5556)")
	} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		add("issuer: %q is not an http(s) URL without query, fragment or user info", c.Issuer)
	}
	if _, _, err := net.SplitHostPort(opts.Addr); err != nil {
		add("listen: %q is not HOST:PORT", opts.Addr)
	}
	if c.ClientID == "" {
		add("client_id: is required: the sidecar's idp_client_id")
	}
	if len(c.RedirectURIs) == 0 {
		add("redirect_uris: is required: the sidecar's authenticate_service_url + /.pomerium/callback")
	}
	for i, r := range c.RedirectURIs {
		if u, err := url.Parse(r); err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" {
			add("redirect_uris[%d]: %q is not an absolute URL without fragment", i, r)
		}
	}
	opts.ClientSecret = getenv(SecretEnv)
	if opts.ClientSecret == "" {
		add("the client secret is not set: put it in %s (the sidecar's idp_client_secret, same variable)", SecretEnv)
	}

	if len(c.Users) == 0 {
		add("users: is required: at least one user to sign in as")
	}
	ids, names := map[string]bool{}, map[string]bool{}
	for i, fu := range c.Users {
		u := oidctest.User{ID: fu.ID, Name: fu.Name, Email: fu.Email, Groups: fu.Groups}
		if u.ID == "" {
			u.ID = u.Name
		}
		switch {
		case u.Name == "":
			add("users[%d].name: is required", i)
		case names[u.Name]:
			add("users[%d].name: %q is listed twice", i, u.Name)
		case ids[u.ID]:
			add("users[%d].id: %q is listed twice", i, u.ID)
		}
		names[u.Name], ids[u.ID] = true, true
		if a, err := mail.ParseAddress(u.Email); err != nil || a.Address != u.Email {
			add("users[%d].email: %q is not a plain address (name@example.com)", i, u.Email)
		}
		for j, g := range u.Groups {
			if strings.TrimSpace(g) == "" || strings.TrimSpace(g) != g {
				add("users[%d].groups[%d]: %q is empty or has surrounding spaces", i, j, g)
			}
		}
		opts.Users = append(opts.Users, u)
	}
	if len(problems) > 0 {
		return oidctest.Options{}, errors.New(strings.Join(problems, "; "))
	}
	return opts, nil
}

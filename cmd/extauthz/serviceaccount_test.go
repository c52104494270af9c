package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
)

const secretPrompt = "Enter base64 encoded shared key >"

// jws is a compact token split into its parts.
type jws struct {
	raw       string
	header    string // decoded JSON, as sent
	claims    map[string]any
	signature []byte
}

func splitJWS(t *testing.T, tok string) jws {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts, want 3", tok, len(parts))
	}
	dec := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("token part %q is not base64url without padding: %v", s, err)
		}
		return b
	}
	var claims map[string]any
	if err := json.Unmarshal(dec(parts[1]), &claims); err != nil {
		t.Fatalf("claims are not a JSON object: %v", err)
	}
	return jws{raw: tok, header: string(dec(parts[0])), claims: claims, signature: dec(parts[2])}
}

// hs256 signs the token's header and payload with key.
func (j jws) hs256(key []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(j.raw[:strings.LastIndexByte(j.raw, '.')]))
	return mac.Sum(nil)
}

func (j jws) num(t *testing.T, claim string) int64 {
	t.Helper()
	v, ok := j.claims[claim].(float64)
	if !ok {
		t.Fatalf("claim %q = %#v, want a NumericDate", claim, j.claims[claim])
	}
	return int64(v)
}

// strings returns a claim that must be a JSON array of strings.
func (j jws) strs(t *testing.T, claim string) []string {
	t.Helper()
	raw, ok := j.claims[claim].([]any)
	if !ok {
		t.Fatalf("claim %q = %#v, want a JSON array", claim, j.claims[claim])
	}
	out := make([]string, len(raw))
	for i, v := range raw {
		if out[i], ok = v.(string); !ok {
			t.Fatalf("claim %q[%d] = %#v, want a string", claim, i, v)
		}
	}
	return out
}

// mint runs the service-account command (as `extauthz service-account`, or as
// pomerium-cli when inv.bin is that) and returns the token it printed, failing
// unless it succeeded with exactly the token and a newline on stdout.
func mint(t *testing.T, inv invocation) (jws, result) {
	t.Helper()
	if inv.bin != binPomeriumCLI {
		inv.args = append([]string{"service-account"}, inv.args...)
	}
	r := execBin(t, inv)
	if r.code != exitOK {
		t.Fatalf("service-account failed:\n%s", r)
	}
	tok := strings.TrimSuffix(r.stdout, "\n")
	if tok+"\n" != r.stdout || strings.ContainsAny(tok, " \t\r\n") {
		t.Fatalf("stdout = %q, want exactly the JWT and one newline", r.stdout)
	}
	return splitJWS(t, tok), r
}

func TestServiceAccountSecretSources(t *testing.T) {
	secret := testkit.Secret(t)
	other := testkit.Secret(t)
	unpadded := strings.TrimRight(secret, "=")
	base := []string{"-email", "bob@corp.example", "-aud", "app.example.com", "-iss", "authenticate.example.com"}
	tests := []struct {
		name       string
		bin        string
		args       []string // after base
		env        map[string]string
		stdin      string
		wantKey    string // the text that must be the HMAC key
		wantPrompt bool
	}{
		{name: "the secret is the positional argument", args: []string{secret}, wantKey: secret},
		{name: "the argument wins over POMERIUM_SHARED_KEY", args: []string{secret}, env: map[string]string{"POMERIUM_SHARED_KEY": other}, wantKey: secret},
		{name: "POMERIUM_SHARED_KEY is used when there is no argument, without a prompt", env: map[string]string{"POMERIUM_SHARED_KEY": secret}, stdin: other + "\n", wantKey: secret},
		{name: "the prompt on stderr is answered on stdin", stdin: secret + "\n", wantKey: secret, wantPrompt: true},
		{name: "a prompt answer without a trailing newline is read to EOF", stdin: secret, wantKey: secret, wantPrompt: true},
		{name: "a prompt answer with CRLF and spaces is trimmed", stdin: "  " + secret + " \r\n", wantKey: secret, wantPrompt: true},
		{name: "a secret without base64 padding is accepted and used as written", args: []string{unpadded}, wantKey: unpadded},
		{name: "invoked as pomerium-cli, the argument is the secret", bin: "pomerium-cli", args: []string{secret}, wantKey: secret},
		{name: "invoked as pomerium-cli, the prompt is answered on stdin", bin: "pomerium-cli", stdin: secret + "\n", wantKey: secret, wantPrompt: true},
		{name: "invoked as pomerium-cli, POMERIUM_SHARED_KEY is used", bin: "pomerium-cli", env: map[string]string{"POMERIUM_SHARED_KEY": secret}, wantKey: secret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inv := invocation{args: append(slices.Clone(base), tt.args...), env: tt.env, stdin: tt.stdin}
			if tt.bin == "pomerium-cli" {
				inv.bin = binPomeriumCLI
			}
			tok, r := mint(t, inv)
			if got := strings.Contains(r.stderr, secretPrompt); got != tt.wantPrompt {
				t.Errorf("prompt shown on stderr = %t, want %t; stderr = %q", got, tt.wantPrompt, r.stderr)
			}
			if tt.wantPrompt && strings.TrimSpace(strings.TrimSuffix(r.stderr, noSubWarning)) != secretPrompt {
				t.Errorf("stderr = %q, want only the prompt", r.stderr)
			}
			if strings.Contains(r.stdout, "Enter") {
				t.Errorf("the prompt leaked to stdout: %q", r.stdout)
			}
			if !hmac.Equal(tok.signature, tok.hs256([]byte(tt.wantKey))) {
				t.Errorf("the signature does not verify with the secret's text %q as the HMAC key", tt.wantKey)
			}
			decoded, err := base64.StdEncoding.DecodeString(secret)
			if err != nil {
				t.Fatal(err)
			}
			if hmac.Equal(tok.signature, tok.hs256(decoded)) {
				t.Error("the signature verifies with the decoded secret bytes; pomerium-cli signs with the text")
			}
		})
	}
}

func TestServiceAccountToken(t *testing.T) {
	secret := testkit.Secret(t)
	tests := []struct {
		name       string
		args       []string
		wantClaims map[string]any // exact set of claims, less the time claims and jti
		wantLife   time.Duration
	}{
		{
			name: "the required flags alone give the required claims and omit every empty optional one",
			args: []string{"-email", "bob@corp.example", "-aud", "app.example.com", "-iss", "authenticate.example.com"},
			wantClaims: map[string]any{
				"iss": "authenticate.example.com", "aud": []any{"app.example.com"}, "email": "bob@corp.example",
			},
			wantLife: time.Hour,
		},
		{
			name: "every flag lands in its claim, -aud repeated and comma lists joined in order",
			args: []string{
				"-email", "alice@corp.example", "-user", "alice", "-sub", "u-123",
				"-aud", "a.example.com,b.example.com", "-aud", "c.example.com",
				"-groups", "admins,ops", "-iss", "authenticate.example.com", "-expiry", "90m",
				"-impersonate_email", "bob@corp.example", "-impersonate_groups", "engineering, qa",
				"-impersonate_access", "read_only", "-impersonate_reason", "ticket 42",
			},
			wantClaims: map[string]any{
				"iss": "authenticate.example.com", "sub": "u-123",
				"aud":   []any{"a.example.com", "b.example.com", "c.example.com"},
				"email": "alice@corp.example", "user": "alice", "groups": []any{"admins", "ops"},
				"impersonate_email": "bob@corp.example", "impersonate_groups": []any{"engineering", "qa"},
				"impersonate_access": "read_only", "impersonate_reason": "ticket 42",
			},
			wantLife: 90 * time.Minute,
		},
		{
			name: "impersonating groups alone with read_write access",
			args: []string{
				"-email", "alice@corp.example", "-aud", "app.example.com", "-iss", "i.example.com", "-expiry", "5m",
				"-impersonate_groups", "engineering", "-impersonate_access", "read_write",
			},
			wantClaims: map[string]any{
				"iss": "i.example.com", "aud": []any{"app.example.com"}, "email": "alice@corp.example",
				"impersonate_groups": []any{"engineering"}, "impersonate_access": "read_write",
			},
			wantLife: 5 * time.Minute,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := time.Now().Unix()
			tok, r := mint(t, invocation{args: append(slices.Clone(tt.args), secret)})
			after := time.Now().Unix()
			// A token without -sub gets the one warning, and nothing else.
			wantStderr := ""
			if !slices.Contains(tt.args, "-sub") {
				wantStderr = noSubWarning
			}
			if r.stderr != wantStderr {
				t.Errorf("stderr = %q, want %q", r.stderr, wantStderr)
			}
			if tok.header != `{"alg":"HS256","typ":"JWT"}` {
				t.Errorf("header = %s, want exactly {\"alg\":\"HS256\",\"typ\":\"JWT\"}", tok.header)
			}
			if !hmac.Equal(tok.signature, tok.hs256([]byte(secret))) {
				t.Error("the signature does not verify with the secret's text as the key")
			}
			iat, nbf, exp := tok.num(t, "iat"), tok.num(t, "nbf"), tok.num(t, "exp")
			if iat < before || iat > after {
				t.Errorf("iat = %d, want the time of minting (%d..%d)", iat, before, after)
			}
			if nbf != iat {
				t.Errorf("nbf = %d, want iat %d", nbf, iat)
			}
			if got := time.Duration(exp-iat) * time.Second; got != tt.wantLife {
				t.Errorf("exp - iat = %s, want -expiry %s", got, tt.wantLife)
			}
			if jti, _ := tok.claims["jti"].(string); len(jti) < 16 {
				t.Errorf("jti = %#v, want a random id", tok.claims["jti"])
			}
			rest := map[string]any{}
			for k, v := range tok.claims {
				switch k {
				case "iat", "nbf", "exp", "jti":
				default:
					rest[k] = v
				}
			}
			if !reflect.DeepEqual(rest, tt.wantClaims) {
				t.Errorf("claims = %s\nwant     %s", mustJSON(rest), mustJSON(tt.wantClaims))
			}
		})
	}

	t.Run("aud is a JSON array even with one audience", func(t *testing.T) {
		tok, _ := mint(t, invocation{args: []string{"-email", "e@x", "-aud", "one.example.com", "-iss", "i", secret}})
		if got := tok.strs(t, "aud"); !slices.Equal(got, []string{"one.example.com"}) {
			t.Errorf("aud = %q", got)
		}
	})

	t.Run("two runs with the same flags get different jti values", func(t *testing.T) {
		args := []string{"-email", "e@x", "-aud", "a", "-iss", "i", secret}
		a, _ := mint(t, invocation{args: args})
		b, _ := mint(t, invocation{args: args})
		if a.claims["jti"] == b.claims["jti"] {
			t.Errorf("both tokens have jti %v", a.claims["jti"])
		}
	})

	t.Run("invoked as pomerium-cli the same flags give the same claims", func(t *testing.T) {
		args := []string{"-email", "e@corp.example", "-groups", "g1,g2", "-aud", "a,b", "-iss", "i", "-expiry", "2h", secret}
		x, _ := mint(t, invocation{args: args})
		p, _ := mint(t, invocation{bin: binPomeriumCLI, args: args})
		strip := func(c map[string]any) map[string]any {
			out := map[string]any{}
			for k, v := range c {
				if k != "jti" && k != "iat" && k != "nbf" && k != "exp" {
					out[k] = v
				}
			}
			return out
		}
		if !reflect.DeepEqual(strip(x.claims), strip(p.claims)) {
			t.Errorf("extauthz service-account claims %s\npomerium-cli claims %s", mustJSON(x.claims), mustJSON(p.claims))
		}
		if p.num(t, "exp")-p.num(t, "iat") != 7200 {
			t.Errorf("pomerium-cli -expiry 2h gave exp - iat = %d", p.num(t, "exp")-p.num(t, "iat"))
		}
	})

	t.Run("an expiry over 24h warns on stderr but still mints the token", func(t *testing.T) {
		tok, r := mint(t, invocation{args: []string{"-email", "e@x", "-aud", "a", "-iss", "i", "-expiry", "48h", secret}})
		if !strings.Contains(r.stderr, "warning") || !strings.Contains(r.stderr, "48h") {
			t.Errorf("stderr = %q, want a warning naming the expiry", r.stderr)
		}
		if got := tok.num(t, "exp") - tok.num(t, "iat"); got != 48*3600 {
			t.Errorf("exp - iat = %d, want 48h", got)
		}
	})
}

// noSubWarning is what minting without -sub says on stderr.
const noSubWarning = "warning: -sub is not set; give each service account a stable subject, since apps key identities on sub.\n"

func TestServiceAccountUsageErrors(t *testing.T) {
	secret := testkit.Secret(t)
	ok := func(extra ...string) []string {
		return append([]string{"-email", "e@corp.example", "-aud", "a.example.com", "-iss", "i.example.com"}, extra...)
	}
	tests := []struct {
		name  string
		bin   string
		args  []string
		env   map[string]string
		stdin string
		want  string // part of the one sentence on stderr
	}{
		{name: "a missing -email", args: []string{"-aud", "a", "-iss", "i", secret}, want: "-email is required"},
		{name: "a missing -aud", args: []string{"-email", "e@x", "-iss", "i", secret}, want: "-aud is required"},
		{name: "an -aud of only commas counts as missing", args: []string{"-email", "e@x", "-aud", ",", "-iss", "i", secret}, want: "-aud is required"},
		{name: "a missing -iss", args: []string{"-email", "e@x", "-aud", "a", secret}, want: "-iss is required"},
		{name: "an -expiry that is not a duration", args: ok("-expiry", "nope", secret), want: `invalid value "nope" for flag -expiry`},
		{name: "a negative -expiry", args: ok("-expiry", "-1h", secret), want: "-expiry must be a positive duration"},
		{name: "a zero -expiry", args: ok("-expiry", "0s", secret), want: "-expiry must be a positive duration"},
		{name: "an empty secret argument", args: ok(""), want: "the shared secret is empty"},
		{name: "a blank POMERIUM_SHARED_KEY and nothing on stdin", args: ok(), env: map[string]string{"POMERIUM_SHARED_KEY": "  "}, want: "the shared secret is empty"},
		{name: "an empty stdin at the prompt", args: ok(), stdin: "", want: "the shared secret is empty"},
		{name: "an empty line at the prompt", args: ok(), stdin: "\n", want: "the shared secret is empty"},
		{name: "a secret that is not base64", args: ok("not*base64!"), want: "the shared secret is not base64"},
		{name: "a POMERIUM_SHARED_KEY that is not base64", args: ok(), env: map[string]string{"POMERIUM_SHARED_KEY": "%%%"}, want: "the shared secret is not base64"},
		{name: "an unknown flag", args: ok("-bogus", secret), want: "unknown flag -bogus"},
		{name: "a flag without its value", args: []string{"-email", "e@x", "-aud", "a", "-iss"}, want: "flag -iss needs a value"},
		{name: "an -impersonate_access that is neither read_only nor read_write", args: ok("-impersonate_email", "b@x", "-impersonate_access", "rw", secret), want: "-impersonate_access must be read_only or read_write"},
		{name: "an -impersonate_reason without anyone to impersonate", args: ok("-impersonate_reason", "why", secret), want: "need -impersonate_email or -impersonate_groups"},
		{name: "a full-width look-alike -impersonate_email", args: ok("-impersonate_email", "ｓｅｃｕｒｉｔｙ@corp.example", secret), want: "-impersonate_email must be a plain ASCII address"},
		{name: "an accented -impersonate_email", args: ok("-impersonate_email", "sécurity@corp.example", secret), want: "-impersonate_email must be a plain ASCII address"},
		{name: "a Cyrillic look-alike -impersonate_email", args: ok("-impersonate_email", "s\u0435curity@corp.example", secret), want: "-impersonate_email must be a plain ASCII address"},
		{name: "an -impersonate_email without an at sign", args: ok("-impersonate_email", "security", secret), want: "-impersonate_email must be a plain ASCII address"},
		{name: "an -impersonate_email with a space", args: ok("-impersonate_email", "secu rity@corp.example", secret), want: "-impersonate_email must be a plain ASCII address"},
		{name: "two positional arguments", args: ok(secret, secret), want: "at most one argument"},
		{name: "an -iss written as a URL", args: []string{"-email", "e@x", "-aud", "a", "-iss", "https://authenticate.acme.test", secret}, want: "-iss is the authenticate host name"},
		{name: "an -aud written as a URL", args: []string{"-email", "e@x", "-aud", "http://app.localhost", "-iss", "i", secret}, want: "-aud takes route host names"},
		{name: "a secret too short for any sidecar", args: ok("aGVsbG8="), want: "decodes to 5 bytes, but a sidecar's shared_secret must decode to at least 32"},
		{name: "an -expiry in days", args: ok("-expiry", "2d", secret), want: "write 48h for 2d"},
		{name: "as pomerium-cli, a missing -email", bin: "pomerium-cli", args: []string{"-aud", "a", "-iss", "i", secret}, want: "pomerium-cli: -email is required"},
		{name: "as pomerium-cli, an empty stdin at the prompt", bin: "pomerium-cli", args: ok(), want: "pomerium-cli: the shared secret is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is a usage error", func(t *testing.T) {
			t.Parallel()
			inv := invocation{args: tt.args, env: tt.env, stdin: tt.stdin}
			if tt.bin == "pomerium-cli" {
				inv.bin = binPomeriumCLI
			} else {
				inv.args = append([]string{"service-account"}, inv.args...)
			}
			assertUsageError(t, execBin(t, inv), tt.want)
		})
	}
}

func TestServiceAccountHelp(t *testing.T) {
	for _, bin := range []string{"extauthz", "pomerium-cli"} {
		t.Run("-h as "+bin+" lists every flag of the original CLI on stderr and succeeds", func(t *testing.T) {
			inv := invocation{args: []string{"service-account", "-h"}}
			if bin == "pomerium-cli" {
				inv = invocation{bin: binPomeriumCLI, args: []string{"-h"}}
			}
			r := execBin(t, inv)
			if r.code != exitOK || r.stdout != "" {
				t.Fatalf("want exit 0 and nothing on stdout\n%s", r)
			}
			usage := "Usage: extauthz service-account "
			if bin == "pomerium-cli" {
				usage = "Usage: pomerium-cli "
			}
			if !strings.HasPrefix(r.stderr, usage) {
				t.Errorf("help does not start with %q:\n%s", usage, r.stderr)
			}
			flags := []string{"-aud", "-email", "-expiry", "-groups", "-impersonate_email", "-impersonate_groups",
				"-impersonate_access", "-impersonate_reason", "-iss", "-sub", "-user"}
			slices.Sort(flags)
			for _, f := range flags {
				if !strings.Contains(r.stderr, "  "+f+" ") {
					t.Errorf("help does not list %s:\n%s", f, r.stderr)
				}
			}
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

package check

import (
	"strings"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// requestHeaders returns the request's headers by lower-case name, however
// Envoy sent them (contract section 4). By default Envoy fills `headers`, one
// entry per name with repeated lines already joined; with its filter's
// encode_raw_headers it fills `header_map` instead, one entry per line with
// the value in raw_value bytes, and leaves `headers` empty. Both are read
// here, once, at the adapter's edge, so nothing after it can tell them apart;
// the common case returns Envoy's map as is.
func requestHeaders(r *authv3.AttributeContext_HttpRequest) map[string]string {
	raw := r.GetHeaderMap().GetHeaders()
	return combineHeaders(r.GetHeaders(), len(raw), func(i int) (string, string, string) {
		h := raw[i]
		return h.GetKey(), h.GetValue(), string(h.GetRawValue())
	})
}

// combineHeaders is requestHeaders over either decoding of a CheckRequest
// (the generated message, or the lean decoder's fields): headers is the
// `headers` map, and line(i) the key, value and raw_value of header_map's
// i-th of n entries.
func combineHeaders(headers map[string]string, n int, line func(i int) (key, value, rawValue string)) map[string]string {
	if n == 0 {
		return headers
	}
	// Envoy never sends both; should something, every line counts, so that a
	// header to strip cannot hide in the half that would otherwise be ignored.
	out := make(map[string]string, len(headers)+n)
	for k, v := range headers {
		joinHeader(out, strings.ToLower(k), v)
	}
	for i := range n {
		key, v, raw := line(i)
		if raw != "" {
			v = raw
		}
		joinHeader(out, strings.ToLower(key), v)
	}
	return out
}

// joinHeader adds one header line to m, joining a repeated name as Envoy
// does: "; " for cookie (RFC 6265 section 5.4), ", " for everything else
// (RFC 9110 section 5.3).
func joinHeader(m map[string]string, name, value string) {
	prev, seen := m[name]
	if !seen {
		m[name] = value
		return
	}
	sep := ", "
	if name == "cookie" {
		sep = "; "
	}
	m[name] = prev + sep + value
}

// pomeriumPrefix starts every identity header the sidecar owns.
const pomeriumPrefix = "x-pomerium-"

// isPomeriumHeader matches x-pomerium-* in any spelling: the name,
// lower-cased with "_" read as "-", starts with x-pomerium-. The bundled
// Envoy rejects underscores in names, but users' configs may not, and
// upstreams written in some languages (CGI, PHP, Django) read
// "x_pomerium-claim-email" as X-Pomerium-Claim-Email.
func isPomeriumHeader(name string) bool {
	return len(name) >= len(pomeriumPrefix) && sameHeaderName(name[:len(pomeriumPrefix)], pomeriumPrefix)
}

// sameHeaderName reports whether two header names are the same once each is
// lower-cased with "_" read as "-". It does not allocate.
func sameHeaderName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if canonicalByte(a[i]) != canonicalByte(b[i]) {
			return false
		}
	}
	return true
}

func canonicalByte(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}

// utf8Value returns v fit for a string field of the answer (proto3 strings
// must be UTF-8, and Envoy reads `value`, never `raw_value`, of the headers
// it sets): each byte outside valid UTF-8 becomes '!', as Envoy itself
// renders such bytes in `headers`. Only values that came from header_map
// raw bytes can need it.
func utf8Value(v string) string {
	if utf8.ValidString(v) {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteByte('!')
		} else {
			b.WriteString(v[i : i+size])
		}
		i += size
	}
	return b.String()
}

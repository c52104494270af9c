package check

import (
	"strings"
	"unicode/utf8"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// RequestHeaders are a request's headers, one entry per name, in the order
// the names first came. A request carries 10 to 20 headers and Check reads
// three or four of them by name: scanning a slice for those costs less than
// hashing every header into a map (issue 19: building the map was ~30% of
// decoding a CheckRequest).
type RequestHeaders []Header

// Get returns the value of the header named name, spelled exactly (names
// are lower-case), or "" when there is none.
func (h RequestHeaders) Get(name string) string {
	for i := range h {
		if h[i].Name == name {
			return h[i].Value
		}
	}
	return ""
}

// indexAfter is how many names a headerList scans before it looks names up
// in a map: adding n names by scanning costs n²/2 comparisons, nothing for
// Envoy's ~15 but quadratic for a hostile CheckRequest of a million tiny
// headers (gRPC's 4 MiB message), which must stay as cheap as a map.
const indexAfter = 32

// headerList builds a RequestHeaders, one entry per name, as lines are added.
type headerList struct {
	h     RequestHeaders
	index map[string]int // name -> position in h, once h has indexAfter names
}

// find is the position of name in l, or -1.
func (l *headerList) find(name string) int {
	if l.index != nil {
		if i, ok := l.index[name]; ok {
			return i
		}
		return -1
	}
	for i := range l.h {
		if l.h[i].Name == name {
			return i
		}
	}
	return -1
}

// append adds name, which l does not hold.
func (l *headerList) append(name, value string) {
	l.h = append(l.h, Header{name, value})
	switch {
	case l.index != nil:
		l.index[name] = len(l.h) - 1
	case len(l.h) >= indexAfter:
		l.index = make(map[string]int, 2*len(l.h))
		for i := range l.h {
			l.index[l.h[i].Name] = i
		}
	}
}

// set adds name with value, replacing any earlier value: a protobuf map's
// repeated key, whose last value wins.
func (l *headerList) set(name, value string) {
	if i := l.find(name); i >= 0 {
		l.h[i].Value = value
		return
	}
	l.append(name, value)
}

// join adds one header line, joining a repeated name to the earlier lines as
// Envoy does: "; " for cookie (RFC 6265 section 5.4), ", " for everything
// else (RFC 9110 section 5.3).
func (l *headerList) join(name, value string) {
	i := l.find(name)
	if i < 0 {
		l.append(name, value)
		return
	}
	sep := ", "
	if name == "cookie" {
		sep = "; "
	}
	l.h[i].Value = l.h[i].Value + sep + value
}

// requestHeaders returns the request's headers by lower-case name, however
// Envoy sent them (contract section 4). By default Envoy fills `headers`, one
// entry per name with repeated lines already joined; with its filter's
// encode_raw_headers it fills `header_map` instead, one entry per line with
// the value in raw_value bytes, and leaves `headers` empty. Both are read
// here, once, at the adapter's edge, so nothing after it can tell them apart;
// the common case takes Envoy's names as they are.
func requestHeaders(r *authv3.AttributeContext_HttpRequest) RequestHeaders {
	raw := r.GetHeaderMap().GetHeaders()
	var headers RequestHeaders
	if m := r.GetHeaders(); len(m) > 0 {
		// A Go map's keys are unique: no entry to look for.
		headers = make(RequestHeaders, 0, len(m))
		for k, v := range m {
			headers = append(headers, Header{k, v})
		}
	}
	return combineHeaders(headers, len(raw), func(i int) (string, string, string) {
		h := raw[i]
		return h.GetKey(), h.GetValue(), string(h.GetRawValue())
	})
}

// combineHeaders is requestHeaders over either decoding of a CheckRequest
// (the generated message, or the lean decoder's fields): headers is the
// `headers` map, and line(i) the key, value and raw_value of header_map's
// i-th of n entries.
func combineHeaders(headers RequestHeaders, n int, line func(i int) (key, value, rawValue string)) RequestHeaders {
	if n == 0 {
		return headers
	}
	// Envoy never sends both; should something, every line counts, so that a
	// header to strip cannot hide in the half that would otherwise be ignored.
	out := headerList{h: make(RequestHeaders, 0, len(headers)+n)}
	for _, h := range headers {
		out.join(strings.ToLower(h.Name), h.Value)
	}
	for i := range n {
		key, v, raw := line(i)
		if raw != "" {
			v = raw
		}
		out.join(strings.ToLower(key), v)
	}
	return out.h
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

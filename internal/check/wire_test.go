package check

import (
	"bytes"
	"fmt"
	"maps"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// fakeToken is token-shaped: decoding never verifies it.
var fakeToken = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + strings.Repeat("eyJlbWFpbCI6ImJvYkBjb3JwLmV4YW1wbGUifQ", 6) + ".c2lnbmF0dXJl"

// wireBuilder appends hand-made protobuf fields, for what the generated
// types cannot marshal: repeated keys, wrong wire types, broken input.
type wireBuilder []byte

func (w wireBuilder) bytes(num protowire.Number, v []byte) wireBuilder {
	return protowire.AppendBytes(protowire.AppendTag(w, num, protowire.BytesType), v)
}
func (w wireBuilder) str(num protowire.Number, v string) wireBuilder { return w.bytes(num, []byte(v)) }
func (w wireBuilder) varint(num protowire.Number, v uint64) wireBuilder {
	return protowire.AppendVarint(protowire.AppendTag(w, num, protowire.VarintType), v)
}

// withHTTP wraps an HttpRequest's fields into a CheckRequest; attrs are
// more AttributeContext fields.
func withHTTP(http wireBuilder, attrs ...wireBuilder) []byte {
	a := wireBuilder(nil).bytes(fieldAttributesRequest, wireBuilder(nil).bytes(fieldRequestHTTP, http))
	for _, more := range attrs {
		a = append(a, more...)
	}
	return wireBuilder(nil).bytes(fieldCheckRequestAttributes, a)
}

func entry(k, v string) []byte { return wireBuilder(nil).str(fieldMapKey, k).str(fieldMapValue, v) }

func marshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// decodeCases are CheckRequests on the wire that both decoders must read
// alike, or (wantErr) both refuse.
func decodeCases(tb testing.TB) []struct {
	name    string
	msg     []byte
	wantErr bool
} {
	envoy := marshal(tb, envoyLikeRequest(tb, fakeToken))
	raw := envoyLikeRequest(tb, fakeToken)
	raw.Attributes.Request.Http.Headers = nil
	raw.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":authority", RawValue: []byte("app.example.com")}, {Key: "Cookie", RawValue: []byte("a=1")},
		{Key: "cookie", RawValue: []byte("b=2")}, {Key: "X-Forwarded-For", RawValue: []byte("203.0.113.7")},
		{Key: "x-forwarded-for", Value: "198.51.100.1"}, {Key: "x-raw", RawValue: []byte{0xff, 'a'}},
		{Key: "x-empty"},
	}}
	// More names than headerList scans before it indexes them, each of the
	// first and last repeated after the index is built.
	many := wireBuilder(nil).str(fieldHTTPHost, "app.example.com")
	manyLines := proto.Clone(raw).(*authv3.CheckRequest)
	for i := range 2 * indexAfter {
		many = many.bytes(fieldHTTPHeaders, entry(fmt.Sprintf("x-many-%d", i), "first"))
		manyLines.Attributes.Request.Http.HeaderMap.Headers = append(manyLines.Attributes.Request.Http.HeaderMap.Headers,
			&corev3.HeaderValue{Key: fmt.Sprintf("X-Many-%d", i), Value: "first"})
	}
	for _, i := range []int{0, indexAfter - 1, 2*indexAfter - 1} {
		many = many.bytes(fieldHTTPHeaders, entry(fmt.Sprintf("x-many-%d", i), "last"))
		manyLines.Attributes.Request.Http.HeaderMap.Headers = append(manyLines.Attributes.Request.Http.HeaderMap.Headers,
			&corev3.HeaderValue{Key: fmt.Sprintf("x-many-%d", i), RawValue: []byte("later")},
			&corev3.HeaderValue{Key: "cookie", Value: fmt.Sprintf("c%d=1", i)})
	}
	both := proto.Clone(raw).(*authv3.CheckRequest)
	both.Attributes.Request.Http.Headers = map[string]string{"Cookie": "c=3", "authorization": "Pomerium t", "x-forwarded-for": "192.0.2.1"}
	second := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Path: "/second", Headers: map[string]string{"cookie": "overridden=1", "x-second": "2"},
			HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "x-line", Value: "later"}}}}},
		ContextExtensions: map[string]string{"route": "admin"}}}
	first := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Host: "app.example.com", Method: "POST", Headers: map[string]string{"cookie": "first=1"},
			HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "x-line", Value: "earlier"}}}}},
		ContextExtensions: map[string]string{"route": "app", "keep": "1"}}}
	unknown := func(w wireBuilder) wireBuilder { // one unknown field of every wire type
		w = w.varint(900, 7)
		w = protowire.AppendFixed32(protowire.AppendTag(w, 901, protowire.Fixed32Type), 1)
		w = protowire.AppendFixed64(protowire.AppendTag(w, 902, protowire.Fixed64Type), 2)
		w = wireBuilder(protowire.AppendTag(w, 903, protowire.StartGroupType)).varint(8, 1) // a group holding a field
		w = protowire.AppendTag(w, 903, protowire.EndGroupType)
		return w.str(904, "opaque")
	}
	return []struct {
		name    string
		msg     []byte
		wantErr bool
	}{
		{"an Envoy-shaped request", envoy, false},
		{"the header_map form", marshal(tb, raw), false},
		{"both header forms at once", marshal(tb, both), false},
		{"a request whose attributes come twice are merged", append(marshal(tb, first), marshal(tb, second)...), false},
		{"an Envoy request followed by a second copy is merged", append(bytes.Clone(envoy), marshal(tb, second)...), false},
		{"duplicate map keys keep the last value", withHTTP(wireBuilder(nil).str(fieldHTTPHost, "a.example.com").
			bytes(fieldHTTPHeaders, entry("x-a", "1")).bytes(fieldHTTPHeaders, entry("x-a", "2")).
			bytes(fieldHTTPHeaders, wireBuilder(nil).str(fieldMapKey, "x-b").str(fieldMapKey, "x-c").str(fieldMapValue, "3").str(fieldMapValue, "4")),
			wireBuilder(nil).bytes(fieldAttributesExtensions, entry("route", "a")).bytes(fieldAttributesExtensions, entry("route", "b"))), false},
		{"map entries missing a key or a value read as empty", withHTTP(wireBuilder(nil).
			bytes(fieldHTTPHeaders, wireBuilder(nil).str(fieldMapValue, "no key")).
			bytes(fieldHTTPHeaders, wireBuilder(nil).str(fieldMapKey, "no-value")).
			bytes(fieldHTTPHeaders, nil),
			wireBuilder(nil).bytes(fieldAttributesExtensions, wireBuilder(nil).str(fieldMapKey, "route"))), false},
		{"the last of a repeated scalar wins", withHTTP(wireBuilder(nil).str(fieldHTTPHost, "first.example.com").
			str(fieldHTTPPath, "/1").str(fieldHTTPHost, "last.example.com").str(fieldHTTPPath, "/2")), false},
		{"unknown fields at every level are skipped", wireBuilder(unknown(nil)).bytes(fieldCheckRequestAttributes,
			unknown(wireBuilder(nil).bytes(fieldAttributesRequest, unknown(wireBuilder(nil).bytes(fieldRequestHTTP,
				unknown(wireBuilder(nil).str(fieldHTTPHost, "app.example.com").bytes(fieldHTTPHeaders, unknown(entry("k", "v"))).
					bytes(fieldHTTPHeaderMap, unknown(wireBuilder(nil).bytes(fieldHeaderMapHeaders, unknown(wireBuilder(nil).str(1, "x-k").str(2, "v"))))))))))),
			false},
		{"a read field of the wrong wire type is an unknown field", wireBuilder(withHTTP(wireBuilder(nil).str(fieldHTTPHost, "app.example.com").
			varint(fieldHTTPHost, 5).varint(fieldHTTPHeaders, 1).varint(fieldHTTPHeaderMap, 1))).varint(fieldCheckRequestAttributes, 3), false},
		{"past the names a scan covers, a repeated map key still keeps its last value", withHTTP(many), false},
		{"past the names a scan covers, repeated header_map lines are still joined", marshal(tb, manyLines), false},
		{"an empty message", nil, false},
		{"empty attributes", marshal(tb, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}}), false},
		{"a truncated request is refused", envoy[:len(envoy)-3], true},
		{"a length past the end is refused", withHTTP(wireBuilder(nil).str(fieldHTTPHost, "app.example.com"))[:5], true},
		{"invalid UTF-8 in the host is refused", withHTTP(wireBuilder(nil).str(fieldHTTPHost, "app\xff.example.com")), true},
		{"invalid UTF-8 in a header name is refused", withHTTP(wireBuilder(nil).bytes(fieldHTTPHeaders, entry("x-\xc3", "v"))), true},
		{"invalid UTF-8 in a header_map value is refused", withHTTP(wireBuilder(nil).bytes(fieldHTTPHeaderMap,
			wireBuilder(nil).bytes(fieldHeaderMapHeaders, wireBuilder(nil).str(fieldHeaderKey, "k").str(fieldHeaderValue, "\xff")))), true},
		{"invalid UTF-8 in a context extension is refused", withHTTP(nil, wireBuilder(nil).bytes(fieldAttributesExtensions, entry("other", "\xfe"))), true},
		{"field number zero is refused", []byte{0x02, 0x00}, true},
		{"a stray end-group is refused", withHTTP(protowire.AppendTag(nil, 7, protowire.EndGroupType)), true},
		{"a reserved wire type is refused", []byte{0x0e}, true},
		{"a field number above the maximum is refused", withHTTP(protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3)), true},
	}
}

// TestDecodeCheckRequestReadsAsProtoUnmarshal holds the lean decoder to
// proto.Unmarshal and checkRequest, on requests built with the generated
// types and by hand.
func TestDecodeCheckRequestReadsAsProtoUnmarshal(t *testing.T) {
	for _, tc := range decodeCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			protoErr, leanErr := agreeWithProto(t, tc.msg)
			if tc.wantErr && (protoErr == nil || leanErr == nil) {
				t.Fatalf("want both to refuse; proto.Unmarshal: %v, lean: %v", protoErr, leanErr)
			}
			if !tc.wantErr && leanErr != nil {
				t.Fatalf("lean decoder: %v", leanErr)
			}
		})
	}
}

// FuzzDecodeCheckRequest: on any bytes proto.Unmarshal accepts, the lean
// decoder reads what checkRequest reads from the message; on bytes it
// refuses, the lean decoder refuses too unless the refusal was about fields
// Check never reads.
func FuzzDecodeCheckRequest(f *testing.F) {
	for _, tc := range decodeCases(f) {
		f.Add(tc.msg)
	}
	f.Fuzz(func(t *testing.T, msg []byte) { agreeWithProto(t, msg) })
}

// agreeWithProto decodes msg both ways and fails t where they disagree:
// where proto.Unmarshal accepts msg, the lean decoder must too, and yield
// checkRequest's Request; where the lean decoder accepts bytes
// proto.Unmarshal refuses, proto.Unmarshal must accept them with every field
// Check does not read removed, and yield the same.
func agreeWithProto(t *testing.T, msg []byte) (protoErr, leanErr error) {
	t.Helper()
	var req authv3.CheckRequest
	protoErr = proto.Unmarshal(msg, &req)
	got, leanErr := decodeCheckRequest(bytes.Clone(msg))
	switch {
	case protoErr == nil && leanErr != nil:
		t.Fatalf("proto.Unmarshal accepts what the lean decoder refuses: %v", leanErr)
	case protoErr == nil:
		if diff := requestDiff(got, checkRequest(&req)); diff != "" {
			t.Fatalf("lean decoder differs from proto.Unmarshal + checkRequest: %s", diff)
		}
	case leanErr == nil:
		kept, err := keepReadFields(msg, readFields)
		if err != nil {
			t.Fatalf("the lean decoder accepts malformed bytes (%v), proto.Unmarshal refuses them: %v", err, protoErr)
		}
		var read authv3.CheckRequest
		if err := proto.Unmarshal(kept, &read); err != nil {
			t.Fatalf("the lean decoder accepts a field it reads that proto.Unmarshal refuses: %v", err)
		}
		if diff := requestDiff(got, checkRequest(&read)); diff != "" {
			t.Fatalf("lean decoder differs from proto.Unmarshal of the fields read: %s", diff)
		}
	}
	return protoErr, leanErr
}

// requestDiff names the fields where got and want differ ("" if none). The
// headers are compared by name, in any order (checkRequest reads a Go map),
// and each side must hold a name once; nil equals empty.
func requestDiff(got, want Request) string {
	var diff []string
	for _, f := range []struct{ name, got, want string }{
		{"RouteName", got.RouteName, want.RouteName}, {"Host", got.Host, want.Host}, {"Path", got.Path, want.Path},
		{"Method", got.Method, want.Method}, {"Scheme", got.Scheme, want.Scheme}, {"ID", got.ID, want.ID},
	} {
		if f.got != f.want {
			diff = append(diff, fmt.Sprintf("%s %q, want %q", f.name, f.got, f.want))
		}
	}
	gotHeaders, gotTwice := headerMap(got.Headers)
	wantHeaders, wantTwice := headerMap(want.Headers)
	if gotTwice != "" || wantTwice != "" {
		diff = append(diff, fmt.Sprintf("a header named twice: %q in %q, %q in %q", gotTwice, got.Headers, wantTwice, want.Headers))
	}
	if !maps.Equal(gotHeaders, wantHeaders) {
		diff = append(diff, fmt.Sprintf("Headers %q, want %q", got.Headers, want.Headers))
	}
	return strings.Join(diff, "; ")
}

// headerMap is h by name, and a name h holds more than once ("" if none).
func headerMap(h RequestHeaders) (m map[string]string, twice string) {
	m = make(map[string]string, len(h))
	for _, e := range h {
		if _, seen := m[e.Name]; seen {
			twice = e.Name
		}
		m[e.Name] = e.Value
	}
	return m, twice
}

// fieldTree names the fields Check reads: a nil subtree keeps the field's
// bytes whole (strings, map entries, header_map's HeaderValues).
type fieldTree map[protowire.Number]fieldTree

var readFields = fieldTree{fieldCheckRequestAttributes: {
	fieldAttributesExtensions: nil,
	fieldAttributesRequest: {fieldRequestHTTP: {
		fieldHTTPID: nil, fieldHTTPMethod: nil, fieldHTTPHeaders: nil, fieldHTTPPath: nil,
		fieldHTTPHost: nil, fieldHTTPScheme: nil, fieldHTTPHeaderMap: {fieldHeaderMapHeaders: nil},
	}},
}}

// keepReadFields is msg with only the length-delimited fields of tree, an
// independent walk from the decoder's, for the fuzz target's second check.
func keepReadFields(msg []byte, tree fieldTree) ([]byte, error) {
	var out []byte
	for len(msg) > 0 {
		num, typ, tn := protowire.ConsumeTag(msg)
		if tn < 0 {
			return nil, protowire.ParseError(tn)
		}
		if num > protowire.MaxValidNumber {
			return nil, fmt.Errorf("field number %d out of range", num)
		}
		n := protowire.ConsumeFieldValue(num, typ, msg[tn:])
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		field := msg[tn : tn+n]
		msg = msg[tn+n:]
		sub, read := tree[num]
		if !read || typ != protowire.BytesType {
			continue
		}
		val, _ := protowire.ConsumeBytes(field)
		if sub != nil {
			var err error
			if val, err = keepReadFields(val, sub); err != nil {
				return nil, err
			}
		}
		out = protowire.AppendBytes(protowire.AppendTag(out, num, typ), val)
	}
	return out, nil
}

// BenchmarkDecodeCheckRequest is an Envoy-shaped request read both ways:
// proto.Unmarshal and checkRequest as before, the lean decoder with the one
// copy the codec makes.
func BenchmarkDecodeCheckRequest(b *testing.B) {
	msg := marshal(b, envoyLikeRequest(b, fakeToken))
	b.Run("proto.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			var req authv3.CheckRequest
			if err := proto.Unmarshal(msg, &req); err != nil {
				b.Fatal(err)
			}
			if r := checkRequest(&req); r.Host == "" {
				b.Fatal("no host")
			}
		}
	})
	b.Run("lean", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			r, err := decodeCheckRequest(bytes.Clone(msg))
			if err != nil || r.Host == "" {
				b.Fatal(err)
			}
		}
	})
}

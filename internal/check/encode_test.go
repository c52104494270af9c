package check

import (
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
)

// encodeAnswers are answers of every shape Check gives, and a few it never
// does, that the encoder must still write as proto.Marshal would.
var encodeAnswers = []struct {
	name string
	a    Answer
}{
	{"an allow with an assertion, claim headers and removals", Answer{Allowed: true,
		Headers: []Header{{"x-pomerium-jwt-assertion", "eyJhbGciOiJFUzI1NiJ9.e30.sig"}, {"x-pomerium-claim-email", "bob@corp.example"}},
		Remove:  []string{"authorization", "x-pomerium-claim-groups"}}},
	{"an allow with nothing to set or remove (a public route)", Answer{Allowed: true}},
	{"an allow with more headers than fit inline", Answer{Allowed: true,
		Headers: []Header{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}, {"e", "5"}}}},
	{"an allow past grpc-go's pooling threshold", Answer{Allowed: true,
		Headers: []Header{{"x-big", strings.Repeat("v", 4096)}}, Remove: []string{"cookie"}}},
	{"an allow with empty names and values", Answer{Allowed: true,
		Headers: []Header{{"", ""}, {"x-empty", ""}, {"", "value"}}, Remove: []string{""}}},
	{"an allow carrying a reason and a status it never sends", Answer{Allowed: true, Status: 403, Reason: "unused", Body: "unused"}},
	{"a sign-in redirect", Answer{Status: 302, Reason: "no token",
		Headers: []Header{{"location", "https://authenticate.example/.pomerium/sign_in?x=1"}, {"content-type", "text/html; charset=utf-8"}},
		Body:    "<a href=\"…\">Sign in</a>"}},
	{"a 401 of an API", Answer{Status: 401, Reason: "token expired", Headers: []Header{{"www-authenticate", `Pomerium realm="app"`}},
		Body: `{"error":"unauthorized"}`}},
	{"a 403 by policy", Answer{Status: 403, Reason: "policy", Body: "denied\nrequest id: r"}},
	{"a 404", Answer{Status: 404}},
	{"a 400", Answer{Status: 400, Body: "bad request"}},
	{"a 500", Answer{Status: 500, Reason: "signing failed"}},
	{"a not-ready 503", Answer{Status: 503, Reason: "starting", Body: "not ready",
		Headers: []Header{{"retry-after", "1"}, {"content-type", "text/plain"}, {"x-request-id", "r"}, {"cache-control", "no-store"}}}},
	{"a denial with no status at all", Answer{}},
	{"a denial with a status outside int32", Answer{Status: 1 << 40}},
	{"a denial with a negative status", Answer{Status: -1}},
	{"a denial with removals it never sends", Answer{Status: 403, Remove: []string{"authorization"}}},
}

// TestEncodeAnswer: the encoder's bytes read back as the very message
// response() builds, for every shape of answer.
func TestEncodeAnswer(t *testing.T) {
	for _, tc := range encodeAnswers {
		t.Run(tc.name+" reads back as response() builds it", func(t *testing.T) {
			checkEncoding(t, tc.a)
		})
	}
	t.Run("a string that is not UTF-8 is refused, as proto.Marshal refuses it", func(t *testing.T) {
		for _, a := range []Answer{
			{Allowed: true, Headers: []Header{{"x", "\xff"}}},
			{Allowed: true, Headers: []Header{{"\xc3", "v"}}},
			{Allowed: true, Remove: []string{"\xfe"}},
			{Status: 403, Body: "\xff"},
			{Status: 403, Reason: "\xff"},
			{Status: 403, Headers: []Header{{"x", "\xff"}}},
		} {
			if _, err := a.marshal(); err == nil {
				t.Errorf("%+v: encoded", a)
			}
			if _, err := proto.Marshal((&checkAnswer{a: a}).response()); err == nil {
				t.Errorf("%+v: proto.Marshal accepts it: the encoder need not refuse it", a)
			}
		}
	})
}

// checkEncoding fails t unless a encodes to what proto.Marshal writes for
// response(), read back: the same message, or both refusing it.
func checkEncoding(t *testing.T, a Answer) {
	t.Helper()
	want := (&checkAnswer{a: a}).response()
	wantBytes, wantErr := proto.Marshal(want)
	data, err := a.marshal()
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("encoder error %v, proto.Marshal error %v", err, wantErr)
	}
	if err != nil {
		return
	}
	defer data.Free()
	got := data.Materialize()
	if len(got) != len(wantBytes) {
		t.Errorf("encoded %d bytes, proto.Marshal %d", len(got), len(wantBytes))
	}
	var read authv3.CheckResponse
	if err := proto.Unmarshal(got, &read); err != nil {
		t.Fatalf("the encoded answer does not decode: %v", err)
	}
	if !proto.Equal(&read, want) {
		t.Errorf("read back\n%v\nwant\n%v", &read, want)
	}
}

// FuzzEncodeAnswer: any answer, allow or denial, encodes to what
// proto.Marshal writes for it, or is refused as proto.Marshal refuses it.
func FuzzEncodeAnswer(f *testing.F) {
	for _, tc := range encodeAnswers {
		a := tc.a
		var h1, v1, h2, v2, rm string
		if len(a.Headers) > 0 {
			h1, v1 = a.Headers[0].Name, a.Headers[0].Value
		}
		if len(a.Headers) > 1 {
			h2, v2 = a.Headers[1].Name, a.Headers[1].Value
		}
		if len(a.Remove) > 0 {
			rm = a.Remove[0]
		}
		f.Add(a.Allowed, int64(a.Status), a.Reason, a.Body, h1, v1, h2, v2, rm, uint8(len(a.Headers)))
	}
	f.Fuzz(func(t *testing.T, allowed bool, status int64, reason, body, h1, v1, h2, v2, rm string, n uint8) {
		a := Answer{Allowed: allowed, Status: int(status), Reason: reason, Body: body}
		for i := range int(n % 8) {
			if i%2 == 0 {
				a.Headers = append(a.Headers, Header{h1, v1})
			} else {
				a.Headers = append(a.Headers, Header{h2, v2})
			}
			a.Remove = append(a.Remove, rm)
		}
		checkEncoding(t, a)
	})
}

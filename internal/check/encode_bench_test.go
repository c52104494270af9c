package check

import (
	"strings"
	"testing"
)

// BenchmarkEncodeAnswer: an allow as Check gives it (the assertion, two
// claim headers, two removals), written by the encoder and by proto.Marshal
// of the CheckResponse the generic path builds.
func BenchmarkEncodeAnswer(b *testing.B) {
	a := Answer{Allowed: true,
		Headers: []Header{{"x-pomerium-jwt-assertion", strings.Repeat("a", 620)}, {"x-pomerium-claim-email", "user17@corp.example"},
			{"x-pomerium-claim-groups", "engineering"}},
		Remove: []string{"authorization", "x-pomerium-claim-user"}}
	b.Run("encoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a := a
			data, err := a.marshal()
			if err != nil {
				b.Fatal(err)
			}
			data.Free()
		}
	})
	b.Run("proto.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := &checkAnswer{a: a}
			data, err := protoCodec.Marshal(c.response())
			if err != nil {
				b.Fatal(err)
			}
			data.Free()
		}
	})
}

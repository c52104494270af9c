package store

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// The view is read on every Check and written on every revocation. These
// benchmarks chose its shape (docs/store.md): an immutable set behind an
// atomic pointer, against a sync.Map of the same entries.

func bigView(n int) *View {
	var v View
	v.init()
	revs := make([]Revocation, n)
	for i := range revs {
		revs[i] = NewRevocation(KindSID, fmt.Sprintf("%022x", i), t0, time.Hour)
	}
	v.add(revs, time.Time{})
	return &v
}

func BenchmarkViewRevoked(b *testing.B) {
	for _, n := range []int{0, 100_000} {
		v := bigView(n)
		c := claims("jti-not-revoked-000000", "sid-not-revoked-000000", "alice@corp.example", t0)
		b.Run(fmt.Sprintf("atomic set of %d, parallel", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if v.Revoked(c) {
						b.Fatal("revoked")
					}
				}
			})
		})
	}
}

func BenchmarkSyncMapLookup(b *testing.B) {
	var m sync.Map
	for i := range 100_000 {
		m.Store(fmt.Sprintf("%022x", i), entry{})
	}
	b.Run("sync.Map of 100000, parallel, two lookups as Revoked makes", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, ok1 := m.Load("jti-not-revoked-000000")
				_, ok2 := m.Load("sid-not-revoked-000000")
				if ok1 || ok2 {
					b.Fatal("revoked")
				}
			}
		})
	})
	b.Run("sync.Map of 100000, one more revocation", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			m.Store(fmt.Sprint("new-", i), entry{})
		}
	})
}

func BenchmarkViewAddOne(b *testing.B) {
	v := bigView(100_000)
	b.Run("atomic set of 100000, one more revocation (copy and swap)", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			v.add([]Revocation{NewRevocation(KindSID, fmt.Sprint("new-", i), t0, time.Hour)}, time.Time{})
		}
	})
}

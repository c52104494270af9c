package check

import (
	"fmt"
	"testing"
)

func TestHeaderSet(t *testing.T) {
	for _, tc := range []struct {
		name        string
		room, added int
	}{
		{"headers that fit stay in the answer", inlineHeaders, inlineHeaders},
		{"more room than fits is allocated", inlineHeaders + 3, inlineHeaders + 3},
		{"more headers than counted keep the earlier ones intact", 2, inlineHeaders + 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newOKAnswer(tc.room)
			for i := range tc.added {
				b.headers.set(fmt.Sprintf("h%d", i), fmt.Sprintf("v%d", i))
			}
			if len(b.headers.list) != tc.added {
				t.Fatalf("%d headers listed, want %d", len(b.headers.list), tc.added)
			}
			for i, o := range b.headers.list {
				if o.GetHeader().GetKey() != fmt.Sprintf("h%d", i) || o.GetHeader().GetValue() != fmt.Sprintf("v%d", i) {
					t.Fatalf("header %d is %v", i, o)
				}
				if !b.headers.isSet(fmt.Sprintf("h%d", i)) {
					t.Fatalf("h%d set but isSet says no", i)
				}
			}
			if b.headers.isSet("absent") {
				t.Fatal("isSet says yes for a header never set")
			}
		})
	}
}

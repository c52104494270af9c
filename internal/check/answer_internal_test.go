package check

import (
	"fmt"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

func TestAnswerHeaders(t *testing.T) {
	for _, tc := range []struct {
		name        string
		room, added int
		inline      bool
	}{
		{"headers that fit stay in the answer", inlineHeaders, inlineHeaders, true},
		{"more room than fits is allocated", inlineHeaders + 3, inlineHeaders + 3, false},
		{"more headers than counted keep the earlier ones intact", 2, inlineHeaders + 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := new(checkAnswer)
			c.a.Allowed = true
			c.a.room(tc.room)
			for i := range tc.added {
				c.a.setHeader(fmt.Sprintf("h%d", i), fmt.Sprintf("v%d", i))
			}
			if got := &c.a.Headers[0] == &c.a.headerBuf[0]; got != tc.inline {
				t.Errorf("headers in the answer's own storage: %v, want %v", got, tc.inline)
			}
			for i := range tc.added {
				if !c.a.isSet(fmt.Sprintf("h%d", i)) {
					t.Fatalf("h%d set but isSet says no", i)
				}
			}
			if c.a.isSet("absent") {
				t.Fatal("isSet says yes for a header never set")
			}
			list := c.response().GetOkResponse().GetHeaders()
			if len(list) != tc.added {
				t.Fatalf("%d headers in the response, want %d", len(list), tc.added)
			}
			for i, o := range list {
				if o.GetHeader().GetKey() != fmt.Sprintf("h%d", i) || o.GetHeader().GetValue() != fmt.Sprintf("v%d", i) {
					t.Fatalf("header %d is %v", i, o)
				}
				if o.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
					t.Fatalf("header %d appends (%v): a client-sent copy would stay beside ours", i, o.GetAppendAction())
				}
			}
			if got := &list[0] == &c.listBuf[0]; got != tc.inline {
				t.Errorf("response headers in the answer's own allocation: %v, want %v", got, tc.inline)
			}
		})
	}
}

//go:build vtprotobuf

package check

import (
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// TestCodecUsesVTProtoWhenBuiltWithIt: with -tags vtprotobuf,
// go-control-plane compiles its generated marshalling, and the codec's
// Marshal takes it for Check's answers.
func TestCodecUsesVTProtoWhenBuiltWithIt(t *testing.T) {
	if _, ok := any(&authv3.CheckResponse{}).(vtMarshaler); !ok {
		t.Fatal("CheckResponse has no vtproto marshalling under -tags vtprotobuf")
	}
}

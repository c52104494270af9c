package check

import (
	"errors"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// Check's answer is written straight from the Answer to the wire (issue 19:
// proto.Marshal walked the CheckResponse by reflection, message by message,
// for 7% of the server's CPU). It writes what proto.Marshal writes for
// checkAnswer.response(), field for field, UTF-8 checks of every string
// included, so that Envoy reads the same message: TestEncodeAnswer and
// FuzzEncodeAnswer hold it to proto.Marshal.

// overwrite is every header's append_action (see response).
const overwrite = uint64(corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)

var errNotUTF8 = errors.New("check answer: a string is not valid UTF-8")

// marshal writes a as a CheckResponse, into a buffer from grpc-go's pool
// above its pooling threshold (grpc-go frees it once sent).
func (a *Answer) marshal() (mem.BufferSlice, error) {
	if !a.validUTF8() {
		return nil, errNotUTF8
	}
	status, response := a.sizes()
	size := sizeMessage(fieldResponseStatus, status) + sizeMessage(fieldResponseOK, response)
	if mem.IsBelowBufferPoolingThreshold(size) {
		return mem.BufferSlice{mem.SliceBuffer(a.appendResponse(make([]byte, 0, size), status, response))}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	*buf = a.appendResponse((*buf)[:0], status, response)
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// validUTF8 reports whether every string of a is valid UTF-8, as proto3
// requires (proto.Marshal refuses a message with one that is not).
func (a *Answer) validUTF8() bool {
	for _, h := range a.Headers {
		if !utf8.ValidString(h.Name) || !utf8.ValidString(h.Value) {
			return false
		}
	}
	if a.Allowed {
		for _, name := range a.Remove {
			if !utf8.ValidString(name) {
				return false
			}
		}
		return true
	}
	return utf8.ValidString(a.Reason) && utf8.ValidString(a.Body)
}

// sizes are the content sizes of a's google.rpc.Status and of its
// OkHttpResponse or DeniedHttpResponse (ok_response and denied_response have
// tags of one size).
func (a *Answer) sizes() (status, response int) {
	for _, h := range a.Headers {
		response += sizeMessage(fieldHeaders, optionSize(h))
	}
	if a.Allowed {
		for _, name := range a.Remove {
			response += sizeMessage(fieldOKHeadersToRemove, len(name)) // every element, "" too
		}
		return 0, response
	}
	status = sizeVarint(fieldStatusCode, enum(int32(a.deniedCode()))) + sizeString(fieldStatusMessage, a.Reason)
	response += sizeMessage(fieldDeniedStatus, sizeVarint(fieldHTTPStatusCode, enum(int32(a.Status)))) +
		sizeString(fieldDeniedBody, a.Body)
	return status, response
}

// appendResponse appends the CheckResponse, of the sizes sizes reported.
func (a *Answer) appendResponse(b []byte, status, response int) []byte {
	b = appendMessageTag(b, fieldResponseStatus, status)
	if a.Allowed {
		b = appendMessageTag(b, fieldResponseOK, response)
		b = a.appendHeaders(b)
		for _, name := range a.Remove {
			b = protowire.AppendTag(b, fieldOKHeadersToRemove, protowire.BytesType)
			b = protowire.AppendString(b, name)
		}
		return b
	}
	b = appendVarint(b, fieldStatusCode, enum(int32(a.deniedCode())))
	b = appendString(b, fieldStatusMessage, a.Reason)
	b = appendMessageTag(b, fieldResponseDenied, response)
	b = appendMessageTag(b, fieldDeniedStatus, sizeVarint(fieldHTTPStatusCode, enum(int32(a.Status))))
	b = appendVarint(b, fieldHTTPStatusCode, enum(int32(a.Status)))
	b = a.appendHeaders(b)
	return appendString(b, fieldDeniedBody, a.Body)
}

// enum is an int32 or enum field's value as protobuf writes it: a negative
// one sign-extended to 64 bits.
func enum(v int32) uint64 { return uint64(int64(v)) }

// appendHeaders appends a's headers as HeaderValueOptions.
func (a *Answer) appendHeaders(b []byte) []byte {
	for _, h := range a.Headers {
		b = appendMessageTag(b, fieldHeaders, optionSize(h))
		b = appendMessageTag(b, fieldOptionHeader, headerSize(h))
		b = appendString(b, fieldHeaderKey, h.Name)
		b = appendString(b, fieldHeaderValue, h.Value)
		b = appendVarint(b, fieldOptionAppendAction, overwrite)
	}
	return b
}

// headerSize is the size of h as a HeaderValue, optionSize as a
// HeaderValueOption that overwrites.
func headerSize(h Header) int {
	return sizeString(fieldHeaderKey, h.Name) + sizeString(fieldHeaderValue, h.Value)
}

func optionSize(h Header) int {
	return sizeMessage(fieldOptionHeader, headerSize(h)) + sizeVarint(fieldOptionAppendAction, overwrite)
}

// The sizes and appends below follow proto3's rules: a string or number
// equal to its zero value is left out; a message that is set is written even
// when empty, and so is every element of a repeated field.

// sizeMessage is the size of a message (or bytes) field whose content is n
// bytes.
func sizeMessage(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func sizeString(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return sizeMessage(num, len(s))
}

func sizeVarint(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

// appendMessageTag appends the tag and length of a message field whose
// content, n bytes, the caller appends next.
func appendMessageTag(b []byte, num protowire.Number, n int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(n))
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

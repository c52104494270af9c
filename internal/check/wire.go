package check

import (
	"errors"
	"fmt"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

// The lean decoder reads a marshalled envoy.service.auth.v3.CheckRequest
// straight into a Request (issue 19: generic decoding was a quarter of the
// server's CPU, a message per level and a string per header key and value,
// for the few fields Check reads). It reads exactly what checkRequest reads
// from the generated message, with proto.Unmarshal's semantics for those
// fields: a field of the wrong wire type is an unknown field (skipped, as
// proto.Unmarshal keeps it aside), a message field seen twice is merged, the
// last scalar wins, a map entry's missing key or value is "", a repeated map
// key's last value wins, and malformed or truncated input and invalid UTF-8
// in a string field it reads are errors. Every other field is skipped
// unparsed: where proto.Unmarshal would refuse one of them (say invalid
// UTF-8 in the query), this decoder still answers, from fields that are
// well formed (FuzzDecodeCheckRequest holds both to that).

// errMalformed is what every decoding error wraps.
var errMalformed = errors.New("malformed CheckRequest")

// leanDecoder is one decoding's state: the Request so far, and the two
// header forms, combined as requestHeaders combines them once all is read.
type leanDecoder struct {
	r       Request
	headers headerList   // HttpRequest.headers, a repeated key's last value
	lines   []headerLine // HttpRequest.header_map, in order
}

// decodeCheckRequest reads b, a marshalled CheckRequest, as checkRequest
// reads the message proto.Unmarshal makes of it.
//
// The Request's strings are substrings of b (unsafe.String, no copy): b
// must never change afterwards, and lives as long as any of them does. The
// codec hands it a copy of grpc-go's receive buffer made for this request
// alone (grpc-go reuses its buffers once Unmarshal returns), which nothing
// else references or writes.
func decodeCheckRequest(b []byte) (Request, error) {
	var d leanDecoder
	if err := d.checkRequest(b); err != nil {
		return Request{}, err
	}
	d.r.Headers = combineHeaders(d.headers.h, len(d.lines), func(i int) (string, string, string) {
		l := &d.lines[i]
		return l.key, l.value, l.raw
	})
	return d.r, nil
}

// headerLine is one HeaderValue of header_map.
type headerLine struct{ key, value, raw string }

func (d *leanDecoder) checkRequest(b []byte) error {
	return eachOf(b, fieldCheckRequestAttributes, d.attributes)
}

func (d *leanDecoder) attributes(b []byte) error {
	return eachField(b, func(num protowire.Number, val []byte) error {
		switch num {
		case fieldAttributesRequest:
			return eachOf(val, fieldRequestHTTP, d.http)
		case fieldAttributesExtensions:
			k, v, err := mapEntry(val)
			if err != nil {
				return fmt.Errorf("context_extensions: %w", err)
			}
			if k == "route" {
				d.r.RouteName = v
			}
		}
		return nil
	})
}

func (d *leanDecoder) http(b []byte) error {
	if d.headers.h == nil {
		// Sized for all of this message's entries at once: Envoy sends ~15,
		// one per name. A later copy of the message (merged) grows it as
		// append grows any slice.
		if n := countField(b, fieldHTTPHeaders); n > 0 {
			d.headers.h = make(RequestHeaders, 0, n)
		}
	}
	return eachField(b, func(num protowire.Number, val []byte) error {
		var field *string
		switch num {
		case fieldHTTPHeaders:
			k, v, err := mapEntry(val)
			if err != nil {
				return fmt.Errorf("headers: %w", err)
			}
			d.headers.set(k, v)
			return nil
		case fieldHTTPHeaderMap:
			return eachOf(val, fieldHeaderMapHeaders, d.headerValue)
		case fieldHTTPID:
			field = &d.r.ID
		case fieldHTTPMethod:
			field = &d.r.Method
		case fieldHTTPPath:
			field = &d.r.Path
		case fieldHTTPHost:
			field = &d.r.Host
		case fieldHTTPScheme:
			field = &d.r.Scheme
		default:
			return nil
		}
		s, err := utf8String(val)
		if err != nil {
			return fmt.Errorf("http field %d: %w", num, err)
		}
		*field = s
		return nil
	})
}

func (d *leanDecoder) headerValue(b []byte) error {
	var l headerLine
	err := eachField(b, func(num protowire.Number, val []byte) error {
		var err error
		switch num {
		case fieldHeaderKey:
			l.key, err = utf8String(val)
		case fieldHeaderValue:
			l.value, err = utf8String(val)
		case fieldHeaderRawValue:
			l.raw = unsafeString(val)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("header_map: %w", err)
	}
	d.lines = append(d.lines, l)
	return nil
}

// mapEntry reads a map<string, string> entry: key and value "" when absent,
// the last of each when repeated.
func mapEntry(b []byte) (key, value string, err error) {
	if k, v, ok := plainEntry(b); ok {
		if key, err = utf8String(k); err == nil {
			value, err = utf8String(v)
		}
		return key, value, err
	}
	err = eachField(b, func(num protowire.Number, val []byte) error {
		var err error
		switch num {
		case fieldMapKey:
			key, err = utf8String(val)
		case fieldMapValue:
			value, err = utf8String(val)
		}
		return err
	})
	return key, value, err
}

// Tags of a map entry's key and value, as every marshaller writes them.
const (
	tagMapKey   = byte(fieldMapKey<<3 | protowire.BytesType)
	tagMapValue = byte(fieldMapValue<<3 | protowire.BytesType)
)

// plainEntry splits b when it is a map entry as marshallers write one (as
// Envoy's are): the key, then the value, and nothing else. Every header is
// one; reading it here, not through eachField's generic walk, saves a call
// per field. Any other layout (ok false) is left to that walk.
func plainEntry(b []byte) (key, value []byte, ok bool) {
	if len(b) < 2 || b[0] != tagMapKey {
		return nil, nil, false
	}
	key, n := protowire.ConsumeBytes(b[1:])
	if n < 0 || 1+n >= len(b) || b[1+n] != tagMapValue {
		return nil, nil, false
	}
	b = b[1+n+1:]
	value, n = protowire.ConsumeBytes(b)
	if n != len(b) {
		return nil, nil, false
	}
	return key, value, true
}

// eachField calls f with every length-delimited field of the message b, in
// order, and checks that the others are well formed. A field of another
// wire type is not passed on, whatever its number: every field read here is
// length-delimited, and proto.Unmarshal keeps a field of the wrong wire type
// aside as unknown.
func eachField(b []byte, f func(num protowire.Number, val []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: tag: %w", errMalformed, protowire.ParseError(n))
		}
		if num > protowire.MaxValidNumber {
			return fmt.Errorf("%w: field number %d out of range", errMalformed, num)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			// Skipped whole, a group with all it holds; an end-group
			// here closes no group and is an error, as in proto.Unmarshal.
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("%w: field %d: %w", errMalformed, num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		val, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return fmt.Errorf("%w: field %d: %w", errMalformed, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, val); err != nil {
			return err
		}
	}
	return nil
}

// eachOf calls f with every occurrence of the message field num of b, in
// order (a message field seen twice is merged: f fills the same state), and
// checks that the other fields are well formed.
func eachOf(b []byte, num protowire.Number, f func(val []byte) error) error {
	return eachField(b, func(got protowire.Number, val []byte) error {
		if got == num {
			return f(val)
		}
		return nil
	})
}

// countField is how many length-delimited fields num of the message b has,
// counted up to the first malformed one (eachField reports that).
func countField(b []byte, num protowire.Number) int {
	count := 0
	for len(b) > 0 {
		got, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(got, typ, b)
		if n < 0 {
			break
		}
		b = b[n:]
		if got == num && typ == protowire.BytesType {
			count++
		}
	}
	return count
}

// utf8String is b as a string field: proto3 strings must be valid UTF-8,
// and proto.Unmarshal refuses a message with one that is not.
func utf8String(b []byte) (string, error) {
	if !utf8.Valid(b) {
		return "", fmt.Errorf("%w: string field is not valid UTF-8", errMalformed)
	}
	return unsafeString(b), nil
}

// unsafeString is b as a string without copying it: see decodeCheckRequest
// for why b never changes.
func unsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

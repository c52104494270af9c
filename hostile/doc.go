// Package hostile holds no production code. Its tests throw a catalogue of
// hostile inputs (forged and malformed tokens, odd headers and cookies, bad
// forms, bad configs) at the real servers, the Check server over loopback
// gRPC and the pages over HTTP, each with the answer it must get, asserting
// that none is allowed and nothing panics.
package hostile

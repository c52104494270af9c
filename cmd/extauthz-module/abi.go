package main

/*
#include "abi.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/extauthz/extauthz/internal/check"
	"github.com/extauthz/extauthz/internal/module"
)

// The Go half of the binding. The rules it keeps (cgo's, and the Go
// runtime's inside a C++ process):
//   - Envoy never holds a Go pointer: a filter config is known to Envoy as a
//     number, a key into filters.
//   - C memory Envoy lends (header names and values) is copied before the
//     hook returns; Go memory lent to Envoy (names, values, bodies) is only
//     lent for the duration of the callback, and a header array holding Go
//     pointers is pinned while Envoy reads it.
//   - No panic crosses into Envoy: each hook recovers, and a request whose
//     decision panicked is answered 503.
//   - No signal handlers: Envoy owns the process's signals, so the config is
//     reloaded when its file changes, never on SIGHUP.

// filters are the live filter configs by handle; handles start at 1 (0 tells
// Envoy the config was refused).
var (
	filters    sync.Map // uint64 -> *module.Filter
	lastHandle atomic.Uint64
)

// Envoy's log levels (envoy_dynamic_module_type_log_level).
const (
	envoyLogInfo  = 2
	envoyLogError = 4
)

func envoyLog(level int, msg string) {
	C.xa_log(C.int(level), cptr(msg), C.size_t(len(msg)))
}

// procsOnce sizes the Go runtime for Envoy's workers once, with the first
// filter config (module.Procs says why).
var procsOnce sync.Once

//export extauthzConfigNew
func extauthzConfigNew(name *C.char, nameLen C.size_t, cfg *C.char, cfgLen C.size_t, workers C.uint32_t, cache *C.bool) (handle C.uint64_t) {
	defer func() {
		if v := recover(); v != nil {
			envoyLog(envoyLogError, fmt.Sprintf("extauthz module: panic while loading the filter config: %v", v))
			handle = 0
		}
	}()
	procsOnce.Do(func() {
		if msg := module.SetProcs(int(workers), os.Getenv("GOMAXPROCS")); msg != "" {
			envoyLog(envoyLogInfo, msg)
		}
	})
	settings, err := module.ParseSettings([]byte(C.GoStringN(cfg, C.int(cfgLen))))
	if err == nil {
		var f *module.Filter
		// Every change a decision could see drops every cached answer.
		if f, err = module.New(settings, module.Options{OnChange: func() { C.xa_cache_bump() }}); err == nil {
			h := lastHandle.Add(1)
			filters.Store(h, f)
			*cache = C.bool(settings.CacheAnswers())
			return C.uint64_t(h)
		}
	}
	// Envoy only says the module failed to initialize: say why in its log.
	envoyLog(envoyLogError, fmt.Sprintf("extauthz module: filter %q refused: %v", C.GoStringN(name, C.int(nameLen)), err))
	return 0
}

//export extauthzConfigDestroy
func extauthzConfigDestroy(h C.uint64_t) {
	defer func() { _ = recover() }()
	if v, ok := filters.LoadAndDelete(uint64(h)); ok {
		v.(*module.Filter).Close()
	}
}

//export extauthzRequestHeaders
func extauthzRequestHeaders(envoyFilter unsafe.Pointer, h C.uint64_t, meta *C.xa_answer_meta) (status C.int) {
	s := stream{envoyFilter}
	var f *module.Filter
	defer func() {
		if v := recover(); v != nil {
			if f != nil {
				module.Recovered(f.Log(), v)
			} else {
				module.Recovered(nil, v)
			}
			module.Unavailable(s)
			status = C.XA_HEADERS_STOP_ITERATION
		}
	}()
	v, ok := filters.Load(uint64(h))
	if !ok {
		module.Unavailable(s)
		return C.XA_HEADERS_STOP_ITERATION
	}
	f = v.(*module.Filter)
	pooled := headerLists.Get().(*check.RequestHeaders)
	r := check.Request{Headers: (*pooled)[:0]}
	readRequest(&r)
	allowed, replay := f.Serve(&r, s)
	if replay.OK {
		meta.cacheable = true
		meta.not_after = C.int64_t(replay.NotAfter.UnixNano())
	}
	// Answer reads the headers and never keeps the slice (check.Request),
	// so the next request on this P reuses its array. Not after a panic:
	// that slice stays out of the pool.
	if cap(r.Headers) <= maxPooledHeaders {
		clear(r.Headers) // the strings are this request's: let them go
		*pooled = r.Headers[:0]
		headerLists.Put(pooled)
	}
	if allowed {
		return C.XA_HEADERS_CONTINUE
	}
	return C.XA_HEADERS_STOP_ITERATION
}

// headerLists are check.Request.Headers slices between requests: a request
// costs no allocation for its list of headers. A slice grown past
// maxPooledHeaders names is dropped instead, so that one request with many
// headers does not keep its array for every later one.
var headerLists = sync.Pool{New: func() any { h := make(check.RequestHeaders, 0, 32); return &h }}

const maxPooledHeaders = 64

// readRequest copies the request's header lines and its route's name, which
// the headers hook read from Envoy before calling Go, into r.
func readRequest(r *check.Request) {
	req := C.xa_current_request()
	if req.route.ptr != nil {
		r.RouteName = C.GoStringN(req.route.ptr, C.int(req.route.length))
	}
	if req.headers == nil {
		return
	}
	// C memory (the worker's own array), read in place.
	for _, h := range unsafe.Slice(req.headers, int(req.headers_len)) {
		r.AddHeader(headerName(h.key_ptr, h.key_length), C.GoStringN(h.value_ptr, C.int(h.value_length)))
	}
}

// commonNames are header names most requests carry: headerName uses these
// strings instead of copying each request's, one allocation fewer per header.
var commonNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{":authority", ":path", ":method", ":scheme", "accept", "accept-encoding",
		"accept-language", "authorization", "cache-control", "connection", "content-length", "content-type",
		"cookie", "origin", "referer", "user-agent", "x-forwarded-for", "x-forwarded-proto", "x-request-id",
		"x-envoy-external-address", "x-envoy-internal", "upgrade-insecure-requests", "sec-fetch-mode",
		"sec-fetch-site", "sec-fetch-dest", "sec-fetch-user", "priority", "te"} {
		m[n] = n
	}
	return m
}()

// headerName returns the name Envoy lends, as a Go string of its own.
func headerName(p *C.char, n C.size_t) string {
	// The view is only used to look the name up; it is not kept.
	if name, ok := commonNames[unsafe.String((*byte)(unsafe.Pointer(p)), int(n))]; ok {
		return name
	}
	return C.GoStringN(p, C.int(n))
}

// stream is module.Stream on one of Envoy's HTTP filters. It holds Envoy's
// pointer as a pointer, so that it fits an interface without an allocation,
// and hands it to C as an integer (filter).
type stream struct{ envoyFilter unsafe.Pointer }

func (s stream) filter() C.uintptr_t { return C.uintptr_t(uintptr(s.envoyFilter)) }

func (s stream) SetHeader(name, value string) {
	C.xa_set_header(s.filter(), cptr(name), C.size_t(len(name)), cptr(value), C.size_t(len(value)))
}

func (s stream) RemoveHeader(name string) {
	// A null value removes the header.
	C.xa_set_header(s.filter(), cptr(name), C.size_t(len(name)), nil, 0)
}

func (s stream) SendResponse(status int, headers []check.Header, body, details string) {
	var pins runtime.Pinner
	defer pins.Unpin()
	hs := make([]C.xa_http_header, len(headers)+1) // +1: never a zero-length array
	for i, h := range headers {
		hs[i] = C.xa_http_header{
			key_ptr: pinned(&pins, h.Name), key_length: C.size_t(len(h.Name)),
			value_ptr: pinned(&pins, h.Value), value_length: C.size_t(len(h.Value)),
		}
	}
	C.xa_send_response(s.filter(), C.uint32_t(status), &hs[0], C.size_t(len(headers)),
		cptr(body), C.size_t(len(body)), cptr(details), C.size_t(len(details)))
}

// nonEmpty is where an empty string points: Envoy reads a null value as
// "remove the header".
var nonEmpty = [1]byte{0}

// cptr lends s's bytes to Envoy for one call.
func cptr(s string) *C.char {
	if s == "" {
		return (*C.char)(unsafe.Pointer(&nonEmpty[0]))
	}
	return (*C.char)(unsafe.Pointer(unsafe.StringData(s)))
}

// pinned is cptr for a pointer stored in Go memory that Envoy reads.
func pinned(p *runtime.Pinner, s string) *C.char {
	c := cptr(s)
	p.Pin(c)
	return c
}

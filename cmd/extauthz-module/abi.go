package main

/*
#include "abi.h"
*/
import "C"

import (
	"unsafe"
)

//export extauthzConfigNew
func extauthzConfigNew(name *C.char, nameLen C.size_t, cfg *C.char, cfgLen C.size_t) C.uint64_t {
	return 1
}

//export extauthzConfigDestroy
func extauthzConfigDestroy(h C.uint64_t) {}

//export extauthzRequestHeaders
func extauthzRequestHeaders(filter unsafe.Pointer, h C.uint64_t) C.int {
	k, v := "x-extauthz-module", "gate"
	C.xa_set_header(filter, (*C.char)(unsafe.Pointer(unsafe.StringData(k))), C.size_t(len(k)),
		(*C.char)(unsafe.Pointer(unsafe.StringData(v))), C.size_t(len(v)))
	return C.XA_HEADERS_CONTINUE
}

// The subset of Envoy's dynamic-module ABI (Envoy 1.40.0, ABI "v0.2.0") that
// the extauthz HTTP filter uses, declared from the ABI's documentation
// (source/extensions/dynamic_modules/abi.h in envoyproxy/envoy). Only what
// the filter calls or must export is here; see docs/module.md for why each
// piece is needed and how it was checked against the Envoy binary.
#ifndef EXTAUTHZ_MODULE_ABI_H
#define EXTAUTHZ_MODULE_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// The ABI version Envoy 1.40.0 was built with. A mismatch only makes Envoy
// log a warning, but it means the declarations below may be stale.
#define EXTAUTHZ_ABI_VERSION "v0.2.0"

typedef struct {
  const char* ptr;
  size_t length;
} xa_envoy_buffer; // envoy_dynamic_module_type_envoy_buffer: memory Envoy owns

typedef struct {
  const char* ptr;
  size_t length;
} xa_module_buffer; // envoy_dynamic_module_type_module_buffer: memory we own

typedef struct {
  const char* key_ptr;
  size_t key_length;
  const char* value_ptr;
  size_t value_length;
} xa_http_header; // both envoy_ and module_http_header have this layout

// envoy_dynamic_module_type_http_header_type
enum { XA_REQUEST_HEADER = 0 };
// envoy_dynamic_module_type_metadata_source
enum { XA_METADATA_ROUTE = 1 };
// envoy_dynamic_module_type_on_http_filter_request_headers_status
enum { XA_HEADERS_CONTINUE = 0, XA_HEADERS_STOP_ITERATION = 1 };

// What xa_read_request returns: the request's header lines and its route's
// name, both Envoy's memory, valid until the hook returns.
typedef struct {
  xa_http_header* headers; // NULL when there are none
  size_t headers_len;
  xa_envoy_buffer route; // ptr NULL: the route names no policy route
} xa_request;

// The route metadata naming the policy route (filter_metadata.extauthz.route),
// as the context extension "route" names it for the sidecar.
#define XA_ROUTE_NAMESPACE "extauthz"
#define XA_ROUTE_KEY "route"

// A filter config as Envoy holds it: the Go side's handle and whether the
// answer cache is on (filter_config answer_cache).
typedef struct {
  uint64_t handle;
  bool cache;
} xa_config;

// What Go says of an answer it applied, for the answer cache (cache.c).
typedef struct {
  bool cacheable;    // an allow with no side effect: replaying it is the same
  int64_t not_after; // Unix ns (wall clock) from which it must be decided again
} xa_answer_meta;

// The answer cache's bounds, per Envoy worker thread (docs/module.md).
#define XA_CACHE_SLOTS 4096          // entries; a power of two
#define XA_CACHE_MAX_KEY 4096        // bytes of key; a longer request is never cached
#define XA_CACHE_MAX_OPS 4096        // bytes of header changes; more is never cached
#define XA_CACHE_BUDGET (16u << 20) // bytes of entries held

// The Envoy callbacks the filter calls, resolved once at load (xa_resolve).
// A filter is Envoy's pointer, passed as an integer: cgo then has no pointer
// to check on each call, and Go never dereferences it.
//
// xa_current_request is the request the headers hook read before calling
// Go (this worker thread's own copy of the pointers, valid until the hook
// returns).
const xa_request* xa_current_request(void);
// xa_set_header sets (a NULL value: removes) a request header, and records
// it for the answer cache; xa_envoy_set_header only sets it.
bool xa_set_header(uintptr_t filter, const char* key, size_t key_len, const char* value, size_t value_len);
bool xa_envoy_set_header(uintptr_t filter, const char* key, size_t key_len, const char* value,
                         size_t value_len);
void xa_send_response(uintptr_t filter, uint32_t status, xa_http_header* headers, size_t headers_len,
                      const char* body, size_t body_len, const char* details, size_t details_len);
void xa_log(int level, const char* msg, size_t len);

// The answer cache (cache.c).
void xa_cache_init(void);
bool xa_cache_lookup(uintptr_t filter, uint64_t handle, const xa_request* r);
void xa_cache_record(const char* key, size_t key_len, const char* value, size_t value_len, bool ok);
void xa_cache_store(uint64_t gen, int64_t not_after);
void xa_cache_bump(void);
uint64_t xa_cache_generation(void);

#endif

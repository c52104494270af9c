// The C half of the binding: the event hooks Envoy resolves by name, and the
// Envoy callbacks the Go half calls through pointers resolved with dlsym.
//
// Only three hooks reach Go: a filter config's creation and destruction (main
// thread) and a request's headers (worker threads). Everything else Envoy
// requires of an HTTP filter is answered here, in C, without entering the Go
// runtime: the decision completes inside the request-headers hook, so a
// stream has no state of its own and the other hooks have nothing to do.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "abi.h"
#include "_cgo_export.h"

// ---- callbacks: resolved once, when Envoy loads the module ----

typedef size_t (*headers_size_fn)(void*, int);
typedef bool (*headers_fn)(void*, int, xa_http_header*);
typedef bool (*set_header_fn)(void*, int, xa_module_buffer, xa_module_buffer);
typedef bool (*metadata_string_fn)(void*, int, xa_module_buffer, xa_module_buffer, xa_envoy_buffer*);
typedef void (*send_response_fn)(void*, uint32_t, xa_http_header*, size_t, xa_module_buffer,
                                 xa_module_buffer);
typedef void (*log_fn)(int, xa_module_buffer);
typedef uint32_t (*concurrency_fn)(void);

static headers_size_fn p_headers_size;
static headers_fn p_headers;
static set_header_fn p_set_header;
static metadata_string_fn p_metadata_string;
static send_response_fn p_send_response;
static log_fn p_log;
static concurrency_fn p_concurrency; // optional: NULL when Envoy does not export it

static void* lookup(const char* name, bool* ok) {
  void* p = dlsym(RTLD_DEFAULT, name);
  if (p == NULL) {
    fprintf(stderr, "extauthz module: Envoy does not export %s; this module needs Envoy 1.40\n", name);
    *ok = false;
  }
  return p;
}

static bool xa_resolve(void) {
  bool ok = true;
  p_headers_size = (headers_size_fn)lookup("envoy_dynamic_module_callback_http_get_headers_size", &ok);
  p_headers = (headers_fn)lookup("envoy_dynamic_module_callback_http_get_headers", &ok);
  p_set_header = (set_header_fn)lookup("envoy_dynamic_module_callback_http_set_header", &ok);
  p_metadata_string =
      (metadata_string_fn)lookup("envoy_dynamic_module_callback_http_get_metadata_string", &ok);
  p_send_response = (send_response_fn)lookup("envoy_dynamic_module_callback_http_send_response", &ok);
  p_log = (log_fn)lookup("envoy_dynamic_module_callback_log", &ok);
  // Only sizes the Go runtime (see extauthzConfigNew): without it the module
  // assumes Envoy's default, a worker per CPU.
  p_concurrency = (concurrency_fn)dlsym(RTLD_DEFAULT, "envoy_dynamic_module_callback_get_concurrency");
  return ok;
}

// xa_load_request reads what a decision needs of a request, in the headers
// hook before anything else: its header lines and its route's name. The
// answer cache keys on them and Go reads them (xa_current_request). The
// header array is this worker thread's own (thread-local, grown as needed,
// kept for the next request), so Go neither allocates it nor lends Envoy Go
// memory; its entries point into Envoy's header map, valid until the hook
// returns.
static __thread xa_request tls_request;
static __thread xa_http_header* tls_headers;
static __thread size_t tls_headers_cap;

static const xa_request* xa_load_request(uintptr_t filter) {
  xa_request* r = &tls_request;
  r->headers = NULL;
  r->headers_len = 0;
  r->route.ptr = NULL;
  r->route.length = 0;
  size_t n = p_headers_size((void*)filter, XA_REQUEST_HEADER);
  if (n > tls_headers_cap) {
    size_t cap = n < 64 ? 64 : 2 * n;
    xa_http_header* grown = realloc(tls_headers, cap * sizeof(xa_http_header));
    if (grown == NULL) {
      return r; // no headers: the decision fails closed (400 or 401)
    }
    tls_headers = grown;
    tls_headers_cap = cap;
  }
  if (n > 0 && p_headers((void*)filter, XA_REQUEST_HEADER, tls_headers)) {
    r->headers = tls_headers;
    r->headers_len = n;
  }
  xa_module_buffer nsb = {XA_ROUTE_NAMESPACE, sizeof XA_ROUTE_NAMESPACE - 1};
  xa_module_buffer keyb = {XA_ROUTE_KEY, sizeof XA_ROUTE_KEY - 1};
  xa_envoy_buffer route = {NULL, 0};
  if (p_metadata_string((void*)filter, XA_METADATA_ROUTE, nsb, keyb, &route) && route.ptr != NULL) {
    r->route = route;
  }
  return r;
}

const xa_request* xa_current_request(void) { return &tls_request; }

bool xa_envoy_set_header(uintptr_t filter, const char* key, size_t key_len, const char* value,
                         size_t value_len) {
  xa_module_buffer k = {key, key_len};
  xa_module_buffer v = {value, value_len}; // a NULL value removes the header
  return p_set_header((void*)filter, XA_REQUEST_HEADER, k, v);
}

bool xa_set_header(uintptr_t filter, const char* key, size_t key_len, const char* value, size_t value_len) {
  bool ok = xa_envoy_set_header(filter, key, key_len, value, value_len);
  xa_cache_record(key, key_len, value, value_len, ok);
  return ok;
}
void xa_send_response(uintptr_t filter, uint32_t status, xa_http_header* headers, size_t headers_len,
                      const char* body, size_t body_len, const char* details, size_t details_len) {
  xa_module_buffer b = {body, body_len};
  xa_module_buffer d = {details, details_len};
  p_send_response((void*)filter, status, headers, headers_len, b, d);
}

void xa_log(int level, const char* msg, size_t len) {
  xa_module_buffer m = {msg, len};
  p_log(level, m);
}

// ---- hooks Envoy calls ----

const char* envoy_dynamic_module_on_program_init(void) {
  if (!xa_resolve()) {
    return NULL; // Envoy refuses the module, naming it
  }
  xa_cache_init();
  return EXTAUTHZ_ABI_VERSION;
}

const void* envoy_dynamic_module_on_http_filter_config_new(void* config_envoy, xa_envoy_buffer name,
                                                           xa_envoy_buffer config) {
  (void)config_envoy;
  xa_config* c = malloc(sizeof(xa_config));
  if (c == NULL) {
    return NULL; // Envoy refuses the config
  }
  // Envoy's worker count, on the main thread as the ABI requires (0: unknown).
  uint32_t workers = p_concurrency != NULL ? p_concurrency() : 0;
  c->cache = false;
  c->handle = extauthzConfigNew((char*)name.ptr, name.length, (char*)config.ptr, config.length, workers,
                                &c->cache);
  // The handle is only a key into the Go side's table: no Go pointer is
  // ever kept by Envoy. 0 means the config was refused.
  if (c->handle == 0) {
    free(c);
    return NULL;
  }
  return c;
}

void envoy_dynamic_module_on_http_filter_config_destroy(const void* config) {
  const xa_config* c = config;
  extauthzConfigDestroy(c->handle);
  free((void*)c);
}

// A stream's filter is its config: the decision needs nothing per stream
// beyond the headers hook.
const void* envoy_dynamic_module_on_http_filter_new(const void* config, void* filter_envoy) {
  (void)filter_envoy;
  return config;
}

// The request's headers: answered from this worker's answer cache when the
// request repeats an earlier one exactly (cache.c), else decided by Go, whose
// answer is cached when Go says it may be. The generation is read before Go
// decides, so an entry never claims a state newer than the one it was
// decided with.
int envoy_dynamic_module_on_http_filter_request_headers(void* filter_envoy, const void* filter,
                                                        bool end_of_stream) {
  (void)end_of_stream;
  const xa_config* c = filter;
  uintptr_t f = (uintptr_t)filter_envoy;
  const xa_request* r = xa_load_request(f);
  if (c->cache && xa_cache_lookup(f, c->handle, r)) {
    return XA_HEADERS_CONTINUE;
  }
  uint64_t gen = xa_cache_generation();
  xa_answer_meta meta = {false, 0};
  int status = extauthzRequestHeaders(filter_envoy, c->handle, &meta);
  if (c->cache) {
    // Stores only when recording went well; always ends the recording.
    xa_cache_store(gen, status == XA_HEADERS_CONTINUE && meta.cacheable ? meta.not_after : 0);
  }
  return status;
}

// Hooks with nothing to do: Continue (0) for every status enum.
int envoy_dynamic_module_on_http_filter_request_body(void* f, const void* m, bool eos) { return 0; }
int envoy_dynamic_module_on_http_filter_request_trailers(void* f, const void* m) { return 0; }
int envoy_dynamic_module_on_http_filter_response_headers(void* f, const void* m, bool eos) { return 0; }
int envoy_dynamic_module_on_http_filter_response_body(void* f, const void* m, bool eos) { return 0; }
int envoy_dynamic_module_on_http_filter_response_trailers(void* f, const void* m) { return 0; }
void envoy_dynamic_module_on_http_filter_stream_complete(void* f, const void* m) {}
void envoy_dynamic_module_on_http_filter_destroy(const void* m) {}
void envoy_dynamic_module_on_http_filter_scheduled(void* f, const void* m, uint64_t id) {}
void envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(void* f,
                                                                                     const void* m) {}
void envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(void* f,
                                                                                    const void* m) {}
// The filter starts no callouts or streams of its own.
void envoy_dynamic_module_on_http_filter_http_callout_done(void* f, const void* m, uint64_t id, int result,
                                                           xa_http_header* headers, size_t headers_len,
                                                           xa_envoy_buffer* body, size_t body_len) {}
void envoy_dynamic_module_on_http_filter_http_stream_headers(void* f, const void* m, uint64_t id,
                                                             xa_http_header* headers, size_t len,
                                                             bool end_stream) {}
void envoy_dynamic_module_on_http_filter_http_stream_data(void* f, const void* m, uint64_t id,
                                                          const xa_envoy_buffer* data, size_t len,
                                                          bool end_stream) {}
void envoy_dynamic_module_on_http_filter_http_stream_trailers(void* f, const void* m, uint64_t id,
                                                              xa_http_header* trailers, size_t len) {}
void envoy_dynamic_module_on_http_filter_http_stream_complete(void* f, const void* m, uint64_t id) {}
void envoy_dynamic_module_on_http_filter_http_stream_reset(void* f, const void* m, uint64_t id,
                                                           int reason) {}

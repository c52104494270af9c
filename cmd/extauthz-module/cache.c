// The answer cache: a repeat of an earlier request (same filter config,
// same route, the same header lines byte for byte but x-request-id's value)
// is answered here, in C, by replaying the header changes Go made for the
// first one, without entering the Go runtime. See docs/module.md ("The
// answer cache") for what is cached, when an entry dies, and its memory.
//
// Every rule here fails towards a miss: a miss goes to Go exactly as without
// the cache. A hit needs the full key equal byte for byte (the keyed hash
// only picks the slot), the process-wide generation unchanged since Go
// decided, and the wall clock before the entry's notAfter.
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "abi.h"

#define XA_WAYS 4
#define XA_SETS (XA_CACHE_SLOTS / XA_WAYS)
#define XA_REMOVE 0xFFFFFFFFu  // an op's value length: remove the header
#define XA_NO_ROUTE 0xFFFFFFFFu // the key's route length: no route metadata

// The generation: bumped by Go (xa_cache_bump) after any state a decision
// reads changed. Starts at 1 so that a zeroed entry never matches.
static _Atomic uint64_t generation = 1;
static uint64_t seed0, seed1;          // set once at program init

typedef struct {
  uint64_t hash;
  uint64_t gen;
  int64_t not_after; // Unix ns, wall clock
  uint32_t key_len;
  uint32_t ops_len;
  unsigned char data[]; // the key, then the ops
} entry;

// A worker thread's cache and scratch space, allocated at its first request.
typedef struct {
  entry* slots[XA_CACHE_SLOTS];
  size_t bytes; // of the entries held, against XA_CACHE_BUDGET
  unsigned victim;
  size_t key_len; // 0: this request is not cacheable (too long, no memory)
  uint64_t key_hash; // mix64 of key, for xa_cache_store after a miss
  unsigned char key[XA_CACHE_MAX_KEY];
  // The header changes Go makes on this request, recorded as they are made.
  int recording; // 1: recording, 0: not, -1: failed (too long, or Envoy refused one)
  size_t ops_len;
  unsigned char ops[XA_CACHE_MAX_OPS];
} worker;

static __thread worker* tls;
static __thread int tls_failed; // calloc failed once: this thread never caches

void xa_cache_init(void) {
  uint64_t s[2] = {0, 0};
  if (getrandom(s, sizeof s, 0) != (ssize_t)sizeof s) {
    // No random seed: still correct (keys are compared in full), only slot
    // collisions could be steered. Mix in what varies per process.
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s[0] ^= (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)&s;
    s[1] ^= (uint64_t)ts.tv_sec * 0xC2B2AE3D27D4EB4Full;
  }
  seed0 = s[0];
  seed1 = s[1] | 1;
}

void xa_cache_bump(void) { atomic_fetch_add(&generation, 1); }
uint64_t xa_cache_generation(void) { return atomic_load(&generation); }

static int64_t now_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
    return INT64_MAX; // no clock: every entry is expired
  }
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// mix64 is a seeded hash of the key, only to pick a slot.
static uint64_t mix64(const unsigned char* p, size_t n) {
  uint64_t h = seed0 ^ (n * 0x9E3779B97F4A7C15ull);
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = (h ^ w) * seed1;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  uint64_t w = 0;
  memcpy(&w, p, n);
  h = (h ^ w) * seed1;
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93ull;
  h ^= h >> 32;
  return h;
}

static worker* get_worker(void) {
  if (tls == NULL && !tls_failed) {
    tls = calloc(1, sizeof(worker));
    tls_failed = tls == NULL;
  }
  return tls;
}

// put appends n bytes to the key, or says the key would pass its cap.
static bool put(worker* w, size_t* at, const void* p, size_t n) {
  if (n > XA_CACHE_MAX_KEY || *at > XA_CACHE_MAX_KEY - n) {
    return false;
  }
  memcpy(w->key + *at, p, n);
  *at += n;
  return true;
}

static bool put32(worker* w, size_t* at, uint32_t v) { return put(w, at, &v, sizeof v); }

static bool is_request_id(const xa_http_header* h) {
  static const char name[] = "x-request-id";
  if (h->key_length != sizeof name - 1) {
    return false;
  }
  for (size_t i = 0; i < sizeof name - 1; i++) {
    char c = h->key_ptr[i];
    if (c >= 'A' && c <= 'Z') {
      c += 'a' - 'A';
    }
    if (c != name[i]) {
      return false;
    }
  }
  return true;
}

// build_key writes r's key into w->key: the config's handle, the route's
// name (or its absence), then every header line in Envoy's order, lengths
// first so no two requests share a key. x-request-id's value is left out
// (Envoy makes a new one per request; an allow never depends on it: see
// docs/module.md) but its presence and place are kept.
static bool build_key(worker* w, uint64_t handle, const xa_request* r) {
  size_t at = 0;
  bool ok = put(w, &at, &handle, sizeof handle);
  if (r->route.ptr == NULL) {
    ok = ok && put32(w, &at, XA_NO_ROUTE);
  } else {
    ok = ok && r->route.length < XA_NO_ROUTE && put32(w, &at, (uint32_t)r->route.length) &&
         put(w, &at, r->route.ptr, r->route.length);
  }
  for (size_t i = 0; ok && i < r->headers_len; i++) {
    const xa_http_header* h = &r->headers[i];
    bool rid = is_request_id(h);
    size_t vlen = rid ? 0 : h->value_length;
    ok = h->key_length < XA_REMOVE && vlen < XA_REMOVE && put32(w, &at, (uint32_t)h->key_length) &&
         put32(w, &at, rid ? XA_REMOVE : (uint32_t)vlen) && put(w, &at, h->key_ptr, h->key_length) &&
         put(w, &at, h->value_ptr, vlen);
  }
  w->key_len = ok ? at : 0;
  return ok;
}

static void drop(worker* w, size_t i) {
  entry* e = w->slots[i];
  if (e != NULL) {
    w->bytes -= sizeof(entry) + e->key_len + e->ops_len;
    free(e);
    w->slots[i] = NULL;
  }
}

// replay applies an entry's header changes, as Go applied them.
static void replay(uintptr_t filter, const entry* e) {
  const unsigned char* p = e->data + e->key_len;
  const unsigned char* end = p + e->ops_len;
  while (p < end) {
    uint32_t klen, vlen;
    memcpy(&klen, p, 4);
    memcpy(&vlen, p + 4, 4);
    p += 8;
    const char* k = (const char*)p;
    p += klen;
    if (vlen == XA_REMOVE) {
      xa_envoy_set_header(filter, k, klen, NULL, 0);
    } else {
      xa_envoy_set_header(filter, k, klen, (const char*)p, vlen);
      p += vlen;
    }
  }
}

bool xa_cache_lookup(uintptr_t filter, uint64_t handle, const xa_request* r) {
  worker* w = get_worker();
  if (w == NULL) {
    return false;
  }
  w->recording = 0;
  w->ops_len = 0;
  if (!build_key(w, handle, r)) {
    return false;
  }
  uint64_t h = mix64(w->key, w->key_len);
  w->key_hash = h;
  size_t set = (size_t)(h % XA_SETS) * XA_WAYS;
  for (size_t i = set; i < set + XA_WAYS; i++) {
    entry* e = w->slots[i];
    if (e == NULL || e->hash != h || e->key_len != w->key_len || memcmp(e->data, w->key, w->key_len) != 0) {
      continue;
    }
    if (e->gen != atomic_load(&generation) || now_ns() >= e->not_after) {
      drop(w, i); // stale: the state changed or time passed
      break;
    }
    replay(filter, e);
    return true;
  }
  w->recording = 1;
  return false;
}

void xa_cache_record(const char* key, size_t key_len, const char* value, size_t value_len, bool ok) {
  worker* w = tls;
  if (w == NULL || w->recording != 1) {
    return;
  }
  if (!ok || key_len > XA_CACHE_MAX_OPS || value_len > XA_CACHE_MAX_OPS) {
    w->recording = -1;
    return;
  }
  size_t need = 8 + key_len + (value == NULL ? 0 : value_len);
  if (need > XA_CACHE_MAX_OPS || w->ops_len > XA_CACHE_MAX_OPS - need) {
    w->recording = -1;
    return;
  }
  uint32_t klen = (uint32_t)key_len, vlen = value == NULL ? XA_REMOVE : (uint32_t)value_len;
  unsigned char* p = w->ops + w->ops_len;
  memcpy(p, &klen, 4);
  memcpy(p + 4, &vlen, 4);
  memcpy(p + 8, key, key_len);
  if (value != NULL) {
    memcpy(p + 8 + key_len, value, value_len);
  }
  w->ops_len += need;
}

// xa_cache_store ends the recording of this request's header changes and
// keeps them, when Go said the answer may be replayed (not_after > 0) and
// the recording is whole.
void xa_cache_store(uint64_t gen, int64_t not_after) {
  worker* w = tls;
  if (w == NULL || w->recording != 1 || w->key_len == 0 || not_after <= 0) {
    if (w != NULL) {
      w->recording = 0;
    }
    return;
  }
  w->recording = 0;
  size_t size = sizeof(entry) + w->key_len + w->ops_len;
  uint64_t h = w->key_hash; // the key is the one the lookup hashed
  size_t set = (size_t)(h % XA_SETS) * XA_WAYS;
  // The slot: this key's (a stale copy), else an empty one, else a victim.
  size_t slot = set + (w->victim++ % XA_WAYS);
  for (size_t i = set; i < set + XA_WAYS; i++) {
    entry* e = w->slots[i];
    if (e == NULL || (e->hash == h && e->key_len == w->key_len && memcmp(e->data, w->key, w->key_len) == 0)) {
      slot = i;
      break;
    }
  }
  drop(w, slot);
  if (w->bytes + size > XA_CACHE_BUDGET) {
    return; // the worker's budget is spent: no caching until entries go
  }
  entry* e = malloc(size);
  if (e == NULL) {
    return; // no memory: no caching
  }
  e->hash = h;
  e->gen = gen;
  e->not_after = not_after;
  e->key_len = (uint32_t)w->key_len;
  e->ops_len = (uint32_t)w->ops_len;
  memcpy(e->data, w->key, w->key_len);
  memcpy(e->data + w->key_len, w->ops, w->ops_len);
  w->slots[slot] = e;
  w->bytes += size;
}

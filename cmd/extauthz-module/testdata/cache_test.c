// A C test of the answer cache (cache.c), run by cache_test.go under
// AddressSanitizer and UndefinedBehaviorSanitizer: what hits and what
// misses, that a hit replays exactly the recorded calls, and that no input
// (a header past every cap) reads or writes out of bounds. Envoy's
// set_header is a stub that records the calls.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../abi.h"

typedef struct {
  char key[64];
  char value[64];
  bool null_value;
  size_t value_len;
} call;

static call calls[16];
static int ncalls;
static bool set_ok = true; // what the stub answers

bool xa_envoy_set_header(uintptr_t f, const char* k, size_t kl, const char* v, size_t vl) {
  (void)f;
  if (ncalls < 16) {
    call* c = &calls[ncalls];
    snprintf(c->key, sizeof c->key, "%.*s", (int)kl, k);
    c->null_value = v == NULL;
    c->value_len = vl;
    snprintf(c->value, sizeof c->value, "%.*s", v ? (int)(vl < 63 ? vl : 63) : 0, v ? v : "");
  }
  ncalls++;
  return set_ok;
}

static int failures;
#define CHECK(cond, ...)                                                   \
  do {                                                                      \
    if (!(cond)) {                                                          \
      printf("FAIL %s:%d: ", __func__, __LINE__);                          \
      printf(__VA_ARGS__);                                                  \
      printf("\n");                                                         \
      failures++;                                                           \
    }                                                                       \
  } while (0)

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define MINUTE 60000000000LL

// A request: the route and up to 8 header lines.
typedef struct {
  const char* route; // NULL: none
  int n;
  const char* names[8];
  const char* values[8];
} req;

static xa_http_header hs[8];
static xa_request r;

static const xa_request* make(const req* q) {
  for (int i = 0; i < q->n; i++) {
    hs[i] = (xa_http_header){q->names[i], strlen(q->names[i]), q->values[i], strlen(q->values[i])};
  }
  r = (xa_request){hs, (size_t)q->n, {q->route, q->route ? strlen(q->route) : 0}};
  return &r;
}

static const req bob = {"app", 5, {":authority", ":path", "authorization", "x-request-id", "accept"},
                        {"app.localhost", "/x", "Pomerium tok-bob", "rid-1", "*/*"}};

// decide is the Go side on a miss: the answer's calls, then the store.
static void decide(uint64_t gen, int64_t not_after) {
  xa_cache_record("x-pomerium-jwt-assertion", 24, "jws-bob", 7, xa_envoy_set_header(1, "x-pomerium-jwt-assertion", 24, "jws-bob", 7));
  xa_cache_record("x-empty", 7, "", 0, xa_envoy_set_header(1, "x-empty", 7, "", 0));
  xa_cache_record("authorization", 13, NULL, 0, xa_envoy_set_header(1, "authorization", 13, NULL, 0));
  xa_cache_store(gen, not_after);
}

// warm makes q a cached answer (a miss, then Go's answer stored).
static void warm(uint64_t handle, const req* q, int64_t not_after) {
  bool hit = xa_cache_lookup(1, handle, make(q));
  CHECK(!hit, "the first sighting hit");
  decide(xa_cache_generation(), not_after);
}

static bool lookup(uint64_t handle, const req* q) {
  ncalls = 0;
  bool hit = xa_cache_lookup(1, handle, make(q));
  if (!hit) {
    xa_cache_store(0, 0); // a miss that Go answers uncacheably: ends the recording
  }
  return hit;
}

static void test_a_hit_replays_the_recorded_calls_in_order(void) {
  warm(10, &bob, now_ns() + MINUTE);
  CHECK(lookup(10, &bob), "an identical request missed");
  CHECK(ncalls == 3, "%d calls replayed, want 3", ncalls);
  CHECK(strcmp(calls[0].key, "x-pomerium-jwt-assertion") == 0 && strcmp(calls[0].value, "jws-bob") == 0 &&
            !calls[0].null_value, "first call %s=%s", calls[0].key, calls[0].value);
  CHECK(strcmp(calls[1].key, "x-empty") == 0 && !calls[1].null_value && calls[1].value_len == 0,
        "an empty value must be set as empty, not removed");
  CHECK(strcmp(calls[2].key, "authorization") == 0 && calls[2].null_value, "a removal must replay as a removal");
}

static void test_what_misses(void) {
  warm(11, &bob, now_ns() + MINUTE);
  req q;
  q = bob, q.values[2] = "Pomerium tok-bea"; // one byte, same length
  CHECK(!lookup(11, &q), "a token differing in one byte hit");
  q = bob, q.values[1] = "/y";
  CHECK(!lookup(11, &q), "another path hit");
  q = bob, q.route = "wiki";
  CHECK(!lookup(11, &q), "another route hit");
  q = bob, q.route = NULL;
  CHECK(!lookup(11, &q), "no route hit a named route's answer");
  q = bob, q.names[4] = "accepT";
  CHECK(!lookup(11, &q), "another header name hit");
  q = bob, q.n = 4;
  CHECK(!lookup(11, &q), "a header fewer hit");
  q = bob, q.names[3] = "accept", q.values[3] = "*/*", q.names[4] = "x-request-id", q.values[4] = "rid-1";
  CHECK(!lookup(11, &q), "headers in another order hit");
  q = bob, q.names[3] = "x-other", q.values[3] = "rid-1";
  CHECK(!lookup(11, &q), "a request without x-request-id hit one with it");
  CHECK(!lookup(12, &bob), "another filter config hit");
  q = bob, q.values[3] = "another-request-id";
  CHECK(lookup(11, &q), "only x-request-id's value differs: want a hit");
  CHECK(lookup(11, &bob), "the cached answer is gone after misses of other keys");
}

static void test_the_generation_and_the_clock_end_an_entry(void) {
  warm(20, &bob, now_ns() + MINUTE);
  xa_cache_bump();
  CHECK(!lookup(20, &bob), "hit after the generation changed");
  CHECK(!lookup(20, &bob), "a stale entry hit on the second try");
  warm(21, &bob, now_ns() - 1);
  CHECK(!lookup(21, &bob), "hit after notAfter");
  // Stored with the generation read before a bump: never a hit.
  CHECK(!xa_cache_lookup(1, 22, make(&bob)), "first sighting hit");
  uint64_t before = xa_cache_generation();
  xa_cache_bump();
  decide(before, now_ns() + MINUTE);
  CHECK(!lookup(22, &bob), "an answer decided before a bump hit after it");
}

static void test_what_is_never_stored(void) {
  // Go said no (not_after 0).
  CHECK(!xa_cache_lookup(1, 30, make(&bob)), "first sighting hit");
  decide(xa_cache_generation(), 0);
  CHECK(!lookup(30, &bob), "an answer Go did not allow to replay hit");
  // Envoy refused a call while Go answered.
  CHECK(!xa_cache_lookup(1, 31, make(&bob)), "first sighting hit");
  set_ok = false;
  decide(xa_cache_generation(), now_ns() + MINUTE);
  set_ok = true;
  CHECK(!lookup(31, &bob), "an answer with a refused set_header hit");
  // Changes past their cap: a value just short of it (its name and lengths
  // pass it) and one longer than it.
  static char big[XA_CACHE_MAX_OPS + 10];
  size_t lens[] = {XA_CACHE_MAX_OPS - 2, XA_CACHE_MAX_OPS + 9};
  for (int i = 0; i < 2; i++) {
    memset(big, 'v', lens[i]);
    big[lens[i]] = 0;
    CHECK(!xa_cache_lookup(1, 32 + i, make(&bob)), "first sighting hit");
    xa_cache_record("x-big", 5, big, lens[i], true);
    xa_cache_store(xa_cache_generation(), now_ns() + MINUTE);
    CHECK(!lookup(32 + i, &bob), "an answer of %zu bytes of changes hit", lens[i]);
  }
}

static void test_requests_past_the_key_cap_are_never_copied(void) {
  // One value past the key's cap, and one past the whole per-worker area,
  // first and last: AddressSanitizer reports any copy out of bounds.
  static char huge[64 * 1024];
  memset(huge, 'a', sizeof huge - 1);
  for (int at = 0; at < 5; at += 4) {
    for (size_t len = XA_CACHE_MAX_KEY - 8; len < sizeof huge; len = len * 3 + 1) {
      req q = bob;
      huge[len] = 0;
      q.values[at] = huge;
      CHECK(!xa_cache_lookup(1, 40, make(&q)), "a long request hit");
      decide(xa_cache_generation(), now_ns() + MINUTE);
      CHECK(!lookup(40, &q), "a request of %zu bytes in header %d was cached", len, at);
      huge[len] = 'a';
    }
  }
}

static void test_many_keys_fit(void) {
  static char toks[2000][40];
  int hits = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < 2000; i++) {
      snprintf(toks[i], sizeof toks[i], "Pomerium tok-%d", i);
      req q = bob;
      q.values[2] = toks[i];
      if (lookup(50, &q)) {
        hits++;
      } else if (pass == 0) {
        xa_cache_lookup(1, 50, make(&q));
        decide(xa_cache_generation(), now_ns() + MINUTE);
      }
    }
  }
  CHECK(hits >= 1800, "%d of 2000 cached requests hit on the second pass, want at least 90%%", hits);
}

int main(void) {
  xa_cache_init();
  test_a_hit_replays_the_recorded_calls_in_order();
  test_what_misses();
  test_the_generation_and_the_clock_end_an_entry();
  test_what_is_never_stored();
  test_requests_past_the_key_cap_are_never_copied();
  test_many_keys_fit();
  if (failures > 0) {
    printf("%d failures\n", failures);
    return 1;
  }
  printf("ok\n");
  return 0;
}

/*
 * util_rand.h — deterministic randomness for tests (every randomised test
 * reads RELM_SEED, defaults to a fixed seed, and prints it on failure:
 * proto/invariants.md, README.md "Make targets").
 *
 * Two kinds of streams, both pure functions of the seed:
 *  - the global test stream (tu_rand64, tu_rand_bytes): xoshiro256**
 *    seeded through splitmix64.  Call tu_seed_from_env() in main() before
 *    srunner_run_all: every forked test then starts from the same state, so
 *    a test's draws do not depend on which tests ran before it.
 *  - per-env streams (tu_env_init): ChaCha20 keystreams keyed by
 *    BLAKE2b(seed, stream number), one per simulated device, each with its
 *    own state on env->ctx, so several devices coexist and one device's
 *    draws never shift another's.
 *
 * Put TU_SEED_FMT / tu_seed() into ck_assert_msg messages so a failure
 * names the seed that reproduces it:
 *     ck_assert_msg(ok, "mismatch at %zu (" TU_SEED_FMT ")", i, tu_seed());
 */
#ifndef RELM_TESTS_UTIL_RAND_H
#define RELM_TESTS_UTIL_RAND_H

#include <stddef.h>
#include <stdint.h>
#include "engine/env.h"

#define TU_SEED_DEFAULT 1
#define TU_SEED_FMT "RELM_SEED=%llu"
#define TU_SEED_ARG ((unsigned long long)tu_seed())

/* Read RELM_SEED (decimal or 0x-hex; TU_SEED_DEFAULT if unset or bad, with
 * a warning on stderr for a bad one), print "RELM_SEED=<n>" to stderr and
 * reset the global stream.  Also calls sodium_init. */
void tu_seed_from_env(void);
/* Reset the global stream to an explicit seed. */
void tu_seed_set(uint64_t seed);
uint64_t tu_seed(void);

uint64_t tu_rand64(void);
/* Uniform in [0, n) (n > 0), without modulo bias. */
uint64_t tu_rand_below(uint64_t n);
void tu_rand_bytes(uint8_t *buf, size_t len);

/* Parse exactly len bytes of hex (either case, whitespace ignored) into
 * out; aborts on bad input (test vectors are typed by hand). */
void tu_unhex(uint8_t *out, size_t len, const char *hex);
/* Lowercase hex of buf into a static buffer (one of 4 rotating, each up to
 * 512 bytes of input): for assertion messages. */
const char *tu_hex(const uint8_t *buf, size_t len);

/* A struct relm_env for one simulated device: random = its own ChaCha20
 * stream, now_ms = *virtual_clock_ms (which must outlive env),
 * params = relm_params_default, history_has = NULL.  tu_env_init numbers
 * streams 0, 1, 2, ... in call order (reset by tu_seed_from_env /
 * tu_seed_set); tu_env_init_stream picks the stream explicitly.  Release
 * with tu_env_free. */
void tu_env_init(struct relm_env *env, uint64_t *virtual_clock_ms);
void tu_env_init_stream(struct relm_env *env, uint64_t *virtual_clock_ms, uint64_t stream);
void tu_env_free(struct relm_env *env);

#endif

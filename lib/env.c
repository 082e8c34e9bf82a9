/* env.c — defaults and the system environment (relmd's). The only file of
 * lib/ that names the real clock and randombytes_buf, and only to offer
 * them to the caller; engine code reaches them only through struct relm_env. */
#include <time.h>
#include <string.h>
#include <pthread.h>
#include <sodium.h>
#include "env.h"
#include "limits.h"

void relm_params_default(struct relm_params *p)
{
	p->max_skip = RELM_MAX_SKIP;
	p->max_skipped = RELM_MAX_SKIPPED;
	p->prune_w = RELM_PRUNE_W;
	p->retain_r = RELM_RETAIN_R;
	p->receipt_delay_min_ms = RELM_RECEIPT_DELAY_MIN_MS;
	p->receipt_delay_max_ms = RELM_RECEIPT_DELAY_MAX_MS;
	p->retx_base_ms = RELM_RETX_BASE_MS;
	p->retx_cap_ms = RELM_RETX_CAP_MS;
	p->retx_max_tries = RELM_RETX_MAX_TRIES;
	p->pending_ttl_ms = RELM_PENDING_TTL_MS;
	p->skipped_ttl_ms = RELM_SKIPPED_TTL_MS;
	p->used_key_ttl_ms = RELM_USED_KEY_TTL_MS;
}

/*
 * relmd's randomness: a ChaCha20 generator with fast key erasure (the
 * design of OpenBSD's arc4random), seeded from the kernel (randombytes_buf)
 * and reseeded every RESEED bytes and in a forked child.  Why not
 * randombytes_buf per call: a message draws twice (id and nonce), and on a
 * virtual machine each getrandom(2) costs 1–3 µs — a fifth of a whole
 * message.  Each refill makes 32 + 256 bytes, takes the first 32 as the
 * next key at once (so earlier output cannot be recomputed from the state)
 * and wipes every byte it hands out from the buffer.
 */
enum { RNG_BUF = 256, RNG_RESEED = 1 << 16 };

static struct {
	uint8_t key[crypto_stream_chacha20_KEYBYTES];
	uint8_t buf[RNG_BUF];
	size_t avail;
	size_t since_seed;
	int seeded;
	int atfork;
} rng;

static void rng_forget(void)
{
	sodium_memzero(&rng.key, sizeof rng.key);
	sodium_memzero(&rng.buf, sizeof rng.buf);
	rng.avail = 0;
	rng.seeded = 0;     /* a forked child must never repeat its parent's stream */
}

static void rng_refill(void)
{
	static const uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
	uint8_t block[sizeof rng.key + RNG_BUF];

	crypto_stream_chacha20(block, sizeof block, nonce, rng.key);
	memcpy(rng.key, block, sizeof rng.key);
	memcpy(rng.buf, block + sizeof rng.key, RNG_BUF);
	sodium_memzero(block, sizeof block);
	rng.avail = RNG_BUF;
}

static void sys_random(void *ctx, uint8_t *buf, size_t len)
{
	(void)ctx;
	if (!rng.atfork) {
		pthread_atfork(NULL, NULL, rng_forget);
		rng.atfork = 1;
	}
	if (!rng.seeded || rng.since_seed >= RNG_RESEED) {
		randombytes_buf(rng.key, sizeof rng.key);
		rng.avail = 0;
		rng.since_seed = 0;
		rng.seeded = 1;
	}
	while (len) {
		if (!rng.avail)
			rng_refill();
		size_t take = len < rng.avail ? len : rng.avail;
		uint8_t *src = rng.buf + RNG_BUF - rng.avail;
		memcpy(buf, src, take);
		sodium_memzero(src, take);
		rng.avail -= take;
		rng.since_seed += take;
		buf += take;
		len -= take;
	}
}

static uint64_t sys_now(void *ctx)
{
	struct timespec ts;
	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void relm_env_init_system(struct relm_env *env)
{
	env->ctx = NULL;
	env->random = sys_random;
	env->now_ms = sys_now;
	env->history_has = NULL;
	env->history_ctx = NULL;
	relm_params_default(&env->params);
}

uint64_t relm__now(const struct relm_env *env)
{
	return env->now_ms(env->ctx);
}

void relm__random(const struct relm_env *env, uint8_t *buf, size_t len)
{
	env->random(env->ctx, buf, len);
}

uint32_t relm__random_between(const struct relm_env *env, uint32_t lo, uint32_t hi)
{
	uint8_t b[8];
	uint64_t x = 0;

	if (hi <= lo)
		return lo;
	relm__random(env, b, sizeof b);
	for (int i = 0; i < 8; i++)
		x = (x << 8) | b[i];
	return lo + (uint32_t)(x % ((uint64_t)hi - lo + 1));
}

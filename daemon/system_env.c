/*
 * system_env.c — the real world for the engine: the system clock and the
 * kernel's randomness, behind struct relm_env (lib/engine/env.h).  Lives in
 * daemon/ because lib/ never reads a clock or draws randomness of its own
 * (make check's purity test looks at librelm.a's undefined symbols).
 */
#include <time.h>
#include <string.h>
#include <pthread.h>
#include <sodium.h>
#include "system_env.h"

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
	/* every optional hook NULL, also those added after this was written
	 * (observe_sent, history_get): a caller's env on the stack held
	 * garbage there, which the engine then called */
	memset(env, 0, sizeof *env);
	env->random = sys_random;
	env->now_ms = sys_now;
	relm_params_default(&env->params);
}

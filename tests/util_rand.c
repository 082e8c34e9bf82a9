/*
 * util_rand.c — deterministic randomness for tests (see util_rand.h).
 * Not for production: these streams are reproducible on purpose.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "util_rand.h"

static uint64_t g_seed = TU_SEED_DEFAULT;
static uint64_t g_state[4];
static uint64_t g_next_stream;

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void tu_seed_set(uint64_t seed)
{
	uint64_t x = seed;

	if (sodium_init() < 0)
		abort();
	g_seed = seed;
	for (int i = 0; i < 4; i++)
		g_state[i] = splitmix64(&x);
	g_next_stream = 0;
}

void tu_seed_from_env(void)
{
	const char *s = getenv("RELM_SEED");
	uint64_t seed = TU_SEED_DEFAULT;

	if (s != NULL && *s != '\0') {
		char *end = NULL;
		unsigned long long v = strtoull(s, &end, 0);
		if (end != NULL && *end == '\0')
			seed = v;
		else
			fprintf(stderr, "RELM_SEED=%s is not a number; using %llu\n", s,
			        (unsigned long long)seed);
	}
	tu_seed_set(seed);
	fprintf(stderr, TU_SEED_FMT "\n", (unsigned long long)seed);
}

uint64_t tu_seed(void)
{
	return g_seed;
}

/* xoshiro256** (Blackman, Vigna). */
uint64_t tu_rand64(void)
{
	uint64_t *s = g_state;
	uint64_t r, t;

	if ((s[0] | s[1] | s[2] | s[3]) == 0)
		tu_seed_set(g_seed);   /* never seeded: behave as the default */
	r = rotl(s[1] * 5, 7) * 9;
	t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

uint64_t tu_rand_below(uint64_t n)
{
	uint64_t lim, x;

	assert(n > 0);
	lim = UINT64_MAX - UINT64_MAX % n;
	do
		x = tu_rand64();
	while (x >= lim);
	return x % n;
}

void tu_rand_bytes(uint8_t *buf, size_t len)
{
	while (len > 0) {
		uint64_t x = tu_rand64();
		size_t take = len < 8 ? len : 8;
		memcpy(buf, &x, take);
		buf += take;
		len -= take;
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void tu_unhex(uint8_t *out, size_t len, const char *hex)
{
	size_t n = 0;
	int hi = -1;

	for (; *hex; hex++) {
		int v;
		if (*hex == ' ' || *hex == '\n' || *hex == '\t')
			continue;
		if ((v = hexval(*hex)) < 0 || n == len) {
			fprintf(stderr, "tu_unhex: bad test vector\n");
			abort();
		}
		if (hi < 0) {
			hi = v;
		} else {
			out[n++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	if (n != len || hi >= 0) {
		fprintf(stderr, "tu_unhex: vector has %zu bytes, want %zu\n", n, len);
		abort();
	}
}

const char *tu_hex(const uint8_t *buf, size_t len)
{
	static char ring[4][1025];
	static unsigned next;
	char *s = ring[next++ % 4];

	if (len > 512)
		len = 512;
	sodium_bin2hex(s, sizeof ring[0], buf, len);
	return s;
}

/* ---- per-device env ------------------------------------------------------ */

struct tu_env_ctx {
	uint8_t key[crypto_stream_chacha20_KEYBYTES];
	uint64_t block;                  /* next keystream block (the nonce) */
	uint8_t buf[64];
	size_t have;                     /* unread bytes at the end of buf */
	uint64_t *clock;
};

static void env_random(void *ctx, uint8_t *out, size_t len)
{
	struct tu_env_ctx *c = ctx;

	while (len > 0) {
		size_t take;
		if (c->have == 0) {
			uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
			for (int i = 0; i < 8; i++)
				nonce[i] = (uint8_t)(c->block >> (8 * i));
			crypto_stream_chacha20(c->buf, sizeof c->buf, nonce, c->key);
			c->block++;
			c->have = sizeof c->buf;
		}
		take = len < c->have ? len : c->have;
		memcpy(out, c->buf + sizeof c->buf - c->have, take);
		c->have -= take;
		out += take;
		len -= take;
	}
}

static uint64_t env_now(void *ctx)
{
	return *((struct tu_env_ctx *)ctx)->clock;
}

void tu_env_init_stream(struct relm_env *env, uint64_t *virtual_clock_ms, uint64_t stream)
{
	static const char label[] = "relm/test/env";
	struct tu_env_ctx *c = calloc(1, sizeof *c);
	uint8_t in[sizeof label - 1 + 16];

	if (c == NULL || virtual_clock_ms == NULL || sodium_init() < 0)
		abort();
	/* key = BLAKE2b-256(label ‖ seed LE64 ‖ stream LE64) */
	memcpy(in, label, sizeof label - 1);
	for (int i = 0; i < 8; i++) {
		in[sizeof label - 1 + i] = (uint8_t)(g_seed >> (8 * i));
		in[sizeof label - 1 + 8 + i] = (uint8_t)(stream >> (8 * i));
	}
	crypto_generichash(c->key, sizeof c->key, in, sizeof in, NULL, 0);
	c->clock = virtual_clock_ms;
	memset(env, 0, sizeof *env);
	env->ctx = c;
	env->random = env_random;
	env->now_ms = env_now;
	env->history_has = NULL;
	relm_params_default(&env->params);
}

void tu_env_init(struct relm_env *env, uint64_t *virtual_clock_ms)
{
	tu_env_init_stream(env, virtual_clock_ms, g_next_stream++);
}

void tu_env_free(struct relm_env *env)
{
	if (env == NULL || env->ctx == NULL)
		return;
	sodium_memzero(env->ctx, sizeof(struct tu_env_ctx));
	free(env->ctx);
	env->ctx = NULL;
	env->random = NULL;
	env->now_ms = NULL;
}

/* fuzz_rel_receive.c — libFuzzer harness for relm_rel_receive against a
 * fixed relationship state: set up once (deterministic keys, fixed clock),
 * then every input is received by a fresh copy of the receiver.  Inputs
 * whose first byte is < 0x80 are XOR-overlays on one of a few valid
 * envelopes (byte 1 picks it), so the fuzzer reaches the AEAD, the payload
 * parser and the tree code, not only the header checks. */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "engine/rel.h"
#include "wire/invite.h"
#include "crypto/crypto.h"

enum { NENV = 8 };
static uint8_t *blob;
static size_t blob_len;
static uint8_t *valid[NENV];
static size_t valid_len[NENV];
static uint64_t clock_ms = 1700000000000ull;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static void det_random(void *ctx, uint8_t *buf, size_t len)
{
	(void)ctx;
	for (size_t i = 0; i < len; i++) {
		rng_state ^= rng_state << 13;
		rng_state ^= rng_state >> 7;
		rng_state ^= rng_state << 17;
		buf[i] = (uint8_t)rng_state;
	}
}

static uint64_t det_now(void *ctx)
{
	(void)ctx;
	return clock_ms;
}

static void take_posts(struct relm_effects *fx, uint8_t **first, size_t *len)
{
	for (size_t i = 0; i < fx->n; i++)
		if (fx->v[i].type == RELM_FX_POST && first && !*first) {
			*first = malloc(fx->v[i].len);
			memcpy(*first, fx->v[i].data, fx->v[i].len);
			*len = fx->v[i].len;
		}
	relm_effects_reset(fx);
}

static void setup_once(void)
{
	struct relm_env env = { 0 };
	struct relm_invite inv;
	struct relm_invite_secrets sec;
	struct relm_effects fx;
	struct relm_rel *a = NULL, *b = NULL;
	uint8_t seed[32], apk[32], ask[64], bpk[32], bsk[64], id[16], *init = NULL;
	size_t init_len = 0;

	relm_crypto_init();
	env.random = det_random;
	env.now_ms = det_now;
	relm_params_default(&env.params);
	relm_effects_init(&fx);
	det_random(NULL, seed, 32);
	relm_sign_keypair_from_seed(apk, ask, seed);
	det_random(NULL, seed, 32);
	relm_sign_keypair_from_seed(bpk, bsk, seed);
	memset(&inv, 0, sizeof inv);
	memset(&sec, 0, sizeof sec);
	inv.version = RELM_WIRE_VERSION;
	memcpy(inv.ipk, apk, 32);
	inv.spk_id = 1;
	det_random(NULL, sec.spk_priv, 32);
	relm_x25519_public(inv.spk, sec.spk_priv);
	inv.expires_ms = clock_ms + 1000000;
	strcpy(inv.mailbox, "127.0.0.1:7427/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	relm_invite_sign(&inv, ask);
	memcpy(sec.ipk_sk, ask, 64);
	strcpy(sec.mailbox_host, "127.0.0.1:7427");
	if (relm_rel_accept(&b, &env, RELM_MODE_TREE, bsk, &inv, "127.0.0.2:7427", &fx) != 0)
		abort();
	take_posts(&fx, &init, &init_len);
	if (relm_rel_open_initial(&a, &env, RELM_MODE_TREE, &sec, init, init_len, &fx) != 0)
		abort();
	relm_effects_reset(&fx);
	/* a few messages from a to b, some on a new node: b keeps its state
	 * from before them, so each one is new to it */
	if (relm_rel_encode(b, &blob, &blob_len) != 0)
		abort();
	for (int k = 0; k < NENV; k++) {
		valid[k] = NULL;
		if (relm_rel_send(a, &env, "fuzz", 4, NULL, id, &fx) != 0)
			abort();
		take_posts(&fx, &valid[k], &valid_len[k]);
	}
	free(init);
	relm_effects_clear(&fx);
	relm_rel_free(a);
	relm_rel_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relm_env env = { 0 };
	struct relm_effects fx;
	struct relm_rel *b = NULL;
	uint8_t *buf;
	size_t len;

	if (!blob)
		setup_once();
	env.random = det_random;
	env.now_ms = det_now;
	relm_params_default(&env.params);
	if (size >= 2 && data[0] < 0x80) {
		size_t k = data[1] % NENV;
		len = valid_len[k];
		buf = malloc(len);
		memcpy(buf, valid[k], len);
		for (size_t i = 2; i < size && i - 2 < len; i++)
			buf[i - 2] ^= data[i];
	} else {
		len = size;
		buf = malloc(len ? len : 1);
		memcpy(buf, data, len);
	}
	if (relm_rel_decode(&b, blob, blob_len) != 0)
		abort();
	relm_effects_init(&fx);
	relm_rel_receive(b, &env, buf, len, &fx);
	clock_ms += 1000;
	relm_rel_tick(b, &env, &fx);
	relm_effects_clear(&fx);
	relm_rel_free(b);
	free(buf);
	return 0;
}

/*
 * engine_olm.c — bench_engine's libolm side (engine_olm.h): the same
 * scenarios as the relm side of bench_engine.c, through libolm's C API
 * with the buffers it asks for, filled from bench_random.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <olm/olm.h>
#include "bench_engine.h"
#include "engine_olm.h"

enum {
	OLM_PT_MAX = 1024,
	OLM_KEY_B64 = 64,
};

struct olm_party {
	OlmAccount *acc;
	char curve[OLM_KEY_B64];       /* identity Curve25519 key, base64 */
	char ed[OLM_KEY_B64];          /* identity Ed25519 key, base64 */
};

static void olm_check(size_t r, const char *what, const char *err)
{
	if (r == olm_error())
		die("%s: %s", what, err);
}

/* Copy the string value that follows `"key":"` in json into out. */
static void json_value(char *out, size_t cap, const char *json, const char *key)
{
	char pat[64];
	const char *p, *q;

	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	if (!(p = strstr(json, pat)))
		die("olm json: no %s in %s", key, json);
	p += strlen(pat);
	if (!(q = strchr(p, '"')) || (size_t)(q - p) >= cap)
		die("olm json: bad %s", key);
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = 0;
}

static void olm_party_init(struct olm_party *p)
{
	size_t rl, kl;
	uint8_t *rnd;
	char *keys;

	p->acc = olm_account(xmalloc(olm_account_size()));
	rl = olm_create_account_random_length(p->acc);
	rnd = xmalloc(rl);
	bench_random(rnd, rl);
	olm_check(olm_create_account(p->acc, rnd, rl), "olm_create_account",
	          olm_account_last_error(p->acc));
	sodium_memzero(rnd, rl);
	free(rnd);
	kl = olm_account_identity_keys_length(p->acc);
	keys = xmalloc(kl + 1);
	olm_check(olm_account_identity_keys(p->acc, keys, kl), "olm_account_identity_keys",
	          olm_account_last_error(p->acc));
	keys[kl] = 0;
	json_value(p->curve, sizeof p->curve, keys, "curve25519");
	json_value(p->ed, sizeof p->ed, keys, "ed25519");
	free(keys);
}

static void olm_party_free(struct olm_party *p)
{
	if (!p->acc)
		return;
	olm_clear_account(p->acc);
	free(p->acc);
	p->acc = NULL;
}

static OlmSession *olm_session_new(void)
{
	return olm_session(xmalloc(olm_session_size()));
}

static void olm_session_free(OlmSession *s)
{
	if (!s)
		return;
	olm_clear_session(s);
	free(s);
}

/* Encrypt body on s into a fresh buffer; *type, *len out. */
static char *olm_seal(OlmSession *s, size_t *type, size_t *len)
{
	uint8_t rnd[64];
	size_t rl = olm_encrypt_random_length(s), ml, r;
	char *msg;

	if (rl > sizeof rnd)
		die("olm_encrypt_random_length: %zu", rl);
	if (rl)
		bench_random(rnd, rl);
	*type = olm_encrypt_message_type(s);
	ml = olm_encrypt_message_length(s, BODY_LEN);
	msg = xmalloc(ml);
	r = olm_encrypt(s, body, BODY_LEN, rnd, rl, msg, ml);
	olm_check(r, "olm_encrypt", olm_session_last_error(s));
	*len = r;
	sodium_memzero(rnd, sizeof rnd);
	return msg;
}

/* Decrypt msg (destroyed, as olm does) on s and check the body. */
static void olm_open(OlmSession *s, size_t type, char *msg, size_t len)
{
	uint8_t pt[OLM_PT_MAX];
	size_t r = olm_decrypt(s, type, msg, len, pt, sizeof pt);

	olm_check(r, "olm_decrypt", olm_session_last_error(s));
	if (r != BODY_LEN || memcmp(pt, body, BODY_LEN) != 0)
		die("olm_decrypt: wrong plaintext");
	sodium_memzero(pt, sizeof pt);
}

/* The olm counterpart of relm_establish: A publishes a one-time key
 * (signed if `sign`), B makes an outbound session and its first (pre-key)
 * message, A makes the inbound session and decrypts it.  util verifies
 * signatures. */
static void olm_establish(struct olm_party *a, struct olm_party *b, OlmUtility *util, int sign,
                          OlmSession **sa, OlmSession **sb)
{
	uint8_t rnd[128];
	char otk_json[256], otk[OLM_KEY_B64], signed_obj[128], sig[128], sigcopy[128];
	char *msg, *copy;
	size_t rl, r, type, len, sl = 0;

	/* A: one one-time key, exported (and signed, as Matrix publishes it) */
	rl = olm_account_generate_one_time_keys_random_length(a->acc, 1);
	if (rl > sizeof rnd)
		die("otk random length %zu", rl);
	bench_random(rnd, rl);
	olm_check(olm_account_generate_one_time_keys(a->acc, 1, rnd, rl),
	          "olm_account_generate_one_time_keys", olm_account_last_error(a->acc));
	r = olm_account_one_time_keys(a->acc, otk_json, sizeof otk_json - 1);
	olm_check(r, "olm_account_one_time_keys", olm_account_last_error(a->acc));
	otk_json[r] = 0;
	{
		/* {"curve25519":{"<id>":"<key>"}}: the value after the last ":" */
		const char *p = strrchr(otk_json, ':'), *q;
		if (!p || p[1] != '"' || !(q = strchr(p + 2, '"')) || (size_t)(q - p - 2) >= sizeof otk)
			die("olm one-time key json: %s", otk_json);
		memcpy(otk, p + 2, (size_t)(q - p - 2));
		otk[q - p - 2] = 0;
	}
	if (sign) {
		int ol = snprintf(signed_obj, sizeof signed_obj, "{\"key\":\"%s\"}", otk);
		sl = olm_account_sign(a->acc, signed_obj, (size_t)ol, sig, sizeof sig);
		olm_check(sl, "olm_account_sign", olm_account_last_error(a->acc));
	}
	olm_account_mark_keys_as_published(a->acc);

	/* B: verify, outbound session, first message */
	if (sign) {
		memcpy(sigcopy, sig, sl);       /* olm decodes the signature in place */
		olm_check(olm_ed25519_verify(util, a->ed, strlen(a->ed), signed_obj, strlen(signed_obj),
		                             sigcopy, sl),
		          "olm_ed25519_verify", olm_utility_last_error(util));
	}
	*sb = olm_session_new();
	rl = olm_create_outbound_session_random_length(*sb);
	if (rl > sizeof rnd)
		die("outbound random length %zu", rl);
	bench_random(rnd, rl);
	olm_check(olm_create_outbound_session(*sb, b->acc, a->curve, strlen(a->curve), otk, strlen(otk),
	                                      rnd, rl),
	          "olm_create_outbound_session", olm_session_last_error(*sb));
	msg = olm_seal(*sb, &type, &len);
	if (type != OLM_MESSAGE_TYPE_PRE_KEY)
		die("first olm message is not a pre-key message");

	/* A: inbound session from the pre-key message, then decrypt it */
	*sa = olm_session_new();
	copy = xmalloc(len);
	memcpy(copy, msg, len);             /* both calls destroy their input */
	olm_check(olm_create_inbound_session(*sa, a->acc, copy, len),
	          "olm_create_inbound_session", olm_session_last_error(*sa));
	free(copy);
	olm_check(olm_remove_one_time_keys(a->acc, *sa), "olm_remove_one_time_keys",
	          olm_account_last_error(a->acc));
	olm_open(*sa, type, msg, len);
	free(msg);
	sodium_memzero(rnd, sizeof rnd);
}

static size_t olm_one(OlmSession *from, OlmSession *to)
{
	size_t type, len;
	char *msg = olm_seal(from, &type, &len);

	olm_open(to, type, msg, len);
	free(msg);
	return len;
}

double olm_msgs(OlmUtility *util, size_t n, int pingpong, struct msg_info *mi)
{
	struct olm_party a = { 0 }, b = { 0 };
	OlmSession *sa = NULL, *sb = NULL;
	uint64_t t0, t1;
	size_t len = 0;

	olm_party_init(&a);
	olm_party_init(&b);
	olm_establish(&a, &b, util, 1, &sa, &sb);
	/* the same warm-up as relm: A's first message is a DH step */
	olm_one(sa, sb);
	if (pingpong)
		olm_one(sb, sa);
	t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		if (pingpong && (i & 1))
			len = olm_one(sb, sa);
		else
			len = olm_one(sa, sb);
	}
	t1 = now_ns();
	if (mi)
		mi->envlen = len;
	olm_session_free(sa);
	olm_session_free(sb);
	olm_party_free(&a);
	olm_party_free(&b);
	return (double)(t1 - t0) / (double)n;
}

double olm_setups(OlmUtility *util, size_t k, int with_id, int sign)
{
	struct olm_party a = { 0 }, b = { 0 };
	uint64_t total = 0;

	if (!with_id) {
		olm_party_init(&a);
		olm_party_init(&b);
	}
	for (size_t i = 0; i < k; i++) {
		OlmSession *sa = NULL, *sb = NULL;
		uint64_t t0 = now_ns();
		if (with_id) {
			olm_party_init(&a);
			olm_party_init(&b);
		}
		olm_establish(&a, &b, util, sign, &sa, &sb);
		total += now_ns() - t0;
		olm_session_free(sa);
		olm_session_free(sb);
		if (with_id) {
			olm_party_free(&a);
			olm_party_free(&b);
		}
	}
	olm_party_free(&a);
	olm_party_free(&b);
	return (double)total / (double)k;
}

/*
 * bench_engine.c — the relm engine against libolm 3.2.13, side by side in
 * one process run (README.md, Performance, "Engine vs libolm").
 *
 * Scenarios, each measured per message (or per session) as encrypt on one
 * party plus decrypt on the other, both sides' work counted:
 *
 *   stream  100-byte messages one way on an established chain: symmetric
 *           ratchet steps only.  relm: relm_rel_send on A, relm_rel_receive
 *           on B; B's receipts are armed but never sent (no tick), so the
 *           stream stays one-way.  olm: olm_encrypt / olm_decrypt.
 *   dh      ping-pong, A → B → A → ...: every message is a DH ratchet step
 *           (relm: the lazy step makes a new node on each turn).
 *   setup   session establishment up to the first message decrypted.
 *           relm: SPK+OPK, invite signed, encoded to text, decoded
 *           (signature verified) by B, relm_rel_accept (X3DH + hello),
 *           relm_rel_open_initial.  olm: one one-time key generated,
 *           exported as JSON and — as Matrix publishes it — signed by the
 *           account's Ed25519 key and verified by the other side, then
 *           olm_create_outbound_session, the first olm_encrypt,
 *           olm_create_inbound_session, olm_remove_one_time_keys and the
 *           first olm_decrypt.  Identity keys are made outside the timed
 *           region for both (the common case: identities exist long before
 *           sessions).  `setup_id` includes them for both (relm: two Ed25519
 *           key pairs; olm: two olm_create_account), and `olm_unsigned_ns`
 *           is olm without the one-time-key signature, for reference.
 *   floor   the physical floor of the same work with libsodium primitives:
 *           per stream message each side's chain step (2 × HMAC-SHA256 of
 *           one byte under a 32-byte key) plus one XChaCha20-Poly1305 seal
 *           and one open of the padded payload size relm produced, with
 *           relm's AD length; per DH message in addition an X25519 keygen
 *           and DH on the sender, a DH on the receiver, and one
 *           HKDF-SHA256 (64-byte output) on each side.
 *
 * The three run interleaved — relm round, olm round, floor round, relm,
 * ... — so drift of a noisy machine hits all of them alike.  Per scenario
 * we report the median and min–max over rounds; ratios (olm / relm, higher
 * is better for relm; relm / floor) are medians of the per-round ratios.
 *
 * Randomness: both engines draw from libsodium's randombytes_buf (relm
 * through relm_env_init_system, olm through the buffers it asks for).
 *
 * --only relm|olm|floor and --scenario stream|dh|setup select one piece,
 * for bench/bench_ir.sh, which runs this program under callgrind.
 *
 * The libolm side is in engine_olm.c; what it shares with this file (the
 * body, the helpers, the randomness) is declared in bench_engine.h.
 *
 * This file links librelm, libsodium, libcjson and libolm; nothing in lib/
 * knows about it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>
#include <olm/olm.h>
#include "bench_engine.h"
#include "engine_olm.h"
#include "engine/rel.h"
#include "engine/env.h"
#include "system_env.h"
#include "engine/effects.h"
#include "wire/invite.h"
#include "crypto/crypto.h"
#include "crypto/x3dh.h"
#include "error.h"
#include "limits.h"

enum {
	MAX_ROUNDS = 101,
	/* relm keeps each unreceipted outgoing message (RELM_MAX_OUTGOING);
	 * the stream sends no receipts, so one relationship carries at most
	 * this many stream messages. */
	STREAM_MAX = RELM_MAX_OUTGOING - 8,
};

/* 100 bytes of plain ASCII: no JSON escaping in relm's payload. */
const char body[] =
	"The quick brown fox jumps over the lazy dog; "
	"pack my box with five dozen liquor jugs, 0123456789....";

_Static_assert(sizeof body == BODY_LEN + 1, "body must be exactly 100 bytes");

static const char *const mailbox =
	"127.0.0.1:7427/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/* ---- small helpers ------------------------------------------------------ */

void die(const char *fmt, ...)
{
	va_list ap;

	fputs("bench_engine: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("out of memory");
	return p;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

struct stat3 {
	double med, min, max;
};

static struct stat3 stats(const double *v, int n)
{
	double s[MAX_ROUNDS];
	struct stat3 r = { 0, 0, 0 };

	if (n <= 0)
		return r;
	memcpy(s, v, (size_t)n * sizeof *s);
	qsort(s, (size_t)n, sizeof *s, cmp_double);
	r.min = s[0];
	r.max = s[n - 1];
	r.med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	return r;
}

/* ---- randomness -------------------------------------------------------------
 * Default: libsodium's randombytes_buf, for relm through relm_env_init_system
 * and for olm's random buffers — what relmd does today.  On Debian's 1.0.18
 * that is one getrandom(2) call per draw.  --rng buffered gives both sides
 * instead a user-space generator (ChaCha20 with fast key erasure, seeded
 * once from randombytes_buf): not what relmd ships, but it shows what the
 * engine costs without a system call per draw. */

enum { RNG_SYSTEM = 0, RNG_BUFFERED = 1 };

static int rng_mode = RNG_SYSTEM;

static struct {
	uint8_t key[crypto_stream_chacha20_KEYBYTES];
	uint8_t buf[1024];
	size_t pos;
	uint64_t ctr;
} frng;

static void frng_refill(void)
{
	uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];

	memcpy(nonce, &frng.ctr, sizeof nonce);
	frng.ctr++;
	crypto_stream_chacha20(frng.buf, sizeof frng.buf, nonce, frng.key);
	memcpy(frng.key, frng.buf, sizeof frng.key);         /* fast key erasure */
	sodium_memzero(frng.buf, sizeof frng.key);
	frng.pos = sizeof frng.key;
}

void bench_random(uint8_t *out, size_t len)
{
	if (rng_mode == RNG_SYSTEM) {
		randombytes_buf(out, len);
		return;
	}
	while (len) {
		size_t take;
		if (frng.pos == sizeof frng.buf)
			frng_refill();
		take = sizeof frng.buf - frng.pos < len ? sizeof frng.buf - frng.pos : len;
		memcpy(out, frng.buf + frng.pos, take);
		sodium_memzero(frng.buf + frng.pos, take);
		frng.pos += take;
		out += take;
		len -= take;
	}
}

static void env_random_buffered(void *ctx, uint8_t *buf, size_t len)
{
	(void)ctx;
	bench_random(buf, len);
}

static void bench_env_init(struct relm_env *env)
{
	relm_env_init_system(env);
	if (rng_mode == RNG_BUFFERED) {
		randombytes_buf(frng.key, sizeof frng.key);
		frng.pos = sizeof frng.buf;
		env->random = env_random_buffered;
	}
}

/* ---- relm side ------------------------------------------------------------ */

struct ident {
	uint8_t pk[RELM_SIGN_PK_LEN];
	uint8_t sk[RELM_SIGN_SK_LEN];
};

static void ident_make(const struct relm_env *env, struct ident *id)
{
	uint8_t seed[32];

	env->random(env->ctx, seed, sizeof seed);
	relm_sign_keypair_from_seed(id->pk, id->sk, seed);
	sodium_memzero(seed, sizeof seed);
}

static const struct relm_fx *find_fx(const struct relm_effects *fx, enum relm_fx_type type)
{
	for (size_t i = 0; i < fx->n; i++)
		if (fx->v[i].type == type)
			return &fx->v[i];
	return NULL;
}

/* A (inviter) and B (accepter) of one relationship, from an invite to A
 * holding B's hello: the whole relm session set-up. */
static void relm_establish(const struct relm_env *env, const struct ident *a,
                           const struct ident *b, struct relm_rel **ra, struct relm_rel **rb)
{
	struct relm_invite inv, dec;
	struct relm_invite_secrets sec;
	struct relm_effects fxb, fxa;
	const struct relm_fx *post;
	char text[RELM_INVITE_TEXT_MAX];
	int rc, tl;

	memset(&inv, 0, sizeof inv);
	memset(&sec, 0, sizeof sec);
	relm_effects_init(&fxa);
	relm_effects_init(&fxb);

	/* A: the invite (SPK, OPK, signature), as text */
	inv.version = RELM_WIRE_VERSION;
	inv.flags = RELM_INVITE_F_OPK;
	memcpy(inv.ipk, a->pk, RELM_SIGN_PK_LEN);
	inv.spk_id = 1;
	env->random(env->ctx, sec.spk_priv, RELM_KEY_LEN);
	relm_x25519_public(inv.spk, sec.spk_priv);
	inv.opk_id = 2;
	env->random(env->ctx, sec.opk_priv, RELM_KEY_LEN);
	relm_x25519_public(inv.opk, sec.opk_priv);
	sec.has_opk = 1;
	inv.expires_ms = env->now_ms(env->ctx) + 86400000u;
	snprintf(inv.mailbox, sizeof inv.mailbox, "%s", mailbox);
	if ((rc = relm_invite_sign(&inv, a->sk)) != 0)
		die("relm_invite_sign: %s", relm_strerror(rc));
	if ((tl = relm_invite_encode(text, sizeof text, &inv)) < 0)
		die("relm_invite_encode: %s", relm_strerror(tl));
	memcpy(sec.ipk_sk, a->sk, RELM_SIGN_SK_LEN);
	snprintf(sec.mailbox_host, sizeof sec.mailbox_host, "127.0.0.1:7427");

	/* B: decode (verifies the signature), accept, first envelope */
	if ((rc = relm_invite_decode(&dec, text, (size_t)tl)) != 0)
		die("relm_invite_decode: %s", relm_strerror(rc));
	if ((rc = relm_rel_accept(rb, env, RELM_MODE_TREE, b->sk, &dec, "127.0.0.2:7427", &fxb)) != 0)
		die("relm_rel_accept: %s", relm_strerror(rc));
	if (!(post = find_fx(&fxb, RELM_FX_POST)))
		die("relm_rel_accept: no envelope");

	/* A: open it */
	if ((rc = relm_rel_open_initial(ra, env, RELM_MODE_TREE, &sec, post->data, post->len, &fxa)) != 0)
		die("relm_rel_open_initial: %s", relm_strerror(rc));
	if (!find_fx(&fxa, RELM_FX_DELIVER))
		die("relm_rel_open_initial: hello not delivered");

	relm_effects_clear(&fxa);
	relm_effects_clear(&fxb);
	sodium_memzero(&sec, sizeof sec);
}

/* One message from `from` to `to`: send, carry the envelope, receive.
 * fxs/fxr are reused effect lists (reset here, as relmd would). */
static size_t relm_one(const struct relm_env *env, struct relm_rel *from, struct relm_rel *to,
                       struct relm_effects *fxs, struct relm_effects *fxr)
{
	uint8_t id[RELM_ID_LEN];
	const struct relm_fx *post, *dl;
	size_t len;
	int rc;

	if ((rc = relm_rel_send(from, env, body, BODY_LEN, NULL, id, fxs)) != 0)
		die("relm_rel_send: %s", relm_strerror(rc));
	if (!(post = find_fx(fxs, RELM_FX_POST)))
		die("relm_rel_send: no envelope");
	len = post->len;
	if ((rc = relm_rel_receive(to, env, post->data, post->len, fxr)) != 0)
		die("relm_rel_receive: %s", relm_strerror(rc));
	dl = find_fx(fxr, RELM_FX_DELIVER);
	if (!dl || dl->len != BODY_LEN || memcmp(dl->data, body, BODY_LEN) != 0)
		die("relm_rel_receive: wrong delivery");
	relm_effects_reset(fxs);
	relm_effects_reset(fxr);
	return len;
}

/* ns per message: n messages A → B (stream) or alternating (dh). */
static double relm_msgs(const struct relm_env *env, const struct ident *a, const struct ident *b,
                        size_t n, int pingpong, struct msg_info *mi)
{
	struct relm_rel *ra = NULL, *rb = NULL;
	struct relm_effects fxs, fxr;
	uint64_t t0, t1;
	size_t len = 0;

	relm_effects_init(&fxs);
	relm_effects_init(&fxr);
	relm_establish(env, a, b, &ra, &rb);
	/* warm-up: A's first send is a DH step (a node on top of B's); for
	 * ping-pong one turn each way */
	relm_one(env, ra, rb, &fxs, &fxr);
	if (pingpong)
		relm_one(env, rb, ra, &fxs, &fxr);
	t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		if (pingpong && (i & 1))
			len = relm_one(env, rb, ra, &fxs, &fxr);
		else
			len = relm_one(env, ra, rb, &fxs, &fxr);
	}
	t1 = now_ns();
	if (mi)
		mi->envlen = len;
	relm_effects_clear(&fxs);
	relm_effects_clear(&fxr);
	relm_rel_free(ra);
	relm_rel_free(rb);
	return (double)(t1 - t0) / (double)n;
}

/* ns per session set-up; with_id: identity key pairs inside the timing. */
static double relm_setups(const struct relm_env *env, size_t k, int with_id)
{
	struct ident a, b;
	uint64_t total = 0;

	ident_make(env, &a);
	ident_make(env, &b);
	for (size_t i = 0; i < k; i++) {
		struct relm_rel *ra = NULL, *rb = NULL;
		uint64_t t0 = now_ns();
		if (with_id) {
			ident_make(env, &a);
			ident_make(env, &b);
		}
		relm_establish(env, &a, &b, &ra, &rb);
		total += now_ns() - t0;
		relm_rel_free(ra);
		relm_rel_free(rb);
	}
	sodium_memzero(&a, sizeof a);
	sodium_memzero(&b, sizeof b);
	return (double)total / (double)k;
}

/* ---- the floor ----------------------------------------------------------------- */

static void kdf_ck_floor(uint8_t mk[32], uint8_t ck[32])
{
	static const uint8_t one = 1, two = 2;
	uint8_t next[32];

	crypto_auth_hmacsha256(mk, &one, 1, ck);
	crypto_auth_hmacsha256(next, &two, 1, ck);
	memcpy(ck, next, 32);
}

/* ns per message of the minimum work: see the file comment.  padded: the
 * payload size relm seals; adlen: relm's AD (relationship AD + header). */
static double floor_msgs(size_t n, int dh, size_t padded)
{
	static const uint8_t info[] = "relm/v1/root";
	uint8_t cks[32], ckr[32], mk[32], nonce[24], ad[RELM_AD_LEN + RELM_HEADER_LEN];
	uint8_t priv_s[32], pub_s[32], priv_r[32], pub_r[32], dh_s[32], dh_r[32];
	uint8_t rk_s[32], rk_r[32], okm[64];
	uint8_t *pt = xmalloc(padded), *ct = xmalloc(padded + RELM_TAG_LEN);
	uint8_t *out = xmalloc(padded);
	unsigned long long cl, ol;
	uint64_t t0, t1;

	randombytes_buf(cks, sizeof cks);
	memcpy(ckr, cks, sizeof ckr);
	randombytes_buf(rk_s, sizeof rk_s);
	memcpy(rk_r, rk_s, sizeof rk_r);
	randombytes_buf(nonce, sizeof nonce);
	randombytes_buf(ad, sizeof ad);
	randombytes_buf(pt, padded);
	randombytes_buf(priv_s, sizeof priv_s);
	randombytes_buf(priv_r, sizeof priv_r);
	crypto_scalarmult_base(pub_r, priv_r);

	t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		if (dh) {
			/* sender: a fresh ratchet key, DH with the receiver's, KDF_RK */
			crypto_scalarmult_base(pub_s, priv_s);
			if (crypto_scalarmult(dh_s, priv_s, pub_r) != 0)
				die("floor: scalarmult");
			relm_hkdf(okm, sizeof okm, rk_s, 32, dh_s, 32, info, sizeof info - 1);
			memcpy(rk_s, okm, 32);
			memcpy(cks, okm + 32, 32);
		}
		kdf_ck_floor(mk, cks);
		crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &cl, pt, padded, ad, sizeof ad,
		                                           NULL, nonce, mk);
		if (dh) {
			/* receiver: DH with the sender's new key, KDF_RK */
			if (crypto_scalarmult(dh_r, priv_r, pub_s) != 0)
				die("floor: scalarmult");
			relm_hkdf(okm, sizeof okm, rk_r, 32, dh_r, 32, info, sizeof info - 1);
			memcpy(rk_r, okm, 32);
			memcpy(ckr, okm + 32, 32);
			/* roles swap in ping-pong; the work per message is the same */
			priv_s[0] ^= (uint8_t)i;
		}
		kdf_ck_floor(mk, ckr);
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &ol, NULL, ct, cl, ad, sizeof ad,
		                                               nonce, mk) != 0)
			die("floor: open failed");
	}
	t1 = now_ns();
	sodium_memzero(mk, sizeof mk);
	free(pt);
	free(ct);
	free(out);
	return (double)(t1 - t0) / (double)n;
}

/* ---- driver ------------------------------------------------------------------------ */

enum side_mask { S_RELM = 1, S_OLM = 2, S_FLOOR = 4, S_ALL = 7 };
enum scen_mask { C_STREAM = 1, C_DH = 2, C_SETUP = 4, C_ALL = 7 };

struct opts {
	size_t n, dh_n, setup_n;
	int rounds;
	int setup_main;                /* only the headline setup variant (bench_ir.sh) */
	unsigned sides, scens;
	const char *json;
};

struct results {
	double s_relm[MAX_ROUNDS], s_olm[MAX_ROUNDS], s_floor[MAX_ROUNDS];
	double d_relm[MAX_ROUNDS], d_olm[MAX_ROUNDS], d_floor[MAX_ROUNDS];
	double u_relm[MAX_ROUNDS], u_olm[MAX_ROUNDS], u_olm_unsigned[MAX_ROUNDS];
	double i_relm[MAX_ROUNDS], i_olm[MAX_ROUNDS];
	size_t relm_envlen, olm_msglen, dh_relm_envlen, dh_olm_msglen, padded;
};

static void usage(void)
{
	fputs("usage: bench_engine [--quick] [--n N] [--dh-n N] [--setup-n N] [--rounds R]\n"
	      "                    [--only relm|olm|floor] [--scenario stream|dh|setup]\n"
	      "                    [--setup-main] [--rng system|buffered] [--json PATH]\n", stderr);
	exit(2);
}

static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v == 0 || v > 100000000ull)
		die("bad number: %s", s);
	return (size_t)v;
}

static void parse_args(struct opts *o, int argc, char **argv)
{
	o->n = 1000;
	o->dh_n = 200;
	o->setup_n = 50;
	o->rounds = 7;
	o->sides = S_ALL;
	o->scens = C_ALL;
	o->json = NULL;
	o->setup_main = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--quick") == 0) {
			o->n = 200;
			o->dh_n = 40;
			o->setup_n = 5;
			o->rounds = 3;
		} else if (strcmp(a, "--n") == 0 && v) {
			o->n = parse_size(v), i++;
		} else if (strcmp(a, "--dh-n") == 0 && v) {
			o->dh_n = parse_size(v), i++;
		} else if (strcmp(a, "--setup-n") == 0 && v) {
			o->setup_n = parse_size(v), i++;
		} else if (strcmp(a, "--rounds") == 0 && v) {
			size_t r = parse_size(v);
			if (r > MAX_ROUNDS)
				die("at most %d rounds", MAX_ROUNDS);
			o->rounds = (int)r, i++;
		} else if (strcmp(a, "--setup-main") == 0) {
			o->setup_main = 1;
		} else if (strcmp(a, "--rng") == 0 && v) {
			if (strcmp(v, "system") == 0)
				rng_mode = RNG_SYSTEM;
			else if (strcmp(v, "buffered") == 0)
				rng_mode = RNG_BUFFERED;
			else
				usage();
			i++;
		} else if (strcmp(a, "--json") == 0 && v) {
			o->json = v, i++;
		} else if (strcmp(a, "--only") == 0 && v) {
			o->sides = strcmp(v, "relm") == 0 ? S_RELM : strcmp(v, "olm") == 0 ? S_OLM :
			           strcmp(v, "floor") == 0 ? S_FLOOR : 0;
			if (!o->sides)
				usage();
			i++;
		} else if (strcmp(a, "--scenario") == 0 && v) {
			o->scens = strcmp(v, "stream") == 0 ? C_STREAM : strcmp(v, "dh") == 0 ? C_DH :
			           strcmp(v, "setup") == 0 ? C_SETUP : 0;
			if (!o->scens)
				usage();
			i++;
		} else {
			usage();
		}
	}
	if (o->n > STREAM_MAX || o->dh_n > STREAM_MAX)
		die("--n/--dh-n at most %d: relm keeps every unreceipted message (RELM_MAX_OUTGOING)",
		    STREAM_MAX);
}

/* The padded payload size relm sealed: its stream envelope minus header
 * and tag (A's envelopes carry no X3DH extension). */
static size_t relm_padded(const struct relm_env *env)
{
	struct msg_info mi;
	struct ident a, b;

	ident_make(env, &a);
	ident_make(env, &b);
	relm_msgs(env, &a, &b, 1, 0, &mi);
	return mi.envlen - RELM_HEADER_LEN - RELM_TAG_LEN;
}

static void run(const struct opts *o, struct results *r)
{
	struct relm_env env;
	struct ident a, b;
	OlmUtility *util = olm_utility(xmalloc(olm_utility_size()));
	struct msg_info mi;

	bench_env_init(&env);
	ident_make(&env, &a);
	ident_make(&env, &b);
	r->padded = relm_padded(&env);
	for (int k = 0; k < o->rounds; k++) {
		if (o->scens & C_STREAM) {
			if (o->sides & S_RELM) {
				r->s_relm[k] = relm_msgs(&env, &a, &b, o->n, 0, &mi);
				r->relm_envlen = mi.envlen;
			}
			if (o->sides & S_OLM) {
				r->s_olm[k] = olm_msgs(util, o->n, 0, &mi);
				r->olm_msglen = mi.envlen;
			}
			if (o->sides & S_FLOOR)
				r->s_floor[k] = floor_msgs(o->n, 0, r->padded);
		}
		if (o->scens & C_DH) {
			if (o->sides & S_RELM) {
				r->d_relm[k] = relm_msgs(&env, &a, &b, o->dh_n, 1, &mi);
				r->dh_relm_envlen = mi.envlen;
			}
			if (o->sides & S_OLM) {
				r->d_olm[k] = olm_msgs(util, o->dh_n, 1, &mi);
				r->dh_olm_msglen = mi.envlen;
			}
			if (o->sides & S_FLOOR)
				r->d_floor[k] = floor_msgs(o->dh_n, 1, r->padded);
		}
		if (o->scens & C_SETUP) {
			if (o->sides & S_RELM) {
				r->u_relm[k] = relm_setups(&env, o->setup_n, 0);
				if (!o->setup_main)
					r->i_relm[k] = relm_setups(&env, o->setup_n, 1);
			}
			if (o->sides & S_OLM) {
				r->u_olm[k] = olm_setups(util, o->setup_n, 0, 1);
				if (!o->setup_main) {
					r->u_olm_unsigned[k] = olm_setups(util, o->setup_n, 0, 0);
					r->i_olm[k] = olm_setups(util, o->setup_n, 1, 1);
				}
			}
		}
		fprintf(stderr, "round %d/%d done\n", k + 1, o->rounds);
	}
	olm_clear_utility(util);
	free(util);
	sodium_memzero(&a, sizeof a);
	sodium_memzero(&b, sizeof b);
}

/* Median of the per-round ratios num[k] / den[k]. */
static double ratio(const double *num, const double *den, int n)
{
	double q[MAX_ROUNDS];

	for (int k = 0; k < n; k++)
		q[k] = den[k] > 0 ? num[k] / den[k] : 0;
	return stats(q, n).med;
}

/* ---- output ---------------------------------------------------------------- */

struct jw {
	FILE *f;
	int first;
};

static void jnum(struct jw *w, const char *key, double v)
{
	if (!w->f)
		return;
	fprintf(w->f, "%s\n  \"%s\": %.3f", w->first ? "{" : ",", key, v);
	w->first = 0;
}

static void jstat(struct jw *w, const char *key, const double *v, int n)
{
	char k[96];
	struct stat3 s = stats(v, n);

	jnum(w, key, s.med);
	snprintf(k, sizeof k, "%s_min", key);
	jnum(w, k, s.min);
	snprintf(k, sizeof k, "%s_max", key);
	jnum(w, k, s.max);
}

static void row(const char *name, const double *relm, const double *olm, const double *flr,
                unsigned sides, int n)
{
	struct stat3 rs = stats(relm, n), os = stats(olm, n), fs = flr ? stats(flr, n) : rs;
	char rb[48] = "-", ob[48] = "-", qb[16] = "-", fb[24] = "-", xb[16] = "-";

	if (sides & S_RELM)
		snprintf(rb, sizeof rb, "%.0f [%.0f-%.0f]", rs.med, rs.min, rs.max);
	if (sides & S_OLM)
		snprintf(ob, sizeof ob, "%.0f [%.0f-%.0f]", os.med, os.min, os.max);
	if ((sides & S_RELM) && (sides & S_OLM))
		snprintf(qb, sizeof qb, "%.2fx", ratio(olm, relm, n));
	if (flr && (sides & S_FLOOR))
		snprintf(fb, sizeof fb, "%.0f", fs.med);
	if (flr && (sides & S_FLOOR) && (sides & S_RELM))
		snprintf(xb, sizeof xb, "%.2fx", ratio(relm, flr, n));
	printf("%-10s %-26s %-26s %-9s %-9s %s\n", name, rb, ob, qb, fb, xb);
}

static void report(const struct opts *o, const struct results *r)
{
	uint8_t maj, min, pat;
	int n = o->rounds;
	unsigned s = o->sides;
	int both = (s & S_RELM) && (s & S_OLM), rf = (s & S_RELM) && (s & S_FLOOR);
	struct jw w = { NULL, 1 };

	olm_get_library_version(&maj, &min, &pat);
	printf("relm engine vs libolm %u.%u.%u — %d rounds interleaved; median [min-max]\n",
	       maj, min, pat, n);
	printf("stream: %zu msgs/round, dh: %zu msgs/round, setup: %zu sessions/round; "
	       "100-byte bodies; randomness: %s\n", o->n, o->dh_n, o->setup_n,
	       rng_mode == RNG_SYSTEM ? "randombytes_buf (getrandom per draw)" : "buffered ChaCha20");
	printf("%-10s %-26s %-26s %-9s %-9s %s\n", "ns/msg", "relm", "libolm", "olm/relm",
	       "floor", "relm/floor");
	if (o->scens & C_STREAM)
		row("stream", r->s_relm, r->s_olm, r->s_floor, s, n);
	if (o->scens & C_DH)
		row("dh", r->d_relm, r->d_olm, r->d_floor, s, n);
	if (o->scens & C_SETUP) {
		row("setup", r->u_relm, r->u_olm, NULL, s, n);
		row("setup+id", r->i_relm, r->i_olm, NULL, s, n);
		if (s & S_OLM) {
			struct stat3 us = stats(r->u_olm_unsigned, n);
			printf("(olm setup without the one-time-key signature: %.0f ns", us.med);
			if (s & S_RELM)
				printf(", olm/relm %.2fx", ratio(r->u_olm_unsigned, r->u_relm, n));
			printf(")\n");
		}
	}
	if (o->scens & (C_STREAM | C_DH))
		printf("wire: relm stream envelope %zu B (padded payload %zu B), olm message %zu B "
		       "(base64)\n", r->relm_envlen, r->padded, r->olm_msglen);

	if (!o->json)
		return;
	if (!(w.f = fopen(o->json, "w")))
		die("%s: %s", o->json, strerror(errno));
	jnum(&w, "engine.rounds", n);
	jnum(&w, "engine.rng_buffered", rng_mode == RNG_BUFFERED);
	if (o->scens & C_STREAM) {
		jnum(&w, "engine.stream.n", (double)o->n);
		if (s & S_RELM)
			jstat(&w, "engine.stream.relm_ns", r->s_relm, n);
		if (s & S_OLM)
			jstat(&w, "engine.stream.olm_ns", r->s_olm, n);
		if (both)
			jnum(&w, "engine.stream.ratio_vs_olm", ratio(r->s_olm, r->s_relm, n));
		if (s & S_FLOOR)
			jstat(&w, "engine.stream.floor_ns", r->s_floor, n);
		if (rf)
			jnum(&w, "engine.stream.x_floor", ratio(r->s_relm, r->s_floor, n));
		if (s & S_RELM) {
			jnum(&w, "engine.stream.relm_envelope_bytes", (double)r->relm_envlen);
			jnum(&w, "engine.stream.padded_bytes", (double)r->padded);
		}
		if (s & S_OLM)
			jnum(&w, "engine.stream.olm_message_bytes", (double)r->olm_msglen);
	}
	if (o->scens & C_DH) {
		jnum(&w, "engine.dh.n", (double)o->dh_n);
		if (s & S_RELM)
			jstat(&w, "engine.dh.relm_ns", r->d_relm, n);
		if (s & S_OLM)
			jstat(&w, "engine.dh.olm_ns", r->d_olm, n);
		if (both)
			jnum(&w, "engine.dh.ratio_vs_olm", ratio(r->d_olm, r->d_relm, n));
		if (s & S_FLOOR)
			jstat(&w, "engine.dh.floor_ns", r->d_floor, n);
		if (rf)
			jnum(&w, "engine.dh.x_floor", ratio(r->d_relm, r->d_floor, n));
	}
	if (o->scens & C_SETUP) {
		jnum(&w, "engine.setup.n", (double)o->setup_n);
		if (s & S_RELM) {
			jstat(&w, "engine.setup.relm_ns", r->u_relm, n);
			jstat(&w, "engine.setup_id.relm_ns", r->i_relm, n);
		}
		if (s & S_OLM) {
			jstat(&w, "engine.setup.olm_ns", r->u_olm, n);
			jstat(&w, "engine.setup.olm_unsigned_ns", r->u_olm_unsigned, n);
			jstat(&w, "engine.setup_id.olm_ns", r->i_olm, n);
		}
		if (both) {
			jnum(&w, "engine.setup.ratio_vs_olm", ratio(r->u_olm, r->u_relm, n));
			jnum(&w, "engine.setup.ratio_vs_olm_unsigned", ratio(r->u_olm_unsigned, r->u_relm, n));
			jnum(&w, "engine.setup_id.ratio_vs_olm", ratio(r->i_olm, r->i_relm, n));
		}
	}
	if (w.first)
		fputs("{", w.f);
	fputs("\n}\n", w.f);
	if (fclose(w.f) != 0)
		die("%s: write failed", o->json);
}

int main(int argc, char **argv)
{
	struct opts o;
	static struct results r;

	parse_args(&o, argc, argv);
	if (relm_crypto_init() != 0)
		die("libsodium failed to initialise");
	run(&o, &r);
	report(&o, &r);
	return 0;
}

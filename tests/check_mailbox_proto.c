/*
 * check_mailbox_proto.c — lib/wire/mailbox_proto: every frame round-trips;
 * every truncation and random garbage is an error or decodes to something
 * that re-encodes to exactly the input (the encoding is canonical), never
 * a crash; every single-bit flip of every frame is refused — by the
 * decoder with the exact error its field calls for, or by the check that
 * comes next (signature, MAC, direction) — except in the fields listed as
 * free by design, each with its reason (test_every_bitflip); limits at
 * their edges; signature and MAC inputs.
 *
 * Randomised tests read RELM_SEED (default fixed) and print it on failure.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "error.h"
#include "wire/mailbox_proto.h"

/* ---- seeded PRNG (splitmix64) ---- */

static uint64_t rng_state;
static uint64_t seed_used;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rng_bytes(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rng();
}

static void sample_keys(void);

static void seed_setup(void)
{
	const char *s = getenv("RELM_SEED");
	seed_used = s ? strtoull(s, NULL, 0) : 0x5eed0001ull;
	rng_state = seed_used;
	ck_assert(sodium_init() >= 0);
	sample_keys();
}

#define ck_seed(cond) ck_assert_msg((cond), "failed with RELM_SEED=%llu: %s", \
                                    (unsigned long long)seed_used, #cond)

/* ---- sample frames of every type ---- */

static uint8_t envbuf[RELM_MBOX_ENVELOPE_MAX + 16];
static uint8_t namebuf[RELM_MBOX_LEASE_NAME_MAX];
static char textbuf[RELM_MBOX_ERROR_TEXT_MAX];

/* Signed samples (SUBSCRIBE, LEASE, SUBSCRIBE_BATCH) are signed for real,
 * over this nonce, so that test_every_bitflip can show a flip is refused
 * by the signature or MAC check. */
enum { SAMPLE_KEYS = 8 };
static uint8_t s_nonce[32], s_kx_server[32], s_kx_client_sk[32];
static struct { uint8_t pk[32], sk[64], rkey[32]; } s_key[SAMPLE_KEYS];
static uint8_t s_realm[32];
static uint8_t batchbuf[RELM_MBOX_BATCH_MAX * RELM_MBOX_BATCH_REG_ENTRY];

static void sample_keys(void)
{
	for (int i = 0; i < SAMPLE_KEYS; i++) {
		uint8_t seed[32];
		rng_bytes(seed, 32);
		crypto_sign_seed_keypair(s_key[i].pk, s_key[i].sk, seed);
	}
	rng_bytes(s_nonce, 32);
	rng_bytes(s_realm, 32);
	rng_bytes(s_kx_client_sk, 32);
	{
		uint8_t sk[32];
		rng_bytes(sk, 32);
		crypto_scalarmult_base(s_kx_server, sk);
	}
	for (int i = 0; i < SAMPLE_KEYS; i++)
		relm_mbox_read_key(s_key[i].rkey, s_key[i].sk, s_realm);
}

/* A batch of n entries; entry i is mailbox s_key[i % SAMPLE_KEYS]. */
static void sample_batch(struct relm_mbox_frame *f, uint8_t kind, size_t n)
{
	f->u.sub_batch.tag = (uint32_t)rng();
	f->u.sub_batch.kind = kind;
	if (kind == RELM_MBOX_BATCH_REGISTER)
		crypto_scalarmult_base(f->u.sub_batch.kx, s_kx_client_sk);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *pk = s_key[i % SAMPLE_KEYS].pk;
		uint64_t cursor = rng() % 1000;

		if (kind == RELM_MBOX_BATCH_MAC) {
			uint8_t mac[16];
			relm_mbox_sub_mac(mac, s_key[i % SAMPLE_KEYS].rkey, s_nonce, pk, cursor);
			relm_mbox_batch_put_mac(batchbuf + i * RELM_MBOX_BATCH_MAC_ENTRY, pk, cursor, mac);
		} else {
			uint8_t k[32], sealed[32], sig[64], m[RELM_MBOX_REG_SIG_INPUT_LEN];
			ck_assert_int_eq(relm_mbox_seal_key(k, s_kx_client_sk, s_kx_server, s_kx_server,
			                                    f->u.sub_batch.kx), 0);
			relm_mbox_seal(sealed, k, pk, s_key[i % SAMPLE_KEYS].rkey);
			relm_mbox_reg_sig_input(m, s_nonce, s_kx_server, f->u.sub_batch.kx, pk, cursor, sealed);
			crypto_sign_detached(sig, NULL, m, sizeof(m), s_key[i % SAMPLE_KEYS].sk);
			relm_mbox_batch_put_reg(batchbuf + i * RELM_MBOX_BATCH_REG_ENTRY, pk, cursor, sealed, sig);
		}
	}
	f->u.sub_batch.entries = batchbuf;
	f->u.sub_batch.count = n;
}

static void sample(struct relm_mbox_frame *f, uint8_t type, size_t varlen)
{
	memset(f, 0, sizeof(*f));
	f->version = type > RELM_MBOX_TYPE_MAX_V1 ? RELM_MBOX_VERSION_2 : RELM_MBOX_VERSION;
	f->type = type;
	switch (type) {
	case RELM_MBOX_HELLO:
		f->u.hello.min_version = 1;
		f->u.hello.max_version = (uint8_t)(1 + rng() % 5);
		f->u.hello.flags = (uint32_t)rng();
		break;
	case RELM_MBOX_CHALLENGE:
		f->u.challenge.version = (uint8_t)rng();
		f->u.challenge.flags = (uint32_t)rng();
		rng_bytes(f->u.challenge.nonce, sizeof(f->u.challenge.nonce));
		f->u.challenge.max_envelope = (uint32_t)rng();
		f->u.challenge.max_subs = (uint32_t)rng();
		f->u.challenge.rate = (uint32_t)rng();
		f->u.challenge.burst = (uint32_t)rng();
		f->u.challenge.retention_s = (uint32_t)rng();
		break;
	case RELM_MBOX_POST:
		f->u.post.tag = (uint32_t)rng();
		rng_bytes(f->u.post.mailbox, 32);
		rng_bytes(envbuf, varlen);
		f->u.post.env = envbuf;
		f->u.post.env_len = varlen;
		break;
	case RELM_MBOX_POSTED:
		f->u.posted.tag = (uint32_t)rng();
		f->u.posted.seq = rng();
		break;
	case RELM_MBOX_SUBSCRIBE:
		f->u.subscribe.tag = (uint32_t)rng();
		memcpy(f->u.subscribe.mailbox, s_key[0].pk, 32);
		f->u.subscribe.cursor = rng();
		relm_mbox_sub_sign(f->u.subscribe.sig, s_key[0].sk, s_nonce, s_key[0].pk,
		                   f->u.subscribe.cursor);
		break;
	case RELM_MBOX_SUBSCRIBED:
		f->u.subscribed.tag = (uint32_t)rng();
		rng_bytes(f->u.subscribed.mailbox, 32);
		f->u.subscribed.head = rng();
		f->u.subscribed.oldest = rng();
		break;
	case RELM_MBOX_DELIVER:
		rng_bytes(f->u.deliver.mailbox, 32);
		f->u.deliver.seq = rng();
		rng_bytes(envbuf, varlen);
		f->u.deliver.env = envbuf;
		f->u.deliver.env_len = varlen;
		break;
	case RELM_MBOX_UNSUBSCRIBE:
	case RELM_MBOX_UNSUBSCRIBED:
		f->u.unsub.tag = (uint32_t)rng();
		rng_bytes(f->u.unsub.mailbox, 32);
		break;
	case RELM_MBOX_LEASE:
		f->u.lease.tag = (uint32_t)rng();
		memcpy(f->u.lease.mailbox, s_key[1].pk, 32);
		rng_bytes(namebuf, sizeof(namebuf));
		f->u.lease.name = namebuf;
		f->u.lease.name_len = 1 + varlen % RELM_MBOX_LEASE_NAME_MAX;
		rng_bytes(f->u.lease.expected, 16);
		rng_bytes(f->u.lease.holder, 16);
		f->u.lease.ttl_ms = (uint32_t)rng();
		ck_assert_int_eq(relm_mbox_lease_sign(&f->u.lease, s_key[1].sk, s_nonce), 0);
		break;
	case RELM_MBOX_LEASE_RESULT:
		f->u.lease_result.tag = (uint32_t)rng();
		f->u.lease_result.granted = (uint8_t)(rng() & 1);
		rng_bytes(f->u.lease_result.holder, 16);
		f->u.lease_result.remaining_ms = (uint32_t)rng();
		break;
	case RELM_MBOX_PING:
	case RELM_MBOX_PONG:
		f->u.ping.tag = (uint32_t)rng();
		break;
	case RELM_MBOX_ERROR:
		f->u.error.tag = (uint32_t)rng();
		f->u.error.code = (uint16_t)rng();
		f->u.error.flags = (uint8_t)rng();
		for (size_t i = 0; i < sizeof(textbuf); i++)
			textbuf[i] = (char)('a' + rng() % 26);
		f->u.error.text = textbuf;
		f->u.error.text_len = varlen % (RELM_MBOX_ERROR_TEXT_MAX + 1);
		break;
	case RELM_MBOX_SUBSCRIBE_BATCH:
		/* counts that no other kind's entry size divides (see F_KIND) */
		sample_batch(f, varlen & 1 ? RELM_MBOX_BATCH_REGISTER : RELM_MBOX_BATCH_MAC,
		             varlen & 1 ? 3 : 5);
		break;
	case RELM_MBOX_SUBSCRIBED_BATCH: {
		size_t n = 1 + varlen % 40;
		f->u.subed_batch.tag = (uint32_t)rng();
		for (size_t i = 0; i < n; i++)
			relm_mbox_subed_put(batchbuf + i * RELM_MBOX_BATCHED_ENTRY,
			                    (unsigned)(rng() % 17), rng(), rng());
		f->u.subed_batch.entries = batchbuf;
		f->u.subed_batch.count = n;
		break;
	}
	}
}

static uint8_t *encode_new(const struct relm_mbox_frame *f, size_t *len)
{
	size_t n = relm_mbox_frame_size(f);
	uint8_t *b;

	ck_assert_uint_gt(n, 0);
	b = malloc(n);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(relm_mbox_frame_encode(b, n, f), (int)n);
	*len = n;
	return b;
}

/* If buf decodes, it must re-encode to exactly buf. */
static int decode_canonical(const uint8_t *buf, size_t len)
{
	struct relm_mbox_frame f;
	int rc = relm_mbox_frame_decode(&f, buf, len);

	if (rc == 0) {
		size_t n = relm_mbox_frame_size(&f);
		uint8_t *b2;

		ck_seed(n == len);
		b2 = malloc(n);
		ck_assert_ptr_nonnull(b2);
		ck_seed(relm_mbox_frame_encode(b2, n, &f) == (int)n);
		ck_seed(memcmp(b2, buf, n) == 0);
		free(b2);
	}
	return rc;
}

static const size_t varlens[] = { 1, 2, 63, 64, 1000, RELM_MBOX_ENVELOPE_MAX };

/* ---- round trips ---- */

START_TEST(test_roundtrip_every_type)
{
	for (uint8_t t = 1; t <= RELM_MBOX_TYPE_MAX; t++) {
		for (size_t v = 0; v < sizeof(varlens) / sizeof(varlens[0]); v++) {
			struct relm_mbox_frame f, g;
			size_t len;
			uint8_t *b;

			sample(&f, t, varlens[v]);
			b = encode_new(&f, &len);
			ck_assert_int_eq(relm_mbox_frame_decode(&g, b, len), 0);
			ck_assert_uint_eq(g.type, t);
			ck_assert_uint_eq(g.version, f.version);
			ck_assert_int_eq(decode_canonical(b, len), 0);
			/* spot-check fields through the union */
			switch (t) {
			case RELM_MBOX_POST:
				ck_assert_uint_eq(g.u.post.env_len, varlens[v]);
				ck_assert_mem_eq(g.u.post.env, envbuf, varlens[v]);
				ck_assert_mem_eq(g.u.post.mailbox, f.u.post.mailbox, 32);
				ck_assert_uint_eq(g.u.post.tag, f.u.post.tag);
				break;
			case RELM_MBOX_SUBSCRIBE:
				ck_assert_uint_eq(g.u.subscribe.cursor, f.u.subscribe.cursor);
				ck_assert_mem_eq(g.u.subscribe.sig, f.u.subscribe.sig, 64);
				break;
			case RELM_MBOX_DELIVER:
				ck_assert_uint_eq(g.u.deliver.seq, f.u.deliver.seq);
				ck_assert_uint_eq(g.u.deliver.env_len, varlens[v]);
				break;
			case RELM_MBOX_LEASE:
				ck_assert_uint_eq(g.u.lease.name_len, f.u.lease.name_len);
				ck_assert_mem_eq(g.u.lease.name, namebuf, f.u.lease.name_len);
				ck_assert_uint_eq(g.u.lease.ttl_ms, f.u.lease.ttl_ms);
				ck_assert_mem_eq(g.u.lease.expected, f.u.lease.expected, 16);
				ck_assert_mem_eq(g.u.lease.holder, f.u.lease.holder, 16);
				break;
			case RELM_MBOX_ERROR:
				ck_assert_uint_eq(g.u.error.code, f.u.error.code);
				ck_assert_uint_eq(g.u.error.text_len, f.u.error.text_len);
				break;
			case RELM_MBOX_CHALLENGE:
				ck_assert_mem_eq(g.u.challenge.nonce, f.u.challenge.nonce, 32);
				ck_assert_uint_eq(g.u.challenge.burst, f.u.challenge.burst);
				break;
			case RELM_MBOX_SUBSCRIBE_BATCH:
				ck_assert_uint_eq(g.u.sub_batch.count, f.u.sub_batch.count);
				ck_assert_uint_eq(g.u.sub_batch.kind, f.u.sub_batch.kind);
				ck_assert_mem_eq(g.u.sub_batch.kx, f.u.sub_batch.kx, 32);
				break;
			case RELM_MBOX_SUBSCRIBED_BATCH:
				ck_assert_uint_eq(g.u.subed_batch.count, f.u.subed_batch.count);
				break;
			}
			free(b);
		}
	}
}
END_TEST

START_TEST(test_known_bytes)
{
	/* HELLO 1..1: the exact bytes proto/mailbox.md shows */
	static const uint8_t hello[] = { 0, 0, 0, 8, 1, 1, 1, 1, 0, 0, 0, 0 };
	static const uint8_t ping[] = { 0, 0, 0, 6, 1, 0x0c, 0xde, 0xad, 0xbe, 0xef };
	struct relm_mbox_frame f;
	uint8_t out[32];

	ck_assert_int_eq(relm_mbox_frame_decode(&f, hello, sizeof(hello)), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_HELLO);
	ck_assert_uint_eq(f.u.hello.min_version, 1);
	ck_assert_uint_eq(f.u.hello.max_version, 1);
	ck_assert_int_eq(relm_mbox_frame_decode(&f, ping, sizeof(ping)), 0);
	ck_assert_uint_eq(f.u.ping.tag, 0xdeadbeef);
	f.type = RELM_MBOX_PONG;
	ck_assert_int_eq(relm_mbox_frame_encode(out, sizeof(out), &f), 10);
	ck_assert_uint_eq(out[5], 0x0d);
	ck_assert_mem_eq(out + 6, ping + 6, 4);
}
END_TEST

/* ---- truncation, flips, garbage ---- */

START_TEST(test_every_truncation)
{
	for (uint8_t t = 1; t <= RELM_MBOX_TYPE_MAX; t++) {
		struct relm_mbox_frame f, g;
		size_t len, flen;
		uint8_t *b;

		sample(&f, t, 300);
		b = encode_new(&f, &len);
		for (size_t cut = 0; cut < len; cut++) {
			uint8_t *c = malloc(cut ? cut : 1);
			int rc;

			memcpy(c, b, cut);
			/* as received: the length field promises more */
			ck_seed(relm_mbox_frame_decode(&g, c, cut) != 0);
			ck_seed(relm_mbox_frame_peek(&flen, c, cut) == RELM_ETRUNCATED);
			/* relabelled: length field says cut, body is short */
			if (cut >= 6) {
				uint32_t l = (uint32_t)(cut - 4);
				c[0] = (uint8_t)(l >> 24); c[1] = (uint8_t)(l >> 16);
				c[2] = (uint8_t)(l >> 8); c[3] = (uint8_t)l;
				rc = decode_canonical(c, cut);
				/* only a shorter variable tail may still be valid */
				if (rc == 0)
					ck_seed(t == RELM_MBOX_POST || t == RELM_MBOX_DELIVER ||
					        t == RELM_MBOX_ERROR || t == RELM_MBOX_SUBSCRIBE_BATCH ||
					        t == RELM_MBOX_SUBSCRIBED_BATCH);
			}
			free(c);
		}
		/* one byte too many */
		{
			uint8_t *c = malloc(len + 1);
			memcpy(c, b, len);
			c[len] = 0;
			ck_assert_int_eq(relm_mbox_frame_decode(&g, c, len + 1), RELM_EMALFORMED);
			ck_assert_int_eq(relm_mbox_frame_peek(&flen, c, len + 1), 0);
			ck_assert_uint_eq(flen, len);
			free(c);
		}
		free(b);
	}
}
END_TEST

/* Every single-bit flip of every frame, with the outcome asserted per
 * field.  A frame has no checksum (TCP carries it; TLS, where deployed,
 * protects it), so a flip is refused where the layout constrains a field,
 * and otherwise by what checks the field next:
 *   F_LEN       the length field: the frame no longer matches its length —
 *               ETOOBIG above the limit, EMALFORMED below 2 or with bytes
 *               left over, ETRUNCATED when more are promised;
 *   F_VER       no single flip turns a version this code speaks into another
 *               (1 = 01b, 2 = 10b): EVERSION;
 *   F_TYPE      unknown types: ENOTFOUND; a known type whose layout does not
 *               fit the body: EMALFORMED; a body that fits the other type is
 *               always a frame of the other direction (PING/PONG, POST/
 *               DELIVER, ...), which the receiver refuses (bad_state at the
 *               server, a protocol error at the client);
 *   F_SIZE      a length byte inside the body (lease name, error text):
 *               the body no longer adds up: EMALFORMED;
 *   F_HELLO_VER min_version 0 or above max_version: EMALFORMED, else a
 *               range the server answers with its choice (or `version`);
 *   F_FLAGS     HELLO flags: decodes, non-zero, and the server refuses
 *               unknown flags (bad_request);
 *   F_GRANTED   0/1 only: EMALFORMED above 1;
 *   F_KIND      batch kind: the entries no longer divide (EMALFORMED) —
 *               the samples use counts for which they never do;
 *   F_KX_ZERO   a MAC batch's key field must be zero: EMALFORMED;
 *   F_SIGNED    decodes, and the signature or MAC over it no longer
 *               verifies: the server refuses it (bad_signature);
 *   F_FREE      decodes to the same frame with exactly this bit changed —
 *               by design, and the test asserts the re-encoding is the
 *               flipped input: a request's tag (it only labels the answer),
 *               a POST's mailbox and envelope (anyone may post anything to
 *               any mailbox; the envelope is authenticated end to end), and
 *               every field of the server's frames (the client trusts its
 *               server as far as the transport does; envelopes are
 *               authenticated end to end, seqs are checked against the
 *               cursor). */
enum fclass {
	F_LEN = 1, F_VER, F_TYPE, F_SIZE, F_HELLO_VER, F_FLAGS, F_GRANTED, F_KIND, F_KX_ZERO,
	F_SIGNED, F_FREE,
};

/* The class of each byte of the encoded frame f (len bytes). */
static void layout(const struct relm_mbox_frame *f, size_t len, uint8_t *cls)
{
	size_t o = 6;

#define SPAN(n, c) do { memset(cls + o, (c), (n)); o += (n); } while (0)
	memset(cls, 0, len);
	memset(cls, F_LEN, 4);
	cls[4] = F_VER;
	cls[5] = F_TYPE;
	switch (f->type) {
	case RELM_MBOX_HELLO:
		SPAN(2, F_HELLO_VER);
		SPAN(4, F_FLAGS);
		break;
	case RELM_MBOX_SUBSCRIBE:
		SPAN(4, F_FREE);
		SPAN(32 + 8 + 64, F_SIGNED);
		break;
	case RELM_MBOX_LEASE:
		SPAN(4, F_FREE);
		SPAN(32, F_SIGNED);
		SPAN(1, F_SIZE);
		SPAN(f->u.lease.name_len + 16 + 16 + 4 + 64, F_SIGNED);
		break;
	case RELM_MBOX_LEASE_RESULT:
		SPAN(4, F_FREE);
		SPAN(1, F_GRANTED);
		SPAN(16 + 4, F_FREE);
		break;
	case RELM_MBOX_ERROR:
		SPAN(4 + 2 + 1, F_FREE);
		SPAN(1, F_SIZE);
		SPAN(f->u.error.text_len, F_FREE);
		break;
	case RELM_MBOX_SUBSCRIBE_BATCH:
		SPAN(4, F_FREE);
		SPAN(1, F_KIND);
		SPAN(32, f->u.sub_batch.kind == RELM_MBOX_BATCH_MAC ? F_KX_ZERO : F_SIGNED);
		SPAN(len - o, F_SIGNED);
		break;
	default:   /* POST, and every server-to-client frame */
		SPAN(len - o, F_FREE);
		break;
	}
#undef SPAN
	ck_assert_uint_eq(o, len);
}

/* 1 when the signed part of g still verifies with the sample keys. */
static int signed_ok(const struct relm_mbox_frame *g)
{
	switch (g->type) {
	case RELM_MBOX_SUBSCRIBE:
		return relm_mbox_sub_verify(g->u.subscribe.sig, s_nonce, g->u.subscribe.mailbox,
		                            g->u.subscribe.cursor) == 0;
	case RELM_MBOX_LEASE:
		return relm_mbox_lease_verify(&g->u.lease, s_nonce) == 0;
	case RELM_MBOX_SUBSCRIBE_BATCH:
		/* the server answers per entry: all must still pass */
		for (size_t i = 0; i < g->u.sub_batch.count; i++) {
			struct relm_mbox_batch_entry e;
			const uint8_t *rkey = NULL;

			relm_mbox_batch_entry(&g->u.sub_batch, i, &e);
			for (int k = 0; k < SAMPLE_KEYS; k++)
				if (memcmp(s_key[k].pk, e.mailbox, 32) == 0)
					rkey = s_key[k].rkey;
			if (g->u.sub_batch.kind == RELM_MBOX_BATCH_MAC) {
				/* an unknown mailbox has no read key: unknown_key */
				if (!rkey || relm_mbox_sub_mac_verify(e.mac, rkey, s_nonce, e.mailbox,
				                                      e.cursor) != 0)
					return 0;
			} else if (relm_mbox_reg_verify(e.sig, s_nonce, s_kx_server, g->u.sub_batch.kx,
			                                e.mailbox, e.cursor, e.sealed) != 0) {
				return 0;
			}
		}
		return 1;
	default:
		ck_abort_msg("type %u has no signed part", g->type);
		return 0;
	}
}

/* Which side sends a type: 0 client, 1 server. */
static int from_server(uint8_t t)
{
	switch (t) {
	case RELM_MBOX_CHALLENGE: case RELM_MBOX_POSTED: case RELM_MBOX_SUBSCRIBED:
	case RELM_MBOX_DELIVER: case RELM_MBOX_UNSUBSCRIBED: case RELM_MBOX_LEASE_RESULT:
	case RELM_MBOX_PONG: case RELM_MBOX_ERROR: case RELM_MBOX_SUBSCRIBED_BATCH:
		return 1;
	default:
		return 0;
	}
}

/* The error a frame whose length field now reads l must get (len real bytes). */
static int len_error(uint32_t l, size_t len)
{
	if (l > RELM_MBOX_FRAME_MAX)
		return RELM_ETOOBIG;
	if (l < 2)
		return RELM_EMALFORMED;
	if ((size_t)l + 4 > len)
		return RELM_ETRUNCATED;
	return RELM_EMALFORMED;   /* bytes left after the frame */
}

static void flip_one(const struct relm_mbox_frame *f, uint8_t *b, size_t len, size_t i, int bit,
                     const uint8_t *cls, uint32_t *type_pairs)
{
	struct relm_mbox_frame g;
	int rc;

	b[i] ^= (uint8_t)(1u << bit);
	rc = relm_mbox_frame_decode(&g, b, len);
	switch (cls[i]) {
	case F_LEN:
		ck_seed(rc == len_error((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
		                        (uint32_t)b[2] << 8 | b[3], len));
		break;
	case F_VER:
		ck_seed(rc == RELM_EVERSION);
		break;
	case F_TYPE: {
		uint8_t t = b[5];
		uint8_t max = f->version == RELM_MBOX_VERSION ? RELM_MBOX_TYPE_MAX_V1 : RELM_MBOX_TYPE_MAX;

		if (t == 0 || t > max) {
			ck_seed(rc == RELM_ENOTFOUND);
		} else if (rc == 0) {
			/* the other direction: refused by whoever receives it */
			ck_seed(decode_canonical(b, len) == 0);
			type_pairs[f->type] |= 1u << t;
		} else {
			ck_seed(rc == RELM_EMALFORMED);
		}
		break;
	}
	case F_SIZE:
	case F_KX_ZERO:
		ck_seed(rc == RELM_EMALFORMED);
		break;
	case F_KIND:
		ck_seed(rc == RELM_EMALFORMED);
		break;
	case F_HELLO_VER: {
		uint8_t mn = b[6], mx = b[7];

		ck_seed(rc == (mn == 0 || mn > mx ? RELM_EMALFORMED : 0));
		break;
	}
	case F_FLAGS:
		ck_seed(rc == 0 && g.u.hello.flags != 0);
		break;
	case F_GRANTED:
		ck_seed(rc == (b[i] <= 1 ? 0 : RELM_EMALFORMED));
		break;
	case F_SIGNED:
		ck_seed(rc == 0);
		ck_seed(!signed_ok(&g));
		break;
	case F_FREE:
		ck_seed(rc == 0);
		ck_seed(decode_canonical(b, len) == 0);   /* exactly the flipped bytes */
		break;
	default:
		ck_abort_msg("byte %zu of type %u has no class", i, f->type);
	}
	b[i] ^= (uint8_t)(1u << bit);
}

START_TEST(test_every_bitflip)
{
	/* (type, version) pairs: every type, CHALLENGE in both layouts, both batch kinds */
	struct { uint8_t type, version; size_t varlen; } cases[RELM_MBOX_TYPE_MAX + 4];
	size_t ncases = 0;
	uint32_t type_pairs[RELM_MBOX_TYPE_MAX + 1] = { 0 }, want[RELM_MBOX_TYPE_MAX + 1] = { 0 };

	for (uint8_t t = 1; t <= RELM_MBOX_TYPE_MAX; t++) {
		cases[ncases].type = t;
		cases[ncases].version = 0;
		cases[ncases++].varlen = 40;
	}
	cases[ncases].type = RELM_MBOX_CHALLENGE;
	cases[ncases].version = RELM_MBOX_VERSION_2;
	cases[ncases++].varlen = 40;
	cases[ncases].type = RELM_MBOX_SUBSCRIBE_BATCH;   /* varlen odd: REGISTER */
	cases[ncases].version = 0;
	cases[ncases++].varlen = 41;

	for (size_t c = 0; c < ncases; c++) {
		struct relm_mbox_frame f, g;
		size_t len;
		uint8_t *b, *cls;

		sample(&f, cases[c].type, cases[c].varlen);
		if (cases[c].version)
			f.version = cases[c].version;
		b = encode_new(&f, &len);
		cls = malloc(len);
		ck_assert_ptr_nonnull(cls);
		layout(&f, len, cls);
		/* unflipped, the signed samples verify */
		ck_assert_int_eq(relm_mbox_frame_decode(&g, b, len), 0);
		if (f.type == RELM_MBOX_SUBSCRIBE || f.type == RELM_MBOX_LEASE ||
		    f.type == RELM_MBOX_SUBSCRIBE_BATCH)
			ck_assert(signed_ok(&g));
		for (size_t i = 0; i < len; i++)
			for (int bit = 0; bit < 8; bit++)
				flip_one(&f, b, len, i, bit, cls, type_pairs);
		free(cls);
		free(b);
	}
	/* The type flips that land on another valid frame, exactly.  Each but
	 * one turns a frame into one of the other direction, which its
	 * receiver refuses (the server answers bad_state, the client drops the
	 * connection); SUBSCRIBED -> DELIVER stays a server frame, trusted as
	 * far as the transport is, and names a "mailbox" made of the tag and
	 * the first 28 id bytes, which the client is not subscribed to and
	 * ignores. */
	want[RELM_MBOX_CHALLENGE] = 1u << RELM_MBOX_POST;          /* bit 0: 0x02 -> 0x03 */
	want[RELM_MBOX_POST] = 1u << RELM_MBOX_DELIVER;            /* bit 2: 0x03 -> 0x07 */
	want[RELM_MBOX_SUBSCRIBE] = 1u << RELM_MBOX_DELIVER;       /* bit 1: 0x05 -> 0x07 */
	want[RELM_MBOX_SUBSCRIBED] = 1u << RELM_MBOX_DELIVER;      /* bit 0: 0x06 -> 0x07 */
	want[RELM_MBOX_DELIVER] = 1u << RELM_MBOX_POST;            /* bit 2: 0x07 -> 0x03 */
	want[RELM_MBOX_UNSUBSCRIBE] = 1u << RELM_MBOX_UNSUBSCRIBED;/* same layout */
	want[RELM_MBOX_UNSUBSCRIBED] = 1u << RELM_MBOX_UNSUBSCRIBE;
	want[RELM_MBOX_PING] = 1u << RELM_MBOX_PONG;               /* same layout */
	want[RELM_MBOX_PONG] = 1u << RELM_MBOX_PING;
	want[RELM_MBOX_SUBSCRIBE_BATCH] = 1u << RELM_MBOX_DELIVER; /* bit 3: 0x0f -> 0x07 */
	for (uint8_t t = 1; t <= RELM_MBOX_TYPE_MAX; t++) {
		ck_assert_msg(type_pairs[t] == want[t], "type %u: flips to types %#x decode, want %#x",
		              t, type_pairs[t], want[t]);
		for (uint8_t u = 1; u <= RELM_MBOX_TYPE_MAX; u++)
			if (type_pairs[t] & (1u << u))
				ck_assert(from_server(u) != from_server(t) ||
				          (t == RELM_MBOX_SUBSCRIBED && u == RELM_MBOX_DELIVER));
	}
}
END_TEST

START_TEST(test_garbage)
{
	static uint8_t buf[RELM_MBOX_FRAME_TOTAL_MAX + 8];
	size_t flen;

	for (int i = 0; i < 20000; i++) {
		size_t len = (size_t)(rng() % 160);
		if (i % 100 == 0)
			len = (size_t)(rng() % sizeof(buf));
		rng_bytes(buf, len);
		if (len >= 6 && (rng() & 1)) {
			/* plausible header: right length, version 1, a known type */
			uint32_t l = (uint32_t)(len - 4);
			buf[0] = (uint8_t)(l >> 24); buf[1] = (uint8_t)(l >> 16);
			buf[2] = (uint8_t)(l >> 8); buf[3] = (uint8_t)l;
			buf[4] = 1;
			buf[5] = (uint8_t)(rng() % (RELM_MBOX_TYPE_MAX + 2));
		}
		(void)decode_canonical(buf, len);
		(void)relm_mbox_frame_peek(&flen, buf, len);
	}
}
END_TEST

/* ---- limits ---- */

static void put_hdr(uint8_t *b, size_t total, uint8_t version, uint8_t type)
{
	uint32_t l = (uint32_t)(total - 4);
	b[0] = (uint8_t)(l >> 24); b[1] = (uint8_t)(l >> 16);
	b[2] = (uint8_t)(l >> 8); b[3] = (uint8_t)l;
	b[4] = version;
	b[5] = type;
}

START_TEST(test_limits)
{
	static uint8_t b[RELM_MBOX_FRAME_TOTAL_MAX + 64];
	struct relm_mbox_frame f, g;
	size_t flen;

	/* envelope exactly at the limit encodes and decodes */
	sample(&f, RELM_MBOX_POST, RELM_MBOX_ENVELOPE_MAX);
	ck_assert_int_eq(relm_mbox_frame_encode(b, sizeof(b), &f), 6 + 36 + RELM_MBOX_ENVELOPE_MAX);
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 6 + 36 + RELM_MBOX_ENVELOPE_MAX), 0);
	/* the largest frame (DELIVER, 64 KiB) is exactly FRAME_TOTAL_MAX */
	sample(&f, RELM_MBOX_DELIVER, RELM_MBOX_ENVELOPE_MAX);
	ck_assert_uint_eq(relm_mbox_frame_size(&f), RELM_MBOX_FRAME_TOTAL_MAX);
	/* one byte more cannot be encoded */
	f.u.deliver.env_len = RELM_MBOX_ENVELOPE_MAX + 1;
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 0);
	ck_assert_int_eq(relm_mbox_frame_encode(b, sizeof(b), &f), RELM_EINVAL);
	/* nor an empty envelope */
	f.u.deliver.env_len = 0;
	ck_assert_int_eq(relm_mbox_frame_encode(b, sizeof(b), &f), RELM_EINVAL);
	/* small output buffer */
	sample(&f, RELM_MBOX_PING, 0);
	ck_assert_int_eq(relm_mbox_frame_encode(b, 9, &f), RELM_ETOOBIG);

	/* a well-framed POST with a 65537-byte envelope: ETOOBIG, stream intact */
	memset(b, 0, sizeof(b));
	put_hdr(b, 6 + 36 + RELM_MBOX_ENVELOPE_MAX + 1, 1, RELM_MBOX_POST);
	ck_assert_int_eq(relm_mbox_frame_peek(&flen, b, 6 + 36 + RELM_MBOX_ENVELOPE_MAX + 1), 0);
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 6 + 36 + RELM_MBOX_ENVELOPE_MAX + 1),
	                 RELM_ETOOBIG);
	/* a POST with no envelope */
	put_hdr(b, 6 + 36, 1, RELM_MBOX_POST);
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 6 + 36), RELM_EMALFORMED);
	/* declared length above FRAME_MAX: ETOOBIG from the header alone */
	put_hdr(b, RELM_MBOX_FRAME_TOTAL_MAX + 1, 1, RELM_MBOX_POST);
	ck_assert_int_eq(relm_mbox_frame_peek(&flen, b, 4), RELM_ETOOBIG);
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 4), RELM_ETOOBIG);
	b[0] = 0xff;
	ck_assert_int_eq(relm_mbox_frame_peek(&flen, b, 6), RELM_ETOOBIG);
	/* declared length below 2 */
	memset(b, 0, 8);
	b[3] = 1;
	ck_assert_int_eq(relm_mbox_frame_peek(&flen, b, 8), RELM_EMALFORMED);
	/* version and type */
	sample(&f, RELM_MBOX_PING, 0);
	relm_mbox_frame_encode(b, sizeof(b), &f);
	b[4] = RELM_MBOX_VERSION_MAX + 1;
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 10), RELM_EVERSION);
	b[4] = 0;
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 10), RELM_EVERSION);
	b[4] = RELM_MBOX_VERSION_2;   /* PING is the same in version 2 */
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 10), 0);
	ck_assert_uint_eq(g.version, RELM_MBOX_VERSION_2);
	b[4] = 1;
	b[5] = 0x7f;
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 10), RELM_ENOTFOUND);
	ck_assert_uint_eq(g.type, 0x7f);
	b[5] = 0;
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 10), RELM_ENOTFOUND);
	/* HELLO range */
	{
		uint8_t h[] = { 0, 0, 0, 8, 1, 1, 2, 1, 0, 0, 0, 0 };
		ck_assert_int_eq(relm_mbox_frame_decode(&g, h, sizeof(h)), RELM_EMALFORMED);
		h[6] = 0;
		ck_assert_int_eq(relm_mbox_frame_decode(&g, h, sizeof(h)), RELM_EMALFORMED);
	}
	/* lease name 0 and 65 */
	sample(&f, RELM_MBOX_LEASE, 5);
	f.u.lease.name_len = 0;
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 0);
	f.u.lease.name_len = RELM_MBOX_LEASE_NAME_MAX + 1;
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 0);
	f.u.lease.name_len = RELM_MBOX_LEASE_NAME_MAX;
	ck_assert_uint_gt(relm_mbox_frame_size(&f), 0);
	{
		int n = relm_mbox_frame_encode(b, sizeof(b), &f);
		ck_assert_int_gt(n, 0);
		b[6 + 4 + 32] = 0;   /* name_len byte */
		ck_assert_int_eq(relm_mbox_frame_decode(&g, b, (size_t)n), RELM_EMALFORMED);
		b[6 + 4 + 32] = RELM_MBOX_LEASE_NAME_MAX + 1;
		ck_assert_int_eq(relm_mbox_frame_decode(&g, b, (size_t)n), RELM_EMALFORMED);
	}
	/* error text above 255 cannot be encoded */
	sample(&f, RELM_MBOX_ERROR, 10);
	f.u.error.text_len = 256;
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 0);
	/* lease result granted must be 0/1 */
	sample(&f, RELM_MBOX_LEASE_RESULT, 0);
	f.u.lease_result.granted = 1;
	{
		int n = relm_mbox_frame_encode(b, sizeof(b), &f);
		b[10] = 2;
		ck_assert_int_eq(relm_mbox_frame_decode(&g, b, (size_t)n), RELM_EMALFORMED);
	}
	/* cost */
	ck_assert_uint_eq(relm_mbox_cost(10), 1);
	ck_assert_uint_eq(relm_mbox_cost(1024), 2);
	ck_assert_uint_eq(relm_mbox_cost(RELM_MBOX_FRAME_TOTAL_MAX), 1 + RELM_MBOX_FRAME_TOTAL_MAX / 1024);
}
END_TEST

START_TEST(test_errnames)
{
	ck_assert_str_eq(relm_mbox_errname(RELM_MBOX_E_BAD_SIGNATURE), "bad_signature");
	ck_assert_str_eq(relm_mbox_errname(RELM_MBOX_E_RATE_LIMITED), "rate_limited");
	ck_assert_str_eq(relm_mbox_errname(999), "unknown");
	ck_assert_int_eq(relm_mbox_err_to_relm(RELM_MBOX_E_BAD_SIGNATURE), RELM_EBADSIG);
	ck_assert_int_eq(relm_mbox_err_to_relm(999), RELM_EPROTO);
}
END_TEST

/* ---- signature inputs ---- */

START_TEST(test_sub_signature)
{
	uint8_t pk[32], sk[64], pk2[32], sk2[64], nonce[32], nonce2[32], sig[64];
	uint8_t m[RELM_MBOX_SUB_SIG_INPUT_LEN], want[RELM_MBOX_SUB_SIG_INPUT_LEN];
	uint64_t cursor = 0x0102030405060708ull;

	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(pk2, sk2);
	rng_bytes(nonce, 32);
	memcpy(nonce2, nonce, 32);
	nonce2[31] ^= 1;

	/* layout: context ‖ nonce ‖ mailbox ‖ u64be cursor */
	memcpy(want, "relm/v1/mailbox-sub", 19);
	memcpy(want + 19, nonce, 32);
	memcpy(want + 51, pk, 32);
	for (int i = 0; i < 8; i++)
		want[83 + i] = (uint8_t)(i + 1);
	ck_assert_uint_eq(relm_mbox_sub_sig_input(m, nonce, pk, cursor), sizeof(want));
	ck_assert_uint_eq(sizeof(want), 91);
	ck_assert_mem_eq(m, want, sizeof(want));

	relm_mbox_sub_sign(sig, sk, nonce, pk, cursor);
	ck_assert_int_eq(crypto_sign_verify_detached(sig, want, sizeof(want), pk), 0);
	ck_assert_int_eq(relm_mbox_sub_verify(sig, nonce, pk, cursor), 0);
	ck_assert_int_eq(relm_mbox_sub_verify(sig, nonce2, pk, cursor), RELM_EBADSIG);
	ck_assert_int_eq(relm_mbox_sub_verify(sig, nonce, pk, cursor + 1), RELM_EBADSIG);
	ck_assert_int_eq(relm_mbox_sub_verify(sig, nonce, pk2, cursor), RELM_EBADSIG);
	relm_mbox_sub_sign(sig, sk2, nonce, pk, cursor);   /* wrong key */
	ck_assert_int_eq(relm_mbox_sub_verify(sig, nonce, pk, cursor), RELM_EBADSIG);
	for (int i = 0; i < 64 * 8; i++) {
		relm_mbox_sub_sign(sig, sk, nonce, pk, cursor);
		sig[i / 8] ^= (uint8_t)(1u << (i % 8));
		ck_assert_int_ne(relm_mbox_sub_verify(sig, nonce, pk, cursor), 0);
	}
	memset(pk2, 0, 32);   /* small-order point: not a mailbox */
	ck_assert_int_eq(relm_mbox_sub_verify(sig, nonce, pk2, cursor), RELM_EBADKEY);
}
END_TEST

START_TEST(test_lease_signature)
{
	uint8_t pk[32], sk[64], nonce[32];
	uint8_t m[RELM_MBOX_LEASE_SIG_INPUT_MAX];
	struct relm_mbox_lease l, l2;
	size_t n;

	crypto_sign_keypair(pk, sk);
	rng_bytes(nonce, 32);
	memset(&l, 0, sizeof(l));
	l.tag = 7;
	memcpy(l.mailbox, pk, 32);
	l.name = (const uint8_t *)"leader";
	l.name_len = 6;
	memset(l.expected, 0, 16);
	memset(l.holder, 0xab, 16);
	l.ttl_ms = 0x00010203;

	n = relm_mbox_lease_sig_input(m, nonce, &l);
	ck_assert_uint_eq(n, 21 + 32 + 32 + 1 + 6 + 16 + 16 + 4);
	ck_assert_mem_eq(m, "relm/v1/mailbox-lease", 21);
	ck_assert_mem_eq(m + 21, nonce, 32);
	ck_assert_mem_eq(m + 53, pk, 32);
	ck_assert_uint_eq(m[85], 6);
	ck_assert_mem_eq(m + 86, "leader", 6);
	ck_assert_mem_eq(m + 92, l.expected, 16);
	ck_assert_mem_eq(m + 108, l.holder, 16);
	ck_assert_uint_eq(m[124], 0x00);
	ck_assert_uint_eq(m[127], 0x03);

	ck_assert_int_eq(relm_mbox_lease_sign(&l, sk, nonce), 0);
	ck_assert_int_eq(relm_mbox_lease_verify(&l, nonce), 0);
	/* the tag is not signed; every signed field is */
	l2 = l; l2.tag = 8;
	ck_assert_int_eq(relm_mbox_lease_verify(&l2, nonce), 0);
	l2 = l; l2.ttl_ms++;
	ck_assert_int_eq(relm_mbox_lease_verify(&l2, nonce), RELM_EBADSIG);
	l2 = l; l2.holder[0] ^= 1;
	ck_assert_int_eq(relm_mbox_lease_verify(&l2, nonce), RELM_EBADSIG);
	l2 = l; l2.expected[15] ^= 1;
	ck_assert_int_eq(relm_mbox_lease_verify(&l2, nonce), RELM_EBADSIG);
	l2 = l; l2.name = (const uint8_t *)"leadeR";
	ck_assert_int_eq(relm_mbox_lease_verify(&l2, nonce), RELM_EBADSIG);
	l2 = l; l2.name_len = 5;
	ck_assert_int_eq(relm_mbox_lease_verify(&l2, nonce), RELM_EBADSIG);
	nonce[0] ^= 1;
	ck_assert_int_eq(relm_mbox_lease_verify(&l, nonce), RELM_EBADSIG);
	l2 = l; l2.name_len = 0;
	ck_assert_int_eq(relm_mbox_lease_sign(&l2, sk, nonce), RELM_EINVAL);
}
END_TEST

/* Version 2's batched subscription: read keys, MACs, the sealed
 * registration, and the frame rules that go with them. */
START_TEST(test_batch_crypto)
{
	uint8_t realm2[32], k1[32], k2[32], mac[16], mac2[16], m[RELM_MBOX_MAC_INPUT_LEN];
	uint8_t c_sk[32], c_kx[32], s_sk[32], s_kx[32], kc[32], ks[32], sealed[32], opened[32];
	uint8_t sig[64], rm[RELM_MBOX_REG_SIG_INPUT_LEN], low[32] = { 0 };
	const uint8_t *pk = s_key[0].pk;
	struct relm_mbox_frame f, g;
	uint8_t b[256];
	int n;

	/* the read key: the same for every holder of the key, per realm */
	relm_mbox_read_key(k1, s_key[0].sk, s_realm);
	ck_assert_mem_eq(k1, s_key[0].rkey, 32);
	memcpy(realm2, s_realm, 32);
	realm2[0] ^= 1;
	relm_mbox_read_key(k2, s_key[0].sk, realm2);
	ck_assert_mem_ne(k1, k2, 32);
	relm_mbox_read_key(k2, s_key[1].sk, s_realm);
	ck_assert_mem_ne(k1, k2, 32);
	/* only the seed counts (sk[0..32)): the pk half cannot change it */
	{
		uint8_t sk[64];
		memcpy(sk, s_key[0].sk, 64);
		sk[40] ^= 1;
		relm_mbox_read_key(k2, sk, s_realm);
		ck_assert_mem_eq(k1, k2, 32);
	}

	/* the MAC: its input, and every field bound */
	relm_mbox_sub_mac(mac, k1, s_nonce, pk, 7);
	memcpy(m, "relm/v2/mailbox-sub", 19);
	memcpy(m + 19, s_nonce, 32);
	memcpy(m + 51, pk, 32);
	memset(m + 83, 0, 8);
	m[90] = 7;
	ck_assert_int_eq(crypto_generichash(mac2, 16, m, sizeof(m), k1, 32), 0);
	ck_assert_mem_eq(mac, mac2, 16);
	ck_assert_int_eq(relm_mbox_sub_mac_verify(mac, k1, s_nonce, pk, 7), 0);
	ck_assert_int_eq(relm_mbox_sub_mac_verify(mac, k1, s_nonce, pk, 8), RELM_EBADSIG);
	ck_assert_int_eq(relm_mbox_sub_mac_verify(mac, k1, s_nonce, s_key[1].pk, 7), RELM_EBADSIG);
	ck_assert_int_eq(relm_mbox_sub_mac_verify(mac, s_key[1].rkey, s_nonce, pk, 7), RELM_EBADSIG);
	memcpy(realm2, s_nonce, 32);
	realm2[31] ^= 0x80;
	ck_assert_int_eq(relm_mbox_sub_mac_verify(mac, k1, realm2, pk, 7), RELM_EBADSIG);
	for (int i = 0; i < 128; i++) {
		memcpy(mac2, mac, 16);
		mac2[i / 8] ^= (uint8_t)(1u << (i % 8));
		ck_assert_int_eq(relm_mbox_sub_mac_verify(mac2, k1, s_nonce, pk, 7), RELM_EBADSIG);
	}

	/* sealing: both sides derive the same key; it opens what it sealed */
	rng_bytes(c_sk, 32);
	rng_bytes(s_sk, 32);
	crypto_scalarmult_base(c_kx, c_sk);
	crypto_scalarmult_base(s_kx, s_sk);
	ck_assert_int_eq(relm_mbox_seal_key(kc, c_sk, s_kx, s_kx, c_kx), 0);
	ck_assert_int_eq(relm_mbox_seal_key(ks, s_sk, c_kx, s_kx, c_kx), 0);
	ck_assert_mem_eq(kc, ks, 32);
	relm_mbox_seal(sealed, kc, pk, k1);
	ck_assert_mem_ne(sealed, k1, 32);
	relm_mbox_seal(opened, ks, pk, sealed);
	ck_assert_mem_eq(opened, k1, 32);
	relm_mbox_seal(opened, ks, s_key[1].pk, sealed);   /* bound to the mailbox */
	ck_assert_mem_ne(opened, k1, 32);
	ck_assert_int_eq(relm_mbox_seal_key(ks, s_sk, low, s_kx, c_kx), RELM_EBADKEY);

	/* the registration signature covers the nonce, both keys, the entry */
	ck_assert_uint_eq(relm_mbox_reg_sig_input(rm, s_nonce, s_kx, c_kx, pk, 9, sealed), sizeof(rm));
	ck_assert_mem_eq(rm, "relm/v2/mailbox-register", 24);
	crypto_sign_detached(sig, NULL, rm, sizeof(rm), s_key[0].sk);
	ck_assert_int_eq(relm_mbox_reg_verify(sig, s_nonce, s_kx, c_kx, pk, 9, sealed), 0);
	ck_assert_int_eq(relm_mbox_reg_verify(sig, s_nonce, c_kx, s_kx, pk, 9, sealed), RELM_EBADSIG);
	ck_assert_int_eq(relm_mbox_reg_verify(sig, s_nonce, s_kx, c_kx, pk, 10, sealed), RELM_EBADSIG);
	ck_assert_int_eq(relm_mbox_reg_verify(sig, s_nonce, s_kx, c_kx, low, 9, sealed), RELM_EBADKEY);

	/* frames: v2 types do not exist in version 1; CHALLENGE grows in v2 */
	sample(&f, RELM_MBOX_SUBSCRIBED_BATCH, 3);
	n = relm_mbox_frame_encode(b, sizeof(b), &f);
	ck_assert_int_gt(n, 0);
	b[4] = RELM_MBOX_VERSION;
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, (size_t)n), RELM_ENOTFOUND);
	f.version = RELM_MBOX_VERSION;
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 0);
	sample(&f, RELM_MBOX_CHALLENGE, 0);
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 6 + 57);
	f.version = RELM_MBOX_VERSION_2;
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 6 + 57 + 64);
	n = relm_mbox_frame_encode(b, sizeof(b), &f);
	b[4] = RELM_MBOX_VERSION;   /* a v2 body under a v1 header: too long */
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, (size_t)n), RELM_EMALFORMED);
	/* batch counts: 0 and 1025 entries cannot be encoded */
	sample(&f, RELM_MBOX_SUBSCRIBE_BATCH, 0);
	f.u.sub_batch.count = 0;
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 0);
	f.u.sub_batch.count = RELM_MBOX_BATCH_MAX + 1;
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 0);
	f.u.sub_batch.count = RELM_MBOX_BATCH_MAX;   /* 1024 MAC entries fit one frame */
	ck_assert_uint_le(relm_mbox_frame_size(&f), RELM_MBOX_FRAME_TOTAL_MAX);
	f.u.sub_batch.kind = RELM_MBOX_BATCH_REGISTER;   /* 1024 REGISTER entries do not */
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 0);
	f.u.sub_batch.kind = 2;
	f.u.sub_batch.count = 1;
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 0);
}
END_TEST

static Suite *mailbox_proto_suite(void)
{
	Suite *s = suite_create("mailbox_proto");
	TCase *tc;

	tc = tcase_create("roundtrip");
	tcase_add_checked_fixture(tc, seed_setup, NULL);
	tcase_add_test(tc, test_roundtrip_every_type);
	tcase_add_test(tc, test_known_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, seed_setup, NULL);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_every_truncation);
	tcase_add_test(tc, test_every_bitflip);
	tcase_add_test(tc, test_garbage);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_checked_fixture(tc, seed_setup, NULL);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_errnames);
	suite_add_tcase(s, tc);

	tc = tcase_create("signatures");
	tcase_add_checked_fixture(tc, seed_setup, NULL);
	tcase_add_test(tc, test_sub_signature);
	tcase_add_test(tc, test_lease_signature);
	tcase_add_test(tc, test_batch_crypto);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(mailbox_proto_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * check_mailbox_proto.c — lib/mailbox_proto: every frame round-trips;
 * every truncation, bit flip and random garbage is an error or decodes to
 * something that re-encodes to exactly the input (the encoding is
 * canonical), never a crash; limits at their edges; signature inputs.
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

static void seed_setup(void)
{
	const char *s = getenv("RELM_SEED");
	seed_used = s ? strtoull(s, NULL, 0) : 0x5eed0001ull;
	rng_state = seed_used;
	ck_assert(sodium_init() >= 0);
}

#define ck_seed(cond) ck_assert_msg((cond), "failed with RELM_SEED=%llu: %s", \
                                    (unsigned long long)seed_used, #cond)

/* ---- sample frames of every type ---- */

static uint8_t envbuf[RELM_MBOX_ENVELOPE_MAX + 16];
static uint8_t namebuf[RELM_MBOX_LEASE_NAME_MAX];
static char textbuf[RELM_MBOX_ERROR_TEXT_MAX];

static void sample(struct relm_mbox_frame *f, uint8_t type, size_t varlen)
{
	memset(f, 0, sizeof(*f));
	f->version = RELM_MBOX_VERSION;
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
		rng_bytes(f->u.subscribe.mailbox, 32);
		f->u.subscribe.cursor = rng();
		rng_bytes(f->u.subscribe.sig, 64);
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
		rng_bytes(f->u.lease.mailbox, 32);
		rng_bytes(namebuf, sizeof(namebuf));
		f->u.lease.name = namebuf;
		f->u.lease.name_len = 1 + varlen % RELM_MBOX_LEASE_NAME_MAX;
		rng_bytes(f->u.lease.expected, 16);
		rng_bytes(f->u.lease.holder, 16);
		f->u.lease.ttl_ms = (uint32_t)rng();
		rng_bytes(f->u.lease.sig, 64);
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
			ck_assert_uint_eq(g.version, RELM_MBOX_VERSION);
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
					        t == RELM_MBOX_ERROR);
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

START_TEST(test_every_bitflip)
{
	for (uint8_t t = 1; t <= RELM_MBOX_TYPE_MAX; t++) {
		struct relm_mbox_frame f;
		size_t len;
		uint8_t *b;

		sample(&f, t, 40);
		b = encode_new(&f, &len);
		for (size_t i = 0; i < len; i++)
			for (int bit = 0; bit < 8; bit++) {
				b[i] ^= (uint8_t)(1u << bit);
				(void)decode_canonical(b, len);
				b[i] ^= (uint8_t)(1u << bit);
			}
		free(b);
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
	b[4] = 2;
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 10), RELM_EVERSION);
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

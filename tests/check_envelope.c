/*
 * check_envelope.c — the envelope codec (lib/wire/envelope.h): round trips,
 * every rejection rule, every truncation and random garbage.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "wire/envelope.h"
#include "crypto/crypto.h"
#include "error.h"
#include "util_rand.h"

#define HDR_MAX (RELM_HEADER_LEN + RELM_INITIAL_EXT_LEN)

static uint8_t buf[RELM_ENVELOPE_MAX + 64];

static void rand_x25519_pub(uint8_t pub[32])
{
	uint8_t priv[32];
	tu_rand_bytes(priv, sizeof priv);
	relm_x25519_public(pub, priv);
}

static void rand_ed25519_pub(uint8_t pk[32])
{
	uint8_t seed[32], sk[64];
	tu_rand_bytes(seed, sizeof seed);
	relm_sign_keypair_from_seed(pk, sk, seed);
}

static void rand_header(struct relm_header *h, struct relm_initial_ext *ext, int initial)
{
	memset(h, 0, sizeof *h);
	h->version = RELM_WIRE_VERSION;
	h->flags = initial ? RELM_ENV_F_INITIAL : 0;
	rand_x25519_pub(h->dh_pub);
	h->pn = (uint32_t)tu_rand64();
	h->n = (uint32_t)tu_rand64();
	tu_rand_bytes(h->nonce, sizeof h->nonce);
	memset(ext, 0, sizeof *ext);
	rand_ed25519_pub(ext->ipk);
	rand_x25519_pub(ext->ek);
	ext->spk_id = (uint32_t)tu_rand64();
	ext->opk_id = (uint32_t)tu_rand64();
}

/* header (+ext) ‖ k blocks + tag of random bytes; returns the length. */
static size_t make_envelope(uint8_t *out, const struct relm_header *h,
                            const struct relm_initial_ext *ext, size_t k)
{
	size_t n = relm_header_encode(out, h, ext);
	size_t ct = k * RELM_PAD_BLOCK + RELM_TAG_LEN;

	tu_rand_bytes(out + n, ct);
	return n + ct;
}

static int decode_untouched(const uint8_t *b, size_t len)
{
	struct relm_envelope e, sentinel;
	int err;

	memset(&e, 0xa5, sizeof e);
	memset(&sentinel, 0xa5, sizeof sentinel);
	err = relm_envelope_decode(&e, b, len);
	if (err != 0)
		ck_assert_msg(memcmp(&e, &sentinel, sizeof e) == 0, "out written on error %d", err);
	return err;
}

/* ---- round trip ---------------------------------------------------------- */

static void round_trip(int initial)
{
	struct relm_header h;
	struct relm_initial_ext ext;
	struct relm_envelope e;

	for (int i = 0; i < 50; i++) {
		size_t k = 1 + tu_rand_below(20), len;

		rand_header(&h, &ext, initial);
		len = make_envelope(buf, &h, &ext, k);
		ck_assert_msg(relm_envelope_decode(&e, buf, len) == 0,
		              "decode failed (" TU_SEED_FMT ")", TU_SEED_ARG);
		ck_assert_uint_eq(e.h.version, 1);
		ck_assert_uint_eq(e.h.flags, h.flags);
		ck_assert_mem_eq(e.h.dh_pub, h.dh_pub, 32);
		ck_assert_uint_eq(e.h.pn, h.pn);
		ck_assert_uint_eq(e.h.n, h.n);
		ck_assert_mem_eq(e.h.nonce, h.nonce, 24);
		ck_assert_ptr_eq(e.hdr, buf);
		ck_assert_uint_eq(e.hdrlen, initial ? HDR_MAX : RELM_HEADER_LEN);
		ck_assert_ptr_eq(e.ct, buf + e.hdrlen);
		ck_assert_uint_eq(e.ctlen, k * 64 + 16);
		if (initial) {
			ck_assert_mem_eq(e.ext.ipk, ext.ipk, 32);
			ck_assert_mem_eq(e.ext.ek, ext.ek, 32);
			ck_assert_uint_eq(e.ext.spk_id, ext.spk_id);
			ck_assert_uint_eq(e.ext.opk_id, ext.opk_id);
		}
	}
}

START_TEST(round_trip_plain)
{
	round_trip(0);
}
END_TEST

START_TEST(round_trip_initial)
{
	round_trip(1);
}
END_TEST

START_TEST(header_layout)
{
	/* Fixed fields land at the offsets of proto/wire.md, big-endian. */
	struct relm_header h;
	struct relm_initial_ext ext;
	uint8_t out[HDR_MAX];

	memset(&h, 0, sizeof h);
	memset(&ext, 0, sizeof ext);
	h.version = 1;
	h.flags = RELM_ENV_F_INITIAL;
	memset(h.dh_pub, 0x11, 32);
	h.pn = 0x01020304;
	h.n = 0x05060708;
	memset(h.nonce, 0x22, 24);
	memset(ext.ipk, 0x33, 32);
	memset(ext.ek, 0x44, 32);
	ext.spk_id = 0x0a0b0c0d;
	ext.opk_id = 0xfffffffe;
	ck_assert_uint_eq(relm_header_encode(out, &h, &ext), 138);
	ck_assert_uint_eq(out[0], 1);
	ck_assert_uint_eq(out[1], 1);
	ck_assert_uint_eq(out[2], 0x11);
	ck_assert_uint_eq(out[33], 0x11);
	ck_assert_mem_eq(out + 34, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	ck_assert_uint_eq(out[42], 0x22);
	ck_assert_uint_eq(out[65], 0x22);
	ck_assert_uint_eq(out[66], 0x33);
	ck_assert_uint_eq(out[97], 0x33);
	ck_assert_uint_eq(out[98], 0x44);
	ck_assert_uint_eq(out[129], 0x44);
	ck_assert_mem_eq(out + 130, "\x0a\x0b\x0c\x0d\xff\xff\xff\xfe", 8);
	h.flags = 0;
	memset(out, 0, sizeof out);
	ck_assert_uint_eq(relm_header_encode(out, &h, NULL), 66);
	ck_assert_uint_eq(out[66], 0);
}
END_TEST

START_TEST(size_limits)
{
	struct relm_header h;
	struct relm_initial_ext ext;
	size_t kmax = (RELM_ENVELOPE_MAX - HDR_MAX - RELM_TAG_LEN) / RELM_PAD_BLOCK, len;

	/* The largest initial envelope fits; one more block does not. */
	rand_header(&h, &ext, 1);
	len = make_envelope(buf, &h, &ext, kmax);
	ck_assert_uint_le(len, RELM_ENVELOPE_MAX);
	ck_assert_int_eq(decode_untouched(buf, len), 0);
	len = make_envelope(buf, &h, &ext, kmax + 1);
	ck_assert_uint_gt(len, RELM_ENVELOPE_MAX);
	ck_assert_int_eq(decode_untouched(buf, len), RELM_ETOOBIG);
	/* Exactly one byte over the cap. */
	ck_assert_int_eq(decode_untouched(buf, RELM_ENVELOPE_MAX + 1), RELM_ETOOBIG);
	/* Same for a plain one. */
	kmax = (RELM_ENVELOPE_MAX - RELM_HEADER_LEN - RELM_TAG_LEN) / RELM_PAD_BLOCK;
	rand_header(&h, &ext, 0);
	len = make_envelope(buf, &h, &ext, kmax);
	ck_assert_int_eq(decode_untouched(buf, len), 0);
}
END_TEST

/* ---- each rejection rule ------------------------------------------------- */

START_TEST(rejects_version_and_flags)
{
	struct relm_header h;
	struct relm_initial_ext ext;
	size_t len;

	rand_header(&h, &ext, 0);
	len = make_envelope(buf, &h, &ext, 1);
	for (int v = 0; v < 256; v++) {
		if (v == 1)
			continue;
		buf[0] = (uint8_t)v;
		ck_assert_int_eq(decode_untouched(buf, len), RELM_EVERSION);
		ck_assert_int_eq(decode_untouched(buf, 1), RELM_EVERSION);
	}
	buf[0] = 1;
	for (int bit = 2; bit < 8; bit++) {
		buf[1] = (uint8_t)(1u << bit);
		ck_assert_int_eq(decode_untouched(buf, len), RELM_EMALFORMED);
		buf[1] = (uint8_t)(1u << bit | RELM_ENV_F_INITIAL);
		ck_assert_int_eq(decode_untouched(buf, len + RELM_INITIAL_EXT_LEN), RELM_EMALFORMED);
	}
}
END_TEST

/* 2^255 - 19 + 1 = p + 1: a non-canonical X25519 encoding */
static const uint8_t p_plus_1[32] = {
	0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
};

START_TEST(rejects_bad_keys)
{
	struct relm_header h;
	struct relm_initial_ext ext, ext2;
	size_t len;

	/* dh_pub: top bit set, or ≥ p */
	rand_header(&h, &ext, 1);
	h.dh_pub[31] |= 0x80;
	len = make_envelope(buf, &h, &ext, 1);
	ck_assert_int_eq(decode_untouched(buf, len), RELM_EBADKEY);
	memcpy(h.dh_pub, p_plus_1, 32);
	len = make_envelope(buf, &h, &ext, 1);
	ck_assert_int_eq(decode_untouched(buf, len), RELM_EBADKEY);

	/* ek non-canonical */
	rand_header(&h, &ext, 1);
	ext2 = ext;
	memcpy(ext2.ek, p_plus_1, 32);
	len = make_envelope(buf, &h, &ext2, 1);
	ck_assert_int_eq(decode_untouched(buf, len), RELM_EBADKEY);

	/* ipk: the identity point, all zero, a non-canonical y, and an X25519 key */
	ext2 = ext;
	memset(ext2.ipk, 0, 32);
	ext2.ipk[0] = 1;
	len = make_envelope(buf, &h, &ext2, 1);
	ck_assert_int_eq(decode_untouched(buf, len), RELM_EBADKEY);
	memset(ext2.ipk, 0, 32);
	len = make_envelope(buf, &h, &ext2, 1);
	ck_assert_int_eq(decode_untouched(buf, len), RELM_EBADKEY);
	memset(ext2.ipk, 0xff, 32);
	len = make_envelope(buf, &h, &ext2, 1);
	ck_assert_int_eq(decode_untouched(buf, len), RELM_EBADKEY);

	/* the same envelope with good keys decodes */
	len = make_envelope(buf, &h, &ext, 1);
	ck_assert_int_eq(decode_untouched(buf, len), 0);
}
END_TEST

/* decode_known skips the Ed25519 check only for the one key the caller
 * already trusts; every other key, and every other check, still applies. */
START_TEST(decode_known_checks_other_keys)
{
	struct relm_header h;
	struct relm_initial_ext ext, bad;
	struct relm_envelope e;
	uint8_t other[32];
	size_t len;

	rand_header(&h, &ext, 1);
	rand_ed25519_pub(other);
	/* a valid key: decodes whether or not it is the known one */
	len = make_envelope(buf, &h, &ext, 1);
	ck_assert_int_eq(relm_envelope_decode_known(&e, buf, len, ext.ipk), 0);
	ck_assert_mem_eq(e.ext.ipk, ext.ipk, 32);
	ck_assert_int_eq(relm_envelope_decode_known(&e, buf, len, other), 0);
	/* an invalid key that is not the known one is refused */
	bad = ext;
	memset(bad.ipk, 0, 32);
	bad.ipk[0] = 1;                         /* the identity point */
	len = make_envelope(buf, &h, &bad, 1);
	ck_assert_int_eq(relm_envelope_decode_known(&e, buf, len, other), RELM_EBADKEY);
	ck_assert_int_eq(relm_envelope_decode(&e, buf, len), RELM_EBADKEY);
	/* the ephemeral key and the ratchet key are checked even for the known ipk */
	bad = ext;
	memcpy(bad.ek, p_plus_1, 32);
	len = make_envelope(buf, &h, &bad, 1);
	ck_assert_int_eq(relm_envelope_decode_known(&e, buf, len, ext.ipk), RELM_EBADKEY);
	h.dh_pub[31] |= 0x80;
	len = make_envelope(buf, &h, &ext, 1);
	ck_assert_int_eq(relm_envelope_decode_known(&e, buf, len, ext.ipk), RELM_EBADKEY);
}
END_TEST

START_TEST(rejects_ciphertext_length)
{
	struct relm_header h;
	struct relm_initial_ext ext;
	size_t hl;

	for (int initial = 0; initial <= 1; initial++) {
		rand_header(&h, &ext, initial);
		hl = relm_header_encode(buf, &h, &ext);
		tu_rand_bytes(buf + hl, 4 * 64 + 16);
		/* shorter than one block + tag: truncated */
		for (size_t ct = 0; ct < 64 + 16; ct++)
			ck_assert_int_eq(decode_untouched(buf, hl + ct), RELM_ETRUNCATED);
		/* not k*64 + 16: malformed */
		for (size_t ct = 64 + 16; ct <= 4 * 64 + 16; ct++) {
			int want = (ct - 16) % 64 == 0 ? 0 : RELM_EMALFORMED;
			ck_assert_msg(decode_untouched(buf, hl + ct) == want, "ctlen %zu", ct);
		}
	}
}
END_TEST

START_TEST(rejects_every_truncation)
{
	struct relm_header h;
	struct relm_initial_ext ext;
	size_t len;

	for (int initial = 0; initial <= 1; initial++) {
		rand_header(&h, &ext, initial);
		len = make_envelope(buf, &h, &ext, 2);
		size_t hl = initial ? HDR_MAX : RELM_HEADER_LEN;
		for (size_t n = 0; n < len; n++) {
			int err = decode_untouched(buf, n);
			/* A cut at a block boundary is a well-formed shorter
			 * envelope (only the AEAD can tell); all others fail. */
			if (n == hl + 64 + 16) {
				ck_assert_int_eq(err, 0);
				continue;
			}
			ck_assert_msg(err == RELM_ETRUNCATED || err == RELM_EMALFORMED,
			              "prefix %zu of %zu: %d (" TU_SEED_FMT ")", n, len, err, TU_SEED_ARG);
		}
		/* Header cut short is always "truncated". */
		for (size_t n = 0; n < (initial ? HDR_MAX : RELM_HEADER_LEN); n++)
			ck_assert_int_eq(decode_untouched(buf, n), RELM_ETRUNCATED);
		ck_assert_int_eq(decode_untouched(buf, len), 0);
	}
}
END_TEST

START_TEST(random_garbage)
{
	/* Never crashes, never writes out on error, and whatever it accepts
	 * satisfies the documented invariants. */
	static uint8_t g[1200];

	for (size_t len = 0; len <= sizeof g; len++) {
		for (int r = 0; r < 4; r++) {
			struct relm_envelope e;
			int err;

			tu_rand_bytes(g, len);
			if (r >= 2 && len >= 2) {   /* get past the first checks */
				g[0] = 1;
				g[1] &= 1;
			}
			err = decode_untouched(g, len);
			ck_assert_msg(err == 0 || err == RELM_ETRUNCATED || err == RELM_EMALFORMED ||
			              err == RELM_EVERSION || err == RELM_EBADKEY,
			              "len %zu: %d (" TU_SEED_FMT ")", len, err, TU_SEED_ARG);
			if (err == 0) {
				relm_envelope_decode(&e, g, len);
				ck_assert(e.hdrlen + e.ctlen == len);
				ck_assert((e.ctlen - 16) % 64 == 0 && e.ctlen >= 80);
				ck_assert(relm_x25519_is_canonical(e.h.dh_pub));
			}
		}
	}
}
END_TEST

static Suite *envelope_suite(void)
{
	Suite *s = suite_create("envelope");
	TCase *tc;

	tc = tcase_create("round_trip");
	tcase_add_test(tc, round_trip_plain);
	tcase_add_test(tc, round_trip_initial);
	tcase_add_test(tc, header_layout);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_test(tc, size_limits);
	tcase_add_test(tc, rejects_ciphertext_length);
	suite_add_tcase(s, tc);

	tc = tcase_create("validation");
	tcase_add_test(tc, rejects_version_and_flags);
	tcase_add_test(tc, rejects_bad_keys);
	tcase_add_test(tc, decode_known_checks_other_keys);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_test(tc, rejects_every_truncation);
	tcase_add_test(tc, random_garbage);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	if (relm_crypto_init() != 0)
		return EXIT_FAILURE;
	sr = srunner_create(envelope_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

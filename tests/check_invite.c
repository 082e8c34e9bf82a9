/*
 * check_invite.c — invites (lib/wire/invite.h): a fixed vector (also in
 * proto/wire.md), round trips, each rejection rule on re-signed hand-built
 * invites, every truncation, random garbage, flip every byte.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "wire/invite.h"
#include "wire/addr.h"
#include "crypto/crypto.h"
#include "error.h"
#include "util_rand.h"

static void seq(uint8_t *b, size_t n, uint8_t start)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(start + i);
}

/* The worked example of proto/wire.md §9.1. */
static void vector_invite(struct relm_invite *inv, uint8_t sk[64])
{
	uint8_t seed[32], priv[32], mb_pk[32], mb_sk[64];
	struct relm_addr a;

	memset(inv, 0, sizeof *inv);
	inv->version = 1;
	inv->flags = RELM_INVITE_F_OPK;
	seq(seed, 32, 0x00);
	relm_sign_keypair_from_seed(inv->ipk, sk, seed);
	inv->spk_id = 1;
	seq(priv, 32, 0x20);
	relm_x25519_public(inv->spk, priv);
	inv->opk_id = 2;
	seq(priv, 32, 0x40);
	relm_x25519_public(inv->opk, priv);
	inv->expires_ms = UINT64_C(1767225600000);   /* 2026-01-01T00:00:00Z */
	seq(seed, 32, 0x60);
	relm_sign_keypair_from_seed(mb_pk, mb_sk, seed);
	memset(&a, 0, sizeof a);
	strcpy(a.host, "127.0.0.1");
	a.port = 7427;
	memcpy(a.id, mb_pk, 32);
	a.has_id = 1;
	ck_assert_int_gt(relm_addr_format(inv->mailbox, sizeof inv->mailbox, &a), 0);
}

static const char vector_text[] =
	"relm:AQEDoQe_884Qvh1w3RjnS8CZZ-TWMJulDV8d3IZkElUxuAAAAAE1gHLWNli"
	"A0a7qMprfkSE4OFHtIaKOO3XpZdDSzRZiVAAAAAJ5pjHu3hv5yY8SAyzerdDnoHk"
	"5j8eGuIzIRuyJr4WlGgAAAZt22qgAOjEyNy4wLjAuMTo3NDI3L0YwVlR0RmJkMzh"
	"hUWpzcXh3UUgtYXJJZUs2b0dGM2xiZlVPbU5JS1pQOVWjN4nqtmmXOYsIJWC33kb"
	"EPm158rV90DL-NMf2avp7M2q3ypFbAbZosLJUvh0tDNN_bXJI391uj8ob_CV9wnQ"
	"L";

static void rand_invite(struct relm_invite *inv, uint8_t sk[64], int opk, int multi)
{
	uint8_t seed[32], priv[32];
	size_t mlen = 1 + tu_rand_below(RELM_MAILBOX_ADDR_MAX);

	memset(inv, 0, sizeof *inv);
	inv->version = 1;
	inv->flags = (uint8_t)((opk ? RELM_INVITE_F_OPK : 0) | (multi ? RELM_INVITE_F_MULTI : 0));
	tu_rand_bytes(seed, 32);
	relm_sign_keypair_from_seed(inv->ipk, sk, seed);
	inv->spk_id = (uint32_t)tu_rand64();
	tu_rand_bytes(priv, 32);
	relm_x25519_public(inv->spk, priv);
	if (opk) {
		inv->opk_id = (uint32_t)tu_rand64();
		tu_rand_bytes(priv, 32);
		relm_x25519_public(inv->opk, priv);
	}
	inv->expires_ms = tu_rand64();
	for (size_t i = 0; i < mlen; i++)
		inv->mailbox[i] = (char)(0x21 + tu_rand_below(0x7f - 0x21));
}

static int good_text(char *out, size_t cap, struct relm_invite *inv, const uint8_t sk[64])
{
	int n;

	ck_assert_int_eq(relm_invite_sign(inv, sk), 0);
	n = relm_invite_encode(out, cap, inv);
	ck_assert_int_gt(n, 0);
	return n;
}

/* Decode, and check that out is untouched on error. */
static int decode_untouched(struct relm_invite *out, const char *text, size_t len)
{
	struct relm_invite sentinel;
	int err;

	memset(out, 0xa5, sizeof *out);
	memset(&sentinel, 0xa5, sizeof sentinel);
	err = relm_invite_decode(out, text, len);
	if (err != 0)
		ck_assert_msg(memcmp(out, &sentinel, sizeof sentinel) == 0, "out written on error %d", err);
	return err;
}

/* base64url of bin with the prefix. */
static void to_text(char *out, size_t cap, const uint8_t *bin, size_t len)
{
	ck_assert_uint_ge(cap, 5 + sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING));
	memcpy(out, "relm:", 5);
	sodium_bin2base64(out + 5, cap - 5, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* Decode a good text form to binary. */
static size_t to_bin(uint8_t *bin, size_t cap, const char *text)
{
	size_t len = 0;

	ck_assert_int_eq(sodium_base642bin(bin, cap, text + 5, strlen(text + 5), NULL, &len, NULL,
	                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
	return len;
}

/* Replace the signature of a hand-edited binary invite (body = all but
 * the last 64 bytes) with a fresh one, then encode. */
static void resign(char *out, size_t cap, uint8_t *bin, size_t len, const uint8_t sk[64])
{
	uint8_t msg[14 + 600];

	ck_assert_uint_le(len - 64, 600);
	memcpy(msg, "relm/v1/invite", 14);
	memcpy(msg + 14, bin, len - 64);
	crypto_sign_detached(bin + len - 64, NULL, msg, 14 + len - 64, sk);
	to_text(out, cap, bin, len);
}

/* ---- vector -------------------------------------------------------------- */

START_TEST(fixed_vector)
{
	struct relm_invite inv, back;
	uint8_t sk[64];
	char text[RELM_INVITE_TEXT_MAX];
	int n;

	vector_invite(&inv, sk);
	n = good_text(text, sizeof text, &inv, sk);
	ck_assert_str_eq(text, vector_text);
	ck_assert_int_eq((int)strlen(text), n);
	ck_assert_int_eq(decode_untouched(&back, vector_text, strlen(vector_text)), 0);
	ck_assert_mem_eq(&back, &inv, sizeof inv);
}
END_TEST

/* ---- round trips --------------------------------------------------------- */

START_TEST(round_trips)
{
	for (int i = 0; i < 200; i++) {
		struct relm_invite inv, back;
		uint8_t sk[64];
		char text[RELM_INVITE_TEXT_MAX];
		int n;

		rand_invite(&inv, sk, i & 1, (i >> 1) & 1);
		n = good_text(text, sizeof text, &inv, sk);
		ck_assert_int_lt(n, RELM_INVITE_TEXT_MAX);
		ck_assert_msg(decode_untouched(&back, text, (size_t)n) == 0,
		              "round trip %d (" TU_SEED_FMT ")", i, TU_SEED_ARG);
		if (!(inv.flags & RELM_INVITE_F_OPK)) {
			ck_assert_uint_eq(back.opk_id, 0);
			memset(back.opk, 0, 32);
		}
		ck_assert_msg(memcmp(&back, &inv, sizeof inv) == 0, "fields differ (" TU_SEED_FMT ")",
		              TU_SEED_ARG);
	}
}
END_TEST

START_TEST(longest_fits)
{
	struct relm_invite inv, back;
	uint8_t sk[64];
	char text[RELM_INVITE_TEXT_MAX];
	int n;

	rand_invite(&inv, sk, 1, 1);
	memset(inv.mailbox, 'm', RELM_MAILBOX_ADDR_MAX);
	inv.mailbox[RELM_MAILBOX_ADDR_MAX] = '\0';
	n = good_text(text, sizeof text, &inv, sk);
	ck_assert_int_eq(n, 5 + 579);           /* 434 bytes of binary */
	ck_assert_int_eq(decode_untouched(&back, text, (size_t)n), 0);
	/* Too small a buffer: EINVAL, for every size short of n + 1. */
	for (size_t cap = 0; cap <= (size_t)n; cap++)
		ck_assert_int_eq(relm_invite_encode(text, cap, &inv), RELM_EINVAL);
}
END_TEST

START_TEST(whitespace_trimmed)
{
	struct relm_invite inv, back;
	uint8_t sk[64];
	char text[RELM_INVITE_TEXT_MAX], padded[RELM_INVITE_TEXT_MAX + 16];

	rand_invite(&inv, sk, 0, 0);
	good_text(text, sizeof text, &inv, sk);
	snprintf(padded, sizeof padded, " \t\r\n%s\r\n ", text);
	ck_assert_int_eq(decode_untouched(&back, padded, strlen(padded)), 0);
	ck_assert_mem_eq(&back, &inv, sizeof inv);
	/* but not inside */
	snprintf(padded, sizeof padded, "relm: %s", text + 5);
	ck_assert_int_eq(decode_untouched(&back, padded, strlen(padded)), RELM_EMALFORMED);
}
END_TEST

/* ---- signing rules ------------------------------------------------------- */

START_TEST(sign_rejects)
{
	struct relm_invite inv, bad;
	uint8_t sk[64], sk2[64], pk2[32], seed[32] = { 9 };
	char text[RELM_INVITE_TEXT_MAX];

	rand_invite(&inv, sk, 1, 0);
	relm_sign_keypair_from_seed(pk2, sk2, seed);
	ck_assert_int_eq(relm_invite_sign(&inv, sk2), RELM_EINVAL);    /* not the IPK's key */
	bad = inv;
	bad.version = 2;
	ck_assert_int_eq(relm_invite_sign(&bad, sk), RELM_EINVAL);
	ck_assert_int_eq(relm_invite_encode(text, sizeof text, &bad), RELM_EINVAL);
	bad = inv;
	bad.flags = 0x04;
	ck_assert_int_eq(relm_invite_sign(&bad, sk), RELM_EINVAL);
	bad = inv;
	bad.mailbox[0] = '\0';
	ck_assert_int_eq(relm_invite_sign(&bad, sk), RELM_EINVAL);
	bad = inv;
	strcpy(bad.mailbox, "host :1");
	ck_assert_int_eq(relm_invite_sign(&bad, sk), RELM_EINVAL);
	bad = inv;
	memset(bad.mailbox, 'x', sizeof bad.mailbox);                   /* no NUL */
	ck_assert_int_eq(relm_invite_encode(text, sizeof text, &bad), RELM_EINVAL);
	bad = inv;
	memset(bad.spk, 0xff, 32);
	ck_assert_int_eq(relm_invite_sign(&bad, sk), RELM_EINVAL);
	bad = inv;
	memset(bad.opk, 0xff, 32);
	ck_assert_int_eq(relm_invite_sign(&bad, sk), RELM_EINVAL);
	bad.flags = 0;                                                  /* opk ignored then */
	ck_assert_int_eq(relm_invite_sign(&bad, sk), 0);
}
END_TEST

/* ---- decoding rules on hand-built invites --------------------------------- */

START_TEST(rejects_prefix_and_base64)
{
	struct relm_invite inv, back;
	uint8_t sk[64];
	char text[RELM_INVITE_TEXT_MAX], t2[RELM_INVITE_TEXT_MAX + 8];
	int n;

	rand_invite(&inv, sk, 1, 0);
	n = good_text(text, sizeof text, &inv, sk);
	memcpy(t2, text, (size_t)n + 1);
	t2[0] = 'R';
	ck_assert_int_eq(decode_untouched(&back, t2, (size_t)n), RELM_EMALFORMED);
	memcpy(t2, "relm;", 5);
	ck_assert_int_eq(decode_untouched(&back, t2, (size_t)n), RELM_EMALFORMED);
	ck_assert_int_eq(decode_untouched(&back, "", 0), RELM_ETRUNCATED);
	ck_assert_int_eq(decode_untouched(&back, "relm", 4), RELM_ETRUNCATED);
	ck_assert_int_eq(decode_untouched(&back, "xyz", 3), RELM_EMALFORMED);
	ck_assert_int_eq(decode_untouched(&back, "relm:", 5), RELM_ETRUNCATED);
	/* standard base64 characters and padding are not base64url */
	memcpy(t2, text, (size_t)n + 1);
	t2[10] = '+';
	ck_assert_int_eq(decode_untouched(&back, t2, (size_t)n), RELM_EMALFORMED);
	t2[10] = '/';
	ck_assert_int_eq(decode_untouched(&back, t2, (size_t)n), RELM_EMALFORMED);
	memcpy(t2, text, (size_t)n);
	memcpy(t2 + n, "==", 3);
	ck_assert_int_eq(decode_untouched(&back, t2, (size_t)n + 2), RELM_EMALFORMED);
	/* an embedded NUL */
	memcpy(t2, text, (size_t)n + 1);
	t2[20] = '\0';
	ck_assert_int_eq(decode_untouched(&back, t2, (size_t)n), RELM_EMALFORMED);
	/* too long */
	{
		char big[800];
		memset(big, 'A', sizeof big);
		memcpy(big, "relm:", 5);
		ck_assert_int_eq(decode_untouched(&back, big, sizeof big), RELM_EMALFORMED);
	}
}
END_TEST

START_TEST(rejects_fields)
{
	struct relm_invite inv, back;
	uint8_t sk[64], bin[600], b2[600];
	char text[RELM_INVITE_TEXT_MAX], t2[RELM_INVITE_TEXT_MAX + 100];
	size_t len;
	size_t mpos;   /* offset of mailbox_len */

	rand_invite(&inv, sk, 1, 0);
	strcpy(inv.mailbox, "example.org:7427");
	good_text(text, sizeof text, &inv, sk);
	len = to_bin(bin, sizeof bin, text);
	mpos = 1 + 1 + 32 + 4 + 32 + 36 + 8;
	ck_assert_uint_eq(bin[mpos], 16);
	ck_assert_uint_eq(len, mpos + 1 + 16 + 64);

	/* re-signing the untouched body gives a valid invite (control) */
	memcpy(b2, bin, len);
	resign(t2, sizeof t2, b2, len, sk);
	ck_assert_int_eq(decode_untouched(&back, t2, strlen(t2)), 0);

	/* version */
	for (int v = 0; v < 256; v += 1) {
		if (v == 1)
			continue;
		memcpy(b2, bin, len);
		b2[0] = (uint8_t)v;
		resign(t2, sizeof t2, b2, len, sk);
		ck_assert_int_eq(decode_untouched(&back, t2, strlen(t2)), RELM_EVERSION);
	}
	/* unknown flag bits */
	for (int bit = 2; bit < 8; bit++) {
		memcpy(b2, bin, len);
		b2[1] |= (uint8_t)(1u << bit);
		resign(t2, sizeof t2, b2, len, sk);
		ck_assert_int_eq(decode_untouched(&back, t2, strlen(t2)), RELM_EMALFORMED);
	}
	/* non-canonical spk, non-canonical opk, invalid ipk */
	memcpy(b2, bin, len);
	memset(b2 + 38, 0xff, 32);
	resign(t2, sizeof t2, b2, len, sk);
	ck_assert_int_eq(decode_untouched(&back, t2, strlen(t2)), RELM_EBADKEY);
	memcpy(b2, bin, len);
	memset(b2 + 74, 0xff, 32);
	resign(t2, sizeof t2, b2, len, sk);
	ck_assert_int_eq(decode_untouched(&back, t2, strlen(t2)), RELM_EBADKEY);
	memcpy(b2, bin, len);
	memset(b2 + 2, 0, 32);
	b2[2] = 1;                                     /* the identity point */
	resign(t2, sizeof t2, b2, len, sk);
	ck_assert_int_eq(decode_untouched(&back, t2, strlen(t2)), RELM_EBADKEY);
	/* mailbox: empty, NUL, control, space, DEL, high bit */
	{
		static const uint8_t badc[] = { 0x00, 0x01, 0x0a, 0x20, 0x7f, 0x80, 0xff };
		for (size_t i = 0; i < sizeof badc; i++) {
			memcpy(b2, bin, len);
			b2[mpos + 1 + 3] = badc[i];
			resign(t2, sizeof t2, b2, len, sk);
			ck_assert_msg(decode_untouched(&back, t2, strlen(t2)) == RELM_EMALFORMED,
			              "mailbox byte 0x%02x accepted", badc[i]);
		}
		/* mailbox_len 0: the mailbox bytes then read as signature */
		memcpy(b2, bin, mpos);
		b2[mpos] = 0;
		memcpy(b2 + mpos + 1, bin + mpos + 1 + 16, 64);
		resign(t2, sizeof t2, b2, mpos + 1 + 64, sk);
		ck_assert_int_eq(decode_untouched(&back, t2, strlen(t2)), RELM_EMALFORMED);
	}
	/* mailbox_len longer than what follows */
	memcpy(b2, bin, len);
	b2[mpos] = 200;
	resign(t2, sizeof t2, b2, len, sk);
	ck_assert_int_eq(decode_untouched(&back, t2, strlen(t2)), RELM_ETRUNCATED);
	/* trailing bytes after sig (sig still valid over the body) */
	for (size_t extra = 1; extra <= 3; extra++) {
		memcpy(b2, bin, len);
		memset(b2 + len, 0, extra);
		to_text(t2, sizeof t2, b2, len + extra);
		ck_assert_int_eq(decode_untouched(&back, t2, strlen(t2)), RELM_EMALFORMED);
	}
	/* signature by another key, or over other bytes */
	{
		uint8_t sk2[64], pk2[32], seed[32] = { 7 };
		relm_sign_keypair_from_seed(pk2, sk2, seed);
		memcpy(b2, bin, len);
		resign(t2, sizeof t2, b2, len, sk2);
		ck_assert_int_eq(decode_untouched(&back, t2, strlen(t2)), RELM_EBADSIG);
		memcpy(b2, bin, len);
		b2[len - 1] ^= 0x01;
		to_text(t2, sizeof t2, b2, len);
		ck_assert_int_eq(decode_untouched(&back, t2, strlen(t2)), RELM_EBADSIG);
		/* without the domain label */
		memcpy(b2, bin, len);
		crypto_sign_detached(b2 + len - 64, NULL, b2, len - 64, sk);
		to_text(t2, sizeof t2, b2, len);
		ck_assert_int_eq(decode_untouched(&back, t2, strlen(t2)), RELM_EBADSIG);
	}
}
END_TEST

/* ---- hostile input ------------------------------------------------------- */

START_TEST(every_truncation)
{
	for (int opk = 0; opk <= 1; opk++) {
		struct relm_invite inv, back;
		uint8_t sk[64], bin[600];
		char text[RELM_INVITE_TEXT_MAX], t2[RELM_INVITE_TEXT_MAX + 100];
		int n;
		size_t len;

		rand_invite(&inv, sk, opk, 0);
		n = good_text(text, sizeof text, &inv, sk);
		/* every prefix of the text */
		for (int k = 0; k < n; k++) {
			int err = decode_untouched(&back, text, (size_t)k);
			ck_assert_msg(err == RELM_ETRUNCATED || err == RELM_EMALFORMED,
			              "text prefix %d: %d (" TU_SEED_FMT ")", k, err, TU_SEED_ARG);
		}
		/* every prefix of the binary, re-encoded: cleanly truncated */
		len = to_bin(bin, sizeof bin, text);
		for (size_t k = 0; k < len; k++) {
			int err;
			to_text(t2, sizeof t2, bin, k);
			err = decode_untouched(&back, t2, strlen(t2));
			ck_assert_msg(err == RELM_ETRUNCATED,
			              "binary prefix %zu: %d (" TU_SEED_FMT ")", k, err, TU_SEED_ARG);
		}
	}
}
END_TEST

START_TEST(random_garbage)
{
	struct relm_invite back;
	char t[RELM_INVITE_TEXT_MAX + 100];
	uint8_t bin[600];

	for (size_t len = 0; len <= 600; len++) {
		/* raw bytes */
		tu_rand_bytes((uint8_t *)t, len);
		ck_assert_int_lt(decode_untouched(&back, t, len), 0);
		/* "relm:" + base64 of random bytes, with a valid version byte */
		if (len <= 440) {
			int err;
			tu_rand_bytes(bin, len);
			if (len > 0)
				bin[0] = 1;
			if (len > 1)
				bin[1] &= 3;
			to_text(t, sizeof t, bin, len);
			err = decode_untouched(&back, t, strlen(t));
			ck_assert_msg(err < 0, "garbage of %zu accepted (" TU_SEED_FMT ")", len, TU_SEED_ARG);
		}
	}
}
END_TEST

START_TEST(flip_every_byte)
{
	struct relm_invite inv, back;
	uint8_t sk[64];
	char text[RELM_INVITE_TEXT_MAX], t2[RELM_INVITE_TEXT_MAX];
	static const uint8_t masks[] = { 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff };
	int n;

	for (int opk = 0; opk <= 1; opk++) {
		rand_invite(&inv, sk, opk, opk);
		n = good_text(text, sizeof text, &inv, sk);
		for (int i = 0; i < n; i++) {
			for (size_t m = 0; m < sizeof masks; m++) {
				int err;
				memcpy(t2, text, (size_t)n + 1);
				t2[i] = (char)(t2[i] ^ masks[m]);
				err = decode_untouched(&back, t2, (size_t)n);
				/* The last character may flip to trimmed whitespace:
				 * that still loses bits and must fail. */
				ck_assert_msg(err < 0, "flip 0x%02x at %d accepted (" TU_SEED_FMT ")",
				              masks[m], i, TU_SEED_ARG);
			}
		}
	}
}
END_TEST

static Suite *invite_suite(void)
{
	Suite *s = suite_create("invite");
	TCase *tc;

	tc = tcase_create("vector");
	tcase_add_test(tc, fixed_vector);
	suite_add_tcase(s, tc);

	tc = tcase_create("round_trip");
	tcase_add_test(tc, round_trips);
	tcase_add_test(tc, longest_fits);
	tcase_add_test(tc, whitespace_trimmed);
	suite_add_tcase(s, tc);

	tc = tcase_create("sign");
	tcase_add_test(tc, sign_rejects);
	suite_add_tcase(s, tc);

	tc = tcase_create("validation");
	tcase_add_test(tc, rejects_prefix_and_base64);
	tcase_add_test(tc, rejects_fields);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_test(tc, every_truncation);
	tcase_add_test(tc, random_garbage);
	tcase_add_test(tc, flip_every_byte);
	tcase_set_timeout(tc, 20);
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
	sr = srunner_create(invite_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

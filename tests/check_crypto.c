/*
 * check_crypto.c — the primitives of proto/wire.md §2 (lib/crypto/crypto.h): HKDF against
 * RFC 5869, KDF_RK/KDF_CK against their definitions, AEAD round trip and
 * tamper, DH key checks, hex.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "crypto/crypto.h"
#include "crypto/ct.h"
#include "error.h"
#include "util_rand.h"

/* ---- HKDF: RFC 5869 Appendix A, test cases 1-3 (SHA-256) ----------------- */

START_TEST(hkdf_rfc5869_case1)
{
	uint8_t ikm[22], salt[13], info[10], okm[42], want[42];

	tu_unhex(ikm, sizeof ikm, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
	tu_unhex(salt, sizeof salt, "000102030405060708090a0b0c");
	tu_unhex(info, sizeof info, "f0f1f2f3f4f5f6f7f8f9");
	tu_unhex(want, sizeof want,
	         "3cb25f25faacd57a90434f64d0362f2a"
	         "2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
	         "34007208d5b887185865");
	ck_assert_int_eq(relm_hkdf(okm, sizeof okm, salt, sizeof salt, ikm, sizeof ikm,
	                           info, sizeof info), 0);
	ck_assert_mem_eq(okm, want, sizeof want);
}
END_TEST

START_TEST(hkdf_rfc5869_case2)
{
	uint8_t ikm[80], salt[80], info[80], okm[82], want[82];

	tu_unhex(ikm, sizeof ikm,
	         "000102030405060708090a0b0c0d0e0f"
	         "101112131415161718191a1b1c1d1e1f"
	         "202122232425262728292a2b2c2d2e2f"
	         "303132333435363738393a3b3c3d3e3f"
	         "404142434445464748494a4b4c4d4e4f");
	tu_unhex(salt, sizeof salt,
	         "606162636465666768696a6b6c6d6e6f"
	         "707172737475767778797a7b7c7d7e7f"
	         "808182838485868788898a8b8c8d8e8f"
	         "909192939495969798999a9b9c9d9e9f"
	         "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
	tu_unhex(info, sizeof info,
	         "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	         "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
	         "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
	         "e0e1e2e3e4e5e6e7e8e9eaebecedeeef"
	         "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
	tu_unhex(want, sizeof want,
	         "b11e398dc80327a1c8e7f78c596a4934"
	         "4f012eda2d4efad8a050cc4c19afa97c"
	         "59045a99cac7827271cb41c65e590e09"
	         "da3275600c2f09b8367793a9aca3db71"
	         "cc30c58179ec3e87c14c01d5c1f3434f"
	         "1d87");
	ck_assert_int_eq(relm_hkdf(okm, sizeof okm, salt, sizeof salt, ikm, sizeof ikm,
	                           info, sizeof info), 0);
	ck_assert_mem_eq(okm, want, sizeof want);
}
END_TEST

START_TEST(hkdf_rfc5869_case3)
{
	uint8_t ikm[22], okm[42], want[42], okm2[42];

	tu_unhex(ikm, sizeof ikm, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
	tu_unhex(want, sizeof want,
	         "8da4e775a563c18f715f802a063c5a31"
	         "b8a11f5c5ee1879ec3454e5f3c738d2d"
	         "9d201395faa4b61a96c8");
	/* salt and info empty: NULL salt means HashLen zero bytes. */
	ck_assert_int_eq(relm_hkdf(okm, sizeof okm, NULL, 0, ikm, sizeof ikm, NULL, 0), 0);
	ck_assert_mem_eq(okm, want, sizeof want);
	{
		static const uint8_t zeros[32];
		ck_assert_int_eq(relm_hkdf(okm2, sizeof okm2, zeros, sizeof zeros, ikm, sizeof ikm,
		                           NULL, 0), 0);
		ck_assert_mem_eq(okm2, want, sizeof want);
	}
}
END_TEST

START_TEST(hkdf_length_limit)
{
	static uint8_t big[255 * 32 + 1];
	uint8_t ikm[32] = { 1 };

	memset(big, 0xa5, sizeof big);
	ck_assert_int_eq(relm_hkdf(big, sizeof big, NULL, 0, ikm, sizeof ikm, NULL, 0), RELM_EINVAL);
	ck_assert_uint_eq(big[0], 0xa5);      /* untouched */
	ck_assert_int_eq(relm_hkdf(big, sizeof big - 1, NULL, 0, ikm, sizeof ikm, NULL, 0), 0);
	/* A prefix of a longer output equals the shorter output. */
	{
		uint8_t shorter[45];
		relm_hkdf(shorter, sizeof shorter, NULL, 0, ikm, sizeof ikm, NULL, 0);
		ck_assert_mem_eq(shorter, big, sizeof shorter);
	}
}
END_TEST

/* ---- KDF_RK / KDF_CK ----------------------------------------------------- */

START_TEST(kdf_rk_definition)
{
	uint8_t rk[32], dh[32], rk2[32], ck2[32], okm[64];

	for (int i = 0; i < 32; i++) {
		tu_rand_bytes(rk, sizeof rk);
		tu_rand_bytes(dh, sizeof dh);
		relm_kdf_rk(rk2, ck2, rk, dh);
		/* HKDF(salt = rk, ikm = dh, info = "relm/v1/root", 64) = rk' ‖ ck */
		relm_hkdf(okm, sizeof okm, rk, 32, dh, 32, (const uint8_t *)"relm/v1/root", 12);
		ck_assert_msg(memcmp(rk2, okm, 32) == 0 && memcmp(ck2, okm + 32, 32) == 0,
		              "KDF_RK differs from its definition (" TU_SEED_FMT ")", TU_SEED_ARG);
		ck_assert_msg(memcmp(rk2, ck2, 32) != 0, "rk == ck (" TU_SEED_FMT ")", TU_SEED_ARG);
	}
}
END_TEST

START_TEST(kdf_rk_deterministic_and_distinct)
{
	uint8_t rk[32], dh[32], a_rk[32], a_ck[32], b_rk[32], b_ck[32];

	tu_rand_bytes(rk, sizeof rk);
	tu_rand_bytes(dh, sizeof dh);
	relm_kdf_rk(a_rk, a_ck, rk, dh);
	relm_kdf_rk(b_rk, b_ck, rk, dh);
	ck_assert_mem_eq(a_rk, b_rk, 32);
	ck_assert_mem_eq(a_ck, b_ck, 32);
	/* Any change to rk or dh changes both outputs. */
	for (int i = 0; i < 64; i++) {
		uint8_t r2[32], d2[32];
		memcpy(r2, rk, 32);
		memcpy(d2, dh, 32);
		if (i < 32)
			r2[i] ^= 1;
		else
			d2[i - 32] ^= 1;
		relm_kdf_rk(b_rk, b_ck, r2, d2);
		ck_assert_msg(memcmp(a_rk, b_rk, 32) != 0 && memcmp(a_ck, b_ck, 32) != 0,
		              "bit %d did not change KDF_RK (" TU_SEED_FMT ")", i, TU_SEED_ARG);
	}
	/* rk_out may alias rk. */
	memcpy(b_rk, rk, 32);
	relm_kdf_rk(b_rk, b_ck, b_rk, dh);
	ck_assert_mem_eq(b_rk, a_rk, 32);
	ck_assert_mem_eq(b_ck, a_ck, 32);
}
END_TEST

START_TEST(kdf_ck_definition)
{
	uint8_t ck[32], mk[32], ck2[32], want_mk[32], want_ck[32], mk_b[32], ck_b[32];
	static const uint8_t one = 1, two = 2;

	tu_rand_bytes(ck, sizeof ck);
	relm_kdf_ck(mk, ck2, ck);
	crypto_auth_hmacsha256(want_mk, &one, 1, ck);
	crypto_auth_hmacsha256(want_ck, &two, 1, ck);
	ck_assert_mem_eq(mk, want_mk, 32);
	ck_assert_mem_eq(ck2, want_ck, 32);
	ck_assert(memcmp(mk, ck2, 32) != 0);
	ck_assert(memcmp(ck2, ck, 32) != 0);
	/* deterministic, and ck_out may alias ck */
	relm_kdf_ck(mk_b, ck, ck);
	ck_assert_mem_eq(mk_b, mk, 32);
	ck_assert_mem_eq(ck, ck2, 32);
	/* a chain of 100 steps never repeats a message key */
	{
		uint8_t seen[100][32];
		for (int i = 0; i < 100; i++) {
			relm_kdf_ck(seen[i], ck_b, ck);
			memcpy(ck, ck_b, 32);
			for (int j = 0; j < i; j++)
				ck_assert(memcmp(seen[i], seen[j], 32) != 0);
		}
	}
}
END_TEST

/* ---- AEAD ---------------------------------------------------------------- */

START_TEST(aead_round_trip)
{
	uint8_t key[32], nonce[24], ad[80], pt[300], ct[300 + 16], back[300];

	for (size_t len = 0; len <= sizeof pt; len += 37) {
		tu_rand_bytes(key, sizeof key);
		tu_rand_bytes(nonce, sizeof nonce);
		tu_rand_bytes(ad, sizeof ad);
		tu_rand_bytes(pt, len);
		relm_aead_seal(ct, pt, len, ad, sizeof ad, nonce, key);
		ck_assert_msg(relm_aead_open(back, ct, len + 16, ad, sizeof ad, nonce, key) == 0,
		              "len %zu (" TU_SEED_FMT ")", len, TU_SEED_ARG);
		ck_assert_mem_eq(back, pt, len);
	}
	ck_assert_int_eq(relm_aead_open(back, ct, 15, ad, sizeof ad, nonce, key), RELM_EAUTH);
}
END_TEST

START_TEST(aead_tamper)
{
	uint8_t key[32], nonce[24], ad[40], pt[64], ct[64 + 16], back[64];

	tu_rand_bytes(key, sizeof key);
	tu_rand_bytes(nonce, sizeof nonce);
	tu_rand_bytes(ad, sizeof ad);
	tu_rand_bytes(pt, sizeof pt);
	relm_aead_seal(ct, pt, sizeof pt, ad, sizeof ad, nonce, key);
	for (size_t i = 0; i < sizeof ct; i++) {
		uint8_t bad[sizeof ct];
		memcpy(bad, ct, sizeof ct);
		bad[i] ^= (uint8_t)(1 + tu_rand_below(255));
		memset(back, 0xee, sizeof back);
		ck_assert_msg(relm_aead_open(back, bad, sizeof bad, ad, sizeof ad, nonce, key) == RELM_EAUTH,
		              "ct byte %zu (" TU_SEED_FMT ")", i, TU_SEED_ARG);
		for (size_t k = 0; k < sizeof back; k++)
			ck_assert_msg(back[k] == 0, "pt not wiped after failure");
	}
	for (size_t i = 0; i < sizeof ad; i++) {
		ad[i] ^= 0x01;
		ck_assert_int_eq(relm_aead_open(back, ct, sizeof ct, ad, sizeof ad, nonce, key), RELM_EAUTH);
		ad[i] ^= 0x01;
	}
	for (size_t i = 0; i < sizeof nonce; i++) {
		nonce[i] ^= 0x80;
		ck_assert_int_eq(relm_aead_open(back, ct, sizeof ct, ad, sizeof ad, nonce, key), RELM_EAUTH);
		nonce[i] ^= 0x80;
	}
	key[7] ^= 0x10;
	ck_assert_int_eq(relm_aead_open(back, ct, sizeof ct, ad, sizeof ad, nonce, key), RELM_EAUTH);
	key[7] ^= 0x10;
	ck_assert_int_eq(relm_aead_open(back, ct, sizeof ct, ad, sizeof ad - 1, nonce, key), RELM_EAUTH);
	ck_assert_int_eq(relm_aead_open(back, ct, sizeof ct, ad, sizeof ad, nonce, key), 0);
	ck_assert_mem_eq(back, pt, sizeof pt);
}
END_TEST

/* ---- DH ------------------------------------------------------------------ */

START_TEST(dh_agrees)
{
	uint8_t a[32], b[32], A[32], B[32], ab[32], ba[32];

	for (int i = 0; i < 16; i++) {
		tu_rand_bytes(a, 32);
		tu_rand_bytes(b, 32);
		relm_x25519_public(A, a);
		relm_x25519_public(B, b);
		ck_assert_int_eq(relm_dh(ab, a, B), 0);
		ck_assert_int_eq(relm_dh(ba, b, A), 0);
		ck_assert_msg(memcmp(ab, ba, 32) == 0, "DH mismatch (" TU_SEED_FMT ")", TU_SEED_ARG);
	}
}
END_TEST

/* Points of small order (the all-zero point, u = 1, the two order-8 points
 * and p - 1) and non-canonical encodings (u ≥ p, top bit set). */
static const char *const low_order_hex[] = {
	"0000000000000000000000000000000000000000000000000000000000000000",
	"0100000000000000000000000000000000000000000000000000000000000000",
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
};
static const char *const noncanonical_hex[] = {
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", /* p */
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", /* p + 1 */
	"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", /* 2^255 - 1 */
	"0900000000000000000000000000000000000000000000000000000000000080", /* 9, top bit */
	"0000000000000000000000000000000000000000000000000000000000000080", /* 0, top bit */
};

START_TEST(dh_rejects_low_order)
{
	uint8_t priv[32], pub[32], out[32];

	for (size_t i = 0; i < sizeof low_order_hex / sizeof low_order_hex[0]; i++) {
		tu_unhex(pub, 32, low_order_hex[i]);
		ck_assert_msg(relm_x25519_is_canonical(pub), "point %zu should be canonical", i);
		for (int k = 0; k < 8; k++) {
			tu_rand_bytes(priv, 32);
			memset(out, 0x5a, sizeof out);
			ck_assert_msg(relm_dh(out, priv, pub) == RELM_EBADKEY,
			              "low-order point %zu accepted (" TU_SEED_FMT ")", i, TU_SEED_ARG);
			for (int j = 0; j < 32; j++)
				ck_assert_msg(out[j] == 0x5a, "out written on failure");
		}
	}
}
END_TEST

START_TEST(dh_rejects_noncanonical)
{
	uint8_t priv[32], pub[32], out[32];

	tu_rand_bytes(priv, 32);
	for (size_t i = 0; i < sizeof noncanonical_hex / sizeof noncanonical_hex[0]; i++) {
		tu_unhex(pub, 32, noncanonical_hex[i]);
		ck_assert_msg(!relm_x25519_is_canonical(pub), "point %zu should be non-canonical", i);
		memset(out, 0x5a, sizeof out);
		ck_assert_int_eq(relm_dh(out, priv, pub), RELM_EBADKEY);
		ck_assert_uint_eq(out[0], 0x5a);
	}
	/* A valid public key with the top bit set is rejected, the same key
	 * without it works. */
	relm_x25519_public(pub, priv);
	ck_assert_int_eq(relm_dh(out, priv, pub), 0);
	pub[31] |= 0x80;
	ck_assert_int_eq(relm_dh(out, priv, pub), RELM_EBADKEY);
}
END_TEST

START_TEST(ed25519_checks)
{
	uint8_t seed[32], pk[32], sk[64], x_pk[32], x_sk[32], x_pub[32];

	tu_rand_bytes(seed, sizeof seed);
	relm_sign_keypair_from_seed(pk, sk, seed);
	ck_assert(relm_ed25519_is_valid(pk));
	ck_assert_int_eq(relm_ed25519_pk_to_x25519(x_pk, pk), 0);
	ck_assert_int_eq(relm_ed25519_sk_to_x25519(x_sk, sk), 0);
	relm_x25519_public(x_pub, x_sk);
	ck_assert_mem_eq(x_pub, x_pk, 32);
	/* identity point (y = 1) and an all-zero encoding are not valid IPKs */
	memset(pk, 0, sizeof pk);
	ck_assert(!relm_ed25519_is_valid(pk));
	pk[0] = 1;
	ck_assert(!relm_ed25519_is_valid(pk));
	memset(x_pk, 0x77, sizeof x_pk);
	ck_assert_int_eq(relm_ed25519_pk_to_x25519(x_pk, pk), RELM_EBADKEY);
	ck_assert_uint_eq(x_pk[0], 0x77);
}
END_TEST

/* ---- node_id ------------------------------------------------------------- */

START_TEST(node_id_definition)
{
	uint8_t parent[16], dh[32], id[16], want[16], in[48];

	tu_rand_bytes(parent, sizeof parent);
	tu_rand_bytes(dh, sizeof dh);
	relm_node_id(id, parent, dh);
	memcpy(in, parent, 16);
	memcpy(in + 16, dh, 32);
	crypto_generichash(want, sizeof want, in, sizeof in, NULL, 0);
	ck_assert_mem_eq(id, want, 16);
	dh[0] ^= 1;
	relm_node_id(want, parent, dh);
	ck_assert(memcmp(id, want, 16) != 0);
}
END_TEST

/* ---- hex ----------------------------------------------------------------- */

/* relm_ct_is_zero agrees with sodium_is_zero on every length up to 80 at
 * every alignment, all zero and with any one bit of any byte set. */
START_TEST(ct_is_zero_as_sodium)
{
	uint8_t buf[96];

	for (size_t off = 0; off < 8; off++)
		for (size_t n = 0; n <= 80; n++) {
			memset(buf, 0, sizeof buf);
			ck_assert_int_eq(relm_ct_is_zero(buf + off, n), 1);
			for (size_t i = 0; i < n; i++)
				for (int bit = 0; bit < 8; bit++) {
					buf[off + i] = (uint8_t)(1u << bit);
					ck_assert_msg(relm_ct_is_zero(buf + off, n) == sodium_is_zero(buf + off, n) &&
					              relm_ct_is_zero(buf + off, n) == 0,
					              "off %zu n %zu byte %zu bit %d", off, n, i, bit);
					buf[off + i] = 0;
				}
			/* a set byte just outside the range is not looked at */
			buf[off + n] = 0xff;
			ck_assert_int_eq(relm_ct_is_zero(buf + off, n), 1);
		}
}
END_TEST

START_TEST(hex_round_trip)
{
	uint8_t in[64], back[64];
	char hex[129];

	for (size_t len = 0; len <= sizeof in; len++) {
		tu_rand_bytes(in, len);
		relm_hex(hex, in, len);
		ck_assert_uint_eq(strlen(hex), 2 * len);
		for (size_t i = 0; i < 2 * len; i++)
			ck_assert_msg((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'),
			              "not lowercase hex");
		ck_assert_int_eq(relm_unhex(back, len, hex, 2 * len), 0);
		ck_assert_mem_eq(back, in, len);
	}
	relm_hex(hex, (const uint8_t *)"\x00\xff\x10", 3);
	ck_assert_str_eq(hex, "00ff10");
}
END_TEST

START_TEST(hex_rejects)
{
	uint8_t out[4];

	ck_assert_int_eq(relm_unhex(out, 4, "0011223", 7), RELM_EMALFORMED);
	ck_assert_int_eq(relm_unhex(out, 4, "001122334", 9), RELM_EMALFORMED);
	ck_assert_int_eq(relm_unhex(out, 4, "0011223g", 8), RELM_EMALFORMED);
	ck_assert_int_eq(relm_unhex(out, 4, "00 11223", 8), RELM_EMALFORMED);
	ck_assert_int_eq(relm_unhex(out, 4, "0011\0" "233", 8), RELM_EMALFORMED);
	ck_assert_int_eq(relm_unhex(out, 4, "deadBEEF", 8), 0);
	ck_assert_mem_eq(out, "\xde\xad\xbe\xef", 4);
}
END_TEST

/* relm_unhex is a branch-free decoder (make ct): every pair of bytes
 * decodes exactly as libsodium's sodium_hex2bin does (the reference), and a
 * rejected spelling leaves the output wiped, never half a key. */
START_TEST(hex_exhaustive_pairs)
{
	for (unsigned a = 0; a < 256; a++) {
		for (unsigned b = 0; b < 256; b++) {
			char h[3] = { (char)a, (char)b, 0 };
			uint8_t got = 0x5a, want = 0x5a;
			size_t wlen = 0;
			const char *end = NULL;
			int ok = sodium_hex2bin(&want, 1, h, 2, NULL, &wlen, &end) == 0 &&
			         wlen == 1 && end == h + 2;
			int r = relm_unhex(&got, 1, h, 2);
			ck_assert_msg(ok ? r == 0 : r == RELM_EMALFORMED,
			              "0x%02x 0x%02x: %d, reference %d", a, b, r, ok);
			ck_assert_uint_eq(got, ok ? want : 0);
		}
	}
}
END_TEST

static Suite *crypto_suite(void)
{
	Suite *s = suite_create("crypto");
	TCase *tc;

	tc = tcase_create("hkdf");
	tcase_add_test(tc, hkdf_rfc5869_case1);
	tcase_add_test(tc, hkdf_rfc5869_case2);
	tcase_add_test(tc, hkdf_rfc5869_case3);
	tcase_add_test(tc, hkdf_length_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("kdf_rk");
	tcase_add_test(tc, kdf_rk_definition);
	tcase_add_test(tc, kdf_rk_deterministic_and_distinct);
	suite_add_tcase(s, tc);

	tc = tcase_create("kdf_ck");
	tcase_add_test(tc, kdf_ck_definition);
	suite_add_tcase(s, tc);

	tc = tcase_create("aead");
	tcase_add_test(tc, aead_round_trip);
	tcase_add_test(tc, aead_tamper);
	suite_add_tcase(s, tc);

	tc = tcase_create("dh");
	tcase_add_test(tc, dh_agrees);
	tcase_add_test(tc, dh_rejects_low_order);
	tcase_add_test(tc, dh_rejects_noncanonical);
	tcase_add_test(tc, ed25519_checks);
	suite_add_tcase(s, tc);

	tc = tcase_create("node_id");
	tcase_add_test(tc, node_id_definition);
	suite_add_tcase(s, tc);

	tc = tcase_create("hex");
	tcase_add_test(tc, ct_is_zero_as_sodium);
	tcase_add_test(tc, hex_round_trip);
	tcase_add_test(tc, hex_rejects);
	tcase_add_test(tc, hex_exhaustive_pairs);
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
	sr = srunner_create(crypto_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

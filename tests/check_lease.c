/*
 * check_lease.c — the send lease's derivations (wire/lease.h,
 * proto/devices.md §11.2): the spec's formulas computed independently,
 * every device of a proton deriving the same lease mailbox, tokens that
 * differ per device and per proton, and tokens mapped back to devices.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_rand.h"
#include "wire/lease.h"
#include "crypto/crypto.h"

static void proton_key(uint8_t pk[32], uint8_t sk[64])
{
	uint8_t seed[32];
	tu_rand_bytes(seed, sizeof seed);
	relm_sign_keypair_from_seed(pk, sk, seed);
}

START_TEST(test_lease_formulas)
{
	uint8_t pk[32], sk[64], seed[32], mpk[32], msk[64], dev[16], tok[16], want[16];
	static const char label[] = "relm/v1/lease-mailbox", tl[] = "relm/v1/lease-holder";
	uint8_t msg[sizeof tl - 1 + 16];
	struct relm_lease_keys k;

	proton_key(pk, sk);
	relm_lease_derive(&k, sk);
	/* HKDF-SHA256 with no salt: PRK = HMAC(zeros, IKM), OKM = HMAC(PRK, info ‖ 0x01) */
	{
		uint8_t zeros[32] = { 0 }, prk[32], in[sizeof label - 1 + 1];
		crypto_auth_hmacsha256_state st;
		crypto_auth_hmacsha256_init(&st, zeros, sizeof zeros);
		crypto_auth_hmacsha256_update(&st, sk, 32);
		crypto_auth_hmacsha256_final(&st, prk);
		memcpy(in, label, sizeof label - 1);
		in[sizeof label - 1] = 1;
		crypto_auth_hmacsha256(seed, in, sizeof in, prk);
	}
	ck_assert(memcmp(k.seed, seed, 32) == 0);
	relm_sign_keypair_from_seed(mpk, msk, seed);
	ck_assert(memcmp(k.mbox_pk, mpk, 32) == 0 && memcmp(k.mbox_sk, msk, 64) == 0);
	ck_assert(memcmp(k.mbox_pk, pk, 32) != 0);      /* not the IPK */
	tu_rand_bytes(dev, sizeof dev);
	memcpy(msg, tl, sizeof tl - 1);
	memcpy(msg + sizeof tl - 1, dev, 16);
	crypto_generichash(want, 16, msg, sizeof msg, k.seed, 32);
	relm_lease_token(tok, &k, dev);
	ck_assert(memcmp(tok, want, 16) == 0);
	ck_assert(memcmp(tok, dev, 16) != 0);           /* the server sees no device id */
	relm_lease_keys_clear(&k);
	ck_assert(sodium_is_zero((const uint8_t *)&k, sizeof k));
}
END_TEST

START_TEST(test_lease_every_device_agrees)
{
	uint8_t pk[32], sk[64], pk2[32], sk2[64], ids[4][16], tok[16], other[16];
	struct relm_lease_keys a, b, c;

	proton_key(pk, sk);
	proton_key(pk2, sk2);
	relm_lease_derive(&a, sk);
	relm_lease_derive(&b, sk);                      /* another device of the proton */
	relm_lease_derive(&c, sk2);                     /* another proton */
	ck_assert(memcmp(&a, &b, sizeof a) == 0);
	ck_assert(memcmp(a.mbox_pk, c.mbox_pk, 32) != 0);
	tu_rand_bytes(&ids[0][0], sizeof ids);
	for (int i = 0; i < 4; i++) {
		relm_lease_token(tok, &a, ids[i]);
		ck_assert_int_eq(relm_lease_holder(&b, tok, (const uint8_t (*)[16])ids, 4), i);
		/* another proton's token for the same device names nobody here */
		relm_lease_token(other, &c, ids[i]);
		ck_assert(memcmp(tok, other, 16) != 0);
		ck_assert_int_eq(relm_lease_holder(&a, other, (const uint8_t (*)[16])ids, 4), -1);
	}
	memset(tok, 0, sizeof tok);                     /* free */
	ck_assert_int_eq(relm_lease_holder(&a, tok, (const uint8_t (*)[16])ids, 4), -1);
	relm_lease_token(tok, &a, ids[3]);              /* a device no longer in the circle */
	ck_assert_int_eq(relm_lease_holder(&a, tok, (const uint8_t (*)[16])ids, 3), -1);
	ck_assert_str_eq(RELM_LEASE_NAME, "relm/leader");
	relm_lease_keys_clear(&a);
	relm_lease_keys_clear(&b);
	relm_lease_keys_clear(&c);
}
END_TEST

static Suite *lease_suite(void)
{
	Suite *s = suite_create("lease");
	TCase *tc = tcase_create("derive");

	tcase_add_test(tc, test_lease_formulas);
	tcase_add_test(tc, test_lease_every_device_agrees);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(lease_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

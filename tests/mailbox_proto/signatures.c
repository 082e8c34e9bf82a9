/*
 * signatures.c — check_mailbox_proto's signature and MAC inputs: what
 * SUBSCRIBE, LEASE and SUBSCRIBE_BATCH sign or MAC, byte for byte, and
 * that a signature or MAC over anything else does not verify.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "error.h"
#include "mailbox_proto/sample.h"

START_TEST(test_sub_signature)
{
	uint8_t pk[32], sk[64], pk2[32], sk2[64], nonce[32], nonce2[32], sig[64];
	uint8_t m[RELM_MBOX_SUB_SIG_INPUT_LEN], want[RELM_MBOX_SUB_SIG_INPUT_LEN];
	uint64_t cursor = 0x0102030405060708ull;

	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(pk2, sk2);
	mp_rng_bytes(nonce, 32);
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
	mp_rng_bytes(nonce, 32);
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
	const uint8_t *pk = mp_key[0].pk;
	struct relm_mbox_frame f, g;
	uint8_t b[256];
	int n;

	/* the read key: the same for every holder of the key, per realm */
	relm_mbox_read_key(k1, mp_key[0].sk, mp_realm);
	ck_assert_mem_eq(k1, mp_key[0].rkey, 32);
	memcpy(realm2, mp_realm, 32);
	realm2[0] ^= 1;
	relm_mbox_read_key(k2, mp_key[0].sk, realm2);
	ck_assert_mem_ne(k1, k2, 32);
	relm_mbox_read_key(k2, mp_key[1].sk, mp_realm);
	ck_assert_mem_ne(k1, k2, 32);
	/* only the seed counts (sk[0..32)): the pk half cannot change it */
	{
		uint8_t sk[64];
		memcpy(sk, mp_key[0].sk, 64);
		sk[40] ^= 1;
		relm_mbox_read_key(k2, sk, mp_realm);
		ck_assert_mem_eq(k1, k2, 32);
	}

	/* the MAC: its input, and every field bound */
	relm_mbox_sub_mac(mac, k1, mp_nonce, pk, 7);
	memcpy(m, "relm/v2/mailbox-sub", 19);
	memcpy(m + 19, mp_nonce, 32);
	memcpy(m + 51, pk, 32);
	memset(m + 83, 0, 8);
	m[90] = 7;
	ck_assert_int_eq(crypto_generichash(mac2, 16, m, sizeof(m), k1, 32), 0);
	ck_assert_mem_eq(mac, mac2, 16);
	ck_assert_int_eq(relm_mbox_sub_mac_verify(mac, k1, mp_nonce, pk, 7), 0);
	ck_assert_int_eq(relm_mbox_sub_mac_verify(mac, k1, mp_nonce, pk, 8), RELM_EBADSIG);
	ck_assert_int_eq(relm_mbox_sub_mac_verify(mac, k1, mp_nonce, mp_key[1].pk, 7), RELM_EBADSIG);
	ck_assert_int_eq(relm_mbox_sub_mac_verify(mac, mp_key[1].rkey, mp_nonce, pk, 7), RELM_EBADSIG);
	memcpy(realm2, mp_nonce, 32);
	realm2[31] ^= 0x80;
	ck_assert_int_eq(relm_mbox_sub_mac_verify(mac, k1, realm2, pk, 7), RELM_EBADSIG);
	for (int i = 0; i < 128; i++) {
		memcpy(mac2, mac, 16);
		mac2[i / 8] ^= (uint8_t)(1u << (i % 8));
		ck_assert_int_eq(relm_mbox_sub_mac_verify(mac2, k1, mp_nonce, pk, 7), RELM_EBADSIG);
	}

	/* sealing: both sides derive the same key; it opens what it sealed */
	mp_rng_bytes(c_sk, 32);
	mp_rng_bytes(s_sk, 32);
	crypto_scalarmult_base(c_kx, c_sk);
	crypto_scalarmult_base(s_kx, s_sk);
	ck_assert_int_eq(relm_mbox_seal_key(kc, c_sk, s_kx, s_kx, c_kx), 0);
	ck_assert_int_eq(relm_mbox_seal_key(ks, s_sk, c_kx, s_kx, c_kx), 0);
	ck_assert_mem_eq(kc, ks, 32);
	relm_mbox_seal(sealed, kc, pk, k1);
	ck_assert_mem_ne(sealed, k1, 32);
	relm_mbox_seal(opened, ks, pk, sealed);
	ck_assert_mem_eq(opened, k1, 32);
	relm_mbox_seal(opened, ks, mp_key[1].pk, sealed);   /* bound to the mailbox */
	ck_assert_mem_ne(opened, k1, 32);
	ck_assert_int_eq(relm_mbox_seal_key(ks, s_sk, low, s_kx, c_kx), RELM_EBADKEY);

	/* the registration signature covers the nonce, both keys, the entry */
	ck_assert_uint_eq(relm_mbox_reg_sig_input(rm, mp_nonce, s_kx, c_kx, pk, 9, sealed), sizeof(rm));
	ck_assert_mem_eq(rm, "relm/v2/mailbox-register", 24);
	crypto_sign_detached(sig, NULL, rm, sizeof(rm), mp_key[0].sk);
	ck_assert_int_eq(relm_mbox_reg_verify(sig, mp_nonce, s_kx, c_kx, pk, 9, sealed), 0);
	ck_assert_int_eq(relm_mbox_reg_verify(sig, mp_nonce, c_kx, s_kx, pk, 9, sealed), RELM_EBADSIG);
	ck_assert_int_eq(relm_mbox_reg_verify(sig, mp_nonce, s_kx, c_kx, pk, 10, sealed), RELM_EBADSIG);
	ck_assert_int_eq(relm_mbox_reg_verify(sig, mp_nonce, s_kx, c_kx, low, 9, sealed), RELM_EBADKEY);

	/* frames: v2 types do not exist in version 1; CHALLENGE grows in v2 */
	mp_sample(&f, RELM_MBOX_SUBSCRIBED_BATCH, 3);
	n = relm_mbox_frame_encode(b, sizeof(b), &f);
	ck_assert_int_gt(n, 0);
	b[4] = RELM_MBOX_VERSION;
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, (size_t)n), RELM_ENOTFOUND);
	f.version = RELM_MBOX_VERSION;
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 0);
	mp_sample(&f, RELM_MBOX_CHALLENGE, 0);
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 6 + 57);
	f.version = RELM_MBOX_VERSION_2;
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 6 + 57 + 64);
	n = relm_mbox_frame_encode(b, sizeof(b), &f);
	b[4] = RELM_MBOX_VERSION;   /* a v2 body under a v1 header: too long */
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, (size_t)n), RELM_EMALFORMED);
	/* batch counts: 0 and 1025 entries cannot be encoded */
	mp_sample(&f, RELM_MBOX_SUBSCRIBE_BATCH, 0);
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

TCase *mp_signatures_tcase(void)
{
	TCase *tc = tcase_create("signatures");
	tcase_add_checked_fixture(tc, mp_seed_setup, NULL);
	tcase_add_test(tc, test_sub_signature);
	tcase_add_test(tc, test_lease_signature);
	tcase_add_test(tc, test_batch_crypto);
	return tc;
}

/*
 * check_x3dh.c — relationship setup (lib/x3dh.h): both sides agree, with
 * and without a one-time prekey; SK follows its definition byte for byte;
 * any changed input changes SK; bad keys fail without touching SK;
 * rel_id, AD and mailbox key pairs are deterministic and side-dependent.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "crypto/x3dh.h"
#include "wire/invite.h"
#include "crypto/crypto.h"
#include "error.h"
#include "util_rand.h"

/* Everything both sides hold. */
struct setup {
	uint8_t a_pk[32], a_sk[64];      /* IPK_a */
	uint8_t b_pk[32], b_sk[64];      /* IPK_b */
	uint8_t spk_priv[32], opk_priv[32], ek_priv[32], ek[32];
	struct relm_invite inv;
};

static void make_setup(struct setup *s, int with_opk)
{
	uint8_t seed[32];

	memset(s, 0, sizeof *s);
	tu_rand_bytes(seed, 32);
	relm_sign_keypair_from_seed(s->a_pk, s->a_sk, seed);
	tu_rand_bytes(seed, 32);
	relm_sign_keypair_from_seed(s->b_pk, s->b_sk, seed);
	tu_rand_bytes(s->spk_priv, 32);
	tu_rand_bytes(s->opk_priv, 32);
	tu_rand_bytes(s->ek_priv, 32);
	relm_x25519_public(s->ek, s->ek_priv);
	s->inv.version = 1;
	s->inv.flags = with_opk ? RELM_INVITE_F_OPK : 0;
	memcpy(s->inv.ipk, s->a_pk, 32);
	s->inv.spk_id = 7;
	relm_x25519_public(s->inv.spk, s->spk_priv);
	s->inv.opk_id = with_opk ? 8 : 0;
	if (with_opk)
		relm_x25519_public(s->inv.opk, s->opk_priv);
	strcpy(s->inv.mailbox, "127.0.0.1:7427");
}

static void both(const struct setup *s, uint8_t ska[32], uint8_t skb[32])
{
	ck_assert_int_eq(relm_x3dh_initiator(skb, s->b_sk, s->ek_priv, &s->inv), 0);
	ck_assert_int_eq(relm_x3dh_responder(ska, s->a_sk, s->spk_priv,
	                                     (s->inv.flags & RELM_INVITE_F_OPK) ? s->opk_priv : NULL,
	                                     s->b_pk, s->ek), 0);
}

START_TEST(sides_agree)
{
	for (int i = 0; i < 40; i++) {
		struct setup s;
		uint8_t ska[32], skb[32];

		make_setup(&s, i & 1);
		both(&s, ska, skb);
		ck_assert_msg(memcmp(ska, skb, 32) == 0, "SK differs, opk=%d (" TU_SEED_FMT ")",
		              i & 1, TU_SEED_ARG);
	}
}
END_TEST

/* SK recomputed from x3dh.h with libsodium directly. */
START_TEST(matches_definition)
{
	for (int opk = 0; opk <= 1; opk++) {
		struct setup s;
		uint8_t sk[32], want[32], ikm[32 + 4 * 32], ik_b[32], ik_a_pub[32];
		static const uint8_t zeros[32];
		size_t ikmlen = 32 + 3 * 32;

		make_setup(&s, opk);
		ck_assert_int_eq(relm_x3dh_initiator(sk, s.b_sk, s.ek_priv, &s.inv), 0);
		ck_assert_int_eq(crypto_sign_ed25519_sk_to_curve25519(ik_b, s.b_sk), 0);
		ck_assert_int_eq(crypto_sign_ed25519_pk_to_curve25519(ik_a_pub, s.a_pk), 0);
		memset(ikm, 0xff, 32);
		ck_assert_int_eq(crypto_scalarmult(ikm + 32, ik_b, s.inv.spk), 0);
		ck_assert_int_eq(crypto_scalarmult(ikm + 64, s.ek_priv, ik_a_pub), 0);
		ck_assert_int_eq(crypto_scalarmult(ikm + 96, s.ek_priv, s.inv.spk), 0);
		if (opk) {
			ck_assert_int_eq(crypto_scalarmult(ikm + 128, s.ek_priv, s.inv.opk), 0);
			ikmlen += 32;
		}
		relm_hkdf(want, 32, zeros, 32, ikm, ikmlen, (const uint8_t *)"relm/v1/x3dh", 12);
		ck_assert_mem_eq(sk, want, 32);
	}
}
END_TEST

START_TEST(opk_matters)
{
	struct setup s;
	uint8_t with[32], without[32], other[32];

	make_setup(&s, 1);
	ck_assert_int_eq(relm_x3dh_initiator(with, s.b_sk, s.ek_priv, &s.inv), 0);
	s.inv.flags = 0;
	ck_assert_int_eq(relm_x3dh_initiator(without, s.b_sk, s.ek_priv, &s.inv), 0);
	ck_assert(memcmp(with, without, 32) != 0);
	/* responder with vs without opk_priv */
	ck_assert_int_eq(relm_x3dh_responder(other, s.a_sk, s.spk_priv, NULL, s.b_pk, s.ek), 0);
	ck_assert_mem_eq(other, without, 32);
	ck_assert_int_eq(relm_x3dh_responder(other, s.a_sk, s.spk_priv, s.opk_priv, s.b_pk, s.ek), 0);
	ck_assert_mem_eq(other, with, 32);
}
END_TEST

START_TEST(any_input_changes_sk)
{
	for (int opk = 0; opk <= 1; opk++) {
		struct setup s, t;
		uint8_t base[32], sk[32], seed[32];

		make_setup(&s, opk);
		ck_assert_int_eq(relm_x3dh_initiator(base, s.b_sk, s.ek_priv, &s.inv), 0);
		/* another B identity */
		t = s;
		tu_rand_bytes(seed, 32);
		relm_sign_keypair_from_seed(t.b_pk, t.b_sk, seed);
		ck_assert_int_eq(relm_x3dh_initiator(sk, t.b_sk, t.ek_priv, &t.inv), 0);
		ck_assert(memcmp(sk, base, 32) != 0);
		/* another EK */
		t = s;
		t.ek_priv[5] ^= 0x40;
		ck_assert_int_eq(relm_x3dh_initiator(sk, t.b_sk, t.ek_priv, &t.inv), 0);
		ck_assert(memcmp(sk, base, 32) != 0);
		/* another SPK */
		t = s;
		t.spk_priv[9] ^= 0x02;
		relm_x25519_public(t.inv.spk, t.spk_priv);
		ck_assert_int_eq(relm_x3dh_initiator(sk, t.b_sk, t.ek_priv, &t.inv), 0);
		ck_assert(memcmp(sk, base, 32) != 0);
		/* another A identity */
		t = s;
		tu_rand_bytes(seed, 32);
		relm_sign_keypair_from_seed(t.a_pk, t.a_sk, seed);
		memcpy(t.inv.ipk, t.a_pk, 32);
		ck_assert_int_eq(relm_x3dh_initiator(sk, t.b_sk, t.ek_priv, &t.inv), 0);
		ck_assert(memcmp(sk, base, 32) != 0);
		if (opk) {
			t = s;
			t.opk_priv[0] ^= 0x80;
			relm_x25519_public(t.inv.opk, t.opk_priv);
			ck_assert_int_eq(relm_x3dh_initiator(sk, t.b_sk, t.ek_priv, &t.inv), 0);
			ck_assert(memcmp(sk, base, 32) != 0);
		}
		/* responder with a wrong SPK private key or wrong claimed IPK_b */
		t = s;
		t.spk_priv[1] ^= 0x10;
		ck_assert_int_eq(relm_x3dh_responder(sk, t.a_sk, t.spk_priv, opk ? t.opk_priv : NULL,
		                                     t.b_pk, t.ek), 0);
		ck_assert(memcmp(sk, base, 32) != 0);
		tu_rand_bytes(seed, 32);
		relm_sign_keypair_from_seed(t.b_pk, t.b_sk, seed);
		ck_assert_int_eq(relm_x3dh_responder(sk, s.a_sk, s.spk_priv, opk ? s.opk_priv : NULL,
		                                     t.b_pk, s.ek), 0);
		ck_assert(memcmp(sk, base, 32) != 0);
	}
}
END_TEST

START_TEST(bad_keys_rejected)
{
	static const uint8_t zero[32];
	static const uint8_t one[32] = { 1 };
	uint8_t p_plus_1[32];
	struct setup s, t;
	uint8_t sk[32], sentinel[32];

	memset(p_plus_1, 0xff, 32);
	p_plus_1[0] = 0xee;
	p_plus_1[31] = 0x7f;
	memset(sentinel, 0x3c, 32);
	make_setup(&s, 1);

	/* initiator: low-order or non-canonical SPK / OPK, invalid IPK_a */
	const uint8_t *bad[] = { zero, one, p_plus_1 };
	for (size_t i = 0; i < 3; i++) {
		t = s;
		memcpy(t.inv.spk, bad[i], 32);
		memcpy(sk, sentinel, 32);
		ck_assert_int_eq(relm_x3dh_initiator(sk, t.b_sk, t.ek_priv, &t.inv), RELM_EBADKEY);
		ck_assert_mem_eq(sk, sentinel, 32);
		t = s;
		memcpy(t.inv.opk, bad[i], 32);
		ck_assert_int_eq(relm_x3dh_initiator(sk, t.b_sk, t.ek_priv, &t.inv), RELM_EBADKEY);
		ck_assert_mem_eq(sk, sentinel, 32);
		/* the bad OPK is not used without the flag */
		t.inv.flags = 0;
		ck_assert_int_eq(relm_x3dh_initiator(sk, t.b_sk, t.ek_priv, &t.inv), 0);
		memcpy(sk, sentinel, 32);
		/* responder: bad EK_b */
		ck_assert_int_eq(relm_x3dh_responder(sk, s.a_sk, s.spk_priv, s.opk_priv, s.b_pk, bad[i]),
		                 RELM_EBADKEY);
		ck_assert_mem_eq(sk, sentinel, 32);
	}
	t = s;
	memset(t.inv.ipk, 0, 32);
	t.inv.ipk[0] = 1;                                   /* Ed25519 identity point */
	ck_assert_int_eq(relm_x3dh_initiator(sk, t.b_sk, t.ek_priv, &t.inv), RELM_EBADKEY);
	ck_assert_mem_eq(sk, sentinel, 32);
	ck_assert_int_eq(relm_x3dh_responder(sk, s.a_sk, s.spk_priv, NULL, t.inv.ipk, s.ek), RELM_EBADKEY);
	ck_assert_mem_eq(sk, sentinel, 32);
}
END_TEST

START_TEST(rel_id_and_ad)
{
	struct setup s;
	uint8_t id1[16], id2[16], want[16], ad[RELM_AD_LEN], in[11 + 96];

	make_setup(&s, 0);
	relm_rel_id(id1, s.a_pk, s.b_pk, s.ek);
	relm_rel_id(id2, s.a_pk, s.b_pk, s.ek);
	ck_assert_mem_eq(id1, id2, 16);
	memcpy(in, "relm/v1/rel", 11);
	memcpy(in + 11, s.a_pk, 32);
	memcpy(in + 43, s.b_pk, 32);
	memcpy(in + 75, s.ek, 32);
	crypto_generichash(want, 16, in, sizeof in, NULL, 0);
	ck_assert_mem_eq(id1, want, 16);
	/* side-dependent and EK-dependent */
	relm_rel_id(id2, s.b_pk, s.a_pk, s.ek);
	ck_assert(memcmp(id1, id2, 16) != 0);
	s.ek[0] ^= 1;
	relm_rel_id(id2, s.a_pk, s.b_pk, s.ek);
	ck_assert(memcmp(id1, id2, 16) != 0);

	relm_rel_ad(ad, s.a_pk, s.b_pk);
	ck_assert_mem_eq(ad, s.a_pk, 32);
	ck_assert_mem_eq(ad + 32, s.b_pk, 32);
}
END_TEST

START_TEST(mailbox_keys)
{
	uint8_t shared[32], pka[32], ska[64], pkb[32], skb[64], pk2[32], sk2[64], seed[32];
	uint8_t msg[3] = "hi", sig[64];

	tu_rand_bytes(shared, 32);
	relm_mailbox_keypair(pka, ska, shared, 'a');
	relm_mailbox_keypair(pkb, skb, shared, 'b');
	ck_assert(memcmp(pka, pkb, 32) != 0);
	relm_mailbox_keypair(pk2, sk2, shared, 'a');
	ck_assert_mem_eq(pk2, pka, 32);
	ck_assert_mem_eq(sk2, ska, 64);
	/* seed = HKDF(salt none, ikm = SK, info = "relm/v1/mailbox/a", 32) */
	relm_hkdf(seed, 32, NULL, 0, shared, 32, (const uint8_t *)"relm/v1/mailbox/a", 17);
	relm_sign_keypair_from_seed(pk2, sk2, seed);
	ck_assert_mem_eq(pk2, pka, 32);
	/* usable for signing, and a different SK gives other keys */
	crypto_sign_detached(sig, NULL, msg, sizeof msg, ska);
	ck_assert_int_eq(crypto_sign_verify_detached(sig, msg, sizeof msg, pka), 0);
	shared[31] ^= 1;
	relm_mailbox_keypair(pk2, sk2, shared, 'a');
	ck_assert(memcmp(pk2, pka, 32) != 0);
}
END_TEST

static Suite *x3dh_suite(void)
{
	Suite *s = suite_create("x3dh");
	TCase *tc;

	tc = tcase_create("agreement");
	tcase_add_test(tc, sides_agree);
	tcase_add_test(tc, matches_definition);
	tcase_add_test(tc, opk_matters);
	suite_add_tcase(s, tc);

	tc = tcase_create("binding");
	tcase_add_test(tc, any_input_changes_sk);
	tcase_add_test(tc, bad_keys_rejected);
	suite_add_tcase(s, tc);

	tc = tcase_create("derived");
	tcase_add_test(tc, rel_id_and_ad);
	tcase_add_test(tc, mailbox_keys);
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
	sr = srunner_create(x3dh_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * check_pairing_wire.c — lib/wire/pairing.c against proto/devices.md §12:
 * the code's text form and each of its errors, what S derives, and JOIN,
 * WELCOME and REFUSE: round trips, and every tampering refused with the
 * error §12.3–§12.5 name.  Randomised inputs read RELM_SEED.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_rand.h"
#include "crypto/crypto.h"
#include "wire/addr.h"
#include "wire/pairing.h"
#include "error.h"

enum { NOW = 1000000 };

static void a_code(struct relm_pair_code *c, const char *host)
{
	memset(c, 0, sizeof *c);
	c->expires_ms = NOW + RELM_PAIR_TTL_MS;
	snprintf(c->host, sizeof c->host, "%s", host);
	tu_rand_bytes(c->secret, sizeof c->secret);
}

START_TEST(code_round_trip)
{
	const char *hosts[] = { "127.0.0.1:7427", "mail.example.org:443", "[::1]:7427" };
	char text[RELM_PAIR_CODE_MAX];

	for (int i = 0; i < 50; i++) {
		struct relm_pair_code c, d;
		a_code(&c, hosts[i % 3]);
		int n = relm_pair_code_encode(text, sizeof text, &c);
		ck_assert_int_gt(n, 10);
		ck_assert_uint_eq(strlen(text), (size_t)n);
		ck_assert_int_eq(strncmp(text, "relm-pair:", 10), 0);
		ck_assert_msg(relm_pair_code_decode(&d, text, (size_t)n, NOW) == 0, TU_SEED_FMT, TU_SEED_ARG);
		ck_assert_uint_eq(d.expires_ms, c.expires_ms);
		ck_assert_str_eq(d.host, c.host);
		ck_assert_int_eq(memcmp(d.secret, c.secret, 32), 0);
	}
	/* what the encoder refuses: a host with a mailbox id, or none */
	{
		struct relm_pair_code c;
		a_code(&c, "127.0.0.1:7427/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
		ck_assert_int_eq(relm_pair_code_encode(text, sizeof text, &c), RELM_EINVAL);
		a_code(&c, "");
		ck_assert_int_eq(relm_pair_code_encode(text, sizeof text, &c), RELM_EINVAL);
		a_code(&c, "127.0.0.1:7427");
		ck_assert_int_eq(relm_pair_code_encode(text, 20, &c), RELM_EINVAL);
	}
}
END_TEST

/* The text form of raw code bytes. */
static int code_of(char *text, size_t cap, const uint8_t *bin, size_t n)
{
	memcpy(text, "relm-pair:", 10);
	sodium_bin2base64(text + 10, cap - 10, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return (int)strlen(text);
}

/* §12.1: each way a code can be wrong, its error; nothing is returned. */
START_TEST(code_errors)
{
	struct relm_pair_code c, d;
	char text[RELM_PAIR_CODE_MAX + 8];
	uint8_t bin[RELM_PAIR_CODE_BIN_MAX + 1];
	size_t hl = 14, n = 10 + hl + 32;
	int len;

	a_code(&c, "127.0.0.1:7427");
	len = relm_pair_code_encode(text, sizeof text, &c);
	/* around it, whitespace is fine */
	{
		char spaced[sizeof text + 4];
		snprintf(spaced, sizeof spaced, "  %s\n", text);
		ck_assert_int_eq(relm_pair_code_decode(&d, spaced, strlen(spaced), NOW), 0);
	}
	ck_assert_int_eq(relm_pair_code_decode(&d, "relm:abc", 8, NOW), RELM_EMALFORMED);
	ck_assert_int_eq(relm_pair_code_decode(&d, "relm-pa", 7, NOW), RELM_ETRUNCATED);
	ck_assert_int_eq(relm_pair_code_decode(&d, "", 0, NOW), RELM_ETRUNCATED);
	ck_assert_int_eq(relm_pair_code_decode(&d, "relm-pair:ab+c", 14, NOW), RELM_EMALFORMED);
	ck_assert_int_eq(relm_pair_code_decode(&d, text, (size_t)len, c.expires_ms), RELM_EEXPIRED);
	ck_assert_int_eq(relm_pair_code_decode(&d, text, (size_t)len, c.expires_ms - 1), 0);
	memset(&d, 0x5a, sizeof d);

	bin[0] = 1;
	for (int i = 0; i < 8; i++)
		bin[1 + i] = (uint8_t)(c.expires_ms >> (56 - 8 * i));
	bin[9] = (uint8_t)hl;
	memcpy(bin + 10, c.host, hl);
	memcpy(bin + 10 + hl, c.secret, 32);
	/* every cut of the bytes is truncated (the base64url stays valid) */
	for (size_t k = 0; k < n; k++) {
		len = code_of(text, sizeof text, bin, k);
		int rc = relm_pair_code_decode(&d, text, (size_t)len, NOW);
		ck_assert_msg(rc == RELM_ETRUNCATED, "cut at %zu: %d", k, rc);
	}
	bin[n] = 0;
	len = code_of(text, sizeof text, bin, n + 1);
	ck_assert_int_eq(relm_pair_code_decode(&d, text, (size_t)len, NOW), RELM_EMALFORMED);
	bin[0] = 2;
	len = code_of(text, sizeof text, bin, n);
	ck_assert_int_eq(relm_pair_code_decode(&d, text, (size_t)len, NOW), RELM_EVERSION);
	bin[0] = 1;
	bin[10] = ' ';                                     /* not a host */
	len = code_of(text, sizeof text, bin, n);
	ck_assert_int_eq(relm_pair_code_decode(&d, text, (size_t)len, NOW), RELM_EMALFORMED);
	/* d was never written */
	for (size_t i = 0; i < sizeof d; i++)
		ck_assert_uint_eq(((uint8_t *)&d)[i], 0x5a);
}
END_TEST

/* §12.2: each key from its own label; the mailboxes are key pairs. */
START_TEST(derive)
{
	struct relm_pair_keys k, k2;
	uint8_t s[32], want[32];
	static const char *labels[] = { "relm/v1/pair/mac", "relm/v1/pair/welcome", "relm/v1/pair/id" };

	tu_rand_bytes(s, sizeof s);
	relm_pair_derive(&k, s);
	relm_pair_derive(&k2, s);
	ck_assert_int_eq(memcmp(&k, &k2, sizeof k), 0);
	ck_assert_int_eq(relm_hkdf(want, 32, NULL, 0, s, 32, (const uint8_t *)labels[0], strlen(labels[0])), 0);
	ck_assert_int_eq(memcmp(k.mac, want, 32), 0);
	ck_assert_int_eq(relm_hkdf(want, 32, NULL, 0, s, 32, (const uint8_t *)labels[1], strlen(labels[1])), 0);
	ck_assert_int_eq(memcmp(k.welcome, want, 32), 0);
	ck_assert_int_eq(relm_hkdf(want, 32, NULL, 0, s, 32, (const uint8_t *)labels[2], strlen(labels[2])), 0);
	ck_assert_int_eq(memcmp(k.id, want, 16), 0);
	ck_assert(memcmp(k.mbox_e_pk, k.mbox_j_pk, 32) != 0);
	ck_assert(memcmp(k.mac, k.welcome, 32) != 0);
	{
		uint8_t sig[64];
		crypto_sign_detached(sig, NULL, (const uint8_t *)"x", 1, k.mbox_e_sk);
		ck_assert_int_eq(crypto_sign_verify_detached(sig, (const uint8_t *)"x", 1, k.mbox_e_pk), 0);
		crypto_sign_detached(sig, NULL, (const uint8_t *)"x", 1, k.mbox_j_sk);
		ck_assert_int_eq(crypto_sign_verify_detached(sig, (const uint8_t *)"x", 1, k.mbox_j_pk), 0);
	}
	s[0] ^= 1;
	relm_pair_derive(&k2, s);
	ck_assert(memcmp(k.id, k2.id, 16) != 0);
	ck_assert(memcmp(k.mbox_e_pk, k2.mbox_e_pk, 32) != 0);
}
END_TEST

/* A joiner: device keys, ephemeral, device invite; its JOIN. */
struct joiner {
	struct relm_pair_join j;
	uint8_t dsk[64], e_priv[32];
};

static void a_joiner(struct joiner *J, const char *label)
{
	struct relm_addr a;
	uint8_t spk[32], mb_sk[64];

	memset(J, 0, sizeof *J);
	tu_rand_bytes(J->j.device_id, 16);
	crypto_sign_keypair(J->j.dpk, J->dsk);
	tu_rand_bytes(J->e_priv, 32);
	relm_x25519_public(J->j.eph, J->e_priv);
	snprintf(J->j.label, sizeof J->j.label, "%s", label);
	J->j.invite.version = RELM_WIRE_VERSION;
	J->j.invite.flags = RELM_INVITE_F_MULTI;
	memcpy(J->j.invite.ipk, J->j.dpk, 32);
	J->j.invite.spk_id = 5;
	tu_rand_bytes(spk, 32);
	relm_x25519_public(J->j.invite.spk, spk);
	ck_assert_int_eq(relm_addr_parse(&a, "127.0.0.1:7427", 14), 0);
	crypto_sign_keypair(a.id, mb_sk);
	a.has_id = 1;
	ck_assert_int_gt(relm_addr_format(J->j.invite.mailbox, sizeof J->j.invite.mailbox, &a), 0);
	ck_assert_int_eq(relm_invite_sign(&J->j.invite, J->dsk), 0);
}

START_TEST(join)
{
	struct relm_pair_keys k;
	struct relm_pair_join out;
	struct joiner J;
	uint8_t s[32], buf[RELM_PAIR_JOIN_MAX + 1], kmac2[32];
	int n;

	tu_rand_bytes(s, 32);
	relm_pair_derive(&k, s);
	a_joiner(&J, "tablet");
	n = relm_pair_join_encode(buf, sizeof buf, &J.j, J.dsk, k.mac);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(relm_pair_type(buf, (size_t)n), RELM_PAIR_JOIN);
	ck_assert_int_eq(relm_pair_join_decode(&out, buf, (size_t)n, k.mac), 0);
	ck_assert_int_eq(memcmp(out.device_id, J.j.device_id, 16), 0);
	ck_assert_int_eq(memcmp(out.dpk, J.j.dpk, 32), 0);
	ck_assert_int_eq(memcmp(out.eph, J.j.eph, 32), 0);
	ck_assert_str_eq(out.label, "tablet");
	ck_assert_str_eq(out.invite.mailbox, J.j.invite.mailbox);
	ck_assert_uint_eq(out.invite.spk_id, 5);

	/* the wrong secret: auth_failed, whatever else */
	memcpy(kmac2, k.mac, 32);
	kmac2[3] ^= 1;
	ck_assert_int_eq(relm_pair_join_decode(&out, buf, (size_t)n, kmac2), RELM_EAUTH);
	/* any byte changed: the mac fails first */
	for (int i = 2; i < n; i += 7) {
		buf[i] ^= 0x10;
		ck_assert_msg(relm_pair_join_decode(&out, buf, (size_t)n, k.mac) == RELM_EAUTH, "byte %d", i);
		buf[i] ^= 0x10;
	}
	/* every cut: truncated, or malformed where a length field reads wrong */
	for (int cut = 0; cut < n; cut++) {
		int rc = relm_pair_join_decode(&out, buf, (size_t)cut, k.mac);
		ck_assert_msg(rc == RELM_ETRUNCATED || rc == RELM_EMALFORMED, "cut %d: %d", cut, rc);
	}
	buf[n] = 0;
	ck_assert_int_eq(relm_pair_join_decode(&out, buf, (size_t)n + 1, k.mac), RELM_EMALFORMED);
	buf[0] = 2;
	ck_assert_int_eq(relm_pair_join_decode(&out, buf, (size_t)n, k.mac), RELM_EVERSION);
	buf[0] = 1;
	/* one who holds S but not the DSK: a valid mac over a bad signature */
	{
		struct joiner M;
		uint8_t forged[RELM_PAIR_JOIN_MAX];
		a_joiner(&M, "evil");
		memcpy(M.j.dpk, J.j.dpk, 32);           /* claims J's DPK, signs with its own key */
		int m = relm_pair_join_encode(forged, sizeof forged, &M.j, M.dsk, k.mac);
		ck_assert_int_gt(m, 0);
		ck_assert_int_eq(relm_pair_join_decode(&out, forged, (size_t)m, k.mac), RELM_EBADSIG);
		/* its own DPK, but the device invite is another's */
		a_joiner(&M, "evil");
		M.j.invite = J.j.invite;
		m = relm_pair_join_encode(forged, sizeof forged, &M.j, M.dsk, k.mac);
		ck_assert_int_eq(relm_pair_join_decode(&out, forged, (size_t)m, k.mac), RELM_EBADSIG);
	}
	/* a label with a control character is not encoded */
	a_joiner(&J, "tab\tlet");
	ck_assert_int_eq(relm_pair_join_encode(buf, sizeof buf, &J.j, J.dsk, k.mac), RELM_EINVAL);
}
END_TEST

START_TEST(welcome)
{
	struct relm_pair_keys k;
	struct relm_pair_welcome w, got;
	uint8_t s[32], e_priv[32], nonce[24], jh[32], jh2[32], circle[300], *box = NULL, *pt = NULL;
	uint8_t ipk_pk[32], wrong[32];
	size_t blen = 0, ptlen = 0;
	struct joiner J;

	tu_rand_bytes(s, 32);
	relm_pair_derive(&k, s);
	a_joiner(&J, "tablet");
	tu_rand_bytes(e_priv, 32);
	tu_rand_bytes(nonce, 24);
	tu_rand_bytes(jh, 32);
	tu_rand_bytes(circle, sizeof circle);
	memset(&w, 0, sizeof w);
	crypto_sign_keypair(ipk_pk, w.ipk_sk);
	tu_rand_bytes(w.proton, 16);
	snprintf(w.label, sizeof w.label, "alice");
	tu_rand_bytes(w.from_device, 16);
	w.circle = circle;
	w.circle_len = sizeof circle;
	ck_assert_int_eq(relm_pair_welcome_seal(&box, &blen, &w, e_priv, J.j.eph, k.welcome, jh, nonce), 0);
	ck_assert_int_eq(relm_pair_type(box, blen), RELM_PAIR_WELCOME);
	/* the identity key is not in the clear */
	ck_assert_ptr_null(memmem(box, blen, w.ipk_sk, 32));
	ck_assert_int_eq(relm_pair_welcome_open(&got, &pt, &ptlen, box, blen, J.e_priv, k.welcome, jh), 0);
	ck_assert_int_eq(memcmp(got.ipk_sk, w.ipk_sk, 64), 0);
	ck_assert_int_eq(memcmp(got.proton, w.proton, 16), 0);
	ck_assert_str_eq(got.label, "alice");
	ck_assert_int_eq(memcmp(got.from_device, w.from_device, 16), 0);
	ck_assert_uint_eq(got.circle_len, sizeof circle);
	ck_assert_int_eq(memcmp(got.circle, circle, sizeof circle), 0);
	relm_pair_buf_free(pt, ptlen);
	pt = NULL;

	/* another JOIN's hash, another ephemeral, another S: it does not open */
	memcpy(jh2, jh, 32);
	jh2[0] ^= 1;
	ck_assert_int_eq(relm_pair_welcome_open(&got, &pt, &ptlen, box, blen, J.e_priv, k.welcome, jh2), RELM_EAUTH);
	tu_rand_bytes(wrong, 32);
	ck_assert_int_eq(relm_pair_welcome_open(&got, &pt, &ptlen, box, blen, wrong, k.welcome, jh), RELM_EAUTH);
	ck_assert_int_eq(relm_pair_welcome_open(&got, &pt, &ptlen, box, blen, J.e_priv, k.mac, jh), RELM_EAUTH);
	/* any byte changed */
	for (size_t i = 2; i < blen; i += 13) {
		box[i] ^= 0x01;
		int rc = relm_pair_welcome_open(&got, &pt, &ptlen, box, blen, J.e_priv, k.welcome, jh);
		ck_assert_msg(rc == RELM_EAUTH || rc == RELM_EBADKEY, "byte %zu: %d", i, rc);
		box[i] ^= 0x01;
	}
	for (size_t cut = 0; cut < blen; cut += 5)
		ck_assert_int_lt(relm_pair_welcome_open(&got, &pt, &ptlen, box, cut, J.e_priv, k.welcome, jh), 0);
	ck_assert_ptr_null(pt);
	free(box);
}
END_TEST

START_TEST(refuse)
{
	struct relm_pair_keys k;
	uint8_t s[32], jh[32], out[RELM_PAIR_REFUSE_LEN + 1], got_h[32], kmac2[32];
	int code = 0;
	static const int codes[] = { RELM_EEXIST, RELM_ELIMIT, RELM_EEXPIRED, RELM_EREPLAY };

	tu_rand_bytes(s, 32);
	relm_pair_derive(&k, s);
	tu_rand_bytes(jh, 32);
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		relm_pair_refuse_encode(out, codes[i], jh, k.mac);
		ck_assert_int_eq(relm_pair_type(out, RELM_PAIR_REFUSE_LEN), RELM_PAIR_REFUSE);
		ck_assert_int_eq(relm_pair_refuse_decode(&code, got_h, out, RELM_PAIR_REFUSE_LEN, k.mac), 0);
		ck_assert_int_eq(code, codes[i]);
		ck_assert_int_eq(memcmp(got_h, jh, 32), 0);
	}
	memcpy(kmac2, k.mac, 32);
	kmac2[31] ^= 0x80;
	ck_assert_int_eq(relm_pair_refuse_decode(&code, got_h, out, RELM_PAIR_REFUSE_LEN, kmac2), RELM_EAUTH);
	out[3] ^= 1;                                      /* another verdict, the mac unchanged */
	ck_assert_int_eq(relm_pair_refuse_decode(&code, got_h, out, RELM_PAIR_REFUSE_LEN, k.mac), RELM_EAUTH);
	out[3] ^= 1;
	ck_assert_int_eq(relm_pair_refuse_decode(&code, got_h, out, RELM_PAIR_REFUSE_LEN - 1, k.mac), RELM_ETRUNCATED);
	ck_assert_int_eq(relm_pair_refuse_decode(&code, got_h, out, RELM_PAIR_REFUSE_LEN + 1, k.mac), RELM_EMALFORMED);
	ck_assert_int_eq(relm_pair_type(out, 1), RELM_ETRUNCATED);
	out[1] = 9;
	ck_assert_int_eq(relm_pair_type(out, RELM_PAIR_REFUSE_LEN), RELM_EMALFORMED);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pairing_wire");
	TCase *tc = tcase_create("pairing");
	tcase_add_test(tc, code_round_trip);
	tcase_add_test(tc, code_errors);
	tcase_add_test(tc, derive);
	tcase_add_test(tc, join);
	tcase_add_test(tc, welcome);
	tcase_add_test(tc, refuse);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

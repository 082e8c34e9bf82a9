/*
 * x3dh.c — relationship setup (x3dh.h, proto/wire.md §4).
 *
 * Both sides fill the same HKDF input, F ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4], each
 * DH written straight into its slot so that no DH output lives anywhere
 * else; the whole input and the converted identity scalar are wiped at
 * out: whatever happened.  Any DH that fails (non-canonical key, all-zero
 * result) fails the handshake, and *sk is written only on success.
 */
#include <assert.h>
#include <string.h>
#include <sodium.h>
#include "crypto/x3dh.h"
#include "crypto/crypto.h"
#include "error.h"

#define X3DH_INFO      "relm/v1/x3dh"
#define REL_ID_LABEL   "relm/v1/rel"
#define MAILBOX_INFO   "relm/v1/mailbox/"
#define GATE_INFO      "relm/v1/gate"

enum {
	F_LEN = 32,                           /* 0xFF * 32: X3DH's F for X25519 */
	IKM_MAX = F_LEN + 4 * RELM_KEY_LEN,
};

/* SK = HKDF(salt = 32 zero bytes, ikm, info = "relm/v1/x3dh", 32). */
static void x3dh_kdf(uint8_t sk[RELM_KEY_LEN], const uint8_t *ikm, size_t ikmlen)
{
	static const uint8_t salt[RELM_KEY_LEN];   /* zeros */

	relm_hkdf(sk, RELM_KEY_LEN, salt, sizeof salt, ikm, ikmlen,
	          (const uint8_t *)X3DH_INFO, sizeof X3DH_INFO - 1);
}

int relm_x3dh_initiator(uint8_t sk[RELM_KEY_LEN],
                        const uint8_t ipk_b_sk[RELM_SIGN_SK_LEN],
                        const uint8_t ek_b_priv[RELM_KEY_LEN],
                        const struct relm_invite *inv)
{
	uint8_t ik_b[RELM_KEY_LEN];          /* IK_b private, X25519 */
	uint8_t ik_a_pub[RELM_KEY_LEN];      /* IK_a public, X25519 */
	uint8_t ikm[IKM_MAX];
	uint8_t *dh = ikm + F_LEN;
	size_t ikmlen = F_LEN + 3 * RELM_KEY_LEN;
	int err;

	memset(ikm, 0xff, F_LEN);
	if ((err = relm_ed25519_sk_to_x25519(ik_b, ipk_b_sk)) != 0 ||
	    (err = relm_ed25519_pk_to_x25519(ik_a_pub, inv->ipk)) != 0)
		goto out;
	/* DH1 = DH(IK_b, SPK_a)  DH2 = DH(EK_b, IK_a)  DH3 = DH(EK_b, SPK_a) */
	if ((err = relm_dh(dh, ik_b, inv->spk)) != 0 ||
	    (err = relm_dh(dh + RELM_KEY_LEN, ek_b_priv, ik_a_pub)) != 0 ||
	    (err = relm_dh(dh + 2 * RELM_KEY_LEN, ek_b_priv, inv->spk)) != 0)
		goto out;
	/* DH4 = DH(EK_b, OPK_a) */
	if (inv->flags & RELM_INVITE_F_OPK) {
		if ((err = relm_dh(dh + 3 * RELM_KEY_LEN, ek_b_priv, inv->opk)) != 0)
			goto out;
		ikmlen += RELM_KEY_LEN;
	}
	x3dh_kdf(sk, ikm, ikmlen);
	err = 0;
out:
	sodium_memzero(ik_b, sizeof ik_b);
	sodium_memzero(ikm, sizeof ikm);
	return err;
}

int relm_x3dh_responder(uint8_t sk[RELM_KEY_LEN],
                        const uint8_t ipk_a_sk[RELM_SIGN_SK_LEN],
                        const uint8_t spk_priv[RELM_KEY_LEN],
                        const uint8_t *opk_priv,
                        const uint8_t ipk_b[RELM_SIGN_PK_LEN],
                        const uint8_t ek_b[RELM_KEY_LEN])
{
	uint8_t ik_a[RELM_KEY_LEN];          /* IK_a private, X25519 */
	uint8_t ik_b_pub[RELM_KEY_LEN];      /* IK_b public, X25519 */
	uint8_t ikm[IKM_MAX];
	uint8_t *dh = ikm + F_LEN;
	size_t ikmlen = F_LEN + 3 * RELM_KEY_LEN;
	int err;

	memset(ikm, 0xff, F_LEN);
	if ((err = relm_ed25519_sk_to_x25519(ik_a, ipk_a_sk)) != 0 ||
	    (err = relm_ed25519_pk_to_x25519(ik_b_pub, ipk_b)) != 0)
		goto out;
	/* DH1 = DH(SPK_a, IK_b)  DH2 = DH(IK_a, EK_b)  DH3 = DH(SPK_a, EK_b) */
	if ((err = relm_dh(dh, spk_priv, ik_b_pub)) != 0 ||
	    (err = relm_dh(dh + RELM_KEY_LEN, ik_a, ek_b)) != 0 ||
	    (err = relm_dh(dh + 2 * RELM_KEY_LEN, spk_priv, ek_b)) != 0)
		goto out;
	/* DH4 = DH(OPK_a, EK_b) */
	if (opk_priv != NULL) {
		if ((err = relm_dh(dh + 3 * RELM_KEY_LEN, opk_priv, ek_b)) != 0)
			goto out;
		ikmlen += RELM_KEY_LEN;
	}
	x3dh_kdf(sk, ikm, ikmlen);
	err = 0;
out:
	sodium_memzero(ik_a, sizeof ik_a);
	sodium_memzero(ikm, sizeof ikm);
	return err;
}

void relm_rel_id(uint8_t id[RELM_ID_LEN], const uint8_t ipk_a[RELM_SIGN_PK_LEN],
                 const uint8_t ipk_b[RELM_SIGN_PK_LEN], const uint8_t ek_b[RELM_KEY_LEN])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, RELM_ID_LEN);
	crypto_generichash_update(&st, (const uint8_t *)REL_ID_LABEL, sizeof REL_ID_LABEL - 1);
	crypto_generichash_update(&st, ipk_a, RELM_SIGN_PK_LEN);
	crypto_generichash_update(&st, ipk_b, RELM_SIGN_PK_LEN);
	crypto_generichash_update(&st, ek_b, RELM_KEY_LEN);
	crypto_generichash_final(&st, id, RELM_ID_LEN);
}

void relm_rel_ad(uint8_t ad[RELM_AD_LEN], const uint8_t ipk_a[RELM_SIGN_PK_LEN],
                 const uint8_t ipk_b[RELM_SIGN_PK_LEN])
{
	memcpy(ad, ipk_a, RELM_SIGN_PK_LEN);
	memcpy(ad + RELM_SIGN_PK_LEN, ipk_b, RELM_SIGN_PK_LEN);
}

void relm_mailbox_keypair(uint8_t pk[RELM_SIGN_PK_LEN], uint8_t sk[RELM_SIGN_SK_LEN],
                          const uint8_t shared[RELM_KEY_LEN], char side)
{
	uint8_t info[sizeof MAILBOX_INFO];   /* label ‖ side, no NUL */
	uint8_t seed[32];

	assert(side == 'a' || side == 'b');
	memcpy(info, MAILBOX_INFO, sizeof MAILBOX_INFO - 1);
	info[sizeof MAILBOX_INFO - 1] = (uint8_t)side;
	relm_hkdf(seed, sizeof seed, NULL, 0, shared, RELM_KEY_LEN, info, sizeof info);
	relm_sign_keypair_from_seed(pk, sk, seed);
	sodium_memzero(seed, sizeof seed);
}

void relm_gate_key(uint8_t gk[RELM_KEY_LEN], const uint8_t shared[RELM_KEY_LEN])
{
	relm_hkdf(gk, RELM_KEY_LEN, NULL, 0, shared, RELM_KEY_LEN,
	          (const uint8_t *)GATE_INFO, sizeof GATE_INFO - 1);
}

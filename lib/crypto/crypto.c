/*
 * crypto.c — the primitives of proto/wire.md §2 on libsodium 1.0.18.  Each
 * function reads like its line of that section's table; temporaries that hold secrets are wiped before
 * return.
 */
#include <string.h>
#include <sodium.h>
#include "crypto/crypto.h"
#include "crypto/ct.h"
#include "error.h"

int relm_crypto_init(void)
{
	return sodium_init() < 0 ? RELM_EINVAL : 0;
}

/* RFC 5869 §2.2–2.3 with HMAC-SHA256 as the PRF. */
int relm_hkdf(uint8_t *out, size_t outlen,
              const uint8_t *salt, size_t saltlen,
              const uint8_t *ikm, size_t ikmlen,
              const uint8_t *info, size_t infolen)
{
	uint8_t prk[crypto_auth_hmacsha256_BYTES];
	uint8_t t[crypto_auth_hmacsha256_BYTES];
	uint8_t zero[crypto_auth_hmacsha256_BYTES] = { 0 };
	crypto_auth_hmacsha256_state st;
	size_t done = 0;
	uint8_t ctr = 1;

	if (outlen > 255 * sizeof t)
		return RELM_EINVAL;
	if (salt == NULL || saltlen == 0) {
		salt = zero;
		saltlen = sizeof zero;
	}
	/* Extract: PRK = HMAC(salt, IKM) */
	crypto_auth_hmacsha256_init(&st, salt, saltlen);
	crypto_auth_hmacsha256_update(&st, ikm, ikmlen);
	crypto_auth_hmacsha256_final(&st, prk);
	/* Expand: T(i) = HMAC(PRK, T(i-1) ‖ info ‖ i) */
	while (done < outlen) {
		size_t take;
		crypto_auth_hmacsha256_init(&st, prk, sizeof prk);
		if (ctr > 1)
			crypto_auth_hmacsha256_update(&st, t, sizeof t);
		if (infolen)
			crypto_auth_hmacsha256_update(&st, info, infolen);
		crypto_auth_hmacsha256_update(&st, &ctr, 1);
		crypto_auth_hmacsha256_final(&st, t);
		take = outlen - done < sizeof t ? outlen - done : sizeof t;
		memcpy(out + done, t, take);
		done += take;
		ctr++;
	}
	sodium_memzero(prk, sizeof prk);
	sodium_memzero(t, sizeof t);
	sodium_memzero(&st, sizeof st);
	return 0;
}

void relm_kdf_rk(uint8_t rk_out[RELM_KEY_LEN], uint8_t ck_out[RELM_KEY_LEN],
                 const uint8_t rk[RELM_KEY_LEN], const uint8_t dh[RELM_KEY_LEN])
{
	static const uint8_t info[] = "relm/v1/root";
	uint8_t okm[2 * RELM_KEY_LEN];

	relm_hkdf(okm, sizeof okm, rk, RELM_KEY_LEN, dh, RELM_KEY_LEN, info, sizeof info - 1);
	memcpy(rk_out, okm, RELM_KEY_LEN);
	memcpy(ck_out, okm + RELM_KEY_LEN, RELM_KEY_LEN);
	sodium_memzero(okm, sizeof okm);
}

void relm_kdf_ck(uint8_t mk[RELM_KEY_LEN], uint8_t ck_out[RELM_KEY_LEN],
                 const uint8_t ck[RELM_KEY_LEN])
{
	static const uint8_t one = 0x01, two = 0x02;
	crypto_auth_hmacsha256_state keyed, st;
	uint8_t next[RELM_KEY_LEN];

	/* Both HMACs share the key: absorb it once (the inner and outer pads,
	 * two SHA-256 compressions) and copy the state — same output, six
	 * compressions per step instead of eight. */
	crypto_auth_hmacsha256_init(&keyed, ck, RELM_KEY_LEN);
	st = keyed;
	crypto_auth_hmacsha256_update(&st, &one, 1);
	crypto_auth_hmacsha256_final(&st, mk);
	crypto_auth_hmacsha256_update(&keyed, &two, 1);
	crypto_auth_hmacsha256_final(&keyed, next);
	memcpy(ck_out, next, RELM_KEY_LEN);
	sodium_memzero(next, sizeof next);
	sodium_memzero(&st, sizeof st);
	sodium_memzero(&keyed, sizeof keyed);
}

void relm_x25519_public(uint8_t pub[RELM_KEY_LEN], const uint8_t priv[RELM_KEY_LEN])
{
	crypto_scalarmult_base(pub, priv);
}

int relm_x25519_is_canonical(const uint8_t pub[RELM_KEY_LEN])
{
	/* p = 2^255 - 19: reject the top bit and the 19 values p .. 2^255-1. */
	if (pub[31] & 0x80)
		return 0;
	if (pub[31] != 0x7f)
		return 1;
	for (int i = 30; i >= 1; i--)
		if (pub[i] != 0xff)
			return 1;
	return pub[0] < 0xed;
}

int relm_ed25519_is_valid(const uint8_t pk[RELM_SIGN_PK_LEN])
{
	return crypto_core_ed25519_is_valid_point(pk) == 1;
}

int relm_dh(uint8_t out[RELM_KEY_LEN], const uint8_t priv[RELM_KEY_LEN],
            const uint8_t pub[RELM_KEY_LEN])
{
	uint8_t s[RELM_KEY_LEN];
	int r;

	if (!relm_x25519_is_canonical(pub))
		return RELM_EBADKEY;
	/* crypto_scalarmult fails (-1) on an all-zero result: a low-order point.
	 * The verdict is computed from the shared secret but depends only on
	 * pub (our scalar is clamped), so it is public (ct.h). */
	r = crypto_scalarmult(s, priv, pub);
	RELM_CT_PUBLIC(&r, sizeof r);
	if (r != 0) {
		sodium_memzero(s, sizeof s);
		return RELM_EBADKEY;
	}
	memcpy(out, s, RELM_KEY_LEN);
	sodium_memzero(s, sizeof s);
	return 0;
}

int relm_ed25519_pk_to_x25519(uint8_t x_pk[RELM_KEY_LEN], const uint8_t ed_pk[RELM_SIGN_PK_LEN])
{
	uint8_t t[RELM_KEY_LEN];

	if (!relm_ed25519_is_valid(ed_pk) || crypto_sign_ed25519_pk_to_curve25519(t, ed_pk) != 0)
		return RELM_EBADKEY;
	memcpy(x_pk, t, RELM_KEY_LEN);
	return 0;
}

int relm_ed25519_sk_to_x25519(uint8_t x_sk[RELM_KEY_LEN], const uint8_t ed_sk[RELM_SIGN_SK_LEN])
{
	return crypto_sign_ed25519_sk_to_curve25519(x_sk, ed_sk) == 0 ? 0 : RELM_EBADKEY;
}

void relm_sign_keypair_from_seed(uint8_t pk[RELM_SIGN_PK_LEN], uint8_t sk[RELM_SIGN_SK_LEN],
                                 const uint8_t seed[32])
{
	crypto_sign_seed_keypair(pk, sk, seed);
}

void relm_aead_seal(uint8_t *ct, const uint8_t *pt, size_t ptlen,
                    const uint8_t *ad, size_t adlen,
                    const uint8_t nonce[RELM_NONCE_LEN], const uint8_t key[RELM_KEY_LEN])
{
	crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, pt, ptlen, ad, adlen,
	                                           NULL, nonce, key);
}

int relm_aead_open(uint8_t *pt, const uint8_t *ct, size_t ctlen,
                   const uint8_t *ad, size_t adlen,
                   const uint8_t nonce[RELM_NONCE_LEN], const uint8_t key[RELM_KEY_LEN])
{
	int r;

	if (ctlen < RELM_TAG_LEN)
		return RELM_EAUTH;
	r = crypto_aead_xchacha20poly1305_ietf_decrypt(pt, NULL, NULL, ct, ctlen, ad, adlen,
	                                               nonce, key);
	/* whether the tag verified is public (the peer sees what we do next);
	 * the comparison itself is libsodium's constant-time crypto_verify_16 */
	RELM_CT_PUBLIC(&r, sizeof r);
	if (r != 0) {
		sodium_memzero(pt, ctlen - RELM_TAG_LEN);
		return RELM_EAUTH;
	}
	/* What authenticated is message content, not key material: the payload
	 * parser branches on it by nature.  The ct check is about keys (ct.h). */
	RELM_CT_PUBLIC(pt, ctlen - RELM_TAG_LEN);
	return 0;
}

void relm_gate_tag(uint8_t tag[RELM_GATE_LEN], const uint8_t gk[RELM_KEY_LEN],
                   const uint8_t *m, size_t len)
{
	crypto_generichash(tag, RELM_GATE_LEN, m, len, gk, RELM_KEY_LEN);
}

int relm_gate_check(const uint8_t tag[RELM_GATE_LEN], const uint8_t gk[RELM_KEY_LEN],
                    const uint8_t *m, size_t len)
{
	uint8_t want[RELM_GATE_LEN];
	int ok;

	relm_gate_tag(want, gk, m, len);
	ok = sodium_memcmp(want, tag, RELM_GATE_LEN) == 0;
	sodium_memzero(want, sizeof want);
	return ok;
}

void relm_node_id(uint8_t id[RELM_ID_LEN], const uint8_t parent_id[RELM_ID_LEN],
                  const uint8_t dh_pub[RELM_KEY_LEN])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, RELM_ID_LEN);
	crypto_generichash_update(&st, parent_id, RELM_ID_LEN);
	crypto_generichash_update(&st, dh_pub, RELM_KEY_LEN);
	crypto_generichash_final(&st, id, RELM_ID_LEN);
}

void relm_hex(char *out, const uint8_t *in, size_t len)
{
	sodium_bin2hex(out, 2 * len + 1, in, len);
}

/* Constant time in the digits (make ct checks it): hex may spell a secret
 * key, so no branch and no table index depends on a character — the
 * arithmetic nibble decoder of libsodium's sodium_hex2bin, without its
 * per-character "is this a digit?" branch (memcheck flags that one).  Only
 * the length (public) and the final verdict decide anything; on failure
 * out is wiped, so a bad spelling never leaves half a key behind. */
int relm_unhex(uint8_t *out, size_t len, const char *hex, size_t hexlen)
{
	unsigned bad = 0;     /* low byte 0xff once any character was not hex */

	if (hexlen != 2 * len)
		return RELM_EMALFORMED;
	for (size_t i = 0; i < hexlen; i++) {
		unsigned c = (unsigned char)hex[i];
		unsigned num = c ^ 48U;                              /* '0'..'9' → 0..9 */
		unsigned num_ok = (num - 10U) >> 8;                  /* ~0 iff num < 10 */
		unsigned alpha = (c & ~32U) - 55U;                   /* 'a'/'A' → 10 */
		unsigned alpha_ok = ((alpha - 10U) ^ (alpha - 16U)) >> 8;   /* ~0 iff 10..15 */
		unsigned v = (num_ok & num) | (alpha_ok & alpha);

		bad |= ~(num_ok | alpha_ok) & 0xffU;
		if (i & 1)
			out[i / 2] = (uint8_t)(out[i / 2] | (v & 15U));
		else
			out[i / 2] = (uint8_t)((v & 15U) << 4);
	}
	/* bad is 0 or 0xff: fold to 0/1 without a branch, then wipe on failure */
	bad = (bad + 1U) >> 8;
	for (size_t i = 0; i < len; i++)
		out[i] = (uint8_t)(out[i] & (bad - 1U));
	return (int)bad * RELM_EMALFORMED;
}

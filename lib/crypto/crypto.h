/*
 * crypto.h — the primitives of proto/wire.md §2, each named as it names them.
 *
 * Everything here is a thin, hard-to-misuse layer over libsodium 1.0.18:
 * fixed-size arrays in prototypes, out-params written only on success,
 * secrets on the caller's stack wiped by the caller (or by these functions
 * for their own temporaries).  No randomness is drawn here: callers pass
 * the random bytes in (the engine gets them from struct relm_env).
 */
#ifndef RELM_CRYPTO_H
#define RELM_CRYPTO_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"

/* One-time library set-up (sodium_init); safe to call repeatedly.
 * Returns 0 or RELM_EINVAL when libsodium cannot initialise. */
int relm_crypto_init(void);

/* HKDF-SHA256 (RFC 5869) on crypto_auth_hmacsha256.  salt may be NULL
 * (treated as HashLen zero bytes).  outlen ≤ 255*32.
 * Returns 0, or RELM_EINVAL if outlen is too large (out untouched). */
int relm_hkdf(uint8_t *out, size_t outlen,
              const uint8_t *salt, size_t saltlen,
              const uint8_t *ikm, size_t ikmlen,
              const uint8_t *info, size_t infolen);

/* KDF_RK(rk, dh) = HKDF(salt=rk, ikm=dh, info="relm/v1/root", 64)
 * → new root key ‖ chain key.  rk_out may alias rk. */
void relm_kdf_rk(uint8_t rk_out[RELM_KEY_LEN], uint8_t ck_out[RELM_KEY_LEN],
                 const uint8_t rk[RELM_KEY_LEN], const uint8_t dh[RELM_KEY_LEN]);

/* KDF_CK(ck): mk = HMAC(ck, 0x01), ck' = HMAC(ck, 0x02).  ck_out may alias ck. */
void relm_kdf_ck(uint8_t mk[RELM_KEY_LEN], uint8_t ck_out[RELM_KEY_LEN],
                 const uint8_t ck[RELM_KEY_LEN]);

/* X25519 public key from a 32-byte private scalar. */
void relm_x25519_public(uint8_t pub[RELM_KEY_LEN], const uint8_t priv[RELM_KEY_LEN]);

/* DH(priv, pub) with X25519.  Returns 0, or RELM_EBADKEY if pub is not a
 * canonical encoding or the result is all zero (low-order point); out is
 * then left untouched. */
int relm_dh(uint8_t out[RELM_KEY_LEN], const uint8_t priv[RELM_KEY_LEN],
            const uint8_t pub[RELM_KEY_LEN]);

/* 1 if pub is a canonical X25519 u-coordinate (< 2^255 - 19), else 0. */
int relm_x25519_is_canonical(const uint8_t pub[RELM_KEY_LEN]);
/* 1 if pk is a canonical Ed25519 point of the main subgroup, else 0. */
int relm_ed25519_is_valid(const uint8_t pk[RELM_SIGN_PK_LEN]);

/* Ed25519 → X25519 conversion for the identity DH key (proto/wire.md §2, §4).
 * Return 0 or RELM_EBADKEY. */
int relm_ed25519_pk_to_x25519(uint8_t x_pk[RELM_KEY_LEN], const uint8_t ed_pk[RELM_SIGN_PK_LEN]);
int relm_ed25519_sk_to_x25519(uint8_t x_sk[RELM_KEY_LEN], const uint8_t ed_sk[RELM_SIGN_SK_LEN]);

/* Ed25519 key pair from a 32-byte seed. */
void relm_sign_keypair_from_seed(uint8_t pk[RELM_SIGN_PK_LEN], uint8_t sk[RELM_SIGN_SK_LEN],
                                 const uint8_t seed[32]);

/* XChaCha20-Poly1305-IETF.  ct must hold ptlen + RELM_TAG_LEN bytes.
 * The nonce is random and carried in the header: never derive it. */
void relm_aead_seal(uint8_t *ct, const uint8_t *pt, size_t ptlen,
                    const uint8_t *ad, size_t adlen,
                    const uint8_t nonce[RELM_NONCE_LEN], const uint8_t key[RELM_KEY_LEN]);
/* Opens ct (ctlen ≥ RELM_TAG_LEN) into pt (ctlen - RELM_TAG_LEN bytes).
 * Returns 0, or RELM_EAUTH (pt is then wiped). */
int relm_aead_open(uint8_t *pt, const uint8_t *ct, size_t ctlen,
                   const uint8_t *ad, size_t adlen,
                   const uint8_t nonce[RELM_NONCE_LEN], const uint8_t key[RELM_KEY_LEN]);

/* node_id = BLAKE2b-128(parent_id ‖ dh_pub) (proto/wire.md §2.3). */
void relm_node_id(uint8_t id[RELM_ID_LEN], const uint8_t parent_id[RELM_ID_LEN],
                  const uint8_t dh_pub[RELM_KEY_LEN]);

/* gate = BLAKE2b-128 keyed with the relationship's gate key over every
 * byte of the envelope before the tag (proto/wire.md §5.1). */
void relm_gate_tag(uint8_t tag[RELM_GATE_LEN], const uint8_t gk[RELM_KEY_LEN],
                   const uint8_t *m, size_t len);
/* 1 if tag is the gate tag of m under gk (constant-time comparison), else 0. */
int relm_gate_check(const uint8_t tag[RELM_GATE_LEN], const uint8_t gk[RELM_KEY_LEN],
                    const uint8_t *m, size_t len);

/* Lowercase hex; out must hold 2*len+1 bytes. */
void relm_hex(char *out, const uint8_t *in, size_t len);
/* Parse exactly 2*len hex chars (either case) into out, in constant time
 * in the characters (fit for secret keys; make ct checks it).  Returns 0,
 * or RELM_EMALFORMED with out zeroed (a wrong length leaves out untouched). */
int relm_unhex(uint8_t *out, size_t len, const char *hex, size_t hexlen);

#endif

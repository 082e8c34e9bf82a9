/*
 * x3dh.h — relationship setup (proto/wire.md §4).
 *
 * Roles: side A is the inviter (published the invite; the "responder" of
 * X3DH), side B the accepter (the X3DH "initiator").
 *
 *   DH1 = DH(IK_b, SPK_a)  DH2 = DH(EK_b, IK_a)  DH3 = DH(EK_b, SPK_a)
 *   DH4 = DH(EK_b, OPK_a)  if a one-time prekey is used
 *   SK  = HKDF(salt = 32 zero bytes, ikm = 0xFF*32 ‖ DH1 ‖ DH2 ‖ DH3 [‖ DH4],
 *              info = "relm/v1/x3dh", 32)
 * IK are the IPKs (Ed25519) converted to X25519.
 *
 *   rel_id = BLAKE2b-128("relm/v1/rel" ‖ IPK_a ‖ IPK_b ‖ EK_b)
 *   AD     = IPK_a ‖ IPK_b                                 (64 bytes)
 *   mailbox seed(side) = HKDF(salt = none, ikm = SK, info = "relm/v1/mailbox/" ‖ side, 32)
 *            side = 'a' | 'b'; key pair = Ed25519 from that seed; id = its public key.
 *   gate key = HKDF(salt = none, ikm = SK, info = "relm/v1/gate", 32): the key of
 *            the tag that ends every envelope of the relationship (proto/wire.md §5.1).
 */
#ifndef RELM_X3DH_H
#define RELM_X3DH_H

#include <stdint.h>
#include "limits.h"
#include "wire/invite.h"

#define RELM_AD_LEN (2 * RELM_SIGN_PK_LEN)

/* Accepter's side.  ipk_b_sk: B's Ed25519 secret key; ek_b_priv: a fresh
 * X25519 scalar the caller drew.  Uses inv->opk if inv has one.
 * Returns 0 or RELM_EBADKEY; sk untouched on error. */
int relm_x3dh_initiator(uint8_t sk[RELM_KEY_LEN],
                        const uint8_t ipk_b_sk[RELM_SIGN_SK_LEN],
                        const uint8_t ek_b_priv[RELM_KEY_LEN],
                        const struct relm_invite *inv);

/* Inviter's side.  opk_priv may be NULL (no one-time prekey used).
 * Returns 0 or RELM_EBADKEY; sk untouched on error. */
int relm_x3dh_responder(uint8_t sk[RELM_KEY_LEN],
                        const uint8_t ipk_a_sk[RELM_SIGN_SK_LEN],
                        const uint8_t spk_priv[RELM_KEY_LEN],
                        const uint8_t *opk_priv,
                        const uint8_t ipk_b[RELM_SIGN_PK_LEN],
                        const uint8_t ek_b[RELM_KEY_LEN]);

void relm_rel_id(uint8_t id[RELM_ID_LEN], const uint8_t ipk_a[RELM_SIGN_PK_LEN],
                 const uint8_t ipk_b[RELM_SIGN_PK_LEN], const uint8_t ek_b[RELM_KEY_LEN]);
void relm_rel_ad(uint8_t ad[RELM_AD_LEN], const uint8_t ipk_a[RELM_SIGN_PK_LEN],
                 const uint8_t ipk_b[RELM_SIGN_PK_LEN]);

/* The derived mailbox key pair of one side ('a' or 'b'). */
void relm_mailbox_keypair(uint8_t pk[RELM_SIGN_PK_LEN], uint8_t sk[RELM_SIGN_SK_LEN],
                          const uint8_t shared[RELM_KEY_LEN], char side);

/* The relationship's gate key (shared by every device of both sides). */
void relm_gate_key(uint8_t gk[RELM_KEY_LEN], const uint8_t shared[RELM_KEY_LEN]);

#endif

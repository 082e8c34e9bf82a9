/*
 * successor.h — the successor statement of an identity roll
 * (proto/revocation.md §3): the proton's old identity key names its new
 * one, and the new one accepts, so neither alone can claim the other.
 *
 *   version(1)=1 old_ipk(32) new_ipk(32) seq(8) sig_old(64) sig_new(64)
 *   sig_old = Ed25519 by old_ipk over "relm/v1/successor/old" ‖ version..seq
 *   sig_new = Ed25519 by new_ipk over "relm/v1/successor/new" ‖ version..seq
 *
 * seq is the roll's number: the identity key a relationship was made with
 * has sequence 0, its first successor 1, and so on.  In a relationship it
 * travels as an `identity` payload whose body is the statement in
 * lowercase hex (RELM_SUCCESSOR_HEX bytes).
 */
#ifndef RELM_SUCCESSOR_H
#define RELM_SUCCESSOR_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"

enum {
	RELM_SUCCESSOR_VERSION = 1,
	RELM_SUCCESSOR_LEN     = 1 + 32 + 32 + 8 + 64 + 64,
	RELM_SUCCESSOR_HEX     = 2 * RELM_SUCCESSOR_LEN,
};

struct relm_successor {
	uint8_t old_ipk[RELM_SIGN_PK_LEN];
	uint8_t new_ipk[RELM_SIGN_PK_LEN];
	uint64_t seq;
};

/* Sign the statement old_sk's key → new_sk's key with sequence seq into
 * out (RELM_SUCCESSOR_LEN bytes); s receives its fields.  Returns 0 or
 * RELM_EINVAL (seq 0, or the two keys equal). */
int relm_successor_sign(uint8_t out[RELM_SUCCESSOR_LEN], struct relm_successor *s,
                        const uint8_t old_sk[RELM_SIGN_SK_LEN],
                        const uint8_t new_sk[RELM_SIGN_SK_LEN], uint64_t seq);

/* Decode and verify both signatures.  Returns 0, RELM_ETRUNCATED /
 * RELM_EMALFORMED (length, seq 0, equal keys), RELM_EVERSION,
 * RELM_EBADKEY (a key that is not a valid point) or RELM_EBADSIG; out is
 * untouched on error.  Whether old_ipk is the key the relationship pins is
 * the engine's check (relm_rel_receive). */
int relm_successor_decode(struct relm_successor *out, const uint8_t *buf, size_t len);

#endif

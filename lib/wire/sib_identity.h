/*
 * sib_identity.h — the sibling message that tells the other devices of a
 * proton that it rolled its identity key (proto/revocation.md §3.3):
 *
 *   type(1)=14 isk(64) successor(201) circle_len(4) circle
 *
 * isk: the new identity key pair's Ed25519 secret key (every device holds
 * it, proto/devices.md §1); successor: the statement old → new
 * (wire/successor.h), which the receiver checks against the key it holds;
 * circle: the circle re-signed by the new key at the next epoch
 * (wire/circle.h).  It travels only on sibling sessions, which are
 * end-to-end encrypted between the proton's own devices.
 *
 * Type 14 of the sibling message table (wire/sibling.h: 8–11 are the bulk
 * state of pairing, 12 the strategies' own message, 13 the bundle).  relm_sib_decode gives it as a raw view; this file
 * reads and writes its body.
 */
#ifndef RELM_SIB_IDENTITY_H
#define RELM_SIB_IDENTITY_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"
#include "wire/sibling.h"
#include "wire/successor.h"

enum {
	RELM_SIB_IDENTITY_MIN = 1 + RELM_SIGN_SK_LEN + RELM_SUCCESSOR_LEN + 4,
};

/* A decoded identity message: views into the caller's bytes (isk is
 * secret: the caller wipes the buffer). */
struct relm_sib_identity {
	const uint8_t *isk;                  /* RELM_SIGN_SK_LEN bytes */
	const uint8_t *stmt;                 /* RELM_SUCCESSOR_LEN bytes, not yet verified */
	const uint8_t *circle;
	size_t circle_len;
};

/* A fresh malloc'd message (release with relm_sib_buf_free).  0,
 * RELM_EINVAL (an empty circle, or one too big for RELM_SIBLING_MAX),
 * RELM_ENOMEM. */
int relm_sib_identity_encode(uint8_t **out, size_t *outlen, const uint8_t isk[RELM_SIGN_SK_LEN],
                             const uint8_t stmt[RELM_SUCCESSOR_LEN],
                             const uint8_t *circle, size_t circle_len);

/* buf: the whole message, type byte included.  0, RELM_ETRUNCATED,
 * RELM_EMALFORMED (another type, a circle length that does not match, an
 * empty circle).  Nothing is verified here: lib/core checks the statement,
 * the key pair and the circle. */
int relm_sib_identity_decode(struct relm_sib_identity *out, const uint8_t *buf, size_t len);

#endif

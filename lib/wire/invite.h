/*
 * invite.h — invites (proto/wire.md §3; their use: proto/ratchet.md §8): "relm:" followed
 * by the base64url (no padding) of
 *
 *   version(1)=1 flags(1) ipk(32) spk_id(4) spk(32) [opk_id(4) opk(32)]
 *   expires_ms(8) mailbox_len(1) mailbox(mailbox_len) sig(64)
 *
 * flags: bit0 one-time prekey present, bit1 multi-use; others zero.
 * sig = Ed25519 by the IPK over "relm/v1/invite" ‖ every byte before sig
 * (it signs the SPK along with everything else).  mailbox is the address
 * ("host:port/<id>") where the accepter posts the initial envelope.
 * All big-endian.
 */
#ifndef RELM_INVITE_H
#define RELM_INVITE_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"

enum relm_invite_flags {
	RELM_INVITE_F_OPK   = 0x01,
	RELM_INVITE_F_MULTI = 0x02,
	RELM_INVITE_F_KNOWN = 0x03,
};

struct relm_invite {
	uint8_t version;
	uint8_t flags;
	uint8_t ipk[RELM_SIGN_PK_LEN];
	uint32_t spk_id;
	uint8_t spk[RELM_KEY_LEN];
	uint32_t opk_id;                 /* meaningful if flags & RELM_INVITE_F_OPK */
	uint8_t opk[RELM_KEY_LEN];
	uint64_t expires_ms;
	char mailbox[RELM_MAILBOX_ADDR_MAX + 1];
	uint8_t sig[RELM_SIG_LEN];
};

/* Longest text form, with its NUL. */
#define RELM_INVITE_TEXT_MAX 700

/* Sign inv in place with the proton's Ed25519 secret key.  Returns 0 or
 * RELM_EINVAL (fields out of range). */
int relm_invite_sign(struct relm_invite *inv, const uint8_t ipk_sk[RELM_SIGN_SK_LEN]);

/* Write "relm:..." with a NUL into out (cap ≥ RELM_INVITE_TEXT_MAX is always
 * enough).  Returns the length without the NUL, or RELM_EINVAL. */
int relm_invite_encode(char *out, size_t cap, const struct relm_invite *inv);

/* Parse and verify (structure, canonical keys, signature).  Expiry is the
 * caller's to check against its clock.  Surrounding whitespace is allowed.
 * Returns 0 or RELM_EMALFORMED / RELM_ETRUNCATED / RELM_EVERSION /
 * RELM_EBADKEY / RELM_EBADSIG; out is untouched on error. */
int relm_invite_decode(struct relm_invite *out, const char *text, size_t len);

/* The binary form (what the text form base64url-encodes; a circle carries
 * device invites so).  to_bin: out must hold RELM_INVITE_BIN_MAX bytes;
 * returns the length or RELM_EINVAL.  from_bin: as relm_invite_decode,
 * after the base64url step. */
#define RELM_INVITE_BIN_MAX 434

/* The text forms' shared steps (invites, pairing codes): strip
 * surrounding whitespace; strict base64url without padding (one spelling
 * per text) into out, 0 or RELM_EMALFORMED. */
void relm_wire_trim(const char **text, size_t *len);
int relm_wire_b64url_decode(uint8_t *out, size_t cap, size_t *outlen, const char *text, size_t len);
int relm_invite_to_bin(uint8_t *out, const struct relm_invite *inv);
int relm_invite_from_bin(struct relm_invite *out, const uint8_t *buf, size_t len);

#endif

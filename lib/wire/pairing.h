/*
 * pairing.h — the messages that add a device to a proton
 * (proto/devices.md §12): the pairing code, what its secret S derives, and
 * the JOIN, WELCOME and REFUSE messages posted to the two pairing
 * mailboxes.
 *
 *   code     "relm-pair:" ‖ base64url(version(1)=1 ‖ expires_ms(8) ‖
 *            host_len(1) ‖ host ‖ S(32))
 *   JOIN     version(1) type(1)=1 device_id(16) dpk(32) eph(32) label_len(1)
 *            label invite_len(2) invite sig(64) mac(32)
 *   WELCOME  version(1) type(2)=2 eph(32) nonce(24) box
 *   REFUSE   version(1) type(1)=3 code(2) join_hash(32) mac(32)
 *
 * Pure: the caller gives the randomness (ephemeral keys, nonces) and the
 * clock.  Decoders check every length before use; on error their output is
 * untouched (wiped where it could hold secrets).
 */
#ifndef RELM_PAIRING_H
#define RELM_PAIRING_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"
#include "wire/invite.h"

enum {
	RELM_PAIR_VERSION   = 1,
	RELM_PAIR_JOIN      = 1,
	RELM_PAIR_WELCOME   = 2,
	RELM_PAIR_REFUSE    = 3,
	RELM_PAIR_SECRET_LEN = 32,
	RELM_PAIR_HOST_MAX  = 255,
	RELM_PAIR_LABEL_MAX = 64,                      /* the new device's label (a circle's) */
	RELM_PAIR_CODE_BIN_MAX = 1 + 8 + 1 + RELM_PAIR_HOST_MAX + RELM_PAIR_SECRET_LEN,
	RELM_PAIR_CODE_MAX  = 10 + (RELM_PAIR_CODE_BIN_MAX * 4 + 2) / 3 + 1,   /* text, with NUL */
	RELM_PAIR_JOIN_MAX  = 2 + 16 + 32 + 32 + 1 + RELM_PAIR_LABEL_MAX + 2 + RELM_INVITE_BIN_MAX + 64 + 32,
	RELM_PAIR_REFUSE_LEN = 1 + 1 + 2 + 32 + 32,
	RELM_PAIR_WELCOME_HEAD = 1 + 1 + 32 + 24,     /* before the box */
	RELM_PAIR_TTL_MS    = 600000,                  /* a code is good for 10 minutes */
	RELM_PAIR_WAIT_MS   = 60000,                   /* device.pair.join waits this long */
};

/* The code (§12.1). */
struct relm_pair_code {
	uint64_t expires_ms;
	char host[RELM_PAIR_HOST_MAX + 1];             /* "host:port", no mailbox id */
	uint8_t secret[RELM_PAIR_SECRET_LEN];          /* S: secret */
};

/* Text form into out (cap ≥ RELM_PAIR_CODE_MAX).  Returns the length, or
 * RELM_EINVAL (a host that is not "host:port", cap too small). */
int relm_pair_code_encode(char *out, size_t cap, const struct relm_pair_code *c);
/* Parse (surrounding whitespace ignored).  RELM_EMALFORMED (prefix,
 * base64url, bytes after S, a bad host), RELM_ETRUNCATED, RELM_EVERSION,
 * RELM_EEXPIRED (expires_ms ≤ now_ms), checked in that order. */
int relm_pair_code_decode(struct relm_pair_code *out, const char *text, size_t len, uint64_t now_ms);

/* What S derives (§12.2): HKDF-SHA256, no salt, ikm = S, one label each. */
struct relm_pair_keys {
	uint8_t mbox_e_pk[RELM_SIGN_PK_LEN], mbox_e_sk[RELM_SIGN_SK_LEN];   /* M_E: E reads, J posts JOIN */
	uint8_t mbox_j_pk[RELM_SIGN_PK_LEN], mbox_j_sk[RELM_SIGN_SK_LEN];   /* M_J: J reads, E answers */
	uint8_t mac[32];                               /* K_mac */
	uint8_t welcome[32];                           /* K_w */
	uint8_t id[RELM_ID_LEN];                       /* the pairing's id */
};
void relm_pair_derive(struct relm_pair_keys *k, const uint8_t secret[RELM_PAIR_SECRET_LEN]);

/* The type byte of a pairing message (after its version), or a negative
 * error: RELM_ETRUNCATED, RELM_EVERSION, RELM_EMALFORMED (unknown type). */
int relm_pair_type(const uint8_t *buf, size_t len);

/* JOIN (§12.3). */
struct relm_pair_join {
	uint8_t device_id[RELM_ID_LEN];
	uint8_t dpk[RELM_SIGN_PK_LEN];
	uint8_t eph[RELM_KEY_LEN];                     /* E_J */
	char label[RELM_PAIR_LABEL_MAX + 1];
	struct relm_invite invite;                     /* J's device invite, signed by dpk */
};
/* Sign with dsk (dpk's secret key), MAC with K_mac, into out (cap ≥
 * RELM_PAIR_JOIN_MAX).  Returns the length or RELM_EINVAL. */
int relm_pair_join_encode(uint8_t *out, size_t cap, const struct relm_pair_join *j,
                          const uint8_t dsk[RELM_SIGN_SK_LEN], const uint8_t kmac[32]);
/* Check, in §12.3's order: structure (RELM_EMALFORMED / RELM_ETRUNCATED /
 * RELM_EVERSION), the mac (RELM_EAUTH, constant time), keys (RELM_EBADKEY),
 * the signature and the device invite (RELM_EBADSIG: not signed by dpk,
 * or not naming dpk).  Whether the pairing is still offered and the device
 * new are the caller's checks. */
int relm_pair_join_decode(struct relm_pair_join *out, const uint8_t *buf, size_t len,
                          const uint8_t kmac[32]);
/* BLAKE2b-256 of a message's bytes (the JOIN's hash). */
void relm_pair_hash(uint8_t out[32], const uint8_t *buf, size_t len);

/* WELCOME (§12.4): the plaintext. */
struct relm_pair_welcome {
	uint8_t ipk_sk[RELM_SIGN_SK_LEN];              /* secret */
	uint8_t proton[RELM_ID_LEN];
	char label[256];                               /* the proton's label */
	uint8_t from_device[RELM_ID_LEN];              /* E's device id */
	const uint8_t *circle;                         /* the signed circle (a view) */
	size_t circle_len;
};
/* Seal w to the joiner: e_priv is E's fresh ephemeral X25519 secret,
 * eph_j the JOIN's eph, nonce 24 random bytes.  *out malloc'd (free with
 * free after use; it holds no secret in clear).  0, RELM_EINVAL,
 * RELM_EBADKEY (eph_j), RELM_ENOMEM. */
int relm_pair_welcome_seal(uint8_t **out, size_t *outlen, const struct relm_pair_welcome *w,
                           const uint8_t e_priv[RELM_KEY_LEN], const uint8_t eph_j[RELM_KEY_LEN],
                           const uint8_t kw[32], const uint8_t join_hash[32],
                           const uint8_t nonce[RELM_NONCE_LEN]);
/* Open with J's ephemeral secret.  *pt malloc'd (w->circle points into
 * it): wipe and free it with relm_pair_buf_free(*pt, *ptlen).  0,
 * RELM_ETRUNCATED / RELM_EMALFORMED / RELM_EVERSION, RELM_EBADKEY,
 * RELM_EAUTH (does not open: another JOIN's, or forged), RELM_ENOMEM. */
int relm_pair_welcome_open(struct relm_pair_welcome *w, uint8_t **pt, size_t *ptlen,
                           const uint8_t *buf, size_t len, const uint8_t e_j_priv[RELM_KEY_LEN],
                           const uint8_t kw[32], const uint8_t join_hash[32]);
void relm_pair_buf_free(uint8_t *buf, size_t len);

/* REFUSE (§12.5): code is a RELM_E* (negative). */
void relm_pair_refuse_encode(uint8_t out[RELM_PAIR_REFUSE_LEN], int code,
                             const uint8_t join_hash[32], const uint8_t kmac[32]);
/* RELM_ETRUNCATED / RELM_EMALFORMED / RELM_EVERSION, RELM_EAUTH (mac). */
int relm_pair_refuse_decode(int *code, uint8_t join_hash[32], const uint8_t *buf, size_t len,
                            const uint8_t kmac[32]);

#endif

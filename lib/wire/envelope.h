/*
 * envelope.h — the envelope codec (proto/wire.md §5).
 *
 *   header  = version(1) flags(1) dh_pub(32) pn(4, BE) n(4, BE) nonce(24)   66 bytes
 *   [ext]   = ipk_b(32) ek_b(32) spk_id(4, BE) opk_id(4, BE)                 if flags & INITIAL
 *   ct      = XChaCha20-Poly1305(padded payload) ‖ tag(16)
 *   [gate]  = BLAKE2b-128 under the relationship's gate key of all the above  if flags & GATE
 *
 * The header bytes (with the extension) are the AEAD's associated data after
 * the relationship AD.  Decoding checks everything that can be checked
 * without keys: version, unknown flag bits, canonical public keys, lengths
 * (ciphertext a positive multiple of RELM_PAD_BLOCK plus the tag, whole
 * envelope ≤ RELM_ENVELOPE_MAX).  It never allocates.
 */
#ifndef RELM_ENVELOPE_H
#define RELM_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"

enum relm_envelope_flags {
	RELM_ENV_F_INITIAL = 0x01,   /* X3DH extension follows the header */
	RELM_ENV_F_GATE    = 0x02,   /* a gate tag ends the envelope (wire.md §5.1) */
	RELM_ENV_F_KNOWN   = 0x03,   /* every other bit must be zero */
};

struct relm_header {
	uint8_t version;
	uint8_t flags;
	uint8_t dh_pub[RELM_KEY_LEN];
	uint32_t pn;
	uint32_t n;
	uint8_t nonce[RELM_NONCE_LEN];
};

struct relm_initial_ext {
	uint8_t ipk[RELM_SIGN_PK_LEN];   /* IPK_b, Ed25519 */
	uint8_t ek[RELM_KEY_LEN];        /* EK_b, X25519 */
	uint32_t spk_id;
	uint32_t opk_id;                 /* 0 = no one-time prekey used */
};

/* A decoded envelope: views into the caller's buffer, valid while it lives. */
struct relm_envelope {
	struct relm_header h;
	struct relm_initial_ext ext;     /* meaningful only if h.flags & RELM_ENV_F_INITIAL */
	const uint8_t *hdr;              /* header (+ extension) bytes: AD */
	size_t hdrlen;
	const uint8_t *ct;               /* ciphertext ‖ tag */
	size_t ctlen;
	const uint8_t *gate;             /* the gate tag, or NULL without GATE */
	size_t gated_len;                /* bytes the gate tag covers (all before it) */
};

/* Decode and validate.  Returns 0, or RELM_ETRUNCATED / RELM_ETOOBIG /
 * RELM_EVERSION / RELM_EMALFORMED / RELM_EBADKEY; out is untouched on error. */
int relm_envelope_decode(struct relm_envelope *out, const uint8_t *buf, size_t len);

/* The same, on a relationship whose remote identity key is already known
 * (and was validated when the relationship was made): an initial extension
 * naming exactly that key skips the Ed25519 point check, which costs a
 * scalar multiplication and dominated receiving while a peer still attaches
 * the extension to every message.  Any other key is checked as above. */
int relm_envelope_decode_known(struct relm_envelope *out, const uint8_t *buf, size_t len,
                               const uint8_t known_ipk[RELM_SIGN_PK_LEN]);

/* Write header (+ ext if h->flags has INITIAL; ext must then be non-NULL)
 * to out, which must hold RELM_HEADER_LEN + RELM_INITIAL_EXT_LEN bytes.
 * Returns the number of bytes written. */
size_t relm_header_encode(uint8_t *out, const struct relm_header *h,
                          const struct relm_initial_ext *ext);

#endif

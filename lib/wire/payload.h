/*
 * payload.h — the plaintext inside every envelope (proto/wire.md §6): UTF-8 JSON, padded to a multiple of RELM_PAD_BLOCK with
 * ISO/IEC 7816-4 padding (sodium_pad).
 *
 *   {"id":"<32 hex>","kind":"text","ts":<ms>,"body":"..."}
 *   {"id":...,"kind":"receipt","ts":...,"acks":[{"id":"<32 hex>","dh":"<64 hex>","n":<u32>}]}
 *   {"id":...,"kind":"hello","ts":...,"mailbox":"host:port"}      (first message of the accepter)
 *
 * Unknown kinds decode successfully (kind = RELM_KIND_UNKNOWN, kind_str
 * holds the name, raw holds the JSON) so they can be stored and surfaced.
 */
#ifndef RELM_PAYLOAD_H
#define RELM_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"

enum relm_kind {
	RELM_KIND_UNKNOWN = 0,
	RELM_KIND_TEXT,
	RELM_KIND_RECEIPT,
	RELM_KIND_HELLO,
	RELM_KIND_HEAL,
	RELM_KIND_IDENTITY,
};

struct relm_ack {
	uint8_t id[RELM_ID_LEN];       /* message id acknowledged */
	uint8_t dh[RELM_KEY_LEN];      /* ratchet key it was accepted on */
	uint32_t n;                    /* counter it was accepted on */
};

struct relm_payload {
	uint8_t id[RELM_ID_LEN];
	enum relm_kind kind;
	char kind_str[32];             /* the kind as on the wire (NUL-terminated) */
	uint64_t ts;                   /* sender's clock, ms since the epoch */
	char *body;                    /* text/heal/identity: owned, NUL-terminated, may be NULL */
	size_t body_len;
	struct relm_ack *acks;         /* receipt: owned array */
	size_t nacks;
	char *mailbox;                 /* hello: "host:port", owned, may be NULL */
	char *raw;                     /* the JSON as received (decode only), owned */
	size_t raw_len;
};

/* Name <-> kind. */
const char *relm_kind_name(enum relm_kind k);
enum relm_kind relm_kind_from_name(const char *s);

/* Encode p as padded JSON into a fresh malloc'd buffer (*out, *outlen, a
 * multiple of RELM_PAD_BLOCK).  Returns 0, RELM_ETOOBIG, RELM_EINVAL (bad
 * UTF-8 body, too many acks) or RELM_ENOMEM.  Free with relm_payload_buf_free. */
int relm_payload_encode(uint8_t **out, size_t *outlen, const struct relm_payload *p);
void relm_payload_buf_free(uint8_t *buf, size_t len);   /* wipes, then frees */

/* Unpad and parse.  Returns 0 or RELM_EMALFORMED (RELM_ETOOBIG beyond
 * RELM_PAYLOAD_MAX, RELM_ENOMEM); out is zeroed on error.  raw is set for
 * every kind.  On success release with relm_payload_clear. */
int relm_payload_decode(struct relm_payload *out, const uint8_t *buf, size_t len);
/* The same on unpadded JSON (a sibling's copy carries payloads so). */
int relm_payload_decode_json(struct relm_payload *out, const uint8_t *buf, size_t len);
/* Wipe and free every owned field; leaves *p zeroed.  NULL is a no-op. */
void relm_payload_clear(struct relm_payload *p);

#endif

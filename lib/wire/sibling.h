/*
 * sibling.h — the messages devices of one proton send each other through
 * their sibling sessions (proto/devices.md §4): type(1) ‖ body, carried in
 * the padded plaintext of a sibling session's envelope as
 * 0x00 ‖ id(16) ‖ type(1) ‖ body (the 0x00 tells it from a JSON payload).
 *
 *   copy       rel(16) flags(1) node(16) n(4) [parent(16) pub(32) priv(32) pn(4)]
 *              u32 payload_len, payload
 *   circle     the circle (circle.h)
 *   state_req  rel(16)
 *   state      rel(16) xfer(16) part(2) parts(2) total(4) chunk
 *   carry      rel(16) u16 count, count × (u32 len, payload)
 *   rel        rel(16) created(8) cursor(8) label_len(1) label addr_len(1) addr
 *   history    rel(16) u16 count, count × (id(16) direction(1) origin(1)
 *              kind_len(1) kind ts(8) status(1) u32 body_len, body)
 *   invites    u8 count, count × (spk_id(4) spk_priv(32) opk_id(4) opk_priv(32)
 *              multi_use(1) expires(8) mailbox_sk(64) used(4) cursor(8))
 *   synced     rels(4) messages(8)
 *
 * The last four are the bulk state a new device receives (§12.6).
 *
 * Decoders take bytes and return views into them (nothing is allocated);
 * every length is checked before it is used.
 */
#ifndef RELM_SIBLING_H
#define RELM_SIBLING_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"

enum relm_sib_type {
	RELM_SIB_NONE      = 0,
	RELM_SIB_COPY      = 1,
	RELM_SIB_CIRCLE    = 2,
	RELM_SIB_STATE_REQ = 3,
	RELM_SIB_STATE     = 4,
	RELM_SIB_REQUEST   = 5,
	RELM_SIB_DELIVER   = 6,
	RELM_SIB_CARRY     = 7,
	RELM_SIB_REL       = 8,
	RELM_SIB_HISTORY   = 9,
	RELM_SIB_INVITES   = 10,
	RELM_SIB_SYNCED    = 11,
	RELM_SIB_STRATEGY  = 12,   /* a change of strategy: below */
	RELM_SIB_BUNDLE    = 13,   /* several messages in one: wire/bundle.h */
	RELM_SIB_IDENTITY  = 14,   /* the proton's new identity key: wire/sib_identity.h */
};

enum relm_sib_copy_flags {
	RELM_SIB_F_CREATED = 0x01,
	RELM_SIB_F_KNOWN   = 0x01,
};

enum {
	RELM_SIB_STATE_CHUNK = 43000,   /* bytes of state per part (all but the last) */
	RELM_SIB_STATE_PARTS = 64,      /* parts per transfer: states up to 2.7 MB */
};

/* A copy of one send (devices.md §4.2).  payload is a view (the unpadded
 * JSON payload that was sent, wire.md §6). */
struct relm_sib_copy {
	uint8_t rel[RELM_ID_LEN];
	uint8_t flags;
	uint8_t node[RELM_ID_LEN];
	uint32_t n;
	/* with RELM_SIB_F_CREATED */
	uint8_t parent[RELM_ID_LEN];
	uint8_t pub[RELM_KEY_LEN];
	uint8_t priv[RELM_KEY_LEN];          /* secret */
	uint32_t pn;
	const uint8_t *payload;
	size_t payload_len;
};

/* Payloads a sibling accepted (devices.md §5.4): views, checked framing. */
struct relm_sib_carry {
	uint8_t rel[RELM_ID_LEN];
	uint16_t count;
	const uint8_t *list;                 /* count × (u32 len, bytes) */
	size_t list_len;
};

struct relm_sib_state {
	uint8_t rel[RELM_ID_LEN];
	uint8_t xfer[RELM_ID_LEN];
	uint16_t part, parts;
	uint32_t total;
	const uint8_t *chunk;
	size_t chunk_len;
};

/* One relationship of the bulk state (§12.6): its store row's fields and
 * the sender's cursor on its mailbox.  label and addr are copied, NUL
 * terminated; label is UTF-8 without NUL (relm_text_ok). */
struct relm_sib_rel {
	uint8_t rel[RELM_ID_LEN];
	uint64_t created, cursor;
	char label[256];
	char addr[RELM_MAILBOX_ADDR_MAX + 1];
};

enum {
	RELM_SIB_KIND_MAX    = 31,      /* bytes of a history message's kind (the store's limit) */
	RELM_SIB_INVITE_LEN  = 4 + 32 + 4 + 32 + 1 + 8 + 64 + 4 + 8,
	RELM_SIB_INVITES_MAX = 255,     /* invites in one message (count is one byte) */
	RELM_SIB_ORIGIN_MIN  = 1,       /* history origins: enum relm_origin's self … remote */
	RELM_SIB_ORIGIN_MAX  = 3,
	RELM_SIB_STATUS_MAX  = 4,       /* history statuses: enum relm_msg_status's none … failed */
};

/* One message of a history list: body is a view. */
struct relm_sib_hmsg {
	uint8_t id[RELM_ID_LEN];
	uint8_t direction_in;            /* 1 received, 0 sent */
	uint8_t origin;                  /* enum relm_origin: 1 self, 2 sibling, 3 remote */
	uint8_t status;                  /* enum relm_msg_status: 0 none … 4 failed */
	char kind[RELM_SIB_KIND_MAX + 1];
	uint64_t ts;
	const uint8_t *body;
	size_t body_len;
};

/* A history message: views, framing checked by relm_sib_decode. */
struct relm_sib_history {
	uint8_t rel[RELM_ID_LEN];
	uint16_t count;
	const uint8_t *list;
	size_t list_len;
};

/* One invite of the invites message (secrets). */
struct relm_sib_invite {
	uint32_t spk_id;
	uint8_t spk_priv[RELM_KEY_LEN];
	uint32_t opk_id;                 /* 0: none (opk_priv all zero) */
	uint8_t opk_priv[RELM_KEY_LEN];
	uint8_t multi_use;
	uint64_t expires;
	uint8_t mailbox_sk[RELM_SIGN_SK_LEN];
	uint32_t used;
	uint64_t cursor;                 /* the sender's cursor on its mailbox */
};

struct relm_sib_invites {
	uint8_t count;
	const uint8_t *list;             /* count × RELM_SIB_INVITE_LEN */
};

struct relm_sib_synced {
	uint32_t rels;
	uint64_t messages;
};

struct relm_sib_msg {
	enum relm_sib_type type;
	union {
		struct relm_sib_copy copy;
		struct { const uint8_t *buf; size_t len; } circle;
		struct { uint8_t rel[RELM_ID_LEN]; } state_req;
		struct relm_sib_state state;
		struct relm_sib_carry carry;
		struct relm_sib_rel rel;
		struct relm_sib_history history;
		struct relm_sib_invites invites;
		struct relm_sib_synced synced;
		struct { const uint8_t *buf; size_t len; } raw;   /* request, deliver, unknown */
	} u;
};

/* Decode one binary sibling message.  Returns 0, or RELM_ETRUNCATED /
 * RELM_ETOOBIG / RELM_EMALFORMED; out is untouched on error.  An unknown
 * type decodes (type as read, u.raw = body) so that the caller can ignore
 * it.  A copy's node id must match parent and pub when CREATED. */
int relm_sib_decode(struct relm_sib_msg *out, const uint8_t *buf, size_t len);

/* Encode a copy into a fresh malloc'd buffer (*out, *outlen).  Returns 0,
 * RELM_ETOOBIG (over RELM_SIBLING_MAX) or RELM_ENOMEM.  Free with
 * relm_sib_buf_free (the copy holds a private key). */
int relm_sib_copy_encode(uint8_t **out, size_t *outlen, const struct relm_sib_copy *c);

/* A carry message for rel, empty; relm_sib_carry_append adds one payload
 * (reallocating *buf).  Append returns RELM_ETOOBIG when the payload would
 * take the message past RELM_SIBLING_MAX (start another) or past
 * RELM_MAX_ACKS payloads; *buf is unchanged then. */
int relm_sib_carry_new(uint8_t **out, size_t *outlen, const uint8_t rel[RELM_ID_LEN]);
int relm_sib_carry_append(uint8_t **buf, size_t *len, const uint8_t *payload, size_t plen);
/* Iterate a decoded carry: *it starts at 0; returns 1 with *p, *plen set,
 * or 0 at the end. */
int relm_sib_carry_next(const struct relm_sib_carry *c, size_t *it,
                        const uint8_t **p, size_t *plen);

/* state_req and one part of a state transfer, and a circle, into fresh
 * buffers.  0, RELM_EINVAL (part out of range), RELM_ETOOBIG or RELM_ENOMEM. */
int relm_sib_state_req_encode(uint8_t **out, size_t *outlen, const uint8_t rel[RELM_ID_LEN]);
int relm_sib_state_encode(uint8_t **out, size_t *outlen, const struct relm_sib_state *s);
int relm_sib_circle_encode(uint8_t **out, size_t *outlen, const uint8_t *circle, size_t len);

/* The bulk state (§12.6).  rel, invites (n ≤ RELM_SIB_INVITES_MAX) and
 * synced into fresh buffers: 0, RELM_EINVAL (a field out of range) or
 * RELM_ENOMEM.  A history message is made like a carry: _new, then
 * _append per message (RELM_ETOOBIG when it would take the message past
 * RELM_SIBLING_MAX or 65,535 messages: start another; RELM_EINVAL for a
 * field out of range; *buf unchanged on error). */
int relm_sib_rel_encode(uint8_t **out, size_t *outlen, const struct relm_sib_rel *r);
int relm_sib_history_new(uint8_t **out, size_t *outlen, const uint8_t rel[RELM_ID_LEN]);
int relm_sib_history_append(uint8_t **buf, size_t *len, const struct relm_sib_hmsg *m);
int relm_sib_invites_encode(uint8_t **out, size_t *outlen, const struct relm_sib_invite *v, size_t n);
int relm_sib_synced_encode(uint8_t **out, size_t *outlen, const struct relm_sib_synced *s);
/* Iterate a decoded history or invites message: *it starts at 0; 1 with
 * *m set, 0 at the end (the framing was checked by relm_sib_decode). */
int relm_sib_history_next(const struct relm_sib_history *h, size_t *it, struct relm_sib_hmsg *m);
int relm_sib_invites_next(const struct relm_sib_invites *v, size_t *it, struct relm_sib_invite *inv);

/* Wipe and free a buffer made here.  NULL is a no-op. */
void relm_sib_buf_free(uint8_t *buf, size_t len);

/* ---- the strategies' messages (proto/devices.md §11.1) ----------------------
 * Kept apart from the codecs above: relm_sib_decode leaves these types raw
 * (u.raw), and these decoders take the whole message, type byte included.
 *
 *   request   rel(16) id(16) flags(1) kind_len(1) kind ts(8) u32 body_len, body
 *   deliver   rel(16) id(16) flags(1) status(1) kind_len(1) kind ts(8) u32 body_len, body
 *   strategy  seq(8) strategy(1) pinned(16) by(16)
 */
enum relm_sib_request_flags {
	RELM_SIB_R_AGAIN  = 0x01,    /* a retransmission: send it even if already sent */
	RELM_SIB_R_KNOWN  = 0x01,
};

enum relm_sib_deliver_flags {
	RELM_SIB_D_IN     = 0x01,    /* received from the remote */
	RELM_SIB_D_STATUS = 0x02,    /* a status change only: no kind, no body, ts 0 */
	RELM_SIB_D_KNOWN  = 0x03,
};

/* "Send this for me" (a device that does not send, to one that does). */
struct relm_sib_request {
	uint8_t rel[RELM_ID_LEN];
	uint8_t id[RELM_ID_LEN];
	uint8_t flags;                       /* RELM_SIB_R_* */
	char kind[RELM_SIB_KIND_MAX + 1];    /* 1 … RELM_SIB_KIND_MAX printable ASCII bytes, NUL-terminated */
	uint64_t ts;
	const uint8_t *body;                 /* view; UTF-8 without NUL, ≤ RELM_REQUEST_BODY_MAX */
	size_t body_len;
};

/* One history entry of the hub, or a status change of one. */
struct relm_sib_deliver {
	uint8_t rel[RELM_ID_LEN];
	uint8_t id[RELM_ID_LEN];
	uint8_t flags;                       /* RELM_SIB_D_* */
	uint8_t status;                      /* enum relm_msg_status (0 … 4), 0 exactly with IN */
	char kind[RELM_SIB_KIND_MAX + 1];    /* "" with STATUS */
	uint64_t ts;
	const uint8_t *body;
	size_t body_len;
};

/* A change of the proton's strategy (enum relm_strategy, engine/rel_strategy.h). */
struct relm_sib_strategy {
	uint64_t seq;                        /* ≥ 1 */
	uint8_t strategy;                    /* 0 leaderless, 1 leader, 2 fanout */
	uint8_t pinned[RELM_ID_LEN];         /* leader: pinned holder or zero; fanout: the hub */
	uint8_t by[RELM_ID_LEN];             /* the device that made the change */
};

/* Decoders: 0, or RELM_ETRUNCATED / RELM_ETOOBIG / RELM_EMALFORMED (also
 * for another type byte); out untouched on error.  Encoders: a fresh
 * buffer (free with relm_sib_buf_free); 0, RELM_EINVAL (a field out of
 * its range, the decoder's rules), RELM_ETOOBIG or RELM_ENOMEM. */
int relm_sib_request_decode(struct relm_sib_request *out, const uint8_t *buf, size_t len);
int relm_sib_request_encode(uint8_t **out, size_t *outlen, const struct relm_sib_request *r);
int relm_sib_deliver_decode(struct relm_sib_deliver *out, const uint8_t *buf, size_t len);
int relm_sib_deliver_encode(uint8_t **out, size_t *outlen, const struct relm_sib_deliver *d);
int relm_sib_strategy_decode(struct relm_sib_strategy *out, const uint8_t *buf, size_t len);
int relm_sib_strategy_encode(uint8_t **out, size_t *outlen, const struct relm_sib_strategy *s);

#endif

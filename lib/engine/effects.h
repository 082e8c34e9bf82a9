/*
 * effects.h — what an engine step asks the outside world to do.
 *
 * The engine consumes one event (the user sent, an envelope arrived, a
 * timer fired) and appends effects here; it performs none of them.  relmd
 * writes them into the store in the same transaction as the new state and
 * acts on them only after that transaction commits (the durability rule,
 * proto/store.md §2); tests/sim routes them between simulated devices.
 */
#ifndef RELM_EFFECTS_H
#define RELM_EFFECTS_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"
#include "engine/event.h"

enum relm_fx_type {
	RELM_FX_NONE = 0,
	RELM_FX_POST,          /* post data (an envelope) to the remote side's mailbox */
	RELM_FX_DELIVER,       /* a message to add to history (de-duplicated by id) */
	RELM_FX_STATUS,        /* an outgoing message changed status */
	RELM_FX_EVENT,         /* an event for subscribers (fork.detected, ...): ev */
	RELM_FX_PENDING_ADD,   /* keep this envelope pending (data, hash) */
	RELM_FX_PENDING_DEL,   /* drop the pending envelope with this hash */
	RELM_FX_OUT_PUT,       /* the retransmission record of msg_id: kind, ts, data
	                        * (body), tries, next_ms, node (last try) */
	RELM_FX_OUT_DEL,       /* msg_id needs no more retransmission */
	RELM_FX_ACK_PUT,       /* acknowledgements waiting for the receipt timer: data
	                        * holds len / RELM_FX_ACK_LEN records (below) */
	RELM_FX_ACK_DEL,       /* these acknowledgements went out in a receipt (same data) */
	RELM_FX_COPY,          /* send every sibling this copy (data: a binary sibling
	                        * message, proto/devices.md §4.2; kind, msg_id: the payload's) */
	RELM_FX_STATE_REQ,     /* ask sibling device `dev` for its state of the relationship */
	RELM_FX_SIBLING,       /* a sibling session delivered a sibling frame (data; msg_id: its id) */
	/* strategies (proto/devices.md §11, engine/rel_strategy.h) */
	RELM_FX_SIB_TO,        /* send sibling `dev` only this binary sibling message (data) */
	RELM_FX_REQ_PUT,       /* the pending request msg_id: data (the request message,
	                        * type byte included), dev (the device it was last sent
	                        * to, zero: none), next_ms (when it goes again) */
	RELM_FX_REQ_DEL,       /* no pending request msg_id any more (if there was one) */
};

/* One acknowledgement in ACK_PUT / ACK_DEL data: message id(16), the
 * envelope's ratchet key dh(32), its counter n(4, big-endian) — a struct
 * relm_ack (payload.h) laid out flat. */
enum {
	RELM_FX_ACK_DH  = RELM_ID_LEN,                  /* offset of dh in a record */
	RELM_FX_ACK_N   = RELM_ID_LEN + RELM_KEY_LEN,   /* offset of n */
	RELM_FX_ACK_LEN = RELM_FX_ACK_N + 4,
};

/* n of the record at rec. */
static inline uint32_t relm_fx_ack_n(const uint8_t *rec)
{
	const uint8_t *b = rec + RELM_FX_ACK_N;
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

struct relm_fx {
	enum relm_fx_type type;
	uint8_t msg_id[RELM_ID_LEN];   /* POST, DELIVER, STATUS: the message concerned */
	uint8_t hash[RELM_ID_LEN];     /* PENDING_*: BLAKE2b-128 of the envelope */
	uint8_t *data;                 /* POST/PENDING_ADD: envelope; DELIVER/OUT_PUT: body;
	                                * ACK_PUT/ACK_DEL: acknowledgements (owned) */
	size_t len;
	int kind;                      /* DELIVER, OUT_PUT: enum relm_kind; POST: kind of the payload */
	uint64_t ts;                   /* DELIVER, OUT_PUT: sender's timestamp; PENDING_ADD: arrival */
	int direction_in;              /* DELIVER: 1 received, 0 sent */
	int origin;                    /* DELIVER: enum relm_origin */
	int status;                    /* STATUS: enum relm_msg_status */
	uint32_t tries;                /* OUT_PUT */
	uint64_t next_ms;              /* OUT_PUT, REQ_PUT */
	uint8_t node[RELM_ID_LEN];     /* OUT_PUT: node of the last try */
	int sibling;                   /* OUT_PUT: a sibling's message (retransmitted here
	                                * only after the takeover time) */
	int add_try;                   /* OUT_PUT: a sibling's try of a message whose record
	                                * the engine did not hold (out_partial): if the
	                                * store has its row, one more try of it (tries + 1;
	                                * next_ms no earlier; last_node this try's), else the
	                                * record as given (proto/ratchet.md §6.4) */
	uint8_t dev[RELM_ID_LEN];      /* STATE_REQ: the sibling to ask; SIB_TO, REQ_PUT: the sibling */
	struct relm_event ev;          /* EVENT: the record (ev.reason unused) */
	char to[RELM_MAILBOX_ADDR_MAX + 1]; /* POST: destination mailbox address */
	char detail[RELM_EVENT_REASON_MAX + 1]; /* STATUS: reason text; DELIVER: an unknown
	                                * kind's name; no secrets */
};

struct relm_effects {
	struct relm_fx *v;
	size_t n, cap;
};

void relm_effects_init(struct relm_effects *fx);
/* Wipes every owned buffer and empties the list (keeps the array). */
void relm_effects_reset(struct relm_effects *fx);
/* relm_effects_reset + frees the array. */
void relm_effects_clear(struct relm_effects *fx);
/* Appends a zeroed effect of the given type; NULL when out of memory. */
struct relm_fx *relm__fx_push(struct relm_effects *fx, enum relm_fx_type type);
/* Drop effects appended after mark (wiping them): undo on failure. */
void relm__fx_truncate(struct relm_effects *fx, size_t mark);

#endif

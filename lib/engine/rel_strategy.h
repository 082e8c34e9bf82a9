/*
 * rel_strategy.h — what a device does under the proton's strategy
 * (proto/devices.md §11): leaderless (every device sends), leader (the
 * lease holder sends, the others ask it), fanout (the hub alone holds
 * relationship state; the others hold none and get its history).
 *
 * The engine is told the view — env->devices->strategy and ->holder —
 * and never decides it: reading the lease and adopting strategy messages
 * is the caller's (relmd, tests/sim).  With the view the engine steps of
 * rel.h behave as §11.3 and §11.4 say (a device that does not send never
 * posts to the remote: no receipts, retransmissions or heals fire, and
 * relm_rel_send refuses), and the functions below make, re-send, serve
 * and settle requests and carry the hub's history to devices without
 * state.  All pure, all copy-verify-commit like every engine step.
 *
 * Pending requests live with the caller (store rows): REQ_PUT / REQ_DEL
 * effects say what to keep; a row's data is the request message itself,
 * so re-sending it is sending those bytes again.
 */
#ifndef RELM_REL_STRATEGY_H
#define RELM_REL_STRATEGY_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"
#include "engine/env.h"
#include "engine/effects.h"
#include "engine/rel.h"
#include "wire/sibling.h"

enum relm_strategy {
	RELM_STRATEGY_LEADERLESS = 0,
	RELM_STRATEGY_LEADER     = 1,
	RELM_STRATEGY_FANOUT     = 2,
};

/* 1 when this device sends to the remote itself under env's view: one
 * device, leaderless, or it is the holder (hub).  env may be NULL-free of
 * devices (a single device: 1). */
int relm_strategy_sends(const struct relm_env *env);

/* 1 when this device holds relationship state under env's view: every
 * device but the non-hubs of fanout. */
int relm_strategy_holds_state(const struct relm_env *env);

/* Is got (a strategy message) newer than held (seq, then by)?  held NULL:
 * nothing held yet, 1. */
int relm_strategy_newer(const struct relm_sib_strategy *held, const struct relm_sib_strategy *got);

/* ---- requests (devices.md §11.5) ------------------------------------------- */

/* The person typed on a device that does not send: the message goes to
 * its history (DELIVER out, origin self; STATUS queued), a pending
 * request row (REQ_PUT), and the request to the holder (SIB_TO) when one
 * is known and is not this device.  id: the client's id or NULL (drawn);
 * id_out gets it.  0, RELM_EEXIST (that id is in the history already:
 * nothing done, the call is idempotent), RELM_EINVAL (no body, or this
 * device sends: use relm_rel_send), RELM_ETOOBIG, RELM_ENOMEM. */
int relm_request_make(const struct relm_env *env, const uint8_t rel_id[RELM_ID_LEN],
                      const char *body, size_t body_len, const uint8_t *id,
                      uint8_t id_out[RELM_ID_LEN], struct relm_effects *fx);

/* A pending request row (req: its data; to: the device it was last sent
 * to; next_ms: when it is due again).  Sends it again (SIB_TO and REQ_PUT)
 * when the holder is another device than `to`, or next_ms has passed.
 * Returns 0 (nothing to do, or sent again), 1 (this device sends now:
 * serve it with relm_rel_serve(own = 1)), RELM_EMALFORMED (a damaged row),
 * RELM_ENOMEM. */
int relm_request_due(const struct relm_env *env, const uint8_t *req, size_t len,
                     const uint8_t to[RELM_ID_LEN], uint64_t next_ms, struct relm_effects *fx);

/* Serve a request (req: the request message, type byte included) on rel:
 * send its payload exactly as typed (its id, kind, ts and body), tracked
 * for retransmission, copied to siblings as every send.  own = 0: a
 * sibling's request, recorded as origin sibling, not sent again if its
 * id is in the history or the retransmission queue (de-duplication by
 * message id).  own = 1: this device's own pending request (already in its
 * history), sent and its row deleted (REQ_DEL).  A request with AGAIN (a
 * non-holder's retransmission) is sent again unless it is queued here.  Returns 0 (sent),
 * RELM_EDUP (already sent or queued: nothing sent; for an own request its
 * row is deleted, REQ_DEL), RELM_EINVAL (another
 * relationship's, a kind other than text, or this device does not send:
 * nothing done — the requester re-sends to the right device), a decode
 * error, or one of relm_rel_send's; on error rel is unchanged. */
int relm_rel_serve(struct relm_rel *rel, const struct relm_env *env, const uint8_t *req,
                   size_t len, int own, struct relm_effects *fx);

/* ---- taking over (devices.md §11.2) ------------------------------------------ */

/* This device has just become the one that sends (it took the lease,
 * adopted leaderless, or is the new hub): every retransmission record
 * made from a sibling's copy becomes its own, due within retx_base
 * (OUT_PUT for each).  Due receipts and the heal fire at the next tick.
 * 0 or RELM_ENOMEM (rel unchanged). */
int relm_rel_lead(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx);

/* ---- fanout: the hub's history for devices without state (§11.4) --------------- */

/* The hub, after any step on rel that appended effects from mark on: a
 * deliver to every sibling (COPY effects, a deliver message each) for
 * every message that step added to the history and every status change
 * of a sent one.  No-op unless env's view is fanout with this device the
 * hub.  0 or RELM_ENOMEM (fx back at its length on entry). */
int relm_rel_fanout(const struct relm_rel *rel, const struct relm_env *env,
                    struct relm_effects *fx, size_t mark);

/* A device applies a deliver (buf: the message, type byte included): a
 * history entry it does not hold (DELIVER: origin remote if received, else
 * sibling — its own requests are in its history already), its status
 * (STATUS, when posted or later), and the request it settles (REQ_DEL).
 * rel: NULL on a device without state; a device that holds the
 * relationship's state (a sibling that never adopted fanout, devices.md
 * §11.6) records a sent text not yet delivered as a sibling's message
 * (history and retransmission record, as from a copy), and drops that
 * record when a deliver says delivered.  rel_out gets the relationship.
 * 0, a decode error, RELM_EINVAL (rel is another relationship), or
 * RELM_ENOMEM; on error fx and rel are unchanged. */
int relm_deliver_apply(const struct relm_env *env, struct relm_rel *rel, const uint8_t *buf,
                       size_t len, uint8_t rel_out[RELM_ID_LEN], struct relm_effects *fx);

#endif

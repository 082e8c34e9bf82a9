/*
 * apply.h — the effects of one engine step, written into the open store
 * step (lib/core/durability.c runs it between the engine step and the
 * commit).
 */
#ifndef RELM_CORE_APPLY_H
#define RELM_CORE_APPLY_H

#include <stdint.h>
#include "limits.h"
#include "engine/effects.h"
#include "store/store.h"

/* Write the effects of one engine step on relationship rel into the open
 * step, through the store's typed functions:
 *   POST         → outbox (to the effect's own address, else dest — the
 *                  relationship's remote mailbox, from its state: the row has
 *                  no address since schema v11; RELM_ESTATE if neither is
 *                  known: NULL or "")
 *   DELIVER      → history (insert-or-ignore by id); a new message also
 *                  appends message.received (and unread + 1) or message.sent
 *   STATUS       → relm_store_msg_advance (forward only); a row that moved
 *                  appends message.status, one that did not appends nothing
 *   EVENT        → the event log (the step's relationship filled in when the
 *                  type carries one and the engine left it out)
 *   PENDING_ADD / PENDING_DEL → pending;  OUT_PUT / OUT_DEL → outgoing;
 *   ACK_PUT / ACK_DEL → acks (a delete of a row never stored is no error)
 * Requires an open step (relm_store_begin).  The caller also stores the new
 * state blob and the cursor in the same step, then commits.  Returns 0 or
 * an error (the caller then rolls the step back). */
int relm_core_apply(struct relm_store *st, const uint8_t rel[RELM_ID_LEN], const char *dest,
                    const struct relm_effects *fx, uint64_t now_ms);

#endif

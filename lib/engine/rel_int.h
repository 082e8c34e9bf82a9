/*
 * rel_int.h — what the files of the relationship engine share (rel.c, the
 * single-party rules; rel_sibling.c, what several devices of one proton
 * add).  Internal to lib/engine.
 */
#ifndef RELM_REL_INT_H
#define RELM_REL_INT_H

#include "engine/rel_state.h"
#include "wire/payload.h"

/* Effects (each returns 0 or RELM_ENOMEM, leaving fx as it was). */
/* An event about rel (its other fields: the caller's); NULL when full. */
struct relm_fx *relm__emit_rel_event(struct relm_effects *fx, const struct relm_rel *rel, int type);
/* fork.detected: a second child was added under node. */
void relm__emit_fork(struct relm_effects *fx, const struct relm_rel *rel, const uint8_t node[RELM_ID_LEN]);
int relm__emit_status(struct relm_effects *fx, const uint8_t id[RELM_ID_LEN], int status,
                      const char *reason);
int relm__emit_deliver(struct relm_effects *fx, const struct relm_payload *p, int in, int origin);
int relm__emit_out_put(struct relm_effects *fx, const struct relm_outgoing *o);
int relm__emit_out_del(struct relm_effects *fx, const uint8_t id[RELM_ID_LEN]);
int relm__emit_acks(struct relm_effects *fx, enum relm_fx_type type,
                    const struct relm_ack *acks, uint32_t k);

/* The retransmission queue. */
int relm__find_outgoing(const struct relm_rel *rel, const uint8_t id[RELM_ID_LEN]);
void relm__outgoing_remove(struct relm_rel *rel, int i);
int relm__outgoing_append(struct relm_rel *rel, const uint8_t id[RELM_ID_LEN], int kind,
                          uint64_t ts, const char *body, size_t len, uint32_t tries,
                          uint64_t next_ms, const uint8_t last_node[RELM_ID_LEN]);
uint64_t relm__backoff(const struct relm_env *env, uint32_t tries);

/* De-duplication by message id. */
int relm__seen_recent(const struct relm_rel *rel, const uint8_t id[RELM_ID_LEN]);
void relm__note_recent(struct relm_rel *rel, const uint8_t id[RELM_ID_LEN]);
int relm__is_dup(const struct relm_rel *rel, const struct relm_env *env,
                 const uint8_t id[RELM_ID_LEN], const struct relm_effects *fx);

/* After any change of the tree: pending copies, pending set, fork rule,
 * pruning. */
void relm__rel_changed(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx);

/* ---- rel_sibling.c ----------------------------------------------------- */

/* 1 when this device has siblings and the relationship is a tree (copies
 * go out; a sibling session, strict, never copies). */
int relm__multi(const struct relm_rel *rel, const struct relm_env *env);
/* The copy of a send, as a COPY effect (devices.md §4.2).  created: the
 * new node (NULL if none); node, n: where and with which counter it went;
 * pt/ptlen: the padded payload.  0 or RELM_ENOMEM (fx unchanged). */
int relm__emit_copy(struct relm_rel *rel, const struct relm_node *created,
                    const uint8_t node[RELM_ID_LEN], uint32_t n,
                    const uint8_t *pt, size_t ptlen, int kind,
                    const uint8_t msg_id[RELM_ID_LEN], struct relm_effects *fx);
/* The payloads of the messages acks[0..k) acknowledge that this device
 * holds (env->history_get), as carry messages to every sibling (COPY
 * effects whose data is a carry).  0 or RELM_ENOMEM (fx unchanged). */
int relm__emit_carry(const struct relm_rel *rel, const struct relm_env *env,
                     const struct relm_ack *acks, uint32_t k, struct relm_effects *fx);
/* A sibling's message p, sent on node (zero: unknown): history (origin
 * sibling, de-duplicated), a retransmission record acted on after the
 * takeover time unless the remote receipted it already, a request of
 * this device settled (REQ_DEL).  0 or RELM_ENOMEM (fx as it was). */
int relm__record_sibling(struct relm_rel *rel, const struct relm_env *env,
                         const struct relm_payload *p, const uint8_t node[RELM_ID_LEN],
                         struct relm_effects *fx);
/* Place every pending copy whose parent is now in the tree; 1 if any was. */
int relm__place_pcopies(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx);
/* Remember ids of nodes about to be deleted (a sibling building on one
 * triggers repair).  before: the ids present before the deletion. */
void relm__note_pruned(struct relm_rel *rel, const uint8_t (*before)[RELM_ID_LEN], uint32_t nbefore);
/* Remember an id the remote receipted. */
void relm__note_acked(struct relm_rel *rel, const struct relm_env *env, const uint8_t id[RELM_ID_LEN],
                      const uint8_t dh[RELM_KEY_LEN]);
/* The receipt delay rank of this device for a batch starting with ack id
 * (devices.md §5.2): 0 for a single device. */
uint32_t relm__receipt_rank(const struct relm_rel *rel, const struct relm_env *env,
                            const uint8_t first_ack[RELM_ID_LEN]);
/* Timers of pending copies: ask for state, drop the expired. */
void relm__tick_pcopies(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx);
/* Earliest pending-copy deadline, 0 if none. */
uint64_t relm__pcopies_deadline(const struct relm_rel *rel, const struct relm_env *env);

/* ---- rel_strategy.c (proto/devices.md §11) ------------------------------------ */

/* 1 when this device posts to the remote in rel under env's view (a
 * sibling session always). */
int relm__sends(const struct relm_rel *rel, const struct relm_env *env);
/* 1 when this device does not send under `leader` and knows the holder:
 * its due receipts are dropped, its retransmissions asked of the holder. */
int relm__holder_elsewhere(const struct relm_rel *rel, const struct relm_env *env);
/* Ask the holder to send p again (a request with AGAIN, SIB_TO effect).
 * 0, RELM_ENOSEND (not a text: the holder retransmits it itself),
 * RELM_ENOMEM. */
int relm__request_again(const struct relm_rel *rel, const struct relm_env *env,
                        const struct relm_payload *p, struct relm_effects *fx);

/* ---- shared by rel.c and rel_receive.c ---------------------------------------- */

/* envelope.undecryptable: the envelope with this hash is given up, why. */
void relm__emit_undecryptable(struct relm_effects *fx, const struct relm_rel *rel,
                              const uint8_t hash[RELM_ID_LEN], int why);
/* Encode payload p and send it. */
int relm__send_payload(struct relm_rel *rel, const struct relm_env *env,
                       const struct relm_payload *p, int automated,
                       const uint8_t *prev_try, uint8_t on[RELM_ID_LEN],
                       struct relm_effects *fx);
/* Send every receipt due (one automated message per RELM_MAX_ACKS). */
int relm__send_receipts(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx);
/* Drop pending envelope i (wiped). */
void relm__pending_remove(struct relm_rel *rel, uint32_t i);

/* ---- rel_revoke.c (proto/revocation.md) ------------------------------------ */

/* The heal: send it when due (0 or RELM_ENOMEM); its deadline (0: none);
 * a new node placed at index node (healed when the remote built on the
 * heal's node); a sibling's heal copy that made node. */
int relm__heal_tick(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx);
uint64_t relm__heal_deadline(const struct relm_rel *rel);
void relm__heal_on_node(struct relm_rel *rel, const struct relm_env *env, int node);
void relm__heal_sibling(struct relm_rel *rel, const uint8_t node[RELM_ID_LEN]);
/* The node a non-automated send of kind goes on while a heal waits for
 * the remote's reply: idx (what the fork rule or rotation picked), or a
 * heal node in place of an ours sibling the removed device may hold. */
int relm__heal_steer(const struct relm_rel *rel, int idx, int kind, int retry);
/* An identity payload arrived (not a duplicate): the successor rule. */
void relm__identity_received(struct relm_rel *rel, const struct relm_payload *p,
                             struct relm_effects *fx);
/* The clone rule: an acknowledgement the remote sent; the window's timer. */
void relm__clone_on_ack(struct relm_rel *rel, const struct relm_env *env,
                        const uint8_t id[RELM_ID_LEN], const uint8_t dh[RELM_KEY_LEN]);
uint64_t relm__clone_deadline(const struct relm_rel *rel, const struct relm_env *env);
void relm__clone_tick(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx);
/* A sibling's state o merged (relm_rel_merge, revocation.md §5): the
 * pin first — 0, or RELM_ENOMEM with rel unchanged; it may emit
 * identity.rotated or identity.conflict — then, once o's nodes are in
 * the tree, the heal and the watched acknowledgement (cannot fail). */
int relm__identity_merge(struct relm_rel *rel, const struct relm_rel *o, struct relm_effects *fx);
void relm__revoke_merge(struct relm_rel *rel, const struct relm_env *env, const struct relm_rel *o);

#endif

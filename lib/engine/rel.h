/*
 * rel.h — one relationship: the double ratchet as a tree (proto/ratchet.md), with
 * receipts, retransmission until receipt, de-duplication by message id and
 * the pending set.  This is the engine step API:
 *
 *   relm_rel_send()     the user sent a message        → effects
 *   relm_rel_receive()  an envelope arrived            → effects
 *   relm_rel_tick()     a timer fired (any time ≥ the deadline is fine)
 *
 * Every step is copy-verify-commit: on any error the relationship state is
 * byte-for-byte what it was (relm_rel_encode is identical) and no effect is
 * left behind.  No I/O, clock or randomness except through struct relm_env.
 *
 * Two modes:
 *   RELM_MODE_TREE    the multi-device engine: lazy sending step, tree of
 *                     nodes, trial decryption, pending set, fork rule.
 *   RELM_MODE_STRICT  a plain single-device Double Ratchet (Signal, 2016):
 *                     eager DH step, one state, rejects anything else.  It
 *                     is the plain single-device remote of proto/ratchet.md
 *                     §7, used in tests against the tree.
 * Both modes produce the same wire format; a strict peer cannot tell.
 *
 * Sides: 'a' is the inviter, 'b' the accepter (x3dh.h).
 */
#ifndef RELM_REL_H
#define RELM_REL_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"
#include "engine/env.h"
#include "engine/effects.h"
#include "wire/invite.h"

enum relm_mode {
	RELM_MODE_NONE = 0,
	RELM_MODE_TREE = 1,
	RELM_MODE_STRICT = 2,
};

/* The state of one relationship.  Opaque outside lib/: its definition is
 * in engine/rel_state.h, which only the engine, the core and the tests
 * include.  What may be shown of it (never key material) comes out through
 * relm_rel_describe(). */
struct relm_rel;

/* ---- what may be shown ------------------------------------------------ */

/* One node of the tree (proto/ratchet.md §1), as relm_rel_describe gives
 * it: ids, shape and flags, no key. */
struct relm_rel_node_info {
	uint8_t id[RELM_ID_LEN];
	uint8_t parent[RELM_ID_LEN];    /* all zero for the genesis node */
	int parent_index;               /* index into nodes, or -1: the root (its
	                                 * parent is genesis's zero id or was deleted) */
	uint32_t depth;                 /* genesis = 0 */
	uint32_t n;                     /* next counter on its chain */
	uint8_t ours;                   /* made by this proton's side (some device) */
	uint8_t own;                    /* made by this device */
	uint8_t valid;                  /* as the fork rule judges it (proto/ratchet.md §3.1) */
	uint8_t chosen;                 /* the chosen node (§3.2) */
	uint8_t has_chain;              /* holds a message chain (not the genesis node) */
	uint8_t has_private_key;        /* an ours node whose private key is still held */
};

/* A relationship's state as it may be shown to its user (relationship.show,
 * proto/api.md §4): the tree's shape and counters. */
struct relm_rel_info {
	uint8_t id[RELM_ID_LEN];
	int mode;                       /* enum relm_mode */
	char side;                      /* 'a' (inviter) or 'b' (accepter) */
	uint8_t initial_phase;          /* b before a's first envelope (proto/ratchet.md §8.2) */
	uint8_t sibling_session;        /* a session between two devices of one proton */
	uint32_t nnodes;
	struct relm_rel_node_info nodes[RELM_MAX_NODES];
	int chosen;                     /* index into nodes, or -1 */
	uint32_t pending;               /* envelopes in the pending set (§2.2) */
	uint32_t unacknowledged;        /* retransmission records held by the state */
	uint8_t unacknowledged_partial; /* the state holds only some of them: the
	                                 * store's count is the whole (relm_core loads
	                                 * the queue lazily) */
	uint32_t forks;                 /* forks detected */
	uint32_t pruned;                /* losing branches deleted */
	uint32_t retransmissions;
	uint32_t duplicates;            /* duplicates received */
	char remote_mailbox[RELM_MAILBOX_ADDR_MAX + 1]; /* where we post; "" until known */
};

/* Fill *info from rel: no key, no message content, no mailbox key.  Never
 * fails; rel is not modified. */
void relm_rel_describe(const struct relm_rel *rel, struct relm_rel_info *info);

/* ---- life cycle ------------------------------------------------------- */

/* Wipe every secret and free everything; NULL is a no-op. */
void relm_rel_free(struct relm_rel *rel);

/* Serialise the ratchet state (everything but the pending set, the
 * retransmission queue and the acknowledgements waiting for the receipt
 * timer — their deadline, receipt_due_ms, is in it) into a fresh
 * malloc'd buffer.  Returns 0 or RELM_ENOMEM.  Free with relm_rel_blob_free. */
int relm_rel_encode(const struct relm_rel *rel, uint8_t **out, size_t *outlen);
/* The same in a given blob version: the current one (8, what
 * relm_rel_encode writes), 7 (fixed-width integers, parents by id), or 6,
 * the last that wrote every field in full (tests build the older versions
 * from it).  Any other version is a programmer error. */
int relm_rel_encode_version(const struct relm_rel *rel, unsigned version, uint8_t **out, size_t *outlen);
void relm_rel_blob_free(uint8_t *buf, size_t len);
/* Parse a blob made by relm_rel_encode.  Returns 0, RELM_ESTATE (malformed,
 * never a crash), RELM_EVERSION, or RELM_ENOMEM. */
int relm_rel_decode(struct relm_rel **out, const uint8_t *buf, size_t len);
/* The relationship mailbox's key pair from a blob's head alone (every
 * version), without decoding the rest: what signs the mailbox's
 * subscriptions, for each of a million relationships at a mailbox
 * server's first registration (a whole decode is ~24 µs).  0, RELM_ESTATE
 * (a malformed head) or RELM_EVERSION; sk and pk untouched on error.  The
 * rest of the blob is not checked: the next step's decode does that. */
int relm_rel_blob_mailbox_key(const uint8_t *buf, size_t len, uint8_t sk[64], uint8_t pk[32]);
/* Give back a retransmission record loaded from the store.  0,
 * RELM_EEXIST, RELM_ETOOBIG or RELM_ENOMEM. */
int relm_rel_outgoing_load(struct relm_rel *rel, const uint8_t id[RELM_ID_LEN], int kind,
                           uint64_t ts, const char *body, size_t len, uint32_t tries,
                           uint64_t next_ms, const uint8_t last_node[RELM_ID_LEN]);
/* Give back an acknowledgement waiting for the receipt timer, loaded from
 * the store (no duplicate check: the store's rows are unique).  0 or
 * RELM_ENOMEM. */
int relm_rel_ack_load(struct relm_rel *rel, const uint8_t id[RELM_ID_LEN],
                      const uint8_t dh[RELM_KEY_LEN], uint32_t n);
/* Give back a pending envelope loaded from the store. */
int relm_rel_pending_load(struct relm_rel *rel, const uint8_t *buf, size_t len, uint64_t t_ms);

/* ---- setup (proto/ratchet.md §8, proto/wire.md §4) ------------------------
 * Accepter: run X3DH against inv, make the relationship and its first
 * (initial) envelope, a `hello` carrying my_mailbox_host ("host:port" of the
 * server where this side's mailbox lives), posted to the invite's mailbox.
 * ek_priv: fresh randomness is drawn from env.  ipk_sk: B's Ed25519 secret. */
int relm_rel_accept(struct relm_rel **out, const struct relm_env *env, enum relm_mode mode,
                    const uint8_t ipk_sk[RELM_SIGN_SK_LEN], const struct relm_invite *inv,
                    const char *my_mailbox_host, struct relm_effects *fx);

/* Inviter: the secrets of the invite an initial envelope names. */
struct relm_invite_secrets {
	uint8_t ipk_sk[RELM_SIGN_SK_LEN];
	uint8_t spk_priv[RELM_KEY_LEN];
	uint8_t opk_priv[RELM_KEY_LEN];
	int has_opk;
	char mailbox_host[RELM_MAILBOX_ADDR_MAX + 1];   /* "host:port" of this side's server */
};

/* Inviter: open an initial envelope (already decoded by the caller, who
 * looked up the invite by ext.spk_id/opk_id and checked that (IPK_a, EK_b)
 * was never used — the replay guard lives in the store).  On success a new
 * relationship with the accepter's first message processed. */
int relm_rel_open_initial(struct relm_rel **out, const struct relm_env *env, enum relm_mode mode,
                          const struct relm_invite_secrets *sec,
                          const uint8_t *buf, size_t len, struct relm_effects *fx);

/* ---- engine steps ------------------------------------------------------- */

/* Send a user message.  id: client-chosen message id or NULL (drawn from
 * env); id_out receives it.  Returns 0, RELM_EEXIST (that id is already
 * outgoing: nothing sent; the call is idempotent), RELM_ENOSEND,
 * RELM_ETOOBIG, RELM_ELIMIT, RELM_EINVAL. */
int relm_rel_send(struct relm_rel *rel, const struct relm_env *env,
                  const char *body, size_t body_len, const uint8_t *id,
                  uint8_t id_out[RELM_ID_LEN], struct relm_effects *fx);

/* An envelope arrived.  Returns 0 (accepted: effects say what it was),
 * RELM_EDUP (a duplicate: key already used, or a message id already held —
 * re-acknowledged if it authenticated), RELM_EPENDING (kept in the pending
 * set: PENDING_ADD effect), or an error with the state unchanged:
 * RELM_EMALFORMED/ETRUNCATED/ETOOBIG/EVERSION/EBADKEY (bad bytes),
 * RELM_EAUTH, RELM_EMAXSKIP, RELM_ESKIPCAP, RELM_EREJECTED (strict), RELM_ELIMIT. */
int relm_rel_receive(struct relm_rel *rel, const struct relm_env *env,
                     const uint8_t *buf, size_t len, struct relm_effects *fx);

/* Timers: due receipts, retransmissions, pending and skipped-key expiry. */
int relm_rel_tick(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx);

/* The earliest time relm_rel_tick has work, or 0 if none. */
uint64_t relm_rel_deadline(const struct relm_rel *rel, const struct relm_env *env);

/* ---- several devices of one proton (proto/devices.md §5) ---------------- */

/* A sibling's copy of one of its sends (buf: the binary sibling message,
 * type byte included; from: the sibling's device id).  Places the node it
 * made (or keeps it pending), advances counters, records the message or
 * drops the acknowledgements its receipt covers.  Returns 0 or an error
 * with the state unchanged: RELM_EMALFORMED (bad copy or payload),
 * RELM_EINVAL (another relationship's copy), RELM_ENOMEM. */
int relm_rel_copy(struct relm_rel *rel, const struct relm_env *env,
                  const uint8_t from[RELM_ID_LEN], const uint8_t *buf, size_t len,
                  struct relm_effects *fx);

/* Payloads a sibling accepted (a carry message, type byte included): each
 * one this device does not hold goes to its history, and an identity
 * statement among them is judged as if read here (its envelope, read
 * later, is a duplicate: proto/revocation.md §3.2).  0 or as above. */
int relm_rel_carry(struct relm_rel *rel, const struct relm_env *env,
                   const uint8_t *buf, size_t len, struct relm_effects *fx);

/* Merge a sibling's state of the same relationship (repair, devices.md
 * §5.6).  other is not modified.  0, RELM_EINVAL (another relationship),
 * RELM_ENOMEM (state unchanged). */
int relm_rel_merge(struct relm_rel *rel, const struct relm_env *env,
                   const struct relm_rel *other, struct relm_effects *fx);

/* Send one sibling frame (a binary sibling message, devices.md §4) on a
 * sibling session: automated, never acknowledged.  The receiving side's
 * relm_rel_receive emits it as a SIBLING effect.  Returns 0, RELM_EINVAL
 * (not a sibling session, empty or over RELM_SIBLING_MAX), RELM_ENOSEND,
 * RELM_ENOMEM. */
int relm_rel_send_sibling(struct relm_rel *rel, const struct relm_env *env,
                          const uint8_t *frame, size_t len, struct relm_effects *fx);

/* ---- revocation and identity roll (proto/revocation.md) ----------------- */

/* A device left the circle at epoch (proto/revocation.md §2): arm this
 * relationship's heal, a `heal` message on a fresh ours node sent
 * relm_rel_tick after a delay drawn from env in [heal_min_ms,
 * heal_max_ms] (relm_rel_deadline includes it).  An epoch not above the
 * last one armed is a no-op.  0, or RELM_EINVAL (a sibling session, not a
 * tree, epoch 0).  No effect: the caller saves the state. */
int relm_rel_heal_arm(struct relm_rel *rel, const struct relm_env *env, uint64_t epoch);

/* This proton rolled its identity key: send the successor statement stmt
 * (wire/successor.h, binary, RELM_SUCCESSOR_LEN bytes) as an `identity`
 * message, tracked like a text, and from now on present its new key
 * (ipk_self).  0, or RELM_EINVAL (its old key is not this side's, or a
 * sibling session), a decode error of the statement (nothing sent),
 * RELM_ELIMIT, RELM_ENOSEND, RELM_ENOMEM. */
int relm_rel_send_identity(struct relm_rel *rel, const struct relm_env *env,
                           const uint8_t *stmt, size_t len, uint8_t id_out[RELM_ID_LEN],
                           struct relm_effects *fx);

/* The person decided an identity.conflict: pin ipk, one of the two
 * successors reported (emits identity.rotated).  0, RELM_EINVAL (no
 * conflict), RELM_ENOTFOUND (ipk is not one of the two), RELM_ENOMEM. */
int relm_rel_identity_accept(struct relm_rel *rel, const uint8_t ipk[RELM_SIGN_PK_LEN],
                             struct relm_effects *fx);

/* The node the fork rule chooses (index into rel->tree.nodes, see
 * engine/rel_state.h) or -1. */
int relm_rel_chosen(const struct relm_rel *rel);

#endif

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
#include "engine/fork_rule.h"
#include "wire/envelope.h"
#include "crypto/x3dh.h"
#include "wire/payload.h"

enum relm_mode {
	RELM_MODE_NONE = 0,
	RELM_MODE_TREE = 1,
	RELM_MODE_STRICT = 2,
};

struct relm_skipped {
	uint8_t dh[RELM_KEY_LEN];
	uint32_t n;
	uint8_t mk[RELM_KEY_LEN];       /* secret */
	uint64_t t_ms;                  /* when stored: expiry */
	uint8_t used;                   /* tree: a key already used, kept briefly so a
	                                 * sibling's colliding message (same counter,
	                                 * another id) still decrypts */
};

/* A non-automated message waiting for the remote's receipt. */
struct relm_outgoing {
	uint8_t id[RELM_ID_LEN];
	uint8_t kind;                   /* enum relm_kind */
	uint64_t ts;
	char *body;                     /* owned, secret (wiped on free) */
	uint32_t body_len;
	uint32_t tries;
	uint64_t next_ms;               /* next retransmission */
	uint8_t last_node[RELM_ID_LEN]; /* node of the last try (rotation, proto/ratchet.md §6.3) */
	uint8_t sibling;                /* a sibling's message: retransmitted here only
	                                 * once next_ms (the takeover time) passes */
};

/* A sibling's new node whose parent is not in the tree yet (a pending
 * copy, proto/devices.md §5.1). */
struct relm_pcopy {
	uint8_t from[RELM_ID_LEN];      /* the sibling device that sent the copy */
	uint8_t node[RELM_ID_LEN];
	uint32_t n;                     /* counter the sibling used on it */
	uint8_t parent[RELM_ID_LEN];
	uint8_t pub[RELM_KEY_LEN];
	uint8_t priv[RELM_KEY_LEN];     /* secret */
	uint32_t pn;
	uint64_t t_ms;                  /* arrival */
};

struct relm_pending {
	uint8_t *buf;                   /* the envelope, owned */
	uint32_t len;
	uint64_t t_ms;                  /* arrival */
	uint8_t hash[RELM_ID_LEN];
};

enum {
	RELM_RECENT_IDS = 64,           /* accepted incoming ids kept in the state */
	RELM_ACKED_RING = 16,           /* ids the remote receipted lately (multi-device) */
};

struct relm_rel_stats {
	uint32_t forks;                 /* fork.detected events */
	uint32_t pruned;                /* losing branches deleted */
	uint32_t retx;                  /* retransmissions */
	uint32_t dups;                  /* duplicates received */
	uint32_t trials;                /* trial decryptions attempted */
};

struct relm_rel {
	uint8_t id[RELM_ID_LEN];
	uint8_t mode;                   /* enum relm_mode */
	uint8_t side;                   /* 'a' or 'b' */
	uint8_t ad[RELM_AD_LEN];
	uint8_t ipk_self[RELM_SIGN_PK_LEN];
	uint8_t ipk_remote[RELM_SIGN_PK_LEN];
	/* The mailbox this side reads (derived, proto/wire.md §4.1) and its key. */
	uint8_t mbox_pk[RELM_SIGN_PK_LEN];
	uint8_t mbox_sk[RELM_SIGN_SK_LEN];   /* secret */
	uint8_t remote_mbox_pk[RELM_SIGN_PK_LEN];      /* the mailbox the other side reads */
	/* The gate key (proto/wire.md §5.1): every envelope of the relationship
	 * ends with a tag under it, checked before anything is kept.
	 * Relationships made before it existed (state blob v4 and older) have
	 * none and send and accept envelopes without the tag. */
	uint8_t has_gate;
	uint8_t gate_key[RELM_KEY_LEN];      /* secret */
	char remote_mailbox[RELM_MAILBOX_ADDR_MAX + 1]; /* "" until known (a: from hello) */
	/* Accepter only, until the first envelope from 'a' authenticates:
	 * every envelope carries the X3DH extension, and the hello goes to the
	 * invite's mailbox. */
	uint8_t initial_pending;
	struct relm_initial_ext initial;
	char invite_mailbox[RELM_MAILBOX_ADDR_MAX + 1];

	struct relm_tree tree;
	struct relm_skipped *skipped;   /* owned array */
	uint32_t nskipped, capskipped;
	/* The retransmission queue.  Not in the encoded state: every change is
	 * also an effect (OUT_PUT / OUT_DEL) and the store keeps the records as
	 * rows.  A relationship decoded from a blob holds none of them until
	 * the caller loads the due ones (relm_rel_outgoing_load) and sets
	 * out_partial, so that receipts for records not loaded still reach the
	 * store.  Tests that keep a relationship in memory hold all of them. */
	struct relm_outgoing *out;      /* owned array */
	uint32_t nout, capout;
	uint8_t out_partial;            /* out holds only some records */
	uint8_t out_unsaved;            /* out came from a v1 blob: write it to the store */
	/* Receipt content waiting for its timer.  Not in the encoded state
	 * either (since blob v4): every change is an effect (ACK_PUT /
	 * ACK_DEL) and the store keeps them as rows, because a busy
	 * relationship holds up to two seconds' worth of them and the blob is
	 * rewritten at every step.  A relationship decoded from a blob holds
	 * only those added since, with acks_partial set by the caller, and
	 * sends no receipt until the caller has given back the rest
	 * (relm_rel_ack_load) and cleared acks_partial — the timer stays
	 * armed meanwhile.  Tests that keep a relationship in memory hold all. */
	struct relm_ack *acks_due;
	uint32_t nacks_due, capacks;
	uint8_t acks_partial;           /* acks_due holds only some of them */
	uint8_t acks_unsaved;           /* acks_due came from a v1–v3 blob: write them to the store */
	uint64_t receipt_due_ms;        /* 0 = no receipt armed */
	uint8_t recent[RELM_RECENT_IDS][RELM_ID_LEN];
	uint32_t recent_next;
	struct relm_rel_stats stats;

	/* Multi-device (proto/devices.md §5); all empty for a single device. */
	struct relm_pcopy pcopies[RELM_MAX_PENDING_COPIES];
	uint32_t npcopies;
	uint8_t pruned[RELM_PRUNED_RING][RELM_ID_LEN];   /* nodes pruned lately, oldest first */
	uint32_t npruned;
	uint8_t acked[RELM_ACKED_RING][RELM_ID_LEN];     /* ids receipted lately, oldest first */
	uint32_t nacked;
	uint8_t batch_first[RELM_ID_LEN]; /* first acknowledgement of the receipt batch */
	uint64_t repair_ms;             /* when this device last asked a sibling for state */
	/* A sibling session (devices.md §3): a strict relationship between two
	 * devices of one proton, carrying sibling frames. */
	uint8_t sibling_session;

	/* Not part of the encoded state: the store keeps them as rows and puts
	 * them back with relm_rel_pending_load(). */
	struct relm_pending *pending;
	uint32_t npending, cappending;
};

/* ---- life cycle ------------------------------------------------------- */

/* Wipe every secret and free everything; NULL is a no-op. */
void relm_rel_free(struct relm_rel *rel);

/* Serialise the ratchet state (everything but the pending set, the
 * retransmission queue and the acknowledgements waiting for the receipt
 * timer — their deadline, receipt_due_ms, is in it) into a fresh
 * malloc'd buffer.  Returns 0 or RELM_ENOMEM.  Free with relm_rel_blob_free. */
int relm_rel_encode(const struct relm_rel *rel, uint8_t **out, size_t *outlen);
void relm_rel_blob_free(uint8_t *buf, size_t len);
/* Parse a blob made by relm_rel_encode.  Returns 0, RELM_ESTATE (malformed,
 * never a crash), RELM_EVERSION, or RELM_ENOMEM. */
int relm_rel_decode(struct relm_rel **out, const uint8_t *buf, size_t len);
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
 * one this device does not hold goes to its history.  0 or as above. */
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

/* The node the fork rule chooses (index into rel->tree.nodes) or -1. */
int relm_rel_chosen(const struct relm_rel *rel);

#endif

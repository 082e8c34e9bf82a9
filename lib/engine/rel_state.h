/*
 * rel_state.h — the state of one relationship (struct relm_rel), internal
 * to lib/: the engine (lib/engine), the core that binds it to the store
 * (lib/core) and the tests include it.  daemon/ does not: it sees struct
 * relm_rel only as the opaque handle of engine/rel.h and learns what may be
 * shown of it through relm_rel_describe() (tests/test_layering.sh checks
 * that no file under daemon/ includes this header).
 */
#ifndef RELM_REL_STATE_H
#define RELM_REL_STATE_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"
#include "engine/rel.h"
#include "engine/chain_tree.h"
#include "engine/fork_rule.h"
#include "crypto/x3dh.h"
#include "wire/envelope.h"
#include "wire/payload.h"

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

/* A relationship's heal after a revocation (proto/revocation.md §2). */
enum relm_heal_state {
	RELM_HEAL_NONE  = 0,            /* nothing to heal, or healed */
	RELM_HEAL_ARMED = 1,            /* send a heal at heal_due_ms */
	RELM_HEAL_SENT  = 2,            /* sent on heal_node: waiting for the remote's node on it */
};

enum {
	RELM_RECENT_IDS = 64,           /* accepted incoming ids kept in the state */
	RELM_ACKED_RING = 16,           /* acks the remote sent lately (multi-device) */
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
	/* the caller gave back the first stored ones only (a step sends at
	 * most RELM_RECEIPTS_PER_STEP receipts): more rows wait in the store,
	 * so the timer stays due when acks_due is empty.  Not in the blob. */
	uint8_t acks_more;
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
	/* Acknowledgements the remote's receipts carried lately, oldest first:
	 * the message id and the ratchet key it was accepted on.  A sibling's
	 * node placed after the receipt was read is valid from the start
	 * (proto/devices.md §5.1). */
	struct relm_acked {
		uint8_t id[RELM_ID_LEN];
		uint8_t dh[RELM_KEY_LEN];
	} acked[RELM_ACKED_RING];
	uint32_t nacked;
	uint8_t batch_first[RELM_ID_LEN]; /* first acknowledgement of the receipt batch */
	uint64_t repair_ms;             /* when this device last asked a sibling for state */
	/* A sibling session (devices.md §3): a strict relationship between two
	 * devices of one proton, carrying sibling frames. */
	uint8_t sibling_session;

	/* Revocation and identity roll (proto/revocation.md), blob v6. */
	uint64_t ipk_seq;               /* roll number of ipk_remote (0: the key the
	                                 * relationship was made with) */
	uint8_t ipk_prev[RELM_SIGN_PK_LEN]; /* the key ipk_remote succeeded (zero if none) */
	uint8_t ipk_conflict;           /* two successors of ipk_remote seen: both below */
	uint8_t ipk_cand[2][RELM_SIGN_PK_LEN];
	uint8_t heal_state;             /* enum relm_heal_state */
	uint64_t heal_epoch;            /* the circle epoch the heal is for */
	uint64_t heal_due_ms;           /* HEAL_ARMED: when the heal goes out */
	uint8_t heal_node[RELM_ID_LEN]; /* HEAL_SENT: the fresh node it went on */
	/* The revocation's other heal nodes (a sibling's heal that raced
	 * this device's, an earlier round's), oldest first: the remote's
	 * reply on any of them heals too (blob v8, P_HEALS). */
	uint8_t heal_others[RELM_HEAL_OTHERS][RELM_ID_LEN];
	uint8_t nheal_others;
	uint64_t clone_since_ms;        /* an acknowledgement nothing explains: since (0: none) */
	uint8_t clone_id[RELM_ID_LEN];  /* its message id */
	uint8_t clone_dh[RELM_KEY_LEN]; /* and the ratchet key of the ours node it names */

	/* Not part of the encoded state: the store keeps them as rows and puts
	 * them back with relm_rel_pending_load(). */
	struct relm_pending *pending;
	uint32_t npending, cappending;
};

#endif

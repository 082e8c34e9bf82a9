/*
 * ratchet.h — the cryptographic steps of the tree-shaped Double Ratchet
 * (proto/wire.md §2, proto/ratchet.md §1–§2), internal to lib/.  Split in two so that every receive is
 * copy-verify-commit: relm__ratchet_open() finds the message key and
 * decrypts without touching the relationship; relm__ratchet_commit() then
 * applies exactly what open found (consumed key, advanced chain, new node,
 * skipped keys).  The names follow the Double Ratchet specification:
 * try_skipped_message_keys, skip_message_keys, dh_ratchet.
 */
#ifndef RELM_RATCHET_H
#define RELM_RATCHET_H

#include "engine/rel_state.h"
#include "wire/payload.h"

enum relm__open_how {
	RELM__OPEN_NONE = 0,
	RELM__OPEN_SKIPPED,     /* a stored skipped message key */
	RELM__OPEN_CHAIN,       /* an existing theirs node's chain */
	RELM__OPEN_NEW,         /* a new theirs node (trial decryption / DH step) */
};

struct relm__opened {
	enum relm__open_how how;
	int node;                        /* CHAIN: the theirs node; NEW: its parent */
	int skipped;                     /* SKIPPED: index in rel->skipped */
	struct relm_node fresh;          /* NEW: the node to add (secret) */
	uint32_t n;                      /* counter of the message */
	uint8_t ck_after[RELM_KEY_LEN];  /* chain key after n (secret) */
	uint8_t mk[RELM_KEY_LEN];        /* the message key (secret) */
	/* strict DH step: the old receiving chain is skipped up to pn first */
	int strict_prev;                 /* index of the old DHr node, or -1 */
	uint32_t strict_pn;
	uint8_t *pt;                     /* plaintext (padded payload), owned */
	size_t ptlen;
};

/* Find the key for e and decrypt, without changing rel.  Returns 0,
 * RELM_EDUP (key already used), RELM_EPENDING (tree: no known node can
 * own this key yet), RELM_EAUTH, RELM_EMAXSKIP, RELM_ESKIPCAP,
 * RELM_EREJECTED (strict), RELM_ELIMIT, RELM_ENOMEM. */
int relm__ratchet_open(const struct relm_rel *rel, const struct relm_env *env,
                       const struct relm_envelope *e, struct relm__opened *o);

/* Make room for every key the commit of o will store, so that the commit
 * cannot fail half-way and drop skipped keys.  Changes capacity only (the
 * encoded state is unchanged).  0 or RELM_ENOMEM. */
int relm__ratchet_reserve(struct relm_rel *rel, const struct relm__opened *o,
                          const struct relm_envelope *e);

/* Apply o to rel (cannot fail after relm__ratchet_reserve).  Returns the
 * index of the node the message was on. */
int relm__ratchet_commit(struct relm_rel *rel, const struct relm_env *env,
                         struct relm__opened *o, const struct relm_envelope *e);

void relm__opened_wipe(struct relm__opened *o);

/* Advance node's chain to counter `to` (ck stepped, n = to); nothing if
 * it is already there or past it.  For the sending counters siblings
 * share (devices.md §5.1). */
void relm__chain_advance(struct relm_node *node, uint32_t to);

/* A new ours node under theirs node `parent` with a fresh key pair from env.
 * Returns 0 or RELM_EBADKEY. */
int relm__make_ours_node(const struct relm_rel *rel, const struct relm_env *env,
                         int parent, struct relm_node *out);

/* Encrypt pt (a padded payload) on node `node` (which may not be in the
 * tree yet).  Writes a fresh envelope to *out and the chain key after this
 * message to ck_next; the caller commits node->ck/n.  Returns 0 or
 * RELM_ENOMEM/RELM_ETOOBIG. */
int relm__ratchet_seal(const struct relm_rel *rel, const struct relm_env *env,
                       const struct relm_node *node, const uint8_t *pt, size_t ptlen,
                       uint8_t **out, size_t *outlen, uint8_t ck_next[RELM_KEY_LEN]);

/* How rel.c's send goes (flags): automated (never makes a node, never
 * acknowledged), and fresh (a heal: always a new ours node,
 * proto/revocation.md §2). */
enum { RELM__SEND_AUTOMATED = 1, RELM__SEND_FRESH = 2 };

/* rel.c: send p (non-automated) and track it until a receipt covers it;
 * fresh: on a new ours node. */
int relm__rel_send_tracked(struct relm_rel *rel, const struct relm_env *env,
                           const struct relm_payload *p, const char *body, size_t len,
                           int fresh, uint8_t on[RELM_ID_LEN], struct relm_effects *fx);

/* Strict mode: the current sending (DHs) and receiving (DHr) nodes. */
int relm__strict_dhs(const struct relm_rel *rel);
int relm__strict_dhr(const struct relm_rel *rel);

#endif

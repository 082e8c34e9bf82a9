/*
 * chain_tree.h — the nodes of one relationship (proto/ratchet.md §1).
 *
 * A node is one DH ratchet step: a ratchet public key from one side and the
 * root key derived with it.  Nodes form a tree (normally a line); concurrent
 * sends from two siblings fork it.  This file holds the bookkeeping —
 * lookup, adding, deleting with wiping — and never does crypto beyond
 * wiping.  The rule that chooses among the nodes is fork_rule.h.
 *
 *   node_id   = BLAKE2b-128(parent_id ‖ dh_pub); the genesis node's parent
 *               id is 16 zero bytes.
 *
 * Nodes live in a small array inside struct relm_tree (at most
 * RELM_MAX_NODES); indices are stable only until the next add/delete.
 */
#ifndef RELM_CHAIN_TREE_H
#define RELM_CHAIN_TREE_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"

enum relm_node_flags {
	RELM_NODE_OURS  = 0x01,  /* made by our side (some device of this proton) */
	RELM_NODE_PRIV  = 0x02,  /* priv holds the ratchet private key */
	RELM_NODE_ACKED = 0x04,  /* a receipt named an envelope accepted on it */
	RELM_NODE_OWN   = 0x08,  /* made by this device */
	RELM_NODE_CHAIN = 0x10,  /* ck/n hold a message chain (not the genesis node) */
	RELM_NODE_KNOWN_FLAGS = 0x1f,
};

struct relm_node {
	uint8_t id[RELM_ID_LEN];
	uint8_t parent[RELM_ID_LEN];     /* all zero for the genesis node */
	uint32_t depth;                  /* genesis = 0 */
	uint8_t flags;
	uint8_t pub[RELM_KEY_LEN];
	uint8_t priv[RELM_KEY_LEN];      /* secret; all zero unless RELM_NODE_PRIV */
	uint8_t rk[RELM_KEY_LEN];        /* secret: root key after this step */
	uint8_t ck[RELM_KEY_LEN];        /* secret: chain key at counter n */
	uint32_t n;                      /* next counter on this chain */
	uint32_t pn;                     /* pn for sends on this node when its grandparent is gone */
	uint64_t created_ms;
};

struct relm_tree {
	struct relm_node nodes[RELM_MAX_NODES];
	uint32_t count;
};

/* Lookups: index or -1. */
int relm_tree_find(const struct relm_tree *t, const uint8_t id[RELM_ID_LEN]);
int relm_tree_find_pub(const struct relm_tree *t, const uint8_t pub[RELM_KEY_LEN], int ours);
int relm_tree_parent(const struct relm_tree *t, int i);

/* Number of children of node i, and of its theirs/ours children. */
int relm_tree_children(const struct relm_tree *t, int i, int *ours, int *theirs);

/* Append a node (copied in).  Returns its index or RELM_ELIMIT. */
int relm_tree_add(struct relm_tree *t, const struct relm_node *n);

/* Delete node i and its whole subtree, wiping secrets.  Returns how many
 * nodes were deleted. */
int relm_tree_delete_subtree(struct relm_tree *t, int i);

/* Internal to chain_tree.c and fork_rule.c: delete the nodes flagged in
 * del[] (wiping them, keeping order) and return how many; flag node i and
 * its whole subtree in del[]. */
int relm__tree_compact(struct relm_tree *t, const uint8_t *del);
void relm__tree_mark_subtree(const struct relm_tree *t, int i, uint8_t *del);

/* Wipe every secret and empty the tree. */
void relm_tree_wipe(struct relm_tree *t);

#endif

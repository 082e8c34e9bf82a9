/*
 * fork_rule.h — the fork rule (proto/ratchet.md §3–§5): the choice every
 * device of both sides makes identically, so that concurrent sends from
 * several devices of one proton converge on one chain.
 *
 *   valid     = theirs, or ours with a theirs child, or ours and ACKED
 *               (a receipt named an envelope accepted on it).
 *   chosen    = the deepest valid node; ties → the smallest node_id path,
 *               root to node (the same order on both sides).
 *   send on   = the chosen node if it is ours; else its existing ours child
 *               with a chain (smallest node_id); else a new ours node under
 *               it — never new for an automated message, which goes on the
 *               ours node the chosen node was built on.  A retry steps to
 *               the next sibling ours node after its previous try's.
 *   prune     = for each fork on the chosen path at least W above the
 *               chosen node, delete each losing child subtree whose deepest
 *               node is more than W shallower than the chosen node; wipe
 *               ours private keys more than R steps above the chosen node;
 *               drop single-child ancestors more than KEEP_BACK above it.
 */
#ifndef RELM_FORK_RULE_H
#define RELM_FORK_RULE_H

#include "engine/chain_tree.h"

int relm_tree_is_valid(const struct relm_tree *t, int i);

/* Deepest valid node, ties to the smallest node_id path; -1 if none. */
int relm_tree_choose(const struct relm_tree *t);

/* -1, 0, 1: path order of two nodes of equal depth (root to node). */
int relm_tree_path_cmp(const struct relm_tree *t, int a, int b);

/* Which node a send goes on.  Sets *create when a
 * new ours node must be made under node *on (then the return value is the
 * theirs parent).  prev_try: the node of this message's previous try (or
 * NULL): retries step through sibling ours children in node_id order.
 * Returns the index, or -1 if there is nothing to send on. */
int relm_tree_pick(const struct relm_tree *t, int automated,
                   const uint8_t *prev_try, int *create);

/* Prune around the chosen node (see header comment).  w, r: the W and R
 * parameters.  *pruned_branches counts deleted losing branches. */
void relm_tree_prune(struct relm_tree *t, uint32_t w, uint32_t r, int *pruned_branches);

#endif

/*
 * fork_rule.c — which node is valid, which one is chosen, which node a send
 * goes on, and what is pruned (proto/ratchet.md §3–§5).  fork_rule.h states
 * the rules; this file only implements them, on the tree of chain_tree.c.
 */
#include <string.h>
#include <sodium.h>
#include "engine/fork_rule.h"
#include "error.h"

static int is_ours(const struct relm_node *n)
{
	return (n->flags & RELM_NODE_OURS) != 0;
}

int relm_tree_is_valid(const struct relm_tree *t, int i)
{
	int theirs = 0;
	const struct relm_node *n = &t->nodes[i];

	if (!is_ours(n) || (n->flags & RELM_NODE_ACKED))
		return 1;
	relm_tree_children(t, i, NULL, &theirs);
	return theirs > 0;
}

int relm_tree_path_cmp(const struct relm_tree *t, int a, int b)
{
	/* Equal depths: climb in lockstep to the children of the lowest
	 * common ancestor; the first difference of the root-to-node paths is
	 * there, so comparing those two ids is comparing the paths. */
	while (a != b && a >= 0 && b >= 0 &&
	       memcmp(t->nodes[a].parent, t->nodes[b].parent, RELM_ID_LEN) != 0) {
		a = relm_tree_parent(t, a);
		b = relm_tree_parent(t, b);
	}
	if (a == b)
		return 0;
	if (a < 0 || b < 0)
		return a < 0 ? -1 : 1;   /* unreachable with one root; keep total */
	int c = memcmp(t->nodes[a].id, t->nodes[b].id, RELM_ID_LEN);
	return c < 0 ? -1 : c > 0;
}

int relm_tree_choose(const struct relm_tree *t)
{
	int best = -1;

	for (uint32_t i = 0; i < t->count; i++) {
		if (!relm_tree_is_valid(t, (int)i))
			continue;
		if (best < 0 || t->nodes[i].depth > t->nodes[best].depth ||
		    (t->nodes[i].depth == t->nodes[best].depth &&
		     relm_tree_path_cmp(t, (int)i, best) < 0))
			best = (int)i;
	}
	return best;
}

/* Ours children of p that carry a chain, in node_id order, into out. */
static int ours_children(const struct relm_tree *t, int p, int out[RELM_MAX_NODES])
{
	int k = 0;

	for (uint32_t i = 0; i < t->count; i++) {
		const struct relm_node *n = &t->nodes[i];
		if (!is_ours(n) || !(n->flags & RELM_NODE_CHAIN) ||
		    memcmp(n->parent, t->nodes[p].id, RELM_ID_LEN) != 0)
			continue;
		int j = k++;
		while (j > 0 && memcmp(t->nodes[out[j - 1]].id, n->id, RELM_ID_LEN) > 0) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = (int)i;
	}
	return k;
}

int relm_tree_pick(const struct relm_tree *t, int automated,
                   const uint8_t *prev_try, int *create)
{
	int kids[RELM_MAX_NODES];
	int leaf = relm_tree_choose(t), node, nk, p;

	*create = 0;
	if (leaf < 0)
		return -1;
	if (is_ours(&t->nodes[leaf]) && (t->nodes[leaf].flags & RELM_NODE_CHAIN)) {
		node = leaf;
	} else if (is_ours(&t->nodes[leaf])) {
		return -1;               /* inviter's genesis alone: nothing to send on */
	} else if ((nk = ours_children(t, leaf, kids)) > 0) {
		node = kids[0];
	} else if (automated && (p = relm_tree_parent(t, leaf)) >= 0 &&
	           (t->nodes[p].flags & RELM_NODE_CHAIN)) {
		/* An automated message never creates a node: it goes on the ours
		 * node the chosen leaf was built on (proto/ratchet.md §4.3). */
		return p;
	} else {
		/* Non-automated, or the inviter's first reply: its genesis node has
		 * no sending chain, so even a receipt must make the first node. */
		*create = 1;
		return leaf;
	}
	/* Rotation: a retry steps to the next sibling ours node in node_id
	 * order after the one its previous try used, so a strict remote that
	 * accepted only one of them is reached on it (proto/ratchet.md §6.3). */
	if (prev_try && !automated && (p = relm_tree_parent(t, node)) >= 0 &&
	    (nk = ours_children(t, p, kids)) >= 2) {
		for (int k = 0; k < nk; k++)
			if (memcmp(t->nodes[kids[k]].id, prev_try, RELM_ID_LEN) == 0)
				return kids[(k + 1) % nk];
	}
	return node;
}

static uint32_t subtree_depth(const struct relm_tree *t, int i)
{
	uint8_t in[RELM_MAX_NODES] = { 0 };
	uint32_t best = 0;

	relm__tree_mark_subtree(t, i, in);
	for (uint32_t k = 0; k < t->count; k++)
		if (in[k] && t->nodes[k].depth > best)
			best = t->nodes[k].depth;
	return best;
}

void relm_tree_prune(struct relm_tree *t, uint32_t w, uint32_t r, int *pruned_branches)
{
	uint8_t del[RELM_MAX_NODES] = { 0 };
	int c = relm_tree_choose(t), x, p;
	uint32_t cd;

	if (pruned_branches)
		*pruned_branches = 0;
	if (c < 0)
		return;
	cd = t->nodes[c].depth;

	/* Losing branches: at each fork on the chosen path at least W above the
	 * chosen node, a losing child subtree goes once its deepest node is
	 * more than W shallower than the chosen node — never while it is still
	 * being extended (proto/ratchet.md §5.1: pruning "W past the fork" is unsafe). */
	for (x = c; (p = relm_tree_parent(t, x)) >= 0; x = p) {
		if (cd - t->nodes[p].depth < w)
			continue;
		for (uint32_t k = 0; k < t->count; k++) {
			if ((int)k == x || del[k] ||
			    memcmp(t->nodes[k].parent, t->nodes[p].id, RELM_ID_LEN) != 0)
				continue;
			uint32_t sd = subtree_depth(t, (int)k);
			if (sd + w < cd) {
				relm__tree_mark_subtree(t, (int)k, del);
				if (pruned_branches)
					(*pruned_branches)++;
			}
		}
	}
	/* Old ancestors: single-child nodes far above the chosen node. */
	for (;;) {
		int root = c, q, kids;
		while ((q = relm_tree_parent(t, root)) >= 0 && !del[q])
			root = q;
		if (root == c || cd - t->nodes[root].depth <= RELM_KEEP_BACK)
			break;
		kids = 0;
		for (uint32_t k = 0; k < t->count; k++)
			if (!del[k] && memcmp(t->nodes[k].parent, t->nodes[root].id, RELM_ID_LEN) == 0)
				kids++;
		if (kids != 1)
			break;
		del[root] = 1;
	}
	/* Private keys of ours nodes: kept at most R steps back. */
	for (uint32_t k = 0; k < t->count; k++) {
		struct relm_node *n = &t->nodes[k];
		if (!del[k] && (n->flags & RELM_NODE_PRIV) && n->depth + r < cd) {
			sodium_memzero(n->priv, sizeof n->priv);
			n->flags &= (uint8_t)~RELM_NODE_PRIV;
		}
	}
	relm__tree_compact(t, del);
}

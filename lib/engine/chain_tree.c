/*
 * chain_tree.c — the nodes of one relationship as a tree: lookup, adding,
 * deleting with wiping.  The rule that chooses among them is in
 * fork_rule.c.  Trees are small (pruning keeps a few dozen nodes at most),
 * so every operation is a linear scan: simple, and cheaper than
 * maintaining an index.
 */
#include <string.h>
#include <sodium.h>
#include "engine/chain_tree.h"
#include "error.h"

static const uint8_t zero_id[RELM_ID_LEN];

static int is_ours(const struct relm_node *n)
{
	return (n->flags & RELM_NODE_OURS) != 0;
}

int relm_tree_find(const struct relm_tree *t, const uint8_t id[RELM_ID_LEN])
{
	for (uint32_t i = 0; i < t->count; i++)
		if (memcmp(t->nodes[i].id, id, RELM_ID_LEN) == 0)
			return (int)i;
	return -1;
}

int relm_tree_find_pub(const struct relm_tree *t, const uint8_t pub[RELM_KEY_LEN], int ours)
{
	for (uint32_t i = 0; i < t->count; i++)
		if (is_ours(&t->nodes[i]) == !!ours &&
		    memcmp(t->nodes[i].pub, pub, RELM_KEY_LEN) == 0)
			return (int)i;
	return -1;
}

int relm_tree_parent(const struct relm_tree *t, int i)
{
	if (memcmp(t->nodes[i].parent, zero_id, RELM_ID_LEN) == 0)
		return -1;
	return relm_tree_find(t, t->nodes[i].parent);
}

int relm_tree_children(const struct relm_tree *t, int i, int *ours, int *theirs)
{
	int o = 0, th = 0;

	for (uint32_t k = 0; k < t->count; k++) {
		if (memcmp(t->nodes[k].parent, t->nodes[i].id, RELM_ID_LEN) != 0)
			continue;
		if (is_ours(&t->nodes[k]))
			o++;
		else
			th++;
	}
	if (ours)
		*ours = o;
	if (theirs)
		*theirs = th;
	return o + th;
}

int relm_tree_add(struct relm_tree *t, const struct relm_node *n)
{
	if (t->count >= RELM_MAX_NODES)
		return RELM_ELIMIT;
	t->nodes[t->count] = *n;
	return (int)t->count++;
}

/* Remove the nodes flagged in del[], wiping them, keeping order. */
int relm__tree_compact(struct relm_tree *t, const uint8_t *del)
{
	uint32_t w = 0;
	int gone = 0;

	for (uint32_t i = 0; i < t->count; i++) {
		if (del[i]) {
			sodium_memzero(&t->nodes[i], sizeof t->nodes[i]);
			gone++;
			continue;
		}
		if (w != i) {
			t->nodes[w] = t->nodes[i];
			sodium_memzero(&t->nodes[i], sizeof t->nodes[i]);
		}
		w++;
	}
	t->count = w;
	return gone;
}

void relm__tree_mark_subtree(const struct relm_tree *t, int i, uint8_t *del)
{
	int changed = 1;

	del[i] = 1;
	while (changed) {
		changed = 0;
		for (uint32_t k = 0; k < t->count; k++) {
			if (del[k])
				continue;
			int p = relm_tree_parent(t, (int)k);
			if (p >= 0 && del[p]) {
				del[k] = 1;
				changed = 1;
			}
		}
	}
}

int relm_tree_delete_subtree(struct relm_tree *t, int i)
{
	uint8_t del[RELM_MAX_NODES] = { 0 };

	relm__tree_mark_subtree(t, i, del);
	return relm__tree_compact(t, del);
}

void relm_tree_wipe(struct relm_tree *t)
{
	sodium_memzero(t, sizeof *t);
}

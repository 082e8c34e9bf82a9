/*
 * rel_describe.c — what may be shown of a relationship (rel.h,
 * relm_rel_describe): the tree's shape, the fork rule's verdicts and the
 * counters, copied field by field into a plain struct.  Only public values
 * are copied — node ids, depths, counters, flags — never a key, a message
 * or a mailbox secret, so a caller that displays the result (the socket
 * API's relationship.show, proto/api.md §4) cannot leak one.
 */
#include <string.h>

#include "engine/rel_state.h"

void relm_rel_describe(const struct relm_rel *rel, struct relm_rel_info *info)
{
	const struct relm_tree *t = &rel->tree;
	int chosen = relm_rel_chosen(rel);

	memset(info, 0, sizeof *info);
	memcpy(info->id, rel->id, RELM_ID_LEN);
	info->mode = rel->mode;
	info->side = (char)rel->side;
	info->initial_phase = rel->initial_pending;
	info->sibling_session = rel->sibling_session;
	info->nnodes = t->count;
	for (uint32_t i = 0; i < t->count; i++) {
		const struct relm_node *n = &t->nodes[i];
		struct relm_rel_node_info *o = &info->nodes[i];

		memcpy(o->id, n->id, RELM_ID_LEN);
		memcpy(o->parent, n->parent, RELM_ID_LEN);
		o->parent_index = relm_tree_parent(t, (int)i);
		o->depth = n->depth;
		o->n = n->n;
		o->ours = (n->flags & RELM_NODE_OURS) != 0;
		o->own = (n->flags & RELM_NODE_OWN) != 0;
		o->valid = relm_tree_is_valid(t, (int)i) != 0;
		o->chosen = (int)i == chosen;
		o->has_chain = (n->flags & RELM_NODE_CHAIN) != 0;
		o->has_private_key = (n->flags & RELM_NODE_PRIV) != 0;
	}
	info->chosen = chosen;
	info->pending = rel->npending;
	info->unacknowledged = rel->nout;
	/* A relationship decoded from the store holds only the records loaded
	 * since (out_partial); one decoded from a v1 blob holds all of them,
	 * not yet written to the store (out_unsaved). */
	info->unacknowledged_partial = rel->out_partial && !rel->out_unsaved;
	info->forks = rel->stats.forks;
	info->pruned = rel->stats.pruned;
	info->retransmissions = rel->stats.retx;
	info->duplicates = rel->stats.dups;
	memcpy(info->remote_mailbox, rel->remote_mailbox, sizeof info->remote_mailbox);
}

/*
 * revoke.c — a device leaves the circle in the middle of the traffic
 * (proto/revocation.md): A's last device is removed at a random moment of
 * the schedule (`relm-sim --revoke P`).  From then on it is out of the
 * circle — no sibling sends it anything, its person types nothing and it
 * posts nothing — but it keeps reading the relationship's mailbox, as a
 * stolen device would.  The remaining devices drop it from env->devices
 * and arm the heal of the relationship.
 *
 * What is checked at the end (sim_check_revoke):
 *   - every message B typed on a node whose path holds an A node the
 *     removed device never held a private key of ("sealed": B's reply to a
 *     post-revocation node, and everything built on it) is not in the
 *     removed device's history — it could not decrypt it — unless an
 *     envelope of it that reached A's mailbox went on a node whose path
 *     holds none (a retry the remote built on an older node, which the
 *     heal's window allows: proto/revocation.md §2);
 *   - the remaining devices lose nothing (check.c's invariants, which no
 *     longer count the removed device) and end healed;
 *   - no device raised clone.suspected (the removed device is silent, so
 *     every acknowledgement has an explanation: a false-positive check that
 *     runs in every schedule, revoked or not).
 * What is measured: how many of B's messages were sealed, and how many the
 * removed device still read after the removal (the heal's window).
 */
#include <string.h>
#include "world.h"
#include "wire/envelope.h"
#include "wire/payload.h"
#include "error.h"

void sim_at_revoke(struct sim_world *w, uint64_t t)
{
	sim_push(w, w->t0 + t, SIM_EV_REVOKE, 0, 0, 0);
}

static void note_before(struct sim_world *w, const uint8_t pub[RELM_KEY_LEN])
{
	GROW(w->before, w->nbefore, w->capbefore);
	memcpy(w->before[w->nbefore++], pub, RELM_KEY_LEN);
}

void sim_revoke(struct sim_world *w)
{
	int k = w->cfg.n[0] - 1;
	struct sim_dev *x;

	if (w->removed >= 0 || k < 1)
		return;
	x = &w->dev[0][k];
	/* every A node made so far, by any device (the keys it ever held, the
	 * ours nodes of its tree — the set-up's among them — and its pending
	 * copies): what is not among them later was made after the removal */
	for (int i = 0; i <= k; i++) {
		const struct sim_dev *d = &w->dev[0][i];
		const struct relm_tree *t = &d->rel->tree;
		for (size_t j = 0; j < d->nkeys; j++)
			note_before(w, d->keys[j].pub);
		for (uint32_t j = 0; j < t->count; j++)
			if (t->nodes[j].flags & RELM_NODE_OURS)
				note_before(w, t->nodes[j].pub);
		for (uint32_t j = 0; j < d->rel->npcopies; j++)
			note_before(w, d->rel->pcopies[j].pub);
	}
	x->removed = 1;
	w->removed = k;
	w->removed_at = w->now;
	w->cfg.n[0] = k;                        /* the circle, for every loop of the world */
	w->res->revoked = 1;
	sim_trace(w, x, "REMOVED from the circle (epoch 2)");
	for (int i = 0; i < k; i++) {
		struct sim_dev *d = &w->dev[0][i];
		uint32_t j = 0;
		for (uint32_t n = 0; n < d->devs.count; n++)
			if (memcmp(d->devs.ids[n], x->devs.self, RELM_ID_LEN) != 0)
				memcpy(d->devs.ids[j++], d->devs.ids[n], RELM_ID_LEN);
		d->devs.count = j;
		sim_dev_clock(d);
		if (relm_rel_heal_arm(d->rel, &d->env, 2) != 0) {
			sim_fail(w, "%s: heal refused", d->name);
			return;
		}
		sim_dev_saved(d);        /* a device that is down saw it before it crashed */
	}
}

int sim_revoke_healed(const struct sim_world *w)
{
	for (int i = 0; w->removed >= 0 && i < w->cfg.n[0]; i++)
		if (w->dev[0][i].rel->heal_state != RELM_HEAL_NONE)
			return 0;
	return 1;
}

void sim_maybe_revoke(struct sim_world *w)
{
	if (w->cfg.revoke > 0 && w->cfg.n[0] >= 2 && sim_uniform(w, 0, 1) < w->cfg.revoke)
		sim_at_revoke(w, (uint64_t)sim_uniform(w, 0, (double)(w->sched_end - w->t0)));
}

/* Was A's node pub made before the removal? */
static int made_before(const struct sim_world *w, const uint8_t pub[RELM_KEY_LEN])
{
	for (size_t k = 0; k < w->nbefore; k++)
		if (memcmp(w->before[k], pub, RELM_KEY_LEN) == 0)
			return 1;
	return 0;
}

/* Up the path from node i of B's tree t: the A nodes (theirs, for B),
 * nearest first, at most 8, into apath.  How many. */
static int a_path(const struct relm_tree *t, int i, uint8_t apath[8][RELM_KEY_LEN])
{
	int n = 0;

	for (; i >= 0 && n < 8; i = relm_tree_parent(t, i))
		if (!(t->nodes[i].flags & RELM_NODE_OURS) && (t->nodes[i].flags & RELM_NODE_CHAIN))
			memcpy(apath[n++], t->nodes[i].pub, RELM_KEY_LEN);
	return n;
}

void sim_revoke_note_send(struct sim_dev *d, struct sim_sent *m)
{
	const struct relm_tree *t = &d->rel->tree;
	int i = -1;

	for (size_t k = 0; k < d->nout; k++)
		if (memcmp(d->outrec[k].id, m->id, RELM_ID_LEN) == 0)
			i = relm_tree_find(t, d->outrec[k].last_node);
	m->napath = a_path(t, i, m->apath);
}

void sim_revoke_note_post(struct sim_dev *d, const uint8_t *env, size_t len, const uint8_t *pt,
                          size_t ptlen)
{
	struct sim_world *w = d->w;
	struct relm_envelope e;
	struct relm_payload p;
	uint8_t apath[8][RELM_KEY_LEN];
	struct sim_sent *m = NULL;
	int n, open = 1;

	if (d->side != 1 || w->removed < 0 || !d->rel || relm_envelope_decode(&e, env, len) != 0 ||
	    relm_payload_decode(&p, pt, ptlen) != 0)
		return;
	for (size_t k = 0; k < w->nsent && !m; k++)
		if (w->sent_ids[k].side == 1 && memcmp(w->sent_ids[k].id, p.id, RELM_ID_LEN) == 0)
			m = &w->sent_ids[k];
	relm_payload_clear(&p);
	if (!m)
		return;
	n = a_path(&d->rel->tree, relm_tree_find_pub(&d->rel->tree, e.h.dh_pub, 1), apath);
	for (int k = 0; k < n; k++)
		open &= made_before(w, apath[k]);
	m->open_try |= open;
}

/* B's message m went on a node built on an A node made after the removal
 * (a heal's, or any later one). */
static int sealed(const struct sim_world *w, const struct sim_sent *m)
{
	for (int k = 0; k < m->napath; k++)
		if (!made_before(w, m->apath[k]))
			return 1;
	return 0;
}

void sim_check_revoke(struct sim_world *w)
{
	struct sim_dev *x;

	if (w->res->clones)
		sim_fail(w, "clone.suspected raised %llu time(s)%s", (unsigned long long)w->res->clones,
		         (w->cfg.mutate & SIM_M_CLONE) ? ": the clone was seen"
		                                       : " with no clone in the world");
	if (w->removed < 0)
		return;
	x = &w->dev[0][w->removed];
	for (size_t k = 0; k < w->nsent; k++) {
		const struct sim_sent *m = &w->sent_ids[k];
		int s;
		if (m->side != 1 || m->t < w->removed_at)
			continue;
		/* one envelope of it on an open path: readable, as the heal's
		 * window allows (a retry the remote built on an older node) */
		s = sealed(w, m) && !m->open_try;
		w->res->sealed += s;
		if (!sim_hist_find(x, m->id))
			continue;
		if (s) {
			sim_fail(w, "revoked: %s read %s, which B sent on a node built after the removal",
			         x->name, sim_short(m->id));
			return;
		}
		w->res->read_after++;
	}
	for (int i = 0; i < w->cfg.n[0]; i++)
		if (w->dev[0][i].rel->heal_state != RELM_HEAL_NONE)
			sim_fail(w, "%s is not healed at the end (heal state %u)", w->dev[0][i].name,
			         (unsigned)w->dev[0][i].rel->heal_state);
}

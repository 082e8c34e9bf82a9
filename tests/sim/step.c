/*
 * step.c — a simulated device's engine step: atomic, as one store
 * transaction is (the effects go to its committed state, store.c, and
 * what it posts leaves the outbox only after that), or thrown away by a
 * crash; its timers, its user's sends, its crashes and restarts.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <stdarg.h>
#include <sodium.h>
#include "sim.h"
#include "world.h"
#include "util_rand.h"
#include "wire/envelope.h"
#include "wire/payload.h"
#include "wire/sibling.h"
#include "crypto/crypto.h"
#include "error.h"
#include "engine/event.h"
#include "wire/invite.h"
#include "engine/rel_strategy.h"

/* ---- one step ---------------------------------------------------------------------- */

enum step_kind { ST_SEND = SIM_ST_SEND, ST_RECV = SIM_ST_RECV, ST_TICK = SIM_ST_TICK,
                 ST_COPY = SIM_ST_COPY, ST_MERGE = SIM_ST_MERGE };

/* After a step that committed: note the tree's size, maybe crash before
 * the outbox is posted, else post. */
static void after_commit(struct sim_dev *d)
{
	struct sim_world *w = d->w;
	uint32_t leaves = 0, priv = 0;

	w->res->steps++;
	for (uint32_t i = 0; d->rel && i < d->rel->tree.count; i++) {
		int kids = relm_tree_children(&d->rel->tree, (int)i, NULL, NULL);
		leaves += kids == 0;
		priv += (d->rel->tree.nodes[i].flags & RELM_NODE_PRIV) != 0;
	}
	if (leaves > w->res->max_branches)
		w->res->max_branches = leaves;
	if (priv > w->res->max_priv)
		w->res->max_priv = priv;
	sim__note_keys(d);
	sim__commit(d);
	sim__schedule_tick(d);
	if (d->online && !d->down)
		sim_pump(d);
}

/* Run one engine step on d.  Returns the engine's code, or SIM_CRASHED when
 * the device crashed in it (nothing of the step happened). */
static int step(struct sim_dev *d, int k, const uint8_t *buf, size_t len,
                const uint8_t *from, uint8_t *id_out)
{
	struct sim_world *w = d->w;
	struct relm_effects fx;
	int rc;

	sim_dev_clock(d);
	sim_strat_view(d);
	relm_effects_init(&fx);
	if (!d->rel && k < SIM_ST_REQUEST)
		return RELM_EINVAL;                      /* no state: nothing to step */
	switch (k) {
	case ST_SEND: {
		char body[64];
		snprintf(body, sizeof body, "%s says %u", d->name, (unsigned)w->typed);
		rc = relm_rel_send(d->rel, &d->env, body, strlen(body), buf, id_out, &fx);
		break;
	}
	case ST_RECV:
		rc = relm_rel_receive(d->rel, &d->env, buf, len, &fx);
		break;
	case ST_TICK:
		rc = relm_rel_tick(d->rel, &d->env, &fx);
		break;
	case ST_COPY:
		rc = len && buf[0] == RELM_SIB_CARRY ? relm_rel_carry(d->rel, &d->env, buf, len, &fx)
		                                     : relm_rel_copy(d->rel, &d->env, from, buf, len, &fx);
		break;
	case ST_MERGE: {
		struct relm_rel *other = NULL;
		rc = relm_rel_decode(&other, buf, len);
		if (rc == 0)
			rc = relm_rel_merge(d->rel, &d->env, other, &fx);
		relm_rel_free(other);
		break;
	}
	default:
		rc = sim_strat_engine(d, k, buf, len, id_out, &fx);
		break;
	}
	/* a fanout hub's history goes to the devices without state */
	if (d->rel && relm_rel_fanout(d->rel, &d->env, &fx, 0) != 0)
		abort();
	if (w->cfg.crash > 0 && sim__chance(w, w->cfg.crash)) {
		/* killed in the step: the transaction never committed */
		relm_effects_clear(&fx);
		sim__restore(d);
		sim_crash(d);
		return SIM_CRASHED;
	}
	if (rc == 0 || rc == RELM_EDUP || rc == RELM_EPENDING || fx.n) {
		sim_strat_posting(d, &fx);
		sim__apply_effects(d, &fx);
		after_commit(d);
	}
	relm_effects_clear(&fx);
	return rc;
}

/* ---- timers, sends, crashes, off-line ----------------------------------------------------- */

void sim__schedule_tick(struct sim_dev *d)
{
	uint64_t dl;

	sim_dev_clock(d);
	if (!d->rel)
		return;
	sim_strat_view(d);
	dl = relm_rel_deadline(d->rel, &d->env);
	if (!dl || (d->removed && !(d->w->cfg.mutate & SIM_M_CLONE)))
		return;
	dl = sim__world_time(d, dl);
	if (d->tick_at && d->tick_at <= dl && d->tick_at >= d->w->now)
		return;                                 /* an earlier tick is queued */
	d->tick_at = dl;
	sim_push(d->w, dl, SIM_EV_TICK, d->side, d->idx, 0);
}

void sim_dev_saved(struct sim_dev *d)
{
	sim__commit(d);
	sim__schedule_tick(d);
}

void sim_dev_replace(struct sim_dev *d, struct relm_rel *rel)
{
	relm_rel_free(d->rel);
	d->rel = rel;
	if (!rel) {
		/* the rows that go with the state */
		for (size_t k = 0; k < d->nout; k++)
			free(d->outrec[k].body);
		d->nout = 0;
		d->nacks = 0;
		for (size_t k = 0; k < d->npend; k++)
			free(d->pend[k].buf);
		d->npend = 0;
	}
	sim__note_keys(d);
	sim_dev_saved(d);
}

int sim_step(struct sim_dev *d, int kind, const uint8_t *buf, size_t len, const uint8_t *from,
             uint8_t *id_out)
{
	return step(d, kind, buf, len, from, id_out);
}

void sim_crash(struct sim_dev *d)
{
	struct sim_world *w = d->w;

	w->res->crashes++;
	d->down = 1;
	sim_trace(w, d, "CRASH (restart in a moment)");
	sim_push(w, w->now + (uint64_t)sim_uniform(w, 100, 5000), SIM_EV_RESTART, d->side, d->idx, 0);
}

void sim__user_send(struct sim_dev *d, const uint8_t *id)
{
	struct sim_world *w = d->w;
	uint8_t got[RELM_ID_LEN];
	/* a device that does not send makes a request (strategy.c) */
	int rc = step(d, sim_strat_send(d, id) ? SIM_ST_REQUEST : ST_SEND, id, 0, NULL, got);

	d->force_send = 0;

	if (rc == SIM_CRASHED) {
		/* the person sends it again once the daemon is back (same id:
		 * message.send is idempotent by id) */
		GROW(d->retry, d->nretry, d->capretry);
		memcpy(d->retry[d->nretry++], id, RELM_ID_LEN);
		return;
	}
	if (rc != 0 && rc != RELM_EEXIST) {
		sim_fail(w, "%s: send refused: %s", d->name, relm_strerror(rc));
		return;
	}
	sim_trace(w, d, "user sends %s", sim_short(got));
}

void sim_type_now(struct sim_world *w, struct sim_dev *d)
{
	uint8_t id[RELM_ID_LEN];

	/* ids come from the world, so a retried send reuses its id */
	for (int i = 0; i < RELM_ID_LEN; i += 8) {
		uint64_t r = sim_rand(w);
		memcpy(id + i, &r, 8);
	}
	w->typed++;
	GROW(w->sent_ids, w->nsent, w->capsent);
	memcpy(w->sent_ids[w->nsent].id, id, RELM_ID_LEN);
	w->sent_ids[w->nsent].side = d->side;
	w->sent_ids[w->nsent].dev = d->idx;
	w->sent_ids[w->nsent].napath = 0;
	w->sent_ids[w->nsent].open_try = 0;
	w->sent_ids[w->nsent++].t = w->now;
	sim__user_send(d, id);
	if (d->side == 1 && w->removed >= 0)
		sim_revoke_note_send(d, &w->sent_ids[w->nsent - 1]);
}

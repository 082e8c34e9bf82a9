/*
 * strategy.c — relm-sim-core --strategy leader|fanout|mixed: the leader
 * and fanout strategies (proto/devices.md §11) as relmd runs them, on
 * lib/core's own code (lib/core/strategy.c, fanout.c) under the
 * schedule's crashes and restarts.
 *
 * What relmd does around the core is modelled here: each side's mailbox
 * server holds the send lease (a compare-and-set with a TTL on the
 * world's clock); every device runs its strategy timer (the lease round,
 * then relm_core_strategy_tick, then the timers that came due) at random
 * points of the schedule and at every settle round; a device goes off line now and then for longer
 * than a lease (it posts, reads and asks the lease nothing meanwhile,
 * while its person may still type); with mixed, a device switches its
 * side's strategy under load.  The checks of sim.c hold as they are
 * (every message once on every device, delivered; one leaf — on the
 * devices that hold state) and, here, no request is left pending.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "core/core.h"
#include "engine/rel_strategy.h"
#include "store/store.h"
#include "error.h"
#include "world.h"

enum { TTL_MS = 6000 };

static int active(const struct world *w, int s)
{
	return w->strategy != SIM_STRAT_NONE && w->n[s] > 1;
}

static void self_id(struct world *w, int s, int i, uint8_t out[RELM_ID_LEN])
{
	struct relm_store_device row;

	memset(out, 0, RELM_ID_LEN);
	if (relm_store_device_get_self(w->dev[s][i].st, w->proton[s], &row) == 0)
		memcpy(out, row.device, RELM_ID_LEN);
	relm_store_device_clear(&row);
}

struct lease_run {
	struct world *w;
	int s, i;
};

/* The side's server answers d's LEASE, and d takes the answer. */
static int lease_cb(void *ctx, const struct relm_core_lease *l)
{
	struct lease_run *r = ctx;
	struct world *w = r->w;
	uint8_t live[RELM_ID_LEN] = { 0 };
	int granted;

	if (w->lease_exp[r->s] > w->clock)
		memcpy(live, w->lease_holder[r->s], RELM_ID_LEN);
	granted = memcmp(live, l->expected, RELM_ID_LEN) == 0;
	if (granted) {
		if (memcmp(w->lease_holder[r->s], l->holder, RELM_ID_LEN) != 0 && !l->release)
			trace(w, "%s takes the send lease", w->dev[r->s][r->i].name);
		memcpy(w->lease_holder[r->s], l->holder, RELM_ID_LEN);
		w->lease_exp[r->s] = l->release ? 0 : w->clock + l->ttl_ms;
	}
	return relm_core_lease_result(w->dev[r->s][r->i].core, l->proton, l->sent_ms, granted, l->release,
	                              granted ? l->holder : live);
}

/* d's lease round: 0, or an error; a second round when the first says its
 * lease ran out while it was paused (as relmd does). */
static int lease_round(struct world *w, int s, int i)
{
	struct lease_run r = { w, s, i };
	int rc = relm_core_leases(w->dev[s][i].core, 0, lease_cb, &r);

	if (rc == 1)
		rc = relm_core_leases(w->dev[s][i].core, 0, lease_cb, &r);
	return rc < 0 ? rc : 0;
}

int strat_period(struct world *w, int s, int i)
{
	struct dev *d = &w->dev[s][i];

	if (!active(w, s) || d->away_until > w->clock || !d->st)
		return 0;
	w->periods++;
	TRY(w, lease_round(w, s, i));
	TRY(w, relm_core_strategy_tick(d->core));
	/* relmd arms its timer from the stored deadlines after every commit
	 * (daemon/relmd/app.c): what the lease round made due — a device that
	 * took the lease runs the receipts and retransmissions it kept while
	 * it knew no holder (devices.md §11.2, §11.3) — runs now, while the
	 * lease is held, not after the world's next clock step */
	return tick(w, d);
}

static int set_strategy(struct world *w, int s, int i, int to)
{
	uint8_t pinned[RELM_ID_LEN];
	int pin = to == RELM_STRATEGY_FANOUT || (to == RELM_STRATEGY_LEADER && below(w, 3) == 0);
	int who = pin ? (int)below(w, (unsigned)w->n[s]) : -1;
	uint64_t seq = 0;

	if (pin)
		self_id(w, s, who, pinned);
	trace(w, "%s switches its side to %s%s%s", w->dev[s][i].name, relm_core_strategy_name(to),
	      pin ? ", pinned to " : "", pin ? w->dev[s][who].name : "");
	w->switches++;
	TRY(w, relm_core_strategy_set(w->dev[s][i].core, w->proton[s], to, pin ? pinned : NULL, &seq));
	trace(w, "    %s: strategy seq %llu", w->dev[s][i].name, (unsigned long long)seq);
	return 0;
}

int strat_start(struct world *w)
{
	for (int s = 0; s < 2; s++) {
		int to;
		if (!active(w, s))
			continue;
		to = w->strategy == SIM_STRAT_MIXED ? (int)below(w, 3)
		   : w->strategy == SIM_STRAT_LEADER ? RELM_STRATEGY_LEADER : RELM_STRATEGY_FANOUT;
		for (int i = 0; i < w->n[s]; i++)
			relm_core_lease_ttl(w->dev[s][i].core, TTL_MS);
		if (set_strategy(w, s, 0, to) != 0)
			return -1;
	}
	return settle(w, 4, 1000);
}

int strat_action(struct world *w, int s, int i)
{
	struct dev *d = &w->dev[s][i];
	unsigned a = below(w, 100);

	if (!active(w, s))
		return 0;
	if (a < 70)
		return strat_period(w, s, i);
	if (a < 85) {
		if (d->away_until > w->clock)
			return 0;
		d->away_until = w->clock + TTL_MS + 1000 + below(w, 40000);
		w->aways++;
		trace(w, "%s goes off line for %.1f s", d->name, (double)(d->away_until - w->clock) / 1000.0);
		return 0;
	}
	if (w->strategy != SIM_STRAT_MIXED || d->away_until > w->clock)
		return 0;
	return set_strategy(w, s, i, (int)below(w, 3));
}

void strat_all_back(struct world *w)
{
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < w->n[s]; i++)
			w->dev[s][i].away_until = 0;
}

int strat_check(struct world *w)
{
	for (int s = 0; s < 2; s++) {
		if (!active(w, s))
			continue;
		for (int i = 0; i < w->n[s]; i++) {
			struct relm_core_strategy v;
			struct dev *d = &w->dev[s][i];
			if (relm_core_strategy_get(d->core, w->proton[s], &v) != 0)
				return fail(w, "%s: strategy_get", d->name);
			if (v.pending_requests)
				return fail(w, "%s still has %llu request(s) pending", d->name,
				            (unsigned long long)v.pending_requests);
		}
	}
	return 0;
}

/*
 * core_sim.c — build/relm-sim-core: the deterministic simulator one level up
 * from relm-sim.  Where relm-sim drives the engine (lib/engine) with a
 * model of the store, this drives whole daemons as relmd runs them: lib/core
 * on lib/store (a SQLite file per device), siblings talking over real
 * sibling sessions through their device mailboxes, everything posted from
 * the store's outbox and read from mailboxes by cursor.  What it adds to
 * relm-sim: the durability rule, lazy loading of the retransmission queue
 * and acknowledgements, sibling routing in lib/core and restarts from the
 * store are all the product's own code.
 *
 *   relm-sim-core [--seeds N] [--seed S] [--devices A,B] [--steps K]
 *                 [--restart P] [--crash P] [--trace]
 *
 * A schedule: proton A on A devices and B on B (1–4 each) made by copying
 * the first device's proton, a circle naming every device signed by the
 * IPK, and the relationship as the first device holds it (what pairing
 * hands over, proto/devices.md §12); then K random actions — a user
 * sends on a device, a device posts its outbox, reads some of one of its
 * mailboxes (in order, from its cursor), ticks, restarts from its store,
 * the clock moves, or crashes inside a step (its disk fails from one of
 * the step's writes on, and it restarts) — then quiescence, one more exchange each way, and the
 * checks of proto/invariants.md §9 that this level can see: every message
 * typed is in the history of every device of both sides exactly once (with
 * the origin self, sibling or remote it has there) and delivered; each
 * side's devices choose one leaf; the other side sees one relationship.
 * Device folders live under $TMPDIR (default /dev/shm when it exists, so
 * that synchronous=FULL costs little) and are removed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include <sqlite3.h>
#include "util_rand.h"
#include "util_faultvfs.h"
#include "core/core.h"
#include "store/store.h"
#include "engine/rel.h"
#include "engine/rel_state.h"
#include "crypto/crypto.h"
#include "wire/addr.h"
#include "wire/circle.h"
#include "wire/invite.h"
#include "error.h"

#include "world.h"

/* ---- the schedule ----------------------------------------------------------------------- */

/* One turn of d as relmd runs it: a batch of 1–6 steps (sends, reads,
 * ticks) committed together, the copies to siblings sent as bundles by the
 * step that runs just before the commit (relm_core_bundle).  With crash,
 * d's disk fails from some write of the turn on, and d restarts: the
 * whole turn is lost, or committed if the failure came after its commit.
 * A send counts as typed once its turn committed (relmd withholds the
 * replies of a turn until then). */
static int turn(struct world *w, int s, int i, int crash)
{
	struct dev *d = &w->dev[s][i];
	struct relm_store_msg m;
	uint8_t ids[6][RELM_ID_LEN], out[RELM_ID_LEN];
	int n = 1 + (int)below(w, 6), nids = 0, rc;

	trace(w, "%s: %sturn of %d steps", d->name, crash ? "CRASH in a " : "", n);
	if ((rc = relm_store_batch_begin(d->st)) != 0)
		return fail(w, "%s: batch begin: %s", d->name, relm_strerror(rc));
	if (crash) {
		w->crashing = 1;
		tu_faultvfs_fail_after(1 + (int)below(w, 40), SQLITE_IOERR);
	}
	for (int k = 0; k < n; k++) {
		unsigned a = below(w, 3);
		if (a == 0 && w->nsent + (size_t)nids < MAX_SENT) {
			char body[48];
			int was_new = 0;
			for (int b = 0; b < RELM_ID_LEN; b += 8) {
				uint64_t r = rnd(w);
				memcpy(ids[nids] + b, &r, 8);
			}
			snprintf(body, sizeof body, "%s says %zu", d->name, w->nsent + (size_t)nids);
			rc = relm_core_message_send(d->core, w->rel, body, strlen(body), ids[nids], out, &was_new);
			trace(w, "%s: user sends %s (in the turn)", d->name, hex8(ids[nids]));
			if (rc != 0 && !crash)
				return fail(w, "%s: send in a turn: %s", d->name, relm_strerror(rc));
			nids++;
		} else if (a == 1) {
			if (deliver(w, d, 1 + below(w, 4), 1) < 0 && !crash)
				return -1;
		} else if (tick(w, d) != 0 && !crash) {
			return -1;
		}
	}
	rc = relm_store_batch_commit(d->st);
	if (!crash) {
		if (rc != 0)
			return fail(w, "%s: batch commit: %s", d->name, relm_strerror(rc));
		for (int k = 0; k < nids; k++) {
			memcpy(w->sent[w->nsent].id, ids[k], RELM_ID_LEN);
			w->sent[w->nsent].side = s;
			w->sent[w->nsent].dev = i;
			w->nsent++;
		}
		return 0;
	}
	tu_faultvfs_fail_after(0, 0);
	w->crashing = 0;
	w->crashes++;
	if (restart(w, d) != 0)
		return -1;
	for (int k = 0; k < nids; k++)
		if (relm_store_msg_get(d->st, w->rel, ids[k], &m) == 0) {
			memcpy(w->sent[w->nsent].id, ids[k], RELM_ID_LEN);
			w->sent[w->nsent].side = s;
			w->sent[w->nsent].dev = i;
			w->nsent++;
			trace(w, "%s: a send of the turn survived the crash: %s", d->name, hex8(ids[k]));
		}
	return 0;
}

/* A crash inside a step (kill -9 or a dead disk at one of the step's
 * writes): d's disk fails from its k-th write op on, d takes one step
 * (a send with the id a client would retry with, a post, a read or a tick)
 * whose errors are expected, then restarts from its store.  The step's
 * transaction is rolled back, or committed if the failure came after its
 * commit: a send whose call failed counts as typed when d's history holds
 * its id after the restart (a client retrying by id would be told so). */
static int crash_step(struct world *w, int s, int i)
{
	struct dev *d = &w->dev[s][i];
	struct relm_store_msg m;
	uint8_t id[RELM_ID_LEN], out[RELM_ID_LEN];
	unsigned what = below(w, 4);
	int was_new = 0;

	for (int b = 0; b < RELM_ID_LEN; b += 8) {
		uint64_t r = rnd(w);
		memcpy(id + b, &r, 8);
	}
	trace(w, "%s: CRASH in a %s step", d->name, (const char *[]){ "send", "post", "read", "tick" }[what]);
	w->crashing = 1;
	tu_faultvfs_fail_after(1 + (int)below(w, 8), SQLITE_IOERR);
	if (what == 0 && w->nsent < MAX_SENT) {
		char body[48];
		snprintf(body, sizeof body, "%s says %zu", d->name, w->nsent);
		(void)relm_core_message_send(d->core, w->rel, body, strlen(body), id, out, &was_new);
	} else if (what == 1)
		(void)pump(w, d);
	else if (what == 2)
		(void)deliver(w, d, 1 + below(w, 4), 1);
	else
		(void)tick(w, d);
	tu_faultvfs_fail_after(0, 0);
	w->crashing = 0;
	w->crashes++;
	if (restart(w, d) != 0)
		return -1;
	if (what == 0 && w->nsent < MAX_SENT && relm_store_msg_get(d->st, w->rel, id, &m) == 0) {
		memcpy(w->sent[w->nsent].id, id, RELM_ID_LEN);
		w->sent[w->nsent].side = s;
		w->sent[w->nsent].dev = i;
		w->nsent++;
		trace(w, "%s: the send survived the crash: %s", d->name, hex8(id));
	}
	return 0;
}

static int run_schedule(struct world *w, int steps, double restart_p, double crash_p)
{
	for (int k = 0; k < steps; k++) {
		int s = (int)below(w, 2), i = (int)below(w, (unsigned)w->n[s]);
		struct dev *d = &w->dev[s][i];
		unsigned a = below(w, 100);
		int rc = 0;

		if (w->strategy && below(w, 100) < 10)
			rc = strat_action(w, s, i);
		else if ((double)below(w, 10000) < crash_p * 10000)
			rc = below(w, 3) ? crash_step(w, s, i) : turn(w, s, i, 1);
		else if (a < 6)
			rc = turn(w, s, i, 0);
		else if (a < 12)
			rc = user_send(w, s, i);
		else if (a < 40)
			rc = pump(w, d);
		else if (a < 75)
			rc = deliver(w, d, 1 + below(w, 4), 1) < 0 ? -1 : 0;
		else if (a < 85)
			rc = tick(w, d);
		else if ((double)below(w, 10000) < restart_p * 10000 * 100 / 15)
			rc = restart(w, d);
		else
			w->clock += 50 + below(w, 3000);
		if (rc != 0 || note_keys(w, d) != 0)
			return -1;
	}
	return 0;
}

/* ---- checks ----------------------------------------------------------------------------- */

struct hist {
	struct relm_store_msg m[MAX_SENT + 8];
	size_t n;
};

static int hist_cb(void *ctx, const struct relm_store_msg *m)
{
	struct hist *h = ctx;
	if (strcmp(m->kind, "text") != 0)
		return 0;
	if (h->n == sizeof h->m / sizeof h->m[0])
		return RELM_ELIMIT;
	h->m[h->n] = *m;
	h->m[h->n].body = NULL;
	h->n++;
	return 0;
}

static int check(struct world *w)
{
	uint8_t chosen[2][RELM_ID_LEN];
	int holders[2] = { 0, 0 };

	for (int s = 0; s < 2; s++)
		for (int i = 0; i < w->n[s]; i++) {
			struct dev *d = &w->dev[s][i];
			struct hist *h = calloc(1, sizeof *h);
			struct relm_rel *rel = NULL;
			struct relm_rel_info *info = calloc(1, sizeof *info);
			int rc;

			if (!h || !info)
				abort();
			rc = relm_store_msg_list(d->st, w->rel, 0, 0, hist_cb, h);
			for (size_t k = 0; rc == 0 && k < w->nsent; k++) {
				const struct sent *x = &w->sent[k];
				const struct relm_store_msg *m = NULL;
				int want_origin = x->side != s ? RELM_ORIGIN_REMOTE
				                : x->dev == i ? RELM_ORIGIN_SELF : RELM_ORIGIN_SIBLING;
				for (size_t j = 0; j < h->n && !m; j++)
					if (memcmp(h->m[j].id, x->id, RELM_ID_LEN) == 0)
						m = &h->m[j];
				if (!m)
					rc = fail(w, "%s lacks %s, typed on %s", d->name, hex8(x->id), w->dev[x->side][x->dev].name);
				else if (m->direction_in != (x->side != s) || m->origin != want_origin)
					rc = fail(w, "%s holds %s with direction %s and origin %d, want %d", d->name,
					          hex8(x->id), m->direction_in ? "in" : "out", m->origin, want_origin);
				else if (!m->direction_in && m->status != RELM_STATUS_DELIVERED)
					rc = fail(w, "%s: %s (typed on %s, origin %d here) not delivered (status %d)", d->name, hex8(x->id), w->dev[x->side][x->dev].name, m->origin, m->status);
			}
			/* every id above is there, so more would be one not typed */
			if (rc == 0 && h->n != w->nsent)
				rc = fail(w, "%s holds %zu messages, %zu were typed", d->name, h->n, w->nsent);
			/* a fanout device that is not the hub holds no state: no leaf */
			if (rc == 0 && (rc = relm_core_rel_load(d->core, w->rel, &rel)) != 0 &&
			    !(rc == RELM_ENOSTATE && w->strategy))
				rc = fail(w, "%s: cannot load the relationship: %s", d->name, relm_strerror(rc));
			if (rc == RELM_ENOSTATE) {
				rc = 0;
			} else if (rc == 0) {
				relm_rel_describe(rel, info);
				if (info->chosen < 0)
					rc = fail(w, "%s has no chosen leaf", d->name);
				else if (holders[s]++ == 0)
					memcpy(chosen[s], info->nodes[info->chosen].id, RELM_ID_LEN);
				else if (memcmp(chosen[s], info->nodes[info->chosen].id, RELM_ID_LEN) != 0)
					rc = fail(w, "another of side %d chose %s, %s chose %s", s, hex8(chosen[s]), d->name,
					          hex8(info->nodes[info->chosen].id));
			}
			if (rc != 0 && w->trace) {
				printf("%s's events:\n", d->name);
				relm_store_event_list(d->st, 0, 0, ev_cb, NULL);
				if (rel) {
					relm_rel_describe(rel, info);
					printf("%s: %u nodes, %u pending, %u unacknowledged, forks %u, pruned %u\n", d->name,
					       info->nnodes, info->pending, info->unacknowledged, info->forks, info->pruned);
				}
			}
			relm_rel_free(rel);
			free(info);
			free(h);
			if (rc != 0)
				return -1;
		}
	for (int s = 0; s < 2; s++)
		if (!holders[s])
			return fail(w, "no device of side %d holds the relationship's state", s);
	if (strat_check(w) != 0)
		return -1;
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < w->n[s]; i++) {
			if (invite_keys(&w->dev[s][i]) != 0)
				return fail(w, "%s: cannot read its invites", w->dev[s][i].name);
			dev_close(&w->dev[s][i]);
			if (check_wiped(w, &w->dev[s][i]) != 0)
				return -1;
		}
	return 0;
}

/* --strategy (SIM_STRAT_*), for every schedule of the run */
static int strategy;
static const char *const strategy_names[] = { "leaderless", "leader", "fanout", "mixed" };

/* One schedule: 0 when every invariant held. */
static int one(uint64_t seed, int na, int nb, int steps, double restart_p, double crash_p, int tr,
               char *why, size_t whylen, uint64_t *restarts, uint64_t *crashes)
{
	struct world *w = calloc(1, sizeof *w);
	int rc;

	if (!w)
		abort();
	w->seed = seed;
	w->rng = seed * 0x9e3779b97f4a7c15ull + 7;
	w->clock = 1700000000000ull;
	w->n[0] = na;
	w->n[1] = nb;
	w->trace = tr;
	w->strategy = strategy;
	tu_seed_set(seed);
	rc = setup(w);
	if (rc == 0)
		rc = run_schedule(w, steps, restart_p, crash_p);
	/* quiescence, then one more exchange each way */
	if (rc == 0)
		rc = quiesce(w);
	if (rc == 0)
		rc = user_send(w, 1, (int)below(w, (unsigned)nb));
	if (rc == 0)
		rc = quiesce(w);
	if (rc == 0)
		rc = user_send(w, 0, (int)below(w, (unsigned)na));
	if (rc == 0)
		rc = quiesce(w);
	if (rc == 0)
		rc = check(w);
	snprintf(why, whylen, "%s", w->why);
	*crashes += w->crashes;
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < MAX_DEV; i++) {
			*restarts += w->dev[s][i].restarts;
			if (rc == 0 || !getenv("RELM_SIM_KEEP"))
				dev_remove(&w->dev[s][i]);
			if (w->dev[s][i].keys)
				sodium_memzero(w->dev[s][i].keys, w->dev[s][i].nkeys * sizeof *w->dev[s][i].keys);
			free(w->dev[s][i].keys);
		}
	for (size_t i = 0; i < w->nmail; i++)
		free(w->mail[i].buf);
	free(w->mail);
	free(w);
	return rc;
}

static void usage(void)
{
	fprintf(stderr, "usage: relm-sim-core [--seeds N] [--seed S] [--devices A,B] [--steps K] "
	        "[--strategy leader|fanout|mixed] "
	        "[--restart P] [--crash P] [--trace]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t seed = 1, seeds = 20, restarts = 0, crashes = 0;
	int da = 0, db = 0, steps = 200, tr = 0, failed = 0;
	double restart_p = 0.02, crash_p = 0.01;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--trace"))
			tr = 1;
		else if (i + 1 >= argc)
			usage();
		else if (!strcmp(a, "--seeds"))
			seeds = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(a, "--seed"))
			seed = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(a, "--strategy")) {
			const char *v = argv[++i];
			for (strategy = 1; strategy < 4 && strcmp(v, strategy_names[strategy]); strategy++)
				;
			if (strategy == 4)
				usage();
		} else if (!strcmp(a, "--steps"))
			steps = atoi(argv[++i]);
		else if (!strcmp(a, "--restart"))
			restart_p = atof(argv[++i]);
		else if (!strcmp(a, "--crash"))
			crash_p = atof(argv[++i]);
		else if (!strcmp(a, "--devices")) {
			if (sscanf(argv[++i], "%d,%d", &da, &db) != 2 || da < 1 || da > MAX_DEV || db < 1 || db > MAX_DEV)
				usage();
		} else
			usage();
	}
	if (relm_crypto_init() != 0 || tu_faultvfs_register() != SQLITE_OK)
		return 1;
	for (uint64_t k = 0; k < seeds; k++) {
		uint64_t s = seed + k;
		/* without --devices, the grid 1–3 × 1–3 by seed */
		int na = da ? da : 1 + (int)(k % 3), nb = db ? db : 1 + (int)(k / 3 % 3);
		char why[512] = "";
		if (one(s, na, nb, steps, restart_p, crash_p, tr, why, sizeof why, &restarts, &crashes) != 0) {
			failed++;
			printf("FAIL seed %llu (%dx%d): %s\n  replay: relm-sim-core --seed %llu --seeds 1 "
			       "--devices %d,%d --steps %d --restart %g --crash %g%s%s --trace\n", (unsigned long long)s,
			       na, nb, why, (unsigned long long)s, na, nb, steps, restart_p, crash_p,
			       strategy ? " --strategy " : "", strategy ? strategy_names[strategy] : "");
		}
	}
	printf("relm-sim-core: %llu schedules, %d failing (seed %llu, %d steps each, %llu restarts, "
	       "%llu of them crashes inside a step%s%s)\n", (unsigned long long)seeds, failed, (unsigned long long)seed,
	       steps, (unsigned long long)restarts, (unsigned long long)crashes,
	       strategy ? ", strategy " : "", strategy ? strategy_names[strategy] : "");
	return failed ? 1 : 0;
}

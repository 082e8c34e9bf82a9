/*
 * sim.c — relm-sim: runs schedules of the simulated world (sim.h) and
 * reports, per cell of a grid of device counts and loss, how many
 * violated an invariant and what they measured.
 *
 *   relm-sim [--seeds N] [--seed S] [--devices A,B] [--strict] [--loss P]
 *            [--dup P] [--crash P] [--skew MS] [--no-clock-sync]
 *            [--profile NAME] [--msgs N] [--scenario NAME|all] [--trace]
 *            [--mutate NAME] [--expect-fail] [--revoke P]
 *            [--strategy leaderless|leader|fanout|mixed]
 *
 * Without --devices it runs the grid: A and B from 1 to 4 devices, and B
 * as one strict Double Ratchet peer, with loss 0 and 5 %, without crashes
 * and with 2 % of steps crashing; the N seeds are dealt over the cells.  Schedule k of a run uses seed S + k, and a
 * failing one is printed with the command that replays it alone (add
 * --trace to watch it).  Exit status 1 when any schedule failed — or,
 * with --expect-fail (used with --mutate, which breaks the world on
 * purpose), when none did.  --revoke P: each schedule removes A's last
 * device at a random moment with probability P (revoke.c).  --strategy:
 * every side with two devices or more runs the leader or fanout strategy,
 * or switches between the three under load (strategy.c; not with
 * --revoke or --scenario).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "world.h"
#include "error.h"

/* ---- one schedule ------------------------------------------------------------------ */

static int dev_quiet(const struct sim_world *w, const struct sim_dev *d)
{
	if (!d->online || d->down || d->noutbox || d->nout || d->nacks || d->npend || !sim_strat_quiet(d))
		return 0;
	/* a device without state (fanout) reads no relationship mailbox */
	if (d->rel && (d->cursor < w->box[d->side].n || d->rel->npcopies ||
	               d->rel->heal_state == RELM_HEAL_ARMED))
		return 0;
	for (int s = 0; s < sim_devices_all(w, d->side); s++)
		if (d->sib_cursor[s] < w->chan[d->side][s][d->idx].n)
			return 0;
	return 1;
}

/* Nothing in flight, nothing owed, everything read. */
static int quiet(const struct sim_world *w)
{
	if (w->in_transit)
		return 0;
	for (int s = 0; s < SIM_SIDES; s++)
		for (int i = 0; i < w->cfg.n[s]; i++)
			if (!dev_quiet(w, &w->dev[s][i]))
				return 0;
	return 1;
}

/* Virtual time the world may take to settle after the schedule (the
 * retransmission backoff reaches an hour). */
enum { SETTLE_MS = 6 * 3600 * 1000, ROUNDS_MAX = 6 };

/* Run events until the schedule is over and the world is quiet.  After the
 * schedule the network heals (no loss, no crashes), as in a partition
 * test: then everything must get through.  0, or -1 if it never settles. */
static int drain(struct sim_world *w)
{
	int healed = 0;

	for (;;) {
		if (!healed && w->now >= w->sched_end) {
			w->cfg.loss = 0;
			w->cfg.crash = 0;
			healed = 1;
		}
		if (healed && quiet(w))
			return 0;
		if (w->now > w->sched_end + SETTLE_MS || !sim_event(w))
			break;
		if (!w->res->ok)
			return -1;
	}
	if (healed && quiet(w))
		return 0;
	for (int s = 0; s < SIM_SIDES; s++)
		for (int i = 0; i < w->cfg.n[s]; i++) {
			const struct sim_dev *d = &w->dev[s][i];
			if (!dev_quiet(w, d)) {
				size_t unread = 0;
				for (int k = 0; k < sim_devices_all(w, s); k++)
					unread += w->chan[s][k][i].n - d->sib_cursor[k];
				sim_fail(w, "no quiescence %.0f s after the schedule: %s (outbox %zu, "
				         "unacknowledged %zu, acks %zu, pending %zu, requests %zu, stashed %zu, "
				         "unread %zu + %zu, %s state%s)",
				         (double)(w->now - w->sched_end) / 1000.0, d->name, d->noutbox, d->nout,
				         d->nacks, d->npend, d->nreqs, d->nstash, w->box[s].n - d->cursor, unread,
				         d->rel ? "holds" : "holds no", d->online ? "" : ", off line");
				return -1;
			}
		}
	sim_fail(w, "no quiescence %.0f s after the schedule (in transit: %zu)",
	         (double)(w->now - w->sched_end) / 1000.0, w->in_transit);
	return -1;
}

/* One user message from each side, each drained: an exchange. */
static int exchange(struct sim_world *w, int k)
{
	for (int s = 0; s < SIM_SIDES; s++) {
		sim_type_now(w, &w->dev[s][k % w->cfg.n[s]]);
		w->sched_end = w->now;
		if (drain(w) != 0)
			return -1;
	}
	return 0;
}

int sim_run(const struct sim_cfg *cfg, struct sim_result *r)
{
	struct sim_world *w = calloc(1, sizeof *w);
	char why[256];

	if (!w)
		abort();
	memset(r, 0, sizeof *r);
	r->ok = 1;
	r->rounds = -1;
	sim_world_init(w, cfg, r);
	sim_world_pair(w);
	if (cfg->scenario)
		sim_scenario(w, cfg->scenario);
	else
		sim_workload(w, cfg);
	if (!cfg->scenario)
		sim_maybe_revoke(w);
	sim_strat_start(w);
	if (drain(w) == 0) {
		int k = 0;
		while (!sim_converged(w, why, sizeof why) && k < ROUNDS_MAX && r->ok) {
			sim_trace(w, NULL, "not converged: %s; exchange %d", why, k + 1);
			if (exchange(w, k++) != 0)
				break;
		}
		if (r->ok && !sim_converged(w, why, sizeof why))
			sim_fail(w, "diverged after %d exchanges: %s", k, why);
		else if (r->ok)
			r->rounds = k;
		/* proto/invariants.md: one exchange each way must be enough */
		if (r->ok && k > 1)
			sim_fail(w, "diverged: the devices agreed only after %d exchanges", k);
		/* one more exchange: the chain they agree on carries messages */
		if (r->ok)
			exchange(w, k);
		/* after a removal, B's next messages build on the heal's node
		 * (or the heal goes again): a few exchanges at most */
		for (int h = 0; r->ok && !sim_revoke_healed(w) && h < 3; h++)
			exchange(w, ++k);
	}
	if (r->ok)
		sim_check(w);
	if (!r->ok && cfg->trace)
		sim_dump_trees(w);
	r->user_msgs = w->nsent;
	for (size_t i = 0; i < w->nsent; i++)
		r->typed[w->sent_ids[i].side]++;
	sim_world_free(w);
	free(w);
	return r->ok ? 0 : -1;
}

/* ---- the grid and its report --------------------------------------------------------- */

struct cell {
	int na, nb, strict;
	double loss, crash;
	int runs, failing;
	int *rounds, *branches, *priv;
	uint64_t msgs, msgs_a, forks_a, reps_a, retx, acks, dup_acks, keys, repairs, crashes;
	double ts_err;
	char first[600];
};

static int cmp_int(const void *a, const void *b)
{
	return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

static int pct(int *v, int n, double p)
{
	if (n == 0)
		return -1;
	qsort(v, (size_t)n, sizeof *v, cmp_int);
	return v[(int)((n - 1) * p)];
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: relm-sim [--seeds N] [--seed S] [--devices A,B] [--strict] [--loss P]\n"
	        "                [--dup P] [--crash P] [--skew MS] [--no-clock-sync]\n"
	        "                [--profile NAME] [--msgs N] [--scenario NAME|all] [--trace]\n"
	        "                [--mutate no-copies|no-carry|no-repair|sibling-loss|leak-removed|clone|\n"
	        "                          nonleader-sends|drop-requests]\n"
	        "                [--expect-fail]\n"
	        "                [--revoke P] [--strategy leaderless|leader|fanout|mixed]\n"
	        "profiles: mixed simultaneous crossing pingpong returning stream\n"
	        "scenarios: ce1 .. ce6, or all\n");
	exit(2);
}

static const char *arg(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		usage();
	return argv[++*i];
}

static void print_cell(const struct cell *c, int show_loss)
{
	char dev[16];
	int ok = c->runs - c->failing;

	if (c->strict)
		snprintf(dev, sizeof dev, "%dxstrict", c->na);
	else
		snprintf(dev, sizeof dev, "%dx%d", c->na, c->nb);
	printf("%-9s", dev);
	if (show_loss)
		printf(" %4.0f%% %3.0f%%", c->loss * 100, c->crash * 100);
	printf(" %6d %5d  %d/%d/%d   %2d/%-2d  %2d/%-2d  %6.3f %6.3f %6.3f %6.3f  %6.3f %5.0f\n", c->runs, c->failing,
	       pct(c->rounds, ok, 0.5), pct(c->rounds, ok, 0.99), pct(c->rounds, ok, 1.0),
	       pct(c->branches, c->runs, 0.99), pct(c->branches, c->runs, 1.0), pct(c->priv, c->runs, 0.99),
	       pct(c->priv, c->runs, 1.0), c->msgs_a ? (double)c->forks_a / (double)c->msgs_a : 0,
	       c->msgs_a ? (double)c->reps_a / (double)c->msgs_a : 0,
	       c->msgs ? (double)c->retx / (double)c->msgs : 0,
	       c->msgs ? (double)c->keys / (double)c->msgs : 0,
	       c->acks ? (double)c->dup_acks / (double)c->acks : 0, c->ts_err);
}

int main(int argc, char **argv)
{
	struct sim_cfg base = { .seed = 1, .profile = -1, .skew = 30000, .clock_sync = 1, .dup = 0.05 };
	long seeds = 1;
	int dev_a = 0, dev_b = 0, scenario = 0, grid_loss = 1, grid_crash = 1, expect_fail = 0;
	struct cell cells[128];
	int ncells = 0, failed = 0;
	struct timespec t0, t1;
	struct sim_result rv = { 0 };        /* revocation totals */

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--seeds"))
			seeds = atol(arg(argc, argv, &i));
		else if (!strcmp(a, "--seed"))
			base.seed = strtoull(arg(argc, argv, &i), NULL, 10);
		else if (!strcmp(a, "--devices")) {
			if (sscanf(arg(argc, argv, &i), "%d,%d", &dev_a, &dev_b) != 2 || dev_a < 1 ||
			    dev_a > SIM_MAX_DEV || dev_b < 1 || dev_b > SIM_MAX_DEV)
				usage();
		} else if (!strcmp(a, "--strict") || !strcmp(a, "--strict-remote"))
			base.strict = 1;
		else if (!strcmp(a, "--loss")) {
			base.loss = atof(arg(argc, argv, &i));
			grid_loss = 0;
		} else if (!strcmp(a, "--dup"))
			base.dup = atof(arg(argc, argv, &i));
		else if (!strcmp(a, "--crash")) {
			base.crash = atof(arg(argc, argv, &i));
			grid_crash = 0;
		}
		else if (!strcmp(a, "--skew"))
			base.skew = atoi(arg(argc, argv, &i));
		else if (!strcmp(a, "--no-clock-sync"))
			base.clock_sync = 0;
		else if (!strcmp(a, "--profile")) {
			if ((base.profile = sim_profile_id(arg(argc, argv, &i))) < 0)
				usage();
		} else if (!strcmp(a, "--msgs"))
			base.msgs = atoi(arg(argc, argv, &i));
		else if (!strcmp(a, "--scenario")) {
			const char *n = arg(argc, argv, &i);
			scenario = !strcmp(n, "all") ? -1 : sim_scenario_id(n);
			if (scenario == 0 || scenario < -1)
				usage();
		} else if (!strcmp(a, "--mutate")) {
			unsigned m = sim_mutation_id(arg(argc, argv, &i));
			if (!m)
				usage();
			base.mutate |= m;
		} else if (!strcmp(a, "--expect-fail"))
			expect_fail = 1;
		else if (!strcmp(a, "--trace"))
			base.trace = 1;
		else if (!strcmp(a, "--revoke"))
			base.revoke = atof(arg(argc, argv, &i));
		else if (!strcmp(a, "--strategy")) {
			const char *n = arg(argc, argv, &i);
			base.strategy = !strcmp(n, "leader") ? SIM_S_LEADER : !strcmp(n, "fanout") ? SIM_S_FANOUT
			              : !strcmp(n, "mixed") ? SIM_S_MIXED : !strcmp(n, "leaderless") ? 0 : -1;
			if (base.strategy < 0)
				usage();
		}
		else
			usage();
	}
	if (seeds < 1 || (base.strategy && (base.revoke > 0 || scenario)))
		usage();                 /* strategies: not with revocation or the scenarios (yet) */

	/* the cells */
	if (scenario) {
		for (int id = 1; id <= sim_scenario_count(); id++) {
			struct sim_cfg c = base;
			if (scenario > 0 && id != scenario)
				continue;
			sim_scenario_cfg(&c, id);
			cells[ncells++] = (struct cell){ .na = c.n[0], .nb = c.n[1], .strict = c.strict,
			                                 .loss = c.loss, .first = "" };
			cells[ncells - 1].runs = id;   /* remembered below */
		}
	} else if (dev_a) {
		cells[ncells++] = (struct cell){ .na = dev_a, .nb = base.strict ? 1 : dev_b,
		                                 .strict = base.strict, .loss = base.loss,
		                                 .crash = base.crash };
	} else {
		for (int k = 0; k < (grid_crash ? 2 : 1); k++)
			for (int l = 0; l < (grid_loss ? 2 : 1); l++)
				for (int a = 1; a <= SIM_MAX_DEV; a++)
					for (int b = 1; b <= SIM_MAX_DEV + 1; b++)
						cells[ncells++] = (struct cell){
							.na = a, .nb = b > SIM_MAX_DEV ? 1 : b, .strict = b > SIM_MAX_DEV,
							.loss = grid_loss ? 0.05 * l : base.loss,
							.crash = grid_crash ? 0.02 * k : base.crash };
	}
	int ids[128];
	for (int c = 0; c < ncells; c++) {
		ids[c] = scenario ? cells[c].runs : 0;
		cells[c].runs = 0;
		cells[c].rounds = calloc((size_t)seeds, sizeof(int));
		cells[c].branches = calloc((size_t)seeds, sizeof(int));
		cells[c].priv = calloc((size_t)seeds, sizeof(int));
		if (!cells[c].rounds || !cells[c].branches || !cells[c].priv)
			abort();
	}

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long k = 0; k < seeds; k++) {
		/* scenarios: every seed runs every scenario; the grid deals them */
		for (int c = scenario ? 0 : (int)(k % ncells); c < ncells; c += scenario ? 1 : ncells) {
			struct cell *cl = &cells[c];
			struct sim_cfg cfg = base;
			struct sim_result r;

			cfg.seed = base.seed + (uint64_t)k;
			cfg.n[0] = cl->na;
			cfg.n[1] = cl->nb;
			cfg.strict = cl->strict;
			cfg.loss = cl->loss;
			cfg.crash = cl->crash;
			if (scenario)
				sim_scenario_cfg(&cfg, ids[c]);
			sim_run(&cfg, &r);
			if (!r.ok) {
				cl->failing++;
				failed++;
				printf("FAIL seed %llu: %s\n  replay: relm-sim --seed %llu %s%s --devices %d,%d "
				       "--loss %g --dup %g --crash %g --skew %d%s%s%s%s --trace\n",
				       (unsigned long long)cfg.seed, r.why, (unsigned long long)cfg.seed,
				       scenario ? "--scenario " : "", scenario ? sim_scenario_name(ids[c]) : "",
				       cfg.n[0], cfg.n[1], cfg.loss, cfg.dup, cfg.crash, cfg.skew,
				       cfg.strict ? " --strict" : "", cfg.revoke > 0 ? " --revoke 1" : "",
				       cfg.strategy ? " --strategy " : "",
				       cfg.strategy == SIM_S_LEADER ? "leader" : cfg.strategy == SIM_S_FANOUT ? "fanout"
				       : cfg.strategy == SIM_S_MIXED ? "mixed" : "");
			} else {
				cl->rounds[cl->runs - cl->failing] = r.rounds;
			}
			if (seeds == 1)
				printf("seed %llu: %s, %d exchange(s) to converge, %llu messages, %llu forks, "
				       "%llu retransmissions, %llu repairs, %llu crashes\n",
				       (unsigned long long)cfg.seed, r.ok ? "ok" : "FAILED", r.rounds,
				       (unsigned long long)r.user_msgs, (unsigned long long)(r.forks_by[0] + r.forks_by[1]),
				       (unsigned long long)r.retx, (unsigned long long)r.repairs,
				       (unsigned long long)r.crashes);
			cl->branches[cl->runs] = (int)r.max_branches;
			cl->priv[cl->runs] = (int)r.max_priv;
			cl->runs++;
			cl->msgs += r.user_msgs;
			cl->msgs_a += r.typed[0];
			cl->forks_a += r.forks_by[0];
			cl->reps_a += r.counter_repeats[0];
			cl->retx += r.retx;
			cl->keys += r.keys_seen[0] + r.keys_seen[1];
			cl->acks += r.acks[0] + r.acks[1];
			cl->dup_acks += r.dup_acks[0] + r.dup_acks[1];
			cl->repairs += r.repairs;
			cl->crashes += r.crashes;
			rv.revoked += r.revoked;
			rv.sealed += r.sealed;
			rv.read_after += r.read_after;
			rv.clones += r.clones > 0;
			rv.requests += r.requests;
			rv.takeovers += r.takeovers;
			rv.switches += r.switches;
			if (r.max_ts_error_ms > cl->ts_err)
				cl->ts_err = r.max_ts_error_ms;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);

	long total = 0;
	uint64_t repairs = 0, crashes = 0, msgs = 0;
	printf("%-9s %s %6s %5s  %-7s  %-5s  %-5s  %6s %6s %6s %6s  %6s %5s\n", scenario ? "scenario" : "devices",
	       "loss crash", "runs", "fail", "rounds", "branch", "keys", "fork/m", "rep/m", "retx/m", "env/m",
	       "dupack", "ts-err");
	printf("%-9s %s %6s %5s  %-7s  %-5s  %-5s\n", "", "          ", "", "", "med/99/max", "p99/max",
	       "p99/max");
	for (int c = 0; c < ncells; c++) {
		if (scenario)
			printf("%-5s ", sim_scenario_name(ids[c]));
		print_cell(&cells[c], 1);
		total += cells[c].runs;
		repairs += cells[c].repairs;
		msgs += cells[c].msgs;
		crashes += cells[c].crashes;
		free(cells[c].rounds);
		free(cells[c].branches);
		free(cells[c].priv);
	}
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("%ld schedules, %d failing, %.1f s, %.0f schedules/s, %.0f messages/s (seed %llu); "
	       "%llu repairs by state, %llu crashes\n", total, failed, secs, secs > 0 ? (double)total / secs : 0,
	       secs > 0 ? (double)msgs / secs : 0,
	       (unsigned long long)base.seed, (unsigned long long)repairs, (unsigned long long)crashes);
	if (base.revoke > 0)
		printf("revocation: %llu schedules removed a device; %llu of B's messages went on nodes "
		       "built after it, none read by it; %llu typed after the removal it still read "
		       "(the heal's window)\n", (unsigned long long)rv.revoked,
		       (unsigned long long)rv.sealed, (unsigned long long)rv.read_after);
	if (base.strategy)
		printf("strategies: %llu requests made, %llu lease takeovers, %llu strategy switches\n",
		       (unsigned long long)rv.requests, (unsigned long long)rv.takeovers,
		       (unsigned long long)rv.switches);
	if (base.mutate & SIM_M_CLONE)
		printf("clone: clone.suspected raised in %llu of %llu schedules with a clone "
		       "(a clone that only sends on nodes the circle holds is not seen)\n",
		       (unsigned long long)rv.clones, (unsigned long long)rv.revoked);
	if (expect_fail && (base.mutate & SIM_M_CLONE) && rv.clones == 0) {
		/* a clone: the clone rule itself must have seen it, somewhere */
		printf("ERROR: no clone.suspected in any schedule with a clone\n");
		return 1;
	}
	if (expect_fail) {
		/* a mutation run: the checks must have noticed */
		printf("%s\n", failed ? "the checks caught the broken world, as they must"
		                        : "ERROR: a broken world passed every check");
		return failed ? 0 : 1;
	}
	return failed ? 1 : 0;
}

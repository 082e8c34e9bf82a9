/*
 * scenarios.c — named schedules kept as regression tests: the six shapes
 * that made an earlier draft of the fork rules lose messages or never
 * converge (the rules as they stand are in proto/ratchet.md §3 and §5;
 * why each rule is needed is told there).  Each is the user actions of
 * the minimal counter-example; the network's delays, duplicates and
 * losses still come from the seed, so `relm-sim --scenario ce1 --seeds
 * 500` runs the shape under 500 different networks.
 *
 *   ce1  2×1: A1 sends, B1 answers, a retransmission and A2's send cross
 *        before the receipt is read — pruning "W past the fork" and
 *        receipts naming only message ids deadlock both sides.
 *   ce2  1×2: two B devices send before their copies cross; A answers
 *        one branch, switches to the other — the sides judged validity
 *        differently.
 *   ce3  2×strict with loss: siblings' retransmissions on two children
 *        of one node; the strict peer accepts one, its receipt is lost —
 *        retries must rotate over the sibling children.
 *   ce4  2×2: two devices come back after minutes, one types at once on
 *        a stale leaf; siblings wipe keys at different instants, so one
 *        accepts what the other cannot — siblings share what they accept.
 *   ce5  3×3: crossing storms of automated and user messages leave tied
 *        leaves — both sides must break ties in one order.
 *   ce6  2×2: two siblings on each side send at once, both sides extend
 *        different branches — no constant "W past the fork" is safe.
 */
#include <string.h>
#include "sim.h"

struct scenario {
	const char *name;
	int na, nb, strict;
	double loss;
	void (*schedule)(struct sim_world *w);
};

static void ce1(struct sim_world *w)
{
	sim_at_send(w, 0, 0, 0, 0);
	sim_at_send(w, 500, 1, 0, 0);
	sim_at_send(w, 11840, 0, 1, 0);
	sim_at_send(w, 12100, 1, 0, 0);
}

static void ce2(struct sim_world *w)
{
	sim_at_send(w, 0, 1, 0, 0);
	sim_at_send(w, 480, 1, 1, 0);
	sim_at_send(w, 1320, 0, 0, 0);
	sim_at_send(w, 9000, 1, 1, 0);
	sim_at_send(w, 12000, 0, 0, 0);
}

static void ce3(struct sim_world *w)
{
	for (int i = 0; i < 11; i++) {
		int side = i % 3 == 2;
		sim_at_send(w, (uint64_t)i * 1500, side, side ? 0 : i % 2, 0);
	}
}

static void ce4(struct sim_world *w)
{
	static const uint64_t t[] = { 0, 800, 2500, 4000, 6100, 9000, 12000, 14500 };

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		sim_at_send(w, t[i], (int)(i % 2), (int)(i / 2) % 2, 0);
	sim_at_offline(w, 16000, 1, 0, 269000);        /* B1 away 16–285 s */
	sim_at_offline(w, 19000, 0, 1, 261000);        /* A2 away 19–280 s */
	sim_at_send(w, 30000, 0, 1, 1);                /* A2's user types on its return */
	sim_at_send(w, 40000, 1, 1, 0);
	sim_at_send(w, 150000, 0, 0, 0);
	sim_at_send(w, 200000, 1, 1, 0);
}

static void ce5(struct sim_world *w)
{
	for (int round = 0; round < 4; round++)
		for (int side = 0; side < 2; side++)
			for (int d = 0; d < 3; d++)
				sim_at_send(w, (uint64_t)round * 2500 + (uint64_t)d * 7, side, d, 0);
}

static void ce6(struct sim_world *w)
{
	sim_at_send(w, 0, 0, 0, 0);
	sim_at_send(w, 0, 0, 1, 0);
	sim_at_send(w, 710, 1, 0, 0);
	sim_at_send(w, 710, 1, 1, 0);
	sim_at_send(w, 1670, 0, 0, 0);
	sim_at_send(w, 1790, 0, 1, 0);
}

static const struct scenario scenarios[] = {
	{ "ce1", 2, 1, 0, 0, ce1 },
	{ "ce2", 1, 2, 0, 0, ce2 },
	{ "ce3", 2, 1, 1, 0.05, ce3 },
	{ "ce4", 2, 2, 0, 0, ce4 },
	{ "ce5", 3, 3, 0, 0, ce5 },
	{ "ce6", 2, 2, 0, 0, ce6 },
};

int sim_scenario_count(void)
{
	return (int)(sizeof scenarios / sizeof scenarios[0]);
}

int sim_scenario_id(const char *name)
{
	for (int i = 0; i < sim_scenario_count(); i++)
		if (strcmp(scenarios[i].name, name) == 0)
			return i + 1;
	return -1;
}

const char *sim_scenario_name(int id)
{
	return id >= 1 && id <= sim_scenario_count() ? scenarios[id - 1].name : "?";
}

void sim_scenario_cfg(struct sim_cfg *cfg, int id)
{
	const struct scenario *s = &scenarios[id - 1];

	cfg->scenario = id;
	cfg->n[0] = s->na;
	cfg->n[1] = s->nb;
	cfg->strict = s->strict;
	cfg->loss = s->loss;
}

void sim_scenario(struct sim_world *w, int id)
{
	scenarios[id - 1].schedule(w);
}

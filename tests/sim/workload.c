/*
 * workload.c — what the people type, and when (sim.h's profiles).  Every
 * choice is drawn from the world's random stream, so a seed names a
 * schedule.  The shapes are the ones that broke earlier fork rules:
 * siblings sending at the same instant, both sides crossing, answers about
 * one round trip later, a device that types the moment it is back on line
 * before it has read anything, and long silences between.  (And the
 * names of the mutations, sim.h.)
 */
#include <string.h>
#include "sim.h"

static const char *const names[SIM_P_COUNT] = {
	[SIM_P_MIXED] = "mixed",
	[SIM_P_SIMULTANEOUS] = "simultaneous",
	[SIM_P_CROSSING] = "crossing",
	[SIM_P_PINGPONG] = "pingpong",
	[SIM_P_RETURNING] = "returning",
	[SIM_P_STREAM] = "stream",
};

const char *sim_profile_name(int p)
{
	return p >= 0 && p < SIM_P_COUNT ? names[p] : "?";
}

int sim_profile_id(const char *name)
{
	for (int p = 0; p < SIM_P_COUNT; p++)
		if (strcmp(names[p], name) == 0)
			return p;
	return -1;
}

static int pick(struct sim_world *w, int n)
{
	return (int)(sim_rand(w) % (uint64_t)n);
}

/* Some devices of a side send at the same instant t. */
static int together(struct sim_world *w, uint64_t t, int side, int left)
{
	int n = sim_devices(w, side), k = 1 + pick(w, n), first = pick(w, n), sent = 0;

	for (int i = 0; i < k && sent < left; i++, sent++)
		sim_at_send(w, t, side, (first + i) % n, 0);
	return sent;
}

/* A device off line for a while; its user may type while it is away
 * (sent the moment it is back). */
static void away(struct sim_world *w, uint64_t t, int side, int dev, int typing)
{
	uint64_t ms = (uint64_t)sim_uniform(w, 10000, 300000);

	sim_at_offline(w, t, side, dev, ms);
	if (typing)
		sim_at_send(w, t + (uint64_t)sim_uniform(w, 1, (double)ms - 1), side, dev, 1);
}

void sim_workload(struct sim_world *w, const struct sim_cfg *cfg)
{
	int p = cfg->profile >= 0 ? cfg->profile : pick(w, SIM_P_COUNT);
	int left = cfg->msgs > 0 ? cfg->msgs : 4 + pick(w, p == SIM_P_STREAM ? 40 : 24);
	uint64_t t = 1000;

	while (left > 0) {
		int side = pick(w, SIM_SIDES), q = p;
		uint64_t gap;

		if (q == SIM_P_MIXED)
			q = 1 + pick(w, SIM_P_COUNT - 1);
		switch (q) {
		case SIM_P_SIMULTANEOUS:
			left -= together(w, t, side, left);
			gap = (uint64_t)sim_uniform(w, 200, 15000);
			break;
		case SIM_P_CROSSING:
			left -= together(w, t, 0, left);
			if (left > 0)
				left -= together(w, t + (uint64_t)sim_uniform(w, 0, 50), 1, left);
			gap = (uint64_t)sim_uniform(w, 500, 20000);
			break;
		case SIM_P_PINGPONG:
			sim_at_send(w, t, side, pick(w, sim_devices(w, side)), 0);
			left--;
			gap = (uint64_t)sim_uniform(w, 300, 3000);   /* about a round trip */
			break;
		case SIM_P_RETURNING: {
			int dev = pick(w, sim_devices(w, side));
			away(w, t, side, dev, 1);
			left--;
			if (left > 0) {
				sim_at_send(w, t + (uint64_t)sim_uniform(w, 100, 5000), 1 - side,
				            pick(w, sim_devices(w, 1 - side)), 0);
				left--;
			}
			gap = (uint64_t)sim_uniform(w, 1000, 30000);
			break;
		}
		case SIM_P_STREAM:
		default: {
			int dev = pick(w, sim_devices(w, side)), burst = 3 + pick(w, 12);
			for (int i = 0; i < burst && left > 0; i++, left--)
				sim_at_send(w, t + (uint64_t)i * (uint64_t)sim_uniform(w, 20, 600), side,
				            i % 3 == 2 ? pick(w, sim_devices(w, side)) : dev, 0);
			gap = (uint64_t)sim_uniform(w, 2000, 30000);
			break;
		}
		}
		/* now and then a device goes away, and a long silence */
		if (pick(w, 8) == 0) {
			int s = pick(w, SIM_SIDES);
			away(w, t + (uint64_t)sim_uniform(w, 0, 2000), s, pick(w, sim_devices(w, s)), 0);
		}
		if (pick(w, 10) == 0)
			gap += (uint64_t)sim_uniform(w, 60000, 400000);
		if (pick(w, 12) == 0)
			sim_at_partition(w, t + (uint64_t)sim_uniform(w, 0, 3000),
			                 (uint64_t)sim_uniform(w, 5000, 120000));
		t += gap;
	}
}

static const struct { unsigned m; const char *name; } mutations[] = {
	{ SIM_M_NO_COPIES, "no-copies" },
	{ SIM_M_NO_CARRY, "no-carry" },
	{ SIM_M_NO_REPAIR, "no-repair" },
	{ SIM_M_SIB_LOSS, "sibling-loss" },
	{ SIM_M_LEAK_REMOVED, "leak-removed" },
	{ SIM_M_CLONE, "clone" },
	{ SIM_M_NONLEADER_SENDS, "nonleader-sends" },
	{ SIM_M_DROP_REQUESTS, "drop-requests" },
};

const char *sim_mutation_name(unsigned m)
{
	for (size_t i = 0; i < sizeof mutations / sizeof mutations[0]; i++)
		if (mutations[i].m == m)
			return mutations[i].name;
	return "?";
}

unsigned sim_mutation_id(const char *name)
{
	for (size_t i = 0; i < sizeof mutations / sizeof mutations[0]; i++)
		if (strcmp(mutations[i].name, name) == 0)
			return mutations[i].m;
	return 0;
}

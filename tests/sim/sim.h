/*
 * sim.h — the deterministic simulator of one relationship between two
 * protons with several devices each (proto/devices.md, invariants.md).
 *
 * Everything runs in one process on a virtual clock, from one seed: each
 * simulated device owns its engine state, its own random stream and its
 * own (skewed) clock; a virtual network delays, reorders, duplicates and
 * loses what is posted; devices go off-line, crash and come back; a
 * workload types messages.  After the schedule the world is drained to
 * quiescence, then messages are exchanged until the devices converge, and
 * every invariant is checked.  What the remote receives is recorded, so
 * privacy is measured, not assumed.
 *
 *   world.c      the clock, the randomness, the event queue, the set-up
 *   store.c      a device's committed state ("the store") and its outbox
 *   step.c       a device's engine steps, timers, sends and crashes
 *   net.c        the network (mailboxes, sibling channels) and reading
 *   workload.c   the profiles (what people type, and when)
 *   check.c      invariants and metrics at the end of a schedule
 *   scenarios.c  the named regression scenarios (six counter-examples of
 *                an earlier draft of the fork rules)
 *   revoke.c     a device removed under traffic (--revoke)
 *   strategy.c   the leader and fanout strategies, and switches (--strategy)
 *   sim.c        relm-sim: the command line, the grid, the report
 */
#ifndef RELM_SIM_H
#define RELM_SIM_H

#include <stddef.h>
#include <stdint.h>
#include "engine/rel.h"

enum { SIM_MAX_DEV = 4, SIM_SIDES = 2 };

enum sim_profile {
	SIM_P_MIXED = 0,     /* a bit of everything below */
	SIM_P_SIMULTANEOUS,  /* several siblings send at the same instant */
	SIM_P_CROSSING,      /* both sides send at the same instant */
	SIM_P_PINGPONG,      /* each side answers about one round trip later */
	SIM_P_RETURNING,     /* a device types the moment it comes back on line */
	SIM_P_STREAM,        /* long one-sided streams */
	SIM_P_COUNT
};

struct sim_cfg {
	uint64_t seed;
	int n[SIM_SIDES];        /* devices of A and of B (1..SIM_MAX_DEV) */
	int strict;              /* B is one strict single-device Double Ratchet */
	double loss;             /* probability an envelope to the remote is lost */
	double dup;              /* probability a posted envelope arrives twice */
	double crash;            /* probability a device crashes at a step */
	int profile;             /* enum sim_profile, or -1: pick from the seed */
	int msgs;                /* user messages in the schedule (0: from the profile) */
	int skew;                /* devices' clocks differ by up to ±skew ms */
	int clock_sync;          /* correct device clocks to the mailbox server's */
	int trace;               /* print what happens */
	int scenario;            /* 0, or a named scenario (scenarios.c) */
	unsigned mutate;         /* SIM_M_*: break the world on purpose */
	int strategy;            /* SIM_S_*: the protons' strategy (strategy.c) */
	double revoke;           /* probability a schedule removes A's last device
	                          * at a random time (A with ≥ 2 devices; revoke.c) */
};

/* Mutations: each breaks one thing the rules rely on, to show that the
 * checks notice (make check expects every one to be caught). */
enum {
	SIM_M_NO_COPIES = 1u << 0,  /* siblings' copies are dropped */
	SIM_M_NO_CARRY  = 1u << 1,  /* receipts' carries are dropped (siblings do not share what they accept) */
	SIM_M_NO_REPAIR = 1u << 2,  /* state requests go unanswered */
	SIM_M_SIB_LOSS  = 1u << 3,  /* the sibling channel loses 10 % of its frames */
	SIM_M_LEAK_REMOVED = 1u << 4, /* a removed device still gets its siblings' copies */
	SIM_M_CLONE     = 1u << 5,  /* a removed device goes on typing and posting to the
	                             * remote: a clone outside the circle */
};
/* Strategies (proto/devices.md §11, tests/sim/strategy.c). */
enum {
	SIM_S_LEADERLESS = 0,
	SIM_S_LEADER,        /* the send lease decides; leaders crash and go off line */
	SIM_S_FANOUT,        /* device 1 is the hub; it goes off line and comes back */
	SIM_S_MIXED,         /* switches between the three under load */
};
enum {
	SIM_M_NONLEADER_SENDS = 1u << 6, /* a device that does not hold the lease sends itself */
	SIM_M_DROP_REQUESTS   = 1u << 7, /* a leader change drops the pending requests */
};
const char *sim_mutation_name(unsigned m);
unsigned sim_mutation_id(const char *name);     /* 0: unknown */

/* What one schedule measured. */
struct sim_result {
	int ok;
	char why[512];                /* the first violation */
	int rounds;                   /* exchanges needed after the drain (-1: never) */
	uint32_t max_branches;        /* leaves of any device's tree, at any time */
	uint32_t max_priv;            /* ours private keys held by any device */
	uint64_t user_msgs;           /* messages typed */
	uint64_t sent_to_remote[SIM_SIDES];  /* envelopes side s posted (all kinds) */
	uint64_t keys_seen[SIM_SIDES];       /* envelopes side s showed the remote, distinct (key, counter) */
	uint64_t forks_by[SIM_SIDES];        /* forks side s's devices made that reached the remote */
	uint64_t typed[SIM_SIDES];           /* user messages typed on side s */
	uint64_t counter_repeats[SIM_SIDES]; /* (key, counter) side s used twice */
	uint64_t acks[SIM_SIDES], dup_acks[SIM_SIDES]; /* acknowledgements, and repeats */
	uint64_t steps;               /* engine steps */
	uint64_t crashes;
	uint64_t retx;
	uint64_t repairs;             /* state requests answered */
	double max_ts_error_ms;       /* |ts − true send time| at the remote, worst */
	uint64_t revoked;             /* schedules that removed a device (0 or 1) */
	uint64_t sealed;              /* B's messages sent on a node built after the
	                               * removal: the removed device must read none */
	uint64_t read_after;          /* B's messages typed after the removal that the
	                               * removed device still read (the heal window) */
	uint64_t clones;              /* clone.suspected raised (must stay 0) */
	uint64_t requests;            /* requests made (strategies) */
	uint64_t takeovers;           /* the lease changed hands to a live holder */
	uint64_t switches;            /* strategy changes made */
};

/* Run one schedule.  Returns 0 when every invariant held (r->ok = 1). */
int sim_run(const struct sim_cfg *cfg, struct sim_result *r);

/* ---- inside the simulator -------------------------------------------------- */

struct sim_world;
struct sim_dev;

/* workload.c: schedule the profile's user messages into the world. */
void sim_workload(struct sim_world *w, const struct sim_cfg *cfg);
/* world.c: a user of device (side, i) types a message at time t (step.c sends it). */
void sim_at_send(struct sim_world *w, uint64_t t, int side, int dev, int until_online);
/* world.c: device (side, i) is off-line from t for ms. */
void sim_at_offline(struct sim_world *w, uint64_t t, int side, int dev, uint64_t ms);
/* world.c: from t, for ms, nothing posted between the protons arrives. */
void sim_at_partition(struct sim_world *w, uint64_t t, uint64_t ms);
/* revoke.c: A's last device leaves the circle at t. */
void sim_at_revoke(struct sim_world *w, uint64_t t);
/* world.c: random numbers of the world (not of any device). */
uint64_t sim_rand(struct sim_world *w);
double sim_uniform(struct sim_world *w, double lo, double hi);
int sim_devices(const struct sim_world *w, int side);

/* scenarios.c: named schedules instead of a profile, ids 1..count. */
int sim_scenario_id(const char *name);          /* -1: unknown */
const char *sim_scenario_name(int id);
int sim_scenario_count(void);
/* The scenario's devices, strictness and loss into cfg (before sim_run). */
void sim_scenario_cfg(struct sim_cfg *cfg, int id);
/* Its user actions into the world (sim_run calls it). */
void sim_scenario(struct sim_world *w, int id);

const char *sim_profile_name(int p);
int sim_profile_id(const char *name);

#endif

/*
 * world.h — what the files of relm-sim-core share (tests/sim/core/):
 *
 *   world.c     devices (open, restart, remove), the mailbox network,
 *               pumping and reading, set-up, quiescence
 *   sim.c       the schedule, its crashes, the checks, main
 *   strategy.c  the strategies (--strategy): the lease server, the
 *               strategy timer, switches, a leader or hub away
 */
#ifndef RELM_SIM_CORE_WORLD_H
#define RELM_SIM_CORE_WORLD_H

#include <stddef.h>
#include <stdint.h>
#include "engine/env.h"
#include "engine/event.h"
#include "limits.h"

enum { MAX_DEV = 4, MAX_SENT = 512 };

struct mail {
	uint8_t mailbox[RELM_SIGN_PK_LEN];
	uint64_t seq;
	uint8_t *buf;
	size_t len;
};

/* an ours private key the device held on the relationship, and whether it
 * still does (forward secrecy: once gone from the tree, gone from the file) */
struct key {
	uint8_t pub[RELM_KEY_LEN];
	uint8_t priv[RELM_KEY_LEN];
	int held;
};

struct dev {
	char name[8];
	struct key *keys;
	size_t nkeys, capkeys;
	char dir[256], path[320];
	struct relm_store *st;
	struct relm_core *core;
	struct relm_env env;
	uint64_t stream;
	int64_t outbox_after;
	uint64_t restarts;
	uint64_t away_until;               /* off line (strategy.c): no posting, reading or lease */
};

struct sent {
	uint8_t id[RELM_ID_LEN];
	int side, dev;
};

struct world {
	uint64_t seed, rng, clock;
	int n[2], trace;
	struct dev dev[2][MAX_DEV];
	uint8_t proton[2][RELM_ID_LEN];
	uint8_t rel[RELM_ID_LEN];
	struct mail *mail;
	size_t nmail, capmail;
	struct sent sent[MAX_SENT];
	size_t nsent;
	int crashing;                      /* a crash in a step: its errors are expected */
	uint64_t crashes;
	char why[512];
	/* strategy.c: --strategy (0 none: leaderless as before), the lease
	 * server of each side, and what happened */
	int strategy;
	uint8_t lease_holder[2][RELM_ID_LEN];
	uint64_t lease_exp[2];
	uint64_t switches, aways, periods;
};

enum { SIM_STRAT_NONE = 0, SIM_STRAT_LEADER, SIM_STRAT_FANOUT, SIM_STRAT_MIXED };

uint64_t rnd(struct world *w);
unsigned below(struct world *w, unsigned n);
void trace(struct world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A violation: the first one is kept (with the schedule's seed). -1. */
int fail(struct world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define TRY(w, call) do { int rc_ = (call); \
	if (rc_ != 0) return fail((w), "%s: %s (line %d)", #call, relm_strerror(rc_), __LINE__); } while (0)
const char *hex8(const uint8_t *id);

int dev_open(struct world *w, struct dev *d);
void dev_close(struct dev *d);
void dev_remove(struct dev *d);
int restart(struct world *w, struct dev *d);
/* Post d's committed outbox rows; read up to max envelopes (0: all) of
 * its mailboxes (only_one: one mailbox at random), how many or -1; run
 * its timers. */
int pump(struct world *w, struct dev *d);
int deliver(struct world *w, struct dev *d, size_t max, int only_one);
int tick(struct world *w, struct dev *d);
int note_keys(struct world *w, struct dev *d);
int invite_keys(struct dev *d);
int check_wiped(struct world *w, struct dev *d);
int settle(struct world *w, int rounds, uint64_t step_ms);
int quiesce(struct world *w);
int setup(struct world *w);
int user_send(struct world *w, int s, int i);
int ev_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev);

/* strategy.c */
/* After set-up: each side of two devices or more chooses its strategy. */
int strat_start(struct world *w);
/* A strategy action of the schedule on side s's device i (only with
 * --strategy: it draws from the schedule's stream). */
int strat_action(struct world *w, int s, int i);
/* Device d's strategy timer as relmd runs it (every TTL / 3): its lease
 * round on its side's server, then relm_core_strategy_tick, then its
 * timers that came due (relmd re-arms its timer after every commit). */
int strat_period(struct world *w, int s, int i);
/* Every device back on line (quiescence). */
void strat_all_back(struct world *w);
/* The end's checks: no request pending; how many devices hold state. */
int strat_check(struct world *w);

#endif

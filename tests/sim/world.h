/*
 * world.h — the simulated world's insides, shared by the files of
 * tests/sim (sim.h is what the command line sees).
 */
#ifndef RELM_SIM_WORLD_H
#define RELM_SIM_WORLD_H

#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include "sim.h"
#include "engine/rel.h"
#include "engine/rel_state.h"
#include "engine/chain_tree.h"
#include "engine/fork_rule.h"
#include "engine/env.h"
#include "engine/effects.h"

/* Event types of the queue. */
enum {
	SIM_EV_ARRIVE = 1,   /* a post reaches a side's mailbox (arg: transit index) */
	SIM_EV_READ,         /* a sibling frame became readable for (side, dev) */
	SIM_EV_DOREAD,       /* the device reads what it can */
	SIM_EV_TICK,         /* the device's engine timer */
	SIM_EV_SEND,         /* the user types (waits while the device is down) */
	SIM_EV_SEND_ONLINE,  /* the user types the moment the device is on line */
	SIM_EV_OFFLINE,      /* the device goes off-line for arg ms */
	SIM_EV_ONLINE,
	SIM_EV_RESTART,      /* a crashed device comes back */
	SIM_EV_PARTITION,    /* the protons cannot reach each other for arg ms */
	SIM_EV_REVOKE,       /* A's last device leaves the circle (revoke.c) */
	SIM_EV_STRAT,        /* the device's strategy timer: lease, requests (strategy.c) */
	SIM_EV_SWITCH        /* a device of side changes the strategy (arg: to) */
};

/* Engine steps (step.c's step(), sim_step). */
enum {
	SIM_ST_SEND = 0, SIM_ST_RECV, SIM_ST_TICK, SIM_ST_COPY, SIM_ST_MERGE,
	/* strategies (strategy.c) */
	SIM_ST_REQUEST,      /* the user typed on a device that does not send */
	SIM_ST_SERVE,        /* a sibling's request (buf) */
	SIM_ST_OWN,          /* this device's own pending request (buf), now it sends */
	SIM_ST_LEAD,         /* this device became the one that sends */
	SIM_ST_DELIVER,      /* a hub's deliver (buf), on a device without state */
	SIM_ST_DUE,          /* a pending request row (buf: its data) may go again */
	SIM_ST_ADOPT         /* a SIM_F_ADOPT frame (buf, after the kind byte) */
};

/* Frames on a sibling channel. */
enum {
	SIM_F_SIB = 1,       /* a sibling message (copy or carry, type byte first) */
	SIM_F_STATE_REQ,     /* "send me your state" */
	SIM_F_STATE,         /* SIM_F_STATE ‖ a state blob (relm_rel_encode) */
	SIM_F_ADOPT_REQ,     /* a device without state asks for the whole relationship */
	SIM_F_ADOPT          /* the answer: cursor, state, retransmission records (strategy.c) */
};

/* step() when the device crashed inside the step. */
enum { SIM_CRASHED = -100000 };

struct sim_ev {
	uint64_t t;
	uint64_t seq;        /* insertion order: ties keep it */
	int type;
	int side, dev;
	intptr_t arg;
};

/* A post on its way to, or stored in, a side's mailbox. */
struct sim_mail {
	uint8_t *buf;
	size_t len;
	int to;
};

/* A side's relationship mailbox: an append-only log. */
struct sim_box {
	struct sim_mail *v;
	size_t n, cap;
};

struct sim_frame {
	uint8_t *buf;
	size_t len;
	int kind;            /* SIM_F_* */
	uint64_t avail;      /* readable from (world time) */
};

/* One ordered pair of siblings: frames in order. */
struct sim_chan {
	struct sim_frame *v;
	size_t n, cap;
};

/* Committed, not yet posted. */
struct sim_post {
	int sib;             /* -1: the remote's mailbox, else the sibling's index */
	int kind;
	uint8_t *buf;
	size_t len;
};

/* An envelope this device sealed in the step, with its plaintext (the
 * observe hook), to tell the checker what the remote will see. */
struct sim_obs {
	uint8_t hash[32];
	uint8_t *pt;
	size_t ptlen;
	uint64_t at;
};

/* A history row. */
struct sim_msg {
	uint8_t id[RELM_ID_LEN];
	uint8_t in, origin;
	int kind;
	uint64_t ts;
	uint8_t *body;
	size_t len;
	int delivered, failed;
};

/* A row of the retransmission queue (the store's `outgoing`). */
struct sim_outrec {
	uint8_t id[RELM_ID_LEN];
	uint8_t *body;
	size_t len;
	int kind;
	uint64_t ts;
	uint32_t tries;
	uint64_t next_ms;
	int sibling;
	uint8_t last_node[RELM_ID_LEN];
};

/* A row of the store's `acks`. */
struct sim_ack {
	uint8_t id[RELM_ID_LEN];
	uint8_t dh[RELM_KEY_LEN];
	uint32_t n;
};

/* A row of the store's `pending`. */
struct sim_pend {
	uint8_t hash[RELM_ID_LEN];
	uint8_t *buf;
	size_t len;
	uint64_t t;
};

/* A pending request row (the store's, devices.md §11.5). */
struct sim_req {
	uint8_t id[RELM_ID_LEN];
	uint8_t *buf;                      /* the request message */
	size_t len;
	uint8_t to[RELM_ID_LEN];           /* the device it was last sent to */
	uint64_t next_ms;                  /* device time it goes again */
};

struct sim_world;

struct sim_dev {
	struct sim_world *w;
	int side, idx;
	char name[16];
	struct relm_env env;
	uint64_t clock;                    /* the device's own time (env reads it) */
	int64_t skew, corr;                /* clock = world + skew + corr */
	struct relm_devices devs;
	struct relm_rel *rel;              /* live state */
	uint8_t *saved;                    /* committed state */
	size_t saved_len;
	struct sim_msg *hist;
	size_t nhist, caphist;
	struct sim_outrec *outrec;
	size_t nout, capout;
	struct sim_ack *acks;
	size_t nacks, capacks;
	struct sim_pend *pend;
	size_t npend, cappend;
	struct sim_post *outbox;
	size_t noutbox, capoutbox;
	struct sim_obs *obs;
	size_t nobs, capobs;
	uint8_t (*retry)[RELM_ID_LEN];     /* sends a crash interrupted */
	size_t nretry, capretry;
	int online, down, read_armed;
	int removed;                       /* out of the circle: reads, sends nothing */
	int send_when_online;
	double pace_ms;                    /* how soon it reads after new mail */
	uint64_t tick_at;                  /* the queued timer, 0: none */
	size_t cursor;                     /* in its side's mailbox */
	size_t sib_cursor[SIM_MAX_DEV];    /* in each sibling's channel to it */
	uint64_t dup_deliveries, undecryptable;
	/* strategies (strategy.c): this device's view and what it keeps */
	int strat;                         /* enum relm_strategy it holds */
	int holder;                        /* the device it believes sends (index), -1: none */
	int hub;                           /* fanout's hub in its view (index) */
	int pinned;                        /* leader pinned to a device (index), -1: the lease */
	uint64_t lease_until;              /* world time: the holder in its own view until then */
	uint64_t strat_seq;                /* (seq, by) of the strategy message it adopted */
	int strat_by;
	int state_src;                     /* without state: the device to get it from */
	uint64_t asked_at;                 /* when it last asked for the state (0: never) */
	int was_sender;                    /* it sent, as of its last view */
	struct sim_req *reqs;
	size_t nreqs, capreqs;
	struct sim_mail *stash;            /* copies read while without state (to: from) */
	size_t nstash, capstash;
	int force_send;                    /* --mutate nonleader-sends: this send goes direct */
	uint8_t rel_id[RELM_ID_LEN];       /* the relationship (a device without state too) */
	/* every ours private key the device held, and whether it still does
	 * (forward secrecy: a key gone from the tree must be gone from the
	 * committed state too) */
	struct sim_key {
		uint8_t pub[RELM_KEY_LEN];
		uint8_t priv[RELM_KEY_LEN];
		int held;
	} *keys;
	size_t nkeys, capkeys;
};

/* A message a user typed. */
struct sim_sent {
	uint8_t id[RELM_ID_LEN];
	int side, dev;                     /* typed on device (side, dev) */
	/* B's, after a removal: the ratchet keys of the A nodes on the path of
	 * the node it went on, nearest first (revoke.c) */
	uint8_t apath[8][RELM_KEY_LEN];
	int napath;
	int open_try;                      /* B's, after a removal: an envelope of it reached
	                                    * A on a node whose path holds only A nodes made
	                                    * before (a retry the remote built on an older
	                                    * node: the heal's window, revocation.md §2) */
	uint64_t t;                        /* world time it was typed */
};

/* What one side's remote received (privacy measurements, check.c). */
struct sim_seen {
	uint8_t dh[RELM_KEY_LEN];
	uint32_t n;
	uint8_t nonce[RELM_NONCE_LEN];
	int dev;                           /* the device that sealed it first */
	uint8_t hash[32];                  /* of the envelope */
};

struct sim_remote {
	struct sim_seen *v;
	size_t n, cap;
	uint64_t bad_size, id_leak;
	/* acknowledgements by message id: how often each id was acknowledged */
	struct { uint8_t id[RELM_ID_LEN]; uint32_t count; } *acked;
	size_t nacked, capacked;
};

struct sim_world {
	struct sim_cfg cfg;
	struct sim_result *res;
	uint64_t rng;
	uint64_t now;
	struct sim_ev *ev;
	size_t nev, capev;
	uint64_t evseq;
	struct sim_dev dev[SIM_SIDES][SIM_MAX_DEV];
	struct sim_chan chan[SIM_SIDES][SIM_MAX_DEV][SIM_MAX_DEV];  /* [side][from][to] */
	struct sim_box box[SIM_SIDES];
	struct sim_mail *transit;
	size_t ntransit, captransit;
	uint64_t typed;
	struct sim_sent *sent_ids;
	size_t nsent, capsent;
	uint64_t t0;                       /* the set-up is done: schedules start here */
	uint64_t sched_end;                /* the last scheduled user action ends */
	size_t in_transit;                 /* posts not yet in a mailbox */
	int crashy;                        /* the schedule crashes devices */
	uint64_t partition_until;          /* posts between the protons wait until then */
	int removed;                       /* A's device that left the circle, or -1; it
	                                    * is then no longer counted in cfg.n[0] */
	uint64_t removed_at;
	uint8_t (*before)[RELM_KEY_LEN];   /* A's ratchet keys made before the removal */
	size_t nbefore, capbefore;
	struct sim_remote remote[SIM_SIDES];  /* [s]: what side s sent to the other */
	/* strategies: the send lease on each side's mailbox server, and the
	 * last strategy change made there (its seq) */
	struct { int holder; uint64_t exp; } lease[SIM_SIDES];
	uint64_t strat_seq[SIM_SIDES];
};

/* Make room for one more element of a growing array (abort on no memory). */
#define GROW(v, n, cap) do { \
	if ((n) == (cap)) { \
		(cap) = (cap) ? 2 * (cap) : 16; \
		if (!((v) = realloc((v), (cap) * sizeof *(v)))) \
			abort(); \
	} \
} while (0)

/* world.c, store.c, step.c, net.c */
void sim_trace(struct sim_world *w, const struct sim_dev *d, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
const char *sim_short(const uint8_t *id);
void sim_push(struct sim_world *w, uint64_t t, int type, int side, int dev, intptr_t arg);
/* Every device of side s, a removed one included. */
int sim_devices_all(const struct sim_world *w, int s);
/* d's state changed outside a step: save it and re-arm its timer. */
void sim_dev_saved(struct sim_dev *d);
/* revoke.c: the removal; note a B user message sent (sealed or not); the
 * checks at the end. */
void sim_revoke(struct sim_world *w);
void sim_revoke_note_send(struct sim_dev *d, struct sim_sent *m);
/* revoke.c: d posted env (plaintext pt) and the network did not lose it. */
void sim_revoke_note_post(struct sim_dev *d, const uint8_t *env, size_t len, const uint8_t *pt,
                          size_t ptlen);
void sim_check_revoke(struct sim_world *w);
/* revoke.c: with probability cfg.revoke, schedule the removal; 1 when no
 * device was removed or every remaining one is healed. */
void sim_maybe_revoke(struct sim_world *w);
int sim_revoke_healed(const struct sim_world *w);
void sim_dev_clock(struct sim_dev *d);
struct sim_msg *sim_hist_find(struct sim_dev *d, const uint8_t id[RELM_ID_LEN]);
void sim_crash(struct sim_dev *d);
void sim_fail(struct sim_world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sim_event(struct sim_world *w);
void sim_world_init(struct sim_world *w, const struct sim_cfg *cfg, struct sim_result *res);
void sim_world_free(struct sim_world *w);
void sim_world_pair(struct sim_world *w);
/* Print every device's tree (a failing schedule's trace ends with it). */
void sim_dump_trees(struct sim_world *w);
/* The user of d types a message now (an id from the world). */
void sim_type_now(struct sim_world *w, struct sim_dev *d);

/* Run one engine step on d (step.c).  Returns the engine's code, or
 * SIM_CRASHED when the device crashed in it. */
int sim_step(struct sim_dev *d, int kind, const uint8_t *buf, size_t len, const uint8_t *from,
             uint8_t *id_out);
/* d's committed state is new (adopted or wiped): save it, re-arm its timer. */
void sim_dev_replace(struct sim_dev *d, struct relm_rel *rel);
/* Queue a post on d's outbox: to the remote (sib < 0) or to sibling sib. */
void sim_outbox_add(struct sim_dev *d, int sib, int kind, const uint8_t *buf, size_t len);
/* d sends sibling `to` its state (SIM_F_STATE: a repair, merged there). */
void sim_send_state(struct sim_dev *d, int to);
/* d reads what it can, soon (at its pace). */
void sim_want_read(struct sim_dev *d);
/* Post d's outbox if it is on line. */
void sim_pump(struct sim_dev *d);
/* The index of d's sibling with device id `id`, or -1. */
int sim_dev_index(const struct sim_dev *d, const uint8_t id[RELM_ID_LEN]);

/* Between the world's files (world.c: clock, randomness, events, set-up;
 * store.c: a device's committed state; step.c: steps, timers, crashes;
 * net.c: the network and reading). */
int sim__chance(struct sim_world *w, double p);            /* 1 with probability p */
uint8_t *sim__dup_bytes(const uint8_t *p, size_t n);       /* a copy (never NULL) */
/* Device time → world time (its timers are in its own clock). */
uint64_t sim__world_time(const struct sim_dev *d, uint64_t dev_t);
/* d's env reads its history (and the world sees what it seals). */
void sim__store_init(struct sim_dev *d);
/* d's state as committed now; back to the last commit (a crash). */
void sim__commit(struct sim_dev *d);
void sim__restore(struct sim_dev *d);
/* A committed step's effects, on d's store and outbox. */
void sim__apply_effects(struct sim_dev *d, struct relm_effects *fx);
/* Which ours private keys d holds now, and which it no longer does. */
void sim__note_keys(struct sim_dev *d);
/* Arm d's timer at its engine's deadline. */
void sim__schedule_tick(struct sim_dev *d);
/* The user of d types message id. */
void sim__user_send(struct sim_dev *d, const uint8_t *id);
/* d reads everything readable on its mailbox and sibling channels. */
void sim__read_all(struct sim_dev *d);

/* strategy.c (proto/devices.md §11; cfg.strategy) */
void sim_strat_start(struct sim_world *w);
/* Set d->devs.strategy / holder from d's view (before every step). */
void sim_strat_view(struct sim_dev *d);
/* The user of d typed: 1 when it became a request (done here). */
int sim_strat_send(struct sim_dev *d, const uint8_t id[RELM_ID_LEN]);
/* An engine step of the strategies (kind SIM_ST_REQUEST …). */
int sim_strat_engine(struct sim_dev *d, int kind, const uint8_t *buf, size_t len, uint8_t *id_out,
                     struct relm_effects *fx);
/* A committed step's REQ_PUT / REQ_DEL / SIB_TO. */
void sim_strat_fx(struct sim_dev *d, const struct relm_fx *f);
/* Before d's step commits: the leader invariant (only the holder posts). */
void sim_strat_posting(struct sim_dev *d, const struct relm_effects *fx);
/* A sibling frame for d from sibling `from`: 1 when handled here (*rc: the
 * step's code). */
int sim_strat_frame(struct sim_dev *d, int from, const struct sim_frame *f, int *rc);
void sim_strat_event(struct sim_world *w, const struct sim_ev *e);
/* d is back on line or restarted. */
void sim_strat_wake(struct sim_dev *d);
/* 1 when d owes nothing of the strategies (no pending request, state held
 * when it needs it, nothing stashed to replay). */
int sim_strat_quiet(const struct sim_dev *d);
void sim_strat_free(struct sim_dev *d);
void sim_check_strat(struct sim_world *w);

/* check.c */
/* d posts an envelope to the remote: record what the remote learns. */
void sim_record_remote(struct sim_world *w, const struct sim_dev *d, const uint8_t *env, size_t len,
                       const uint8_t *pt, size_t ptlen, uint64_t sealed_at);
void sim_remote_free(struct sim_world *w);
/* After the drain: the invariants, convergence and the metrics into w->res. */
void sim_check(struct sim_world *w);
/* 1 when both sides' devices choose one chain; else 0 and why. */
int sim_converged(struct sim_world *w, char *why, size_t n);

#endif

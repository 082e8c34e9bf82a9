/*
 * app_int.h — what the two files of relmd's application share (app.h is
 * the contract for everyone else):
 *
 *   app.c        the mailbox clients, the outbox pump, the timer, events,
 *                the hooks of the daemon shell
 *   app_lease.c  the send lease and the strategy timer (devices.md §11)
 *   app_store.c  the store's health: opening (and reopening) it, the full
 *                disk (writes refused, reads served, retried with backoff
 *                until the disk takes them), and rows that fail their
 *                check (logged and recorded once each)
 */
#ifndef RELMD_APP_INT_H
#define RELMD_APP_INT_H

#include <stdint.h>
#include <uv.h>

#include "relmd/app.h"
#include "api/handlers.h"
#include "engine/env.h"
#include "engine/event.h"
#include "limits.h"

struct relm_store;
struct relm_core;
struct relm_core_ack;
struct relm_mbox_client;
struct relm_mbox_server;

enum relmd_app_limits {
	APP_INFLIGHT_MAX = 4096,   /* posts handed to clients, not yet acked: bounds client queues */
	APP_PUMP_BATCH   = 512,    /* outbox rows read per pump */
	APP_PEERS_MAX    = 64,     /* mailbox servers we talk to at once */
	APP_TIMER_MAX_MS = 60000,  /* re-check deadlines at least every minute */
	APP_RETRY_MIN_MS = 1000,   /* a full disk: the first retry of a write after 1 s, */
	APP_RETRY_MAX_MS = 60000,  /* doubling up to a minute (a log line each, not a flood) */
	APP_BAD_ROWS_MAX = 1024,   /* damaged rows remembered as reported; beyond, reported again */
	APP_PURGE_SLICE  = 512,    /* posted outbox rows deleted per loop turn (about a millisecond) */
	APP_PURGE_GAP_MS = 5,      /* between two slices, while rows remain: other work goes first */
};

struct inflight {
	uint64_t post_id;          /* 0: acknowledged out of order, waiting to be popped */
	int64_t seq;
	uint8_t rel[RELM_ID_LEN], msg[RELM_ID_LEN];
	int has_rel, has_msg;
};

/* Posts handed to a peer's client and not acknowledged yet, oldest first.
 * The client numbers posts in the order we hand them over and the server
 * acknowledges in that order, so an ack is nearly always the head: a ring
 * makes it O(1) (a flat array shifted on each ack cost O(window) per ack),
 * and the ids being increasing make any other one a binary search. */
struct peer {
	struct relmd_app *app;
	char hostport[RELMD_ADDR_MAX];
	struct relm_mbox_client *c;
	int connected;
	struct inflight *q;        /* ring: q[(head + i) % cap], i < len */
	size_t head, len, cap;
};

/* One per subscription: the signing callback's argument. */
struct sub {
	struct relmd_app *app;
	uint8_t id[RELM_SIGN_PK_LEN];
	struct sub *next;
};

/* A damaged row, as reported (table and row, or the ids for a table
 * without row numbers). */
struct bad_row {
	char table[RELM_EVENT_TABLE_MAX + 1];
	uint64_t row;
	uint8_t a[RELM_ID_LEN], b[RELM_ID_LEN];
};

/* The store's condition (app_store.c):
 *
 *   OK ──commit (or a step) fails: disk full──► FULL ──a probe write
 *    ▲                                           │ ▲   succeeds──► OK
 *    └───────────────────────────────────────────┘ └─fails: retry later
 *
 *   OK    writes go through the turn's batch.
 *   FULL  the handle was reopened (reads are served from what is
 *         committed); every write is refused with RELM_EDISKFULL before
 *         it starts; envelopes delivered meanwhile are dropped unread (the
 *         store's cursors did not move: the mailbox delivers them again
 *         after the rewind), acknowledged posts not recorded (posted again
 *         after), timers not run (their deadlines are stored). */
enum app_store_state {
	APP_STORE_OK = 0,
	APP_STORE_FULL,
};

struct relmd_app {
	struct relmd *d;
	struct relmd_config cfg;
	struct relm_env env;
	struct relm_store *st;
	struct relm_core *core;
	struct relm_mbox_server *server;
	struct relmd_api_backend api;   /* what the API handlers reach us through */
	char mailbox_host[RELMD_ADDR_MAX]; /* where our mailboxes live, spelt as lib/wire/addr.h does */
	struct peer *peers[APP_PEERS_MAX];
	size_t npeers;
	struct peer *home;              /* the server our mailboxes live on */
	uint64_t mbox_turn_ns;          /* every client's frames this turn: one budget (mailbox_client.h) */
	uv_timer_t timer;
	int timer_init;
	uv_timer_t lease_timer;         /* app_lease.c: every lease TTL / 3 */
	int lease_init;
	int batch;                      /* a store batch is open this turn */
	int dirty;                      /* post-commit work is due even without a batch */
	int64_t outbox_after;           /* last outbox seq handed to a client */
	size_t ninfl;                   /* live entries over every peer's ring */
	int64_t events_last;            /* last store event published */
	unsigned published;             /* events recorded by this commit's publish */
	uint8_t (*watch)[RELM_SIGN_PK_LEN];
	size_t nwatch, capwatch;
	struct sub *subs;
	int closing;
	int closes;                     /* handles still closing */
	uint64_t purge_at;              /* next outbox purge (uv_now) */
	int purge_more;                 /* the last slice was full: posted rows remain */

	/* the store's health (app_store.c) */
	enum app_store_state store_state;
	uint64_t full_since;            /* wall clock, ms */
	uint64_t retry_at;              /* wall clock, ms, of the next probe */
	unsigned retry_ms;              /* the current backoff */
	uv_timer_t retry;
	int retry_init;
	int64_t turn_posted_min;        /* lowest outbox seq marked posted in the open batch (0: none) */
	struct relm_core_ack *acks;     /* acknowledged posts of this turn, not recorded yet (app.c acks_flush) */
	size_t nacks, capacks;
	int64_t repump_from;            /* lowest outbox seq whose posted mark was lost (0: none) */
	int rewind;                     /* deliveries were dropped: resubscribe from the stored cursors */
	struct bad_row *bad;            /* damaged rows reported: each once */
	size_t nbad, capbad;
	unsigned bad_total;             /* reported since start (daemon.status corrupt_rows) */
	struct relm_event *bad_queue;   /* store.corrupt_row records not in the log yet */
	char (*bad_reason)[RELM_EVENT_REASON_MAX + 1];
	size_t nqueue, capqueue;
	/* app.c's, called by app_store.c when the disk takes writes again
	 * (a pointer: app_store.c depends on nothing of app.c) */
	void (*resume)(struct relmd_app *app);
	/* app.c's, for app_lease.c (pointers, for the same reason): open the
	 * turn's batch before a write (0, RELM_EDISKFULL or the store's
	 * error); a step of the turn failed with rc, handled as app.c
	 * handles its own */
	int (*txn)(struct relmd_app *app);
	void (*step_failed)(struct relmd_app *app, const char *what, int rc);
};

/* ---- app_lease.c ---- */
/* After the core and the home peer exist: the lease TTL given to the
 * core, the timer started.  stop: leases held given back (best effort),
 * the timer closed with closed. */
void relmd__lease_start(struct relmd_app *app);
void relmd__lease_stop(struct relmd_app *app, uv_close_cb closed);

/* ---- app_store.c (app.c uses it; it uses nothing of app.c) ---- */
/* Open the store (cfg->store_path) and the engine bound to it; the API
 * backend points at them.  0 or a negative code (logged). */
int relmd__store_open(struct relmd_app *app);
void relmd__store_close(struct relmd_app *app);
/* The retry timer (after the loop exists) and its close at stop. */
void relmd__store_start(struct relmd_app *app);
void relmd__store_stop(struct relmd_app *app, uv_close_cb closed);
/* 0 when writes may begin; RELM_EDISKFULL while the disk is full. */
int relmd__store_writable(const struct relmd_app *app);
/* A store call failed with rc (the turn's commit, or a step): when the
 * disk is full, enter FULL (reopen, refuse writes, retry later) and
 * return RELM_EDISKFULL — the turn is lost, relmd goes on; else return
 * rc, which stops relmd. */
int relmd__store_failed(struct relmd_app *app, int rc, const char *what);
/* store.corrupt_row records waiting for the log go into the open batch
 * (the caller opened it; before the turn's commit).  0 or the store's
 * error. */
int relmd__store_report_rows(struct relmd_app *app);
/* daemon.status */
void relmd__store_status(void *ctx, struct relmd_store_status *out);

#endif

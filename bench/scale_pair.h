/*
 * scale_pair.h — bench_scale's two daemons and the mailbox network between
 * them: each daemon a store, a core and an env on one virtual clock, and
 * outbox rows of one carried into the other as a mailbox server would.
 * Shared by the build of the stores (scale_build.c) and the measurements
 * (bench_scale.c); every failure is fatal (die), as fits a benchmark.
 */
#ifndef RELM_BENCH_SCALE_PAIR_H
#define RELM_BENCH_SCALE_PAIR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "wire/addr.h"
#include "core/core.h"
#include "engine/env.h"
#include "error.h"
#include "store/store.h"

enum {
	TICK_STEP_MS   = 2100,      /* > RELM_RECEIPT_DELAY_MAX_MS: receipts fire */
};

extern uint64_t g_clock;        /* virtual clock of both daemons */
extern unsigned g_open_flags;   /* --nocheck: RELM_STORE_F_NOCHECK (what-if) */

/* Print "bench_scale: " and the message to stderr, exit(1). */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define CHECK(call) do { int rc_ = (call); \
	if (rc_ != 0) die("%s:%d: %s: %s", __FILE__, __LINE__, #call, relm_strerror(rc_)); } while (0)

double now_s(void);                           /* monotonic seconds */
void env_random(void *ctx, uint8_t *buf, size_t len);
uint64_t env_now(void *ctx);                  /* g_clock */
void mkdir_p(const char *path, mode_t last_mode);

/* ---- a daemon: store + core + env ------------------------------------------ */

struct daemon {
	char dir[4096];
	char path[4200];
	const char *host;
	struct relm_store *st;
	struct relm_core *core;
	struct relm_env env;
	uint8_t proton[RELM_ID_LEN];
};

/* Names d's directory base/name and its store base/name/relm.db. */
void daemon_init(struct daemon *d, const char *base, const char *name, const char *host);
/* Opens d's store and core; d->proton is its first proton (zero if none). */
void daemon_open(struct daemon *d);
void daemon_close(struct daemon *d);

/* ---- the mailbox network: outbox rows of one daemon into the other ------- */

struct orow {
	int64_t seq;
	uint8_t rel[RELM_ID_LEN], msg[RELM_ID_LEN];
	int has_rel, has_msg;
	char dest[RELM_MAILBOX_ADDR_MAX + 1];
	uint8_t *buf;
	size_t len;
};

struct orows {
	struct orow *v;
	size_t n, cap;
};


/* relm_store_outbox_next callback: copies each row into a struct orows. */
int orow_cb(void *ctx, const struct relm_store_outbox *o);
void orows_free(struct orows *l);
/* Deliver one envelope to `to` on `mailbox` at the next position. */
void deliver(struct daemon *to, const uint8_t mailbox[RELM_SIGN_PK_LEN],
             const uint8_t *buf, size_t len);
/* Post every queued outbox row of `from` to `to`.  Returns how many. */
size_t pump(struct daemon *from, struct daemon *to);
/* Run every timer due now. */
void tick_all(struct daemon *d);
/* Delete posted outbox rows, as relmd does. */
void purge(struct daemon *d);
void batch_begin(struct daemon *a, struct daemon *b);
void batch_commit(struct daemon *a, struct daemon *b);
/* Pump both ways, moving the clock so receipts fire, until quiet. */
void settle(struct daemon *a, struct daemon *b);

/* ---- relationship ids ---------------------------------------------------------- */

struct idlist {
	uint8_t (*id)[RELM_ID_LEN];
	size_t n, cap;
};

void idlist_push(struct idlist *l, const uint8_t id[RELM_ID_LEN]);
/* relm_store_rel_list callback: appends each id to a struct idlist. */
int rel_list_cb(void *ctx, const struct relm_store_rel *r);

#endif

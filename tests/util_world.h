/*
 * util_world.h — whole daemons (store + core) in one process, joined by an
 * in-memory mailbox network, driven only through lib/core/core.h.  Each daemon
 * has its own store file in a temporary folder, its own seeded env stream,
 * and a shared virtual clock.  The network keeps every envelope ever posted
 * per mailbox with sequence numbers, like relm-mailbox does, so a daemon
 * reads from its stored cursor exactly as relmd will.
 */
#ifndef RELM_TESTS_UTIL_WORLD_H
#define RELM_TESTS_UTIL_WORLD_H

#include <stddef.h>
#include <stdint.h>
#include "core/core.h"
#include "store/store.h"
#include "wire/successor.h"

struct tu_mail {
	uint8_t mailbox[RELM_SIGN_PK_LEN];
	uint64_t seq;
	uint8_t *buf;
	size_t len;
};

struct tu_net {
	struct tu_mail *v;
	size_t n, cap;
	size_t drop_next;          /* drop this many of the next posts (loss) */
	/* Optional (NULL: memory only): tu_pump calls it for each mail once
	 * it is in v, before relm_core_outbox_posted — a mailbox acks only what
	 * it holds durably (tests/check_crash.c appends to a file).  A nonzero
	 * return fails the pump with that code, the row left unposted. */
	int (*on_post)(void *ctx, const struct tu_mail *m);
	void *post_ctx;
};

struct tu_daemon {
	char dir[256];
	char path[300];
	char host[64];
	struct relm_store *st;
	struct relm_core *core;
	struct relm_env env;
	uint64_t *clock;
	uint64_t stream;
	int64_t outbox_after;
};

/* Make a fresh folder under $TMPDIR (or /tmp) for a daemon. */
void tu_daemon_mkdir(struct tu_daemon *d, const char *name);
/* Open (or reopen after a crash) the daemon's store and core. */
int tu_daemon_open(struct tu_daemon *d, uint64_t *clock, uint64_t stream, const char *host);
void tu_daemon_close(struct tu_daemon *d);
/* Remove its folder. */
void tu_daemon_rmdir(struct tu_daemon *d);

/* Post every committed, unposted outbox row of d to the network. */
int tu_pump(struct tu_daemon *d, struct tu_net *net);
/* Feed d every envelope of its mailboxes past its cursors. */
int tu_deliver(struct tu_daemon *d, struct tu_net *net);
/* Pump and deliver among all daemons until quiet, ticking with the clock
 * moving by step_ms each round, at most rounds rounds. */
void tu_settle(struct tu_daemon **ds, size_t n, struct tu_net *net, int rounds, uint64_t step_ms);

void tu_net_free(struct tu_net *net);

/* Count rows of history of one relationship with the given direction. */
int tu_history_count(struct tu_daemon *d, const uint8_t rel[RELM_ID_LEN], int in);

/* The successor statement (binary) of the last identity message st's
 * history of rel holds as sent; asserts there is one. */
void tu_sent_statement(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                       uint8_t out[RELM_SUCCESSOR_LEN]);

#endif

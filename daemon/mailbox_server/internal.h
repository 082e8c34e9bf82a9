/*
 * internal.h — what the files of the mailbox server share (not part of the
 * library's interface, mailbox_server.h).  They depend on each other one
 * way, from the top (tests/test_layering.sh):
 *
 *   mailbox_server.c  lifecycle, the listener and its caps, the requests
 *                     POST and LEASE, the group commit, notifications from
 *                     other instances, timers; owns the connections
 *                     (struct mbs_conn_owner) and hands subscription
 *                     requests to mbs_subs.c
 *   mbs_subs.c        subscriptions: the server-wide table, SUBSCRIBE and
 *                     SUBSCRIBE_BATCH, delivery (live and from the store)
 *   mbs_conn.c        one client connection (mbs_conn.h): its state
 *                     machine, reading, output, the handshake; it reports
 *                     to its owner through function pointers only
 *   store.h           the storage interface; store_sqlite.c, store_pg.c
 *
 * Names shared between these files begin with mbs_ (mailbox server).
 */
#ifndef RELM_MBOX_SERVER_INTERNAL_H
#define RELM_MBOX_SERVER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mailbox_server/mailbox_server.h"
#include "mailbox_server/mbs_conn.h"
#include "mailbox_server/store.h"
#include "wire/mailbox_proto.h"

enum {
	MBS_CLOSING_GRACE_MS = 2000, /* a closing peer gets this long to take its ERROR */
	MBS_VALID_IDS = 1024,        /* mailbox ids remembered as valid keys: 32 KiB */
	MBS_NOTE_RING = 4096,        /* commits remembered while a lookup is in flight */
};

/* One subscription: a connection reading one mailbox.  In the server-wide
 * table (by mailbox) and in its connection's list. */
struct mbs_sub {
	uint8_t mailbox[RELM_MBOX_ID_LEN];
	uint64_t sent;             /* highest seq delivered (or the cursor) */
	uint32_t wake;             /* bumped whenever the store may hold seq > sent */
	uint32_t gen;              /* bumped by each (re)subscribe: stale fetches are dropped */
	uint8_t dirty;             /* the store may hold seq > sent: the pump reads it */
	uint8_t queued;            /* on the connection's pump queue */
	struct mbs_conn *conn;
	struct mbs_sub *hnext;     /* same table bucket */
	struct mbs_sub *cprev, *cnext;   /* the connection's list */
	struct mbs_sub *qprev, *qnext;   /* the connection's pump queue */
};

/* The server-wide subscription table: chained buckets keyed by a keyed
 * hash of the mailbox (ids are chosen by clients). */
struct mbs_subtab {
	struct mbs_sub **b;
	size_t mask;               /* buckets - 1 (a power of two) */
	size_t n;
	uint8_t key[16];           /* crypto_shorthash key, random per server */
};

struct relm_mbox_server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	uv_timer_t tick;
	uv_timer_t sweep;
	uv_prepare_t commit;
	struct relm_mbox_server_config cfg;
	uint16_t port;
	struct mbs_store *store;
	struct mbs_conn_owner owner;   /* the connections' (owner.conns lists them) */
	struct mbs_post *pend_head, **pend_tail;   /* waiting for the next commit */
	struct mbs_post *in_commit;                /* the batch the store is committing */
	struct mbs_post **sorted;  /* the commit's sorted array */
	size_t sorted_cap;
	int sweeping;
	int sweep_rc;              /* the last sweep's answer */
	int closing;
	int store_closing, store_closed;
	char *db;                  /* cfg.db, copied */
	unsigned open_handles;     /* server-owned handles not yet closed */
	void (*close_cb)(void *arg);
	void *close_arg;
	struct relm_mbox_server_stats stats;
	struct mbs_subtab subs;
	/* Commits (ours and, through the store's notifications, other
	 * instances') while a subscription lookup is in flight: a lookup's
	 * answer can be older than a commit that arrived before it, and the
	 * subscriptions it creates replay these (mbs_subs.c). */
	unsigned lookups;          /* lookups in flight */
	uint64_t notes;            /* commits noted so far */
	struct { uint8_t mailbox[RELM_MBOX_ID_LEN]; uint64_t seq; } note[MBS_NOTE_RING];
	/* Mailbox ids that passed relm_ed25519_is_valid, direct-mapped by their
	 * first bytes.  The check (decompression and a multiplication by the
	 * group order) was ~90 % of the server's instructions per POST, and a
	 * relmd posts to the same few mailboxes over and over.  Validity is a
	 * function of the 32 bytes alone, so a hit needs no check; a colliding
	 * id only evicts. */
	struct {
		uint8_t id[RELM_MBOX_ID_LEN];
		uint8_t used;      /* the all-zero id must not match an empty slot */
	} valid_ids[MBS_VALID_IDS];
};

/* The server a connection belongs to. */
static inline struct relm_mbox_server *mbs_srv(const struct mbs_conn *c)
{
	return container_of(c->owner, struct relm_mbox_server, owner);
}

/* ---- mbs_subs.c ---- */
int mbs_subtab_init(struct mbs_subtab *t);
void mbs_subtab_free(struct mbs_subtab *t);
void mbs_handle_subscribe(struct mbs_conn *c, const struct relm_mbox_subscribe *r);
void mbs_handle_sub_batch(struct mbs_conn *c, const struct relm_mbox_sub_batch *b);
void mbs_handle_unsubscribe(struct mbs_conn *c, const struct relm_mbox_unsub *r);
/* Drop every subscription of c (it is closing). */
void mbs_subs_drop_all(struct mbs_conn *c);
/* Deliver what the store holds for c's dirty subscriptions, while its
 * output queue is short. */
void mbs_pump(struct mbs_conn *c);
/* A commit of ours: v[0..n) sorted by mailbox, seqs assigned. */
void mbs_fanout_commit(struct relm_mbox_server *s, struct mbs_post **v, size_t n);
/* Another instance committed mailbox up to seq. */
void mbs_fanout_notify(struct relm_mbox_server *s, const uint8_t mb[RELM_MBOX_ID_LEN], uint64_t seq);
/* Notifications may have been lost: every subscription reads again. */
void mbs_wake_all(struct relm_mbox_server *s);

#endif

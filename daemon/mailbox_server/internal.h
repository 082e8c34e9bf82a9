/*
 * internal.h — what the files of the mailbox server share (not part of the
 * library's interface, mailbox_server.h):
 *
 *   mailbox_server.c  lifecycle, the listener and its caps, the group
 *                     commit, notifications from other instances, timers
 *   conn.c            one client connection: its state machine, reading,
 *                     output, and the requests that are not subscriptions
 *   subs.c            subscriptions: the server-wide table, SUBSCRIBE and
 *                     SUBSCRIBE_BATCH, delivery (live and from the store)
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
#include "mailbox_server/store.h"
#include "wire/mailbox_proto.h"

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#endif

enum {
	MBS_RBUF_INITIAL = 4096,
	MBS_CLOSING_GRACE_MS = 2000, /* a closing peer gets this long to take its ERROR */
	MBS_VALID_IDS = 1024,        /* mailbox ids remembered as valid keys: 32 KiB */
	MBS_NOTE_RING = 4096,        /* commits remembered while a lookup is in flight */
};

/*
 * A connection's states (conn.c, mbs_conn_enter):
 *
 *   NONE --accepted--> HELLO --HELLO ok--> READY
 *     |                  |                   |
 *     |                  +--fatal ERROR--+---+--fatal ERROR--> CLOSING
 *     |                  |               |                       |
 *     +------------------+---------------+-- EOF, failure, ------+--> CLOSED
 *                                            timeout, shutdown
 *
 *   NONE     allocated, not yet accepted; nothing is read or written.
 *   HELLO    accepted; only HELLO is accepted; no nonce has been sent.
 *   READY    nonce sent (and, in version 2, the exchange key); requests are
 *            rate-limited and served; subscriptions may exist.
 *   CLOSING  a fatal ERROR is queued: reads stopped, nothing new is queued,
 *            the output drains, then CLOSED (or after a grace period).
 *   CLOSED   uv_close issued: no output; its subscriptions are served no
 *            more and are freed by the close callback; the struct is freed
 *            once that has run and no store request refers to it (refs == 0).
 * Every other transition aborts: it would be a bug, not bad input.
 */
enum mbs_conn_state {
	MBS_CONN_NONE = 0,
	MBS_CONN_HELLO,
	MBS_CONN_READY,
	MBS_CONN_CLOSING,
	MBS_CONN_CLOSED,
};

struct mbs_conn;

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

struct mbs_wreq {
	uv_write_t req;
	struct mbs_conn *conn;
	size_t len, cap;
	uint8_t data[];
};

struct mbs_conn {
	uv_tcp_t tcp;
	uv_shutdown_t shutdown_req;
	struct relm_mbox_server *srv;
	struct mbs_conn *prev, *next;
	enum mbs_conn_state state;
	uint8_t version;           /* negotiated (READY) */
	uint8_t nonce[RELM_MBOX_NONCE_LEN];
	uint8_t kx_sk[32], kx_pk[RELM_MBOX_KX_LEN];  /* version 2 registrations; wiped at close */
	uint8_t addr[16];          /* the peer's address as the per-address cap counts it */
	uint8_t *rbuf;
	size_t rcap, rlen;
	int reading;
	int in_process;            /* conn_process is running */
	unsigned refs;             /* store requests in flight that point here */
	unsigned blocked;          /* a request whose answer must come before later frames' */
	int closed_cb_done;        /* uv_close's callback has run */
	uint64_t accepted_at, last_rx, frame_started, write_progress, closing_since;
	double tokens;
	uint64_t tokens_at;
	size_t outq;
	struct mbs_sub *subs;      /* this connection's subscriptions */
	uint32_t nsubs;
	struct mbs_sub *q_head, *q_tail;   /* dirty subscriptions, in turn */
	struct mbs_sub *fetching;  /* the subscription of the fetch in flight (NULL: dropped) */
	uint32_t fetch_gen, fetch_wake;   /* fetching's gen and wake when the fetch began */
	unsigned fetch_rows;
	int in_fetch;              /* a fetch is in flight */
	int in_pump;
	struct mbs_wreq *wout;     /* frames queued in this callback, not yet written */
	struct mbs_conn *dirty_next;   /* on srv->dirty (flushed when the callback ends) */
	int dirty;
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
	struct mbs_conn *conns;
	struct mbs_conn *dirty;    /* connections with a wout to write at release */
	unsigned hold;             /* inside one of our callbacks: output waits for its end */
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
	 * subscriptions it creates replay these (subs.c). */
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

/* ---- mailbox_server.c ---- */
uint64_t mbs_wall_ms(const struct relm_mbox_server *s);
void mbs_hold(struct relm_mbox_server *s);
void mbs_release(struct relm_mbox_server *s);
void mbs_commit_schedule(struct relm_mbox_server *s);
void mbs_maybe_done(struct relm_mbox_server *s);
int mbs_mailbox_is_valid(struct relm_mbox_server *s, const uint8_t mb[RELM_MBOX_ID_LEN]);
/* Remember that mailbox's seqs up to seq are committed (for lookups in flight). */
void mbs_note(struct relm_mbox_server *s, const uint8_t mb[RELM_MBOX_ID_LEN], uint64_t seq);

/* ---- conn.c ---- */
struct mbs_conn *mbs_conn_new(struct relm_mbox_server *s);
void mbs_conn_accepted(struct mbs_conn *c);
/* Start reading an accepted connection: 0 or RELM_ECLOSED. */
int mbs_conn_start(struct mbs_conn *c);
void mbs_conn_enter(struct mbs_conn *c, enum mbs_conn_state to);
void mbs_conn_close(struct mbs_conn *c);
int mbs_conn_send(struct mbs_conn *c, const struct relm_mbox_frame *f);
void mbs_conn_error(struct mbs_conn *c, uint32_t tag, unsigned code, int fatal, const char *text);
void mbs_frame_init(const struct mbs_conn *c, struct relm_mbox_frame *f, uint8_t type);
/* Store requests: a request that points at c takes a reference; one whose
 * answer must precede later frames' also blocks c's reading. */
void mbs_conn_ref(struct mbs_conn *c);
void mbs_conn_unref(struct mbs_conn *c);
void mbs_conn_block(struct mbs_conn *c);
void mbs_conn_unblock(struct mbs_conn *c);
/* READY and not closing: frames may be sent and subscriptions served. */
int mbs_conn_live(const struct mbs_conn *c);

/* ---- subs.c ---- */
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

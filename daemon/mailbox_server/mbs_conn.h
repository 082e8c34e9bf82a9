/*
 * mbs_conn.h — one client connection of the mailbox server: its state
 * machine, reading and framing, coalesced output, and what belongs to the
 * connection itself in the protocol (HELLO and CHALLENGE, the rate limit,
 * the version check, PING, refusing what a server never takes).
 *
 * Who knows whom: the server (mailbox_server.c) accepts connections and
 * handles their requests, the subscriptions (mbs_subs.c) deliver on them;
 * a connection knows neither.  It talks back through the small struct
 * mbs_conn_owner below (a request to handle, a write completed, it is
 * closing, its handle is closed, it is gone) and reads the limits it was
 * given there.  So the server depends on the subscriptions and both on
 * the connection, never the other way round (tests/test_layering.sh); this
 * header does not even see the server's struct.
 *
 * Reading: a per-connection buffer grown up to one maximal frame; the
 * declared length is bounded (relm_mbox_frame_peek) before the buffer
 * grows, so a hostile length costs nothing.  Frames are handled in order.
 * Reading pauses (TCP backpressure) while queued output is above outq_max,
 * until it drains to half, and while a request whose answer must come
 * before later frames' waits for the store (`blocked`: a lookup, a lease —
 * with SQLite the store answers at once and nothing ever waits).
 *
 * Output is coalesced per connection per callback: frames are encoded into
 * the connection's open buffer (`wout`) and every buffer filled during one
 * of the owner's libuv callbacks is handed to libuv in one uv_write when
 * that callback ends (mbs_hold / mbs_release).  `outq` counts the open
 * buffer too, so the read pause, the pump's OUTQ_LOW and the write stall
 * timeout see every byte queued.
 *
 * States (only conn_enter() in mbs_conn.c changes them):
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
 *            rate-limited and handed to owner->request; subscriptions may
 *            exist.
 *   CLOSING  a fatal ERROR is queued: reads stopped, nothing new is queued,
 *            the output drains, then CLOSED (or after a grace period).
 *   CLOSED   uv_close issued: no output; owner->closed runs in the close
 *            callback; the struct is freed once that has run and no store
 *            request refers to it (refs == 0), then owner->gone.
 * Every other transition aborts: it would be a bug, not bad input.
 */
#ifndef RELM_MBOX_SERVER_CONN_H
#define RELM_MBOX_SERVER_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mailbox_server/mailbox_server.h"
#include "wire/mailbox_proto.h"

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#endif

enum {
	MBS_RBUF_INITIAL = 4096,   /* a connection's first read buffer and output buffer */
};

enum mbs_conn_state {
	MBS_CONN_NONE = 0,
	MBS_CONN_HELLO,
	MBS_CONN_READY,
	MBS_CONN_CLOSING,
	MBS_CONN_CLOSED,
};

struct mbs_conn;
struct mbs_sub;
struct mbs_wreq;

/* What a connection needs from whoever owns it.  The owner embeds this
 * (and gets back to itself with container_of); it must outlive every
 * connection made with it.  All calls happen on the loop thread;
 * request and written always inside the owner's output hold (mbs_hold). */
struct mbs_conn_owner {
	uv_loop_t *loop;
	const struct relm_mbox_server_config *cfg;   /* rate, burst, max_subs, outq_max, retention_ms */
	uint8_t realm[RELM_MBOX_REALM_LEN];  /* the store's, sent in CHALLENGE (version 2) */
	struct relm_mbox_server_stats *stats;   /* a connection counts the ERRORs it sends */

	/* Kept by the connections: the owner reads them, never writes. */
	struct mbs_conn *conns;    /* every connection not yet freed, newest first */
	struct mbs_conn *dirty;    /* connections with output to write at the release */
	unsigned hold;             /* inside one of the owner's callbacks: output waits for its end */

	/* A request of a READY connection, decoded and paid for: POST,
	 * SUBSCRIBE, SUBSCRIBE_BATCH, UNSUBSCRIBE or LEASE. */
	void (*request)(struct mbs_conn_owner *o, struct mbs_conn *c, const struct relm_mbox_frame *f);
	/* A write of c completed and c is READY: it may take more output. */
	void (*written)(struct mbs_conn_owner *o, struct mbs_conn *c);
	/* c is closing (mbs_conn_close): forget every pointer to c that holds
	 * no reference (mbs_conn_ref). */
	void (*closing)(struct mbs_conn_owner *o, struct mbs_conn *c);
	/* c's handle is closed (its close callback, never while a walk of the
	 * owner's tables may be on the stack): drop what c still holds.  c's
	 * memory stays until its last reference goes. */
	void (*closed)(struct mbs_conn_owner *o, struct mbs_conn *c);
	/* A connection's handle closed or its memory was freed (conns no
	 * longer lists it): an owner that is shutting down may be done. */
	void (*gone)(struct mbs_conn_owner *o);
};

struct mbs_conn {
	uv_tcp_t tcp;
	uv_shutdown_t shutdown_req;
	struct mbs_conn_owner *owner;
	struct mbs_conn *prev, *next;    /* owner->conns */
	enum mbs_conn_state state; /* only through conn_enter() */
	uint8_t version;           /* negotiated (READY) */
	uint8_t nonce[RELM_MBOX_NONCE_LEN];
	uint8_t kx_sk[32], kx_pk[RELM_MBOX_KX_LEN];  /* version 2 registrations; wiped at free */
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
	struct mbs_wreq *wout;     /* frames queued in this callback, not yet written */
	struct mbs_conn *dirty_next;   /* on owner->dirty (flushed when the callback ends) */
	int dirty;

	/* The owner's; the connection never touches these. */
	uint8_t addr[16];          /* the peer's address as the per-address cap counts it */
	struct mbs_sub *subs;      /* this connection's subscriptions (mbs_subs.c) */
	uint32_t nsubs;
	struct mbs_sub *q_head, *q_tail;   /* dirty subscriptions, in turn */
	struct mbs_sub *fetching;  /* the subscription of the fetch in flight (NULL: dropped) */
	uint32_t fetch_gen, fetch_wake;   /* fetching's gen and wake when the fetch began */
	unsigned fetch_rows;
	int in_fetch;              /* a fetch is in flight */
	int in_pump;
};

/* Allocate a connection (NONE), init its TCP handle on o->loop and list it
 * in o->conns.  NULL on ENOMEM. */
struct mbs_conn *mbs_conn_new(struct mbs_conn_owner *o);
/* The handle holds an accepted socket: NONE → HELLO, the clocks start. */
void mbs_conn_accepted(struct mbs_conn *c);
/* Start reading an accepted connection: 0 or RELM_ECLOSED. */
int mbs_conn_start(struct mbs_conn *c);
/* Close now (idempotent): owner->closing, then uv_close; owner->closed in
 * the close callback, the memory once no reference is left. */
void mbs_conn_close(struct mbs_conn *c);
/* Queue one frame behind those of this callback.  0, or a negative code
 * (RELM_ECLOSED when c no longer takes frames; else c is being closed). */
int mbs_conn_send(struct mbs_conn *c, const struct relm_mbox_frame *f);
/* Send ERROR; if fatal, stop reading and close once it has drained. */
void mbs_conn_error(struct mbs_conn *c, uint32_t tag, unsigned code, int fatal, const char *text);
/* A frame of type, of c's version. */
void mbs_frame_init(const struct mbs_conn *c, struct relm_mbox_frame *f, uint8_t type);
/* Store requests: a request that points at c takes a reference; one whose
 * answer must precede later frames' also blocks c's reading. */
void mbs_conn_ref(struct mbs_conn *c);
void mbs_conn_unref(struct mbs_conn *c);
void mbs_conn_block(struct mbs_conn *c);
void mbs_conn_unblock(struct mbs_conn *c);
/* READY and not closing: frames may be sent and subscriptions served. */
int mbs_conn_live(const struct mbs_conn *c);

/* The owner's callbacks hold the output while they run and release it when
 * they end: every connection that got frames meanwhile is written once.
 * Holds nest. */
void mbs_hold(struct mbs_conn_owner *o);
void mbs_release(struct mbs_conn_owner *o);

#endif

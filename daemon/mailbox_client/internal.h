/*
 * internal.h — what the two files of relmd's mailbox client share:
 * mailbox_client.c (the connection cycle, output, posts, leases) and
 * mbc_subs.c (subscriptions: their index, SUBSCRIBE for version 1 servers,
 * SUBSCRIBE_BATCH with read keys for version 2, and the answers).  Names
 * shared between them begin with mbc_.
 *
 * They depend on each other one way (tests/test_layering.sh): the
 * connection calls the subscriptions by name; the subscriptions reach the
 * connection (send a frame, pace, drop it) only through the three
 * pointers of struct mbc_subs_owner, and share the small helpers below
 * (inline here, so neither file defines them for the other).
 *
 * Connection state machine (the client lives in this cycle until
 * relm_mbox_client_close; every change goes through conn_enter() in
 * mailbox_client.c, which aborts on a transition not drawn here):
 *
 *   WAIT --timer--> RESOLVE --addr--> CONNECT --tcp up--> HELLO --CHALLENGE--> READY
 *    ^  \              |  \              |                  |                    |
 *    |   +--IP literal-|---+-> CONNECT   |                  |                    |
 *    |                 v                 v                  v                    v
 *    +--- backoff -- (failed) ------- DROP <----------------+--------------------+
 *         (RESOLVE -> WAIT when resolving fails; DROP -> WAIT when the socket has
 *          closed, or when a cancelled resolve reports back)
 *
 *   WAIT:    no socket; `timer` is the backoff.
 *   RESOLVE: uv_getaddrinfo in flight (host is not an IP literal).
 *   CONNECT: uv_tcp_connect in flight; `timer` is the connect timeout.
 *   HELLO:   HELLO sent (offering versions 1..2); `timer` still the
 *            connect timeout.
 *   READY:   the server's CHALLENGE known (nonce, version, realm); posts and
 *            subscriptions flow; `timer` paces them by the server's token
 *            bucket; `ping` keeps the connection alive.
 *   DROP:    uv_close(tcp) issued (or a resolve being cancelled); every
 *            sent-but-unacked post is marked unsent, every subscription
 *            unconfirmed and unqueued, every lease failed.  Stays DROP once
 *            the client is closing.
 */
#ifndef RELM_MBOX_CLIENT_INTERNAL_H
#define RELM_MBOX_CLIENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#include <sodium.h>

#include "mailbox_client/mailbox_client.h"

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#endif

enum mbc_state {
	CS_NONE = 0,
	CS_WAIT,
	CS_RESOLVE,
	CS_CONNECT,
	CS_HELLO,
	CS_READY,
	CS_DROP,
};

struct cpost {
	struct cpost *next;
	uint64_t id;
	uint32_t tag;              /* 0: not sent on this connection */
	uint8_t mailbox[RELM_MBOX_ID_LEN];
	size_t len;
	uint8_t env[];
};

enum csub_queue { SQ_NONE = 0, SQ_MAC, SQ_REGISTER };

struct csub {
	uint8_t mailbox[RELM_MBOX_ID_LEN];
	uint64_t cursor;
	uint32_t tag;              /* of the SUBSCRIBE / batch in flight or accepted; 0: not sent */
	uint8_t active;            /* accepted on this connection */
	uint8_t queued;            /* enum csub_queue: waiting to go in a batch */
	uint8_t reg_tried;         /* a registration was sent on this connection */
	uint8_t has_rkey;          /* rkey is the read key for the connection's realm */
	uint8_t rkey[RELM_MBOX_READ_KEY_LEN];   /* wiped when the subscription goes */
	uint8_t *sk;               /* sodium_malloc'd, or NULL with sign */
	relm_mbox_sign_fn sign;
	void *sign_arg;
};

/* A SUBSCRIBE_BATCH in flight: its mailboxes, in order, for the answer. */
struct cbatch {
	struct cbatch *next;
	uint32_t tag;
	uint8_t kind;
	size_t n;
	uint8_t (*mb)[RELM_MBOX_ID_LEN];
};

/* A FIFO of mailbox ids waiting for a batch (subscriptions may go
 * meanwhile: each id is looked up when the batch is built). */
struct cqueue {
	uint8_t (*mb)[RELM_MBOX_ID_LEN];
	size_t head, n, cap;
};

struct clease {
	struct clease *next;
	uint32_t tag;
	relm_mbox_lease_cb cb;
	void *arg;
};

struct cwreq {
	uv_write_t req;
	size_t len, cap;
	uint8_t data[];
};

/* What the subscriptions need from the connection that owns them
 * (mailbox_client.c fills it in; mbc_subs.c never calls the connection by
 * name). */
struct mbc_subs_owner {
	/* Queue one frame (written at once unless corked).  0, or a negative
	 * code after which the connection is being dropped (or was not up). */
	int (*send)(struct relm_mbox_client *c, const struct relm_mbox_frame *f);
	/* Take cost from the pacing bucket; when it is short, arm the pacing
	 * timer (which calls mbc_flush_subs) and return 0. */
	int (*take_tokens)(struct relm_mbox_client *c, uint32_t cost);
	/* Tear the connection down (idempotent); it reconnects unless the
	 * client is closing. */
	void (*drop)(struct relm_mbox_client *c, int reason);
};

struct relm_mbox_client {
	uv_loop_t *loop;
	const struct mbc_subs_owner *owner;   /* for mbc_subs.c */
	uv_tcp_t tcp;
	uv_connect_t connect_req;
	uv_getaddrinfo_t gai;
	uv_timer_t timer;
	uv_timer_t ping;
	enum mbc_state state;
	int tcp_open, gai_busy;
	int closing;
	unsigned open_handles;     /* timer + ping + resume + turn_end */
	void (*close_cb)(void *arg);
	void *close_arg;

	char host[256];
	uint16_t port;
	struct relm_mbox_client_cbs cbs;
	struct relm_mbox_client_config cfg;
	uint32_t backoff_ms;
	int was_up;                /* state callback said "connected" */

	uint8_t version;           /* negotiated (READY) */
	uint8_t nonce[RELM_MBOX_NONCE_LEN];
	uint8_t realm[RELM_MBOX_REALM_LEN], have_realm;   /* version 2: read keys are per realm */
	uint8_t kx_server[RELM_MBOX_KX_LEN];
	uint8_t kx_sk[32], kx_pk[RELM_MBOX_KX_LEN], seal_k[32];
	int have_kx;               /* kx_sk / seal_k made for this connection (wiped at drop) */
	uint32_t rate, burst;
	double tokens;
	uint64_t tokens_at;
	uint64_t last_rx;
	uint32_t next_tag;

	uint8_t *rbuf;
	size_t rcap, rlen;
	uv_idle_t resume;          /* runs parse() next turn when a turn's budget ran out */
	uv_prepare_t turn_end;     /* the end of a loop turn: its budget starts afresh */
	uint64_t turn_used_ns;     /* parse()'s time in this loop turn, every call together */
	int turn_framed;           /* a frame handled this turn: the next waits for the budget */
	int paused;                /* reading stopped: rbuf holds frames for the next turn */

	struct cwreq *wout;        /* frames not yet handed to libuv (this connection) */
	uint64_t writes;           /* write requests handed to libuv, ever */
	unsigned corked;           /* nesting depth; wout is written when it drops to 0 */

	struct cpost *posts, **posts_tail;
	struct cpost *unsent;      /* the first post not sent on this connection (NULL: none) */
	size_t nposts, sent;
	uint64_t next_post_id;

	struct csub *subs;
	size_t nsubs, subs_cap;
	uint32_t *index;           /* open addressing by mailbox: subs index + 1, 0 empty */
	size_t index_mask;
	unsigned index_shift;      /* 64 - log2(slots) */
	uint64_t index_seed;
	struct cqueue q_mac, q_reg;
	struct cbatch *batches, **batches_tail;   /* in flight, oldest first (answers come in order) */

	struct clease *leases;
};

/* ---- shared helpers ---- */

static inline uint32_t mbc_new_tag(struct relm_mbox_client *c)
{
	if (++c->next_tag == 0)
		c->next_tag = 1;
	return c->next_tag;
}

static inline void mbc_frame_init(const struct relm_mbox_client *c, struct relm_mbox_frame *f,
                                  uint8_t type)
{
	memset(f, 0, sizeof(*f));
	f->version = c->state == CS_READY ? c->version : RELM_MBOX_VERSION;
	f->type = type;
}

/* Sign m with sk, or with sign(sign_arg, ...) when sk is NULL. */
static inline int mbc_sign(uint8_t sig[RELM_SIG_LEN], const uint8_t *sk, relm_mbox_sign_fn sign,
                           void *sign_arg, const uint8_t *m, size_t n)
{
	if (sk) {
		crypto_sign_detached(sig, NULL, m, n, sk);
		return 0;
	}
	return sign(sign_arg, sig, m, n);
}

/* ---- mbc_subs.c ---- */
struct csub *mbc_sub_find(const struct relm_mbox_client *c, const uint8_t mb[RELM_MBOX_ID_LEN],
                          size_t *idx);
/* READY: (re)subscribe everything, in batches when the server speaks 2. */
void mbc_subs_ready(struct relm_mbox_client *c);
/* The connection is gone: nothing is in flight or accepted any more. */
void mbc_subs_dropped(struct relm_mbox_client *c);
/* Send what the queues hold, as far as the pacing bucket allows. */
void mbc_flush_subs(struct relm_mbox_client *c);
void mbc_on_subscribed(struct relm_mbox_client *c, const struct relm_mbox_subscribed *s);
void mbc_on_subed_batch(struct relm_mbox_client *c, const struct relm_mbox_subed_batch *b);
/* An ERROR naming a subscription or batch: 1 if it did. */
int mbc_subs_error(struct relm_mbox_client *c, const struct relm_mbox_error *e);
/* Free every subscription (wiping keys) and batch. */
void mbc_subs_free(struct relm_mbox_client *c);

#endif

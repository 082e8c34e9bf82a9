/*
 * mailbox_client.h — relmd's client for one mailbox server
 * (proto/mailbox.md): a connection that keeps itself up, an ordered
 * at-least-once post queue, and any number of subscriptions, each resumed
 * from its own cursor after every reconnect.
 *
 * One client talks to one host:port; relmd keeps one per server it posts to
 * or reads from (federation: a remote's mailbox address names its host).
 *
 * Delivery contract:
 *  - post: envelopes are sent in the order posted; each is retained until
 *    the server acknowledged it (after its commit), and re-sent from the
 *    first unacknowledged one after a reconnect.  So every envelope reaches
 *    the server at least once, possibly twice: receivers de-duplicate (the
 *    engine does, by message id).  The posted callback reports each ack with
 *    the server's seq, or a permanent refusal.
 *  - subscribe: deliveries come in seq order per mailbox, each seq at most
 *    once per client lifetime (seqs ≤ the cursor are dropped).  To a
 *    version 2 server, subscriptions go in batches of up to 1024 per frame,
 *    each proven by a MAC under its read key, registered once per mailbox
 *    and server with a signature (proto/mailbox.md §5.7); a version 1
 *    server gets one signed SUBSCRIBE per mailbox.  Either way they are
 *    paced by the server's token bucket, like posts.  The client
 *    advances its in-memory cursor before calling back; the caller persists
 *    its own cursor (in the same transaction as processing, proto/store.md §2) and
 *    passes it to relm_mbox_client_subscribe() after its own restart.
 *
 * Callbacks may call any function of this API, including
 * relm_mbox_client_close().  All memory is freed in libuv close callbacks.
 */
#ifndef RELM_MAILBOX_CLIENT_H
#define RELM_MAILBOX_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "wire/mailbox_proto.h"

struct relm_mbox_client;

/* Signs msg (len bytes) with the mailbox's Ed25519 secret key.  Returns 0
 * or a negative code (the request then fails with that code). */
typedef int (*relm_mbox_sign_fn)(void *arg, uint8_t sig[RELM_SIG_LEN],
                                 const uint8_t *msg, size_t len);

struct relm_mbox_client_cbs {
	void *arg;
	/* Connected (after the server's CHALLENGE: posts and subscriptions are
	 * being sent) or disconnected with reason (a negative code: -errno /
	 * libuv code, RELM_ETIMEOUT, RELM_EPROTO, or what a fatal ERROR maps
	 * to).  "Disconnected" is reported once after each "connected" (failed
	 * attempts while down are not reported); reconnect attempts follow with
	 * exponential backoff and jitter. */
	void (*state)(void *arg, int connected, int reason);
	/* Post post_id was committed as seq (err 0), or refused for good (err <
	 * 0, seq 0: bad mailbox, too big).  Called exactly once per post unless
	 * the client is closed first. */
	void (*posted)(void *arg, uint64_t post_id, const uint8_t mailbox[RELM_MBOX_ID_LEN],
	               uint64_t seq, int err);
	/* An envelope; env is valid only during the call. */
	void (*deliver)(void *arg, const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t seq,
	                const uint8_t *env, size_t len);
	/* Optional: a subscription was accepted (err 0; head/oldest as in
	 * SUBSCRIBED) — once per connection — or refused (err < 0: bad
	 * signature, bad mailbox, too many; the subscription is then removed). */
	void (*subscribed)(void *arg, const uint8_t mailbox[RELM_MBOX_ID_LEN], int err,
	                   uint64_t head, uint64_t oldest);
	/* Optional: the read key of mailbox for realm (relm_mbox_read_key(),
	 * proto/mailbox.md §5.7), for subscriptions made with a sign callback
	 * instead of a key.  With it, a version 2 server gets them in batches
	 * (one keyed hash each); without it, or when it fails (non-zero), as
	 * one signed SUBSCRIBE each.  key is wiped by the client when done. */
	int (*read_key)(void *arg, const uint8_t mailbox[RELM_MBOX_ID_LEN],
	                const uint8_t realm[RELM_MBOX_REALM_LEN],
	                uint8_t key[RELM_MBOX_READ_KEY_LEN]);
};

struct relm_mbox_client_config {
	uint32_t backoff_min_ms;     /* RELM_MBOX_BACKOFF_MIN_MS */
	uint32_t backoff_max_ms;     /* RELM_MBOX_BACKOFF_MAX_MS */
	uint32_t connect_timeout_ms; /* TCP connect + HELLO/CHALLENGE */
	uint32_t ping_ms;            /* keepalive period; 0 disables */
	uint32_t post_window;        /* posts in flight */
	/* Frames handled in one loop turn (its resume and all its reads
	 * together; the turn ends at the loop's prepare phase): after one that
	 * ends this many µs after the turn's first, the rest wait in the
	 * buffer (reading paused) for the next turn, so a burst — a receipt
	 * for a thousand messages, a backlog after a reconnect — cannot hold
	 * the loop: the caller's per-turn commit and its other work run in
	 * between.  A client's first frame of a turn is always handled.  0: no limit.
	 * RELM_MBOX_TURN_BUDGET_US by default. */
	uint32_t turn_budget_us;
	/* NULL: the budget is this client's own.  Else the time spent on the
	 * turn's frames is counted here, shared by every client given the
	 * same counter (relmd's, one per mailbox server): one budget a turn,
	 * however many servers sent frames in it. */
	uint64_t *turn_shared_ns;
	/* Highest protocol version to offer (1 or 2); 0: RELM_MBOX_VERSION_MAX. */
	uint8_t max_version;
};

void relm_mbox_client_config_default(struct relm_mbox_client_config *cfg);

/* Create a client for host:port (host: IP literal or DNS name) and start
 * connecting.  cbs is copied; cfg may be NULL.  Returns 0 and *out, or
 * RELM_EINVAL / RELM_ENOMEM.  Close with relm_mbox_client_close(). */
int relm_mbox_client_new(struct relm_mbox_client **out, uv_loop_t *loop,
                         const char *host, uint16_t port,
                         const struct relm_mbox_client_cbs *cbs,
                         const struct relm_mbox_client_config *cfg);

/* Queue env (1..RELM_MBOX_ENVELOPE_MAX bytes, copied) for mailbox.
 * *post_id (may be NULL) receives the id the posted callback will name.
 * Returns 0, RELM_ETOOBIG, RELM_EINVAL (empty, or client closing) or
 * RELM_ENOMEM. */
int relm_mbox_client_post(struct relm_mbox_client *c, const uint8_t mailbox[RELM_MBOX_ID_LEN],
                          const uint8_t *env, size_t len, uint64_t *post_id);

/* Subscribe to mailbox from cursor (deliver seq > cursor), signing each
 * connection's challenge with sk (the Ed25519 secret key, copied into
 * sodium_malloc'd memory and wiped on removal) or, when sk is NULL, with
 * sign(sign_arg, ...).  Subscribing again replaces cursor and signer.
 * Returns 0, RELM_EINVAL (neither/both signers, closing) or RELM_ENOMEM. */
int relm_mbox_client_subscribe(struct relm_mbox_client *c, const uint8_t mailbox[RELM_MBOX_ID_LEN],
                               uint64_t cursor, const uint8_t sk[RELM_SIGN_SK_LEN],
                               relm_mbox_sign_fn sign, void *sign_arg);

/* Stop reading mailbox.  No delivery for it is reported after this returns.
 * Returns 0 or RELM_ENOTFOUND. */
int relm_mbox_client_unsubscribe(struct relm_mbox_client *c, const uint8_t mailbox[RELM_MBOX_ID_LEN]);

/* The client's cursor for mailbox (last seq delivered or the subscribe
 * cursor).  Returns 0 or RELM_ENOTFOUND. */
int relm_mbox_client_cursor(const struct relm_mbox_client *c,
                            const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t *cursor);

/* Lease compare-and-set (proto/mailbox.md §5.6): if the live holder of
 * (mailbox, name) equals expected (all zero: none), make holder the holder
 * for ttl_ms (holder all zero with ttl_ms 0: release).  Signed with sk or
 * sign as for subscribe.  Not retried across reconnects (the caller decides):
 * cb(arg, err, granted, live holder, remaining_ms) is called exactly once —
 * err RELM_ECLOSED if the connection dropped first.
 * Returns 0, RELM_ECLOSED (not connected now), RELM_EINVAL, RELM_ENOMEM. */
typedef void (*relm_mbox_lease_cb)(void *arg, int err, int granted,
                                   const uint8_t holder[RELM_MBOX_TOKEN_LEN],
                                   uint32_t remaining_ms);
int relm_mbox_client_lease(struct relm_mbox_client *c, const uint8_t mailbox[RELM_MBOX_ID_LEN],
                           const char *name, size_t name_len,
                           const uint8_t expected[RELM_MBOX_TOKEN_LEN],
                           const uint8_t holder[RELM_MBOX_TOKEN_LEN], uint32_t ttl_ms,
                           const uint8_t sk[RELM_SIGN_SK_LEN],
                           relm_mbox_sign_fn sign, void *sign_arg,
                           relm_mbox_lease_cb cb, void *cb_arg);

/* Batch output: frames queued between cork and the matching uncork (posts,
 * subscribes, ...) are handed to the kernel in one write at the uncork,
 * in order, instead of one write each.  Corks nest; pair them within one
 * callback of yours (an uncork must come before the loop runs again, or
 * the frames wait).  The client corks itself around each of its own
 * callbacks, so what your callbacks queue is batched already. */
void relm_mbox_client_cork(struct relm_mbox_client *c);
void relm_mbox_client_uncork(struct relm_mbox_client *c);

/* 1 when connected (CHALLENGE received), else 0. */
int relm_mbox_client_connected(const struct relm_mbox_client *c);
/* Posts not yet acknowledged. */
size_t relm_mbox_client_unacked(const struct relm_mbox_client *c);
/* Write requests this client has handed to libuv since it was created:
 * one per flush of everything queued (corked) meanwhile. */
uint64_t relm_mbox_client_writes(const struct relm_mbox_client *c);

/* Close the connection, drop queued posts and subscriptions (wiping keys),
 * fail pending leases with RELM_ECLOSED, then call cb(arg) (may be NULL)
 * once every handle is closed, and free c.  No other callback follows.
 * Call once. */
void relm_mbox_client_close(struct relm_mbox_client *c, void (*cb)(void *arg), void *arg);

#endif

/*
 * mailbox_client.c — see mailbox_client.h.
 *
 * Connection state machine (the client lives forever in this cycle until
 * relm_mbox_client_close):
 *
 *   WAIT --timer--> RESOLVE --addr--> CONNECT --tcp up--> HELLO --CHALLENGE--> READY
 *    ^                 |                 |                  |                    |
 *    +---- backoff ----+---- DROP <------+------------------+--------------------+
 *                        (tcp closing; on close: WAIT with the next backoff)
 *
 *   WAIT:    no socket; `timer` is the backoff.
 *   RESOLVE: uv_getaddrinfo in flight (host is not an IP literal).
 *   CONNECT: uv_tcp_connect in flight; `timer` is the connect timeout.
 *   HELLO:   HELLO sent; `timer` still the connect timeout.
 *   READY:   nonce known; posts and subscriptions flow; `timer` paces posts
 *            by the server's advertised token bucket; `ping` keeps alive.
 *   DROP:    uv_close(tcp) issued; every sent-but-unacked post is marked
 *            unsent, every subscription unconfirmed, every lease failed.
 *
 * Posts are one FIFO; `sent` counts how many at its front have been sent on
 * this connection.  The server acknowledges in order, but we match by tag
 * anyway so that an ERROR for one post cannot misattribute the rest.
 *
 * Output is coalesced: frames are encoded into one open buffer (`wout`)
 * while the client is "corked" — during each of our own libuv callbacks,
 * and between relm_mbox_client_cork/uncork — and the buffer goes to the
 * kernel in one uv_write when the outermost cork is released.  Uncorked,
 * a frame is written at once, as before.  So a read callback carrying 200
 * acks that frees the window for 200 posts costs one write(2), not 200,
 * and no frame ever waits for a timer or another loop turn.  Frames keep
 * their order (one buffer, appended in order; buffers are written in
 * order), and the bytes in flight are still bounded by the post window.
 */
#include "mailbox_client/mailbox_client.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/crypto.h"
#include "error.h"
#include "log.h"

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#endif

enum cstate {
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

struct csub {
	uint8_t mailbox[RELM_MBOX_ID_LEN];
	uint64_t cursor;
	uint32_t tag;              /* tag of the SUBSCRIBE in flight / accepted */
	int active;                /* SUBSCRIBED seen on this connection */
	uint8_t *sk;               /* sodium_malloc'd, or NULL with sign */
	relm_mbox_sign_fn sign;
	void *sign_arg;
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

struct relm_mbox_client {
	uv_loop_t *loop;
	uv_tcp_t tcp;
	uv_connect_t connect_req;
	uv_getaddrinfo_t gai;
	uv_timer_t timer;
	uv_timer_t ping;
	enum cstate state;
	int tcp_open, gai_busy;
	int closing;
	unsigned open_handles;     /* timer + ping + resume */
	void (*close_cb)(void *arg);
	void *close_arg;

	char host[256];
	uint16_t port;
	struct relm_mbox_client_cbs cbs;
	struct relm_mbox_client_config cfg;
	uint32_t backoff_ms;
	int was_up;                /* state callback said "connected" */

	uint8_t nonce[RELM_MBOX_NONCE_LEN];
	uint32_t rate, burst;
	double tokens;
	uint64_t tokens_at;
	uint64_t last_rx;
	uint32_t next_tag;

	uint8_t *rbuf;
	size_t rcap, rlen;
	uv_idle_t resume;          /* runs parse() next turn when a turn's budget ran out */
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

	struct clease *leases;
};

static void drop(struct relm_mbox_client *c, int reason);
static void maybe_done(struct relm_mbox_client *c);
static void flush_posts(struct relm_mbox_client *c);
static void on_timer(uv_timer_t *t);
static void on_ping(uv_timer_t *t);

void relm_mbox_client_config_default(struct relm_mbox_client_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->backoff_min_ms = RELM_MBOX_BACKOFF_MIN_MS;
	cfg->backoff_max_ms = RELM_MBOX_BACKOFF_MAX_MS;
	cfg->connect_timeout_ms = 10000;
	cfg->ping_ms = RELM_MBOX_PING_MS;
	cfg->post_window = RELM_MBOX_POST_WINDOW;
	cfg->turn_budget_us = RELM_MBOX_TURN_BUDGET_US;
}

static uint32_t new_tag(struct relm_mbox_client *c)
{
	if (++c->next_tag == 0)
		c->next_tag = 1;
	return c->next_tag;
}

/* ---- output ---- */

static void on_write(uv_write_t *req, int status)
{
	struct cwreq *w = container_of(req, struct cwreq, req);
	struct relm_mbox_client *c = container_of((uv_tcp_t *)req->handle, struct relm_mbox_client, tcp);

	free(w);
	if (status < 0 && status != UV_ECANCELED)
		drop(c, status);
}

/* Hand the open buffer to libuv (one write for every frame queued since
 * the last flush).  A failure drops the connection, as a failed write of
 * any single frame did. */
static void out_flush(struct relm_mbox_client *c)
{
	struct cwreq *w = c->wout;
	uv_buf_t b;
	int rc;

	if (!w)
		return;
	c->wout = NULL;
	if (c->state != CS_HELLO && c->state != CS_READY) {
		free(w);   /* connection gone: what it carried is re-sent on the next */
		return;
	}
	b = uv_buf_init((char *)w->data, (unsigned)w->len);
	rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	c->writes++;
	if (rc) {
		free(w);
		drop(c, rc);
	}
}

/* Unsent frames die with their connection (posts are marked unsent and go
 * again after the reconnect, like writes libuv cancels). */
static void out_discard(struct relm_mbox_client *c)
{
	free(c->wout);
	c->wout = NULL;
}

static void cork(struct relm_mbox_client *c)
{
	c->corked++;
}

static void uncork(struct relm_mbox_client *c)
{
	if (c->corked && --c->corked == 0)
		out_flush(c);
}

/* Queue one frame behind the others of this turn; written at once when not
 * corked.  Returns 0, or a negative code after which the connection is
 * being dropped (or was not up). */
static int send_frame(struct relm_mbox_client *c, const struct relm_mbox_frame *f)
{
	size_t n = relm_mbox_frame_size(f);
	struct cwreq *w = c->wout;

	if (!n)
		return RELM_EINVAL;
	if (c->state != CS_HELLO && c->state != CS_READY)
		return RELM_ECLOSED;   /* uv_write on the closing socket failed the same way */
	if (!w || w->cap - w->len < n) {
		size_t cap = w ? w->cap : 0, need = (w ? w->len : 0) + n;
		struct cwreq *nw;

		if (cap < 4096)
			cap = 4096;
		while (cap < need)
			cap *= 2;
		nw = realloc(w, sizeof(*nw) + cap);
		if (!nw) {
			drop(c, RELM_ENOMEM);
			return RELM_ENOMEM;
		}
		if (!w)
			nw->len = 0;
		nw->cap = cap;
		c->wout = w = nw;
	}
	relm_mbox_frame_encode(w->data + w->len, n, f);
	w->len += n;
	if (!c->corked)
		out_flush(c);
	return c->state == CS_HELLO || c->state == CS_READY ? 0 : RELM_ECLOSED;
}

static void frame_init(struct relm_mbox_frame *f, uint8_t type)
{
	memset(f, 0, sizeof(*f));
	f->version = RELM_MBOX_VERSION;
	f->type = type;
}

/* ---- signing ---- */

static int do_sign(uint8_t sig[RELM_SIG_LEN], const uint8_t *sk, relm_mbox_sign_fn sign,
                   void *sign_arg, const uint8_t *m, size_t n)
{
	if (sk) {
		crypto_sign_detached(sig, NULL, m, n, sk);
		return 0;
	}
	return sign(sign_arg, sig, m, n);
}

static int send_subscribe(struct relm_mbox_client *c, size_t i)
{
	struct csub *sb = &c->subs[i];
	struct relm_mbox_frame f;
	uint8_t m[RELM_MBOX_SUB_SIG_INPUT_LEN];
	size_t n;
	int rc;

	frame_init(&f, RELM_MBOX_SUBSCRIBE);
	f.u.subscribe.tag = sb->tag = new_tag(c);
	memcpy(f.u.subscribe.mailbox, sb->mailbox, RELM_MBOX_ID_LEN);
	f.u.subscribe.cursor = sb->cursor;
	sb->active = 0;
	n = relm_mbox_sub_sig_input(m, c->nonce, sb->mailbox, sb->cursor);
	rc = do_sign(f.u.subscribe.sig, sb->sk, sb->sign, sb->sign_arg, m, n);
	if (rc)
		return rc;
	return send_frame(c, &f);
}

static void sub_remove(struct relm_mbox_client *c, size_t i)
{
	if (c->subs[i].sk)
		sodium_free(c->subs[i].sk);
	c->subs[i] = c->subs[--c->nsubs];
}

static struct csub *sub_find(const struct relm_mbox_client *c, const uint8_t mb[RELM_MBOX_ID_LEN],
                             size_t *idx)
{
	for (size_t i = 0; i < c->nsubs; i++)
		if (memcmp(c->subs[i].mailbox, mb, RELM_MBOX_ID_LEN) == 0) {
			if (idx)
				*idx = i;
			return &c->subs[i];
		}
	return NULL;
}

/* ---- posts ---- */

/* Refill the pacing bucket: 80 % of the server's rate and half its burst,
 * so subscribes and pings always have room and we never hit RATE_LIMITED
 * in normal operation. */
static void refill(struct relm_mbox_client *c)
{
	uint64_t now = uv_now(c->loop);
	double cap = c->burst / 2.0;

	c->tokens += (double)(now - c->tokens_at) * c->rate * 0.8 / 1000.0;
	if (c->tokens > cap)
		c->tokens = cap;
	c->tokens_at = now;
}

static void flush_posts(struct relm_mbox_client *c)
{
	struct cpost *p;

	if (c->state != CS_READY)
		return;
	/* the `sent` first posts are out: carry on from the first one that is
	 * not (kept as a pointer: walking the window on each call was
	 * O(window) per post and per ack) */
	while ((p = c->unsent) && c->state == CS_READY && c->sent < c->cfg.post_window) {
		struct relm_mbox_frame f;
		uint32_t cost;

		frame_init(&f, RELM_MBOX_POST);
		memcpy(f.u.post.mailbox, p->mailbox, RELM_MBOX_ID_LEN);
		f.u.post.env = p->env;
		f.u.post.env_len = p->len;
		cost = relm_mbox_cost(relm_mbox_frame_size(&f));
		refill(c);
		if (c->tokens < cost) {
			double need = (cost - c->tokens) * 1000.0 / (c->rate * 0.8);

			/* in READY, `timer` paces posts (on_timer calls us back) */
			uv_timer_start(&c->timer, on_timer, (uint64_t)need + 1, 0);
			return;
		}
		c->tokens -= cost;
		f.u.post.tag = p->tag = new_tag(c);
		if (send_frame(c, &f) != 0)
			return;
		c->sent++;
		c->unsent = p->next;
	}
}

/* Remove the post with this tag among those sent; NULL if none. */
static struct cpost *post_take(struct relm_mbox_client *c, uint32_t tag)
{
	struct cpost **pp = &c->posts, *p;
	size_t i;

	for (i = 0; *pp && i < c->sent; i++, pp = &(*pp)->next) {
		if ((*pp)->tag != tag)
			continue;
		p = *pp;
		*pp = p->next;
		if (c->posts_tail == &p->next)
			c->posts_tail = pp;
		c->sent--;
		c->nposts--;
		return p;
	}
	return NULL;
}

/* ---- input ---- */

static int error_matches(struct relm_mbox_client *c, const struct relm_mbox_error *e)
{
	int err = relm_mbox_err_to_relm(e->code);
	struct cpost *p;
	struct clease **lp;

	if (!e->tag)
		return 0;
	for (size_t i = 0; i < c->nsubs; i++) {
		if (c->subs[i].tag != e->tag)
			continue;
		uint8_t mb[RELM_MBOX_ID_LEN];
		memcpy(mb, c->subs[i].mailbox, RELM_MBOX_ID_LEN);
		if (e->code == RELM_MBOX_E_RATE_LIMITED || e->code == RELM_MBOX_E_STORE) {
			drop(c, err);   /* transient: resubscribed after reconnect */
			return 1;
		}
		sub_remove(c, i);
		if (c->cbs.subscribed)
			c->cbs.subscribed(c->cbs.arg, mb, err, 0, 0);
		return 1;
	}
	for (lp = &c->leases; *lp; lp = &(*lp)->next) {
		struct clease *l = *lp;

		if (l->tag != e->tag)
			continue;
		*lp = l->next;
		l->cb(l->arg, err, 0, NULL, 0);
		free(l);
		return 1;
	}
	for (p = c->posts; p; p = p->next)
		if (p->tag == e->tag)
			break;
	if (!p)
		return 0;
	if (e->code == RELM_MBOX_E_RATE_LIMITED || e->code == RELM_MBOX_E_STORE) {
		/* Transient.  Re-sending just this one would reorder it after the
		 * posts behind it, so reconnect and re-send from the first unacked
		 * (at-least-once: the receiver de-duplicates). */
		drop(c, err);
		return 1;
	}
	p = post_take(c, e->tag);
	if (p) {
		if (c->cbs.posted)
			c->cbs.posted(c->cbs.arg, p->id, p->mailbox, 0, err);
		free(p);
		flush_posts(c);
	}
	return 1;
}

static void on_frame(struct relm_mbox_client *c, const struct relm_mbox_frame *f)
{
	switch (f->type) {
	case RELM_MBOX_CHALLENGE: {
		const struct relm_mbox_challenge *ch = &f->u.challenge;

		if (c->state != CS_HELLO || ch->version != RELM_MBOX_VERSION || !ch->rate || !ch->burst) {
			drop(c, RELM_EPROTO);
			return;
		}
		memcpy(c->nonce, ch->nonce, RELM_MBOX_NONCE_LEN);
		c->rate = ch->rate;
		c->burst = ch->burst;
		c->tokens = ch->burst / 2.0;
		c->tokens_at = uv_now(c->loop);
		c->state = CS_READY;
		c->backoff_ms = c->cfg.backoff_min_ms;
		uv_timer_stop(&c->timer);
		if (c->cfg.ping_ms)
			uv_timer_start(&c->ping, on_ping, c->cfg.ping_ms, c->cfg.ping_ms);
		c->was_up = 1;
		if (c->cbs.state)
			c->cbs.state(c->cbs.arg, 1, 0);
		for (size_t i = 0; i < c->nsubs && c->state == CS_READY; i++) {
			int rc = send_subscribe(c, i);
			if (rc && c->state == CS_READY) {
				uint8_t mb[RELM_MBOX_ID_LEN];
				memcpy(mb, c->subs[i].mailbox, RELM_MBOX_ID_LEN);
				sub_remove(c, i--);
				if (c->cbs.subscribed)
					c->cbs.subscribed(c->cbs.arg, mb, rc, 0, 0);
			}
		}
		flush_posts(c);
		return;
	}
	case RELM_MBOX_POSTED: {
		struct cpost *p = post_take(c, f->u.posted.tag);

		if (!p) {
			drop(c, RELM_EPROTO);
			return;
		}
		if (c->cbs.posted)
			c->cbs.posted(c->cbs.arg, p->id, p->mailbox, f->u.posted.seq, 0);
		free(p);
		flush_posts(c);
		return;
	}
	case RELM_MBOX_SUBSCRIBED: {
		struct csub *sb = sub_find(c, f->u.subscribed.mailbox, NULL);

		if (!sb || sb->tag != f->u.subscribed.tag)
			return;   /* unsubscribed or re-subscribed meanwhile */
		sb->active = 1;
		if (c->cbs.subscribed)
			c->cbs.subscribed(c->cbs.arg, f->u.subscribed.mailbox, 0,
			                  f->u.subscribed.head, f->u.subscribed.oldest);
		return;
	}
	case RELM_MBOX_DELIVER: {
		struct csub *sb = sub_find(c, f->u.deliver.mailbox, NULL);

		/* Deliveries of a superseded subscription (before its SUBSCRIBED)
		 * and duplicates (seq ≤ cursor) are dropped. */
		if (!sb || !sb->active || f->u.deliver.seq <= sb->cursor)
			return;
		sb->cursor = f->u.deliver.seq;
		if (c->cbs.deliver)
			c->cbs.deliver(c->cbs.arg, f->u.deliver.mailbox, f->u.deliver.seq,
			               f->u.deliver.env, f->u.deliver.env_len);
		return;
	}
	case RELM_MBOX_UNSUBSCRIBED:
	case RELM_MBOX_PONG:
		return;
	case RELM_MBOX_LEASE_RESULT: {
		struct clease **lp, *l;

		for (lp = &c->leases; *lp; lp = &(*lp)->next)
			if ((*lp)->tag == f->u.lease_result.tag)
				break;
		if (!*lp)
			return;
		l = *lp;
		*lp = l->next;
		l->cb(l->arg, 0, f->u.lease_result.granted, f->u.lease_result.holder,
		      f->u.lease_result.remaining_ms);
		free(l);
		return;
	}
	case RELM_MBOX_ERROR: {
		const struct relm_mbox_error *e = &f->u.error;

		log_warn("mailbox %s:%u: error %s (%.*s)", c->host, (unsigned)c->port,
		         relm_mbox_errname(e->code), (int)e->text_len, e->text ? e->text : "");
		if (e->flags & RELM_MBOX_ERRF_FATAL) {
			drop(c, relm_mbox_err_to_relm(e->code));
			return;
		}
		error_matches(c, e);
		return;
	}
	default:
		drop(c, RELM_EPROTO);   /* a client-to-server type from the server */
		return;
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct relm_mbox_client *c = container_of((uv_tcp_t *)h, struct relm_mbox_client, tcp);
	size_t need = c->rlen + 4096;

	(void)suggested;
	if (need > RELM_MBOX_FRAME_TOTAL_MAX)
		need = RELM_MBOX_FRAME_TOTAL_MAX;
	if (need > c->rcap) {
		uint8_t *nb = realloc(c->rbuf, need);
		if (nb) {
			c->rbuf = nb;
			c->rcap = need;
		}
	}
	*buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void on_resume(uv_idle_t *h);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* Handle the complete frames in rbuf until the turn's budget is spent;
 * then stop reading and let on_resume go on next turn. */
static void parse(struct relm_mbox_client *c)
{
	uint64_t start = uv_hrtime(), budget = (uint64_t)c->cfg.turn_budget_us * 1000u;
	size_t pos = 0, flen;

	/* Everything the frames of this turn make us send (posts the acks made
	 * room for, resubscriptions, what the callbacks queue) leaves in one
	 * write when the turn's share is done. */
	cork(c);
	while (c->state == CS_HELLO || c->state == CS_READY) {
		struct relm_mbox_frame f;
		int rc = relm_mbox_frame_peek(&flen, c->rbuf + pos, c->rlen - pos);

		if (rc == RELM_ETRUNCATED)
			break;
		if (budget && pos > 0 && uv_hrtime() - start >= budget) {
			c->paused = 1;
			uv_read_stop((uv_stream_t *)&c->tcp);
			uv_idle_start(&c->resume, on_resume);
			break;
		}
		if (rc == 0)
			rc = relm_mbox_frame_decode(&f, c->rbuf + pos, flen);
		if (rc) {
			drop(c, RELM_EPROTO);
			break;
		}
		on_frame(c, &f);
		pos += flen;
	}
	if (c->state == CS_HELLO || c->state == CS_READY) {
		memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
		c->rlen -= pos;
	}
	uncork(c);
}

static void on_resume(uv_idle_t *h)
{
	struct relm_mbox_client *c = container_of(h, struct relm_mbox_client, resume);

	uv_idle_stop(&c->resume);
	if (!c->paused)
		return;
	c->paused = 0;
	if (c->state != CS_HELLO && c->state != CS_READY)
		return;
	parse(c);
	if (!c->paused && (c->state == CS_HELLO || c->state == CS_READY) &&
	    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
		drop(c, RELM_EPROTO);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct relm_mbox_client *c = container_of((uv_tcp_t *)s, struct relm_mbox_client, tcp);

	(void)buf;
	if (nread < 0) {
		drop(c, nread == UV_EOF ? RELM_ECLOSED : (int)nread);
		return;
	}
	c->rlen += (size_t)nread;
	c->last_rx = uv_now(c->loop);
	parse(c);
}

/* ---- connection cycle ---- */

static uint32_t jitter(uint32_t ms)
{
	/* "equal jitter": half fixed, half uniform, so retries spread out but
	 * never collapse to zero */
	return ms / 2 + randombytes_uniform(ms / 2 + 1);
}

static void on_tcp_closed(uv_handle_t *h)
{
	struct relm_mbox_client *c = container_of((uv_tcp_t *)h, struct relm_mbox_client, tcp);

	c->tcp_open = 0;
	c->rlen = 0;
	if (c->closing) {
		maybe_done(c);
		return;
	}
	c->state = CS_WAIT;
	uv_timer_start(&c->timer, on_timer, jitter(c->backoff_ms), 0);
	c->backoff_ms = c->backoff_ms >= c->cfg.backoff_max_ms / 2 ? c->cfg.backoff_max_ms
	                                                           : c->backoff_ms * 2;
}

/* Tear the connection down (idempotent); reconnect follows unless closing. */
static void drop(struct relm_mbox_client *c, int reason)
{
	struct clease *l;
	struct cpost *p;
	int was_up = c->was_up;

	if (c->state == CS_DROP || c->state == CS_WAIT || c->state == CS_NONE)
		return;
	if (c->state == CS_RESOLVE) {
		uv_cancel((uv_req_t *)&c->gai);   /* its callback sees the state and backs off */
		c->state = CS_DROP;
		return;
	}
	c->state = CS_DROP;
	c->paused = 0;
	uv_idle_stop(&c->resume);
	out_discard(c);
	uv_timer_stop(&c->timer);
	uv_timer_stop(&c->ping);
	for (p = c->posts; p; p = p->next)
		p->tag = 0;
	c->sent = 0;
	c->unsent = c->posts;
	for (size_t i = 0; i < c->nsubs; i++) {
		c->subs[i].active = 0;
		c->subs[i].tag = 0;
	}
	c->was_up = 0;
	if (c->tcp_open && !uv_is_closing((uv_handle_t *)&c->tcp))
		uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
	while ((l = c->leases)) {
		c->leases = l->next;
		l->cb(l->arg, RELM_ECLOSED, 0, NULL, 0);
		free(l);
	}
	if (was_up && !c->closing && c->cbs.state)
		c->cbs.state(c->cbs.arg, 0, reason);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct relm_mbox_client *c = container_of(req, struct relm_mbox_client, connect_req);
	struct relm_mbox_frame f;

	if (c->state != CS_CONNECT)
		return;   /* dropped meanwhile; the close callback carries on */
	if (status < 0) {
		drop(c, status);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
		drop(c, RELM_EPROTO);
		return;
	}
	c->state = CS_HELLO;
	c->last_rx = uv_now(c->loop);
	frame_init(&f, RELM_MBOX_HELLO);
	f.u.hello.min_version = RELM_MBOX_VERSION;
	f.u.hello.max_version = RELM_MBOX_VERSION;
	send_frame(c, &f);   /* uncorked: written now */
}

static void start_connect(struct relm_mbox_client *c, const struct sockaddr *sa)
{
	int rc;

	uv_tcp_init(c->loop, &c->tcp);
	c->tcp_open = 1;
	c->state = CS_CONNECT;
	rc = uv_tcp_connect(&c->connect_req, &c->tcp, sa, on_connect);
	if (rc) {
		drop(c, rc);
		return;
	}
	uv_timer_start(&c->timer, on_timer, c->cfg.connect_timeout_ms, 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct relm_mbox_client *c = container_of(req, struct relm_mbox_client, gai);

	c->gai_busy = 0;
	if (c->closing) {
		uv_freeaddrinfo(res);
		maybe_done(c);
		return;
	}
	if (c->state != CS_RESOLVE || status < 0 || !res) {
		uv_freeaddrinfo(res);
		if (status < 0)
			log_warn("mailbox %s: cannot resolve: %s", c->host, uv_strerror(status));
		c->state = CS_WAIT;
		uv_timer_start(&c->timer, on_timer, jitter(c->backoff_ms), 0);
		c->backoff_ms = c->backoff_ms >= c->cfg.backoff_max_ms / 2 ? c->cfg.backoff_max_ms
		                                                           : c->backoff_ms * 2;
		return;
	}
	start_connect(c, res->ai_addr);
	uv_freeaddrinfo(res);
}

static void begin(struct relm_mbox_client *c)
{
	struct sockaddr_storage ss;
	struct addrinfo hints;
	char port[8];
	int rc;

	memset(&ss, 0, sizeof(ss));
	if (uv_ip4_addr(c->host, c->port, (struct sockaddr_in *)&ss) == 0 ||
	    uv_ip6_addr(c->host, c->port, (struct sockaddr_in6 *)&ss) == 0) {
		start_connect(c, (const struct sockaddr *)&ss);
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%u", (unsigned)c->port);
	c->state = CS_RESOLVE;
	rc = uv_getaddrinfo(c->loop, &c->gai, on_resolved, c->host, port, &hints);
	if (rc) {
		c->state = CS_WAIT;
		uv_timer_start(&c->timer, on_timer, jitter(c->backoff_ms), 0);
		return;
	}
	c->gai_busy = 1;
}

static void on_timer(uv_timer_t *t)
{
	struct relm_mbox_client *c = container_of(t, struct relm_mbox_client, timer);

	switch (c->state) {
	case CS_WAIT:
		begin(c);
		break;
	case CS_CONNECT:
	case CS_HELLO:
		drop(c, RELM_ETIMEOUT);
		break;
	case CS_READY:
		cork(c);   /* the posts the bucket allows now: one write */
		flush_posts(c);
		uncork(c);
		break;
	default:
		break;
	}
}

static void on_ping(uv_timer_t *t)
{
	struct relm_mbox_client *c = container_of(t, struct relm_mbox_client, ping);
	struct relm_mbox_frame f;

	if (c->state != CS_READY)
		return;
	if (uv_now(c->loop) - c->last_rx >= 2ull * c->cfg.ping_ms) {
		drop(c, RELM_ETIMEOUT);
		return;
	}
	frame_init(&f, RELM_MBOX_PING);
	f.u.ping.tag = new_tag(c);
	send_frame(c, &f);
}

/* ---- public API ---- */

int relm_mbox_client_new(struct relm_mbox_client **out, uv_loop_t *loop,
                         const char *host, uint16_t port,
                         const struct relm_mbox_client_cbs *cbs,
                         const struct relm_mbox_client_config *cfg)
{
	struct relm_mbox_client *c;

	if (!host || strlen(host) >= sizeof(c->host) || !*host || !port || !cbs)
		return RELM_EINVAL;
	if (relm_crypto_init() != 0)
		return RELM_EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return RELM_ENOMEM;
	c->loop = loop;
	snprintf(c->host, sizeof(c->host), "%s", host);
	c->port = port;
	c->cbs = *cbs;
	if (cfg)
		c->cfg = *cfg;
	else
		relm_mbox_client_config_default(&c->cfg);
	if (!c->cfg.backoff_min_ms)
		c->cfg.backoff_min_ms = 1;
	if (c->cfg.backoff_max_ms < c->cfg.backoff_min_ms)
		c->cfg.backoff_max_ms = c->cfg.backoff_min_ms;
	if (!c->cfg.post_window)
		c->cfg.post_window = 1;
	if (!c->cfg.connect_timeout_ms)
		c->cfg.connect_timeout_ms = 10000;
	c->backoff_ms = c->cfg.backoff_min_ms;
	c->posts_tail = &c->posts;
	uv_timer_init(loop, &c->timer);
	uv_timer_init(loop, &c->ping);
	uv_idle_init(loop, &c->resume);
	c->open_handles = 3;
	c->state = CS_WAIT;
	uv_timer_start(&c->timer, on_timer, 0, 0);
	*out = c;
	return 0;
}

int relm_mbox_client_post(struct relm_mbox_client *c, const uint8_t mailbox[RELM_MBOX_ID_LEN],
                          const uint8_t *env, size_t len, uint64_t *post_id)
{
	struct cpost *p;

	if (c->closing || len == 0 || !env)
		return RELM_EINVAL;
	if (len > RELM_MBOX_ENVELOPE_MAX)
		return RELM_ETOOBIG;
	p = malloc(sizeof(*p) + len);
	if (!p)
		return RELM_ENOMEM;
	p->next = NULL;
	p->id = ++c->next_post_id;
	p->tag = 0;
	memcpy(p->mailbox, mailbox, RELM_MBOX_ID_LEN);
	p->len = len;
	memcpy(p->env, env, len);
	*c->posts_tail = p;
	c->posts_tail = &p->next;
	if (!c->unsent)
		c->unsent = p;
	c->nposts++;
	if (post_id)
		*post_id = p->id;
	flush_posts(c);
	return 0;
}

int relm_mbox_client_subscribe(struct relm_mbox_client *c, const uint8_t mailbox[RELM_MBOX_ID_LEN],
                               uint64_t cursor, const uint8_t sk[RELM_SIGN_SK_LEN],
                               relm_mbox_sign_fn sign, void *sign_arg)
{
	struct csub *sb;
	size_t idx;
	uint8_t *key = NULL;

	if (c->closing || (!sk == !sign))
		return RELM_EINVAL;
	if (sk) {
		key = sodium_malloc(RELM_SIGN_SK_LEN);
		if (!key)
			return RELM_ENOMEM;
		memcpy(key, sk, RELM_SIGN_SK_LEN);
	}
	sb = sub_find(c, mailbox, &idx);
	if (!sb) {
		if (c->nsubs == c->subs_cap) {
			size_t ncap = c->subs_cap ? 2 * c->subs_cap : 8;
			struct csub *ns = realloc(c->subs, ncap * sizeof(*ns));
			if (!ns) {
				if (key)
					sodium_free(key);
				return RELM_ENOMEM;
			}
			c->subs = ns;
			c->subs_cap = ncap;
		}
		idx = c->nsubs++;
		sb = &c->subs[idx];
		memset(sb, 0, sizeof(*sb));
		memcpy(sb->mailbox, mailbox, RELM_MBOX_ID_LEN);
	}
	if (sb->sk)
		sodium_free(sb->sk);
	sb->sk = key;
	sb->sign = sign;
	sb->sign_arg = sign_arg;
	sb->cursor = cursor;
	sb->active = 0;
	sb->tag = 0;
	if (c->state == CS_READY) {
		int rc = send_subscribe(c, idx);
		if (rc && c->state == CS_READY) {
			sub_remove(c, idx);
			return rc;
		}
	}
	return 0;
}

int relm_mbox_client_unsubscribe(struct relm_mbox_client *c, const uint8_t mailbox[RELM_MBOX_ID_LEN])
{
	size_t idx;
	struct relm_mbox_frame f;

	if (!sub_find(c, mailbox, &idx))
		return RELM_ENOTFOUND;
	sub_remove(c, idx);
	if (c->state == CS_READY) {
		frame_init(&f, RELM_MBOX_UNSUBSCRIBE);
		f.u.unsub.tag = new_tag(c);
		memcpy(f.u.unsub.mailbox, mailbox, RELM_MBOX_ID_LEN);
		send_frame(c, &f);
	}
	return 0;
}

int relm_mbox_client_cursor(const struct relm_mbox_client *c,
                            const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t *cursor)
{
	const struct csub *sb = sub_find(c, mailbox, NULL);

	if (!sb)
		return RELM_ENOTFOUND;
	*cursor = sb->cursor;
	return 0;
}

int relm_mbox_client_lease(struct relm_mbox_client *c, const uint8_t mailbox[RELM_MBOX_ID_LEN],
                           const char *name, size_t name_len,
                           const uint8_t expected[RELM_MBOX_TOKEN_LEN],
                           const uint8_t holder[RELM_MBOX_TOKEN_LEN], uint32_t ttl_ms,
                           const uint8_t sk[RELM_SIGN_SK_LEN],
                           relm_mbox_sign_fn sign, void *sign_arg,
                           relm_mbox_lease_cb cb, void *cb_arg)
{
	struct relm_mbox_frame f;
	uint8_t m[RELM_MBOX_LEASE_SIG_INPUT_MAX];
	struct clease *l;
	size_t n;
	int rc;

	if (c->closing || (!sk == !sign) || !cb || !name ||
	    name_len < 1 || name_len > RELM_MBOX_LEASE_NAME_MAX)
		return RELM_EINVAL;
	if (c->state != CS_READY)
		return RELM_ECLOSED;
	frame_init(&f, RELM_MBOX_LEASE);
	memcpy(f.u.lease.mailbox, mailbox, RELM_MBOX_ID_LEN);
	f.u.lease.name = (const uint8_t *)name;
	f.u.lease.name_len = name_len;
	memcpy(f.u.lease.expected, expected, RELM_MBOX_TOKEN_LEN);
	memcpy(f.u.lease.holder, holder, RELM_MBOX_TOKEN_LEN);
	f.u.lease.ttl_ms = ttl_ms;
	n = relm_mbox_lease_sig_input(m, c->nonce, &f.u.lease);
	rc = do_sign(f.u.lease.sig, sk, sign, sign_arg, m, n);
	if (rc)
		return rc;
	l = calloc(1, sizeof(*l));
	if (!l)
		return RELM_ENOMEM;
	l->tag = f.u.lease.tag = new_tag(c);
	l->cb = cb;
	l->arg = cb_arg;
	rc = send_frame(c, &f);
	if (rc) {
		/* drop() already failed the other leases; this one was not listed */
		free(l);
		return RELM_ECLOSED;
	}
	l->next = c->leases;
	c->leases = l;
	return 0;
}

int relm_mbox_client_connected(const struct relm_mbox_client *c)
{
	return c->state == CS_READY;
}

size_t relm_mbox_client_unacked(const struct relm_mbox_client *c)
{
	return c->nposts;
}

uint64_t relm_mbox_client_writes(const struct relm_mbox_client *c)
{
	return c->writes;
}

void relm_mbox_client_cork(struct relm_mbox_client *c)
{
	cork(c);
}

void relm_mbox_client_uncork(struct relm_mbox_client *c)
{
	uncork(c);
}

static void maybe_done(struct relm_mbox_client *c)
{
	void (*cb)(void *);
	void *arg;

	if (c->open_handles || c->tcp_open || c->gai_busy)
		return;
	cb = c->close_cb;
	arg = c->close_arg;
	free(c->rbuf);
	free(c->wout);
	free(c->subs);
	free(c);
	if (cb)
		cb(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct relm_mbox_client *c = h->data;

	c->open_handles--;
	maybe_done(c);
}

void relm_mbox_client_close(struct relm_mbox_client *c, void (*cb)(void *arg), void *arg)
{
	struct cpost *p;

	if (c->closing)
		return;
	c->closing = 1;
	c->close_cb = cb;
	c->close_arg = arg;
	drop(c, RELM_ECLOSED);   /* fails leases; no state callback while closing */
	if (c->gai_busy)
		uv_cancel((uv_req_t *)&c->gai);
	while ((p = c->posts)) {
		c->posts = p->next;
		free(p);
	}
	c->posts_tail = &c->posts;
	c->unsent = NULL;
	c->nposts = c->sent = 0;
	while (c->nsubs)
		sub_remove(c, c->nsubs - 1);
	c->timer.data = c->ping.data = c->resume.data = c;
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
	uv_close((uv_handle_t *)&c->ping, on_handle_closed);
	uv_close((uv_handle_t *)&c->resume, on_handle_closed);
}

/*
 * mailbox_client.c — see mailbox_client.h.
 *
 * The connection's state machine is drawn in internal.h; subscriptions
 * live in mbc_subs.c, which this file calls and which reaches back only
 * through struct mbc_subs_owner (subs_owner below).
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
#include "mailbox_client/internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/crypto.h"
#include "error.h"
#include "log.h"

static void maybe_done(struct relm_mbox_client *c);
static void flush_posts(struct relm_mbox_client *c);
static void on_timer(uv_timer_t *t);
static void on_ping(uv_timer_t *t);
static void conn_drop(struct relm_mbox_client *c, int reason);
static int send_frame(struct relm_mbox_client *c, const struct relm_mbox_frame *f);
static int take_tokens(struct relm_mbox_client *c, uint32_t cost);

/* What the subscriptions may ask of the connection. */
static const struct mbc_subs_owner subs_owner = {
	.send = send_frame,
	.take_tokens = take_tokens,
	.drop = conn_drop,
};

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

/* The one place the connection's state changes (internal.h draws the
 * machine); a transition not drawn there is a bug and aborts. */
static void conn_enter(struct relm_mbox_client *c, enum mbc_state to)
{
	enum mbc_state from = c->state;
	int ok;

	switch (to) {
	case CS_WAIT:    ok = from == CS_NONE || from == CS_RESOLVE || from == CS_DROP; break;
	case CS_RESOLVE: ok = from == CS_WAIT; break;
	case CS_CONNECT: ok = from == CS_WAIT || from == CS_RESOLVE; break;
	case CS_HELLO:   ok = from == CS_CONNECT; break;
	case CS_READY:   ok = from == CS_HELLO; break;
	case CS_DROP:    ok = from == CS_RESOLVE || from == CS_CONNECT || from == CS_HELLO ||
	                      from == CS_READY; break;
	default:         ok = 0; break;
	}
	if (!ok) {
		log_err("mailbox client: state %d -> %d is impossible", (int)from, (int)to);
		abort();
	}
	c->state = to;
}

/* ---- output ---- */

static void on_write(uv_write_t *req, int status)
{
	struct cwreq *w = container_of(req, struct cwreq, req);
	struct relm_mbox_client *c = container_of((uv_tcp_t *)req->handle, struct relm_mbox_client, tcp);

	free(w);
	if (status < 0 && status != UV_ECANCELED)
		conn_drop(c, status);
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
		conn_drop(c, rc);
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
	if (c->corked == 1 && c->state == CS_READY)
		mbc_flush_subs(c);   /* subscriptions made while corked, batched */
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
			conn_drop(c, RELM_ENOMEM);
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

/* Take cost from the pacing bucket; when it is short, arm the pacing timer
 * (on_timer sends what waits) and return 0. */
static int take_tokens(struct relm_mbox_client *c, uint32_t cost)
{
	refill(c);
	if (c->tokens < cost) {
		double need = (cost - c->tokens) * 1000.0 / (c->rate * 0.8);

		/* in READY, `timer` paces posts and batches (on_timer calls back) */
		uv_timer_start(&c->timer, on_timer, (uint64_t)need + 1, 0);
		return 0;
	}
	c->tokens -= cost;
	return 1;
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

		mbc_frame_init(c, &f, RELM_MBOX_POST);
		memcpy(f.u.post.mailbox, p->mailbox, RELM_MBOX_ID_LEN);
		f.u.post.env = p->env;
		f.u.post.env_len = p->len;
		cost = relm_mbox_cost(relm_mbox_frame_size(&f));
		if (!take_tokens(c, cost))
			return;
		f.u.post.tag = p->tag = mbc_new_tag(c);
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
	if (mbc_subs_error(c, e))
		return 1;
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
		conn_drop(c, err);
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
		uint8_t offered = c->cfg.max_version ? c->cfg.max_version : RELM_MBOX_VERSION_MAX;

		if (c->state != CS_HELLO || ch->version < RELM_MBOX_VERSION || ch->version > offered ||
		    f->version != ch->version || !ch->rate || !ch->burst) {
			conn_drop(c, RELM_EPROTO);
			return;
		}
		memcpy(c->nonce, ch->nonce, RELM_MBOX_NONCE_LEN);
		c->version = ch->version;
		if (c->version >= RELM_MBOX_VERSION_2) {
			if (c->have_realm && memcmp(c->realm, ch->realm, RELM_MBOX_REALM_LEN) != 0)
				for (size_t i = 0; i < c->nsubs; i++)
					c->subs[i].has_rkey = 0;   /* another database: other read keys */
			memcpy(c->realm, ch->realm, RELM_MBOX_REALM_LEN);
			c->have_realm = 1;
			memcpy(c->kx_server, ch->kx, RELM_MBOX_KX_LEN);
		}
		c->rate = ch->rate;
		c->burst = ch->burst;
		c->tokens = ch->burst / 2.0;
		c->tokens_at = uv_now(c->loop);
		conn_enter(c, CS_READY);
		c->backoff_ms = c->cfg.backoff_min_ms;
		uv_timer_stop(&c->timer);
		if (c->cfg.ping_ms)
			uv_timer_start(&c->ping, on_ping, c->cfg.ping_ms, c->cfg.ping_ms);
		c->was_up = 1;
		if (c->cbs.state)
			c->cbs.state(c->cbs.arg, 1, 0);
		if (c->state == CS_READY)
			mbc_subs_ready(c);
		flush_posts(c);
		return;
	}
	case RELM_MBOX_POSTED: {
		struct cpost *p = post_take(c, f->u.posted.tag);

		if (!p) {
			conn_drop(c, RELM_EPROTO);
			return;
		}
		if (c->cbs.posted)
			c->cbs.posted(c->cbs.arg, p->id, p->mailbox, f->u.posted.seq, 0);
		free(p);
		flush_posts(c);
		return;
	}
	case RELM_MBOX_SUBSCRIBED:
		mbc_on_subscribed(c, &f->u.subscribed);
		return;
	case RELM_MBOX_SUBSCRIBED_BATCH:
		mbc_on_subed_batch(c, &f->u.subed_batch);
		return;
	case RELM_MBOX_DELIVER: {
		struct csub *sb = mbc_sub_find(c, f->u.deliver.mailbox, NULL);

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
			conn_drop(c, relm_mbox_err_to_relm(e->code));
			return;
		}
		error_matches(c, e);
		return;
	}
	default:
		conn_drop(c, RELM_EPROTO);   /* a client-to-server type from the server */
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
 * then stop reading and let on_resume go on next turn.  The budget is the
 * loop turn's, not one call's: libuv calls on_read up to 32 times in one
 * turn while data keeps coming (a receipt for a thousand messages comes as
 * many frames), and each call had a budget of its own — sending relmd's
 * turns ran to 10 ms of CPU at 1,000 messages/s.  Each client handles at
 * least one frame a turn, so every buffer drains even when clients share
 * one budget (turn_shared_ns) and another spent it first. */
static void parse(struct relm_mbox_client *c)
{
	uint64_t start = uv_hrtime(), budget = (uint64_t)c->cfg.turn_budget_us * 1000u;
	uint64_t *usedp = c->cfg.turn_shared_ns ? c->cfg.turn_shared_ns : &c->turn_used_ns;
	uint64_t used = *usedp;
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
		if (budget && c->turn_framed && used + (uv_hrtime() - start) >= budget) {
			c->paused = 1;
			uv_read_stop((uv_stream_t *)&c->tcp);
			uv_idle_start(&c->resume, on_resume);
			break;
		}
		if (rc == 0)
			rc = relm_mbox_frame_decode(&f, c->rbuf + pos, flen);
		/* after CHALLENGE, every frame carries the version it chose */
		if (rc == 0 && c->state == CS_READY && f.version != c->version)
			rc = RELM_EVERSION;
		if (rc) {
			conn_drop(c, RELM_EPROTO);
			break;
		}
		on_frame(c, &f);
		c->turn_framed = 1;
		pos += flen;
	}
	if (c->state == CS_HELLO || c->state == CS_READY) {
		memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
		c->rlen -= pos;
	}
	*usedp = used + (uv_hrtime() - start);
	uncork(c);
}

/* Prepare, as the loop's turn ends (relmd commits there too): the next
 * turn's frames get a whole budget. */
static void on_turn_end(uv_prepare_t *h)
{
	struct relm_mbox_client *c = container_of(h, struct relm_mbox_client, turn_end);

	/* every client sharing a counter resets it, all in this phase */
	*(c->cfg.turn_shared_ns ? c->cfg.turn_shared_ns : &c->turn_used_ns) = 0;
	c->turn_framed = 0;
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
		conn_drop(c, RELM_EPROTO);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct relm_mbox_client *c = container_of((uv_tcp_t *)s, struct relm_mbox_client, tcp);

	(void)buf;
	if (nread < 0) {
		conn_drop(c, nread == UV_EOF ? RELM_ECLOSED : (int)nread);
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
	conn_enter(c, CS_WAIT);
	uv_timer_start(&c->timer, on_timer, jitter(c->backoff_ms), 0);
	c->backoff_ms = c->backoff_ms >= c->cfg.backoff_max_ms / 2 ? c->cfg.backoff_max_ms
	                                                           : c->backoff_ms * 2;
}

/* Tear the connection down (idempotent); reconnect follows unless closing. */
static void conn_drop(struct relm_mbox_client *c, int reason)
{
	struct clease *l;
	struct cpost *p;
	int was_up = c->was_up;

	if (c->state == CS_DROP || c->state == CS_WAIT || c->state == CS_NONE)
		return;
	if (c->state == CS_RESOLVE) {
		uv_cancel((uv_req_t *)&c->gai);   /* its callback sees the state and backs off */
		conn_enter(c, CS_DROP);
		return;
	}
	conn_enter(c, CS_DROP);
	c->paused = 0;
	uv_idle_stop(&c->resume);
	out_discard(c);
	uv_timer_stop(&c->timer);
	uv_timer_stop(&c->ping);
	for (p = c->posts; p; p = p->next)
		p->tag = 0;
	c->sent = 0;
	c->unsent = c->posts;
	mbc_subs_dropped(c);
	sodium_memzero(c->kx_sk, sizeof(c->kx_sk));
	sodium_memzero(c->seal_k, sizeof(c->seal_k));
	c->have_kx = 0;
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
		conn_drop(c, status);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
		conn_drop(c, RELM_EPROTO);
		return;
	}
	conn_enter(c, CS_HELLO);
	c->last_rx = uv_now(c->loop);
	mbc_frame_init(c, &f, RELM_MBOX_HELLO);
	f.u.hello.min_version = RELM_MBOX_VERSION;
	f.u.hello.max_version = c->cfg.max_version ? c->cfg.max_version : RELM_MBOX_VERSION_MAX;
	send_frame(c, &f);   /* uncorked: written now */
}

static void start_connect(struct relm_mbox_client *c, const struct sockaddr *sa)
{
	int rc;

	uv_tcp_init(c->loop, &c->tcp);
	c->tcp_open = 1;
	conn_enter(c, CS_CONNECT);
	rc = uv_tcp_connect(&c->connect_req, &c->tcp, sa, on_connect);
	if (rc) {
		conn_drop(c, rc);
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
		conn_enter(c, CS_WAIT);
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
	conn_enter(c, CS_RESOLVE);
	rc = uv_getaddrinfo(c->loop, &c->gai, on_resolved, c->host, port, &hints);
	if (rc) {
		conn_enter(c, CS_WAIT);
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
		conn_drop(c, RELM_ETIMEOUT);
		break;
	case CS_READY:
		cork(c);   /* the batches and posts the bucket allows now: one write */
		mbc_flush_subs(c);
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
		conn_drop(c, RELM_ETIMEOUT);
		return;
	}
	mbc_frame_init(c, &f, RELM_MBOX_PING);
	f.u.ping.tag = mbc_new_tag(c);
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
	c->owner = &subs_owner;
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
	uv_prepare_init(loop, &c->turn_end);
	uv_prepare_start(&c->turn_end, on_turn_end);
	uv_unref((uv_handle_t *)&c->turn_end);   /* it alone does not keep the loop running */
	c->open_handles = 4;
	conn_enter(c, CS_WAIT);
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
	mbc_frame_init(c, &f, RELM_MBOX_LEASE);
	memcpy(f.u.lease.mailbox, mailbox, RELM_MBOX_ID_LEN);
	f.u.lease.name = (const uint8_t *)name;
	f.u.lease.name_len = name_len;
	memcpy(f.u.lease.expected, expected, RELM_MBOX_TOKEN_LEN);
	memcpy(f.u.lease.holder, holder, RELM_MBOX_TOKEN_LEN);
	f.u.lease.ttl_ms = ttl_ms;
	n = relm_mbox_lease_sig_input(m, c->nonce, &f.u.lease);
	rc = mbc_sign(f.u.lease.sig, sk, sign, sign_arg, m, n);
	if (rc)
		return rc;
	l = calloc(1, sizeof(*l));
	if (!l)
		return RELM_ENOMEM;
	l->tag = f.u.lease.tag = mbc_new_tag(c);
	l->cb = cb;
	l->arg = cb_arg;
	rc = send_frame(c, &f);
	if (rc) {
		/* conn_drop() already failed the other leases; this one was not listed */
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
	mbc_subs_free(c);
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
	conn_drop(c, RELM_ECLOSED);   /* fails leases; no state callback while closing */
	if (c->gai_busy)
		uv_cancel((uv_req_t *)&c->gai);
	while ((p = c->posts)) {
		c->posts = p->next;
		free(p);
	}
	c->posts_tail = &c->posts;
	c->unsent = NULL;
	c->nposts = c->sent = 0;
	mbc_subs_free(c);
	c->timer.data = c->ping.data = c->resume.data = c->turn_end.data = c;
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
	uv_close((uv_handle_t *)&c->ping, on_handle_closed);
	uv_close((uv_handle_t *)&c->resume, on_handle_closed);
	uv_close((uv_handle_t *)&c->turn_end, on_handle_closed);
}

/*
 * mbs_conn.c — one client connection of the mailbox server: its state
 * machine, reading and framing, coalesced output, and the frames the
 * connection answers itself (HELLO, PING, and the refusals); every other
 * request goes to the owner.  mbs_conn.h has the contract, the state
 * diagram and how output is coalesced; this file includes nothing of the
 * server's.
 */
#include "mailbox_server/mbs_conn.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "error.h"
#include "log.h"

/* One write: the frames of one callback, handed to libuv together. */
struct mbs_wreq {
	uv_write_t req;
	struct mbs_conn *conn;
	size_t len, cap;
	uint8_t data[];
};

static void conn_process(struct mbs_conn *c);
static void conn_resume(struct mbs_conn *c);

/* ---- state ---- */

/* The one place the state changes (mbs_conn.h draws the machine). */
static void conn_enter(struct mbs_conn *c, enum mbs_conn_state to)
{
	enum mbs_conn_state from = c->state;
	int ok;

	switch (to) {
	case MBS_CONN_HELLO:   ok = from == MBS_CONN_NONE; break;
	case MBS_CONN_READY:   ok = from == MBS_CONN_HELLO; break;
	case MBS_CONN_CLOSING: ok = from == MBS_CONN_HELLO || from == MBS_CONN_READY; break;
	case MBS_CONN_CLOSED:  ok = from != MBS_CONN_CLOSED; break;
	default:               ok = 0; break;
	}
	if (!ok) {
		log_err("mailbox: connection state %d -> %d is impossible", (int)from, (int)to);
		abort();
	}
	c->state = to;
}

int mbs_conn_live(const struct mbs_conn *c)
{
	return c->state == MBS_CONN_READY;
}

/* Frames may still be queued (a fatal ERROR included). */
static int conn_open(const struct mbs_conn *c)
{
	return c->state == MBS_CONN_HELLO || c->state == MBS_CONN_READY;
}

void mbs_frame_init(const struct mbs_conn *c, struct relm_mbox_frame *f, uint8_t type)
{
	memset(f, 0, sizeof(*f));
	f->version = c->version ? c->version : RELM_MBOX_VERSION;
	f->type = type;
}

/* ---- lifetime ---- */

struct mbs_conn *mbs_conn_new(struct mbs_conn_owner *o)
{
	struct mbs_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->owner = o;
	uv_tcp_init(o->loop, &c->tcp);
	c->next = o->conns;
	if (o->conns)
		o->conns->prev = c;
	o->conns = c;
	return c;
}

void mbs_conn_accepted(struct mbs_conn *c)
{
	uint64_t now = uv_now(c->owner->loop);

	conn_enter(c, MBS_CONN_HELLO);
	c->accepted_at = c->last_rx = c->write_progress = now;
}

static void conn_free(struct mbs_conn *c)
{
	struct mbs_conn_owner *o = c->owner;

	if (c->prev)
		c->prev->next = c->next;
	else
		o->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	sodium_memzero(c->kx_sk, sizeof(c->kx_sk));
	free(c->rbuf);
	free(c);
	o->gone(o);
}

static void on_conn_closed(uv_handle_t *h)
{
	struct mbs_conn *c = container_of((uv_tcp_t *)h, struct mbs_conn, tcp);
	struct mbs_conn_owner *o = c->owner;

	/* What c holds goes here (its subscriptions), never while a walk of
	 * the owner's tables may be on the stack (a delivery that fails
	 * closes the connection). */
	o->closed(o, c);
	c->closed_cb_done = 1;
	if (c->refs == 0)
		conn_free(c);
	else
		o->gone(o);
}

void mbs_conn_ref(struct mbs_conn *c)
{
	c->refs++;
}

void mbs_conn_unref(struct mbs_conn *c)
{
	if (--c->refs == 0 && c->closed_cb_done)
		conn_free(c);
}

void mbs_conn_block(struct mbs_conn *c)
{
	c->blocked++;
}

void mbs_conn_unblock(struct mbs_conn *c)
{
	if (--c->blocked == 0 && conn_open(c)) {
		mbs_hold(c->owner);
		conn_resume(c);
		mbs_release(c->owner);
	}
}

void mbs_conn_close(struct mbs_conn *c)
{
	if (c->state == MBS_CONN_CLOSED)
		return;
	c->owner->closing(c->owner, c);
	if (c->wout) {
		/* never handed to libuv: nothing to cancel (it may stay on
		 * owner->dirty until the release; the flush skips it) */
		c->outq -= c->wout->len;
		free(c->wout);
		c->wout = NULL;
	}
	conn_enter(c, MBS_CONN_CLOSED);
	c->reading = 0;
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* ---- output ---- */

static void on_write(uv_write_t *req, int status)
{
	struct mbs_wreq *w = container_of(req, struct mbs_wreq, req);
	struct mbs_conn *c = w->conn;
	struct mbs_conn_owner *o = c->owner;

	c->outq -= w->len;
	c->write_progress = uv_now(o->loop);
	free(w);
	if (status < 0) {
		mbs_conn_close(c);
		return;
	}
	if (!conn_open(c))
		return;
	mbs_hold(o);
	if (!c->reading && c->outq <= o->cfg->outq_max / 2)
		conn_resume(c);
	if (mbs_conn_live(c))
		o->written(o, c);
	mbs_release(o);
}

/* Hand the connection's open buffer to libuv.  0, or a negative code
 * (the connection is then being closed). */
static int conn_flush(struct mbs_conn *c)
{
	struct mbs_wreq *w = c->wout;
	uv_buf_t b;
	int rc;

	if (!w)
		return 0;
	c->wout = NULL;
	if (c->state == MBS_CONN_CLOSED) {
		c->outq -= w->len;
		free(w);
		return RELM_ECLOSED;
	}
	w->conn = c;
	b = uv_buf_init((char *)w->data, (unsigned)w->len);
	rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	if (rc) {
		c->outq -= w->len;
		free(w);
		mbs_conn_close(c);
		return rc;
	}
	return 0;
}

void mbs_hold(struct mbs_conn_owner *o)
{
	o->hold++;
}

void mbs_release(struct mbs_conn_owner *o)
{
	struct mbs_conn *c;

	if (--o->hold)
		return;
	while ((c = o->dirty)) {
		o->dirty = c->dirty_next;
		c->dirty_next = NULL;
		c->dirty = 0;
		conn_flush(c);
	}
}

int mbs_conn_send(struct mbs_conn *c, const struct relm_mbox_frame *f)
{
	struct mbs_conn_owner *o = c->owner;
	size_t n = relm_mbox_frame_size(f);
	struct mbs_wreq *w = c->wout;

	if (!conn_open(c))
		return RELM_ECLOSED;
	if (!n)
		return RELM_EINVAL;   /* our own bug; never reached with valid frames */
	if (!w || w->cap - w->len < n) {
		size_t cap = w ? w->cap : 0, need = (w ? w->len : 0) + n;
		struct mbs_wreq *nw;

		if (cap < MBS_RBUF_INITIAL)
			cap = MBS_RBUF_INITIAL;
		while (cap < need)
			cap *= 2;
		nw = realloc(w, sizeof(*nw) + cap);
		if (!nw) {
			mbs_conn_close(c);
			return RELM_ENOMEM;
		}
		if (!w)
			nw->len = 0;
		nw->cap = cap;
		c->wout = w = nw;
	}
	relm_mbox_frame_encode(w->data + w->len, n, f);
	w->len += n;
	if (c->outq == 0)
		c->write_progress = uv_now(o->loop);
	c->outq += n;
	if (!o->hold)
		return conn_flush(c);
	if (!c->dirty) {
		c->dirty = 1;
		c->dirty_next = o->dirty;
		o->dirty = c;
	}
	return 0;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct mbs_conn *c = container_of(req, struct mbs_conn, shutdown_req);

	(void)status;
	mbs_conn_close(c);
}

void mbs_conn_error(struct mbs_conn *c, uint32_t tag, unsigned code, int fatal, const char *text)
{
	struct relm_mbox_frame f;

	if (!conn_open(c))
		return;
	mbs_frame_init(c, &f, RELM_MBOX_ERROR);
	f.u.error.tag = tag;
	f.u.error.code = (uint16_t)code;
	f.u.error.flags = fatal ? RELM_MBOX_ERRF_FATAL : 0;
	f.u.error.text = text;
	f.u.error.text_len = text ? strlen(text) : 0;
	if (f.u.error.text_len > RELM_MBOX_ERROR_TEXT_MAX)
		f.u.error.text_len = RELM_MBOX_ERROR_TEXT_MAX;
	c->owner->stats->errors++;
	log_debug("mailbox: conn %p: error %s%s", (void *)c, relm_mbox_errname(code),
	          fatal ? " (closing)" : "");
	if (mbs_conn_send(c, &f) != 0 || !fatal)
		return;
	/* uv_shutdown waits for the writes libuv has, not for our buffer */
	if (conn_flush(c) != 0)
		return;
	conn_enter(c, MBS_CONN_CLOSING);
	c->closing_since = uv_now(c->owner->loop);
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = 0;
	}
	if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
		mbs_conn_close(c);
}

/* ---- the frames the connection answers itself ---- */

/* Token bucket: refill by elapsed loop time, then take cost if there. */
static int conn_take_tokens(struct mbs_conn *c, uint32_t cost)
{
	const struct relm_mbox_server_config *cfg = c->owner->cfg;
	uint64_t now = uv_now(c->owner->loop);

	c->tokens += (double)(now - c->tokens_at) * cfg->rate / 1000.0;
	if (c->tokens > cfg->burst)
		c->tokens = cfg->burst;
	c->tokens_at = now;
	if (c->tokens < cost)
		return 0;
	c->tokens -= cost;
	return 1;
}

/* The first four body bytes of every request are its tag; used to label
 * errors for frames we could not decode. */
static uint32_t guess_tag(const uint8_t *buf, size_t len)
{
	if (len < RELM_MBOX_HDR_LEN + 4)
		return 0;
	buf += RELM_MBOX_HDR_LEN;
	return (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
}

static void handle_hello(struct mbs_conn *c, const struct relm_mbox_hello *h)
{
	struct mbs_conn_owner *o = c->owner;
	const struct relm_mbox_server_config *cfg = o->cfg;
	struct relm_mbox_frame f;
	uint8_t v;

	if (h->flags != 0) {
		mbs_conn_error(c, 0, RELM_MBOX_E_BAD_REQUEST, 1, "unknown HELLO flags");
		return;
	}
	v = h->max_version < RELM_MBOX_VERSION_MAX ? h->max_version : RELM_MBOX_VERSION_MAX;
	if (v < h->min_version || v < RELM_MBOX_VERSION) {
		mbs_conn_error(c, 0, RELM_MBOX_E_VERSION, 1, "this server speaks versions 1 and 2");
		return;
	}
	randombytes_buf(c->nonce, sizeof(c->nonce));
	c->version = v;
	mbs_frame_init(c, &f, RELM_MBOX_CHALLENGE);
	f.u.challenge.version = v;
	memcpy(f.u.challenge.nonce, c->nonce, sizeof(c->nonce));
	f.u.challenge.max_envelope = RELM_MBOX_ENVELOPE_MAX;
	f.u.challenge.max_subs = cfg->max_subs;
	f.u.challenge.rate = cfg->rate;
	f.u.challenge.burst = cfg->burst;
	f.u.challenge.retention_s = (uint32_t)(cfg->retention_ms / 1000u > UINT32_MAX ?
	                                       UINT32_MAX : cfg->retention_ms / 1000u);
	if (v >= RELM_MBOX_VERSION_2) {
		/* this connection's exchange key, for key registrations */
		randombytes_buf(c->kx_sk, sizeof(c->kx_sk));
		crypto_scalarmult_base(c->kx_pk, c->kx_sk);
		memcpy(f.u.challenge.realm, o->realm, RELM_MBOX_REALM_LEN);
		memcpy(f.u.challenge.kx, c->kx_pk, RELM_MBOX_KX_LEN);
	}
	conn_enter(c, MBS_CONN_READY);
	c->tokens = cfg->burst;
	c->tokens_at = uv_now(o->loop);
	mbs_conn_send(c, &f);
}

static void handle_frame(struct mbs_conn *c, const uint8_t *buf, size_t len)
{
	struct relm_mbox_frame f;
	int rc;

	if (c->state == MBS_CONN_HELLO) {
		/* HELLO always travels as version 1, whatever the client speaks */
		rc = relm_mbox_frame_decode(&f, buf, len);
		if (rc == RELM_EVERSION || (rc == 0 && f.version != RELM_MBOX_VERSION))
			mbs_conn_error(c, 0, RELM_MBOX_E_VERSION, 1, "HELLO must be sent as version 1");
		else if (rc == 0 && f.type == RELM_MBOX_HELLO)
			handle_hello(c, &f.u.hello);
		else if (rc == RELM_EMALFORMED && f.type == RELM_MBOX_HELLO)
			mbs_conn_error(c, 0, RELM_MBOX_E_MALFORMED, 1, "malformed HELLO");
		else
			mbs_conn_error(c, 0, RELM_MBOX_E_BAD_STATE, 1, "HELLO must come first");
		return;
	}

	if (!conn_take_tokens(c, relm_mbox_cost(len))) {
		mbs_conn_error(c, guess_tag(buf, len), RELM_MBOX_E_RATE_LIMITED, 0,
		               "rate limit: request dropped");
		return;
	}
	/* every frame carries the negotiated version, checked before its body */
	if (buf[4] != c->version) {
		mbs_conn_error(c, 0, RELM_MBOX_E_VERSION, 1, "frame version differs from the negotiated one");
		return;
	}
	switch ((rc = relm_mbox_frame_decode(&f, buf, len))) {
	case 0:
		break;
	case RELM_ENOTFOUND:
		mbs_conn_error(c, guess_tag(buf, len), RELM_MBOX_E_UNKNOWN_TYPE, 0, "unknown frame type");
		return;
	case RELM_ETOOBIG:
		mbs_conn_error(c, guess_tag(buf, len), RELM_MBOX_E_TOO_BIG, 0, "envelope above 65536 bytes");
		return;
	default:
		mbs_conn_error(c, guess_tag(buf, len), RELM_MBOX_E_MALFORMED, 0, "malformed frame body");
		return;
	}

	switch (f.type) {
	case RELM_MBOX_POST:
	case RELM_MBOX_SUBSCRIBE:
	case RELM_MBOX_SUBSCRIBE_BATCH:
	case RELM_MBOX_UNSUBSCRIBE:
	case RELM_MBOX_LEASE:
		c->owner->request(c->owner, c, &f);
		break;
	case RELM_MBOX_PING: {
		struct relm_mbox_frame pong;

		mbs_frame_init(c, &pong, RELM_MBOX_PONG);
		pong.u.ping.tag = f.u.ping.tag;
		mbs_conn_send(c, &pong);
		break;
	}
	case RELM_MBOX_HELLO:
		mbs_conn_error(c, 0, RELM_MBOX_E_BAD_STATE, 1, "HELLO twice");
		break;
	default:
		/* a server-to-client type sent to the server */
		mbs_conn_error(c, guess_tag(buf, len), RELM_MBOX_E_BAD_STATE, 0,
		               "frame type not accepted by a server");
		break;
	}
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct mbs_conn *c = container_of((uv_tcp_t *)h, struct mbs_conn, tcp);
	size_t need = MBS_RBUF_INITIAL, flen;

	(void)suggested;
	/* Grow to the declared frame size (already bounded by peek) or, before
	 * the header is complete, keep a small buffer. */
	if (c->rlen >= 4 && relm_mbox_frame_peek(&flen, c->rbuf, c->rlen) == RELM_ETRUNCATED) {
		uint32_t l = (uint32_t)c->rbuf[0] << 24 | (uint32_t)c->rbuf[1] << 16 |
		             (uint32_t)c->rbuf[2] << 8 | c->rbuf[3];
		if (l <= RELM_MBOX_FRAME_MAX)
			need = 4 + (size_t)l;
	}
	if (need < c->rlen + 1)
		need = c->rlen + 1;
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

/* Reading may go on: neither the output queue nor a waiting request says stop. */
static int conn_can_read(const struct mbs_conn *c)
{
	return conn_open(c) && !c->blocked && c->outq <= c->owner->cfg->outq_max;
}

/* Handle every complete frame in the read buffer, then compact it. */
static void conn_process(struct mbs_conn *c)
{
	size_t pos = 0, flen;
	int rc;

	/* A store answer that unblocks c can come while c's frames are being
	 * handled (SQLite answers at once): the loop below goes on by itself. */
	if (c->in_process)
		return;
	c->in_process = 1;
	while (conn_can_read(c)) {
		rc = relm_mbox_frame_peek(&flen, c->rbuf + pos, c->rlen - pos);
		if (rc == RELM_ETRUNCATED)
			break;
		if (rc == RELM_ETOOBIG) {
			mbs_conn_error(c, 0, RELM_MBOX_E_TOO_BIG, 1, "frame length above 65582 bytes");
			break;
		}
		if (rc) {
			mbs_conn_error(c, 0, RELM_MBOX_E_MALFORMED, 1, "frame length below 2");
			break;
		}
		handle_frame(c, c->rbuf + pos, flen);
		pos += flen;
	}
	c->in_process = 0;
	if (c->state == MBS_CONN_CLOSED)
		return;
	if (pos) {
		memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
		c->rlen -= pos;
	}
	/* The frame deadline counts from a frame's first byte: a new partial
	 * frame starts the clock, more bytes of the same one do not (a frame
	 * trickled a byte at a time must not hold the connection for ever). */
	if (!c->rlen)
		c->frame_started = 0;
	else if (pos || !c->frame_started)
		c->frame_started = uv_now(c->owner->loop);
	if (!conn_can_read(c) && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = 0;
	}
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct mbs_conn *c = container_of((uv_tcp_t *)stream, struct mbs_conn, tcp);

	(void)buf;
	if (nread < 0) {
		mbs_conn_close(c);
		return;
	}
	if (nread == 0)
		return;
	c->rlen += (size_t)nread;
	c->last_rx = uv_now(c->owner->loop);
	mbs_hold(c->owner);
	conn_process(c);
	mbs_release(c->owner);
}

/* Reads were paused (full output queue, or a request waiting for the
 * store): handle what was buffered before the pause, then read again. */
static void conn_resume(struct mbs_conn *c)
{
	if (c->reading || !conn_open(c))
		return;
	conn_process(c);     /* frames buffered before the pause */
	if (!conn_can_read(c))
		return;
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
		c->reading = 1;
	else
		mbs_conn_close(c);
}

int mbs_conn_start(struct mbs_conn *c)
{
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
		return RELM_ECLOSED;
	c->reading = 1;
	return 0;
}

/*
 * conn.c — one client connection: see conn.h for the framing, scheduling,
 * backpressure and event-delivery rules, and for the state diagram that
 * conn_enter_state() enforces.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "api/conn.h"
#include "api/events.h"
#include "api/jsonrpc.h"
#include "api/utf8.h"
#include "error.h"
#include "limits.h"
#include "log.h"

#define conn_of(ptr, member) \
	((struct relmd_conn *)(void *)((char *)(ptr) - offsetof(struct relmd_conn, member)))

static void read_start(struct relmd_conn *c);

/* ---- the state machine --------------------------------------------------- */

static const char *const state_names[] = {
	[RELMD_CONN_NONE] = "none",
	[RELMD_CONN_OPEN] = "open",
	[RELMD_CONN_DRAINING] = "draining",
	[RELMD_CONN_CLOSING] = "closing",
	[RELMD_CONN_CLOSED] = "closed",
};

/* The only place c->state changes.  A transition the diagram in conn.h
 * does not draw is a bug in this file or in its owner: abort rather than
 * serve a connection whose state nobody can reason about. */
static void conn_enter_state(struct relmd_conn *c, enum relmd_conn_state to)
{
	static const unsigned legal[] = {
		[RELMD_CONN_NONE]     = 1u << RELMD_CONN_OPEN | 1u << RELMD_CONN_CLOSING,
		[RELMD_CONN_OPEN]     = 1u << RELMD_CONN_DRAINING | 1u << RELMD_CONN_CLOSING,
		[RELMD_CONN_DRAINING] = 1u << RELMD_CONN_CLOSING,
		[RELMD_CONN_CLOSING]  = 1u << RELMD_CONN_CLOSED,
		[RELMD_CONN_CLOSED]   = 0,
	};
	if ((unsigned)c->state > RELMD_CONN_CLOSED || !(legal[c->state] & (1u << to))) {
		log_err("client %llu: impossible state change %s -> %s", (unsigned long long)c->id,
			(unsigned)c->state <= RELMD_CONN_CLOSED ? state_names[c->state] : "?",
			state_names[to]);
		abort();
	}
	c->state = to;
}

/* What is true in each state (conn.h), checked at every entry point. */
#ifdef NDEBUG
#define conn_check(c) ((void)(c))
#else
static void conn_check(const struct relmd_conn *c)
{
	assert(c->state < RELMD_CONN_CLOSED);          /* never used after its close callback */
	assert(c->in_scan <= c->in_len && c->in_len <= c->in_cap);
	assert(c->in_len <= (size_t)RELM_LINE_MAX + 1);
	assert(c->writing == (c->wbuf.len > 0));
	switch (c->state) {
	case RELMD_CONN_NONE:
		assert(!c->reading && !c->writing && !c->runnable && !c->subscribed);
		assert(c->in_len == 0 && c->out.len == 0);
		break;
	case RELMD_CONN_OPEN:
		break;
	case RELMD_CONN_DRAINING:
		assert(!c->reading && !c->runnable && c->in_len == 0);
		break;
	case RELMD_CONN_CLOSING:
	case RELMD_CONN_CLOSED:
		assert(!c->reading && !c->runnable);
		break;
	}
}
#endif

struct relmd_conn *relmd_conn_new(struct relmd_conn_owner *o, uint64_t id)
{
	struct relmd_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->owner = o;
	c->id = id;
	c->state = RELMD_CONN_NONE;
	if (uv_pipe_init(o->loop, &c->pipe, 0) < 0) {
		free(c);
		return NULL;
	}
	return c;
}

size_t relmd_conn_queued(const struct relmd_conn *c)
{
	return c->out.len + c->wbuf.len;
}

/* Tell the owner when c starts or stops having requests to run. */
static void set_runnable(struct relmd_conn *c, int want)
{
	if (want == (int)c->runnable)
		return;
	c->runnable = want ? 1 : 0;
	c->owner->runnable(c->owner, c, c->runnable);
}

/* ---- closing ----------------------------------------------------------- */

static void on_close(uv_handle_t *h)
{
	struct relmd_conn *c = conn_of(h, pipe);
	conn_enter_state(c, RELMD_CONN_CLOSED);
	free(c->in);
	free(c->out.p);
	free(c->wbuf.p);
	c->owner->closed(c->owner, c);     /* unlinks; may finish a shutdown */
	free(c);
}

void relmd_conn_close(struct relmd_conn *c)
{
	conn_check(c);
	if (c->state == RELMD_CONN_CLOSING)
		return;
	conn_enter_state(c, RELMD_CONN_CLOSING);
	c->reading = 0;                    /* uv_close stops the read */
	set_runnable(c, 0);
	/* Pending writes complete with UV_ECANCELED before on_close. */
	uv_close((uv_handle_t *)&c->pipe, on_close);
}

void relmd_conn_refuse(struct relmd_conn *c, const char *line)
{
	conn_check(c);
	assert(c->state == RELMD_CONN_NONE);
	size_t n = strlen(line);
	char *nl = malloc(n + 1);
	if (nl) {
		memcpy(nl, line, n);
		nl[n] = '\n';
		uv_buf_t b = uv_buf_init(nl, (unsigned)n + 1);
		uv_try_write((uv_stream_t *)&c->pipe, &b, 1);   /* best effort */
		free(nl);
	}
	relmd_conn_close(c);
}

static int has_line(struct relmd_conn *c)
{
	if (c->in_scan >= c->in_len)
		return 0;
	if (memchr(c->in + c->in_scan, '\n', c->in_len - c->in_scan))
		return 1;
	c->in_scan = c->in_len;
	return 0;
}

/* Re-evaluate whether to read and whether requests are runnable. */
static void reschedule(struct relmd_conn *c)
{
	if (c->state == RELMD_CONN_CLOSING)
		return;
	int room = relmd_conn_queued(c) < RELMD_OUT_SOFT;
	int live = c->state == RELMD_CONN_OPEN;
	int budget = c->turn_ran < RELMD_REQ_PER_TURN;   /* else: wait for the next turn */
	int lines = live && has_line(c);
	set_runnable(c, live && room && lines && budget);
	int want_read = live && room && !lines && !c->eof && budget;
	if (want_read && !c->reading) {
		read_start(c);
	} else if (!want_read && c->reading) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = 0;
	}
}

void relmd_conn_drain(struct relmd_conn *c)
{
	conn_check(c);
	if (c->state == RELMD_CONN_DRAINING || c->state == RELMD_CONN_CLOSING)
		return;
	conn_enter_state(c, RELMD_CONN_DRAINING);
	c->in_len = c->in_scan = 0;
	reschedule(c);
	if (relmd_conn_queued(c) == 0)
		relmd_conn_close(c);
}

/* ---- output ------------------------------------------------------------- */

static int buf_reserve(struct relmd_buf *b, size_t more)
{
	if (b->cap - b->len >= more)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->len < more)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p)
		return RELM_ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int relmd_conn_send(struct relmd_conn *c, const char *line, size_t len)
{
	conn_check(c);
	if (c->state == RELMD_CONN_CLOSING)
		return RELM_ECLOSED;
	/* The last gate before the socket: whatever built the line (a reply,
	 * an event made from store rows), a client never gets invalid UTF-8. */
	if (!relmd_utf8_valid(line, len)) {
		log_err("client %llu: a %zu-byte line is not valid UTF-8: not sent",
			(unsigned long long)c->id, len);
		return RELM_EMALFORMED;
	}
	if (relmd_conn_queued(c) + len + 1 > RELMD_OUT_MAX) {
		log_warn("client %llu: output queue over %d bytes: closing",
			 (unsigned long long)c->id, RELMD_OUT_MAX);
		relmd_conn_close(c);
		return -ENOBUFS;
	}
	if (buf_reserve(&c->out, len + 1) < 0) {
		log_err("client %llu: out of memory queueing a reply: closing",
			(unsigned long long)c->id);
		relmd_conn_close(c);
		return RELM_ENOMEM;
	}
	memcpy(c->out.p + c->out.len, line, len);
	c->out.p[c->out.len + len] = '\n';
	c->out.len += len + 1;
	return 0;
}

static void on_write(uv_write_t *req, int status)
{
	struct relmd_conn *c = conn_of(req, wreq);
	c->writing = 0;
	c->wbuf.len = 0;
	conn_check(c);
	if (c->state == RELMD_CONN_CLOSING)
		return;                 /* UV_ECANCELED: on_close frees */
	if (status < 0) {
		/* The client went away mid-reply: its loss only. */
		log_debug("client %llu: write failed: %s", (unsigned long long)c->id,
			  uv_strerror(status));
		relmd_conn_close(c);
		return;
	}
	/* Do not keep a large buffer around for an idle client. */
	if (c->wbuf.cap > 4 * RELMD_IN_INITIAL) {
		free(c->wbuf.p);
		c->wbuf.p = NULL;
		c->wbuf.cap = 0;
	}
	if (c->state == RELMD_CONN_DRAINING && relmd_conn_queued(c) == 0) {
		relmd_conn_close(c);
		return;
	}
	/* Room again: pending events, then requests (the next turn's flush
	 * writes whatever this queues). */
	relmd_conn_pump(c);
	reschedule(c);
}

void relmd_conn_flush(struct relmd_conn *c)
{
	conn_check(c);
	if (c->state == RELMD_CONN_CLOSING)
		return;
	if (c->turn_ran) {
		/* A new turn: a new budget of requests (reading may resume). */
		c->turn_ran = 0;
		reschedule(c);
	}
	c->sub_turn = 0;
	c->out_mark = c->out.len;          /* all of it committed (the commit came first) */
	if (c->writing || c->out.len == 0)
		return;
	struct relmd_buf t = c->wbuf;
	c->wbuf = c->out;
	c->out = t;
	c->out.len = 0;
	c->out_mark = 0;
	uv_buf_t b = uv_buf_init(c->wbuf.p, (unsigned)c->wbuf.len);
	int r = uv_write(&c->wreq, (uv_stream_t *)&c->pipe, &b, 1, on_write);
	if (r < 0) {
		log_debug("client %llu: write: %s", (unsigned long long)c->id, uv_strerror(r));
		c->wbuf.len = 0;
		relmd_conn_close(c);
		return;
	}
	c->writing = 1;
}

void relmd_conn_retract_turn(struct relmd_conn *c, const char *message, const char *data_code)
{
	struct relmd_buf nb = { 0 };
	size_t at;

	conn_check(c);
	if (c->state == RELMD_CONN_CLOSING)
		return;
	if (c->sub_turn)
		c->subscribed = 0;
	if (c->out.len == c->out_mark)
		return;
	if (buf_reserve(&nb, c->out.len + 64) < 0)
		goto nomem;
	memcpy(nb.p, c->out.p, c->out_mark);
	nb.len = c->out_mark;
	for (at = c->out_mark; at < c->out.len; ) {
		const char *line = c->out.p + at;
		const char *nl = memchr(line, '\n', c->out.len - at);
		size_t n = (size_t)(nl - line);       /* every queued line ends with '\n' */
		char *r = NULL;
		if (jsonrpc_retract(line, n, JSONRPC_ENGINE_ERROR, message, data_code, &r) < 0)
			goto nomem;
		if (buf_reserve(&nb, (r ? strlen(r) : n) + 1) < 0) {
			cJSON_free(r);
			goto nomem;
		}
		memcpy(nb.p + nb.len, r ? r : line, r ? strlen(r) : n);
		nb.len += r ? strlen(r) : n;
		nb.p[nb.len++] = '\n';
		cJSON_free(r);
		at += n + 1;
	}
	free(c->out.p);
	c->out = nb;
	c->out_mark = nb.len;
	return;
nomem:
	free(nb.p);
	log_err("client %llu: out of memory withdrawing the replies of a lost turn: closing",
		(unsigned long long)c->id);
	relmd_conn_close(c);
}

/* ---- events ---------------------------------------------------------------- */

void relmd_conn_subscribe(struct relmd_conn *c, uint32_t mask, uint64_t next)
{
	conn_check(c);
	c->subscribed = 1;
	c->sub_turn = 1;
	c->sub_mask = mask;
	c->sub_next = next;
}

int relmd_conn_wants(const struct relmd_conn *c, int t)
{
	return c->subscribed && c->state == RELMD_CONN_OPEN && (c->sub_mask & (1u << t));
}

void relmd_conn_pump(struct relmd_conn *c)
{
	struct relmd_events *ev = c->owner->events;
	conn_check(c);
	if (!c->subscribed || c->state == RELMD_CONN_CLOSING)
		return;
	if (c->sub_next < relmd_events_oldest(ev)) {
		log_warn("client %llu: subscriber more than %zu events behind: disconnecting",
			 (unsigned long long)c->id, ev->cap);
		relmd_conn_close(c);
		return;
	}
	if (c->state != RELMD_CONN_OPEN)
		return;
	while (c->sub_next <= ev->last_seq && relmd_conn_queued(c) < RELMD_OUT_SOFT) {
		const char *line;
		size_t len;
		int type, owned;
		/* A type this subscriber filters out is skipped before its line
		 * is fetched: an event nobody wanted may have none built. */
		type = relmd_events_type(ev, c->sub_next);
		if (type >= 0 && !(c->sub_mask & (1u << type))) {
			c->sub_next++;
			continue;
		}
		if (relmd_events_get(ev, c->sub_next, &line, &len, &type, &owned) < 0) {
			log_warn("client %llu: subscriber fell behind the event retention "
				 "(event %llu is gone): disconnecting", (unsigned long long)c->id,
				 (unsigned long long)c->sub_next);
			relmd_conn_close(c);
			return;
		}
		int r = 0;
		if (c->sub_mask & (1u << type))
			r = relmd_conn_send(c, line, len);
		if (owned)
			free((char *)(uintptr_t)line);
		if (r < 0 && r != RELM_EMALFORMED)
			return;
		c->sub_next++;                /* sent, filtered out, or withheld */
	}
}

/* ---- input -------------------------------------------------------------------- */

static void handle_line(struct relmd_conn *c, const char *line, size_t len)
{
	char *resp = NULL;
	if (c->owner->request(c->owner, c, line, len, &resp) < 0) {
		log_err("client %llu: out of memory handling a request: closing",
			(unsigned long long)c->id);
		relmd_conn_close(c);
		return;
	}
	if (resp) {
		int r = relmd_conn_send(c, resp, strlen(resp));
		cJSON_free(resp);
		if (r == RELM_EMALFORMED) {
			/* The owner promised valid replies; a broken promise still
			 * gets the client an answer it can parse. */
			char *e = jsonrpc_error_line(NULL, JSONRPC_INTERNAL_ERROR,
						     "internal error: the reply would not be valid UTF-8",
						     relm_errname(RELM_ESTATE));
			if (e) {
				relmd_conn_send(c, e, strlen(e));
				cJSON_free(e);
			}
		}
	}
	relmd_conn_pump(c);
}

static void line_too_long(struct relmd_conn *c)
{
	char msg[96];
	snprintf(msg, sizeof msg, "invalid request: line longer than %d bytes", RELM_LINE_MAX);
	log_warn("client %llu: request line over %d bytes: closing", (unsigned long long)c->id,
		 RELM_LINE_MAX);
	char *e = jsonrpc_error_line(NULL, JSONRPC_INVALID_REQUEST, msg, relm_errname(RELM_ETOOBIG));
	if (e) {
		relmd_conn_send(c, e, strlen(e));
		cJSON_free(e);
	}
	relmd_conn_drain(c);
}

static int blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

void relmd_conn_process(struct relmd_conn *c)
{
	size_t off = 0;
	conn_check(c);
	/* The budget is per turn, not per call: libuv calls on_read several
	 * times in one turn while a socket has data, and the owner's idle may
	 * call this too; relmd_conn_flush starts the next turn's budget. */
	while (c->state == RELMD_CONN_OPEN &&
	       c->turn_ran < RELMD_REQ_PER_TURN && relmd_conn_queued(c) < RELMD_OUT_SOFT) {
		size_t from = c->in_scan > off ? c->in_scan : off;
		char *nl = memchr(c->in + from, '\n', c->in_len - from);
		if (!nl) {
			c->in_scan = c->in_len;
			break;
		}
		size_t end = (size_t)(nl - c->in);
		size_t start = off;
		off = end + 1;
		c->in_scan = off;
		size_t len = end - start;
		if (len > RELM_LINE_MAX) {
			line_too_long(c);
			return;
		}
		if (len && c->in[start + len - 1] == '\r')
			len--;
		if (blank(c->in + start, len))
			continue;
		c->turn_ran++;
		handle_line(c, c->in + start, len);
	}
	if (c->state != RELMD_CONN_OPEN)
		return;
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
		c->in_scan = c->in_scan >= off ? c->in_scan - off : 0;
	}
	if (!has_line(c)) {
		if (c->in_len > RELM_LINE_MAX) {
			line_too_long(c);
			return;
		}
		if (c->eof) {
			/* EOF: an unterminated last line still counts. */
			if (c->in_len && !blank(c->in, c->in_len)) {
				c->turn_ran++;
				handle_line(c, c->in, c->in_len);
			}
			if (c->state == RELMD_CONN_OPEN) {
				c->in_len = c->in_scan = 0;
				relmd_conn_drain(c);
			}
			return;
		}
		/* Idle client: give back a buffer grown for a long line. */
		if (c->in_len == 0 && c->in_cap > 4 * RELMD_IN_INITIAL) {
			free(c->in);
			c->in = NULL;
			c->in_cap = 0;
		}
	}
	reschedule(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct relmd_conn *c = conn_of(h, pipe);
	const size_t max = (size_t)RELM_LINE_MAX + 1;   /* a full line and its '\n' */
	*buf = uv_buf_init(NULL, 0);                     /* → UV_ENOBUFS in on_read */
	size_t want = max - c->in_len < RELMD_IN_CHUNK ? max - c->in_len : RELMD_IN_CHUNK;
	if (want == 0)
		return;
	if (c->in_cap - c->in_len < want) {
		size_t cap = c->in_cap ? c->in_cap : RELMD_IN_INITIAL;
		while (cap - c->in_len < want)
			cap *= 2;
		if (cap > max)
			cap = max;
		char *p = realloc(c->in, cap);
		if (!p)
			return;
		c->in = p;
		c->in_cap = cap;
	}
	*buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len < want ?
							  c->in_cap - c->in_len : want));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct relmd_conn *c = conn_of(s, pipe);
	conn_check(c);
	if (c->state != RELMD_CONN_OPEN)
		return;
	if (nread > 0) {
		c->in_len += (size_t)nread;
		relmd_conn_process(c);
	} else if (nread == UV_EOF) {
		c->eof = 1;
		uv_read_stop(s);
		c->reading = 0;
		relmd_conn_process(c);
	} else if (nread < 0) {
		log_debug("client %llu: read: %s", (unsigned long long)c->id, uv_strerror((int)nread));
		relmd_conn_close(c);
	}
}

static void read_start(struct relmd_conn *c)
{
	int r = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
	if (r < 0) {
		log_warn("client %llu: read_start: %s", (unsigned long long)c->id, uv_strerror(r));
		relmd_conn_close(c);
		return;
	}
	c->reading = 1;
}

void relmd_conn_start(struct relmd_conn *c)
{
	conn_check(c);
	conn_enter_state(c, RELMD_CONN_OPEN);
	reschedule(c);
}

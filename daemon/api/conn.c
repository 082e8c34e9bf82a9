/*
 * conn.c — one client connection: see conn.h for the framing, scheduling,
 * backpressure and event-delivery rules.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/conn.h"
#include "error.h"
#include "api/jsonrpc.h"
#include "limits.h"
#include "log.h"
#include "api/server.h"

static void read_start(struct relmd_conn *c);

struct relmd_conn *relmd_conn_new(struct relmd *d)
{
	struct relmd_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->d = d;
	c->id = ++d->next_conn_id;
	if (uv_pipe_init(&d->loop, &c->pipe, 0) < 0) {
		free(c);
		return NULL;
	}
	return c;
}

size_t relmd_conn_queued(const struct relmd_conn *c)
{
	return c->out.len + c->wbuf.len;
}

/* ---- closing ----------------------------------------------------------- */

static void on_close(uv_handle_t *h)
{
	struct relmd_conn *c = relmd_container_of(h, struct relmd_conn, pipe);
	struct relmd *d = c->d;
	free(c->in);
	free(c->out.p);
	free(c->wbuf.p);
	relmd__conn_closed(d, c);     /* unlinks; may finish a shutdown */
	free(c);
}

void relmd_conn_close(struct relmd_conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	c->reading = 0;
	relmd__queue_update(c->d, c, 0);
	/* Pending writes complete with UV_ECANCELED before on_close. */
	uv_close((uv_handle_t *)&c->pipe, on_close);
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
	if (c->closing)
		return;
	int room = relmd_conn_queued(c) < RELMD_OUT_SOFT;
	int live = !c->draining && c->d->state == RELMD_RUNNING;
	int lines = live && has_line(c);
	relmd__queue_update(c->d, c, live && room && lines);
	int want_read = live && room && !lines && !c->eof;
	if (want_read && !c->reading) {
		read_start(c);
	} else if (!want_read && c->reading) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = 0;
	}
}

void relmd_conn_drain(struct relmd_conn *c)
{
	if (c->closing)
		return;
	c->draining = 1;
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
	if (c->closing)
		return RELM_ECLOSED;
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
	struct relmd_conn *c = relmd_container_of(req, struct relmd_conn, wreq);
	c->writing = 0;
	c->wbuf.len = 0;
	if (c->closing)
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
	if (c->draining && relmd_conn_queued(c) == 0) {
		relmd_conn_close(c);
		return;
	}
	/* Room again: pending events, then requests (the next turn's flush
	 * writes whatever this queues). */
	relmd_conn_pump(c);
	if (!c->closing)
		reschedule(c);
}

void relmd_conn_flush(struct relmd_conn *c)
{
	if (c->closing || c->writing || c->out.len == 0)
		return;
	struct relmd_buf t = c->wbuf;
	c->wbuf = c->out;
	c->out = t;
	c->out.len = 0;
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

/* ---- events ---------------------------------------------------------------- */

void relmd_conn_pump(struct relmd_conn *c)
{
	struct relmd_events *ev = &c->d->events;
	if (!c->subscribed || c->closing || c->draining)
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
		if (r < 0)
			return;
		c->sub_next++;
	}
}

int relmd_api_subscribe(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct relmd_conn *c = call->conn;
	if (!c)
		return RELM_EINVAL;
	struct relmd_events *ev = &c->d->events;
	uint32_t mask = RELMD_EV_ALL;
	const cJSON *types = cJSON_GetObjectItemCaseSensitive(params, "events");
	if (types) {
		const cJSON *it;
		mask = 0;
		cJSON_ArrayForEach(it, types)
			mask |= 1u << relmd_event_type_index(it->valuestring);  /* validated */
	}
	const cJSON *since = cJSON_GetObjectItemCaseSensitive(params, "since");
	uint64_t oldest = relmd_events_oldest(ev);
	int gap = 0;
	uint64_t next = ev->last_seq + 1;
	if (since) {
		uint64_t s = (uint64_t)since->valuedouble;   /* validated: integer in [0, 2^53] */
		if (s > ev->last_seq) {
			/* The client saw seqs we never issued: this daemon's
			 * numbering restarted (no persistence).  Say so. */
			gap = 1;
		} else if (s + 1 < oldest) {
			gap = 1;
			next = oldest;
		} else {
			next = s + 1;
		}
	}
	cJSON *res = cJSON_CreateObject();
	if (!res || !cJSON_AddNumberToObject(res, "seq", (double)ev->last_seq) ||
	    !cJSON_AddNumberToObject(res, "oldest", (double)oldest) ||
	    !cJSON_AddNumberToObject(res, "replay", (double)(ev->last_seq + 1 - next)) ||
	    !cJSON_AddBoolToObject(res, "gap", gap)) {
		cJSON_Delete(res);
		return RELM_ENOMEM;
	}
	c->subscribed = 1;
	c->sub_mask = mask;
	c->sub_next = next;
	/* The replay starts after this reply is queued (handle_line pumps). */
	*result = res;
	return 0;
}

/* ---- input -------------------------------------------------------------------- */

static void handle_line(struct relmd_conn *c, const char *line, size_t len)
{
	struct relmd *d = c->d;
	struct relmd_call_ctx cc = {
		.methods = &d->methods,
		.base = { .d = d, .conn = c, .app = d->hooks.ctx },
	};
	char *resp = NULL;
	if (jsonrpc_process(line, len, relmd_methods_call, &cc, &resp) < 0) {
		log_err("client %llu: out of memory handling a request: closing",
			(unsigned long long)c->id);
		relmd_conn_close(c);
		return;
	}
	if (resp) {
		relmd_conn_send(c, resp, strlen(resp));
		cJSON_free(resp);
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
	int n = 0;
	while (!c->closing && !c->draining && c->d->state == RELMD_RUNNING &&
	       n < RELMD_REQ_PER_TURN && relmd_conn_queued(c) < RELMD_OUT_SOFT) {
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
		handle_line(c, c->in + start, len);
		n++;
	}
	if (c->closing || c->draining)
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
			if (c->in_len && !blank(c->in, c->in_len) && c->d->state == RELMD_RUNNING)
				handle_line(c, c->in, c->in_len);
			c->in_len = c->in_scan = 0;
			if (!c->closing)
				relmd_conn_drain(c);
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
	struct relmd_conn *c = relmd_container_of(h, struct relmd_conn, pipe);
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
	struct relmd_conn *c = relmd_container_of(s, struct relmd_conn, pipe);
	if (c->closing)
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
	reschedule(c);
}

/*
 * sse.c — relmd's events as a Server-Sent Events stream (sse.h).
 */
#include "web/sse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "log.h"
#include "web/bridge.h"

struct sse {
	int fd;                         /* relmd, subscribed */
	int wake_fd;
	int keepalive_ms;
	struct bridge_reader in;
	char *out;                      /* formatted, not yet handed to the HTTP layer */
	size_t out_len, out_off, out_cap;
	int ended;
};

long long sse_parse_seq(const char *s)
{
	if (!s || !*s || strlen(s) > 16)
		return -1;
	long long v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v > (1LL << 53) ? -1 : v;
}

/* Append to the pending output.  0 or -ENOMEM. */
static int out_add(struct sse *s, const char *a, size_t n)
{
	if (s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
	if (s->out_len + n > s->out_cap) {
		size_t cap = s->out_cap ? s->out_cap : 4096;
		while (cap < s->out_len + n)
			cap *= 2;
		char *p = realloc(s->out, cap);
		if (!p)
			return -ENOMEM;
		s->out = p;
		s->out_cap = cap;
	}
	memcpy(s->out + s->out_len, a, n);
	s->out_len += n;
	return 0;
}

/* One SSE event: optional `event:` and `id:` lines, one `data:` line.
 * JSON printed unformatted has no line breaks (they are escaped inside
 * strings), so one data line carries it whole. */
static int out_event(struct sse *s, const char *type, long long id, const cJSON *data)
{
	char *json = cJSON_PrintUnformatted(data);
	if (!json)
		return -ENOMEM;
	char head[96];
	int n = 0;
	if (type)
		n += snprintf(head + n, sizeof head - (size_t)n, "event: %s\n", type);
	if (id >= 0)
		n += snprintf(head + n, sizeof head - (size_t)n, "id: %lld\n", id);
	int r = out_add(s, head, (size_t)n);
	if (!r)
		r = out_add(s, "data: ", 6);
	if (!r)
		r = out_add(s, json, strlen(json));
	if (!r)
		r = out_add(s, "\n\n", 2);
	cJSON_free(json);
	return r;
}

void sse_free(void *cls)
{
	struct sse *s = cls;
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	bridge_reader_clear(&s->in);
	free(s->out);
	free(s);
}

struct sse *sse_open(const char *sock, long long since, int keepalive_ms, int wake_fd,
		     int *err, char **reply)
{
	*err = 0;
	*reply = NULL;
	struct sse *s = calloc(1, sizeof *s);
	if (!s) {
		*err = -ENOMEM;
		return NULL;
	}
	s->wake_fd = wake_fd;
	s->keepalive_ms = keepalive_ms;
	bridge_reader_init(&s->in, SSE_LINE_MAX);
	s->fd = bridge_connect(sock);
	if (s->fd < 0) {
		*err = s->fd;
		goto fail;
	}
	char req[128];
	int n = since >= 0
		? snprintf(req, sizeof req,
			   "{\"jsonrpc\":\"2.0\",\"id\":\"sse\",\"method\":\"subscribe\",\"params\":{\"since\":%lld}}\n",
			   since)
		: snprintf(req, sizeof req,
			   "{\"jsonrpc\":\"2.0\",\"id\":\"sse\",\"method\":\"subscribe\",\"params\":{}}\n");
	*err = bridge_write_all(s->fd, req, (size_t)n, BRIDGE_CALL_TIMEOUT_MS);
	if (*err)
		goto fail;
	/* The reply comes first: relmd sends events only from it on. */
	char *line = NULL;
	size_t len = 0;
	int r = bridge_read_line(s->fd, &s->in, BRIDGE_CALL_TIMEOUT_MS, wake_fd, &line, &len);
	if (r != 1) {
		*err = r == 0 ? -ETIMEDOUT : r;
		goto fail;
	}
	cJSON *j = cJSON_ParseWithLength(line, len);
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "result");
	if (!cJSON_IsObject(res)) {
		cJSON_Delete(j);
		*reply = line;
		*err = -EPROTO;
		goto fail;
	}
	free(line);
	r = out_add(s, "retry: ", 7);
	char retry[24];
	n = snprintf(retry, sizeof retry, "%d\n", SSE_RETRY_MS);
	if (!r)
		r = out_add(s, retry, (size_t)n);
	/* Its id is where the stream takes over: `since` when resuming, else
	 * the last seq issued.  A browser that loses the stream before any
	 * event then still reconnects with a Last-Event-ID, and misses nothing
	 * (a replay not yet delivered is asked for again). */
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(res, "seq");
	long long from = since >= 0 ? since : cJSON_IsNumber(seq) ? (long long)seq->valuedouble : -1;
	if (!r)
		r = out_event(s, "subscribed", from, res);
	cJSON_Delete(j);
	if (r) {
		*err = r;
		goto fail;
	}
	return s;
fail:
	sse_free(s);
	return NULL;
}

/* Turn one line from relmd into SSE.  Events become events; anything else
 * (relmd's error line before it disconnects a lagging subscriber) ends the
 * stream.  0, 1 = end, or -ENOMEM. */
static int handle_line(struct sse *s, const char *line, size_t len)
{
	cJSON *j = cJSON_ParseWithLength(line, len);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "method");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "params");
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(p, "seq");
	int r;
	if (cJSON_IsString(m) && !strcmp(m->valuestring, "event") && cJSON_IsObject(p) &&
	    cJSON_IsNumber(seq) && seq->valuedouble >= 0) {
		r = out_event(s, NULL, (long long)seq->valuedouble, p);
	} else {
		log_info("event stream: relmd sent a line that is not an event; ending the stream");
		r = 1;
	}
	cJSON_Delete(j);
	return r;
}

ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse *s = cls;
	(void)pos;
	while (s->out_off == s->out_len) {
		if (s->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		char *line = NULL;
		size_t len = 0;
		int r = bridge_read_line(s->fd, &s->in, s->keepalive_ms, s->wake_fd, &line, &len);
		if (r == 0) {
			if (out_add(s, ": keepalive\n\n", 13))
				return MHD_CONTENT_READER_END_WITH_ERROR;
			break;
		}
		if (r < 0) {
			/* relmd closed (shutdown, lagging subscriber), relm-web is
			 * stopping, or the line was too long: end the stream; the
			 * browser reconnects with its Last-Event-ID. */
			if (r != -ECONNRESET && r != -ECANCELED)
				log_info("event stream ended: %s", strerror(-r));
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		r = handle_line(s, line, len);
		free(line);
		if (r < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (r > 0)
			s->ended = 1;
	}
	size_t n = s->out_len - s->out_off;
	if (n > max)
		n = max;
	memcpy(buf, s->out + s->out_off, n);
	s->out_off += n;
	return (ssize_t)n;
}

/*
 * util_web.c — a relm-web under test, and raw HTTP and SSE clients for it
 * (util_web.h).
 */
#include "util_web.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

/* ---- a relm-web under test ---------------------------------------------------- */


/* Start relm-web for relmd's socket; fills port, token, url.  0 or -1. */
int tw_web_exec(struct tw_web *w, const char *sock, const char *idle, const char *listen)
{
	char s[TD_PATH_MAX + 16], i[16], l[64];
	snprintf(s, sizeof s, "%s", sock);
	snprintf(i, sizeof i, "%s", idle);
	snprintf(l, sizeof l, "%s", listen);
	char *argv[] = { "relm-web", "--socket", s, "--idle-timeout", i, "--listen", l, NULL };
	snprintf(w->out, sizeof w->out, "%s/web.out", w->dir);
	snprintf(w->log, sizeof w->log, "%s/web.log", w->dir);
	unlink(w->out);
	w->pid = td_spawn("relm-web", argv, w->out, w->log);
	if (w->pid < 0)
		return -1;
	long long end = td_now_ms() + TD_START_MS;
	while (td_now_ms() < end) {
		FILE *f = fopen(w->out, "r");
		char line[200] = "";
		if (f) {
			if (!fgets(line, sizeof line, f))
				line[0] = '\0';
			fclose(f);
		}
		char *nl = strchr(line, '\n');
		if (nl) {
			*nl = '\0';
			snprintf(w->url, sizeof w->url, "%s", line);
			const char *t = strstr(line, "/?token=");
			if (sscanf(line, "http://127.0.0.1:%d/", &w->port) != 1 || !t)
				return -1;
			snprintf(w->token, sizeof w->token, "%s", t + 8);
			return 0;
		}
		if (!td_alive(w->pid))
			return -1;
		td_sleep_ms(20);
	}
	return -1;
}

/* A mailbox, relmd "alice" and relm-web in front of it. */
void tw_web_start(struct tw_web *w, const char *idle)
{
	memset(w, 0, sizeof *w);
	td_dir_new(w->dir, sizeof w->dir);
	ck_assert_int_eq(td_mbox_start(&w->mbox, w->dir, "mailbox", 0), 0);
	ck_assert_int_eq(td_relmd_start(&w->relmd, w->dir, "alice", w->mbox.port), 0);
	ck_assert_msg(tw_web_exec(w, w->relmd.sock, idle, "127.0.0.1:0") == 0, "relm-web did not start");
}

/* ---- a raw HTTP client ---------------------------------------------------------- */

int tw_tcp_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s", strerror(errno));
	return fd;
}

void tw_send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;            /* the server closed: the reply says why */
		p += w;
		n -= (size_t)w;
	}
}

/* Read until EOF or timeout; returns bytes (NUL-terminated, malloc'd). */
char *tw_read_all(int fd, int timeout_ms, size_t *len, int *eof)
{
	size_t cap = 65536, n = 0;
	char *b = malloc(cap + 1);
	long long end = td_now_ms() + timeout_ms;
	*eof = 0;
	ck_assert_ptr_nonnull(b);
	for (;;) {
		long long left = end - td_now_ms();
		if (left <= 0)
			break;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		if (cap - n < 4096) {
			cap *= 2;
			b = realloc(b, cap + 1);
			ck_assert_ptr_nonnull(b);
		}
		ssize_t r = read(fd, b + n, cap - n);       /* a socket or a log file */
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			*eof = 1;
			break;
		}
		n += (size_t)r;
	}
	b[n] = '\0';
	*len = n;
	return b;
}


void tw_resp_free(struct tw_resp *r)
{
	free(r->raw);
	memset(r, 0, sizeof *r);
}

void tw_parse_resp(struct tw_resp *r, char *raw, size_t n)
{
	r->raw = raw;
	r->status = 0;
	sscanf(raw, "HTTP/1.%*d %d", &r->status);
	char *e = strstr(raw, "\r\n\r\n");
	r->body = e ? e + 4 : raw + n;
	r->body_len = (size_t)(raw + n - r->body);
}

/* The value of header name in r (first match), or NULL.  Points into a
 * static copy: use before the next call. */
const char *tw_hdr(const struct tw_resp *r, const char *name)
{
	static char v[1024];
	size_t nl = strlen(name);
	for (const char *p = strstr(r->raw, "\r\n"); p && p < r->body; p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2;
		if (!strncasecmp(line, name, nl) && line[nl] == ':') {
			const char *s = line + nl + 1, *end = strstr(s, "\r\n");
			while (*s == ' ')
				s++;
			snprintf(v, sizeof v, "%.*s", (int)(end - s), s);
			return v;
		}
	}
	return NULL;
}


struct tw_resp tw_exchange(int port, const char *head, size_t head_len, const char *body,
			   size_t body_len)
{
	int fd = tw_tcp_connect(port);
	tw_send_all(fd, head, head_len);
	if (body)
		tw_send_all(fd, body, body_len);
	struct tw_resp r = { 0 };
	size_t len;
	char *raw = tw_read_all(fd, 10000, &len, &r.eof);
	close(fd);
	tw_parse_resp(&r, raw, len);
	return r;
}

/* One request on a fresh connection ("Connection: close"), the whole
 * response read.  extra: more header lines, each ending "\r\n". */
struct tw_resp tw_request(const struct tw_web *w, const char *method, const char *path,
			   unsigned flags, const char *extra, const char *body, size_t body_len)
{
	char head[4096];
	int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n",
			 method, path, w->port);
	if (flags & TW_COOKIE)
		n += snprintf(head + n, sizeof head - (size_t)n, "Cookie: relm_web_%d=%s\r\n", w->port, w->token);
	if (flags & TW_ORIGIN)
		n += snprintf(head + n, sizeof head - (size_t)n, "Origin: http://127.0.0.1:%d\r\n", w->port);
	if (flags & TW_JSON)
		n += snprintf(head + n, sizeof head - (size_t)n, "Content-Type: application/json\r\n");
	if (flags & TW_TEXT)
		n += snprintf(head + n, sizeof head - (size_t)n, "Content-Type: text/plain\r\n");
	if (body)
		n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n", body_len);
	n += snprintf(head + n, sizeof head - (size_t)n, "%s\r\n", extra ? extra : "");
	ck_assert_int_lt(n, (int)sizeof head);
	return tw_exchange(w->port, head, (size_t)n, body, body_len);
}

struct tw_resp tw_api(const struct tw_web *w, unsigned flags, const char *body)
{
	return tw_request(w, "POST", "/api", flags, NULL, body, strlen(body));
}


/* reply.error.data.code of a JSON body, "" when none. */
const char *tw_err_name(const struct tw_resp *r, char *buf, size_t n)
{
	cJSON *j = cJSON_ParseWithLength(r->body, r->body_len);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "data"), "code");
	snprintf(buf, n, "%s", cJSON_IsString(c) ? c->valuestring : "");
	cJSON_Delete(j);
	return buf;
}

int tw_err_code(const struct tw_resp *r)
{
	cJSON *j = cJSON_ParseWithLength(r->body, r->body_len);
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "error"), "code");
	int v = cJSON_IsNumber(c) ? c->valueint : 0;
	cJSON_Delete(j);
	return v;
}

void tw_assert_refused(const struct tw_resp *r, int status, const char *name)
{
	char b[64];
	ck_assert_msg(r->status == status, "status %d, want %d: %s", r->status, status, r->raw);
	ck_assert_str_eq(tw_err_name(r, b, sizeof b), name);
}

/* How many protons relmd holds: a refused request must have changed nothing. */
int tw_protons(const struct tw_web *w)
{
	cJSON *r = td_must(w->relmd.sock, "proton.list", "{}");
	int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(td_res(r), "protons"));
	cJSON_Delete(r);
	return n;
}


/* Run relm-web expecting it to exit by itself: its wait status. */
int tw_web_status(struct tw_web *w, const char *sock, const char *listen)
{
	char s[TD_PATH_MAX + 16], l[64];
	snprintf(s, sizeof s, "%s", sock);
	snprintf(l, sizeof l, "%s", listen);
	char *argv[] = { "relm-web", "--socket", s, "--listen", l, NULL };
	snprintf(w->out, sizeof w->out, "%s/web.out", w->dir);
	snprintf(w->log, sizeof w->log, "%s/web.log", w->dir);
	w->pid = td_spawn("relm-web", argv, w->out, w->log);
	ck_assert_int_gt(w->pid, 0);
	return td_stop(&w->pid, 0, 5000);      /* signal 0: only wait */
}



void tw_sse_connect(struct tw_sse *c, const struct tw_web *w, const char *path, const char *extra)
{
	memset(c, 0, sizeof *c);
	c->fd = tw_tcp_connect(w->port);
	char head[512];
	int n = snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
			 "Cookie: relm_web_%d=%s\r\nAccept: text/event-stream\r\n%s\r\n",
			 path, w->port, w->port, w->token, extra ? extra : "");
	tw_send_all(c->fd, head, (size_t)n);
}

void tw_sse_close(struct tw_sse *c)
{
	close(c->fd);
	free(c->raw);
	free(c->body);
}

static void append(char **buf, size_t *len, const char *p, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	ck_assert_ptr_nonnull(*buf);
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = '\0';
}

/* Move what raw holds through the chunked decoding into body. */
static void dechunk(struct tw_sse *c)
{
	if (!c->in_body) {
		char *e = c->raw ? strstr(c->raw, "\r\n\r\n") : NULL;
		if (!e)
			return;
		ck_assert_msg(!strncmp(c->raw, "HTTP/1.1 200", 12), "%.200s", c->raw);
		ck_assert_ptr_nonnull(strcasestr(c->raw, "Transfer-Encoding: chunked"));
		size_t h = (size_t)(e + 4 - c->raw);
		memmove(c->raw, c->raw + h, c->raw_len - h);
		c->raw_len -= h;
		c->in_body = 1;
	}
	for (;;) {
		if (c->chunk_left > 0) {
			size_t n = c->raw_len < (size_t)c->chunk_left ? c->raw_len : (size_t)c->chunk_left;
			if (!n)
				return;
			append(&c->body, &c->body_len, c->raw, n);
			memmove(c->raw, c->raw + n, c->raw_len - n);
			c->raw_len -= n;
			c->chunk_left -= (long)n;
			if (c->chunk_left)
				return;
			c->chunk_left = -2;             /* the CRLF after the data */
		}
		if (c->chunk_left == -2) {
			if (c->raw_len < 2)
				return;
			memmove(c->raw, c->raw + 2, c->raw_len - 2);
			c->raw_len -= 2;
			c->chunk_left = 0;
		}
		char *nl = c->raw_len ? memmem(c->raw, c->raw_len, "\r\n", 2) : NULL;
		if (!nl)
			return;
		long size = strtol(c->raw, NULL, 16);
		size_t h = (size_t)(nl + 2 - c->raw);
		memmove(c->raw, c->raw + h, c->raw_len - h);
		c->raw_len -= h;
		if (size == 0) {
			c->eof = 1;
			return;
		}
		c->chunk_left = size;
	}
}

/* The next event (comments skipped), or 0 after timeout_ms / the end. */
int tw_sse_next(struct tw_sse *c, struct tw_event *ev, int timeout_ms)
{
	long long end = td_now_ms() + timeout_ms;
	for (;;) {
		char *sep = c->body ? strstr(c->body, "\n\n") : NULL;
		while (sep) {
			size_t n = (size_t)(sep + 2 - c->body);
			char *block = strndup(c->body, n);
			memmove(c->body, c->body + n, c->body_len - n + 1);
			c->body_len -= n;
			memset(ev, 0, sizeof *ev);
			ev->id = -1;
			int fields = 0;
			for (char *line = strtok(block, "\n"); line; line = strtok(NULL, "\n")) {
				if (!strncmp(line, "id: ", 4)) {
					ev->id = atoll(line + 4);
					fields++;
				} else if (!strncmp(line, "event: ", 7)) {
					snprintf(ev->type, sizeof ev->type, "%s", line + 7);
					fields++;
				} else if (!strncmp(line, "data: ", 6)) {
					ev->data = strdup(line + 6);
					fields++;
				}
			}
			free(block);
			if (ev->data)
				return 1;
			(void)fields;                   /* a comment or retry: next */
			sep = strstr(c->body, "\n\n");
		}
		if (c->eof)
			return 0;
		long long left = end - td_now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		char buf[65536];
		ssize_t r = recv(c->fd, buf, sizeof buf, 0);
		if (r <= 0) {
			c->eof = 1;
			continue;
		}
		append(&c->raw, &c->raw_len, buf, (size_t)r);
		dechunk(c);
	}
}


/*
 * util_web.h — a relm-web under test (tests/check_web.c): started in front
 * of a real relmd, and spoken to with requests written by hand — raw bytes
 * on a TCP socket — so a test can send what no browser would, and with an
 * event-stream client that undoes the chunked encoding and splits SSE
 * events.  Every wait is bounded; failures fail the test (ck_assert).
 */
#ifndef RELM_TESTS_UTIL_WEB_H
#define RELM_TESTS_UTIL_WEB_H

#include <stddef.h>
#include <sys/types.h>

#include "util_daemon.h"
#include "web/guard.h"

/* A mailbox, relmd "alice" and relm-web in front of it, in one folder. */
struct tw_web {
	char dir[TD_PATH_MAX];
	struct td_mbox mbox;
	struct td_relmd relmd;
	pid_t pid;
	int port;
	char token[WEB_TOKEN_LEN + 1];
	char url[200];              /* as long as the line it is read from */
	char out[300], log[300];
};

/* One response, read to the end: status line, headers, body. */
struct tw_resp {
	int status;                     /* 0: no response at all */
	char *raw;
	const char *body;
	size_t body_len;
	int eof;
};

/* Request flags for tw_request. */
enum {
	TW_COOKIE = 1 << 0,                /* the right cookie */
	TW_ORIGIN = 1 << 1,                /* the page's own Origin */
	TW_JSON = 1 << 2,                  /* Content-Type: application/json */
	TW_TEXT = 1 << 3,                  /* Content-Type: text/plain */
};
#define TW_GOOD (TW_COOKIE | TW_ORIGIN | TW_JSON)

/* An SSE client over a raw socket: de-chunks the body and splits events. */
struct tw_sse {
	int fd;
	char *raw;                      /* bytes received, not yet de-chunked */
	size_t raw_len;
	char *body;                     /* de-chunked, not yet parsed into events */
	size_t body_len;
	int in_body;
	int eof;
	long chunk_left;                /* bytes of the current chunk still to come */
};

struct tw_event {
	long long id;                   /* -1 when the event has no id: */
	char type[32];
	char *data;
};

/* Start relm-web for relmd's socket; fills port, token, url.  0 or -1. */
int tw_web_exec(struct tw_web *w, const char *sock, const char *idle, const char *listen);

/* A mailbox, relmd "alice" and relm-web in front of it. */
void tw_web_start(struct tw_web *w, const char *idle);

/* A TCP connection to 127.0.0.1:port (fails the test if refused). */
int tw_tcp_connect(int port);

/* Send all of p; stops quietly when the server has closed (its reply says why). */
void tw_send_all(int fd, const char *p, size_t n);

/* Read until EOF or timeout; returns bytes (NUL-terminated, malloc'd). */
char *tw_read_all(int fd, int timeout_ms, size_t *len, int *eof);

void tw_resp_free(struct tw_resp *r);

/* Split raw (n bytes, taken over by r) into status, headers and body. */
void tw_parse_resp(struct tw_resp *r, char *raw, size_t n);

/* The value of header name in r (first match), or NULL.  Points into a
 * static copy: use before the next call. */
const char *tw_hdr(const struct tw_resp *r, const char *name);

/* head (and body, if not NULL) on a fresh connection; the whole response. */
struct tw_resp tw_exchange(int port, const char *head, size_t head_len, const char *body,
			   size_t body_len);

/* One request on a fresh connection ("Connection: close"), the whole
 * response read.  extra: more header lines, each ending "\r\n". */
struct tw_resp tw_request(const struct tw_web *w, const char *method, const char *path,
			   unsigned flags, const char *extra, const char *body, size_t body_len);

/* POST /api with body and the header lines flags ask for. */
struct tw_resp tw_api(const struct tw_web *w, unsigned flags, const char *body);

/* reply.error.data.code of a JSON body, "" when none. */
const char *tw_err_name(const struct tw_resp *r, char *buf, size_t n);

/* reply.error.code of a JSON body, 0 when none. */
int tw_err_code(const struct tw_resp *r);

/* Fail unless r has this status and error data.code. */
void tw_assert_refused(const struct tw_resp *r, int status, const char *name);

/* How many protons relmd holds: a refused request must have changed nothing. */
int tw_protons(const struct tw_web *w);

/* Run relm-web expecting it to exit by itself: its wait status. */
int tw_web_status(struct tw_web *w, const char *sock, const char *listen);

/* GET path (/events...) with the cookie and extra header lines. */
void tw_sse_connect(struct tw_sse *c, const struct tw_web *w, const char *path, const char *extra);

void tw_sse_close(struct tw_sse *c);

/* The next event (comments skipped), or 0 after timeout_ms / the end. */
int tw_sse_next(struct tw_sse *c, struct tw_event *ev, int timeout_ms);

#endif

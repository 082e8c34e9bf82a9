/*
 * check_relmd.c — relmd driven as its clients drive it.
 *
 * Most tests run the daemon in-process: relmd_init/relmd_start on a socket
 * in a fresh mkdtemp folder, relmd_run in a second thread, blocking client
 * sockets in the test thread, then relmd_stop_async and
 * relmd_clear() == 0 (uv_loop_close: no handle leaked).  message.send is
 * bound to a fake handler that emits a message.sent event, the way the
 * engine will.  The SIGTERM and relmctl tests fork the real binaries from
 * $BUILD (default "build").
 *
 * No test asserts on a duration (the machine may be loaded; timing is for
 * bench/): fairness is asserted on order and counts.  For that the
 * in-process daemon has a gate in its commit hook: the test can hold the
 * loop between two turns, set up what several clients have sent, and let
 * the next turn see all of it at once.
 */
#include <check.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "limits.h"
#include "api/server.h"
#include "util_daemon.h"
#include "util_rand.h"
#include "util_text.h"

/* ---- the in-process daemon ---- */

struct srv {
	struct relmd d;
	pthread_t th;
	char dir[64];
	char sock[108];
};

static struct srv S;

#define REL "00112233445566778899aabbccddeeff"

/* The gate, in the commit hook (which runs once per loop turn, before the
 * turn's replies are written):
 *  - gate_hold() parks the loop thread there until gate_release().  The
 *    hold is armed by a request (proton.list, bound to fake_hold), so the
 *    turn that holds has read and run everything the poking client sent.
 *  - with `ticks` set, every turn that published an event ends with one
 *    more, of type TICK: a subscriber then sees where each turn ended. */
#define TICK "fork.resolved"
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int armed, held, release, ticks;
	uint64_t tick_seq;
} G = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0 };

static int fake_hold(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	(void)call;
	(void)params;
	pthread_mutex_lock(&G.mu);
	G.armed = 1;
	pthread_mutex_unlock(&G.mu);
	*result = cJSON_CreateObject();
	return 0;
}

static int gate_commit(void *ctx)
{
	struct relmd *d = ctx;
	pthread_mutex_lock(&G.mu);
	if (G.ticks && d->events.last_seq != G.tick_seq) {
		ck_assert_int_eq(relmd_event_emit(d, TICK, NULL), 0);
		G.tick_seq = d->events.last_seq;
	}
	if (G.armed) {
		G.armed = 0;
		G.held = 1;
		pthread_cond_broadcast(&G.cv);
		while (!G.release)
			pthread_cond_wait(&G.cv, &G.mu);
		G.release = 0;
		G.held = 0;
		pthread_cond_broadcast(&G.cv);
	}
	pthread_mutex_unlock(&G.mu);
	return 0;
}

static int fake_send(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(params, "id");
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(params, "body");
	const cJSON *rel = cJSON_GetObjectItemCaseSensitive(params, "relationship");
	const char *mid = id ? id->valuestring : "ffffffffffffffffffffffffffffffff";
	cJSON *f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "relationship", rel->valuestring);
	cJSON_AddStringToObject(f, "message", mid);
	cJSON_AddStringToObject(f, "body", body->valuestring);
	if (relmd_event_emit(call->d, "message.sent", f) < 0)
		return RELM_ENOMEM;
	*result = cJSON_CreateObject();
	cJSON_AddStringToObject(*result, "message", mid);
	cJSON_AddStringToObject(*result, "status", "queued");
	return 0;
}

/* As a corrupt store row would: an event whose body is not UTF-8, then a
 * good one.  Bound to device.list. */
static int fake_bad_event(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	(void)params;
	cJSON *f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "relationship", REL);
	cJSON_AddStringToObject(f, "body", "t\x9axt");
	if (relmd_event_emit(call->d, "message.sent", f) < 0)
		return RELM_ENOMEM;
	f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "relationship", REL);
	cJSON_AddStringToObject(f, "body", "text");
	if (relmd_event_emit(call->d, "message.sent", f) < 0)
		return RELM_ENOMEM;
	*result = cJSON_CreateObject();
	return 0;
}

static void *loop_main(void *a)
{
	struct srv *s = a;
	relmd_run(&s->d);
	return NULL;
}

static void srv_start_cfg(void (*tweak)(struct relmd_config *))
{
	memset(&S, 0, sizeof S);
	strcpy(S.dir, "/tmp/relmd-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(S.dir));
	snprintf(S.sock, sizeof S.sock, "%s/relm/relmd.sock", S.dir);
	struct relmd_config cfg;
	relmd_config_default(&cfg);
	snprintf(cfg.socket_path, sizeof cfg.socket_path, "%s", S.sock);
	snprintf(cfg.state_dir, sizeof cfg.state_dir, "%s/state", S.dir);
	snprintf(cfg.store_path, sizeof cfg.store_path, "%s/state/relm.db", S.dir);
	cfg.log_level = LOGL_WARN;
	if (tweak)
		tweak(&cfg);
	log_set_level(getenv("RELM_TEST_DEBUG") ? LOGL_DEBUG : LOGL_ERR);
	struct relmd_hooks hooks = { .ctx = &S.d, .commit = gate_commit };
	G.ticks = 0;
	G.tick_seq = 0;
	ck_assert_int_eq(relmd_init(&S.d, &cfg, &hooks), 0);
	ck_assert_int_eq(relmd_methods_bind(&S.d.methods, "message.send", fake_send, NULL), 0);
	ck_assert_int_eq(relmd_methods_bind(&S.d.methods, "proton.list", fake_hold, NULL), 0);
	ck_assert_int_eq(relmd_methods_bind(&S.d.methods, "device.list", fake_bad_event, NULL), 0);
	ck_assert_int_eq(relmd_start(&S.d), 0);
	ck_assert_int_eq(pthread_create(&S.th, NULL, loop_main, &S), 0);
}

static void srv_start(void) { srv_start_cfg(NULL); }

static void rm_rf(const char *dir)
{
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static void srv_stop(void)
{
	relmd_stop_async(&S.d);
	pthread_join(S.th, NULL);
	ck_assert_int_eq(relmd_clear(&S.d), 0);       /* every handle closed */
	struct stat st;
	ck_assert_int_ne(stat(S.sock, &st), 0);        /* socket removed */
	rm_rf(S.dir);
}

/* ---- a blocking client ---- */

struct cl {
	int fd;
	char *buf;
	size_t len, cap;
};

static int cl_open_path(struct cl *c, const char *path)
{
	memset(c, 0, sizeof *c);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = -errno;
		close(c->fd);
		return e;
	}
	struct timeval tv = { 5, 0 };
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	return 0;
}

static void cl_open(struct cl *c)
{
	ck_assert_int_eq(cl_open_path(c, S.sock), 0);
}

static void cl_close(struct cl *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
}

static int cl_write(struct cl *c, const char *s, size_t n)
{
	size_t off = 0;
	while (off < n) {
		ssize_t w = send(c->fd, s + off, n - off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)w;
	}
	return 0;
}

static void cl_send(struct cl *c, const char *s)
{
	ck_assert_int_eq(cl_write(c, s, strlen(s)), 0);
}

/* Next line (malloc'd, no newline), or NULL on EOF/error/timeout. */
static char *cl_line(struct cl *c)
{
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			char *l = strndup(c->buf, n);
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			return l;
		}
		if (c->cap - c->len < 65536) {
			c->cap = c->cap ? c->cap * 2 : 65536;
			c->buf = realloc(c->buf, c->cap);
		}
		ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return NULL;
		c->len += (size_t)r;
	}
}

/* The next line, which must be valid UTF-8 JSON with no raw control
 * byte (what relmd promises for every line it writes). */
static cJSON *cl_json_strict(struct cl *c)
{
	char *l = cl_line(c);
	ck_assert_msg(l != NULL, "no reply (EOF or timeout)");
	ck_assert_msg(tu_json_line_ok(l, strlen(l)), "not UTF-8 JSON: %.200s", l);
	cJSON *j = cJSON_Parse(l);
	free(l);
	return j;
}

static cJSON *cl_json(struct cl *c)
{
	char *l = cl_line(c);
	ck_assert_msg(l != NULL, "no reply (EOF or timeout)");
	cJSON *j = cJSON_Parse(l);
	ck_assert_msg(j != NULL, "not JSON: %.200s", l);
	free(l);
	return j;
}

/* Is the peer closed (EOF within 5 s, nothing else pending)? */
static int cl_eof(struct cl *c)
{
	char b[4096];
	for (;;) {
		ssize_t r = recv(c->fd, b, sizeof b, 0);
		if (r == 0)
			return 1;
		if (r < 0)
			return errno == ECONNRESET;
	}
}

/* Has the daemon sent c anything not read yet (now, without waiting)? */
static int cl_pending(struct cl *c)
{
	struct pollfd p = { c->fd, POLLIN, 0 };
	return c->len > 0 || poll(&p, 1, 0) == 1;
}

/* Hold the loop between two turns: `poke` (a connected client) sends the
 * request that arms the gate; the turn that ran it holds before writing
 * anything, so poke's reply is the first line it reads after
 * gate_release(). */
static void gate_hold(struct cl *poke)
{
	cl_send(poke, "{\"jsonrpc\":\"2.0\",\"id\":\"poke\",\"method\":\"proton.list\"}\n");
	pthread_mutex_lock(&G.mu);
	while (!G.held)
		pthread_cond_wait(&G.cv, &G.mu);
	pthread_mutex_unlock(&G.mu);
}

static void gate_release(void)
{
	pthread_mutex_lock(&G.mu);
	G.release = 1;
	pthread_cond_broadcast(&G.cv);
	while (G.held)
		pthread_cond_wait(&G.cv, &G.mu);
	pthread_mutex_unlock(&G.mu);
}

static cJSON *rpc(struct cl *c, const char *method, const char *params)
{
	char line[4096];
	snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\"%s%s}\n", method,
		 params ? ",\"params\":" : "", params ? params : "");
	cl_send(c, line);
	return cl_json(c);
}

static int err_code(const cJSON *r)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
	return e ? (int)cJSON_GetObjectItemCaseSensitive(e, "code")->valuedouble : 0;
}

static const char *err_data_code(const cJSON *r)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "error"), "data"),
		"code");
	return cJSON_IsString(v) ? v->valuestring : "";
}

static const cJSON *res(const cJSON *r, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "result"), k);
}

static void status_ok(struct cl *c)
{
	cJSON *r = rpc(c, "daemon.status", NULL);
	ck_assert_msg(res(r, "version") != NULL, "no daemon.status result");
	cJSON_Delete(r);
}


/* ---- tests ---- */

START_TEST(status_happy)
{
	srv_start();
	struct stat st;
	ck_assert_int_eq(stat(S.sock, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0077, 0);                 /* nobody else */
	char dir[128];
	snprintf(dir, sizeof dir, "%s/relm", S.dir);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	struct cl c;
	cl_open(&c);
	cJSON *r = rpc(&c, "daemon.status", NULL);
	ck_assert_str_eq(res(r, "version")->valuestring, RELMD_VERSION);
	ck_assert_double_eq(res(r, "api")->valuedouble, RELMD_API_VERSION);
	ck_assert_double_eq(res(r, "protons")->valuedouble, 0);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(res(r, "mailbox"), "connected")));
	ck_assert(cJSON_IsNumber(res(r, "uptime_s")));
	ck_assert_ptr_nonnull(strstr(res(r, "store")->valuestring, "relm.db"));
	cJSON_Delete(r);
	/* not yet served methods answer not_implemented */
	r = rpc(&c, "proton.create", "{\"label\":\"work\"}");
	ck_assert_int_eq(err_code(r), -32000);
	ck_assert_str_eq(err_data_code(r), "not_implemented");
	cJSON_Delete(r);
	cl_close(&c);
	srv_stop();
}
END_TEST

START_TEST(error_classes)
{
	srv_start();
	struct cl c;
	cl_open(&c);
	cl_send(&c, "this is not json\n");
	cJSON *r = cl_json(&c);
	ck_assert_int_eq(err_code(r), -32700);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "id")));
	cJSON_Delete(r);
	status_ok(&c);                                  /* still usable */
	cl_send(&c, "{\"jsonrpc\":\"1.0\",\"id\":5,\"method\":\"daemon.status\"}\n");
	r = cl_json(&c);
	ck_assert_int_eq(err_code(r), -32600);
	cJSON_Delete(r);
	r = rpc(&c, "no.such", NULL);
	ck_assert_int_eq(err_code(r), -32601);
	cJSON_Delete(r);
	r = rpc(&c, "proton.create", "{}");
	ck_assert_int_eq(err_code(r), -32602);
	ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(r, "error"), "message")->valuestring, "label"));
	cJSON_Delete(r);
	r = rpc(&c, "message.send", "{\"relationship\":\"" REL "\",\"body\":\"x\",\"bdy\":1}");
	ck_assert_int_eq(err_code(r), -32602);
	cJSON_Delete(r);
	/* batch and notifications, blank lines and CRLF */
	cl_send(&c, "\n  \r\n{\"jsonrpc\":\"2.0\",\"method\":\"daemon.status\"}\r\n"
		    "[{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"daemon.status\"},1]\r\n");
	r = cl_json(&c);
	ck_assert(cJSON_IsArray(r));
	ck_assert_int_eq(cJSON_GetArraySize(r), 2);
	cJSON_Delete(r);
	status_ok(&c);
	cl_close(&c);
	srv_stop();
}
END_TEST

START_TEST(line_limit)
{
	srv_start();
	/* exactly RELM_LINE_MAX bytes: served */
	struct cl c, other;
	cl_open(&c);
	const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\"}";
	char *big = malloc((size_t)RELM_LINE_MAX + 2);
	memset(big, ' ', RELM_LINE_MAX);
	memcpy(big, req, strlen(req));
	big[RELM_LINE_MAX] = '\n';
	ck_assert_int_eq(cl_write(&c, big, (size_t)RELM_LINE_MAX + 1), 0);
	cJSON *r = cl_json(&c);
	ck_assert_ptr_nonnull(res(r, "version"));
	cJSON_Delete(r);
	/* one byte more, never terminated: rejected before any newline (so
	 * before parsing), then closed.  '[' would be deep nesting if parsed. */
	memset(big, '[', (size_t)RELM_LINE_MAX + 1);
	ck_assert_int_eq(cl_write(&c, big, (size_t)RELM_LINE_MAX + 1), 0);
	r = cl_json(&c);
	ck_assert_int_eq(err_code(r), -32600);
	ck_assert_str_eq(err_data_code(r), "too_big");
	cJSON_Delete(r);
	ck_assert(cl_eof(&c));
	cl_close(&c);
	cl_open(&other);
	status_ok(&other);
	cl_close(&other);
	free(big);
	srv_stop();
}
END_TEST

/* A client that sent half a line holds nothing up: another client's 20
 * requests are all answered while the half line waits, and the stalled
 * client gets nothing until its line is complete. */
START_TEST(half_line_stall)
{
	srv_start();
	struct cl slow, fast;
	cl_open(&slow);
	cl_send(&slow, "{\"jsonrpc\":\"2.0\",\"id\":9,");
	cl_open(&fast);
	for (int i = 0; i < 20; i++)
		status_ok(&fast);
	ck_assert_msg(!cl_pending(&slow), "a half line was answered");
	cl_send(&slow, "\"method\":\"daemon.status\"}\n");
	cJSON *r = cl_json(&slow);
	ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(r, "id")->valuedouble, 9);
	cJSON_Delete(r);
	cl_close(&slow);
	cl_close(&fast);
	srv_stop();
}
END_TEST

START_TEST(disconnect_mid_reply)
{
	srv_start();
	struct cl c, other;
	/* many big replies requested, then gone without reading */
	char *batch = malloc(300 * 64);
	char *p = batch;
	*p++ = '[';
	for (int i = 0; i < 250; i++)
		p += sprintf(p, "%s{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"daemon.status\"}", i ? "," : "", i);
	strcpy(p, "]\n");
	for (int k = 0; k < 5; k++) {
		cl_open(&c);
		for (int j = 0; j < 20; j++)
			cl_send(&c, batch);
		cl_close(&c);
	}
	free(batch);
	cl_open(&other);
	status_ok(&other);
	cJSON *r = rpc(&other, "daemon.status", NULL);
	cJSON_Delete(r);
	cl_close(&other);
	srv_stop();
}
END_TEST

/* A message.send line with this message id (fake_send makes it the event's
 * "message"), the id "1". */
static int send_line(char *buf, size_t cap, const char *msg_id)
{
	return snprintf(buf, cap, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message.send\",\"params\":"
			"{\"relationship\":\"%s\",\"body\":\"x\",\"id\":\"%s\"}}\n", REL, msg_id);
}

static uint64_t event_seq(const cJSON *ev, const char **type)
{
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(ev, "method")->valuestring, "event");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(ev, "params");
	if (type)
		*type = cJSON_GetObjectItemCaseSensitive(p, "type")->valuestring;
	return (uint64_t)cJSON_GetObjectItemCaseSensitive(p, "seq")->valuedouble;
}

/* The "message" of a message.sent event line (or "" for anything else). */
static const char *event_message(const cJSON *ev)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ev, "params"),
							  "message");
	return cJSON_IsString(m) ? m->valuestring : "";
}

#define FLOOD_ID  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define MARKER_ID "cccccccccccccccccccccccccccccccc"

/* Fairness, by order and counts.  A subscriber sees every message.sent
 * event and a TICK where each loop turn ended.  With the loop held, a
 * flooder queues 1,000 requests and another client one (the marker); then:
 * the marker runs in the first turn (before the first TICK), and no turn
 * runs more than the flooder's share — RELMD_REQ_PER_TURN from its
 * buffered lines plus RELMD_REQ_PER_TURN from what it reads in that turn.
 * Three rounds; then a flooder that never reads its replies does not stop
 * the daemon from answering another client. */
START_TEST(flood)
{
	srv_start();
	struct cl flooder, c, sub;
	cl_open(&flooder);
	cl_open(&c);
	cl_open(&sub);
	cJSON *r = rpc(&sub, "subscribe", "{\"events\":[\"message.sent\",\"" TICK "\"]}");
	ck_assert_ptr_nonnull(res(r, "seq"));
	cJSON_Delete(r);
	pthread_mutex_lock(&G.mu);
	G.ticks = 1;
	pthread_mutex_unlock(&G.mu);
	char line[512];
	size_t n = (size_t)send_line(line, sizeof line, FLOOD_ID);
	enum { LINES = 1000 };
	char *chunk = malloc(n * LINES);
	for (int i = 0; i < LINES; i++)
		memcpy(chunk + (size_t)i * n, line, n);
	for (int round = 0; round < 3; round++) {
		gate_hold(&c);
		/* as many lines as the socket takes now, the rest later */
		fcntl(flooder.fd, F_SETFL, O_NONBLOCK);
		ssize_t w = send(flooder.fd, chunk, n * LINES, MSG_NOSIGNAL);
		ck_assert_int_gt(w, 0);
		ck_assert_msg((size_t)w / n >= 4 * RELMD_REQ_PER_TURN, "only %zu lines queued",
			      (size_t)w / n);
		char marker[512];
		send_line(marker, sizeof marker, MARKER_ID);
		cl_send(&c, marker);
		gate_release();
		fcntl(flooder.fd, F_SETFL, 0);
		ck_assert_int_eq(cl_write(&flooder, chunk + w, n * LINES - (size_t)w), 0);

		r = cl_json(&c);                                /* the poke */
		ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(r, "id")->valuestring, "poke");
		cJSON_Delete(r);
		r = cl_json(&c);                                /* the marker */
		ck_assert_str_eq(res(r, "status")->valuestring, "queued");
		cJSON_Delete(r);
		/* the order the daemon ran them in, turn by turn */
		int flooded = 0, marker_turn = -1, turn = 0, in_turn = 0, worst = 0;
		while (flooded < LINES || marker_turn < 0) {
			const char *type;
			r = cl_json(&sub);
			event_seq(r, &type);
			if (!strcmp(type, TICK)) {
				turn++;
				in_turn = 0;
			} else if (!strcmp(event_message(r), MARKER_ID)) {
				ck_assert_int_eq(marker_turn, -1);
				marker_turn = turn;
			} else {
				ck_assert_str_eq(event_message(r), FLOOD_ID);
				flooded++;
				if (++in_turn > worst)
					worst = in_turn;
			}
			cJSON_Delete(r);
		}
		r = cl_json(&sub);                              /* the last turn's end */
		const char *type;
		event_seq(r, &type);
		ck_assert_str_eq(type, TICK);
		cJSON_Delete(r);
		ck_assert_msg(marker_turn == 0, "round %d: the other client's request ran in turn %d "
			      "of the flood, not the first", round, marker_turn);
		ck_assert_msg(worst <= 2 * RELMD_REQ_PER_TURN, "round %d: one turn ran %d of the "
			      "flooder's requests (its share is %d)", round, worst, 2 * RELMD_REQ_PER_TURN);
		ck_assert_msg(turn >= LINES / (2 * RELMD_REQ_PER_TURN), "round %d: %d turns", round, turn);
		for (int i = 0; i < LINES; i++) {             /* the flooder's replies, all there */
			r = cl_json(&flooder);
			ck_assert_str_eq(res(r, "status")->valuestring, "queued");
			cJSON_Delete(r);
		}
	}
	cl_close(&sub);
	/* a flooder that never reads: its replies pile up (its own problem),
	 * the other client is still answered */
	fcntl(flooder.fd, F_SETFL, O_NONBLOCK);
	const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\"}\n";
	size_t rn = strlen(req);
	for (int i = 0; i < LINES; i++)
		memcpy(chunk + (size_t)i * rn, req, rn);
	for (int round = 0; round < 40; round++) {
		for (int k = 0; k < 8; k++)
			if (send(flooder.fd, chunk, rn * LINES, MSG_NOSIGNAL) < 0)
				break;
		status_ok(&c);
	}
	cl_close(&flooder);
	cl_close(&c);
	free(chunk);
	srv_stop();
}
END_TEST

START_TEST(hundred_clients)
{
	srv_start();
	enum { N = 100 };
	static struct cl cs[N];
	for (int i = 0; i < N; i++)
		cl_open(&cs[i]);
	for (int i = 0; i < N; i++)
		cl_send(&cs[i], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\"}\n");
	for (int i = N - 1; i >= 0; i--) {
		cJSON *r = cl_json(&cs[i]);
		ck_assert_ptr_nonnull(res(r, "version"));
		if (i == 0)
			ck_assert_double_eq(res(r, "clients")->valuedouble, N);
		cJSON_Delete(r);
	}
	for (int i = 0; i < N; i++)
		cl_close(&cs[i]);
	srv_stop();
}
END_TEST

/* Ask through c until daemon.status counts `want` clients (the daemon
 * has seen a close); bounded. */
static void wait_clients(struct cl *c, double want)
{
	double have = -1;
	for (int i = 0; i < 10000 && have != want; i++) {
		cJSON *r = rpc(c, "daemon.status", NULL);
		have = res(r, "clients")->valuedouble;
		cJSON_Delete(r);
		if (have != want)
			sched_yield();
	}
	ck_assert_msg(have == want, "%g clients, never %g", have, want);
}

static void small_uid_cap(struct relmd_config *cfg) { cfg->conn_per_uid_max = 3; }
static void small_total_cap(struct relmd_config *cfg) { cfg->conn_max = 2; }

static void expect_refused(const char *code)
{
	struct cl x;
	cl_open(&x);
	cJSON *r = cl_json(&x);
	ck_assert_int_eq(err_code(r), -32000);
	ck_assert_str_eq(err_data_code(r), code);
	cJSON_Delete(r);
	ck_assert(cl_eof(&x));
	cl_close(&x);
}

START_TEST(caps)
{
	srv_start_cfg(small_uid_cap);
	struct cl cs[3];
	for (int i = 0; i < 3; i++) {
		cl_open(&cs[i]);
		status_ok(&cs[i]);
	}
	expect_refused("limit");
	cl_close(&cs[0]);
	wait_clients(&cs[1], 2);
	struct cl again;                      /* a slot is free again */
	cl_open(&again);
	status_ok(&again);
	cl_close(&again);
	for (int i = 1; i < 3; i++)
		cl_close(&cs[i]);
	srv_stop();

	srv_start_cfg(small_total_cap);
	for (int i = 0; i < 2; i++) {
		cl_open(&cs[i]);
		status_ok(&cs[i]);
	}
	expect_refused("limit");
	for (int i = 0; i < 2; i++)
		cl_close(&cs[i]);
	srv_stop();
}
END_TEST

static void send_msg(struct cl *c, int i, size_t bodylen)
{
	char *line = malloc(bodylen + 256);
	int n = sprintf(line, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"message.send\",\"params\":"
			"{\"relationship\":\"" REL "\",\"body\":\"", i);
	memset(line + n, 'b', bodylen);
	sprintf(line + n + bodylen, "%d\"}}\n", i);
	cl_send(c, line);
	free(line);
	for (;;) {                 /* skip our own events if subscribed */
		cJSON *r = cl_json(c);
		int is_reply = cJSON_GetObjectItemCaseSensitive(r, "id") != NULL;
		if (is_reply)
			ck_assert_str_eq(res(r, "status")->valuestring, "queued");
		cJSON_Delete(r);
		if (is_reply)
			break;
	}
}


START_TEST(subscribe_replay)
{
	srv_start();
	struct cl live, sender, late, filt;
	cl_open(&live);
	cJSON *r = rpc(&live, "subscribe", NULL);
	ck_assert_double_eq(res(r, "seq")->valuedouble, 0);
	ck_assert(cJSON_IsFalse(res(r, "gap")));
	cJSON_Delete(r);
	cl_open(&sender);
	for (int i = 1; i <= 3; i++)
		send_msg(&sender, i, 10);
	for (uint64_t i = 1; i <= 3; i++) {
		const char *type;
		r = cl_json(&live);
		ck_assert_uint_eq(event_seq(r, &type), i);
		ck_assert_str_eq(type, "message.sent");
		cJSON_Delete(r);
	}
	/* a client that was away since seq 1 gets 2 and 3, then live ones */
	cl_open(&late);
	r = rpc(&late, "subscribe", "{\"since\":1}");
	ck_assert_double_eq(res(r, "replay")->valuedouble, 2);
	ck_assert_double_eq(res(r, "seq")->valuedouble, 3);
	cJSON_Delete(r);
	for (uint64_t i = 2; i <= 3; i++) {
		r = cl_json(&late);
		ck_assert_uint_eq(event_seq(r, NULL), i);
		cJSON_Delete(r);
	}
	/* a type filter: nothing from message.sent */
	cl_open(&filt);
	r = rpc(&filt, "subscribe", "{\"since\":0,\"events\":[\"message.received\"]}");
	ck_assert_ptr_nonnull(res(r, "seq"));
	cJSON_Delete(r);
	send_msg(&sender, 4, 10);
	r = cl_json(&late);
	ck_assert_uint_eq(event_seq(r, NULL), 4);
	cJSON_Delete(r);
	r = rpc(&filt, "daemon.status", NULL);          /* reply comes, no event before it */
	ck_assert_ptr_nonnull(res(r, "version"));
	ck_assert_double_eq(res(r, "event_seq")->valuedouble, 4);
	cJSON_Delete(r);
	/* since in the future (numbering restarted): gap */
	r = rpc(&filt, "subscribe", "{\"since\":1000}");
	ck_assert(cJSON_IsTrue(res(r, "gap")));
	cJSON_Delete(r);
	cl_close(&live);
	cl_close(&sender);
	cl_close(&late);
	cl_close(&filt);
	srv_stop();
}
END_TEST

static void small_ring(struct relmd_config *cfg) { cfg->event_retention = 64; }

START_TEST(retention_gap_and_slow_subscriber)
{
	srv_start_cfg(small_ring);
	struct cl sender, slow, late;
	cl_open(&sender);
	cl_open(&slow);
	cJSON *r = rpc(&slow, "subscribe", NULL);
	cJSON_Delete(r);
	/* ~2.5 MB of events: the slow subscriber's queue hits RELMD_OUT_SOFT,
	 * it lags past the 64-event ring and is dropped; the sender is never
	 * held up by it: all 600 requests are answered while the subscriber
	 * reads nothing, and by then the daemon has let the subscriber go
	 * (only the sender is left) instead of buffering for it. */
	for (int i = 1; i <= 600; i++)
		send_msg(&sender, i, 4000);
	r = rpc(&sender, "daemon.status", NULL);
	ck_assert_double_eq(res(r, "clients")->valuedouble, 1);
	cJSON_Delete(r);
	ck_assert(cl_eof(&slow));
	cl_close(&slow);
	/* a late client asking for everything learns about the gap */
	cl_open(&late);
	r = rpc(&late, "subscribe", "{\"since\":0}");
	ck_assert(cJSON_IsTrue(res(r, "gap")));
	ck_assert_double_eq(res(r, "oldest")->valuedouble, 600 - 64 + 1);
	ck_assert_double_eq(res(r, "replay")->valuedouble, 64);
	cJSON_Delete(r);
	for (uint64_t i = 600 - 64 + 1; i <= 600; i++) {
		r = cl_json(&late);
		ck_assert_uint_eq(event_seq(r, NULL), i);
		cJSON_Delete(r);
	}
	cl_close(&late);
	cl_close(&sender);
	srv_stop();
}
END_TEST

/* ---- other uids (root only) ---- */

/* In a child: become uid 65534 with gid `gid`, connect, call daemon.status.
 * Exit 0 if answered, 10 if refused with "permission", 20 connect failed,
 * 30 anything else. */
static int as_other_uid(gid_t gid)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(65534) < 0)
			_exit(40);
		struct cl c;
		if (cl_open_path(&c, S.sock) < 0)
			_exit(20);
		const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\"}\n";
		cl_write(&c, req, strlen(req));
		char *l = cl_line(&c);
		if (!l)
			_exit(30);
		if (strstr(l, "\"result\""))
			_exit(0);
		if (strstr(l, "\"permission\""))
			_exit(10);
		_exit(30);
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(peer_uid)
{
	if (geteuid() != 0) {
		fprintf(stderr, "peer_uid: not root, skipped\n");
		return;
	}
	srv_start();
	char dir[128];
	snprintf(dir, sizeof dir, "%s/relm", S.dir);
	/* open the file system doors so only SO_PEERCRED stands in the way */
	ck_assert_int_eq(chmod(S.dir, 0711), 0);
	ck_assert_int_eq(chmod(dir, 0711), 0);
	ck_assert_int_eq(chmod(S.sock, 0666), 0);
	ck_assert_int_eq(as_other_uid(65534), 10);
	/* the system unit's shape: 0660, group relm → members allowed */
	ck_assert_int_eq(chown(S.sock, 0, 4242), 0);
	ck_assert_int_eq(chmod(S.sock, 0660), 0);
	ck_assert_int_eq(as_other_uid(4242), 0);
	ck_assert_int_eq(as_other_uid(65534), 20);      /* not in the group: EACCES at connect */
	/* world-writable file, group 4242: a non-member is refused by the daemon */
	ck_assert_int_eq(chmod(S.sock, 0666), 0);
	ck_assert_int_eq(as_other_uid(65534), 10);
	ck_assert_int_eq(as_other_uid(4242), 0);
	struct cl c;                                    /* our own uid still fine */
	cl_open(&c);
	status_ok(&c);
	cl_close(&c);
	srv_stop();
}
END_TEST

START_TEST(refuse_second_and_stale)
{
	srv_start();
	/* a second daemon on the same socket refuses to start */
	struct relmd_config cfg;
	relmd_config_default(&cfg);
	snprintf(cfg.socket_path, sizeof cfg.socket_path, "%s", S.sock);
	static struct relmd d2;
	ck_assert_int_eq(relmd_init(&d2, &cfg, NULL), 0);
	ck_assert_int_lt(relmd_start(&d2), 0);
	relmd_stop(&d2, 1);
	ck_assert_int_eq(relmd_clear(&d2), 0);
	struct cl c;
	cl_open(&c);
	status_ok(&c);
	cl_close(&c);
	srv_stop();

	/* a stale socket file (nobody listening) is replaced */
	char dir[64], path[100];
	strcpy(dir, "/tmp/relmd-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/s.sock", dir);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(fd);                       /* file stays, nobody listens */
	snprintf(cfg.socket_path, sizeof cfg.socket_path, "%s", path);
	ck_assert_int_eq(relmd_init(&d2, &cfg, NULL), 0);
	ck_assert_int_eq(relmd_start(&d2), 0);
	relmd_stop(&d2, 0);
	ck_assert_int_eq(relmd_run(&d2), 0);
	ck_assert_int_eq(relmd_clear(&d2), 0);

	rm_rf(dir);
}
END_TEST

/* ---- relmctl against this daemon ---- */

START_TEST(relmctl_cli)
{
	srv_start();
	char prog[256], out[65536];
	td_prog(prog, sizeof prog, "relmctl");
	if (access(prog, X_OK) < 0) {
		fprintf(stderr, "relmctl_cli: %s not built, skipped\n", prog);
		srv_stop();
		return;
	}
	char *a1[] = { prog, "--socket", S.sock, "daemon.status", NULL };
	ck_assert_int_eq(td_run(a1, out, sizeof out, NULL, 0, TD_START_MS), 0);
	ck_assert_ptr_nonnull(strstr(out, "version"));
	char *a2[] = { prog, "--socket", S.sock, "--json", "daemon.status", NULL };
	ck_assert_int_eq(td_run(a2, out, sizeof out, NULL, 0, TD_START_MS), 0);
	cJSON *j = cJSON_Parse(out);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "version")->valuestring, RELMD_VERSION);
	cJSON_Delete(j);
	char *a3[] = { prog, "--socket", S.sock, "proton.create", NULL };   /* label missing */
	ck_assert_int_eq(td_run(a3, out, sizeof out, NULL, 0, TD_START_MS), 2);
	char *a4[] = { prog, "--socket", S.sock, "proton.create", "--label", "work", NULL };
	ck_assert_int_eq(td_run(a4, out, sizeof out, NULL, 0, TD_START_MS), 1);                 /* not_implemented */
	char *a5[] = { prog, "--socket", "/nonexistent/relmd.sock", "daemon.status", NULL };
	ck_assert_int_eq(td_run(a5, out, sizeof out, NULL, 0, TD_START_MS), 3);
	char *a6[] = { prog, "--socket", S.sock, "bogus.command", NULL };
	ck_assert_int_eq(td_run(a6, out, sizeof out, NULL, 0, TD_START_MS), 2);
	char *a7[] = { prog, "--socket", S.sock, "--json", "message.send", REL, "hello there", NULL };
	ck_assert_int_eq(td_run(a7, out, sizeof out, NULL, 0, TD_START_MS), 0);                 /* positional args */
	j = cJSON_Parse(out);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "status")->valuestring, "queued");
	cJSON_Delete(j);
	char *a8[] = { prog, "--help", NULL };
	ck_assert_int_eq(td_run(a8, out, sizeof out, NULL, 0, TD_START_MS), 0);
	for (unsigned i = 0; i < relmd_method_count; i++)
		ck_assert_msg(strstr(out, relmd_method_table[i].name), "help lacks %s",
			      relmd_method_table[i].name);
	char *a9[] = { prog, "message.send", "--help", NULL };
	ck_assert_int_eq(td_run(a9, out, sizeof out, NULL, 0, TD_START_MS), 0);
	ck_assert_ptr_nonnull(strstr(out, "--body"));
	/* listen --since 0 replays the event from a7; it ends when relmd stops */
	char *a10[] = { prog, "--socket", S.sock, "listen", "--since", "0", NULL };
	int fd;
	pid_t pid = td_spawn_piped(a10, &fd, NULL);
	char buf[4096];
	size_t len = 0;
	while (!memchr(buf, '\n', len) && len < sizeof buf - 1) {
		ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	ck_assert_ptr_nonnull(strstr(buf, "\"type\":\"message.sent\""));
	ck_assert_ptr_nonnull(strstr(buf, "\"seq\":1"));
	srv_stop();                                /* the stream ends: exit 0 */
	int st = td_stop(&pid, 0, 5000);
	close(fd);
	ck_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

/* ---- text: every byte relmd writes is valid UTF-8 JSON ---- */

/* The attack's own example: an id of invalid bytes gets -32700, id null —
 * not the bytes echoed; a good multi-byte id comes back exactly. */
START_TEST(bad_utf8_request)
{
	srv_start();
	struct cl c;
	cl_open(&c);
	cl_send(&c, "{\"jsonrpc\":\"2.0\",\"id\":\"\xff\xfe\",\"method\":\"daemon.status\"}\n");
	cJSON *r = cl_json_strict(&c);
	ck_assert_int_eq(err_code(r), -32700);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "id")));
	cJSON_Delete(r);
	cl_send(&c, "{\"jsonrpc\":\"2.0\",\"id\":\"r\xc3\xa9q\",\"method\":\"daemon.status\"}\n");
	r = cl_json_strict(&c);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(r, "id")->valuestring, "r\xc3\xa9q");
	ck_assert_ptr_nonnull(res(r, "version"));
	cJSON_Delete(r);
	cl_close(&c);
	srv_stop();
}
END_TEST

/* An event whose line is not valid UTF-8 is not written to a subscriber
 * (it gets the next one, and its connection stays); the request that
 * caused it is answered. */
START_TEST(bad_utf8_event_withheld)
{
	srv_start();
	struct cl sub, c;
	cl_open(&sub);
	cl_open(&c);
	cJSON *r = rpc(&sub, "subscribe", NULL);
	uint64_t seq0 = (uint64_t)res(r, "seq")->valuedouble;
	cJSON_Delete(r);
	r = rpc(&c, "device.list", "{\"proton\":\"" REL "\"}");   /* fake_bad_event */
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r, "result"));
	cJSON_Delete(r);
	r = cl_json_strict(&sub);
	ck_assert_uint_eq(event_seq(r, NULL), seq0 + 2);          /* seq0 + 1 withheld */
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "params"),
							  "body")->valuestring, "text");
	cJSON_Delete(r);
	r = rpc(&sub, "daemon.status", NULL);                     /* still served */
	ck_assert_double_eq(res(r, "event_seq")->valuedouble, (double)(seq0 + 2));
	cJSON_Delete(r);
	cl_close(&sub);
	cl_close(&c);
	srv_stop();
}
END_TEST

/* Randomised (RELM_SEED): damaged requests of every method over the
 * socket, each followed by a sentinel request; every line relmd writes
 * back, up to the sentinel's reply, is valid UTF-8 JSON. */
START_TEST(fuzz_socket_replies)
{
	static const char *const templates[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":\"r\xc3\xa9q\",\"method\":\"daemon.status\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"proton.create\",\"params\":{\"label\":\"w\xc3\xb6rk\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"proton.set_strategy\",\"params\":{\"proton\":\"" REL "\",\"strategy\":\"leader\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"message.send\",\"params\":{\"relationship\":\"" REL "\",\"body\":\"h\xc3\xa9llo\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"subscribe\",\"params\":{\"events\":[\"message.sent\"],\"since\":0}}",
		"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"invite.accept\",\"params\":[\"" REL "\",\"relm:abc\",\"\xe2\x82\xac\"]}",
		"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message.list\",\"params\":{\"relationship\":\"" REL "\",\"limit\":5}},{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"no.such\"}]",
	};
	srv_start();
	struct cl c;
	cl_open(&c);
	char buf[1024], sentinel[96];
	int lines = 0;
	for (int i = 0; i < 1500; i++) {
		const char *t = templates[tu_rand_below(sizeof templates / sizeof templates[0])];
		size_t len = strlen(t);
		memcpy(buf, t, len);
		len = tu_json_mutate(buf, len, sizeof buf - 1);
		buf[len++] = '\n';
		ck_assert_int_eq(cl_write(&c, buf, len), 0);
		snprintf(sentinel, sizeof sentinel,
			 "{\"jsonrpc\":\"2.0\",\"id\":\"sentinel-%d\",\"method\":\"daemon.status\"}\n", i);
		cl_send(&c, sentinel);
		for (;;) {
			char *l = cl_line(&c);
			ck_assert_msg(l != NULL, "iteration %d (" TU_SEED_FMT "): no reply", i, TU_SEED_ARG);
			ck_assert_msg(tu_json_line_ok(l, strlen(l)), "iteration %d (" TU_SEED_FMT "): "
				      "request %.*s got a line that is not UTF-8 JSON: %.300s", i, TU_SEED_ARG,
				      (int)len - 1, buf, l);
			lines++;
			int done = strstr(l, "\"sentinel-") != NULL;
			free(l);
			if (done)
				break;
		}
	}
	ck_assert_int_gt(lines, 1500);
	cl_close(&c);
	srv_stop();
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("relmd");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, status_happy);
	tcase_add_test(tc, error_classes);
	tcase_add_test(tc, subscribe_replay);
	suite_add_tcase(s, tc);
	tc = tcase_create("bad_clients");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, line_limit);
	tcase_add_test(tc, half_line_stall);
	tcase_add_test(tc, disconnect_mid_reply);
	tcase_add_test(tc, flood);
	tcase_add_test(tc, hundred_clients);
	tcase_add_test(tc, caps);
	tcase_add_test(tc, retention_gap_and_slow_subscriber);
	suite_add_tcase(s, tc);
	tc = tcase_create("text");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, bad_utf8_request);
	tcase_add_test(tc, bad_utf8_event_withheld);
	tcase_add_test(tc, fuzz_socket_replies);
	suite_add_tcase(s, tc);
	tc = tcase_create("socket");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, peer_uid);
	tcase_add_test(tc, refuse_second_and_stale);
	suite_add_tcase(s, tc);
	tc = tcase_create("relmctl");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, relmctl_cli);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	tu_seed_from_env();
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

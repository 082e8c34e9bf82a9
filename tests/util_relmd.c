/*
 * util_relmd.c — the in-process relmd and its blocking client, for the
 * suites that drive relmd as its clients do (see util_relmd.h).
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.h"
#include "util_relmd.h"
#include "util_text.h"

/* ---- the in-process daemon ---- */

struct tr_srv TR;

/* The gate, in the commit hook (which runs once per loop turn, before the
 * turn's replies are written):
 *  - tr_gate_hold() parks the loop thread there until tr_gate_release().  The
 *    hold is armed by a request (proton.list, bound to fake_hold), so the
 *    turn that holds has read and run everything the poking client sent.
 *  - with `ticks` set, every turn that published an event ends with one
 *    more, of type TR_TICK: a subscriber then sees where each turn ended. */
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
		ck_assert_int_eq(relmd_event_emit(d, TR_TICK, NULL), 0);
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
	cJSON_AddStringToObject(f, "relationship", TR_REL);
	cJSON_AddStringToObject(f, "body", "t\x9axt");
	if (relmd_event_emit(call->d, "message.sent", f) < 0)
		return RELM_ENOMEM;
	f = cJSON_CreateObject();
	cJSON_AddStringToObject(f, "relationship", TR_REL);
	cJSON_AddStringToObject(f, "body", "text");
	if (relmd_event_emit(call->d, "message.sent", f) < 0)
		return RELM_ENOMEM;
	*result = cJSON_CreateObject();
	return 0;
}

static void *loop_main(void *a)
{
	struct tr_srv *s = a;
	relmd_run(&s->d);
	return NULL;
}

void tr_start_cfg(void (*tweak)(struct relmd_config *))
{
	memset(&TR, 0, sizeof TR);
	strcpy(TR.dir, "/tmp/relmd-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(TR.dir));
	snprintf(TR.sock, sizeof TR.sock, "%s/relm/relmd.sock", TR.dir);
	struct relmd_config cfg;
	relmd_config_default(&cfg);
	snprintf(cfg.socket_path, sizeof cfg.socket_path, "%s", TR.sock);
	snprintf(cfg.state_dir, sizeof cfg.state_dir, "%s/state", TR.dir);
	snprintf(cfg.store_path, sizeof cfg.store_path, "%s/state/relm.db", TR.dir);
	cfg.log_level = LOGL_WARN;
	if (tweak)
		tweak(&cfg);
	log_set_level(getenv("RELM_TEST_DEBUG") ? LOGL_DEBUG : LOGL_ERR);
	struct relmd_hooks hooks = { .ctx = &TR.d, .commit = gate_commit };
	G.ticks = 0;
	G.tick_seq = 0;
	ck_assert_int_eq(relmd_init(&TR.d, &cfg, &hooks), 0);
	ck_assert_int_eq(relmd_methods_bind(&TR.d.methods, "message.send", fake_send, NULL), 0);
	ck_assert_int_eq(relmd_methods_bind(&TR.d.methods, "proton.list", fake_hold, NULL), 0);
	ck_assert_int_eq(relmd_methods_bind(&TR.d.methods, "device.list", fake_bad_event, NULL), 0);
	ck_assert_int_eq(relmd_start(&TR.d), 0);
	ck_assert_int_eq(pthread_create(&TR.th, NULL, loop_main, &TR), 0);
}

void tr_start(void)
{
	tr_start_cfg(NULL);
}

void tr_rm_rf(const char *dir)
{
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

void tr_stop(void)
{
	relmd_stop_async(&TR.d);
	pthread_join(TR.th, NULL);
	ck_assert_int_eq(relmd_clear(&TR.d), 0);       /* every handle closed */
	struct stat st;
	ck_assert_int_ne(stat(TR.sock, &st), 0);        /* socket removed */
	tr_rm_rf(TR.dir);
}

/* ---- a blocking client ---- */

int tr_cl_open_path(struct tr_cl *c, const char *path)
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

void tr_cl_open(struct tr_cl *c)
{
	ck_assert_int_eq(tr_cl_open_path(c, TR.sock), 0);
}

void tr_cl_close(struct tr_cl *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	c->fd = -1;
	c->buf = NULL;
}

int tr_cl_write(struct tr_cl *c, const char *s, size_t n)
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

void tr_cl_send(struct tr_cl *c, const char *s)
{
	ck_assert_int_eq(tr_cl_write(c, s, strlen(s)), 0);
}

/* Next line (malloc'd, no newline), or NULL on EOF/error/timeout. */
char *tr_cl_line(struct tr_cl *c)
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
cJSON *tr_cl_json_strict(struct tr_cl *c)
{
	char *l = tr_cl_line(c);
	ck_assert_msg(l != NULL, "no reply (EOF or timeout)");
	ck_assert_msg(tu_json_line_ok(l, strlen(l)), "not UTF-8 JSON: %.200s", l);
	cJSON *j = cJSON_Parse(l);
	free(l);
	return j;
}

cJSON *tr_cl_json(struct tr_cl *c)
{
	char *l = tr_cl_line(c);
	ck_assert_msg(l != NULL, "no reply (EOF or timeout)");
	cJSON *j = cJSON_Parse(l);
	ck_assert_msg(j != NULL, "not JSON: %.200s", l);
	free(l);
	return j;
}

/* Is the peer closed (EOF within 5 s, nothing else pending)? */
int tr_cl_eof(struct tr_cl *c)
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
int tr_cl_pending(struct tr_cl *c)
{
	struct pollfd p = { c->fd, POLLIN, 0 };
	return c->len > 0 || poll(&p, 1, 0) == 1;
}

/* Hold the loop between two turns: `poke` (a connected client) sends the
 * request that arms the gate; the turn that ran it holds before writing
 * anything, so poke's reply is the first line it reads after
 * tr_gate_release(). */
void tr_gate_hold(struct tr_cl *poke)
{
	tr_cl_send(poke, "{\"jsonrpc\":\"2.0\",\"id\":\"poke\",\"method\":\"proton.list\"}\n");
	pthread_mutex_lock(&G.mu);
	while (!G.held)
		pthread_cond_wait(&G.cv, &G.mu);
	pthread_mutex_unlock(&G.mu);
}

void tr_ticks(int on)
{
	pthread_mutex_lock(&G.mu);
	G.ticks = on;
	pthread_mutex_unlock(&G.mu);
}

void tr_gate_release(void)
{
	pthread_mutex_lock(&G.mu);
	G.release = 1;
	pthread_cond_broadcast(&G.cv);
	while (G.held)
		pthread_cond_wait(&G.cv, &G.mu);
	pthread_mutex_unlock(&G.mu);
}

cJSON *tr_rpc(struct tr_cl *c, const char *method, const char *params)
{
	char line[4096];
	snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\"%s%s}\n", method,
		 params ? ",\"params\":" : "", params ? params : "");
	tr_cl_send(c, line);
	return tr_cl_json(c);
}

int tr_err_code(const cJSON *r)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
	return e ? (int)cJSON_GetObjectItemCaseSensitive(e, "code")->valuedouble : 0;
}

const char *tr_err_data_code(const cJSON *r)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "error"), "data"),
		"code");
	return cJSON_IsString(v) ? v->valuestring : "";
}

const cJSON *tr_res(const cJSON *r, const char *k)
{
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "result"), k);
}

void tr_status_ok(struct tr_cl *c)
{
	cJSON *r = tr_rpc(c, "daemon.status", NULL);
	ck_assert_msg(tr_res(r, "version") != NULL, "no daemon.status result");
	cJSON_Delete(r);
}



/* A message.send line with this message id (fake_send makes it the event's
 * "message"), the id "1". */
int tr_send_line(char *buf, size_t cap, const char *msg_id, int body_len)
{
	return snprintf(buf, cap, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message.send\",\"params\":"
			"{\"relationship\":\"%s\",\"body\":\"%0*d\",\"id\":\"%s\"}}\n", TR_REL,
			body_len, 0, msg_id);
}

uint64_t tr_event_seq(const cJSON *ev, const char **type)
{
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(ev, "method")->valuestring, "event");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(ev, "params");
	if (type)
		*type = cJSON_GetObjectItemCaseSensitive(p, "type")->valuestring;
	return (uint64_t)cJSON_GetObjectItemCaseSensitive(p, "seq")->valuedouble;
}

/* The "message" of a message.sent event line (or "" for anything else). */
const char *tr_event_message(const cJSON *ev)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ev, "params"),
							  "message");
	return cJSON_IsString(m) ? m->valuestring : "";
}


/* Ask through c until daemon.status counts `want` clients (the daemon
 * has seen a close); bounded. */
void tr_wait_clients(struct tr_cl *c, double want)
{
	double have = -1;
	for (int i = 0; i < 10000 && have != want; i++) {
		cJSON *r = tr_rpc(c, "daemon.status", NULL);
		have = tr_res(r, "clients")->valuedouble;
		cJSON_Delete(r);
		if (have != want)
			sched_yield();
	}
	ck_assert_msg(have == want, "%g clients, never %g", have, want);
}


void tr_send_msg(struct tr_cl *c, int i, size_t bodylen)
{
	char *line = malloc(bodylen + 256);
	int n = sprintf(line, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"message.send\",\"params\":"
			"{\"relationship\":\"" TR_REL "\",\"body\":\"", i);
	memset(line + n, 'b', bodylen);
	sprintf(line + n + bodylen, "%d\"}}\n", i);
	tr_cl_send(c, line);
	free(line);
	for (;;) {                 /* skip our own events if subscribed */
		cJSON *r = tr_cl_json(c);
		int is_reply = cJSON_GetObjectItemCaseSensitive(r, "id") != NULL;
		if (is_reply)
			ck_assert_str_eq(tr_res(r, "status")->valuestring, "queued");
		cJSON_Delete(r);
		if (is_reply)
			break;
	}
}



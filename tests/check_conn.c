/*
 * check_conn.c — one client connection (daemon/api/conn.h) driven alone,
 * through the small owner interface it talks back through, with no socket
 * server: the test is the owner.  Its pipe is one end of a socketpair; the
 * test holds the other.  The owner answers each request line with
 * {"echo":"<line>"}, runs the connection while it says it is runnable (an
 * idle handle, as the server's work idle), and flushes once per turn (a
 * prepare handle, as the server's commit-then-write).
 *
 * What is checked: the state diagram's transitions (NONE → OPEN →
 * DRAINING → CLOSING → CLOSED, NONE → CLOSING), that the owner is told
 * exactly what the interface promises (requests in order, runnable on and
 * off, closed exactly once), and that an impossible transition aborts.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "api/conn.h"
#include "api/events.h"
#include "error.h"
#include "log.h"

struct owner {
	struct relmd_conn_owner o;       /* first: the callbacks cast back */
	uv_loop_t loop;
	uv_idle_t work;
	uv_prepare_t flush;
	struct relmd_events events;
	struct relmd_conn *c;
	int peer;                        /* the test's end of the socketpair */
	char seen[16][64];               /* request lines, in order */
	int nrequests;
	int runnable, runnable_calls;
	int closed;
};

static struct owner W;

static int on_request(struct relmd_conn_owner *o, struct relmd_conn *c, const char *line,
		      size_t len, char **reply)
{
	struct owner *w = (struct owner *)o;
	ck_assert_ptr_eq(c, w->c);
	ck_assert_int_lt(w->nrequests, 16);
	snprintf(w->seen[w->nrequests++], sizeof w->seen[0], "%.*s", (int)len, line);
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "echo", w->seen[w->nrequests - 1]);
	*reply = cJSON_PrintUnformatted(r);
	cJSON_Delete(r);
	return 0;
}

static void on_work(uv_idle_t *h)
{
	struct owner *w = h->data;
	if (w->c && w->runnable)
		relmd_conn_process(w->c);
}

static void on_runnable(struct relmd_conn_owner *o, struct relmd_conn *c, int runnable)
{
	struct owner *w = (struct owner *)o;
	ck_assert_ptr_eq(c, w->c);
	ck_assert_int_ne(runnable, w->runnable);        /* told only of changes */
	w->runnable = runnable;
	w->runnable_calls++;
	if (runnable)
		uv_idle_start(&w->work, on_work);
	else
		uv_idle_stop(&w->work);
}

static void on_closed(struct relmd_conn_owner *o, struct relmd_conn *c)
{
	struct owner *w = (struct owner *)o;
	ck_assert_ptr_eq(c, w->c);
	ck_assert_int_eq(c->state, RELMD_CONN_CLOSED);
	ck_assert_int_eq(w->runnable, 0);
	w->closed++;
	w->c = NULL;
}

static void on_flush(uv_prepare_t *h)
{
	struct owner *w = h->data;
	if (w->c)
		relmd_conn_flush(w->c);
}

/* A fresh owner and a connection on one end of a socketpair (state NONE). */
static void setup(void)
{
	int sv[2];
	memset(&W, 0, sizeof W);
	log_set_level(getenv("RELM_TEST_DEBUG") ? LOGL_DEBUG : LOGL_ERR);
	ck_assert_int_eq(uv_loop_init(&W.loop), 0);
	ck_assert_int_eq(relmd_events_init(&W.events, 16, NULL), 0);
	uv_idle_init(&W.loop, &W.work);
	uv_prepare_init(&W.loop, &W.flush);
	W.work.data = W.flush.data = &W;
	uv_prepare_start(&W.flush, on_flush);
	W.o.loop = &W.loop;
	W.o.events = &W.events;
	W.o.request = on_request;
	W.o.runnable = on_runnable;
	W.o.closed = on_closed;
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	W.peer = sv[0];
	W.c = relmd_conn_new(&W.o, 7);
	ck_assert_ptr_nonnull(W.c);
	ck_assert_int_eq(W.c->state, RELMD_CONN_NONE);
	ck_assert_int_eq(uv_pipe_open(&W.c->pipe, sv[1]), 0);
}

static void on_closed_handle(uv_handle_t *h) { (void)h; }

/* Every handle closed, the loop closes cleanly (nothing leaked). */
static void teardown_loop(void)
{
	ck_assert_ptr_null(W.c);
	uv_close((uv_handle_t *)&W.work, on_closed_handle);
	uv_close((uv_handle_t *)&W.flush, on_closed_handle);
	uv_run(&W.loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&W.loop), 0);
	relmd_events_clear(&W.events);
	close(W.peer);
}

static void peer_write(const char *s)
{
	ck_assert_int_eq(write(W.peer, s, strlen(s)), (ssize_t)strlen(s));
}

/* Run the loop until the peer has something to read; read it (up to
 * cap - 1 bytes, NUL-terminated).  Returns the byte count, 0 on EOF (or
 * ECONNRESET: the connection closed with input of ours unread). */
static size_t peer_read(char *buf, size_t cap)
{
	for (int i = 0; i < 100000; i++) {
		struct pollfd p = { W.peer, POLLIN, 0 };
		if (poll(&p, 1, 0) == 1) {
			ssize_t n = read(W.peer, buf, cap - 1);
			if (n < 0 && errno == ECONNRESET)
				n = 0;
			ck_assert_int_ge(n, 0);
			buf[n] = '\0';
			return (size_t)n;
		}
		uv_run(&W.loop, UV_RUN_NOWAIT);
	}
	ck_abort_msg("the connection never wrote");
	return 0;
}

/* Run the loop until the close callback has told the owner (bounded). */
static void run_until_closed(void)
{
	for (int i = 0; i < 100000 && !W.closed; i++)
		uv_run(&W.loop, UV_RUN_NOWAIT);
}

/* Everything the connection writes until EOF (NUL-terminated in got),
 * then the loop until its close callback ran. */
static void peer_read_all(char *got, size_t cap)
{
	char buf[4096];
	got[0] = '\0';
	while (peer_read(buf, sizeof buf) > 0)
		strncat(got, buf, cap - strlen(got) - 1);
	run_until_closed();
}

/* Requests in order, the unterminated last line counted at EOF, replies in
 * order, then drain and close once: the whole OPEN → DRAINING → CLOSING →
 * CLOSED path. */
START_TEST(lifecycle)
{
	setup();
	relmd_conn_start(W.c);
	ck_assert_int_eq(W.c->state, RELMD_CONN_OPEN);
	peer_write("one\r\n\n  \r\ntwo\nthree");
	ck_assert_int_eq(shutdown(W.peer, SHUT_WR), 0);
	char got[4096];
	peer_read_all(got, sizeof got);
	ck_assert_str_eq(got, "{\"echo\":\"one\"}\n{\"echo\":\"two\"}\n{\"echo\":\"three\"}\n");
	ck_assert_int_eq(W.nrequests, 3);
	ck_assert_int_eq(W.closed, 1);
	ck_assert_int_eq(W.runnable, 0);
	ck_assert_int_eq(W.runnable_calls % 2, 0);      /* every "runnable" was taken back */
	teardown_loop();
}
END_TEST

/* NONE → CLOSING: a refused connection gets its one line, then EOF, and
 * no request of its ever runs. */
START_TEST(refused)
{
	setup();
	peer_write("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\"}\n");
	relmd_conn_refuse(W.c, "{\"go\":\"away\"}");
	char got[256];
	peer_read_all(got, sizeof got);
	ck_assert_str_eq(got, "{\"go\":\"away\"}\n");
	ck_assert_int_eq(W.closed, 1);
	ck_assert_int_eq(W.nrequests, 0);
	teardown_loop();
}
END_TEST

/* The owner drains (as the server does at shutdown) while a reply is
 * queued and unwritten: the reply still arrives, then EOF; the rest of the
 * input is dropped unrun. */
START_TEST(drain_writes_queued)
{
	setup();
	relmd_conn_start(W.c);
	peer_write("first\n");
	for (int i = 0; i < 1000 && W.nrequests == 0; i++)
		uv_run(&W.loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(W.nrequests, 1);
	/* the reply is queued or in flight; more input is waiting */
	peer_write("second\n");
	relmd_conn_drain(W.c);
	ck_assert_int_eq(W.c->state, RELMD_CONN_DRAINING);
	relmd_conn_drain(W.c);                          /* idempotent */
	char got[256];
	peer_read_all(got, sizeof got);
	ck_assert_str_eq(got, "{\"echo\":\"first\"}\n");
	ck_assert_int_eq(W.nrequests, 1);
	ck_assert_int_eq(W.closed, 1);
	teardown_loop();
}
END_TEST

/* CLOSING → OPEN is not drawn: starting a connection that is closing
 * aborts instead of serving it. */
START_TEST(start_after_close_aborts)
{
	setup();
	relmd_conn_close(W.c);
	ck_assert_int_eq(W.c->state, RELMD_CONN_CLOSING);
	relmd_conn_close(W.c);                          /* idempotent */
	relmd_conn_start(W.c);                          /* aborts */
}
END_TEST

/* NONE → DRAINING is not drawn either: a connection that never started
 * has nothing to drain. */
START_TEST(drain_before_start_aborts)
{
	setup();
	relmd_conn_drain(W.c);                          /* aborts */
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("lifecycle");
	tcase_add_test(tc, lifecycle);
	tcase_add_test(tc, refused);
	tcase_add_test(tc, drain_writes_queued);
	suite_add_tcase(s, tc);
	tc = tcase_create("impossible_transitions");
	tcase_add_test_raise_signal(tc, start_after_close_aborts, SIGABRT);
	tcase_add_test_raise_signal(tc, drain_before_start_aborts, SIGABRT);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

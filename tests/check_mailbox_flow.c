/*
 * check_mailbox_flow.c — flow control between relm-mailbox and its client
 * (proto/mailbox.md): one write per connection per callback (output
 * coalescing, counted in syscalls), the client's budget of frames per loop
 * turn, its bounded window of unconfirmed posts, and a subscriber that
 * stops reading while others keep theirs.  The server runs in a forked
 * child on loopback, on SQLite and on PostgreSQL, as in check_mailbox.c
 * (util_mbox.h).
 *
 * Randomised parts come from RELM_SEED (default fixed), printed on failure.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <sodium.h>
#include <sqlite3.h>
#include <uv.h>

#include "error.h"
#include "log.h"
#include "mailbox_client/mailbox_client.h"
#include "wire/mailbox_proto.h"
#include "mailbox_server/mailbox_server.h"
#include "util_pg.h"

#include "util_mbox.h"

/* Set the int arg points to (a close callback). */
static void on_srv_closed(void *arg) { *(int *)arg = 1; }

/* ---- output coalescing (one write per connection per callback) ---- */

/* write-family syscalls made so far by pid (0: this process) */
static uint64_t proc_syscw(pid_t pid)
{
	char path[64], line[128];
	uint64_t v = 0;
	FILE *f;

	snprintf(path, sizeof(path), pid ? "/proc/%d/io" : "/proc/self/io", (int)pid);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "syscw: %llu", (unsigned long long *)&v) == 1)
			break;
	fclose(f);
	return v;
}

/* Many posts queued in one turn (corked) leave in one write and are
 * acknowledged in order; the server answers a burst of POSTs read in one
 * turn with one write of POSTED, in order. */
START_TEST(test_coalesced_posts)
{
	enum { N = 200 };
	uv_loop_t loop;
	struct relm_mbox_client *a, *b;
	struct rec ra, rb;
	struct key mb;
	uint16_t port;
	uint64_t w0, w1;
	pid_t pid = server_spawn(0, NULL, &port);

	key_new(&mb);
	uv_loop_init(&loop);
	a = client_new(&loop, port, &ra);
	RUN_UNTIL(&loop, ra.up, 5000);
	ck_assert(ra.up);
	{
		static uint8_t envs[N][100];
		int bad = 0;
		for (int i = 0; i < N; i++)
			memcpy(envs[i], &i, 4);
		w0 = relm_mbox_client_writes(a);
		relm_mbox_client_cork(a);
		for (int i = 0; i < N; i++)
			bad |= relm_mbox_client_post(a, mb.pk, envs[i], sizeof(envs[i]), NULL);
		relm_mbox_client_uncork(a);
		RUN_UNTIL(&loop, ra.acked == N, 5000);
		w1 = relm_mbox_client_writes(a);
		ck_assert_int_eq(bad, 0);
	}
	ck_assert_uint_eq(ra.acked, N);
	for (int i = 0; i < N; i++)
		ck_assert_uint_eq(ra.ack_seq[i], (uint64_t)i + 1);
	/* one write for the 200 POSTs (a frame at a time would be 200) */
	ck_assert_msg(w1 - w0 == 1, "%llu writes for %d posts", (unsigned long long)(w1 - w0), N);

	/* they arrive in order at a subscriber */
	b = client_new(&loop, port, &rb);
	ck_assert_int_eq(relm_mbox_client_subscribe(b, mb.pk, 0, mb.sk, NULL, NULL), 0);
	RUN_UNTIL(&loop, rb.ndel >= N, 5000);
	ck_assert_uint_eq(rb.ndel, N);
	for (int i = 0; i < N; i++) {
		ck_assert_uint_eq(rb.del_seq[i], (uint64_t)i + 1);
		ck_assert_int_eq(rb.del_val[i], i);
	}
	client_close(&loop, a, &ra);
	client_close(&loop, b, &rb);
	loop_finish(&loop);

	/* the server side: 200 POSTs in one send, 200 POSTED in order; the
	 * server's writes are the acks' (one or two) and its store's */
	{
		static uint8_t burst[N * 200];
		struct relm_mbox_frame f;
		uint8_t env[100];
		size_t off = 0;
		int fd = raw_connect(port);

		raw_hello(fd, NULL);
		for (int i = 0; i < N; i++) {
			memset(env, i, sizeof(env));
			frame(&f, RELM_MBOX_POST);
			f.u.post.tag = 1000 + (uint32_t)i;
			memcpy(f.u.post.mailbox, mb.pk, 32);
			f.u.post.env = env;
			f.u.post.env_len = sizeof(env);
			off += (size_t)relm_mbox_frame_encode(burst + off, sizeof(burst) - off, &f);
		}
		w0 = proc_syscw(pid);
		raw_send(fd, burst, off);
		for (int i = 0; i < N; i++) {
			ck_assert_int_eq(raw_recv(fd, &f), 0);
			ck_assert_uint_eq(f.type, RELM_MBOX_POSTED);
			ck_assert_uint_eq(f.u.posted.tag, 1000 + (uint32_t)i);
			ck_assert_uint_eq(f.u.posted.seq, (uint64_t)N + 1 + (uint64_t)i);
		}
		w1 = proc_syscw(pid);
		/* Not under valgrind: its scheduler writes to a pipe of its own
		 * around every blocking system call, and /proc/PID/io counts
		 * those too (make check and make asan check this). */
		if (slow_factor() == 1)
			ck_assert_msg(w1 - w0 < N / 2, "server: %llu writes for %d acks",
			              (unsigned long long)(w1 - w0), N);
		close(fd);
	}
	server_stop(pid);
}
END_TEST

/* The budget is a loop turn's (a turn ends at the prepare phase, where
 * relmd commits): with one smaller than one frame's handling, a backlog of
 * N deliveries comes one per turn, in order, none lost; with a budget of
 * 2 ms and 50 µs per frame, a turn handles at most 41 frames although
 * libuv calls on_read many times in one turn (a read brings about 4 KB,
 * some 20 frames, 1 ms of work: each call under the budget, and a budget
 * per call let a turn take them all); with no budget a turn handles
 * what its reads bring; closing a client while it is paused leaks
 * nothing. */
struct turns {
	uint64_t iter;                /* loop turns seen by the prepare handle */
	uint64_t last_iter;
	unsigned in_turn, max_in_turn;
	uint64_t work_ns;             /* busy time per delivery */
	struct rec *r;
};

static void on_turn(uv_prepare_t *h)
{
	((struct turns *)h->data)->iter++;
}

static void cb_deliver_slow(void *arg, const uint8_t mb[32], uint64_t seq, const uint8_t *env,
                            size_t len)
{
	struct turns *t = arg;
	uint64_t t0 = uv_hrtime();

	cb_deliver(t->r, mb, seq, env, len);
	if (t->last_iter != t->iter || t->in_turn == 0) {
		t->last_iter = t->iter;
		t->in_turn = 0;
	}
	if (++t->in_turn > t->max_in_turn)
		t->max_in_turn = t->in_turn;
	while (uv_hrtime() - t0 < t->work_ns)   /* work per envelope */
		;
}

static struct relm_mbox_client *client_budget(uv_loop_t *loop, uint16_t port, struct rec *r,
                                              struct turns *t, uint32_t budget_us)
{
	struct relm_mbox_client_cbs cbs = { t, NULL, NULL, cb_deliver_slow, NULL };
	struct relm_mbox_client_config cfg;
	struct relm_mbox_client *c;

	memset(r, 0, sizeof(*r));
	memset(t, 0, sizeof(*t));
	t->r = r;
	t->work_ns = 20000;
	relm_mbox_client_config_default(&cfg);
	cfg.turn_budget_us = budget_us;
	ck_assert_int_eq(relm_mbox_client_new(&c, loop, "127.0.0.1", port, &cbs, &cfg), 0);
	return c;
}

START_TEST(test_client_turn_budget)
{
	enum { N = 150 };
	uv_loop_t loop;
	uv_prepare_t chk;
	struct relm_mbox_client *a, *b;
	struct rec ra, rb;
	struct turns tb;
	struct key mb;
	uint16_t port;
	pid_t pid = server_spawn(0, NULL, &port);

	ck_assert_uint_eq(RELM_MBOX_TURN_BUDGET_US, 2000);
	key_new(&mb);
	uv_loop_init(&loop);
	uv_prepare_init(&loop, &chk);
	chk.data = &tb;
	uv_prepare_start(&chk, on_turn);
	a = client_new(&loop, port, &ra);
	for (int i = 0; i < N; i++)
		post_int(a, mb.pk, i, 200);
	RUN_UNTIL(&loop, ra.acked == N, 5000);
	ck_assert_uint_eq(ra.acked, N);

	/* budget 1 µs, 20 µs per envelope: one delivery per resume or read */
	b = client_budget(&loop, port, &rb, &tb, 1);
	ck_assert_int_eq(relm_mbox_client_subscribe(b, mb.pk, 0, mb.sk, NULL, NULL), 0);
	RUN_UNTIL(&loop, rb.ndel >= N, 10000);
	ck_assert_uint_eq(rb.ndel, N);
	for (int i = 0; i < N; i++) {
		ck_assert_uint_eq(rb.del_seq[i], (uint64_t)i + 1);
		ck_assert_int_eq(rb.del_val[i], i);
	}
	ck_assert_uint_eq(tb.max_in_turn, 1);
	client_close(&loop, b, &rb);

	/* 2 ms, 50 µs a frame: the reads of one turn share its budget */
	b = client_budget(&loop, port, &rb, &tb, 2000);
	tb.work_ns = 50000;
	ck_assert_int_eq(relm_mbox_client_subscribe(b, mb.pk, 0, mb.sk, NULL, NULL), 0);
	RUN_UNTIL(&loop, rb.ndel >= N, 10000);
	ck_assert_uint_eq(rb.ndel, N);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(rb.del_val[i], i);
	ck_assert_uint_le(tb.max_in_turn, 2000 / 50 + 1);
	ck_assert_uint_gt(tb.max_in_turn, 1);
	client_close(&loop, b, &rb);

	/* two clients sharing one budget (as relmd's, one per server): both
	 * backlogs drain, every frame once, and a turn holds at most the
	 * budget's frames plus the other client's one */
	{
		struct key mb2;
		struct relm_mbox_client_cbs cbs = { &tb, NULL, NULL, cb_deliver_slow, NULL };
		struct relm_mbox_client_config cfg;
		struct relm_mbox_client *c2[2];
		uint64_t shared = 0;
		int seen[2 * N];

		key_new(&mb2);
		for (int i = 0; i < N; i++)
			post_int(a, mb2.pk, N + i, 200);
		RUN_UNTIL(&loop, ra.acked == 2 * N, 5000);
		memset(&rb, 0, sizeof rb);
		memset(&tb, 0, sizeof tb);
		tb.r = &rb;
		tb.work_ns = 50000;
		relm_mbox_client_config_default(&cfg);
		cfg.turn_budget_us = 2000;
		cfg.turn_shared_ns = &shared;
		for (int k = 0; k < 2; k++)
			ck_assert_int_eq(relm_mbox_client_new(&c2[k], &loop, "127.0.0.1", port, &cbs, &cfg), 0);
		ck_assert_int_eq(relm_mbox_client_subscribe(c2[0], mb.pk, 0, mb.sk, NULL, NULL), 0);
		ck_assert_int_eq(relm_mbox_client_subscribe(c2[1], mb2.pk, 0, mb2.sk, NULL, NULL), 0);
		RUN_UNTIL(&loop, rb.ndel >= 2 * N, 20000);
		ck_assert_uint_eq(rb.ndel, 2 * N);
		memset(seen, 0, sizeof seen);
		for (size_t i = 0; i < rb.ndel; i++) {
			ck_assert(rb.del_val[i] >= 0 && rb.del_val[i] < 2 * N);
			ck_assert_int_eq(seen[rb.del_val[i]]++, 0);
		}
		ck_assert_uint_le(tb.max_in_turn, 2000 / 50 + 2);
		for (int k = 0; k < 2; k++) {
			rb.closed = 0;
			client_close(&loop, c2[k], &rb);
		}
	}

	/* no budget: the backlog comes in a few reads, many per turn */
	b = client_budget(&loop, port, &rb, &tb, 0);
	ck_assert_int_eq(relm_mbox_client_subscribe(b, mb.pk, 0, mb.sk, NULL, NULL), 0);
	RUN_UNTIL(&loop, rb.ndel >= N, 10000);
	ck_assert_uint_eq(rb.ndel, N);
	ck_assert_uint_gt(tb.max_in_turn, 10);
	client_close(&loop, b, &rb);

	/* closed while paused: nothing more is delivered, nothing leaks */
	b = client_budget(&loop, port, &rb, &tb, 1);
	ck_assert_int_eq(relm_mbox_client_subscribe(b, mb.pk, 0, mb.sk, NULL, NULL), 0);
	RUN_UNTIL(&loop, rb.ndel >= 10, 10000);
	ck_assert_uint_lt(rb.ndel, N);
	{
		size_t seen = rb.ndel;
		client_close(&loop, b, &rb);
		ck_assert_uint_le(rb.ndel, seen + 1);
	}
	client_close(&loop, a, &ra);
	uv_close((uv_handle_t *)&chk, NULL);
	loop_finish(&loop);
	server_stop(pid);
}
END_TEST

/* A server that stops reading: the client has at most its post window
 * out, sends the next ones only as acks come (the posts an ack burst makes
 * room for in one write), drops the silent connection after two ping
 * periods and re-sends from the first unacknowledged post, in order. */
START_TEST(test_client_window_bounded)
{
	enum { N = 50, WIN = 8 };
	static struct peer p;
	struct relm_mbox_client_cbs cbs;
	struct relm_mbox_client_config cfg;
	struct relm_mbox_client *c;
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	struct rec r;
	struct key mb;
	uv_loop_t loop;
	uint32_t tags[WIN];
	int lfd, next = 0;

	key_new(&mb);
	uv_loop_init(&loop);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &salen), 0);
	nonblock(lfd);

	memset(&r, 0, sizeof(r));
	memset(&cbs, 0, sizeof(cbs));
	cbs.arg = &r;
	cbs.state = cb_state;
	cbs.posted = cb_posted;
	relm_mbox_client_config_default(&cfg);
	cfg.backoff_min_ms = 20;
	cfg.backoff_max_ms = 100;
	cfg.post_window = WIN;
	cfg.ping_ms = 300 * slow_factor();
	cfg.turn_budget_us = 0;     /* the 8 acks in one go, however slow the machine */
	ck_assert_int_eq(relm_mbox_client_new(&c, &loop, "127.0.0.1", ntohs(sa.sin_port), &cbs, &cfg), 0);
	memset(&p, 0, sizeof(p));
	p.fd = peer_accept(&loop, lfd);
	peer_handshake(&loop, &p);
	RUN_UNTIL(&loop, r.up, 5000);
	ck_assert(r.up);
	for (int i = 0; i < N; i++)
		post_int(c, mb.pk, i, 64);

	/* window by window: exactly WIN out, nothing more until acked; the
	 * room an ack burst makes is filled with one write */
	for (int k = 0; k < WIN; k++)
		ck_assert_int_eq(peer_post(&loop, &p, &tags[k], 1, 2000), k);
	while (next < 40) {
		uint64_t w0, w1;
		int acked, have;
		ck_assert_int_eq(peer_post(&loop, &p, &tags[0], 1, 100), -1);
		w0 = relm_mbox_client_writes(c);
		acked = peer_ack(&p, tags, WIN, (uint64_t)next + 1);   /* one send: 8 acks */
		next += WIN;
		RUN_UNTIL(&loop, r.acked == (uint64_t)next, 2000);
		have = next < 40 ? peer_gather(&loop, &p, WIN, 2000) : WIN;
		w1 = relm_mbox_client_writes(c);
		ck_assert_int_eq(acked, 0);
		ck_assert_uint_eq(r.acked, (uint64_t)next);
		if (next == 40)
			break;
		ck_assert_int_eq(have, WIN);
		for (int k = 0; k < WIN; k++)
			ck_assert_int_eq(peer_post(&loop, &p, &tags[k], 1, 2000), next + k);
		/* one write of the 8 POSTs (a PING the client may have sent
		 * meanwhile is one more) */
		ck_assert_msg(w1 - w0 >= 1 && w1 - w0 <= 2, "%llu writes", (unsigned long long)(w1 - w0));
	}
	/* the peer goes silent: the window stays WIN, the client gives up on
	 * the connection after two ping periods */
	RUN_UNTIL(&loop, r.downs == 1, 3000 * slow_factor());
	ck_assert_int_eq(r.downs, 1);
	ck_assert_int_eq(r.last_reason, RELM_ETIMEOUT);
	{
		int n = 0, v;
		uint32_t t;
		while ((v = peer_post(&loop, &p, &t, 0, 500)) >= 0) {
			ck_assert_int_eq(v, next + n);
			n++;
		}
		ck_assert_int_eq(v, -2);          /* EOF: the client closed it */
		ck_assert_int_eq(n, WIN);         /* 40..47, never 48 or 49 */
	}
	close(p.fd);
	/* reconnect: from the first unacknowledged, in order */
	memset(&p, 0, sizeof(p));
	p.fd = peer_accept(&loop, lfd);
	peer_handshake(&loop, &p);
	for (int k = 0; k < WIN; k++)
		ck_assert_int_eq(peer_post(&loop, &p, &tags[k], 1, 2000), next + k);
	ck_assert_int_eq(peer_ack(&p, tags, WIN, (uint64_t)next + 1), 0);
	next += WIN;
	for (int k = 0; k < N - next; k++)
		ck_assert_int_eq(peer_post(&loop, &p, &tags[k], 1, 2000), next + k);
	ck_assert_int_eq(peer_ack(&p, tags, N - next, (uint64_t)next + 1), 0);
	RUN_UNTIL(&loop, r.acked == N, 2000);
	ck_assert_uint_eq(r.acked, N);
	ck_assert_int_eq(r.post_err, 0);
	for (int i = 0; i < N; i++)
		ck_assert_uint_eq(r.ack_seq[i], (uint64_t)i + 1);
	ck_assert_uint_eq(relm_mbox_client_unacked(c), 0);
	client_close(&loop, c, &r);
	close(p.fd);
	close(lfd);
	loop_finish(&loop);
}
END_TEST

/* A subscriber that stops reading costs the server a bounded queue: the
 * pump stops fetching for it (DELIVERs handed out stay far below what is
 * stored) while the poster is served at full speed; when it reads again
 * it gets everything, in order. */
START_TEST(test_stalled_subscriber_bounded)
{
	enum { N = 200, LEN = 60000 };
	struct relm_mbox_server_config scfg;
	struct relm_mbox_server_stats st;
	struct relm_mbox_server *srv;
	struct relm_mbox_client *c;
	struct relm_mbox_frame f;
	static struct peer sub;
	static uint8_t env[LEN];
	struct rec r;
	struct key mb;
	uv_loop_t loop;
	int srv_closed = 0, small = 4096;
	uint8_t nonce[32];

	key_new(&mb);
	uv_loop_init(&loop);
	test_config(&scfg);
	scfg.rate = 1000000;
	scfg.burst = 1000000;
	ck_assert_int_eq(relm_mbox_server_start(&srv, &loop, "127.0.0.1", 0, state_dir, &scfg), 0);

	/* the subscriber: small receive buffer, handshake, then silence */
	{
		struct sockaddr_in sa;
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_port = htons(relm_mbox_server_port(srv));
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		memset(&sub, 0, sizeof(sub));
		sub.fd = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(sub.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
		ck_assert_int_eq(connect(sub.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		nonblock(sub.fd);
	}
	frame(&f, RELM_MBOX_HELLO);
	f.u.hello.min_version = f.u.hello.max_version = 1;
	raw_send_frame(sub.fd, &f);
	ck_assert_int_eq(peer_frame(&loop, &sub, &f, 5000), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_CHALLENGE);
	memcpy(nonce, f.u.challenge.nonce, 32);
	raw_subscribe_frame(&f, &mb, mb.pk, nonce, 0, 7);
	raw_send_frame(sub.fd, &f);
	ck_assert_int_eq(peer_frame(&loop, &sub, &f, 5000), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_SUBSCRIBED);

	c = client_new(&loop, relm_mbox_server_port(srv), &r);
	for (int i = 0; i < N; i++) {
		memset(env, i, sizeof(env));
		memcpy(env, &i, 4);
		ck_assert_int_eq(relm_mbox_client_post(c, mb.pk, env, sizeof(env), NULL), 0);
	}
	RUN_UNTIL(&loop, r.acked == N, 20000);
	ck_assert_uint_eq(r.acked, N);
	RUN_UNTIL(&loop, 0, 200);
	relm_mbox_server_get_stats(srv, &st);
	ck_assert_uint_eq(st.posts, N);
	/* 12 MB stored; handed out at most the queue (256 KiB + a batch) plus
	 * what the kernel buffers hold (a few MB on loopback) */
	ck_assert_msg(st.delivered < N / 2, "%llu of %d delivered to a reader that reads nothing",
	              (unsigned long long)st.delivered, N);

	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(peer_frame(&loop, &sub, &f, 10000), 0);
		ck_assert_uint_eq(f.type, RELM_MBOX_DELIVER);
		ck_assert_uint_eq(f.u.deliver.seq, (uint64_t)i + 1);
		ck_assert_uint_eq(f.u.deliver.env_len, LEN);
		ck_assert_uint_eq(f.u.deliver.env[LEN - 1], (uint8_t)i);
	}
	relm_mbox_server_get_stats(srv, &st);
	ck_assert_uint_eq(st.delivered, N);
	close(sub.fd);
	client_close(&loop, c, &r);
	relm_mbox_server_close(srv, on_srv_closed, &srv_closed);
	RUN_UNTIL(&loop, srv_closed, 3000);
	ck_assert(srv_closed);
	loop_finish(&loop);
}
END_TEST

static Suite *flow_suite(const char *name)
{
	Suite *s = suite_create(name);
	TCase *tc = tcase_create("coalescing");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_coalesced_posts);
	tcase_add_test(tc, test_client_window_bounded);
	tcase_add_test(tc, test_stalled_subscriber_bounded);
	tcase_add_test(tc, test_client_turn_budget);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	return run_on_both(flow_suite, "mailbox_flow", 0);
}

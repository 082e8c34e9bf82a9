/*
 * check_mailbox.c — integration of daemon/mailbox_server/mailbox_server.c and
 * daemon/mailbox_client/mailbox_client.c on loopback (127.0.0.1, ephemeral ports).
 *
 * Most tests run the server in a forked child (its own libuv loop, killed
 * with SIGTERM for a clean stop that must end in uv_loop_close() == 0, or
 * SIGKILL for a crash) and talk to it either with blocking "raw" sockets —
 * so hostile byte streams are easy to write — or with the real client on a
 * libuv loop in the test process.  test_embedded runs server and client in
 * one loop, as relmd --serve-mailbox does.
 *
 * Hostile clients are in check_mailbox_hostile.c, flow control (output
 * coalescing, the client's turn budget and window) in check_mailbox_flow.c.
 *
 * Randomised parts (keys, envelope bytes) come from RELM_SEED (default
 * fixed), printed on failure.
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

/* ======================================================================== */

START_TEST(test_post_then_subscribe_from_cursor)
{
	uv_loop_t loop;
	struct relm_mbox_client *a, *b;
	struct rec ra, rb;
	struct key mb;
	uint16_t port;
	pid_t pid = server_spawn(0, NULL, &port);

	key_new(&mb);
	uv_loop_init(&loop);
	a = client_new(&loop, port, &ra);
	for (int i = 0; i < 20; i++)
		post_int(a, mb.pk, i, 100 + (size_t)i);
	RUN_UNTIL(&loop, ra.acked == 20, 5000);
	ck_assert_uint_eq(ra.acked, 20);
	ck_assert_int_eq(ra.ups, 1);
	for (int i = 0; i < 20; i++)
		ck_assert_uint_eq(ra.ack_seq[i], (uint64_t)i + 1);   /* in order, 1-based */
	ck_assert_uint_eq(relm_mbox_client_unacked(a), 0);

	b = client_new(&loop, port, &rb);
	ck_assert_int_eq(relm_mbox_client_subscribe(b, mb.pk, 5, mb.sk, NULL, NULL), 0);
	RUN_UNTIL(&loop, rb.ndel >= 15, 5000);
	ck_assert_int_eq(rb.subscribed, 1);
	ck_assert_uint_eq(rb.head, 20);
	ck_assert_uint_eq(rb.ndel, 15);
	for (int i = 0; i < 15; i++) {
		ck_assert_uint_eq(rb.del_seq[i], (uint64_t)i + 6);
		ck_assert_int_eq(rb.del_val[i], i + 5);
	}
	{
		uint64_t cur;
		ck_assert_int_eq(relm_mbox_client_cursor(b, mb.pk, &cur), 0);
		ck_assert_uint_eq(cur, 20);
	}
	/* nothing more arrives */
	RUN_UNTIL(&loop, rb.ndel > 15, 200);
	ck_assert_uint_eq(rb.ndel, 15);

	client_close(&loop, a, &ra);
	client_close(&loop, b, &rb);
	loop_finish(&loop);
	server_stop(pid);
}
END_TEST

START_TEST(test_live_and_two_subscribers)
{
	uv_loop_t loop;
	struct relm_mbox_client *a, *b, *c;
	struct rec ra, rb, rc;
	struct key mb, other;
	uint16_t port;
	pid_t pid = server_spawn(0, NULL, &port);

	key_new(&mb);
	key_new(&other);
	uv_loop_init(&loop);
	a = client_new(&loop, port, &ra);
	b = client_new(&loop, port, &rb);
	c = client_new(&loop, port, &rc);
	ck_assert_int_eq(relm_mbox_client_subscribe(b, mb.pk, 0, mb.sk, NULL, NULL), 0);
	ck_assert_int_eq(relm_mbox_client_subscribe(c, mb.pk, 0, mb.sk, NULL, NULL), 0);
	/* c also reads another mailbox: nothing of mb's must leak into it */
	ck_assert_int_eq(relm_mbox_client_subscribe(c, other.pk, 0, other.sk, NULL, NULL), 0);
	RUN_UNTIL(&loop, rb.subscribed == 1 && rc.subscribed == 2, 3000);
	ck_assert_int_eq(rb.subscribed, 1);
	ck_assert_int_eq(rc.subscribed, 2);

	for (int i = 0; i < 30; i++)
		post_int(a, mb.pk, 1000 + i, 64);
	RUN_UNTIL(&loop, rb.ndel >= 30 && rc.ndel >= 30, 5000);
	/* the server keeps no reader count: both readers get everything, in order */
	ck_assert_uint_eq(rb.ndel, 30);
	ck_assert_uint_eq(rc.ndel, 30);
	for (int i = 0; i < 30; i++) {
		ck_assert_uint_eq(rb.del_seq[i], (uint64_t)i + 1);
		ck_assert_uint_eq(rc.del_seq[i], (uint64_t)i + 1);
		ck_assert_int_eq(rb.del_val[i], 1000 + i);
		ck_assert_int_eq(rc.del_val[i], 1000 + i);
	}
	/* a mailbox of its own has its own sequence */
	post_int(a, other.pk, 7, 64);
	RUN_UNTIL(&loop, rc.ndel >= 31, 3000);
	ck_assert_uint_eq(rc.del_seq[30], 1);
	ck_assert_int_eq(rc.del_val[30], 7);
	ck_assert_uint_eq(rb.ndel, 30);

	/* unsubscribe: no more deliveries */
	ck_assert_int_eq(relm_mbox_client_unsubscribe(b, mb.pk), 0);
	ck_assert_int_eq(relm_mbox_client_unsubscribe(b, mb.pk), RELM_ENOTFOUND);
	post_int(a, mb.pk, 2000, 64);
	RUN_UNTIL(&loop, rc.ndel >= 32, 3000);
	RUN_UNTIL(&loop, 0, 100);
	ck_assert_uint_eq(rc.ndel, 32);
	ck_assert_uint_eq(rb.ndel, 30);

	client_close(&loop, a, &ra);
	client_close(&loop, b, &rb);
	client_close(&loop, c, &rc);
	loop_finish(&loop);
	server_stop(pid);
}
END_TEST

START_TEST(test_restart_loses_nothing)
{
	struct relm_mbox_frame f;
	struct key mb;
	uint8_t nonce[32];
	uint16_t port;
	pid_t pid;
	int fd;
	char env[32];

	key_new(&mb);
	pid = server_spawn(0, NULL, &port);
	fd = raw_connect(port);
	raw_hello(fd, NULL);
	for (int i = 0; i < 10; i++) {
		snprintf(env, sizeof(env), "env-%d", i);
		ck_assert_uint_eq(raw_post(fd, mb.pk, env, strlen(env), (uint32_t)i + 1), (uint64_t)i + 1);
	}
	close(fd);
	/* crash: every acknowledged envelope was committed with synchronous=FULL */
	server_crash(pid);
	pid = server_spawn(0, NULL, &port);
	fd = raw_connect(port);
	raw_hello(fd, NULL);
	for (int i = 10; i < 15; i++) {
		snprintf(env, sizeof(env), "env-%d", i);
		ck_assert_uint_eq(raw_post(fd, mb.pk, env, strlen(env), 100), (uint64_t)i + 1);
	}
	close(fd);
	/* and a clean restart too */
	server_stop(pid);
	pid = server_spawn(0, NULL, &port);
	fd = raw_connect(port);
	raw_hello(fd, nonce);
	raw_subscribe_frame(&f, &mb, mb.pk, nonce, 0, 1);
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_SUBSCRIBED);
	ck_assert_uint_eq(f.u.subscribed.head, 15);
	for (int i = 0; i < 15; i++) {
		ck_assert_int_eq(raw_recv(fd, &f), 0);
		ck_assert_uint_eq(f.type, RELM_MBOX_DELIVER);
		ck_assert_uint_eq(f.u.deliver.seq, (uint64_t)i + 1);
		snprintf(env, sizeof(env), "env-%d", i);
		ck_assert_uint_eq(f.u.deliver.env_len, strlen(env));
		ck_assert_mem_eq(f.u.deliver.env, env, strlen(env));
	}
	close(fd);
	server_stop(pid);
}
END_TEST

static void raw_lease(int fd, const struct key *signer, const uint8_t mb[32], const uint8_t nonce[32],
                      const char *name, const uint8_t expected[16], const uint8_t holder[16],
                      uint32_t ttl, uint32_t tag)
{
	struct relm_mbox_frame f;

	frame(&f, RELM_MBOX_LEASE);
	f.u.lease.tag = tag;
	memcpy(f.u.lease.mailbox, mb, 32);
	f.u.lease.name = (const uint8_t *)name;
	f.u.lease.name_len = strlen(name);
	memcpy(f.u.lease.expected, expected, 16);
	memcpy(f.u.lease.holder, holder, 16);
	f.u.lease.ttl_ms = ttl;
	ck_assert_int_eq(relm_mbox_lease_sign(&f.u.lease, signer->sk, nonce), 0);
	raw_send_frame(fd, &f);
}

/* Expect LEASE_RESULT; returns granted, copies holder and remaining. */
static int raw_lease_result(int fd, uint32_t tag, uint8_t holder[16], uint32_t *remaining)
{
	struct relm_mbox_frame f;

	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_msg(f.type == RELM_MBOX_LEASE_RESULT, "got type %u code %s", f.type,
	              f.type == RELM_MBOX_ERROR ? relm_mbox_errname(f.u.error.code) : "-");
	ck_assert_uint_eq(f.u.lease_result.tag, tag);
	memcpy(holder, f.u.lease_result.holder, 16);
	*remaining = f.u.lease_result.remaining_ms;
	return f.u.lease_result.granted;
}

struct lease_rec {
	int done, err, granted;
	uint8_t holder[16];
};

static void cb_lease(void *arg, int err, int granted, const uint8_t holder[16], uint32_t rem)
{
	struct lease_rec *l = arg;
	(void)rem;
	l->done = 1;
	l->err = err;
	l->granted = granted;
	if (holder)
		memcpy(l->holder, holder, 16);
}

START_TEST(test_lease_cas)
{
	struct key mb, thief;
	uint8_t nonce[32], zero[16] = { 0 }, ta[16], tb[16], h[16];
	uint32_t rem;
	uint16_t port;
	pid_t pid = server_spawn(0, NULL, &port);
	int fd;

	key_new(&mb);
	key_new(&thief);
	memset(ta, 0xaa, 16);
	memset(tb, 0xbb, 16);
	fd = raw_connect(port);
	raw_hello(fd, nonce);

	/* A takes the free lease */
	raw_lease(fd, &mb, mb.pk, nonce, "leader", zero, ta, 400, 1);
	ck_assert_int_eq(raw_lease_result(fd, 1, h, &rem), 1);
	ck_assert_mem_eq(h, ta, 16);
	ck_assert_uint_eq(rem, 400);
	/* B expecting it free loses, and learns the holder */
	raw_lease(fd, &mb, mb.pk, nonce, "leader", zero, tb, 400, 2);
	ck_assert_int_eq(raw_lease_result(fd, 2, h, &rem), 0);
	ck_assert_mem_eq(h, ta, 16);
	ck_assert_uint_gt(rem, 0);
	ck_assert_uint_le(rem, 400);
	/* B expecting a wrong holder loses too */
	raw_lease(fd, &mb, mb.pk, nonce, "leader", tb, tb, 400, 3);
	ck_assert_int_eq(raw_lease_result(fd, 3, h, &rem), 0);
	/* A renews */
	raw_lease(fd, &mb, mb.pk, nonce, "leader", ta, ta, 300, 4);
	ck_assert_int_eq(raw_lease_result(fd, 4, h, &rem), 1);
	/* another name is another lease */
	raw_lease(fd, &mb, mb.pk, nonce, "other", zero, tb, 300, 5);
	ck_assert_int_eq(raw_lease_result(fd, 5, h, &rem), 1);
	/* refused requests */
	raw_lease(fd, &thief, mb.pk, nonce, "leader", ta, tb, 300, 6);
	ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_BAD_SIGNATURE, 6), 0);
	raw_lease(fd, &mb, mb.pk, nonce, "leader", ta, tb, 0, 7);
	ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_BAD_REQUEST, 7), 0);
	raw_lease(fd, &mb, mb.pk, nonce, "leader", ta, tb, RELM_MBOX_LEASE_TTL_MAX_MS + 1, 8);
	ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_BAD_REQUEST, 8), 0);
	raw_lease(fd, &mb, mb.pk, nonce, "leader", ta, zero, 5, 9);   /* release with a ttl */
	ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_BAD_REQUEST, 9), 0);

	/* expiry: after the TTL, B may take it expecting "free" */
	msleep(450);
	raw_lease(fd, &mb, mb.pk, nonce, "leader", zero, tb, 5000, 10);
	ck_assert_int_eq(raw_lease_result(fd, 10, h, &rem), 1);
	ck_assert_mem_eq(h, tb, 16);
	/* A's stale renewal fails and names B */
	raw_lease(fd, &mb, mb.pk, nonce, "leader", ta, ta, 300, 11);
	ck_assert_int_eq(raw_lease_result(fd, 11, h, &rem), 0);
	ck_assert_mem_eq(h, tb, 16);
	close(fd);

	/* leases survive a restart */
	server_stop(pid);
	pid = server_spawn(0, NULL, &port);
	fd = raw_connect(port);
	raw_hello(fd, nonce);
	raw_lease(fd, &mb, mb.pk, nonce, "leader", zero, ta, 300, 12);
	ck_assert_int_eq(raw_lease_result(fd, 12, h, &rem), 0);
	ck_assert_mem_eq(h, tb, 16);
	/* B releases; then it is free */
	raw_lease(fd, &mb, mb.pk, nonce, "leader", tb, zero, 0, 13);
	ck_assert_int_eq(raw_lease_result(fd, 13, h, &rem), 1);
	ck_assert_mem_eq(h, zero, 16);
	ck_assert_uint_eq(rem, 0);
	close(fd);

	/* through the client API */
	{
		uv_loop_t loop;
		struct rec r;
		struct relm_mbox_client *c;
		struct lease_rec l1 = { 0 }, l2 = { 0 };

		uv_loop_init(&loop);
		c = client_new(&loop, port, &r);
		ck_assert_int_eq(relm_mbox_client_lease(c, mb.pk, "leader", 6, zero, ta, 1000,
		                                        mb.sk, NULL, NULL, cb_lease, &l1), RELM_ECLOSED);
		RUN_UNTIL(&loop, r.up, 3000);
		ck_assert_int_eq(relm_mbox_client_lease(c, mb.pk, "leader", 6, zero, ta, 1000,
		                                        mb.sk, NULL, NULL, cb_lease, &l1), 0);
		ck_assert_int_eq(relm_mbox_client_lease(c, mb.pk, "leader", 6, zero, tb, 1000,
		                                        mb.sk, NULL, NULL, cb_lease, &l2), 0);
		RUN_UNTIL(&loop, l1.done && l2.done, 3000);
		ck_assert_int_eq(l1.err, 0);
		ck_assert_int_eq(l1.granted, 1);
		ck_assert_int_eq(l2.err, 0);
		ck_assert_int_eq(l2.granted, 0);
		ck_assert_mem_eq(l2.holder, ta, 16);
		client_close(&loop, c, &r);
		loop_finish(&loop);
	}
	server_stop(pid);
}
END_TEST

START_TEST(test_client_reconnect_at_least_once)
{
	uv_loop_t loop;
	struct relm_mbox_client *w, *rd;
	struct rec rw, rr;
	struct key mb;
	uint16_t port, port2;
	pid_t pid;
	enum { N = 120 };
	int seen[N];

	key_new(&mb);
	pid = server_spawn(0, NULL, &port);
	uv_loop_init(&loop);
	w = client_new(&loop, port, &rw);
	rd = client_new(&loop, port, &rr);
	ck_assert_int_eq(relm_mbox_client_subscribe(rd, mb.pk, 0, mb.sk, NULL, NULL), 0);
	RUN_UNTIL(&loop, rr.subscribed == 1 && rw.up, 3000);

	for (int i = 0; i < N / 2; i++)
		post_int(w, mb.pk, i, 200);
	RUN_UNTIL(&loop, rw.acked >= 10, 3000);
	ck_assert_uint_ge(rw.acked, 10);
	/* crash the server mid-stream */
	server_crash(pid);
	for (int i = N / 2; i < N; i++)
		post_int(w, mb.pk, i, 200);   /* queued while down */
	RUN_UNTIL(&loop, rw.downs >= 1 && rr.downs >= 1, 3000);
	ck_assert_int_eq(rw.up, 0);
	ck_assert_int_eq(rr.up, 0);
	RUN_UNTIL(&loop, 0, 150);        /* a few failed reconnects */
	ck_assert_uint_lt(rw.acked, N);
	pid = server_spawn(port, NULL, &port2);  /* same port: the clients find it again */

	RUN_UNTIL(&loop, rw.acked >= N && relm_mbox_client_unacked(w) == 0, 8000);
	ck_assert_uint_eq(relm_mbox_client_unacked(w), 0);
	ck_assert_int_ge(rw.ups, 2);
	/* the reader resumes from its cursor and, de-duplicating by content,
	 * has every envelope */
	memset(seen, 0, sizeof(seen));
	RUN_UNTIL(&loop, ({
		int all = 1;
		for (size_t k = 0; k < rr.ndel && k < MAXREC; k++)
			if (rr.del_val[k] >= 0 && rr.del_val[k] < N)
				seen[rr.del_val[k]] = 1;
		for (int k = 0; k < N; k++)
			all &= seen[k];
		all;
	}), 5000);
	for (int k = 0; k < N; k++)
		ck_seed(seen[k]);
	ck_assert_int_ge(rr.ups, 2);
	/* per mailbox, seqs arrive strictly increasing across the reconnect */
	for (size_t k = 1; k < rr.ndel && k < MAXREC; k++)
		ck_assert_uint_gt(rr.del_seq[k], rr.del_seq[k - 1]);

	client_close(&loop, w, &rw);
	client_close(&loop, rd, &rr);
	loop_finish(&loop);
	server_stop(pid);
}
END_TEST

START_TEST(test_retention_by_time)
{
	struct relm_mbox_server_config cfg;
	struct relm_mbox_frame f;
	struct key mb;
	uint8_t nonce[32];
	uint16_t port;
	pid_t pid;
	int fd;

	test_config(&cfg);
	cfg.retention_ms = 200 * slow_factor();   /* must outlast the reads below */
	cfg.sweep_ms = 50 * slow_factor();
	key_new(&mb);
	pid = server_spawn(0, &cfg, &port);
	fd = raw_connect(port);
	raw_hello(fd, nonce);
	for (int i = 0; i < 3; i++)
		raw_post(fd, mb.pk, "old", 3, 1);
	/* reading does not delete: subscribe now, then again later */
	raw_subscribe_frame(&f, &mb, mb.pk, nonce, 0, 2);
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_SUBSCRIBED);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(raw_recv(fd, &f), 0);
		ck_assert_uint_eq(f.type, RELM_MBOX_DELIVER);
	}
	raw_subscribe_frame(&f, &mb, mb.pk, nonce, 0, 3);
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_uint_eq(f.u.subscribed.oldest, 1);   /* still there after a read */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(raw_recv(fd, &f), 0);
	close(fd);

	/* Deleted by time: the sweep (every 50 ms) must take them all soon
	 * after 200 ms.  Looked at every 100 ms for up to 10 s, so that a
	 * loaded machine (a sweep is a round trip to PostgreSQL) cannot make
	 * a correct server fail. */
	msleep(300 * slow_factor());
	for (int tries = 0;; tries++) {
		fd = raw_connect(port);
		raw_hello(fd, nonce);
		raw_subscribe_frame(&f, &mb, mb.pk, nonce, 0, 4);
		raw_send_frame(fd, &f);
		ck_assert_int_eq(raw_recv(fd, &f), 0);
		ck_assert_uint_eq(f.type, RELM_MBOX_SUBSCRIBED);
		ck_assert_uint_eq(f.u.subscribed.head, 3);     /* seqs never go back */
		if (f.u.subscribed.oldest == 0)
			break;                                  /* all swept */
		close(fd);
		ck_assert_msg(tries < 100, "3 envelopes past retention still there after 10 s");
		msleep(100);
	}
	/* a new post continues the sequence and is delivered live */
	{
		struct relm_mbox_frame p;
		frame(&p, RELM_MBOX_POST);
		p.u.post.tag = 5;
		memcpy(p.u.post.mailbox, mb.pk, 32);
		p.u.post.env = (const uint8_t *)"new";
		p.u.post.env_len = 3;
		raw_send_frame(fd, &p);
	}
	for (int got = 0; got < 2;) {
		ck_assert_int_eq(raw_recv(fd, &f), 0);
		if (f.type == RELM_MBOX_POSTED) {
			ck_assert_uint_eq(f.u.posted.seq, 4);
			got++;
		} else {
			ck_assert_uint_eq(f.type, RELM_MBOX_DELIVER);
			ck_assert_uint_eq(f.u.deliver.seq, 4);
			got++;
		}
	}
	close(fd);
	/* The sweep goes on, one envelope at a time too (a sweep that
	 * deleted exactly one once stopped the PostgreSQL store's sweeps). */
	for (uint64_t want = 5; want <= 6; want++) {
		for (int tries = 0;; tries++) {
			fd = raw_connect(port);
			raw_hello(fd, nonce);
			raw_subscribe_frame(&f, &mb, mb.pk, nonce, want - 1, 6);
			raw_send_frame(fd, &f);
			ck_assert_int_eq(raw_recv(fd, &f), 0);
			ck_assert_uint_eq(f.u.subscribed.head, want - 1);
			if (f.u.subscribed.oldest == 0)
				break;
			close(fd);
			ck_assert_msg(tries < 100, "envelope %llu past retention still there after 10 s",
			              (unsigned long long)want - 1);
			msleep(100);
		}
		ck_assert_uint_eq(raw_post(fd, mb.pk, "more", 4, 7), want);
		close(fd);
	}
	server_stop(pid);
}
END_TEST

/* Server and client in one loop, as relmd --serve-mailbox runs them. */
static void on_srv_closed(void *arg) { *(int *)arg = 1; }

START_TEST(test_embedded)
{
	struct relm_mbox_server_config cfg;
	uv_loop_t loop;
	struct relm_mbox_server *srv;
	struct relm_mbox_server_stats st;
	struct relm_mbox_client *c;
	struct rec r;
	struct key mb;
	int srv_closed = 0;

	key_new(&mb);
	uv_loop_init(&loop);
	test_config(&cfg);
	ck_assert_int_eq(relm_mbox_server_start(&srv, &loop, "127.0.0.1", 0, state_dir, &cfg), 0);
	ck_assert_uint_ne(relm_mbox_server_port(srv), 0);
	c = client_new(&loop, relm_mbox_server_port(srv), &r);
	ck_assert_int_eq(relm_mbox_client_subscribe(c, mb.pk, 0, mb.sk, NULL, NULL), 0);
	for (int i = 0; i < 50; i++)
		post_int(c, mb.pk, i, 300);
	RUN_UNTIL(&loop, r.acked == 50 && r.ndel == 50, 5000);
	ck_assert_uint_eq(r.acked, 50);
	ck_assert_uint_eq(r.ndel, 50);
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(r.del_val[i], i);
	relm_mbox_server_get_stats(srv, &st);
	ck_assert_uint_eq(st.posts, 50);
	ck_assert_uint_eq(st.delivered, 50);
	ck_assert_uint_eq(st.connections, 1);
	ck_assert_int_ge(relm_mbox_server_sweep(srv), 0);
	/* a second server on the same port fails cleanly (its undo closes
	 * handles asynchronously; uv_loop_close below proves nothing leaked) */
	{
		struct relm_mbox_server *srv2 = NULL;
		ck_assert_int_lt(relm_mbox_server_start(&srv2, &loop, "127.0.0.1",
		                                        relm_mbox_server_port(srv), state_dir, &cfg), 0);
		ck_assert_ptr_null(srv2);
	}

	/* closing the server under a connected client: the client notices */
	relm_mbox_server_close(srv, on_srv_closed, &srv_closed);
	RUN_UNTIL(&loop, srv_closed && r.downs >= 1, 3000);
	ck_assert(srv_closed);
	ck_assert_int_eq(r.downs, 1);
	client_close(&loop, c, &r);
	loop_finish(&loop);

	/* bad arguments */
	uv_loop_init(&loop);
	ck_assert_int_eq(relm_mbox_server_start(&srv, &loop, "not-an-ip", 0, state_dir, &cfg), RELM_EINVAL);
	if (use_pg) {
		/* a database that is not there: refused at start, nothing left open */
		cfg.db = "host=/nonexistent-relm-test user=relm dbname=none connect_timeout=2";
		ck_assert_int_eq(relm_mbox_server_start(&srv, &loop, "127.0.0.1", 0, NULL, &cfg), RELM_ESTORE);
	} else {
		ck_assert_int_lt(relm_mbox_server_start(&srv, &loop, "127.0.0.1", 0, "/proc/nope/x", &cfg), 0);
	}
	loop_finish(&loop);
}
END_TEST

/* Posts to several mailboxes read in one turn share a commit: each
 * mailbox's seqs follow the order the posts were sent, the acks keep the
 * connection's order, and a subscriber whose cursor is ahead of head gets
 * only what passes it, live (from memory) as from the store. */
START_TEST(test_batch_many_mailboxes)
{
	static uint8_t buf[8 * 128];
	struct relm_mbox_frame f;
	struct key a, b;
	uint8_t nonce[32];
	uint16_t port;
	pid_t pid = server_spawn(0, NULL, &port);
	const uint8_t *to[6];
	size_t len = 0;
	int fd, sfd, n;

	key_new(&a);
	key_new(&b);
	sfd = raw_connect(port);
	raw_hello(sfd, nonce);
	/* cursor 3 on an empty mailbox: seqs 1..3 must never be delivered */
	raw_subscribe_frame(&f, &a, a.pk, nonce, 3, 1);
	raw_send_frame(sfd, &f);
	ck_assert_int_eq(raw_recv(sfd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_SUBSCRIBED);
	ck_assert_uint_eq(f.u.subscribed.head, 0);

	fd = raw_connect(port);
	raw_hello(fd, NULL);
	to[0] = a.pk; to[1] = b.pk; to[2] = a.pk; to[3] = b.pk; to[4] = a.pk; to[5] = a.pk;
	for (int i = 0; i < 6; i++) {
		uint8_t env[1] = { (uint8_t)('0' + i) };

		frame(&f, RELM_MBOX_POST);
		f.u.post.tag = 10 + (uint32_t)i;
		memcpy(f.u.post.mailbox, to[i], 32);
		f.u.post.env = env;
		f.u.post.env_len = 1;
		n = relm_mbox_frame_encode(buf + len, sizeof(buf) - len, &f);
		ck_assert_int_gt(n, 0);
		len += (size_t)n;
	}
	raw_send(fd, buf, len);   /* one write: very likely one commit */
	{
		const uint64_t want[6] = { 1, 1, 2, 2, 3, 4 };

		for (int i = 0; i < 6; i++) {
			ck_assert_int_eq(raw_recv(fd, &f), 0);
			ck_assert_uint_eq(f.type, RELM_MBOX_POSTED);
			ck_assert_uint_eq(f.u.posted.tag, 10 + (uint32_t)i);
			ck_assert_uint_eq(f.u.posted.seq, want[i]);
		}
	}
	/* the subscriber: a's seq 4 only (post 5), then a later one live */
	ck_assert_int_eq(raw_recv(sfd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_DELIVER);
	ck_assert_mem_eq(f.u.deliver.mailbox, a.pk, 32);
	ck_assert_uint_eq(f.u.deliver.seq, 4);
	ck_assert_uint_eq(f.u.deliver.env_len, 1);
	ck_assert_int_eq(f.u.deliver.env[0], '5');
	ck_assert_uint_eq(raw_post(fd, a.pk, "6", 1, 20), 5);
	ck_assert_int_eq(raw_recv(sfd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_DELIVER);
	ck_assert_uint_eq(f.u.deliver.seq, 5);
	ck_assert_int_eq(f.u.deliver.env[0], '6');
	/* from the store, the same envelopes in the same order */
	raw_subscribe_frame(&f, &b, b.pk, nonce, 0, 2);
	raw_send_frame(sfd, &f);
	ck_assert_int_eq(raw_recv(sfd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_SUBSCRIBED);
	ck_assert_uint_eq(f.u.subscribed.head, 2);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(raw_recv(sfd, &f), 0);
		ck_assert_uint_eq(f.type, RELM_MBOX_DELIVER);
		ck_assert_uint_eq(f.u.deliver.seq, (uint64_t)i + 1);
		ck_assert_int_eq(f.u.deliver.env[0], i ? '3' : '1');
	}
	close(fd);
	close(sfd);
	server_stop(pid);
}
END_TEST

/* A version 1 file (with its index on received_at) opens: its envelopes,
 * seq counters and leases are served, retention still sweeps its old rows,
 * and the file is migrated to version 3 (no index, read keys, a realm).  A
 * file newer than the server knows is refused. */
static void v1_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK, "%s: %s", sql,
	              err ? err : "?");
}

static void v1_envelope(sqlite3 *db, const uint8_t mb[32], uint64_t seq, uint64_t at,
                        const char *body)
{
	sqlite3_stmt *st;

	ck_assert_int_eq(sqlite3_prepare_v2(db, "INSERT INTO envelope VALUES(?1, ?2, ?3, ?4)",
	                                    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_blob(st, 1, mb, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)at);
	sqlite3_bind_blob(st, 4, body, (int)strlen(body), SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

static int db_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int v;

	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

START_TEST(test_store_v1_opens)
{
	char path[128];
	sqlite3 *db;
	sqlite3_stmt *st;
	struct relm_mbox_frame f;
	struct key mb;
	uint8_t nonce[32];
	uint64_t now = (uint64_t)time(NULL) * 1000u;
	uint16_t port;
	pid_t pid;
	int fd;

	key_new(&mb);
	snprintf(path, sizeof(path), "%s/mailbox.sqlite", state_dir);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	/* version 1's schema, verbatim */
	v1_exec(db, "PRAGMA journal_mode=WAL;"
	    "CREATE TABLE mailbox(id BLOB PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT ROWID;"
	    "CREATE TABLE envelope(mailbox BLOB NOT NULL, seq INTEGER NOT NULL,"
	    " received_at INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY(mailbox, seq));"
	    "CREATE INDEX envelope_received ON envelope(received_at);"
	    "CREATE TABLE lease(mailbox BLOB NOT NULL, name BLOB NOT NULL,"
	    " holder BLOB NOT NULL, expires_at INTEGER NOT NULL,"
	    " PRIMARY KEY(mailbox, name)) WITHOUT ROWID;"
	    "PRAGMA user_version=1;");
	ck_assert_int_eq(sqlite3_prepare_v2(db, "INSERT INTO mailbox VALUES(?1, 5)", -1, &st, NULL),
	                 SQLITE_OK);
	sqlite3_bind_blob(st, 1, mb.pk, 32, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	/* seqs 1..3 long past retention, 4..5 recent */
	v1_envelope(db, mb.pk, 1, 1000, "one");
	v1_envelope(db, mb.pk, 2, 2000, "two");
	v1_envelope(db, mb.pk, 3, 3000, "three");
	v1_envelope(db, mb.pk, 4, now - 1000, "four");
	v1_envelope(db, mb.pk, 5, now, "five");
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);

	/* the sweep runs when the server starts, before it accepts */
	pid = server_spawn(0, NULL, &port);
	fd = raw_connect(port);
	raw_hello(fd, nonce);
	raw_subscribe_frame(&f, &mb, mb.pk, nonce, 0, 1);
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_SUBSCRIBED);
	ck_assert_uint_eq(f.u.subscribed.head, 5);
	ck_assert_uint_eq(f.u.subscribed.oldest, 4);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(raw_recv(fd, &f), 0);
		ck_assert_uint_eq(f.type, RELM_MBOX_DELIVER);
		ck_assert_uint_eq(f.u.deliver.seq, 4 + (uint64_t)i);
		ck_assert_mem_eq(f.u.deliver.env, i ? "five" : "four", 4);
	}
	{
		int fd2 = raw_connect(port);

		raw_hello(fd2, NULL);
		ck_assert_uint_eq(raw_post(fd2, mb.pk, "six", 3, 2), 6);   /* seqs continue */
		close(fd2);
	}
	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_DELIVER);
	ck_assert_uint_eq(f.u.deliver.seq, 6);
	close(fd);
	server_stop(pid);

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(db_int(db, "PRAGMA user_version"), 3);
	ck_assert_int_eq(db_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'envelope_received'"), 0);
	ck_assert_int_eq(db_int(db, "SELECT length(value) FROM meta WHERE name = 'realm'"), 32);
	ck_assert_int_eq(db_int(db, "SELECT count(*) FROM envelope"), 3);
	/* a file from a newer server is refused, and left alone */
	v1_exec(db, "PRAGMA user_version=4;");
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	{
		uv_loop_t loop;
		struct relm_mbox_server *srv = NULL;

		uv_loop_init(&loop);
		ck_assert_int_eq(relm_mbox_server_start(&srv, &loop, "127.0.0.1", 0, state_dir, NULL),
		                 RELM_ESTORE_NEWER);
		loop_finish(&loop);
	}
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(db_int(db, "PRAGMA user_version"), 4);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}
END_TEST

static Suite *mailbox_suite(const char *name)
{
	Suite *s = suite_create(name);
	TCase *tc;

	tc = tcase_create("delivery");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, test_post_then_subscribe_from_cursor);
	tcase_add_test(tc, test_live_and_two_subscribers);
	tcase_add_test(tc, test_embedded);
	tcase_add_test(tc, test_batch_many_mailboxes);
	suite_add_tcase(s, tc);

	tc = tcase_create("durability");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, test_restart_loses_nothing);
	tcase_add_test(tc, test_client_reconnect_at_least_once);
	tcase_add_test(tc, test_retention_by_time);
	if (!use_pg)
		tcase_add_test(tc, test_store_v1_opens);
	suite_add_tcase(s, tc);

	tc = tcase_create("lease");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, test_lease_cas);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_on_both(mailbox_suite, "mailbox", 0);
}

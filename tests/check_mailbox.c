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

START_TEST(test_wrong_signature_refused)
{
	struct relm_mbox_frame f;
	struct key mb, thief;
	uint8_t nonce[32], other_nonce[32];
	uint16_t port;
	pid_t pid = server_spawn(0, NULL, &port);
	int fd, fd2;
	uint8_t zero[32] = { 0 };

	key_new(&mb);
	key_new(&thief);
	fd = raw_connect(port);
	raw_hello(fd, nonce);
	fd2 = raw_connect(port);
	raw_hello(fd2, other_nonce);
	ck_assert_mem_ne(nonce, other_nonce, 32);   /* a fresh nonce per connection */
	raw_post(fd, mb.pk, "hello", 5, 1);

	/* signed by another key */
	raw_subscribe_frame(&f, &thief, mb.pk, nonce, 0, 11);
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_BAD_SIGNATURE, 11), 0);
	/* right key, but over another connection's nonce (replay) */
	raw_subscribe_frame(&f, &mb, mb.pk, other_nonce, 0, 12);
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_BAD_SIGNATURE, 12), 0);
	/* right key and nonce, cursor altered after signing */
	raw_subscribe_frame(&f, &mb, mb.pk, nonce, 0, 13);
	f.u.subscribe.cursor = 1;
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_BAD_SIGNATURE, 13), 0);
	/* not a key at all */
	raw_subscribe_frame(&f, &mb, zero, nonce, 0, 14);
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_BAD_MAILBOX, 14), 0);
	/* posting to a non-key is refused too */
	frame(&f, RELM_MBOX_POST);
	f.u.post.tag = 15;
	f.u.post.env = (const uint8_t *)"x";
	f.u.post.env_len = 1;
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_BAD_MAILBOX, 15), 0);
	/* the right signature works on the same connection, and delivers */
	raw_subscribe_frame(&f, &mb, mb.pk, nonce, 0, 16);
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_SUBSCRIBED);
	ck_assert_uint_eq(f.u.subscribed.tag, 16);
	ck_assert_uint_eq(f.u.subscribed.head, 1);
	ck_assert_uint_eq(f.u.subscribed.oldest, 1);
	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_DELIVER);
	ck_assert_uint_eq(f.u.deliver.seq, 1);
	ck_assert_mem_eq(f.u.deliver.env, "hello", 5);
	close(fd);
	close(fd2);

	/* the client reports a refused subscription and drops it */
	{
		uv_loop_t loop;
		struct rec r;
		struct relm_mbox_client *c;

		uv_loop_init(&loop);
		c = client_new(&loop, port, &r);
		ck_assert_int_eq(relm_mbox_client_subscribe(c, mb.pk, 0, thief.sk, NULL, NULL), 0);
		RUN_UNTIL(&loop, r.sub_err != 0, 3000);
		ck_assert_int_eq(r.sub_err, RELM_EBADSIG);
		ck_assert_uint_eq(r.ndel, 0);
		ck_assert_int_eq(relm_mbox_client_unsubscribe(c, mb.pk), RELM_ENOTFOUND);
		ck_assert_int_eq(r.up, 1);   /* the connection itself is fine */
		client_close(&loop, c, &r);
		loop_finish(&loop);
	}
	server_stop(pid);
}
END_TEST

START_TEST(test_bad_frames)
{
	static uint8_t big[RELM_MBOX_FRAME_TOTAL_MAX + 16];
	struct relm_mbox_frame f;
	struct key mb;
	uint16_t port;
	pid_t pid = server_spawn(0, NULL, &port);
	int fd;

	key_new(&mb);
	/* unknown type, malformed body, oversize envelope: errors, connection lives */
	fd = raw_connect(port);
	raw_hello(fd, NULL);
	{
		uint8_t u[] = { 0, 0, 0, 6, 1, 0x7f, 0, 0, 0, 42 };
		raw_send(fd, u, sizeof(u));
		ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_UNKNOWN_TYPE, 42), 0);
	}
	{
		uint8_t m[] = { 0, 0, 0, 8, 1, RELM_MBOX_POST, 0, 0, 0, 43, 1, 2 };
		raw_send(fd, m, sizeof(m));
		ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_MALFORMED, 43), 0);
	}
	{
		size_t total = 6 + 4 + 32 + RELM_MBOX_ENVELOPE_MAX + 1;
		uint32_t l = (uint32_t)(total - 4);
		memset(big, 0, total);
		big[0] = (uint8_t)(l >> 24); big[1] = (uint8_t)(l >> 16);
		big[2] = (uint8_t)(l >> 8); big[3] = (uint8_t)l;
		big[4] = 1; big[5] = RELM_MBOX_POST; big[9] = 44;
		memcpy(big + 10, mb.pk, 32);
		raw_send(fd, big, total);
		ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_TOO_BIG, 44), 0);
	}
	/* a server-to-client frame sent to the server */
	frame(&f, RELM_MBOX_POSTED);
	f.u.posted.tag = 45;
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_BAD_STATE, 45), 0);
	/* a second HELLO is fatal */
	raw_ping(fd, 46);
	frame(&f, RELM_MBOX_HELLO);
	f.u.hello.min_version = f.u.hello.max_version = 1;
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_BAD_STATE, 0), RELM_MBOX_ERRF_FATAL);
	ck_assert(raw_closed(fd));
	close(fd);

	/* a length the stream cannot recover from: error, then close */
	fd = raw_connect(port);
	raw_hello(fd, NULL);
	{
		uint8_t h[] = { 0xff, 0xff, 0xff, 0xff, 1, RELM_MBOX_POST };
		raw_send(fd, h, sizeof(h));
		ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_TOO_BIG, 0), RELM_MBOX_ERRF_FATAL);
		ck_assert(raw_closed(fd));
	}
	close(fd);
	fd = raw_connect(port);
	raw_hello(fd, NULL);
	{
		uint8_t h[] = { 0, 0, 0, 1, 1 };
		raw_send(fd, h, sizeof(h));
		ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_MALFORMED, 0), RELM_MBOX_ERRF_FATAL);
		ck_assert(raw_closed(fd));
	}
	close(fd);
	/* anything before HELLO */
	fd = raw_connect(port);
	{
		uint8_t p[] = { 0, 0, 0, 6, 1, RELM_MBOX_PING, 0, 0, 0, 1 };
		raw_send(fd, p, sizeof(p));
		ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_BAD_STATE, 0), RELM_MBOX_ERRF_FATAL);
		ck_assert(raw_closed(fd));
	}
	close(fd);
	/* no common version */
	fd = raw_connect(port);
	frame(&f, RELM_MBOX_HELLO);
	f.u.hello.min_version = RELM_MBOX_VERSION_MAX + 1;
	f.u.hello.max_version = 9;
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_VERSION, 0), RELM_MBOX_ERRF_FATAL);
	ck_assert(raw_closed(fd));
	close(fd);
	/* frame version other than the negotiated one */
	fd = raw_connect(port);
	raw_hello(fd, NULL);
	{
		uint8_t p[] = { 0, 0, 0, 6, 2, RELM_MBOX_PING, 0, 0, 0, 1 };
		raw_send(fd, p, sizeof(p));
		ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_VERSION, 0), RELM_MBOX_ERRF_FATAL);
		ck_assert(raw_closed(fd));
	}
	close(fd);
	/* random garbage streams: the server survives them all */
	for (int i = 0; i < 20; i++) {
		uint8_t g[300];
		size_t n = 1 + (size_t)(rng() % sizeof(g));
		for (size_t k = 0; k < n; k++)
			g[k] = (uint8_t)rng();
		fd = raw_connect(port);
		if (i & 1)
			raw_hello(fd, NULL);
		raw_send(fd, g, n);
		close(fd);
	}

	/* and still serves a well-behaved client */
	fd = raw_connect(port);
	raw_hello(fd, NULL);
	ck_assert_uint_eq(raw_post(fd, mb.pk, "ok", 2, 7), 1);
	{
		uint8_t env[RELM_MBOX_ENVELOPE_MAX];
		memset(env, 0x5a, sizeof(env));
		ck_assert_uint_eq(raw_post(fd, mb.pk, env, sizeof(env), 8), 2);  /* exactly 64 KiB is fine */
	}
	raw_ping(fd, 9);
	close(fd);
	server_stop(pid);
}
END_TEST

START_TEST(test_stalled_half_frame)
{
	struct relm_mbox_server_config cfg;
	struct key mb;
	uint16_t port;
	pid_t pid;
	int stall, mute, fd;
	uint8_t half[] = { 0, 0, 0, 100, 1, RELM_MBOX_POST, 0, 0, 0, 1 };
	struct timespec t0, t1;

	test_config(&cfg);
	cfg.frame_timeout_ms = 1500;
	cfg.hello_timeout_ms = 1500;
	pid = server_spawn(0, &cfg, &port);
	key_new(&mb);

	stall = raw_connect(port);
	raw_hello(stall, NULL);
	raw_send(stall, half, sizeof(half));          /* 10 of 104 bytes, then nothing */
	mute = raw_connect(port);                      /* never says HELLO */

	/* others are served at once meanwhile */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 3; i++) {
		fd = raw_connect(port);
		raw_hello(fd, NULL);
		ck_assert_uint_eq(raw_post(fd, mb.pk, "x", 1, 5), (uint64_t)i + 1);
		raw_ping(fd, 6);
		close(fd);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* well before the 1.5 s timeout that would free a blocked loop */
	ck_assert_int_lt((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 1000);

	/* the staller gets TIMEOUT and is closed */
	ck_assert_int_eq(raw_expect_error(stall, RELM_MBOX_E_TIMEOUT, 0), RELM_MBOX_ERRF_FATAL);
	ck_assert(raw_closed(stall));
	ck_assert_int_eq(raw_expect_error(mute, RELM_MBOX_E_TIMEOUT, 0), RELM_MBOX_ERRF_FATAL);
	ck_assert(raw_closed(mute));
	close(stall);
	close(mute);
	server_stop(pid);
}
END_TEST

/* A frame trickled one byte at a time must still complete within the
 * frame deadline, counted from its first byte (proto/mailbox.md §7): every
 * byte that arrives must not restart the clock, or ~1,024 such clients
 * hold the server full for ever.  The shortened timer (600 ms) against a
 * frame that would take 10 s to trickle: the server must close the
 * connection with a fatal `timeout` long before the frame is complete. */
START_TEST(test_trickled_frame)
{
	struct relm_mbox_server_config cfg;
	struct relm_mbox_frame f;
	struct key mb;
	uint8_t frame_buf[100];
	uint16_t port;
	pid_t pid;
	int fd, sent = 0, got_timeout = 0;

	test_config(&cfg);
	cfg.frame_timeout_ms = 600;
	cfg.idle_timeout_ms = 60000;
	pid = server_spawn(0, &cfg, &port);
	key_new(&mb);
	fd = raw_connect(port);
	raw_hello(fd, NULL);
	frame(&f, RELM_MBOX_POST);
	f.u.post.tag = 9;
	memcpy(f.u.post.mailbox, mb.pk, 32);
	f.u.post.env = frame_buf;
	f.u.post.env_len = sizeof(frame_buf) - 6 - 36;
	memset(frame_buf, 0x42, sizeof(frame_buf));
	{
		uint8_t enc[100];
		ck_assert_int_eq(relm_mbox_frame_encode(enc, sizeof(enc), &f), (int)sizeof(enc));
		for (sent = 0; sent < (int)sizeof(enc); sent++) {
			struct pollfd p = { fd, POLLIN, 0 };

			if (poll(&p, 1, 100) == 1) {   /* one byte per 100 ms, and the server's answer */
				ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_TIMEOUT, 0), RELM_MBOX_ERRF_FATAL);
				ck_assert(raw_closed(fd));
				got_timeout = 1;
				break;
			}
			if (send(fd, enc + sent, 1, MSG_NOSIGNAL) != 1)
				break;
		}
	}
	ck_assert_msg(got_timeout, "no timeout after %d of 100 bytes", sent);
	ck_assert_int_lt(sent, 100);      /* the frame never completed */
	close(fd);
	/* a frame sent whole right after is served */
	fd = raw_connect(port);
	raw_hello(fd, NULL);
	ck_assert_uint_eq(raw_post(fd, mb.pk, "ok", 2, 1), 1);
	close(fd);
	server_stop(pid);
}
END_TEST

/* Connections per client address are capped (127.0.0.1 here): the one
 * over the cap gets a fatal `overloaded`; closing one makes room. */
START_TEST(test_per_address_cap)
{
	struct relm_mbox_server_config cfg;
	uint16_t port;
	pid_t pid;
	int fd[3], extra;

	test_config(&cfg);
	cfg.max_conns_per_addr = 3;
	pid = server_spawn(0, &cfg, &port);
	for (int i = 0; i < 3; i++) {
		fd[i] = raw_connect(port);
		raw_hello(fd[i], NULL);
	}
	extra = raw_connect(port);
	ck_assert_int_eq(raw_expect_error(extra, RELM_MBOX_E_OVERLOADED, 0), RELM_MBOX_ERRF_FATAL);
	ck_assert(raw_closed(extra));
	close(extra);
	for (int i = 0; i < 3; i++)
		raw_ping(fd[i], (uint32_t)i + 1);   /* the three are unaffected */
	close(fd[0]);
	/* the server sees the close when it reads the EOF: retry briefly */
	for (int tries = 0;; tries++) {
		struct relm_mbox_frame f;

		extra = raw_connect(port);
		frame(&f, RELM_MBOX_HELLO);
		f.u.hello.min_version = f.u.hello.max_version = 1;
		raw_send_frame(extra, &f);
		ck_assert_int_eq(raw_recv(extra, &f), 0);
		if (f.type == RELM_MBOX_CHALLENGE)
			break;
		ck_assert_uint_eq(f.type, RELM_MBOX_ERROR);
		ck_assert_uint_eq(f.u.error.code, RELM_MBOX_E_OVERLOADED);
		close(extra);
		ck_assert_int_lt(tries, 50);
		msleep(20);
	}
	raw_ping(extra, 9);
	close(extra);
	close(fd[1]);
	close(fd[2]);
	server_stop(pid);
}
END_TEST

START_TEST(test_flood_rate_limited)
{
	struct relm_mbox_server_config cfg;
	struct relm_mbox_frame f;
	uint16_t port;
	pid_t pid;
	int fd, other;
	int pongs = 0, limited = 0;
	static uint8_t burst[300 * 10];

	test_config(&cfg);
	cfg.rate = 50;
	cfg.burst = 20;
	pid = server_spawn(0, &cfg, &port);
	fd = raw_connect(port);
	raw_hello(fd, NULL);
	for (int i = 0; i < 300; i++) {
		uint8_t *p = burst + 10 * i;
		p[0] = 0; p[1] = 0; p[2] = 0; p[3] = 6; p[4] = 1; p[5] = RELM_MBOX_PING;
		p[6] = 0; p[7] = 0; p[8] = (uint8_t)(i >> 8); p[9] = (uint8_t)i;
	}
	raw_send(fd, burst, sizeof(burst));
	for (int i = 0; i < 300; i++) {
		ck_assert_int_eq(raw_recv(fd, &f), 0);
		if (f.type == RELM_MBOX_PONG)
			pongs++;
		else if (f.type == RELM_MBOX_ERROR && f.u.error.code == RELM_MBOX_E_RATE_LIMITED) {
			ck_assert_uint_eq(f.u.error.tag, (uint32_t)i);   /* the dropped request is named */
			ck_assert_uint_eq(f.u.error.flags, 0);
			limited++;
		} else
			ck_abort_msg("unexpected frame type %u", f.type);
	}
	ck_assert_int_ge(pongs, 20);
	ck_assert_int_le(pongs, 60);
	ck_assert_int_ge(limited, 240);
	/* another connection is not affected */
	other = raw_connect(port);
	raw_hello(other, NULL);
	raw_ping(other, 1);
	/* the flooder recovers once the bucket refills */
	msleep(300);
	raw_ping(fd, 2);
	close(fd);
	close(other);
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

START_TEST(test_subscription_limit)
{
	struct relm_mbox_server_config cfg;
	struct relm_mbox_frame f;
	struct key k[3];
	uint8_t nonce[32];
	uint16_t port;
	pid_t pid;
	int fd;

	test_config(&cfg);
	cfg.max_subs = 2;
	pid = server_spawn(0, &cfg, &port);
	fd = raw_connect(port);
	raw_hello(fd, nonce);
	for (int i = 0; i < 3; i++) {
		key_new(&k[i]);
		raw_subscribe_frame(&f, &k[i], k[i].pk, nonce, 0, (uint32_t)i + 1);
		raw_send_frame(fd, &f);
		if (i < 2) {
			ck_assert_int_eq(raw_recv(fd, &f), 0);
			ck_assert_uint_eq(f.type, RELM_MBOX_SUBSCRIBED);
		} else {
			ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_TOO_MANY_SUBS, 3), 0);
		}
	}
	/* re-subscribing an existing one is not a new subscription */
	raw_subscribe_frame(&f, &k[0], k[0].pk, nonce, 0, 4);
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_SUBSCRIBED);
	/* unsubscribe frees a slot */
	frame(&f, RELM_MBOX_UNSUBSCRIBE);
	f.u.unsub.tag = 5;
	memcpy(f.u.unsub.mailbox, k[1].pk, 32);
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_UNSUBSCRIBED);
	ck_assert_uint_eq(f.u.unsub.tag, 5);
	frame(&f, RELM_MBOX_UNSUBSCRIBE);
	f.u.unsub.tag = 6;
	memcpy(f.u.unsub.mailbox, k[1].pk, 32);
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_NOT_SUBSCRIBED, 6), 0);
	raw_subscribe_frame(&f, &k[2], k[2].pk, nonce, 0, 7);
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_SUBSCRIBED);
	close(fd);
	server_stop(pid);
}
END_TEST

/* A subscriber that does not read while a large backlog builds up: the
 * server keeps only a bounded output queue for it (the store is read in
 * batches), serves everyone else meanwhile, and delivers everything in
 * order once the reader drains. */
START_TEST(test_slow_reader_bounded)
{
	struct relm_mbox_server_config cfg;
	struct relm_mbox_frame f;
	struct key mb;
	uint8_t nonce[32];
	static uint8_t env[60000];
	uint16_t port;
	pid_t pid;
	int slow, fd;
	enum { N = 200 };

	test_config(&cfg);
	cfg.rate = 1000000;
	cfg.burst = 1000000;
	key_new(&mb);
	pid = server_spawn(0, &cfg, &port);
	slow = raw_connect(port);
	raw_hello(slow, nonce);
	raw_subscribe_frame(&f, &mb, mb.pk, nonce, 0, 1);
	raw_send_frame(slow, &f);

	fd = raw_connect(port);
	raw_hello(fd, NULL);
	for (int i = 0; i < N; i++) {
		memset(env, i, sizeof(env));
		ck_assert_uint_eq(raw_post(fd, mb.pk, env, sizeof(env), (uint32_t)i + 1), (uint64_t)i + 1);
	}
	raw_ping(fd, 99);      /* 12 MB queued for a reader that reads nothing: still responsive */
	close(fd);

	ck_assert_int_eq(raw_recv(slow, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_SUBSCRIBED);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(raw_recv(slow, &f), 0);
		ck_assert_uint_eq(f.type, RELM_MBOX_DELIVER);
		ck_assert_uint_eq(f.u.deliver.seq, (uint64_t)i + 1);
		ck_assert_uint_eq(f.u.deliver.env_len, sizeof(env));
		ck_assert_uint_eq(f.u.deliver.env[0], (uint8_t)i);
		ck_assert_uint_eq(f.u.deliver.env[sizeof(env) - 1], (uint8_t)i);
	}
	close(slow);
	server_stop(pid);
}
END_TEST

/* Server and client in one loop, as relmd --serve-mailbox runs them. */
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

/* The budget: with one smaller than one frame's handling, a backlog of N
 * deliveries is spread over at least N/2 loop turns (one per resume, and a
 * turn can hold a resume and a read), in order, none lost, while with no
 * budget a turn handles what one read brings; closing a client while it is
 * paused leaks nothing. */
struct turns {
	uint64_t iter;                /* loop turns seen by the check handle */
	uint64_t last_iter;
	unsigned in_turn, max_in_turn;
	struct rec *r;
};

static void on_turn(uv_check_t *h)
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
	while (uv_hrtime() - t0 < 20000)   /* 20 µs of work per envelope */
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
	relm_mbox_client_config_default(&cfg);
	cfg.turn_budget_us = budget_us;
	ck_assert_int_eq(relm_mbox_client_new(&c, loop, "127.0.0.1", port, &cbs, &cfg), 0);
	return c;
}

START_TEST(test_client_turn_budget)
{
	enum { N = 150 };
	uv_loop_t loop;
	uv_check_t chk;
	struct relm_mbox_client *a, *b;
	struct rec ra, rb;
	struct turns tb;
	struct key mb;
	uint16_t port;
	pid_t pid = server_spawn(0, NULL, &port);

	ck_assert_uint_eq(RELM_MBOX_TURN_BUDGET_US, 2000);
	key_new(&mb);
	uv_loop_init(&loop);
	uv_check_init(&loop, &chk);
	chk.data = &tb;
	uv_check_start(&chk, on_turn);
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
	ck_assert_uint_le(tb.max_in_turn, 2);
	client_close(&loop, b, &rb);

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

/* The server remembers which mailbox ids it found to be valid keys; that
 * must never let an invalid id through: not one that differs from a
 * remembered id in its last byte only, not the all-zero id, not after
 * hundreds of ids have collided in what it remembers. */
START_TEST(test_post_mailbox_always_checked)
{
	enum { NKEYS = 300 };
	static struct key keys[NKEYS];
	static uint8_t bad[NKEYS][32];
	static uint8_t buf[NKEYS * 2 * 64];
	static int answered[NKEYS * 2];
	struct relm_mbox_frame f;
	uint8_t zero[32] = { 0 };
	uint16_t port;
	pid_t pid = server_spawn(0, NULL, &port);
	int fd;

	fd = raw_connect(port);
	raw_hello(fd, NULL);
	/* the all-zero id, before anything is remembered and after */
	frame(&f, RELM_MBOX_POST);
	f.u.post.tag = 1;
	f.u.post.env = (const uint8_t *)"x";
	f.u.post.env_len = 1;
	memcpy(f.u.post.mailbox, zero, 32);
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_BAD_MAILBOX, 1), 0);

	for (int round = 1; round <= 2; round++) {
		size_t len = 0;

		for (int i = 0; i < NKEYS; i++) {
			if (round == 1) {
				key_new(&keys[i]);
				memcpy(bad[i], keys[i].pk, 32);
				for (unsigned v = 0; v < 256; v++) {
					bad[i][31] = (uint8_t)v;
					if (crypto_core_ed25519_is_valid_point(bad[i]) != 1)
						break;
				}
				ck_seed(crypto_core_ed25519_is_valid_point(bad[i]) != 1);
			}
			for (int j = 0; j < 2; j++) {
				int n;

				frame(&f, RELM_MBOX_POST);
				f.u.post.tag = 100 + (uint32_t)(2 * i + j);
				memcpy(f.u.post.mailbox, j ? bad[i] : keys[i].pk, 32);
				f.u.post.env = (const uint8_t *)"e";
				f.u.post.env_len = 1;
				n = relm_mbox_frame_encode(buf + len, sizeof(buf) - len, &f);
				ck_assert_int_gt(n, 0);
				len += (size_t)n;
			}
		}
		raw_send(fd, buf, len);
		memset(answered, 0, sizeof(answered));
		for (int k = 0; k < 2 * NKEYS; k++) {
			uint32_t tag;

			ck_assert_int_eq(raw_recv(fd, &f), 0);
			if (f.type == RELM_MBOX_POSTED) {
				tag = f.u.posted.tag - 100;
				ck_seed(tag < 2 * NKEYS && tag % 2 == 0);
				ck_seed(f.u.posted.seq == (uint64_t)round);
			} else {
				ck_assert_uint_eq(f.type, RELM_MBOX_ERROR);
				ck_assert_uint_eq(f.u.error.code, RELM_MBOX_E_BAD_MAILBOX);
				tag = f.u.error.tag - 100;
				ck_seed(tag < 2 * NKEYS && tag % 2 == 1);
			}
			ck_seed(!answered[tag]);
			answered[tag] = 1;
		}
	}
	frame(&f, RELM_MBOX_POST);
	f.u.post.tag = 2;
	f.u.post.env = (const uint8_t *)"x";
	f.u.post.env_len = 1;
	memcpy(f.u.post.mailbox, zero, 32);
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_BAD_MAILBOX, 2), 0);
	close(fd);
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

	tc = tcase_create("coalescing");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_coalesced_posts);
	tcase_add_test(tc, test_client_window_bounded);
	tcase_add_test(tc, test_stalled_subscriber_bounded);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 15);
	tcase_add_test(tc, test_wrong_signature_refused);
	tcase_add_test(tc, test_bad_frames);
	tcase_add_test(tc, test_stalled_half_frame);
	tcase_add_test(tc, test_trickled_frame);
	tcase_add_test(tc, test_per_address_cap);
	tcase_add_test(tc, test_flood_rate_limited);
	tcase_add_test(tc, test_subscription_limit);
	tcase_add_test(tc, test_slow_reader_bounded);
	tcase_add_test(tc, test_post_mailbox_always_checked);
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
	tcase_add_test(tc, test_client_turn_budget);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_on_both(mailbox_suite, "mailbox", 0);
}

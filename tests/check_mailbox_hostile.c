/*
 * check_mailbox_hostile.c — relm-mailbox against hostile and careless
 * clients (proto/mailbox.md §4–§6): forged signatures, malformed and
 * half-sent frames, a frame trickled past its deadline, too many
 * connections from one address, a flood past the rate limit, too many
 * subscriptions, a reader that never reads, and posts to mailboxes that
 * are not keys.  The server runs in a forked child on loopback, on SQLite
 * and on PostgreSQL, as in check_mailbox.c (util_mbox.h).
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

static Suite *hostile_suite(const char *name)
{
	Suite *s = suite_create(name);
	TCase *tc = tcase_create("hostile");
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

	return s;
}

int main(void)
{
	return run_on_both(hostile_suite, "mailbox_hostile", 0);
}

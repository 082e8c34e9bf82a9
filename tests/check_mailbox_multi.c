/*
 * check_mailbox_multi.c — several relm-mailbox instances over one
 * PostgreSQL database (proto/mailbox.md §9.2), each instance a child
 * process (util_mbox.h) on the same test database:
 *  - posts through three instances to one mailbox, interleaved, arrive
 *    once each, in seq order, gap-free, at a client of a fourth — woken by
 *    the commits of the others (the server has no polling timer);
 *  - kill -9 of an instance in the middle of a stream of posts loses
 *    nothing it acknowledged: another instance serves every acknowledged
 *    envelope under the seq its ack named;
 *  - a client resumes from its cursor on another instance;
 *  - leases are one compare-and-set across instances: of three takes sent
 *    at once through three instances exactly one wins;
 *  - an instance whose database connections are dropped reconnects, and
 *    its readers miss nothing;
 *  - one schema and realm for all, a newer schema refused.
 * PostgreSQL only: skipped (and said so) where it is not installed.
 */
#include <check.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <libpq-fe.h>
#include <sodium.h>
#include <uv.h>

#include "error.h"
#include "util_mbox.h"

static void post_frame(uint8_t *out, size_t *len, const uint8_t mb[32], uint32_t tag, int v)
{
	struct relm_mbox_frame f;
	uint8_t env[64];
	int n;

	memset(env, 0, sizeof(env));
	memcpy(env, &v, 4);
	frame(&f, RELM_MBOX_POST);
	f.u.post.tag = tag;
	memcpy(f.u.post.mailbox, mb, 32);
	f.u.post.env = env;
	f.u.post.env_len = sizeof(env);
	n = relm_mbox_frame_encode(out + *len, 128, &f);
	ck_assert_int_gt(n, 0);
	*len += (size_t)n;
}

/* Three posters on instances 0..2, a reader on instance 3. */
START_TEST(test_three_post_one_reads)
{
	enum { POSTERS = 3, K = 100, ROUND = 10 };
	static uint8_t buf[POSTERS][ROUND * 128];
	uint64_t acked[POSTERS][K];
	int seen[POSTERS * K + 1];
	struct relm_mbox_client *rd;
	struct rec rr;
	struct key mb;
	uv_loop_t loop;
	uint16_t port[4];
	pid_t pid[4];
	int fd[POSTERS];

	key_new(&mb);
	for (int i = 0; i < 4; i++)
		pid[i] = server_spawn(0, NULL, &port[i]);
	uv_loop_init(&loop);
	rd = client_new(&loop, port[3], &rr);
	ck_assert_int_eq(relm_mbox_client_subscribe(rd, mb.pk, 0, mb.sk, NULL, NULL), 0);
	RUN_UNTIL(&loop, rr.subscribed == 1, 5000);
	ck_assert_int_eq(rr.subscribed, 1);
	ck_assert_uint_eq(rr.head, 0);

	for (int i = 0; i < POSTERS; i++) {
		fd[i] = raw_connect(port[i]);
		raw_hello(fd[i], NULL);
	}
	/* interleaved: ten posts on each connection in turn, every round */
	for (int r = 0; r < K / ROUND; r++)
		for (int i = 0; i < POSTERS; i++) {
			size_t len = 0;

			for (int k = r * ROUND; k < (r + 1) * ROUND; k++)
				post_frame(buf[i], &len, mb.pk, (uint32_t)k + 1, i * 1000 + k);
			raw_send(fd[i], buf[i], len);
		}
	/* each connection's acks come in its order, its seqs increasing */
	for (int i = 0; i < POSTERS; i++) {
		for (int k = 0; k < K; k++) {
			struct relm_mbox_frame f;

			ck_assert_int_eq(raw_recv(fd[i], &f), 0);
			ck_assert_uint_eq(f.type, RELM_MBOX_POSTED);
			ck_assert_uint_eq(f.u.posted.tag, (uint32_t)k + 1);
			acked[i][k] = f.u.posted.seq;
			if (k)
				ck_assert_uint_gt(acked[i][k], acked[i][k - 1]);
		}
		close(fd[i]);
	}
	/* the acked seqs are exactly 1..300: gap-free, none twice */
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < POSTERS; i++)
		for (int k = 0; k < K; k++) {
			ck_assert_uint_ge(acked[i][k], 1);
			ck_assert_uint_le(acked[i][k], POSTERS * K);
			ck_assert(!seen[acked[i][k]]);
			seen[acked[i][k]] = 1;
		}
	/* the reader on the fourth: all of them, once each, in seq order,
	 * each envelope under the seq its poster was told */
	RUN_UNTIL(&loop, rr.ndel >= POSTERS * K, 10000);
	RUN_UNTIL(&loop, 0, 200);
	ck_assert_uint_eq(rr.ndel, POSTERS * K);
	for (int s = 0; s < POSTERS * K; s++) {
		int v = rr.del_val[s], i = v / 1000, k = v % 1000;

		ck_assert_uint_eq(rr.del_seq[s], (uint64_t)s + 1);
		ck_assert(i >= 0 && i < POSTERS && k >= 0 && k < K);
		ck_assert_uint_eq(acked[i][k], (uint64_t)s + 1);
	}
	client_close(&loop, rd, &rr);
	loop_finish(&loop);
	for (int i = 0; i < 4; i++)
		server_stop(pid[i]);
}
END_TEST

/* Wait until no backend of this test's database is busy (a killed
 * instance's last statement has finished). */
static void db_quiet(void)
{
	PGconn *db = PQconnectdb(test_db);

	ck_assert_int_eq(PQstatus(db), CONNECTION_OK);
	for (int tries = 0;; tries++) {
		PGresult *r = PQexec(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
		                         "current_database() AND pid <> pg_backend_pid() AND "
		                         "state NOT IN ('idle')");
		int busy;

		ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
		busy = atoi(PQgetvalue(r, 0, 0));
		PQclear(r);
		if (!busy)
			break;
		ck_assert_int_lt(tries, 500);
		msleep(20);
	}
	PQfinish(db);
}

/* kill -9 of instance A while it takes a stream of posts: a child writes
 * them as fast as A reads (so some are always in flight), the test reads
 * the acks and kills A at the 300th. */
START_TEST(test_kill_mid_post)
{
	enum { N = 20000, CHUNK = 100 };
	static uint64_t acked[N + 1];
	static int got[N + 1];
	struct relm_mbox_frame f;
	struct key mb;
	uint8_t nonce[32];
	uint16_t pa, pb;
	pid_t a, b, writer;
	int fd, nacked = 0;
	uint64_t head;

	key_new(&mb);
	a = server_spawn(0, NULL, &pa);
	b = server_spawn(0, NULL, &pb);
	fd = raw_connect(pa);
	raw_hello(fd, NULL);
	fflush(NULL);
	writer = fork();
	ck_assert_int_ge(writer, 0);
	if (writer == 0) {
		static uint8_t out[CHUNK * 128];

		for (int k = 0; k < N; k += CHUNK) {
			size_t len = 0, off = 0;

			for (int j = k; j < k + CHUNK; j++)
				post_frame(out, &len, mb.pk, (uint32_t)j + 1, j);
			while (off < len) {
				ssize_t w = send(fd, out + off, len - off, MSG_NOSIGNAL);
				if (w <= 0)
					_exit(0);   /* A is gone */
				off += (size_t)w;
			}
		}
		_exit(0);
	}
	for (;;) {
		if (raw_recv(fd, &f) != 0)
			break;   /* reset or EOF: A is gone */
		ck_assert_uint_eq(f.type, RELM_MBOX_POSTED);
		ck_assert_uint_ge(f.u.posted.tag, 1);
		ck_assert_uint_le(f.u.posted.tag, N);
		acked[f.u.posted.tag] = f.u.posted.seq;
		if (++nacked == 300)
			server_crash(a);
	}
	close(fd);
	kill(writer, SIGKILL);
	waitpid(writer, NULL, 0);
	ck_assert_int_ge(nacked, 300);
	ck_assert_int_lt(nacked, N);       /* killed mid-stream indeed */
	/* A's last commit may still be running in the database (it commits
	 * posts nobody will hear of: allowed, delivery is at least once) */
	db_quiet();

	/* B has every acknowledged envelope, under the seq its ack named */
	fd = raw_connect(pb);
	raw_hello(fd, nonce);
	raw_subscribe_frame(&f, &mb, mb.pk, nonce, 0, 1);
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_SUBSCRIBED);
	head = f.u.subscribed.head;
	ck_assert_uint_ge(head, (uint64_t)nacked);
	memset(got, 0, sizeof(got));
	for (uint64_t s = 1; s <= head; s++) {
		int v;

		ck_assert_int_eq(raw_recv(fd, &f), 0);
		ck_assert_uint_eq(f.type, RELM_MBOX_DELIVER);
		ck_assert_uint_eq(f.u.deliver.seq, s);          /* gap-free */
		memcpy(&v, f.u.deliver.env, 4);
		ck_assert(v >= 0 && v < N);
		ck_assert(!got[v + 1]);                          /* each stored once */
		got[v + 1] = 1;
		if (acked[v + 1])
			ck_assert_uint_eq(acked[v + 1], s);
	}
	for (int t = 1; t <= N; t++)
		if (acked[t])
			ck_assert_msg(got[t], "acknowledged post %d is lost", t);
	/* and the mailbox goes on from there */
	ck_assert_uint_eq(raw_post(fd, mb.pk, "next", 4, 9999), head + 1);
	close(fd);
	server_stop(b);
}
END_TEST

/* A reader on A reads half; a new one on B resumes from its cursor. */
START_TEST(test_resume_elsewhere)
{
	struct relm_mbox_client *c;
	struct rec r;
	struct key mb;
	uv_loop_t loop;
	uint16_t pa, pb;
	pid_t a, b;
	uint64_t cursor;
	int fd;

	key_new(&mb);
	a = server_spawn(0, NULL, &pa);
	b = server_spawn(0, NULL, &pb);
	fd = raw_connect(pb);
	raw_hello(fd, NULL);
	for (int i = 0; i < 10; i++)
		ck_assert_uint_eq(raw_post(fd, mb.pk, &i, sizeof(i), 1), (uint64_t)i + 1);

	uv_loop_init(&loop);
	c = client_new(&loop, pa, &r);
	ck_assert_int_eq(relm_mbox_client_subscribe(c, mb.pk, 0, mb.sk, NULL, NULL), 0);
	RUN_UNTIL(&loop, r.ndel >= 10, 5000);
	ck_assert_uint_eq(r.ndel, 10);
	ck_assert_int_eq(relm_mbox_client_cursor(c, mb.pk, &cursor), 0);
	ck_assert_uint_eq(cursor, 10);
	client_close(&loop, c, &r);
	server_crash(a);

	for (int i = 10; i < 20; i++)
		ck_assert_uint_eq(raw_post(fd, mb.pk, &i, sizeof(i), 1), (uint64_t)i + 1);
	close(fd);
	c = client_new(&loop, pb, &r);
	ck_assert_int_eq(relm_mbox_client_subscribe(c, mb.pk, cursor, mb.sk, NULL, NULL), 0);
	RUN_UNTIL(&loop, r.ndel >= 10, 5000);
	RUN_UNTIL(&loop, 0, 200);
	ck_assert_uint_eq(r.ndel, 10);
	for (int i = 0; i < 10; i++) {
		ck_assert_uint_eq(r.del_seq[i], (uint64_t)i + 11);
		ck_assert_int_eq(r.del_val[i], i + 10);
	}
	client_close(&loop, c, &r);
	loop_finish(&loop);
	server_stop(b);
}
END_TEST

static void lease_frame(struct relm_mbox_frame *f, const struct key *k, const uint8_t nonce[32],
                        const uint8_t expected[16], const uint8_t holder[16], uint32_t ttl,
                        uint32_t tag)
{
	frame(f, RELM_MBOX_LEASE);
	f->u.lease.tag = tag;
	memcpy(f->u.lease.mailbox, k->pk, 32);
	f->u.lease.name = (const uint8_t *)"leader";
	f->u.lease.name_len = 6;
	memcpy(f->u.lease.expected, expected, 16);
	memcpy(f->u.lease.holder, holder, 16);
	f->u.lease.ttl_ms = ttl;
	ck_assert_int_eq(relm_mbox_lease_sign(&f->u.lease, k->sk, nonce), 0);
}

static int lease_answer(int fd, uint8_t holder[16])
{
	struct relm_mbox_frame f;

	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_LEASE_RESULT);
	memcpy(holder, f.u.lease_result.holder, 16);
	return f.u.lease_result.granted;
}

START_TEST(test_lease_across)
{
	enum { I = 3, ROUNDS = 5 };
	struct relm_mbox_frame f;
	struct key mb;
	uint8_t nonce[I][32], zero[16] = { 0 }, tok[I][16], h[16];
	uint16_t port[I];
	pid_t pid[I];
	int fd[I];

	key_new(&mb);
	for (int i = 0; i < I; i++) {
		pid[i] = server_spawn(0, NULL, &port[i]);
		fd[i] = raw_connect(port[i]);
		raw_hello(fd[i], nonce[i]);
		memset(tok[i], 0x10 + i, 16);
	}
	for (int round = 0; round < ROUNDS; round++) {
		int winners = 0, w = -1;

		/* three takes of a free lease at once, through three instances */
		for (int i = 0; i < I; i++) {
			lease_frame(&f, &mb, nonce[i], zero, tok[i], 60000, (uint32_t)round + 1);
			raw_send_frame(fd[i], &f);
		}
		for (int i = 0; i < I; i++) {
			if (lease_answer(fd[i], h)) {
				winners++;
				w = i;
				ck_assert_mem_eq(h, tok[i], 16);
			}
		}
		ck_assert_int_eq(winners, 1);
		/* the losers were told the winner; release it through another */
		{
			int o = (w + 1) % I;

			lease_frame(&f, &mb, nonce[o], zero, tok[o], 60000, 100);
			raw_send_frame(fd[o], &f);
			ck_assert_int_eq(lease_answer(fd[o], h), 0);
			ck_assert_mem_eq(h, tok[w], 16);
			lease_frame(&f, &mb, nonce[o], tok[w], zero, 0, 101);
			raw_send_frame(fd[o], &f);
			ck_assert_int_eq(lease_answer(fd[o], h), 1);
			ck_assert_mem_eq(h, zero, 16);
		}
	}
	for (int i = 0; i < I; i++) {
		close(fd[i]);
		server_stop(pid[i]);
	}
}
END_TEST

/* The database drops an instance's connections (a failover, a restart,
 * pg_terminate_backend): the instance reconnects on its own, a reader on
 * it misses nothing posted through another meanwhile (its listening
 * connection, back, makes every subscription read again), and posting
 * through it works again. */
START_TEST(test_database_reconnect)
{
	struct relm_mbox_client *rd, *w;
	struct rec rr, rw;
	struct key mb;
	uv_loop_t loop;
	uint16_t pa, pb;
	pid_t a, b;
	PGconn *db;
	int fd;

	key_new(&mb);
	a = server_spawn(0, NULL, &pa);
	b = server_spawn(0, NULL, &pb);
	uv_loop_init(&loop);
	rd = client_new(&loop, pa, &rr);
	ck_assert_int_eq(relm_mbox_client_subscribe(rd, mb.pk, 0, mb.sk, NULL, NULL), 0);
	RUN_UNTIL(&loop, rr.subscribed == 1, 5000);
	ck_assert_int_eq(rr.subscribed, 1);

	/* every backend of the test database but ours: both instances' */
	db = PQconnectdb(test_db);
	ck_assert_int_eq(PQstatus(db), CONNECTION_OK);
	{
		PGresult *r = PQexec(db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
		                         "WHERE datname = current_database() AND pid <> pg_backend_pid()");
		ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
		ck_assert_int_ge(atoi(PQgetvalue(r, 0, 0)), 4);   /* two per instance */
		PQclear(r);
	}
	PQfinish(db);

	/* posts through B (its own connections back after a retry or two) */
	fd = -1;
	for (int i = 0; i < 10; i++) {
		for (int tries = 0;; tries++) {
			struct relm_mbox_frame f;

			if (fd < 0) {
				fd = raw_connect(pb);
				raw_hello(fd, NULL);
			}
			frame(&f, RELM_MBOX_POST);
			f.u.post.tag = (uint32_t)i + 1;
			memcpy(f.u.post.mailbox, mb.pk, 32);
			f.u.post.env = (const uint8_t *)&i;
			f.u.post.env_len = sizeof(i);
			raw_send_frame(fd, &f);
			ck_assert_int_eq(raw_recv(fd, &f), 0);
			if (f.type == RELM_MBOX_POSTED)
				break;
			ck_assert_uint_eq(f.type, RELM_MBOX_ERROR);
			ck_assert_uint_eq(f.u.error.code, RELM_MBOX_E_STORE);   /* retry later */
			ck_assert_int_lt(tries, 100);
			msleep(50);
		}
	}
	close(fd);
	/* the reader on A gets all ten, in order, once */
	RUN_UNTIL(&loop, rr.ndel >= 10, 10000);
	RUN_UNTIL(&loop, 0, 200);
	ck_assert_uint_eq(rr.ndel, 10);
	for (int i = 0; i < 10; i++) {
		ck_assert_uint_eq(rr.del_seq[i], (uint64_t)i + 1);
		ck_assert_int_eq(rr.del_val[i], i);
	}
	/* and posts through A go through again (the client retries for us) */
	w = client_new(&loop, pa, &rw);
	post_int(w, mb.pk, 10, 64);
	RUN_UNTIL(&loop, rw.acked == 1 && rr.ndel == 11, 10000);
	ck_assert_uint_eq(rw.acked, 1);
	ck_assert_uint_eq(rw.ack_seq[0], 11);
	ck_assert_uint_eq(rr.ndel, 11);
	client_close(&loop, w, &rw);
	client_close(&loop, rd, &rr);
	loop_finish(&loop);
	server_stop(a);
	server_stop(b);
}
END_TEST

/* One realm for every instance; a schema newer than the server refused. */
START_TEST(test_schema_shared)
{
	struct relm_mbox_server_config cfg;
	struct relm_mbox_server *srv = NULL;
	struct relm_mbox_frame f;
	uint8_t realm[2][32];
	uint16_t port[2];
	pid_t pid[2];
	uv_loop_t loop;
	PGconn *db;
	PGresult *res;

	for (int i = 0; i < 2; i++) {
		int fd;

		pid[i] = server_spawn(0, NULL, &port[i]);
		fd = raw_connect(port[i]);
		frame(&f, RELM_MBOX_HELLO);
		f.u.hello.min_version = 1;
		f.u.hello.max_version = RELM_MBOX_VERSION_2;
		raw_send_frame(fd, &f);
		ck_assert_int_eq(raw_recv(fd, &f), 0);
		ck_assert_uint_eq(f.u.challenge.version, RELM_MBOX_VERSION_2);
		memcpy(realm[i], f.u.challenge.realm, 32);
		close(fd);
	}
	ck_assert_mem_eq(realm[0], realm[1], 32);
	for (int i = 0; i < 2; i++)
		server_stop(pid[i]);

	db = PQconnectdb(test_db);
	ck_assert_int_eq(PQstatus(db), CONNECTION_OK);
	res = PQexec(db, "UPDATE mailbox_meta SET version = 4");
	ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
	PQclear(res);
	uv_loop_init(&loop);
	test_config(&cfg);
	ck_assert_int_eq(relm_mbox_server_start(&srv, &loop, "127.0.0.1", 0, NULL, &cfg),
	                 RELM_ESTORE_NEWER);
	ck_assert_ptr_null(srv);
	loop_finish(&loop);
	/* left alone */
	res = PQexec(db, "SELECT version FROM mailbox_meta");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), "4");
	PQclear(res);
	PQfinish(db);
}
END_TEST

static Suite *multi_suite(const char *name)
{
	Suite *s = suite_create(name);
	TCase *tc = tcase_create("instances");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_three_post_one_reads);
	tcase_add_test(tc, test_kill_mid_post);
	tcase_add_test(tc, test_resume_elsewhere);
	tcase_add_test(tc, test_lease_across);
	tcase_add_test(tc, test_database_reconnect);
	tcase_add_test(tc, test_schema_shared);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_on_both(multi_suite, "mailbox_multi", 1);
}

/*
 * check_mailbox_batch.c — batched subscription (protocol version 2,
 * proto/mailbox.md §5.7), on SQLite and then on PostgreSQL, as
 * check_mailbox.c runs (util_mbox.h):
 *  - the real client subscribes many mailboxes: the first connection
 *    registers every read key once, a later connection needs none, and
 *    everything is delivered;
 *  - every refusal at the wire, entry by entry: unknown key, a MAC under
 *    another key or over another cursor or nonce, a registration signed by
 *    another key (which changes nothing), a low-order exchange key, a
 *    batch on a version 1 connection, a MAC batch with a key field;
 *  - the limits (subscriptions per connection) entry by entry;
 *  - the old form: a client offering version 1 only, a subscription with a
 *    sign callback and no read key, and a version 1 server (a peer that
 *    answers CHALLENGE in version 1) all get one SUBSCRIBE per mailbox.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <sodium.h>
#include <uv.h>

#include "error.h"
#include "util_mbox.h"
#include "util_pg.h"

/* ---- raw version 2 ---- */

struct v2 {
	int fd;
	uint8_t nonce[32], realm[32], kx_s[32];
	uint8_t c_sk[32], c_kx[32];
};

static void frame2(struct relm_mbox_frame *f, uint8_t type)
{
	frame(f, type);
	f->version = RELM_MBOX_VERSION_2;
}

/* Connect and say HELLO 1..2: the server must choose version 2. */
static void v2_open(struct v2 *v, uint16_t port)
{
	struct relm_mbox_frame f;

	memset(v, 0, sizeof(*v));
	v->fd = raw_connect(port);
	frame(&f, RELM_MBOX_HELLO);
	f.u.hello.min_version = 1;
	f.u.hello.max_version = RELM_MBOX_VERSION_2;
	raw_send_frame(v->fd, &f);
	ck_assert_int_eq(raw_recv(v->fd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_CHALLENGE);
	ck_assert_uint_eq(f.version, RELM_MBOX_VERSION_2);
	ck_assert_uint_eq(f.u.challenge.version, RELM_MBOX_VERSION_2);
	memcpy(v->nonce, f.u.challenge.nonce, 32);
	memcpy(v->realm, f.u.challenge.realm, 32);
	memcpy(v->kx_s, f.u.challenge.kx, 32);
	ck_assert(!sodium_is_zero(v->realm, 32));
	randombytes_buf(v->c_sk, 32);
	crypto_scalarmult_base(v->c_kx, v->c_sk);
}

/* Entry i names mb[i], proven with signer[i]'s read key (MAC) or signed by
 * signer[i] (REGISTER), from cursor[i]. */
static void v2_batch(struct v2 *v, uint32_t tag, uint8_t kind, size_t n, const uint8_t (*mb)[32],
                     const struct key *const *signer, const uint64_t *cursor)
{
	static uint8_t ent[RELM_MBOX_BATCH_MAX * RELM_MBOX_BATCH_MAC_ENTRY];
	struct relm_mbox_frame f;
	uint8_t k[32];

	if (kind == RELM_MBOX_BATCH_REGISTER)
		ck_assert_int_eq(relm_mbox_seal_key(k, v->c_sk, v->kx_s, v->kx_s, v->c_kx), 0);
	for (size_t i = 0; i < n; i++) {
		uint8_t rkey[32];

		relm_mbox_read_key(rkey, signer[i]->sk, v->realm);
		if (kind == RELM_MBOX_BATCH_MAC) {
			uint8_t mac[16];

			relm_mbox_sub_mac(mac, rkey, v->nonce, mb[i], cursor[i]);
			relm_mbox_batch_put_mac(ent + i * RELM_MBOX_BATCH_MAC_ENTRY, mb[i], cursor[i], mac);
		} else {
			uint8_t sealed[32], sig[64], m[RELM_MBOX_REG_SIG_INPUT_LEN];

			relm_mbox_seal(sealed, k, mb[i], rkey);
			relm_mbox_reg_sig_input(m, v->nonce, v->kx_s, v->c_kx, mb[i], cursor[i], sealed);
			crypto_sign_detached(sig, NULL, m, sizeof(m), signer[i]->sk);
			relm_mbox_batch_put_reg(ent + i * RELM_MBOX_BATCH_REG_ENTRY, mb[i], cursor[i], sealed, sig);
		}
	}
	frame2(&f, RELM_MBOX_SUBSCRIBE_BATCH);
	f.u.sub_batch.tag = tag;
	f.u.sub_batch.kind = kind;
	if (kind == RELM_MBOX_BATCH_REGISTER)
		memcpy(f.u.sub_batch.kx, v->c_kx, 32);
	f.u.sub_batch.entries = ent;
	f.u.sub_batch.count = n;
	raw_send_frame(v->fd, &f);
}

/* The answer to batch tag: its codes (and heads) in entry order. */
static void v2_answer(struct v2 *v, uint32_t tag, size_t n, unsigned *code, uint64_t *head)
{
	struct relm_mbox_frame f;

	ck_assert_int_eq(raw_recv(v->fd, &f), 0);
	ck_assert_msg(f.type == RELM_MBOX_SUBSCRIBED_BATCH, "got type %u (%s)", f.type,
	              f.type == RELM_MBOX_ERROR ? relm_mbox_errname(f.u.error.code) : "-");
	ck_assert_uint_eq(f.u.subed_batch.tag, tag);
	ck_assert_uint_eq(f.u.subed_batch.count, n);
	for (size_t i = 0; i < n; i++) {
		uint64_t h, o;

		relm_mbox_subed_entry(&f.u.subed_batch, i, &code[i], &h, &o);
		if (head)
			head[i] = h;
	}
}

/* ======================================================================== */

static void on_srv_closed(void *arg)
{
	*(int *)arg = 1;
}

/* The real client: N mailboxes over several frames.  The first connection
 * registers each read key once (the server counts them), a second
 * connection subscribes with MACs alone, and a post to each of a few of
 * them is delivered on it exactly once. */
START_TEST(test_client_batches)
{
	enum { N = 1500, POSTED = 40 };
	static struct key k[N];
	struct relm_mbox_server_config cfg;
	struct relm_mbox_server_stats st;
	struct relm_mbox_server *srv;
	struct relm_mbox_client *a, *b;
	struct rec ra, rb;
	uv_loop_t loop;
	int srv_closed = 0;

	for (int i = 0; i < N; i++)
		key_new(&k[i]);
	uv_loop_init(&loop);
	test_config(&cfg);
	ck_assert_int_eq(relm_mbox_server_start(&srv, &loop, "127.0.0.1", 0, state_dir, &cfg), 0);

	a = client_new(&loop, relm_mbox_server_port(srv), &ra);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(relm_mbox_client_subscribe(a, k[i].pk, 0, k[i].sk, NULL, NULL), 0);
	RUN_UNTIL(&loop, ra.subscribed == N || ra.sub_err, 20000);
	ck_assert_int_eq(ra.sub_err, 0);
	ck_assert_int_eq(ra.subscribed, N);
	relm_mbox_server_get_stats(srv, &st);
	ck_assert_uint_eq(st.registered, N);     /* each read key once */
	client_close(&loop, a, &ra);

	b = client_new(&loop, relm_mbox_server_port(srv), &rb);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(relm_mbox_client_subscribe(b, k[i].pk, 0, k[i].sk, NULL, NULL), 0);
	RUN_UNTIL(&loop, rb.subscribed == N || rb.sub_err, 20000);
	ck_assert_int_eq(rb.sub_err, 0);
	ck_assert_int_eq(rb.subscribed, N);
	relm_mbox_server_get_stats(srv, &st);
	ck_assert_uint_eq(st.registered, N);     /* none again: MACs only */
	for (int i = 0; i < POSTED; i++)
		post_int(b, k[i * (N / POSTED)].pk, i, 100);
	RUN_UNTIL(&loop, rb.ndel >= POSTED && rb.acked == POSTED, 10000);
	RUN_UNTIL(&loop, 0, 100);
	ck_assert_uint_eq(rb.ndel, POSTED);
	{
		int seen[POSTED] = { 0 };
		for (int i = 0; i < POSTED; i++) {
			ck_assert_uint_eq(rb.del_seq[i], 1);
			ck_assert(rb.del_val[i] >= 0 && rb.del_val[i] < POSTED);
			ck_assert(!seen[rb.del_val[i]]);
			seen[rb.del_val[i]] = 1;
		}
	}
	client_close(&loop, b, &rb);
	relm_mbox_server_close(srv, on_srv_closed, &srv_closed);
	RUN_UNTIL(&loop, srv_closed, 5000);
	ck_assert(srv_closed);
	loop_finish(&loop);
}
END_TEST

START_TEST(test_raw_refusals)
{
	struct key mb, thief, other;
	const struct key *signers[3];
	uint8_t ids[3][32], zero[32] = { 0 };
	uint64_t cursors[3] = { 0, 0, 0 }, head[3];
	unsigned code[3];
	uint16_t port;
	pid_t pid = server_spawn(0, NULL, &port);
	struct v2 v, w;
	struct relm_mbox_frame f;

	key_new(&mb);
	key_new(&thief);
	key_new(&other);
	/* something to deliver */
	{
		int fd = raw_connect(port);
		raw_hello(fd, NULL);
		ck_assert_uint_eq(raw_post(fd, mb.pk, "one", 3, 1), 1);
		close(fd);
	}
	v2_open(&v, port);

	/* nothing registered yet: unknown_key for each */
	memcpy(ids[0], mb.pk, 32);
	memcpy(ids[1], other.pk, 32);
	signers[0] = &mb;
	signers[1] = &other;
	v2_batch(&v, 10, RELM_MBOX_BATCH_MAC, 2, ids, signers, cursors);
	v2_answer(&v, 10, 2, code, NULL);
	ck_assert_uint_eq(code[0], RELM_MBOX_E_UNKNOWN_KEY);
	ck_assert_uint_eq(code[1], RELM_MBOX_E_UNKNOWN_KEY);

	/* registration, entry by entry: good, signed by a thief, not a key */
	memcpy(ids[2], zero, 32);
	signers[1] = &thief;
	signers[2] = &thief;
	v2_batch(&v, 11, RELM_MBOX_BATCH_REGISTER, 3, ids, signers, cursors);
	v2_answer(&v, 11, 3, code, head);
	ck_assert_uint_eq(code[0], 0);
	ck_assert_uint_eq(head[0], 1);
	ck_assert_uint_eq(code[1], RELM_MBOX_E_BAD_SIGNATURE);
	ck_assert_uint_eq(code[2], RELM_MBOX_E_BAD_MAILBOX);
	ck_assert_int_eq(raw_recv(v.fd, &f), 0);   /* the good one delivers */
	ck_assert_uint_eq(f.type, RELM_MBOX_DELIVER);
	ck_assert_uint_eq(f.u.deliver.seq, 1);
	ck_assert_mem_eq(f.u.deliver.mailbox, mb.pk, 32);

	/* MACs: right; under the thief's key; the cursor not the one MACed */
	memcpy(ids[1], mb.pk, 32);
	memcpy(ids[2], mb.pk, 32);
	signers[0] = &mb;
	signers[1] = &thief;
	signers[2] = &mb;
	cursors[0] = cursors[1] = cursors[2] = 1;
	v2_batch(&v, 12, RELM_MBOX_BATCH_MAC, 3, ids, signers, cursors);
	v2_answer(&v, 12, 3, code, head);
	ck_assert_uint_eq(code[0], 0);
	ck_assert_uint_eq(head[0], 1);
	ck_assert_uint_eq(code[1], RELM_MBOX_E_BAD_SIGNATURE);
	ck_assert_uint_eq(code[2], 0);            /* a second entry restarts the first */
	{
		uint8_t rkey[32], mac[16], ent[RELM_MBOX_BATCH_MAC_ENTRY];

		relm_mbox_read_key(rkey, mb.sk, v.realm);
		relm_mbox_sub_mac(mac, rkey, v.nonce, mb.pk, 0);
		relm_mbox_batch_put_mac(ent, mb.pk, 5, mac);   /* MAC for 0, cursor 5 */
		frame2(&f, RELM_MBOX_SUBSCRIBE_BATCH);
		f.u.sub_batch.tag = 13;
		f.u.sub_batch.entries = ent;
		f.u.sub_batch.count = 1;
		raw_send_frame(v.fd, &f);
		v2_answer(&v, 13, 1, code, NULL);
		ck_assert_uint_eq(code[0], RELM_MBOX_E_BAD_SIGNATURE);

		/* the right MAC, replayed on another connection: another nonce */
		relm_mbox_sub_mac(mac, rkey, v.nonce, mb.pk, 0);
		relm_mbox_batch_put_mac(ent, mb.pk, 0, mac);
		v2_open(&w, port);
		ck_assert_mem_ne(w.nonce, v.nonce, 32);
		ck_assert_mem_eq(w.realm, v.realm, 32);    /* one database, one realm */
		frame2(&f, RELM_MBOX_SUBSCRIBE_BATCH);
		f.u.sub_batch.tag = 14;
		f.u.sub_batch.entries = ent;
		f.u.sub_batch.count = 1;
		raw_send_frame(w.fd, &f);
		v2_answer(&w, 14, 1, code, NULL);
		ck_assert_uint_eq(code[0], RELM_MBOX_E_BAD_SIGNATURE);

		/* a MAC batch must carry no exchange key */
		f.u.sub_batch.tag = 15;
		f.u.sub_batch.kx[0] = 1;
		raw_send_frame(w.fd, &f);
		ck_assert_int_eq(raw_expect_error(w.fd, RELM_MBOX_E_MALFORMED, 15), 0);
	}
	/* a registration over a low-order exchange key: refused, all of it */
	memset(w.c_kx, 0, 32);
	{
		static uint8_t ent[RELM_MBOX_BATCH_REG_ENTRY];
		uint8_t sealed[32] = { 0 }, sig[64], m[RELM_MBOX_REG_SIG_INPUT_LEN];

		relm_mbox_reg_sig_input(m, w.nonce, w.kx_s, w.c_kx, mb.pk, 0, sealed);
		crypto_sign_detached(sig, NULL, m, sizeof(m), mb.sk);
		relm_mbox_batch_put_reg(ent, mb.pk, 0, sealed, sig);
		frame2(&f, RELM_MBOX_SUBSCRIBE_BATCH);
		f.u.sub_batch.tag = 16;
		f.u.sub_batch.kind = RELM_MBOX_BATCH_REGISTER;
		f.u.sub_batch.entries = ent;
		f.u.sub_batch.count = 1;
		raw_send_frame(w.fd, &f);
		v2_answer(&w, 16, 1, code, NULL);
		ck_assert_uint_eq(code[0], RELM_MBOX_E_BAD_SIGNATURE);
	}
	/* none of the refused registrations replaced the key: MACs still work */
	signers[0] = &mb;
	cursors[0] = 0;
	v2_batch(&w, 17, RELM_MBOX_BATCH_MAC, 1, ids, signers, cursors);
	v2_answer(&w, 17, 1, code, NULL);
	ck_assert_uint_eq(code[0], 0);
	close(w.fd);
	close(v.fd);

	/* version 1 has no batches */
	{
		int fd = raw_connect(port);
		uint8_t ent[RELM_MBOX_BATCH_MAC_ENTRY] = { 0 };

		raw_hello(fd, NULL);
		frame(&f, RELM_MBOX_SUBSCRIBE_BATCH);
		f.version = RELM_MBOX_VERSION_2;    /* encodable only so */
		f.u.sub_batch.tag = 18;
		f.u.sub_batch.entries = ent;
		f.u.sub_batch.count = 1;
		{
			uint8_t b[128];
			int n = relm_mbox_frame_encode(b, sizeof(b), &f);
			ck_assert_int_gt(n, 0);
			b[4] = RELM_MBOX_VERSION;
			raw_send(fd, b, (size_t)n);
		}
		ck_assert_int_eq(raw_expect_error(fd, RELM_MBOX_E_UNKNOWN_TYPE, 18), 0);
		raw_ping(fd, 19);
		close(fd);
	}
	server_stop(pid);
}
END_TEST

/* Subscriptions per connection are counted entry by entry. */
START_TEST(test_batch_limit)
{
	enum { N = 7 };
	struct relm_mbox_server_config cfg;
	struct key k[N];
	const struct key *signers[N];
	uint8_t ids[N][32];
	uint64_t cursors[N] = { 0 };
	unsigned code[N];
	uint16_t port;
	pid_t pid;
	struct v2 v;

	test_config(&cfg);
	cfg.max_subs = 5;
	pid = server_spawn(0, &cfg, &port);
	for (int i = 0; i < N; i++) {
		key_new(&k[i]);
		memcpy(ids[i], k[i].pk, 32);
		signers[i] = &k[i];
	}
	v2_open(&v, port);
	v2_batch(&v, 1, RELM_MBOX_BATCH_REGISTER, N, ids, signers, cursors);
	v2_answer(&v, 1, N, code, NULL);
	for (int i = 0; i < N; i++)
		ck_assert_uint_eq(code[i], i < 5 ? 0 : RELM_MBOX_E_TOO_MANY_SUBS);
	/* a known one again is a restart, not a sixth */
	v2_batch(&v, 2, RELM_MBOX_BATCH_MAC, 2, ids, signers, cursors);
	v2_answer(&v, 2, 2, code, NULL);
	ck_assert_uint_eq(code[0], 0);
	ck_assert_uint_eq(code[1], 0);
	close(v.fd);
	server_stop(pid);
}
END_TEST

/* ---- the old form ---- */

struct signer {
	const struct key *k;
	int calls;
};

static int sign_cb(void *arg, uint8_t sig[RELM_SIG_LEN], const uint8_t *msg, size_t len)
{
	struct signer *s = arg;

	s->calls++;
	crypto_sign_detached(sig, NULL, msg, len, s->k->sk);
	return 0;
}

/* read keys for the signers of test_old_form (cbs.read_key) */
static struct signer *rk_signers;
static int rk_n, rk_calls;

static int read_key_cb(void *arg, const uint8_t mb[32], const uint8_t realm[32], uint8_t key[32])
{
	(void)arg;
	rk_calls++;
	for (int i = 0; i < rk_n; i++)
		if (memcmp(rk_signers[i].k->pk, mb, 32) == 0) {
			relm_mbox_read_key(key, rk_signers[i].k->sk, realm);
			return 0;
		}
	return RELM_ENOTFOUND;
}

/* A client offering version 1 only, and a subscription with a sign
 * callback and no read key, subscribe one signed SUBSCRIBE each; with a
 * read key callback a sign callback signs only the registration. */
START_TEST(test_old_form)
{
	struct relm_mbox_client_config ccfg;
	struct relm_mbox_client_cbs cbs;
	struct relm_mbox_client *c;
	struct key k[3];
	struct signer s[3];
	struct rec r;
	uv_loop_t loop;
	uint16_t port;
	pid_t pid = server_spawn(0, NULL, &port);

	for (int i = 0; i < 3; i++) {
		key_new(&k[i]);
		s[i].k = &k[i];
		s[i].calls = 0;
	}
	uv_loop_init(&loop);
	/* version 1 only: a SUBSCRIBE, signed, per connection */
	memset(&r, 0, sizeof(r));
	memset(&cbs, 0, sizeof(cbs));
	cbs.arg = &r;
	cbs.state = cb_state;
	cbs.subscribed = cb_subscribed;
	cbs.deliver = cb_deliver;
	relm_mbox_client_config_default(&ccfg);
	ccfg.max_version = RELM_MBOX_VERSION;
	ck_assert_int_eq(relm_mbox_client_new(&c, &loop, "127.0.0.1", port, &cbs, &ccfg), 0);
	ck_assert_int_eq(relm_mbox_client_subscribe(c, k[0].pk, 0, NULL, sign_cb, &s[0]), 0);
	RUN_UNTIL(&loop, r.subscribed == 1, 5000);
	ck_assert_int_eq(r.subscribed, 1);
	ck_assert_int_eq(s[0].calls, 1);
	client_close(&loop, c, &r);

	/* version 2, no read key callback: SUBSCRIBE too */
	memset(&r, 0, sizeof(r));
	ccfg.max_version = 0;
	ck_assert_int_eq(relm_mbox_client_new(&c, &loop, "127.0.0.1", port, &cbs, &ccfg), 0);
	ck_assert_int_eq(relm_mbox_client_subscribe(c, k[1].pk, 0, NULL, sign_cb, &s[1]), 0);
	RUN_UNTIL(&loop, r.subscribed == 1, 5000);
	ck_assert_int_eq(r.subscribed, 1);
	ck_assert_int_eq(s[1].calls, 1);
	client_close(&loop, c, &r);

	/* version 2 with read keys: the signer signs the registration only,
	 * once; a second connection needs neither signature nor new key */
	rk_signers = s;
	rk_n = 3;
	rk_calls = 0;
	cbs.read_key = read_key_cb;
	for (int round = 0; round < 2; round++) {
		memset(&r, 0, sizeof(r));
		ck_assert_int_eq(relm_mbox_client_new(&c, &loop, "127.0.0.1", port, &cbs, &ccfg), 0);
		ck_assert_int_eq(relm_mbox_client_subscribe(c, k[2].pk, 0, NULL, sign_cb, &s[2]), 0);
		RUN_UNTIL(&loop, r.subscribed == 1 || r.sub_err, 5000);
		ck_assert_int_eq(r.sub_err, 0);
		ck_assert_int_eq(r.subscribed, 1);
		ck_assert_int_eq(s[2].calls, 1);   /* the registration, first round only */
		ck_assert_int_eq(rk_calls, round + 1);
		client_close(&loop, c, &r);
	}
	loop_finish(&loop);
	server_stop(pid);
}
END_TEST

/* A version 1 server (a peer answering CHALLENGE in version 1) gets a
 * SUBSCRIBE from a client that offered version 2. */
START_TEST(test_v1_server)
{
	static struct peer p;
	struct relm_mbox_client_cbs cbs;
	struct relm_mbox_client *c;
	struct relm_mbox_frame f;
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	struct rec r;
	struct key k;
	uv_loop_t loop;
	int lfd;

	key_new(&k);
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
	cbs.subscribed = cb_subscribed;
	ck_assert_int_eq(relm_mbox_client_new(&c, &loop, "127.0.0.1", ntohs(sa.sin_port), &cbs, NULL), 0);
	ck_assert_int_eq(relm_mbox_client_subscribe(c, k.pk, 7, k.sk, NULL, NULL), 0);
	memset(&p, 0, sizeof(p));
	p.fd = peer_accept(&loop, lfd);
	peer_handshake(&loop, &p);          /* HELLO read, CHALLENGE version 1 */
	ck_assert_int_eq(peer_frame(&loop, &p, &f, 5000), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_SUBSCRIBE);
	ck_assert_uint_eq(f.version, RELM_MBOX_VERSION);
	ck_assert_uint_eq(f.u.subscribe.cursor, 7);
	ck_assert_mem_eq(f.u.subscribe.mailbox, k.pk, 32);
	close(p.fd);
	close(lfd);
	client_close(&loop, c, &r);
	loop_finish(&loop);
}
END_TEST

static Suite *batch_suite(const char *name)
{
	Suite *s = suite_create(name);
	TCase *tc = tcase_create("batch");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_client_batches);
	tcase_add_test(tc, test_raw_refusals);
	tcase_add_test(tc, test_batch_limit);
	tcase_add_test(tc, test_old_form);
	if (!use_pg)
		tcase_add_test(tc, test_v1_server);   /* no server in it: once is enough */
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return run_on_both(batch_suite, "mailbox_batch", 0);
}

/*
 * bench_mailbox.c — relm-mailbox at provider scale (issue 18): one SQLite
 * instance against 1, 2 and 4 instances over one PostgreSQL, in one run,
 * and batched subscription at 100,000 and 1,000,000 mailboxes.
 *
 *   mailbox.posts_per_s.<cfg>     POSTERS connections, spread over the
 *                                 instances, each keeping WINDOW posts in
 *                                 flight to its own mailboxes, N posts in
 *                                 all: acks per second, first send to last
 *                                 ack; every post durable before its ack
 *   mailbox.cpu_us_per_post.<cfg> CPU the relm-mailbox processes spent
 *                                 per post meanwhile (/proc/PID/schedstat;
 *                                 PostgreSQL's own processes not counted)
 *   mailbox.p50_ms.<cfg>, .p99_ms end-to-end delivery at a paced RATE
 *                                 posts/s through every instance but the
 *                                 last, read by a subscriber of the last:
 *                                 send to DELIVER, for every post
 *   mailbox.subscribe_ms.<backend>_<n>  one connection subscribes n
 *                                 mailboxes whose read keys are registered:
 *                                 the first subscribe call to the last
 *                                 SUBSCRIBED_BATCH answer (relm's client,
 *                                 cbs.read_key); 100k at the default rate
 *                                 limit, 1m with --rate raised (at the
 *                                 default it is paced: see the README)
 *   mailbox.subscribe_ms.v1_<n>   the same with version 1 (one signed
 *                                 SUBSCRIBE per mailbox), for comparison
 *   mailbox.register_us_per_mailbox  the one-time registration (signature
 *                                 on the client, verification on the server)
 *   mailbox.relmd_subscribed_ms.100k  with --relmd-store: relmd's start-up
 *                                 on bench_scale's 100,000-relationship
 *                                 store (open, core, mailbox list), then
 *                                 every mailbox subscribed through relm's
 *                                 client as relmd does it (read keys from
 *                                 the store), registered (first) and
 *                                 already registered (second)
 *
 * <cfg> is sqlite_1, pg_1, pg_2, pg_4.  PostgreSQL is a private server
 * started here (tests/util_pg.c) with fsync on, as SQLite runs with
 * synchronous=FULL.  The subscription benchmark writes its mailboxes'
 * read keys straight into the database (what registration would store)
 * under random 32-byte ids: a MAC batch never looks at whether an id is a
 * valid Ed25519 key, so making a million key pairs would only cost time.
 *
 * Usage: bench_mailbox [--build DIR] [--json PATH] [--quick] [--relmd-store PATH]
 *                      [--only load|sub]
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <libpq-fe.h>
#include <sodium.h>
#include <sqlite3.h>
#include <uv.h>

#include "error.h"
#include "core/core.h"
#include "mailbox_client/mailbox_client.h"
#include "store/store.h"
#include "wire/mailbox_proto.h"
#include "system_env.h"
#include "util_pg.h"

enum {
	MAILBOXES = 64,            /* posted to (real keys: posts check them) */
	POSTERS = 8,
	WINDOW = 64,               /* posts in flight per poster */
	ENV_LEN = 200,             /* bytes per envelope (a short relm message) */
	INST_MAX = 4,
	CONN_BUF = 1 << 20,
};

static char build[256] = "build";
static char tmpdir[64];
static int quick;
static FILE *json;
static int json_n;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

__attribute__((format(printf, 1, 2)))
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench_mailbox: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	upg_stop();
	exit(1);
}

static void put(const char *key, double v)
{
	printf("  %-44s %12.1f\n", key, v);
	if (json)
		fprintf(json, "%s\n  \"mailbox.%s\": %.3f", json_n++ ? "," : "{", key, v);
}

/* ---- instances ---- */

struct inst {
	pid_t pid;
	uint16_t port;
};

/* relm-mailbox on 127.0.0.1:0 with db (postgresql) or state (sqlite). */
static void inst_start(struct inst *in, const char *db, const char *state, const char *rate)
{
	char prog[300], line[32];
	int fds[2];
	ssize_t n;

	snprintf(prog, sizeof(prog), "%s/relm-mailbox", build);
	if (pipe(fds) != 0)
		die("pipe");
	in->pid = fork();
	if (in->pid == 0) {
		char where[300], r[32];
		char *argv[] = { prog, "--listen", "127.0.0.1:0", db ? "--db" : "--state", where,
		                 "--rate", r, "--burst", r, "--max-conns-per-addr", "0",
		                 "--log-level", "err", NULL };

		snprintf(where, sizeof(where), "%s", db ? db : state);
		snprintf(r, sizeof(r), "%s", rate);
		dup2(fds[1], 1);
		close(fds[0]);
		execv(prog, argv);
		_exit(127);
	}
	close(fds[1]);
	n = read(fds[0], line, sizeof(line) - 1);
	close(fds[0]);
	if (n <= 0)
		die("%s did not start", prog);
	line[n] = '\0';
	in->port = (uint16_t)atoi(line);
}

static void inst_stop(struct inst *in)
{
	kill(in->pid, SIGTERM);
	waitpid(in->pid, NULL, 0);
}

static double cpu_us(pid_t pid)
{
	char path[64];
	unsigned long long ns = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	if (!(f = fopen(path, "r")))
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return (double)ns / 1e3;
}

/* ---- raw connections ---- */

struct conn {
	int fd;
	uint8_t in[CONN_BUF];
	size_t inlen;
	uint8_t cur[RELM_MBOX_FRAME_TOTAL_MAX];
};

static void conn_open(struct conn *c, uint16_t port, uint8_t nonce[32])
{
	struct sockaddr_in sa;
	struct relm_mbox_frame f;
	uint8_t b[64];
	int one = 1, n;

	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die("connect: %s", strerror(errno));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&f, 0, sizeof(f));
	f.version = 1;
	f.type = RELM_MBOX_HELLO;
	f.u.hello.min_version = f.u.hello.max_version = 1;
	n = relm_mbox_frame_encode(b, sizeof(b), &f);
	if (write(c->fd, b, (size_t)n) != n)
		die("write");
	for (;;) {
		size_t flen;
		ssize_t r = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);

		if (r <= 0)
			die("no CHALLENGE");
		c->inlen += (size_t)r;
		if (relm_mbox_frame_peek(&flen, c->in, c->inlen) == 0) {
			if (relm_mbox_frame_decode(&f, c->in, flen) != 0 || f.type != RELM_MBOX_CHALLENGE)
				die("bad CHALLENGE");
			if (nonce)
				memcpy(nonce, f.u.challenge.nonce, 32);
			memmove(c->in, c->in + flen, c->inlen - flen);
			c->inlen -= flen;
			break;
		}
	}
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

/* The next whole frame already read, or 0 when none is. */
static int conn_next(struct conn *c, struct relm_mbox_frame *f)
{
	size_t flen;

	if (relm_mbox_frame_peek(&flen, c->in, c->inlen) != 0)
		return 0;
	memcpy(c->cur, c->in, flen);
	memmove(c->in, c->in + flen, c->inlen - flen);
	c->inlen -= flen;
	if (relm_mbox_frame_decode(f, c->cur, flen) != 0)
		die("bad frame");
	return 1;
}

static int conn_read(struct conn *c)
{
	ssize_t r = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);

	if (r == 0 || (r < 0 && errno != EAGAIN))
		die("connection lost");
	if (r > 0)
		c->inlen += (size_t)r;
	return r > 0;
}

static void conn_write(struct conn *c, const uint8_t *b, size_t n)
{
	while (n) {
		ssize_t w = write(c->fd, b, n);

		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = { c->fd, POLLOUT, 0 };
			poll(&p, 1, 100);
			continue;
		}
		if (w <= 0)
			die("write: %s", strerror(errno));
		b += w;
		n -= (size_t)w;
	}
}

static size_t post_frame(uint8_t *out, const uint8_t mb[32], uint32_t tag, double sent)
{
	struct relm_mbox_frame f;
	uint8_t env[ENV_LEN];

	memset(env, 0x5a, sizeof(env));
	memcpy(env, &sent, sizeof(sent));
	memset(&f, 0, sizeof(f));
	f.version = 1;
	f.type = RELM_MBOX_POST;
	f.u.post.tag = tag;
	memcpy(f.u.post.mailbox, mb, 32);
	f.u.post.env = env;
	f.u.post.env_len = sizeof(env);
	return (size_t)relm_mbox_frame_encode(out, 512, &f);
}

/* ---- throughput and latency ---- */

static uint8_t mb_pk[MAILBOXES][32], mb_sk[MAILBOXES][64];

static void subscribe_all(struct conn *c, const uint8_t nonce[32])
{
	for (int m = 0; m < MAILBOXES; m++) {
		struct relm_mbox_frame f;
		uint8_t b[256];
		int n;

		memset(&f, 0, sizeof(f));
		f.version = 1;
		f.type = RELM_MBOX_SUBSCRIBE;
		f.u.subscribe.tag = (uint32_t)m + 1;
		memcpy(f.u.subscribe.mailbox, mb_pk[m], 32);
		f.u.subscribe.cursor = 0;
		relm_mbox_sub_sign(f.u.subscribe.sig, mb_sk[m], nonce, mb_pk[m], 0);
		n = relm_mbox_frame_encode(b, sizeof(b), &f);
		conn_write(c, b, (size_t)n);
	}
	for (int got = 0; got < MAILBOXES;) {
		struct relm_mbox_frame f;
		struct pollfd p = { c->fd, POLLIN, 0 };

		while (conn_next(c, &f)) {
			if (f.type != RELM_MBOX_SUBSCRIBED)
				die("subscription refused");
			got++;
		}
		if (got < MAILBOXES && poll(&p, 1, 5000) == 1)
			conn_read(c);
	}
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Saturation then a paced run on ninst instances. */
static void load(const char *cfg, struct inst *in, int ninst, long total, int rate, double seconds)
{
	static struct conn post[POSTERS], rd;
	static uint8_t buf[WINDOW * 512];
	static double lat[200000];
	uint8_t nonce[32];
	long sent = 0, acked = 0, delivered = 0, nlat = 0;
	int inflight[POSTERS] = { 0 };
	double cpu0 = 0, cpu1 = 0, t0, t1;
	char key[96];

	conn_open(&rd, in[ninst - 1].port, nonce);
	subscribe_all(&rd, nonce);
	for (int p = 0; p < POSTERS; p++)
		conn_open(&post[p], in[p % (ninst > 1 ? ninst - 1 : 1)].port, NULL);
	for (int i = 0; i < ninst; i++)
		cpu0 += cpu_us(in[i].pid);

	/* saturation: every poster keeps WINDOW posts in flight */
	t0 = now_ms();
	while (acked < total) {
		struct pollfd pf[POSTERS + 1];

		for (int p = 0; p < POSTERS; p++) {
			size_t len = 0;

			while (inflight[p] < WINDOW && sent < total) {
				len += post_frame(buf + len, mb_pk[(p * 8 + sent) % MAILBOXES], 1, 0);
				inflight[p]++;
				sent++;
			}
			if (len)
				conn_write(&post[p], buf, len);
			pf[p].fd = post[p].fd;
			pf[p].events = POLLIN;
		}
		pf[POSTERS].fd = rd.fd;
		pf[POSTERS].events = POLLIN;
		if (poll(pf, POSTERS + 1, 5000) <= 0)
			die("%s: no progress", cfg);
		for (int p = 0; p < POSTERS; p++) {
			struct relm_mbox_frame f;

			if (pf[p].revents)
				conn_read(&post[p]);
			while (conn_next(&post[p], &f)) {
				if (f.type != RELM_MBOX_POSTED)
					die("%s: post refused", cfg);
				inflight[p]--;
				acked++;
			}
		}
		if (pf[POSTERS].revents) {
			struct relm_mbox_frame f;

			conn_read(&rd);
			while (conn_next(&rd, &f))
				delivered += f.type == RELM_MBOX_DELIVER;
		}
	}
	t1 = now_ms();
	for (int i = 0; i < ninst; i++)
		cpu1 += cpu_us(in[i].pid);
	snprintf(key, sizeof(key), "posts_per_s.%s", cfg);
	put(key, (double)total / ((t1 - t0) / 1e3));
	snprintf(key, sizeof(key), "cpu_us_per_post.%s", cfg);
	put(key, (cpu1 - cpu0) / (double)total);
	/* drain what the reader still has coming */
	while (delivered < total) {
		struct pollfd p = { rd.fd, POLLIN, 0 };
		struct relm_mbox_frame f;

		if (poll(&p, 1, 10000) != 1)
			die("%s: deliveries stopped", cfg);
		conn_read(&rd);
		while (conn_next(&rd, &f))
			delivered += f.type == RELM_MBOX_DELIVER;
	}

	/* paced: one post every 1/rate s, round robin over the posters */
	{
		double start = now_ms(), next = start;
		long n = (long)(rate * seconds), k = 0;

		acked = delivered = 0;
		while (delivered < n) {
			struct pollfd pf[POSTERS + 1];
			double now = now_ms();
			int wait;

			while (k < n && now >= next) {
				uint8_t b[512];
				size_t len = post_frame(b, mb_pk[k % MAILBOXES], 1, now_ms());

				conn_write(&post[k % POSTERS], b, len);
				k++;
				next = start + (double)k * 1000.0 / rate;
			}
			for (int p = 0; p < POSTERS; p++) {
				pf[p].fd = post[p].fd;
				pf[p].events = POLLIN;
			}
			pf[POSTERS].fd = rd.fd;
			pf[POSTERS].events = POLLIN;
			wait = k < n ? (int)(next - now_ms()) : 1000;
			if (poll(pf, POSTERS + 1, wait < 0 ? 0 : wait) < 0)
				die("poll");
			for (int p = 0; p < POSTERS; p++) {
				struct relm_mbox_frame f;

				if (pf[p].revents)
					conn_read(&post[p]);
				while (conn_next(&post[p], &f))
					acked++;
			}
			if (pf[POSTERS].revents) {
				struct relm_mbox_frame f;

				conn_read(&rd);
				while (conn_next(&rd, &f)) {
					double at;

					if (f.type != RELM_MBOX_DELIVER)
						continue;
					memcpy(&at, f.u.deliver.env, sizeof(at));
					if (nlat < (long)(sizeof(lat) / sizeof(lat[0])))
						lat[nlat++] = now_ms() - at;
					delivered++;
				}
			}
			if (now_ms() - start > seconds * 1000 + 20000)
				die("%s: the paced run did not finish", cfg);
		}
		qsort(lat, (size_t)nlat, sizeof(lat[0]), cmp_d);
		snprintf(key, sizeof(key), "p50_ms.%s", cfg);
		put(key, lat[nlat / 2]);
		snprintf(key, sizeof(key), "p99_ms.%s", cfg);
		put(key, lat[nlat * 99 / 100]);
	}
	close(rd.fd);
	for (int p = 0; p < POSTERS; p++)
		close(post[p].fd);
}

/* ---- subscription ---- */

/* Mailboxes of the subscription benchmark: id = index (4 bytes) ‖ random,
 * seed random; read_key() finds the seed by the index in the id. */
static uint8_t (*sub_id)[32], (*sub_seed)[64];
static size_t sub_n;

static uint32_t *sub_sorted;   /* bench_signed: indices sorted by id */

static int by_id(const void *a, const void *b)
{
	return memcmp(sub_id[*(const uint32_t *)a], sub_id[*(const uint32_t *)b], 32);
}

static int sub_read_key(void *arg, const uint8_t mb[32], const uint8_t realm[32], uint8_t key[32])
{
	uint32_t i;

	(void)arg;
	memcpy(&i, mb, 4);
	if (!sub_sorted) {
		if (i >= sub_n || memcmp(sub_id[i], mb, 32) != 0)
			return RELM_ENOTFOUND;
	} else {
		size_t lo = 0, hi = sub_n;

		while (lo < hi) {   /* real keys: ids carry no index */
			size_t mid = (lo + hi) / 2;
			int d = memcmp(sub_id[sub_sorted[mid]], mb, 32);

			if (!d) {
				lo = mid;
				break;
			}
			if (d < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo >= sub_n || memcmp(sub_id[sub_sorted[lo]], mb, 32) != 0)
			return RELM_ENOTFOUND;
		i = sub_sorted[lo];
	}
	relm_mbox_read_key(key, sub_seed[i], realm);
	return 0;
}

static int sub_sign(void *arg, uint8_t sig[RELM_SIG_LEN], const uint8_t *m, size_t n)
{
	const uint8_t *sk = arg;

	crypto_sign_detached(sig, NULL, m, n, sk);
	return 0;
}

struct subrec {
	size_t ok, err, up;
};

static void on_sub(void *arg, const uint8_t mb[32], int err, uint64_t head, uint64_t oldest)
{
	struct subrec *r = arg;

	(void)mb; (void)head; (void)oldest;
	if (err)
		r->err++;
	else
		r->ok++;
}

static void on_state(void *arg, int up, int reason)
{
	(void)reason;
	((struct subrec *)arg)->up = (size_t)up;
}

static void on_closed(void *arg)
{
	*(int *)arg = 1;
}

static int timed_out;
static void on_deadline(uv_timer_t *t)
{
	(void)t;
	timed_out = 1;
}

/* Run loop until *cond or ms pass; 0 when cond held. */
static int run_until(uv_loop_t *loop, size_t *cond, size_t want, unsigned ms)
{
	uv_timer_t t;

	uv_timer_init(loop, &t);
	timed_out = 0;
	uv_timer_start(&t, on_deadline, ms, 0);
	while (*cond < want && !timed_out)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return *cond >= want ? 0 : -1;
}

/* ms for one client to subscribe sub_id[0..n) on port; signed: version 1
 * with key pairs in sub_seed (as libsodium sks) instead of read keys. */
static double subscribe_time(uint16_t port, size_t n, int v1)
{
	struct relm_mbox_client_cbs cbs;
	struct relm_mbox_client_config cfg;
	struct relm_mbox_client *c;
	struct subrec r = { 0, 0, 0 };
	uv_loop_t loop;
	double t0, t1;
	int closed = 0;

	uv_loop_init(&loop);
	memset(&cbs, 0, sizeof(cbs));
	cbs.arg = &r;
	cbs.state = on_state;
	cbs.subscribed = on_sub;
	cbs.read_key = v1 ? NULL : sub_read_key;
	relm_mbox_client_config_default(&cfg);
	cfg.max_version = v1 ? RELM_MBOX_VERSION : 0;
	if (relm_mbox_client_new(&c, &loop, "127.0.0.1", port, &cbs, &cfg) != 0)
		die("client");
	if (run_until(&loop, &r.up, 1, 10000) != 0)
		die("client did not connect");
	t0 = now_ms();
	relm_mbox_client_cork(c);
	for (size_t i = 0; i < n; i++)
		relm_mbox_client_subscribe(c, sub_id[i], 0, NULL, sub_sign, sub_seed[i]);
	relm_mbox_client_uncork(c);
	if (run_until(&loop, &r.ok, n, 600000) != 0 || r.err)
		die("subscription did not complete");
	t1 = now_ms();
	relm_mbox_client_close(c, on_closed, &closed);
	while (!closed)
		uv_run(&loop, UV_RUN_ONCE);
	uv_run(&loop, UV_RUN_NOWAIT);
	uv_loop_close(&loop);
	return t1 - t0;
}

/* The realm of the server on port (version 2 CHALLENGE). */
static void realm_of(uint16_t port, uint8_t realm[32])
{
	struct relm_mbox_frame f;
	struct sockaddr_in sa;
	uint8_t b[256];
	size_t have = 0, flen;
	int fd = socket(AF_INET, SOCK_STREAM, 0), n;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die("connect");
	memset(&f, 0, sizeof(f));
	f.version = 1;
	f.type = RELM_MBOX_HELLO;
	f.u.hello.min_version = 1;
	f.u.hello.max_version = 2;
	n = relm_mbox_frame_encode(b, sizeof(b), &f);
	if (write(fd, b, (size_t)n) != n)
		die("write");
	while (relm_mbox_frame_peek(&flen, b, have) != 0) {
		ssize_t r = read(fd, b + have, sizeof(b) - have);
		if (r <= 0)
			die("no CHALLENGE");
		have += (size_t)r;
	}
	if (relm_mbox_frame_decode(&f, b, flen) != 0 || f.version != 2)
		die("no version 2 CHALLENGE");
	memcpy(realm, f.u.challenge.realm, 32);
	close(fd);
}

/* Make n mailboxes and store their read keys for realm (as registration
 * would): SQLite file path, or a PostgreSQL connection string. */
static void sub_prepare(size_t n, const uint8_t realm[32], const char *sqlite_path, const char *pg)
{
	sub_n = n;
	for (size_t i = 0; i < n; i++) {
		uint32_t k = (uint32_t)i;

		randombytes_buf(sub_id[i], 32);
		memcpy(sub_id[i], &k, 4);
		randombytes_buf(sub_seed[i], 64);
	}
	if (sqlite_path) {
		sqlite3 *db;
		sqlite3_stmt *st;

		if (sqlite3_open(sqlite_path, &db) != SQLITE_OK)
			die("open %s", sqlite_path);
		sqlite3_busy_timeout(db, 10000);
		sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO mailbox(id, last_seq, read_key) VALUES(?1, 0, ?2)",
		                   -1, &st, NULL);
		for (size_t i = 0; i < n; i++) {
			uint8_t key[32];

			relm_mbox_read_key(key, sub_seed[i], realm);
			sqlite3_bind_blob(st, 1, sub_id[i], 32, SQLITE_STATIC);
			sqlite3_bind_blob(st, 2, key, 32, SQLITE_TRANSIENT);
			if (sqlite3_step(st) != SQLITE_DONE)
				die("insert: %s", sqlite3_errmsg(db));
			sqlite3_reset(st);
		}
		sqlite3_finalize(st);
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			die("commit: %s", sqlite3_errmsg(db));
		sqlite3_close(db);
	} else {
		PGconn *c = PQconnectdb(pg);
		PGresult *r;
		char line[200];

		if (PQstatus(c) != CONNECTION_OK)
			die("connect: %s", PQerrorMessage(c));
		r = PQexec(c, "COPY mailbox (id, last_seq, read_key) FROM STDIN");
		if (PQresultStatus(r) != PGRES_COPY_IN)
			die("copy: %s", PQresultErrorMessage(r));
		PQclear(r);
		for (size_t i = 0; i < n; i++) {
			uint8_t key[32];
			char hid[65], hkey[65];

			relm_mbox_read_key(key, sub_seed[i], realm);
			sodium_bin2hex(hid, sizeof(hid), sub_id[i], 32);
			sodium_bin2hex(hkey, sizeof(hkey), key, 32);
			snprintf(line, sizeof(line), "\\\\x%s\t0\t\\\\x%s\n", hid, hkey);
			if (PQputCopyData(c, line, (int)strlen(line)) != 1)
				die("copy: %s", PQerrorMessage(c));
		}
		if (PQputCopyEnd(c, NULL) != 1)
			die("copy end: %s", PQerrorMessage(c));
		r = PQgetResult(c);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			die("copy: %s", PQresultErrorMessage(r));
		PQclear(r);
		PQfinish(c);
	}
}

static void bench_subscribe(const char *backend, int pg, size_t big)
{
	static const size_t ns[2] = { 100000, 1000000 };
	char state[128], path[160], key[64], db[256];
	struct inst in;
	uint8_t realm[32];

	for (int k = 0; k < 2; k++) {
		size_t n = ns[k] > big ? big : ns[k];

		/* a fresh database each: the 1m run must not find the 100k */
		snprintf(state, sizeof(state), "%s/sub-%s-%d", tmpdir, backend, k);
		if (pg) {
			char name[32];
			snprintf(name, sizeof(name), "sub_%d", k);
			if (upg_new_db(name, db, sizeof(db)) != 0)
				die("create database %s", name);
		}
		/* 100k at the default rate limit; 1m with it raised */
		inst_start(&in, pg ? db : NULL, state, k ? "1000000" : "16000");
		realm_of(in.port, realm);
		snprintf(path, sizeof(path), "%s/mailbox.sqlite", state);
		sub_prepare(n, realm, pg ? NULL : path, pg ? db : NULL);
		snprintf(key, sizeof(key), "subscribe_ms.%s_%s", backend, n >= 1000000 ? "1m" :
		         n >= 100000 ? "100k" : "small");
		put(key, subscribe_time(in.port, n, 0));
		inst_stop(&in);
	}
}

/* Version 1 and registration, on SQLite: n real key pairs. */
static void bench_signed(size_t n)
{
	char state[128], key[64];
	struct inst in;
	double t;

	for (size_t i = 0; i < n; i++) {
		uint8_t seed[32];

		randombytes_buf(seed, sizeof(seed));
		crypto_sign_seed_keypair(sub_id[i], sub_seed[i], seed);
	}
	snprintf(state, sizeof(state), "%s/signed", tmpdir);
	inst_start(&in, NULL, state, "1000000");
	snprintf(key, sizeof(key), "subscribe_ms.v1_%zuk", n / 1000);
	put(key, subscribe_time(in.port, n, 1));
	/* registration: the first version 2 subscription of each (one MAC
	 * batch answered unknown_key, then the signed registrations) */
	sub_n = n;
	sub_sorted = malloc(n * sizeof(*sub_sorted));
	if (!sub_sorted)
		die("out of memory");
	for (size_t i = 0; i < n; i++)
		sub_sorted[i] = (uint32_t)i;
	qsort(sub_sorted, n, sizeof(*sub_sorted), by_id);
	t = subscribe_time(in.port, n, 0);
	put("register_us_per_mailbox", t * 1e3 / (double)n);
	snprintf(key, sizeof(key), "subscribe_ms.v2_%zuk", n / 1000);
	put(key, subscribe_time(in.port, n, 0));
	free(sub_sorted);
	sub_sorted = NULL;
	inst_stop(&in);
}

/* ---- relmd's start-up on bench_scale's store ---- */

struct relmd_ctx {
	struct relm_store *st;
	struct relm_core *core;
	uint8_t (*id)[32];
	uint64_t *cursor;
	size_t n, cap;
};

static int relmd_mailbox(void *ctx, const uint8_t id[RELM_SIGN_PK_LEN], uint64_t cursor)
{
	struct relmd_ctx *r = ctx;

	if (r->n == r->cap) {
		size_t ncap = r->cap ? 2 * r->cap : 1024;
		void *a = realloc(r->id, ncap * 32), *b;

		if (!a)
			return RELM_ENOMEM;
		r->id = a;
		b = realloc(r->cursor, ncap * sizeof(*r->cursor));
		if (!b)
			return RELM_ENOMEM;
		r->cursor = b;
		r->cap = ncap;
	}
	memcpy(r->id[r->n], id, 32);
	r->cursor[r->n++] = cursor;
	return 0;
}

static struct relmd_ctx *relmd_cur;

/* As relmd (app.c): through the core, which reads a relationship
 * mailbox's key from its state blob (store v12 keeps it nowhere else; the
 * store's own lookup answers for invite, device and pairing mailboxes
 * only, and with it every start-up registered every mailbox again). */
static int relmd_read_key(void *arg, const uint8_t mb[32], const uint8_t realm[32], uint8_t key[32])
{
	(void)arg;
	return relm_core_mailbox_read_key(relmd_cur->core, mb, realm, key);
}

static int relmd_sign(void *arg, uint8_t sig[RELM_SIG_LEN], const uint8_t *m, size_t n)
{
	return relm_core_mailbox_sign(relmd_cur->core, arg, m, n, sig);
}

/* ms from opening the store to every mailbox subscribed, as relmd does it
 * (daemon/relmd/app.c: relm_core_mailboxes, a subscription each with the
 * core as signer and read keys from the store). */
static double relmd_start(const char *path, uint16_t port)
{
	struct relm_store_opts o;
	struct relmd_ctx r;
	struct relm_env env;
	struct relm_mbox_client_cbs cbs;
	struct relm_mbox_client *c;
	struct subrec rec = { 0, 0, 0 };
	uv_loop_t loop;
	double t0, t1;
	int closed = 0;

	memset(&o, 0, sizeof(o));
	memset(&r, 0, sizeof(r));
	relm_env_init_system(&env);
	t0 = now_ms();
	if (relm_store_open(&r.st, path, &o) != 0 ||
	    relm_core_new(&r.core, r.st, &env, "127.0.0.1:7427", RELM_MODE_TREE) != 0 ||
	    relm_core_mailboxes(r.core, relmd_mailbox, &r) != 0)
		die("cannot open %s", path);
	relmd_cur = &r;
	uv_loop_init(&loop);
	memset(&cbs, 0, sizeof(cbs));
	cbs.arg = &rec;
	cbs.state = on_state;
	cbs.subscribed = on_sub;
	cbs.read_key = relmd_read_key;
	if (relm_mbox_client_new(&c, &loop, "127.0.0.1", port, &cbs, NULL) != 0)
		die("client");
	for (size_t i = 0; i < r.n; i++)
		relm_mbox_client_subscribe(c, r.id[i], r.cursor[i], NULL, relmd_sign, r.id[i]);
	if (run_until(&loop, &rec.ok, r.n, 900000) != 0 || rec.err)
		die("relmd's mailboxes were not all subscribed");
	t1 = now_ms();
	printf("  (%zu mailboxes)\n", r.n);
	relm_mbox_client_close(c, on_closed, &closed);
	while (!closed)
		uv_run(&loop, UV_RUN_ONCE);
	uv_run(&loop, UV_RUN_NOWAIT);
	uv_loop_close(&loop);
	relm_core_free(r.core);
	relm_store_close(r.st);
	free(r.id);
	free(r.cursor);
	return t1 - t0;
}

static void bench_relmd(const char *path)
{
	char state[128];
	struct inst in;

	snprintf(state, sizeof(state), "%s/relmd", tmpdir);
	inst_start(&in, NULL, state, "16000");
	put("relmd_subscribed_ms.100k_first", relmd_start(path, in.port));
	put("relmd_subscribed_ms.100k", relmd_start(path, in.port));
	inst_stop(&in);
}

/* ---- main ---- */

int main(int argc, char **argv)
{
	const char *json_path = NULL, *relmd_store = NULL, *only = "";
	long total;
	char why[256], db[256], cmd[128];
	struct inst in[INST_MAX];
	size_t big;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--build") && i + 1 < argc)
			snprintf(build, sizeof(build), "%s", argv[++i]);
		else if (!strcmp(argv[i], "--json") && i + 1 < argc)
			json_path = argv[++i];
		else if (!strcmp(argv[i], "--relmd-store") && i + 1 < argc)
			relmd_store = argv[++i];
		else if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else {
			fprintf(stderr, "usage: bench_mailbox [--build DIR] [--json PATH] [--quick] "
			        "[--relmd-store PATH]\n");
			return 2;
		}
	}
	if (sodium_init() < 0)
		die("sodium_init");
	signal(SIGPIPE, SIG_IGN);
	if (json_path && !(json = fopen(json_path, "w")))
		die("cannot write %s", json_path);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/relm-bench-mbox-XXXXXX");
	if (!mkdtemp(tmpdir))
		die("mkdtemp");
	for (int m = 0; m < MAILBOXES; m++)
		crypto_sign_keypair(mb_pk[m], mb_sk[m]);
	total = quick ? 5000 : 30000;
	big = quick ? 100000 : 1000000;
	sub_id = malloc(big * sizeof(*sub_id));
	sub_seed = malloc(big * sizeof(*sub_seed));
	if (!sub_id || !sub_seed)
		die("out of memory");

	if (!*only || !strcmp(only, "load")) {
	printf("relm-mailbox: %ld posts by %d connections, %d in flight each; then %d/s for %d s\n",
	       total, POSTERS, WINDOW, 1000, quick ? 2 : 5);
	{
		char state[128];

		snprintf(state, sizeof(state), "%s/load", tmpdir);
		inst_start(&in[0], NULL, state, "1000000");
		load("sqlite_1", in, 1, total, 1000, quick ? 2 : 5);
		inst_stop(&in[0]);
	}
	if (upg_start(why, sizeof(why), 1) != 0) {
		printf("  PostgreSQL skipped: %s\n", why);
	} else {
		for (int ninst = 1; ninst <= INST_MAX; ninst *= 2) {
			char name[32], cfg[32];

			snprintf(name, sizeof(name), "load_%d", ninst);
			if (upg_new_db(name, db, sizeof(db)) != 0)
				die("create database %s", name);
			for (int i = 0; i < ninst; i++)
				inst_start(&in[i], db, NULL, "1000000");
			snprintf(cfg, sizeof(cfg), "pg_%d", ninst);
			load(cfg, in, ninst, total, 1000, quick ? 2 : 5);
			for (int i = 0; i < ninst; i++)
				inst_stop(&in[i]);
		}
	}
	} else if (upg_start(why, sizeof(why), 1) != 0) {
		printf("  PostgreSQL skipped: %s\n", why);
	}
	if (!*only || !strcmp(only, "sub")) {
	printf("batched subscription (read keys registered; ids random):\n");
	bench_subscribe("sqlite", 0, big);
	if (upg_running())
		bench_subscribe("pg", 1, big);
	printf("version 1 and registration, %d real keys:\n", quick ? 2000 : 10000);
	bench_signed(quick ? 2000 : 10000);
	}
	if (relmd_store) {
		printf("relmd start-up on %s:\n", relmd_store);
		bench_relmd(relmd_store);
	}
	upg_stop();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	if (json) {
		fprintf(json, "%s\n}\n", json_n ? "" : "{");
		fclose(json);
	}
	return 0;
}


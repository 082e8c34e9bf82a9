/*
 * util_mbox.c — see util_mbox.h.
 */
#include "util_mbox.h"

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
#include <sys/stat.h>
#include <sys/wait.h>

#include <sodium.h>

#include "error.h"
#include "log.h"
#include "util_pg.h"

/* ---- seed ---- */

uint64_t seed_used, rng_state;

uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}



void key_new(struct key *k)
{
	uint8_t seed[32];

	for (int i = 0; i < 32; i++)
		seed[i] = (uint8_t)rng();
	crypto_sign_seed_keypair(k->pk, k->sk, seed);
}

/* ---- state dir, and the backend under test ---- */

char state_dir[64];
/* The suite runs twice: SQLite in state_dir, then PostgreSQL (a database
 * of its own per test, in the binary's private server: util_pg.h). */
int use_pg;
char test_db[256];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

void setup(void)
{
	const char *s = getenv("RELM_SEED");

	seed_used = s ? strtoull(s, NULL, 0) : 0x5eed0002ull;
	rng_state = seed_used;
	ck_assert(sodium_init() >= 0);
	signal(SIGPIPE, SIG_IGN);
	log_set_level(getenv("RELM_TEST_VERBOSE") ? LOGL_DEBUG : LOGL_ERR);
	snprintf(state_dir, sizeof(state_dir), "/tmp/relm-mbox-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(state_dir));
	if (use_pg) {
		char name[64];

		snprintf(name, sizeof(name), "t_%s", state_dir + strlen("/tmp/relm-mbox-test-"));
		ck_assert_int_eq(upg_new_db(name, test_db, sizeof(test_db)), 0);
	}
}

void teardown(void)
{
	nftw(state_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- server in a child process ---- */

struct child_srv {
	uv_signal_t sig;
	struct relm_mbox_server *srv;
};

static void child_server_closed(void *arg)
{
	struct child_srv *cs = arg;
	uv_close((uv_handle_t *)&cs->sig, NULL);
}

static void child_on_term(uv_signal_t *h, int signum)
{
	struct child_srv *cs = h->data;
	(void)signum;
	uv_signal_stop(h);
	relm_mbox_server_close(cs->srv, child_server_closed, cs);
}

/* The defaults, on the backend under test. */
void test_config(struct relm_mbox_server_config *cfg)
{
	relm_mbox_server_config_default(cfg);
	cfg->db = use_pg ? test_db : NULL;
}

/* Fork a server on 127.0.0.1:port with state_dir; returns its pid and the
 * bound port. */
pid_t server_spawn(uint16_t port, const struct relm_mbox_server_config *cfg,
                          uint16_t *bound)
{
	struct relm_mbox_server_config def;
	int fds[2];
	pid_t pid;
	uint16_t p = 0;

	if (!cfg) {
		test_config(&def);
		cfg = &def;
	}
	ck_assert_int_eq(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uv_loop_t loop;
		struct child_srv cs;
		int rc;

		prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlive a failed test */
		close(fds[0]);
		uv_loop_init(&loop);
		memset(&cs, 0, sizeof(cs));
		rc = relm_mbox_server_start(&cs.srv, &loop, "127.0.0.1", port, state_dir, cfg);
		if (rc) {
			fprintf(stderr, "server start: %d\n", rc);
			_exit(2);
		}
		uv_signal_init(&loop, &cs.sig);
		cs.sig.data = &cs;
		uv_signal_start(&cs.sig, child_on_term, SIGTERM);
		p = relm_mbox_server_port(cs.srv);
		if (write(fds[1], &p, sizeof(p)) != sizeof(p))
			_exit(2);
		close(fds[1]);
		uv_run(&loop, UV_RUN_DEFAULT);
		rc = uv_loop_close(&loop);
		exit(rc == 0 ? 0 : 3);
	}
	close(fds[1]);
	ck_assert_int_eq(read(fds[0], &p, sizeof(p)), (int)sizeof(p));
	close(fds[0]);
	ck_assert_uint_ne(p, 0);
	if (port)
		ck_assert_uint_eq(p, port);
	*bound = p;
	return pid;
}

/* Clean stop: the child must exit 0, i.e. uv_loop_close() == 0. */
void server_stop(pid_t pid)
{
	int st;

	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "server child exit status %d", st);
}

void server_crash(pid_t pid)
{
	int st;

	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
}

/* ---- raw blocking client ---- */

int raw_connect(uint16_t port)
{
	struct sockaddr_in sa;
	struct timeval tv = { 3, 0 };
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

void raw_send(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		ck_assert_int_gt(n, 0);
		p += n;
		len -= (size_t)n;
	}
}

void raw_send_frame(int fd, const struct relm_mbox_frame *f)
{
	static uint8_t b[RELM_MBOX_FRAME_TOTAL_MAX];
	int n = relm_mbox_frame_encode(b, sizeof(b), f);

	ck_assert_int_gt(n, 0);
	raw_send(fd, b, (size_t)n);
}

static int read_full(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t r = recv(fd, p, n, 0);
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Next frame into buf (decoded into *f, pointers into buf).  0, or -1 on
 * EOF / reset / 3 s without data. */
static uint8_t rbuf[RELM_MBOX_FRAME_TOTAL_MAX];
int raw_recv(int fd, struct relm_mbox_frame *f)
{
	size_t len;

	if (read_full(fd, rbuf, 4) != 0)
		return -1;
	ck_assert_int_ne(relm_mbox_frame_peek(&len, rbuf, 4), RELM_ETOOBIG);
	len = 4 + ((size_t)rbuf[0] << 24 | (size_t)rbuf[1] << 16 | (size_t)rbuf[2] << 8 | rbuf[3]);
	ck_assert_uint_le(len, sizeof(rbuf));
	if (read_full(fd, rbuf + 4, len - 4) != 0)
		return -1;
	ck_assert_int_eq(relm_mbox_frame_decode(f, rbuf, len), 0);
	return 0;
}

/* 1 if the server closed the connection (EOF or reset) within 3 s. */
int raw_closed(int fd)
{
	uint8_t b[256];

	for (;;) {
		ssize_t r = recv(fd, b, sizeof(b), 0);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return 1;
		if (r < 0)
			return 0;   /* timeout */
	}
}

void frame(struct relm_mbox_frame *f, uint8_t type)
{
	memset(f, 0, sizeof(*f));
	f->version = RELM_MBOX_VERSION;
	f->type = type;
}

void raw_hello(int fd, uint8_t nonce[32])
{
	struct relm_mbox_frame f;

	frame(&f, RELM_MBOX_HELLO);
	f.u.hello.min_version = 1;
	f.u.hello.max_version = 1;
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_CHALLENGE);
	ck_assert_uint_eq(f.u.challenge.version, 1);
	ck_assert_uint_eq(f.u.challenge.max_envelope, RELM_MBOX_ENVELOPE_MAX);
	if (nonce)
		memcpy(nonce, f.u.challenge.nonce, 32);
}

/* Expect an ERROR with code (and tag); returns its flags. */
int raw_expect_error(int fd, unsigned code, uint32_t tag)
{
	struct relm_mbox_frame f;

	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_msg(f.type == RELM_MBOX_ERROR, "want ERROR %s, got type %u", relm_mbox_errname(code), f.type);
	ck_assert_msg(f.u.error.code == code, "want error %s, got %s", relm_mbox_errname(code),
	              relm_mbox_errname(f.u.error.code));
	ck_assert_uint_eq(f.u.error.tag, tag);
	return f.u.error.flags;
}

uint64_t raw_post(int fd, const uint8_t mb[32], const void *env, size_t len, uint32_t tag)
{
	struct relm_mbox_frame f;

	frame(&f, RELM_MBOX_POST);
	f.u.post.tag = tag;
	memcpy(f.u.post.mailbox, mb, 32);
	f.u.post.env = env;
	f.u.post.env_len = len;
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_POSTED);
	ck_assert_uint_eq(f.u.posted.tag, tag);
	return f.u.posted.seq;
}

void raw_ping(int fd, uint32_t tag)
{
	struct relm_mbox_frame f;

	frame(&f, RELM_MBOX_PING);
	f.u.ping.tag = tag;
	raw_send_frame(fd, &f);
	ck_assert_int_eq(raw_recv(fd, &f), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_PONG);
	ck_assert_uint_eq(f.u.ping.tag, tag);
}

void raw_subscribe_frame(struct relm_mbox_frame *f, const struct key *signer,
                                const uint8_t mb[32], const uint8_t nonce[32],
                                uint64_t cursor, uint32_t tag)
{
	frame(f, RELM_MBOX_SUBSCRIBE);
	f->u.subscribe.tag = tag;
	memcpy(f->u.subscribe.mailbox, mb, 32);
	f->u.subscribe.cursor = cursor;
	relm_mbox_sub_sign(f->u.subscribe.sig, signer->sk, nonce, mb, cursor);
}

/* Under `make valgrind` (RELM_VALGRIND=1) everything runs ~30x slower:
 * tests whose outcome depends on wall-clock intervals stretch them by this
 * factor (the assertions stay the same). */
unsigned slow_factor(void)
{
	const char *v = getenv("RELM_VALGRIND");
	return v && *v && strcmp(v, "0") != 0 ? 10 : 1;
}

void msleep(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- libuv helpers for the real client ---- */

int timed_out;
void on_deadline(uv_timer_t *t)
{
	(void)t;
	timed_out = 1;
}




void cb_state(void *arg, int connected, int reason)
{
	struct rec *r = arg;
	r->up = connected;
	if (connected)
		r->ups++;
	else {
		r->downs++;
		r->last_reason = reason;
	}
}

void cb_posted(void *arg, uint64_t id, const uint8_t mb[32], uint64_t seq, int err)
{
	struct rec *r = arg;
	(void)mb;
	if (err) {
		r->post_err = err;
		return;
	}
	if (id <= MAXREC)
		r->ack_seq[id - 1] = seq;
	r->acked++;
}

void cb_deliver(void *arg, const uint8_t mb[32], uint64_t seq, const uint8_t *env, size_t len)
{
	struct rec *r = arg;
	int v = -1;
	(void)mb;
	if (len >= 4)
		memcpy(&v, env, 4);
	if (r->ndel < MAXREC) {
		r->del_seq[r->ndel] = seq;
		r->del_val[r->ndel] = v;
	}
	r->ndel++;
}

void cb_subscribed(void *arg, const uint8_t mb[32], int err, uint64_t head, uint64_t oldest)
{
	struct rec *r = arg;
	(void)mb; (void)oldest;
	if (err)
		r->sub_err = err;
	else {
		r->subscribed++;
		r->head = head;
	}
}

void cb_closed(void *arg)
{
	((struct rec *)arg)->closed = 1;
}

struct relm_mbox_client *client_new(uv_loop_t *loop, uint16_t port, struct rec *r)
{
	struct relm_mbox_client_cbs cbs = { r, cb_state, cb_posted, cb_deliver, cb_subscribed };
	struct relm_mbox_client_config cfg;
	struct relm_mbox_client *c;

	memset(r, 0, sizeof(*r));
	relm_mbox_client_config_default(&cfg);
	cfg.backoff_min_ms = 20;
	cfg.backoff_max_ms = 200;
	cfg.connect_timeout_ms = 2000;
	ck_assert_int_eq(relm_mbox_client_new(&c, loop, "127.0.0.1", port, &cbs, &cfg), 0);
	return c;
}

void client_close(uv_loop_t *loop, struct relm_mbox_client *c, struct rec *r)
{
	relm_mbox_client_close(c, cb_closed, r);
	RUN_UNTIL(loop, r->closed, 2000);
	ck_assert(r->closed);
}

/* Envelope "i" padded to len bytes with seeded noise. */
void post_int(struct relm_mbox_client *c, const uint8_t mb[32], int v, size_t len)
{
	uint8_t env[512];

	ck_assert_uint_le(len, sizeof(env));
	for (size_t i = 0; i < len; i++)
		env[i] = (uint8_t)rng();
	memcpy(env, &v, 4);
	ck_assert_int_eq(relm_mbox_client_post(c, mb, env, len, NULL), 0);
}

void loop_finish(uv_loop_t *loop)
{
	uv_run(loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(uv_loop_close(loop), 0);
}


/* ---- a peer in place of a server or client ---- */

/* A peer driven by the test on the client's own loop: frames are read from
 * a non-blocking socket while the loop runs. */

/* Next frame from p (decoded, pointers into p->cur) within ms while
 * running loop.  0, -1 on timeout, 1 on EOF / reset. */
int peer_frame(uv_loop_t *loop, struct peer *p, struct relm_mbox_frame *f, unsigned ms)
{
	uint64_t end = uv_hrtime() / 1000000 + ms;

	for (;;) {
		size_t flen;
		if (relm_mbox_frame_peek(&flen, p->buf, p->len) == 0) {
			memcpy(p->cur, p->buf, flen);
			memmove(p->buf, p->buf + flen, p->len - flen);
			p->len -= flen;
			ck_assert_int_eq(relm_mbox_frame_decode(f, p->cur, flen), 0);
			return 0;
		}
		ssize_t r = recv(p->fd, p->buf + p->len, sizeof(p->buf) - p->len, 0);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			return 1;
		if (r > 0) {
			p->len += (size_t)r;
			continue;
		}
		if (uv_hrtime() / 1000000 >= end)
			return -1;
		uv_run(loop, UV_RUN_NOWAIT);
		poll(NULL, 0, 1);
	}
}

void nonblock(int fd)
{
	ck_assert_int_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

/* Accept one connection on lfd while running loop. */
int peer_accept(uv_loop_t *loop, int lfd)
{
	uint64_t end = uv_hrtime() / 1000000 + 5000;
	int one = 1;

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd >= 0) {
			nonblock(fd);
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			return fd;
		}
		ck_assert_msg(uv_hrtime() / 1000000 < end, "the client never connected");
		uv_run(loop, UV_RUN_NOWAIT);
		poll(NULL, 0, 1);
	}
}

/* As a server: read HELLO, answer CHALLENGE with a generous bucket. */
void peer_handshake(uv_loop_t *loop, struct peer *p)
{
	struct relm_mbox_frame f;

	ck_assert_int_eq(peer_frame(loop, p, &f, 5000), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_HELLO);
	frame(&f, RELM_MBOX_CHALLENGE);
	f.u.challenge.version = 1;
	f.u.challenge.max_envelope = RELM_MBOX_ENVELOPE_MAX;
	f.u.challenge.max_subs = 8;
	f.u.challenge.rate = 1000000;
	f.u.challenge.burst = 1000000;
	f.u.challenge.retention_s = 60;
	raw_send_frame(p->fd, &f);
}

/* As a server: the next POST (PINGs answered or, with pong 0, ignored);
 * returns the int its envelope carries and its tag. */
int peer_post(uv_loop_t *loop, struct peer *p, uint32_t *tag, int pong, unsigned ms)
{
	struct relm_mbox_frame f;
	int v;

	for (;;) {
		int rc = peer_frame(loop, p, &f, ms);
		if (rc)
			return rc < 0 ? -1 : -2;
		if (f.type == RELM_MBOX_PING) {
			if (pong) {
				f.type = RELM_MBOX_PONG;
				raw_send_frame(p->fd, &f);
			}
			continue;
		}
		ck_assert_uint_eq(f.type, RELM_MBOX_POST);
		*tag = f.u.post.tag;
		memcpy(&v, f.u.post.env, 4);
		return v;
	}
}

/* As a server: POSTED for tags[0..n) (seq = first + i) in one send.
 * Asserts nothing (see proc_syscw's callers); 0 or -1. */
int peer_ack(struct peer *p, const uint32_t *tags, int n, uint64_t first)
{
	static uint8_t b[64 * 32];
	struct relm_mbox_frame f;
	size_t off = 0;

	for (int i = 0; i < n; i++) {
		frame(&f, RELM_MBOX_POSTED);
		f.u.posted.tag = tags[i];
		f.u.posted.seq = first + (uint64_t)i;
		off += (size_t)relm_mbox_frame_encode(b + off, sizeof(b) - off, &f);
	}
	return send(p->fd, b, off, MSG_NOSIGNAL) == (ssize_t)off ? 0 : -1;
}

/* Buffer bytes from p until it holds n whole frames (or ms pass), running
 * loop; asserts nothing.  The number of whole frames held. */
int peer_gather(uv_loop_t *loop, struct peer *p, int n, unsigned ms)
{
	uint64_t end = uv_hrtime() / 1000000 + ms;

	for (;;) {
		size_t off = 0, flen;
		int have = 0;
		while (have < n && relm_mbox_frame_peek(&flen, p->buf + off, p->len - off) == 0) {
			off += flen;
			have++;
		}
		if (have >= n || uv_hrtime() / 1000000 >= end)
			return have;
		ssize_t r = recv(p->fd, p->buf + p->len, sizeof(p->buf) - p->len, 0);
		if (r > 0) {
			p->len += (size_t)r;
			continue;
		}
		if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			return have;
		uv_run(loop, UV_RUN_NOWAIT);
		poll(NULL, 0, 1);
	}
}


/* ---- running a suite on both backends ---- */

int run_on_both(Suite *(*make)(const char *name), const char *base, int pg_only)
{
	char name[128], why[256];
	int failed = 0;
	SRunner *sr;

	if (!pg_only) {
		snprintf(name, sizeof(name), "%s (sqlite)", base);
		sr = srunner_create(make(name));
		srunner_run_all(sr, CK_NORMAL);
		failed = srunner_ntests_failed(sr);
		srunner_free(sr);
	}
	if (upg_start(why, sizeof(why), 0) != 0) {
		printf("SKIP: %s (postgresql): %s\n", base, why);
	} else {
		use_pg = 1;
		snprintf(name, sizeof(name), "%s (postgresql)", base);
		sr = srunner_create(make(name));
		srunner_run_all(sr, CK_NORMAL);
		failed += srunner_ntests_failed(sr);
		srunner_free(sr);
		upg_stop();
	}
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

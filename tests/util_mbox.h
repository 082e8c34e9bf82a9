/*
 * util_mbox.h — what the mailbox tests share (check_mailbox.c,
 * check_mailbox_multi.c): the seeded PRNG and keys, the per-test state
 * folder and backend (SQLite, or a database of its own in the binary's
 * private PostgreSQL: util_pg.h), servers in child processes, a blocking
 * "raw" client for hostile byte streams, and the real client on a libuv
 * loop with a recorder of its callbacks.
 *
 * Randomised parts read RELM_SEED (default fixed) and print it on failure
 * (ck_seed).
 */
#ifndef RELM_TESTS_UTIL_MBOX_H
#define RELM_TESTS_UTIL_MBOX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <check.h>
#include <uv.h>

#include "mailbox_client/mailbox_client.h"
#include "mailbox_server/mailbox_server.h"
#include "wire/mailbox_proto.h"

/* ---- seed and keys ---- */
extern uint64_t seed_used, rng_state;
uint64_t rng(void);
#define ck_seed(cond) ck_assert_msg((cond), "failed with RELM_SEED=%llu: %s", \
                                    (unsigned long long)seed_used, #cond)

struct key {
	uint8_t pk[32], sk[64];
};
void key_new(struct key *k);

/* ---- the test's state folder and backend ---- */
extern char state_dir[64];
/* 1: the backend under test is PostgreSQL, each test in database test_db */
extern int use_pg;
extern char test_db[256];
/* Checked fixture: seed, state folder, and with use_pg a fresh database. */
void setup(void);
void teardown(void);
/* The server defaults, on the backend under test. */
void test_config(struct relm_mbox_server_config *cfg);

/* ---- servers in child processes ---- */
/* Fork a server on 127.0.0.1:port (0: any) with cfg (NULL: test_config);
 * returns its pid and the bound port. */
pid_t server_spawn(uint16_t port, const struct relm_mbox_server_config *cfg, uint16_t *bound);
/* Clean stop: the child must exit 0, i.e. uv_loop_close() == 0. */
void server_stop(pid_t pid);
/* kill -9 */
void server_crash(pid_t pid);

/* ---- raw blocking client ---- */
int raw_connect(uint16_t port);
void raw_send(int fd, const void *buf, size_t len);
void raw_send_frame(int fd, const struct relm_mbox_frame *f);
/* Next frame (pointers into a static buffer valid until the next call).
 * 0, or -1 on EOF / reset / 3 s without data. */
int raw_recv(int fd, struct relm_mbox_frame *f);
/* 1 if the server closed the connection (EOF or reset) within 3 s. */
int raw_closed(int fd);
void frame(struct relm_mbox_frame *f, uint8_t type);
/* HELLO offering version 1 only; the nonce of CHALLENGE. */
void raw_hello(int fd, uint8_t nonce[32]);
/* Expect an ERROR with code (and tag); returns its flags. */
int raw_expect_error(int fd, unsigned code, uint32_t tag);
uint64_t raw_post(int fd, const uint8_t mb[32], const void *env, size_t len, uint32_t tag);
void raw_ping(int fd, uint32_t tag);
void raw_subscribe_frame(struct relm_mbox_frame *f, const struct key *signer,
                         const uint8_t mb[32], const uint8_t nonce[32],
                         uint64_t cursor, uint32_t tag);

/* Under `make valgrind` (RELM_VALGRIND=1) everything runs ~30x slower:
 * tests whose outcome depends on wall-clock intervals stretch them by this
 * factor (the assertions stay the same). */
unsigned slow_factor(void);
void msleep(unsigned ms);

/* ---- the real client on a loop ---- */
extern int timed_out;
void on_deadline(uv_timer_t *t);
#define RUN_UNTIL(loop, cond, ms) do {                                        \
		uv_timer_t dl_;                                               \
		uv_timer_init((loop), &dl_);                                  \
		timed_out = 0;                                                \
		uv_timer_start(&dl_, on_deadline, (ms), 0);                   \
		while (!(cond) && !timed_out)                                 \
			uv_run((loop), UV_RUN_ONCE);                          \
		uv_close((uv_handle_t *)&dl_, NULL);                          \
		uv_run((loop), UV_RUN_NOWAIT);                                \
	} while (0)

enum { MAXREC = 512 };

struct rec {
	int up, downs, ups;
	int last_reason;
	uint64_t acked, ack_seq[MAXREC];
	int post_err;
	size_t ndel;
	uint64_t del_seq[MAXREC];
	int del_val[MAXREC];          /* the int the envelope carries */
	int subscribed, sub_err;
	uint64_t head;
	int closed;
};
void cb_state(void *arg, int connected, int reason);
void cb_posted(void *arg, uint64_t id, const uint8_t mb[32], uint64_t seq, int err);
void cb_deliver(void *arg, const uint8_t mb[32], uint64_t seq, const uint8_t *env, size_t len);
void cb_subscribed(void *arg, const uint8_t mb[32], int err, uint64_t head, uint64_t oldest);
void cb_closed(void *arg);
struct relm_mbox_client *client_new(uv_loop_t *loop, uint16_t port, struct rec *r);
void client_close(uv_loop_t *loop, struct relm_mbox_client *c, struct rec *r);
/* Envelope "v" (its first 4 bytes) padded to len bytes with seeded noise. */
void post_int(struct relm_mbox_client *c, const uint8_t mb[32], int v, size_t len);
void loop_finish(uv_loop_t *loop);

/* ---- running a suite ---- */
/* Run make(name) on SQLite, then (use_pg = 1) on a private PostgreSQL
 * started for it — skipped, and said so, only where PostgreSQL's binaries
 * are missing; pg_only: PostgreSQL alone.  EXIT_SUCCESS or EXIT_FAILURE. */
int run_on_both(Suite *(*make)(const char *name), const char *base, int pg_only);

/* ---- a peer in place of a server or client ---- */
/* A peer driven by the test on the client's own loop: frames are read from
 * a non-blocking socket while the loop runs. */
struct peer {
	int fd;
	uint8_t buf[1 << 20];
	size_t len;
	uint8_t cur[RELM_MBOX_FRAME_TOTAL_MAX];   /* the last frame returned */
};
/* Next frame from p (decoded, pointers into p->cur) within ms while
 * running loop.  0, -1 on timeout, 1 on EOF / reset. */
int peer_frame(uv_loop_t *loop, struct peer *p, struct relm_mbox_frame *f, unsigned ms);
void nonblock(int fd);
/* Accept one connection on lfd while running loop. */
int peer_accept(uv_loop_t *loop, int lfd);
/* As a server: read HELLO, answer CHALLENGE (version 1) with a generous bucket. */
void peer_handshake(uv_loop_t *loop, struct peer *p);
/* As a server: the next POST (PINGs answered or, with pong 0, ignored);
 * returns the int its envelope carries and its tag. */
int peer_post(uv_loop_t *loop, struct peer *p, uint32_t *tag, int pong, unsigned ms);
/* As a server: POSTED for tags[0..n) (seq = first + i) in one send. */
int peer_ack(struct peer *p, const uint32_t *tags, int n, uint64_t first);
/* Buffer bytes from p until it holds n whole frames (or ms pass). */
int peer_gather(uv_loop_t *loop, struct peer *p, int n, unsigned ms);

#endif

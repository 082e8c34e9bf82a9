/*
 * crash.h — the parts of the kill -9 test (tests/check_crash.c says what it
 * does and why): the world the parent sets up and every child inherits,
 * the virtual clock (clock.c), the mailbox log (netlog.c), the records the
 * child sends the parent, the child (child.c), and the parent's record and
 * checks (verify.c).  Only check_crash links them.
 */
#ifndef RELM_TESTS_CRASH_H
#define RELM_TESTS_CRASH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sqlite3.h>
#include <sodium.h>
#include "limits.h"
#include "util_world.h"

enum {
	SIDES           = 2,
	CLOCK_CHUNK_MS  = 2000,      /* clock reservation step (max jump at restart) */
	BODY_MAX        = 6000,      /* random bodies: 0 .. BODY_MAX bytes (+ one UTF-8 char) */
	POINTS_DEFAULT  = 250,
	SETTLE_ROUNDS   = 600,       /* final quiescence: rounds of tu_settle */
	SETTLE_STEP_MS  = 3000,
};

extern const char *const name_of[SIDES];
extern const char *const host_of[SIDES];

/* ---- the world (set up by the parent, inherited by each child) ----------- */

extern char g_dir[200], g_logpath[512], g_clockpath[512];
extern struct tu_daemon g_d[SIDES];          /* folders and paths */
extern uint8_t g_rel[RELM_ID_LEN];           /* the relationship: same id on both sides */

static inline void body_hash(uint8_t h[16], const void *b, size_t n)
{
	crypto_generichash(h, 16, b, n, NULL, 0);
}

/* ---- the virtual clock, monotone across kills (clock.c) ------------------- */

extern uint64_t g_clock, g_clock_reserved;
extern int g_clockfd;

int crash_clock_load(void);
int crash_clock_store(uint64_t v);
/* Move the clock forward; the reservation is written before the new value
 * can be used by anything. */
int crash_clock_advance(uint64_t ms);

/* ---- the mailbox log (netlog.c) ------------------------------------------------ */

enum { LOG_HDR = 4 + 4 + 32 + 16 };

/* A mailbox's positions: indexes into net->v, in order (seq = i + 1). */
struct mbx {
	uint8_t id[32];
	size_t *idx;
	size_t n, cap;
};

struct netlog {
	struct tu_net net;           /* every record, in file order, with its seq */
	struct mbx *mb;
	size_t nmb;
	off_t off;                   /* end of the last whole record */
	int fd;                      /* -1 unless this process appends */
};

static inline uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

struct mbx *crash_mbx_find(struct netlog *l, const uint8_t id[32], int add);
/* Index a mail already in net->v at position i (its seq is set here). */
void crash_log_index(struct netlog *l, size_t i);
void crash_net_push(struct tu_net *net, const uint8_t mailbox[32], const uint8_t *buf, size_t len);
/* Read whole records past l->off; returns how many bytes follow the last
 * whole record (a torn tail), or -errno. */
long crash_log_scan(struct netlog *l);
/* Append one record with one write() (a kill may tear it). */
int crash_log_write(struct netlog *l, const uint8_t mailbox[32], const uint8_t *buf, size_t len);
/* The mailbox server's POST: durable (write + fsync) before it returns. */
int crash_log_append(struct netlog *l, const uint8_t mailbox[32], const uint8_t *buf, size_t len);
/* tu_net.on_post for the parent's final settle (tu_pump has put m in v). */
int crash_log_on_post(void *ctx, const struct tu_mail *m);

/* ---- messages between child and parent ------------------------------------ */

enum rec_type { REC_INTENT = 1, REC_SENT, REC_RECV, REC_STAT, REC_ERROR };
enum { REC_F_CLIENT = 1 };           /* REC_SENT: a client-chosen id */
enum stat_code {
	ST_SEND, ST_SEND_CLIENT, ST_RESEND_ACKED, ST_RETRY_NEW, ST_RETRY_OLD, ST_POST,
	ST_POST_DUP, ST_POST_GROUP, ST_DELIVER, ST_REDELIVER, ST_TICK, ST_BATCH, ST_REOPEN, ST_PURGE, ST_START, ST__N
};
extern const char *const stat_name[ST__N];

struct rec {
	uint8_t type, side, flags, pad;
	uint32_t aux;                    /* STAT: code; ERROR: line */
	int32_t rc;                      /* ERROR */
	uint8_t id[RELM_ID_LEN];
	uint8_t h[16];                   /* body hash */
};

/* ---- the parent's record of what was acknowledged (verify.c) ----------------- */

struct idrec {
	uint8_t side;
	uint8_t id[RELM_ID_LEN];
	uint8_t h[16];
	uint8_t in;
};

struct idvec {
	struct idrec *v;
	size_t n, cap;
};

extern struct idvec g_acks;          /* every REC_SENT / REC_RECV */
extern struct idvec g_intents;       /* client ids announced, not acknowledged yet */
extern struct idvec g_client_acked;  /* client ids acknowledged (for re-sends) */
extern size_t g_acks_checked;
extern uint64_t g_stats[ST__N];

/* ---- the child (child.c) --------------------------------------------------------- */

/* Run both daemons until killed (it never returns). */
void crash_child_main(uint64_t incarnation, int ackfd, struct netlog *log);
/* The body of a client-chosen id: a pure function of it, so a retry
 * after a crash sends the same body. */
size_t crash_body_of_id(const uint8_t id[RELM_ID_LEN], char *out);

/* ---- the parent's checks (verify.c) ---------------------------------------------- */

/* Check 3 over the log: (dh_pub, n) → the one envelope made under it. */
struct keyent {
	uint8_t key[36];             /* dh_pub ‖ n */
	uint8_t nonce[24];
	uint8_t h[16];
	uint8_t used;
};

struct keytab {
	struct keyent *v;
	size_t cap, n;
	size_t checked;              /* records of g_log.net checked so far */
	size_t reposts;              /* the same envelope in the log more than once */
};

struct crash_run {
	int kills, unposted, posted_unmarked, torn;
	double t0, t_verify, t_child;
};

extern struct keytab g_keys;
extern struct netlog g_log;
extern struct crash_run g_run;

double crash_now_s(void);
int64_t crash_q_int(sqlite3 *db, const char *sql);
/* How many history rows of db hold (g_rel, id) in that direction with that
 * body hash (h NULL: any body); -1 if a row has the id with another
 * direction or body. */
int crash_msg_count(sqlite3 *db, const uint8_t id[16], int in, const uint8_t *h);
void crash_check_envelopes(const struct tu_net *net, int kill_no);
/* Checks 1–3 after a kill (all: every acknowledgement, not only new ones). */
void crash_verify(int kill_no, int all);
/* Read the child's records until the deadline (or EOF); returns 1 at EOF. */
int crash_read_recs(int fd, double deadline, int *err_line, int *err_rc);

#endif

/*
 * verify.c — check_crash's parent: its record of what the children
 * acknowledged (read from their pipe), and the checks after each kill —
 * both stores pass integrity_check; every acknowledged send and receive is
 * in the right history exactly once with its body; no two different
 * envelopes in the mailbox log share (ratchet key, counter).
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "wire/envelope.h"
#include "store/store.h"
#include "error.h"
#include "util_rand.h"
#include "crash/crash.h"

const char *const stat_name[ST__N] = {
	"sends", "client-id sends", "idempotent re-sends", "retried intents (new)",
	"retried intents (already committed)", "posts", "duplicate posts", "grouped pumps", "envelopes fed",
	"redeliveries", "ticks", "batches", "reopens", "outbox purges", "child starts",
};

struct idvec g_acks;          /* every REC_SENT / REC_RECV */
struct idvec g_intents;       /* client ids announced, not acknowledged yet */
struct idvec g_client_acked;  /* client ids acknowledged (for re-sends) */
size_t g_acks_checked;
uint64_t g_stats[ST__N];

static void idvec_push(struct idvec *a, int side, const uint8_t *id, const uint8_t *h, int in)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 1024;
		if (!(a->v = realloc(a->v, a->cap * sizeof *a->v)))
			abort();
	}
	a->v[a->n].side = (uint8_t)side;
	memcpy(a->v[a->n].id, id, RELM_ID_LEN);
	if (h)
		memcpy(a->v[a->n].h, h, 16);
	a->v[a->n].in = (uint8_t)in;
	a->n++;
}

struct keytab g_keys;
struct netlog g_log = { .fd = -1 };
struct crash_run g_run;

int64_t crash_q_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v = -1;
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

int crash_msg_count(sqlite3 *db, const uint8_t id[16], int in, const uint8_t *h)
{
	sqlite3_stmt *s;
	int n = 0;
	ck_assert_int_eq(sqlite3_prepare_v2(db,
	                 "SELECT body, direction, kind FROM messages WHERE rel=?1 AND id=?2", -1, &s, NULL),
	                 SQLITE_OK);
	sqlite3_bind_blob(s, 1, g_rel, RELM_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, id, RELM_ID_LEN, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint8_t got[16];
		body_hash(got, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
		if ((h && memcmp(got, h, 16) != 0) ||
		    strcmp((const char *)sqlite3_column_text(s, 1), in ? "in" : "out") != 0 ||
		    strcmp((const char *)sqlite3_column_text(s, 2), "text") != 0) {
			n = -1;
			break;
		}
		n++;
	}
	sqlite3_finalize(s);
	return n;
}

static uint64_t key_hash(const uint8_t *k)
{
	uint64_t h = 0;
	memcpy(&h, k, 8);            /* dh_pub is a random public key */
	return h ^ ((uint64_t)le32(k + 32) * 0x9e3779b97f4a7c15ull);
}

static struct keyent *key_slot(const uint8_t key[36])
{
	size_t i = (size_t)key_hash(key) & (g_keys.cap - 1);
	while (g_keys.v[i].used && memcmp(g_keys.v[i].key, key, 36) != 0)
		i = (i + 1) & (g_keys.cap - 1);
	return &g_keys.v[i];
}

static void keys_grow(void)
{
	struct keyent *old = g_keys.v;
	size_t ocap = g_keys.cap;
	g_keys.cap = ocap ? 2 * ocap : 4096;
	g_keys.v = calloc(g_keys.cap, sizeof *g_keys.v);
	ck_assert_ptr_nonnull(g_keys.v);
	for (size_t i = 0; i < ocap; i++)
		if (old[i].used)
			*key_slot(old[i].key) = old[i];
	free(old);
}

void crash_check_envelopes(const struct tu_net *net, int kill_no)
{
	for (; g_keys.checked < net->n; g_keys.checked++) {
		const struct tu_mail *m = &net->v[g_keys.checked];
		uint8_t key[36], h[16];
		struct keyent *e;

		ck_assert_msg(m->len >= RELM_HEADER_LEN, "kill %d: short envelope in the log (" TU_SEED_FMT ")",
		              kill_no, TU_SEED_ARG);
		memcpy(key, m->buf + 2, 32);         /* dh_pub */
		memcpy(key + 32, m->buf + 38, 4);    /* n */
		body_hash(h, m->buf, m->len);
		if (2 * (g_keys.n + 1) > g_keys.cap)
			keys_grow();
		e = key_slot(key);
		if (!e->used) {
			memcpy(e->key, key, 36);
			memcpy(e->nonce, m->buf + 42, 24);
			memcpy(e->h, h, 16);
			e->used = 1;
			g_keys.n++;
			continue;
		}
		if (memcmp(e->h, h, 16) == 0) {
			g_keys.reposts++;
			continue;
		}
		ck_assert_msg(memcmp(e->nonce, m->buf + 42, 24) != 0,
		              "kill %d: two different envelopes under one (message key, nonce): dh %s n %u "
		              "(" TU_SEED_FMT ")", kill_no, tu_hex(key, 32), (unsigned)be32(key + 32), TU_SEED_ARG);
		ck_abort_msg("kill %d: two different envelopes under one (ratchet key, counter) from a "
		             "single-device sender: dh %s n %u — a step was posted but not committed, then "
		             "redone (" TU_SEED_FMT ")", kill_no, tu_hex(key, 32), (unsigned)be32(key + 32),
		             TU_SEED_ARG);
	}
}

/* Is this outbox row's envelope already in the log (the kill fell between
 * the mailbox's durable write and relm_core_outbox_posted)? */
static int in_log(const uint8_t *buf, size_t len)
{
	uint8_t key[36], h[16];
	struct keyent *e;
	if (len < RELM_HEADER_LEN || !g_keys.cap)
		return 0;
	memcpy(key, buf + 2, 32);
	memcpy(key + 32, buf + 38, 4);
	body_hash(h, buf, len);
	e = key_slot(key);
	return e->used && memcmp(e->h, h, 16) == 0;
}

double crash_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The parent looks with a plain read-only connection: it neither checkpoints
 * nor removes the WAL, so the next child recovers the store as the kill left
 * it (and may be killed while it does).  The product's reopen path
 * (relm_store_open) runs at every child start and in quiesce(). */
static sqlite3 *open_ro(int s, int kill_no)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(g_d[s].path, &db, SQLITE_OPEN_READONLY, NULL);
	ck_assert_msg(rc == SQLITE_OK, "kill %d: open %s: %s (" TU_SEED_FMT ")", kill_no, name_of[s],
	              sqlite3_errstr(rc), TU_SEED_ARG);
	sqlite3_busy_timeout(db, 5000);
	ck_assert_msg(crash_q_int(db, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check<>'ok'") == 0,
	              "kill %d: integrity_check of %s (" TU_SEED_FMT ")", kill_no, name_of[s], TU_SEED_ARG);
	return db;
}

void crash_verify(int kill_no, int all)
{
	sqlite3 *db[SIDES];
	int unposted = 0, posted = 0;
	long torn;

	torn = crash_log_scan(&g_log);
	ck_assert_msg(torn >= 0, "kill %d: mailbox log: %ld", kill_no, torn);
	g_run.torn += torn > 0;
	crash_check_envelopes(&g_log.net, kill_no);
	for (int s = 0; s < SIDES; s++) {
		sqlite3_stmt *q;
		db[s] = open_ro(s, kill_no);
		ck_assert_msg(crash_q_int(db[s], "SELECT count(*) FROM (SELECT 1 FROM messages "
		                    "GROUP BY rel, id HAVING count(*) > 1)") == 0,
		              "kill %d: duplicate history rows in %s (" TU_SEED_FMT ")", kill_no, name_of[s],
		              TU_SEED_ARG);
		ck_assert_int_eq(sqlite3_prepare_v2(db[s], "SELECT bytes FROM outbox WHERE state='queued'",
		                                    -1, &q, NULL), SQLITE_OK);
		while (sqlite3_step(q) == SQLITE_ROW) {
			unposted++;
			posted += in_log(sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0));
		}
		sqlite3_finalize(q);
	}
	g_run.unposted += unposted > 0;
	g_run.posted_unmarked += posted > 0;
	for (size_t i = all ? 0 : g_acks_checked; i < g_acks.n; i++) {
		const struct idrec *a = &g_acks.v[i];
		int n = crash_msg_count(db[a->side], a->id, a->in, a->h);
		ck_assert_msg(n == 1, "kill %d: message %s acknowledged as %s by %s: %d matching history "
		              "rows (" TU_SEED_FMT ")", kill_no, tu_hex(a->id, 16),
		              a->in ? "received" : "accepted for sending", name_of[a->side], n, TU_SEED_ARG);
	}
	g_acks_checked = g_acks.n;
	for (int s = 0; s < SIDES; s++)
		ck_assert_int_eq(sqlite3_close(db[s]), SQLITE_OK);
}

static void take(const struct rec *r, int *err_line, int *err_rc)
{
	switch (r->type) {
	case REC_INTENT:
		idvec_push(&g_intents, r->side, r->id, NULL, 0);
		break;
	case REC_SENT:
	case REC_RECV:
		idvec_push(&g_acks, r->side, r->id, r->h, r->type == REC_RECV);
		if (r->type == REC_SENT && (r->flags & REC_F_CLIENT)) {
			int known = 0;
			for (size_t i = 0; i < g_intents.n; i++)
				if (memcmp(g_intents.v[i].id, r->id, 16) == 0) {
					g_intents.v[i] = g_intents.v[--g_intents.n];
					break;
				}
			for (size_t i = g_client_acked.n; i-- > 0 && i + 64 > g_client_acked.n;)
				known |= memcmp(g_client_acked.v[i].id, r->id, 16) == 0;
			if (!known)
				idvec_push(&g_client_acked, r->side, r->id, r->h, 0);
		}
		break;
	case REC_STAT:
		if (r->aux < ST__N)
			g_stats[r->aux]++;
		break;
	case REC_ERROR:
		*err_line = (int)r->aux;
		*err_rc = r->rc;
		break;
	default:
		ck_abort_msg("bad record from the child");
	}
}

int crash_read_recs(int fd, double deadline, int *err_line, int *err_rc)
{
	static uint8_t buf[64 * sizeof(struct rec)];
	static size_t carry;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double left = deadline - crash_now_s();
		struct timespec ts;
		ssize_t n;
		size_t whole;

		if (deadline > 0) {
			if (left <= 0)
				return 0;
			ts.tv_sec = (time_t)left;
			ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
			if (ppoll(&p, 1, &ts, NULL) <= 0)
				continue;
		}
		n = read(fd, buf + carry, sizeof buf - carry);
		if (n < 0 && errno == EINTR)
			continue;
		ck_assert_int_ge(n, 0);
		if (n == 0) {
			ck_assert_uint_eq(carry, 0);   /* records are written whole (< PIPE_BUF) */
			return 1;
		}
		carry += (size_t)n;
		whole = carry / sizeof(struct rec);
		for (size_t i = 0; i < whole; i++) {
			struct rec r;
			memcpy(&r, buf + i * sizeof r, sizeof r);
			take(&r, err_line, err_rc);
		}
		memmove(buf, buf + whole * sizeof(struct rec), carry - whole * sizeof(struct rec));
		carry -= whole * sizeof(struct rec);
	}
}

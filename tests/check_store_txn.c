/*
 * check_store_txn.c — the store's transactions (lib/store/store.h): the
 * state machine (steps, batches, savepoints, busy, and the transitions it
 * refuses by aborting), the staging of relationship columns inside a
 * transaction (step rollback, batch rollback, readers, deadline queries,
 * unread sums, 1,000 relationships in one batch), and disk full and I/O
 * errors injected at every write of a representative sequence and of a
 * batch commit's write-back (tests/util_faultvfs.c): the store then holds
 * the last committed state and the handle stays in its sticky error.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include "error.h"
#include "store/store.h"
#include "core/apply.h"
#include "util_faultvfs.h"
#include "util_store.h"

START_TEST(test_transactions_batch)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store *other;
	uint8_t mb[32];
	uint64_t c;

	ts_fill(mb, 32, 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 1), 0);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_int_eq(relm_store_cursor_get(st, mb, &c), 0);
	ck_assert_uint_eq(c, 0);

	/* Batch: step 1 commits, step 2 rolls back alone, step 3 commits. */
	other = ts_open_ok(ts_dbpath, RELM_STORE_F_NOCHECK, NULL);
	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_in_txn(st), 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 1), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 2), 0);
	ck_assert_int_eq(relm_store_event_append(st, ts_any_event(), 1, NULL), 0);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_int_eq(relm_store_cursor_get(st, mb, &c), 0);
	ck_assert_uint_eq(c, 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ts_fill(mb + 16, 16, 9);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 3), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	/* Nothing is visible elsewhere, and the writer lock is held. */
	ck_assert_int_eq(relm_store_cursor_get(other, mb, &c), 0);
	ck_assert_uint_eq(c, 0);
	ck_assert_int_eq(sqlite3_busy_timeout(relm__store_db(other), 10), SQLITE_OK);
	ck_assert_int_eq(relm_store_begin(other), RELM_EBUSY);
	ck_assert_int_eq(relm_store_error(other), 0);         /* busy is not sticky */
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	ck_assert_int_eq(relm_store_cursor_get(other, mb, &c), 0);
	ck_assert_uint_eq(c, 3);
	ck_assert_int_eq(ts_exec_int(other, "SELECT count(*) FROM events"), 0);
	ck_assert_int_eq(ts_exec_int(other, "SELECT count(*) FROM cursors"), 2);

	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 4), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_batch_rollback(st), 0);
	ck_assert_int_eq(relm_store_cursor_get(st, mb, &c), 0);
	ck_assert_uint_eq(c, 3);
	relm_store_close(other);
	relm_store_close(st);
}
END_TEST

/* The transaction's listeners (relm_store_set_hooks): each hook in its
 * place, as a letter — b step begin, u step undone, C/R transaction
 * committed / not, P before a batch commits; a before_commit hook runs a
 * step of its own inside the batch, and its error rolls the batch back. */
struct hook_log {
	char s[64];
	int fail;                          /* before_commit's answer */
	struct relm_store *st;
};

static void log_c(struct hook_log *l, char c)
{
	size_t n = strlen(l->s);
	ck_assert_uint_lt(n, sizeof l->s - 1);
	l->s[n] = c;
}

static void on_begin(void *ctx) { log_c(ctx, 'b'); }
static void on_undo(void *ctx) { log_c(ctx, 'u'); }
static void on_end(void *ctx, int committed) { log_c(ctx, committed ? 'C' : 'R'); }

static int on_before(void *ctx)
{
	struct hook_log *l = ctx;
	uint8_t mb[32];
	log_c(l, 'P');
	ts_fill(mb, 32, 7);
	ck_assert_int_eq(relm_store_begin(l->st), 0);
	ck_assert_int_eq(relm_store_cursor_set(l->st, mb, 7), 0);
	ck_assert_int_eq(relm_store_commit(l->st), 0);
	return l->fail;
}

START_TEST(test_hooks)
{
	static const struct relm_store_hooks h = { on_begin, on_undo, on_end, on_before };
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct hook_log l = { .st = st };
	uint8_t mb[32];
	uint64_t c;

	relm_store_set_hooks(st, &h, &l);
	ck_assert_int_eq(relm_store_begin(st), 0);                 /* standalone */
	ck_assert_int_eq(relm_store_in_batch_step(st), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_str_eq(l.s, "bCbR");

	memset(l.s, 0, sizeof l.s);
	ck_assert_int_eq(relm_store_batch_begin(st), 0);          /* a batch that commits */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_in_batch_step(st), 1);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	ck_assert_str_eq(l.s, "bbuPbC");
	ts_fill(mb, 32, 7);
	ck_assert_int_eq(relm_store_cursor_get(st, mb, &c), 0);
	ck_assert_uint_eq(c, 7);                                     /* the hook's step committed */

	memset(l.s, 0, sizeof l.s);
	ck_assert_int_eq(relm_store_batch_begin(st), 0);          /* the hook fails */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ts_fill(mb, 32, 8);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 8), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	l.fail = RELM_ENOMEM;
	ck_assert_int_eq(relm_store_batch_commit(st), RELM_ENOMEM);
	ck_assert_str_eq(l.s, "bPbR");
	ck_assert_int_eq(relm_store_in_txn(st), 0);
	ck_assert_int_eq(relm_store_error(st), 0);
	ck_assert_int_eq(relm_store_cursor_get(st, mb, &c), 0);
	ck_assert_uint_eq(c, 0);                                     /* nothing of the batch */

	memset(l.s, 0, sizeof l.s);
	ck_assert_int_eq(relm_store_batch_begin(st), 0);          /* rolled back */
	ck_assert_int_eq(relm_store_batch_rollback(st), 0);
	relm_store_set_hooks(st, NULL, NULL);                        /* and gone */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_str_eq(l.s, "R");
	relm_store_close(st);
}
END_TEST

/* The state machine refuses what its diagram does not draw: each of these
 * calls is a programmer error, and aborts rather than run SQL that would
 * commit, nest or lose a transaction behind the caller's back. */
static struct relm_store *in_state(const char *state)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);

	if (!strcmp(state, "BATCH") || !strcmp(state, "BATCH_STEP"))
		ck_assert_int_eq(relm_store_batch_begin(st), 0);
	if (!strcmp(state, "STEP") || !strcmp(state, "BATCH_STEP"))
		ck_assert_int_eq(relm_store_begin(st), 0);
	return st;
}

static int write_cursor(struct relm_store *st)
{
	uint8_t mb[32] = { 0 };
	return relm_store_cursor_set(st, mb, 1);
}

static const struct {
	const char *state;
	int (*call)(struct relm_store *st);
} refusals[] = {
	{ "STEP", relm_store_begin },                 /* no nesting but the batch's */
	{ "BATCH_STEP", relm_store_begin },
	{ "IDLE", relm_store_commit },                /* nothing to commit */
	{ "BATCH", relm_store_rollback },             /* no step open */
	{ "BATCH", relm_store_batch_begin },
	{ "STEP", relm_store_batch_begin },
	{ "BATCH_STEP", relm_store_batch_commit },    /* a step is still open */
	{ "IDLE", relm_store_batch_rollback },
	{ "BATCH", write_cursor },                    /* writes belong in a step */
};
enum { NREFUSALS = sizeof refusals / sizeof refusals[0] };

START_TEST(test_refuse)
{
	refusals[_i].call(in_state(refusals[_i].state));
}
END_TEST

/* The legal paths, with in_txn at each state, and ERROR refusing every
 * call (transactions too) with its code until close. */
START_TEST(test_legal_transitions)
{
	struct relm_store *st = in_state("IDLE");
	uint8_t mb[32] = { 0 };

	ck_assert_int_eq(relm_store_in_txn(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);                /* IDLE → STEP */
	ck_assert_int_eq(relm_store_in_txn(st), 1);
	ck_assert_int_eq(relm_store_rollback(st), 0);             /* STEP → IDLE */
	ck_assert_int_eq(relm_store_batch_begin(st), 0);          /* IDLE → BATCH */
	ck_assert_int_eq(relm_store_in_txn(st), 1);
	ck_assert_int_eq(relm_store_begin(st), 0);                /* BATCH → BATCH_STEP */
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 1), 0);
	ck_assert_int_eq(relm_store_rollback(st), 0);             /* BATCH_STEP → BATCH */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 2), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);               /* BATCH_STEP → BATCH */
	ck_assert_int_eq(relm_store_batch_rollback(st), 0);       /* BATCH → IDLE */
	ck_assert_int_eq(relm_store_in_txn(st), 0);
	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_batch_commit(st), 0);         /* BATCH → IDLE */
	relm_store_close(st);

	/* ERROR: a sticky failure in a batched step */
	st = ts_open_ok(ts_dbpath, 0, TU_FAULTVFS_NAME);
	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 3), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	tu_faultvfs_fail_after(1, SQLITE_IOERR);
	ck_assert_int_eq(relm_store_batch_commit(st), RELM_ESTORE);
	tu_faultvfs_fail_after(0, 0);
	ck_assert_int_eq(relm_store_error(st), RELM_ESTORE);
	ck_assert_int_eq(relm_store_in_txn(st), 0);
	ck_assert_int_eq(relm_store_begin(st), RELM_ESTORE);
	ck_assert_int_eq(relm_store_commit(st), RELM_ESTORE);
	ck_assert_int_eq(relm_store_rollback(st), RELM_ESTORE);
	ck_assert_int_eq(relm_store_batch_begin(st), RELM_ESTORE);
	ck_assert_int_eq(relm_store_batch_commit(st), RELM_ESTORE);
	ck_assert_int_eq(relm_store_batch_rollback(st), RELM_ESTORE);
	ck_assert_int_eq(relm_store_cursor_get(st, mb, &(uint64_t){0}), RELM_ESTORE);
	relm_store_close(st);
	st = ts_open_ok(ts_dbpath, 0, NULL);
	ck_assert_int_eq(relm_store_cursor_get(st, mb, &(uint64_t){0}), 0);
	relm_store_close(st);
}
END_TEST

/* ---- staging of relationship columns ------------------------------------------- */

/* The state and unread of rel id as rel_get sees them. */
static void expect_rel(struct relm_store *st, const uint8_t id[16], const char *state,
                       uint32_t unread, uint64_t last_activity)
{
	struct relm_store_rel g;

	ck_assert_int_eq(relm_store_rel_get(st, id, &g, RELM_STORE_WITH_STATE), 0);
	ck_assert_uint_eq(g.state_len, strlen(state));
	ck_assert_int_eq(memcmp(g.state, state, g.state_len), 0);
	ck_assert_uint_eq(g.unread, unread);
	ck_assert_uint_eq(g.last_activity, last_activity);
	relm_store_rel_clear(&g);
}

/* The same, read from the file by a second connection (committed data). */
static void expect_file(const uint8_t id[16], const char *state, uint32_t unread,
                        uint64_t deadline)
{
	sqlite3 *db;
	sqlite3_stmt *q;

	ck_assert_int_eq(sqlite3_open_v2(ts_dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT state, unread, deadline FROM relationships WHERE id=?1",
	                                    -1, &q, NULL), SQLITE_OK);
	sqlite3_bind_blob(q, 1, id, 16, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_bytes(q, 0), (int)strlen(state));
	ck_assert_int_eq(memcmp(sqlite3_column_blob(q, 0), state, strlen(state)), 0);
	ck_assert_int_eq(sqlite3_column_int64(q, 1), unread);
	ck_assert_int_eq(sqlite3_column_int64(q, 2), (sqlite3_int64)deadline);
	sqlite3_finalize(q);
	sqlite3_close(db);
}

static void set_all(struct relm_store *st, const uint8_t id[16], const char *state,
                    uint64_t deadline, uint64_t t)
{
	ck_assert_int_eq(relm_store_rel_set_state(st, id, (const uint8_t *)state, strlen(state), t), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id, deadline), 0);
}

/* Inside a batch: a released step's values are what every reader sees and
 * what the file gets at batch commit; a rolled-back step's are gone; the
 * file sees nothing before the commit; batch rollback drops it all. */
START_TEST(test_stage_steps)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_rel r;
	struct ts_list_acc acc;
	uint8_t pid[16];
	uint64_t next = 0;

	ts_populate(st);                    /* state 300 bytes, no address, deadline 0 */
	ts_fill(pid, 16, 1);
	ts_mk_rel(&r, pid, 0, NULL, 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	set_all(st, r.id, "S0", 900, 10);
	ck_assert_int_eq(relm_store_commit(st), 0);
	expect_file(r.id, "S0", 0, 900);

	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	/* step 1: released */
	ck_assert_int_eq(relm_store_begin(st), 0);
	set_all(st, r.id, "S1-released", 800, 11);
	ck_assert_int_eq(relm_store_commit(st), 0);
	expect_rel(st, r.id, "S1-released", 0, 11);
	/* step 2: everything changed, seen inside the step, then rolled back */
	ck_assert_int_eq(relm_store_begin(st), 0);
	set_all(st, r.id, "S2-rolled-back", 700, 12);
	ck_assert_int_eq(relm_store_rel_set_state(st, r.id, (const uint8_t *)"S2-again", 8, 13), 0);
	ck_assert_int_eq(relm_store_rel_set_unread(st, r.id, 42), 0);
	expect_rel(st, r.id, "S2-again", 42, 13);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 700);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	expect_rel(st, r.id, "S1-released", 0, 11);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 800);
	/* a later step that touches the entry but not its state keeps the
	 * released state (the undo log only borrowed it) */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, r.id, 800), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_unread(st, r.id, 7), 0);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	expect_rel(st, r.id, "S1-released", 0, 11);
	/* a step that touches only another relationship leaves this one be */
	ck_assert_int_eq(relm_store_begin(st), 0);
	{
		struct relm_store_rel r1;
		ts_mk_rel(&r1, pid, 1, NULL, 0);
		ck_assert_int_eq(relm_store_rel_set_deadline(st, r1.id, 850), 0);
	}
	ck_assert_int_eq(relm_store_rollback(st), 0);
	/* the listing overlays the staged columns too */
	memset(&acc, 0, sizeof acc);
	ck_assert_int_eq(relm_store_rel_list(st, pid, NULL, 0, ts_rel_cb, &acc), 0);
	ck_assert_int_eq(acc.n, 2);
	{
		struct relm_store_rel g;
		ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, 0), 0);
		ck_assert_ptr_null(g.state);
		ck_assert_uint_eq(g.last_activity, 11);
		relm_store_rel_clear(&g);
	}
	/* nothing reached the file yet */
	expect_file(r.id, "S0", 0, 900);
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	expect_file(r.id, "S1-released", 0, 800);
	relm_store_close(st);

	st = ts_open_ok(ts_dbpath, RELM_STORE_F_INTEGRITY, NULL);
	expect_rel(st, r.id, "S1-released", 0, 11);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 800);

	/* batch rollback drops released steps too */
	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	set_all(st, r.id, "S3-batch-rolled-back", 600, 14);
	ck_assert_int_eq(relm_store_commit(st), 0);
	expect_rel(st, r.id, "S3-batch-rolled-back", 0, 14);
	ck_assert_int_eq(relm_store_batch_rollback(st), 0);
	expect_rel(st, r.id, "S1-released", 0, 11);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 800);

	/* a standalone step: staged until its commit, dropped by its rollback */
	ck_assert_int_eq(relm_store_begin(st), 0);
	set_all(st, r.id, "S4-standalone-rolled-back", 500, 15);
	expect_rel(st, r.id, "S4-standalone-rolled-back", 0, 15);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	expect_rel(st, r.id, "S1-released", 0, 11);
	ck_assert_int_eq(relm_store_begin(st), 0);
	set_all(st, r.id, "S5", 0, 16);
	ck_assert_int_eq(relm_store_commit(st), 0);
	expect_file(r.id, "S5", 0, 0);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 0);
	/* unknown relationships are refused as before, inside a batch too */
	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, pid, 5), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_rel_set_state(st, pid, (const uint8_t *)"x", 1, 1), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	relm_store_close(st);
}
END_TEST

struct due_acc { int n; uint8_t last[8]; };

static int due_order_cb(void *ctx, const uint8_t id[16])
{
	struct due_acc *a = ctx;
	if (a->n < 8)
		a->last[a->n] = id[15];
	a->n++;
	return 0;
}

static void expect_due(struct relm_store *st, uint64_t now, unsigned limit, const char *want)
{
	struct due_acc a;
	char got[16];

	memset(&a, 0, sizeof a);
	ck_assert_int_eq(relm_store_rel_due(st, now, limit, due_order_cb, &a), 0);
	ck_assert_int_le(a.n, 8);
	for (int i = 0; i < a.n; i++)
		got[i] = (char)('0' + a.last[i]);
	got[a.n] = '\0';
	ck_assert_str_eq(got, want);
}

/* rel_due / next_deadline merge the file's deadlines with the staged ones,
 * in order, with limits, inside a step and after its rollback. */
START_TEST(test_stage_deadlines)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_proton p;
	struct relm_store_rel r;
	uint8_t id[5][16];
	uint64_t next = 0;

	ts_mk_proton(&p, 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
	for (uint32_t i = 0; i < 5; i++) {
		ts_mk_rel(&r, p.id, i, (uint8_t *)"s", 1);
		memcpy(id[i], r.id, 16);
		ck_assert_int_eq(relm_store_rel_put(st, &r), 0);
	}
	/* in the file: 0 at 100, 1 at 200, 2 at 300, 3 and 4 none */
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[0], 100), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[1], 200), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[2], 300), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	expect_due(st, 1000, 0, "012");

	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[0], 0), 0);     /* none now */
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[1], 50), 0);    /* earlier */
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[3], 250), 0);   /* new */
	ck_assert_int_eq(relm_store_rel_set_state(st, id[4], (const uint8_t *)"t", 1, 2), 0);  /* no deadline */
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 50);
	expect_due(st, 1000, 0, "132");
	expect_due(st, 260, 0, "13");
	expect_due(st, 49, 0, "");
	expect_due(st, 1000, 2, "13");
	/* inside an open step */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[2], 10), 0);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 10);
	expect_due(st, 1000, 0, "213");
	expect_due(st, 1000, 1, "2");
	ck_assert_int_eq(relm_store_rollback(st), 0);
	expect_due(st, 1000, 0, "132");
	/* everything staged to none: the file's other rows still count */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[1], 0), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[3], 0), 0);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 300);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[2], 0), 0);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 0);
	expect_due(st, 1000, 0, "");
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	ck_assert_int_eq(ts_exec_int(st, "SELECT sum(deadline) FROM relationships"), 0 + 50 + 300 + 250 + 0);
	relm_store_close(st);
	st = ts_open_ok(ts_dbpath, 0, NULL);
	expect_due(st, 1000, 0, "132");
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 50);
	relm_store_close(st);
}
END_TEST

/* A DELIVER effect of a received message adds one to unread. */
static void deliver_in(struct relm_store *st, const uint8_t rel[16], uint8_t k)
{
	struct relm_effects fx;
	struct relm_fx *f;

	relm_effects_init(&fx);
	f = relm__fx_push(&fx, RELM_FX_DELIVER);
	ck_assert_ptr_nonnull(f);
	ts_fill(f->msg_id, 16, (uint8_t)(150 + k));
	f->direction_in = 1;
	f->kind = 1;
	ck_assert_int_eq(relm_core_apply(st, rel, "h:1/x", &fx, 1), 0);
	relm_effects_clear(&fx);
}

/* Unread increments staged across steps sum; a rolled-back step's do not
 * count; an absolute set in between restarts the sum. */
START_TEST(test_stage_unread)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_rel r, g;
	uint8_t pid[16];

	ts_populate(st);
	ts_fill(pid, 16, 1);
	ts_mk_rel(&r, pid, 1, NULL, 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_unread(st, r.id, 5), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);

	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	deliver_in(st, r.id, 0);
	deliver_in(st, r.id, 1);
	deliver_in(st, r.id, 1);                  /* duplicate: not counted */
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	deliver_in(st, r.id, 2);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	deliver_in(st, r.id, 3);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, 0), 0);
	ck_assert_uint_eq(g.unread, 8);
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	ck_assert_int_eq(ts_exec_int(st, "SELECT unread FROM relationships WHERE label='rel 1'"), 8);

	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	deliver_in(st, r.id, 4);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_unread(st, r.id, 0), 0);     /* read */
	deliver_in(st, r.id, 5);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	deliver_in(st, r.id, 6);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, 0), 0);
	ck_assert_uint_eq(g.unread, 2);
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	relm_store_close(st);
	st = ts_open_ok(ts_dbpath, 0, NULL);
	ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, 0), 0);
	ck_assert_uint_eq(g.unread, 2);
	relm_store_close(st);
}
END_TEST

/* One batch over 1,000 relationships (the staging table grows several
 * times), every 7th step rolled back: after commit and reopen each holds
 * its last released state and deadline. */
START_TEST(test_stage_many)
{
	enum { N = 1000 };
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_proton p;
	struct relm_store_rel r, g;
	uint8_t state[600];
	uint64_t next = 0;
	int n = 0;

	ts_mk_proton(&p, 1);
	ts_fill(state, sizeof state, 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
	for (uint32_t i = 0; i < N; i++) {
		ts_mk_rel(&r, p.id, i, state, 100);
		ck_assert_int_eq(relm_store_rel_put(st, &r), 0);
	}
	ck_assert_int_eq(relm_store_commit(st), 0);

	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < N; i++) {
			int drop = (i + (uint32_t)pass) % 7 == 0;
			ts_mk_rel(&r, p.id, i, NULL, 0);
			ts_fill(state, sizeof state, (uint8_t)(i + 31 * (uint32_t)pass + 100 * drop));
			ck_assert_int_eq(relm_store_begin(st), 0);
			ck_assert_int_eq(relm_store_rel_set_state(st, r.id, state, 200 + i % 300, 1000 + i), 0);
			ck_assert_int_eq(relm_store_rel_set_deadline(st, r.id, 5000 + i + (uint64_t)pass), 0);
			ck_assert_int_eq(drop ? relm_store_rollback(st) : relm_store_commit(st), 0);
		}
	}
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 5001);            /* rel 0: pass 0 dropped, pass 1 kept */
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	relm_store_close(st);

	st = ts_open_ok(ts_dbpath, RELM_STORE_F_INTEGRITY, NULL);
	for (uint32_t i = 0; i < N; i++) {
		/* the last released of the two passes, or the original */
		int pass = (i + 1) % 7 != 0 ? 1 : i % 7 != 0 ? 0 : -1;
		ts_mk_rel(&r, p.id, i, NULL, 0);
		ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, RELM_STORE_WITH_STATE), 0);
		if (pass < 0) {
			ck_assert_uint_eq(g.state_len, 100);
		} else {
			ts_fill(state, sizeof state, (uint8_t)(i + 31 * (uint32_t)pass));
			ck_assert_uint_eq(g.state_len, 200 + i % 300);
			ck_assert_int_eq(memcmp(g.state, state, g.state_len), 0);
			ck_assert_uint_eq(g.last_activity, 1000 + i);
		}
		relm_store_rel_clear(&g);
	}
	ck_assert_int_eq(relm_store_rel_due(st, 1000000, 0, ts_due_cb, &n), 0);
	ck_assert_int_eq(n, ts_exec_int(st, "SELECT count(*) FROM relationships WHERE deadline>0"));
	ck_assert_int_gt(n, N - N / 7 - 10);
	relm_store_close(st);
}
END_TEST

/* ---- fault injection -------------------------------------------------------------- */

START_TEST(test_disk_full)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, TU_FAULTVFS_NAME);
	uint8_t before[32], after[32], mb[32];
	uint64_t c;
	struct relm_store_outbox o;

	ts_populate(st);
	ts_digest(st, before);
	memset(&o, 0, sizeof o);
	snprintf(o.dest, sizeof o.dest, "h:1/x");
	o.bytes = (const uint8_t *)"envelope";
	o.len = 8;
	ts_fill(mb, 32, 3);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_outbox_add(st, &o, NULL), 0);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 9), 0);
	tu_faultvfs_fail_after(1, SQLITE_FULL);
	ck_assert_int_eq(relm_store_commit(st), RELM_EDISKFULL);
	ck_assert_int_ge(tu_faultvfs_failures(), 1);
	/* Sticky: nothing more until reopened. */
	ck_assert_int_eq(relm_store_error(st), RELM_EDISKFULL);
	ck_assert_int_eq(relm_store_begin(st), RELM_EDISKFULL);
	ck_assert_int_eq(relm_store_cursor_get(st, mb, &c), RELM_EDISKFULL);
	ck_assert_ptr_nonnull(strstr(relm_store_errmsg(st), "full"));
	relm_store_close(st);
	tu_faultvfs_fail_after(0, 0);
	st = ts_open_ok(ts_dbpath, RELM_STORE_F_INTEGRITY, NULL);
	ts_digest(st, after);
	ck_assert_int_eq(memcmp(before, after, 32), 0);
	ck_assert_int_eq(relm_store_cursor_get(st, mb, &c), 0);
	ck_assert_uint_eq(c, 0);
	relm_store_close(st);
}
END_TEST

/* The representative sequence: what a daemon does per loop turn. */
#define SEQ_TXNS 6

static int seq_txn(struct relm_store *st, int t)
{
	struct relm_store_outbox o;
	struct relm_store_rel r;
	struct relm_store_msg m;
	uint8_t pid[16], mb[32], state[2000];
	int err, steps = t == 3 ? 3 : 1;

	ts_fill(pid, 16, 1);
	ts_fill(mb, 32, 2);
	if (t == 3 && (err = relm_store_batch_begin(st)) != 0)
		return err;
	for (int k = 0; k < steps; k++) {
		if ((err = relm_store_begin(st)) != 0)
			return err;
		ts_mk_rel(&r, pid, (uint32_t)(t & 1), NULL, 0);
		ts_fill(state, sizeof state, (uint8_t)(t * 10 + k));
		if ((err = relm_store_rel_set_state(st, r.id, state, sizeof state, (uint64_t)t)) != 0)
			return err;
		memset(&o, 0, sizeof o);
		snprintf(o.dest, sizeof o.dest, "h:1/x");
		o.bytes = state;
		o.len = 500;
		if ((err = relm_store_outbox_add(st, &o, NULL)) != 0)
			return err;
		memset(&m, 0, sizeof m);
		memcpy(m.rel, r.id, 16);
		ts_fill(m.id, 16, (uint8_t)(100 + t * 5 + k));
		m.origin = RELM_ORIGIN_SELF;
		m.body = state;
		m.body_len = 300;
		if ((err = relm_store_msg_insert(st, &m)) < 0)
			return err;
		if ((err = relm_store_cursor_set(st, mb, (uint64_t)(t * 10 + k))) != 0)
			return err;
		{
			struct relm_event ev;
			ts_event(&ev, RELM_EV_MESSAGE_SENT, r.id);
			memcpy(ev.msg, m.id, 16);
			ev.has |= RELM_EVF_MSG;
			if ((err = relm_store_event_append(st, &ev, 1, NULL)) != 0)
				return err;
		}
		if (t == 5 && (err = relm_store_outbox_purge_posted(st, 0)) < 0)
			return err;
		if (t == 4) {
			/* mark the first two posted */
			if ((err = relm_store_outbox_mark_posted(st, 1, 1)) != 0 ||
			    (err = relm_store_outbox_mark_posted(st, 2, 1)) != 0)
				return err;
		}
		if ((err = relm_store_commit(st)) != 0)
			return err;
	}
	if (t == 3 && (err = relm_store_batch_commit(st)) != 0)
		return err;
	return 0;
}

START_TEST(test_fault_every_write)
{
	uint8_t d[SEQ_TXNS + 1][32], got[32];
	char base[600], wal[600];
	size_t bn;
	uint8_t *bb;
	long total;
	int points = 0;

	ts_make_closed_store();
	snprintf(base, sizeof base, "%s/state/base.db", ts_tmpdir);
	snprintf(wal, sizeof wal, "%s-wal", ts_dbpath);
	bb = ts_read_file(ts_dbpath, &bn);
	ts_write_file(base, bb, bn);

	/* Dry run: the ts_digest after each transaction, and the op count. */
	{
		struct relm_store *st;
		tu_faultvfs_fail_after(0, 0);
		st = ts_open_ok(ts_dbpath, 0, TU_FAULTVFS_NAME);
		ts_digest(st, d[0]);
		for (int t = 0; t < SEQ_TXNS; t++) {
			ck_assert_int_eq(seq_txn(st, t), 0);
			ts_digest(st, d[t + 1]);
		}
		relm_store_close(st);
		total = tu_faultvfs_ops();
		ck_assert_int_gt(total, 10);
	}
	for (long nth = 1; nth <= total + 1; nth++) {
		int errs[2] = { SQLITE_IOERR, SQLITE_FULL };
		for (int e = 0; e < 2; e++) {
			struct relm_store *st = NULL;
			struct relm_store_opts o = { .vfs = TU_FAULTVFS_NAME };
			int r, done_txns = 0, matched = -1;

			ts_write_file(ts_dbpath, bb, bn);
			unlink(wal);
			tu_faultvfs_fail_after((int)nth, errs[e]);
			r = relm_store_open(&st, ts_dbpath, &o);
			if (r == 0) {
				for (; done_txns < SEQ_TXNS; done_txns++) {
					if ((r = seq_txn(st, done_txns)) != 0)
						break;
				}
				if (r) {
					ck_assert_msg(r == RELM_EDISKFULL || r == RELM_ESTORE,
					              "nth %ld: %s", nth, relm_strerror(r));
					/* sticky: refuses cleanly */
					ck_assert_int_eq(relm_store_error(st), r);
					ck_assert_int_eq(relm_store_in_txn(st), 0);
				}
				relm_store_close(st);
			} else {
				ck_assert_msg(r == RELM_EDISKFULL || r == RELM_ESTORE, "open at nth %ld: %s", nth, relm_strerror(r));
			}
			points += tu_faultvfs_failures() > 0;
			tu_faultvfs_fail_after(0, 0);
			st = ts_open_ok(ts_dbpath, RELM_STORE_F_INTEGRITY, NULL);
			ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check='ok'"), 1);
			ts_digest(st, got);
			/* The state is that of the last committed transaction — or,
			 * when the failure hit that transaction's COMMIT, possibly the
			 * next one (a failed fsync after the frames were written). */
			for (int k = done_txns; k <= done_txns + 1 && k <= SEQ_TXNS; k++)
				if (memcmp(got, d[k], 32) == 0)
					matched = k;
			ck_assert_msg(matched >= 0, "nth %ld err %d: state after %d txns is not a committed state",
			              nth, errs[e], done_txns);
			/* usable after reopen */
			ck_assert_int_eq(relm_store_begin(st), 0);
			ck_assert_int_eq(relm_store_event_append(st, ts_any_event(), 1, NULL), 0);
			ck_assert_int_eq(relm_store_commit(st), 0);
			relm_store_close(st);
		}
	}
	ck_assert_int_gt(points, 20);
	fprintf(stderr, "  fault injection: %ld write ops in the sequence, %d failure points checked\n", total, points);
	free(bb);
}
END_TEST

/* The write-back of staged columns fails at batch commit (disk full, I/O
 * error), at every write op of the commit: the store goes to the sticky
 * error as a failed COMMIT does, and reopens with the last committed state
 * — never some relationships written and others not.  A tiny page cache
 * makes the write-back spill pages to the WAL, so the faults reach it and
 * not only the COMMIT's frames. */
START_TEST(test_flush_fault)
{
	enum { NREL = 40 };
	struct relm_store_proton p;
	struct relm_store_rel r;
	uint8_t before[32], after[32], got[32], state[3000];
	char base[600], wal[600];
	uint8_t *bb;
	size_t bn;
	long total = 0;
	int in_flush = 0, points = 0;

	{
		struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
		ts_mk_proton(&p, 1);
		ck_assert_int_eq(relm_store_begin(st), 0);
		ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
		for (uint32_t i = 0; i < NREL; i++) {
			ts_fill(state, sizeof state, (uint8_t)i);
			ts_mk_rel(&r, p.id, i, state, sizeof state);
			ck_assert_int_eq(relm_store_rel_put(st, &r), 0);
		}
		ck_assert_int_eq(relm_store_commit(st), 0);
		ts_digest(st, before);
		relm_store_close(st);
	}
	snprintf(base, sizeof base, "%s/state/base.db", ts_tmpdir);
	snprintf(wal, sizeof wal, "%s-wal", ts_dbpath);
	bb = ts_read_file(ts_dbpath, &bn);
	ts_write_file(base, bb, bn);

	/* nth = 0: the dry run, which also gives the op count of the commit */
	for (long nth = 0; nth <= total + 1; nth++) {
		int errs[2] = { SQLITE_IOERR, SQLITE_FULL };
		for (int e = 0; e < (nth ? 2 : 1); e++) {
			struct relm_store *st;
			uint8_t mb[32];
			int rc, wb;

			ts_write_file(ts_dbpath, bb, bn);
			unlink(wal);
			tu_faultvfs_fail_after(0, 0);
			st = ts_open_ok(ts_dbpath, RELM_STORE_F_NOCHECK, TU_FAULTVFS_NAME);
			ck_assert_int_eq(sqlite3_exec(relm__store_db(st), "PRAGMA cache_size=8", NULL, NULL, NULL), SQLITE_OK);
			ck_assert_int_eq(relm_store_batch_begin(st), 0);
			for (uint32_t i = 0; i < NREL; i++) {
				ts_mk_rel(&r, p.id, i, NULL, 0);
				ts_fill(state, sizeof state, (uint8_t)(i + 77));
				ts_fill(mb, 32, (uint8_t)i);
				ck_assert_int_eq(relm_store_begin(st), 0);
				ck_assert_int_eq(relm_store_rel_set_state(st, r.id, state, sizeof state - i, 7), 0);
				ck_assert_int_eq(relm_store_rel_set_deadline(st, r.id, 100 + i), 0);
				ck_assert_int_eq(relm_store_cursor_set(st, mb, i), 0);
				ck_assert_int_eq(relm_store_commit(st), 0);
			}
			tu_faultvfs_fail_after((int)nth, nth ? errs[e] : 0);
			rc = relm_store_batch_commit(st);
			if (!nth) {
				ck_assert_int_eq(rc, 0);
				total = tu_faultvfs_ops();
				ck_assert_int_gt(total, 10);
				ts_digest(st, after);
				relm_store_close(st);
				continue;
			}
			if (tu_faultvfs_failures() == 0) {
				ck_assert_int_eq(rc, 0);   /* nth past the last op */
				relm_store_close(st);
				continue;
			}
			points++;
			ck_assert_msg(rc == RELM_EDISKFULL || rc == RELM_ESTORE, "nth %ld: %s", nth, relm_strerror(rc));
			ck_assert_int_eq(relm_store_error(st), rc);
			ck_assert_int_eq(relm_store_in_txn(st), 0);
			ck_assert_int_eq(relm_store_begin(st), rc);
			ck_assert_int_eq(relm_store_next_deadline(st, &(uint64_t){0}), rc);
			wb = strstr(relm_store_errmsg(st), "REL_FLUSH") != NULL;
			in_flush += wb;
			relm_store_close(st);
			tu_faultvfs_fail_after(0, 0);
			st = ts_open_ok(ts_dbpath, RELM_STORE_F_INTEGRITY, NULL);
			ts_digest(st, got);
			/* the old state — or, when the COMMIT itself failed after its
			 * frames were written, possibly the new one; never a mix */
			ck_assert_msg(memcmp(got, before, 32) == 0 || memcmp(got, after, 32) == 0,
			              "nth %ld err %d: neither the committed nor the new state", nth, errs[e]);
			if (wb)      /* failed before COMMIT: certainly the old state */
				ck_assert_msg(memcmp(got, before, 32) == 0, "nth %ld: write-back failed, yet changed", nth);
			ck_assert_int_eq(relm_store_begin(st), 0);
			ck_assert_int_eq(relm_store_event_append(st, ts_any_event(), 1, NULL), 0);
			ck_assert_int_eq(relm_store_commit(st), 0);
			relm_store_close(st);
		}
	}
	ck_assert_int_gt(in_flush, 0);
	ck_assert_int_gt(points, 10);
	fprintf(stderr, "  write-back faults: %ld write ops in the commit, %d failure points, %d in the write-back\n",
	        total, points, in_flush);
	free(bb);
}
END_TEST


int main(void)
{
	const struct ts_test tests[] = {
		{ "txn_state_machine", test_transactions_batch, 10 },
		{ "txn_hooks", test_hooks, 10 },
		{ "txn_state_machine", test_legal_transitions, 10 },
		{ "txn_state_machine", test_refuse, 10, SIGABRT, NREFUSALS },
		{ "staging", test_stage_steps, 10 },
		{ "staging", test_stage_deadlines, 10 },
		{ "staging", test_stage_unread, 10 },
		{ "staging", test_stage_many, 30 },
		{ "faults", test_disk_full, 10 },
		{ "faults", test_fault_every_write, 120 },
		{ "faults", test_flush_fault, 120 },
	};
	return ts_run("store_txn", tests, sizeof tests / sizeof tests[0]);
}

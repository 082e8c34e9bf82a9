/*
 * check_store_events.c — the event log across transactions
 * (lib/store/events.c, lib/store/evmem.c): its retention applied once per
 * transaction at the commit, and relm_store_event_drain, which hands the
 * daemon what each commit added — from memory when it can, from the log
 * when it cannot — and must give exactly what a read of the log gives.
 *
 * The records, their shapes and the log's reading are in check_store.c.
 * Randomised tests take their seed from RELM_SEED (default 0x5eed5eed)
 * and print it in every failure.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "store/store.h"
#include "util_store.h"

/* ---- retention ------------------------------------------------------------ */

/* The log is trimmed once per transaction, at its commit, to the newest
 * `keep` of what the transaction leaves: a batched step rolled back takes
 * its events (and their seqs) with it, and does not count. */
START_TEST(test_events_trim_batch)
{
	struct relm_store *st = NULL;
	struct relm_store_opts o = { .event_keep = 10 };
	struct relm_event ev;
	uint8_t rel[16];
	int64_t seq, oldest, last;
	int i = 0;

	ts_fill(rel, 16, 3);
	ck_assert_int_eq(relm_store_open(&st, ts_dbpath, &o), 0);
	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	for (int step = 0; step < 3; step++) {
		ck_assert_int_eq(relm_store_begin(st), 0);
		for (int k = 0; k < (step == 0 ? 8 : 5); k++) {
			ts_event(&ev, RELM_EV_MESSAGE_RECEIVED, rel);
			ts_fill(ev.msg, 16, (uint8_t)++i);
			ev.has |= RELM_EVF_MSG;
			ck_assert_int_eq(relm_store_event_append(st, &ev, (uint64_t)i, &seq), 0);
		}
		if (step == 1) {
			ck_assert_int_eq(seq, 13);
			ck_assert_int_eq(relm_store_rollback(st), 0);
		} else {
			ck_assert_int_eq(relm_store_commit(st), 0);
		}
	}
	/* steps 1 and 3 kept: seq 1-8 and 9-13 (step 2's 9-13 rolled back) */
	ck_assert_int_eq(seq, 13);
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	ck_assert_int_eq(relm_store_event_bounds(st, &oldest, &last), 0);
	ck_assert_int_eq(last, 13);
	ck_assert_int_eq(oldest, 4);
	/* a transaction that appends nothing trims nothing */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_event_bounds(st, &oldest, &last), 0);
	ck_assert_int_eq(oldest, 4);
	/* a whole transaction rolled back: nothing trimmed at the next commit
	 * beyond what that one leaves */
	ck_assert_int_eq(relm_store_begin(st), 0);
	for (int k = 0; k < 20; k++) {
		ts_event(&ev, RELM_EV_MESSAGE_RECEIVED, rel);
		ev.has |= RELM_EVF_MSG;
		ck_assert_int_eq(relm_store_event_append(st, &ev, 1, &seq), 0);
	}
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_event_bounds(st, &oldest, &last), 0);
	ck_assert_int_eq(oldest, 4);
	ck_assert_int_eq(last, 13);
	relm_store_close(st);
}
END_TEST

/* ---- the drain ------------------------------------------------------------ */

/* What a read gave: records with their own copies of the texts. */
struct seen {
	int n, cap;
	int64_t *seq;
	uint64_t *ts;
	struct relm_event *ev;
	char (*reason)[RELM_EVENT_REASON_MAX + 1];
	char (*table)[RELM_EVENT_TABLE_MAX + 1];
	int stop_at;                 /* return 1 at this many records (0: never) */
};

static int seen_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	struct seen *s = ctx;

	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->seq = realloc(s->seq, (size_t)s->cap * sizeof *s->seq);
		s->ts = realloc(s->ts, (size_t)s->cap * sizeof *s->ts);
		s->ev = realloc(s->ev, (size_t)s->cap * sizeof *s->ev);
		s->reason = realloc(s->reason, (size_t)s->cap * sizeof *s->reason);
		s->table = realloc(s->table, (size_t)s->cap * sizeof *s->table);
		ck_assert(s->seq && s->ts && s->ev && s->reason && s->table);
	}
	s->seq[s->n] = seq;
	s->ts[s->n] = ts;
	s->ev[s->n] = *ev;
	snprintf(s->reason[s->n], sizeof s->reason[0], "%s", ev->reason ? ev->reason : "");
	snprintf(s->table[s->n], sizeof s->table[0], "%s", ev->table ? ev->table : "");
	s->ev[s->n].reason = s->ev[s->n].table = NULL;     /* same() reads the copies */
	s->n++;
	return s->stop_at && s->n == s->stop_at;
}

static void seen_free(struct seen *s)
{
	free(s->seq);
	free(s->ts);
	free(s->ev);
	free(s->reason);
	free(s->table);
	memset(s, 0, sizeof *s);
}

/* Record k of a and of b are the same event, field for field. */
static void same(const struct seen *a, int ka, const struct seen *b, int kb)
{
	const struct relm_event *x = &a->ev[ka], *y = &b->ev[kb];

	ck_assert_int_eq(a->seq[ka], b->seq[kb]);
	ck_assert_uint_eq(a->ts[ka], b->ts[kb]);
	ts_same_fields(x, y);
	/* the texts by the copies (the pointers may predate a realloc) */
	if (x->has & RELM_EVF_REASON)
		ck_assert_str_eq(a->reason[ka], b->reason[kb]);
	if (x->has & RELM_EVF_TABLE)
		ck_assert_str_eq(a->table[ka], b->table[kb]);
}

/* A random valid record: a random type with a random subset of what it
 * may carry, values at the edges of what the log keeps (an integer above
 * INT64_MAX, which the log cannot give back; a code with and without a
 * name). */
static void random_record(struct relm_event *ev, char *reason, size_t cap)
{
	static const int codes[] = { RELM_EPENDING_EXPIRED, RELM_EAUTH, RELM_EMALFORMED, -999999 };
	unsigned need, may;
	uint64_t r = ts_prng();
	int type = RELM_EV_NONE + 1 + (int)(r % (RELM_EV_COUNT - 1));

	relm_event_init(ev, type);
	relm_event_fields(type, &need, &may);
	ev->has = need | (may & (unsigned)ts_prng());
	for (size_t i = 0; i < sizeof ev->rel; i++) {
		ev->rel[i] = (uint8_t)ts_prng();
		ev->msg[i] = (uint8_t)ts_prng();
		ev->node[i] = (uint8_t)ts_prng();
		ev->proton[i] = (uint8_t)ts_prng();
		ev->device[i] = (uint8_t)ts_prng();
		ev->envelope[i] = (uint8_t)ts_prng();
	}
	for (size_t i = 0; i < sizeof ev->ipk; i++) {
		ev->ipk[i] = (uint8_t)ts_prng();
		ev->mailbox[i] = (uint8_t)ts_prng();
	}
	ev->mailbox_seq = ts_prng() % 4 ? ts_prng() >> 2 : (1ull << 63) + ts_prng() % 1000;
	ev->epoch = ts_prng() % 4 ? ts_prng() % 100 : UINT64_MAX;
	ev->pruned = (uint32_t)ts_prng();
	ev->status = (int)(ts_prng() % RELM_STATUS_COUNT);
	ev->code = codes[ts_prng() % 4];
	snprintf(reason, cap, "reason %llu \"x\"\n", (unsigned long long)(ts_prng() % 1000));
	ev->reason = reason;
	ev->table = ts_prng() % 2 ? "messages" : "relationships";
	ev->row = ts_prng() >> 1;
	ck_assert_int_eq(relm_event_check(ev), 0);
}

static void append_some(struct relm_store *st, int k, uint64_t *ts)
{
	struct relm_event ev;
	char reason[64];

	for (int i = 0; i < k; i++) {
		random_record(&ev, reason, sizeof reason);
		ck_assert_int_eq(relm_store_event_append(st, &ev, ++*ts, NULL), 0);
	}
}

/* Between transactions, the drain from the last seq it gave is what the
 * log holds after it, record for record; when memory holds it all, the
 * drain runs no statement.  Random transactions: batches of steps, some
 * rolled back, standalone steps, whole transactions rolled back, more
 * events than the log keeps, a drain stopped by its callback, a reopen. */
START_TEST(test_drain_is_the_log)
{
	struct relm_store_opts o = { .event_keep = 300 };
	struct relm_store *st = NULL;
	int64_t since = 0;
	uint64_t ts = 0;
	int from_memory = 0;

	ck_assert_int_eq(relm_store_open(&st, ts_dbpath, &o), 0);
	for (int round = 0; round < 120; round++) {
		struct seen want = { 0 }, got = { 0 };
		uint64_t r = ts_prng() % 10;
		uint64_t steps_before;

		if (r < 5) {
			/* a batch of steps, a third rolled back */
			int n = 1 + (int)(ts_prng() % 6);
			ck_assert_int_eq(relm_store_batch_begin(st), 0);
			for (int i = 0; i < n; i++) {
				ck_assert_int_eq(relm_store_begin(st), 0);
				append_some(st, (int)(ts_prng() % 8), &ts);
				if (ts_prng() % 3 == 0)
					ck_assert_int_eq(relm_store_rollback(st), 0);
				else
					ck_assert_int_eq(relm_store_commit(st), 0);
			}
			if (ts_prng() % 8 == 0)
				ck_assert_int_eq(relm_store_batch_rollback(st), 0);
			else
				ck_assert_int_eq(relm_store_batch_commit(st), 0);
		} else if (r < 8) {
			/* a step of its own, sometimes rolled back */
			ck_assert_int_eq(relm_store_begin(st), 0);
			append_some(st, (int)(ts_prng() % 5), &ts);
			if (ts_prng() % 4 == 0)
				ck_assert_int_eq(relm_store_rollback(st), 0);
			else
				ck_assert_int_eq(relm_store_commit(st), 0);
		} else if (r < 9) {
			/* more than the log keeps: some are trimmed before the drain */
			ck_assert_int_eq(relm_store_begin(st), 0);
			append_some(st, 310 + (int)(ts_prng() % 50), &ts);
			ck_assert_int_eq(relm_store_commit(st), 0);
		} else {
			/* a reopen: memory starts empty */
			relm_store_close(st);
			ck_assert_int_eq(relm_store_open(&st, ts_dbpath, &o), 0);
		}
		ck_assert_int_eq(relm_store_event_list(st, since, 0, seen_cb, &want), 0);
		relm__store_vm_steps(st, 1);
		if (want.n > 1 && ts_prng() % 5 == 0) {
			/* stopped by the callback after k: those k delivered, the
			 * rest at the next drain */
			got.stop_at = 1 + (int)(ts_prng() % (uint64_t)(want.n - 1));
			ck_assert_int_eq(relm_store_event_drain(st, since, seen_cb, &got), 1);
			ck_assert_int_eq(got.n, got.stop_at);
			got.stop_at = 0;
			ck_assert_int_eq(relm_store_event_drain(st, got.seq[got.n - 1], seen_cb, &got), 0);
		} else {
			ck_assert_int_eq(relm_store_event_drain(st, since, seen_cb, &got), 0);
		}
		steps_before = relm__store_vm_steps(st, 1);
		ck_assert_msg(got.n == want.n, "round %d: drained %d, the log has %d", round, got.n, want.n);
		for (int k = 0; k < got.n; k++)
			same(&got, k, &want, k);
		if (steps_before == 0 && got.n > 0)
			from_memory++;
		if (got.n)
			since = got.seq[got.n - 1];
		seen_free(&want);
		seen_free(&got);
	}
	/* the fast path ran (and was checked above) in most rounds */
	ck_assert_msg(from_memory > 40, "only %d drains from memory", from_memory);
	relm_store_close(st);
}
END_TEST

/* A caller further behind than the last drain gets what it missed (the
 * log), not only what memory holds; inside a transaction the drain reads
 * the log, and a later drain between transactions still gives each
 * committed event. */
START_TEST(test_drain_behind)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct seen a = { 0 }, b = { 0 };
	uint64_t ts = 0;

	ck_assert_int_eq(relm_store_begin(st), 0);
	append_some(st, 5, &ts);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_event_drain(st, 0, seen_cb, &a), 0);
	ck_assert_int_eq(a.n, 5);
	ck_assert_int_eq(relm_store_begin(st), 0);
	append_some(st, 3, &ts);
	ck_assert_int_eq(relm_store_commit(st), 0);
	/* from 2: the 3 after it drained before, and the 3 new */
	ck_assert_int_eq(relm_store_event_drain(st, 2, seen_cb, &b), 0);
	ck_assert_int_eq(b.n, 6);
	ck_assert_int_eq(b.seq[0], 3);
	ck_assert_int_eq(b.seq[5], 8);
	for (int k = 0; k < 3; k++)
		same(&b, k, &a, k + 2);
	seen_free(&b);
	/* nothing new */
	ck_assert_int_eq(relm_store_event_drain(st, 8, seen_cb, &b), 0);
	ck_assert_int_eq(b.n, 0);
	/* in a transaction: the log as this connection sees it */
	ck_assert_int_eq(relm_store_begin(st), 0);
	append_some(st, 2, &ts);
	ck_assert_int_eq(relm_store_event_drain(st, 8, seen_cb, &b), 0);
	ck_assert_int_eq(b.n, 2);
	ck_assert_int_eq(relm_store_commit(st), 0);
	seen_free(&b);
	ck_assert_int_eq(relm_store_event_drain(st, 8, seen_cb, &b), 0);
	ck_assert_int_eq(b.n, 2);
	ck_assert_int_eq(b.seq[1], 10);
	seen_free(&a);
	seen_free(&b);
	relm_store_close(st);
}
END_TEST

int main(void)
{
	const struct ts_test tests[] = {
		{ "trim", test_events_trim_batch, 10 },
		{ "drain", test_drain_is_the_log, 60 },
		{ "drain", test_drain_behind, 10 },
	};
	return ts_run("store_events", tests, sizeof tests / sizeof tests[0]);
}

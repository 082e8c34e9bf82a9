/*
 * check_store_events.c — the event log across transactions
 * (lib/store/events.c, lib/store/evmem.c): its retention applied once per
 * transaction at the commit, and relm_store_event_drain, which hands the
 * daemon what each commit added — from memory when it can, from the log
 * when it cannot — and must give exactly what a read of the log gives.
 *
 * Also the records themselves: every type and field round-trips, and the
 * log reads back in order (test_events, test_event_records).
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

/* ---- the records: every type and field round-trips -------------------------- */

static int ev_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	int64_t *last = ctx;
	ck_assert_int_eq(seq, *last + 1);
	ck_assert_int_eq(ev->type, RELM_EV_MESSAGE_RECEIVED);
	ck_assert_uint_eq(ev->has, RELM_EVF_REL | RELM_EVF_MSG);
	ck_assert_int_eq(ev->msg[0], (uint8_t)seq);
	ck_assert_uint_eq(ts, (uint64_t)seq);
	*last = seq;
	return 0;
}

START_TEST(test_events)
{
	struct relm_store *st = NULL;
	struct relm_store_opts o = { .event_keep = 10 };
	struct relm_event ev;
	uint8_t rel[16];
	int64_t seq, oldest, last, cur;

	ts_fill(rel, 16, 3);
	ck_assert_int_eq(relm_store_open(&st, ts_dbpath, &o), 0);
	ck_assert_int_eq(relm_store_event_bounds(st, &oldest, &last), 0);
	ck_assert_int_eq(oldest, 0);
	ck_assert_int_eq(last, 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	for (int i = 1; i <= 25; i++) {
		ts_event(&ev, RELM_EV_MESSAGE_RECEIVED, rel);
		ts_fill(ev.msg, 16, (uint8_t)i);
		ev.has |= RELM_EVF_MSG;
		ck_assert_int_eq(relm_store_event_append(st, &ev, (uint64_t)i, &seq), 0);
		ck_assert_int_eq(seq, i);
	}
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_event_bounds(st, &oldest, &last), 0);
	ck_assert_int_eq(oldest, 16);
	ck_assert_int_eq(last, 25);
	cur = 20;
	ck_assert_int_eq(relm_store_event_list(st, 20, 0, ev_cb, &cur), 0);
	ck_assert_int_eq(cur, 25);
	cur = 15;
	ck_assert_int_eq(relm_store_event_list(st, 0, 3, ev_cb, &cur), 0);
	ck_assert_int_eq(cur, 18);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_event_trim(st, 4), 6);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_event_bounds(st, &oldest, &last), 0);
	ck_assert_int_eq(oldest, 22);
	relm_store_close(st);
	/* seq survives trimming everything and reopening */
	st = ts_open_ok(ts_dbpath, 0, NULL);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_event_trim(st, 0), 4);
	ts_event(&ev, RELM_EV_RELATIONSHIP_CREATED, rel);
	ck_assert_int_eq(relm_store_event_append(st, &ev, 1, &seq), 0);
	ck_assert_int_eq(seq, 26);
	ck_assert_int_eq(relm_store_commit(st), 0);
	relm_store_close(st);
}
END_TEST

/* A record with every field a type may carry, each a distinct value. */
static void full_record(struct relm_event *ev, int type)
{
	unsigned need, may;

	relm_event_init(ev, type);
	relm_event_fields(type, &need, &may);
	ev->has = need | may;
	ts_fill(ev->rel, 16, 0x10);
	ts_fill(ev->msg, 16, 0x20);
	ts_fill(ev->node, 16, 0x30);
	ts_fill(ev->proton, 16, 0x40);
	ts_fill(ev->device, 16, 0x50);
	ts_fill(ev->envelope, 16, 0x60);
	ts_fill(ev->ipk, 32, 0x70);
	ts_fill(ev->mailbox, 32, 0x90);
	ev->mailbox_seq = 1ull << 40;
	ev->epoch = 7;
	ev->pruned = 3;
	ev->status = RELM_STATUS_FAILED;
	ev->code = RELM_EPENDING_EXPIRED;
	ev->reason = "a \"quoted\"\nreason";
	ev->table = "messages";
	ev->row = 1ull << 33;
}

struct ev_got {
	int n;
	struct relm_event ev[RELM_EV_COUNT];
	char reason[RELM_EV_COUNT][RELM_EVENT_REASON_MAX + 1];
	char table[RELM_EV_COUNT][RELM_EVENT_TABLE_MAX + 1];
};

static int got_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	struct ev_got *g = ctx;
	(void)seq;
	(void)ts;
	ck_assert_int_lt(g->n, RELM_EV_COUNT);
	g->ev[g->n] = *ev;
	snprintf(g->reason[g->n], sizeof g->reason[0], "%s", ev->reason ? ev->reason : "");
	snprintf(g->table[g->n], sizeof g->table[0], "%s", ev->table ? ev->table : "");
	g->ev[g->n].table = g->table[g->n];
	g->n++;
	return 0;
}

/* The fields the record says it has, compared with the original's. */
static void same_record(const struct relm_event *a, const struct relm_event *b, const char *reason)
{
	ts_same_fields(a, b);
	if (a->has & RELM_EVF_REASON)
		ck_assert_str_eq(reason, b->reason);
	if (a->has & RELM_EVF_TABLE)
		ck_assert_str_eq(a->table, b->table);
}

/* Every type round trips with every field it may carry; a record of a
 * shape its type does not allow is refused and stores nothing; a row the
 * reader cannot read whole gives what it can. */
START_TEST(test_event_records)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_event ev;
	struct ev_got *got = calloc(1, sizeof *got);
	char longer[RELM_EVENT_REASON_MAX + 2];
	unsigned need, may;

	ck_assert_int_eq(relm_store_begin(st), 0);
	for (int t = RELM_EV_NONE + 1; t < RELM_EV_COUNT; t++) {
		full_record(&ev, t);
		ck_assert_int_eq(relm_event_check(&ev), 0);
		ck_assert_int_eq(relm_store_event_append(st, &ev, 100 + (uint64_t)t, NULL), 0);
	}
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_event_list(st, 0, 0, got_cb, got), 0);
	ck_assert_int_eq(got->n, RELM_EV_COUNT - 1);
	for (int t = RELM_EV_NONE + 1; t < RELM_EV_COUNT; t++) {
		full_record(&ev, t);
		same_record(&got->ev[t - 1], &ev, got->reason[t - 1]);
	}
	/* in the file: one column per field, NULL where a type has none */
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM events WHERE type='fork.resolved' AND pruned=3"
	                                 " AND rel IS NOT NULL AND msg IS NULL AND reason IS NULL"), 1);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM events WHERE type='envelope.undecryptable'"
	                                 " AND code='pending_expired' AND mailbox_seq=1099511627776"
	                                 " AND length(envelope)=16 AND length(mailbox)=32"), 1);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM events WHERE type='message.status'"
	                                 " AND status='failed' AND code IS NULL"), 1);

	/* refused shapes */
	ck_assert_int_eq(relm_store_begin(st), 0);
	relm_event_init(&ev, RELM_EV_NONE);
	ck_assert_int_eq(relm_store_event_append(st, &ev, 1, NULL), RELM_EINVAL);
	relm_event_init(&ev, RELM_EV_COUNT);
	ck_assert_int_eq(relm_store_event_append(st, &ev, 1, NULL), RELM_EINVAL);
	for (int t = RELM_EV_NONE + 1; t < RELM_EV_COUNT; t++) {
		relm_event_fields(t, &need, &may);
		for (unsigned bit = 1; bit <= RELM_EVF_ROW; bit <<= 1) {
			full_record(&ev, t);
			if (need & bit)
				ev.has &= ~bit;                 /* a field it must carry, missing */
			else if (!(may & bit))
				ev.has |= bit;                  /* a field it cannot carry */
			else
				continue;
			ck_assert_msg(relm_store_event_append(st, &ev, 1, NULL) == RELM_EINVAL,
			              "%s with has 0x%x", relm_event_name(t), ev.has);
		}
	}
	full_record(&ev, RELM_EV_MESSAGE_STATUS);
	ev.status = RELM_STATUS_COUNT;
	ck_assert_int_eq(relm_store_event_append(st, &ev, 1, NULL), RELM_EINVAL);
	full_record(&ev, RELM_EV_MESSAGE_STATUS);
	ev.reason = NULL;
	ck_assert_int_eq(relm_store_event_append(st, &ev, 1, NULL), RELM_EINVAL);
	memset(longer, 'x', sizeof longer - 1);
	longer[sizeof longer - 1] = '\0';
	ev.reason = longer;
	ck_assert_int_eq(relm_store_event_append(st, &ev, 1, NULL), RELM_EINVAL);
	longer[RELM_EVENT_REASON_MAX] = '\0';        /* at the limit: fine */
	ck_assert_int_eq(relm_store_event_append(st, &ev, 1, NULL), 0);
	full_record(&ev, RELM_EV_ENVELOPE_UNDECRYPTABLE);
	ev.code = 0;
	ck_assert_int_eq(relm_store_event_append(st, &ev, 1, NULL), RELM_EINVAL);
	/* a table is one of the store's names, [a-z_] */
	full_record(&ev, RELM_EV_STORE_CORRUPT_ROW);
	for (int k = 0; k < 4; k++) {
		static const char *const bad[] = { "", "Messages", "messages; DROP", NULL };
		ev.table = bad[k];
		ck_assert_int_eq(relm_store_event_append(st, &ev, 1, NULL), RELM_EINVAL);
	}
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM events"), RELM_EV_COUNT);

	/* damaged rows: a field of the wrong size, an unknown status or code,
	 * a field the type cannot carry, an unknown type */
	ck_assert_int_eq(sqlite3_exec(relm__store_db(st),
		"UPDATE events SET rel=x'0102' WHERE type='fork.detected';"
		"UPDATE events SET status='lost' WHERE type='message.status';"
		"UPDATE events SET code='no_such_code', msg=randomblob(16) WHERE type='envelope.undecryptable';"
		"UPDATE events SET type='device.renamed' WHERE type='clone.suspected';",
		NULL, NULL, NULL), SQLITE_OK);
	memset(got, 0, sizeof *got);
	ck_assert_int_eq(relm_store_event_list(st, 0, RELM_EV_COUNT - 1, got_cb, got), 0);
	for (int k = 0; k < got->n; k++) {
		const struct relm_event *e = &got->ev[k];
		full_record(&ev, k + 1);
		if (k + 1 == RELM_EV_FORK_DETECTED)
			ck_assert_uint_eq(e->has, ev.has & ~RELM_EVF_REL);
		else if (k + 1 == RELM_EV_MESSAGE_STATUS)
			ck_assert_uint_eq(e->has, ev.has & ~RELM_EVF_STATUS);
		else if (k + 1 == RELM_EV_ENVELOPE_UNDECRYPTABLE)
			ck_assert_uint_eq(e->has, ev.has & ~RELM_EVF_CODE);
		else if (k + 1 == RELM_EV_CLONE_SUSPECTED)
			ck_assert_int_eq(e->type, RELM_EV_NONE);
		else
			same_record(e, &ev, got->reason[k]);
	}
	free(got);
	relm_store_close(st);
}
END_TEST

int main(void)
{
	const struct ts_test tests[] = {
		{ "records", test_events, 10 },
		{ "records", test_event_records, 10 },
		{ "trim", test_events_trim_batch, 10 },
		{ "drain", test_drain_is_the_log, 60 },
		{ "drain", test_drain_behind, 10 },
	};
	return ts_run("store_events", tests, sizeof tests / sizeof tests[0]);
}

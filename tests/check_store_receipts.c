/*
 * check_store_receipts.c — a receipt's effects written many per statement
 * (lib/core/apply.c delivered_run, relm_store_msg_advance_many,
 * relm_store_outgoing_del_many): the store must end exactly as when the
 * same effects are applied one at a time.
 *
 * Randomised: the seed comes from RELM_SEED (default 0x5eed5eed) and is
 * printed in every failure.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "error.h"
#include "store/store.h"
#include "core/apply.h"
#include "util_store.h"

enum { NMSG = 90 };

static void msg_id(uint8_t id[16], int i)
{
	memset(id, 0, 16);
	id[0] = 0x5a;
	id[1] = (uint8_t)i;
}

/* proton 1, relationship 1 (ts_populate), and NMSG messages of ours in
 * every status (some received), most with a retransmission row. */
static struct relm_store *make_store(const char *path, const uint8_t rel[16])
{
	struct relm_store *st = ts_open_ok(path, 0, NULL);
	static const int statuses[] = { RELM_STATUS_QUEUED, RELM_STATUS_POSTED, RELM_STATUS_DELIVERED,
	                                 RELM_STATUS_FAILED, RELM_STATUS_POSTED };

	ts_populate(st);
	ck_assert_int_eq(relm_store_begin(st), 0);
	for (int i = 0; i < NMSG; i++) {
		struct relm_store_msg m = { .direction_in = i % 7 == 6, .origin = RELM_ORIGIN_SELF,
		                            .ts = (uint64_t)i, .created = (uint64_t)i };
		struct relm_store_outgoing o = { .kind = 1, .ts = (uint64_t)i, .body = (const uint8_t *)"b",
		                                 .body_len = 1, .tries = 1, .next_ms = 1000 + (uint64_t)i };
		m.status = m.direction_in ? RELM_STATUS_NONE : statuses[i % 5];
		memcpy(m.rel, rel, 16);
		msg_id(m.id, i);
		m.body = (const uint8_t *)"x";
		m.body_len = 1;
		ck_assert_int_eq(relm_store_msg_insert(st, &m), 1);
		if (i % 4 != 3) {
			memcpy(o.rel, rel, 16);
			msg_id(o.id, i);
			ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
		}
	}
	ck_assert_int_eq(relm_store_commit(st), 0);
	return st;
}

/* Every row of outgoing and outgoing_count, as one number. */
static int outgoing_sum(struct relm_store *st)
{
	return ts_exec_int(st, "SELECT coalesce(sum(unicode(substr(hex(id),3,2)) * 7 + tries + next_ms), 0)"
	                       " + count(*) * 100000 FROM outgoing") * 31 +
	       ts_exec_int(st, "SELECT coalesce(sum(n), 0) FROM outgoing_count");
}

static void push_pair(struct relm_effects *fx, int i)
{
	struct relm_fx *f = relm__fx_push(fx, RELM_FX_STATUS);
	msg_id(f->msg_id, i);
	f->status = RELM_STATUS_DELIVERED;
	f = relm__fx_push(fx, RELM_FX_OUT_DEL);
	msg_id(f->msg_id, i);
}

/* Random receipts — runs of (delivered, out_del) pairs longer and shorter
 * than a statement takes, ids of every status, received ones, unknown
 * ones and repeats, broken by other effects — applied whole to one store
 * and effect by effect to another: every table ends the same, events
 * (their order and seqs) included. */
START_TEST(test_receipt_runs_same_as_one_by_one)
{
	char path_b[600];
	uint8_t rel[16], da[32], db[32];
	struct relm_store_rel r;
	struct relm_store *a, *b;

	ts_mk_rel(&r, (uint8_t[16]){ 0 }, 1, NULL, 0);
	memcpy(rel, r.id, 16);
	snprintf(path_b, sizeof path_b, "%s/other/relm.db", ts_tmpdir);
	a = make_store(ts_dbpath, rel);
	b = make_store(path_b, rel);
	for (int round = 0; round < 6; round++) {
		struct relm_effects fx;
		int n = (int)(ts_prng() % 80) + 2;

		relm_effects_init(&fx);
		for (int k = 0; k < n; k++) {
			uint64_t r8 = ts_prng() % 16;
			if (r8 == 0) {
				struct relm_fx *f = relm__fx_push(&fx, RELM_FX_STATUS);   /* breaks a run */
				msg_id(f->msg_id, (int)(ts_prng() % NMSG));
				f->status = RELM_STATUS_POSTED;
			} else if (r8 == 1) {
				struct relm_fx *f = relm__fx_push(&fx, RELM_FX_OUT_DEL);  /* a lone one */
				msg_id(f->msg_id, (int)(ts_prng() % NMSG));
			} else {
				push_pair(&fx, (int)(ts_prng() % (NMSG + 10)));           /* 10 unknown ids */
			}
		}
		ck_assert_int_eq(relm_store_begin(a), 0);
		ck_assert_int_eq(relm_core_apply(a, rel, NULL, &fx, 500 + (uint64_t)round), 0);
		ck_assert_int_eq(relm_store_commit(a), 0);
		ck_assert_int_eq(relm_store_begin(b), 0);
		for (size_t i = 0; i < fx.n; i++) {
			struct relm_effects one = { .v = &fx.v[i], .n = 1, .cap = 1 };
			ck_assert_int_eq(relm_core_apply(b, rel, NULL, &one, 500 + (uint64_t)round), 0);
		}
		ck_assert_int_eq(relm_store_commit(b), 0);
		relm_effects_clear(&fx);
		ts_digest(a, da);
		ts_digest(b, db);
		ck_assert_msg(memcmp(da, db, 32) == 0, "round %d: the stores differ", round);
		ck_assert_int_eq(outgoing_sum(a), outgoing_sum(b));
		ck_assert_int_eq(ts_exec_int(a, "SELECT count(*) FROM events"), ts_exec_int(b, "SELECT count(*) FROM events"));
	}
	/* the receipts moved something (the test is not vacuous) */
	ck_assert_int_gt(ts_exec_int(a, "SELECT count(*) FROM events WHERE type='message.status' AND status='delivered'"), 10);
	relm_store_close(a);
	relm_store_close(b);
}
END_TEST

int main(void)
{
	const struct ts_test tests[] = {
		{ "receipts", test_receipt_runs_same_as_one_by_one, 30 },
	};
	return ts_run("store_receipts", tests, sizeof tests / sizeof tests[0]);
}

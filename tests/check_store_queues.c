/*
 * check_store_queues.c — what the store keeps for the engine between
 * steps (lib/store/outgoing.c, messages.c, rels.c, lib/core/apply.c): the
 * retransmission queue and its exact count (a sibling's try adds one to
 * a row's tries), relationship timers and the
 * mailbox list, the forward-only status rule of history, and an engine
 * step's effects written through lib/core/apply.  Randomised tests take
 * their seed from RELM_SEED (default 0x5eed5eed) and print it in every
 * failure.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "error.h"
#include "store/store.h"
#include "core/apply.h"
#include "util_store.h"

START_TEST(test_apply_effects)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_effects fx;
	struct relm_fx *f;
	struct relm_store_rel r;
	struct relm_store_msg g;
	uint8_t pid[16];

	ts_populate(st);
	ts_fill(pid, 16, 1);
	ts_mk_rel(&r, pid, 1, NULL, 0);
	relm_effects_init(&fx);
	f = relm__fx_push(&fx, RELM_FX_DELIVER);
	ts_fill(f->msg_id, 16, 200);
	f->data = malloc(5);
	memcpy(f->data, "hello", 5);
	f->len = 5;
	f->kind = 1;
	f->direction_in = 1;
	f->origin = RELM_ORIGIN_REMOTE;
	f->ts = 7;
	f = relm__fx_push(&fx, RELM_FX_DELIVER);   /* the same id again: de-duplicated */
	ts_fill(f->msg_id, 16, 200);
	f->direction_in = 1;
	f = relm__fx_push(&fx, RELM_FX_POST);
	ts_fill(f->msg_id, 16, 201);
	f->data = malloc(64);
	memset(f->data, 0xab, 64);
	f->len = 64;
	f = relm__fx_push(&fx, RELM_FX_DELIVER);   /* one of ours */
	ts_fill(f->msg_id, 16, 210);
	f->data = malloc(3);
	memcpy(f->data, "out", 3);
	f->len = 3;
	f->kind = 1;
	f->direction_in = 0;
	f->origin = RELM_ORIGIN_SELF;
	f = relm__fx_push(&fx, RELM_FX_STATUS);
	ts_fill(f->msg_id, 16, 210);
	f->status = RELM_STATUS_FAILED;
	snprintf(f->detail, sizeof f->detail, "a \"quoted\" reason");
	f = relm__fx_push(&fx, RELM_FX_STATUS);    /* a status for a message we received: ignored */
	ts_fill(f->msg_id, 16, 200);
	f->status = RELM_STATUS_DELIVERED;
	f = relm__fx_push(&fx, RELM_FX_EVENT);
	relm_event_init(&f->ev, RELM_EV_FORK_DETECTED);   /* no relationship: apply fills it in */
	memset(f->ev.node, 0xd3, 16);
	f->ev.has = RELM_EVF_NODE;
	f = relm__fx_push(&fx, RELM_FX_PENDING_ADD);
	ts_fill(f->hash, 16, 5);
	f->data = malloc(3);
	memcpy(f->data, "env", 3);
	f->len = 3;
	f = relm__fx_push(&fx, RELM_FX_PENDING_DEL);
	ts_fill(f->hash, 16, 6);

	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_core_apply(st, r.id, NULL, &fx, 100), RELM_ESTATE);   /* no remote address yet */
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_core_apply(st, r.id, "mb.example:7427/abc", &fx, 100), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	relm_effects_clear(&fx);

	ck_assert_int_eq(relm_store_msg_get(st, r.id, (uint8_t[16]){200,201,202,203,204,205,206,207,208,209,210,211,212,213,214,215}, &g), 0);
	ck_assert_int_eq(g.status, RELM_STATUS_NONE);
	ck_assert_int_eq(relm_store_msg_get(st, r.id, (uint8_t[16]){210,211,212,213,214,215,216,217,218,219,220,221,222,223,224,225}, &g), 0);
	ck_assert_int_eq(g.status, RELM_STATUS_FAILED);
	ck_assert_str_eq(g.reason, "a \"quoted\" reason");
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM events WHERE type='message.status'"), 1);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM outbox WHERE dest='mb.example:7427/abc' AND length(bytes)=64"), 1);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM pending"), 1);
	ck_assert_int_eq(ts_exec_int(st, "SELECT unread FROM relationships WHERE label='rel 1'"), 1);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM events WHERE type IN ('message.received','message.status','fork.detected')"
	                                 " AND rel=x'ee000000000000000000000000000001'"), 3);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM events WHERE type='fork.detected'"
	                                 " AND node=x'd3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3'"), 1);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM events WHERE type='message.status'"
	                                 " AND status='failed' AND reason='a \"quoted\" reason'"), 1);
	relm_store_close(st);
}
END_TEST

/* STATUS effects move only our own messages, only forward, in one probe:
 * every (from, to) pair of an outgoing message, a received message, and an
 * id with no history row (a receipt's), each checked for the row and for
 * the message.status event that a move (and only a move) appends. */
START_TEST(test_status_forward)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_effects fx;
	struct relm_fx *f;
	struct relm_store_rel r;
	struct relm_store_msg m, g;
	uint8_t pid[16];
	int k = 0;

	ts_populate(st);
	ts_fill(pid, 16, 1);
	ts_mk_rel(&r, pid, 1, NULL, 0);
	relm_effects_init(&fx);
	for (int in = 0; in <= 1; in++)
		for (int from = RELM_STATUS_NONE; from <= RELM_STATUS_FAILED; from++)
			for (int to = RELM_STATUS_NONE; to <= RELM_STATUS_FAILED; to++, k++) {
				int before, moves = !in && to != from && from != RELM_STATUS_DELIVERED &&
				                    from != RELM_STATUS_FAILED &&
				                    (to != RELM_STATUS_POSTED || from == RELM_STATUS_QUEUED);
				memset(&m, 0, sizeof m);
				memcpy(m.rel, r.id, 16);
				ts_fill(m.id, 16, (uint8_t)k);
				m.id[15] = 0xfe;
				m.direction_in = in;
				m.origin = in ? RELM_ORIGIN_REMOTE : RELM_ORIGIN_SELF;
				m.status = from;
				m.created = 10;
				ck_assert_int_eq(relm_store_begin(st), 0);
				ck_assert_int_eq(relm_store_msg_insert(st, &m), 1);
				ck_assert_int_eq(relm_store_commit(st), 0);
				before = ts_exec_int(st, "SELECT count(*) FROM events WHERE type='message.status'");
				relm_effects_reset(&fx);
				f = relm__fx_push(&fx, RELM_FX_STATUS);
				ck_assert_ptr_nonnull(f);
				memcpy(f->msg_id, m.id, 16);
				f->status = to;
				if (to == RELM_STATUS_FAILED)
					snprintf(f->detail, sizeof f->detail, "why %d", k);
				ck_assert_int_eq(relm_store_begin(st), 0);
				ck_assert_int_eq(relm_core_apply(st, r.id, "mb.example:7427/abc", &fx, 500), 0);
				ck_assert_int_eq(relm_store_commit(st), 0);
				ck_assert_int_eq(relm_store_msg_get(st, r.id, m.id, &g), 0);
				ck_assert_msg(g.status == (moves ? to : from), "in %d from %d to %d: status %d", in, from, to, g.status);
				ck_assert_uint_eq(g.updated, moves ? 500 : 10);
				if (moves && to == RELM_STATUS_FAILED)
					ck_assert_int_eq(atoi(g.reason + 4), k);
				else
					ck_assert_str_eq(g.reason, "");
				ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM events WHERE type='message.status'"),
				                 before + moves);
			}
	/* an id with no history row: nothing, and no error */
	relm_effects_reset(&fx);
	f = relm__fx_push(&fx, RELM_FX_STATUS);
	ck_assert_ptr_nonnull(f);
	memset(f->msg_id, 0x99, 16);
	f->status = RELM_STATUS_DELIVERED;
	{
		int before = ts_exec_int(st, "SELECT count(*) FROM events");
		ck_assert_int_eq(relm_store_begin(st), 0);
		ck_assert_int_eq(relm_core_apply(st, r.id, "mb.example:7427/abc", &fx, 600), 0);
		ck_assert_int_eq(relm_store_commit(st), 0);
		ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM events"), before);
	}
	relm_effects_clear(&fx);
	relm_store_close(st);
}
END_TEST

static int mbox_cb(void *ctx, const uint8_t id[32], uint64_t cursor)
{
	int *n = ctx;
	if (id[31] == 0x77 && id[15] == 1)
		ck_assert_uint_eq(cursor, 5);
	else
		ck_assert_uint_eq(cursor, 0);
	++*n;
	return 0;
}

START_TEST(test_timers_mailboxes)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_rel r;
	struct relm_store_invite inv;
	uint8_t pid[16], sk[64];
	uint64_t next = 1;
	int n = 0;

	ts_populate(st);
	ts_fill(pid, 16, 1);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ts_mk_rel(&r, pid, 0, NULL, 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, r.id, 500), 0);
	ts_mk_rel(&r, pid, 1, NULL, 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, r.id, 300), 0);
	ck_assert_int_eq(relm_store_cursor_set(st, r.mailbox_id, 5), 0);
	memset(&inv, 0, sizeof inv);
	memcpy(inv.proton, pid, 16);
	inv.spk_id = 1;
	ts_fill(inv.mailbox_id, 32, 40);
	ts_fill(inv.mailbox_sk, 64, 41);
	inv.expires = 1000;
	ck_assert_int_eq(relm_store_invite_put(st, &inv), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 300);
	ck_assert_int_eq(relm_store_rel_due(st, 299, 0, ts_due_cb, &n), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(relm_store_rel_due(st, 400, 0, ts_due_cb, &n), 0);
	ck_assert_int_eq(n, 1);
	n = 0;
	ck_assert_int_eq(relm_store_rel_due(st, 1000, 0, ts_due_cb, &n), 0);
	ck_assert_int_eq(n, 2);
	n = 0;
	ck_assert_int_eq(relm_store_mailbox_list(st, 999, mbox_cb, &n), 0);
	ck_assert_int_eq(n, 3);
	n = 0;
	ck_assert_int_eq(relm_store_mailbox_list(st, 1001, mbox_cb, &n), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(relm_store_mailbox_secret(st, inv.mailbox_id, sk), 0);
	ck_assert_int_eq(memcmp(sk, inv.mailbox_sk, 64), 0);
	/* a relationship's key is in its state blob only (v12): relm_core's */
	ck_assert_int_eq(relm_store_mailbox_secret(st, r.mailbox_id, sk), RELM_ENOTFOUND);
	{
		uint8_t nobody[32] = { 0 };
		ck_assert_int_eq(relm_store_mailbox_secret(st, nobody, sk), RELM_ENOTFOUND);
	}
	sodium_memzero(sk, sizeof sk);
	relm_store_close(st);
}
END_TEST

struct req_seen {
	int n;
	uint8_t first_dev[16];
	uint64_t first_next;
	size_t first_len;
};

static int req_cb(void *ctx, const struct relm_store_request *r)
{
	struct req_seen *s = ctx;

	if (s->n++ == 0) {
		memcpy(s->first_dev, r->dev, 16);
		s->first_next = r->next_ms;
		s->first_len = r->len;
	}
	return 0;
}

/* Pending requests (v11): put replaces, del, list and count by proton,
 * and they go with their relationship. */
START_TEST(test_requests)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_rel r0, r1;
	struct relm_store_request q;
	struct req_seen seen;
	uint8_t pid[16], other[16], data[40];
	uint64_t n = 9;

	ts_populate(st);
	ts_fill(pid, 16, 1);
	ts_fill(other, 16, 99);
	ts_mk_rel(&r0, pid, 0, NULL, 0);
	ts_mk_rel(&r1, pid, 1, NULL, 0);
	memset(&q, 0, sizeof q);
	memset(data, 5, sizeof data);
	q.data = data;
	q.len = sizeof data;
	q.next_ms = 100;
	ck_assert_int_eq(relm_store_begin(st), 0);
	for (int k = 0; k < 3; k++) {
		memcpy(q.rel, k < 2 ? r0.id : r1.id, 16);
		ts_fill(q.id, 16, (uint8_t)(60 + k));
		ck_assert_int_eq(relm_store_request_put(st, &q), 0);
	}
	/* the same id again: replaced (the device it went to, when again) */
	memcpy(q.rel, r0.id, 16);
	ts_fill(q.id, 16, 60);
	ts_fill(q.dev, 16, 3);
	q.next_ms = 777;
	q.len = 20;
	ck_assert_int_eq(relm_store_request_put(st, &q), 0);
	q.len = 0;
	ck_assert_int_eq(relm_store_request_put(st, &q), RELM_EINVAL);
	ck_assert_int_eq(relm_store_commit(st), 0);

	ck_assert_int_eq(relm_store_request_count(st, pid, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(relm_store_request_count(st, other, &n), 0);
	ck_assert_uint_eq(n, 0);
	memset(&seen, 0, sizeof seen);
	ck_assert_int_eq(relm_store_request_list(st, pid, req_cb, &seen), 0);
	ck_assert_int_eq(seen.n, 3);
	/* (rel, id) order: r0's first request is the one replaced */
	ck_assert_uint_eq(seen.first_next, memcmp(r0.id, r1.id, 16) < 0 ? 777 : 100);

	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_request_del(st, r0.id, q.id), 0);
	ck_assert_int_eq(relm_store_request_del(st, r0.id, q.id), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_rel_delete(st, r1.id), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_request_count(st, pid, &n), 0);
	ck_assert_uint_eq(n, 1);                        /* r1's went with it */
	relm_store_close(st);
}
END_TEST

START_TEST(test_outgoing_count)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_rel r0, r1;
	struct relm_store_outgoing o;
	uint8_t pid[16];
	uint64_t next = 0;

	ts_populate(st);
	ts_fill(pid, 16, 1);
	ts_mk_rel(&r0, pid, 0, NULL, 0);
	ts_mk_rel(&r1, pid, 1, NULL, 0);
	ck_assert_uint_eq(ts_out_count(st, r0.id), 0);
	memset(&o, 0, sizeof o);
	o.body = (const uint8_t *)"body";
	o.body_len = 4;
	o.next_ms = 500;
	ck_assert_int_eq(relm_store_begin(st), 0);
	for (int k = 0; k < 7; k++) {
		memcpy(o.rel, k < 5 ? r0.id : r1.id, 16);
		ts_fill(o.id, 16, (uint8_t)(40 + k));
		ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	}
	ck_assert_uint_eq(ts_out_count(st, r0.id), 5);   /* visible inside the step */
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_uint_eq(ts_out_count(st, r0.id), 5);
	ck_assert_uint_eq(ts_out_count(st, r1.id), 2);

	/* the same (rel, id) again is an update: the count stays, the row changes */
	memcpy(o.rel, r0.id, 16);
	ts_fill(o.id, 16, 40);
	o.next_ms = 100;
	o.tries = 3;
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_uint_eq(ts_out_count(st, r0.id), 5);
	ck_assert_int_eq(relm_store_outgoing_next(st, r0.id, &next), 0);
	ck_assert_uint_eq(next, 100);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM outgoing WHERE tries=3"), 1);

	/* delete, and delete of a missing row */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_outgoing_del(st, r0.id, o.id), 0);
	ck_assert_int_eq(relm_store_outgoing_del(st, r0.id, o.id), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_uint_eq(ts_out_count(st, r0.id), 4);

	/* a rolled-back step, and a rolled-back step inside a batch */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ts_fill(o.id, 16, 90);
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_uint_eq(ts_out_count(st, r0.id), 4);
	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ts_fill(o.id, 16, 91);
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	ts_fill(o.id, 16, 41);
	ck_assert_int_eq(relm_store_outgoing_del(st, r0.id, o.id), 0);
	ck_assert_uint_eq(ts_out_count(st, r0.id), 5);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_uint_eq(ts_out_count(st, r0.id), 5);
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	ck_assert_uint_eq(ts_out_count(st, r0.id), 5);
	ck_assert_int_eq(ts_count_mismatches(st), 0);

	/* v13: no trigger keeps the count; every writer tells it — many
	 * deleted in one statement, a sibling's try (a new row, then the same
	 * row again), a plain add of a row already there, the wipe of a
	 * relationship held without state — in one batch whose steps commit
	 * and roll back, the count read inside it as it goes */
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM sqlite_master WHERE type='trigger'"), 0);
	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	{
		uint8_t ids[3][16];
		ts_fill(ids[0], 16, 42);
		ts_fill(ids[1], 16, 43);
		ts_fill(ids[2], 16, 77);                          /* no such row */
		ck_assert_int_eq(relm_store_outgoing_del_many(st, r0.id, (const uint8_t (*)[16])ids, 3), 2);
	}
	ck_assert_uint_eq(ts_out_count(st, r0.id), 3);
	memcpy(o.rel, r1.id, 16);
	ts_fill(o.id, 16, 92);
	ck_assert_int_eq(relm_store_outgoing_add_try(st, &o), 0);
	ck_assert_int_eq(relm_store_outgoing_add_try(st, &o), 0);
	ck_assert_int_eq(relm_store_outgoing_add(st, &o), 0);
	ck_assert_uint_eq(ts_out_count(st, r1.id), 3);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_wipe(st, r1.id, pid, 1000), 0);
	ck_assert_uint_eq(ts_out_count(st, r1.id), 0);
	ck_assert_int_eq(relm_store_rollback(st), 0);             /* the wipe undone */
	ck_assert_uint_eq(ts_out_count(st, r1.id), 3);
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	ck_assert_uint_eq(ts_out_count(st, r0.id), 3);
	ck_assert_uint_eq(ts_out_count(st, r1.id), 3);
	ck_assert_int_eq(ts_exec_int(st, "SELECT tries FROM outgoing WHERE id=X'5c5d5e5f606162636465666768696a6b'"),
	                 (int)o.tries + 1);                     /* the try counted once, the add changed nothing */
	ck_assert_int_eq(ts_count_mismatches(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_wipe(st, r1.id, pid, 1000), 0);
	memcpy(o.rel, r1.id, 16);
	ts_fill(o.id, 16, 93);
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);     /* after the wipe: counted from 0 */
	ck_assert_uint_eq(ts_out_count(st, r1.id), 1);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_uint_eq(ts_out_count(st, r1.id), 1);
	ck_assert_int_eq(ts_count_mismatches(st), 0);
	/* a relationship deleted in the transaction that staged its count:
	 * nothing is written for it at the commit */
	{
		struct relm_store_rel r2;
		ts_mk_rel(&r2, pid, 7, NULL, 0);
		ck_assert_int_eq(relm_store_begin(st), 0);
		ck_assert_int_eq(relm_store_rel_put(st, &r2), 0);
		memcpy(o.rel, r2.id, 16);
		ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
		ck_assert_uint_eq(ts_out_count(st, r2.id), 1);
		ck_assert_int_eq(relm_store_rel_delete(st, r2.id), 0);
		ck_assert_int_eq(relm_store_commit(st), 0);
		ck_assert_uint_eq(ts_out_count(st, r2.id), 0);
		ck_assert_int_eq(ts_count_mismatches(st), 0);
	}

	/* a relationship deleted (no API yet: what a later one will do) takes
	 * its outgoing rows and its count row along */
	{
		sqlite3_stmt *q;
		ck_assert_int_eq(sqlite3_prepare_v2(relm__store_db(st), "DELETE FROM relationships WHERE id=?1",
		                                    -1, &q, NULL), SQLITE_OK);
		sqlite3_bind_blob(q, 1, r0.id, 16, SQLITE_STATIC);
		ck_assert_int_eq(sqlite3_step(q), SQLITE_DONE);
		sqlite3_finalize(q);
	}
	ck_assert_uint_eq(ts_out_count(st, r0.id), 0);
	ck_assert_uint_eq(ts_out_count(st, r1.id), 1);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM outgoing_count"), 1);
	ck_assert_int_eq(ts_count_mismatches(st), 0);
	/* and a proton with it all */
	ck_assert_int_eq(sqlite3_exec(relm__store_db(st), "DELETE FROM protons", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_uint_eq(ts_out_count(st, r1.id), 0);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM outgoing_count"), 0);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM outgoing"), 0);
	relm_store_close(st);
}
END_TEST

struct out_seen {
	int n;
	uint8_t first[16];
	size_t body_len;
};

static int out_cb(void *ctx, const struct relm_store_outgoing *o)
{
	struct out_seen *os = ctx;
	if (os->n++ == 0) {
		memcpy(os->first, o->id, 16);
		os->body_len = o->body_len;
	}
	return 0;
}

START_TEST(test_outgoing_queue)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_rel r;
	struct relm_store_outgoing o;
	struct out_seen seen;
	uint8_t pid[16];
	uint64_t n = 0, next = 0;

	ts_populate(st);
	ts_fill(pid, 16, 1);
	ts_mk_rel(&r, pid, 1, NULL, 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	for (int k = 0; k < 5; k++) {
		memset(&o, 0, sizeof o);
		memcpy(o.rel, r.id, 16);
		ts_fill(o.id, 16, (uint8_t)(100 + k));
		o.kind = 1;
		o.ts = 1000;
		o.body = (const uint8_t *)"body";
		o.body_len = 4;
		o.tries = 1;
		o.next_ms = 5000 - (uint64_t)k * 1000;   /* the last one is due first */
		ts_fill(o.last_node, 16, 7);
		ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	}
	o.next_ms = 100;                          /* replace: same (rel, id) */
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_outgoing_count(st, r.id, &n), 0);
	ck_assert_uint_eq(n, 5);
	ck_assert_int_eq(relm_store_outgoing_next(st, r.id, &next), 0);
	ck_assert_uint_eq(next, 100);
	memset(&seen, 0, sizeof seen);
	ck_assert_int_eq(relm_store_outgoing_due(st, r.id, 3000, 0, out_cb, &seen), 0);
	ck_assert_int_eq(seen.n, 3);               /* 100, 2000, 3000 */
	ck_assert(memcmp(seen.first, o.id, 16) == 0);
	ck_assert_uint_eq(seen.body_len, 4);
	memset(&seen, 0, sizeof seen);
	ck_assert_int_eq(relm_store_outgoing_due(st, r.id, 3000, 1, out_cb, &seen), 0);
	ck_assert_int_eq(seen.n, 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_outgoing_del(st, r.id, o.id), 0);
	ck_assert_int_eq(relm_store_outgoing_del(st, r.id, o.id), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_outgoing_count(st, r.id, &n), 0);
	ck_assert_uint_eq(n, 4);
	relm_store_close(st);
}
END_TEST

struct out_row {
	uint8_t id[16];
	int found;
	struct relm_store_outgoing o;
	char body[16];
};

static int row_cb(void *ctx, const struct relm_store_outgoing *o)
{
	struct out_row *w = ctx;
	if (memcmp(o->id, w->id, 16) != 0)
		return 0;
	w->found++;
	w->o = *o;
	w->o.body = NULL;
	ck_assert_uint_lt(o->body_len, sizeof w->body);
	memcpy(w->body, o->body, o->body_len);
	w->body[o->body_len] = 0;
	return 0;
}

static struct out_row row_of(struct relm_store *st, const uint8_t rel[16], const uint8_t id[16])
{
	struct out_row w;
	memset(&w, 0, sizeof w);
	memcpy(w.id, id, 16);
	ck_assert_int_eq(relm_store_outgoing_due(st, rel, UINT64_MAX, 0, row_cb, &w), 0);
	return w;
}

static void add_try(struct relm_store *st, const struct relm_store_outgoing *o)
{
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_outgoing_add_try(st, o), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
}

/* A sibling's try (ratchet.md §6.4): without a row it is the row as given;
 * on a row it counts one more try — kind, ts and body stay, next_ms never
 * moves earlier, last_node is the try's — and the count of rows stays. */
START_TEST(test_outgoing_add_try)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_rel r;
	struct relm_store_outgoing o;
	struct out_row w;
	uint8_t pid[16];

	ts_populate(st);
	ts_fill(pid, 16, 1);
	ts_mk_rel(&r, pid, 1, NULL, 0);
	memset(&o, 0, sizeof o);
	memcpy(o.rel, r.id, 16);
	ts_fill(o.id, 16, 60);
	o.kind = 1;
	o.ts = 1000;
	o.body = (const uint8_t *)"first";
	o.body_len = 5;
	o.tries = 1;
	o.next_ms = 9000;
	ts_fill(o.last_node, 16, 7);
	add_try(st, &o);
	w = row_of(st, r.id, o.id);
	ck_assert_int_eq(w.found, 1);
	ck_assert_uint_eq(w.o.tries, 1);
	ck_assert_uint_eq(w.o.next_ms, 9000);
	ck_assert_uint_eq(ts_out_count(st, r.id), 1);

	/* two more tries, one with a later deadline, one with an earlier */
	o.body = (const uint8_t *)"other";
	o.kind = 2;
	o.ts = 2000;
	o.next_ms = 20000;
	ts_fill(o.last_node, 16, 8);
	add_try(st, &o);
	o.next_ms = 15000;
	ts_fill(o.last_node, 16, 9);
	add_try(st, &o);
	w = row_of(st, r.id, o.id);
	ck_assert_int_eq(w.found, 1);
	ck_assert_uint_eq(w.o.tries, 3);
	ck_assert_uint_eq(w.o.next_ms, 20000);
	ck_assert(memcmp(w.o.last_node, o.last_node, 16) == 0);
	ck_assert_int_eq(w.o.kind, 1);
	ck_assert_uint_eq(w.o.ts, 1000);
	ck_assert_str_eq(w.body, "first");
	ck_assert_uint_eq(ts_out_count(st, r.id), 1);

	/* a put is still the whole row as given */
	o.tries = 5;
	o.next_ms = 100;
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	w = row_of(st, r.id, o.id);
	ck_assert_uint_eq(w.o.tries, 5);
	ck_assert_uint_eq(w.o.next_ms, 100);
	ck_assert_str_eq(w.body, "other");
	ck_assert_int_eq(ts_count_mismatches(st), 0);
	relm_store_close(st);
}
END_TEST

int main(void)
{
	const struct ts_test tests[] = {
		{ "relationships", test_timers_mailboxes, 10 },
		{ "messages", test_status_forward, 10 },
		{ "outgoing_acks", test_outgoing_queue, 10 },
		{ "outgoing_acks", test_outgoing_count, 10 },
		{ "outgoing_acks", test_requests, 10 },
		{ "outgoing_acks", test_outgoing_add_try, 10 },
		{ "effects", test_apply_effects, 10 },
	};
	return ts_run("store_queues", tests, sizeof tests / sizeof tests[0]);
}

/*
 * check_core.c — the engine bound to the store (lib/core/core.h): whole daemons
 * in one process over an in-memory mailbox network (tests/util_world.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_rand.h"
#include "util_world.h"
#include "util_store.h"
#include "core/core.h"
#include "engine/rel_state.h"
#include "wire/invite.h"
#include "wire/mailbox_proto.h"
#include "error.h"
#include <sqlite3.h>

static uint64_t clock_ms;
static struct tu_daemon A, B;
static struct tu_net net;
static uint8_t pa[16], pb[16];

static void setup(void)
{
	uint8_t ipk[32];
	clock_ms = 1700000000000ull;
	memset(&net, 0, sizeof net);
	tu_daemon_mkdir(&A, "alice");
	tu_daemon_mkdir(&B, "bob");
	ck_assert_int_eq(tu_daemon_open(&A, &clock_ms, 1, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(tu_daemon_open(&B, &clock_ms, 2, "127.0.0.2:7427"), 0);
	ck_assert_int_eq(relm_core_proton_create(A.core, "alice", pa, ipk), 0);
	ck_assert_int_eq(relm_core_proton_create(B.core, "bob", pb, ipk), 0);
}

static void teardown(void)
{
	tu_daemon_close(&A);
	tu_daemon_close(&B);
	tu_daemon_rmdir(&A);
	tu_daemon_rmdir(&B);
	tu_net_free(&net);
}

static void connect_ab(uint8_t rel_b[16], int multi)
{
	char inv[RELM_INVITE_TEXT_MAX];
	struct tu_daemon *ds[2] = { &A, &B };
	ck_assert_int_eq(relm_core_invite_create(A.core, pa, multi, 0, inv, sizeof inv, NULL), 0);
	ck_assert(strncmp(inv, "relm:", 5) == 0);
	ck_assert_int_eq(relm_core_invite_accept(B.core, pb, inv, strlen(inv), "alice", rel_b), 0);
	tu_settle(ds, 2, &net, 5, 3000);
}

static int count_rels_cb(void *ctx, const struct relm_store_rel *r)
{
	(void)r;
	(*(int *)ctx)++;
	return 0;
}

static int count_rels(struct tu_daemon *d, const uint8_t proton[16])
{
	int n = 0;
	ck_assert_int_eq(relm_store_rel_list(d->st, proton, NULL, 0, count_rels_cb, &n), 0);
	return n;
}

struct ev_count {
	const char *type;
	int n;
	char last[256];
};

/* Events of one type; last = the last one's reason code name, if any. */
static int ev_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	struct ev_count *e = ctx;
	(void)seq;
	(void)ts;
	if (ev->type == relm_event_type(e->type)) {
		e->n++;
		snprintf(e->last, sizeof e->last, "%s",
		         ev->has & RELM_EVF_CODE ? relm_errname(ev->code) : "");
	}
	return 0;
}

static int count_events(struct tu_daemon *d, const char *type, char *last)
{
	struct ev_count e = { type, 0, "" };
	ck_assert_int_eq(relm_store_event_list(d->st, 0, 0, ev_cb, &e), 0);
	if (last)
		strcpy(last, e.last);
	return e.n;
}

START_TEST(test_end_to_end)
{
	uint8_t rb[16], id[16];
	struct tu_daemon *ds[2] = { &A, &B };
	int was_new;

	connect_ab(rb, 0);
	ck_assert_int_eq(count_rels(&A, pa), 1);
	ck_assert_int_eq(count_events(&A, "relationship.created", NULL), 1);
	ck_assert_int_eq(count_events(&B, "relationship.created", NULL), 1);
	for (int k = 0; k < 20; k++) {
		char body[32];
		snprintf(body, sizeof body, "b to a %d", k);
		ck_assert_int_eq(relm_core_message_send(B.core, rb, body, strlen(body), NULL, id, &was_new), 0);
		ck_assert_int_eq(was_new, 1);
		if (k % 4 == 0)
			tu_settle(ds, 2, &net, 1, 1000);
	}
	tu_settle(ds, 2, &net, 10, 3000);
	ck_assert_int_eq(tu_history_count(&A, rb, 1), 20);
	ck_assert_int_eq(tu_history_count(&B, rb, 0), 20);
	/* and back */
	for (int k = 0; k < 20; k++)
		ck_assert_int_eq(relm_core_message_send(A.core, rb, "a to b", 6, NULL, id, &was_new), 0);
	tu_settle(ds, 2, &net, 10, 3000);
	ck_assert_int_eq(tu_history_count(&B, rb, 1), 20);
	{
		struct relm_store_msg m;
		ck_assert_int_eq(relm_store_msg_get(A.st, rb, id, &m), 0);
		ck_assert_int_eq(m.status, RELM_STATUS_DELIVERED);
	}
	ck_assert_int_ge(count_events(&A, "message.received", NULL), 20);
}
END_TEST

/* The engine never writes into the environment it is given: two daemons
 * whose steps run on the same struct relm_env leave it byte for byte as
 * it was (it is shared by simulated devices in one process). */
START_TEST(test_env_is_not_modified)
{
	struct relm_env before = A.env;
	struct relm_core *c2 = NULL;
	uint8_t rb[16], id[16];
	int was_new;

	ck_assert_int_eq(relm_core_new(&c2, A.st, &A.env, "127.0.0.1:7427", RELM_MODE_TREE), 0);
	ck_assert(memcmp(&before, &A.env, sizeof before) == 0);
	connect_ab(rb, 0);
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "hi", 2, NULL, id, &was_new), 0);
	ck_assert_int_eq(tu_pump(&B, &net), 0);
	ck_assert_int_eq(tu_deliver(&A, &net), 0);
	ck_assert(memcmp(&before, &A.env, sizeof before) == 0);
	ck_assert_ptr_null(A.env.history_has);
	relm_core_free(c2);
}
END_TEST

START_TEST(test_idempotent_send)
{
	uint8_t rb[16], id[16], got[16];
	int was_new;
	struct tu_daemon *ds[2] = { &A, &B };

	connect_ab(rb, 0);
	memset(id, 0x42, sizeof id);
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "once", 4, id, got, &was_new), 0);
	ck_assert_int_eq(was_new, 1);
	ck_assert(memcmp(id, got, 16) == 0);
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "once", 4, id, got, &was_new), 0);
	ck_assert_int_eq(was_new, 0);
	tu_settle(ds, 2, &net, 5, 3000);
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "once", 4, id, got, &was_new), 0);
	ck_assert_int_eq(was_new, 0);
	ck_assert_int_eq(tu_history_count(&A, rb, 1), 1);
}
END_TEST

START_TEST(test_replayed_initial_makes_nothing)
{
	uint8_t rb[16];
	struct tu_daemon *ds[2] = { &A, &B };
	struct tu_mail first;

	connect_ab(rb, 1);
	/* the initial envelope is the first mail ever posted: replay it as is */
	first = net.v[0];
	for (int k = 0; k < 3; k++) {
		struct tu_mail m = first;
		m.buf = malloc(first.len);
		memcpy(m.buf, first.buf, first.len);
		if (k == 2)
			m.buf[first.len - 20] ^= 1;   /* and altered */
		m.seq = 100 + (uint64_t)k;
		if (net.n == net.cap) {
			net.cap *= 2;
			net.v = realloc(net.v, net.cap * sizeof *net.v);
		}
		net.v[net.n++] = m;
	}
	tu_settle(ds, 2, &net, 3, 3000);
	ck_assert_int_eq(count_rels(&A, pa), 1);
}
END_TEST

/* The replay guard's rows go with their invite (store v14), which is sound
 * only because every initial envelope finds its invite before the guard is
 * asked (ratchet.md §8.3).  relm has no way to delete a relationship, so
 * the guard is what refuses a replayed hello only once the relationship's
 * row is gone: removed here by hand.  While the multi-use invite lives the
 * guard refuses the replay; once the invite has expired and been swept,
 * with the guard's row, the replay finds no invite and makes nothing. */
START_TEST(test_guard_goes_with_invite)
{
	char inv[RELM_INVITE_TEXT_MAX], last[256];
	uint8_t rb[16], mbox[32];
	struct tu_daemon *ds[2] = { &A, &B };
	struct tu_mail hello;
	uint64_t cur = 0;

	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 1, 60, inv, sizeof inv, mbox), 0);
	ck_assert_int_eq(relm_core_invite_accept(B.core, pb, inv, strlen(inv), "alice", rb), 0);
	tu_settle(ds, 2, &net, 5, 3000);
	ck_assert_int_eq(count_rels(&A, pa), 1);
	hello = net.v[0];
	ck_assert(memcmp(hello.mailbox, mbox, 32) == 0);
	ck_assert_int_eq(ts_exec_int(A.st, "SELECT count(*) FROM replay_guard"), 1);

	ck_assert_int_eq(relm_store_begin(A.st), 0);
	ck_assert_int_eq(relm_store_rel_delete(A.st, rb), 0);
	ck_assert_int_eq(relm_store_commit(A.st), 0);
	ck_assert_int_eq(count_rels(&A, pa), 0);
	ck_assert_int_eq(relm_store_cursor_get(A.st, mbox, &cur), 0);
	ck_assert_int_eq(relm_core_envelope(A.core, mbox, ++cur, hello.buf, hello.len), 0);
	ck_assert_int_eq(count_rels(&A, pa), 0);
	ck_assert_int_ge(count_events(&A, "envelope.undecryptable", last), 1);
	ck_assert_str_eq(last, "replay");

	clock_ms += 61000;
	ck_assert_int_eq(relm_core_invites_expire(A.core, NULL, NULL), 1);
	ck_assert_int_eq(ts_exec_int(A.st, "SELECT count(*) FROM replay_guard"), 0);
	ck_assert_int_eq(relm_core_envelope(A.core, mbox, ++cur, hello.buf, hello.len), 0);
	ck_assert_int_eq(count_rels(&A, pa), 0);
	count_events(&A, "envelope.undecryptable", last);
	ck_assert_str_eq(last, "not_found");
}
END_TEST

START_TEST(test_single_use_invite)
{
	struct tu_daemon C;
	uint8_t pc[16], ipk[32], rb[16], rc_[16];
	char inv[RELM_INVITE_TEXT_MAX], last[256];
	struct tu_daemon *ds[3] = { &A, &B, &C };

	tu_daemon_mkdir(&C, "carol");
	ck_assert_int_eq(tu_daemon_open(&C, &clock_ms, 3, "127.0.0.3:7427"), 0);
	ck_assert_int_eq(relm_core_proton_create(C.core, "carol", pc, ipk), 0);
	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 0, 60, inv, sizeof inv, NULL), 0);
	ck_assert_int_eq(relm_core_invite_accept(B.core, pb, inv, strlen(inv), NULL, rb), 0);
	ck_assert_int_eq(relm_core_invite_accept(C.core, pc, inv, strlen(inv), NULL, rc_), 0);
	tu_settle(ds, 3, &net, 5, 3000);
	ck_assert_int_eq(count_rels(&A, pa), 1);
	/* carol's hello (and its retransmissions) are refused as replays */
	ck_assert_int_ge(count_events(&A, "envelope.undecryptable", last), 1);
	ck_assert_str_eq(last, "replay");
	/* an expired invite is refused by the accepter */
	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 1, 1, inv, sizeof inv, NULL), 0);
	clock_ms += 2000;
	ck_assert_int_eq(relm_core_invite_accept(C.core, pc, inv, strlen(inv), NULL, rc_), RELM_EEXPIRED);
	tu_daemon_close(&C);
	tu_daemon_rmdir(&C);
}
END_TEST

START_TEST(test_bad_envelopes_advance_cursor)
{
	uint8_t rb[16], junk[300], mb[32];
	struct relm_store_rel r;
	uint64_t cur = 0;

	connect_ab(rb, 0);
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(relm_store_rel_get(A.st, rb, &r, 0), 0);
	memcpy(mb, r.mailbox_id, 32);
	relm_store_rel_clear(&r);
	ck_assert_int_eq(relm_store_cursor_get(A.st, mb, &cur), 0);
	int before = count_events(&A, "envelope.undecryptable", NULL);
	for (size_t n = 0; n < sizeof junk; n += 37) {
		tu_rand_bytes(junk, n);
		ck_assert_int_eq(relm_core_envelope(A.core, mb, ++cur, junk, n), 0);
	}
	ck_assert_int_eq(count_events(&A, "envelope.undecryptable", NULL), before + 9);
	{
		uint64_t c2;
		ck_assert_int_eq(relm_store_cursor_get(A.st, mb, &c2), 0);
		ck_assert_uint_eq(c2, cur);
	}
	/* redelivery of an old position is ignored */
	ck_assert_int_eq(relm_core_envelope(A.core, mb, 1, junk, 10), 0);
	ck_assert_int_eq(count_events(&A, "envelope.undecryptable", NULL), before + 9);
}
END_TEST

/* A relationship's mailbox subscription is signed with the key from its
 * state blob (schema v12 keeps no copy in the row), on both sides, and
 * the signature verifies under the mailbox id; its read key is the blob
 * key's; a mailbox of nobody's is refused by all three calls. */
START_TEST(test_rel_mailbox_signs)
{
	uint8_t rb[16], sig[64], nobody[32] = { 0 };
	static const uint8_t msg[] = "subscribe";
	struct relm_store_rel r;
	struct tu_daemon *d[2] = { &A, &B };

	connect_ab(rb, 0);
	for (int i = 0; i < 2; i++) {
		memset(&r, 0, sizeof r);
		ck_assert_int_eq(relm_store_rel_get(d[i]->st, rb, &r, 0), 0);
		ck_assert_int_eq(relm_core_mailbox_sign(d[i]->core, r.mailbox_id, msg, sizeof msg, sig), 0);
		ck_assert_int_eq(crypto_sign_verify_detached(sig, msg, sizeof msg, r.mailbox_id), 0);
		ck_assert_int_eq(relm_core_mailbox_ours(d[i]->core, r.mailbox_id), 0);
		{
			/* the read key is the one of the blob's secret key */
			uint8_t realm[32], key[32], want[32], *state = NULL, id[16];
			struct relm_rel *rel = NULL;
			size_t len = 0;
			memset(realm, 0x5a, sizeof realm);
			ck_assert_int_eq(relm_core_mailbox_read_key(d[i]->core, r.mailbox_id, realm, key), 0);
			ck_assert_int_eq(relm_store_rel_state_by_mailbox(d[i]->st, r.mailbox_id, id, &state, &len), 0);
			ck_assert_int_eq(relm_rel_decode(&rel, state, len), 0);
			relm_mbox_read_key(want, rel->mbox_sk, realm);
			ck_assert_int_eq(memcmp(key, want, 32), 0);
			relm_rel_free(rel);
			relm_store_buf_free(state, len);
		}
		relm_store_rel_clear(&r);
	}
	ck_assert_int_eq(relm_core_mailbox_sign(A.core, nobody, msg, sizeof msg, sig), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_core_mailbox_ours(A.core, nobody), RELM_ENOTFOUND);
	{
		uint8_t realm[32] = { 0 }, key[32];
		ck_assert_int_eq(relm_core_mailbox_read_key(A.core, nobody, realm, key), RELM_ENOTFOUND);
	}
}
END_TEST

START_TEST(test_restart_midway)
{
	uint8_t rb[16], id[16];
	int was_new;
	struct tu_daemon *ds[2] = { &A, &B };

	connect_ab(rb, 0);
	for (int k = 0; k < 10; k++)
		ck_assert_int_eq(relm_core_message_send(B.core, rb, "before", 6, NULL, id, &was_new), 0);
	ck_assert_int_eq(tu_pump(&B, &net), 0);
	tu_daemon_close(&A);
	tu_daemon_close(&B);
	ck_assert_int_eq(tu_daemon_open(&A, &clock_ms, 11, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(tu_daemon_open(&B, &clock_ms, 12, "127.0.0.2:7427"), 0);
	for (int k = 0; k < 10; k++)
		ck_assert_int_eq(relm_core_message_send(B.core, rb, "after", 5, NULL, id, &was_new), 0);
	tu_settle(ds, 2, &net, 10, 3000);
	ck_assert_int_eq(tu_history_count(&A, rb, 1), 20);
}
END_TEST

START_TEST(test_retransmit_from_the_store)
{
	uint8_t rb[16], id[16];
	int was_new;
	uint64_t n = 0;
	struct tu_daemon *ds[2] = { &A, &B };

	connect_ab(rb, 0);
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "lost once", 9, NULL, id, &was_new), 0);
	ck_assert_int_eq(relm_store_outgoing_count(B.st, rb, &n), 0);
	ck_assert_uint_eq(n, 1);                      /* queued for retransmission, in the store */
	net.drop_next = 1;                            /* the first envelope never arrives */
	ck_assert_int_eq(tu_pump(&B, &net), 0);
	ck_assert_int_eq(tu_history_count(&A, rb, 1), 0);
	/* a restart in between: the queue lives in the store, not in memory */
	tu_daemon_close(&B);
	ck_assert_int_eq(tu_daemon_open(&B, &clock_ms, 22, "127.0.0.2:7427"), 0);
	tu_settle(ds, 2, &net, 12, 3000);             /* > RETX_BASE: one retry */
	ck_assert_int_eq(tu_history_count(&A, rb, 1), 1);
	ck_assert_int_eq(relm_store_outgoing_count(B.st, rb, &n), 0);
	ck_assert_uint_eq(n, 0);                      /* the receipt emptied it */
	{
		struct relm_store_msg m;
		ck_assert_int_eq(relm_store_msg_get(B.st, rb, id, &m), 0);
		ck_assert_int_eq(m.status, RELM_STATUS_DELIVERED);
	}
}
END_TEST

static int first_row_cb(void *ctx, const struct relm_store_outbox *o)
{
	*(int64_t *)ctx = o->seq;
	return 1;
}

START_TEST(test_refused_post_fails_the_message)
{
	uint8_t rb[16], id[16];
	int was_new;
	int64_t seq = 0;
	uint64_t n = 9;
	struct relm_store_msg m;

	connect_ab(rb, 0);
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "refused", 7, NULL, id, &was_new), 0);
	ck_assert_int_eq(relm_store_outbox_next(B.st, B.outbox_after, 1, first_row_cb, &seq), 1);
	ck_assert_int_gt(seq, 0);
	ck_assert_int_eq(relm_core_outbox_refused(B.core, seq, id, rb, 1, RELM_ETOOBIG), 0);
	ck_assert_int_eq(relm_store_msg_get(B.st, rb, id, &m), 0);
	ck_assert_int_eq(m.status, RELM_STATUS_FAILED);
	ck_assert_msg(strstr(m.reason, "too_big") != NULL, "%s", m.reason);
	ck_assert_int_eq(relm_store_outgoing_count(B.st, rb, &n), 0);
	ck_assert_uint_eq(n, 0);                      /* not retransmitted */
}
END_TEST

struct rows_got {
	int n;
	int64_t seq[8];
	uint8_t msg[8][16];
};

static int rows_cb(void *ctx, const struct relm_store_outbox *o)
{
	struct rows_got *g = ctx;
	if (o->has_msg && g->n < 8) {
		g->seq[g->n] = o->seq;
		memcpy(g->msg[g->n], o->msg_id, 16);
		g->n++;
	}
	return 0;
}

static int msg_status(struct tu_daemon *d, const uint8_t rel[16], const uint8_t id[16])
{
	struct relm_store_msg m;
	ck_assert_int_eq(relm_store_msg_get(d->st, rel, id, &m), 0);
	return m.status;
}

/* A turn's acknowledgements recorded as one step: each does what a step
 * of its own does (posted, or failed and no longer retransmitted, with
 * its message.status event).  One whose outbox row is gone — its
 * relationship deleted with it, a revoked device's session
 * (proto/revocation.md §1) — is passed over, the others recorded. */
START_TEST(test_acks_in_one_step)
{
	uint8_t rb[16], id[3][16];
	int was_new, ev0;
	uint64_t n = 0;
	struct rows_got rows = { 0 };
	struct relm_core_ack acks[4];

	connect_ab(rb, 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(relm_core_message_send(B.core, rb, "one of three", 12, NULL, id[i], &was_new), 0);
	ck_assert_int_eq(relm_store_outbox_next(B.st, B.outbox_after, 0, rows_cb, &rows), 0);
	ck_assert_int_eq(rows.n, 3);
	memset(acks, 0, sizeof acks);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(memcmp(rows.msg[i], id[i], 16), 0);
		acks[i].seq = rows.seq[i];
		memcpy(acks[i].msg, id[i], 16);
		memcpy(acks[i].rel, rb, 16);
		acks[i].has_msg = 1;
	}
	acks[1].reason = RELM_ETOOBIG;
	acks[3] = acks[2];
	acks[3].seq = rows.seq[2] + 1000;               /* no such row */
	ev0 = count_events(&B, "message.status", NULL);
	ck_assert_int_eq(relm_store_outgoing_count(B.st, rb, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(relm_core_outbox_done_many(B.core, acks, 4), 0);
	ck_assert_int_eq(msg_status(&B, rb, id[0]), RELM_STATUS_POSTED);
	ck_assert_int_eq(msg_status(&B, rb, id[1]), RELM_STATUS_FAILED);
	ck_assert_int_eq(msg_status(&B, rb, id[2]), RELM_STATUS_POSTED);
	ck_assert_int_eq(count_events(&B, "message.status", NULL), ev0 + 3);
	ck_assert_int_eq(relm_store_outgoing_count(B.st, rb, &n), 0);
	ck_assert_uint_eq(n, 2);                        /* the refused one is not retransmitted */
	rows.n = 0;
	ck_assert_int_eq(relm_store_outbox_next(B.st, B.outbox_after, 0, rows_cb, &rows), 0);
	ck_assert_int_eq(rows.n, 0);                    /* none left queued */
	/* twice: the rows are done, the messages do not move back */
	ck_assert_int_eq(relm_core_outbox_done_many(B.core, acks, 3), 0);
	ck_assert_int_eq(msg_status(&B, rb, id[0]), RELM_STATUS_POSTED);
	ck_assert_int_eq(count_events(&B, "message.status", NULL), ev0 + 3);
}
END_TEST

START_TEST(test_two_protons_of_one_daemon_refused)
{
	uint8_t p2[16], ipk[32], rel[16];
	char inv[RELM_INVITE_TEXT_MAX];
	int before = count_rels(&A, pa);

	ck_assert_int_eq(relm_core_proton_create(A.core, "alice at work", p2, ipk), 0);
	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 0, 0, inv, sizeof inv, NULL), 0);
	ck_assert_int_eq(relm_core_invite_accept(A.core, p2, inv, strlen(inv), NULL, rel), RELM_ESAMEDAEMON);
	ck_assert_int_eq(relm_core_invite_accept(A.core, pa, inv, strlen(inv), NULL, rel), RELM_ESAMEDAEMON);
	ck_assert_int_eq(count_rels(&A, pa), before);
	ck_assert_int_eq(count_rels(&A, p2), 0);
}
END_TEST

/* ---- invites: expiry, one relationship per pair ------------------------------ */

struct mb_seen {
	uint8_t id[8][32];
	int n;
};

static int mb_seen_cb(void *ctx, const uint8_t id[32])
{
	struct mb_seen *m = ctx;
	if (m->n < 8)
		memcpy(m->id[m->n], id, 32);
	m->n++;
	return 0;
}

/* Does the file hold these bytes anywhere (the store closed: no WAL)? */
static int file_holds(const char *path, const uint8_t *b, size_t n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long len;
	int found = 0;

	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)len);
	ck_assert_int_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	for (long i = 0; i + (long)n <= len && !found; i++)
		found = memcmp(buf + i, b, n) == 0;
	free(buf);
	return found;
}

/* An invite that expired is deleted with its secrets — the signed prekey,
 * the one-time prekey, the mailbox key — and its mailbox is named so the
 * daemon stops reading it.  Nothing else goes. */
START_TEST(test_expired_invites_deleted)
{
	char inv[RELM_INVITE_TEXT_MAX];
	uint8_t mb_old[32], mb_new[32], proton[16];
	uint32_t spk_id;
	struct relm_store_invite si;
	struct mb_seen seen = { 0 };

	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 0, 60, inv, sizeof inv, mb_old), 0);
	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 1, 3600, inv, sizeof inv, mb_new), 0);
	ck_assert_int_eq(relm_store_invite_by_mailbox(A.st, mb_old, proton, &spk_id), 0);
	ck_assert_int_eq(relm_store_invite_get(A.st, pa, spk_id, &si), 0);
	ck_assert_uint_ne(si.opk_id, 0);
	ck_assert_int_eq(relm_core_invites_expire(A.core, mb_seen_cb, &seen), 0);   /* none yet */
	ck_assert_int_eq(seen.n, 0);
	clock_ms += 60 * 1000;                         /* expires <= now: it stops working now */
	ck_assert_int_eq(relm_core_invites_expire(A.core, mb_seen_cb, &seen), 1);
	ck_assert_int_eq(seen.n, 1);
	ck_assert(memcmp(seen.id[0], mb_old, 32) == 0);
	ck_assert_int_eq(relm_store_invite_by_mailbox(A.st, mb_old, proton, &spk_id), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_invite_by_mailbox(A.st, mb_new, proton, &spk_id), 0);
	/* the secrets are gone from the file (secure_delete zeroes freed cells) */
	tu_daemon_close(&A);
	ck_assert(!file_holds(A.path, si.spk_priv, 32));
	ck_assert(!file_holds(A.path, si.opk_priv, 32));
	ck_assert(!file_holds(A.path, si.mailbox_sk, 64));
	relm_store_invite_clear(&si);
	ck_assert_int_eq(tu_daemon_open(&A, &clock_ms, 31, "127.0.0.1:7427"), 0);
}
END_TEST

/* Copy d's store to a new daemon (a second device of d's protons, as far
 * as keys go). */
static void clone_daemon(struct tu_daemon *to, struct tu_daemon *from, const char *name,
                         uint64_t stream, const char *host)
{
	char cmd[800], host_from[64];
	snprintf(host_from, sizeof host_from, "%s", from->host);
	tu_daemon_close(from);
	tu_daemon_mkdir(to, name);
	snprintf(cmd, sizeof cmd, "cp -a '%s/state' '%s/state'", from->dir, to->dir);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(tu_daemon_open(from, &clock_ms, from->stream + 100, host_from), 0);
	ck_assert_int_eq(tu_daemon_open(to, &clock_ms, stream, host), 0);
}

/* One relationship per pair of protons, on the inviter's side too: a
 * second accepter with the identity key of a proton already related —
 * here a copy of bob's store, which does not know bob accepted — gets no
 * second relationship from a multi-use invite; its hello is refused as
 * `exists`. */
START_TEST(test_inviter_one_relationship_per_pair)
{
	struct tu_daemon B2;
	uint8_t r1[16], r2[16];
	char inv[RELM_INVITE_TEXT_MAX], last[256];
	struct tu_daemon *ds[3] = { &A, &B, &B2 };

	clone_daemon(&B2, &B, "bob2", 4, "127.0.0.4:7427");
	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 1, 0, inv, sizeof inv, NULL), 0);
	ck_assert_int_eq(relm_core_invite_accept(B.core, pb, inv, strlen(inv), NULL, r1), 0);
	tu_settle(ds, 3, &net, 5, 3000);
	ck_assert_int_eq(count_rels(&A, pa), 1);
	ck_assert_int_eq(relm_core_invite_accept(B2.core, pb, inv, strlen(inv), NULL, r2), 0);
	ck_assert(memcmp(r1, r2, 16) != 0);
	tu_settle(ds, 3, &net, 5, 3000);
	ck_assert_int_eq(count_rels(&A, pa), 1);
	ck_assert_int_ge(count_events(&A, "envelope.undecryptable", last), 1);
	ck_assert_str_eq(last, "exists");
	tu_daemon_close(&B2);
	tu_daemon_rmdir(&B2);
}
END_TEST

/* An invite's expiry is judged at the envelope's arrival when that is
 * known: a hello that reached the mailbox in time, read after the
 * expiry, makes the relationship; one whose arrival is not known is
 * judged now and refused. */
START_TEST(test_expiry_at_arrival)
{
	struct tu_daemon C;
	uint8_t pc[16], ipk[32], rb[16], rc_[16];
	char inv[RELM_INVITE_TEXT_MAX], last[256];
	uint64_t in_time;
	size_t first;

	tu_daemon_mkdir(&C, "carol");
	ck_assert_int_eq(tu_daemon_open(&C, &clock_ms, 3, "127.0.0.3:7427"), 0);
	ck_assert_int_eq(relm_core_proton_create(C.core, "carol", pc, ipk), 0);
	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 1, 10, inv, sizeof inv, NULL), 0);
	first = net.n;
	ck_assert_int_eq(relm_core_invite_accept(B.core, pb, inv, strlen(inv), NULL, rb), 0);
	ck_assert_int_eq(relm_core_invite_accept(C.core, pc, inv, strlen(inv), NULL, rc_), 0);
	ck_assert_int_eq(tu_pump(&B, &net), 0);
	ck_assert_int_eq(tu_pump(&C, &net), 0);
	ck_assert_uint_eq(net.n, first + 2);           /* the two hellos, in the mailbox in time */
	in_time = clock_ms;
	clock_ms += 60 * 1000;                         /* A reads them after the invite expired */
	ck_assert_int_eq(relm_core_envelope(A.core, net.v[first].mailbox, net.v[first].seq,
	                                    net.v[first].buf, net.v[first].len), 0);
	ck_assert_int_eq(count_rels(&A, pa), 0);
	ck_assert_int_ge(count_events(&A, "envelope.undecryptable", last), 1);
	ck_assert_str_eq(last, "expired");
	ck_assert_int_eq(relm_core_envelope_at(A.core, net.v[first + 1].mailbox, net.v[first + 1].seq,
	                                       net.v[first + 1].buf, net.v[first + 1].len, in_time), 0);
	ck_assert_int_eq(count_rels(&A, pa), 1);
	/* an arrival time after now counts as now: no later expiry is bought */
	tu_daemon_close(&C);
	tu_daemon_rmdir(&C);
}
END_TEST

/* ---- acknowledgements waiting for the receipt timer: rows (schema v4) ---- */

struct acks_got {
	size_t n, cap;
	struct relm_ack *v;
};

static int acks_cb(void *ctx, const uint8_t id[16], const uint8_t dh[32], uint32_t n)
{
	struct acks_got *g = ctx;
	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 16;
		g->v = realloc(g->v, g->cap * sizeof *g->v);
		ck_assert(g->v);
	}
	memcpy(g->v[g->n].id, id, 16);
	memcpy(g->v[g->n].dh, dh, 32);
	g->v[g->n++].n = n;
	return 0;
}

static size_t ack_rows(struct tu_daemon *d, const uint8_t rel[16], struct acks_got *keep)
{
	struct acks_got g = { 0 };
	ck_assert_int_eq(relm_store_ack_list(d->st, rel, acks_cb, &g), 0);
	if (keep)
		*keep = g;
	else
		free(g.v);
	return g.n;
}

static int delivered_cb(void *ctx, const struct relm_store_msg *m)
{
	if (!m->direction_in && m->status == RELM_STATUS_DELIVERED)
		(*(int *)ctx)++;
	return 0;
}

static int delivered(struct tu_daemon *d, const uint8_t rel[16])
{
	int n = 0;
	ck_assert_int_eq(relm_store_msg_list(d->st, rel, 0, 0, delivered_cb, &n), 0);
	return n;
}

/* Receiving keeps each acknowledgement as a row, not in the state blob; the
 * rows survive a restart; the receipt, when due, covers them all and
 * removes them. */
START_TEST(test_acks_are_rows)
{
	uint8_t rb[16], id[16];
	int was_new;
	struct relm_rel *r = NULL;
	struct tu_daemon *ds[2] = { &A, &B };

	int before;

	connect_ab(rb, 0);
	ck_assert_uint_eq(ack_rows(&A, rb, NULL), 0);
	before = delivered(&B, rb);                   /* the hello */
	for (int k = 0; k < 10; k++)
		ck_assert_int_eq(relm_core_message_send(B.core, rb, "ack me", 6, NULL, id, &was_new), 0);
	ck_assert_int_eq(tu_pump(&B, &net), 0);
	ck_assert_int_eq(tu_deliver(&A, &net), 0);
	ck_assert_int_eq(tu_history_count(&A, rb, 1), 10);
	ck_assert_uint_eq(ack_rows(&A, rb, NULL), 10);
	ck_assert_int_eq(relm_core_rel_load(A.core, rb, &r), 0);
	ck_assert_uint_eq(r->nacks_due, 0);            /* not in the blob */
	ck_assert_uint_ne(r->receipt_due_ms, 0);       /* but the timer is */
	relm_rel_free(r);
	/* a restart before the timer: nothing owed is forgotten */
	tu_daemon_close(&A);
	ck_assert_int_eq(tu_daemon_open(&A, &clock_ms, 31, "127.0.0.1:7427"), 0);
	ck_assert_uint_eq(ack_rows(&A, rb, NULL), 10);
	ck_assert_int_eq(delivered(&B, rb), before);
	tu_settle(ds, 2, &net, 3, RELM_RECEIPT_DELAY_MAX_MS);
	ck_assert_uint_eq(ack_rows(&A, rb, NULL), 0);
	ck_assert_int_eq(delivered(&B, rb), before + 10);
}
END_TEST

/* More acknowledgements than one step's receipts carry: a tick sends
 * RELM_RECEIPTS_PER_STEP receipts and leaves the rest in the store, due
 * at once (*next is now); the next tick sends the rest; every message is
 * delivered once and no row is left. */
START_TEST(test_receipts_in_slices_through_the_store)
{
	enum { N = RELM_RECEIPTS_PER_STEP * RELM_MAX_ACKS + 8 };
	uint8_t rb[16], id[16];
	uint64_t next = 0;
	size_t posted;
	int was_new, before;

	connect_ab(rb, 0);
	before = delivered(&B, rb);
	for (int k = 0; k < N; k++)
		ck_assert_int_eq(relm_core_message_send(B.core, rb, "ack me", 6, NULL, id, &was_new), 0);
	ck_assert_int_eq(tu_pump(&B, &net), 0);
	ck_assert_int_eq(tu_deliver(&A, &net), 0);
	ck_assert_uint_eq(ack_rows(&A, rb, NULL), N);
	clock_ms += RELM_RECEIPT_DELAY_MAX_MS + 1;
	posted = net.n;
	ck_assert_int_eq(relm_core_tick(A.core, &next), 0);
	ck_assert_int_eq(tu_pump(&A, &net), 0);
	ck_assert_uint_eq(net.n - posted, RELM_RECEIPTS_PER_STEP);
	ck_assert_uint_eq(ack_rows(&A, rb, NULL), N - RELM_RECEIPTS_PER_STEP * RELM_MAX_ACKS);
	ck_assert(next != 0 && next <= clock_ms);               /* the rest: due now */
	posted = net.n;
	ck_assert_int_eq(relm_core_tick(A.core, &next), 0);
	ck_assert_int_eq(tu_pump(&A, &net), 0);
	ck_assert_uint_eq(net.n - posted, 1);
	ck_assert_uint_eq(ack_rows(&A, rb, NULL), 0);
	ck_assert_int_eq(tu_deliver(&B, &net), 0);
	ck_assert_int_eq(delivered(&B, rb), before + N);
}
END_TEST

/* Blob version 6 (relm_rel_encode_version): "RLS" v id mode side ad
 * ipk_self ipk_remote mbox_pk mbox_sk remote_mbox_pk, then (v5)
 * has_gate(1) gate_key(32), which v3 does not have */
enum { GATE_AT = 4 + 16 + 1 + 1 + 64 + 32 + 32 + 32 + 64 + 32, GATE_FIELDS = 1 + 32 };
/* and ends with the multi-device tail, empty for one device: three zero
 * counts, batch_first(16), repair_ms(8), sibling_session(1), and (v6) the
 * fixed revocation tail (proto/revocation.md §5), neither of which v3 has */
enum { MULTI_TAIL = 3 + 16 + 8 + 1 + 194 };

/* B's side of rb as a relationship from before the gate (both sides of
 * such a relationship have none). */
static void ungate(struct tu_daemon *d, const uint8_t rb[16])
{
	struct relm_store_rel sr;
	struct relm_rel *r = NULL;
	uint8_t *blob;
	size_t len;

	memset(&sr, 0, sizeof sr);
	ck_assert_int_eq(relm_store_rel_get(d->st, rb, &sr, RELM_STORE_WITH_STATE), 0);
	ck_assert_int_eq(relm_rel_decode(&r, sr.state, sr.state_len), 0);
	r->has_gate = 0;
	sodium_memzero(r->gate_key, sizeof r->gate_key);
	ck_assert_int_eq(relm_rel_encode(r, &blob, &len), 0);
	ck_assert_int_eq(relm_store_begin(d->st), 0);
	ck_assert_int_eq(relm_store_rel_set_state(d->st, rb, blob, len, clock_ms), 0);
	ck_assert_int_eq(relm_store_commit(d->st), 0);
	relm_rel_blob_free(blob, len);
	relm_rel_free(r);
	relm_store_rel_clear(&sr);
}

/* A relationship whose blob is v3 (acknowledgements inside) and whose
 * store has no rows, as a v3 relmd left it: the next step moves them to
 * rows (with the new one), and the receipt covers old and new. */
START_TEST(test_acks_move_out_of_a_v3_blob)
{
	uint8_t rb[16], id[16];
	int was_new;
	struct relm_store_rel sr;
	struct relm_rel *r = NULL;
	struct acks_got g;
	struct tu_daemon *ds[2] = { &A, &B };
	size_t k = 0, tail, at, len, full_len;
	uint8_t *v3, *full;
	int before;

	connect_ab(rb, 0);
	before = delivered(&B, rb);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(relm_core_message_send(B.core, rb, "ack me", 6, NULL, id, &was_new), 0);
	ck_assert_int_eq(tu_pump(&B, &net), 0);
	ck_assert_int_eq(tu_deliver(&A, &net), 0);
	ck_assert_uint_eq(ack_rows(&A, rb, &g), 10);

	/* the v3 form of A's state: no gate fields, and "u32 n, n × {id dh n}"
	 * before receipt_due, which the used recent ids (1 + 16k) and the
	 * stats (20) follow */
	ungate(&B, rb);
	memset(&sr, 0, sizeof sr);
	ck_assert_int_eq(relm_store_rel_get(A.st, rb, &sr, RELM_STORE_WITH_STATE), 0);
	ck_assert_int_eq(relm_rel_decode(&r, sr.state, sr.state_len), 0);
	for (size_t i = 0; i < RELM_RECENT_IDS; i++) {
		static const uint8_t zero[16];
		k += memcmp(r->recent[i], zero, 16) != 0;
	}
	/* built from version 6, which writes every field */
	ck_assert_int_eq(relm_rel_encode_version(r, 6, &full, &full_len), 0);
	relm_rel_free(r);
	tail = 8 + 1 + 16 * k + 20;
	at = full_len - tail - GATE_FIELDS - MULTI_TAIL;
	len = full_len - GATE_FIELDS - MULTI_TAIL + 4 + g.n * 52;
	ck_assert_ptr_nonnull(v3 = malloc(len));
	memcpy(v3, full, GATE_AT);
	memcpy(v3 + GATE_AT, full + GATE_AT + GATE_FIELDS, at - GATE_AT);
	v3[3] = 3;
	v3[at] = 0; v3[at + 1] = 0; v3[at + 2] = 0; v3[at + 3] = (uint8_t)g.n;
	for (size_t i = 0; i < g.n; i++) {
		uint8_t *p = v3 + at + 4 + i * 52;
		memcpy(p, g.v[i].id, 16);
		memcpy(p + 16, g.v[i].dh, 32);
		p[48] = (uint8_t)(g.v[i].n >> 24); p[49] = (uint8_t)(g.v[i].n >> 16);
		p[50] = (uint8_t)(g.v[i].n >> 8);  p[51] = (uint8_t)g.v[i].n;
	}
	memcpy(v3 + at + 4 + g.n * 52, full + at + GATE_FIELDS, tail);
	relm_rel_blob_free(full, full_len);
	ck_assert_int_eq(relm_store_begin(A.st), 0);
	ck_assert_int_eq(relm_store_rel_set_state(A.st, rb, v3, len, clock_ms), 0);
	ck_assert_int_eq(sqlite3_exec(relm__store_db(A.st), "DELETE FROM acks", NULL, NULL, NULL), 0);
	ck_assert_int_eq(relm_store_commit(A.st), 0);
	relm_store_rel_clear(&sr);
	free(v3);
	ck_assert_uint_eq(ack_rows(&A, rb, NULL), 0);
	ck_assert_int_eq(relm_core_rel_load(A.core, rb, &r), 0);
	ck_assert_uint_eq(r->nacks_due, 10);
	ck_assert_uint_eq(r->acks_unsaved, 1);
	relm_rel_free(r);

	/* one more message: its step moves the ten and adds the eleventh */
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "ack me", 6, NULL, id, &was_new), 0);
	ck_assert_int_eq(tu_pump(&B, &net), 0);
	ck_assert_int_eq(tu_deliver(&A, &net), 0);
	{
		struct acks_got now;
		ck_assert_uint_eq(ack_rows(&A, rb, &now), 11);
		for (size_t i = 0; i < g.n; i++) {
			int found = 0;
			for (size_t j = 0; j < now.n; j++)
				found |= memcmp(&now.v[j], &g.v[i], sizeof g.v[i]) == 0;
			ck_assert(found);
		}
		free(now.v);
	}
	ck_assert_int_eq(relm_core_rel_load(A.core, rb, &r), 0);
	ck_assert_uint_eq(r->nacks_due, 0);
	ck_assert_uint_eq(r->acks_unsaved, 0);
	relm_rel_free(r);
	free(g.v);
	tu_settle(ds, 2, &net, 3, RELM_RECEIPT_DELAY_MAX_MS);
	ck_assert_uint_eq(ack_rows(&A, rb, NULL), 0);
	ck_assert_int_eq(delivered(&B, rb), before + 11);
}
END_TEST

static Suite *core_suite(void)
{
	Suite *s = suite_create("core");
	TCase *tc = tcase_create("daemons");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_end_to_end);
	tcase_add_test(tc, test_env_is_not_modified);
	tcase_add_test(tc, test_idempotent_send);
	tcase_add_test(tc, test_replayed_initial_makes_nothing);
	tcase_add_test(tc, test_guard_goes_with_invite);
	tcase_add_test(tc, test_single_use_invite);
	tcase_add_test(tc, test_bad_envelopes_advance_cursor);
	tcase_add_test(tc, test_rel_mailbox_signs);
	tcase_add_test(tc, test_restart_midway);
	tcase_add_test(tc, test_retransmit_from_the_store);
	tcase_add_test(tc, test_refused_post_fails_the_message);
	tcase_add_test(tc, test_acks_in_one_step);
	tcase_add_test(tc, test_two_protons_of_one_daemon_refused);
	tcase_add_test(tc, test_expired_invites_deleted);
	tcase_add_test(tc, test_inviter_one_relationship_per_pair);
	tcase_add_test(tc, test_expiry_at_arrival);
	tcase_add_test(tc, test_acks_are_rows);
	tcase_add_test(tc, test_receipts_in_slices_through_the_store);
	tcase_add_test(tc, test_acks_move_out_of_a_v3_blob);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(core_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * check_strategy.c — the leader and fanout strategies in the engine
 * (engine/rel_strategy.h, proto/devices.md §11): who sends under a view,
 * requests made, re-sent, served once by message id and settled by the
 * sender's copy, the takeover of a new holder, the hub's deliveries and
 * their application on a device without state, and copy-verify-commit on
 * refused requests.
 *
 * a1, a2 are two devices of proton A (a2 starts as a copy of a1's state);
 * b is the remote, a single tree device.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_rand.h"
#include "util_engine.h"
#include "engine/rel.h"
#include "engine/rel_strategy.h"
#include "wire/sibling.h"
#include "wire/payload.h"
#include "wire/envelope.h"
#include "crypto/crypto.h"
#include "error.h"

static uint64_t clock_ms;
static struct tu_party a1, a2, b;
static struct tu_party *A[2] = { &a1, &a2 };

static void setup(void)
{
	clock_ms = 1700000000000ull;
	tu_party_init(&a1, &clock_ms, 1);
	tu_party_init(&b, &clock_ms, 2);
	tu_pair(&a1, &b, RELM_MODE_TREE, RELM_MODE_TREE, 1);
	tu_exchange(&a1, &b, &clock_ms, 4);
	tu_clone(&a2, &a1, &clock_ms, 3);
	tu_devices(A, 2);
}

static void teardown(void)
{
	tu_party_free(&a1);
	tu_party_free(&a2);
	tu_party_free(&b);
}

/* Every device's view: strategy s, holder h (NULL: none). */
static void view(int s, const struct tu_party *h)
{
	for (int i = 0; i < 2; i++) {
		A[i]->devs.strategy = (uint8_t)s;
		memset(A[i]->devs.holder, 0, RELM_ID_LEN);
		if (h)
			memcpy(A[i]->devs.holder, h->devs.self, RELM_ID_LEN);
	}
}

static size_t count(const struct relm_effects *fx, enum relm_fx_type t)
{
	size_t k = 0;
	for (size_t i = 0; i < fx->n; i++)
		k += fx->v[i].type == t;
	return k;
}

static const struct relm_fx *find(const struct relm_effects *fx, enum relm_fx_type t)
{
	for (size_t i = 0; i < fx->n; i++)
		if (fx->v[i].type == t)
			return &fx->v[i];
	return NULL;
}

/* The payload of the first POST in fx, opened by b's side: decoded from
 * the envelope b receives.  Returns b's code. */
static int post_to_b(struct relm_effects *fx)
{
	const struct relm_fx *f = find(fx, RELM_FX_POST);
	ck_assert_ptr_nonnull(f);
	return tu_recv(&b, f->data, f->len);
}

/* Deliver everything b posts to both A devices. */
static void b_to_a(void)
{
	while (b.nout) {
		struct tu_blob e = tu_take(&b, 0);
		for (int i = 0; i < 2; i++)
			tu_recv(A[i], e.buf, e.len);
		tu_blob_free(&e);
	}
}

/* ---- who sends ------------------------------------------------------------------ */

START_TEST(test_views)
{
	view(RELM_STRATEGY_LEADERLESS, NULL);
	ck_assert(relm_strategy_sends(&a1.env) && relm_strategy_sends(&a2.env));
	view(RELM_STRATEGY_LEADER, &a1);
	ck_assert(relm_strategy_sends(&a1.env) && !relm_strategy_sends(&a2.env));
	ck_assert(relm_strategy_holds_state(&a2.env));
	view(RELM_STRATEGY_LEADER, NULL);       /* nobody holds the lease */
	ck_assert(!relm_strategy_sends(&a1.env) && !relm_strategy_sends(&a2.env));
	view(RELM_STRATEGY_FANOUT, &a2);
	ck_assert(!relm_strategy_sends(&a1.env) && relm_strategy_sends(&a2.env));
	ck_assert(!relm_strategy_holds_state(&a1.env) && relm_strategy_holds_state(&a2.env));
	/* one device sends whatever the view says */
	b.devs.strategy = RELM_STRATEGY_LEADER;
	ck_assert(relm_strategy_sends(&b.env));
}
END_TEST

START_TEST(test_strategy_newer)
{
	struct relm_sib_strategy x, y;

	memset(&x, 0, sizeof x);
	x.seq = 5;
	x.by[0] = 1;
	y = x;
	ck_assert(relm_strategy_newer(NULL, &x));
	ck_assert(!relm_strategy_newer(&x, &y));       /* the same: not newer */
	y.by[0] = 2;                                    /* same seq: the larger device */
	ck_assert(relm_strategy_newer(&x, &y) && !relm_strategy_newer(&y, &x));
	y.seq = 4;
	ck_assert(!relm_strategy_newer(&x, &y) && relm_strategy_newer(&y, &x));
}
END_TEST

/* leader: the non-holder posts nothing — no send, no receipt.  With the
 * holder known it drops what it owes when its timer fires (the holder owes
 * the same); with none known it keeps it, its timer asleep, for when it
 * leads.  The holder answers at once (no stagger). */
START_TEST(test_leader_non_holder_is_silent)
{
	uint8_t id[RELM_ID_LEN];
	struct relm_effects fx;

	view(RELM_STRATEGY_LEADER, &a1);
	relm_effects_init(&fx);
	ck_assert_int_eq(relm_rel_send(a2.rel, &a2.env, "no", 2, NULL, id, &fx), RELM_EINVAL);
	ck_assert_uint_eq(fx.n, 0);
	tu_send(&b, "to both", NULL);
	b_to_a();
	ck_assert(a1.rel->receipt_due_ms && a2.rel->receipt_due_ms);
	/* rank 0 for everyone under leader: within the plain receipt delay */
	ck_assert_uint_le(a1.rel->receipt_due_ms, clock_ms + RELM_RECEIPT_DELAY_MAX_MS);
	ck_assert_uint_le(a2.rel->receipt_due_ms, clock_ms + RELM_RECEIPT_DELAY_MAX_MS);
	clock_ms += RELM_RECEIPT_DELAY_MAX_MS + 1;
	tu_tick(&a2);
	ck_assert_uint_eq(a2.nout, 0);
	ck_assert_uint_eq(a2.rel->nacks_due, 0);        /* dropped: a1 answers */
	ck_assert_uint_eq(a2.rel->receipt_due_ms, 0);
	tu_tick(&a1);
	ck_assert_uint_eq(a1.nout, 1);                  /* the receipt */

	/* nobody holds the lease: a2 keeps what it owes, asleep */
	view(RELM_STRATEGY_LEADER, NULL);
	tu_send(&b, "again", NULL);
	b_to_a();
	ck_assert_uint_eq(a2.rel->nacks_due, 1);
	ck_assert(relm_rel_deadline(a2.rel, &a2.env) == 0 ||
	          relm_rel_deadline(a2.rel, &a2.env) > a2.rel->receipt_due_ms);
	clock_ms += RELM_RECEIPT_DELAY_MAX_MS + 1;
	tu_tick(&a2);
	ck_assert_uint_eq(a2.nout, 0);
	ck_assert_uint_eq(a2.rel->nacks_due, 1);
	/* it takes the lease: the receipt goes at its next tick */
	view(RELM_STRATEGY_LEADER, &a2);
	ck_assert_uint_le(relm_rel_deadline(a2.rel, &a2.env), clock_ms);
	tu_tick(&a2);
	ck_assert_uint_eq(a2.nout, 1);
	relm_effects_clear(&fx);
}
END_TEST

/* leader: a non-holder's retransmission is a request with AGAIN to the
 * holder, who sends it again although it holds the message. */
START_TEST(test_leader_non_holder_asks_again)
{
	struct relm_effects fx, fs;
	struct relm_sib_request q;
	const struct relm_fx *f;
	uint8_t id[RELM_ID_LEN];
	int k;

	view(RELM_STRATEGY_LEADER, &a1);
	relm_effects_init(&fx);
	relm_effects_init(&fs);
	tu_send(&a1, "lost receipt", id);
	while (a1.nout) {                       /* the envelope is lost */
		struct tu_blob e = tu_take(&a1, 0);
		tu_blob_free(&e);
	}
	tu_copies_to(&a1, A, 2);
	ck_assert_int_ge(k = tu_outgoing_index(a2.rel, id), 0);
	clock_ms = a2.rel->out[k].next_ms;
	ck_assert_int_eq(relm_rel_tick(a2.rel, &a2.env, &fx), 0);
	ck_assert_uint_eq(count(&fx, RELM_FX_POST), 0);
	ck_assert_ptr_nonnull(f = find(&fx, RELM_FX_SIB_TO));
	ck_assert(memcmp(f->dev, a1.devs.self, RELM_ID_LEN) == 0);
	ck_assert_int_eq(relm_sib_request_decode(&q, f->data, f->len), 0);
	ck_assert(memcmp(q.id, id, RELM_ID_LEN) == 0 && (q.flags & RELM_SIB_R_AGAIN));
	ck_assert_ptr_nonnull(find(&fx, RELM_FX_OUT_PUT));      /* backed off */
	/* a1 has it queued itself: nothing more */
	ck_assert_int_eq(relm_rel_serve(a1.rel, &a1.env, f->data, f->len, 0, &fs), RELM_EDUP);
	/* once a1 dropped its record (say it failed there), AGAIN sends it,
	 * with no second history row */
	{
		struct relm_effects fd;
		relm_effects_init(&fd);
		while (a1.rel->nout) {
			clock_ms += RELM_RETX_MAX_AGE_MS;
			ck_assert_int_eq(relm_rel_tick(a1.rel, &a1.env, &fd), 0);
		}
		tu_apply(&a1, &fd);
		relm_effects_clear(&fd);
	}
	ck_assert_int_eq(relm_rel_serve(a1.rel, &a1.env, f->data, f->len, 0, &fs), 0);
	ck_assert_uint_eq(count(&fs, RELM_FX_POST), 1);
	ck_assert_uint_eq(count(&fs, RELM_FX_DELIVER), 0);
	ck_assert_int_eq(post_to_b(&fs), 0);
	ck_assert(tu_hist_has(&b, id, 1));
	relm_effects_clear(&fx);
	relm_effects_clear(&fs);
}
END_TEST

/* ---- requests ----------------------------------------------------------------------- */

/* a2 asks a1; a1 sends it as typed; a1's copy settles a2's request; the
 * same request again is not sent twice. */
START_TEST(test_request_served_once)
{
	struct relm_effects fx, fs, fc;
	const struct relm_fx *f;
	struct relm_sib_request q;
	uint8_t id[RELM_ID_LEN], *req;
	size_t reqlen;
	uint64_t typed;

	view(RELM_STRATEGY_LEADER, &a1);
	relm_effects_init(&fx);
	relm_effects_init(&fs);
	relm_effects_init(&fc);
	typed = clock_ms;
	ck_assert_int_eq(relm_request_make(&a2.env, a2.rel->id, "via a1", 6, NULL, id, &fx), 0);
	ck_assert_uint_eq(count(&fx, RELM_FX_POST), 0);
	ck_assert_ptr_nonnull(f = find(&fx, RELM_FX_DELIVER));
	ck_assert(!f->direction_in && f->origin == RELM_ORIGIN_SELF);
	ck_assert_ptr_nonnull(f = find(&fx, RELM_FX_STATUS));
	ck_assert_int_eq(f->status, RELM_STATUS_QUEUED);
	ck_assert_ptr_nonnull(f = find(&fx, RELM_FX_REQ_PUT));
	ck_assert(memcmp(f->dev, a1.devs.self, RELM_ID_LEN) == 0);
	ck_assert(f->next_ms == clock_ms + RELM_REQUEST_RESEND_MS);
	ck_assert_ptr_nonnull(f = find(&fx, RELM_FX_SIB_TO));
	ck_assert(memcmp(f->dev, a1.devs.self, RELM_ID_LEN) == 0);
	ck_assert_int_eq(relm_sib_request_decode(&q, f->data, f->len), 0);
	ck_assert(memcmp(q.id, id, RELM_ID_LEN) == 0 && q.ts == typed);
	req = malloc(f->len);
	ck_assert_ptr_nonnull(req);
	memcpy(req, f->data, f->len);
	reqlen = f->len;
	tu_apply(&a2, &fx);
	/* the same id again: idempotent */
	ck_assert_int_eq(relm_request_make(&a2.env, a2.rel->id, "via a1", 6, id, id, &fx), RELM_EEXIST);
	ck_assert_uint_eq(fx.n, 0);

	/* a1 serves it later: the payload carries the id and the typing time */
	clock_ms += 5000;
	ck_assert_int_eq(relm_rel_serve(a1.rel, &a1.env, req, reqlen, 0, &fs), 0);
	ck_assert_ptr_nonnull(f = find(&fs, RELM_FX_DELIVER));
	ck_assert(!f->direction_in && f->origin == RELM_ORIGIN_SIBLING);
	ck_assert(memcmp(f->msg_id, id, RELM_ID_LEN) == 0 && f->ts == typed);
	ck_assert_uint_eq(count(&fs, RELM_FX_COPY), 1);
	ck_assert_uint_eq(count(&fs, RELM_FX_REQ_DEL), 0);
	ck_assert_int_eq(post_to_b(&fs), 0);
	ck_assert(tu_hist_has(&b, id, 1));
	/* the copy: a2's request is done, and nothing is delivered twice */
	ck_assert_int_eq(relm_rel_copy(a2.rel, &a2.env, a1.devs.self, find(&fs, RELM_FX_COPY)->data,
	                               find(&fs, RELM_FX_COPY)->len, &fc), 0);
	ck_assert_ptr_nonnull(f = find(&fc, RELM_FX_REQ_DEL));
	ck_assert(memcmp(f->msg_id, id, RELM_ID_LEN) == 0);
	tu_apply(&a1, &fs);
	tu_apply(&a2, &fc);
	ck_assert_uint_eq(a2.dup_deliveries, 0);
	/* re-sent (a leader change): de-duplicated by id, nothing posted */
	ck_assert_int_eq(relm_rel_serve(a1.rel, &a1.env, req, reqlen, 0, &fs), RELM_EDUP);
	ck_assert_uint_eq(fs.n, 0);
	free(req);
	relm_effects_clear(&fx);
	relm_effects_clear(&fs);
	relm_effects_clear(&fc);
}
END_TEST

/* A request is never dropped by a leader change: re-sent to a new holder,
 * re-sent when due, served by the requester itself when it leads. */
START_TEST(test_request_follows_the_holder)
{
	struct relm_effects fx;
	const struct relm_fx *f;
	uint8_t id[RELM_ID_LEN], *req, to[RELM_ID_LEN], other[RELM_ID_LEN];
	size_t reqlen;
	uint64_t next;

	view(RELM_STRATEGY_LEADER, NULL);       /* no holder known: kept unsent */
	relm_effects_init(&fx);
	ck_assert_int_eq(relm_request_make(&a2.env, a2.rel->id, "wait", 4, NULL, id, &fx), 0);
	ck_assert_uint_eq(count(&fx, RELM_FX_SIB_TO), 0);
	ck_assert_ptr_nonnull(f = find(&fx, RELM_FX_REQ_PUT));
	ck_assert(sodium_is_zero(f->dev, RELM_ID_LEN));
	req = malloc(f->len);
	ck_assert_ptr_nonnull(req);
	memcpy(req, f->data, f->len);
	reqlen = f->len;
	memcpy(to, f->dev, RELM_ID_LEN);
	next = f->next_ms;
	tu_apply(&a2, &fx);
	ck_assert_int_eq(relm_request_due(&a2.env, req, reqlen, to, next, &fx), 0);
	ck_assert_uint_eq(fx.n, 0);
	/* a1 holds the lease now */
	view(RELM_STRATEGY_LEADER, &a1);
	ck_assert_int_eq(relm_request_due(&a2.env, req, reqlen, to, next, &fx), 0);
	ck_assert_ptr_nonnull(f = find(&fx, RELM_FX_SIB_TO));
	ck_assert(memcmp(f->dev, a1.devs.self, RELM_ID_LEN) == 0);
	ck_assert_ptr_nonnull(f = find(&fx, RELM_FX_REQ_PUT));
	memcpy(to, f->dev, RELM_ID_LEN);
	next = f->next_ms;
	relm_effects_reset(&fx);
	/* the same holder, not due: nothing; due: again */
	ck_assert_int_eq(relm_request_due(&a2.env, req, reqlen, to, next, &fx), 0);
	ck_assert_uint_eq(fx.n, 0);
	clock_ms = next;
	ck_assert_int_eq(relm_request_due(&a2.env, req, reqlen, to, next, &fx), 0);
	ck_assert_uint_eq(count(&fx, RELM_FX_SIB_TO), 1);
	relm_effects_reset(&fx);
	/* a third device took over: re-sent to it */
	memset(other, 0x77, RELM_ID_LEN);
	memcpy(a2.devs.holder, other, RELM_ID_LEN);
	ck_assert_int_eq(relm_request_due(&a2.env, req, reqlen, to, next, &fx), 0);
	ck_assert_ptr_nonnull(f = find(&fx, RELM_FX_SIB_TO));
	ck_assert(memcmp(f->dev, other, RELM_ID_LEN) == 0);
	relm_effects_reset(&fx);
	/* a2 itself takes the lease: it serves its own request, no second
	 * history row, and the row goes */
	view(RELM_STRATEGY_LEADER, &a2);
	ck_assert_int_eq(relm_request_due(&a2.env, req, reqlen, to, next, &fx), 1);
	ck_assert_int_eq(relm_rel_serve(a2.rel, &a2.env, req, reqlen, 1, &fx), 0);
	ck_assert_uint_eq(count(&fx, RELM_FX_DELIVER), 0);
	ck_assert_ptr_nonnull(f = find(&fx, RELM_FX_REQ_DEL));
	ck_assert(memcmp(f->msg_id, id, RELM_ID_LEN) == 0);
	ck_assert_int_eq(post_to_b(&fx), 0);
	ck_assert(tu_hist_has(&b, id, 1));
	tu_apply(&a2, &fx);
	ck_assert_uint_eq(a2.dup_deliveries, 0);
	free(req);
	relm_effects_clear(&fx);
}
END_TEST

/* Refused requests leave the state byte for byte as it was. */
START_TEST(test_request_refused_unchanged)
{
	struct relm_effects fx;
	struct relm_sib_request q;
	struct tu_blob before, after;
	uint8_t *req;
	size_t reqlen;

	memset(&q, 0, sizeof q);
	memcpy(q.rel, a1.rel->id, RELM_ID_LEN);
	q.id[0] = 9;
	snprintf(q.kind, sizeof q.kind, "text");
	q.ts = clock_ms;
	q.body = (const uint8_t *)"x";
	q.body_len = 1;
	relm_effects_init(&fx);
	before = tu_state(&a1);
	/* a1 does not hold the lease */
	view(RELM_STRATEGY_LEADER, &a2);
	ck_assert_int_eq(relm_sib_request_encode(&req, &reqlen, &q), 0);
	ck_assert_int_eq(relm_rel_serve(a1.rel, &a1.env, req, reqlen, 0, &fx), RELM_EINVAL);
	relm_sib_buf_free(req, reqlen);
	/* another relationship's, another kind, bytes that do not decode */
	view(RELM_STRATEGY_LEADER, &a1);
	q.rel[0] ^= 1;
	ck_assert_int_eq(relm_sib_request_encode(&req, &reqlen, &q), 0);
	ck_assert_int_eq(relm_rel_serve(a1.rel, &a1.env, req, reqlen, 0, &fx), RELM_EINVAL);
	ck_assert_int_eq(relm_rel_serve(a1.rel, &a1.env, req, reqlen - 1, 0, &fx), RELM_ETRUNCATED);
	relm_sib_buf_free(req, reqlen);
	q.rel[0] ^= 1;
	snprintf(q.kind, sizeof q.kind, "heal");
	ck_assert_int_eq(relm_sib_request_encode(&req, &reqlen, &q), 0);
	ck_assert_int_eq(relm_rel_serve(a1.rel, &a1.env, req, reqlen, 0, &fx), RELM_EINVAL);
	relm_sib_buf_free(req, reqlen);
	ck_assert_uint_eq(fx.n, 0);
	after = tu_state(&a1);
	ck_assert(tu_blob_eq(before, after));
	tu_blob_free(&before);
	tu_blob_free(&after);
	relm_effects_clear(&fx);
}
END_TEST

/* ---- takeover ------------------------------------------------------------------------ */

/* The old leader's unreceipted message: the new holder retransmits it
 * within retx_base, not after the 10-minute takeover of §5.3. */
START_TEST(test_lead_takes_over_retransmission)
{
	struct relm_effects fx;
	const struct relm_fx *f;
	uint8_t id[RELM_ID_LEN];
	int k;

	view(RELM_STRATEGY_LEADER, &a1);
	relm_effects_init(&fx);
	tu_send(&a1, "lost on the way", id);
	while (a1.nout) {                       /* the envelope is lost */
		struct tu_blob e = tu_take(&a1, 0);
		tu_blob_free(&e);
	}
	tu_copies_to(&a1, A, 2);
	ck_assert_int_ge(k = tu_outgoing_index(a2.rel, id), 0);
	ck_assert(a2.rel->out[k].sibling);
	ck_assert(a2.rel->out[k].next_ms >= clock_ms + RELM_RETX_TAKEOVER_MS);
	/* a1 crashes; a2 takes the lease */
	view(RELM_STRATEGY_LEADER, &a2);
	ck_assert_int_eq(relm_rel_lead(a2.rel, &a2.env, &fx), 0);
	ck_assert_ptr_nonnull(f = find(&fx, RELM_FX_OUT_PUT));
	ck_assert(memcmp(f->msg_id, id, RELM_ID_LEN) == 0 && !f->sibling);
	ck_assert(!a2.rel->out[k].sibling);
	ck_assert_uint_le(a2.rel->out[k].next_ms, clock_ms + a2.env.params.retx_base_ms);
	tu_apply(&a2, &fx);
	clock_ms += a2.env.params.retx_base_ms;
	tu_tick(&a2);
	ck_assert_uint_eq(a2.nout, 1);
	{
		struct tu_blob e = tu_take(&a2, 0);
		ck_assert_int_eq(tu_recv(&b, e.buf, e.len), 0);
		tu_blob_free(&e);
	}
	ck_assert(tu_hist_has(&b, id, 1));
	relm_effects_clear(&fx);
}
END_TEST

/* ---- fanout ------------------------------------------------------------------------------ */

/* The hub copies to nobody and delivers its history; a device without
 * state rebuilds it from the delivers, its own request included. */
START_TEST(test_fanout_delivers)
{
	struct relm_effects fx, fa;
	struct relm_sib_deliver d;
	const struct relm_fx *f;
	uint8_t id[RELM_ID_LEN], rel[RELM_ID_LEN], mine[RELM_ID_LEN];
	size_t mark, nd;

	view(RELM_STRATEGY_FANOUT, &a1);
	relm_effects_init(&fx);
	relm_effects_init(&fa);
	/* the hub sends: no copy; one deliver (sent, queued) */
	ck_assert_int_eq(relm_rel_send(a1.rel, &a1.env, "hub says", 8, NULL, id, &fx), 0);
	ck_assert_uint_eq(count(&fx, RELM_FX_COPY), 0);
	mark = 0;
	ck_assert_int_eq(relm_rel_fanout(a1.rel, &a1.env, &fx, mark), 0);
	ck_assert_uint_eq(count(&fx, RELM_FX_COPY), 1);
	f = find(&fx, RELM_FX_COPY);
	ck_assert_int_eq(relm_sib_deliver_decode(&d, f->data, f->len), 0);
	ck_assert(memcmp(d.id, id, RELM_ID_LEN) == 0 && d.flags == 0 && d.status == RELM_STATUS_QUEUED);
	ck_assert(d.body_len == 8 && memcmp(d.body, "hub says", 8) == 0);
	/* a2 holds no state: its history from the deliver */
	ck_assert_int_eq(relm_deliver_apply(&a2.env, NULL, f->data, f->len, rel, &fa), 0);
	ck_assert(memcmp(rel, a1.rel->id, RELM_ID_LEN) == 0);
	ck_assert_ptr_nonnull(f = find(&fa, RELM_FX_DELIVER));
	ck_assert(!f->direction_in && f->origin == RELM_ORIGIN_SIBLING);
	tu_apply(&a2, &fa);
	ck_assert(tu_hist_has(&a2, id, 0));
	ck_assert_int_eq(post_to_b(&fx), 0);
	tu_apply(&a1, &fx);

	/* b answers: the hub's receipt-less step delivers the message in, and
	 * later the receipt's status change */
	tu_send(&b, "b says", NULL);
	clock_ms += 3000;
	tu_tick(&b);                            /* b's receipt for "hub says" too */
	nd = 0;
	while (b.nout) {
		struct tu_blob e = tu_take(&b, 0);
		ck_assert_int_ge(relm_rel_receive(a1.rel, &a1.env, e.buf, e.len, &fx), 0);
		tu_blob_free(&e);
	}
	ck_assert_int_eq(relm_rel_fanout(a1.rel, &a1.env, &fx, 0), 0);
	for (size_t i = 0; i < fx.n; i++) {
		if (fx.v[i].type != RELM_FX_COPY)
			continue;
		nd++;
		ck_assert_int_eq(relm_deliver_apply(&a2.env, NULL, fx.v[i].data, fx.v[i].len, rel, &fa), 0);
	}
	ck_assert_uint_eq(nd, 2);               /* b's message in, "hub says" delivered */
	ck_assert_uint_eq(count(&fa, RELM_FX_DELIVER), 1);
	ck_assert(find(&fa, RELM_FX_DELIVER)->direction_in);
	ck_assert_int_eq(find(&fa, RELM_FX_DELIVER)->origin, RELM_ORIGIN_REMOTE);
	ck_assert_ptr_nonnull(f = find(&fa, RELM_FX_STATUS));
	ck_assert(memcmp(f->msg_id, id, RELM_ID_LEN) == 0 && f->status == RELM_STATUS_DELIVERED);
	tu_apply(&a2, &fa);
	tu_apply(&a1, &fx);

	/* a2's own request, served by the hub: its deliver settles the
	 * request and adds no second row */
	ck_assert_int_eq(relm_request_make(&a2.env, a2.rel->id, "from a2", 7, NULL, mine, &fa), 0);
	f = find(&fa, RELM_FX_SIB_TO);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(relm_rel_serve(a1.rel, &a1.env, f->data, f->len, 0, &fx), 0);
	tu_apply(&a2, &fa);
	ck_assert_int_eq(relm_rel_fanout(a1.rel, &a1.env, &fx, 0), 0);
	ck_assert_ptr_nonnull(f = find(&fx, RELM_FX_COPY));
	ck_assert_int_eq(relm_deliver_apply(&a2.env, NULL, f->data, f->len, rel, &fa), 0);
	ck_assert_uint_eq(count(&fa, RELM_FX_DELIVER), 0);
	ck_assert_ptr_nonnull(f = find(&fa, RELM_FX_REQ_DEL));
	ck_assert(memcmp(f->msg_id, mine, RELM_ID_LEN) == 0);
	tu_apply(&a2, &fa);
	ck_assert_uint_eq(a2.dup_deliveries, 0);
	/* bytes that are not a deliver change nothing */
	ck_assert_int_eq(relm_deliver_apply(&a2.env, NULL, (const uint8_t *)"\x06", 1, rel, &fa), RELM_ETRUNCATED);
	ck_assert_uint_eq(fa.n, 0);
	relm_effects_clear(&fx);
	relm_effects_clear(&fa);
}
END_TEST

/* A non-hub's view: the hub's relationship effects are not its own. */
START_TEST(test_fanout_only_the_hub_delivers)
{
	struct relm_effects fx;
	uint8_t id[RELM_ID_LEN];

	view(RELM_STRATEGY_FANOUT, &a2);
	relm_effects_init(&fx);
	/* a1 is no hub: if it were stepped, it makes no deliveries */
	b.devs.strategy = RELM_STRATEGY_LEADERLESS;
	tu_send(&b, "x", id);
	{
		struct tu_blob e = tu_take(&b, 0);
		ck_assert_int_eq(relm_rel_receive(a1.rel, &a1.env, e.buf, e.len, &fx), 0);
		tu_blob_free(&e);
	}
	ck_assert_uint_eq(count(&fx, RELM_FX_DELIVER), 1);
	ck_assert_int_eq(relm_rel_fanout(a1.rel, &a1.env, &fx, 0), 0);
	ck_assert_uint_eq(count(&fx, RELM_FX_COPY), 0);
	relm_effects_clear(&fx);
}
END_TEST

/* a1's history, as far as the hub's own request goes (tu parties keep ids
 * only) */
static uint8_t own_id[RELM_ID_LEN];
static uint64_t own_ts;

static int own_get(void *ctx, const uint8_t rel[16], const uint8_t id[16], int *kind, uint64_t *ts,
                   uint8_t **body, size_t *len)
{
	(void)ctx;
	(void)rel;
	if (memcmp(id, own_id, RELM_ID_LEN) != 0)
		return RELM_ENOTFOUND;
	*kind = RELM_KIND_TEXT;
	*ts = own_ts;
	*body = malloc(4);
	ck_assert_ptr_nonnull(*body);
	memcpy(*body, "mine", 4);
	*len = 4;
	return 0;
}

/* A hub's own request, sent once it is the hub, reaches its siblings as a
 * deliver; a sibling that still holds state keeps it as a sibling's
 * message, delivered when the remote's receipt comes. */
START_TEST(test_fanout_hub_own_request)
{
	struct relm_effects fx, fa;
	const struct relm_fx *f;
	uint8_t id[RELM_ID_LEN], rel[RELM_ID_LEN], *req;
	size_t reqlen;
	int k;

	relm_effects_init(&fx);
	relm_effects_init(&fa);
	view(RELM_STRATEGY_LEADER, &a2);        /* a1 asks a2 ... */
	ck_assert_int_eq(relm_request_make(&a1.env, a1.rel->id, "mine", 4, NULL, id, &fx), 0);
	memcpy(own_id, id, RELM_ID_LEN);
	own_ts = clock_ms;
	a1.env.history_get = own_get;
	f = find(&fx, RELM_FX_REQ_PUT);
	req = malloc(f->len);
	ck_assert_ptr_nonnull(req);
	memcpy(req, f->data, f->len);
	reqlen = f->len;
	tu_apply(&a1, &fx);
	view(RELM_STRATEGY_FANOUT, &a1);        /* ... then becomes the hub */
	ck_assert_int_eq(relm_rel_serve(a1.rel, &a1.env, req, reqlen, 1, &fx), 0);
	ck_assert_int_eq(relm_rel_fanout(a1.rel, &a1.env, &fx, 0), 0);
	ck_assert_uint_eq(count(&fx, RELM_FX_COPY), 1);
	f = find(&fx, RELM_FX_COPY);
	{
		struct relm_sib_deliver d;
		ck_assert_int_eq(relm_sib_deliver_decode(&d, f->data, f->len), 0);
		ck_assert(memcmp(d.id, id, RELM_ID_LEN) == 0 && d.ts == own_ts);
		ck_assert(d.body_len == 4 && memcmp(d.body, "mine", 4) == 0);
	}
	/* a2 never adopted fanout: it holds state, and records the message */
	a2.devs.strategy = RELM_STRATEGY_LEADERLESS;
	ck_assert_int_eq(relm_deliver_apply(&a2.env, a2.rel, f->data, f->len, rel, &fa), 0);
	ck_assert_ptr_nonnull(find(&fa, RELM_FX_DELIVER));
	ck_assert_ptr_nonnull(find(&fa, RELM_FX_OUT_PUT));
	ck_assert_int_ge(k = tu_outgoing_index(a2.rel, id), 0);
	ck_assert(a2.rel->out[k].sibling);
	tu_apply(&a2, &fa);
	/* a deliver for another relationship than rel is refused (both sides
	 * share the id: a2's state made to look like another one's) */
	a2.rel->id[0] ^= 0xff;
	ck_assert_int_eq(relm_deliver_apply(&a2.env, a2.rel, f->data, f->len, rel, &fa), RELM_EINVAL);
	a2.rel->id[0] ^= 0xff;
	ck_assert_uint_eq(fa.n, 0);
	/* the remote's receipt marks it delivered on a2 too */
	ck_assert_int_eq(post_to_b(&fx), 0);
	tu_apply(&a1, &fx);
	clock_ms += 3000;
	tu_tick(&b);
	b_to_a();
	ck_assert_int_lt(tu_outgoing_index(a2.rel, id), 0);
	ck_assert_uint_ge(a2.delivered, 1);
	free(req);
	relm_effects_clear(&fx);
	relm_effects_clear(&fa);
}
END_TEST

static Suite *strategy_suite(void)
{
	Suite *s = suite_create("strategy");
	TCase *tc;

	tc = tcase_create("views");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_views);
	tcase_add_test(tc, test_strategy_newer);
	tcase_add_test(tc, test_leader_non_holder_is_silent);
	tcase_add_test(tc, test_leader_non_holder_asks_again);
	suite_add_tcase(s, tc);

	tc = tcase_create("requests");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_request_served_once);
	tcase_add_test(tc, test_request_follows_the_holder);
	tcase_add_test(tc, test_request_refused_unchanged);
	tcase_add_test(tc, test_lead_takes_over_retransmission);
	suite_add_tcase(s, tc);

	tc = tcase_create("fanout");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_fanout_delivers);
	tcase_add_test(tc, test_fanout_only_the_hub_delivers);
	tcase_add_test(tc, test_fanout_hub_own_request);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(strategy_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

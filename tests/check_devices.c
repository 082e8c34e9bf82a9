/*
 * check_devices.c — the engine's rules for several devices of one proton
 * (proto/devices.md §5), through rel.h: copies out and in, a sibling's node
 * unblocking the pending set, one device answering a receipt batch, the
 * takeover of a silent sibling's retransmission, pending copies and repair
 * by state, carried payloads, and copy-verify-commit on bad copies.
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
#include "wire/sibling.h"
#include "wire/payload.h"
#include "crypto/crypto.h"
#include "error.h"

static uint64_t clock_ms;
static struct tu_party a1, a2, b;
static struct tu_party *A[2] = { &a1, &a2 };

/* Deliver b's envelopes to every A device and the A devices' to b, and
 * every copy to the sibling, until nothing moves. */
static void flow(void)
{
	int moved = 1;

	while (moved) {
		moved = 0;
		for (int i = 0; i < 2; i++) {
			while (A[i]->nout) {
				struct tu_blob e = tu_take(A[i], 0);
				tu_recv(&b, e.buf, e.len);
				tu_blob_free(&e);
				moved = 1;
			}
			if (A[i]->ncopy) {
				tu_copies_to(A[i], A, 2);
				moved = 1;
			}
		}
		while (b.nout) {
			struct tu_blob e = tu_take(&b, 0);
			for (int i = 0; i < 2; i++)
				tu_recv(A[i], e.buf, e.len);
			tu_blob_free(&e);
			moved = 1;
		}
	}
}

static void tick_all(uint64_t ms)
{
	clock_ms += ms;
	tu_tick(&a1);
	tu_tick(&a2);
	tu_tick(&b);
	flow();
}

static void setup(void)
{
	clock_ms = 1700000000000ull;
	tu_party_init(&a1, &clock_ms, 1);
	tu_party_init(&b, &clock_ms, 2);
	tu_pair(&a1, &b, RELM_MODE_TREE, RELM_MODE_TREE, 1);
	/* settle the set-up as one device, then a2 joins with a1's state */
	for (int i = 0; i < 4; i++) {
		while (a1.nout || b.nout) {
			while (a1.nout) { struct tu_blob e = tu_take(&a1, 0); tu_recv(&b, e.buf, e.len); tu_blob_free(&e); }
			while (b.nout) { struct tu_blob e = tu_take(&b, 0); tu_recv(&a1, e.buf, e.len); tu_blob_free(&e); }
		}
		clock_ms += 3000;
		tu_tick(&a1);
		tu_tick(&b);
	}
	tu_clone(&a2, &a1, &clock_ms, 3);
	tu_devices(A, 2);
}

static void teardown(void)
{
	tu_party_free(&a1);
	tu_party_free(&a2);
	tu_party_free(&b);
}

/* ---- copies ------------------------------------------------------------------ */

START_TEST(test_every_send_is_copied)
{
	struct tu_blob c;
	struct relm_sib_msg m;
	struct relm_payload p;
	uint8_t id[RELM_ID_LEN];

	/* b spoke last: a1's send makes a new node, and the copy carries it */
	tu_send(&b, "hello a", NULL);
	flow();
	tick_all(2500 + RELM_RECEIPT_STAGGER_MS);
	ck_assert_uint_eq(a1.ncopy + a2.ncopy, 0);
	tu_send(&a1, "from a1", id);
	ck_assert_uint_eq(a1.ncopy, 1);
	c = tu_take_copy(&a1);
	ck_assert_int_eq(relm_sib_decode(&m, c.buf, c.len), 0);
	ck_assert_int_eq(m.type, RELM_SIB_COPY);
	ck_assert(memcmp(m.u.copy.rel, a1.rel->id, RELM_ID_LEN) == 0);
	ck_assert(m.u.copy.flags & RELM_SIB_F_CREATED);
	{
		int k = relm_tree_find(&a1.rel->tree, m.u.copy.node);
		ck_assert_int_ge(k, 0);
		ck_assert(memcmp(a1.rel->tree.nodes[k].priv, m.u.copy.priv, RELM_KEY_LEN) == 0);
		ck_assert_uint_eq(m.u.copy.n, 0);
		ck_assert_uint_eq(a1.rel->tree.nodes[k].n, 1);
	}
	ck_assert_int_eq(relm_payload_decode_json(&p, m.u.copy.payload, m.u.copy.payload_len), 0);
	ck_assert(memcmp(p.id, id, RELM_ID_LEN) == 0);
	ck_assert_str_eq(p.body, "from a1");
	relm_payload_clear(&p);

	/* a2 places the node with the same keys and counter, and records the
	 * message as a sibling's */
	ck_assert_int_eq(tu_copy_in(&a2, &a1, c.buf, c.len), 0);
	{
		int k1 = relm_tree_find(&a1.rel->tree, m.u.copy.node);
		int k2 = relm_tree_find(&a2.rel->tree, m.u.copy.node);
		ck_assert_int_ge(k2, 0);
		ck_assert(memcmp(a1.rel->tree.nodes[k1].rk, a2.rel->tree.nodes[k2].rk, RELM_KEY_LEN) == 0);
		ck_assert(memcmp(a1.rel->tree.nodes[k1].ck, a2.rel->tree.nodes[k2].ck, RELM_KEY_LEN) == 0);
		ck_assert_uint_eq(a2.rel->tree.nodes[k2].n, 1);
		ck_assert_int_eq(a2.rel->tree.nodes[k2].flags & RELM_NODE_OWN, 0);
	}
	ck_assert(tu_hist_has(&a2, id, 0));
	ck_assert_uint_eq(a2.sibling_deliveries, 1);
	ck_assert_int_ge(tu_outgoing_index(a2.rel, id), 0);
	/* a duplicate copy changes nothing */
	{
		struct tu_blob before = tu_state(&a2), after;
		ck_assert_int_eq(tu_copy_in(&a2, &a1, c.buf, c.len), 0);
		after = tu_state(&a2);
		ck_assert_uint_eq(a2.dup_deliveries, 0);
		tu_blob_free(&before);
		tu_blob_free(&after);
	}
	/* a2's next send continues the counter on the shared node: no key reuse */
	tu_send(&a2, "from a2", NULL);
	{
		struct tu_blob c2 = tu_take_copy(&a2);
		struct relm_sib_msg m2;
		ck_assert_int_eq(relm_sib_decode(&m2, c2.buf, c2.len), 0);
		ck_assert(memcmp(m2.u.copy.node, m.u.copy.node, RELM_ID_LEN) == 0);
		ck_assert_uint_eq(m2.u.copy.n, 1);
		ck_assert_int_eq(m2.u.copy.flags & RELM_SIB_F_CREATED, 0);
		tu_blob_free(&c2);
	}
	tu_blob_free(&c);
}
END_TEST

/* b answers on a node only a1 knows: at a2 the envelope waits in the
 * pending set until a1's copy brings the node, then it opens. */
START_TEST(test_copy_unblocks_pending)
{
	struct tu_blob c, e;
	uint8_t id[RELM_ID_LEN];

	tu_send(&b, "b speaks", NULL);
	flow();
	tick_all(2500 + RELM_RECEIPT_STAGGER_MS);
	tu_send(&a1, "a1 speaks", NULL);
	c = tu_take_copy(&a1);                 /* held back from a2 */
	e = tu_take(&a1, a1.nout - 1);
	ck_assert_int_eq(tu_recv(&b, e.buf, e.len), 0);
	tu_blob_free(&e);
	tu_send(&b, "answer on a1's node", id);
	e = tu_take(&b, b.nout - 1);
	ck_assert_int_eq(tu_recv(&a2, e.buf, e.len), RELM_EPENDING);
	ck_assert(!tu_hist_has(&a2, id, 1));
	ck_assert_uint_eq(a2.rel->npending, 1);
	ck_assert_int_eq(tu_copy_in(&a2, &a1, c.buf, c.len), 0);
	ck_assert(tu_hist_has(&a2, id, 1));
	ck_assert_uint_eq(a2.rel->npending, 0);
	tu_blob_free(&e);
	tu_blob_free(&c);
}
END_TEST

/* ---- receipts ------------------------------------------------------------------ */

/* Both devices owe the receipt; the one of rank 0 answers at the delay a
 * single device would, its copy silences the other: b gets ONE receipt. */
START_TEST(test_one_device_answers)
{
	uint8_t id[RELM_ID_LEN];
	size_t receipts = 0;
	uint64_t t0;

	tu_send(&b, "ack me once", id);
	{
		struct tu_blob e = tu_take(&b, b.nout - 1);
		ck_assert_int_eq(tu_recv(&a1, e.buf, e.len), 0);
		ck_assert_int_eq(tu_recv(&a2, e.buf, e.len), 0);
		tu_blob_free(&e);
	}
	ck_assert_uint_eq(a1.rel->nacks_due, 1);
	ck_assert_uint_eq(a2.rel->nacks_due, 1);
	/* exactly one of them is first, the other waits a stagger longer */
	{
		uint64_t d1 = a1.rel->receipt_due_ms, d2 = a2.rel->receipt_due_ms;
		uint64_t first = d1 < d2 ? d1 : d2, second = d1 < d2 ? d2 : d1;
		t0 = clock_ms;
		ck_assert_uint_le(first, t0 + RELM_RECEIPT_DELAY_MAX_MS);
		ck_assert_uint_ge(second, t0 + RELM_RECEIPT_DELAY_MIN_MS + RELM_RECEIPT_STAGGER_MS);
	}
	for (int step = 0; step < 40; step++) {
		clock_ms += 250;
		tu_tick(&a1);
		tu_tick(&a2);
		for (int i = 0; i < 2; i++) {
			while (A[i]->nout) {
				struct tu_blob e = tu_take(A[i], 0);
				receipts++;
				ck_assert_int_eq(tu_recv(&b, e.buf, e.len), 0);
				tu_blob_free(&e);
			}
			tu_copies_to(A[i], A, 2);
		}
	}
	ck_assert_uint_eq(receipts, 1);
	ck_assert_uint_eq(a1.rel->nacks_due + a2.rel->nacks_due, 0);
	ck_assert_uint_eq(a1.rel->receipt_due_ms + a2.rel->receipt_due_ms, 0);
	ck_assert_uint_eq(b.delivered, 2);     /* the hello earlier, and this one */
}
END_TEST

/* When the first-ranked device never answers (its copy never comes), the
 * other answers a stagger later: nothing stays unacknowledged. */
START_TEST(test_second_device_answers_when_first_is_silent)
{
	struct tu_party *first, *second;
	size_t before = b.delivered;

	tu_send(&b, "someone ack me", NULL);
	{
		struct tu_blob e = tu_take(&b, b.nout - 1);
		tu_recv(&a1, e.buf, e.len);
		tu_recv(&a2, e.buf, e.len);
		tu_blob_free(&e);
	}
	first = a1.rel->receipt_due_ms < a2.rel->receipt_due_ms ? &a1 : &a2;
	second = first == &a1 ? &a2 : &a1;
	clock_ms += RELM_RECEIPT_DELAY_MAX_MS + RELM_RECEIPT_STAGGER_MS + 1;
	tu_tick(second);                       /* the first is off-line */
	ck_assert_uint_eq(second->nout, 1);
	{
		struct tu_blob e = tu_take(second, 0);
		ck_assert_int_eq(tu_recv(&b, e.buf, e.len), 0);
		tu_blob_free(&e);
	}
	ck_assert_uint_eq(b.delivered, before + 1);
}
END_TEST

/* ---- retransmission: the sender's job, a sibling's fallback ------------------------ */

START_TEST(test_sibling_takes_over_a_silent_senders_message)
{
	uint8_t id[RELM_ID_LEN];
	struct tu_blob e, c;

	tu_send(&a1, "a1 goes away after this", id);
	e = tu_take(&a1, a1.nout - 1);          /* lost on the way to b */
	tu_blob_free(&e);
	c = tu_take_copy(&a1);
	ck_assert_int_eq(tu_copy_in(&a2, &a1, c.buf, c.len), 0);
	tu_blob_free(&c);
	/* before the takeover time a2 does not retransmit it */
	clock_ms += RELM_RETX_TAKEOVER_MS - 1000;
	tu_tick(&a2);
	ck_assert_uint_eq(a2.nout, 0);
	clock_ms += 2000;
	tu_tick(&a2);
	ck_assert_uint_eq(a2.nout, 1);
	e = tu_take(&a2, 0);
	ck_assert_int_eq(tu_recv(&b, e.buf, e.len), 0);
	ck_assert(tu_hist_has(&b, id, 1));
	tu_blob_free(&e);
	/* b's receipt reaches a2 (and would reach a1): delivered, no more tries */
	tick_all(RELM_RECEIPT_DELAY_MAX_MS + 1);
	ck_assert_int_lt(tu_outgoing_index(a2.rel, id), 0);
}
END_TEST

/* A message no receipt ever covers ends `failed` on every device, and is
 * then sent by nobody.  Before, a sibling that was off-line while the
 * sender made its 24 tries took over afterwards with a count of its own —
 * a second round of tries — and the sender, its record gone, adopted the
 * sibling's retries and took over in turn: the message went round for
 * ever.  Now a copy of each try counts at the sibling too, and the
 * message's age (its timestamp, the same on every device) bounds every
 * device's tries (RELM_RETX_MAX_AGE_MS, proto/ratchet.md §6.4). */
START_TEST(test_retransmission_ends_across_siblings)
{
	uint8_t id[RELM_ID_LEN];
	uint64_t sent = clock_ms, last_post = 0;

	tu_send(&a1, "nobody receipts this", id);
	for (int m = 0; m < 4 * 1440; m++) {           /* four days, a minute at a time */
		for (int i = 0; i < 2; i++) {
			while (A[i]->nout) {             /* every envelope lost: no receipt */
				struct tu_blob e = tu_take(A[i], 0);
				tu_blob_free(&e);
				last_post = clock_ms;
			}
			if (A[i]->ncopy)
				tu_copies_to(A[i], A, 2);
		}
		clock_ms += 60 * 1000;
		tu_tick(&a1);
		if (m >= 20 * 60)                      /* a2 is off-line the first 20 hours */
			tu_tick(&a2);
	}
	ck_assert_int_lt(tu_outgoing_index(a1.rel, id), 0);
	ck_assert_int_lt(tu_outgoing_index(a2.rel, id), 0);
	ck_assert_uint_eq(a1.failed, 1);
	ck_assert_uint_le(a2.failed, 1);
	ck_assert_msg(last_post <= sent + RELM_RETX_MAX_AGE_MS + 60 * 1000,
		      "sent again %llu min after the first send",
		      (unsigned long long)((last_post - sent) / 60000));
}
END_TEST

/* ---- pending copies and repair ------------------------------------------------------ */

/* A copy whose parent a2 does not hold waits; after the repair time a2 asks
 * its sender for the state, and merging that state places everything. */
START_TEST(test_pending_copy_and_repair)
{
	struct tu_blob c1, c2, e;
	uint8_t id[RELM_ID_LEN];

	/* b → a1 only; a1 answers (new node under b's node, which a2 lacks) */
	tu_send(&b, "only a1 reads this yet", NULL);
	e = tu_take(&b, b.nout - 1);
	ck_assert_int_eq(tu_recv(&a1, e.buf, e.len), 0);
	tu_blob_free(&e);
	tu_send(&a1, "a1 answers", id);
	c1 = tu_take_copy(&a1);
	ck_assert_int_eq(tu_copy_in(&a2, &a1, c1.buf, c1.len), 0);
	ck_assert_uint_eq(a2.rel->npcopies, 1);       /* parent unknown: pending */
	ck_assert(tu_hist_has(&a2, id, 0));           /* the message is recorded anyway */
	ck_assert_uint_eq(a2.state_reqs, 0);
	clock_ms += RELM_REPAIR_AFTER_MS;
	tu_tick(&a2);
	ck_assert_uint_eq(a2.state_reqs, 1);
	ck_assert(memcmp(a2.state_req_dev, a1.devs.self, RELM_ID_LEN) == 0);
	/* a1 answers with its state; a2 merges it */
	{
		struct relm_effects fx;
		relm_effects_init(&fx);
		ck_assert_int_eq(relm_rel_merge(a2.rel, &a2.env, a1.rel, &fx), 0);
		tu_apply(&a2, &fx);
		relm_effects_clear(&fx);
	}
	ck_assert_uint_eq(a2.rel->npcopies, 0);
	ck_assert_int_eq(relm_rel_chosen(a2.rel) >= 0, 1);
	ck_assert(memcmp(a2.rel->tree.nodes[relm_rel_chosen(a2.rel)].id,
	                 a1.rel->tree.nodes[relm_rel_chosen(a1.rel)].id, RELM_ID_LEN) == 0);
	/* and the envelope b sent, which a2 reads late, now opens */
	tu_send(&b, "for both", NULL);
	e = tu_take(&b, b.nout - 1);
	ck_assert_int_eq(tu_recv(&a2, e.buf, e.len), 0);
	tu_blob_free(&e);
	/* a second copy on the placed node just advances the counter */
	tu_send(&a1, "again", NULL);
	c2 = tu_take_copy(&a1);
	ck_assert_int_eq(tu_copy_in(&a2, &a1, c2.buf, c2.len), 0);
	tu_blob_free(&c1);
	tu_blob_free(&c2);
}
END_TEST

/* ---- siblings share what they accept ------------------------------------------------- */

START_TEST(test_carry_adds_to_history)
{
	uint8_t *carry = NULL, id[RELM_ID_LEN];
	size_t len = 0;
	struct relm_payload p;
	uint8_t *pt;
	size_t ptlen, ulen;

	memset(&p, 0, sizeof p);
	randombytes_buf(id, sizeof id);
	memcpy(p.id, id, RELM_ID_LEN);
	p.kind = RELM_KIND_TEXT;
	strcpy(p.kind_str, "text");
	p.ts = clock_ms;
	p.body = (char *)"accepted by a sibling";
	p.body_len = strlen(p.body);
	ck_assert_int_eq(relm_payload_encode(&pt, &ptlen, &p), 0);
	ck_assert_int_eq(sodium_unpad(&ulen, pt, ptlen, RELM_PAD_BLOCK), 0);
	ck_assert_int_eq(relm_sib_carry_new(&carry, &len, a2.rel->id), 0);
	ck_assert_int_eq(relm_sib_carry_append(&carry, &len, pt, ulen), 0);
	ck_assert_int_eq(tu_copy_in(&a2, &a1, carry, len), 0);
	ck_assert(tu_hist_has(&a2, id, 1));
	/* once only */
	ck_assert_int_eq(tu_copy_in(&a2, &a1, carry, len), 0);
	ck_assert_uint_eq(a2.dup_deliveries, 0);
	relm_payload_buf_free(pt, ptlen);
	relm_sib_buf_free(carry, len);
}
END_TEST

/* ---- bad copies ------------------------------------------------------------------------ */

/* Every truncation and every flipped byte of a copy either is refused with
 * the relationship byte for byte unchanged, or is a copy the engine may
 * act on (a flip in the payload's body, the counter) — never a crash. */
START_TEST(test_bad_copies_change_nothing)
{
	struct tu_blob c, before, after;
	uint8_t *m;

	tu_send(&b, "b", NULL);
	flow();
	tick_all(2500 + RELM_RECEIPT_STAGGER_MS);
	tu_send(&a1, "to be copied", NULL);
	c = tu_take_copy(&a1);
	m = malloc(c.len);
	ck_assert_ptr_nonnull(m);
	before = tu_state(&a2);
	for (size_t cut = 0; cut < c.len; cut++) {
		ck_assert_int_ne(tu_copy_in(&a2, &a1, c.buf, cut), 0);
		after = tu_state(&a2);
		ck_assert(tu_blob_eq(before, after));
		tu_blob_free(&after);
	}
	/* another relationship's copy */
	memcpy(m, c.buf, c.len);
	m[1] ^= 1;
	ck_assert_int_eq(tu_copy_in(&a2, &a1, m, c.len), RELM_EINVAL);
	/* a created node whose id does not match its parent and key */
	memcpy(m, c.buf, c.len);
	m[1 + 16 + 1] ^= 1;
	ck_assert_int_eq(tu_copy_in(&a2, &a1, m, c.len), RELM_EMALFORMED);
	/* a private key that is not the public key's (byte 5: X25519 clamps
	 * bits of bytes 0 and 31 away) */
	memcpy(m, c.buf, c.len);
	m[1 + 16 + 1 + 16 + 4 + 16 + 32 + 5] ^= 1;
	ck_assert_int_eq(tu_copy_in(&a2, &a1, m, c.len), 0);   /* accepted, node refused */
	after = tu_state(&a2);
	ck_assert_uint_eq(a2.rel->npcopies, 0);
	ck_assert_int_lt(relm_tree_find(&a2.rel->tree, c.buf + 1 + 16 + 1), 0);
	tu_blob_free(&after);
	tu_blob_free(&before);
	free(m);
	tu_blob_free(&c);
}
END_TEST

/* ---- sibling sessions ------------------------------------------------------------- */

static int sibling_frames(struct relm_effects *fx, uint8_t *out, size_t cap, size_t *len)
{
	int n = 0;
	for (size_t i = 0; i < fx->n; i++)
		if (fx->v[i].type == RELM_FX_SIBLING) {
			ck_assert_uint_le(fx->v[i].len, cap);
			memcpy(out, fx->v[i].data, fx->v[i].len);
			*len = fx->v[i].len;
			n++;
		}
	return n;
}

/* Two devices' session: strict, carrying binary frames both ways, never
 * acknowledged; a frame is refused on a relationship that is not a
 * sibling session. */
START_TEST(test_sibling_session_frames)
{
	struct tu_party x, y;
	struct relm_effects fx;
	static uint8_t frame[RELM_SIBLING_MAX], got[RELM_SIBLING_MAX];
	size_t len = 0;

	tu_party_init(&x, &clock_ms, 11);
	tu_party_init(&y, &clock_ms, 12);
	tu_pair(&x, &y, RELM_MODE_STRICT, RELM_MODE_STRICT, 0);
	x.rel->sibling_session = y.rel->sibling_session = 1;
	relm_effects_init(&fx);
	tu_rand_bytes(frame, sizeof frame);
	frame[0] = RELM_SIB_STATE_REQ;
	/* y (the accepter) may send at once; x (the inviter) once y's hello is in */
	for (int round = 0; round < 3; round++) {
		struct tu_party *from = round % 2 ? &x : &y, *to = from == &x ? &y : &x;
		size_t flen = round == 2 ? sizeof frame : (size_t)(17 + round);
		ck_assert_int_eq(relm_rel_send_sibling(from->rel, &from->env, frame, flen, &fx), 0);
		tu_apply(from, &fx);
		ck_assert_uint_eq(from->nout, 1);
		{
			struct tu_blob e = tu_take(from, 0);
			uint32_t owed = to->rel->nacks_due;   /* x owes the hello's */
			ck_assert_int_eq(relm_rel_receive(to->rel, &to->env, e.buf, e.len, &fx), 0);
			ck_assert_int_eq(sibling_frames(&fx, got, sizeof got, &len), 1);
			ck_assert_uint_eq(len, flen);
			ck_assert(memcmp(got, frame, flen) == 0);
			/* a frame is not a message: no acknowledgement owed */
			ck_assert_uint_eq(to->rel->nacks_due, owed);
			tu_apply(to, &fx);
			tu_blob_free(&e);
		}
	}
	ck_assert_int_eq(relm_rel_send_sibling(x.rel, &x.env, frame, RELM_SIBLING_MAX + 1, &fx), RELM_EINVAL);
	ck_assert_int_eq(relm_rel_send_sibling(x.rel, &x.env, frame, 0, &fx), RELM_EINVAL);
	/* a relationship with a remote proton never carries frames */
	ck_assert_int_eq(relm_rel_send_sibling(a1.rel, &a1.env, frame, 20, &fx), RELM_EINVAL);
	x.rel->sibling_session = 0;
	ck_assert_int_eq(relm_rel_send_sibling(y.rel, &y.env, frame, 20, &fx), 0);
	tu_apply(&y, &fx);
	{
		struct tu_blob e = tu_take(&y, 0), before = tu_state(&x), after;
		ck_assert_int_eq(relm_rel_receive(x.rel, &x.env, e.buf, e.len, &fx), RELM_EMALFORMED);
		after = tu_state(&x);
		ck_assert(tu_blob_eq(before, after));
		tu_blob_free(&e);
		tu_blob_free(&before);
		tu_blob_free(&after);
	}
	relm_effects_clear(&fx);
	tu_party_free(&x);
	tu_party_free(&y);
}
END_TEST

static Suite *devices_suite(void)
{
	Suite *s = suite_create("devices");
	TCase *tc;

	tc = tcase_create("copies");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_every_send_is_copied);
	tcase_add_test(tc, test_copy_unblocks_pending);
	tcase_add_test(tc, test_bad_copies_change_nothing);
	suite_add_tcase(s, tc);

	tc = tcase_create("sessions");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_sibling_session_frames);
	suite_add_tcase(s, tc);

	tc = tcase_create("receipts");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_one_device_answers);
	tcase_add_test(tc, test_second_device_answers_when_first_is_silent);
	suite_add_tcase(s, tc);

	tc = tcase_create("retransmission");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_sibling_takes_over_a_silent_senders_message);
	tcase_add_test(tc, test_retransmission_ends_across_siblings);
	suite_add_tcase(s, tc);

	tc = tcase_create("repair");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_pending_copy_and_repair);
	tcase_add_test(tc, test_carry_adds_to_history);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(devices_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

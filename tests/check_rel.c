/*
 * check_rel.c — the relationship engine through its public API (rel.h):
 * set-up, exchange in both modes, a 10,000-message random schedule,
 * tampering, truncation/garbage, MAX_SKIP and the total cap, synchronous
 * send conflicts against strict and tree peers, the fork rule, pruning,
 * retransmission and the state blob.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_rand.h"
#include "util_engine.h"
#include "engine/rel.h"
#include "error.h"
#include "crypto/crypto.h"
#include "wire/envelope.h"
#include "wire/payload.h"

/* State blob layout of version 6 (lib/engine/rel_blob.c; written by
 * relm_rel_encode_version), for the tests that build older versions
 * from it:  "RLS" v id mode side ad ipk_self ipk_remote mbox_pk
 * mbox_sk remote_mbox_pk, then (v5) has_gate gate_key ... */
enum { GATE_AT = 4 + 16 + 1 + 1 + 64 + 32 + 32 + 32 + 64 + 32, GATE_FIELDS = 1 + 32 };
/* ... and (v5) ends with the multi-device tail; empty for one device: three
 * zero counts, batch_first(16), repair_ms(8), sibling_session(1); then (v6)
 * the revocation tail, fixed-size (proto/revocation.md §5).  MULTI_TAIL is
 * both: everything after the statistics. */
enum { REVOKE_TAIL = 8 + 32 + 1 + 64 + 1 + 8 + 8 + 16 + 8 + 16 + 32 };
enum { MULTI_TAIL = 3 + 16 + 8 + 1 + REVOKE_TAIL };

static uint64_t clock_ms;

static void setup(void)
{
	clock_ms = 1700000000000ull;
}

static void advance(uint64_t ms)
{
	clock_ms += ms;
}

/* Move everything in flight both ways until nothing is left; ticks with
 * the clock moving so receipts and retransmissions happen. */
static void settle(struct tu_party *a, struct tu_party *b, int rounds)
{
	for (int r = 0; r < rounds; r++) {
		tu_exchange(a, b, &clock_ms, 1);
		if (!a->nout && !b->nout && a->rel->nout == 0 && b->rel->nout == 0 &&
		    a->rel->nacks_due == 0 && b->rel->nacks_due == 0)
			return;
	}
}

static void pair(struct tu_party *a, struct tu_party *b, enum relm_mode ma, enum relm_mode mb)
{
	tu_party_init(a, &clock_ms, 1);
	tu_party_init(b, &clock_ms, 2);
	tu_pair(a, b, ma, mb, 1);
	settle(a, b, 5);
}

/* ---- set-up ------------------------------------------------------------- */

START_TEST(test_setup_hello_receipted)
{
	struct tu_party a, b;
	tu_party_init(&a, &clock_ms, 1);
	tu_party_init(&b, &clock_ms, 2);
	tu_pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE, _i);
	ck_assert_int_eq(a.nhist, 1);                  /* the hello */
	ck_assert_int_eq(b.rel->initial_pending, 1);
	ck_assert(memcmp(a.rel->id, b.rel->id, RELM_ID_LEN) == 0);
	ck_assert(strncmp(a.rel->remote_mailbox, "127.0.0.2:7427/", 15) == 0);
	ck_assert(strncmp(b.rel->remote_mailbox, "127.0.0.1:7427/", 15) == 0);
	ck_assert(memcmp(a.rel->mbox_pk, b.rel->remote_mbox_pk, 32) == 0);
	ck_assert(memcmp(b.rel->mbox_pk, a.rel->remote_mbox_pk, 32) == 0);
	/* the receipt waits 0.2–2 s, then validates b's first node */
	tu_tick(&a);
	ck_assert_int_eq(a.nout, 0);
	advance(2001);
	tu_tick(&a);
	ck_assert_int_eq(a.nout, 1);
	settle(&a, &b, 3);
	ck_assert_int_eq(b.delivered, 1);
	ck_assert_int_eq(b.rel->initial_pending, 0);
	ck_assert_int_eq(b.rel->nout, 0);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

START_TEST(test_exchange_modes)
{
	static const enum relm_mode modes[4][2] = {
		{ RELM_MODE_TREE, RELM_MODE_TREE }, { RELM_MODE_TREE, RELM_MODE_STRICT },
		{ RELM_MODE_STRICT, RELM_MODE_TREE }, { RELM_MODE_STRICT, RELM_MODE_STRICT },
	};
	struct tu_party a, b;
	uint8_t ids[40][RELM_ID_LEN];

	pair(&a, &b, modes[_i][0], modes[_i][1]);
	for (int k = 0; k < 40; k++) {
		struct tu_party *s = (k % 3 == 0) ? &b : &a, *r = s == &a ? &b : &a;
		tu_send(s, "ping", ids[k]);
		settle(&a, &b, 4);
		ck_assert_msg(tu_hist_has(r, ids[k], 1), "message %d not received (mode %d)", k, _i);
	}
	ck_assert_int_eq(a.dup_deliveries + b.dup_deliveries, 0);
	ck_assert_int_eq(a.rel->nout + b.rel->nout, 0);
	ck_assert_int_eq(a.failed + b.failed, 0);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* ---- the random schedule ----------------------------------------------- */

static void stress(enum relm_mode ma, enum relm_mode mb, int total)
{
	struct tu_party a, b, *pp[2] = { &a, &b };
	uint8_t (*sent[2])[RELM_ID_LEN];
	int nsent[2] = { 0, 0 };
	size_t dups = 0, drops = 0, bad = 0;

	pair(&a, &b, ma, mb);
	sent[0] = calloc((size_t)total, RELM_ID_LEN);
	sent[1] = calloc((size_t)total, RELM_ID_LEN);
	while (nsent[0] + nsent[1] < total) {
		uint64_t r = tu_rand_below(100);
		int who = (int)tu_rand_below(2);
		struct tu_party *s = pp[who], *d = pp[1 - who];
		if (r < 30) {
			char body[64];
			snprintf(body, sizeof body, "m%d from %c", nsent[who], who ? 'b' : 'a');
			tu_send(s, body, sent[who][nsent[who]++]);
		} else if (r < 90 && s->nout) {
			/* deliver one: mostly the oldest, else reordered within 40 */
			size_t win = s->nout < 40 ? s->nout : 40;
			size_t i = tu_rand_below(4) ? 0 : tu_rand_below(win);
			uint64_t fate = tu_rand_below(100);
			struct tu_blob e = tu_take(s, i);
			if (fate < 4) {                 /* loss */
				drops++;
			} else {
				int rc = tu_recv(d, e.buf, e.len);
				if (rc != 0 && rc != RELM_EDUP && rc != RELM_EPENDING &&
				    !(d->rel->mode == RELM_MODE_STRICT && rc == RELM_EREJECTED))
					bad++;
				ck_assert_msg(bad == 0, "unexpected %s (" TU_SEED_FMT ")",
				              relm_errname(rc), TU_SEED_ARG);
				if (fate < 9) {         /* duplication */
					int rc2 = tu_recv(d, e.buf, e.len);
					ck_assert_msg(rc2 != 0, "a duplicate was accepted (" TU_SEED_FMT ")",
					              TU_SEED_ARG);
					dups++;
				}
			}
			tu_blob_free(&e);
		} else {
			advance(tu_rand_below(1500));
			tu_tick(&a);
			tu_tick(&b);
		}
	}
	settle(&a, &b, 400);
	for (int w = 0; w < 2; w++)
		for (int k = 0; k < nsent[w]; k++)
			ck_assert_msg(tu_hist_has(pp[1 - w], sent[w][k], 1),
			              "message %d of %c lost (" TU_SEED_FMT ")", k, w ? 'b' : 'a',
			              TU_SEED_ARG);
	ck_assert_msg(a.dup_deliveries + b.dup_deliveries == 0,
	              "a message was delivered twice (" TU_SEED_FMT ")", TU_SEED_ARG);
	ck_assert_msg(a.rel->nout + b.rel->nout == 0, "unacknowledged at the end (" TU_SEED_FMT ")",
	              TU_SEED_ARG);
	ck_assert_int_eq(a.failed + b.failed, 0);
	ck_assert_uint_gt(dups, 0);
	ck_assert_uint_gt(drops, 0);
	free(sent[0]);
	free(sent[1]);
	tu_party_free(&a);
	tu_party_free(&b);
}

START_TEST(test_stress_tree_10000)
{
	stress(RELM_MODE_TREE, RELM_MODE_TREE, 10000);
}
END_TEST

START_TEST(test_stress_tree_vs_strict)
{
	stress(RELM_MODE_TREE, RELM_MODE_STRICT, 3000);
}
END_TEST

START_TEST(test_stress_strict_vs_strict)
{
	stress(RELM_MODE_STRICT, RELM_MODE_STRICT, 3000);
}
END_TEST

/* ---- tampering, truncation, garbage ------------------------------------- */

START_TEST(test_tamper_every_byte)
{
	struct tu_party a, b;
	struct tu_blob e, before, after;
	enum relm_mode mb = _i ? RELM_MODE_STRICT : RELM_MODE_TREE;

	pair(&a, &b, RELM_MODE_TREE, mb);
	tu_send(&a, "tamper with me", NULL);
	e = tu_take(&a, 0);
	before = tu_state(&b);
	for (size_t i = 0; i < e.len; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			e.buf[i] ^= (uint8_t)(1u << bit);
			int rc = tu_recv(&b, e.buf, e.len);
			e.buf[i] ^= (uint8_t)(1u << bit);
			/* a changed counter may name a used key: EDUP, equally rejected */
			ck_assert_msg(rc != 0, "flip of byte %zu accepted", i);
			/* only a changed ratchet key can look like "parent unknown" */
			if (rc == RELM_EPENDING)
				ck_assert_msg(i >= 2 && i < 34 && mb == RELM_MODE_TREE, "pending at byte %zu", i);
			after = tu_state(&b);
			ck_assert_msg(tu_blob_eq(before, after), "state changed by flip of byte %zu", i);
			tu_blob_free(&after);
		}
	}
	ck_assert_int_eq(b.nhist, 1);                   /* only the hello */
	ck_assert_int_eq(tu_recv(&b, e.buf, e.len), 0);  /* the original still opens */
	ck_assert_int_eq(b.nhist, 2);
	tu_blob_free(&e);
	tu_blob_free(&before);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

START_TEST(test_truncated_and_garbage)
{
	struct tu_party a, b;
	struct tu_blob e, before, after;
	uint8_t junk[600];

	pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE);
	tu_send(&a, "whole", NULL);
	e = tu_take(&a, 0);
	before = tu_state(&b);
	for (size_t n = 0; n < e.len; n++) {
		int rc = tu_recv(&b, e.buf, n);
		ck_assert_msg(rc < 0 && rc != RELM_EPENDING && rc != RELM_EDUP, "prefix %zu: %d", n, rc);
	}
	for (size_t n = 0; n <= sizeof junk; n++) {
		tu_rand_bytes(junk, n);
		if (n > 0 && tu_rand_below(2))
			junk[0] = RELM_WIRE_VERSION;          /* get past the version byte */
		if (n > 1 && tu_rand_below(2))
			junk[1] = 0;
		int rc = tu_recv(&b, junk, n);
		ck_assert_msg(rc < 0 && rc != RELM_EDUP, "garbage of %zu bytes: %d (" TU_SEED_FMT ")", n,
		              rc, TU_SEED_ARG);
	}
	/* the pending set may hold well-formed garbage; the ratchet is unchanged */
	after = tu_state(&b);
	ck_assert(tu_blob_eq(before, after));
	ck_assert_int_eq(tu_recv(&b, e.buf, e.len), 0);
	tu_blob_free(&after);
	tu_blob_free(&before);
	tu_blob_free(&e);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* ---- limits -------------------------------------------------------------- */

START_TEST(test_max_skip)
{
	struct tu_party a, b;
	struct tu_blob before, after, last, first;

	pair(&a, &b, RELM_MODE_TREE, _i ? RELM_MODE_STRICT : RELM_MODE_TREE);
	for (int k = 0; k < RELM_MAX_SKIP + 2; k++)
		tu_send(&a, "x", NULL);
	last = tu_take(&a, a.nout - 1);
	first = tu_take(&a, 0);
	before = tu_state(&b);
	ck_assert_int_eq(tu_recv(&b, last.buf, last.len), RELM_EMAXSKIP);
	after = tu_state(&b);
	ck_assert(tu_blob_eq(before, after));
	ck_assert_int_eq(tu_recv(&b, first.buf, first.len), 0);
	tu_blob_free(&after);
	tu_blob_free(&before);
	tu_blob_free(&last);
	tu_blob_free(&first);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

START_TEST(test_skip_total_cap)
{
	struct tu_party a, b;
	struct tu_blob before, after, m[60];

	pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE);
	b.env.params.max_skipped = 50;
	for (int k = 0; k < 60; k++)
		tu_send(&a, "y", NULL);
	for (int k = 0; k < 60; k++)
		m[k] = tu_take(&a, 0);
	before = tu_state(&b);
	ck_assert_int_eq(tu_recv(&b, m[59].buf, m[59].len), RELM_ESKIPCAP);
	after = tu_state(&b);
	ck_assert(tu_blob_eq(before, after));
	tu_blob_free(&after);
	ck_assert_int_eq(tu_recv(&b, m[40].buf, m[40].len), 0);   /* 40 skipped: fits */
	{
		uint32_t unused = 0, used = 0;
		for (uint32_t k = 0; k < b.rel->nskipped; k++)
			b.rel->skipped[k].used ? used++ : unused++;
		ck_assert_uint_eq(unused, 40);
		ck_assert_uint_ge(used, 1);                     /* m[40]'s key, kept for collisions */
		ck_assert_uint_le(used, RELM_MAX_USED_KEYS);
	}
	before.len = 0;
	tu_blob_free(&before);
	before = tu_state(&b);
	ck_assert_int_eq(tu_recv(&b, m[59].buf, m[59].len), RELM_ESKIPCAP); /* 40 + 18 > 50 */
	after = tu_state(&b);
	ck_assert(tu_blob_eq(before, after));
	/* the skipped ones still open, which frees room */
	for (int k = 0; k < 40; k++)
		ck_assert_int_eq(tu_recv(&b, m[k].buf, m[k].len), 0);
	ck_assert_int_eq(tu_recv(&b, m[59].buf, m[59].len), 0);
	for (int k = 0; k < 60; k++)
		tu_blob_free(&m[k]);
	tu_blob_free(&after);
	tu_blob_free(&before);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* ---- synchronous send conflicts (proto/ratchet.md §3, §5.3, §7) ----------- */

START_TEST(test_conflict_same_counter)
{
	struct tu_party a, a2, b;
	uint8_t id1[16], id2[16];
	struct tu_blob e1, e2;
	int strict = _i;

	pair(&a, &b, RELM_MODE_TREE, strict ? RELM_MODE_STRICT : RELM_MODE_TREE);
	tu_send(&a, "before", NULL);      /* a now has an ours node with a chain */
	{
		struct tu_blob e = tu_take(&a, 0);  /* b's reply is not read: a's leaf stays */
		ck_assert_int_eq(tu_recv(&b, e.buf, e.len), 0);
		tu_blob_free(&e);
	}
	tu_clone(&a2, &a, &clock_ms, 3);
	tu_send(&a, "from device one", id1);
	tu_send(&a2, "from device two", id2);
	e1 = tu_take(&a, 0);
	e2 = tu_take(&a2, 0);
	ck_assert(memcmp(e1.buf + 2, e2.buf + 2, 40) == 0);  /* same key, pn and n */
	ck_assert_int_eq(tu_recv(&b, e1.buf, e1.len), 0);
	if (strict) {
		ck_assert_int_ne(tu_recv(&b, e2.buf, e2.len), 0);   /* strict: reject the second (proto/ratchet.md §7) */
		ck_assert(!tu_hist_has(&b, id2, 1));
	} else {
		ck_assert_int_eq(tu_recv(&b, e2.buf, e2.len), 0);   /* tree: accepts both */
		ck_assert(tu_hist_has(&b, id2, 1));
	}
	ck_assert(tu_hist_has(&b, id1, 1));
	tu_blob_free(&e1);
	tu_blob_free(&e2);
	tu_party_free(&a);
	tu_party_free(&a2);
	tu_party_free(&b);
}
END_TEST

START_TEST(test_conflict_dh_step)
{
	struct tu_party a, a2, b, b2;
	uint8_t id1[16], id2[16];
	struct tu_blob e1, e2;
	int strict = _i;

	pair(&a, &b, RELM_MODE_TREE, strict ? RELM_MODE_STRICT : RELM_MODE_TREE);
	tu_send(&b, "your turn", NULL);  /* a's chosen leaf becomes b's node */
	settle(&a, &b, 5);
	tu_send(&b, "again", NULL);
	{
		struct tu_blob e = tu_take(&b, 0);
		ck_assert_int_eq(tu_recv(&a, e.buf, e.len), 0);
		tu_blob_free(&e);
	}
	tu_clone(&a2, &a, &clock_ms, 3);
	tu_send(&a, "one", id1);         /* both make a new node: a DH step each */
	tu_send(&a2, "two", id2);
	e1 = tu_take(&a, 0);
	e2 = tu_take(&a2, 0);
	ck_assert(memcmp(e1.buf + 2, e2.buf + 2, 32) != 0);
	tu_clone(&b2, &b, &clock_ms, 4);
	ck_assert_int_eq(tu_recv(&b, e1.buf, e1.len), 0);
	if (strict) {
		ck_assert_int_eq(tu_recv(&b, e2.buf, e2.len), RELM_EREJECTED);
		ck_assert(!tu_hist_has(&b, id2, 1));
	} else {
		ck_assert_int_eq(tu_recv(&b, e2.buf, e2.len), 0);
		ck_assert(tu_hist_has(&b, id2, 1));
		ck_assert_int_eq(b.forks, 1);
		/* the other copy receives them the other way round: same choice */
		ck_assert_int_eq(tu_recv(&b2, e2.buf, e2.len), 0);
		ck_assert_int_eq(tu_recv(&b2, e1.buf, e1.len), 0);
		int c1 = relm_rel_chosen(b.rel), c2 = relm_rel_chosen(b2.rel);
		ck_assert(c1 >= 0 && c2 >= 0);
		ck_assert(memcmp(b.rel->tree.nodes[c1].id, b2.rel->tree.nodes[c2].id, RELM_ID_LEN) == 0);
		/* and it is the smaller node id of the two forks */
		int x1 = relm_tree_find_pub(&b.rel->tree, e1.buf + 2, 0);
		int x2 = relm_tree_find_pub(&b.rel->tree, e2.buf + 2, 0);
		int lo = memcmp(b.rel->tree.nodes[x1].id, b.rel->tree.nodes[x2].id, 16) < 0 ? x1 : x2;
		ck_assert_int_eq(c1, lo);
	}
	ck_assert(tu_hist_has(&b, id1, 1));
	tu_blob_free(&e1);
	tu_blob_free(&e2);
	tu_party_free(&a);
	tu_party_free(&a2);
	tu_party_free(&b);
	tu_party_free(&b2);
}
END_TEST

/* ---- pruning (W) and key retention (R) ---------------------------------- */

START_TEST(test_prune_losing_branch)
{
	struct tu_party a, a2, b;
	struct tu_blob e1, e2;
	uint8_t pub_lose[32];

	pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE);
	tu_send(&b, "go", NULL);
	settle(&a, &b, 5);
	tu_send(&b, "again", NULL);
	e1 = tu_take(&b, 0);
	ck_assert_int_eq(tu_recv(&a, e1.buf, e1.len), 0);
	tu_blob_free(&e1);
	tu_clone(&a2, &a, &clock_ms, 3);
	tu_send(&a, "one", NULL);
	tu_send(&a2, "two", NULL);
	e1 = tu_take(&a, 0);
	e2 = tu_take(&a2, 0);
	ck_assert_int_eq(tu_recv(&b, e1.buf, e1.len), 0);
	ck_assert_int_eq(tu_recv(&b, e2.buf, e2.len), 0);
	{
		int c = relm_rel_chosen(b.rel);
		int x1 = relm_tree_find_pub(&b.rel->tree, e1.buf + 2, 0);
		memcpy(pub_lose, b.rel->tree.nodes[c == x1 ? relm_tree_find_pub(&b.rel->tree, e2.buf + 2, 0) : x1].pub, 32);
	}
	/* continue the conversation with whichever copy of a holds the winner */
	struct tu_party *aw = relm_tree_find_pub(&a.rel->tree, pub_lose, 1) >= 0 ? &a2 : &a;
	tu_blob_free(&e1);
	tu_blob_free(&e2);
	/* drop the receipts meant for the loser; alternate sends to deepen */
	for (int k = 0; k < 8; k++) {
		tu_send(&b, "deeper", NULL);
		while (b.nout) {
			struct tu_blob e = tu_take(&b, 0);
			tu_recv(aw, e.buf, e.len);
			tu_blob_free(&e);
		}
		tu_send(aw, "and deeper", NULL);
		while (aw->nout) {
			struct tu_blob e = tu_take(aw, 0);
			tu_recv(&b, e.buf, e.len);
			tu_blob_free(&e);
		}
	}
	ck_assert_msg(relm_tree_find_pub(&b.rel->tree, pub_lose, 0) < 0, "losing branch kept");
	ck_assert_uint_ge(b.resolved, 1);
	{
		int c = relm_rel_chosen(b.rel);
		uint32_t cd = b.rel->tree.nodes[c].depth;
		for (uint32_t i = 0; i < b.rel->tree.count; i++) {
			const struct relm_node *n = &b.rel->tree.nodes[i];
			if (n->flags & RELM_NODE_PRIV)
				ck_assert_msg(n->depth + RELM_RETAIN_R >= cd, "private key kept beyond R");
			else {
				static const uint8_t z[32];
				ck_assert(memcmp(n->priv, z, 32) == 0);
			}
		}
		ck_assert_uint_le(b.rel->tree.count, RELM_KEEP_BACK + 4);
	}
	tu_party_free(&a);
	tu_party_free(&a2);
	tu_party_free(&b);
}
END_TEST

/* ---- retransmission, idempotency, failure -------------------------------- */

START_TEST(test_retransmit_then_fail)
{
	struct tu_party a, b;
	uint8_t id[16], id2[16];
	struct relm_effects fx;

	pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE);
	a.env.params.retx_max_tries = 4;
	tu_send(&a, "into the void", id);
	/* idempotent with the same id */
	relm_effects_init(&fx);
	ck_assert_int_eq(relm_rel_send(a.rel, &a.env, "x", 1, id, id2, &fx), RELM_EEXIST);
	ck_assert_int_eq(fx.n, 0);
	relm_effects_clear(&fx);
	for (int k = 0; k < 20; k++) {
		advance(a.env.params.retx_cap_ms);
		tu_tick(&a);
	}
	ck_assert_int_eq(a.nout, 4);                 /* the first try and 3 retries */
	ck_assert_int_eq(a.failed, 1);
	ck_assert_int_eq(a.rel->nout, 0);
	/* every retry carries the same id: b keeps one copy */
	for (size_t k = 0; k < 4; k++) {
		struct tu_blob e = tu_take(&a, 0);
		int rc = tu_recv(&b, e.buf, e.len);
		ck_assert(rc == (k == 0 ? 0 : RELM_EDUP));
		tu_blob_free(&e);
	}
	ck_assert_int_eq(b.dup_deliveries, 0);
	ck_assert(tu_hist_has(&b, id, 1));
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* A payload must fit a sibling's copy (RELM_COPY_PAYLOAD_MAX, devices.md
 * §4.2) whatever the device count: bodies of control characters (six
 * bytes of JSON each) around that limit are sent exactly while their
 * unpadded payload fits, and refused with RELM_ETOOBIG after, nothing
 * sent. */
START_TEST(test_send_copy_limit)
{
	struct tu_party a, b;
	uint8_t id[16];
	char *body = malloc(11000);
	int fits_seen = 0, over_seen = 0;

	ck_assert_ptr_nonnull(body);
	memset(body, 1, 11000);
	pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE);
	for (size_t n = 10800; n < 10860; n++) {
		struct relm_payload p = { .kind = RELM_KIND_TEXT, .body = body, .body_len = n,
		                          .ts = a.env.now_ms(a.env.ctx) };
		struct relm_effects fx;
		uint8_t *pt = NULL;
		size_t ptlen = 0, ulen = 0;
		int want, rc;

		ck_assert_int_eq(relm_payload_encode(&pt, &ptlen, &p), 0);
		ck_assert_int_eq(sodium_unpad(&ulen, pt, ptlen, RELM_PAD_BLOCK), 0);
		relm_payload_buf_free(pt, ptlen);
		want = ulen > RELM_COPY_PAYLOAD_MAX ? RELM_ETOOBIG : 0;
		fits_seen |= want == 0;
		over_seen |= want != 0;
		relm_effects_init(&fx);
		rc = relm_rel_send(a.rel, &a.env, body, n, NULL, id, &fx);
		ck_assert_msg(rc == want, "body of %zu: payload %zu bytes, send gave %d, want %d", n, ulen, rc, want);
		if (rc != 0)
			ck_assert_int_eq(fx.n, 0);
		relm_effects_clear(&fx);
	}
	ck_assert(fits_seen && over_seen);             /* the range crosses the limit */
	free(body);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

START_TEST(test_pending_then_undecryptable)
{
	struct tu_party a, b, b2;
	pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE);
	tu_send(&a, "hi", NULL);
	settle(&a, &b, 5);
	/* b2, a sibling of b, makes a node b never hears of */
	tu_clone(&b2, &b, &clock_ms, 5);
	tu_send(&b2, "from the sibling", NULL);
	{
		struct tu_blob e = tu_take(&b2, 0);
		ck_assert_int_eq(tu_recv(&a, e.buf, e.len), 0);
		tu_blob_free(&e);
	}
	tu_send(&a, "reply on the sibling's node", NULL);
	struct tu_blob e = tu_take(&a, a.nout - 1);
	ck_assert_int_eq(tu_recv(&b, e.buf, e.len), RELM_EPENDING);
	ck_assert_int_eq(b.pending_adds, 1);
	ck_assert_int_eq(b.rel->npending, 1);
	ck_assert_int_eq(tu_recv(&b, e.buf, e.len), RELM_EPENDING);   /* held once */
	ck_assert_int_eq(b.rel->npending, 1);
	advance(RELM_PENDING_TTL_MS + 1);
	tu_tick(&b);
	ck_assert_int_eq(b.undecryptable, 1);
	ck_assert_int_eq(b.rel->npending, 0);
	tu_blob_free(&e);
	tu_party_free(&a);
	tu_party_free(&b);
	tu_party_free(&b2);
}
END_TEST

/* ---- the state blob ------------------------------------------------------ */

START_TEST(test_blob_roundtrip_and_garbage)
{
	struct tu_party a, b;
	struct tu_blob s, s2;
	struct relm_rel *r;

	pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE);
	for (int k = 0; k < 5; k++)
		tu_send(&a, "unacked", NULL);
	ck_assert_int_eq(relm_rel_encode(a.rel, &s.buf, &s.len), 0);   /* the blob alone */
	ck_assert_int_eq(relm_rel_decode(&r, s.buf, s.len), 0);
	ck_assert_int_eq(relm_rel_encode(r, &s2.buf, &s2.len), 0);
	ck_assert(tu_blob_eq(s, s2));
	relm_rel_free(r);
	tu_blob_free(&s2);
	for (size_t n = 0; n < s.len; n++)
		ck_assert_int_lt(relm_rel_decode(&r, s.buf, n), 0);
	for (size_t i = 0; i < s.len; i += 7) {
		s.buf[i] ^= 0xa5;
		if (relm_rel_decode(&r, s.buf, s.len) == 0)
			relm_rel_free(r);
		s.buf[i] ^= 0xa5;
	}
	tu_blob_free(&s);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* The recent-id ring holds only ids in use, and the all-zero id marks an
 * unused slot: a blob listing a zero id is malformed (fuzz_rel_blob found
 * one that decoded and then re-encoded 16 bytes shorter).  Every blob that
 * decodes re-encodes to itself. */
START_TEST(test_blob_zero_recent_id)
{
	struct tu_party a, b;
	struct tu_blob s, s2;
	struct relm_rel *r;

	pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE);
	for (int k = 0; k < 3; k++) {
		tu_send(&a, "to b", NULL);
		struct tu_blob e = tu_take(&a, a.nout - 1);
		ck_assert_int_eq(tu_recv(&b, e.buf, e.len), 0);
		tu_blob_free(&e);
	}
	ck_assert_int_eq(relm_rel_encode(b.rel, &s.buf, &s.len), 0);
	ck_assert_int_eq(relm_rel_decode(&r, s.buf, s.len), 0);
	ck_assert_int_eq(relm_rel_encode(r, &s2.buf, &s2.len), 0);
	ck_assert(tu_blob_eq(s, s2));
	relm_rel_free(r);
	tu_blob_free(&s2);
	/* the current version: the last recent id zeroed where it is */
	const uint8_t *newest = b.rel->recent[(b.rel->recent_next + RELM_RECENT_IDS - 1) % RELM_RECENT_IDS];
	uint8_t *at = memmem(s.buf, s.len, newest, 16);
	ck_assert_ptr_nonnull(at);
	memset(at, 0, 16);
	r = NULL;
	ck_assert_int_eq(relm_rel_decode(&r, s.buf, s.len), RELM_ESTATE);
	ck_assert_ptr_null(r);
	tu_blob_free(&s);
	/* version 6: the last recent id sits just before the five u32
	 * statistics and the (empty) multi-device tail */
	ck_assert_int_eq(relm_rel_encode_version(b.rel, 6, &s.buf, &s.len), 0);
	ck_assert_uint_gt(s.len, MULTI_TAIL + 20 + 16);
	uint8_t *last = s.buf + s.len - MULTI_TAIL - 20 - 16;
	ck_assert_int_eq(memcmp(last, newest, 16), 0);
	memset(last, 0, 16);
	ck_assert_int_eq(relm_rel_decode(&r, s.buf, s.len), RELM_ESTATE);
	ck_assert_ptr_null(r);
	tu_blob_free(&s);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* ---- acknowledgements waiting for the receipt timer ------------------------ */

static const struct relm_fx *only_fx(const struct relm_effects *fx, enum relm_fx_type t, int *count)
{
	const struct relm_fx *f = NULL;
	*count = 0;
	for (size_t i = 0; i < fx->n; i++)
		if (fx->v[i].type == t) {
			f = &fx->v[i];
			(*count)++;
		}
	return f;
}

static void ack_unpack(struct relm_ack *a, const uint8_t *p)
{
	memcpy(a->id, p, RELM_ID_LEN);
	memcpy(a->dh, p + RELM_FX_ACK_DH, RELM_KEY_LEN);
	a->n = relm_fx_ack_n(p);
}

/* Each accepted message is one ACK_PUT naming (id, dh, n) of its envelope;
 * the blob (v4) does not carry them; a relationship decoded from the blob
 * with acks_partial sends no receipt and keeps its timer armed until the
 * stored ones are given back (relm_rel_ack_load), then sends them all with
 * an ACK_DEL of exactly those. */
START_TEST(test_acks_out_of_the_blob)
{
	struct tu_party a, b;
	struct relm_effects fx;
	struct relm_rel *r = NULL;
	struct tu_blob s;
	uint64_t due;
	int cnt;

	pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE);
	relm_effects_init(&fx);
	for (int k = 0; k < 3; k++) {
		uint8_t id[16];
		struct tu_blob e;
		struct relm_envelope env;
		struct relm_ack got;
		const struct relm_fx *f;

		tu_send(&a, "acknowledge me", id);
		e = tu_take(&a, 0);
		ck_assert_int_eq(relm_envelope_decode(&env, e.buf, e.len), 0);
		ck_assert_int_eq(relm_rel_receive(b.rel, &b.env, e.buf, e.len, &fx), 0);
		f = only_fx(&fx, RELM_FX_ACK_PUT, &cnt);
		ck_assert_int_eq(cnt, 1);
		ck_assert_uint_eq(f->len, RELM_FX_ACK_LEN);
		ack_unpack(&got, f->data);
		ck_assert(memcmp(got.id, id, 16) == 0);
		ck_assert(memcmp(got.dh, env.h.dh_pub, 32) == 0);
		ck_assert_uint_eq(got.n, env.h.n);
		tu_apply(&b, &fx);
		tu_blob_free(&e);
	}
	ck_assert_uint_eq(b.rel->nacks_due, 3);
	due = b.rel->receipt_due_ms;
	ck_assert_uint_ne(due, 0);

	/* what the store holds: the blob without them, the timer with it */
	ck_assert_int_eq(relm_rel_encode(b.rel, &s.buf, &s.len), 0);
	ck_assert_int_eq(relm_rel_decode(&r, s.buf, s.len), 0);
	tu_blob_free(&s);
	ck_assert_uint_eq(r->nacks_due, 0);
	ck_assert_uint_eq(r->acks_unsaved, 0);
	ck_assert_uint_eq(r->receipt_due_ms, due);
	r->acks_partial = 1;
	advance(RELM_RECEIPT_DELAY_MAX_MS + 1);
	ck_assert_int_eq(relm_rel_tick(r, &b.env, &fx), 0);
	only_fx(&fx, RELM_FX_POST, &cnt);
	ck_assert_int_eq(cnt, 0);                    /* no receipt of only some of them */
	only_fx(&fx, RELM_FX_ACK_DEL, &cnt);
	ck_assert_int_eq(cnt, 0);
	ck_assert_uint_eq(r->receipt_due_ms, due);   /* still armed */
	ck_assert_uint_eq(relm_rel_deadline(r, &b.env), due);

	/* given back, they all go out, and exactly they leave the store */
	for (uint32_t i = 0; i < b.rel->nacks_due; i++)
		ck_assert_int_eq(relm_rel_ack_load(r, b.rel->acks_due[i].id, b.rel->acks_due[i].dh,
		                                   b.rel->acks_due[i].n), 0);
	r->acks_partial = 0;
	ck_assert_int_eq(relm_rel_tick(r, &b.env, &fx), 0);
	only_fx(&fx, RELM_FX_POST, &cnt);
	ck_assert_int_eq(cnt, 1);
	{
		const struct relm_fx *f = only_fx(&fx, RELM_FX_ACK_DEL, &cnt);
		ck_assert_int_eq(cnt, 1);
		ck_assert_uint_eq(f->len, 3 * RELM_FX_ACK_LEN);
		for (uint32_t i = 0; i < 3; i++) {
			struct relm_ack got;
			ack_unpack(&got, f->data + i * RELM_FX_ACK_LEN);
			ck_assert(memcmp(&got, &b.rel->acks_due[i], sizeof got) == 0);
		}
	}
	ck_assert_uint_eq(r->nacks_due, 0);
	ck_assert_uint_eq(r->receipt_due_ms, 0);
	/* and the receipt covers a's three messages */
	{
		size_t before = a.delivered;
		tu_apply(&b, &fx);
		ck_assert_uint_eq(b.nout, 1);
		struct tu_blob e = tu_take(&b, 0);
		ck_assert_int_eq(tu_recv(&a, e.buf, e.len), 0);
		tu_blob_free(&e);
		ck_assert_uint_eq(a.delivered, before + 3);
	}
	relm_effects_clear(&fx);
	relm_rel_free(r);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* A message's id begins with its ts (wire.md §5: one clock reading for
 * both), and ids of later messages sort after. */
START_TEST(test_id_carries_ts)
{
	struct tu_party a, b;
	struct relm_effects fx;
	uint8_t prev[RELM_ID_LEN] = { 0 };

	pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE);
	relm_effects_init(&fx);
	for (int k = 0; k < 3; k++) {
		uint8_t id[RELM_ID_LEN], be[6];
		const struct relm_fx *f = NULL;
		advance(1);
		ck_assert_int_eq(relm_rel_send(a.rel, &a.env, "hello", 5, NULL, id, &fx), 0);
		for (size_t i = 0; i < fx.n; i++)
			if (fx.v[i].type == RELM_FX_DELIVER)
				f = &fx.v[i];
		ck_assert_ptr_nonnull(f);
		ck_assert_int_eq(memcmp(f->msg_id, id, RELM_ID_LEN), 0);
		ck_assert_uint_eq(f->ts, clock_ms);
		for (int i = 0; i < 6; i++)
			be[i] = (uint8_t)(f->ts >> (40 - 8 * i));
		ck_assert_int_eq(memcmp(id, be, 6), 0);
		ck_assert(memcmp(prev, id, RELM_ID_LEN) < 0);
		memcpy(prev, id, RELM_ID_LEN);
		tu_apply(&a, &fx);
	}
	relm_effects_clear(&fx);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* A batch of 600 acknowledgements goes out in slices: RELM_RECEIPTS_PER_STEP
 * receipts of RELM_MAX_ACKS each per tick, the timer left due for the rest,
 * then the rest in the next tick; every message is delivered once. */
START_TEST(test_receipts_in_slices)
{
	enum { N = 600 };
	struct tu_party a, b;
	struct relm_effects fx;
	uint64_t due;
	int cnt;

	pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE);
	relm_effects_init(&fx);
	for (int k = 0; k < N; k++) {
		tu_send(&a, "acknowledge me", NULL);
		struct tu_blob e = tu_take(&a, 0);
		ck_assert_int_eq(relm_rel_receive(b.rel, &b.env, e.buf, e.len, &fx), 0);
		tu_apply(&b, &fx);
		tu_blob_free(&e);
	}
	ck_assert_uint_eq(b.rel->nacks_due, N);
	due = b.rel->receipt_due_ms;
	advance(RELM_RECEIPT_DELAY_MAX_MS + 1);
	ck_assert_int_eq(relm_rel_tick(b.rel, &b.env, &fx), 0);
	only_fx(&fx, RELM_FX_POST, &cnt);
	ck_assert_int_eq(cnt, RELM_RECEIPTS_PER_STEP);
	ck_assert_uint_eq(b.rel->nacks_due, N - RELM_RECEIPTS_PER_STEP * RELM_MAX_ACKS);
	ck_assert_uint_eq(b.rel->receipt_due_ms, due);            /* still due: the next tick */
	ck_assert_uint_le(relm_rel_deadline(b.rel, &b.env), clock_ms);
	tu_apply(&b, &fx);
	ck_assert_int_eq(relm_rel_tick(b.rel, &b.env, &fx), 0);
	only_fx(&fx, RELM_FX_POST, &cnt);
	ck_assert_int_eq(cnt, (N - RELM_RECEIPTS_PER_STEP * RELM_MAX_ACKS + RELM_MAX_ACKS - 1) / RELM_MAX_ACKS);
	ck_assert_uint_eq(b.rel->nacks_due, 0);
	ck_assert_uint_eq(b.rel->receipt_due_ms, 0);
	tu_apply(&b, &fx);
	{
		size_t before = a.delivered;
		while (b.nout > 0) {
			struct tu_blob e = tu_take(&b, 0);
			ck_assert_int_eq(tu_recv(&a, e.buf, e.len), 0);
			tu_blob_free(&e);
		}
		ck_assert_uint_eq(a.delivered, before + N);
	}
	relm_effects_clear(&fx);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* A v3 blob carried the acknowledgements: they decode, marked unsaved (the
 * caller moves them to the store), and the re-encoded blob is the one the
 * same state encodes to without them.  A v3 relationship has no gate key
 * (v5 added it after remote_mbox_pk: has_gate(1) gate_key(32)). */
START_TEST(test_acks_in_a_v3_blob)
{
	struct tu_party a, b;
	struct relm_rel *r = NULL;
	struct tu_blob s, s2;
	uint8_t *v3;
	size_t k = 0, tail, v3len, at;

	pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE);
	for (int i = 0; i < 3; i++)
		tu_send(&a, "acknowledge me", NULL);
	while (a.nout) {
		struct tu_blob e = tu_take(&a, 0);
		ck_assert_int_eq(tu_recv(&b, e.buf, e.len), 0);
		tu_blob_free(&e);
	}
	ck_assert_uint_eq(b.rel->nacks_due, 3);
	b.rel->has_gate = 0;
	sodium_memzero(b.rel->gate_key, sizeof b.rel->gate_key);
	memset(b.rel->batch_first, 0, RELM_ID_LEN);      /* nor a batch's first id */
	ck_assert_int_eq(relm_rel_encode_version(b.rel, 6, &s.buf, &s.len), 0);
	ck_assert_int_eq(s.buf[3], 6);
	ck_assert_int_eq(s.buf[GATE_AT], 0);
	/* v3 = v5 without the gate fields, with the version byte 3 and
	 * "u32 n, n × {id dh n}" before receipt_due(8), which the recent ids
	 * (1 + 16k) and stats (20) follow */
	for (size_t i = 0; i < RELM_RECENT_IDS; i++) {
		static const uint8_t zero[16];
		k += memcmp(b.rel->recent[i], zero, 16) != 0;
	}
	tail = 8 + 1 + 16 * k + 20;
	at = s.len - tail - MULTI_TAIL;
	v3len = s.len - GATE_FIELDS - MULTI_TAIL + 4 + 3 * 52;
	v3 = malloc(v3len);
	ck_assert(v3);
	memcpy(v3, s.buf, GATE_AT);
	memcpy(v3 + GATE_AT, s.buf + GATE_AT + GATE_FIELDS, at - GATE_AT - GATE_FIELDS);
	at -= GATE_FIELDS;
	v3[3] = 3;
	v3[at] = 0; v3[at + 1] = 0; v3[at + 2] = 0; v3[at + 3] = 3;
	for (uint32_t i = 0; i < 3; i++) {
		uint8_t *p = v3 + at + 4 + i * 52;
		const struct relm_ack *x = &b.rel->acks_due[i];
		memcpy(p, x->id, 16);
		memcpy(p + 16, x->dh, 32);
		p[48] = (uint8_t)(x->n >> 24); p[49] = (uint8_t)(x->n >> 16);
		p[50] = (uint8_t)(x->n >> 8);  p[51] = (uint8_t)x->n;
	}
	memcpy(v3 + at + 4 + 3 * 52, s.buf + at + GATE_FIELDS, tail);
	ck_assert_int_eq(relm_rel_decode(&r, v3, v3len), 0);
	ck_assert_uint_eq(r->has_gate, 0);
	ck_assert_uint_eq(r->acks_unsaved, 1);
	ck_assert_uint_eq(r->nacks_due, 3);
	ck_assert(memcmp(r->acks_due, b.rel->acks_due, 3 * sizeof *r->acks_due) == 0);
	ck_assert_uint_eq(r->receipt_due_ms, b.rel->receipt_due_ms);
	ck_assert_int_eq(relm_rel_encode_version(r, 6, &s2.buf, &s2.len), 0);
	ck_assert(tu_blob_eq(s, s2));
	relm_rel_free(r);
	/* a count beyond the limit is a bad blob, not an allocation */
	v3[at] = 0x7f;
	ck_assert_int_eq(relm_rel_decode(&r, v3, v3len), RELM_ESTATE);
	free(v3);
	tu_blob_free(&s);
	tu_blob_free(&s2);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

static Suite *rel_suite(void)
{
	Suite *s = suite_create("rel");
	TCase *tc;

	tc = tcase_create("setup");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_loop_test(tc, test_setup_hello_receipted, 0, 2);
	tcase_add_loop_test(tc, test_exchange_modes, 0, 4);
	suite_add_tcase(s, tc);

	tc = tcase_create("schedule");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_stress_tree_10000);
	tcase_add_test(tc, test_stress_tree_vs_strict);
	tcase_add_test(tc, test_stress_strict_vs_strict);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_tamper_every_byte, 0, 2);
	tcase_add_test(tc, test_truncated_and_garbage);
	tcase_add_loop_test(tc, test_max_skip, 0, 2);
	tcase_add_test(tc, test_skip_total_cap);
	tcase_add_test(tc, test_blob_roundtrip_and_garbage);
	tcase_add_test(tc, test_blob_zero_recent_id);
	suite_add_tcase(s, tc);

	tc = tcase_create("conflict");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_loop_test(tc, test_conflict_same_counter, 0, 2);
	tcase_add_loop_test(tc, test_conflict_dh_step, 0, 2);
	tcase_add_test(tc, test_prune_losing_branch);
	suite_add_tcase(s, tc);

	tc = tcase_create("delivery");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_retransmit_then_fail);
	tcase_add_test(tc, test_send_copy_limit);
	tcase_add_test(tc, test_pending_then_undecryptable);
	tcase_add_test(tc, test_acks_out_of_the_blob);
	tcase_add_test(tc, test_receipts_in_slices);
	tcase_add_test(tc, test_id_carries_ts);
	tcase_add_test(tc, test_acks_in_a_v3_blob);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(rel_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * check_revoke_merge.c — a sibling's state merged (relm_rel_merge, repair
 * and bulk adoption) carries what revocation keeps in a relationship
 * (proto/revocation.md §5.1): the remote's pin, the heal, the clone rule's
 * watched acknowledgement; and a statement a sibling carries is judged
 * (§3.2).  Devices a1 and a2 (and a3, removed in the heal
 * tests) of one proton A talk to a remote r; each test makes one device
 * miss something — the remote's roll, the circle, a receipt — by keeping
 * r's envelopes or the copies from it, then merges its sibling's state and
 * checks that it acts as if it had seen it.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_rand.h"
#include "util_engine.h"
#include "util_trio.h"
#include "engine/rel.h"
#include "wire/successor.h"
#include "wire/sibling.h"
#include "wire/payload.h"
#include "crypto/crypto.h"
#include "error.h"

static uint64_t clock_ms;
static struct tu_party a1, a2, a3, r;
static struct tu_party *A[3] = { &a1, &a2, &a3 };
static struct tu_trio T;        /* T.reach: who reads r's envelopes */

static void flow(void)
{
	tu_trio_flow(&T);
}

static void tick_all(uint64_t ms)
{
	tu_trio_tick(&T, ms);
}

static void setup(void)
{
	clock_ms = 1700000000000ull;
	tu_trio_init(&T, A, &r, &clock_ms, RELM_MODE_TREE, 21);
	tu_trio_chat(&T, 3);
}

static void teardown(void)
{
	tu_trio_free(&T);
}

/* dst merges src's state, as relm_core does with a sibling's `state`
 * (the effects applied to dst); asserts success. */
static void merge(struct tu_party *dst, const struct tu_party *src)
{
	struct relm_effects fx;

	relm_effects_init(&fx);
	ck_assert_int_eq(relm_rel_merge(dst->rel, &dst->env, src->rel, &fx), 0);
	tu_apply(dst, &fx);
	relm_effects_clear(&fx);
	flow();
}

/* r sends statement st (its old key presented first), read by the
 * devices in mask; then receipts settle with everyone reading. */
static void r_says(const uint8_t *st, unsigned mask)
{
	tu_send_identity(&r, st);
	T.reach = mask;
	flow();
	T.reach = 7;
	tick_all(3000);
}

/* ---- the pin (§3.2) ---------------------------------------------------------------- */

/* a2 misses r's roll; a2 merges a1's state: it pins the new key (its row
 * follows: identity.rotated), accepts r's next roll from the new key, and
 * refuses the old key's statement again and a second successor of it. */
START_TEST(test_merge_pin_missed_roll)
{
	uint8_t k0[32], npk[32], nsk[64], xpk[32], xsk[64], n2pk[32], n2sk[64];
	uint8_t st[RELM_SUCCESSOR_LEN], stx[RELM_SUCCESSOR_LEN], st2[RELM_SUCCESSOR_LEN];
	struct relm_successor s;

	memcpy(k0, r.ipk_pk, 32);
	tu_sign_keypair(npk, nsk);
	tu_sign_keypair(xpk, xsk);
	tu_sign_keypair(n2pk, n2sk);
	ck_assert_int_eq(relm_successor_sign(st, &s, r.ipk_sk, nsk, 1), 0);
	ck_assert_int_eq(relm_successor_sign(stx, &s, r.ipk_sk, xsk, 1), 0);
	ck_assert_int_eq(relm_successor_sign(st2, &s, nsk, n2sk, 2), 0);
	r_says(st, 1);
	ck_assert(memcmp(a1.rel->ipk_remote, npk, 32) == 0);
	ck_assert(memcmp(a2.rel->ipk_remote, k0, 32) == 0);
	ck_assert_uint_eq(a2.events[RELM_EV_IDENTITY_ROTATED], 0);

	/* merging a state that knows no more changes nothing */
	merge(&a1, &a2);
	ck_assert(memcmp(a1.rel->ipk_remote, npk, 32) == 0);
	ck_assert_uint_eq(a1.events[RELM_EV_IDENTITY_ROTATED], 1);

	merge(&a2, &a1);
	ck_assert(memcmp(a2.rel->ipk_remote, npk, 32) == 0);
	ck_assert(memcmp(a2.rel->ipk_prev, k0, 32) == 0);
	ck_assert_uint_eq(a2.rel->ipk_seq, 1);
	ck_assert_uint_eq(a2.events[RELM_EV_IDENTITY_ROTATED], 1);
	ck_assert(memcmp(a2.last_event[RELM_EV_IDENTITY_ROTATED].ipk, npk, 32) == 0);
	ck_assert(memcmp(a2.last_event[RELM_EV_IDENTITY_ROTATED].rel, a2.rel->id, 16) == 0);
	ck_assert_int_eq(relm_event_check(&a2.last_event[RELM_EV_IDENTITY_ROTATED]), 0);
	/* twice is once */
	merge(&a2, &a1);
	ck_assert_uint_eq(a2.events[RELM_EV_IDENTITY_ROTATED], 1);

	/* the old key's statement again: a replay, as on a1 */
	r_says(st, 2);
	ck_assert_uint_eq(a2.events[RELM_EV_IDENTITY_REJECTED], 1);
	ck_assert_int_eq(a2.last_event[RELM_EV_IDENTITY_REJECTED].code, RELM_EREPLAY);
	ck_assert(memcmp(a2.rel->ipk_remote, npk, 32) == 0);
	/* the next roll, from the new key: accepted by both */
	r_says(st2, 3);
	ck_assert(memcmp(a2.rel->ipk_remote, n2pk, 32) == 0);
	ck_assert(memcmp(a1.rel->ipk_remote, n2pk, 32) == 0);
	ck_assert_uint_eq(a2.rel->ipk_seq, 2);
	ck_assert_uint_eq(a2.events[RELM_EV_IDENTITY_ROTATED], 2);
	/* another successor of the first key, now two rolls back: refused,
	 * the pin stays */
	r_says(stx, 2);
	ck_assert_uint_eq(a2.events[RELM_EV_IDENTITY_REJECTED], 2);
	ck_assert_uint_eq(a2.events[RELM_EV_IDENTITY_CONFLICT], 0);
	ck_assert(memcmp(a2.rel->ipk_remote, n2pk, 32) == 0);
	ck_assert_uint_eq(a1.failed + a2.failed + r.failed, 0);
	sodium_memzero(nsk, sizeof nsk);
	sodium_memzero(xsk, sizeof xsk);
	sodium_memzero(n2sk, sizeof n2sk);
}
END_TEST

/* a2 missed both of r's rolls (K -> N -> N2): the sibling's pin two rolls
 * ahead is taken (its previous key is not one a2 ever pinned, so it cannot
 * be checked against a2's; the sibling verified each). */
START_TEST(test_merge_pin_two_rolls_behind)
{
	uint8_t npk[32], nsk[64], n2pk[32], n2sk[64];
	uint8_t st[RELM_SUCCESSOR_LEN], st2[RELM_SUCCESSOR_LEN];
	struct relm_successor s;

	tu_sign_keypair(npk, nsk);
	tu_sign_keypair(n2pk, n2sk);
	ck_assert_int_eq(relm_successor_sign(st, &s, r.ipk_sk, nsk, 1), 0);
	ck_assert_int_eq(relm_successor_sign(st2, &s, nsk, n2sk, 2), 0);
	r_says(st, 1);
	r_says(st2, 1);
	merge(&a2, &a1);
	ck_assert(memcmp(a2.rel->ipk_remote, n2pk, 32) == 0);
	ck_assert(memcmp(a2.rel->ipk_prev, npk, 32) == 0);
	ck_assert_uint_eq(a2.rel->ipk_seq, 2);
	ck_assert_uint_eq(a2.events[RELM_EV_IDENTITY_ROTATED], 1);
	sodium_memzero(nsk, sizeof nsk);
	sodium_memzero(n2sk, sizeof n2sk);
}
END_TEST

/* Each device read another successor of r's key: a merge is the conflict
 * the rule of §3.2 finds in one device, back on the old pin; a conflict on
 * either side stays one, whichever way the state goes; the person's
 * decision then holds on a merge. */
START_TEST(test_merge_pin_conflict)
{
	uint8_t k0[32], xpk[32], xsk[64], ypk[32], ysk[64];
	uint8_t stx[RELM_SUCCESSOR_LEN], sty[RELM_SUCCESSOR_LEN];
	struct relm_successor s;
	struct relm_effects fx;

	memcpy(k0, r.ipk_pk, 32);
	tu_sign_keypair(xpk, xsk);
	tu_sign_keypair(ypk, ysk);
	ck_assert_int_eq(relm_successor_sign(stx, &s, r.ipk_sk, xsk, 1), 0);
	ck_assert_int_eq(relm_successor_sign(sty, &s, r.ipk_sk, ysk, 1), 0);
	r_says(stx, 1);
	r_says(sty, 2);
	ck_assert(memcmp(a1.rel->ipk_remote, xpk, 32) == 0);
	ck_assert(memcmp(a2.rel->ipk_remote, ypk, 32) == 0);

	merge(&a2, &a1);
	ck_assert_uint_eq(a2.rel->ipk_conflict, 1);
	ck_assert(memcmp(a2.rel->ipk_remote, k0, 32) == 0);
	ck_assert_uint_eq(a2.rel->ipk_seq, 0);
	ck_assert_uint_eq(a2.events[RELM_EV_IDENTITY_CONFLICT], 1);
	ck_assert(memcmp(a2.last_event[RELM_EV_IDENTITY_CONFLICT].ipk, xpk, 32) == 0);
	ck_assert_int_eq(relm_event_check(&a2.last_event[RELM_EV_IDENTITY_CONFLICT]), 0);
	/* a2's conflict reaches a1, which had pinned X: Y is the news */
	merge(&a1, &a2);
	ck_assert_uint_eq(a1.rel->ipk_conflict, 1);
	ck_assert(memcmp(a1.rel->ipk_remote, k0, 32) == 0);
	ck_assert_uint_eq(a1.rel->ipk_seq, 0);
	ck_assert_uint_eq(a1.events[RELM_EV_IDENTITY_CONFLICT], 1);
	ck_assert(memcmp(a1.last_event[RELM_EV_IDENTITY_CONFLICT].ipk, ypk, 32) == 0);
	/* both undecided: merging again changes nothing */
	merge(&a2, &a1);
	ck_assert_uint_eq(a2.rel->ipk_conflict, 1);
	ck_assert_uint_eq(a2.events[RELM_EV_IDENTITY_CONFLICT], 1);
	ck_assert_uint_eq(a2.events[RELM_EV_IDENTITY_ROTATED], 1);   /* Y, read itself */
	/* either successor is still one of the two to decide between */
	relm_effects_init(&fx);
	ck_assert_int_eq(relm_rel_identity_accept(a2.rel, xpk, &fx), 0);
	tu_apply(&a2, &fx);
	relm_effects_clear(&fx);
	ck_assert(memcmp(a2.rel->ipk_remote, xpk, 32) == 0);
	ck_assert_uint_eq(a2.rel->ipk_seq, 1);
	/* a1 is still undecided: a2 merging its state is asked again (a
	 * decided pin looks like the pin of a device that saw one successor;
	 * a suspicion is never lost) */
	merge(&a2, &a1);
	ck_assert_uint_eq(a2.rel->ipk_conflict, 1);
	ck_assert(memcmp(a2.rel->ipk_remote, k0, 32) == 0);
	ck_assert_uint_eq(a2.events[RELM_EV_IDENTITY_CONFLICT], 2);
	ck_assert(memcmp(a2.last_event[RELM_EV_IDENTITY_CONFLICT].ipk, ypk, 32) == 0);
	sodium_memzero(xsk, sizeof xsk);
	sodium_memzero(ysk, sizeof ysk);
}
END_TEST

/* A statement a sibling carries (a payload it accepted) is judged as if
 * read: a2, which has not read r's roll, gets it from a1 in a carry and
 * pins the new key; its own read of the envelope afterwards is a
 * duplicate, which changes nothing and reports nothing. */
START_TEST(test_carried_roll)
{
	uint8_t npk[32], nsk[64], st[RELM_SUCCESSOR_LEN], *pt = NULL, *carry = NULL;
	char hex[RELM_SUCCESSOR_HEX + 1];
	size_t ptlen = 0, ulen = 0, clen = 0;
	struct relm_successor s;
	struct relm_payload p;
	struct tu_blob env;

	tu_sign_keypair(npk, nsk);
	ck_assert_int_eq(relm_successor_sign(st, &s, r.ipk_sk, nsk, 1), 0);
	tu_send_identity(&r, st);
	ck_assert_uint_eq(r.nout, 1);
	env = tu_take(&r, 0);                /* a2's copy of the envelope waits */
	tu_recv(&a1, env.buf, env.len);
	ck_assert(memcmp(a1.rel->ipk_remote, npk, 32) == 0);

	/* a1's carry of it, as relm__emit_carry makes it */
	memset(&p, 0, sizeof p);
	ck_assert_uint_eq(a1.nhist > 0, 1);
	memcpy(p.id, a1.hist[a1.nhist - 1], 16);
	p.kind = RELM_KIND_IDENTITY;
	snprintf(p.kind_str, sizeof p.kind_str, "identity");
	p.ts = clock_ms;
	relm_hex(hex, st, sizeof st);
	p.body = hex;
	p.body_len = RELM_SUCCESSOR_HEX;
	ck_assert_int_eq(relm_payload_encode(&pt, &ptlen, &p), 0);
	ck_assert_int_eq(sodium_unpad(&ulen, pt, ptlen, RELM_PAD_BLOCK), 0);
	ck_assert_int_eq(relm_sib_carry_new(&carry, &clen, a2.rel->id), 0);
	ck_assert_int_eq(relm_sib_carry_append(&carry, &clen, pt, ulen), 0);
	ck_assert_int_eq(tu_copy_in(&a2, &a1, carry, clen), 0);
	ck_assert(tu_hist_has(&a2, p.id, 1));
	ck_assert(memcmp(a2.rel->ipk_remote, npk, 32) == 0);
	ck_assert_uint_eq(a2.rel->ipk_seq, 1);
	ck_assert_uint_eq(a2.events[RELM_EV_IDENTITY_ROTATED], 1);
	ck_assert(memcmp(a2.last_event[RELM_EV_IDENTITY_ROTATED].ipk, npk, 32) == 0);
	/* the same carry again, then the envelope itself: duplicates */
	ck_assert_int_eq(tu_copy_in(&a2, &a1, carry, clen), 0);
	ck_assert_int_eq(tu_recv(&a2, env.buf, env.len), RELM_EDUP);
	ck_assert_uint_eq(a2.events[RELM_EV_IDENTITY_ROTATED], 1);
	ck_assert_uint_eq(a2.events[RELM_EV_IDENTITY_REJECTED], 0);
	ck_assert(memcmp(a2.rel->ipk_remote, npk, 32) == 0);
	relm_payload_buf_free(pt, ptlen);
	relm_sib_buf_free(carry, clen);
	tu_blob_free(&env);
	sodium_memzero(nsk, sizeof nsk);
}
END_TEST

/* ---- the heal (§2) ------------------------------------------------------------------ */

/* a3 leaves; a1 arms the heal, a2's circle is late (it arms nothing). */
static void remove_a3_a1_only(void)
{
	tu_devices(A, 2);
	T.nA = 2;
	ck_assert_int_eq(relm_rel_heal_arm(a1.rel, &a1.env, 2), 0);
	ck_assert_uint_eq(a2.rel->heal_state, RELM_HEAL_NONE);
}

/* r replies until both are healed; then a3 reads nothing r sends. */
static void heal_and_check_locked_out(void)
{
	int rounds;

	ck_assert_msg(tu_trio_heal(&T, &rounds), "not healed after %d rounds (" TU_SEED_FMT ")",
	              rounds, TU_SEED_ARG);
	for (int k = 0; k < 3; k++) {
		uint8_t id[16];
		tu_send(&r, "after", id);
		flow();
		tick_all(3000);
		ck_assert(!tu_hist_has(&a3, id, 1));
		ck_assert(tu_hist_has(&a1, id, 1) && tu_hist_has(&a2, id, 1));
	}
	ck_assert_uint_eq(a1.failed + a2.failed + r.failed, 0);
}

/* An armed heal for a newer revocation wins: a2 arms its own (its own
 * delay), and its circle, when it comes, arms nothing more. */
START_TEST(test_merge_heal_armed)
{
	uint64_t now = clock_ms;

	remove_a3_a1_only();
	merge(&a2, &a1);
	ck_assert_uint_eq(a2.rel->heal_state, RELM_HEAL_ARMED);
	ck_assert_uint_eq(a2.rel->heal_epoch, 2);
	ck_assert_uint_ge(a2.rel->heal_due_ms, now + 1000);
	ck_assert_uint_le(a2.rel->heal_due_ms, now + 20000);
	ck_assert_uint_ge(relm_rel_deadline(a2.rel, &a2.env), now + 1000);
	{
		uint64_t due = a2.rel->heal_due_ms;
		ck_assert_int_eq(relm_rel_heal_arm(a2.rel, &a2.env, 2), 0);
		ck_assert_uint_eq(a2.rel->heal_due_ms, due);
	}
	/* a later revocation here (another device left): a state of the
	 * older one changes nothing here, and brings the later one there */
	ck_assert_int_eq(relm_rel_heal_arm(a2.rel, &a2.env, 3), 0);
	{
		uint64_t due = a2.rel->heal_due_ms;
		merge(&a2, &a1);
		ck_assert_uint_eq(a2.rel->heal_epoch, 3);
		ck_assert_uint_eq(a2.rel->heal_state, RELM_HEAL_ARMED);
		ck_assert_uint_eq(a2.rel->heal_due_ms, due);
	}
	merge(&a1, &a2);
	ck_assert_uint_eq(a1.rel->heal_epoch, 3);
	ck_assert_uint_eq(a1.rel->heal_state, RELM_HEAL_ARMED);
	heal_and_check_locked_out();
}
END_TEST

/* a1's heal went before a2 had a circle, and a2 never read its copy: the
 * merge makes a2 wait on a1's heal node (no heal of its own), and r's
 * reply on it heals a2 too. */
START_TEST(test_merge_heal_sent)
{
	remove_a3_a1_only();
	a1.env.params.heal_min_ms = a1.env.params.heal_max_ms = 1000;
	ck_assert_int_eq(relm_rel_heal_arm(a1.rel, &a1.env, 3), 0);   /* redraw: due in 1 s */
	T.late_copies = 1;
	T.reach = 1;
	tick_all(2000);
	ck_assert_uint_eq(a1.rel->heal_state, RELM_HEAL_SENT);
	/* a1's copies are lost to a2 */
	while (a1.ncopy) {
		struct tu_blob e = tu_take_copy(&a1);
		tu_blob_free(&e);
	}
	T.late_copies = 0;
	T.reach = 7;
	merge(&a2, &a1);
	ck_assert_uint_eq(a2.rel->heal_state, RELM_HEAL_SENT);
	ck_assert_uint_eq(a2.rel->heal_epoch, 3);
	ck_assert(memcmp(a2.rel->heal_node, a1.rel->heal_node, 16) == 0);
	ck_assert_int_ge(relm_tree_find(&a2.rel->tree, a1.rel->heal_node), 0);
	ck_assert_uint_eq(a2.rel->heal_due_ms, 0);     /* no heal of its own */
	{
		uint8_t id[16];
		tu_send(&r, "reply", id);
		flow();
		ck_assert(tu_hist_has(&a2, id, 1));
	}
	ck_assert_uint_eq(a1.rel->heal_state, RELM_HEAL_NONE);
	ck_assert_uint_eq(a2.rel->heal_state, RELM_HEAL_NONE);
	heal_and_check_locked_out();
}
END_TEST

/* The heals of a1 and a2 raced and neither read the other's copy: merged,
 * a2 knows both nodes, and r's reply on either heals it; a state healed
 * there heals here. */
START_TEST(test_merge_heal_nodes_union)
{
	uint8_t n1[16], n2[16];

	tu_devices(A, 2);
	T.nA = 2;
	for (size_t i = 0; i < 2; i++) {
		A[i]->env.params.heal_min_ms = A[i]->env.params.heal_max_ms = 5000;
		ck_assert_int_eq(relm_rel_heal_arm(A[i]->rel, &A[i]->env, 2), 0);
	}
	T.late_copies = 1;
	tick_all(6000);
	ck_assert_uint_eq(a1.rel->heal_state, RELM_HEAL_SENT);
	ck_assert_uint_eq(a2.rel->heal_state, RELM_HEAL_SENT);
	memcpy(n1, a1.rel->heal_node, 16);
	memcpy(n2, a2.rel->heal_node, 16);
	ck_assert(memcmp(n1, n2, 16) != 0);
	for (size_t i = 0; i < 2; i++)
		while (A[i]->ncopy) {
			struct tu_blob e = tu_take_copy(A[i]);
			tu_blob_free(&e);
		}
	T.late_copies = 0;
	merge(&a2, &a1);
	ck_assert_uint_eq(a2.rel->heal_state, RELM_HEAL_SENT);
	ck_assert(memcmp(a2.rel->heal_node, n2, 16) == 0);
	ck_assert_uint_eq(a2.rel->nheal_others, 1);
	ck_assert(memcmp(a2.rel->heal_others[0], n1, 16) == 0);
	/* r replies on one of them; a device that reads it is healed */
	{
		uint8_t id[16];
		T.reach = 2;
		tu_send(&r, "reply", id);
		flow();
		T.reach = 7;
		ck_assert(tu_hist_has(&a2, id, 1));
	}
	ck_assert_uint_eq(a2.rel->heal_state, RELM_HEAL_NONE);
	ck_assert_uint_eq(a2.rel->nheal_others, 0);
	/* a1 did not read the reply: healed by a2's state */
	ck_assert_uint_eq(a1.rel->heal_state, RELM_HEAL_SENT);
	merge(&a1, &a2);
	ck_assert_uint_eq(a1.rel->heal_state, RELM_HEAL_NONE);
	ck_assert_uint_eq(a1.rel->nheal_others, 0);
	ck_assert_uint_eq(a1.rel->heal_due_ms, 0);
	heal_and_check_locked_out();
}
END_TEST

/* ---- the clone rule (§4) ------------------------------------------------------------ */

/* a3 runs outside the circle (a clone); a2 does not read r's receipt for
 * the clone's message.  Merged, a2 watches a1's acknowledgement and raises
 * clone.suspected for the clone's node after the window. */
START_TEST(test_merge_clone_watch)
{
	uint8_t id[16];

	tu_devices(A, 2);
	T.nA = 2;
	tu_send(&r, "to everyone", NULL);
	flow();
	tick_all(3000);
	tu_send(&a3, "from the clone", id);
	while (a3.nout) {
		struct tu_blob e = tu_take(&a3, 0);
		tu_recv(&r, e.buf, e.len);
		tu_blob_free(&e);
	}
	T.reach = 1;
	tick_all(3000);                /* r's receipt reaches a1 only */
	T.reach = 7;
	ck_assert_uint_gt(a1.rel->clone_since_ms, 0);
	ck_assert_uint_eq(a2.rel->clone_since_ms, 0);
	merge(&a2, &a1);
	ck_assert_uint_eq(a2.rel->clone_since_ms, a1.rel->clone_since_ms);
	ck_assert_uint_eq(a2.events[RELM_EV_CLONE_SUSPECTED], 0);
	tick_all(61000);
	ck_assert_uint_eq(a1.events[RELM_EV_CLONE_SUSPECTED], 1);
	ck_assert_uint_eq(a2.events[RELM_EV_CLONE_SUSPECTED], 1);
	ck_assert(memcmp(a2.last_event[RELM_EV_CLONE_SUSPECTED].node,
	                 a1.last_event[RELM_EV_CLONE_SUSPECTED].node, 16) == 0);
	ck_assert_int_eq(relm_event_check(&a2.last_event[RELM_EV_CLONE_SUSPECTED]), 0);
}
END_TEST

/* a1 watches an acknowledgement of a2's message whose copy is late: a2's
 * own message, which a2 explains — merged, a2 watches nothing, and nobody
 * raises anything once the copy arrives within the window. */
START_TEST(test_merge_clone_no_false_watch)
{
	tu_devices(A, 2);
	T.nA = 2;
	tu_send(&r, "to everyone", NULL);
	flow();
	tick_all(3000);
	T.late_copies = 1;
	tu_send(&a2, "copy late", NULL);
	flow();
	tick_all(3000);                /* r's receipt for it reaches both */
	ck_assert_uint_gt(a1.rel->clone_since_ms, 0);
	ck_assert_uint_eq(a2.rel->clone_since_ms, 0);
	merge(&a2, &a1);
	ck_assert_uint_eq(a2.rel->clone_since_ms, 0);
	T.late_copies = 0;
	flow();
	tick_all(61000);
	tick_all(61000);
	ck_assert_uint_eq(a1.events[RELM_EV_CLONE_SUSPECTED], 0);
	ck_assert_uint_eq(a2.events[RELM_EV_CLONE_SUSPECTED], 0);
}
END_TEST

static Suite *revoke_merge_suite(void)
{
	Suite *s = suite_create("revoke_merge");
	TCase *tc = tcase_create("pin");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_merge_pin_missed_roll);
	tcase_add_test(tc, test_merge_pin_two_rolls_behind);
	tcase_add_test(tc, test_merge_pin_conflict);
	tcase_add_test(tc, test_carried_roll);
	suite_add_tcase(s, tc);
	tc = tcase_create("heal");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_merge_heal_armed);
	tcase_add_test(tc, test_merge_heal_sent);
	tcase_add_test(tc, test_merge_heal_nodes_union);
	suite_add_tcase(s, tc);
	tc = tcase_create("clone");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_merge_clone_watch);
	tcase_add_test(tc, test_merge_clone_no_false_watch);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(revoke_merge_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * check_revoke.c — revocation (proto/revocation.md) through the engine and
 * wire APIs: the circle without a device, the successor statement (codec,
 * forgeries, the pin rule, conflicts and the decision), the heal after a
 * device leaves (the removed device reads nothing the remote sends once
 * the remote built on a heal's node), and the clone rule (a node the remote
 * acknowledges that no copy explains; none in ordinary traffic, none for a
 * copy that is only late).  The heal runs against a tree and a strict remote,
 * with the remote or this proton speaking last before the removal.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_rand.h"
#include "util_engine.h"
#include "util_trio.h"
#include "engine/rel.h"
#include "engine/rel_int.h"
#include "wire/circle.h"
#include "wire/successor.h"
#include "wire/payload.h"
#include "crypto/crypto.h"
#include "error.h"

static uint64_t clock_ms;

/* ---- the circle without a device -------------------------------------------------- */

START_TEST(test_circle_without)
{
	static struct relm_circle c, next, d, one;
	static uint8_t buf[RELM_CIRCLE_MAX], nb[RELM_CIRCLE_MAX];
	uint8_t pk[32], sk[64], opk[32], osk[64];
	int len, nlen;

	tu_sign_keypair(pk, sk);
	tu_sign_keypair(opk, osk);
	memset(&c, 0, sizeof c);
	memcpy(c.ipk, pk, 32);
	c.epoch = 4;
	c.count = 3;
	tu_circle_device(&c.dev[0], 0x10, 1, "one");
	tu_circle_device(&c.dev[1], 0x20, 2, "two");
	tu_circle_device(&c.dev[2], 0x30, 4, "three");
	ck_assert_int_gt(len = relm_circle_sign(buf, sizeof buf, &c, sk), 0);

	nlen = relm_circle_without(nb, sizeof nb, &next, &c, c.dev[1].id, sk);
	ck_assert_int_gt(nlen, 0);
	ck_assert_int_eq(relm_circle_decode(&d, nb, (size_t)nlen), 0);
	ck_assert_uint_eq(d.epoch, 5);
	ck_assert_uint_eq(d.count, 2);
	ck_assert_int_eq(relm_circle_find(&d, c.dev[1].id), -1);
	ck_assert_int_ge(relm_circle_find(&d, c.dev[0].id), 0);
	ck_assert_int_ge(relm_circle_find(&d, c.dev[2].id), 0);
	/* the remaining devices accept it over the old one; the removed one,
	 * verifying it, learns it is out */
	ck_assert_int_eq(relm_circle_accept(&c, buf, (size_t)len, &d, nb, (size_t)nlen, pk), 1);
	ck_assert_int_eq(relm_circle_removed(&d, c.dev[1].id), 1);
	ck_assert_int_eq(relm_circle_removed(&d, c.dev[0].id), 0);
	ck_assert_int_eq(relm_circle_removed(&d, c.dev[2].id), 0);

	/* not a member; another proton's key; the last device */
	{
		uint8_t stranger[16];
		memset(stranger, 0x77, 16);
		ck_assert_int_eq(relm_circle_without(nb, sizeof nb, &next, &c, stranger, sk), RELM_ENOTFOUND);
	}
	ck_assert_int_eq(relm_circle_without(nb, sizeof nb, &next, &c, c.dev[0].id, osk), RELM_EINVAL);
	memset(&one, 0, sizeof one);
	memcpy(one.ipk, pk, 32);
	one.epoch = 1;
	one.count = 1;
	one.dev[0] = c.dev[0];
	one.dev[0].added = 1;
	ck_assert_int_eq(relm_circle_without(nb, sizeof nb, &next, &one, one.dev[0].id, sk), RELM_EINVAL);
	sodium_memzero(sk, sizeof sk);
	sodium_memzero(osk, sizeof osk);
}
END_TEST

/* ---- the successor statement ------------------------------------------------------- */

START_TEST(test_successor_codec)
{
	uint8_t opk[32], osk[64], npk[32], nsk[64], st[RELM_SUCCESSOR_LEN];
	struct relm_successor s, d;

	tu_sign_keypair(opk, osk);
	tu_sign_keypair(npk, nsk);
	ck_assert_int_eq(relm_successor_sign(st, &s, osk, nsk, 1), 0);
	ck_assert_int_eq(relm_successor_decode(&d, st, sizeof st), 0);
	ck_assert(memcmp(d.old_ipk, opk, 32) == 0);
	ck_assert(memcmp(d.new_ipk, npk, 32) == 0);
	ck_assert_uint_eq(d.seq, 1);
	/* every byte matters: a flip anywhere is refused */
	for (size_t i = 0; i < sizeof st; i++) {
		st[i] ^= 0x01;
		ck_assert_msg(relm_successor_decode(&d, st, sizeof st) != 0, "flip at %zu accepted", i);
		st[i] ^= 0x01;
	}
	for (size_t cut = 0; cut < sizeof st; cut++)
		ck_assert_int_ne(relm_successor_decode(&d, st, cut), 0);
	/* the signatures are domain-separated: the old key's signature is not
	 * the new key's, and neither verifies as the other's */
	memcpy(st + 73 + 64, st + 73, 64);
	ck_assert_int_eq(relm_successor_decode(&d, st, sizeof st), RELM_EBADSIG);
	ck_assert_int_eq(relm_successor_sign(st, &s, osk, osk, 1), RELM_EINVAL);
	ck_assert_int_eq(relm_successor_sign(st, &s, osk, nsk, 0), RELM_EINVAL);
	sodium_memzero(osk, sizeof osk);
	sodium_memzero(nsk, sizeof nsk);
}
END_TEST

static struct tu_party a, b;

static void pair_setup(void)
{
	clock_ms = 1700000000000ull;
	tu_party_init(&a, &clock_ms, 1);
	tu_party_init(&b, &clock_ms, 2);
	tu_pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE, 1);
	tu_exchange(&a, &b, &clock_ms, 3);
}

static void pair_teardown(void)
{
	tu_party_free(&a);
	tu_party_free(&b);
}

/* a sends statement st (its old key becomes a's presented key first) */
static void send_statement(const uint8_t *st)
{
	tu_send_identity(&a, st);
	tu_exchange(&a, &b, &clock_ms, 2);
}

START_TEST(test_identity_roll)
{
	uint8_t npk[32], nsk[64], n2pk[32], n2sk[64], st[RELM_SUCCESSOR_LEN];
	uint8_t first[32];
	struct relm_successor s;

	memcpy(first, a.ipk_pk, 32);
	ck_assert(memcmp(b.rel->ipk_remote, first, 32) == 0);
	tu_sign_keypair(npk, nsk);
	ck_assert_int_eq(relm_successor_sign(st, &s, a.ipk_sk, nsk, 1), 0);
	send_statement(st);
	ck_assert_uint_eq(b.events[RELM_EV_IDENTITY_ROTATED], 1);
	ck_assert(memcmp(b.last_event[RELM_EV_IDENTITY_ROTATED].ipk, npk, 32) == 0);
	ck_assert_int_eq(relm_event_check(&b.last_event[RELM_EV_IDENTITY_ROTATED]), 0);
	ck_assert(memcmp(b.rel->ipk_remote, npk, 32) == 0);
	ck_assert_uint_eq(b.rel->ipk_seq, 1);
	ck_assert(memcmp(a.rel->ipk_self, npk, 32) == 0);
	/* the pin survives the state blob */
	{
		uint8_t *blob;
		size_t blen;
		struct relm_rel *r = NULL;
		ck_assert_int_eq(relm_rel_encode(b.rel, &blob, &blen), 0);
		ck_assert_int_eq(relm_rel_decode(&r, blob, blen), 0);
		ck_assert(memcmp(r->ipk_remote, npk, 32) == 0);
		ck_assert(memcmp(r->ipk_prev, first, 32) == 0);
		ck_assert_uint_eq(r->ipk_seq, 1);
		relm_rel_free(r);
		relm_rel_blob_free(blob, blen);
	}
	/* the same statement again: a replay, refused, the pin unchanged */
	send_statement(st);
	ck_assert_uint_eq(b.events[RELM_EV_IDENTITY_ROTATED], 1);
	ck_assert_uint_eq(b.events[RELM_EV_IDENTITY_REJECTED], 1);
	ck_assert_int_eq(b.last_event[RELM_EV_IDENTITY_REJECTED].code, RELM_EREPLAY);
	ck_assert_int_eq(relm_event_check(&b.last_event[RELM_EV_IDENTITY_REJECTED]), 0);
	ck_assert(memcmp(b.rel->ipk_remote, npk, 32) == 0);
	/* the next roll, from the new key, goes on */
	tu_sign_keypair(n2pk, n2sk);
	ck_assert_int_eq(relm_successor_sign(st, &s, nsk, n2sk, 2), 0);
	send_statement(st);
	ck_assert_uint_eq(b.events[RELM_EV_IDENTITY_ROTATED], 2);
	ck_assert(memcmp(b.rel->ipk_remote, n2pk, 32) == 0);
	ck_assert_uint_eq(b.rel->ipk_seq, 2);
	sodium_memzero(nsk, sizeof nsk);
	sodium_memzero(n2sk, sizeof n2sk);
}
END_TEST

START_TEST(test_identity_forged)
{
	uint8_t xpk[32], xsk[64], npk[32], nsk[64], st[RELM_SUCCESSOR_LEN];
	char hex[RELM_SUCCESSOR_HEX + 1];
	struct relm_successor s;
	struct relm_payload p;
	struct relm_effects fx;
	struct tu_blob before;

	/* a statement properly signed by two keys, but the old one is not the
	 * key b pins: refused, not found */
	tu_sign_keypair(xpk, xsk);
	tu_sign_keypair(npk, nsk);
	ck_assert_int_eq(relm_successor_sign(st, &s, xsk, nsk, 1), 0);
	send_statement(st);
	ck_assert_uint_eq(b.events[RELM_EV_IDENTITY_ROTATED], 0);
	ck_assert_uint_eq(b.events[RELM_EV_IDENTITY_REJECTED], 1);
	ck_assert_int_eq(b.last_event[RELM_EV_IDENTITY_REJECTED].code, RELM_ENOTFOUND);
	ck_assert(memcmp(b.rel->ipk_remote, a.ipk_pk, 32) == 0);

	/* a sender refuses to send a statement that does not verify */
	ck_assert_int_eq(relm_successor_sign(st, &s, a.ipk_sk, nsk, 1), 0);
	st[80] ^= 1;
	relm_effects_init(&fx);
	{
		uint8_t id[16];
		memcpy(a.rel->ipk_self, a.ipk_pk, 32);
		ck_assert_int_eq(relm_rel_send_identity(a.rel, &a.env, st, sizeof st, id, &fx), RELM_EBADSIG);
		ck_assert_uint_eq(fx.n, 0);
	}
	relm_effects_clear(&fx);

	/* what a forger could put in an identity payload (bad signature of
	 * the old key, of the new key, a bad length): the rule refuses each,
	 * the pin unchanged, and only the event records it */
	for (int k = 0; k < 3; k++) {
		ck_assert_int_eq(relm_successor_sign(st, &s, a.ipk_sk, nsk, 1), 0);
		if (k == 0)
			st[73 + 5] ^= 0x20;            /* sig_old */
		else if (k == 1)
			st[73 + 64 + 5] ^= 0x20;       /* sig_new */
		relm_hex(hex, st, sizeof st);
		memset(&p, 0, sizeof p);
		p.kind = RELM_KIND_IDENTITY;
		p.body = hex;
		p.body_len = k == 2 ? RELM_SUCCESSOR_HEX - 2 : RELM_SUCCESSOR_HEX;
		before = tu_state(&b);
		relm_effects_init(&fx);
		relm__identity_received(b.rel, &p, &fx);
		ck_assert_uint_eq(fx.n, 1);
		ck_assert_int_eq(fx.v[0].ev.type, RELM_EV_IDENTITY_REJECTED);
		ck_assert_int_eq(fx.v[0].ev.code, k == 2 ? RELM_EMALFORMED : RELM_EBADSIG);
		ck_assert_int_eq(relm_event_check(&fx.v[0].ev), 0);
		relm_effects_clear(&fx);
		{
			struct tu_blob after = tu_state(&b);
			ck_assert(tu_blob_eq(before, after));
			tu_blob_free(&after);
		}
		tu_blob_free(&before);
	}
	sodium_memzero(xsk, sizeof xsk);
	sodium_memzero(nsk, sizeof nsk);
}
END_TEST

START_TEST(test_identity_conflict)
{
	uint8_t n1pk[32], n1sk[64], n2pk[32], n2sk[64], n3pk[32], n3sk[64];
	uint8_t st1[RELM_SUCCESSOR_LEN], st2[RELM_SUCCESSOR_LEN], st3[RELM_SUCCESSOR_LEN];
	uint8_t old[32];
	struct relm_successor s;
	struct relm_effects fx;

	memcpy(old, a.ipk_pk, 32);
	tu_sign_keypair(n1pk, n1sk);
	tu_sign_keypair(n2pk, n2sk);
	tu_sign_keypair(n3pk, n3sk);
	ck_assert_int_eq(relm_successor_sign(st1, &s, a.ipk_sk, n1sk, 1), 0);
	ck_assert_int_eq(relm_successor_sign(st2, &s, a.ipk_sk, n2sk, 1), 0);
	ck_assert_int_eq(relm_successor_sign(st3, &s, a.ipk_sk, n3sk, 1), 0);
	send_statement(st1);
	ck_assert(memcmp(b.rel->ipk_remote, n1pk, 32) == 0);
	/* a second successor of the same key: conflict, back to the old pin */
	send_statement(st2);
	ck_assert_uint_eq(b.events[RELM_EV_IDENTITY_CONFLICT], 1);
	ck_assert(memcmp(b.last_event[RELM_EV_IDENTITY_CONFLICT].ipk, n2pk, 32) == 0);
	ck_assert_int_eq(relm_event_check(&b.last_event[RELM_EV_IDENTITY_CONFLICT]), 0);
	ck_assert(memcmp(b.rel->ipk_remote, old, 32) == 0);
	ck_assert_uint_eq(b.rel->ipk_seq, 0);
	ck_assert_uint_eq(b.rel->ipk_conflict, 1);
	/* either again changes nothing; a third is one more conflict */
	send_statement(st1);
	ck_assert(memcmp(b.rel->ipk_remote, old, 32) == 0);
	ck_assert_uint_eq(b.events[RELM_EV_IDENTITY_ROTATED], 1);
	send_statement(st3);
	ck_assert_uint_eq(b.events[RELM_EV_IDENTITY_CONFLICT], 2);
	ck_assert(memcmp(b.rel->ipk_remote, old, 32) == 0);

	/* the decision: only one of the two, and then it is pinned */
	relm_effects_init(&fx);
	ck_assert_int_eq(relm_rel_identity_accept(b.rel, n3pk, &fx), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_rel_identity_accept(b.rel, n2pk, &fx), 0);
	tu_apply(&b, &fx);
	relm_effects_clear(&fx);
	ck_assert_uint_eq(b.events[RELM_EV_IDENTITY_ROTATED], 2);
	ck_assert(memcmp(b.last_event[RELM_EV_IDENTITY_ROTATED].ipk, n2pk, 32) == 0);
	ck_assert(memcmp(b.rel->ipk_remote, n2pk, 32) == 0);
	ck_assert_uint_eq(b.rel->ipk_seq, 1);
	ck_assert_uint_eq(b.rel->ipk_conflict, 0);
	relm_effects_init(&fx);
	ck_assert_int_eq(relm_rel_identity_accept(b.rel, n2pk, &fx), RELM_EINVAL);
	relm_effects_clear(&fx);
	sodium_memzero(n1sk, sizeof n1sk);
	sodium_memzero(n2sk, sizeof n2sk);
	sodium_memzero(n3sk, sizeof n3sk);
}
END_TEST

/* ---- heal and clone: devices a1, a2 (and a3, or a clone c) of A; remote r --------- */

static struct tu_party a1, a2, a3, r;
static struct tu_party *A[3] = { &a1, &a2, &a3 };
static struct tu_trio T;        /* T.nA: devices of the circle (A[0..nA)) */

static void flow(void)
{
	tu_trio_flow(&T);
}

static void tick_all(uint64_t ms)
{
	tu_trio_tick(&T, ms);
}

static void chat(int rounds)
{
	tu_trio_chat(&T, rounds);
}

static void devices_setup(void)
{
	clock_ms = 1700000000000ull;
	tu_trio_init(&T, A, &r, &clock_ms, RELM_MODE_TREE, 11);
}

/* The remote a plain single-device Double Ratchet (ratchet.md §7). */
static void strict_setup(void)
{
	clock_ms = 1700000000000ull;
	tu_trio_init(&T, A, &r, &clock_ms, RELM_MODE_STRICT, 11);
}

static void devices_teardown(void)
{
	tu_trio_free(&T);
}

/* r sends one message; 1 if device p decrypted it (it is in p's history). */
static int reads(struct tu_party *p, const char *text)
{
	uint8_t id[16];
	tu_send(&r, text, id);
	flow();
	tick_all(3000);
	return tu_hist_has(p, id, 1);
}

START_TEST(test_heal_locks_out_the_removed_device)
{
	int rounds;

	chat(4);
	/* before the revocation a3 reads what r sends, like everyone */
	ck_assert(reads(&a3, "before"));
	if (_i == 1) {
		/* A speaks last, before the revocation: the node every send would
		 * go on is an ours node a3 holds, so the heal's node must be a new
		 * sibling of it */
		tu_send(&a2, "A's last word", NULL);
		flow();
		tick_all(3000);
	}
	/* a3 is removed: the circle is a1, a2 (epoch 2); a3 is told nothing */
	tu_devices(A, 2);
	T.nA = 2;
	ck_assert_int_eq(relm_rel_heal_arm(a1.rel, &a1.env, 2), 0);
	ck_assert_int_eq(relm_rel_heal_arm(a2.rel, &a2.env, 2), 0);
	ck_assert_uint_eq(a1.rel->heal_state, RELM_HEAL_ARMED);
	ck_assert_uint_ge(relm_rel_deadline(a1.rel, &a1.env), clock_ms + 1000);
	ck_assert_uint_le(relm_rel_deadline(a1.rel, &a1.env), clock_ms + 20000);
	/* the same epoch again changes nothing */
	{
		uint64_t due = a1.rel->heal_due_ms;
		ck_assert_int_eq(relm_rel_heal_arm(a1.rel, &a1.env, 2), 0);
		ck_assert_uint_eq(a1.rel->heal_due_ms, due);
	}
	/* the heal goes out (once: the other device sees its copy), and r's
	 * next message builds on its node — or on an older one, and then the
	 * heal goes again */
	ck_assert_msg(tu_trio_heal(&T, &rounds), "not healed after %d rounds (" TU_SEED_FMT ")",
	              rounds, TU_SEED_ARG);
	/* from now on a3 reads nothing r sends; a1 and a2 lose nothing */
	for (int k = 0; k < 5; k++) {
		uint8_t id[16];
		tu_send(&r, "after", id);
		flow();
		tick_all(3000);
		ck_assert_msg(!tu_hist_has(&a3, id, 1), "a3 read message %d after the heal", k);
		ck_assert(tu_hist_has(&a1, id, 1));
		ck_assert(tu_hist_has(&a2, id, 1));
		tu_send(A[k % 2], "and back", NULL);
		flow();
		tick_all(3000);
	}
	ck_assert_uint_eq(a1.failed + a2.failed + r.failed, 0);
	ck_assert_uint_eq(a1.events[RELM_EV_CLONE_SUSPECTED] + a2.events[RELM_EV_CLONE_SUSPECTED], 0);
}
END_TEST

/* a3 leaves the circle (a1, a2, epoch 2); both arm the heal, due in ms. */
static void remove_a3_heal_in(uint32_t ms)
{
	tu_devices(A, 2);
	T.nA = 2;
	for (size_t i = 0; i < 2; i++) {
		A[i]->env.params.heal_min_ms = A[i]->env.params.heal_max_ms = ms;
		ck_assert_int_eq(relm_rel_heal_arm(A[i]->rel, &A[i]->env, 2), 0);
	}
}

/* Two devices' heals race (each goes before the other's copy arrives):
 * the remote replies on one of the two nodes, and both devices are healed
 * by that one reply — a device remembers its own heal's node and its
 * sibling's, and heals no more (relm-sim --revoke 1 seed 824 of 4x2: a
 * device that kept only the node of the last copy it read took the reply
 * on its own node for a reply elsewhere and healed again, round after
 * round). */
START_TEST(test_racing_heals_heal_on_either_node)
{
	uint8_t id[16];

	chat(4);
	remove_a3_heal_in(5000);
	T.late_copies = 1;
	tick_all(6000);
	ck_assert_uint_eq(a1.rel->heal_state, RELM_HEAL_SENT);
	ck_assert_uint_eq(a2.rel->heal_state, RELM_HEAL_SENT);
	ck_assert(memcmp(a1.rel->heal_node, a2.rel->heal_node, 16) != 0);
	T.late_copies = 0;
	flow();
	/* each keeps its own heal's node and learns the other's */
	ck_assert_uint_eq(a1.rel->heal_state, RELM_HEAL_SENT);
	ck_assert_uint_eq(a2.rel->heal_state, RELM_HEAL_SENT);
	ck_assert_uint_eq(a1.rel->nheal_others, 1);
	ck_assert_uint_eq(a2.rel->nheal_others, 1);
	ck_assert(memcmp(a1.rel->heal_others[0], a2.rel->heal_node, 16) == 0);
	ck_assert(memcmp(a2.rel->heal_others[0], a1.rel->heal_node, 16) == 0);

	tu_send(&r, "reply", id);
	flow();
	ck_assert(tu_hist_has(&a1, id, 1) && tu_hist_has(&a2, id, 1));
	ck_assert_msg(a1.rel->heal_state == RELM_HEAL_NONE && a2.rel->heal_state == RELM_HEAL_NONE,
	              "heal states %u and %u after the reply on one heal's node (" TU_SEED_FMT ")",
	              a1.rel->heal_state, a2.rel->heal_state, TU_SEED_ARG);
	ck_assert_uint_eq(a1.rel->nheal_others + a2.rel->nheal_others, 0);
	tick_all(60000);
	ck_assert_uint_eq(a1.rel->heal_state, RELM_HEAL_NONE);
	ck_assert_uint_eq(a2.rel->heal_state, RELM_HEAL_NONE);
	/* and the removed device is locked out */
	ck_assert(!reads(&a3, "after the heal"));
	ck_assert_uint_eq(a1.failed + a2.failed + r.failed, 0);
}
END_TEST

/* A's posts to r now are dropped (r is off line), copies among the circle
 * flow; each post's ratchet key must not be one of an ours node a3 (the
 * removed device) holds.  How many posts. */
static int drop_posts_checking(void)
{
	int n = 0, moved = 1;

	while (moved) {
		moved = 0;
		for (size_t i = 0; i < T.nA; i++) {
			while (A[i]->nout) {
				struct tu_blob e = tu_take(A[i], 0);
				ck_assert_uint_ge(e.len, 2 + RELM_KEY_LEN);
				ck_assert_msg(relm_tree_find_pub(&a3.rel->tree, e.buf + 2, 1) < 0,
				              "post %d of a%zu went on a node the removed device holds ("
				              TU_SEED_FMT ")", n, i + 1, TU_SEED_ARG);
				tu_blob_free(&e);
				n++;
				moved = 1;
			}
			if (A[i]->ncopy) {
				tu_copies_to(A[i], A, T.nA);
				moved = 1;
			}
		}
	}
	return n;
}

/* While the heal waits for r's reply, this proton's messages go on heal
 * nodes, never on the ours node a3 holds beside them (A spoke last, and r
 * acknowledged it: the fork rule would choose it), neither first tries
 * nor retries, which rotation would move onto it (revocation.md §2). */
START_TEST(test_sends_stay_on_heal_nodes)
{
	chat(4);
	tu_send(&a2, "A's last word", NULL);
	flow();
	tick_all(3000);
	remove_a3_heal_in(5000);
	tick_all(6000);             /* the heals go, r acknowledges them */
	tick_all(3000);
	ck_assert_uint_eq(a1.rel->heal_state, RELM_HEAL_SENT);
	ck_assert_uint_eq(a2.rel->heal_state, RELM_HEAL_SENT);
	ck_assert_uint_eq(a1.nout + a2.nout, 0);
	/* r is off line from now: every message is tried again and again */
	for (int k = 0; k < 3; k++) {
		tu_send(A[k % 2], "after the heal", NULL);
		ck_assert_int_eq(drop_posts_checking(), 1);
	}
	int retries = 0;
	for (int round = 0; round < 20; round++) {     /* 20 min: tries after 10, 30, 70, 150, 310, 630 s */
		clock_ms += 60000;
		tu_tick(&a1);
		tu_tick(&a2);
		retries += drop_posts_checking();
	}
	ck_assert_int_ge(retries, 3 * 5);
	ck_assert_uint_eq(a1.failed + a2.failed, 0);
}
END_TEST

START_TEST(test_heal_arm_refuses)
{
	ck_assert_int_eq(relm_rel_heal_arm(a1.rel, &a1.env, 0), RELM_EINVAL);
	a1.rel->sibling_session = 1;
	ck_assert_int_eq(relm_rel_heal_arm(a1.rel, &a1.env, 2), RELM_EINVAL);
	a1.rel->sibling_session = 0;
	ck_assert_uint_eq(a1.rel->heal_state, RELM_HEAL_NONE);
}
END_TEST

START_TEST(test_no_clone_in_ordinary_traffic)
{
	/* copies late but within the window are not a clone */
	tu_devices(A, 2);
	T.nA = 2;
	chat(6);
	T.late_copies = 1;
	tu_send(&a1, "copy delayed", NULL);
	tu_send(&a2, "copy delayed too", NULL);
	flow();
	tick_all(3000);
	tick_all(3000);
	tick_all(20000);
	T.late_copies = 0;
	flow();
	chat(4);
	tick_all(61000);
	tick_all(61000);
	ck_assert_uint_eq(a1.events[RELM_EV_CLONE_SUSPECTED], 0);
	ck_assert_uint_eq(a2.events[RELM_EV_CLONE_SUSPECTED], 0);
	ck_assert_uint_eq(r.events[RELM_EV_CLONE_SUSPECTED], 0);
}
END_TEST

START_TEST(test_clone_suspected)
{
	uint8_t id[16];
	int placed;

	/* a3 is not in the circle: a copy of a device's state running outside
	 * it (its output reaches r, its copies nobody) */
	tu_devices(A, 2);
	T.nA = 2;
	chat(3);
	/* r speaks last, so the clone makes a node of its own */
	tu_send(&r, "to everyone", NULL);
	flow();
	tick_all(3000);
	tu_send(&a3, "from the clone", id);
	while (a3.nout) {
		struct tu_blob e = tu_take(&a3, 0);
		tu_recv(&r, e.buf, e.len);
		tu_blob_free(&e);
	}
	while (a3.ncopy) {
		struct tu_blob e = tu_take_copy(&a3);
		tu_blob_free(&e);
	}
	tick_all(3000);            /* r's receipt reaches a1 and a2 */
	placed = relm_tree_find_pub(&a1.rel->tree, a1.rel->clone_dh, 1);
	ck_assert_int_eq(placed, -1);
	ck_assert_uint_gt(a1.rel->clone_since_ms, 0);
	ck_assert_uint_eq(a1.events[RELM_EV_CLONE_SUSPECTED], 0);   /* within the window */
	tick_all(61000);
	ck_assert_uint_eq(a1.events[RELM_EV_CLONE_SUSPECTED], 1);
	ck_assert_uint_eq(a2.events[RELM_EV_CLONE_SUSPECTED], 1);
	{
		const struct relm_event *ev = &a1.last_event[RELM_EV_CLONE_SUSPECTED];
		uint8_t node[16];
		ck_assert_int_eq(relm_event_check(ev), 0);
		ck_assert(memcmp(ev->rel, a1.rel->id, 16) == 0);
		int own = -1;
		/* the clone's own node, which the circle never saw */
		for (uint32_t i = 0; i < a3.rel->tree.count; i++)
			if ((a3.rel->tree.nodes[i].flags & RELM_NODE_OWN) &&
			    relm_tree_find_pub(&a1.rel->tree, a3.rel->tree.nodes[i].pub, 1) < 0)
				own = (int)i;
		ck_assert_int_ge(own, 0);
		crypto_generichash(node, 16, a3.rel->tree.nodes[own].pub, 32, NULL, 0);
		ck_assert(memcmp(ev->node, node, 16) == 0);
	}
	ck_assert(!tu_hist_has(&a1, id, 0) && !tu_hist_has(&a1, id, 1));
}
END_TEST

static Suite *revoke_suite(void)
{
	Suite *s = suite_create("revoke");
	TCase *tc = tcase_create("wire");
	tcase_add_test(tc, test_circle_without);
	tcase_add_test(tc, test_successor_codec);
	suite_add_tcase(s, tc);
	tc = tcase_create("identity");
	tcase_add_checked_fixture(tc, pair_setup, pair_teardown);
	tcase_add_test(tc, test_identity_roll);
	tcase_add_test(tc, test_identity_forged);
	tcase_add_test(tc, test_identity_conflict);
	suite_add_tcase(s, tc);
	tc = tcase_create("heal");
	tcase_add_checked_fixture(tc, devices_setup, devices_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_loop_test(tc, test_heal_locks_out_the_removed_device, 0, 2);
	tcase_add_test(tc, test_heal_arm_refuses);
	tcase_add_test(tc, test_racing_heals_heal_on_either_node);
	tcase_add_test(tc, test_sends_stay_on_heal_nodes);
	suite_add_tcase(s, tc);
	tc = tcase_create("heal_strict");
	tcase_add_checked_fixture(tc, strict_setup, devices_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_loop_test(tc, test_heal_locks_out_the_removed_device, 0, 2);
	suite_add_tcase(s, tc);
	tc = tcase_create("clone");
	tcase_add_checked_fixture(tc, devices_setup, devices_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_no_clone_in_ordinary_traffic);
	tcase_add_test(tc, test_clone_suspected);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(revoke_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

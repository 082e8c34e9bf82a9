/*
 * check_rel_describe.c — relm_rel_describe (engine/rel.h), what may be
 * shown of a relationship: the tree's shape and the fork rule's verdicts
 * agree with the state node for node (a forked tree, tree and strict
 * remotes), the counters (pending set, unacknowledged messages, forks)
 * follow what happened, describing changes nothing, and no secret of the
 * state — private, root, chain, skipped and used message keys, the
 * mailbox's signing key, the gate key — is anywhere in what it returns.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_rand.h"
#include "util_engine.h"
#include "engine/rel_state.h"
#include "error.h"

static uint64_t clock_ms;

static void setup(void)
{
	clock_ms = 1700000000000ull;
}

static void settle(struct tu_party *a, struct tu_party *b)
{
	tu_exchange(a, b, &clock_ms, 5);
}

static void pair(struct tu_party *a, struct tu_party *b, enum relm_mode ma, enum relm_mode mb)
{
	tu_party_init(a, &clock_ms, 1);
	tu_party_init(b, &clock_ms, 2);
	tu_pair(a, b, ma, mb, 1);
	settle(a, b);
}

/* Not even a part of the secret: no 8-byte piece of it (at offsets 0, 8,
 * 16 …) is anywhere in info, so a leak of 15 or more bytes is found. */
static void no_secret_in(const struct relm_rel_info *info, const uint8_t *secret, size_t len,
                         const char *what)
{
	static const uint8_t zero[8];

	for (size_t at = 0; at + 8 <= len; at += 8) {
		if (memcmp(secret + at, zero, 8) == 0)
			continue;        /* wiped or never held: nothing to find */
		ck_assert_msg(memmem(info, sizeof *info, secret + at, 8) == NULL,
			      "relm_rel_describe returned (part of) %s", what);
	}
}

/* info against rel, field by field, and not one secret of rel in it. */
static void check_info(const struct relm_rel *rel, const struct relm_rel_info *info)
{
	const struct relm_tree *t = &rel->tree;
	int chosen = relm_rel_chosen(rel), nchosen = 0;

	ck_assert(memcmp(info->id, rel->id, RELM_ID_LEN) == 0);
	ck_assert_int_eq(info->mode, rel->mode);
	ck_assert_int_eq(info->side, rel->side);
	ck_assert_uint_eq(info->nnodes, t->count);
	ck_assert_int_eq(info->chosen, chosen);
	for (uint32_t i = 0; i < t->count; i++) {
		const struct relm_node *n = &t->nodes[i];
		const struct relm_rel_node_info *o = &info->nodes[i];

		ck_assert(memcmp(o->id, n->id, RELM_ID_LEN) == 0);
		ck_assert(memcmp(o->parent, n->parent, RELM_ID_LEN) == 0);
		ck_assert_int_eq(o->parent_index, relm_tree_parent(t, (int)i));
		if (o->parent_index >= 0)
			ck_assert(memcmp(info->nodes[o->parent_index].id, o->parent, RELM_ID_LEN) == 0);
		ck_assert_uint_eq(o->depth, n->depth);
		ck_assert_uint_eq(o->n, n->n);
		ck_assert_int_eq(o->ours, (n->flags & RELM_NODE_OURS) != 0);
		ck_assert_int_eq(o->own, (n->flags & RELM_NODE_OWN) != 0);
		ck_assert_int_eq(o->valid, relm_tree_is_valid(t, (int)i) != 0);
		ck_assert_int_eq(o->has_chain, (n->flags & RELM_NODE_CHAIN) != 0);
		ck_assert_int_eq(o->has_private_key, (n->flags & RELM_NODE_PRIV) != 0);
		ck_assert_int_eq(o->chosen, (int)i == chosen);
		nchosen += o->chosen;
		no_secret_in(info, n->priv, RELM_KEY_LEN, "a node's private key");
		no_secret_in(info, n->rk, RELM_KEY_LEN, "a root key");
		no_secret_in(info, n->ck, RELM_KEY_LEN, "a chain key");
	}
	ck_assert_int_eq(nchosen, chosen >= 0);
	for (uint32_t i = 0; i < rel->nskipped; i++)
		no_secret_in(info, rel->skipped[i].mk, RELM_KEY_LEN, "a stored message key");
	no_secret_in(info, rel->mbox_sk, RELM_SIGN_SK_LEN, "the mailbox's signing key");
	no_secret_in(info, rel->gate_key, RELM_KEY_LEN, "the gate key");
	ck_assert_uint_eq(info->pending, rel->npending);
	ck_assert_uint_eq(info->unacknowledged, rel->nout);
	ck_assert_uint_eq(info->forks, rel->stats.forks);
	ck_assert_uint_eq(info->pruned, rel->stats.pruned);
}

/* Describe p's relationship, check it, and that the state did not move. */
static void describe(const struct tu_party *p, struct relm_rel_info *info)
{
	struct tu_blob before = tu_state(p), after;

	memset(info, 0xa5, sizeof *info);   /* nothing left over from before */
	relm_rel_describe(p->rel, info);
	after = tu_state(p);
	ck_assert(tu_blob_eq(before, after));
	check_info(p->rel, info);
	tu_blob_free(&before);
	tu_blob_free(&after);
}

/* Two devices of a each make a new node on the same theirs node: b's tree
 * forks (tree b), or b keeps the first (strict b). */
START_TEST(test_describe_fork)
{
	struct tu_party a, a2, b;
	struct relm_rel_info *info = malloc(sizeof *info);
	struct tu_blob e1, e2;
	int strict = _i, fork_at = -1;

	ck_assert_ptr_nonnull(info);
	pair(&a, &b, RELM_MODE_TREE, strict ? RELM_MODE_STRICT : RELM_MODE_TREE);
	describe(&b, info);
	ck_assert_int_eq(info->mode, strict ? RELM_MODE_STRICT : RELM_MODE_TREE);
	ck_assert_int_eq(info->side, 'b');
	ck_assert_int_eq(info->initial_phase, 0);       /* a's receipt came */
	ck_assert_int_ge(info->chosen, 0);
	describe(&a, info);
	ck_assert_int_eq(info->side, 'a');

	tu_send(&b, "your turn", NULL);
	settle(&a, &b);
	tu_send(&b, "again", NULL);
	e1 = tu_take(&b, 0);
	ck_assert_int_eq(tu_recv(&a, e1.buf, e1.len), 0);
	tu_blob_free(&e1);
	tu_clone(&a2, &a, &clock_ms, 3);
	tu_send(&a, "one", NULL);                       /* a DH step each */
	tu_send(&a2, "two", NULL);
	describe(&a, info);
	ck_assert_uint_eq(info->unacknowledged, 1);
	e1 = tu_take(&a, 0);
	e2 = tu_take(&a2, 0);
	ck_assert_int_eq(tu_recv(&b, e1.buf, e1.len), 0);
	tu_recv(&b, e2.buf, e2.len);
	describe(&b, info);
	for (uint32_t i = 0; i < info->nnodes; i++) {
		int kids = 0;
		for (uint32_t k = 0; k < info->nnodes; k++)
			kids += info->nodes[k].parent_index == (int)i;
		if (kids >= 2)
			fork_at = (int)i;
	}
	if (strict) {
		ck_assert_int_eq(fork_at, -1);
		ck_assert_uint_eq(info->forks, 0);
	} else {
		ck_assert_int_ge(fork_at, 0);
		ck_assert(info->nodes[fork_at].ours);    /* b's node, under a's two */
		ck_assert_uint_eq(info->forks, 1);
		ck_assert(!info->nodes[info->chosen].ours);
		ck_assert(info->nodes[info->chosen].valid);
	}
	tu_blob_free(&e1);
	tu_blob_free(&e2);
	tu_party_free(&a);
	tu_party_free(&a2);
	tu_party_free(&b);
	free(info);
}
END_TEST

/* The pending set and the retransmission queue are counted as they fill
 * and empty. */
START_TEST(test_describe_counts)
{
	struct tu_party a, b, b2;
	struct relm_rel_info *info = malloc(sizeof *info);
	struct tu_blob e;

	ck_assert_ptr_nonnull(info);
	pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE);
	describe(&a, info);
	ck_assert_uint_eq(info->pending, 0);
	ck_assert_uint_eq(info->unacknowledged, 0);
	ck_assert_uint_eq(info->unacknowledged_partial, 0);
	for (int i = 0; i < 3; i++)
		tu_send(&a, "not yet receipted", NULL);
	describe(&a, info);
	ck_assert_uint_eq(info->unacknowledged, 3);
	settle(&a, &b);
	describe(&a, info);
	ck_assert_uint_eq(info->unacknowledged, 0);

	/* b2, a sibling of b, makes a node b never hears of; a's reply on it
	 * waits in b's pending set */
	tu_clone(&b2, &b, &clock_ms, 5);
	tu_send(&b2, "from the sibling", NULL);
	e = tu_take(&b2, 0);
	ck_assert_int_eq(tu_recv(&a, e.buf, e.len), 0);
	tu_blob_free(&e);
	tu_send(&a, "reply on the sibling's node", NULL);
	e = tu_take(&a, a.nout - 1);
	ck_assert_int_eq(tu_recv(&b, e.buf, e.len), RELM_EPENDING);
	describe(&b, info);
	ck_assert_uint_eq(info->pending, 1);
	clock_ms += RELM_PENDING_TTL_MS + 1;
	tu_tick(&b);
	describe(&b, info);
	ck_assert_uint_eq(info->pending, 0);
	tu_blob_free(&e);
	tu_party_free(&a);
	tu_party_free(&b);
	tu_party_free(&b2);
	free(info);
}
END_TEST

/* A state decoded from its blob holds no retransmission record (the store
 * keeps them); once the caller marks it partial, as relm_core does,
 * describe says the count is the store's, not its own. */
START_TEST(test_describe_partial_queue)
{
	struct tu_party a, b;
	struct relm_rel_info *info = malloc(sizeof *info);
	struct relm_rel *r = NULL;
	uint8_t *blob;
	size_t len;

	ck_assert_ptr_nonnull(info);
	pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE);
	tu_send(&a, "queued", NULL);
	ck_assert_int_eq(relm_rel_encode(a.rel, &blob, &len), 0);
	ck_assert_int_eq(relm_rel_decode(&r, blob, len), 0);
	relm_rel_blob_free(blob, len);
	r->out_partial = 1;
	relm_rel_describe(r, info);
	ck_assert_uint_eq(info->unacknowledged, 0);
	ck_assert_uint_eq(info->unacknowledged_partial, 1);
	/* the rest is the same state */
	relm_rel_describe(a.rel, info);
	{
		struct relm_rel_info *info2 = malloc(sizeof *info2);
		ck_assert_ptr_nonnull(info2);
		relm_rel_describe(r, info2);
		ck_assert_uint_eq(info2->nnodes, info->nnodes);
		ck_assert(memcmp(info2->nodes, info->nodes, sizeof info->nodes) == 0);
		ck_assert_int_eq(info2->chosen, info->chosen);
		free(info2);
	}
	relm_rel_free(r);
	tu_party_free(&a);
	tu_party_free(&b);
	free(info);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("rel_describe");
	TCase *tc = tcase_create("describe");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_loop_test(tc, test_describe_fork, 0, 2);
	tcase_add_test(tc, test_describe_counts);
	tcase_add_test(tc, test_describe_partial_queue);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

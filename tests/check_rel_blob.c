/*
 * check_rel_blob.c — the state blob's versions 7 and 8 (engine/rel_blob.c):
 * a field is written only when it holds what the decoder cannot derive or
 * is not all zero (7), integers are varints and a node's parent is its
 * index in the tree (8).  Every state decodes from versions 8, 7 and 6
 * (and so from the older ones check_rel builds from 6) to the same state
 * — compared as the full version-6 encoding, every field in it — whatever
 * mix of fields is present; an idle relationship's blob is shorter by
 * exactly the fields left out; a field written where it could have been
 * left out, an unknown `present` bit, a key bit over a zero key, a parent
 * written as an id while it is in the tree or a varint longer than it
 * needs is a malformed blob (one state, one encoding); and every blob that decodes
 * after any single byte changed re-encodes to itself.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_rand.h"
#include "util_engine.h"
#include "engine/rel_state.h"
#include "crypto/x3dh.h"
#include "error.h"

/* "RLS" version id(16) mode side, then version 7's present(2) */
enum { PRESENT_AT = 4 + 16 + 1 + 1, V6 = 6, V7 = 7, V8 = 8 };

static uint64_t clock_ms;

static void setup(void)
{
	clock_ms = 1700000000000ull;
}

/* a and b paired, the hello opened, one message each way, settled: the
 * idle relationship of a store */
static void idle_pair(struct tu_party *a, struct tu_party *b)
{
	tu_party_init(a, &clock_ms, 1);
	tu_party_init(b, &clock_ms, 2);
	tu_pair(a, b, RELM_MODE_TREE, RELM_MODE_TREE, 1);
	tu_exchange(a, b, &clock_ms, 5);
	tu_send(a, "from a", NULL);
	tu_exchange(a, b, &clock_ms, 5);
	tu_send(b, "from b", NULL);
	tu_exchange(a, b, &clock_ms, 5);
}

static struct tu_blob enc(const struct relm_rel *rel, unsigned version)
{
	struct tu_blob s;
	ck_assert_int_eq(relm_rel_encode_version(rel, version, &s.buf, &s.len), 0);
	ck_assert_uint_eq(s.buf[3], version);
	return s;
}

/* The mailbox key pair read from blob's head alone is the decoded one's; a
 * head cut short anywhere, or another version, is refused and leaves the
 * output as it was. */
static void check_mailbox_key(const struct tu_blob b, const struct relm_rel *r)
{
	uint8_t sk[64], pk[32], buf[512];

	ck_assert_int_eq(relm_rel_blob_mailbox_key(b.buf, b.len, sk, pk), 0);
	ck_assert_int_eq(memcmp(sk, r->mbox_sk, 64), 0);
	ck_assert_int_eq(memcmp(pk, r->mbox_pk, 32), 0);
	for (size_t n = 0; n < 150 && n < b.len; n++) {     /* every version's head is longer */
		memset(sk, 0xa5, sizeof sk);
		ck_assert_int_eq(relm_rel_blob_mailbox_key(b.buf, n, sk, pk), RELM_ESTATE);
		ck_assert(sk[0] == 0xa5 && sk[63] == 0xa5);
	}
	memcpy(buf, b.buf, b.len < sizeof buf ? b.len : sizeof buf);
	buf[3] = 9;
	ck_assert_int_eq(relm_rel_blob_mailbox_key(buf, b.len < sizeof buf ? b.len : sizeof buf, sk, pk),
	                 RELM_EVERSION);
	memcpy(buf, "RLT", 3);
	ck_assert_int_eq(relm_rel_blob_mailbox_key(buf, b.len < sizeof buf ? b.len : sizeof buf, sk, pk),
	                 RELM_ESTATE);
}

/* rel, through a version-6, 7 and 8 blob, decodes to the same state (its
 * full version-6 encoding), and each blob re-encodes to itself; relm_rel_encode
 * writes version 8; each blob's head gives the mailbox key */
static void check_same_state(const struct relm_rel *rel)
{
	struct tu_blob b[3] = { enc(rel, V6), enc(rel, V7), enc(rel, V8) }, cur;

	ck_assert_int_eq(relm_rel_encode(rel, &cur.buf, &cur.len), 0);
	ck_assert(tu_blob_eq(cur, b[2]));
	tu_blob_free(&cur);
	for (int i = 0; i < 3; i++) {
		struct relm_rel *r = NULL;
		ck_assert_int_eq(relm_rel_decode(&r, b[i].buf, b[i].len), 0);
		struct tu_blob full = enc(r, V6), again = enc(r, (unsigned)(V6 + i));
		ck_assert_msg(tu_blob_eq(b[0], full), "version %d blob decodes to another state", V6 + i);
		ck_assert(tu_blob_eq(b[i], again));
		check_mailbox_key(b[i], r);
		tu_blob_free(&full);
		tu_blob_free(&again);
		relm_rel_free(r);
	}
	for (int i = 0; i < 3; i++)
		tu_blob_free(&b[i]);
}

static size_t zero_node_keys(const struct relm_rel *rel)
{
	size_t k = 0;
	for (uint32_t i = 0; i < rel->tree.count; i++) {
		const struct relm_node *n = &rel->tree.nodes[i];
		k += sodium_is_zero(n->priv, 32) + sodium_is_zero(n->rk, 32) + sodium_is_zero(n->ck, 32);
	}
	return k;
}

/* An idle relationship: version 7 leaves out the ad, mbox_pk, the remote
 * mailbox key, the initial envelope's fields (zero on the inviter's
 * side), the zero statistics, the batch fields when empty, the revocation
 * tail and every zero node key, and adds the two `present` bytes; both
 * sides decode to what they were. */
START_TEST(test_idle_leaves_out_what_is_derived)
{
	struct tu_party a, b;
	struct tu_party *p[2] = { &a, &b };

	idle_pair(&a, &b);
	for (int i = 0; i < 2; i++) {
		const struct relm_rel *rel = p[i]->rel;
		struct tu_blob full = enc(rel, V6), v7 = enc(rel, V7);
		size_t revoke_tail = 8 + 32 + 1 + 64 + 1 + 8 + 8 + 16 + 8 + 16 + 32;
		size_t left_out = RELM_AD_LEN + 32 + 32 + RELM_INITIAL_EXT_LEN + 5 * 4 + 16 + 8 +
		                  revoke_tail + 32 * zero_node_keys(rel);

		ck_assert_uint_eq(rel->initial_pending, 0);
		ck_assert_uint_eq(rel->has_gate, 1);
		/* the gate key, and the receipt batch's first id if one is set */
		int batch = !sodium_is_zero(rel->batch_first, 16) || rel->repair_ms;
		/* and the accepter's initial envelope fields (kept after the hello) */
		int initial = !sodium_is_zero(rel->initial.ek, 32);
		ck_assert_uint_eq(v7.buf[PRESENT_AT], 0);
		ck_assert_uint_eq(v7.buf[PRESENT_AT + 1], 0x08 | (batch ? 0x40 : 0) | (initial ? 0x10 : 0));
		ck_assert_uint_eq(full.len - v7.len,
		                  left_out - (batch ? 16 + 8 : 0) - (initial ? RELM_INITIAL_EXT_LEN : 0) - 2);
		/* version 8: varints and parents by index, shorter still */
		struct tu_blob v8 = enc(rel, V8);
		ck_assert_uint_lt(v8.len, v7.len);
		ck_assert_uint_eq(v8.buf[PRESENT_AT + 1], v7.buf[PRESENT_AT + 1]);
		tu_blob_free(&v8);
		check_same_state(rel);
		tu_blob_free(&full);
		tu_blob_free(&v7);
	}
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* Every optional field present, one at a time and all together: the state
 * survives both versions. */
START_TEST(test_every_field_present)
{
	struct tu_party a, b;
	struct relm_rel *rel;

	idle_pair(&a, &b);
	rel = a.rel;
	check_same_state(rel);
	rel->ad[0] ^= 1;                                  /* P_AD */
	check_same_state(rel);
	rel->mbox_pk[5] ^= 1;                             /* P_MBOX_PK */
	check_same_state(rel);
	rel->remote_mbox_pk[7] ^= 1;                      /* P_REMOTE_PK */
	check_same_state(rel);
	rel->remote_mailbox[0] = 0;                       /* no address: P_REMOTE_PK */
	rel->remote_mbox_pk[7] ^= 1;
	check_same_state(rel);
	rel->has_gate = 0;                                /* a gate key of zeros: no P_GATE */
	sodium_memzero(rel->gate_key, sizeof rel->gate_key);
	check_same_state(rel);
	rel->initial.opk_id = 9;                          /* P_INITIAL */
	check_same_state(rel);
	rel->stats.dups = 3;                              /* P_STATS */
	check_same_state(rel);
	rel->repair_ms = clock_ms;                        /* P_BATCH */
	check_same_state(rel);
	rel->heal_epoch = 2;                              /* P_REVOKE */
	check_same_state(rel);
	rel->tree.nodes[0].priv[31] = 1;                  /* a node key made non-zero */
	sodium_memzero(rel->tree.nodes[rel->tree.count - 1].ck, 32);   /* and one zero */
	check_same_state(rel);

	struct tu_blob v7 = enc(rel, V7);
	ck_assert_uint_eq(v7.buf[PRESENT_AT + 1], 0xff & ~0x08);    /* all but the gate key */
	tu_blob_free(&v7);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* Every node slot used, parents that left the tree, and every integer at
 * its largest (varints at their longest): the state survives all three
 * versions, and the encoder's one allocation holds it (an assert in
 * rel_blob.c). */
START_TEST(test_largest_values)
{
	struct tu_party a, b;
	struct relm_rel *rel;

	idle_pair(&a, &b);
	rel = a.rel;
	for (uint32_t i = rel->tree.count; i < RELM_MAX_NODES; i++) {
		struct relm_node *n = &rel->tree.nodes[i];
		*n = rel->tree.nodes[i % rel->tree.count];
		tu_rand_bytes(n->id, RELM_ID_LEN);
		tu_rand_bytes(n->parent, RELM_ID_LEN);         /* not in the tree */
	}
	rel->tree.count = RELM_MAX_NODES;
	for (uint32_t i = 0; i < rel->tree.count; i++) {
		struct relm_node *n = &rel->tree.nodes[i];
		n->depth = n->n = n->pn = UINT32_MAX;
		n->created_ms = UINT64_MAX;
	}
	for (uint32_t i = 0; i < RELM_RECENT_IDS; i++)           /* the whole ring in use */
		tu_rand_bytes(rel->recent[i], RELM_ID_LEN);
	rel->receipt_due_ms = rel->repair_ms = rel->heal_due_ms = UINT64_MAX;
	rel->ipk_seq = rel->heal_epoch = rel->clone_since_ms = UINT64_MAX;
	rel->stats.forks = rel->stats.pruned = rel->stats.retx = rel->stats.dups = rel->stats.trials = UINT32_MAX;
	check_same_state(rel);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* The heal's other nodes (P_HEALS, version 8 only): from one to the most
 * a device keeps, version 8 holds them and re-encodes to itself; version
 * 7 leaves them out; a count of 0 or above the limit, an all-zero id or
 * the bit without the record is malformed. */
START_TEST(test_heal_others)
{
	struct tu_party a, b;
	struct relm_rel *rel, *r;

	idle_pair(&a, &b);
	rel = a.rel;
	rel->heal_epoch = 2;
	rel->heal_state = RELM_HEAL_SENT;
	tu_rand_bytes(rel->heal_node, RELM_ID_LEN);
	for (unsigned k = 1; k <= RELM_HEAL_OTHERS; k++) {
		tu_rand_bytes(rel->heal_others[k - 1], RELM_ID_LEN);
		rel->nheal_others = (uint8_t)k;
		struct tu_blob v8 = enc(rel, V8);
		ck_assert_uint_eq(v8.buf[PRESENT_AT], 0x01);
		r = NULL;
		ck_assert_int_eq(relm_rel_decode(&r, v8.buf, v8.len), 0);
		ck_assert_uint_eq(r->nheal_others, k);
		ck_assert(memcmp(r->heal_others, rel->heal_others, (size_t)k * RELM_ID_LEN) == 0);
		struct tu_blob again = enc(r, V8);
		ck_assert(tu_blob_eq(v8, again));
		tu_blob_free(&again);
		relm_rel_free(r);
		tu_blob_free(&v8);
	}

	struct tu_blob v7 = enc(rel, V7);
	ck_assert_uint_eq(v7.buf[PRESENT_AT], 0);
	r = NULL;
	ck_assert_int_eq(relm_rel_decode(&r, v7.buf, v7.len), 0);
	ck_assert_uint_eq(r->nheal_others, 0);
	ck_assert(memcmp(r->heal_node, rel->heal_node, RELM_ID_LEN) == 0);
	relm_rel_free(r);
	tu_blob_free(&v7);

	/* the record is the blob's last: count, then the ids */
	struct tu_blob v8 = enc(rel, V8);
	size_t at = v8.len - 1 - (size_t)RELM_HEAL_OTHERS * RELM_ID_LEN;
	ck_assert_uint_eq(v8.buf[at], RELM_HEAL_OTHERS);
	const uint8_t bad_count[2] = { 0, RELM_HEAL_OTHERS + 1 };
	for (int i = 0; i < 2; i++) {
		v8.buf[at] = bad_count[i];
		r = NULL;
		ck_assert_int_eq(relm_rel_decode(&r, v8.buf, v8.len), RELM_ESTATE);
		ck_assert_ptr_null(r);
	}
	v8.buf[at] = RELM_HEAL_OTHERS;
	uint8_t keep[RELM_ID_LEN];
	memcpy(keep, v8.buf + at + 1, RELM_ID_LEN);
	memset(v8.buf + at + 1, 0, RELM_ID_LEN);
	ck_assert_int_eq(relm_rel_decode(&r, v8.buf, v8.len), RELM_ESTATE);
	memcpy(v8.buf + at + 1, keep, RELM_ID_LEN);
	v8.buf[PRESENT_AT] = 0;
	ck_assert_int_eq(relm_rel_decode(&r, v8.buf, v8.len), RELM_ESTATE);
	v8.buf[PRESENT_AT] = 0x01;
	ck_assert_int_eq(relm_rel_decode(&r, v8.buf, v8.len), 0);
	relm_rel_free(r);
	tu_blob_free(&v8);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* A present bit over a field that could have been left out (or is
 * unknown), or a node key bit over zeros, is malformed. */
START_TEST(test_non_canonical_is_malformed)
{
	struct tu_party a, b;
	struct relm_rel *r = NULL;

	idle_pair(&a, &b);
	struct tu_blob v7 = enc(a.rel, V7);
	for (unsigned bit = 0; bit < 16; bit++) {
		if (bit == 3)
			continue;                                 /* the gate key: present */
		v7.buf[PRESENT_AT + (bit < 8)] ^= (uint8_t)(1u << (bit % 8));
		ck_assert_msg(relm_rel_decode(&r, v7.buf, v7.len) == RELM_ESTATE, "present bit %u", bit);
		ck_assert_ptr_null(r);
		v7.buf[PRESENT_AT + (bit < 8)] ^= (uint8_t)(1u << (bit % 8));
	}
	ck_assert_int_eq(relm_rel_decode(&r, v7.buf, v7.len), 0);
	relm_rel_free(r);
	r = NULL;
	tu_blob_free(&v7);

	/* a key bit over a key of zeros: written as zeros, it decodes to the
	 * same state but is not the encoding of it */
	struct relm_node *n = NULL;
	for (uint32_t i = 0; i < a.rel->tree.count && !n; i++)
		if (sodium_is_zero(a.rel->tree.nodes[i].priv, 32))
			n = &a.rel->tree.nodes[i];
	ck_assert_ptr_nonnull(n);
	n->priv[31] = 1;
	v7 = enc(a.rel, V7);
	uint8_t *priv = memmem(v7.buf, v7.len, n->priv, 32);
	ck_assert_ptr_nonnull(priv);
	priv[31] = 0;
	ck_assert_int_eq(relm_rel_decode(&r, v7.buf, v7.len), RELM_ESTATE);
	priv[31] = 1;
	ck_assert_int_eq(relm_rel_decode(&r, v7.buf, v7.len), 0);
	relm_rel_free(r);
	tu_blob_free(&v7);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* blob with `ins` bytes put in place of the byte at `at` */
static struct tu_blob splice(struct tu_blob b, size_t at, const uint8_t *ins, size_t n)
{
	struct tu_blob o;
	o.len = b.len - 1 + n;
	ck_assert_ptr_nonnull(o.buf = malloc(o.len));
	memcpy(o.buf, b.buf, at);
	memcpy(o.buf + at, ins, n);
	memcpy(o.buf + at + n, b.buf + at + 1, b.len - at - 1);
	return o;
}

/* Version 8's two encodings with a choice: a parent in the tree written
 * as an id rather than by its index, and a varint not in its shortest
 * form (a node's depth as two bytes), are malformed; as made, it decodes. */
START_TEST(test_v8_one_encoding)
{
	struct tu_party a, b;
	struct relm_rel *r = NULL;
	const struct relm_node *n = NULL;

	idle_pair(&a, &b);
	for (uint32_t i = 0; i < a.rel->tree.count && !n; i++)
		if (relm_tree_find(&a.rel->tree, a.rel->tree.nodes[i].parent) >= 0)
			n = &a.rel->tree.nodes[i];
	ck_assert_ptr_nonnull(n);
	ck_assert_uint_lt(n->depth, 128);
	struct tu_blob v8 = enc(a.rel, V8);
	uint8_t *id = memmem(v8.buf, v8.len, n->id, 16);
	ck_assert_ptr_nonnull(id);
	size_t ref = (size_t)(id - v8.buf) + 16;                  /* the parent reference */
	ck_assert_int_eq(v8.buf[ref], relm_tree_find(&a.rel->tree, n->parent));
	ck_assert_int_eq(v8.buf[ref + 1], n->depth);
	ck_assert_int_eq(relm_rel_decode(&r, v8.buf, v8.len), 0);
	relm_rel_free(r);

	uint8_t as_id[17] = { 0xff };
	memcpy(as_id + 1, n->parent, 16);
	struct tu_blob bad = splice(v8, ref, as_id, sizeof as_id);
	r = NULL;
	ck_assert_int_eq(relm_rel_decode(&r, bad.buf, bad.len), RELM_ESTATE);
	ck_assert_ptr_null(r);
	tu_blob_free(&bad);

	uint8_t long_depth[2] = { (uint8_t)(n->depth | 0x80), 0 };
	bad = splice(v8, ref + 1, long_depth, sizeof long_depth);
	ck_assert_int_eq(relm_rel_decode(&r, bad.buf, bad.len), RELM_ESTATE);
	ck_assert_ptr_null(r);
	tu_blob_free(&bad);
	tu_blob_free(&v8);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* Any one byte changed: the blob is malformed, or it decodes to a state
 * whose encoding is that very blob. */
START_TEST(test_flip_every_byte)
{
	struct tu_party a, b;
	idle_pair(&a, &b);
	a.rel->heal_epoch = 1;
	a.rel->stats.forks = 1;
	for (unsigned v = V7; v <= V8; v++) {
		struct tu_blob blob = enc(a.rel, v);
		for (size_t i = 0; i < blob.len; i++) {
			struct relm_rel *r = NULL;
			uint8_t was = blob.buf[i];
			blob.buf[i] ^= (uint8_t)(1u << tu_rand_below(8));
			if (relm_rel_decode(&r, blob.buf, blob.len) == 0) {
				struct tu_blob again = enc(r, v);
				ck_assert_msg(tu_blob_eq(blob, again), "v%u byte %zu: decodes, re-encodes otherwise ("
				              TU_SEED_FMT ")", v, i, TU_SEED_ARG);
				tu_blob_free(&again);
				relm_rel_free(r);
			}
			blob.buf[i] = was;
		}
		tu_blob_free(&blob);
	}
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("rel_blob");
	TCase *tc = tcase_create("v7_v8");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_idle_leaves_out_what_is_derived);
	tcase_add_test(tc, test_every_field_present);
	tcase_add_test(tc, test_largest_values);
	tcase_add_test(tc, test_heal_others);
	tcase_add_test(tc, test_non_canonical_is_malformed);
	tcase_add_test(tc, test_v8_one_encoding);
	tcase_add_test(tc, test_flip_every_byte);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	tu_seed_from_env();
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : 0;
}

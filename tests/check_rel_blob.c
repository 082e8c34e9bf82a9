/*
 * check_rel_blob.c — the state blob's version 7 (engine/rel_blob.c): a
 * field is written only when it holds what the decoder cannot derive or
 * is not all zero.  Every state decodes from version 7 and from version 6
 * (and so from the older ones check_rel builds from 6) to the same state
 * — compared as the full version-6 encoding, every field in it — whatever
 * mix of fields is present; an idle relationship's blob is shorter by
 * exactly the fields left out; a field written where it could have been
 * left out, an unknown `present` bit or a key bit over a zero key is a
 * malformed blob (one state, one encoding); and every blob that decodes
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
enum { PRESENT_AT = 4 + 16 + 1 + 1, V6 = 6, V7 = 7 };

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

/* rel, through a version-6 and a version-7 blob, decodes to the same state
 * (its full version-6 encoding), and each blob re-encodes to itself */
static void check_same_state(const struct relm_rel *rel)
{
	struct tu_blob full = enc(rel, V6), v7 = enc(rel, V7);
	struct tu_blob *from[2] = { &full, &v7 };

	for (int i = 0; i < 2; i++) {
		struct relm_rel *r = NULL;
		ck_assert_int_eq(relm_rel_decode(&r, from[i]->buf, from[i]->len), 0);
		struct tu_blob again6 = enc(r, V6), again7 = enc(r, V7);
		ck_assert_msg(tu_blob_eq(full, again6), "version %d blob decodes to another state", i ? 7 : 6);
		ck_assert(tu_blob_eq(v7, again7));
		tu_blob_free(&again6);
		tu_blob_free(&again7);
		relm_rel_free(r);
	}
	tu_blob_free(&full);
	tu_blob_free(&v7);
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

/* Any one byte changed: the blob is malformed, or it decodes to a state
 * whose encoding is that very blob. */
START_TEST(test_flip_every_byte)
{
	struct tu_party a, b;
	idle_pair(&a, &b);
	a.rel->heal_epoch = 1;
	a.rel->stats.forks = 1;
	struct tu_blob v7 = enc(a.rel, V7);
	for (size_t i = 0; i < v7.len; i++) {
		struct relm_rel *r = NULL;
		uint8_t was = v7.buf[i];
		v7.buf[i] ^= (uint8_t)(1u << tu_rand_below(8));
		if (relm_rel_decode(&r, v7.buf, v7.len) == 0) {
			struct tu_blob again = enc(r, V7);
			ck_assert_msg(tu_blob_eq(v7, again), "byte %zu: decodes, re-encodes otherwise (" TU_SEED_FMT ")",
			              i, TU_SEED_ARG);
			tu_blob_free(&again);
			relm_rel_free(r);
		}
		v7.buf[i] = was;
	}
	tu_blob_free(&v7);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("rel_blob");
	TCase *tc = tcase_create("v7");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_idle_leaves_out_what_is_derived);
	tcase_add_test(tc, test_every_field_present);
	tcase_add_test(tc, test_non_canonical_is_malformed);
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

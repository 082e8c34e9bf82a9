/*
 * check_gate.c — the gate tag that ends every envelope (proto/wire.md §5.1):
 * anyone who knows a relationship's mailbox id can post to it, but only the
 * two parties' devices hold the gate key, so junk is refused before it can
 * take a slot of the pending set — where genuine envelopes wait for a
 * sibling's node.  Through the public engine API (rel.h, util_engine.h).
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_rand.h"
#include "util_engine.h"
#include "engine/rel.h"
#include "crypto/crypto.h"
#include "crypto/x3dh.h"
#include "wire/envelope.h"
#include "error.h"

static uint64_t clock_ms;

static void setup(void)
{
	clock_ms = 1700000000000ull;
}

/* Deliver everything in flight both ways, then tick past the receipt delay. */
static void settle(struct tu_party *a, struct tu_party *b)
{
	tu_exchange(a, b, &clock_ms, 4);
}

/* ---- the codec ------------------------------------------------------------ */

START_TEST(test_every_envelope_is_gated)
{
	struct tu_party a, b;
	struct relm_envelope e;

	tu_party_init(&a, &clock_ms, 1);
	tu_party_init(&b, &clock_ms, 2);
	tu_pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE, 1);
	ck_assert_uint_eq(a.rel->has_gate, 1);
	ck_assert_uint_eq(b.rel->has_gate, 1);
	ck_assert(sodium_memcmp(a.rel->gate_key, b.rel->gate_key, RELM_KEY_LEN) == 0);
	tu_send(&a, "one", NULL);
	tu_send(&b, "two", NULL);
	for (struct tu_party *p = &a; p; p = p == &a ? &b : NULL) {
		struct tu_blob x = tu_take(p, p->nout - 1);
		ck_assert_int_eq(relm_envelope_decode(&e, x.buf, x.len), 0);
		ck_assert(e.h.flags & RELM_ENV_F_GATE);
		ck_assert_ptr_eq(e.gate, x.buf + x.len - RELM_GATE_LEN);
		ck_assert_uint_eq(e.gated_len, x.len - RELM_GATE_LEN);
		ck_assert_uint_eq(e.hdrlen + e.ctlen + RELM_GATE_LEN, x.len);
		ck_assert(relm_gate_check(e.gate, p->rel->gate_key, x.buf, e.gated_len));
		/* a gated envelope shorter than one block, tag and gate */
		ck_assert_int_eq(relm_envelope_decode(&e, x.buf, e.hdrlen + 64 + 16 + 15), RELM_ETRUNCATED);
		tu_blob_free(&x);
	}
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* ---- refusing what is not from the remote --------------------------------- */

/* A tampered gate, a stripped gate, a gate under another key: each is
 * refused with RELM_EAUTH, nothing pending, state byte for byte as before;
 * the genuine envelope is accepted afterwards. */
START_TEST(test_bad_gates_refused_before_anything)
{
	struct tu_party a, b;
	struct tu_blob x, before, after;
	uint8_t *m;

	tu_party_init(&a, &clock_ms, 1);
	tu_party_init(&b, &clock_ms, 2);
	tu_pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE, 1);
	settle(&a, &b);
	tu_send(&a, "genuine", NULL);
	x = tu_take(&a, a.nout - 1);
	m = malloc(x.len);
	ck_assert_ptr_nonnull(m);
	before = tu_state(&b);

	for (size_t i = 0; i < RELM_GATE_LEN; i++) {      /* every gate byte */
		memcpy(m, x.buf, x.len);
		m[x.len - RELM_GATE_LEN + i] ^= 0x01;
		ck_assert_int_eq(tu_recv(&b, m, x.len), RELM_EAUTH);
	}
	/* the flag cleared and the tag cut off: a gated relationship wants it */
	memcpy(m, x.buf, x.len);
	m[1] &= (uint8_t)~RELM_ENV_F_GATE;
	ck_assert_int_eq(tu_recv(&b, m, x.len - RELM_GATE_LEN), RELM_EAUTH);
	/* a correct tag under another key (an outsider's own gate key) */
	{
		uint8_t other[RELM_KEY_LEN];
		memset(other, 0x5a, sizeof other);
		memcpy(m, x.buf, x.len);
		relm_gate_tag(m + x.len - RELM_GATE_LEN, other, m, x.len - RELM_GATE_LEN);
		ck_assert_int_eq(tu_recv(&b, m, x.len), RELM_EAUTH);
	}
	/* a byte of the ciphertext changed and the gate recomputed with the
	 * right key: the gate passes, the AEAD refuses */
	memcpy(m, x.buf, x.len);
	m[x.len - RELM_GATE_LEN - 1] ^= 0x80;
	relm_gate_tag(m + x.len - RELM_GATE_LEN, b.rel->gate_key, m, x.len - RELM_GATE_LEN);
	ck_assert_int_ne(tu_recv(&b, m, x.len), 0);
	ck_assert_int_ne(tu_recv(&b, m, x.len), RELM_EPENDING);

	after = tu_state(&b);
	ck_assert(tu_blob_eq(before, after));
	ck_assert_uint_eq(b.rel->npending, 0);
	ck_assert_uint_eq(b.pending_adds, 0);
	ck_assert_int_eq(tu_recv(&b, x.buf, x.len), 0);
	free(m);
	tu_blob_free(&x);
	tu_blob_free(&before);
	tu_blob_free(&after);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* ---- the flood ---------------------------------------------------------------- */

enum { REAL = 50, JUNK = 5000 };

/* One junk envelope of kind k (0..3), len ≤ cap; fills buf from rnd:
 *  0  random bytes
 *  1  a well-formed envelope header, random keys and ciphertext, GATE set, random tag
 *  2  the same without GATE (an outsider who does not know there is a gate)
 *  3  a real envelope with one random byte changed (a replayed, damaged copy) */
static size_t junk(uint8_t *buf, size_t cap, int k, const struct tu_blob *real)
{
	size_t len;

	if (k == 3) {
		len = real->len;
		memcpy(buf, real->buf, len);
		buf[tu_rand_below(len)] ^= (uint8_t)(1 + tu_rand_below(255));
		return len;
	}
	len = RELM_HEADER_LEN + 64 * (1 + tu_rand_below(4)) + RELM_TAG_LEN +
	      (k == 1 ? RELM_GATE_LEN : 0);
	ck_assert_uint_le(len, cap);
	tu_rand_bytes(buf, len);
	if (k == 0)
		return len;
	buf[0] = RELM_WIRE_VERSION;
	buf[1] = k == 1 ? RELM_ENV_F_GATE : 0;
	buf[33] &= 0x7f;                      /* a canonical X25519 key */
	return len;
}

/* a2, a copy of a1's device, sends on a node a1 does not know yet; b
 * answers with REAL messages on top of it.  At a1 they must wait in the
 * pending set (the sibling's node is "on its way").  They are delivered to
 * a1 in random order among JUNK envelopes from outsiders.  With the gate,
 * every real one is held and no junk is; without it (gated = 0, the
 * relationship as it was before the gate), junk pushes real ones out —
 * which shows the test can tell. */
static void flood(int gated, uint64_t seed, size_t *held, size_t *evicted)
{
	struct tu_party a1, a2, b;
	struct tu_blob reals[REAL];
	static uint8_t buf[1024];
	size_t order[REAL], nreal = 0, junk_held = 0;

	tu_seed_set(seed);
	tu_party_init(&a1, &clock_ms, 1);
	tu_party_init(&b, &clock_ms, 2);
	tu_pair(&a1, &b, RELM_MODE_TREE, RELM_MODE_TREE, 1);
	if (!gated) {
		a1.rel->has_gate = 0;
		b.rel->has_gate = 0;
	}
	settle(&a1, &b);
	/* b speaks; a1 reads it and has not answered (no tick: its receipt is
	 * only armed) when a2 is copied from it */
	tu_send(&b, "b first", NULL);
	{
		struct tu_blob e = tu_take(&b, b.nout - 1);
		ck_assert_int_eq(tu_recv(&a1, e.buf, e.len), 0);
		tu_blob_free(&e);
	}
	tu_clone(&a2, &a1, &clock_ms, 3);
	{
		/* a2's send makes a new ours node under b's: a1 does not know it */
		struct tu_blob e;
		uint32_t nodes = a2.rel->tree.count;
		tu_send(&a2, "from the sibling", NULL);
		ck_assert_uint_eq(a2.rel->tree.count, nodes + 1);
		e = tu_take(&a2, a2.nout - 1);
		ck_assert_int_eq(tu_recv(&b, e.buf, e.len), 0);
		tu_blob_free(&e);
	}
	while (b.nout) {                          /* b's receipt etc. go nowhere */
		struct tu_blob e = tu_take(&b, 0);
		tu_blob_free(&e);
	}
	for (int i = 0; i < REAL; i++)
		tu_send(&b, "on the sibling's node", NULL);
	ck_assert_uint_eq(b.nout, REAL);
	for (int i = 0; i < REAL; i++) {
		reals[i] = tu_take(&b, 0);
		order[i] = (size_t)i;
	}
	for (int i = REAL - 1; i > 0; i--) {      /* out of order */
		size_t j = tu_rand_below((uint64_t)i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (size_t sent = 0; sent < REAL + JUNK; sent++) {
		int pick_real = nreal < REAL &&
		                tu_rand_below(REAL + JUNK - sent) < REAL - nreal;
		if (pick_real) {
			const struct tu_blob *r = &reals[order[nreal++]];
			ck_assert_int_eq(tu_recv(&a1, r->buf, r->len), RELM_EPENDING);
		} else {
			size_t before = a1.pending_adds;
			size_t len = junk(buf, sizeof buf, (int)tu_rand_below(4),
			                  &reals[tu_rand_below(REAL)]);
			int rc = tu_recv(&a1, buf, len);
			if (gated)
				ck_assert_msg(rc != 0 && rc != RELM_EPENDING && rc != RELM_EDUP,
				              "junk envelope %zu: %d (seed %llu)", sent, rc,
				              (unsigned long long)seed);
			junk_held += a1.pending_adds - before;
		}
	}
	*held = 0;
	for (int i = 0; i < REAL; i++) {
		uint8_t h[RELM_ID_LEN];
		crypto_generichash(h, sizeof h, reals[i].buf, reals[i].len, NULL, 0);
		for (uint32_t k = 0; k < a1.rel->npending; k++)
			if (memcmp(a1.rel->pending[k].hash, h, RELM_ID_LEN) == 0) {
				(*held)++;
				break;
			}
	}
	*evicted = a1.undecryptable;
	if (gated)
		ck_assert_uint_eq(junk_held, 0);
	for (int i = 0; i < REAL; i++)
		tu_blob_free(&reals[i]);
	tu_party_free(&a1);
	tu_party_free(&a2);
	tu_party_free(&b);
}

START_TEST(test_flood_loses_no_genuine_pending_envelope)
{
	uint64_t seed = tu_seed();
	size_t held, evicted;

	flood(1, seed, &held, &evicted);
	ck_assert_msg(held == REAL, "%zu of %d genuine envelopes held (seed %llu)", held, REAL,
	              (unsigned long long)seed);
	ck_assert_uint_eq(evicted, 0);
	/* the same schedule on an ungated relationship loses genuine ones */
	flood(0, seed, &held, &evicted);
	ck_assert_msg(held < REAL && evicted > 0,
	              "without the gate %zu held, %zu evicted (seed %llu)", held, evicted,
	              (unsigned long long)seed);
}
END_TEST

/* ---- relationships from before the gate ----------------------------------- */

/* A relationship decoded from a state without a gate key sends envelopes
 * without the GATE flag and accepts them without a tag. */
START_TEST(test_ungated_relationship_still_talks)
{
	struct tu_party a, b;
	struct relm_envelope e;
	struct tu_blob x;
	uint8_t id[RELM_ID_LEN];

	tu_party_init(&a, &clock_ms, 1);
	tu_party_init(&b, &clock_ms, 2);
	tu_pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE, 1);
	settle(&a, &b);
	a.rel->has_gate = 0;
	b.rel->has_gate = 0;
	tu_send(&a, "old style", id);
	x = tu_take(&a, a.nout - 1);
	ck_assert_int_eq(relm_envelope_decode(&e, x.buf, x.len), 0);
	ck_assert_int_eq(e.h.flags & RELM_ENV_F_GATE, 0);
	ck_assert_ptr_null(e.gate);
	ck_assert_int_eq(tu_recv(&b, x.buf, x.len), 0);
	ck_assert(tu_hist_has(&b, id, 1));
	tu_blob_free(&x);
	tu_party_free(&a);
	tu_party_free(&b);
}
END_TEST

/* ---- the key and the tag (proto/wire.md §9.6 vectors) --------------------- */

START_TEST(test_gate_vectors)
{
	uint8_t sk[RELM_KEY_LEN], gk[RELM_KEY_LEN], tag[RELM_GATE_LEN], m[100];
	char hex[2 * RELM_KEY_LEN + 1];

	for (int i = 0; i < 32; i++)
		sk[i] = (uint8_t)i;
	for (int i = 0; i < 100; i++)
		m[i] = (uint8_t)(0x80 + i);
	relm_gate_key(gk, sk);
	relm_hex(hex, gk, sizeof gk);
	ck_assert_str_eq(hex, "ab65dbef5b46e5034915d96a79c62a4414fd59e35853266ae700f11dcd1973ec");
	relm_gate_tag(tag, gk, m, sizeof m);
	relm_hex(hex, tag, sizeof tag);
	ck_assert_str_eq(hex, "ba739a69c9ced4639233a072c9ee0764");
	ck_assert(relm_gate_check(tag, gk, m, sizeof m));
	tag[15] ^= 1;
	ck_assert(!relm_gate_check(tag, gk, m, sizeof m));
}
END_TEST

static Suite *gate_suite(void)
{
	Suite *s = suite_create("gate");
	TCase *tc;

	tc = tcase_create("codec");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_every_envelope_is_gated);
	tcase_add_test(tc, test_gate_vectors);
	suite_add_tcase(s, tc);

	tc = tcase_create("refuse");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_bad_gates_refused_before_anything);
	tcase_add_test(tc, test_ungated_relationship_still_talks);
	suite_add_tcase(s, tc);

	tc = tcase_create("flood");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_flood_loses_no_genuine_pending_envelope);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(gate_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

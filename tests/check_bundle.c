/*
 * check_bundle.c — sibling bundles (wire/bundle.h, proto/devices.md §4.5):
 * random bundles round-trip message for message; every truncation, a
 * count below two, an empty or nested message, bytes after the last and a
 * bundle over RELM_SIBLING_MAX are refused, both ways.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include "util_rand.h"
#include "wire/bundle.h"
#include "wire/sibling.h"
#include "limits.h"
#include "error.h"

enum { MSGS_MAX = 12 };

struct sample {
	uint8_t *msgs[MSGS_MAX];
	const uint8_t *cm[MSGS_MAX];
	size_t lens[MSGS_MAX], n, bytes;
};

static void sample_make(struct sample *s)
{
	s->n = 2 + tu_rand64() % (MSGS_MAX - 1);
	s->bytes = 0;
	for (size_t i = 0; i < s->n; i++) {
		s->lens[i] = 1 + tu_rand64() % 300;
		s->msgs[i] = malloc(s->lens[i]);
		ck_assert_ptr_nonnull(s->msgs[i]);
		tu_rand_bytes(s->msgs[i], s->lens[i]);
		s->msgs[i][0] = (uint8_t)(1 + tu_rand64() % 11);   /* any type but a bundle */
		s->cm[i] = s->msgs[i];
		s->bytes += s->lens[i];
	}
}

static void sample_free(struct sample *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->msgs[i]);
}

START_TEST(test_round_trip)
{
	for (int round = 0; round < 200; round++) {
		struct sample s;
		uint8_t *b = NULL;
		const uint8_t *m;
		size_t blen = 0, off = 0, mlen, k = 0;

		sample_make(&s);
		ck_assert_int_eq(relm_sib_bundle_encode(&b, &blen, s.cm, s.lens, s.n), 0);
		ck_assert_uint_eq(blen, relm_sib_bundle_size(s.n, s.bytes));
		ck_assert_uint_eq(b[0], RELM_SIB_BUNDLE);
		ck_assert_int_eq(relm_sib_bundle_check(b, blen), 0);
		while (relm_sib_bundle_next(b, blen, &off, &m, &mlen)) {
			ck_assert_uint_lt(k, s.n);
			ck_assert_uint_eq(mlen, s.lens[k]);
			ck_assert_int_eq(memcmp(m, s.msgs[k], mlen), 0);
			k++;
		}
		ck_assert_uint_eq(k, s.n);
		/* every truncation is refused, and so is a byte more */
		for (size_t cut = 0; cut < blen; cut++)
			ck_assert_int_ne(relm_sib_bundle_check(b, cut), 0);
		uint8_t *more = malloc(blen + 1);
		ck_assert_ptr_nonnull(more);
		memcpy(more, b, blen);
		more[blen] = 1;
		ck_assert_int_eq(relm_sib_bundle_check(more, blen + 1), RELM_EMALFORMED);
		free(more);
		relm_sib_buf_free(b, blen);
		sample_free(&s);
	}
}
END_TEST

START_TEST(test_refused)
{
	struct sample s;
	uint8_t *b = NULL, nested[] = { RELM_SIB_BUNDLE, 0, 2 };
	size_t blen = 0, big = RELM_SIBLING_MAX / 2;
	const uint8_t *cm[2];
	size_t lens[2];

	sample_make(&s);
	/* encoding: fewer than two, an empty message, a bundle inside */
	ck_assert_int_eq(relm_sib_bundle_encode(&b, &blen, s.cm, s.lens, 1), RELM_EINVAL);
	lens[0] = s.lens[0];
	lens[1] = 0;
	cm[0] = s.cm[0];
	cm[1] = s.cm[1];
	ck_assert_int_eq(relm_sib_bundle_encode(&b, &blen, cm, lens, 2), RELM_EINVAL);
	cm[1] = nested;
	lens[1] = sizeof nested;
	ck_assert_int_eq(relm_sib_bundle_encode(&b, &blen, cm, lens, 2), RELM_EINVAL);
	/* too big together, though each fits alone */
	uint8_t *h = calloc(1, big);
	ck_assert_ptr_nonnull(h);
	h[0] = RELM_SIB_COPY;
	cm[0] = cm[1] = h;
	lens[0] = lens[1] = big;
	ck_assert_int_eq(relm_sib_bundle_encode(&b, &blen, cm, lens, 2), RELM_ETOOBIG);
	free(h);
	ck_assert_ptr_null(b);

	/* decoding: a count of one, an empty message, a nested bundle */
	ck_assert_int_eq(relm_sib_bundle_encode(&b, &blen, s.cm, s.lens, 2), 0);
	b[2] = 1;
	ck_assert_int_eq(relm_sib_bundle_check(b, blen), RELM_EMALFORMED);
	b[2] = 2;
	b[RELM_SIB_BUNDLE_HEAD + RELM_SIB_BUNDLE_ITEM] = RELM_SIB_BUNDLE;
	ck_assert_int_eq(relm_sib_bundle_check(b, blen), RELM_EMALFORMED);
	relm_sib_buf_free(b, blen);
	static const uint8_t empty[] = { RELM_SIB_BUNDLE, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, RELM_SIB_COPY };
	ck_assert_int_eq(relm_sib_bundle_check(empty, sizeof empty), RELM_EMALFORMED);
	static const uint8_t huge_len[] = { RELM_SIB_BUNDLE, 0, 2, 0xff, 0xff, 0xff, 0xff, 1 };
	ck_assert_int_eq(relm_sib_bundle_check(huge_len, sizeof huge_len), RELM_ETRUNCATED);
	sample_free(&s);
}
END_TEST

int main(void)
{
	SRunner *sr;
	Suite *s = suite_create("bundle");
	TCase *tc = tcase_create("wire");
	int failed;

	tu_seed_from_env();
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_refused);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

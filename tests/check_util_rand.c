/*
 * check_util_rand.c — the test helpers of tests/util_rand.h: streams are
 * pure functions of the seed, envs are independent of each other, the
 * virtual clock is read through the pointer.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include "engine/env.h"
#include "limits.h"
#include "util_rand.h"

START_TEST(global_stream_deterministic)
{
	uint64_t a[8], b[8];

	tu_seed_set(42);
	for (int i = 0; i < 8; i++)
		a[i] = tu_rand64();
	tu_seed_set(42);
	for (int i = 0; i < 8; i++)
		b[i] = tu_rand64();
	ck_assert_mem_eq(a, b, sizeof a);
	ck_assert_uint_eq(tu_seed(), 42);
	tu_seed_set(43);
	ck_assert(tu_rand64() != a[0]);
	for (int i = 0; i < 1000; i++)
		ck_assert_uint_lt(tu_rand_below(7), 7);
}
END_TEST

START_TEST(env_streams)
{
	struct relm_env e1, e2, e3;
	uint64_t clock = 1000;
	uint8_t x1[100], x2[100], x3[100], y[100];

	tu_seed_set(7);
	tu_env_init(&e1, &clock);                   /* stream 0 */
	tu_env_init(&e2, &clock);                   /* stream 1 */
	tu_env_init_stream(&e3, &clock, 0);         /* stream 0 again */
	relm__random(&e1, x1, sizeof x1);
	relm__random(&e2, x2, sizeof x2);
	/* draws in odd-sized pieces give the same stream */
	relm__random(&e3, x3, 3);
	relm__random(&e3, x3 + 3, 61);
	relm__random(&e3, x3 + 64, 36);
	ck_assert_mem_eq(x1, x3, sizeof x1);
	ck_assert(memcmp(x1, x2, sizeof x1) != 0);
	/* one env's draws do not move another's */
	relm__random(&e2, y, sizeof y);
	ck_assert(memcmp(y, x2, sizeof y) != 0);
	/* clock and params */
	ck_assert_uint_eq(relm__now(&e1), 1000);
	clock = 2500;
	ck_assert_uint_eq(relm__now(&e2), 2500);
	ck_assert_uint_eq(e1.params.max_skip, RELM_MAX_SKIP);
	ck_assert_ptr_null(e1.history_has);
	tu_env_free(&e1);
	tu_env_free(&e2);
	tu_env_free(&e3);
	ck_assert_ptr_null(e1.ctx);
	tu_env_free(&e1);                           /* twice is harmless */
	/* another seed, another stream 0 */
	tu_seed_set(8);
	tu_env_init(&e1, &clock);
	relm__random(&e1, y, sizeof y);
	ck_assert(memcmp(y, x1, sizeof y) != 0);
	tu_env_free(&e1);
}
END_TEST

START_TEST(hex_helpers)
{
	uint8_t b[4];

	tu_unhex(b, 4, "de ad\nBE ef");
	ck_assert_mem_eq(b, "\xde\xad\xbe\xef", 4);
	ck_assert_str_eq(tu_hex(b, 4), "deadbeef");
}
END_TEST

static Suite *util_rand_suite(void)
{
	Suite *s = suite_create("util_rand");
	TCase *tc;

	tc = tcase_create("global");
	tcase_add_test(tc, global_stream_deterministic);
	tcase_add_test(tc, hex_helpers);
	suite_add_tcase(s, tc);

	tc = tcase_create("env");
	tcase_add_test(tc, env_streams);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(util_rand_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * check_env.c — the system environment relmd uses (env.h): its generator
 * never repeats itself, not across draws, not across a fork; defaults;
 * payload ids in time order.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <check.h>
#include "engine/env.h"
#include "system_env.h"
#include "limits.h"
#include "util_rand.h"

static uint64_t fixed_now(void *ctx)
{
	return *(const uint64_t *)ctx;
}

/* relm__new_id: the payload's time, 48 bits big-endian, then 10 random
 * bytes — ids made later sort after, ids made in the same millisecond
 * differ; and a message relm_rel_send makes carries its ts in its id. */
START_TEST(test_ids_in_time_order)
{
	struct relm_env env;
	uint64_t now = 0x0000123456789abcull;
	uint8_t a[RELM_ID_LEN], b[RELM_ID_LEN], c[RELM_ID_LEN];
	static const uint8_t want[6] = { 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc };

	relm_env_init_system(&env);
	env.now_ms = fixed_now;
	env.ctx = &now;
	relm__new_id(&env, now, a);
	relm__new_id(&env, now, b);
	ck_assert_int_eq(memcmp(a, want, 6), 0);
	ck_assert_int_eq(memcmp(b, want, 6), 0);
	ck_assert(memcmp(a + 6, b + 6, RELM_ID_LEN - 6) != 0);
	now++;
	relm__new_id(&env, now, c);
	ck_assert(memcmp(a, c, RELM_ID_LEN) < 0 && memcmp(b, c, RELM_ID_LEN) < 0);
}
END_TEST

START_TEST(test_draws_differ)
{
	struct relm_env env;
	uint8_t a[64], b[64], big[5000];
	relm_env_init_system(&env);
	env.random(env.ctx, a, sizeof a);
	env.random(env.ctx, b, sizeof b);
	ck_assert(memcmp(a, b, sizeof a) != 0);
	/* across refills and a reseed boundary: no 32-byte block repeats */
	for (int r = 0; r < 20; r++) {
		env.random(env.ctx, big, sizeof big);
		for (size_t i = 0; i + 64 <= sizeof big; i += 32)
			ck_assert(memcmp(big + i, big + i + 32, 32) != 0);
	}
	/* roughly balanced bits over 40,000 bits */
	{
		size_t ones = 0;
		for (size_t i = 0; i < sizeof big; i++)
			ones += (size_t)__builtin_popcount(big[i]);
		ck_assert_uint_gt(ones, 19000);
		ck_assert_uint_lt(ones, 21000);
	}
}
END_TEST

START_TEST(test_fork_does_not_repeat)
{
	struct relm_env env;
	uint8_t warm[8], parent[32], child[32];
	int fd[2];
	pid_t pid;

	relm_env_init_system(&env);
	env.random(env.ctx, warm, sizeof warm);   /* state is live before the fork */
	ck_assert_int_eq(pipe(fd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		env.random(env.ctx, child, sizeof child);
		_exit(write(fd[1], child, sizeof child) == (ssize_t)sizeof child ? 0 : 1);
	}
	env.random(env.ctx, parent, sizeof parent);
	ck_assert_int_eq(read(fd[0], child, sizeof child), (ssize_t)sizeof child);
	waitpid(pid, NULL, 0);
	ck_assert(memcmp(parent, child, sizeof parent) != 0);
	close(fd[0]);
	close(fd[1]);
}
END_TEST

START_TEST(test_defaults_and_between)
{
	struct relm_env env;
	/* what a stack holds before: every optional hook must come out NULL */
	memset(&env, 0xa5, sizeof env);
	relm_env_init_system(&env);
	ck_assert_ptr_null(env.history_get);
	ck_assert_ptr_null(env.history_ctx);
	ck_assert_ptr_null(env.observe_sent);
	ck_assert_ptr_null(env.devices);
	ck_assert_uint_eq(env.params.max_skip, RELM_MAX_SKIP);
	ck_assert_uint_eq(env.params.prune_w, RELM_PRUNE_W);
	ck_assert_uint_eq(env.params.retain_r, RELM_RETAIN_R);
	ck_assert_ptr_null(env.history_has);
	for (int i = 0; i < 1000; i++) {
		uint32_t v = relm__random_between(&env, 200, 2000);
		ck_assert(v >= 200 && v <= 2000);
	}
	ck_assert_uint_eq(relm__random_between(&env, 7, 7), 7);
	ck_assert_uint_gt(relm__now(&env), 1600000000000ull);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("env");
	TCase *tc = tcase_create("system");
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	tcase_add_test(tc, test_draws_differ);
	tcase_add_test(tc, test_fork_does_not_repeat);
	tcase_add_test(tc, test_defaults_and_between);
	tcase_add_test(tc, test_ids_in_time_order);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

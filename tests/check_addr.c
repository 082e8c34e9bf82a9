/*
 * check_addr.c — mailbox addresses (lib/wire/addr.h): table-driven good and bad
 * spellings, parse ∘ format identity, every truncation, random garbage.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "wire/addr.h"
#include "error.h"
#include "util_rand.h"

#define ID43 "F0VTtFbd38aQjsqxwQH-arIeK6oGF3lbfUOmNIKZP9U"

static int parse(struct relm_addr *a, const char *s)
{
	struct relm_addr sentinel;
	int err;

	memset(a, 0xa5, sizeof *a);
	memset(&sentinel, 0xa5, sizeof sentinel);
	err = relm_addr_parse(a, s, strlen(s));
	if (err != 0)
		ck_assert_msg(memcmp(a, &sentinel, sizeof sentinel) == 0, "out written on error");
	return err;
}

static const char *const good[] = {
	"127.0.0.1:7427",
	"localhost:1",
	"mail-box.example.org:65535",
	"a:80/" ID43,
	"[::1]:7427",
	"[2001:db8::1]:443/" ID43,
	"[::ffff:192.0.2.1]:9",
	"A-B.C:123",
};

START_TEST(good_round_trip)
{
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		struct relm_addr a;
		char out[400];
		int n;

		ck_assert_msg(parse(&a, good[i]) == 0, "rejected %s", good[i]);
		n = relm_addr_format(out, sizeof out, &a);
		ck_assert_int_eq(n, (int)strlen(good[i]));
		ck_assert_str_eq(out, good[i]);
	}
}
END_TEST

START_TEST(fields)
{
	struct relm_addr a;
	uint8_t id[32];
	size_t idlen = 0;

	ck_assert_int_eq(parse(&a, "[2001:db8::1]:443/" ID43), 0);
	ck_assert_str_eq(a.host, "2001:db8::1");
	ck_assert_uint_eq(a.port, 443);
	ck_assert_int_eq(a.has_id, 1);
	ck_assert_int_eq(sodium_base642bin(id, sizeof id, ID43, 43, NULL, &idlen, NULL,
	                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
	ck_assert_mem_eq(a.id, id, 32);
	ck_assert_int_eq(parse(&a, "example.org:7427"), 0);
	ck_assert_str_eq(a.host, "example.org");
	ck_assert_uint_eq(a.port, 7427);
	ck_assert_int_eq(a.has_id, 0);
}
END_TEST

static const char *const bad[] = {
	"", ":80", "host", "host:", "host:0", "host:080", "host:65536", "host:99999",
	"host:123456", "host:-1", "host:+80", "host:8a", "host :80", "ho st:80",
	"host_name:80", "host:80/", "host:80/" ID43 "A", "host:80/" "F0VTtFbd38aQjsqxwQH-arIeK6oGF3lbfUOmNIKZP9",
	"host:80/F0VTtFbd38aQjsqxwQH+arIeK6oGF3lbfUOmNIKZP9U",   /* '+' is not base64url */
	"host:80/F0VTtFbd38aQjsqxwQH-arIeK6oGF3lbfUOmNIKZP9V",   /* non-zero trailing bits */
	"host:80?x", "host:80 ", " host:80", "host:80:81",
	"[]:80", "[::1]", "[::1]80", "[::1:80", "::1:80", "[::g]:80", "[1.2.3.4]:80",
	"[::1%eth0]:80", "[:::]:80", "[::1]:0",
};

START_TEST(rejects_bad)
{
	struct relm_addr a;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(parse(&a, bad[i]) == RELM_EMALFORMED, "accepted \"%s\"", bad[i]);
}
END_TEST

START_TEST(host_length)
{
	char s[300];
	struct relm_addr a;

	memset(s, 'h', 255);
	strcpy(s + 255, ":1");
	ck_assert_int_eq(parse(&a, s), 0);
	ck_assert_uint_eq(strlen(a.host), 255);
	memset(s, 'h', 256);
	strcpy(s + 256, ":1");
	ck_assert_int_eq(parse(&a, s), RELM_EMALFORMED);
	/* embedded NUL */
	ck_assert_int_eq(relm_addr_parse(&a, "ho\0st:80", 8), RELM_EMALFORMED);
	ck_assert_int_eq(relm_addr_parse(&a, "host:80\0", 8), RELM_EMALFORMED);
}
END_TEST

START_TEST(format_rules)
{
	struct relm_addr a;
	char out[64];

	ck_assert_int_eq(parse(&a, "a:80/" ID43), 0);
	/* every too-small buffer is refused */
	for (size_t cap = 0; cap <= strlen("a:80/" ID43); cap++)
		ck_assert_int_eq(relm_addr_format(out, cap, &a), RELM_EINVAL);
	ck_assert_int_eq(relm_addr_format(out, sizeof out, &a), (int)strlen("a:80/" ID43));
	a.port = 0;
	ck_assert_int_eq(relm_addr_format(out, sizeof out, &a), RELM_EINVAL);
	a.port = 1;
	a.host[0] = '\0';
	ck_assert_int_eq(relm_addr_format(out, sizeof out, &a), RELM_EINVAL);
}
END_TEST

START_TEST(truncations_and_garbage)
{
	struct relm_addr a;
	static const char full[] = "[2001:db8::1]:443/" ID43;
	char g[400];

	for (size_t n = 0; n < sizeof full - 1; n++) {
		int err = relm_addr_parse(&a, full, n);
		/* "[2001:db8::1]:4", ":44", ":443" are complete addresses */
		int complete = n >= 15 && n <= 17;
		ck_assert_msg(complete ? err == 0 : err == RELM_EMALFORMED, "prefix %zu: %d", n, err);
	}
	for (size_t len = 0; len < sizeof g; len++) {
		tu_rand_bytes((uint8_t *)g, len);
		int err = relm_addr_parse(&a, g, len);
		ck_assert_msg(err == 0 || err == RELM_EMALFORMED, "len %zu (" TU_SEED_FMT ")", len, TU_SEED_ARG);
		/* from the address alphabet */
		for (size_t i = 0; i < len; i++)
			g[i] = "ab09.-:[]/fF_"[tu_rand_below(13)];
		err = relm_addr_parse(&a, g, len);
		if (err == 0) {
			char out[400];
			ck_assert_int_eq(relm_addr_format(out, sizeof out, &a), (int)len);
			ck_assert_msg(memcmp(out, g, len) == 0, "not canonical (" TU_SEED_FMT ")", TU_SEED_ARG);
		}
	}
}
END_TEST

/* The id's decoder against libsodium's (the reference for base64url): the
 * same bytes for random ids, and the same verdict for an id whose every
 * character in turn is replaced by each of the 256 byte values. */
START_TEST(ids_as_libsodium)
{
	struct relm_addr a;
	uint8_t id[32], ref[32];
	char s[80], *b64;
	size_t idlen;

	for (int t = 0; t < 24; t++) {
		memset(&a, 0, sizeof a);
		strcpy(a.host, "h");
		a.port = 1;
		a.has_id = 1;
		tu_rand_bytes(id, sizeof id);
		memcpy(a.id, id, sizeof id);
		ck_assert_int_eq(relm_addr_format(s, sizeof s, &a), 4 + 43);
		ck_assert_int_eq(parse(&a, s), 0);
		ck_assert_msg(memcmp(a.id, id, 32) == 0, "id %d (" TU_SEED_FMT ")", t, TU_SEED_ARG);
		b64 = s + 4;
		for (size_t k = 0; k < 43; k++) {
			const char keep = b64[k];
			for (int c = 1; c < 256; c++) {
				b64[k] = (char)c;
				const int ours = relm_addr_parse(&a, s, strlen(s)) == 0;
				const char *end = NULL;
				/* libsodium 1.0.18 maps some bytes >= 0x80 onto alphabet
				 * values: only the alphabet is a candidate */
				const int in_alphabet = strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
				                               c) != NULL;
				const int theirs = in_alphabet &&
				                   sodium_base642bin(ref, sizeof ref, b64, 43, NULL, &idlen, &end,
				                                     sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
				                   idlen == 32 && end == b64 + 43;
				ck_assert_msg(ours == theirs, "id %d, char %zu = %d: ours %d, libsodium %d (" TU_SEED_FMT ")",
				              t, k, c, ours, theirs, TU_SEED_ARG);
				if (ours)
					ck_assert_msg(memcmp(a.id, ref, 32) == 0, "id %d, char %zu = %d (" TU_SEED_FMT ")", t,
					              k, c, TU_SEED_ARG);
			}
			b64[k] = keep;
		}
	}
}
END_TEST

static Suite *addr_suite(void)
{
	Suite *s = suite_create("addr");
	TCase *tc;

	tc = tcase_create("round_trip");
	tcase_add_test(tc, good_round_trip);
	tcase_add_test(tc, fields);
	tcase_add_test(tc, format_rules);
	suite_add_tcase(s, tc);

	tc = tcase_create("validation");
	tcase_add_test(tc, rejects_bad);
	tcase_add_test(tc, host_length);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_test(tc, truncations_and_garbage);
	tcase_add_test(tc, ids_as_libsodium);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(addr_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * check_utf8.c — daemon/api/utf8.h: the table-driven validator against a
 * plain decoder (tests/util_text.c) — exhaustively for every string of up
 * to two bytes, for every lead byte followed by the edge bytes of each
 * continuation range, and on random strings (RELM_SEED) — plus the table
 * of Unicode's edge cases by name, and relmd_utf8_cut; and lib's
 * relm_text_ok (text.h: the same rule without NUL, with an eight-byte
 * ASCII path) against the reference, every bad byte at every offset of
 * ASCII runs around its eight-byte blocks.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/utf8.h"
#include "text.h"
#include "util_rand.h"
#include "util_text.h"

static void same(const unsigned char *s, size_t n)
{
	int want = tu_utf8_valid((const char *)s, n);
	int got = relmd_utf8_valid(s, n);
	int lib_want = want && !memchr(s, 0, n);
	ck_assert_msg(relm_text_ok(s, n) == lib_want, "relm_text_ok differs from the reference (length %zu)", n);
	if (got != want) {
		char hex[64] = "";
		for (size_t i = 0; i < n && i < 16; i++)
			snprintf(hex + 3 * i, sizeof hex - 3 * i, "%02x ", s[i]);
		ck_abort_msg("%s: relmd says %d, the reference %d", hex, got, want);
	}
}

START_TEST(named_cases)
{
	static const struct { const char *s; int ok; } cases[] = {
		{ "", 1 }, { "plain ascii", 1 }, { "\x7f", 1 },
		{ "\xc2\x80", 1 }, { "\xdf\xbf", 1 },                     /* U+0080, U+07FF */
		{ "\xe0\xa0\x80", 1 }, { "\xef\xbf\xbf", 1 },             /* U+0800, U+FFFF */
		{ "\xed\x9f\xbf", 1 }, { "\xee\x80\x80", 1 },             /* around the surrogates */
		{ "\xf0\x90\x80\x80", 1 }, { "\xf4\x8f\xbf\xbf", 1 },     /* U+10000, U+10FFFF */
		{ "\xc0\x80", 0 }, { "\xc1\xbf", 0 },                     /* overlong 2 */
		{ "\xe0\x80\x80", 0 }, { "\xe0\x9f\xbf", 0 },             /* overlong 3 */
		{ "\xf0\x80\x80\x80", 0 }, { "\xf0\x8f\xbf\xbf", 0 },     /* overlong 4 */
		{ "\xed\xa0\x80", 0 }, { "\xed\xbf\xbf", 0 },             /* surrogates */
		{ "\xf4\x90\x80\x80", 0 }, { "\xf5\x80\x80\x80", 0 },     /* above U+10FFFF */
		{ "\xf8\x88\x80\x80\x80", 0 }, { "\xff", 0 }, { "\xfe", 0 },
		{ "\x80", 0 }, { "\xbf", 0 }, { "a\x80" "b", 0 },          /* lone continuation */
		{ "\xc3", 0 }, { "\xe2\x82", 0 }, { "\xf0\x9f\x98", 0 },  /* cut at the end */
		{ "\xe2\x82" "a", 0 }, { "\xc3\xc3\xa9", 0 },             /* cut in the middle */
		{ "0123456789abcdef\xc3\xa9", 1 },                         /* after the 8-byte path */
		{ "0123456789abcdef\xc3", 0 },
		{ "01234567\x80" "abcdefgh", 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = strlen(cases[i].s);
		ck_assert_msg(relmd_utf8_valid(cases[i].s, n) == cases[i].ok, "case %zu", i);
		ck_assert_msg(tu_utf8_valid(cases[i].s, n) == cases[i].ok, "reference, case %zu", i);
	}
	ck_assert(relmd_utf8_valid("a\0b", 3));                  /* U+0000 is well-formed */
}
END_TEST

START_TEST(exhaustive_short)
{
	unsigned char b[2];
	for (unsigned i = 0; i < 256; i++) {
		b[0] = (unsigned char)i;
		same(b, 1);
		for (unsigned j = 0; j < 256; j++) {
			b[1] = (unsigned char)j;
			same(b, 2);
		}
	}
}
END_TEST

/* Every lead byte, then each later byte from the edges of every range the
 * table distinguishes (and an ASCII byte, and bytes that never appear). */
START_TEST(edges_long)
{
	static const unsigned char edge[] = {
		0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed,
		0xef, 0xf0, 0xf4, 0xf5, 0xff,
	};
	enum { E = sizeof edge };
	unsigned char b[4];
	for (unsigned lead = 0; lead < 256; lead++) {
		b[0] = (unsigned char)lead;
		for (int x = 0; x < E; x++) {
			b[1] = edge[x];
			for (int y = 0; y < E; y++) {
				b[2] = edge[y];
				same(b, 3);
				for (int z = 0; z < E; z++) {
					b[3] = edge[z];
					same(b, 4);
				}
			}
		}
	}
}
END_TEST

/* Random strings, mostly made of pieces of characters so that long valid
 * runs occur as often as errors.  RELM_SEED. */
START_TEST(random_strings)
{
	static const char *const pieces[] = {
		"a", "0123456789", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf",
		"\xed\x9f\xbf", "\xc3", "\x82", "\xe2\x82", "\xed\xa0\x80", "\xf4\x90", "\xc0", "\xff",
	};
	unsigned char buf[128];
	for (int i = 0; i < 200000; i++) {
		size_t n = 0;
		int k = (int)tu_rand_below(12);
		while (k-- > 0) {
			if (tu_rand_below(4) == 0 && n < sizeof buf) {
				buf[n++] = (unsigned char)tu_rand_below(256);
				continue;
			}
			const char *p = pieces[tu_rand_below(sizeof pieces / sizeof pieces[0])];
			size_t l = strlen(p);
			if (n + l > sizeof buf)
				break;
			memcpy(buf + n, p, l);
			n += l;
		}
		same(buf, n);
	}
}
END_TEST

/* relm_text_ok's ASCII path: ASCII runs of every length up to 40 with one
 * intruder (NUL, a lone continuation byte, a cut lead, a valid é) at every
 * offset, so that each lands in and around the eight-byte blocks. */
START_TEST(ascii_runs)
{
	static const char *const in[] = { "\x00", "\x80", "\xc3", "\xc3\xa9", "\x7f", "\xff" };
	unsigned char buf[48];

	for (size_t len = 0; len <= 40; len++) {
		memset(buf, 'a', len);
		same(buf, len);
		for (size_t at = 0; at < len; at++)
			for (size_t k = 0; k < sizeof in / sizeof in[0]; k++) {
				size_t l = in[k][0] ? strlen(in[k]) : 1;
				memset(buf, 'a', sizeof buf);
				if (at + l > len)
					continue;
				memcpy(buf + at, in[k], l);
				same(buf, len);
			}
	}
}
END_TEST

START_TEST(cut)
{
	ck_assert_int_eq(relmd_utf8_cut("abc", 64), 3);
	ck_assert_int_eq(relmd_utf8_cut("abc", 3), 3);
	ck_assert_int_eq(relmd_utf8_cut("abc", 2), 2);
	ck_assert_int_eq(relmd_utf8_cut("a\xc3\xa9z", 2), 1);            /* inside é: before it */
	ck_assert_int_eq(relmd_utf8_cut("a\xc3\xa9z", 3), 3);            /* after it */
	ck_assert_int_eq(relmd_utf8_cut("\xf0\x9f\x98\x80x", 3), 0);
	ck_assert_int_eq(relmd_utf8_cut("\xf0\x9f\x98\x80x", 4), 4);
	ck_assert_int_eq(relmd_utf8_cut("", 0), 0);
	/* every cut of a mixed string is a well-formed prefix */
	const char *s = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80!";
	for (size_t max = 0; max <= strlen(s) + 1; max++) {
		int n = relmd_utf8_cut(s, max);
		ck_assert_int_le(n, (int)max);
		ck_assert_msg(tu_utf8_valid(s, (size_t)n), "cut at %zu gives %d", max, n);
		ck_assert_int_ge(n + 3, max < strlen(s) ? (int)max : (int)strlen(s));
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("utf8");
	TCase *tc = tcase_create("valid");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, named_cases);
	tcase_add_test(tc, exhaustive_short);
	tcase_add_test(tc, edges_long);
	tcase_add_test(tc, random_strings);
	tcase_add_test(tc, ascii_runs);
	suite_add_tcase(s, tc);
	tc = tcase_create("cut");
	tcase_add_test(tc, cut);
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
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

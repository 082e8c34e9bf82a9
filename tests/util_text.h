/*
 * util_text.h — what tests check every byte relmd writes against: a
 * reference UTF-8 validator (a plain decoder, written apart from relmd's
 * table-driven one so that one is checked against the other), and the
 * check that a line is one strict JSON text.
 */
#ifndef RELM_TESTS_UTIL_TEXT_H
#define RELM_TESTS_UTIL_TEXT_H

#include <stddef.h>

/* 1 when s[0, n) is well-formed UTF-8 (RFC 3629 / Unicode Table 3-7: no
 * overlong form, no surrogate, nothing above U+10FFFF, no cut sequence). */
int tu_utf8_valid(const char *s, size_t n);

/* 1 when line[0, n) is valid UTF-8, holds no byte below 0x20 at all (a
 * reply line has no raw control character, in strings or between tokens,
 * and no newline) and is exactly one JSON text cJSON parses. */
int tu_json_line_ok(const char *line, size_t n);

/* Damage a JSON line in buf[0, len) (cap: the buffer's size) with 1 to 4
 * random edits from the global test stream (util_rand.h): a byte replaced
 * by a high or a control byte (never '\n'), a UTF-8 fragment or escape
 * inserted (good ones, overlongs, surrogates, cut sequences, \u0000), a
 * byte dropped, the line cut.  Returns the new length. */
size_t tu_json_mutate(char *buf, size_t len, size_t cap);

#endif

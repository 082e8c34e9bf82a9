/*
 * text.h — the one check of text relm carries: strict UTF-8 (RFC 3629: no
 * overlong forms, no UTF-16 surrogates, nothing above U+10FFFF, no
 * sequence cut short) without NUL.  Payload bodies and names are checked
 * with it as they come in (lib/wire/payload.c), and values read back from
 * the store as they go out (lib/store): both sides of one rule.
 */
#ifndef RELM_TEXT_H
#define RELM_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- eight bytes at a time (the fast paths of text checks and writers) ---- */

#define RELM_W8_ONES  0x0101010101010101ull
#define RELM_W8_HIGHS 0x8080808080808080ull

/* Eight bytes from s, in any alignment. */
static inline uint64_t relm_w8_load(const void *s)
{
	uint64_t v;
	memcpy(&v, s, sizeof v);
	return v;
}

/* The high bit of each byte of v that is below n (1 ≤ n ≤ 128); a byte at
 * or above 0x80 never counts (~v clears it).  Borrows may mark bytes above
 * a marked one too, so only "none marked" is exact, which is all a fast
 * path needs: it stops at the block and goes byte by byte. */
static inline uint64_t relm_w8_below(uint64_t v, uint8_t n)
{
	return (v - RELM_W8_ONES * n) & ~v & RELM_W8_HIGHS;
}

/* The same for bytes equal to c. */
static inline uint64_t relm_w8_equal(uint64_t v, uint8_t c)
{
	return relm_w8_below(v ^ (RELM_W8_ONES * c), 1);
}

/* 1 when s[0, n) is well-formed UTF-8 holding no NUL byte (n == 0
 * included), else 0. */
int relm_text_ok(const void *s, size_t n);

#endif

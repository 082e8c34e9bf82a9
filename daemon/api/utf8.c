/*
 * utf8.c — see utf8.h.  The automaton follows Unicode's Table 3-7 of
 * well-formed byte sequences, one row per "what must come next":
 *
 *   first byte   then
 *   00..7F       -
 *   C2..DF       80..BF
 *   E0           A0..BF  80..BF      (no overlong 3-byte form)
 *   E1..EC EE EF 80..BF  80..BF
 *   ED           80..9F  80..BF      (no surrogates)
 *   F0           90..BF  80..BF 80..BF  (no overlong 4-byte form)
 *   F1..F3       80..BF  80..BF 80..BF
 *   F4           80..8F  80..BF 80..BF  (nothing above U+10FFFF)
 *
 * C0, C1 and F5..FF never appear; nor does a continuation byte (80..BF)
 * where a character starts.
 */
#include <stdint.h>
#include <string.h>

#include "api/utf8.h"

/* Byte classes: which rows of the table above a byte can stand in. */
enum {
	C_ASCII,    /* 00..7F */
	C_80_8F,
	C_90_9F,
	C_A0_BF,
	C_BAD,      /* C0 C1 F5..FF */
	C_LEAD2,    /* C2..DF */
	C_E0,
	C_LEAD3,    /* E1..EC EE EF */
	C_ED,
	C_F0,
	C_LEAD4,    /* F1..F3 */
	C_F4,
	C_COUNT
};

static const uint8_t byte_class[256] = {
	/* 0_ */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 1_ */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 2_ */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 3_ */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 4_ */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 5_ */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 6_ */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 7_ */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 8_ */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	/* 9_ */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	/* A_ */ 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
	/* B_ */ 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
	/* C_ */ 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
	/* D_ */ 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
	/* E_ */ 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
	/* F_ */ 9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

/* States: what the next byte must be. */
enum {
	S_START,    /* between characters (the accepting state) */
	S_REJECT,
	S_CONT1,    /* one more 80..BF */
	S_CONT2,    /* two more 80..BF */
	S_CONT3,    /* three more 80..BF */
	S_E0,       /* A0..BF, then one more */
	S_ED,       /* 80..9F, then one more */
	S_F0,       /* 90..BF, then two more */
	S_F4,       /* 80..8F, then two more */
	S_COUNT
};

#define R S_REJECT
static const uint8_t next_state[S_COUNT][C_COUNT] = {
	/*            ASCII    80..8F   90..9F   A0..BF   bad  lead2    E0    lead3    ED    F0    lead4    F4 */
	[S_START] = { S_START, R,       R,       R,       R,   S_CONT1, S_E0, S_CONT2, S_ED, S_F0, S_CONT3, S_F4 },
	[S_REJECT] = { R,      R,       R,       R,       R,   R,       R,    R,       R,    R,    R,       R },
	[S_CONT1] = { R,       S_START, S_START, S_START, R,   R,       R,    R,       R,    R,    R,       R },
	[S_CONT2] = { R,       S_CONT1, S_CONT1, S_CONT1, R,   R,       R,    R,       R,    R,    R,       R },
	[S_CONT3] = { R,       S_CONT2, S_CONT2, S_CONT2, R,   R,       R,    R,       R,    R,    R,       R },
	[S_E0]    = { R,       R,       R,       S_CONT1, R,   R,       R,    R,       R,    R,    R,       R },
	[S_ED]    = { R,       S_CONT1, S_CONT1, R,       R,   R,       R,    R,       R,    R,    R,       R },
	[S_F0]    = { R,       R,       S_CONT2, S_CONT2, R,   R,       R,    R,       R,    R,    R,       R },
	[S_F4]    = { R,       S_CONT2, R,       R,       R,   R,       R,    R,       R,    R,    R,       R },
};
#undef R

int relmd_utf8_valid(const void *s, size_t n)
{
	const unsigned char *p = s, *end = p + n;
	unsigned st = S_START;

	while (p < end) {
		/* Between characters, skip ASCII: eight bytes at a time, then
		 * to the first byte with its high bit set. */
		if (st == S_START) {
			while (end - p >= 8) {
				uint64_t w, hi;
				memcpy(&w, p, 8);
				hi = w & UINT64_C(0x8080808080808080);
				if (hi) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
					p += __builtin_ctzll(hi) >> 3;   /* the first such byte */
#endif
					break;
				}
				p += 8;
			}
			while (p < end && *p < 0x80)
				p++;
			if (p == end)
				break;
		}
		st = next_state[st][byte_class[*p++]];
		if (st == S_REJECT)
			return 0;
	}
	return st == S_START;
}

int relmd_utf8_cut(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n <= max)
		return (int)n;
	/* s[max] is where the cut falls: back off over continuation bytes
	 * until it starts a character. */
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return (int)n;
}

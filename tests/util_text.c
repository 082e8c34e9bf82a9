/*
 * util_text.c — see util_text.h.  Deliberately the obvious decoder: read
 * the lead byte's length, collect the code point, then judge it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "util_rand.h"
#include "util_text.h"

int tu_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		unsigned c = p[i];
		size_t len;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc0 && c <= 0xdf) {
			len = 2; cp = c & 0x1f; min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3; cp = c & 0x0f; min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf7) {
			len = 4; cp = c & 0x07; min = 0x10000;
		} else {
			return 0;            /* a continuation byte, or 0xf8.. */
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

int tu_json_line_ok(const char *line, size_t n)
{
	if (!tu_utf8_valid(line, n))
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20)
			return 0;
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(line, n, &end, 0);
	int ok = j != NULL && end == line + n;
	cJSON_Delete(j);
	return ok;
}

size_t tu_json_mutate(char *buf, size_t len, size_t cap)
{
	static const char *const frags[] = {
		"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"\xe2\x82", "\x80", "\xff", "\\u0000", "\\ud800", "\\udc00\\ud800", "\"", "\\", "\\u00e9",
	};
	int edits = 1 + (int)tu_rand_below(4);
	for (int e = 0; e < edits && len > 0; e++) {
		size_t at = (size_t)tu_rand_below(len);
		switch (tu_rand_below(5)) {
		case 0:                  /* a high byte */
			buf[at] = (char)(0x80 + tu_rand_below(128));
			break;
		case 1:                  /* a control byte */
			buf[at] = (char)tu_rand_below(0x20);
			if (buf[at] == '\n')
				buf[at] = '\x01';
			break;
		case 2: {                /* a fragment */
			const char *f = frags[tu_rand_below(sizeof frags / sizeof frags[0])];
			size_t fl = strlen(f);
			if (len + fl < cap) {
				memmove(buf + at + fl, buf + at, len - at);
				memcpy(buf + at, f, fl);
				len += fl;
			}
			break;
		}
		case 3:                  /* drop a byte */
			memmove(buf + at, buf + at + 1, len - at - 1);
			len--;
			break;
		default:                 /* cut */
			len = at;
			break;
		}
	}
	return len;
}

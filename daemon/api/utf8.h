/*
 * utf8.h — strict UTF-8 for everything the socket API reads and writes.
 *
 * Well-formed means Unicode's Table 3-7 (RFC 3629): no overlong form, no
 * UTF-16 surrogate (U+D800–U+DFFF), nothing above U+10FFFF, no sequence
 * cut short.  The validator is a table-driven automaton (one byte-class
 * lookup and one transition per byte) with an eight-bytes-at-a-time path
 * over ASCII, since most of what relmd reads and writes is ASCII JSON.
 */
#ifndef RELMD_UTF8_H
#define RELMD_UTF8_H

#include <stddef.h>

/* 1 when s[0, n) is well-formed UTF-8 (n == 0 included), else 0.  NUL
 * bytes are well-formed (U+0000); callers that refuse them say so. */
int relmd_utf8_valid(const void *s, size_t n);

/* The length of the longest prefix of the NUL-terminated, well-formed
 * UTF-8 string s that is at most max bytes and does not cut a character:
 * for "%.*s" in messages that echo a name or a value. */
int relmd_utf8_cut(const char *s, size_t max);

#endif

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

/* 1 when s[0, n) is well-formed UTF-8 holding no NUL byte (n == 0
 * included), else 0. */
int relm_text_ok(const void *s, size_t n);

#endif

/*
 * ct.h — declassification points for the constant-time check (`make ct`,
 * tests/ct_check.c).
 *
 * That check runs our code under valgrind memcheck with secret bytes marked
 * undefined, so that any branch or memory index computed from a secret is
 * reported.  A few verdicts computed from secrets are public by design — an
 * AEAD tag verified or not, a DH output all-zero (which only a small-order
 * *public* key can cause) — and the code branches on them.  RELM_CT_PUBLIC
 * marks such a value public right before the branch, the way BoringSSL's
 * CONSTTIME_DECLASSIFY does.  In every normal build it is nothing at all;
 * only the ct_check build (-DRELM_CT_VALGRIND) turns it into a valgrind
 * client request.  Use it only on a value the protocol reveals anyway, and
 * say why next to it.
 */
#ifndef RELM_CT_H
#define RELM_CT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef RELM_CT_VALGRIND
#include <valgrind/memcheck.h>
#define RELM_CT_PUBLIC(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#else
#define RELM_CT_PUBLIC(p, n) ((void)0)
#endif

/* 1 if the n bytes at p are all zero, else 0, in time that depends on n
 * only (no branch or index on the bytes), as sodium_is_zero — which goes
 * a byte at a time through a volatile accumulator, ~170 instructions for
 * a 32-byte key; this ORs 8-byte words (~20).  For the state blob's
 * "is this key there" bits, asked a dozen times per engine step (issue 19). */
static inline int relm_ct_is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t acc = 0, w;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, b + i, 8);
		acc |= w;
	}
	for (; i < n; i++)
		acc |= b[i];
	return (int)(1 & ((acc - 1) >> 63 & ~acc >> 63));
}

#endif

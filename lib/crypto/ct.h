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

#ifdef RELM_CT_VALGRIND
#include <valgrind/memcheck.h>
#define RELM_CT_PUBLIC(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#else
#define RELM_CT_PUBLIC(p, n) ((void)0)
#endif

#endif

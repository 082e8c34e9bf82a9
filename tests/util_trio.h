/*
 * util_trio.h — three devices of one proton and their remote, in one
 * process (util_engine parties), for the revocation tests
 * (check_revoke.c, check_revoke_merge.c): the devices A[0..nA) form the
 * circle, A[nA..3) stand outside it (removed, or a clone), r is the remote.
 * flow moves everything in flight: the circle's envelopes to r, r's to
 * every device that reach names (one outside the circle still reads the
 * mailbox), copies among the circle unless held back; the output of a
 * device outside the circle is dropped.
 */
#ifndef RELM_TESTS_UTIL_TRIO_H
#define RELM_TESTS_UTIL_TRIO_H

#include <stddef.h>
#include <stdint.h>
#include "util_engine.h"

struct tu_trio {
	struct tu_party *A[3];
	struct tu_party *r;
	size_t nA;                      /* devices of the circle: A[0..nA) */
	unsigned reach;                 /* bit i: A[i] reads r's envelopes (all: 7) */
	int late_copies;                /* hold the circle's copies back */
	uint64_t *clock;
};

/* a[0] pairs with r (r in remote_mode) on streams stream and stream + 1,
 * a few exchanges, then a[1] and a[2] (streams + 2, + 3) are copies of
 * a[0]'s state: one circle of three, heal delays in [1 s, 20 s], a clone
 * window of 60 s.  a[2] starts empty when its party is all zero. */
void tu_trio_init(struct tu_trio *t, struct tu_party *a[3], struct tu_party *r, uint64_t *clock,
                  enum relm_mode remote_mode, uint64_t stream);
void tu_trio_free(struct tu_trio *t);
/* Everything in flight, until nothing moves. */
void tu_trio_flow(struct tu_trio *t);
/* The clock ms on, every party's timers, then flow. */
void tu_trio_tick(struct tu_trio *t, uint64_t ms);
/* rounds times: a device of the circle (in turn) and r each send. */
void tu_trio_chat(struct tu_trio *t, int rounds);
/* r replies (after the heal delay) until every device of the circle is
 * healed, at most 8 rounds: 1 if they are, 0 if not; *rounds: how many
 * it took. */
int tu_trio_heal(struct tu_trio *t, int *rounds);

#endif

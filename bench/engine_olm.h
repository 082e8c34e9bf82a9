/*
 * engine_olm.h — bench_engine's libolm side (engine_olm.c): libolm's
 * counterparts of the relm scenarios in bench_engine.c.
 */
#ifndef RELM_BENCH_ENGINE_OLM_H
#define RELM_BENCH_ENGINE_OLM_H

#include <stddef.h>
#include <olm/olm.h>
#include "bench_engine.h"

/* ns per message: n messages A → B (stream) or alternating (dh, pingpong),
 * on a fresh pair of accounts and sessions; mi (may be NULL) gets the
 * last message's length. */
double olm_msgs(OlmUtility *util, size_t n, int pingpong, struct msg_info *mi);
/* ns per session set-up; with_id: account creation inside the timing;
 * sign: the one-time key signed and verified, as Matrix publishes it. */
double olm_setups(OlmUtility *util, size_t k, int with_id, int sign);

#endif

/*
 * system_env.h — struct relm_env on the system clock and libsodium's
 * randomness, for relmd, relm-mailbox and the benchmarks.  Tests and the
 * simulator fill struct relm_env themselves (tests/util_rand.h).
 */
#ifndef RELM_SYSTEM_ENV_H
#define RELM_SYSTEM_ENV_H

#include "engine/env.h"

/* Real clock (CLOCK_REALTIME, ms) and a ChaCha20 generator seeded from the
 * kernel; default parameters; no history lookup. */
void relm_env_init_system(struct relm_env *env);

#endif

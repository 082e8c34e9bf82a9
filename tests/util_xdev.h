/*
 * util_xdev.h — a device of a proton that a test plays itself (lib/core
 * tests, util_world.h's network): its keys and its entry for a circle, and
 * a sibling session it opens with a daemon's device of the same proton,
 * on which it sends any binary sibling frame (proto/devices.md §3, §4).
 */
#ifndef RELM_TESTS_UTIL_XDEV_H
#define RELM_TESTS_UTIL_XDEV_H

#include <stddef.h>
#include <stdint.h>
#include "util_world.h"
#include "engine/effects.h"
#include "engine/env.h"
#include "wire/circle.h"

struct tu_xdev {
	struct relm_circle_device cd;    /* for relm_core_device_add */
	uint8_t sk[64];
	struct relm_rel *sess;           /* its session, once opened */
};

/* Fresh keys: device id all `fill`, label, a device invite signed by it. */
void tu_xdev_make(struct tu_xdev *x, uint8_t fill, const char *label);
/* x (in the circle to holds for proton) opens its session with to: the
 * hello goes to to's device mailbox on net (to reads it at its next
 * tu_deliver).  env: x's randomness and clock. */
void tu_xdev_open(struct tu_xdev *x, struct tu_daemon *to, const uint8_t proton[16],
                  const struct relm_env *env, struct tu_net *net);
/* x sends one binary sibling frame on its session, and to reads it. */
void tu_xdev_send(struct tu_xdev *x, struct tu_daemon *to, const struct relm_env *env,
                  struct tu_net *net, const uint8_t *frame, size_t len);
/* The codes of d's sibling.refused events, oldest first, into codes (at
 * most cap); how many there are. */
int tu_refused_codes(struct tu_daemon *d, int *codes, int cap);
/* Its session freed, its key wiped. */
void tu_xdev_clear(struct tu_xdev *x);

/* Append an envelope to net at mailbox `to` (an address), at the next
 * position of that mailbox; every POST effect of fx so, then fx cleared. */
void tu_net_post(struct tu_net *net, const char *to, const uint8_t *buf, size_t len);
void tu_net_post_effects(struct tu_net *net, struct relm_effects *fx);

#endif

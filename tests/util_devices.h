/*
 * util_devices.h — alice on two devices and bob, as whole daemons on one
 * network (util_world.h), for the suites of a proton's devices in lib/core
 * (check_core_devices, check_core_sibling_frames).  Each suite keeps its
 * daemons, network, clock and protons in its own statics and hands them
 * here.
 */
#ifndef RELM_TESTS_UTIL_DEVICES_H
#define RELM_TESTS_UTIL_DEVICES_H

#include <stdint.h>
#include "util_world.h"
#include "wire/circle.h"

/* The fixture: the clock at 1700000000000, an empty network, folders for
 * a ("alice"), b ("bob") and a2 ("alice2"); a and b open (streams 1 and 2,
 * hosts 127.0.0.1 and 127.0.0.2), each with a proton (alice's: pa, ipk_a;
 * bob's: pb).  a2 stays closed until tu_make_second_device. */
void tu_devices_open(struct tu_daemon *a, struct tu_daemon *b, struct tu_daemon *a2, struct tu_net *net,
                     uint64_t *clock_ms, uint8_t pa[16], uint8_t pb[16], uint8_t ipk_a[32]);
/* Closes a and b, removes the three folders, frees the network. */
void tu_devices_close(struct tu_daemon *a, struct tu_daemon *b, struct tu_daemon *a2, struct tu_net *net);

/* relm_store_device_list callback: counts the rows in *(int *)ctx. */
int tu_count_devices_cb(void *ctx, const struct relm_store_device *d);
/* The held circle of d's proton, decoded (free it). */
struct relm_circle *tu_held_circle(struct tu_daemon *d, const uint8_t proton[16]);
/* How many events of this type d's store holds. */
int tu_count_events(struct tu_daemon *d, int type);

/* Make a2 a second device of a's proton pa, as pairing will (issue 15):
 * the proton's keys, a device of its own with its device keys, circle
 * epoch 2 naming both devices signed by the IPK on both, and a copy of
 * relationship rb as a holds it (its cursor too).  Nothing has been
 * exchanged since the copy, so both devices start from one state.  a2 is
 * opened on clock_ms (stream 3, host 127.0.0.1). */
void tu_make_second_device(struct tu_daemon *a, struct tu_daemon *a2, const uint8_t pa[16], uint64_t *clock_ms,
                           const uint8_t rb[16]);
/* The index of the node d's copy of relationship rb has chosen (its id in
 * node), or -1 if none. */
int tu_chosen_node(struct tu_daemon *d, const uint8_t rb[16], uint8_t node[16]);

#endif

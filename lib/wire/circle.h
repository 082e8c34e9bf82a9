/*
 * circle.h — the circle: a proton's devices with an epoch, signed by the
 * proton's identity key (proto/devices.md §2).
 *
 *   version(1)=1 ipk(32) epoch(8) count(1) count × device sig(64)
 *   device = device_id(16) dpk(32) added(8) label_len(1) label
 *            invite_len(2) invite (binary device invite, wire.md §3)
 *   sig = Ed25519 by ipk over "relm/v1/circle" ‖ every byte before sig
 *
 * Devices are sorted by device_id, no two equal.  The order of devices is
 * the order the engine ranks them in (devices.md §5.2).
 */
#ifndef RELM_CIRCLE_H
#define RELM_CIRCLE_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"
#include "wire/invite.h"

enum {
	RELM_CIRCLE_VERSION   = 1,
	RELM_DEVICE_LABEL_MAX = 64,
	RELM_CIRCLE_MAX       = 1 + 32 + 8 + 1 +
	                        RELM_MAX_DEVICES * (16 + 32 + 8 + 1 + RELM_DEVICE_LABEL_MAX + 2 +
	                                            RELM_INVITE_BIN_MAX) + 64,
};

struct relm_circle_device {
	uint8_t id[RELM_ID_LEN];
	uint8_t dpk[RELM_SIGN_PK_LEN];
	uint64_t added;
	char label[RELM_DEVICE_LABEL_MAX + 1];
	struct relm_invite invite;           /* decoded and verified against dpk */
};

struct relm_circle {
	uint8_t ipk[RELM_SIGN_PK_LEN];
	uint64_t epoch;
	uint32_t count;
	struct relm_circle_device dev[RELM_MAX_DEVICES];
};

/* Sort the devices, check every field, sign with the proton's Ed25519
 * secret key and write the binary form into out (cap ≥ RELM_CIRCLE_MAX is
 * always enough).  Returns the length, or RELM_EINVAL (a field out of
 * range, duplicate ids, an invite not signed by its device, a secret key
 * that is not ipk's). */
int relm_circle_sign(uint8_t *out, size_t cap, struct relm_circle *c,
                     const uint8_t ipk_sk[RELM_SIGN_SK_LEN]);

/* Decode and verify (structure, keys, every device invite signed by its
 * dpk, the signature by c->ipk).  Returns 0, or RELM_ETRUNCATED /
 * RELM_EMALFORMED / RELM_EVERSION / RELM_EBADKEY / RELM_EBADSIG; out is
 * untouched on error.  Whose circle it is (the proton's current IPK) and
 * whether its epoch is acceptable are the caller's checks:
 * relm_circle_accept. */
int relm_circle_decode(struct relm_circle *out, const uint8_t *buf, size_t len);

/* The acceptance rule of devices.md §2, for a decoded circle `next`
 * (bytes nb/nlen) against the held one (`cur`, bytes cb/clen; cur NULL if
 * none): 1 accept, 0 ignore (older, or a duplicate, or a conflict it
 * loses), RELM_EINVAL for another proton's circle. */
int relm_circle_accept(const struct relm_circle *cur, const uint8_t *cb, size_t clen,
                       const struct relm_circle *next, const uint8_t *nb, size_t nlen,
                       const uint8_t ipk[RELM_SIGN_PK_LEN]);

/* Index of device id in c, or -1. */
int relm_circle_find(const struct relm_circle *c, const uint8_t id[RELM_ID_LEN]);

/* Revocation (proto/revocation.md §1): the next circle of cur without
 * device id, signed with the proton's secret key: epoch cur->epoch + 1,
 * every other device as it was.  *next receives the circle, out/cap its
 * bytes as relm_circle_sign writes them.  Returns the length, or
 * RELM_ENOTFOUND (id is not in cur), RELM_EINVAL (id is cur's only device:
 * a circle is never empty; an epoch at its limit; a key that is not
 * cur->ipk's). */
int relm_circle_without(uint8_t *out, size_t cap, struct relm_circle *next,
                        const struct relm_circle *cur, const uint8_t id[RELM_ID_LEN],
                        const uint8_t ipk_sk[RELM_SIGN_SK_LEN]);

/* For a device that verified and accepted circle c (relm_circle_accept):
 * 1 if its own id `self` is not in it — it was removed and must stop
 * acting for the proton (proto/revocation.md §1) — else 0. */
int relm_circle_removed(const struct relm_circle *c, const uint8_t self[RELM_ID_LEN]);

#endif

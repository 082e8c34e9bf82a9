/*
 * lease.h — what the devices of a proton derive for the `leader`
 * strategy's send lease (proto/devices.md §11.2): the lease mailbox every
 * device of the circle can sign for, the lease's name, and each device's
 * holder token, which the mailbox server sees instead of device ids.
 *
 *   lease seed    = HKDF-SHA256(ikm = IPK seed, no salt, "relm/v1/lease-mailbox", 32)
 *   lease mailbox = Ed25519 key pair of the lease seed
 *   holder token  = BLAKE2b-128(key = lease seed, "relm/v1/lease-holder" ‖ device_id)
 *
 * Pure: no I/O; the caller runs the compare-and-set (mailbox.md §5.6).
 */
#ifndef RELM_LEASE_H
#define RELM_LEASE_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"

#define RELM_LEASE_NAME "relm/leader"   /* the lease's name on the lease mailbox */

/* Secret: wipe with relm_lease_keys_clear. */
struct relm_lease_keys {
	uint8_t seed[RELM_KEY_LEN];          /* the lease seed (keys the tokens) */
	uint8_t mbox_pk[RELM_SIGN_PK_LEN];   /* the lease mailbox */
	uint8_t mbox_sk[RELM_SIGN_SK_LEN];   /* signs its LEASE requests */
};

/* Derive the proton's lease keys from its identity secret key (libsodium
 * layout: seed ‖ pk; only the seed is used). */
void relm_lease_derive(struct relm_lease_keys *k, const uint8_t ipk_sk[RELM_SIGN_SK_LEN]);
void relm_lease_keys_clear(struct relm_lease_keys *k);

/* The holder token of device_id. */
void relm_lease_token(uint8_t token[RELM_ID_LEN], const struct relm_lease_keys *k,
                      const uint8_t device_id[RELM_ID_LEN]);

/* Which of ids[0..count) holds token: its index, or -1 (free, all zero,
 * or no device of this circle: counts as free once it expires).
 * Compared in constant time per device. */
int relm_lease_holder(const struct relm_lease_keys *k, const uint8_t token[RELM_ID_LEN],
                      const uint8_t (*ids)[RELM_ID_LEN], size_t count);

#endif

/*
 * bundle.h — several sibling messages for one sibling in one (sibling
 * type 13, proto/devices.md §4.5):
 *
 *     type(1) = 13 ‖ count(2) ‖ count × ( len(4) ‖ message )
 *
 * 2 ≤ count; each message is a whole binary sibling message of 1 …
 * RELM_SIBLING_MAX bytes that is not itself a bundle; the bundle is at
 * most RELM_SIBLING_MAX bytes, with nothing after the last message.
 * Integers are big-endian, like every sibling message.
 */
#ifndef RELM_WIRE_BUNDLE_H
#define RELM_WIRE_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

enum {
	RELM_SIB_BUNDLE_HEAD = 3,       /* type, count */
	RELM_SIB_BUNDLE_ITEM = 4,       /* each message's length */
};

/* The size of a bundle of n messages of `bytes` bytes together. */
static inline size_t relm_sib_bundle_size(size_t n, size_t bytes)
{
	return RELM_SIB_BUNDLE_HEAD + n * RELM_SIB_BUNDLE_ITEM + bytes;
}

/* A bundle of msgs[0 … n-1] into a fresh buffer (free with
 * relm_sib_buf_free: the messages may hold keys).  0, RELM_EINVAL (n < 2,
 * an empty message or a bundle in it), RELM_ETOOBIG (over
 * RELM_SIBLING_MAX) or RELM_ENOMEM. */
int relm_sib_bundle_encode(uint8_t **out, size_t *outlen, const uint8_t *const *msgs,
                           const size_t *lens, size_t n);

/* Check a bundle's framing (buf[0] is 13): 0, RELM_ETRUNCATED,
 * RELM_ETOOBIG or RELM_EMALFORMED. */
int relm_sib_bundle_check(const uint8_t *buf, size_t len);

/* Iterate a checked bundle: *off starts at 0; 1 with *m, *mlen set to the
 * next message, 0 at the end. */
int relm_sib_bundle_next(const uint8_t *buf, size_t len, size_t *off,
                         const uint8_t **m, size_t *mlen);

#endif

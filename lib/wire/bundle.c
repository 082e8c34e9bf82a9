/*
 * bundle.c — sibling bundles (bundle.h, proto/devices.md §4.5).
 */
#include <stdlib.h>
#include <string.h>
#include "wire/bundle.h"
#include "wire/sibling.h"
#include "limits.h"
#include "error.h"

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int relm_sib_bundle_encode(uint8_t **out, size_t *outlen, const uint8_t *const *msgs,
                           const size_t *lens, size_t n)
{
	size_t bytes = 0, off;
	uint8_t *b;

	if (n < 2 || n > UINT16_MAX)
		return RELM_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!lens[i] || msgs[i][0] == RELM_SIB_BUNDLE)
			return RELM_EINVAL;
		if (lens[i] > RELM_SIBLING_MAX)
			return RELM_ETOOBIG;
		bytes += lens[i];
	}
	if (relm_sib_bundle_size(n, bytes) > RELM_SIBLING_MAX)
		return RELM_ETOOBIG;
	if (!(b = malloc(relm_sib_bundle_size(n, bytes))))
		return RELM_ENOMEM;
	b[0] = RELM_SIB_BUNDLE;
	b[1] = (uint8_t)(n >> 8);
	b[2] = (uint8_t)n;
	off = RELM_SIB_BUNDLE_HEAD;
	for (size_t i = 0; i < n; i++) {
		put32(b + off, (uint32_t)lens[i]);
		memcpy(b + off + RELM_SIB_BUNDLE_ITEM, msgs[i], lens[i]);
		off += RELM_SIB_BUNDLE_ITEM + lens[i];
	}
	*out = b;
	*outlen = off;
	return 0;
}

int relm_sib_bundle_check(const uint8_t *buf, size_t len)
{
	size_t count, off = RELM_SIB_BUNDLE_HEAD;

	if (len > RELM_SIBLING_MAX)
		return RELM_ETOOBIG;
	if (len < RELM_SIB_BUNDLE_HEAD)
		return RELM_ETRUNCATED;
	if (buf[0] != RELM_SIB_BUNDLE)
		return RELM_EMALFORMED;
	count = (size_t)buf[1] << 8 | buf[2];
	if (count < 2)
		return RELM_EMALFORMED;
	for (size_t i = 0; i < count; i++) {
		uint32_t mlen;
		if (len - off < RELM_SIB_BUNDLE_ITEM)
			return RELM_ETRUNCATED;
		mlen = get32(buf + off);
		off += RELM_SIB_BUNDLE_ITEM;
		if (mlen > len - off)
			return RELM_ETRUNCATED;
		if (mlen == 0 || buf[off] == RELM_SIB_BUNDLE)
			return RELM_EMALFORMED;
		off += mlen;
	}
	return off == len ? 0 : RELM_EMALFORMED;
}

int relm_sib_bundle_next(const uint8_t *buf, size_t len, size_t *off,
                         const uint8_t **m, size_t *mlen)
{
	size_t o = *off ? *off : RELM_SIB_BUNDLE_HEAD;

	if (o + RELM_SIB_BUNDLE_ITEM > len)
		return 0;
	*mlen = get32(buf + o);
	*m = buf + o + RELM_SIB_BUNDLE_ITEM;
	*off = o + RELM_SIB_BUNDLE_ITEM + *mlen;
	return 1;
}

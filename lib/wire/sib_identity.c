/*
 * sib_identity.c — the `identity` sibling message (sib_identity.h).
 */
#include <stdlib.h>
#include <string.h>
#include "wire/sib_identity.h"
#include "wire/sibling.h"
#include "error.h"

int relm_sib_identity_encode(uint8_t **out, size_t *outlen, const uint8_t isk[RELM_SIGN_SK_LEN],
                             const uint8_t stmt[RELM_SUCCESSOR_LEN],
                             const uint8_t *circle, size_t circle_len)
{
	size_t len = RELM_SIB_IDENTITY_MIN + circle_len;
	uint8_t *b, *p;

	if (circle_len == 0 || len > RELM_SIBLING_MAX)
		return RELM_EINVAL;
	if (!(b = malloc(len)))
		return RELM_ENOMEM;
	p = b;
	*p++ = RELM_SIB_IDENTITY;
	memcpy(p, isk, RELM_SIGN_SK_LEN);
	p += RELM_SIGN_SK_LEN;
	memcpy(p, stmt, RELM_SUCCESSOR_LEN);
	p += RELM_SUCCESSOR_LEN;
	*p++ = (uint8_t)(circle_len >> 24);
	*p++ = (uint8_t)(circle_len >> 16);
	*p++ = (uint8_t)(circle_len >> 8);
	*p++ = (uint8_t)circle_len;
	memcpy(p, circle, circle_len);
	*out = b;
	*outlen = len;
	return 0;
}

int relm_sib_identity_decode(struct relm_sib_identity *out, const uint8_t *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t clen;

	if (len < 1)
		return RELM_ETRUNCATED;
	if (buf[0] != RELM_SIB_IDENTITY)
		return RELM_EMALFORMED;
	if (len < RELM_SIB_IDENTITY_MIN)
		return RELM_ETRUNCATED;
	p += 1 + RELM_SIGN_SK_LEN + RELM_SUCCESSOR_LEN;
	clen = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
	if (clen == 0)
		return RELM_EMALFORMED;
	if (len - RELM_SIB_IDENTITY_MIN < clen)
		return RELM_ETRUNCATED;
	if (len - RELM_SIB_IDENTITY_MIN > clen)
		return RELM_EMALFORMED;
	out->isk = buf + 1;
	out->stmt = buf + 1 + RELM_SIGN_SK_LEN;
	out->circle = p + 4;
	out->circle_len = clen;
	return 0;
}

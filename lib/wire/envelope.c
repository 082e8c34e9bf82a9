/*
 * envelope.c — the envelope codec (envelope.h, proto/wire.md §5).
 *
 * Decoding checks, in wire order, everything that needs no key: size cap,
 * version, flag bits, canonical public keys, and the ciphertext length
 * (k·RELM_PAD_BLOCK + tag, k ≥ 1, since every payload is padded, then
 * the gate tag if the GATE flag says so; it is checked by the engine,
 * which holds the key).  The
 * result points into the caller's buffer; nothing is allocated, and *out is
 * written only once every check has passed.
 */
#include <assert.h>
#include <string.h>
#include "wire/envelope.h"
#include "crypto/crypto.h"
#include "error.h"

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static int decode(struct relm_envelope *out, const uint8_t *buf, size_t len,
                  const uint8_t *known_ipk)
{
	struct relm_envelope e;
	const uint8_t *p;
	size_t hdrlen = RELM_HEADER_LEN;

	if (len > RELM_ENVELOPE_MAX)
		return RELM_ETOOBIG;
	/* The version byte is read first so that a future version is reported
	 * as such, whatever its length. */
	if (len < 1)
		return RELM_ETRUNCATED;
	if (buf[0] != RELM_WIRE_VERSION)
		return RELM_EVERSION;
	if (len < 2)
		return RELM_ETRUNCATED;
	if (buf[1] & ~(unsigned)RELM_ENV_F_KNOWN)
		return RELM_EMALFORMED;
	if (buf[1] & RELM_ENV_F_INITIAL)
		hdrlen += RELM_INITIAL_EXT_LEN;
	if (len < hdrlen)
		return RELM_ETRUNCATED;

	memset(&e, 0, sizeof e);
	p = buf;
	e.h.version = p[0];
	e.h.flags = p[1];
	memcpy(e.h.dh_pub, p + 2, RELM_KEY_LEN);
	e.h.pn = get_be32(p + 34);
	e.h.n = get_be32(p + 38);
	memcpy(e.h.nonce, p + 42, RELM_NONCE_LEN);
	if (!relm_x25519_is_canonical(e.h.dh_pub))
		return RELM_EBADKEY;

	if (e.h.flags & RELM_ENV_F_INITIAL) {
		p = buf + RELM_HEADER_LEN;
		memcpy(e.ext.ipk, p, RELM_SIGN_PK_LEN);
		memcpy(e.ext.ek, p + 32, RELM_KEY_LEN);
		e.ext.spk_id = get_be32(p + 64);
		e.ext.opk_id = get_be32(p + 68);
		/* public keys: a plain comparison is fine */
		if ((!known_ipk || memcmp(known_ipk, e.ext.ipk, RELM_SIGN_PK_LEN) != 0) &&
		    !relm_ed25519_is_valid(e.ext.ipk))
			return RELM_EBADKEY;
		if (!relm_x25519_is_canonical(e.ext.ek))
			return RELM_EBADKEY;
	}

	e.hdr = buf;
	e.hdrlen = hdrlen;
	e.ct = buf + hdrlen;
	e.ctlen = len - hdrlen;
	if (e.h.flags & RELM_ENV_F_GATE) {
		if (e.ctlen < RELM_PAD_BLOCK + RELM_TAG_LEN + RELM_GATE_LEN)
			return RELM_ETRUNCATED;
		e.ctlen -= RELM_GATE_LEN;
		e.gated_len = len - RELM_GATE_LEN;
		e.gate = buf + e.gated_len;
	}
	/* Every payload is padded to at least one block (payload.h). */
	if (e.ctlen < RELM_PAD_BLOCK + RELM_TAG_LEN)
		return RELM_ETRUNCATED;
	if ((e.ctlen - RELM_TAG_LEN) % RELM_PAD_BLOCK != 0)
		return RELM_EMALFORMED;

	*out = e;
	return 0;
}

int relm_envelope_decode(struct relm_envelope *out, const uint8_t *buf, size_t len)
{
	return decode(out, buf, len, NULL);
}

int relm_envelope_decode_known(struct relm_envelope *out, const uint8_t *buf, size_t len,
                               const uint8_t known_ipk[RELM_SIGN_PK_LEN])
{
	return decode(out, buf, len, known_ipk);
}

size_t relm_header_encode(uint8_t *out, const struct relm_header *h,
                          const struct relm_initial_ext *ext)
{
	uint8_t *p = out;

	/* Encoding our own header: bad flags are a programming error. */
	assert((h->flags & ~(unsigned)RELM_ENV_F_KNOWN) == 0);
	p[0] = h->version;
	p[1] = h->flags;
	memcpy(p + 2, h->dh_pub, RELM_KEY_LEN);
	put_be32(p + 34, h->pn);
	put_be32(p + 38, h->n);
	memcpy(p + 42, h->nonce, RELM_NONCE_LEN);
	if (!(h->flags & RELM_ENV_F_INITIAL))
		return RELM_HEADER_LEN;

	assert(ext != NULL);
	p = out + RELM_HEADER_LEN;
	memcpy(p, ext->ipk, RELM_SIGN_PK_LEN);
	memcpy(p + 32, ext->ek, RELM_KEY_LEN);
	put_be32(p + 64, ext->spk_id);
	put_be32(p + 68, ext->opk_id);
	return RELM_HEADER_LEN + RELM_INITIAL_EXT_LEN;
}

/*
 * circle.c — the circle codec, its signature and the acceptance rule
 * (circle.h, proto/devices.md §2).
 */
#include <string.h>
#include <sodium.h>
#include "wire/circle.h"
#include "crypto/crypto.h"
#include "error.h"

static const char SIG_LABEL[] = "relm/v1/circle";
enum { SIG_LABEL_LEN = sizeof SIG_LABEL - 1 };

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* UTF-8 without control characters (labels are shown to people). */
static int label_ok(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned c = p[i];
		size_t k;
		uint32_t cp;
		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return 0;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) { k = 1; cp = c & 0x1f; }
		else if (c >= 0xe0 && c <= 0xef) { k = 2; cp = c & 0x0f; }
		else if (c >= 0xf0 && c <= 0xf4) { k = 3; cp = c & 0x07; }
		else return 0;
		if (len - i <= k)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
			return 0;
		i += k + 1;
	}
	return 1;
}

static int cmp_dev(const void *a, const void *b)
{
	return memcmp(((const struct relm_circle_device *)a)->id,
	              ((const struct relm_circle_device *)b)->id, RELM_ID_LEN);
}

static int is_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

int relm_circle_find(const struct relm_circle *c, const uint8_t id[RELM_ID_LEN])
{
	for (uint32_t i = 0; i < c->count; i++)
		if (memcmp(c->dev[i].id, id, RELM_ID_LEN) == 0)
			return (int)i;
	return -1;
}

int relm_circle_sign(uint8_t *out, size_t cap, struct relm_circle *c,
                     const uint8_t ipk_sk[RELM_SIGN_SK_LEN])
{
	uint8_t msg[SIG_LABEL_LEN + RELM_CIRCLE_MAX];
	uint8_t *p = msg + SIG_LABEL_LEN;
	size_t n;

	if (c->count == 0 || c->count > RELM_MAX_DEVICES || c->epoch == 0 ||
	    memcmp(ipk_sk + 32, c->ipk, RELM_SIGN_PK_LEN) != 0)
		return RELM_EINVAL;
	qsort(c->dev, c->count, sizeof c->dev[0], cmp_dev);
	memcpy(msg, SIG_LABEL, SIG_LABEL_LEN);
	*p++ = RELM_CIRCLE_VERSION;
	memcpy(p, c->ipk, RELM_SIGN_PK_LEN);
	p += RELM_SIGN_PK_LEN;
	put64(p, c->epoch);
	p += 8;
	*p++ = (uint8_t)c->count;
	for (uint32_t i = 0; i < c->count; i++) {
		const struct relm_circle_device *d = &c->dev[i];
		size_t ll = strlen(d->label);
		int il;
		if (is_zero(d->id, RELM_ID_LEN) || (i > 0 && memcmp(c->dev[i - 1].id, d->id, RELM_ID_LEN) == 0) ||
		    ll > RELM_DEVICE_LABEL_MAX || !label_ok(d->label, ll) ||
		    !relm_ed25519_is_valid(d->dpk) || memcmp(d->invite.ipk, d->dpk, RELM_SIGN_PK_LEN) != 0 ||
		    d->added == 0 || d->added > c->epoch)
			return RELM_EINVAL;
		memcpy(p, d->id, RELM_ID_LEN);
		p += RELM_ID_LEN;
		memcpy(p, d->dpk, RELM_SIGN_PK_LEN);
		p += RELM_SIGN_PK_LEN;
		put64(p, d->added);
		p += 8;
		*p++ = (uint8_t)ll;
		memcpy(p, d->label, ll);
		p += ll;
		if ((il = relm_invite_to_bin(p + 2, &d->invite)) < 0)
			return RELM_EINVAL;
		{
			/* the invite must verify as its device's: decode what we wrote */
			struct relm_invite chk;
			if (relm_invite_from_bin(&chk, p + 2, (size_t)il) != 0)
				return RELM_EINVAL;
		}
		p[0] = (uint8_t)(il >> 8);
		p[1] = (uint8_t)il;
		p += 2 + il;
	}
	n = (size_t)(p - msg);
	if (cap < n - SIG_LABEL_LEN + RELM_SIG_LEN)
		return RELM_EINVAL;
	crypto_sign_detached(p, NULL, msg, n, ipk_sk);
	memcpy(out, msg + SIG_LABEL_LEN, n - SIG_LABEL_LEN + RELM_SIG_LEN);
	sodium_memzero(msg, sizeof msg);
	return (int)(n - SIG_LABEL_LEN + RELM_SIG_LEN);
}

int relm_circle_decode(struct relm_circle *out, const uint8_t *buf, size_t len)
{
	struct relm_circle c;           /* ~9 KB */
	uint8_t msg[SIG_LABEL_LEN + RELM_CIRCLE_MAX];
	const uint8_t *p = buf, *end = buf + len;
	uint32_t count;

	if (len > RELM_CIRCLE_MAX)
		return RELM_EMALFORMED;
	if (len < 1)
		return RELM_ETRUNCATED;
	if (*p != RELM_CIRCLE_VERSION)
		return RELM_EVERSION;
	p++;
	if (end - p < RELM_SIGN_PK_LEN + 8 + 1)
		return RELM_ETRUNCATED;
	memset(&c, 0, sizeof c);
	memcpy(c.ipk, p, RELM_SIGN_PK_LEN);
	p += RELM_SIGN_PK_LEN;
	c.epoch = get64(p);
	p += 8;
	count = *p++;
	if (!relm_ed25519_is_valid(c.ipk))
		return RELM_EBADKEY;
	if (count == 0 || count > RELM_MAX_DEVICES || c.epoch == 0)
		return RELM_EMALFORMED;
	for (uint32_t i = 0; i < count; i++) {
		struct relm_circle_device *d = &c.dev[i];
		size_t ll, il;
		int rc;
		if (end - p < RELM_ID_LEN + RELM_SIGN_PK_LEN + 8 + 1)
			return RELM_ETRUNCATED;
		memcpy(d->id, p, RELM_ID_LEN);
		p += RELM_ID_LEN;
		memcpy(d->dpk, p, RELM_SIGN_PK_LEN);
		p += RELM_SIGN_PK_LEN;
		d->added = get64(p);
		p += 8;
		ll = *p++;
		if (ll > RELM_DEVICE_LABEL_MAX)
			return RELM_EMALFORMED;
		if ((size_t)(end - p) < ll + 2)
			return RELM_ETRUNCATED;
		memcpy(d->label, p, ll);
		d->label[ll] = '\0';
		p += ll;
		il = (size_t)p[0] << 8 | p[1];
		p += 2;
		if (il == 0 || il > RELM_INVITE_BIN_MAX)
			return RELM_EMALFORMED;
		if ((size_t)(end - p) < il)
			return RELM_ETRUNCATED;
		if (is_zero(d->id, RELM_ID_LEN) || !label_ok(d->label, ll) ||
		    (i > 0 && memcmp(c.dev[i - 1].id, d->id, RELM_ID_LEN) >= 0) ||
		    d->added == 0 || d->added > c.epoch)
			return RELM_EMALFORMED;
		if (!relm_ed25519_is_valid(d->dpk))
			return RELM_EBADKEY;
		if ((rc = relm_invite_from_bin(&d->invite, p, il)) != 0)
			return rc;
		if (memcmp(d->invite.ipk, d->dpk, RELM_SIGN_PK_LEN) != 0)
			return RELM_EMALFORMED;
		p += il;
	}
	c.count = count;
	if (end - p < RELM_SIG_LEN)
		return RELM_ETRUNCATED;
	if (end - p > RELM_SIG_LEN)
		return RELM_EMALFORMED;
	memcpy(msg, SIG_LABEL, SIG_LABEL_LEN);
	memcpy(msg + SIG_LABEL_LEN, buf, (size_t)(p - buf));
	if (crypto_sign_verify_detached(p, msg, SIG_LABEL_LEN + (size_t)(p - buf), c.ipk) != 0)
		return RELM_EBADSIG;
	*out = c;
	return 0;
}

int relm_circle_accept(const struct relm_circle *cur, const uint8_t *cb, size_t clen,
                       const struct relm_circle *next, const uint8_t *nb, size_t nlen,
                       const uint8_t ipk[RELM_SIGN_PK_LEN])
{
	uint8_t hc[32], hn[32];

	if (memcmp(next->ipk, ipk, RELM_SIGN_PK_LEN) != 0)
		return RELM_EINVAL;
	if (!cur || next->epoch > cur->epoch)
		return 1;
	if (next->epoch < cur->epoch)
		return 0;
	if (clen == nlen && memcmp(cb, nb, nlen) == 0)
		return 0;                      /* a duplicate */
	/* a conflict: two circles of one epoch; the smaller hash wins everywhere */
	crypto_generichash(hc, sizeof hc, cb, clen, NULL, 0);
	crypto_generichash(hn, sizeof hn, nb, nlen, NULL, 0);
	return memcmp(hn, hc, sizeof hn) < 0;
}

int relm_circle_without(uint8_t *out, size_t cap, struct relm_circle *next,
                        const struct relm_circle *cur, const uint8_t id[RELM_ID_LEN],
                        const uint8_t ipk_sk[RELM_SIGN_SK_LEN])
{
	int k = relm_circle_find(cur, id), rc;
	uint32_t j = 0;

	if (k < 0)
		return RELM_ENOTFOUND;
	if (cur->count < 2 || cur->epoch == UINT64_MAX)
		return RELM_EINVAL;
	memset(next, 0, sizeof *next);
	memcpy(next->ipk, cur->ipk, RELM_SIGN_PK_LEN);
	next->epoch = cur->epoch + 1;
	for (uint32_t i = 0; i < cur->count; i++)
		if ((int)i != k)
			next->dev[j++] = cur->dev[i];
	next->count = j;
	if ((rc = relm_circle_sign(out, cap, next, ipk_sk)) < 0)
		sodium_memzero(out, cap < RELM_CIRCLE_MAX ? cap : RELM_CIRCLE_MAX);
	return rc;
}

int relm_circle_removed(const struct relm_circle *c, const uint8_t self[RELM_ID_LEN])
{
	return relm_circle_find(c, self) < 0;
}

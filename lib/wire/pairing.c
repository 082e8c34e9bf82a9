/*
 * pairing.c — the pairing code and the JOIN, WELCOME and REFUSE messages
 * (proto/devices.md §12; pairing.h).
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "wire/pairing.h"
#include "wire/addr.h"
#include "crypto/crypto.h"
#include "text.h"
#include "error.h"

#define CODE_PREFIX "relm-pair:"
#define CODE_PREFIX_LEN (sizeof CODE_PREFIX - 1)
#define JOIN_LABEL "relm/v1/pair/join"
#define REFUSE_LABEL "relm/v1/pair/refuse"

/* A label (devices.md §2): UTF-8, no NUL, no ASCII control character
 * (the circle refuses the others when it is signed). */
static int label_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return relm_text_ok(s, len);
}

/* ---- the code --------------------------------------------------------------- */

static int host_ok(const char *host, size_t len)
{
	struct relm_addr a;

	return len >= 1 && len <= RELM_PAIR_HOST_MAX && memchr(host, '\0', len) == NULL &&
	       relm_addr_parse(&a, host, len) == 0 && !a.has_id;
}

int relm_pair_code_encode(char *out, size_t cap, const struct relm_pair_code *c)
{
	uint8_t bin[RELM_PAIR_CODE_BIN_MAX];
	size_t hl = strnlen(c->host, sizeof c->host), n;

	if (!host_ok(c->host, hl))
		return RELM_EINVAL;
	bin[0] = RELM_PAIR_VERSION;
	for (int i = 0; i < 8; i++)
		bin[1 + i] = (uint8_t)(c->expires_ms >> (56 - 8 * i));
	bin[9] = (uint8_t)hl;
	memcpy(bin + 10, c->host, hl);
	memcpy(bin + 10 + hl, c->secret, RELM_PAIR_SECRET_LEN);
	n = 10 + hl + RELM_PAIR_SECRET_LEN;
	if (cap < CODE_PREFIX_LEN + sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING)) {
		sodium_memzero(bin, sizeof bin);
		return RELM_EINVAL;
	}
	memcpy(out, CODE_PREFIX, CODE_PREFIX_LEN);
	sodium_bin2base64(out + CODE_PREFIX_LEN, cap - CODE_PREFIX_LEN, bin, n,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(bin, sizeof bin);
	return (int)strlen(out);
}

int relm_pair_code_decode(struct relm_pair_code *out, const char *text, size_t len, uint64_t now_ms)
{
	struct relm_pair_code c;
	uint8_t bin[RELM_PAIR_CODE_BIN_MAX + 3];
	size_t binlen = 0, b64len, hl;
	int rc = 0;

	relm_wire_trim(&text, &len);
	if (len < CODE_PREFIX_LEN)
		return len == 0 || memcmp(text, CODE_PREFIX, len) == 0 ? RELM_ETRUNCATED : RELM_EMALFORMED;
	if (memcmp(text, CODE_PREFIX, CODE_PREFIX_LEN) != 0)
		return RELM_EMALFORMED;
	text += CODE_PREFIX_LEN;
	b64len = len - CODE_PREFIX_LEN;
	if (b64len > sodium_base64_ENCODED_LEN(sizeof bin, sodium_base64_VARIANT_URLSAFE_NO_PADDING))
		return RELM_EMALFORMED;
	if (relm_wire_b64url_decode(bin, sizeof bin, &binlen, text, b64len) != 0)
		return RELM_EMALFORMED;
	memset(&c, 0, sizeof c);
	if (binlen < 10)
		rc = RELM_ETRUNCATED;
	else if (binlen < 10 + (size_t)bin[9] + RELM_PAIR_SECRET_LEN)
		rc = RELM_ETRUNCATED;
	else if (binlen > 10 + (size_t)bin[9] + RELM_PAIR_SECRET_LEN)
		rc = RELM_EMALFORMED;
	else if (bin[0] != RELM_PAIR_VERSION)
		rc = RELM_EVERSION;
	if (rc == 0) {
		hl = bin[9];
		for (int i = 0; i < 8; i++)
			c.expires_ms = c.expires_ms << 8 | bin[1 + i];
		memcpy(c.host, bin + 10, hl);
		memcpy(c.secret, bin + 10 + hl, RELM_PAIR_SECRET_LEN);
		if (!host_ok(c.host, hl))
			rc = RELM_EMALFORMED;
		else if (c.expires_ms <= now_ms)
			rc = RELM_EEXPIRED;
	}
	if (rc == 0)
		*out = c;
	sodium_memzero(bin, sizeof bin);
	sodium_memzero(&c, sizeof c);
	return rc;
}

/* ---- what S derives ------------------------------------------------------------- */

static void hkdf32(uint8_t out[32], const uint8_t s[RELM_PAIR_SECRET_LEN], const char *label)
{
	(void)relm_hkdf(out, 32, NULL, 0, s, RELM_PAIR_SECRET_LEN, (const uint8_t *)label, strlen(label));
}

void relm_pair_derive(struct relm_pair_keys *k, const uint8_t secret[RELM_PAIR_SECRET_LEN])
{
	uint8_t seed[32];

	hkdf32(seed, secret, "relm/v1/pair/mailbox/e");
	relm_sign_keypair_from_seed(k->mbox_e_pk, k->mbox_e_sk, seed);
	hkdf32(seed, secret, "relm/v1/pair/mailbox/j");
	relm_sign_keypair_from_seed(k->mbox_j_pk, k->mbox_j_sk, seed);
	hkdf32(k->mac, secret, "relm/v1/pair/mac");
	hkdf32(k->welcome, secret, "relm/v1/pair/welcome");
	hkdf32(seed, secret, "relm/v1/pair/id");
	memcpy(k->id, seed, RELM_ID_LEN);
	sodium_memzero(seed, sizeof seed);
}

int relm_pair_type(const uint8_t *buf, size_t len)
{
	if (len < 2)
		return RELM_ETRUNCATED;
	if (buf[0] != RELM_PAIR_VERSION)
		return RELM_EVERSION;
	if (buf[1] < RELM_PAIR_JOIN || buf[1] > RELM_PAIR_REFUSE)
		return RELM_EMALFORMED;
	return buf[1];
}

void relm_pair_hash(uint8_t out[32], const uint8_t *buf, size_t len)
{
	crypto_generichash(out, 32, buf, len, NULL, 0);
}

/* BLAKE2b-256 keyed with kmac over label ‖ buf. */
static void pair_mac(uint8_t out[32], const uint8_t kmac[32], const char *label,
                     const uint8_t *buf, size_t len)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, kmac, 32, 32);
	crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
	crypto_generichash_update(&st, buf, len);
	crypto_generichash_final(&st, out, 32);
	sodium_memzero(&st, sizeof st);
}

/* Ed25519 over label ‖ buf. */
static int label_verify(const uint8_t sig[64], const char *label, const uint8_t *buf, size_t len,
                        const uint8_t pk[RELM_SIGN_PK_LEN])
{
	uint8_t msg[sizeof JOIN_LABEL + RELM_PAIR_JOIN_MAX];
	size_t ll = strlen(label);

	if (ll + len > sizeof msg)
		return RELM_EINVAL;
	memcpy(msg, label, ll);
	memcpy(msg + ll, buf, len);
	return crypto_sign_verify_detached(sig, msg, ll + len, pk) == 0 ? 0 : RELM_EBADSIG;
}

/* ---- JOIN --------------------------------------------------------------------- */

int relm_pair_join_encode(uint8_t *out, size_t cap, const struct relm_pair_join *j,
                          const uint8_t dsk[RELM_SIGN_SK_LEN], const uint8_t kmac[32])
{
	uint8_t inv[RELM_INVITE_BIN_MAX], msg[sizeof JOIN_LABEL + RELM_PAIR_JOIN_MAX];
	size_t ll = strnlen(j->label, sizeof j->label), n = 0;
	int il;

	if (cap < RELM_PAIR_JOIN_MAX || ll > RELM_PAIR_LABEL_MAX || !label_ok(j->label, ll))
		return RELM_EINVAL;
	if ((il = relm_invite_to_bin(inv, &j->invite)) < 0)
		return RELM_EINVAL;
	out[n++] = RELM_PAIR_VERSION;
	out[n++] = RELM_PAIR_JOIN;
	memcpy(out + n, j->device_id, RELM_ID_LEN);
	n += RELM_ID_LEN;
	memcpy(out + n, j->dpk, RELM_SIGN_PK_LEN);
	n += RELM_SIGN_PK_LEN;
	memcpy(out + n, j->eph, RELM_KEY_LEN);
	n += RELM_KEY_LEN;
	out[n++] = (uint8_t)ll;
	memcpy(out + n, j->label, ll);
	n += ll;
	out[n++] = (uint8_t)(il >> 8);
	out[n++] = (uint8_t)il;
	memcpy(out + n, inv, (size_t)il);
	n += (size_t)il;
	memcpy(msg, JOIN_LABEL, strlen(JOIN_LABEL));
	memcpy(msg + strlen(JOIN_LABEL), out, n);
	crypto_sign_detached(out + n, NULL, msg, strlen(JOIN_LABEL) + n, dsk);
	n += 64;
	pair_mac(out + n, kmac, JOIN_LABEL, out, n);
	return (int)(n + 32);
}

int relm_pair_join_decode(struct relm_pair_join *out, const uint8_t *buf, size_t len,
                          const uint8_t kmac[32])
{
	struct relm_pair_join j;
	uint8_t mac[32];
	size_t n = 2 + RELM_ID_LEN + RELM_SIGN_PK_LEN + RELM_KEY_LEN, ll, il, body;
	int rc;

	/* structure */
	if ((rc = relm_pair_type(buf, len)) < 0)
		return rc;
	if (rc != RELM_PAIR_JOIN)
		return RELM_EMALFORMED;
	if (len > RELM_PAIR_JOIN_MAX)
		return RELM_EMALFORMED;
	if (len < n + 1)
		return RELM_ETRUNCATED;
	ll = buf[n];
	if (ll > RELM_PAIR_LABEL_MAX)
		return RELM_EMALFORMED;
	if (len < n + 1 + ll + 2)
		return RELM_ETRUNCATED;
	il = (size_t)buf[n + 1 + ll] << 8 | buf[n + 2 + ll];
	if (il < 1 || il > RELM_INVITE_BIN_MAX)
		return RELM_EMALFORMED;
	body = n + 1 + ll + 2 + il;
	if (len < body + 64 + 32)
		return RELM_ETRUNCATED;
	if (len > body + 64 + 32)
		return RELM_EMALFORMED;
	/* the mac: nobody without S gets further */
	pair_mac(mac, kmac, JOIN_LABEL, buf, body + 64);
	rc = sodium_memcmp(mac, buf + body + 64, 32) == 0 ? 0 : RELM_EAUTH;
	sodium_memzero(mac, sizeof mac);
	if (rc != 0)
		return rc;
	memset(&j, 0, sizeof j);
	memcpy(j.device_id, buf + 2, RELM_ID_LEN);
	memcpy(j.dpk, buf + 2 + RELM_ID_LEN, RELM_SIGN_PK_LEN);
	memcpy(j.eph, buf + 2 + RELM_ID_LEN + RELM_SIGN_PK_LEN, RELM_KEY_LEN);
	memcpy(j.label, buf + n + 1, ll);
	if (sodium_is_zero(j.device_id, RELM_ID_LEN) || !label_ok(j.label, ll))
		return RELM_EMALFORMED;
	if (!relm_ed25519_is_valid(j.dpk) || !relm_x25519_is_canonical(j.eph))
		return RELM_EBADKEY;
	/* the signature, and the device invite: J's own, naming its DPK */
	if ((rc = label_verify(buf + body, JOIN_LABEL, buf, body, j.dpk)) != 0)
		return RELM_EBADSIG;
	rc = relm_invite_from_bin(&j.invite, buf + n + 1 + ll + 2, il);
	if (rc == RELM_ETRUNCATED || rc == RELM_EVERSION)
		rc = RELM_EMALFORMED;
	if (rc == 0 && sodium_memcmp(j.invite.ipk, j.dpk, RELM_SIGN_PK_LEN) != 0)
		rc = RELM_EBADSIG;
	if (rc != 0)
		return rc;
	*out = j;
	return 0;
}

/* ---- WELCOME ------------------------------------------------------------------- */

/* key = HKDF(ikm = X25519(priv, pub) ‖ K_w, info "relm/v1/pair/welcome-key"). */
static int welcome_key(uint8_t key[32], const uint8_t priv[RELM_KEY_LEN], const uint8_t pub[RELM_KEY_LEN],
                       const uint8_t kw[32])
{
	static const char info[] = "relm/v1/pair/welcome-key";
	uint8_t ikm[64];
	int rc;

	if ((rc = relm_dh(ikm, priv, pub)) != 0)
		return rc;
	memcpy(ikm + 32, kw, 32);
	rc = relm_hkdf(key, 32, NULL, 0, ikm, sizeof ikm, (const uint8_t *)info, sizeof info - 1);
	sodium_memzero(ikm, sizeof ikm);
	return rc;
}

/* ad = version ‖ type ‖ eph ‖ join_hash */
static void welcome_ad(uint8_t ad[2 + 32 + 32], const uint8_t eph[32], const uint8_t join_hash[32])
{
	ad[0] = RELM_PAIR_VERSION;
	ad[1] = RELM_PAIR_WELCOME;
	memcpy(ad + 2, eph, 32);
	memcpy(ad + 34, join_hash, 32);
}

void relm_pair_buf_free(uint8_t *buf, size_t len)
{
	if (!buf)
		return;
	sodium_memzero(buf, len);
	free(buf);
}

int relm_pair_welcome_seal(uint8_t **out, size_t *outlen, const struct relm_pair_welcome *w,
                           const uint8_t e_priv[RELM_KEY_LEN], const uint8_t eph_j[RELM_KEY_LEN],
                           const uint8_t kw[32], const uint8_t join_hash[32],
                           const uint8_t nonce[RELM_NONCE_LEN])
{
	uint8_t key[32], ad[66], *pt = NULL, *o = NULL;
	size_t ll = strnlen(w->label, sizeof w->label), ptlen, n;
	int rc;

	if (ll > 255 || !label_ok(w->label, ll) || w->circle_len == 0 || w->circle_len > 0xffffffu)
		return RELM_EINVAL;
	ptlen = RELM_SIGN_SK_LEN + RELM_ID_LEN + 1 + ll + RELM_ID_LEN + 4 + w->circle_len;
	if (!(pt = malloc(ptlen)) || !(o = malloc(RELM_PAIR_WELCOME_HEAD + ptlen + RELM_TAG_LEN))) {
		free(pt);
		return RELM_ENOMEM;
	}
	n = 0;
	memcpy(pt + n, w->ipk_sk, RELM_SIGN_SK_LEN);
	n += RELM_SIGN_SK_LEN;
	memcpy(pt + n, w->proton, RELM_ID_LEN);
	n += RELM_ID_LEN;
	pt[n++] = (uint8_t)ll;
	memcpy(pt + n, w->label, ll);
	n += ll;
	memcpy(pt + n, w->from_device, RELM_ID_LEN);
	n += RELM_ID_LEN;
	for (int i = 0; i < 4; i++)
		pt[n++] = (uint8_t)(w->circle_len >> (24 - 8 * i));
	memcpy(pt + n, w->circle, w->circle_len);
	o[0] = RELM_PAIR_VERSION;
	o[1] = RELM_PAIR_WELCOME;
	relm_x25519_public(o + 2, e_priv);
	memcpy(o + 34, nonce, RELM_NONCE_LEN);
	if ((rc = welcome_key(key, e_priv, eph_j, kw)) == 0) {
		welcome_ad(ad, o + 2, join_hash);
		relm_aead_seal(o + RELM_PAIR_WELCOME_HEAD, pt, ptlen, ad, sizeof ad, nonce, key);
		*out = o;
		*outlen = RELM_PAIR_WELCOME_HEAD + ptlen + RELM_TAG_LEN;
		o = NULL;
	}
	sodium_memzero(key, sizeof key);
	relm_pair_buf_free(pt, ptlen);
	free(o);
	return rc;
}

int relm_pair_welcome_open(struct relm_pair_welcome *w, uint8_t **pt_out, size_t *ptlen_out,
                           const uint8_t *buf, size_t len, const uint8_t e_j_priv[RELM_KEY_LEN],
                           const uint8_t kw[32], const uint8_t join_hash[32])
{
	struct relm_pair_welcome v;
	uint8_t key[32], ad[66], *pt;
	size_t ptlen, n, ll;
	uint32_t cl = 0;
	int rc;

	if ((rc = relm_pair_type(buf, len)) < 0)
		return rc;
	if (rc != RELM_PAIR_WELCOME)
		return RELM_EMALFORMED;
	if (len < RELM_PAIR_WELCOME_HEAD + RELM_TAG_LEN + RELM_SIGN_SK_LEN + RELM_ID_LEN + 1 + RELM_ID_LEN + 4)
		return RELM_ETRUNCATED;
	if (!relm_x25519_is_canonical(buf + 2))
		return RELM_EBADKEY;
	ptlen = len - RELM_PAIR_WELCOME_HEAD - RELM_TAG_LEN;
	if (!(pt = malloc(ptlen)))
		return RELM_ENOMEM;
	if ((rc = welcome_key(key, e_j_priv, buf + 2, kw)) == 0) {
		welcome_ad(ad, buf + 2, join_hash);
		rc = relm_aead_open(pt, buf + RELM_PAIR_WELCOME_HEAD, len - RELM_PAIR_WELCOME_HEAD,
		                    ad, sizeof ad, buf + 34, key);
	}
	sodium_memzero(key, sizeof key);
	if (rc != 0) {
		free(pt);
		return rc;
	}
	memset(&v, 0, sizeof v);
	memcpy(v.ipk_sk, pt, RELM_SIGN_SK_LEN);
	n = RELM_SIGN_SK_LEN;
	memcpy(v.proton, pt + n, RELM_ID_LEN);
	n += RELM_ID_LEN;
	ll = pt[n++];
	if (n + ll + RELM_ID_LEN + 4 > ptlen) {
		rc = RELM_ETRUNCATED;
		goto bad;
	}
	memcpy(v.label, pt + n, ll);
	n += ll;
	memcpy(v.from_device, pt + n, RELM_ID_LEN);
	n += RELM_ID_LEN;
	for (int i = 0; i < 4; i++)
		cl = cl << 8 | pt[n++];
	if (cl == 0 || !label_ok(v.label, ll)) {
		rc = RELM_EMALFORMED;
		goto bad;
	}
	if ((size_t)cl != ptlen - n) {
		rc = (size_t)cl > ptlen - n ? RELM_ETRUNCATED : RELM_EMALFORMED;
		goto bad;
	}
	v.circle = pt + n;
	v.circle_len = cl;
	*w = v;
	*pt_out = pt;
	*ptlen_out = ptlen;
	sodium_memzero(&v, sizeof v);
	return 0;
bad:
	sodium_memzero(&v, sizeof v);
	relm_pair_buf_free(pt, ptlen);
	return rc;
}

/* ---- REFUSE --------------------------------------------------------------------- */

void relm_pair_refuse_encode(uint8_t out[RELM_PAIR_REFUSE_LEN], int code,
                             const uint8_t join_hash[32], const uint8_t kmac[32])
{
	unsigned v = (unsigned)(-code) & 0xffffu;

	out[0] = RELM_PAIR_VERSION;
	out[1] = RELM_PAIR_REFUSE;
	out[2] = (uint8_t)(v >> 8);
	out[3] = (uint8_t)v;
	memcpy(out + 4, join_hash, 32);
	pair_mac(out + 36, kmac, REFUSE_LABEL, out, 36);
}

int relm_pair_refuse_decode(int *code, uint8_t join_hash[32], const uint8_t *buf, size_t len,
                            const uint8_t kmac[32])
{
	uint8_t mac[32];
	int rc;

	if ((rc = relm_pair_type(buf, len)) < 0)
		return rc;
	if (rc != RELM_PAIR_REFUSE)
		return RELM_EMALFORMED;
	if (len < RELM_PAIR_REFUSE_LEN)
		return RELM_ETRUNCATED;
	if (len > RELM_PAIR_REFUSE_LEN)
		return RELM_EMALFORMED;
	pair_mac(mac, kmac, REFUSE_LABEL, buf, 36);
	rc = sodium_memcmp(mac, buf + 36, 32) == 0 ? 0 : RELM_EAUTH;
	sodium_memzero(mac, sizeof mac);
	if (rc != 0)
		return rc;
	*code = -(int)((unsigned)buf[2] << 8 | buf[3]);
	memcpy(join_hash, buf + 4, 32);
	return 0;
}

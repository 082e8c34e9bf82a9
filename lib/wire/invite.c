/*
 * invite.c — invites (invite.h, proto/wire.md §3).
 *
 * One serialiser (invite_body) produces the bytes that are both signed and
 * sent, so the signature input and the wire cannot drift apart.  Decoding
 * parses into a stack copy, checks structure and keys, verifies the
 * signature last, and only then writes *out.
 */
#include <string.h>
#include <sodium.h>
#include "wire/invite.h"
#include "crypto/crypto.h"
#include "error.h"

#define PREFIX      "relm:"
#define PREFIX_LEN  (sizeof PREFIX - 1)
#define SIG_LABEL   "relm/v1/invite"
#define SIG_LABEL_LEN (sizeof SIG_LABEL - 1)

enum {
	/* version flags ipk spk_id spk [opk_id opk] expires mailbox_len */
	INVITE_FIXED_LEN = 1 + 1 + RELM_SIGN_PK_LEN + 4 + RELM_KEY_LEN + 8 + 1,
	INVITE_OPK_LEN   = 4 + RELM_KEY_LEN,
	INVITE_BODY_MAX  = INVITE_FIXED_LEN + INVITE_OPK_LEN + RELM_MAILBOX_ADDR_MAX,
	INVITE_BIN_MAX   = INVITE_BODY_MAX + RELM_SIG_LEN,                 /* 434 */
	INVITE_B64_MAX   = (INVITE_BIN_MAX * 4 + 2) / 3,                     /* 579 */
};

_Static_assert(PREFIX_LEN + INVITE_B64_MAX + 1 <= RELM_INVITE_TEXT_MAX,
               "RELM_INVITE_TEXT_MAX too small");

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Mailbox strings: 1..255 bytes of printable ASCII without space. */
static int mailbox_ok(const uint8_t *m, size_t len)
{
	if (len == 0 || len > RELM_MAILBOX_ADDR_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (m[i] < 0x21 || m[i] > 0x7e)
			return 0;
	return 1;
}

/* Check the fields a signer or encoder controls; returns the mailbox length
 * or a negative RELM_EINVAL. */
static int fields_check(const struct relm_invite *inv)
{
	size_t mlen = strnlen(inv->mailbox, sizeof inv->mailbox);

	if (inv->version != RELM_WIRE_VERSION || (inv->flags & ~(unsigned)RELM_INVITE_F_KNOWN))
		return RELM_EINVAL;
	if (mlen == sizeof inv->mailbox || !mailbox_ok((const uint8_t *)inv->mailbox, mlen))
		return RELM_EINVAL;
	if (!relm_ed25519_is_valid(inv->ipk) || !relm_x25519_is_canonical(inv->spk))
		return RELM_EINVAL;
	if ((inv->flags & RELM_INVITE_F_OPK) && !relm_x25519_is_canonical(inv->opk))
		return RELM_EINVAL;
	return (int)mlen;
}

_Static_assert(INVITE_BIN_MAX == RELM_INVITE_BIN_MAX, "invite.h states the binary maximum");

/* Serialise everything before sig into out (INVITE_BODY_MAX bytes); returns
 * the length or RELM_EINVAL. */
static int invite_body(uint8_t out[INVITE_BODY_MAX], const struct relm_invite *inv)
{
	uint8_t *p = out;
	int mlen = fields_check(inv);

	if (mlen < 0)
		return mlen;
	*p++ = inv->version;
	*p++ = inv->flags;
	memcpy(p, inv->ipk, RELM_SIGN_PK_LEN);
	p += RELM_SIGN_PK_LEN;
	put_be32(p, inv->spk_id);
	p += 4;
	memcpy(p, inv->spk, RELM_KEY_LEN);
	p += RELM_KEY_LEN;
	if (inv->flags & RELM_INVITE_F_OPK) {
		put_be32(p, inv->opk_id);
		p += 4;
		memcpy(p, inv->opk, RELM_KEY_LEN);
		p += RELM_KEY_LEN;
	}
	put_be64(p, inv->expires_ms);
	p += 8;
	*p++ = (uint8_t)mlen;
	memcpy(p, inv->mailbox, (size_t)mlen);
	p += mlen;
	return (int)(p - out);
}

/* The signature input: "relm/v1/invite" ‖ body. */
static size_t sig_input(uint8_t out[SIG_LABEL_LEN + INVITE_BODY_MAX],
                        const uint8_t *body, size_t bodylen)
{
	memcpy(out, SIG_LABEL, SIG_LABEL_LEN);
	memcpy(out + SIG_LABEL_LEN, body, bodylen);
	return SIG_LABEL_LEN + bodylen;
}

int relm_invite_sign(struct relm_invite *inv, const uint8_t ipk_sk[RELM_SIGN_SK_LEN])
{
	uint8_t body[INVITE_BODY_MAX];
	uint8_t msg[SIG_LABEL_LEN + INVITE_BODY_MAX];
	uint8_t sig[RELM_SIG_LEN];
	int n;

	/* libsodium's secret key is seed ‖ pk: an invite whose ipk is not the
	 * signer's would never verify, so refuse to make one. */
	if (sodium_memcmp(ipk_sk + 32, inv->ipk, RELM_SIGN_PK_LEN) != 0)
		return RELM_EINVAL;
	n = invite_body(body, inv);
	if (n < 0)
		return n;
	crypto_sign_detached(sig, NULL, msg, sig_input(msg, body, (size_t)n), ipk_sk);
	memcpy(inv->sig, sig, sizeof sig);
	return 0;
}

int relm_invite_to_bin(uint8_t *out, const struct relm_invite *inv)
{
	int n = invite_body(out, inv);

	if (n < 0)
		return n;
	memcpy(out + n, inv->sig, RELM_SIG_LEN);
	return n + RELM_SIG_LEN;
}

int relm_invite_encode(char *out, size_t cap, const struct relm_invite *inv)
{
	uint8_t bin[INVITE_BIN_MAX];
	size_t need;
	int n = relm_invite_to_bin(bin, inv);

	if (n < 0)
		return n;
	need = PREFIX_LEN + sodium_base64_ENCODED_LEN((size_t)n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if (cap < need)
		return RELM_EINVAL;
	memcpy(out, PREFIX, PREFIX_LEN);
	sodium_bin2base64(out + PREFIX_LEN, cap - PREFIX_LEN, bin, (size_t)n,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return (int)strlen(out);
}

/* libsodium 1.0.18's decoder maps some bytes ≥ 0x80 (a negative char)
 * onto alphabet values, so the alphabet is checked here first. */
static int is_b64url(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void relm_wire_trim(const char **text, size_t *len)
{
	while (*len > 0 && is_space((*text)[0])) {
		(*text)++;
		(*len)--;
	}
	while (*len > 0 && is_space((*text)[*len - 1]))
		(*len)--;
}

int relm_wire_b64url_decode(uint8_t *out, size_t cap, size_t *outlen, const char *text, size_t len)
{
	const char *end = NULL;

	/* libsodium rejects characters outside the alphabet, a length of 1 mod 4
	 * and non-zero trailing bits, so each text has one spelling. */
	if (!is_b64url(text, len) ||
	    sodium_base642bin(out, cap, text, len, NULL, outlen, &end,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 || end != text + len)
		return RELM_EMALFORMED;
	return 0;
}

int relm_invite_decode(struct relm_invite *out, const char *text, size_t len)
{
	uint8_t bin[INVITE_BIN_MAX];
	size_t binlen = 0, b64len;

	relm_wire_trim(&text, &len);
	if (len < PREFIX_LEN) {
		/* A prefix of "relm:" is a truncated invite; anything else is not one. */
		return len == 0 || memcmp(text, PREFIX, len) == 0 ? RELM_ETRUNCATED : RELM_EMALFORMED;
	}
	if (memcmp(text, PREFIX, PREFIX_LEN) != 0)
		return RELM_EMALFORMED;
	text += PREFIX_LEN;
	b64len = len - PREFIX_LEN;
	if (b64len > INVITE_B64_MAX)
		return RELM_EMALFORMED;
	if (relm_wire_b64url_decode(bin, sizeof bin, &binlen, text, b64len) != 0)
		return RELM_EMALFORMED;

	return relm_invite_from_bin(out, bin, binlen);
}

int relm_invite_from_bin(struct relm_invite *out, const uint8_t *bin, size_t binlen)
{
	struct relm_invite inv;
	uint8_t msg[SIG_LABEL_LEN + INVITE_BODY_MAX];
	const uint8_t *p, *end;
	size_t mlen;

	if (binlen > INVITE_BIN_MAX)
		return RELM_EMALFORMED;
	memset(&inv, 0, sizeof inv);
	p = bin;
	end = bin + binlen;
	if (end - p < 1)
		return RELM_ETRUNCATED;
	inv.version = *p++;
	if (inv.version != RELM_WIRE_VERSION)
		return RELM_EVERSION;
	if (end - p < 1)
		return RELM_ETRUNCATED;
	inv.flags = *p++;
	if (inv.flags & ~(unsigned)RELM_INVITE_F_KNOWN)
		return RELM_EMALFORMED;
	if (end - p < RELM_SIGN_PK_LEN + 4 + RELM_KEY_LEN)
		return RELM_ETRUNCATED;
	memcpy(inv.ipk, p, RELM_SIGN_PK_LEN);
	p += RELM_SIGN_PK_LEN;
	inv.spk_id = get_be32(p);
	p += 4;
	memcpy(inv.spk, p, RELM_KEY_LEN);
	p += RELM_KEY_LEN;
	if (!relm_ed25519_is_valid(inv.ipk) || !relm_x25519_is_canonical(inv.spk))
		return RELM_EBADKEY;
	if (inv.flags & RELM_INVITE_F_OPK) {
		if (end - p < INVITE_OPK_LEN)
			return RELM_ETRUNCATED;
		inv.opk_id = get_be32(p);
		p += 4;
		memcpy(inv.opk, p, RELM_KEY_LEN);
		p += RELM_KEY_LEN;
		if (!relm_x25519_is_canonical(inv.opk))
			return RELM_EBADKEY;
	}
	if (end - p < 8 + 1)
		return RELM_ETRUNCATED;
	inv.expires_ms = get_be64(p);
	p += 8;
	mlen = *p++;
	if ((size_t)(end - p) < mlen)
		return RELM_ETRUNCATED;
	if (!mailbox_ok(p, mlen))
		return RELM_EMALFORMED;
	memcpy(inv.mailbox, p, mlen);
	inv.mailbox[mlen] = '\0';
	p += mlen;
	if (end - p < RELM_SIG_LEN)
		return RELM_ETRUNCATED;
	if (end - p > RELM_SIG_LEN)
		return RELM_EMALFORMED;
	memcpy(inv.sig, p, RELM_SIG_LEN);

	if (crypto_sign_verify_detached(inv.sig, msg,
	                                sig_input(msg, bin, (size_t)(p - bin)), inv.ipk) != 0)
		return RELM_EBADSIG;
	*out = inv;
	return 0;
}

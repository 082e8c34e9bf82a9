/*
 * successor.c — the successor statement codec and its two signatures
 * (successor.h, proto/revocation.md §3).
 */
#include <string.h>
#include <sodium.h>
#include "wire/successor.h"
#include "crypto/crypto.h"
#include "error.h"

static const char LABEL_OLD[] = "relm/v1/successor/old";
static const char LABEL_NEW[] = "relm/v1/successor/new";
enum {
	BODY_LEN = 1 + 32 + 32 + 8,          /* what both signatures cover */
	LABEL_MAX = 32,
};

/* label ‖ body, the message one signature covers; its length. */
static size_t signed_msg(uint8_t *msg, const char *label, const uint8_t body[BODY_LEN])
{
	size_t l = strlen(label);
	memcpy(msg, label, l);
	memcpy(msg + l, body, BODY_LEN);
	return l + BODY_LEN;
}

int relm_successor_sign(uint8_t out[RELM_SUCCESSOR_LEN], struct relm_successor *s,
                        const uint8_t old_sk[RELM_SIGN_SK_LEN],
                        const uint8_t new_sk[RELM_SIGN_SK_LEN], uint64_t seq)
{
	uint8_t msg[LABEL_MAX + BODY_LEN];
	size_t n;

	if (seq == 0 || memcmp(old_sk + 32, new_sk + 32, RELM_SIGN_PK_LEN) == 0)
		return RELM_EINVAL;
	out[0] = RELM_SUCCESSOR_VERSION;
	memcpy(out + 1, old_sk + 32, RELM_SIGN_PK_LEN);
	memcpy(out + 33, new_sk + 32, RELM_SIGN_PK_LEN);
	for (int i = 0; i < 8; i++)
		out[65 + i] = (uint8_t)(seq >> (56 - 8 * i));
	n = signed_msg(msg, LABEL_OLD, out);
	crypto_sign_detached(out + BODY_LEN, NULL, msg, n, old_sk);
	n = signed_msg(msg, LABEL_NEW, out);
	crypto_sign_detached(out + BODY_LEN + RELM_SIG_LEN, NULL, msg, n, new_sk);
	memcpy(s->old_ipk, out + 1, RELM_SIGN_PK_LEN);
	memcpy(s->new_ipk, out + 33, RELM_SIGN_PK_LEN);
	s->seq = seq;
	return 0;
}

int relm_successor_decode(struct relm_successor *out, const uint8_t *buf, size_t len)
{
	struct relm_successor s;
	uint8_t msg[LABEL_MAX + BODY_LEN];
	size_t n;

	if (len < 1)
		return RELM_ETRUNCATED;
	if (buf[0] != RELM_SUCCESSOR_VERSION)
		return RELM_EVERSION;
	if (len < RELM_SUCCESSOR_LEN)
		return RELM_ETRUNCATED;
	if (len > RELM_SUCCESSOR_LEN)
		return RELM_EMALFORMED;
	memcpy(s.old_ipk, buf + 1, RELM_SIGN_PK_LEN);
	memcpy(s.new_ipk, buf + 33, RELM_SIGN_PK_LEN);
	s.seq = 0;
	for (int i = 0; i < 8; i++)
		s.seq = s.seq << 8 | buf[65 + i];
	if (s.seq == 0 || memcmp(s.old_ipk, s.new_ipk, RELM_SIGN_PK_LEN) == 0)
		return RELM_EMALFORMED;
	if (!relm_ed25519_is_valid(s.old_ipk) || !relm_ed25519_is_valid(s.new_ipk))
		return RELM_EBADKEY;
	n = signed_msg(msg, LABEL_OLD, buf);
	if (crypto_sign_verify_detached(buf + BODY_LEN, msg, n, s.old_ipk) != 0)
		return RELM_EBADSIG;
	n = signed_msg(msg, LABEL_NEW, buf);
	if (crypto_sign_verify_detached(buf + BODY_LEN + RELM_SIG_LEN, msg, n, s.new_ipk) != 0)
		return RELM_EBADSIG;
	*out = s;
	return 0;
}

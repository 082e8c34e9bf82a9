/*
 * addr.c — mailbox addresses (addr.h, proto/wire.md §7).
 *
 *   addr = host ":" port [ "/" id ]
 *   host = 1*255 ( ALPHA / DIGIT / "." / "-" )  |  "[" IPv6 literal "]"
 *   port = 1..65535 in decimal, no sign, no leading zero
 *   id   = 43 base64url chars (no padding) = 32-byte Ed25519 public key
 *
 * The grammar is strict so that parse ∘ format is the identity: one
 * address, one spelling.  An IPv6 host is stored without its brackets (the
 * form the socket layer wants) and formatted back with them.  Pure: the
 * only library call beyond libsodium is inet_pton, which does no I/O.
 */
#include <string.h>
#include <stdio.h>
#include <arpa/inet.h>
#include <sodium.h>
#include "wire/addr.h"
#include "error.h"

#define ID_B64_LEN 43   /* base64url, no padding, of 32 bytes */

static int is_dns_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '-';
}

static int is_v6_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

/* The value of a base64url character, or -1. */
static int b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* The 32 bytes of a mailbox id's ID_B64_LEN base64url characters (no
 * padding), strictly: every character of the alphabet, and the last one's
 * two bits beyond the 256 zero, so that an id has one spelling.  Decoded
 * here rather than by sodium_base642bin, which is built to be constant
 * time for secrets and took ~3,300 instructions an id; an id is public,
 * and every step of the engine parses its relationship's address two or
 * three times (proto/wire.md §7; issue 19). */
static int b64url_id(uint8_t out[RELM_SIGN_PK_LEN], const char *s)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;

	for (size_t k = 0; k < ID_B64_LEN; k++) {
		int v = b64url_value(s[k]);
		if (v < 0)
			return RELM_EMALFORMED;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* 43 × 6 = 258 bits: 32 bytes and 2 bits that must be 0 */
	return o == RELM_SIGN_PK_LEN && (acc & ((1u << bits) - 1u)) == 0 ? 0 : RELM_EMALFORMED;
}

int relm_addr_parse(struct relm_addr *out, const char *s, size_t len)
{
	struct relm_addr a;
	size_t i = 0, hlen, plen = 0;
	uint32_t port = 0;
	uint8_t v6[16];

	memset(&a, 0, sizeof a);
	if (len > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', len);
		if (close == NULL)
			return RELM_EMALFORMED;
		hlen = (size_t)(close - s) - 1;
		if (hlen == 0 || hlen >= sizeof a.host)
			return RELM_EMALFORMED;
		for (size_t k = 0; k < hlen; k++)
			if (!is_v6_char(s[1 + k]))
				return RELM_EMALFORMED;
		memcpy(a.host, s + 1, hlen);
		if (inet_pton(AF_INET6, a.host, v6) != 1)
			return RELM_EMALFORMED;
		i = hlen + 2;
	} else {
		while (i < len && is_dns_char(s[i]))
			i++;
		hlen = i;
		if (hlen == 0 || hlen >= sizeof a.host)
			return RELM_EMALFORMED;
		memcpy(a.host, s, hlen);
	}

	if (i >= len || s[i] != ':')
		return RELM_EMALFORMED;
	i++;
	if (i >= len || s[i] == '0')     /* no port, or a leading zero (or port 0) */
		return RELM_EMALFORMED;
	while (i < len && s[i] >= '0' && s[i] <= '9' && plen < 5) {
		port = port * 10 + (uint32_t)(s[i] - '0');
		i++;
		plen++;
	}
	if (plen == 0 || port > 65535)
		return RELM_EMALFORMED;
	a.port = (uint16_t)port;

	if (i < len) {
		if (s[i] != '/' || len - i - 1 != ID_B64_LEN)
			return RELM_EMALFORMED;
		if (b64url_id(a.id, s + i + 1) != 0)
			return RELM_EMALFORMED;
		a.has_id = 1;
	}

	*out = a;
	return 0;
}

int relm_addr_format(char *out, size_t cap, const struct relm_addr *a)
{
	char id[ID_B64_LEN + 1] = "";
	size_t hlen = strnlen(a->host, sizeof a->host);
	int v6, n;

	if (hlen == 0 || hlen == sizeof a->host || a->port == 0)
		return RELM_EINVAL;
	v6 = memchr(a->host, ':', hlen) != NULL;
	if (a->has_id)
		sodium_bin2base64(id, sizeof id, a->id, sizeof a->id,
		                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	n = snprintf(out, cap, "%s%s%s:%u%s%s", v6 ? "[" : "", a->host, v6 ? "]" : "",
	             (unsigned)a->port, a->has_id ? "/" : "", id);
	if (n < 0 || (size_t)n >= cap)
		return RELM_EINVAL;
	return n;
}

/*
 * addr.h — mailbox addresses "host:port/<id>" (proto/wire.md §7), id = base64url
 * (no padding, 43 chars) of the mailbox's Ed25519 public key.  host is a
 * DNS name, an IPv4 literal, or an IPv6 literal in brackets.
 */
#ifndef RELM_ADDR_H
#define RELM_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"

struct relm_addr {
	char host[256];
	uint16_t port;
	uint8_t id[RELM_SIGN_PK_LEN];
	int has_id;                       /* "host:port" alone parses with has_id = 0 */
};

/* Parse "host:port" or "host:port/<id>" (strict: one spelling per address,
 * see proto/wire.md §7).  An IPv6 host is stored without its brackets.
 * Returns 0 or RELM_EMALFORMED; out is untouched on error. */
int relm_addr_parse(struct relm_addr *out, const char *s, size_t len);
/* Format; returns length written (without NUL) or RELM_EINVAL if cap is small. */
int relm_addr_format(char *out, size_t cap, const struct relm_addr *a);

#endif

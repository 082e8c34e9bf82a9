/*
 * guard.c — relm-web's security checks (guard.h says what and why).
 */
#include "web/guard.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

/* ---- the listen address -------------------------------------------------- */

int web_listen_parse(const char *spec, struct web_listen *out, const char **why)
{
	memset(out, 0, sizeof *out);
	const char *colon = strrchr(spec, ':');
	if (!colon || colon == spec) {
		*why = "expected HOST:PORT";
		return -1;
	}
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 0 || port > 65535) {
		*why = "the port must be a number from 0 to 65535";
		return -1;
	}
	size_t hlen = (size_t)(colon - spec);
	char host[64];
	if (hlen >= sizeof host) {
		*why = "the host is too long";
		return -1;
	}
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	out->port = (uint16_t)port;

	if (host[0] == '[') {
		/* [::1] is the only IPv6 loopback address. */
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->sa;
		if (hlen < 3 || host[hlen - 1] != ']') {
			*why = "an IPv6 address goes in brackets: [::1]:PORT";
			return -1;
		}
		host[hlen - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1) {
			*why = "not an IP address (names other than localhost are not looked up)";
			return -1;
		}
		if (!IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr)) {
			*why = "not a loopback address: relm-web listens on this machine only";
			return -1;
		}
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(out->port);
		out->salen = sizeof *s6;
		snprintf(out->host, sizeof out->host, "[::1]");
		return 0;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)&out->sa;
	if (!strcasecmp(host, "localhost"))
		snprintf(host, sizeof host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
		*why = strchr(host, ':') ? "an IPv6 address goes in brackets: [::1]:PORT"
					 : "not an IP address (names other than localhost are not looked up)";
		return -1;
	}
	if ((ntohl(s4->sin_addr.s_addr) >> 24) != 127) {
		*why = "not a loopback address: relm-web listens on this machine only";
		return -1;
	}
	s4->sin_family = AF_INET;
	s4->sin_port = htons(out->port);
	out->salen = sizeof *s4;
	/* The canonical form, which is what a browser sends back in Host. */
	inet_ntop(AF_INET, &s4->sin_addr, out->host, sizeof out->host);
	return 0;
}

/* ---- the guard ----------------------------------------------------------------- */

void web_guard_init(struct web_guard *g, const struct web_listen *l, uint16_t port,
		    const char *token)
{
	memset(g, 0, sizeof *g);
	snprintf(g->token, sizeof g->token, "%s", token);
	g->nhosts = 0;
	snprintf(g->hosts[g->nhosts++], WEB_HOST_MAX, "%s:%u", l->host, (unsigned)port);
	/* localhost resolves to 127.0.0.1 and ::1: a browser given
	 * http://localhost:PORT/ sends Host: localhost:PORT. */
	if (!strcmp(l->host, "127.0.0.1") || !strcmp(l->host, "[::1]"))
		snprintf(g->hosts[g->nhosts++], WEB_HOST_MAX, "localhost:%u", (unsigned)port);
	for (int i = 0; i < g->nhosts; i++) {
		/* origins[i] and hosts[i] are two fields of *g: build the
		 * origin by hand, not with snprintf of one field into another */
		size_t n = strlen(g->hosts[i]);
		if (n + 8 > sizeof g->origins[i])
			n = sizeof g->origins[i] - 8;
		memcpy(g->origins[i], "http://", 7);
		memcpy(g->origins[i] + 7, g->hosts[i], n);
		g->origins[i][7 + n] = '\0';
	}
	snprintf(g->cookie, sizeof g->cookie, "relm_web_%u", (unsigned)port);
}

void web_guard_clear(struct web_guard *g)
{
	sodium_memzero(g->token, sizeof g->token);
}

/* v is one of list[0..n) (case-insensitive: host names are)?  NULL is not. */
static int listed(const char (*list)[WEB_HOST_MAX + 8], int n, const char *v)
{
	for (int i = 0; v && i < n; i++)
		if (!strcasecmp(v, list[i]))
			return 1;
	return 0;
}

int web_host_ok(const struct web_guard *g, const char *host)
{
	return listed(g->hosts, g->nhosts, host);
}

int web_origin_ok(const struct web_guard *g, const char *origin)
{
	return listed(g->origins, g->nhosts, origin);
}

int web_token_ok(const struct web_guard *g, const char *presented)
{
	if (!presented || strlen(presented) != WEB_TOKEN_LEN)
		return 0;
	return sodium_memcmp(presented, g->token, WEB_TOKEN_LEN) == 0;
}

void web_token_new(char out[WEB_TOKEN_LEN + 1])
{
	unsigned char raw[WEB_TOKEN_BYTES];
	randombytes_buf(raw, sizeof raw);
	sodium_bin2base64(out, WEB_TOKEN_LEN + 1, raw, sizeof raw,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof raw);
}

void web_log_safe(char *out, size_t cap, const char *s)
{
	size_t i = 0;
	if (!cap)
		return;
	for (; s && s[i] && i + 1 < cap; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	out[i] = '\0';
}

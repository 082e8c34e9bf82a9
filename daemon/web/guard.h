/*
 * guard.h — relm-web's security checks, as pure functions of the request's
 * headers and what relm-web was started with (proto/web.md §2).
 *
 * relm-web serves one person's relmd to one browser on the same machine.
 * What stands between it and everything else that can reach a loopback
 * port (other users' programs, web pages the person has open, a page that
 * rebinds its DNS name to 127.0.0.1):
 *
 *   - the listen address is loopback (web_listen_parse refuses any other);
 *   - every request carries the access token: the cookie set on the first
 *     load, or once, on GET /, the token in the URL;
 *   - the Host header names the listen address (DNS rebinding: a page of
 *     evil.example that resolves to 127.0.0.1 sends Host: evil.example);
 *   - a POST carries an Origin, and it is the page's own; any request
 *     whose Origin is another is refused (other pages, including other
 *     ports of 127.0.0.1, which browsers count as the same site).
 *
 * Nothing here does I/O: http.c calls these on each request, and
 * tests/check_web.c tests them directly as well as through the server.
 */
#ifndef RELM_WEB_GUARD_H
#define RELM_WEB_GUARD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* relm-web's limits, each with its reason. */
enum {
	WEB_TOKEN_BYTES = 32,           /* 256 bits: not guessable through a socket */
	WEB_TOKEN_LEN = 43,             /* base64url of 32 bytes, without padding */
	WEB_BODY_MAX = 1048576,         /* relmd's own request line limit (proto/api.md §1) */
	WEB_QR_TEXT_MAX = 4096,         /* invite.accept's longest invite */
	WEB_CONN_MAX = 64,              /* one browser needs a handful; half relmd's per-uid cap */
	WEB_IDLE_TIMEOUT_S = 30,        /* a client silent this long is closed */
	WEB_HOST_MAX = 80,              /* "localhost:65535", "[::1]:65535", "127.x.y.z:p" */
	WEB_HOSTS = 2,                  /* the literal address, and localhost */
};

/* Where relm-web listens: a loopback address and a port (0 = any free). */
struct web_listen {
	struct sockaddr_storage sa;
	socklen_t salen;
	char host[48];                  /* as it goes in a URL: 127.0.0.1, [::1] */
	uint16_t port;
};

/* Parse HOST:PORT.  HOST is an IPv4 address in 127.0.0.0/8, [::1], or
 * localhost (= 127.0.0.1); PORT 0..65535.  0, or -1 with *why set to a
 * sentence (a non-loopback address is refused, not corrected). */
int web_listen_parse(const char *spec, struct web_listen *out, const char **why);

/* What requests are checked against, fixed once the port is bound. */
struct web_guard {
	char token[WEB_TOKEN_LEN + 1];
	char hosts[WEB_HOSTS][WEB_HOST_MAX + 8];   /* accepted Host values */
	char origins[WEB_HOSTS][WEB_HOST_MAX + 8]; /* "http://" + each */
	int nhosts;
	char cookie[32];                /* relm_web_<port>: one per instance */
};

/* Fill g for listen address l bound to port (the real one, never 0) and
 * token (WEB_TOKEN_LEN characters, copied). */
void web_guard_init(struct web_guard *g, const struct web_listen *l, uint16_t port,
		    const char *token);
/* Wipe the token. */
void web_guard_clear(struct web_guard *g);

/* 1 if the Host header value names the listen address (case-insensitive
 * host name, exact port), else 0.  NULL (no Host header) is 0. */
int web_host_ok(const struct web_guard *g, const char *host);
/* 1 if origin is the page's own origin, else 0.  NULL is 0. */
int web_origin_ok(const struct web_guard *g, const char *origin);
/* 1 if presented is the token (compared in constant time), else 0. */
int web_token_ok(const struct web_guard *g, const char *presented);

/* A fresh token: WEB_TOKEN_BYTES from the system's randomness in base64url
 * without padding, into out (WEB_TOKEN_LEN + 1 bytes).  The raw bytes are
 * wiped. */
void web_token_new(char out[WEB_TOKEN_LEN + 1]);

/* Copy s into out (cap bytes, NUL-terminated) for a log line: at most
 * cap - 1 bytes, every byte outside printable ASCII as '?'.  Headers are
 * the client's; a log line must not carry its control characters. */
void web_log_safe(char *out, size_t cap, const char *s);

#endif

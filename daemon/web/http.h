/*
 * http.h — relm-web's HTTP server: routes, the security checks on every
 * request, and the responses' security headers (proto/web.md).
 *
 * HTTP/1.1 is libmicrohttpd's: the request parser, header and connection
 * limits, idle timeouts.  It runs one thread per connection, so a handler
 * may block — on relmd for a POST /api, on the event stream for GET
 * /events — without holding up other requests; relm-web's connection cap
 * bounds the threads.
 *
 * Routes (after the checks of guard.h, in this order: Host, token, Origin):
 *   GET  /            the page (index.html); with ?token= it sets the cookie
 *   GET  /<asset>     the page's other files, compiled in (assets.h)
 *   GET  /events      relmd's events as Server-Sent Events (sse.h)
 *   POST /api         one JSON-RPC request to relmd, its reply (bridge.h)
 *   POST /qr          a text as a QR code in SVG (qr.h)
 */
#ifndef RELM_WEB_HTTP_H
#define RELM_WEB_HTTP_H

#include <stdint.h>

#include "web/guard.h"

struct web_config {
	struct web_listen listen;
	const char *socket;             /* relmd's socket */
	unsigned idle_timeout_s;        /* WEB_IDLE_TIMEOUT_S unless told */
	char token[WEB_TOKEN_LEN + 1];  /* copied into the server; wipe yours */
};

struct web_server;

/* Bind cfg->listen, start serving.  0 with *out set, or -errno (binding:
 * -EADDRINUSE...; -EIO when libmicrohttpd would not start). */
int web_server_start(struct web_server **out, const struct web_config *cfg);
/* The port bound (the free one chosen when the config said 0). */
uint16_t web_server_port(const struct web_server *s);
/* The listen host as it goes in a URL (127.0.0.1, [::1]). */
const char *web_server_host(const struct web_server *s);
/* Stop: end every event stream, wait for the connection threads, free.
 * NULL is a no-op. */
void web_server_stop(struct web_server *s);

#endif

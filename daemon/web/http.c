/*
 * http.c — relm-web's HTTP server (http.h): libmicrohttpd, the checks of
 * guard.h on every request, the routes, and the security headers on every
 * response relm-web writes.
 *
 * A request is refused as early as it can be: on the first call of the
 * access handler, before any body is read, with the reason in the log (the
 * client's header values made printable, never the token).  Refusals and
 * errors carry a JSON body shaped like a JSON-RPC error, so the page shows
 * relm-web's refusals and relmd's errors alike (proto/web.md §3).
 */
#include "web/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <sodium.h>

#include "log.h"
#include "web/assets.h"
#include "web/bridge.h"
#include "web/qr.h"
#include "web/sse.h"

/* default-src 'self' with nothing inline and no eval; the page is never
 * framed, posts no forms elsewhere, and loads nothing from outside. */
#define WEB_CSP "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " \
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; " \
	"form-action 'self'; frame-ancestors 'none'"

enum { SSE_BLOCK = 64 * 1024 };         /* bytes handed to libmicrohttpd per read */

struct web_server {
	struct MHD_Daemon *mhd;
	struct web_guard guard;
	char socket[108];
	char host[48];
	uint16_t port;
	int keepalive_ms;
	int wake[2];                    /* written once at stop: ends every stream */
};

enum route {
	ROUTE_NONE,
	ROUTE_API,
	ROUTE_QR,
};

/* A POST being read. */
struct request {
	enum route route;
	char *body;
	size_t len, cap;
};

/* ---- responses ------------------------------------------------------------ */

enum {
	SET_COOKIE = 1u << 0,
};

/* Queue a response with every security header.  mode as for
 * MHD_create_response_from_buffer. */
static enum MHD_Result respond(struct web_server *s, struct MHD_Connection *c, unsigned status,
			       const char *type, const void *data, size_t len,
			       enum MHD_ResponseMemoryMode mode, unsigned flags)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)(uintptr_t)data, mode);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Content-Security-Policy", WEB_CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
	MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, "Allow", "GET, HEAD, POST");
	if (flags & SET_COOKIE) {
		char cookie[160];
		snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Strict",
			 s->guard.cookie, s->guard.token);
		MHD_add_response_header(r, "Set-Cookie", cookie);
		sodium_memzero(cookie, sizeof cookie);
	}
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* An error as {"jsonrpc":"2.0","id":null,"error":{code,message,data:{code}}}. */
static enum MHD_Result respond_error(struct web_server *s, struct MHD_Connection *c,
				     unsigned status, int code, const char *name,
				     const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static enum MHD_Result respond_error(struct web_server *s, struct MHD_Connection *c,
				     unsigned status, int code, const char *name,
				     const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	cJSON *j = cJSON_CreateObject();
	cJSON *e = cJSON_CreateObject();
	cJSON *d = cJSON_CreateObject();
	char *out = NULL;
	if (j && e && d) {
		cJSON_AddStringToObject(d, "code", name);
		cJSON_AddNumberToObject(e, "code", code);
		cJSON_AddStringToObject(e, "message", msg);
		cJSON_AddItemToObject(e, "data", d);
		d = NULL;
		cJSON_AddStringToObject(j, "jsonrpc", "2.0");
		cJSON_AddNullToObject(j, "id");
		cJSON_AddItemToObject(j, "error", e);
		e = NULL;
		out = cJSON_PrintUnformatted(j);
	}
	cJSON_Delete(d);
	cJSON_Delete(e);
	cJSON_Delete(j);
	if (!out)
		return MHD_NO;
	enum MHD_Result r = respond(s, c, status, "application/json", out, strlen(out),
				    MHD_RESPMEM_MUST_COPY, 0);
	cJSON_free(out);
	return r;
}

/* Refuse a request: log why (the client's values made printable) and
 * answer status with the error body. */
static enum MHD_Result refuse(struct web_server *s, struct MHD_Connection *c, const char *method,
			      const char *url, unsigned status, const char *name,
			      const char *why, const char *detail)
{
	char u[128], d[128];
	web_log_safe(u, sizeof u, url);
	web_log_safe(d, sizeof d, detail ? detail : "");
	log_info("refused %s %s: %s%s%s%s", method, u, why, detail ? " (" : "", d,
		 detail ? ")" : "");
	return respond_error(s, c, status, -32000, name, "relm-web refused the request: %s", why);
}

/* A page opened without the token: say where the right URL comes from. */
static const char no_token_page[] =
	"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
	"<title>relm — access token needed</title></head><body>"
	"<h1>Access token needed</h1>"
	"<p>relm-web answers only the browser that opened the address it printed "
	"when it started (it carries an access token). Open that address, or run "
	"<code>relmctl web</code> again.</p></body></html>\n";

/* ---- routes ---------------------------------------------------------------- */

static const struct web_asset *asset_find(const char *path)
{
	for (unsigned i = 0; i < web_asset_count; i++)
		if (!strcmp(web_assets[i].path, path))
			return &web_assets[i];
	return NULL;
}

static enum MHD_Result serve_events(struct web_server *s, struct MHD_Connection *c,
				    const char *url)
{
	const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
	const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
	/* The header wins: the browser sends it on its own reconnects, when
	 * the URL may still carry an older ?since=. */
	const char *v = last && *last ? last : q;
	long long since = -1;
	if (v && (since = sse_parse_seq(v)) < 0)
		return refuse(s, c, "GET", url, MHD_HTTP_BAD_REQUEST, "bad_request",
			      "Last-Event-ID or since is not an event seq", v);
	int err = 0;
	char *reply = NULL;
	struct sse *st = sse_open(s->socket, since, s->keepalive_ms, s->wake[0], &err, &reply);
	if (!st) {
		if (reply) {
			/* relmd refused the subscription (its connection caps):
			 * its own error, as it sent it. */
			enum MHD_Result r = respond(s, c, MHD_HTTP_SERVICE_UNAVAILABLE,
						    "application/json", reply, strlen(reply),
						    MHD_RESPMEM_MUST_FREE, 0);
			return r;
		}
		log_warn("event stream: relmd at %s: %s", s->socket, strerror(-err));
		return respond_error(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, -32000, "relmd_unavailable",
				     "relmd is not reachable at %s: %s", s->socket, strerror(-err));
	}
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SSE_BLOCK,
								   sse_read, st, sse_free);
	if (!r) {
		sse_free(st);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "text/event-stream; charset=utf-8");
	MHD_add_response_header(r, "Content-Security-Policy", WEB_CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* Only whitespace from p to end? */
static int blank(const char *p, const char *end)
{
	for (; p < end; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
			return 0;
	return 1;
}

static enum MHD_Result serve_api(struct web_server *s, struct MHD_Connection *c,
				 const struct request *rq)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(rq->body ? rq->body : "", rq->len, &end, 0);
	if (!j || !blank(end, rq->body + rq->len)) {
		cJSON_Delete(j);
		return respond_error(s, c, MHD_HTTP_BAD_REQUEST, -32700, "parse_error",
				     "parse error: the body is not one JSON text");
	}
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "method");
	const char *why = NULL;
	if (!cJSON_IsObject(j))
		why = "one request object per POST (no batches)";
	else if (!cJSON_GetObjectItemCaseSensitive(j, "id"))
		why = "a request needs an id (a notification would get no reply)";
	else if (cJSON_IsString(m) && !strcmp(m->valuestring, "subscribe"))
		why = "events come from GET /events, not from subscribe";
	if (why) {
		cJSON_Delete(j);
		return respond_error(s, c, MHD_HTTP_BAD_REQUEST, -32600, "invalid_request",
				     "invalid request: %s", why);
	}
	/* Printed again, unformatted: one line, whatever the body's layout. */
	char *line = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!line)
		return MHD_NO;
	char *reply = NULL;
	size_t rlen = 0;
	int err = bridge_call(s->socket, line, strlen(line), &reply, &rlen);
	cJSON_free(line);
	if (err) {
		log_warn("POST /api: relmd at %s: %s", s->socket, strerror(-err));
		return respond_error(s, c, MHD_HTTP_BAD_GATEWAY, -32000, "relmd_unavailable",
				     "relmd is not reachable at %s: %s", s->socket, strerror(-err));
	}
	return respond(s, c, MHD_HTTP_OK, "application/json", reply, rlen,
		       MHD_RESPMEM_MUST_FREE, 0);
}

static enum MHD_Result serve_qr(struct web_server *s, struct MHD_Connection *c,
				const struct request *rq)
{
	char *svg = NULL;
	size_t n = 0;
	int err = qr_svg(rq->body, rq->len, &svg, &n);
	if (err == -ENOMEM)
		return MHD_NO;
	if (err)
		return respond_error(s, c, MHD_HTTP_BAD_REQUEST, -32602, "invalid_argument",
				     "the text must be 1 to %d bytes and fit a QR code",
				     WEB_QR_TEXT_MAX);
	return respond(s, c, MHD_HTTP_OK, "image/svg+xml", svg, n, MHD_RESPMEM_MUST_FREE, 0);
}

/* ---- the access handler ---------------------------------------------------------- */

static int is_get(const char *m)
{
	return !strcmp(m, MHD_HTTP_METHOD_GET) || !strcmp(m, MHD_HTTP_METHOD_HEAD);
}

/* The first call for a request: every check, then either a response or a
 * request struct that collects the body. */
static enum MHD_Result first_call(struct web_server *s, struct MHD_Connection *c, const char *url,
				  const char *method, void **con_cls)
{
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	if (!web_host_ok(&s->guard, host))
		return refuse(s, c, method, url, MHD_HTTP_FORBIDDEN, "host",
			      "foreign Host (DNS rebinding?)", host ? host : "none");

	unsigned flags = 0;
	const char *cookie = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, s->guard.cookie);
	if (!web_token_ok(&s->guard, cookie)) {
		const char *t = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
		if (is_get(method) && !strcmp(url, "/") && web_token_ok(&s->guard, t)) {
			flags |= SET_COOKIE;
		} else if (is_get(method) && !strcmp(url, "/")) {
			log_info("refused %s /: %s", method, t ? "wrong token" : "no token");
			return respond(s, c, MHD_HTTP_FORBIDDEN, "text/html; charset=utf-8",
				       no_token_page, sizeof no_token_page - 1,
				       MHD_RESPMEM_PERSISTENT, 0);
		} else {
			return refuse(s, c, method, url, MHD_HTTP_FORBIDDEN, "token",
				      cookie ? "wrong token" : "no token", NULL);
		}
	}

	int post = !strcmp(method, MHD_HTTP_METHOD_POST);
	const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	if ((origin || post) && !web_origin_ok(&s->guard, origin))
		return refuse(s, c, method, url, MHD_HTTP_FORBIDDEN, "origin",
			      "foreign Origin (another page?)", origin ? origin : "none");

	enum route route = ROUTE_NONE;
	const struct web_asset *a = NULL;
	if (!strcmp(url, "/api"))
		route = ROUTE_API;
	else if (!strcmp(url, "/qr"))
		route = ROUTE_QR;
	else if (strcmp(url, "/events") && !(a = asset_find(url)))
		return refuse(s, c, method, url, MHD_HTTP_NOT_FOUND, "not_found", "no such path",
			      NULL);
	if (route == ROUTE_NONE && !is_get(method))
		return refuse(s, c, method, url, MHD_HTTP_METHOD_NOT_ALLOWED, "method",
			      "method not allowed", NULL);
	if (route != ROUTE_NONE && !post)
		return refuse(s, c, method, url, MHD_HTTP_METHOD_NOT_ALLOWED, "method",
			      "method not allowed", NULL);
	if (a)
		return respond(s, c, MHD_HTTP_OK, a->type, a->data, a->len, MHD_RESPMEM_PERSISTENT,
			       flags);
	if (route == ROUTE_NONE)
		return serve_events(s, c, url);

	const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	const char *want = route == ROUTE_API ? "application/json" : "text/plain";
	if (!type || strncasecmp(type, want, strlen(want)) ||
	    (type[strlen(want)] && type[strlen(want)] != ';'))
		return refuse(s, c, method, url, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "content_type",
			      route == ROUTE_API ? "the body must be application/json"
						 : "the body must be text/plain", type);
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	if (cl && strtoull(cl, NULL, 10) > WEB_BODY_MAX)
		return refuse(s, c, method, url, MHD_HTTP_CONTENT_TOO_LARGE, "too_big",
			      "body over 1 MiB", cl);
	struct request *rq = calloc(1, sizeof *rq);
	if (!rq)
		return MHD_NO;
	rq->route = route;
	*con_cls = rq;
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct web_server *s = cls;
	struct request *rq = *con_cls;
	(void)version;
	if (!rq)
		return first_call(s, c, url, method, con_cls);
	if (*upload_size) {
		size_t n = *upload_size;
		if (rq->len + n > WEB_BODY_MAX) {
			/* No Content-Length (chunked) and over the limit: drop
			 * the connection rather than read on. */
			log_info("refused POST %s: body over 1 MiB (chunked); closing", url);
			return MHD_NO;
		}
		if (rq->len + n > rq->cap) {
			size_t cap = rq->cap ? rq->cap : 4096;
			while (cap < rq->len + n)
				cap *= 2;
			char *p = realloc(rq->body, cap + 1);
			if (!p)
				return MHD_NO;
			rq->body = p;
			rq->cap = cap;
		}
		memcpy(rq->body + rq->len, upload, n);
		rq->len += n;
		rq->body[rq->len] = '\0';
		*upload_size = 0;
		return MHD_YES;
	}
	return rq->route == ROUTE_API ? serve_api(s, c, rq) : serve_qr(s, c, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;
	(void)cls;
	(void)c;
	(void)toe;
	if (rq) {
		free(rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	(void)cls;
	vsnprintf(line, sizeof line, fmt, ap);
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_info("http: %s", line);
}

/* ---- start and stop ---------------------------------------------------------------- */

int web_server_start(struct web_server **out, const struct web_config *cfg)
{
	struct web_server *s = calloc(1, sizeof *s);
	int fd = -1, err;
	if (!s)
		return -ENOMEM;
	s->wake[0] = s->wake[1] = -1;
	snprintf(s->socket, sizeof s->socket, "%s", cfg->socket);
	snprintf(s->host, sizeof s->host, "%s", cfg->listen.host);
	unsigned idle = cfg->idle_timeout_s ? cfg->idle_timeout_s : WEB_IDLE_TIMEOUT_S;
	/* A keepalive three times per idle timeout keeps a quiet stream open
	 * and finds a browser that went away. */
	s->keepalive_ms = (int)(idle * 1000 / 3);
	if (s->keepalive_ms < 200)
		s->keepalive_ms = 200;
	if (pipe2(s->wake, O_CLOEXEC) < 0) {
		err = -errno;
		goto fail;
	}
	/* Bound here, not by libmicrohttpd, so the port is known (and the
	 * guard complete) before the first request can arrive. */
	fd = socket(cfg->listen.sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		goto fail;
	}
	if (bind(fd, (const struct sockaddr *)&cfg->listen.sa, cfg->listen.salen) < 0 ||
	    listen(fd, 64) < 0) {
		err = -errno;
		goto fail;
	}
	struct sockaddr_storage bound;
	socklen_t blen = sizeof bound;
	if (getsockname(fd, (struct sockaddr *)&bound, &blen) < 0) {
		err = -errno;
		goto fail;
	}
	s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
						    : ((struct sockaddr_in *)&bound)->sin_port);
	web_guard_init(&s->guard, &cfg->listen, s->port, cfg->token);
	unsigned mflags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			  MHD_USE_POLL | MHD_USE_ERROR_LOG;
	if (cfg->listen.sa.ss_family == AF_INET6)
		mflags |= MHD_USE_IPv6;
	s->mhd = MHD_start_daemon(mflags, 0, NULL, NULL, on_request, s,
				  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
				  MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)WEB_CONN_MAX,
				  MHD_OPTION_CONNECTION_TIMEOUT, idle,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				  MHD_OPTION_END);
	if (!s->mhd) {
		err = -EIO;
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (s->wake[0] >= 0)
		close(s->wake[0]);
	if (s->wake[1] >= 0)
		close(s->wake[1]);
	web_guard_clear(&s->guard);
	free(s);
	return err;
}

uint16_t web_server_port(const struct web_server *s)
{
	return s->port;
}

const char *web_server_host(const struct web_server *s)
{
	return s->host;
}

void web_server_stop(struct web_server *s)
{
	if (!s)
		return;
	/* Never read: from now on every stream's poll sees it readable. */
	if (write(s->wake[1], "x", 1) < 0)
		log_warn("cannot wake the event streams: %s", strerror(errno));
	MHD_stop_daemon(s->mhd);
	close(s->wake[0]);
	close(s->wake[1]);
	web_guard_clear(&s->guard);
	free(s);
}

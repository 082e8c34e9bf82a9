/*
 * check_web.c — relm-web's HTTP bridge, through its socket, with a real
 * relmd behind it (and, for the event stream, a second relmd and a mailbox
 * so there is a relationship to make events with).
 *
 * One TCase per concept: the pure checks (guard.c), the start-up line and
 * the listen address, the token, Host, Origin, bad requests, security
 * headers on every kind of response, slow clients and the connection cap,
 * the event stream's resume with Last-Event-ID, relmd being away, QR codes.
 * Requests are written by hand (raw bytes on a TCP socket), so a test can
 * send what no browser would.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "util_daemon.h"
#include "util_web.h"
#include "web/guard.h"

static const char create_req[] =
	"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"proton.create\",\"params\":{\"label\":\"work\"}}";

/* ---- fixtures ---------------------------------------------------------------------- */

static void base_up(void) { td_base_new("web"); }
static void base_down(void) { td_base_free(); }
static void kill_all(void) { td_kill_all(); }

/* ---- guard: the pure checks ------------------------------------------------------------ */

START_TEST(listen_loopback_only)
{
	struct web_listen l;
	const char *why = NULL;
	static const char *ok[] = { "127.0.0.1:0", "127.0.0.1:8080", "127.1.2.3:65535",
				    "localhost:9", "LOCALHOST:9", "[::1]:5" };
	static const char *bad[] = { "0.0.0.0:80", "192.168.1.10:80", "10.0.0.1:1", "[::]:1",
				     "[::ffff:127.0.0.1]:1", "example.com:80", "127.0.0.1",
				     "127.0.0.1:70000", "127.0.0.1:-1", "127.0.0.1:8x", ":80",
				     "[::1:5", "::1:5", "" };
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
		ck_assert_msg(web_listen_parse(ok[i], &l, &why) == 0, "%s refused: %s", ok[i], why);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		why = NULL;
		ck_assert_msg(web_listen_parse(bad[i], &l, &why) < 0, "%s accepted", bad[i]);
		ck_assert_ptr_nonnull(why);
	}
	ck_assert_int_eq(web_listen_parse("localhost:7", &l, &why), 0);
	ck_assert_str_eq(l.host, "127.0.0.1");
	ck_assert_int_eq(l.port, 7);
	ck_assert_int_eq(web_listen_parse("[::1]:7", &l, &why), 0);
	ck_assert_str_eq(l.host, "[::1]");
}
END_TEST

START_TEST(guard_host_origin_token)
{
	struct web_listen l;
	const char *why;
	struct web_guard g;
	char tok[WEB_TOKEN_LEN + 1], other[WEB_TOKEN_LEN + 1];
	web_token_new(tok);
	web_token_new(other);
	ck_assert_uint_eq(strlen(tok), WEB_TOKEN_LEN);
	ck_assert_str_ne(tok, other);
	ck_assert_uint_eq(strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
			  WEB_TOKEN_LEN);
	ck_assert_int_eq(web_listen_parse("127.0.0.1:0", &l, &why), 0);
	web_guard_init(&g, &l, 4321, tok);
	ck_assert(web_host_ok(&g, "127.0.0.1:4321"));
	ck_assert(web_host_ok(&g, "localhost:4321"));
	ck_assert(web_host_ok(&g, "LocalHost:4321"));
	ck_assert(!web_host_ok(&g, NULL));
	ck_assert(!web_host_ok(&g, "127.0.0.1"));
	ck_assert(!web_host_ok(&g, "127.0.0.1:4322"));
	ck_assert(!web_host_ok(&g, "127.0.0.1:43210"));
	ck_assert(!web_host_ok(&g, "evil.example:4321"));
	ck_assert(!web_host_ok(&g, "127.0.0.1:4321.evil.example"));
	ck_assert(web_origin_ok(&g, "http://127.0.0.1:4321"));
	ck_assert(web_origin_ok(&g, "http://localhost:4321"));
	ck_assert(!web_origin_ok(&g, NULL));
	ck_assert(!web_origin_ok(&g, "null"));
	ck_assert(!web_origin_ok(&g, "https://127.0.0.1:4321"));
	ck_assert(!web_origin_ok(&g, "http://127.0.0.1:4322"));
	ck_assert(!web_origin_ok(&g, "http://127.0.0.1:4321/"));
	ck_assert(!web_origin_ok(&g, "http://evil.example:4321"));
	ck_assert(web_token_ok(&g, tok));
	ck_assert(!web_token_ok(&g, other));
	ck_assert(!web_token_ok(&g, NULL));
	ck_assert(!web_token_ok(&g, ""));
	char longer[WEB_TOKEN_LEN + 2];
	snprintf(longer, sizeof longer, "%sA", tok);
	ck_assert(!web_token_ok(&g, longer));
	longer[WEB_TOKEN_LEN - 1] = '\0';
	ck_assert(!web_token_ok(&g, longer));
	ck_assert_str_eq(g.cookie, "relm_web_4321");
	/* Over [::1] the literal host and localhost. */
	ck_assert_int_eq(web_listen_parse("[::1]:0", &l, &why), 0);
	web_guard_init(&g, &l, 80, tok);
	ck_assert(web_host_ok(&g, "[::1]:80"));
	ck_assert(web_host_ok(&g, "localhost:80"));
	ck_assert(!web_host_ok(&g, "127.0.0.1:80"));
	/* 127.0.0.2 is not what localhost resolves to. */
	ck_assert_int_eq(web_listen_parse("127.0.0.2:0", &l, &why), 0);
	web_guard_init(&g, &l, 80, tok);
	ck_assert(web_host_ok(&g, "127.0.0.2:80"));
	ck_assert(!web_host_ok(&g, "localhost:80"));
	web_guard_clear(&g);
	ck_assert(!web_token_ok(&g, tok));

	char safe[8];
	web_log_safe(safe, sizeof safe, "a\r\nb\x1b[c");
	ck_assert_str_eq(safe, "a??b?[c");
	web_log_safe(safe, sizeof safe, "0123456789");
	ck_assert_str_eq(safe, "0123456");
}
END_TEST

/* ---- start-up ----------------------------------------------------------------------------- */

START_TEST(startup_line)
{
	struct tw_web w;
	tw_web_start(&w, "30");
	/* http://127.0.0.1:PORT/?token=<43 base64url> and nothing else. */
	char want[80];
	snprintf(want, sizeof want, "http://127.0.0.1:%d/?token=", w.port);
	ck_assert_int_eq(strncmp(w.url, want, strlen(want)), 0);
	ck_assert_uint_eq(strlen(w.token), WEB_TOKEN_LEN);
	/* A second relm-web: another port, another token. */
	struct tw_web w2 = w;
	td_dir_new(w2.dir, sizeof w2.dir);
	ck_assert_int_eq(tw_web_exec(&w2, w.relmd.sock, "30", "127.0.0.1:0"), 0);
	ck_assert_int_ne(w2.port, w.port);
	ck_assert_str_ne(w2.token, w.token);
	/* SIGTERM: exit 0, and stdout held the one line only. */
	ck_assert_int_eq(td_stop(&w.pid, SIGTERM, 5000), 0);
	FILE *f = fopen(w.out, "r");
	char line[200];
	int lines = 0;
	while (f && fgets(line, sizeof line, f))
		lines++;
	if (f)
		fclose(f);
	ck_assert_int_eq(lines, 1);
	/* The token is never logged. */
	size_t n;
	int eof;
	int fd = open(w.log, O_RDONLY);
	char *log = tw_read_all(fd, 200, &n, &eof);
	close(fd);
	ck_assert_ptr_null(strstr(log, w.token));
	free(log);
	td_kill_all();
}
END_TEST

START_TEST(startup_refusals)
{
	struct tw_web w;
	memset(&w, 0, sizeof w);
	td_dir_new(w.dir, sizeof w.dir);
	ck_assert_int_eq(td_mbox_start(&w.mbox, w.dir, "mailbox", 0), 0);
	ck_assert_int_eq(td_relmd_start(&w.relmd, w.dir, "alice", w.mbox.port), 0);
	static const char *bad[] = { "0.0.0.0:0", "192.168.1.10:0", "[::]:0", "example.com:0" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		int st = tw_web_status(&w, w.relmd.sock, bad[i]);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 2, "--listen %s: status %d", bad[i], st);
		struct stat sb;
		ck_assert_int_eq(stat(w.out, &sb), 0);
		ck_assert_int_eq(sb.st_size, 0);              /* no URL printed */
	}
	/* No relmd there: exit 1, no URL. */
	char nosock[TD_PATH_MAX + 16];
	snprintf(nosock, sizeof nosock, "%s/none.sock", w.dir);
	int st = tw_web_status(&w, nosock, "127.0.0.1:0");
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	td_kill_all();
}
END_TEST

/* ---- the token ----------------------------------------------------------------------------------- */

START_TEST(token_required)
{
	struct tw_web w;
	tw_web_start(&w, "30");
	/* The page without the token, or with a wrong one: refused, and says why. */
	struct tw_resp r = tw_request(&w, "GET", "/", 0, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 403);
	ck_assert_ptr_nonnull(strstr(r.body, "Access token needed"));
	ck_assert_ptr_null(tw_hdr(&r, "Set-Cookie"));
	tw_resp_free(&r);
	r = tw_request(&w, "GET", "/?token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 403);
	ck_assert_ptr_null(tw_hdr(&r, "Set-Cookie"));
	tw_resp_free(&r);

	/* With it: the page and the cookie. */
	char path[80], want[120];
	snprintf(path, sizeof path, "/?token=%s", w.token);
	r = tw_request(&w, "GET", path, 0, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "<script type=\"module\" src=\"/app.js\">"));
	snprintf(want, sizeof want, "relm_web_%d=%s; Path=/; HttpOnly; SameSite=Strict", w.port, w.token);
	ck_assert_str_eq(tw_hdr(&r, "Set-Cookie"), want);
	tw_resp_free(&r);

	/* Everything else needs the cookie; the token in the URL is for / only. */
	r = tw_request(&w, "GET", "/app.js", 0, NULL, NULL, 0);
	tw_assert_refused(&r, 403, "token");
	tw_resp_free(&r);
	snprintf(path, sizeof path, "/app.js?token=%s", w.token);
	r = tw_request(&w, "GET", path, 0, NULL, NULL, 0);
	tw_assert_refused(&r, 403, "token");
	tw_resp_free(&r);
	r = tw_request(&w, "GET", "/app.js", 0, "Cookie: relm_web_1=x\r\n", NULL, 0);
	tw_assert_refused(&r, 403, "token");
	tw_resp_free(&r);
	char other[120];
	snprintf(other, sizeof other, "Cookie: relm_web_%d=%.42sB\r\n", w.port, w.token);
	if (w.token[42] == 'B')
		other[strlen(other) - 3] = 'C';
	r = tw_request(&w, "GET", "/app.js", 0, other, NULL, 0);
	tw_assert_refused(&r, 403, "token");
	tw_resp_free(&r);
	r = tw_request(&w, "GET", "/app.js", TW_COOKIE, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(tw_hdr(&r, "Content-Type"), "text/javascript; charset=utf-8");
	tw_resp_free(&r);

	/* A call without the cookie does nothing. */
	r = tw_api(&w, TW_ORIGIN | TW_JSON, create_req);
	tw_assert_refused(&r, 403, "token");
	tw_resp_free(&r);
	r = tw_request(&w, "GET", "/events", 0, NULL, NULL, 0);
	tw_assert_refused(&r, 403, "token");
	tw_resp_free(&r);
	ck_assert_int_eq(tw_protons(&w), 0);
	r = tw_api(&w, TW_GOOD, create_req);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "\"result\":{\"proton\":"));
	tw_resp_free(&r);
	ck_assert_int_eq(tw_protons(&w), 1);
	td_kill_all();
}
END_TEST

/* ---- Host and Origin ---------------------------------------------------------------------------- */

/* A GET with a Host line of our own choosing. */
static struct tw_resp get_host(const struct tw_web *w, const char *host)
{
	char head[512];
	int n = snprintf(head, sizeof head, "GET /app.js HTTP/1.1\r\n%s%s%sCookie: relm_web_%d=%s\r\n"
			 "Connection: close\r\n\r\n", host ? "Host: " : "", host ? host : "",
			 host ? "\r\n" : "", w->port, w->token);
	return tw_exchange(w->port, head, (size_t)n, NULL, 0);
}

START_TEST(host_checked)
{
	struct tw_web w;
	tw_web_start(&w, "30");
	char h[80];
	snprintf(h, sizeof h, "evil.example:%d", w.port);
	struct tw_resp r = get_host(&w, h);
	tw_assert_refused(&r, 403, "host");
	tw_resp_free(&r);
	snprintf(h, sizeof h, "127.0.0.1:%d", w.port + 1);
	r = get_host(&w, h);
	tw_assert_refused(&r, 403, "host");
	tw_resp_free(&r);
	r = get_host(&w, "127.0.0.1");
	tw_assert_refused(&r, 403, "host");
	tw_resp_free(&r);
	/* HTTP/1.1 without Host is malformed: refused either way. */
	r = get_host(&w, NULL);
	ck_assert_msg(r.status == 400 || r.status == 403, "%s", r.raw);
	tw_resp_free(&r);
	snprintf(h, sizeof h, "localhost:%d", w.port);
	r = get_host(&w, h);
	ck_assert_int_eq(r.status, 200);
	tw_resp_free(&r);

	/* The refusal is logged with the foreign value, made printable. */
	size_t n;
	int eof;
	int fd = open(w.log, O_RDONLY);
	char *log = tw_read_all(fd, 200, &n, &eof);
	close(fd);
	snprintf(h, sizeof h, "foreign Host (DNS rebinding?) (evil.example:%d)", w.port);
	ck_assert_ptr_nonnull(strstr(log, h));
	free(log);
	td_kill_all();
}
END_TEST

START_TEST(origin_checked)
{
	struct tw_web w;
	tw_web_start(&w, "30");
	struct tw_resp r = tw_api(&w, TW_COOKIE | TW_JSON, create_req);    /* no Origin */
	tw_assert_refused(&r, 403, "origin");
	tw_resp_free(&r);
	char foreign[5][80];
	snprintf(foreign[0], sizeof foreign[0], "http://127.0.0.1:1");
	snprintf(foreign[1], sizeof foreign[1], "null");
	snprintf(foreign[2], sizeof foreign[2], "http://evil.example");
	snprintf(foreign[3], sizeof foreign[3], "https://127.0.0.1:%d", w.port);
	snprintf(foreign[4], sizeof foreign[4], "http://127.0.0.1:%d.evil.example", w.port);
	for (size_t i = 0; i < sizeof foreign / sizeof *foreign; i++) {
		char line[sizeof foreign[i] + 16];
		snprintf(line, sizeof line, "Origin: %.79s\r\n", foreign[i]);
		r = tw_request(&w, "POST", "/api", TW_COOKIE | TW_JSON, line, create_req, strlen(create_req));
		tw_assert_refused(&r, 403, "origin");
		tw_resp_free(&r);
		/* Any request that names another origin, not only a POST. */
		r = tw_request(&w, "GET", "/events", TW_COOKIE, line, NULL, 0);
		tw_assert_refused(&r, 403, "origin");
		tw_resp_free(&r);
	}
	ck_assert_int_eq(tw_protons(&w), 0);
	/* localhost is the page's origin too. */
	char line[120];
	snprintf(line, sizeof line, "Origin: http://localhost:%d\r\n", w.port);
	r = tw_request(&w, "POST", "/api", TW_COOKIE | TW_JSON, line, create_req, strlen(create_req));
	ck_assert_int_eq(r.status, 200);
	tw_resp_free(&r);
	ck_assert_int_eq(tw_protons(&w), 1);
	td_kill_all();
}
END_TEST

/* ---- bad requests ------------------------------------------------------------------------------------ */

START_TEST(bad_requests)
{
	struct tw_web w;
	tw_web_start(&w, "30");
	struct tw_resp r;
	static const struct { const char *body; int code; } bad[] = {
		{ "", -32700 },
		{ "{\"jsonrpc\":", -32700 },
		{ "not json", -32700 },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\"} {}", -32700 },
		{ "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\"}]", -32600 },
		{ "\"daemon.status\"", -32600 },
		{ "{\"jsonrpc\":\"2.0\",\"method\":\"proton.create\",\"params\":{\"label\":\"x\"}}", -32600 },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"subscribe\"}", -32600 },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		r = tw_api(&w, TW_GOOD, bad[i].body);
		ck_assert_msg(r.status == 400, "%s: %s", bad[i].body, r.raw);
		ck_assert_int_eq(tw_err_code(&r), bad[i].code);
		tw_resp_free(&r);
	}
	ck_assert_int_eq(tw_protons(&w), 0);      /* the notification did not run */

	/* relmd's own errors pass through as its replies. */
	r = tw_api(&w, TW_GOOD, "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"no.such\"}");
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(tw_err_code(&r), -32601);
	ck_assert_ptr_nonnull(strstr(r.body, "\"id\":\"x\""));
	tw_resp_free(&r);
	r = tw_api(&w, TW_GOOD, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"proton.create\",\"params\":{\"lable\":\"x\"}}");
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(tw_err_code(&r), -32602);
	tw_resp_free(&r);
	/* A body laid out over several lines still makes one request line. */
	r = tw_api(&w, TW_GOOD, "{\n \"jsonrpc\": \"2.0\",\n \"id\": 3,\n \"method\": \"daemon.status\"\n}\n");
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "\"api\":1"));
	tw_resp_free(&r);

	/* Wrong type, method, path. */
	r = tw_api(&w, TW_COOKIE | TW_ORIGIN | TW_TEXT, create_req);
	tw_assert_refused(&r, 415, "content_type");
	tw_resp_free(&r);
	r = tw_api(&w, TW_COOKIE | TW_ORIGIN, create_req);
	tw_assert_refused(&r, 415, "content_type");
	tw_resp_free(&r);
	r = tw_request(&w, "GET", "/api", TW_COOKIE, NULL, NULL, 0);
	tw_assert_refused(&r, 405, "method");
	ck_assert_ptr_nonnull(tw_hdr(&r, "Allow"));
	tw_resp_free(&r);
	static const char *meth[] = { "PUT", "DELETE", "OPTIONS", "PATCH" };
	for (size_t i = 0; i < sizeof meth / sizeof *meth; i++) {
		r = tw_request(&w, meth[i], "/api", TW_COOKIE | TW_ORIGIN, NULL, NULL, 0);
		tw_assert_refused(&r, 405, "method");
		tw_resp_free(&r);
	}
	r = tw_request(&w, "POST", "/", TW_GOOD, NULL, "{}", 2);
	tw_assert_refused(&r, 405, "method");
	tw_resp_free(&r);
	r = tw_request(&w, "POST", "/events", TW_GOOD, NULL, "{}", 2);
	tw_assert_refused(&r, 405, "method");
	tw_resp_free(&r);
	static const char *nope[] = { "/nope", "/api/", "/../etc/passwd", "/index.html", "/app.js/x" };
	for (size_t i = 0; i < sizeof nope / sizeof *nope; i++) {
		r = tw_request(&w, "GET", nope[i], TW_COOKIE, NULL, NULL, 0);
		tw_assert_refused(&r, 404, "not_found");
		tw_resp_free(&r);
	}

	/* A huge body announced: refused before it is read. */
	r = tw_request(&w, "POST", "/api", TW_GOOD, "Content-Length: 2000000\r\n", NULL, 0);
	tw_assert_refused(&r, 413, "too_big");
	tw_resp_free(&r);
	/* Exactly at the limit is read (and then is not TW_JSON). */
	char *big = malloc(WEB_BODY_MAX + 2);
	ck_assert_ptr_nonnull(big);
	memset(big, ' ', WEB_BODY_MAX + 1);
	big[WEB_BODY_MAX + 1] = '\0';
	big[0] = 'x';
	r = tw_request(&w, "POST", "/api", TW_GOOD, NULL, big, WEB_BODY_MAX);
	ck_assert_int_eq(r.status, 400);
	ck_assert_int_eq(tw_err_code(&r), -32700);
	tw_resp_free(&r);
	r = tw_request(&w, "POST", "/api", TW_GOOD, NULL, big, WEB_BODY_MAX + 1);
	tw_assert_refused(&r, 413, "too_big");
	tw_resp_free(&r);
	/* Chunked, with no length, past the limit: the connection is closed. */
	{
		char head[512];
		int n = snprintf(head, sizeof head,
				 "POST /api HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nCookie: relm_web_%d=%s\r\n"
				 "Origin: http://127.0.0.1:%d\r\nContent-Type: application/json\r\n"
				 "Transfer-Encoding: chunked\r\n\r\n", w.port, w.port, w.token, w.port);
		int fd = tw_tcp_connect(w.port);
		tw_send_all(fd, head, (size_t)n);
		for (int i = 0; i < 20; i++) {             /* 20 × 64 KiB + ... */
			char ch[16];
			int k = snprintf(ch, sizeof ch, "%x\r\n", 65536);
			tw_send_all(fd, ch, (size_t)k);
			tw_send_all(fd, big, 65536);
			tw_send_all(fd, "\r\n", 2);
		}
		struct tw_resp c = { 0 };
		size_t len;
		char *raw = tw_read_all(fd, 10000, &len, &c.eof);
		close(fd);
		tw_parse_resp(&c, raw, len);
		ck_assert_msg(c.eof, "the connection stayed open");
		ck_assert_int_ne(c.status, 200);
		tw_resp_free(&c);
	}
	free(big);
	/* ... and relm-web goes on serving. */
	r = tw_api(&w, TW_GOOD, create_req);
	ck_assert_int_eq(r.status, 200);
	tw_resp_free(&r);
	ck_assert_int_eq(tw_protons(&w), 1);
	td_kill_all();
}
END_TEST

/* ---- security headers --------------------------------------------------------------------------------- */

static void assert_headers(const struct tw_resp *r)
{
	const char *csp = tw_hdr(r, "Content-Security-Policy");
	ck_assert_msg(csp, "no CSP: %.300s", r->raw);
	ck_assert_ptr_nonnull(strstr(csp, "default-src 'self'"));
	ck_assert_ptr_nonnull(strstr(csp, "script-src 'self'"));
	ck_assert_ptr_nonnull(strstr(csp, "frame-ancestors 'none'"));
	ck_assert_ptr_null(strstr(csp, "unsafe-inline"));
	ck_assert_ptr_null(strstr(csp, "unsafe-eval"));
	ck_assert_ptr_null(strstr(csp, "http"));
	ck_assert_ptr_null(strstr(csp, "*"));
	ck_assert_str_eq(tw_hdr(r, "X-Content-Type-Options"), "nosniff");
	ck_assert_str_eq(tw_hdr(r, "Referrer-Policy"), "no-referrer");
	ck_assert_str_eq(tw_hdr(r, "Cache-Control"), "no-store");
	ck_assert_ptr_null(tw_hdr(r, "Access-Control-Allow-Origin"));
}

/* No address outside relm-web in what it serves (the SVG namespace is a
 * name, not a resource). */
static void assert_self_contained(const struct tw_resp *r)
{
	const char *p = r->body;
	while ((p = strstr(p, "http"))) {
		if (!strncmp(p, "http://www.w3.org/2000/svg", 26)) {
			p += 26;
			continue;
		}
		ck_assert_msg(strncmp(p, "http:", 5) && strncmp(p, "https:", 6),
			      "an outside address: %.60s", p);
		p += 4;
	}
	ck_assert_ptr_null(strstr(r->body, "src=\"//"));
	ck_assert_ptr_null(strstr(r->body, "href=\"//"));
}

START_TEST(security_headers)
{
	struct tw_web w;
	tw_web_start(&w, "30");
	char path[80];
	snprintf(path, sizeof path, "/?token=%s", w.token);
	struct tw_resp r = tw_request(&w, "GET", path, 0, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	assert_headers(&r);
	assert_self_contained(&r);
	ck_assert_ptr_null(strstr(r.body, "<script>"));          /* nothing inline */
	ck_assert_ptr_null(strstr(r.body, " style="));
	ck_assert_ptr_null(strstr(r.body, " onclick="));
	tw_resp_free(&r);
	static const char *assets[] = { "/app.js", "/api.js", "/ui.js", "/conversation.js",
					"/proton_views.js", "/tree.js", "/tree_view.js", "/app.css",
					"/icon.svg" };
	for (size_t i = 0; i < sizeof assets / sizeof *assets; i++) {
		r = tw_request(&w, "GET", assets[i], TW_COOKIE, NULL, NULL, 0);
		ck_assert_msg(r.status == 200, "%s: %d", assets[i], r.status);
		assert_headers(&r);
		assert_self_contained(&r);
		ck_assert_ptr_null(strstr(r.body, "eval("));
		ck_assert_ptr_null(strstr(r.body, "innerHTML"));
		ck_assert_ptr_null(strstr(r.body, "new Function"));
		tw_resp_free(&r);
	}
	r = tw_request(&w, "GET", "/", 0, NULL, NULL, 0);           /* 403 page */
	assert_headers(&r);
	tw_resp_free(&r);
	r = tw_request(&w, "GET", "/nope", TW_COOKIE, NULL, NULL, 0);
	assert_headers(&r);
	tw_resp_free(&r);
	r = tw_api(&w, TW_GOOD, create_req);
	assert_headers(&r);
	tw_resp_free(&r);
	r = tw_api(&w, TW_GOOD, "nope");
	assert_headers(&r);
	tw_resp_free(&r);
	r = tw_request(&w, "POST", "/api", TW_GOOD, "Content-Length: 9999999\r\n", NULL, 0);
	assert_headers(&r);
	tw_resp_free(&r);
	r = tw_request(&w, "POST", "/qr", TW_COOKIE | TW_ORIGIN | TW_TEXT, NULL, "relm:x", 6);
	assert_headers(&r);
	tw_resp_free(&r);
	/* The event stream's headers (read with the first event, then closed). */
	int fd = tw_tcp_connect(w.port);
	char head[300];
	int n = snprintf(head, sizeof head, "GET /events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
			 "Cookie: relm_web_%d=%s\r\n\r\n", w.port, w.port, w.token);
	tw_send_all(fd, head, (size_t)n);
	size_t len;
	int eof;
	char *raw = tw_read_all(fd, 1500, &len, &eof);
	close(fd);
	tw_parse_resp(&r, raw, len);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(tw_hdr(&r, "Content-Type"), "text/event-stream; charset=utf-8");
	assert_headers(&r);
	tw_resp_free(&r);
	td_kill_all();
}
END_TEST

/* ---- slow clients and the connection cap ---------------------------------------------------------------- */

START_TEST(slow_clients)
{
	struct tw_web w;
	tw_web_start(&w, "1");
	/* Half a request line, then silence. */
	int slow = tw_tcp_connect(w.port);
	tw_send_all(slow, "GET /app.js HT", 14);
	/* Others are served meanwhile. */
	struct tw_resp r = tw_request(&w, "GET", "/app.js", TW_COOKIE, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	tw_resp_free(&r);
	/* The silent one is closed by the idle timeout, without a response. */
	size_t len;
	int eof;
	char *got = tw_read_all(slow, 15000, &len, &eof);
	ck_assert_msg(eof, "a silent client was not closed");
	ck_assert_ptr_null(strstr(got, "200 OK"));
	free(got);
	close(slow);

	/* Headers sent a byte at a time, slower than the timeout: closed too. */
	slow = tw_tcp_connect(w.port);
	const char *req = "GET /app.js HTTP/1.1\r\nHost: 127.0.0.1\r\n";
	int closed = 0;
	for (size_t i = 0; req[i] && !closed; i++) {
		tw_send_all(slow, req + i, 1);
		struct pollfd p = { .fd = slow, .events = POLLIN };
		if (poll(&p, 1, 1500) > 0)
			closed = 1;       /* closed (or refused) before the request ended */
	}
	ck_assert(closed);
	close(slow);

	td_kill_all();
}
END_TEST

/* The cap, without waiting for any timeout: WEB_CONN_MAX silent
 * connections fill it, one more is turned away at once, and when the
 * silent ones go a request is served again. */
START_TEST(connection_cap)
{
	struct tw_web w;
	tw_web_start(&w, "60");
	int fds[WEB_CONN_MAX];
	for (int i = 0; i < WEB_CONN_MAX; i++) {
		fds[i] = tw_tcp_connect(w.port);
		tw_send_all(fds[i], "G", 1);
	}
	struct tw_resp r = tw_request(&w, "GET", "/app.js", TW_COOKIE, NULL, NULL, 0);
	ck_assert_msg(r.status != 200 && r.eof, "a connection over the cap was served: %d", r.status);
	tw_resp_free(&r);
	for (int i = 0; i < WEB_CONN_MAX; i++)
		close(fds[i]);
	long long end = td_now_ms() + 20000;
	int served = 0;
	while (!served && td_now_ms() < end) {
		r = tw_request(&w, "GET", "/app.js", TW_COOKIE, NULL, NULL, 0);
		served = r.status == 200;
		tw_resp_free(&r);
		if (!served)
			td_sleep_ms(100);
	}
	ck_assert(served);
	td_kill_all();
}
END_TEST

/* ---- the event stream ----------------------------------------------------------------------------------- */

/* Alice's relmd with relm-web in front, and bob's relmd: bob accepts
 * alice's invite, so alice has a relationship to send on. */
static const char *relate(struct tw_web *w, struct td_relmd *bob, char *rel, size_t n)
{
	ck_assert_int_eq(td_relmd_start(bob, w->dir, "bob", w->mbox.port), 0);
	cJSON *pa = td_must(w->relmd.sock, "proton.create", "{\"label\":\"alice\"}");
	cJSON *pb = td_must(bob->sock, "proton.create", "{\"label\":\"bob\"}");
	cJSON *inv = td_must(bob->sock, "invite.create", "{\"proton\":\"%s\"}", td_str(td_res(pb), "proton"));
	cJSON *acc = td_must(w->relmd.sock, "invite.accept", "{\"proton\":\"%s\",\"invite\":\"%s\"}",
			     td_str(td_res(pa), "proton"), td_str(td_res(inv), "invite"));
	snprintf(rel, n, "%s", td_str(td_res(acc), "relationship"));
	cJSON_Delete(pa);
	cJSON_Delete(pb);
	cJSON_Delete(inv);
	cJSON_Delete(acc);
	return rel;
}

static void send_text(const struct tw_web *w, const char *rel, const char *body, char *id, size_t n)
{
	cJSON *r = td_must(w->relmd.sock, "message.send", "{\"relationship\":\"%s\",\"body\":\"%s\"}", rel, body);
	snprintf(id, n, "%s", td_str(td_res(r), "message"));
	cJSON_Delete(r);
}

/* Read events until one carries message id (and remember every id seen). */
static long long read_until(struct tw_sse *c, const char *message, long long *ids, int *nids)
{
	struct tw_event ev;
	while (tw_sse_next(c, &ev, 10000)) {
		ck_assert_msg(ev.id >= 0 && !ev.type[0], "not an event of relmd's: %s", ev.data);
		ids[(*nids)++] = ev.id;
		int hit = strstr(ev.data, message) != NULL;
		free(ev.data);
		if (hit)
			return ev.id;
	}
	ck_abort_msg("no event for message %s", message);
	return -1;
}

START_TEST(sse_resume)
{
	struct tw_web w;
	struct td_relmd bob;
	char rel[40], m1[40], m2[40], m3[40], m4[40];
	tw_web_start(&w, "30");
	relate(&w, &bob, rel, sizeof rel);

	struct tw_sse c;
	struct tw_event ev;
	tw_sse_connect(&c, &w, "/events", NULL);
	ck_assert_int_eq(tw_sse_next(&c, &ev, 10000), 1);
	ck_assert_str_eq(ev.type, "subscribed");
	ck_assert_ptr_nonnull(strstr(ev.data, "\"gap\":false"));
	{
		/* Its id: the last seq issued, where this stream takes over. */
		cJSON *j = cJSON_Parse(ev.data);
		ck_assert_int_eq(ev.id, (long long)cJSON_GetObjectItemCaseSensitive(j, "seq")->valuedouble);
		cJSON_Delete(j);
	}
	free(ev.data);
	long long ids[256];
	int nids = 0;
	send_text(&w, rel, "one", m1, sizeof m1);
	read_until(&c, m1, ids, &nids);
	send_text(&w, rel, "two", m2, sizeof m2);
	long long last = read_until(&c, m2, ids, &nids);
	for (int i = 1; i < nids; i++)
		ck_assert_int_gt(ids[i], ids[i - 1]);
	tw_sse_close(&c);

	/* Away: two more messages (each makes several events). */
	send_text(&w, rel, "three", m3, sizeof m3);
	send_text(&w, rel, "four", m4, sizeof m4);

	/* Back, with Last-Event-ID: every event after `last`, in order, each
	 * once; no event at or before it. */
	char extra[64];
	snprintf(extra, sizeof extra, "Last-Event-ID: %lld\r\n", last);
	tw_sse_connect(&c, &w, "/events", extra);
	ck_assert_int_eq(tw_sse_next(&c, &ev, 10000), 1);
	ck_assert_str_eq(ev.type, "subscribed");
	ck_assert_ptr_nonnull(strstr(ev.data, "\"gap\":false"));
	ck_assert_int_eq(ev.id, last);                     /* resumes after `last` */
	free(ev.data);
	nids = 0;
	read_until(&c, m4, ids, &nids);
	ck_assert_int_eq(ids[0], last + 1);                 /* nothing missed... */
	for (int i = 1; i < nids; i++)
		ck_assert_int_eq(ids[i], ids[i - 1] + 1);   /* ...or repeated */
	tw_sse_close(&c);

	/* The same with ?since=, and the header wins over it. */
	char path[64];
	snprintf(path, sizeof path, "/events?since=%lld", last);
	tw_sse_connect(&c, &w, path, NULL);
	ck_assert_int_eq(tw_sse_next(&c, &ev, 10000), 1);
	free(ev.data);
	ck_assert_int_eq(tw_sse_next(&c, &ev, 10000), 1);
	ck_assert_int_eq(ev.id, last + 1);
	free(ev.data);
	tw_sse_close(&c);
	snprintf(extra, sizeof extra, "Last-Event-ID: %lld\r\n", ids[nids - 1] - 1);
	tw_sse_connect(&c, &w, "/events?since=0", extra);
	ck_assert_int_eq(tw_sse_next(&c, &ev, 10000), 1);
	free(ev.data);
	ck_assert_int_eq(tw_sse_next(&c, &ev, 10000), 1);
	ck_assert_int_eq(ev.id, ids[nids - 1]);
	ck_assert_ptr_nonnull(strstr(ev.data, m4));
	free(ev.data);
	tw_sse_close(&c);

	/* Not a seq: refused. */
	static const char *bad[] = { "Last-Event-ID: x\r\n", "Last-Event-ID: -1\r\n",
				     "Last-Event-ID: 99999999999999999\r\n" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct tw_resp r = tw_request(&w, "GET", "/events", TW_COOKIE, bad[i], NULL, 0);
		tw_assert_refused(&r, 400, "bad_request");
		tw_resp_free(&r);
	}

	/* A quiet stream gets keepalives; relm-web stops promptly with a
	 * stream open (SIGTERM: exit 0), and the stream ends. */
	tw_sse_connect(&c, &w, "/events", NULL);
	ck_assert_int_eq(tw_sse_next(&c, &ev, 10000), 1);
	free(ev.data);
	ck_assert_int_eq(td_stop(&w.pid, SIGTERM, 5000), 0);
	ck_assert_int_eq(tw_sse_next(&c, &ev, 5000), 0);
	ck_assert(c.eof);
	tw_sse_close(&c);
	td_kill_all();
}
END_TEST

/* ---- relmd away ----------------------------------------------------------------------------------------- */

START_TEST(relmd_away)
{
	struct tw_web w;
	tw_web_start(&w, "30");
	struct tw_sse c;
	struct tw_event ev;
	tw_sse_connect(&c, &w, "/events", NULL);
	ck_assert_int_eq(tw_sse_next(&c, &ev, 10000), 1);
	free(ev.data);
	ck_assert_int_eq(td_stop(&w.relmd.pid, SIGTERM, 5000), 0);
	/* The stream ends (the browser would reconnect)... */
	ck_assert_int_eq(tw_sse_next(&c, &ev, 5000), 0);
	ck_assert(c.eof);
	tw_sse_close(&c);
	/* ...calls and new streams get a clear error... */
	struct tw_resp r = tw_api(&w, TW_GOOD, create_req);
	tw_assert_refused(&r, 502, "relmd_unavailable");
	ck_assert_ptr_nonnull(strstr(r.body, w.relmd.sock));
	tw_resp_free(&r);
	r = tw_request(&w, "GET", "/events", TW_COOKIE, NULL, NULL, 0);
	tw_assert_refused(&r, 503, "relmd_unavailable");
	tw_resp_free(&r);
	/* ...and when relmd is back, everything works again. */
	ck_assert_int_eq(td_relmd_restart(&w.relmd), 0);
	r = tw_api(&w, TW_GOOD, create_req);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "\"result\""));
	tw_resp_free(&r);
	td_kill_all();
}
END_TEST

/* ---- QR codes ---------------------------------------------------------------------------------------------- */

START_TEST(qr_codes)
{
	struct tw_web w;
	tw_web_start(&w, "30");
	const char *text = "relm:AAAAexample-invite-text";
	struct tw_resp r = tw_request(&w, "POST", "/qr", TW_COOKIE | TW_ORIGIN | TW_TEXT, NULL, text, strlen(text));
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(tw_hdr(&r, "Content-Type"), "image/svg+xml");
	ck_assert_int_eq(strncmp(r.body, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 ", 53), 0);
	int size = atoi(r.body + 53);
	/* A version-v code is 17 + 4v modules wide, plus 4 of quiet zone a side. */
	ck_assert_int_eq((size - 8 - 17) % 4, 0);
	ck_assert_int_ge(size, 29);
	ck_assert_ptr_nonnull(strstr(r.body, "<path fill=\"#000\" d=\"M"));
	ck_assert_ptr_null(strstr(r.body, text));           /* drawn, not written */
	tw_resp_free(&r);
	/* The same text, the same picture. */
	struct tw_resp r2 = tw_request(&w, "POST", "/qr", TW_COOKIE | TW_ORIGIN | TW_TEXT, NULL, text, strlen(text));
	struct tw_resp r3 = tw_request(&w, "POST", "/qr", TW_COOKIE | TW_ORIGIN | TW_TEXT, NULL, text, strlen(text));
	ck_assert_str_eq(r2.body, r3.body);
	tw_resp_free(&r2);
	tw_resp_free(&r3);
	/* Empty, too long, wrong type, no Origin. */
	r = tw_request(&w, "POST", "/qr", TW_COOKIE | TW_ORIGIN | TW_TEXT, NULL, "", 0);
	tw_assert_refused(&r, 400, "invalid_argument");
	tw_resp_free(&r);
	char *lng = malloc(WEB_QR_TEXT_MAX + 2);
	memset(lng, 'a', WEB_QR_TEXT_MAX + 1);
	r = tw_request(&w, "POST", "/qr", TW_COOKIE | TW_ORIGIN | TW_TEXT, NULL, lng, WEB_QR_TEXT_MAX + 1);
	tw_assert_refused(&r, 400, "invalid_argument");
	tw_resp_free(&r);
	free(lng);
	r = tw_request(&w, "POST", "/qr", TW_COOKIE | TW_ORIGIN | TW_JSON, NULL, "{}", 2);
	tw_assert_refused(&r, 415, "content_type");
	tw_resp_free(&r);
	r = tw_request(&w, "POST", "/qr", TW_COOKIE | TW_TEXT, NULL, "x", 1);
	tw_assert_refused(&r, 403, "origin");
	tw_resp_free(&r);
	td_kill_all();
}
END_TEST

static Suite *web_suite(void)
{
	Suite *s = suite_create("web");
	struct { const char *name; const TTest *t; int timeout; } cases[] = {
		{ "listen", listen_loopback_only, 4 },
		{ "guard", guard_host_origin_token, 4 },
		{ "startup", startup_line, 30 },
		{ "startup_refusals", startup_refusals, 30 },
		{ "token", token_required, 30 },
		{ "host", host_checked, 30 },
		{ "origin", origin_checked, 30 },
		{ "bad_requests", bad_requests, 60 },
		{ "headers", security_headers, 30 },
		{ "slow_clients", slow_clients, 60 },
		{ "connection_cap", connection_cap, 60 },
		{ "sse_resume", sse_resume, 60 },
		{ "relmd_away", relmd_away, 30 },
		{ "qr", qr_codes, 30 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_add_unchecked_fixture(tc, base_up, base_down);
		tcase_add_checked_fixture(tc, NULL, kill_all);
		tcase_set_timeout(tc, cases[i].timeout);
		tcase_add_test(tc, cases[i].t);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(web_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

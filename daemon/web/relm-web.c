/*
 * relm-web.c — a browser front end for relmd, served on this machine.
 *
 *   relm-web [--socket PATH] [--listen HOST:PORT] [--idle-timeout S]
 *            [--log-level L]
 *
 * Serves one page (daemon/web/assets/, compiled in) and a thin bridge to
 * relmd's socket API: POST /api for calls, GET /events for the event
 * stream (proto/web.md).  It talks to relmd only through the socket, like
 * any client: everything the page shows, relmd's API already says.
 *
 * The first line on stdout is the address to open, with a fresh access
 * token (32 random bytes, base64url); nothing else goes to stdout.  Logs go
 * to stderr (log.h) and never carry the token.  Exit: 0 after SIGINT or
 * SIGTERM, 1 when relmd cannot be reached at start or the port cannot be
 * bound, 2 usage.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "api/server.h"
#include "log.h"
#include "web/bridge.h"
#include "web/guard.h"
#include "web/http.h"

static const char *prog = "relm-web";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [--socket PATH] [--listen HOST:PORT] [--idle-timeout S] [--log-level L]\n"
		"\n"
		"Serve relm's web app for the relmd at PATH on this machine.  The first\n"
		"line on stdout is the address to open; it carries an access token.\n"
		"\n"
		"  --socket PATH      relmd's socket (default $RELM_SOCKET, else\n"
		"                     $XDG_RUNTIME_DIR/relm/relmd.sock)\n"
		"  --listen HOST:PORT a loopback address (default 127.0.0.1:0, a free port)\n"
		"  --idle-timeout S   close a connection silent this long (default %d)\n"
		"  --log-level L      err, warn, info (default) or debug\n",
		prog, WEB_IDLE_TIMEOUT_S);
}

/* relmd answers daemon.status on sock?  0, or -errno after saying why. */
static int check_relmd(const char *sock)
{
	static const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\"}";
	char *reply = NULL;
	size_t n = 0;
	int err = bridge_call(sock, req, sizeof req - 1, &reply, &n);
	if (err) {
		fprintf(stderr, "%s: cannot reach relmd at %s: %s\n", prog, sock, strerror(-err));
		return err;
	}
	cJSON *j = cJSON_ParseWithLength(reply, n);
	int ok = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "result"));
	if (!ok)
		fprintf(stderr, "%s: relmd at %s refused: %.200s\n", prog, sock, reply);
	cJSON_Delete(j);
	free(reply);
	return ok ? 0 : -EACCES;
}

int main(int argc, char **argv)
{
	const char *sock = getenv("RELM_SOCKET");
	const char *listen_spec = "127.0.0.1:0";
	char defsock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	enum log_level level = LOGL_INFO;
	long idle = WEB_IDLE_TIMEOUT_S;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int has = i + 1 < argc;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--socket") && has) {
			sock = argv[++i];
		} else if (!strcmp(a, "--listen") && has) {
			listen_spec = argv[++i];
		} else if (!strcmp(a, "--idle-timeout") && has) {
			char *end;
			idle = strtol(argv[++i], &end, 10);
			if (*end || idle < 1 || idle > 3600) {
				fprintf(stderr, "%s: --idle-timeout: 1 to 3600 seconds\n", prog);
				return 2;
			}
		} else if (!strcmp(a, "--log-level") && has) {
			if (log_level_parse(argv[++i], &level) < 0) {
				fprintf(stderr, "%s: --log-level: err, warn, info or debug\n", prog);
				return 2;
			}
		} else {
			fprintf(stderr, "%s: %s: %s\n", prog, a,
				a[0] == '-' && a[1] == '-' && !has ? "needs a value" : "unknown argument");
			usage(stderr);
			return 2;
		}
	}
	log_init(prog, level, NULL);
	if (sodium_init() < 0) {
		fprintf(stderr, "%s: libsodium failed to initialise\n", prog);
		return 1;
	}
	struct web_config cfg = { .idle_timeout_s = (unsigned)idle };
	const char *why = NULL;
	if (web_listen_parse(listen_spec, &cfg.listen, &why) < 0) {
		fprintf(stderr, "%s: --listen %s: %s\n", prog, listen_spec, why);
		return 2;
	}
	if (!sock || !*sock) {
		if (relmd_default_socket_path(defsock, sizeof defsock) < 0) {
			fprintf(stderr, "%s: XDG_RUNTIME_DIR is not set; pass --socket PATH\n", prog);
			return 2;
		}
		sock = defsock;
	}
	cfg.socket = sock;
	if (check_relmd(sock) < 0)
		return 1;

	/* Signals go to sigwait below, not to a handler: every thread
	 * (libmicrohttpd's included) inherits this mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	web_token_new(cfg.token);
	struct web_server *srv = NULL;
	int err = web_server_start(&srv, &cfg);
	if (err) {
		sodium_memzero(cfg.token, sizeof cfg.token);
		fprintf(stderr, "%s: cannot listen on %s: %s\n", prog, listen_spec, strerror(-err));
		return 1;
	}
	printf("http://%s:%u/?token=%s\n", web_server_host(srv), (unsigned)web_server_port(srv),
	       cfg.token);
	fflush(stdout);
	sodium_memzero(cfg.token, sizeof cfg.token);
	log_info("serving relmd at %s on http://%s:%u/", sock, web_server_host(srv),
		 (unsigned)web_server_port(srv));

	int sig = 0;
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
		;
	log_info("signal %d: stopping", sig);
	web_server_stop(srv);
	return 0;
}

/*
 * relm-mailbox — the standalone mailbox server (proto/mailbox.md).
 *
 *   relm-mailbox --listen HOST:PORT (--state DIR | --db DATABASE) [--retention-days N]
 *                [--rate N] [--burst N] [--max-subs N] [--max-conns-per-addr N]
 *                [--log-level L]
 *
 * --state keeps everything in one SQLite file (one instance); --db in a
 * PostgreSQL database that any number of instances may share
 * (proto/mailbox.md §9).
 * A thin shell around daemon/mailbox_server/mailbox_server.c, which relmd embeds too
 * (--serve-mailbox).  SIGTERM/SIGINT close the server cleanly (exit 0),
 * SIGHUP reopens the log file.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "error.h"
#include "log.h"
#include "wire/mailbox_proto.h"
#include "mailbox_server/mailbox_server.h"
#include "mailbox_server/store.h"

struct app {
	uv_loop_t loop;
	uv_signal_t sigterm, sigint, sighup;
	struct relm_mbox_server *srv;
	int stopping;
};

static void usage(FILE *f)
{
	fprintf(f,
	    "usage: relm-mailbox (--state DIR | --db DATABASE) [--listen HOST:PORT]\n"
	    "                    [--retention-days N] [--rate N] [--burst N] [--max-subs N]\n"
	    "                    [--max-conns-per-addr N] [--log-level err|warn|info|debug]\n"
	    "\n"
	    "Serve relm mailboxes (store-and-forward inboxes) over TCP.\n"
	    "\n"
	    "Where the mailboxes are kept (one of):\n"
	    "  --state DIR          SQLite: DIR/mailbox.sqlite (DIR created 0700). One instance.\n"
	    "  --db DATABASE        PostgreSQL: a postgresql://user@host/dbname URI or a libpq\n"
	    "                       connection string (\"host=... dbname=...\"); postgresql://\n"
	    "                       alone takes everything from PGHOST, PGDATABASE, PGUSER,\n"
	    "                       PGPASSWORD, ... (and ~/.pgpass).  Any number of instances\n"
	    "                       may serve one database: put them behind one address list;\n"
	    "                       each creates or upgrades the schema as needed.\n"
	    "\n"
	    "  --listen HOST:PORT   address to bind (IP literal; [v6]:port), default 127.0.0.1:%d;\n"
	    "                       port 0 picks a free port (printed on stdout)\n"
	    "  --retention-days N   keep envelopes N days (default %d); deletion is by time only\n"
	    "  --rate N             requests per second per connection, in cost units of\n"
	    "                       1 + frame_bytes/1024 (default %d; 1..%d)\n"
	    "  --burst N            token bucket size per connection (default %d; 1..%d)\n"
	    "  --max-subs N         subscriptions per connection (default %d)\n"
	    "  --max-conns-per-addr N  connections per client address, IPv6 per /64\n"
	    "                       (default %d; 0: no cap, e.g. behind a TLS proxy)\n"
	    "  --log-level L        err, warn, info (default) or debug\n"
	    "  --help               this text\n"
	    "\n"
	    "SIGTERM or SIGINT: stop cleanly (nothing acknowledged is lost at any stop).\n"
	    "SIGHUP: reopen the log file ($RELM_LOG_FILE).\n",
	    RELM_MBOX_DEFAULT_PORT, RELM_MBOX_RETENTION_DAYS, RELM_MBOX_RATE, RELM_MBOX_RATE_MAX,
	    RELM_MBOX_BURST, RELM_MBOX_RATE_MAX, RELM_MBOX_MAX_SUBS, RELM_MBOX_MAX_CONNS_PER_ADDR);
}

/* "host:port" or "[v6]:port" into host (cap bytes) and port. */
static int parse_listen(const char *s, char *host, size_t cap, uint16_t *port)
{
	const char *colon, *h = s;
	size_t hl;
	char *end;
	unsigned long p;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -1;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -1;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= cap)
		return -1;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p > 65535)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void on_server_closed(void *arg)
{
	struct app *a = arg;

	a->srv = NULL;
	uv_close((uv_handle_t *)&a->sigterm, on_handle_closed);
	uv_close((uv_handle_t *)&a->sigint, on_handle_closed);
	uv_close((uv_handle_t *)&a->sighup, on_handle_closed);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct app *a = h->data;

	if (signum == SIGHUP) {
		log_reopen();
		return;
	}
	if (a->stopping)
		return;
	a->stopping = 1;
	log_info("mailbox: signal %d, shutting down", signum);
	relm_mbox_server_close(a->srv, on_server_closed, a);
}

int main(int argc, char **argv)
{
	/* Keep freed memory instead of handing it back with brk/munmap after
	 * every request: on a paravirtualised machine each shrink is a TLB
	 * shootdown across CPUs, and it cost a third of relmd's time under
	 * load.  RSS stays bounded by the peak working set. */
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_TOP_PAD, 8 << 20);
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	struct relm_mbox_server_config cfg;
	struct app a;
	const char *state = NULL, *listen = NULL;
	char host[256] = "127.0.0.1";
	uint16_t port = RELM_MBOX_DEFAULT_PORT;
	enum log_level level = LOGL_INFO;
	int rc;

	relm_mbox_server_config_default(&cfg);
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
			usage(stdout);
			return 0;
		}
		if (!v) {
			fprintf(stderr, "relm-mailbox: %s needs a value (or is unknown)\n", o);
			usage(stderr);
			return 2;
		}
		i++;
		if (!strcmp(o, "--listen")) {
			listen = v;
		} else if (!strcmp(o, "--state")) {
			state = v;
		} else if (!strcmp(o, "--db")) {
			if (!mbs_store_is_pg(v)) {
				fprintf(stderr, "relm-mailbox: --db wants a postgresql:// URI or a libpq "
				        "connection string (key=value ...)\n");
				return 2;
			}
			cfg.db = v;
		} else if (!strcmp(o, "--retention-days")) {
			char *end;
			unsigned long d;

			errno = 0;
			d = strtoul(v, &end, 10);
			if (errno || *end || end == v || d < 1 || d > 3650) {
				fprintf(stderr, "relm-mailbox: --retention-days must be 1..3650\n");
				return 2;
			}
			cfg.retention_ms = (uint64_t)d * 86400000u;
		} else if (!strcmp(o, "--max-subs")) {
			char *end;
			unsigned long n;

			errno = 0;
			n = strtoul(v, &end, 10);
			if (errno || *end || end == v || v[0] == '-' || n < 1 || n > RELM_MBOX_MAX_SUBS_TOTAL) {
				fprintf(stderr, "relm-mailbox: --max-subs must be 1..%d\n",
				        RELM_MBOX_MAX_SUBS_TOTAL);
				return 2;
			}
			cfg.max_subs = (uint32_t)n;
		} else if (!strcmp(o, "--max-conns-per-addr")) {
			char *end;
			unsigned long n;

			errno = 0;
			n = strtoul(v, &end, 10);
			if (errno || *end || end == v || v[0] == '-' || n > RELM_MBOX_MAX_CONNS) {
				fprintf(stderr, "relm-mailbox: --max-conns-per-addr must be 0..%d\n",
				        RELM_MBOX_MAX_CONNS);
				return 2;
			}
			cfg.max_conns_per_addr = (uint32_t)n;
		} else if (!strcmp(o, "--rate") || !strcmp(o, "--burst")) {
			char *end;
			unsigned long n;

			errno = 0;
			n = strtoul(v, &end, 10);
			if (errno || *end || end == v || v[0] == '-' || n < 1 || n > RELM_MBOX_RATE_MAX) {
				fprintf(stderr, "relm-mailbox: %s must be 1..%d\n", o, RELM_MBOX_RATE_MAX);
				return 2;
			}
			*(o[2] == 'r' ? &cfg.rate : &cfg.burst) = (uint32_t)n;
		} else if (!strcmp(o, "--log-level")) {
			if (log_level_parse(v, &level) != 0) {
				fprintf(stderr, "relm-mailbox: bad --log-level %s\n", v);
				return 2;
			}
		} else {
			fprintf(stderr, "relm-mailbox: unknown option %s\n", o);
			usage(stderr);
			return 2;
		}
	}
	if (!state == !cfg.db) {
		fprintf(stderr, "relm-mailbox: give --state DIR (SQLite) or --db DATABASE (PostgreSQL)\n");
		usage(stderr);
		return 2;
	}
	if (listen && parse_listen(listen, host, sizeof(host), &port) != 0) {
		fprintf(stderr, "relm-mailbox: bad --listen %s (want HOST:PORT)\n", listen);
		return 2;
	}
	log_init("relm-mailbox", level, getenv("RELM_LOG_FILE"));
	/* A peer that resets its connection must not kill us on write. */
	signal(SIGPIPE, SIG_IGN);

	memset(&a, 0, sizeof(a));
	if ((rc = uv_loop_init(&a.loop)) != 0) {
		log_err("mailbox: uv_loop_init: %s", uv_strerror(rc));
		return 1;
	}
	rc = relm_mbox_server_start(&a.srv, &a.loop, host, port, state, &cfg);
	if (rc) {
		log_err("mailbox: cannot start on %s:%u with %s %s: %s", host, (unsigned)port,
		        state ? "state" : "database", state ? state : "(--db)",
		        rc < -1000 ? relm_strerror(rc) : uv_strerror(rc));
		uv_run(&a.loop, UV_RUN_DEFAULT);   /* let the undo close its handles */
		uv_loop_close(&a.loop);
		return 1;
	}
	/* The port on stdout (one line) lets scripts use --listen HOST:0. */
	printf("%u\n", (unsigned)relm_mbox_server_port(a.srv));
	fflush(stdout);

	uv_signal_init(&a.loop, &a.sigterm);
	uv_signal_init(&a.loop, &a.sigint);
	uv_signal_init(&a.loop, &a.sighup);
	a.sigterm.data = a.sigint.data = a.sighup.data = &a;
	uv_signal_start(&a.sigterm, on_signal, SIGTERM);
	uv_signal_start(&a.sigint, on_signal, SIGINT);
	uv_signal_start(&a.sighup, on_signal, SIGHUP);

	uv_run(&a.loop, UV_RUN_DEFAULT);
	rc = uv_loop_close(&a.loop);
	if (rc) {
		log_err("mailbox: loop still has handles at exit");
		return 1;
	}
	log_info("mailbox: stopped");
	return 0;
}

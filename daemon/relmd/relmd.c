/*
 * relmd.c — the relationship-manager daemon's main: command line (below;
 * defaults in README.md, the socket in proto/api.md §1), configuration
 * check (-n), state folder, socket activation, then the loop of server.h
 * until SIGTERM/SIGINT.
 *
 *   relmd [--state DIR] [--socket PATH] [--mailbox HOST:PORT]
 *         [--serve-mailbox HOST:PORT] [--log-level L] [--heal-delay MIN:MAX]
 *         [--clone-window S] [--lease-ttl S] [-n] [--help] [--version]
 *
 * Exit codes: 0 clean stop (or -n: configuration fine), 1 runtime or
 * configuration error, 2 usage error.
 */
#include <errno.h>
#include <malloc.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>

#include "error.h"
#include "log.h"
#include "relmd/sdnotify.h"
#include "relmd/state_lock.h"
#include "api/server.h"
#include "relmd/app.h"

enum { EXIT_USAGE = 2 };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: relmd [--state DIR] [--socket PATH] [--mailbox HOST:PORT]\n"
		"             [--serve-mailbox HOST:PORT] [--log-level L]\n"
		"             [--heal-delay MIN:MAX] [--clone-window S] [--lease-ttl S] [-n]\n"
		"\n"
		"The relm relationship-manager daemon.  Local programs (relmctl, a GUI)\n"
		"talk to it over JSON-RPC on a Unix socket; see proto/api.md.\n"
		"\n"
		"  --state DIR        state folder (default $XDG_STATE_HOME/relm,\n"
		"                     else ~/.local/state/relm; created 0700).  One relmd\n"
		"                     per folder: it is locked (DIR/relmd.lock) and a\n"
		"                     second relmd on it exits 1 naming the first's pid\n"
		"  --socket PATH      API socket (default $XDG_RUNTIME_DIR/relm/relmd.sock,\n"
		"                     /run/relm/relmd.sock for root); ignored when systemd\n"
		"                     passes a socket (LISTEN_FDS)\n"
		"  --mailbox HOST:PORT       mailbox server to use (default: the embedded one)\n"
		"  --serve-mailbox HOST:PORT also serve a mailbox here (default %s\n"
		"                     when no --mailbox is given)\n"
		"  --log-level L      err, warn, info (default) or debug\n"
		"  --heal-delay MIN:MAX  after a device is revoked, each relationship is\n"
		"                     healed after a random delay in [MIN, MAX] seconds\n"
		"                     (default 60:3600)\n"
		"  --clone-window S   an acknowledgement of the remote that nothing this\n"
		"                     device holds explains after S seconds raises\n"
		"                     clone.suspected (default 600)\n"
		"  --lease-ttl S      the `leader` strategy's send lease lasts S seconds\n"
		"                     (2 to 120, default 20): a silent leader is\n"
		"                     replaced within it\n"
		"  -n                 check the configuration and exit (0 ok, 1 not)\n"
		"  --help, --version\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop cleanly (exit 0), SIGHUP reopens the log.\n"
		"Environment: RELMD_LOG_FILE logs there instead of stderr.\n",
		RELMD_DEFAULT_MAILBOX);
}

/* mkdir -p with mode 0700 for every component we create. */
static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	struct stat st;
	if (stat(buf, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	return access(buf, W_OK | X_OK) < 0 ? -errno : 0;
}

/* -n: would mkdir_p succeed?  Checks without creating anything. */
static int dir_would_work(const char *path)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
		return -ENAMETOOLONG;
	for (;;) {
		struct stat st;
		if (stat(buf, &st) == 0) {
			if (!S_ISDIR(st.st_mode))
				return -ENOTDIR;
			return access(buf, W_OK | X_OK) < 0 ? -errno : 0;
		}
		if (errno != ENOENT)
			return -errno;
		char *slash = strrchr(buf, '/');
		if (!slash || slash == buf)
			return -ENOENT;
		*slash = '\0';
	}
}

enum {
	HEAL_DELAY_MAX_S   = 7 * 86400,      /* a week: past that a heal is no heal */
	CLONE_WINDOW_MAX_S = 86400,          /* a day: the state keeps one watch at a time */
};

/* --heal-delay MIN:MAX (seconds): the bounds of each relationship's
 * random heal delay after a revocation (proto/revocation.md §2). */
static int parse_heal_delay(const char *s, struct relmd_config *cfg)
{
	char *end;
	unsigned long lo, hi;

	errno = 0;
	lo = strtoul(s, &end, 10);
	if (errno || end == s || *end != ':')
		return -1;
	s = end + 1;
	hi = strtoul(s, &end, 10);
	if (errno || end == s || *end || lo < 1 || lo > hi || hi > HEAL_DELAY_MAX_S)
		return -1;
	cfg->heal_min_ms = (uint32_t)(lo * 1000);
	cfg->heal_max_ms = (uint32_t)(hi * 1000);
	return 0;
}

static int check_addr(const char *opt, const char *v)
{
	if (v[0] && relmd_addr_parse(v, NULL, 0, NULL) < 0) {
		fprintf(stderr, "relmd: %s %s: expected HOST:PORT (port 1-65535, IPv6 in [])\n", opt, v);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "socket", required_argument, NULL, 'S' },
		{ "mailbox", required_argument, NULL, 'm' },
		{ "serve-mailbox", required_argument, NULL, 'M' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "heal-delay", required_argument, NULL, 'H' },
		{ "clone-window", required_argument, NULL, 'C' },
		{ "lease-ttl", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	/* Keep freed memory instead of handing it back with brk/munmap after
	 * every request: on a paravirtualised machine each shrink is a TLB
	 * shootdown across CPUs, and it cost a third of relmd's time under
	 * load.  RSS stays bounded by the peak working set. */
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_TOP_PAD, 8 << 20);
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	/* No SQLite memory statistics: with them every sqlite3_malloc and
	 * sqlite3_free takes a process-wide mutex to count bytes (hundreds of
	 * times per message, the sub-journal of each step's savepoint alone
	 * allocates in 1 KB chunks), and nothing here reads the counts.  Must
	 * precede SQLite's initialisation, i.e. the first open. */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	struct relmd_config cfg;
	relmd_config_default(&cfg);
	cfg.handle_signals = 1;
	cfg.notify = 1;
	int check_only = 0, state_given = 0, socket_given = 0;
	int c;
	while ((c = getopt_long(argc, argv, "nhV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (snprintf(cfg.state_dir, sizeof cfg.state_dir, "%s", optarg) >= (int)sizeof cfg.state_dir) {
				fprintf(stderr, "relmd: --state: path too long\n");
				return EXIT_USAGE;
			}
			state_given = 1;
			break;
		case 'S':
			if (strlen(optarg) >= sizeof cfg.socket_path) {
				fprintf(stderr, "relmd: --socket: %zu bytes is longer than the %zu a Unix "
					"socket path can hold: %s\n", strlen(optarg),
					sizeof cfg.socket_path - 1, optarg);
				return 1;
			}
			snprintf(cfg.socket_path, sizeof cfg.socket_path, "%s", optarg);
			socket_given = 1;
			break;
		case 'm':
		case 'M': {
			char *dst = c == 'm' ? cfg.mailbox : cfg.serve_mailbox;
			if (strlen(optarg) >= RELMD_ADDR_MAX || check_addr(c == 'm' ? "--mailbox" :
							  "--serve-mailbox", optarg) < 0)
				return EXIT_USAGE;
			snprintf(dst, RELMD_ADDR_MAX, "%s", optarg);
			break;
		}
		case 'l':
			if (log_level_parse(optarg, &cfg.log_level) < 0) {
				fprintf(stderr, "relmd: --log-level %s: expected err, warn, info or debug\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'H':
			if (parse_heal_delay(optarg, &cfg) < 0) {
				fprintf(stderr, "relmd: --heal-delay %s: expected MIN:MAX seconds, "
					"1 <= MIN <= MAX <= %u\n", optarg, HEAL_DELAY_MAX_S);
				return EXIT_USAGE;
			}
			break;
		case 'C': {
			char *end;
			unsigned long s;
			errno = 0;
			s = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || s < 1 || s > CLONE_WINDOW_MAX_S) {
				fprintf(stderr, "relmd: --clone-window %s: expected seconds, 1 to %u\n",
					optarg, CLONE_WINDOW_MAX_S);
				return EXIT_USAGE;
			}
			cfg.clone_window_ms = (uint32_t)(s * 1000);
			break;
		}
		case 'L': {
			char *end;
			unsigned long s;
			errno = 0;
			s = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || s < 2 || s > 120) {
				fprintf(stderr, "relmd: --lease-ttl %s: expected seconds, 2 to 120\n", optarg);
				return EXIT_USAGE;
			}
			cfg.lease_ttl_ms = (uint32_t)(s * 1000);
			break;
		}
		case 'n':
			check_only = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("relmd %s (api %d)\n", RELMD_VERSION, RELMD_API_VERSION);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "relmd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	int r = log_init("relmd", cfg.log_level, getenv("RELMD_LOG_FILE"));
	if (r < 0)
		fprintf(stderr, "relmd: RELMD_LOG_FILE: %s (logging to stderr)\n", strerror(-r));

	/* Zero configuration: with no mailbox named, serve one here and use it. */
	if (!cfg.mailbox[0] && !cfg.serve_mailbox[0])
		snprintf(cfg.serve_mailbox, sizeof cfg.serve_mailbox, "%s", RELMD_DEFAULT_MAILBOX);
	if (!cfg.mailbox[0])
		snprintf(cfg.mailbox, sizeof cfg.mailbox, "%s", cfg.serve_mailbox);
	(void)state_given;

	if (!cfg.state_dir[0]) {
		fprintf(stderr, "relmd: no state folder: neither XDG_STATE_HOME nor HOME is set; "
			"pass --state DIR\n");
		return 1;
	}
	snprintf(cfg.store_path, sizeof cfg.store_path, "%.4000s/relm.db", cfg.state_dir);

	if (!check_only) {
		int n = relmd_sd_listen_fds();
		if (n < 0)
			log_warn("LISTEN_FDS/LISTEN_PID malformed: ignoring socket activation");
		if (n >= 1) {
			cfg.listen_fd = RELMD_SD_LISTEN_FDS_START;
			if (n > 1)
				log_warn("systemd passed %d sockets; using the first (fd 3)", n);
		}
	}
	if (cfg.listen_fd < 0 && !cfg.socket_path[0]) {
		fprintf(stderr, "relmd: no socket path: XDG_RUNTIME_DIR is not set; pass --socket PATH\n");
		return 1;
	}

	if (check_only) {
		int bad = 0;
		r = dir_would_work(cfg.state_dir);
		if (r < 0) {
			printf("state folder %s: not usable: %s\n", cfg.state_dir, strerror(-r));
			bad = 1;
		}
		char dir[sizeof cfg.socket_path];
		snprintf(dir, sizeof dir, "%s", cfg.socket_path);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			r = dir_would_work(dir);
			if (r < 0) {
				printf("socket folder %s: not usable: %s\n", dir, strerror(-r));
				bad = 1;
			}
		}
		printf("state    %s%s\n", cfg.state_dir, state_given ? "" : " (default)");
		printf("store    %s\n", cfg.store_path);
		printf("socket   %s%s\n", cfg.socket_path, socket_given ? "" : " (default)");
		printf("mailbox  %s\n", cfg.mailbox);
		printf("serve    %s\n", cfg.serve_mailbox[0] ? cfg.serve_mailbox : "(none)");
		printf("log      %s\n", log_level_name(cfg.log_level));
		printf(bad ? "configuration has errors\n" : "configuration ok\n");
		return bad ? 1 : 0;
	}

	r = mkdir_p(cfg.state_dir);
	if (r < 0) {
		log_err("state folder %s: %s", cfg.state_dir, strerror(-r));
		return 1;
	}
	/* One relmd per state folder, before the store is opened. */
	int lock_fd = -1;
	pid_t holder = 0;
	r = relmd_state_lock(cfg.state_dir, &lock_fd, &holder);
	if (r == -EWOULDBLOCK) {
		if (holder > 0)
			log_err("state folder %s is in use by another relmd (pid %d): not starting",
				cfg.state_dir, (int)holder);
		else
			log_err("state folder %s is in use by another relmd (%s/%s is locked): not starting",
				cfg.state_dir, cfg.state_dir, RELMD_STATE_LOCK_FILE);
		return 1;
	}
	if (r < 0) {
		log_err("cannot lock the state folder %s (%s/%s): %s", cfg.state_dir, cfg.state_dir,
			RELMD_STATE_LOCK_FILE, strerror(-r));
		return 1;
	}
	struct relmd_hooks hooks = { 0 };
	struct relmd_app *app = NULL;
	if ((r = relmd_app_setup(&app, &cfg, &hooks)) < 0) {
		log_err("setup failed: %s", relm_strerror(r));
		relmd_state_unlock(lock_fd);
		return 1;
	}
	static struct relmd d;     /* large (paths): not on the stack */
	r = relmd_init(&d, &cfg, &hooks);
	if (r < 0) {
		log_err("init: %s", relm_strerror(r));
		relmd_app_free(app);
		relmd_state_unlock(lock_fd);
		return 1;
	}
	int code;
	if ((r = relmd_app_bind(app, &d)) < 0 || relmd_start(&d) < 0) {
		if (r < 0)
			log_err("binding the API: %s", relm_strerror(r));
		relmd_stop(&d, 1);
		code = 1;
	} else {
		code = relmd_run(&d);
	}
	if (relmd_clear(&d) != 0)
		code = 1;
	relmd_app_free(app);             /* the store is closed: the folder is free */
	relmd_state_unlock(lock_fd);
	return code;
}

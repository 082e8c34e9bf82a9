/*
 * util_pg.c — see util_pg.h.
 */
#include "util_pg.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <libpq-fe.h>

static char pg_dir[64];
static char pg_bin[256];
static pid_t pg_pid;

static int pg_rm(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

/* The folder of initdb / postgres: pg_config's, else Debian's place. */
static int find_bin(void)
{
	static const char *const dirs[] = { "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin",
	                                    "/usr/lib/postgresql/17/bin", "/usr/local/pgsql/bin" };
	char path[300];
	const char *env = getenv("RELM_PG_BIN");

	if (env && *env) {
		snprintf(pg_bin, sizeof(pg_bin), "%s", env);
		snprintf(path, sizeof(path), "%s/initdb", pg_bin);
		return access(path, X_OK) == 0 ? 0 : -1;
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/initdb", dirs[i]);
		if (access(path, X_OK) == 0) {
			snprintf(pg_bin, sizeof(pg_bin), "%s", dirs[i]);
			return 0;
		}
	}
	return -1;
}

/* Become the unprivileged user when root (initdb and postgres refuse root). */
static int drop_root(const struct passwd *pw)
{
	if (geteuid() != 0)
		return 0;
	if (!pw || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
		return -1;
	return 0;
}

/* Run argv as the server's user with output into log; its exit status. */
static int run(const struct passwd *pw, char *const argv[], const char *log)
{
	pid_t pid;
	int st;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (drop_root(pw) != 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int upg_running(void)
{
	return pg_pid > 0;
}

const char *upg_host(void)
{
	return pg_dir;
}

int upg_start(char *why, size_t whylen, int fsync)
{
	const struct passwd *pw = geteuid() == 0 ? getpwnam("nobody") : NULL;
	char data[128], log[128], initdb[300], postgres[300], conn[200];
	char fsync_opt[32];
	uint64_t waited = 0;

	if (pg_pid)
		return 0;
	if (find_bin() != 0) {
		snprintf(why, whylen, "PostgreSQL server binaries (initdb, postgres) not found: "
		         "install postgresql-15 (make does) or set RELM_PG_BIN");
		return -1;
	}
	if (geteuid() == 0 && !pw) {
		snprintf(why, whylen, "running as root and there is no user `nobody` to run PostgreSQL as");
		return -1;
	}
	snprintf(pg_dir, sizeof(pg_dir), "/tmp/relm-pg-XXXXXX");
	if (!mkdtemp(pg_dir)) {
		snprintf(why, whylen, "mkdtemp: %s", strerror(errno));
		return -1;
	}
	if (pw && chown(pg_dir, pw->pw_uid, pw->pw_gid) != 0) {
		snprintf(why, whylen, "chown %s: %s", pg_dir, strerror(errno));
		goto fail;
	}
	snprintf(data, sizeof(data), "%s/data", pg_dir);
	snprintf(log, sizeof(log), "%s/server.log", pg_dir);
	snprintf(initdb, sizeof(initdb), "%s/initdb", pg_bin);
	snprintf(postgres, sizeof(postgres), "%s/postgres", pg_bin);
	{
		char *argv[] = { initdb, "-D", data, "-U", "relm", "--auth=trust", "-N", "-E", "UTF8",
		                 "--locale=C", NULL };
		int rc = run(pw, argv, log);

		if (rc != 0) {
			snprintf(why, whylen, "initdb failed (%d): see %s", rc, log);
			goto fail;
		}
	}
	snprintf(fsync_opt, sizeof(fsync_opt), "fsync=%s", fsync ? "on" : "off");
	fflush(NULL);
	pg_pid = fork();
	if (pg_pid < 0) {
		pg_pid = 0;
		snprintf(why, whylen, "fork: %s", strerror(errno));
		goto fail;
	}
	if (pg_pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		char *argv[] = { postgres, "-D", data, "-k", pg_dir, "-c", "listen_addresses=",
		                 "-c", fsync_opt, "-c", "max_connections=300",
		                 "-c", "log_min_messages=warning", NULL };

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		setsid();
		if (drop_root(pw) != 0)
			_exit(126);
		/* after setuid, which clears it: die (fast shutdown) with our parent */
		prctl(PR_SET_PDEATHSIG, SIGINT);
		if (getppid() == 1)
			_exit(1);
		execv(postgres, argv);
		_exit(127);
	}
	snprintf(conn, sizeof(conn), "host=%s user=relm dbname=postgres", pg_dir);
	while (PQping(conn) != PQPING_OK) {
		struct timespec ts = { 0, 20 * 1000000L };
		int st;

		if (waitpid(pg_pid, &st, WNOHANG) == pg_pid) {
			pg_pid = 0;
			snprintf(why, whylen, "postgres exited at start: see %s", log);
			goto fail;
		}
		if ((waited += 20) > 30000) {
			snprintf(why, whylen, "postgres did not answer within 30 s: see %s", log);
			goto fail;
		}
		nanosleep(&ts, NULL);
	}
	return 0;
fail:
	upg_stop();
	return -1;
}

void upg_stop(void)
{
	if (pg_pid > 0) {
		int st;

		kill(pg_pid, SIGINT);   /* fast shutdown */
		waitpid(pg_pid, &st, 0);
		pg_pid = 0;
	}
	if (pg_dir[0] && getenv("RELM_PG_KEEP") == NULL)
		nftw(pg_dir, pg_rm, 16, FTW_DEPTH | FTW_PHYS);
	pg_dir[0] = '\0';
}

int upg_new_db(const char *name, char *conninfo, size_t cap)
{
	char admin[200], sql[200];
	PGconn *c;
	PGresult *r;
	int ok;

	snprintf(admin, sizeof(admin), "host=%s user=relm dbname=postgres", pg_dir);
	c = PQconnectdb(admin);
	if (PQstatus(c) != CONNECTION_OK) {
		PQfinish(c);
		return -1;
	}
	snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\" STRATEGY FILE_COPY", name);
	r = PQexec(c, sql);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "upg_new_db: %s", PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
	if (!ok)
		return -1;
	snprintf(conninfo, cap, "host=%s user=relm dbname=%s", pg_dir, name);
	return 0;
}

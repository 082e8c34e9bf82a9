/*
 * check_relmctl_web.c — `relmctl web` (daemon/relmctl/web.c) for a running
 * relmd, as a person starts it: the address line it prints, the page that
 * address serves, the browser it opens (a stand-in xdg-open in PATH, or
 * none), and relm-web stopping with it — on Ctrl+C, SIGTERM, and even when
 * relmctl is killed outright.
 *
 * relmctl runs from $BUILD and finds relm-web beside itself, so PATH is
 * free to say which browser opener exists: an empty folder (none) or one
 * holding a script that writes down what it was asked to open.  DISPLAY is
 * set in both, so relmctl does look for the opener.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util_daemon.h"
#include "util_web.h"

enum { WAIT_MS = 10000 };

static void base_up(void) { td_base_new("relmctl-web"); }
static void base_down(void) { td_base_free(); }
static void kill_all(void) { td_kill_all(); }

/* A relmd, and `relmctl web` for it with its stdout and stderr on pipes. */
struct ctl {
	struct tw_web w;            /* dir, mailbox, relmd; port, token, url once read */
	pid_t pid;                  /* relmctl */
	pid_t web;                  /* the relm-web it started */
	int out, err;
	char bin[TD_PATH_MAX + 8];  /* PATH: the browser openers there are */
	char said[4096];            /* what relmctl wrote to stderr so far */
	size_t said_len;
};

/* Append what fd has to buf (NUL-terminated) until needle is in it, EOF,
 * or timeout_ms: 1 (needle found), -1 (EOF: every writer gone), 0 (time
 * out, or buf full). */
static int read_until(int fd, char *buf, size_t cap, size_t *len, const char *needle, int timeout_ms)
{
	long long end = td_now_ms() + timeout_ms;
	buf[*len] = '\0';
	while (!strstr(buf, needle)) {
		long long left = end - td_now_ms();
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (left <= 0 || *len + 1 >= cap)
			return 0;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t r = read(fd, buf + *len, cap - 1 - *len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		*len += (size_t)r;
		buf[*len] = '\0';
	}
	return 1;
}

/* The relm-web that parent started (a child named relm-web, from /proc), or 0. */
static pid_t child_of(pid_t parent)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;
	ck_assert_ptr_nonnull(d);
	while (!found && (e = readdir(d))) {
		char path[300], stat_line[512], comm[64] = "";
		int ppid = 0;
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		/* "pid (comm) state ppid ...": comm has no ')' here */
		if (fgets(stat_line, sizeof stat_line, f) &&
		    sscanf(stat_line, "%*d (%63[^)]) %*c %d", comm, &ppid) == 2 && ppid == parent &&
		    !strcmp(comm, "relm-web"))
			found = (pid_t)atoi(e->d_name);
		fclose(f);
	}
	closedir(d);
	return found;
}

/* PATH = a fresh folder (with an xdg-open that writes its arguments to
 * <dir>/opened when opener), DISPLAY set; then a relmd and `relmctl web`
 * (listen: its --listen, or NULL).  This process becomes a subreaper, so a
 * relm-web whose relmctl was killed is reparented here and can be waited
 * for (a container's init may never reap it). */
static void ctl_start(struct ctl *c, int opener, const char *listen)
{
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	memset(c, 0, sizeof *c);
	td_dir_new(c->w.dir, sizeof c->w.dir);
	ck_assert_int_eq(td_mbox_start(&c->w.mbox, c->w.dir, "mailbox", 0), 0);
	ck_assert_int_eq(td_relmd_start(&c->w.relmd, c->w.dir, "alice", c->w.mbox.port), 0);
	snprintf(c->bin, sizeof c->bin, "%s/bin", c->w.dir);
	ck_assert_int_eq(mkdir(c->bin, 0700), 0);
	if (opener) {
		char path[TD_PATH_MAX + 32];
		snprintf(path, sizeof path, "%s/xdg-open", c->bin);
		FILE *f = fopen(path, "w");
		ck_assert_ptr_nonnull(f);
		fprintf(f, "#!/bin/sh\nprintf '%%s\\n' \"$@\" > '%s/opened.tmp' && "
			"mv '%s/opened.tmp' '%s/opened'\n", c->w.dir, c->w.dir, c->w.dir);
		ck_assert_int_eq(fclose(f), 0);
		ck_assert_int_eq(chmod(path, 0700), 0);
	}
	/* mv is found by the script's own PATH search: give it /bin after ours */
	char path_env[TD_PATH_MAX + 32];
	snprintf(path_env, sizeof path_env, opener ? "%s:/usr/bin:/bin" : "%s", c->bin);
	ck_assert_int_eq(setenv("PATH", path_env, 1), 0);
	ck_assert_int_eq(setenv("DISPLAY", ":99", 1), 0);
	ck_assert_int_eq(setenv("XDG_RUNTIME_DIR", c->w.dir, 1), 0);

	char prog[TD_PATH_MAX + 16];
	td_prog(prog, sizeof prog, "relmctl");
	char l[64];
	snprintf(l, sizeof l, "%s", listen ? listen : "");
	char *argv[] = { prog, "--socket", c->w.relmd.sock, "web", listen ? "--listen" : NULL, l, NULL };
	c->pid = td_spawn_piped(argv, &c->out, &c->err);
}

/* The address line: http://127.0.0.1:PORT/?token=<43 base64url>, and the
 * relm-web that serves it, a child of relmctl. */
static void ctl_address(struct ctl *c)
{
	char buf[sizeof c->w.url];
	size_t n = 0;
	ck_assert_msg(read_until(c->out, buf, sizeof buf, &n, "\n", WAIT_MS) == 1, "no address line: '%s'", buf);
	char *nl = strchr(buf, '\n');
	ck_assert_str_eq(nl + 1, "");           /* the one line, nothing after it */
	*nl = '\0';
	snprintf(c->w.url, sizeof c->w.url, "%s", buf);
	int skip = 0;
	ck_assert_msg(sscanf(buf, "http://127.0.0.1:%d/?token=%n", &c->w.port, &skip) == 1 && skip > 0,
		      "not the address: '%s'", buf);
	ck_assert_uint_eq(strlen(buf + skip), WEB_TOKEN_LEN);
	ck_assert_uint_eq(strspn(buf + skip, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
			  WEB_TOKEN_LEN);
	snprintf(c->w.token, sizeof c->w.token, "%s", buf + skip);
	c->web = child_of(c->pid);
	ck_assert_int_gt(c->web, 0);
}

/* The address serves the page, with the token as its cookie; without the
 * token it is refused. */
static void assert_page(const struct ctl *c)
{
	/* the address as printed: its path and query, on its host and port */
	const char *path = strchr(c->w.url + strlen("http://"), '/');
	struct tw_resp r = tw_request(&c->w, "GET", path, 0, NULL, NULL, 0);
	char want[120];
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "<script type=\"module\" src=\"/app.js\">"));
	snprintf(want, sizeof want, "relm_web_%d=%s; Path=/; HttpOnly; SameSite=Strict", c->w.port, c->w.token);
	ck_assert_str_eq(tw_hdr(&r, "Set-Cookie"), want);
	tw_resp_free(&r);
	r = tw_request(&c->w, "GET", "/", 0, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 403);
	tw_resp_free(&r);
	/* and the bridge reaches this relmd */
	r = tw_api(&c->w, TW_GOOD, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\"}");
	ck_assert_int_eq(r.status, 200);
	char want_sock[TD_PATH_MAX + 16];
	snprintf(want_sock, sizeof want_sock, "\"socket\":\"%s\"", c->w.relmd.sock);
	ck_assert_msg(strstr(r.body, want_sock), "%s", r.body);
	tw_resp_free(&r);
}

/* relm-web has stopped (exit 0, as on SIGINT/SIGTERM): its process is
 * gone — reaped by relmctl, or reparented here and reaped now — and its
 * port refuses. */
static void assert_web_gone(const struct ctl *c)
{
	long long end = td_now_ms() + WAIT_MS;
	int st = 0;
	pid_t w;
	while ((w = waitpid(c->web, &st, WNOHANG)) == 0 && td_now_ms() < end)
		td_sleep_ms(20);
	if (w == c->web)
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "relm-web: status %d", st);
	else
		ck_assert_msg(w < 0 && errno == ECHILD && kill(c->web, 0) < 0 && errno == ESRCH,
			      "relm-web (pid %d) still runs", (int)c->web);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->w.port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_lt(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(errno, ECONNREFUSED);
	close(fd);
}

/* What is left on fd until its end (every writer gone), appended to buf. */
static void read_rest(int fd, char *buf, size_t cap, size_t *len)
{
	ck_assert_msg(read_until(fd, buf, cap, len, "\x01", WAIT_MS) == -1, "no end of output in %d ms", WAIT_MS);
}

/* Wait for relmctl to exit by itself: its wait status. */
static int ctl_exit(struct ctl *c)
{
	return td_stop(&c->pid, 0, WAIT_MS);
}

/* The end of a test, passed or not yet: every child gone, pipes closed. */
static void ctl_end(struct ctl *c)
{
	td_kill_all();
	close(c->out);
	close(c->err);
}

START_TEST(no_opener)
{
	struct ctl c;
	ctl_start(&c, 0, NULL);
	ctl_address(&c);
	/* No browser opener in PATH: relmctl says what to do instead. */
	ck_assert_msg(read_until(c.err, c.said, sizeof c.said, &c.said_len,
				 "open that address in a browser on this machine; Ctrl+C stops relm-web",
				 WAIT_MS) == 1, "stderr: '%s'", c.said);
	assert_page(&c);
	/* Ctrl+C: relmctl exits 0, and relm-web with it. */
	int st = td_stop(&c.pid, SIGINT, WAIT_MS);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "relmctl: status %d", st);
	assert_web_gone(&c);
	/* stdout held the address line only; the token is nowhere else */
	char rest[256];
	size_t n = 0;
	read_rest(c.out, rest, sizeof rest, &n);
	ck_assert_uint_eq(n, 0);
	read_rest(c.err, c.said, sizeof c.said, &c.said_len);
	ck_assert_ptr_null(strstr(c.said, c.w.token));
	ctl_end(&c);
}
END_TEST

START_TEST(opener)
{
	struct ctl c;
	ctl_start(&c, 1, NULL);
	ctl_address(&c);
	/* The opener gets a file that redirects to the address, never the
	 * address itself: the token is on no command line. */
	char opened[TD_PATH_MAX + 16], args[512] = "", page[TD_PATH_MAX + 32];
	snprintf(opened, sizeof opened, "%s/opened", c.w.dir);
	long long end = td_now_ms() + WAIT_MS;
	while (access(opened, F_OK) < 0 && td_now_ms() < end)
		td_sleep_ms(20);
	int fd = open(opened, O_RDONLY);
	ck_assert_msg(fd >= 0, "xdg-open was not run");
	ck_assert_int_gt(read(fd, args, sizeof args - 1), 0);
	close(fd);
	snprintf(page, sizeof page, "%s/relm-web-%d.html", c.w.dir, (int)c.pid);
	char want[TD_PATH_MAX + sizeof c.w.url];
	snprintf(want, sizeof want, "file://%s\n", page);
	ck_assert_str_eq(args, want);
	struct stat sb;
	ck_assert_int_eq(stat(page, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0600);
	fd = open(page, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	char html[2048] = "";
	ck_assert_int_gt(read(fd, html, sizeof html - 1), 0);
	close(fd);
	snprintf(want, sizeof want, "content=\"0;url=%s\"", c.w.url);
	ck_assert_msg(strstr(html, want), "%s", html);
	assert_page(&c);
	/* SIGTERM: relmctl exits 0, relm-web with it, and the page goes. */
	int st = td_stop(&c.pid, SIGTERM, WAIT_MS);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "relmctl: status %d", st);
	assert_web_gone(&c);
	ck_assert_int_lt(access(page, F_OK), 0);
	ck_assert_int_eq(errno, ENOENT);
	/* A browser was opened: no advice to open one by hand. */
	read_rest(c.err, c.said, sizeof c.said, &c.said_len);
	ck_assert_msg(!strstr(c.said, "open that address"), "stderr: '%s'", c.said);
	ctl_end(&c);
}
END_TEST

/* Closing the terminal (SIGHUP), or killing relmctl outright, stops
 * relm-web too: it never outlives the relmctl that started it. */
START_TEST(hangup_and_kill)
{
	struct ctl c;
	ctl_start(&c, 0, NULL);
	ctl_address(&c);
	int st = td_stop(&c.pid, SIGHUP, WAIT_MS);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "relmctl after SIGHUP: status %d", st);
	assert_web_gone(&c);
	ctl_end(&c);

	ctl_start(&c, 0, NULL);
	ctl_address(&c);
	st = td_stop(&c.pid, SIGKILL, WAIT_MS);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	assert_web_gone(&c);
	ctl_end(&c);
}
END_TEST

/* --listen goes to relm-web, which refuses an address other machines can
 * reach: relmctl exits 2 (usage), with no address printed. */
START_TEST(listen_refused)
{
	struct ctl c;
	ctl_start(&c, 0, "0.0.0.0:0");
	int st = ctl_exit(&c);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 2, "relmctl: status %d", st);
	char out[256];
	size_t n = 0;
	read_rest(c.out, out, sizeof out, &n);
	ck_assert_uint_eq(n, 0);
	read_rest(c.err, c.said, sizeof c.said, &c.said_len);
	ck_assert_msg(strstr(c.said, "--listen 0.0.0.0:0: not a loopback address"), "stderr: '%s'", c.said);
	ctl_end(&c);
}
END_TEST

static Suite *relmctl_web_suite(void)
{
	Suite *s = suite_create("relmctl_web");
	struct { const char *name; const TTest *t; } cases[] = {
		{ "no_opener", no_opener },
		{ "opener", opener },
		{ "hangup_and_kill", hangup_and_kill },
		{ "listen_refused", listen_refused },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_add_unchecked_fixture(tc, base_up, base_down);
		tcase_add_checked_fixture(tc, NULL, kill_all);
		tcase_set_timeout(tc, 30);
		tcase_add_test(tc, cases[i].t);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(relmctl_web_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}

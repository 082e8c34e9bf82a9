/*
 * web.c — `relmctl web`: start relm-web for this relmd and open its page
 * in a browser where there is one, without the token on a command line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sodium.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/server.h"
#include "relmctl/relmctl.h"

static pid_t web_child;

/* Ctrl+C and SIGTERM go on to relm-web as they are.  SIGHUP (the terminal
 * closed) goes on as SIGTERM: relm-web, like a daemon, keeps running on a
 * hangup, and would otherwise outlive the terminal it was started from. */
static void web_forward(int sig)
{
	if (web_child > 0)
		kill(web_child, sig == SIGHUP ? SIGTERM : sig);
}

/* relm-web beside this program (a build tree, an install), else from PATH. */
static void web_program(char *out, size_t n)
{
	char self[PATH_MAX - 16];
	ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
	if (k > 0) {
		self[k] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(out, n, "%s/relm-web", self);
			if (access(out, X_OK) == 0)
				return;
		}
	}
	snprintf(out, n, "relm-web");
}

/* Open url in a browser without putting the token on any command line
 * (other users can read those in /proc): a 0600 page that redirects to it,
 * given to xdg-open.  Returns 1 if a browser was asked, 0 if there is none. */
static int web_open(const char *url, char *page, size_t n)
{
	page[0] = '\0';
	if (!getenv("DISPLAY") && !getenv("WAYLAND_DISPLAY"))
		return 0;
	const char *path = getenv("PATH");
	int found = 0;
	for (const char *p = path ? path : ""; *p && !found;) {
		const char *e = strchr(p, ':');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char cand[PATH_MAX];
		snprintf(cand, sizeof cand, "%.*s/xdg-open", (int)len, p);
		found = len && access(cand, X_OK) == 0;
		p += len + (e ? 1 : 0);
	}
	if (!found)
		return 0;
	const char *dir = getenv("XDG_RUNTIME_DIR");
	snprintf(page, n, "%s/relm-web-%ld.html", dir && *dir == '/' ? dir : "/tmp", (long)getpid());
	int fd = open(page, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		page[0] = '\0';
		return 0;
	}
	dprintf(fd, "<!doctype html><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" "
		"content=\"0;url=%s\"><title>relm</title><p><a href=\"%s\">Open relm</a></p>\n",
		url, url);
	close(fd);
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		char arg[PATH_MAX + 8];
		snprintf(arg, sizeof arg, "file://%s", page);
		execlp("xdg-open", "xdg-open", arg, (char *)NULL);
		_exit(127);
	}
	return pid > 0;
}

int cmd_web(const char *sock, int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: %s web [--listen HOST:PORT]\n\n"
			       "Start relm-web for this relmd: print the address to open (it carries\n"
			       "an access token) and open it in a browser where there is one.\n"
			       "relm-web runs until Ctrl+C.\n", prog);
			return 0;
		}
		if (strcmp(argv[i], "--listen") || i + 1 >= argc) {
			fprintf(stderr, "usage: %s web [--listen HOST:PORT]\n", prog);
			return EXIT_USAGE;
		}
		i++;
	}
	char exe[PATH_MAX];
	web_program(exe, sizeof exe);
	int out[2];
	if (pipe2(out, O_CLOEXEC) < 0) {
		fprintf(stderr, "%s: pipe: %s\n", prog, strerror(errno));
		return EXIT_CONNECT;
	}
	fflush(NULL);
	pid_t self = getpid();
	web_child = fork();
	if (web_child == 0) {
		/* relm-web lives no longer than this relmctl, even one killed
		 * with SIGKILL (which it cannot forward): else it would go on
		 * serving, with a token nobody holds, until someone finds it. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != self)
			_exit(127);
		dup2(out[1], 1);
		char *args[8] = { "relm-web", "--socket", (char *)(uintptr_t)sock };
		int k = 3;
		for (int i = 0; i < argc && k < 7; i++)
			args[k++] = argv[i];
		args[k] = NULL;
		if (strchr(exe, '/'))
			execv(exe, args);
		else
			execvp(exe, args);
		fprintf(stderr, "%s: cannot run %s: %s\n", prog, exe, strerror(errno));
		_exit(127);
	}
	close(out[1]);
	if (web_child < 0) {
		close(out[0]);
		fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
		return EXIT_CONNECT;
	}
	signal(SIGINT, web_forward);
	signal(SIGTERM, web_forward);
	signal(SIGHUP, web_forward);
	char url[256] = "";
	size_t len = 0;
	while (len + 1 < sizeof url) {
		ssize_t r = read(out[0], url + len, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || url[len] == '\n')
			break;
		len++;
	}
	url[len] = '\0';
	close(out[0]);
	char page[PATH_MAX] = "";
	if (len) {
		printf("%s\n", url);
		if (!web_open(url, page, sizeof page))
			fprintf(stderr, "%s: open that address in a browser on this machine; Ctrl+C stops relm-web\n",
				prog);
		fflush(stdout);
	}
	sodium_memzero(url, sizeof url);
	int st = 0;
	while (waitpid(web_child, &st, 0) < 0 && errno == EINTR)
		;
	if (page[0])
		unlink(page);
	if (WIFEXITED(st))
		return WEXITSTATUS(st) == 0 ? 0 : WEXITSTATUS(st) == 2 ? EXIT_USAGE : EXIT_CONNECT;
	return WIFSIGNALED(st) && (WTERMSIG(st) == SIGINT || WTERMSIG(st) == SIGTERM) ? 0 : EXIT_CONNECT;
}

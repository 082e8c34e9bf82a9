/*
 * sdnotify.c — see sdnotify.h.  Protocol: systemd's sd_notify(3) and
 * sd_listen_fds(3) man pages; one datagram per state change.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "relmd/sdnotify.h"

int relmd_sd_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (!path || !*path)
		return 0;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path)
		return -EINVAL;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';   /* abstract namespace: length, not NUL, ends it */
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
				      (path[0] == '/' ? 1 : 0));
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ssize_t w = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	int r = w < 0 ? -errno : 0;
	close(fd);
	return r;
}

static int parse_uint(const char *s, unsigned long *out)
{
	if (!s || !*s)
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || s[0] == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

int relmd_sd_listen_fds(void)
{
	const char *pid_s = getenv("LISTEN_PID");
	const char *fds_s = getenv("LISTEN_FDS");
	int r = 0;
	unsigned long pid, nfds;
	if (!pid_s || !fds_s)
		goto out;
	if (parse_uint(pid_s, &pid) < 0 || parse_uint(fds_s, &nfds) < 0 || nfds > 64) {
		r = -EINVAL;
		goto out;
	}
	if ((pid_t)pid != getpid())
		goto out;             /* meant for another process */
	for (unsigned long i = 0; i < nfds; i++) {
		int fd = RELMD_SD_LISTEN_FDS_START + (int)i;
		int fl = fcntl(fd, F_GETFD);
		if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) {
			r = -errno;
			goto out;
		}
	}
	r = (int)nfds;
out:
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return r;
}

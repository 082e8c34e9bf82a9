/*
 * state_lock.c — see state_lock.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relmd/state_lock.h"

/* The pid a holder wrote into the file, when F_GETLK could not tell (0 if
 * none is there). */
static pid_t pid_written(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *end;
	long v = strtol(buf, &end, 10);
	return v > 0 && v < (1L << 30) && *end == '\n' ? (pid_t)v : 0;
}

int relmd_state_lock(const char *dir, int *fd_out, pid_t *holder)
{
	char path[FILENAME_MAX];
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	int fd, r;

	*fd_out = -1;
	*holder = 0;
	if (snprintf(path, sizeof path, "%s/%s", dir, RELMD_STATE_LOCK_FILE) >= (int)sizeof path)
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (fcntl(fd, F_SETLK, &fl) < 0) {
		r = -errno;
		if (r == -EACCES || r == -EAGAIN) {
			struct flock q = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
			if (fcntl(fd, F_GETLK, &q) == 0 && q.l_type != F_UNLCK && q.l_pid > 0)
				*holder = q.l_pid;
			else
				*holder = pid_written(fd);
			r = -EWOULDBLOCK;
		}
		close(fd);
		return r;
	}
	/* Ours: say who we are, for people and for when F_GETLK cannot name
	 * the holder.  Only informative — a full disk must not stop a start —
	 * and a partial write lacks its '\n', so pid_written() ignores it. */
	char pid[24];
	int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
	ssize_t w = ftruncate(fd, 0) == 0 ? pwrite(fd, pid, (size_t)n, 0) : -1;
	(void)w;
	*fd_out = fd;
	return 0;
}

void relmd_state_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

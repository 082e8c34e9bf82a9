/*
 * bridge.c — blocking, bounded connections to relmd's socket (bridge.h).
 */
#include "web/bridge.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ms left until deadline (< 0: none, so -1 for poll). */
static int left_ms(long long deadline)
{
	if (deadline < 0)
		return -1;
	long long l = deadline - now_ms();
	return l < 0 ? 0 : (int)l;
}

int bridge_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	if (n >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, n + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int bridge_write_all(int fd, const char *buf, size_t len, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	size_t off = 0;
	while (off < len) {
		ssize_t w = send(fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int t = left_ms(deadline);
		if (t == 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, t) < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

void bridge_reader_init(struct bridge_reader *r, size_t max)
{
	memset(r, 0, sizeof *r);
	r->max = max;
}

void bridge_reader_clear(struct bridge_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof *r);
}

/* Take a complete line out of the buffer, if there is one: 1, 0 or -ENOMEM. */
static int take_line(struct bridge_reader *r, char **line, size_t *len)
{
	char *nl = r->len ? memchr(r->buf, '\n', r->len) : NULL;
	if (!nl)
		return 0;
	size_t n = (size_t)(nl - r->buf);
	char *out = malloc(n + 1);
	if (!out)
		return -ENOMEM;
	memcpy(out, r->buf, n);
	out[n] = '\0';
	memmove(r->buf, nl + 1, r->len - n - 1);
	r->len -= n + 1;
	*line = out;
	*len = n;
	return 1;
}

int bridge_read_line(int fd, struct bridge_reader *r, int timeout_ms, int wake_fd,
		     char **line, size_t *len)
{
	long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	for (;;) {
		int got = take_line(r, line, len);
		if (got)
			return got;
		if (r->len >= r->max)
			return -EMSGSIZE;
		if (r->cap - r->len < 4096) {
			size_t cap = r->cap ? r->cap * 2 : 65536;
			if (cap > r->max + 1)
				cap = r->max + 1;
			char *p = realloc(r->buf, cap);
			if (!p)
				return -ENOMEM;
			r->buf = p;
			r->cap = cap;
		}
		struct pollfd p[2] = {
			{ .fd = fd, .events = POLLIN },
			{ .fd = wake_fd, .events = POLLIN },
		};
		int k = poll(p, wake_fd >= 0 ? 2 : 1, left_ms(deadline));
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			return 0;
		if (wake_fd >= 0 && (p[1].revents & POLLIN))
			return -ECANCELED;
		ssize_t got_n = recv(fd, r->buf + r->len, r->cap - r->len, MSG_DONTWAIT);
		if (got_n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (got_n < 0)
			return -errno;
		if (got_n == 0)
			return -ECONNRESET;
		r->len += (size_t)got_n;
	}
}

int bridge_call(const char *path, const char *line, size_t len, char **reply,
		size_t *reply_len)
{
	int fd = bridge_connect(path);
	if (fd < 0)
		return fd;
	struct bridge_reader r;
	bridge_reader_init(&r, BRIDGE_LINE_MAX);
	int ret = bridge_write_all(fd, line, len, BRIDGE_CALL_TIMEOUT_MS);
	if (!ret)
		ret = bridge_write_all(fd, "\n", 1, BRIDGE_CALL_TIMEOUT_MS);
	if (!ret) {
		/* relmd sends nothing on an unsubscribed connection but the
		 * reply (or, when it refuses the connection, one error line). */
		ret = bridge_read_line(fd, &r, BRIDGE_CALL_TIMEOUT_MS, -1, reply, reply_len);
		ret = ret == 1 ? 0 : ret == 0 ? -ETIMEDOUT : ret;
	}
	bridge_reader_clear(&r);
	close(fd);
	return ret;
}

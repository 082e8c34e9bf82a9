/*
 * log.c — see log.h.  Deliberately tiny: no allocation, no locking beyond
 * the atomicity of a single write(2), safe to call from any thread (the
 * in-process tests run the loop in a second thread).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

enum { LOG_LINE_MAX = 2048 };   /* longer messages are truncated with "..." */

static enum log_level cur_level = LOGL_INFO;
static char log_ident[32] = "relmd";
static char log_path[4096];

static int open_onto_stderr(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return -errno;
	if (fd != STDERR_FILENO) {
		if (dup2(fd, STDERR_FILENO) < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
		close(fd);
	}
	return 0;
}

int log_init(const char *ident, enum log_level level, const char *path)
{
	if (ident)
		snprintf(log_ident, sizeof log_ident, "%s", ident);
	cur_level = level;
	log_path[0] = '\0';
	if (!path || !*path)
		return 0;
	if (strlen(path) >= sizeof log_path)
		return -ENAMETOOLONG;
	int r = open_onto_stderr(path);
	if (r == 0)
		snprintf(log_path, sizeof log_path, "%s", path);
	return r;
}

int log_reopen(void)
{
	if (!log_path[0])
		return 0;
	return open_onto_stderr(log_path);
}

void log_set_level(enum log_level level) { cur_level = level; }
enum log_level log_get_level(void) { return cur_level; }

int log_level_parse(const char *s, enum log_level *out)
{
	static const struct { const char *name; enum log_level l; } tab[] = {
		{ "err", LOGL_ERR }, { "error", LOGL_ERR }, { "3", LOGL_ERR },
		{ "warn", LOGL_WARN }, { "warning", LOGL_WARN }, { "4", LOGL_WARN },
		{ "info", LOGL_INFO }, { "6", LOGL_INFO },
		{ "debug", LOGL_DEBUG }, { "7", LOGL_DEBUG },
	};
	for (size_t i = 0; s && i < sizeof tab / sizeof tab[0]; i++)
		if (strcmp(s, tab[i].name) == 0) {
			*out = tab[i].l;
			return 0;
		}
	return -1;
}

const char *log_level_name(enum log_level level)
{
	switch (level) {
	case LOGL_ERR: return "err";
	case LOGL_WARN: return "warn";
	case LOGL_INFO: return "info";
	case LOGL_DEBUG: return "debug";
	}
	return "?";
}

static void log_v(enum log_level level, const char *fmt, va_list ap)
{
	if (level > cur_level)
		return;
	char line[LOG_LINE_MAX + 2];      /* + '\n' + NUL */
	int saved = errno;
	int n = snprintf(line, LOG_LINE_MAX + 1, "<%d>%s: ", (int)level, log_ident);
	if (n < 0)
		n = 0;
	int m = vsnprintf(line + n, LOG_LINE_MAX + 1 - (size_t)n, fmt, ap);
	size_t len = (size_t)n;
	if (m > 0)
		len += (size_t)m;
	if (len > LOG_LINE_MAX) {
		len = LOG_LINE_MAX;
		memcpy(line + len - 3, "...", 3);
	}
	/* A message with embedded newlines would become several journal
	 * entries without a prefix: flatten them. */
	for (size_t i = (size_t)n; i < len; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[len++] = '\n';
	ssize_t w;
	do
		w = write(STDERR_FILENO, line, len);
	while (w < 0 && errno == EINTR);
	errno = saved;
}

#define LOG_FN(fn, lvl)                         \
	void fn(const char *fmt, ...)           \
	{                                       \
		va_list ap;                     \
		va_start(ap, fmt);              \
		log_v(lvl, fmt, ap);            \
		va_end(ap);                     \
	}
LOG_FN(log_err, LOGL_ERR)
LOG_FN(log_warn, LOGL_WARN)
LOG_FN(log_info, LOGL_INFO)
LOG_FN(log_debug, LOGL_DEBUG)

/*
 * log.h — relmd's logger: one line per message on stderr, each prefixed
 * with its syslog priority in angle brackets ("<3>" err, "<4>" warning,
 * "<6>" info, "<7>" debug) so journald files it at the right level when
 * relmd runs under systemd (SyslogLevelPrefix= is on by default).
 *
 * Messages below the configured level are dropped before formatting.  If a
 * log file was given (RELMD_LOG_FILE), it is opened in append mode onto
 * fd 2, and log_reopen() — called on SIGHUP — reopens it so logrotate can
 * move the old file away.  Every line is emitted with one write(2) so lines
 * from concurrent writers never interleave mid-line.
 *
 * Logs carry ids and fingerprints only, never key material or bodies.
 */
#ifndef RELMD_LOG_H
#define RELMD_LOG_H

/* Values are the syslog priorities that prefix every line. */
enum log_level {
	LOGL_ERR   = 3,
	LOGL_WARN  = 4,
	LOGL_INFO  = 6,
	LOGL_DEBUG = 7,
};

/* Set the program name (prefix after the priority) and the level.  `path`
 * NULL logs to stderr as it is; otherwise the file is opened (O_APPEND,
 * 0600) and dup'ed onto fd 2.  Returns 0 or -errno (then stderr is kept). */
int log_init(const char *ident, enum log_level level, const char *path);
/* Reopen the log file given to log_init (no-op without one).  0 or -errno;
 * on failure the old file stays in use. */
int log_reopen(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "err", "warn"/"warning", "info", "debug" or the digits 3/4/6/7.
 * 0 and *out set, or -1 for anything else. */
int log_level_parse(const char *s, enum log_level *out);
/* Name of a level ("err", "warn", "info", "debug"). */
const char *log_level_name(enum log_level level);

void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

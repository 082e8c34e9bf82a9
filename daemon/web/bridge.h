/*
 * bridge.h — relm-web's side of relmd's socket (proto/api.md): blocking
 * connections with bounded waits, one per HTTP request that needs relmd.
 *
 * Design: every POST /api opens its own short-lived connection, writes the
 * one request line, reads the one reply line and closes.  relmd accepts a
 * connection in microseconds (a Unix socket and an SO_PEERCRED check), so a
 * shared connection would save nothing worth its cost: a lock or a reply
 * router between the HTTP threads, and one slow call (a long message.list)
 * holding up the rest.  A connection of our own also means a reply line is
 * never an event: nothing on it is subscribed.  Every GET /events holds one
 * long-lived connection of its own (sse.c), subscribed with `since`.
 *
 * relmd's per-uid cap (128) is twice relm-web's connection cap (64): the
 * bridge cannot exhaust relmd for other clients.
 */
#ifndef RELM_WEB_BRIDGE_H
#define RELM_WEB_BRIDGE_H

#include <stddef.h>

enum {
	BRIDGE_CALL_TIMEOUT_MS = 30000, /* relmd answers in ms; a stuck one must not hold a thread */
	BRIDGE_LINE_MAX = 64 << 20,     /* relmd's hard output cap per client (proto/api.md §7) */
};

/* A connection to relmd's socket at path.  The fd (blocking, close-on-exec)
 * or -errno (-ENAMETOOLONG for a path that does not fit sun_path). */
int bridge_connect(const char *path);

/* Write all of buf to fd, waiting at most timeout_ms in total.  0 or
 * -errno (-ETIMEDOUT). */
int bridge_write_all(int fd, const char *buf, size_t len, int timeout_ms);

/* Reads lines from one connection; the buffer grows to at most `max`. */
struct bridge_reader {
	char *buf;
	size_t len, cap, max;
};

void bridge_reader_init(struct bridge_reader *r, size_t max);
void bridge_reader_clear(struct bridge_reader *r);

/* The next line from fd (without its "\n"), malloc'd into *line / *len.
 * Waits at most timeout_ms (< 0: forever); returns early with -ECANCELED
 * once wake_fd (if >= 0) becomes readable.  Returns 1 with a line, 0 on
 * timeout, -ECONNRESET at end of stream, -EMSGSIZE for a line over the
 * reader's max, -ENOMEM, or -errno. */
int bridge_read_line(int fd, struct bridge_reader *r, int timeout_ms, int wake_fd,
		     char **line, size_t *len);

/* One request line (without "\n") on a fresh connection to path: the reply
 * line, malloc'd, in *reply / *reply_len.  0, or -errno: connecting
 * (-ENOENT, -ECONNREFUSED, -EACCES...), -ETIMEDOUT, -ECONNRESET (relmd
 * closed without a reply). */
int bridge_call(const char *path, const char *line, size_t len, char **reply,
		size_t *reply_len);

#endif

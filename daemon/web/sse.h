/*
 * sse.h — GET /events: relmd's event stream as Server-Sent Events
 * (proto/web.md §4).
 *
 * One relmd connection per stream, subscribed with `since` = the browser's
 * Last-Event-ID (or ?since=), so a browser that reconnects gets every event
 * it missed that relmd still retains, in order, with no duplicates.  Each
 * relmd event becomes one SSE event: `id:` is the event's seq, `data:` its
 * params as one line of JSON.  Before any event the stream carries
 * `event: subscribed` with subscribe's result (seq, oldest, replay, gap)
 * and, as its id, the seq the stream starts after (`since`, else the last
 * seq issued), so even a stream that drops before its first event resumes
 * where it began.  `gap: true` tells the page to re-read its state.
 *
 * The stream is pulled by libmicrohttpd's connection thread through
 * sse_read(), which blocks until relmd writes, a keepalive is due, or
 * relm-web stops (the wake fd).  A browser that stops reading stalls its
 * own connection until the HTTP idle timeout closes it; relmd, for its
 * part, never waits for a slow subscriber (proto/api.md §6), and ends the
 * relmd connection of one that lags too far — the stream then ends and
 * the browser reconnects with its Last-Event-ID.
 */
#ifndef RELM_WEB_SSE_H
#define RELM_WEB_SSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sse;

enum {
	SSE_RETRY_MS = 1000,            /* the browser's reconnect delay, sent as retry: */
	SSE_LINE_MAX = 4 << 20,         /* an event line: a 60,000-byte body, escaped, fits many times */
};

/* Open a stream: connect to relmd at sock, subscribe (with since when
 * since >= 0) and prepare the `subscribed` event.  keepalive_ms: a comment
 * line is sent after this long without an event.  wake_fd: readable once
 * relm-web stops.  Returns the stream, or NULL with *err = -errno
 * (connecting, -ETIMEDOUT, -ECONNRESET) and, when relmd answered subscribe
 * with an error, *reply = its reply line (malloc'd; the caller frees). */
struct sse *sse_open(const char *sock, long long since, int keepalive_ms, int wake_fd,
		     int *err, char **reply);

/* libmicrohttpd's content reader: up to max bytes of the stream into buf.
 * Blocks (see above).  Returns the byte count or
 * MHD_CONTENT_READER_END_OF_STREAM (relmd closed, relm-web stopping). */
ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max);

/* Close the relmd connection and free (libmicrohttpd's free callback). */
void sse_free(void *cls);

/* Parse a Last-Event-ID / since value: decimal digits, 0..2^53.  The seq,
 * or -1 if s is not one. */
long long sse_parse_seq(const char *s);

#endif

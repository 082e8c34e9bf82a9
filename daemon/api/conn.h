/*
 * conn.h — one client connection of relmd: line framing with the 1 MiB
 * limit enforced while reading, fair request scheduling, a bounded output
 * queue with backpressure, and event delivery to subscribers.
 *
 * Input: bytes land directly in `in` (grown up to RELM_LINE_MAX + 1).  A
 * buffer that holds RELM_LINE_MAX + 1 bytes without a newline means the
 * line is too long: the client gets one -32600 error (data.code "too_big",
 * id null), its input is discarded unparsed, and the connection is closed
 * after the reply is flushed.  Blank lines are ignored; a trailing "\r" is
 * stripped; an unterminated last line before EOF is handled as a line.
 *
 * Scheduling: at most RELMD_REQ_PER_TURN requests per loop turn; the rest
 * waits (reading stopped) for the next turn's idle callback, so one
 * flooding client cannot starve others.  Reading also stops while more
 * than RELMD_OUT_SOFT bytes of output wait for the client (a client that
 * sends requests but does not read replies only hurts itself), and resumes
 * when a write drains the queue.
 *
 * Output: replies and events are appended to `out` and handed to the
 * kernel by the daemon's once-per-turn flush (after hooks.commit), one
 * write request in flight per client.
 *
 * Events: a subscriber has a cursor (next seq) and a type mask; events are
 * copied from the bus while its output queue is below RELMD_OUT_SOFT, so a
 * slow reader costs a cursor, not memory.  A subscriber whose next event
 * has left the retention ring (it fell more than cfg.event_retention
 * events behind) is disconnected; it resubscribes with `since` and learns
 * from `gap` that it missed events.
 *
 * States (flags): open+reading → (eof | too long | shutdown) → draining
 * (close_after_flush: no more requests, replies still written) → closing
 * (uv_close called) → freed in the close callback.
 */
#ifndef RELMD_CONN_H
#define RELMD_CONN_H

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

struct relmd;

struct relmd_buf {
	char *p;
	size_t len, cap;
};

struct relmd_conn {
	uv_pipe_t pipe;             /* embedded; freed with the conn in the close callback */
	uv_write_t wreq;            /* the one write in flight */
	struct relmd *d;
	struct relmd_conn *next, *prev;   /* d->conns */
	uint64_t id;                /* for logs */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int linked;                 /* on d->conns (counted in nconns) */

	char *in;                   /* unprocessed input */
	size_t in_len, in_cap;
	size_t in_scan;             /* in[0, in_scan) holds no '\n' */

	struct relmd_buf out;       /* queued, not yet handed to the kernel */
	struct relmd_buf wbuf;      /* being written */

	unsigned reading : 1;       /* uv_read_start active */
	unsigned writing : 1;       /* wreq in flight */
	unsigned eof : 1;           /* peer finished sending */
	unsigned queued : 1;        /* has runnable requests (counted in d->nqueued) */
	unsigned draining : 1;      /* close after flushing out/wbuf */
	unsigned closing : 1;       /* uv_close called */

	unsigned subscribed : 1;
	uint32_t sub_mask;          /* bit t: event type t (engine/event.h) */
	uint64_t sub_next;          /* next seq to deliver */
};

/* Allocate a connection and init its pipe on d's loop.  NULL on ENOMEM. */
struct relmd_conn *relmd_conn_new(struct relmd *d);
/* Start serving an accepted, authorised connection (links it into d). */
void relmd_conn_start(struct relmd_conn *c);
/* Close now (idempotent); memory goes in the close callback. */
void relmd_conn_close(struct relmd_conn *c);
/* Stop taking requests; close once queued output is written. */
void relmd_conn_drain(struct relmd_conn *c);
/* Queue one line (a '\n' is appended).  0, or -ENOBUFS when the client's
 * queue would pass RELMD_OUT_MAX (the client is then closed), or
 * RELM_ECLOSED for a closing client, or RELM_ENOMEM. */
int relmd_conn_send(struct relmd_conn *c, const char *line, size_t len);
/* Hand queued output to the kernel if no write is in flight. */
void relmd_conn_flush(struct relmd_conn *c);
/* Run up to RELMD_REQ_PER_TURN queued requests. */
void relmd_conn_process(struct relmd_conn *c);
/* Copy due events to a subscriber (paced by its output queue). */
void relmd_conn_pump(struct relmd_conn *c);
/* Bytes queued for this client (out + in flight). */
size_t relmd_conn_queued(const struct relmd_conn *c);

#endif

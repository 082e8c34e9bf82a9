/*
 * conn.h — one client connection of relmd: line framing with the 1 MiB
 * limit enforced while reading, fair request scheduling, a bounded output
 * queue with backpressure, and event delivery to subscribers.
 *
 * Who knows whom: the socket server (server.c) creates, lists and drives
 * connections; a connection knows nothing of the server.  It talks back
 * through the small struct relmd_conn_owner below (run a request line, "I
 * have requests to run", "my handle is closed"), and reads the event bus
 * (events.h) it was given.
 *
 * Input: bytes land directly in `in` (grown up to RELM_LINE_MAX + 1).  A
 * buffer that holds RELM_LINE_MAX + 1 bytes without a newline means the
 * line is too long: the client gets one -32600 error (data.code "too_big",
 * id null), its input is discarded unparsed, and the connection is closed
 * after the reply is flushed.  Blank lines are ignored; a trailing "\r" is
 * stripped; an unterminated last line before EOF is handled as a line.
 *
 * Scheduling: at most RELMD_REQ_PER_TURN requests per loop turn, counted
 * across every read callback and relmd_conn_process call of the turn (a
 * turn ends with the owner's relmd_conn_flush); the rest waits, reading
 * stopped, for the next turn, so one flooding client cannot starve
 * others.  Reading also
 * stops while more than RELMD_OUT_SOFT bytes of output wait for the client
 * (a client that sends requests but does not read replies only hurts
 * itself), and resumes when a write drains the queue.
 *
 * Output: replies and events are appended to `out` and handed to the
 * kernel by the owner's once-per-turn relmd_conn_flush (after the turn's
 * commit), one write request in flight per client.  Every line is checked
 * to be valid UTF-8 before it is queued: one that is not is refused and
 * logged, never sent (an event is then skipped; a reply is replaced by a
 * -32603 error).
 *
 * Events: a subscriber has a cursor (next seq) and a type mask; events are
 * copied from the bus while its output queue is below RELMD_OUT_SOFT, so a
 * slow reader costs a cursor, not memory.  A subscriber whose next event
 * has left the retention ring is disconnected; it resubscribes with
 * `since` and learns from `gap` that it missed events.
 *
 * States (enum relmd_conn_state; only conn_enter_state() changes it, and
 * it aborts on a transition not drawn here):
 *
 *        relmd_conn_new                 relmd_conn_start
 *   NONE ──────────────────────────────────────────────► OPEN
 *     │                                                  │  │
 *     │ relmd_conn_refuse / close    EOF handled, line   │  │ close (error,
 *     │ (refused or failed accept)   too long, drain     │  │ queue over max,
 *     │                                                  ▼  │ write failed)
 *     │                                         DRAINING    │
 *     │                                              │      │
 *     │                  last queued byte written    │      │
 *     │                  or close                    ▼      ▼
 *     └───────────────────────────────────────────► CLOSING
 *                                                      │ close callback
 *                                                      ▼
 *                                                   CLOSED → freed
 *
 *   NONE      pipe initialised, nothing read or queued, not runnable.
 *   OPEN      on the owner's list; reads while it has room and no whole
 *             line; runs requests; may be subscribed; `eof` may be set
 *             while lines are still buffered.
 *   DRAINING  no input kept (in_len == 0), not reading, not runnable, no
 *             events pumped; queued output is still written, and the
 *             connection closes once nothing is queued.
 *   CLOSING   uv_close called: not reading, not runnable, nothing more is
 *             written; a write in flight completes with UV_ECANCELED.
 *   CLOSED    inside the close callback: owner->closed runs, then the
 *             memory is freed.  No function may be called on it.
 *
 * In every state: in_scan <= in_len <= in_cap, in_len <= RELM_LINE_MAX + 1,
 * and `writing` iff a write is in flight iff wbuf.len > 0.  Debug builds
 * check these at every public entry point (conn_check).
 */
#ifndef RELMD_CONN_H
#define RELMD_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

struct relmd_conn;
struct relmd_events;

/* A connection's limits (the protocol-wide ones are in lib/limits.h). */
enum relmd_conn_limits {
	RELMD_REQ_PER_TURN     = 64,       /* requests run per connection per loop turn: a flooding client gets its share, not everyone's; 64 lets one commit (fsync) carry a pipelined burst */
	RELMD_IN_CHUNK         = 65536,    /* bytes read per read callback at most */
	RELMD_IN_INITIAL       = 16384,    /* initial input buffer; grows to RELM_LINE_MAX + 1 only for long lines */
	RELMD_OUT_SOFT         = 1 << 20,  /* queued output above which a client's requests and events wait (reads stop) */
	RELMD_OUT_MAX          = 64 << 20, /* hard cap on one client's queued output (a batch of huge results): closed beyond */
};

/* What a connection needs from whoever owns it.  The owner embeds this
 * (and gets back to itself with container_of); it must outlive every
 * connection made with it.  All calls happen on the loop thread. */
struct relmd_conn_owner {
	uv_loop_t *loop;
	struct relmd_events *events;          /* the bus subscribers read */
	/* Run one request line (not NUL-terminated, no '\n').  0 with *reply =
	 * the line to send (released with cJSON_free) or NULL for nothing;
	 * RELM_ENOMEM closes the connection. */
	int (*request)(struct relmd_conn_owner *o, struct relmd_conn *c, const char *line,
		       size_t len, char **reply);
	/* c has (1) or no longer has (0) requests waiting to run: while it
	 * has, the owner calls relmd_conn_process(c) once per loop turn
	 * (before that turn's relmd_conn_flush). */
	void (*runnable)(struct relmd_conn_owner *o, struct relmd_conn *c, int runnable);
	/* c's handle is closed: forget c, whose memory is freed when this
	 * returns. */
	void (*closed)(struct relmd_conn_owner *o, struct relmd_conn *c);
};

enum relmd_conn_state {
	RELMD_CONN_NONE = 0,
	RELMD_CONN_OPEN,
	RELMD_CONN_DRAINING,
	RELMD_CONN_CLOSING,
	RELMD_CONN_CLOSED,
};

struct relmd_buf {
	char *p;
	size_t len, cap;
};

struct relmd_conn {
	uv_pipe_t pipe;             /* embedded; freed with the conn in the close callback */
	uv_write_t wreq;            /* the one write in flight */
	struct relmd_conn_owner *owner;
	enum relmd_conn_state state; /* only through conn_enter_state() */
	uint64_t id;                /* for logs */
	uid_t uid;                  /* the peer, as SO_PEERCRED said (set by the owner) */
	gid_t gid;
	pid_t pid;

	/* The owner's list; the connection never touches these. */
	struct relmd_conn *next, *prev;
	int linked;

	char *in;                   /* unprocessed input */
	size_t in_len, in_cap;
	size_t in_scan;             /* in[0, in_scan) holds no '\n' */

	struct relmd_buf out;       /* queued, not yet handed to the kernel */
	size_t out_mark;            /* out[0, out_mark) was queued before this turn: committed */
	struct relmd_buf wbuf;      /* being written */

	unsigned reading : 1;       /* uv_read_start active */
	unsigned writing : 1;       /* wreq in flight */
	unsigned eof : 1;           /* peer finished sending */
	unsigned runnable : 1;      /* told the owner it has requests to run */
	unsigned turn_ran;          /* requests run this turn (reset by relmd_conn_flush) */

	unsigned sub_turn : 1;      /* subscribed during this turn */
	unsigned subscribed : 1;
	uint32_t sub_mask;          /* bit t: event type t (engine/event.h) */
	uint64_t sub_next;          /* next seq to deliver */
};

/* Allocate a connection (state NONE) and init its pipe on o->loop.  NULL
 * on ENOMEM. */
struct relmd_conn *relmd_conn_new(struct relmd_conn_owner *o, uint64_t id);
/* Start serving an accepted, authorised connection: NONE → OPEN. */
void relmd_conn_start(struct relmd_conn *c);
/* Refuse a connection that was never started (NONE): write `line` and a
 * '\n' if the socket takes it at once (best effort, never blocking), then
 * close. */
void relmd_conn_refuse(struct relmd_conn *c, const char *line);
/* Close now (idempotent); memory goes in the close callback, after
 * owner->closed. */
void relmd_conn_close(struct relmd_conn *c);
/* Stop taking requests; close once queued output is written (idempotent;
 * a no-op once closing). */
void relmd_conn_drain(struct relmd_conn *c);
/* Queue one line (a '\n' is appended).  0; RELM_EMALFORMED when the line
 * is not valid UTF-8 (nothing queued, the connection stays open);
 * -ENOBUFS when the client's queue would pass RELMD_OUT_MAX (the client is
 * then closed); RELM_ECLOSED for a closing client; RELM_ENOMEM. */
int relmd_conn_send(struct relmd_conn *c, const char *line, size_t len);
/* Once per loop turn, after the turn's commit: hand queued output to the
 * kernel if no write is in flight, and start the connection's next turn
 * (a fresh budget of RELMD_REQ_PER_TURN requests). */
void relmd_conn_flush(struct relmd_conn *c);
/* Run waiting requests, as many as this turn's budget still allows. */
void relmd_conn_process(struct relmd_conn *c);
/* This turn's commit failed and its work is lost (server.h, hooks.commit):
 * before its flush, every success reply queued this turn is replaced by a
 * -32000 error with data.code data_code (jsonrpc_retract) — nothing it
 * said happened did; error replies and events (committed ones) stay, in
 * order.  A subscription made this turn is undone: its reply is now an
 * error.  Out of memory closes the connection (nothing false is sent). */
void relmd_conn_retract_turn(struct relmd_conn *c, const char *message, const char *data_code);

/* Deliver events from seq `next` on, of the types in `mask` (bit i:
 * relmd_event_types[i]); replaces an earlier subscription.  Delivery
 * starts with the next relmd_conn_pump (after the current reply). */
void relmd_conn_subscribe(struct relmd_conn *c, uint32_t mask, uint64_t next);
/* 1 when c is a live subscriber that wants events of type t. */
int relmd_conn_wants(const struct relmd_conn *c, int t);
/* Copy due events to a subscriber (paced by its output queue); closes a
 * subscriber whose next event is no longer retained. */
void relmd_conn_pump(struct relmd_conn *c);
/* Bytes queued for this client (out + in flight). */
size_t relmd_conn_queued(const struct relmd_conn *c);

#endif

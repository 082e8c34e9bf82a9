/*
 * events.h — relmd's event bus: numbered, retained, replayable.
 *
 * Every event gets the next per-daemon sequence number `seq` (1, 2, ...;
 * continued from the persistence hook's last_seq across restarts) and is
 * serialised at most once into its wire form — one JSON-RPC notification
 * line:
 *
 *   {"jsonrpc":"2.0","method":"event","params":{"seq":N,"type":"...","ts":MS,...}}
 *
 * The last `retention` events stay in an in-memory ring so that
 * `subscribe {since}` can replay what a client missed; older ones come from
 * the optional persistence hook (the store implements it), or are gone.
 *
 * Lazy lines: when the hook can rebuild any event from the store (`load`
 * set, no `save`: the store's log is the record), an event nobody listens
 * to is kept in the ring as seq, type and time only (relmd_events_put with
 * no line) and its line is built through `load` the first time a replay
 * asks for it, then cached in its slot.  An event with no listener thus
 * costs no JSON work, and a replay still sees the same bytes a live
 * subscriber would have.
 *
 * This file is the bus only: no libuv, no connections.  Delivery to
 * subscribers (paced by each connection's output queue) is in conn.c, and
 * relmd_event_emit() in server.h ties the two together.
 */
#ifndef RELMD_EVENTS_H
#define RELMD_EVENTS_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "engine/event.h"

/* The event types are lib/engine/event.h's (enum relm_event_type, 1 ..
 * RELM_EV_COUNT - 1, names from relm_event_name): a subscription's type
 * filter is a bit mask over them (bit t = type t; bit 0, RELM_EV_NONE, is
 * never set). */
#define RELMD_EV_ALL ((uint32_t)(((1u << RELM_EV_COUNT) - 1) & ~1u))

/* The type of a name, or -1 if it is not one of the list. */
int relmd_event_type_index(const char *name);

/* Persistence hook (the store implements it; all members may be NULL).
 * save:     called once per event, right after its seq is assigned; `line`
 *           is the full notification without the trailing newline.  A
 *           failure is logged and the event still goes out live.
 * load:     fetch event `seq` for a replay older than the ring: 0 and
 *           *line (malloc'd, the caller frees) / *len / *type set, or
 *           RELM_ENOTFOUND if it is no longer retained.
 * last_seq: the highest seq ever saved (0 if none), read once at init so
 *           numbering continues across restarts. */
struct relmd_event_store {
	void *ctx;
	int (*save)(void *ctx, uint64_t seq, int type, const char *line, size_t len);
	int (*load)(void *ctx, uint64_t seq, char **line, size_t *len, int *type);
	uint64_t (*last_seq)(void *ctx);
};

struct relmd_event {
	uint64_t seq;
	int type;                /* enum relm_event_type */
	uint64_t ts;
	size_t len;
	char *line;              /* notification, no newline; owned by the ring;
	                          * NULL: not built yet (built by store.load) */
};

struct relmd_events {
	struct relmd_event *ring;   /* cap slots; slot = seq % cap */
	size_t cap;
	uint64_t first_seq;         /* oldest seq in the ring (0 when empty) */
	uint64_t last_seq;          /* last assigned seq (0 when none yet) */
	uint64_t boot_seq;          /* last_seq at init: replays of <= this need the store */
	struct relmd_event_store store;
};

/* Set up an empty bus retaining `retention` (>= 1) events in memory.
 * `store` may be NULL.  0 or RELM_ENOMEM. */
int relmd_events_init(struct relmd_events *ev, size_t retention,
		      const struct relmd_event_store *store);
/* Free the ring; ev may be zeroed or initialised. */
void relmd_events_clear(struct relmd_events *ev);

/* Assign the next seq to an event of `type` (a relm_event_name:
 * anything else is a programmer error and aborts) with extra `fields` (a
 * cJSON object or NULL; always consumed, even on failure; it must not use
 * the keys seq, type or ts), serialise it, retain it and persist it.
 * On success 0 and *out (may be NULL) points at the retained event, valid
 * until the next emit.  RELM_ENOMEM on allocation failure (no seq used). */
int relmd_events_emit(struct relmd_events *ev, const char *type, cJSON *fields,
		      uint64_t ts_ms, const struct relmd_event **out);

/* The same with an explicit seq (> last_seq; a gap is allowed): for events
 * that were numbered by the store's event log in the transaction that made
 * them.  fields is consumed.  0, RELM_EINVAL (seq not after last_seq) or
 * RELM_ENOMEM. */
int relmd_events_emit_at(struct relmd_events *ev, uint64_t seq, const char *type, cJSON *fields,
			 uint64_t ts_ms, const struct relmd_event **out);

/* Retain event seq (> last_seq; a gap is allowed) of type t with its line
 * (malloc'd, no newline, len bytes; the ring takes it) or line NULL: built
 * later through store.load when a replay needs it — only allowed when
 * relmd_events_lazy() says so.  0, RELM_EINVAL (seq not after last_seq,
 * or a NULL line without a load hook; line is freed either way). */
int relmd_events_put(struct relmd_events *ev, uint64_t seq, int t, uint64_t ts_ms,
		     char *line, size_t len);

/* 1 when events may be retained without their line (store.load can build
 * any of them and there is no store.save wanting the line). */
int relmd_events_lazy(const struct relmd_events *ev);

/* The notification line of an event (malloc'd, no newline) or NULL;
 * fields (may be NULL) is emptied but not freed.  t: enum relm_event_type. */
char *relmd_event_line(uint64_t seq, int t, uint64_t ts_ms, cJSON *fields);

/* The same line written directly, for the frequent event types: begin, then
 * members in order (keys are not escaped: pass literals), then end.  The
 * bytes are those relmd_event_line() prints for the same members (cJSON's
 * escaping and number format).  Numbers are limited to integers below
 * 10^15, which cJSON prints as plain digits; end() returns NULL for any
 * other (and on ENOMEM): build the line with relmd_event_line() then. */
struct relmd_evline {
	char *p;
	size_t len, cap;
	int bad;
};
void relmd_evline_begin(struct relmd_evline *w, uint64_t seq, int t, uint64_t ts_ms);
void relmd_evline_str(struct relmd_evline *w, const char *key, const char *val);
void relmd_evline_uint(struct relmd_evline *w, const char *key, uint64_t v);
/* The line (malloc'd, *len set) or NULL; w is reset either way. */
char *relmd_evline_end(struct relmd_evline *w, size_t *len);

/* Event `seq` for a replay: 0 and *line, *len, *type set (*line malloc'd only
 * if *owned is set, else it points into the ring and is valid until the
 * next emit), or RELM_ENOTFOUND if it is neither in the ring nor in the
 * store (nor, for a line not built yet, buildable).  seq must be in
 * 1..last_seq. */
int relmd_events_get(struct relmd_events *ev, uint64_t seq, const char **line,
		     size_t *len, int *type, int *owned);

/* The type of event seq if the ring holds it (built or not), else -1:
 * lets a filtered subscriber skip an event without building its line. */
int relmd_events_type(const struct relmd_events *ev, uint64_t seq);

/* Oldest seq a replay can still deliver (last_seq + 1 when nothing can). */
uint64_t relmd_events_oldest(const struct relmd_events *ev);

#endif

/*
 * events.c — the event bus of events.h: a ring of serialised notifications
 * indexed by seq, plus the persistence hook.
 *
 * Events are serialised once, at emit, so fan-out to N subscribers costs N
 * memcpy's and no JSON work.  The ring is a plain array with slot =
 * seq % cap: seqs are dense, so the slot of seq is known without search.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "events.h"
#include "log.h"

const char *const relmd_event_types[RELMD_EV_COUNT] = {
#define X(id, name) name,
	RELMD_EVENT_TYPES(X)
#undef X
};

int relmd_event_type_index(const char *name)
{
	for (int i = 0; name && i < RELMD_EV_COUNT; i++)
		if (strcmp(name, relmd_event_types[i]) == 0)
			return i;
	return -1;
}

int relmd_events_init(struct relmd_events *ev, size_t retention,
		      const struct relmd_event_store *store)
{
	assert(retention >= 1);
	memset(ev, 0, sizeof *ev);
	ev->ring = calloc(retention, sizeof *ev->ring);
	if (!ev->ring)
		return RELM_ENOMEM;
	ev->cap = retention;
	if (store)
		ev->store = *store;
	if (ev->store.last_seq)
		ev->last_seq = ev->store.last_seq(ev->store.ctx);
	ev->boot_seq = ev->last_seq;
	return 0;
}

void relmd_events_clear(struct relmd_events *ev)
{
	if (ev->ring)
		for (size_t i = 0; i < ev->cap; i++)
			free(ev->ring[i].line);
	free(ev->ring);
	memset(ev, 0, sizeof *ev);
}

char *relmd_event_line(uint64_t seq, int t, uint64_t ts_ms, cJSON *fields)
{
	char *line = NULL;
	cJSON *msg = cJSON_CreateObject();
	cJSON *params = cJSON_CreateObject();

	assert(t >= 0 && t < RELMD_EV_COUNT);
	assert(!fields || cJSON_IsObject(fields));
	if (!msg || !params)
		goto out;
	if (!cJSON_AddStringToObject(msg, "jsonrpc", "2.0") ||
	    !cJSON_AddStringToObject(msg, "method", "event") ||
	    !cJSON_AddNumberToObject(params, "seq", (double)seq) ||
	    !cJSON_AddStringToObject(params, "type", relmd_event_types[t]) ||
	    !cJSON_AddNumberToObject(params, "ts", (double)ts_ms))
		goto out;
	if (fields) {
		/* Move the caller's members after seq/type/ts (theirs never
		 * override ours: a field of that name is dropped). */
		while (fields->child) {
			cJSON *it = cJSON_DetachItemViaPointer(fields, fields->child);
			if (!strcmp(it->string, "seq") || !strcmp(it->string, "type") ||
			    !strcmp(it->string, "ts")) {
				cJSON_Delete(it);
				continue;
			}
			cJSON_AddItemToObject(params, it->string, it);
		}
	}
	cJSON_AddItemToObject(msg, "params", params);
	params = NULL;
	line = cJSON_PrintUnformatted(msg);
out:
	cJSON_Delete(params);
	cJSON_Delete(msg);
	return line;
}

int relmd_events_emit(struct relmd_events *ev, const char *type, cJSON *fields,
		      uint64_t ts_ms, const struct relmd_event **out)
{
	return relmd_events_emit_at(ev, ev->last_seq + 1, type, fields, ts_ms, out);
}

int relmd_events_emit_at(struct relmd_events *ev, uint64_t seq, const char *type, cJSON *fields,
			 uint64_t ts_ms, const struct relmd_event **out)
{
	int t = relmd_event_type_index(type);
	assert(t >= 0 && "relmd_events_emit: unknown event type");
	int r = RELM_ENOMEM;
	char *line = NULL;

	if (seq <= ev->last_seq) {
		cJSON_Delete(fields);
		return RELM_EINVAL;          /* numbering never goes back */
	}
	line = relmd_event_line(seq, t, ts_ms, fields);
	if (!line)
		goto out;

	struct relmd_event *slot = &ev->ring[seq % ev->cap];
	free(slot->line);
	slot->seq = seq;
	slot->type = t;
	slot->line = line;
	slot->len = strlen(line);
	line = NULL;
	/* A jump (events the store trimmed or never gave us) empties the ring's
	 * view of older seqs: they are replayed from the store, if at all. */
	if (seq != ev->last_seq + 1)
		ev->boot_seq = seq - 1;
	ev->last_seq = seq;
	/* The ring holds (boot_seq, last_seq], at most cap of them. */
	ev->first_seq = seq >= ev->boot_seq + ev->cap ? seq - ev->cap + 1 : ev->boot_seq + 1;
	if (ev->store.save) {
		int s = ev->store.save(ev->store.ctx, seq, t, slot->line, slot->len);
		if (s < 0)
			log_warn("event %llu (%s) not persisted: %s",
				 (unsigned long long)seq, relmd_event_types[t], relm_strerror(s));
	}
	if (out)
		*out = slot;
	r = 0;
out:
	cJSON_Delete(fields);
	free(line);
	return r;
}

int relmd_events_get(struct relmd_events *ev, uint64_t seq, const char **line,
		     size_t *len, int *type, int *owned)
{
	assert(seq >= 1 && seq <= ev->last_seq);
	if (ev->first_seq && seq >= ev->first_seq) {
		const struct relmd_event *e = &ev->ring[seq % ev->cap];
		assert(e->seq == seq);
		*line = e->line;
		*len = e->len;
		*type = e->type;
		*owned = 0;
		return 0;
	}
	if (ev->store.load) {
		char *l = NULL;
		size_t n = 0;
		int t = -1;
		int r = ev->store.load(ev->store.ctx, seq, &l, &n, &t);
		if (r < 0)
			return r == RELM_ENOTFOUND ? r : (log_warn("event %llu: load failed: %s",
						(unsigned long long)seq, relm_strerror(r)), RELM_ENOTFOUND);
		if (t < 0 || t >= RELMD_EV_COUNT) {
			free(l);
			return RELM_ENOTFOUND;
		}
		*line = l;
		*len = n;
		*type = t;
		*owned = 1;
		return 0;
	}
	return RELM_ENOTFOUND;
}

uint64_t relmd_events_oldest(const struct relmd_events *ev)
{
	/* With a store, everything it kept is replayable; we cannot know its
	 * retention, so claim 1 and let get() report gaps. */
	if (ev->store.load)
		return ev->last_seq ? 1 : ev->last_seq + 1;
	return ev->first_seq ? ev->first_seq : ev->last_seq + 1;
}

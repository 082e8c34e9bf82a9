/*
 * events.c — the event bus of events.h: a ring of serialised notifications
 * indexed by seq, plus the persistence hook.
 *
 * Events are serialised at most once (at emit, or at the first replay of a
 * lazy one), so fan-out to N subscribers costs N memcpy's and no JSON
 * work.  The ring is a plain array with slot = seq % cap: seqs are dense,
 * so the slot of seq is known without search.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "api/events.h"
#include "log.h"

int relmd_event_type_index(const char *name)
{
	return relm_event_type(name);
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

	assert(relm_event_name(t) != NULL);
	assert(!fields || cJSON_IsObject(fields));
	if (!msg || !params)
		goto out;
	if (!cJSON_AddStringToObject(msg, "jsonrpc", "2.0") ||
	    !cJSON_AddStringToObject(msg, "method", "event") ||
	    !cJSON_AddNumberToObject(params, "seq", (double)seq) ||
	    !cJSON_AddStringToObject(params, "type", relm_event_name(t)) ||
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

int relmd_events_lazy(const struct relmd_events *ev)
{
	return ev->store.load && !ev->store.save;
}

int relmd_events_put(struct relmd_events *ev, uint64_t seq, int t, uint64_t ts_ms,
		     char *line, size_t len)
{
	assert(relm_event_name(t) != NULL);
	if (seq <= ev->last_seq || (!line && !relmd_events_lazy(ev))) {
		free(line);
		return RELM_EINVAL;          /* numbering never goes back */
	}
	struct relmd_event *slot = &ev->ring[seq % ev->cap];
	free(slot->line);
	slot->seq = seq;
	slot->type = t;
	slot->ts = ts_ms;
	slot->line = line;
	slot->len = line ? len : 0;
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
				 (unsigned long long)seq, relm_event_name(t), relm_strerror(s));
	}
	return 0;
}

int relmd_events_emit_at(struct relmd_events *ev, uint64_t seq, const char *type, cJSON *fields,
			 uint64_t ts_ms, const struct relmd_event **out)
{
	int t = relmd_event_type_index(type);
	assert(t >= 0 && "relmd_events_emit: unknown event type");
	char *line;
	int r;

	if (seq <= ev->last_seq) {
		cJSON_Delete(fields);
		return RELM_EINVAL;          /* numbering never goes back */
	}
	line = relmd_event_line(seq, t, ts_ms, fields);
	cJSON_Delete(fields);
	if (!line)
		return RELM_ENOMEM;
	if ((r = relmd_events_put(ev, seq, t, ts_ms, line, strlen(line))) != 0)
		return r;
	if (out)
		*out = &ev->ring[seq % ev->cap];
	return 0;
}

/* ---- the direct writer ---- */

static void w_put(struct relmd_evline *w, const char *s, size_t n)
{
	if (w->bad)
		return;
	if (w->cap - w->len < n + 1) {
		size_t cap = w->cap ? w->cap : 256;
		while (cap - w->len < n + 1)
			cap *= 2;
		char *p = realloc(w->p, cap);
		if (!p) {
			w->bad = 1;
			return;
		}
		w->p = p;
		w->cap = cap;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

/* cJSON's print_string: ", \ and the five short escapes, other bytes below
 * 0x20 as \u00xx (lowercase hex), everything else (UTF-8 included) as is. */
static void w_string(struct relmd_evline *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s, *run = p;

	w_put(w, "\"", 1);
	for (; *p; p++) {
		char esc[6];
		size_t n = 2;
		if (*p >= 0x20 && *p != '"' && *p != '\\')
			continue;
		w_put(w, (const char *)run, (size_t)(p - run));
		run = p + 1;
		esc[0] = '\\';
		switch (*p) {
		case '"':  esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 15];
			n = 6;
		}
		w_put(w, esc, n);
	}
	w_put(w, (const char *)run, (size_t)(p - run));
	w_put(w, "\"", 1);
}

/* cJSON prints a number through a double: an integer below 10^15 is exact
 * there and comes out as its plain digits (%d or %1.15g alike).  Anything
 * larger would need cJSON's float rules: refuse, the caller uses cJSON. */
static void w_uint(struct relmd_evline *w, uint64_t v)
{
	char buf[24];
	int n;

	if (v >= 1000000000000000ull) {
		w->bad = 1;
		return;
	}
	n = snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
	w_put(w, buf, (size_t)n);
}

static void w_key(struct relmd_evline *w, const char *key)
{
	w_put(w, ",\"", 2);
	w_put(w, key, strlen(key));
	w_put(w, "\":", 2);
}

void relmd_evline_begin(struct relmd_evline *w, uint64_t seq, int t, uint64_t ts_ms)
{
	static const char head[] = "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"seq\":";

	assert(relm_event_name(t) != NULL);
	memset(w, 0, sizeof *w);
	w_put(w, head, sizeof head - 1);
	w_uint(w, seq);
	w_key(w, "type");
	w_string(w, relm_event_name(t));
	w_key(w, "ts");
	w_uint(w, ts_ms);
}

void relmd_evline_str(struct relmd_evline *w, const char *key, const char *val)
{
	w_key(w, key);
	w_string(w, val);
}

void relmd_evline_uint(struct relmd_evline *w, const char *key, uint64_t v)
{
	w_key(w, key);
	w_uint(w, v);
}

char *relmd_evline_end(struct relmd_evline *w, size_t *len)
{
	char *p;

	w_put(w, "}}", 2);
	if (w->bad) {
		free(w->p);
		memset(w, 0, sizeof *w);
		return NULL;
	}
	p = w->p;
	p[w->len] = '\0';
	*len = w->len;
	memset(w, 0, sizeof *w);
	return p;
}

int relmd_events_get(struct relmd_events *ev, uint64_t seq, const char **line,
		     size_t *len, int *type, int *owned)
{
	assert(seq >= 1 && seq <= ev->last_seq);
	if (ev->first_seq && seq >= ev->first_seq) {
		struct relmd_event *e = &ev->ring[seq % ev->cap];
		assert(e->seq == seq);
		if (!e->line) {
			/* Nobody listened when it happened: build it now, once, from
			 * the store (the same code that would have built it then). */
			char *l = NULL;
			size_t n = 0;
			int t = -1;
			int r = ev->store.load ? ev->store.load(ev->store.ctx, seq, &l, &n, &t)
					       : RELM_ENOTFOUND;
			if (r < 0 || t != e->type) {
				if (r != RELM_ENOTFOUND)
					log_warn("event %llu: cannot build its line: %s",
						 (unsigned long long)seq,
						 r < 0 ? relm_strerror(r) : "type differs");
				if (r == 0)
					free(l);
				return RELM_ENOTFOUND;
			}
			e->line = l;
			e->len = n;
		}
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
		if (!relm_event_name(t)) {
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

int relmd_events_type(const struct relmd_events *ev, uint64_t seq)
{
	if (!ev->first_seq || seq < ev->first_seq || seq > ev->last_seq)
		return -1;
	return ev->ring[seq % ev->cap].type;
}

uint64_t relmd_events_oldest(const struct relmd_events *ev)
{
	/* With a store, everything it kept is replayable; we cannot know its
	 * retention, so claim 1 and let get() report gaps. */
	if (ev->store.load)
		return ev->last_seq ? 1 : ev->last_seq + 1;
	return ev->first_seq ? ev->first_seq : ev->last_seq + 1;
}

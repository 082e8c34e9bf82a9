/* event.c — the name tables and the shape check of event.h. */
#include <string.h>
#include "engine/event.h"
#include "error.h"

static const char *const type_names[RELM_EV_COUNT] = {
	NULL,
#define X(id, name, need, may) name,
	RELM_EVENT_TYPES(X)
#undef X
};

static const struct {
	unsigned need, may;
} type_fields[RELM_EV_COUNT] = {
	{ 0, 0 },
#define X(id, name, need, may) { need, may },
	RELM_EVENT_TYPES(X)
#undef X
};

static const char *const statuses[RELM_STATUS_COUNT] = {
#define X(id, name) name,
	RELM_MSG_STATUSES(X)
#undef X
};

static const char *const origins[RELM_ORIGIN_COUNT] = {
	NULL,
#define X(id, name) name,
	RELM_ORIGINS(X)
#undef X
};

/* The index of s in names[first..n), or -1. */
static int lookup(const char *const *names, int first, int n, const char *s)
{
	for (int i = first; s && i < n; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

void relm_event_init(struct relm_event *ev, int type)
{
	memset(ev, 0, sizeof *ev);
	ev->type = type;
}

void relm_event_fields(int type, unsigned *need, unsigned *may)
{
	int ok = type > RELM_EV_NONE && type < RELM_EV_COUNT;
	*need = ok ? type_fields[type].need : 0;
	*may = ok ? type_fields[type].may : 0;
}

/* A store table's name: 1..RELM_EVENT_TABLE_MAX bytes of [a-z_]. */
static int table_name_ok(const char *t)
{
	size_t n = t ? strnlen(t, RELM_EVENT_TABLE_MAX + 1) : 0;

	if (n == 0 || n > RELM_EVENT_TABLE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((t[i] >= 'a' && t[i] <= 'z') || t[i] == '_'))
			return 0;
	return 1;
}

int relm_event_check(const struct relm_event *ev)
{
	unsigned need, may;

	if (!relm_event_name(ev->type))
		return RELM_EINVAL;
	relm_event_fields(ev->type, &need, &may);
	if ((ev->has & need) != need || (ev->has & ~(need | may)))
		return RELM_EINVAL;
	if ((ev->has & RELM_EVF_STATUS) && !relm_status_name(ev->status))
		return RELM_EINVAL;
	if ((ev->has & RELM_EVF_CODE) && ev->code >= 0)
		return RELM_EINVAL;
	if ((ev->has & RELM_EVF_REASON) &&
	    (!ev->reason || strnlen(ev->reason, RELM_EVENT_REASON_MAX + 1) > RELM_EVENT_REASON_MAX))
		return RELM_EINVAL;
	if ((ev->has & RELM_EVF_TABLE) && !table_name_ok(ev->table))
		return RELM_EINVAL;
	return 0;
}

const char *relm_event_name(int type)
{
	return type > RELM_EV_NONE && type < RELM_EV_COUNT ? type_names[type] : NULL;
}

int relm_event_type(const char *name)
{
	return lookup(type_names, RELM_EV_NONE + 1, RELM_EV_COUNT, name);
}

const char *relm_status_name(int status)
{
	return status >= 0 && status < RELM_STATUS_COUNT ? statuses[status] : NULL;
}

int relm_status_from_name(const char *name)
{
	return lookup(statuses, 0, RELM_STATUS_COUNT, name);
}

const char *relm_origin_name(int origin)
{
	return origin > RELM_ORIGIN_NONE && origin < RELM_ORIGIN_COUNT ? origins[origin] : NULL;
}

int relm_origin_from_name(const char *name)
{
	return lookup(origins, RELM_ORIGIN_NONE + 1, RELM_ORIGIN_COUNT, name);
}

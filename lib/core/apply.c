/*
 * apply.c — an engine step's effects into the store (see apply.h).
 *
 * Built only on the store's public typed functions: the store knows tables,
 * not engine steps.  Each effect type has its function below.
 */
#include <stdio.h>
#include <string.h>
#include <sodium.h>
#include "core/apply.h"
#include "wire/payload.h"
#include "error.h"

struct apply {
	struct relm_store *st;
	const uint8_t *rel;
	const char *dest;              /* the relationship's remote mailbox; NULL or "" if not known */
	uint64_t now;
};

static int is_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static int event(struct apply *a, int type, const uint8_t msg[RELM_ID_LEN], unsigned more,
                 int status, const char *reason)
{
	struct relm_event ev;

	relm_event_init(&ev, type);
	ev.has = RELM_EVF_REL | RELM_EVF_MSG | more;
	memcpy(ev.rel, a->rel, RELM_ID_LEN);
	memcpy(ev.msg, msg, RELM_ID_LEN);
	ev.status = status;
	ev.reason = reason;
	return relm_store_event_append(a->st, &ev, a->now, NULL);
}

static int post(struct apply *a, const struct relm_fx *f)
{
	struct relm_store_outbox o;

	memset(&o, 0, sizeof o);
	if (!f->to[0] && (!a->dest || !a->dest[0]))   /* the engine's own choice wins */
		return RELM_ESTATE;
	memcpy(o.rel, a->rel, RELM_ID_LEN);
	o.has_rel = 1;
	snprintf(o.dest, sizeof o.dest, "%s", f->to[0] ? f->to : a->dest);
	o.bytes = f->data;
	o.len = f->len;
	memcpy(o.msg_id, f->msg_id, RELM_ID_LEN);
	o.has_msg = !is_zero(f->msg_id, RELM_ID_LEN);
	o.created = a->now;
	return relm_store_outbox_add(a->st, &o, NULL);
}

static int deliver(struct apply *a, const struct relm_fx *f)
{
	struct relm_store_msg m;
	int rc;

	memset(&m, 0, sizeof m);
	memcpy(m.rel, a->rel, RELM_ID_LEN);
	memcpy(m.id, f->msg_id, RELM_ID_LEN);
	m.direction_in = !!f->direction_in;
	m.origin = f->origin ? f->origin : (f->direction_in ? RELM_ORIGIN_REMOTE : RELM_ORIGIN_SELF);
	/* unknown kinds keep the name they had on the wire (rel.c puts it in detail) */
	snprintf(m.kind, sizeof m.kind, "%.*s", (int)sizeof m.kind - 1,
	         f->kind == RELM_KIND_UNKNOWN && f->detail[0] ? f->detail : relm_kind_name(f->kind));
	m.body = f->data;
	m.body_len = f->len;
	m.ts = f->ts;
	m.status = f->direction_in ? RELM_STATUS_NONE : RELM_STATUS_QUEUED;
	m.created = a->now;
	if ((rc = relm_store_msg_insert(a->st, &m)) <= 0)
		return rc;                    /* a duplicate (0): nothing new to say */
	if (f->direction_in && (rc = relm_store_rel_inc_unread(a->st, a->rel)) != 0)
		return rc;
	return event(a, f->direction_in ? RELM_EV_MESSAGE_RECEIVED : RELM_EV_MESSAGE_SENT,
	             f->msg_id, 0, 0, NULL);
}

static int status(struct apply *a, const struct relm_fx *f)
{
	int moved = relm_store_msg_advance(a->st, a->rel, f->msg_id, f->status, f->detail, a->now);

	if (moved <= 0)
		return moved;
	return event(a, RELM_EV_MESSAGE_STATUS, f->msg_id,
	             RELM_EVF_STATUS | (f->detail[0] ? RELM_EVF_REASON : 0), f->status, f->detail);
}

static int engine_event(struct apply *a, const struct relm_fx *f)
{
	struct relm_event ev = f->ev;
	unsigned need, may;

	relm_event_fields(ev.type, &need, &may);
	if (((need | may) & RELM_EVF_REL) && !(ev.has & RELM_EVF_REL)) {
		memcpy(ev.rel, a->rel, RELM_ID_LEN);
		ev.has |= RELM_EVF_REL;
	}
	ev.reason = NULL;
	ev.has &= ~RELM_EVF_REASON;
	return relm_store_event_append(a->st, &ev, a->now, NULL);
}

/* ACK_PUT / ACK_DEL data: records of RELM_FX_ACK_LEN bytes (effects.h). */
static int acks(struct apply *a, const struct relm_fx *f)
{
	if (f->len % RELM_FX_ACK_LEN != 0 || (f->len && !f->data))
		return RELM_EINVAL;
	for (size_t off = 0; off < f->len; off += RELM_FX_ACK_LEN) {
		const uint8_t *p = f->data + off;
		uint32_t n = relm_fx_ack_n(p);
		int rc = f->type == RELM_FX_ACK_PUT
		       ? relm_store_ack_put(a->st, a->rel, p, p + RELM_FX_ACK_DH, n)
		       : relm_store_ack_del(a->st, a->rel, p, p + RELM_FX_ACK_DH, n);
		if (rc != 0 && rc != RELM_ENOTFOUND)   /* never stored (out of memory then): done */
			return rc;
	}
	return 0;
}

static int out_put(struct apply *a, const struct relm_fx *f)
{
	struct relm_store_outgoing o = { .kind = f->kind, .ts = f->ts, .body = f->data, .body_len = f->len,
	                                 .tries = f->tries, .next_ms = f->next_ms };

	memcpy(o.rel, a->rel, RELM_ID_LEN);
	memcpy(o.id, f->msg_id, RELM_ID_LEN);
	memcpy(o.last_node, f->node, RELM_ID_LEN);
	/* a sibling's try of a row the step did not load: one more try of it,
	 * not a count restarted at 1 */
	return f->add_try ? relm_store_outgoing_add_try(a->st, &o) : relm_store_outgoing_put(a->st, &o);
}

/* A duplicate add or the delete of a row already gone is no error: the
 * engine's view and the file's agree again. */
static int tolerate(int rc, int ok)
{
	return rc == ok ? 0 : rc;
}

/* A pending request: its row (devices.md §11.5). */
static int req_put(struct apply *a, const struct relm_fx *f)
{
	struct relm_store_request r;

	memset(&r, 0, sizeof r);
	memcpy(r.rel, a->rel, RELM_ID_LEN);
	memcpy(r.id, f->msg_id, RELM_ID_LEN);
	memcpy(r.dev, f->dev, RELM_ID_LEN);
	r.data = f->data;
	r.len = f->len;
	r.next_ms = f->next_ms;
	return relm_store_request_put(a->st, &r);
}

static int apply_one(struct apply *a, const struct relm_fx *f)
{
	switch (f->type) {
	case RELM_FX_POST:
		return post(a, f);
	case RELM_FX_DELIVER:
		return deliver(a, f);
	case RELM_FX_STATUS:
		return status(a, f);
	case RELM_FX_EVENT:
		return engine_event(a, f);
	case RELM_FX_PENDING_ADD:
		return tolerate(relm_store_pending_add(a->st, a->rel, f->hash, f->data, f->len,
		                                       f->ts ? f->ts : a->now), RELM_EDUP);
	case RELM_FX_PENDING_DEL:
		return tolerate(relm_store_pending_del(a->st, a->rel, f->hash), RELM_ENOTFOUND);
	case RELM_FX_OUT_PUT:
		return out_put(a, f);
	case RELM_FX_OUT_DEL:
		return tolerate(relm_store_outgoing_del(a->st, a->rel, f->msg_id), RELM_ENOTFOUND);
	case RELM_FX_ACK_PUT:
	case RELM_FX_ACK_DEL:
		return acks(a, f);
	case RELM_FX_NONE:
		return 0;
	case RELM_FX_REQ_PUT:
		return req_put(a, f);
	case RELM_FX_REQ_DEL:
		/* a copy or deliver settles a request (devices.md §11.5), if
		 * this device made it */
		return tolerate(relm_store_request_del(a->st, a->rel, f->msg_id), RELM_ENOTFOUND);
	case RELM_FX_SIB_TO:
	case RELM_FX_COPY:
	case RELM_FX_STATE_REQ:
	case RELM_FX_SIBLING:
		/* Sibling traffic: the engine emits it only for a relationship
		 * whose environment names sibling devices, which this store
		 * does not route yet; refusing it rolls the step back rather
		 * than drop a copy a sibling needs. */
		return RELM_EINVAL;
	}
	return RELM_EINVAL;
}

/* ---- a receipt's messages, many per statement ---- */

/* f is (STATUS delivered, no reason) and g the OUT_DEL of the same
 * message: what a receipt emits for each message it covers (rel.c). */
static int is_delivered_pair(const struct relm_fx *f, const struct relm_fx *g)
{
	return f->type == RELM_FX_STATUS && f->status == RELM_STATUS_DELIVERED && !f->detail[0] &&
	       g->type == RELM_FX_OUT_DEL && memcmp(f->msg_id, g->msg_id, RELM_ID_LEN) == 0;
}

/* The run of k such pairs at v (k <= RELM_STORE_MANY), applied with one
 * UPDATE and one DELETE instead of k each: a receipt covers up to
 * hundreds of messages, and a statement each made it the longest loop
 * turn of a sending relmd.  The store ends as after the pairs one by one
 * (the status moves, its event, the retransmission row goes), and the
 * events come in the same order: one per message that moved, at its
 * first occurrence (an id given twice moves once). */
static int delivered_run(struct apply *a, const struct relm_fx *v, size_t k)
{
	uint8_t ids[RELM_STORE_MANY][RELM_ID_LEN], moved[RELM_STORE_MANY];
	int rc;

	for (size_t i = 0; i < k; i++)
		memcpy(ids[i], v[2 * i].msg_id, RELM_ID_LEN);
	if ((rc = relm_store_msg_advance_many(a->st, a->rel, (const uint8_t (*)[RELM_ID_LEN])ids, k,
	                                      RELM_STATUS_DELIVERED, a->now, moved)) != 0)
		return rc;
	for (size_t i = 0; i < k; i++) {
		size_t j = 0;
		while (j < i && memcmp(ids[j], ids[i], RELM_ID_LEN) != 0)
			j++;
		if (!moved[i] || j < i)
			continue;
		if ((rc = event(a, RELM_EV_MESSAGE_STATUS, ids[i], RELM_EVF_STATUS, RELM_STATUS_DELIVERED,
		                NULL)) != 0)
			return rc;
	}
	rc = relm_store_outgoing_del_many(a->st, a->rel, (const uint8_t (*)[RELM_ID_LEN])ids, k);
	return rc < 0 ? rc : 0;
}

int relm_core_apply(struct relm_store *st, const uint8_t rel[RELM_ID_LEN], const char *dest,
                    const struct relm_effects *fx, uint64_t now_ms)
{
	struct apply a = { .st = st, .rel = rel, .dest = dest, .now = now_ms };
	int rc = 0;

	for (size_t i = 0; i < fx->n && !rc;) {
		size_t k = 0;
		while (k < RELM_STORE_MANY && i + 2 * k + 1 < fx->n &&
		       is_delivered_pair(&fx->v[i + 2 * k], &fx->v[i + 2 * k + 1]))
			k++;
		if (k > 1) {
			rc = delivered_run(&a, &fx->v[i], k);
			i += 2 * k;
		} else {
			rc = apply_one(&a, &fx->v[i]);
			i++;
		}
	}
	return rc;
}

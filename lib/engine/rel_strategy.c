/*
 * rel_strategy.c — the leader and fanout strategies in the engine
 * (rel_strategy.h, proto/devices.md §11): who sends under a view, requests
 * made, re-sent and served, the takeover of a new sender, and the hub's
 * history carried to devices without state.
 *
 * A request is the payload a sender will post, made by the requester:
 * its id and its ts (the requester's corrected clock when the person
 * typed) travel in it, so the remote gets the same payload whichever
 * device sends it, and a request served twice (an old leader and a new
 * one) is one message id twice, which the remote de-duplicates as it does
 * a retransmission.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sodium.h>
#include "engine/rel_strategy.h"
#include "engine/rel_int.h"
#include "engine/ratchet.h"
#include "wire/payload.h"
#include "error.h"

static int is_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static int multi_device(const struct relm_env *env)
{
	return env && env->devices && env->devices->count > 1;
}

static int is_holder(const struct relm_env *env)
{
	return memcmp(env->devices->holder, env->devices->self, RELM_ID_LEN) == 0;
}

int relm_strategy_sends(const struct relm_env *env)
{
	if (!multi_device(env) || env->devices->strategy == RELM_STRATEGY_LEADERLESS)
		return 1;
	return is_holder(env);
}

int relm_strategy_holds_state(const struct relm_env *env)
{
	if (!multi_device(env) || env->devices->strategy != RELM_STRATEGY_FANOUT)
		return 1;
	return is_holder(env);
}

int relm__sends(const struct relm_rel *rel, const struct relm_env *env)
{
	/* a sibling session (strict, between two devices) is no relationship
	 * of the proton's: the strategy does not apply to it */
	return rel->sibling_session || rel->mode != RELM_MODE_TREE || relm_strategy_sends(env);
}

int relm__holder_elsewhere(const struct relm_rel *rel, const struct relm_env *env)
{
	static const uint8_t zero[RELM_ID_LEN];

	return !relm__sends(rel, env) && env->devices->strategy == RELM_STRATEGY_LEADER &&
	       memcmp(env->devices->holder, zero, RELM_ID_LEN) != 0;
}

int relm_strategy_newer(const struct relm_sib_strategy *held, const struct relm_sib_strategy *got)
{
	if (!held)
		return 1;
	if (got->seq != held->seq)
		return got->seq > held->seq;
	return memcmp(got->by, held->by, RELM_ID_LEN) > 0;
}

/* ---- requests ------------------------------------------------------------------ */

/* SIB_TO (req to `to`) and the row saying so; 0 or RELM_ENOMEM (fx as it was). */
static int send_request(const struct relm_env *env, const uint8_t *req, size_t len,
                        const uint8_t msg_id[RELM_ID_LEN], const uint8_t to[RELM_ID_LEN],
                        struct relm_effects *fx)
{
	size_t mark = fx->n;
	struct relm_fx *f;
	int known = !is_zero(to, RELM_ID_LEN);

	if (known) {
		if (!(f = relm__fx_push(fx, RELM_FX_SIB_TO)) || !(f->data = malloc(len)))
			goto nomem;
		memcpy(f->data, req, len);
		f->len = len;
		memcpy(f->dev, to, RELM_ID_LEN);
		memcpy(f->msg_id, msg_id, RELM_ID_LEN);
	}
	if (!(f = relm__fx_push(fx, RELM_FX_REQ_PUT)) || !(f->data = malloc(len)))
		goto nomem;
	memcpy(f->data, req, len);
	f->len = len;
	memcpy(f->dev, to, RELM_ID_LEN);
	memcpy(f->msg_id, msg_id, RELM_ID_LEN);
	f->next_ms = relm__now(env) + RELM_REQUEST_RESEND_MS;
	return 0;
nomem:
	relm__fx_truncate(fx, mark);
	return RELM_ENOMEM;
}

int relm_request_make(const struct relm_env *env, const uint8_t rel_id[RELM_ID_LEN],
                      const char *body, size_t body_len, const uint8_t *id,
                      uint8_t id_out[RELM_ID_LEN], struct relm_effects *fx)
{
	struct relm_sib_request q;
	struct relm_payload p;
	uint8_t *req = NULL;
	size_t len = 0, mark = fx->n;
	int rc;

	if (!body || relm_strategy_sends(env))
		return RELM_EINVAL;
	if (body_len > RELM_REQUEST_BODY_MAX)
		return RELM_ETOOBIG;
	memset(&q, 0, sizeof q);
	memcpy(q.rel, rel_id, RELM_ID_LEN);
	q.ts = relm__now(env);
	if (id)
		memcpy(q.id, id, RELM_ID_LEN);
	else
		relm__new_id(env, q.ts, q.id);
	if (env->history_has && env->history_has(env->history_ctx, rel_id, q.id) > 0) {
		memcpy(id_out, q.id, RELM_ID_LEN);
		return RELM_EEXIST;
	}
	snprintf(q.kind, sizeof q.kind, "text");
	q.body = (const uint8_t *)body;
	q.body_len = body_len;
	if ((rc = relm_sib_request_encode(&req, &len, &q)) != 0)
		return rc;
	memset(&p, 0, sizeof p);
	memcpy(p.id, q.id, RELM_ID_LEN);
	p.kind = RELM_KIND_TEXT;
	snprintf(p.kind_str, sizeof p.kind_str, "text");
	p.ts = q.ts;
	p.body = (char *)(uintptr_t)body;
	p.body_len = body_len;
	if ((rc = relm__emit_deliver(fx, &p, 0, RELM_ORIGIN_SELF)) != 0 ||
	    (rc = relm__emit_status(fx, q.id, RELM_STATUS_QUEUED, NULL)) != 0 ||
	    (rc = send_request(env, req, len, q.id, env->devices->holder, fx)) != 0) {
		relm__fx_truncate(fx, mark);
		goto out;
	}
	memcpy(id_out, q.id, RELM_ID_LEN);
out:
	relm_sib_buf_free(req, len);
	return rc;
}

int relm__request_again(const struct relm_rel *rel, const struct relm_env *env,
                        const struct relm_payload *p, struct relm_effects *fx)
{
	struct relm_sib_request q;
	struct relm_fx *f;
	int rc;

	if (p->kind != RELM_KIND_TEXT)
		return RELM_ENOSEND;
	memset(&q, 0, sizeof q);
	memcpy(q.rel, rel->id, RELM_ID_LEN);
	memcpy(q.id, p->id, RELM_ID_LEN);
	q.flags = RELM_SIB_R_AGAIN;
	snprintf(q.kind, sizeof q.kind, "text");
	q.ts = p->ts;
	q.body = (const uint8_t *)p->body;
	q.body_len = p->body_len;
	if (!(f = relm__fx_push(fx, RELM_FX_SIB_TO)))
		return RELM_ENOMEM;
	if ((rc = relm_sib_request_encode(&f->data, &f->len, &q)) != 0) {
		fx->n--;
		return rc == RELM_ENOMEM ? rc : RELM_ENOSEND;
	}
	memcpy(f->dev, env->devices->holder, RELM_ID_LEN);
	memcpy(f->msg_id, p->id, RELM_ID_LEN);
	return 0;
}

int relm_request_due(const struct relm_env *env, const uint8_t *req, size_t len,
                     const uint8_t to[RELM_ID_LEN], uint64_t next_ms, struct relm_effects *fx)
{
	struct relm_sib_request q;
	const uint8_t *holder;
	int rc;

	if ((rc = relm_sib_request_decode(&q, req, len)) != 0)
		return rc;
	if (relm_strategy_sends(env))
		return 1;
	holder = env->devices->holder;
	if (is_zero(holder, RELM_ID_LEN))
		return 0;                       /* nobody to ask yet: it waits */
	if (memcmp(holder, to, RELM_ID_LEN) == 0 && relm__now(env) < next_ms)
		return 0;
	return send_request(env, req, len, q.id, holder, fx);
}

/* A text payload p of id, ts and a copy of body (a C string, returned:
 * the caller wipes and frees it), or NULL when out of memory. */
static char *text_payload(struct relm_payload *p, const uint8_t id[RELM_ID_LEN], uint64_t ts,
                          const uint8_t *b, size_t n)
{
	char *body = malloc(n + 1);

	if (!body)
		return NULL;
	if (n)
		memcpy(body, b, n);
	body[n] = '\0';
	memset(p, 0, sizeof *p);
	memcpy(p->id, id, RELM_ID_LEN);
	p->kind = RELM_KIND_TEXT;
	snprintf(p->kind_str, sizeof p->kind_str, "text");
	p->ts = ts;
	p->body = body;
	p->body_len = n;
	return body;
}

/* Drop effect i (wiped), keeping the order of the others. */
static void fx_drop(struct relm_effects *fx, size_t i)
{
	struct relm_fx *f = &fx->v[i];

	if (f->data) {
		sodium_memzero(f->data, f->len);
		free(f->data);
	}
	memmove(&fx->v[i], &fx->v[i + 1], (fx->n - i - 1) * sizeof fx->v[0]);
	fx->n--;
}

int relm_rel_serve(struct relm_rel *rel, const struct relm_env *env, const uint8_t *req,
                   size_t len, int own, struct relm_effects *fx)
{
	struct relm_sib_request q;
	struct relm_payload p;
	uint8_t on[RELM_ID_LEN];
	char *body = NULL;
	size_t mark = fx->n;
	int rc, held;

	if ((rc = relm_sib_request_decode(&q, req, len)) != 0)
		return rc;
	if (memcmp(q.rel, rel->id, RELM_ID_LEN) != 0 || strcmp(q.kind, "text") != 0 ||
	    !relm__sends(rel, env))
		return RELM_EINVAL;
	/* de-duplication by message id: sent already (by this device or, as
	 * its copy said, a sibling), or queued here.  AGAIN: the requester
	 * saw no receipt — send it again unless it is queued here. */
	held = env->history_has && env->history_has(env->history_ctx, rel->id, q.id) > 0;
	if (relm__find_outgoing(rel, q.id) >= 0 || (!own && held && !(q.flags & RELM_SIB_R_AGAIN))) {
		struct relm_fx *f;
		if (!own)
			return RELM_EDUP;
		/* an own request already queued here: its row has done its job */
		if (!(f = relm__fx_push(fx, RELM_FX_REQ_DEL)))
			return RELM_ENOMEM;
		memcpy(f->msg_id, q.id, RELM_ID_LEN);
		return RELM_EDUP;
	}
	if (rel->nout >= RELM_MAX_OUTGOING)
		return RELM_ELIMIT;
	if (!(body = text_payload(&p, q.id, q.ts, q.body, q.body_len)))
		return RELM_ENOMEM;
	if (own) {
		struct relm_fx *f = relm__fx_push(fx, RELM_FX_REQ_DEL);
		if (!f) {
			rc = RELM_ENOMEM;
			goto out;
		}
		memcpy(f->msg_id, q.id, RELM_ID_LEN);
	}
	if ((rc = relm__rel_send_tracked(rel, env, &p, body, q.body_len, 0, on, fx)) != 0) {
		relm__fx_truncate(fx, mark);
		goto out;
	}
	/* relm__rel_send_tracked records the message as this device's own:
	 * a sibling's request is the sibling's, and an own request is in the
	 * history already */
	for (size_t i = mark; i < fx->n; i++)
		if (fx->v[i].type == RELM_FX_DELIVER) {
			if (own || held)
				fx_drop(fx, i);
			else
				fx->v[i].origin = RELM_ORIGIN_SIBLING;
			break;
		}
	rc = 0;
out:
	if (body) {
		sodium_memzero(body, q.body_len + 1);
		free(body);
	}
	return rc;
}

/* ---- taking over ------------------------------------------------------------------ */

int relm_rel_lead(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx)
{
	uint64_t due = relm__now(env) + env->params.retx_base_ms;
	size_t mark = fx->n;

	/* effects first: on failure nothing of rel changed */
	for (uint32_t i = 0; i < rel->nout; i++) {
		struct relm_outgoing o = rel->out[i];
		if (!o.sibling)
			continue;
		o.sibling = 0;
		if (o.next_ms > due)
			o.next_ms = due;
		if (relm__emit_out_put(fx, &o) != 0) {
			relm__fx_truncate(fx, mark);
			return RELM_ENOMEM;
		}
	}
	for (uint32_t i = 0; i < rel->nout; i++) {
		struct relm_outgoing *o = &rel->out[i];
		if (!o->sibling)
			continue;
		o->sibling = 0;
		if (o->next_ms > due)
			o->next_ms = due;
	}
	return 0;
}

/* ---- fanout -------------------------------------------------------------------------- */

static int push_deliver(struct relm_effects *fx, const struct relm_sib_deliver *d)
{
	struct relm_fx *f = relm__fx_push(fx, RELM_FX_COPY);
	int rc;

	if (!f)
		return RELM_ENOMEM;
	if ((rc = relm_sib_deliver_encode(&f->data, &f->len, d)) != 0) {
		fx->n--;
		return rc;
	}
	memcpy(f->msg_id, d->id, RELM_ID_LEN);
	return 0;
}

/* Is there a DELIVER of id among fx[mark, end)? */
static int delivered_in(const struct relm_effects *fx, size_t mark, size_t end,
                        const uint8_t id[RELM_ID_LEN])
{
	for (size_t i = mark; i < end; i++)
		if (fx->v[i].type == RELM_FX_DELIVER && memcmp(fx->v[i].msg_id, id, RELM_ID_LEN) == 0)
			return 1;
	return 0;
}

/* d (rel, id, status set): the whole entry, from a DELIVER of the same
 * message among fx[mark, end) or from the history.  RELM_ENOTFOUND when
 * neither has it (nothing pushed). */
static int deliver_entry(const struct relm_rel *rel, const struct relm_env *env,
                         struct relm_effects *fx, size_t mark, size_t end, struct relm_sib_deliver *d)
{
	uint8_t *body = NULL;
	size_t len = 0;
	uint64_t ts = 0;
	int kind = 0, rc;
	const char *name;

	for (size_t i = mark; i < end; i++) {
		const struct relm_fx *f = &fx->v[i];
		if (f->type != RELM_FX_DELIVER || memcmp(f->msg_id, d->id, RELM_ID_LEN) != 0)
			continue;
		name = f->kind == RELM_KIND_UNKNOWN ? f->detail : relm_kind_name(f->kind);
		if (f->direction_in || !name || strlen(name) > RELM_SIB_KIND_MAX || f->len > RELM_REQUEST_BODY_MAX)
			return RELM_ENOTFOUND;
		memcpy(d->kind, name, strlen(name) + 1);
		d->ts = f->ts;
		/* the entry's bytes: fx may grow (and move) while pushing */
		if (!(body = malloc(f->len ? f->len : 1)))
			return RELM_ENOMEM;
		memcpy(body, f->data, f->len);
		d->body = body;
		d->body_len = f->len;
		rc = push_deliver(fx, d);
		sodium_memzero(body, d->body_len);
		free(body);
		return rc;
	}
	if (!env->history_get ||
	    env->history_get(env->history_ctx, rel->id, d->id, &kind, &ts, &body, &len) != 0)
		return RELM_ENOTFOUND;
	name = relm_kind_name(kind);
	rc = RELM_ENOTFOUND;
	if (name && strlen(name) <= RELM_SIB_KIND_MAX && len <= RELM_REQUEST_BODY_MAX) {
		memcpy(d->kind, name, strlen(name) + 1);
		d->ts = ts;
		d->body = body;
		d->body_len = len;
		rc = push_deliver(fx, d);
	}
	if (body) {
		sodium_memzero(body, len);
		free(body);
	}
	return rc;
}

/* d (rel, id set): the history entry of an own message, from the history. */
static int deliver_own(const struct relm_rel *rel, const struct relm_env *env,
                       struct relm_effects *fx, struct relm_sib_deliver *d)
{
	uint8_t *body = NULL;
	size_t len = 0;
	uint64_t ts = 0;
	int kind = 0, rc;
	const char *name;

	if (env->history_get(env->history_ctx, rel->id, d->id, &kind, &ts, &body, &len) != 0)
		return 0;                       /* no such message here: a sibling's copy */
	name = relm_kind_name(kind);
	rc = 0;
	if (name && strlen(name) <= RELM_SIB_KIND_MAX && len <= RELM_REQUEST_BODY_MAX) {
		d->status = RELM_STATUS_QUEUED;
		memcpy(d->kind, name, strlen(name) + 1);
		d->ts = ts;
		d->body = body;
		d->body_len = len;
		rc = push_deliver(fx, d);
	}
	if (body) {
		sodium_memzero(body, len);
		free(body);
	}
	return rc;
}

int relm_rel_fanout(const struct relm_rel *rel, const struct relm_env *env,
                    struct relm_effects *fx, size_t mark)
{
	size_t end = fx->n;

	if (!multi_device(env) || env->devices->strategy != RELM_STRATEGY_FANOUT || !is_holder(env) ||
	    rel->sibling_session)
		return 0;
	for (size_t i = mark; i < end; i++) {
		const struct relm_fx *f = &fx->v[i];
		struct relm_sib_deliver d;
		const char *kind;
		int rc = 0;

		memset(&d, 0, sizeof d);
		memcpy(d.rel, rel->id, RELM_ID_LEN);
		memcpy(d.id, f->msg_id, RELM_ID_LEN);
		if (f->type == RELM_FX_DELIVER) {
			if (f->kind == RELM_KIND_RECEIPT || f->len > RELM_REQUEST_BODY_MAX)
				continue;
			d.flags = f->direction_in ? RELM_SIB_D_IN : 0;
			d.status = f->direction_in ? RELM_STATUS_NONE : RELM_STATUS_QUEUED;
			kind = f->kind == RELM_KIND_UNKNOWN ? f->detail : relm_kind_name(f->kind);
			if (!kind || strlen(kind) > RELM_SIB_KIND_MAX)
				continue;               /* a kind no deliver can name */
			memcpy(d.kind, kind, strlen(kind) + 1);
			d.ts = f->ts;
			d.body = f->data;
			d.body_len = f->len;
			rc = push_deliver(fx, &d);
		} else if (f->type == RELM_FX_REQ_DEL && env->history_get &&
		           !delivered_in(fx, mark, end, f->msg_id)) {
			/* the hub's own request, sent now (by itself or, as a copy
			 * says, by a former holder): in its history since it was
			 * typed, never delivered to its siblings */
			rc = deliver_own(rel, env, fx, &d);
		} else if (f->type == RELM_FX_STATUS && f->status > RELM_STATUS_QUEUED &&
		           f->status < RELM_STATUS_COUNT) {
			/* the whole entry with its status: a sibling may read it
			 * before the entry itself (two sessions with one sibling
			 * deliver in either order), and a status moves only
			 * forward; the bare STATUS form when the entry is not at
			 * hand */
			d.status = (uint8_t)f->status;
			if ((rc = deliver_entry(rel, env, fx, mark, end, &d)) == RELM_ENOTFOUND) {
				memset(d.kind, 0, sizeof d.kind);
				d.ts = 0;
				d.body = NULL;
				d.body_len = 0;
				d.flags = RELM_SIB_D_STATUS;
				rc = push_deliver(fx, &d);
			}
		}
		/* an entry the codec refuses (a body that is not text) is not
		 * carried; anything else failing undoes them all */
		if (rc == RELM_ENOMEM) {
			relm__fx_truncate(fx, end);
			return rc;
		}
	}
	return 0;
}

int relm_deliver_apply(const struct relm_env *env, struct relm_rel *rel, const uint8_t *buf,
                       size_t len, uint8_t rel_out[RELM_ID_LEN], struct relm_effects *fx)
{
	static const uint8_t unknown_node[RELM_ID_LEN];
	struct relm_sib_deliver d;
	size_t mark = fx->n;
	struct relm_fx *f;
	int rc, have, o;

	if ((rc = relm_sib_deliver_decode(&d, buf, len)) != 0)
		return rc;
	if (rel && memcmp(rel->id, d.rel, RELM_ID_LEN) != 0)
		return RELM_EINVAL;
	have = (d.flags & RELM_SIB_D_STATUS) ||
	       (env->history_has && env->history_has(env->history_ctx, d.rel, d.id) > 0);
	if (rel && !(d.flags & (RELM_SIB_D_IN | RELM_SIB_D_STATUS)) && d.status < RELM_STATUS_DELIVERED &&
	    !strcmp(d.kind, "text")) {
		/* a device holding state keeps a sent message it never saw a
		 * copy of as a copy would have it: so the remote's receipt marks
		 * it delivered here too (a hub copied to nobody) */
		struct relm_payload p;
		char *body = text_payload(&p, d.id, d.ts, d.body, d.body_len);
		if (!body)
			return RELM_ENOMEM;
		rc = relm__record_sibling(rel, env, &p, unknown_node, fx);
		sodium_memzero(body, d.body_len + 1);
		free(body);
		if (rc != 0)
			return rc;
		memcpy(rel_out, d.rel, RELM_ID_LEN);
		return 0;
	}
	if (rel && d.status >= RELM_STATUS_DELIVERED && (o = relm__find_outgoing(rel, d.id)) >= 0 &&
	    rel->out[o].sibling) {
		/* the hub saw the receipt: nothing of it is left to do here */
		if ((rc = relm__emit_out_del(fx, d.id)) != 0)
			return rc;
		relm__outgoing_remove(rel, o);
	}
	if (!have) {
		struct relm_payload p;
		char *body = malloc(d.body_len + 1);
		if (!body)
			return RELM_ENOMEM;
		memcpy(body, d.body, d.body_len);
		body[d.body_len] = '\0';
		memset(&p, 0, sizeof p);
		memcpy(p.id, d.id, RELM_ID_LEN);
		p.kind = relm_kind_from_name(d.kind);
		snprintf(p.kind_str, sizeof p.kind_str, "%s", d.kind);
		p.ts = d.ts;
		if (p.kind == RELM_KIND_UNKNOWN) {
			p.raw = body;
			p.raw_len = d.body_len;
		} else {
			p.body = body;
			p.body_len = d.body_len;
		}
		rc = relm__emit_deliver(fx, &p, (d.flags & RELM_SIB_D_IN) != 0,
		                        (d.flags & RELM_SIB_D_IN) ? RELM_ORIGIN_REMOTE : RELM_ORIGIN_SIBLING);
		sodium_memzero(body, d.body_len + 1);
		free(body);
		if (rc != 0)
			return rc;
	}
	if (d.status > RELM_STATUS_QUEUED &&
	    (rc = relm__emit_status(fx, d.id, d.status, d.status == RELM_STATUS_FAILED ? "failed at the hub" : NULL)) != 0)
		goto fail;
	if (!(d.flags & RELM_SIB_D_IN)) {
		if (!(f = relm__fx_push(fx, RELM_FX_REQ_DEL))) {
			rc = RELM_ENOMEM;
			goto fail;
		}
		memcpy(f->msg_id, d.id, RELM_ID_LEN);
	}
	memcpy(rel_out, d.rel, RELM_ID_LEN);
	return 0;
fail:
	relm__fx_truncate(fx, mark);
	return rc;
}

/*
 * strategy.c — the proton's strategy in relmd (proto/devices.md §11): the
 * view every engine step is given, strategy changes made here and adopted
 * from siblings, pending requests (made, re-sent, served), and the send
 * lease's bookkeeping.  The mailbox client performs the LEASE itself
 * (relmd asks relm_core_leases what to send and hands the answer to
 * relm_core_lease_result); the engine decides nothing of the view.
 *
 * What is in memory only: the live lease holder as last read and how long
 * this device may send on its own lease, and whether it sent for the
 * proton at the last view change.  A restart forgets them: until its
 * first lease answer a device of a `leader` proton believes no holder, so
 * it sends nothing and its requests wait — the safe side.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "core/core_int.h"
#include "engine/rel_strategy.h"
#include "wire/lease.h"
#include "error.h"

static const char *const names[] = { "leaderless", "leader", "fanout" };

const char *relm_core_strategy_name(int strategy)
{
	return strategy >= 0 && strategy < 3 ? names[strategy] : NULL;
}

int relm_core_strategy_parse(const char *name)
{
	for (int i = 0; i < 3; i++)
		if (name && strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

/* ---- the in-memory view ----------------------------------------------------- */

static struct relm__view *view_find(struct relm_core *c, const uint8_t proton[RELM_ID_LEN])
{
	for (size_t i = 0; i < RELM__VIEWS; i++)
		if (c->views[i].used && memcmp(c->views[i].proton, proton, RELM_ID_LEN) == 0)
			return &c->views[i];
	return NULL;
}

/* proton's view, made when missing (the least recently used slot goes:
 * forgetting a view is a restart's forgetting, safe). */
static struct relm__view *view_get(struct relm_core *c, const uint8_t proton[RELM_ID_LEN])
{
	struct relm__view *v = view_find(c, proton), *old = &c->views[0];

	if (v) {
		v->stamp = ++c->view_clock;
		return v;
	}
	for (size_t i = 0; i < RELM__VIEWS; i++) {
		if (!c->views[i].used) {
			old = &c->views[i];
			break;
		}
		if (c->views[i].stamp < old->stamp)
			old = &c->views[i];
	}
	free(old->heard);
	memset(old, 0, sizeof *old);
	old->used = 1;
	old->sender = -1;
	memcpy(old->proton, proton, RELM_ID_LEN);
	old->stamp = ++c->view_clock;
	return old;
}

/* The strategy row of proton: strategy, pinned, (seq, by). */
static int held(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], struct relm_sib_strategy *s)
{
	struct relm_store_proton p;
	int rc, k;

	if (relm__core_devs_cached(c, proton, 2)) {
		*s = c->devs_cache.held;
		return 0;
	}
	memset(s, 0, sizeof *s);
	if ((rc = relm_store_proton_get(c->st, proton, &p, 0)) != 0)
		return rc;
	k = relm_core_strategy_parse(p.strategy);
	s->strategy = (uint8_t)(k < 0 ? 0 : k);
	s->seq = p.strategy_seq;
	memcpy(s->pinned, p.pinned, RELM_ID_LEN);
	memcpy(s->by, p.strategy_by, RELM_ID_LEN);
	relm_store_proton_clear(&p);
	c->devs_cache.held = *s;
	c->devs_cache.ok |= 2;
	return 0;
}

struct relm__view *relm__core_view(struct relm_core *c, const uint8_t proton[RELM_ID_LEN])
{
	return view_get(c, proton);
}

int relm__core_view_fill(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], struct relm_devices *ds)
{
	struct relm_sib_strategy s;
	struct relm__view *v;
	int rc;

	ds->strategy = RELM_STRATEGY_LEADERLESS;
	memset(ds->holder, 0, RELM_ID_LEN);
	if (ds->count <= 1)
		return 0;                            /* one device: the engine ignores the view */
	if ((rc = held(c, proton, &s)) != 0)
		return rc;
	ds->strategy = s.strategy;
	if (s.strategy == RELM_STRATEGY_FANOUT ||
	    (s.strategy == RELM_STRATEGY_LEADER && !sodium_is_zero(s.pinned, RELM_ID_LEN))) {
		memcpy(ds->holder, s.pinned, RELM_ID_LEN);
	} else if (s.strategy == RELM_STRATEGY_LEADER && (v = view_find(c, proton)) != NULL) {
		/* its own lease counts only until it could have expired (§11.2) */
		int own = memcmp(v->holder, ds->self, RELM_ID_LEN) == 0;
		if (!own || relm__core_now(c) < v->until)
			memcpy(ds->holder, v->holder, RELM_ID_LEN);
	}
	return 0;
}

/* ---- after a view change ----------------------------------------------------- */

static int rel_id_cb(void *ctx, const struct relm_store_rel *r)
{
	return relm__ids_push(ctx, r->id);
}

/* One engine step on relationship rel_id inside the open step: lead it
 * (data NULL), or a pending request's row (data, to, next). */
static int rel_step(struct relm_core *c, const uint8_t rel_id[RELM_ID_LEN], const uint8_t *data,
                    size_t len, const uint8_t *to, uint64_t next)
{
	struct relm_effects fx;
	struct relm_rel *rel = NULL;
	int rc;

	if (data && len >= 1 + 2 * RELM_ID_LEN) {
		/* a retransmission's request (AGAIN) whose message the remote
		 * has receipted since: nothing is left to ask */
		struct relm_store_msg m;
		const uint8_t *id = data + 1 + RELM_ID_LEN;
		if ((rc = relm_store_msg_get(c->st, rel_id, id, &m)) == 0 && !m.direction_in &&
		    (m.status == RELM_STATUS_DELIVERED || m.status == RELM_STATUS_FAILED))
			return relm_store_request_del(c->st, rel_id, id);
		if (rc != 0 && rc != RELM_ENOTFOUND)
			return rc;
	}
	relm_effects_init(&fx);
	if ((rc = relm__core_load(c, rel_id, &rel)) == RELM_ENOSTATE && data) {
		/* held without state: it asks the hub, and cannot serve */
		if ((rc = relm_request_due(c->env, data, len, to, next, &fx)) == 1)
			rc = 0;
		if (rc == 0)
			rc = relm__core_apply_id(c, rel_id, &fx);
		goto out;
	}
	if (rc != 0) {
		rc = relm__no_state_ok(rc);          /* nothing to lead without state */
		goto out;
	}
	if (!data) {
		rc = relm_rel_lead(rel, c->env, &fx);
	} else {
		rc = relm_request_due(c->env, data, len, to, next, &fx);
		if (rc == 1)                         /* this device sends now: its own */
			rc = relm_rel_serve(rel, c->env, data, len, 1, &fx);
		if (rc == RELM_EDUP)
			rc = 0;                          /* sent already: the row goes (REQ_DEL) */
		if (rc == RELM_EMALFORMED && len >= 1 + 2 * RELM_ID_LEN)
			rc = relm_store_request_del(c->st, rel_id, data + 1 + RELM_ID_LEN); /* damaged: dropped */
	}
	if (rc == 0)
		rc = relm__core_step_apply(c, rel, &fx);
	if (rc == 0)
		rc = relm__core_save(c, rel);
out:
	relm_effects_clear(&fx);
	relm_rel_free(rel);
	return rc;
}

/* Pending request rows copied out of the store (the steps change them). */
struct req_copy {
	struct relm_store_request r;
	uint8_t *data;
};

struct reqs {
	struct req_copy *v;
	size_t n, cap;
};

static int req_cb(void *ctx, const struct relm_store_request *r)
{
	struct reqs *q = ctx;
	struct req_copy *e;

	if (q->n == q->cap) {
		size_t cap = q->cap ? 2 * q->cap : 8;
		void *p = realloc(q->v, cap * sizeof *q->v);
		if (!p)
			return RELM_ENOMEM;
		q->v = p;
		q->cap = cap;
	}
	e = &q->v[q->n];
	e->r = *r;
	if (!(e->data = malloc(r->len)))
		return RELM_ENOMEM;
	memcpy(e->data, r->data, r->len);
	e->r.data = NULL;
	q->n++;
	return 0;
}

static void reqs_free(struct reqs *q)
{
	for (size_t i = 0; i < q->n; i++) {
		sodium_memzero(q->v[i].data, q->v[i].r.len);
		free(q->v[i].data);
	}
	free(q->v);
}

/* Inside the open step, after proton's view may have changed and at its
 * timer: a device that now sends takes over every relationship (§11.2),
 * and every pending request goes where the view says, or is served here
 * (§11.5). */
static int view_apply(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                      const struct relm_sib_strategy *was, const struct relm_sib_strategy *now)
{
	struct relm__ids ids = { 0 };
	struct reqs q = { 0 };
	struct relm__view *v;
	int rc, sends;

	if ((rc = relm__core_devices_load(c, proton)) != 0)
		return rc;
	if (c->devs.count <= 1)
		return 0;
	if ((rc = relm__core_removed(c, proton)) != 0)
		return rc < 0 ? rc : 0;              /* read-only: nothing is sent from here */
	sends = relm_strategy_sends(c->env);
	v = view_get(c, proton);
	if (v->sender < 0)
		v->sender = c->devs.strategy == RELM_STRATEGY_LEADERLESS;
	if (sends && !v->sender) {
		if ((rc = relm_store_rel_list(c->st, proton, NULL, 0, rel_id_cb, &ids)) != 0)
			goto out;
		for (size_t i = 0; i < ids.n && rc == 0; i++)
			rc = rel_step(c, ids.v[i], NULL, 0, NULL, 0);
		if (rc != 0)
			goto out;
	}
	v->sender = sends;
	if ((rc = relm_store_request_list(c->st, proton, req_cb, &q)) != 0)
		goto out;
	for (size_t i = 0; i < q.n && rc == 0; i++)
		rc = rel_step(c, q.v[i].r.rel, q.v[i].data, q.v[i].r.len, q.v[i].r.dev, q.v[i].r.next_ms);
	/* then state: wiped by a fanout non-hub (its requests went to the hub
	 * first), asked back by a device that must hold it (§11.6) */
	if (rc == 0 && (rc = relm__core_devices_load(c, proton)) == 0)
		rc = relm__core_fanout_view(c, proton, was, now);
out:
	free(ids.v);
	reqs_free(&q);
	return rc;
}

/* ---- strategy changes ----------------------------------------------------------- */

/* Is id a device of the circle held (c->devs loaded)? */
static int in_circle(const struct relm_core *c, const uint8_t id[RELM_ID_LEN])
{
	for (uint32_t i = 0; i < c->devs.count; i++)
		if (memcmp(c->devs.ids[i], id, RELM_ID_LEN) == 0)
			return 1;
	return 0;
}

/* s adopted (c->devs loaded for proton), inside the open step: stored,
 * the lease released if this device held it and the proton leaves
 * `leader`, and the view applied. */
static int adopt(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], const struct relm_sib_strategy *s)
{
	struct relm__view *v = view_get(c, proton);
	struct relm_sib_strategy was;
	int rc;

	if ((rc = held(c, proton, &was)) != 0 ||
	    (rc = relm_store_proton_set_strategy(c->st, proton, relm_core_strategy_name(s->strategy),
	                                         s->pinned, s->seq, s->by)) != 0)
		return rc;
	if (memcmp(v->holder, c->devs.self, RELM_ID_LEN) == 0 && v->until > relm__core_now(c) &&
	    (s->strategy != RELM_STRATEGY_LEADER || !sodium_is_zero(s->pinned, RELM_ID_LEN)))
		v->release = 1;                      /* relm_core_leases gives it back */
	memset(v->holder, 0, RELM_ID_LEN);
	v->until = 0;
	v->asked_ms = 0;
	v->nheard = 0;                           /* the new hub must show it holds each */
	v->hub_adopted = 0;                      /* and first that it adopted this strategy */
	v->pinged_ms = 0;
	return view_apply(c, proton, &was, s);
}

/* The rules of a strategy message's fields against the circle held. */
static int strategy_ok(const struct relm_core *c, const struct relm_sib_strategy *s)
{
	int pin = !sodium_is_zero(s->pinned, RELM_ID_LEN);

	if (s->strategy > RELM_STRATEGY_FANOUT || !s->seq || !in_circle(c, s->by))
		return RELM_EINVAL;
	if (s->strategy == RELM_STRATEGY_LEADERLESS ? pin : pin && !in_circle(c, s->pinned))
		return RELM_EINVAL;
	if (s->strategy == RELM_STRATEGY_FANOUT && !pin)
		return RELM_EINVAL;
	return 0;
}

int relm_core_strategy_set(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], int strategy,
                           const uint8_t *pinned, uint64_t *seq_out)
{
	struct relm_sib_strategy s, h;
	uint8_t *frame = NULL;
	size_t flen = 0;
	int rc;

	if (strategy < 0 || strategy > RELM_STRATEGY_FANOUT)
		return RELM_EINVAL;
	if ((rc = relm_store_begin(c->st)) != 0)
		return rc;
	if ((rc = held(c, proton, &h)) != 0 || (rc = relm__core_writable(c, proton)) != 0 ||
	    (rc = relm__core_devices_load(c, proton)) != 0)
		goto out;
	memset(&s, 0, sizeof s);
	s.seq = h.seq + 1;
	s.strategy = (uint8_t)strategy;
	if (pinned)
		memcpy(s.pinned, pinned, RELM_ID_LEN);
	else if (strategy == RELM_STRATEGY_FANOUT && c->devs.count)
		memcpy(s.pinned, c->devs.self, RELM_ID_LEN);   /* this device is the hub */
	if (c->devs.count)
		memcpy(s.by, c->devs.self, RELM_ID_LEN);
	if (c->devs.count && (rc = strategy_ok(c, &s)) != 0) {
		rc = pinned && !in_circle(c, pinned) ? RELM_ENOTFOUND : rc;
		goto out;
	}
	if (!c->devs.count && (strategy != RELM_STRATEGY_LEADERLESS && pinned)) {
		rc = RELM_ENOTFOUND;                 /* no circle: no device to pin */
		goto out;
	}
	if ((rc = relm_sib_strategy_encode(&frame, &flen, &s)) != 0)
		goto out;
	for (uint32_t i = 0; i < c->devs.count && rc == 0; i++)
		if (memcmp(c->devs.ids[i], c->devs.self, RELM_ID_LEN) != 0)
			rc = relm__core_send_frame(c, proton, c->devs.ids[i], frame, flen);
	if (rc == 0)
		rc = adopt(c, proton, &s);
	if (rc == 0 && seq_out)
		*seq_out = s.seq;
out:
	relm_sib_buf_free(frame, flen);
	return relm__core_finish(c, rc);
}

int relm__core_sib_strategy(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            const uint8_t device[RELM_ID_LEN], const uint8_t *buf, size_t len)
{
	struct relm_sib_strategy s, h;
	int rc;

	if ((rc = relm_sib_strategy_decode(&s, buf, len)) != 0)
		return rc;
	if ((rc = held(c, proton, &h)) != 0 || (rc = relm__core_devices_load(c, proton)) != 0)
		return rc;
	/* any sibling may pass one on; every one a device sends is the one
	 * it holds (made, adopted, or answering) */
	if ((rc = strategy_ok(c, &s)) != 0)
		return rc;
	if (relm_strategy_newer(h.seq ? &h : NULL, &s)) {
		if ((rc = adopt(c, proton, &s)) == 0)
			rc = relm__core_hub_shown(c, proton, device, &s, 0);
		return rc;
	}
	if (h.seq != s.seq || memcmp(h.by, s.by, RELM_ID_LEN) != 0)
		return 0;                            /* older */
	return relm__core_hub_shown(c, proton, device, &s, 1);
}

int relm__core_strategy_send(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                             const uint8_t device[RELM_ID_LEN])
{
	struct relm_sib_strategy h;
	uint8_t *frame = NULL;
	size_t flen = 0;
	int rc;

	if ((rc = held(c, proton, &h)) != 0 || !h.seq)
		return rc;                           /* never changed: leaderless, known to all */
	if ((rc = relm_sib_strategy_encode(&frame, &flen, &h)) == 0)
		rc = relm__core_send_frame(c, proton, device, frame, flen);
	relm_sib_buf_free(frame, flen);
	return rc;
}

/* ---- requests from siblings --------------------------------------------------------- */

/* A request (serve) or a deliver (apply) of relationship rel_id from a
 * sibling, one engine step inside the open step. */
static int sib_step(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                    const uint8_t rel_id[RELM_ID_LEN], const uint8_t *buf, size_t len, int deliver)
{
	struct relm_effects fx;
	struct relm_rel *rel = NULL;
	uint8_t got[RELM_ID_LEN];
	int rc;

	if ((rc = relm__core_proton_rel(c, proton, rel_id)) != 0)
		return rc;                           /* not a relationship of the proton: refused */
	relm_effects_init(&fx);
	if ((rc = relm__core_load(c, rel_id, &rel)) == RELM_ENOSTATE) {
		/* held without state: a deliver goes to the history, a request
		 * is for the hub (§11.4) */
		rc = 0;
		if (deliver && (rc = relm_deliver_apply(c->env, NULL, buf, len, got, &fx)) == 0)
			rc = relm__core_apply_id(c, rel_id, &fx);
		goto out;
	}
	if (rc != 0)
		goto out;
	if (deliver) {
		rc = relm_deliver_apply(c->env, rel, buf, len, got, &fx);
	} else {
		rc = relm_rel_serve(rel, c->env, buf, len, 0, &fx);
		if (rc == RELM_EDUP || rc == RELM_EINVAL) {
			/* sent already, or this device does not send: the
			 * requester re-sends to the right one (§11.5) */
			rc = 0;
			goto out;
		}
	}
	if (rc == 0)
		rc = relm__core_step_apply(c, rel, &fx);
	if (rc == 0)
		rc = relm__core_save(c, rel);
out:
	relm_effects_clear(&fx);
	relm_rel_free(rel);
	return rc;
}

int relm__core_sib_request(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                           const uint8_t *buf, size_t len)
{
	struct relm_sib_request r;
	int rc = relm_sib_request_decode(&r, buf, len);

	return rc ? rc : sib_step(c, proton, r.rel, buf, len, 0);
}

int relm__core_sib_deliver(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                           const uint8_t device[RELM_ID_LEN], const uint8_t *buf, size_t len)
{
	struct relm_sib_deliver d;
	int rc = relm_sib_deliver_decode(&d, buf, len);

	if (rc == 0 && (rc = sib_step(c, proton, d.rel, buf, len, 1)) == 0)
		rc = relm__core_hub_heard(c, proton, device, d.rel);
	return rc;
}

/* ---- the send lease ------------------------------------------------------------------ */

static int leader_cb(void *ctx, const struct relm_store_proton *p)
{
	return strcmp(p->strategy, "leaderless") != 0 ? relm__ids_push(ctx, p->id) : 0;
}

/* The protons whose strategy is not leaderless (or whose view holds a
 * lease to give back). */
static int strategic(struct relm_core *c, struct relm__ids *ids)
{
	int rc = relm_store_proton_list(c->st, leader_cb, ids);

	for (size_t i = 0; i < RELM__VIEWS && rc == 0; i++) {
		int known = 0;
		if (!c->views[i].used || !c->views[i].release)
			continue;
		for (size_t k = 0; k < ids->n; k++)
			known |= memcmp(ids->v[k], c->views[i].proton, RELM_ID_LEN) == 0;
		if (!known)
			rc = relm__ids_push(ids, c->views[i].proton);
	}
	return rc;
}

static int lease_keys(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], struct relm_lease_keys *k)
{
	struct relm_store_proton p;
	int rc;

	if ((rc = relm_store_proton_get(c->st, proton, &p, RELM_STORE_WITH_SECRETS)) != 0)
		return rc;
	relm_lease_derive(k, p.isk);
	relm_store_proton_clear(&p);
	return 0;
}

int relm_core_leases(struct relm_core *c, int stopping,
                     int (*cb)(void *ctx, const struct relm_core_lease *l), void *ctx)
{
	struct relm__ids ids = { 0 };
	struct relm_core_lease l;
	struct relm_lease_keys k;
	int rc;

	if ((rc = strategic(c, &ids)) != 0)
		goto out;
	for (size_t i = 0; i < ids.n && rc == 0; i++) {
		struct relm_sib_strategy s;
		struct relm__view *v;
		int wants, own;
		if ((rc = held(c, ids.v[i], &s)) != 0 || (rc = relm__core_devices_load(c, ids.v[i])) != 0)
			break;
		v = view_get(c, ids.v[i]);
		own = c->devs.count > 1 && memcmp(v->holder, c->devs.self, RELM_ID_LEN) == 0 &&
		      v->until > relm__core_now(c);
		wants = s.strategy == RELM_STRATEGY_LEADER && sodium_is_zero(s.pinned, RELM_ID_LEN) &&
		        c->devs.count > 1 && relm__core_removed(c, ids.v[i]) == 0;
		if (stopping ? !own : !wants && !v->release)
			continue;
		if ((rc = lease_keys(c, ids.v[i], &k)) != 0)
			break;
		memset(&l, 0, sizeof l);
		memcpy(l.proton, ids.v[i], RELM_ID_LEN);
		memcpy(l.mailbox, k.mbox_pk, RELM_SIGN_PK_LEN);
		memcpy(l.sk, k.mbox_sk, RELM_SIGN_SK_LEN);
		l.sent_ms = relm__core_now(c);
		if (stopping || !wants) {
			/* give it back: expected us, no holder, TTL 0 */
			relm_lease_token(l.expected, &k, c->devs.self);
			l.release = 1;
		} else {
			/* a renewal expects itself; anyone else expects it free
			 * (expecting the live holder would hand the lease over) */
			if (memcmp(v->holder, c->devs.self, RELM_ID_LEN) == 0)
				relm_lease_token(l.expected, &k, v->holder);
			relm_lease_token(l.holder, &k, c->devs.self);
			l.ttl_ms = c->lease_ttl_ms;
		}
		rc = cb(ctx, &l);
		sodium_memzero(&l, sizeof l);
		relm_lease_keys_clear(&k);
	}
out:
	free(ids.v);
	return rc;
}

/* A holder stops sending this long before its lease could expire: 2 s,
 * or a quarter of a TTL under 8 s (devices.md §11.2). */
static uint32_t margin(const struct relm_core *c)
{
	return c->lease_ttl_ms / 4 < RELM_LEASE_MARGIN_MS ? c->lease_ttl_ms / 4 : RELM_LEASE_MARGIN_MS;
}

int relm_core_lease_result(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], uint64_t sent_ms,
                           int granted, int release, const uint8_t token[RELM_ID_LEN])
{
	struct relm_lease_keys k;
	struct relm__view *v;
	uint8_t was[RELM_ID_LEN];
	int rc, idx, again;

	if ((rc = relm_store_begin(c->st)) != 0)
		return rc;
	if ((rc = relm__core_devices_load(c, proton)) != 0 || (rc = lease_keys(c, proton, &k)) != 0)
		return relm__core_finish(c, rc);
	v = view_get(c, proton);
	memcpy(was, v->holder, RELM_ID_LEN);
	/* it believed it held the lease and the server finds it free (it ran
	 * out while this device was paused): take it again at once */
	again = !release && !granted && !memcmp(was, c->devs.self, RELM_ID_LEN) &&
	        sodium_is_zero(token, RELM_ID_LEN);
	/* its own time ran out before this answer (§11.2): it stopped sending
	 * with no view change to say so, and a step meanwhile stored its
	 * relationships' deadlines without the receipts and retransmissions
	 * it keeps for a holder (§11.3).  Granted again, it takes over as a
	 * new holder does, which stores them anew. */
	if (!memcmp(was, c->devs.self, RELM_ID_LEN) && v->until <= relm__core_now(c))
		v->sender = 0;
	if (release) {
		v->release = 0;
		memset(v->holder, 0, RELM_ID_LEN);
		v->until = 0;
	} else if (granted) {
		memcpy(v->holder, c->devs.self, RELM_ID_LEN);
		v->until = sent_ms + c->lease_ttl_ms - margin(c);
	} else {
		idx = relm_lease_holder(&k, token, (const uint8_t (*)[RELM_ID_LEN])c->devs.ids, c->devs.count);
		if (idx >= 0)
			memcpy(v->holder, c->devs.ids[idx], RELM_ID_LEN);
		else
			memset(v->holder, 0, RELM_ID_LEN);
		if (idx < 0 || memcmp(v->holder, c->devs.self, RELM_ID_LEN) != 0)
			v->until = 0;
	}
	relm_lease_keys_clear(&k);
	v->lease_read = sent_ms;
	rc = view_apply(c, proton, NULL, NULL);
	rc = relm__core_finish(c, rc);
	return rc == 0 && again ? 1 : rc;
}

struct tick_walk {
	struct relm_core *c;
	struct relm__ids ids;
};

static int first_cb(void *ctx, const uint8_t rel[RELM_ID_LEN], const uint8_t src[RELM_ID_LEN])
{
	(void)ctx;
	(void)rel;
	(void)src;
	return 1;                                 /* one is enough */
}

/* A proton the strategy tick visits: not leaderless, or leaderless with
 * what a strategy left behind — requests not yet seen sent, or
 * relationships held without state (a switch away from fanout). */
static int tick_cb(void *ctx, const struct relm_store_proton *p)
{
	struct tick_walk *t = ctx;
	uint64_t n = 0;
	int rc;

	if (strcmp(p->strategy, "leaderless") != 0)
		return relm__ids_push(&t->ids, p->id);
	if ((rc = relm_store_request_count(t->c->st, p->id, &n)) != 0)
		return rc;
	if (n == 0 && (rc = relm_store_stateless_list(t->c->st, p->id, first_cb, NULL)) <= 0)
		return rc;
	return relm__ids_push(&t->ids, p->id);
}

int relm_core_strategy_tick(struct relm_core *c)
{
	struct tick_walk t = { c, { 0 } };
	struct relm__ids ids;
	int rc;

	rc = relm_store_proton_list(c->st, tick_cb, &t);
	ids = t.ids;
	if (rc != 0)
		goto out;
	for (size_t i = 0; i < ids.n && rc == 0; i++) {
		if ((rc = relm_store_begin(c->st)) != 0)
			break;
		rc = relm__core_finish(c, view_apply(c, ids.v[i], NULL, NULL));
	}
out:
	free(ids.v);
	return rc;
}

static int count_cb(void *ctx, const uint8_t rel[RELM_ID_LEN], const uint8_t src[RELM_ID_LEN])
{
	(void)rel;
	(void)src;
	++*(uint64_t *)ctx;
	return 0;
}

int relm_core_strategy_get(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                           struct relm_core_strategy *out)
{
	struct relm_sib_strategy s;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = held(c, proton, &s)) != 0 || (rc = relm__core_devices_load(c, proton)) != 0)
		return rc;
	out->strategy = s.strategy;
	out->seq = s.seq;
	memcpy(out->pinned, s.pinned, RELM_ID_LEN);
	memcpy(out->holder, c->devs.holder, RELM_ID_LEN);
	out->devices = c->devs.count;
	out->sends = relm_strategy_sends(c->env);
	if (c->devs.count <= 1)
		out->sends = 1;
	if ((rc = relm_store_request_count(c->st, proton, &out->pending_requests)) != 0)
		return rc;
	return relm_store_stateless_list(c->st, proton, count_cb, &out->stateless);
}

void relm_core_lease_ttl(struct relm_core *c, uint32_t ttl_ms)
{
	c->lease_ttl_ms = ttl_ms ? ttl_ms : RELM_LEASE_TTL_MS;
}

/*
 * fanout.c — the fanout strategy's state in relmd (proto/devices.md
 * §11.4, §11.6): one hub holds every relationship's state and sends;
 * every other device holds none (its rows, history and requests stay,
 * store.md `stateless`), gets the hub's history as `deliver`s and asks
 * the hub to send.
 *
 *   - a non-hub wipes each relationship it holds once its requests went
 *     to the hub and the hub showed it holds it: a deliver of it read
 *     after the hub's `strategy` message of the strategy held (at every
 *     view change and strategy tick, and as it hears);
 *   - a hub that adopts fanout sends every sibling its history; one that
 *     leaves it sends every sibling its states (nodes nobody else holds);
 *   - a device that must hold state again (fanout left, or it became the
 *     hub) asks every sibling for the state of each relationship it
 *     lacks, every RELM_REQUEST_RESEND_MS until one answers; the first
 *     whole state makes the relationship held again, later ones merge;
 *   - the hub, after every step on a relationship, sends its siblings
 *     what the step added to the history (relm_rel_fanout, in
 *     relm__core_step_apply).
 *
 * What a device without state loses: retransmission records of messages
 * the hub had not seen acknowledged when the state came back are the
 * hub's alone (it still sends them), and copies a sibling sent while the
 * device had no state are not replayed — their nodes come back with the
 * states it asks every sibling for, their messages with the hub's
 * delivers.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "core/core_int.h"
#include "core/apply.h"
#include "engine/rel_strategy.h"
#include "wire/payload.h"
#include "error.h"

int relm__core_stateless_view(struct relm_core *c, const uint8_t rel_id[RELM_ID_LEN])
{
	uint8_t src[RELM_ID_LEN];
	int rc = relm_store_stateless_src(c->st, rel_id, src);

	if (rc == RELM_ENOTFOUND)
		memset(src, 0, sizeof src);          /* an empty blob without its row: no hub known */
	else if (rc != 0)
		return rc;
	/* under fanout the hub is the current one (it may have changed since
	 * the wipe); after fanout — or when this device became the hub and
	 * its state is not back yet — the hub it was wiped under, until the
	 * state is back (devices.md §11.6).  A device without state never
	 * sends: its own messages wait as requests, served once it holds the
	 * state (strategy.c, at the next view change or strategy tick). */
	if (c->devs.strategy != RELM_STRATEGY_FANOUT || !memcmp(c->devs.holder, c->devs.self, RELM_ID_LEN))
		memcpy(c->devs.holder, src, RELM_ID_LEN);
	if (!memcmp(c->devs.holder, c->devs.self, RELM_ID_LEN))
		memset(c->devs.holder, 0, RELM_ID_LEN);
	c->devs.strategy = RELM_STRATEGY_FANOUT;
	return RELM_ENOSTATE;
}

int relm__core_apply_id(struct relm_core *c, const uint8_t rel_id[RELM_ID_LEN], struct relm_effects *fx)
{
	int rc = relm__core_route(c, rel_id, fx);

	return rc ? rc : relm_core_apply(c->st, rel_id, NULL, fx, relm__core_now(c));
}

/* ---- the hub's history, and its states ------------------------------------ */

struct hist {
	struct relm_core *c;
	const uint8_t *proton;
};

static int hist_cb(void *ctx, const struct relm_store_msg *m)
{
	struct hist *h = ctx;
	struct relm_core *c = h->c;
	struct relm_sib_deliver d;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	/* its own pending requests are not sent messages yet (§11.4) */
	if ((rc = relm_store_request_has(c->st, m->rel, m->id)) != 0)
		return rc < 0 ? rc : 0;
	memset(&d, 0, sizeof d);
	memcpy(d.rel, m->rel, RELM_ID_LEN);
	memcpy(d.id, m->id, RELM_ID_LEN);
	d.flags = m->direction_in ? RELM_SIB_D_IN : 0;
	d.status = (uint8_t)(m->direction_in ? RELM_STATUS_NONE : m->status);
	snprintf(d.kind, sizeof d.kind, "%s", m->kind);
	d.ts = m->ts;
	d.body = m->body;
	d.body_len = m->body_len;
	if (relm_sib_deliver_encode(&buf, &len, &d) != 0)
		return 0;                            /* not carried (a kind or body out of range) */
	for (uint32_t i = 0; i < c->devs.count && rc == 0; i++)
		if (memcmp(c->devs.ids[i], c->devs.self, RELM_ID_LEN) != 0)
			rc = relm__core_send_frame(c, h->proton, c->devs.ids[i], buf, len);
	relm_sib_buf_free(buf, len);
	return rc;
}

static int rel_id_cb(void *ctx, const struct relm_store_rel *r)
{
	return relm__ids_push(ctx, r->id);
}

/* The hub's history of rel_id to every sibling — only when it holds the
 * state: the delivers also show the siblings that it does, and they wipe
 * theirs only then. */
static int rel_history(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], const uint8_t rel_id[RELM_ID_LEN])
{
	struct hist h = { c, proton };
	uint8_t src[RELM_ID_LEN];
	int rc = relm_store_stateless_src(c->st, rel_id, src);

	if (rc != RELM_ENOTFOUND)
		return rc;                           /* held without state (0), or an error */
	return relm_store_msg_list_after(c->st, rel_id, 0, 0, hist_cb, &h);
}

/* The hub (c->devs loaded for proton) that adopted fanout: its history of
 * every relationship to every sibling, as delivers — a sibling that wiped
 * its state before it read a copy lost that message; the hub did not. */
static int hub_history(struct relm_core *c, const uint8_t proton[RELM_ID_LEN])
{
	struct relm__ids ids = { 0 };
	int rc = relm_store_rel_list(c->st, proton, NULL, 0, rel_id_cb, &ids);

	for (size_t i = 0; i < ids.n && rc == 0; i++)
		rc = rel_history(c, proton, ids.v[i]);
	free(ids.v);
	return rc;
}

/* The hub (c->devs loaded for proton) that adopted fanout s, newly the
 * hub or the hub of the older one too: s to every sibling unless it made
 * s (it sent it then), then its history.  The siblings count its
 * delivers as showing it holds a state only once it has shown it adopted
 * s — a deliver it sent before, as the hub of an older strategy, shows
 * nothing (it may have wiped since) — and they start again at each
 * strategy they adopt. */
static int hub_adopted(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                       const struct relm_sib_strategy *s)
{
	int rc = 0;

	for (uint32_t i = 0; i < c->devs.count && rc == 0 && memcmp(s->by, c->devs.self, RELM_ID_LEN); i++)
		if (memcmp(c->devs.ids[i], c->devs.self, RELM_ID_LEN) != 0)
			rc = relm__core_strategy_send(c, proton, c->devs.ids[i]);
	return rc ? rc : hub_history(c, proton);
}

/* The hub leaving fanout: its bulk state to every sibling (it copied to
 * nobody: a sibling that never wiped merges each state and takes the
 * history it lacks; one that did holds the relationships again from
 * them, from the hub's cursors). */
static int hub_states(struct relm_core *c, const uint8_t proton[RELM_ID_LEN])
{
	struct relm_devices ds = c->devs;
	int rc = 0;

	for (uint32_t d = 0; d < ds.count && rc == 0; d++)
		if (memcmp(ds.ids[d], ds.self, RELM_ID_LEN) != 0)
			rc = relm__core_bulk_send(c, proton, ds.ids[d]);
	return rc;
}

/* ---- wiping, and asking for state back ------------------------------------- */

static int sl_cb(void *ctx, const uint8_t rel[RELM_ID_LEN], const uint8_t src[RELM_ID_LEN])
{
	(void)src;
	return relm__ids_push(ctx, rel);
}

int relm__core_hub_heard(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                         const uint8_t device[RELM_ID_LEN], const uint8_t rel_id[RELM_ID_LEN])
{
	struct relm__view *v = relm__core_view(c, proton);
	uint8_t src[RELM_ID_LEN];
	int rc;

	if ((rc = relm__core_devices_load(c, proton)) != 0)
		return rc;
	if (c->devs.strategy != RELM_STRATEGY_FANOUT || memcmp(device, c->devs.holder, RELM_ID_LEN) != 0 ||
	    !memcmp(device, c->devs.self, RELM_ID_LEN) || !v->hub_adopted)
		return 0;
	for (size_t i = 0; i < v->nheard; i++)
		if (memcmp(v->heard[i], rel_id, RELM_ID_LEN) == 0)
			return 0;
	if (v->nheard == v->capheard) {
		size_t cap = v->capheard ? 2 * v->capheard : 8;
		void *p = realloc(v->heard, cap * RELM_ID_LEN);
		if (!p)
			return 0;                    /* not wiped yet: the safe side */
		v->heard = p;
		v->capheard = cap;
	}
	memcpy(v->heard[v->nheard++], rel_id, RELM_ID_LEN);
	/* held here still: wiped now (its requests went to the hub at the
	 * view change, or go at the next tick with the view of no state) */
	if ((rc = relm_store_stateless_src(c->st, rel_id, src)) != RELM_ENOTFOUND)
		return rc;
	c->mailboxes_new = 1;
	return relm_store_rel_wipe(c->st, rel_id, device, relm__core_now(c));
}

int relm__core_hub_shown(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                         const uint8_t device[RELM_ID_LEN], const struct relm_sib_strategy *s, int asked)
{
	struct relm__view *v = relm__core_view(c, proton);
	int rc;

	if (s->strategy != RELM_STRATEGY_FANOUT)
		return 0;
	if ((rc = relm__core_devices_load(c, proton)) != 0)
		return rc;
	if (!memcmp(device, s->pinned, RELM_ID_LEN)) {
		v->hub_adopted = 1;                  /* the hub sent the one it holds */
		return 0;
	}
	/* a sibling not shown yet that this hub holds it (it restarted, or
	 * read this hub's history before the strategy): shown */
	if (asked && !memcmp(s->pinned, c->devs.self, RELM_ID_LEN))
		return relm__core_strategy_send(c, proton, device);
	return 0;
}

/* A non-hub (c->devs loaded): every relationship the hub has shown it
 * holds (relm__core_hub_heard, which wipes as it hears) and this device
 * still holds, wiped — one probe each, not a walk of the proton's
 * relationships. */
static int wipe_heard(struct relm_core *c, const uint8_t hub[RELM_ID_LEN], const struct relm__view *v)
{
	uint8_t src[RELM_ID_LEN];
	int rc = 0;

	for (size_t i = 0; i < v->nheard && rc == 0; i++) {
		if ((rc = relm_store_stateless_src(c->st, v->heard[i], src)) != RELM_ENOTFOUND)
			continue;                    /* held without state already (0), or an error */
		rc = relm_store_rel_wipe(c->st, v->heard[i], hub, relm__core_now(c));
		c->mailboxes_new = 1;                /* its mailbox is no longer read */
	}
	return rc;
}

/* A device that must hold state (c->devs loaded): for each relationship
 * it lacks, every sibling asked for its state, again after
 * RELM_REQUEST_RESEND_MS without an answer. */
static int ask_back(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], struct relm__view *v)
{
	struct relm__ids none = { 0 };
	struct relm_devices ds = c->devs;
	uint64_t now = relm__core_now(c);
	int rc;

	if ((rc = relm_store_stateless_list(c->st, proton, sl_cb, &none)) != 0 || none.n == 0)
		goto out;
	if (v->asked_ms && now < v->asked_ms + RELM_REQUEST_RESEND_MS)
		goto out;
	v->asked_ms = now ? now : 1;
	{
		/* the bulk state (the zero id, §12.6): for each relationship its
		 * `rel` with the cursor, its state and its history */
		static const uint8_t all[RELM_ID_LEN];
		uint8_t *req = NULL;
		size_t rlen = 0;
		if ((rc = relm_sib_state_req_encode(&req, &rlen, all)) != 0)
			goto out;
		for (uint32_t d = 0; d < ds.count && rc == 0; d++)
			if (memcmp(ds.ids[d], ds.self, RELM_ID_LEN) != 0)
				rc = relm__core_send_frame(c, proton, ds.ids[d], req, rlen);
		relm_sib_buf_free(req, rlen);
	}
out:
	free(none.v);
	return rc;
}

static int is_hub(const struct relm_core *c, const struct relm_sib_strategy *s)
{
	return s && s->strategy == RELM_STRATEGY_FANOUT && memcmp(s->pinned, c->devs.self, RELM_ID_LEN) == 0;
}

int relm__core_fanout_view(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                           const struct relm_sib_strategy *was, const struct relm_sib_strategy *now)
{
	struct relm__view *v = relm__core_view(c, proton);
	int rc = 0;

	if (c->devs.count <= 1 || !v)
		return v ? 0 : RELM_ENOMEM;
	if (was && now && is_hub(c, was) && !is_hub(c, now))
		rc = hub_states(c, proton);
	else if (was && now && is_hub(c, now))
		rc = hub_adopted(c, proton, now);    /* the hub of a new one too: its siblings must be shown again */
	if (rc != 0)
		return rc;
	if (c->devs.strategy == RELM_STRATEGY_FANOUT && memcmp(c->devs.holder, c->devs.self, RELM_ID_LEN) != 0) {
		uint64_t now_ms = relm__core_now(c);
		if (sodium_is_zero(c->devs.holder, RELM_ID_LEN))
			return 0;
		/* not shown yet that the hub adopted this strategy: ask it
		 * (it answers with it), at most every RELM_REQUEST_RESEND_MS */
		if (!v->hub_adopted && (!v->pinged_ms || now_ms >= v->pinged_ms + RELM_REQUEST_RESEND_MS)) {
			v->pinged_ms = now_ms ? now_ms : 1;
			if ((rc = relm__core_strategy_send(c, proton, c->devs.holder)) != 0)
				return rc;
		}
		return wipe_heard(c, c->devs.holder, v);
	}
	return ask_back(c, proton, v);
}

/* A sent message of this device's history still waiting for its receipt
 * gets a retransmission record as a sibling's (due after the takeover
 * time), unless it has one (§11.6): the records of the state's holder
 * were not sent with it, and the receipt may lie before the cursor. */
struct unacked {
	struct relm_core *c;
	int rc;
};

static int unacked_cb(void *ctx, const struct relm_store_msg *m)
{
	struct unacked *u = ctx;
	struct relm_store_outgoing o;
	int rc;

	if (m->direction_in || strcmp(m->kind, "text") != 0 ||
	    (m->status != RELM_STATUS_QUEUED && m->status != RELM_STATUS_POSTED))
		return 0;
	if ((rc = relm_store_request_has(u->c->st, m->rel, m->id)) != 0)
		return rc < 0 ? rc : 0;              /* a request of its own: not sent yet */
	memset(&o, 0, sizeof o);
	memcpy(o.rel, m->rel, RELM_ID_LEN);
	memcpy(o.id, m->id, RELM_ID_LEN);
	o.kind = RELM_KIND_TEXT;
	o.ts = m->ts;
	o.body = m->body;
	o.body_len = m->body_len;
	o.tries = 1;
	o.next_ms = relm__core_now(u->c) + u->c->env->params.retx_takeover_ms;
	return relm_store_outgoing_add(u->c->st, &o);
}

int relm__core_state_back(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                          const uint8_t device[RELM_ID_LEN], const uint8_t rel_id[RELM_ID_LEN],
                          struct relm_rel *state)
{
	struct relm_devices ds;
	uint8_t *req = NULL;
	size_t rlen = 0;
	uint64_t cursor;
	int rc;

	if ((rc = relm__core_devices_load(c, proton)) != 0)
		return rc;
	if (c->devs.strategy == RELM_STRATEGY_FANOUT && memcmp(c->devs.holder, c->devs.self, RELM_ID_LEN) != 0)
		return 0;                            /* a non-hub again meanwhile: it wants none */
	/* only with the cursor it goes with: a bare `state` (a merge answer)
	 * could leave out messages before it that the history lacks */
	if (relm__core_bulk_cursor(c, device, rel_id, &cursor) != 0)
		return 0;
	relm__core_state_taken(state);
	if ((rc = relm_store_rel_held(c->st, rel_id)) != 0 || (rc = relm__core_save(c, state)) != 0 ||
	    (rc = relm_store_cursor_set(c->st, state->mbox_pk, cursor)) != 0)
		return rc;
	{
		struct unacked u = { c, 0 };
		if ((rc = relm_store_msg_list(c->st, rel_id, 0, 0, unacked_cb, &u)) != 0)
			return rc;
	}
	c->mailboxes_new = 1;                    /* its mailbox is read again, from its cursor */
	/* copies it did not apply while it had no state, and the other
	 * siblings' nodes: their states, merged (§5.6) — asked first, so
	 * that each sibling answers before the history below lets it wipe */
	ds = c->devs;
	if ((rc = relm_sib_state_req_encode(&req, &rlen, rel_id)) != 0)
		return rc;
	for (uint32_t d = 0; d < ds.count && rc == 0; d++)
		if (memcmp(ds.ids[d], ds.self, RELM_ID_LEN) != 0)
			rc = relm__core_send_frame(c, proton, ds.ids[d], req, rlen);
	relm_sib_buf_free(req, rlen);
	/* the hub holding it again shows its siblings it does */
	if (rc == 0 && c->devs.strategy == RELM_STRATEGY_FANOUT &&
	    !memcmp(c->devs.holder, c->devs.self, RELM_ID_LEN))
		rc = rel_history(c, proton, rel_id);
	return rc;
}

/*
 * strategy.c — the leader and fanout strategies in the simulated world
 * (proto/devices.md §11; `relm-sim --strategy leader|fanout|mixed`).
 *
 * Each side with two devices or more runs the strategy.  What the engine
 * does not decide is modelled here, as relmd would do it:
 *
 *   - the send lease: one per side on its mailbox server, a compare-and-set
 *     with a TTL on the world's clock.  Every device holding state reads it
 *     every TTL/3 (its strategy timer) and takes it when it is free; the
 *     holder renews it, and stops sending RELM_LEASE_MARGIN_MS before it
 *     could expire.  Leaders go off line and crash at random (SIM_EV_STRAT
 *     with arg 1, 2): another device takes over after the TTL;
 *   - the view each device holds (strategy, holder or hub), put into
 *     env->devices before every step;
 *   - pending requests (the store's rows), re-sent when the holder changes
 *     and every RELM_REQUEST_RESEND_MS;
 *   - strategy changes (mixed): a device makes one and sends the strategy
 *     message to its siblings, who adopt it when they read it — views
 *     differ meanwhile, with traffic in flight;
 *   - devices without state (fanout's non-hubs): their state wiped when
 *     they adopt fanout; when they leave it they ask the hub for the whole
 *     relationship (its history as delivers, then its state, cursor and
 *     retransmission records: SIM_F_ADOPT — the bulk state of §12.6 in
 *     miniature) and replay the copies they read meanwhile.
 *
 * Checked on top of check.c's invariants (nothing lost, nothing
 * duplicated, delivered on every device of the sender's side, one peer
 * as the remote sees it): a device whose view is `leader` posts to the
 * remote only while the world's lease is its own; no request is pending
 * at the end.  Mutations: nonleader-sends (a device without the lease
 * sends itself) and drop-requests (a leader change drops the requests).
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sodium.h>
#include "world.h"
#include "engine/rel_strategy.h"
#include "wire/sibling.h"
#include "error.h"

enum { TTL = RELM_LEASE_TTL_MS, MARGIN = RELM_LEASE_MARGIN_MS, PERIOD = RELM_LEASE_TTL_MS / 3 };
enum { EV_PERIODIC = 0, EV_LEADER_AWAY = 1, EV_LEADER_CRASH = 2, EV_HUB_AWAY = 3 };

static int active(const struct sim_world *w, int side)
{
	return w->cfg.strategy != SIM_S_LEADERLESS && w->cfg.n[side] > 1 && !(side == 1 && w->cfg.strict);
}

static const uint8_t *dev_id(const struct sim_dev *d, int idx)
{
	return d->w->dev[d->side][idx].devs.self;
}

/* The view the engine is given: a device without state asks the device it
 * gets its state from, as a fanout non-hub asks the hub. */
static void effective(const struct sim_dev *d, int *strat, int *holder)
{
	if (!d->rel) {
		*strat = RELM_STRATEGY_FANOUT;
		*holder = d->state_src;
		return;
	}
	*strat = d->strat;
	if (d->strat == RELM_STRATEGY_LEADER && d->pinned >= 0)
		*holder = d->pinned;
	else if (d->strat == RELM_STRATEGY_LEADER)
		*holder = d->holder == d->idx && d->w->now >= d->lease_until ? -1 : d->holder;
	else if (d->strat == RELM_STRATEGY_FANOUT)
		*holder = d->hub;
	else
		*holder = -1;
}

void sim_strat_view(struct sim_dev *d)
{
	int strat, holder;

	if (!active(d->w, d->side))
		return;
	effective(d, &strat, &holder);
	if (d->force_send)
		holder = d->idx;                /* --mutate nonleader-sends */
	d->devs.strategy = (uint8_t)strat;
	memset(d->devs.holder, 0, RELM_ID_LEN);
	if (holder >= 0)
		memcpy(d->devs.holder, dev_id(d, holder), RELM_ID_LEN);
}

static int sends(struct sim_dev *d)
{
	sim_strat_view(d);
	return relm_strategy_sends(&d->env);
}

/* Without state, and its view wants it: it must ask for it. */
static int needs_state(const struct sim_dev *d)
{
	return !d->rel && (d->strat != RELM_STRATEGY_FANOUT || d->hub == d->idx);
}

int sim_strat_send(struct sim_dev *d, const uint8_t id[RELM_ID_LEN])
{
	(void)id;
	if (!active(d->w, d->side) || sends(d))
		return 0;
	if ((d->w->cfg.mutate & SIM_M_NONLEADER_SENDS) && d->rel) {
		d->force_send = 1;
		return 0;
	}
	d->w->res->requests++;
	return 1;
}

/* ---- the store's rows ------------------------------------------------------------- */

static struct sim_req *req_find(struct sim_dev *d, const uint8_t id[RELM_ID_LEN])
{
	for (size_t i = 0; i < d->nreqs; i++)
		if (memcmp(d->reqs[i].id, id, RELM_ID_LEN) == 0)
			return &d->reqs[i];
	return NULL;
}

static void req_del(struct sim_dev *d, const uint8_t id[RELM_ID_LEN])
{
	struct sim_req *r = req_find(d, id);

	if (!r)
		return;
	free(r->buf);
	*r = d->reqs[--d->nreqs];
}

void sim_strat_fx(struct sim_dev *d, const struct relm_fx *f)
{
	struct sim_req *r;
	int to;

	switch (f->type) {
	case RELM_FX_SIB_TO:
		if ((to = sim_dev_index(d, f->dev)) >= 0 && to != d->idx)
			sim_outbox_add(d, to, SIM_F_SIB, f->data, f->len);
		break;
	case RELM_FX_REQ_PUT:
		if (!(r = req_find(d, f->msg_id))) {
			GROW(d->reqs, d->nreqs, d->capreqs);
			r = &d->reqs[d->nreqs++];
			memset(r, 0, sizeof *r);
			memcpy(r->id, f->msg_id, RELM_ID_LEN);
		}
		free(r->buf);
		if (!(r->buf = malloc(f->len)))
			abort();
		memcpy(r->buf, f->data, f->len);
		r->len = f->len;
		memcpy(r->to, f->dev, RELM_ID_LEN);
		r->next_ms = f->next_ms;
		break;
	case RELM_FX_REQ_DEL:
		req_del(d, f->msg_id);
		break;
	default:
		break;
	}
}

/* ---- engine steps ------------------------------------------------------------------- */

/* SIM_F_ADOPT: cursor(8) ‖ u32 blob_len ‖ blob ‖ u32 count ‖ count × record
 * record: id(16) kind(1) ts(8) tries(4) next(8) last_node(16) u32 len ‖ body */
static uint64_t rd64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int adopt_step(struct sim_dev *d, const uint8_t *buf, size_t len, struct relm_effects *fx)
{
	struct relm_rel *rel = NULL;
	size_t off = 12, bl;
	uint32_t n;

	if (d->rel || len < 12)
		return RELM_EINVAL;
	bl = rd32(buf + 8);
	if (len < off + bl + 4 || relm_rel_decode(&rel, buf + off, bl) != 0)
		return RELM_EMALFORMED;
	off += bl;
	n = rd32(buf + off);
	off += 4;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *r = buf + off;
		uint32_t blen = rd32(r + 53);
		struct relm_fx *f;
		/* the hub's message, retransmitted here only after the takeover
		 * time, as a sibling's from its copy (devices.md §5.3) */
		uint64_t next = d->clock + d->env.params.retx_takeover_ms;
		if (relm_rel_outgoing_load(rel, r, r[16], rd64(r + 17), (const char *)r + 57, blen,
		                           rd32(r + 25), next, r + 37) != 0)
			abort();
		rel->out[rel->nout - 1].sibling = 1;
		if (!(f = relm__fx_push(fx, RELM_FX_OUT_PUT)) || !(f->data = malloc(blen + 1)))
			abort();
		memcpy(f->msg_id, r, RELM_ID_LEN);
		memcpy(f->data, r + 57, blen);
		f->len = blen;
		f->kind = r[16];
		f->ts = rd64(r + 17);
		f->tries = rd32(r + 25);
		f->next_ms = next;
		f->sibling = 1;
		memcpy(f->node, r + 37, RELM_ID_LEN);
		off += 57 + blen;
	}
	/* and every sent message of its own history still waiting for its
	 * receipt that the hub did not know of yet (a copy it had not read):
	 * the receipt may lie before the hub's cursor, so only a
	 * retransmission (asked of the holder, §11.3) brings one again */
	for (size_t i = 0; i < d->nhist; i++) {
		const struct sim_msg *m = &d->hist[i];
		uint64_t next = d->clock + d->env.params.retx_takeover_ms;
		struct relm_fx *f;
		int known = 0;
		if (m->in || m->delivered || m->failed || m->kind != RELM_KIND_TEXT || req_find(d, m->id))
			continue;
		for (uint32_t k = 0; k < rel->nout && !known; k++)
			known = !memcmp(rel->out[k].id, m->id, RELM_ID_LEN);
		if (known)
			continue;
		static const uint8_t unknown_node[RELM_ID_LEN];
		if (relm_rel_outgoing_load(rel, m->id, m->kind, m->ts, (const char *)m->body, m->len, 1,
		                           next, unknown_node) != 0)
			abort();
		rel->out[rel->nout - 1].sibling = 1;
		if (!(f = relm__fx_push(fx, RELM_FX_OUT_PUT)) || !(f->data = malloc(m->len + 1)))
			abort();
		memcpy(f->msg_id, m->id, RELM_ID_LEN);
		memcpy(f->data, m->body, m->len);
		f->len = m->len;
		f->kind = m->kind;
		f->ts = m->ts;
		f->tries = 1;
		f->next_ms = next;
		f->sibling = 1;
	}
	d->rel = rel;
	return 0;
}

int sim_strat_engine(struct sim_dev *d, int kind, const uint8_t *buf, size_t len, uint8_t *id_out,
                     struct relm_effects *fx)
{
	struct sim_world *w = d->w;
	uint8_t rel_id[RELM_ID_LEN];

	switch (kind) {
	case SIM_ST_REQUEST: {
		char body[64];
		snprintf(body, sizeof body, "%s says %u", d->name, (unsigned)w->typed);
		/* the relationship's id: kept with its row, state or not */
		return relm_request_make(&d->env, d->rel_id, body, strlen(body), buf, id_out, fx);
	}
	case SIM_ST_SERVE:
		return d->rel ? relm_rel_serve(d->rel, &d->env, buf, len, 0, fx) : RELM_EINVAL;
	case SIM_ST_LEAD:
		return d->rel ? relm_rel_lead(d->rel, &d->env, fx) : 0;
	case SIM_ST_DELIVER:
		return relm_deliver_apply(&d->env, d->rel, buf, len, rel_id, fx);
	case SIM_ST_DUE: {
		struct sim_req *r = NULL;
		int rc;
		for (size_t i = 0; i < d->nreqs; i++)
			if (d->reqs[i].buf == buf)
				r = &d->reqs[i];
		if (!r)
			return 0;
		rc = relm_request_due(&d->env, buf, len, r->to, r->next_ms, fx);
		if (rc == 1)
			rc = d->rel ? relm_rel_serve(d->rel, &d->env, buf, len, 1, fx) : 0;
		return rc;
	}
	case SIM_ST_ADOPT:
		return adopt_step(d, buf, len, fx);
	default:
		abort();
	}
}

/* The leader invariant: a device whose view is `leader` posts to the remote
 * only while the lease is its own (devices.md §11.3). */
void sim_strat_posting(struct sim_dev *d, const struct relm_effects *fx)
{
	struct sim_world *w = d->w;
	int own;

	if (!active(w, d->side) || d->strat != RELM_STRATEGY_LEADER || !d->rel)
		return;
	own = d->pinned >= 0 ? d->pinned == d->idx
	                     : w->lease[d->side].holder == d->idx && w->lease[d->side].exp > w->now;
	for (size_t i = 0; i < fx->n && !own; i++)
		if (fx->v[i].type == RELM_FX_POST)
			sim_fail(w, "leader: %s posted to the remote without holding the lease", d->name);
}

static void send_history(struct sim_dev *d, int to);
static void replay(struct sim_dev *d);

/* ---- views change ----------------------------------------------------------------- */

static void ask_state(struct sim_dev *d)
{
	uint8_t k = SIM_F_ADOPT_REQ;

	if (d->state_src < 0 || d->state_src == d->idx ||
	    (d->asked_at && d->w->now < d->asked_at + RELM_REQUEST_RESEND_MS))
		return;
	d->asked_at = d->w->now;
	sim_trace(d->w, d, "asks %s for the relationship", d->w->dev[d->side][d->state_src].name);
	sim_outbox_add(d, d->state_src, SIM_F_ADOPT_REQ, &k, 1);
	if (d->online && !d->down)
		sim_pump(d);
}

/* After any change of d's view, and at its timer: take over if it now
 * sends, move its pending requests, ask for state it needs. */
static void view_changed(struct sim_dev *d, int holder_changed)
{
	struct sim_world *w = d->w;
	int now_sends;
	uint8_t (*ids)[RELM_ID_LEN];
	size_t n = d->nreqs;

	if (d->down)
		return;
	if (d->rel && d->nstash)
		replay(d);                               /* a crash cut the last replay short */
	if (d->down)
		return;
	now_sends = d->rel && sends(d);
	if (now_sends && !d->was_sender) {
		sim_trace(w, d, "sends for the proton now");
		if (sim_step(d, SIM_ST_LEAD, NULL, 0, NULL, NULL) == SIM_CRASHED)
			return;
	}
	d->was_sender = now_sends;
	if (holder_changed && (w->cfg.mutate & SIM_M_DROP_REQUESTS)) {
		while (d->nreqs)
			req_del(d, d->reqs[0].id);
		return;
	}
	/* the rows change under the steps: walk a list of their ids */
	if (!(ids = malloc((n ? n : 1) * RELM_ID_LEN)))
		abort();
	for (size_t i = 0; i < n; i++)
		memcpy(ids[i], d->reqs[i].id, RELM_ID_LEN);
	for (size_t i = 0; i < n && !d->down; i++) {
		struct sim_req *r = req_find(d, ids[i]);
		if (r && sim_step(d, SIM_ST_DUE, r->buf, r->len, NULL, NULL) == SIM_CRASHED)
			break;
	}
	free(ids);
	if (d->down)
		return;
	/* a fanout non-hub holds no state: once its requests went to the hub
	 * (here, or after a crash cut adopt() short), it wipes it */
	if (d->rel && d->strat == RELM_STRATEGY_FANOUT && d->hub != d->idx) {
		sim_dev_replace(d, NULL);
		d->asked_at = 0;
		d->was_sender = 0;
		sim_trace(w, d, "wipes its relationship state (fanout)");
	}
	if (needs_state(d))
		ask_state(d);
}

/* d adopts strategy message m (when newer than its own). */
static void adopt(struct sim_dev *d, const struct relm_sib_strategy *m)
{
	struct sim_world *w = d->w;
	struct relm_sib_strategy held;
	int by = sim_dev_index(d, m->by);

	memset(&held, 0, sizeof held);
	held.seq = d->strat_seq;
	if (d->strat_by >= 0)
		memcpy(held.by, dev_id(d, d->strat_by), RELM_ID_LEN);
	if (by < 0 || !relm_strategy_newer(&held, m))
		return;
	if (d->strat == RELM_STRATEGY_LEADER && w->lease[d->side].holder == d->idx && d->pinned < 0)
		w->lease[d->side].holder = -1;           /* released */
	/* a hub that stops being one made nodes no sibling holds (it copied
	 * to nobody): its state goes to each, merged there (devices.md §5.6) */
	if (d->strat == RELM_STRATEGY_FANOUT && d->hub == d->idx && d->rel &&
	    !(m->strategy == RELM_STRATEGY_FANOUT && sim_dev_index(d, m->pinned) == d->idx))
		for (int i = 0; i < w->cfg.n[d->side]; i++)
			if (i != d->idx)
				sim_send_state(d, i);
	d->strat = m->strategy;
	d->strat_seq = m->seq;
	d->strat_by = by;
	d->holder = -1;
	d->lease_until = 0;
	d->pinned = -1;
	if (m->strategy == RELM_STRATEGY_LEADER && !sodium_is_zero(m->pinned, RELM_ID_LEN))
		d->pinned = d->holder = sim_dev_index(d, m->pinned);
	sim_trace(w, d, "adopts strategy %d", m->strategy);
	if (m->strategy == RELM_STRATEGY_FANOUT) {
		d->hub = sim_dev_index(d, m->pinned);
		/* the new hub catches its siblings up: a copy they read after
		 * they wiped their state is lost to them, not to the hub */
		if (d->hub == d->idx && d->rel) {
			for (int i = 0; i < w->cfg.n[d->side]; i++)
				if (i != d->idx)
					send_history(d, i);
			if (d->online && !d->down)
				sim_pump(d);
		}
		if (d->hub != d->idx)
			d->state_src = d->hub;
		else
			d->was_sender = 0;               /* the new hub takes over (§11.2) */
	}
	view_changed(d, 1);
}

/* ---- the lease ---------------------------------------------------------------------- */

static void lease_op(struct sim_dev *d)
{
	struct sim_world *w = d->w;
	int live = w->lease[d->side].exp > w->now ? w->lease[d->side].holder : -1, was = d->holder;

	if (live < 0 || live == d->idx) {
		if (w->lease[d->side].holder != d->idx && w->lease[d->side].holder >= 0)
			w->res->takeovers++;
		w->lease[d->side].holder = d->idx;
		w->lease[d->side].exp = w->now + TTL;
		d->lease_until = w->now + TTL - MARGIN;
		d->holder = d->idx;
		if (was != d->idx)
			sim_trace(w, d, "takes the send lease");
	} else {
		d->holder = live;
	}
	view_changed(d, was != d->holder);
}

static void arm(struct sim_dev *d, uint64_t in)
{
	sim_push(d->w, d->w->now + in, SIM_EV_STRAT, d->side, d->idx, EV_PERIODIC);
}

static void periodic(struct sim_dev *d)
{
	arm(d, PERIOD);
	if (!d->online || d->down)
		return;                          /* no server: no lease, nothing posted */
	if (d->strat == RELM_STRATEGY_LEADER && d->pinned < 0 && d->rel)
		lease_op(d);
	else
		view_changed(d, 0);
}

/* The side's lease holder (or hub) goes away: off line or crashed. */
static void holder_away(struct sim_world *w, int side, int how)
{
	int h = how == EV_HUB_AWAY ? w->dev[side][0].hub : w->lease[side].holder;
	struct sim_dev *d;
	uint64_t ms;

	if (h < 0 || h >= w->cfg.n[side])
		return;
	d = &w->dev[side][h];
	if (how == EV_LEADER_CRASH) {
		if (!d->down)
			sim_crash(d);
		return;
	}
	if (!d->online)
		return;
	ms = (uint64_t)sim_uniform(w, TTL + 5000, 180000);
	d->online = 0;
	sim_trace(w, d, "off-line for %.0f s (the %s)", (double)ms / 1000.0,
	          how == EV_HUB_AWAY ? "hub" : "leader");
	sim_push(w, w->now + ms, SIM_EV_ONLINE, side, h, 0);
}

static void do_switch(struct sim_world *w, int side, int to)
{
	struct sim_dev *d = NULL;
	struct relm_sib_strategy m;
	uint8_t *buf;
	size_t len;

	/* made on a device that holds state, on line if one is */
	for (int i = 0, k = (int)(sim_rand(w) % (uint64_t)w->cfg.n[side]); i < w->cfg.n[side]; i++) {
		struct sim_dev *c = &w->dev[side][(k + i) % w->cfg.n[side]];
		if (c->rel && !c->down && (!d || (c->online && !d->online)))
			d = c;
	}
	if (!d || d->strat == to || (to == RELM_STRATEGY_FANOUT && d->strat == RELM_STRATEGY_FANOUT))
		return;
	w->res->switches++;
	memset(&m, 0, sizeof m);
	m.seq = ++w->strat_seq[side];
	if (m.seq <= d->strat_seq)
		m.seq = w->strat_seq[side] = d->strat_seq + 1;
	m.strategy = (uint8_t)to;
	/* fanout names its hub; a leader is pinned now and then */
	if (to == RELM_STRATEGY_FANOUT || (to == RELM_STRATEGY_LEADER && sim_rand(w) % 3 == 0))
		memcpy(m.pinned, d->devs.self, RELM_ID_LEN);
	memcpy(m.by, d->devs.self, RELM_ID_LEN);
	sim_trace(w, d, "switches side %c to strategy %d", side ? 'B' : 'A', to);
	if (relm_sib_strategy_encode(&buf, &len, &m) != 0)
		abort();
	for (int i = 0; i < w->cfg.n[side]; i++)
		if (i != d->idx)
			sim_outbox_add(d, i, SIM_F_SIB, buf, len);
	relm_sib_buf_free(buf, len);
	if (d->online && !d->down)
		sim_pump(d);
	adopt(d, &m);
}

void sim_strat_event(struct sim_world *w, const struct sim_ev *e)
{
	if (e->type == SIM_EV_SWITCH)
		do_switch(w, e->side, (int)e->arg);
	else if (e->arg == EV_PERIODIC)
		periodic(&w->dev[e->side][e->dev]);
	else
		holder_away(w, e->side, (int)e->arg);
}

void sim_strat_wake(struct sim_dev *d)
{
	if (active(d->w, d->side))
		view_changed(d, 0);
}

/* ---- sibling frames ------------------------------------------------------------------- */

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* d's whole history to sibling `to` as delivers, with each message's
 * status (the receiver adds what it lacks and takes the statuses). */
static void send_history(struct sim_dev *d, int to)
{
	for (size_t i = 0; i < d->nhist; i++) {
		const struct sim_msg *m = &d->hist[i];
		struct relm_sib_deliver e;
		uint8_t *buf;
		size_t len;
		/* its own pending requests are not sent messages yet: a sibling
		 * holding one in its history would take the request for a
		 * duplicate (devices.md §11.5) */
		if (req_find(d, m->id))
			continue;
		memset(&e, 0, sizeof e);
		memcpy(e.rel, d->rel->id, RELM_ID_LEN);
		memcpy(e.id, m->id, RELM_ID_LEN);
		e.flags = m->in ? RELM_SIB_D_IN : 0;
		e.status = m->in ? RELM_STATUS_NONE : m->delivered ? RELM_STATUS_DELIVERED
		         : m->failed ? RELM_STATUS_FAILED : RELM_STATUS_QUEUED;
		snprintf(e.kind, sizeof e.kind, "%s", relm_kind_name(m->kind));
		e.ts = m->ts;
		e.body = m->body;
		e.body_len = m->len;
		if (relm_sib_deliver_encode(&buf, &len, &e) != 0)
			continue;
		sim_outbox_add(d, to, SIM_F_SIB, buf, len);
		relm_sib_buf_free(buf, len);
	}
}

/* A device with state answers SIM_F_ADOPT_REQ: its history as delivers,
 * then SIM_F_ADOPT. */
static void answer_adopt(struct sim_dev *d, int to)
{
	uint8_t *blob, *f;
	size_t bl, n = 13 + 4, off;

	send_history(d, to);
	if (relm_rel_encode(d->rel, &blob, &bl) != 0)
		abort();
	n += bl;
	for (size_t i = 0; i < d->nout; i++)
		n += 57 + d->outrec[i].len;
	if (!(f = calloc(1, n)))
		abort();
	f[0] = SIM_F_ADOPT;
	put64(f + 1, d->cursor);
	put32(f + 9, (uint32_t)bl);
	memcpy(f + 13, blob, bl);
	off = 13 + bl;
	put32(f + off, (uint32_t)d->nout);
	off += 4;
	for (size_t i = 0; i < d->nout; i++) {
		const struct sim_outrec *o = &d->outrec[i];
		memcpy(f + off, o->id, RELM_ID_LEN);
		f[off + 16] = (uint8_t)o->kind;
		put64(f + off + 17, o->ts);
		put32(f + off + 25, o->tries);
		put64(f + off + 29, o->next_ms);
		memcpy(f + off + 37, o->last_node, RELM_ID_LEN);
		put32(f + off + 53, (uint32_t)o->len);
		memcpy(f + off + 57, o->body, o->len);
		off += 57 + o->len;
	}
	sim_outbox_add(d, to, SIM_F_ADOPT, f, n);
	relm_rel_blob_free(blob, bl);
	sodium_memzero(f, n);
	free(f);
	if (d->online && !d->down)
		sim_pump(d);
}

static void stash(struct sim_dev *d, int from, const struct sim_frame *f)
{
	GROW(d->stash, d->nstash, d->capstash);
	if (!(d->stash[d->nstash].buf = malloc(f->len)))
		abort();
	memcpy(d->stash[d->nstash].buf, f->buf, f->len);
	d->stash[d->nstash].len = f->len;
	d->stash[d->nstash++].to = from;
}

/* The copies read while without state, now that it has state. */
static void replay(struct sim_dev *d)
{
	while (d->nstash && !d->down) {
		struct sim_mail *m = &d->stash[0];
		int rc = sim_step(d, SIM_ST_COPY, m->buf, m->len, dev_id(d, m->to), NULL);
		if (rc == SIM_CRASHED)
			return;
		free(m->buf);
		memmove(d->stash, d->stash + 1, (--d->nstash) * sizeof *d->stash);
	}
}

int sim_strat_frame(struct sim_dev *d, int from, const struct sim_frame *f, int *rc)
{
	struct sim_world *w = d->w;
	struct relm_sib_strategy m;

	if (!active(w, d->side))
		return 0;
	switch (f->kind) {
	case SIM_F_ADOPT_REQ:
		if (d->rel)
			answer_adopt(d, from);
		return 1;
	case SIM_F_ADOPT:
		if (d->rel || !needs_state(d))
			return 1;                        /* it has it, or no longer wants it (fanout again) */
		*rc = sim_step(d, SIM_ST_ADOPT, f->buf + 1, f->len - 1, NULL, NULL);
		if (*rc == 0) {
			d->cursor = (size_t)rd64(f->buf + 1);
			sim_trace(w, d, "holds the relationship again (from %s, cursor %zu)",
			          w->dev[d->side][from].name, d->cursor);
			/* copies it read before it wiped its state are lost to it,
			 * and the hub may have answered before reading them: every
			 * other sibling's state too (§5.6) */
			for (int i = 0; i < w->cfg.n[d->side]; i++)
				if (i != d->idx && i != from) {
					uint8_t k = SIM_F_STATE_REQ;
					sim_outbox_add(d, i, SIM_F_STATE_REQ, &k, 1);
				}
			replay(d);
			view_changed(d, 1);
			sim_want_read(d);                /* its mailbox, from the hub's cursor */
			if (d->online && !d->down)
				sim_pump(d);
		}
		return 1;
	case SIM_F_STATE_REQ:
	case SIM_F_STATE:
		return !d->rel;                          /* no state: nothing to say or merge */
	case SIM_F_SIB:
		break;
	default:
		return 0;
	}
	switch (f->len ? f->buf[0] : 0) {
	case RELM_SIB_REQUEST:
		*rc = sim_step(d, SIM_ST_SERVE, f->buf, f->len, NULL, NULL);
		if (*rc != SIM_CRASHED)
			*rc = 0;                         /* refused or a duplicate: passed over */
		return 1;
	case RELM_SIB_DELIVER:
		*rc = sim_step(d, SIM_ST_DELIVER, f->buf, f->len, NULL, NULL);
		if (*rc != 0 && *rc != SIM_CRASHED)
			sim_fail(w, "%s: deliver from %s refused: %s", d->name, w->dev[d->side][from].name,
			         relm_strerror(*rc));
		return 1;
	case RELM_SIB_STRATEGY:
		if (relm_sib_strategy_decode(&m, f->buf, f->len) != 0)
			sim_fail(w, "%s: a strategy message that does not decode", d->name);
		else
			adopt(d, &m);
		*rc = d->down ? SIM_CRASHED : 0;
		return 1;
	default:
		if (d->rel)
			return 0;                        /* a copy or carry: net.c */
		stash(d, from, f);                       /* for when it holds state again */
		return 1;
	}
}

/* ---- start, quiet, end ---------------------------------------------------------------- */

void sim_strat_start(struct sim_world *w)
{
	for (int s = 0; s < SIM_SIDES; s++) {
		int st = w->cfg.strategy == SIM_S_MIXED ? (int)(sim_rand(w) % 3) : w->cfg.strategy;
		uint64_t span = w->sched_end > w->t0 ? w->sched_end - w->t0 : 60000;

		w->lease[s].holder = -1;
		if (!active(w, s))
			continue;
		w->strat_seq[s] = 1;
		for (int i = 0; i < w->cfg.n[s]; i++) {
			struct sim_dev *d = &w->dev[s][i];
			d->strat = st == SIM_S_FANOUT ? RELM_STRATEGY_FANOUT
			         : st == SIM_S_LEADER ? RELM_STRATEGY_LEADER : RELM_STRATEGY_LEADERLESS;
			d->strat_seq = 1;
			d->strat_by = 0;
			d->holder = -1;
			d->hub = 0;
			d->pinned = -1;
			d->state_src = -1;
			d->was_sender = 1;               /* leaderless until now: nothing to take over */
			memcpy(d->rel_id, d->rel->id, RELM_ID_LEN);
			if (d->strat == RELM_STRATEGY_FANOUT && i != 0) {
				d->state_src = 0;
				sim_dev_replace(d, NULL);
			}
			arm(d, (uint64_t)sim_uniform(w, 0, 1000));
		}
		/* the leader or hub goes away, once or twice, under traffic */
		for (int k = 0, n = 1 + (int)(sim_rand(w) % 2); k < n; k++) {
			uint64_t t = w->t0 + (uint64_t)sim_uniform(w, 0, (double)span);
			int how = st == SIM_S_FANOUT ? EV_HUB_AWAY
			        : sim_rand(w) % 3 == 0 ? EV_LEADER_CRASH : EV_LEADER_AWAY;
			if (st != SIM_S_LEADERLESS)
				sim_push(w, t, SIM_EV_STRAT, s, 0, how);
		}
		/* mixed: switches under load */
		if (w->cfg.strategy == SIM_S_MIXED)
			for (int k = 0, n = 1 + (int)(sim_rand(w) % 3); k < n; k++) {
				uint64_t t = w->t0 + (uint64_t)sim_uniform(w, 0, (double)span);
				sim_push(w, t, SIM_EV_SWITCH, s, 0, (intptr_t)(sim_rand(w) % 3));
			}
	}
}

int sim_strat_quiet(const struct sim_dev *d)
{
	return d->nreqs == 0 && !needs_state(d) && (!d->rel || d->nstash == 0);
}

void sim_strat_free(struct sim_dev *d)
{
	for (size_t i = 0; i < d->nreqs; i++)
		free(d->reqs[i].buf);
	free(d->reqs);
	for (size_t i = 0; i < d->nstash; i++)
		free(d->stash[i].buf);
	free(d->stash);
}

void sim_check_strat(struct sim_world *w)
{
	for (int s = 0; s < SIM_SIDES; s++)
		for (int i = 0; i < w->cfg.n[s]; i++) {
			const struct sim_dev *d = &w->dev[s][i];
			if (d->nreqs)
				sim_fail(w, "request: %s still has %zu request(s) pending", d->name, d->nreqs);
			if (needs_state(d))
				sim_fail(w, "%s never got the relationship's state back", d->name);
		}
}

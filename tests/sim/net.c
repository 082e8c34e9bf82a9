/*
 * net.c — the simulated network: posts to the remote's relationship
 * mailbox (delayed, reordered, duplicated, sometimes lost) and frames on
 * the sibling channels (in order, delayed), and each device reading its
 * mailbox and channels at its own pace.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <stdarg.h>
#include <sodium.h>
#include "sim.h"
#include "world.h"
#include "util_rand.h"
#include "wire/envelope.h"
#include "wire/payload.h"
#include "wire/sibling.h"
#include "crypto/crypto.h"
#include "error.h"
#include "engine/event.h"
#include "wire/invite.h"
#include "engine/rel_strategy.h"

/* A network delay: mostly short, sometimes long (reordering). */
static uint64_t net_delay(struct sim_world *w, double lo, double hi)
{
	if (sim__chance(w, 0.05))
		return (uint64_t)sim_uniform(w, 2000, 25000);
	return (uint64_t)sim_uniform(w, lo, hi);
}

/* ---- the network --------------------------------------------------------------------- */

static void post_remote(struct sim_dev *d, const struct sim_post *p)
{
	struct sim_world *w = d->w;
	int to = 1 - d->side;
	uint8_t h[32];
	struct sim_obs *o = NULL;

	w->res->sent_to_remote[d->side]++;
	crypto_generichash(h, sizeof h, p->buf, p->len, NULL, 0);
	for (size_t i = 0; i < d->nobs; i++)
		if (!memcmp(d->obs[i].hash, h, sizeof h))
			o = &d->obs[i];
	if (o)
		sim_record_remote(w, d, p->buf, p->len, o->pt, o->ptlen, o->at);
	if (sim__chance(w, w->cfg.loss)) {
		sim_trace(w, d, "post lost");
		return;
	}
	if (o)
		sim_revoke_note_post(d, p->buf, p->len, o->pt, o->ptlen);
	for (int copies = 1 + sim__chance(w, w->cfg.dup); copies > 0; copies--) {
		struct sim_mail *m;
		GROW(w->transit, w->ntransit, w->captransit);
		m = &w->transit[w->ntransit++];
		m->buf = sim__dup_bytes(p->buf, p->len);
		m->len = p->len;
		m->to = to;
		w->in_transit++;
		sim_push(w, (w->now < w->partition_until ? w->partition_until : w->now) + net_delay(w, 20, 1500),
		         SIM_EV_ARRIVE, to, 0, (intptr_t)(w->ntransit - 1));
	}
}

static void post_sibling(struct sim_dev *d, const struct sim_post *p)
{
	struct sim_world *w = d->w;
	struct sim_chan *c = &w->chan[d->side][d->idx][p->sib];
	struct sim_frame *f;
	uint64_t at = w->now + net_delay(w, 20, 1000);

	if ((w->cfg.mutate & SIM_M_SIB_LOSS) && sim__chance(w, 0.1))
		return;
	if (c->n && c->v[c->n - 1].avail > at)
		at = c->v[c->n - 1].avail;                 /* in order, as a mailbox */
	GROW(c->v, c->n, c->cap);
	f = &c->v[c->n++];
	f->buf = sim__dup_bytes(p->buf, p->len);
	f->len = p->len;
	f->kind = p->kind;
	f->avail = at;
	sim_push(w, at, SIM_EV_READ, d->side, p->sib, 0);
}

void sim_pump(struct sim_dev *d)
{
	for (size_t i = 0; i < d->noutbox; i++) {
		if (d->removed && (d->outbox[i].sib >= 0 || !(d->w->cfg.mutate & SIM_M_CLONE)))
			;                                  /* out of the circle, and silent */
		else if (d->outbox[i].sib < 0)
			post_remote(d, &d->outbox[i]);
		else
			post_sibling(d, &d->outbox[i]);
		free(d->outbox[i].buf);
	}
	d->noutbox = 0;
	for (size_t i = 0; i < d->nobs; i++)
		free(d->obs[i].pt);
	d->nobs = 0;
}

/* ---- reading ------------------------------------------------------------------------- */

void sim_send_state(struct sim_dev *d, int to)
{
	uint8_t *blob, *frame;
	size_t len;

	if (relm_rel_encode(d->rel, &blob, &len) != 0)
		abort();
	frame = malloc(len + 1);
	if (!frame)
		abort();
	frame[0] = SIM_F_STATE;
	memcpy(frame + 1, blob, len);
	sim_outbox_add(d, to, SIM_F_STATE, frame, len + 1);
	relm_rel_blob_free(blob, len);
	sodium_memzero(frame, len + 1);
	free(frame);
	d->w->res->repairs++;
	if (d->online && !d->down)
		sim_pump(d);
}

/* Read what is readable now: the side's mailbox past the cursor, then
 * every sibling channel.  Stops at a crash. */
void sim__read_all(struct sim_dev *d)
{
	struct sim_world *w = d->w;
	struct sim_box *box = &w->box[d->side];

	while (d->rel && d->cursor < box->n && d->online && !d->down) {
		struct sim_mail *m = &box->v[d->cursor];
		int rc = sim_step(d, SIM_ST_RECV, m->buf, m->len, NULL, NULL);
		if (rc == SIM_CRASHED)
			return;
		sim_trace(w, d, "read #%zu: %s", d->cursor + 1, rc == 0 ? "accepted" : relm_strerror(rc));
		d->cursor++;
	}
	for (int s = 0; s < sim_devices_all(w, d->side) && d->online && !d->down; s++) {
		struct sim_chan *c = &w->chan[d->side][s][d->idx];
		while (d->sib_cursor[s] < c->n && c->v[d->sib_cursor[s]].avail <= w->now &&
		       d->online && !d->down) {
			struct sim_frame *f = &c->v[d->sib_cursor[s]];
			int rc = 0;
			if (sim_strat_frame(d, s, f, &rc)) {
				;                            /* the strategies' (strategy.c) */
			} else if (f->kind == SIM_F_STATE_REQ) {
				/* never to a device that left the circle (its request
				 * may still be on the way) */
				if (!(w->cfg.mutate & SIM_M_NO_REPAIR) && !w->dev[d->side][s].removed)
					sim_send_state(d, s);
			} else if (f->kind == SIM_F_STATE) {
				rc = sim_step(d, SIM_ST_MERGE, f->buf + 1, f->len - 1, NULL, NULL);
			} else {
				rc = sim_step(d, SIM_ST_COPY, f->buf, f->len, w->dev[d->side][s].devs.self, NULL);
				if (rc != 0 && rc != SIM_CRASHED)
					sim_fail(w, "%s: copy from %s refused: %s", d->name,
					         w->dev[d->side][s].name, relm_strerror(rc));
			}
			if (rc == SIM_CRASHED)
				return;
			d->sib_cursor[s]++;
		}
	}
}

void sim_want_read(struct sim_dev *d)
{
	struct sim_world *w = d->w;
	if (!d->online || d->down || d->read_armed)
		return;
	d->read_armed = 1;
	sim_push(w, w->now + (uint64_t)sim_uniform(w, 0, 2.0 * d->pace_ms), SIM_EV_DOREAD,
	         d->side, d->idx, 0);
}

/*
 * store.c — a simulated device's committed state, what stands for its
 * store: the state blob, the retransmission queue, the acknowledgements,
 * the pending set, the history and the outbox.  A committed step's effects
 * are applied here; a crash goes back to the last commit (restore).  The
 * engine reads the history through env callbacks (sim__store_init).
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

/* ---- devices: history, committed state -------------------------------------------- */

struct sim_msg *sim_hist_find(struct sim_dev *d, const uint8_t id[RELM_ID_LEN])
{
	for (size_t i = 0; i < d->nhist; i++)
		if (memcmp(d->hist[i].id, id, RELM_ID_LEN) == 0)
			return &d->hist[i];
	return NULL;
}

static int hist_has_cb(void *ctx, const uint8_t rel[16], const uint8_t id[16])
{
	(void)rel;
	return sim_hist_find(ctx, id) != NULL;
}

static int hist_get_cb(void *ctx, const uint8_t rel[16], const uint8_t id[16],
                       int *kind, uint64_t *ts, uint8_t **body, size_t *len)
{
	struct sim_msg *m = sim_hist_find(ctx, id);
	(void)rel;
	if (!m)
		return RELM_ENOTFOUND;
	*kind = m->kind;
	*ts = m->ts;
	*body = sim__dup_bytes(m->body, m->len);
	*len = m->len;
	return 0;
}

static void observe_cb(void *ctx, const uint8_t *env, size_t len, const uint8_t *pt, size_t ptlen)
{
	struct sim_dev *d = ctx;
	struct sim_obs *o;

	GROW(d->obs, d->nobs, d->capobs);
	o = &d->obs[d->nobs++];
	crypto_generichash(o->hash, sizeof o->hash, env, len, NULL, 0);
	o->pt = sim__dup_bytes(pt, ptlen);
	o->ptlen = ptlen;
	o->at = d->w->now;
}

/* The committed state: the blob, and the rows the store would keep beside it. */
void sim__commit(struct sim_dev *d)
{
	uint8_t *blob = NULL;
	size_t len = 0;

	/* a device without state (fanout, devices.md §11.4) keeps none */
	if (d->rel && relm_rel_encode(d->rel, &blob, &len) != 0)
		abort();
	relm_rel_blob_free(d->saved, d->saved_len);
	d->saved = blob;
	d->saved_len = len;
}

/* Rebuild the live state from the committed one (after a crash). */
void sim__restore(struct sim_dev *d)
{
	struct relm_rel *rel = NULL;

	if (!d->saved) {
		relm_rel_free(d->rel);
		d->rel = NULL;
		return;
	}
	if (relm_rel_decode(&rel, d->saved, d->saved_len) != 0)
		abort();
	for (size_t i = 0; i < d->nout; i++) {
		const struct sim_outrec *o = &d->outrec[i];
		if (relm_rel_outgoing_load(rel, o->id, o->kind, o->ts, (const char *)o->body, o->len,
		                           o->tries, o->next_ms, o->last_node) != 0)
			abort();
		rel->out[rel->nout - 1].sibling = (uint8_t)o->sibling;
	}
	for (size_t i = 0; i < d->nacks; i++)
		if (relm_rel_ack_load(rel, d->acks[i].id, d->acks[i].dh, d->acks[i].n) != 0)
			abort();
	for (size_t i = 0; i < d->npend; i++)
		if (relm_rel_pending_load(rel, d->pend[i].buf, d->pend[i].len, d->pend[i].t) != 0)
			abort();
	relm_rel_free(d->rel);
	d->rel = rel;
}

/* ---- effects: what a committed step does to the "store" and the outbox ------------ */

static void out_put(struct sim_dev *d, const struct relm_fx *f)
{
	struct sim_outrec *o = NULL;

	for (size_t i = 0; i < d->nout; i++)
		if (memcmp(d->outrec[i].id, f->msg_id, RELM_ID_LEN) == 0)
			o = &d->outrec[i];
	if (!o) {
		GROW(d->outrec, d->nout, d->capout);
		o = &d->outrec[d->nout++];
		memset(o, 0, sizeof *o);
		memcpy(o->id, f->msg_id, RELM_ID_LEN);
	}
	free(o->body);
	o->body = sim__dup_bytes(f->data, f->len);
	o->len = f->len;
	o->kind = f->kind;
	o->ts = f->ts;
	o->tries = f->tries;
	o->next_ms = f->next_ms;
	o->sibling = f->sibling;
	memcpy(o->last_node, f->node, RELM_ID_LEN);
}

static void out_del(struct sim_dev *d, const uint8_t id[RELM_ID_LEN])
{
	for (size_t i = 0; i < d->nout; i++)
		if (memcmp(d->outrec[i].id, id, RELM_ID_LEN) == 0) {
			free(d->outrec[i].body);
			d->outrec[i] = d->outrec[--d->nout];
			return;
		}
}

static void acks_apply(struct sim_dev *d, const struct relm_fx *f, int put)
{
	for (size_t k = 0; k + RELM_FX_ACK_LEN <= f->len; k += RELM_FX_ACK_LEN) {
		const uint8_t *r = f->data + k;
		size_t i;
		for (i = 0; i < d->nacks; i++)
			if (memcmp(d->acks[i].id, r, RELM_ID_LEN) == 0 &&
			    memcmp(d->acks[i].dh, r + RELM_FX_ACK_DH, RELM_KEY_LEN) == 0 &&
			    d->acks[i].n == relm_fx_ack_n(r))
				break;
		if (put && i == d->nacks) {
			GROW(d->acks, d->nacks, d->capacks);
			memcpy(d->acks[d->nacks].id, r, RELM_ID_LEN);
			memcpy(d->acks[d->nacks].dh, r + RELM_FX_ACK_DH, RELM_KEY_LEN);
			d->acks[d->nacks++].n = relm_fx_ack_n(r);
		} else if (!put && i < d->nacks) {
			d->acks[i] = d->acks[--d->nacks];
		}
	}
}

static void pend_apply(struct sim_dev *d, const struct relm_fx *f, int add)
{
	for (size_t i = 0; i < d->npend; i++)
		if (memcmp(d->pend[i].hash, f->hash, RELM_ID_LEN) == 0) {
			if (!add) {
				free(d->pend[i].buf);
				memmove(&d->pend[i], &d->pend[i + 1], (d->npend - i - 1) * sizeof d->pend[0]);
				d->npend--;
			}
			return;
		}
	if (add) {
		GROW(d->pend, d->npend, d->cappend);
		memcpy(d->pend[d->npend].hash, f->hash, RELM_ID_LEN);
		d->pend[d->npend].buf = sim__dup_bytes(f->data, f->len);
		d->pend[d->npend].len = f->len;
		d->pend[d->npend++].t = f->ts;
	}
}

static void hist_add(struct sim_dev *d, const struct relm_fx *f)
{
	struct sim_msg *m;

	if (f->kind == RELM_KIND_RECEIPT)
		return;
	if (sim_hist_find(d, f->msg_id)) {
		d->dup_deliveries++;
		sim_trace(d->w, d, "DUPLICATE delivery of %s", sim_short(f->msg_id));
		return;
	}
	GROW(d->hist, d->nhist, d->caphist);
	m = &d->hist[d->nhist++];
	memset(m, 0, sizeof *m);
	memcpy(m->id, f->msg_id, RELM_ID_LEN);
	m->in = (uint8_t)f->direction_in;
	m->origin = (uint8_t)f->origin;
	m->kind = f->kind;
	m->ts = f->ts;
	m->body = sim__dup_bytes(f->data, f->len);
	m->len = f->len;
	sim_trace(d->w, d, "history %s %s (%s)", f->direction_in ? "in " : "out", sim_short(f->msg_id),
	          f->origin == RELM_ORIGIN_SELF ? "self" : f->origin == RELM_ORIGIN_SIBLING ? "sibling"
	                                                                               : "remote");
}

static void status(struct sim_dev *d, const struct relm_fx *f)
{
	struct sim_msg *m = sim_hist_find(d, f->msg_id);

	if (!m || m->in)
		return;
	if (f->status == RELM_STATUS_DELIVERED)
		m->delivered = 1;
	else if (f->status == RELM_STATUS_FAILED) {
		m->failed = 1;
		sim_trace(d->w, d, "FAILED %s: %s", sim_short(f->msg_id), f->detail);
	}
}

/* Queue a post: to the remote mailbox (sib < 0) or to sibling sib. */
void sim_outbox_add(struct sim_dev *d, int sib, int kind, const uint8_t *buf, size_t len)
{
	struct sim_post *p;

	GROW(d->outbox, d->noutbox, d->capoutbox);
	p = &d->outbox[d->noutbox++];
	p->sib = sib;
	p->kind = kind;
	p->buf = sim__dup_bytes(buf, len);
	p->len = len;
}

static void copies_out(struct sim_dev *d, int kind, const uint8_t *buf, size_t len)
{
	int n = (d->w->cfg.mutate & SIM_M_LEAK_REMOVED) ? sim_devices_all(d->w, d->side)
	                                                : d->w->cfg.n[d->side];

	for (int i = 0; i < n; i++)
		if (i != d->idx)
			sim_outbox_add(d, i, kind, buf, len);
}

int sim_dev_index(const struct sim_dev *d, const uint8_t id[RELM_ID_LEN])
{
	for (int i = 0; i < d->w->cfg.n[d->side]; i++)
		if (memcmp(d->w->dev[d->side][i].devs.self, id, RELM_ID_LEN) == 0)
			return i;
	return -1;
}

void sim__apply_effects(struct sim_dev *d, struct relm_effects *fx)
{
	for (size_t i = 0; i < fx->n; i++) {
		const struct relm_fx *f = &fx->v[i];
		switch (f->type) {
		case RELM_FX_POST:
			sim_outbox_add(d, -1, f->kind, f->data, f->len);
			break;
		case RELM_FX_COPY:
			if ((d->w->cfg.mutate & SIM_M_NO_COPIES) ||
			    ((d->w->cfg.mutate & SIM_M_NO_CARRY) && f->len && f->data[0] == RELM_SIB_CARRY))
				break;
			copies_out(d, SIM_F_SIB, f->data, f->len);
			break;
		case RELM_FX_STATE_REQ: {
			int s = sim_dev_index(d, f->dev);
			uint8_t req = SIM_F_STATE_REQ;
			if (s >= 0)
				sim_outbox_add(d, s, SIM_F_STATE_REQ, &req, 1);
			break;
		}
		case RELM_FX_DELIVER:
			hist_add(d, f);
			break;
		case RELM_FX_STATUS:
			status(d, f);
			break;
		case RELM_FX_EVENT:
			if (f->ev.type == RELM_EV_FORK_DETECTED && d->idx == 0) {
				/* a fork under one of our nodes: the other side's
				 * devices made it, and it reached us (each once, as
				 * the first device sees it) */
				int p = relm_tree_find(&d->rel->tree, f->ev.node);
				if (p >= 0 && (d->rel->tree.nodes[p].flags & RELM_NODE_OURS))
					d->w->res->forks_by[1 - d->side]++;
			} else if (f->ev.type == RELM_EV_ENVELOPE_UNDECRYPTABLE) {
				d->undecryptable++;
			} else if (f->ev.type == RELM_EV_CLONE_SUSPECTED) {
				d->w->res->clones++;
				sim_trace(d->w, d, "clone.suspected");
			}
			break;
		case RELM_FX_PENDING_ADD:
		case RELM_FX_PENDING_DEL:
			pend_apply(d, f, f->type == RELM_FX_PENDING_ADD);
			break;
		case RELM_FX_OUT_PUT:
			if (f->tries > 1)
				d->w->res->retx++;
			out_put(d, f);
			break;
		case RELM_FX_OUT_DEL:
			out_del(d, f->msg_id);
			break;
		case RELM_FX_ACK_PUT:
		case RELM_FX_ACK_DEL:
			acks_apply(d, f, f->type == RELM_FX_ACK_PUT);
			break;
		case RELM_FX_SIB_TO:
		case RELM_FX_REQ_PUT:
		case RELM_FX_REQ_DEL:
			sim_strat_fx(d, f);
			break;
		default:
			break;
		}
	}
	relm_effects_reset(fx);
}

/* Which ours private keys the device holds now, and which it no longer does. */
void sim__note_keys(struct sim_dev *d)
{
	for (size_t k = 0; k < d->nkeys; k++)
		d->keys[k].held = 0;
	if (!d->rel)
		return;
	for (uint32_t i = 0; i < d->rel->tree.count; i++) {
		const struct relm_node *n = &d->rel->tree.nodes[i];
		size_t k;
		if (!(n->flags & RELM_NODE_PRIV))
			continue;
		for (k = 0; k < d->nkeys; k++)
			if (memcmp(d->keys[k].pub, n->pub, RELM_KEY_LEN) == 0)
				break;
		if (k == d->nkeys) {
			GROW(d->keys, d->nkeys, d->capkeys);
			memcpy(d->keys[k].pub, n->pub, RELM_KEY_LEN);
			d->nkeys++;
		}
		memcpy(d->keys[k].priv, n->priv, RELM_KEY_LEN);
		d->keys[k].held = 1;
	}
}

void sim__store_init(struct sim_dev *d)
{
	d->env.history_has = hist_has_cb;
	d->env.history_get = hist_get_cb;
	d->env.history_ctx = d;
	d->env.observe_sent = observe_cb;
	d->env.observe_ctx = d;
}

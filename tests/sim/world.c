/*
 * world.c — the simulated world: a virtual clock with an event queue, the
 * network between two protons, and their devices, each running the real
 * engine (lib/engine) on its own state, randomness and clock.
 *
 * The network.  Each side reads one relationship mailbox, an append-only
 * log like relm-mailbox keeps: a post arrives after a random delay (so
 * posts are reordered), sometimes twice, and on the remote path sometimes
 * not at all.  Every device reads its side's mailbox at its own pace with
 * its own cursor.  Devices of one side talk through sibling channels, one
 * per ordered pair, in order (a sibling session over a mailbox is): a
 * frame is readable after a random delay.
 *
 * A device step is atomic, as one store transaction is: its effects are
 * applied to the device's committed state ("the store": the state blob,
 * the retransmission queue, the acknowledgements, the pending set, the
 * history, the outbox), and what it posts leaves the outbox only after
 * that.  A crash throws away the step in progress (the input is read
 * again after the restart), or strikes between the commit and the post
 * (the outbox is posted after the restart).  Off-line devices read nothing
 * and post nothing; their users still type and their timers still run.
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

/* ---- tracing ------------------------------------------------------------------- */

void sim_trace(struct sim_world *w, const struct sim_dev *d, const char *fmt, ...)
{
	va_list ap;

	if (!w->cfg.trace)
		return;
	printf("%9.3f %-3s ", (double)w->now / 1000.0, d ? d->name : "net");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

const char *sim_short(const uint8_t *id)
{
	static char ring[8][9];
	static int k;
	char *s = ring[k++ % 8];
	sodium_bin2hex(s, 9, id, 4);
	return s;
}

/* ---- randomness and time -------------------------------------------------------- */

uint64_t sim_rand(struct sim_world *w)
{
	/* splitmix64: the world's own stream, separate from every device's */
	uint64_t z = (w->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

double sim_uniform(struct sim_world *w, double lo, double hi)
{
	return lo + (hi - lo) * ((double)(sim_rand(w) >> 11) / 9007199254740992.0);
}

static int chance(struct sim_world *w, double p)
{
	return p > 0 && sim_uniform(w, 0, 1) < p;
}

/* A network delay: mostly short, sometimes long (reordering). */
static uint64_t net_delay(struct sim_world *w, double lo, double hi)
{
	if (chance(w, 0.05))
		return (uint64_t)sim_uniform(w, 2000, 25000);
	return (uint64_t)sim_uniform(w, lo, hi);
}

int sim_devices_all(const struct sim_world *w, int s)
{
	return w->cfg.n[s] + (s == 0 && w->removed >= 0);
}

int sim_devices(const struct sim_world *w, int side)
{
	return w->cfg.n[side];
}

/* ---- the event queue (a binary heap on time, then insertion order) -------------- */

static int ev_less(const struct sim_ev *a, const struct sim_ev *b)
{
	return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

void sim_push(struct sim_world *w, uint64_t t, int type, int side, int dev, intptr_t arg)
{
	struct sim_ev e = { t < w->now ? w->now : t, w->evseq++, type, side, dev, arg };
	size_t i;

	if (w->nev == w->capev) {
		w->capev = w->capev ? 2 * w->capev : 256;
		if (!(w->ev = realloc(w->ev, w->capev * sizeof *w->ev)))
			abort();
	}
	i = w->nev++;
	while (i > 0 && ev_less(&e, &w->ev[(i - 1) / 2])) {
		w->ev[i] = w->ev[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	w->ev[i] = e;
}

static int pop(struct sim_world *w, struct sim_ev *out)
{
	size_t i = 0;
	struct sim_ev last;

	if (!w->nev)
		return 0;
	*out = w->ev[0];
	last = w->ev[--w->nev];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= w->nev)
			break;
		if (c + 1 < w->nev && ev_less(&w->ev[c + 1], &w->ev[c]))
			c++;
		if (!ev_less(&w->ev[c], &last))
			break;
		w->ev[i] = w->ev[c];
		i = c;
	}
	w->ev[i] = last;
	return 1;
}

/* ---- byte buffers ----------------------------------------------------------------- */

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *q = malloc(n ? n : 1);
	if (!q)
		abort();
	if (n)
		memcpy(q, p, n);
	return q;
}

/* ---- devices: clock, history, committed state -------------------------------------- */

void sim_dev_clock(struct sim_dev *d)
{
	d->clock = (uint64_t)((int64_t)d->w->now + d->skew + d->corr);
}

/* Device time → world time (its timers are in its own clock). */
static uint64_t world_time(const struct sim_dev *d, uint64_t dev_t)
{
	int64_t t = (int64_t)dev_t - d->skew - d->corr;
	return t < 0 ? 0 : (uint64_t)t;
}

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
	*body = dup_bytes(m->body, m->len);
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
	o->pt = dup_bytes(pt, ptlen);
	o->ptlen = ptlen;
	o->at = d->w->now;
}

/* The committed state: the blob, and the rows the store would keep beside it. */
static void commit(struct sim_dev *d)
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
static void restore(struct sim_dev *d)
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
	o->body = dup_bytes(f->data, f->len);
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
		d->pend[d->npend].buf = dup_bytes(f->data, f->len);
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
	m->body = dup_bytes(f->data, f->len);
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
	p->buf = dup_bytes(buf, len);
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

static void apply_effects(struct sim_dev *d, struct relm_effects *fx)
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
static void note_keys(struct sim_dev *d)
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

void sim_dump_trees(struct sim_world *w)
{
	for (int s = 0; s < SIM_SIDES; s++)
		for (int i = 0; i < w->cfg.n[s]; i++) {
			const struct sim_dev *d = &w->dev[s][i];
			int c;
			if (!d->rel) {
				printf("  %s holds no state\n", d->name);
				continue;
			}
			c = relm_rel_chosen(d->rel);
			printf("  %s's tree (%u nodes; O ours, T theirs, P private key, V valid, * chosen):\n",
			       d->name, d->rel->tree.count);
			for (uint32_t k = 0; k < d->rel->tree.count; k++) {
				const struct relm_node *n = &d->rel->tree.nodes[k];
				printf("    %*s%s %c%s%s%s n=%u\n", (int)(2 * n->depth), "", sim_short(n->id),
				       n->flags & RELM_NODE_OURS ? 'O' : 'T', n->flags & RELM_NODE_PRIV ? "P" : "",
				       relm_tree_is_valid(&d->rel->tree, (int)k) ? "V" : "", (int)k == c ? " *" : "",
				       n->n);
			}
		}
}

/* ---- one step ---------------------------------------------------------------------- */

enum step_kind { ST_SEND = SIM_ST_SEND, ST_RECV = SIM_ST_RECV, ST_TICK = SIM_ST_TICK,
                 ST_COPY = SIM_ST_COPY, ST_MERGE = SIM_ST_MERGE };

static void schedule_tick(struct sim_dev *d);

/* After a step that committed: note the tree's size, maybe crash before
 * the outbox is posted, else post. */
static void after_commit(struct sim_dev *d)
{
	struct sim_world *w = d->w;
	uint32_t leaves = 0, priv = 0;

	w->res->steps++;
	for (uint32_t i = 0; d->rel && i < d->rel->tree.count; i++) {
		int kids = relm_tree_children(&d->rel->tree, (int)i, NULL, NULL);
		leaves += kids == 0;
		priv += (d->rel->tree.nodes[i].flags & RELM_NODE_PRIV) != 0;
	}
	if (leaves > w->res->max_branches)
		w->res->max_branches = leaves;
	if (priv > w->res->max_priv)
		w->res->max_priv = priv;
	note_keys(d);
	commit(d);
	schedule_tick(d);
	if (d->online && !d->down)
		sim_pump(d);
}

/* Run one engine step on d.  Returns the engine's code, or SIM_CRASHED when
 * the device crashed in it (nothing of the step happened). */
static int step(struct sim_dev *d, int k, const uint8_t *buf, size_t len,
                const uint8_t *from, uint8_t *id_out)
{
	struct sim_world *w = d->w;
	struct relm_effects fx;
	int rc;

	sim_dev_clock(d);
	sim_strat_view(d);
	relm_effects_init(&fx);
	if (!d->rel && k < SIM_ST_REQUEST)
		return RELM_EINVAL;                      /* no state: nothing to step */
	switch (k) {
	case ST_SEND: {
		char body[64];
		snprintf(body, sizeof body, "%s says %u", d->name, (unsigned)w->typed);
		rc = relm_rel_send(d->rel, &d->env, body, strlen(body), buf, id_out, &fx);
		break;
	}
	case ST_RECV:
		rc = relm_rel_receive(d->rel, &d->env, buf, len, &fx);
		break;
	case ST_TICK:
		rc = relm_rel_tick(d->rel, &d->env, &fx);
		break;
	case ST_COPY:
		rc = len && buf[0] == RELM_SIB_CARRY ? relm_rel_carry(d->rel, &d->env, buf, len, &fx)
		                                     : relm_rel_copy(d->rel, &d->env, from, buf, len, &fx);
		break;
	case ST_MERGE: {
		struct relm_rel *other = NULL;
		rc = relm_rel_decode(&other, buf, len);
		if (rc == 0)
			rc = relm_rel_merge(d->rel, &d->env, other, &fx);
		relm_rel_free(other);
		break;
	}
	default:
		rc = sim_strat_engine(d, k, buf, len, id_out, &fx);
		break;
	}
	/* a fanout hub's history goes to the devices without state */
	if (d->rel && relm_rel_fanout(d->rel, &d->env, &fx, 0) != 0)
		abort();
	if (w->cfg.crash > 0 && chance(w, w->cfg.crash)) {
		/* killed in the step: the transaction never committed */
		relm_effects_clear(&fx);
		restore(d);
		sim_crash(d);
		return SIM_CRASHED;
	}
	if (rc == 0 || rc == RELM_EDUP || rc == RELM_EPENDING || fx.n) {
		sim_strat_posting(d, &fx);
		apply_effects(d, &fx);
		after_commit(d);
	}
	relm_effects_clear(&fx);
	return rc;
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
	if (chance(w, w->cfg.loss)) {
		sim_trace(w, d, "post lost");
		return;
	}
	for (int copies = 1 + chance(w, w->cfg.dup); copies > 0; copies--) {
		struct sim_mail *m;
		GROW(w->transit, w->ntransit, w->captransit);
		m = &w->transit[w->ntransit++];
		m->buf = dup_bytes(p->buf, p->len);
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

	if ((w->cfg.mutate & SIM_M_SIB_LOSS) && chance(w, 0.1))
		return;
	if (c->n && c->v[c->n - 1].avail > at)
		at = c->v[c->n - 1].avail;                 /* in order, as a mailbox */
	GROW(c->v, c->n, c->cap);
	f = &c->v[c->n++];
	f->buf = dup_bytes(p->buf, p->len);
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
static void read_all(struct sim_dev *d)
{
	struct sim_world *w = d->w;
	struct sim_box *box = &w->box[d->side];

	while (d->rel && d->cursor < box->n && d->online && !d->down) {
		struct sim_mail *m = &box->v[d->cursor];
		int rc = step(d, ST_RECV, m->buf, m->len, NULL, NULL);
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
				rc = step(d, ST_MERGE, f->buf + 1, f->len - 1, NULL, NULL);
			} else {
				rc = step(d, ST_COPY, f->buf, f->len, w->dev[d->side][s].devs.self, NULL);
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

/* ---- timers, sends, crashes, off-line ----------------------------------------------------- */

static void schedule_tick(struct sim_dev *d)
{
	uint64_t dl;

	sim_dev_clock(d);
	if (!d->rel)
		return;
	sim_strat_view(d);
	dl = relm_rel_deadline(d->rel, &d->env);
	if (!dl || (d->removed && !(d->w->cfg.mutate & SIM_M_CLONE)))
		return;
	dl = world_time(d, dl);
	if (d->tick_at && d->tick_at <= dl && d->tick_at >= d->w->now)
		return;                                 /* an earlier tick is queued */
	d->tick_at = dl;
	sim_push(d->w, dl, SIM_EV_TICK, d->side, d->idx, 0);
}

void sim_dev_saved(struct sim_dev *d)
{
	commit(d);
	schedule_tick(d);
}

void sim_dev_replace(struct sim_dev *d, struct relm_rel *rel)
{
	relm_rel_free(d->rel);
	d->rel = rel;
	if (!rel) {
		/* the rows that go with the state */
		for (size_t k = 0; k < d->nout; k++)
			free(d->outrec[k].body);
		d->nout = 0;
		d->nacks = 0;
		for (size_t k = 0; k < d->npend; k++)
			free(d->pend[k].buf);
		d->npend = 0;
	}
	note_keys(d);
	sim_dev_saved(d);
}

int sim_step(struct sim_dev *d, int kind, const uint8_t *buf, size_t len, const uint8_t *from,
             uint8_t *id_out)
{
	return step(d, kind, buf, len, from, id_out);
}

void sim_crash(struct sim_dev *d)
{
	struct sim_world *w = d->w;

	w->res->crashes++;
	d->down = 1;
	sim_trace(w, d, "CRASH (restart in a moment)");
	sim_push(w, w->now + (uint64_t)sim_uniform(w, 100, 5000), SIM_EV_RESTART, d->side, d->idx, 0);
}

static void user_send(struct sim_dev *d, const uint8_t *id)
{
	struct sim_world *w = d->w;
	uint8_t got[RELM_ID_LEN];
	/* a device that does not send makes a request (strategy.c) */
	int rc = step(d, sim_strat_send(d, id) ? SIM_ST_REQUEST : ST_SEND, id, 0, NULL, got);

	d->force_send = 0;

	if (rc == SIM_CRASHED) {
		/* the person sends it again once the daemon is back (same id:
		 * message.send is idempotent by id) */
		GROW(d->retry, d->nretry, d->capretry);
		memcpy(d->retry[d->nretry++], id, RELM_ID_LEN);
		return;
	}
	if (rc != 0 && rc != RELM_EEXIST) {
		sim_fail(w, "%s: send refused: %s", d->name, relm_strerror(rc));
		return;
	}
	sim_trace(w, d, "user sends %s", sim_short(got));
}

void sim_type_now(struct sim_world *w, struct sim_dev *d)
{
	uint8_t id[RELM_ID_LEN];

	/* ids come from the world, so a retried send reuses its id */
	for (int i = 0; i < RELM_ID_LEN; i += 8) {
		uint64_t r = sim_rand(w);
		memcpy(id + i, &r, 8);
	}
	w->typed++;
	GROW(w->sent_ids, w->nsent, w->capsent);
	memcpy(w->sent_ids[w->nsent].id, id, RELM_ID_LEN);
	w->sent_ids[w->nsent].side = d->side;
	w->sent_ids[w->nsent].dev = d->idx;
	w->sent_ids[w->nsent].napath = 0;
	w->sent_ids[w->nsent++].t = w->now;
	user_send(d, id);
	if (d->side == 1 && w->removed >= 0)
		sim_revoke_note_send(d, &w->sent_ids[w->nsent - 1]);
}

/* Schedule times are relative to the end of the set-up (w->t0). */
static void sched(struct sim_world *w, uint64_t end)
{
	if (w->t0 + end > w->sched_end)
		w->sched_end = w->t0 + end;
}

void sim_at_send(struct sim_world *w, uint64_t t, int side, int dev, int until_online)
{
	sched(w, t);
	sim_push(w, w->t0 + t, until_online ? SIM_EV_SEND_ONLINE : SIM_EV_SEND, side, dev, 0);
}

void sim_at_partition(struct sim_world *w, uint64_t t, uint64_t ms)
{
	sched(w, t + ms);
	sim_push(w, w->t0 + t, SIM_EV_PARTITION, 0, 0, (intptr_t)ms);
}

void sim_at_offline(struct sim_world *w, uint64_t t, int side, int dev, uint64_t ms)
{
	sched(w, t + ms);
	sim_push(w, w->t0 + t, SIM_EV_OFFLINE, side, dev, (intptr_t)ms);
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

/* Process one event.  0 when the queue is empty. */
int sim_event(struct sim_world *w)
{
	struct sim_ev e;
	struct sim_dev *d;

	if (!pop(w, &e))
		return 0;
	w->now = e.t;
	d = &w->dev[e.side][e.dev];
	switch (e.type) {
	case SIM_EV_ARRIVE: {
		struct sim_mail *m = &w->transit[e.arg];
		struct sim_box *box = &w->box[m->to];
		GROW(box->v, box->n, box->cap);
		box->v[box->n++] = *m;
		m->buf = NULL;
		w->in_transit--;
		for (int i = 0; i < sim_devices_all(w, m->to); i++)
			sim_want_read(&w->dev[m->to][i]);
		break;
	}
	case SIM_EV_READ:
		sim_want_read(d);
		break;
	case SIM_EV_DOREAD:
		d->read_armed = 0;
		read_all(d);
		break;
	case SIM_EV_TICK:
		if (d->down || e.t != d->tick_at) {
			if (d->down)
				break;
		}
		d->tick_at = 0;
		if (step(d, ST_TICK, NULL, 0, NULL, NULL) != SIM_CRASHED)
			schedule_tick(d);
		break;
	case SIM_EV_SEND:
		if (d->removed && !(w->cfg.mutate & SIM_M_CLONE))
			break;                          /* its person stopped using it */
		if (d->down) {
			sim_push(w, w->now + 1000, SIM_EV_SEND, e.side, e.dev, 0);
			break;
		}
		sim_type_now(w, d);
		break;
	case SIM_EV_SEND_ONLINE:
		if (d->removed && !(w->cfg.mutate & SIM_M_CLONE))
			break;
		if (!d->online || d->down) {
			d->send_when_online++;
			break;
		}
		sim_type_now(w, d);
		break;
	case SIM_EV_REVOKE:
		sim_revoke(w);
		break;
	case SIM_EV_STRAT:
	case SIM_EV_SWITCH:
		sim_strat_event(w, &e);
		break;
	case SIM_EV_PARTITION:
		if (w->now + (uint64_t)e.arg > w->partition_until)
			w->partition_until = w->now + (uint64_t)e.arg;
		sim_trace(w, NULL, "partition for %.0f s", (double)e.arg / 1000.0);
		break;
	case SIM_EV_OFFLINE:
		if (!d->online)
			break;
		d->online = 0;
		sim_trace(w, d, "off-line for %.0f s", (double)e.arg / 1000.0);
		sim_push(w, w->now + (uint64_t)e.arg, SIM_EV_ONLINE, e.side, e.dev, 0);
		break;
	case SIM_EV_ONLINE:
	case SIM_EV_RESTART:
		if (e.type == SIM_EV_ONLINE)
			d->online = 1;
		else
			d->down = 0;
		if (!d->online || d->down)
			break;
		sim_trace(w, d, e.type == SIM_EV_ONLINE ? "back on line" : "restarted");
		/* the person typing the moment the device is back: before it reads */
		while (d->send_when_online > 0) {
			d->send_when_online--;
			sim_type_now(w, d);
		}
		while (d->nretry > 0 && !d->down) {
			uint8_t id[RELM_ID_LEN];
			memcpy(id, d->retry[--d->nretry], RELM_ID_LEN);
			user_send(d, id);
		}
		if (!d->down) {
			sim_pump(d);
			schedule_tick(d);
			sim_want_read(d);
			sim_strat_wake(d);
		}
		break;
	default:
		abort();
	}
	return 1;
}

/* ---- set-up and tear-down ---------------------------------------------------------------- */

static void dev_init(struct sim_world *w, struct sim_dev *d, int side, int idx, uint64_t stream)
{
	memset(d, 0, sizeof *d);
	d->w = w;
	d->side = side;
	d->idx = idx;
	snprintf(d->name, sizeof d->name, "%c%d", side ? 'B' : 'A', idx + 1);
	tu_env_init_stream(&d->env, &d->clock, stream);
	d->env.history_has = hist_has_cb;
	d->env.history_get = hist_get_cb;
	d->env.history_ctx = d;
	d->env.observe_sent = observe_cb;
	d->env.observe_ctx = d;
	d->online = 1;
	d->env.params.heal_min_ms = 1000;      /* the heal within the schedule */
	d->env.params.heal_max_ms = 30000;
	d->pace_ms = sim_uniform(w, 200, 4000);
	if (w->cfg.skew) {
		d->skew = (int64_t)sim_uniform(w, -w->cfg.skew, w->cfg.skew);
		/* corrected to the mailbox server's clock, up to 50 ms off */
		d->corr = w->cfg.clock_sync ? -d->skew + (int64_t)sim_uniform(w, -50, 50) : 0;
	}
	/* random ids, so that the privacy check can look for them anywhere */
	for (int i = 0; i < RELM_ID_LEN; i += 8) {
		uint64_t r = sim_rand(w);
		memcpy(d->devs.self + i, &r, 8);
	}
}

static int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, RELM_ID_LEN);
}

void sim_world_init(struct sim_world *w, const struct sim_cfg *cfg, struct sim_result *res)
{
	memset(w, 0, sizeof *w);
	w->cfg = *cfg;
	w->res = res;
	w->crashy = cfg->crash > 0;
	w->removed = -1;
	w->rng = cfg->seed * 0x2545f4914f6cdd1dull + 1;
	w->now = 1700000000000ull;
	tu_seed_set(cfg->seed);
	for (int s = 0; s < SIM_SIDES; s++)
		for (int i = 0; i < cfg->n[s]; i++)
			dev_init(w, &w->dev[s][i], s, i, (uint64_t)(s * SIM_MAX_DEV + i));
	for (int s = 0; s < SIM_SIDES; s++) {
		struct relm_devices devs;
		memset(&devs, 0, sizeof devs);
		devs.count = (uint32_t)cfg->n[s];
		for (int i = 0; i < cfg->n[s]; i++)
			memcpy(devs.ids[i], w->dev[s][i].devs.self, RELM_ID_LEN);
		qsort(devs.ids, devs.count, RELM_ID_LEN, id_cmp);   /* the circle's order */
		for (int i = 0; i < cfg->n[s]; i++) {
			uint8_t self[RELM_ID_LEN];
			memcpy(self, w->dev[s][i].devs.self, RELM_ID_LEN);
			w->dev[s][i].devs = devs;
			memcpy(w->dev[s][i].devs.self, self, RELM_ID_LEN);
			w->dev[s][i].env.devices = &w->dev[s][i].devs;
		}
	}
}

void sim_world_free(struct sim_world *w)
{
	for (int s = 0; s < SIM_SIDES; s++) {
		for (int i = 0; i < SIM_MAX_DEV; i++) {
			struct sim_dev *d = &w->dev[s][i];
			relm_rel_free(d->rel);
			relm_rel_blob_free(d->saved, d->saved_len);
			for (size_t k = 0; k < d->nhist; k++)
				free(d->hist[k].body);
			free(d->hist);
			for (size_t k = 0; k < d->nout; k++)
				free(d->outrec[k].body);
			free(d->outrec);
			free(d->acks);
			for (size_t k = 0; k < d->npend; k++)
				free(d->pend[k].buf);
			free(d->pend);
			for (size_t k = 0; k < d->noutbox; k++)
				free(d->outbox[k].buf);
			free(d->outbox);
			for (size_t k = 0; k < d->nobs; k++)
				free(d->obs[k].pt);
			free(d->obs);
			free(d->retry);
			sim_strat_free(d);
			if (d->keys)
				sodium_memzero(d->keys, d->capkeys * sizeof *d->keys);
			free(d->keys);
			if (d->env.ctx)
				tu_env_free(&d->env);
			for (int j = 0; j < SIM_MAX_DEV; j++) {
				struct sim_chan *c = &w->chan[s][i][j];
				for (size_t k = 0; k < c->n; k++)
					free(c->v[k].buf);
				free(c->v);
			}
		}
		for (size_t k = 0; k < w->box[s].n; k++)
			free(w->box[s].v[k].buf);
		free(w->box[s].v);
	}
	for (size_t k = 0; k < w->ntransit; k++)
		free(w->transit[k].buf);
	free(w->transit);
	free(w->ev);
	free(w->sent_ids);
	free(w->before);
	sim_remote_free(w);
	memset(w, 0, sizeof *w);
}

/* The relationship, made by A1 (inviter) and B1 (accepter) as relmd makes
 * it, settled, then given as it is to every other device of each side (as
 * pairing would). */
void sim_world_pair(struct sim_world *w)
{
	struct sim_dev *a = &w->dev[0][0], *b = &w->dev[1][0];
	struct relm_invite inv;
	struct relm_invite_secrets sec;
	struct relm_effects fx;
	uint8_t apk[32], ask[64], bpk[32], bsk[64], seed[32];
	int rc;

	sim_dev_clock(a);
	sim_dev_clock(b);
	a->env.random(a->env.ctx, seed, 32);
	relm_sign_keypair_from_seed(apk, ask, seed);
	b->env.random(b->env.ctx, seed, 32);
	relm_sign_keypair_from_seed(bpk, bsk, seed);
	memset(&inv, 0, sizeof inv);
	memset(&sec, 0, sizeof sec);
	inv.version = RELM_WIRE_VERSION;
	memcpy(inv.ipk, apk, 32);
	inv.spk_id = 1;
	a->env.random(a->env.ctx, sec.spk_priv, 32);
	relm_x25519_public(inv.spk, sec.spk_priv);
	inv.expires_ms = a->clock + 86400000;
	snprintf(inv.mailbox, sizeof inv.mailbox, "127.0.0.1:7427/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	if (relm_invite_sign(&inv, ask) != 0)
		abort();
	memcpy(sec.ipk_sk, ask, 64);
	snprintf(sec.mailbox_host, sizeof sec.mailbox_host, "127.0.0.1:7427");
	relm_effects_init(&fx);
	rc = relm_rel_accept(&b->rel, &b->env, w->cfg.strict ? RELM_MODE_STRICT : RELM_MODE_TREE,
	                     bsk, &inv, "127.0.0.2:7427", &fx);
	if (rc != 0)
		abort();
	for (size_t i = 0; i < fx.n; i++)
		if (fx.v[i].type == RELM_FX_POST) {
			struct relm_effects fa;
			relm_effects_init(&fa);
			rc = relm_rel_open_initial(&a->rel, &a->env, RELM_MODE_TREE, &sec, fx.v[i].data,
			                           fx.v[i].len, &fa);
			if (rc != 0)
				abort();
			relm_effects_clear(&fa);
		}
	relm_effects_clear(&fx);
	sodium_memzero(&sec, sizeof sec);
	sodium_memzero(ask, sizeof ask);
	sodium_memzero(bsk, sizeof bsk);
	/* settle the set-up (hello receipted) with one device per side */
	for (int round = 0; round < 6; round++) {
		for (int s = 0; s < 2; s++) {
			struct sim_dev *x = s ? b : a, *y = s ? a : b;
			struct relm_effects f2;
			relm_effects_init(&f2);
			sim_dev_clock(x);
			relm_rel_tick(x->rel, &x->env, &f2);
			for (size_t i = 0; i < f2.n; i++)
				if (f2.v[i].type == RELM_FX_POST) {
					struct relm_effects f3;
					relm_effects_init(&f3);
					sim_dev_clock(y);
					relm_rel_receive(y->rel, &y->env, f2.v[i].data, f2.v[i].len, &f3);
					relm_effects_clear(&f3);
				}
			relm_effects_clear(&f2);
		}
		w->now += 3000;
	}
	if (a->rel->nout || b->rel->nout)
		abort();                        /* the hello must be receipted */
	/* every device of a side starts from the same state */
	for (int s = 0; s < 2; s++) {
		struct sim_dev *first = &w->dev[s][0];
		commit(first);
		for (int i = 1; i < w->cfg.n[s]; i++) {
			struct sim_dev *d = &w->dev[s][i];
			d->saved = dup_bytes(first->saved, first->saved_len);
			d->saved_len = first->saved_len;
			restore(d);
		}
		for (int i = 0; i < w->cfg.n[s]; i++)
			schedule_tick(&w->dev[s][i]);
	}
	w->t0 = w->sched_end = w->now;
}

void sim_fail(struct sim_world *w, const char *fmt, ...)
{
	va_list ap;

	if (!w->res->ok)
		return;                         /* keep the first */
	w->res->ok = 0;
	va_start(ap, fmt);
	vsnprintf(w->res->why, sizeof w->res->why, fmt, ap);
	va_end(ap);
	sim_trace(w, NULL, "VIOLATION: %s", w->res->why);
}

/*
 * world.c — the simulated world: a virtual clock with an event queue, the
 * network between two protons, and their devices, each running the real
 * engine (lib/engine) on its own state, randomness and clock.  This file
 * holds the clock, the randomness, the event queue and its loop, and the
 * set-up; a device's committed state is in store.c, its steps, timers and
 * crashes in step.c, the network and reading in net.c.
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

int sim__chance(struct sim_world *w, double p)
{
	return p > 0 && sim_uniform(w, 0, 1) < p;
}

int sim_devices_all(const struct sim_world *w, int s)
{
	return w->cfg.n[s] + (s == 0 && w->removed >= 0);
}

int sim_devices(const struct sim_world *w, int side)
{
	return w->cfg.n[side];
}

/* Device clocks: the world's plus the device's skew and its correction. */

void sim_dev_clock(struct sim_dev *d)
{
	d->clock = (uint64_t)((int64_t)d->w->now + d->skew + d->corr);
}

/* Device time → world time (its timers are in its own clock). */
uint64_t sim__world_time(const struct sim_dev *d, uint64_t dev_t)
{
	int64_t t = (int64_t)dev_t - d->skew - d->corr;
	return t < 0 ? 0 : (uint64_t)t;
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

uint8_t *sim__dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *q = malloc(n ? n : 1);
	if (!q)
		abort();
	if (n)
		memcpy(q, p, n);
	return q;
}

/* ---- a failing schedule's trees ---------------------------------------------------- */

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

/* ---- the schedule -------------------------------------------------------------------- */

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
		sim__read_all(d);
		break;
	case SIM_EV_TICK:
		if (d->down || e.t != d->tick_at) {
			if (d->down)
				break;
		}
		d->tick_at = 0;
		if (sim_step(d, SIM_ST_TICK, NULL, 0, NULL, NULL) != SIM_CRASHED)
			sim__schedule_tick(d);
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
			sim__user_send(d, id);
		}
		if (!d->down) {
			sim_pump(d);
			sim__schedule_tick(d);
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
	sim__store_init(d);
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
		sim__commit(first);
		for (int i = 1; i < w->cfg.n[s]; i++) {
			struct sim_dev *d = &w->dev[s][i];
			d->saved = sim__dup_bytes(first->saved, first->saved_len);
			d->saved_len = first->saved_len;
			sim__restore(d);
		}
		for (int i = 0; i < w->cfg.n[s]; i++)
			sim__schedule_tick(&w->dev[s][i]);
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

/* util_engine.c — see util_engine.h. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_engine.h"
#include "util_rand.h"
#include "crypto/crypto.h"
#include "error.h"
#include "wire/payload.h"
#include "wire/circle.h"
#include "engine/ratchet.h"

static int hist_has_cb(void *ctx, const uint8_t rel_id[16], const uint8_t msg_id[16])
{
	const struct tu_party *p = ctx;
	(void)rel_id;
	/* as the store's history: one row per (relationship, id), either way */
	return tu_hist_has(p, msg_id, 1) || tu_hist_has(p, msg_id, 0);
}

void tu_party_init(struct tu_party *p, uint64_t *clock, uint64_t stream)
{
	uint8_t seed[32];

	memset(p, 0, sizeof *p);
	tu_env_init_stream(&p->env, clock, stream);
	p->env.history_has = hist_has_cb;
	p->env.history_ctx = p;
	p->env.random(p->env.ctx, seed, sizeof seed);
	relm_sign_keypair_from_seed(p->ipk_pk, p->ipk_sk, seed);
}

void tu_party_free(struct tu_party *p)
{
	relm_rel_free(p->rel);
	for (size_t i = 0; i < p->nout; i++)
		free(p->outq[i].buf);
	free(p->outq);
	for (size_t i = 0; i < p->ncopy; i++)
		tu_blob_free(&p->copyq[i]);
	free(p->copyq);
	free(p->hist);
	free(p->hist_in);
	tu_env_free(&p->env);
	memset(p, 0, sizeof *p);
}

int tu_hist_has(const struct tu_party *p, const uint8_t id[RELM_ID_LEN], int in)
{
	for (size_t i = 0; i < p->nhist; i++)
		if (p->hist_in[i] == in && memcmp(p->hist[i], id, RELM_ID_LEN) == 0)
			return 1;
	return 0;
}

static void hist_add(struct tu_party *p, const uint8_t id[RELM_ID_LEN], int in)
{
	if (tu_hist_has(p, id, in)) {
		p->dup_deliveries++;
		return;
	}
	if (p->nhist == p->caphist) {
		p->caphist = p->caphist ? 2 * p->caphist : 64;
		p->hist = realloc(p->hist, p->caphist * sizeof *p->hist);
		p->hist_in = realloc(p->hist_in, p->caphist);
		ck_assert(p->hist && p->hist_in);
	}
	memcpy(p->hist[p->nhist], id, RELM_ID_LEN);
	p->hist_in[p->nhist++] = (uint8_t)in;
}

void tu_apply(struct tu_party *p, struct relm_effects *fx)
{
	for (size_t i = 0; i < fx->n; i++) {
		struct relm_fx *f = &fx->v[i];
		switch (f->type) {
		case RELM_FX_POST:
			if (p->nout == p->capout) {
				p->capout = p->capout ? 2 * p->capout : 64;
				p->outq = realloc(p->outq, p->capout * sizeof *p->outq);
				ck_assert(p->outq);
			}
			p->outq[p->nout].buf = malloc(f->len);
			ck_assert(p->outq[p->nout].buf);
			memcpy(p->outq[p->nout].buf, f->data, f->len);
			p->outq[p->nout++].len = f->len;
			break;
		case RELM_FX_DELIVER:
			if (f->kind != RELM_KIND_RECEIPT)
				hist_add(p, f->msg_id, f->direction_in);
			if (f->origin == RELM_ORIGIN_SIBLING)
				p->sibling_deliveries++;
			break;
		case RELM_FX_STATUS:
			if (f->status == RELM_STATUS_DELIVERED)
				p->delivered++;
			else if (f->status == RELM_STATUS_FAILED)
				p->failed++;
			else if (f->status == RELM_STATUS_QUEUED)
				p->queued++;
			break;
		case RELM_FX_EVENT:
			if (f->ev.type == RELM_EV_FORK_DETECTED)
				p->forks++;
			else if (f->ev.type == RELM_EV_FORK_RESOLVED)
				p->resolved++;
			else if (f->ev.type == RELM_EV_ENVELOPE_UNDECRYPTABLE)
				p->undecryptable++;
			if (f->ev.type > RELM_EV_NONE && f->ev.type < RELM_EV_COUNT) {
				p->events[f->ev.type]++;
				p->last_event[f->ev.type] = f->ev;
			}
			break;
		case RELM_FX_PENDING_ADD:
			p->pending_adds++;
			break;
		case RELM_FX_COPY:
			if (p->ncopy == p->capcopy) {
				p->capcopy = p->capcopy ? 2 * p->capcopy : 64;
				p->copyq = realloc(p->copyq, p->capcopy * sizeof *p->copyq);
				ck_assert(p->copyq);
			}
			p->copyq[p->ncopy].buf = malloc(f->len);
			ck_assert(p->copyq[p->ncopy].buf);
			memcpy(p->copyq[p->ncopy].buf, f->data, f->len);
			p->copyq[p->ncopy++].len = f->len;
			break;
		case RELM_FX_STATE_REQ:
			p->state_reqs++;
			memcpy(p->state_req_dev, f->dev, RELM_ID_LEN);
			break;
		default:
			break;
		}
	}
	relm_effects_reset(fx);
}

struct tu_blob tu_take(struct tu_party *p, size_t i)
{
	struct tu_blob b;
	ck_assert(i < p->nout);
	b = p->outq[i];
	memmove(&p->outq[i], &p->outq[i + 1], (p->nout - i - 1) * sizeof *p->outq);
	p->nout--;
	return b;
}

int tu_recv(struct tu_party *p, const uint8_t *buf, size_t len)
{
	struct relm_effects fx;
	int rc;
	relm_effects_init(&fx);
	rc = relm_rel_receive(p->rel, &p->env, buf, len, &fx);
	tu_apply(p, &fx);
	relm_effects_clear(&fx);
	return rc;
}

void tu_send(struct tu_party *p, const char *text, uint8_t *id_out)
{
	struct relm_effects fx;
	uint8_t id[RELM_ID_LEN];
	int rc;
	relm_effects_init(&fx);
	rc = relm_rel_send(p->rel, &p->env, text, strlen(text), NULL, id, &fx);
	if (rc != 0) {
		fprintf(stderr, "send failed: nodes %u out %u skipped %u\n", p->rel->tree.count, p->rel->nout, p->rel->nskipped);
		for (uint32_t i = 0; i < p->rel->tree.count; i++) {
			const struct relm_node *n = &p->rel->tree.nodes[i];
			fprintf(stderr, "  node %s parent %s depth %u flags %x n %u\n", tu_hex(n->id, 4), tu_hex(n->parent, 4), n->depth, n->flags, n->n);
		}
	}
	ck_assert_msg(rc == 0, "send: %s (" TU_SEED_FMT ")", relm_strerror(rc), TU_SEED_ARG);
	tu_apply(p, &fx);
	relm_effects_clear(&fx);
	if (id_out)
		memcpy(id_out, id, RELM_ID_LEN);
}

void tu_tick(struct tu_party *p)
{
	struct relm_effects fx;
	int rc;
	relm_effects_init(&fx);
	rc = relm_rel_tick(p->rel, &p->env, &fx);
	ck_assert_msg(rc == 0, "tick: %s (" TU_SEED_FMT ")", relm_strerror(rc), TU_SEED_ARG);
	tu_apply(p, &fx);
	relm_effects_clear(&fx);
}

void tu_exchange(struct tu_party *a, struct tu_party *b, uint64_t *clock, int rounds)
{
	for (int r = 0; r < rounds; r++) {
		while (a->nout || b->nout) {
			while (a->nout) {
				struct tu_blob e = tu_take(a, 0);
				tu_recv(b, e.buf, e.len);
				tu_blob_free(&e);
			}
			while (b->nout) {
				struct tu_blob e = tu_take(b, 0);
				tu_recv(a, e.buf, e.len);
				tu_blob_free(&e);
			}
		}
		*clock += 3000;
		tu_tick(a);
		tu_tick(b);
	}
}

void tu_pair(struct tu_party *a, struct tu_party *b, enum relm_mode ma, enum relm_mode mb,
             int with_opk)
{
	struct relm_invite inv;
	struct relm_invite_secrets sec;
	struct relm_effects fx;
	struct tu_blob init;
	int rc;

	memset(&inv, 0, sizeof inv);
	memset(&sec, 0, sizeof sec);
	inv.version = RELM_WIRE_VERSION;
	memcpy(inv.ipk, a->ipk_pk, RELM_SIGN_PK_LEN);
	inv.spk_id = 7;
	a->env.random(a->env.ctx, sec.spk_priv, RELM_KEY_LEN);
	relm_x25519_public(inv.spk, sec.spk_priv);
	if (with_opk) {
		inv.flags |= RELM_INVITE_F_OPK;
		inv.opk_id = 9;
		a->env.random(a->env.ctx, sec.opk_priv, RELM_KEY_LEN);
		relm_x25519_public(inv.opk, sec.opk_priv);
		sec.has_opk = 1;
	}
	inv.expires_ms = a->env.now_ms(a->env.ctx) + 86400000;
	snprintf(inv.mailbox, sizeof inv.mailbox, "127.0.0.1:7427/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	ck_assert_int_eq(relm_invite_sign(&inv, a->ipk_sk), 0);
	memcpy(sec.ipk_sk, a->ipk_sk, RELM_SIGN_SK_LEN);
	snprintf(sec.mailbox_host, sizeof sec.mailbox_host, "127.0.0.1:7427");

	relm_effects_init(&fx);
	rc = relm_rel_accept(&b->rel, &b->env, mb, b->ipk_sk, &inv, "127.0.0.2:7427", &fx);
	ck_assert_msg(rc == 0, "accept: %s", relm_strerror(rc));
	tu_apply(b, &fx);
	ck_assert_uint_eq(b->nout, 1);
	init = tu_take(b, 0);
	rc = relm_rel_open_initial(&a->rel, &a->env, ma, &sec, init.buf, init.len, &fx);
	ck_assert_msg(rc == 0, "open_initial: %s", relm_strerror(rc));
	tu_apply(a, &fx);
	relm_effects_clear(&fx);
	tu_blob_free(&init);
	sodium_memzero(&sec, sizeof sec);
}

/* The blob, then the acknowledgements waiting for the receipt timer: since
 * blob v4 they are not in it (the store keeps them as rows), and a step
 * that fails must leave them unchanged too. */
struct tu_blob tu_state(const struct tu_party *p)
{
	struct tu_blob b;
	size_t acks = (size_t)p->rel->nacks_due * sizeof *p->rel->acks_due;
	uint8_t *v;

	ck_assert_int_eq(relm_rel_encode(p->rel, &b.buf, &b.len), 0);
	v = malloc(b.len + 4 + acks);
	ck_assert(v);
	memcpy(v, b.buf, b.len);
	memcpy(v + b.len, &p->rel->nacks_due, 4);
	if (acks)
		memcpy(v + b.len + 4, p->rel->acks_due, acks);
	relm_rel_blob_free(b.buf, b.len);
	b.buf = v;
	b.len += 4 + acks;
	return b;
}

int tu_blob_eq(struct tu_blob x, struct tu_blob y)
{
	return x.len == y.len && memcmp(x.buf, y.buf, x.len) == 0;
}

void tu_blob_free(struct tu_blob *b)
{
	if (b->buf) {
		sodium_memzero(b->buf, b->len);
		free(b->buf);
	}
	b->buf = NULL;
	b->len = 0;
}

void tu_clone(struct tu_party *q, const struct tu_party *p, uint64_t *clock, uint64_t stream)
{
	struct tu_blob s;
	ck_assert_int_eq(relm_rel_encode(p->rel, &s.buf, &s.len), 0);
	tu_party_init(q, clock, stream);
	memcpy(q->ipk_pk, p->ipk_pk, sizeof q->ipk_pk);
	memcpy(q->ipk_sk, p->ipk_sk, sizeof q->ipk_sk);
	ck_assert_int_eq(relm_rel_decode(&q->rel, s.buf, s.len), 0);
	/* what the store would give back with it (not in the blob since v4) */
	for (uint32_t i = 0; i < p->rel->nacks_due; i++)
		ck_assert_int_eq(relm_rel_ack_load(q->rel, p->rel->acks_due[i].id, p->rel->acks_due[i].dh,
		                                   p->rel->acks_due[i].n), 0);
	for (size_t i = 0; i < p->nhist; i++)
		hist_add(q, p->hist[i], p->hist_in[i]);
	tu_blob_free(&s);
}

void tu_devices(struct tu_party **parties, size_t n)
{
	struct relm_devices d;

	ck_assert_uint_le(n, RELM_MAX_DEVICES);
	memset(&d, 0, sizeof d);
	d.count = (uint32_t)n;
	for (size_t i = 0; i < n; i++)
		d.ids[i][0] = (uint8_t)(i + 1);
	for (size_t i = 0; i < n; i++) {
		parties[i]->devs = d;
		parties[i]->devs.self[0] = (uint8_t)(i + 1);
		parties[i]->env.devices = &parties[i]->devs;
	}
}

int tu_copy_in(struct tu_party *p, const struct tu_party *from, const uint8_t *buf, size_t len)
{
	struct relm_effects fx;
	int rc;

	relm_effects_init(&fx);
	rc = len && buf[0] == 7 ? relm_rel_carry(p->rel, &p->env, buf, len, &fx)
	                        : relm_rel_copy(p->rel, &p->env, from->devs.self, buf, len, &fx);
	tu_apply(p, &fx);
	relm_effects_clear(&fx);
	return rc;
}

struct tu_blob tu_take_copy(struct tu_party *p)
{
	struct tu_blob b;

	ck_assert_uint_gt(p->ncopy, 0);
	b = p->copyq[0];
	memmove(&p->copyq[0], &p->copyq[1], (p->ncopy - 1) * sizeof *p->copyq);
	p->ncopy--;
	return b;
}

void tu_copies_to(struct tu_party *p, struct tu_party **sibs, size_t n)
{
	while (p->ncopy) {
		struct tu_blob c = tu_take_copy(p);
		for (size_t i = 0; i < n; i++)
			if (sibs[i] != p)
				ck_assert_int_eq(tu_copy_in(sibs[i], p, c.buf, c.len), 0);
		tu_blob_free(&c);
	}
}

void tu_circle_device(struct relm_circle_device *d, uint8_t first, uint64_t added, const char *label)
{
	uint8_t dsk[64], seed[32], spk_priv[32];

	memset(d, 0, sizeof *d);
	tu_rand_bytes(d->id, 16);
	d->id[0] = first;
	tu_rand_bytes(seed, 32);
	relm_sign_keypair_from_seed(d->dpk, dsk, seed);
	d->added = added;
	snprintf(d->label, sizeof d->label, "%s", label);
	d->invite.version = RELM_WIRE_VERSION;
	d->invite.flags = RELM_INVITE_F_MULTI;
	memcpy(d->invite.ipk, d->dpk, 32);
	d->invite.spk_id = 1;
	tu_rand_bytes(spk_priv, 32);
	relm_x25519_public(d->invite.spk, spk_priv);
	snprintf(d->invite.mailbox, sizeof d->invite.mailbox,
	         "127.0.0.1:7427/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	ck_assert_int_eq(relm_invite_sign(&d->invite, dsk), 0);
	sodium_memzero(dsk, sizeof dsk);
}

int tu_outgoing_index(const struct relm_rel *rel, const uint8_t id[RELM_ID_LEN])
{
	for (uint32_t i = 0; i < rel->nout; i++)
		if (memcmp(rel->out[i].id, id, RELM_ID_LEN) == 0)
			return (int)i;
	return -1;
}

void tu_sign_keypair(uint8_t pk[RELM_SIGN_PK_LEN], uint8_t sk[RELM_SIGN_SK_LEN])
{
	uint8_t seed[32];

	tu_rand_bytes(seed, sizeof seed);
	relm_sign_keypair_from_seed(pk, sk, seed);
	sodium_memzero(seed, sizeof seed);
}

void tu_send_identity(struct tu_party *p, const uint8_t *st)
{
	struct relm_effects fx;
	uint8_t id[RELM_ID_LEN];

	memcpy(p->rel->ipk_self, st + 1, RELM_SIGN_PK_LEN);     /* old_ipk */
	relm_effects_init(&fx);
	ck_assert_int_eq(relm_rel_send_identity(p->rel, &p->env, st, RELM_SUCCESSOR_LEN, id, &fx), 0);
	tu_apply(p, &fx);
	relm_effects_clear(&fx);
}

size_t tu_forged_statement(int k, const uint8_t g[RELM_SUCCESSOR_LEN], char hex[RELM_SUCCESSOR_HEX + 1],
                           int *code)
{
	static const int codes[TU_FORGERIES] = { RELM_ENOTFOUND, RELM_EBADSIG, RELM_EBADSIG,
	                                         RELM_EMALFORMED, RELM_EREPLAY };
	uint8_t st[RELM_SUCCESSOR_LEN], fpk[32], fsk[64], npk[32], nsk[64];
	struct relm_successor s;

	ck_assert(k >= 0 && k < TU_FORGERIES);
	memcpy(st, g, sizeof st);
	if (k == 0) {
		tu_sign_keypair(fpk, fsk);
		tu_sign_keypair(npk, nsk);
		ck_assert_int_eq(relm_successor_sign(st, &s, fsk, nsk, 7), 0);
		sodium_memzero(fsk, sizeof fsk);
		sodium_memzero(nsk, sizeof nsk);
	} else if (k == 1) {
		st[73 + 5] ^= 0x20;                /* sig_old */
	} else if (k == 2) {
		st[73 + 64 + 5] ^= 0x20;           /* sig_new */
	}
	relm_hex(hex, st, sizeof st);
	*code = codes[k];
	return k == 3 ? RELM_SUCCESSOR_HEX - 2 : RELM_SUCCESSOR_HEX;
}

int tu_send_forged_identity(struct relm_rel *rel, const struct relm_env *env, char *hex, size_t len,
                            struct relm_effects *fx)
{
	struct relm_payload p;
	uint8_t on[RELM_ID_LEN];

	memset(&p, 0, sizeof p);
	relm__random(env, p.id, sizeof p.id);
	p.kind = RELM_KIND_IDENTITY;
	snprintf(p.kind_str, sizeof p.kind_str, "identity");
	p.ts = relm__now(env);
	p.body = hex;
	p.body_len = len;
	return relm__rel_send_tracked(rel, env, &p, hex, len, 0, on, fx);
}

/*
 * rel_receive.c — the relationship engine's receiving half (proto/ratchet.md
 * §2–§6): receipts owed and sent, envelopes opened copy-verify-commit,
 * the pending set, and what follows every change of the tree (rel.c has
 * sending and the timers).
 *
 * Receive is copy-verify-commit.  relm__ratchet_open finds the key and
 * decrypts without touching state; the payload is parsed; only then is
 * anything committed — so an envelope that fails anywhere leaves the
 * relationship byte-for-byte as it was, and no effect behind.
 *
 * After every change of the tree (`changed`): retry the pending set (an
 * envelope whose parent node arrived since), re-run the fork rule, emit
 * fork events, prune.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sodium.h>
#include "engine/rel.h"
#include "engine/rel_int.h"
#include "engine/ratchet.h"
#include "wire/payload.h"
#include "crypto/crypto.h"
#include "error.h"

/* ---- receipts -------------------------------------------------------------- */

static void ack_pack(uint8_t *p, const struct relm_ack *a)
{
	memcpy(p, a->id, RELM_ID_LEN);
	memcpy(p + RELM_FX_ACK_DH, a->dh, RELM_KEY_LEN);
	p[RELM_FX_ACK_N] = (uint8_t)(a->n >> 24);
	p[RELM_FX_ACK_N + 1] = (uint8_t)(a->n >> 16);
	p[RELM_FX_ACK_N + 2] = (uint8_t)(a->n >> 8);
	p[RELM_FX_ACK_N + 3] = (uint8_t)a->n;
}

/* An ACK_PUT or ACK_DEL effect for acks[0..k). */
int relm__emit_acks(struct relm_effects *fx, enum relm_fx_type type,
                     const struct relm_ack *acks, uint32_t k)
{
	struct relm_fx *f = relm__fx_push(fx, type);
	if (!f)
		return RELM_ENOMEM;
	if (!(f->data = malloc((size_t)k * RELM_FX_ACK_LEN))) {
		fx->n--;
		return RELM_ENOMEM;
	}
	for (uint32_t i = 0; i < k; i++)
		ack_pack(f->data + (size_t)i * RELM_FX_ACK_LEN, &acks[i]);
	f->len = (size_t)k * RELM_FX_ACK_LEN;
	return 0;
}

static int ack_append(struct relm_rel *rel, const uint8_t id[RELM_ID_LEN],
                      const uint8_t dh[RELM_KEY_LEN], uint32_t n)
{
	if (rel->nacks_due == rel->capacks) {
		uint32_t cap = rel->capacks ? 2 * rel->capacks : 8;
		struct relm_ack *v = realloc(rel->acks_due, cap * sizeof *v);
		if (!v)
			return RELM_ENOMEM;
		rel->acks_due = v;
		rel->capacks = cap;
	}
	memcpy(rel->acks_due[rel->nacks_due].id, id, RELM_ID_LEN);
	memcpy(rel->acks_due[rel->nacks_due].dh, dh, RELM_KEY_LEN);
	rel->acks_due[rel->nacks_due].n = n;
	rel->nacks_due++;
	return 0;
}

int relm_rel_ack_load(struct relm_rel *rel, const uint8_t id[RELM_ID_LEN],
                      const uint8_t dh[RELM_KEY_LEN], uint32_t n)
{
	return ack_append(rel, id, dh, n);
}

/* check: the same envelope may already be acknowledged (only when it came
 * through a stored key: a key used for the first time cannot have been).
 * With acks_partial only the ones in memory are checked; the store ignores
 * a row it already has. */
static int ack_add(struct relm_rel *rel, const struct relm_env *env,
                   const uint8_t id[RELM_ID_LEN], const uint8_t dh[RELM_KEY_LEN], uint32_t n,
                   int check, struct relm_effects *fx)
{
	int rc;

	for (uint32_t i = 0; check && i < rel->nacks_due; i++)
		if (memcmp(rel->acks_due[i].id, id, RELM_ID_LEN) == 0 &&
		    memcmp(rel->acks_due[i].dh, dh, RELM_KEY_LEN) == 0 && rel->acks_due[i].n == n)
			return 0;
	if ((rc = ack_append(rel, id, dh, n)) != 0)
		return rc;
	if ((rc = relm__emit_acks(fx, RELM_FX_ACK_PUT, &rel->acks_due[rel->nacks_due - 1], 1)) != 0) {
		rel->nacks_due--;
		return rc;
	}
	if (!rel->receipt_due_ms) {
		/* A new batch: one device answers it first, the others later
		 * unless its copy reaches them (proto/devices.md §5.2). */
		memcpy(rel->batch_first, id, RELM_ID_LEN);
		rel->receipt_due_ms = relm__now(env) +
			relm__random_between(env, env->params.receipt_delay_min_ms,
			                     env->params.receipt_delay_max_ms) +
			(uint64_t)relm__receipt_rank(rel, env, id) * env->params.receipt_stagger_ms;
	}
	return 0;
}

/* At most RELM_RECEIPTS_PER_STEP receipts: at 1,000 messages a second a
 * batch holds up to 2,000 acknowledgements, 32 receipts, which in one step
 * were the longest loop turn of a receiving relmd (~5 ms of CPU).  What
 * is left stays due (receipt_due_ms unchanged, already past), so the next
 * tick — the next loop turn — sends on; a sibling whose carry covered part
 * of the batch keeps the rest as a new batch (rel_sibling.c). */
int relm__send_receipts(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx)
{
	for (int sent = 0; rel->nacks_due > 0; sent++) {
		if (sent == RELM_RECEIPTS_PER_STEP)
			return 0;
		struct relm_payload p;
		uint32_t k = rel->nacks_due < RELM_MAX_ACKS ? rel->nacks_due : RELM_MAX_ACKS;
		size_t mark = fx->n;
		int rc;

		memset(&p, 0, sizeof p);
		p.ts = relm__now(env);
		relm__new_id(env, p.ts, p.id);
		p.kind = RELM_KIND_RECEIPT;
		snprintf(p.kind_str, sizeof p.kind_str, "receipt");
		p.acks = rel->acks_due;
		p.nacks = k;
		/* the rows go in the same transaction as the receipt */
		if ((rc = relm__emit_acks(fx, RELM_FX_ACK_DEL, rel->acks_due, k)) != 0)
			return rc;
		if ((rc = relm__send_payload(rel, env, &p, 1, NULL, NULL, fx)) != 0 ||
		    (relm__multi(rel, env) && (rc = relm__emit_carry(rel, env, rel->acks_due, k, fx)) != 0)) {
			relm__fx_truncate(fx, mark);
			return rc;
		}
		memmove(rel->acks_due, rel->acks_due + k, (rel->nacks_due - k) * sizeof *rel->acks_due);
		rel->nacks_due -= k;
	}
	if (!rel->acks_more)
		rel->receipt_due_ms = 0;       /* else the rest, still in the store, is due */
	return 0;
}

static void on_receipt(struct relm_rel *rel, const struct relm_env *env,
                       const struct relm_payload *p, struct relm_effects *fx)
{
	for (size_t i = 0; i < p->nacks; i++) {
		const struct relm_ack *a = &p->acks[i];
		int n = relm_tree_find_pub(&rel->tree, a->dh, 1), o;
		relm__note_acked(rel, env, a->id, a->dh);
		relm__clone_on_ack(rel, env, a->id, a->dh);
		/* The receipt names the envelope: only the node it was accepted
		 * on becomes valid (proto/ratchet.md §3.1), not every node the id was sent on. */
		if (n >= 0)
			rel->tree.nodes[n].flags |= RELM_NODE_ACKED;
		if ((o = relm__find_outgoing(rel, a->id)) >= 0) {
			relm__emit_status(fx, a->id, RELM_STATUS_DELIVERED, NULL);
			relm__emit_out_del(fx, a->id);
			relm__outgoing_remove(rel, o);
		} else if (rel->out_partial) {
			/* The queue lives in the store and only due records are
			 * loaded: say it anyway; the store ignores ids that are not
			 * ours or are already delivered. */
			relm__emit_status(fx, a->id, RELM_STATUS_DELIVERED, NULL);
			relm__emit_out_del(fx, a->id);
		}
	}
}

/* ---- receiving ------------------------------------------------------------- */

void relm__pending_remove(struct relm_rel *rel, uint32_t i)
{
	sodium_memzero(rel->pending[i].buf, rel->pending[i].len);
	free(rel->pending[i].buf);
	memmove(&rel->pending[i], &rel->pending[i + 1], (rel->npending - i - 1) * sizeof rel->pending[0]);
	rel->npending--;
}

static void envelope_hash(uint8_t h[RELM_ID_LEN], const uint8_t *buf, size_t len)
{
	crypto_generichash(h, RELM_ID_LEN, buf, len, NULL, 0);
}

static int pending_push(struct relm_rel *rel, const uint8_t *buf, size_t len, uint64_t t,
                        const uint8_t hash[RELM_ID_LEN])
{
	if (rel->npending == rel->cappending) {
		uint32_t cap = rel->cappending ? 2 * rel->cappending : 4;
		struct relm_pending *v = realloc(rel->pending, cap * sizeof *v);
		if (!v)
			return RELM_ENOMEM;
		rel->pending = v;
		rel->cappending = cap;
	}
	struct relm_pending *pe = &rel->pending[rel->npending];
	pe->buf = malloc(len);
	if (!pe->buf)
		return RELM_ENOMEM;
	memcpy(pe->buf, buf, len);
	pe->len = (uint32_t)len;
	pe->t_ms = t;
	memcpy(pe->hash, hash, RELM_ID_LEN);
	rel->npending++;
	return 0;
}

int relm_rel_outgoing_load(struct relm_rel *rel, const uint8_t id[RELM_ID_LEN], int kind,
                           uint64_t ts, const char *body, size_t len, uint32_t tries,
                           uint64_t next_ms, const uint8_t last_node[RELM_ID_LEN])
{
	if (len > RELM_BODY_MAX)
		return RELM_ETOOBIG;
	if (relm__find_outgoing(rel, id) >= 0)
		return RELM_EEXIST;
	return relm__outgoing_append(rel, id, kind, ts, body, len, tries, next_ms, last_node);
}

/* Append a record, without looking for its id (the caller knows it is
 * new).  0 or RELM_ENOMEM, nothing changed on failure. */
int relm__outgoing_append(struct relm_rel *rel, const uint8_t id[RELM_ID_LEN], int kind,
                           uint64_t ts, const char *body, size_t len, uint32_t tries,
                           uint64_t next_ms, const uint8_t last_node[RELM_ID_LEN])
{
	struct relm_outgoing *o;

	if (rel->nout == rel->capout) {
		uint32_t cap = rel->capout ? 2 * rel->capout : 8;
		struct relm_outgoing *v = realloc(rel->out, cap * sizeof *v);
		if (!v)
			return RELM_ENOMEM;
		rel->out = v;
		rel->capout = cap;
	}
	o = &rel->out[rel->nout];
	memset(o, 0, sizeof *o);
	if (!(o->body = malloc(len + 1)))
		return RELM_ENOMEM;
	/* An empty body comes back from the store as NULL (sqlite3_column_blob
	 * of a zero-length blob): memcpy(dst, NULL, 0) is undefined (UBSan,
	 * tests/check_crash.c). */
	if (len)
		memcpy(o->body, body, len);
	o->body[len] = 0;
	o->body_len = (uint32_t)len;
	memcpy(o->id, id, RELM_ID_LEN);
	o->kind = (uint8_t)kind;
	o->ts = ts;
	o->tries = tries;
	o->next_ms = next_ms;
	memcpy(o->last_node, last_node, RELM_ID_LEN);
	rel->nout++;
	return 0;
}

int relm_rel_pending_load(struct relm_rel *rel, const uint8_t *buf, size_t len, uint64_t t_ms)
{
	uint8_t h[RELM_ID_LEN];
	if (len > RELM_ENVELOPE_MAX)
		return RELM_ETOOBIG;
	envelope_hash(h, buf, len);
	return pending_push(rel, buf, len, t_ms, h);
}

static int receive_one(struct relm_rel *rel, const struct relm_env *env,
                       const uint8_t *buf, size_t len, int from_pending,
                       struct relm_effects *fx);

/* Fork rule bookkeeping after any change: pending retries until nothing
 * more decrypts, then prune. */
void relm__rel_changed(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx)
{
	int progress = 1, pruned = 0;

	while (progress && rel->mode == RELM_MODE_TREE) {
		progress = relm__place_pcopies(rel, env, fx);
		for (uint32_t i = 0; i < rel->npending; ) {
			struct relm_pending pe = rel->pending[i];
			size_t mark = fx->n;
			int rc = receive_one(rel, env, pe.buf, pe.len, 1, fx);
			if (rc == RELM_EPENDING) {
				i++;
				continue;
			}
			if (rc != 0 && rc != RELM_EDUP) {
				relm__fx_truncate(fx, mark);
				relm__emit_undecryptable(fx, rel, pe.hash, rc);
			}
			struct relm_fx *f = relm__fx_push(fx, RELM_FX_PENDING_DEL);
			if (f)
				memcpy(f->hash, pe.hash, RELM_ID_LEN);
			/* receive_one may have changed the array: find it again */
			for (uint32_t k = 0; k < rel->npending; k++)
				if (memcmp(rel->pending[k].hash, pe.hash, RELM_ID_LEN) == 0) {
					relm__pending_remove(rel, k);
					break;
				}
			progress = 1;
			break;
		}
	}
	if (rel->mode == RELM_MODE_TREE) {
		uint8_t before[RELM_MAX_NODES][RELM_ID_LEN];
		uint32_t nbefore = rel->tree.count;
		for (uint32_t i = 0; i < nbefore; i++)
			memcpy(before[i], rel->tree.nodes[i].id, RELM_ID_LEN);
		relm_tree_prune(&rel->tree, env->params.prune_w, env->params.retain_r, &pruned);
		if (rel->tree.count < nbefore)
			relm__note_pruned(rel, (const uint8_t (*)[RELM_ID_LEN])before, nbefore);
		if (pruned) {
			struct relm_fx *f = relm__emit_rel_event(fx, rel, RELM_EV_FORK_RESOLVED);
			rel->stats.pruned += (uint32_t)pruned;
			if (f) {
				f->ev.pruned = (uint32_t)pruned;
				f->ev.has |= RELM_EVF_PRUNED;
			}
		}
	}
}

int relm__is_dup(const struct relm_rel *rel, const struct relm_env *env, const uint8_t id[RELM_ID_LEN],
                  const struct relm_effects *fx)
{
	if (relm__seen_recent(rel, id))
		return 1;
	for (size_t i = 0; i < fx->n; i++)
		if (fx->v[i].type == RELM_FX_DELIVER && fx->v[i].direction_in &&
		    memcmp(fx->v[i].msg_id, id, RELM_ID_LEN) == 0)
			return 1;
	return env->history_has && env->history_has(env->history_ctx, rel->id, id) > 0;
}

static int receive_one(struct relm_rel *rel, const struct relm_env *env,
                       const uint8_t *buf, size_t len, int from_pending,
                       struct relm_effects *fx)
{
	struct relm_envelope e;
	struct relm__opened o;
	struct relm_payload p;
	size_t mark = fx->n;
	int rc, node, dup, sib;
	uint8_t sib_id[RELM_ID_LEN];

	memset(&p, 0, sizeof p);
	if ((rc = relm_envelope_decode_known(&e, buf, len, rel->ipk_remote)) != 0)
		return rc;
	/* The gate first: an envelope from anyone but the remote party is
	 * refused here, before any key is tried and before it could take a
	 * slot of the pending set (proto/wire.md §5.1). */
	if (rel->has_gate && (!e.gate || !relm_gate_check(e.gate, rel->gate_key, buf, e.gated_len)))
		return RELM_EAUTH;
	rc = relm__ratchet_open(rel, env, &e, &o);
	if (rc != 0) {
		relm__opened_wipe(&o);
		return rc;
	}
	/* A sibling session carries sibling frames: 0x00 ‖ id ‖ frame, never
	 * JSON (whose first byte is '{'); devices.md §4.1. */
	sib = rel->sibling_session && o.ptlen > 0 && o.pt[0] == 0x00;
	if (sib) {
		size_t ulen = 0;
		struct relm_fx *f;
		if (sodium_unpad(&ulen, o.pt, o.ptlen, RELM_PAD_BLOCK) != 0 || ulen < 1 + RELM_ID_LEN + 1) {
			relm__opened_wipe(&o);
			return RELM_EMALFORMED;
		}
		memcpy(sib_id, o.pt + 1, RELM_ID_LEN);
		dup = relm__seen_recent(rel, sib_id);
		if (!dup) {
			if (!(f = relm__fx_push(fx, RELM_FX_SIBLING)) ||
			    !(f->data = malloc(ulen - 1 - RELM_ID_LEN))) {
				rc = RELM_ENOMEM;
				goto fail;
			}
			f->len = ulen - 1 - RELM_ID_LEN;
			memcpy(f->data, o.pt + 1 + RELM_ID_LEN, f->len);
			memcpy(f->msg_id, sib_id, RELM_ID_LEN);
		}
	} else {
		if ((rc = relm_payload_decode(&p, o.pt, o.ptlen)) != 0) {
			relm__opened_wipe(&o);
			return rc;
		}
		/* Receipts are not history: their ids are only in the recent ring. */
		dup = p.kind == RELM_KIND_RECEIPT ? relm__seen_recent(rel, p.id) : relm__is_dup(rel, env, p.id, fx);
		/* Reserve what the commit needs before committing. */
		if (!dup && p.kind != RELM_KIND_RECEIPT && (rc = relm__emit_deliver(fx, &p, 1, RELM_ORIGIN_REMOTE)) != 0)
			goto fail;
	}

	if ((rc = relm__ratchet_reserve(rel, &o, &e)) != 0)
		goto fail;

	/* ---- commit ---- */
	{
		uint32_t before = rel->tree.count;
		int kids = -1, parent = o.how == RELM__OPEN_NEW ? o.node : -1;
		if (parent >= 0)
			kids = relm_tree_children(&rel->tree, parent, NULL, NULL);
		node = relm__ratchet_commit(rel, env, &o, &e);
		if (rel->tree.count > before && kids > 0 && rel->mode == RELM_MODE_TREE) {
			rel->stats.forks++;
			relm__emit_fork(fx, rel, rel->tree.nodes[parent].id);
		}
		if (rel->tree.count > before)
			relm__heal_on_node(rel, env, node);
	}
	if (rel->mode == RELM_MODE_STRICT && o.how == RELM__OPEN_NEW && node >= 0) {
		/* Strict: eager dh_ratchet — a fresh sending key at once, and only
		 * the current DHr/DHs pair is kept (Signal). */
		struct relm_node fresh;
		if (relm__make_ours_node(rel, env, node, &fresh) == 0) {
			uint8_t keep_r[RELM_ID_LEN];
			memcpy(keep_r, rel->tree.nodes[node].id, RELM_ID_LEN);
			for (uint32_t i = 0; i < rel->tree.count; ) {
				if (memcmp(rel->tree.nodes[i].id, keep_r, RELM_ID_LEN) != 0) {
					sodium_memzero(&rel->tree.nodes[i], sizeof rel->tree.nodes[i]);
					rel->tree.nodes[i] = rel->tree.nodes[--rel->tree.count];
					sodium_memzero(&rel->tree.nodes[rel->tree.count], sizeof rel->tree.nodes[0]);
				} else {
					i++;
				}
			}
			relm_tree_add(&rel->tree, &fresh);
			sodium_memzero(&fresh, sizeof fresh);
		}
	}
	if (rel->initial_pending && rel->side == 'b') {
		/* Anything authenticated from 'a' proves it holds the relationship. */
		rel->initial_pending = 0;
	}
	if (sib) {
		if (!dup)
			relm__note_recent(rel, sib_id);
	} else if (p.kind == RELM_KIND_RECEIPT) {
		if (!dup) {
			relm__note_recent(rel, p.id);
			on_receipt(rel, env, &p, fx);
		}
	} else {
		/* Out of memory here loses the acknowledgement, not the message:
		 * the sender retransmits and the duplicate is acknowledged. */
		(void)ack_add(rel, env, p.id, e.h.dh_pub, e.h.n, o.how == RELM__OPEN_SKIPPED, fx);
		if (dup) {
			rel->stats.dups++;
		} else {
			relm__note_recent(rel, p.id);
			if (p.kind == RELM_KIND_IDENTITY)
				relm__identity_received(rel, &p, fx);
			if (p.kind == RELM_KIND_HELLO && rel->side == 'a' && !rel->remote_mailbox[0] &&
			    p.mailbox) {
				char b64[64];
				sodium_bin2base64(b64, sizeof b64, rel->remote_mbox_pk, RELM_SIGN_PK_LEN,
				                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
				snprintf(rel->remote_mailbox, sizeof rel->remote_mailbox, "%s/%s", p.mailbox, b64);
			}
		}
	}
	relm__opened_wipe(&o);
	relm_payload_clear(&p);
	if (!from_pending)
		relm__rel_changed(rel, env, fx);
	return dup ? RELM_EDUP : 0;
fail:
	relm__fx_truncate(fx, mark);
	relm__opened_wipe(&o);
	relm_payload_clear(&p);
	return rc;
}

int relm_rel_receive(struct relm_rel *rel, const struct relm_env *env,
                     const uint8_t *buf, size_t len, struct relm_effects *fx)
{
	size_t mark = fx->n;
	int rc = receive_one(rel, env, buf, len, 0, fx);

	if (rc == RELM_EPENDING) {
		uint8_t h[RELM_ID_LEN];
		struct relm_fx *f;
		envelope_hash(h, buf, len);
		for (uint32_t i = 0; i < rel->npending; i++)
			if (memcmp(rel->pending[i].hash, h, RELM_ID_LEN) == 0)
				return RELM_EPENDING;      /* already held */
		if (rel->npending >= RELM_MAX_PENDING) {
			f = relm__fx_push(fx, RELM_FX_PENDING_DEL);
			if (f)
				memcpy(f->hash, rel->pending[0].hash, RELM_ID_LEN);
			relm__emit_undecryptable(fx, rel, rel->pending[0].hash, RELM_EPENDING_FULL);
			relm__pending_remove(rel, 0);
		}
		f = relm__fx_push(fx, RELM_FX_PENDING_ADD);
		if (!f || !(f->data = malloc(len)) || pending_push(rel, buf, len, relm__now(env), h) != 0) {
			relm__fx_truncate(fx, mark);
			return RELM_ENOMEM;
		}
		memcpy(f->data, buf, len);
		f->len = len;
		f->ts = relm__now(env);
		memcpy(f->hash, h, RELM_ID_LEN);
	}
	return rc;
}


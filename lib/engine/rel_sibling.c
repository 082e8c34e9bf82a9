/*
 * rel_sibling.c — what several devices of one proton add to the
 * relationship engine (proto/devices.md §5): copies of every send out,
 * siblings' copies in (their nodes placed or kept pending, counters,
 * messages, receipts that answer for us), the payloads siblings accepted,
 * which device answers a receipt batch first, and repair by merging a
 * sibling's state.
 *
 * Like every engine step these are copy-verify-commit: everything that can
 * fail (decoding, allocation, effects) happens before the first change of
 * the relationship, so an error leaves it byte for byte as it was.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sodium.h>
#include "engine/rel_int.h"
#include "engine/rel_strategy.h"
#include "engine/ratchet.h"
#include "wire/sibling.h"
#include "crypto/crypto.h"
#include "error.h"

int relm__multi(const struct relm_rel *rel, const struct relm_env *env)
{
	/* under fanout the hub is the only device holding state: it copies to
	 * nobody (its siblings get delivers, rel_strategy.c) */
	return rel->mode == RELM_MODE_TREE && env->devices && env->devices->count > 1 &&
	       env->devices->strategy != RELM_STRATEGY_FANOUT;
}

/* ---- copies out ----------------------------------------------------------- */

int relm__emit_copy(struct relm_rel *rel, const struct relm_node *created,
                    const uint8_t node[RELM_ID_LEN], uint32_t n,
                    const uint8_t *pt, size_t ptlen, int kind,
                    const uint8_t msg_id[RELM_ID_LEN], struct relm_effects *fx)
{
	struct relm_sib_copy c;
	struct relm_fx *f;
	size_t ulen = 0;
	int rc;

	memset(&c, 0, sizeof c);
	if (sodium_unpad(&ulen, pt, ptlen, RELM_PAD_BLOCK) != 0)
		return RELM_EINVAL;
	memcpy(c.rel, rel->id, RELM_ID_LEN);
	memcpy(c.node, node, RELM_ID_LEN);
	c.n = n;
	if (created) {
		c.flags = RELM_SIB_F_CREATED;
		memcpy(c.parent, created->parent, RELM_ID_LEN);
		memcpy(c.pub, created->pub, RELM_KEY_LEN);
		memcpy(c.priv, created->priv, RELM_KEY_LEN);
		c.pn = created->pn;
	}
	c.payload = pt;
	c.payload_len = ulen;
	if (!(f = relm__fx_push(fx, RELM_FX_COPY))) {
		rc = RELM_ENOMEM;
		goto out;
	}
	if ((rc = relm_sib_copy_encode(&f->data, &f->len, &c)) != 0) {
		fx->n--;
		goto out;
	}
	f->kind = kind;
	memcpy(f->msg_id, msg_id, RELM_ID_LEN);
out:
	sodium_memzero(&c, sizeof c);
	return rc;
}

/* ---- what this device accepted, for its siblings ---------------------------- */

static int push_sibling_msg(struct relm_effects *fx, uint8_t *buf, size_t len)
{
	struct relm_fx *f = relm__fx_push(fx, RELM_FX_COPY);

	if (!f) {
		relm_sib_buf_free(buf, len);
		return RELM_ENOMEM;
	}
	f->data = buf;
	f->len = len;
	f->kind = RELM_KIND_RECEIPT;
	return 0;
}

int relm__emit_carry(const struct relm_rel *rel, const struct relm_env *env,
                     const struct relm_ack *acks, uint32_t k, struct relm_effects *fx)
{
	uint8_t *msg = NULL;
	size_t len = 0, mark = fx->n, n = 0;
	int rc = 0;

	if (!env->history_get)
		return 0;
	for (uint32_t i = 0; i < k && rc == 0; i++) {
		struct relm_payload p;
		uint8_t *body = NULL, *pt = NULL;
		size_t blen = 0, ptlen = 0, ulen = 0;
		int kind, dup = 0;

		for (uint32_t j = 0; j < i; j++)
			dup |= memcmp(acks[j].id, acks[i].id, RELM_ID_LEN) == 0;
		memset(&p, 0, sizeof p);
		if (dup || env->history_get(env->history_ctx, rel->id, acks[i].id, &kind, &p.ts,
		                            &body, &blen) != 0)
			continue;
		if (kind == RELM_KIND_TEXT || kind == RELM_KIND_HEAL || kind == RELM_KIND_IDENTITY) {
			memcpy(p.id, acks[i].id, RELM_ID_LEN);
			p.kind = (enum relm_kind)kind;
			snprintf(p.kind_str, sizeof p.kind_str, "%s", relm_kind_name(p.kind));
			p.body = (char *)body;
			p.body_len = blen;
			if (relm_payload_encode(&pt, &ptlen, &p) == 0 &&
			    sodium_unpad(&ulen, pt, ptlen, RELM_PAD_BLOCK) == 0) {
				if (!msg && (rc = relm_sib_carry_new(&msg, &len, rel->id)) != 0)
					goto next;
				rc = relm_sib_carry_append(&msg, &len, pt, ulen);
				if (rc == RELM_ETOOBIG && n > 0) {
					/* full: send it, and start another */
					if ((rc = push_sibling_msg(fx, msg, len)) == 0 &&
					    (rc = relm_sib_carry_new(&msg, &len, rel->id)) == 0)
						rc = relm_sib_carry_append(&msg, &len, pt, ulen);
					else
						msg = NULL;
					n = 0;
				}
				if (rc == RELM_ETOOBIG)
					rc = 0;            /* cannot be carried at all: skipped */
				else
					n += rc == 0;
			}
		}
next:
		if (pt)
			relm_payload_buf_free(pt, ptlen);
		if (body) {
			sodium_memzero(body, blen);
			free(body);
		}
	}
	if (rc == 0 && n > 0) {
		rc = push_sibling_msg(fx, msg, len);
		msg = NULL;
	}
	relm_sib_buf_free(msg, len);
	if (rc != 0)
		relm__fx_truncate(fx, mark);
	return rc;
}

/* ---- who answers a receipt batch ----------------------------------------- */

static void rank_hash(uint8_t h[RELM_ID_LEN], const uint8_t rel[RELM_ID_LEN],
                      const uint8_t first[RELM_ID_LEN], const uint8_t dev[RELM_ID_LEN])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, RELM_ID_LEN);
	crypto_generichash_update(&st, rel, RELM_ID_LEN);
	crypto_generichash_update(&st, first, RELM_ID_LEN);
	crypto_generichash_update(&st, dev, RELM_ID_LEN);
	crypto_generichash_final(&st, h, RELM_ID_LEN);
}

uint32_t relm__receipt_rank(const struct relm_rel *rel, const struct relm_env *env,
                            const uint8_t first_ack[RELM_ID_LEN])
{
	uint8_t mine[RELM_ID_LEN], h[RELM_ID_LEN];
	uint32_t rank = 0;

	/* leader: one device answers, the holder, and at once (§11.3) */
	if (!relm__multi(rel, env) || env->devices->strategy == RELM_STRATEGY_LEADER)
		return 0;
	rank_hash(mine, rel->id, first_ack, env->devices->self);
	for (uint32_t i = 0; i < env->devices->count; i++) {
		if (memcmp(env->devices->ids[i], env->devices->self, RELM_ID_LEN) == 0)
			continue;
		rank_hash(h, rel->id, first_ack, env->devices->ids[i]);
		rank += memcmp(h, mine, RELM_ID_LEN) < 0;
	}
	return rank;
}

/* ---- small rings ------------------------------------------------------------ */

static void ring_push(uint8_t (*ring)[RELM_ID_LEN], uint32_t *n, uint32_t cap,
                      const uint8_t id[RELM_ID_LEN])
{
	for (uint32_t i = 0; i < *n; i++)
		if (memcmp(ring[i], id, RELM_ID_LEN) == 0)
			return;
	if (*n == cap) {
		memmove(ring[0], ring[1], (size_t)(cap - 1) * RELM_ID_LEN);
		(*n)--;
	}
	memcpy(ring[(*n)++], id, RELM_ID_LEN);
}

static int ring_has(const uint8_t (*ring)[RELM_ID_LEN], uint32_t n, const uint8_t id[RELM_ID_LEN])
{
	for (uint32_t i = 0; i < n; i++)
		if (memcmp(ring[i], id, RELM_ID_LEN) == 0)
			return 1;
	return 0;
}

void relm__note_acked(struct relm_rel *rel, const struct relm_env *env, const uint8_t id[RELM_ID_LEN],
                      const uint8_t dh[RELM_KEY_LEN])
{
	struct relm_acked a;

	if (!relm__multi(rel, env))
		return;
	for (uint32_t i = 0; i < rel->nacked; i++)
		if (!memcmp(rel->acked[i].id, id, RELM_ID_LEN) && !memcmp(rel->acked[i].dh, dh, RELM_KEY_LEN))
			return;
	memcpy(a.id, id, RELM_ID_LEN);
	memcpy(a.dh, dh, RELM_KEY_LEN);
	if (rel->nacked == RELM_ACKED_RING) {
		memmove(&rel->acked[0], &rel->acked[1], (RELM_ACKED_RING - 1) * sizeof a);
		rel->nacked--;
	}
	rel->acked[rel->nacked++] = a;
}

/* Did a receipt read lately acknowledge message id (any key), or anything
 * on ratchet key dh (id NULL)? */
static int acked_has(const struct relm_rel *rel, const uint8_t *id, const uint8_t *dh)
{
	for (uint32_t i = 0; i < rel->nacked; i++)
		if (id ? !memcmp(rel->acked[i].id, id, RELM_ID_LEN) : !memcmp(rel->acked[i].dh, dh, RELM_KEY_LEN))
			return 1;
	return 0;
}

void relm__note_pruned(struct relm_rel *rel, const uint8_t (*before)[RELM_ID_LEN], uint32_t nbefore)
{
	for (uint32_t i = 0; i < nbefore; i++)
		if (relm_tree_find(&rel->tree, before[i]) < 0)
			ring_push(rel->pruned, &rel->npruned, RELM_PRUNED_RING, before[i]);
}

static int was_pruned(const struct relm_rel *rel, const uint8_t id[RELM_ID_LEN])
{
	return ring_has((const uint8_t (*)[RELM_ID_LEN])rel->pruned, rel->npruned, id);
}

/* ---- repair requests ---------------------------------------------------------- */

/* May this device ask a sibling for state now?  At most once per repair
 * gap (devices.md §4.3). */
static int ask_due(const struct relm_rel *rel, const struct relm_env *env)
{
	return !rel->repair_ms || relm__now(env) >= rel->repair_ms + env->params.repair_gap_ms;
}

/* The request itself; the caller sets repair_ms when it commits. */
static int emit_state_req(struct relm_effects *fx, const uint8_t from[RELM_ID_LEN])
{
	struct relm_fx *f = relm__fx_push(fx, RELM_FX_STATE_REQ);
	if (!f)
		return RELM_ENOMEM;
	memcpy(f->dev, from, RELM_ID_LEN);
	return 0;
}

/* ---- placing a sibling's node ------------------------------------------------ */

/* Make the ours node a sibling created under theirs node `parent` (index).
 * Returns its index, or RELM_ELIMIT / RELM_EBADKEY / RELM_EMALFORMED with
 * the tree unchanged. */
static int place_node(struct relm_rel *rel, const struct relm_env *env, int parent,
                      const uint8_t pub[RELM_KEY_LEN], const uint8_t priv[RELM_KEY_LEN],
                      uint32_t pn, uint32_t used_n, struct relm_effects *fx)
{
	const struct relm_node *par = &rel->tree.nodes[parent];
	struct relm_node nd;
	uint8_t dh[RELM_KEY_LEN], check[RELM_KEY_LEN];
	int kids, idx, rc;

	/* an ours node is made under a theirs node, from its own key pair */
	if (par->flags & RELM_NODE_OURS)
		return RELM_EMALFORMED;
	relm_x25519_public(check, priv);
	if (sodium_memcmp(check, pub, RELM_KEY_LEN) != 0)
		return RELM_EMALFORMED;
	if (rel->tree.count >= RELM_MAX_NODES)
		return RELM_ELIMIT;
	memset(&nd, 0, sizeof nd);
	if ((rc = relm_dh(dh, priv, par->pub)) != 0)
		goto out;
	relm_kdf_rk(nd.rk, nd.ck, par->rk, dh);
	memcpy(nd.parent, par->id, RELM_ID_LEN);
	memcpy(nd.pub, pub, RELM_KEY_LEN);
	memcpy(nd.priv, priv, RELM_KEY_LEN);
	relm_node_id(nd.id, par->id, pub);
	nd.depth = par->depth + 1;
	nd.flags = RELM_NODE_OURS | RELM_NODE_PRIV | RELM_NODE_CHAIN;
	/* the remote's receipt for a message on it came first */
	if (acked_has(rel, NULL, pub))
		nd.flags |= RELM_NODE_ACKED;
	nd.pn = pn;
	nd.created_ms = relm__now(env);
	relm__chain_advance(&nd, used_n + 1);
	kids = relm_tree_children(&rel->tree, parent, NULL, NULL);
	idx = relm_tree_add(&rel->tree, &nd);
	if (kids > 0) {
		rel->stats.forks++;
		relm__emit_fork(fx, rel, rel->tree.nodes[parent].id);
	}
	rc = idx;
out:
	sodium_memzero(dh, sizeof dh);
	sodium_memzero(&nd, sizeof nd);
	return rc;
}

static void pcopy_remove(struct relm_rel *rel, uint32_t i)
{
	sodium_memzero(&rel->pcopies[i], sizeof rel->pcopies[i]);
	memmove(&rel->pcopies[i], &rel->pcopies[i + 1],
	        (rel->npcopies - i - 1) * sizeof rel->pcopies[0]);
	rel->npcopies--;
	sodium_memzero(&rel->pcopies[rel->npcopies], sizeof rel->pcopies[0]);
}

int relm__place_pcopies(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx)
{
	int placed = 0;

	for (uint32_t i = 0; i < rel->npcopies; ) {
		struct relm_pcopy *pc = &rel->pcopies[i];
		int have = relm_tree_find(&rel->tree, pc->node), par;
		if (have >= 0) {
			relm__chain_advance(&rel->tree.nodes[have], pc->n + 1);
			pcopy_remove(rel, i);
			continue;
		}
		if ((par = relm_tree_find(&rel->tree, pc->parent)) < 0) {
			i++;
			continue;
		}
		if (place_node(rel, env, par, pc->pub, pc->priv, pc->pn, pc->n, fx) >= 0)
			placed = 1;
		/* placed, or unplaceable for good (bad key, full tree): gone */
		pcopy_remove(rel, i);
	}
	return placed;
}

static void pcopy_add(struct relm_rel *rel, const struct relm_env *env,
                      const uint8_t from[RELM_ID_LEN], const struct relm_sib_copy *c)
{
	struct relm_pcopy *pc;

	for (uint32_t i = 0; i < rel->npcopies; i++)
		if (memcmp(rel->pcopies[i].node, c->node, RELM_ID_LEN) == 0) {
			if (rel->pcopies[i].n < c->n)
				rel->pcopies[i].n = c->n;
			return;
		}
	if (rel->npcopies == RELM_MAX_PENDING_COPIES)
		pcopy_remove(rel, 0);          /* the oldest; repair will bring it back */
	pc = &rel->pcopies[rel->npcopies++];
	memcpy(pc->from, from, RELM_ID_LEN);
	memcpy(pc->node, c->node, RELM_ID_LEN);
	pc->n = c->n;
	memcpy(pc->parent, c->parent, RELM_ID_LEN);
	memcpy(pc->pub, c->pub, RELM_KEY_LEN);
	memcpy(pc->priv, c->priv, RELM_KEY_LEN);
	pc->pn = c->pn;
	pc->t_ms = relm__now(env);
}

#define RELM__PENDING_ASK(env) (10 * (uint64_t)(env)->params.repair_after_ms)

/* The oldest envelope of the remote still pending (its arrival), 0: none.
 * Only a relationship of a proton with siblings asks them about it. */
static uint64_t pending_oldest(const struct relm_rel *rel, const struct relm_env *env)
{
	uint64_t t = 0;

	if (rel->sibling_session || !env->devices || env->devices->count < 2)
		return 0;
	for (uint32_t i = 0; i < rel->npending; i++)
		if (!t || rel->pending[i].t_ms < t)
			t = rel->pending[i].t_ms;
	return t;
}

/* An envelope of the remote pending for RELM_PENDING_ASK_MS (10 × the
 * repair delay: the remote's retransmissions fill a gap of its own well
 * before) builds on a node only a sibling can give: one whose copy this
 * device never read (made while it held no state, under fanout, §11).
 * Every sibling is asked for its state (§5.6), once per oldest pending
 * envelope (an envelope nothing will ever place waits for its expiry
 * without asking again and again). */
static void ask_for_pending(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx)
{
	uint64_t t = pending_oldest(rel, env), now = relm__now(env);
	int asked = 0;

	/* once per oldest pending envelope: in the repair gap after its time */
	if (!t || t + RELM__PENDING_ASK(env) > now ||
	    now >= t + RELM__PENDING_ASK(env) + env->params.repair_gap_ms || !ask_due(rel, env))
		return;
	for (uint32_t d = 0; d < env->devices->count; d++)
		if (memcmp(env->devices->ids[d], env->devices->self, RELM_ID_LEN) != 0 &&
		    emit_state_req(fx, env->devices->ids[d]) == 0)
			asked = 1;
	if (asked)
		rel->repair_ms = now;
}

void relm__tick_pcopies(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx)
{
	uint64_t now = relm__now(env);

	for (uint32_t i = 0; i < rel->npcopies; ) {
		struct relm_pcopy *pc = &rel->pcopies[i];
		if (pc->t_ms + env->params.pending_ttl_ms <= now) {
			pcopy_remove(rel, i);
			continue;
		}
		if (pc->t_ms + env->params.repair_after_ms <= now && ask_due(rel, env) &&
		    emit_state_req(fx, pc->from) == 0)
			rel->repair_ms = now;
		i++;
	}
	ask_for_pending(rel, env, fx);
}

uint64_t relm__pcopies_deadline(const struct relm_rel *rel, const struct relm_env *env)
{
	uint64_t d = 0, t = pending_oldest(rel, env);

	if (t && relm__now(env) < t + RELM__PENDING_ASK(env))
		d = t + RELM__PENDING_ASK(env);   /* when the oldest pending envelope asks */

	for (uint32_t i = 0; i < rel->npcopies; i++) {
		const struct relm_pcopy *pc = &rel->pcopies[i];
		uint64_t ask = pc->t_ms + env->params.repair_after_ms;
		if (rel->repair_ms && ask < rel->repair_ms + env->params.repair_gap_ms)
			ask = rel->repair_ms + env->params.repair_gap_ms;
		if (ask > pc->t_ms + env->params.pending_ttl_ms)
			ask = pc->t_ms + env->params.pending_ttl_ms;
		if (!d || ask < d)
			d = ask;
	}
	return d;
}

/* ---- a sibling's copy in ------------------------------------------------------ */

/* The acknowledgements a sibling's receipt answered for us leave our due
 * list (ACK_DEL first, so that nothing changes if it fails). */
static int suppress_acks(struct relm_rel *rel, const struct relm_env *env,
                         const struct relm_payload *p, struct relm_effects *fx)
{
	uint32_t keep = 0;
	int rc;

	/* the store's rows too, even those not loaded (it ignores the others) */
	if (p->nacks && (rc = relm__emit_acks(fx, RELM_FX_ACK_DEL, p->acks, (uint32_t)p->nacks)) != 0)
		return rc;
	for (uint32_t i = 0; i < rel->nacks_due; i++) {
		int covered = 0;
		for (size_t k = 0; k < p->nacks && !covered; k++)
			covered = memcmp(rel->acks_due[i].id, p->acks[k].id, RELM_ID_LEN) == 0 &&
			          memcmp(rel->acks_due[i].dh, p->acks[k].dh, RELM_KEY_LEN) == 0 &&
			          rel->acks_due[i].n == p->acks[k].n;
		if (!covered)
			rel->acks_due[keep++] = rel->acks_due[i];
	}
	if (keep == rel->nacks_due)
		return 0;
	sodium_memzero(&rel->acks_due[keep], (rel->nacks_due - keep) * sizeof rel->acks_due[0]);
	rel->nacks_due = keep;
	if (keep == 0 && !rel->acks_partial && !rel->acks_more) {
		rel->receipt_due_ms = 0;       /* the batch is answered */
	} else if (keep > 0) {
		/* what is left is a new batch, ranked afresh */
		memcpy(rel->batch_first, rel->acks_due[0].id, RELM_ID_LEN);
		rel->receipt_due_ms = relm__now(env) +
			relm__random_between(env, env->params.receipt_delay_min_ms,
			                     env->params.receipt_delay_max_ms) +
			(uint64_t)relm__receipt_rank(rel, env, rel->batch_first) *
			env->params.receipt_stagger_ms;
	}
	return 0;
}

/* A sibling's message: history (origin sibling) and a retransmission
 * record that this device acts on only after the takeover time. */
int relm__record_sibling(struct relm_rel *rel, const struct relm_env *env,
                         const struct relm_payload *p, const uint8_t node[RELM_ID_LEN],
                         struct relm_effects *fx)
{
	const char *body = p->kind == RELM_KIND_HELLO ? p->mailbox : p->body;
	size_t blen = p->kind == RELM_KIND_HELLO ? (body ? strlen(body) : 0) : p->body_len;
	size_t mark = fx->n;
	uint64_t next = relm__now(env) + env->params.retx_takeover_ms;
	int o, rc;

	if (p->kind != RELM_KIND_TEXT && p->kind != RELM_KIND_HEAL &&
	    p->kind != RELM_KIND_IDENTITY && p->kind != RELM_KIND_HELLO)
		return 0;                      /* we never send other kinds */
	/* a request this device made is done: the sender's copy is here
	 * (devices.md §11.5); the caller drops the row if it has one */
	if (p->kind == RELM_KIND_TEXT) {
		struct relm_fx *f = relm__fx_push(fx, RELM_FX_REQ_DEL);
		if (!f)
			return RELM_ENOMEM;
		memcpy(f->msg_id, p->id, RELM_ID_LEN);
	}
	if (!relm__is_dup(rel, env, p->id, fx) &&
	    (rc = relm__emit_deliver(fx, p, 0, RELM_ORIGIN_SIBLING)) != 0)
		return rc;
	if (acked_has(rel, p->id, NULL))   /* the remote receipted it already: */
		return relm__emit_status(fx, p->id, RELM_STATUS_DELIVERED, NULL);   /* before the copy came */
	if ((o = relm__find_outgoing(rel, p->id)) >= 0) {
		struct relm_outgoing *out = &rel->out[o], was = *out;
		if (!out->sibling)
			return 0;              /* ours (or taken over): we retransmit it */
		/* the sibling tried again: one more try of the message, and the
		 * takeover waits from now */
		out->next_ms = next;
		out->tries++;
		memcpy(out->last_node, node, RELM_ID_LEN);
		if ((rc = relm__emit_out_put(fx, out)) != 0) {
			*out = was;
			goto fail;
		}
		return 0;
	}
	if (rel->nout >= RELM_MAX_OUTGOING)
		return 0;                      /* the sender retransmits it; we only cannot take over */
	if ((rc = relm__outgoing_append(rel, p->id, p->kind, p->ts, body, blen, 1, next, node)) != 0)
		goto fail;
	rel->out[rel->nout - 1].sibling = 1;
	if ((rc = relm__emit_out_put(fx, &rel->out[rel->nout - 1])) != 0) {
		relm__outgoing_remove(rel, (int)rel->nout - 1);
		goto fail;
	}
	/* only the due records are loaded: the store may hold this one, and
	 * then the copy is one more try of it, not a first (ratchet.md §6.4) */
	fx->v[fx->n - 1].add_try = rel->out_partial;
	return 0;
fail:
	relm__fx_truncate(fx, mark);
	return rc;
}

int relm_rel_copy(struct relm_rel *rel, const struct relm_env *env,
                  const uint8_t from[RELM_ID_LEN], const uint8_t *buf, size_t len,
                  struct relm_effects *fx)
{
	struct relm_sib_msg m;
	struct relm_payload p;
	const struct relm_sib_copy *c = &m.u.copy;
	size_t mark = fx->n;
	int rc, have, par = -1, ask;

	memset(&p, 0, sizeof p);
	if (rel->mode != RELM_MODE_TREE)
		return RELM_EINVAL;
	if ((rc = relm_sib_decode(&m, buf, len)) != 0)
		return rc;
	if (m.type != RELM_SIB_COPY || memcmp(c->rel, rel->id, RELM_ID_LEN) != 0) {
		rc = RELM_EINVAL;
		goto out;
	}
	if ((rc = relm_payload_decode_json(&p, c->payload, c->payload_len)) != 0)
		goto out;
	have = relm_tree_find(&rel->tree, c->node);
	if ((c->flags & RELM_SIB_F_CREATED) && have < 0)
		par = relm_tree_find(&rel->tree, c->parent);

	/* a sibling builds on a branch this device deleted: its state has
	 * what we need (devices.md §5.6) */
	ask = have < 0 && ask_due(rel, env) &&
	      (was_pruned(rel, c->node) ||
	       ((c->flags & RELM_SIB_F_CREATED) && par < 0 && was_pruned(rel, c->parent)));

	/* ---- effects first (may fail; each undoes itself) ---- */
	if (ask && (rc = emit_state_req(fx, from)) != 0)
		goto fail;
	if (p.kind == RELM_KIND_RECEIPT) {
		if ((rc = suppress_acks(rel, env, &p, fx)) != 0)
			goto fail;
	} else if ((rc = relm__record_sibling(rel, env, &p, c->node, fx)) != 0) {
		goto fail;
	}

	/* ---- commit (cannot fail) ---- */
	if (ask)
		rel->repair_ms = relm__now(env);
	if (have >= 0) {
		relm__chain_advance(&rel->tree.nodes[have], c->n + 1);
	} else if (c->flags & RELM_SIB_F_CREATED) {
		if (par < 0 || place_node(rel, env, par, c->pub, c->priv, c->pn, c->n, fx) < 0)
			pcopy_add(rel, env, from, c);
	}
	if (p.kind == RELM_KIND_HEAL && (c->flags & RELM_SIB_F_CREATED))
		relm__heal_sibling(rel, c->node);
	relm__rel_changed(rel, env, fx);
	rc = 0;
	goto out;
fail:
	relm__fx_truncate(fx, mark);
out:
	relm_payload_clear(&p);
	sodium_memzero(&m, sizeof m);
	return rc;
}

/* ---- payloads a sibling accepted ---------------------------------------------- */

int relm_rel_carry(struct relm_rel *rel, const struct relm_env *env,
                   const uint8_t *buf, size_t len, struct relm_effects *fx)
{
	struct relm_sib_msg m;
	const uint8_t *pl;
	size_t it = 0, plen, mark = fx->n;
	int rc;

	if ((rc = relm_sib_decode(&m, buf, len)) != 0)
		return rc;
	if (m.type != RELM_SIB_CARRY || memcmp(m.u.carry.rel, rel->id, RELM_ID_LEN) != 0)
		return RELM_EINVAL;
	while (relm_sib_carry_next(&m.u.carry, &it, &pl, &plen)) {
		struct relm_payload p;
		if ((rc = relm_payload_decode_json(&p, pl, plen)) != 0)
			goto fail;
		if (p.kind != RELM_KIND_RECEIPT && !relm__is_dup(rel, env, p.id, fx))
			rc = relm__emit_deliver(fx, &p, 1, RELM_ORIGIN_REMOTE);
		relm_payload_clear(&p);
		if (rc != 0)
			goto fail;
	}
	/* commit: the ids join the ring that de-duplicates what the remote
	 * sends again — so a statement of the remote's roll is judged here,
	 * now (revocation.md §3.2): this device's own read of its envelope
	 * will be a duplicate */
	for (size_t i = mark, n = fx->n; i < n; i++) {
		struct relm_payload p;
		if (fx->v[i].type != RELM_FX_DELIVER)
			continue;
		relm__note_recent(rel, fx->v[i].msg_id);
		if (fx->v[i].kind != RELM_KIND_IDENTITY)
			continue;
		memset(&p, 0, sizeof p);
		p.kind = RELM_KIND_IDENTITY;
		p.body = (char *)fx->v[i].data;  /* owned by fx: stays put if fx->v grows */
		p.body_len = fx->v[i].len;
		relm__identity_received(rel, &p, fx);
	}
	return 0;
fail:
	relm__fx_truncate(fx, mark);
	return rc;
}

/* ---- repair: merging a sibling's state ------------------------------------------ */

/* Add other's node o under our node `parent`.  Ours nodes are taken as
 * the sibling holds them (the sending chain is shared); theirs nodes are
 * derived afresh when we hold the parent's private key — this device reads
 * every envelope itself, from counter 0 — else taken as they are. */
static int merge_node(struct relm_rel *rel, int parent, const struct relm_node *o)
{
	const struct relm_node *par = &rel->tree.nodes[parent];
	struct relm_node nd = *o;
	uint8_t dh[RELM_KEY_LEN];
	int rc;

	if (rel->tree.count >= RELM_MAX_NODES)
		return RELM_ELIMIT;
	nd.flags &= (uint8_t)~RELM_NODE_OWN;
	if (!(o->flags & RELM_NODE_OURS) && (par->flags & RELM_NODE_PRIV) &&
	    relm_dh(dh, par->priv, o->pub) == 0) {
		relm_kdf_rk(nd.rk, nd.ck, par->rk, dh);
		nd.n = 0;
		sodium_memzero(dh, sizeof dh);
	}
	rc = relm_tree_add(&rel->tree, &nd);
	sodium_memzero(&nd, sizeof nd);
	return rc;
}

int relm_rel_merge(struct relm_rel *rel, const struct relm_env *env,
                   const struct relm_rel *other, struct relm_effects *fx)
{
	int progress = 1, rc;

	if (memcmp(rel->id, other->id, RELM_ID_LEN) != 0 || rel->mode != RELM_MODE_TREE ||
	    other->mode != RELM_MODE_TREE)
		return RELM_EINVAL;
	/* the remote's pin (the only part that can fail: first) */
	if ((rc = relm__identity_merge(rel, other, fx)) != 0)
		return rc;
	/* nodes both hold: acknowledgements and sending counters */
	for (uint32_t i = 0; i < other->tree.count; i++) {
		const struct relm_node *o = &other->tree.nodes[i];
		int k = relm_tree_find(&rel->tree, o->id);
		if (k < 0)
			continue;
		rel->tree.nodes[k].flags |= (uint8_t)(o->flags & RELM_NODE_ACKED);
		if ((o->flags & RELM_NODE_OURS) && (o->flags & RELM_NODE_CHAIN) &&
		    o->n > rel->tree.nodes[k].n) {
			memcpy(rel->tree.nodes[k].ck, o->ck, RELM_KEY_LEN);
			rel->tree.nodes[k].n = o->n;
		}
	}
	/* nodes only the sibling holds, each once its parent is here */
	while (progress) {
		progress = 0;
		for (uint32_t i = 0; i < other->tree.count; i++) {
			const struct relm_node *o = &other->tree.nodes[i];
			int par;
			if (relm_tree_find(&rel->tree, o->id) >= 0 ||
			    (par = relm_tree_find(&rel->tree, o->parent)) < 0)
				continue;
			if (merge_node(rel, par, o) < 0)
				break;                 /* the tree is full: take what fits */
			progress = 1;
		}
	}
	/* the heal and the clone rule's watch, against the merged tree */
	relm__revoke_merge(rel, env, other);
	relm__rel_changed(rel, env, fx);
	return 0;
}

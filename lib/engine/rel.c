/*
 * rel.c — the relationship engine step (proto/ratchet.md §2–§6): send, receive, tick.
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

/* An event about this relationship (its other fields: the caller's). */
struct relm_fx *relm__emit_rel_event(struct relm_effects *fx, const struct relm_rel *rel, int type)
{
	struct relm_fx *f = relm__fx_push(fx, RELM_FX_EVENT);

	if (f) {
		relm_event_init(&f->ev, type);
		f->ev.has = RELM_EVF_REL;
		memcpy(f->ev.rel, rel->id, RELM_ID_LEN);
	}
	return f;
}

/* fork.detected: a second child was added under node. */
void relm__emit_fork(struct relm_effects *fx, const struct relm_rel *rel, const uint8_t node[RELM_ID_LEN])
{
	struct relm_fx *f = relm__emit_rel_event(fx, rel, RELM_EV_FORK_DETECTED);

	if (f) {
		memcpy(f->ev.node, node, RELM_ID_LEN);
		f->ev.has |= RELM_EVF_NODE;
	}
}

/* envelope.undecryptable: the envelope with this hash is given up, why. */
static void emit_undecryptable(struct relm_effects *fx, const struct relm_rel *rel,
                               const uint8_t hash[RELM_ID_LEN], int why)
{
	struct relm_fx *f = relm__emit_rel_event(fx, rel, RELM_EV_ENVELOPE_UNDECRYPTABLE);

	if (f) {
		memcpy(f->ev.envelope, hash, RELM_ID_LEN);
		f->ev.code = why;
		f->ev.has |= RELM_EVF_ENVELOPE | RELM_EVF_CODE;
	}
}

int relm__emit_status(struct relm_effects *fx, const uint8_t id[RELM_ID_LEN], int status,
                       const char *reason)
{
	struct relm_fx *f = relm__fx_push(fx, RELM_FX_STATUS);
	if (!f)
		return RELM_ENOMEM;
	memcpy(f->msg_id, id, RELM_ID_LEN);
	f->status = status;
	snprintf(f->detail, sizeof f->detail, "%s", reason ? reason : "");
	return 0;
}

int relm__emit_deliver(struct relm_effects *fx, const struct relm_payload *p, int in, int origin)
{
	struct relm_fx *f = relm__fx_push(fx, RELM_FX_DELIVER);
	const char *body = p->kind == RELM_KIND_UNKNOWN ? p->raw : p->body;
	size_t len = p->kind == RELM_KIND_UNKNOWN ? p->raw_len : p->body_len;

	if (!f)
		return RELM_ENOMEM;
	memcpy(f->msg_id, p->id, RELM_ID_LEN);
	f->kind = p->kind;
	f->ts = p->ts;
	f->direction_in = in;
	f->origin = origin;
	if (p->kind == RELM_KIND_UNKNOWN)
		snprintf(f->detail, sizeof f->detail, "%s", p->kind_str);
	f->data = malloc(len + 1);
	if (!f->data) {
		fx->n--;
		return RELM_ENOMEM;
	}
	if (len)
		memcpy(f->data, body, len);
	f->data[len] = 0;
	f->len = len;
	return 0;
}

/* ---- outgoing bookkeeping ------------------------------------------------ */

int relm__find_outgoing(const struct relm_rel *rel, const uint8_t id[RELM_ID_LEN])
{
	for (uint32_t i = 0; i < rel->nout; i++)
		if (memcmp(rel->out[i].id, id, RELM_ID_LEN) == 0)
			return (int)i;
	return -1;
}

void relm__outgoing_remove(struct relm_rel *rel, int i)
{
	struct relm_outgoing *o = &rel->out[i];
	if (o->body) {
		sodium_memzero(o->body, o->body_len);
		free(o->body);
	}
	rel->out[i] = rel->out[--rel->nout];
	memset(&rel->out[rel->nout], 0, sizeof rel->out[0]);
}

/* The store keeps the retransmission queue (struct relm_outgoing) as rows:
 * every change of a record is an effect. */
int relm__emit_out_put(struct relm_effects *fx, const struct relm_outgoing *o)
{
	struct relm_fx *f = relm__fx_push(fx, RELM_FX_OUT_PUT);
	if (!f)
		return RELM_ENOMEM;
	memcpy(f->msg_id, o->id, RELM_ID_LEN);
	f->kind = o->kind;
	f->ts = o->ts;
	f->tries = o->tries;
	f->next_ms = o->next_ms;
	memcpy(f->node, o->last_node, RELM_ID_LEN);
	f->sibling = o->sibling;
	if (!(f->data = malloc(o->body_len + 1))) {
		fx->n--;
		return RELM_ENOMEM;
	}
	memcpy(f->data, o->body, o->body_len);
	f->len = o->body_len;
	return 0;
}

int relm__emit_out_del(struct relm_effects *fx, const uint8_t id[RELM_ID_LEN])
{
	struct relm_fx *f = relm__fx_push(fx, RELM_FX_OUT_DEL);
	if (!f)
		return RELM_ENOMEM;
	memcpy(f->msg_id, id, RELM_ID_LEN);
	return 0;
}

int relm__seen_recent(const struct relm_rel *rel, const uint8_t id[RELM_ID_LEN])
{
	for (uint32_t i = 0; i < RELM_RECENT_IDS; i++)
		if (memcmp(rel->recent[i], id, RELM_ID_LEN) == 0)
			return 1;
	return 0;
}

void relm__note_recent(struct relm_rel *rel, const uint8_t id[RELM_ID_LEN])
{
	memcpy(rel->recent[rel->recent_next % RELM_RECENT_IDS], id, RELM_ID_LEN);
	rel->recent_next = (rel->recent_next + 1) % RELM_RECENT_IDS;
}

/* ---- sending ------------------------------------------------------------- */

uint64_t relm__backoff(const struct relm_env *env, uint32_t tries)
{
	uint64_t d = env->params.retx_base_ms;
	for (uint32_t i = 1; i < tries && d < env->params.retx_cap_ms; i++)
		d *= 2;
	return d < env->params.retx_cap_ms ? d : env->params.retx_cap_ms;
}

/*
 * Encrypt the padded plaintext pt for the remote and emit the POST (and,
 * with siblings, the copy).  Chooses the node by the fork rule (creating
 * an ours node if it must), commits the chain step only after the envelope
 * is complete.  *on receives the node id used.  kind and msg_id label the
 * effects.
 */
static int send_pt(struct relm_rel *rel, const struct relm_env *env,
                   const uint8_t *pt, size_t ptlen, int kind, const uint8_t msg_id[RELM_ID_LEN],
                   int automated, const uint8_t *prev_try, uint8_t on[RELM_ID_LEN],
                   struct relm_effects *fx)
{
	struct relm_node fresh, *node;
	uint8_t ck_next[RELM_KEY_LEN];
	uint8_t *envl = NULL;
	size_t envlen = 0;
	int idx, create = 0, rc;
	size_t mark = fx->n;
	struct relm_fx *f;

	memset(&fresh, 0, sizeof fresh);
	if (rel->mode == RELM_MODE_STRICT) {
		idx = relm__strict_dhs(rel);
		if (idx < 0 || !(rel->tree.nodes[idx].flags & RELM_NODE_CHAIN))
			return RELM_ENOSEND;
	} else {
		idx = relm_tree_pick(&rel->tree, automated & RELM__SEND_AUTOMATED, prev_try, &create);
		if (idx < 0)
			return RELM_ENOSEND;
		if ((automated & RELM__SEND_FRESH) && !create) {
			/* a heal: a new ours node under the theirs node the send
			 * would build on, whatever ours nodes it already has
			 * (proto/revocation.md §2) */
			idx = relm_tree_choose(&rel->tree);
			if (idx >= 0 && (rel->tree.nodes[idx].flags & RELM_NODE_OURS))
				idx = relm_tree_parent(&rel->tree, idx);
			if (idx < 0 || (rel->tree.nodes[idx].flags & RELM_NODE_OURS))
				return RELM_ENOSEND;
			create = 1;
		}
		if (create) {
			if (rel->tree.count >= RELM_MAX_NODES)
				return RELM_ELIMIT;
			if ((rc = relm__make_ours_node(rel, env, idx, &fresh)) != 0)
				return rc;
		}
	}
	node = create ? &fresh : &rel->tree.nodes[idx];
	if ((rc = relm__ratchet_seal(rel, env, node, pt, ptlen, &envl, &envlen, ck_next)) != 0)
		goto out;
	if (env->observe_sent)
		env->observe_sent(env->observe_ctx, envl, envlen, pt, ptlen);
	f = relm__fx_push(fx, RELM_FX_POST);
	if (!f) {
		rc = RELM_ENOMEM;
		goto out;
	}
	/* commit */
	f->data = envl;
	f->len = envlen;
	envl = NULL;
	f->kind = kind;
	memcpy(f->msg_id, msg_id, RELM_ID_LEN);
	snprintf(f->to, sizeof f->to, "%s",
	         rel->initial_pending && kind == RELM_KIND_HELLO ? rel->invite_mailbox
	                                                          : rel->remote_mailbox);
	if (relm__multi(rel, env) &&
	    (rc = relm__emit_copy(rel, create ? &fresh : NULL, node->id, node->n, pt, ptlen,
	                          kind, msg_id, fx)) != 0) {
		relm__fx_truncate(fx, mark);   /* the POST: nothing is committed yet */
		goto out;
	}
	if (create) {
		int parent = idx, kids;
		kids = relm_tree_children(&rel->tree, parent, NULL, NULL);
		idx = relm_tree_add(&rel->tree, &fresh);
		if (kids > 0) {
			rel->stats.forks++;
			relm__emit_fork(fx, rel, rel->tree.nodes[parent].id);
		}
		node = &rel->tree.nodes[idx];
	}
	memcpy(node->ck, ck_next, RELM_KEY_LEN);
	node->n++;
	if (on)
		memcpy(on, node->id, RELM_ID_LEN);
	rc = 0;
out:
	sodium_memzero(ck_next, sizeof ck_next);
	sodium_memzero(&fresh, sizeof fresh);
	free(envl);
	return rc;
}

/* Encode payload p and send it (send_pt). */
static int send_payload(struct relm_rel *rel, const struct relm_env *env,
                        const struct relm_payload *p, int automated,
                        const uint8_t *prev_try, uint8_t on[RELM_ID_LEN],
                        struct relm_effects *fx)
{
	uint8_t *pt = NULL;
	size_t ptlen = 0, ulen;
	int rc;

	if ((rc = relm_payload_encode(&pt, &ptlen, p)) != 0)
		return rc;
	/* Every payload must fit a sibling's copy too (devices.md §4.2),
	 * whatever the device count, so that what is sendable does not
	 * depend on it. */
	/* The padding is our own encoder's (0x80 then zeros), so its length
	 * is found from the end; sodium_unpad's constant-time scan of the
	 * whole block cost as much as the rest of the check. */
	ulen = ptlen;
	while (ulen > 0 && pt[ulen - 1] == 0)
		ulen--;
	if (ulen == 0 || pt[--ulen] != 0x80 || ulen > RELM_COPY_PAYLOAD_MAX)
		rc = RELM_ETOOBIG;
	else
		rc = send_pt(rel, env, pt, ptlen, p->kind, p->id, automated, prev_try, on, fx);
	relm_payload_buf_free(pt, ptlen);
	return rc;
}

int relm_rel_send_sibling(struct relm_rel *rel, const struct relm_env *env,
                          const uint8_t *frame, size_t len, struct relm_effects *fx)
{
	uint8_t id[RELM_ID_LEN], *pt;
	size_t cap = 1 + RELM_ID_LEN + len + RELM_PAD_BLOCK, ptlen = 0;
	int rc;

	if (!rel->sibling_session || len == 0 || len > RELM_SIBLING_MAX)
		return RELM_EINVAL;
	if (!(pt = malloc(cap)))
		return RELM_ENOMEM;
	relm__random(env, id, RELM_ID_LEN);
	pt[0] = 0x00;                      /* not JSON: a sibling frame (devices.md §4.1) */
	memcpy(pt + 1, id, RELM_ID_LEN);
	memcpy(pt + 1 + RELM_ID_LEN, frame, len);
	if (sodium_pad(&ptlen, pt, 1 + RELM_ID_LEN + len, RELM_PAD_BLOCK, cap) != 0)
		rc = RELM_ETOOBIG;
	else
		rc = send_pt(rel, env, pt, ptlen, RELM_KIND_UNKNOWN, id, 1, NULL, NULL, fx);
	sodium_memzero(pt, cap);
	free(pt);
	return rc;
}

static void payload_of_outgoing(struct relm_payload *p, const struct relm_outgoing *o)
{
	memset(p, 0, sizeof *p);
	memcpy(p->id, o->id, RELM_ID_LEN);
	p->kind = (enum relm_kind)o->kind;
	snprintf(p->kind_str, sizeof p->kind_str, "%s", relm_kind_name(p->kind));
	p->ts = o->ts;
	if (p->kind == RELM_KIND_HELLO) {
		p->mailbox = o->body;
	} else {
		p->body = o->body;
		p->body_len = o->body_len;
	}
}

int relm__outgoing_append(struct relm_rel *rel, const uint8_t id[RELM_ID_LEN], int kind,
                           uint64_t ts, const char *body, size_t len, uint32_t tries,
                           uint64_t next_ms, const uint8_t last_node[RELM_ID_LEN]);

/* A new message's record.  Its id is new: relm_rel_send refused a caller's
 * id already queued, and the others are fresh random ids — so no linear
 * search of the queue per send (it made a long unreceipted stream
 * quadratic). */
static int outgoing_add(struct relm_rel *rel, const struct relm_env *env,
                        const uint8_t id[RELM_ID_LEN], enum relm_kind kind, uint64_t ts,
                        const char *body, size_t len, const uint8_t on[RELM_ID_LEN])
{
	if (len > RELM_BODY_MAX)
		return RELM_ETOOBIG;
	return relm__outgoing_append(rel, id, kind, ts, body, len, 1, relm__now(env) + relm__backoff(env, 1), on);
}

/* Send p non-automated and track it for retransmission until a receipt;
 * body/len is what a retry rebuilds the payload from.  On failure nothing
 * changed and no effect is left. */
int relm__rel_send_tracked(struct relm_rel *rel, const struct relm_env *env,
                           const struct relm_payload *p, const char *body, size_t len,
                           int fresh, uint8_t on[RELM_ID_LEN], struct relm_effects *fx)
{
	size_t mark = fx->n;
	int rc;

	if ((rc = send_payload(rel, env, p, fresh ? RELM__SEND_FRESH : 0, NULL, on, fx)) != 0)
		goto fail;
	if ((rc = outgoing_add(rel, env, p->id, p->kind, p->ts, body, len, on)) != 0)
		goto fail;
	if ((rc = relm__emit_out_put(fx, &rel->out[rel->nout - 1])) != 0 ||
	    (rc = relm__emit_deliver(fx, p, 0, RELM_ORIGIN_SELF)) != 0 ||
	    (rc = relm__emit_status(fx, p->id, RELM_STATUS_QUEUED, NULL)) != 0) {
		relm__outgoing_remove(rel, relm__find_outgoing(rel, p->id));
		goto fail;
	}
	return 0;
fail:
	/* Out of memory after the chain advanced: the envelope goes with the
	 * effects, and that message key is simply never used. */
	relm__fx_truncate(fx, mark);
	return rc;
}

int relm_rel_send(struct relm_rel *rel, const struct relm_env *env,
                  const char *body, size_t body_len, const uint8_t *id,
                  uint8_t id_out[RELM_ID_LEN], struct relm_effects *fx)
{
	struct relm_payload p;
	uint8_t on[RELM_ID_LEN];
	int rc;

	/* under leader or fanout only the holder sends: the others make a
	 * request (rel_strategy.h) */
	if (!body || !relm__sends(rel, env))
		return RELM_EINVAL;
	if (body_len > RELM_BODY_MAX)
		return RELM_ETOOBIG;
	if (id && relm__find_outgoing(rel, id) >= 0) {
		memcpy(id_out, id, RELM_ID_LEN);
		return RELM_EEXIST;
	}
	if (rel->nout >= RELM_MAX_OUTGOING)
		return RELM_ELIMIT;
	memset(&p, 0, sizeof p);
	if (id)
		memcpy(p.id, id, RELM_ID_LEN);
	else
		relm__random(env, p.id, RELM_ID_LEN);
	p.kind = RELM_KIND_TEXT;
	snprintf(p.kind_str, sizeof p.kind_str, "text");
	p.ts = relm__now(env);
	p.body = (char *)(uintptr_t)body;
	p.body_len = body_len;
	if ((rc = relm__rel_send_tracked(rel, env, &p, body, body_len, 0, on, fx)) != 0)
		return rc;
	memcpy(id_out, p.id, RELM_ID_LEN);
	return 0;
}

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

static int send_receipts(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx)
{
	while (rel->nacks_due > 0) {
		struct relm_payload p;
		uint32_t k = rel->nacks_due < RELM_MAX_ACKS ? rel->nacks_due : RELM_MAX_ACKS;
		size_t mark = fx->n;
		int rc;

		memset(&p, 0, sizeof p);
		relm__random(env, p.id, RELM_ID_LEN);
		p.kind = RELM_KIND_RECEIPT;
		snprintf(p.kind_str, sizeof p.kind_str, "receipt");
		p.ts = relm__now(env);
		p.acks = rel->acks_due;
		p.nacks = k;
		/* the rows go in the same transaction as the receipt */
		if ((rc = relm__emit_acks(fx, RELM_FX_ACK_DEL, rel->acks_due, k)) != 0)
			return rc;
		if ((rc = send_payload(rel, env, &p, 1, NULL, NULL, fx)) != 0 ||
		    (relm__multi(rel, env) && (rc = relm__emit_carry(rel, env, rel->acks_due, k, fx)) != 0)) {
			relm__fx_truncate(fx, mark);
			return rc;
		}
		memmove(rel->acks_due, rel->acks_due + k, (rel->nacks_due - k) * sizeof *rel->acks_due);
		rel->nacks_due -= k;
	}
	rel->receipt_due_ms = 0;
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

static void pending_remove(struct relm_rel *rel, uint32_t i)
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
				emit_undecryptable(fx, rel, pe.hash, rc);
			}
			struct relm_fx *f = relm__fx_push(fx, RELM_FX_PENDING_DEL);
			if (f)
				memcpy(f->hash, pe.hash, RELM_ID_LEN);
			/* receive_one may have changed the array: find it again */
			for (uint32_t k = 0; k < rel->npending; k++)
				if (memcmp(rel->pending[k].hash, pe.hash, RELM_ID_LEN) == 0) {
					pending_remove(rel, k);
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
			emit_undecryptable(fx, rel, rel->pending[0].hash, RELM_EPENDING_FULL);
			pending_remove(rel, 0);
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

/* ---- timers ------------------------------------------------------------- */

int relm_rel_tick(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx)
{
	uint64_t now = relm__now(env);
	int rc = 0, sends = relm__sends(rel, env), asks = !sends && relm__holder_elsewhere(rel, env);

	/* acks_partial: the caller has not loaded the stored ones; sending only
	 * some and disarming the timer would strand the rest.  The timer stays
	 * due, so the next tick (which loads them) sends everything.  A device
	 * that does not send (leader, fanout: devices.md §11.3) keeps its due
	 * receipts, retransmissions and heal for when it does. */
	if (sends && rel->receipt_due_ms && now >= rel->receipt_due_ms && !rel->acks_partial)
		if ((rc = send_receipts(rel, env, fx)) != 0 && rc != RELM_ENOSEND)
			return rc;
	/* A non-holder drops what it owes once its timer fires: the holder
	 * reads every envelope too and owes the same acknowledgements (one
	 * it never sends is asked again by the remote's retransmission). */
	if (asks && rel->receipt_due_ms && now >= rel->receipt_due_ms && !rel->acks_partial) {
		if ((rc = relm__emit_acks(fx, RELM_FX_ACK_DEL, rel->acks_due, rel->nacks_due)) != 0)
			return rc;
		rel->nacks_due = 0;
		rel->receipt_due_ms = 0;
	}
	for (uint32_t i = 0; (sends || asks) && i < rel->nout; ) {
		struct relm_outgoing *o = &rel->out[i];
		struct relm_payload p;
		uint8_t on[RELM_ID_LEN];
		char reason[96];

		if (o->next_ms > now) {
			i++;
			continue;
		}
		/* Tries are counted across siblings (a copy of each retry is one,
		 * rel_sibling.c), and the message's age bounds them all: a sibling
		 * that takes over never starts a new round (ratchet.md §6.4). */
		if (o->tries >= env->params.retx_max_tries)
			snprintf(reason, sizeof reason, "no receipt after %u tries", o->tries);
		else if (now > o->ts && now - o->ts >= (uint64_t)RELM_RETX_MAX_AGE_MS)
			snprintf(reason, sizeof reason, "no receipt within %u h of sending",
			         (unsigned)(RELM_RETX_MAX_AGE_MS / 3600000));
		else
			reason[0] = '\0';
		if (!reason[0]) {
			/* A sibling's message left without a receipt past the
			 * takeover time: this device retransmits it from now on
			 * (devices.md §5.3). */
			o->sibling = 0;
			payload_of_outgoing(&p, o);
			/* a non-holder asks the holder to send it again (§11.3) */
			rc = sends ? send_payload(rel, env, &p, 0, o->last_node, on, fx)
			           : relm__request_again(rel, env, &p, fx);
			if (rc == RELM_ENOMEM)
				return rc;
			/* one that cannot be sent (a damaged body, a tree that is
			 * full) fails now, rather than stop every timer of the
			 * relationship at each tick for ever */
			if (rc != 0 && rc != RELM_ENOSEND)
				snprintf(reason, sizeof reason, "cannot be sent: %s", relm_errname(rc));
		}
		if (reason[0]) {
			relm__emit_status(fx, o->id, RELM_STATUS_FAILED, reason);
			relm__emit_out_del(fx, o->id);
			relm__outgoing_remove(rel, (int)i);
			continue;
		}
		o->tries++;
		o->next_ms = now + relm__backoff(env, o->tries);
		if (rc == 0 && sends) {
			memcpy(o->last_node, on, RELM_ID_LEN);
			rel->stats.retx++;
		}
		if ((rc = relm__emit_out_put(fx, o)) != 0)
			return rc;
		i++;
	}
	relm__tick_pcopies(rel, env, fx);
	if (sends && (rc = relm__heal_tick(rel, env, fx)) != 0)
		return rc;
	relm__clone_tick(rel, env, fx);
	/* expiry: pending envelopes and skipped keys */
	for (uint32_t i = 0; i < rel->npending; ) {
		if (rel->pending[i].t_ms + env->params.pending_ttl_ms <= now) {
			struct relm_fx *f = relm__fx_push(fx, RELM_FX_PENDING_DEL);
			if (f)
				memcpy(f->hash, rel->pending[i].hash, RELM_ID_LEN);
			emit_undecryptable(fx, rel, rel->pending[i].hash, RELM_EPENDING_EXPIRED);
			pending_remove(rel, i);
		} else {
			i++;
		}
	}
	for (uint32_t i = 0; i < rel->nskipped; ) {
		uint64_t ttl = rel->skipped[i].used ? env->params.used_key_ttl_ms
		                                    : env->params.skipped_ttl_ms;
		if (rel->skipped[i].t_ms + ttl <= now) {
			sodium_memzero(&rel->skipped[i], sizeof rel->skipped[i]);
			rel->skipped[i] = rel->skipped[--rel->nskipped];
			sodium_memzero(&rel->skipped[rel->nskipped], sizeof rel->skipped[0]);
		} else {
			i++;
		}
	}
	return 0;
}

uint64_t relm_rel_deadline(const struct relm_rel *rel, const struct relm_env *env)
{
	int sends = relm__sends(rel, env), acts = sends || relm__holder_elsewhere(rel, env);
	uint64_t d = acts ? rel->receipt_due_ms : 0;
#define MIN_D(x) do { uint64_t v_ = (x); if (v_ && (!d || v_ < d)) d = v_; } while (0)
	for (uint32_t i = 0; acts && i < rel->nout; i++)
		MIN_D(rel->out[i].next_ms);
	for (uint32_t i = 0; i < rel->npending; i++)
		MIN_D(rel->pending[i].t_ms + env->params.pending_ttl_ms);
	for (uint32_t i = 0; i < rel->nskipped; i++)
		MIN_D(rel->skipped[i].t_ms + (rel->skipped[i].used ? env->params.used_key_ttl_ms
		                                                    : env->params.skipped_ttl_ms));
	MIN_D(relm__pcopies_deadline(rel, env));
	if (sends)
		MIN_D(relm__heal_deadline(rel));
	MIN_D(relm__clone_deadline(rel, env));
#undef MIN_D
	return d;
}

int relm_rel_chosen(const struct relm_rel *rel)
{
	if (rel->mode == RELM_MODE_STRICT)
		return relm__strict_dhs(rel);
	return relm_tree_choose(&rel->tree);
}

void relm_rel_free(struct relm_rel *rel)
{
	if (!rel)
		return;
	while (rel->nout)
		relm__outgoing_remove(rel, 0);
	free(rel->out);
	while (rel->npending)
		pending_remove(rel, rel->npending - 1);
	free(rel->pending);
	if (rel->skipped) {
		sodium_memzero(rel->skipped, rel->capskipped * sizeof *rel->skipped);
		free(rel->skipped);
	}
	free(rel->acks_due);
	/* Plain heap, wiped: a relationship lives for one engine step in relmd
	 * (loaded, stepped, saved, freed), so sodium_malloc's guard pages and
	 * mlock — several system calls per message — buy little here. */
	sodium_memzero(rel, sizeof *rel);
	free(rel);
}

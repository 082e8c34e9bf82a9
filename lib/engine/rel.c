/*
 * rel.c — the relationship engine step (proto/ratchet.md §2–§6): the
 * effects it emits, the outgoing queue, sending, and the timers
 * (rel_receive.c has receipts and receiving).
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
void relm__emit_undecryptable(struct relm_effects *fx, const struct relm_rel *rel,
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
		} else if (!create && !(automated & RELM__SEND_AUTOMATED)) {
			idx = relm__heal_steer(rel, idx, kind, prev_try != NULL);
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
int relm__send_payload(struct relm_rel *rel, const struct relm_env *env,
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

	if ((rc = relm__send_payload(rel, env, p, fresh ? RELM__SEND_FRESH : 0, NULL, on, fx)) != 0)
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
	p.ts = relm__now(env);
	if (id)
		memcpy(p.id, id, RELM_ID_LEN);
	else
		relm__new_id(env, p.ts, p.id);
	p.kind = RELM_KIND_TEXT;
	snprintf(p.kind_str, sizeof p.kind_str, "text");
	p.body = (char *)(uintptr_t)body;
	p.body_len = body_len;
	if ((rc = relm__rel_send_tracked(rel, env, &p, body, body_len, 0, on, fx)) != 0)
		return rc;
	memcpy(id_out, p.id, RELM_ID_LEN);
	return 0;
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
		if ((rc = relm__send_receipts(rel, env, fx)) != 0 && rc != RELM_ENOSEND)
			return rc;
	/* A non-holder drops what it owes once its timer fires: the holder
	 * reads every envelope too and owes the same acknowledgements (one
	 * it never sends is asked again by the remote's retransmission). */
	if (asks && rel->receipt_due_ms && now >= rel->receipt_due_ms && !rel->acks_partial) {
		if ((rc = relm__emit_acks(fx, RELM_FX_ACK_DEL, rel->acks_due, rel->nacks_due)) != 0)
			return rc;
		rel->nacks_due = 0;
		if (!rel->acks_more)
			rel->receipt_due_ms = 0;   /* else the next tick drops the rest */
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
			rc = sends ? relm__send_payload(rel, env, &p, 0, o->last_node, on, fx)
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
			relm__emit_undecryptable(fx, rel, rel->pending[i].hash, RELM_EPENDING_EXPIRED);
			relm__pending_remove(rel, i);
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
		relm__pending_remove(rel, rel->npending - 1);
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

/*
 * durability.c — the durability rule: every state change is one engine
 * step inside one store step, and nothing leaves before it commits.
 *
 *     begin ── load (one row + its pending rows) ── engine step ──
 *     apply effects ── save state (+ deadline) ── [cursor] ── commit
 *                 └──────────── any error: rollback ────────────┘
 *
 * The new state, the outbox rows the step produced, its history rows and
 * events, and the mailbox cursor advance are written in that one
 * transaction (proto/store.md); the daemon posts outbox rows only after the
 * commit returned.  A step that fails rolls back whole: the file holds the
 * state before it, and the relationship in memory is thrown away.
 *
 * The relationship is decoded fresh for each step and freed (wiped) after:
 * nothing secret outlives the call, and a failed step cannot leave an
 * in-memory state ahead of the file.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sodium.h>
#include "core/core_int.h"
#include "engine/rel_strategy.h"
#include "core/apply.h"
#include "error.h"

/* ---- loading and saving a relationship ------------------------------- */

static int pending_cb(void *ctx, const uint8_t hash[RELM_ID_LEN], const uint8_t *bytes,
                      size_t len, uint64_t received_ms)
{
	(void)hash;
	return relm_rel_pending_load(ctx, bytes, len, received_ms);
}

int relm__core_load(struct relm_core *c, const uint8_t id[RELM_ID_LEN], struct relm_rel **out)
{
	struct relm_store_rel r;
	struct relm_rel *rel = NULL;
	int rc;

	memset(&r, 0, sizeof r);
	if ((rc = relm_store_rel_get(c->st, id, &r, RELM_STORE_WITH_STATE)) != 0)
		return rc;
	/* the step sees its proton's devices as the circle held says */
	if ((rc = relm__core_devices_load(c, r.proton)) != 0) {
		relm_store_rel_clear(&r);
		return rc;
	}
	if (r.state_len == 0) {
		/* held without state (a fanout non-hub, devices.md §11.4): the
		 * steps that need none see the view of a requester of the hub */
		relm_store_rel_clear(&r);
		return relm__core_stateless_view(c, id);
	}
	rc = relm_rel_decode(&rel, r.state, r.state_len);
	relm_store_rel_clear(&r);
	if (rc != 0)
		return rc == RELM_ENOMEM ? rc : RELM_ESTATE;
	if ((rc = relm_store_pending_list(c->st, id, pending_cb, rel)) != 0) {
		relm_rel_free(rel);
		return rc;
	}
	/* The retransmission queue stays in the store; relm_core_tick loads
	 * what is due.  Receipts for the rest still reach the store.  So do
	 * the acknowledgements waiting for the receipt timer: load_acks. */
	rel->out_partial = 1;
	rel->acks_partial = 1;
	*out = rel;
	return 0;
}

/* The stored acknowledgements, the first one step's receipts carry: the
 * rest wait in the store (acks_more), read by the next slice.  Reading all
 * of them at every slice read ~N²/1,024 rows for a batch of N. */
struct acks_load {
	struct relm_rel *rel;
	uint32_t n;
};

enum { ACKS_ENOUGH = 1 };   /* ack_cb's stop: not an error */

static int ack_cb(void *ctx, const uint8_t id[RELM_ID_LEN], const uint8_t dh[RELM_KEY_LEN],
                  uint32_t n)
{
	struct acks_load *l = ctx;
	int rc;

	if (l->n == (uint32_t)RELM_RECEIPTS_PER_STEP * RELM_MAX_ACKS) {
		l->rel->acks_more = 1;
		return ACKS_ENOUGH;
	}
	if ((rc = relm_rel_ack_load(l->rel, id, dh, n)) == 0)
		l->n++;
	return rc;
}

/* Before a tick: when the receipt is due, the acknowledgements it owes
 * come back from the store, as many as one step sends (relm_rel_tick
 * sends none while acks_partial is set, and the timer stays armed; with
 * acks_more it stays due after this step's receipts). */
static int load_acks(struct relm_core *c, struct relm_rel *rel)
{
	struct acks_load l = { rel, 0 };
	int rc;

	if (!rel->acks_partial || !rel->receipt_due_ms || rel->receipt_due_ms > relm__core_now(c))
		return 0;
	rel->acks_more = 0;
	if ((rc = relm_store_ack_list(c->st, rel->id, ack_cb, &l)) != 0 && rc != ACKS_ENOUGH)
		return rc;
	rel->acks_partial = 0;
	return 0;
}

static int due_out_cb(void *ctx, const struct relm_store_outgoing *o)
{
	return relm_rel_outgoing_load(ctx, o->id, o->kind, o->ts, (const char *)o->body,
	                              o->body_len, o->tries, o->next_ms, o->last_node);
}

int relm__core_save(struct relm_core *c, struct relm_rel *rel)
{
	uint8_t *blob = NULL;
	size_t len = 0;
	int rc;

	uint64_t deadline, out_next = 0;

	if (rel->out_unsaved) {
		/* a v1 blob carried the queue: it moves to the store now */
		for (uint32_t i = 0; i < rel->nout; i++) {
			const struct relm_outgoing *o = &rel->out[i];
			struct relm_store_outgoing so;
			memset(&so, 0, sizeof so);
			memcpy(so.rel, rel->id, RELM_ID_LEN);
			memcpy(so.id, o->id, RELM_ID_LEN);
			so.kind = o->kind;
			so.ts = o->ts;
			so.body = (const uint8_t *)o->body;
			so.body_len = o->body_len;
			so.tries = o->tries;
			so.next_ms = o->next_ms;
			memcpy(so.last_node, o->last_node, RELM_ID_LEN);
			if ((rc = relm_store_outgoing_put(c->st, &so)) != 0)
				return rc;
		}
		rel->out_unsaved = 0;
	}
	if (rel->acks_unsaved) {
		/* a v1–v3 blob carried the acknowledgements: they move too */
		for (uint32_t i = 0; i < rel->nacks_due; i++)
			if ((rc = relm_store_ack_put(c->st, rel->id, rel->acks_due[i].id,
			                             rel->acks_due[i].dh, rel->acks_due[i].n)) != 0)
				return rc;
		rel->acks_unsaved = 0;
	}
	if ((rc = relm_rel_encode(rel, &blob, &len)) != 0)
		return rc;
	rc = relm_store_rel_set_state(c->st, rel->id, blob, len, relm__core_now(c));
	relm_rel_blob_free(blob, len);
	if (rc == 0)
		rc = relm_store_outgoing_next(c->st, rel->id, &out_next);
	deadline = relm_rel_deadline(rel, c->env);
	if (out_next && (!deadline || out_next < deadline))
		deadline = out_next;
	if (rc == 0)
		rc = relm_store_rel_set_deadline(c->st, rel->id, deadline);
	return rc;
}

int relm__core_finish(struct relm_core *c, int rc)
{
	if (rc == 0)
		return relm_store_commit(c->st);
	relm_store_rollback(c->st);
	return rc;
}

/* ---- messages ------------------------------------------------------------ */

int relm_core_message_send(struct relm_core *c, const uint8_t rel_id[RELM_ID_LEN],
                           const char *body, size_t len, const uint8_t *id,
                           uint8_t id_out[RELM_ID_LEN], int *was_new)
{
	struct relm_effects fx;
	struct relm_rel *rel = NULL;
	int rc;

	relm_effects_init(&fx);
	*was_new = 0;
	if (id && relm_store_history_has(c->st, rel_id, id) > 0) {
		memcpy(id_out, id, RELM_ID_LEN);   /* idempotent: already sent */
		return 0;
	}
	if ((rc = relm_store_begin(c->st)) != 0)
		return rc;
	{
		uint64_t outstanding = 0;
		if ((rc = relm_store_outgoing_count(c->st, rel_id, &outstanding)) != 0)
			goto done;
		if (outstanding >= RELM_MAX_OUTGOING) {
			rc = RELM_ELIMIT;     /* the remote is not receipting: back off */
			goto done;
		}
	}
	if ((rc = relm__core_load(c, rel_id, &rel)) == RELM_ENOSTATE) {
		/* no state here: the hub sends it (devices.md §11.4) */
		if ((rc = relm__core_writable(c, c->devs_proton)) == 0 &&
		    (rc = relm_request_make(c->env, rel_id, body, len, id, id_out, &fx)) == 0)
			rc = relm__core_apply_id(c, rel_id, &fx);
		if (rc == 0)
			*was_new = 1;
		rc = rc == RELM_EEXIST ? 0 : rc;
		goto done;
	}
	if (rc != 0)
		goto done;
	if (rel->sibling_session) {
		rc = RELM_ENOTFOUND;         /* not a relationship of the proton */
		goto done;
	}
	if ((rc = relm__core_writable(c, c->devs_proton)) != 0)
		goto done;                   /* this device was removed (revocation.md §1) */
	/* a device that does not send asks the one that does (devices.md §11.5) */
	if (relm_strategy_sends(c->env))
		rc = relm_rel_send(rel, c->env, body, len, id, id_out, &fx);
	else
		rc = relm_request_make(c->env, rel_id, body, len, id, id_out, &fx);
	if (rc == RELM_EEXIST) {
		rc = 0;
		goto done;
	}
	if (rc == 0)
		rc = relm__core_step_apply(c, rel, &fx);
	if (rc == 0)
		rc = relm__core_save(c, rel);
	if (rc == 0)
		*was_new = 1;
done:
	rc = relm__core_finish(c, rc);
	relm_effects_clear(&fx);
	relm_rel_free(rel);
	return rc;
}

/* ---- envelopes from our mailboxes ---------------------------------------- */

/* envelope.undecryptable for bytes refused at (mailbox, seq): why, and the
 * relationship when the mailbox is one's. */
int relm__core_report_bad(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN], uint64_t seq,
                          const uint8_t *rel, const uint8_t *buf, size_t len, int why)
{
	struct relm_event ev;

	relm_event_init(&ev, RELM_EV_ENVELOPE_UNDECRYPTABLE);
	ev.has = RELM_EVF_MAILBOX | RELM_EVF_MBOX_SEQ | RELM_EVF_ENVELOPE | RELM_EVF_CODE;
	memcpy(ev.mailbox, mailbox, RELM_SIGN_PK_LEN);
	ev.mailbox_seq = seq;
	crypto_generichash(ev.envelope, RELM_ID_LEN, buf, len, NULL, 0);
	ev.code = why;
	if (rel) {
		memcpy(ev.rel, rel, RELM_ID_LEN);
		ev.has |= RELM_EVF_REL;
	}
	return relm_store_event_append(c->st, &ev, relm__core_now(c), NULL);
}

/* The envelope could not be used, for a reason that retrying will not fix. */
static int is_final(int rc)
{
	switch (rc) {
	case RELM_ENOMEM: case RELM_ESTORE: case RELM_EDISKFULL: case RELM_ECORRUPT: case RELM_EBUSY:
		return 0;              /* the store or memory failed: retry on redelivery */
	case RELM_EBADROW:
		return 0;              /* our own row is damaged, not these bytes: kept for after a repair */
	default:
		return rc <= -1000;    /* a protocol verdict on these bytes */
	}
}

int relm__core_receive_on(struct relm_core *c, const uint8_t rel_id[RELM_ID_LEN],
                          const uint8_t *buf, size_t len)
{
	struct relm_effects fx;
	struct relm_rel *rel = NULL;
	int rc;

	relm_effects_init(&fx);
	if ((rc = relm__core_load(c, rel_id, &rel)) != 0) {
		rc = relm__no_state_ok(rc);      /* held without state: the hub reads it */
		goto out;
	}
	rc = relm_rel_receive(rel, c->env, buf, len, &fx);
	if (rc == 0 || rc == RELM_EDUP || rc == RELM_EPENDING) {
		int r2 = relm__core_step_apply(c, rel, &fx);
		if (r2 == 0)
			r2 = relm__core_save(c, rel);
		/* what a sibling session's frames asked of it, on it */
		if (r2 == 0)
			r2 = relm__core_flush_deferred(c);
		if (r2 != 0)
			rc = r2;
		else
			rc = 0;
	}
out:
	relm_effects_clear(&fx);
	relm_rel_free(rel);
	return rc;
}

int relm_core_envelope(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                       uint64_t seq, const uint8_t *buf, size_t len)
{
	return relm_core_envelope_at(c, mailbox, seq, buf, len, 0);
}

int relm_core_envelope_at(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                          uint64_t seq, const uint8_t *buf, size_t len, uint64_t arrived_ms)
{
	uint8_t rel_id[RELM_ID_LEN], proton[RELM_ID_LEN];
	uint64_t cursor = 0;
	uint32_t spk_id = 0;
	int rc, have_rel = 0;

	if ((rc = relm_store_begin(c->st)) != 0)
		return rc;
	if ((rc = relm_store_cursor_get(c->st, mailbox, &cursor)) != 0)
		goto done;
	if (seq <= cursor)
		goto done;                       /* redelivered: already processed */
	if ((have_rel = relm_store_rel_by_mailbox(c->st, mailbox, rel_id) == 0))
		rc = relm__core_receive_on(c, rel_id, buf, len);
	else if (relm_store_invite_by_mailbox(c->st, mailbox, proton, &spk_id) == 0)
		rc = relm__core_open_initial(c, proton, spk_id, buf, len, arrived_ms);
	else if (relm_store_device_keys_by_mailbox(c->st, mailbox, proton) == 0)
		rc = relm__core_device_initial(c, proton, buf, len);
	else if (relm_store_pairing_by_mailbox(c->st, mailbox, proton) == 0)
		rc = relm__core_pair_envelope(c, proton, mailbox, seq, buf, len);   /* proton: the pairing's id */
	else
		rc = RELM_ENOTFOUND;
	if (rc != 0 && is_final(rc)) {
		/* Bad bytes are bad forever: report, and move past them. */
		int why = rc;
		relm_store_rollback(c->st);
		if ((rc = relm_store_begin(c->st)) != 0)
			return rc;
		rc = relm__core_report_bad(c, mailbox, seq, have_rel ? rel_id : NULL, buf, len, why);
	}
	if (rc == 0)
		rc = relm_store_cursor_set(c->st, mailbox, seq);
done:
	return relm__core_finish(c, rc);
}

/* ---- timers ---------------------------------------------------------------- */

/* relm_store_rel_due callback: collect the due relationship ids (ctx a
 * struct relm__ids). */
static int due_cb(void *ctx, const uint8_t id[RELM_ID_LEN])
{
	return relm__ids_push(ctx, id);
}

/* A relationship whose row fails its check (reported by the store) cannot
 * step; its timers are stopped (deadline 0) so that it is not due at every
 * tick, and the others go on.  A repaired row is stepped again by its next
 * envelope or send. */
static int park(struct relm_core *c, const uint8_t id[RELM_ID_LEN])
{
	int rc;

	if ((rc = relm_store_begin(c->st)) != 0)
		return rc;
	return relm__core_finish(c, relm_store_rel_set_deadline(c->st, id, 0));
}

int relm_core_tick(struct relm_core *c, uint64_t *next)
{
	struct relm__ids d = { 0 };
	size_t posts = 0;
	int rc;

	if ((rc = relm_store_rel_due(c->st, relm__core_now(c), 256, due_cb, &d)) != 0)
		goto out;
	for (size_t i = 0; i < d.n; i++) {
		struct relm_effects fx;
		struct relm_rel *rel = NULL;

		relm_effects_init(&fx);
		if ((rc = relm_store_begin(c->st)) != 0)
			goto out;
		rc = relm__core_load(c, d.v[i], &rel);
		if (rc == RELM_ENOSTATE) {       /* held without state: no timers */
			if ((rc = relm__core_finish(c, relm_store_rel_set_deadline(c->st, d.v[i], 0))) != 0)
				goto out;
			continue;
		}
		if (rc == 0 && !rel->sibling_session && (rc = relm__core_removed(c, c->devs_proton)) == 1) {
			/* this device was removed (proto/revocation.md §1): it sends
			 * nothing more for the proton — no receipt, retransmission
			 * or heal — and its timers stop */
			rc = relm__core_finish(c, relm_store_rel_set_deadline(c->st, d.v[i], 0));
			relm_rel_free(rel);
			if (rc != 0)
				goto out;
			continue;
		}
		/* in bounded slices: at most RELM_RETX_PER_STEP retransmissions
		 * and RELM_RECEIPTS_PER_STEP receipts a step; what is left stays
		 * due (the deadline saved below is already past) */
		if (rc == 0)
			rc = relm_store_outgoing_due(c->st, d.v[i], relm__core_now(c), RELM_RETX_PER_STEP, due_out_cb, rel);
		if (rc == 0)
			rc = load_acks(c, rel);
		if (rc == 0)
			rc = relm_rel_tick(rel, c->env, &fx);
		for (size_t k = 0; rc == 0 && k < fx.n; k++)
			posts += fx.v[k].type == RELM_FX_POST;
		if (rc == 0)
			rc = relm__core_step_apply(c, rel, &fx);
		if (rc == 0)
			rc = relm__core_save(c, rel);
		rc = relm__core_finish(c, rc);
		relm_effects_clear(&fx);
		relm_rel_free(rel);
		if (rc == RELM_EBADROW && (rc = park(c, d.v[i])) == 0)
			continue;
		if (rc != 0)
			goto out;
		/* many relationships due at once (timers of one burst): one loop
		 * turn posts at most about RELM_TICK_POSTS envelopes; the others
		 * are still due, so *next is now and the caller ticks again */
		if (posts >= RELM_TICK_POSTS)
			break;
	}
	if (next)
		rc = relm_store_next_deadline(c->st, next);
out:
	free(d.v);
	return rc;
}

/* One acknowledgement, inside the caller's step. */
static int outbox_done_in(struct relm_core *c, int64_t seq, const uint8_t msg_id[RELM_ID_LEN],
                          const uint8_t rel[RELM_ID_LEN], int has_msg, int refused)
{
	int rc = relm_store_outbox_mark_posted(c->st, seq, relm__core_now(c));

	if (rc == RELM_ENOTFOUND)
		return 0;   /* its relationship is gone, rows and all: a revoked
		             * device's session (revocation.md §1) */
	if (rc == 0 && has_msg) {
		struct relm_store_msg m;
		memset(&m, 0, sizeof m);
		/* Only a queued message of ours moves.  For POSTED that is the
		 * store's own rule for STATUS effects (relm_store_msg_advance),
		 * so no read first; a refusal also drops the retransmission row,
		 * which must stay for a message already posted (a refused retry). */
		if (!refused || (relm_store_msg_get(c->st, rel, msg_id, &m) == 0 && !m.direction_in &&
		                 m.status == RELM_STATUS_QUEUED)) {
			struct relm_effects fx;
			struct relm_fx *f;
			relm_effects_init(&fx);
			if ((f = relm__fx_push(&fx, RELM_FX_STATUS)) != NULL) {
				memcpy(f->msg_id, msg_id, RELM_ID_LEN);
				f->status = refused ? RELM_STATUS_FAILED : RELM_STATUS_POSTED;
				if (refused)
					snprintf(f->detail, sizeof f->detail, "the mailbox server refused it: %s",
					         relm_errname(refused));
				/* refused for good (too big, bad mailbox): retrying cannot help */
				if (refused && (f = relm__fx_push(&fx, RELM_FX_OUT_DEL)) != NULL)
					memcpy(f->msg_id, msg_id, RELM_ID_LEN);
				rc = f ? relm_core_apply(c->st, rel, NULL, &fx, relm__core_now(c)) : RELM_ENOMEM;
			} else {
				rc = RELM_ENOMEM;
			}
			relm_effects_clear(&fx);
		}
	}
	return rc;
}

static int outbox_done(struct relm_core *c, int64_t seq, const uint8_t msg_id[RELM_ID_LEN],
                       const uint8_t rel[RELM_ID_LEN], int has_msg, int refused)
{
	int rc;

	if ((rc = relm_store_begin(c->st)) != 0)
		return rc;
	return relm__core_finish(c, outbox_done_in(c, seq, msg_id, rel, has_msg, refused));
}

int relm_core_outbox_done_many(struct relm_core *c, const struct relm_core_ack *v, size_t n)
{
	int rc = 0;

	if (!n)
		return 0;
	if ((rc = relm_store_begin(c->st)) != 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = outbox_done_in(c, v[i].seq, v[i].msg, v[i].rel, v[i].has_msg,
		                    v[i].reason < 0 ? v[i].reason : 0);
	return relm__core_finish(c, rc);
}

int relm_core_outbox_posted(struct relm_core *c, int64_t seq, const uint8_t msg_id[RELM_ID_LEN],
                            const uint8_t rel[RELM_ID_LEN], int has_msg)
{
	return outbox_done(c, seq, msg_id, rel, has_msg, 0);
}

int relm_core_outbox_refused(struct relm_core *c, int64_t seq, const uint8_t msg_id[RELM_ID_LEN],
                             const uint8_t rel[RELM_ID_LEN], int has_msg, int reason)
{
	return outbox_done(c, seq, msg_id, rel, has_msg, reason ? reason : RELM_EPROTO);
}

int relm_core_rel_load(struct relm_core *c, const uint8_t rel[RELM_ID_LEN], struct relm_rel **out)
{
	return relm__core_load(c, rel, out);
}

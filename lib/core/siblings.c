/*
 * siblings.c — routing between the devices of one proton (proto/devices.md
 * §3–§5): sibling sessions made from device invites, the engine's copies
 * sent on them in the step that made them, and the sibling frames a
 * session delivers handed back to the engine.
 *
 * A sibling session is a relationship row in strict mode with the device
 * keys in place of identity keys (rel->sibling_session = 1), named in
 * sibling_sessions so that it is never listed as the proton's.  Its own
 * effects are applied as a relationship's are, except that it has no
 * history and raises no message events: DELIVER, STATUS and EVENT effects
 * of a session are dropped, SIBLING effects dispatched.
 *
 * Everything runs inside the caller's open store step: a relationship
 * step, its copies on every session, the sessions' posts and the sibling's
 * reading of them commit together or not at all (the durability rule).
 *
 * state_req, state and circle frames are handled in sibling_state.c, the
 * bulk state's rel, history, invites and synced in bulk.c.  A
 * frame that fails to decode, or that the engine or the circle rule
 * refuses, is reported (sibling.refused) and passed over: nothing of it is
 * kept, and the session's later frames are still read.
 *
 * A frame for the session being stepped (an answer to the frame it
 * delivered) waits until that step has saved the session: sending on it
 * from inside the step would advance a ratchet the step then overwrites.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "core/core_int.h"
#include "engine/rel_strategy.h"
#include "core/apply.h"
#include "crypto/crypto.h"
#include "wire/circle.h"
#include "wire/bundle.h"
#include "wire/envelope.h"
#include "wire/sibling.h"
#include "wire/sib_identity.h"
#include "error.h"

/* The row of a new session (strict, no label; proton's). */
static int session_store(struct relm_core *c, struct relm_rel *rel, const uint8_t proton[RELM_ID_LEN],
                         const uint8_t device[RELM_ID_LEN])
{
	struct relm_store_rel sr;
	uint8_t *blob = NULL;
	size_t blen = 0;
	int rc;

	rel->sibling_session = 1;
	if ((rc = relm_rel_encode(rel, &blob, &blen)) != 0)
		return rc;
	memset(&sr, 0, sizeof sr);
	memcpy(sr.id, rel->id, RELM_ID_LEN);
	memcpy(sr.proton, proton, RELM_ID_LEN);
	memcpy(sr.remote_ipk, rel->ipk_remote, RELM_SIGN_PK_LEN);
	sr.mode = rel->mode;
	memcpy(sr.mailbox_id, rel->mbox_pk, RELM_SIGN_PK_LEN);
	sr.created = sr.last_activity = relm__core_now(c);
	sr.state = blob;
	sr.state_len = blen;
	rc = relm_store_rel_put(c->st, &sr);
	if (rc == 0)
		rc = relm_store_sibling_session_put(c->st, rel->id, proton, device);
	if (rc == 0)
		rc = relm_store_rel_set_deadline(c->st, rel->id, relm_rel_deadline(rel, c->env));
	/* the session's own mailbox, which the sibling posts to from its
	 * second envelope on: no event announces it (relm_core_mailboxes_changed) */
	if (rc == 0)
		c->mailboxes_new = 1;
	sr.state = NULL;
	relm_store_rel_clear(&sr);
	relm_rel_blob_free(blob, blen);
	return rc;
}

/* A session's own effects: what goes to the store as for any relationship
 * (posts, timers), minus history and message events; sibling frames to
 * dispatch. */
static int session_effects(struct relm_core *c, const struct relm_rel *rel, struct relm_effects *fx);

int relm__core_step_apply(struct relm_core *c, const struct relm_rel *rel, struct relm_effects *fx)
{
	int rc;

	if (rel->sibling_session) {
		uint8_t was[RELM_ID_LEN];
		int was_busy = c->busy;
		memcpy(was, c->busy_sess, RELM_ID_LEN);
		memcpy(c->busy_sess, rel->id, RELM_ID_LEN);
		c->busy = 1;
		rc = session_effects(c, rel, fx);
		memcpy(c->busy_sess, was, RELM_ID_LEN);
		c->busy = was_busy;
		return rc;
	}
	/* the fanout hub's history to its siblings without state (§11.4) */
	if ((rc = relm_rel_fanout(rel, c->env, fx, 0)) != 0 ||
	    (rc = relm__core_route(c, rel->id, fx)) != 0 || (rc = relm__core_pin_follow(c, rel, fx)) != 0)
		return rc;
	return relm_core_apply(c->st, rel->id, rel->remote_mailbox, fx, relm__core_now(c));
}

/* ---- opening a session (the device that must send: devices.md §3) ------- */

static int open_session(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                        const uint8_t device[RELM_ID_LEN], uint8_t sess[RELM_ID_LEN])
{
	struct relm_circle *circ = NULL;
	struct relm_store_device self;
	struct relm_effects fx;
	struct relm_rel *rel = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t epoch = 0;
	int rc, i;

	memset(&self, 0, sizeof self);
	relm_effects_init(&fx);
	if ((rc = relm_store_circle_get(c->st, proton, &epoch, &buf, &len)) != 0)
		goto out;
	if (!(circ = malloc(sizeof *circ))) {
		rc = RELM_ENOMEM;
		goto out;
	}
	if ((rc = relm_circle_decode(circ, buf, len)) != 0)
		goto out;
	if ((i = relm_circle_find(circ, device)) < 0) {
		rc = RELM_ESTATE;             /* a device row the circle held does not name */
		goto out;
	}
	if ((rc = relm_store_device_get_self(c->st, proton, &self)) != 0)
		goto out;
	if (!self.has_sk) {
		rc = RELM_ESTATE;
		goto out;
	}
	if ((rc = relm_rel_accept(&rel, c->env, RELM_MODE_STRICT, self.sk, &circ->dev[i].invite,
	                          c->mailbox_host, &fx)) != 0)
		goto out;
	if ((rc = session_store(c, rel, proton, device)) != 0)
		goto out;
	if ((rc = session_effects(c, rel, &fx)) != 0)
		goto out;
	memcpy(sess, rel->id, RELM_ID_LEN);
out:
	relm_effects_clear(&fx);
	relm_rel_free(rel);
	relm_store_device_clear(&self);
	free(circ);
	free(buf);
	return rc;
}

int relm__core_session_initial(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                               const uint8_t device[RELM_ID_LEN], const uint8_t *buf, size_t len)
{
	struct relm_invite_secrets sec;
	struct relm_store_device self;
	struct relm_store_device_keys k;
	struct relm_store_rel sr;
	struct relm_envelope e;
	struct relm_effects fx;
	struct relm_rel *rel = NULL;
	uint8_t rel_id[RELM_ID_LEN];
	int rc;

	memset(&sec, 0, sizeof sec);
	memset(&self, 0, sizeof self);
	memset(&k, 0, sizeof k);
	relm_effects_init(&fx);
	if ((rc = relm_envelope_decode(&e, buf, len)) != 0)
		return rc;
	if ((rc = relm_store_device_get_self(c->st, proton, &self)) != 0)
		goto out;
	/* a retransmitted hello belongs to the session it made */
	relm_rel_id(rel_id, self.pk, e.ext.ipk, e.ext.ek);
	if (relm_store_rel_get(c->st, rel_id, &sr, 0) == 0) {
		relm_store_rel_clear(&sr);
		rc = relm__core_receive_on(c, rel_id, buf, len);
		goto out;
	}
	if ((rc = relm_store_device_keys_get(c->st, proton, &k)) != 0)
		goto out;
	if (!self.has_sk) {
		rc = RELM_ESTATE;
		goto out;
	}
	memcpy(sec.ipk_sk, self.sk, RELM_SIGN_SK_LEN);
	memcpy(sec.spk_priv, k.spk_priv, RELM_KEY_LEN);
	memcpy(sec.mailbox_host, c->mailbox_host, sizeof sec.mailbox_host);
	if ((rc = relm_rel_open_initial(&rel, c->env, RELM_MODE_STRICT, &sec, buf, len, &fx)) != 0)
		goto out;
	if ((rc = session_store(c, rel, proton, device)) != 0)
		goto out;
	if ((rc = relm__core_step_apply(c, rel, &fx)) == 0)
		rc = relm__core_flush_deferred(c);
out:
	relm_effects_clear(&fx);
	relm_rel_free(rel);
	relm_store_device_clear(&self);
	relm_store_device_keys_clear(&k);
	sodium_memzero(&sec, sizeof sec);
	return rc;
}

/* ---- sending on a session ---------------------------------------------- */

static int defer_frame(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                       const uint8_t device[RELM_ID_LEN], const uint8_t *frame, size_t len)
{
	struct relm__deferred *d;

	if (c->ndefer == c->capdefer) {
		size_t cap = c->capdefer ? 2 * c->capdefer : 4;
		void *v = realloc(c->defer, cap * sizeof *c->defer);
		if (!v)
			return RELM_ENOMEM;
		c->defer = v;
		c->capdefer = cap;
	}
	d = &c->defer[c->ndefer];
	if (!(d->buf = malloc(len)))
		return RELM_ENOMEM;
	memcpy(d->buf, frame, len);
	d->len = len;
	memcpy(d->proton, proton, RELM_ID_LEN);
	memcpy(d->device, device, RELM_ID_LEN);
	c->ndefer++;
	return 0;
}

static void drop_deferred(struct relm_core *c)
{
	for (size_t i = 0; i < c->ndefer; i++)
		relm_sib_buf_free(c->defer[i].buf, c->defer[i].len);
	c->ndefer = 0;
}

int relm__core_flush_deferred(struct relm_core *c)
{
	int rc = 0;

	/* sending may defer nothing more: no session is being stepped now */
	for (size_t i = 0; i < c->ndefer && rc == 0; i++)
		rc = relm__core_send_frame(c, c->defer[i].proton, c->defer[i].device,
		                           c->defer[i].buf, c->defer[i].len);
	drop_deferred(c);
	return rc;
}

void relm__core_siblings_free(struct relm_core *c)
{
	if (c->bundling) {
		c->bundling = 0;
		relm_store_set_hooks(c->st, NULL, NULL);
	}
	relm__core_held_free(c);
	drop_deferred(c);
	free(c->defer);
	for (int i = 0; i < RELM__XFERS; i++)
		if (c->xfers[i].buf)
			relm_sib_buf_free(c->xfers[i].buf, c->xfers[i].total);
	sodium_memzero(c->xfers, sizeof c->xfers);
	for (int i = 0; i < RELM__VIEWS; i++)
		free(c->views[i].heard);
}

int relm__core_send_frame(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                          const uint8_t device[RELM_ID_LEN], const uint8_t *frame, size_t len)
{
	struct relm_effects fx;
	struct relm_rel *sess = NULL;
	uint8_t sid[RELM_ID_LEN];
	int rc;

	if ((rc = relm__core_hold(c, proton, device, frame, len)) != 0)
		return rc < 0 ? rc : 0;      /* held for the batch's bundle */
	relm_effects_init(&fx);
	rc = relm_store_sibling_session_find(c->st, proton, device, sid);
	if (rc == 0 && c->busy && memcmp(sid, c->busy_sess, RELM_ID_LEN) == 0)
		return defer_frame(c, proton, device, frame, len);
	if (rc == RELM_ENOTFOUND)
		rc = open_session(c, proton, device, sid);
	if (rc == 0)
		rc = relm__core_load(c, sid, &sess);
	if (rc == 0)
		rc = relm_rel_send_sibling(sess, c->env, frame, len, &fx);
	if (rc == 0)
		rc = session_effects(c, sess, &fx);
	if (rc == 0)
		rc = relm__core_save(c, sess);
	relm_effects_clear(&fx);
	relm_rel_free(sess);
	return rc;
}

int relm__core_route(struct relm_core *c, const uint8_t rel_id[RELM_ID_LEN], struct relm_effects *fx)
{
	struct relm_devices ds;
	uint8_t proton[RELM_ID_LEN];
	int rc = 0;

	/* the relationship's devices: nested steps on sessions reload c->devs */
	ds = c->devs;
	memcpy(proton, c->devs_proton, RELM_ID_LEN);
	for (size_t i = 0; i < fx->n && rc == 0; i++) {
		struct relm_fx *f = &fx->v[i];
		if (f->type == RELM_FX_COPY) {
			for (uint32_t d = 0; d < ds.count && rc == 0; d++)
				if (memcmp(ds.ids[d], ds.self, RELM_ID_LEN) != 0)
					rc = relm__core_send_frame(c, proton, ds.ids[d], f->data, f->len);
		} else if (f->type == RELM_FX_SIB_TO) {
			rc = relm__core_send_frame(c, proton, f->dev, f->data, f->len);
		} else if (f->type == RELM_FX_STATE_REQ) {
			uint8_t *req = NULL;
			size_t rlen = 0;
			if ((rc = relm_sib_state_req_encode(&req, &rlen, rel_id)) == 0)
				rc = relm__core_send_frame(c, proton, f->dev, req, rlen);
			relm_sib_buf_free(req, rlen);
		} else {
			continue;
		}
		f->type = RELM_FX_NONE;      /* routed: relm_core_apply refuses the unrouted */
	}
	return rc;
}

/* ---- receiving on a session --------------------------------------------- */

/* The relationship the frames of one session message are being applied
 * to: a bundle's copies of one relationship are applied to one decoded
 * state, saved once when the run ends (run_end), not once per copy. */
struct copy_run {
	uint8_t rel_id[RELM_ID_LEN];
	struct relm_rel *rel;         /* NULL: no run */
};

/* End the run: its state saved (save != 0) and freed. */
static int run_end(struct relm_core *c, struct copy_run *run, int save)
{
	int rc = 0;

	if (run->rel && save)
		rc = relm__core_save(c, run->rel);
	relm_rel_free(run->rel);
	run->rel = NULL;
	return rc;
}

/* A copy or carry of relationship rel from sibling device (same proton). */
static int dispatch_copy(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                         const uint8_t device[RELM_ID_LEN], const uint8_t rel_id[RELM_ID_LEN],
                         const uint8_t *buf, size_t len, int carry, struct copy_run *run)
{
	struct relm_store_rel r;
	struct relm_effects fx;
	int rc;

	if (!run->rel || memcmp(run->rel_id, rel_id, RELM_ID_LEN) != 0) {
		struct relm_rel *rel = NULL;
		if ((rc = run_end(c, run, 1)) != 0)
			return rc;
		/* a sibling speaks only of its own proton's relationships */
		if ((rc = relm_store_rel_get(c->st, rel_id, &r, 0)) != 0)
			return rc;
		rc = sodium_memcmp(r.proton, proton, RELM_ID_LEN) == 0 ? 0 : RELM_EAUTH;
		relm_store_rel_clear(&r);
		if (rc == 0)
			rc = relm__core_load(c, rel_id, &rel);
		if (rc == 0 && rel->sibling_session)
			rc = RELM_EAUTH;
		if (rc != 0) {
			/* held without state (fanout): its nodes come back with
			 * the states asked for when it holds it again (fanout.c) */
			relm_rel_free(rel);
			return relm__no_state_ok(rc);
		}
		run->rel = rel;
		memcpy(run->rel_id, rel_id, RELM_ID_LEN);
	}
	/* a copy refused leaves the state as it was (rel.h): the run goes on */
	relm_effects_init(&fx);
	rc = carry ? relm_rel_carry(run->rel, c->env, buf, len, &fx)
	           : relm_rel_copy(run->rel, c->env, device, buf, len, &fx);
	if (rc == 0)
		rc = relm__core_step_apply(c, run->rel, &fx);
	relm_effects_clear(&fx);
	return rc;
}

int relm__core_sib_refusal(int rc)
{
	switch (rc) {
	case RELM_ENOTFOUND: case RELM_EAUTH: case RELM_EMALFORMED: case RELM_EINVAL:
	case RELM_ETRUNCATED: case RELM_ETOOBIG: case RELM_EVERSION: case RELM_EBADKEY:
	case RELM_EBADSIG:
		return 1;
	default:
		return 0;
	}
}

/* sibling.refused: a frame of session sess from device was passed over. */
static int report_refused(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                          const uint8_t device[RELM_ID_LEN], const uint8_t sess[RELM_ID_LEN], int why)
{
	struct relm_event ev;

	relm_event_init(&ev, RELM_EV_SIBLING_REFUSED);
	ev.has |= RELM_EVF_PROTON | RELM_EVF_DEVICE | RELM_EVF_REL | RELM_EVF_CODE;
	memcpy(ev.proton, proton, RELM_ID_LEN);
	memcpy(ev.device, device, RELM_ID_LEN);
	memcpy(ev.rel, sess, RELM_ID_LEN);
	ev.code = why;
	return relm_store_event_append(c->st, &ev, relm__core_now(c), NULL);
}

static int dispatch_one(struct relm_core *c, const uint8_t sess[RELM_ID_LEN],
                        const uint8_t proton[RELM_ID_LEN], const uint8_t device[RELM_ID_LEN],
                        const uint8_t *data, size_t len, struct copy_run *run)
{
	struct relm_sib_msg m;
	int rc;

	if ((rc = relm_sib_decode(&m, data, len)) != 0)
		return report_refused(c, proton, device, sess, rc);
	/* anything but a copy reads the store as it is: the run is saved first */
	if (m.type != RELM_SIB_COPY && m.type != RELM_SIB_CARRY && (rc = run_end(c, run, 1)) != 0) {
		sodium_memzero(&m, sizeof m);
		return rc;
	}
	switch (m.type) {
	case RELM_SIB_IDENTITY:
		rc = relm__core_sib_identity(c, proton, device, data, len);
		break;
	case RELM_SIB_COPY:
		rc = dispatch_copy(c, proton, device, m.u.copy.rel, data, len, 0, run);
		break;
	case RELM_SIB_CARRY:
		rc = dispatch_copy(c, proton, device, m.u.carry.rel, data, len, 1, run);
		break;
	case RELM_SIB_STATE_REQ:
		rc = relm__core_sib_state_req(c, proton, device, m.u.state_req.rel);
		break;
	case RELM_SIB_STATE:
		rc = relm__core_sib_state(c, proton, device, &m.u.state);
		break;
	case RELM_SIB_CIRCLE:
		rc = relm__core_sib_circle(c, proton, device, m.u.circle.buf, m.u.circle.len);
		break;
	case RELM_SIB_REL:
		rc = relm__core_bulk_rel(c, proton, device, &m.u.rel);
		break;
	case RELM_SIB_HISTORY:
		rc = relm__core_bulk_history(c, proton, &m.u.history);
		break;
	case RELM_SIB_INVITES:
		rc = relm__core_bulk_invites(c, proton, &m.u.invites);
		break;
	case RELM_SIB_SYNCED:
		rc = relm__core_bulk_synced(c, proton, device, &m.u.synced);
		break;
	case RELM_SIB_STRATEGY:
		rc = relm__core_sib_strategy(c, proton, device, data, len);
		break;
	case RELM_SIB_REQUEST:
		rc = relm__core_sib_request(c, proton, data, len);
		break;
	case RELM_SIB_DELIVER:
		rc = relm__core_sib_deliver(c, proton, device, data, len);
		break;
	default:
		rc = 0;                      /* unknown types: a newer sibling's */
		break;
	}
	sodium_memzero(&m, sizeof m);
	/* A frame refused (bad, or of a relationship this device does not
	 * hold) cannot become good by retrying, and the session's later
	 * frames must still be read: reported, passed over. */
	if (relm__core_sib_refusal(rc))
		rc = report_refused(c, proton, device, sess, rc);
	return rc;
}

/* A frame a session delivered: one sibling message, or a bundle of them
 * (§4.5), each handled as if it had come alone, in order. */
static int dispatch(struct relm_core *c, const uint8_t sess[RELM_ID_LEN], const struct relm_fx *f)
{
	uint8_t proton[RELM_ID_LEN], device[RELM_ID_LEN];
	struct copy_run run = { .rel = NULL };
	const uint8_t *m;
	size_t off = 0, mlen;
	int rc;

	if ((rc = relm_store_sibling_session_get(c->st, sess, proton, device)) != 0)
		return rc;
	if (f->len < 1 || f->data[0] != RELM_SIB_BUNDLE)
		rc = dispatch_one(c, sess, proton, device, f->data, f->len, &run);
	else if ((rc = relm_sib_bundle_check(f->data, f->len)) != 0)
		return report_refused(c, proton, device, sess, rc);
	else
		while (rc == 0 && relm_sib_bundle_next(f->data, f->len, &off, &m, &mlen))
			rc = dispatch_one(c, sess, proton, device, m, mlen, &run);
	/* a failure takes the whole step back: nothing of the run is saved */
	int end = run_end(c, &run, rc == 0);
	return rc ? rc : end;
}

static int session_effects(struct relm_core *c, const struct relm_rel *rel, struct relm_effects *fx)
{
	const uint8_t *sess = rel->id;
	int rc = 0;

	for (size_t i = 0; i < fx->n && rc == 0; i++) {
		struct relm_fx *f = &fx->v[i];
		switch (f->type) {
		case RELM_FX_DELIVER: case RELM_FX_STATUS: case RELM_FX_EVENT:
			f->type = RELM_FX_NONE;      /* no history, no message events */
			break;
		case RELM_FX_SIBLING:
			rc = dispatch(c, sess, f);
			f->type = RELM_FX_NONE;
			break;
		default:
			break;
		}
	}
	if (rc == 0)
		rc = relm_core_apply(c->st, sess, rel->remote_mailbox, fx, relm__core_now(c));
	return rc;
}

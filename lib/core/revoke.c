/*
 * revoke.c — revocation and the identity roll in lib/core
 * (proto/revocation.md): removing a device from a proton's circle, the
 * heal of every relationship, replacing the proton's identity key, and
 * what the other devices and the removed one do when they learn of it.
 *
 *   device_revoke    one store step: the circle without the device, signed
 *                    by the IPK and stored (rows follow: device.removed),
 *                    sent to the remaining siblings and, once, to the
 *                    removed device; its sibling sessions deleted; the
 *                    heal armed on every relationship of the proton
 *                    (relm_rel_heal_arm); with rotate_identity the roll
 *                    below in the same step.
 *   identity_rotate  one store step: a new IPK; each relationship sends a
 *                    successor statement (relm_rel_send_identity); the
 *                    proton row takes the new key pair; the circle is
 *                    re-signed by it at the next epoch and sent with the
 *                    new secret key to every remaining sibling (an
 *                    `identity` sibling message, wire/sib_identity.h).
 *   identity_accept  the person's choice after identity.conflict.
 *
 * Read-only is derived, not stored: a proton is read-only on this device
 * when the circle it holds does not name this device (a circle it
 * verified and accepted that removed it, sibling_state.c).  No schema
 * change, and it cannot disagree with the circle.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "core/core_int.h"
#include "crypto/crypto.h"
#include "wire/circle.h"
#include "wire/sib_identity.h"
#include "wire/sibling.h"
#include "wire/successor.h"
#include "wire/payload.h"
#include "error.h"

/* ---- read-only ------------------------------------------------------------ */

int relm__core_removed(struct relm_core *c, const uint8_t proton[RELM_ID_LEN])
{
	struct relm_store_device self;
	struct relm_circle *circ = NULL;
	uint8_t *buf = NULL, h[16];
	size_t len = 0;
	uint64_t epoch = 0;
	int rc;

	memset(&self, 0, sizeof self);
	rc = relm_store_circle_get(c->st, proton, &epoch, &buf, &len);
	if (rc == RELM_ENOTFOUND)
		return 0;                    /* no circle yet (a store before v8): never removed */
	if (rc != 0)
		return rc;
	crypto_generichash(h, sizeof h, buf, len, NULL, 0);
	if (c->ro_valid && !memcmp(c->ro_proton, proton, RELM_ID_LEN) && !memcmp(c->ro_hash, h, sizeof h)) {
		free(buf);
		return c->ro_removed;        /* the same circle as last time */
	}
	if (!(circ = malloc(sizeof *circ))) {
		rc = RELM_ENOMEM;
		goto out;
	}
	if ((rc = relm_circle_decode(circ, buf, len)) != 0 ||
	    (rc = relm_store_device_get_self(c->st, proton, &self)) != 0)
		goto out;
	rc = relm_circle_removed(circ, self.device);
	memcpy(c->ro_proton, proton, RELM_ID_LEN);
	memcpy(c->ro_hash, h, sizeof h);
	c->ro_removed = rc;
	c->ro_valid = 1;
out:
	relm_store_device_clear(&self);
	free(circ);
	free(buf);
	return rc;
}

int relm_core_proton_read_only(struct relm_core *c, const uint8_t proton[RELM_ID_LEN])
{
	return relm__core_removed(c, proton);
}

/* RELM_EREADONLY if this device was removed from proton's circle, else 0
 * (or a store error). */
int relm__core_writable(struct relm_core *c, const uint8_t proton[RELM_ID_LEN])
{
	int rc = relm__core_removed(c, proton);

	return rc == 1 ? RELM_EREADONLY : rc;
}

/* Inside the open step, before a change to proton's circle or keys: its
 * devices loaded, its circle made if it lacks one, this device in it. */
static int proton_ready(struct relm_core *c, const uint8_t proton[RELM_ID_LEN])
{
	int rc;

	if ((rc = relm__core_devices_load(c, proton)) != 0 ||
	    (rc = relm__core_circle_ensure(c, proton)) != 0)
		return rc;
	return relm__core_writable(c, proton);
}

/* ---- the relationships of a proton ------------------------------------------ */

static int rel_id_cb(void *ctx, const struct relm_store_rel *r)
{
	return relm__ids_push(ctx, r->id);
}

/* How many successor statements this side sent in relationship rel (its
 * history keeps each `identity` message it or a sibling sent): the next
 * roll's sequence is one more (proto/revocation.md §3.1: the key a
 * relationship was made with has sequence 0, whenever it was made). */
struct rolls {
	uint64_t n;
};

static int rolls_cb(void *ctx, const struct relm_store_msg *m)
{
	struct rolls *r = ctx;

	if (!m->direction_in && strcmp(m->kind, "identity") == 0)
		r->n++;
	return 0;
}

/* ---- the identity roll (§3) --------------------------------------------------- */

static int roll_rel(struct relm_core *c, const uint8_t rel_id[RELM_ID_LEN],
                    const uint8_t old_sk[RELM_SIGN_SK_LEN], const uint8_t new_sk[RELM_SIGN_SK_LEN])
{
	struct relm_effects fx;
	struct relm_rel *rel = NULL;
	struct relm_successor s;
	struct rolls r = { 0 };
	uint8_t stmt[RELM_SUCCESSOR_LEN], id[RELM_ID_LEN];
	int rc;

	relm_effects_init(&fx);
	if ((rc = relm_store_msg_list(c->st, rel_id, 0, 0, rolls_cb, &r)) != 0)
		return rc;
	if ((rc = relm_successor_sign(stmt, &s, old_sk, new_sk, r.n + 1)) != 0)
		return rc;
	if ((rc = relm__core_load(c, rel_id, &rel)) == 0 &&
	    (rc = relm_rel_send_identity(rel, c->env, stmt, sizeof stmt, id, &fx)) == 0 &&
	    (rc = relm__core_step_apply(c, rel, &fx)) == 0)
		rc = relm__core_save(c, rel);
	relm_effects_clear(&fx);
	relm_rel_free(rel);
	return rc;
}

static int rotated_event(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                         const uint8_t ipk[RELM_SIGN_PK_LEN])
{
	struct relm_event ev;

	relm_event_init(&ev, RELM_EV_IDENTITY_ROTATED);
	ev.has = RELM_EVF_PROTON | RELM_EVF_IPK;
	memcpy(ev.proton, proton, RELM_ID_LEN);
	memcpy(ev.ipk, ipk, RELM_SIGN_PK_LEN);
	return relm_store_event_append(c->st, &ev, relm__core_now(c), NULL);
}

/* The held circle of proton, decoded (malloc'd into *out). */
static int held_circle(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], struct relm_circle **out)
{
	struct relm_circle *circ = malloc(sizeof *circ);
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t epoch = 0;
	int rc;

	if (!circ)
		return RELM_ENOMEM;
	if ((rc = relm_store_circle_get(c->st, proton, &epoch, &buf, &len)) == 0 &&
	    relm_circle_decode(circ, buf, len) != 0)
		rc = RELM_ESTATE;            /* the held circle was verified when stored */
	free(buf);
	if (rc != 0) {
		free(circ);
		return rc;
	}
	*out = circ;
	return 0;
}

/* Inside the open step (c->devs loaded for proton, this device not
 * removed): the roll of core.h's relm_core_identity_rotate. */
static int identity_rotate(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                           uint8_t ipk_out[RELM_SIGN_PK_LEN])
{
	struct relm_store_proton p;
	struct relm__ids ids = { 0 };
	struct relm_circle *circ = NULL;
	struct relm_successor s;
	uint8_t seed[32], npk[RELM_SIGN_PK_LEN], nsk[RELM_SIGN_SK_LEN];
	uint8_t stmt[RELM_SUCCESSOR_LEN], *out = NULL, *frame = NULL;
	size_t flen = 0;
	int rc, n;

	memset(&p, 0, sizeof p);
	if ((rc = relm_store_proton_get(c->st, proton, &p, RELM_STORE_WITH_SECRETS)) != 0)
		goto out;
	relm__random(c->env, seed, sizeof seed);
	relm_sign_keypair_from_seed(npk, nsk, seed);
	/* every relationship is told, each with its own sequence */
	if ((rc = relm_store_rel_list(c->st, proton, NULL, 0, rel_id_cb, &ids)) != 0)
		goto out;
	for (size_t i = 0; i < ids.n && rc == 0; i++)
		rc = roll_rel(c, ids.v[i], p.isk, nsk);
	if (rc != 0 || (rc = relm_store_proton_set_identity(c->st, proton, npk, nsk)) != 0)
		goto out;
	/* the circle, re-signed by the new key at the next epoch */
	if ((rc = held_circle(c, proton, &circ)) != 0)
		goto out;
	if (!(out = malloc(RELM_CIRCLE_MAX))) {
		rc = RELM_ENOMEM;
		goto out;
	}
	memcpy(circ->ipk, npk, RELM_SIGN_PK_LEN);
	circ->epoch++;
	if ((n = relm_circle_sign(out, RELM_CIRCLE_MAX, circ, nsk)) < 0) {
		rc = n;
		goto out;
	}
	if ((rc = relm_store_circle_put(c->st, proton, circ->epoch, out, (size_t)n)) != 0 ||
	    (rc = relm_successor_sign(stmt, &s, p.isk, nsk, 1)) != 0 ||
	    (rc = relm_sib_identity_encode(&frame, &flen, nsk, stmt, out, (size_t)n)) != 0)
		goto out;
	for (uint32_t i = 0; i < circ->count && rc == 0; i++)
		if (memcmp(circ->dev[i].id, c->devs.self, RELM_ID_LEN) != 0)
			rc = relm__core_send_frame(c, proton, circ->dev[i].id, frame, flen);
	if (rc == 0)
		rc = rotated_event(c, proton, npk);
	if (rc == 0 && ipk_out)
		memcpy(ipk_out, npk, RELM_SIGN_PK_LEN);
out:
	sodium_memzero(seed, sizeof seed);
	sodium_memzero(nsk, sizeof nsk);
	relm_sib_buf_free(frame, flen);
	relm_store_proton_clear(&p);
	free(ids.v);
	free(out);
	free(circ);
	return rc;
}

int relm_core_identity_rotate(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                              uint8_t ipk[RELM_SIGN_PK_LEN])
{
	int rc;

	if ((rc = relm_store_begin(c->st)) != 0)
		return rc;
	if ((rc = proton_ready(c, proton)) == 0)
		rc = identity_rotate(c, proton, ipk);
	return relm__core_finish(c, rc);
}

/* ---- a sibling rolled the identity key -------------------------------------- */

int relm__core_sib_identity(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            const uint8_t device[RELM_ID_LEN], const uint8_t *buf, size_t len)
{
	struct relm_sib_identity m;
	struct relm_successor s;
	struct relm_store_proton p;
	struct relm_store_device self;
	struct relm_circle *next = NULL, *cur = NULL;
	struct relm__ids ids = { 0 };
	uint8_t pk[RELM_SIGN_PK_LEN];
	int rc;

	(void)device;
	memset(&p, 0, sizeof p);
	memset(&self, 0, sizeof self);
	if ((rc = relm_sib_identity_decode(&m, buf, len)) != 0 ||
	    (rc = relm_successor_decode(&s, m.stmt, RELM_SUCCESSOR_LEN)) != 0)
		return rc;
	if ((rc = relm_store_proton_get(c->st, proton, &p, 0)) != 0 ||
	    (rc = relm_store_device_get_self(c->st, proton, &self)) != 0)
		goto out;
	if (!memcmp(s.new_ipk, p.ipk, RELM_SIGN_PK_LEN))
		goto out;                    /* this roll is already in hand */
	/* the roll must start from the key this device holds, and the secret
	 * key sent must be the new key's */
	/* (the whole key pair from its seed: the public half a sibling sent
	 * might not be the seed's, and a key stored so would sign nothing
	 * that verifies) */
	{
		uint8_t sk[RELM_SIGN_SK_LEN];
		relm_sign_keypair_from_seed(pk, sk, m.isk);
		int bad = sodium_memcmp(sk, m.isk, RELM_SIGN_SK_LEN) != 0;
		sodium_memzero(sk, sizeof sk);
		if (bad)
			memset(pk, 0, sizeof pk);
	}
	if (memcmp(s.old_ipk, p.ipk, RELM_SIGN_PK_LEN) != 0 ||
	    sodium_memcmp(pk, s.new_ipk, RELM_SIGN_PK_LEN) != 0) {
		rc = RELM_EAUTH;
		goto out;
	}
	if (!(next = malloc(sizeof *next))) {
		rc = RELM_ENOMEM;
		goto out;
	}
	if ((rc = relm_circle_decode(next, m.circle, m.circle_len)) != 0 ||
	    (rc = held_circle(c, proton, &cur)) != 0)
		goto out;
	/* a roll re-signs at a newer epoch, never at the held one (no
	 * same-epoch conflict to judge: refused) */
	if (next->epoch <= cur->epoch ||
	    relm_circle_accept(cur, NULL, 0, next, m.circle, m.circle_len, s.new_ipk) != 1 ||
	    relm_circle_find(next, self.device) < 0) {
		rc = RELM_EINVAL;            /* not the next circle, or one without this device */
		goto out;
	}
	if ((rc = relm_store_proton_set_identity(c->st, proton, s.new_ipk, m.isk)) != 0 ||
	    (rc = relm_store_circle_put(c->st, proton, next->epoch, m.circle, m.circle_len)) != 0 ||
	    (rc = relm__core_circle_follow(c, proton, next)) != 0)
		goto out;
	/* this device's relationships present the new key from now on (the
	 * sibling that rolled sent the statements; their copies reach this
	 * device as messages, which do not change the key presented) */
	if ((rc = relm_store_rel_list(c->st, proton, NULL, 0, rel_id_cb, &ids)) != 0)
		goto out;
	for (size_t i = 0; i < ids.n && rc == 0; i++) {
		struct relm_rel *rel = NULL;
		if ((rc = relm__core_load(c, ids.v[i], &rel)) == 0) {
			if (!memcmp(rel->ipk_self, s.old_ipk, RELM_SIGN_PK_LEN))
				memcpy(rel->ipk_self, s.new_ipk, RELM_SIGN_PK_LEN);
			rc = relm__core_save(c, rel);
		}
		rc = relm__no_state_ok(rc);      /* the hub's state presents it (fanout) */
		relm_rel_free(rel);
	}
	if (rc == 0)
		rc = rotated_event(c, proton, s.new_ipk);
out:
	relm_store_device_clear(&self);
	relm_store_proton_clear(&p);
	free(ids.v);
	free(next);
	free(cur);
	return rc;
}

/* ---- the remote's pin (§3.2) ---------------------------------------------------- */

int relm__core_pin_follow(struct relm_core *c, const struct relm_rel *rel, struct relm_effects *fx)
{
	int pin = 0;

	for (size_t i = 0; i < fx->n; i++) {
		struct relm_fx *f = &fx->v[i];
		if (f->type != RELM_FX_EVENT)
			continue;
		/* a roll accepted, or a conflict back on the old pin: the
		 * relationship row names the key the engine now pins */
		pin |= f->ev.type == RELM_EV_IDENTITY_ROTATED || f->ev.type == RELM_EV_IDENTITY_CONFLICT;
		/* the engine knows the relationship, the core its proton too
		 * (c->devs_proton: loaded for this step) */
		if (f->ev.type == RELM_EV_CLONE_SUSPECTED && !(f->ev.has & RELM_EVF_PROTON)) {
			memcpy(f->ev.proton, c->devs_proton, RELM_ID_LEN);
			f->ev.has |= RELM_EVF_PROTON;
		}
	}
	return pin ? relm_store_rel_set_remote_ipk(c->st, rel->id, rel->ipk_remote) : 0;
}

int relm_core_identity_accept(struct relm_core *c, const uint8_t rel_id[RELM_ID_LEN],
                              const uint8_t ipk[RELM_SIGN_PK_LEN])
{
	struct relm_effects fx;
	struct relm_rel *rel = NULL;
	int rc;

	relm_effects_init(&fx);
	if ((rc = relm_store_begin(c->st)) != 0)
		return rc;
	if ((rc = relm__core_load(c, rel_id, &rel)) == 0 && rel->sibling_session)
		rc = RELM_ENOTFOUND;         /* not a relationship of the proton */
	if (rc == 0 && (rc = relm_rel_identity_accept(rel, ipk, &fx)) == 0 &&
	    (rc = relm__core_step_apply(c, rel, &fx)) == 0)
		rc = relm__core_save(c, rel);
	rc = relm__core_finish(c, rc);
	relm_effects_clear(&fx);
	relm_rel_free(rel);
	return rc;
}

/* ---- revocation (§1, §2) ------------------------------------------------------ */

/* The removed device is told once, on its session, so that it can learn
 * it was removed (§1).  The session is deleted in this same step, so the
 * post is written as device traffic (an outbox row of no relationship)
 * rather than as the session's, which the delete would take with it; the
 * session's state is never saved.  No session: it is not told. */
static int tell_removed(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                        const uint8_t device[RELM_ID_LEN], const uint8_t *frame, size_t flen)
{
	struct relm_effects fx;
	struct relm_rel *sess = NULL;
	uint8_t sid[RELM_ID_LEN];
	int rc;

	relm_effects_init(&fx);
	rc = relm_store_sibling_session_find(c->st, proton, device, sid);
	if (rc == RELM_ENOTFOUND)
		return 0;
	if (rc == 0)
		rc = relm__core_load(c, sid, &sess);
	if (rc == 0)
		rc = relm_rel_send_sibling(sess, c->env, frame, flen, &fx);
	if (rc == RELM_ENOSEND)
		rc = 0;                      /* a session that cannot send yet: not told */
	for (size_t i = 0; i < fx.n && rc == 0; i++) {
		const struct relm_fx *f = &fx.v[i];
		struct relm_store_outbox o;
		if (f->type != RELM_FX_POST)
			continue;
		memset(&o, 0, sizeof o);
		snprintf(o.dest, sizeof o.dest, "%s", f->to[0] ? f->to : sess->remote_mailbox);
		if (!o.dest[0])
			continue;                /* nowhere to post it */
		o.bytes = f->data;
		o.len = f->len;
		o.created = relm__core_now(c);
		rc = relm_store_outbox_add(c->st, &o, NULL);
	}
	relm_effects_clear(&fx);
	relm_rel_free(sess);
	return rc;
}

int relm__core_drop_sessions(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                             const uint8_t device[RELM_ID_LEN])
{
	uint8_t sid[RELM_ID_LEN];
	int rc;

	c->mailboxes_new = 1;                /* their mailboxes are no longer read */
	relm__core_held_forget(c, proton, device);   /* nor are frames held for it sent */
	while ((rc = relm_store_sibling_session_find(c->st, proton, device, sid)) == 0) {
		if (c->busy && !memcmp(sid, c->busy_sess, RELM_ID_LEN))
			return 0;            /* the one being stepped stays (see core_int.h) */
		if ((rc = relm_store_rel_delete(c->st, sid)) != 0)
			return rc;
	}
	return rc == RELM_ENOTFOUND ? 0 : rc;
}

int relm__core_heal_all(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], uint64_t epoch)
{
	struct relm__ids ids = { 0 };
	int rc;

	if ((rc = relm_store_rel_list(c->st, proton, NULL, 0, rel_id_cb, &ids)) != 0)
		goto out;
	for (size_t i = 0; i < ids.n && rc == 0; i++) {
		struct relm_rel *rel = NULL;
		if ((rc = relm__core_load(c, ids.v[i], &rel)) == 0 && rel->mode == RELM_MODE_TREE &&
		    (rc = relm_rel_heal_arm(rel, c->env, epoch)) == 0)
			rc = relm__core_save(c, rel);
		rc = relm__no_state_ok(rc);      /* the hub heals what it holds (fanout) */
		relm_rel_free(rel);
	}
out:
	free(ids.v);
	return rc;
}

static int device_revoke(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                         const uint8_t device[RELM_ID_LEN], uint64_t *epoch_out)
{
	struct relm_store_proton p;
	struct relm_circle *cur = NULL, *next = NULL;
	uint8_t *out = NULL, *frame = NULL;
	size_t flen = 0;
	int rc, n;

	memset(&p, 0, sizeof p);
	if (!memcmp(device, c->devs.self, RELM_ID_LEN))
		return RELM_EINVAL;          /* a device does not revoke itself */
	if ((rc = relm_store_proton_get(c->st, proton, &p, RELM_STORE_WITH_SECRETS)) != 0 ||
	    (rc = held_circle(c, proton, &cur)) != 0)
		goto out;
	if (!(next = malloc(sizeof *next)) || !(out = malloc(RELM_CIRCLE_MAX))) {
		rc = RELM_ENOMEM;
		goto out;
	}
	if ((n = relm_circle_without(out, RELM_CIRCLE_MAX, next, cur, device, p.isk)) < 0) {
		rc = n;
		goto out;
	}
	/* the removed device is told before its sessions go with its row
	 * (relm__core_circle_follow) */
	if ((rc = relm_store_circle_put(c->st, proton, next->epoch, out, (size_t)n)) != 0 ||
	    (rc = relm_sib_circle_encode(&frame, &flen, out, (size_t)n)) != 0 ||
	    (rc = tell_removed(c, proton, device, frame, flen)) != 0 ||
	    (rc = relm__core_circle_follow(c, proton, next)) != 0)
		goto out;
	for (uint32_t i = 0; i < next->count && rc == 0; i++)
		if (memcmp(next->dev[i].id, c->devs.self, RELM_ID_LEN) != 0)
			rc = relm__core_send_frame(c, proton, next->dev[i].id, frame, flen);
	/* the step's relationships see the circle without it */
	if (rc == 0)
		rc = relm__core_devices_load(c, proton);
	if (rc == 0)
		rc = relm__core_heal_all(c, proton, next->epoch);
	if (rc == 0 && epoch_out)
		*epoch_out = next->epoch;
out:
	relm_sib_buf_free(frame, flen);
	relm_store_proton_clear(&p);
	free(out);
	free(next);
	free(cur);
	return rc;
}

int relm_core_device_revoke(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            const uint8_t device[RELM_ID_LEN], int rotate_identity,
                            uint64_t *epoch, uint8_t ipk[RELM_SIGN_PK_LEN])
{
	uint64_t e = 0;
	int rc;

	if ((rc = relm_store_begin(c->st)) != 0)
		return rc;
	if ((rc = proton_ready(c, proton)) == 0)
		rc = device_revoke(c, proton, device, &e);
	/* the roll after the removal: the removed device is sent nothing of
	 * it (its sessions are gone), and the circle it was told of is still
	 * signed by the key it knows */
	if (rc == 0 && rotate_identity && (rc = relm__core_devices_load(c, proton)) == 0 &&
	    (rc = identity_rotate(c, proton, ipk)) == 0)
		e++;                         /* the roll signs the next epoch */
	if ((rc = relm__core_finish(c, rc)) == 0 && epoch)
		*epoch = e;
	return rc;
}

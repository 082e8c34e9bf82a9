/*
 * sibling_state.c — what the devices of one proton tell each other about
 * the proton itself rather than about one send (proto/devices.md §2, §4.3,
 * §4.4, §5.6, §12.7):
 *
 *   state_req  answered with the relationship's whole state (§8), in parts
 *              of RELM_SIB_STATE_CHUNK bytes, at most once per
 *              RELM_REPAIR_GAP_MS per sibling and relationship; the zero
 *              id with the whole bulk state (§12.6, bulk.c);
 *   state      parts kept until the transfer is whole (at most
 *              RELM_PENDING_TTL_MS), then merged (relm_rel_merge), or made
 *              a relationship when a bulk state's `rel` announced it;
 *   circle     accepted by lib/wire/circle.c's rule; the devices rows
 *              follow the accepted circle, with device.added / .removed.
 *
 * Everything runs inside the open step of the session that delivered the
 * frame.  A frame that is bad, or speaks of what this device does not
 * hold, returns a refusal (relm__core_sib_refusal) before anything is
 * written.  Partial transfers and the answers' rate limit are kept in
 * memory (struct relm_core): a restart loses them, and the asking device
 * asks again when its repair timer fires.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "core/core_int.h"
#include "wire/circle.h"
#include "error.h"

int relm__core_proton_rel(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                      const uint8_t rel_id[RELM_ID_LEN])
{
	struct relm_store_rel r;
	uint8_t p[RELM_ID_LEN], d[RELM_ID_LEN];
	int rc;

	if ((rc = relm_store_rel_get(c->st, rel_id, &r, 0)) != 0)
		return rc;
	rc = sodium_memcmp(r.proton, proton, RELM_ID_LEN) == 0 ? 0 : RELM_EAUTH;
	relm_store_rel_clear(&r);
	if (rc == 0 && relm_store_sibling_session_get(c->st, rel_id, p, d) == 0)
		rc = RELM_EAUTH;             /* a session is nobody's to ask for */
	return rc;
}

/* ---- state_req: answer with state ------------------------------------- */

static struct relm__answered *answered_find(struct relm_core *c, const uint8_t device[RELM_ID_LEN],
                                            const uint8_t rel_id[RELM_ID_LEN])
{
	for (int i = 0; i < RELM__ANSWERED; i++) {
		struct relm__answered *a = &c->answered[i];
		if (a->t_ms && !memcmp(a->device, device, RELM_ID_LEN) && !memcmp(a->rel, rel_id, RELM_ID_LEN))
			return a;
	}
	return NULL;
}

int relm__core_send_state(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                          const uint8_t device[RELM_ID_LEN], const uint8_t rel_id[RELM_ID_LEN])
{
	struct relm_sib_state s;
	struct relm_rel *rel = NULL;
	uint8_t *blob = NULL, *frame = NULL;
	size_t blen = 0, flen = 0;
	int rc;

	if ((rc = relm__core_load(c, rel_id, &rel)) != 0)
		return relm__no_state_ok(rc);    /* held without state: nothing to tell */
	if ((rc = relm_rel_encode(rel, &blob, &blen)) != 0)
		goto out;
	memset(&s, 0, sizeof s);
	memcpy(s.rel, rel_id, RELM_ID_LEN);
	relm__random(c->env, s.xfer, RELM_ID_LEN);
	s.total = (uint32_t)blen;
	s.parts = (uint16_t)((blen + RELM_SIB_STATE_CHUNK - 1) / RELM_SIB_STATE_CHUNK);
	if (blen == 0 || blen > (size_t)RELM_SIB_STATE_PARTS * RELM_SIB_STATE_CHUNK)
		goto out;                    /* cannot be carried: the asker's repair stays pending */
	for (s.part = 0; s.part < s.parts && rc == 0; s.part++) {
		size_t off = (size_t)s.part * RELM_SIB_STATE_CHUNK;
		s.chunk = blob + off;
		s.chunk_len = blen - off < RELM_SIB_STATE_CHUNK ? blen - off : RELM_SIB_STATE_CHUNK;
		if ((rc = relm_sib_state_encode(&frame, &flen, &s)) == 0)
			rc = relm__core_send_frame(c, proton, device, frame, flen);
		relm_sib_buf_free(frame, flen);
		frame = NULL;
	}
out:
	relm_rel_blob_free(blob, blen);
	relm_rel_free(rel);
	return rc;
}

int relm__core_sib_state_req(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                             const uint8_t device[RELM_ID_LEN], const uint8_t rel_id[RELM_ID_LEN])
{
	static const uint8_t all[RELM_ID_LEN];
	struct relm__answered *a;
	uint64_t now = relm__core_now(c);
	int rc, bulk = sodium_is_zero(rel_id, RELM_ID_LEN);

	/* the zero id asks for the whole bulk state (devices.md §12.6) */
	if (!bulk && (rc = relm__core_proton_rel(c, proton, rel_id)) != 0)
		return rc;
	if ((a = answered_find(c, device, rel_id)) && now < a->t_ms + RELM_REPAIR_GAP_MS)
		return 0;                    /* answered lately: devices.md §4.3 */
	rc = bulk ? relm__core_bulk_send(c, proton, device) : relm__core_send_state(c, proton, device, rel_id);
	if (rc == 0) {
		if (!a) {
			a = &c->answered[c->answered_next];
			c->answered_next = (c->answered_next + 1) % RELM__ANSWERED;
		}
		memcpy(a->device, device, RELM_ID_LEN);
		memcpy(a->rel, bulk ? all : rel_id, RELM_ID_LEN);
		a->t_ms = now ? now : 1;
	}
	return rc;
}

/* ---- state: reassemble, merge ------------------------------------------ */

static void xfer_free(struct relm__xfer *x)
{
	if (x->buf)
		relm_sib_buf_free(x->buf, x->total);
	memset(x, 0, sizeof *x);
}

/* The slot of this transfer, or a fresh one (the oldest taken when all
 * are busy); NULL only when memory runs out. */
static struct relm__xfer *xfer_slot(struct relm_core *c, const uint8_t device[RELM_ID_LEN],
                                    const struct relm_sib_state *s, uint64_t now, int *rc)
{
	struct relm__xfer *x = NULL, *oldest = &c->xfers[0];

	for (int i = 0; i < RELM__XFERS; i++) {
		struct relm__xfer *y = &c->xfers[i];
		if (y->buf && now >= y->t_ms + RELM_PENDING_TTL_MS)
			xfer_free(y);            /* never completed */
		if (y->buf && !memcmp(y->device, device, RELM_ID_LEN) && !memcmp(y->rel, s->rel, RELM_ID_LEN) &&
		    !memcmp(y->xfer, s->xfer, RELM_ID_LEN)) {
			/* every part of one transfer tells the same size */
			*rc = y->parts == s->parts && y->total == s->total ? 0 : RELM_EMALFORMED;
			return *rc ? NULL : y;
		}
		if (!y->buf && !x)
			x = y;
		if (y->t_ms < oldest->t_ms)
			oldest = y;
	}
	if (!x) {
		xfer_free(oldest);
		x = oldest;
	}
	if (!(x->buf = malloc(s->total))) {
		*rc = RELM_ENOMEM;
		return NULL;
	}
	memcpy(x->device, device, RELM_ID_LEN);
	memcpy(x->rel, s->rel, RELM_ID_LEN);
	memcpy(x->xfer, s->xfer, RELM_ID_LEN);
	x->parts = s->parts;
	x->total = s->total;
	x->got = 0;
	x->t_ms = now;
	*rc = 0;
	return x;
}

static int merge_state(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                       const uint8_t device[RELM_ID_LEN], const uint8_t rel_id[RELM_ID_LEN],
                       const uint8_t *buf, size_t len)
{
	struct relm_effects fx;
	struct relm_rel *other = NULL, *rel = NULL;
	int rc;

	relm_effects_init(&fx);
	if (relm_rel_decode(&other, buf, len) != 0)
		return RELM_EMALFORMED;
	if (memcmp(other->id, rel_id, RELM_ID_LEN) != 0 || other->sibling_session)
		rc = RELM_EINVAL;            /* another relationship's state under this id */
	else
		rc = relm__core_load(c, rel_id, &rel);
	if (rc == RELM_ENOSTATE) {
		/* held without state: held again from this one (fanout.c) */
		rc = relm__core_state_back(c, proton, device, rel_id, other);
		goto out;
	}
	if (rc == 0)
		rc = relm_rel_merge(rel, c->env, other, &fx);
	if (rc == 0)
		rc = relm__core_step_apply(c, rel, &fx);
	if (rc == 0)
		rc = relm__core_save(c, rel);
out:
	relm_effects_clear(&fx);
	relm_rel_free(rel);
	relm_rel_free(other);
	return rc;
}

int relm__core_sib_state(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                         const uint8_t device[RELM_ID_LEN], const struct relm_sib_state *s)
{
	struct relm__xfer *x;
	uint64_t all;
	int rc, adopt = 0;

	/* a relationship this device holds, or one a bulk state announced */
	if ((rc = relm__core_proton_rel(c, proton, s->rel)) == RELM_ENOTFOUND &&
	    relm__core_bulk_pending(c, device, s->rel))
		adopt = 1;
	else if (rc != 0)
		return rc;
	if (!(x = xfer_slot(c, device, s, relm__core_now(c), &rc)))
		return rc;
	memcpy(x->buf + (size_t)s->part * RELM_SIB_STATE_CHUNK, s->chunk, s->chunk_len);
	x->got |= 1ull << s->part;
	all = x->parts == 64 ? ~0ull : (1ull << x->parts) - 1;
	if (x->got != all)
		return 0;
	rc = adopt ? relm__core_bulk_adopt(c, proton, device, s->rel, x->buf, x->total)
	           : merge_state(c, proton, device, s->rel, x->buf, x->total);
	xfer_free(x);
	return rc;
}

/* ---- circle ------------------------------------------------------------- */

static int device_event(struct relm_core *c, int type, const uint8_t proton[RELM_ID_LEN],
                        const uint8_t device[RELM_ID_LEN], uint64_t epoch)
{
	struct relm_event ev;

	relm_event_init(&ev, type);
	ev.has |= RELM_EVF_PROTON | RELM_EVF_DEVICE | RELM_EVF_EPOCH;
	memcpy(ev.proton, proton, RELM_ID_LEN);
	memcpy(ev.device, device, RELM_ID_LEN);
	ev.epoch = epoch;
	return relm_store_event_append(c->st, &ev, relm__core_now(c), NULL);
}

struct rows {
	struct relm_store_device v[RELM_MAX_DEVICES];
	uint32_t n;
};

static int rows_cb(void *ctx, const struct relm_store_device *d)
{
	struct rows *r = ctx;

	if (r->n >= RELM_MAX_DEVICES)
		return RELM_ESTATE;
	r->v[r->n++] = *d;
	return 0;
}

int relm__core_circle_follow(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                             const struct relm_circle *next)
{
	struct rows *old = calloc(1, sizeof *old);
	int rc;

	if (!old)
		return RELM_ENOMEM;
	if ((rc = relm_store_device_list(c->st, proton, rows_cb, old)) != 0)
		goto out;
	/* dropped: every sibling row the circle no longer names, and its
	 * sibling sessions (revocation.md §1: nothing goes to it, nothing of
	 * it is read) */
	for (uint32_t i = 0; i < old->n && rc == 0; i++)
		if (!old->v[i].self && relm_circle_find(next, old->v[i].device) < 0 &&
		    (rc = relm_store_device_delete(c->st, proton, old->v[i].device)) == 0 &&
		    (rc = relm__core_drop_sessions(c, proton, old->v[i].device)) == 0)
			rc = device_event(c, RELM_EV_DEVICE_REMOVED, proton, old->v[i].device, next->epoch);
	/* named: a row each, as the circle has it; new ones announced */
	for (uint32_t i = 0; i < next->count && rc == 0; i++) {
		const struct relm_circle_device *cd = &next->dev[i];
		struct relm_store_device d;
		int known = -1;
		for (uint32_t j = 0; j < old->n; j++)
			if (!memcmp(old->v[j].device, cd->id, RELM_ID_LEN))
				known = (int)j;
		if (known >= 0 && old->v[known].self)
			continue;                /* this device's own row keeps its secret key */
		memset(&d, 0, sizeof d);
		memcpy(d.proton, proton, RELM_ID_LEN);
		memcpy(d.device, cd->id, RELM_ID_LEN);
		memcpy(d.pk, cd->dpk, RELM_SIGN_PK_LEN);
		memcpy(d.label, cd->label, sizeof cd->label);
		d.epoch = cd->added;
		d.added = known >= 0 ? old->v[known].added : relm__core_now(c);
		if ((rc = relm_store_device_put(c->st, &d)) == 0 && known < 0)
			rc = device_event(c, RELM_EV_DEVICE_ADDED, proton, cd->id, next->epoch);
	}
out:
	free(old);
	return rc;
}

/* The signed circle circ (bytes b) to every device it names but self. */
static int send_circle(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                       const struct relm_circle *circ, const uint8_t self[RELM_ID_LEN],
                       const uint8_t *b, size_t blen)
{
	uint8_t *frame = NULL;
	size_t flen = 0;
	int rc;

	if ((rc = relm_sib_circle_encode(&frame, &flen, b, blen)) != 0)
		return rc;
	for (uint32_t i = 0; i < circ->count && rc == 0; i++)
		if (memcmp(circ->dev[i].id, self, RELM_ID_LEN) != 0)
			rc = relm__core_send_frame(c, proton, circ->dev[i].id, frame, flen);
	relm_sib_buf_free(frame, flen);
	return rc;
}

/* next, of the held circle cur's epoch, won their conflict (devices.md
 * §2): the changes cur made and next lacks are made again on top of it,
 * at the next epoch — a device cur removed (next still names it, from
 * before that epoch) is removed, a device cur added is added.  Every
 * device that held cur computes the same circle (Ed25519 signatures are
 * deterministic), so it arrives as duplicates, not as another conflict.
 * 0 with *out NULL when nothing is lost; else next becomes the new circle
 * and *out (malloc'd, *olen bytes) its signed form. */
static int redo_lost(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                     const struct relm_circle *cur, struct relm_circle *next,
                     uint8_t **out, size_t *olen)
{
	struct relm_store_proton p;
	uint64_t e = next->epoch;
	uint32_t k = 0;
	int changed = 0, rc, n;

	*out = NULL;
	for (uint32_t i = 0; i < next->count; i++) {
		if (relm_circle_find(cur, next->dev[i].id) < 0 && next->dev[i].added < e) {
			changed = 1;             /* removed by cur */
			continue;
		}
		next->dev[k++] = next->dev[i];
	}
	next->count = k;
	for (uint32_t i = 0; i < cur->count && next->count < RELM_MAX_DEVICES; i++)
		if (cur->dev[i].added == e && relm_circle_find(next, cur->dev[i].id) < 0) {
			next->dev[next->count] = cur->dev[i];      /* added by cur */
			next->dev[next->count++].added = e + 1;
			changed = 1;
		}
	if (!changed)
		return 0;
	if (next->count == 0 || e == UINT64_MAX)
		return RELM_EINVAL;          /* nothing left to sign: keep the winner as it is */
	next->epoch = e + 1;
	memset(&p, 0, sizeof p);
	if ((rc = relm_store_proton_get(c->st, proton, &p, RELM_STORE_WITH_SECRETS)) != 0)
		return rc;
	if (!(*out = malloc(RELM_CIRCLE_MAX))) {
		rc = RELM_ENOMEM;
	} else if ((n = relm_circle_sign(*out, RELM_CIRCLE_MAX, next, p.isk)) < 0) {
		rc = n;
		free(*out);
		*out = NULL;
	} else {
		*olen = (size_t)n;
		rc = 0;
	}
	relm_store_proton_clear(&p);
	return rc;
}

int relm__core_sib_circle(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                          const uint8_t device[RELM_ID_LEN], const uint8_t *buf, size_t len)
{
	struct relm_circle *next = malloc(sizeof *next), *cur = malloc(sizeof *cur);
	struct relm_store_proton p;
	struct relm_store_device self;
	uint8_t *held = NULL, *mine = NULL;
	size_t hlen = 0, mlen = 0;
	uint64_t epoch = 0;
	int rc, held_ok = 0;

	(void)device;
	memset(&p, 0, sizeof p);
	memset(&self, 0, sizeof self);
	if (!next || !cur) {
		rc = RELM_ENOMEM;
		goto out;
	}
	if ((rc = relm_circle_decode(next, buf, len)) != 0)
		goto out;
	if ((rc = relm_store_proton_get(c->st, proton, &p, 0)) != 0 ||
	    (rc = relm_store_device_get_self(c->st, proton, &self)) != 0)
		goto out;
	rc = relm_store_circle_get(c->st, proton, &epoch, &held, &hlen);
	if (rc != 0 && rc != RELM_ENOTFOUND)
		goto out;
	held_ok = rc == 0 && relm_circle_decode(cur, held, hlen) == 0;
	rc = relm_circle_accept(held_ok ? cur : NULL, held_ok ? held : NULL, held_ok ? hlen : 0,
	                        next, buf, len, p.ipk);
	if (rc < 0) {
		rc = RELM_EAUTH;             /* not signed by this proton's identity key */
		goto out;
	}
	if (rc == 0)
		goto out;                    /* older, a duplicate, or a conflict it loses */
	/* a conflict it wins against the held circle: what the held one
	 * changed is made again on top of it */
	if (held_ok && next->epoch == cur->epoch) {
		/* redo_lost may have changed next before it gave up: the winner
		 * as it came is what is stored and followed */
		if ((rc = redo_lost(c, proton, cur, next, &mine, &mlen)) == RELM_EINVAL)
			rc = relm_circle_decode(next, buf, len);
		if (rc != 0)
			goto out;
		if (mine) {
			buf = mine;
			len = mlen;
		}
	}
	if ((rc = relm_store_circle_put(c->st, proton, next->epoch, buf, len)) == 0)
		rc = relm__core_circle_follow(c, proton, next);
	if (rc == 0 && mine)
		rc = send_circle(c, proton, next, self.device, mine, mlen);
	/* A circle that drops a device this one held: a revocation.  Every
	 * remaining device arms the heal of every relationship, so that it
	 * goes even when the revoking device is offline (revocation.md §2). */
	if (rc == 0 && held_ok && !relm_circle_removed(next, self.device)) {
		int dropped = 0;
		for (uint32_t i = 0; i < cur->count; i++)
			dropped |= relm_circle_find(next, cur->dev[i].id) < 0;
		if (dropped && (rc = relm__core_devices_load(c, proton)) == 0)
			rc = relm__core_heal_all(c, proton, next->epoch);
	}
	/* A circle without this device removes it (proto/revocation.md §1):
	 * kept, so the proton is read-only here from now on (relm__core_removed
	 * reads it from the held circle), and said with device.removed naming
	 * this device. */
	if (rc == 0 && relm_circle_removed(next, self.device))
		rc = device_event(c, RELM_EV_DEVICE_REMOVED, proton, self.device, next->epoch);
out:
	relm_store_device_clear(&self);
	relm_store_proton_clear(&p);
	free(mine);
	free(held);
	free(next);
	free(cur);
	return rc;
}

/* ---- adding a device ---------------------------------------------------- */

int relm__core_device_add(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                          const struct relm_circle_device *dev, uint8_t **circle, size_t *clen,
                          uint64_t *epoch_out)
{
	struct relm_circle *circ = malloc(sizeof *circ);
	struct relm_store_proton p;
	uint8_t *held = NULL, *out = malloc(RELM_CIRCLE_MAX), *frame = NULL;
	size_t hlen = 0, flen = 0;
	uint64_t epoch = 0;
	int rc, n;

	memset(&p, 0, sizeof p);
	if (!circ || !out) {
		rc = RELM_ENOMEM;
		goto out;
	}
	if ((rc = relm__core_circle_ensure(c, proton)) != 0 ||
	    (rc = relm_store_proton_get(c->st, proton, &p, RELM_STORE_WITH_SECRETS)) != 0 ||
	    (rc = relm_store_circle_get(c->st, proton, &epoch, &held, &hlen)) != 0)
		goto out;
	if ((rc = relm_circle_decode(circ, held, hlen)) != 0) {
		rc = RELM_ESTATE;            /* the held circle is this device's own making */
		goto out;
	}
	for (uint32_t i = 0; i < circ->count; i++)
		if (!memcmp(circ->dev[i].id, dev->id, RELM_ID_LEN) ||
		    !sodium_memcmp(circ->dev[i].dpk, dev->dpk, RELM_SIGN_PK_LEN)) {
			rc = RELM_EEXIST;
			goto out;
		}
	if (circ->count >= RELM_MAX_DEVICES) {
		rc = RELM_ELIMIT;
		goto out;
	}
	circ->dev[circ->count] = *dev;
	circ->dev[circ->count].added = circ->epoch = epoch + 1;
	circ->count++;
	if ((n = relm_circle_sign(out, RELM_CIRCLE_MAX, circ, p.isk)) < 0) {
		rc = n;
		goto out;
	}
	if ((rc = relm_store_circle_put(c->st, proton, circ->epoch, out, (size_t)n)) != 0 ||
	    (rc = relm__core_circle_follow(c, proton, circ)) != 0 ||
	    (rc = relm_sib_circle_encode(&frame, &flen, out, (size_t)n)) != 0)
		goto out;
	/* every other sibling learns of it on its session (the new device gets
	 * the circle with its WELCOME, devices.md §12.4) */
	for (uint32_t i = 0; i < circ->count && rc == 0; i++) {
		const uint8_t *id = circ->dev[i].id;
		if (memcmp(id, dev->id, RELM_ID_LEN) != 0 && memcmp(id, c->devs.self, RELM_ID_LEN) != 0)
			rc = relm__core_send_frame(c, proton, id, frame, flen);
	}
	if (rc == 0 && epoch_out)
		*epoch_out = circ->epoch;
	if (rc == 0 && circle) {
		*circle = out;
		*clen = (size_t)n;
		out = NULL;
	}
out:
	relm_sib_buf_free(frame, flen);
	relm_store_proton_clear(&p);
	free(held);
	free(out);
	free(circ);
	return rc;
}

int relm_core_device_add(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                         const struct relm_circle_device *dev, uint64_t *epoch)
{
	int rc;

	if ((rc = relm_store_begin(c->st)) != 0)
		return rc;
	if ((rc = relm__core_devices_load(c, proton)) == 0)
		rc = relm__core_device_add(c, proton, dev, NULL, NULL, epoch);
	return relm__core_finish(c, rc);
}

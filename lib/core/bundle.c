/*
 * bundle.c — a batch's sibling frames, sent together (proto/devices.md
 * §4.5, core.h relm_core_bundle).
 *
 * Without bundling, every copy a step makes is a step of its own on the
 * sibling session: a ratchet step, a session state written back, an
 * outbox row, an envelope posted, and on the sibling an envelope read and
 * its session stepped — per sibling and per message.  relmd commits in
 * batches (group commit), so the frames of one batch are held here and
 * sent per sibling as few bundles as fit, by one step that runs just
 * before the batch commits (the store's before_commit hook): every frame
 * still commits with the step that made it, or not at all.
 *
 * The store's hooks keep the held list in step with the transaction: a
 * step rolled back drops the frames it held, and any it sent itself is
 * held again (sent within the step, undone with it); a batch that ends
 * without committing drops them all.
 *
 * A frame larger than RELM__HOLD_ALONE (a state part, the bulk state) is
 * sent at once, after the frames held for its device, so that a sibling
 * reads one device's frames in the order they were made.  So are all of
 * them when more than RELM__HELD_MAX bytes are held.
 */
#include <stdlib.h>
#include <string.h>
#include "core/core_int.h"
#include "wire/bundle.h"
#include "wire/sibling.h"
#include "error.h"

enum {
	RELM__HOLD_ALONE = 8192,         /* bytes: a frame this big is sent at once */
	RELM__HELD_MAX   = 1 << 20,      /* bytes held at most before they are sent */
	RELM__BUNDLE_MAX = 1024,         /* frames in one bundle at most */
};

static void held_drop_from(struct relm_core *c, size_t from)
{
	for (size_t i = from; i < c->nheld; i++) {
		if (!c->held[i].sent)
			c->held_bytes -= c->held[i].len;
		relm_sib_buf_free(c->held[i].buf, c->held[i].len);
	}
	if (from < c->nheld)
		c->nheld = from;
	if (c->held_mark > c->nheld)
		c->held_mark = c->nheld;
}

void relm__core_held_free(struct relm_core *c)
{
	held_drop_from(c, 0);
	free(c->held);
	c->held = NULL;
	c->capheld = 0;
}

static int held_push(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                     const uint8_t device[RELM_ID_LEN], const uint8_t *frame, size_t len)
{
	struct relm__held *h;

	if (c->nheld == c->capheld) {
		size_t cap = c->capheld ? 2 * c->capheld : 16;
		void *v = realloc(c->held, cap * sizeof *c->held);
		if (!v)
			return RELM_ENOMEM;
		c->held = v;
		c->capheld = cap;
	}
	h = &c->held[c->nheld];
	memset(h, 0, sizeof *h);
	if (!(h->buf = malloc(len)))
		return RELM_ENOMEM;
	memcpy(h->buf, frame, len);
	h->len = len;
	memcpy(h->proton, proton, RELM_ID_LEN);
	memcpy(h->device, device, RELM_ID_LEN);
	c->nheld++;
	c->held_bytes += len;
	return 0;
}

/* A frame held, not yet sent, for that device of that proton. */
static int unsent_for(const struct relm__held *h, const uint8_t proton[RELM_ID_LEN],
                      const uint8_t device[RELM_ID_LEN])
{
	return !h->sent && !memcmp(h->proton, proton, RELM_ID_LEN) && !memcmp(h->device, device, RELM_ID_LEN);
}

/* Send one message made of held frames v[0 … n-1] (one device's, in
 * order): the frame itself, or a bundle of them. */
static int send_group(struct relm_core *c, struct relm__held **v, size_t n)
{
	const uint8_t *msgs[RELM__BUNDLE_MAX];
	size_t lens[RELM__BUNDLE_MAX];
	uint8_t *b = NULL;
	size_t blen = 0;
	int rc;

	if (n == 1)
		return relm__core_send_frame(c, v[0]->proton, v[0]->device, v[0]->buf, v[0]->len);
	for (size_t i = 0; i < n; i++) {
		msgs[i] = v[i]->buf;
		lens[i] = v[i]->len;
	}
	if ((rc = relm_sib_bundle_encode(&b, &blen, msgs, lens, n)) == 0)
		rc = relm__core_send_frame(c, v[0]->proton, v[0]->device, b, blen);
	relm_sib_buf_free(b, blen);
	return rc;
}

/* Send every frame held and not yet sent for the device of held[first]
 * (all devices' when all), in order, as bundles. */
static int flush_from(struct relm_core *c, size_t first, int all)
{
	struct relm__held *group[RELM__BUNDLE_MAX];
	int flushing = c->flushing, rc = 0;

	c->flushing = 1;                  /* what is sent now is not held again */
	for (size_t i = first; i < c->nheld && rc == 0; i++) {
		struct relm__held *lead = &c->held[i];
		size_t n = 0, bytes = 0;
		if (lead->sent || (!all && !unsent_for(lead, c->held[first].proton, c->held[first].device)))
			continue;
		for (size_t j = i; j < c->nheld && rc == 0; j++) {
			struct relm__held *h = &c->held[j];
			if (!unsent_for(h, lead->proton, lead->device))
				continue;
			if (n && (n == RELM__BUNDLE_MAX ||
			          relm_sib_bundle_size(n + 1, bytes + h->len) > RELM_SIBLING_MAX)) {
				rc = send_group(c, group, n);
				n = bytes = 0;
			}
			group[n++] = h;
			bytes += h->len;
		}
		if (rc == 0 && n)
			rc = send_group(c, group, n);
		/* marked once sent: a failure leaves them held, and the step
		 * that failed takes the batch down with it */
		for (size_t j = i; j < c->nheld && rc == 0; j++) {
			struct relm__held *h = &c->held[j];
			if (unsent_for(h, lead->proton, lead->device)) {
				h->sent = h->step_sent = 1;
				c->held_bytes -= h->len;
			}
		}
	}
	c->flushing = flushing;
	return rc;
}

int relm__core_hold(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                    const uint8_t device[RELM_ID_LEN], const uint8_t *frame, size_t len)
{
	int rc;

	if (!c->bundling || c->flushing || !relm_store_in_batch_step(c->st))
		return 0;
	if (len > RELM__HOLD_ALONE) {
		/* goes alone, after what was held for its device */
		for (size_t i = 0; i < c->nheld; i++)
			if (unsent_for(&c->held[i], proton, device))
				return flush_from(c, i, 0);
		return 0;
	}
	if ((rc = held_push(c, proton, device, frame, len)) != 0)
		return rc;
	if (c->held_bytes > RELM__HELD_MAX && (rc = flush_from(c, 0, 1)) != 0)
		return rc;
	return 1;
}

void relm__core_held_forget(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            const uint8_t device[RELM_ID_LEN])
{
	for (size_t i = 0; i < c->nheld; i++) {
		struct relm__held *h = &c->held[i];
		if (unsent_for(h, proton, device)) {
			h->sent = h->step_sent = 1;
			c->held_bytes -= h->len;
		}
	}
}

/* ---- the store's hooks ---------------------------------------------------- */

static void on_step_begin(void *ctx)
{
	struct relm_core *c = ctx;

	c->held_mark = c->nheld;
	for (size_t i = 0; i < c->nheld; i++)
		c->held[i].step_sent = 0;
}

static void on_step_undo(void *ctx)
{
	struct relm_core *c = ctx;

	held_drop_from(c, c->held_mark);
	for (size_t i = 0; i < c->nheld; i++) {
		if (c->held[i].step_sent) {
			c->held[i].sent = c->held[i].step_sent = 0;
			c->held_bytes += c->held[i].len;
		}
	}
}

static void on_txn_end(void *ctx, int committed)
{
	struct relm_core *c = ctx;

	(void)committed;                 /* before_commit sent everything */
	held_drop_from(c, 0);
	c->held_mark = 0;
}

static int on_before_commit(void *ctx)
{
	struct relm_core *c = ctx;
	size_t i = 0;
	int rc;

	while (i < c->nheld && c->held[i].sent)
		i++;
	if (i == c->nheld)
		return 0;
	if ((rc = relm_store_begin(c->st)) != 0)
		return rc;
	return relm__core_finish(c, flush_from(c, i, 1));
}

int relm_core_bundle(struct relm_core *c, int on)
{
	static const struct relm_store_hooks hooks = {
		.step_begin = on_step_begin,
		.step_undo = on_step_undo,
		.txn_end = on_txn_end,
		.before_commit = on_before_commit,
	};

	if (relm_store_in_txn(c->st))
		return RELM_EBUSY;            /* only between transactions */
	c->bundling = on != 0;
	relm_store_set_hooks(c->st, on ? &hooks : NULL, on ? c : NULL);
	return 0;
}

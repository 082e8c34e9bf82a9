/*
 * bulk.c — the bulk state a new device receives (proto/devices.md §12.6):
 * everything a device of the proton holds that the circle and the WELCOME
 * do not carry, so that the new device can read and send in every
 * relationship.
 *
 * E's side (relm__core_bulk_send) runs in the step that commits the
 * WELCOME (pairing.c), and again for a `state_req` with the zero id
 * (sibling_state.c), and from a fanout hub that leaves fanout (fanout.c).
 * It puts on the sibling session to J, in order, per relationship it holds
 * with state: `rel`, its `state` (the §4.4 parts, sibling_state.c) and
 * its history oldest first in `history` messages; then the `invites`; then
 * `synced` with the counts.  One relationship's state and one history
 * message are in memory at a time; the step holds them all in its outbox
 * (the durability rule: the WELCOME and what J needs commit together, so a
 * crash cannot leave J welcomed with no bulk coming).
 *
 * J's side takes each frame in the step of the session that delivered it.
 * A `rel` for a relationship J lacks is remembered (in memory, struct
 * relm_core.bulk) until its `state` is whole; then bulk_adopt makes the
 * relationship row from both.  `history` and `invites` add what J lacks;
 * `synced` compares the counts: SYNCED and device.synced, or — a restart
 * lost a `rel` or a partial state — the zero-id `state_req` that asks for
 * the whole bulk again.
 *
 * Doubt: a proton with a very large history makes one large step on E
 * (SQLite keeps it in the WAL, not in memory); splitting it needs a
 * stored progress marker, which the pairings row does not have yet.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "core/core_int.h"
#include "crypto/crypto.h"
#include "error.h"

enum {
	BULK_PAGE = 256,              /* history rows read per query */
	BULK_TTL_MS = RELM_PENDING_TTL_MS,   /* a `rel` waits this long for its state */
};

static int ids_cb(void *ctx, const struct relm_store_rel *r)
{
	return relm__ids_push(ctx, r->id);
}

/* ---- E: sending ------------------------------------------------------------ */

struct hist {
	struct relm_store *st;
	uint8_t *buf;
	size_t len;
	unsigned rows, in_frame;
	int full, err;
	int64_t last;                 /* seq of the last row taken (or passed over) */
	uint64_t sent;
};

static int hist_cb(void *ctx, const struct relm_store_msg *m)
{
	struct hist *h = ctx;
	struct relm_sib_hmsg e;
	int rc;

	h->rows++;
	/* its own pending requests are not sent messages yet: a sibling that
	 * held one in its history would take the request for a duplicate and
	 * never send it (devices.md §11.5) */
	if ((rc = relm_store_request_has(h->st, m->rel, m->id)) != 0) {
		h->last = m->seq;
		if (rc < 0)
			h->err = rc;
		return rc < 0;
	}
	memset(&e, 0, sizeof e);
	memcpy(e.id, m->id, RELM_ID_LEN);
	e.direction_in = m->direction_in ? 1 : 0;
	e.origin = (uint8_t)m->origin;
	e.status = (uint8_t)m->status;
	snprintf(e.kind, sizeof e.kind, "%s", m->kind);
	e.ts = m->ts;
	e.body = m->body;
	e.body_len = m->body_len;
	rc = relm_sib_history_append(&h->buf, &h->len, &e);
	if (rc == RELM_ETOOBIG && h->in_frame) {
		h->full = 1;              /* this row starts the next message */
		return 1;
	}
	h->last = m->seq;
	if (rc == RELM_ETOOBIG || rc == RELM_EINVAL)
		return 0;                 /* fits no message: left out, not counted */
	if (rc != 0) {
		h->err = rc;
		return 1;
	}
	h->in_frame++;
	h->sent++;
	return 0;
}

static int send_buf(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                    const uint8_t device[RELM_ID_LEN], int rc, uint8_t *buf, size_t len)
{
	if (rc == 0)
		rc = relm__core_send_frame(c, proton, device, buf, len);
	relm_sib_buf_free(buf, len);
	return rc;
}

/* rel's history, oldest first, in as few messages as fit; *sent += how many. */
static int send_history(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                        const uint8_t device[RELM_ID_LEN], const uint8_t rel[RELM_ID_LEN],
                        uint64_t *sent)
{
	struct hist h;
	int rc;

	memset(&h, 0, sizeof h);
	h.st = c->st;
	if ((rc = relm_sib_history_new(&h.buf, &h.len, rel)) != 0)
		return rc;
	for (;;) {
		h.rows = 0;
		h.full = 0;
		rc = relm_store_msg_list_after(c->st, rel, h.last, BULK_PAGE, hist_cb, &h);
		if (rc < 0 || h.err) {
			rc = rc < 0 ? rc : h.err;
			break;
		}
		rc = 0;
		if (h.full) {
			uint8_t *buf = h.buf;
			size_t len = h.len;
			h.buf = NULL;
			h.in_frame = 0;
			if ((rc = send_buf(c, proton, device, 0, buf, len)) != 0 ||
			    (rc = relm_sib_history_new(&h.buf, &h.len, rel)) != 0)
				break;
			continue;
		}
		if (h.rows < BULK_PAGE)
			break;
	}
	if (rc == 0 && h.in_frame) {
		rc = send_buf(c, proton, device, 0, h.buf, h.len);
		h.buf = NULL;
	}
	relm_sib_buf_free(h.buf, h.len);
	if (rc == 0)
		*sent += h.sent;
	return rc;
}

/* rel's `rel`, `state` and history; *sy counts them.  A relationship held
 * without state (a fanout non-hub, or a hub whose state has not come back
 * yet: devices.md §11.6) is left out and not counted — it has no state to
 * carry, and its history is the hub's, which the hub delivers. */
static int send_rel(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                    const uint8_t device[RELM_ID_LEN], const uint8_t rel[RELM_ID_LEN],
                    struct relm_sib_synced *sy)
{
	struct relm_store_rel sr;
	struct relm_sib_rel r;
	struct relm_rel *st = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	memset(&r, 0, sizeof r);
	if ((rc = relm_store_rel_get(c->st, rel, &sr, RELM_STORE_WITH_STATE)) != 0)
		return rc;
	if (sr.state_len == 0) {
		relm_store_rel_clear(&sr);
		return 0;
	}
	memcpy(r.rel, rel, RELM_ID_LEN);
	r.created = sr.created;
	snprintf(r.label, sizeof r.label, "%s", sr.label);
	/* the address is in the state only (schema v12): decoded here, not
	 * loaded as for a step, which would also reset the devices the step
	 * sees (relm__core_load) while this one sends to a joining device */
	if ((rc = relm_rel_decode(&st, sr.state, sr.state_len)) == 0)
		snprintf(r.addr, sizeof r.addr, "%s", st->remote_mailbox);
	else if (rc != RELM_ENOMEM)
		rc = RELM_ESTATE;
	relm_rel_free(st);
	if (rc == 0)
		rc = relm_store_cursor_get(c->st, sr.mailbox_id, &r.cursor);
	relm_store_rel_clear(&sr);
	if (rc == 0)
		rc = relm_sib_rel_encode(&buf, &len, &r);
	if ((rc = send_buf(c, proton, device, rc, buf, len)) != 0)
		return rc;
	if ((rc = relm__core_send_state(c, proton, device, rel)) != 0)
		return rc;
	sy->rels++;
	return send_history(c, proton, device, rel, &sy->messages);
}

struct invs {
	struct relm_sib_invite v[RELM_SIB_INVITES_MAX];
	uint8_t mbox[RELM_SIB_INVITES_MAX][RELM_SIGN_PK_LEN];
	size_t n;
	uint32_t after;               /* spk_id of the last one taken */
};

static int inv_cb(void *ctx, const struct relm_store_invite *inv)
{
	struct invs *s = ctx;
	struct relm_sib_invite *v;

	if (inv->spk_id <= s->after)
		return 0;
	if (s->n == RELM_SIB_INVITES_MAX)
		return 1;                 /* the next message takes the rest */
	v = &s->v[s->n];
	memset(v, 0, sizeof *v);
	v->spk_id = inv->spk_id;
	memcpy(v->spk_priv, inv->spk_priv, RELM_KEY_LEN);
	v->opk_id = inv->opk_id;
	if (inv->opk_id)
		memcpy(v->opk_priv, inv->opk_priv, RELM_KEY_LEN);
	v->multi_use = inv->multi_use ? 1 : 0;
	v->expires = inv->expires;
	memcpy(v->mailbox_sk, inv->mailbox_sk, RELM_SIGN_SK_LEN);
	v->used = inv->used;
	memcpy(s->mbox[s->n], inv->mailbox_id, RELM_SIGN_PK_LEN);
	s->n++;
	s->after = inv->spk_id;
	return 0;
}

/* The proton's invites not expired, RELM_SIB_INVITES_MAX a message; one
 * message with none when there are none. */
static int send_invites(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                        const uint8_t device[RELM_ID_LEN])
{
	struct invs *s = calloc(1, sizeof *s);
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc, first = 1;

	if (!s)
		return RELM_ENOMEM;
	do {
		s->n = 0;
		rc = relm_store_invite_list(c->st, proton, relm__core_now(c), inv_cb, s);
		if (rc < 0)
			break;
		rc = 0;
		for (size_t i = 0; i < s->n && rc == 0; i++)
			rc = relm_store_cursor_get(c->st, s->mbox[i], &s->v[i].cursor);
		if (rc == 0 && (s->n || first)) {
			rc = relm_sib_invites_encode(&buf, &len, s->v, s->n);
			rc = send_buf(c, proton, device, rc, buf, len);
		}
		buf = NULL;
		first = 0;
	} while (rc == 0 && s->n == RELM_SIB_INVITES_MAX);
	sodium_memzero(s, sizeof *s);
	free(s);
	return rc;
}

int relm__core_bulk_send(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                         const uint8_t device[RELM_ID_LEN])
{
	struct relm__ids ids = { 0 };
	struct relm_sib_synced sy = { 0, 0 };
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	/* the strategy first: J's view is right when the relationships come */
	if ((rc = relm__core_strategy_send(c, proton, device)) != 0 ||
	    (rc = relm_store_rel_list(c->st, proton, NULL, 0, ids_cb, &ids)) != 0)
		goto out;
	for (size_t i = 0; i < ids.n && rc == 0; i++)
		rc = send_rel(c, proton, device, ids.v[i], &sy);
	if (rc == 0)
		rc = send_invites(c, proton, device);
	if (rc == 0 && (rc = relm_sib_synced_encode(&buf, &len, &sy)) == 0)
		rc = send_buf(c, proton, device, 0, buf, len);
out:
	free(ids.v);
	return rc;
}

/* ---- J: a relationship from `rel` and `state` -------------------------------- */

static struct relm__bulk_rel *pending_find(struct relm_core *c, const uint8_t device[RELM_ID_LEN],
                                           const uint8_t rel[RELM_ID_LEN])
{
	uint64_t now = relm__core_now(c);

	for (int i = 0; i < RELM__BULK_RELS; i++) {
		struct relm__bulk_rel *b = &c->bulk[i];
		if (b->t_ms && now >= b->t_ms + BULK_TTL_MS)
			memset(b, 0, sizeof *b);              /* its state never came */
		if (b->t_ms && !memcmp(b->device, device, RELM_ID_LEN) && !memcmp(b->r.rel, rel, RELM_ID_LEN))
			return b;
	}
	return NULL;
}

int relm__core_bulk_pending(struct relm_core *c, const uint8_t device[RELM_ID_LEN],
                            const uint8_t rel[RELM_ID_LEN])
{
	return pending_find(c, device, rel) != NULL;
}

int relm__core_bulk_cursor(struct relm_core *c, const uint8_t device[RELM_ID_LEN],
                           const uint8_t rel[RELM_ID_LEN], uint64_t *cursor)
{
	struct relm__bulk_rel *b = pending_find(c, device, rel);

	if (!b)
		return RELM_ENOTFOUND;
	*cursor = b->r.cursor;
	memset(b, 0, sizeof *b);
	return 0;
}

int relm__core_bulk_rel(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                        const uint8_t device[RELM_ID_LEN], const struct relm_sib_rel *r)
{
	struct relm__bulk_rel *b, *oldest = &c->bulk[0];
	uint8_t src[RELM_ID_LEN];
	int rc = relm__core_proton_rel(c, proton, r->rel);

	/* held (its state merges) or not the proton's — unless it is held
	 * without state: then its state, and this cursor, make it held again
	 * (fanout.c, devices.md §11.6) */
	if (rc == 0) {
		if ((rc = relm_store_stateless_src(c->st, r->rel, src)) != 0)
			return rc == RELM_ENOTFOUND ? 0 : rc;
	} else if (rc != RELM_ENOTFOUND) {
		return rc;
	}
	if (!(b = pending_find(c, device, r->rel))) {
		for (int i = 0; i < RELM__BULK_RELS && !b; i++)
			if (!c->bulk[i].t_ms)
				b = &c->bulk[i];
			else if (c->bulk[i].t_ms < oldest->t_ms)
				oldest = &c->bulk[i];
		if (!b)
			b = oldest;           /* its state is long overdue: synced asks again */
	}
	memcpy(b->device, device, RELM_ID_LEN);
	b->r = *r;
	b->t_ms = relm__core_now(c) ? relm__core_now(c) : 1;
	return 0;
}

/* The row of a relationship adopted from a sibling's state. */
static int adopt_store(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                       const struct relm_sib_rel *h, struct relm_rel *rel)
{
	struct relm_store_rel sr;
	struct relm_event ev;
	uint8_t *blob = NULL;
	size_t blen = 0;
	int rc;

	/* where to post: the sibling's address wins, as its row's did (v12:
	 * the address lives in the blob only) */
	if (h->addr[0])
		snprintf(rel->remote_mailbox, sizeof rel->remote_mailbox, "%s", h->addr);
	if ((rc = relm_rel_encode(rel, &blob, &blen)) != 0)
		return rc;
	memset(&sr, 0, sizeof sr);
	memcpy(sr.id, rel->id, RELM_ID_LEN);
	memcpy(sr.proton, proton, RELM_ID_LEN);
	snprintf(sr.label, sizeof sr.label, "%s", h->label);
	memcpy(sr.remote_ipk, rel->ipk_remote, RELM_SIGN_PK_LEN);
	sr.mode = rel->mode;
	memcpy(sr.mailbox_id, rel->mbox_pk, RELM_SIGN_PK_LEN);
	sr.created = h->created;
	sr.last_activity = relm__core_now(c);
	sr.state = blob;
	sr.state_len = blen;
	rc = relm_store_rel_put(c->st, &sr);
	if (rc == RELM_EEXIST)
		rc = RELM_EINVAL;         /* its mailbox is another relationship's: refused */
	if (rc == 0 &&
	    (rc = relm_store_cursor_set(c->st, rel->mbox_pk, h->cursor)) == 0 &&
	    (rc = relm_store_rel_set_deadline(c->st, rel->id, relm_rel_deadline(rel, c->env))) == 0) {
		relm_event_init(&ev, RELM_EV_RELATIONSHIP_CREATED);
		ev.has |= RELM_EVF_REL;
		memcpy(ev.rel, rel->id, RELM_ID_LEN);
		rc = relm_store_event_append(c->st, &ev, relm__core_now(c), NULL);
	}
	sr.state = NULL;
	relm_store_rel_clear(&sr);
	relm_rel_blob_free(blob, blen);
	return rc;
}

void relm__core_state_taken(struct relm_rel *rel)
{
	for (uint32_t i = 0; i < rel->tree.count; i++)
		rel->tree.nodes[i].flags &= (uint8_t)~RELM_NODE_OWN;
	rel->repair_ms = 0;
}

int relm__core_bulk_adopt(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                          const uint8_t device[RELM_ID_LEN], const uint8_t rel_id[RELM_ID_LEN],
                          const uint8_t *blob, size_t len)
{
	struct relm__bulk_rel *b = pending_find(c, device, rel_id);
	struct relm_store_proton p;
	struct relm_rel *rel = NULL;
	int rc;

	if (!b)
		return RELM_ENOTFOUND;
	if (relm_rel_decode(&rel, blob, len) != 0)
		return RELM_EMALFORMED;
	memset(&p, 0, sizeof p);
	if ((rc = relm_store_proton_get(c->st, proton, &p, 0)) != 0)
		goto out;
	/* the proton's own relationship under the id its `rel` named */
	if (memcmp(rel->id, rel_id, RELM_ID_LEN) != 0 || rel->sibling_session ||
	    rel->mode != (uint8_t)c->mode || sodium_memcmp(rel->ipk_self, p.ipk, RELM_SIGN_PK_LEN) != 0) {
		rc = RELM_EINVAL;
		goto out;
	}
	relm__core_state_taken(rel);
	if ((rc = adopt_store(c, proton, &b->r, rel)) == 0) {
		memset(b, 0, sizeof *b);
		c->mailboxes_new = 1;
	}
out:
	relm_store_proton_clear(&p);
	relm_rel_free(rel);
	return rc;
}

/* ---- J: history, invites, synced ------------------------------------------- */

int relm__core_bulk_history(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            const struct relm_sib_history *h)
{
	struct relm_sib_hmsg e;
	size_t it = 0;
	int rc;

	if ((rc = relm__core_proton_rel(c, proton, h->rel)) != 0)
		return rc;
	while (rc >= 0 && relm_sib_history_next(h, &it, &e)) {
		struct relm_store_msg m;
		memset(&m, 0, sizeof m);
		memcpy(m.rel, h->rel, RELM_ID_LEN);
		memcpy(m.id, e.id, RELM_ID_LEN);
		m.direction_in = e.direction_in;
		/* what the sender sent, this device did not */
		m.origin = e.origin == RELM_ORIGIN_SELF ? RELM_ORIGIN_SIBLING : e.origin;
		snprintf(m.kind, sizeof m.kind, "%s", e.kind);
		m.body = e.body;
		m.body_len = e.body_len;
		m.ts = e.ts;
		m.status = e.status;
		m.created = m.updated = relm__core_now(c);
		rc = relm_store_msg_insert(c->st, &m);       /* 0: held already (by id) */
	}
	return rc < 0 ? rc : 0;
}

static int invite_take(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                       const struct relm_sib_invite *v)
{
	struct relm_store_invite si, have;
	uint8_t pk[RELM_SIGN_PK_LEN], sk[RELM_SIGN_SK_LEN];
	uint64_t cursor = 0;
	int rc;

	if (v->expires <= relm__core_now(c))
		return 0;                 /* expired on the way */
	/* the mailbox key must be whole: its public half is derived, not trusted */
	relm_sign_keypair_from_seed(pk, sk, v->mailbox_sk);
	rc = sodium_memcmp(sk, v->mailbox_sk, RELM_SIGN_SK_LEN) == 0 ? 0 : RELM_EMALFORMED;
	sodium_memzero(sk, sizeof sk);
	if (rc)
		return rc;
	if ((rc = relm_store_invite_get(c->st, proton, v->spk_id, &have)) != RELM_ENOTFOUND) {
		relm_store_invite_clear(&have);
		return rc;                /* held (0) or a store error */
	}
	memset(&si, 0, sizeof si);
	memcpy(si.proton, proton, RELM_ID_LEN);
	si.spk_id = v->spk_id;
	memcpy(si.spk_priv, v->spk_priv, RELM_KEY_LEN);
	si.opk_id = v->opk_id;
	memcpy(si.opk_priv, v->opk_priv, RELM_KEY_LEN);
	si.multi_use = v->multi_use;
	si.expires = v->expires;
	memcpy(si.mailbox_id, pk, RELM_SIGN_PK_LEN);
	memcpy(si.mailbox_sk, v->mailbox_sk, RELM_SIGN_SK_LEN);
	si.used = v->used;
	si.created = relm__core_now(c);
	rc = relm_store_invite_put(c->st, &si);
	relm_store_invite_clear(&si);
	if (rc == 0 && (rc = relm_store_cursor_get(c->st, pk, &cursor)) == 0 && v->cursor > cursor)
		rc = relm_store_cursor_set(c->st, pk, v->cursor);
	if (rc == 0)
		c->mailboxes_new = 1;
	return rc;
}

int relm__core_bulk_invites(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            const struct relm_sib_invites *v)
{
	struct relm_sib_invite inv;
	size_t it = 0;
	int rc = 0;

	/* checked whole first: a refused message keeps nothing */
	while (rc == 0 && relm_sib_invites_next(v, &it, &inv)) {
		uint8_t pk[RELM_SIGN_PK_LEN], sk[RELM_SIGN_SK_LEN], owner[RELM_ID_LEN];
		uint32_t spk_id = 0;
		int r2;
		relm_sign_keypair_from_seed(pk, sk, inv.mailbox_sk);
		if (sodium_memcmp(sk, inv.mailbox_sk, RELM_SIGN_SK_LEN) != 0)
			rc = RELM_EMALFORMED;
		sodium_memzero(sk, sizeof sk);
		/* a mailbox another invite of this store reads */
		if (rc == 0 && (r2 = relm_store_invite_by_mailbox(c->st, pk, owner, &spk_id)) != RELM_ENOTFOUND)
			rc = r2 < 0 ? r2 : memcmp(owner, proton, RELM_ID_LEN) || spk_id != inv.spk_id ? RELM_EINVAL : 0;
	}
	for (it = 0; rc == 0 && relm_sib_invites_next(v, &it, &inv);)
		rc = invite_take(c, proton, &inv);
	sodium_memzero(&inv, sizeof inv);
	return rc;
}

static int count_cb(void *ctx, const struct relm_store_msg *m)
{
	(void)m;
	(*(uint64_t *)ctx)++;
	return 0;
}

int relm__core_bulk_synced(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                           const uint8_t device[RELM_ID_LEN], const struct relm_sib_synced *s)
{
	static const uint8_t all[RELM_ID_LEN];
	struct relm__ids ids = { 0 };
	struct relm_event ev;
	uint64_t msgs = 0;
	uint8_t *req = NULL;
	size_t rlen = 0;
	int rc, whole;

	if ((rc = relm_store_rel_list(c->st, proton, NULL, 0, ids_cb, &ids)) != 0)
		goto out;
	for (size_t i = 0; i < ids.n && rc == 0; i++)
		rc = relm_store_msg_list(c->st, ids.v[i], 0, 0, count_cb, &msgs);
	if (rc != 0)
		goto out;
	/* later traffic may have added to either count, never taken away */
	whole = ids.n >= s->rels && msgs >= s->messages;
	if ((rc = relm__core_pair_joined(c, proton, whole)) <= 0)
		goto out;                 /* synced before, or not joining: nothing to do */
	rc = 0;
	if (whole) {
		relm_event_init(&ev, RELM_EV_DEVICE_SYNCED);
		ev.has |= RELM_EVF_PROTON;
		memcpy(ev.proton, proton, RELM_ID_LEN);
		rc = relm_store_event_append(c->st, &ev, relm__core_now(c), NULL);
	} else if ((rc = relm_sib_state_req_encode(&req, &rlen, all)) == 0) {
		rc = relm__core_send_frame(c, proton, device, req, rlen);   /* the whole bulk again */
		relm_sib_buf_free(req, rlen);
	}
out:
	free(ids.v);
	return rc;
}

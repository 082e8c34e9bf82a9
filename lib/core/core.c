/*
 * core.c — one engine step inside one store step (see core.h).
 *
 * Shape of every state-changing call:
 *
 *     begin ── load (one row + its pending rows) ── engine step ──
 *     apply effects ── save state (+ deadline) ── [cursor] ── commit
 *                 └──────────── any error: rollback ────────────┘
 *
 * The relationship is decoded fresh for each step and freed (wiped) after:
 * nothing secret outlives the call, and a failed step cannot leave an
 * in-memory state ahead of the file.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sodium.h>
#include "core/core.h"
#include "wire/invite.h"
#include "wire/addr.h"
#include "crypto/crypto.h"
#include "wire/envelope.h"
#include "error.h"

struct relm_core {
	struct relm_store *st;
	/* The caller's environment, copied: the engine never writes into what
	 * it is given (several simulated devices may share one), and the copy
	 * adds de-duplication through the store's history. */
	struct relm_env env_own;
	const struct relm_env *env;
	enum relm_mode mode;
	char mailbox_host[RELM_MAILBOX_ADDR_MAX + 1];
};

int relm_core_new(struct relm_core **out, struct relm_store *st, const struct relm_env *env,
                  const char *mailbox_host, enum relm_mode mode)
{
	struct relm_core *c;
	struct relm_addr a;

	if (!mailbox_host || relm_addr_parse(&a, mailbox_host, strlen(mailbox_host)) != 0 || a.has_id)
		return RELM_EINVAL;
	if (mode != RELM_MODE_TREE && mode != RELM_MODE_STRICT)
		return RELM_EINVAL;
	if (!(c = calloc(1, sizeof *c)))
		return RELM_ENOMEM;
	c->st = st;
	c->env_own = *env;
	/* de-duplication reaches the whole history through the store */
	c->env_own.history_has = relm_store_history_has_cb;
	c->env_own.history_ctx = st;
	c->env = &c->env_own;
	c->mode = mode;
	snprintf(c->mailbox_host, sizeof c->mailbox_host, "%s", mailbox_host);
	*out = c;
	return 0;
}

void relm_core_free(struct relm_core *c)
{
	free(c);
}

const char *relm_core_mailbox_host(const struct relm_core *c)
{
	return c->mailbox_host;
}

static uint64_t now(const struct relm_core *c)
{
	return relm__now(c->env);
}

/* ---- loading and saving a relationship ------------------------------- */

static int pending_cb(void *ctx, const uint8_t hash[RELM_ID_LEN], const uint8_t *bytes,
                      size_t len, uint64_t received_ms)
{
	(void)hash;
	return relm_rel_pending_load(ctx, bytes, len, received_ms);
}

static int load(struct relm_core *c, const uint8_t id[RELM_ID_LEN], struct relm_rel **out)
{
	struct relm_store_rel r;
	struct relm_rel *rel = NULL;
	int rc;

	memset(&r, 0, sizeof r);
	if ((rc = relm_store_rel_get(c->st, id, &r, RELM_STORE_WITH_STATE)) != 0)
		return rc;
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

static int ack_cb(void *ctx, const uint8_t id[RELM_ID_LEN], const uint8_t dh[RELM_KEY_LEN],
                  uint32_t n)
{
	return relm_rel_ack_load(ctx, id, dh, n);
}

/* Before a tick: when the receipt is due, every acknowledgement it owes
 * comes back from the store (relm_rel_tick sends none while acks_partial
 * is set, and the timer stays armed). */
static int load_acks(struct relm_core *c, struct relm_rel *rel)
{
	int rc;

	if (!rel->acks_partial || !rel->receipt_due_ms || rel->receipt_due_ms > now(c))
		return 0;
	if ((rc = relm_store_ack_list(c->st, rel->id, ack_cb, rel)) != 0)
		return rc;
	rel->acks_partial = 0;
	return 0;
}

static int due_out_cb(void *ctx, const struct relm_store_outgoing *o)
{
	return relm_rel_outgoing_load(ctx, o->id, o->kind, o->ts, (const char *)o->body,
	                              o->body_len, o->tries, o->next_ms, o->last_node);
}

static int save(struct relm_core *c, struct relm_rel *rel)
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
	rc = relm_store_rel_set_state(c->st, rel->id, blob, len, now(c));
	relm_rel_blob_free(blob, len);
	if (rc == 0)
		rc = relm_store_outgoing_next(c->st, rel->id, &out_next);
	deadline = relm_rel_deadline(rel, c->env);
	if (out_next && (!deadline || out_next < deadline))
		deadline = out_next;
	if (rc == 0)
		rc = relm_store_rel_set_deadline(c->st, rel->id, deadline);
	if (rc == 0 && rel->remote_mailbox[0])
		rc = relm_store_rel_set_remote_addr(c->st, rel->id, rel->remote_mailbox);
	return rc;
}

static int finish(struct relm_core *c, int rc)
{
	if (rc == 0)
		return relm_store_commit(c->st);
	relm_store_rollback(c->st);
	return rc;
}

/* The store row of a new relationship (state: the caller's blob). */
static void rel_row(struct relm_core *c, struct relm_store_rel *sr, const struct relm_rel *rel,
                    const uint8_t proton[RELM_ID_LEN], const char *label,
                    uint8_t *blob, size_t blen)
{
	memcpy(sr->id, rel->id, RELM_ID_LEN);
	memcpy(sr->proton, proton, RELM_ID_LEN);
	snprintf(sr->label, sizeof sr->label, "%s", label ? label : "");
	memcpy(sr->remote_ipk, rel->ipk_remote, RELM_SIGN_PK_LEN);
	sr->mode = rel->mode;
	memcpy(sr->mailbox_id, rel->mbox_pk, RELM_SIGN_PK_LEN);
	memcpy(sr->mailbox_sk, rel->mbox_sk, RELM_SIGN_SK_LEN);
	snprintf(sr->remote_addr, sizeof sr->remote_addr, "%s", rel->remote_mailbox);
	sr->created = sr->last_activity = now(c);
	sr->state = blob;
	sr->state_len = blen;
}

/* ---- protons ------------------------------------------------------------ */

int relm_core_proton_create(struct relm_core *c, const char *label,
                            uint8_t id[RELM_ID_LEN], uint8_t ipk[RELM_SIGN_PK_LEN])
{
	struct relm_store_proton p;
	struct relm_store_device d;
	uint8_t seed[32];
	int rc;

	memset(&p, 0, sizeof p);
	memset(&d, 0, sizeof d);
	if (!label || strlen(label) > RELM_STORE_LABEL_MAX)
		return RELM_EINVAL;
	relm__random(c->env, p.id, RELM_ID_LEN);
	relm__random(c->env, seed, sizeof seed);
	relm_sign_keypair_from_seed(p.ipk, p.isk, seed);
	snprintf(p.label, sizeof p.label, "%s", label);
	snprintf(p.strategy, sizeof p.strategy, "leaderless");
	p.created = now(c);

	memcpy(d.proton, p.id, RELM_ID_LEN);
	relm__random(c->env, d.device, RELM_ID_LEN);
	snprintf(d.label, sizeof d.label, "this device");
	d.self = 1;
	relm__random(c->env, seed, sizeof seed);
	relm_sign_keypair_from_seed(d.pk, d.sk, seed);
	d.has_sk = 1;
	d.epoch = 1;
	d.added = p.created;

	if ((rc = relm_store_begin(c->st)) != 0)
		goto out;
	rc = relm_store_proton_put(c->st, &p);
	if (rc == 0)
		rc = relm_store_device_put(c->st, &d);
	if ((rc = finish(c, rc)) == 0) {
		memcpy(id, p.id, RELM_ID_LEN);
		memcpy(ipk, p.ipk, RELM_SIGN_PK_LEN);
	}
out:
	sodium_memzero(seed, sizeof seed);
	relm_store_proton_clear(&p);
	relm_store_device_clear(&d);
	return rc;
}

/* ---- invites -------------------------------------------------------------- */

static uint32_t random_id32(struct relm_core *c)
{
	uint32_t v = 0;
	while (v == 0)
		v = relm__random_between(c->env, 1, 0xffffffffu);
	return v;
}

int relm_core_invite_create(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            int multi_use, uint64_t ttl_s, char *text, size_t cap,
                            uint8_t mailbox_id[RELM_SIGN_PK_LEN])
{
	struct relm_store_proton p;
	struct relm_store_invite si;
	struct relm_invite inv;
	struct relm_addr a;
	uint8_t seed[32];
	int rc, len;

	memset(&p, 0, sizeof p);
	memset(&si, 0, sizeof si);
	memset(&inv, 0, sizeof inv);
	if (ttl_s == 0)
		ttl_s = RELM_INVITE_TTL_DEFAULT_S;
	if (ttl_s > RELM_INVITE_TTL_MAX_S)
		return RELM_EINVAL;
	if ((rc = relm_store_proton_get(c->st, proton, &p, RELM_STORE_WITH_SECRETS)) != 0)
		return rc;

	memcpy(si.proton, proton, RELM_ID_LEN);
	si.spk_id = random_id32(c);
	relm__random(c->env, si.spk_priv, RELM_KEY_LEN);
	si.multi_use = !!multi_use;
	if (!multi_use) {
		/* a one-time prekey only makes sense for a single-use invite */
		si.opk_id = random_id32(c);
		relm__random(c->env, si.opk_priv, RELM_KEY_LEN);
	}
	si.created = now(c);
	si.expires = si.created + ttl_s * 1000u;
	relm__random(c->env, seed, sizeof seed);
	relm_sign_keypair_from_seed(si.mailbox_id, si.mailbox_sk, seed);

	inv.version = RELM_WIRE_VERSION;
	memcpy(inv.ipk, p.ipk, RELM_SIGN_PK_LEN);
	inv.spk_id = si.spk_id;
	relm_x25519_public(inv.spk, si.spk_priv);
	if (si.opk_id) {
		inv.flags |= RELM_INVITE_F_OPK;
		inv.opk_id = si.opk_id;
		relm_x25519_public(inv.opk, si.opk_priv);
	}
	if (multi_use)
		inv.flags |= RELM_INVITE_F_MULTI;
	inv.expires_ms = si.expires;
	if ((rc = relm_addr_parse(&a, c->mailbox_host, strlen(c->mailbox_host))) != 0)
		goto out;
	memcpy(a.id, si.mailbox_id, RELM_SIGN_PK_LEN);
	a.has_id = 1;
	if (relm_addr_format(inv.mailbox, sizeof inv.mailbox, &a) < 0) {
		rc = RELM_EINVAL;
		goto out;
	}
	if ((rc = relm_invite_sign(&inv, p.isk)) != 0)
		goto out;
	if ((len = relm_invite_encode(text, cap, &inv)) < 0) {
		rc = len;
		goto out;
	}
	if ((rc = relm_store_begin(c->st)) != 0)
		goto out;
	rc = finish(c, relm_store_invite_put(c->st, &si));
	if (rc == 0 && mailbox_id)
		memcpy(mailbox_id, si.mailbox_id, RELM_SIGN_PK_LEN);
out:
	sodium_memzero(seed, sizeof seed);
	relm_store_proton_clear(&p);
	relm_store_invite_clear(&si);
	return rc;
}

/* proton_list callback: stop (1) at the proton whose IPK is ctx. */
static int local_ipk_cb(void *ctx, const struct relm_store_proton *p)
{
	return sodium_memcmp(p->ipk, ctx, RELM_SIGN_PK_LEN) == 0;
}

/* rel_list callback: stop (1) at a relationship with the remote IPK ctx. */
static int same_remote_cb(void *ctx, const struct relm_store_rel *r)
{
	return sodium_memcmp(r->remote_ipk, ctx, RELM_SIGN_PK_LEN) == 0;
}

int relm_core_invite_accept(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            const char *text, size_t len, const char *label,
                            uint8_t rel_out[RELM_ID_LEN])
{
	struct relm_store_proton p;
	struct relm_store_rel sr;
	struct relm_invite inv;
	struct relm_effects fx;
	struct relm_rel *rel = NULL;
	uint8_t *blob = NULL;
	size_t blen = 0;
	int rc;

	memset(&p, 0, sizeof p);
	memset(&sr, 0, sizeof sr);
	relm_effects_init(&fx);
	if (label && strlen(label) > RELM_STORE_LABEL_MAX)
		return RELM_EINVAL;
	if ((rc = relm_invite_decode(&inv, text, len)) != 0)
		return rc;
	if (inv.expires_ms && inv.expires_ms <= now(c))
		return RELM_EEXPIRED;
	if ((rc = relm_store_proton_get(c->st, proton, &p, RELM_STORE_WITH_SECRETS)) != 0)
		return rc;
	/* One relationship per pair of protons (DESIGN §1).  Without this check
	 * accepting the same invite twice made a second relationship whose
	 * initial envelope the inviter refuses (single use) or that duplicates
	 * the first (multi use): a dead or doubled conversation, and no error. */
	/* Both ends of one relationship share its id (x3dh.h), and one store
	 * holds one row per id: two protons of one daemon cannot be related.
	 * Say so now rather than let the inviter's side fail later. */
	rc = relm_store_proton_list(c->st, local_ipk_cb, inv.ipk);
	if (rc != 0) {
		rc = rc == 1 ? RELM_ESAMEDAEMON : rc;
		goto out;
	}
	rc = relm_store_rel_list(c->st, proton, NULL, 0, same_remote_cb, inv.ipk);
	if (rc != 0) {
		rc = rc == 1 ? RELM_EEXIST : rc;
		goto out;
	}
	if ((rc = relm_rel_accept(&rel, c->env, c->mode, p.isk, &inv, c->mailbox_host, &fx)) != 0)
		goto out;
	if ((rc = relm_rel_encode(rel, &blob, &blen)) != 0)
		goto out;
	rel_row(c, &sr, rel, proton, label, blob, blen);

	if ((rc = relm_store_begin(c->st)) != 0)
		goto out;
	rc = relm_store_rel_put(c->st, &sr);
	/* relationship.created first: subscribers hear of the relationship
	 * before the message.sent of its first (hello) envelope. */
	if (rc == 0) {
		char json[96], h[33];
		relm_hex(h, rel->id, RELM_ID_LEN);
		snprintf(json, sizeof json, "{\"relationship\":\"%s\"}", h);
		rc = relm_store_event_append(c->st, "relationship.created", json, now(c), NULL);
	}
	if (rc == 0)
		rc = relm_store_apply_effects(c->st, rel->id, NULL, &fx, now(c));
	if (rc == 0)
		rc = relm_store_rel_set_deadline(c->st, rel->id, relm_rel_deadline(rel, c->env));
	if ((rc = finish(c, rc)) == 0)
		memcpy(rel_out, rel->id, RELM_ID_LEN);
out:
	sr.state = NULL;
	relm_store_rel_clear(&sr);
	relm_rel_blob_free(blob, blen);
	relm_effects_clear(&fx);
	relm_rel_free(rel);
	relm_store_proton_clear(&p);
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
	if ((rc = load(c, rel_id, &rel)) != 0)
		goto done;
	rc = relm_rel_send(rel, c->env, body, len, id, id_out, &fx);
	if (rc == RELM_EEXIST) {
		rc = 0;
		goto done;
	}
	if (rc == 0)
		rc = relm_store_apply_effects(c->st, rel_id, NULL, &fx, now(c));
	if (rc == 0)
		rc = save(c, rel);
	if (rc == 0)
		*was_new = 1;
done:
	rc = finish(c, rc);
	relm_effects_clear(&fx);
	relm_rel_free(rel);
	return rc;
}

/* ---- envelopes from our mailboxes ---------------------------------------- */

static int report_bad(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                      uint64_t seq, int why)
{
	char json[256], h[65];
	relm_hex(h, mailbox, RELM_SIGN_PK_LEN);
	snprintf(json, sizeof json, "{\"mailbox\":\"%s\",\"seq\":%llu,\"reason\":\"%s\"}", h,
	         (unsigned long long)seq, relm_errname(why));
	return relm_store_event_append(c->st, "envelope.undecryptable", json, now(c), NULL);
}

/* The envelope could not be used, for a reason that retrying will not fix. */
static int is_final(int rc)
{
	switch (rc) {
	case RELM_ENOMEM: case RELM_ESTORE: case RELM_EFULL: case RELM_ECORRUPT: case RELM_EBUSY:
		return 0;              /* the store or memory failed: retry on redelivery */
	default:
		return rc <= -1000;    /* a protocol verdict on these bytes */
	}
}

static int receive_on(struct relm_core *c, const uint8_t rel_id[RELM_ID_LEN],
                      const uint8_t *buf, size_t len)
{
	struct relm_effects fx;
	struct relm_rel *rel = NULL;
	int rc;

	relm_effects_init(&fx);
	if ((rc = load(c, rel_id, &rel)) != 0)
		goto out;
	rc = relm_rel_receive(rel, c->env, buf, len, &fx);
	if (rc == 0 || rc == RELM_EDUP || rc == RELM_EPENDING) {
		int r2 = relm_store_apply_effects(c->st, rel_id, NULL, &fx, now(c));
		if (r2 == 0)
			r2 = save(c, rel);
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

static int open_initial(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], uint32_t spk_id,
                        const uint8_t *buf, size_t len)
{
	struct relm_store_invite si;
	struct relm_store_proton p;
	struct relm_store_rel sr;
	struct relm_invite_secrets sec;
	struct relm_envelope e;
	struct relm_effects fx;
	struct relm_rel *rel = NULL;
	uint8_t rel_id[RELM_ID_LEN], *blob = NULL;
	size_t blen = 0;
	int rc;

	memset(&si, 0, sizeof si);
	memset(&p, 0, sizeof p);
	memset(&sr, 0, sizeof sr);
	memset(&sec, 0, sizeof sec);
	relm_effects_init(&fx);
	if ((rc = relm_envelope_decode(&e, buf, len)) != 0)
		return rc;
	if (!(e.h.flags & RELM_ENV_F_INITIAL) || e.ext.spk_id != spk_id)
		return RELM_EMALFORMED;
	if ((rc = relm_store_proton_get(c->st, proton, &p, RELM_STORE_WITH_SECRETS)) != 0)
		goto out;
	/* A retransmitted hello (or a byte-for-byte replay) belongs to the
	 * relationship it already made: rel_id is a function of the envelope. */
	relm_rel_id(rel_id, p.ipk, e.ext.ipk, e.ext.ek);
	if (relm_store_rel_get(c->st, rel_id, &sr, 0) == 0) {
		relm_store_rel_clear(&sr);
		rc = receive_on(c, rel_id, buf, len);
		goto out;
	}
	if ((rc = relm_store_invite_get(c->st, proton, spk_id, &si)) != 0)
		goto out;
	if (si.expires && si.expires <= now(c)) {
		rc = RELM_EEXPIRED;
		goto out;
	}
	if (!si.multi_use && si.used > 0) {
		rc = RELM_EREPLAY;            /* a single-use invite makes one relationship */
		goto out;
	}
	if (e.ext.opk_id && e.ext.opk_id != si.opk_id) {
		rc = RELM_ENOTFOUND;
		goto out;
	}
	memcpy(sec.ipk_sk, p.isk, RELM_SIGN_SK_LEN);
	memcpy(sec.spk_priv, si.spk_priv, RELM_KEY_LEN);
	if (si.opk_id) {
		memcpy(sec.opk_priv, si.opk_priv, RELM_KEY_LEN);
		sec.has_opk = 1;
	}
	snprintf(sec.mailbox_host, sizeof sec.mailbox_host, "%s", c->mailbox_host);
	if ((rc = relm_rel_open_initial(&rel, c->env, c->mode, &sec, buf, len, &fx)) != 0)
		goto out;
	if ((rc = relm_store_replay_check_insert(c->st, proton, e.ext.ek, rel->id, now(c))) != 0)
		goto out;
	if ((rc = relm_rel_encode(rel, &blob, &blen)) != 0)
		goto out;
	rel_row(c, &sr, rel, proton, NULL, blob, blen);
	if ((rc = relm_store_rel_put(c->st, &sr)) != 0)
		goto out;
	if ((rc = relm_store_invite_mark_used(c->st, proton, spk_id)) != 0)
		goto out;
	/* relationship.created before the effects' events: a subscriber must
	 * learn of the relationship before its first message.received. */
	{
		char json[96], h[33];
		relm_hex(h, rel->id, RELM_ID_LEN);
		snprintf(json, sizeof json, "{\"relationship\":\"%s\"}", h);
		if ((rc = relm_store_event_append(c->st, "relationship.created", json, now(c), NULL)) != 0)
			goto out;
	}
	if ((rc = relm_store_apply_effects(c->st, rel->id, NULL, &fx, now(c))) != 0)
		goto out;
	rc = relm_store_rel_set_deadline(c->st, rel->id, relm_rel_deadline(rel, c->env));
out:
	sr.state = NULL;
	relm_store_rel_clear(&sr);
	relm_rel_blob_free(blob, blen);
	relm_effects_clear(&fx);
	relm_rel_free(rel);
	relm_store_invite_clear(&si);
	relm_store_proton_clear(&p);
	sodium_memzero(&sec, sizeof sec);
	return rc;
}

int relm_core_envelope(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                       uint64_t seq, const uint8_t *buf, size_t len)
{
	uint8_t rel_id[RELM_ID_LEN], proton[RELM_ID_LEN];
	uint64_t cursor = 0;
	uint32_t spk_id = 0;
	int rc;

	if ((rc = relm_store_begin(c->st)) != 0)
		return rc;
	if ((rc = relm_store_cursor_get(c->st, mailbox, &cursor)) != 0)
		goto done;
	if (seq <= cursor)
		goto done;                       /* redelivered: already processed */
	if (relm_store_rel_by_mailbox(c->st, mailbox, rel_id) == 0)
		rc = receive_on(c, rel_id, buf, len);
	else if (relm_store_invite_by_mailbox(c->st, mailbox, proton, &spk_id) == 0)
		rc = open_initial(c, proton, spk_id, buf, len);
	else
		rc = RELM_ENOTFOUND;
	if (rc != 0 && is_final(rc)) {
		/* Bad bytes are bad forever: report, and move past them. */
		int why = rc;
		relm_store_rollback(c->st);
		if ((rc = relm_store_begin(c->st)) != 0)
			return rc;
		rc = report_bad(c, mailbox, seq, why);
	}
	if (rc == 0)
		rc = relm_store_cursor_set(c->st, mailbox, seq);
done:
	return finish(c, rc);
}

/* ---- timers ---------------------------------------------------------------- */

struct due {
	uint8_t (*ids)[RELM_ID_LEN];
	size_t n, cap;
};

static int due_cb(void *ctx, const uint8_t id[RELM_ID_LEN])
{
	struct due *d = ctx;
	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 16;
		void *v = realloc(d->ids, cap * RELM_ID_LEN);
		if (!v)
			return RELM_ENOMEM;
		d->ids = v;
		d->cap = cap;
	}
	memcpy(d->ids[d->n++], id, RELM_ID_LEN);
	return 0;
}

int relm_core_tick(struct relm_core *c, uint64_t *next)
{
	struct due d = { 0 };
	int rc;

	if ((rc = relm_store_rel_due(c->st, now(c), 256, due_cb, &d)) != 0)
		goto out;
	for (size_t i = 0; i < d.n; i++) {
		struct relm_effects fx;
		struct relm_rel *rel = NULL;

		relm_effects_init(&fx);
		if ((rc = relm_store_begin(c->st)) != 0)
			goto out;
		rc = load(c, d.ids[i], &rel);
		if (rc == 0)
			rc = relm_store_outgoing_due(c->st, d.ids[i], now(c), RELM_MAX_OUTGOING, due_out_cb, rel);
		if (rc == 0)
			rc = load_acks(c, rel);
		if (rc == 0)
			rc = relm_rel_tick(rel, c->env, &fx);
		if (rc == 0)
			rc = relm_store_apply_effects(c->st, d.ids[i], NULL, &fx, now(c));
		if (rc == 0)
			rc = save(c, rel);
		rc = finish(c, rc);
		relm_effects_clear(&fx);
		relm_rel_free(rel);
		if (rc != 0)
			goto out;
	}
	if (next)
		rc = relm_store_next_deadline(c->st, next);
out:
	free(d.ids);
	return rc;
}

static int outbox_done(struct relm_core *c, int64_t seq, const uint8_t msg_id[RELM_ID_LEN],
                       const uint8_t rel[RELM_ID_LEN], int has_msg, int refused)
{
	int rc;

	if ((rc = relm_store_begin(c->st)) != 0)
		return rc;
	rc = relm_store_outbox_mark_posted(c->st, seq, now(c));
	if (rc == 0 && has_msg) {
		struct relm_store_msg m;
		memset(&m, 0, sizeof m);
		/* Only a queued message of ours moves.  For POSTED that is the
		 * store's own rule for STATUS effects (relm_store_apply_effects),
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
				rc = f ? relm_store_apply_effects(c->st, rel, NULL, &fx, now(c)) : RELM_ENOMEM;
			} else {
				rc = RELM_ENOMEM;
			}
			relm_effects_clear(&fx);
		}
	}
	return finish(c, rc);
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

/* ---- mailboxes -------------------------------------------------------------- */

int relm_core_mailboxes(struct relm_core *c,
                        int (*cb)(void *ctx, const uint8_t id[RELM_SIGN_PK_LEN], uint64_t cursor),
                        void *ctx)
{
	return relm_store_mailbox_list(c->st, now(c), cb, ctx);
}

int relm_core_mailbox_sign(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                           const uint8_t *data, size_t len, uint8_t sig[RELM_SIG_LEN])
{
	uint8_t sk[RELM_SIGN_SK_LEN];
	int rc;

	if ((rc = relm_store_mailbox_secret(c->st, mailbox, sk)) != 0)
		return rc;
	crypto_sign_detached(sig, NULL, data, len, sk);
	sodium_memzero(sk, sizeof sk);
	return 0;
}

int relm_core_rel_load(struct relm_core *c, const uint8_t rel[RELM_ID_LEN], struct relm_rel **out)
{
	return load(c, rel, out);
}

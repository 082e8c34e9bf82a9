/*
 * core.c — the engine bound to the store (see core.h): the handle,
 * protons, invites, and relationships being made — by invite.accept on the
 * accepter's side, by the first envelope on the inviter's.  Steps on a
 * relationship that exists follow the durability rule in durability.c.
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sodium.h>
#include "core/core_int.h"
#include "core/apply.h"
#include "wire/invite.h"
#include "wire/addr.h"
#include "crypto/crypto.h"
#include "crypto/x3dh.h"
#include "wire/envelope.h"
#include "wire/payload.h"
#include "wire/mailbox_proto.h"
#include "error.h"

/* struct relm_env.history_get on the store (ctx): message id of rel's
 * history — its kind, the sender's ts and a malloc'd copy of its body
 * (the engine wipes and frees it).  With it a device's receipt copies
 * carry the payloads they acknowledge to its siblings (proto/devices.md
 * §5.4); without it a sibling that could not open an envelope itself lost
 * the message.  RELM_ENOTFOUND, or a store error. */
static int history_get_cb(void *ctx, const uint8_t rel[RELM_ID_LEN], const uint8_t id[RELM_ID_LEN],
                          int *kind, uint64_t *ts, uint8_t **body, size_t *len)
{
	struct relm_store_msg m;
	uint8_t *b = NULL;
	size_t n = 0;
	int rc;

	if ((rc = relm_store_msg_get_body(ctx, rel, id, &m, &b, &n)) != 0)
		return rc;
	*kind = (int)relm_kind_from_name(m.kind);
	*ts = m.ts;
	*body = b;
	*len = b ? n : 0;
	return 0;
}

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
	c->env_own.history_get = history_get_cb;
	c->env_own.history_ctx = st;
	c->env = &c->env_own;
	c->mode = mode;
	c->lease_ttl_ms = RELM_LEASE_TTL_MS;
	snprintf(c->mailbox_host, sizeof c->mailbox_host, "%s", mailbox_host);
	*out = c;
	return 0;
}

void relm_core_free(struct relm_core *c)
{
	if (!c)
		return;
	relm__core_siblings_free(c);
	free(c);
}

int relm_core_mailboxes_changed(struct relm_core *c)
{
	int was = c->mailboxes_new;

	c->mailboxes_new = 0;
	return was;
}

const char *relm_core_mailbox_host(const struct relm_core *c)
{
	return c->mailbox_host;
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
	sr->created = sr->last_activity = relm__core_now(c);
	sr->state = blob;
	sr->state_len = blen;
}

/* relationship.created, in the transaction that stores the relationship,
 * before its first effects: a subscriber hears of the relationship before
 * its first message event. */
static int created(struct relm_core *c, const uint8_t rel[RELM_ID_LEN])
{
	struct relm_event ev;

	relm_event_init(&ev, RELM_EV_RELATIONSHIP_CREATED);
	ev.has = RELM_EVF_REL;
	memcpy(ev.rel, rel, RELM_ID_LEN);
	return relm_store_event_append(c->st, &ev, relm__core_now(c), NULL);
}

/* ---- protons ------------------------------------------------------------ */

int relm__core_proton_created(struct relm_core *c, const uint8_t proton[RELM_ID_LEN])
{
	struct relm_event ev;

	relm_event_init(&ev, RELM_EV_PROTON_CREATED);
	ev.has = RELM_EVF_PROTON;
	memcpy(ev.proton, proton, RELM_ID_LEN);
	return relm_store_event_append(c->st, &ev, relm__core_now(c), NULL);
}

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
	p.created = relm__core_now(c);

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
	if (rc == 0)
		rc = relm__core_proton_created(c, p.id);
	/* the device keys and circle epoch 1, signed by the new IPK */
	if (rc == 0)
		rc = relm__core_circle_ensure(c, p.id);
	if ((rc = relm__core_finish(c, rc)) == 0) {
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
	if ((rc = relm__core_writable(c, proton)) != 0 ||
	    (rc = relm_store_proton_get(c->st, proton, &p, RELM_STORE_WITH_SECRETS)) != 0)
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
	si.created = relm__core_now(c);
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
	rc = relm__core_finish(c, relm_store_invite_put(c->st, &si));
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

int relm_core_invite_accept(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            const char *text, size_t len, const char *label,
                            uint8_t rel_out[RELM_ID_LEN])
{
	struct relm_store_proton p;
	struct relm_store_rel sr;
	struct relm_invite inv;
	struct relm_effects fx;
	struct relm_rel *rel = NULL;
	uint8_t *blob = NULL, rel_out_probe[RELM_ID_LEN];
	size_t blen = 0;
	int rc;

	memset(&p, 0, sizeof p);
	memset(&sr, 0, sizeof sr);
	relm_effects_init(&fx);
	if (label && strlen(label) > RELM_STORE_LABEL_MAX)
		return RELM_EINVAL;
	if ((rc = relm_invite_decode(&inv, text, len)) != 0)
		return rc;
	if (inv.expires_ms && inv.expires_ms <= relm__core_now(c))
		return RELM_EEXPIRED;
	if ((rc = relm__core_writable(c, proton)) != 0)
		return rc;
	if ((rc = relm_store_proton_get(c->st, proton, &p, RELM_STORE_WITH_SECRETS)) != 0)
		return rc;
	/* One relationship per pair of protons (proto/ratchet.md §8.1).  Without this check
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
	rc = relm_store_rel_by_remote(c->st, proton, inv.ipk, rel_out_probe);
	if (rc != RELM_ENOTFOUND) {
		rc = rc == 0 ? RELM_EEXIST : rc;
		goto out;
	}
	if ((rc = relm__core_devices_load(c, proton)) != 0)
		goto out;
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
	if (rc == 0)
		rc = created(c, rel->id);
	if (rc == 0)
		rc = relm__core_step_apply(c, rel, &fx);
	if (rc == 0)
		rc = relm_store_rel_set_deadline(c->st, rel->id, relm_rel_deadline(rel, c->env));
	if ((rc = relm__core_finish(c, rc)) == 0)
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

/* ---- the inviter's side: the first envelope makes the relationship ---- */

int relm__core_open_initial(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            uint32_t spk_id, const uint8_t *buf, size_t len, uint64_t arrived_ms)
{
	struct relm_store_invite si;
	struct relm_store_proton p;
	struct relm_store_rel sr;
	struct relm_invite_secrets sec;
	struct relm_envelope e;
	struct relm_effects fx;
	struct relm_rel *rel = NULL;
	uint8_t rel_id[RELM_ID_LEN], other[RELM_ID_LEN], *blob = NULL;
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
		rc = relm__core_receive_on(c, rel_id, buf, len);
		goto out;
	}
	if ((rc = relm_store_invite_get(c->st, proton, spk_id, &si)) != 0)
		goto out;
	/* When the envelope arrived, where that is known (and not after now):
	 * an accepter whose hello reached the mailbox in time is not refused
	 * for being read late (ratchet.md §8.3 step 3). */
	if (si.expires && si.expires <= (arrived_ms && arrived_ms < relm__core_now(c) ? arrived_ms
	                                                                             : relm__core_now(c))) {
		rc = RELM_EEXPIRED;
		goto out;
	}
	if (!si.multi_use && si.used > 0) {
		rc = RELM_EREPLAY;            /* a single-use invite makes one relationship */
		goto out;
	}
	/* One relationship per pair of protons, on this side too (the accepter
	 * checks it in relm_core_invite_accept): another accepter's hello with
	 * the identity key of a proton this one is already related to — its
	 * second device, or a client that does not check — makes none. */
	rc = relm_store_rel_by_remote(c->st, proton, e.ext.ipk, other);
	if (rc != RELM_ENOTFOUND) {
		rc = rc == 0 ? RELM_EEXIST : rc;
		goto out;
	}
	/* the invite's one-time prekey, or 0 exactly when it has none */
	if (e.ext.opk_id != si.opk_id) {
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
	if ((rc = relm__core_devices_load(c, proton)) != 0)
		goto out;
	if ((rc = relm_rel_open_initial(&rel, c->env, c->mode, &sec, buf, len, &fx)) != 0)
		goto out;
	if ((rc = relm_store_replay_check_insert(c->st, proton, spk_id, e.ext.ek, rel->id, relm__core_now(c))) != 0)
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
	if ((rc = created(c, rel->id)) != 0)
		goto out;
	if ((rc = relm__core_step_apply(c, rel, &fx)) != 0)
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

/* ---- expiry -------------------------------------------------------------------- */

int relm_core_invites_expire(struct relm_core *c,
                             int (*cb)(void *ctx, const uint8_t mailbox[RELM_SIGN_PK_LEN]), void *ctx)
{
	int rc, n;

	if ((rc = relm_store_begin(c->st)) != 0)
		return rc;
	n = relm_store_invite_expire(c->st, relm__core_now(c), cb, ctx);
	rc = relm__core_finish(c, n < 0 ? n : 0);
	return rc ? rc : n;
}

/* ---- mailboxes -------------------------------------------------------------- */

int relm_core_mailboxes(struct relm_core *c,
                        int (*cb)(void *ctx, const uint8_t id[RELM_SIGN_PK_LEN], uint64_t cursor),
                        void *ctx)
{
	return relm_store_mailbox_list(c->st, relm__core_now(c), cb, ctx);
}

/* A relationship's mailbox secret key, from its state blob: the only copy
 * since schema v12 (the store reads no blob): the row by one probe of the
 * mailbox index, as the key column was read, then the key from the blob's
 * head alone (relm_rel_blob_mailbox_key; a whole decode was ~24 µs, for
 * each of a million subscriptions).  The rest of the blob is checked at
 * the relationship's next step, not here. */
static int rel_mailbox_secret(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                              uint8_t sk[RELM_SIGN_SK_LEN])
{
	uint8_t id[RELM_ID_LEN], *state = NULL, key[RELM_SIGN_SK_LEN], pk[RELM_SIGN_PK_LEN];
	size_t len = 0;
	int rc;

	if ((rc = relm_store_rel_state_by_mailbox(c->st, mailbox, id, &state, &len)) != 0)
		return rc;
	if (len == 0) {
		relm_store_buf_free(state, len);
		return RELM_ENOTFOUND;               /* held without state (fanout): not read here */
	}
	/* the key from the blob's head: a whole decode per subscription was
	 * 24 s of a million relationships' first registration */
	rc = relm_rel_blob_mailbox_key(state, len, key, pk);
	relm_store_buf_free(state, len);
	if (rc != 0)
		return RELM_ESTATE;
	/* the row's mailbox must be the blob's: the key signs for it */
	if (sodium_memcmp(pk, mailbox, RELM_SIGN_PK_LEN) != 0)
		rc = RELM_ESTATE;
	else
		memcpy(sk, key, RELM_SIGN_SK_LEN);
	sodium_memzero(key, sizeof key);
	return rc;
}

/* The secret key of any mailbox of ours: an invite's, device or pairing
 * mailbox's from the store, a relationship's from its blob. */
static int mailbox_secret(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                          uint8_t sk[RELM_SIGN_SK_LEN])
{
	int rc = relm_store_mailbox_secret(c->st, mailbox, sk);

	return rc == RELM_ENOTFOUND ? rel_mailbox_secret(c, mailbox, sk) : rc;
}

int relm_core_mailbox_sign(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                           const uint8_t *data, size_t len, uint8_t sig[RELM_SIG_LEN])
{
	uint8_t sk[RELM_SIGN_SK_LEN];
	int rc;

	if ((rc = mailbox_secret(c, mailbox, sk)) == 0)
		crypto_sign_detached(sig, NULL, data, len, sk);
	sodium_memzero(sk, sizeof sk);
	return rc;
}

_Static_assert(RELM_MBOX_REALM_LEN == 32 && RELM_MBOX_READ_KEY_LEN == 32, "core.h spells them 32");

int relm_core_mailbox_read_key(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                               const uint8_t realm[RELM_MBOX_REALM_LEN],
                               uint8_t key[RELM_MBOX_READ_KEY_LEN])
{
	uint8_t sk[RELM_SIGN_SK_LEN];
	int rc;

	if ((rc = mailbox_secret(c, mailbox, sk)) == 0)
		relm_mbox_read_key(key, sk, realm);
	sodium_memzero(sk, sizeof sk);
	return rc;
}

int relm_core_mailbox_ours(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN])
{
	uint8_t sk[RELM_SIGN_SK_LEN], rel[RELM_ID_LEN];
	int rc = relm_store_mailbox_secret(c->st, mailbox, sk);

	sodium_memzero(sk, sizeof sk);
	if (rc != RELM_ENOTFOUND || (rc = relm_store_rel_by_mailbox(c->st, mailbox, rel)) != 0)
		return rc;
	/* a relationship held without state (fanout) is not read here */
	rc = relm_store_stateless_src(c->st, rel, sk);
	sodium_memzero(sk, sizeof sk);
	return rc == 0 ? RELM_ENOTFOUND : rc == RELM_ENOTFOUND ? 0 : rc;
}


/*
 * devices.c — this device in its proton's circle (proto/devices.md §1–§3):
 * the keys behind its device invite, the first circle, and the devices the
 * engine ranks (env->devices) for every relationship step.
 *
 * proton.create makes the device and circle epoch 1 in its transaction.  A
 * proton made before schema v8 has a device row but neither device keys
 * nor a circle: relm__core_circle_ensure makes them, in the caller's step,
 * the first time they are needed (a migration draws no randomness).
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "core/core_int.h"
#include "crypto/crypto.h"
#include "wire/addr.h"
#include "wire/circle.h"
#include "wire/envelope.h"
#include "error.h"

/* Fresh device keys for proton: a device prekey and a device mailbox. */
static void make_keys(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                      struct relm_store_device_keys *k)
{
	uint8_t seed[32];

	memset(k, 0, sizeof *k);
	memcpy(k->proton, proton, RELM_ID_LEN);
	while (k->spk_id == 0)
		k->spk_id = relm__random_between(c->env, 1, 0xffffffffu);
	relm__random(c->env, k->spk_priv, RELM_KEY_LEN);
	relm__random(c->env, seed, sizeof seed);
	relm_sign_keypair_from_seed(k->mailbox_id, k->mailbox_sk, seed);
	sodium_memzero(seed, sizeof seed);
}

/* The device invite of devices.md §3 for this device (d, with its DSK). */
static int device_invite(struct relm_core *c, const struct relm_store_device *d,
                         const struct relm_store_device_keys *k, struct relm_invite *inv)
{
	struct relm_addr a;
	int rc;

	memset(inv, 0, sizeof *inv);
	inv->version = RELM_WIRE_VERSION;
	inv->flags = RELM_INVITE_F_MULTI;             /* no one-time prekey, never expires */
	memcpy(inv->ipk, d->pk, RELM_SIGN_PK_LEN);   /* the DPK in place of the IPK */
	inv->spk_id = k->spk_id;
	relm_x25519_public(inv->spk, k->spk_priv);
	if ((rc = relm_addr_parse(&a, c->mailbox_host, strlen(c->mailbox_host))) != 0)
		return rc;
	memcpy(a.id, k->mailbox_id, RELM_SIGN_PK_LEN);
	a.has_id = 1;
	if (relm_addr_format(inv->mailbox, sizeof inv->mailbox, &a) < 0)
		return RELM_EINVAL;
	return relm_invite_sign(inv, d->sk);
}

int relm__core_circle_ensure(struct relm_core *c, const uint8_t proton[RELM_ID_LEN])
{
	struct relm_store_proton p;
	struct relm_store_device d;
	struct relm_store_device_keys k;
	struct relm_circle *circ = NULL;
	uint8_t *held = NULL, *out = NULL;
	size_t held_len = 0;
	uint64_t epoch = 0;
	int rc, n, have_keys;

	memset(&p, 0, sizeof p);
	memset(&d, 0, sizeof d);
	memset(&k, 0, sizeof k);
	rc = relm_store_device_keys_get(c->st, proton, &k);
	if (rc != 0 && rc != RELM_ENOTFOUND)
		return rc;
	have_keys = rc == 0;
	rc = relm_store_circle_get(c->st, proton, &epoch, &held, &held_len);
	free(held);
	if (rc == 0 && have_keys)
		goto out;                    /* the usual case: nothing to make */
	if (rc != 0 && rc != RELM_ENOTFOUND)
		goto out;
	if ((rc = relm_store_proton_get(c->st, proton, &p, RELM_STORE_WITH_SECRETS)) != 0 ||
	    (rc = relm_store_device_get_self(c->st, proton, &d)) != 0)
		goto out;
	if (!d.has_sk) {
		rc = RELM_ESTATE;
		goto out;
	}
	if (!have_keys) {
		make_keys(c, proton, &k);
		if ((rc = relm_store_device_keys_put(c->st, &k)) != 0)
			goto out;
	}
	/* A circle without this device's invite keys (one a v6 store held) is
	 * replaced by the next epoch, which names this device alone: before
	 * pairing, a proton has exactly one device. */
	if (!(circ = calloc(1, sizeof *circ)) || !(out = malloc(RELM_CIRCLE_MAX))) {
		rc = RELM_ENOMEM;
		goto out;
	}
	memcpy(circ->ipk, p.ipk, RELM_SIGN_PK_LEN);
	circ->epoch = epoch + 1;
	circ->count = 1;
	memcpy(circ->dev[0].id, d.device, RELM_ID_LEN);
	memcpy(circ->dev[0].dpk, d.pk, RELM_SIGN_PK_LEN);
	circ->dev[0].added = circ->epoch;
	/* the circle's label is shorter than the store's: cut, at a UTF-8
	 * character boundary */
	{
		size_t ll = strlen(d.label);
		if (ll > RELM_DEVICE_LABEL_MAX) {
			ll = RELM_DEVICE_LABEL_MAX;
			while (ll > 0 && ((unsigned char)d.label[ll] & 0xc0) == 0x80)
				ll--;
		}
		memcpy(circ->dev[0].label, d.label, ll);
		circ->dev[0].label[ll] = '\0';
	}
	if ((rc = device_invite(c, &d, &k, &circ->dev[0].invite)) != 0)
		goto out;
	if ((n = relm_circle_sign(out, RELM_CIRCLE_MAX, circ, p.isk)) < 0) {
		rc = n;
		goto out;
	}
	rc = relm_store_circle_put(c->st, proton, circ->epoch, out, (size_t)n);
out:
	free(out);
	free(circ);
	relm_store_proton_clear(&p);
	relm_store_device_clear(&d);
	relm_store_device_keys_clear(&k);
	return rc;
}

int relm__ids_push(struct relm__ids *ids, const uint8_t id[RELM_ID_LEN])
{
	if (ids->n == ids->cap) {
		size_t cap = ids->cap ? 2 * ids->cap : 16;
		void *v = realloc(ids->v, cap * RELM_ID_LEN);
		if (!v)
			return RELM_ENOMEM;
		ids->v = v;
		ids->cap = cap;
	}
	memcpy(ids->v[ids->n++], id, RELM_ID_LEN);
	return 0;
}

static int proton_id_cb(void *ctx, const struct relm_store_proton *p)
{
	return relm__ids_push(ctx, p->id);
}

int relm_core_devices_upgrade(struct relm_core *c)
{
	struct relm__ids ids = { 0 };
	int rc;

	if ((rc = relm_store_proton_list(c->st, proton_id_cb, &ids)) != 0)
		goto out;
	if ((rc = relm_store_begin(c->st)) != 0)
		goto out;
	for (size_t i = 0; i < ids.n && rc == 0; i++)
		rc = relm__core_circle_ensure(c, ids.v[i]);
	rc = relm__core_finish(c, rc);
out:
	free(ids.v);
	return rc;
}

/* ---- the device mailbox ------------------------------------------------------ */

struct find_dpk {
	const uint8_t *dpk;
	int sibling;                 /* 1: a sibling's, -1: this device's own */
	uint8_t device[RELM_ID_LEN];
};

static int find_dpk_cb(void *ctx, const struct relm_store_device *d)
{
	struct find_dpk *f = ctx;

	if (sodium_memcmp(d->pk, f->dpk, RELM_SIGN_PK_LEN) != 0)
		return 0;
	f->sibling = d->self ? -1 : 1;
	memcpy(f->device, d->device, RELM_ID_LEN);
	return 1;
}

int relm__core_device_initial(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                              const uint8_t *buf, size_t len)
{
	struct relm_store_device_keys k;
	struct relm_envelope e;
	struct find_dpk f;
	int rc;

	if ((rc = relm_envelope_decode(&e, buf, len)) != 0)
		return rc;
	if (!(e.h.flags & RELM_ENV_F_INITIAL))
		return RELM_EMALFORMED;      /* a device mailbox only ever gets hellos */
	if ((rc = relm_store_device_keys_get(c->st, proton, &k)) != 0)
		return rc;
	rc = e.ext.spk_id == k.spk_id && e.ext.opk_id == 0 ? 0 : RELM_ENOTFOUND;
	relm_store_device_keys_clear(&k);
	if (rc != 0)
		return rc;
	/* devices.md §3: only a device of the circle held may open a sibling
	 * session; anyone else is refused before anything is kept */
	memset(&f, 0, sizeof f);
	f.dpk = e.ext.ipk;
	if ((rc = relm_store_device_list(c->st, proton, find_dpk_cb, &f)) < 0)
		return rc;
	if (f.sibling != 1)
		return RELM_EAUTH;
	return relm__core_session_initial(c, proton, f.device, buf, len);
}

/* ---- the devices the engine ranks ------------------------------------------ */

static int dev_id_cb(void *ctx, const struct relm_store_device *d)
{
	struct relm_devices *ds = ctx;

	if (ds->count >= RELM_MAX_DEVICES)
		return RELM_ESTATE;
	memcpy(ds->ids[ds->count++], d->device, RELM_ID_LEN);
	if (d->self)
		memcpy(ds->self, d->device, RELM_ID_LEN);
	return 0;
}

/* The cache of proton's rows (core_int.h), emptied when the store's
 * generation moved or it holds another proton; `want` its bit. */
unsigned relm__core_devs_cached(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], unsigned want)
{
	uint64_t gen = relm_store_devices_gen(c->st);

	if (c->devs_cache.gen != gen || memcmp(c->devs_cache.proton, proton, RELM_ID_LEN) != 0) {
		memset(&c->devs_cache, 0, sizeof c->devs_cache);
		c->devs_cache.gen = gen;
		memcpy(c->devs_cache.proton, proton, RELM_ID_LEN);
	}
	return c->devs_cache.ok & want;
}

int relm__core_devices_load(struct relm_core *c, const uint8_t proton[RELM_ID_LEN])
{
	struct relm_devices ds;
	int rc;

	if (relm__core_devs_cached(c, proton, 1)) {
		ds = c->devs_cache.list;
	} else {
		memset(&ds, 0, sizeof ds);
		/* the rows come in device id order: the order the engine ranks in */
		if ((rc = relm_store_device_list(c->st, proton, dev_id_cb, &ds)) != 0)
			return rc;
		c->devs_cache.list = ds;
		c->devs_cache.ok |= 1;
	}
	if ((rc = relm__core_view_fill(c, proton, &ds)) != 0)
		return rc;
	c->devs = ds;
	memcpy(c->devs_proton, proton, RELM_ID_LEN);
	/* no device rows (a store that never had them): one device, as before */
	c->env_own.devices = ds.count ? &c->devs : NULL;
	return 0;
}

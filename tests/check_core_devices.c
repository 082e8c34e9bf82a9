/*
 * check_core_devices.c — a proton's devices in lib/core (proto/devices.md
 * §1–§3): proton.create makes this device's keys and circle epoch 1, a
 * store from before schema v7 gets them from relm_core_devices_upgrade,
 * and every relationship step sees the proton's devices as the store's
 * circle rows say.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include <sqlite3.h>
#include "util_rand.h"
#include "util_world.h"
#include "util_xdev.h"
#include "core/core.h"
#include "engine/effects.h"
#include "engine/rel.h"
#include "engine/rel_state.h"
#include "crypto/crypto.h"
#include "wire/addr.h"
#include "wire/bundle.h"
#include "wire/circle.h"
#include "wire/invite.h"
#include "wire/sibling.h"
#include "error.h"

enum { ROUNDS = 5 };

static uint64_t clock_ms;
static struct tu_daemon A, B, A2;     /* A2: a second device of alice's */
static struct tu_net net;
static uint8_t pa[16], pb[16], ipk_a[32];

static void setup(void)
{
	uint8_t ipk[32];
	clock_ms = 1700000000000ull;
	memset(&net, 0, sizeof net);
	tu_daemon_mkdir(&A, "alice");
	tu_daemon_mkdir(&B, "bob");
	tu_daemon_mkdir(&A2, "alice2");
	ck_assert_int_eq(tu_daemon_open(&A, &clock_ms, 1, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(tu_daemon_open(&B, &clock_ms, 2, "127.0.0.2:7427"), 0);
	ck_assert_int_eq(relm_core_proton_create(A.core, "alice", pa, ipk_a), 0);
	ck_assert_int_eq(relm_core_proton_create(B.core, "bob", pb, ipk), 0);
}

static void teardown(void)
{
	tu_daemon_close(&A);
	tu_daemon_close(&B);
	tu_daemon_rmdir(&A);
	tu_daemon_rmdir(&B);
	tu_daemon_rmdir(&A2);
	tu_net_free(&net);
}

static int count_dev_cb(void *ctx, const struct relm_store_device *d)
{
	(void)d;
	(*(int *)ctx)++;
	return 0;
}

/* The held circle of d's proton decodes, is the proton's, and names
 * exactly this device with a device invite that is its own (devices.md
 * §2, §3).  Returns its epoch. */
static uint64_t check_circle(struct tu_daemon *d, const uint8_t proton[16], const uint8_t ipk[32])
{
	struct relm_circle *c = calloc(1, sizeof *c);
	struct relm_store_device self;
	struct relm_store_device_keys k;
	struct relm_addr a;
	uint8_t *buf = NULL, spk[32];
	size_t len = 0;
	uint64_t epoch = 0;

	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(relm_store_circle_get(d->st, proton, &epoch, &buf, &len), 0);
	ck_assert_int_eq(relm_circle_decode(c, buf, len), 0);
	ck_assert_int_eq(relm_circle_accept(NULL, NULL, 0, c, buf, len, ipk), 1);
	ck_assert_uint_eq(c->epoch, epoch);
	ck_assert_int_eq(memcmp(c->ipk, ipk, 32), 0);
	ck_assert_uint_eq(c->count, 1);
	ck_assert_int_eq(relm_store_device_get_self(d->st, proton, &self), 0);
	ck_assert_int_eq(memcmp(c->dev[0].id, self.device, 16), 0);
	ck_assert_int_eq(memcmp(c->dev[0].dpk, self.pk, 32), 0);
	ck_assert_uint_eq(c->dev[0].added, epoch);
	ck_assert_str_eq(c->dev[0].label, self.label);
	/* the device invite: the DPK in place of the IPK, multi-use, never
	 * expires, no one-time prekey, the device prekey and device mailbox */
	ck_assert_int_eq(memcmp(c->dev[0].invite.ipk, self.pk, 32), 0);
	ck_assert_uint_eq(c->dev[0].invite.flags, RELM_INVITE_F_MULTI);
	ck_assert_uint_eq(c->dev[0].invite.expires_ms, 0);
	ck_assert_int_eq(relm_store_device_keys_get(d->st, proton, &k), 0);
	ck_assert_uint_eq(c->dev[0].invite.spk_id, k.spk_id);
	relm_x25519_public(spk, k.spk_priv);
	ck_assert_int_eq(memcmp(c->dev[0].invite.spk, spk, 32), 0);
	ck_assert_int_eq(relm_addr_parse(&a, c->dev[0].invite.mailbox, strlen(c->dev[0].invite.mailbox)), 0);
	ck_assert(a.has_id);
	ck_assert_int_eq(memcmp(a.id, k.mailbox_id, 32), 0);
	ck_assert_str_eq(a.host, "127.0.0.1");
	/* the device keys are not the proton's or a relationship's */
	ck_assert(memcmp(self.pk, ipk, 32) != 0);
	relm_store_device_keys_clear(&k);
	relm_store_device_clear(&self);
	free(buf);
	free(c);
	return epoch;
}

/* A sibling of alice's in her circle rows (device 7e…, fresh keys, not
 * signed into a circle: the rows are what steps read). */
static void add_sibling(struct relm_store_device *sib)
{
	memset(sib, 0, sizeof *sib);
	memcpy(sib->proton, pa, 16);
	memset(sib->device, 0x7e, 16);
	crypto_sign_keypair(sib->pk, sib->sk);
	sib->epoch = 2;
	sib->added = clock_ms;
	ck_assert_int_eq(relm_store_begin(A.st), 0);
	ck_assert_int_eq(relm_store_device_put(A.st, sib), 0);
	ck_assert_int_eq(relm_store_commit(A.st), 0);
}

START_TEST(test_proton_create_makes_circle)
{
	int n = 0;

	ck_assert_uint_eq(check_circle(&A, pa, ipk_a), 1);
	ck_assert_int_eq(relm_store_device_list(A.st, pa, count_dev_cb, &n), 0);
	ck_assert_int_eq(n, 1);
	/* nothing to make: the circle and keys stay as they were */
	{
		struct relm_store_device_keys k1, k2;
		uint8_t *b1, *b2;
		size_t l1, l2;
		uint64_t e1, e2;
		ck_assert_int_eq(relm_store_device_keys_get(A.st, pa, &k1), 0);
		ck_assert_int_eq(relm_store_circle_get(A.st, pa, &e1, &b1, &l1), 0);
		ck_assert_int_eq(relm_core_devices_upgrade(A.core), 0);
		ck_assert_int_eq(relm_store_device_keys_get(A.st, pa, &k2), 0);
		ck_assert_int_eq(relm_store_circle_get(A.st, pa, &e2, &b2, &l2), 0);
		ck_assert_int_eq(sodium_memcmp(&k1, &k2, sizeof k1), 0);
		ck_assert_uint_eq(e1, e2);
		ck_assert_uint_eq(l1, l2);
		ck_assert_int_eq(memcmp(b1, b2, l1), 0);
		relm_store_device_keys_clear(&k1);
		relm_store_device_keys_clear(&k2);
		free(b1);
		free(b2);
	}
}
END_TEST

/* Two protons of one daemon: each its own device, keys and circle. */
START_TEST(test_two_protons_two_circles)
{
	uint8_t p2[16], ipk2[32];
	struct relm_store_device_keys k1, k2;
	struct relm_store_device d1, d2;

	ck_assert_int_eq(relm_core_proton_create(A.core, "work", p2, ipk2), 0);
	ck_assert_uint_eq(check_circle(&A, p2, ipk2), 1);
	ck_assert_int_eq(relm_store_device_keys_get(A.st, pa, &k1), 0);
	ck_assert_int_eq(relm_store_device_keys_get(A.st, p2, &k2), 0);
	ck_assert(memcmp(k1.mailbox_id, k2.mailbox_id, 32) != 0);
	ck_assert_int_eq(relm_store_device_get_self(A.st, pa, &d1), 0);
	ck_assert_int_eq(relm_store_device_get_self(A.st, p2, &d2), 0);
	ck_assert(memcmp(d1.device, d2.device, 16) != 0);
	ck_assert(memcmp(d1.pk, d2.pk, 32) != 0);
	relm_store_device_keys_clear(&k1);
	relm_store_device_keys_clear(&k2);
	relm_store_device_clear(&d1);
	relm_store_device_clear(&d2);
}
END_TEST

/* A proton as a v6 store held it (a device row, no device keys, no circle
 * or a placeholder one) gets both from relm_core_devices_upgrade, once. */
START_TEST(test_upgrade_v6_proton)
{
	sqlite3 *db = relm__store_db(A.st);

	ck_assert_int_eq(sqlite3_exec(db, "DELETE FROM device_keys; DELETE FROM circles", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(relm_core_devices_upgrade(A.core), 0);
	ck_assert_uint_eq(check_circle(&A, pa, ipk_a), 1);
	/* a placeholder circle without keys: the next epoch replaces it */
	ck_assert_int_eq(sqlite3_exec(db, "DELETE FROM device_keys; DELETE FROM circles;"
	                                  "INSERT INTO circles SELECT id, 3, X'00' FROM protons", NULL, NULL, NULL),
	                 SQLITE_OK);
	ck_assert_int_eq(relm_core_devices_upgrade(A.core), 0);
	ck_assert_uint_eq(check_circle(&A, pa, ipk_a), 4);
	/* bob's store was not touched by alice's upgrade, and is complete */
	ck_assert_int_eq(relm_core_devices_upgrade(B.core), 0);
}
END_TEST

/* Every relationship step takes its proton's devices from the store.
 * With a sibling in the device rows, a send makes a copy for it
 * (devices.md §5), to go on a sibling session opened from the sibling's
 * device invite in the circle; a row the signed circle does not name has
 * no invite, so the step is refused (bad_state) and rolled back whole
 * rather than drop the copy; with the row gone the same send goes
 * through. */
START_TEST(test_steps_see_the_devices)
{
	char inv[RELM_INVITE_TEXT_MAX];
	struct tu_daemon *ds[2] = { &A, &B };
	struct relm_store_device sib;
	uint8_t rb[16], id[16];
	int was_new = 0;

	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 0, 0, inv, sizeof inv, NULL), 0);
	ck_assert_int_eq(relm_core_invite_accept(B.core, pb, inv, strlen(inv), "alice", rb), 0);
	tu_settle(ds, 2, &net, 5, 3000);
	ck_assert_int_eq(relm_core_message_send(A.core, rb, "one", 3, NULL, id, &was_new), 0);
	ck_assert_int_eq(was_new, 1);
	tu_settle(ds, 2, &net, 5, 3000);
	ck_assert_int_eq(tu_history_count(&B, rb, 1), 1);

	add_sibling(&sib);
	ck_assert_int_eq(relm_core_message_send(A.core, rb, "two", 3, NULL, id, &was_new), RELM_ESTATE);
	ck_assert_int_eq(was_new, 0);
	ck_assert_int_eq(tu_history_count(&A, rb, 0), 1);

	ck_assert_int_eq(sqlite3_exec(relm__store_db(A.st), "DELETE FROM devices WHERE self=0", NULL, NULL, NULL),
	                 SQLITE_OK);
	ck_assert_int_eq(relm_core_message_send(A.core, rb, "two", 3, NULL, id, &was_new), 0);
	ck_assert_int_eq(was_new, 1);
	tu_settle(ds, 2, &net, 5, 3000);
	ck_assert_int_eq(tu_history_count(&B, rb, 1), 2);
}
END_TEST

/* The held circle of alice's proton, decoded (free it). */
static struct relm_circle *held_circle(void)
{
	struct relm_circle *c = calloc(1, sizeof *c);
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t epoch = 0;

	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(relm_store_circle_get(A.st, pa, &epoch, &buf, &len), 0);
	ck_assert_int_eq(relm_circle_decode(c, buf, len), 0);
	free(buf);
	return c;
}

/* A hello to alice's device invite, sent by whoever holds sign_sk: the
 * envelope bytes (malloc'd). */
static uint8_t *hello_to_device(const struct relm_invite *inv, const uint8_t sign_sk[64], size_t *len)
{
	struct relm_effects fx;
	struct relm_rel *rel = NULL;
	uint8_t *out = NULL;

	relm_effects_init(&fx);
	ck_assert_int_eq(relm_rel_accept(&rel, &B.env, RELM_MODE_STRICT, sign_sk, inv, "127.0.0.9:7427", &fx), 0);
	for (size_t i = 0; i < fx.n; i++)
		if (fx.v[i].type == RELM_FX_POST) {
			ck_assert_str_eq(fx.v[i].to, inv->mailbox);
			out = malloc(fx.v[i].len);
			memcpy(out, fx.v[i].data, fx.v[i].len);
			*len = fx.v[i].len;
		}
	ck_assert_ptr_nonnull(out);
	relm_effects_clear(&fx);
	relm_rel_free(rel);
	return out;
}

struct mb_find {
	const uint8_t *id;
	int found;
	uint64_t cursor;
};

static int mb_find_cb(void *ctx, const uint8_t id[32], uint64_t cursor)
{
	struct mb_find *f = ctx;
	if (memcmp(id, f->id, 32) == 0) {
		f->found++;
		f->cursor = cursor;
	}
	return 0;
}

static uint64_t device_mailbox_cursor(const uint8_t mbox[32])
{
	struct mb_find f = { mbox, 0, 0 };
	ck_assert_int_eq(relm_core_mailboxes(A.core, mb_find_cb, &f), 0);
	ck_assert_int_eq(f.found, 1);
	return f.cursor;
}

static int count_rels_cb(void *ctx, const struct relm_store_rel *r)
{
	(void)r;
	(*(int *)ctx)++;
	return 0;
}

struct ev_last {
	int n;
	int code;
	uint64_t seq;
};

static int undecryptable_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	struct ev_last *e = ctx;
	(void)seq;
	(void)ts;
	if (ev->type == RELM_EV_ENVELOPE_UNDECRYPTABLE) {
		e->n++;
		e->code = ev->code;
		e->seq = ev->mailbox_seq;
	}
	return 0;
}

static int count_type_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	int *n = ctx;
	(void)seq;
	(void)ts;
	if (ev->type == n[1])
		n[0]++;
	return 0;
}

static int count_events_of(struct tu_daemon *d, int type)
{
	int n[2] = { 0, type };
	ck_assert_int_eq(relm_store_event_list(d->st, 0, 0, count_type_cb, n), 0);
	return n[0];
}

/* The device mailbox (devices.md §3) is read like every mailbox of ours:
 * it is in the list with its cursor, its key signs subscriptions, and
 * what arrives there is judged by the circle.  A hello from a key that is
 * not a sibling's DPK (here bob's IPK, who learnt the device invite) is
 * refused with auth_failed, and nothing is made; so is junk (each
 * reported once, the cursor advanced); a sibling's makes a sibling
 * session, which is not listed, raises no relationship.created and takes
 * no message.send. */
START_TEST(test_device_mailbox)
{
	struct relm_circle *circ = held_circle();
	struct relm_store_device_keys k;
	struct relm_store_proton bob;
	struct relm_store_device sib;
	struct ev_last ev = { 0, 0, 0 };
	uint8_t sig[64], *hello;
	size_t len = 0;
	int nrels = 0;

	ck_assert_int_eq(relm_store_device_keys_get(A.st, pa, &k), 0);
	ck_assert_uint_eq(device_mailbox_cursor(k.mailbox_id), 0);
	ck_assert_int_eq(relm_core_mailbox_sign(A.core, k.mailbox_id, (const uint8_t *)"x", 1, sig), 0);
	ck_assert_int_eq(crypto_sign_verify_detached(sig, (const uint8_t *)"x", 1, k.mailbox_id), 0);

	/* a stranger's hello */
	ck_assert_int_eq(relm_store_proton_get(B.st, pb, &bob, RELM_STORE_WITH_SECRETS), 0);
	hello = hello_to_device(&circ->dev[0].invite, bob.isk, &len);
	ck_assert_int_eq(relm_core_envelope(A.core, k.mailbox_id, 1, hello, len), 0);
	free(hello);
	ck_assert_uint_eq(device_mailbox_cursor(k.mailbox_id), 1);
	ck_assert_int_eq(relm_store_event_list(A.st, 0, 0, undecryptable_cb, &ev), 0);
	ck_assert_int_eq(ev.n, 1);
	ck_assert_int_eq(ev.code, RELM_EAUTH);
	ck_assert_uint_eq(ev.seq, 1);

	/* junk */
	ck_assert_int_eq(relm_core_envelope(A.core, k.mailbox_id, 2, (const uint8_t *)"junk", 4), 0);
	ck_assert_uint_eq(device_mailbox_cursor(k.mailbox_id), 2);

	/* a sibling's, by the DPK the circle rows hold */
	add_sibling(&sib);
	hello = hello_to_device(&circ->dev[0].invite, sib.sk, &len);
	ck_assert_int_eq(relm_core_envelope(A.core, k.mailbox_id, 3, hello, len), 0);
	/* redelivered: already judged */
	ck_assert_int_eq(relm_core_envelope(A.core, k.mailbox_id, 3, hello, len), 0);
	/* the same hello at a later position: the session it made, not a second */
	ck_assert_int_eq(relm_core_envelope(A.core, k.mailbox_id, 4, hello, len), 0);
	free(hello);
	ck_assert_uint_eq(device_mailbox_cursor(k.mailbox_id), 4);
	memset(&ev, 0, sizeof ev);
	ck_assert_int_eq(relm_store_event_list(A.st, 0, 0, undecryptable_cb, &ev), 0);
	ck_assert_int_eq(ev.n, 2);                 /* the stranger's and the junk */
	/* a sibling session, which is not a relationship of the proton */
	{
		uint8_t sess[16], who[16], dev[16];
		struct relm_store_rel r;
		ck_assert_int_eq(relm_store_sibling_session_find(A.st, pa, sib.device, sess), 0);
		ck_assert_int_eq(relm_store_sibling_session_get(A.st, sess, who, dev), 0);
		ck_assert_int_eq(memcmp(who, pa, 16), 0);
		ck_assert_int_eq(memcmp(dev, sib.device, 16), 0);
		ck_assert_int_eq(relm_store_rel_get(A.st, sess, &r, 0), 0);
		ck_assert_int_eq(memcmp(r.remote_ipk, sib.pk, 32), 0);
		relm_store_rel_clear(&r);
		ck_assert_int_eq(relm_core_message_send(A.core, sess, "x", 1, NULL, dev, &nrels), RELM_ENOTFOUND);
		nrels = 0;
	}
	ck_assert_int_eq(relm_store_rel_list(A.st, pa, NULL, 0, count_rels_cb, &nrels), 0);
	ck_assert_int_eq(nrels, 0);
	ck_assert_int_eq(count_events_of(&A, RELM_EV_RELATIONSHIP_CREATED), 0);

	relm_store_proton_clear(&bob);
	relm_store_device_keys_clear(&k);
	relm_store_device_clear(&sib);
	free(circ);
}
END_TEST

/* ---- two devices of alice ------------------------------------------------ */

/* Make A2 a second device of alice's proton, as pairing will (issue 15):
 * the proton's keys, a device of its own with its device keys, circle
 * epoch 2 naming both devices signed by the IPK on both, and a copy of
 * relationship rb as A holds it (its cursor too).  Nothing has been
 * exchanged since the copy, so both devices start from one state. */
static void make_a2(const uint8_t rb[16])
{
	struct relm_store_proton p;
	struct relm_store_device d1, d2, row;
	struct relm_store_rel r;
	struct relm_circle *c1 = held_circle(), *c2 = calloc(1, sizeof *c2);
	uint8_t seed[32], *buf = NULL, *out = malloc(RELM_CIRCLE_MAX);
	uint64_t epoch, cursor = 0;
	size_t len;
	int n;

	ck_assert_int_eq(tu_daemon_open(&A2, &clock_ms, 3, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(relm_store_proton_get(A.st, pa, &p, RELM_STORE_WITH_SECRETS), 0);
	memset(&d2, 0, sizeof d2);
	memcpy(d2.proton, pa, 16);
	memset(d2.device, 0xd2, 16);
	snprintf(d2.label, sizeof d2.label, "tablet");
	d2.self = 1;
	randombytes_buf(seed, sizeof seed);
	relm_sign_keypair_from_seed(d2.pk, d2.sk, seed);
	d2.has_sk = 1;
	d2.epoch = 2;
	d2.added = clock_ms;
	ck_assert_int_eq(relm_store_begin(A2.st), 0);
	ck_assert_int_eq(relm_store_proton_put(A2.st, &p), 0);
	ck_assert_int_eq(relm_store_device_put(A2.st, &d2), 0);
	ck_assert_int_eq(relm_store_commit(A2.st), 0);
	/* its device keys and a circle of its own, which epoch 2 replaces */
	ck_assert_int_eq(relm_core_devices_upgrade(A2.core), 0);
	ck_assert_int_eq(relm_store_circle_get(A2.st, pa, &epoch, &buf, &len), 0);
	ck_assert_int_eq(relm_circle_decode(c2, buf, len), 0);
	free(buf);
	ck_assert_uint_eq(c1->count, 1);
	c1->dev[1] = c2->dev[0];
	c1->dev[1].added = 2;
	c1->count = 2;
	c1->epoch = 2;
	n = relm_circle_sign(out, RELM_CIRCLE_MAX, c1, p.isk);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(relm_store_device_get_self(A.st, pa, &d1), 0);
	for (int i = 0; i < 2; i++) {
		struct tu_daemon *d = i ? &A2 : &A;
		row = i ? d1 : d2;           /* the other device, as a sibling row */
		row.self = 0;
		row.has_sk = 0;
		memset(row.sk, 0, sizeof row.sk);
		ck_assert_int_eq(relm_store_begin(d->st), 0);
		ck_assert_int_eq(relm_store_circle_put(d->st, pa, 2, out, (size_t)n), 0);
		ck_assert_int_eq(relm_store_device_put(d->st, &row), 0);
		ck_assert_int_eq(relm_store_commit(d->st), 0);
	}
	/* the relationship, as A holds it */
	ck_assert_int_eq(relm_store_rel_get(A.st, rb, &r, RELM_STORE_WITH_STATE | RELM_STORE_WITH_SECRETS), 0);
	ck_assert_int_eq(relm_store_cursor_get(A.st, r.mailbox_id, &cursor), 0);
	ck_assert_int_eq(relm_store_begin(A2.st), 0);
	ck_assert_int_eq(relm_store_rel_put(A2.st, &r), 0);
	ck_assert_int_eq(relm_store_cursor_set(A2.st, r.mailbox_id, cursor), 0);
	ck_assert_int_eq(relm_store_commit(A2.st), 0);
	relm_store_rel_clear(&r);
	relm_store_proton_clear(&p);
	relm_store_device_clear(&d1);
	relm_store_device_clear(&d2);
	sodium_memzero(seed, sizeof seed);
	free(out);
	free(c1);
	free(c2);
}

static int origin_cb(void *ctx, const struct relm_store_msg *m)
{
	int *n = ctx;               /* [self, sibling] of sent messages */
	if (!m->direction_in)
		n[m->origin == RELM_ORIGIN_SIBLING]++;
	return 0;
}

/* Sent messages of d in rb: how many it sent itself, how many a sibling. */
static void sent_origins(struct tu_daemon *d, const uint8_t rb[16], int *self, int *sibling)
{
	int n[2] = { 0, 0 };
	ck_assert_int_eq(relm_store_msg_list(d->st, rb, 0, 0, origin_cb, n), 0);
	*self = n[0];
	*sibling = n[1];
}

static int chosen_of(struct tu_daemon *d, const uint8_t rb[16], uint8_t node[16])
{
	struct relm_rel *rel = NULL;
	struct relm_rel_info info;
	int i;

	ck_assert_int_eq(relm_core_rel_load(d->core, rb, &rel), 0);
	relm_rel_describe(rel, &info);
	i = info.chosen;
	if (i >= 0)
		memcpy(node, info.nodes[i].id, 16);
	relm_rel_free(rel);
	return i;
}

/* Two devices of alice and bob (devices.md §5): both alice devices send at
 * the same moment, before either hears of the other's send.  Bob gets each
 * message once; each alice device holds both sends (its own as self, the
 * sibling's, from the copy, as sibling) and bob's replies; after one more
 * exchange each way both choose the same node. */
START_TEST(test_two_devices_converge)
{
	char inv[RELM_INVITE_TEXT_MAX];
	struct tu_daemon *ds[3] = { &A, &B, &A2 };
	uint8_t rb[16], id[16], n1[16], n2[16];
	int was_new = 0, rounds = ROUNDS;

	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 0, 0, inv, sizeof inv, NULL), 0);
	ck_assert_int_eq(relm_core_invite_accept(B.core, pb, inv, strlen(inv), "alice", rb), 0);
	tu_settle(ds, 2, &net, 5, 3000);
	make_a2(rb);
	for (int k = 0; k < rounds; k++) {
		char body[32];
		snprintf(body, sizeof body, "a1 %d", k);
		ck_assert_int_eq(relm_core_message_send(A.core, rb, body, strlen(body), NULL, id, &was_new), 0);
		snprintf(body, sizeof body, "a2 %d", k);
		ck_assert_int_eq(relm_core_message_send(A2.core, rb, body, strlen(body), NULL, id, &was_new), 0);
		tu_settle(ds, 3, &net, 10, 1000);
	}
	tu_settle(ds, 3, &net, 20, 3000);
	ck_assert_int_eq(tu_history_count(&B, rb, 1), 2 * rounds);
	ck_assert_int_eq(tu_history_count(&A, rb, 0), 2 * rounds);
	ck_assert_int_eq(tu_history_count(&A2, rb, 0), 2 * rounds);
	/* one more exchange each way */
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "b", 1, NULL, id, &was_new), 0);
	tu_settle(ds, 3, &net, 20, 3000);
	ck_assert_int_eq(relm_core_message_send(A.core, rb, "a", 1, NULL, id, &was_new), 0);
	tu_settle(ds, 3, &net, 20, 3000);
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "b", 1, NULL, id, &was_new), 0);
	tu_settle(ds, 3, &net, 20, 3000);
	ck_assert_int_eq(tu_history_count(&B, rb, 1), 2 * rounds + 1);
	ck_assert_int_eq(tu_history_count(&A, rb, 1), 2);
	ck_assert_int_eq(tu_history_count(&A2, rb, 1), 2);
	ck_assert_int_eq(tu_history_count(&A2, rb, 0), 2 * rounds + 1);
	{
		int self = 0, sib = 0, nrels = 0;
		uint8_t sess[16];
		sent_origins(&A, rb, &self, &sib);
		ck_assert_int_eq(self, rounds + 1);
		ck_assert_int_eq(sib, rounds);
		sent_origins(&A2, rb, &self, &sib);
		ck_assert_int_eq(self, rounds);
		ck_assert_int_eq(sib, rounds + 1);
		/* bob sees one peer; alice's sessions are not relationships */
		ck_assert_int_eq(relm_store_rel_list(B.st, pb, NULL, 0, count_rels_cb, &nrels), 0);
		ck_assert_int_eq(nrels, 1);
		nrels = 0;
		ck_assert_int_eq(relm_store_rel_list(A2.st, pa, NULL, 0, count_rels_cb, &nrels), 0);
		ck_assert_int_eq(nrels, 1);
		ck_assert_int_eq(relm_store_sibling_session_find(A.st, pa, (uint8_t[16]){ 0xd2, 0xd2, 0xd2, 0xd2,
		                 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2, 0xd2 }, sess), 0);
	}
	ck_assert_int_ge(chosen_of(&A, rb, n1), 0);
	ck_assert_int_ge(chosen_of(&A2, rb, n2), 0);
	ck_assert_int_eq(memcmp(n1, n2, 16), 0);
	tu_daemon_close(&A2);
	tu_daemon_rmdir(&A2);
}
END_TEST


struct tries_seen {
	uint8_t id[16];
	int64_t tries;
};

static int tries_cb(void *ctx, const struct relm_store_outgoing *o)
{
	struct tries_seen *t = ctx;
	if (memcmp(o->id, t->id, 16) == 0)
		t->tries = o->tries;
	return 0;
}

/* The tries of message id in d's retransmission queue (rb), -1 if none. */
static int64_t tries_of(struct tu_daemon *d, const uint8_t rb[16], const uint8_t id[16])
{
	struct tries_seen t = { .tries = -1 };
	memcpy(t.id, id, 16);
	ck_assert_int_eq(relm_store_outgoing_due(d->st, rb, UINT64_MAX, 0, tries_cb, &t), 0);
	return t.tries;
}

/* Tries are counted over every device (ratchet.md §6.4): each copy of
 * alice's retransmissions that reaches her tablet is one more try of the
 * message in the tablet's queue — its row was written with the tries
 * reset to 1 by every copy, so a tablet taking over would have started
 * the count again. */
START_TEST(test_sibling_retries_count)
{
	char inv[RELM_INVITE_TEXT_MAX];
	struct tu_daemon *ds[3] = { &A, &B, &A2 }, *alice[2] = { &A, &A2 };
	uint8_t rb[16], id[16];
	int was_new = 0;

	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 0, 0, inv, sizeof inv, NULL), 0);
	ck_assert_int_eq(relm_core_invite_accept(B.core, pb, inv, strlen(inv), "alice", rb), 0);
	tu_settle(ds, 2, &net, 5, 3000);
	make_a2(rb);
	ck_assert_int_eq(relm_core_message_send(A.core, rb, "unanswered", 10, NULL, id, &was_new), 0);
	/* bob reads nothing: five minutes of alice's retransmissions, under
	 * the tablet's takeover time (10 min after each copy) */
	tu_settle(alice, 2, &net, 30, 10000);
	ck_assert_int_ge(tries_of(&A, rb, id), 4);
	ck_assert_int_eq(tries_of(&A2, rb, id), tries_of(&A, rb, id));
	tu_daemon_close(&A2);
	tu_daemon_rmdir(&A2);
}
END_TEST

/* Bundling (devices.md §4.5): a turn's copies to a sibling leave as one
 * bundle, sent by the step that runs just before the batch commits; a
 * turn rolled back sends nothing; outside a batch every copy goes alone. */
START_TEST(test_bundled_turn)
{
	char inv[RELM_INVITE_TEXT_MAX];
	struct tu_daemon *ds[3] = { &A, &B, &A2 };
	uint8_t rb[16], id[16];
	int was_new = 0;
	size_t before;

	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 0, 0, inv, sizeof inv, NULL), 0);
	ck_assert_int_eq(relm_core_invite_accept(B.core, pb, inv, strlen(inv), "alice", rb), 0);
	tu_settle(ds, 2, &net, 5, 3000);
	make_a2(rb);
	ck_assert_int_eq(relm_core_bundle(A.core, 1), 0);
	/* the first copy to A2 opens the session to it (its hello) */
	ck_assert_int_eq(relm_core_message_send(A.core, rb, "first", 5, NULL, id, &was_new), 0);
	tu_settle(ds, 3, &net, 10, 1000);
	ck_assert_int_eq(tu_history_count(&A2, rb, 0), 1);

	/* three sends in one turn: three envelopes to bob, one to A2 */
	before = net.n;
	ck_assert_int_eq(relm_store_batch_begin(A.st), 0);
	ck_assert_int_eq(relm_core_bundle(A.core, 0), RELM_EBUSY);   /* only between turns */
	for (int k = 0; k < 3; k++) {
		char body[32];
		snprintf(body, sizeof body, "turn %d", k);
		ck_assert_int_eq(relm_core_message_send(A.core, rb, body, strlen(body), NULL, id, &was_new), 0);
	}
	ck_assert_int_eq(relm_store_batch_commit(A.st), 0);
	ck_assert_int_eq(tu_pump(&A, &net), 0);
	ck_assert_uint_eq(net.n - before, 4);

	/* a turn rolled back: its copies go with it */
	before = net.n;
	ck_assert_int_eq(relm_store_batch_begin(A.st), 0);
	ck_assert_int_eq(relm_core_message_send(A.core, rb, "lost", 4, NULL, id, &was_new), 0);
	ck_assert_int_eq(relm_store_batch_rollback(A.st), 0);
	ck_assert_int_eq(tu_pump(&A, &net), 0);
	ck_assert_uint_eq(net.n - before, 0);

	/* A2 applies the bundle: each copy once, as a sibling's */
	tu_settle(ds, 3, &net, 20, 1000);
	ck_assert_int_eq(tu_history_count(&A2, rb, 0), 4);
	ck_assert_int_eq(tu_history_count(&B, rb, 1), 4);
	{
		int self = 0, sib = 0;
		sent_origins(&A2, rb, &self, &sib);
		ck_assert_int_eq(sib, 4);
		ck_assert_int_eq(self, 0);
	}

	/* outside a turn, a send's copy goes at once, alone */
	before = net.n;
	ck_assert_int_eq(relm_core_message_send(A.core, rb, "alone", 5, NULL, id, &was_new), 0);
	ck_assert_int_eq(tu_pump(&A, &net), 0);
	ck_assert_uint_eq(net.n - before, 2);
	tu_settle(ds, 3, &net, 20, 1000);
	ck_assert_int_eq(tu_history_count(&A2, rb, 0), 5);
	ck_assert_int_eq(count_events_of(&A2, RELM_EV_SIBLING_REFUSED), 0);
	tu_daemon_close(&A2);
	tu_daemon_rmdir(&A2);
}
END_TEST

/* ---- what siblings say of the proton: circle, state_req, state ---------- */

/* A device the test plays itself (util_xdev.h), sending to A2. */
static void xdev_open(struct tu_xdev *x)
{
	tu_xdev_open(x, &A2, pa, &B.env, &net);
}

static void xdev_send(struct tu_xdev *x, const uint8_t *frame, size_t len)
{
	tu_xdev_send(x, &A2, &B.env, &net, frame, len);
}

/* x reads what A2 posted on its session: the state frames' reassembled
 * state of relationship rel (malloc'd; NULL if none came), and how many
 * transfers came. */
static uint8_t *xdev_read_state(struct tu_xdev *x, const uint8_t rel[16], size_t *len, int *transfers,
                                size_t *from)
{
	uint8_t *st = NULL;

	ck_assert_int_eq(tu_pump(&A2, &net), 0);
	for (; *from < net.n; (*from)++) {
		struct relm_effects fx;
		if (memcmp(net.v[*from].mailbox, x->sess->mbox_pk, 32) != 0)
			continue;
		relm_effects_init(&fx);
		ck_assert_int_eq(relm_rel_receive(x->sess, &B.env, net.v[*from].buf, net.v[*from].len, &fx), 0);
		for (size_t i = 0; i < fx.n; i++) {
			struct relm_sib_msg m;
			if (fx.v[i].type != RELM_FX_SIBLING)
				continue;
			ck_assert_int_eq(relm_sib_decode(&m, fx.v[i].data, fx.v[i].len), 0);
			ck_assert_int_eq(m.type, RELM_SIB_STATE);
			ck_assert_int_eq(memcmp(m.u.state.rel, rel, 16), 0);
			if (m.u.state.part == 0) {
				(*transfers)++;
				free(st);
				st = malloc(m.u.state.total);
				*len = m.u.state.total;
			}
			memcpy(st + (size_t)m.u.state.part * RELM_SIB_STATE_CHUNK, m.u.state.chunk, m.u.state.chunk_len);
		}
		relm_effects_clear(&fx);
	}
	return st;
}

static int rows_of(struct tu_daemon *d)
{
	int n = 0;
	ck_assert_int_eq(relm_store_device_list(d->st, pa, count_dev_cb, &n), 0);
	return n;
}

static uint64_t epoch_of(struct tu_daemon *d)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t epoch = 0;
	ck_assert_int_eq(relm_store_circle_get(d->st, pa, &epoch, &buf, &len), 0);
	free(buf);
	return epoch;
}

/* A device added on A (devices.md §12.7): A signs epoch 3 and sends it to
 * A2 on their session; A2 accepts it, its rows follow and it raises
 * device.added.  Then a device of the circle (x) sends A2 frames that
 * fail: junk, a truncated state_req, a circle signed by another proton, an
 * older circle again, a state_req for a relationship A2 does not hold —
 * each reported as sibling.refused (or, the older circle, ignored) with
 * the circle and rows unchanged. */
START_TEST(test_circle_frames)
{
	char inv[RELM_INVITE_TEXT_MAX];
	struct tu_daemon *ds[3] = { &A, &B, &A2 };
	struct tu_xdev x;
	uint8_t rb[16], *frame = NULL, *old = NULL;
	size_t flen = 0, olen = 0;
	uint64_t epoch = 0, e;
	int codes[16] = { 0 };

	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 0, 0, inv, sizeof inv, NULL), 0);
	ck_assert_int_eq(relm_core_invite_accept(B.core, pb, inv, strlen(inv), "alice", rb), 0);
	tu_settle(ds, 2, &net, 5, 3000);
	make_a2(rb);
	ck_assert_int_eq(relm_store_circle_get(A2.st, pa, &e, &old, &olen), 0);
	tu_xdev_make(&x, 0x3c, "phone");
	ck_assert_int_eq(relm_core_device_add(A.core, pa, &x.cd, &epoch), 0);
	ck_assert_uint_eq(epoch, 3);
	/* the same device again, or its key under another id: exists */
	ck_assert_int_eq(relm_core_device_add(A.core, pa, &x.cd, NULL), RELM_EEXIST);
	ck_assert_int_eq(rows_of(&A), 3);
	ck_assert_int_eq(count_events_of(&A, RELM_EV_DEVICE_ADDED), 1);
	ck_assert_int_eq(rows_of(&A2), 2);
	tu_settle(ds, 3, &net, 10, 1000);
	ck_assert_uint_eq(epoch_of(&A2), 3);
	ck_assert_int_eq(rows_of(&A2), 3);
	ck_assert_int_eq(count_events_of(&A2, RELM_EV_DEVICE_ADDED), 1);
	ck_assert_int_eq(count_events_of(&A2, RELM_EV_SIBLING_REFUSED), 0);

	/* x, now in A2's circle, opens a session and sends bad frames */
	xdev_open(&x);
	ck_assert_int_eq(tu_deliver(&A2, &net), 0);
	xdev_send(&x, (const uint8_t *)"\x02junk", 5);                       /* circle: bad_version */
	xdev_send(&x, (const uint8_t *)"\x03\x01\x02\x03\x04", 5);            /* state_req: truncated */
	{
		struct relm_circle *c = calloc(1, sizeof *c);
		struct relm_store_proton bob;
		uint8_t *out = malloc(RELM_CIRCLE_MAX);
		int n;
		ck_assert_int_eq(relm_circle_decode(c, old, olen), 0);
		ck_assert_int_eq(relm_store_proton_get(B.st, pb, &bob, RELM_STORE_WITH_SECRETS), 0);
		memcpy(c->ipk, bob.ipk, 32);                                  /* another proton's circle */
		c->epoch = 9;
		n = relm_circle_sign(out, RELM_CIRCLE_MAX, c, bob.isk);
		ck_assert_int_gt(n, 0);
		ck_assert_int_eq(relm_sib_circle_encode(&frame, &flen, out, (size_t)n), 0);
		xdev_send(&x, frame, flen);
		relm_sib_buf_free(frame, flen);
		relm_store_proton_clear(&bob);
		free(out);
		free(c);
	}
	ck_assert_int_eq(relm_sib_circle_encode(&frame, &flen, old, olen), 0);   /* epoch 2 again */
	xdev_send(&x, frame, flen);
	relm_sib_buf_free(frame, flen);
	ck_assert_int_eq(relm_sib_state_req_encode(&frame, &flen, pb), 0);     /* no such relationship */
	xdev_send(&x, frame, flen);
	relm_sib_buf_free(frame, flen);
	/* a bundle (§4.5): each message judged alone; a bad bundle once */
	{
		const uint8_t *two[2] = { (const uint8_t *)"\x02junk", (const uint8_t *)"\x03\x01\x02" };
		const size_t lens[2] = { 5, 3 };
		ck_assert_int_eq(relm_sib_bundle_encode(&frame, &flen, two, lens, 2), 0);
		xdev_send(&x, frame, flen);
		relm_sib_buf_free(frame, flen);
		xdev_send(&x, (const uint8_t *)"\x0d\x00\x01\x00\x00\x00\x01\x03", 8);   /* one message */
	}
	ck_assert_int_eq(tu_refused_codes(&A2, codes + 1, 15), 7);
	ck_assert_int_eq(codes[1], RELM_EVERSION);
	ck_assert_int_eq(codes[2], RELM_ETRUNCATED);
	ck_assert_int_eq(codes[3], RELM_EAUTH);
	ck_assert_int_eq(codes[4], RELM_ENOTFOUND);
	ck_assert_int_eq(codes[5], RELM_EVERSION);
	ck_assert_int_eq(codes[6], RELM_ETRUNCATED);
	ck_assert_int_eq(codes[7], RELM_EMALFORMED);
	ck_assert_uint_eq(epoch_of(&A2), 3);
	ck_assert_int_eq(rows_of(&A2), 3);
	ck_assert_int_eq(count_events_of(&A2, RELM_EV_DEVICE_ADDED), 1);
	ck_assert_int_eq(count_events_of(&A2, RELM_EV_DEVICE_REMOVED), 0);
	free(old);
	tu_xdev_clear(&x);
	tu_daemon_close(&A2);
	tu_daemon_rmdir(&A2);
}
END_TEST

static int node_count(struct tu_daemon *d, const uint8_t rb[16])
{
	struct relm_rel *rel = NULL;
	struct relm_rel_info info;
	int n;

	ck_assert_int_eq(relm_core_rel_load(d->core, rb, &rel), 0);
	relm_rel_describe(rel, &info);
	n = (int)info.nnodes;
	relm_rel_free(rel);
	return n;
}

/* Repair (devices.md §4.3, §4.4, §5.6): A sends while A2 hears nothing of
 * it; a sibling's state of the relationship (A's) merged into A2 brings A's
 * new node.  A2 answers a state_req with its state, at most once per
 * RELM_REPAIR_GAP_MS for one sibling and relationship. */
START_TEST(test_state_repair)
{
	char inv[RELM_INVITE_TEXT_MAX];
	struct tu_daemon *ds[3] = { &A, &B, &A2 };
	struct relm_store_rel r;
	struct relm_sib_state s;
	struct tu_xdev x;
	uint8_t rb[16], id[16], n1[16], n2[16], *frame = NULL, *st;
	size_t flen = 0, slen = 0, from = 0;
	int was_new = 0, transfers = 0, codes[16] = { 0 };

	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 0, 0, inv, sizeof inv, NULL), 0);
	ck_assert_int_eq(relm_core_invite_accept(B.core, pb, inv, strlen(inv), "alice", rb), 0);
	tu_settle(ds, 2, &net, 5, 3000);
	make_a2(rb);
	tu_xdev_make(&x, 0x3c, "phone");
	ck_assert_int_eq(relm_core_device_add(A.core, pa, &x.cd, NULL), 0);
	tu_settle(ds, 3, &net, 10, 1000);
	xdev_open(&x);
	ck_assert_int_eq(tu_deliver(&A2, &net), 0);

	/* bob speaks, so that A's next send makes a node; A sends, and nothing
	 * of it is posted yet (its outbox holds the copy) */
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "b", 1, NULL, id, &was_new), 0);
	tu_settle(ds, 3, &net, 10, 1000);
	ck_assert_int_eq(relm_core_message_send(A.core, rb, "m", 1, NULL, id, &was_new), 0);
	ck_assert_int_gt(node_count(&A, rb), node_count(&A2, rb));
	ck_assert_int_eq(relm_store_rel_get(A.st, rb, &r, RELM_STORE_WITH_STATE | RELM_STORE_WITH_SECRETS), 0);
	ck_assert_uint_le(r.state_len, RELM_SIB_STATE_CHUNK);
	memset(&s, 0, sizeof s);
	memcpy(s.rel, rb, 16);
	randombytes_buf(s.xfer, 16);
	s.parts = 1;
	s.total = (uint32_t)r.state_len;
	s.chunk = r.state;
	s.chunk_len = r.state_len;
	ck_assert_int_eq(relm_sib_state_encode(&frame, &flen, &s), 0);
	xdev_send(&x, frame, flen);
	relm_sib_buf_free(frame, flen);
	relm_store_rel_clear(&r);
	ck_assert_int_eq(node_count(&A2, rb), node_count(&A, rb));
	ck_assert_int_ge(chosen_of(&A, rb, n1), 0);
	ck_assert_int_ge(chosen_of(&A2, rb, n2), 0);
	ck_assert_int_eq(memcmp(n1, n2, 16), 0);

	/* state_req: answered once, not again within the gap, then again */
	ck_assert_int_eq(relm_sib_state_req_encode(&frame, &flen, rb), 0);
	xdev_send(&x, frame, flen);
	st = xdev_read_state(&x, rb, &slen, &transfers, &from);
	ck_assert_int_eq(transfers, 1);
	ck_assert_ptr_nonnull(st);
	{
		struct relm_rel *got = NULL;
		ck_assert_int_eq(relm_rel_decode(&got, st, slen), 0);
		ck_assert_int_eq(memcmp(got->id, rb, 16), 0);
		ck_assert_int_eq(got->sibling_session, 0);
		relm_rel_free(got);
	}
	sodium_memzero(st, slen);
	free(st);
	xdev_send(&x, frame, flen);
	free(xdev_read_state(&x, rb, &slen, &transfers, &from));
	ck_assert_int_eq(transfers, 1);
	clock_ms += RELM_REPAIR_GAP_MS + 1;
	xdev_send(&x, frame, flen);
	st = xdev_read_state(&x, rb, &slen, &transfers, &from);
	ck_assert_int_eq(transfers, 2);
	sodium_memzero(st, slen);
	free(st);
	relm_sib_buf_free(frame, flen);

	/* a state that is not a relationship's: refused, nothing changes */
	{
		int before = node_count(&A2, rb);
		memset(&s, 0, sizeof s);
		memcpy(s.rel, rb, 16);
		randombytes_buf(s.xfer, 16);
		s.parts = 1;
		s.total = 5;
		s.chunk = (const uint8_t *)"RLS\x05x";
		s.chunk_len = 5;
		ck_assert_int_eq(relm_sib_state_encode(&frame, &flen, &s), 0);
		xdev_send(&x, frame, flen);
		relm_sib_buf_free(frame, flen);
		ck_assert_int_eq(node_count(&A2, rb), before);
		ck_assert_int_eq(tu_refused_codes(&A2, codes + 1, 15), 1);
		ck_assert_int_eq(codes[1], RELM_EMALFORMED);
	}
	/* and the relationship goes on: A's send reaches bob, A2 follows */
	tu_settle(ds, 3, &net, 20, 3000);
	ck_assert_int_eq(tu_history_count(&B, rb, 1), 1);
	ck_assert_int_eq(tu_history_count(&A2, rb, 0), 1);
	ck_assert_int_eq(tu_history_count(&A2, rb, 1), 1);
	tu_xdev_clear(&x);
	tu_daemon_close(&A2);
	tu_daemon_rmdir(&A2);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("core_devices");
	TCase *tc = tcase_create("circle");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_proton_create_makes_circle);
	tcase_add_test(tc, test_two_protons_two_circles);
	tcase_add_test(tc, test_upgrade_v6_proton);
	tcase_add_test(tc, test_steps_see_the_devices);
	tcase_add_test(tc, test_device_mailbox);
	tcase_add_test(tc, test_two_devices_converge);
	tcase_add_test(tc, test_sibling_retries_count);
	tcase_add_test(tc, test_bundled_turn);
	tcase_add_test(tc, test_circle_frames);
	tcase_add_test(tc, test_state_repair);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

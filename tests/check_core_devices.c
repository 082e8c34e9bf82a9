/*
 * check_core_devices.c — a proton's devices in lib/core (proto/devices.md
 * §1–§3): proton.create makes this device's keys and circle epoch 1, a
 * store from before schema v7 gets them from relm_core_devices_upgrade,
 * and every relationship step sees the proton's devices as the store's
 * circle rows say; the device mailbox; two devices of alice converge.
 * What siblings send each other (circle, state_req, state):
 * check_core_sibling_frames.c.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include <sqlite3.h>
#include "util_rand.h"
#include "util_world.h"
#include "util_devices.h"
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
	tu_devices_open(&A, &B, &A2, &net, &clock_ms, pa, pb, ipk_a);
}

static void teardown(void)
{
	tu_devices_close(&A, &B, &A2, &net);
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
	ck_assert_int_eq(relm_store_device_list(A.st, pa, tu_count_devices_cb, &n), 0);
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
	struct relm_circle *circ = tu_held_circle(&A, pa);
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
	ck_assert_int_eq(tu_count_events(&A, RELM_EV_RELATIONSHIP_CREATED), 0);

	relm_store_proton_clear(&bob);
	relm_store_device_keys_clear(&k);
	relm_store_device_clear(&sib);
	free(circ);
}
END_TEST

/* ---- two devices of alice ------------------------------------------------ */

/* A2: a second device of alice's with a copy of relationship rb
 * (util_devices.h). */
static void make_a2(const uint8_t rb[16])
{
	tu_make_second_device(&A, &A2, pa, &clock_ms, rb);
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
	ck_assert_int_ge(tu_chosen_node(&A, rb, n1), 0);
	ck_assert_int_ge(tu_chosen_node(&A2, rb, n2), 0);
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
	ck_assert_int_eq(tu_count_events(&A2, RELM_EV_SIBLING_REFUSED), 0);
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

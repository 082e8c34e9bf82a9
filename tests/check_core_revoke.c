/*
 * check_core_revoke.c — revocation and the identity roll in lib/core
 * (proto/revocation.md), on whole daemons in one process (util_world):
 * alice's devices A, A2 (and A3), bob's B, a relationship rb between them.
 *
 * Revoking a device: the remaining ones keep working, the removed one
 * learns it (read-only, device.removed) and, once bob replied to the heal,
 * opens nothing bob sends.  The roll: bob pins the new key
 * (identity.rotated, the relationship row's remote_ipk), the siblings
 * take the new key pair (and refuse forged `identity` sibling messages);
 * forged successors over the wire (an old key bob never pinned, bad
 * signatures, a bad length, a replay) are rejected; two successors of one
 * key (a clone of alice's store rolling too) are identity.conflict until
 * identity_accept; the clone's sends are clone.suspected on alice's
 * device.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_world.h"
#include "util_devices.h"
#include "util_rand.h"
#include "util_xdev.h"
#include "util_engine.h"
#include "core/core.h"
#include "engine/effects.h"
#include "engine/rel.h"
#include "engine/rel_state.h"
#include "engine/ratchet.h"
#include "wire/payload.h"
#include "crypto/crypto.h"
#include "wire/addr.h"
#include "wire/circle.h"
#include "wire/successor.h"
#include "wire/sib_identity.h"
#include "wire/sibling.h"
#include "error.h"

enum { ROUNDS = 6, STEP_MS = 1000, HOUR_MS = 3600 * 1000 + 1 };

static uint64_t clock_ms;
static struct tu_daemon A, B, A2, A3, C;
static struct tu_net net;
static uint8_t pa[16], pb[16], ipk_a[32], rb[16];

static void settle(struct tu_daemon **ds, size_t n)
{
	tu_settle(ds, n, &net, ROUNDS, STEP_MS);
}

/* Remote d (opened on stream, at host) makes proton `name` (*prot, its
 * key ipk) and accepts an invite of alice's (*rel); alice's hello has
 * reached it.  ds[0..n): the daemons to settle, A and d among them. */
static void relate(struct tu_daemon *d, uint64_t stream, const char *host, const char *name,
                   uint8_t prot[16], uint8_t ipk[32], uint8_t rel[16], struct tu_daemon **ds, size_t n)
{
	char inv[RELM_INVITE_TEXT_MAX];
	uint8_t id[16];
	int was_new;

	ck_assert_int_eq(tu_daemon_open(d, &clock_ms, stream, host), 0);
	ck_assert_int_eq(relm_core_proton_create(d->core, name, prot, ipk), 0);
	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 0, 0, inv, sizeof inv, NULL), 0);
	ck_assert_int_eq(relm_core_invite_accept(d->core, prot, inv, strlen(inv), "alice", rel), 0);
	settle(ds, n);
	ck_assert_int_eq(relm_core_message_send(A.core, rel, "hello", 5, NULL, id, &was_new), 0);
	settle(ds, n);
	ck_assert_int_eq(tu_history_count(d, rel, 1), 1);
}

static void setup(void)
{
	struct tu_daemon *ds[2] = { &A, &B };
	uint8_t ipk[32];

	clock_ms = 1700000000000ull;
	memset(&net, 0, sizeof net);
	tu_daemon_mkdir(&A, "alice");
	tu_daemon_mkdir(&B, "bob");
	tu_daemon_mkdir(&A2, "alice2");
	tu_daemon_mkdir(&A3, "alice3");
	tu_daemon_mkdir(&C, "carol");
	ck_assert_int_eq(tu_daemon_open(&A, &clock_ms, 1, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(relm_core_proton_create(A.core, "alice", pa, ipk_a), 0);
	relate(&B, 2, "127.0.0.2:7427", "bob", pb, ipk, rb, ds, 2);
}

static void teardown(void)
{
	tu_daemon_close(&A);
	tu_daemon_close(&B);
	tu_daemon_close(&A2);
	tu_daemon_close(&A3);
	tu_daemon_close(&C);
	tu_daemon_rmdir(&A);
	tu_daemon_rmdir(&B);
	tu_daemon_rmdir(&A2);
	tu_daemon_rmdir(&A3);
	tu_daemon_rmdir(&C);
	tu_net_free(&net);
}

static struct relm_circle *circle_of(struct tu_daemon *d)
{
	return tu_held_circle(d, pa);
}

/* Make d another device of alice's, as pairing and the bulk state will:
 * the proton's keys, a device of its own with its device keys, the next
 * circle naming every device so far signed by the IPK (held by all of
 * them, each with rows for the others), and a copy of rb as A holds it
 * with its cursor: all start from one state.  ds: the devices already in
 * the circle. */
static void join(struct tu_daemon *d, uint8_t fill, uint64_t stream, struct tu_daemon **ds, size_t n)
{
	struct relm_store_proton p;
	struct relm_store_device self, row;
	struct relm_store_rel r;
	struct relm_circle *all = circle_of(ds[0]), *own;
	uint8_t seed[32], *out = malloc(RELM_CIRCLE_MAX);
	uint64_t cursor = 0;
	int len;

	ck_assert_int_eq(tu_daemon_open(d, &clock_ms, stream, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(relm_store_proton_get(A.st, pa, &p, RELM_STORE_WITH_SECRETS), 0);
	memset(&self, 0, sizeof self);
	memcpy(self.proton, pa, 16);
	memset(self.device, fill, 16);
	snprintf(self.label, sizeof self.label, "device %02x", fill);
	self.self = 1;
	tu_rand_bytes(seed, sizeof seed);
	relm_sign_keypair_from_seed(self.pk, self.sk, seed);
	self.has_sk = 1;
	self.epoch = all->epoch + 1;
	self.added = clock_ms;
	ck_assert_int_eq(relm_store_begin(d->st), 0);
	ck_assert_int_eq(relm_store_proton_put(d->st, &p), 0);
	ck_assert_int_eq(relm_store_device_put(d->st, &self), 0);
	ck_assert_int_eq(relm_store_commit(d->st), 0);
	/* its device keys (and a circle of its own, which the next replaces) */
	ck_assert_int_eq(relm_core_devices_upgrade(d->core), 0);
	own = circle_of(d);
	all->dev[all->count] = own->dev[0];
	all->dev[all->count].added = ++all->epoch;
	all->count++;
	len = relm_circle_sign(out, RELM_CIRCLE_MAX, all, p.isk);
	ck_assert_int_gt(len, 0);
	row = self;
	row.self = 0;
	row.has_sk = 0;
	memset(row.sk, 0, sizeof row.sk);
	for (size_t i = 0; i < n; i++) {
		struct relm_store_device other;
		ck_assert_int_eq(relm_store_device_get_self(ds[i]->st, pa, &other), 0);
		other.self = 0;
		other.has_sk = 0;
		memset(other.sk, 0, sizeof other.sk);
		ck_assert_int_eq(relm_store_begin(ds[i]->st), 0);
		ck_assert_int_eq(relm_store_circle_put(ds[i]->st, pa, all->epoch, out, (size_t)len), 0);
		ck_assert_int_eq(relm_store_device_put(ds[i]->st, &row), 0);
		ck_assert_int_eq(relm_store_commit(ds[i]->st), 0);
		ck_assert_int_eq(relm_store_begin(d->st), 0);
		ck_assert_int_eq(relm_store_device_put(d->st, &other), 0);
		ck_assert_int_eq(relm_store_commit(d->st), 0);
	}
	ck_assert_int_eq(relm_store_rel_get(A.st, rb, &r, RELM_STORE_WITH_STATE | RELM_STORE_WITH_SECRETS), 0);
	ck_assert_int_eq(relm_store_cursor_get(A.st, r.mailbox_id, &cursor), 0);
	ck_assert_int_eq(relm_store_begin(d->st), 0);
	ck_assert_int_eq(relm_store_circle_put(d->st, pa, all->epoch, out, (size_t)len), 0);
	ck_assert_int_eq(relm_store_rel_put(d->st, &r), 0);
	ck_assert_int_eq(relm_store_cursor_set(d->st, r.mailbox_id, cursor), 0);
	ck_assert_int_eq(relm_store_commit(d->st), 0);
	relm_store_rel_clear(&r);
	relm_store_proton_clear(&p);
	relm_store_device_clear(&self);
	sodium_memzero(seed, sizeof seed);
	free(out);
	free(own);
	free(all);
}

static void self_device(struct tu_daemon *d, uint8_t dev[16])
{
	struct relm_store_device s;
	ck_assert_int_eq(relm_store_device_get_self(d->st, pa, &s), 0);
	memcpy(dev, s.device, 16);
	relm_store_device_clear(&s);
}

struct ev_find {
	int type, n;
	struct relm_event last;
	uint8_t ipk[32];
};

static int ev_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	struct ev_find *f = ctx;
	(void)seq;
	(void)ts;
	if (ev->type == f->type) {
		f->n++;
		f->last = *ev;
		f->last.reason = NULL;
		f->last.table = NULL;
	}
	return 0;
}

static struct ev_find events_of(struct tu_daemon *d, int type)
{
	struct ev_find f;
	memset(&f, 0, sizeof f);
	f.type = type;
	ck_assert_int_eq(relm_store_event_list(d->st, 0, 0, ev_cb, &f), 0);
	return f;
}

struct body_find {
	const char *body;
	int n;
};

static int body_cb(void *ctx, const struct relm_store_msg *m)
{
	struct body_find *f = ctx;
	if (m->body_len == strlen(f->body) && !memcmp(m->body, f->body, m->body_len))
		f->n++;
	return 0;
}

/* How many messages of d's history of rb have this body. */
static int has_body(struct tu_daemon *d, const char *body)
{
	struct body_find f = { body, 0 };
	ck_assert_int_eq(relm_store_msg_list(d->st, rb, 0, 0, body_cb, &f), 0);
	return f.n;
}

static void send_text(struct tu_daemon *d, const char *body)
{
	uint8_t id[16];
	int was_new = 0;
	ck_assert_int_eq(relm_core_message_send(d->core, rb, body, strlen(body), NULL, id, &was_new), 0);
	ck_assert_int_eq(was_new, 1);
}

static void remote_ipk_of(struct tu_daemon *d, uint8_t ipk[32])
{
	struct relm_store_rel r;
	ck_assert_int_eq(relm_store_rel_get(d->st, rb, &r, 0), 0);
	memcpy(ipk, r.remote_ipk, 32);
	relm_store_rel_clear(&r);
}

static int device_rows(struct tu_daemon *d)
{
	struct relm_circle *c = circle_of(d);
	int n = (int)c->count;
	free(c);
	return n;
}

/* The heal state of d's relationship rel_id, and when it is due. */
static int heal_of(struct tu_daemon *d, const uint8_t rel_id[16], uint64_t *due)
{
	struct relm_rel *rel = NULL;
	int h;
	ck_assert_int_eq(relm_core_rel_load(d->core, rel_id, &rel), 0);
	h = rel->heal_state;
	if (due)
		*due = rel->heal_due_ms;
	relm_rel_free(rel);
	return h;
}

static int heal_state_of(struct tu_daemon *d)
{
	return heal_of(d, rb, NULL);
}

static int heal_cb(void *ctx, const struct relm_store_msg *m)
{
	if (m->direction_in && !strcmp(m->kind, "heal"))
		(*(int *)ctx)++;
	return 0;
}

/* Heal messages d received in rel_id. */
static int heals_in(struct tu_daemon *d, const uint8_t rel_id[16])
{
	int n = 0;
	ck_assert_int_eq(relm_store_msg_list(d->st, rel_id, 0, 0, heal_cb, &n), 0);
	return n;
}

static int heals_of(struct tu_daemon *d)
{
	return heals_in(d, rb);
}

/* What bob could see of a change of alice's devices: his identity.* and
 * device.* events (a count of each type) and his pin of alice's key, the
 * relationship row's and the engine's. */
static const int seen_types[] = { RELM_EV_IDENTITY_ROTATED, RELM_EV_IDENTITY_CONFLICT,
                                  RELM_EV_IDENTITY_REJECTED, RELM_EV_DEVICE_ADDED,
                                  RELM_EV_DEVICE_REMOVED, RELM_EV_DEVICE_SYNCED };
enum { NSEEN = sizeof seen_types / sizeof seen_types[0] };

struct bob_sees {
	int n[NSEEN];
	uint8_t row_ipk[32], pin[32];
};

static struct bob_sees bob_sees(void)
{
	struct bob_sees s;
	struct relm_rel *rel = NULL;

	for (size_t i = 0; i < NSEEN; i++)
		s.n[i] = events_of(&B, seen_types[i]).n;
	remote_ipk_of(&B, s.row_ipk);
	ck_assert_int_eq(relm_core_rel_load(B.core, rb, &rel), 0);
	memcpy(s.pin, rel->ipk_remote, 32);
	relm_rel_free(rel);
	return s;
}

/* Bob saw nothing since `before`: no event of those types, alice's key
 * pinned as it was (her first one). */
static void bob_saw_nothing(const struct bob_sees *before)
{
	struct bob_sees now = bob_sees();

	for (size_t i = 0; i < NSEEN; i++)
		ck_assert_msg(now.n[i] == before->n[i], "bob got %s", relm_event_name(seen_types[i]));
	ck_assert_int_eq(memcmp(now.row_ipk, ipk_a, 32), 0);
	ck_assert_int_eq(memcmp(now.pin, ipk_a, 32), 0);
	ck_assert_int_eq(memcmp(before->pin, ipk_a, 32), 0);
}

/* A and A2 of alice, each having sent once in rb (so their sibling
 * session exists), bob having read both. */
static void two_devices(void)
{
	struct tu_daemon *ds[3] = { &A, &B, &A2 }, *in[1] = { &A };

	join(&A2, 0xd2, 3, in, 1);
	send_text(&A, "from the phone");
	settle(ds, 3);
	send_text(&A2, "from the tablet");
	settle(ds, 3);
	ck_assert_int_eq(has_body(&B, "from the phone"), 1);
	ck_assert_int_eq(has_body(&B, "from the tablet"), 1);
	ck_assert_int_eq(has_body(&A, "from the tablet"), 1);
}

struct rows {
	int64_t seq[16];
	size_t n;
};

/* outbox_next callback: the rows of A's sibling sessions (ctx: rows). */
static int session_row_cb(void *ctx, const struct relm_store_outbox *o)
{
	struct rows *r = ctx;
	uint8_t p[16], d[16];

	if (o->has_rel && relm_store_sibling_session_get(A.st, o->rel, p, d) == 0 && r->n < 16)
		r->seq[r->n++] = o->seq;
	return 0;
}

/* Revoking A2 without a roll: A's circle drops it (device.removed), A2
 * learns it from the circle A sends it (read-only: message.send and
 * invites refused, device.removed naming itself), A keeps working.  After
 * the heal (within the hour) and bob's reply to it, A2 opens nothing more
 * of bob's; A reads all of it. */
START_TEST(test_revoke_heal)
{
	struct tu_daemon *ds[3] = { &A, &B, &A2 };
	char inv[RELM_INVITE_TEXT_MAX];
	uint8_t d1[16], d2[16], id[16], rnd[16];
	uint64_t epoch = 0;
	int64_t posted;
	struct rows sess_rows;
	struct bob_sees seen;
	struct ev_find f;
	int was_new;

	two_devices();
	seen = bob_sees();
	self_device(&A, d1);
	self_device(&A2, d2);
	tu_rand_bytes(rnd, sizeof rnd);
	/* not this device, not a device of the circle */
	ck_assert_int_eq(relm_core_device_revoke(A.core, pa, d1, 0, &epoch, NULL), RELM_EINVAL);
	ck_assert_int_eq(relm_core_device_revoke(A.core, pa, rnd, 0, &epoch, NULL), RELM_ENOTFOUND);
	/* a copy to A2 in A's outbox, not yet posted when A2 is revoked */
	send_text(&A, "copied, not yet posted");
	memset(&sess_rows, 0, sizeof sess_rows);
	ck_assert_int_eq(relm_store_outbox_next(A.st, 0, 0, session_row_cb, &sess_rows), 0);
	ck_assert_int_gt(sess_rows.n, 0);
	ck_assert_int_eq(relm_core_device_revoke(A.core, pa, d2, 0, &epoch, NULL), 0);
	ck_assert_uint_eq(epoch, 3);
	/* its row went with the session; the mailbox's late acknowledgement
	 * of it is nothing to record, not an error */
	for (size_t i = 0; i < sess_rows.n; i++)
		ck_assert_int_eq(relm_core_outbox_posted(A.core, sess_rows.seq[i], NULL, NULL, 0), 0);
	ck_assert_int_eq(device_rows(&A), 1);
	f = events_of(&A, RELM_EV_DEVICE_REMOVED);
	ck_assert_int_eq(f.n, 1);
	ck_assert_int_eq(memcmp(f.last.device, d2, 16), 0);
	ck_assert_uint_eq(f.last.epoch, 3);
	ck_assert_int_eq(relm_core_proton_read_only(A.core, pa), 0);
	/* again: it is not in the circle any more */
	ck_assert_int_eq(relm_core_device_revoke(A.core, pa, d2, 0, &epoch, NULL), RELM_ENOTFOUND);

	settle(ds, 3);
	ck_assert_int_eq(relm_core_proton_read_only(A2.core, pa), 1);
	f = events_of(&A2, RELM_EV_DEVICE_REMOVED);
	ck_assert_int_eq(f.n, 1);
	ck_assert_int_eq(memcmp(f.last.device, d2, 16), 0);
	ck_assert_int_eq(relm_core_message_send(A2.core, rb, "still here", 10, NULL, id, &was_new),
	                 RELM_EREADONLY);
	ck_assert_int_eq(relm_core_invite_create(A2.core, pa, 0, 0, inv, sizeof inv, NULL), RELM_EREADONLY);
	ck_assert_int_eq(relm_core_device_revoke(A2.core, pa, d1, 0, &epoch, NULL), RELM_EREADONLY);
	ck_assert_int_eq(relm_core_identity_rotate(A2.core, pa, NULL), RELM_EREADONLY);

	/* A keeps working, and copies nothing to A2 any more; A2 still reads
	 * what bob sends before the heal (the window), and sends nothing
	 * itself, not even a receipt */
	posted = A2.outbox_after;
	send_text(&A, "after the revocation");
	send_text(&B, "before the heal");
	settle(ds, 3);
	clock_ms += 60 * 1000;
	settle(ds, 3);
	ck_assert_int_eq(has_body(&B, "after the revocation"), 1);
	ck_assert_int_eq(has_body(&A2, "after the revocation"), 0);
	ck_assert_int_eq(has_body(&A2, "before the heal"), 1);
	ck_assert_int_eq(has_body(&A, "before the heal"), 1);
	ck_assert_int_eq(A2.outbox_after, posted);

	/* the heal goes within the hour; bob's reply builds on it */
	clock_ms += HOUR_MS;
	settle(ds, 3);
	send_text(&B, "bob answers");
	settle(ds, 3);
	send_text(&B, "a secret for alice");
	settle(ds, 3);
	send_text(&B, "another one");
	settle(ds, 3);
	ck_assert_int_eq(has_body(&A, "bob answers"), 1);
	ck_assert_int_eq(has_body(&A, "a secret for alice"), 1);
	ck_assert_int_eq(has_body(&A, "another one"), 1);
	ck_assert_int_eq(has_body(&A2, "a secret for alice"), 0);
	ck_assert_int_eq(has_body(&A2, "another one"), 0);
	/* and A still talks to bob */
	send_text(&A, "thanks");
	settle(ds, 3);
	ck_assert_int_eq(has_body(&B, "thanks"), 1);
	/* bob saw a heal, and nothing of alice's devices: no identity.* or
	 * device.* event, the same key pinned */
	ck_assert_int_ge(heals_of(&B), 1);
	bob_saw_nothing(&seen);
}
END_TEST

/* The remote d replies in rel_id (after the heal's delay) until A's heal
 * there is done, at most 4 replies; 1 if it is. */
static int replies_heal(struct tu_daemon *d, const uint8_t rel_id[16])
{
	struct tu_daemon *ds[4] = { &A, &B, &C, &A2 };
	char body[24];           /* "reply " and any int */
	uint8_t id[16];
	int was_new;

	for (int k = 0; k < 4 && heal_of(&A, rel_id, NULL) != RELM_HEAL_NONE; k++) {
		if (k > 0) {                 /* the heal again: past its delay */
			clock_ms += HOUR_MS;
			settle(ds, 4);
		}
		snprintf(body, sizeof body, "reply %d", k);
		ck_assert_int_eq(relm_core_message_send(d->core, rel_id, body, strlen(body), NULL, id,
		                                        &was_new), 0);
		settle(ds, 4);
	}
	return heal_of(&A, rel_id, NULL) == RELM_HEAL_NONE;
}

/* Two relationships of alice's: rb with bob and rc with carol (C).  A
 * revokes A2 with the roll: each relationship is armed with a heal of its
 * own, due at a time drawn for it (the seeded stream makes them differ
 * deterministically, and they must); both remotes pin the new key; the
 * heals go within the hour, one in each relationship, and each is healed
 * once its remote replied (again, after a heal more, if a reply built on
 * an older branch: revocation.md §2). */
START_TEST(test_revoke_two_relationships)
{
	struct tu_daemon *ds[4] = { &A, &B, &C, &A2 }, *in[1] = { &A };
	uint8_t pc[16], ipk_c[32], rc[16], d2[16], nipk[32], pin[32];
	uint64_t epoch = 0, due_b = 0, due_c = 0;
	struct ev_find f;

	relate(&C, 5, "127.0.0.3:7427", "carol", pc, ipk_c, rc, ds, 3);
	join(&A2, 0xd2, 3, in, 1);
	self_device(&A2, d2);

	ck_assert_int_eq(relm_core_device_revoke(A.core, pa, d2, 1, &epoch, nipk), 0);
	ck_assert(memcmp(nipk, ipk_a, 32) != 0);
	ck_assert_int_eq(heal_of(&A, rb, &due_b), RELM_HEAL_ARMED);
	ck_assert_int_eq(heal_of(&A, rc, &due_c), RELM_HEAL_ARMED);
	ck_assert_uint_gt(due_b, clock_ms);
	ck_assert_uint_gt(due_c, clock_ms);
	ck_assert_uint_le(due_b, clock_ms + RELM_HEAL_MAX_MS);
	ck_assert_uint_le(due_c, clock_ms + RELM_HEAL_MAX_MS);
	ck_assert_msg(due_b != due_c, "one heal time for both relationships (" TU_SEED_FMT ")", TU_SEED_ARG);
	settle(ds, 4);

	/* both remotes pin the new key */
	f = events_of(&B, RELM_EV_IDENTITY_ROTATED);
	ck_assert_int_eq(f.n, 1);
	ck_assert_int_eq(memcmp(f.last.ipk, nipk, 32), 0);
	ck_assert_int_eq(memcmp(f.last.rel, rb, 16), 0);
	f = events_of(&C, RELM_EV_IDENTITY_ROTATED);
	ck_assert_int_eq(f.n, 1);
	ck_assert_int_eq(memcmp(f.last.ipk, nipk, 32), 0);
	ck_assert_int_eq(memcmp(f.last.rel, rc, 16), 0);
	remote_ipk_of(&B, pin);
	ck_assert_int_eq(memcmp(pin, nipk, 32), 0);
	{
		struct relm_store_rel r;
		ck_assert_int_eq(relm_store_rel_get(C.st, rc, &r, 0), 0);
		ck_assert_int_eq(memcmp(r.remote_ipk, nipk, 32), 0);
		relm_store_rel_clear(&r);
	}

	/* each relationship's heal goes, at its own time */
	clock_ms += HOUR_MS;
	settle(ds, 4);
	ck_assert_int_eq(heals_in(&B, rb), 1);
	ck_assert_int_eq(heals_in(&C, rc), 1);
	ck_assert_int_eq(heal_of(&A, rb, NULL), RELM_HEAL_SENT);
	ck_assert_int_eq(heal_of(&A, rc, NULL), RELM_HEAL_SENT);
	/* bob replies: rb is healed (or, if his reply built on an older
	 * branch, heals again, revocation.md §2); rc still waits for carol */
	ck_assert(replies_heal(&B, rb));
	ck_assert_int_eq(heal_of(&A, rc, NULL), RELM_HEAL_SENT);
	ck_assert(replies_heal(&C, rc));
	ck_assert_int_eq(heal_of(&A, rb, NULL), RELM_HEAL_NONE);
	ck_assert_int_eq(has_body(&A, "reply 0"), 1);
	/* healed: no heal more in either */
	{
		int hb = heals_in(&B, rb), hc = heals_in(&C, rc);
		clock_ms += HOUR_MS;
		settle(ds, 4);
		ck_assert_int_eq(heals_in(&B, rb), hb);
		ck_assert_int_eq(heals_in(&C, rc), hc);
	}
}
END_TEST

/* A, A2 and A3 of alice; A and then `second` have sent in rb (their
 * sibling sessions exist). */
static void three_devices(struct tu_daemon *second, const char *body)
{
	struct tu_daemon *ds[4] = { &A, &B, &A2, &A3 }, *in1[1] = { &A }, *in2[2] = { &A, &A2 };

	join(&A2, 0xd2, 3, in1, 1);
	join(&A3, 0xd3, 4, in2, 2);
	send_text(&A, "one");
	settle(ds, 4);
	send_text(second, body);
	settle(ds, 4);
}

/* Revoking A3 with the identity roll, A2 remaining: bob pins the new key
 * (identity.rotated, the row's remote_ipk), A2 takes the new key pair and
 * the re-signed circle from A, and both remaining devices go on sending;
 * A3 learnt of its removal from a circle signed by the key it knew. */
START_TEST(test_revoke_rotate)
{
	struct tu_daemon *ds[4] = { &A, &B, &A2, &A3 };
	struct relm_store_proton p1, p2;
	struct relm_circle *c1, *c2;
	uint8_t d3[16], nipk[32], pin[32];
	uint64_t epoch = 0;
	struct ev_find f;

	three_devices(&A3, "three");
	ck_assert_int_eq(has_body(&A2, "three"), 1);
	self_device(&A3, d3);
	{
		uint8_t sid[16];             /* A3's copy opened a session with A2 */
		ck_assert_int_eq(relm_store_sibling_session_find(A2.st, pa, d3, sid), 0);
	}
	ck_assert_int_eq(relm_core_device_revoke(A.core, pa, d3, 1, &epoch, nipk), 0);
	ck_assert_uint_eq(epoch, 5);            /* 4 without A3, 5 re-signed by the new key */
	ck_assert(memcmp(nipk, ipk_a, 32) != 0);
	settle(ds, 4);

	/* bob */
	f = events_of(&B, RELM_EV_IDENTITY_ROTATED);
	ck_assert_int_eq(f.n, 1);
	ck_assert_int_eq(memcmp(f.last.ipk, nipk, 32), 0);
	ck_assert_int_eq(memcmp(f.last.rel, rb, 16), 0);
	remote_ipk_of(&B, pin);
	ck_assert_int_eq(memcmp(pin, nipk, 32), 0);
	/* alice's remaining devices: one key pair, one circle */
	ck_assert_int_eq(relm_store_proton_get(A.st, pa, &p1, RELM_STORE_WITH_SECRETS), 0);
	ck_assert_int_eq(relm_store_proton_get(A2.st, pa, &p2, RELM_STORE_WITH_SECRETS), 0);
	ck_assert_int_eq(memcmp(p1.ipk, nipk, 32), 0);
	ck_assert_int_eq(memcmp(p2.ipk, nipk, 32), 0);
	ck_assert_int_eq(memcmp(p1.isk, p2.isk, 64), 0);
	relm_store_proton_clear(&p1);
	relm_store_proton_clear(&p2);
	c1 = circle_of(&A);
	c2 = circle_of(&A2);
	ck_assert_uint_eq(c1->epoch, 5);
	ck_assert_uint_eq(c2->epoch, 5);
	ck_assert_int_eq(memcmp(c2->ipk, nipk, 32), 0);
	ck_assert_uint_eq(c2->count, 2);
	free(c1);
	free(c2);
	ck_assert_int_eq(events_of(&A, RELM_EV_IDENTITY_ROTATED).n, 1);
	ck_assert_int_eq(events_of(&A2, RELM_EV_IDENTITY_ROTATED).n, 1);
	ck_assert_int_eq(events_of(&A2, RELM_EV_SIBLING_REFUSED).n, 0);
	/* neither remaining device keeps a session with A3 */
	{
		uint8_t sid[16];
		ck_assert_int_eq(relm_store_sibling_session_find(A.st, pa, d3, sid), RELM_ENOTFOUND);
		ck_assert_int_eq(relm_store_sibling_session_find(A2.st, pa, d3, sid), RELM_ENOTFOUND);
	}
	/* A2 armed the heal too (it goes even if A is offline) */
	ck_assert_int_eq(heal_state_of(&A2), RELM_HEAL_ARMED);
	ck_assert_int_eq(heal_state_of(&A), RELM_HEAL_ARMED);
	/* A3: removed, by a circle it could verify */
	ck_assert_int_eq(relm_core_proton_read_only(A3.core, pa), 1);
	ck_assert_int_eq(relm_core_proton_read_only(A2.core, pa), 0);

	/* both remaining devices still send; bob reads both, A2 rolls again */
	send_text(&A2, "tablet after");
	settle(ds, 4);
	send_text(&A, "phone after");
	settle(ds, 4);
	ck_assert_int_eq(has_body(&B, "tablet after"), 1);
	ck_assert_int_eq(has_body(&B, "phone after"), 1);
	ck_assert_int_eq(has_body(&A, "tablet after"), 1);
	/* the heal goes within the hour, from one device or both */
	clock_ms += HOUR_MS;
	settle(ds, 4);
	ck_assert_int_gt(heals_of(&B), 0);
	ck_assert_int_ne(heal_state_of(&A), RELM_HEAL_ARMED);
	ck_assert_int_ne(heal_state_of(&A2), RELM_HEAL_ARMED);
	ck_assert_int_eq(relm_core_identity_rotate(A2.core, pa, nipk), 0);
	settle(ds, 4);
	f = events_of(&B, RELM_EV_IDENTITY_ROTATED);
	ck_assert_int_eq(f.n, 2);               /* the second roll, sequence 2 */
	ck_assert_int_eq(memcmp(f.last.ipk, nipk, 32), 0);
	remote_ipk_of(&B, pin);
	ck_assert_int_eq(memcmp(pin, nipk, 32), 0);
	ck_assert_int_eq(events_of(&B, RELM_EV_IDENTITY_REJECTED).n, 0);
	ck_assert_int_eq(relm_store_proton_get(A.st, pa, &p1, 0), 0);
	ck_assert_int_eq(memcmp(p1.ipk, nipk, 32), 0);
}
END_TEST

/* The posts of fx onto the network (to: where the effect does not say). */
static void post_fx(struct relm_effects *fx, const char *to)
{
	for (size_t i = 0; i < fx->n; i++)
		if (fx->v[i].type == RELM_FX_POST)
			tu_net_post(&net, fx->v[i].to[0] ? fx->v[i].to : to, fx->v[i].data, fx->v[i].len);
	relm_effects_clear(fx);
}

/* A revocation and an addition at once: A removes A3 while A2 adds a
 * laptop, both at epoch 4.  Whichever circle wins on a device, the device
 * that held the other makes its change again at epoch 5 (devices.md §2):
 * A and A2 end on the same circle, with the laptop and without A3 — the
 * revocation is never undone by the conflict. */
START_TEST(test_concurrent_change)
{
	struct tu_daemon *ds[4] = { &A, &B, &A2, &A3 };
	struct tu_xdev lap;
	struct relm_circle *c1, *c2;
	uint8_t d3[16], *b1 = NULL, *b2 = NULL;
	size_t l1 = 0, l2 = 0;
	uint64_t e1 = 0, e2 = 0;

	three_devices(&A2, "two");
	self_device(&A3, d3);
	tu_xdev_make(&lap, 0xd4, "laptop");
	ck_assert_int_eq(relm_core_device_revoke(A.core, pa, d3, 0, &e1, NULL), 0);
	ck_assert_int_eq(relm_core_device_add(A2.core, pa, &lap.cd, &e2), 0);
	ck_assert_uint_eq(e1, 4);
	ck_assert_uint_eq(e2, 4);
	settle(ds, 4);
	c1 = circle_of(&A);
	c2 = circle_of(&A2);
	ck_assert_uint_eq(c1->epoch, 5);
	ck_assert_uint_eq(c2->epoch, 5);
	ck_assert_uint_eq(c1->count, 3);
	ck_assert_int_lt(relm_circle_find(c1, d3), 0);
	ck_assert_int_ge(relm_circle_find(c1, lap.cd.id), 0);
	ck_assert_int_eq(relm_store_circle_get(A.st, pa, &e1, &b1, &l1), 0);
	ck_assert_int_eq(relm_store_circle_get(A2.st, pa, &e2, &b2, &l2), 0);
	ck_assert_uint_eq(l1, l2);
	ck_assert_int_eq(memcmp(b1, b2, l1), 0);    /* the same bytes: one circle */
	/* (whether A3 learns it depends on which circle reached it first:
	 * best effort, revocation.md §1) */
	ck_assert_int_eq(events_of(&A2, RELM_EV_SIBLING_REFUSED).n, 0);
	ck_assert_int_eq(events_of(&A, RELM_EV_SIBLING_REFUSED).n, 0);
	tu_xdev_clear(&lap);
	free(b1);
	free(b2);
	free(c1);
	free(c2);
}
END_TEST

/* An identity message with body hex, sent on rel (A's rb, loaded and
 * stepped here as a forger would: no check of the statement) and read by
 * B; rel's state advances in memory only. */
static void inject(struct relm_rel *rel, char *hex, size_t len)
{
	struct relm_effects fx;

	relm_effects_init(&fx);
	ck_assert_int_eq(tu_send_forged_identity(rel, &A.env, hex, len, &fx), 0);
	post_fx(&fx, rel->remote_mailbox);
	ck_assert_int_eq(tu_deliver(&B, &net), 0);
}

/* Forged successor statements reach bob over the wire after a genuine
 * roll he pinned: two keys' valid signatures but an old key he never
 * pinned (not_found), a bad signature of the old key, of the new key
 * (bad_signature), a bad length (malformed), the genuine statement again
 * in another message (replay) — each identity.rejected, the pin kept. */
START_TEST(test_forged_successor)
{
	struct tu_daemon *ds[2] = { &A, &B };
	struct relm_rel *rel = NULL;
	uint8_t stmt[RELM_SUCCESSOR_LEN], k1[32], pin[32];
	char hex[RELM_SUCCESSOR_HEX + 1];
	struct ev_find f;
	int want;

	ck_assert_int_eq(relm_core_identity_rotate(A.core, pa, k1), 0);
	settle(ds, 2);
	remote_ipk_of(&B, pin);
	ck_assert_int_eq(memcmp(pin, k1, 32), 0);
	tu_sent_statement(A.st, rb, stmt);

	ck_assert_int_eq(relm_core_rel_load(A.core, rb, &rel), 0);
	for (int k = 0; k < TU_FORGERIES; k++) {
		inject(rel, hex, tu_forged_statement(k, stmt, hex, &want));
		f = events_of(&B, RELM_EV_IDENTITY_REJECTED);
		ck_assert_int_eq(f.n, k + 1);
		ck_assert_msg(f.last.code == want, "statement %d: %s", k, relm_errname(f.last.code));
		remote_ipk_of(&B, pin);
		ck_assert_int_eq(memcmp(pin, k1, 32), 0);
	}
	relm_rel_free(rel);
	ck_assert_int_eq(events_of(&B, RELM_EV_IDENTITY_ROTATED).n, 1);
	ck_assert_int_eq(events_of(&B, RELM_EV_IDENTITY_CONFLICT).n, 0);
}
END_TEST

/* Copy A's store folder to A2: a clone outside the circle, same device. */
static void clone_a(void)
{
	char cmd[800];

	tu_daemon_close(&A);
	snprintf(cmd, sizeof cmd, "cp -r '%s/state' '%s/'", A.dir, A2.dir);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(tu_daemon_open(&A, &clock_ms, 1, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(tu_daemon_open(&A2, &clock_ms, 9, "127.0.0.1:7427"), 0);
}

/* A clone of alice's store rolls the key too: bob sees two successors of
 * one key — identity.conflict, back on the old pin — and
 * identity_accept pins the one chosen.  The clone's sends on nodes of its
 * own, which bob acknowledges, are clone.suspected on A once the window
 * has passed. */
START_TEST(test_conflict_and_clone)
{
	struct tu_daemon *ds[3] = { &A, &B, &A2 };
	uint8_t k1[32], k2[32], pin[32];
	struct ev_find f;

	clone_a();
	ck_assert_int_eq(relm_core_identity_rotate(A.core, pa, k1), 0);
	settle(ds, 2);
	remote_ipk_of(&B, pin);
	ck_assert_int_eq(memcmp(pin, k1, 32), 0);
	ck_assert_int_eq(relm_core_identity_rotate(A2.core, pa, k2), 0);
	ck_assert(memcmp(k1, k2, 32) != 0);
	settle(ds, 3);
	f = events_of(&B, RELM_EV_IDENTITY_CONFLICT);
	ck_assert_int_eq(f.n, 1);
	ck_assert_int_eq(memcmp(f.last.ipk, k2, 32), 0);
	remote_ipk_of(&B, pin);
	ck_assert_int_eq(memcmp(pin, ipk_a, 32), 0);     /* the old pin, until bob decides */
	/* not one of the two; then the one bob trusts */
	ck_assert_int_eq(relm_core_identity_accept(B.core, rb, ipk_a), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_core_identity_accept(B.core, rb, k1), 0);
	remote_ipk_of(&B, pin);
	ck_assert_int_eq(memcmp(pin, k1, 32), 0);
	f = events_of(&B, RELM_EV_IDENTITY_ROTATED);
	ck_assert_int_eq(f.n, 2);
	ck_assert_int_eq(memcmp(f.last.ipk, k1, 32), 0);
	ck_assert_int_eq(relm_core_identity_accept(B.core, rb, k1), RELM_EINVAL);

	/* the clone talks to bob; bob's receipts name its nodes */
	ck_assert_int_eq(events_of(&A, RELM_EV_CLONE_SUSPECTED).n, 0);
	send_text(&B, "to whoever");
	settle(ds, 3);
	send_text(&A2, "the clone speaks");
	settle(ds, 3);
	ck_assert_int_eq(has_body(&B, "the clone speaks"), 1);
	clock_ms += 11 * 60 * 1000;
	settle(ds, 3);
	f = events_of(&A, RELM_EV_CLONE_SUSPECTED);
	ck_assert_int_ge(f.n, 1);
	ck_assert_int_eq(memcmp(f.last.rel, rb, 16), 0);
	ck_assert(f.last.has & RELM_EVF_PROTON);
	ck_assert_int_eq(memcmp(f.last.proton, pa, 16), 0);
	ck_assert(f.last.has & RELM_EVF_NODE);
}
END_TEST

/* ---- the identity sibling message ---------------------------------------- */

/* Round trip; every shorter input truncated, one more byte malformed, an
 * empty circle or another type malformed. */
START_TEST(test_sib_identity_codec)
{
	uint8_t isk[64], stmt[RELM_SUCCESSOR_LEN], circle[300], *buf = NULL, *longer;
	struct relm_sib_identity m;
	size_t len = 0;

	tu_rand_bytes(isk, sizeof isk);
	tu_rand_bytes(stmt, sizeof stmt);
	tu_rand_bytes(circle, sizeof circle);
	ck_assert_int_eq(relm_sib_identity_encode(&buf, &len, isk, stmt, circle, 0), RELM_EINVAL);
	ck_assert_int_eq(relm_sib_identity_encode(&buf, &len, isk, stmt, circle, sizeof circle), 0);
	ck_assert_uint_eq(len, RELM_SIB_IDENTITY_MIN + sizeof circle);
	ck_assert_int_eq(relm_sib_identity_decode(&m, buf, len), 0);
	ck_assert_int_eq(memcmp(m.isk, isk, 64), 0);
	ck_assert_int_eq(memcmp(m.stmt, stmt, sizeof stmt), 0);
	ck_assert_uint_eq(m.circle_len, sizeof circle);
	ck_assert_int_eq(memcmp(m.circle, circle, sizeof circle), 0);
	for (size_t n = 0; n < len; n++)
		ck_assert_int_eq(relm_sib_identity_decode(&m, buf, n), n == 0 || buf[0] == RELM_SIB_IDENTITY
		                 ? RELM_ETRUNCATED : RELM_EMALFORMED);
	longer = malloc(len + 1);
	memcpy(longer, buf, len);
	longer[len] = 0;
	ck_assert_int_eq(relm_sib_identity_decode(&m, longer, len + 1), RELM_EMALFORMED);
	longer[0] = RELM_SIB_CIRCLE;
	ck_assert_int_eq(relm_sib_identity_decode(&m, longer, len), RELM_EMALFORMED);
	memcpy(longer, buf, len);
	memset(longer + 1 + 64 + RELM_SUCCESSOR_LEN, 0, 4);       /* circle_len 0 */
	ck_assert_int_eq(relm_sib_identity_decode(&m, longer, RELM_SIB_IDENTITY_MIN), RELM_EMALFORMED);
	free(longer);
	relm_sib_buf_free(buf, len);
}
END_TEST

/* One `identity` message sent on sess (effects into fx). */
static void forge(struct relm_rel *sess, struct relm_effects *fx, const uint8_t isk[64],
                  const uint8_t stmt[RELM_SUCCESSOR_LEN], const uint8_t *circle, int clen)
{
	uint8_t *frame = NULL;
	size_t flen = 0;

	ck_assert_int_eq(relm_sib_identity_encode(&frame, &flen, isk, stmt, circle, (size_t)clen), 0);
	ck_assert_int_eq(relm_rel_send_sibling(sess, &A.env, frame, flen, fx), 0);
	relm_sib_buf_free(frame, flen);
}

/* A forged `identity` message from a sibling's session: the secret key
 * not the new key's, a statement from a key the proton does not hold, a
 * circle not newer than the one held — each refused (sibling.refused,
 * the proton's key and circle unchanged); the genuine one after them is
 * taken. */
START_TEST(test_sib_identity_forged)
{
	struct relm_store_proton p, p2;
	struct relm_successor s;
	struct relm_circle *c;
	struct relm_effects fx;
	struct relm_rel *sess = NULL;
	uint8_t d2[16], sid[16], npk[32], nsk[64], xpk[32], xsk[64], stmt[RELM_SUCCESSOR_LEN], bad[RELM_SUCCESSOR_LEN];
	uint8_t *circ = malloc(RELM_CIRCLE_MAX), *same = malloc(RELM_CIRCLE_MAX);
	int n, nsame, refused_before;

	two_devices();
	self_device(&A2, d2);
	ck_assert_int_eq(relm_store_proton_get(A.st, pa, &p, RELM_STORE_WITH_SECRETS), 0);
	tu_sign_keypair(npk, nsk);
	tu_sign_keypair(xpk, xsk);
	ck_assert_int_eq(relm_successor_sign(stmt, &s, p.isk, nsk, 1), 0);
	ck_assert_int_eq(relm_successor_sign(bad, &s, xsk, nsk, 1), 0);
	c = circle_of(&A);
	memcpy(c->ipk, npk, 32);
	nsame = relm_circle_sign(same, RELM_CIRCLE_MAX, c, nsk);       /* the held epoch again */
	c->epoch++;
	n = relm_circle_sign(circ, RELM_CIRCLE_MAX, c, nsk);
	ck_assert_int_gt(n, 0);
	ck_assert_int_gt(nsame, 0);
	refused_before = events_of(&A2, RELM_EV_SIBLING_REFUSED).n;

	/* A's session with A2, stepped here as a forger would */
	ck_assert_int_eq(relm_store_sibling_session_find(A.st, pa, d2, sid), 0);
	ck_assert_int_eq(relm_core_rel_load(A.core, sid, &sess), 0);
	relm_effects_init(&fx);
	forge(sess, &fx, xsk, stmt, circ, n);          /* the secret key of another key */
	{
		uint8_t mixed[64];                    /* another key's seed, the new key's public half */
		memcpy(mixed, xsk, 32);
		memcpy(mixed + 32, npk, 32);
		forge(sess, &fx, mixed, stmt, circ, n);
		sodium_memzero(mixed, sizeof mixed);
	}
	forge(sess, &fx, nsk, bad, circ, n);           /* a roll from a key alice never had */
	forge(sess, &fx, nsk, stmt, same, nsame);      /* not the next circle */
	forge(sess, &fx, nsk, stmt, circ, n);          /* the genuine one */
	post_fx(&fx, sess->remote_mailbox);
	relm_effects_clear(&fx);
	relm_rel_free(sess);
	ck_assert_int_eq(tu_deliver(&A2, &net), 0);
	ck_assert_int_eq(events_of(&A2, RELM_EV_SIBLING_REFUSED).n, refused_before + 4);
	ck_assert_int_eq(events_of(&A2, RELM_EV_IDENTITY_ROTATED).n, 1);
	ck_assert_int_eq(relm_store_proton_get(A2.st, pa, &p2, RELM_STORE_WITH_SECRETS), 0);
	ck_assert_int_eq(memcmp(p2.ipk, npk, 32), 0);
	ck_assert_int_eq(memcmp(p2.isk, nsk, 64), 0);
	free(c);
	c = circle_of(&A2);
	ck_assert_int_eq(memcmp(c->ipk, npk, 32), 0);
	relm_store_proton_clear(&p);
	relm_store_proton_clear(&p2);
	free(c);
	free(circ);
	free(same);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("core_revoke");
	TCase *tc = tcase_create("revoke");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_revoke_heal);
	tcase_add_test(tc, test_revoke_rotate);
	tcase_add_test(tc, test_revoke_two_relationships);
	tcase_add_test(tc, test_forged_successor);
	tcase_add_test(tc, test_conflict_and_clone);
	tcase_add_test(tc, test_sib_identity_forged);
	tcase_add_test(tc, test_concurrent_change);
	suite_add_tcase(s, tc);
	tc = tcase_create("codec");
	tcase_add_test(tc, test_sib_identity_codec);
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

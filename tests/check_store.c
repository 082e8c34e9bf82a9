/*
 * check_store.c — the store's typed functions (lib/store/store.h), one
 * TCase per table family: round trips of protons, devices, circles,
 * pairings, invites and the replay guard, relationships, pending
 * envelopes and cursors, history with its de-duplication, and the outbox.
 * Typed events are in check_store_events.c; the retransmission queue and
 * its count, timers, the forward-only status rule and an engine step's
 * effects in check_store_queues.c.
 *
 * Transactions, staging and injected faults are in check_store_txn.c;
 * files, corruption and lazy loading in check_store_files.c; schema
 * versions and migrations in check_store_migrate.c;
 * the shared helpers in util_store.c.  Randomised tests take their seed
 * from RELM_SEED (default 0x5eed5eed) and print it in every failure.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "error.h"
#include "store/store.h"
#include "core/apply.h"
#include "util_store.h"

/* ---- API round trips -------------------------------------------------------------- */

static int count_cb_proton(void *ctx, const struct relm_store_proton *p)
{
	ck_assert(sodium_is_zero(p->isk, sizeof p->isk));
	++*(int *)ctx;
	return 0;
}

START_TEST(test_protons_devices)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_proton p, q;
	struct relm_store_device d, e;
	int n = 0;

	ts_mk_proton(&p, 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), RELM_EEXIST);
	ts_mk_proton(&q, 2);
	ck_assert_int_eq(relm_store_proton_put(st, &q), 0);
	{
		uint8_t hub[16], by[16];
		ts_fill(hub, 16, 7);
		ts_fill(by, 16, 8);
		ck_assert_int_eq(relm_store_proton_set_strategy(st, q.id, "fanout", hub, 3, by), 0);
		ck_assert_int_eq(relm_store_proton_set_strategy(st, q.id, "hub", hub, 3, by), RELM_EINVAL);
	}
	memset(&d, 0, sizeof d);
	memcpy(d.proton, p.id, 16);
	ts_fill(d.device, 16, 3);
	ts_fill(d.pk, 32, 4);
	ts_fill(d.sk, 64, 5);
	d.has_sk = 1;
	d.self = 1;
	d.epoch = 1;
	snprintf(d.label, sizeof d.label, "laptop");
	ck_assert_int_eq(relm_store_device_put(st, &d), 0);
	d.self = 0; d.has_sk = 0; d.device[0] ^= 1; d.epoch = 2;
	ck_assert_int_eq(relm_store_device_put(st, &d), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);

	ck_assert_int_eq(relm_store_proton_get(st, p.id, &q, 0), 0);
	ck_assert_str_eq(q.label, "proton 1");
	ck_assert_str_eq(q.strategy, "leaderless");
	ck_assert(sodium_is_zero(q.isk, 64));
	ck_assert_int_eq(relm_store_proton_get(st, p.id, &q, RELM_STORE_WITH_SECRETS), 0);
	ck_assert_int_eq(memcmp(q.isk, p.isk, 64), 0);
	relm_store_proton_clear(&q);
	ck_assert(sodium_is_zero((const unsigned char *)&q, sizeof q));
	ck_assert_int_eq(relm_store_proton_get(st, d.device, &q, 0), RELM_ENOTFOUND);
	ts_fill(q.id, 16, 2);
	ck_assert_int_eq(relm_store_proton_get(st, q.id, &q, 0), 0);
	ck_assert_str_eq(q.strategy, "fanout");
	{
		uint8_t hub[16], by[16];
		ts_fill(hub, 16, 7);
		ts_fill(by, 16, 8);
		ck_assert_int_eq(memcmp(q.pinned, hub, 16), 0);
		ck_assert_int_eq(memcmp(q.strategy_by, by, 16), 0);
		ck_assert_uint_eq(q.strategy_seq, 3);
	}
	ck_assert_int_eq(relm_store_proton_list(st, count_cb_proton, &n), 0);
	ck_assert_int_eq(n, 2);

	ck_assert_int_eq(relm_store_device_get_self(st, p.id, &e), 0);
	ck_assert_int_eq(e.has_sk, 1);
	ck_assert_int_eq(e.self, 1);
	ck_assert_str_eq(e.label, "laptop");
	ts_fill(d.sk, 64, 5);
	ck_assert_int_eq(memcmp(e.sk, d.sk, 64), 0);
	relm_store_device_clear(&e);
	relm_store_close(st);
}
END_TEST

/* relm_store_devices_gen moves on every write to devices or protons and
 * on every rollback (lib/core keeps what it read while it stands still),
 * and on nothing else. */
START_TEST(test_devices_gen)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_proton p;
	struct relm_store_device d;
	uint8_t by[16];
	uint64_t g;

	ts_mk_proton(&p, 1);
	ts_fill(by, 16, 8);
	memset(&d, 0, sizeof d);
	memcpy(d.proton, p.id, 16);
	ts_fill(d.device, 16, 3);
	ts_fill(d.pk, 32, 4);
	snprintf(d.label, sizeof d.label, "tablet");

	g = relm_store_devices_gen(st);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
	ck_assert_uint_gt(relm_store_devices_gen(st), g);
	g = relm_store_devices_gen(st);
	ck_assert_int_eq(relm_store_device_put(st, &d), 0);
	ck_assert_uint_gt(relm_store_devices_gen(st), g);
	g = relm_store_devices_gen(st);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_uint_eq(relm_store_devices_gen(st), g);       /* a commit changes nothing */

	/* a batched step that wrote nothing of these tables, then undone */
	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_uint_eq(relm_store_devices_gen(st), g);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_set_strategy(st, p.id, "leader", NULL, 1, by), 0);
	ck_assert_uint_gt(relm_store_devices_gen(st), g);
	g = relm_store_devices_gen(st);
	ck_assert_int_eq(relm_store_rollback(st), 0);           /* the step's undo */
	ck_assert_uint_gt(relm_store_devices_gen(st), g);
	g = relm_store_devices_gen(st);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_device_delete(st, p.id, d.device), 0);
	ck_assert_uint_gt(relm_store_devices_gen(st), g);
	ck_assert_int_eq(relm_store_commit(st), 0);
	g = relm_store_devices_gen(st);
	ck_assert_int_eq(relm_store_batch_rollback(st), 0);     /* the whole batch */
	ck_assert_uint_gt(relm_store_devices_gen(st), g);
	g = relm_store_devices_gen(st);

	/* a standalone step rolled back; the identity set */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_uint_eq(relm_store_devices_gen(st), g);
	ck_assert_int_eq(relm_store_proton_set_identity(st, p.id, p.ipk, p.isk), 0);
	ck_assert_uint_gt(relm_store_devices_gen(st), g);
	g = relm_store_devices_gen(st);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_uint_gt(relm_store_devices_gen(st), g);
	relm_store_close(st);
}
END_TEST

static int count_mbox_cb(void *ctx, const uint8_t id[32], uint64_t cursor)
{
	(void)id;
	ck_assert_uint_eq(cursor, 0);
	++*(int *)ctx;
	return 0;
}

/* This device's invite keys and the signed circles (devices.c). */
START_TEST(test_device_keys_circles)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_proton p, q;
	struct relm_store_device_keys k, g;
	uint8_t *buf = NULL, c1[40], c2[50];
	size_t len = 0;
	uint64_t epoch = 0;

	ts_mk_proton(&p, 1);
	ts_mk_proton(&q, 2);
	memset(&k, 0, sizeof k);
	memcpy(k.proton, p.id, 16);
	k.spk_id = 9;
	ts_fill(k.spk_priv, 32, 6);
	ts_fill(k.mailbox_id, 32, 7);
	ts_fill(k.mailbox_sk, 64, 8);
	ts_fill(c1, sizeof c1, 9);
	ts_fill(c2, sizeof c2, 10);
	ck_assert_int_eq(relm_store_device_keys_get(st, p.id, &g), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_circle_get(st, p.id, &epoch, &buf, &len), RELM_ENOTFOUND);
	ck_assert_ptr_null(buf);

	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &q), 0);
	ck_assert_int_eq(relm_store_device_keys_put(st, &k), 0);
	k.spk_id = 0;
	ck_assert_int_eq(relm_store_device_keys_put(st, &k), RELM_EINVAL);
	k.spk_id = 9;
	/* one device mailbox is one proton's */
	memcpy(k.proton, q.id, 16);
	ck_assert_int_eq(relm_store_device_keys_put(st, &k), RELM_EEXIST);
	memcpy(k.proton, p.id, 16);
	ck_assert_int_eq(relm_store_circle_put(st, p.id, 0, c1, sizeof c1), RELM_EINVAL);
	ck_assert_int_eq(relm_store_circle_put(st, p.id, 1, c1, 0), RELM_EINVAL);
	ck_assert_int_eq(relm_store_circle_put(st, p.id, 1, c1, sizeof c1), 0);
	ck_assert_int_eq(relm_store_circle_put(st, p.id, 2, c2, sizeof c2), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);

	ck_assert_int_eq(relm_store_device_keys_get(st, p.id, &g), 0);
	ck_assert_uint_eq(g.spk_id, 9);
	ck_assert_int_eq(sodium_memcmp(&g, &k, sizeof g), 0);
	relm_store_device_keys_clear(&g);
	ck_assert(sodium_is_zero((const unsigned char *)&g, sizeof g));
	ck_assert_int_eq(relm_store_device_keys_get(st, q.id, &g), RELM_ENOTFOUND);
	/* the device mailbox: whose it is, read like every mailbox of ours */
	{
		uint8_t who[16], sk[64];
		int n = 0;
		ck_assert_int_eq(relm_store_device_keys_by_mailbox(st, k.mailbox_id, who), 0);
		ck_assert_int_eq(memcmp(who, p.id, 16), 0);
		ck_assert_int_eq(relm_store_device_keys_by_mailbox(st, k.spk_priv, who), RELM_ENOTFOUND);
		ck_assert_int_eq(relm_store_mailbox_list(st, 0, count_mbox_cb, &n), 0);
		ck_assert_int_eq(n, 1);
		ck_assert_int_eq(relm_store_mailbox_secret(st, k.mailbox_id, sk), 0);
		ck_assert_int_eq(memcmp(sk, k.mailbox_sk, 64), 0);
		sodium_memzero(sk, sizeof sk);
	}

	/* the newest epoch, bytes as given */
	ck_assert_int_eq(relm_store_circle_get(st, p.id, &epoch, &buf, &len), 0);
	ck_assert_uint_eq(epoch, 2);
	ck_assert_uint_eq(len, sizeof c2);
	ck_assert_int_eq(memcmp(buf, c2, len), 0);
	free(buf);
	/* a conflict's winner replaces its epoch */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_circle_put(st, p.id, 2, c1, sizeof c1), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_circle_get(st, p.id, &epoch, &buf, &len), 0);
	ck_assert_uint_eq(epoch, 2);
	ck_assert_uint_eq(len, sizeof c1);
	ck_assert_int_eq(memcmp(buf, c1, len), 0);
	free(buf);
	ck_assert_int_eq(relm_store_circle_get(st, q.id, &epoch, &buf, &len), RELM_ENOTFOUND);
	relm_store_proton_clear(&p);
	relm_store_proton_clear(&q);
	relm_store_close(st);
}
END_TEST

/* pairings (v10): put, the update of a transition, get with secrets and
 * owned copies, lookup by mailbox, the mailbox in the list with its key,
 * refusals, delete; a device row follows a circle (delete, never self). */
static int pid_cb(void *ctx, const uint8_t id[16])
{
	(void)id;
	(*(int *)ctx)++;
	return 0;
}

static int mb_seen_cb(void *ctx, const uint8_t id[32], uint64_t cursor)
{
	uint8_t *want = ctx;
	(void)cursor;
	if (memcmp(id, want, 32) == 0)
		want[32]++;
	return 0;
}

START_TEST(test_pairings)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_pairing p, g, o;
	uint8_t join[40], keys[70], id[16], mb[33], sk[64];
	int n = 0;

	memset(&p, 0, sizeof p);
	ts_fill(p.id, 16, 1);
	p.role = RELM_PAIR_ROLE_J;
	p.state = RELM_PAIR_JOINING;
	ts_fill(p.secret, 32, 2);
	ts_fill(p.eph, 32, 3);
	p.has_eph = 1;
	p.expires = 1700000600000ULL;
	snprintf(p.host, sizeof p.host, "127.0.0.1:7427");
	ts_fill(p.mailbox, 32, 4);
	ts_fill(p.mailbox_sk, 64, 5);
	ts_fill(join, sizeof join, 6);
	ts_fill(keys, sizeof keys, 7);
	p.message = join;
	p.message_len = sizeof join;
	p.keys = keys;
	p.keys_len = sizeof keys;
	snprintf(p.label, sizeof p.label, "tablet");
	p.created = 1700000000000ULL;
	ck_assert_int_eq(relm_store_pairing_get(st, p.id, &g), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_pairing_put(st, &p), 0);
	o = p;
	o.state = 9;
	ck_assert_int_eq(relm_store_pairing_put(st, &o), RELM_EINVAL);
	o = p;
	o.role = 0;
	ck_assert_int_eq(relm_store_pairing_put(st, &o), RELM_EINVAL);
	/* another pairing may not read the same mailbox */
	o = p;
	ts_fill(o.id, 16, 8);
	ck_assert_int_lt(relm_store_pairing_put(st, &o), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);

	ck_assert_int_eq(relm_store_pairing_get(st, p.id, &g), 0);
	ck_assert_int_eq(g.role, RELM_PAIR_ROLE_J);
	ck_assert_int_eq(g.state, RELM_PAIR_JOINING);
	ck_assert_int_eq(memcmp(g.secret, p.secret, 32), 0);
	ck_assert(g.has_eph && !g.has_proton && !g.has_join_hash);
	ck_assert_int_eq(memcmp(g.eph, p.eph, 32), 0);
	ck_assert_uint_eq(g.message_len, sizeof join);
	ck_assert_int_eq(memcmp(g.message, join, sizeof join), 0);
	ck_assert_uint_eq(g.keys_len, sizeof keys);
	ck_assert_int_eq(memcmp(g.keys, keys, sizeof keys), 0);
	ck_assert_str_eq(g.label, "tablet");
	ck_assert_str_eq(g.host, "127.0.0.1:7427");
	ck_assert_uint_eq(g.expires, p.expires);
	relm_store_pairing_clear(&g);
	ck_assert_int_eq(relm_store_pairing_by_mailbox(st, p.mailbox, id), 0);
	ck_assert_int_eq(memcmp(id, p.id, 16), 0);
	memcpy(mb, p.mailbox, 32);
	mb[32] = 0;
	ck_assert_int_eq(relm_store_mailbox_list(st, 0, mb_seen_cb, mb), 0);
	ck_assert_int_eq(mb[32], 1);
	ck_assert_int_eq(relm_store_mailbox_secret(st, p.mailbox, sk), 0);
	ck_assert_int_eq(memcmp(sk, p.mailbox_sk, 64), 0);

	/* the transition to JOINED: e_J and the device keys wiped, the proton */
	p.state = RELM_PAIR_JOINED;
	p.has_eph = 0;
	p.keys = NULL;
	p.keys_len = 0;
	ts_fill(p.proton, 16, 9);
	p.has_proton = 1;
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_pairing_put(st, &p), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_pairing_get(st, p.id, &g), 0);
	ck_assert_int_eq(g.state, RELM_PAIR_JOINED);
	ck_assert(!g.has_eph && g.has_proton && g.keys == NULL && g.keys_len == 0);
	ck_assert_uint_eq(g.message_len, sizeof join);
	relm_store_pairing_clear(&g);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM pairings WHERE eph IS NOT NULL OR keys IS NOT NULL"), 0);
	ck_assert_int_eq(relm_store_pairing_ids(st, pid_cb, &n), 0);
	ck_assert_int_eq(n, 1);
	/* joined: J no longer reads its pairing mailbox */
	mb[32] = 0;
	ck_assert_int_eq(relm_store_mailbox_list(st, 0, mb_seen_cb, mb), 0);
	ck_assert_int_eq(mb[32], 0);

	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_pairing_delete(st, p.id), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_pairing_get(st, p.id, &g), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_pairing_by_mailbox(st, p.mailbox, id), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_mailbox_secret(st, p.mailbox, sk), RELM_ENOTFOUND);
	relm_store_close(st);
}
END_TEST

START_TEST(test_invites_replay)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_proton p;
	struct relm_store_invite inv, got;
	uint8_t ek[32], rel[16], pr[16];
	uint32_t spk;

	ts_mk_proton(&p, 1);
	memset(&inv, 0, sizeof inv);
	memcpy(inv.proton, p.id, 16);
	inv.spk_id = 77;
	ts_fill(inv.spk_priv, 32, 1);
	inv.opk_id = 78;
	ts_fill(inv.opk_priv, 32, 2);
	ts_fill(inv.mailbox_id, 32, 3);
	ts_fill(inv.mailbox_sk, 64, 4);
	inv.multi_use = 1;
	inv.expires = 10000;
	inv.created = 1;
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
	ck_assert_int_eq(relm_store_invite_put(st, &inv), 0);
	ck_assert_int_eq(relm_store_invite_put(st, &inv), RELM_EEXIST);
	ck_assert_int_eq(relm_store_commit(st), 0);

	ck_assert_int_eq(relm_store_invite_get(st, p.id, 77, &got), 0);
	ck_assert_int_eq(memcmp(got.spk_priv, inv.spk_priv, 32), 0);
	ck_assert_int_eq(memcmp(got.opk_priv, inv.opk_priv, 32), 0);
	ck_assert_int_eq(memcmp(got.mailbox_sk, inv.mailbox_sk, 64), 0);
	ck_assert_int_eq(got.opk_id, 78);
	ck_assert_int_eq(got.multi_use, 1);
	ck_assert_int_eq(got.used, 0);
	relm_store_invite_clear(&got);
	ck_assert_int_eq(relm_store_invite_get(st, p.id, 76, &got), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_invite_by_mailbox(st, inv.mailbox_id, pr, &spk), 0);
	ck_assert_int_eq(spk, 77);
	ck_assert_int_eq(memcmp(pr, p.id, 16), 0);

	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_invite_mark_used(st, p.id, 77), 0);
	ts_fill(ek, 32, 9);
	ts_fill(rel, 16, 10);
	ck_assert_int_eq(relm_store_replay_check_insert(st, p.id, 77, ek, rel, 5), 0);
	ck_assert_int_eq(relm_store_replay_check_insert(st, p.id, 77, ek, rel, 6), RELM_EREPLAY);
	ck_assert_int_eq(relm_store_replay_check_insert(st, p.id, 77, ek, NULL, 6), RELM_EREPLAY);
	/* a guard row belongs to an invite that exists (v14) */
	ck_assert_int_eq(relm_store_replay_check_insert(st, p.id, 76, ek, rel, 6), RELM_ENOTFOUND);
	ek[0] ^= 1;
	ck_assert_int_eq(relm_store_replay_check_insert(st, p.id, 77, ek, rel, 6), 0);
	/* a second invite, living longer: its own guard, the same EK new there */
	inv.spk_id = 80;
	inv.expires = 20000;
	ts_fill(inv.mailbox_id, 32, 5);
	ck_assert_int_eq(relm_store_invite_put(st, &inv), 0);
	ck_assert_int_eq(relm_store_replay_check_insert(st, p.id, 80, ek, rel, 6), 0);
	ck_assert_int_eq(relm_store_replay_check_insert(st, p.id, 80, ek, rel, 6), RELM_EREPLAY);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM replay_guard"), 3);

	ck_assert_int_eq(relm_store_invite_get(st, p.id, 77, &got), 0);
	ck_assert_int_eq(got.used, 1);
	ck_assert(sodium_is_zero(got.opk_priv, 32));   /* the one-time prekey is gone */
	relm_store_invite_clear(&got);
	/* The replay survives a reopen. */
	relm_store_close(st);
	st = ts_open_ok(ts_dbpath, 0, NULL);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_replay_check_insert(st, p.id, 77, ek, rel, 7), RELM_EREPLAY);
	/* both invites' mailboxes were read (cursors), and another mailbox */
	{
		uint8_t other[32];
		ts_fill(other, 32, 6);
		ck_assert_int_eq(relm_store_cursor_set(st, inv.mailbox_id, 4), 0);       /* invite 80 */
		ts_fill(inv.mailbox_id, 32, 3);
		ck_assert_int_eq(relm_store_cursor_set(st, inv.mailbox_id, 9), 0);       /* invite 77 */
		ck_assert_int_eq(relm_store_cursor_set(st, other, 2), 0);
	}
	ck_assert_int_eq(relm_store_invite_expire(st, 9999, NULL, NULL), 0);
	ck_assert_int_eq(relm_store_invite_expire(st, 10001, NULL, NULL), 1);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_invite_get(st, p.id, 77, &got), RELM_ENOTFOUND);
	/* the expired invite's guard rows went with it (nothing can ask them:
	 * ratchet.md §8.3 refuses its envelopes at step 1); the other's stay */
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM replay_guard WHERE spk_id=77"), 0);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM replay_guard WHERE spk_id=80"), 1);
	/* and its mailbox's cursor; the others stay */
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM cursors"), 2);
	ck_assert_int_eq(ts_exec_int(st, "SELECT cursor FROM cursors WHERE mailbox=(SELECT mailbox_id FROM invites"
	                                 " WHERE spk_id=80)"), 4);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_replay_check_insert(st, p.id, 80, ek, rel, 8), RELM_EREPLAY);
	ck_assert_int_eq(relm_store_invite_expire(st, 20000, NULL, NULL), 1);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM replay_guard"), 0);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM cursors"), 1);
	relm_store_close(st);
}
END_TEST

START_TEST(test_relationships)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_proton p;
	struct relm_store_rel r, g;
	uint8_t state[5000], rid[16];
	struct ts_list_acc acc;

	ts_mk_proton(&p, 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
	for (uint32_t i = 0; i < 25; i++) {
		ts_fill(state, sizeof state, (uint8_t)i);
		ts_mk_rel(&r, p.id, i, state, sizeof state);
		ck_assert_int_eq(relm_store_rel_put(st, &r), 0);
	}
	ck_assert_int_eq(relm_store_rel_put(st, &r), RELM_EEXIST);
	r.proton[0] ^= 0xff;
	r.id[0] = 1;
	r.mailbox_id[0] = 1;
	ck_assert_int_eq(relm_store_rel_put(st, &r), RELM_ENOTFOUND);   /* foreign key */
	ck_assert_int_eq(relm_store_commit(st), 0);

	ts_mk_rel(&r, p.id, 7, state, sizeof state);
	ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, 0), 0);
	ck_assert_ptr_null(g.state);
	ck_assert_str_eq(g.label, "rel 7");
	ck_assert_int_eq(g.mode, 1);
	ck_assert_int_eq(memcmp(g.remote_ipk, r.remote_ipk, 32), 0);
	relm_store_rel_clear(&g);
	ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, RELM_STORE_WITH_STATE | RELM_STORE_WITH_SECRETS), 0);
	ts_fill(state, sizeof state, 7);
	ck_assert_uint_eq(g.state_len, sizeof state);
	ck_assert_int_eq(memcmp(g.state, state, sizeof state), 0);
	relm_store_rel_clear(&g);
	ck_assert_int_eq(relm_store_rel_by_mailbox(st, r.mailbox_id, rid), 0);
	ck_assert_int_eq(memcmp(rid, r.id, 16), 0);
	{
		/* the state by mailbox: the file's, then what the open step staged */
		uint8_t *sb = NULL, nobody[32] = { 0 };
		size_t sn = 0;
		memset(rid, 0, sizeof rid);
		ck_assert_int_eq(relm_store_rel_state_by_mailbox(st, r.mailbox_id, rid, &sb, &sn), 0);
		ck_assert_int_eq(memcmp(rid, r.id, 16), 0);
		ck_assert_uint_eq(sn, sizeof state);
		ck_assert_int_eq(memcmp(sb, state, sizeof state), 0);
		relm_store_buf_free(sb, sn);
		ck_assert_int_eq(relm_store_rel_state_by_mailbox(st, nobody, rid, &sb, &sn), RELM_ENOTFOUND);
		ck_assert_int_eq(relm_store_begin(st), 0);
		ck_assert_int_eq(relm_store_rel_set_state(st, r.id, (const uint8_t *)"staged", 6, 99998), 0);
		ck_assert_int_eq(relm_store_rel_state_by_mailbox(st, r.mailbox_id, rid, &sb, &sn), 0);
		ck_assert_uint_eq(sn, 6);
		ck_assert_int_eq(memcmp(sb, "staged", 6), 0);
		relm_store_buf_free(sb, sn);
		ck_assert_int_eq(relm_store_rollback(st), 0);
	}

	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_state(st, r.id, (const uint8_t *)"new", 3, 99999), 0);
	ck_assert_int_eq(relm_store_rel_set_unread(st, r.id, 4), 0);
	ck_assert_int_eq(relm_store_rel_set_state(st, p.id, (const uint8_t *)"x", 1, 1), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, RELM_STORE_WITH_STATE), 0);
	ck_assert_uint_eq(g.state_len, 3);
	ck_assert_int_eq(memcmp(g.state, "new", 3), 0);
	ck_assert_uint_eq(g.last_activity, 99999);
	ck_assert_uint_eq(g.unread, 4);
	relm_store_rel_clear(&g);

	/* Pagination: 10 + 10 + 5. */
	memset(&acc, 0, sizeof acc);
	ck_assert_int_eq(relm_store_rel_list(st, p.id, NULL, 10, ts_rel_cb, &acc), 0);
	ck_assert_int_eq(acc.n, 10);
	ck_assert_int_eq(relm_store_rel_list(st, p.id, acc.last, 10, ts_rel_cb, &acc), 0);
	ck_assert_int_eq(acc.n, 20);
	ck_assert_int_eq(relm_store_rel_list(st, p.id, acc.last, 10, ts_rel_cb, &acc), 0);
	ck_assert_int_eq(acc.n, 25);
	ck_assert_int_eq(relm_store_rel_list(st, p.id, acc.last, 10, ts_rel_cb, &acc), 0);
	ck_assert_int_eq(acc.n, 25);
	relm_store_close(st);
}
END_TEST

static int pending_cb(void *ctx, const uint8_t hash[16], const uint8_t *b, size_t n, uint64_t t)
{
	(void)hash; (void)t;
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(memcmp(b, "env", 3), 0);
	++*(int *)ctx;
	return 0;
}

/* relm_store_rel_by_remote finds the relationship by the whole key and the
 * proton, through the index on the key's first 8 bytes (v12): keys that
 * share the prefix, and the same key under another proton, are told apart. */
START_TEST(test_rel_by_remote)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_proton p, q;
	struct relm_store_rel r1, r2, r3;
	uint8_t state[8] = { 0 }, key[32], got[16];
	sqlite3_stmt *s;
	int uses_index = 0;

	ts_mk_proton(&p, 1);
	ts_mk_proton(&q, 2);
	ts_mk_rel(&r1, p.id, 1, state, sizeof state);
	ts_mk_rel(&r2, p.id, 2, state, sizeof state);
	ts_mk_rel(&r3, q.id, 3, state, sizeof state);
	memcpy(r2.remote_ipk, r1.remote_ipk, 8);          /* the same first 8 bytes */
	memcpy(r3.remote_ipk, r2.remote_ipk, 32);         /* r2's key, under q */
	ck_assert_int_ne(memcmp(r1.remote_ipk, r2.remote_ipk, 32), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &q), 0);
	ck_assert_int_eq(relm_store_rel_put(st, &r1), 0);
	ck_assert_int_eq(relm_store_rel_put(st, &r2), 0);
	ck_assert_int_eq(relm_store_rel_put(st, &r3), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);

	ck_assert_int_eq(relm_store_rel_by_remote(st, p.id, r1.remote_ipk, got), 0);
	ck_assert_int_eq(memcmp(got, r1.id, 16), 0);
	ck_assert_int_eq(relm_store_rel_by_remote(st, p.id, r2.remote_ipk, got), 0);
	ck_assert_int_eq(memcmp(got, r2.id, 16), 0);
	ck_assert_int_eq(relm_store_rel_by_remote(st, q.id, r3.remote_ipk, got), 0);
	ck_assert_int_eq(memcmp(got, r3.id, 16), 0);
	ck_assert_int_eq(relm_store_rel_by_remote(st, q.id, r1.remote_ipk, got), RELM_ENOTFOUND);
	memcpy(key, r1.remote_ipk, 32);
	key[31] ^= 1;                                     /* the prefix alone matches nothing */
	ck_assert_int_eq(relm_store_rel_by_remote(st, p.id, key, got), RELM_ENOTFOUND);

	/* one index probe, not a scan */
	ck_assert_int_eq(sqlite3_prepare_v2(relm__store_db(st),
	                                    "EXPLAIN QUERY PLAN SELECT id FROM relationships"
	                                    " WHERE substr(remote_ipk,1,8)=substr(?2,1,8) AND proton=?1 AND remote_ipk=?2",
	                                    -1, &s, NULL), SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW)
		uses_index |= strstr((const char *)sqlite3_column_text(s, 3), "USING INDEX relationships_by_remote") != NULL;
	sqlite3_finalize(s);
	ck_assert(uses_index);
	relm_store_close(st);
}
END_TEST

START_TEST(test_pending_cursor)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	uint8_t rel[16], h[16], mb[32];
	uint64_t c = 99;
	int n = 0;

	ts_populate(st);
	ts_mk_rel(&(struct relm_store_rel){0}, rel, 0, NULL, 0);
	{
		struct relm_store_rel r;
		uint8_t pid[16];
		ts_fill(pid, 16, 1);
		ts_mk_rel(&r, pid, 0, NULL, 0);
		memcpy(rel, r.id, 16);
	}
	ts_fill(h, 16, 1);
	ts_fill(mb, 32, 8);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_pending_add(st, rel, h, (const uint8_t *)"env", 3, 10), 0);
	ck_assert_int_eq(relm_store_pending_add(st, rel, h, (const uint8_t *)"env", 3, 10), RELM_EDUP);
	h[0] ^= 1;
	ck_assert_int_eq(relm_store_pending_add(st, rel, h, (const uint8_t *)"env", 3, 11), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_pending_list(st, rel, pending_cb, &n), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_pending_del(st, rel, h), 0);
	ck_assert_int_eq(relm_store_pending_del(st, rel, h), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_commit(st), 0);
	n = 0;
	ck_assert_int_eq(relm_store_pending_list(st, rel, pending_cb, &n), 0);
	ck_assert_int_eq(n, 1);

	ck_assert_int_eq(relm_store_cursor_get(st, mb, &c), 0);
	ck_assert_uint_eq(c, 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 41), 0);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 42), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_cursor_get(st, mb, &c), 0);
	ck_assert_uint_eq(c, 42);
	relm_store_close(st);
}
END_TEST

struct msg_acc { int n; int64_t last; };

static int msg_cb(void *ctx, const struct relm_store_msg *m)
{
	struct msg_acc *a = ctx;
	if (a->n)
		ck_assert_int_lt(m->seq, a->last);
	a->last = m->seq;
	ck_assert_uint_eq(m->body_len, 200);
	a->n++;
	return 0;
}

START_TEST(test_messages_dedup)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_rel r;
	struct relm_store_msg m, g;
	struct msg_acc a = { 0, 0 };
	uint8_t pid[16];

	ts_populate(st);
	ts_fill(pid, 16, 1);
	ts_mk_rel(&r, pid, 0, NULL, 0);
	/* ts_populate() inserted id ts_fill(k*7) for k in 0..19; insert k=3 again with another body. */
	memset(&m, 0, sizeof m);
	memcpy(m.rel, r.id, 16);
	ts_fill(m.id, 16, 21);
	m.body = (const uint8_t *)"other";
	m.body_len = 5;
	m.origin = RELM_ORIGIN_SIBLING;
	m.direction_in = 1;
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_msg_insert(st, &m), 0);          /* duplicate: ignored */
	ck_assert_int_eq(relm_store_history_has(st, r.id, m.id), 1);
	m.id[0] ^= 0x80;
	ck_assert_int_eq(relm_store_history_has(st, r.id, m.id), 0);
	m.status = 99;
	ck_assert_int_eq(relm_store_msg_insert(st, &m), RELM_EINVAL);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM messages"), 40);

	ck_assert_int_eq(relm_store_msg_list(st, r.id, 0, 7, msg_cb, &a), 0);
	ck_assert_int_eq(a.n, 7);
	ck_assert_int_eq(relm_store_msg_list(st, r.id, a.last, 0, msg_cb, &a), 0);
	ck_assert_int_eq(a.n, 20);

	ts_fill(m.id, 16, 21);
	ck_assert_int_eq(relm_store_msg_get(st, r.id, m.id, &g), 0);
	ck_assert_int_eq(g.direction_in, 1);
	ck_assert_int_eq(g.origin, RELM_ORIGIN_REMOTE);
	ck_assert_int_eq(g.status, RELM_STATUS_NONE);
	ck_assert_str_eq(g.kind, "text");
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_msg_set_status(st, r.id, m.id, RELM_STATUS_FAILED, "retry limit", 77), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_msg_get(st, r.id, m.id, &g), 0);
	ck_assert_int_eq(g.status, RELM_STATUS_FAILED);
	ck_assert_str_eq(g.reason, "retry limit");
	ck_assert_uint_eq(g.updated, 77);
	ck_assert_int_eq(relm_store_history_has_cb(st, r.id, m.id), 1);
	relm_store_close(st);
}
END_TEST

struct ob_acc { int n; int64_t seq[10]; };

static int ob_cb(void *ctx, const struct relm_store_outbox *o)
{
	struct ob_acc *a = ctx;
	ck_assert_str_eq(o->dest, "mb.example:1/x");
	ck_assert_uint_eq(o->len, 4);
	a->seq[a->n++] = o->seq;
	return 0;
}

START_TEST(test_outbox)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_outbox o;
	struct ob_acc a = { 0, { 0 } };
	int64_t seq[5];

	memset(&o, 0, sizeof o);
	snprintf(o.dest, sizeof o.dest, "mb.example:1/x");
	o.bytes = (const uint8_t *)"abcd";
	o.len = 4;
	ck_assert_int_eq(relm_store_begin(st), 0);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(relm_store_outbox_add(st, &o, &seq[i]), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	for (int i = 1; i < 5; i++)
		ck_assert_int_gt(seq[i], seq[i - 1]);
	ck_assert_int_eq(relm_store_outbox_next(st, 0, 2, ob_cb, &a), 0);
	ck_assert_int_eq(a.n, 2);
	ck_assert_int_eq(a.seq[0], seq[0]);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_outbox_mark_posted(st, seq[0], 5), 0);
	ck_assert_int_eq(relm_store_outbox_mark_posted(st, seq[0], 6), 0);   /* idempotent */
	ck_assert_int_eq(relm_store_outbox_mark_posted(st, seq[2], 5), 0);
	ck_assert_int_eq(relm_store_outbox_mark_posted(st, 12345, 5), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_commit(st), 0);
	a.n = 0;
	ck_assert_int_eq(relm_store_outbox_next(st, 0, 0, ob_cb, &a), 0);
	ck_assert_int_eq(a.n, 3);
	ck_assert_int_eq(a.seq[0], seq[1]);
	ck_assert_int_eq(a.seq[1], seq[3]);
	ck_assert_int_eq(relm_store_begin(st), 0);
	/* a slice: the oldest posted row first, the queued ones stay */
	ck_assert_int_eq(relm_store_outbox_purge_posted(st, 1), 1);
	ck_assert_int_eq(ts_exec_int(st, "SELECT min(seq) FROM outbox WHERE state='posted'"), (int)seq[2]);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM outbox WHERE state='queued'"), 3);
	ck_assert_int_eq(relm_store_outbox_purge_posted(st, 5), 1);
	ck_assert_int_eq(relm_store_outbox_purge_posted(st, 5), 0);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM outbox"), 3);
	ck_assert_int_eq(relm_store_outbox_mark_posted(st, seq[1], 5), 0);
	ck_assert_int_eq(relm_store_outbox_mark_posted(st, seq[3], 5), 0);
	ck_assert_int_eq(relm_store_outbox_purge_posted(st, 0), 2);     /* 0: all of them */
	ck_assert_int_eq(relm_store_outbox_add(st, &o, &seq[0]), 0);
	ck_assert_int_gt(seq[0], seq[4]);      /* AUTOINCREMENT: never reused */
	o.dest[0] = '\0';
	ck_assert_int_eq(relm_store_outbox_add(st, &o, NULL), RELM_EINVAL);
	ck_assert_int_eq(relm_store_commit(st), 0);
	relm_store_close(st);
}
END_TEST

int main(void)
{
	const struct ts_test tests[] = {
		{ "protons_devices", test_protons_devices, 10 },
		{ "protons_devices", test_devices_gen, 10 },
		{ "protons_devices", test_device_keys_circles, 10 },
		{ "protons_devices", test_pairings, 10 },
		{ "invites_replay", test_invites_replay, 10 },
		{ "relationships", test_relationships, 10 },
		{ "relationships", test_rel_by_remote, 10 },
		{ "pending", test_pending_cursor, 10 },
		{ "messages", test_messages_dedup, 10 },
		{ "outbox_cursors", test_outbox, 10 },
	};
	return ts_run("store", tests, sizeof tests / sizeof tests[0]);
}

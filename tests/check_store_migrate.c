/*
 * check_store_migrate.c — the store's schema versions (lib/store/schema.c):
 * the fixture of every version (tests/fixtures/store-v<N>.sql) opened at
 * the current one with its data, and each migration with its own test:
 * v2→v3 exact outgoing counts, v3→v4 the acks table, v4→v5 the CHECK text
 * (and an unexpected table refused), v5→v6 typed events read from every
 * shape of v5 JSON, replayed as relmd replayed them, numbering kept.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>
#include "error.h"
#include "store/store.h"
#include "core/apply.h"
#include "relmd/event_json.h"
#include "util_store.h"

struct ack_seen {
	int n;
	uint8_t id_first[16], dh_first[32];
	uint32_t n_first;
	uint32_t n_prev;
	int ordered;                 /* counters came in ascending order (one dh) */
};

static int ack_cb(void *ctx, const uint8_t id[16], const uint8_t dh[32], uint32_t n)
{
	struct ack_seen *a = ctx;
	if (a->n == 0) {
		memcpy(a->id_first, id, 16);
		memcpy(a->dh_first, dh, 32);
		a->n_first = n;
		a->ordered = 1;
	} else if (n < a->n_prev) {
		a->ordered = 0;
	}
	a->n_prev = n;
	a->n++;
	return 0;
}

static int ack_rows(struct relm_store *st, const uint8_t rel[16])
{
	struct ack_seen a;
	memset(&a, 0, sizeof a);
	ck_assert_int_eq(relm_store_ack_list(st, rel, ack_cb, &a), 0);
	return a.n;
}

struct fx_events {
	int n;
	struct relm_event ev[8];
	uint64_t ts[8];
	char reason3[64];
	char table7[32];
};

static int fx_event_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	struct fx_events *fe = ctx;
	ck_assert_int_eq(seq, fe->n + 1);
	ck_assert_int_lt(fe->n, 8);
	if (fe->n == 3)
		snprintf(fe->reason3, sizeof fe->reason3, "%s", ev->reason ? ev->reason : "");
	if (fe->n == 7)
		snprintf(fe->table7, sizeof fe->table7, "%s", ev->table ? ev->table : "");
	fe->ts[fe->n] = ts;
	fe->ev[fe->n++] = *ev;
	return 0;
}

/* Does the file hold these bytes anywhere? */
static int file_holds(const char *path, const uint8_t *b, size_t n)
{
	size_t len = 0;
	uint8_t *buf = ts_read_file(path, &len);
	int found = 0;

	ck_assert_ptr_nonnull(buf);
	for (size_t i = 0; i + n <= len && !found; i++)
		found = memcmp(buf + i, b, n) == 0;
	free(buf);
	return found;
}

/* Load tests/fixtures/store-v<version>.sql and open it at the current
 * version: the data of every table survives every migration. */
static void check_fixture(int version)
{
	sqlite3 *db;
	struct relm_store *st;
	struct relm_store_proton p;
	struct relm_store_rel r;
	struct relm_store_invite inv;
	uint8_t pid[16], rid[16];

	db = ts_fixture_db(version);
	sqlite3_close(db);
	ck_assert_int_eq(chmod(ts_dbpath, 0600), 0);

	st = ts_open_ok(ts_dbpath, RELM_STORE_F_INTEGRITY, NULL);
	ck_assert_int_eq(ts_exec_int(st, "PRAGMA user_version"), RELM_STORE_SCHEMA_VERSION);
	memset(pid, 0x11, 16);
	ck_assert_int_eq(relm_store_proton_get(st, pid, &p, RELM_STORE_WITH_SECRETS), 0);
	ck_assert_str_eq(p.label, "alice");
	ck_assert_int_eq(p.isk[0], 0x44);
	/* v11's strategy columns: defaults before, the fixture's from v11 */
	ck_assert_str_eq(p.strategy, version >= 11 ? "leader" : "leaderless");
	ck_assert_uint_eq(p.strategy_seq, version >= 11 ? 2 : 0);
	ck_assert_int_eq(p.pinned[0], version >= 11 ? 0x55 : 0);
	ck_assert_int_eq(p.strategy_by[15], version >= 11 ? 0x55 : 0);
	relm_store_proton_clear(&p);
	{
		uint64_t nreq = 9;
		ck_assert_int_eq(relm_store_request_count(st, pid, &nreq), 0);
		ck_assert_uint_eq(nreq, version >= 11 ? 1 : 0);
	}
	memset(rid, 0x22, 16);
	ck_assert_int_eq(relm_store_rel_get(st, rid, &r, RELM_STORE_WITH_STATE), 0);
	ck_assert_str_eq(r.label, "bob");
	/* v12: the blob's copies only — the row lost its secret and address */
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM pragma_table_info('relationships')"
	                                 " WHERE name='mailbox_sk' OR name='remote_addr'"), 0);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM relationships WHERE mailbox_id=X'"
	                                 "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2'"), 1);
	ck_assert_uint_eq(r.state_len, 4);
	ck_assert_int_eq(memcmp(r.state, "RLM1", 4), 0);
	relm_store_rel_clear(&r);
	ck_assert_int_eq(relm_store_invite_get(st, pid, 1, &inv), 0);
	relm_store_invite_clear(&inv);
	/* v14: the replay guard's row, seen after its live invite was made,
	 * is that invite's */
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM replay_guard WHERE spk_id=1 AND ek=X'"
	                                 "4949494949494949494949494949494949494949494949494949494949494949'"), 1);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM replay_guard"), 1);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM messages"), 2);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM outbox WHERE state='queued'"), 1);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM events"), version >= 7 ? 8 : version >= 6 ? 7 : 2);
	{
		/* the two events every fixture has, typed (JSON text up to v5) */
		struct fx_events fe;
		memset(&fe, 0, sizeof fe);
		ck_assert_int_eq(relm_store_event_list(st, 0, 0, fx_event_cb, &fe), 0);
		ck_assert_int_eq(fe.n, version >= 7 ? 8 : version >= 6 ? 7 : 2);
		ck_assert_int_eq(fe.ev[0].type, RELM_EV_RELATIONSHIP_CREATED);
		ck_assert_uint_eq(fe.ev[0].has, RELM_EVF_REL);
		ck_assert_int_eq(memcmp(fe.ev[0].rel, rid, 16), 0);
		ck_assert_uint_eq(fe.ts[0], 1700000000002ULL);
		ck_assert_int_eq(fe.ev[1].type, RELM_EV_MESSAGE_RECEIVED);
		ck_assert_uint_eq(fe.ev[1].has, RELM_EVF_REL | RELM_EVF_MSG);
		ck_assert_int_eq(fe.ev[1].msg[0], 0x33);
		if (version >= 6) {
			ck_assert_int_eq(fe.ev[3].status, RELM_STATUS_FAILED);
			ck_assert_str_eq(fe.reason3, "no receipt after 24 tries");
			ck_assert_int_eq(fe.ev[4].code, RELM_EAUTH);
			ck_assert_uint_eq(fe.ev[4].mailbox_seq, 13);
			ck_assert_int_eq(fe.ev[5].node[0], 0x56);
			ck_assert_uint_eq(fe.ev[6].pruned, 1);
		}
		if (version >= 7) {
			ck_assert_int_eq(fe.ev[7].type, RELM_EV_STORE_CORRUPT_ROW);
			ck_assert_str_eq(fe.table7, "messages");
			ck_assert_uint_eq(fe.ev[7].row, 2);
			ck_assert(fe.ev[7].has & RELM_EVF_MSG);
		}
	}
	ck_assert_int_eq(ts_exec_int(st, "SELECT cursor FROM cursors"), 12);
	{
		uint64_t next = 0;
		ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
		ck_assert_uint_eq(next, 1700000010000ULL);
	}
	ck_assert_int_eq(relm_store_history_has(st, rid, (uint8_t[16]){0x33,0x33,0x33,0x33,0x33,0x33,0x33,0x33,0x33,0x33,0x33,0x33,0x33,0x33,0x33,0x33}), 1);
	{
		/* v2's retransmission queue: empty after migrating v1, one row in v2 */
		uint64_t count = 99, next = 0;
		ck_assert_int_eq(relm_store_outgoing_count(st, rid, &count), 0);
		ck_assert_uint_eq(count, version >= 2 ? 1 : 0);
		ck_assert_int_eq(relm_store_outgoing_next(st, rid, &next), 0);
		ck_assert_uint_eq(next, version >= 2 ? 1700000020000ULL : 0);
	}
	{
		/* v4's acknowledgements: none after migrating v1–v3, one in v4 */
		struct ack_seen a;
		memset(&a, 0, sizeof a);
		ck_assert_int_eq(relm_store_ack_list(st, rid, ack_cb, &a), 0);
		ck_assert_int_eq(a.n, version >= 4 ? 1 : 0);
		if (version >= 4) {
			ck_assert_uint_eq(a.n_first, 7);
			ck_assert_int_eq(a.dh_first[0], 0x57);
			ck_assert_int_eq(a.id_first[0], 0x33);
		}
	}
	{
		/* v8's device keys: none before, the fixture's row from v8 */
		struct relm_store_device_keys k;
		int rc = relm_store_device_keys_get(st, pid, &k);
		if (version >= 8) {
			ck_assert_int_eq(rc, 0);
			ck_assert_uint_eq(k.spk_id, 7);
			ck_assert_int_eq(k.spk_priv[0], 0x58);
			ck_assert_int_eq(k.mailbox_id[31], 0xa4);
			ck_assert_int_eq(k.mailbox_sk[63], 0x59);
		} else {
			ck_assert_int_eq(rc, RELM_ENOTFOUND);
		}
		relm_store_device_keys_clear(&k);
	}
	{
		/* v10's pairings: an E pairing that welcomed its joiner */
		struct relm_store_pairing pr;
		uint8_t prid[16], mb[32], sk[64], got[16];
		int rc;
		memset(prid, 0x61, 16);
		memset(mb, 0xa5, 32);
		rc = relm_store_pairing_get(st, prid, &pr);
		if (version >= 10) {
			ck_assert_int_eq(rc, 0);
			ck_assert_int_eq(pr.role, RELM_PAIR_ROLE_E);
			ck_assert_int_eq(pr.state, RELM_PAIR_WELCOMED);
			ck_assert_int_eq(pr.secret[31], 0x62);
			ck_assert(!pr.has_eph && pr.has_proton && pr.has_join_hash);
			ck_assert_int_eq(pr.proton[0], 0x11);
			ck_assert_uint_eq(pr.expires, 1700000600000ULL);
			ck_assert_str_eq(pr.host, "127.0.0.1:7427");
			ck_assert_int_eq(pr.mailbox_sk[63], 0x63);
			ck_assert_int_eq(pr.join_hash[0], 0x64);
			ck_assert_uint_eq(pr.message_len, 2);
			ck_assert_int_eq(pr.message[1], 0x02);
			ck_assert_uint_eq(pr.keys_len, 0);
			relm_store_pairing_clear(&pr);
			ck_assert_int_eq(relm_store_pairing_by_mailbox(st, mb, got), 0);
			ck_assert_int_eq(memcmp(got, prid, 16), 0);
			ck_assert_int_eq(relm_store_mailbox_secret(st, mb, sk), 0);
			ck_assert_int_eq(sk[0], 0x63);
		} else {
			ck_assert_int_eq(rc, RELM_ENOTFOUND);
			ck_assert_int_eq(relm_store_pairing_by_mailbox(st, mb, got), RELM_ENOTFOUND);
		}
	}
	/* and it keeps working */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_event_append(st, ts_any_event(), 1, NULL), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	relm_store_close(st);
	{
		/* the dropped secret column is gone from the file too (secure_delete;
		 * closed: the WAL is checkpointed) */
		uint8_t rel_sk[64];
		memset(rel_sk, 0x4a, sizeof rel_sk);
		ck_assert(!file_holds(ts_dbpath, rel_sk, sizeof rel_sk));
	}
}

START_TEST(test_fixture_v1)
{
	check_fixture(1);
}
END_TEST

START_TEST(test_fixture_v2)
{
	check_fixture(2);
}
END_TEST

START_TEST(test_fixture_v3)
{
	check_fixture(3);
}
END_TEST

START_TEST(test_fixture_v4)
{
	check_fixture(4);
}
END_TEST

START_TEST(test_fixture_v5)
{
	check_fixture(5);
}
END_TEST

START_TEST(test_fixture_v6)
{
	check_fixture(6);
}
END_TEST

START_TEST(test_fixture_v7)
{
	check_fixture(7);
}
END_TEST

START_TEST(test_fixture_v8)
{
	check_fixture(8);
}
END_TEST

START_TEST(test_fixture_v9)
{
	check_fixture(9);
}
END_TEST

START_TEST(test_fixture_v10)
{
	check_fixture(10);
}
END_TEST

START_TEST(test_fixture_v11)
{
	check_fixture(11);
}
END_TEST

START_TEST(test_fixture_v12)
{
	check_fixture(12);
}
END_TEST

START_TEST(test_fixture_v13)
{
	check_fixture(13);
}
END_TEST

START_TEST(test_fixture_v14)
{
	check_fixture(14);
}
END_TEST

/* The text of a schema object of the handle's file, as a malloc'd string. */
static char *schema_sql(struct relm_store *st, const char *name)
{
	sqlite3_stmt *s;
	char *v = NULL;
	ck_assert_int_eq(sqlite3_prepare_v2(relm__store_db(st), "SELECT sql FROM sqlite_schema WHERE name=?1",
	                                    -1, &s, NULL), SQLITE_OK);
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	ck_assert_ptr_nonnull(v);
	return v;
}

/* How many ephemeral tables a statement opens on the handle's connection. */
static int ephemeral_tables(struct relm_store *st, const char *sql)
{
	char q[1024];
	sqlite3_stmt *s;
	int n = 0;
	snprintf(q, sizeof q, "EXPLAIN %s", sql);
	ck_assert_int_eq(sqlite3_prepare_v2(relm__store_db(st), q, -1, &s, NULL), SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW)
		n += strcmp((const char *)sqlite3_column_text(s, 1), "OpenEphemeral") == 0;
	sqlite3_finalize(s);
	return n;
}

/* sqlite3_exec on the handle's connection (extended result codes on) */
static int raw_exec(struct relm_store *st, const char *sql)
{
	return sqlite3_exec(relm__store_db(st), sql, NULL, NULL, NULL);
}

/* A v4 store migrates to v5 (and on): the rows of messages are intact, the CHECK
 * constraints on origin and status still refuse what they refused (raw
 * SQL, insert and update) and accept every name, the connection that ran
 * the migration already uses the new text (no ephemeral table for a
 * history insert or a status update), and the table reads exactly as in
 * a store created fresh. */
START_TEST(test_migrate_v4_checks)
{
	static const char *const status[] = { "none", "queued", "posted", "delivered", "failed" };
	static const char *const origin[] = { "self", "sibling", "remote" };
	static const char ins[] = "INSERT INTO messages(rel,id,direction,origin,kind,body,ts,status,reason,created,updated)"
	                          " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?10)";
	static const char upd[] = "UPDATE messages SET status=?3, reason=?4, updated=?5 WHERE rel=?1 AND id=?2";
	char sql[512], fresh_path[300], *migrated, *fresh;
	sqlite3 *db;
	struct relm_store *st, *st2;
	struct relm_store_msg m;
	uint8_t rid[16], mid[16];

	db = ts_fixture_db(4);
	sqlite3_close(db);
	ck_assert_int_eq(chmod(ts_dbpath, 0600), 0);
	st = ts_open_ok(ts_dbpath, RELM_STORE_F_INTEGRITY, NULL);
	ck_assert_int_eq(ts_exec_int(st, "PRAGMA user_version"), RELM_STORE_SCHEMA_VERSION);
	ck_assert_int_ge(RELM_STORE_SCHEMA_VERSION, 5);

	/* rows intact */
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM messages"), 2);
	memset(rid, 0x22, 16);
	memset(mid, 0x34, 16);
	ck_assert_int_eq(relm_store_msg_get(st, rid, mid, &m), 0);
	ck_assert_int_eq(m.seq, 2);
	ck_assert_int_eq(m.direction_in, 0);
	ck_assert_int_eq(m.origin, RELM_ORIGIN_SELF);
	ck_assert_int_eq(m.status, RELM_STATUS_POSTED);
	ck_assert_uint_eq(m.updated, 1700000000005ULL);
	memset(mid, 0x33, 16);
	ck_assert_int_eq(relm_store_msg_get(st, rid, mid, &m), 0);
	ck_assert_int_eq(m.direction_in, 1);
	ck_assert_int_eq(m.origin, RELM_ORIGIN_REMOTE);
	ck_assert_int_eq(m.status, RELM_STATUS_NONE);

	/* the constraints: bad names refused, every good one accepted */
	ck_assert_int_eq(raw_exec(st, "INSERT INTO messages(rel,id,direction,origin,kind,ts,status,created,updated)"
	                              " VALUES(X'22222222222222222222222222222222',X'50505050505050505050505050505050',"
	                              "'out','self','text',1,'bogus',1,1)"), SQLITE_CONSTRAINT_CHECK);
	ck_assert_int_eq(raw_exec(st, "INSERT INTO messages(rel,id,direction,origin,kind,ts,status,created,updated)"
	                              " VALUES(X'22222222222222222222222222222222',X'50505050505050505050505050505050',"
	                              "'out','bogus','text',1,'queued',1,1)"), SQLITE_CONSTRAINT_CHECK);
	ck_assert_int_eq(raw_exec(st, "UPDATE messages SET status='Posted' WHERE seq=2"), SQLITE_CONSTRAINT_CHECK);
	ck_assert_int_eq(raw_exec(st, "UPDATE messages SET origin='' WHERE seq=2"), SQLITE_CONSTRAINT_CHECK);
	ck_assert_int_eq(raw_exec(st, "UPDATE messages SET status=NULL WHERE seq=2"), SQLITE_CONSTRAINT_NOTNULL);   /* NOT NULL: why = and IN agree */
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM messages"), 2);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM messages WHERE seq=2 AND status='posted' AND origin='self'"), 1);
	for (int i = 0; i < 5; i++)
		for (int j = 0; j < 3; j++) {
			snprintf(sql, sizeof sql, "INSERT INTO messages(rel,id,direction,origin,kind,ts,status,created,updated)"
			         " VALUES(X'22222222222222222222222222222222',randomblob(16),'out','%s','text',1,'%s',1,1)",
			         origin[j], status[i]);
			ck_assert_int_eq(raw_exec(st, sql), SQLITE_OK);
		}
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM messages"), 17);

	/* this connection already codes them without ephemeral tables */
	ck_assert_int_eq(ephemeral_tables(st, ins), 0);
	ck_assert_int_eq(ephemeral_tables(st, upd), 0);

	/* the same text as a fresh store's */
	snprintf(fresh_path, sizeof fresh_path, "%s/state/fresh.db", ts_tmpdir);
	st2 = ts_open_ok(fresh_path, 0, NULL);
	ck_assert_int_eq(ts_exec_int(st2, "PRAGMA user_version"), RELM_STORE_SCHEMA_VERSION);
	migrated = schema_sql(st, "messages");
	fresh = schema_sql(st2, "messages");
	ck_assert_str_eq(migrated, fresh);
	ck_assert_ptr_null(strstr(fresh, "origin IN"));
	ck_assert_ptr_null(strstr(fresh, "status IN"));
	ck_assert_ptr_nonnull(strstr(fresh, "CHECK(status='none' OR status='queued'"));
	ck_assert_int_eq(ephemeral_tables(st2, ins), 0);
	free(migrated);
	free(fresh);
	relm_store_close(st2);
	relm_store_close(st);

	/* and it reopens at the current version with nothing to do */
	st = ts_open_ok(ts_dbpath, RELM_STORE_F_INTEGRITY, NULL);
	ck_assert_int_eq(ts_exec_int(st, "PRAGMA user_version"), RELM_STORE_SCHEMA_VERSION);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM messages"), 17);
	relm_store_close(st);
}
END_TEST

/* A v4 store whose messages table does not carry the v4 constraints is
 * refused by the v4 → v5 step, which leaves it at v4 with its text. */
START_TEST(test_migrate_v4_unexpected)
{
	char err[512];
	sqlite3 *db;
	sqlite3_stmt *s;

	db = ts_fixture_db(4);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA writable_schema=ON;"
	                                  "UPDATE sqlite_schema SET sql=replace(sql,'''sibling'',','') WHERE name='messages';"
	                                  "PRAGMA writable_schema=OFF;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(chmod(ts_dbpath, 0600), 0);
	ck_assert_int_eq(ts_open_err(ts_dbpath, err, sizeof err), RELM_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "v5"));
	ck_assert_int_eq(sqlite3_open(ts_dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT (SELECT user_version FROM pragma_user_version),"
	                                        " (SELECT sql FROM sqlite_schema WHERE name='messages')",
	                                    -1, &s, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(s, 0), 4);
	ck_assert_ptr_nonnull(strstr((const char *)sqlite3_column_text(s, 1), "CHECK(origin IN ('self','remote'))"));
	sqlite3_finalize(s);
	sqlite3_close(db);
}
END_TEST

/* A v3 store migrates to an empty acks table that then works: rows through
 * put (a duplicate ignored), del, list order, a rolled-back step, a
 * rolled-back step inside a batch and a rolled-back batch, effects
 * (ACK_PUT / ACK_DEL, a bad record length refused), and the cascade when
 * the relationship goes. */
START_TEST(test_migrate_v3_acks)
{
	sqlite3 *db;
	struct relm_store *st;
	struct ack_seen a;
	uint8_t rid[16], id[16], dh[32];

	db = ts_fixture_db(3);
	sqlite3_close(db);
	ck_assert_int_eq(chmod(ts_dbpath, 0600), 0);

	st = ts_open_ok(ts_dbpath, RELM_STORE_F_INTEGRITY, NULL);
	ck_assert_int_eq(ts_exec_int(st, "PRAGMA user_version"), RELM_STORE_SCHEMA_VERSION);
	memset(rid, 0x22, 16);
	ck_assert_int_eq(ack_rows(st, rid), 0);
	memset(dh, 0x61, 32);
	ck_assert_int_eq(relm_store_begin(st), 0);
	for (uint32_t k = 0; k < 5; k++) {
		ts_fill(id, 16, (uint8_t)(10 + k));
		ck_assert_int_eq(relm_store_ack_put(st, rid, id, dh, 9 - k), 0);   /* descending */
	}
	ck_assert_int_eq(relm_store_ack_put(st, rid, id, dh, 5), 0);          /* the same row: ignored */
	ck_assert_int_eq(ack_rows(st, rid), 5);                                /* visible inside the step */
	ck_assert_int_eq(relm_store_commit(st), 0);
	memset(&a, 0, sizeof a);
	ck_assert_int_eq(relm_store_ack_list(st, rid, ack_cb, &a), 0);
	ck_assert_int_eq(a.n, 5);
	ck_assert_int_eq(a.ordered, 1);                                        /* key order: (dh, n) */
	ck_assert_uint_eq(a.n_first, 5);
	ck_assert_int_eq(a.id_first[0], 14);

	/* delete, and delete of a missing row */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_ack_del(st, rid, id, dh, 5), 0);
	ck_assert_int_eq(relm_store_ack_del(st, rid, id, dh, 5), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_ack_del(st, rid, id, dh, 6), RELM_ENOTFOUND);   /* (id, n) must both match */
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(ack_rows(st, rid), 4);

	/* rolled back: a step, a step inside a batch, a whole batch */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_ack_put(st, rid, id, dh, 100), 0);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_int_eq(ack_rows(st, rid), 4);
	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_ack_put(st, rid, id, dh, 101), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_ack_put(st, rid, id, dh, 102), 0);
	ck_assert_int_eq(ack_rows(st, rid), 6);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_int_eq(ack_rows(st, rid), 5);
	ck_assert_int_eq(relm_store_batch_rollback(st), 0);
	ck_assert_int_eq(ack_rows(st, rid), 4);

	/* effects: packed records (effects.h) */
	{
		struct relm_effects fxs;
		struct relm_fx *f;
		uint8_t rec[2 * RELM_FX_ACK_LEN];
		relm_effects_init(&fxs);
		for (int k = 0; k < 2; k++) {
			uint8_t *p = rec + k * RELM_FX_ACK_LEN;
			ts_fill(p, 16, (uint8_t)(200 + k));
			memset(p + 16, 0x62, 32);
			p[48] = 0; p[49] = 0; p[50] = 1; p[51] = (uint8_t)k;   /* n = 256 + k */
		}
		f = relm__fx_push(&fxs, RELM_FX_ACK_PUT);
		ck_assert_ptr_nonnull(f);
		ck_assert_ptr_nonnull(f->data = malloc(sizeof rec));
		memcpy(f->data, rec, sizeof rec);
		f->len = sizeof rec;
		ck_assert_int_eq(relm_store_begin(st), 0);
		ck_assert_int_eq(relm_core_apply(st, rid, NULL, &fxs, 1), 0);
		ck_assert_int_eq(relm_store_commit(st), 0);
		ck_assert_int_eq(ack_rows(st, rid), 6);
		ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM acks WHERE n IN (256, 257)"), 2);
		/* ACK_DEL of both, one of them twice: a row already gone is fine */
		fxs.v[0].type = RELM_FX_ACK_DEL;
		f = relm__fx_push(&fxs, RELM_FX_ACK_DEL);
		ck_assert_ptr_nonnull(f);
		ck_assert_ptr_nonnull(f->data = malloc(RELM_FX_ACK_LEN));
		memcpy(f->data, rec, RELM_FX_ACK_LEN);
		f->len = RELM_FX_ACK_LEN;
		ck_assert_int_eq(relm_store_begin(st), 0);
		ck_assert_int_eq(relm_core_apply(st, rid, NULL, &fxs, 1), 0);
		ck_assert_int_eq(relm_store_commit(st), 0);
		ck_assert_int_eq(ack_rows(st, rid), 4);
		/* a length that is not whole records */
		relm_effects_reset(&fxs);
		f = relm__fx_push(&fxs, RELM_FX_ACK_PUT);
		ck_assert_ptr_nonnull(f);
		ck_assert_ptr_nonnull(f->data = malloc(RELM_FX_ACK_LEN));
		memcpy(f->data, rec, RELM_FX_ACK_LEN);
		f->len = RELM_FX_ACK_LEN - 1;
		ck_assert_int_eq(relm_store_begin(st), 0);
		ck_assert_int_eq(relm_core_apply(st, rid, NULL, &fxs, 1), RELM_EINVAL);
		ck_assert_int_eq(relm_store_rollback(st), 0);
		ck_assert_int_eq(ack_rows(st, rid), 4);
		relm_effects_clear(&fxs);
	}

	/* the relationship goes, and its rows with it */
	ck_assert_int_eq(sqlite3_exec(relm__store_db(st), "DELETE FROM relationships", NULL, NULL, NULL),
	                 SQLITE_OK);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM acks"), 0);
	relm_store_close(st);
}
END_TEST

/* v13's replay guard rows name no invite: v14 keeps each for every live
 * invite of its proton made at most a day after the EK was seen (the EK
 * may have come to any of them) and drops the rest, whose invites are
 * gone; the rows then go with their invite. */
START_TEST(test_migrate_v14_guard)
{
	char *errmsg = NULL;
	sqlite3 *db;
	struct relm_store *st;

	db = ts_fixture_db(13);
	/* the fixture: proton 0x11's invite 1 (made 1700000000001), one row
	 * seen 1700000000002.  Added: invite 2 made an hour after that row
	 * (it may have come to 2 as well), invite 3 made a year later (it
	 * cannot have); a row seen before every invite (theirs were deleted),
	 * and one of a proton with no invite left */
	ck_assert_msg(sqlite3_exec(db,
		"INSERT INTO invites SELECT proton, 2, spk_priv, 0, NULL, 1, expires,"
		" X'a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6a6', mailbox_sk, 0, 1700003600000"
		" FROM invites WHERE spk_id=1;"
		"INSERT INTO invites SELECT proton, 3, spk_priv, 0, NULL, 1, expires,"
		" X'a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7', mailbox_sk, 0, 1731536000000"
		" FROM invites WHERE spk_id=1;"
		"INSERT INTO replay_guard VALUES(X'11111111111111111111111111111111',"
		" X'4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a', NULL, 1600000000000);"
		"INSERT INTO replay_guard VALUES(X'99999999999999999999999999999999',"
		" X'4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b', NULL, 1700000000005);",
		NULL, NULL, &errmsg) == SQLITE_OK, "%s", errmsg);
	sqlite3_close(db);
	ck_assert_int_eq(chmod(ts_dbpath, 0600), 0);

	st = ts_open_ok(ts_dbpath, RELM_STORE_F_INTEGRITY, NULL);
	ck_assert_int_eq(ts_exec_int(st, "PRAGMA user_version"), RELM_STORE_SCHEMA_VERSION);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM replay_guard"), 2);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM replay_guard WHERE ek=X'"
	                                 "4949494949494949494949494949494949494949494949494949494949494949'"
	                                 " AND spk_id IN (1, 2) AND rel=X'22222222222222222222222222222222'"
	                                 " AND seen=1700000000002"), 2);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM pragma_foreign_key_check('replay_guard')"), 0);
	/* each goes with its invite */
	ck_assert_int_eq(sqlite3_exec(relm__store_db(st), "DELETE FROM invites WHERE spk_id=1", NULL, NULL, NULL),
	                 SQLITE_OK);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM replay_guard WHERE spk_id=2"), 1);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM replay_guard"), 1);
	relm_store_close(st);
}
END_TEST

/* Rows of outgoing_count that disagree with count(*) of outgoing, counting
 * a missing row as 0 and a row of a relationship with none as 0. */
START_TEST(test_migrate_v2_counts)
{
	char *errmsg = NULL;
	sqlite3 *db;
	struct relm_store *st;
	struct relm_store_outgoing o;
	uint8_t r1[16], r2[16], r3[16];

	db = ts_fixture_db(2);
	/* what a v2 relmd could have written: more rows on 0x22, a second
	 * relationship 0x23 with two, a third 0x24 with none */
	ck_assert_msg(sqlite3_exec(db,
		"INSERT INTO relationships SELECT X'23232323232323232323232323232323', proton, 'carol', remote_ipk, mode,"
		" X'c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2', mailbox_sk, remote_addr, created,"
		" last_activity, 0, 0, state FROM relationships WHERE label='bob';"
		"INSERT INTO relationships SELECT X'24242424242424242424242424242424', proton, 'dave', remote_ipk, mode,"
		" X'd2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2', mailbox_sk, remote_addr, created,"
		" last_activity, 0, 0, state FROM relationships WHERE label='bob';"
		"INSERT INTO outgoing SELECT rel, X'35353535353535353535353535353535', kind, ts, body, tries, next_ms, last_node FROM outgoing;"
		"INSERT INTO outgoing SELECT rel, X'36363636363636363636363636363636', kind, ts, body, tries, next_ms, last_node FROM outgoing WHERE id=X'34343434343434343434343434343434';"
		"INSERT INTO outgoing SELECT rel, X'37373737373737373737373737373737', kind, ts, body, tries, next_ms, last_node FROM outgoing WHERE id=X'34343434343434343434343434343434';"
		"INSERT INTO outgoing SELECT X'23232323232323232323232323232323', id, kind, ts, body, tries, next_ms, last_node FROM outgoing WHERE id IN (X'34343434343434343434343434343434', X'35353535353535353535353535353535');",
		NULL, NULL, &errmsg) == SQLITE_OK, "%s", errmsg);
	sqlite3_close(db);
	ck_assert_int_eq(chmod(ts_dbpath, 0600), 0);

	st = ts_open_ok(ts_dbpath, RELM_STORE_F_INTEGRITY, NULL);
	ck_assert_int_eq(ts_exec_int(st, "PRAGMA user_version"), RELM_STORE_SCHEMA_VERSION);
	memset(r1, 0x22, 16);
	memset(r2, 0x23, 16);
	memset(r3, 0x24, 16);
	ck_assert_uint_eq(ts_out_count(st, r1), 4);
	ck_assert_uint_eq(ts_out_count(st, r2), 2);
	ck_assert_uint_eq(ts_out_count(st, r3), 0);
	ck_assert_int_eq(ts_count_mismatches(st), 0);
	/* and the writers keep it from there (v13: no triggers) */
	memset(&o, 0, sizeof o);
	memcpy(o.rel, r3, 16);
	memset(o.id, 0x38, 16);
	o.body = (const uint8_t *)"b";
	o.body_len = 1;
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	memcpy(o.rel, r1, 16);
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	ck_assert_int_eq(relm_store_outgoing_del(st, r2, (uint8_t[16]){0x34,0x34,0x34,0x34,0x34,0x34,0x34,0x34,0x34,0x34,0x34,0x34,0x34,0x34,0x34,0x34}), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_uint_eq(ts_out_count(st, r1), 5);
	ck_assert_uint_eq(ts_out_count(st, r2), 1);
	ck_assert_uint_eq(ts_out_count(st, r3), 1);
	ck_assert_int_eq(ts_count_mismatches(st), 0);
	relm_store_close(st);
}
END_TEST

/* outgoing_count through put (new), put (same id = update), delete, a
 * rolled-back step, a rolled-back batched step, and relationship / proton
 * deletion (cascades). */
/* ---- v5 → v6: typed events ------------------------------------------------- */

struct v5_row {
	const char *type, *json;
	unsigned has;                /* what the typed row carries */
	const char *line;            /* the line relmd builds from it now */
};

/* Every shape a v5 relmd wrote, and what is not one.  The lines of the
 * served message and relationship events are byte for byte what a v5
 * relmd replayed for the same rows (the store adds the same members);
 * fork.detected and envelope.undecryptable now carry the fields of
 * proto/api.md §6 (v5 had "detail" and, for a refused envelope, lost its
 * "seq" to the event's own). */
static const struct v5_row v5_rows[] = {
	{ "relationship.created", "{\"relationship\":\"22222222222222222222222222222222\"}", RELM_EVF_REL,
	  "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"seq\":1,\"type\":\"relationship.created\",\"ts\":1700000000002,"
	  "\"relationship\":\"22222222222222222222222222222222\",\"proton\":\"11111111111111111111111111111111\","
	  "\"remote_ipk\":\"b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1\",\"label\":\"bob\"}}" },
	{ "message.received", "{\"relationship\":\"22222222222222222222222222222222\",\"message\":\"33333333333333333333333333333333\"}",
	  RELM_EVF_REL | RELM_EVF_MSG,
	  "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"seq\":2,\"type\":\"message.received\",\"ts\":1700000000003,"
	  "\"relationship\":\"22222222222222222222222222222222\",\"message\":\"33333333333333333333333333333333\","
	  "\"body\":\"hi alice\",\"kind\":\"text\",\"sent_ts\":1700000000003,\"origin\":\"remote\"}}" },
	{ "message.status", "{\"relationship\":\"22222222222222222222222222222222\",\"message\":\"34343434343434343434343434343434\",\"status\":\"posted\"}",
	  RELM_EVF_REL | RELM_EVF_MSG | RELM_EVF_STATUS,
	  "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"seq\":3,\"type\":\"message.status\",\"ts\":1700000000100,"
	  "\"relationship\":\"22222222222222222222222222222222\",\"message\":\"34343434343434343434343434343434\",\"status\":\"posted\"}}" },
	{ "message.status", "{\"relationship\":\"22222222222222222222222222222222\",\"message\":\"34343434343434343434343434343434\","
	  "\"status\":\"failed\",\"reason\":\"the mailbox server refused it: \\\"too_big\\\"\\n\"}",
	  RELM_EVF_REL | RELM_EVF_MSG | RELM_EVF_STATUS | RELM_EVF_REASON,
	  "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"seq\":4,\"type\":\"message.status\",\"ts\":1700000000101,"
	  "\"relationship\":\"22222222222222222222222222222222\",\"message\":\"34343434343434343434343434343434\",\"status\":\"failed\","
	  "\"reason\":\"the mailbox server refused it: \\\"too_big\\\"\\n\"}}" },
	{ "fork.detected", "{\"relationship\":\"22222222222222222222222222222222\",\"detail\":\"56565656565656565656565656565656\"}",
	  RELM_EVF_REL | RELM_EVF_NODE,
	  "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"seq\":5,\"type\":\"fork.detected\",\"ts\":1700000000102,"
	  "\"relationship\":\"22222222222222222222222222222222\",\"node\":\"56565656565656565656565656565656\"}}" },
	{ "fork.resolved", "{\"relationship\":\"22222222222222222222222222222222\"}", RELM_EVF_REL,
	  "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"seq\":6,\"type\":\"fork.resolved\",\"ts\":1700000000103,"
	  "\"relationship\":\"22222222222222222222222222222222\"}}" },
	{ "envelope.undecryptable", "{\"relationship\":\"22222222222222222222222222222222\",\"detail\":\"98989898989898989898989898989898\"}",
	  RELM_EVF_REL | RELM_EVF_ENVELOPE,
	  "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"seq\":7,\"type\":\"envelope.undecryptable\",\"ts\":1700000000104,"
	  "\"relationship\":\"22222222222222222222222222222222\",\"envelope\":\"98989898989898989898989898989898\"}}" },
	{ "envelope.undecryptable", "{\"mailbox\":\"a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3\",\"seq\":41,\"reason\":\"auth_failed\"}",
	  RELM_EVF_MAILBOX | RELM_EVF_MBOX_SEQ | RELM_EVF_CODE,
	  "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"seq\":8,\"type\":\"envelope.undecryptable\",\"ts\":1700000000105,"
	  "\"mailbox\":\"a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3\",\"mailbox_seq\":41,\"reason\":\"auth_failed\"}}" },
	/* not what v5 wrote: the fields that can be read, nothing else */
	{ "message.received", "{\"relationship\":\"2222\",\"message\":7}", 0,
	  "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"seq\":9,\"type\":\"message.received\",\"ts\":1700000000106}}" },
	{ "fork.detected", "not json at all", 0,
	  "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":{\"seq\":10,\"type\":\"fork.detected\",\"ts\":1700000000107}}" },
	{ "relationship.renamed", "{\"relationship\":\"22222222222222222222222222222222\"}", 0, NULL },
};

struct v5_seen {
	int n;
	struct relm_store *st;
};

static int v5_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	struct v5_seen *v = ctx;
	const struct v5_row *row = &v5_rows[v->n];
	size_t len = 0;
	char *line;

	ck_assert_int_eq(seq, v->n + 1);
	ck_assert_int_eq(ev->type, row->line ? relm_event_type(row->type) : RELM_EV_NONE);
	ck_assert_msg(ev->has == row->has, "row %d: has 0x%x, want 0x%x", v->n, ev->has, row->has);
	if (row->line) {
		line = relmd_event_json(v->st, seq, ts, ev, &len);
		ck_assert_ptr_nonnull(line);
		ck_assert_uint_eq(len, strlen(line));
		ck_assert_str_eq(line, row->line);
		free(line);
	}
	v->n++;
	return 0;
}

/* A v5 store with every shape of v5 event migrates to typed columns: the
 * fields are read from the JSON, the json column is gone, the table reads
 * as a fresh store's, numbering goes on, and each row's line is what the
 * daemon builds for it (for the served types, what a v5 relmd built). */
START_TEST(test_migrate_v5_events)
{
	char sql[1024], fresh_path[300], *migrated, *fresh;
	struct v5_seen v = { 0, NULL };
	struct relm_store *st, *st2;
	sqlite3 *db;
	int64_t seq;

	db = ts_fixture_db(5);
	ck_assert_int_eq(sqlite3_exec(db, "DELETE FROM events", NULL, NULL, NULL), SQLITE_OK);
	for (size_t i = 0; i < sizeof v5_rows / sizeof v5_rows[0]; i++) {
		char *q = sqlite3_mprintf("INSERT INTO events(seq,type,json,ts) VALUES(%d,%Q,%Q,%lld)", (int)i + 1,
		                          v5_rows[i].type, v5_rows[i].json,
		                          i < 2 ? 1700000000002LL + (long long)i : 1700000000098LL + (long long)i);
		ck_assert_int_eq(sqlite3_exec(db, q, NULL, NULL, NULL), SQLITE_OK);
		sqlite3_free(q);
	}
	sqlite3_close(db);
	ck_assert_int_eq(chmod(ts_dbpath, 0600), 0);
	st = ts_open_ok(ts_dbpath, RELM_STORE_F_INTEGRITY, NULL);
	ck_assert_int_eq(ts_exec_int(st, "PRAGMA user_version"), RELM_STORE_SCHEMA_VERSION);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM pragma_table_info('events') WHERE name='json'"), 0);
	v.st = st;
	ck_assert_int_eq(relm_store_event_list(st, 0, 0, v5_cb, &v), 0);
	ck_assert_int_eq(v.n, (int)(sizeof v5_rows / sizeof v5_rows[0]));
	/* the reason came back unescaped, whole */
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM events WHERE seq=4"
	                                 " AND reason='the mailbox server refused it: \"too_big\"' || char(10)"), 1);
	seq = ts_event_add(st, ts_any_event(), 1);
	ck_assert_int_eq(seq, (int64_t)(sizeof v5_rows / sizeof v5_rows[0]) + 1);

	snprintf(fresh_path, sizeof fresh_path, "%s/state/fresh.db", ts_tmpdir);
	st2 = ts_open_ok(fresh_path, 0, NULL);
	migrated = schema_sql(st, "events");
	fresh = schema_sql(st2, "events");
	ck_assert_str_eq(migrated, fresh);
	ck_assert_ptr_null(strstr(fresh, "json"));
	free(migrated);
	free(fresh);
	/* and the relm_unhex function of the migration is gone again */
	snprintf(sql, sizeof sql, "SELECT relm_unhex('00', 1)");
	ck_assert_int_ne(sqlite3_exec(relm__store_db(st), sql, NULL, NULL, NULL), SQLITE_OK);
	relm_store_close(st2);
	relm_store_close(st);
}
END_TEST

/* A v5 store whose events were all trimmed keeps numbering after the
 * migration: seq is never reused. */
START_TEST(test_migrate_v5_trimmed)
{
	struct relm_store *st;
	sqlite3 *db = ts_fixture_db(5);

	ck_assert_int_eq(sqlite3_exec(db, "DELETE FROM events; UPDATE sqlite_sequence SET seq=41 WHERE name='events'",
	                              NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(chmod(ts_dbpath, 0600), 0);
	st = ts_open_ok(ts_dbpath, RELM_STORE_F_INTEGRITY, NULL);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM events"), 0);
	ck_assert_int_eq(ts_event_add(st, ts_any_event(), 1), 42);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM sqlite_sequence WHERE name<>'outbox'"), 1);
	relm_store_close(st);
}
END_TEST


int main(void)
{
	const struct ts_test tests[] = {
		{ "fixtures", test_fixture_v1, 10 },
		{ "fixtures", test_fixture_v2, 10 },
		{ "fixtures", test_fixture_v3, 10 },
		{ "fixtures", test_fixture_v4, 10 },
		{ "fixtures", test_fixture_v5, 10 },
		{ "fixtures", test_fixture_v6, 10 },
		{ "fixtures", test_fixture_v7, 10 },
		{ "fixtures", test_fixture_v8, 10 },
		{ "fixtures", test_fixture_v9, 10 },
		{ "fixtures", test_fixture_v10, 10 },
		{ "fixtures", test_fixture_v11, 10 },
		{ "fixtures", test_fixture_v12, 10 },
		{ "fixtures", test_fixture_v13, 10 },
		{ "fixtures", test_fixture_v14, 10 },
		{ "migrations", test_migrate_v14_guard, 10 },
		{ "migrations", test_migrate_v2_counts, 10 },
		{ "migrations", test_migrate_v3_acks, 10 },
		{ "migrations", test_migrate_v4_checks, 10 },
		{ "migrations", test_migrate_v4_unexpected, 10 },
		{ "migrations", test_migrate_v5_events, 10 },
		{ "migrations", test_migrate_v5_trimmed, 10 },
	};
	return ts_run("store_migrate", tests, sizeof tests / sizeof tests[0]);
}

/*
 * schema.c — the store's schema and its forward migrations (proto/store.md
 * has the tables with their reasons, and the history below).
 *
 * migrations[v] takes a store at user_version v to v+1 inside one
 * transaction: its SQL, then its C function (either may be NULL).  Version
 * 0 is the empty file.  To add v<N>: append migrations[N-1], bump
 * RELM_STORE_SCHEMA_VERSION, add tests/fixtures/store-v<N>.sql, and keep
 * the older fixtures: the tests open every fixture at the current version.
 * A fresh store runs every step from v1, so schema_v1 stays the v1 text and
 * fresh and migrated stores end with the same schema text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "crypto/crypto.h"
#include "store/store_int.h"

#define exec relm__store_exec
#define store_fail relm__store_fail

static const char schema_v1[] =
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
	"CREATE TABLE protons("
	" id BLOB PRIMARY KEY CHECK(length(id)=16),"
	" label TEXT NOT NULL,"
	" ipk BLOB NOT NULL UNIQUE CHECK(length(ipk)=32),"
	" isk BLOB NOT NULL CHECK(length(isk)=64),"
	" strategy TEXT NOT NULL DEFAULT 'leaderless',"
	" leader BLOB,"
	" created INTEGER NOT NULL);"
	"CREATE TABLE devices("
	" proton BLOB NOT NULL REFERENCES protons(id) ON DELETE CASCADE,"
	" device BLOB NOT NULL CHECK(length(device)=16),"
	" label TEXT NOT NULL DEFAULT '',"
	" self INTEGER NOT NULL DEFAULT 0,"
	" pk BLOB NOT NULL,"
	" sk BLOB,"
	" session BLOB,"
	" epoch INTEGER NOT NULL DEFAULT 0,"
	" added INTEGER NOT NULL,"
	" PRIMARY KEY(proton, device)) WITHOUT ROWID;"
	"CREATE TABLE circles("
	" proton BLOB NOT NULL REFERENCES protons(id) ON DELETE CASCADE,"
	" epoch INTEGER NOT NULL,"
	" signed BLOB NOT NULL,"
	" PRIMARY KEY(proton, epoch)) WITHOUT ROWID;"
	"CREATE TABLE invites("
	" proton BLOB NOT NULL REFERENCES protons(id) ON DELETE CASCADE,"
	" spk_id INTEGER NOT NULL,"
	" spk_priv BLOB NOT NULL CHECK(length(spk_priv)=32),"
	" opk_id INTEGER NOT NULL DEFAULT 0,"
	" opk_priv BLOB,"
	" multi_use INTEGER NOT NULL DEFAULT 0,"
	" expires INTEGER NOT NULL,"
	" mailbox_id BLOB NOT NULL UNIQUE CHECK(length(mailbox_id)=32),"
	" mailbox_sk BLOB NOT NULL CHECK(length(mailbox_sk)=64),"
	" used INTEGER NOT NULL DEFAULT 0,"
	" created INTEGER NOT NULL,"
	" PRIMARY KEY(proton, spk_id));"
	"CREATE TABLE replay_guard("
	" proton BLOB NOT NULL,"
	" ek BLOB NOT NULL CHECK(length(ek)=32),"
	" rel BLOB,"
	" seen INTEGER NOT NULL,"
	" PRIMARY KEY(proton, ek)) WITHOUT ROWID;"
	"CREATE TABLE relationships("
	" id BLOB PRIMARY KEY CHECK(length(id)=16),"
	" proton BLOB NOT NULL REFERENCES protons(id) ON DELETE CASCADE,"
	" label TEXT NOT NULL DEFAULT '',"
	" remote_ipk BLOB NOT NULL CHECK(length(remote_ipk)=32),"
	" mode INTEGER NOT NULL,"
	" mailbox_id BLOB NOT NULL UNIQUE CHECK(length(mailbox_id)=32),"
	" mailbox_sk BLOB NOT NULL CHECK(length(mailbox_sk)=64),"
	" remote_addr TEXT NOT NULL DEFAULT '',"
	" created INTEGER NOT NULL,"
	" last_activity INTEGER NOT NULL,"
	" unread INTEGER NOT NULL DEFAULT 0,"
	" deadline INTEGER NOT NULL DEFAULT 0,"
	" state BLOB NOT NULL);"
	"CREATE INDEX relationships_by_deadline ON relationships(deadline) WHERE deadline>0;"
	"CREATE INDEX relationships_by_proton ON relationships(proton, id);"
	"CREATE INDEX relationships_by_remote ON relationships(proton, remote_ipk);"
	"CREATE TABLE pending("
	" rel BLOB NOT NULL REFERENCES relationships(id) ON DELETE CASCADE,"
	" hash BLOB NOT NULL CHECK(length(hash)=16),"
	" bytes BLOB NOT NULL,"
	" received_ms INTEGER NOT NULL,"
	" PRIMARY KEY(rel, hash));"
	"CREATE TABLE messages("
	" seq INTEGER PRIMARY KEY,"
	" rel BLOB NOT NULL REFERENCES relationships(id) ON DELETE CASCADE,"
	" id BLOB NOT NULL CHECK(length(id)=16),"
	" direction TEXT NOT NULL CHECK(direction IN ('in','out')),"
	" origin TEXT NOT NULL CHECK(origin IN ('self','sibling','remote')),"
	" kind TEXT NOT NULL,"
	" body BLOB,"
	" ts INTEGER NOT NULL,"
	" status TEXT NOT NULL CHECK(status IN ('none','queued','posted','delivered','failed')),"
	" reason TEXT,"
	" created INTEGER NOT NULL,"
	" updated INTEGER NOT NULL,"
	" UNIQUE(rel, id));"
	"CREATE INDEX messages_by_rel ON messages(rel, seq);"
	"CREATE TABLE outbox("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" rel BLOB REFERENCES relationships(id) ON DELETE CASCADE,"
	" dest TEXT NOT NULL,"
	" bytes BLOB NOT NULL,"
	" msg_id BLOB,"
	" state TEXT NOT NULL CHECK(state IN ('queued','posted')),"
	" created INTEGER NOT NULL,"
	" posted INTEGER);"
	"CREATE INDEX outbox_queued ON outbox(seq) WHERE state='queued';"
	"CREATE INDEX outbox_by_rel ON outbox(rel);"
	"CREATE TABLE cursors("
	" mailbox BLOB PRIMARY KEY CHECK(length(mailbox)=32),"
	" cursor INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE events("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" type TEXT NOT NULL,"
	" json TEXT NOT NULL,"
	" ts INTEGER NOT NULL);";

/* v2: the retransmission queue (messages sent and not yet receipted) gets
 * a table of its own instead of living in the relationship's state blob,
 * which every engine step rewrites: with it inside, a busy relationship
 * rewrote every unacknowledged message on every step (O(outstanding)). */
static const char schema_v2[] =
	"CREATE TABLE outgoing("
	" rel BLOB NOT NULL REFERENCES relationships(id) ON DELETE CASCADE,"
	" id BLOB NOT NULL CHECK(length(id)=16),"
	" kind INTEGER NOT NULL,"
	" ts INTEGER NOT NULL,"
	" body BLOB NOT NULL,"
	" tries INTEGER NOT NULL,"
	" next_ms INTEGER NOT NULL,"
	" last_node BLOB NOT NULL CHECK(length(last_node)=16),"
	" PRIMARY KEY(rel, id)) WITHOUT ROWID;"
	"CREATE INDEX outgoing_by_next ON outgoing(rel, next_ms);";

/* v3: how many rows each relationship has in outgoing, kept exact by
 * triggers, so that message.send checks RELM_MAX_OUTGOING with one probe
 * instead of count(*) over up to 4,096 rows.  Rows stay at n = 0 rather
 * than come and go with every receipt; a relationship's row goes with it
 * (ON DELETE CASCADE; the outgoing rows' own cascade then decrements
 * nothing, or a row about to go — either order ends without the row).
 * outgoing is written with an UPSERT, never INSERT OR REPLACE, whose
 * implicit delete would fire no delete trigger. */
static const char schema_v3[] =
	"CREATE TABLE outgoing_count("
	" rel BLOB PRIMARY KEY REFERENCES relationships(id) ON DELETE CASCADE,"
	" n INTEGER NOT NULL) WITHOUT ROWID;"
	"INSERT INTO outgoing_count(rel, n) SELECT rel, count(*) FROM outgoing GROUP BY rel;"
	"CREATE TRIGGER outgoing_count_ins AFTER INSERT ON outgoing BEGIN"
	" INSERT INTO outgoing_count(rel, n) VALUES(new.rel, 1)"
	"  ON CONFLICT(rel) DO UPDATE SET n=n+1;"
	" END;"
	"CREATE TRIGGER outgoing_count_del AFTER DELETE ON outgoing BEGIN"
	" UPDATE outgoing_count SET n=n-1 WHERE rel=old.rel;"
	" END;";

/* v4: the acknowledgements a relationship owes the remote, waiting for the
 * receipt timer (0.2–2 s), leave the state blob too: at a few thousand
 * messages a second that was up to 4,096 × 52 bytes decoded, re-encoded and
 * rewritten at every step (a third of a receiving daemon's CPU).  The key
 * is the whole row: INSERT OR IGNORE is the de-duplication, and (dh, n)
 * after rel keeps one chain's inserts at the end of their range.  Blobs of
 * v3 and before still carry theirs; lib/core/core.c moves them here at the
 * relationship's next step. */
static const char schema_v4[] =
	"CREATE TABLE acks("
	" rel BLOB NOT NULL REFERENCES relationships(id) ON DELETE CASCADE,"
	" dh BLOB NOT NULL CHECK(length(dh)=32),"
	" n INTEGER NOT NULL,"
	" id BLOB NOT NULL CHECK(length(id)=16),"
	" PRIMARY KEY(rel, dh, n, id)) WITHOUT ROWID;";

/* v5: messages' CHECK(origin IN (3 names)) and CHECK(status IN (5 names))
 * become chains of `=` joined by OR.  SQLite codes a constant IN list of
 * more than two values with an ephemeral table that it builds afresh at
 * every execution of the statement: two for each history insert and one
 * for each status update, about a fifth of a sending relmd's instructions
 * per message (bench_daemon under callgrind).  The constraints are the
 * same (both columns are NOT NULL), and a CHECK constraint is not part of
 * the file format, so the migration edits the table's text in sqlite_schema in place, SQLite's
 * documented procedure for schema changes that leave the stored content
 * alone (writable_schema; lang_altertable.html, "making other kinds of
 * table schema changes") instead of copying the table.  `direction` and
 * outbox `state` list two values, which SQLite already codes as two
 * comparisons. */
static const char v5_origin_old[] = "CHECK(origin IN ('self','sibling','remote'))";
static const char v5_origin_new[] = "CHECK(origin='self' OR origin='sibling' OR origin='remote')";
static const char v5_status_old[] = "CHECK(status IN ('none','queued','posted','delivered','failed'))";
static const char v5_status_new[] = "CHECK(status='none' OR status='queued' OR status='posted'"
                                    " OR status='delivered' OR status='failed')";
static int migrate_v5(struct relm_store *st);

/* v6: events become typed records.  v5 kept each event as JSON text built
 * inside the library (with an escaper of its own) that the daemon parsed
 * again; now the columns hold the fields of struct relm_event (engine/
 * event.h) and only the daemon writes JSON.  The table is rebuilt rather
 * than altered column by column: each ALTER TABLE reloads the schema, and
 * fifteen of them tripled the cost of creating a store.  migrate_v6 reads
 * every v5 row's JSON into the new columns (a field v5 did not record
 * stays NULL, and the daemon then leaves it out of the line), keeps the
 * AUTOINCREMENT counter, and renames the new table.  No CHECKs on the
 * columns: the store checks each record's shape before it inserts
 * (relm_event_check), and a CHECK would cost every insert. */
static const char schema_v6[] =
	"CREATE TABLE events_v6("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" type TEXT NOT NULL,"
	" ts INTEGER NOT NULL,"
	" rel BLOB, msg BLOB, node BLOB, proton BLOB, device BLOB, ipk BLOB, mailbox BLOB,"
	" mailbox_seq INTEGER, envelope BLOB, epoch INTEGER, pruned INTEGER,"
	" status TEXT, code TEXT, reason TEXT);";
static int migrate_v6(struct relm_store *st);

/* v7: store.corrupt_row events name a table and a row (engine/event.h's
 * table and row fields).  Two columns added at the end: the rows already
 * there have neither. */
static const char schema_v7[] =
	"ALTER TABLE events ADD COLUMN tbl TEXT;"
	"ALTER TABLE events ADD COLUMN row INTEGER;";

/* v8: this device's keys behind its device invite (proto/devices.md §3):
 * the device prekey and the device mailbox, one row per proton.  A table
 * of its own rather than columns of devices, whose rows are also the
 * siblings'.  A proton of v6 gets its row (and its first circle) from
 * lib/core when it first needs them: a migration draws no randomness. */
static const char schema_v8[] =
	"CREATE TABLE device_keys("
	" proton BLOB PRIMARY KEY REFERENCES protons(id) ON DELETE CASCADE,"
	" spk_id INTEGER NOT NULL,"
	" spk_priv BLOB NOT NULL CHECK(length(spk_priv)=32),"
	" mailbox_id BLOB NOT NULL UNIQUE CHECK(length(mailbox_id)=32),"
	" mailbox_sk BLOB NOT NULL CHECK(length(mailbox_sk)=64)) WITHOUT ROWID;";

/* v9: sibling sessions (proto/devices.md §3) are relationships of the
 * ratchet — rows of relationships, so that loading, saving, mailboxes and
 * the outbox are the same code — that are not the proton's: this table
 * names them, with the sibling each is with, and relationship lists leave
 * them out. */
static const char schema_v9[] =
	"CREATE TABLE sibling_sessions("
	" rel BLOB PRIMARY KEY REFERENCES relationships(id) ON DELETE CASCADE,"
	" proton BLOB NOT NULL REFERENCES protons(id) ON DELETE CASCADE,"
	" device BLOB NOT NULL CHECK(length(device)=16)) WITHOUT ROWID;"
	"CREATE INDEX sibling_sessions_by_device ON sibling_sessions(proton, device, rel);";

/* v10: pairings in progress (proto/devices.md §12.8), with the pairing
 * mailbox this side reads (derived from S) and its secret key, which
 * signs the subscription like every mailbox's. */
static const char schema_v10[] =
	"CREATE TABLE pairings("
	" id BLOB PRIMARY KEY CHECK(length(id)=16),"
	" role TEXT NOT NULL CHECK(role='e' OR role='j'),"
	" state TEXT NOT NULL,"
	" secret BLOB NOT NULL CHECK(length(secret)=32),"
	" eph BLOB CHECK(eph IS NULL OR length(eph)=32),"
	" expires INTEGER NOT NULL,"
	" proton BLOB CHECK(proton IS NULL OR length(proton)=16),"
	" host TEXT NOT NULL,"
	" mailbox BLOB NOT NULL UNIQUE CHECK(length(mailbox)=32),"
	" mailbox_sk BLOB NOT NULL CHECK(length(mailbox_sk)=64),"
	" join_hash BLOB CHECK(join_hash IS NULL OR length(join_hash)=32),"
	" message BLOB,"
	" keys BLOB,"
	" label TEXT NOT NULL DEFAULT '',"
	" created INTEGER NOT NULL) WITHOUT ROWID;";

/* v11: the proton's strategy as adopted (proto/devices.md §11.1: the
 * `(seq, by)` of the strategy message it came from; `leader` already
 * holds the pinned leader or the hub), and the pending requests of a
 * device that does not send (§11.5): the request message itself, the
 * device it was last sent to and when it goes again; and the relationships
 * a fanout non-hub holds without state (§11.4: its state blob is empty,
 * its mailbox not read), with the hub it wiped it under. */
static const char schema_v11[] =
	"ALTER TABLE protons ADD COLUMN strategy_seq INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE protons ADD COLUMN strategy_by BLOB;"
	"CREATE TABLE requests("
	" rel BLOB NOT NULL REFERENCES relationships(id) ON DELETE CASCADE,"
	" id BLOB NOT NULL CHECK(length(id)=16),"
	" data BLOB NOT NULL,"
	" dev BLOB NOT NULL CHECK(length(dev)=16),"
	" next_ms INTEGER NOT NULL,"
	" PRIMARY KEY(rel, id)) WITHOUT ROWID;"
	"CREATE TABLE stateless("
	" rel BLOB PRIMARY KEY REFERENCES relationships(id) ON DELETE CASCADE,"
	" src BLOB NOT NULL CHECK(length(src)=16)) WITHOUT ROWID;";

/* v12: the relationship row stops repeating its state blob's secret and
 * address (issue 19: under 1 KB of store per idle relationship).  The
 * blob holds the mailbox's secret key (mbox_sk) and the remote's mailbox
 * address (remote_mailbox); lib/core signs a relationship's subscriptions
 * and posts to its address from the decoded blob, which every step has
 * anyway.  Without the 64-byte key and the ~90-byte address an idle row
 * (a ~850-byte blob) fits four to a 4 KB page instead of three.
 * mailbox_id and remote_ipk stay: they are looked up (by their indexes) and
 * listed without decoding any blob.  relationships_by_remote keys on the
 * first 8 bytes of remote_ipk only (an index on an expression): ~17 bytes
 * an entry instead of ~66 with (proton, remote_ipk); the query compares the
 * whole key and the proton on the row it finds (a shared prefix is met
 * there, not missed).  DROP COLUMN rewrites every row in
 * place (secure_delete zeroes what the rows no longer hold; the WAL keeps
 * the old pages until a checkpoint, as for every overwritten secret); the
 * freed space of an existing store's pages is reused as rows are
 * rewritten, or at once by VACUUM. */
static const char schema_v12[] =
	"ALTER TABLE relationships DROP COLUMN mailbox_sk;"
	"ALTER TABLE relationships DROP COLUMN remote_addr;"
	"DROP INDEX relationships_by_remote;"
	"CREATE INDEX relationships_by_remote ON relationships(substr(remote_ipk,1,8));";

/* v13: outgoing_count is no longer kept by a trigger per row inserted or
 * deleted (about 15,000 instructions each; a device keeps a row for each
 * message its siblings send, so two per message): lib/store's writers of
 * outgoing stage the difference they make (stage.c) and write it once
 * per relationship and transaction, before COMMIT, with the relationship's
 * other staged columns.  The counts already there stay exact. */
static const char schema_v13[] =
	"DROP TRIGGER outgoing_count_ins;"
	"DROP TRIGGER outgoing_count_del;";

/* v14: the replay guard's rows live as long as the invite they guard
 * (issue 19: a row per relationship ever made, kept for good, was 89 of the
 * 1,828 bytes an idle relationship cost).  An initial envelope for an
 * invite that expired or is gone is refused before the guard is asked
 * (proto/ratchet.md §8.3 steps 1 and 3), and an EK replayed on another
 * invite of the proton fails there too (its spk_id is not that invite's,
 * or the AEAD, which covers spk_id), so a row is keyed by its invite and
 * goes with it (ON DELETE CASCADE, the primary key's prefix being the
 * child index).  v13's rows do not say their invite: each is kept for
 * every live invite of its proton that existed when the EK was seen (made
 * at most a day after it: both times are this device's clock, and the day
 * covers that clock having been set back), the others —
 * for invites already deleted — are dropped. */
static const char schema_v14[] =
	"CREATE TABLE replay_guard_v14("
	" proton BLOB NOT NULL,"
	" spk_id INTEGER NOT NULL,"
	" ek BLOB NOT NULL CHECK(length(ek)=32),"
	" rel BLOB,"
	" seen INTEGER NOT NULL,"
	" PRIMARY KEY(proton, spk_id, ek),"
	" FOREIGN KEY(proton, spk_id) REFERENCES invites(proton, spk_id) ON DELETE CASCADE) WITHOUT ROWID;"
	"INSERT INTO replay_guard_v14(proton,spk_id,ek,rel,seen)"
	" SELECT g.proton, i.spk_id, g.ek, g.rel, g.seen FROM replay_guard g"
	" JOIN invites i ON i.proton=g.proton AND i.created<=g.seen+86400000;"
	"DROP TABLE replay_guard;"
	"ALTER TABLE replay_guard_v14 RENAME TO replay_guard;";

/* Each step is SQL, C, or both (the SQL first). */
static const struct migration {
	const char *sql;
	int (*fn)(struct relm_store *st);
} migrations[RELM_STORE_SCHEMA_VERSION] = {
	{ schema_v1, NULL },      /* 0 → 1 */
	{ schema_v2, NULL },      /* 1 → 2 */
	{ schema_v3, NULL },      /* 2 → 3 */
	{ schema_v4, NULL },      /* 3 → 4 */
	{ NULL, migrate_v5 },     /* 4 → 5 */
	{ schema_v6, migrate_v6 },    /* 5 → 6 */
	{ schema_v7, NULL },      /* 6 → 7 */
	{ schema_v8, NULL },      /* 7 → 8 */
	{ schema_v9, NULL },      /* 8 → 9 */
	{ schema_v10, NULL },     /* 9 → 10 */
	{ schema_v11, NULL },     /* 10 → 11 */
	{ schema_v12, NULL },     /* 11 → 12 */
	{ schema_v13, NULL },     /* 12 → 13 */
	{ schema_v14, NULL },     /* 13 → 14 */
};

/* 4 → 5, inside migrate()'s transaction (see v5_origin_old above).  The
 * UPDATE matches only a messages table holding both old constraints, so
 * anything else is refused rather than half rewritten; schema_version is
 * bumped so that every other connection reparses the schema, and
 * writable_schema=RESET makes this one reparse it too (it set the new
 * cookie itself, so it would not notice).  integrity_check(messages) then
 * parses the new text and checks every row against it: a failure rolls
 * the whole migration back. */
static int migrate_v5(struct relm_store *st)
{
	sqlite3_stmt *s = NULL;
	int rc, err, ver = 0, changed = 0, ok = 0, defensive = 0;

	/* a SQLite built with defensive mode on by default refuses writes to
	 * sqlite_schema: off for this step, as it was afterwards */
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, -1, &defensive);
	if (defensive)
		sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 0, NULL);
	err = exec(st, "PRAGMA writable_schema=ON", "migrate v5: writable_schema");
	if (err)
		goto out;
	rc = sqlite3_prepare_v2(st->db,
	                        "UPDATE sqlite_schema SET sql=replace(replace(sql,?1,?2),?3,?4)"
	                        " WHERE type='table' AND name='messages' AND instr(sql,?1)>0 AND instr(sql,?3)>0",
	                        -1, &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(s, 1, v5_origin_old, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, v5_origin_new, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, v5_status_old, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 4, v5_status_new, -1, SQLITE_STATIC);
		rc = sqlite3_step(s);
		changed = sqlite3_changes(st->db);
	}
	sqlite3_finalize(s);
	s = NULL;
	if (rc != SQLITE_DONE) {
		err = store_fail(st, rc, "migrate v5: rewrite");
		goto out;
	}
	if (changed != 1) {
		snprintf(st->msg, sizeof st->msg, "migrate v5: the messages table is not the one of schema v4");
		err = RELM_ECORRUPT;
		goto out;
	}
	rc = sqlite3_prepare_v2(st->db, "PRAGMA schema_version", -1, &s, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW)
		ver = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	s = NULL;
	if (rc != SQLITE_ROW) {
		err = store_fail(st, rc, "migrate v5: schema_version");
		goto out;
	}
	{
		char sql[64];
		snprintf(sql, sizeof sql, "PRAGMA schema_version=%d", ver + 1);
		if ((err = exec(st, sql, "migrate v5: schema_version")) != 0)
			goto out;
	}
	if ((err = exec(st, "PRAGMA writable_schema=RESET", "migrate v5: reset")) != 0)
		goto out;
	rc = sqlite3_prepare_v2(st->db, "PRAGMA integrity_check(messages)", -1, &s, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW)
		ok = sqlite3_column_text(s, 0) && strcmp((const char *)sqlite3_column_text(s, 0), "ok") == 0;
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW) {
		err = store_fail(st, rc, "migrate v5: integrity_check");
		goto out;
	}
	if (!ok) {
		snprintf(st->msg, sizeof st->msg, "migrate v5: integrity_check of messages failed");
		err = RELM_ECORRUPT;
	}
out:
	/* leave the connection with writable_schema off whatever happened */
	sqlite3_exec(st->db, "PRAGMA writable_schema=OFF", NULL, NULL, NULL);
	if (defensive)
		sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	return err;
}

/* ---- 5 → 6 ---------------------------------------------------------------- */

/* relm_unhex(text, n): the n bytes a hex text of 2n digits stands for, or
 * NULL for anything else.  Registered on the connection for the v6
 * migration only (SQLite 3.40 has no unhex()). */
static void sql_unhex(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	uint8_t b[RELM_SIGN_PK_LEN];
	const unsigned char *t = sqlite3_value_text(argv[0]);
	int n = sqlite3_value_int(argv[1]);

	(void)argc;
	if (sqlite3_value_type(argv[0]) != SQLITE_TEXT || !t || n <= 0 || n > (int)sizeof b ||
	    sqlite3_value_bytes(argv[0]) != 2 * n ||
	    relm_unhex(b, (size_t)n, (const char *)t, 2 * (size_t)n) != 0)
		return;                          /* NULL */
	sqlite3_result_blob(ctx, b, n, SQLITE_TRANSIENT);
}

/* What each v5 row's JSON said, by the shapes v5 wrote:
 *   message.received / .sent  {"relationship","message"}
 *   message.status            {"relationship","message","status"[,"reason"]}
 *   relationship.created      {"relationship"}
 *   fork.detected             {"relationship","detail": the fork node}
 *   fork.resolved             {"relationship"} (how many were pruned: not recorded)
 *   envelope.undecryptable    {"relationship","detail": the envelope's hash} (engine) or
 *                             {"mailbox","seq","reason"} (a refused envelope)
 * A value that is not what its shape says (not hex of the right length) is
 * left NULL, and a status or reason code that is not one of ours is
 * skipped by the reader (events.c): the row stays an event of its type
 * with the fields that could be read. */
static const char v6_convert[] =
	"INSERT INTO events_v6(seq,type,ts,rel,msg,status,reason,node,envelope,mailbox,mailbox_seq,code)"
	" SELECT seq, type, ts,"
	" relm_unhex(json_extract(j,'$.relationship'),16),"
	" CASE WHEN type GLOB 'message.*' THEN relm_unhex(json_extract(j,'$.message'),16) END,"
	" CASE WHEN type='message.status' THEN json_extract(j,'$.status') END,"
	" CASE WHEN type='message.status' AND json_type(j,'$.reason')='text'"
	"  THEN substr(json_extract(j,'$.reason'),1,159) END,"
	" CASE WHEN type='fork.detected' THEN relm_unhex(json_extract(j,'$.detail'),16) END,"
	" CASE WHEN type='envelope.undecryptable' THEN relm_unhex(json_extract(j,'$.detail'),16) END,"
	" CASE WHEN type='envelope.undecryptable' THEN relm_unhex(json_extract(j,'$.mailbox'),32) END,"
	" CASE WHEN type='envelope.undecryptable' AND json_type(j,'$.seq')='integer'"
	"  AND json_extract(j,'$.seq')>=0 THEN json_extract(j,'$.seq') END,"
	" CASE WHEN type='envelope.undecryptable' AND json_type(j,'$.reason')='text'"
	"  THEN json_extract(j,'$.reason') END"
	" FROM (SELECT seq, type, ts, iif(json_valid(json), json, '{}') AS j FROM events);"
	/* the counter goes with the rows: seq is never reused, even when every
	 * event was trimmed; DROP TABLE deletes the row of the name it drops,
	 * RENAME renames it */
	"DELETE FROM sqlite_sequence WHERE name='events_v6';"
	"UPDATE sqlite_sequence SET name='events_v6' WHERE name='events';"
	"DROP TABLE events;"
	"ALTER TABLE events_v6 RENAME TO events";

static int migrate_v6(struct relm_store *st)
{
	int rc, err;

	rc = sqlite3_create_function_v2(st->db, "relm_unhex", 2,
	                                SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY,
	                                NULL, sql_unhex, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return store_fail(st, rc, "migrate v6: relm_unhex");
	err = exec(st, v6_convert, "migrate v6");
	sqlite3_create_function_v2(st->db, "relm_unhex", 2, SQLITE_UTF8, NULL, NULL, NULL, NULL, NULL);
	return err;
}

int relm__store_migrate(struct relm_store *st)
{
	int v = 0, rc, err;

	for (;;) {
		err = exec(st, "BEGIN IMMEDIATE", "migrate: begin");
		if (err)
			return err;
		if (relm__store_user_version(st->db, &v, &rc) != 0) {
			err = store_fail(st, rc, "migrate: user_version");
			goto fail;
		}
		if (v > RELM_STORE_SCHEMA_VERSION) {
			snprintf(st->msg, sizeof st->msg, "schema version %d is newer than this relm", v);
			err = RELM_ESTORE_NEWER;
			goto fail;
		}
		if (v == RELM_STORE_SCHEMA_VERSION)
			break;
		if (v == 0) {
			/* Version 0 must be an empty file, not someone else's database. */
			sqlite3_stmt *s = NULL;
			int n = -1;
			rc = sqlite3_prepare_v2(st->db, "SELECT count(*) FROM sqlite_schema", -1, &s, NULL);
			if (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
				n = sqlite3_column_int(s, 0);
			sqlite3_finalize(s);
			if (n != 0) {
				snprintf(st->msg, sizeof st->msg, "not a relm store (user_version 0 with tables)");
				err = RELM_ECORRUPT;
				goto fail;
			}
		}
		if (migrations[v].sql && (err = exec(st, migrations[v].sql, "migrate")) != 0)
			goto fail;
		if (migrations[v].fn && (err = migrations[v].fn(st)) != 0)
			goto fail;
		{
			char sql[64];
			snprintf(sql, sizeof sql, "PRAGMA user_version=%d", v + 1);
			err = exec(st, sql, "migrate: user_version");
			if (err)
				goto fail;
		}
		err = exec(st, "COMMIT", "migrate: commit");
		if (err)
			goto fail;
	}
	return exec(st, "COMMIT", "migrate: end");
fail:
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return err;
}


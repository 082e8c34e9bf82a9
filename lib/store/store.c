/*
 * store.c — relmd's SQLite store (see store.h for the contract, the state
 * machine and the schema; proto/store.md for the reasons).
 *
 * Shape: one handle owns one connection and a cache of prepared statements
 * (one slot per entry of the `sql` table below, prepared on first use with
 * SQLITE_PREPARE_PERSISTENT).  Every public function checks the sticky
 * error first; every write asserts the STEP state; every SQLite failure
 * goes through store_fail(), the one place that decides whether it is
 * sticky.  Parameters are bound SQLITE_STATIC and cleared before the
 * function returns, so no copy of a secret is made by SQLite's binding.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>
#include <sodium.h>
#include "error.h"
#include "crypto/crypto.h"
#include "store/store.h"
#include "wire/payload.h"

/* ---- state machine ------------------------------------------------------ */

enum store_state {
	STORE_NONE = 0,     /* not open (never seen by callers) */
	STORE_IDLE,
	STORE_BATCH,
	STORE_STEP,
	STORE_ERROR,
};

/* ---- statements --------------------------------------------------------- */

#define STMTS(X) \
	/* a batch's steps: prepared once like the rest (sqlite3_exec parsed
	 * them again at every step, twice per message on a sending relmd) */ \
	X(STEP_BEGIN, "SAVEPOINT step") \
	X(STEP_RELEASE, "RELEASE step") \
	X(STEP_UNDO, "ROLLBACK TO step") \
	/* an UPSERT, not INSERT OR REPLACE: REPLACE's implicit delete fires no
	 * delete trigger (recursive_triggers is off), so outgoing_count would drift */ \
	X(OUT_PUT, "INSERT INTO outgoing(rel,id,kind,ts,body,tries,next_ms,last_node) VALUES(?1,?2,?3,?4,?5,?6,?7,?8) ON CONFLICT(rel,id) DO UPDATE SET kind=excluded.kind, ts=excluded.ts, body=excluded.body, tries=excluded.tries, next_ms=excluded.next_ms, last_node=excluded.last_node") \
	X(OUT_DEL, "DELETE FROM outgoing WHERE rel=?1 AND id=?2") \
	X(OUT_DUE, "SELECT id,kind,ts,body,tries,next_ms,last_node FROM outgoing WHERE rel=?1 AND next_ms<=?2 ORDER BY next_ms LIMIT ?3") \
	X(OUT_NEXT, "SELECT min(next_ms) FROM outgoing WHERE rel=?1") \
	X(OUT_COUNT, "SELECT n FROM outgoing_count WHERE rel=?1") \
	X(ACK_PUT, "INSERT OR IGNORE INTO acks(rel,dh,n,id) VALUES(?1,?2,?3,?4)") \
	X(ACK_DEL, "DELETE FROM acks WHERE rel=?1 AND dh=?2 AND n=?3 AND id=?4") \
	X(ACK_LIST, "SELECT dh,n,id FROM acks WHERE rel=?1 ORDER BY dh,n,id") \
	X(PROTON_PUT, "INSERT INTO protons(id,label,ipk,isk,strategy,created) VALUES(?1,?2,?3,?4,?5,?6)") \
	X(PROTON_GET, "SELECT id,label,ipk,strategy,created,isk FROM protons WHERE id=?1") \
	X(PROTON_LIST, "SELECT id,label,ipk,strategy,created FROM protons ORDER BY id") \
	X(PROTON_STRATEGY, "UPDATE protons SET strategy=?2 WHERE id=?1") \
	X(DEVICE_PUT, "INSERT OR REPLACE INTO devices(proton,device,label,self,pk,sk,epoch,added) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)") \
	X(DEVICE_LIST, "SELECT proton,device,label,self,pk,epoch,added FROM devices WHERE proton=?1 ORDER BY device") \
	X(DEVICE_SELF, "SELECT proton,device,label,self,pk,epoch,added,sk FROM devices WHERE proton=?1 AND self=1") \
	X(INVITE_PUT, "INSERT INTO invites(proton,spk_id,spk_priv,opk_id,opk_priv,multi_use,expires,mailbox_id,mailbox_sk,used,created) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,0,?10)") \
	X(INVITE_GET, "SELECT proton,spk_id,opk_id,multi_use,expires,mailbox_id,used,created,spk_priv,opk_priv,mailbox_sk FROM invites WHERE proton=?1 AND spk_id=?2") \
	X(INVITE_BY_MBOX, "SELECT proton,spk_id FROM invites WHERE mailbox_id=?1") \
	X(INVITE_USED, "UPDATE invites SET used=used+1, opk_priv=NULL WHERE proton=?1 AND spk_id=?2") \
	X(INVITE_EXPIRE, "DELETE FROM invites WHERE expires<?1") \
	X(REPLAY_INS, "INSERT OR IGNORE INTO replay_guard(proton,ek,rel,seen) VALUES(?1,?2,?3,?4)") \
	X(REL_PUT, "INSERT INTO relationships(id,proton,label,remote_ipk,mode,mailbox_id,mailbox_sk,remote_addr,created,last_activity,unread,state) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)") \
	X(REL_GET, "SELECT id,proton,label,remote_ipk,mode,mailbox_id,remote_addr,created,last_activity,unread FROM relationships WHERE id=?1") \
	X(REL_GET_SECRET, "SELECT mailbox_sk FROM relationships WHERE id=?1") \
	X(REL_GET_STATE, "SELECT state FROM relationships WHERE id=?1") \
	X(REL_BY_MBOX, "SELECT id FROM relationships WHERE mailbox_id=?1") \
	X(REL_LIST, "SELECT id,proton,label,remote_ipk,mode,mailbox_id,remote_addr,created,last_activity,unread FROM relationships WHERE proton=?1 AND id>?2 ORDER BY proton,id LIMIT ?3") \
	X(REL_EXISTS, "SELECT 1 FROM relationships WHERE id=?1") \
	/* the write-back of staged columns (see "staging" below): one UPDATE per
	 * relationship per transaction; ?4..?6 NULL = keep the column */ \
	X(REL_FLUSH_STATE, "UPDATE relationships SET state=?2, last_activity=?3, deadline=coalesce(?4,deadline), remote_addr=coalesce(?5,remote_addr), unread=coalesce(?6,unread)+?7 WHERE id=?1") \
	X(REL_FLUSH, "UPDATE relationships SET deadline=coalesce(?4,deadline), remote_addr=coalesce(?5,remote_addr), unread=coalesce(?6,unread)+?7 WHERE id=?1") \
	X(REL_DUE, "SELECT id,deadline FROM relationships WHERE deadline>0 AND deadline<=?1 ORDER BY deadline LIMIT ?2") \
	X(REL_NEXT_DEADLINE, "SELECT min(deadline) FROM relationships WHERE deadline>0") \
	X(REL_DEADLINES, "SELECT id,deadline FROM relationships WHERE deadline>0 ORDER BY deadline") \
	X(MBOX_LIST, "SELECT r.mailbox_id, coalesce(c.cursor,0) FROM relationships r LEFT JOIN cursors c ON c.mailbox=r.mailbox_id UNION ALL SELECT i.mailbox_id, coalesce(c.cursor,0) FROM invites i LEFT JOIN cursors c ON c.mailbox=i.mailbox_id WHERE i.expires>=?1") \
	X(MBOX_SECRET, "SELECT mailbox_sk FROM relationships WHERE mailbox_id=?1 UNION ALL SELECT mailbox_sk FROM invites WHERE mailbox_id=?1 LIMIT 1") \
	X(PENDING_ADD, "INSERT OR IGNORE INTO pending(rel,hash,bytes,received_ms) VALUES(?1,?2,?3,?4)") \
	X(PENDING_DEL, "DELETE FROM pending WHERE rel=?1 AND hash=?2") \
	X(PENDING_LIST, "SELECT hash,bytes,received_ms FROM pending WHERE rel=?1 ORDER BY received_ms,hash") \
	X(MSG_INS, "INSERT OR IGNORE INTO messages(rel,id,direction,origin,kind,body,ts,status,reason,created,updated) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?10)") \
	X(MSG_LIST, "SELECT seq,rel,id,direction,origin,kind,body,ts,status,reason,created,updated FROM messages WHERE rel=?1 AND seq<?2 ORDER BY seq DESC LIMIT ?3") \
	X(MSG_GET, "SELECT seq,rel,id,direction,origin,kind,NULL,ts,status,reason,created,updated FROM messages WHERE rel=?1 AND id=?2") \
	X(MSG_GET_BODY, "SELECT seq,rel,id,direction,origin,kind,body,ts,status,reason,created,updated FROM messages WHERE rel=?1 AND id=?2") \
	X(MSG_STATUS, "UPDATE messages SET status=?3, reason=?4, updated=?5 WHERE rel=?1 AND id=?2") \
	X(MSG_HAS, "SELECT 1 FROM messages WHERE rel=?1 AND id=?2") \
	/* a STATUS effect: the forward-only rule of apply_effects in the WHERE
	 * clause, one probe instead of a read and then an update */ \
	X(MSG_ADVANCE, "UPDATE messages SET status=?3, reason=?4, updated=?5 WHERE rel=?1 AND id=?2" \
	  " AND direction='out' AND status<>?3 AND status<>'delivered' AND status<>'failed'" \
	  " AND (?3<>'posted' OR status='queued')") \
	X(OUTBOX_ADD, "INSERT INTO outbox(rel,dest,bytes,msg_id,state,created) VALUES(?1,?2,?3,?4,'queued',?5)") \
	X(OUTBOX_NEXT, "SELECT seq,rel,dest,bytes,msg_id,created FROM outbox WHERE state='queued' AND seq>?1 ORDER BY seq LIMIT ?2") \
	X(OUTBOX_POSTED, "UPDATE outbox SET state='posted', posted=coalesce(posted,?2) WHERE seq=?1") \
	X(OUTBOX_PURGE, "DELETE FROM outbox WHERE state='posted'") \
	X(CURSOR_GET, "SELECT cursor FROM cursors WHERE mailbox=?1") \
	X(CURSOR_SET, "INSERT INTO cursors(mailbox,cursor) VALUES(?1,?2) ON CONFLICT(mailbox) DO UPDATE SET cursor=excluded.cursor") \
	X(EVENT_ADD, "INSERT INTO events(type,json,ts) VALUES(?1,?2,?3)") \
	X(EVENT_TRIM, "DELETE FROM events WHERE seq<=?1") \
	X(EVENT_LIST, "SELECT seq,type,json,ts FROM events WHERE seq>?1 ORDER BY seq LIMIT ?2") \
	X(EVENT_BOUNDS, "SELECT (SELECT min(seq) FROM events), (SELECT seq FROM sqlite_sequence WHERE name='events')")

enum stmt_id {
#define X(name, sql) S_##name,
	STMTS(X)
#undef X
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
#define X(name, sql) sql,
	STMTS(X)
#undef X
};

/* ---- staging (write-back of relationship columns) ------------------------
 *
 * An engine step used to rewrite its relationship's row three or four times
 * (state, deadline, remote address, unread), and the row carries the state
 * blob on overflow pages: with secure_delete every rewrite freed, zeroed
 * and reallocated those pages, and each rewrite cost an UPDATE with its
 * blob copies (bench_daemon's sender: about 8 WAL frames per group commit
 * for that one row, now under 2; the store's CPU per step roughly halved).
 * Now those columns are staged here, keyed by relationship id, and written
 * by ONE UPDATE per relationship just before the transaction's COMMIT
 * (stage_flush).  The
 * durability rule is untouched: the UPDATE is inside the same transaction
 * as the step's outbox rows and cursor, and nothing is staged across a
 * commit.  Every reader of these columns overlays the staged values.
 *
 * Steps inside a batch are savepoints, so staging has them too: the first
 * time a step touches an entry, a copy of the entry goes to the undo log;
 * rolling the step back restores the copies, releasing it drops them.  The
 * undo copy owns the state blob it saved; the live entry then points at
 * the same blob with `owned` clear until it is replaced or the step ends.
 *
 * An entry with staged columns (mask or unread_add nonzero) implies its
 * row exists at that level of the transaction (checked when first staged;
 * the undo log keeps the two in step), so later stagings skip the check. */

enum {
	STAGE_STATE  = 1u << 0,     /* state + last_activity */
	STAGE_DL     = 1u << 1,     /* deadline */
	STAGE_ADDR   = 1u << 2,     /* remote_addr */
	STAGE_UNREAD = 1u << 3,     /* unread set absolutely (unread_add still adds) */
};

struct stage_ent {
	uint8_t id[RELM_ID_LEN];
	unsigned mask;               /* STAGE_* */
	int owned;                   /* state is ours to free (not the undo log's) */
	uint64_t gen;                /* the step that last saved it to the undo log */
	uint8_t *state;              /* secret */
	size_t state_len;
	uint64_t last_activity, deadline;
	uint32_t unread, unread_add;
	char remote_addr[RELM_MAILBOX_ADDR_MAX + 1];
};

struct stage_undo {
	uint32_t idx;                /* into ents: entries never move index */
	struct stage_ent saved;      /* owns saved.state */
};

struct stage {
	struct stage_ent *ents;      /* dense, in first-touch order */
	uint32_t n, cap;
	uint32_t *slots;             /* open addressing: 0 empty, else index + 1 */
	uint32_t nslots;             /* power of two, or 0 */
	struct stage_undo *undo;     /* the open batched step's undo log */
	uint32_t nundo, capundo;
	uint64_t gen;                /* generation of the open step (0 = none) */
};

struct relm_store {
	sqlite3 *db;
	enum store_state state;
	int batched;                 /* the open STEP is a savepoint inside a batch */
	int err;                     /* sticky error (ERROR state) */
	uint32_t event_keep;
	char msg[256];
	sqlite3_stmt *stmt[S_COUNT];
	struct stage stage;
};

/* ---- schema and migrations ----------------------------------------------
 * migrations[v] takes a store at user_version v to v+1 inside one
 * transaction: its SQL, then its C function (either may be NULL).  Version
 * 0 is the empty file.  To add v<N>: append migrations[N-1], bump
 * RELM_STORE_SCHEMA_VERSION, add tests/fixtures/store-v<N>.sql, and keep
 * the older fixtures: the test opens every fixture at the current version.
 * A fresh store runs every step from v1, so schema_v1 stays the v1 text. */

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
};

/* ---- staging: memory ------------------------------------------------------ */

/* Ids are mostly hashes, but not always (tests, fixtures): mix all 16 bytes. */
static uint32_t stage_hash(const uint8_t id[RELM_ID_LEN])
{
	uint64_t a, b;

	memcpy(&a, id, 8);
	memcpy(&b, id + 8, 8);
	a ^= b << 29 | b >> 35;
	a ^= a >> 33;
	a *= 0xff51afd7ed558ccdULL;
	a ^= a >> 33;
	return (uint32_t)a;
}

static struct stage_ent *stage_find(const struct stage *sg, const uint8_t id[RELM_ID_LEN])
{
	uint32_t m = sg->nslots - 1;

	if (!sg->n)
		return NULL;
	for (uint32_t i = stage_hash(id) & m;; i = (i + 1) & m) {
		uint32_t v = sg->slots[i];
		if (!v)
			return NULL;
		if (memcmp(sg->ents[v - 1].id, id, RELM_ID_LEN) == 0)
			return &sg->ents[v - 1];
	}
}

static void stage_slot_put(struct stage *sg, uint32_t idx)
{
	uint32_t m = sg->nslots - 1, i = stage_hash(sg->ents[idx].id) & m;

	while (sg->slots[i])
		i = (i + 1) & m;
	sg->slots[i] = idx + 1;
}

/* A new entry, nothing staged.  Entries and slots grow by doubling; the
 * load factor stays at most 1/2 so probes stay short and always end. */
static int stage_add(struct stage *sg, const uint8_t id[RELM_ID_LEN], struct stage_ent **out)
{
	struct stage_ent *e;

	if (sg->n == sg->cap) {
		uint32_t cap = sg->cap ? 2 * sg->cap : 16;
		/* plain realloc: entries hold pointers to secrets, not secrets */
		void *v = cap > UINT32_MAX / 4 ? NULL : realloc(sg->ents, cap * sizeof *sg->ents);
		if (!v)
			return RELM_ENOMEM;
		sg->ents = v;
		sg->cap = cap;
	}
	if (2 * (sg->n + 1) > sg->nslots) {
		uint32_t ns = sg->nslots ? 2 * sg->nslots : 32;
		uint32_t *v = calloc(ns, sizeof *v);
		if (!v)
			return RELM_ENOMEM;
		free(sg->slots);
		sg->slots = v;
		sg->nslots = ns;
		for (uint32_t i = 0; i < sg->n; i++)
			stage_slot_put(sg, i);
	}
	e = &sg->ents[sg->n];
	memset(e, 0, sizeof *e);
	memcpy(e->id, id, RELM_ID_LEN);
	e->owned = 1;
	stage_slot_put(sg, sg->n++);
	*out = e;
	return 0;
}

static void stage_drop_state(struct stage_ent *e)
{
	if (e->state && e->owned)
		relm_store_buf_free(e->state, e->state_len);
	e->state = NULL;
	e->state_len = 0;
	e->owned = 1;
}

/* First touch of an entry in a batched step: remember it as it was. */
static int stage_save(struct stage *sg, uint32_t idx)
{
	struct stage_ent *e = &sg->ents[idx];

	if (sg->nundo == sg->capundo) {
		uint32_t cap = sg->capundo ? 2 * sg->capundo : 8;
		void *v = cap > UINT32_MAX / 4 ? NULL : realloc(sg->undo, cap * sizeof *sg->undo);
		if (!v)
			return RELM_ENOMEM;
		sg->undo = v;
		sg->capundo = cap;
	}
	sg->undo[sg->nundo].idx = idx;
	sg->undo[sg->nundo].saved = *e;
	sg->nundo++;
	e->owned = 0;              /* the undo copy owns the blob now */
	e->gen = sg->gen;
	return 0;
}

/* The batched step is released: its changes become the batch's. */
static void stage_release(struct stage *sg)
{
	for (uint32_t i = 0; i < sg->nundo; i++) {
		struct stage_undo *u = &sg->undo[i];
		struct stage_ent *e = &sg->ents[u->idx];
		if (!u->saved.state)
			continue;
		if (e->state == u->saved.state)
			e->owned = 1;      /* not replaced: back to the entry */
		else
			relm_store_buf_free(u->saved.state, u->saved.state_len);
	}
	sg->nundo = 0;
}

/* The batched step is rolled back: every entry it touched is as before. */
static void stage_undo(struct stage *sg)
{
	for (uint32_t i = sg->nundo; i-- > 0;) {
		struct stage_undo *u = &sg->undo[i];
		struct stage_ent *e = &sg->ents[u->idx];
		if (e->state && e->owned)
			relm_store_buf_free(e->state, e->state_len);
		*e = u->saved;
		e->owned = 1;
	}
	sodium_memzero(sg->undo, sg->nundo * sizeof *sg->undo);
	sg->nundo = 0;
}

/* The transaction ended (committed, rolled back or failed): drop it all,
 * wiping the state blobs. */
static void stage_reset(struct stage *sg)
{
	for (uint32_t i = 0; i < sg->nundo; i++)
		relm_store_buf_free(sg->undo[i].saved.state, sg->undo[i].saved.state_len);
	for (uint32_t i = 0; i < sg->n; i++)
		stage_drop_state(&sg->ents[i]);
	if (sg->nundo)
		sodium_memzero(sg->undo, sg->nundo * sizeof *sg->undo);
	if (sg->n)
		memset(sg->slots, 0, sg->nslots * sizeof *sg->slots);
	sg->n = 0;
	sg->nundo = 0;
	/* a batch that touched many relationships (a tick after a long
	 * sleep) does not keep its tables for ever */
	if (sg->cap > 1024) {
		free(sg->ents);
		free(sg->slots);
		free(sg->undo);
		sg->ents = NULL;
		sg->slots = NULL;
		sg->undo = NULL;
		sg->cap = sg->nslots = sg->capundo = 0;
	}
}

static void stage_destroy(struct stage *sg)
{
	stage_reset(sg);
	free(sg->ents);
	free(sg->slots);
	free(sg->undo);
	memset(sg, 0, sizeof *sg);
}

/* ---- errors --------------------------------------------------------------- */

static int map_rc(int rc)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return RELM_EEXIST;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return RELM_ENOTFOUND;
	case SQLITE_CONSTRAINT_CHECK:
	case SQLITE_CONSTRAINT_NOTNULL:
	case SQLITE_TOOBIG:
		return RELM_EINVAL;
	}
	switch (rc & 0xff) {
	case SQLITE_OK: case SQLITE_ROW: case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY: case SQLITE_LOCKED:
		return RELM_EBUSY;
	case SQLITE_FULL:
		return RELM_EFULL;
	case SQLITE_CORRUPT: case SQLITE_NOTADB:
		return RELM_ECORRUPT;
	case SQLITE_NOMEM:
		return RELM_ENOMEM;
	case SQLITE_READONLY: case SQLITE_PERM:
		return RELM_EPERM;
	default:
		return RELM_ESTORE;
	}
}

static int is_sticky(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_IOERR: case SQLITE_FULL: case SQLITE_CORRUPT: case SQLITE_NOTADB:
	case SQLITE_NOMEM: case SQLITE_READONLY: case SQLITE_CANTOPEN: case SQLITE_PROTOCOL:
		return 1;
	}
	return 0;
}

/* The one place SQLite failures are judged.  Error messages come from
 * sqlite3_errmsg, which names tables and constraints, never values. */
static int store_fail(struct relm_store *st, int rc, const char *what)
{
	int err = map_rc(rc);

	snprintf(st->msg, sizeof st->msg, "%s: %s", what,
	         st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
	if (is_sticky(rc) && st->state != STORE_ERROR) {
		/* SQLite may already have rolled back; a second ROLLBACK is harmless. */
		if (st->db && !sqlite3_get_autocommit(st->db))
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		st->state = STORE_ERROR;
		st->err = err;
		st->batched = 0;
		stage_reset(&st->stage);
	}
	return err;
}

#define CHECK_USABLE(st) do { \
	assert((st) && (st)->state != STORE_NONE); \
	if ((st)->state == STORE_ERROR) return (st)->err; \
} while (0)

#define CHECK_WRITABLE(st) do { \
	CHECK_USABLE(st); \
	assert((st)->state == STORE_STEP && "store write outside relm_store_begin/commit"); \
} while (0)

static sqlite3_stmt *get_stmt(struct relm_store *st, enum stmt_id id, int *err)
{
	int rc;

	if (st->stmt[id])
		return st->stmt[id];
	rc = sqlite3_prepare_v3(st->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
	                        &st->stmt[id], NULL);
	if (rc != SQLITE_OK) {
		*err = store_fail(st, rc, "prepare");
		st->stmt[id] = NULL;
		return NULL;
	}
	return st->stmt[id];
}

static void done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* Step a statement that returns no rows. */
static int run(struct relm_store *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	int err = 0;

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		err = store_fail(st, rc, what);
	done(s);
	return err;
}

/* Run one of the cached statements that take no parameters. */
static int run_stmt(struct relm_store *st, enum stmt_id id, const char *what)
{
	sqlite3_stmt *s;
	int err = 0;

	if (!(s = get_stmt(st, id, &err)))
		return err;
	return run(st, s, what);
}

static int exec(struct relm_store *st, const char *sql, const char *what)
{
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : store_fail(st, rc, what);
}

/* Copy a fixed-size BLOB column; RELM_ESTATE if the size is wrong. */
static int col_fixed(sqlite3_stmt *s, int i, uint8_t *out, size_t len)
{
	const void *p = sqlite3_column_blob(s, i);
	if ((size_t)sqlite3_column_bytes(s, i) != len || !p)
		return RELM_ESTATE;
	memcpy(out, p, len);
	return 0;
}

static void col_text(sqlite3_stmt *s, int i, char *out, size_t cap)
{
	const unsigned char *p = sqlite3_column_text(s, i);
	size_t n = (size_t)sqlite3_column_bytes(s, i);
	if (!p)
		n = 0;
	if (n >= cap)
		n = cap - 1;
	if (n)
		memcpy(out, p, n);
	out[n] = '\0';
}

static int text_ok(const char *s, size_t max)
{
	return s && strnlen(s, max + 1) <= max;
}

/* ---- names of enums in the file --------------------------------------- */

static const char *const status_names[] = { "none", "queued", "posted", "delivered", "failed" };
static const char *const origin_names[] = { "", "self", "sibling", "remote" };

static int name_index(const char *const *names, int n, const unsigned char *s)
{
	for (int i = 0; i < n; i++)
		if (s && strcmp(names[i], (const char *)s) == 0)
			return i;
	return -1;
}

/* ---- open ----------------------------------------------------------------- */

__attribute__((format(printf, 2, 3)))
static void set_errbuf(const struct relm_store_opts *o, const char *fmt, ...)
{
	va_list ap;

	if (!o || !o->errbuf || !o->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(o->errbuf, o->errlen, fmt, ap);
	va_end(ap);
}

/* Refuse what another user could read or replace. */
static int check_owner_mode(const struct stat *sb, int want_dir)
{
	if (want_dir ? !S_ISDIR(sb->st_mode) : !S_ISREG(sb->st_mode))
		return RELM_EPERM;
	if (sb->st_uid != geteuid() || (sb->st_mode & 077) != 0)
		return RELM_EPERM;
	return 0;
}

static int check_side_file(const char *path, const char *suffix, const struct relm_store_opts *o)
{
	char p[4096];
	struct stat sb;

	if (snprintf(p, sizeof p, "%s%s", path, suffix) >= (int)sizeof p)
		return RELM_EINVAL;
	if (lstat(p, &sb) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (check_owner_mode(&sb, 0) != 0) {
		set_errbuf(o, "%s: must be a regular file owned by this user with mode 0600", p);
		return RELM_EPERM;
	}
	return 0;
}

static int read_user_version(sqlite3 *db, int *v, int *rc_out)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			*v = sqlite3_column_int(s, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(s);
	*rc_out = rc;
	return rc == SQLITE_OK ? 0 : -1;
}

/* quick_check (default) or integrity_check; 0 if it says "ok". */
static int run_check(sqlite3 *db, int full, int *rc_out)
{
	sqlite3_stmt *s = NULL;
	int ok = 0, rc;

	rc = sqlite3_prepare_v2(db, full ? "PRAGMA integrity_check(1)" : "PRAGMA quick_check(1)",
	                        -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			const unsigned char *t = sqlite3_column_text(s, 0);
			ok = t && strcmp((const char *)t, "ok") == 0;
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(s);
	*rc_out = rc;
	return ok ? 0 : -1;
}

/* meta 'clean' is '1' only between a clean relm_store_close and the next
 * open; read on the probe's read-only connection.  1, 0, or 0 on error. */
static int was_closed_cleanly(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	int clean = 0;
	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='clean'", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		clean = sqlite3_column_int(s, 0) == 1;
	sqlite3_finalize(s);
	return clean;
}

/* Probe an existing file read-only: version and integrity, modifying nothing.
 *
 * The check reads the whole file: 1.4 s warm (33 s cold) for a store of
 * 100,000 relationships.  WAL with synchronous=FULL is crash-safe, so the
 * check guards against disk rot and foreign damage, not against us; a big
 * store that was closed cleanly is therefore opened without it
 * (cell_size_check and SQLite's page checks still turn damage met later
 * into RELM_ECORRUPT, which is sticky: nothing is written after it).
 * After a kill, or for a store under RELM_STORE_CHECK_ALWAYS_BYTES, the
 * check runs as before. */
static int probe_readonly(const char *path, const struct relm_store_opts *o, unsigned flags)
{
	sqlite3 *db = NULL;
	int rc, v = 0, err = 0;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW |
	                     SQLITE_OPEN_EXRESCODE, o ? o->vfs : NULL);
	if (rc != SQLITE_OK)
		goto sqlfail;
	sqlite3_busy_timeout(db, o && o->busy_timeout_ms ? o->busy_timeout_ms : RELM_STORE_BUSY_MS);
	if (read_user_version(db, &v, &rc) != 0)
		goto sqlfail;
	if (v > RELM_STORE_SCHEMA_VERSION) {
		set_errbuf(o, "%s: schema version %d is newer than this relm (%d) understands; refusing to touch it",
		           path, v, RELM_STORE_SCHEMA_VERSION);
		err = RELM_ESTORE_NEWER;
		goto out;
	}
	{
		struct stat sb;
		if (!(flags & (RELM_STORE_F_INTEGRITY | RELM_STORE_F_NOCHECK)) &&
		    stat(path, &sb) == 0 &&
		    (uint64_t)sb.st_size > (o && o->check_always_bytes ? o->check_always_bytes
		                                                       : (uint64_t)RELM_STORE_CHECK_ALWAYS_BYTES) &&
		    was_closed_cleanly(db))
			flags |= RELM_STORE_F_NOCHECK;
	}
	if (!(flags & RELM_STORE_F_NOCHECK)) {
		if (run_check(db, !!(flags & RELM_STORE_F_INTEGRITY), &rc) != 0) {
			if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_CORRUPT && (rc & 0xff) != SQLITE_NOTADB)
				goto sqlfail;
			set_errbuf(o, "%s: integrity check failed: the file is corrupt and was left untouched", path);
			err = RELM_ECORRUPT;
			goto out;
		}
	}
	goto out;
sqlfail:
	err = map_rc(rc);
	if ((rc & 0xff) == SQLITE_CANTOPEN)
		err = RELM_EPERM;
	if (err == RELM_ECORRUPT)
		set_errbuf(o, "%s: not a valid store (%s); left untouched", path, sqlite3_errstr(rc));
	else
		set_errbuf(o, "%s: cannot read the store (%s)", path, sqlite3_errstr(rc));
out:
	sqlite3_close(db);
	return err;
}

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

static int migrate(struct relm_store *st)
{
	int v = 0, rc, err;

	for (;;) {
		err = exec(st, "BEGIN IMMEDIATE", "migrate: begin");
		if (err)
			return err;
		if (read_user_version(st->db, &v, &rc) != 0) {
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

int relm_store_open(struct relm_store **out, const char *path, const struct relm_store_opts *opts)
{
	struct relm_store *st = NULL;
	unsigned flags = opts ? opts->flags : 0;
	char dir[4096];
	struct stat sb;
	int err = 0, rc, fresh = 0, fd;
	char *slash;

	*out = NULL;
	if (!path || (flags & ~(unsigned)RELM_STORE_F_KNOWN) || strlen(path) >= sizeof dir - 8)
		return RELM_EINVAL;
	if (opts && opts->errbuf && opts->errlen)
		opts->errbuf[0] = '\0';

	/* The folder: create if missing, then it must be ours and 0700. */
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (lstat(dir, &sb) != 0) {
		if (errno != ENOENT || mkdir(dir, 0700) != 0 || lstat(dir, &sb) != 0) {
			err = -errno;
			set_errbuf(opts, "%s: cannot create the store folder (%s)", dir, strerror(errno));
			return err == -EACCES || err == -EROFS ? RELM_EPERM : err;
		}
	}
	if (check_owner_mode(&sb, 1) != 0) {
		set_errbuf(opts, "%s: the store folder must be a directory owned by this user with mode 0700 (no group/world access)", dir);
		return RELM_EPERM;
	}

	/* The file: ours and 0600, or created so. */
	if (lstat(path, &sb) != 0) {
		if (errno != ENOENT)
			return -errno;
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			err = -errno;
			set_errbuf(opts, "%s: cannot create the store (%s)", path, strerror(errno));
			return err == -EACCES || err == -EROFS ? RELM_EPERM : err;
		}
		if (fchmod(fd, 0600) != 0) {
			err = -errno;
			close(fd);
			return err;
		}
		close(fd);
		fresh = 1;
	} else {
		if (check_owner_mode(&sb, 0) != 0) {
			set_errbuf(opts, "%s: the store must be a regular file owned by this user with mode 0600", path);
			return RELM_EPERM;
		}
	}
	if ((err = check_side_file(path, "-wal", opts)) != 0 ||
	    (err = check_side_file(path, "-shm", opts)) != 0)
		return err;
	if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0 ||
	    faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) != 0) {
		set_errbuf(opts, "%s: the store or its folder is read-only (%s); WAL needs to write beside the file", path, strerror(errno));
		return RELM_EPERM;
	}

	/* An existing file is judged read-only before anything can write to it. */
	if (!fresh) {
		err = probe_readonly(path, opts, flags);
		if (err)
			return err;
	}

	st = calloc(1, sizeof *st);
	if (!st)
		return RELM_ENOMEM;
	st->state = STORE_IDLE;
	st->event_keep = opts && opts->event_keep ? opts->event_keep : RELM_STORE_EVENT_KEEP;
	/* NOMUTEX: a handle is used by one thread at a time (store.h), so the
	 * connection's own mutex, taken and released by every bind, step,
	 * column and reset (a few hundred times per message), guards nothing */
	rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW |
	                     SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_NOMUTEX, opts ? opts->vfs : NULL);
	if (rc != SQLITE_OK) {
		err = store_fail(st, rc, "open");
		goto fail;
	}
	sqlite3_busy_timeout(st->db, opts && opts->busy_timeout_ms ? opts->busy_timeout_ms : RELM_STORE_BUSY_MS);
	{
		sqlite3_stmt *s = NULL;
		const unsigned char *mode = NULL;
		rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
		if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW)
			mode = sqlite3_column_text(s, 0);
		if (rc == SQLITE_ROW && (!mode || strcmp((const char *)mode, "wal") != 0))
			rc = SQLITE_CANTOPEN;
		sqlite3_finalize(s);
		if (rc != SQLITE_ROW) {
			err = store_fail(st, rc, "journal_mode=WAL");
			goto fail;
		}
	}
	/* journal_size_limit: after a checkpoint the WAL is truncated back to
	 * 4 MiB, so a burst does not leave a large file that every later open
	 * (and WAL recovery after a kill) has to read. */
	err = exec(st, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;"
	           "PRAGMA trusted_schema=OFF; PRAGMA cell_size_check=ON;"
	           "PRAGMA journal_size_limit=4194304;"
	           /* the sub-journal of each step's savepoint holds page images
	            * (state blobs, so keys): in memory, never in an unlinked
	            * temporary file, which also cost a write per page per step */
	           "PRAGMA temp_store=MEMORY;"
	           /* a 16 MiB page cache keeps the B-tree interior pages of a
	            * 100k-relationship store resident (no mmap: mapped pages
	            * count as the daemon's resident memory) */
	           "PRAGMA cache_size=-16384", "pragmas");
	if (err)
		goto fail;
	err = migrate(st);
	if (err)
		goto fail;
	/* open now: a kill from here on means the next open checks */
	err = exec(st, "INSERT OR REPLACE INTO meta(key, value) VALUES('clean', 0)", "clean mark");
	if (err)
		goto fail;
	st->state = STORE_IDLE;
	st->err = 0;
	*out = st;
	return 0;
fail:
	set_errbuf(opts, "%s: %s", path, st->msg);
	relm_store_close(st);
	return err;
}

void relm_store_close(struct relm_store *st)
{
	if (!st)
		return;
	if (st->db && !sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	else if (st->db && st->state == STORE_IDLE)
		/* a clean close: the next open of a big store may skip the check */
		sqlite3_exec(st->db, "INSERT OR REPLACE INTO meta(key, value) VALUES('clean', 1)",
		             NULL, NULL, NULL);
	stage_destroy(&st->stage);
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close(st->db);
	sodium_memzero(st, sizeof *st);
	free(st);
}

int relm_store_error(const struct relm_store *st)
{
	return st->state == STORE_ERROR ? st->err : 0;
}

const char *relm_store_errmsg(const struct relm_store *st)
{
	return st->msg;
}

/* ---- transactions ----------------------------------------------------------- */

int relm_store_begin(struct relm_store *st)
{
	int err;

	CHECK_USABLE(st);
	assert(st->state == STORE_IDLE || st->state == STORE_BATCH);
	if (st->state == STORE_BATCH) {
		err = run_stmt(st, S_STEP_BEGIN, "begin step");
		if (!err) {
			st->state = STORE_STEP;
			st->batched = 1;
			st->stage.gen++;
		}
		return err;
	}
	assert(st->stage.n == 0 && st->stage.nundo == 0);
	err = exec(st, "BEGIN IMMEDIATE", "begin");
	if (!err) {
		st->state = STORE_STEP;
		st->batched = 0;
		st->stage.gen++;
	}
	return err;
}

static int stage_flush(struct relm_store *st);

/* The staged relationship columns are written inside the transaction, just
 * before its COMMIT.  COMMIT failing is sticky whatever the code: the
 * outcome on disk is unknown until reopen.  A failed write-back ends the
 * same way (then the outcome is known: nothing of the transaction). */
static int commit_or_die(struct relm_store *st, const char *what)
{
	int err = stage_flush(st), rc;

	if (!err) {
		rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
		if (rc == SQLITE_OK) {
			stage_reset(&st->stage);
			st->state = STORE_IDLE;
			return 0;
		}
		err = store_fail(st, rc, what);
	}
	if (st->state != STORE_ERROR) {
		if (!sqlite3_get_autocommit(st->db))
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		st->state = STORE_ERROR;
		st->err = err;
		st->batched = 0;
	}
	stage_reset(&st->stage);
	return err;
}

int relm_store_commit(struct relm_store *st)
{
	int err;

	CHECK_USABLE(st);
	assert(st->state == STORE_STEP);
	if (st->batched) {
		err = run_stmt(st, S_STEP_RELEASE, "release step");
		if (!err) {
			stage_release(&st->stage);
			st->state = STORE_BATCH;
			st->batched = 0;
		}
		return err;
	}
	return commit_or_die(st, "commit");
}

int relm_store_rollback(struct relm_store *st)
{
	int err;

	CHECK_USABLE(st);
	assert(st->state == STORE_STEP);
	if (st->batched) {
		err = run_stmt(st, S_STEP_UNDO, "rollback step");
		if (!err)
			err = run_stmt(st, S_STEP_RELEASE, "rollback step");
		if (!err) {
			stage_undo(&st->stage);
			st->state = STORE_BATCH;
			st->batched = 0;
		}
		return err;
	}
	err = exec(st, "ROLLBACK", "rollback");
	if (!err) {
		stage_reset(&st->stage);
		st->state = STORE_IDLE;
	}
	return err;
}

int relm_store_batch_begin(struct relm_store *st)
{
	int err;

	CHECK_USABLE(st);
	assert(st->state == STORE_IDLE);
	err = exec(st, "BEGIN IMMEDIATE", "batch begin");
	if (!err)
		st->state = STORE_BATCH;
	return err;
}

int relm_store_batch_commit(struct relm_store *st)
{
	CHECK_USABLE(st);
	assert(st->state == STORE_BATCH);
	return commit_or_die(st, "batch commit");
}

int relm_store_batch_rollback(struct relm_store *st)
{
	int err;

	CHECK_USABLE(st);
	assert(st->state == STORE_BATCH);
	err = exec(st, "ROLLBACK", "batch rollback");
	if (!err) {
		stage_reset(&st->stage);
		st->state = STORE_IDLE;
	}
	return err;
}

int relm_store_in_txn(const struct relm_store *st)
{
	return st->state == STORE_STEP || st->state == STORE_BATCH;
}

/* ---- helpers for the typed functions ---------------------------------- */

#define BIND_BLOB(s, i, p, n) sqlite3_bind_blob((s), (i), (p), (int)(n), SQLITE_STATIC)
#define BIND_TEXT(s, i, p) sqlite3_bind_text((s), (i), (p), -1, SQLITE_STATIC)

/* Run a single-row UPDATE/DELETE: RELM_ENOTFOUND if no row changed. */
static int run_one(struct relm_store *st, sqlite3_stmt *s, const char *what)
{
	int err = run(st, s, what);
	if (!err && sqlite3_changes(st->db) == 0)
		err = RELM_ENOTFOUND;
	return err;
}

/* ---- protons ---------------------------------------------------------- */

int relm_store_proton_put(struct relm_store *st, const struct relm_store_proton *p)
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (!text_ok(p->label, RELM_STORE_LABEL_MAX) || !text_ok(p->strategy, RELM_STORE_STRATEGY_MAX))
		return RELM_EINVAL;
	if (!(s = get_stmt(st, S_PROTON_PUT, &err)))
		return err;
	BIND_BLOB(s, 1, p->id, RELM_ID_LEN);
	BIND_TEXT(s, 2, p->label);
	BIND_BLOB(s, 3, p->ipk, RELM_SIGN_PK_LEN);
	BIND_BLOB(s, 4, p->isk, RELM_SIGN_SK_LEN);
	BIND_TEXT(s, 5, p->strategy[0] ? p->strategy : "leaderless");
	sqlite3_bind_int64(s, 6, (sqlite3_int64)p->created);
	return run(st, s, "proton put");
}

static int read_proton(sqlite3_stmt *s, struct relm_store_proton *p)
{
	memset(p, 0, sizeof *p);
	if (col_fixed(s, 0, p->id, RELM_ID_LEN) || col_fixed(s, 2, p->ipk, RELM_SIGN_PK_LEN))
		return RELM_ESTATE;
	col_text(s, 1, p->label, sizeof p->label);
	col_text(s, 3, p->strategy, sizeof p->strategy);
	p->created = (uint64_t)sqlite3_column_int64(s, 4);
	return 0;
}

int relm_store_proton_get(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                          struct relm_store_proton *out, unsigned flags)
{
	struct relm_store_proton p;
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_PROTON_GET, &err)))
		return err;
	BIND_BLOB(s, 1, id, RELM_ID_LEN);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		err = read_proton(s, &p);
		if (!err && (flags & RELM_STORE_WITH_SECRETS))
			err = col_fixed(s, 5, p.isk, RELM_SIGN_SK_LEN);
	} else {
		err = rc == SQLITE_DONE ? RELM_ENOTFOUND : store_fail(st, rc, "proton get");
	}
	done(s);
	if (!err)
		*out = p;
	sodium_memzero(&p, sizeof p);
	return err;
}

int relm_store_proton_set_strategy(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                                   const char *strategy)
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (!text_ok(strategy, RELM_STORE_STRATEGY_MAX))
		return RELM_EINVAL;
	if (!(s = get_stmt(st, S_PROTON_STRATEGY, &err)))
		return err;
	BIND_BLOB(s, 1, id, RELM_ID_LEN);
	BIND_TEXT(s, 2, strategy);
	return run_one(st, s, "proton set strategy");
}

int relm_store_proton_list(struct relm_store *st,
                           int (*cb)(void *ctx, const struct relm_store_proton *p), void *ctx)
{
	struct relm_store_proton p;
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_PROTON_LIST, &err)))
		return err;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((err = read_proton(s, &p)) != 0 || (err = cb(ctx, &p)) != 0)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = store_fail(st, rc, "proton list");
	done(s);
	return err;
}

void relm_store_proton_clear(struct relm_store_proton *p)
{
	if (p)
		sodium_memzero(p, sizeof *p);
}

/* ---- devices -------------------------------------------------------------- */

int relm_store_device_put(struct relm_store *st, const struct relm_store_device *d)
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (!text_ok(d->label, RELM_STORE_LABEL_MAX))
		return RELM_EINVAL;
	if (!(s = get_stmt(st, S_DEVICE_PUT, &err)))
		return err;
	BIND_BLOB(s, 1, d->proton, RELM_ID_LEN);
	BIND_BLOB(s, 2, d->device, RELM_ID_LEN);
	BIND_TEXT(s, 3, d->label);
	sqlite3_bind_int(s, 4, !!d->self);
	BIND_BLOB(s, 5, d->pk, RELM_SIGN_PK_LEN);
	if (d->has_sk)
		BIND_BLOB(s, 6, d->sk, RELM_SIGN_SK_LEN);
	sqlite3_bind_int64(s, 7, (sqlite3_int64)d->epoch);
	sqlite3_bind_int64(s, 8, (sqlite3_int64)d->added);
	return run(st, s, "device put");
}

static int read_device(sqlite3_stmt *s, struct relm_store_device *d)
{
	memset(d, 0, sizeof *d);
	if (col_fixed(s, 0, d->proton, RELM_ID_LEN) || col_fixed(s, 1, d->device, RELM_ID_LEN) ||
	    col_fixed(s, 4, d->pk, RELM_SIGN_PK_LEN))
		return RELM_ESTATE;
	col_text(s, 2, d->label, sizeof d->label);
	d->self = sqlite3_column_int(s, 3);
	d->epoch = (uint64_t)sqlite3_column_int64(s, 5);
	d->added = (uint64_t)sqlite3_column_int64(s, 6);
	return 0;
}

int relm_store_device_list(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                           int (*cb)(void *ctx, const struct relm_store_device *d), void *ctx)
{
	struct relm_store_device d;
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_DEVICE_LIST, &err)))
		return err;
	BIND_BLOB(s, 1, proton, RELM_ID_LEN);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((err = read_device(s, &d)) != 0 || (err = cb(ctx, &d)) != 0)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = store_fail(st, rc, "device list");
	done(s);
	return err;
}

int relm_store_device_get_self(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                               struct relm_store_device *out)
{
	struct relm_store_device d;
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_DEVICE_SELF, &err)))
		return err;
	BIND_BLOB(s, 1, proton, RELM_ID_LEN);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		err = read_device(s, &d);
		if (!err && sqlite3_column_type(s, 7) != SQLITE_NULL) {
			err = col_fixed(s, 7, d.sk, RELM_SIGN_SK_LEN);
			d.has_sk = 1;
		}
	} else {
		err = rc == SQLITE_DONE ? RELM_ENOTFOUND : store_fail(st, rc, "device self");
	}
	done(s);
	if (!err)
		*out = d;
	sodium_memzero(&d, sizeof d);
	return err;
}

void relm_store_device_clear(struct relm_store_device *d)
{
	if (d)
		sodium_memzero(d, sizeof *d);
}

/* ---- invites ------------------------------------------------------------- */

int relm_store_invite_put(struct relm_store *st, const struct relm_store_invite *inv)
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (!(s = get_stmt(st, S_INVITE_PUT, &err)))
		return err;
	BIND_BLOB(s, 1, inv->proton, RELM_ID_LEN);
	sqlite3_bind_int64(s, 2, inv->spk_id);
	BIND_BLOB(s, 3, inv->spk_priv, RELM_KEY_LEN);
	sqlite3_bind_int64(s, 4, inv->opk_id);
	if (inv->opk_id)
		BIND_BLOB(s, 5, inv->opk_priv, RELM_KEY_LEN);
	sqlite3_bind_int(s, 6, !!inv->multi_use);
	sqlite3_bind_int64(s, 7, (sqlite3_int64)inv->expires);
	BIND_BLOB(s, 8, inv->mailbox_id, RELM_SIGN_PK_LEN);
	BIND_BLOB(s, 9, inv->mailbox_sk, RELM_SIGN_SK_LEN);
	sqlite3_bind_int64(s, 10, (sqlite3_int64)inv->created);
	return run(st, s, "invite put");
}

int relm_store_invite_get(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                          uint32_t spk_id, struct relm_store_invite *out)
{
	struct relm_store_invite inv;
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_INVITE_GET, &err)))
		return err;
	BIND_BLOB(s, 1, proton, RELM_ID_LEN);
	sqlite3_bind_int64(s, 2, spk_id);
	memset(&inv, 0, sizeof inv);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		inv.spk_id = (uint32_t)sqlite3_column_int64(s, 1);
		inv.opk_id = (uint32_t)sqlite3_column_int64(s, 2);
		inv.multi_use = sqlite3_column_int(s, 3);
		inv.expires = (uint64_t)sqlite3_column_int64(s, 4);
		inv.used = (uint32_t)sqlite3_column_int64(s, 6);
		inv.created = (uint64_t)sqlite3_column_int64(s, 7);
		if (col_fixed(s, 0, inv.proton, RELM_ID_LEN) ||
		    col_fixed(s, 5, inv.mailbox_id, RELM_SIGN_PK_LEN) ||
		    col_fixed(s, 8, inv.spk_priv, RELM_KEY_LEN) ||
		    col_fixed(s, 10, inv.mailbox_sk, RELM_SIGN_SK_LEN) ||
		    (sqlite3_column_type(s, 9) != SQLITE_NULL &&
		     col_fixed(s, 9, inv.opk_priv, RELM_KEY_LEN)))
			err = RELM_ESTATE;
	} else {
		err = rc == SQLITE_DONE ? RELM_ENOTFOUND : store_fail(st, rc, "invite get");
	}
	done(s);
	if (!err)
		*out = inv;
	sodium_memzero(&inv, sizeof inv);
	return err;
}

int relm_store_invite_by_mailbox(struct relm_store *st, const uint8_t mailbox_id[RELM_SIGN_PK_LEN],
                                 uint8_t proton[RELM_ID_LEN], uint32_t *spk_id)
{
	sqlite3_stmt *s;
	int err = 0, rc;
	uint8_t p[RELM_ID_LEN];

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_INVITE_BY_MBOX, &err)))
		return err;
	BIND_BLOB(s, 1, mailbox_id, RELM_SIGN_PK_LEN);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		err = col_fixed(s, 0, p, RELM_ID_LEN);
		if (!err) {
			memcpy(proton, p, RELM_ID_LEN);
			*spk_id = (uint32_t)sqlite3_column_int64(s, 1);
		}
	} else {
		err = rc == SQLITE_DONE ? RELM_ENOTFOUND : store_fail(st, rc, "invite by mailbox");
	}
	done(s);
	return err;
}

int relm_store_invite_mark_used(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                                uint32_t spk_id)
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (!(s = get_stmt(st, S_INVITE_USED, &err)))
		return err;
	BIND_BLOB(s, 1, proton, RELM_ID_LEN);
	sqlite3_bind_int64(s, 2, spk_id);
	return run_one(st, s, "invite mark used");
}

int relm_store_invite_expire(struct relm_store *st, uint64_t now_ms)
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (!(s = get_stmt(st, S_INVITE_EXPIRE, &err)))
		return err;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)now_ms);
	err = run(st, s, "invite expire");
	return err ? err : sqlite3_changes(st->db);
}

void relm_store_invite_clear(struct relm_store_invite *inv)
{
	if (inv)
		sodium_memzero(inv, sizeof *inv);
}

/* ---- replay guard ------------------------------------------------------------ */

int relm_store_replay_check_insert(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                                   const uint8_t ek[RELM_KEY_LEN],
                                   const uint8_t rel[RELM_ID_LEN], uint64_t now_ms)
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (!(s = get_stmt(st, S_REPLAY_INS, &err)))
		return err;
	BIND_BLOB(s, 1, proton, RELM_ID_LEN);
	BIND_BLOB(s, 2, ek, RELM_KEY_LEN);
	if (rel)
		BIND_BLOB(s, 3, rel, RELM_ID_LEN);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)now_ms);
	err = run(st, s, "replay guard");
	if (!err && sqlite3_changes(st->db) == 0)
		err = RELM_EREPLAY;
	return err;
}

/* ---- staging: SQL ------------------------------------------------------------ */

/* 0 if relationship id has a row, RELM_ENOTFOUND if not. */
static int rel_exists(struct relm_store *st, const uint8_t id[RELM_ID_LEN])
{
	sqlite3_stmt *s;
	int err = 0, rc;

	if (!(s = get_stmt(st, S_REL_EXISTS, &err)))
		return err;
	BIND_BLOB(s, 1, id, RELM_ID_LEN);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		err = RELM_ENOTFOUND;
	else if (rc != SQLITE_ROW)
		err = store_fail(st, rc, "rel exists");
	done(s);
	return err;
}

static int stage_dirty(const struct stage_ent *e)
{
	return e->mask || e->unread_add;
}

/* The staging entry of relationship id for a write in the open step:
 * created if need be (after checking that the row exists — an entry with
 * staged columns stands for an existing row, so only then), and saved to
 * the undo log on its first touch in a batched step.  RELM_ENOTFOUND,
 * RELM_ENOMEM (nothing changed then). */
static int stage_touch(struct relm_store *st, const uint8_t id[RELM_ID_LEN], struct stage_ent **out)
{
	struct stage *sg = &st->stage;
	struct stage_ent *e = stage_find(sg, id);
	int err;

	if (!e || !stage_dirty(e)) {
		if ((err = rel_exists(st, id)) != 0)
			return err;
		if (!e && (err = stage_add(sg, id, &e)) != 0)
			return err;
	}
	if (st->batched && e->gen != sg->gen && (err = stage_save(sg, (uint32_t)(e - sg->ents))) != 0)
		return err;
	*out = e;
	return 0;
}

/* One UPDATE for everything staged on one relationship.  A row deleted
 * meanwhile (its proton went) is not an error: there is nothing to keep. */
static int stage_flush_ent(struct relm_store *st, const struct stage_ent *e)
{
	sqlite3_stmt *s;
	int err = 0;

	if (!(s = get_stmt(st, (e->mask & STAGE_STATE) ? S_REL_FLUSH_STATE : S_REL_FLUSH, &err)))
		return err;
	BIND_BLOB(s, 1, e->id, RELM_ID_LEN);
	if (e->mask & STAGE_STATE) {
		if (e->state_len)
			BIND_BLOB(s, 2, e->state, e->state_len);
		else
			sqlite3_bind_zeroblob(s, 2, 0);
		sqlite3_bind_int64(s, 3, (sqlite3_int64)e->last_activity);
	}
	if (e->mask & STAGE_DL)
		sqlite3_bind_int64(s, 4, (sqlite3_int64)e->deadline);
	if (e->mask & STAGE_ADDR)
		BIND_TEXT(s, 5, e->remote_addr);
	if (e->mask & STAGE_UNREAD)
		sqlite3_bind_int64(s, 6, e->unread);
	sqlite3_bind_int64(s, 7, e->unread_add);
	return run(st, s, "rel write-back");
}

/* Write back every staged entry (the open transaction is about to commit;
 * no step is open in it, or it is a standalone step). */
static int stage_flush(struct relm_store *st)
{
	struct stage *sg = &st->stage;
	int err;

	for (uint32_t i = 0; i < sg->n; i++) {
		if (!stage_dirty(&sg->ents[i]))
			continue;
		if ((err = stage_flush_ent(st, &sg->ents[i])) != 0)
			return err;
	}
	return 0;
}

/* What a reader of the row sees: the file's columns, then the staged ones. */
static void stage_overlay(const struct stage *sg, struct relm_store_rel *r)
{
	const struct stage_ent *e = stage_find(sg, r->id);

	if (!e)
		return;
	if (e->mask & STAGE_STATE)
		r->last_activity = e->last_activity;
	if (e->mask & STAGE_ADDR)
		memcpy(r->remote_addr, e->remote_addr, sizeof r->remote_addr);
	if (e->mask & STAGE_UNREAD)
		r->unread = e->unread;
	r->unread += e->unread_add;
}

/* ---- relationships ----------------------------------------------------------- */

int relm_store_rel_put(struct relm_store *st, const struct relm_store_rel *r)
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (!text_ok(r->label, RELM_STORE_LABEL_MAX) ||
	    !text_ok(r->remote_addr, RELM_MAILBOX_ADDR_MAX) || r->state_len > INT32_MAX)
		return RELM_EINVAL;
	if (!(s = get_stmt(st, S_REL_PUT, &err)))
		return err;
	BIND_BLOB(s, 1, r->id, RELM_ID_LEN);
	BIND_BLOB(s, 2, r->proton, RELM_ID_LEN);
	BIND_TEXT(s, 3, r->label);
	BIND_BLOB(s, 4, r->remote_ipk, RELM_SIGN_PK_LEN);
	sqlite3_bind_int(s, 5, r->mode);
	BIND_BLOB(s, 6, r->mailbox_id, RELM_SIGN_PK_LEN);
	BIND_BLOB(s, 7, r->mailbox_sk, RELM_SIGN_SK_LEN);
	BIND_TEXT(s, 8, r->remote_addr);
	sqlite3_bind_int64(s, 9, (sqlite3_int64)r->created);
	sqlite3_bind_int64(s, 10, (sqlite3_int64)r->last_activity);
	sqlite3_bind_int64(s, 11, r->unread);
	if (r->state_len)
		BIND_BLOB(s, 12, r->state, r->state_len);
	else
		sqlite3_bind_zeroblob(s, 12, 0);
	return run(st, s, "rel put");
}

static int read_rel(sqlite3_stmt *s, struct relm_store_rel *r)
{
	memset(r, 0, sizeof *r);
	if (col_fixed(s, 0, r->id, RELM_ID_LEN) || col_fixed(s, 1, r->proton, RELM_ID_LEN) ||
	    col_fixed(s, 3, r->remote_ipk, RELM_SIGN_PK_LEN) ||
	    col_fixed(s, 5, r->mailbox_id, RELM_SIGN_PK_LEN))
		return RELM_ESTATE;
	col_text(s, 2, r->label, sizeof r->label);
	r->mode = sqlite3_column_int(s, 4);
	col_text(s, 6, r->remote_addr, sizeof r->remote_addr);
	r->created = (uint64_t)sqlite3_column_int64(s, 7);
	r->last_activity = (uint64_t)sqlite3_column_int64(s, 8);
	r->unread = (uint32_t)sqlite3_column_int64(s, 9);
	return 0;
}

/* A single-column lookup by relationship id; for the secret columns. */
static int rel_get_col(struct relm_store *st, enum stmt_id sid, const uint8_t id[RELM_ID_LEN],
                       uint8_t *fixed, size_t fixed_len, uint8_t **buf, size_t *len)
{
	sqlite3_stmt *s;
	int err = 0, rc;

	if (!(s = get_stmt(st, sid, &err)))
		return err;
	BIND_BLOB(s, 1, id, RELM_ID_LEN);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (fixed) {
			err = col_fixed(s, 0, fixed, fixed_len);
		} else {
			size_t n = (size_t)sqlite3_column_bytes(s, 0);
			const void *p = sqlite3_column_blob(s, 0);
			*buf = malloc(n ? n : 1);
			if (!*buf)
				err = RELM_ENOMEM;
			else {
				if (n)
					memcpy(*buf, p, n);
				*len = n;
			}
		}
	} else {
		err = rc == SQLITE_DONE ? RELM_ENOTFOUND : store_fail(st, rc, "rel get");
	}
	done(s);
	return err;
}

int relm_store_rel_get(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                       struct relm_store_rel *out, unsigned flags)
{
	struct relm_store_rel r;
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_REL_GET, &err)))
		return err;
	BIND_BLOB(s, 1, id, RELM_ID_LEN);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		err = read_rel(s, &r);
	else
		err = rc == SQLITE_DONE ? RELM_ENOTFOUND : store_fail(st, rc, "rel get");
	done(s);
	if (err)
		return err;
	stage_overlay(&st->stage, &r);
	/* Separate statements so a plain get never reads the state's overflow
	 * pages or copies a secret it was not asked for. */
	if (flags & RELM_STORE_WITH_SECRETS)
		err = rel_get_col(st, S_REL_GET_SECRET, id, r.mailbox_sk, RELM_SIGN_SK_LEN, NULL, NULL);
	if (!err && (flags & RELM_STORE_WITH_STATE)) {
		const struct stage_ent *e = stage_find(&st->stage, id);
		if (e && (e->mask & STAGE_STATE)) {
			/* staged in this transaction: the file's copy is stale */
			if (!(r.state = malloc(e->state_len ? e->state_len : 1))) {
				err = RELM_ENOMEM;
			} else {
				if (e->state_len)
					memcpy(r.state, e->state, e->state_len);
				r.state_len = e->state_len;
			}
		} else {
			err = rel_get_col(st, S_REL_GET_STATE, id, NULL, 0, &r.state, &r.state_len);
		}
	}
	if (err) {
		relm_store_rel_clear(&r);
		return err;
	}
	*out = r;
	sodium_memzero(&r, sizeof r);
	return 0;
}

int relm_store_rel_by_mailbox(struct relm_store *st, const uint8_t mailbox_id[RELM_SIGN_PK_LEN],
                              uint8_t rel[RELM_ID_LEN])
{
	sqlite3_stmt *s;
	int err = 0, rc;
	uint8_t id[RELM_ID_LEN];

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_REL_BY_MBOX, &err)))
		return err;
	BIND_BLOB(s, 1, mailbox_id, RELM_SIGN_PK_LEN);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (!(err = col_fixed(s, 0, id, RELM_ID_LEN)))
			memcpy(rel, id, RELM_ID_LEN);
	} else {
		err = rc == SQLITE_DONE ? RELM_ENOTFOUND : store_fail(st, rc, "rel by mailbox");
	}
	done(s);
	return err;
}

int relm_store_rel_list(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                        const uint8_t after[RELM_ID_LEN], unsigned limit,
                        int (*cb)(void *ctx, const struct relm_store_rel *r), void *ctx)
{
	static const uint8_t none[1];
	struct relm_store_rel r;
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_REL_LIST, &err)))
		return err;
	BIND_BLOB(s, 1, proton, RELM_ID_LEN);
	/* A zero-length BLOB sorts before every 16-byte id. */
	if (after)
		BIND_BLOB(s, 2, after, RELM_ID_LEN);
	else
		BIND_BLOB(s, 2, none, 0);
	sqlite3_bind_int64(s, 3, limit ? (sqlite3_int64)limit : -1);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((err = read_rel(s, &r)) != 0)
			break;
		stage_overlay(&st->stage, &r);
		if ((err = cb(ctx, &r)) != 0)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = store_fail(st, rc, "rel list");
	done(s);
	return err;
}

/* The setters stage (see "staging" above): nothing is written until the
 * transaction commits, and every reader sees the staged values. */
int relm_store_rel_set_state(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                             const uint8_t *state, size_t len, uint64_t last_activity)
{
	struct stage_ent *e;
	uint8_t *copy;
	int err;

	CHECK_WRITABLE(st);
	/* refused now rather than at the write-back, where any failure is
	 * the sticky end of the whole transaction (the row's other columns
	 * take well under 4 KiB) */
	if (len > INT32_MAX || len + 4096 > (size_t)sqlite3_limit(st->db, SQLITE_LIMIT_LENGTH, -1))
		return RELM_EINVAL;
	if ((err = stage_touch(st, id, &e)) != 0)
		return err;
	if (e->state && e->owned && e->state_len == len) {
		/* the usual case: a blob of the same size, rewritten in place */
		if (len)
			memcpy(e->state, state, len);
	} else {
		if (!(copy = malloc(len ? len : 1)))
			return RELM_ENOMEM;
		if (len)
			memcpy(copy, state, len);
		stage_drop_state(e);
		e->state = copy;
		e->state_len = len;
	}
	e->last_activity = last_activity;
	e->mask |= STAGE_STATE;
	return 0;
}

int relm_store_rel_set_remote_addr(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                                   const char *addr)
{
	struct stage_ent *e;
	int err;

	CHECK_WRITABLE(st);
	if (!text_ok(addr, RELM_MAILBOX_ADDR_MAX))
		return RELM_EINVAL;
	if ((err = stage_touch(st, id, &e)) != 0)
		return err;
	snprintf(e->remote_addr, sizeof e->remote_addr, "%s", addr);
	e->mask |= STAGE_ADDR;
	return 0;
}

int relm_store_rel_set_unread(struct relm_store *st, const uint8_t id[RELM_ID_LEN], uint32_t unread)
{
	struct stage_ent *e;
	int err;

	CHECK_WRITABLE(st);
	if ((err = stage_touch(st, id, &e)) != 0)
		return err;
	e->unread = unread;
	e->unread_add = 0;
	e->mask |= STAGE_UNREAD;
	return 0;
}

static int rel_inc_unread(struct relm_store *st, const uint8_t id[RELM_ID_LEN])
{
	struct stage_ent *e;
	int err;

	if ((err = stage_touch(st, id, &e)) != 0)
		return err;
	e->unread_add++;
	return 0;
}

int relm_store_rel_set_deadline(struct relm_store *st, const uint8_t id[RELM_ID_LEN], uint64_t deadline_ms)
{
	struct stage_ent *e;
	int err;

	CHECK_WRITABLE(st);
	if (deadline_ms > INT64_MAX)
		return RELM_EINVAL;
	if ((err = stage_touch(st, id, &e)) != 0)
		return err;
	e->deadline = deadline_ms;
	e->mask |= STAGE_DL;
	return 0;
}

/* Deadline queries merge the file's partial index with the staged
 * deadlines (whose rows' file values are stale and skipped): exact inside
 * an open step too, and nothing is written early. */
struct dl_item {
	uint64_t dl;
	uint8_t id[RELM_ID_LEN];
};

static int dl_cmp(const void *a, const void *b)
{
	const struct dl_item *x = a, *y = b;
	return x->dl < y->dl ? -1 : x->dl > y->dl;
}

/* Staged deadlines in (0, upto], earliest first (*out malloc'd, or NULL);
 * *any = some entry has a staged deadline at all. */
static int staged_deadlines(const struct stage *sg, uint64_t upto, struct dl_item **out,
                            size_t *n, int *any)
{
	struct dl_item *v = NULL;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	*any = 0;
	for (uint32_t i = 0; i < sg->n; i++) {
		const struct stage_ent *e = &sg->ents[i];
		if (!(e->mask & STAGE_DL))
			continue;
		*any = 1;
		if (!e->deadline || e->deadline > upto)
			continue;
		if (!v && !(v = malloc(sg->n * sizeof *v)))
			return RELM_ENOMEM;
		v[k].dl = e->deadline;
		memcpy(v[k].id, e->id, RELM_ID_LEN);
		k++;
	}
	if (k > 1)
		qsort(v, k, sizeof *v, dl_cmp);
	*out = v;
	*n = k;
	return 0;
}

/* The next row (id, deadline) of s whose deadline is not staged: 1, 0 at
 * the end, or a negative error. */
static int due_row(struct relm_store *st, sqlite3_stmt *s, int skip_staged,
                   uint8_t id[RELM_ID_LEN], uint64_t *dl)
{
	for (;;) {
		const struct stage_ent *e;
		int rc = sqlite3_step(s);
		if (rc == SQLITE_DONE)
			return 0;
		if (rc != SQLITE_ROW)
			return store_fail(st, rc, "rel due");
		if (col_fixed(s, 0, id, RELM_ID_LEN) != 0)
			return RELM_ESTATE;
		*dl = (uint64_t)sqlite3_column_int64(s, 1);
		if (skip_staged && (e = stage_find(&st->stage, id)) != NULL && (e->mask & STAGE_DL))
			continue;
		return 1;
	}
}

int relm_store_rel_due(struct relm_store *st, uint64_t now_ms, unsigned limit,
                       int (*cb)(void *ctx, const uint8_t id[RELM_ID_LEN]), void *ctx)
{
	struct dl_item *sd;
	sqlite3_stmt *s;
	uint8_t id[RELM_ID_LEN];
	uint64_t dl = 0, now = now_ms > INT64_MAX ? INT64_MAX : now_ms;
	size_t nsd, i = 0;
	unsigned emitted = 0;
	int err = 0, any, have;

	CHECK_USABLE(st);
	if ((err = staged_deadlines(&st->stage, now, &sd, &nsd, &any)) != 0)
		return err;
	if (!(s = get_stmt(st, S_REL_DUE, &err))) {
		free(sd);
		return err;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)now);
	/* skipped stale rows would count against a LIMIT in SQL */
	sqlite3_bind_int64(s, 2, limit && !any ? (sqlite3_int64)limit : -1);
	have = due_row(st, s, any, id, &dl);
	while (have >= 0 && (!limit || emitted < limit)) {
		if (have == 1 && (i == nsd || dl <= sd[i].dl)) {
			if ((err = cb(ctx, id)) != 0)
				break;
			have = due_row(st, s, any, id, &dl);
		} else if (i < nsd) {
			if ((err = cb(ctx, sd[i++].id)) != 0)
				break;
		} else {
			break;
		}
		emitted++;
	}
	if (!err && have < 0)
		err = have;
	done(s);
	free(sd);
	return err;
}

int relm_store_next_deadline(struct relm_store *st, uint64_t *next)
{
	const struct stage *sg = &st->stage;
	sqlite3_stmt *s;
	uint8_t id[RELM_ID_LEN];
	uint64_t staged = 0, dl = 0;
	int err = 0, rc, any = 0;

	CHECK_USABLE(st);
	for (uint32_t i = 0; i < sg->n; i++) {
		const struct stage_ent *e = &sg->ents[i];
		if (!(e->mask & STAGE_DL))
			continue;
		any = 1;
		if (e->deadline && (!staged || e->deadline < staged))
			staged = e->deadline;
	}
	if (any) {
		/* the earliest row whose deadline is not staged, against the staged */
		if (!(s = get_stmt(st, S_REL_DEADLINES, &err)))
			return err;
		rc = due_row(st, s, 1, id, &dl);
		done(s);
		if (rc < 0)
			return rc;
		if (rc == 0 || (staged && staged < dl))
			dl = staged;
		*next = dl;
		return 0;
	}
	if (!(s = get_stmt(st, S_REL_NEXT_DEADLINE, &err)))
		return err;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*next = (uint64_t)sqlite3_column_int64(s, 0);   /* NULL reads as 0: none */
	else
		err = store_fail(st, rc, "next deadline");
	done(s);
	return err;
}

int relm_store_mailbox_list(struct relm_store *st, uint64_t now_ms,
                            int (*cb)(void *ctx, const uint8_t id[RELM_SIGN_PK_LEN], uint64_t cursor),
                            void *ctx)
{
	sqlite3_stmt *s;
	uint8_t id[RELM_SIGN_PK_LEN];
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_MBOX_LIST, &err)))
		return err;
	sqlite3_bind_int64(s, 1, now_ms > INT64_MAX ? INT64_MAX : (sqlite3_int64)now_ms);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((err = col_fixed(s, 0, id, sizeof id)) != 0 ||
		    (err = cb(ctx, id, (uint64_t)sqlite3_column_int64(s, 1))) != 0)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = store_fail(st, rc, "mailbox list");
	done(s);
	return err;
}

int relm_store_mailbox_secret(struct relm_store *st, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                              uint8_t sk[RELM_SIGN_SK_LEN])
{
	sqlite3_stmt *s;
	uint8_t k[RELM_SIGN_SK_LEN];
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_MBOX_SECRET, &err)))
		return err;
	BIND_BLOB(s, 1, mailbox, RELM_SIGN_PK_LEN);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		err = col_fixed(s, 0, k, sizeof k);
	else
		err = rc == SQLITE_DONE ? RELM_ENOTFOUND : store_fail(st, rc, "mailbox secret");
	done(s);
	if (!err)
		memcpy(sk, k, sizeof k);
	sodium_memzero(k, sizeof k);
	return err;
}

void relm_store_buf_free(uint8_t *buf, size_t len)
{
	if (!buf)
		return;
	sodium_memzero(buf, len);
	free(buf);
}

void relm_store_rel_clear(struct relm_store_rel *r)
{
	if (!r)
		return;
	relm_store_buf_free(r->state, r->state_len);
	sodium_memzero(r, sizeof *r);
}

/* ---- pending --------------------------------------------------------------- */

int relm_store_pending_add(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                           const uint8_t hash[RELM_ID_LEN], const uint8_t *bytes, size_t len,
                           uint64_t received_ms)
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (len > RELM_ENVELOPE_MAX)
		return RELM_ETOOBIG;
	if (!(s = get_stmt(st, S_PENDING_ADD, &err)))
		return err;
	BIND_BLOB(s, 1, rel, RELM_ID_LEN);
	BIND_BLOB(s, 2, hash, RELM_ID_LEN);
	if (len)
		BIND_BLOB(s, 3, bytes, len);
	else
		sqlite3_bind_zeroblob(s, 3, 0);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)received_ms);
	err = run(st, s, "pending add");
	if (!err && sqlite3_changes(st->db) == 0)
		err = RELM_EDUP;
	return err;
}

int relm_store_pending_del(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                           const uint8_t hash[RELM_ID_LEN])
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (!(s = get_stmt(st, S_PENDING_DEL, &err)))
		return err;
	BIND_BLOB(s, 1, rel, RELM_ID_LEN);
	BIND_BLOB(s, 2, hash, RELM_ID_LEN);
	return run_one(st, s, "pending del");
}

int relm_store_pending_list(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                            int (*cb)(void *ctx, const uint8_t hash[RELM_ID_LEN],
                                      const uint8_t *bytes, size_t len, uint64_t received_ms),
                            void *ctx)
{
	sqlite3_stmt *s;
	int err = 0, rc;
	uint8_t h[RELM_ID_LEN];

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_PENDING_LIST, &err)))
		return err;
	BIND_BLOB(s, 1, rel, RELM_ID_LEN);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const uint8_t *b = sqlite3_column_blob(s, 1);
		size_t n = (size_t)sqlite3_column_bytes(s, 1);
		if ((err = col_fixed(s, 0, h, RELM_ID_LEN)) != 0 ||
		    (err = cb(ctx, h, b, n, (uint64_t)sqlite3_column_int64(s, 2))) != 0)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = store_fail(st, rc, "pending list");
	done(s);
	return err;
}

/* ---- messages ------------------------------------------------------------- */

int relm_store_msg_insert(struct relm_store *st, const struct relm_store_msg *m)
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (m->status < 0 || m->status > RELM_STATUS_FAILED || m->origin < RELM_ORIGIN_SELF ||
	    m->origin > RELM_ORIGIN_REMOTE || !text_ok(m->kind, RELM_STORE_KIND_MAX) ||
	    !text_ok(m->reason, RELM_STORE_REASON_MAX) || m->body_len > INT32_MAX)
		return RELM_EINVAL;
	if (!(s = get_stmt(st, S_MSG_INS, &err)))
		return err;
	BIND_BLOB(s, 1, m->rel, RELM_ID_LEN);
	BIND_BLOB(s, 2, m->id, RELM_ID_LEN);
	BIND_TEXT(s, 3, m->direction_in ? "in" : "out");
	BIND_TEXT(s, 4, origin_names[m->origin]);
	BIND_TEXT(s, 5, m->kind[0] ? m->kind : "text");
	if (m->body)
		BIND_BLOB(s, 6, m->body, m->body_len);
	sqlite3_bind_int64(s, 7, (sqlite3_int64)m->ts);
	BIND_TEXT(s, 8, status_names[m->status]);
	if (m->reason[0])
		BIND_TEXT(s, 9, m->reason);
	sqlite3_bind_int64(s, 10, (sqlite3_int64)m->created);
	err = run(st, s, "message insert");
	if (err)
		return err;
	return sqlite3_changes(st->db) == 1;
}

static int read_msg(sqlite3_stmt *s, struct relm_store_msg *m)
{
	int o, stt;

	memset(m, 0, sizeof *m);
	m->seq = sqlite3_column_int64(s, 0);
	if (col_fixed(s, 1, m->rel, RELM_ID_LEN) || col_fixed(s, 2, m->id, RELM_ID_LEN))
		return RELM_ESTATE;
	m->direction_in = strcmp((const char *)sqlite3_column_text(s, 3), "in") == 0;
	o = name_index(origin_names, 4, sqlite3_column_text(s, 4));
	stt = name_index(status_names, 5, sqlite3_column_text(s, 8));
	if (o < 1 || stt < 0)
		return RELM_ESTATE;
	m->origin = o;
	m->status = stt;
	col_text(s, 5, m->kind, sizeof m->kind);
	m->body = sqlite3_column_blob(s, 6);
	m->body_len = (size_t)sqlite3_column_bytes(s, 6);
	m->ts = (uint64_t)sqlite3_column_int64(s, 7);
	col_text(s, 9, m->reason, sizeof m->reason);
	m->created = (uint64_t)sqlite3_column_int64(s, 10);
	m->updated = (uint64_t)sqlite3_column_int64(s, 11);
	return 0;
}

int relm_store_msg_list(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                        int64_t before, unsigned limit,
                        int (*cb)(void *ctx, const struct relm_store_msg *m), void *ctx)
{
	struct relm_store_msg m;
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_MSG_LIST, &err)))
		return err;
	BIND_BLOB(s, 1, rel, RELM_ID_LEN);
	sqlite3_bind_int64(s, 2, before > 0 ? before : INT64_MAX);
	sqlite3_bind_int64(s, 3, limit ? (sqlite3_int64)limit : -1);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((err = read_msg(s, &m)) != 0 || (err = cb(ctx, &m)) != 0)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = store_fail(st, rc, "message list");
	done(s);
	return err;
}

static int msg_get(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                   const uint8_t id[RELM_ID_LEN], struct relm_store_msg *out,
                   uint8_t **body, size_t *body_len)
{
	struct relm_store_msg m;
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, body ? S_MSG_GET_BODY : S_MSG_GET, &err)))
		return err;
	BIND_BLOB(s, 1, rel, RELM_ID_LEN);
	BIND_BLOB(s, 2, id, RELM_ID_LEN);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		err = read_msg(s, &m);
	else
		err = rc == SQLITE_DONE ? RELM_ENOTFOUND : store_fail(st, rc, "message get");
	if (!err && body) {
		/* a copy with a NUL after it; the caller wipes it (relm_store_buf_free) */
		uint8_t *b = malloc(m.body_len + 1);
		if (!b) {
			err = RELM_ENOMEM;
		} else {
			if (m.body_len)
				memcpy(b, m.body, m.body_len);
			b[m.body_len] = 0;
			*body = b;
			*body_len = m.body_len;
		}
	}
	done(s);
	if (!err) {
		m.body = NULL;
		m.body_len = 0;
		*out = m;
	}
	return err;
}

int relm_store_msg_get(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                       const uint8_t id[RELM_ID_LEN], struct relm_store_msg *out)
{
	return msg_get(st, rel, id, out, NULL, NULL);
}

int relm_store_msg_get_body(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                            const uint8_t id[RELM_ID_LEN], struct relm_store_msg *out,
                            uint8_t **body, size_t *body_len)
{
	return msg_get(st, rel, id, out, body, body_len);
}

/* S_MSG_STATUS or S_MSG_ADVANCE with (rel, id, status, reason, now)
 * bound, or NULL and *err (RELM_EINVAL for a status or reason out of
 * range, or what preparing it failed with). */
static sqlite3_stmt *status_stmt(struct relm_store *st, int which, const uint8_t rel[RELM_ID_LEN],
                                 const uint8_t id[RELM_ID_LEN], int status, const char *reason,
                                 uint64_t now_ms, int *err)
{
	sqlite3_stmt *s;

	if (status < 0 || status > RELM_STATUS_FAILED ||
	    (reason && !text_ok(reason, RELM_STORE_REASON_MAX))) {
		*err = RELM_EINVAL;
		return NULL;
	}
	if (!(s = get_stmt(st, which, err)))
		return NULL;
	BIND_BLOB(s, 1, rel, RELM_ID_LEN);
	BIND_BLOB(s, 2, id, RELM_ID_LEN);
	BIND_TEXT(s, 3, status_names[status]);
	if (reason && reason[0])
		BIND_TEXT(s, 4, reason);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)now_ms);
	return s;
}

int relm_store_msg_set_status(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                              const uint8_t id[RELM_ID_LEN], int status,
                              const char *reason, uint64_t now_ms)
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (!(s = status_stmt(st, S_MSG_STATUS, rel, id, status, reason, now_ms, &err)))
		return err;
	return run_one(st, s, "message set status");
}

/* A STATUS effect.  Only our own messages move, and only forward: a
 * receipt naming an id we received, or naming one twice, changes nothing
 * (and apply_effects then says nothing to subscribers); nor does an id with
 * no history row (an automated message: receipts have none).  So the row
 * changes only if it is 'out', its status is not the new one, not
 * delivered and not failed, and — to become posted — it is queued.
 * Returns 1 if the row changed, 0 if not, or an error. */
static int msg_advance(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                       const uint8_t id[RELM_ID_LEN], int status, const char *reason,
                       uint64_t now_ms)
{
	sqlite3_stmt *s;
	int err = 0;

	if (!(s = status_stmt(st, S_MSG_ADVANCE, rel, id, status, reason, now_ms, &err)))
		return err;
	err = run(st, s, "message status");
	return err ? err : sqlite3_changes(st->db) == 1;
}

int relm_store_history_has(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                           const uint8_t id[RELM_ID_LEN])
{
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_MSG_HAS, &err)))
		return err;
	BIND_BLOB(s, 1, rel, RELM_ID_LEN);
	BIND_BLOB(s, 2, id, RELM_ID_LEN);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		err = 1;
	else if (rc == SQLITE_DONE)
		err = 0;
	else
		err = store_fail(st, rc, "history has");
	done(s);
	return err;
}

int relm_store_history_has_cb(void *ctx, const uint8_t rel[16], const uint8_t msg_id[16])
{
	return relm_store_history_has(ctx, rel, msg_id);
}

/* ---- outbox ------------------------------------------------------------------ */

int relm_store_outbox_add(struct relm_store *st, const struct relm_store_outbox *o, int64_t *seq_out)
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (!text_ok(o->dest, RELM_MAILBOX_ADDR_MAX) || !o->dest[0] || o->len > RELM_ENVELOPE_MAX)
		return RELM_EINVAL;
	if (!(s = get_stmt(st, S_OUTBOX_ADD, &err)))
		return err;
	if (o->has_rel)
		BIND_BLOB(s, 1, o->rel, RELM_ID_LEN);
	BIND_TEXT(s, 2, o->dest);
	if (o->len)
		BIND_BLOB(s, 3, o->bytes, o->len);
	else
		sqlite3_bind_zeroblob(s, 3, 0);
	if (o->has_msg)
		BIND_BLOB(s, 4, o->msg_id, RELM_ID_LEN);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)o->created);
	err = run(st, s, "outbox add");
	if (!err && seq_out)
		*seq_out = sqlite3_last_insert_rowid(st->db);
	return err;
}

int relm_store_outbox_next(struct relm_store *st, int64_t after, unsigned limit,
                           int (*cb)(void *ctx, const struct relm_store_outbox *o), void *ctx)
{
	struct relm_store_outbox o;
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_OUTBOX_NEXT, &err)))
		return err;
	sqlite3_bind_int64(s, 1, after);
	sqlite3_bind_int64(s, 2, limit ? (sqlite3_int64)limit : -1);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&o, 0, sizeof o);
		o.seq = sqlite3_column_int64(s, 0);
		if (sqlite3_column_type(s, 1) != SQLITE_NULL) {
			if ((err = col_fixed(s, 1, o.rel, RELM_ID_LEN)) != 0)
				break;
			o.has_rel = 1;
		}
		col_text(s, 2, o.dest, sizeof o.dest);
		o.bytes = sqlite3_column_blob(s, 3);
		o.len = (size_t)sqlite3_column_bytes(s, 3);
		if (sqlite3_column_type(s, 4) != SQLITE_NULL) {
			if ((err = col_fixed(s, 4, o.msg_id, RELM_ID_LEN)) != 0)
				break;
			o.has_msg = 1;
		}
		o.created = (uint64_t)sqlite3_column_int64(s, 5);
		if ((err = cb(ctx, &o)) != 0)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = store_fail(st, rc, "outbox next");
	done(s);
	return err;
}

int relm_store_outbox_mark_posted(struct relm_store *st, int64_t seq, uint64_t now_ms)
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (!(s = get_stmt(st, S_OUTBOX_POSTED, &err)))
		return err;
	sqlite3_bind_int64(s, 1, seq);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)now_ms);
	return run_one(st, s, "outbox mark posted");
}

int relm_store_outbox_purge_posted(struct relm_store *st)
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (!(s = get_stmt(st, S_OUTBOX_PURGE, &err)))
		return err;
	err = run(st, s, "outbox purge");
	return err ? err : sqlite3_changes(st->db);
}

/* ---- cursors ------------------------------------------------------------------ */

int relm_store_cursor_get(struct relm_store *st, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                          uint64_t *cursor)
{
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_CURSOR_GET, &err)))
		return err;
	BIND_BLOB(s, 1, mailbox, RELM_SIGN_PK_LEN);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*cursor = (uint64_t)sqlite3_column_int64(s, 0);
	else if (rc == SQLITE_DONE)
		*cursor = 0;
	else
		err = store_fail(st, rc, "cursor get");
	done(s);
	return err;
}

int relm_store_cursor_set(struct relm_store *st, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                          uint64_t cursor)
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (!(s = get_stmt(st, S_CURSOR_SET, &err)))
		return err;
	BIND_BLOB(s, 1, mailbox, RELM_SIGN_PK_LEN);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)cursor);
	return run(st, s, "cursor set");
}

/* ---- events ------------------------------------------------------------------- */

int relm_store_event_append(struct relm_store *st, const char *type, const char *json,
                            uint64_t ts, int64_t *seq_out)
{
	sqlite3_stmt *s;
	int err = 0;
	int64_t seq;

	CHECK_WRITABLE(st);
	if (!type || !type[0] || !json)
		return RELM_EINVAL;
	if (!(s = get_stmt(st, S_EVENT_ADD, &err)))
		return err;
	BIND_TEXT(s, 1, type);
	BIND_TEXT(s, 2, json);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)ts);
	if ((err = run(st, s, "event append")) != 0)
		return err;
	seq = sqlite3_last_insert_rowid(st->db);
	/* Retention by count: seq is dense (AUTOINCREMENT, never reused), so
	 * the newest `keep` events are exactly seq > seq - keep. */
	if (seq > (int64_t)st->event_keep) {
		if (!(s = get_stmt(st, S_EVENT_TRIM, &err)))
			return err;
		sqlite3_bind_int64(s, 1, seq - (int64_t)st->event_keep);
		if ((err = run(st, s, "event trim")) != 0)
			return err;
	}
	if (seq_out)
		*seq_out = seq;
	return 0;
}

int relm_store_event_list(struct relm_store *st, int64_t since, unsigned limit,
                          int (*cb)(void *ctx, int64_t seq, const char *type,
                                    const char *json, uint64_t ts), void *ctx)
{
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_EVENT_LIST, &err)))
		return err;
	sqlite3_bind_int64(s, 1, since);
	sqlite3_bind_int64(s, 2, limit ? (sqlite3_int64)limit : -1);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		err = cb(ctx, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
		         (const char *)sqlite3_column_text(s, 2), (uint64_t)sqlite3_column_int64(s, 3));
		if (err)
			break;
	}
	if (!err && rc != SQLITE_DONE)
		err = store_fail(st, rc, "event list");
	done(s);
	return err;
}

int relm_store_event_bounds(struct relm_store *st, int64_t *oldest, int64_t *last)
{
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_EVENT_BOUNDS, &err)))
		return err;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*oldest = sqlite3_column_int64(s, 0);
		*last = sqlite3_column_int64(s, 1);
	} else {
		err = store_fail(st, rc, "event bounds");
	}
	done(s);
	return err;
}

int relm_store_event_trim(struct relm_store *st, uint32_t keep)
{
	int64_t oldest = 0, last = 0;
	sqlite3_stmt *s;
	int err;

	CHECK_WRITABLE(st);
	if ((err = relm_store_event_bounds(st, &oldest, &last)) != 0)
		return err;
	if (last <= (int64_t)keep)
		return 0;
	if (!(s = get_stmt(st, S_EVENT_TRIM, &err)))
		return err;
	sqlite3_bind_int64(s, 1, last - (int64_t)keep);
	err = run(st, s, "event trim");
	return err ? err : sqlite3_changes(st->db);
}

/* ---- acks: acknowledgements waiting for the receipt timer (schema v4) ----- */

static int ack_bind(struct relm_store *st, enum stmt_id which, const uint8_t rel[RELM_ID_LEN],
                    const uint8_t id[RELM_ID_LEN], const uint8_t dh[RELM_KEY_LEN], uint32_t n,
                    sqlite3_stmt **out)
{
	sqlite3_stmt *s;
	int err = 0;

	if (!(s = get_stmt(st, which, &err)))
		return err;
	BIND_BLOB(s, 1, rel, RELM_ID_LEN);
	BIND_BLOB(s, 2, dh, RELM_KEY_LEN);
	sqlite3_bind_int64(s, 3, n);
	BIND_BLOB(s, 4, id, RELM_ID_LEN);
	*out = s;
	return 0;
}

int relm_store_ack_put(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                       const uint8_t id[RELM_ID_LEN], const uint8_t dh[RELM_KEY_LEN], uint32_t n)
{
	sqlite3_stmt *s = NULL;
	int err;

	CHECK_WRITABLE(st);
	if ((err = ack_bind(st, S_ACK_PUT, rel, id, dh, n, &s)) != 0)
		return err;
	return run(st, s, "ack put");     /* an ignored duplicate changes nothing: fine */
}

int relm_store_ack_del(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                       const uint8_t id[RELM_ID_LEN], const uint8_t dh[RELM_KEY_LEN], uint32_t n)
{
	sqlite3_stmt *s = NULL;
	int err;

	CHECK_WRITABLE(st);
	if ((err = ack_bind(st, S_ACK_DEL, rel, id, dh, n, &s)) != 0)
		return err;
	return run_one(st, s, "ack del");
}

int relm_store_ack_list(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                        int (*cb)(void *ctx, const uint8_t id[RELM_ID_LEN],
                                  const uint8_t dh[RELM_KEY_LEN], uint32_t n),
                        void *ctx)
{
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_ACK_LIST, &err)))
		return err;
	BIND_BLOB(s, 1, rel, RELM_ID_LEN);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		uint8_t dh[RELM_KEY_LEN], id[RELM_ID_LEN];
		sqlite3_int64 n = sqlite3_column_int64(s, 1);
		if (col_fixed(s, 0, dh, RELM_KEY_LEN) || col_fixed(s, 2, id, RELM_ID_LEN) ||
		    n < 0 || n > UINT32_MAX) {
			err = RELM_ESTATE;
			break;
		}
		if ((err = cb(ctx, id, dh, (uint32_t)n)) != 0)
			break;
	}
	if (!err && rc != SQLITE_DONE && rc != SQLITE_ROW)
		err = store_fail(st, rc, "ack list");
	done(s);
	return err;
}

/* ACK_PUT / ACK_DEL data: records of RELM_FX_ACK_LEN bytes (effects.h). */
static int apply_acks(struct relm_store *st, const uint8_t rel[RELM_ID_LEN], const struct relm_fx *f)
{
	if (f->len % RELM_FX_ACK_LEN != 0 || (f->len && !f->data))
		return RELM_EINVAL;
	for (size_t off = 0; off < f->len; off += RELM_FX_ACK_LEN) {
		const uint8_t *p = f->data + off;
		uint32_t n = relm_fx_ack_n(p);
		int err = f->type == RELM_FX_ACK_PUT
		        ? relm_store_ack_put(st, rel, p, p + RELM_FX_ACK_DH, n)
		        : relm_store_ack_del(st, rel, p, p + RELM_FX_ACK_DH, n);
		if (err == RELM_ENOTFOUND)
			err = 0;              /* never stored (out of memory at the time): nothing to do */
		if (err)
			return err;
	}
	return 0;
}

/* ---- effects ------------------------------------------------------------------ */

/* ---- outgoing: the retransmission queue (schema v2) ----------------------- */

int relm_store_outgoing_put(struct relm_store *st, const struct relm_store_outgoing *o)
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (o->body_len > RELM_ENVELOPE_MAX || o->ts > INT64_MAX || o->next_ms > INT64_MAX)
		return RELM_EINVAL;
	if (!(s = get_stmt(st, S_OUT_PUT, &err)))
		return err;
	BIND_BLOB(s, 1, o->rel, RELM_ID_LEN);
	BIND_BLOB(s, 2, o->id, RELM_ID_LEN);
	sqlite3_bind_int(s, 3, o->kind);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)o->ts);
	sqlite3_bind_blob(s, 5, o->body ? (const void *)o->body : "", (int)o->body_len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, o->tries);
	sqlite3_bind_int64(s, 7, (sqlite3_int64)o->next_ms);
	BIND_BLOB(s, 8, o->last_node, RELM_ID_LEN);
	return run_one(st, s, "outgoing put");
}

int relm_store_outgoing_del(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                            const uint8_t id[RELM_ID_LEN])
{
	sqlite3_stmt *s;
	int err = 0;

	CHECK_WRITABLE(st);
	if (!(s = get_stmt(st, S_OUT_DEL, &err)))
		return err;
	BIND_BLOB(s, 1, rel, RELM_ID_LEN);
	BIND_BLOB(s, 2, id, RELM_ID_LEN);
	if ((err = run_one(st, s, "outgoing del")) != 0)
		return err;
	return sqlite3_changes(st->db) ? 0 : RELM_ENOTFOUND;
}

int relm_store_outgoing_due(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                            uint64_t now_ms, unsigned limit,
                            int (*cb)(void *ctx, const struct relm_store_outgoing *o), void *ctx)
{
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, S_OUT_DUE, &err)))
		return err;
	BIND_BLOB(s, 1, rel, RELM_ID_LEN);
	sqlite3_bind_int64(s, 2, now_ms > INT64_MAX ? INT64_MAX : (sqlite3_int64)now_ms);
	sqlite3_bind_int64(s, 3, limit ? (sqlite3_int64)limit : -1);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct relm_store_outgoing o;
		memset(&o, 0, sizeof o);
		memcpy(o.rel, rel, RELM_ID_LEN);
		if (col_fixed(s, 0, o.id, RELM_ID_LEN) || col_fixed(s, 6, o.last_node, RELM_ID_LEN)) {
			err = RELM_ESTATE;
			break;
		}
		o.kind = sqlite3_column_int(s, 1);
		o.ts = (uint64_t)sqlite3_column_int64(s, 2);
		o.body = sqlite3_column_blob(s, 3);
		o.body_len = (size_t)sqlite3_column_bytes(s, 3);
		o.tries = (uint32_t)sqlite3_column_int64(s, 4);
		o.next_ms = (uint64_t)sqlite3_column_int64(s, 5);
		if ((err = cb(ctx, &o)) != 0)
			break;
	}
	if (!err && rc != SQLITE_DONE && rc != SQLITE_ROW)
		err = store_fail(st, rc, "outgoing due");
	done(s);
	return err;
}

static int out_scalar(struct relm_store *st, int which, const uint8_t rel[RELM_ID_LEN],
                      uint64_t *out, const char *what)
{
	sqlite3_stmt *s;
	int err = 0, rc;

	CHECK_USABLE(st);
	if (!(s = get_stmt(st, which, &err)))
		return err;
	BIND_BLOB(s, 1, rel, RELM_ID_LEN);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_type(s, 0) == SQLITE_NULL ? 0 : (uint64_t)sqlite3_column_int64(s, 0);
	else if (rc == SQLITE_DONE)
		*out = 0;                  /* outgoing_count: no row yet */
	else
		err = store_fail(st, rc, what);
	done(s);
	return err;
}

int relm_store_outgoing_next(struct relm_store *st, const uint8_t rel[RELM_ID_LEN], uint64_t *next)
{
	return out_scalar(st, S_OUT_NEXT, rel, next, "outgoing next");
}

int relm_store_outgoing_count(struct relm_store *st, const uint8_t rel[RELM_ID_LEN], uint64_t *n)
{
	return out_scalar(st, S_OUT_COUNT, rel, n, "outgoing count");
}

/* Minimal JSON string escaping for a reason text (no secrets reach here). */
static void json_escape(char *out, size_t cap, const char *in)
{
	size_t o = 0;

	for (; *in && o + 7 < cap; in++) {
		unsigned char c = (unsigned char)*in;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

static int is_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

int relm_store_apply_effects(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                             const char *dest, const struct relm_effects *fx, uint64_t now_ms)
{
	char relhex[2 * RELM_ID_LEN + 1], msghex[2 * RELM_ID_LEN + 1];
	char json[512], esc[2 * sizeof fx->v[0].detail];
	struct relm_store_rel r;
	int err = 0, have_dest = dest != NULL;

	CHECK_WRITABLE(st);
	memset(&r, 0, sizeof r);
	relm_hex(relhex, rel, RELM_ID_LEN);
	for (size_t i = 0; i < fx->n && !err; i++) {
		const struct relm_fx *f = &fx->v[i];
		relm_hex(msghex, f->msg_id, RELM_ID_LEN);
		switch (f->type) {
		case RELM_FX_POST: {
			struct relm_store_outbox o;
			const char *to = f->to[0] ? f->to : NULL;   /* the engine's own choice wins */
			if (!to && !have_dest) {
				if ((err = relm_store_rel_get(st, rel, &r, 0)) != 0)
					break;
				if (!r.remote_addr[0]) {
					err = RELM_ESTATE;
					break;
				}
				dest = r.remote_addr;
				have_dest = 1;
			}
			memset(&o, 0, sizeof o);
			memcpy(o.rel, rel, RELM_ID_LEN);
			o.has_rel = 1;
			snprintf(o.dest, sizeof o.dest, "%s", to ? to : dest);
			o.bytes = f->data;
			o.len = f->len;
			memcpy(o.msg_id, f->msg_id, RELM_ID_LEN);
			o.has_msg = !is_zero(f->msg_id, RELM_ID_LEN);
			o.created = now_ms;
			err = relm_store_outbox_add(st, &o, NULL);
			break;
		}
		case RELM_FX_DELIVER: {
			struct relm_store_msg m;
			int isnew;
			memset(&m, 0, sizeof m);
			memcpy(m.rel, rel, RELM_ID_LEN);
			memcpy(m.id, f->msg_id, RELM_ID_LEN);
			m.direction_in = !!f->direction_in;
			m.origin = f->origin ? f->origin : (f->direction_in ? RELM_ORIGIN_REMOTE : RELM_ORIGIN_SELF);
			/* unknown kinds keep the name they had on the wire (rel.c puts it in detail) */
			snprintf(m.kind, sizeof m.kind, "%.*s", (int)sizeof m.kind - 1,
			         f->kind == RELM_KIND_UNKNOWN && f->detail[0] ? f->detail : relm_kind_name(f->kind));
			m.body = f->data;
			m.body_len = f->len;
			m.ts = f->ts;
			m.status = f->direction_in ? RELM_STATUS_NONE : RELM_STATUS_QUEUED;
			m.created = now_ms;
			isnew = relm_store_msg_insert(st, &m);
			if (isnew < 0) {
				err = isnew;
				break;
			}
			if (!isnew)
				break;
			if (f->direction_in && (err = rel_inc_unread(st, rel)) != 0)
				break;
			snprintf(json, sizeof json, "{\"relationship\":\"%s\",\"message\":\"%s\"}", relhex, msghex);
			err = relm_store_event_append(st, f->direction_in ? "message.received" : "message.sent",
			                              json, now_ms, NULL);
			break;
		}
		case RELM_FX_STATUS:
			if (f->status < 0 || f->status > RELM_STATUS_FAILED) {
				err = RELM_EINVAL;
				break;
			}
			{
				int moved = msg_advance(st, rel, f->msg_id, f->status, f->detail, now_ms);
				if (moved <= 0) {
					err = moved;
					break;
				}
			}
			json_escape(esc, sizeof esc, f->detail);
			snprintf(json, sizeof json,
			         "{\"relationship\":\"%s\",\"message\":\"%s\",\"status\":\"%s\"%s%s%s}",
			         relhex, msghex, status_names[f->status],
			         esc[0] ? ",\"reason\":\"" : "", esc, esc[0] ? "\"" : "");
			err = relm_store_event_append(st, "message.status", json, now_ms, NULL);
			break;
		case RELM_FX_EVENT:
			if (!f->event) {
				err = RELM_EINVAL;
				break;
			}
			if (f->detail[0] == '{') {
				snprintf(json, sizeof json, "%s", f->detail);
			} else if (f->detail[0] == '"') {
				snprintf(json, sizeof json, "{\"relationship\":\"%s\",%s}", relhex, f->detail);
			} else {
				json_escape(esc, sizeof esc, f->detail);
				snprintf(json, sizeof json, "{\"relationship\":\"%s\"%s%s%s}", relhex,
				         esc[0] ? ",\"detail\":\"" : "", esc, esc[0] ? "\"" : "");
			}
			err = relm_store_event_append(st, f->event, json, now_ms, NULL);
			break;
		case RELM_FX_PENDING_ADD:
			err = relm_store_pending_add(st, rel, f->hash, f->data, f->len, f->ts ? f->ts : now_ms);
			if (err == RELM_EDUP)
				err = 0;
			break;
		case RELM_FX_PENDING_DEL:
			err = relm_store_pending_del(st, rel, f->hash);
			if (err == RELM_ENOTFOUND)
				err = 0;
			break;
		case RELM_FX_OUT_PUT: {
			struct relm_store_outgoing o;
			memset(&o, 0, sizeof o);
			memcpy(o.rel, rel, RELM_ID_LEN);
			memcpy(o.id, f->msg_id, RELM_ID_LEN);
			o.kind = f->kind;
			o.ts = f->ts;
			o.body = f->data;
			o.body_len = f->len;
			o.tries = f->tries;
			o.next_ms = f->next_ms;
			memcpy(o.last_node, f->node, RELM_ID_LEN);
			err = relm_store_outgoing_put(st, &o);
			break;
		}
		case RELM_FX_OUT_DEL:
			err = relm_store_outgoing_del(st, rel, f->msg_id);
			if (err == RELM_ENOTFOUND)
				err = 0;
			break;
		case RELM_FX_ACK_PUT:
		case RELM_FX_ACK_DEL:
			err = apply_acks(st, rel, f);
			break;
		case RELM_FX_NONE:
			break;
		default:
			err = RELM_EINVAL;
		}
	}
	sodium_memzero(&r, sizeof r);
	return err;
}

/* ---- test internals ------------------------------------------------------- */

struct sqlite3 *relm__store_db(struct relm_store *st)
{
	return st->db;
}

uint64_t relm__store_vm_steps(struct relm_store *st, int reset)
{
	uint64_t n = 0;
	for (int i = 0; i < S_COUNT; i++)
		if (st->stmt[i])
			n += (uint64_t)sqlite3_stmt_status(st->stmt[i], SQLITE_STMTSTATUS_VM_STEP, reset);
	return n;
}

/*
 * store_int.h — what the files of lib/store share (store.h is the contract
 * for everyone else).
 *
 * The store is cut as SQLite cuts itself, one concern per file:
 *
 *   db.c        the connection: open / close, pragmas, errors (the one
 *               place that decides what is sticky), the transaction state
 *               machine, the statement cache
 *   schema.c    the schema and its forward migrations
 *   stage.c     relationship columns staged in memory during a transaction
 *   protons.c   protons                  invites.c   invites, replay guard
 *   devices.c   devices, this device's invite keys, circles
 *   rels.c      relationships, timers, pending envelopes
 *   messages.c  history                  outbox.c    outbox, cursors, mailboxes
 *   events.c    the event log            outgoing.c  retransmissions, acks
 *
 * A new file: add its statements' slots to RELM__STORE_SLOTS below, define
 * their text with RELM__SQL beside the functions that run them, and run
 * them with the q_* helpers.
 *
 * One statement helper.  Every statement is prepared once per handle
 * (SQLITE_PREPARE_PERSISTENT, on first use) and cached in its slot.  A
 * write is one line, its parameters ?1, ?2, ... listed in order:
 *
 *     return Q_EXEC_ONE(st, PROTON_STRATEGY, A_ID(id), A_TEXT(strategy));
 *
 * (step, reset, RELM_ENOTFOUND if no row changed).  A read opens the
 * statement with its parameters, steps with q_row (one row) or q_step (a
 * loop), reads columns with q_fixed / q_textcpy / q_i64 ..., and ends with
 * q_end(&q, rc), which resets, clears the bindings and passes rc through:
 *
 *     struct relm__q q;
 *     Q_OPEN(&q, st, CURSOR_GET, A_BLOB(mailbox, RELM_SIGN_PK_LEN));
 *     if ((rc = q_row(&q)) == 0)
 *             *cursor = q_col_u64(&q, 0);
 *     return q_end(&q, rc);
 *
 * The first failure (preparing, binding, stepping) is carried along in the
 * struct, so a function checks once.  Nothing allocates: the parameter
 * list is an array on the caller's stack, and parameters are bound
 * SQLITE_STATIC, so SQLite copies no secret of the caller's; clearing them
 * on every path leaves no pointer behind.  The helpers have short names
 * (q_*, Q_*, A_*): every function of every store file is made of them.
 */
#ifndef RELM_STORE_INT_H
#define RELM_STORE_INT_H

#include <assert.h>
#include <stdint.h>
#include <string.h>
#include <sqlite3.h>
#include "error.h"
#include "store/store.h"

/* ---- the transaction state machine (diagram in store.h) --------------- */

enum relm__store_state {
	RELM__ST_NONE = 0,       /* not open (never seen by callers) */
	RELM__ST_IDLE,
	RELM__ST_BATCH,
	RELM__ST_STEP,           /* a step that is its own transaction */
	RELM__ST_BATCH_STEP,     /* a step inside a batch: SAVEPOINT step */
	RELM__ST_ERROR,
};

/* ---- staging (stage.c) ------------------------------------------------ */

enum {
	RELM__STAGE_STATE  = 1u << 0,     /* state + last_activity */
	RELM__STAGE_DL     = 1u << 1,     /* deadline */
	RELM__STAGE_UNREAD = 1u << 3,     /* unread set absolutely (unread_add still adds) */
	RELM__STAGE_OUT    = 1u << 4,     /* outgoing_count set to 0 (out_add still adds) */
};

struct relm__stage_ent {
	uint8_t id[RELM_ID_LEN];
	unsigned mask;               /* RELM__STAGE_* */
	int owned;                   /* state is ours to free (not the undo log's) */
	uint64_t gen;                /* the step that last saved it to the undo log */
	uint8_t *state;              /* secret */
	size_t state_len;
	uint64_t last_activity, deadline;
	uint32_t unread, unread_add;
	int64_t out_add;             /* outgoing rows inserted minus deleted (outgoing.c) */
};

struct relm__stage_undo {
	uint32_t idx;                /* into ents: entries never move index */
	struct relm__stage_ent saved;  /* owns saved.state */
};

struct relm__stage {
	struct relm__stage_ent *ents;  /* dense, in first-touch order */
	uint32_t n, cap;
	uint32_t *slots;             /* open addressing: 0 empty, else index + 1 */
	uint32_t nslots;             /* power of two, or 0 */
	struct relm__stage_undo *undo; /* the open batched step's undo log */
	uint32_t nundo, capundo;
	uint64_t gen;                /* generation of the open step (0 = none) */
};

/* ---- events in memory until drained (evmem.c) -------------------------- */

enum { RELM__EVMEM_MAX = 4096 };       /* records between two drains, at most */

struct relm__evrec {
	int64_t seq;
	uint64_t ts;
	struct relm_event ev;          /* as a read of its row gives it back */
	char reason[RELM_EVENT_REASON_MAX + 1];
	char table[RELM_EVENT_TABLE_MAX + 1];
};

struct relm__evmem {
	struct relm__evrec *v;         /* appended, not drained, in seq order */
	uint32_t n, cap;
	uint32_t ncommitted;           /* v[0 .. ncommitted) are committed */
	uint32_t mark;                 /* n when the open batched step began */
	int valid;                     /* covered is known (a drain read the log once) */
	int lost;                      /* a record was not kept: the next drain reads the log */
	int64_t covered;               /* memory holds every committed event with seq > covered */
};

/* ---- statements -------------------------------------------------------- */

/* One slot per statement, grouped by the file that defines its text. */
#define RELM__STORE_SLOTS(X)                                                    \
	/* db.c */       X(STEP_BEGIN) X(STEP_RELEASE) X(STEP_UNDO)                  \
	/* protons.c */  X(PROTON_PUT) X(PROTON_GET) X(PROTON_LIST) X(PROTON_STRATEGY) \
	                 X(PROTON_IDENTITY)                                          \
	/* devices.c */  X(DEVICE_PUT) X(DEVICE_LIST) X(DEVICE_SELF) X(DEVICE_ALL) X(DEVICE_DEL)     \
	                 X(DEVKEYS_PUT) X(DEVKEYS_GET) X(DEVKEYS_BY_MBOX)            \
	                 X(CIRCLE_PUT) X(CIRCLE_GET) X(SIB_PUT) X(SIB_FIND) X(SIB_GET)  \
	/* pairings.c */ X(PAIRING_PUT) X(PAIRING_GET) X(PAIRING_BY_MBOX) X(PAIRING_DEL) X(PAIRING_IDS) \
	/* invites.c */  X(INVITE_PUT) X(INVITE_GET) X(INVITE_LIST) X(INVITE_BY_MBOX) X(INVITE_USED) \
	                 X(INVITE_EXPIRE) X(INVITE_EXPIRED) X(INVITE_CURSORS) X(REPLAY_INS)                               \
	/* stage.c */    X(REL_EXISTS) X(REL_FLUSH_STATE) X(REL_FLUSH) X(REL_FLUSH_OUT)     \
	/* rels.c */     X(REL_PUT) X(REL_GET) X(REL_GET_STATE) X(REL_STATE_BY_MBOX)  \
	                 X(REL_BY_MBOX) X(REL_BY_REMOTE) X(REL_LIST) X(REL_ALL) X(REL_DUE) X(REL_NEXT_DEADLINE) \
	                 X(REL_DEADLINES) X(PENDING_ADD) X(PENDING_DEL) X(PENDING_LIST) \
	                 X(REL_DEL) X(REL_REMOTE_IPK)                                \
	/* messages.c */ X(MSG_INS) X(MSG_LIST) X(MSG_LIST_ASC) X(MSG_GET) X(MSG_GET_BODY) \
	                 X(MSG_STATUS) X(MSG_ADVANCE) X(MSG_ADVANCE_MANY) X(MSG_HAS) X(MSG_ALL) \
	/* outbox.c */   X(OUTBOX_ADD) X(OUTBOX_NEXT) X(OUTBOX_POSTED) X(OUTBOX_PURGE) X(OUTBOX_PURGE_SOME) \
	                 X(CURSOR_GET) X(CURSOR_SET) X(MBOX_LIST) X(MBOX_SECRET)      \
	/* events.c */   X(EVENT_ADD) X(EVENT_TRIM) X(EVENT_TRIM_KEEP) X(EVENT_LIST) X(EVENT_BOUNDS) \
	/* outgoing.c */ X(OUT_PUT) X(OUT_ADD) X(OUT_TRY) X(OUT_DEL) X(OUT_DEL_MANY) X(OUT_DUE) X(OUT_NEXT) X(OUT_COUNT) X(OUT_COUNT_SCAN)    \
	                 X(ACK_PUT) X(ACK_DEL) X(ACK_LIST)                            \
	/* requests.c */ X(REQ_PUT) X(REQ_DEL) X(REQ_LIST) X(REQ_COUNT) X(REQ_HAS)              \
	/* stateless.c */ X(SL_PUT) X(SL_DEL) X(SL_SRC) X(SL_LIST) X(SL_OUT) X(SL_ACKS) X(SL_PENDING)

enum relm__slot {
#define X(name) RELM__S_##name,
	RELM__STORE_SLOTS(X)
#undef X
	RELM__S_COUNT
};

struct relm__sql {
	enum relm__slot slot;
	const char *text;
};

/* RELM__SQL(NAME, "SELECT ...") defines sql_NAME, the statement of slot
 * RELM__S_NAME, in the file that runs it (q_begin(&q, st, NAME)). */
#define RELM__SQL(name, text) \
	static const struct relm__sql sql_##name = { RELM__S_##name, text }

struct relm_store {
	sqlite3 *db;
	enum relm__store_state state;
	int err;                     /* sticky error (ERROR state) */
	uint32_t event_keep;
	int event_trim_due;          /* events appended past event_keep in the open transaction */
	char msg[256];
	relm_store_bad_row_fn bad_row;   /* told of each row that fails its check */
	void *bad_row_ctx;
	relm_store_bad_row_fn check_sink; /* relm_store_check's own listener, while it runs */
	void *check_ctx;
	sqlite3_stmt *stmt[RELM__S_COUNT];
	const char *stmt_text[RELM__S_COUNT];   /* the text each slot was prepared from */
	struct relm__stage stage;
	struct relm_store_hooks hooks;   /* relm_store_set_hooks */
	void *hooks_ctx;
	struct relm__evmem evmem;
	/* relm_store_devices_gen: moved by every write to devices or protons
	 * and by every rollback (a step's or a transaction's) */
	uint64_t devices_gen;
};

/* ---- db.c -------------------------------------------------------------- */

/* The one place SQLite failures are judged: maps rc to a RELM_E* code,
 * records the message ("what: sqlite's message", never row data) and, for
 * a sticky rc, rolls back and enters ERROR.  Returns the code. */
int relm__store_fail(struct relm_store *st, int rc, const char *what);
/* sqlite3_exec of sql (no parameters, not cached): 0 or relm__store_fail. */
int relm__store_exec(struct relm_store *st, const char *sql, const char *what);
/* Prepare and cache sql's statement; NULL and *err on failure. */
sqlite3_stmt *relm__store_prepare(struct relm_store *st, const struct relm__sql *sql, int *err);
/* The name of a slot ("PROTON_PUT"), for messages. */
const char *relm__store_slot_name(enum relm__slot slot);
/* SQLite's code → RELM_E* (no side effect). */
int relm__store_map_rc(int rc);
/* 1 if s is a string of at most max bytes. */
int relm__store_text_ok(const char *s, size_t max);

#define CHECK_USABLE(st) do { \
	assert((st) && (st)->state != RELM__ST_NONE); \
	if ((st)->state == RELM__ST_ERROR) return (st)->err; \
} while (0)

#define CHECK_WRITABLE(st) do { \
	CHECK_USABLE(st); \
	assert(((st)->state == RELM__ST_STEP || (st)->state == RELM__ST_BATCH_STEP) && \
	       "store write outside relm_store_begin/commit"); \
} while (0)

/* ---- check.c: values read back are checked like input (store.md §5.1) -- */

struct relm__q;

/* Column col is TEXT (or NULL when may_null) of at most max bytes of
 * relm_text_ok text: 1 yes, 0 no. */
int relm__col_text_ok(const struct relm__q *q, int col, size_t max, int may_null);
/* Column col is an INTEGER. */
int relm__col_int_ok(const struct relm__q *q, int col);
/* Row `row` of `table` failed its check (why: a short phrase, no row data):
 * the listeners are told, with the ids the record holds that were read
 * (rel, msg, proton, device, each NULL if not).  Returns RELM_EBADROW. */
int relm__store_bad_row(struct relm_store *st, const char *table, int64_t row, const char *why,
                        const uint8_t *rel, const uint8_t *msg, const uint8_t *proton,
                        const uint8_t *device);

/* Every row of a table through its reader (relm_store_check): 0 or an
 * error of the statement; bad rows go to the listeners. */
int relm__msg_scan(struct relm_store *st);
int relm__proton_scan(struct relm_store *st);
int relm__device_scan(struct relm_store *st);
/* outgoing_count against count(*) of outgoing, every relationship (and
 * what the open transaction staged): a relationship whose count differs
 * goes to the listeners, table "outgoing_count". */
int relm__outcount_scan(struct relm_store *st);
int relm__rel_scan(struct relm_store *st);

/* ---- events.c ---------------------------------------------------------- */

/* The transaction is about to commit: trim the event log to event_keep if
 * it grew past it (once per transaction, not per event).  0 or an error. */
int relm__event_trim_flush(struct relm_store *st);

/* A record just inserted with seq at ts (events.c); the transaction
 * ends (db.c).  Nothing fails: a record not kept makes the next drain
 * read the log. */
void relm__evmem_append(struct relm_store *st, int64_t seq, uint64_t ts, const struct relm_event *ev);
void relm__evmem_step_begin(struct relm__evmem *m);
void relm__evmem_step_undo(struct relm__evmem *m);
void relm__evmem_commit(struct relm__evmem *m);
void relm__evmem_rollback(struct relm__evmem *m);
void relm__evmem_free(struct relm__evmem *m);

/* ---- schema.c ---------------------------------------------------------- */

/* Bring the open file to RELM_STORE_SCHEMA_VERSION, one transaction per
 * version.  0 or an error (st->msg says more; the file is at the last
 * version that committed). */
int relm__store_migrate(struct relm_store *st);
/* PRAGMA user_version of db: 0 and *v, or -1 and *rc. */
int relm__store_user_version(sqlite3 *db, int *v, int *rc);

/* ---- stage.c ----------------------------------------------------------- */

struct relm__stage_ent *relm__stage_find(const struct relm__stage *sg, const uint8_t id[RELM_ID_LEN]);
/* The staging entry of relationship id for a write in the open step (see
 * stage.c).  0, RELM_ENOTFOUND (no such row), RELM_ENOMEM. */
int relm__stage_touch(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                      struct relm__stage_ent **out);
/* Replace an entry's state blob with a copy of state.  0 or RELM_ENOMEM. */
int relm__stage_set_state(struct relm__stage_ent *e, const uint8_t *state, size_t len);
/* Write back every staged entry (the transaction is about to commit). */
int relm__stage_flush(struct relm_store *st);
/* outgoing.c's count of rel's rows: `add` more (negative: fewer), after
 * setting it to 0 if `zero` (every row deleted).  0 or an error (the
 * relationship's row does not exist: RELM_ENOTFOUND). */
int relm__stage_outgoing(struct relm_store *st, const uint8_t rel[RELM_ID_LEN], int64_t add, int zero);
/* *n, the count outgoing_count holds for rel, made what the open
 * transaction staged. */
int relm__stage_outgoing_count(const struct relm__stage *sg, const uint8_t rel[RELM_ID_LEN], int64_t *n);
/* A reader's view of a row: the file's columns overlaid with the staged. */
void relm__stage_overlay(const struct relm__stage *sg, struct relm_store_rel *r);
/* The batched step is released / rolled back; the transaction ended; the
 * handle is closed. */
void relm__stage_release(struct relm__stage *sg);
void relm__stage_undo(struct relm__stage *sg);
void relm__stage_reset(struct relm__stage *sg);
void relm__stage_destroy(struct relm__stage *sg);

/* Staged deadlines, for rels.c's deadline queries. */
struct relm__dl_item {
	uint64_t dl;
	uint8_t id[RELM_ID_LEN];
};
/* Staged deadlines in (0, upto], earliest first (*out malloc'd, or NULL);
 * *any = some entry has a staged deadline at all.  0 or RELM_ENOMEM. */
int relm__stage_deadlines(const struct relm__stage *sg, uint64_t upto,
                          struct relm__dl_item **out, size_t *n, int *any);

/* ---- the statement helper ---------------------------------------------- */

struct relm__q {
	struct relm_store *st;
	sqlite3_stmt *s;             /* NULL when preparing failed */
	enum relm__slot slot;
	int err;                     /* the first failure (preparing, binding, stepping) */
	int i;                       /* the next parameter */
};

static inline void q_begin_(struct relm__q *q, struct relm_store *st, const struct relm__sql *sql)
{
	q->st = st;
	q->slot = sql->slot;
	q->err = 0;
	q->i = 1;
	q->s = st->stmt[sql->slot];
	if (!q->s)
		q->s = relm__store_prepare(st, sql, &q->err);
	/* two texts in one slot would be a copy-paste slip: the first wins */
	assert(!q->s || st->stmt_text[sql->slot] == sql->text);
}
#define q_begin(q, st, NAME) q_begin_((q), (st), &sql_##NAME)

static inline void q_bound(struct relm__q *q, int rc)
{
	if (rc != SQLITE_OK && !q->err)
		q->err = relm__store_fail(q->st, rc, relm__store_slot_name(q->slot));
	q->i++;
}

/* The next parameter is left NULL. */
static inline void q_null(struct relm__q *q)
{
	q->i++;
}

/* n bytes at p; n == 0 binds an empty BLOB, not NULL. */
static inline void q_blob(struct relm__q *q, const void *p, size_t n)
{
	if (!q->s || q->err)
		q->i++;
	else if (n > INT32_MAX)
		q_bound(q, SQLITE_TOOBIG);
	else
		q_bound(q, n ? sqlite3_bind_blob(q->s, q->i, p, (int)n, SQLITE_STATIC)
		             : sqlite3_bind_zeroblob(q->s, q->i, 0));
}

/* A NUL-terminated string; NULL binds NULL. */
static inline void q_text(struct relm__q *q, const char *s)
{
	if (!q->s || q->err || !s)
		q->i++;
	else
		q_bound(q, sqlite3_bind_text(q->s, q->i, s, -1, SQLITE_STATIC));
}

static inline void q_int(struct relm__q *q, int64_t v)
{
	if (!q->s || q->err)
		q->i++;
	else
		q_bound(q, sqlite3_bind_int64(q->s, q->i, v));
}

/* ---- parameter lists ---- */

struct relm__arg {
	enum { RELM__A_NULL = 0, RELM__A_BLOB, RELM__A_TEXT, RELM__A_INT } kind;
	const void *p;
	size_t n;
	int64_t v;
};

/* One parameter each: NULL; n bytes at p (n == 0: an empty BLOB, not
 * NULL); the same only if c, else NULL; a 16-byte id; a NUL-terminated
 * string (NULL: NULL); an integer (unsigned values stored as SQLite's
 * int64, as every time and counter is). */
#define A_NULL                  { .kind = RELM__A_NULL }
#define A_BLOB(ptr, len)        { .kind = RELM__A_BLOB, .p = (ptr), .n = (len) }
#define A_BLOB_IF(c, ptr, len)  { .kind = (c) ? RELM__A_BLOB : RELM__A_NULL, .p = (ptr), .n = (len) }
#define A_ID(ptr)               A_BLOB(ptr, RELM_ID_LEN)
#define A_TEXT(s)               { .kind = (s) ? RELM__A_TEXT : RELM__A_NULL, .p = (s) }
#define A_INT(x)                { .kind = RELM__A_INT, .v = (int64_t)(x) }

static inline void q_args(struct relm__q *q, const struct relm__arg *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (a[i].kind) {
		case RELM__A_BLOB: q_blob(q, a[i].p, a[i].n); break;
		case RELM__A_TEXT: q_text(q, a[i].p); break;
		case RELM__A_INT:  q_int(q, a[i].v); break;
		default:           q_null(q); break;
		}
	}
}

/* The list as an array and its length (at least one parameter). */
#define Q_ARGS(...) (const struct relm__arg[]){ __VA_ARGS__ }, \
	sizeof (const struct relm__arg[]){ __VA_ARGS__ } / sizeof (struct relm__arg)

/* Begin statement NAME with its parameters (a read; q_end after). */
#define Q_OPEN(q, st, NAME, ...) (q_begin((q), (st), NAME), q_args((q), Q_ARGS(__VA_ARGS__)))

/* Step: 1 with a row, 0 at the end, or a negative error (judged once). */
static inline int q_step(struct relm__q *q)
{
	int rc;

	if (q->err)
		return q->err;
	rc = sqlite3_step(q->s);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return q->err = relm__store_fail(q->st, rc, relm__store_slot_name(q->slot));
}

/* Reset and clear the bindings; returns rc. */
static inline int q_end(struct relm__q *q, int rc)
{
	if (q->s) {
		sqlite3_reset(q->s);
		sqlite3_clear_bindings(q->s);
	}
	return rc;
}

/* One row expected: 0 with it (read it, then q_end), RELM_ENOTFOUND, or
 * an error. */
static inline int q_row(struct relm__q *q)
{
	int rc = q_step(q);
	return rc > 0 ? 0 : rc == 0 ? RELM_ENOTFOUND : rc;
}

/* Run a statement whose rows do not matter, and end it: 0 or an error. */
static inline int q_exec(struct relm__q *q)
{
	int rc = q_step(q);
	return q_end(q, rc < 0 ? rc : 0);
}

/* Rows the last INSERT / UPDATE / DELETE changed. */
static inline int q_changes(const struct relm__q *q)
{
	return sqlite3_changes(q->st->db);
}

/* q_exec for a single-row UPDATE / DELETE: RELM_ENOTFOUND if none changed. */
static inline int q_exec_one(struct relm__q *q)
{
	int rc = q_exec(q);
	return rc == 0 && q_changes(q) == 0 ? RELM_ENOTFOUND : rc;
}

/* A whole write: statement sql with parameters a[0..n), run and ended.
 * how: 0 → 0 or an error; 1 → RELM_ENOTFOUND if no row changed; 2 → the
 * number of rows changed (>= 0) or an error. */
static inline int q_run(struct relm_store *st, const struct relm__sql *sql,
                        const struct relm__arg *a, size_t n, int how)
{
	struct relm__q q;
	int rc;

	q_begin_(&q, st, sql);
	q_args(&q, a, n);
	if (how == 1)
		return q_exec_one(&q);
	rc = q_exec(&q);
	return how == 2 && rc == 0 ? q_changes(&q) : rc;
}
#define Q_EXEC(st, NAME, ...)     q_run((st), &sql_##NAME, Q_ARGS(__VA_ARGS__), 0)
#define Q_EXEC_ONE(st, NAME, ...) q_run((st), &sql_##NAME, Q_ARGS(__VA_ARGS__), 1)
#define Q_CHANGES(st, NAME, ...)  q_run((st), &sql_##NAME, Q_ARGS(__VA_ARGS__), 2)

/* ---- columns ---- */

static inline int q_isnull(const struct relm__q *q, int col)
{
	return sqlite3_column_type(q->s, col) == SQLITE_NULL;
}

static inline int64_t q_i64(const struct relm__q *q, int col)
{
	return sqlite3_column_int64(q->s, col);
}

static inline uint64_t q_col_u64(const struct relm__q *q, int col)
{
	return (uint64_t)sqlite3_column_int64(q->s, col);
}

/* A BLOB column as a view (valid until the next step or q_end). */
static inline const uint8_t *q_blobv(const struct relm__q *q, int col, size_t *len)
{
	const uint8_t *p = sqlite3_column_blob(q->s, col);
	*len = (size_t)sqlite3_column_bytes(q->s, col);
	return p;
}

static inline const char *q_str(const struct relm__q *q, int col)
{
	return (const char *)sqlite3_column_text(q->s, col);
}

/* Copy a BLOB column of exactly len bytes: 0, or RELM_ESTATE (another
 * size, or NULL). */
static inline int q_fixed(const struct relm__q *q, int col, void *out, size_t len)
{
	size_t n;
	const uint8_t *p = q_blobv(q, col, &n);

	if (!p || n != len)
		return RELM_ESTATE;
	memcpy(out, p, len);
	return 0;
}

/* Copy a TEXT column into out (cap bytes, always terminated; cut to fit). */
static inline void q_textcpy(const struct relm__q *q, int col, char *out, size_t cap)
{
	const char *p = q_str(q, col);
	size_t n = p ? (size_t)sqlite3_column_bytes(q->s, col) : 0;

	if (n >= cap)
		n = cap - 1;
	if (n)
		memcpy(out, p, n);
	out[n] = '\0';
}

#endif

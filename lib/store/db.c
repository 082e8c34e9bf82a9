/*
 * db.c — the store's connection (see store.h for the contract and the state
 * diagram, store_int.h for how the files share the work).
 *
 * Here: opening (modes and ownership checked before SQLite sees the file,
 * an existing file judged read-only first), the pragmas, closing; the one
 * function that judges SQLite failures (relm__store_fail: what is sticky);
 * the transaction state machine, whose every change of state goes through
 * enter_state(); and the statement cache the q_* helpers use.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>
#include "store/store_int.h"

/* ---- the state machine ------------------------------------------------ */

static const char *const state_names[] = {
	"NONE", "IDLE", "BATCH", "STEP", "BATCH_STEP", "ERROR",
};

/* legal[from] has bit `to` set for every transition the diagram in
 * store.h draws.  ERROR is entered from any open state and left only by
 * closing the handle. */
#define B(s) (1u << RELM__ST_##s)
static const unsigned legal[] = {
	[RELM__ST_NONE]       = B(IDLE),
	[RELM__ST_IDLE]       = B(STEP) | B(BATCH) | B(ERROR),
	[RELM__ST_BATCH]      = B(BATCH_STEP) | B(IDLE) | B(ERROR),
	[RELM__ST_STEP]       = B(IDLE) | B(ERROR),
	[RELM__ST_BATCH_STEP] = B(BATCH) | B(ERROR),
	[RELM__ST_ERROR]      = 0,
};
#undef B

/* Abort on a transition the diagram does not have: a programmer error (a
 * begin inside a step, a batch commit inside a step, ...), never input. */
static void check_transition(const struct relm_store *st, enum relm__store_state to)
{
	if (!(legal[st->state] & (1u << to))) {
		fprintf(stderr, "relm store: illegal transition %s -> %s\n",
		        state_names[st->state], state_names[to]);
		abort();
	}
}

/* What must hold in each state (debug builds; every transaction call). */
static void assert_state(const struct relm_store *st)
{
	(void)st;
	assert(st->state != RELM__ST_IDLE || (st->stage.n == 0 && st->stage.nundo == 0));
	assert(st->state == RELM__ST_BATCH_STEP || st->stage.nundo == 0);
	assert((st->state == RELM__ST_ERROR) == (st->err != 0));
}

/* Abort unless the handle is in one of `states` (a mask of 1 << state):
 * the transaction calls check what they were called in, the same way. */
static void require_state(const struct relm_store *st, unsigned states, const char *call)
{
	if (!(states & (1u << st->state))) {
		fprintf(stderr, "relm store: %s called in state %s\n", call, state_names[st->state]);
		abort();
	}
}
#define IN(s) (1u << RELM__ST_##s)

static void enter_state(struct relm_store *st, enum relm__store_state to)
{
	check_transition(st, to);
	st->state = to;
	assert_state(st);
}

/* ---- errors ------------------------------------------------------------ */

int relm__store_map_rc(int rc)
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
		return RELM_EDISKFULL;
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

static void hook_step_begin(struct relm_store *st)
{
	if (st->hooks.step_begin)
		st->hooks.step_begin(st->hooks_ctx);
}

static void hook_step_undo(struct relm_store *st)
{
	if (st->hooks.step_undo)
		st->hooks.step_undo(st->hooks_ctx);
}

static void hook_txn_end(struct relm_store *st, int committed)
{
	if (st->hooks.txn_end)
		st->hooks.txn_end(st->hooks_ctx, committed);
}

/* The end of everything open: SQLite has rolled back (or is told to), the
 * staged columns go, and every later call returns err. */
static void enter_error(struct relm_store *st, int err)
{
	/* SQLite may already have rolled back; a second ROLLBACK is harmless. */
	if (st->db && !sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	relm__stage_reset(&st->stage);
	relm__evmem_rollback(&st->evmem);
	st->devices_gen++;
	st->err = err;
	enter_state(st, RELM__ST_ERROR);
	hook_txn_end(st, 0);
}

/* Error messages come from sqlite3_errmsg, which names tables and
 * constraints, never values. */
int relm__store_fail(struct relm_store *st, int rc, const char *what)
{
	int err = relm__store_map_rc(rc);

	snprintf(st->msg, sizeof st->msg, "%s: %s", what,
	         st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
	if (is_sticky(rc) && st->state != RELM__ST_ERROR)
		enter_error(st, err);
	return err;
}

int relm__store_exec(struct relm_store *st, const char *sql, const char *what)
{
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : relm__store_fail(st, rc, what);
}

int relm__store_text_ok(const char *s, size_t max)
{
	return s && strnlen(s, max + 1) <= max;
}

int relm_store_error(const struct relm_store *st)
{
	return st->state == RELM__ST_ERROR ? st->err : 0;
}

const char *relm_store_errmsg(const struct relm_store *st)
{
	return st->msg;
}

/* ---- the statement cache ------------------------------------------------ */

static const char *const slot_names[RELM__S_COUNT] = {
#define X(name) #name,
	RELM__STORE_SLOTS(X)
#undef X
};

const char *relm__store_slot_name(enum relm__slot slot)
{
	return slot_names[slot];
}

sqlite3_stmt *relm__store_prepare(struct relm_store *st, const struct relm__sql *sql, int *err)
{
	int rc = sqlite3_prepare_v3(st->db, sql->text, -1, SQLITE_PREPARE_PERSISTENT,
	                            &st->stmt[sql->slot], NULL);

	if (rc != SQLITE_OK) {
		st->stmt[sql->slot] = NULL;
		*err = relm__store_fail(st, rc, slot_names[sql->slot]);
		return NULL;
	}
	st->stmt_text[sql->slot] = sql->text;
	return st->stmt[sql->slot];
}

/* The savepoint of a batched step: prepared once like every statement
 * (sqlite3_exec parsed them at every step, twice per message on a sending
 * relmd). */
RELM__SQL(STEP_BEGIN, "SAVEPOINT step");
RELM__SQL(STEP_RELEASE, "RELEASE step");
RELM__SQL(STEP_UNDO, "ROLLBACK TO step");

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

/* One text row from a pragma or query on a connection of its own (the
 * read-only probe and the migrations): 0 and *row (copied, cap bytes), or
 * -1 and *rc. */
static int one_text(sqlite3 *db, const char *sql, char *row, size_t cap, int *rc_out)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);

	row[0] = '\0';
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			const unsigned char *t = sqlite3_column_text(s, 0);
			snprintf(row, cap, "%s", t ? (const char *)t : "");
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(s);
	*rc_out = rc;
	return rc == SQLITE_OK ? 0 : -1;
}

int relm__store_user_version(sqlite3 *db, int *v, int *rc)
{
	char row[32];

	if (one_text(db, "PRAGMA user_version", row, sizeof row, rc) != 0)
		return -1;
	*v = atoi(row);
	return 0;
}

/* quick_check (default) or integrity_check; 0 if it says "ok". */
static int run_check(sqlite3 *db, int full, int *rc_out)
{
	char row[64];

	if (one_text(db, full ? "PRAGMA integrity_check(1)" : "PRAGMA quick_check(1)",
	             row, sizeof row, rc_out) != 0)
		return -1;
	return strcmp(row, "ok") == 0 ? 0 : -1;
}

/* meta 'clean' is '1' only between a clean relm_store_close and the next
 * open; read on the probe's read-only connection.  1, 0, or 0 on error. */
static int was_closed_cleanly(sqlite3 *db)
{
	char row[8];
	int rc;

	return one_text(db, "SELECT value FROM meta WHERE key='clean'", row, sizeof row, &rc) == 0 &&
	       strcmp(row, "1") == 0;
}

/* Is the file at `path` (user_version v, opened read-only) a relm store?  A
 * store is only ever put in place complete (create_store), so version 0 —
 * an empty file, or an SQLite database without a version — is never one;
 * nor is a database that names another application or lacks relm's tables
 * (a store made before application_id was set has 0 there).  0, or
 * RELM_ENOTSTORE with a sentence that says how to start afresh. */
static int judge_relm(sqlite3 *db, const char *path, int v, const struct relm_store_opts *o)
{
	char app[32], tables[32];
	struct stat sb;
	int rc;
	const char *what = NULL;

	if (v == 0)
		what = stat(path, &sb) == 0 && sb.st_size == 0 ? "the file is empty (0 bytes)"
		                                                : "an SQLite database without relm's schema";
	else if (one_text(db, "PRAGMA application_id", app, sizeof app, &rc) != 0 ||
	         one_text(db, "SELECT count(*) FROM sqlite_schema WHERE type='table' AND name IN "
	                      "('meta','protons','relationships','messages')", tables, sizeof tables, &rc) != 0)
		return relm__store_map_rc(rc) == RELM_ECORRUPT ? RELM_ECORRUPT : RELM_ESTORE;
	else if ((atoll(app) != 0 && atoll(app) != RELM_STORE_APPLICATION_ID) || atoi(tables) != 4)
		what = "an SQLite database of another program";
	if (!what)
		return 0;
	set_errbuf(o, "%s: not a relm store: %s.  relm creates a store only where no file exists and "
	           "left this one untouched; to start afresh on purpose, move it away (with any -wal "
	           "and -shm file beside it)", path, what);
	return RELM_ENOTSTORE;
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
	struct stat sb;
	uint64_t always = o && o->check_always_bytes ? o->check_always_bytes
	                                             : (uint64_t)RELM_STORE_CHECK_ALWAYS_BYTES;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW |
	                     SQLITE_OPEN_EXRESCODE, o ? o->vfs : NULL);
	if (rc != SQLITE_OK)
		goto sqlfail;
	sqlite3_busy_timeout(db, o && o->busy_timeout_ms ? o->busy_timeout_ms : RELM_STORE_BUSY_MS);
	if (relm__store_user_version(db, &v, &rc) != 0)
		goto sqlfail;
	if (v > RELM_STORE_SCHEMA_VERSION) {
		set_errbuf(o, "%s: schema version %d is newer than this relm (%d) understands; refusing to touch it",
		           path, v, RELM_STORE_SCHEMA_VERSION);
		err = RELM_ESTORE_NEWER;
		goto out;
	}
	if ((err = judge_relm(db, path, v, o)) != 0)
		goto out;
	if (!(flags & (RELM_STORE_F_INTEGRITY | RELM_STORE_F_NOCHECK)) &&
	    stat(path, &sb) == 0 && (uint64_t)sb.st_size > always && was_closed_cleanly(db))
		flags |= RELM_STORE_F_NOCHECK;
	if (!(flags & RELM_STORE_F_NOCHECK) &&
	    run_check(db, !!(flags & RELM_STORE_F_INTEGRITY), &rc) != 0) {
		if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_CORRUPT && (rc & 0xff) != SQLITE_NOTADB)
			goto sqlfail;
		set_errbuf(o, "%s: integrity check failed: the file is corrupt and was left untouched "
		           "(restore a copy, or move it away to start afresh)", path);
		err = RELM_ECORRUPT;
	}
	goto out;
sqlfail:
	err = relm__store_map_rc(rc);
	if ((rc & 0xff) == SQLITE_CANTOPEN)
		err = RELM_EPERM;
	if (err == RELM_ECORRUPT)
		set_errbuf(o, "%s: not a valid store (%s); left untouched (restore a copy, or move it "
		           "away to start afresh)", path, sqlite3_errstr(rc));
	else
		set_errbuf(o, "%s: cannot read the store (%s)", path, sqlite3_errstr(rc));
out:
	sqlite3_close(db);
	return err;
}

/* The folder (created 0700 if missing), ours and closed to others, and
 * the file if it exists (*exists): a regular file of ours, mode 0600. */
static int check_paths(const char *path, const struct relm_store_opts *opts, int *exists)
{
	char dir[4096];
	struct stat sb;
	char *slash;
	int err;

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
	*exists = 1;
	if (lstat(path, &sb) != 0) {
		if (errno != ENOENT)
			return -errno;
		*exists = 0;
		if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0) {
			set_errbuf(opts, "%s: cannot create the store (%s)", path, strerror(errno));
			return RELM_EPERM;
		}
		return 0;
	}
	if (check_owner_mode(&sb, 0) != 0) {
		set_errbuf(opts, "%s: the store must be a regular file owned by this user with mode 0600", path);
		return RELM_EPERM;
	}
	if ((err = check_side_file(path, "-wal", opts)) != 0 ||
	    (err = check_side_file(path, "-shm", opts)) != 0)
		return err;
	if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0 ||
	    faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) != 0) {
		set_errbuf(opts, "%s: the store or its folder is read-only (%s); WAL needs to write beside the file", path, strerror(errno));
		return RELM_EPERM;
	}
	return 0;
}

/* WAL and the pragmas of proto/store.md. */
static int configure(struct relm_store *st, const struct relm_store_opts *opts)
{
	char mode[16];
	int rc;

	sqlite3_busy_timeout(st->db, opts && opts->busy_timeout_ms ? opts->busy_timeout_ms : RELM_STORE_BUSY_MS);
	if (one_text(st->db, "PRAGMA journal_mode=WAL", mode, sizeof mode, &rc) != 0)
		return relm__store_fail(st, rc, "journal_mode=WAL");
	if (strcmp(mode, "wal") != 0)
		return relm__store_fail(st, SQLITE_CANTOPEN, "journal_mode=WAL");
	/* journal_size_limit: after a checkpoint the WAL is truncated back to
	 * 4 MiB, so a burst does not leave a large file that every later open
	 * (and WAL recovery after a kill) has to read. */
	return relm__store_exec(st, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;"
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
}

/* A handle in IDLE on `path`, read-write, configured and migrated: the
 * handle (also when *err says a step failed: st->msg tells which; close
 * it), or NULL and *err = RELM_ENOMEM. */
static struct relm_store *open_migrated(const char *path, const struct relm_store_opts *opts, int *err)
{
	struct relm_store *st = calloc(1, sizeof *st);
	int rc;

	*err = 0;
	if (!st) {
		*err = RELM_ENOMEM;
		return NULL;
	}
	enter_state(st, RELM__ST_IDLE);
	st->event_keep = opts && opts->event_keep ? opts->event_keep : RELM_STORE_EVENT_KEEP;
	/* NOMUTEX: a handle is used by one thread at a time (store.h), so the
	 * connection's own mutex, taken and released by every bind, step,
	 * column and reset (a few hundred times per message), guards nothing */
	rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW |
	                     SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_NOMUTEX, opts ? opts->vfs : NULL);
	if (rc != SQLITE_OK)
		*err = relm__store_fail(st, rc, "open");
	if (!*err)
		*err = configure(st, opts);
	if (!*err)
		*err = relm__store_migrate(st);
	return st;
}

/* meta 'clean' reads 0 on the read-write connection. */
static int is_marked_unclean(struct relm_store *st)
{
	char row[8];
	int rc;

	return one_text(st->db, "SELECT value FROM meta WHERE key='clean'", row, sizeof row, &rc) == 0 &&
	       strcmp(row, "0") == 0;
}

static void unlink_family(const char *p)
{
	static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };
	char f[4096 + 16];

	for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
		snprintf(f, sizeof f, "%s%s", p, sfx[i]);
		unlink(f);
	}
}

/* A new store is made whole beside its name — schema, WAL mode,
 * application_id, checkpointed — and only then linked to `path`, which
 * link(2) refuses to replace.  So `path` never names an empty or half-made
 * store, even after a crash in the middle: an existing file that is empty
 * is damage, never a store being made, and is refused (judge_relm).  A
 * stale `<path>.new` left by such a crash is only ever ours and is
 * removed first.  The file is created 0600 with O_EXCL|O_NOFOLLOW before
 * SQLite sees it, so the -wal/-shm files SQLite makes inherit 0600. */
static int create_store(const char *path, const struct relm_store_opts *opts)
{
	char tmp[4096 + 8], dir[4096], *slash;
	struct relm_store *st;
	int fd, err = 0;

	snprintf(tmp, sizeof tmp, "%s.new", path);
	unlink_family(tmp);
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || fchmod(fd, 0600) != 0) {
		err = -errno;
		set_errbuf(opts, "%s: cannot create the store (%s)", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
		return err == -EACCES || err == -EROFS ? RELM_EPERM : err;
	}
	close(fd);
	if (!(st = open_migrated(tmp, opts, &err))) {
		unlink(tmp);
		return err;
	}
	if (!err) {
		char sql[48];
		snprintf(sql, sizeof sql, "PRAGMA application_id=%d", (int)RELM_STORE_APPLICATION_ID);
		err = relm__store_exec(st, sql, "application_id");
	}
	/* everything into the main file: it is linked without its WAL */
	if (!err)
		err = relm__store_exec(st, "PRAGMA wal_checkpoint(TRUNCATE)", "checkpoint");
	if (err)
		set_errbuf(opts, "%s: cannot create the store: %s", path, st->msg);
	relm_store_close(st);
	if (!err && link(tmp, path) != 0 && errno != EEXIST) {
		err = -errno;
		set_errbuf(opts, "%s: cannot put the new store in place (%s)", path, strerror(errno));
	}
	/* EEXIST: another process made one meanwhile; that one is judged */
	unlink_family(tmp);
	if (!err) {
		snprintf(dir, sizeof dir, "%s", path);
		slash = strrchr(dir, '/');
		if (slash)
			*(slash == dir ? slash + 1 : slash) = '\0';
		if ((fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
			fsync(fd);             /* the new name survives a power loss */
			close(fd);
		}
	}
	return err;
}

int relm_store_open(struct relm_store **out, const char *path, const struct relm_store_opts *opts)
{
	struct relm_store *st = NULL;
	unsigned flags = opts ? opts->flags : 0;
	int err = 0, exists = 0;

	*out = NULL;
	if (!path || (flags & ~(unsigned)RELM_STORE_F_KNOWN) || strlen(path) >= 4096 - 8)
		return RELM_EINVAL;
	if (opts && opts->errbuf && opts->errlen)
		opts->errbuf[0] = '\0';
	if ((err = check_paths(path, opts, &exists)) != 0)
		return err;
	if (!exists && ((err = create_store(path, opts)) != 0 ||
	                (err = check_paths(path, opts, &exists)) != 0))
		return err;
	/* The file is judged read-only before anything can write to it. */
	if ((err = probe_readonly(path, opts, flags)) != 0)
		return err;

	if (!(st = open_migrated(path, opts, &err)))
		return err;
	/* open now: a kill from here on means the next open checks.  Written
	 * only when it is not 0 already, so reopening a store that was not
	 * closed cleanly (relmd does after a full disk) writes nothing. */
	if (!err && !is_marked_unclean(st))
		err = relm__store_exec(st, "INSERT OR REPLACE INTO meta(key, value) VALUES('clean', 0)",
		                       "clean mark");
	if (err) {
		set_errbuf(opts, "%s: %s", path, st->msg);
		relm_store_close(st);
		return err;
	}
	*out = st;
	return 0;
}

void relm_store_close(struct relm_store *st)
{
	if (!st)
		return;
	if (st->db && !sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	else if (st->db && st->state == RELM__ST_IDLE)
		/* a clean close: the next open of a big store may skip the check */
		sqlite3_exec(st->db, "INSERT OR REPLACE INTO meta(key, value) VALUES('clean', 1)",
		             NULL, NULL, NULL);
	relm__stage_destroy(&st->stage);
	relm__evmem_free(&st->evmem);
	for (int i = 0; i < RELM__S_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close(st->db);
	sodium_memzero(st, sizeof *st);
	free(st);
}

/* ---- transactions ---------------------------------------------------------- */

/* Run a cached statement that takes no parameters. */
static int run_plain(struct relm_store *st, const struct relm__sql *sql)
{
	struct relm__q q;

	q_begin_(&q, st, sql);
	return q_exec(&q);
}

int relm_store_begin(struct relm_store *st)
{
	int err;

	CHECK_USABLE(st);
	require_state(st, IN(IDLE) | IN(BATCH), "relm_store_begin");
	if (st->state == RELM__ST_BATCH) {
		if ((err = run_plain(st, &sql_STEP_BEGIN)) != 0)
			return err;
		st->stage.gen++;
		relm__evmem_step_begin(&st->evmem);
		enter_state(st, RELM__ST_BATCH_STEP);
		hook_step_begin(st);
		return 0;
	}
	if ((err = relm__store_exec(st, "BEGIN IMMEDIATE", "begin")) != 0)
		return err;
	st->stage.gen++;
	enter_state(st, RELM__ST_STEP);
	hook_step_begin(st);
	return 0;
}

/* The staged relationship columns are written, and the event log trimmed
 * (events.c), inside the transaction, just before its COMMIT.  COMMIT
 * failing is sticky whatever the code: the outcome on disk is unknown
 * until reopen.  A failed write-back ends the
 * same way (then the outcome is known: nothing of the transaction). */
static int commit_or_die(struct relm_store *st, const char *what)
{
	int err = relm__stage_flush(st), rc;

	if (!err)
		err = relm__event_trim_flush(st);

	if (!err) {
		rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
		if (rc == SQLITE_OK) {
			relm__evmem_commit(&st->evmem);
			relm__stage_reset(&st->stage);
			enter_state(st, RELM__ST_IDLE);
			hook_txn_end(st, 1);
			return 0;
		}
		err = relm__store_fail(st, rc, what);
	}
	if (st->state != RELM__ST_ERROR)
		enter_error(st, err);
	return err;
}

/* Roll back the whole transaction (a standalone step or a batch). */
static int rollback_all(struct relm_store *st, const char *what)
{
	int err = relm__store_exec(st, "ROLLBACK", what);

	st->devices_gen++;
	if (!err) {
		st->event_trim_due = 0;
		relm__evmem_rollback(&st->evmem);
		relm__stage_reset(&st->stage);
		enter_state(st, RELM__ST_IDLE);
	}
	hook_txn_end(st, 0);
	return err;
}

int relm_store_commit(struct relm_store *st)
{
	int err;

	CHECK_USABLE(st);
	require_state(st, IN(STEP) | IN(BATCH_STEP), "relm_store_commit");
	if (st->state == RELM__ST_BATCH_STEP) {
		if ((err = run_plain(st, &sql_STEP_RELEASE)) != 0)
			return err;
		relm__stage_release(&st->stage);
		enter_state(st, RELM__ST_BATCH);
		return 0;
	}
	return commit_or_die(st, "commit");
}

int relm_store_rollback(struct relm_store *st)
{
	int err;

	CHECK_USABLE(st);
	require_state(st, IN(STEP) | IN(BATCH_STEP), "relm_store_rollback");
	if (st->state == RELM__ST_BATCH_STEP) {
		st->devices_gen++;
		if ((err = run_plain(st, &sql_STEP_UNDO)) != 0 ||
		    (err = run_plain(st, &sql_STEP_RELEASE)) != 0)
			return err;
		relm__stage_undo(&st->stage);
		relm__evmem_step_undo(&st->evmem);
		enter_state(st, RELM__ST_BATCH);
		hook_step_undo(st);
		return 0;
	}
	return rollback_all(st, "rollback");
}

int relm_store_batch_begin(struct relm_store *st)
{
	int err;

	CHECK_USABLE(st);
	require_state(st, IN(IDLE), "relm_store_batch_begin");
	if ((err = relm__store_exec(st, "BEGIN IMMEDIATE", "batch begin")) != 0)
		return err;
	enter_state(st, RELM__ST_BATCH);
	return 0;
}

int relm_store_batch_commit(struct relm_store *st)
{
	CHECK_USABLE(st);
	require_state(st, IN(BATCH), "relm_store_batch_commit");
	if (st->hooks.before_commit) {
		int err = st->hooks.before_commit(st->hooks_ctx);
		if (err) {
			if (st->state == RELM__ST_BATCH)
				rollback_all(st, "batch rollback");
			return err;
		}
		CHECK_USABLE(st);
		require_state(st, IN(BATCH), "relm_store_batch_commit (after its hook)");
	}
	return commit_or_die(st, "batch commit");
}

int relm_store_batch_rollback(struct relm_store *st)
{
	CHECK_USABLE(st);
	require_state(st, IN(BATCH), "relm_store_batch_rollback");
	return rollback_all(st, "batch rollback");
}

int relm_store_in_batch_step(const struct relm_store *st)
{
	return st->state == RELM__ST_BATCH_STEP;
}

void relm_store_set_hooks(struct relm_store *st, const struct relm_store_hooks *h, void *ctx)
{
	memset(&st->hooks, 0, sizeof st->hooks);
	if (h)
		st->hooks = *h;
	st->hooks_ctx = ctx;
}

int relm_store_in_txn(const struct relm_store *st)
{
	return st->state == RELM__ST_STEP || st->state == RELM__ST_BATCH ||
	       st->state == RELM__ST_BATCH_STEP;
}

int relm_store_probe_write(struct relm_store *st, uint64_t now_ms)
{
	char sql[96];

	CHECK_USABLE(st);
	require_state(st, IN(IDLE), "relm_store_probe_write");
	snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO meta(key, value) VALUES('probe', %llu)",
	         (unsigned long long)now_ms);
	if (relm_store_begin(st) != 0)
		return relm_store_error(st) ? relm_store_error(st) : RELM_EBUSY;
	if (relm__store_exec(st, sql, "probe") != 0) {
		if (st->state == RELM__ST_STEP)
			relm_store_rollback(st);
		return relm_store_error(st) ? relm_store_error(st) : RELM_ESTORE;
	}
	return relm_store_commit(st);
}

/* ---- buffers and test internals ---------------------------------------------- */

void relm_store_buf_free(uint8_t *buf, size_t len)
{
	if (!buf)
		return;
	sodium_memzero(buf, len);
	free(buf);
}

struct sqlite3 *relm__store_db(struct relm_store *st)
{
	return st->db;
}

uint64_t relm__store_vm_steps(struct relm_store *st, int reset)
{
	uint64_t n = 0;
	for (int i = 0; i < RELM__S_COUNT; i++)
		if (st->stmt[i])
			n += (uint64_t)sqlite3_stmt_status(st->stmt[i], SQLITE_STMTSTATUS_VM_STEP, reset);
	return n;
}

/*
 * store_sqlite.c — the mailbox store in one SQLite file (proto/mailbox.md
 * §9.1), behind store.h.  Every operation runs to completion before it
 * returns and calls its callback on the way out, so the server's paths
 * cost what they cost before the interface existed: the statements are
 * prepared once, a commit is one transaction per group of posts, with one
 * counter read and one counter write per mailbox.
 */
#include "mailbox_server/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "error.h"
#include "log.h"

enum {
	STORE_VERSION = 3,         /* PRAGMA user_version (sqlite_open) */
	SWEEP_CHUNK = 10000,       /* rows looked at per statement: short write transactions */
	SWEEP_CHUNKS_MAX = 100,    /* per sweep run; the next run continues */
};

enum stmt_id {
	ST_BEGIN, ST_BEGIN_READ, ST_COMMIT, ST_ROLLBACK,
	ST_SET_SEQ, ST_INSERT, ST_FETCH, ST_HEAD, ST_OLDEST, ST_LOOKUP, ST_SET_KEY,
	ST_LEASE_GET, ST_LEASE_PUT, ST_LEASE_DEL,
	ST_SWEEP, ST_SWEEP_LEASES,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN]    = "BEGIN IMMEDIATE",
	/* many reads in one transaction: one file lock, not two per statement */
	[ST_BEGIN_READ] = "BEGIN",
	[ST_COMMIT]   = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	/* No RETURNING: SQLite gathers RETURNING rows in an ephemeral table,
	 * opened and closed per execution, which cost more than the insert. */
	[ST_SET_SEQ]  = "INSERT INTO mailbox(id, last_seq) VALUES(?1, ?2) "
	                "ON CONFLICT(id) DO UPDATE SET last_seq = excluded.last_seq",
	[ST_INSERT]   = "INSERT INTO envelope(mailbox, seq, received_at, body) VALUES(?1, ?2, ?3, ?4)",
	[ST_FETCH]    = "SELECT seq, body FROM envelope WHERE mailbox = ?1 AND seq > ?2 "
	                "ORDER BY seq LIMIT ?3",
	[ST_HEAD]     = "SELECT last_seq FROM mailbox WHERE id = ?1",
	[ST_OLDEST]   = "SELECT min(seq) FROM envelope WHERE mailbox = ?1",
	[ST_LOOKUP]   = "SELECT last_seq, read_key FROM mailbox WHERE id = ?1",
	[ST_SET_KEY]  = "INSERT INTO mailbox(id, last_seq, read_key) VALUES(?1, 0, ?2) "
	                "ON CONFLICT(id) DO UPDATE SET read_key = excluded.read_key",
	[ST_LEASE_GET]= "SELECT holder, expires_at FROM lease WHERE mailbox = ?1 AND name = ?2",
	[ST_LEASE_PUT]= "INSERT OR REPLACE INTO lease(mailbox, name, holder, expires_at) "
	                "VALUES(?1, ?2, ?3, ?4)",
	[ST_LEASE_DEL]= "DELETE FROM lease WHERE mailbox = ?1 AND name = ?2",
	/* Envelopes in rowid order are in commit order, so in received_at
	 * order as long as the wall clock does not step back: the sweep looks
	 * at the oldest rows only and needs no index on received_at (which
	 * cost a quarter of a POST's instructions).  See sqlite_open. */
	[ST_SWEEP]    = "DELETE FROM envelope WHERE rowid IN "
	                "(SELECT rowid FROM envelope ORDER BY rowid LIMIT ?2) AND received_at < ?1",
	[ST_SWEEP_LEASES] = "DELETE FROM lease WHERE expires_at <= ?1",
};

struct sq_store {
	struct mbs_store base;     /* first: the server holds a struct mbs_store * */
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
};

static int db_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_err("mailbox store: %s: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return RELM_ESTORE;
	}
	return 0;
}

/* Run a statement that returns no rows we need. */
static int st_run(struct sq_store *q, enum stmt_id id)
{
	sqlite3_stmt *st = q->st[id];
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_err("mailbox store: %s", sqlite3_errmsg(q->db));
		return RELM_ESTORE;
	}
	return 0;
}

static void st_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* mkdir -p with 0700 for what we create; the state folder itself is
 * forced to 0700 (it holds who posts to whom and when). */
static int ensure_dir(const char *dir)
{
	char tmp[4096];
	struct stat sb;
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, dir, n + 1);
	for (size_t i = 1; i < n; i++) {
		if (tmp[i] != '/')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return -errno;
		tmp[i] = '/';
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -errno;
	if (stat(dir, &sb) != 0)
		return -errno;
	if (!S_ISDIR(sb.st_mode))
		return -ENOTDIR;
	if ((sb.st_mode & 077) && chmod(dir, 0700) != 0)
		return -errno;
	return 0;
}

/* The realm: created with the version 3 schema (or the migration to it),
 * read on every open. */
static int realm_load(struct sq_store *q, int create)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (create) {
		randombytes_buf(q->base.realm, RELM_MBOX_REALM_LEN);
		if (sqlite3_prepare_v2(q->db, "INSERT INTO meta(name, value) VALUES('realm', ?1)", -1,
		                       &st, NULL) != SQLITE_OK)
			return RELM_ESTORE;
		sqlite3_bind_blob(st, 1, q->base.realm, RELM_MBOX_REALM_LEN, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? 0 : RELM_ESTORE;
	}
	if (sqlite3_prepare_v2(q->db, "SELECT value FROM meta WHERE name = 'realm'", -1, &st,
	                       NULL) != SQLITE_OK)
		return RELM_ECORRUPT;
	rc = sqlite3_step(st) == SQLITE_ROW &&
	     sqlite3_column_bytes(st, 0) == RELM_MBOX_REALM_LEN ? 0 : RELM_ECORRUPT;
	if (!rc)
		memcpy(q->base.realm, sqlite3_column_blob(st, 0), RELM_MBOX_REALM_LEN);
	sqlite3_finalize(st);
	return rc;
}

/* Create or migrate the schema, inside the open transaction. */
static int migrate(struct sq_store *q, int version)
{
	int rc;

	/* Version 2 dropped version 1's index on envelope(received_at).  New
	 * rows get rowid = largest + 1 (no AUTOINCREMENT needed: the sweep
	 * deletes from the low end, so the largest stays), hence rowid order
	 * is commit order and the sweep walks it (ST_SWEEP).  A wall clock
	 * stepped back by D delays the deletion of rows behind it by at most
	 * D; nothing is ever deleted before its time. */
	if (version == 1 && (rc = db_exec(q->db, "DROP INDEX IF EXISTS envelope_received;")))
		return rc;
	/* Version 3: the read keys of batched subscription and the realm. */
	if ((version == 1 || version == 2) &&
	    (rc = db_exec(q->db, "ALTER TABLE mailbox ADD COLUMN read_key BLOB;"
	                         "CREATE TABLE meta(name TEXT PRIMARY KEY, value BLOB NOT NULL);")))
		return rc;
	if (version == 0) {
		/* mailbox.last_seq is kept even when retention has deleted every
		 * envelope, so a mailbox's sequence numbers never go back and no
		 * client cursor is ever re-used. */
		rc = db_exec(q->db,
		    "CREATE TABLE mailbox(id BLOB PRIMARY KEY, last_seq INTEGER NOT NULL,"
		    " read_key BLOB) WITHOUT ROWID;"
		    "CREATE TABLE envelope(mailbox BLOB NOT NULL, seq INTEGER NOT NULL,"
		    " received_at INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY(mailbox, seq));"
		    "CREATE TABLE lease(mailbox BLOB NOT NULL, name BLOB NOT NULL,"
		    " holder BLOB NOT NULL, expires_at INTEGER NOT NULL,"
		    " PRIMARY KEY(mailbox, name)) WITHOUT ROWID;"
		    "CREATE TABLE meta(name TEXT PRIMARY KEY, value BLOB NOT NULL);");
		if (rc)
			return rc;
	}
	if (version < STORE_VERSION &&
	    ((rc = realm_load(q, 1)) || (rc = db_exec(q->db, "PRAGMA user_version=3;"))))
		return rc;
	return version == STORE_VERSION ? realm_load(q, 0) : 0;
}

static int sqlite_open(struct sq_store *q, const char *dir)
{
	char path[4096];
	sqlite3_stmt *st = NULL;
	int rc, fd, version;

	rc = ensure_dir(dir);
	if (rc)
		return rc;
	if ((size_t)snprintf(path, sizeof(path), "%s/mailbox.sqlite", dir) >= sizeof(path))
		return -ENAMETOOLONG;
	/* Create the file ourselves so it is 0600 whatever the umask; SQLite
	 * gives the -wal and -shm files the same mode. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	close(fd);

	rc = sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		log_err("mailbox store: open %s: %s", path, sqlite3_errstr(rc));
		return RELM_ESTORE;
	}
	sqlite3_busy_timeout(q->db, RELM_MBOX_BUSY_TIMEOUT_MS);
	if ((rc = db_exec(q->db, "PRAGMA journal_mode=WAL")) ||
	    (rc = db_exec(q->db, "PRAGMA synchronous=FULL")) ||
	    /* up to 64 MiB of pages (default 2 MiB): a million mailboxes' rows and
	     * their index stay in memory for subscriptions; taken only as used */
	    (rc = db_exec(q->db, "PRAGMA cache_size=-65536")))
		return rc;

	if ((rc = db_exec(q->db, "BEGIN IMMEDIATE")))
		return rc;
	if (sqlite3_prepare_v2(q->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		db_exec(q->db, "ROLLBACK");
		return RELM_ECORRUPT;
	}
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > STORE_VERSION) {
		db_exec(q->db, "ROLLBACK");
		return RELM_ESTORE_NEWER;
	}
	if ((rc = migrate(q, version)) != 0) {
		db_exec(q->db, "ROLLBACK");
		return rc;
	}
	if ((rc = db_exec(q->db, "COMMIT")))
		return rc;

	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                       &q->st[i], NULL) != SQLITE_OK) {
			log_err("mailbox store: prepare: %s", sqlite3_errmsg(q->db));
			return RELM_ESTORE;
		}
	}
	return 0;
}

static void sqlite_free(struct sq_store *q)
{
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(q->st[i]);
	if (q->db)
		sqlite3_close(q->db);
	sodium_memzero(q, sizeof(*q));
	free(q);
}

/* ---- operations ---- */

/* Seqs are assigned here, per mailbox in arrival order (v is sorted): each
 * mailbox costs one read of its counter and one write of the new value,
 * each post one insert. */
static int commit_sync(struct sq_store *q, struct mbs_post **v, size_t n, uint64_t now)
{
	sqlite3_stmt *st;
	size_t i, j;
	int rc;

	if ((rc = st_run(q, ST_BEGIN)))
		return rc;
	for (i = 0; i < n; i = j) {
		uint64_t last = 0;

		st = q->st[ST_HEAD];
		sqlite3_bind_blob(st, 1, v[i]->mailbox, RELM_MBOX_ID_LEN, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			last = (uint64_t)sqlite3_column_int64(st, 0);
		st_done(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			goto fail;
		for (j = i; j < n && (j == i || memcmp(v[j]->mailbox, v[i]->mailbox,
		                                       RELM_MBOX_ID_LEN) == 0); j++) {
			struct mbs_post *p = v[j];

			p->seq = ++last;
			st = q->st[ST_INSERT];
			sqlite3_bind_blob(st, 1, p->mailbox, RELM_MBOX_ID_LEN, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)p->seq);
			sqlite3_bind_int64(st, 3, (sqlite3_int64)now);
			sqlite3_bind_blob(st, 4, p->env, (int)p->len, SQLITE_STATIC);
			if (st_run(q, ST_INSERT))
				goto fail;
		}
		st = q->st[ST_SET_SEQ];
		sqlite3_bind_blob(st, 1, v[i]->mailbox, RELM_MBOX_ID_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)last);
		if (st_run(q, ST_SET_SEQ))
			goto fail;
	}
	if (st_run(q, ST_COMMIT))
		goto fail;
	return 0;
fail:
	log_err("mailbox store: commit failed: %s", sqlite3_errmsg(q->db));
	st_run(q, ST_ROLLBACK);
	return RELM_ESTORE;
}

static void sq_commit(struct mbs_store *st, struct mbs_post **v, size_t n, uint64_t now,
                      mbs_done_fn done, void *ctx)
{
	done(ctx, commit_sync((struct sq_store *)st, v, n, now));
}

/* head (and the read key) from the counter row, oldest from the envelopes. */
static int lookup_one(struct sq_store *q, struct mbs_lookup *l)
{
	sqlite3_stmt *st = q->st[ST_LOOKUP];
	int rc;

	l->head = l->oldest = 0;
	l->has_key = 0;
	sqlite3_bind_blob(st, 1, l->mailbox, RELM_MBOX_ID_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		l->head = (uint64_t)sqlite3_column_int64(st, 0);
		if (sqlite3_column_bytes(st, 1) == RELM_MBOX_READ_KEY_LEN) {
			memcpy(l->read_key, sqlite3_column_blob(st, 1), RELM_MBOX_READ_KEY_LEN);
			l->has_key = 1;
		}
	}
	st_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return RELM_ESTORE;
	if (!l->head)
		return 0;     /* never posted to: nothing stored */
	st = q->st[ST_OLDEST];
	sqlite3_bind_blob(st, 1, l->mailbox, RELM_MBOX_ID_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		l->oldest = (uint64_t)sqlite3_column_int64(st, 0);
	st_done(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : RELM_ESTORE;
}

static void sq_lookup(struct mbs_store *st, struct mbs_lookup *v, size_t n,
                      mbs_done_fn done, void *ctx)
{
	struct sq_store *q = (struct sq_store *)st;
	int rc = n > 1 ? st_run(q, ST_BEGIN_READ) : 0;

	for (size_t i = 0; i < n && !rc; i++)
		rc = lookup_one(q, &v[i]);
	if (n > 1 && st_run(q, rc ? ST_ROLLBACK : ST_COMMIT) != 0 && !rc)
		rc = RELM_ESTORE;
	done(ctx, rc);
}

static void sq_set_keys(struct mbs_store *st, struct mbs_lookup *v, size_t n,
                        mbs_done_fn done, void *ctx)
{
	struct sq_store *q = (struct sq_store *)st;
	int rc;

	if ((rc = st_run(q, ST_BEGIN))) {
		done(ctx, rc);
		return;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		sqlite3_stmt *s = q->st[ST_SET_KEY];

		sqlite3_bind_blob(s, 1, v[i].mailbox, RELM_MBOX_ID_LEN, SQLITE_STATIC);
		sqlite3_bind_blob(s, 2, v[i].read_key, RELM_MBOX_READ_KEY_LEN, SQLITE_STATIC);
		rc = st_run(q, ST_SET_KEY);
	}
	/* the lookups in the same transaction, before it commits */
	for (size_t i = 0; i < n && !rc; i++)
		rc = lookup_one(q, &v[i]);
	if (rc || (rc = st_run(q, ST_COMMIT))) {
		st_run(q, ST_ROLLBACK);
		done(ctx, rc);
		return;
	}
	done(ctx, rc);
}

static void sq_fetch(struct mbs_store *st, const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t after,
                     unsigned limit, mbs_row_fn row, mbs_done_fn done, void *ctx)
{
	struct sq_store *q = (struct sq_store *)st;
	sqlite3_stmt *s = q->st[ST_FETCH];
	int rc;

	sqlite3_bind_blob(s, 1, mailbox, RELM_MBOX_ID_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)after);
	sqlite3_bind_int(s, 3, (int)limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int n = sqlite3_column_bytes(s, 1);

		row(ctx, (uint64_t)sqlite3_column_int64(s, 0), sqlite3_column_blob(s, 1),
		    n > 0 ? (size_t)n : 0);
	}
	st_done(s);
	if (rc != SQLITE_DONE)
		log_err("mailbox store: fetch: %s", sqlite3_errmsg(q->db));
	done(ctx, rc == SQLITE_DONE ? 0 : RELM_ESTORE);
}

static int is_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* Compare-and-set with TTL (proto/mailbox.md §5.6), one transaction. */
static int lease_sync(struct sq_store *q, struct mbs_lease_req *l)
{
	uint8_t live[RELM_MBOX_TOKEN_LEN] = { 0 };
	struct relm_mbox_lease_result *res = &l->res;
	uint64_t now = l->now, expires = 0;
	sqlite3_stmt *st;
	int rc;

	if ((rc = st_run(q, ST_BEGIN)))
		return rc;
	st = q->st[ST_LEASE_GET];
	sqlite3_bind_blob(st, 1, l->mailbox, RELM_MBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, l->name, (int)l->name_len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == RELM_MBOX_TOKEN_LEN) {
		expires = (uint64_t)sqlite3_column_int64(st, 1);
		if (expires > now)
			memcpy(live, sqlite3_column_blob(st, 0), RELM_MBOX_TOKEN_LEN);
		else
			expires = 0;
	}
	st_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto fail;

	memset(res, 0, sizeof(*res));
	res->tag = l->tag;
	if (memcmp(live, l->expected, RELM_MBOX_TOKEN_LEN) != 0) {
		res->granted = 0;
		memcpy(res->holder, live, RELM_MBOX_TOKEN_LEN);
		res->remaining_ms = expires > now ? (uint32_t)(expires - now) : 0;
		st_run(q, ST_ROLLBACK);
		return 0;
	}
	if (is_zero(l->holder, RELM_MBOX_TOKEN_LEN)) {
		st = q->st[ST_LEASE_DEL];
		sqlite3_bind_blob(st, 1, l->mailbox, RELM_MBOX_ID_LEN, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, l->name, (int)l->name_len, SQLITE_STATIC);
		if (st_run(q, ST_LEASE_DEL))
			goto fail;
	} else {
		st = q->st[ST_LEASE_PUT];
		sqlite3_bind_blob(st, 1, l->mailbox, RELM_MBOX_ID_LEN, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, l->name, (int)l->name_len, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, l->holder, RELM_MBOX_TOKEN_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)(now + l->ttl_ms));
		if (st_run(q, ST_LEASE_PUT))
			goto fail;
		memcpy(res->holder, l->holder, RELM_MBOX_TOKEN_LEN);
		res->remaining_ms = l->ttl_ms;
	}
	if (st_run(q, ST_COMMIT))
		goto fail;
	res->granted = 1;
	return 0;
fail:
	st_run(q, ST_ROLLBACK);
	return RELM_ESTORE;
}

static void sq_lease(struct mbs_store *st, struct mbs_lease_req *l, mbs_done_fn done, void *ctx)
{
	done(ctx, lease_sync((struct sq_store *)st, l));
}

static int sweep_sync(struct sq_store *q, uint64_t cutoff, uint64_t now)
{
	int total = 0, n;

	for (int i = 0; i < SWEEP_CHUNKS_MAX; i++) {
		sqlite3_stmt *st = q->st[ST_SWEEP];

		if (st_run(q, ST_BEGIN))
			return RELM_ESTORE;
		sqlite3_bind_int64(st, 1, (sqlite3_int64)cutoff);
		sqlite3_bind_int(st, 2, SWEEP_CHUNK);
		if (st_run(q, ST_SWEEP)) {
			st_run(q, ST_ROLLBACK);
			return RELM_ESTORE;
		}
		n = sqlite3_changes(q->db);
		sqlite3_bind_int64(q->st[ST_SWEEP_LEASES], 1, (sqlite3_int64)now);
		if (st_run(q, ST_SWEEP_LEASES) || st_run(q, ST_COMMIT)) {
			st_run(q, ST_ROLLBACK);
			return RELM_ESTORE;
		}
		total += n;
		if (n < SWEEP_CHUNK)
			break;
	}
	return total;
}

static void sq_sweep(struct mbs_store *st, uint64_t cutoff, uint64_t now, mbs_done_fn done, void *ctx)
{
	done(ctx, sweep_sync((struct sq_store *)st, cutoff, now));
}

static void sq_close(struct mbs_store *st, void (*cb)(void *arg), void *arg)
{
	sqlite_free((struct sq_store *)st);
	if (cb)
		cb(arg);
}

static const struct mbs_store_ops sqlite_ops = {
	.name = "sqlite",
	.commit = sq_commit,
	.lookup = sq_lookup,
	.set_keys = sq_set_keys,
	.fetch = sq_fetch,
	.lease = sq_lease,
	.sweep = sq_sweep,
	.close = sq_close,
};

int mbs_store_sqlite_open(struct mbs_store **out, const char *state_dir)
{
	struct sq_store *q = calloc(1, sizeof(*q));
	int rc;

	if (!q)
		return RELM_ENOMEM;
	q->base.ops = &sqlite_ops;
	rc = sqlite_open(q, state_dir);
	if (rc) {
		sqlite_free(q);
		return rc;
	}
	*out = &q->base;
	return 0;
}

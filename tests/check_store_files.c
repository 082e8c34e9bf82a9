/*
 * check_store_files.c — the store's file (lib/store/store.h): modes and
 * ownership, a read-only folder, corrupt / truncated / foreign / newer
 * files left byte for byte untouched, the check at open skipped only after
 * a clean close; lazy loading with 100,000 relationships.  Schema versions
 * and migrations are in check_store_migrate.c.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sodium.h>
#include "error.h"
#include "store/store.h"
#include "util_faultvfs.h"
#include "util_store.h"

/* ---- schema, modes ------------------------------------------------------------ */

START_TEST(test_create_modes)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct stat sb;
	char dir[300];

	snprintf(dir, sizeof dir, "%s/state", ts_tmpdir);
	ck_assert_int_eq(stat(dir, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0700);
	ck_assert_int_eq(stat(ts_dbpath, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	ck_assert_int_eq(ts_exec_int(st, "PRAGMA user_version"), RELM_STORE_SCHEMA_VERSION);
	ck_assert_int_eq(ts_exec_int(st, "PRAGMA foreign_keys"), 1);
	ck_assert_int_eq(ts_exec_int(st, "PRAGMA synchronous"), 2);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM sqlite_schema WHERE type='table' AND name IN "
	                          "('protons','devices','circles','invites','replay_guard','relationships',"
	                          "'pending','messages','outbox','cursors','events','meta')"), 12);
	{
		sqlite3_stmt *s;
		sqlite3_prepare_v2(relm__store_db(st), "PRAGMA journal_mode", -1, &s, NULL);
		ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
		ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), "wal");
		sqlite3_finalize(s);
	}
	ts_populate(st);
	{
		char wal[600];
		snprintf(wal, sizeof wal, "%s-wal", ts_dbpath);
		ck_assert_int_eq(stat(wal, &sb), 0);
		ck_assert_int_eq(sb.st_mode & 0777, 0600);
	}
	relm_store_close(st);
	st = ts_open_ok(ts_dbpath, RELM_STORE_F_INTEGRITY, NULL);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM messages"), 40);
	relm_store_close(st);
	{
		struct relm_store *x = NULL;
		struct relm_store_opts o = { .flags = 0x80 };
		ck_assert_int_eq(relm_store_open(&x, ts_dbpath, &o), RELM_EINVAL);
	}
}
END_TEST

START_TEST(test_refuse_permissions)
{
	char err[512], dir[300];
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	size_t n1, n2;
	uint8_t *b1, *b2;

	ts_populate(st);
	relm_store_close(st);
	snprintf(dir, sizeof dir, "%s/state", ts_tmpdir);
	b1 = ts_read_file(ts_dbpath, &n1);

	ck_assert_int_eq(chmod(dir, 0750), 0);
	ck_assert_int_eq(ts_open_err(ts_dbpath, err, sizeof err), RELM_EPERM);
	ck_assert_ptr_nonnull(strstr(err, "0700"));
	ck_assert_int_eq(chmod(dir, 0700), 0);

	ck_assert_int_eq(chmod(ts_dbpath, 0644), 0);
	ck_assert_int_eq(ts_open_err(ts_dbpath, err, sizeof err), RELM_EPERM);
	ck_assert_ptr_nonnull(strstr(err, "0600"));
	ck_assert_int_eq(chmod(ts_dbpath, 0600), 0);

	if (geteuid() == 0) {   /* ownership by another uid: only root can arrange it */
		ck_assert_int_eq(chown(ts_dbpath, 65534, 65534), 0);
		ck_assert_int_eq(ts_open_err(ts_dbpath, err, sizeof err), RELM_EPERM);
		ck_assert_int_eq(chown(ts_dbpath, 0, 0), 0);
		ck_assert_int_eq(chown(dir, 65534, 65534), 0);
		ck_assert_int_eq(ts_open_err(ts_dbpath, err, sizeof err), RELM_EPERM);
		ck_assert_int_eq(chown(dir, 0, 0), 0);
	}
	{   /* a symlink in place of the store */
		char link[600];
		snprintf(link, sizeof link, "%s/state/link.db", ts_tmpdir);
		ck_assert_int_eq(symlink(ts_dbpath, link), 0);
		ck_assert_int_eq(ts_open_err(link, err, sizeof err), RELM_EPERM);
	}
	b2 = ts_read_file(ts_dbpath, &n2);
	ck_assert_uint_eq(n1, n2);
	ck_assert_int_eq(memcmp(b1, b2, n1), 0);
	free(b1);
	free(b2);
	st = ts_open_ok(ts_dbpath, 0, NULL);
	relm_store_close(st);
}
END_TEST

/* A read-only folder: root ignores modes, so the test drops to nobody
 * (Check forks each test, so this does not leak). */
START_TEST(test_readonly_folder)
{
	char err[512], dir[300], fresh[600];
	struct relm_store *st;
	size_t n1, n2;
	uint8_t *b1, *b2;

	if (geteuid() == 0) {
		ck_assert_int_eq(chown(ts_tmpdir, 65534, 65534), 0);
		ck_assert_int_eq(setgid(65534), 0);
		ck_assert_int_eq(setuid(65534), 0);
	}
	st = ts_open_ok(ts_dbpath, 0, NULL);
	ts_populate(st);
	relm_store_close(st);
	b1 = ts_read_file(ts_dbpath, &n1);
	snprintf(dir, sizeof dir, "%s/state", ts_tmpdir);
	ck_assert_int_eq(chmod(dir, 0500), 0);
	ck_assert_int_eq(ts_open_err(ts_dbpath, err, sizeof err), RELM_EPERM);
	ck_assert_ptr_nonnull(strstr(err, "read-only"));
	snprintf(fresh, sizeof fresh, "%s/new.db", dir);
	ck_assert_int_eq(ts_open_err(fresh, err, sizeof err), RELM_EPERM);
	b2 = ts_read_file(ts_dbpath, &n2);
	ck_assert_uint_eq(n1, n2);
	ck_assert_int_eq(memcmp(b1, b2, n1), 0);
	free(b1);
	free(b2);
	ck_assert_int_eq(chmod(dir, 0700), 0);
	st = ts_open_ok(ts_dbpath, 0, NULL);
	ck_assert_int_eq(ts_exec_int(st, "SELECT count(*) FROM messages"), 40);
	relm_store_close(st);
}
END_TEST

/* ---- damaged, newer, old files ---------------------------------------------- */

START_TEST(test_check_skipped_only_after_clean_close)
{
	char copy[600];
	size_t n;
	uint8_t *orig;
	struct relm_store *st = NULL;
	struct relm_store_opts o = { .check_always_bytes = 1 };
	pid_t pid;
	int status;

	ts_make_closed_store();
	orig = ts_read_file(ts_dbpath, &n);
	snprintf(copy, sizeof copy, "%s/state/copy.db", ts_tmpdir);
	/* page 3 of a cleanly closed store, destroyed */
	for (size_t i = 0; i < 4096; i++)
		orig[2 * 4096 + i] ^= 0x5a;
	ts_write_file(copy, orig, n);
	ck_assert_int_eq(relm_store_open(&st, copy, &o), 0);       /* no check: clean and big */
	relm_store_close(st);
	st = NULL;
	/* the same damage after an unclean end: a child opens and is killed */
	unlink(copy);
	free(orig);
	orig = ts_read_file(ts_dbpath, &n);
	ts_write_file(copy, orig, n);
	free(orig);          /* before the fork: the child ends with _exit */
	orig = NULL;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct relm_store *cst = NULL;
		_exit(relm_store_open(&cst, copy, NULL) == 0 ? 0 : 1);   /* never closed */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	{
		/* the child's open left meta.clean = 0 in the WAL or the file */
		sqlite3 *db;
		ck_assert_int_eq(sqlite3_open_v2(copy, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
		ck_assert_int_eq(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL), SQLITE_OK);
		sqlite3_stmt *q;
		ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='clean'", -1, &q, NULL), SQLITE_OK);
		ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
		ck_assert_int_eq(sqlite3_column_int(q, 0), 0);
		sqlite3_finalize(q);
		sqlite3_close(db);
	}
	free(orig);
	orig = ts_read_file(copy, &n);
	for (size_t i = 0; i < 4096; i++)
		orig[2 * 4096 + i] ^= 0x5a;
	ts_write_file(copy, orig, n);
	ck_assert_int_eq(relm_store_open(&st, copy, &o), RELM_ECORRUPT);
	ck_assert_ptr_null(st);
	free(orig);
}
END_TEST

START_TEST(test_corrupt_pages)
{
	char copy[600], err[512];
	size_t n, n2;
	uint8_t *orig, *b, *after;
	unsigned long long s0 = ts_seed;

	ts_make_closed_store();
	orig = ts_read_file(ts_dbpath, &n);
	ck_assert_uint_gt(n, 100 * 4096);
	snprintf(copy, sizeof copy, "%s/state/copy.db", ts_tmpdir);
	for (int trial = 0; trial < 12; trial++) {
		size_t pages = n / 4096;
		b = malloc(n);
		memcpy(b, orig, n);
		/* overwrite 1–3 random pages (never page 1, whose damage is a different test) */
		for (int k = 0, m = 1 + (int)(ts_prng() % 3); k < m; k++) {
			size_t pg = 1 + (size_t)(ts_prng() % (pages - 1));
			for (size_t i = 0; i < 4096; i++)
				b[pg * 4096 + i] = (uint8_t)ts_prng();
		}
		ts_write_file(copy, b, n);
		ck_assert_msg(ts_open_err(copy, err, sizeof err) == RELM_ECORRUPT,
		              "trial %d not detected as corrupt (RELM_SEED=0x%llx)", trial, s0);
		after = ts_read_file(copy, &n2);
		ck_assert_msg(n2 == n && memcmp(after, b, n) == 0, "file changed (RELM_SEED=0x%llx)", s0);
		free(after);
		free(b);
		unlink(copy);
	}
	/* Truncated to half, and to a few bytes. */
	ts_write_file(copy, orig, n / 2);
	ck_assert_int_eq(ts_open_err(copy, err, sizeof err), RELM_ECORRUPT);
	after = ts_read_file(copy, &n2);
	ck_assert_uint_eq(n2, n / 2);
	ck_assert_int_eq(memcmp(after, orig, n2), 0);
	free(after);
	/* Not a database at all. */
	ts_write_file(copy, (const uint8_t *)"this is not an SQLite database, it is a letter to my aunt........................................................................", 120);
	ck_assert_int_eq(ts_open_err(copy, err, sizeof err), RELM_ECORRUPT);
	after = ts_read_file(copy, &n2);
	ck_assert_uint_eq(n2, 120);
	free(after);
	free(orig);
}
END_TEST

/* Make `path` (mode 0600) an SQLite database by running sql in it. */
static void foreign_db(const char *path, const char *sql)
{
	sqlite3 *db;
	unlink(path);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(chmod(path, 0600), 0);
}

/* The file, byte for byte, and no -wal / -shm made beside it. */
static void assert_untouched(const char *path, const uint8_t *before, size_t n)
{
	char side[600];
	size_t n2;
	uint8_t *after = ts_read_file(path, &n2);
	ck_assert_uint_eq(n2, n);
	ck_assert(n == 0 || memcmp(after, before, n) == 0);
	free(after);
	snprintf(side, sizeof side, "%s-wal", path);
	ck_assert(!ts_file_exists(side));
	snprintf(side, sizeof side, "%s-shm", path);
	ck_assert(!ts_file_exists(side));
}

/* issue 13 item 5: a store is created only where no file exists.  An
 * existing file that is empty, or an SQLite database that is not relm's,
 * is refused with RELM_ENOTSTORE and a sentence that names the file and
 * says how to start afresh — and is left byte for byte as it was. */
START_TEST(test_empty_or_foreign_refused)
{
	static const char *const foreign[] = {
		"CREATE TABLE t(x)",                                           /* user_version 0 */
		"CREATE TABLE t(x); PRAGMA user_version=3",                    /* a version, not our tables */
		"CREATE TABLE meta(k); CREATE TABLE protons(x); CREATE TABLE relationships(x);"
		" CREATE TABLE messages(x); PRAGMA user_version=6; PRAGMA application_id=42", /* another program's id */
		"PRAGMA user_version=0",                                       /* an empty SQLite database */
	};
	char err[512], path[600];
	size_t n;
	uint8_t *b;
	struct stat sb;

	snprintf(path, sizeof path, "%s/state/relm.db", ts_tmpdir);
	ck_assert_int_eq(mkdir(ts_tmpdir, 0700) == 0 || errno == EEXIST, 1);
	ck_assert_int_eq(mkdir(strcat(strcpy(err, ts_tmpdir), "/state"), 0700) == 0 || errno == EEXIST, 1);
	/* truncated to 0 bytes: every identity would be gone without a word */
	ts_write_file(path, (const uint8_t *)"", 0);
	ck_assert_int_eq(chmod(path, 0600), 0);
	ck_assert_int_eq(ts_open_err(path, err, sizeof err), RELM_ENOTSTORE);
	ck_assert_msg(strstr(err, path) && strstr(err, "empty") && strstr(err, "move it away"), "%s", err);
	assert_untouched(path, NULL, 0);
	for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
		foreign_db(path, foreign[i]);
		b = ts_read_file(path, &n);
		ck_assert_msg(ts_open_err(path, err, sizeof err) == RELM_ENOTSTORE, "%s", foreign[i]);
		ck_assert_msg(strstr(err, path) && strstr(err, "move it away"), "%s", err);
		assert_untouched(path, b, n);
		free(b);
	}
	/* moved away: a store is made, with relm's application_id */
	unlink(path);
	{
		struct relm_store *st = ts_open_ok(path, 0, NULL);
		ck_assert_int_eq(ts_exec_int(st, "PRAGMA application_id"), RELM_STORE_APPLICATION_ID);
		relm_store_close(st);
	}
	/* a store made before application_id existed (0) still opens */
	{
		sqlite3 *db;
		ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
		ck_assert_int_eq(sqlite3_exec(db, "PRAGMA application_id=0", NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
		relm_store_close(ts_open_ok(path, 0, NULL));
	}
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
}
END_TEST

/* A store is made whole beside its name and linked in place: an open that
 * fails at any write while making it (a full disk, a dying one — and so a
 * crash at that instant) leaves no file at the store's name, never an
 * empty one that the next start would have to refuse; the next open makes
 * the store.  A `.new` left by a crash is removed first. */
START_TEST(test_create_is_atomic)
{
	char path[600], tmp[620], err[512];
	long total, nth, creations_failed = 0, creations_failed_late = 0;
	struct relm_store *st = NULL;
	struct relm_store_opts o = { .vfs = TU_FAULTVFS_NAME, .errbuf = err, .errlen = sizeof err };

	ck_assert_int_eq(tu_faultvfs_register(), SQLITE_OK);
	snprintf(path, sizeof path, "%s/state/relm.db", ts_tmpdir);
	snprintf(tmp, sizeof tmp, "%s.new", path);
	tu_faultvfs_fail_after(0, 0);
	relm_store_close(ts_open_ok(path, 0, TU_FAULTVFS_NAME));
	total = tu_faultvfs_ops();
	ck_assert_int_gt(total, 5);
	unlink(path);
	for (nth = 1; nth <= total; nth++) {
		tu_faultvfs_fail_after((int)nth, nth % 2 ? SQLITE_FULL : SQLITE_IOERR);
		int r = relm_store_open(&st, path, &o);
		long failed = tu_faultvfs_failures();
		tu_faultvfs_fail_after(0, 0);
		relm_store_close(st);
		st = NULL;
		ck_assert_msg(r == 0 || failed > 0, "nth %ld: %s without a fault", nth, relm_strerror(r));
		ck_assert_msg(r == 0 || r == RELM_EDISKFULL || r == RELM_ESTORE, "nth %ld: %s", nth,
		              relm_strerror(r));
		ck_assert(!ts_file_exists(tmp));
		if (ts_file_exists(path)) {
			/* in place before the fault (a write of the open after
			 * the link): then it is a whole store */
			st = ts_open_ok(path, RELM_STORE_F_INTEGRITY, NULL);
			ck_assert_int_eq(ts_exec_int(st, "PRAGMA user_version"), RELM_STORE_SCHEMA_VERSION);
			relm_store_close(st);
			st = NULL;
			creations_failed_late++;
			unlink(path);
		} else {
			ck_assert_msg(r != 0, "nth %ld: opened, and no file", nth);
			creations_failed += 1;
		}
	}
	/* both kinds were met: faults while the store was being made, and after */
	ck_assert_int_gt(creations_failed, 5);
	ck_assert_int_gt(creations_failed_late, 0);
	/* a crash's leftover under the temporary name is not in the way */
	ts_write_file(tmp, (const uint8_t *)"half", 4);
	st = ts_open_ok(path, RELM_STORE_F_INTEGRITY, NULL);
	ck_assert_int_eq(ts_exec_int(st, "PRAGMA user_version"), RELM_STORE_SCHEMA_VERSION);
	relm_store_close(st);
	ck_assert(!ts_file_exists(tmp));
}
END_TEST

START_TEST(test_newer_version)
{
	char err[512], wal[600], shm[600];
	sqlite3 *db;
	size_t n, n2;
	uint8_t *b1, *b2;

	ts_make_closed_store();
	/* Turn it into a "v99" store in rollback-journal mode: if our probe
	 * switched it to WAL, bytes 18–19 of the header would change. */
	ck_assert_int_eq(sqlite3_open(ts_dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA journal_mode=DELETE; PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	b1 = ts_read_file(ts_dbpath, &n);
	ck_assert_int_eq(b1[18], 1);
	ck_assert_int_eq(ts_open_err(ts_dbpath, err, sizeof err), RELM_ESTORE_NEWER);
	ck_assert_ptr_nonnull(strstr(err, "99"));
	b2 = ts_read_file(ts_dbpath, &n2);
	ck_assert_uint_eq(n, n2);
	ck_assert_int_eq(memcmp(b1, b2, n), 0);
	snprintf(wal, sizeof wal, "%s-wal", ts_dbpath);
	snprintf(shm, sizeof shm, "%s-shm", ts_dbpath);
	ck_assert(!ts_file_exists(wal));
	ck_assert(!ts_file_exists(shm));
	free(b2);
	/* The same in WAL mode. */
	ck_assert_int_eq(sqlite3_open(ts_dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	free(b1);
	b1 = ts_read_file(ts_dbpath, &n);
	ck_assert_int_eq(ts_open_err(ts_dbpath, err, sizeof err), RELM_ESTORE_NEWER);
	b2 = ts_read_file(ts_dbpath, &n2);
	ck_assert_uint_eq(n, n2);
	ck_assert_int_eq(memcmp(b1, b2, n), 0);
	free(b1);
	free(b2);
}
END_TEST

/* ---- lazy loading ---------------------------------------------------------------- */

START_TEST(test_lazy_100k)
{
	enum { N = 100000 };
	struct relm_store *st;
	struct relm_store_proton p;
	struct relm_store_rel r, g;
	uint8_t state[400];
	double t0, t_fill, t_quick, t_full, t_none;
	long reads;
	uint64_t steps;

	st = ts_open_ok(ts_dbpath, 0, NULL);
	ts_mk_proton(&p, 1);
	t0 = ts_now_s();
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
	for (uint32_t i = 0; i < N; i++) {
		ts_fill(state, sizeof state, (uint8_t)i);
		ts_mk_rel(&r, p.id, i, state, sizeof state);
		ck_assert_int_eq(relm_store_rel_put(st, &r), 0);
	}
	ck_assert_int_eq(relm_store_commit(st), 0);
	relm_store_close(st);
	t_fill = ts_now_s() - t0;

	t0 = ts_now_s();
	st = ts_open_ok(ts_dbpath, 0, NULL);
	t_quick = ts_now_s() - t0;
	relm_store_close(st);
	t0 = ts_now_s();
	st = ts_open_ok(ts_dbpath, RELM_STORE_F_INTEGRITY, NULL);
	t_full = ts_now_s() - t0;
	relm_store_close(st);

	/* Open + one get + one update through the counting VFS. */
	tu_faultvfs_fail_after(0, 0);
	tu_faultvfs_reads(1);
	t0 = ts_now_s();
	st = ts_open_ok(ts_dbpath, RELM_STORE_F_NOCHECK, TU_FAULTVFS_NAME);
	t_none = ts_now_s() - t0;
	ts_mk_rel(&r, p.id, 54321, NULL, 0);
	relm__store_vm_steps(st, 1);
	ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, RELM_STORE_WITH_STATE | RELM_STORE_WITH_SECRETS), 0);
	ck_assert_str_eq(g.label, "rel 54321");
	ck_assert_uint_eq(g.state_len, sizeof state);
	ck_assert_int_eq(relm_store_begin(st), 0);
	g.state[0] ^= 1;
	ck_assert_int_eq(relm_store_rel_set_state(st, r.id, g.state, g.state_len, 1), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	relm_store_rel_clear(&g);
	steps = relm__store_vm_steps(st, 0);
	reads = tu_faultvfs_reads(0);
	ck_assert_int_eq(ts_exec_int(st, "PRAGMA page_count"), ts_exec_int(st, "PRAGMA page_count"));
	fprintf(stderr, "  lazy: %d rels, %d pages; fill %.2fs; open+quick_check %.3fs, "
	        "open+integrity_check %.3fs, open without check %.4fs; "
	        "open+get+update: %ld page reads, %llu VM steps\n",
	        N, ts_exec_int(st, "PRAGMA page_count"), t_fill, t_quick, t_full, t_none, reads,
	        (unsigned long long)steps);
	ck_assert_int_lt(reads, 60);
	ck_assert_uint_lt(steps, 200);
	ck_assert_int_gt(ts_exec_int(st, "PRAGMA page_count"), 10000);
	relm_store_close(st);
}
END_TEST



int main(void)
{
	const struct ts_test tests[] = {
		{ "open_permissions", test_create_modes, 10 },
		{ "open_permissions", test_refuse_permissions, 10 },
		{ "open_permissions", test_readonly_folder, 10 },
		{ "corruption", test_corrupt_pages, 30 },
		{ "corruption", test_check_skipped_only_after_clean_close, 30 },
		{ "corruption", test_newer_version, 10 },
		{ "not_a_store", test_empty_or_foreign_refused, 10 },
		{ "not_a_store", test_create_is_atomic, 30 },
		{ "lazy", test_lazy_100k, 120 },
	};
	return ts_run("store_files", tests, sizeof tests / sizeof tests[0]);
}

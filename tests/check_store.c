/*
 * check_store.c — the SQLite store (lib/store/store.h): every API round trip,
 * de-duplication, the replay guard, the event log, transactions and
 * batches, file modes and ownership, corrupt / truncated / newer files
 * left byte for byte untouched, a read-only folder, disk full and I/O
 * errors injected at every write of a representative sequence (through the
 * fault VFS, tests/util_faultvfs.c), the v1–v5 fixtures, the v2→v3 migration
 * of the outgoing count, the v3→v4 acks table and its rows through steps,
 * batches, effects and cascades, the v4→v5 rewrite of two CHECK constraints
 * (same constraints, same rows, no ephemeral tables, the text of a fresh
 * store; an unexpected table refused), the staging of relationship columns inside a
 * transaction (step rollback, batch rollback, readers, deadline queries, a
 * failed write-back at commit), and lazy loading with 100,000
 * relationships.
 *
 * Randomised tests take their seed from RELM_SEED (default below) and
 * print it in every failure message.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/time.h>
#include <unistd.h>
#include <sqlite3.h>
#include <sodium.h>
#include "error.h"
#include "store/store.h"
#include "util_faultvfs.h"

static unsigned long long seed = 0x5eed5eedULL;
static char tmpdir[256];
static char dbpath[512];

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t prng(void)
{
	/* splitmix64: deterministic from RELM_SEED */
	uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double now_s(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

static void setup(void)
{
	const char *s = getenv("RELM_SEED");
	if (s && *s)
		seed = strtoull(s, NULL, 0);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/relm-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof dbpath, "%s/state/relm.db", tmpdir);
	ck_assert_int_eq(tu_faultvfs_register(), SQLITE_OK);
	tu_faultvfs_fail_after(0, 0);
}

static void teardown(void)
{
	chmod(tmpdir, 0700);
	{
		char st[300];
		snprintf(st, sizeof st, "%s/state", tmpdir);
		chmod(st, 0700);
	}
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static struct relm_store *open_ok(const char *path, unsigned flags, const char *vfs)
{
	struct relm_store *st = NULL;
	char err[512];
	struct relm_store_opts o = { .vfs = vfs, .flags = flags, .errbuf = err, .errlen = sizeof err };
	int r = relm_store_open(&st, path, &o);
	ck_assert_msg(r == 0, "open %s: %s (%s)", path, relm_strerror(r), err);
	return st;
}

static int open_err(const char *path, char *err, size_t errlen)
{
	struct relm_store *st = NULL;
	struct relm_store_opts o = { .errbuf = err, .errlen = errlen };
	int r = relm_store_open(&st, path, &o);
	ck_assert_ptr_null(st);
	return r;
}

static void fill(uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v + i);
}

static void mk_proton(struct relm_store_proton *p, uint8_t v)
{
	memset(p, 0, sizeof *p);
	fill(p->id, sizeof p->id, v);
	fill(p->ipk, sizeof p->ipk, (uint8_t)(v + 100));
	fill(p->isk, sizeof p->isk, (uint8_t)(v + 50));
	snprintf(p->label, sizeof p->label, "proton %u", v);
	p->created = 1000 + v;
}

static void mk_rel(struct relm_store_rel *r, const uint8_t proton[16], uint32_t i, uint8_t *state, size_t len)
{
	memset(r, 0, sizeof *r);
	memcpy(r->proton, proton, 16);
	r->id[0] = 0xee;
	r->id[12] = (uint8_t)(i >> 24); r->id[13] = (uint8_t)(i >> 16);
	r->id[14] = (uint8_t)(i >> 8);  r->id[15] = (uint8_t)i;
	memcpy(r->mailbox_id, r->id, 16);
	r->mailbox_id[31] = 0x77;
	fill(r->remote_ipk, 32, (uint8_t)i);
	fill(r->mailbox_sk, 64, (uint8_t)(i + 3));
	snprintf(r->label, sizeof r->label, "rel %u", i);
	r->mode = 1;
	r->created = r->last_activity = 5000 + i;
	r->state = state;
	r->state_len = len;
}

static int exec_int(struct relm_store *st, const char *sql)
{
	sqlite3_stmt *s;
	int v = -1;
	ck_assert_int_eq(sqlite3_prepare_v2(relm__store_db(st), sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return v;
}

static uint8_t *read_file(const char *p, size_t *len)
{
	FILE *f = fopen(p, "rb");
	uint8_t *b;
	long n;
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)n + 1);
	ck_assert_int_eq(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void write_file(const char *p, const uint8_t *b, size_t n)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, b, n), (ssize_t)n);
	close(fd);
}

static int file_exists(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0;
}

/* A store with one proton, two relationships, messages, events. */
static void populate(struct relm_store *st)
{
	struct relm_store_proton p;
	struct relm_store_rel r;
	uint8_t state[300];

	mk_proton(&p, 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
	for (uint32_t i = 0; i < 2; i++) {
		fill(state, sizeof state, (uint8_t)(i + 9));
		mk_rel(&r, p.id, i, state, sizeof state);
		ck_assert_int_eq(relm_store_rel_put(st, &r), 0);
		for (int k = 0; k < 20; k++) {
			struct relm_store_msg m = { .direction_in = k & 1, .origin = RELM_ORIGIN_REMOTE,
			                            .ts = (uint64_t)k, .status = RELM_STATUS_NONE,
			                            .created = (uint64_t)k };
			uint8_t body[200];
			memcpy(m.rel, r.id, 16);
			fill(m.id, 16, (uint8_t)(k * 7 + (int)i));
			fill(body, sizeof body, (uint8_t)k);
			m.body = body;
			m.body_len = sizeof body;
			ck_assert_int_eq(relm_store_msg_insert(st, &m), 1);
		}
	}
	ck_assert_int_eq(relm_store_event_append(st, "relationship.created", "{}", 1, NULL), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
}

/* A digest of every row of every table: the "logical state". */
static void digest(struct relm_store *st, uint8_t out[32])
{
	static const char *const tables[] = { "protons", "devices", "invites", "replay_guard",
		"relationships", "pending", "messages", "outbox", "cursors", "events" };
	crypto_generichash_state h;

	crypto_generichash_init(&h, NULL, 0, 32);
	for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
		char sql[128];
		sqlite3_stmt *s;
		snprintf(sql, sizeof sql, "SELECT * FROM %s ORDER BY 1,2", tables[t]);
		ck_assert_int_eq(sqlite3_prepare_v2(relm__store_db(st), sql, -1, &s, NULL), SQLITE_OK);
		while (sqlite3_step(s) == SQLITE_ROW) {
			for (int c = 0; c < sqlite3_column_count(s); c++) {
				const void *b = sqlite3_column_blob(s, c);
				int n = sqlite3_column_bytes(s, c);
				crypto_generichash_update(&h, (const uint8_t *)&n, sizeof n);
				if (b)
					crypto_generichash_update(&h, b, (size_t)n);
			}
		}
		sqlite3_finalize(s);
	}
	crypto_generichash_final(&h, out, 32);
}

/* ---- schema, modes ------------------------------------------------------------ */

START_TEST(test_create_modes)
{
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	struct stat sb;
	char dir[300];

	snprintf(dir, sizeof dir, "%s/state", tmpdir);
	ck_assert_int_eq(stat(dir, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0700);
	ck_assert_int_eq(stat(dbpath, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	ck_assert_int_eq(exec_int(st, "PRAGMA user_version"), RELM_STORE_SCHEMA_VERSION);
	ck_assert_int_eq(exec_int(st, "PRAGMA foreign_keys"), 1);
	ck_assert_int_eq(exec_int(st, "PRAGMA synchronous"), 2);
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM sqlite_schema WHERE type='table' AND name IN "
	                          "('protons','devices','circles','invites','replay_guard','relationships',"
	                          "'pending','messages','outbox','cursors','events','meta')"), 12);
	{
		sqlite3_stmt *s;
		sqlite3_prepare_v2(relm__store_db(st), "PRAGMA journal_mode", -1, &s, NULL);
		ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
		ck_assert_str_eq((const char *)sqlite3_column_text(s, 0), "wal");
		sqlite3_finalize(s);
	}
	populate(st);
	{
		char wal[600];
		snprintf(wal, sizeof wal, "%s-wal", dbpath);
		ck_assert_int_eq(stat(wal, &sb), 0);
		ck_assert_int_eq(sb.st_mode & 0777, 0600);
	}
	relm_store_close(st);
	st = open_ok(dbpath, RELM_STORE_F_INTEGRITY, NULL);
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM messages"), 40);
	relm_store_close(st);
	{
		struct relm_store *x = NULL;
		struct relm_store_opts o = { .flags = 0x80 };
		ck_assert_int_eq(relm_store_open(&x, dbpath, &o), RELM_EINVAL);
	}
}
END_TEST

START_TEST(test_refuse_permissions)
{
	char err[512], dir[300];
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	size_t n1, n2;
	uint8_t *b1, *b2;

	populate(st);
	relm_store_close(st);
	snprintf(dir, sizeof dir, "%s/state", tmpdir);
	b1 = read_file(dbpath, &n1);

	ck_assert_int_eq(chmod(dir, 0750), 0);
	ck_assert_int_eq(open_err(dbpath, err, sizeof err), RELM_EPERM);
	ck_assert_ptr_nonnull(strstr(err, "0700"));
	ck_assert_int_eq(chmod(dir, 0700), 0);

	ck_assert_int_eq(chmod(dbpath, 0644), 0);
	ck_assert_int_eq(open_err(dbpath, err, sizeof err), RELM_EPERM);
	ck_assert_ptr_nonnull(strstr(err, "0600"));
	ck_assert_int_eq(chmod(dbpath, 0600), 0);

	if (geteuid() == 0) {   /* ownership by another uid: only root can arrange it */
		ck_assert_int_eq(chown(dbpath, 65534, 65534), 0);
		ck_assert_int_eq(open_err(dbpath, err, sizeof err), RELM_EPERM);
		ck_assert_int_eq(chown(dbpath, 0, 0), 0);
		ck_assert_int_eq(chown(dir, 65534, 65534), 0);
		ck_assert_int_eq(open_err(dbpath, err, sizeof err), RELM_EPERM);
		ck_assert_int_eq(chown(dir, 0, 0), 0);
	}
	{   /* a symlink in place of the store */
		char link[600];
		snprintf(link, sizeof link, "%s/state/link.db", tmpdir);
		ck_assert_int_eq(symlink(dbpath, link), 0);
		ck_assert_int_eq(open_err(link, err, sizeof err), RELM_EPERM);
	}
	b2 = read_file(dbpath, &n2);
	ck_assert_uint_eq(n1, n2);
	ck_assert_int_eq(memcmp(b1, b2, n1), 0);
	free(b1);
	free(b2);
	st = open_ok(dbpath, 0, NULL);
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
		ck_assert_int_eq(chown(tmpdir, 65534, 65534), 0);
		ck_assert_int_eq(setgid(65534), 0);
		ck_assert_int_eq(setuid(65534), 0);
	}
	st = open_ok(dbpath, 0, NULL);
	populate(st);
	relm_store_close(st);
	b1 = read_file(dbpath, &n1);
	snprintf(dir, sizeof dir, "%s/state", tmpdir);
	ck_assert_int_eq(chmod(dir, 0500), 0);
	ck_assert_int_eq(open_err(dbpath, err, sizeof err), RELM_EPERM);
	ck_assert_ptr_nonnull(strstr(err, "read-only"));
	snprintf(fresh, sizeof fresh, "%s/new.db", dir);
	ck_assert_int_eq(open_err(fresh, err, sizeof err), RELM_EPERM);
	b2 = read_file(dbpath, &n2);
	ck_assert_uint_eq(n1, n2);
	ck_assert_int_eq(memcmp(b1, b2, n1), 0);
	free(b1);
	free(b2);
	ck_assert_int_eq(chmod(dir, 0700), 0);
	st = open_ok(dbpath, 0, NULL);
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM messages"), 40);
	relm_store_close(st);
}
END_TEST

/* ---- API round trips -------------------------------------------------------------- */

static int count_cb_proton(void *ctx, const struct relm_store_proton *p)
{
	ck_assert(sodium_is_zero(p->isk, sizeof p->isk));
	++*(int *)ctx;
	return 0;
}

START_TEST(test_protons_devices)
{
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	struct relm_store_proton p, q;
	struct relm_store_device d, e;
	int n = 0;

	mk_proton(&p, 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), RELM_EEXIST);
	mk_proton(&q, 2);
	ck_assert_int_eq(relm_store_proton_put(st, &q), 0);
	ck_assert_int_eq(relm_store_proton_set_strategy(st, q.id, "fanout"), 0);
	memset(&d, 0, sizeof d);
	memcpy(d.proton, p.id, 16);
	fill(d.device, 16, 3);
	fill(d.pk, 32, 4);
	fill(d.sk, 64, 5);
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
	fill(q.id, 16, 2);
	ck_assert_int_eq(relm_store_proton_get(st, q.id, &q, 0), 0);
	ck_assert_str_eq(q.strategy, "fanout");
	ck_assert_int_eq(relm_store_proton_list(st, count_cb_proton, &n), 0);
	ck_assert_int_eq(n, 2);

	ck_assert_int_eq(relm_store_device_get_self(st, p.id, &e), 0);
	ck_assert_int_eq(e.has_sk, 1);
	ck_assert_int_eq(e.self, 1);
	ck_assert_str_eq(e.label, "laptop");
	fill(d.sk, 64, 5);
	ck_assert_int_eq(memcmp(e.sk, d.sk, 64), 0);
	relm_store_device_clear(&e);
	relm_store_close(st);
}
END_TEST

START_TEST(test_invites_replay)
{
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	struct relm_store_proton p;
	struct relm_store_invite inv, got;
	uint8_t ek[32], rel[16], pr[16];
	uint32_t spk;

	mk_proton(&p, 1);
	memset(&inv, 0, sizeof inv);
	memcpy(inv.proton, p.id, 16);
	inv.spk_id = 77;
	fill(inv.spk_priv, 32, 1);
	inv.opk_id = 78;
	fill(inv.opk_priv, 32, 2);
	fill(inv.mailbox_id, 32, 3);
	fill(inv.mailbox_sk, 64, 4);
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
	fill(ek, 32, 9);
	fill(rel, 16, 10);
	ck_assert_int_eq(relm_store_replay_check_insert(st, p.id, ek, rel, 5), 0);
	ck_assert_int_eq(relm_store_replay_check_insert(st, p.id, ek, rel, 6), RELM_EREPLAY);
	ck_assert_int_eq(relm_store_replay_check_insert(st, p.id, ek, NULL, 6), RELM_EREPLAY);
	ek[0] ^= 1;
	ck_assert_int_eq(relm_store_replay_check_insert(st, p.id, ek, rel, 6), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);

	ck_assert_int_eq(relm_store_invite_get(st, p.id, 77, &got), 0);
	ck_assert_int_eq(got.used, 1);
	ck_assert(sodium_is_zero(got.opk_priv, 32));   /* the one-time prekey is gone */
	relm_store_invite_clear(&got);
	/* The replay survives a reopen. */
	relm_store_close(st);
	st = open_ok(dbpath, 0, NULL);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_replay_check_insert(st, p.id, ek, rel, 7), RELM_EREPLAY);
	ck_assert_int_eq(relm_store_invite_expire(st, 9999), 0);
	ck_assert_int_eq(relm_store_invite_expire(st, 10001), 1);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_invite_get(st, p.id, 77, &got), RELM_ENOTFOUND);
	relm_store_close(st);
}
END_TEST

struct list_acc { int n; uint8_t last[16]; };

static int rel_cb(void *ctx, const struct relm_store_rel *r)
{
	struct list_acc *a = ctx;
	ck_assert_ptr_null(r->state);
	ck_assert(sodium_is_zero(r->mailbox_sk, 64));
	if (a->n)
		ck_assert_int_lt(memcmp(a->last, r->id, 16), 0);
	memcpy(a->last, r->id, 16);
	a->n++;
	return 0;
}

START_TEST(test_relationships)
{
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	struct relm_store_proton p;
	struct relm_store_rel r, g;
	uint8_t state[5000], rid[16];
	struct list_acc acc;

	mk_proton(&p, 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
	for (uint32_t i = 0; i < 25; i++) {
		fill(state, sizeof state, (uint8_t)i);
		mk_rel(&r, p.id, i, state, sizeof state);
		ck_assert_int_eq(relm_store_rel_put(st, &r), 0);
	}
	ck_assert_int_eq(relm_store_rel_put(st, &r), RELM_EEXIST);
	r.proton[0] ^= 0xff;
	r.id[0] = 1;
	r.mailbox_id[0] = 1;
	ck_assert_int_eq(relm_store_rel_put(st, &r), RELM_ENOTFOUND);   /* foreign key */
	ck_assert_int_eq(relm_store_commit(st), 0);

	mk_rel(&r, p.id, 7, state, sizeof state);
	ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, 0), 0);
	ck_assert_ptr_null(g.state);
	ck_assert_str_eq(g.label, "rel 7");
	ck_assert_int_eq(g.mode, 1);
	ck_assert_str_eq(g.remote_addr, "");
	ck_assert(sodium_is_zero(g.mailbox_sk, 64));
	ck_assert_int_eq(memcmp(g.remote_ipk, r.remote_ipk, 32), 0);
	relm_store_rel_clear(&g);
	ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, RELM_STORE_WITH_STATE | RELM_STORE_WITH_SECRETS), 0);
	fill(state, sizeof state, 7);
	ck_assert_uint_eq(g.state_len, sizeof state);
	ck_assert_int_eq(memcmp(g.state, state, sizeof state), 0);
	ck_assert_int_eq(memcmp(g.mailbox_sk, r.mailbox_sk, 64), 0);
	relm_store_rel_clear(&g);
	ck_assert_int_eq(relm_store_rel_by_mailbox(st, r.mailbox_id, rid), 0);
	ck_assert_int_eq(memcmp(rid, r.id, 16), 0);

	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_state(st, r.id, (const uint8_t *)"new", 3, 99999), 0);
	ck_assert_int_eq(relm_store_rel_set_remote_addr(st, r.id, "example.org:7427/abc"), 0);
	ck_assert_int_eq(relm_store_rel_set_unread(st, r.id, 4), 0);
	ck_assert_int_eq(relm_store_rel_set_state(st, p.id, (const uint8_t *)"x", 1, 1), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, RELM_STORE_WITH_STATE), 0);
	ck_assert_uint_eq(g.state_len, 3);
	ck_assert_int_eq(memcmp(g.state, "new", 3), 0);
	ck_assert_uint_eq(g.last_activity, 99999);
	ck_assert_uint_eq(g.unread, 4);
	ck_assert_str_eq(g.remote_addr, "example.org:7427/abc");
	relm_store_rel_clear(&g);

	/* Pagination: 10 + 10 + 5. */
	memset(&acc, 0, sizeof acc);
	ck_assert_int_eq(relm_store_rel_list(st, p.id, NULL, 10, rel_cb, &acc), 0);
	ck_assert_int_eq(acc.n, 10);
	ck_assert_int_eq(relm_store_rel_list(st, p.id, acc.last, 10, rel_cb, &acc), 0);
	ck_assert_int_eq(acc.n, 20);
	ck_assert_int_eq(relm_store_rel_list(st, p.id, acc.last, 10, rel_cb, &acc), 0);
	ck_assert_int_eq(acc.n, 25);
	ck_assert_int_eq(relm_store_rel_list(st, p.id, acc.last, 10, rel_cb, &acc), 0);
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

START_TEST(test_pending_cursor)
{
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	uint8_t rel[16], h[16], mb[32];
	uint64_t c = 99;
	int n = 0;

	populate(st);
	mk_rel(&(struct relm_store_rel){0}, rel, 0, NULL, 0);
	{
		struct relm_store_rel r;
		uint8_t pid[16];
		fill(pid, 16, 1);
		mk_rel(&r, pid, 0, NULL, 0);
		memcpy(rel, r.id, 16);
	}
	fill(h, 16, 1);
	fill(mb, 32, 8);
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
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	struct relm_store_rel r;
	struct relm_store_msg m, g;
	struct msg_acc a = { 0, 0 };
	uint8_t pid[16];

	populate(st);
	fill(pid, 16, 1);
	mk_rel(&r, pid, 0, NULL, 0);
	/* populate() inserted id fill(k*7) for k in 0..19; insert k=3 again with another body. */
	memset(&m, 0, sizeof m);
	memcpy(m.rel, r.id, 16);
	fill(m.id, 16, 21);
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
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM messages"), 40);

	ck_assert_int_eq(relm_store_msg_list(st, r.id, 0, 7, msg_cb, &a), 0);
	ck_assert_int_eq(a.n, 7);
	ck_assert_int_eq(relm_store_msg_list(st, r.id, a.last, 0, msg_cb, &a), 0);
	ck_assert_int_eq(a.n, 20);

	fill(m.id, 16, 21);
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
	struct relm_store *st = open_ok(dbpath, 0, NULL);
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
	ck_assert_int_eq(relm_store_outbox_purge_posted(st), 2);
	ck_assert_int_eq(relm_store_outbox_add(st, &o, &seq[0]), 0);
	ck_assert_int_gt(seq[0], seq[4]);      /* AUTOINCREMENT: never reused */
	o.dest[0] = '\0';
	ck_assert_int_eq(relm_store_outbox_add(st, &o, NULL), RELM_EINVAL);
	ck_assert_int_eq(relm_store_commit(st), 0);
	relm_store_close(st);
}
END_TEST

static int ev_cb(void *ctx, int64_t seq, const char *type, const char *json, uint64_t ts)
{
	int64_t *last = ctx;
	ck_assert_int_eq(seq, *last + 1);
	ck_assert_str_eq(type, "message.received");
	ck_assert_str_eq(json, "{\"n\":1}");
	ck_assert_uint_eq(ts, (uint64_t)seq);
	*last = seq;
	return 0;
}

START_TEST(test_events)
{
	struct relm_store *st = NULL;
	struct relm_store_opts o = { .event_keep = 10 };
	int64_t seq, oldest, last, cur;

	ck_assert_int_eq(relm_store_open(&st, dbpath, &o), 0);
	ck_assert_int_eq(relm_store_event_bounds(st, &oldest, &last), 0);
	ck_assert_int_eq(oldest, 0);
	ck_assert_int_eq(last, 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	for (int i = 1; i <= 25; i++) {
		ck_assert_int_eq(relm_store_event_append(st, "message.received", "{\"n\":1}", (uint64_t)i, &seq), 0);
		ck_assert_int_eq(seq, i);
	}
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_event_bounds(st, &oldest, &last), 0);
	ck_assert_int_eq(oldest, 16);
	ck_assert_int_eq(last, 25);
	cur = 20;
	ck_assert_int_eq(relm_store_event_list(st, 20, 0, ev_cb, &cur), 0);
	ck_assert_int_eq(cur, 25);
	cur = 15;
	ck_assert_int_eq(relm_store_event_list(st, 0, 3, ev_cb, &cur), 0);
	ck_assert_int_eq(cur, 18);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_event_trim(st, 4), 6);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_event_bounds(st, &oldest, &last), 0);
	ck_assert_int_eq(oldest, 22);
	relm_store_close(st);
	/* seq survives trimming everything and reopening */
	st = open_ok(dbpath, 0, NULL);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_event_trim(st, 0), 4);
	ck_assert_int_eq(relm_store_event_append(st, "x", "{}", 1, &seq), 0);
	ck_assert_int_eq(seq, 26);
	ck_assert_int_eq(relm_store_commit(st), 0);
	relm_store_close(st);
}
END_TEST

START_TEST(test_transactions_batch)
{
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	struct relm_store *other;
	uint8_t mb[32];
	uint64_t c;

	fill(mb, 32, 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 1), 0);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_int_eq(relm_store_cursor_get(st, mb, &c), 0);
	ck_assert_uint_eq(c, 0);

	/* Batch: step 1 commits, step 2 rolls back alone, step 3 commits. */
	other = open_ok(dbpath, RELM_STORE_F_NOCHECK, NULL);
	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_in_txn(st), 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 1), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 2), 0);
	ck_assert_int_eq(relm_store_event_append(st, "x", "{}", 1, NULL), 0);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_int_eq(relm_store_cursor_get(st, mb, &c), 0);
	ck_assert_uint_eq(c, 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	fill(mb + 16, 16, 9);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 3), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	/* Nothing is visible elsewhere, and the writer lock is held. */
	ck_assert_int_eq(relm_store_cursor_get(other, mb, &c), 0);
	ck_assert_uint_eq(c, 0);
	ck_assert_int_eq(sqlite3_busy_timeout(relm__store_db(other), 10), SQLITE_OK);
	ck_assert_int_eq(relm_store_begin(other), RELM_EBUSY);
	ck_assert_int_eq(relm_store_error(other), 0);         /* busy is not sticky */
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	ck_assert_int_eq(relm_store_cursor_get(other, mb, &c), 0);
	ck_assert_uint_eq(c, 3);
	ck_assert_int_eq(exec_int(other, "SELECT count(*) FROM events"), 0);
	ck_assert_int_eq(exec_int(other, "SELECT count(*) FROM cursors"), 2);

	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 4), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_batch_rollback(st), 0);
	ck_assert_int_eq(relm_store_cursor_get(st, mb, &c), 0);
	ck_assert_uint_eq(c, 3);
	relm_store_close(other);
	relm_store_close(st);
}
END_TEST

START_TEST(test_apply_effects)
{
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	struct relm_effects fx;
	struct relm_fx *f;
	struct relm_store_rel r;
	struct relm_store_msg g;
	uint8_t pid[16];

	populate(st);
	fill(pid, 16, 1);
	mk_rel(&r, pid, 1, NULL, 0);
	relm_effects_init(&fx);
	f = relm__fx_push(&fx, RELM_FX_DELIVER);
	fill(f->msg_id, 16, 200);
	f->data = malloc(5);
	memcpy(f->data, "hello", 5);
	f->len = 5;
	f->kind = 1;
	f->direction_in = 1;
	f->origin = RELM_ORIGIN_REMOTE;
	f->ts = 7;
	f = relm__fx_push(&fx, RELM_FX_DELIVER);   /* the same id again: de-duplicated */
	fill(f->msg_id, 16, 200);
	f->direction_in = 1;
	f = relm__fx_push(&fx, RELM_FX_POST);
	fill(f->msg_id, 16, 201);
	f->data = malloc(64);
	memset(f->data, 0xab, 64);
	f->len = 64;
	f = relm__fx_push(&fx, RELM_FX_DELIVER);   /* one of ours */
	fill(f->msg_id, 16, 210);
	f->data = malloc(3);
	memcpy(f->data, "out", 3);
	f->len = 3;
	f->kind = 1;
	f->direction_in = 0;
	f->origin = RELM_ORIGIN_SELF;
	f = relm__fx_push(&fx, RELM_FX_STATUS);
	fill(f->msg_id, 16, 210);
	f->status = RELM_STATUS_FAILED;
	snprintf(f->detail, sizeof f->detail, "a \"quoted\" reason");
	f = relm__fx_push(&fx, RELM_FX_STATUS);    /* a status for a message we received: ignored */
	fill(f->msg_id, 16, 200);
	f->status = RELM_STATUS_DELIVERED;
	f = relm__fx_push(&fx, RELM_FX_EVENT);
	f->event = "fork.detected";
	snprintf(f->detail, sizeof f->detail, "\"depth\":3");
	f = relm__fx_push(&fx, RELM_FX_PENDING_ADD);
	fill(f->hash, 16, 5);
	f->data = malloc(3);
	memcpy(f->data, "env", 3);
	f->len = 3;
	f = relm__fx_push(&fx, RELM_FX_PENDING_DEL);
	fill(f->hash, 16, 6);

	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_apply_effects(st, r.id, NULL, &fx, 100), RELM_ESTATE);   /* no remote address yet */
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_apply_effects(st, r.id, "mb.example:7427/abc", &fx, 100), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	relm_effects_clear(&fx);

	ck_assert_int_eq(relm_store_msg_get(st, r.id, (uint8_t[16]){200,201,202,203,204,205,206,207,208,209,210,211,212,213,214,215}, &g), 0);
	ck_assert_int_eq(g.status, RELM_STATUS_NONE);
	ck_assert_int_eq(relm_store_msg_get(st, r.id, (uint8_t[16]){210,211,212,213,214,215,216,217,218,219,220,221,222,223,224,225}, &g), 0);
	ck_assert_int_eq(g.status, RELM_STATUS_FAILED);
	ck_assert_str_eq(g.reason, "a \"quoted\" reason");
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM events WHERE type='message.status'"), 1);
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM outbox WHERE dest='mb.example:7427/abc' AND length(bytes)=64"), 1);
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM pending"), 1);
	ck_assert_int_eq(exec_int(st, "SELECT unread FROM relationships WHERE label='rel 1'"), 1);
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM events WHERE type IN ('message.received','message.status','fork.detected') AND json_valid(json)"), 3);
	ck_assert_int_eq(exec_int(st, "SELECT json_extract(json,'$.depth') FROM events WHERE type='fork.detected'"), 3);
	relm_store_close(st);
}
END_TEST

/* STATUS effects move only our own messages, only forward, in one probe:
 * every (from, to) pair of an outgoing message, a received message, and an
 * id with no history row (a receipt's), each checked for the row and for
 * the message.status event that a move (and only a move) appends. */
START_TEST(test_status_forward)
{
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	struct relm_effects fx;
	struct relm_fx *f;
	struct relm_store_rel r;
	struct relm_store_msg m, g;
	uint8_t pid[16];
	int k = 0;

	populate(st);
	fill(pid, 16, 1);
	mk_rel(&r, pid, 1, NULL, 0);
	relm_effects_init(&fx);
	for (int in = 0; in <= 1; in++)
		for (int from = RELM_STATUS_NONE; from <= RELM_STATUS_FAILED; from++)
			for (int to = RELM_STATUS_NONE; to <= RELM_STATUS_FAILED; to++, k++) {
				int before, moves = !in && to != from && from != RELM_STATUS_DELIVERED &&
				                    from != RELM_STATUS_FAILED &&
				                    (to != RELM_STATUS_POSTED || from == RELM_STATUS_QUEUED);
				memset(&m, 0, sizeof m);
				memcpy(m.rel, r.id, 16);
				fill(m.id, 16, (uint8_t)k);
				m.id[15] = 0xfe;
				m.direction_in = in;
				m.origin = in ? RELM_ORIGIN_REMOTE : RELM_ORIGIN_SELF;
				m.status = from;
				m.created = 10;
				ck_assert_int_eq(relm_store_begin(st), 0);
				ck_assert_int_eq(relm_store_msg_insert(st, &m), 1);
				ck_assert_int_eq(relm_store_commit(st), 0);
				before = exec_int(st, "SELECT count(*) FROM events WHERE type='message.status'");
				relm_effects_reset(&fx);
				f = relm__fx_push(&fx, RELM_FX_STATUS);
				ck_assert_ptr_nonnull(f);
				memcpy(f->msg_id, m.id, 16);
				f->status = to;
				if (to == RELM_STATUS_FAILED)
					snprintf(f->detail, sizeof f->detail, "why %d", k);
				ck_assert_int_eq(relm_store_begin(st), 0);
				ck_assert_int_eq(relm_store_apply_effects(st, r.id, "mb.example:7427/abc", &fx, 500), 0);
				ck_assert_int_eq(relm_store_commit(st), 0);
				ck_assert_int_eq(relm_store_msg_get(st, r.id, m.id, &g), 0);
				ck_assert_msg(g.status == (moves ? to : from), "in %d from %d to %d: status %d", in, from, to, g.status);
				ck_assert_uint_eq(g.updated, moves ? 500 : 10);
				if (moves && to == RELM_STATUS_FAILED)
					ck_assert_int_eq(atoi(g.reason + 4), k);
				else
					ck_assert_str_eq(g.reason, "");
				ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM events WHERE type='message.status'"),
				                 before + moves);
			}
	/* an id with no history row: nothing, and no error */
	relm_effects_reset(&fx);
	f = relm__fx_push(&fx, RELM_FX_STATUS);
	ck_assert_ptr_nonnull(f);
	memset(f->msg_id, 0x99, 16);
	f->status = RELM_STATUS_DELIVERED;
	{
		int before = exec_int(st, "SELECT count(*) FROM events");
		ck_assert_int_eq(relm_store_begin(st), 0);
		ck_assert_int_eq(relm_store_apply_effects(st, r.id, "mb.example:7427/abc", &fx, 600), 0);
		ck_assert_int_eq(relm_store_commit(st), 0);
		ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM events"), before);
	}
	relm_effects_clear(&fx);
	relm_store_close(st);
}
END_TEST

static int due_cb(void *ctx, const uint8_t id[16])
{
	(void)id;
	++*(int *)ctx;
	return 0;
}

static int mbox_cb(void *ctx, const uint8_t id[32], uint64_t cursor)
{
	int *n = ctx;
	if (id[31] == 0x77 && id[15] == 1)
		ck_assert_uint_eq(cursor, 5);
	else
		ck_assert_uint_eq(cursor, 0);
	++*n;
	return 0;
}

START_TEST(test_timers_mailboxes)
{
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	struct relm_store_rel r;
	struct relm_store_invite inv;
	uint8_t pid[16], sk[64];
	uint64_t next = 1;
	int n = 0;

	populate(st);
	fill(pid, 16, 1);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	mk_rel(&r, pid, 0, NULL, 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, r.id, 500), 0);
	mk_rel(&r, pid, 1, NULL, 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, r.id, 300), 0);
	ck_assert_int_eq(relm_store_cursor_set(st, r.mailbox_id, 5), 0);
	memset(&inv, 0, sizeof inv);
	memcpy(inv.proton, pid, 16);
	inv.spk_id = 1;
	fill(inv.mailbox_id, 32, 40);
	fill(inv.mailbox_sk, 64, 41);
	inv.expires = 1000;
	ck_assert_int_eq(relm_store_invite_put(st, &inv), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 300);
	ck_assert_int_eq(relm_store_rel_due(st, 299, 0, due_cb, &n), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(relm_store_rel_due(st, 400, 0, due_cb, &n), 0);
	ck_assert_int_eq(n, 1);
	n = 0;
	ck_assert_int_eq(relm_store_rel_due(st, 1000, 0, due_cb, &n), 0);
	ck_assert_int_eq(n, 2);
	n = 0;
	ck_assert_int_eq(relm_store_mailbox_list(st, 999, mbox_cb, &n), 0);
	ck_assert_int_eq(n, 3);
	n = 0;
	ck_assert_int_eq(relm_store_mailbox_list(st, 1001, mbox_cb, &n), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(relm_store_mailbox_secret(st, inv.mailbox_id, sk), 0);
	ck_assert_int_eq(memcmp(sk, inv.mailbox_sk, 64), 0);
	ck_assert_int_eq(relm_store_mailbox_secret(st, r.mailbox_id, sk), 0);
	ck_assert_int_eq(memcmp(sk, r.mailbox_sk, 64), 0);
	{
		uint8_t nobody[32] = { 0 };
		ck_assert_int_eq(relm_store_mailbox_secret(st, nobody, sk), RELM_ENOTFOUND);
	}
	sodium_memzero(sk, sizeof sk);
	relm_store_close(st);
}
END_TEST

/* ---- damaged, newer, old files ---------------------------------------------- */

static void make_closed_store(void)
{
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	struct relm_store_proton p;
	struct relm_store_rel r;
	uint8_t state[3000];

	populate(st);
	/* Enough data for many pages, including overflow pages. */
	mk_proton(&p, 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	for (uint32_t i = 10; i < 200; i++) {
		fill(state, sizeof state, (uint8_t)i);
		mk_rel(&r, p.id, i, state, sizeof state);
		ck_assert_int_eq(relm_store_rel_put(st, &r), 0);
	}
	ck_assert_int_eq(relm_store_commit(st), 0);
	relm_store_close(st);   /* last connection: checkpoints and removes the WAL */
}

/* Big stores (over check_always_bytes) skip quick_check at open only after
 * a clean close; after a kill the damage is found at open as before. */
START_TEST(test_check_skipped_only_after_clean_close)
{
	char copy[600];
	size_t n;
	uint8_t *orig;
	struct relm_store *st = NULL;
	struct relm_store_opts o = { .check_always_bytes = 1 };
	pid_t pid;
	int status;

	make_closed_store();
	orig = read_file(dbpath, &n);
	snprintf(copy, sizeof copy, "%s/state/copy.db", tmpdir);
	/* page 3 of a cleanly closed store, destroyed */
	for (size_t i = 0; i < 4096; i++)
		orig[2 * 4096 + i] ^= 0x5a;
	write_file(copy, orig, n);
	ck_assert_int_eq(relm_store_open(&st, copy, &o), 0);       /* no check: clean and big */
	relm_store_close(st);
	st = NULL;
	/* the same damage after an unclean end: a child opens and is killed */
	unlink(copy);
	free(orig);
	orig = read_file(dbpath, &n);
	write_file(copy, orig, n);
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
	orig = read_file(copy, &n);
	for (size_t i = 0; i < 4096; i++)
		orig[2 * 4096 + i] ^= 0x5a;
	write_file(copy, orig, n);
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
	unsigned long long s0 = seed;

	make_closed_store();
	orig = read_file(dbpath, &n);
	ck_assert_uint_gt(n, 100 * 4096);
	snprintf(copy, sizeof copy, "%s/state/copy.db", tmpdir);
	for (int trial = 0; trial < 12; trial++) {
		size_t pages = n / 4096;
		b = malloc(n);
		memcpy(b, orig, n);
		/* overwrite 1–3 random pages (never page 1, whose damage is a different test) */
		for (int k = 0, m = 1 + (int)(prng() % 3); k < m; k++) {
			size_t pg = 1 + (size_t)(prng() % (pages - 1));
			for (size_t i = 0; i < 4096; i++)
				b[pg * 4096 + i] = (uint8_t)prng();
		}
		write_file(copy, b, n);
		ck_assert_msg(open_err(copy, err, sizeof err) == RELM_ECORRUPT,
		              "trial %d not detected as corrupt (RELM_SEED=0x%llx)", trial, s0);
		after = read_file(copy, &n2);
		ck_assert_msg(n2 == n && memcmp(after, b, n) == 0, "file changed (RELM_SEED=0x%llx)", s0);
		free(after);
		free(b);
		unlink(copy);
	}
	/* Truncated to half, and to a few bytes. */
	write_file(copy, orig, n / 2);
	ck_assert_int_eq(open_err(copy, err, sizeof err), RELM_ECORRUPT);
	after = read_file(copy, &n2);
	ck_assert_uint_eq(n2, n / 2);
	ck_assert_int_eq(memcmp(after, orig, n2), 0);
	free(after);
	/* Not a database at all. */
	write_file(copy, (const uint8_t *)"this is not an SQLite database, it is a letter to my aunt........................................................................", 120);
	ck_assert_int_eq(open_err(copy, err, sizeof err), RELM_ECORRUPT);
	after = read_file(copy, &n2);
	ck_assert_uint_eq(n2, 120);
	free(after);
	/* Someone else's SQLite database (user_version 0 with tables). */
	{
		sqlite3 *db;
		unlink(copy);
		ck_assert_int_eq(sqlite3_open(copy, &db), SQLITE_OK);
		ck_assert_int_eq(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
		chmod(copy, 0600);
		ck_assert_int_eq(open_err(copy, err, sizeof err), RELM_ECORRUPT);
	}
	free(orig);
}
END_TEST

START_TEST(test_newer_version)
{
	char err[512], wal[600], shm[600];
	sqlite3 *db;
	size_t n, n2;
	uint8_t *b1, *b2;

	make_closed_store();
	/* Turn it into a "v99" store in rollback-journal mode: if our probe
	 * switched it to WAL, bytes 18–19 of the header would change. */
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA journal_mode=DELETE; PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	b1 = read_file(dbpath, &n);
	ck_assert_int_eq(b1[18], 1);
	ck_assert_int_eq(open_err(dbpath, err, sizeof err), RELM_ESTORE_NEWER);
	ck_assert_ptr_nonnull(strstr(err, "99"));
	b2 = read_file(dbpath, &n2);
	ck_assert_uint_eq(n, n2);
	ck_assert_int_eq(memcmp(b1, b2, n), 0);
	snprintf(wal, sizeof wal, "%s-wal", dbpath);
	snprintf(shm, sizeof shm, "%s-shm", dbpath);
	ck_assert(!file_exists(wal));
	ck_assert(!file_exists(shm));
	free(b2);
	/* The same in WAL mode. */
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	free(b1);
	b1 = read_file(dbpath, &n);
	ck_assert_int_eq(open_err(dbpath, err, sizeof err), RELM_ESTORE_NEWER);
	b2 = read_file(dbpath, &n2);
	ck_assert_uint_eq(n, n2);
	ck_assert_int_eq(memcmp(b1, b2, n), 0);
	free(b1);
	free(b2);
}
END_TEST

static const char *fixture_dir(void)
{
	const char *d = getenv("RELM_FIXTURES");
	return d && *d ? d : "tests/fixtures";
}

/* Write tests/fixtures/store-v<version>.sql into a fresh dbpath (state
 * folder created) and return the raw connection, for extra rows. */
static sqlite3 *fixture_db(int version)
{
	char fx[512], dir[300], *sql, *errmsg = NULL;
	size_t n;
	sqlite3 *db;

	snprintf(fx, sizeof fx, "%s/store-v%d.sql", fixture_dir(), version);
	sql = (char *)read_file(fx, &n);
	ck_assert_msg(sql != NULL, "cannot read %s", fx);
	sql[n] = '\0';
	snprintf(dir, sizeof dir, "%s/state", tmpdir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &errmsg) == SQLITE_OK, "%s", errmsg);
	free(sql);
	return db;
}

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

	db = fixture_db(version);
	sqlite3_close(db);
	ck_assert_int_eq(chmod(dbpath, 0600), 0);

	st = open_ok(dbpath, RELM_STORE_F_INTEGRITY, NULL);
	ck_assert_int_eq(exec_int(st, "PRAGMA user_version"), RELM_STORE_SCHEMA_VERSION);
	memset(pid, 0x11, 16);
	ck_assert_int_eq(relm_store_proton_get(st, pid, &p, RELM_STORE_WITH_SECRETS), 0);
	ck_assert_str_eq(p.label, "alice");
	ck_assert_int_eq(p.isk[0], 0x44);
	relm_store_proton_clear(&p);
	memset(rid, 0x22, 16);
	ck_assert_int_eq(relm_store_rel_get(st, rid, &r, RELM_STORE_WITH_STATE), 0);
	ck_assert_str_eq(r.label, "bob");
	ck_assert_str_eq(r.remote_addr, "127.0.0.1:7427/bobbox");
	ck_assert_uint_eq(r.state_len, 4);
	ck_assert_int_eq(memcmp(r.state, "RLM1", 4), 0);
	relm_store_rel_clear(&r);
	ck_assert_int_eq(relm_store_invite_get(st, pid, 1, &inv), 0);
	relm_store_invite_clear(&inv);
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM messages"), 2);
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM outbox WHERE state='queued'"), 1);
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM events"), 2);
	ck_assert_int_eq(exec_int(st, "SELECT cursor FROM cursors"), 12);
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
	/* and it keeps working */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_event_append(st, "x", "{}", 1, NULL), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	relm_store_close(st);
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

/* A v4 store migrates to v5: the rows of messages are intact, the CHECK
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

	db = fixture_db(4);
	sqlite3_close(db);
	ck_assert_int_eq(chmod(dbpath, 0600), 0);
	st = open_ok(dbpath, RELM_STORE_F_INTEGRITY, NULL);
	ck_assert_int_eq(exec_int(st, "PRAGMA user_version"), 5);
	ck_assert_int_eq(RELM_STORE_SCHEMA_VERSION, 5);

	/* rows intact */
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM messages"), 2);
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
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM messages"), 2);
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM messages WHERE seq=2 AND status='posted' AND origin='self'"), 1);
	for (int i = 0; i < 5; i++)
		for (int j = 0; j < 3; j++) {
			snprintf(sql, sizeof sql, "INSERT INTO messages(rel,id,direction,origin,kind,ts,status,created,updated)"
			         " VALUES(X'22222222222222222222222222222222',randomblob(16),'out','%s','text',1,'%s',1,1)",
			         origin[j], status[i]);
			ck_assert_int_eq(raw_exec(st, sql), SQLITE_OK);
		}
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM messages"), 17);

	/* this connection already codes them without ephemeral tables */
	ck_assert_int_eq(ephemeral_tables(st, ins), 0);
	ck_assert_int_eq(ephemeral_tables(st, upd), 0);

	/* the same text as a fresh store's */
	snprintf(fresh_path, sizeof fresh_path, "%s/state/fresh.db", tmpdir);
	st2 = open_ok(fresh_path, 0, NULL);
	ck_assert_int_eq(exec_int(st2, "PRAGMA user_version"), 5);
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

	/* and it reopens at v5 with nothing to do */
	st = open_ok(dbpath, RELM_STORE_F_INTEGRITY, NULL);
	ck_assert_int_eq(exec_int(st, "PRAGMA user_version"), 5);
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM messages"), 17);
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

	db = fixture_db(4);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA writable_schema=ON;"
	                                  "UPDATE sqlite_schema SET sql=replace(sql,'''sibling'',','') WHERE name='messages';"
	                                  "PRAGMA writable_schema=OFF;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(chmod(dbpath, 0600), 0);
	ck_assert_int_eq(open_err(dbpath, err, sizeof err), RELM_ECORRUPT);
	ck_assert_ptr_nonnull(strstr(err, "v5"));
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
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

	db = fixture_db(3);
	sqlite3_close(db);
	ck_assert_int_eq(chmod(dbpath, 0600), 0);

	st = open_ok(dbpath, RELM_STORE_F_INTEGRITY, NULL);
	ck_assert_int_eq(exec_int(st, "PRAGMA user_version"), RELM_STORE_SCHEMA_VERSION);
	memset(rid, 0x22, 16);
	ck_assert_int_eq(ack_rows(st, rid), 0);
	memset(dh, 0x61, 32);
	ck_assert_int_eq(relm_store_begin(st), 0);
	for (uint32_t k = 0; k < 5; k++) {
		fill(id, 16, (uint8_t)(10 + k));
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
			fill(p, 16, (uint8_t)(200 + k));
			memset(p + 16, 0x62, 32);
			p[48] = 0; p[49] = 0; p[50] = 1; p[51] = (uint8_t)k;   /* n = 256 + k */
		}
		f = relm__fx_push(&fxs, RELM_FX_ACK_PUT);
		ck_assert_ptr_nonnull(f);
		ck_assert_ptr_nonnull(f->data = malloc(sizeof rec));
		memcpy(f->data, rec, sizeof rec);
		f->len = sizeof rec;
		ck_assert_int_eq(relm_store_begin(st), 0);
		ck_assert_int_eq(relm_store_apply_effects(st, rid, NULL, &fxs, 1), 0);
		ck_assert_int_eq(relm_store_commit(st), 0);
		ck_assert_int_eq(ack_rows(st, rid), 6);
		ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM acks WHERE n IN (256, 257)"), 2);
		/* ACK_DEL of both, one of them twice: a row already gone is fine */
		fxs.v[0].type = RELM_FX_ACK_DEL;
		f = relm__fx_push(&fxs, RELM_FX_ACK_DEL);
		ck_assert_ptr_nonnull(f);
		ck_assert_ptr_nonnull(f->data = malloc(RELM_FX_ACK_LEN));
		memcpy(f->data, rec, RELM_FX_ACK_LEN);
		f->len = RELM_FX_ACK_LEN;
		ck_assert_int_eq(relm_store_begin(st), 0);
		ck_assert_int_eq(relm_store_apply_effects(st, rid, NULL, &fxs, 1), 0);
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
		ck_assert_int_eq(relm_store_apply_effects(st, rid, NULL, &fxs, 1), RELM_EINVAL);
		ck_assert_int_eq(relm_store_rollback(st), 0);
		ck_assert_int_eq(ack_rows(st, rid), 4);
		relm_effects_clear(&fxs);
	}

	/* the relationship goes, and its rows with it */
	ck_assert_int_eq(sqlite3_exec(relm__store_db(st), "DELETE FROM relationships", NULL, NULL, NULL),
	                 SQLITE_OK);
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM acks"), 0);
	relm_store_close(st);
}
END_TEST

/* Rows of outgoing_count that disagree with count(*) of outgoing, counting
 * a missing row as 0 and a row of a relationship with none as 0. */
static int count_mismatches(struct relm_store *st)
{
	return exec_int(st, "SELECT count(*) FROM relationships r"
	                    " LEFT JOIN outgoing_count c ON c.rel=r.id"
	                    " WHERE coalesce(c.n,0) != (SELECT count(*) FROM outgoing o WHERE o.rel=r.id)") +
	       exec_int(st, "SELECT count(*) FROM outgoing_count c WHERE NOT EXISTS"
	                    " (SELECT 1 FROM relationships r WHERE r.id=c.rel)");
}

static uint64_t out_count(struct relm_store *st, const uint8_t rel[16])
{
	uint64_t n = 99;
	ck_assert_int_eq(relm_store_outgoing_count(st, rel, &n), 0);
	return n;
}

/* A v2 store (no count table) with outgoing rows on two relationships
 * migrates to exact counts, and the triggers keep them so. */
START_TEST(test_migrate_v2_counts)
{
	char *errmsg = NULL;
	sqlite3 *db;
	struct relm_store *st;
	struct relm_store_outgoing o;
	uint8_t r1[16], r2[16], r3[16];

	db = fixture_db(2);
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
	ck_assert_int_eq(chmod(dbpath, 0600), 0);

	st = open_ok(dbpath, RELM_STORE_F_INTEGRITY, NULL);
	ck_assert_int_eq(exec_int(st, "PRAGMA user_version"), RELM_STORE_SCHEMA_VERSION);
	memset(r1, 0x22, 16);
	memset(r2, 0x23, 16);
	memset(r3, 0x24, 16);
	ck_assert_uint_eq(out_count(st, r1), 4);
	ck_assert_uint_eq(out_count(st, r2), 2);
	ck_assert_uint_eq(out_count(st, r3), 0);
	ck_assert_int_eq(count_mismatches(st), 0);
	/* and the triggers take over from there */
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
	ck_assert_uint_eq(out_count(st, r1), 5);
	ck_assert_uint_eq(out_count(st, r2), 1);
	ck_assert_uint_eq(out_count(st, r3), 1);
	ck_assert_int_eq(count_mismatches(st), 0);
	relm_store_close(st);
}
END_TEST

/* outgoing_count through put (new), put (same id = update), delete, a
 * rolled-back step, a rolled-back batched step, and relationship / proton
 * deletion (cascades). */
START_TEST(test_outgoing_count)
{
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	struct relm_store_rel r0, r1;
	struct relm_store_outgoing o;
	uint8_t pid[16];
	uint64_t next = 0;

	populate(st);
	fill(pid, 16, 1);
	mk_rel(&r0, pid, 0, NULL, 0);
	mk_rel(&r1, pid, 1, NULL, 0);
	ck_assert_uint_eq(out_count(st, r0.id), 0);
	memset(&o, 0, sizeof o);
	o.body = (const uint8_t *)"body";
	o.body_len = 4;
	o.next_ms = 500;
	ck_assert_int_eq(relm_store_begin(st), 0);
	for (int k = 0; k < 7; k++) {
		memcpy(o.rel, k < 5 ? r0.id : r1.id, 16);
		fill(o.id, 16, (uint8_t)(40 + k));
		ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	}
	ck_assert_uint_eq(out_count(st, r0.id), 5);   /* visible inside the step */
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_uint_eq(out_count(st, r0.id), 5);
	ck_assert_uint_eq(out_count(st, r1.id), 2);

	/* the same (rel, id) again is an update: the count stays, the row changes */
	memcpy(o.rel, r0.id, 16);
	fill(o.id, 16, 40);
	o.next_ms = 100;
	o.tries = 3;
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_uint_eq(out_count(st, r0.id), 5);
	ck_assert_int_eq(relm_store_outgoing_next(st, r0.id, &next), 0);
	ck_assert_uint_eq(next, 100);
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM outgoing WHERE tries=3"), 1);

	/* delete, and delete of a missing row */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_outgoing_del(st, r0.id, o.id), 0);
	ck_assert_int_eq(relm_store_outgoing_del(st, r0.id, o.id), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_uint_eq(out_count(st, r0.id), 4);

	/* a rolled-back step, and a rolled-back step inside a batch */
	ck_assert_int_eq(relm_store_begin(st), 0);
	fill(o.id, 16, 90);
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_uint_eq(out_count(st, r0.id), 4);
	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	fill(o.id, 16, 91);
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	fill(o.id, 16, 41);
	ck_assert_int_eq(relm_store_outgoing_del(st, r0.id, o.id), 0);
	ck_assert_uint_eq(out_count(st, r0.id), 5);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_uint_eq(out_count(st, r0.id), 5);
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	ck_assert_uint_eq(out_count(st, r0.id), 5);
	ck_assert_int_eq(count_mismatches(st), 0);

	/* a relationship deleted (no API yet: what a later one will do) takes
	 * its outgoing rows and its count row along */
	{
		sqlite3_stmt *q;
		ck_assert_int_eq(sqlite3_prepare_v2(relm__store_db(st), "DELETE FROM relationships WHERE id=?1",
		                                    -1, &q, NULL), SQLITE_OK);
		sqlite3_bind_blob(q, 1, r0.id, 16, SQLITE_STATIC);
		ck_assert_int_eq(sqlite3_step(q), SQLITE_DONE);
		sqlite3_finalize(q);
	}
	ck_assert_uint_eq(out_count(st, r0.id), 0);
	ck_assert_uint_eq(out_count(st, r1.id), 2);
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM outgoing_count"), 1);
	ck_assert_int_eq(count_mismatches(st), 0);
	/* and a proton with it all */
	ck_assert_int_eq(sqlite3_exec(relm__store_db(st), "DELETE FROM protons", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_uint_eq(out_count(st, r1.id), 0);
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM outgoing_count"), 0);
	ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM outgoing"), 0);
	relm_store_close(st);
}
END_TEST

struct out_seen {
	int n;
	uint8_t first[16];
	size_t body_len;
};

static int out_cb(void *ctx, const struct relm_store_outgoing *o)
{
	struct out_seen *os = ctx;
	if (os->n++ == 0) {
		memcpy(os->first, o->id, 16);
		os->body_len = o->body_len;
	}
	return 0;
}

START_TEST(test_outgoing_queue)
{
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	struct relm_store_rel r;
	struct relm_store_outgoing o;
	struct out_seen seen;
	uint8_t pid[16];
	uint64_t n = 0, next = 0;

	populate(st);
	fill(pid, 16, 1);
	mk_rel(&r, pid, 1, NULL, 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	for (int k = 0; k < 5; k++) {
		memset(&o, 0, sizeof o);
		memcpy(o.rel, r.id, 16);
		fill(o.id, 16, (uint8_t)(100 + k));
		o.kind = 1;
		o.ts = 1000;
		o.body = (const uint8_t *)"body";
		o.body_len = 4;
		o.tries = 1;
		o.next_ms = 5000 - (uint64_t)k * 1000;   /* the last one is due first */
		fill(o.last_node, 16, 7);
		ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	}
	o.next_ms = 100;                          /* replace: same (rel, id) */
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_outgoing_count(st, r.id, &n), 0);
	ck_assert_uint_eq(n, 5);
	ck_assert_int_eq(relm_store_outgoing_next(st, r.id, &next), 0);
	ck_assert_uint_eq(next, 100);
	memset(&seen, 0, sizeof seen);
	ck_assert_int_eq(relm_store_outgoing_due(st, r.id, 3000, 0, out_cb, &seen), 0);
	ck_assert_int_eq(seen.n, 3);               /* 100, 2000, 3000 */
	ck_assert(memcmp(seen.first, o.id, 16) == 0);
	ck_assert_uint_eq(seen.body_len, 4);
	memset(&seen, 0, sizeof seen);
	ck_assert_int_eq(relm_store_outgoing_due(st, r.id, 3000, 1, out_cb, &seen), 0);
	ck_assert_int_eq(seen.n, 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_outgoing_del(st, r.id, o.id), 0);
	ck_assert_int_eq(relm_store_outgoing_del(st, r.id, o.id), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_outgoing_count(st, r.id, &n), 0);
	ck_assert_uint_eq(n, 4);
	relm_store_close(st);
}
END_TEST

/* ---- staging of relationship columns ------------------------------------------- */

/* The state, remote address and unread of rel id as rel_get sees them. */
static void expect_rel(struct relm_store *st, const uint8_t id[16], const char *state,
                       const char *addr, uint32_t unread, uint64_t last_activity)
{
	struct relm_store_rel g;

	ck_assert_int_eq(relm_store_rel_get(st, id, &g, RELM_STORE_WITH_STATE), 0);
	ck_assert_uint_eq(g.state_len, strlen(state));
	ck_assert_int_eq(memcmp(g.state, state, g.state_len), 0);
	ck_assert_str_eq(g.remote_addr, addr);
	ck_assert_uint_eq(g.unread, unread);
	ck_assert_uint_eq(g.last_activity, last_activity);
	relm_store_rel_clear(&g);
}

/* The same, read from the file by a second connection (committed data). */
static void expect_file(const uint8_t id[16], const char *state, const char *addr,
                        uint32_t unread, uint64_t deadline)
{
	sqlite3 *db;
	sqlite3_stmt *q;

	ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT state, remote_addr, unread, deadline FROM relationships WHERE id=?1",
	                                    -1, &q, NULL), SQLITE_OK);
	sqlite3_bind_blob(q, 1, id, 16, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_bytes(q, 0), (int)strlen(state));
	ck_assert_int_eq(memcmp(sqlite3_column_blob(q, 0), state, strlen(state)), 0);
	ck_assert_str_eq((const char *)sqlite3_column_text(q, 1), addr);
	ck_assert_int_eq(sqlite3_column_int64(q, 2), unread);
	ck_assert_int_eq(sqlite3_column_int64(q, 3), (sqlite3_int64)deadline);
	sqlite3_finalize(q);
	sqlite3_close(db);
}

static void set_all(struct relm_store *st, const uint8_t id[16], const char *state,
                    const char *addr, uint64_t deadline, uint64_t t)
{
	ck_assert_int_eq(relm_store_rel_set_state(st, id, (const uint8_t *)state, strlen(state), t), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id, deadline), 0);
	ck_assert_int_eq(relm_store_rel_set_remote_addr(st, id, addr), 0);
}

/* Inside a batch: a released step's values are what every reader sees and
 * what the file gets at batch commit; a rolled-back step's are gone; the
 * file sees nothing before the commit; batch rollback drops it all. */
START_TEST(test_stage_steps)
{
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	struct relm_store_rel r;
	struct list_acc acc;
	uint8_t pid[16];
	uint64_t next = 0;

	populate(st);                    /* state 300 bytes, no address, deadline 0 */
	fill(pid, 16, 1);
	mk_rel(&r, pid, 0, NULL, 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	set_all(st, r.id, "S0", "h:1/a", 900, 10);
	ck_assert_int_eq(relm_store_commit(st), 0);
	expect_file(r.id, "S0", "h:1/a", 0, 900);

	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	/* step 1: released */
	ck_assert_int_eq(relm_store_begin(st), 0);
	set_all(st, r.id, "S1-released", "h:1/b", 800, 11);
	ck_assert_int_eq(relm_store_commit(st), 0);
	expect_rel(st, r.id, "S1-released", "h:1/b", 0, 11);
	/* step 2: everything changed, seen inside the step, then rolled back */
	ck_assert_int_eq(relm_store_begin(st), 0);
	set_all(st, r.id, "S2-rolled-back", "h:1/c", 700, 12);
	ck_assert_int_eq(relm_store_rel_set_state(st, r.id, (const uint8_t *)"S2-again", 8, 13), 0);
	ck_assert_int_eq(relm_store_rel_set_unread(st, r.id, 42), 0);
	expect_rel(st, r.id, "S2-again", "h:1/c", 42, 13);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 700);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	expect_rel(st, r.id, "S1-released", "h:1/b", 0, 11);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 800);
	/* a later step that touches the entry but not its state keeps the
	 * released state (the undo log only borrowed it) */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, r.id, 800), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_remote_addr(st, r.id, "h:1/b"), 0);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	expect_rel(st, r.id, "S1-released", "h:1/b", 0, 11);
	/* a step that touches only another relationship leaves this one be */
	ck_assert_int_eq(relm_store_begin(st), 0);
	{
		struct relm_store_rel r1;
		mk_rel(&r1, pid, 1, NULL, 0);
		ck_assert_int_eq(relm_store_rel_set_deadline(st, r1.id, 850), 0);
	}
	ck_assert_int_eq(relm_store_rollback(st), 0);
	/* the listing overlays the staged columns too */
	memset(&acc, 0, sizeof acc);
	ck_assert_int_eq(relm_store_rel_list(st, pid, NULL, 0, rel_cb, &acc), 0);
	ck_assert_int_eq(acc.n, 2);
	{
		struct relm_store_rel g;
		ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, 0), 0);
		ck_assert_ptr_null(g.state);
		ck_assert_str_eq(g.remote_addr, "h:1/b");
		relm_store_rel_clear(&g);
	}
	/* nothing reached the file yet */
	expect_file(r.id, "S0", "h:1/a", 0, 900);
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	expect_file(r.id, "S1-released", "h:1/b", 0, 800);
	relm_store_close(st);

	st = open_ok(dbpath, RELM_STORE_F_INTEGRITY, NULL);
	expect_rel(st, r.id, "S1-released", "h:1/b", 0, 11);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 800);

	/* batch rollback drops released steps too */
	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	set_all(st, r.id, "S3-batch-rolled-back", "h:1/d", 600, 14);
	ck_assert_int_eq(relm_store_commit(st), 0);
	expect_rel(st, r.id, "S3-batch-rolled-back", "h:1/d", 0, 14);
	ck_assert_int_eq(relm_store_batch_rollback(st), 0);
	expect_rel(st, r.id, "S1-released", "h:1/b", 0, 11);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 800);

	/* a standalone step: staged until its commit, dropped by its rollback */
	ck_assert_int_eq(relm_store_begin(st), 0);
	set_all(st, r.id, "S4-standalone-rolled-back", "h:1/e", 500, 15);
	expect_rel(st, r.id, "S4-standalone-rolled-back", "h:1/e", 0, 15);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	expect_rel(st, r.id, "S1-released", "h:1/b", 0, 11);
	ck_assert_int_eq(relm_store_begin(st), 0);
	set_all(st, r.id, "S5", "h:1/f", 0, 16);
	ck_assert_int_eq(relm_store_commit(st), 0);
	expect_file(r.id, "S5", "h:1/f", 0, 0);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 0);
	/* unknown relationships are refused as before, inside a batch too */
	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, pid, 5), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_rel_set_state(st, pid, (const uint8_t *)"x", 1, 1), RELM_ENOTFOUND);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	relm_store_close(st);
}
END_TEST

struct due_acc { int n; uint8_t last[8]; };

static int due_order_cb(void *ctx, const uint8_t id[16])
{
	struct due_acc *a = ctx;
	if (a->n < 8)
		a->last[a->n] = id[15];
	a->n++;
	return 0;
}

static void expect_due(struct relm_store *st, uint64_t now, unsigned limit, const char *want)
{
	struct due_acc a;
	char got[16];

	memset(&a, 0, sizeof a);
	ck_assert_int_eq(relm_store_rel_due(st, now, limit, due_order_cb, &a), 0);
	ck_assert_int_le(a.n, 8);
	for (int i = 0; i < a.n; i++)
		got[i] = (char)('0' + a.last[i]);
	got[a.n] = '\0';
	ck_assert_str_eq(got, want);
}

/* rel_due / next_deadline merge the file's deadlines with the staged ones,
 * in order, with limits, inside a step and after its rollback. */
START_TEST(test_stage_deadlines)
{
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	struct relm_store_proton p;
	struct relm_store_rel r;
	uint8_t id[5][16];
	uint64_t next = 0;

	mk_proton(&p, 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
	for (uint32_t i = 0; i < 5; i++) {
		mk_rel(&r, p.id, i, (uint8_t *)"s", 1);
		memcpy(id[i], r.id, 16);
		ck_assert_int_eq(relm_store_rel_put(st, &r), 0);
	}
	/* in the file: 0 at 100, 1 at 200, 2 at 300, 3 and 4 none */
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[0], 100), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[1], 200), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[2], 300), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	expect_due(st, 1000, 0, "012");

	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[0], 0), 0);     /* none now */
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[1], 50), 0);    /* earlier */
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[3], 250), 0);   /* new */
	ck_assert_int_eq(relm_store_rel_set_state(st, id[4], (const uint8_t *)"t", 1, 2), 0);  /* no deadline */
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 50);
	expect_due(st, 1000, 0, "132");
	expect_due(st, 260, 0, "13");
	expect_due(st, 49, 0, "");
	expect_due(st, 1000, 2, "13");
	/* inside an open step */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[2], 10), 0);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 10);
	expect_due(st, 1000, 0, "213");
	expect_due(st, 1000, 1, "2");
	ck_assert_int_eq(relm_store_rollback(st), 0);
	expect_due(st, 1000, 0, "132");
	/* everything staged to none: the file's other rows still count */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[1], 0), 0);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[3], 0), 0);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 300);
	ck_assert_int_eq(relm_store_rel_set_deadline(st, id[2], 0), 0);
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 0);
	expect_due(st, 1000, 0, "");
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	ck_assert_int_eq(exec_int(st, "SELECT sum(deadline) FROM relationships"), 0 + 50 + 300 + 250 + 0);
	relm_store_close(st);
	st = open_ok(dbpath, 0, NULL);
	expect_due(st, 1000, 0, "132");
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 50);
	relm_store_close(st);
}
END_TEST

/* A DELIVER effect of a received message adds one to unread. */
static void deliver_in(struct relm_store *st, const uint8_t rel[16], uint8_t k)
{
	struct relm_effects fx;
	struct relm_fx *f;

	relm_effects_init(&fx);
	f = relm__fx_push(&fx, RELM_FX_DELIVER);
	ck_assert_ptr_nonnull(f);
	fill(f->msg_id, 16, (uint8_t)(150 + k));
	f->direction_in = 1;
	f->kind = 1;
	ck_assert_int_eq(relm_store_apply_effects(st, rel, "h:1/x", &fx, 1), 0);
	relm_effects_clear(&fx);
}

/* Unread increments staged across steps sum; a rolled-back step's do not
 * count; an absolute set in between restarts the sum. */
START_TEST(test_stage_unread)
{
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	struct relm_store_rel r, g;
	uint8_t pid[16];

	populate(st);
	fill(pid, 16, 1);
	mk_rel(&r, pid, 1, NULL, 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_unread(st, r.id, 5), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);

	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	deliver_in(st, r.id, 0);
	deliver_in(st, r.id, 1);
	deliver_in(st, r.id, 1);                  /* duplicate: not counted */
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	deliver_in(st, r.id, 2);
	ck_assert_int_eq(relm_store_rollback(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	deliver_in(st, r.id, 3);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, 0), 0);
	ck_assert_uint_eq(g.unread, 8);
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	ck_assert_int_eq(exec_int(st, "SELECT unread FROM relationships WHERE label='rel 1'"), 8);

	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	deliver_in(st, r.id, 4);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_rel_set_unread(st, r.id, 0), 0);     /* read */
	deliver_in(st, r.id, 5);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	deliver_in(st, r.id, 6);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, 0), 0);
	ck_assert_uint_eq(g.unread, 2);
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	relm_store_close(st);
	st = open_ok(dbpath, 0, NULL);
	ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, 0), 0);
	ck_assert_uint_eq(g.unread, 2);
	relm_store_close(st);
}
END_TEST

/* One batch over 1,000 relationships (the staging table grows several
 * times), every 7th step rolled back: after commit and reopen each holds
 * its last released state, deadline and address. */
START_TEST(test_stage_many)
{
	enum { N = 1000 };
	struct relm_store *st = open_ok(dbpath, 0, NULL);
	struct relm_store_proton p;
	struct relm_store_rel r, g;
	uint8_t state[600];
	char addr[64];
	uint64_t next = 0;
	int n = 0;

	mk_proton(&p, 1);
	fill(state, sizeof state, 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
	for (uint32_t i = 0; i < N; i++) {
		mk_rel(&r, p.id, i, state, 100);
		ck_assert_int_eq(relm_store_rel_put(st, &r), 0);
	}
	ck_assert_int_eq(relm_store_commit(st), 0);

	ck_assert_int_eq(relm_store_batch_begin(st), 0);
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < N; i++) {
			int drop = (i + (uint32_t)pass) % 7 == 0;
			mk_rel(&r, p.id, i, NULL, 0);
			fill(state, sizeof state, (uint8_t)(i + 31 * (uint32_t)pass + 100 * drop));
			snprintf(addr, sizeof addr, "h:1/%u.%d.%d", i, pass, drop);
			ck_assert_int_eq(relm_store_begin(st), 0);
			ck_assert_int_eq(relm_store_rel_set_state(st, r.id, state, 200 + i % 300, 1000 + i), 0);
			ck_assert_int_eq(relm_store_rel_set_deadline(st, r.id, 5000 + i + (uint64_t)pass), 0);
			ck_assert_int_eq(relm_store_rel_set_remote_addr(st, r.id, addr), 0);
			ck_assert_int_eq(drop ? relm_store_rollback(st) : relm_store_commit(st), 0);
		}
	}
	ck_assert_int_eq(relm_store_next_deadline(st, &next), 0);
	ck_assert_uint_eq(next, 5001);            /* rel 0: pass 0 dropped, pass 1 kept */
	ck_assert_int_eq(relm_store_batch_commit(st), 0);
	relm_store_close(st);

	st = open_ok(dbpath, RELM_STORE_F_INTEGRITY, NULL);
	for (uint32_t i = 0; i < N; i++) {
		/* the last released of the two passes, or the original */
		int pass = (i + 1) % 7 != 0 ? 1 : i % 7 != 0 ? 0 : -1;
		mk_rel(&r, p.id, i, NULL, 0);
		ck_assert_int_eq(relm_store_rel_get(st, r.id, &g, RELM_STORE_WITH_STATE), 0);
		if (pass < 0) {
			ck_assert_uint_eq(g.state_len, 100);
			ck_assert_str_eq(g.remote_addr, "");
		} else {
			fill(state, sizeof state, (uint8_t)(i + 31 * (uint32_t)pass));
			snprintf(addr, sizeof addr, "h:1/%u.%d.0", i, pass);
			ck_assert_uint_eq(g.state_len, 200 + i % 300);
			ck_assert_int_eq(memcmp(g.state, state, g.state_len), 0);
			ck_assert_str_eq(g.remote_addr, addr);
			ck_assert_uint_eq(g.last_activity, 1000 + i);
		}
		relm_store_rel_clear(&g);
	}
	ck_assert_int_eq(relm_store_rel_due(st, 1000000, 0, due_cb, &n), 0);
	ck_assert_int_eq(n, exec_int(st, "SELECT count(*) FROM relationships WHERE deadline>0"));
	ck_assert_int_gt(n, N - N / 7 - 10);
	relm_store_close(st);
}
END_TEST

/* ---- fault injection -------------------------------------------------------------- */

START_TEST(test_disk_full)
{
	struct relm_store *st = open_ok(dbpath, 0, TU_FAULTVFS_NAME);
	uint8_t before[32], after[32], mb[32];
	uint64_t c;
	struct relm_store_outbox o;

	populate(st);
	digest(st, before);
	memset(&o, 0, sizeof o);
	snprintf(o.dest, sizeof o.dest, "h:1/x");
	o.bytes = (const uint8_t *)"envelope";
	o.len = 8;
	fill(mb, 32, 3);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_outbox_add(st, &o, NULL), 0);
	ck_assert_int_eq(relm_store_cursor_set(st, mb, 9), 0);
	tu_faultvfs_fail_after(1, SQLITE_FULL);
	ck_assert_int_eq(relm_store_commit(st), RELM_EFULL);
	ck_assert_int_ge(tu_faultvfs_failures(), 1);
	/* Sticky: nothing more until reopened. */
	ck_assert_int_eq(relm_store_error(st), RELM_EFULL);
	ck_assert_int_eq(relm_store_begin(st), RELM_EFULL);
	ck_assert_int_eq(relm_store_cursor_get(st, mb, &c), RELM_EFULL);
	ck_assert_ptr_nonnull(strstr(relm_store_errmsg(st), "full"));
	relm_store_close(st);
	tu_faultvfs_fail_after(0, 0);
	st = open_ok(dbpath, RELM_STORE_F_INTEGRITY, NULL);
	digest(st, after);
	ck_assert_int_eq(memcmp(before, after, 32), 0);
	ck_assert_int_eq(relm_store_cursor_get(st, mb, &c), 0);
	ck_assert_uint_eq(c, 0);
	relm_store_close(st);
}
END_TEST

/* The representative sequence: what a daemon does per loop turn. */
#define SEQ_TXNS 6

static int seq_txn(struct relm_store *st, int t)
{
	struct relm_store_outbox o;
	struct relm_store_rel r;
	struct relm_store_msg m;
	uint8_t pid[16], mb[32], state[2000];
	int err, steps = t == 3 ? 3 : 1;

	fill(pid, 16, 1);
	fill(mb, 32, 2);
	if (t == 3 && (err = relm_store_batch_begin(st)) != 0)
		return err;
	for (int k = 0; k < steps; k++) {
		if ((err = relm_store_begin(st)) != 0)
			return err;
		mk_rel(&r, pid, (uint32_t)(t & 1), NULL, 0);
		fill(state, sizeof state, (uint8_t)(t * 10 + k));
		if ((err = relm_store_rel_set_state(st, r.id, state, sizeof state, (uint64_t)t)) != 0)
			return err;
		memset(&o, 0, sizeof o);
		snprintf(o.dest, sizeof o.dest, "h:1/x");
		o.bytes = state;
		o.len = 500;
		if ((err = relm_store_outbox_add(st, &o, NULL)) != 0)
			return err;
		memset(&m, 0, sizeof m);
		memcpy(m.rel, r.id, 16);
		fill(m.id, 16, (uint8_t)(100 + t * 5 + k));
		m.origin = RELM_ORIGIN_SELF;
		m.body = state;
		m.body_len = 300;
		if ((err = relm_store_msg_insert(st, &m)) < 0)
			return err;
		if ((err = relm_store_cursor_set(st, mb, (uint64_t)(t * 10 + k))) != 0)
			return err;
		if ((err = relm_store_event_append(st, "message.sent", "{}", 1, NULL)) != 0)
			return err;
		if (t == 5 && (err = relm_store_outbox_purge_posted(st)) < 0)
			return err;
		if (t == 4) {
			/* mark the first two posted */
			if ((err = relm_store_outbox_mark_posted(st, 1, 1)) != 0 ||
			    (err = relm_store_outbox_mark_posted(st, 2, 1)) != 0)
				return err;
		}
		if ((err = relm_store_commit(st)) != 0)
			return err;
	}
	if (t == 3 && (err = relm_store_batch_commit(st)) != 0)
		return err;
	return 0;
}

START_TEST(test_fault_every_write)
{
	uint8_t d[SEQ_TXNS + 1][32], got[32];
	char base[600], wal[600];
	size_t bn;
	uint8_t *bb;
	long total;
	int points = 0;

	make_closed_store();
	snprintf(base, sizeof base, "%s/state/base.db", tmpdir);
	snprintf(wal, sizeof wal, "%s-wal", dbpath);
	bb = read_file(dbpath, &bn);
	write_file(base, bb, bn);

	/* Dry run: the digest after each transaction, and the op count. */
	{
		struct relm_store *st;
		tu_faultvfs_fail_after(0, 0);
		st = open_ok(dbpath, 0, TU_FAULTVFS_NAME);
		digest(st, d[0]);
		for (int t = 0; t < SEQ_TXNS; t++) {
			ck_assert_int_eq(seq_txn(st, t), 0);
			digest(st, d[t + 1]);
		}
		relm_store_close(st);
		total = tu_faultvfs_ops();
		ck_assert_int_gt(total, 10);
	}
	for (long nth = 1; nth <= total + 1; nth++) {
		int errs[2] = { SQLITE_IOERR, SQLITE_FULL };
		for (int e = 0; e < 2; e++) {
			struct relm_store *st = NULL;
			struct relm_store_opts o = { .vfs = TU_FAULTVFS_NAME };
			int r, done_txns = 0, matched = -1;

			write_file(dbpath, bb, bn);
			unlink(wal);
			tu_faultvfs_fail_after((int)nth, errs[e]);
			r = relm_store_open(&st, dbpath, &o);
			if (r == 0) {
				for (; done_txns < SEQ_TXNS; done_txns++) {
					if ((r = seq_txn(st, done_txns)) != 0)
						break;
				}
				if (r) {
					ck_assert_msg(r == RELM_EFULL || r == RELM_ESTORE,
					              "nth %ld: %s", nth, relm_strerror(r));
					/* sticky: refuses cleanly */
					ck_assert_int_eq(relm_store_error(st), r);
					ck_assert_int_eq(relm_store_in_txn(st), 0);
				}
				relm_store_close(st);
			} else {
				ck_assert_msg(r == RELM_EFULL || r == RELM_ESTORE, "open at nth %ld: %s", nth, relm_strerror(r));
			}
			points += tu_faultvfs_failures() > 0;
			tu_faultvfs_fail_after(0, 0);
			st = open_ok(dbpath, RELM_STORE_F_INTEGRITY, NULL);
			ck_assert_int_eq(exec_int(st, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check='ok'"), 1);
			digest(st, got);
			/* The state is that of the last committed transaction — or,
			 * when the failure hit that transaction's COMMIT, possibly the
			 * next one (a failed fsync after the frames were written). */
			for (int k = done_txns; k <= done_txns + 1 && k <= SEQ_TXNS; k++)
				if (memcmp(got, d[k], 32) == 0)
					matched = k;
			ck_assert_msg(matched >= 0, "nth %ld err %d: state after %d txns is not a committed state",
			              nth, errs[e], done_txns);
			/* usable after reopen */
			ck_assert_int_eq(relm_store_begin(st), 0);
			ck_assert_int_eq(relm_store_event_append(st, "x", "{}", 1, NULL), 0);
			ck_assert_int_eq(relm_store_commit(st), 0);
			relm_store_close(st);
		}
	}
	ck_assert_int_gt(points, 20);
	fprintf(stderr, "  fault injection: %ld write ops in the sequence, %d failure points checked\n", total, points);
	free(bb);
}
END_TEST

/* The write-back of staged columns fails at batch commit (disk full, I/O
 * error), at every write op of the commit: the store goes to the sticky
 * error as a failed COMMIT does, and reopens with the last committed state
 * — never some relationships written and others not.  A tiny page cache
 * makes the write-back spill pages to the WAL, so the faults reach it and
 * not only the COMMIT's frames. */
START_TEST(test_flush_fault)
{
	enum { NREL = 40 };
	struct relm_store_proton p;
	struct relm_store_rel r;
	uint8_t before[32], after[32], got[32], state[3000];
	char base[600], wal[600];
	uint8_t *bb;
	size_t bn;
	long total = 0;
	int in_flush = 0, points = 0;

	{
		struct relm_store *st = open_ok(dbpath, 0, NULL);
		mk_proton(&p, 1);
		ck_assert_int_eq(relm_store_begin(st), 0);
		ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
		for (uint32_t i = 0; i < NREL; i++) {
			fill(state, sizeof state, (uint8_t)i);
			mk_rel(&r, p.id, i, state, sizeof state);
			ck_assert_int_eq(relm_store_rel_put(st, &r), 0);
		}
		ck_assert_int_eq(relm_store_commit(st), 0);
		digest(st, before);
		relm_store_close(st);
	}
	snprintf(base, sizeof base, "%s/state/base.db", tmpdir);
	snprintf(wal, sizeof wal, "%s-wal", dbpath);
	bb = read_file(dbpath, &bn);
	write_file(base, bb, bn);

	/* nth = 0: the dry run, which also gives the op count of the commit */
	for (long nth = 0; nth <= total + 1; nth++) {
		int errs[2] = { SQLITE_IOERR, SQLITE_FULL };
		for (int e = 0; e < (nth ? 2 : 1); e++) {
			struct relm_store *st;
			uint8_t mb[32];
			int rc, wb;

			write_file(dbpath, bb, bn);
			unlink(wal);
			tu_faultvfs_fail_after(0, 0);
			st = open_ok(dbpath, RELM_STORE_F_NOCHECK, TU_FAULTVFS_NAME);
			ck_assert_int_eq(sqlite3_exec(relm__store_db(st), "PRAGMA cache_size=8", NULL, NULL, NULL), SQLITE_OK);
			ck_assert_int_eq(relm_store_batch_begin(st), 0);
			for (uint32_t i = 0; i < NREL; i++) {
				mk_rel(&r, p.id, i, NULL, 0);
				fill(state, sizeof state, (uint8_t)(i + 77));
				fill(mb, 32, (uint8_t)i);
				ck_assert_int_eq(relm_store_begin(st), 0);
				ck_assert_int_eq(relm_store_rel_set_state(st, r.id, state, sizeof state - i, 7), 0);
				ck_assert_int_eq(relm_store_rel_set_deadline(st, r.id, 100 + i), 0);
				ck_assert_int_eq(relm_store_cursor_set(st, mb, i), 0);
				ck_assert_int_eq(relm_store_commit(st), 0);
			}
			tu_faultvfs_fail_after((int)nth, nth ? errs[e] : 0);
			rc = relm_store_batch_commit(st);
			if (!nth) {
				ck_assert_int_eq(rc, 0);
				total = tu_faultvfs_ops();
				ck_assert_int_gt(total, 10);
				digest(st, after);
				relm_store_close(st);
				continue;
			}
			if (tu_faultvfs_failures() == 0) {
				ck_assert_int_eq(rc, 0);   /* nth past the last op */
				relm_store_close(st);
				continue;
			}
			points++;
			ck_assert_msg(rc == RELM_EFULL || rc == RELM_ESTORE, "nth %ld: %s", nth, relm_strerror(rc));
			ck_assert_int_eq(relm_store_error(st), rc);
			ck_assert_int_eq(relm_store_in_txn(st), 0);
			ck_assert_int_eq(relm_store_begin(st), rc);
			ck_assert_int_eq(relm_store_next_deadline(st, &(uint64_t){0}), rc);
			wb = strstr(relm_store_errmsg(st), "write-back") != NULL;
			in_flush += wb;
			relm_store_close(st);
			tu_faultvfs_fail_after(0, 0);
			st = open_ok(dbpath, RELM_STORE_F_INTEGRITY, NULL);
			digest(st, got);
			/* the old state — or, when the COMMIT itself failed after its
			 * frames were written, possibly the new one; never a mix */
			ck_assert_msg(memcmp(got, before, 32) == 0 || memcmp(got, after, 32) == 0,
			              "nth %ld err %d: neither the committed nor the new state", nth, errs[e]);
			if (wb)      /* failed before COMMIT: certainly the old state */
				ck_assert_msg(memcmp(got, before, 32) == 0, "nth %ld: write-back failed, yet changed", nth);
			ck_assert_int_eq(relm_store_begin(st), 0);
			ck_assert_int_eq(relm_store_event_append(st, "x", "{}", 1, NULL), 0);
			ck_assert_int_eq(relm_store_commit(st), 0);
			relm_store_close(st);
		}
	}
	ck_assert_int_gt(in_flush, 0);
	ck_assert_int_gt(points, 10);
	fprintf(stderr, "  write-back faults: %ld write ops in the commit, %d failure points, %d in the write-back\n",
	        total, points, in_flush);
	free(bb);
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

	st = open_ok(dbpath, 0, NULL);
	mk_proton(&p, 1);
	t0 = now_s();
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
	for (uint32_t i = 0; i < N; i++) {
		fill(state, sizeof state, (uint8_t)i);
		mk_rel(&r, p.id, i, state, sizeof state);
		ck_assert_int_eq(relm_store_rel_put(st, &r), 0);
	}
	ck_assert_int_eq(relm_store_commit(st), 0);
	relm_store_close(st);
	t_fill = now_s() - t0;

	t0 = now_s();
	st = open_ok(dbpath, 0, NULL);
	t_quick = now_s() - t0;
	relm_store_close(st);
	t0 = now_s();
	st = open_ok(dbpath, RELM_STORE_F_INTEGRITY, NULL);
	t_full = now_s() - t0;
	relm_store_close(st);

	/* Open + one get + one update through the counting VFS. */
	tu_faultvfs_fail_after(0, 0);
	tu_faultvfs_reads(1);
	t0 = now_s();
	st = open_ok(dbpath, RELM_STORE_F_NOCHECK, TU_FAULTVFS_NAME);
	t_none = now_s() - t0;
	mk_rel(&r, p.id, 54321, NULL, 0);
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
	ck_assert_int_eq(exec_int(st, "PRAGMA page_count"), exec_int(st, "PRAGMA page_count"));
	fprintf(stderr, "  lazy: %d rels, %d pages; fill %.2fs; open+quick_check %.3fs, "
	        "open+integrity_check %.3fs, open without check %.4fs; "
	        "open+get+update: %ld page reads, %llu VM steps\n",
	        N, exec_int(st, "PRAGMA page_count"), t_fill, t_quick, t_full, t_none, reads,
	        (unsigned long long)steps);
	ck_assert_int_lt(reads, 60);
	ck_assert_uint_lt(steps, 200);
	ck_assert_int_gt(exec_int(st, "PRAGMA page_count"), 10000);
	relm_store_close(st);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	struct { const char *name; const TTest *t; int timeout; } tests[] = {
		{ "create_modes", test_create_modes, 10 },
		{ "refuse_permissions", test_refuse_permissions, 10 },
		{ "readonly_folder", test_readonly_folder, 10 },
		{ "protons_devices", test_protons_devices, 10 },
		{ "invites_replay", test_invites_replay, 10 },
		{ "relationships", test_relationships, 10 },
		{ "pending_cursor", test_pending_cursor, 10 },
		{ "messages_dedup", test_messages_dedup, 10 },
		{ "outbox", test_outbox, 10 },
		{ "events", test_events, 10 },
		{ "transactions_batch", test_transactions_batch, 10 },
		{ "apply_effects", test_apply_effects, 10 },
		{ "status_forward", test_status_forward, 10 },
		{ "timers_mailboxes", test_timers_mailboxes, 10 },
		{ "corrupt", test_corrupt_pages, 30 },
		{ "check_after_unclean_close", test_check_skipped_only_after_clean_close, 30 },
		{ "newer_version", test_newer_version, 10 },
		{ "fixture_v1", test_fixture_v1, 10 },
		{ "fixture_v2", test_fixture_v2, 10 },
		{ "fixture_v3", test_fixture_v3, 10 },
		{ "fixture_v4", test_fixture_v4, 10 },
		{ "fixture_v5", test_fixture_v5, 10 },
		{ "migrate_v4_checks", test_migrate_v4_checks, 10 },
		{ "migrate_v4_unexpected", test_migrate_v4_unexpected, 10 },
		{ "migrate_v3_acks", test_migrate_v3_acks, 10 },
		{ "migrate_v2_counts", test_migrate_v2_counts, 10 },
		{ "outgoing_queue", test_outgoing_queue, 10 },
		{ "outgoing_count", test_outgoing_count, 10 },
		{ "stage_steps", test_stage_steps, 10 },
		{ "stage_deadlines", test_stage_deadlines, 10 },
		{ "stage_unread", test_stage_unread, 10 },
		{ "stage_many", test_stage_many, 30 },
		{ "disk_full", test_disk_full, 10 },
		{ "fault_every_write", test_fault_every_write, 120 },
		{ "flush_fault", test_flush_fault, 120 },
		{ "lazy_100k", test_lazy_100k, 120 },
	};
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
		TCase *tc = tcase_create(tests[i].name);
		tcase_add_checked_fixture(tc, setup, teardown);
		tcase_set_timeout(tc, tests[i].timeout);
		tcase_add_test(tc, tests[i].t);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failed;

	if (sodium_init() < 0)
		return 1;
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed) {
		const char *s = getenv("RELM_SEED");
		fprintf(stderr, "check_store: RELM_SEED=%s\n", s && *s ? s : "0x5eed5eed (default)");
	}
	return failed ? 1 : 0;
}

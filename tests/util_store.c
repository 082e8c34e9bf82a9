/* util_store.c — the store tests' shared helpers (see util_store.h). */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <sodium.h>
#include "error.h"
#include "util_faultvfs.h"
#include "util_store.h"

unsigned long long ts_seed = 0x5eed5eedULL;
char ts_tmpdir[256];
char ts_dbpath[512];

uint64_t ts_prng(void)
{
	/* splitmix64: deterministic from RELM_SEED */
	uint64_t z = (ts_seed += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

double ts_now_s(void)
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

void ts_setup(void)
{
	const char *s = getenv("RELM_SEED");
	if (s && *s)
		ts_seed = strtoull(s, NULL, 0);
	snprintf(ts_tmpdir, sizeof ts_tmpdir, "/tmp/relm-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(ts_tmpdir));
	snprintf(ts_dbpath, sizeof ts_dbpath, "%s/state/relm.db", ts_tmpdir);
	ck_assert_int_eq(tu_faultvfs_register(), SQLITE_OK);
	tu_faultvfs_fail_after(0, 0);
}

void ts_teardown(void)
{
	char st[300];

	chmod(ts_tmpdir, 0700);
	snprintf(st, sizeof st, "%s/state", ts_tmpdir);
	chmod(st, 0700);
	nftw(ts_tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

struct relm_store *ts_open_ok(const char *path, unsigned flags, const char *vfs)
{
	struct relm_store *st = NULL;
	char err[512];
	struct relm_store_opts o = { .vfs = vfs, .flags = flags, .errbuf = err, .errlen = sizeof err };
	int r = relm_store_open(&st, path, &o);
	ck_assert_msg(r == 0, "open %s: %s (%s)", path, relm_strerror(r), err);
	return st;
}

int ts_open_err(const char *path, char *err, size_t errlen)
{
	struct relm_store *st = NULL;
	struct relm_store_opts o = { .errbuf = err, .errlen = errlen };
	int r = relm_store_open(&st, path, &o);
	ck_assert_ptr_null(st);
	return r;
}

void ts_fill(uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v + i);
}

void ts_mk_proton(struct relm_store_proton *p, uint8_t v)
{
	memset(p, 0, sizeof *p);
	ts_fill(p->id, sizeof p->id, v);
	ts_fill(p->ipk, sizeof p->ipk, (uint8_t)(v + 100));
	ts_fill(p->isk, sizeof p->isk, (uint8_t)(v + 50));
	snprintf(p->label, sizeof p->label, "proton %u", v);
	p->created = 1000 + v;
}

void ts_mk_rel(struct relm_store_rel *r, const uint8_t proton[16], uint32_t i,
               uint8_t *state, size_t len)
{
	memset(r, 0, sizeof *r);
	memcpy(r->proton, proton, 16);
	r->id[0] = 0xee;
	r->id[12] = (uint8_t)(i >> 24); r->id[13] = (uint8_t)(i >> 16);
	r->id[14] = (uint8_t)(i >> 8);  r->id[15] = (uint8_t)i;
	memcpy(r->mailbox_id, r->id, 16);
	r->mailbox_id[31] = 0x77;
	ts_fill(r->remote_ipk, 32, (uint8_t)i);
	snprintf(r->label, sizeof r->label, "rel %u", i);
	r->mode = 1;
	r->created = r->last_activity = 5000 + i;
	r->state = state;
	r->state_len = len;
}

int ts_exec_int(struct relm_store *st, const char *sql)
{
	sqlite3_stmt *s;
	int v = -1;
	ck_assert_int_eq(sqlite3_prepare_v2(relm__store_db(st), sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return v;
}

uint8_t *ts_read_file(const char *p, size_t *len)
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

void ts_write_file(const char *p, const uint8_t *b, size_t n)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, b, n), (ssize_t)n);
	close(fd);
}

int ts_file_exists(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0;
}

int ts_rel_cb(void *ctx, const struct relm_store_rel *r)
{
	struct ts_list_acc *a = ctx;
	ck_assert_ptr_null(r->state);
	if (a->n)
		ck_assert_int_lt(memcmp(a->last, r->id, 16), 0);
	memcpy(a->last, r->id, 16);
	a->n++;
	return 0;
}

int ts_due_cb(void *ctx, const uint8_t id[16])
{
	(void)id;
	++*(int *)ctx;
	return 0;
}

int ts_count_mismatches(struct relm_store *st)
{
	return ts_exec_int(st, "SELECT count(*) FROM relationships r"
	                       " LEFT JOIN outgoing_count c ON c.rel=r.id"
	                       " WHERE coalesce(c.n,0) != (SELECT count(*) FROM outgoing o WHERE o.rel=r.id)") +
	       ts_exec_int(st, "SELECT count(*) FROM outgoing_count c WHERE NOT EXISTS"
	                       " (SELECT 1 FROM relationships r WHERE r.id=c.rel)");
}

uint64_t ts_out_count(struct relm_store *st, const uint8_t rel[16])
{
	uint64_t n = 99;
	ck_assert_int_eq(relm_store_outgoing_count(st, rel, &n), 0);
	return n;
}

void ts_event(struct relm_event *ev, int type, const uint8_t rel[16])
{
	relm_event_init(ev, type);
	if (rel) {
		memcpy(ev->rel, rel, 16);
		ev->has = RELM_EVF_REL;
	}
}

void ts_same_fields(const struct relm_event *a, const struct relm_event *b)
{
	ck_assert_int_eq(a->type, b->type);
	ck_assert_uint_eq(a->has, b->has);
#define FIELD(bit, f) if (a->has & bit) ck_assert_int_eq(memcmp(&a->f, &b->f, sizeof a->f), 0);
	FIELD(RELM_EVF_REL, rel) FIELD(RELM_EVF_MSG, msg) FIELD(RELM_EVF_NODE, node)
	FIELD(RELM_EVF_PROTON, proton) FIELD(RELM_EVF_DEVICE, device) FIELD(RELM_EVF_ENVELOPE, envelope)
	FIELD(RELM_EVF_IPK, ipk) FIELD(RELM_EVF_MAILBOX, mailbox) FIELD(RELM_EVF_MBOX_SEQ, mailbox_seq)
	FIELD(RELM_EVF_EPOCH, epoch) FIELD(RELM_EVF_PRUNED, pruned) FIELD(RELM_EVF_STATUS, status)
	FIELD(RELM_EVF_CODE, code) FIELD(RELM_EVF_ROW, row)
#undef FIELD
}

const struct relm_event *ts_any_event(void)
{
	static const struct relm_event ev = { .type = RELM_EV_ENVELOPE_UNDECRYPTABLE };
	return &ev;
}

int64_t ts_event_add(struct relm_store *st, const struct relm_event *ev, uint64_t ts)
{
	int64_t seq = 0;
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_event_append(st, ev, ts, &seq), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	return seq;
}

void ts_populate(struct relm_store *st)
{
	struct relm_store_proton p;
	struct relm_store_rel r;
	struct relm_event ev;
	uint8_t state[300];

	ts_mk_proton(&p, 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
	for (uint32_t i = 0; i < 2; i++) {
		ts_fill(state, sizeof state, (uint8_t)(i + 9));
		ts_mk_rel(&r, p.id, i, state, sizeof state);
		ck_assert_int_eq(relm_store_rel_put(st, &r), 0);
		for (int k = 0; k < 20; k++) {
			struct relm_store_msg m = { .direction_in = k & 1, .origin = RELM_ORIGIN_REMOTE,
			                            .ts = (uint64_t)k, .status = RELM_STATUS_NONE,
			                            .created = (uint64_t)k };
			uint8_t body[200];
			memcpy(m.rel, r.id, 16);
			ts_fill(m.id, 16, (uint8_t)(k * 7 + (int)i));
			for (size_t j = 0; j < sizeof body; j++)   /* text: the store checks it on read */
				body[j] = (uint8_t)('a' + (k + (int)j) % 26);
			m.body = body;
			m.body_len = sizeof body;
			ck_assert_int_eq(relm_store_msg_insert(st, &m), 1);
		}
	}
	ts_event(&ev, RELM_EV_RELATIONSHIP_CREATED, r.id);
	ck_assert_int_eq(relm_store_event_append(st, &ev, 1, NULL), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
}

void ts_digest(struct relm_store *st, uint8_t out[32])
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

void ts_make_closed_store(void)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_proton p;
	struct relm_store_rel r;
	uint8_t state[3000];

	ts_populate(st);
	/* Enough data for many pages, including overflow pages. */
	ts_mk_proton(&p, 1);
	ck_assert_int_eq(relm_store_begin(st), 0);
	for (uint32_t i = 10; i < 200; i++) {
		ts_fill(state, sizeof state, (uint8_t)i);
		ts_mk_rel(&r, p.id, i, state, sizeof state);
		ck_assert_int_eq(relm_store_rel_put(st, &r), 0);
	}
	ck_assert_int_eq(relm_store_commit(st), 0);
	relm_store_close(st);   /* last connection: checkpoints and removes the WAL */
}

static const char *fixture_dir(void)
{
	const char *d = getenv("RELM_FIXTURES");
	return d && *d ? d : "tests/fixtures";
}

sqlite3 *ts_fixture_db(int version)
{
	char fx[512], dir[300], *sql, *errmsg = NULL;
	size_t n;
	sqlite3 *db;

	snprintf(fx, sizeof fx, "%s/store-v%d.sql", fixture_dir(), version);
	sql = (char *)ts_read_file(fx, &n);
	ck_assert_msg(sql != NULL, "cannot read %s", fx);
	sql[n] = '\0';
	snprintf(dir, sizeof dir, "%s/state", ts_tmpdir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(sqlite3_open(ts_dbpath, &db), SQLITE_OK);
	ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &errmsg) == SQLITE_OK, "%s", errmsg);
	free(sql);
	return db;
}

int ts_run(const char *name, const struct ts_test *tests, size_t n)
{
	Suite *s = suite_create(name);
	SRunner *sr;
	int failed;

	if (sodium_init() < 0)
		return 1;
	for (size_t i = 0; i < n; i++) {
		/* a TCase per concept: the rows of one concept are adjacent */
		if (i == 0 || strcmp(tests[i].tcase, tests[i - 1].tcase) != 0) {
			TCase *tc = tcase_create(tests[i].tcase);
			int timeout = 0;
			tcase_add_checked_fixture(tc, ts_setup, ts_teardown);
			for (size_t j = i; j < n && !strcmp(tests[j].tcase, tests[i].tcase); j++)
				if (tests[j].timeout > timeout)
					timeout = tests[j].timeout;
			tcase_set_timeout(tc, timeout);
			suite_add_tcase(s, tc);
			for (size_t j = i; j < n && !strcmp(tests[j].tcase, tests[i].tcase); j++)
				tcase_add_loop_test_raise_signal(tc, tests[j].t, tests[j].signal, 0,
				                                 tests[j].loops ? tests[j].loops : 1);
		}
	}
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed) {
		const char *e = getenv("RELM_SEED");
		fprintf(stderr, "%s: RELM_SEED=%s\n", name, e && *e ? e : "0x5eed5eed (default)");
	}
	return failed ? 1 : 0;
}

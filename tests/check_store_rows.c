/*
 * check_store_rows.c — what the store reads back is checked like input
 * (lib/store/check.c, proto/store.md §5.1): a row whose text is not UTF-8,
 * whose name is not of its enumeration, whose id or key is not of its size
 * is left out of lists, refused by getters (RELM_EBADROW) and reported as
 * a store.corrupt_row record — never handed over as it is.  And the check
 * on demand, relm_store_check: SQLite's integrity_check or quick_check,
 * then every row through its reader.
 *
 * The damage is done with SQL on the store's own connection, as a flipped
 * byte in the file would leave it (the record decodes; its value is wrong).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "error.h"
#include "store/store.h"
#include "util_store.h"

/* What the hook heard. */
struct heard {
	int n;
	char table[8][32], reason[8][160];
	uint64_t row[8];
	unsigned has[8];
	uint8_t rel[8][16], msg[8][16];
};

static void hook(void *ctx, const struct relm_event *ev)
{
	struct heard *h = ctx;

	ck_assert_int_eq(ev->type, RELM_EV_STORE_CORRUPT_ROW);
	ck_assert_int_eq(relm_event_check(ev), 0);          /* a record the log takes */
	if (h->n < 8) {
		snprintf(h->table[h->n], sizeof h->table[0], "%s", ev->table);
		snprintf(h->reason[h->n], sizeof h->reason[0], "%s", ev->reason);
		h->row[h->n] = ev->row;
		h->has[h->n] = ev->has;
		memcpy(h->rel[h->n], ev->rel, 16);
		memcpy(h->msg[h->n], ev->msg, 16);
	}
	h->n++;
}

static void damage(struct relm_store *st, const char *sql)
{
	char *err = NULL;
	int rc = sqlite3_exec(relm__store_db(st), sql, NULL, NULL, &err);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, err ? err : "");
	sqlite3_free(err);
}

struct msgs {
	int n;
	int64_t seqs[64];
	uint8_t ids[64][16];
};

static int msgs_cb(void *ctx, const struct relm_store_msg *m)
{
	struct msgs *a = ctx;
	if (a->n < 64) {
		a->seqs[a->n] = m->seq;
		memcpy(a->ids[a->n], m->id, 16);
	}
	a->n++;
	return 0;
}

/* The damaged values of a history row, each as a flipped byte leaves it. */
static const struct {
	const char *set, *why;
} msg_damage[] = {
	{ "kind=CAST(x'749a7874' AS TEXT)", "kind" },             /* "t\x9axt": the case */
	{ "kind=''", "kind" },
	{ "body=x'68690069'", "body" },                          /* a NUL inside */
	{ "body=x'c0af'", "body" },                              /* an overlong form */
	{ "body=CAST(x'6869' AS TEXT)", "body" },                /* a text, not a blob */
	{ "reason=CAST(x'edb080' AS TEXT)", "reason" },          /* a UTF-16 surrogate */
	{ "direction='sideways'", "direction" },
	{ "status='lost'", "status" },
	{ "origin='nowhere'", "origin" },
	{ "id=x'0102'", "id" },
	{ "ts='yesterday'", "integer" },
};

/* Each damaged history row: message.list leaves it out (the others are
 * all there), the getters refuse it, and the hook hears of it with its
 * table, row (the message's seq), what is wrong, and the ids it could
 * read. */
START_TEST(test_history_row_left_out)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_rel r;
	struct relm_store_msg m;
	struct heard h = { 0 };
	struct msgs all = { 0 }, left = { 0 };
	uint8_t pid[16], *body = NULL;
	size_t blen = 0;
	char sql[300];
	int64_t seq;

	ts_populate(st);
	ts_fill(pid, 16, 1);
	ts_mk_rel(&r, pid, 0, NULL, 0);
	ck_assert_int_eq(relm_store_msg_list(st, r.id, 0, 0, msgs_cb, &all), 0);
	ck_assert_int_eq(all.n, 20);
	seq = all.seqs[5];
	ck_assert_int_eq(sqlite3_exec(relm__store_db(st), "PRAGMA ignore_check_constraints=ON", NULL, NULL, NULL), SQLITE_OK);
	relm_store_on_bad_row(st, hook, &h);
	snprintf(sql, sizeof sql, "UPDATE messages SET %s WHERE seq=%lld", msg_damage[_i].set, (long long)seq);
	damage(st, sql);
	ck_assert_int_eq(relm_store_msg_list(st, r.id, 0, 0, msgs_cb, &left), 0);
	ck_assert_int_eq(left.n, 19);
	for (int k = 0; k < left.n; k++)
		ck_assert_int_ne(left.seqs[k], seq);
	ck_assert_int_eq(h.n, 1);
	ck_assert_str_eq(h.table[0], "messages");
	ck_assert(h.has[0] & RELM_EVF_ROW);
	ck_assert_uint_eq(h.row[0], (uint64_t)seq);
	ck_assert_msg(strstr(h.reason[0], msg_damage[_i].why) != NULL, "%s: %s", msg_damage[_i].set, h.reason[0]);
	ck_assert(h.has[0] & RELM_EVF_REL);
	ck_assert(memcmp(h.rel[0], r.id, 16) == 0);
	/* the getters, by the id it had (unless that is what was damaged) */
	{
		const uint8_t *id = all.ids[5];
		int rc = relm_store_msg_get(st, r.id, id, &m);
		int rc2 = relm_store_msg_get_body(st, r.id, id, &m, &body, &blen);
		if (strcmp(msg_damage[_i].why, "id") == 0) {
			ck_assert_int_eq(rc, RELM_ENOTFOUND);
		} else if (strcmp(msg_damage[_i].why, "body") == 0) {
			ck_assert_int_eq(rc, 0);          /* without its body the row is sound */
			ck_assert_int_eq(rc2, RELM_EBADROW);
		} else {
			ck_assert_int_eq(rc, RELM_EBADROW);
			ck_assert_int_eq(rc2, RELM_EBADROW);
		}
		ck_assert_ptr_null(body);
	}
	/* the on-demand check: SQLite finds nothing (the record is sound),
	 * relm's check finds the row */
	{
		struct heard c = { 0 };
		ck_assert_int_eq(relm_store_check(st, 0, NULL, hook, &c), 0);
		ck_assert_int_eq(c.n, 1);
		ck_assert_str_eq(c.table[0], "messages");
		ck_assert_uint_eq(c.row[0], (uint64_t)seq);
	}
	relm_store_close(st);
}
END_TEST

static int protons_cb(void *ctx, const struct relm_store_proton *p)
{
	(void)p;
	(*(int *)ctx)++;
	return 0;
}

static int devices_cb(void *ctx, const struct relm_store_device *d)
{
	(void)d;
	(*(int *)ctx)++;
	return 0;
}

/* Labels and names of protons, devices and relationships: the same. */
START_TEST(test_labels_and_names)
{
	struct relm_store *st = ts_open_ok(ts_dbpath, 0, NULL);
	struct relm_store_proton p, g;
	struct relm_store_device d;
	struct relm_store_rel r, gr;
	struct ts_list_acc acc = { 0 };
	struct heard h = { 0 };
	int n = 0;

	ts_populate(st);
	ts_mk_proton(&p, 1);
	memset(&d, 0, sizeof d);
	memcpy(d.proton, p.id, 16);
	ts_fill(d.device, 16, 0x33);
	snprintf(d.label, sizeof d.label, "laptop");
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_device_put(st, &d), 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	relm_store_on_bad_row(st, hook, &h);
	damage(st, "UPDATE relationships SET label=CAST(x'72656cff' AS TEXT) WHERE label='rel 1';"
	           "UPDATE devices SET label=CAST(x'6c6170746f70c3' AS TEXT);");
	ck_assert_int_eq(relm_store_rel_list(st, p.id, NULL, 0, ts_rel_cb, &acc), 0);
	ck_assert_int_eq(acc.n, 1);
	ck_assert_int_eq(h.n, 1);
	ck_assert_str_eq(h.table[0], "relationships");
	ts_mk_rel(&r, p.id, 1, NULL, 0);
	ck_assert_int_eq(relm_store_rel_get(st, r.id, &gr, 0), RELM_EBADROW);
	ck_assert_int_eq(relm_store_device_list(st, p.id, devices_cb, &n), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_str_eq(h.table[2], "devices");
	ck_assert(!(h.has[2] & RELM_EVF_ROW));              /* devices has no row numbers */
	ck_assert_int_eq(relm_store_proton_list(st, protons_cb, &n), 0);
	ck_assert_int_eq(n, 1);
	damage(st, "UPDATE protons SET strategy='everyone';");
	n = 0;
	ck_assert_int_eq(relm_store_proton_list(st, protons_cb, &n), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(relm_store_proton_get(st, p.id, &g, 0), RELM_EBADROW);
	ck_assert_int_eq(h.n, 5);
	ck_assert_str_eq(h.table[3], "protons");
	ck_assert_str_eq(h.reason[3], "strategy is not a strategy");
	{
		struct heard c = { 0 };
		ck_assert_int_eq(relm_store_check(st, 1, NULL, hook, &c), 0);
		ck_assert_int_eq(c.n, 3);                      /* one each: no history damaged */
	}
	relm_store_close(st);
}
END_TEST

static void count_line(void *ctx, const char *line)
{
	ck_assert_ptr_nonnull(line);
	(*(int *)ctx)++;
}

/* A sound store: nothing to report.  A store with damaged pages (opened
 * without the check at open): SQLite's check names problems, and the rows
 * are not walked — a bad page would put the handle in its sticky error
 * state, and the answer is already that the file is damaged. */
START_TEST(test_check_on_demand)
{
	struct relm_store *st;
	struct heard c = { 0 };
	int lines = 0, damaged = 0;
	char copy[600];
	size_t n;
	uint8_t *b;

	ts_make_closed_store();
	st = ts_open_ok(ts_dbpath, 0, NULL);
	ck_assert_int_eq(relm_store_check(st, 0, count_line, NULL, &lines), 0);
	ck_assert_int_eq(relm_store_check(st, 1, count_line, NULL, &lines), 0);
	ck_assert_int_eq(relm_store_check(st, 0, NULL, hook, &c), 0);
	ck_assert_int_eq(lines, 0);
	ck_assert_int_eq(c.n, 0);
	relm_store_close(st);
	b = ts_read_file(ts_dbpath, &n);
	snprintf(copy, sizeof copy, "%s/state/copy.db", ts_tmpdir);
	for (int trial = 0; trial < 8 && !damaged; trial++) {
		uint8_t *d = malloc(n);
		memcpy(d, b, n);
		size_t pg = 1 + (size_t)(ts_prng() % (n / 4096 - 1));
		for (size_t i = 0; i < 4096; i++)
			d[pg * 4096 + i] = (uint8_t)ts_prng();
		ts_write_file(copy, d, n);
		free(d);
		st = ts_open_ok(copy, RELM_STORE_F_NOCHECK, NULL);
		lines = 0;
		ck_assert_int_eq(relm_store_check(st, 0, count_line, NULL, &lines), 0);
		damaged = lines > 0;
		relm_store_close(st);
		unlink(copy);
	}
	ck_assert_msg(damaged, "no damaged page noticed in 8 trials (RELM_SEED=0x%llx)", ts_seed);
	free(b);
}
END_TEST

/* outgoing_count against the rows it counts (store v13: no trigger keeps
 * it): a count that differs is reported as a bad row of outgoing_count
 * with its relationship, none while it agrees, and none for what an open
 * step has staged but not yet written. */
START_TEST(test_check_outgoing_count)
{
	struct relm_store *st;
	struct relm_store_outgoing o;
	struct heard c = { 0 };
	uint8_t pid[16];
	struct relm_store_rel r;

	ts_make_closed_store();
	st = ts_open_ok(ts_dbpath, 0, NULL);
	ts_fill(pid, 16, 1);
	ts_mk_rel(&r, pid, 0, NULL, 0);
	memset(&o, 0, sizeof o);
	memcpy(o.rel, r.id, 16);
	ts_fill(o.id, 16, 40);
	o.body = (const uint8_t *)"body";
	o.body_len = 4;
	/* a step with a row added, its count staged: nothing to report */
	ck_assert_int_eq(relm_store_begin(st), 0);
	ck_assert_int_eq(relm_store_outgoing_put(st, &o), 0);
	ck_assert_int_eq(relm_store_check(st, 1, NULL, hook, &c), 0);
	ck_assert_int_eq(c.n, 0);
	ck_assert_int_eq(relm_store_commit(st), 0);
	ck_assert_int_eq(relm_store_check(st, 0, NULL, hook, &c), 0);
	ck_assert_int_eq(c.n, 0);
	/* the count moved behind the store's back */
	damage(st, "UPDATE outgoing_count SET n=n+3");
	ck_assert_int_eq(relm_store_check(st, 0, NULL, hook, &c), 0);
	ck_assert_int_eq(c.n, 1);
	ck_assert_str_eq(c.table[0], "outgoing_count");
	ck_assert(c.has[0] & RELM_EVF_REL);
	ck_assert(!(c.has[0] & RELM_EVF_ROW));
	ck_assert_int_eq(memcmp(c.rel[0], r.id, 16), 0);
	ck_assert_str_eq(c.reason[0], "counts 4 retransmission rows, outgoing holds 1");
	relm_store_close(st);
}
END_TEST

int main(void)
{
	const struct ts_test tests[] = {
		{ "reads", test_history_row_left_out, 10, 0, (int)(sizeof msg_damage / sizeof msg_damage[0]) },
		{ "reads", test_labels_and_names, 10, 0, 0 },
		{ "check", test_check_on_demand, 30, 0, 0 },
		{ "check", test_check_outgoing_count, 30, 0, 0 },
	};
	return ts_run("store_rows", tests, sizeof tests / sizeof tests[0]);
}

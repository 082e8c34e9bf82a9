/*
 * check_faults.c — a damaged store and old invites, through the programs
 * (issue 13): relm-mailbox and two relmd on loopback, driven through the
 * socket and relmctl as a user would, the store file damaged or read
 * between runs.
 *
 *   corrupt_row      a byte flipped in a history row of a stopped relmd's
 *                    store: after the restart message.list leaves the row
 *                    out (the others are there), a store.corrupt_row
 *                    event is recorded once, the log says so,
 *                    daemon.status counts it, store.check and `relmctl
 *                    check` report it
 *   invites_expire   an invite past its expiry is deleted, secrets and
 *                    all, when relmd starts (and every minute after)
 *
 * Programs come from $BUILD (util_daemon.h); every wait is bounded.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sqlite3.h>

#include "util_daemon.h"

enum { WAIT_MS = 30000 };

struct world {
	char dir[200];
	struct td_mbox mb;
	struct td_relmd a, b;
	char pa[33], pb[33], rel[33];
};

static struct world W;

/* mailbox, alice and bob, related (bob accepted alice's invite). */
static void start_world(void)
{
	memset(&W, 0, sizeof W);
	td_dir_new(W.dir, sizeof W.dir);
	ck_assert_int_eq(td_mbox_start(&W.mb, W.dir, "mbox", 0), 0);
	ck_assert_int_eq(td_relmd_start(&W.a, W.dir, "alice", W.mb.port), 0);
	ck_assert_int_eq(td_relmd_start(&W.b, W.dir, "bob", W.mb.port), 0);
	td_relate(W.a.sock, W.b.sock, W.pa, W.pb, W.rel, WAIT_MS);
}

/* alice's history (text messages): bodies into out (malloc'd), and the
 * seq of the one whose body is `seq_of`. */
static int alice_texts(char **out, int max, const char *seq_of, long long *seq)
{
	cJSON *r = td_callf(W.a.sock, "message.list", "{\"relationship\":\"%s\",\"limit\":1000}", W.rel);
	const cJSON *m;
	int n = 0;

	ck_assert_ptr_nonnull(td_res(r));
	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(td_res(r), "messages")) {
		if (strcmp(td_str(m, "kind"), "text") != 0)
			continue;
		if (seq_of && seq && !strcmp(td_str(m, "body"), seq_of))
			*seq = (long long)cJSON_GetObjectItemCaseSensitive(m, "seq")->valuedouble;
		if (out && n < max)
			out[n] = strdup(td_str(m, "body"));
		n++;
	}
	cJSON_Delete(r);
	return n;
}

static int alice_has_two(void *arg)
{
	(void)arg;
	return alice_texts(NULL, 0, NULL, NULL) == 2;
}

/* Replace every occurrence of `from` in the file by `to` (same length):
 * the count. */
static int patch_file(const char *path, const char *from, const char *to)
{
	FILE *f = fopen(path, "r+b");
	size_t n, k = strlen(from);
	uint8_t *b;
	int hits = 0;

	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	n = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc(n);
	ck_assert_uint_eq(fread(b, 1, n, f), n);
	for (size_t i = 0; i + k <= n; i++)
		if (!memcmp(b + i, from, k)) {
			memcpy(b + i, to, k);
			hits++;
		}
	fseek(f, 0, SEEK_SET);
	ck_assert_uint_eq(fwrite(b, 1, n, f), n);
	fclose(f);
	free(b);
	return hits;
}

/* store.corrupt_row events in alice's log, replayed from 0; the last's
 * table and row. */
static int corrupt_events(char *table, size_t cap, long long *row)
{
	struct td_conn c;
	cJSON *r;
	int last, n = 0;

	ck_assert_int_eq(td_conn_open(&c, W.a.sock), 0);
	r = td_conn_call(&c, "subscribe", "{\"since\":0,\"events\":[\"store.corrupt_row\"]}", NULL);
	ck_assert_ptr_nonnull(td_res(r));
	last = (int)cJSON_GetObjectItemCaseSensitive(td_res(r), "replay")->valuedouble;
	cJSON_Delete(r);
	for (int i = 0; i < last; i++) {
		cJSON *e = td_conn_read(&c, 2000);
		if (!e)
			break;                        /* the filter left the rest out */
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "params");
		if (!strcmp(td_str(p, "type"), "store.corrupt_row")) {
			n++;
			snprintf(table, cap, "%s", td_str(p, "table"));
			*row = (long long)cJSON_GetObjectItemCaseSensitive(p, "row")->valuedouble;
			ck_assert(strlen(td_str(p, "reason")) > 0);
			ck_assert_str_eq(td_str(p, "relationship"), W.rel);
		}
		cJSON_Delete(e);
	}
	td_conn_close(&c);
	return n;
}

static int file_has(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof line, f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

START_TEST(corrupt_row)
{
	static const char marker[] = "MARKER-flip-me-0123456789";
	char *texts[4] = { 0 }, db[300], table[32] = "", relmctl[256], out[8192], err[2048];
	long long seq = 0, row = 0;
	cJSON *r;
	int n;

	start_world();
	r = td_must(W.b.sock, "message.send", "{\"relationship\":\"%s\",\"body\":\"%s\"}", W.rel, marker);
	cJSON_Delete(r);
	r = td_must(W.b.sock, "message.send", "{\"relationship\":\"%s\",\"body\":\"intact\"}", W.rel);
	cJSON_Delete(r);
	ck_assert_msg(td_wait(alice_has_two, NULL, WAIT_MS), "alice did not get both messages");
	ck_assert_int_eq(alice_texts(NULL, 0, marker, &seq), 2);
	ck_assert_int_gt(seq, 0);
	/* a clean stop checkpoints the WAL into the file */
	ck_assert_int_eq(td_stop(&W.a.pid, SIGTERM, 5000), 0);
	snprintf(db, sizeof db, "%s/relm.db", W.a.state);
	/* "M" → 0x9a: the body is no longer UTF-8; SQLite sees nothing wrong */
	ck_assert_int_ge(patch_file(db, marker, "\x9a" "ARKER-flip-me-0123456789"), 1);
	ck_assert_int_eq(td_relmd_restart(&W.a), 0);

	n = alice_texts(texts, 4, NULL, NULL);
	ck_assert_int_eq(n, 1);                        /* left out, never served as it is */
	ck_assert_str_eq(texts[0], "intact");
	free(texts[0]);
	/* reported: an event with the table and the row, the log, the status */
	ck_assert_int_eq(corrupt_events(table, sizeof table, &row), 1);
	ck_assert_str_eq(table, "messages");
	ck_assert_int_eq(row, seq);
	ck_assert(file_has(W.a.log, "fails its check"));
	r = td_must(W.a.sock, "daemon.status", NULL);
	ck_assert_int_eq((int)cJSON_GetObjectItemCaseSensitive(td_res(r), "corrupt_rows")->valuedouble, 1);
	ck_assert_str_eq(td_str(td_res(r), "store_state"), "ok");
	cJSON_Delete(r);
	/* once: reading it again reports nothing new */
	ck_assert_int_eq(alice_texts(NULL, 0, NULL, NULL), 1);
	ck_assert_int_eq(corrupt_events(table, sizeof table, &row), 1);
	/* the check on demand */
	r = td_must(W.a.sock, "store.check", NULL);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(td_res(r), "ok")));
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(td_res(r), "integrity")), 0);
	ck_assert_int_eq((int)cJSON_GetObjectItemCaseSensitive(td_res(r), "corrupt_total")->valuedouble, 1);
	{
		const cJSON *b = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(td_res(r), "corrupt_rows"), 0);
		ck_assert_str_eq(td_str(b, "table"), "messages");
		ck_assert_int_eq((long long)cJSON_GetObjectItemCaseSensitive(b, "row")->valuedouble, seq);
	}
	cJSON_Delete(r);
	td_prog(relmctl, sizeof relmctl, "relmctl");
	{
		char *argv[] = { relmctl, "--socket", W.a.sock, "check", NULL };
		ck_assert_int_eq(td_run(argv, out, sizeof out, err, sizeof err, 10000), 1);
		ck_assert_msg(strstr(out, "messages") != NULL, "%s", out);
		ck_assert_msg(strstr(err, "damaged") != NULL, "%s", err);
	}
	/* bob's store is sound: check exits 0 */
	{
		char *argv[] = { relmctl, "--socket", W.b.sock, "check", "--quick", NULL };
		ck_assert_int_eq(td_run(argv, out, sizeof out, err, sizeof err, 10000), 0);
	}
}
END_TEST

START_TEST(invites_expire)
{
	char db[300];
	sqlite3 *h;
	sqlite3_stmt *s;
	cJSON *r;

	start_world();
	r = td_must(W.a.sock, "invite.create", "{\"proton\":\"%s\",\"ttl_s\":1}", W.pa);
	cJSON_Delete(r);
	r = td_must(W.a.sock, "invite.create", "{\"proton\":\"%s\",\"ttl_s\":3600}", W.pa);
	cJSON_Delete(r);
	td_sleep_ms(1100);                             /* the first has expired (its deadline is past) */
	ck_assert_int_eq(td_relmd_restart(&W.a), 0);   /* the sweep runs at start */
	ck_assert_int_eq(td_stop(&W.a.pid, SIGTERM, 5000), 0);
	snprintf(db, sizeof db, "%s/relm.db", W.a.state);
	ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(h, "SELECT count(*), sum(expires <= ?1) FROM invites", -1, &s, NULL), SQLITE_OK);
	sqlite3_bind_int64(s, 1, td_now_ms());
	ck_assert_int_eq(sqlite3_step(s), SQLITE_ROW);
	/* the one bob used (a week) and the hour-long one; the expired one gone */
	ck_assert_int_eq(sqlite3_column_int(s, 0), 2);
	ck_assert_int_eq(sqlite3_column_int(s, 1), 0);
	sqlite3_finalize(s);
	sqlite3_close(h);
}
END_TEST

static void base_setup(void) { td_base_new("faults"); }
static void base_teardown(void) { td_base_free(); }
static void teardown(void) { td_kill_all(); }

int main(void)
{
	Suite *s = suite_create("faults");
	TCase *tc = tcase_create("store");
	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, corrupt_row);
	tcase_add_test(tc, invites_expire);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

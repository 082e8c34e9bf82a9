/*
 * check_diskfull.c — a full disk under a running relmd (issue 13 item 6):
 * relmd stays up, refuses what would write with data.code disk_full, keeps
 * serving reads, says so in daemon.status, and goes on by itself when the
 * disk takes writes again — nothing acknowledged lost.
 *
 * alice is relmd's application (relmd/app.h) in this process, on a thread
 * of its own, with its store on the fault-injecting VFS
 * (tests/util_faultvfs.c): from the moment the test arms it, every write,
 * fsync and truncate of the store fails with SQLITE_FULL, until it is
 * cleared.  bob (a relmd) and the mailbox (relm-mailbox) are the programs,
 * with disks that work.  Everything is seen through the socket: replies,
 * message.list, daemon.status, what bob receives.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sqlite3.h>

#include "api/server.h"
#include "relmd/app.h"
#include "util_daemon.h"
#include "util_faultvfs.h"

enum { WAIT_MS = 30000 };

static struct {
	char dir[200];
	struct td_mbox mb;
	struct td_relmd b;
	struct relmd d;
	struct relmd_app *app;
	pthread_t th;
	char sock[TD_PATH_MAX];
	char pa[33], pb[33], rel[33];
} W;

static void *run(void *arg)
{
	(void)arg;
	relmd_run(&W.d);
	return NULL;
}

/* alice: the real application, its store on the fault VFS, the shortest
 * retry the configuration allows. */
static void alice_start(void)
{
	struct relmd_config cfg;
	struct relmd_hooks hooks = { 0 };

	relmd_config_default(&cfg);
	snprintf(cfg.state_dir, sizeof cfg.state_dir, "%.190s/alice", W.dir);
	ck_assert_int_eq(mkdir(cfg.state_dir, 0700), 0);
	snprintf(cfg.store_path, sizeof cfg.store_path, "%.300s/relm.db", cfg.state_dir);
	snprintf(W.sock, sizeof W.sock, "%.90s/alice.sock", W.dir);
	snprintf(cfg.socket_path, sizeof cfg.socket_path, "%s", W.sock);
	snprintf(cfg.mailbox, sizeof cfg.mailbox, "127.0.0.1:%d", W.mb.port);
	cfg.serve_mailbox[0] = '\0';
	cfg.store_vfs = TU_FAULTVFS_NAME;
	cfg.store_retry_ms = 100;
	cfg.handle_signals = 0;
	cfg.notify = 0;
	ck_assert_int_eq(relmd_app_setup(&W.app, &cfg, &hooks), 0);
	ck_assert_int_eq(relmd_init(&W.d, &cfg, &hooks), 0);
	ck_assert_int_eq(relmd_app_bind(W.app, &W.d), 0);
	ck_assert_int_eq(relmd_start(&W.d), 0);
	ck_assert_int_eq(pthread_create(&W.th, NULL, run, NULL), 0);
}

static void alice_stop(void)
{
	relmd_stop_async(&W.d);
	pthread_join(W.th, NULL);
	ck_assert_int_eq(relmd_clear(&W.d), 0);
	relmd_app_free(W.app);
}

/* The text bodies of d's history (socket), each into out once. */
static int history(const char *sock, char **out, int max)
{
	cJSON *r = td_callf(sock, "message.list", "{\"relationship\":\"%s\",\"limit\":1000}", W.rel);
	const cJSON *m;
	int n = 0;

	if (!td_res(r)) {
		cJSON_Delete(r);
		return -1;
	}
	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(td_res(r), "messages")) {
		if (strcmp(td_str(m, "kind"), "text") != 0)
			continue;
		if (n < max)
			out[n] = strdup(td_str(m, "body"));
		n++;
	}
	cJSON_Delete(r);
	return n;
}

static int count_body(const char *sock, const char *body)
{
	char *v[64];
	int n = history(sock, v, 64), k = 0;
	for (int i = 0; i < n && i < 64; i++) {
		k += !strcmp(v[i], body);
		free(v[i]);
	}
	return k;
}

struct has { const char *sock, *body; };

static int has_body(void *arg)
{
	struct has *h = arg;
	return count_body(h->sock, h->body) == 1;
}

static int store_ok(void *arg)
{
	(void)arg;
	cJSON *r = td_call(W.sock, "daemon.status", NULL);
	int ok = td_res(r) && !strcmp(td_str(td_res(r), "store_state"), "ok");
	cJSON_Delete(r);
	return ok;
}

static cJSON *send_text(const char *sock, const char *body)
{
	return td_callf(sock, "message.send", "{\"relationship\":\"%s\",\"body\":\"%s\"}", W.rel, body);
}

static void setup(void)
{
	memset(&W, 0, sizeof W);
	ck_assert_int_eq(tu_faultvfs_register(), SQLITE_OK);
	tu_faultvfs_fail_after(0, 0);
	td_dir_new(W.dir, sizeof W.dir);
	ck_assert_int_eq(td_mbox_start(&W.mb, W.dir, "mbox", 0), 0);
	ck_assert_int_eq(td_relmd_start(&W.b, W.dir, "bob", W.mb.port), 0);
	alice_start();
	td_relate(W.sock, W.b.sock, W.pa, W.pb, W.rel, WAIT_MS);
}

static void teardown(void)
{
	tu_faultvfs_fail_after(0, 0);
	td_kill_all();
}

START_TEST(full_then_space)
{
	struct has h;
	cJSON *r;
	char *v[64];
	int n;

	/* before: both ways, acknowledged */
	r = send_text(W.sock, "a-before");
	ck_assert_str_eq(td_str(td_res(r), "status"), "queued");
	cJSON_Delete(r);
	h = (struct has){ W.b.sock, "a-before" };
	ck_assert(td_wait(has_body, &h, WAIT_MS));
	r = send_text(W.b.sock, "b-before");
	cJSON_Delete(r);
	h = (struct has){ W.sock, "b-before" };
	ck_assert(td_wait(has_body, &h, WAIT_MS));

	/* the disk fills: every write of alice's store fails from now */
	tu_faultvfs_fail_after(1, SQLITE_FULL);
	for (int i = 0; i < 3; i++) {
		char body[32];
		snprintf(body, sizeof body, "a-during-%d", i);
		r = send_text(W.sock, body);
		ck_assert_msg(td_err_code(r) == -32000 && !strcmp(td_err_name(r), "disk_full"),
			      "send %d on a full disk: %s", i, td_res(r) ? "accepted" : td_err_name(r));
		cJSON_Delete(r);
	}
	r = td_callf(W.sock, "proton.create", "{\"label\":\"%s\"}", "another");
	ck_assert_str_eq(td_err_name(r), "disk_full");
	cJSON_Delete(r);
	/* relmd is up, says why, and serves reads from what is committed */
	r = td_must(W.sock, "daemon.status", NULL);
	ck_assert_str_eq(td_str(td_res(r), "store_state"), "disk_full");
	ck_assert(cJSON_GetObjectItemCaseSensitive(td_res(r), "store_state_since")->valuedouble > 0);
	ck_assert(cJSON_GetObjectItemCaseSensitive(td_res(r), "store_retry_at")->valuedouble > 0);
	cJSON_Delete(r);
	n = history(W.sock, v, 64);
	ck_assert_int_eq(n, 2);                        /* a-before, b-before: nothing of the lost */
	for (int i = 0; i < n; i++) {
		ck_assert_msg(strncmp(v[i], "a-during", 8) != 0, "%s is in the history", v[i]);
		free(v[i]);
	}
	r = td_must(W.sock, "relationship.show", "{\"relationship\":\"%s\"}", W.rel);
	cJSON_Delete(r);
	/* bob goes on sending; alice cannot store them yet */
	for (int i = 0; i < 3; i++) {
		char body[32];
		snprintf(body, sizeof body, "b-during-%d", i);
		r = send_text(W.b.sock, body);
		ck_assert_ptr_nonnull(td_res(r));
		cJSON_Delete(r);
	}
	td_sleep_ms(500);                              /* they reach alice's mailbox, and alice */
	r = td_must(W.sock, "daemon.status", NULL);
	ck_assert_str_eq(td_str(td_res(r), "store_state"), "disk_full");   /* still: retries fail */
	cJSON_Delete(r);
	ck_assert_int_gt(tu_faultvfs_failures(), 1);

	/* space again: relmd goes on by itself */
	tu_faultvfs_fail_after(0, 0);
	ck_assert_msg(td_wait(store_ok, NULL, WAIT_MS), "the store never came back");
	for (int i = 0; i < 3; i++) {                  /* read again from the stored cursor */
		char body[32];
		snprintf(body, sizeof body, "b-during-%d", i);
		h = (struct has){ W.sock, body };
		ck_assert_msg(td_wait(has_body, &h, WAIT_MS), "%s lost", body);
	}
	r = send_text(W.sock, "a-after");
	ck_assert_str_eq(td_str(td_res(r), "status"), "queued");
	cJSON_Delete(r);
	h = (struct has){ W.b.sock, "a-after" };
	ck_assert(td_wait(has_body, &h, WAIT_MS));
	/* nothing acknowledged lost, nothing refused sent, each once */
	ck_assert_int_eq(count_body(W.b.sock, "a-before"), 1);
	ck_assert_int_eq(count_body(W.sock, "b-before"), 1);
	for (int i = 0; i < 3; i++) {
		char body[32];
		snprintf(body, sizeof body, "a-during-%d", i);
		ck_assert_int_eq(count_body(W.sock, body), 0);
		ck_assert_int_eq(count_body(W.b.sock, body), 0);
		snprintf(body, sizeof body, "b-during-%d", i);
		ck_assert_int_eq(count_body(W.sock, body), 1);
	}
	alice_stop();
}
END_TEST

/* The turn the disk fills in: a burst of sends in one turn, pipelined on
 * one connection, meets the failure at its commit.  Every reply is
 * disk_full (none says queued), and none of them is in the history after
 * the disk comes back. */
START_TEST(lost_turn_replies_withdrawn)
{
	struct td_conn c;
	char line[512];
	int refused = 0;

	ck_assert_int_eq(td_conn_open(&c, W.sock), 0);
	tu_faultvfs_fail_after(1, SQLITE_FULL);
	for (int i = 0; i < 8; i++) {
		snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"message.send\","
			 "\"params\":{\"relationship\":\"%s\",\"body\":\"burst-%d\"}}", i, W.rel, i);
		ck_assert_int_eq(td_conn_send(&c, line), 0);
	}
	for (int i = 0; i < 8; i++) {
		cJSON *r = td_conn_read(&c, WAIT_MS);
		ck_assert_ptr_nonnull(r);
		ck_assert_msg(!td_res(r), "a send was answered as stored on a full disk");
		refused += !strcmp(td_err_name(r), "disk_full");
		cJSON_Delete(r);
	}
	ck_assert_int_eq(refused, 8);
	td_conn_close(&c);
	tu_faultvfs_fail_after(0, 0);
	ck_assert(td_wait(store_ok, NULL, WAIT_MS));
	for (int i = 0; i < 8; i++) {
		snprintf(line, sizeof line, "burst-%d", i);
		ck_assert_int_eq(count_body(W.sock, line), 0);
	}
	alice_stop();
}
END_TEST

static void base_setup(void) { td_base_new("diskfull"); }
static void base_teardown(void) { td_base_free(); }

int main(void)
{
	Suite *s = suite_create("diskfull");
	TCase *tc = tcase_create("store");
	tcase_set_timeout(tc, 90);
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, full_then_space);
	tcase_add_test(tc, lost_turn_replies_withdrawn);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

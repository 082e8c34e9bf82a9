/*
 * check_relmd.c — relmd's socket API as its clients use it, the daemon
 * in-process (util_relmd.h): status and the error classes, subscriptions
 * with replay, the socket's owner checks and its lock, relmctl against it,
 * and the text rules (every line relmd writes is valid UTF-8 JSON).  Bad
 * clients are check_bad_clients', the programs on their own
 * check_programs'.
 */
#include <check.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "limits.h"
#include "api/server.h"
#include "util_daemon.h"
#include "util_rand.h"
#include "util_relmd.h"
#include "util_text.h"

START_TEST(status_happy)
{
	tr_start();
	struct stat st;
	ck_assert_int_eq(stat(TR.sock, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0077, 0);                 /* nobody else */
	char dir[128];
	snprintf(dir, sizeof dir, "%s/relm", TR.dir);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	struct tr_cl c;
	tr_cl_open(&c);
	cJSON *r = tr_rpc(&c, "daemon.status", NULL);
	ck_assert_str_eq(tr_res(r, "version")->valuestring, RELMD_VERSION);
	ck_assert_double_eq(tr_res(r, "api")->valuedouble, RELMD_API_VERSION);
	ck_assert_double_eq(tr_res(r, "protons")->valuedouble, 0);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(tr_res(r, "mailbox"), "connected")));
	ck_assert(cJSON_IsNumber(tr_res(r, "uptime_s")));
	ck_assert_ptr_nonnull(strstr(tr_res(r, "store")->valuestring, "relm.db"));
	cJSON_Delete(r);
	/* not yet served methods answer not_implemented */
	r = tr_rpc(&c, "proton.create", "{\"label\":\"work\"}");
	ck_assert_int_eq(tr_err_code(r), -32000);
	ck_assert_str_eq(tr_err_data_code(r), "not_implemented");
	cJSON_Delete(r);
	tr_cl_close(&c);
	tr_stop();
}
END_TEST

START_TEST(error_classes)
{
	tr_start();
	struct tr_cl c;
	tr_cl_open(&c);
	tr_cl_send(&c, "this is not json\n");
	cJSON *r = tr_cl_json(&c);
	ck_assert_int_eq(tr_err_code(r), -32700);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "id")));
	cJSON_Delete(r);
	tr_status_ok(&c);                                  /* still usable */
	tr_cl_send(&c, "{\"jsonrpc\":\"1.0\",\"id\":5,\"method\":\"daemon.status\"}\n");
	r = tr_cl_json(&c);
	ck_assert_int_eq(tr_err_code(r), -32600);
	cJSON_Delete(r);
	r = tr_rpc(&c, "no.such", NULL);
	ck_assert_int_eq(tr_err_code(r), -32601);
	cJSON_Delete(r);
	r = tr_rpc(&c, "proton.create", "{}");
	ck_assert_int_eq(tr_err_code(r), -32602);
	ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(r, "error"), "message")->valuestring, "label"));
	cJSON_Delete(r);
	r = tr_rpc(&c, "message.send", "{\"relationship\":\"" TR_REL "\",\"body\":\"x\",\"bdy\":1}");
	ck_assert_int_eq(tr_err_code(r), -32602);
	cJSON_Delete(r);
	/* batch and notifications, blank lines and CRLF */
	tr_cl_send(&c, "\n  \r\n{\"jsonrpc\":\"2.0\",\"method\":\"daemon.status\"}\r\n"
		    "[{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"daemon.status\"},1]\r\n");
	r = tr_cl_json(&c);
	ck_assert(cJSON_IsArray(r));
	ck_assert_int_eq(cJSON_GetArraySize(r), 2);
	cJSON_Delete(r);
	tr_status_ok(&c);
	tr_cl_close(&c);
	tr_stop();
}
END_TEST

START_TEST(subscribe_replay)
{
	tr_start();
	struct tr_cl live, sender, late, filt;
	tr_cl_open(&live);
	cJSON *r = tr_rpc(&live, "subscribe", NULL);
	ck_assert_double_eq(tr_res(r, "seq")->valuedouble, 0);
	ck_assert(cJSON_IsFalse(tr_res(r, "gap")));
	cJSON_Delete(r);
	tr_cl_open(&sender);
	for (int i = 1; i <= 3; i++)
		tr_send_msg(&sender, i, 10);
	for (uint64_t i = 1; i <= 3; i++) {
		const char *type;
		r = tr_cl_json(&live);
		ck_assert_uint_eq(tr_event_seq(r, &type), i);
		ck_assert_str_eq(type, "message.sent");
		cJSON_Delete(r);
	}
	/* a client that was away since seq 1 gets 2 and 3, then live ones */
	tr_cl_open(&late);
	r = tr_rpc(&late, "subscribe", "{\"since\":1}");
	ck_assert_double_eq(tr_res(r, "replay")->valuedouble, 2);
	ck_assert_double_eq(tr_res(r, "seq")->valuedouble, 3);
	cJSON_Delete(r);
	for (uint64_t i = 2; i <= 3; i++) {
		r = tr_cl_json(&late);
		ck_assert_uint_eq(tr_event_seq(r, NULL), i);
		cJSON_Delete(r);
	}
	/* a type filter: nothing from message.sent */
	tr_cl_open(&filt);
	r = tr_rpc(&filt, "subscribe", "{\"since\":0,\"events\":[\"message.received\"]}");
	ck_assert_ptr_nonnull(tr_res(r, "seq"));
	cJSON_Delete(r);
	tr_send_msg(&sender, 4, 10);
	r = tr_cl_json(&late);
	ck_assert_uint_eq(tr_event_seq(r, NULL), 4);
	cJSON_Delete(r);
	r = tr_rpc(&filt, "daemon.status", NULL);          /* reply comes, no event before it */
	ck_assert_ptr_nonnull(tr_res(r, "version"));
	ck_assert_double_eq(tr_res(r, "event_seq")->valuedouble, 4);
	cJSON_Delete(r);
	/* since in the future (numbering restarted): gap */
	r = tr_rpc(&filt, "subscribe", "{\"since\":1000}");
	ck_assert(cJSON_IsTrue(tr_res(r, "gap")));
	cJSON_Delete(r);
	tr_cl_close(&live);
	tr_cl_close(&sender);
	tr_cl_close(&late);
	tr_cl_close(&filt);
	tr_stop();
}
END_TEST

/* ---- other uids (root only) ---- */

/* In a child: become uid 65534 with gid `gid`, connect, call daemon.status.
 * Exit 0 if answered, 10 if refused with "permission", 20 connect failed,
 * 30 anything else. */
static int as_other_uid(gid_t gid)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(65534) < 0)
			_exit(40);
		struct tr_cl c;
		if (tr_cl_open_path(&c, TR.sock) < 0)
			_exit(20);
		const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\"}\n";
		tr_cl_write(&c, req, strlen(req));
		char *l = tr_cl_line(&c);
		if (!l)
			_exit(30);
		if (strstr(l, "\"result\""))
			_exit(0);
		if (strstr(l, "\"permission\""))
			_exit(10);
		_exit(30);
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(peer_uid)
{
	if (geteuid() != 0) {
		fprintf(stderr, "peer_uid: not root, skipped\n");
		return;
	}
	tr_start();
	char dir[128];
	snprintf(dir, sizeof dir, "%s/relm", TR.dir);
	/* open the file system doors so only SO_PEERCRED stands in the way */
	ck_assert_int_eq(chmod(TR.dir, 0711), 0);
	ck_assert_int_eq(chmod(dir, 0711), 0);
	ck_assert_int_eq(chmod(TR.sock, 0666), 0);
	ck_assert_int_eq(as_other_uid(65534), 10);
	/* the system unit's shape: 0660, group relm → members allowed */
	ck_assert_int_eq(chown(TR.sock, 0, 4242), 0);
	ck_assert_int_eq(chmod(TR.sock, 0660), 0);
	ck_assert_int_eq(as_other_uid(4242), 0);
	ck_assert_int_eq(as_other_uid(65534), 20);      /* not in the group: EACCES at connect */
	/* world-writable file, group 4242: a non-member is refused by the daemon */
	ck_assert_int_eq(chmod(TR.sock, 0666), 0);
	ck_assert_int_eq(as_other_uid(65534), 10);
	ck_assert_int_eq(as_other_uid(4242), 0);
	struct tr_cl c;                                    /* our own uid still fine */
	tr_cl_open(&c);
	tr_status_ok(&c);
	tr_cl_close(&c);
	tr_stop();
}
END_TEST

START_TEST(refuse_second_and_stale)
{
	tr_start();
	/* a second daemon on the same socket refuses to start */
	struct relmd_config cfg;
	relmd_config_default(&cfg);
	snprintf(cfg.socket_path, sizeof cfg.socket_path, "%s", TR.sock);
	static struct relmd d2;
	ck_assert_int_eq(relmd_init(&d2, &cfg, NULL), 0);
	ck_assert_int_lt(relmd_start(&d2), 0);
	relmd_stop(&d2, 1);
	ck_assert_int_eq(relmd_clear(&d2), 0);
	struct tr_cl c;
	tr_cl_open(&c);
	tr_status_ok(&c);
	tr_cl_close(&c);
	tr_stop();

	/* a stale socket file (nobody listening) is replaced */
	char dir[64], path[100];
	strcpy(dir, "/tmp/relmd-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/s.sock", dir);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(fd);                       /* file stays, nobody listens */
	snprintf(cfg.socket_path, sizeof cfg.socket_path, "%s", path);
	ck_assert_int_eq(relmd_init(&d2, &cfg, NULL), 0);
	ck_assert_int_eq(relmd_start(&d2), 0);
	relmd_stop(&d2, 0);
	ck_assert_int_eq(relmd_run(&d2), 0);
	ck_assert_int_eq(relmd_clear(&d2), 0);

	tr_rm_rf(dir);
}
END_TEST

/* ---- relmctl against this daemon ---- */

START_TEST(relmctl_cli)
{
	tr_start();
	char prog[256], out[65536];
	td_prog(prog, sizeof prog, "relmctl");
	if (access(prog, X_OK) < 0) {
		fprintf(stderr, "relmctl_cli: %s not built, skipped\n", prog);
		tr_stop();
		return;
	}
	char *a1[] = { prog, "--socket", TR.sock, "daemon.status", NULL };
	ck_assert_int_eq(td_run(a1, out, sizeof out, NULL, 0, TD_START_MS), 0);
	ck_assert_ptr_nonnull(strstr(out, "version"));
	char *a2[] = { prog, "--socket", TR.sock, "--json", "daemon.status", NULL };
	ck_assert_int_eq(td_run(a2, out, sizeof out, NULL, 0, TD_START_MS), 0);
	cJSON *j = cJSON_Parse(out);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "version")->valuestring, RELMD_VERSION);
	cJSON_Delete(j);
	char *a3[] = { prog, "--socket", TR.sock, "proton.create", NULL };   /* label missing */
	ck_assert_int_eq(td_run(a3, out, sizeof out, NULL, 0, TD_START_MS), 2);
	char *a4[] = { prog, "--socket", TR.sock, "proton.create", "--label", "work", NULL };
	ck_assert_int_eq(td_run(a4, out, sizeof out, NULL, 0, TD_START_MS), 1);                 /* not_implemented */
	char *a5[] = { prog, "--socket", "/nonexistent/relmd.sock", "daemon.status", NULL };
	ck_assert_int_eq(td_run(a5, out, sizeof out, NULL, 0, TD_START_MS), 3);
	char *a6[] = { prog, "--socket", TR.sock, "bogus.command", NULL };
	ck_assert_int_eq(td_run(a6, out, sizeof out, NULL, 0, TD_START_MS), 2);
	char *a7[] = { prog, "--socket", TR.sock, "--json", "message.send", TR_REL, "hello there", NULL };
	ck_assert_int_eq(td_run(a7, out, sizeof out, NULL, 0, TD_START_MS), 0);                 /* positional args */
	j = cJSON_Parse(out);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "status")->valuestring, "queued");
	cJSON_Delete(j);
	char *a8[] = { prog, "--help", NULL };
	ck_assert_int_eq(td_run(a8, out, sizeof out, NULL, 0, TD_START_MS), 0);
	for (unsigned i = 0; i < relmd_method_count; i++)
		ck_assert_msg(strstr(out, relmd_method_table[i].name), "help lacks %s",
			      relmd_method_table[i].name);
	char *a9[] = { prog, "message.send", "--help", NULL };
	ck_assert_int_eq(td_run(a9, out, sizeof out, NULL, 0, TD_START_MS), 0);
	ck_assert_ptr_nonnull(strstr(out, "--body"));
	/* a method's name as words: "device list" is device.list */
	char *a11[] = { prog, "device", "list", "--help", NULL };
	ck_assert_int_eq(td_run(a11, out, sizeof out, NULL, 0, TD_START_MS), 0);
	ck_assert_ptr_nonnull(strstr(out, "device.list"));
	char *a12[] = { prog, "device", "bogus", "--help", NULL };
	ck_assert_int_eq(td_run(a12, out, sizeof out, NULL, 0, TD_START_MS), 2);
	/* listen --since 0 replays the event from a7; it ends when relmd stops */
	char *a10[] = { prog, "--socket", TR.sock, "listen", "--since", "0", NULL };
	int fd;
	pid_t pid = td_spawn_piped(a10, &fd, NULL);
	char buf[4096];
	size_t len = 0;
	while (!memchr(buf, '\n', len) && len < sizeof buf - 1) {
		ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	ck_assert_ptr_nonnull(strstr(buf, "\"type\":\"message.sent\""));
	ck_assert_ptr_nonnull(strstr(buf, "\"seq\":1"));
	tr_stop();                                /* the stream ends: exit 0 */
	int st = td_stop(&pid, 0, 5000);
	close(fd);
	ck_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
END_TEST

/* ---- text: every byte relmd writes is valid UTF-8 JSON ---- */

/* The attack's own example: an id of invalid bytes gets -32700, id null —
 * not the bytes echoed; a good multi-byte id comes back exactly. */
START_TEST(bad_utf8_request)
{
	tr_start();
	struct tr_cl c;
	tr_cl_open(&c);
	tr_cl_send(&c, "{\"jsonrpc\":\"2.0\",\"id\":\"\xff\xfe\",\"method\":\"daemon.status\"}\n");
	cJSON *r = tr_cl_json_strict(&c);
	ck_assert_int_eq(tr_err_code(r), -32700);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "id")));
	cJSON_Delete(r);
	tr_cl_send(&c, "{\"jsonrpc\":\"2.0\",\"id\":\"r\xc3\xa9q\",\"method\":\"daemon.status\"}\n");
	r = tr_cl_json_strict(&c);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(r, "id")->valuestring, "r\xc3\xa9q");
	ck_assert_ptr_nonnull(tr_res(r, "version"));
	cJSON_Delete(r);
	tr_cl_close(&c);
	tr_stop();
}
END_TEST

/* An event whose line is not valid UTF-8 is not written to a subscriber
 * (it gets the next one, and its connection stays); the request that
 * caused it is answered. */
START_TEST(bad_utf8_event_withheld)
{
	tr_start();
	struct tr_cl sub, c;
	tr_cl_open(&sub);
	tr_cl_open(&c);
	cJSON *r = tr_rpc(&sub, "subscribe", NULL);
	uint64_t seq0 = (uint64_t)tr_res(r, "seq")->valuedouble;
	cJSON_Delete(r);
	r = tr_rpc(&c, "device.list", "{\"proton\":\"" TR_REL "\"}");   /* fake_bad_event */
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r, "result"));
	cJSON_Delete(r);
	r = tr_cl_json_strict(&sub);
	ck_assert_uint_eq(tr_event_seq(r, NULL), seq0 + 2);          /* seq0 + 1 withheld */
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "params"),
							  "body")->valuestring, "text");
	cJSON_Delete(r);
	r = tr_rpc(&sub, "daemon.status", NULL);                     /* still served */
	ck_assert_double_eq(tr_res(r, "event_seq")->valuedouble, (double)(seq0 + 2));
	cJSON_Delete(r);
	tr_cl_close(&sub);
	tr_cl_close(&c);
	tr_stop();
}
END_TEST

/* Randomised (RELM_SEED): damaged requests of every method over the
 * socket, each followed by a sentinel request; every line relmd writes
 * back, up to the sentinel's reply, is valid UTF-8 JSON. */
START_TEST(fuzz_socket_replies)
{
	static const char *const templates[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":\"r\xc3\xa9q\",\"method\":\"daemon.status\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"proton.create\",\"params\":{\"label\":\"w\xc3\xb6rk\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"proton.set_strategy\",\"params\":{\"proton\":\"" TR_REL "\",\"strategy\":\"leader\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"message.send\",\"params\":{\"relationship\":\"" TR_REL "\",\"body\":\"h\xc3\xa9llo\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"subscribe\",\"params\":{\"events\":[\"message.sent\"],\"since\":0}}",
		"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"invite.accept\",\"params\":[\"" TR_REL "\",\"relm:abc\",\"\xe2\x82\xac\"]}",
		"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message.list\",\"params\":{\"relationship\":\"" TR_REL "\",\"limit\":5}},{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"no.such\"}]",
	};
	tr_start();
	struct tr_cl c;
	tr_cl_open(&c);
	char buf[1024], sentinel[96];
	int lines = 0;
	for (int i = 0; i < 1500; i++) {
		const char *t = templates[tu_rand_below(sizeof templates / sizeof templates[0])];
		size_t len = strlen(t);
		memcpy(buf, t, len);
		len = tu_json_mutate(buf, len, sizeof buf - 1);
		buf[len++] = '\n';
		ck_assert_int_eq(tr_cl_write(&c, buf, len), 0);
		snprintf(sentinel, sizeof sentinel,
			 "{\"jsonrpc\":\"2.0\",\"id\":\"sentinel-%d\",\"method\":\"daemon.status\"}\n", i);
		tr_cl_send(&c, sentinel);
		for (;;) {
			char *l = tr_cl_line(&c);
			ck_assert_msg(l != NULL, "iteration %d (" TU_SEED_FMT "): no reply", i, TU_SEED_ARG);
			ck_assert_msg(tu_json_line_ok(l, strlen(l)), "iteration %d (" TU_SEED_FMT "): "
				      "request %.*s got a line that is not UTF-8 JSON: %.300s", i, TU_SEED_ARG,
				      (int)len - 1, buf, l);
			lines++;
			int done = strstr(l, "\"sentinel-") != NULL;
			free(l);
			if (done)
				break;
		}
	}
	ck_assert_int_gt(lines, 1500);
	tr_cl_close(&c);
	tr_stop();
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("relmd");
	TCase *tc = tcase_create("api");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, status_happy);
	tcase_add_test(tc, error_classes);
	tcase_add_test(tc, subscribe_replay);
	suite_add_tcase(s, tc);
	tc = tcase_create("text");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, bad_utf8_request);
	tcase_add_test(tc, bad_utf8_event_withheld);
	tcase_add_test(tc, fuzz_socket_replies);
	suite_add_tcase(s, tc);
	tc = tcase_create("socket");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, peer_uid);
	tcase_add_test(tc, refuse_second_and_stale);
	suite_add_tcase(s, tc);
	tc = tcase_create("relmctl");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, relmctl_cli);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	tu_seed_from_env();
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * check_programs.c — the programs as a user and systemd run them, from
 * $BUILD (default "build"): relmd's command line, configuration check,
 * sd_notify and socket activation, SIGTERM, its lock on the state folder;
 * relm-mailbox's command line.  Every child dies with the test
 * (util_daemon.h); every folder lives under the suite's base folder.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "wire/mailbox_proto.h"
#include "relmd/sdnotify.h"
#include "util_daemon.h"

/* $BUILD/relmd into prog (it must be built: make check builds it first),
 * a fresh folder into dir, and in it the socket path dir/sockname and the
 * state folder dir/state. */
static void relmd_paths(char prog[256], char dir[TD_PATH_MAX - 32], char sock[TD_PATH_MAX],
			const char *sockname, char state[TD_PATH_MAX])
{
	td_prog(prog, 256, "relmd");
	ck_assert_msg(access(prog, X_OK) == 0, "%s not built", prog);
	td_dir_new(dir, TD_PATH_MAX - 32);
	snprintf(sock, TD_PATH_MAX, "%.75s/%s", dir, sockname);
	snprintf(state, TD_PATH_MAX, "%.75s/state", dir);
}

/* Is the peer closed (EOF within 5 s, nothing else pending)? */
static int eof_within(int fd)
{
	char b[4096];
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	for (;;) {
		ssize_t r = recv(fd, b, sizeof b, 0);
		if (r == 0)
			return 1;
		if (r < 0)
			return errno == ECONNRESET;
	}
}

/* relm-mailbox --rate/--burst: out-of-range values exit 2 with nothing
 * started; good ones are what CHALLENGE advertises (and so what the server
 * enforces and the client paces by); without them the defaults. */
static void mailbox_challenge(char *prog, char *rate, char *burst,
                              uint32_t want_rate, uint32_t want_burst)
{
	char dir[TD_PATH_MAX];
	td_dir_new(dir, sizeof dir);
	char state[128];
	snprintf(state, sizeof state, "%s/state", dir);
	char *argv[12] = { prog, "--listen", "127.0.0.1:0", "--state", state };
	int n = 5;
	if (rate) {
		argv[n++] = "--rate";
		argv[n++] = rate;
	}
	if (burst) {
		argv[n++] = "--burst";
		argv[n++] = burst;
	}
	argv[n] = NULL;
	int out;
	pid_t pid = td_spawn_piped(argv, &out, NULL);
	char line[32];
	size_t len = 0;
	while (len < sizeof line - 1 && !memchr(line, '\n', len)) {
		ssize_t r = read(out, line + len, sizeof line - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	line[len] = '\0';
	close(out);
	int port = atoi(line);
	ck_assert_msg(port > 0 && port < 65536, "relm-mailbox printed no port: \"%s\"", line);

	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sa.sin_addr.s_addr = htonl(0x7f000001);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	struct relm_mbox_frame f;
	memset(&f, 0, sizeof f);
	f.version = RELM_MBOX_VERSION;
	f.type = RELM_MBOX_HELLO;
	f.u.hello.min_version = RELM_MBOX_VERSION;
	f.u.hello.max_version = RELM_MBOX_VERSION;
	uint8_t buf[512];
	size_t fl = relm_mbox_frame_size(&f);
	ck_assert_int_eq(relm_mbox_frame_encode(buf, sizeof buf, &f), (int)fl);
	ck_assert_int_eq(write(fd, buf, fl), (ssize_t)fl);
	len = 0;
	size_t want = 0;
	while (!want || len < want) {
		struct pollfd pf = { fd, POLLIN, 0 };
		ck_assert_int_eq(poll(&pf, 1, 5000), 1);
		ssize_t r = read(fd, buf + len, sizeof buf - len);
		ck_assert_int_gt(r, 0);
		len += (size_t)r;
		if (!want && relm_mbox_frame_peek(&want, buf, len) != 0)
			want = 0;
	}
	ck_assert_int_eq(relm_mbox_frame_decode(&f, buf, want), 0);
	ck_assert_int_eq(f.type, RELM_MBOX_CHALLENGE);
	ck_assert_uint_eq(f.u.challenge.rate, want_rate);
	ck_assert_uint_eq(f.u.challenge.burst, want_burst);
	close(fd);
	int st = td_stop(&pid, SIGTERM, 5000);
	ck_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

START_TEST(mailbox_cli_rate)
{
	char prog[256], out[4096];
	td_prog(prog, sizeof prog, "relm-mailbox");
	ck_assert_msg(access(prog, X_OK) == 0, "%s not built", prog);
	static char bad[][24] = { "0", "-1", "1000001", "12x", "", "99999999999999999999" };
	for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++) {
		char *a[] = { prog, "--state", "/nonexistent/never-created", "--rate", bad[i], NULL };
		ck_assert_int_eq(td_run(a, out, sizeof out, NULL, 0, TD_START_MS), 2);
		char *b[] = { prog, "--state", "/nonexistent/never-created", "--burst", bad[i], NULL };
		ck_assert_int_eq(td_run(b, out, sizeof out, NULL, 0, TD_START_MS), 2);
	}
	ck_assert_int_eq(access("/nonexistent/never-created", F_OK), -1);
	char *h[] = { prog, "--help", NULL };
	ck_assert_int_eq(td_run(h, out, sizeof out, NULL, 0, TD_START_MS), 0);
	ck_assert_ptr_nonnull(strstr(out, "--rate N"));
	ck_assert_ptr_nonnull(strstr(out, "--burst N"));
	char r5[] = "5", b7[] = "7", rmax[] = "1000000";
	mailbox_challenge(prog, r5, b7, 5, 7);
	mailbox_challenge(prog, rmax, NULL, 1000000, RELM_MBOX_BURST);
	mailbox_challenge(prog, NULL, NULL, RELM_MBOX_RATE, RELM_MBOX_BURST);
}
END_TEST

START_TEST(sigterm_exit)
{
	char prog[256], dir[TD_PATH_MAX - 32], sock[TD_PATH_MAX], state[TD_PATH_MAX];
	relmd_paths(prog, dir, sock, "run/relmd.sock", state);
	char out[4096];
	char *chk[] = { prog, "--socket", sock, "--state", state, "-n", NULL };
	ck_assert_int_eq(td_run(chk, out, sizeof out, NULL, 0, TD_START_MS), 0);
	ck_assert_ptr_nonnull(strstr(out, "configuration ok"));
	char *badaddr[] = { prog, "--socket", sock, "--mailbox", "nohost", "-n", NULL };
	ck_assert_int_eq(td_run(badaddr, out, sizeof out, NULL, 0, TD_START_MS), 2);
	/* uv_pipe_bind would truncate a long path silently: relmd refuses it */
	char longsock[320];
	snprintf(longsock, sizeof longsock, "%s/%0200d.sock", dir, 0);
	char *toolong[] = { prog, "--socket", longsock, "-n", NULL };
	ck_assert_int_eq(td_run(toolong, out, sizeof out, NULL, 0, TD_START_MS), 1);

	/* sd_notify: a datagram socket standing in for systemd */
	char nsock[TD_PATH_MAX];
	snprintf(nsock, sizeof nsock, "%s/notify", dir);
	int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un nsa = { .sun_family = AF_UNIX };
	snprintf(nsa.sun_path, sizeof nsa.sun_path, "%s", nsock);
	ck_assert_int_eq(bind(nfd, (struct sockaddr *)&nsa, sizeof nsa), 0);
	struct timeval tv = { 5, 0 };
	setsockopt(nfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

	setenv("NOTIFY_SOCKET", nsock, 1);
	char *run[] = { prog, "--socket", sock, "--state", state, "--serve-mailbox", "127.0.0.1:1", NULL };
	int out_fd;
	pid_t pid = td_spawn_piped(run, &out_fd, NULL);
	unsetenv("NOTIFY_SOCKET");
	char note[64] = { 0 };
	ck_assert_int_gt(recv(nfd, note, sizeof note - 1, 0), 0);
	ck_assert_str_eq(note, "READY=1");
	struct td_conn c;
	ck_assert_int_eq(td_conn_open(&c, sock), 0);    /* READY=1: it listens */
	cJSON *r = td_conn_call(&c, "daemon.status", NULL, NULL);
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(td_res(r), "version"));
	cJSON_Delete(r);
	struct stat st;
	ck_assert_int_eq(stat(state, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	/* connected client stays open over SIGTERM until relmd closes it */
	kill(pid, SIGTERM);
	ck_assert(eof_within(c.fd));
	td_conn_close(&c);
	memset(note, 0, sizeof note);
	ck_assert_int_gt(recv(nfd, note, sizeof note - 1, 0), 0);
	ck_assert_str_eq(note, "STOPPING=1");
	close(nfd);
	int ws = td_stop(&pid, 0, 5000);
	close(out_fd);
	ck_assert(ws >= 0 && WIFEXITED(ws));
	ck_assert_int_eq(WEXITSTATUS(ws), 0);
	ck_assert_int_ne(stat(sock, &st), 0);           /* socket removed */
}
END_TEST

/* systemd socket activation: fd 3 + LISTEN_FDS/LISTEN_PID; relmd serves it
 * and leaves the socket file (systemd's) in place at exit. */
START_TEST(socket_activation)
{
	char prog[256], dir[TD_PATH_MAX - 32], sock[TD_PATH_MAX], state[TD_PATH_MAX];
	relmd_paths(prog, dir, sock, "sd.sock", state);
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(lfd, 16), 0);
	pid_t pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		if (!getenv("RELM_TEST_DEBUG"))
			dup2(devnull, 2);
		if (lfd != 3) {
			dup2(lfd, 3);
			close(lfd);
		}
		char p[32];
		snprintf(p, sizeof p, "%d", (int)getpid());
		setenv("LISTEN_PID", p, 1);
		setenv("LISTEN_FDS", "1", 1);
		unsetenv("NOTIFY_SOCKET");
		/* --socket names another path: the passed socket wins */
		execl(prog, prog, "--state", state, "--socket", "/nonexistent/x.sock", (char *)NULL);
		_exit(127);
	}
	close(lfd);
	cJSON *r = td_call(sock, "daemon.status", NULL);  /* backlog holds it until relmd accepts */
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(td_str(td_res(r), "socket"), sock);
	cJSON_Delete(r);
	kill(pid, SIGTERM);
	int ws;
	waitpid(pid, &ws, 0);
	ck_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	struct stat st;
	ck_assert_int_eq(stat(sock, &st), 0);            /* systemd's file: left alone */
}
END_TEST

START_TEST(sd_notify_abstract)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char name[64];
	int n = snprintf(name, sizeof name, "relmd-test-%d", (int)getpid());
	memcpy(sa.sun_path + 1, name, (size_t)n);       /* abstract: leading NUL */
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)), 0);
	char env[80];
	snprintf(env, sizeof env, "@%s", name);
	setenv("NOTIFY_SOCKET", env, 1);
	ck_assert_int_eq(relmd_sd_notify("READY=1"), 0);
	char buf[32] = { 0 };
	ck_assert_int_eq(recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT), 7);
	ck_assert_str_eq(buf, "READY=1");
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	ck_assert_int_lt(relmd_sd_notify("READY=1"), 0);
	unsetenv("NOTIFY_SOCKET");
	ck_assert_int_eq(relmd_sd_notify("READY=1"), 0);   /* not under systemd: no-op */
	close(fd);
}
END_TEST


/* One relmd per state folder.  A second relmd on the same folder but
 * another socket (the socket's own lock cannot see it) exits 1 before it
 * opens the store, naming the folder and the first one's pid; the first
 * goes on serving.  The lock goes with its holder however it ends — a
 * clean stop or kill -9 — so the folder is usable again at once. */
START_TEST(state_folder_locked)
{
	char dir[TD_PATH_MAX - 32], prog[256], sock2[TD_PATH_MAX], out[4096], err[4096], want[128];
	struct td_relmd a, b;
	td_prog(prog, sizeof prog, "relmd");
	td_dir_new(dir, sizeof dir);
	/* mailbox: a port nobody serves (relmd retries; it needs none here) */
	ck_assert_int_eq(td_relmd_start(&a, dir, "a", 9), 0);
	snprintf(sock2, sizeof sock2, "%s/second.sock", dir);
	char *second[] = { prog, "--state", a.state, "--socket", sock2, "--mailbox", "127.0.0.1:9", NULL };
	int rc = td_run(second, out, sizeof out, err, sizeof err, TD_START_MS);
	ck_assert_msg(rc == 1, "a second relmd on %s: exit %d (-1: still running), stderr: %s", a.state,
		      rc, err);
	ck_assert_msg(strstr(err, a.state) != NULL, "the message does not name the folder: %s", err);
	snprintf(want, sizeof want, "pid %d", (int)a.pid);
	ck_assert_msg(strstr(err, want) != NULL, "the message does not name pid %d: %s", (int)a.pid, err);
	struct stat st;
	ck_assert_int_ne(stat(sock2, &st), 0);                  /* it never listened */
	cJSON *r = td_must(a.sock, "proton.create", "{\"label\":\"still mine\"}");   /* a serves on */
	cJSON_Delete(r);
	r = td_must(a.sock, "daemon.status", NULL);
	ck_assert_int_eq((int)cJSON_GetObjectItemCaseSensitive(td_res(r), "pid")->valuedouble, (int)a.pid);
	cJSON_Delete(r);

	/* a clean stop frees the folder: the next one starts, with the store */
	int ws = td_stop(&a.pid, SIGTERM, 5000);
	ck_assert(ws >= 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	b = a;
	snprintf(b.sock, sizeof b.sock, "%s", sock2);
	ck_assert_int_eq(td_relmd_restart(&b), 0);
	r = td_must(b.sock, "proton.list", NULL);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(td_res(r), "protons")), 1);
	cJSON_Delete(r);
	/* kill -9 leaves the lock file, not the lock */
	ck_assert_int_ne(td_stop(&b.pid, SIGKILL, 5000), -1);
	ck_assert_int_eq(stat(b.state, &st), 0);
	ck_assert_int_eq(td_relmd_restart(&a), 0);
	r = td_must(a.sock, "proton.list", NULL);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(td_res(r), "protons")), 1);
	cJSON_Delete(r);
}
END_TEST

/* issue 13 item 5: relmd creates a store only where no file exists.  A
 * store truncated to 0 bytes, or a database of another program at the
 * store's path, is not taken for a fresh start: relmd exits 1 with a
 * message that names the file and says how to start afresh, and leaves
 * the file as it was.  Moved away, a new store is made. */
START_TEST(empty_store_refused)
{
	char dir[TD_PATH_MAX - 32], prog[256], sock[TD_PATH_MAX], state[TD_PATH_MAX], db[TD_PATH_MAX + 16];
	char out[4096], err[4096];
	struct stat st;
	int fd, rc;

	relmd_paths(prog, dir, sock, "r.sock", state);
	ck_assert_int_eq(mkdir(state, 0700), 0);
	snprintf(db, sizeof db, "%s/relm.db", state);
	for (int round = 0; round < 2; round++) {
		fd = open(db, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		ck_assert_int_ge(fd, 0);
		close(fd);
		if (round == 1) {    /* another program's database */
			sqlite3 *h;
			ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
			ck_assert_int_eq(sqlite3_exec(h, "CREATE TABLE notes(t)", NULL, NULL, NULL), SQLITE_OK);
			sqlite3_close(h);
		}
		size_t size0 = stat(db, &st) == 0 ? (size_t)st.st_size : 0;
		char *argv[] = { prog, "--state", state, "--socket", sock, "--mailbox", "127.0.0.1:9", NULL };
		rc = td_run(argv, out, sizeof out, err, sizeof err, TD_START_MS);
		ck_assert_msg(rc == 1, "relmd on a %s store: exit %d (-1: still running), stderr: %s",
			      round ? "foreign" : "0-byte", rc, err);
		ck_assert_msg(strstr(err, db) != NULL, "the message does not name the file: %s", err);
		ck_assert_msg(strstr(err, "move it away") != NULL, "no way to start afresh: %s", err);
		ck_assert_int_eq(stat(db, &st), 0);
		ck_assert_uint_eq((size_t)st.st_size, size0);     /* untouched */
		ck_assert_int_ne(stat(sock, &st), 0);             /* it never served */
	}
	ck_assert_int_eq(unlink(db), 0);
	struct td_relmd d;
	ck_assert_int_eq(td_relmd_start(&d, dir, "fresh", 9), 0);
	cJSON *r = td_must(d.sock, "proton.list", NULL);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(td_res(r), "protons")), 0);
	cJSON_Delete(r);
}
END_TEST

static void base_setup(void) { td_base_new("programs"); }
static void base_teardown(void) { td_base_free(); }
static void teardown(void) { td_kill_all(); }

static Suite *suite(void)
{
	Suite *s = suite_create("programs");
	TCase *tc = tcase_create("relmd");
	tcase_set_timeout(tc, 30);
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, sigterm_exit);
	tcase_add_test(tc, socket_activation);
	tcase_add_test(tc, sd_notify_abstract);
	tcase_add_test(tc, state_folder_locked);
	tcase_add_test(tc, empty_store_refused);
	suite_add_tcase(s, tc);
	tc = tcase_create("relm_mailbox");
	tcase_set_timeout(tc, 30);
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, mailbox_cli_rate);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

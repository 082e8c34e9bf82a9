/*
 * util_daemon.c — child processes and a JSON-RPC client for the
 * integration suites (see util_daemon.h).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util_daemon.h"

enum {
	TD_KIDS_MAX = 32,
	TD_CALL_MS  = 15000,   /* one request answers within 15 s (a turn fsyncs) */
};

static char base[200];
static pid_t kids[TD_KIDS_MAX];

/* ---- time ---- */

long long td_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void td_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int td_wait(int (*pred)(void *arg), void *arg, int timeout_ms)
{
	long long end = td_now_ms() + timeout_ms;
	int v;
	while (!(v = pred(arg)) && td_now_ms() < end)
		td_sleep_ms(50);
	return v;
}

/* ---- folders ---- */

void td_base_new(const char *tag)
{
	const char *t = getenv("TMPDIR");
	/* short: sockets live below it and sun_path has 108 bytes */
	if (!t || !*t || strlen(t) > 40)
		t = "/tmp";
	snprintf(base, sizeof base, "%s/relmt-%s-XXXXXX", t, tag);
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		base[0] = 0;
	}
}

void td_base_free(void)
{
	char cmd[256];
	if (!base[0] || getenv("RELM_TEST_KEEP"))
		return;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", base);
	base[0] = 0;
}

void td_dir_new(char *out, size_t cap)
{
	ck_assert_msg(base[0], "no base folder (td_base_new in an unchecked fixture)");
	ck_assert_int_lt((int)strlen(base) + 8, (int)cap);
	/* someone's `rm -rf /tmp/relm*` while we run must not fail a test */
	if (mkdir(base, 0700) != 0 && errno != EEXIST)
		ck_abort_msg("%s: %s", base, strerror(errno));
	snprintf(out, cap, "%s/XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(out));
	ck_assert_int_lt((int)strlen(out), TD_PATH_MAX - 32);
}

void td_prog(char *out, size_t cap, const char *prog)
{
	const char *b = getenv("BUILD");
	snprintf(out, cap, "%s/%s", b && *b ? b : "build", prog);
}

/* ---- processes ---- */

static void kid_add(pid_t pid)
{
	for (int i = 0; i < TD_KIDS_MAX; i++)
		if (!kids[i]) {
			kids[i] = pid;
			return;
		}
	kill(pid, SIGKILL);
	ck_abort_msg("too many children");
}

static void kid_del(pid_t pid)
{
	for (int i = 0; i < TD_KIDS_MAX; i++)
		if (kids[i] == pid)
			kids[i] = 0;
}

static pid_t spawn(const char *prog, char *const argv[], const char *out_path,
                   const char *log_path);

pid_t td_spawn(const char *prog, char *const argv[], const char *out_path, const char *log_path)
{
	return spawn(prog, argv, out_path, log_path);
}

/* fork + exec $BUILD/prog argv, stdout to out_path (or /dev/null), stderr to
 * log_path (appended: a restart keeps the earlier log). */
static pid_t spawn(const char *prog, char *const argv[], const char *out_path,
                   const char *log_path)
{
	char path[512];
	pid_t parent = getpid(), pid;

	td_prog(path, sizeof path, prog);
	if (access(path, X_OK) != 0) {
		fprintf(stderr, "%s: not built (BUILD=%s)\n", path, getenv("BUILD"));
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int o, e;
		prctl(PR_SET_PDEATHSIG, SIGKILL);   /* the test dies → so do we */
		if (getppid() != parent)
			_exit(127);
		o = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
		e = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (o < 0 || e < 0)
			_exit(127);
		dup2(o, 1);
		dup2(e, 2);
		close(o);
		close(e);
		signal(SIGPIPE, SIG_DFL);
		execv(path, argv);
		_exit(127);
	}
	kid_add(pid);
	return pid;
}

pid_t td_spawn_piped(char *const argv[], int *out_fd, int *err_fd)
{
	int po[2], pe[2] = { -1, -1 };
	pid_t parent = getpid(), pid;

	ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
	if (err_fd)
		ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(po[1], 1);
		if (err_fd) {
			dup2(pe[1], 2);
		} else if (!getenv("RELM_TEST_DEBUG")) {
			int devnull = open("/dev/null", O_WRONLY);
			dup2(devnull, 2);
		}
		signal(SIGPIPE, SIG_DFL);
		execv(argv[0], argv);
		_exit(127);
	}
	kid_add(pid);
	close(po[1]);
	*out_fd = po[0];
	if (err_fd) {
		close(pe[1]);
		*err_fd = pe[0];
	}
	return pid;
}

int td_run(char *const argv[], char *out, size_t outn, char *err, size_t errn, int timeout_ms)
{
	struct { int fd; char *buf; size_t cap, len; } p[2];
	char sink[512];
	long long end = td_now_ms() + timeout_ms;
	int st, status = -1;

	p[1].fd = -1;
	pid_t pid = td_spawn_piped(argv, &p[0].fd, err ? &p[1].fd : NULL);
	p[0].buf = out; p[0].cap = out ? outn : 0; p[0].len = 0;
	p[1].buf = err; p[1].cap = err ? errn : 0; p[1].len = 0;
	/* both pipes at once: a child filling one while we wait on the other
	 * would never finish */
	while ((p[0].fd >= 0 || p[1].fd >= 0) && td_now_ms() < end) {
		struct pollfd pf[2] = { { p[0].fd, POLLIN, 0 }, { p[1].fd, POLLIN, 0 } };
		if (poll(pf, 2, (int)(end - td_now_ms())) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !pf[i].revents)
				continue;
			int room = p[i].cap > p[i].len + 1;
			ssize_t r = read(p[i].fd, room ? p[i].buf + p[i].len : sink,
					 room ? p[i].cap - p[i].len - 1 : sizeof sink);
			if (r <= 0) {
				close(p[i].fd);
				p[i].fd = -1;
			} else if (room) {
				p[i].len += (size_t)r;
			}
		}
	}
	for (int i = 0; i < 2; i++) {
		if (p[i].fd >= 0)
			close(p[i].fd);
		if (p[i].buf && p[i].cap)
			p[i].buf[p[i].len] = '\0';
	}
	while (td_now_ms() < end) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid) {
			kid_del(pid);
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		td_sleep_ms(10);
	}
	td_stop(&pid, SIGKILL, 1000);
	return status;
}

int td_alive(pid_t pid)
{
	int st;
	if (pid <= 0)
		return 0;
	pid_t w = waitpid(pid, &st, WNOHANG);
	if (w == 0)
		return 1;
	if (w == pid)
		kid_del(pid);
	return 0;
}

int td_stop(pid_t *pid, int sig, int timeout_ms)
{
	int st = -1;
	long long end = td_now_ms() + timeout_ms;
	if (*pid <= 0)
		return -1;
	kill(*pid, sig);
	for (;;) {
		pid_t w = waitpid(*pid, &st, WNOHANG);
		if (w == *pid)
			break;
		if (w < 0) {
			st = -1;
			break;
		}
		if (td_now_ms() >= end) {
			kill(*pid, SIGKILL);
			waitpid(*pid, NULL, 0);
			st = -1;
			break;
		}
		td_sleep_ms(10);
	}
	kid_del(*pid);
	*pid = 0;
	return st;
}

void td_kill_all(void)
{
	/* Under `make valgrind` (RELM_VALGRIND=1) the programs get SIGTERM first
	 * (SIGKILL after 20 s): memcheck checks for leaks only in a process
	 * that exits, and a SIGKILLed relmd never would. */
	const char *vg = getenv("RELM_VALGRIND");
	int graceful = vg && *vg && strcmp(vg, "0") != 0;

	for (int i = 0; i < TD_KIDS_MAX; i++)
		if (kids[i] > 0) {
			if (graceful) {
				pid_t p = kids[i];
				td_stop(&p, SIGTERM, 20000);    /* clears kids[i] */
				continue;
			}
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
			kids[i] = 0;
		}
}

static int tcp_answers(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return 0;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return ok;
}

static int mbox_exec(struct td_mbox *m)
{
	char listen[64], out[300];
	char *argv[] = { "relm-mailbox", "--listen", listen, "--state", m->state, NULL };
	long long end;

	snprintf(listen, sizeof listen, "127.0.0.1:%d", m->port);
	snprintf(out, sizeof out, "%s.port", m->state);
	unlink(out);
	if ((m->pid = spawn("relm-mailbox", argv, out, m->log)) < 0)
		return -1;
	end = td_now_ms() + TD_START_MS;
	while (td_now_ms() < end) {
		if (!td_alive(m->pid)) {
			fprintf(stderr, "relm-mailbox exited at start (log %s)\n", m->log);
			m->pid = 0;
			return -1;
		}
		if (m->port == 0) {
			FILE *f = fopen(out, "r");
			int p = 0;
			if (f) {
				char line[32] = "";
				if (fgets(line, sizeof line, f) && strchr(line, '\n'))
					p = atoi(line);
				fclose(f);
			}
			if (p > 0 && p < 65536)
				m->port = p;
		}
		if (m->port && tcp_answers(m->port))
			return 0;
		td_sleep_ms(20);
	}
	fprintf(stderr, "relm-mailbox did not answer within %d ms\n", TD_START_MS);
	td_stop(&m->pid, SIGKILL, 1000);
	return -1;
}

int td_mbox_start(struct td_mbox *m, const char *dir, const char *name, int port)
{
	memset(m, 0, sizeof *m);
	m->port = port;
	snprintf(m->state, sizeof m->state, "%s/%s", dir, name);
	snprintf(m->log, sizeof m->log, "%s/%s.log", dir, name);
	return mbox_exec(m);
}

int td_mbox_restart(struct td_mbox *m)
{
	if (m->pid)
		td_stop(&m->pid, SIGKILL, 1000);
	return mbox_exec(m);
}

static int relmd_exec(struct td_relmd *d)
{
	char *argv[16] = { "relmd", "--state", d->state, "--socket", d->sock, "--mailbox", d->mailbox,
			   "--log-level", "info" };
	int n = 9;
	if (d->heal_delay[0]) {
		argv[n++] = "--heal-delay";
		argv[n++] = d->heal_delay;
	}
	if (d->clone_window[0]) {
		argv[n++] = "--clone-window";
		argv[n++] = d->clone_window;
	}
	if (d->lease_ttl[0]) {
		argv[n++] = "--lease-ttl";
		argv[n++] = d->lease_ttl;
	}
	argv[n] = NULL;
	long long end;

	if ((d->pid = spawn("relmd", argv, NULL, d->log)) < 0)
		return -1;
	end = td_now_ms() + TD_START_MS;
	while (td_now_ms() < end) {
		cJSON *r;
		if (!td_alive(d->pid)) {
			fprintf(stderr, "relmd %s exited at start (log %s)\n", d->name, d->log);
			d->pid = 0;
			return -1;
		}
		if ((r = td_call(d->sock, "daemon.status", NULL)) != NULL) {
			int ok = td_res(r) != NULL &&
				 cJSON_GetObjectItemCaseSensitive(td_res(r), "pid") &&
				 cJSON_GetObjectItemCaseSensitive(td_res(r), "pid")->valuedouble == d->pid;
			cJSON_Delete(r);
			if (ok)
				return 0;
		}
		td_sleep_ms(20);
	}
	fprintf(stderr, "relmd %s did not answer within %d ms\n", d->name, TD_START_MS);
	td_stop(&d->pid, SIGKILL, 1000);
	return -1;
}

int td_relmd_start(struct td_relmd *d, const char *dir, const char *name, int port)
{
	return td_relmd_start_heal(d, dir, name, port, "");
}

int td_relmd_start_heal(struct td_relmd *d, const char *dir, const char *name, int port,
                        const char *heal_delay)
{
	memset(d, 0, sizeof *d);
	snprintf(d->heal_delay, sizeof d->heal_delay, "%s", heal_delay);
	snprintf(d->name, sizeof d->name, "%s", name);
	snprintf(d->state, sizeof d->state, "%s/%s", dir, name);
	snprintf(d->sock, sizeof d->sock, "%s/%s.sock", dir, name);
	snprintf(d->log, sizeof d->log, "%s/%s.log", dir, name);
	snprintf(d->mailbox, sizeof d->mailbox, "127.0.0.1:%d", port);
	return relmd_exec(d);
}

int td_relmd_restart(struct td_relmd *d)
{
	if (d->pid)
		td_stop(&d->pid, SIGKILL, 1000);
	return relmd_exec(d);
}

/* ---- the client ---- */

int td_conn_open(struct td_conn *c, const char *sock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memset(c, 0, sizeof *c);
	c->fd = -1;
	if (strlen(sock) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		int e = -errno;
		close(c->fd);
		c->fd = -1;
		return e;
	}
	return 0;
}

void td_conn_close(struct td_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	memset(c, 0, sizeof *c);
	c->fd = -1;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int td_conn_send(struct td_conn *c, const char *line)
{
	int rc = send_all(c->fd, line, strlen(line));
	return rc ? rc : send_all(c->fd, "\n", 1);
}

char *td_conn_read_line(struct td_conn *c, int timeout_ms)
{
	long long end = td_now_ms() + timeout_ms;
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			char *line = malloc(n + 1);
			if (!line)
				return NULL;
			memcpy(line, c->buf, n);
			line[n] = '\0';
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			return line;
		}
		if (c->cap - c->len < 65536) {
			size_t cap = c->cap ? c->cap * 2 : 131072;
			char *b = realloc(c->buf, cap);
			if (!b)
				return NULL;
			c->buf = b;
			c->cap = cap;
		}
		long long left = end - td_now_ms();
		if (left <= 0)
			return NULL;
		struct pollfd p = { c->fd, POLLIN, 0 };
		int pr = poll(&p, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			return NULL;
		ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return NULL;
		c->len += (size_t)r;
	}
}

cJSON *td_conn_read(struct td_conn *c, int timeout_ms)
{
	char *line = td_conn_read_line(c, timeout_ms);
	cJSON *j;
	if (!line)
		return NULL;
	j = cJSON_Parse(line);
	if (!j)
		fprintf(stderr, "td_conn_read: a line that is not JSON\n");
	free(line);
	return j;
}

cJSON *td_conn_call(struct td_conn *c, const char *method, const char *params_json,
                    cJSON *events)
{
	char *line;
	size_t n = strlen(method) + (params_json ? strlen(params_json) : 0) + 100;
	int id = ++c->next_id;
	long long end = td_now_ms() + TD_CALL_MS;

	if (!(line = malloc(n)))
		return NULL;
	if (params_json)
		snprintf(line, n, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"%s\",\"params\":%s}", id,
			 method, params_json);
	else
		snprintf(line, n, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"%s\"}", id, method);
	if (td_conn_send(c, line) != 0) {
		free(line);
		return NULL;
	}
	free(line);
	for (;;) {
		long long left = end - td_now_ms();
		cJSON *j = left > 0 ? td_conn_read(c, (int)left) : NULL;
		const cJSON *jid;
		if (!j)
			return NULL;
		jid = cJSON_GetObjectItemCaseSensitive(j, "id");
		if (cJSON_IsNumber(jid) && jid->valuedouble == id)
			return j;
		if (events && cJSON_GetObjectItemCaseSensitive(j, "method"))
			cJSON_AddItemToArray(events, j);
		else
			cJSON_Delete(j);
	}
}

cJSON *td_call(const char *sock, const char *method, const char *params_json)
{
	struct td_conn c;
	cJSON *r;
	if (td_conn_open(&c, sock) != 0)
		return NULL;
	r = td_conn_call(&c, method, params_json, NULL);
	td_conn_close(&c);
	return r;
}

static cJSON *vcallf(const char *sock, const char *method, const char *fmt, va_list ap)
{
	char *p = NULL;
	cJSON *r;
	if (fmt && vasprintf(&p, fmt, ap) < 0)
		return NULL;
	r = td_call(sock, method, p);
	free(p);
	return r;
}

cJSON *td_callf(const char *sock, const char *method, const char *fmt, ...)
{
	va_list ap;
	cJSON *r;
	va_start(ap, fmt);
	r = vcallf(sock, method, fmt, ap);
	va_end(ap);
	return r;
}

cJSON *td_must(const char *sock, const char *method, const char *fmt, ...)
{
	va_list ap;
	cJSON *r;
	va_start(ap, fmt);
	r = vcallf(sock, method, fmt, ap);
	va_end(ap);
	ck_assert_msg(r != NULL, "%s: no reply from %s", method, sock);
	if (!td_res(r)) {
		char *s = cJSON_PrintUnformatted(r);
		ck_abort_msg("%s: error reply %s", method, s ? s : "?");
	}
	return r;
}

const cJSON *td_res(const cJSON *reply)
{
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(reply, "result");
	return cJSON_IsObject(r) ? r : NULL;
}

const char *td_err_name(const cJSON *reply)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(e, "data");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(d, "code");
	return cJSON_IsString(c) ? c->valuestring : "";
}

int td_err_code(const cJSON *reply)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(reply, "error");
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
	return cJSON_IsNumber(c) ? (int)c->valuedouble : 0;
}

const char *td_str(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	return cJSON_IsString(v) ? v->valuestring : "";
}

/* ---- two related daemons ---- */

void td_copy_id(char out[33], const char *s)
{
	ck_assert_int_eq((int)strlen(s), 32);
	memcpy(out, s, 33);
}

struct relate_wait {
	const char *sock, *proton, *rel;
};

static int has_rel(void *arg)
{
	struct relate_wait *w = arg;
	cJSON *r = td_callf(w->sock, "relationship.list", "{\"proton\":\"%s\"}", w->proton);
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(td_res(r), "relationships");
	int ok = cJSON_GetArraySize(l) == 1 &&
		 !strcmp(td_str(cJSON_GetArrayItem(l, 0), "relationship"), w->rel);
	cJSON_Delete(r);
	return ok;
}

void td_relate(const char *a_sock, const char *b_sock, char pa[33], char pb[33], char rel[33],
               int timeout_ms)
{
	struct relate_wait w = { a_sock, pa, rel };
	cJSON *r;
	char *inv;

	r = td_must(a_sock, "proton.create", "{\"label\":\"alice\"}");
	td_copy_id(pa, td_str(td_res(r), "proton"));
	cJSON_Delete(r);
	r = td_must(b_sock, "proton.create", "{\"label\":\"bob\"}");
	td_copy_id(pb, td_str(td_res(r), "proton"));
	cJSON_Delete(r);
	r = td_must(a_sock, "invite.create", "{\"proton\":\"%s\"}", pa);
	inv = strdup(td_str(td_res(r), "invite"));
	cJSON_Delete(r);
	ck_assert_int_eq(strncmp(inv, "relm:", 5), 0);
	r = td_must(b_sock, "invite.accept", "{\"proton\":\"%s\",\"invite\":\"%s\",\"label\":\"alice\"}",
		    pb, inv);
	free(inv);
	td_copy_id(rel, td_str(td_res(r), "relationship"));
	cJSON_Delete(r);
	ck_assert_msg(td_wait(has_rel, &w, timeout_ms), "alice never saw bob's acceptance");
}

void td_pair(const char *from_sock, const char *to_sock, const char *proton, const char *label,
             int timeout_ms)
{
	cJSON *r = td_must(from_sock, "device.pair.begin", "{\"proton\":\"%s\"}", proton);
	char *code = strdup(td_str(td_res(r), "code"));
	long long until = td_now_ms() + timeout_ms;

	cJSON_Delete(r);
	ck_assert_int_eq(strncmp(code, "relm-pair:", 10), 0);
	for (;;) {
		r = td_callf(to_sock, "device.pair.join", "{\"code\":\"%s\",\"label\":\"%s\"}", code, label);
		ck_assert_ptr_nonnull(r);
		if (strcmp(td_err_name(r), "pending") != 0)
			break;
		cJSON_Delete(r);
		ck_assert_msg(td_now_ms() < until, "device.pair.join still pending");
		td_sleep_ms(100);
	}
	ck_assert_msg(td_res(r) != NULL, "device.pair.join: %s", td_err_name(r));
	ck_assert_str_eq(td_str(td_res(r), "proton"), proton);
	cJSON_Delete(r);
	free(code);
}

/* ---- a device's view of a conversation ---- */

void td_history(const struct td_relmd *d, const char *rel, struct td_seen *s)
{
	cJSON *r = td_must(d->sock, "message.list", "{\"relationship\":\"%s\",\"limit\":1000}", rel);
	const cJSON *m;

	memset(s, 0, sizeof *s);
	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(td_res(r), "messages")) {
		if (strcmp(td_str(m, "kind"), "text") != 0)
			continue;
		const char *body = td_str(m, "body");
		for (int i = 0; i < s->count; i++)
			s->dup += !strcmp(s->bodies[i], body);
		ck_assert_int_lt(s->count, 64);
		snprintf(s->bodies[s->count], sizeof s->bodies[0], "%s", body);
		snprintf(s->origin[s->count], sizeof s->origin[0], "%s", td_str(m, "origin"));
		s->count++;
	}
	cJSON_Delete(r);
}

const char *td_origin_of(const struct td_seen *s, const char *body)
{
	for (int i = 0; i < s->count; i++)
		if (!strcmp(s->bodies[i], body))
			return s->origin[i];
	return NULL;
}

int td_has_count(void *arg)
{
	struct td_want *w = arg;
	struct td_seen s;

	td_history(w->d, w->rel, &s);
	return s.count >= w->count;
}

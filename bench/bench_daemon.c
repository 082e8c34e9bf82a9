/*
 * bench_daemon.c — the daemon end to end (README.md, Performance): a relm-mailbox and two
 * relmd on loopback, as a user runs them, durable (synchronous=FULL).
 *
 *   daemon.e2e.msgs_per_s   bob pipelines N message.send requests; time until
 *                           alice's subscriber has seen N message.received
 *   daemon.e2e.p50_ms/p99_ms  at a paced 1,000 messages/s (or --rate): from
 *                           writing message.send on bob to the event on alice
 *
 *   daemon.e2e.max_turn_ms  the longest loop turn of either relmd during the
 *                           paced run, as each measures its own (daemon.status
 *                           loop, reset when the run starts); also
 *                           .sender/.receiver, and daemon.e2e.slow_turns
 *                           (turns over 5 ms, both together), and
 *                           .max_turn_commit_ms.sender/.receiver: how much
 *                           of that longest turn was its end (the commit,
 *                           publishing its events, posting its envelopes);
 *                           .max_turn_cpu_ms.sender/.receiver: the most CPU
 *                           time one turn took (wall time also counts other
 *                           programs running on a busy machine)
 *
 *   daemon.e2e.cpu_us_per_msg.{sender,mailbox,receiver}  CPU time each
 *                           process spent per message during saturation
 *                           (/proc/PID/schedstat), median over rounds;
 *                           daemon.e2e.cpu_us_per_msg: the three together
 *                           (issue 19's goal: at most 60 µs)
 *
 * Saturation runs K rounds of N messages (median, min–max); each round
 * waits for the previous one's receipts, so no round starts with a backlog.
 *
 * --devices D: the sending proton (bob) on D daemons, paired
 * (device.pair.begin / device.pair.join, proto/devices.md §12) once the
 * relationship exists; the first sends, every device receives the
 * receipts and its siblings' copies, so "sender" is then the CPU of all
 * D daemons together (also daemon.e2e.cpu_us_per_msg.sender_first, the
 * one that sends).  The keys get the prefix daemon.devD. instead of
 * daemon.e2e. and the paced run is left out.
 *
 * Usage: bench_daemon [--build DIR] [--n N] [--rounds K] [--rate R] [--seconds S]
 *                     [--devices D] [--quick] [--json PATH] [--trace PATH]
 *                     [--warmup W] [--callgrind ROLE PATH]
 *
 *   --trace PATH            the paced run's messages, one line each: ms from
 *                           the start of the run when sent, latency in ms
 *   --seconds 0             no paced run (saturation only; no JSON written)
 *   --warmup W              first W messages in rounds of N, not measured (the
 *                           stores in the state of a daemon that has run:
 *                           the event log at its retention, history rows)
 *   --callgrind ROLE PATH   run one process (ROLE: sender, mailbox,
 *                           receiver, or sibling: the sending proton's
 *                           second device, with --devices 2 or more, waited
 *                           for until its history holds every message
 *                           delivered) under valgrind --tool=callgrind,
 *                           writing its profile to PATH when it exits
 *                           (bench/profile_daemon.sh); every wait is then
 *                           twenty times as patient
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>

static char build[256] = "build";
static char tmp[256];
enum { MAX_DEV = 4 };
static pid_t kids[3 + MAX_DEV];
static int nkids;
/* --callgrind: which spawn (0 mailbox, 1 receiver, 2 sender, 3 the sending
 * proton's second device with --devices 2 or more) runs under
 * valgrind, and where its profile goes; `patience` scales every wait */
static int cg_role = -1;
static const char *cg_out;
static int patience = 1;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void cleanup(void)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0) {
			kill(kids[i], SIGTERM);
			waitpid(kids[i], NULL, 0);
		}
	nkids = 0;
	if (tmp[0]) {
		char cmd[400];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmp);
		tmp[0] = 0;
	}
}

static void die(const char *msg)
{
	fprintf(stderr, "bench_daemon: %s\n", msg);
	cleanup();
	exit(1);
}

static pid_t spawn(char *const argv[], int out_fd)
{
	pid_t p = fork();
	if (p < 0)
		die("fork");
	if (p == 0) {
		if (out_fd >= 0)
			dup2(out_fd, 1);
		int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0)
			dup2(devnull, 2);
		if (nkids == cg_role) {
			/* valgrind, its options, then the program's own argv */
			char opt[600], *av[40];
			int k = 0;
			snprintf(opt, sizeof opt, "--callgrind-out-file=%s", cg_out);
			av[k++] = "valgrind";
			av[k++] = "--tool=callgrind";
			av[k++] = opt;
			for (int i = 0; argv[i] && k < 39; i++)
				av[k++] = argv[i];
			av[k] = NULL;
			execvp(av[0], av);
			_exit(127);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	kids[nkids++] = p;
	return p;
}

struct conn {
	int fd;
	char *buf;
	size_t len, cap;
};

static int conn_open(struct conn *c, const char *path)
{
	struct sockaddr_un a;
	memset(c, 0, sizeof *c);
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
	c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
		if (c->fd >= 0)
			close(c->fd);
		return -1;
	}
	c->cap = 1 << 16;
	c->buf = malloc(c->cap);
	return 0;
}

static void conn_send(struct conn *c, const char *line)
{
	size_t n = strlen(line), off = 0;
	while (off < n) {
		ssize_t w = write(c->fd, line + off, n - off);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("write to relmd");
		}
		off += (size_t)w;
	}
}

/* Next complete line (malloc'd), reading if needed; blocking. */
static char *conn_line(struct conn *c)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			char *l = malloc(n + 1);
			memcpy(l, c->buf, n);
			l[n] = 0;
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			return l;
		}
		if (c->len == c->cap) {
			c->cap *= 2;
			c->buf = realloc(c->buf, c->cap);
		}
		ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (r <= 0)
			die("relmd closed the connection");
		c->len += (size_t)r;
	}
}

static int conn_has_line(struct conn *c)
{
	return memchr(c->buf, '\n', c->len) != NULL;
}

static void conn_fill(struct conn *c)
{
	if (c->len == c->cap) {
		c->cap *= 2;
		c->buf = realloc(c->buf, c->cap);
	}
	ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
	if (r <= 0)
		die("relmd closed the connection");
	c->len += (size_t)r;
}

static cJSON *rpc(struct conn *c, const char *method, const char *params)
{
	static int id;
	char line[8192];
	snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"%s\",\"params\":%s}\n",
	         ++id, method, params);
	conn_send(c, line);
	for (;;) {
		char *l = conn_line(c);
		cJSON *j = cJSON_Parse(l);
		free(l);
		if (j && cJSON_GetObjectItem(j, "id")) {
			cJSON *err = cJSON_GetObjectItem(j, "error");
			if (err) {
				char *s = cJSON_PrintUnformatted(err);
				fprintf(stderr, "%s: %s\n", method, s);
				die("rpc error");
			}
			return j;
		}
		cJSON_Delete(j);
	}
}

static const char *res_str(cJSON *j, const char *k)
{
	cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static int wait_socket(const char *path, struct conn *c)
{
	for (int i = 0; i < 200 * patience; i++) {
		if (conn_open(c, path) == 0)
			return 0;
		usleep(20000);
	}
	return -1;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* CPU time a process has run, in µs: /proc/PID/schedstat's first field is
 * nanoseconds on a CPU (exact, unlike the 10 ms ticks of /proc/PID/stat). */
static double cpu_us(pid_t pid)
{
	char path[64];
	unsigned long long ns = 0;
	FILE *f;
	snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
	if (!(f = fopen(path, "r")))
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns / 1e3;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Read bob's message.status events, counting deliveries. */
static void drain_status(struct conn *evb, int *delivered)
{
	conn_fill(evb);
	while (conn_has_line(evb)) {
		char *l = conn_line(evb);
		*delivered += strstr(l, "\"status\":\"delivered\"") != NULL;
		free(l);
	}
}

/* Read (and drop) everything from the three connections until bob has seen
 * `target` messages delivered (message.status "delivered": the receipt came
 * back), so a phase starts with no backlog of receipts or retransmissions.
 * Dies after 60 s without reaching it. */
static void wait_delivered(struct conn *b, struct conn *ev, struct conn *evb, int *delivered,
                           int target)
{
	double until = now_ms() + 60000.0 * patience;
	while (*delivered < target) {
		struct pollfd pf[3] = { { b->fd, POLLIN, 0 }, { ev->fd, POLLIN, 0 }, { evb->fd, POLLIN, 0 } };
		if (now_ms() > until)
			die("receipts did not all come back within 60 s");
		if (poll(pf, 3, 100) <= 0)
			continue;
		for (int i = 0; i < 3; i++) {
			struct conn *c = i == 0 ? b : i == 1 ? ev : evb;
			if (!(pf[i].revents & POLLIN))
				continue;
			if (c == evb) {
				drain_status(evb, delivered);
				continue;
			}
			conn_fill(c);
			while (conn_has_line(c))
				free(conn_line(c));
		}
	}
}

/* --devices D > 1: saturation only, keys daemon.devD.* */
static int report_devices(const char *json, int devices, int rounds, int n, double msgs_per_s,
                          double rate_min, double rate_max, const double cpu[4])
{
	printf("relm daemon end to end, the sending proton on %d paired devices: relm-mailbox + %d relmd\n",
	       devices, devices + 1);
	printf("saturation: %d rounds of %d messages pipelined: median %.0f messages/s (min %.0f, max %.0f)\n",
	       rounds, n, msgs_per_s, rate_min, rate_max);
	printf("CPU per message (median): sending proton %.0f µs (its sending device %.0f µs), "
	       "relm-mailbox %.0f µs, receiver relmd %.0f µs\n", cpu[0], cpu[3], cpu[1], cpu[2]);
	if (json) {
		FILE *f = fopen(json, "w");
		if (!f)
			die("cannot write the json file");
		fprintf(f, "{\n  \"daemon.dev%d.msgs_per_s\": %.1f,\n"
		        "  \"daemon.dev%d.cpu_us_per_msg.sender\": %.1f,\n"
		        "  \"daemon.dev%d.cpu_us_per_msg.sender_first\": %.1f,\n"
		        "  \"daemon.dev%d.cpu_us_per_msg.mailbox\": %.1f,\n"
		        "  \"daemon.dev%d.cpu_us_per_msg.receiver\": %.1f\n}\n",
		        devices, msgs_per_s, devices, cpu[0], devices, cpu[3], devices, cpu[1], devices, cpu[2]);
		fclose(f);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int n = 3000, rate = 1000, seconds = 5, rounds = 3, devices = 1, warmup = 0;
	const char *json = NULL, *trace = NULL;
	char port[16] = "", path_a[300], path_b[300], mbox[300], sa[300], sb[300], mb_addr[64];
	struct conn a, b, ev, evb;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--build") && i + 1 < argc)
			snprintf(build, sizeof build, "%s", argv[++i]);
		else if (!strcmp(argv[i], "--n") && i + 1 < argc)
			n = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rate") && i + 1 < argc)
			rate = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
			warmup = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--devices") && i + 1 < argc)
			devices = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--json") && i + 1 < argc)
			json = argv[++i];
		else if (!strcmp(argv[i], "--trace") && i + 1 < argc)
			trace = argv[++i];
		else if (!strcmp(argv[i], "--callgrind") && i + 2 < argc) {
			static const char *const roles[] = { "mailbox", "receiver", "sender", "sibling" };
			for (int k = 0; k < 4; k++)
				if (!strcmp(argv[i + 1], roles[k]))
					cg_role = k;
			if (cg_role < 0) {
				fprintf(stderr, "bench_daemon: --callgrind sender|mailbox|receiver|sibling PATH\n");
				return 2;
			}
			cg_out = argv[i + 2];
			patience = 20;
			i += 2;
		}
		else if (!strcmp(argv[i], "--quick")) {
			n = 200;
			seconds = 1;
			rounds = 1;
		} else {
			fprintf(stderr, "usage: bench_daemon [--build DIR] [--n N] [--rounds K] [--rate R] "
			        "[--seconds S] [--devices D] [--quick] [--json PATH] [--trace PATH]\n");
			return 2;
		}
	}
	if (devices < 1 || devices > MAX_DEV) {
		fprintf(stderr, "bench_daemon: --devices is 1 to %d\n", MAX_DEV);
		return 2;
	}
	if (cg_role == 3 && devices < 2) {
		fprintf(stderr, "bench_daemon: --callgrind sibling needs --devices 2 or more\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(tmp, sizeof tmp, "/tmp/relm-bench-XXXXXX");
	if (!mkdtemp(tmp))
		die("mkdtemp");
	atexit(cleanup);

	/* the mailbox on a free port */
	{
		int fd[2];
		char prog[600], st[300];
		if (pipe(fd) != 0)
			die("pipe");
		snprintf(prog, sizeof prog, "%s/relm-mailbox", build);
		snprintf(st, sizeof st, "%s/mbox", tmp);
		char *av[] = { prog, "--listen", "127.0.0.1:0", "--state", st, NULL };
		spawn(av, fd[1]);
		close(fd[1]);
		ssize_t r = read(fd[0], port, sizeof port - 1);
		if (r <= 0)
			die("relm-mailbox did not start");
		port[r] = 0;
		port[strcspn(port, "\r\n")] = 0;
		snprintf(mb_addr, sizeof mb_addr, "127.0.0.1:%s", port);
	}
	snprintf(path_a, sizeof path_a, "%s/alice", tmp);
	snprintf(path_b, sizeof path_b, "%s/bob", tmp);
	snprintf(sa, sizeof sa, "%s/alice.sock", tmp);
	snprintf(sb, sizeof sb, "%s/bob.sock", tmp);
	snprintf(mbox, sizeof mbox, "%s/relmd", build);
	{
		char *av1[] = { mbox, "--state", path_a, "--socket", sa, "--mailbox", mb_addr,
		                "--log-level", "err", NULL };
		char *av2[] = { mbox, "--state", path_b, "--socket", sb, "--mailbox", mb_addr,
		                "--log-level", "err", NULL };
		spawn(av1, -1);
		spawn(av2, -1);
	}
	if (wait_socket(sa, &a) || wait_socket(sb, &b) || conn_open(&ev, sa) || conn_open(&evb, sb))
		die("relmd did not start");

	/* protons, invite, relationship */
	cJSON *r = rpc(&a, "proton.create", "{\"label\":\"alice\"}");
	char pa[64], pb[64], rel[64], params[8192];
	snprintf(pa, sizeof pa, "%s", res_str(r, "proton"));
	cJSON_Delete(r);
	r = rpc(&b, "proton.create", "{\"label\":\"bob\"}");
	snprintf(pb, sizeof pb, "%s", res_str(r, "proton"));
	cJSON_Delete(r);
	/* subscribe before the invite is accepted, or relationship.created can
	 * come and go before we listen; bob's delivery ticks tell when a
	 * round's receipts are all back */
	r = rpc(&ev, "subscribe", "{\"events\":[\"message.received\",\"relationship.created\"]}");
	cJSON_Delete(r);
	r = rpc(&evb, "subscribe", "{\"events\":[\"message.status\"]}");
	cJSON_Delete(r);
	snprintf(params, sizeof params, "{\"proton\":\"%s\"}", pa);
	r = rpc(&a, "invite.create", params);
	snprintf(params, sizeof params, "{\"proton\":\"%s\",\"invite\":\"%s\"}", pb, res_str(r, "invite"));
	cJSON_Delete(r);
	r = rpc(&b, "invite.accept", params);
	snprintf(rel, sizeof rel, "%s", res_str(r, "relationship"));
	cJSON_Delete(r);
	/* wait for alice to have the relationship (the hello arrives) */
	for (;;) {
		char *l = conn_line(&ev);
		int got = strstr(l, "relationship.created") != NULL;
		free(l);
		if (got)
			break;
	}

	/* ---- bob's other devices: paired now, each until it holds the relationship ---- */
	pid_t bob_dev[MAX_DEV];
	bob_dev[0] = kids[2];
	for (int d = 1; d < devices; d++) {
		char pd[300], sd[300], code[1024];
		struct conn c;
		snprintf(pd, sizeof pd, "%s/bob%d", tmp, d + 1);
		snprintf(sd, sizeof sd, "%s/bob%d.sock", tmp, d + 1);
		char *av[] = { mbox, "--state", pd, "--socket", sd, "--mailbox", mb_addr, "--log-level", "err", NULL };
		bob_dev[d] = spawn(av, -1);
		if (wait_socket(sd, &c))
			die("relmd (another device of bob) did not start");
		snprintf(params, sizeof params, "{\"proton\":\"%s\"}", pb);
		r = rpc(&b, "device.pair.begin", params);
		snprintf(code, sizeof code, "%s", res_str(r, "code"));
		cJSON_Delete(r);
		/* device.pair.join answers `pending` until the WELCOME is read:
		 * the same call again resumes */
		for (int tries = 0;; tries++) {
			char line[2048];
			snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"device.pair.join\","
			         "\"params\":{\"code\":\"%s\",\"label\":\"bench %d\"}}\n", code, d + 1);
			conn_send(&c, line);
			char *l = conn_line(&c);
			int ok = strstr(l, "\"result\"") != NULL, pending = strstr(l, "\"pending\"") != NULL;
			if (!ok && !pending)
				fprintf(stderr, "device.pair.join: %s\n", l);
			free(l);
			if (ok)
				break;
			if (!pending || tries > 3000)
				die("a device could not join bob's proton");
			usleep(10000);
		}
		/* the bulk state brings the relationship */
		for (int tries = 0;; tries++) {
			char line[512];
			snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"relationship.show\","
			         "\"params\":{\"relationship\":\"%s\"}}\n", rel);
			conn_send(&c, line);
			char *l = conn_line(&c);
			int ok = strstr(l, "\"result\"") != NULL;
			free(l);
			if (ok)
				break;
			if (tries > 3000)
				die("a paired device never got the relationship");
			usleep(10000);
		}
		close(c.fd);
		free(c.buf);
	}

	/* ---- saturation: pipelined sends, until every event arrived ---- */
	if (n < 1 || rounds < 1 || rounds > 32)
		die("--n and --rounds must be positive (rounds at most 32)");
	double rate_r[32], cpu_r[4][32];
	int delivered = 0;
	/* bob sends (all his devices; the first alone), the mailbox, alice receives */
	pid_t who[3] = { kids[2], kids[0], kids[1] };
	/* rounds < 0: --warmup, in rounds of n, not measured */
	int wrounds = warmup > 0 ? (warmup + n - 1) / n : 0, target = 0;
	for (int round = -wrounds; round < rounds; round++) {
		double c0[4], t0 = now_ms();
		int sent = 0, received = 0;
		int nr = round >= 0 ? n : warmup - (round + wrounds) * n < n ? warmup - (round + wrounds) * n : n;
		for (int k = 0; k < 3; k++)
			c0[k] = cpu_us(who[k]);
		c0[3] = 0;
		for (int d = 1; d < devices; d++)
			c0[3] += cpu_us(bob_dev[d]);
		while (received < nr) {
			struct pollfd pf[3] = { { b.fd, POLLIN | (sent < nr ? POLLOUT : 0), 0 }, { ev.fd, POLLIN, 0 },
			                        { evb.fd, POLLIN, 0 } };
			if (poll(pf, 3, 10000 * patience) <= 0)
				die("no progress for 10 s (times the patience of --callgrind)");
			if ((pf[0].revents & POLLOUT) && sent < nr) {
				for (int k = 0; k < 64 && sent < nr; k++, sent++) {
					snprintf(params, sizeof params,
					         "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"message.send\",\"params\":"
					         "{\"relationship\":\"%s\",\"body\":\"saturation message %06d ..........."
					         "...................................................\"}}\n",
					         100000 + sent, rel, sent);
					conn_send(&b, params);
				}
			}
			if (pf[0].revents & POLLIN) {
				conn_fill(&b);
				while (conn_has_line(&b)) {
					char *l = conn_line(&b);
					if (strstr(l, "\"error\"")) {
						fprintf(stderr, "%s\n", l);
						die("message.send failed");
					}
					free(l);
				}
			}
			if (pf[1].revents & POLLIN) {
				conn_fill(&ev);
				while (conn_has_line(&ev)) {
					char *l = conn_line(&ev);
					received += strstr(l, "message.received") != NULL;
					free(l);
				}
			}
			if (pf[2].revents & POLLIN)
				drain_status(&evb, &delivered);
		}
		target += nr;
		if (round < 0) {
			wait_delivered(&b, &ev, &evb, &delivered, target);
			continue;
		}
		double ms = now_ms() - t0;
		rate_r[round] = n * 1000.0 / ms;
		for (int k = 0; k < 3; k++)
			cpu_r[k][round] = (cpu_us(who[k]) - c0[k]) / n;
		double others = 0;
		for (int d = 1; d < devices; d++)
			others += cpu_us(bob_dev[d]);
		cpu_r[3][round] = cpu_r[0][round];                 /* the first device alone */
		cpu_r[0][round] += (others - c0[3]) / n;           /* the whole proton */
		/* the next round (and the paced run) starts with bob's queue empty */
		wait_delivered(&b, &ev, &evb, &delivered, target);
	}
	double rate_min = rate_r[0], rate_max = rate_r[0];
	for (int round = 1; round < rounds; round++) {
		rate_min = rate_r[round] < rate_min ? rate_r[round] : rate_min;
		rate_max = rate_r[round] > rate_max ? rate_r[round] : rate_max;
	}
	double msgs_per_s = median(rate_r, rounds);
	double cpu_med[4];
	for (int k = 0; k < 4; k++)
		cpu_med[k] = median(cpu_r[k], rounds);
	if (devices > 1 && cg_role == 3) {
		/* the sibling under callgrind lags: its profile counts only what
		 * it did, so wait until its history holds the last message
		 * delivered (its siblings' copy and the remote's receipt read) */
		char sd[300], want[64];
		struct conn c;
		snprintf(sd, sizeof sd, "%s/bob2.sock", tmp);
		snprintf(want, sizeof want, "saturation message %06d", n - 1);
		snprintf(params, sizeof params, "{\"relationship\":\"%s\",\"limit\":1}", rel);
		if (conn_open(&c, sd))
			die("cannot reach the sibling under callgrind");
		for (int tries = 0;; tries++) {
			cJSON *j = rpc(&c, "message.list", params);
			cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "messages"), 0);
			cJSON *body = cJSON_GetObjectItem(m, "body"), *status = cJSON_GetObjectItem(m, "status");
			int done = cJSON_IsString(body) && strstr(body->valuestring, want) && cJSON_IsString(status) &&
			           !strcmp(status->valuestring, "delivered");
			cJSON_Delete(j);
			if (done)
				break;
			if (tries > 600 * patience)
				die("the sibling under callgrind never caught up");
			usleep(100000);
		}
		close(c.fd);
		free(c.buf);
	}
	if (devices > 1)
		return report_devices(json, devices, rounds, n, msgs_per_s, rate_min, rate_max, cpu_med);
	if (seconds <= 0) {
		printf("saturation: %d rounds of %d messages pipelined: median %.0f messages/s "
		       "(min %.0f, max %.0f)\n", rounds, n, msgs_per_s, rate_min, rate_max);
		return 0;
	}

	/* ---- latency at a paced rate ---- */
	int total = rate * seconds, next = 0, got = 0;
	double turn_max[2], turn_commit[2], turn_cpu[2], slow_turns = 0;
	struct conn st_conn[2];
	if (conn_open(&st_conn[0], sb) || conn_open(&st_conn[1], sa))
		die("cannot reach relmd for daemon.status");
	for (int k = 0; k < 2; k++)
		cJSON_Delete(rpc(&st_conn[k], "daemon.status", "{\"reset_loop\":true}"));
	double *sent_at = calloc((size_t)total, sizeof *sent_at), *lat = calloc((size_t)total, sizeof *lat);
	double start = now_ms();
	while (got < total) {
		double t = now_ms();
		while (next < total && start + next * 1000.0 / rate <= t) {
			snprintf(params, sizeof params,
			         "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"message.send\",\"params\":"
			         "{\"relationship\":\"%s\",\"id\":\"%032x\",\"body\":\"paced %06d\"}}\n",
			         200000 + next, rel, next + 1, next);
			sent_at[next] = now_ms();
			conn_send(&b, params);
			next++;
		}
		double wait = next < total ? start + next * 1000.0 / rate - now_ms() : 1000;
		struct pollfd pf[3] = { { b.fd, POLLIN, 0 }, { ev.fd, POLLIN, 0 }, { evb.fd, POLLIN, 0 } };
		if (poll(pf, 3, wait < 0 ? 0 : (int)wait + 1) < 0)
			die("poll");
		if (pf[2].revents & POLLIN)
			drain_status(&evb, &delivered);
		if (pf[0].revents & POLLIN) {
			conn_fill(&b);
			while (conn_has_line(&b))
				free(conn_line(&b));
		}
		if (pf[1].revents & POLLIN) {
			conn_fill(&ev);
			while (conn_has_line(&ev)) {
				char *l = conn_line(&ev);
				char *m = strstr(l, "\"message\":\"");
				if (m && strstr(l, "message.received")) {
					unsigned long k = strtoul(m + 11, NULL, 16);
					if (k >= 1 && k <= (unsigned long)total && lat[k - 1] == 0) {
						lat[k - 1] = now_ms() - sent_at[k - 1];
						got++;
					}
				}
				free(l);
			}
		}
		if (now_ms() - start > seconds * 1000.0 + 30000)
			die("paced run did not finish within 30 s of its end");
	}
	for (int k = 0; k < 2; k++) {
		cJSON *j = rpc(&st_conn[k], "daemon.status", "{}");
		cJSON *lp = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "loop");
		cJSON *mx = cJSON_GetObjectItem(lp, "max_turn_ms"), *sl = cJSON_GetObjectItem(lp, "slow_turns");
		cJSON *mc = cJSON_GetObjectItem(lp, "max_turn_commit_ms"), *mu = cJSON_GetObjectItem(lp, "max_turn_cpu_ms");
		if (!cJSON_IsNumber(mx) || !cJSON_IsNumber(sl) || !cJSON_IsNumber(mc) || !cJSON_IsNumber(mu))
			die("daemon.status has no loop.max_turn_ms");
		turn_cpu[k] = mu->valuedouble;
		turn_max[k] = mx->valuedouble;
		turn_commit[k] = mc->valuedouble;
		slow_turns += sl->valuedouble;
		cJSON_Delete(j);
		close(st_conn[k].fd);
		free(st_conn[k].buf);
	}
	if (trace) {
		FILE *f = fopen(trace, "w");
		if (!f)
			die("cannot write the trace file");
		for (int k = 0; k < total; k++)
			fprintf(f, "%.3f %.3f\n", sent_at[k] - start, lat[k]);
		fclose(f);
	}
	qsort(lat, (size_t)total, sizeof *lat, cmp_d);
	double p50 = lat[total / 2], p99 = lat[(size_t)(total * 0.99)], pmax = lat[total - 1];

	printf("relm daemon end to end: relm-mailbox + 2 relmd on loopback, durable (synchronous=FULL)\n");
	printf("saturation: %d rounds of %d messages pipelined: median %.0f messages/s (min %.0f, max %.0f)\n",
	       rounds, n, msgs_per_s, rate_min, rate_max);
	const double cpu_all = cpu_med[0] + cpu_med[1] + cpu_med[2];
	printf("CPU per message (median): sender relmd %.0f µs, relm-mailbox %.0f µs, receiver relmd %.0f µs: "
	       "%.0f µs in all\n", cpu_med[0], cpu_med[1], cpu_med[2], cpu_all);
	printf("paced %d messages/s for %d s: p50 %.2f ms  p99 %.2f ms  max %.2f ms\n",
	       rate, seconds, p50, p99, pmax);
	printf("longest loop turn meanwhile: sender relmd %.2f ms (its end: commit, publish, post %.2f ms), "
	       "receiver relmd %.2f ms (%.2f ms) (%.0f turns over 5 ms)\n",
	       turn_max[0], turn_commit[0], turn_max[1], turn_commit[1], slow_turns);
	printf("most CPU in one loop turn: sender relmd %.2f ms, receiver relmd %.2f ms\n", turn_cpu[0], turn_cpu[1]);
	if (json) {
		FILE *f = fopen(json, "w");
		if (!f)
			die("cannot write the json file");
		/* one key per line: bench/json_merge.sh reads it so */
		fprintf(f, "{\n  \"daemon.e2e.msgs_per_s\": %.1f,\n  \"daemon.e2e.msgs_per_s.min\": %.1f,\n"
		        "  \"daemon.e2e.msgs_per_s.max\": %.1f,\n"
		        "  \"daemon.e2e.cpu_us_per_msg\": %.1f,\n"
		        "  \"daemon.e2e.cpu_us_per_msg.sender\": %.1f,\n"
		        "  \"daemon.e2e.cpu_us_per_msg.mailbox\": %.1f,\n"
		        "  \"daemon.e2e.cpu_us_per_msg.receiver\": %.1f,\n"
		        "  \"daemon.e2e.p50_ms\": %.3f,\n"
		        "  \"daemon.e2e.p99_ms\": %.3f,\n  \"daemon.e2e.max_ms\": %.3f,\n"
		        "  \"daemon.e2e.max_turn_ms\": %.3f,\n"
		        "  \"daemon.e2e.max_turn_ms.sender\": %.3f,\n"
		        "  \"daemon.e2e.max_turn_ms.receiver\": %.3f,\n"
		        "  \"daemon.e2e.max_turn_commit_ms.sender\": %.3f,\n"
		        "  \"daemon.e2e.max_turn_commit_ms.receiver\": %.3f,\n"
		        "  \"daemon.e2e.max_turn_cpu_ms.sender\": %.3f,\n"
		        "  \"daemon.e2e.max_turn_cpu_ms.receiver\": %.3f,\n"
		        "  \"daemon.e2e.slow_turns\": %.0f,\n"
		        "  \"daemon.e2e.rate\": %d\n}\n",
		        msgs_per_s, rate_min, rate_max, cpu_all, cpu_med[0], cpu_med[1], cpu_med[2], p50, p99, pmax,
		        turn_max[0] > turn_max[1] ? turn_max[0] : turn_max[1], turn_max[0], turn_max[1],
		        turn_commit[0], turn_commit[1], turn_cpu[0], turn_cpu[1], slow_turns, rate);
		fclose(f);
	}
	free(sent_at);
	free(lat);
	return 0;
}

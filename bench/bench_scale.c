/*
 * bench_scale.c — relmd's store at scale (README.md, Performance, "Scale"): a store with
 * 100,000 relationships (--n; `make bench-1m`: 1,000,000) against one with 10.
 *
 *   startup   what relmd does with its store before it can handle a
 *             message: relm_store_open (default PRAGMA quick_check), then
 *             relm_core_new, relm_core_mailboxes (every mailbox it must
 *             subscribe to, collected into an array as relmd must keep
 *             them) and relm_store_next_deadline (to arm its timer).
 *             Median of several close/reopen runs, warm (file in the page
 *             cache) and cold (sync + drop_caches before each run, when we
 *             may write /proc/sys/vm/drop_caches).  Signing one
 *             subscription per mailbox (relm_core_mailbox_sign) is timed
 *             apart: the mailbox client can spread it over time.
 *   rss       a fresh process (this program exec'd again, so the build and
 *             the other measurements do not pollute it) opens the B store,
 *             does the start-up above, keeps the mailbox array, handles
 *             envelopes the parent made on 20 random relationships, sends
 *             on 20 more, runs the timers, and reports VmRSS and VmHWM.
 *   msg       per message: relm_core_message_send on A on a random
 *             existing relationship + relm_core_envelope of that envelope
 *             on B (both durable, one transaction each, synchronous=FULL
 *             as the store sets it).  "full" adds what a daemon does per
 *             message around it: reading the outbox row, marking it posted,
 *             B's receipt (the timer, its envelope to A, A's handling and
 *             A's outbox marks) — so every trial leaves the relationship
 *             quiescent, as it found it, and nothing accumulates in the
 *             10-relationship store that would not in the big one.  The
 *             two stores are measured interleaved, in rounds; every trial
 *             checks that B's history holds the message.
 *   bytes     the big A store's pages per relationship, and where they go
 *             (SQLite's dbstat: each table and index), printed.  In use
 *             (the file less its free pages, which SQLite reuses before
 *             it grows the file) is scale.<n>.bytes_per_rel; of it, the
 *             history (messages and its indexes: the relationship's three
 *             messages, which a person keeps) is .bytes_per_rel_history,
 *             the rest — what the relationship itself costs — is
 *             .bytes_per_rel_state; the free pages .bytes_per_rel_free.
 *             `--only build` prints it too.
 *
 * The stores (two daemons A and B, each with one proton, N relationships
 * between them) are cached in DIR/<N>/ and rebuilt when missing or when
 * the schema version or the build recipe changed (DIR/<N>/stamp); how
 * they are built, for real or as templates and clones, is in
 * scale_build.c, the two daemons and the mailbox network between them in
 * scale_pair.c.
 *
 * This file links librelm, libsodium, sqlite3 and libcjson; nothing in lib/
 * knows about it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include <sqlite3.h>
#include "wire/addr.h"
#include "core/core.h"
#include "engine/env.h"
#include "error.h"
#include "store/store.h"
#include "scale_pair.h"
#include "scale_build.h"

enum {
	RSS_MSGS       = 20,        /* messages handled by the RSS child, each way */
};

/* ---- small helpers ------------------------------------------------------- */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU time of this process (user + system): the per-message cost without
 * the wait for fsync, which dominates the wall time on this machine. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v). */
static double median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static long proc_status_kb(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	size_t kl = strlen(key);

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static double file_mb(const char *path)
{
	struct stat sb;
	char p[4200];
	double mb = 0;
	if (stat(path, &sb) == 0)
		mb += (double)sb.st_size / 1048576.0;
	snprintf(p, sizeof p, "%s-wal", path);
	if (stat(p, &sb) == 0)
		mb += (double)sb.st_size / 1048576.0;
	return mb;
}

/* Where the bytes of a store go, per relationship: SQLite's dbstat
 * (pages of each table and index, with their payload) read-only on the
 * closed store file, biggest first, and the free pages.  Returns the file's
 * pages × page size / n (0 when dbstat is not compiled in).  Read directly
 * with sqlite3: this is a look at the file, not something relmd does. */
struct bytes_res {
	double in_use, history, state, free;       /* bytes per relationship */
};

/* What dbstat says the history takes: the messages table and its indexes. */
static int is_history(const char *name)
{
	return name && (!strcmp(name, "messages") || !strcmp(name, "messages_by_rel") ||
	                !strncmp(name, "sqlite_autoindex_messages_", 26));
}

static struct bytes_res store_breakdown(const char *path, size_t n, int print)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	struct bytes_res b = { 0 };
	int64_t pages = 0, psize = 0, freep = 0, hist = 0;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		die("open %s: %s", path, sqlite3_errmsg(db));
	if (sqlite3_prepare_v2(db, "SELECT (SELECT page_count FROM pragma_page_count),"
	                       " (SELECT page_size FROM pragma_page_size),"
	                       " (SELECT freelist_count FROM pragma_freelist_count)", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		pages = sqlite3_column_int64(st, 0);
		psize = sqlite3_column_int64(st, 1);
		freep = sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	b.in_use = (double)((pages - freep) * psize) / (double)n;
	b.free = (double)(freep * psize) / (double)n;
	if (sqlite3_prepare_v2(db, "SELECT name, sum(pgsize), sum(payload) FROM dbstat GROUP BY name"
	                       " ORDER BY 2 DESC", -1, &st, NULL) != SQLITE_OK)
		die("dbstat: %s (SQLite built without SQLITE_ENABLE_DBSTAT_VTAB?)", sqlite3_errmsg(db));
	if (print) {
		printf("  store bytes per relationship (%s): %.0f in use (free pages %.1f more)\n", path,
		       b.in_use, b.free);
		printf("    %-36s %10s %10s\n", "table or index", "bytes/rel", "payload");
	}
	for (int row = 0; sqlite3_step(st) == SQLITE_ROW; row++) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		if (is_history(name))
			hist += sqlite3_column_int64(st, 1);
		if (print && row < 12)
			printf("    %-36s %10.1f %10.1f%s\n", name, (double)sqlite3_column_int64(st, 1) / (double)n,
			       (double)sqlite3_column_int64(st, 2) / (double)n, is_history(name) ? "  (history)" : "");
	}
	sqlite3_finalize(st);
	b.history = (double)hist / (double)n;
	b.state = b.in_use - b.history;
	if (print) {
		printf("    %-36s %10.1f\n", "  the history (messages + indexes)", b.history);
		printf("    %-36s %10.1f\n", "  the relationship without it", b.state);
		if (sqlite3_prepare_v2(db, "SELECT avg(length(state)) FROM relationships", -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			printf("    %-36s %10.1f\n", "  state blob (mean length)", sqlite3_column_double(st, 0));
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return b;
}

/* ---- start-up --------------------------------------------------------------- */

struct mboxes {
	uint8_t (*id)[RELM_SIGN_PK_LEN];
	uint64_t *cursor;
	size_t n, cap;
};

static int mbox_cb(void *ctx, const uint8_t id[RELM_SIGN_PK_LEN], uint64_t cursor)
{
	struct mboxes *m = ctx;
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 1024;
		m->id = realloc(m->id, m->cap * RELM_SIGN_PK_LEN);
		m->cursor = realloc(m->cursor, m->cap * sizeof *m->cursor);
		if (!m->id || !m->cursor)
			return RELM_ENOMEM;
	}
	memcpy(m->id[m->n], id, RELM_SIGN_PK_LEN);
	m->cursor[m->n++] = cursor;
	return 0;
}

static void mboxes_free(struct mboxes *m)
{
	free(m->id);
	free(m->cursor);
	memset(m, 0, sizeof *m);
}

struct startup_t {
	double open_ms, core_ms, mbox_ms, deadline_ms, total_ms;
	size_t nmbox;
};

/* relmd's start-up on d's store; leaves d open and the mailboxes in *m. */
static void startup(struct daemon *d, struct mboxes *m, struct startup_t *t)
{
	struct relm_store_opts o = { .flags = g_open_flags };
	uint64_t next = 0;
	double t0 = now_s(), t1, t2, t3, t4;

	memset(&d->env, 0, sizeof d->env);
	d->env.random = env_random;
	d->env.now_ms = env_now;
	relm_params_default(&d->env.params);
	CHECK(relm_store_open(&d->st, d->path, &o));
	t1 = now_s();
	CHECK(relm_core_new(&d->core, d->st, &d->env, d->host, RELM_MODE_TREE));
	t2 = now_s();
	CHECK(relm_core_mailboxes(d->core, mbox_cb, m));
	t3 = now_s();
	CHECK(relm_store_next_deadline(d->st, &next));
	t4 = now_s();
	t->open_ms = (t1 - t0) * 1e3;
	t->core_ms = (t2 - t1) * 1e3;
	t->mbox_ms = (t3 - t2) * 1e3;
	t->deadline_ms = (t4 - t3) * 1e3;
	t->total_ms = (t4 - t0) * 1e3;
	t->nmbox = m->n;
}

static int drop_caches(void)
{
	int fd;
	sync();
	if ((fd = open("/proc/sys/vm/drop_caches", O_WRONLY)) < 0)
		return -1;
	int ok = write(fd, "1", 1) == 1;
	close(fd);
	return ok ? 0 : -1;
}

struct startup_res {
	double open_ms, mbox_ms, total_ms;          /* warm medians */
	double open_cold_ms, mbox_cold_ms, total_cold_ms;
	int have_cold;
	double sign_ms;                             /* sign one subscription per mailbox */
	size_t nmbox;
};

static void measure_startup(struct daemon *d, int runs, int cold, struct startup_res *r)
{
	double open_v[32], mbox_v[32], tot_v[32];
	struct startup_t t;

	memset(r, 0, sizeof *r);
	/* warm: one run to fill the page cache, then `runs`; the last one also
	 * signs a subscription challenge for every mailbox */
	for (int i = 0; i <= runs; i++) {
		struct mboxes m = { 0 };
		startup(d, &m, &t);
		if (i == runs) {
			uint8_t sig[RELM_SIG_LEN], chal[32] = { 1 };
			double s0 = now_s();
			for (size_t k = 0; k < m.n; k++)
				CHECK(relm_core_mailbox_sign(d->core, m.id[k], chal, sizeof chal, sig));
			r->sign_ms = (now_s() - s0) * 1e3;
		}
		daemon_close(d);
		mboxes_free(&m);
		if (i > 0) {
			open_v[i - 1] = t.open_ms;
			mbox_v[i - 1] = t.mbox_ms;
			tot_v[i - 1] = t.total_ms;
		}
	}
	r->open_ms = median(open_v, (size_t)runs);
	r->mbox_ms = median(mbox_v, (size_t)runs);
	r->total_ms = median(tot_v, (size_t)runs);
	r->nmbox = t.nmbox;
	if (!cold)
		return;
	for (int i = 0; i < runs; i++) {
		struct mboxes m = { 0 };
		if (drop_caches() != 0) {
			fprintf(stderr, "  (cannot write /proc/sys/vm/drop_caches: no cold start-up)\n");
			return;
		}
		startup(d, &m, &t);
		daemon_close(d);
		mboxes_free(&m);
		open_v[i] = t.open_ms;
		mbox_v[i] = t.mbox_ms;
		tot_v[i] = t.total_ms;
	}
	r->open_cold_ms = median(open_v, (size_t)runs);
	r->mbox_cold_ms = median(mbox_v, (size_t)runs);
	r->total_cold_ms = median(tot_v, (size_t)runs);
	r->have_cold = 1;
}

/* ---- RSS in a fresh process -------------------------------------------------- */

/* The child: relmd's start-up on `path`, then envelopes from `envfile`
 * (records: mailbox(32) u32 length, bytes), RSS_MSGS sends on random
 * relationships, timers.  Prints "rss <startup_kb> <after_kb> <hwm_kb>". */
static int child_rss(const char *path, const char *envfile)
{
	struct daemon d;
	struct mboxes m = { 0 };
	struct startup_t t;
	long rss0, rss1, hwm;
	FILE *f;

	if (sodium_init() < 0)
		die("sodium_init");
	memset(&d, 0, sizeof d);
	snprintf(d.path, sizeof d.path, "%s", path);
	d.host = "127.0.0.2:7427";
	startup(&d, &m, &t);
	rss0 = proc_status_kb("VmRSS");
	if (!(f = fopen(envfile, "rb")))
		die("open %s", envfile);
	for (;;) {
		uint8_t mb[32], lb[4];
		if (fread(mb, 1, 32, f) != 32 || fread(lb, 1, 4, f) != 4)
			break;
		size_t len = (size_t)lb[0] << 24 | (size_t)lb[1] << 16 | (size_t)lb[2] << 8 | lb[3];
		uint8_t *buf = malloc(len);
		if (!buf || fread(buf, 1, len, f) != len)
			die("short envelope file");
		deliver(&d, mb, buf, len);
		free(buf);
	}
	fclose(f);
	for (int sent = 0, tries = 0; sent < RSS_MSGS && tries < 1000 && m.n; tries++) {
		uint8_t rel[RELM_ID_LEN], msg[RELM_ID_LEN];
		int was_new;
		uint32_t k = randombytes_uniform((uint32_t)m.n);
		if (relm_store_rel_by_mailbox(d.st, m.id[k], rel) != 0)
			continue;                 /* an invite's mailbox */
		CHECK(relm_core_message_send(d.core, rel, "rss probe", 9, NULL, msg, &was_new));
		sent++;
	}
	g_clock += TICK_STEP_MS;
	tick_all(&d);
	rss1 = proc_status_kb("VmRSS");
	hwm = proc_status_kb("VmHWM");
	printf("rss %ld %ld %ld\n", rss0, rss1, hwm);
	daemon_close(&d);
	mboxes_free(&m);
	return 0;
}

struct rss_res {
	double startup_mb, after_mb, hwm_mb;
};

/* Make RSS_MSGS envelopes on A for random relationships, run the child on B. */
static void measure_rss(struct daemon *a, struct daemon *b, const struct idlist *ids,
                        const char *tmpdir, struct rss_res *r)
{
	char envfile[4200], self[4096], line[256];
	struct orows l = { 0 };
	FILE *f, *p;
	ssize_t sl;

	snprintf(envfile, sizeof envfile, "%s/rss-envelopes.bin", tmpdir);
	if (!(f = fopen(envfile, "wb")))
		die("write %s", envfile);
	daemon_open(a);
	for (int i = 0; i < RSS_MSGS; i++) {
		uint8_t msg[RELM_ID_LEN];
		int was_new;
		const uint8_t *rel = ids->id[randombytes_uniform((uint32_t)ids->n)];
		CHECK(relm_core_message_send(a->core, rel, "rss probe", 9, NULL, msg, &was_new));
	}
	CHECK(relm_store_outbox_next(a->st, 0, 0, orow_cb, &l));
	for (size_t i = 0; i < l.n; i++) {
		struct relm_addr ad;
		uint8_t lb[4] = { (uint8_t)(l.v[i].len >> 24), (uint8_t)(l.v[i].len >> 16),
		                  (uint8_t)(l.v[i].len >> 8), (uint8_t)l.v[i].len };
		if (relm_addr_parse(&ad, l.v[i].dest, strlen(l.v[i].dest)) != 0)
			die("bad dest");
		fwrite(ad.id, 1, 32, f);
		fwrite(lb, 1, 4, f);
		fwrite(l.v[i].buf, 1, l.v[i].len, f);
		CHECK(relm_core_outbox_posted(a->core, l.v[i].seq, l.v[i].msg, l.v[i].rel,
		                              l.v[i].has_msg && l.v[i].has_rel));
	}
	orows_free(&l);
	daemon_close(a);
	if (fclose(f) != 0)
		die("write %s", envfile);

	if ((sl = readlink("/proc/self/exe", self, sizeof self - 1)) < 0)
		die("readlink /proc/self/exe");
	self[sl] = '\0';
	int fds[2], status = 0;
	pid_t pid;
	if (pipe(fds) != 0 || (pid = fork()) < 0)
		die("pipe/fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execl(self, self, "--child-rss", b->path, envfile, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	if (!(p = fdopen(fds[0], "r")))
		die("fdopen");
	long k0 = -1, k1 = -1, k2 = -1;
	while (fgets(line, sizeof line, p))
		sscanf(line, "rss %ld %ld %ld", &k0, &k1, &k2);
	fclose(p);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || k0 < 0)
		die("rss child failed");
	unlink(envfile);
	r->startup_mb = (double)k0 / 1024.0;
	r->after_mb = (double)k1 / 1024.0;
	r->hwm_mb = (double)k2 / 1024.0;
	/* the child's receipts are still in B's outbox: let A have them */
	daemon_open(a);
	daemon_open(b);
	settle(a, b);
	daemon_close(a);
	daemon_close(b);
}

/* ---- per-message cost ------------------------------------------------------------ */

struct samples {
	double *send, *recv, *msg, *full, *cpu;
	size_t n, cap;
};

static void samples_push(struct samples *s, double send, double recv, double full, double cpu)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 1024;
		s->send = realloc(s->send, s->cap * sizeof(double));
		s->recv = realloc(s->recv, s->cap * sizeof(double));
		s->msg = realloc(s->msg, s->cap * sizeof(double));
		s->full = realloc(s->full, s->cap * sizeof(double));
		s->cpu = realloc(s->cpu, s->cap * sizeof(double));
		if (!s->send || !s->recv || !s->msg || !s->full || !s->cpu)
			die("out of memory");
	}
	s->send[s->n] = send;
	s->recv[s->n] = recv;
	s->msg[s->n] = send + recv;
	s->full[s->n] = full;
	s->cpu[s->n] = cpu;
	s->n++;
}

static void samples_free(struct samples *s)
{
	free(s->send);
	free(s->recv);
	free(s->msg);
	free(s->full);
	free(s->cpu);
	memset(s, 0, sizeof *s);
}

/* One message A→B on rel with its receipt; times in µs. */
static void trial(struct daemon *a, struct daemon *b, const uint8_t rel[RELM_ID_LEN],
                  struct samples *s, int record)
{
	uint8_t msg[RELM_ID_LEN];
	int was_new = 0;
	struct orows l = { 0 };
	uint64_t t0, t1, t2 = 0, t3 = 0, tend, excl = 0, c0, c1, c2 = 0, c3 = 0;
	char body[100];

	memset(body, 'x', sizeof body);
	c0 = cpu_ns();
	t0 = now_ns();
	CHECK(relm_core_message_send(a->core, rel, body, sizeof body, NULL, msg, &was_new));
	t1 = now_ns();
	c1 = cpu_ns();
	if (!was_new)
		die("message not sent");
	CHECK(relm_store_outbox_next(a->st, 0, 0, orow_cb, &l));
	if (l.n != 1)
		die("expected one outbox row after a send, found %zu", l.n);
	{
		struct relm_addr ad;
		uint64_t cursor = 0, x0 = now_ns();
		if (relm_addr_parse(&ad, l.v[0].dest, strlen(l.v[0].dest)) != 0 || !ad.has_id)
			die("bad dest");
		CHECK(relm_store_cursor_get(b->st, ad.id, &cursor));   /* the server knows it */
		excl += now_ns() - x0;
		c2 = cpu_ns();
		t2 = now_ns();
		CHECK(relm_core_envelope(b->core, ad.id, cursor + 1, l.v[0].buf, l.v[0].len));
		t3 = now_ns();
		c3 = cpu_ns();
		CHECK(relm_core_outbox_posted(a->core, l.v[0].seq, l.v[0].msg, l.v[0].rel,
		                              l.v[0].has_msg && l.v[0].has_rel));
	}
	orows_free(&l);
	/* the receipt: B's timer, B → A, both outboxes marked */
	g_clock += TICK_STEP_MS;
	tick_all(b);
	pump(b, a);
	tick_all(a);
	pump(a, b);
	tend = now_ns();
	if (relm_store_history_has(b->st, rel, msg) != 1)
		die("B did not receive the message");
	if (record)
		samples_push(s, (double)(t1 - t0) / 1e3, (double)(t3 - t2) / 1e3,
		             (double)(tend - t0 - excl) / 1e3, (double)(c1 - c0 + c3 - c2) / 1e3);
}

struct msg_res {
	double send_us, recv_us, msg_us, full_us, cpu_us;
	double round_min, round_max;      /* per-round medians of msg_us */
	size_t n;
};

static void summarise(struct samples *s, double *round_med, int rounds, struct msg_res *r)
{
	r->n = s->n;
	r->send_us = median(s->send, s->n);
	r->recv_us = median(s->recv, s->n);
	r->msg_us = median(s->msg, s->n);
	r->full_us = median(s->full, s->n);
	r->cpu_us = median(s->cpu, s->n);
	r->round_min = r->round_max = round_med[0];
	for (int i = 1; i < rounds; i++) {
		if (round_med[i] < r->round_min)
			r->round_min = round_med[i];
		if (round_med[i] > r->round_max)
			r->round_max = round_med[i];
	}
}

/* Interleaved rounds: `per` trials on the small pair, `per` on the big one,
 * order alternating. */
static void measure_msgs(struct daemon *sa, struct daemon *sb, const struct idlist *sids,
                         struct daemon *ba, struct daemon *bb, const struct idlist *bids,
                         int rounds, int per, struct msg_res *rs, struct msg_res *rb)
{
	struct samples ss = { 0 }, sbig = { 0 };
	double med_s[64], med_b[64];

	daemon_open(sa);
	daemon_open(sb);
	daemon_open(ba);
	daemon_open(bb);
	for (int i = 0; i < 20; i++) {          /* warm-up, not recorded */
		trial(sa, sb, sids->id[randombytes_uniform((uint32_t)sids->n)], NULL, 0);
		trial(ba, bb, bids->id[randombytes_uniform((uint32_t)bids->n)], NULL, 0);
	}
	for (int r = 0; r < rounds; r++) {
		for (int half = 0; half < 2; half++) {
			int big = (half + r) % 2;
			struct samples *s = big ? &sbig : &ss, one = { 0 };
			const struct idlist *ids = big ? bids : sids;
			for (int i = 0; i < per; i++) {
				const uint8_t *rel = ids->id[randombytes_uniform((uint32_t)ids->n)];
				trial(big ? ba : sa, big ? bb : sb, rel, &one, 1);
			}
			for (size_t i = 0; i < one.n; i++)
				samples_push(s, one.send[i], one.recv[i], one.full[i], one.cpu[i]);
			(big ? med_b : med_s)[r] = median(one.msg, one.n);
			samples_free(&one);
		}
		fprintf(stderr, "\r  round %d/%d", r + 1, rounds);
		/* relmd purges posted outbox rows; not timed */
		purge(sa);
		purge(sb);
		purge(ba);
		purge(bb);
	}
	fprintf(stderr, "\n");
	summarise(&ss, med_s, rounds, rs);
	summarise(&sbig, med_b, rounds, rb);
	samples_free(&ss);
	samples_free(&sbig);
	daemon_close(sa);
	daemon_close(sb);
	daemon_close(ba);
	daemon_close(bb);
}

/* ---- main -------------------------------------------------------------------------- */

static void load_ids(struct daemon *a, struct idlist *ids)
{
	daemon_open(a);
	CHECK(relm_store_rel_list(a->st, a->proton, NULL, 0, rel_list_cb, ids));
	daemon_close(a);
}

static void label_for(char *out, size_t cap, size_t n)
{
	if (n >= 1000000 && n % 1000000 == 0)
		snprintf(out, cap, "%zum", n / 1000000);
	else if (n >= 1000 && n % 1000 == 0)
		snprintf(out, cap, "%zuk", n / 1000);
	else
		snprintf(out, cap, "%zu", n);
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: bench_scale [--quick] [--json PATH] [--dir DIR] [--n N] [--rounds R]\n"
	        "                   [--per K] [--runs S] [--real|--clone] [--rebuild]\n"
	        "                   [--only build|startup|rss|msg] [--no-cold] [--nocheck]\n"
	        "--nocheck opens without quick_check (a what-if for start-up; not for bench.json)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *json = NULL, *dir = "build/bench-scale", *only = NULL;
	size_t big_n = 100000, small_n = 10;
	int rounds = 5, per = 200, runs = 3, force = 0, rebuild = 0, quick = 0, cold = 1;

	if (argc == 4 && strcmp(argv[1], "--child-rss") == 0)
		return child_rss(argv[2], argv[3]);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--quick")) {
			quick = 1;
		} else if (!strcmp(a, "--json") && v) {
			json = v; i++;
		} else if (!strcmp(a, "--dir") && v) {
			dir = v; i++;
		} else if (!strcmp(a, "--n") && v) {
			big_n = strtoul(v, NULL, 10); i++;
		} else if (!strcmp(a, "--rounds") && v) {
			rounds = atoi(v); i++;
		} else if (!strcmp(a, "--per") && v) {
			per = atoi(v); i++;
		} else if (!strcmp(a, "--runs") && v) {
			runs = atoi(v); i++;
		} else if (!strcmp(a, "--only") && v) {
			only = v; i++;
		} else if (!strcmp(a, "--real")) {
			force = 1;
		} else if (!strcmp(a, "--clone")) {
			force = 2;
		} else if (!strcmp(a, "--rebuild")) {
			rebuild = 1;
		} else if (!strcmp(a, "--nocheck")) {
			g_open_flags = RELM_STORE_F_NOCHECK;
		} else if (!strcmp(a, "--no-cold")) {
			cold = 0;
		} else {
			usage();
		}
	}
	if (quick) {
		big_n = 2000;
		rounds = 3;
		per = 50;
		runs = 3;
	}
	if (g_open_flags && json)
		die("--nocheck is a what-if; it does not write bench.json figures");
	if (rounds < 1 || rounds > 64 || per < 1 || runs < 1 || runs > 31 || big_n < small_n)
		usage();
	if (sodium_init() < 0)
		die("sodium_init");
	setvbuf(stdout, NULL, _IOLBF, 0);

	struct daemon sa, sb, ba, bb;
	struct build_info sbi, bbi;
	char lbl[32], tmpdir[4200];
	label_for(lbl, sizeof lbl, big_n);
	mkdir_p(dir, 0755);
	snprintf(tmpdir, sizeof tmpdir, "%s", dir);
	ensure_stores(dir, small_n, 1, rebuild, &sa, &sb, &sbi);
	ensure_stores(dir, big_n, force, rebuild, &ba, &bb, &bbi);
	if (only && !strcmp(only, "build")) {
		store_breakdown(ba.path, big_n, 1);
		return 0;
	}

	struct idlist sids = { 0 }, bids = { 0 };
	load_ids(&sa, &sids);
	load_ids(&ba, &bids);
	if (sids.n != small_n || bids.n != big_n)
		die("stores hold %zu and %zu relationships, expected %zu and %zu (try --rebuild)",
		    sids.n, bids.n, small_n, big_n);

	struct startup_res su_s = { 0 }, su_b = { 0 };
	struct rss_res rss_s = { 0 }, rss_b = { 0 };
	struct msg_res m_s = { 0 }, m_b = { 0 };
	int do_all = !only;

	if (do_all || !strcmp(only, "startup")) {
		fprintf(stderr, "  start-up (%d runs warm%s)\n", runs, cold ? " and cold" : "");
		measure_startup(&sa, runs, cold, &su_s);
		measure_startup(&ba, runs, cold, &su_b);
	}
	if (do_all || !strcmp(only, "rss")) {
		fprintf(stderr, "  RSS (fresh processes)\n");
		measure_rss(&sa, &sb, &sids, tmpdir, &rss_s);
		measure_rss(&ba, &bb, &bids, tmpdir, &rss_b);
	}
	if (do_all || !strcmp(only, "msg")) {
		fprintf(stderr, "  messages (%d rounds × %d per store, interleaved)\n", rounds, per);
		measure_msgs(&sa, &sb, &sids, &ba, &bb, &bids, rounds, per, &m_s, &m_b);
	}

	double store_mb_b = file_mb(ba.path), store_mb_s = file_mb(sa.path);
	struct bytes_res bytes = store_breakdown(ba.path, big_n, 1);
	double ratio = m_s.msg_us > 0 ? m_b.msg_us / m_s.msg_us : 0;
	double ratio_full = m_s.full_us > 0 ? m_b.full_us / m_s.full_us : 0;
	double ratio_cpu = m_s.cpu_us > 0 ? m_b.cpu_us / m_s.cpu_us : 0;

	printf("\nScale: relmd's store with %zu relationships vs %zu (A: one proton; B: one per relationship)\n",
	       big_n, small_n);
	printf("  build of the %zu store: %s; real relationships cost %.2f ms each through the core\n",
	       big_n, bbi.cloned ? "256 real + clones (see bench_scale.c)" : "all real",
	       bbi.real_ms_per_rel);
	printf("  %-40s %12s %12s\n", "", "10 rels", lbl);
	printf("  %-40s %12.2f %12.2f\n", "store file (db + wal), MB", store_mb_s, store_mb_b);
	if (do_all || !strcmp(only, "startup")) {
		printf("  %-40s %12.2f %12.2f\n", "start-up, warm, ms (median)", su_s.total_ms, su_b.total_ms);
		printf("  %-40s %12.2f %12.2f\n", "  of which store open + quick_check", su_s.open_ms, su_b.open_ms);
		printf("  %-40s %12.2f %12.2f\n", "  of which mailbox list", su_s.mbox_ms, su_b.mbox_ms);
		if (su_b.have_cold) {
			printf("  %-40s %12.2f %12.2f\n", "start-up, cold (drop_caches), ms", su_s.total_cold_ms, su_b.total_cold_ms);
			printf("  %-40s %12.2f %12.2f\n", "  of which store open + quick_check", su_s.open_cold_ms, su_b.open_cold_ms);
			printf("  %-40s %12.2f %12.2f\n", "  of which mailbox list", su_s.mbox_cold_ms, su_b.mbox_cold_ms);
		}
		printf("  %-40s %12zu %12zu\n", "mailboxes to subscribe", su_s.nmbox, su_b.nmbox);
		printf("  %-40s %12.2f %12.2f\n", "sign every subscription, ms (apart)", su_s.sign_ms, su_b.sign_ms);
	}
	if (do_all || !strcmp(only, "rss")) {
		printf("  %-40s %12.2f %12.2f\n", "RSS after start-up, MB", rss_s.startup_mb, rss_b.startup_mb);
		printf("  %-40s %12.2f %12.2f\n", "RSS after 20+20 messages, MB", rss_s.after_mb, rss_b.after_mb);
		printf("  %-40s %12.2f %12.2f\n", "VmHWM (peak), MB", rss_s.hwm_mb, rss_b.hwm_mb);
	}
	if (do_all || !strcmp(only, "msg")) {
		printf("  %-40s %12.1f %12.1f\n", "send on A, µs (median)", m_s.send_us, m_b.send_us);
		printf("  %-40s %12.1f %12.1f\n", "envelope on B, µs (median)", m_s.recv_us, m_b.recv_us);
		printf("  %-40s %12.1f %12.1f\n", "message = send + envelope, µs", m_s.msg_us, m_b.msg_us);
		printf("  %-40s %5.0f–%-6.0f %5.0f–%-6.0f\n", "  min–max of round medians", m_s.round_min,
		       m_s.round_max, m_b.round_min, m_b.round_max);
		printf("  %-40s %12.1f %12.1f\n", "  CPU time of it (no fsync wait), µs", m_s.cpu_us, m_b.cpu_us);
		printf("  %-40s %12.1f %12.1f\n", "full cycle incl. receipt, µs", m_s.full_us, m_b.full_us);
		printf("  %-40s %12s %12.3f\n", "message cost ratio (big / 10)", "", ratio);
		printf("  %-40s %12s %12.3f\n", "CPU cost ratio (big / 10)", "", ratio_cpu);
		printf("  %-40s %12s %12.3f\n", "full cycle cost ratio (big / 10)", "", ratio_full);
		printf("  (%zu and %zu trials; every step its own durable transaction)\n", m_s.n, m_b.n);
	}

	if (json) {
		FILE *f = fopen(json, "w");
		int first = 1;
		if (!f)
			die("write %s: %s", json, strerror(errno));
		fprintf(f, "{");
#define KV(key, fmt, v) do { fprintf(f, "%s\n  \"scale.%s\": " fmt, first ? "" : ",", key, v); first = 0; } while (0)
		char k[96];
#define K(suffix) (snprintf(k, sizeof k, "%s.%s", lbl, suffix), k)
		KV(K("relationships"), "%zu", big_n);
		KV(K("store_mb"), "%.2f", store_mb_b);
		KV(K("bytes_per_rel"), "%.0f", bytes.in_use);
		KV(K("bytes_per_rel_history"), "%.0f", bytes.history);
		KV(K("bytes_per_rel_state"), "%.0f", bytes.state);
		KV(K("bytes_per_rel_free"), "%.0f", bytes.free);
		KV(K("build_cloned"), "%d", bbi.cloned);
		KV(K("build_real_ms_per_rel"), "%.3f", bbi.real_ms_per_rel);
		KV(K("build_s"), "%.1f", bbi.build_s);
		if (do_all || !strcmp(only, "startup")) {
			KV(K("startup_ms"), "%.2f", su_b.total_ms);
			KV(K("open_ms"), "%.2f", su_b.open_ms);
			KV(K("mailboxes_ms"), "%.2f", su_b.mbox_ms);
			if (su_b.have_cold) {
				KV(K("startup_cold_ms"), "%.2f", su_b.total_cold_ms);
				KV(K("open_cold_ms"), "%.2f", su_b.open_cold_ms);
				KV(K("mailboxes_cold_ms"), "%.2f", su_b.mbox_cold_ms);
			}
			KV(K("subscribe_sign_ms"), "%.2f", su_b.sign_ms);
			KV(K("ref10_startup_ms"), "%.2f", su_s.total_ms);
		}
		if (do_all || !strcmp(only, "rss")) {
			KV(K("rss_mb"), "%.2f", rss_b.after_mb);
			KV(K("rss_startup_mb"), "%.2f", rss_b.startup_mb);
			KV(K("rss_hwm_mb"), "%.2f", rss_b.hwm_mb);
			KV(K("ref10_rss_mb"), "%.2f", rss_s.after_mb);
		}
		if (do_all || !strcmp(only, "msg")) {
			KV(K("ref10_msg_us"), "%.2f", m_s.msg_us);
			KV(K("ref10_msg_full_us"), "%.2f", m_s.full_us);
			KV(K("msg_us"), "%.2f", m_b.msg_us);
			KV(K("msg_full_us"), "%.2f", m_b.full_us);
			KV(K("msg_cost_ratio"), "%.4f", ratio);
			KV(K("msg_full_cost_ratio"), "%.4f", ratio_full);
			KV(K("ref10_msg_cpu_us"), "%.2f", m_s.cpu_us);
			KV(K("msg_cpu_us"), "%.2f", m_b.cpu_us);
			KV(K("msg_cpu_cost_ratio"), "%.4f", ratio_cpu);
		}
		fprintf(f, "\n}\n");
#undef K
#undef KV
		if (fclose(f) != 0)
			die("write %s", json);
	}
	free(sids.id);
	free(bids.id);
	return 0;
}

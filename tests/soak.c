/*
 * soak.c — `make soak`: hours of traffic between two relmd through one
 * relm-mailbox, with random kill -9 of every process, checked by the
 * invariants of proto/invariants.md at the end, with RSS and open file descriptors
 * sampled along the way (they must stay flat).  Not part of `make check`.
 *
 *   SOAK_SECONDS  how long the traffic runs (default 3600)
 *   SOAK_KILL_S   mean seconds between two kill -9 (default 60: each of the
 *                 three processes lives about three minutes)
 *   RELM_SEED     the schedule (default 1; printed)
 *
 * Every message carries a client-chosen id, so a send whose reply was lost
 * to a kill is simply sent again (message.send is idempotent): the test
 * never has to guess whether a send happened.
 *
 * At the end: every message either side sent is in the other side's
 * history exactly once and `delivered` on the sender (no loss, no
 * duplicates, proto/invariants.md §1, §2, §6), and for each process instance that ran
 * long enough its RSS and fd count late in life are within bounds of what
 * they were early on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <check.h>
#include "util_daemon.h"
#include "util_rand.h"

enum {
	SOAK_MAX_MSGS   = 400000,
	SOAK_SAMPLE_MS  = 5000,
	RSS_SLACK_KB    = 16 * 1024,   /* allowed growth beyond 1.5x of the early sample */
	FD_SLACK        = 16,
};

struct msg {
	char id[33];
	int from;          /* 0 alice, 1 bob */
	int acked;         /* the daemon answered message.send */
};

struct inst {          /* one process instance: its samples */
	pid_t pid;
	long long born;
	long rss_early, fds_early;
	long rss_late, fds_late;
	long long early_at, late_at;
};

static struct msg *msgs;
static int nmsgs;
static struct td_mbox mb;
static struct td_relmd dm[2];
static char rel[33];
static struct inst insts[4096];
static int ninsts;
static char dir[TD_PATH_MAX];

static long proc_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static long proc_fds(pid_t pid)
{
	char path[64];
	long n = 0;
	DIR *d;
	struct dirent *e;
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	if (!(d = opendir(path)))
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void sample(pid_t pid)
{
	long long now = td_now_ms();
	struct inst *in = NULL;
	for (int i = 0; i < ninsts; i++)
		if (insts[i].pid == pid)
			in = &insts[i];
	if (!in) {
		if (ninsts == (int)(sizeof insts / sizeof insts[0]))
			return;
		in = &insts[ninsts++];
		memset(in, 0, sizeof *in);
		in->pid = pid;
		in->born = now;
	}
	long rss = proc_rss_kb(pid), fds = proc_fds(pid);
	if (rss < 0 || fds < 0)
		return;
	/* "early" = the first sample at least 30 s into its life (warm caches) */
	if (!in->early_at && now - in->born >= 30000) {
		in->rss_early = rss;
		in->fds_early = fds;
		in->early_at = now;
	}
	in->rss_late = rss;
	in->fds_late = fds;
	in->late_at = now;
}

static int send_one(struct msg *m)
{
	cJSON *r = td_callf(dm[m->from].sock, "message.send",
	                    "{\"relationship\":\"%s\",\"id\":\"%s\",\"body\":\"soak %s\"}",
	                    rel, m->id, m->id);
	int ok = r && td_res(r);
	cJSON_Delete(r);
	if (ok)
		m->acked = 1;
	return ok;
}

static void restart(int which)
{
	if (which == 2) {
		td_stop(&mb.pid, SIGKILL, 5000);
		ck_assert_int_eq(td_mbox_restart(&mb), 0);
	} else {
		td_stop(&dm[which].pid, SIGKILL, 5000);
		ck_assert_int_eq(td_relmd_restart(&dm[which]), 0);
	}
}

/* How many of side `to`'s incoming messages are in its history, counting
 * duplicates separately; pages through message.list. */
static void count_history(int to, int *in_total, int *dups, int *delivered_out)
{
	char before[40] = "";
	*in_total = *dups = *delivered_out = 0;
	char (*seen)[33] = calloc((size_t)nmsgs + 1, 33);
	int nseen = 0;
	for (;;) {
		cJSON *r = before[0]
			? td_callf(dm[to].sock, "message.list",
			           "{\"relationship\":\"%s\",\"limit\":1000,\"before\":\"%s\"}", rel, before)
			: td_callf(dm[to].sock, "message.list", "{\"relationship\":\"%s\",\"limit\":1000}", rel);
		const cJSON *list = cJSON_GetObjectItemCaseSensitive(td_res(r), "messages"), *it;
		int n = 0;
		ck_assert_msg(list != NULL, "message.list failed (" TU_SEED_FMT ")", TU_SEED_ARG);
		cJSON_ArrayForEach(it, list) {
			const char *id = td_str(it, "message"), *dirn = td_str(it, "direction");
			snprintf(before, sizeof before, "%s", id);
			n++;
			if (strcmp(td_str(it, "kind"), "text"))
				continue;
			if (!strcmp(dirn, "in")) {
				for (int k = 0; k < nseen; k++)
					if (!strcmp(seen[k], id))
						(*dups)++;
				if (nseen <= nmsgs)
					snprintf(seen[nseen++], 33, "%s", id);
				(*in_total)++;
			} else if (!strcmp(td_str(it, "status"), "delivered")) {
				(*delivered_out)++;
			}
		}
		cJSON_Delete(r);
		if (n < 1000)
			break;
	}
	free(seen);
}

struct quiet_ctx {
	int expect[2];
};

static int all_arrived(void *arg)
{
	struct quiet_ctx *q = arg;
	for (int to = 0; to < 2; to++) {
		int in, dups, del;
		count_history(to, &in, &dups, &del);
		if (in < q->expect[to])
			return 0;
		int from = 1 - to, delivered_from;
		count_history(from, &in, &dups, &delivered_from);
		if (delivered_from < q->expect[to])
			return 0;
	}
	return 1;
}

START_TEST(test_soak)
{
	const char *s = getenv("SOAK_SECONDS");
	long seconds = s && *s ? atol(s) : 3600;
	const char *ks = getenv("SOAK_KILL_S");
	long kill_mean = ks && *ks ? atol(ks) : 60;
	long long end, next_sample = 0, next_kill;
	int kills[3] = { 0, 0, 0 };

	msgs = calloc(SOAK_MAX_MSGS, sizeof *msgs);
	td_dir_new(dir, sizeof dir);
	ck_assert_int_eq(td_mbox_start(&mb, dir, "mbox", 0), 0);
	ck_assert_int_eq(td_relmd_start(&dm[0], dir, "alice", mb.port), 0);
	ck_assert_int_eq(td_relmd_start(&dm[1], dir, "bob", mb.port), 0);
	{
		cJSON *a = td_must(dm[0].sock, "proton.create", "{\"label\":\"alice\"}");
		cJSON *b = td_must(dm[1].sock, "proton.create", "{\"label\":\"bob\"}");
		cJSON *inv = td_must(dm[0].sock, "invite.create", "{\"proton\":\"%s\"}",
		                     td_str(td_res(a), "proton"));
		cJSON *acc = td_must(dm[1].sock, "invite.accept", "{\"proton\":\"%s\",\"invite\":\"%s\"}",
		                     td_str(td_res(b), "proton"), td_str(td_res(inv), "invite"));
		snprintf(rel, sizeof rel, "%s", td_str(td_res(acc), "relationship"));
		cJSON_Delete(a);
		cJSON_Delete(b);
		cJSON_Delete(inv);
		cJSON_Delete(acc);
	}
	end = td_now_ms() + seconds * 1000;
	next_kill = td_now_ms() + (long long)tu_rand_below((uint64_t)kill_mean * 2000 + 1);
	fprintf(stderr, "soak: %ld s, " TU_SEED_FMT "\n", seconds, TU_SEED_ARG);
	while (td_now_ms() < end && nmsgs < SOAK_MAX_MSGS) {
		uint64_t r = tu_rand_below(1000);
		if (td_now_ms() >= next_kill) {       /* kill -9 someone */
			int who = (int)tu_rand_below(3);
			kills[who]++;
			restart(who);
			next_kill = td_now_ms() + (long long)tu_rand_below((uint64_t)kill_mean * 2000 + 1);
		} else if (r < 500) {
			struct msg *m = &msgs[nmsgs++];
			m->from = (int)tu_rand_below(2);
			snprintf(m->id, sizeof m->id, "%016llx%016llx", (unsigned long long)tu_rand64(),
			         (unsigned long long)nmsgs);
			send_one(m);
		} else {
			td_sleep_ms((int)tu_rand_below(40));
		}
		/* retry sends whose reply a kill swallowed */
		for (int i = nmsgs - 1, tries = 0; i >= 0 && tries < 8; i--)
			if (!msgs[i].acked) {
				send_one(&msgs[i]);
				tries++;
			}
		if (td_now_ms() >= next_sample) {
			sample(dm[0].pid);
			sample(dm[1].pid);
			sample(mb.pid);
			next_sample = td_now_ms() + SOAK_SAMPLE_MS;
		}
	}
	for (int i = 0; i < nmsgs; i++)
		while (!msgs[i].acked)
			ck_assert_msg(send_one(&msgs[i]) || td_alive(dm[msgs[i].from].pid),
			              "daemon died (" TU_SEED_FMT ")", TU_SEED_ARG);
	{
		struct quiet_ctx q = { { 0, 0 } };
		for (int i = 0; i < nmsgs; i++)
			q.expect[1 - msgs[i].from]++;
		ck_assert_msg(td_wait(all_arrived, &q, 600000),
		              "not every message arrived and was receipted within 10 min (" TU_SEED_FMT ")",
		              TU_SEED_ARG);
		for (int to = 0; to < 2; to++) {
			int in, dups, del;
			count_history(to, &in, &dups, &del);
			ck_assert_msg(dups == 0, "%d duplicates (" TU_SEED_FMT ")", dups, TU_SEED_ARG);
			ck_assert_msg(in == q.expect[to], "%s holds %d of %d (" TU_SEED_FMT ")",
			              to ? "bob" : "alice", in, q.expect[to], TU_SEED_ARG);
		}
	}
	printf("soak: %d messages, kills alice %d bob %d mailbox %d, %d process instances\n",
	       nmsgs, kills[0], kills[1], kills[2], ninsts);
	for (int i = 0; i < ninsts; i++) {
		struct inst *in = &insts[i];
		if (!in->early_at || in->late_at - in->early_at < 60000)
			continue;                      /* too short-lived to judge */
		printf("  pid %d: rss %ld → %ld kB, fds %ld → %ld over %lld s\n", (int)in->pid,
		       in->rss_early, in->rss_late, in->fds_early, in->fds_late,
		       (in->late_at - in->early_at) / 1000);
		ck_assert_msg(in->rss_late <= in->rss_early * 3 / 2 + RSS_SLACK_KB,
		              "pid %d RSS grew %ld → %ld kB", (int)in->pid, in->rss_early, in->rss_late);
		ck_assert_msg(in->fds_late <= in->fds_early + FD_SLACK,
		              "pid %d fds grew %ld → %ld", (int)in->pid, in->fds_early, in->fds_late);
	}
	td_kill_all();
	free(msgs);
}
END_TEST

static void base_up(void) { td_base_new("soak"); }
static void base_down(void) { td_base_free(); }

int main(void)
{
	Suite *s = suite_create("soak");
	TCase *tc = tcase_create("traffic");
	SRunner *sr;
	int failed;
	const char *sec = getenv("SOAK_SECONDS");

	tu_seed_from_env();
	tcase_add_unchecked_fixture(tc, base_up, base_down);
	tcase_set_timeout(tc, (double)(sec && *sec ? atol(sec) : 3600) + 900);
	tcase_add_test(tc, test_soak);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * check_crash.c — kill -9 at random instants on the real product path
 * (the durability rule, proto/store.md §2; proto/invariants.md §1, §2, §6).
 *
 * Two daemons, alice (A, the inviter) and bob (B, the accepter), each with
 * its own store file, driven only through lib/core/core.h as relmd drives it
 * (tests/util_world.h gives the daemon handles).  The parent makes the
 * protons, the invite and bob's acceptance (bob's hello is committed but not
 * posted: the relationship's setup happens under fire too), then forks a
 * child that runs both daemons until the parent kills it with SIGKILL after
 * a seeded random delay, ≥ 200 times per run.  The child, in a loop:
 *
 *   - sends on both sides: random UTF-8 bodies (empty to a few kB), some
 *     with client-chosen ids — announced to the parent *before* the call
 *     (INTENT), so the next child retries every unacknowledged one like a
 *     client whose daemon died (idempotency across crashes), and re-sends
 *     acknowledged ones, which must come back with was_new = 0;
 *   - pumps outboxes: a random subset of the committed, unposted rows, in a
 *     random order (reordering), a few posted twice (duplication); one row
 *     at a time, or a group (all written, one fsync, the posted marks in
 *     one batch);
 *   - delivers: a random prefix of each mailbox past its stored cursor, and
 *     now and then an old position again (redelivery must change nothing);
 *   - ticks with a virtual clock (small steps, sometimes 5–30 s jumps that
 *     fire retransmissions);
 *   - groups a few calls of one daemon in a batch (group commit);
 *   - purges posted outbox rows (as a daemon must; nothing in lib/ does);
 *   - closes and reopens a daemon.
 *
 * Acknowledgements go to the parent over a pipe ONLY after the call that
 * made them returned 0 (and, in a batch, after relm_store_batch_commit):
 * "id X accepted for sending by A/B" after relm_core_message_send; "id X
 * received by A/B" for every new incoming history row the daemon's own
 * connection shows after relm_core_envelope / relm_core_tick — exactly what
 * relmd may tell its clients.  (Reading on the daemon's own connection also
 * sees uncommitted rows: a core call that returned with a transaction still
 * open would be caught; the child also asserts !relm_store_in_txn.)
 *
 * The network is an append-only file, the mailbox log, that outlives the
 * child: records "RLM1" ‖ len (LE32) ‖ mailbox id (32) ‖ BLAKE2b-128(bytes)
 * ‖ bytes, written with one write() on an O_APPEND descriptor and fsync'd
 * BEFORE relm_core_outbox_posted — a real mailbox acknowledges only what it
 * holds durably.  A mailbox's positions (seq 1, 2, …) are its records in
 * file order, as relm-mailbox numbers them.  A record torn by the kill was
 * never acknowledged nor delivered; the next process truncates it, as a
 * mailbox server drops a torn tail on recovery.  (The parent keeping the
 * network and serving the child over pipes was the other choice; the file
 * is simpler and it is the network's own record, so check 3 trusts nothing
 * the child says.)
 *
 * The virtual clock is monotone across kills: the file `clock` holds a
 * reservation R ≥ every clock value any process has used; before the clock
 * passes R, R = clock + CLOCK_CHUNK_MS is written.  A new process starts at
 * R (a jump of at most CLOCK_CHUNK_MS, as after a real restart).
 *
 * After each kill the parent opens both stores (a plain read-only SQLite
 * connection: it neither checkpoints nor removes the WAL, so the next child
 * recovers each store through relm_store_open as the kill left it, and may
 * be killed while doing so) and checks:
 *   1. PRAGMA integrity_check is ok on both files;
 *   2. every acknowledged send is in the sender's history (out), every
 *      acknowledged receive in the receiver's (in), with the acknowledged
 *      body, exactly once; no (rel, id) appears twice in either history;
 *   3. in the mailbox log, no two different envelopes share (dh_pub, n):
 *      a single-device sender never reuses a counter on one ratchet key
 *      (if it did with the same nonce, that is key+nonce reuse; with another
 *      nonce, a step was sent but not committed and redone after restart).
 *      The same bytes twice is a re-post (at-least-once) and is fine.
 * At the end the parent opens both daemons itself and settles (pump,
 * deliver, tick) until every text message either side holds as sent is in
 * the other's history with the same body, no outbox row is queued, and no
 * message is `failed` (invariant 1); then one more message each way must
 * arrive (the conversation continues).
 *
 * Also counted and printed: kills that left committed but unposted outbox
 * rows (re-posted after restart: tu_pump/our pump start from the oldest
 * unposted row), kills between the mailbox's durable write and
 * relm_core_outbox_posted, and torn log tails.
 *
 * RELM_SEED picks the schedule (the child's choices, the delays); the kill
 * instants are wall-clock, so a failing seed reproduces the schedule, not
 * always the exact kill.  RELM_CRASH_POINTS sets the number of kills
 * (default 250, about 25–35 s on 2 cores).  SIGKILL is process death, not
 * power loss: the OS keeps what was written (see proto/store.md) — so the
 * files go to /dev/shm when it is usable (about 5 times more steps per kill
 * than on a disk, where most kills land in fsync waits); RELM_CRASH_DIR
 * picks another folder.  A failed run leaves its relm-crash-* folder there
 * for inspection.
 *
 * This file sets the world up, runs the kills and the final quiescence;
 * the parts are in tests/crash/ (crash.h): the virtual clock, the mailbox
 * log, the child, and the parent's record and checks.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sqlite3.h>
#include "core/core.h"
#include "error.h"
#include "wire/invite.h"
#include "store/store.h"
#include "util_rand.h"
#include "util_world.h"
#include "crash/crash.h"

const char *const name_of[SIDES] = { "A", "B" };
const char *const host_of[SIDES] = { "127.0.0.1:7427", "127.0.0.2:7427" };

/* ---- the world (set up by the parent, inherited by each child) ----------- */

char g_dir[200], g_logpath[512], g_clockpath[512];
struct tu_daemon g_d[SIDES];
uint8_t g_rel[RELM_ID_LEN];

/* ---- setup and the final quiescence -------------------------------------------- */

/* Where the stores and the log live: $RELM_CRASH_DIR, else /dev/shm when
 * usable, else $TMPDIR or /tmp.  SIGKILL is process death: the page cache
 * survives, so a RAM file system loses nothing the test could observe, and
 * without fsync waits the child makes about 5 times more steps per kill.
 * RELM_CRASH_DIR=/tmp puts the kills into real fsync waits instead. */
static const char *base_dir(void)
{
	const char *e = getenv("RELM_CRASH_DIR");
	struct stat sb;
	if (e && *e)
		return e;
	if (stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK | X_OK) == 0)
		return "/dev/shm";
	e = getenv("TMPDIR");
	return e && *e ? e : "/tmp";
}

static void world_create(void)
{
	uint8_t pa[16], pb[16], ipk[32];
	char inv[RELM_INVITE_TEXT_MAX];
	int fd;

	snprintf(g_dir, sizeof g_dir, "%s/relm-crash-XXXXXX", base_dir());
	ck_assert_ptr_nonnull(mkdtemp(g_dir));
	snprintf(g_logpath, sizeof g_logpath, "%s/mailbox.log", g_dir);
	snprintf(g_clockpath, sizeof g_clockpath, "%s/clock", g_dir);
	ck_assert_int_ge(fd = open(g_logpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), 0);
	close(fd);
	ck_assert_int_eq(crash_clock_load(), -EIO);   /* empty */
	g_clock = g_clock_reserved = 1700000000000ull;
	ck_assert_int_eq(crash_clock_store(g_clock), 0);
	close(g_clockfd);

	for (int s = 0; s < SIDES; s++) {
		memset(&g_d[s], 0, sizeof g_d[s]);
		const char *who = s ? "bob" : "alice";
		snprintf(g_d[s].dir, sizeof g_d[s].dir, "%s/%s", g_dir, who);
		ck_assert_int_eq(mkdir(g_d[s].dir, 0700), 0);
		snprintf(g_d[s].path, sizeof g_d[s].path, "%s/%s/state/relm.db", g_dir, who);
	}
	ck_assert_int_eq(tu_daemon_open(&g_d[0], &g_clock, 1, host_of[0]), 0);
	ck_assert_int_eq(tu_daemon_open(&g_d[1], &g_clock, 2, host_of[1]), 0);
	ck_assert_int_eq(relm_core_proton_create(g_d[0].core, "alice", pa, ipk), 0);
	ck_assert_int_eq(relm_core_proton_create(g_d[1].core, "bob", pb, ipk), 0);
	ck_assert_int_eq(relm_core_invite_create(g_d[0].core, pa, 0, 0, inv, sizeof inv, NULL), 0);
	/* bob's hello is committed, not posted: the children post it */
	ck_assert_int_eq(relm_core_invite_accept(g_d[1].core, pb, inv, strlen(inv), "alice", g_rel), 0);
	tu_daemon_close(&g_d[0]);
	tu_daemon_close(&g_d[1]);
}

/* Every text message s holds as sent is in the other's history with the
 * same body; nothing queued, nothing failed.  why: the first reason not. */
static int converged(struct tu_daemon *d, char *why, size_t cap, int *sent)
{
	for (int s = 0; s < SIDES; s++) {
		sqlite3 *db = relm__store_db(d[s].st);
		sqlite3_stmt *q;
		int64_t v;

		if ((v = crash_q_int(db, "SELECT count(*) FROM outbox WHERE state='queued'")) != 0) {
			snprintf(why, cap, "%s has %lld queued outbox rows", name_of[s], (long long)v);
			return 0;
		}
		if ((v = crash_q_int(db, "SELECT count(*) FROM messages WHERE status='failed'")) != 0) {
			snprintf(why, cap, "%s has %lld failed messages", name_of[s], (long long)v);
			return 0;
		}
		sent[s] = 0;
		ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT id, body FROM messages WHERE direction='out' "
		                 "AND kind='text'", -1, &q, NULL), SQLITE_OK);
		while (sqlite3_step(q) == SQLITE_ROW) {
			uint8_t h[16];
			body_hash(h, sqlite3_column_blob(q, 1), (size_t)sqlite3_column_bytes(q, 1));
			if (crash_msg_count(relm__store_db(d[1 - s].st), sqlite3_column_blob(q, 0), 1, h) != 1) {
				snprintf(why, cap, "message %s sent by %s is not in %s's history",
				         tu_hex(sqlite3_column_blob(q, 0), 16), name_of[s], name_of[1 - s]);
				sqlite3_finalize(q);
				return 0;
			}
			sent[s]++;
		}
		sqlite3_finalize(q);
	}
	return 1;
}

static int settle(struct tu_daemon *d, char *why, size_t cap, int *sent, int *rounds)
{
	struct tu_daemon *ds[SIDES] = { &d[0], &d[1] };
	for (*rounds = 0; *rounds < SETTLE_ROUNDS; (*rounds)++) {
		if (converged(d, why, cap, sent))
			return 1;
		tu_settle(ds, SIDES, &g_log.net, 1, SETTLE_STEP_MS);
	}
	return converged(d, why, cap, sent);
}

static void quiesce(int points)
{
	struct tu_daemon d[SIDES];
	char why[200] = "";
	int sent[SIDES], sent2[SIDES], rounds, rounds2, was_new;
	uint8_t id[SIDES][16];

	ck_assert_int_eq(crash_clock_load(), 0);
	memcpy(d, g_d, sizeof d);
	g_log.fd = open(g_logpath, O_WRONLY | O_APPEND | O_CLOEXEC);
	ck_assert_int_ge(g_log.fd, 0);
	ck_assert_int_eq(ftruncate(g_log.fd, g_log.off), 0);   /* a torn tail of the last child */
	g_log.net.on_post = crash_log_on_post;
	g_log.net.post_ctx = &g_log;
	for (int s = 0; s < SIDES; s++)
		ck_assert_int_eq(tu_daemon_open(&d[s], &g_clock, 900 + (uint64_t)s, host_of[s]), 0);
	/* the client retries what a killed daemon never confirmed */
	for (size_t i = 0; i < g_intents.n; i++) {
		static char body[BODY_MAX + 8];
		size_t len = crash_body_of_id(g_intents.v[i].id, body);
		uint8_t got[16];
		int s = g_intents.v[i].side;
		ck_assert_int_eq(relm_core_message_send(d[s].core, g_rel, body, len, g_intents.v[i].id,
		                                        got, &was_new), 0);
	}
	ck_assert_msg(settle(d, why, sizeof why, sent, &rounds),
	              "no quiescence after %d rounds of %d ms: %s (" TU_SEED_FMT ")", rounds, SETTLE_STEP_MS,
	              why, TU_SEED_ARG);
	/* the conversation continues */
	for (int s = 0; s < SIDES; s++) {
		ck_assert_int_eq(relm_core_message_send(d[s].core, g_rel, "after the storm", 15, NULL, id[s],
		                                        &was_new), 0);
		ck_assert_int_eq(was_new, 1);
	}
	ck_assert_msg(settle(d, why, sizeof why, sent2, &rounds2), "no quiescence after the last "
	              "messages: %s (" TU_SEED_FMT ")", why, TU_SEED_ARG);
	for (int s = 0; s < SIDES; s++) {
		ck_assert_int_eq(sent2[s], sent[s] + 1);
		ck_assert_int_eq(crash_msg_count(relm__store_db(d[1 - s].st), id[s], 1, NULL), 1);
	}
	for (int s = 0; s < SIDES; s++)
		tu_daemon_close(&d[s]);
	close(g_log.fd);
	g_log.fd = -1;
	close(g_clockfd);
	crash_check_envelopes(&g_log.net, points);
	crash_verify(points, 1);

	fprintf(stderr, "  crash: %d kills in %.1f s (children %.1f s, checks after kills %.1f s)\n",
	        g_run.kills, crash_now_s() - g_run.t0, g_run.t_child, g_run.t_verify);
	fprintf(stderr, "  crash: %zu acknowledgements checked after every kill; in the end %d messages "
	        "A→B and %d B→A, all delivered (quiescence in %d rounds, +%d for the last two)\n",
	        g_acks.n, sent[0], sent[1], rounds, rounds2);
	fprintf(stderr, "  crash: %zu envelopes in the mailbox log, %zu distinct (ratchet key, counter), "
	        "%zu re-posted copies, 0 reused\n", g_log.net.n, g_keys.n, g_keys.reposts);
	fprintf(stderr, "  crash: kills with committed-unposted outbox rows %d, between the mailbox's "
	        "write and outbox_posted %d, torn log tails %d; virtual time %.0f s\n",
	        g_run.unposted, g_run.posted_unmarked, g_run.torn,
	        (double)(g_clock - 1700000000000ull) / 1000);
	fprintf(stderr, "  crash:");
	for (int i = 0; i < ST__N; i++)
		fprintf(stderr, " %s %llu%s", stat_name[i], (unsigned long long)g_stats[i],
		        i + 1 < ST__N ? "," : "\n");
}

START_TEST(test_kill9)
{
	const char *e = getenv("RELM_CRASH_POINTS");
	int points = e && *e ? atoi(e) : POINTS_DEFAULT;

	g_run.t0 = crash_now_s();
	world_create();
	for (int k = 0; k < points; k++) {
		int pfd[2], status, err_line = 0, err_rc = 0, eof;
		pid_t pid;
		/* most kills anywhere in the loop, some during startup/recovery */
		uint64_t r = tu_rand_below(100);
		uint64_t delay_us = r < 10 ? tu_rand_below(5000) : 5000 + tu_rand_below(r < 75 ? 80000 : 160000);

		double t = crash_now_s();
		ck_assert_int_eq(pipe(pfd), 0);
		fflush(stderr);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			close(pfd[0]);
			signal(SIGPIPE, SIG_DFL);
			crash_child_main((uint64_t)k, pfd[1], &g_log);
			_exit(0);
		}
		close(pfd[1]);
		eof = crash_read_recs(pfd[0], crash_now_s() + (double)delay_us / 1e6, &err_line, &err_rc);
		kill(pid, SIGKILL);
		if (!eof)
			crash_read_recs(pfd[0], 0, &err_line, &err_rc);
		close(pfd[0]);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		g_run.t_child += crash_now_s() - t;
		ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		              "kill %d: the child ended on its own (status 0x%x, failed at crash/child.c:%d "
		              "with %d %s) (" TU_SEED_FMT ")", k, status, err_line, err_rc,
		              err_rc < 0 ? relm_strerror(err_rc) : "", TU_SEED_ARG);
		g_run.kills++;
		t = crash_now_s();
		crash_verify(k, 0);
		g_run.t_verify += crash_now_s() - t;
	}
	quiesce(points);
	{
		char cmd[600];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
		ck_assert_int_eq(system(cmd), 0);
	}
	tu_net_free(&g_log.net);
	for (size_t i = 0; i < g_log.nmb; i++)
		free(g_log.mb[i].idx);
	free(g_log.mb);
	free(g_keys.v);
	free(g_acks.v);
	free(g_intents.v);
	free(g_client_acked.v);
}
END_TEST

int main(void)
{
	const char *e = getenv("RELM_CRASH_POINTS");
	int points = e && *e ? atoi(e) : POINTS_DEFAULT;
	Suite *s = suite_create("crash");
	TCase *tc = tcase_create("kill9");
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	/* ~0.1 s per kill point plus the final settle; generous for sanitizers */
	tcase_set_timeout(tc, 120 + points * 0.5);
	tcase_add_test(tc, test_kill9);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed)
		fprintf(stderr, "check_crash: " TU_SEED_FMT "\n", TU_SEED_ARG);
	return failed ? 1 : 0;
}

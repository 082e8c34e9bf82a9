/*
 * check_strategies.c — the `leader` and `fanout` strategies on loopback
 * daemons (proto/devices.md §11): relm-mailbox, two relmd of alice
 * (paired) and bob's, every relmd with a 3 s send lease.
 *
 * leader: alice chooses `leader` (no pinned device): within a lease period one
 * of her devices takes the lease on the mailbox server and sends for
 * both; the other's messages go to it as requests.  Then both devices
 * send in rounds, and the holder is killed with SIGKILL in the middle of
 * the stream: the other device keeps typing (its messages wait, queued),
 * takes the lease once the dead one's runs out and sends them; the dead
 * one, restarted, learns who holds the lease and asks it.  At the end:
 *
 *   - bob holds every alice message exactly once, in one relationship;
 *   - both alice devices hold the whole conversation, each message once;
 *   - no request is left pending, and daemon.status on both names the
 *     same holder, one of them sending.
 *
 * fanout: alice's first device is the hub.  The other holds no state
 * (daemon.status stateless_relationships) and gets the conversation
 * from the hub; the hub is killed with SIGKILL, a message typed on the
 * other waits `queued` and is sent once the hub is back; leaderless
 * again, the other holds the state again and sends by itself.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <cjson/cJSON.h>
#include "util_daemon.h"

enum {
	ROUNDS = 8,
	KILL_ROUND = 3,                  /* the holder dies after this round's sends */
	WAIT_MS = 60000,
};

static char dir[256];
static struct td_mbox mb;
static struct td_relmd A[2], B;

/* Start with a 3 s lease: set, then restart (td_relmd_start clears it). */
static void start(struct td_relmd *d, const char *name)
{
	ck_assert_int_eq(td_relmd_start(d, dir, name, mb.port), 0);
	snprintf(d->lease_ttl, sizeof d->lease_ttl, "3");   /* leader: a silent holder is replaced in 3 s */
	ck_assert_int_eq(td_relmd_restart(d), 0);
}

static void setup(void)
{
	td_base_new("leader");
	td_dir_new(dir, sizeof dir);
	ck_assert_int_eq(td_mbox_start(&mb, dir, "mbox", 0), 0);
	start(&A[0], "alice0");
	start(&A[1], "alice1");
	start(&B, "bob");
}

static void teardown(void)
{
	td_kill_all();
	td_base_free();
}

/* ---- what a daemon says ---- */

struct view {
	char strategy[16];
	char holder[33];                 /* "" when null */
	int sends;
	int pending;
	int stateless;
};

static struct view view_of(const struct td_relmd *d)
{
	cJSON *r = td_must(d->sock, "daemon.status", "{}");
	const cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(td_res(r), "strategies"), 0);
	struct view v;

	memset(&v, 0, sizeof v);
	if (s) {
		const cJSON *h = cJSON_GetObjectItemCaseSensitive(s, "holder");
		snprintf(v.strategy, sizeof v.strategy, "%s", td_str(s, "strategy"));
		if (cJSON_IsString(h))
			snprintf(v.holder, sizeof v.holder, "%s", h->valuestring);
		v.sends = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "sends"));
		v.pending = (int)cJSON_GetObjectItemCaseSensitive(s, "pending_requests")->valuedouble;
		v.stateless = (int)cJSON_GetObjectItemCaseSensitive(s, "stateless_relationships")->valuedouble;
	}
	cJSON_Delete(r);
	return v;
}

static void self_id(const struct td_relmd *d, const char *proton, char out[33])
{
	cJSON *r = td_must(d->sock, "device.list", "{\"proton\":\"%s\"}", proton);
	const cJSON *dev;
	out[0] = 0;
	cJSON_ArrayForEach(dev, cJSON_GetObjectItemCaseSensitive(td_res(r), "devices"))
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(dev, "self")))
			td_copy_id(out, td_str(dev, "device"));
	cJSON_Delete(r);
	ck_assert_int_eq((int)strlen(out), 32);
}

/* Both alice devices agree on one holder, which sends, and the other not. */
static int one_holder(void *arg)
{
	char (*ids)[33] = arg;
	struct view v0 = view_of(&A[0]), v1 = view_of(&A[1]);

	return strcmp(v0.strategy, "leader") == 0 && strcmp(v1.strategy, "leader") == 0 &&
	       v0.holder[0] && strcmp(v0.holder, v1.holder) == 0 && v0.sends + v1.sends == 1 &&
	       (v0.sends ? strcmp(v0.holder, ids[0]) : strcmp(v1.holder, ids[1])) == 0;
}

struct survivor {
	const struct td_relmd *d;
};

/* It holds the lease now, and sent what it had pending. */
static int took_over(void *arg)
{
	struct survivor *sv = arg;
	struct view v = view_of(sv->d);
	return v.sends && v.pending == 0;
}

static int no_pending(void *arg)
{
	(void)arg;
	return view_of(&A[0]).pending == 0 && view_of(&A[1]).pending == 0;
}

static void send_text(const struct td_relmd *d, const char *rel, const char *body)
{
	cJSON *r = td_must(d->sock, "message.send", "{\"relationship\":\"%s\",\"body\":\"%s\"}", rel, body);
	cJSON_Delete(r);
}

/* alice (device 0) and bob related, one message from bob, alice's
 * second device paired (label) and holding the history: the ids. */
static void alice_and_bob(char pa[33], char pb[33], char rel[33], char rel_b[33], char ids[2][33],
                          const char *label)
{
	cJSON *r;

	td_relate(A[0].sock, B.sock, pa, pb, rel_b, WAIT_MS);
	r = td_must(A[0].sock, "relationship.list", "{\"proton\":\"%s\"}", pa);
	td_copy_id(rel, td_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(td_res(r), "relationships"), 0),
	                       "relationship"));
	cJSON_Delete(r);
	send_text(&B, rel_b, "b-hello");
	ck_assert(td_wait(td_has_count, &(struct td_want){ &A[0], rel, 1 }, WAIT_MS));
	td_pair(A[0].sock, A[1].sock, pa, label, WAIT_MS);
	ck_assert(td_wait(td_has_count, &(struct td_want){ &A[1], rel, 1 }, WAIT_MS));
	self_id(&A[0], pa, ids[0]);
	self_id(&A[1], pa, ids[1]);
}

START_TEST(test_leader_killed_mid_stream)
{
	char pa[33], pb[33], rel[33], rel_b[33], body[24], ids[2][33];
	struct td_seen s;
	int holder, total;
	cJSON *r;

	alice_and_bob(pa, pb, rel, rel_b, ids, "laptop");

	/* leader, the lease decides: one holder within a few periods */
	r = td_must(A[1].sock, "proton.set_strategy", "{\"proton\":\"%s\",\"strategy\":\"leader\"}", pa);
	cJSON_Delete(r);
	ck_assert_msg(td_wait(one_holder, ids, WAIT_MS), "the devices never agreed on one holder");
	holder = view_of(&A[0]).sends ? 0 : 1;

	for (int round = 0; round < ROUNDS; round++) {
		for (int d = 0; d < 2; d++) {
			if (round > KILL_ROUND && round < KILL_ROUND + 3 && d == holder)
				continue;                /* dead for two rounds */
			snprintf(body, sizeof body, "a%d-r%d", d, round);
			send_text(&A[d], rel, body);
		}
		if (round == KILL_ROUND) {
			/* the holder dies: what the other types waits (queued,
			 * a pending request) until it takes the lease over */
			struct survivor sv = { &A[1 - holder] };
			td_stop(&A[holder].pid, SIGKILL, 5000);
			send_text(&A[1 - holder], rel, "while-dead");
			ck_assert_int_ge(view_of(&A[1 - holder]).pending, 1);
			ck_assert_msg(td_wait(took_over, &sv, WAIT_MS), "the other device never took the lease");
		}
		if (round == KILL_ROUND + 2)
			ck_assert_int_eq(td_relmd_restart(&A[holder]), 0);
		snprintf(body, sizeof body, "b-r%d", round);
		send_text(&B, rel_b, body);
		td_sleep_ms(300);
	}

	/* bob: every alice message once, from one peer */
	total = 1 + 2 * ROUNDS - 2 + 1 + ROUNDS;
	ck_assert_msg(td_wait(td_has_count, &(struct td_want){ &B, rel_b, total }, WAIT_MS),
	              "bob never got every message");
	td_history(&B, rel_b, &s);
	ck_assert_int_eq(s.count, total);
	ck_assert_int_eq(s.dup, 0);
	r = td_must(B.sock, "relationship.list", "{\"proton\":\"%s\"}", pb);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(td_res(r), "relationships")), 1);
	cJSON_Delete(r);
	for (int d = 0; d < 2; d++) {
		ck_assert_msg(td_wait(td_has_count, &(struct td_want){ &A[d], rel, total }, WAIT_MS),
		              "alice%d never got the whole conversation", d);
		td_history(&A[d], rel, &s);
		ck_assert_int_eq(s.count, total);
		ck_assert_int_eq(s.dup, 0);
	}
	ck_assert(td_wait(no_pending, NULL, WAIT_MS));
	ck_assert_msg(td_wait(one_holder, ids, WAIT_MS), "no single holder at the end");
}
END_TEST

/* d's status of its message body ("" when it has none). */
static void status_of(const struct td_relmd *d, const char *rel, const char *body, char out[16])
{
	cJSON *r = td_must(d->sock, "message.list", "{\"relationship\":\"%s\",\"limit\":1000}", rel);
	const cJSON *m;
	out[0] = 0;
	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(td_res(r), "messages"))
		if (!strcmp(td_str(m, "body"), body))
			snprintf(out, 16, "%s", td_str(m, "status"));
	cJSON_Delete(r);
}

struct st_want {
	const struct td_relmd *d;
	const char *rel, *body, *status;
};

static int has_status(void *arg)
{
	struct st_want *w = arg;
	char st[16];
	status_of(w->d, w->rel, w->body, st);
	return strcmp(st, w->status) == 0;
}

static int shows_tree(void *arg)
{
	struct td_want *w = arg;
	cJSON *r = td_callf(w->d->sock, "relationship.show", "{\"relationship\":\"%s\"}", w->rel);
	int ok = r && td_res(r) != NULL;
	cJSON_Delete(r);
	return ok;
}

struct fan_want {
	const struct td_relmd *d;
	const char *strategy;
	int sends, stateless;
};

static int fan_view(void *arg)
{
	struct fan_want *w = arg;
	struct view v = view_of(w->d);
	if (!w->strategy)
		return !v.strategy[0];           /* leaderless: not listed */
	return !strcmp(v.strategy, w->strategy) && v.sends == w->sends && v.stateless == w->stateless;
}

START_TEST(test_fanout_hub_away_and_back)
{
	char pa[33], pb[33], rel[33], rel_b[33], ids[2][33];
	struct td_seen s;
	cJSON *r;

	alice_and_bob(pa, pb, rel, rel_b, ids, "phone");

	/* set on the phone: the first device is the hub */
	r = td_must(A[1].sock, "proton.set_strategy",
	            "{\"proton\":\"%s\",\"strategy\":\"fanout\",\"leader\":\"%s\"}", pa, ids[0]);
	cJSON_Delete(r);
	ck_assert_msg(td_wait(fan_view, &(struct fan_want){ &A[1], "fanout", 0, 1 }, WAIT_MS),
	              "the phone never gave its state up");
	ck_assert(td_wait(fan_view, &(struct fan_want){ &A[0], "fanout", 1, 0 }, WAIT_MS));
	ck_assert_str_eq(view_of(&A[1]).holder, ids[0]);

	/* through the hub, both ways */
	send_text(&A[1], rel, "p-1");
	send_text(&B, rel_b, "b-1");
	ck_assert(td_wait(td_has_count, &(struct td_want){ &B, rel_b, 3 }, WAIT_MS));
	ck_assert(td_wait(has_status, &(struct st_want){ &A[1], rel, "p-1", "delivered" }, WAIT_MS));
	ck_assert(td_wait(td_has_count, &(struct td_want){ &A[1], rel, 3 }, WAIT_MS));

	/* without state, relationship.show has no tree to show */
	r = td_callf(A[1].sock, "relationship.show", "{\"relationship\":\"%s\"}", rel);
	ck_assert_str_eq(td_err_name(r), "no_state");
	cJSON_Delete(r);

	/* the hub dies: the phone's message waits, queued */
	td_stop(&A[0].pid, SIGKILL, 5000);
	send_text(&A[1], rel, "p-2");
	td_sleep_ms(1500);
	ck_assert(has_status(&(struct st_want){ &A[1], rel, "p-2", "queued" }));
	ck_assert_int_eq(view_of(&A[1]).pending, 1);
	td_history(&B, rel_b, &s);
	ck_assert_int_eq(s.count, 3);
	/* and comes back: sent once */
	ck_assert_int_eq(td_relmd_restart(&A[0]), 0);
	ck_assert(td_wait(td_has_count, &(struct td_want){ &B, rel_b, 4 }, WAIT_MS));
	ck_assert(td_wait(no_pending, NULL, WAIT_MS));
	ck_assert(td_wait(has_status, &(struct st_want){ &A[1], rel, "p-2", "delivered" }, WAIT_MS));

	/* leaderless again: the phone holds the state again and sends itself */
	r = td_must(A[1].sock, "proton.set_strategy", "{\"proton\":\"%s\",\"strategy\":\"leaderless\"}", pa);
	cJSON_Delete(r);
	ck_assert_msg(td_wait(fan_view, &(struct fan_want){ &A[1], NULL, 0, 0 }, WAIT_MS),
	              "the phone never went back to leaderless");
	ck_assert_msg(td_wait(shows_tree, &(struct td_want){ &A[1], rel, 0 }, WAIT_MS),
	              "the phone never held the state again");
	send_text(&A[1], rel, "p-3");
	send_text(&B, rel_b, "b-2");
	ck_assert(td_wait(td_has_count, &(struct td_want){ &B, rel_b, 6 }, WAIT_MS));
	for (int d = 0; d < 2; d++)
		ck_assert(td_wait(td_has_count, &(struct td_want){ &A[d], rel, 6 }, WAIT_MS));
	td_history(&B, rel_b, &s);
	ck_assert_int_eq(s.count, 6);
	ck_assert_int_eq(s.dup, 0);
	for (int d = 0; d < 2; d++) {
		td_history(&A[d], rel, &s);
		ck_assert_int_eq(s.count, 6);
		ck_assert_int_eq(s.dup, 0);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("strategies");
	TCase *tc = tcase_create("loopback");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_leader_killed_mid_stream);
	tcase_add_test(tc, test_fanout_hub_away_and_back);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

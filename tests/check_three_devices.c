/*
 * check_three_devices.c — one proton on three daemons, one peer to the
 * world (proto/devices.md): relm-mailbox, three relmd of alice paired
 * with each other (device.pair.begin / join, the second pairing from the
 * second device), and bob's relmd.  Ten rounds in which all three alice
 * devices send at once and bob answers; alice's third daemon is killed
 * with SIGKILL in the middle of the stream and restarted.  Then:
 *
 *   - bob holds every alice message exactly once, in one relationship
 *     (one peer);
 *   - every alice device holds the whole conversation, both directions,
 *     each message once, with the right origin (self / sibling / remote);
 *   - after one more exchange each way, the three alice devices send on
 *     the same leaf of the chain tree;
 *   - `relmctl tree REL` draws each device's relationship.show tree: every
 *     node under its parent, its side, the chosen leaf marked; and
 *     `relmctl tree REL --dot` is a Graphviz digraph of the same nodes and
 *     edges, the chosen one in bold.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <cjson/cJSON.h>
#include "util_daemon.h"

enum {
	DEVICES = 3,
	ROUNDS = 10,
	KILL_ROUND = 5,                  /* alice's third device dies after its send here */
	WAIT_MS = 60000,
};

static char dir[256];
static struct td_mbox mb;
static struct td_relmd A[DEVICES], B;

static void setup(void)
{
	td_base_new("three");
	td_dir_new(dir, sizeof dir);
	ck_assert_int_eq(td_mbox_start(&mb, dir, "mbox", 0), 0);
	for (int d = 0; d < DEVICES; d++) {
		char name[32];
		snprintf(name, sizeof name, "alice%d", d);
		ck_assert_int_eq(td_relmd_start(&A[d], dir, name, mb.port), 0);
	}
	ck_assert_int_eq(td_relmd_start(&B, dir, "bob", mb.port), 0);
}

static void teardown(void)
{
	td_kill_all();
	td_base_free();
}

/* ---- a device's view of the conversation: util_daemon (td_history) ---- */

static int lists_rel(void *arg)
{
	struct td_want *w = arg;
	cJSON *r = td_callf(w->d->sock, "relationship.show", "{\"relationship\":\"%s\"}", w->rel);
	int ok = r && td_res(r) != NULL;
	cJSON_Delete(r);
	return ok;
}

static void chosen(const struct td_relmd *d, const char *rel, char out[33])
{
	cJSON *r = td_must(d->sock, "relationship.show", "{\"relationship\":\"%s\"}", rel);
	const char *c = td_str(cJSON_GetObjectItemCaseSensitive(td_res(r), "tree"), "chosen");
	snprintf(out, 33, "%s", c);
	cJSON_Delete(r);
}

static void send_text(const struct td_relmd *d, const char *rel, const char *body)
{
	cJSON *r = td_must(d->sock, "message.send", "{\"relationship\":\"%s\",\"body\":\"%s\"}", rel, body);
	cJSON_Delete(r);
}

/* ---- relmctl tree against relationship.show ---- */

enum { TREE_OUT = 1 << 16, TREE_NODES = 512 };

/* The next line of *p into line (without its "\n", cut to cap): 0 at the
 * end of the text. */
static int next_line(const char **p, char *line, size_t cap)
{
	size_t n = strcspn(*p, "\n");
	if (!**p)
		return 0;
	snprintf(line, cap, "%.*s", (int)n, *p);
	*p += n + ((*p)[n] == '\n');
	return 1;
}

/* The index in nodes of the one node whose id begins with the n
 * characters at id; -1 if none (two would fail the test). */
static int node_index(const cJSON *nodes, const char *id, size_t n)
{
	const cJSON *it;
	int i = 0, found = -1;
	cJSON_ArrayForEach(it, nodes) {
		if (!strncmp(td_str(it, "node"), id, n)) {
			ck_assert_msg(found < 0, "two nodes begin with %.*s", (int)n, id);
			found = i;
		}
		i++;
	}
	return found;
}

/* `relmctl tree rel` (with --dot if dot) on d: its stdout into out. */
static void relmctl_tree(const struct td_relmd *d, const char *rel, int dot, char *out, size_t cap)
{
	char prog[512], err[1024], sock[TD_PATH_MAX], id[33];
	char *argv[] = { prog, "--socket", sock, "tree", id, dot ? "--dot" : NULL, NULL };
	td_prog(prog, sizeof prog, "relmctl");
	snprintf(sock, sizeof sock, "%s", d->sock);
	td_copy_id(id, rel);
	ck_assert_msg(td_run(argv, out, cap, err, sizeof err, 10000) == 0, "relmctl tree: %s", err);
}

/* The text drawing: "relationship REL", then one line per node, each
 * under its parent two columns in ("●" a root, "└─" a child), with the
 * first 12 characters of its id, its side, "(unacknowledged)" unless
 * valid and "← chosen" on the chosen node; then "pending  N". */
static void check_tree_text(const char *out, const char *rel, const cJSON *tree)
{
	const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(tree, "nodes");
	const char *chosen = td_str(tree, "chosen");
	int count = cJSON_GetArraySize(nodes), seen[TREE_NODES] = { 0 }, path[TREE_NODES], top = 0, marked = 0;
	char line[512], want[512];

	ck_assert_int_le(count, TREE_NODES);
	ck_assert(next_line(&out, line, sizeof line));
	snprintf(want, sizeof want, "relationship %s", rel);
	ck_assert_str_eq(line, want);
	while (next_line(&out, line, sizeof line)) {
		int indent = (int)strspn(line, " "), depth = indent / 2, i;
		const char *p = line + indent, *mark = depth ? "└─ " : "● ";
		if (!strncmp(line, "pending  ", 9)) {
			snprintf(want, sizeof want, "pending  %d",
			         cJSON_GetObjectItemCaseSensitive(tree, "pending")->valueint);
			ck_assert_str_eq(line, want);
			ck_assert(!*out);
			break;
		}
		ck_assert_msg(indent % 2 == 0 && depth <= top && depth < TREE_NODES &&
		              !strncmp(p, mark, strlen(mark)), "not a node line: %s", line);
		p += strlen(mark);
		ck_assert_msg(strspn(p, "0123456789abcdef") == 12, "no node id: %s", line);
		i = node_index(nodes, p, 12);
		ck_assert_msg(i >= 0, "a node relationship.show does not list: %s", line);
		const cJSON *n = cJSON_GetArrayItem(nodes, i);
		const cJSON *parent = cJSON_GetObjectItemCaseSensitive(n, "parent");
		if (depth == 0)
			ck_assert_msg(cJSON_IsNull(parent), "not a root: %s", line);
		else
			ck_assert_str_eq(td_str(n, "parent"), td_str(cJSON_GetArrayItem(nodes, path[depth - 1]), "node"));
		path[depth] = i;
		top = depth + 1;
		seen[i]++;
		snprintf(want, sizeof want, "  %s%s%s", td_str(n, "side"),
		         cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "valid")) ? "" : " (unacknowledged)",
		         !strcmp(td_str(n, "node"), chosen) ? "  ← chosen" : "");
		ck_assert_str_eq(p + 12, want);
		marked += !strcmp(td_str(n, "node"), chosen);
	}
	for (int i = 0; i < count; i++)
		ck_assert_msg(seen[i] == 1, "node %s drawn %d times", td_str(cJSON_GetArrayItem(nodes, i), "node"), seen[i]);
	ck_assert_int_eq(marked, 1);
}

/* The Graphviz drawing: a digraph with one statement per node (its whole
 * id; the chosen one bold) and one edge "parent" -> "child" per node that
 * has a parent, nothing else. */
static void check_tree_dot(const char *out, const cJSON *tree)
{
	const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(tree, "nodes");
	const char *chosen = td_str(tree, "chosen");
	int count = cJSON_GetArraySize(nodes), seen[TREE_NODES] = { 0 }, edge[TREE_NODES] = { 0 };
	char line[512], a[33], b[33];
	int closed = 0;

	ck_assert_int_le(count, TREE_NODES);
	ck_assert(next_line(&out, line, sizeof line));
	ck_assert_msg(!strncmp(line, "digraph ", 8) && line[strlen(line) - 1] == '{', "not a digraph: %s", line);
	while (next_line(&out, line, sizeof line)) {
		int k = -1, i;
		ck_assert_msg(!closed, "after the closing brace: %s", line);
		if (!strcmp(line, "}")) {
			closed = 1;
		} else if (sscanf(line, " \"%32[0-9a-f]\" -> \"%32[0-9a-f]\";%n", a, b, &k) == 2 && k == (int)strlen(line)) {
			i = node_index(nodes, b, 32);
			ck_assert_msg(i >= 0 && strlen(b) == 32, "an edge to no node: %s", line);
			ck_assert_str_eq(td_str(cJSON_GetArrayItem(nodes, i), "parent"), a);
			edge[i]++;
		} else if (sscanf(line, " \"%32[0-9a-f]\" [%n", a, &k) == 1 && k > 0) {
			i = node_index(nodes, a, 32);
			ck_assert_msg(i >= 0 && strlen(a) == 32, "a node relationship.show does not list: %s", line);
			seen[i]++;
			ck_assert_int_eq(strstr(line, "style=bold") != NULL, !strcmp(a, chosen));
		} else {
			ck_assert_msg(!strcmp(line, "  rankdir=LR;"), "not a node, an edge or rankdir: %s", line);
		}
	}
	ck_assert(closed);
	for (int i = 0; i < count; i++) {
		const cJSON *n = cJSON_GetArrayItem(nodes, i);
		ck_assert_int_eq(seen[i], 1);
		ck_assert_int_eq(edge[i], !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(n, "parent")));
	}
}

/* Both drawings of rel on d, checked against relationship.show — asked
 * before and after them, again until the tree did not change in between
 * (a late receipt may still move it). */
static void check_tree_drawings(const struct td_relmd *d, const char *rel)
{
	static char text[TREE_OUT], dot[TREE_OUT];
	cJSON *before = NULL, *after = NULL;
	char *s1 = NULL, *s2 = NULL;

	for (int tries = 0; tries < 50; tries++) {
		cJSON_Delete(before);
		cJSON_Delete(after);
		cJSON_free(s1);
		cJSON_free(s2);
		before = td_must(d->sock, "relationship.show", "{\"relationship\":\"%s\"}", rel);
		relmctl_tree(d, rel, 0, text, sizeof text);
		relmctl_tree(d, rel, 1, dot, sizeof dot);
		after = td_must(d->sock, "relationship.show", "{\"relationship\":\"%s\"}", rel);
		s1 = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(td_res(before), "tree"));
		s2 = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(td_res(after), "tree"));
		ck_assert(s1 && s2);
		if (!strcmp(s1, s2))
			break;
		td_sleep_ms(100);
	}
	ck_assert_msg(!strcmp(s1, s2), "%s: the tree kept changing", d->name);
	const cJSON *tree = cJSON_GetObjectItemCaseSensitive(td_res(after), "tree");
	ck_assert_int_gt(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(tree, "nodes")), 1);
	check_tree_text(text, rel, tree);
	check_tree_dot(dot, tree);
	cJSON_Delete(before);
	cJSON_Delete(after);
	cJSON_free(s1);
	cJSON_free(s2);
}

START_TEST(test_three_devices_one_peer)
{
	char pa[33], pb[33], rel[33], rel_b[33], body[40];
	struct td_seen s;
	cJSON *r;

	/* alice (device 0) and bob meet, and say one thing each */
	td_relate(A[0].sock, B.sock, pa, pb, rel_b, WAIT_MS);
	r = td_must(A[0].sock, "relationship.list", "{\"proton\":\"%s\"}", pa);
	td_copy_id(rel, td_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(td_res(r), "relationships"), 0),
	                       "relationship"));
	cJSON_Delete(r);
	send_text(&B, rel_b, "b-hello");
	ck_assert(td_wait(td_has_count, &(struct td_want){ &A[0], rel, 1 }, WAIT_MS));
	send_text(&A[0], rel, "a0-hello");
	ck_assert(td_wait(td_has_count, &(struct td_want){ &B, rel_b, 2 }, WAIT_MS));

	/* devices 1 and 2 join: the first through device 0, the second
	 * through device 1; each then holds the relationship and its history */
	td_pair(A[0].sock, A[1].sock, pa, "laptop", WAIT_MS);
	td_pair(A[1].sock, A[2].sock, pa, "tablet", WAIT_MS);
	for (int d = 1; d < DEVICES; d++) {
		ck_assert_msg(td_wait(lists_rel, &(struct td_want){ &A[d], rel, 0 }, WAIT_MS),
		              "alice%d never got the relationship", d);
		ck_assert_msg(td_wait(td_has_count, &(struct td_want){ &A[d], rel, 2 }, WAIT_MS),
		              "alice%d never got the history", d);
	}

	/* ten rounds: the three alice devices send at once, bob answers */
	for (int round = 0; round < ROUNDS; round++) {
		for (int d = 0; d < DEVICES; d++) {
			snprintf(body, sizeof body, "a%d-r%d", d, round);
			send_text(&A[d], rel, body);
		}
		if (round == KILL_ROUND) {
			td_stop(&A[2].pid, SIGKILL, 5000);
			ck_assert_int_eq(td_relmd_restart(&A[2]), 0);
		}
		snprintf(body, sizeof body, "b-r%d", round);
		send_text(&B, rel_b, body);
	}

	/* bob: every alice message once, in his one relationship with alice */
	int total_a = 1 + DEVICES * ROUNDS, total = total_a + 1 + ROUNDS;
	ck_assert_msg(td_wait(td_has_count, &(struct td_want){ &B, rel_b, total }, WAIT_MS),
	              "bob never got every message");
	td_history(&B, rel_b, &s);
	ck_assert_int_eq(s.count, total);
	ck_assert_int_eq(s.dup, 0);
	r = td_must(B.sock, "relationship.list", "{\"proton\":\"%s\"}", pb);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(td_res(r), "relationships")), 1);
	cJSON_Delete(r);

	/* every alice device: the whole conversation, once, origins right */
	for (int d = 0; d < DEVICES; d++) {
		ck_assert_msg(td_wait(td_has_count, &(struct td_want){ &A[d], rel, total }, WAIT_MS),
		              "alice%d never got the whole conversation", d);
		td_history(&A[d], rel, &s);
		ck_assert_int_eq(s.count, total);
		ck_assert_int_eq(s.dup, 0);
		for (int from = 0; from < DEVICES; from++) {
			snprintf(body, sizeof body, "a%d-r%d", from, ROUNDS - 1);
			ck_assert_str_eq(td_origin_of(&s, body), from == d ? "self" : "sibling");
		}
		ck_assert_str_eq(td_origin_of(&s, "b-r0"), "remote");
	}

	/* one more exchange each way: the three choose the same leaf */
	send_text(&A[1], rel, "a1-last");
	ck_assert(td_wait(td_has_count, &(struct td_want){ &B, rel_b, total + 1 }, WAIT_MS));
	send_text(&B, rel_b, "b-last");
	char leaf[DEVICES][33];
	for (int d = 0; d < DEVICES; d++)
		ck_assert(td_wait(td_has_count, &(struct td_want){ &A[d], rel, total + 2 }, WAIT_MS));
	long long until = td_now_ms() + WAIT_MS;
	for (;;) {
		for (int d = 0; d < DEVICES; d++)
			chosen(&A[d], rel, leaf[d]);
		if ((!strcmp(leaf[0], leaf[1]) && !strcmp(leaf[1], leaf[2]) && leaf[0][0]) || td_now_ms() > until)
			break;
		td_sleep_ms(100);
	}
	ck_assert_str_eq(leaf[0], leaf[1]);
	ck_assert_str_eq(leaf[1], leaf[2]);
	ck_assert_int_eq((int)strlen(leaf[0]), 32);

	/* relmctl tree, as text and as Graphviz, on every alice device */
	for (int d = 0; d < DEVICES; d++)
		check_tree_drawings(&A[d], rel);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("three_devices");
	TCase *tc = tcase_create("loopback");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_three_devices_one_peer);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

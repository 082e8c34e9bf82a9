/*
 * check_revoke_relmd.c — revocation and the identity roll through the
 * programs (proto/revocation.md §7, proto/api.md device.revoke,
 * identity.rotate): relm-mailbox and three relmd on loopback.  alice's
 * relmd (A) is related to bob's (B) and pairs a second device (J); A
 * revokes J with rotate_identity: bob's relationship pins the new key
 * (relationship.show, identity.rotated), J reports the proton read-only
 * in daemon.status and refuses to write for it, A goes on talking to bob.
 * Then the heal (relmd --heal-delay 1:2): the revoked tablet, holding the
 * relationship from the bulk state, opens nothing bob sends once the
 * relationship is healed (bob replied on a heal's node), and bob sees
 * nothing of it but the heals (his pin and his events unchanged).  A copy of
 * alice's store run as a second relmd (a clone): alice raises
 * clone.suspected; two copies rolling the key at once: bob raises
 * identity.conflict and keeps the old key until identity.accept.  Forged
 * successor statements put into alice's outbox while her relmd is
 * stopped (her store opened in-process): bob's relmd rejects each.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <check.h>
#include <cjson/cJSON.h>
#include "util_daemon.h"
#include "util_engine.h"
#include "util_rand.h"
#include "util_world.h"
#include "core/apply.h"
#include "core/core.h"
#include "crypto/crypto.h"
#include "engine/rel_state.h"
#include "store/store.h"
#include "wire/successor.h"
#include "error.h"

enum { WAIT_MS = 20000 };

static char dir[256];
static struct td_mbox mb;
static struct td_relmd A, B, J;

static void setup(void)
{
	td_base_new("revoke");
	td_dir_new(dir, sizeof dir);
	ck_assert_int_eq(td_mbox_start(&mb, dir, "mbox", 0), 0);
	ck_assert_int_eq(td_relmd_start(&A, dir, "alice", mb.port), 0);
	ck_assert_int_eq(td_relmd_start(&B, dir, "bob", mb.port), 0);
	ck_assert_int_eq(td_relmd_start(&J, dir, "tablet", mb.port), 0);
}

static void teardown(void)
{
	td_kill_all();
	td_base_free();
}

/* ---- waiting for what another daemon does ---- */

struct want {
	const char *sock, *method, *params, *field, *value;
};

/* td_wait predicate: the result of method(params) on sock has field (a
 * path "a.b", or "a[]" for an array of strings) equal to / holding value. */
static int has_value(void *arg)
{
	struct want *w = arg;
	cJSON *r = td_call(w->sock, w->method, w->params);
	const cJSON *v = td_res(r), *it;
	char path[64], *p, *save = NULL;
	int ok = 0;

	snprintf(path, sizeof path, "%s", w->field);
	for (p = strtok_r(path, ".", &save); p && v; p = strtok_r(NULL, ".", &save)) {
		size_t n = strlen(p);
		if (n > 2 && !strcmp(p + n - 2, "[]")) {
			p[n - 2] = '\0';
			cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(v, p))
				ok |= cJSON_IsString(it) && !strcmp(it->valuestring, w->value);
			v = NULL;
			break;
		}
		v = cJSON_GetObjectItemCaseSensitive(v, p);
	}
	if (v && cJSON_IsString(v))
		ok = !strcmp(v->valuestring, w->value);
	cJSON_Delete(r);
	return ok;
}

static void wait_value(const char *sock, const char *method, const char *params,
                       const char *field, const char *value, const char *what)
{
	struct want w = { sock, method, params, field, value };
	ck_assert_msg(td_wait(has_value, &w, WAIT_MS), "%s never came", what);
}

/* Walk sock's events (subscribe since 0, the replayed lines): those whose
 * type begins with the first len bytes of type are counted in *n (if not
 * NULL) and given to each (if not NULL); the params of the last of them, a
 * copy, are returned (NULL if none). */
static cJSON *scan_events(const char *sock, const char *type, size_t len, int *n,
                          void (*each)(const cJSON *params, void *ctx), void *ctx)
{
	struct td_conn c;
	cJSON *r, *found = NULL;
	int last;

	if (n)
		*n = 0;
	ck_assert_int_eq(td_conn_open(&c, sock), 0);
	r = td_conn_call(&c, "subscribe", "{\"since\":0}", NULL);
	ck_assert_ptr_nonnull(td_res(r));
	last = (int)cJSON_GetObjectItemCaseSensitive(td_res(r), "replay")->valuedouble;
	cJSON_Delete(r);
	for (int i = 0; i < last; i++) {
		cJSON *j = td_conn_read(&c, WAIT_MS);
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "params");
		ck_assert_ptr_nonnull(p);
		if (!strncmp(td_str(p, "type"), type, len)) {
			cJSON_Delete(found);
			found = cJSON_Duplicate(p, 1);
			if (n)
				(*n)++;
			if (each)
				each(p, ctx);
		}
		cJSON_Delete(j);
	}
	td_conn_close(&c);
	return found;
}

/* The params of the last event of type on sock, a copy; NULL if none. */
static cJSON *last_event(const char *sock, const char *type)
{
	return scan_events(sock, type, strlen(type) + 1, NULL, NULL, NULL);
}

/* How many events on sock have a type beginning with prefix. */
static int count_events(const char *sock, const char *prefix)
{
	int n;
	cJSON_Delete(scan_events(sock, prefix, strlen(prefix), &n, NULL, NULL));
	return n;
}

static cJSON *join_until(struct td_relmd *d, const char *code)
{
	for (int i = 0; i < 100; i++) {
		cJSON *r = td_callf(d->sock, "device.pair.join", "{\"code\":\"%s\",\"label\":\"tablet\"}", code);
		ck_assert_ptr_nonnull(r);
		if (!td_err_name(r) || strcmp(td_err_name(r), "pending") != 0)
			return r;
		cJSON_Delete(r);
		td_sleep_ms(200);
	}
	ck_abort_msg("device.pair.join still pending after 20 s");
	return NULL;
}

/* The id of proton's device on d that is not d itself. */
static void other_device(struct td_relmd *d, const char *proton, char out[33])
{
	cJSON *r = td_must(d->sock, "device.list", "{\"proton\":\"%s\"}", proton);
	const cJSON *it;

	out[0] = '\0';
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(td_res(r), "devices"))
		if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "self")))
			td_copy_id(out, td_str(it, "device"));
	cJSON_Delete(r);
	ck_assert_int_eq((int)strlen(out), 32);
}

static void send_text(const char *from, const char *rel, const char *body)
{
	cJSON *r = td_must(from, "message.send", "{\"relationship\":\"%s\",\"body\":\"%s\"}", rel, body);
	cJSON_Delete(r);
}

/* The newest message's body of rel on sock. */
static int newest_is(void *arg)
{
	struct want *w = arg;
	cJSON *r = td_call(w->sock, "message.list", w->params);
	const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(td_res(r), "messages"), 0);
	int ok = m && td_str(m, "body") && !strcmp(td_str(m, "body"), w->value);
	cJSON_Delete(r);
	return ok;
}

static void wait_newest(const char *sock, const char *rel, const char *body)
{
	char params[200];
	struct want w = { sock, NULL, params, NULL, body };
	snprintf(params, sizeof params, "{\"relationship\":\"%s\",\"limit\":1}", rel);
	ck_assert_msg(td_wait(newest_is, &w, WAIT_MS), "\"%s\" never reached the other side", body);
}

struct msg_want {
	const char *sock, *rel, *field, *value;
};

/* td_wait predicate: sock's history of rel (the newest 50) has a message
 * whose field is value. */
static int has_msg(void *arg)
{
	struct msg_want *w = arg;
	cJSON *r = td_callf(w->sock, "message.list", "{\"relationship\":\"%s\",\"limit\":50}", w->rel);
	const cJSON *it;
	int ok = 0;

	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(td_res(r), "messages"))
		ok |= td_str(it, w->field) && !strcmp(td_str(it, w->field), w->value);
	cJSON_Delete(r);
	return ok;
}

/* Messages of kind in sock's history of rel (the newest 50). */
static int count_kind(const char *sock, const char *rel, const char *kind)
{
	cJSON *r = td_callf(sock, "message.list", "{\"relationship\":\"%s\",\"limit\":50}", rel);
	const cJSON *it;
	int n = 0;

	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(td_res(r), "messages"))
		n += td_str(it, "kind") && !strcmp(td_str(it, "kind"), kind);
	cJSON_Delete(r);
	return n;
}

static int holds(const char *sock, const char *rel, const char *field, const char *value)
{
	struct msg_want w = { sock, rel, field, value };
	return has_msg(&w);
}

/* alice (A) and bob (B) related, alice's first message read by bob, and
 * the tablet (J) paired into alice's proton. */
static void alice_bob_tablet(char pa[33], char pb[33], char rel[33])
{
	char code[1100];
	cJSON *r;

	td_relate(A.sock, B.sock, pa, pb, rel, WAIT_MS);
	send_text(A.sock, rel, "hello bob");
	wait_newest(B.sock, rel, "hello bob");
	r = td_must(A.sock, "device.pair.begin", "{\"proton\":\"%s\"}", pa);
	snprintf(code, sizeof code, "%s", td_str(td_res(r), "code"));
	cJSON_Delete(r);
	r = join_until(&J, code);
	ck_assert_msg(td_res(r) != NULL, "join: %s", td_err_name(r));
	cJSON_Delete(r);
}

START_TEST(test_revoke_with_roll)
{
	char pa[33], pb[33], rel[33], dev_j[33], params[200], ipk_old[65], ipk_new[65];
	cJSON *r, *ev;

	alice_bob_tablet(pa, pb, rel);
	r = td_must(B.sock, "relationship.show", "{\"relationship\":\"%s\"}", rel);
	snprintf(ipk_old, sizeof ipk_old, "%s", td_str(td_res(r), "remote_ipk"));
	cJSON_Delete(r);
	other_device(&A, pa, dev_j);
	send_text(A.sock, rel, "now with a tablet");
	wait_newest(B.sock, rel, "now with a tablet");
	r = td_must(J.sock, "daemon.status", NULL);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(td_res(r), "read_only_protons")), 0);
	cJSON_Delete(r);

	/* refused: alice's own device; a device not in the circle */
	{
		char self[33];
		other_device(&J, pa, self);  /* J's other device is A */
		r = td_callf(A.sock, "device.revoke", "{\"proton\":\"%s\",\"device\":\"%s\"}", pa, self);
		ck_assert_str_eq(td_err_name(r), "invalid_argument");
		cJSON_Delete(r);
	}

	/* the revocation with the roll, written in one go right after a
	 * message.send (one relmd turn, most likely: the copy for J it holds
	 * must not go out once J has left the circle) */
	{
		struct td_conn c;
		char lines[600];
		cJSON *r1;
		ck_assert_int_eq(td_conn_open(&c, A.sock), 0);
		snprintf(lines, sizeof lines,
		         "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"message.send\",\"params\":"
		         "{\"relationship\":\"%s\",\"body\":\"just before\"}}\n"
		         "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"device.revoke\",\"params\":"
		         "{\"proton\":\"%s\",\"device\":\"%s\",\"rotate_identity\":true}}",
		         rel, pa, dev_j);
		ck_assert_int_eq(td_conn_send(&c, lines), 0);
		r1 = td_conn_read(&c, WAIT_MS);
		r = td_conn_read(&c, WAIT_MS);
		td_conn_close(&c);
		ck_assert_msg(td_res(r1) != NULL, "message.send: %s", td_err_name(r1));
		ck_assert_msg(td_res(r) != NULL, "device.revoke: %s", td_err_name(r));
		cJSON_Delete(r1);
	}
	ck_assert_int_ge((int)cJSON_GetObjectItemCaseSensitive(td_res(r), "epoch")->valuedouble, 3);
	snprintf(ipk_new, sizeof ipk_new, "%s", td_str(td_res(r), "ipk"));
	cJSON_Delete(r);
	{
		struct msg_want w = { B.sock, rel, "body", "just before" };
		ck_assert_msg(td_wait(has_msg, &w, WAIT_MS), "\"just before\" never reached bob");
	}
	ck_assert_int_eq((int)strlen(ipk_new), 64);
	ck_assert_str_ne(ipk_new, ipk_old);
	r = td_must(A.sock, "device.list", "{\"proton\":\"%s\"}", pa);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(td_res(r), "devices")), 1);
	cJSON_Delete(r);

	/* bob pins the new key */
	snprintf(params, sizeof params, "{\"relationship\":\"%s\"}", rel);
	wait_value(B.sock, "relationship.show", params, "remote_ipk", ipk_new, "bob's new pin");
	ev = last_event(B.sock, "identity.rotated");
	ck_assert_ptr_nonnull(ev);
	ck_assert_str_eq(td_str(ev, "ipk"), ipk_new);
	ck_assert_str_eq(td_str(ev, "relationship"), rel);
	cJSON_Delete(ev);
	ck_assert_ptr_null(last_event(B.sock, "identity.conflict"));

	/* J learnt it was removed (the circle A sent it once, signed by the
	 * key J knew) */
	wait_value(J.sock, "daemon.status", "{}", "read_only_protons[]", pa, "J's read-only proton");
	r = td_callf(J.sock, "invite.create", "{\"proton\":\"%s\"}", pa);
	ck_assert_str_eq(td_err_name(r), "read_only");
	cJSON_Delete(r);
	ev = last_event(J.sock, "device.removed");
	ck_assert_ptr_nonnull(ev);
	ck_assert_str_eq(td_str(ev, "proton"), pa);
	cJSON_Delete(ev);
	r = td_must(A.sock, "daemon.status", NULL);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(td_res(r), "read_only_protons")), 0);
	cJSON_Delete(r);

	/* A and bob go on */
	send_text(A.sock, rel, "after the roll");
	wait_newest(B.sock, rel, "after the roll");
	send_text(B.sock, rel, "got it");
	wait_newest(A.sock, rel, "got it");

	/* a second roll, through relmctl (identity rotate PROTON): bob pins
	 * it too (its statement has sequence 2) */
	{
		char prog[512], out[4096], err[1024], ipk2[65];
		char *argv[] = { prog, "--socket", A.sock, "--json", "identity", "rotate", pa, NULL };
		td_prog(prog, sizeof prog, "relmctl");
		ck_assert_int_eq(td_run(argv, out, sizeof out, err, sizeof err, 10000), 0);
		r = cJSON_Parse(out);
		ck_assert_ptr_nonnull(r);
		snprintf(ipk2, sizeof ipk2, "%s", td_str(r, "ipk"));
		cJSON_Delete(r);
		ck_assert_str_ne(ipk2, ipk_new);
		wait_value(B.sock, "relationship.show", params, "remote_ipk", ipk2, "bob's second pin");
		ck_assert_ptr_null(last_event(B.sock, "identity.rejected"));
	}
	/* nothing A read was nobody's (relmd stops reading the removed
	 * device's sessions; whether anything would have come there depends
	 * on timing, so this does not prove that part) */
	ck_assert_ptr_null(last_event(A.sock, "envelope.undecryptable"));
	/* relmctl device revoke on the removed device: read_only */
	{
		char prog[512], out[4096], err[1024];
		char *argv[] = { prog, "--socket", J.sock, "device", "revoke", pa, dev_j, "--rotate-identity", NULL };
		td_prog(prog, sizeof prog, "relmctl");
		ck_assert_int_eq(td_run(argv, out, sizeof out, err, sizeof err, 10000), 1);
		ck_assert_msg(strstr(err, "read_only") != NULL, "relmctl said: %s", err);
	}
}
END_TEST

/* td_wait predicate: sock read bob's last message without opening it —
 * kept pending (its parent node, built on the heal's, is one it cannot
 * know), or reported undecryptable. */
static int unopened(void *arg)
{
	struct msg_want *w = arg;
	cJSON *r = td_callf(w->sock, "relationship.show", "{\"relationship\":\"%s\"}", w->rel);
	const cJSON *tree = cJSON_GetObjectItemCaseSensitive(td_res(r), "tree");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(tree, "pending");
	cJSON *ev = last_event(w->sock, "envelope.undecryptable");
	int ok = (cJSON_IsNumber(p) && p->valuedouble >= 1) ||
	         (ev && td_str(ev, "relationship") && !strcmp(td_str(ev, "relationship"), w->rel));
	cJSON_Delete(ev);
	cJSON_Delete(r);
	return ok;
}

/* The heal through relmd (heal delay 1 to 2 s): alice's tablet, which
 * holds the relationship with bob from the bulk state, is revoked without
 * a roll; alice's relmd heals the relationship until bob replied on a
 * heal's node, and the tablet — still reading the relationship's mailbox
 * — opens nothing bob sends from then on, while alice reads all of it. */
START_TEST(test_revoke_heal_relmd)
{
	char pa[33], pb[33], rel[33], dev_j[33], ipk[65];
	struct msg_want w;
	int ids, devs;
	cJSON *r;

	td_stop(&A.pid, SIGTERM, 5000);
	td_stop(&J.pid, SIGTERM, 5000);
	snprintf(A.heal_delay, sizeof A.heal_delay, "1:2");
	snprintf(J.heal_delay, sizeof J.heal_delay, "1:2");
	ck_assert_int_eq(td_relmd_restart(&A), 0);
	ck_assert_int_eq(td_relmd_restart(&J), 0);
	alice_bob_tablet(pa, pb, rel);
	w = (struct msg_want){ J.sock, rel, "body", "hello bob" };
	ck_assert_msg(td_wait(has_msg, &w, WAIT_MS), "the tablet never got the relationship");
	send_text(J.sock, rel, "from the tablet");
	wait_newest(B.sock, rel, "from the tablet");
	other_device(&A, pa, dev_j);
	/* what bob sees of alice's devices before: his pin, his events */
	r = td_must(B.sock, "relationship.show", "{\"relationship\":\"%s\"}", rel);
	snprintf(ipk, sizeof ipk, "%s", td_str(td_res(r), "remote_ipk"));
	cJSON_Delete(r);
	ck_assert_int_eq((int)strlen(ipk), 64);
	ids = count_events(B.sock, "identity.");
	devs = count_events(B.sock, "device.");

	r = td_must(A.sock, "device.revoke", "{\"proton\":\"%s\",\"device\":\"%s\"}", pa, dev_j);
	cJSON_Delete(r);
	wait_value(J.sock, "daemon.status", "{}", "read_only_protons[]", pa, "the tablet's read-only proton");
	r = td_callf(J.sock, "message.send", "{\"relationship\":\"%s\",\"body\":\"x\"}", rel);
	ck_assert_str_eq(td_err_name(r), "read_only");
	cJSON_Delete(r);

	/* The heal reaches bob within 2 s.  His reply may build on the node
	 * the tablet knows rather than on the heal's (bob's fork rule chose
	 * the older branch): alice then heals again, on his reply
	 * (proto/revocation.md §2).  Bob replies to each heal until no new
	 * one comes. */
	w = (struct msg_want){ B.sock, rel, "kind", "heal" };
	ck_assert_msg(td_wait(has_msg, &w, WAIT_MS), "no heal reached bob");
	for (int k = 0, heals = 0; ; k++) {
		char body[32];
		int now = count_kind(B.sock, rel, "heal");
		ck_assert_msg(k < 6, "still healing after %d replies", k);
		if (now == heals)
			break;
		heals = now;
		snprintf(body, sizeof body, "reply %d", k);
		send_text(B.sock, rel, body);
		wait_newest(A.sock, rel, body);
		td_sleep_ms(3000);           /* past the heal delay: a new heal would be there */
	}
	send_text(B.sock, rel, "a secret for alice");
	wait_newest(A.sock, rel, "a secret for alice");
	w = (struct msg_want){ J.sock, rel, NULL, NULL };
	ck_assert_msg(td_wait(unopened, &w, WAIT_MS), "the tablet never read bob's message");
	td_sleep_ms(500);
	ck_assert(!holds(J.sock, rel, "body", "a secret for alice"));
	ck_assert(holds(J.sock, rel, "body", "from the tablet"));
	/* alice goes on with bob */
	send_text(A.sock, rel, "thanks");
	wait_newest(B.sock, rel, "thanks");
	/* bob saw heals, and nothing of alice's devices: the same key pinned,
	 * no identity.* or device.* event since the revocation */
	r = td_must(B.sock, "relationship.show", "{\"relationship\":\"%s\"}", rel);
	ck_assert_str_eq(td_str(td_res(r), "remote_ipk"), ipk);
	cJSON_Delete(r);
	ck_assert_int_eq(count_events(B.sock, "identity."), ids);
	ck_assert_int_eq(count_events(B.sock, "device."), devs);
	ck_assert_int_eq(ids, 0);
}
END_TEST

/* A clone (proto/revocation.md §4): alice's store copied while her relmd
 * was stopped, and the copy run as a second relmd outside the circle.
 * Once bob has replied, the clone answers on a ratchet key of its own;
 * alice reads bob's receipt for it, which nothing she holds explains,
 * and after her clone window (relmd --clone-window 1) raises
 * clone.suspected on the relationship.  Without the clone's send she
 * raises nothing. */
START_TEST(test_clone_relmd)
{
	char pa[33], pb[33], rel[33], cmd[700];
	struct td_relmd C;
	cJSON *ev;

	td_relate(A.sock, B.sock, pa, pb, rel, WAIT_MS);
	send_text(A.sock, rel, "hello bob");
	wait_newest(B.sock, rel, "hello bob");
	send_text(B.sock, rel, "hello alice");
	wait_newest(A.sock, rel, "hello alice");

	/* the copy, taken while alice's relmd is stopped */
	td_stop(&A.pid, SIGTERM, 5000);
	snprintf(cmd, sizeof cmd, "cp -a '%s' '%s/aliceclone'", A.state, dir);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(A.clone_window, sizeof A.clone_window, "1");
	ck_assert_int_eq(td_relmd_restart(&A), 0);
	ck_assert_int_eq(td_relmd_start(&C, dir, "aliceclone", mb.port), 0);

	/* bob speaks; only the clone answers, on a new ratchet key */
	send_text(B.sock, rel, "are you there?");
	wait_newest(A.sock, rel, "are you there?");
	wait_newest(C.sock, rel, "are you there?");
	td_sleep_ms(1500);
	ck_assert_ptr_null(last_event(A.sock, "clone.suspected"));   /* nothing to explain yet */
	send_text(C.sock, rel, "it is me, the copy");
	wait_newest(B.sock, rel, "it is me, the copy");
	/* bob's receipt reaches alice too; one window later she suspects */
	long long until = td_now_ms() + WAIT_MS;
	while (!(ev = last_event(A.sock, "clone.suspected")) && td_now_ms() < until)
		td_sleep_ms(200);
	ck_assert_msg(ev != NULL, "alice never raised clone.suspected");
	ck_assert_str_eq(td_str(ev, "relationship"), rel);
	ck_assert_int_eq((int)strlen(td_str(ev, "node")), 32);
	cJSON_Delete(ev);
	/* bob saw one peer all along */
	ev = td_must(B.sock, "relationship.list", "{\"proton\":\"%s\"}", pb);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(td_res(ev), "relationships")), 1);
	cJSON_Delete(ev);
}
END_TEST

/* Two successors of one key (proto/revocation.md §3.2): alice's store is
 * copied while her relmd is stopped, and both copies roll the identity
 * key, each to a key of its own.  Bob accepts the first statement
 * (identity.rotated), then the second is a conflict: identity.conflict,
 * and bob's relationship back on alice's old key until identity.accept
 * pins the one bob chooses.  A key that is neither is not_found. */
START_TEST(test_conflict_relmd)
{
	char pa[33], pb[33], rel[33], cmd[700], old[65], k1[65], k2[65];
	struct td_relmd C;
	cJSON *r, *ev;

	td_relate(A.sock, B.sock, pa, pb, rel, WAIT_MS);
	send_text(A.sock, rel, "hello bob");
	wait_newest(B.sock, rel, "hello bob");
	r = td_must(B.sock, "relationship.show", "{\"relationship\":\"%s\"}", rel);
	snprintf(old, sizeof old, "%s", td_str(td_res(r), "remote_ipk"));
	cJSON_Delete(r);
	td_stop(&A.pid, SIGTERM, 5000);
	snprintf(cmd, sizeof cmd, "cp -a '%s' '%s/aliceclone'", A.state, dir);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(td_relmd_restart(&A), 0);
	ck_assert_int_eq(td_relmd_start(&C, dir, "aliceclone", mb.port), 0);

	r = td_must(A.sock, "identity.rotate", "{\"proton\":\"%s\"}", pa);
	snprintf(k1, sizeof k1, "%s", td_str(td_res(r), "ipk"));
	cJSON_Delete(r);
	snprintf(cmd, sizeof cmd, "{\"relationship\":\"%s\"}", rel);
	wait_value(B.sock, "relationship.show", cmd, "remote_ipk", k1, "bob pinning the first successor");
	r = td_must(C.sock, "identity.rotate", "{\"proton\":\"%s\"}", pa);
	snprintf(k2, sizeof k2, "%s", td_str(td_res(r), "ipk"));
	cJSON_Delete(r);
	ck_assert_str_ne(k1, k2);
	long long until = td_now_ms() + WAIT_MS;
	while (!(ev = last_event(B.sock, "identity.conflict")) && td_now_ms() < until)
		td_sleep_ms(200);
	ck_assert_msg(ev != NULL, "bob never raised identity.conflict");
	ck_assert_str_eq(td_str(ev, "relationship"), rel);
	ck_assert_str_eq(td_str(ev, "ipk"), k2);
	cJSON_Delete(ev);
	/* back on the old key until bob decides */
	r = td_must(B.sock, "relationship.show", "{\"relationship\":\"%s\"}", rel);
	ck_assert_str_eq(td_str(td_res(r), "remote_ipk"), old);
	cJSON_Delete(r);
	r = td_callf(B.sock, "identity.accept", "{\"relationship\":\"%s\",\"ipk\":\"%s\"}", rel, old);
	ck_assert_str_eq(td_err_name(r), "not_found");
	cJSON_Delete(r);
	r = td_must(B.sock, "identity.accept", "{\"relationship\":\"%s\",\"ipk\":\"%s\"}", rel, k2);
	ck_assert_str_eq(td_str(td_res(r), "ipk"), k2);
	cJSON_Delete(r);
	r = td_must(B.sock, "relationship.show", "{\"relationship\":\"%s\"}", rel);
	ck_assert_str_eq(td_str(td_res(r), "remote_ipk"), k2);
	cJSON_Delete(r);
	ev = last_event(B.sock, "identity.rotated");
	ck_assert_ptr_nonnull(ev);
	ck_assert_str_eq(td_str(ev, "ipk"), k2);
	cJSON_Delete(ev);
	/* decided: accepting again is no conflict */
	r = td_callf(B.sock, "identity.accept", "{\"relationship\":\"%s\",\"ipk\":\"%s\"}", rel, k1);
	ck_assert_str_eq(td_err_name(r), "invalid_argument");
	cJSON_Delete(r);
}
END_TEST

/* With alice's relmd (d) stopped: her store opened in-process with
 * lib/core, and TU_FORGERIES forged successor statements (util_engine.h,
 * made from the genuine statement her history holds) sent in rel_hex
 * through the engine as an identity message is — tracked, its envelope a
 * row of her outbox — each step written to her store (effects but the
 * history row, state) in one commit, as lib/core writes a step.  relmd posts them when it starts
 * again.  codes: the identity.rejected reason each must meet. */
static void forge_in_store(struct td_relmd *d, const char *rel_hex, const char *codes[TU_FORGERIES])
{
	char path[300], err[256] = "", hex[RELM_SUCCESSOR_HEX + 1];
	struct relm_store_opts o = { .errbuf = err, .errlen = sizeof err };
	struct relm_store *st = NULL;
	struct relm_core *core = NULL;
	struct relm_rel *rel = NULL;
	struct relm_env env;
	uint8_t rid[16], genuine[RELM_SUCCESSOR_LEN];
	uint64_t clk = (uint64_t)td_now_ms();

	snprintf(path, sizeof path, "%s/relm.db", d->state);
	ck_assert_int_eq(relm_unhex(rid, sizeof rid, rel_hex, 32), 0);
	tu_env_init_stream(&env, &clk, 77);
	ck_assert_msg(relm_store_open(&st, path, &o) == 0, "store %s: %s", path, err);
	ck_assert_int_eq(relm_core_new(&core, st, &env, d->mailbox, RELM_MODE_TREE), 0);
	tu_sent_statement(st, rid, genuine);
	ck_assert_int_eq(relm_core_rel_load(core, rid, &rel), 0);
	for (int k = 0; k < TU_FORGERIES; k++) {
		struct relm_effects fx;
		uint8_t *blob = NULL;
		size_t blen = 0, len;
		int code;

		len = tu_forged_statement(k, genuine, hex, &code);
		codes[k] = relm_errname(code);
		relm_effects_init(&fx);
		ck_assert_int_eq(tu_send_forged_identity(rel, &env, hex, len, &fx), 0);
		/* not into her history: the forger is one who holds her state
		 * (a removed device, a clone), not her — and her own next roll
		 * numbers its statement by those her history holds (§3.3) */
		for (size_t i = 0; i < fx.n; i++)
			if (fx.v[i].type == RELM_FX_DELIVER)
				fx.v[i].type = RELM_FX_NONE;
		ck_assert_int_eq(relm_rel_encode(rel, &blob, &blen), 0);
		ck_assert_int_eq(relm_store_begin(st), 0);
		ck_assert_int_eq(relm_core_apply(st, rid, rel->remote_mailbox, &fx, clk), 0);
		ck_assert_int_eq(relm_store_rel_set_state(st, rid, blob, blen, clk), 0);
		ck_assert_int_eq(relm_store_commit(st), 0);
		relm_rel_blob_free(blob, blen);
		relm_effects_clear(&fx);
	}
	relm_rel_free(rel);
	relm_core_free(core);
	relm_store_close(st);
	tu_env_free(&env);
}

struct reasons {
	char v[TU_FORGERIES + 4][32];
	int n;
};

static void reason_cb(const cJSON *params, void *ctx)
{
	struct reasons *r = ctx;
	if (r->n < (int)(sizeof r->v / sizeof r->v[0]))
		snprintf(r->v[r->n++], sizeof r->v[0], "%s", td_str(params, "reason") ? td_str(params, "reason") : "");
}

struct count_want {
	const char *sock, *prefix;
	int n;
};

static int count_reached(void *arg)
{
	struct count_want *w = arg;
	return count_events(w->sock, w->prefix) >= w->n;
}

/* Forged successor statements through the programs (the issue's
 * integration paragraph): after a genuine roll bob pinned, alice's
 * relmd is stopped, her store made to hold envelopes carrying forged
 * identity payloads (an old key bob never pinned, a bad signature of the
 * old key, of the new key, a bad length, the genuine statement again),
 * and her relmd started again, which posts them.  Bob's relmd reads each
 * (they are authentic envelopes) and refuses each statement:
 * identity.rejected with the reason, his pin kept, no identity.rotated
 * or identity.conflict.  A genuine roll after them still works. */
START_TEST(test_forged_successor_relmd)
{
	char pa[33], pb[33], rel[33], k1[65], k2[65], params[64];
	const char *codes[TU_FORGERIES];
	struct reasons got;
	struct count_want cw;
	cJSON *r;

	td_relate(A.sock, B.sock, pa, pb, rel, WAIT_MS);
	send_text(A.sock, rel, "hello bob");
	wait_newest(B.sock, rel, "hello bob");
	snprintf(params, sizeof params, "{\"relationship\":\"%s\"}", rel);
	r = td_must(A.sock, "identity.rotate", "{\"proton\":\"%s\"}", pa);
	snprintf(k1, sizeof k1, "%s", td_str(td_res(r), "ipk"));
	cJSON_Delete(r);
	wait_value(B.sock, "relationship.show", params, "remote_ipk", k1, "bob pinning the genuine roll");
	ck_assert_int_eq(count_events(B.sock, "identity.rotated"), 1);

	td_stop(&A.pid, SIGTERM, 5000);
	forge_in_store(&A, rel, codes);
	ck_assert_int_eq(td_relmd_restart(&A), 0);
	cw = (struct count_want){ B.sock, "identity.rejected", TU_FORGERIES };
	ck_assert_msg(td_wait(count_reached, &cw, WAIT_MS), "bob rejected %d of %d forged statements",
	              count_events(B.sock, "identity.rejected"), TU_FORGERIES);
	td_sleep_ms(500);                /* nothing more comes of them */
	memset(&got, 0, sizeof got);
	cJSON_Delete(scan_events(B.sock, "identity.rejected", sizeof "identity.rejected", NULL,
	                         reason_cb, &got));
	ck_assert_int_eq(got.n, TU_FORGERIES);
	for (int k = 0; k < TU_FORGERIES; k++)
		ck_assert_msg(!strcmp(got.v[k], codes[k]), "forgery %d: rejected as %s, not %s", k, got.v[k],
		              codes[k]);
	r = td_must(B.sock, "relationship.show", "{\"relationship\":\"%s\"}", rel);
	ck_assert_str_eq(td_str(td_res(r), "remote_ipk"), k1);
	cJSON_Delete(r);
	ck_assert_int_eq(count_events(B.sock, "identity.rotated"), 1);
	ck_assert_int_eq(count_events(B.sock, "identity.conflict"), 0);
	/* bob's history has them as alice's identity messages: authentic
	 * envelopes, receipted, only their statements refused */
	ck_assert_int_eq(count_kind(B.sock, rel, "identity"), 1 + TU_FORGERIES);

	/* a genuine roll still works, and alice and bob go on */
	r = td_must(A.sock, "identity.rotate", "{\"proton\":\"%s\"}", pa);
	snprintf(k2, sizeof k2, "%s", td_str(td_res(r), "ipk"));
	cJSON_Delete(r);
	ck_assert_str_ne(k1, k2);
	wait_value(B.sock, "relationship.show", params, "remote_ipk", k2, "bob pinning the second roll");
	ck_assert_int_eq(count_events(B.sock, "identity.rotated"), 2);
	ck_assert_int_eq(count_events(B.sock, "identity.rejected"), TU_FORGERIES);
	send_text(A.sock, rel, "after the forgeries");
	wait_newest(B.sock, rel, "after the forgeries");
	send_text(B.sock, rel, "fine");
	wait_newest(A.sock, rel, "fine");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("revoke_relmd");
	TCase *tc = tcase_create("programs");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_revoke_with_roll);
	tcase_add_test(tc, test_revoke_heal_relmd);
	tcase_add_test(tc, test_clone_relmd);
	tcase_add_test(tc, test_conflict_relmd);
	tcase_add_test(tc, test_forged_successor_relmd);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * check_e2e.c — two real relmd processes and a real relm-mailbox on
 * loopback, driven through relmd's socket as a client would:
 *
 *   exchange     100 messages each way, each exactly once in both histories,
 *                every one delivered
 *   mbox_restart the same across a kill -9 of the mailbox, restarted on the
 *                same port and state mid-stream
 *   relmd_kill   kill -9 of either daemon mid-stream, restarted on its state
 *   unreachable  a relmd whose mailbox is not there keeps accepting sends
 *                (queued) and delivers when the mailbox comes
 *   events       subscribe sees message.received with the body; `since`
 *                replay after a restart gives the same seq numbers
 *   events_lazy  events published while nobody listened (kept without their
 *                line) replay complete and numbered; a replayed line is
 *                byte for byte the line a live subscriber got, before and
 *                after a restart, hostile bodies included
 *   replay_busy  a slow `since` replay of megabytes of such events while
 *                new ones keep coming: every seq once, in order, the same
 *                bytes as a live subscriber's
 *   idempotent   message.send with a client id twice → one message
 *
 * Programs come from $BUILD (util_daemon.h); every wait is bounded; every
 * child dies with the test (PR_SET_PDEATHSIG, and td_kill_all in teardown).
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "util_daemon.h"

enum {
	N_EACH     = 100,    /* messages each way */
	DELIVER_MS = 40000,  /* everything delivered within this (backoff ≤ 6.4 s at our outages) */
	LIST_LIMIT = 1000,
};

struct sent {
	char id[33];
	char *body;        /* malloc'd; freed with the test process */
};

struct world {
	char dir[200];
	struct td_mbox mb;
	struct td_relmd a, b;
	char pa[33], pb[33], rel[33];
	struct sent out_a[2 * N_EACH], out_b[2 * N_EACH];
	int na, nb;
};

static struct world W;

static void setup(void)
{
	memset(&W, 0, sizeof W);
}

static void teardown(void)
{
	td_kill_all();
}

#define copy_id td_copy_id

static int alice_has_rel(void *arg)
{
	(void)arg;
	cJSON *r = td_callf(W.a.sock, "relationship.list", "{\"proton\":\"%s\"}", W.pa);
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(td_res(r), "relationships");
	int ok = cJSON_GetArraySize(l) == 1 &&
		 !strcmp(td_str(cJSON_GetArrayItem(l, 0), "relationship"), W.rel);
	cJSON_Delete(r);
	return ok;
}

/* Protons, invite on alice, accepted by bob; waits until alice has the
 * relationship too (bob's initial envelope arrived). */
static void introduce(void)
{
	td_relate(W.a.sock, W.b.sock, W.pa, W.pb, W.rel, DELIVER_MS);
}

static void start_world(void)
{
	td_dir_new(W.dir, sizeof W.dir);
	ck_assert_int_eq(td_mbox_start(&W.mb, W.dir, "mbox", 0), 0);
	ck_assert_int_eq(td_relmd_start(&W.a, W.dir, "alice", W.mb.port), 0);
	ck_assert_int_eq(td_relmd_start(&W.b, W.dir, "bob", W.mb.port), 0);
	introduce();
}

/* Send one message from d; records its id.  want_status: NULL or the
 * status the reply must carry. */
static void send_body(struct td_relmd *d, struct sent *out, int *n, const char *body,
                      const char *want_status)
{
	struct sent *s = &out[*n];
	cJSON *r, *p = cJSON_CreateObject();
	char *pj;
	s->body = strdup(body);
	cJSON_AddStringToObject(p, "relationship", W.rel);
	cJSON_AddStringToObject(p, "body", body);
	pj = cJSON_PrintUnformatted(p);
	r = td_must(d->sock, "message.send", "%s", pj);
	free(pj);
	cJSON_Delete(p);
	copy_id(s->id, td_str(td_res(r), "message"));
	if (want_status)
		ck_assert_str_eq(td_str(td_res(r), "status"), want_status);
	cJSON_Delete(r);
	(*n)++;
}

static void send_one(struct td_relmd *d, struct sent *out, int *n, const char *who, int i,
                     const char *want_status)
{
	char body[64];
	snprintf(body, sizeof body, "%s says %d", who, i);
	send_body(d, out, n, body, want_status);
}

static void send_a(int i, const char *st) { send_one(&W.a, W.out_a, &W.na, "alice", i, st); }
static void send_b(int i, const char *st) { send_one(&W.b, W.out_b, &W.nb, "bob", i, st); }

static cJSON *history(struct td_relmd *d)
{
	return td_callf(d->sock, "message.list", "{\"relationship\":\"%s\",\"limit\":%d}", W.rel,
			LIST_LIMIT);
}

/* Check d's history against what was sent: every id of mine (direction
 * out) and theirs (direction in) exactly once with its body, nothing else
 * of kind text, no duplicate ids.  Returns 1 when it holds and, if
 * need_delivered, every outgoing one is delivered; 0 when something is
 * still missing; fails the test on a duplicate or a stranger. */
static int history_ok(struct td_relmd *d, const struct sent *mine, int nmine,
                      const struct sent *theirs, int ntheirs, int need_delivered, int final)
{
	cJSON *r = history(d);
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(td_res(r), "messages");
	const cJSON *m;
	int n = cJSON_GetArraySize(msgs), ok = 1, text = 0;
	int *seen_mine = calloc((size_t)nmine + 1, sizeof(int));
	int *seen_theirs = calloc((size_t)ntheirs + 1, sizeof(int));

	ck_assert_msg(msgs != NULL, "%s: message.list failed", d->name);
	ck_assert_int_lt(n, LIST_LIMIT);
	/* no id twice, whatever its kind */
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			ck_assert_msg(strcmp(td_str(cJSON_GetArrayItem(msgs, i), "message"),
					     td_str(cJSON_GetArrayItem(msgs, j), "message")) != 0,
				      "%s: message %s twice in the history", d->name,
				      td_str(cJSON_GetArrayItem(msgs, i), "message"));
	cJSON_ArrayForEach(m, msgs) {
		const char *id = td_str(m, "message"), *dir = td_str(m, "direction");
		int found = 0;
		if (strcmp(td_str(m, "kind"), "text") != 0)
			continue;
		text++;
		for (int i = 0; i < nmine && !found; i++)
			if (!strcmp(mine[i].id, id)) {
				found = 1;
				seen_mine[i]++;
				ck_assert_str_eq(dir, "out");
				ck_assert_str_eq(td_str(m, "body"), mine[i].body);
				ck_assert_str_eq(td_str(m, "origin"), "self");
				ck_assert_str_ne(td_str(m, "status"), "failed");
				if (need_delivered && strcmp(td_str(m, "status"), "delivered") != 0)
					ok = 0;
			}
		for (int i = 0; i < ntheirs && !found; i++)
			if (!strcmp(theirs[i].id, id)) {
				found = 1;
				seen_theirs[i]++;
				ck_assert_str_eq(dir, "in");
				ck_assert_str_eq(td_str(m, "body"), theirs[i].body);
				ck_assert_str_eq(td_str(m, "origin"), "remote");
			}
		ck_assert_msg(found, "%s: a text message nobody sent: %s \"%s\"", d->name, id,
			      td_str(m, "body"));
	}
	for (int i = 0; i < nmine; i++) {
		if (seen_mine[i] != 1) {
			ok = 0;
			if (final)
				fprintf(stderr, "%s: own message %d (%s) seen %d times\n", d->name, i,
					mine[i].id, seen_mine[i]);
		}
	}
	for (int i = 0; i < ntheirs; i++) {
		if (seen_theirs[i] != 1) {
			ok = 0;
			if (final)
				fprintf(stderr, "%s: received message %d (%s) seen %d times\n", d->name,
					i, theirs[i].id, seen_theirs[i]);
		}
	}
	if (final && need_delivered && ok == 0)
		fprintf(stderr, "%s: %d text messages in the history\n", d->name, text);
	free(seen_mine);
	free(seen_theirs);
	cJSON_Delete(r);
	return ok;
}

static int both_complete(void *arg)
{
	int final = arg != NULL;
	return history_ok(&W.a, W.out_a, W.na, W.out_b, W.nb, 1, final) &&
	       history_ok(&W.b, W.out_b, W.nb, W.out_a, W.na, 1, final);
}

static void wait_complete(void)
{
	long long t0 = td_now_ms();
	if (!td_wait(both_complete, NULL, DELIVER_MS)) {
		both_complete((void *)1);   /* say what is missing */
		ck_abort_msg("not every message delivered exactly once within %d ms (logs in %s)",
			     DELIVER_MS, W.dir);
	}
	/* quiescence: nothing may turn up twice a moment later either */
	td_sleep_ms(300);
	ck_assert(both_complete(NULL));
	if (getenv("RELM_TEST_DEBUG"))
		fprintf(stderr, "complete %lld ms after the last send\n", td_now_ms() - t0);
}

/* Both daemons still running, then SIGTERM: exit 0. */
static void stop_all_clean(void)
{
	ck_assert_msg(td_alive(W.a.pid) && td_alive(W.b.pid), "a daemon died (logs in %s)", W.dir);
	int st = td_stop(&W.a.pid, SIGTERM, 5000);
	ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "alice: exit status %d", st);
	st = td_stop(&W.b.pid, SIGTERM, 5000);
	ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "bob: exit status %d", st);
	td_stop(&W.mb.pid, SIGTERM, 5000);
}

/* ---- (a) ---- */

START_TEST(exchange)
{
	start_world();
	for (int i = 0; i < N_EACH; i++) {
		send_a(i, "queued");
		send_b(i, "queued");
	}
	wait_complete();
	stop_all_clean();
}
END_TEST

/* ---- (b) ---- */

START_TEST(mbox_restart)
{
	start_world();
	for (int i = 0; i < N_EACH / 2; i++) {
		send_a(i, NULL);
		send_b(i, NULL);
	}
	/* mid-stream: posts and deliveries are in flight */
	td_stop(&W.mb.pid, SIGKILL, 1000);
	for (int i = N_EACH / 2; i < 3 * N_EACH / 4; i++) {
		send_a(i, "queued");
		send_b(i, "queued");
	}
	td_sleep_ms(300);
	ck_assert_int_eq(td_mbox_restart(&W.mb), 0);
	for (int i = 3 * N_EACH / 4; i < N_EACH; i++) {
		send_a(i, NULL);
		send_b(i, NULL);
	}
	wait_complete();
	stop_all_clean();
}
END_TEST

/* ---- (c) ---- */

START_TEST(relmd_kill)
{
	start_world();
	for (int i = 0; i < 40; i++) {
		send_a(i, NULL);
		send_b(i, NULL);
	}
	/* bob dies while alice's messages stream in and his receipts go out */
	td_stop(&W.b.pid, SIGKILL, 1000);
	for (int i = 40; i < 60; i++)
		send_a(i, "queued");
	ck_assert_int_eq(td_relmd_restart(&W.b), 0);
	for (int i = 40; i < 70; i++)
		send_b(i, NULL);
	for (int i = 60; i < 80; i++)
		send_a(i, NULL);
	/* alice dies right after her sends were acknowledged: each of them
	 * was committed before its reply, so none may be lost */
	td_stop(&W.a.pid, SIGKILL, 1000);
	for (int i = 70; i < N_EACH; i++)
		send_b(i, NULL);
	ck_assert_int_eq(td_relmd_restart(&W.a), 0);
	for (int i = 80; i < N_EACH; i++)
		send_a(i, NULL);
	wait_complete();
	stop_all_clean();
}
END_TEST

/* ---- (d) ---- */

static int mailbox_connected(void *arg)
{
	struct td_relmd *d = arg;
	cJSON *r = td_call(d->sock, "daemon.status", NULL);
	const cJSON *mb = cJSON_GetObjectItemCaseSensitive(td_res(r), "mailbox");
	int ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(mb, "connected"));
	cJSON_Delete(r);
	return ok;
}

START_TEST(unreachable)
{
	int port;
	cJSON *r;

	td_dir_new(W.dir, sizeof W.dir);
	/* learn a free port from a first run, then take the mailbox away */
	ck_assert_int_eq(td_mbox_start(&W.mb, W.dir, "mbox", 0), 0);
	port = W.mb.port;
	td_stop(&W.mb.pid, SIGTERM, 5000);
	ck_assert_int_eq(td_relmd_start(&W.a, W.dir, "alice", port), 0);
	ck_assert_int_eq(td_relmd_start(&W.b, W.dir, "bob", port), 0);
	ck_assert(!mailbox_connected(&W.a));
	/* everything local works without a mailbox ... */
	r = td_must(W.a.sock, "proton.create", "{\"label\":\"alice\"}");
	copy_id(W.pa, td_str(td_res(r), "proton"));
	cJSON_Delete(r);
	r = td_must(W.b.sock, "proton.create", "{\"label\":\"bob\"}");
	copy_id(W.pb, td_str(td_res(r), "proton"));
	cJSON_Delete(r);
	r = td_must(W.a.sock, "invite.create", "{\"proton\":\"%s\"}", W.pa);
	char *inv = strdup(td_str(td_res(r), "invite"));
	cJSON_Delete(r);
	r = td_must(W.b.sock, "invite.accept", "{\"proton\":\"%s\",\"invite\":\"%s\"}", W.pb, inv);
	free(inv);
	copy_id(W.rel, td_str(td_res(r), "relationship"));
	cJSON_Delete(r);
	/* ... and bob can send before anyone heard of him: queued */
	for (int i = 0; i < 10; i++)
		send_b(i, "queued");
	td_sleep_ms(500);
	r = history(&W.b);
	const cJSON *m;
	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(td_res(r), "messages"))
		ck_assert_str_eq(td_str(m, "status"), "queued");
	cJSON_Delete(r);
	/* the mailbox comes (same port, same state) */
	ck_assert_int_eq(td_mbox_restart(&W.mb), 0);
	ck_assert_msg(td_wait(mailbox_connected, &W.b, DELIVER_MS), "bob never reconnected");
	ck_assert_msg(td_wait(alice_has_rel, NULL, DELIVER_MS), "alice never got the acceptance");
	for (int i = 0; i < 10; i++)
		send_a(i, "queued");
	wait_complete();
	/* and once more: stop it while both keep sending */
	td_stop(&W.mb.pid, SIGTERM, 5000);
	for (int i = 10; i < 20; i++) {
		send_a(i, "queued");
		send_b(i, "queued");
	}
	td_sleep_ms(1000);
	ck_assert_int_eq(td_mbox_restart(&W.mb), 0);
	wait_complete();
	stop_all_clean();
}
END_TEST

/* ---- (e) ---- */

struct rx {
	char id[33];
	double seq;
};

/* Read message.received events from c until every one of alice's first n
 * messages was seen; their seqs into rx.  Fails on a duplicate. */
static void collect_received(struct td_conn *c, cJSON *early, struct rx *rx, int n)
{
	int got = 0;
	long long end = td_now_ms() + DELIVER_MS;
	cJSON *ev = NULL;
	int early_i = 0;

	for (int i = 0; i < n; i++)
		rx[i].seq = -1;
	while (got < n) {
		if (early && early_i < cJSON_GetArraySize(early))
			ev = cJSON_Duplicate(cJSON_GetArrayItem(early, early_i++), 1);
		else
			ev = td_conn_read(c, (int)(end - td_now_ms() > 0 ? end - td_now_ms() : 1));
		ck_assert_msg(ev != NULL, "only %d of %d message.received events", got, n);
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(ev, "params");
		if (!strcmp(td_str(ev, "method"), "event") && !strcmp(td_str(p, "type"), "message.received")) {
			const char *id = td_str(p, "message");
			int k;
			for (k = 0; k < n; k++)
				if (!strcmp(W.out_a[k].id, id))
					break;
			if (k < n) {
				ck_assert_msg(rx[k].seq < 0, "message %s received twice", id);
				ck_assert_str_eq(td_str(p, "relationship"), W.rel);
				ck_assert_str_eq(td_str(p, "body"), W.out_a[k].body);
				ck_assert_str_eq(td_str(p, "kind"), "text");
				ck_assert_str_eq(td_str(p, "origin"), "remote");
				ck_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(p, "sent_ts")));
				memcpy(rx[k].id, id, 33);
				rx[k].seq = cJSON_GetObjectItemCaseSensitive(p, "seq")->valuedouble;
				got++;
			}
		}
		cJSON_Delete(ev);
	}
}

/* Replayed from the start: proton.created first (the proton made on this
 * side), then relationship.created, the first event that names the
 * relationship, naming the proton, the remote IPK and the label on each
 * side. */
static void check_created(struct td_relmd *d, const char *proton, const char *label)
{
	struct td_conn c;
	cJSON *early = cJSON_CreateArray(), *r, *ev;
	ck_assert_int_eq(td_conn_open(&c, d->sock), 0);
	r = td_conn_call(&c, "subscribe", "{\"since\":0}", early);
	ck_assert_ptr_nonnull(td_res(r));
	cJSON_Delete(r);
	ev = cJSON_GetArraySize(early) ? cJSON_DetachItemFromArray(early, 0) : td_conn_read(&c, 5000);
	ck_assert_msg(ev != NULL, "%s: no proton.created", d->name);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(ev, "params");
	ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(p, "seq")->valuedouble, 1);
	ck_assert_str_eq(td_str(p, "type"), "proton.created");
	ck_assert_str_eq(td_str(p, "proton"), proton);
	cJSON_Delete(ev);
	ev = cJSON_GetArraySize(early) ? cJSON_DetachItemFromArray(early, 0) : td_conn_read(&c, 5000);
	ck_assert_msg(ev != NULL, "%s: no relationship.created", d->name);
	p = cJSON_GetObjectItemCaseSensitive(ev, "params");
	ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(p, "seq")->valuedouble, 2);
	ck_assert_str_eq(td_str(p, "type"), "relationship.created");
	ck_assert_str_eq(td_str(p, "relationship"), W.rel);
	ck_assert_str_eq(td_str(p, "proton"), proton);
	ck_assert_int_eq((int)strlen(td_str(p, "remote_ipk")), 64);
	ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(p, "label")));
	ck_assert_str_eq(td_str(p, "label"), label);
	cJSON_Delete(ev);
	cJSON_Delete(early);
	td_conn_close(&c);
}

START_TEST(events)
{
	enum { N = 5 };
	struct td_conn sb, sa;
	struct rx rx[N], rx2[N];
	cJSON *r, *early_b = cJSON_CreateArray(), *early_a = cJSON_CreateArray();
	double min_seq = 1e18;

	start_world();
	ck_assert_int_eq(td_conn_open(&sb, W.b.sock), 0);
	r = td_conn_call(&sb, "subscribe", "{}", early_b);
	ck_assert_ptr_nonnull(td_res(r));
	cJSON_Delete(r);
	ck_assert_int_eq(td_conn_open(&sa, W.a.sock), 0);
	r = td_conn_call(&sa, "subscribe", "{\"events\":[\"message.status\",\"message.sent\"]}", early_a);
	ck_assert_ptr_nonnull(td_res(r));
	cJSON_Delete(r);
	for (int i = 0; i < N; i++)
		send_a(i, "queued");
	collect_received(&sb, early_b, rx, N);
	for (int i = 0; i < N; i++)
		if (rx[i].seq < min_seq)
			min_seq = rx[i].seq;

	/* alice's side: message.sent with the body, then statuses up to
	 * delivered, for each of her messages */
	{
		int sent[N] = { 0 }, delivered[N] = { 0 }, nd = 0, ei = 0;
		long long end = td_now_ms() + DELIVER_MS;
		while (nd < N) {
			cJSON *ev = ei < cJSON_GetArraySize(early_a)
				    ? cJSON_Duplicate(cJSON_GetArrayItem(early_a, ei++), 1)
				    : td_conn_read(&sa, (int)(end - td_now_ms() > 0 ? end - td_now_ms() : 1));
			ck_assert_msg(ev != NULL, "alice: only %d of %d delivered statuses", nd, N);
			const cJSON *p = cJSON_GetObjectItemCaseSensitive(ev, "params");
			const char *type = td_str(p, "type");
			int k;
			for (k = 0; k < N; k++)
				if (!strcmp(W.out_a[k].id, td_str(p, "message")))
					break;
			ck_assert_msg(strcmp(type, "message.received") != 0, "filter ignored");
			if (k < N && !strcmp(type, "message.sent")) {
				ck_assert_str_eq(td_str(p, "body"), W.out_a[k].body);
				ck_assert_str_eq(td_str(p, "origin"), "self");
				sent[k]++;
			}
			if (k < N && !strcmp(type, "message.status")) {
				ck_assert_str_eq(td_str(p, "relationship"), W.rel);
				ck_assert_str_ne(td_str(p, "status"), "failed");
				if (!strcmp(td_str(p, "status"), "delivered")) {
					ck_assert_int_eq(delivered[k], 0);
					delivered[k] = 1;
					nd++;
				}
			}
			cJSON_Delete(ev);
		}
		for (int k = 0; k < N; k++)
			ck_assert_int_eq(sent[k], 1);
	}
	td_conn_close(&sa);
	td_conn_close(&sb);

	/* restart bob (clean stop), then replay from before the first one */
	int st = td_stop(&W.b.pid, SIGTERM, 5000);
	ck_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_int_eq(td_relmd_restart(&W.b), 0);
	ck_assert_int_eq(td_conn_open(&sb, W.b.sock), 0);
	char params[100];
	snprintf(params, sizeof params, "{\"since\":%.0f,\"events\":[\"message.received\"]}", min_seq - 1);
	cJSON *early2 = cJSON_CreateArray();
	r = td_conn_call(&sb, "subscribe", params, early2);
	ck_assert_ptr_nonnull(td_res(r));
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(td_res(r), "gap")));
	ck_assert_int_ge((int)cJSON_GetObjectItemCaseSensitive(td_res(r), "replay")->valuedouble, N);
	cJSON_Delete(r);
	collect_received(&sb, early2, rx2, N);
	for (int i = 0; i < N; i++)
		ck_assert_msg(rx2[i].seq == rx[i].seq, "message %d: seq %.0f before the restart, %.0f after",
			      i, rx[i].seq, rx2[i].seq);
	td_conn_close(&sb);
	check_created(&W.a, W.pa, "");
	check_created(&W.b, W.pb, "alice");
	cJSON_Delete(early_a);
	cJSON_Delete(early_b);
	cJSON_Delete(early2);
	stop_all_clean();
}
END_TEST

/* ---- (e2) events nobody listened to ---- */

enum { EVMAX = 1024 };

/* Event lines of one connection by seq (line[0] unused), and the last seq
 * it got: each must come after the one before. */
struct evlog {
	char *line[EVMAX];
	double last;
};

/* seq and type of an event line; 0 for anything else (a reply) */
static int line_event(const char *line, double *seq, char *type, size_t tcap)
{
	cJSON *j = cJSON_Parse(line);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "params");
	int ok = j && !strcmp(td_str(j, "method"), "event") &&
		 cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(p, "seq"));
	ck_assert_msg(j != NULL, "a line that is not JSON: %s", line);
	if (ok) {
		*seq = cJSON_GetObjectItemCaseSensitive(p, "seq")->valuedouble;
		snprintf(type, tcap, "%s", td_str(p, "type"));
	}
	/* the line is what cJSON prints for it: the writer of the frequent
	 * events (daemon/api/events.c) escapes and prints numbers as cJSON does */
	char *again = cJSON_PrintUnformatted(j);
	ck_assert_msg(!strcmp(again, line), "not cJSON's bytes:\n%s\n%s", line, again);
	free(again);
	cJSON_Delete(j);
	return ok;
}

/* Store an event line by seq (each seq once, in increasing order). */
static void log_line(struct evlog *log, char *line)
{
	double seq;
	char type[64];
	if (!line_event(line, &seq, type, sizeof type)) {
		free(line);
		return;
	}
	ck_assert_msg(seq >= 1 && seq < EVMAX, "seq %.0f", seq);
	ck_assert_msg(!log->line[(int)seq], "event %.0f twice", seq);
	ck_assert_msg(seq > log->last, "event %.0f after %.0f", seq, log->last);
	log->last = seq;
	log->line[(int)seq] = line;
}

/* subscribe on a fresh connection; events are logged by seq as they come */
static void sub_open(struct td_conn *c, const char *sock, const char *params, struct evlog *log,
                     double *seq, double *replay)
{
	char req[256];
	ck_assert_int_eq(td_conn_open(c, sock), 0);
	snprintf(req, sizeof req, "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"subscribe\",\"params\":%s}",
		 params);
	ck_assert_int_eq(td_conn_send(c, req), 0);
	for (;;) {
		char *line = td_conn_read_line(c, 5000);
		ck_assert_msg(line != NULL, "no reply to subscribe");
		cJSON *j = cJSON_Parse(line);
		const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "result");
		if (r) {
			ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r, "gap")));
			*seq = cJSON_GetObjectItemCaseSensitive(r, "seq")->valuedouble;
			if (replay)
				*replay = cJSON_GetObjectItemCaseSensitive(r, "replay")->valuedouble;
			cJSON_Delete(j);
			free(line);
			return;
		}
		cJSON_Delete(j);
		log_line(log, line);
	}
}

/* Read from c until log holds every seq in (from, to]. */
static void sub_collect(struct td_conn *c, struct evlog *log, double from, double to)
{
	for (int s = (int)from + 1; s <= (int)to; s++)
		while (!log->line[s]) {
			char *line = td_conn_read_line(c, DELIVER_MS);
			ck_assert_msg(line != NULL, "event %d never came (log in %s)", s, W.dir);
			log_line(log, line);
		}
}

static double event_seq_now(struct td_relmd *d)
{
	cJSON *r = td_must(d->sock, "daemon.status", "{}");
	double v = cJSON_GetObjectItemCaseSensitive(td_res(r), "event_seq")->valuedouble;
	cJSON_Delete(r);
	return v;
}

static void log_free(struct evlog *log)
{
	for (int i = 0; i < EVMAX; i++)
		free(log->line[i]);
	memset(log, 0, sizeof *log);
}

/* Replay everything from seq 0 on d (after a restart or not) into log;
 * returns the last seq. */
static double replay_all(struct td_relmd *d, struct evlog *log)
{
	struct td_conn c;
	double seq, replay;
	sub_open(&c, d->sock, "{\"since\":0}", log, &seq, &replay);
	ck_assert_double_eq(replay, seq);
	sub_collect(&c, log, 0, seq);
	td_conn_close(&c);
	return seq;
}

static const char *const lazy_bodies[] = {
	"plain",
	"quote \" backslash \\ slash / newline \n cr \r tab \t bs \b ff \f",
	"\x01\x02\x1f control and del \x7f",
	"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 and \xe2\x80\xa8 line separator </script>",
	"{\"seq\":1,\"type\":\"x\",\"ts\":2}",
};

START_TEST(events_lazy)
{
	enum { NB = sizeof lazy_bodies / sizeof *lazy_bodies };
	static struct evlog live_a, live_b, rep_a, rep_b, none, after;
	struct td_conn la, lb, idle;
	double la0, lb0, ea, eb, s;
	char *big = malloc(5001);

	for (int i = 0; i < 5000; i++)
		big[i] = (char)(' ' + i % 95);
	big[5000] = 0;
	start_world();
	/* (1) nobody listens to message events: bob's one subscriber wants
	 * only relationship.created, so every message event on either side
	 * is kept without its line */
	sub_open(&idle, W.b.sock, "{\"events\":[\"relationship.created\"]}", &none, &s, NULL);
	for (int i = 0; i < NB; i++)
		send_body(&W.a, W.out_a, &W.na, lazy_bodies[i], "queued");
	send_body(&W.a, W.out_a, &W.na, big, "queued");
	wait_complete();

	/* (2) live subscribers on both sides, then the same traffic both ways */
	sub_open(&la, W.a.sock, "{}", &live_a, &la0, NULL);
	sub_open(&lb, W.b.sock, "{}", &live_b, &lb0, NULL);
	for (int i = 0; i < NB; i++) {
		send_body(&W.a, W.out_a, &W.na, lazy_bodies[i], "queued");
		send_body(&W.b, W.out_b, &W.nb, lazy_bodies[i], "queued");
	}
	send_body(&W.b, W.out_b, &W.nb, big, "queued");
	wait_complete();
	ea = event_seq_now(&W.a);
	eb = event_seq_now(&W.b);
	ck_assert(ea > la0 && eb > lb0 && ea < EVMAX && eb < EVMAX);
	sub_collect(&la, &live_a, la0, ea);
	sub_collect(&lb, &live_b, lb0, eb);
	/* the filtered subscriber skipped every unbuilt event, and got nothing */
	{
		char *l = td_conn_read_line(&idle, 200);
		ck_assert_msg(l == NULL, "filtered subscriber got: %s", l ? l : "");
		for (int i = 0; i < EVMAX; i++)
			ck_assert_ptr_null(none.line[i]);
	}

	/* (3) a late subscriber replays everything: each seq once, no hole;
	 * what a live subscriber got, byte for byte; the events of (1) built
	 * now from the store, with their bodies */
	ck_assert_double_eq(replay_all(&W.a, &rep_a), ea);
	ck_assert_double_eq(replay_all(&W.b, &rep_b), eb);
	for (int i = (int)la0 + 1; i <= (int)ea; i++)
		ck_assert_msg(!strcmp(live_a.line[i], rep_a.line[i]), "alice event %d: live\n%s\nreplayed\n%s",
			      i, live_a.line[i], rep_a.line[i]);
	for (int i = (int)lb0 + 1; i <= (int)eb; i++)
		ck_assert_msg(!strcmp(live_b.line[i], rep_b.line[i]), "bob event %d: live\n%s\nreplayed\n%s",
			      i, live_b.line[i], rep_b.line[i]);
	{
		int seen_rx = 0, seen_tx = 0;
		for (int i = 1; i <= (int)lb0; i++) {
			cJSON *j = cJSON_Parse(rep_b.line[i]);
			const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "params");
			if (!strcmp(td_str(p, "type"), "message.received") &&
			    !strcmp(td_str(p, "kind"), "text")) {
				ck_assert_int_lt(seen_rx, NB + 1);
				ck_assert_str_eq(td_str(p, "message"), W.out_a[seen_rx].id);
				ck_assert_str_eq(td_str(p, "body"), W.out_a[seen_rx].body);
				ck_assert_str_eq(td_str(p, "origin"), "remote");
				seen_rx++;
			}
			cJSON_Delete(j);
		}
		for (int i = 1; i <= (int)la0; i++) {
			cJSON *j = cJSON_Parse(rep_a.line[i]);
			const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "params");
			if (!strcmp(td_str(p, "type"), "message.sent") &&
			    !strcmp(td_str(p, "kind"), "text")) {
				ck_assert_str_eq(td_str(p, "body"), W.out_a[seen_tx].body);
				ck_assert_str_eq(td_str(p, "origin"), "self");
				seen_tx++;
			}
			cJSON_Delete(j);
		}
		ck_assert_int_eq(seen_rx, NB + 1);
		ck_assert_int_eq(seen_tx, NB + 1);
	}

	/* (4) the same bytes after a restart (the ring is gone: the store's
	 * log rebuilds every line) */
	td_conn_close(&la);
	td_conn_close(&lb);
	td_conn_close(&idle);
	for (int k = 0; k < 2; k++) {
		struct td_relmd *d = k ? &W.b : &W.a;
		struct evlog *before = k ? &rep_b : &rep_a;
		double e = k ? eb : ea;
		int st = td_stop(&d->pid, SIGTERM, 5000);
		ck_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
		ck_assert_int_eq(td_relmd_restart(d), 0);
		ck_assert_double_eq(replay_all(d, &after), e);
		for (int i = 1; i <= (int)e; i++)
			ck_assert_msg(!strcmp(before->line[i], after.line[i]),
				      "%s event %d: before the restart\n%s\nafter\n%s",
				      d->name, i, before->line[i], after.line[i]);
		log_free(&after);
	}
	log_free(&live_a);
	log_free(&live_b);
	log_free(&rep_a);
	log_free(&rep_b);
	free(big);
	stop_all_clean();
}
END_TEST

START_TEST(replay_busy)
{
	enum { N1 = 40, N2 = 20, BODY = 30000 };
	static struct evlog live, rep;
	struct td_conn l, r;
	double l0, r0, e;
	char *body = malloc(BODY + 1);

	start_world();
	for (int i = 0; i < N1; i++) {
		memset(body, 'a' + i % 26, BODY);
		body[BODY] = 0;
		send_body(&W.a, W.out_a, &W.na, body, "queued");
	}
	wait_complete();
	/* > RELMD_OUT_SOFT of lines nobody has built yet; the replaying
	 * client reads a line now and then while alice keeps sending */
	sub_open(&l, W.a.sock, "{}", &live, &l0, NULL);
	sub_open(&r, W.a.sock, "{\"since\":0}", &rep, &r0, NULL);
	for (int i = 0; i < N2; i++) {
		memset(body, 'A' + i % 26, BODY);
		send_body(&W.a, W.out_a, &W.na, body, "queued");
		for (int k = 0; k < 3; k++) {
			char *line = td_conn_read_line(&r, 2000);
			ck_assert_ptr_nonnull(line);
			log_line(&rep, line);
		}
	}
	wait_complete();
	e = event_seq_now(&W.a);
	ck_assert(e < EVMAX);
	sub_collect(&l, &live, l0, e);
	sub_collect(&r, &rep, 0, e);
	for (int i = (int)l0 + 1; i <= (int)e; i++)
		ck_assert_msg(!strcmp(live.line[i], rep.line[i]), "event %d: live\n%.200s\nreplayed\n%.200s",
			      i, live.line[i], rep.line[i]);
	td_conn_close(&l);
	td_conn_close(&r);
	log_free(&live);
	log_free(&rep);
	free(body);
	stop_all_clean();
}
END_TEST

/* ---- (f) ---- */

START_TEST(idempotent)
{
	const char *cid = "0123456789abcdef0123456789abcdef";
	cJSON *r;

	start_world();
	for (int round = 0; round < 2; round++) {
		r = td_must(W.a.sock, "message.send",
			    "{\"relationship\":\"%s\",\"body\":\"once only\",\"id\":\"%s\"}", W.rel, cid);
		ck_assert_str_eq(td_str(td_res(r), "message"), cid);
		ck_assert(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(td_res(r), "new")));
		ck_assert_int_eq(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(td_res(r), "new")),
				 round == 0);
		cJSON_Delete(r);
	}
	memcpy(W.out_a[0].id, cid, 33);
	W.out_a[0].body = "once only";
	W.na = 1;
	wait_complete();
	/* after delivery: still the same one, and the reply says where it is */
	r = td_must(W.a.sock, "message.send",
		    "{\"relationship\":\"%s\",\"body\":\"once only\",\"id\":\"%s\"}", W.rel, cid);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(td_res(r), "new")));
	ck_assert_str_eq(td_str(td_res(r), "status"), "delivered");
	cJSON_Delete(r);
	td_sleep_ms(500);
	ck_assert(both_complete(NULL));
	stop_all_clean();
}
END_TEST

/* ---- (g) federation and limits ---- */

/* alice's mailboxes live on one server, bob's on another: each posts to
 * the other's server directly.  Bodies at the limit and with characters
 * JSON must escape arrive byte for byte. */
START_TEST(federation)
{
	struct td_mbox m2;
	char *big = malloc(60000 + 1);

	td_dir_new(W.dir, sizeof W.dir);
	ck_assert_int_eq(td_mbox_start(&W.mb, W.dir, "mbox1", 0), 0);
	ck_assert_int_eq(td_mbox_start(&m2, W.dir, "mbox2", 0), 0);
	ck_assert_int_ne(W.mb.port, m2.port);
	ck_assert_int_eq(td_relmd_start(&W.a, W.dir, "alice", W.mb.port), 0);
	ck_assert_int_eq(td_relmd_start(&W.b, W.dir, "bob", m2.port), 0);
	introduce();
	for (int i = 0; i < 20; i++) {
		send_a(i, "queued");
		send_b(i, "queued");
	}
	for (int i = 0; i < 60000; i++)
		big[i] = (char)('a' + i % 26);
	big[60000] = 0;
	send_body(&W.a, W.out_a, &W.na, big, "queued");
	send_body(&W.b, W.out_b, &W.nb, big, "queued");
	send_body(&W.a, W.out_a, &W.na, "quote \" backslash \\ newline \n tab \t \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "queued");
	send_body(&W.b, W.out_b, &W.nb, "\x01 control and \x7f", "queued");
	wait_complete();
	free(big);
	stop_all_clean();
	td_stop(&m2.pid, SIGTERM, 5000);
}
END_TEST

static void base_setup(void) { td_base_new("e2e"); }
static void base_teardown(void) { td_base_free(); }

static Suite *e2e_suite(void)
{
	Suite *s = suite_create("e2e");
	TCase *tc = tcase_create("network");
	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, exchange);
	tcase_add_test(tc, mbox_restart);
	tcase_add_test(tc, relmd_kill);
	tcase_add_test(tc, unreachable);
	tcase_add_test(tc, events);
	tcase_add_test(tc, events_lazy);
	tcase_add_test(tc, replay_busy);
	tcase_add_test(tc, idempotent);
	tcase_add_test(tc, federation);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(e2e_suite());
	int failed;
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

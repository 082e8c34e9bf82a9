/*
 * check_core_strategy.c — the `leader` strategy in lib/core
 * (proto/devices.md §11), on whole daemons in one process (util_world):
 * alice's A and J (paired through the core), bob's B, a relationship rb.
 *
 * Strategy changes reach every device and end on one strategy whatever
 * the order; a pinned leader sends for the proton and the other device's
 * messages go as requests, sent once, settled by the leader's copy; the
 * send lease (a server played here: compare-and-set with a TTL on the
 * shared clock) moves to the other device when the holder goes silent,
 * which then sends the requests it had pending; the holder that comes
 * back asks the new one.  Under fanout the other device holds no state
 * and reads no relationship mailbox, gets the hub's history as delivers,
 * and its messages wait while the hub is away; back to leaderless it
 * holds the state again from the hub's and sends itself; a hub that
 * leaves fanout before its own state came back leaves no device without
 * it.  Bob sees every message once, from one peer.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include <sqlite3.h>
#include "util_rand.h"
#include "util_world.h"
#include "core/core.h"
#include "engine/rel_strategy.h"
#include "store/store_int.h"
#include "wire/invite.h"
#include "wire/lease.h"
#include "wire/pairing.h"
#include "error.h"

static uint64_t clock_ms;
static struct tu_daemon A, J, B;
static struct tu_net net;
static uint8_t pa[16], pb[16], rb[16], dev_a[16], dev_j[16];

static void settle(struct tu_daemon **ds, size_t n)
{
	tu_settle(ds, n, &net, 10, 1000);
}

static void self_of(struct tu_daemon *d, uint8_t out[16])
{
	struct relm_store_device s;
	ck_assert_int_eq(relm_store_device_get_self(d->st, pa, &s), 0);
	memcpy(out, s.device, 16);
	relm_store_device_clear(&s);
}

static void setup(void)
{
	struct tu_daemon *ab[2] = { &A, &B }, *all[3] = { &A, &J, &B };
	char inv[RELM_INVITE_TEXT_MAX], code[RELM_PAIR_CODE_MAX];
	uint8_t ipk[32], pid[16], proton[16];
	uint64_t expires;

	clock_ms = 1700000000000ull;
	memset(&net, 0, sizeof net);
	tu_daemon_mkdir(&A, "alice");
	tu_daemon_mkdir(&J, "alice2");
	tu_daemon_mkdir(&B, "bob");
	ck_assert_int_eq(tu_daemon_open(&A, &clock_ms, 1, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(tu_daemon_open(&J, &clock_ms, 2, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(tu_daemon_open(&B, &clock_ms, 3, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(relm_core_proton_create(A.core, "alice", pa, ipk), 0);
	ck_assert_int_eq(relm_core_proton_create(B.core, "bob", pb, ipk), 0);
	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 0, 0, inv, sizeof inv, NULL), 0);
	ck_assert_int_eq(relm_core_invite_accept(B.core, pb, inv, strlen(inv), "alice", rb), 0);
	settle(ab, 2);
	ck_assert_int_eq(relm_core_pair_begin(A.core, pa, code, sizeof code, &expires), 0);
	ck_assert_int_eq(relm_core_pair_join(J.core, code, strlen(code), "tablet", pid, proton),
	                 RELM_EPENDING);
	settle(all, 3);
	ck_assert_int_eq(relm_core_pair_status(J.core, pid, proton), 0);
	self_of(&A, dev_a);
	self_of(&J, dev_j);
}

static void teardown(void)
{
	tu_daemon_close(&A);
	tu_daemon_close(&J);
	tu_daemon_close(&B);
	tu_daemon_rmdir(&A);
	tu_daemon_rmdir(&J);
	tu_daemon_rmdir(&B);
	tu_net_free(&net);
}

/* ---- what the stores say ------------------------------------------------------ */

struct find {
	const char *body;
	int n, origin, status, in;
};

static int find_cb(void *ctx, const struct relm_store_msg *m)
{
	struct find *f = ctx;

	if (m->body_len == strlen(f->body) && memcmp(m->body, f->body, m->body_len) == 0) {
		f->n++;
		f->origin = m->origin;
		f->status = m->status;
		f->in = m->direction_in;
	}
	return 0;
}

/* How many history rows of d's relationship (rb on alice's devices, rel
 * on bob's) hold body; the last one's origin and status. */
static struct find find(struct tu_daemon *d, const uint8_t *rel, const char *body)
{
	struct find f = { body, 0, -1, -1, -1 };
	ck_assert_int_eq(relm_store_msg_list(d->st, rel, 0, 0, find_cb, &f), 0);
	return f;
}

/* Rows d ever put in its outbox for bob's mailbox (posted ones stay
 * until purged, which these tests never ask for). */
static int outbox_to_remote(struct tu_daemon *d)
{
	sqlite3_stmt *q;
	int n;

	ck_assert_int_eq(sqlite3_prepare_v2(relm__store_db(d->st), "SELECT count(*) FROM outbox WHERE rel=?1",
	                                    -1, &q, NULL), SQLITE_OK);
	sqlite3_bind_blob(q, 1, rb, 16, SQLITE_STATIC);
	ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
	n = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	return n;
}

static uint64_t pending(struct tu_daemon *d)
{
	struct relm_core_strategy s;
	ck_assert_int_eq(relm_core_strategy_get(d->core, pa, &s), 0);
	return s.pending_requests;
}

static struct relm_core_strategy view(struct tu_daemon *d)
{
	struct relm_core_strategy s;
	ck_assert_int_eq(relm_core_strategy_get(d->core, pa, &s), 0);
	return s;
}

static void send(struct tu_daemon *d, const char *body)
{
	uint8_t id[16];
	int was_new = 0;
	ck_assert_int_eq(relm_core_message_send(d->core, rb, body, strlen(body), NULL, id, &was_new), 0);
	ck_assert_int_eq(was_new, 1);
}

/* ---- the lease server ----------------------------------------------------------- */

static struct {
	uint8_t holder[16];
	uint64_t exp;
	int ops;
} server;

struct lease_run {
	struct tu_daemon *d;
	int n;
};

static int lease_cb(void *ctx, const struct relm_core_lease *l)
{
	struct lease_run *r = ctx;
	uint8_t live[16] = { 0 };
	int granted;

	r->n++;
	server.ops++;
	if (server.exp > clock_ms)
		memcpy(live, server.holder, 16);
	granted = memcmp(live, l->expected, 16) == 0;
	if (granted) {
		memcpy(server.holder, l->holder, 16);
		server.exp = l->release ? 0 : clock_ms + l->ttl_ms;
	}
	ck_assert_int_eq(relm_core_lease_result(r->d->core, l->proton, l->sent_ms, granted, l->release,
	                                        granted ? l->holder : live), 0);
	return 0;
}

/* d's lease round: how many LEASEs it sent. */
static int lease_round(struct tu_daemon *d)
{
	struct lease_run r = { d, 0 };
	ck_assert_int_eq(relm_core_leases(d->core, 0, lease_cb, &r), 0);
	return r.n;
}

/* ---- tests ------------------------------------------------------------------------ */

/* proton.set_strategy's rules, and two changes made at once on two
 * devices: both end on the same one, (seq, by) deciding. */
START_TEST(test_strategy_changes)
{
	struct tu_daemon *all[3] = { &A, &J, &B };
	uint8_t stranger[16], ids[2][16];
	uint64_t seq = 0;
	struct relm_core_strategy sa, sj;

	memset(stranger, 0x5a, 16);
	ck_assert_int_eq(relm_core_strategy_set(A.core, pa, RELM_STRATEGY_LEADER, stranger, &seq),
	                 RELM_ENOTFOUND);
	ck_assert_int_eq(relm_core_strategy_set(A.core, pa, RELM_STRATEGY_LEADERLESS, dev_a, &seq),
	                 RELM_EINVAL);
	ck_assert_int_eq(relm_core_strategy_set(A.core, pa, 7, NULL, &seq), RELM_EINVAL);
	ck_assert_int_eq(relm_core_strategy_set(A.core, pa, RELM_STRATEGY_FANOUT, stranger, &seq),
	                 RELM_ENOTFOUND);
	ck_assert_int_eq(view(&A).seq, 0);                     /* nothing changed */
	/* pinned leader on A, set on J; A's own change at the same time */
	ck_assert_int_eq(relm_core_strategy_set(J.core, pa, RELM_STRATEGY_LEADER, dev_a, &seq), 0);
	ck_assert_uint_eq(seq, 1);
	ck_assert_int_eq(relm_core_strategy_set(A.core, pa, RELM_STRATEGY_LEADER, dev_j, &seq), 0);
	ck_assert_uint_eq(seq, 1);
	settle(all, 3);
	sa = view(&A);
	sj = view(&J);
	ck_assert_int_eq(sa.strategy, RELM_STRATEGY_LEADER);
	ck_assert_int_eq(sj.strategy, RELM_STRATEGY_LEADER);
	ck_assert_int_eq(memcmp(sa.pinned, sj.pinned, 16), 0);
	/* the greater `by` of the two seq-1 changes won */
	memcpy(ids[0], dev_a, 16);
	memcpy(ids[1], dev_j, 16);
	ck_assert_int_eq(memcmp(sa.pinned, memcmp(dev_j, dev_a, 16) > 0 ? dev_a : dev_j, 16), 0);
	ck_assert_int_eq(sa.sends + sj.sends, 1);              /* one of them sends */
	ck_assert_int_eq(memcmp(sa.holder, sa.pinned, 16), 0);
	/* and back: the next change has seq 2 */
	ck_assert_int_eq(relm_core_strategy_set(J.core, pa, RELM_STRATEGY_LEADERLESS, NULL, &seq), 0);
	ck_assert_uint_eq(seq, 2);
	settle(all, 3);
	ck_assert_int_eq(view(&A).strategy, RELM_STRATEGY_LEADERLESS);
	ck_assert_int_eq(view(&A).sends, 1);
	ck_assert_int_eq(view(&J).sends, 1);
	(void)ids;
}
END_TEST

/* A pinned leader: J's messages go as requests; A sends them once; J
 * sees its request settled by A's copy, and the status follows. */
START_TEST(test_pinned_leader)
{
	struct tu_daemon *all[3] = { &A, &J, &B };
	struct find f;
	int before;
	char body[32];

	ck_assert_int_eq(relm_core_strategy_set(A.core, pa, RELM_STRATEGY_LEADER, dev_a, NULL), 0);
	settle(all, 3);
	ck_assert_int_eq(view(&J).strategy, RELM_STRATEGY_LEADER);
	ck_assert_int_eq(view(&J).sends, 0);
	ck_assert_int_eq(view(&A).sends, 1);
	before = outbox_to_remote(&J);
	for (int k = 0; k < 3; k++) {
		snprintf(body, sizeof body, "from the tablet %d", k);
		send(&J, body);
		f = find(&J, rb, body);
		ck_assert_int_eq(f.n, 1);
		ck_assert_int_eq(f.origin, RELM_ORIGIN_SELF);
		ck_assert_int_eq(f.status, RELM_STATUS_QUEUED);
	}
	ck_assert_uint_eq(pending(&J), 3);
	send(&A, "from the phone");
	settle(all, 3);
	for (int k = 0; k < 3; k++) {
		snprintf(body, sizeof body, "from the tablet %d", k);
		f = find(&B, rb, body);
		ck_assert_int_eq(f.n, 1);
		ck_assert_int_eq(f.in, 1);
		f = find(&A, rb, body);
		ck_assert_int_eq(f.n, 1);
		ck_assert_int_eq(f.origin, RELM_ORIGIN_SIBLING);
		f = find(&J, rb, body);
		ck_assert_int_eq(f.n, 1);
		ck_assert_int_eq(f.origin, RELM_ORIGIN_SELF);
		ck_assert_int_eq(f.status, RELM_STATUS_DELIVERED);
	}
	ck_assert_int_eq(find(&B, rb, "from the phone").n, 1);
	ck_assert_int_eq(find(&J, rb, "from the phone").n, 1);
	ck_assert_uint_eq(pending(&J), 0);
	/* J posted nothing to bob's mailbox: it does not send */
	ck_assert_int_eq(outbox_to_remote(&J), before);
	/* bob answers: both devices read it */
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "hi both", 7, NULL, (uint8_t[16]){ 0 },
	                                        &(int){ 0 }), 0);
	settle(all, 3);
	ck_assert_int_eq(find(&A, rb, "hi both").n, 1);
	ck_assert_int_eq(find(&J, rb, "hi both").n, 1);
	ck_assert_int_eq(outbox_to_remote(&J), before);
}
END_TEST

/* The lease: A takes it, J learns A holds it and asks A; A goes silent,
 * J takes the lease after the TTL and sends the request A never served;
 * A comes back, learns J holds it, and asks J. */
START_TEST(test_lease_takeover)
{
	struct tu_daemon *all[3] = { &A, &J, &B }, *jb[2] = { &J, &B };
	struct relm_core_strategy s;

	memset(&server, 0, sizeof server);
	relm_core_lease_ttl(A.core, 30000);
	relm_core_lease_ttl(J.core, 30000);
	ck_assert_int_eq(relm_core_strategy_set(A.core, pa, RELM_STRATEGY_LEADER, NULL, NULL), 0);
	settle(all, 3);
	/* nobody holds it yet: nobody sends, a message waits as a request */
	ck_assert_int_eq(view(&A).sends, 0);
	ck_assert_int_eq(view(&J).sends, 0);
	send(&A, "before any lease");
	ck_assert_uint_eq(pending(&A), 1);
	ck_assert_int_eq(lease_round(&A), 1);
	s = view(&A);
	ck_assert_int_eq(s.sends, 1);
	ck_assert_int_eq(memcmp(s.holder, dev_a, 16), 0);
	ck_assert_uint_eq(pending(&A), 0);                     /* served its own at once */
	ck_assert_int_eq(lease_round(&J), 1);
	s = view(&J);
	ck_assert_int_eq(s.sends, 0);
	ck_assert_int_eq(memcmp(s.holder, dev_a, 16), 0);
	send(&J, "asked of A");
	settle(all, 3);
	ck_assert_int_eq(find(&B, rb, "before any lease").n, 1);
	ck_assert_int_eq(find(&B, rb, "asked of A").n, 1);
	ck_assert_uint_eq(pending(&J), 0);

	/* A renews, then goes silent; J's next message waits for a holder */
	ck_assert_int_eq(lease_round(&A), 1);
	send(&J, "while A is away");
	for (int i = 0; i < 3; i++) {
		tu_settle(jb, 2, &net, 1, 500);
		ck_assert_int_eq(lease_round(&J), 1);
		ck_assert_int_eq(view(&J).sends, 0);
	}
	ck_assert_int_eq(find(&B, rb, "while A is away").n, 0);
	clock_ms += 30000;                                     /* A's lease runs out */
	ck_assert_int_eq(lease_round(&J), 1);
	s = view(&J);
	ck_assert_int_eq(s.sends, 1);
	ck_assert_int_eq(memcmp(s.holder, dev_j, 16), 0);
	tu_settle(jb, 2, &net, 10, 1000);
	ck_assert_int_eq(find(&B, rb, "while A is away").n, 1);
	ck_assert_uint_eq(pending(&J), 0);

	/* A is back: its own time is over, it sends nothing, and asks J */
	ck_assert_int_eq(view(&A).sends, 0);
	ck_assert_int_eq(lease_round(&A), 1);
	s = view(&A);
	ck_assert_int_eq(s.sends, 0);
	ck_assert_int_eq(memcmp(s.holder, dev_j, 16), 0);
	send(&A, "A asks J");
	ck_assert_int_eq(lease_round(&J), 1);                  /* J renews */
	settle(all, 3);
	ck_assert_int_eq(find(&B, rb, "A asks J").n, 1);
	ck_assert_int_eq(find(&A, rb, "while A is away").n, 1);
	ck_assert_int_eq(find(&J, rb, "A asks J").n, 1);
	ck_assert_uint_eq(pending(&A), 0);

	/* leaving `leader`: J gives the lease back */
	ck_assert_int_eq(relm_core_strategy_set(A.core, pa, RELM_STRATEGY_LEADERLESS, NULL, NULL), 0);
	settle(all, 3);
	server.ops = 0;
	ck_assert_int_eq(lease_round(&J), 1);                  /* the release */
	ck_assert_uint_eq(server.exp, 0);
	ck_assert_int_eq(lease_round(&J), 0);                  /* and nothing more */
	ck_assert_int_eq(lease_round(&A), 0);
}
END_TEST

/* The holder's own lease runs out on its side (it stops sending TTL −
 * margin after the LEASE) while the server still holds it for it: a
 * receipt it owes waits, its timer asleep (§11.3).  Renewed, it holds the
 * lease again without any holder in between — and the receipt goes. */
START_TEST(test_lease_lapsed_then_renewed)
{
	struct tu_daemon *all[3] = { &A, &J, &B }, *aj[2] = { &A, &J };
	uint64_t next = 0;
	int before;

	memset(&server, 0, sizeof server);
	relm_core_lease_ttl(A.core, 30000);
	relm_core_lease_ttl(J.core, 30000);
	ck_assert_int_eq(relm_core_strategy_set(A.core, pa, RELM_STRATEGY_LEADER, NULL, NULL), 0);
	settle(all, 3);
	ck_assert_int_eq(lease_round(&A), 1);
	ck_assert_int_eq(lease_round(&J), 1);
	ck_assert_int_eq(view(&A).sends, 1);
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "b to alice", 10, NULL, (uint8_t[16]){ 0 },
	                                        &(int){ 0 }), 0);
	tu_settle(all, 3, &net, 1, 0);                         /* read, the receipt not due yet */
	ck_assert_int_eq(find(&A, rb, "b to alice").n, 1);
	before = outbox_to_remote(&A);
	clock_ms += 29000;                                     /* past A's time, not the server's */
	ck_assert_int_eq(view(&A).sends, 0);
	ck_assert_int_eq(relm_core_tick(A.core, &next), 0);
	ck_assert_int_eq(relm_core_tick(J.core, &next), 0);    /* J knows A holds it: drops its own */
	ck_assert_int_eq(outbox_to_remote(&A), before);
	ck_assert_int_eq(lease_round(&A), 1);                  /* renewed: the server still had it */
	ck_assert_int_eq(view(&A).sends, 1);
	tu_settle(aj, 2, &net, 2, 1000);
	ck_assert_int_eq(outbox_to_remote(&A), before + 1);    /* the receipt */
	settle(all, 3);
	ck_assert_int_eq(find(&B, rb, "b to alice").status, RELM_STATUS_DELIVERED);
}
END_TEST

/* Requests wait while no device sends, and go when the proton turns
 * leaderless: the device serves its own. */
START_TEST(test_requests_survive_a_restart)
{
	struct tu_daemon *all[3] = { &A, &J, &B };

	ck_assert_int_eq(relm_core_strategy_set(A.core, pa, RELM_STRATEGY_LEADER, NULL, NULL), 0);
	settle(all, 3);
	send(&J, "kept across a restart");
	ck_assert_uint_eq(pending(&J), 1);
	tu_daemon_close(&J);
	ck_assert_int_eq(tu_daemon_open(&J, &clock_ms, 2, "127.0.0.1:7427"), 0);
	ck_assert_uint_eq(pending(&J), 1);
	ck_assert_int_eq(relm_core_strategy_tick(J.core), 0);
	settle(all, 3);
	ck_assert_int_eq(find(&B, rb, "kept across a restart").n, 0);
	ck_assert_int_eq(relm_core_strategy_set(A.core, pa, RELM_STRATEGY_LEADERLESS, NULL, NULL), 0);
	settle(all, 3);
	ck_assert_int_eq(find(&B, rb, "kept across a restart").n, 1);
	ck_assert_int_eq(find(&A, rb, "kept across a restart").n, 1);
	ck_assert_uint_eq(pending(&J), 0);
}
END_TEST

struct mb_find {
	uint8_t id[32];
	int found;
};

static int mb_cb(void *ctx, const uint8_t id[32], uint64_t cursor)
{
	struct mb_find *f = ctx;
	(void)cursor;
	f->found |= memcmp(id, f->id, 32) == 0;
	return 0;
}

/* Does d read rb's mailbox? */
static int reads_rb(struct tu_daemon *d)
{
	struct relm_store_rel r;
	struct mb_find f = { { 0 }, 0 };

	ck_assert_int_eq(relm_store_rel_get(d->st, rb, &r, 0), 0);
	memcpy(f.id, r.mailbox_id, 32);
	relm_store_rel_clear(&r);
	ck_assert_int_eq(relm_core_mailboxes(d->core, mb_cb, &f), 0);
	return f.found;
}

static int holds_rb(struct tu_daemon *d)
{
	struct relm_rel *rel = NULL;
	int rc = relm_core_rel_load(d->core, rb, &rel);
	relm_rel_free(rel);
	ck_assert(rc == 0 || rc == RELM_ENOSTATE);
	return rc == 0;
}

/* fanout: A the hub, J without state; the hub away and back; then
 * leaderless again, J holding the state once more. */
START_TEST(test_fanout_hub_away_and_back)
{
	struct tu_daemon *all[3] = { &A, &J, &B }, *jb[2] = { &J, &B };
	struct find f;

	send(&J, "j0 leaderless");
	settle(all, 3);
	ck_assert_int_eq(relm_core_strategy_set(A.core, pa, RELM_STRATEGY_FANOUT, NULL, NULL), 0);
	settle(all, 3);
	ck_assert_int_eq(view(&J).strategy, RELM_STRATEGY_FANOUT);
	ck_assert_int_eq(memcmp(view(&J).pinned, dev_a, 16), 0);
	ck_assert_int_eq(view(&J).sends, 0);
	ck_assert_int_eq(view(&A).sends, 1);
	ck_assert(holds_rb(&A));
	ck_assert(!holds_rb(&J));
	ck_assert(reads_rb(&A));
	ck_assert(!reads_rb(&J));
	ck_assert_int_eq(find(&J, rb, "j0 leaderless").n, 1);     /* its history stays */

	/* J asks, the hub sends; bob's and the hub's own messages reach J as delivers */
	send(&J, "j1 via the hub");
	send(&A, "a1 from the hub");
	settle(all, 3);
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "b1 to alice", 11, NULL, (uint8_t[16]){ 0 },
	                                        &(int){ 0 }), 0);
	settle(all, 3);
	ck_assert_int_eq(find(&B, rb, "j1 via the hub").n, 1);
	ck_assert_int_eq(find(&B, rb, "a1 from the hub").n, 1);
	f = find(&J, rb, "j1 via the hub");
	ck_assert_int_eq(f.n, 1);
	ck_assert_int_eq(f.origin, RELM_ORIGIN_SELF);
	ck_assert_int_eq(f.status, RELM_STATUS_DELIVERED);
	f = find(&J, rb, "a1 from the hub");
	ck_assert_int_eq(f.n, 1);
	ck_assert_int_eq(f.origin, RELM_ORIGIN_SIBLING);
	f = find(&J, rb, "b1 to alice");
	ck_assert_int_eq(f.n, 1);
	ck_assert_int_eq(f.origin, RELM_ORIGIN_REMOTE);
	ck_assert_uint_eq(pending(&J), 0);

	/* the hub away: J's message waits, queued */
	send(&J, "j2 while the hub is away");
	tu_settle(jb, 2, &net, 5, 1000);
	ck_assert_int_eq(find(&B, rb, "j2 while the hub is away").n, 0);
	ck_assert_uint_eq(pending(&J), 1);
	ck_assert_int_eq(find(&J, rb, "j2 while the hub is away").status, RELM_STATUS_QUEUED);
	settle(all, 3);                                        /* and back */
	ck_assert_int_eq(find(&B, rb, "j2 while the hub is away").n, 1);
	ck_assert_uint_eq(pending(&J), 0);

	/* leaderless again, set on J: it holds the state again and sends */
	ck_assert_int_eq(relm_core_strategy_set(J.core, pa, RELM_STRATEGY_LEADERLESS, NULL, NULL), 0);
	settle(all, 3);
	ck_assert(holds_rb(&J));
	ck_assert(reads_rb(&J));
	ck_assert_int_eq(view(&J).sends, 1);
	send(&J, "j3 on its own");
	settle(all, 3);
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "b2 to both", 10, NULL, (uint8_t[16]){ 0 },
	                                        &(int){ 0 }), 0);
	settle(all, 3);
	ck_assert_int_eq(find(&B, rb, "j3 on its own").n, 1);
	ck_assert_int_eq(find(&A, rb, "j3 on its own").n, 1);
	ck_assert_int_eq(find(&J, rb, "b2 to both").n, 1);
	ck_assert_int_eq(find(&A, rb, "b2 to both").n, 1);
	/* bob: each once, one relationship */
	const char *bodies[] = { "j0 leaderless", "j1 via the hub", "a1 from the hub",
	                         "j2 while the hub is away", "j3 on its own" };
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
		ck_assert_msg(find(&B, rb, bodies[i]).n == 1, "bob: %s", bodies[i]);
}
END_TEST

/* fanout: J made the hub while A (the hub) is away, so J holds no state
 * of rb yet, and it leaves fanout before any comes back.  Leaving, a hub
 * sends its siblings the states it holds — of rb it holds none, which is
 * no inconsistency (devices.md §11.6, §12.6).  Once A is back, both hold
 * the state and send, and bob sees each message once. */
START_TEST(test_stateless_hub_leaves_fanout)
{
	struct tu_daemon *all[3] = { &A, &J, &B }, *jb[2] = { &J, &B };

	ck_assert_int_eq(relm_core_strategy_set(A.core, pa, RELM_STRATEGY_FANOUT, NULL, NULL), 0);
	settle(all, 3);
	ck_assert(!holds_rb(&J));
	ck_assert_int_eq(relm_core_strategy_set(J.core, pa, RELM_STRATEGY_FANOUT, dev_j, NULL), 0);
	tu_settle(jb, 2, &net, 5, 1000);
	ck_assert(!holds_rb(&J));                              /* asked A, which is away */
	ck_assert_int_eq(relm_core_strategy_set(J.core, pa, RELM_STRATEGY_LEADERLESS, NULL, NULL), 0);
	ck_assert(!holds_rb(&J));
	settle(all, 3);
	ck_assert_int_eq(view(&A).strategy, RELM_STRATEGY_LEADERLESS);
	ck_assert(holds_rb(&A));
	ck_assert(holds_rb(&J));
	send(&J, "j after the switches");
	send(&A, "a after the switches");
	settle(all, 3);
	ck_assert_int_eq(find(&B, rb, "j after the switches").n, 1);
	ck_assert_int_eq(find(&B, rb, "a after the switches").n, 1);
	ck_assert_int_eq(find(&A, rb, "j after the switches").status, RELM_STATUS_DELIVERED);
	ck_assert_int_eq(find(&J, rb, "a after the switches").n, 1);
}
END_TEST

/* fanout: a deliver the hub sent before it adopted the strategy held —
 * when it was the hub of an older one — shows nothing of what it holds
 * now (devices.md §11.6): J, which made A the hub again, keeps its state
 * through A's old history, and wipes once A has shown it adopted J's
 * strategy and delivered since. */
START_TEST(test_old_deliver_shows_nothing)
{
	struct tu_daemon *all[3] = { &A, &J, &B }, *a[1] = { &A }, *j[1] = { &J };

	ck_assert_int_eq(relm_core_strategy_set(A.core, pa, RELM_STRATEGY_FANOUT, NULL, NULL), 0);
	ck_assert_int_eq(relm_core_strategy_set(A.core, pa, RELM_STRATEGY_LEADERLESS, NULL, NULL), 0);
	tu_settle(a, 1, &net, 1, 0);                           /* A's frames wait for J */
	/* J, reading nothing of A's yet, makes A the hub with a later seq */
	ck_assert_int_eq(relm_core_strategy_set(J.core, pa, RELM_STRATEGY_LEADERLESS, NULL, NULL), 0);
	ck_assert_int_eq(relm_core_strategy_set(J.core, pa, RELM_STRATEGY_LEADERLESS, NULL, NULL), 0);
	ck_assert_int_eq(relm_core_strategy_set(J.core, pa, RELM_STRATEGY_FANOUT, dev_a, NULL), 0);
	ck_assert_uint_eq(view(&J).seq, 3);
	tu_settle(j, 1, &net, 2, 1000);                        /* A's fanout, history and leaderless */
	ck_assert_uint_eq(view(&J).seq, 3);
	ck_assert_int_eq(view(&J).strategy, RELM_STRATEGY_FANOUT);
	ck_assert(holds_rb(&J));
	settle(all, 3);                                        /* A adopts J's, shows it, delivers */
	ck_assert_int_eq(view(&A).strategy, RELM_STRATEGY_FANOUT);
	ck_assert(holds_rb(&A));
	ck_assert(!holds_rb(&J));
	send(&J, "j through the hub");
	settle(all, 3);
	ck_assert_int_eq(find(&B, rb, "j through the hub").n, 1);
	ck_assert_int_eq(find(&J, rb, "j through the hub").status, RELM_STATUS_DELIVERED);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("core_strategy");
	TCase *tc = tcase_create("leader");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_strategy_changes);
	tcase_add_test(tc, test_pinned_leader);
	tcase_add_test(tc, test_lease_takeover);
	tcase_add_test(tc, test_lease_lapsed_then_renewed);
	tcase_add_test(tc, test_requests_survive_a_restart);
	tcase_add_test(tc, test_fanout_hub_away_and_back);
	tcase_add_test(tc, test_stateless_hub_leaves_fanout);
	tcase_add_test(tc, test_old_deliver_shows_nothing);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

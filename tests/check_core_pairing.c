/*
 * check_core_pairing.c — pairing in lib/core (proto/devices.md §12): whole
 * daemons in one process (tests/util_world.h) on one mailbox network.  A
 * device of alice (A) offers a code, a fresh daemon (J) joins with it:
 * both end with the same circle naming both devices, J holds the proton.
 * Each bad code — malformed, expired, another mailbox server, reused, a
 * wrong secret, junk at the pairing mailbox — gets its error and leaves
 * the circle as it was.  The bulk state (§12.6): J ends with every
 * relationship of A, the same history and tree, reads and sends in them,
 * and is synced once — also when its daemon restarts in the middle.  Each
 * device reads every relationship mailbox and a device mailbox of its
 * own whose keys share nothing with any other mailbox's (§1).
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include <sqlite3.h>
#include "util_rand.h"
#include "util_world.h"
#include "util_xdev.h"
#include "core/core.h"
#include "engine/rel.h"
#include "wire/sibling.h"
#include "wire/addr.h"
#include "wire/circle.h"
#include "wire/pairing.h"
#include "error.h"

static uint64_t clock_ms;
static struct tu_daemon A, J, K, B;    /* K: a second joiner; B: bob, alice's friend */
static struct tu_net net;
static uint8_t pa[16], ipk_a[32];

static void setup(void)
{
	clock_ms = 1700000000000ull;
	memset(&net, 0, sizeof net);
	tu_daemon_mkdir(&A, "alice");
	tu_daemon_mkdir(&J, "joiner");
	tu_daemon_mkdir(&K, "other");
	ck_assert_int_eq(tu_daemon_open(&A, &clock_ms, 1, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(tu_daemon_open(&J, &clock_ms, 2, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(tu_daemon_open(&K, &clock_ms, 3, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(relm_core_proton_create(A.core, "alice", pa, ipk_a), 0);
	tu_daemon_mkdir(&B, "bob");
	ck_assert_int_eq(tu_daemon_open(&B, &clock_ms, 4, "127.0.0.1:7427"), 0);
}

static void teardown(void)
{
	tu_daemon_close(&A);
	tu_daemon_close(&J);
	tu_daemon_close(&K);
	tu_daemon_close(&B);
	tu_daemon_rmdir(&B);
	tu_daemon_rmdir(&A);
	tu_daemon_rmdir(&J);
	tu_daemon_rmdir(&K);
	tu_net_free(&net);
}

static int count_rels_cb(void *ctx, const struct relm_store_rel *r)
{
	(void)r;
	(*(int *)ctx)++;
	return 0;
}

static int count_cb(void *ctx, const struct relm_store_device *d)
{
	(void)d;
	(*(int *)ctx)++;
	return 0;
}

static int rows_of(struct tu_daemon *d)
{
	int n = 0;
	ck_assert_int_eq(relm_store_device_list(d->st, pa, count_cb, &n), 0);
	return n;
}

/* The circle d holds for alice: its epoch, and its bytes (malloc'd). */
static uint64_t circle_of(struct tu_daemon *d, uint8_t **buf, size_t *len)
{
	uint64_t epoch = 0;
	ck_assert_int_eq(relm_store_circle_get(d->st, pa, &epoch, buf, len), 0);
	return epoch;
}

static int count_where(struct tu_daemon *d, const char *where)
{
	char sql[200];
	sqlite3_stmt *q;
	int n;

	snprintf(sql, sizeof sql, "SELECT count(*) FROM pairings WHERE %s", where);
	ck_assert_int_eq(sqlite3_prepare_v2(relm__store_db(d->st), sql, -1, &q, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
	n = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	return n;
}

static int pairings_of(struct tu_daemon *d)
{
	return count_where(d, "1");
}

static void settle(void)
{
	struct tu_daemon *ds[3] = { &A, &J, &K };
	tu_settle(ds, 3, &net, 10, 1000);
}

static int ev_count_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	int *n = ctx;
	(void)seq;
	(void)ts;
	if (ev->type == n[1]) {
		n[0]++;
		n[2] = ev->code;
	}
	return 0;
}

/* How many events of type d has; *code the last one's code. */
static int events_of(struct tu_daemon *d, int type, int *code)
{
	int n[3] = { 0, type, 0 };
	ck_assert_int_eq(relm_store_event_list(d->st, 0, 0, ev_count_cb, n), 0);
	if (code)
		*code = n[2];
	return n[0];
}

START_TEST(test_pair)
{
	char code[RELM_PAIR_CODE_MAX];
	uint8_t pid[16], proton[16], *b1 = NULL, *b2 = NULL;
	size_t l1 = 0, l2 = 0;
	uint64_t expires = 0;
	struct relm_store_proton p;
	struct relm_circle *c = calloc(1, sizeof *c);

	ck_assert_int_eq(relm_core_pair_begin(A.core, pa, code, sizeof code, &expires), 0);
	ck_assert_uint_eq(expires, clock_ms + RELM_PAIR_TTL_MS);
	ck_assert_int_eq(relm_core_pair_join(J.core, code, strlen(code), "tablet", pid, proton), RELM_EPENDING);
	ck_assert_int_eq(relm_core_pair_status(J.core, pid, proton), RELM_EPENDING);
	settle();
	ck_assert_int_eq(relm_core_pair_status(J.core, pid, proton), 0);
	ck_assert_int_eq(memcmp(proton, pa, 16), 0);
	/* J holds alice's proton, her identity key and the circle A holds */
	ck_assert_int_eq(relm_store_proton_get(J.st, pa, &p, RELM_STORE_WITH_SECRETS), 0);
	ck_assert_int_eq(memcmp(p.ipk, ipk_a, 32), 0);
	ck_assert_str_eq(p.label, "alice");
	relm_store_proton_clear(&p);
	ck_assert_uint_eq(circle_of(&A, &b1, &l1), 2);
	ck_assert_uint_eq(circle_of(&J, &b2, &l2), 2);
	ck_assert_uint_eq(l1, l2);
	ck_assert_int_eq(memcmp(b1, b2, l1), 0);
	ck_assert_int_eq(relm_circle_decode(c, b1, l1), 0);
	ck_assert_uint_eq(c->count, 2);
	ck_assert_int_eq(rows_of(&A), 2);
	ck_assert_int_eq(rows_of(&J), 2);
	ck_assert_int_eq(events_of(&A, RELM_EV_DEVICE_ADDED, NULL), 1);
	ck_assert_int_eq(events_of(&J, RELM_EV_DEVICE_ADDED, NULL), 1);
	{
		struct relm_store_device self;
		struct relm_store_device_keys k;
		ck_assert_int_eq(relm_store_device_get_self(J.st, pa, &self), 0);
		ck_assert(self.has_sk);
		ck_assert_str_eq(self.label, "tablet");
		ck_assert_int_ge(relm_circle_find(c, self.device), 0);
		ck_assert_int_eq(relm_store_device_keys_get(J.st, pa, &k), 0);
		relm_store_device_keys_clear(&k);
		relm_store_device_clear(&self);
	}
	/* J's ephemeral and device keys are gone from its pairing row */
	ck_assert_int_eq(count_where(&J, "eph IS NOT NULL OR keys IS NOT NULL"), 0);
	/* the same code again on J: joined already */
	ck_assert_int_eq(relm_core_pair_join(J.core, code, strlen(code), "tablet", pid, proton), 0);
	/* and on another daemon: the code paired one device (replay) */
	ck_assert_int_eq(relm_core_pair_join(K.core, code, strlen(code), "phone", pid, proton), RELM_EPENDING);
	settle();
	ck_assert_int_eq(relm_core_pair_status(K.core, pid, proton), RELM_EREPLAY);
	ck_assert_int_eq(pairings_of(&K), 0);
	ck_assert_int_eq(rows_of(&A), 2);
	free(b2);
	ck_assert_uint_eq(circle_of(&A, &b2, &l2), 2);
	free(b1);
	free(b2);
	free(c);
	/* the code expires: E's row goes, and so does J's */
	clock_ms = expires;
	ck_assert_int_eq(relm_core_pairings_expire(A.core), 0);
	ck_assert_int_eq(relm_core_pairings_expire(J.core), 0);
	ck_assert_int_eq(pairings_of(&A), 0);
	ck_assert_int_eq(pairings_of(&J), 0);
}
END_TEST

/* Each bad code: its error, and no change to A's circle. */
START_TEST(test_bad_codes)
{
	char code[RELM_PAIR_CODE_MAX], wrong[RELM_PAIR_CODE_MAX];
	uint8_t pid[16], proton[16], *b = NULL;
	size_t l = 0;
	uint64_t expires = 0;
	struct relm_pair_code pc;
	struct relm_pair_keys k;
	int why = 0;

	ck_assert_int_eq(relm_core_pair_begin(A.core, pa, code, sizeof code, &expires), 0);
	ck_assert_int_eq(relm_core_pair_join(J.core, "relm-pair:%%", 12, NULL, pid, proton), RELM_EMALFORMED);
	ck_assert_int_eq(relm_core_pair_join(J.core, code, 22, NULL, pid, proton), RELM_ETRUNCATED);
	ck_assert_int_eq(pairings_of(&J), 0);
	ck_assert_int_eq(relm_pair_code_decode(&pc, code, strlen(code), clock_ms), 0);

	/* another mailbox server */
	{
		struct tu_daemon X;
		tu_daemon_mkdir(&X, "elsewhere");
		ck_assert_int_eq(tu_daemon_open(&X, &clock_ms, 4, "127.0.0.2:7427"), 0);
		ck_assert_int_eq(relm_core_pair_join(X.core, code, strlen(code), NULL, pid, proton), RELM_EINVAL);
		ck_assert_int_eq(pairings_of(&X), 0);
		tu_daemon_close(&X);
		tu_daemon_rmdir(&X);
	}
	/* junk at E's pairing mailbox: reported, the pairing still offered */
	relm_pair_derive(&k, pc.secret);
	{
		struct tu_mail *m;
		uint8_t junk[] = { 1, 1, 2, 3 };
		struct tu_daemon *one[1] = { &A };
		net.cap = net.n + 8;
		net.v = realloc(net.v, net.cap * sizeof *net.v);
		m = &net.v[net.n++];
		memset(m, 0, sizeof *m);
		memcpy(m->mailbox, k.mbox_e_pk, 32);
		m->seq = 1;
		m->buf = malloc(sizeof junk);
		memcpy(m->buf, junk, sizeof junk);
		m->len = sizeof junk;
		tu_settle(one, 1, &net, 2, 100);
	}
	ck_assert_int_eq(events_of(&A, RELM_EV_ENVELOPE_UNDECRYPTABLE, &why), 1);
	ck_assert_int_eq(why, RELM_ETRUNCATED);
	ck_assert_int_eq(pairings_of(&A), 1);
	ck_assert_uint_eq(circle_of(&A, &b, &l), 1);
	free(b);

	/* a mistyped secret: mailboxes nobody reads — waiting, then expired */
	pc.secret[5] ^= 0x20;
	ck_assert_int_gt(relm_pair_code_encode(wrong, sizeof wrong, &pc), 0);
	ck_assert_int_eq(relm_core_pair_join(K.core, wrong, strlen(wrong), NULL, pid, proton), RELM_EPENDING);
	settle();
	ck_assert_int_eq(relm_core_pair_status(K.core, pid, proton), RELM_EPENDING);
	clock_ms = expires;
	ck_assert_int_eq(relm_core_pair_status(K.core, pid, proton), RELM_EEXPIRED);
	ck_assert_int_eq(relm_core_pairings_expire(K.core), 0);
	ck_assert_int_eq(relm_core_pair_status(K.core, pid, proton), RELM_EEXPIRED);
	/* the real code, now expired */
	ck_assert_int_eq(relm_core_pair_join(J.core, code, strlen(code), NULL, pid, proton), RELM_EEXPIRED);
	ck_assert_int_eq(pairings_of(&J), 0);
	ck_assert_int_eq(rows_of(&A), 1);
	ck_assert_uint_eq(circle_of(&A, &b, &l), 1);
	free(b);
	sodium_memzero(&pc, sizeof pc);
	sodium_memzero(&k, sizeof k);
}
END_TEST

/* J's daemon stops after its JOIN is stored and before it is posted, and
 * again after the WELCOME was committed by E but before J read it:
 * reopened, the same code resumes (the stored JOIN, not a new one) and
 * the pairing completes once. */
START_TEST(test_resume)
{
	char code[RELM_PAIR_CODE_MAX];
	uint8_t pid[16], proton[16];
	uint64_t expires = 0;
	struct tu_daemon *ae[1] = { &A };

	ck_assert_int_eq(relm_core_pair_begin(A.core, pa, code, sizeof code, &expires), 0);
	ck_assert_int_eq(relm_core_pair_join(J.core, code, strlen(code), "tablet", pid, proton), RELM_EPENDING);
	tu_daemon_close(&J);                      /* J killed: its outbox holds the JOIN */
	ck_assert_int_eq(tu_daemon_open(&J, &clock_ms, 2, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(relm_core_pair_join(J.core, code, strlen(code), "tablet", pid, proton), RELM_EPENDING);
	ck_assert_int_eq(tu_pump(&J, &net), 0);   /* both JOINs (the same bytes) posted */
	tu_settle(ae, 1, &net, 3, 100);           /* E welcomes the first, sends the WELCOME again for the second */
	ck_assert_int_eq(rows_of(&A), 2);
	tu_daemon_close(&J);
	ck_assert_int_eq(tu_daemon_open(&J, &clock_ms, 2, "127.0.0.1:7427"), 0);
	settle();
	ck_assert_int_eq(relm_core_pair_status(J.core, pid, proton), 0);
	ck_assert_int_eq(rows_of(&A), 2);
	ck_assert_int_eq(rows_of(&J), 2);
	ck_assert_int_eq(events_of(&A, RELM_EV_DEVICE_ADDED, NULL), 1);
}
END_TEST


/* ---- the bulk state (devices.md §12.6) ----------------------------------- */

static int rel_ids_cb(void *ctx, const struct relm_store_rel *r)
{
	uint8_t (*v)[16] = ctx;
	for (int i = 0; i < 4; i++)
		if (sodium_is_zero(v[i], 16)) {
			memcpy(v[i], r->id, 16);
			return 0;
		}
	return 1;
}

/* d's relationships of proton (at most 4) into v; how many. */
static int rels_of(struct tu_daemon *d, const uint8_t proton[16], uint8_t v[4][16])
{
	int n = 0;
	memset(v, 0, 4 * 16);
	ck_assert_int_eq(relm_store_rel_list(d->st, proton, NULL, 0, rel_ids_cb, v), 0);
	while (n < 4 && !sodium_is_zero(v[n], 16))
		n++;
	return n;
}

struct hist_row {
	uint8_t id[16];
	int in, origin, status;
	char body[64];
};

struct hist_list {
	struct hist_row v[64];
	int n;
};

static int hist_cb(void *ctx, const struct relm_store_msg *m)
{
	struct hist_list *h = ctx;
	struct hist_row *r;
	ck_assert_int_lt(h->n, 64);
	r = &h->v[h->n++];
	memcpy(r->id, m->id, 16);
	r->in = m->direction_in;
	r->origin = m->origin;
	r->status = m->status;
	snprintf(r->body, sizeof r->body, "%.*s", (int)m->body_len, (const char *)m->body);
	return 0;
}

/* d's history of rel, oldest first. */
static void history_of(struct tu_daemon *d, const uint8_t rel[16], struct hist_list *h)
{
	memset(h, 0, sizeof *h);
	ck_assert_int_eq(relm_store_msg_list_after(d->st, rel, 0, 0, hist_cb, h), 0);
}

/* A's and J's history of rel are the same messages in the same order;
 * what A sent is J's sibling's. */
static void same_history(const uint8_t rel[16])
{
	struct hist_list *a = calloc(1, sizeof *a), *j = calloc(1, sizeof *j);

	history_of(&A, rel, a);
	history_of(&J, rel, j);
	ck_assert_int_eq(a->n, j->n);
	for (int i = 0; i < a->n; i++) {
		ck_assert_int_eq(memcmp(a->v[i].id, j->v[i].id, 16), 0);
		ck_assert_int_eq(a->v[i].in, j->v[i].in);
		ck_assert_int_eq(j->v[i].origin, a->v[i].origin == RELM_ORIGIN_SELF ? RELM_ORIGIN_SIBLING
		                                                                     : a->v[i].origin);
		ck_assert_int_eq(a->v[i].status, j->v[i].status);
		ck_assert_str_eq(a->v[i].body, j->v[i].body);
	}
	free(a);
	free(j);
}

/* A's and J's trees of rel hold the same nodes and choose the same one;
 * J made none of them. */
static void same_tree(const uint8_t rel[16])
{
	struct relm_rel *ra = NULL, *rj = NULL;
	struct relm_rel_info *ia = calloc(1, sizeof *ia), *ij = calloc(1, sizeof *ij);

	ck_assert_int_eq(relm_core_rel_load(A.core, rel, &ra), 0);
	ck_assert_int_eq(relm_core_rel_load(J.core, rel, &rj), 0);
	relm_rel_describe(ra, ia);
	relm_rel_describe(rj, ij);
	ck_assert_uint_eq(ia->nnodes, ij->nnodes);
	for (uint32_t i = 0; i < ia->nnodes; i++) {
		ck_assert_int_eq(memcmp(ia->nodes[i].id, ij->nodes[i].id, 16), 0);
		ck_assert_uint_eq(ia->nodes[i].n, ij->nodes[i].n);
		ck_assert(!ij->nodes[i].own);
	}
	ck_assert_int_ge(ia->chosen, 0);
	ck_assert_int_eq(ia->chosen, ij->chosen);
	relm_rel_free(ra);
	relm_rel_free(rj);
	free(ia);
	free(ij);
}

static void settle_all(void)
{
	struct tu_daemon *ds[4] = { &A, &B, &K, &J };
	tu_settle(ds, 4, &net, 10, 1000);
}

static uint8_t pb[16], pk[16], rb[16], rk[16];
static char inv_open[RELM_INVITE_TEXT_MAX];     /* alice's invite nobody accepted yet */

/* alice has two friends: bob (three messages, both ways) and K (one). */
static void two_friends(void)
{
	char inv[RELM_INVITE_TEXT_MAX];
	uint8_t ipk[32], id[16];
	struct tu_daemon *ds[3] = { &A, &B, &K };
	int was_new;

	ck_assert_int_eq(relm_core_proton_create(B.core, "bob", pb, ipk), 0);
	ck_assert_int_eq(relm_core_proton_create(K.core, "kim", pk, ipk), 0);
	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 0, 0, inv, sizeof inv, NULL), 0);
	ck_assert_int_eq(relm_core_invite_accept(B.core, pb, inv, strlen(inv), "alice", rb), 0);
	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 0, 0, inv, sizeof inv, NULL), 0);
	ck_assert_int_eq(relm_core_invite_accept(K.core, pk, inv, strlen(inv), "alice", rk), 0);
	tu_settle(ds, 3, &net, 5, 3000);
	ck_assert_int_eq(relm_core_message_send(A.core, rb, "a1", 2, NULL, id, &was_new), 0);
	tu_settle(ds, 3, &net, 5, 1000);
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "b1", 2, NULL, id, &was_new), 0);
	tu_settle(ds, 3, &net, 5, 1000);
	ck_assert_int_eq(relm_core_message_send(A.core, rb, "a2", 2, NULL, id, &was_new), 0);
	ck_assert_int_eq(relm_core_message_send(K.core, rk, "k1", 2, NULL, id, &was_new), 0);
	tu_settle(ds, 3, &net, 5, 3000);
	ck_assert_int_eq(tu_history_count(&A, rb, 0), 2);
	ck_assert_int_eq(tu_history_count(&A, rb, 1), 1);
	ck_assert_int_eq(tu_history_count(&A, rk, 1), 1);
	/* one invite nobody accepted yet: J must be able to answer it too */
	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 1, 0, inv_open, sizeof inv_open, NULL), 0);
}

/* J holds what A holds, in both relationships; J reads and sends.
 * refused: whether J passed frames over (a bulk interrupted). */
static void check_synced_and_live(int refused)
{
	uint8_t v[4][16], id[16];
	int was_new, nrels = 0;
	struct relm_store_rel sr;

	ck_assert_int_eq(rels_of(&J, pa, v), 2);
	ck_assert_int_eq(relm_store_rel_get(J.st, rb, &sr, 0), 0);
	ck_assert_str_eq(sr.label, "");
	relm_store_rel_clear(&sr);
	same_history(rb);
	same_history(rk);
	same_tree(rb);
	same_tree(rk);
	ck_assert_int_eq(events_of(&J, RELM_EV_DEVICE_SYNCED, NULL), 1);
	ck_assert_int_eq(count_where(&J, "state='synced'"), 1);
	ck_assert_int_eq(events_of(&J, RELM_EV_RELATIONSHIP_CREATED, NULL), 2);
	ck_assert_int_eq(events_of(&J, RELM_EV_PROTON_CREATED, NULL), 1);   /* the proton joined */
	/* bob's next message reaches J (and A) */
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "b2", 2, NULL, id, &was_new), 0);
	settle_all();
	ck_assert_int_eq(tu_history_count(&J, rb, 1), 2);
	ck_assert_int_eq(tu_history_count(&A, rb, 1), 2);
	/* J sends: bob gets it once, from the one alice he knows */
	ck_assert_int_eq(relm_core_message_send(J.core, rb, "from the tablet", 15, NULL, id, &was_new), 0);
	settle_all();
	ck_assert_int_eq(tu_history_count(&B, rb, 1), 3);
	ck_assert_int_eq(relm_store_msg_get(B.st, rb, id, &(struct relm_store_msg){ 0 }), 0);
	ck_assert_int_eq(relm_store_rel_list(B.st, pb, NULL, 0, count_rels_cb, &nrels), 0);
	ck_assert_int_eq(nrels, 1);
	ck_assert_int_eq(tu_history_count(&A, rb, 0), 3);    /* A has J's send from its copy */
	/* and bob answers: all three agree */
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "b3", 2, NULL, id, &was_new), 0);
	settle_all();
	ck_assert_int_eq(tu_history_count(&J, rb, 1), 3);
	ck_assert_int_eq(tu_history_count(&A, rb, 1), 3);
	ck_assert_int_eq(tu_history_count(&B, rb, 1), 3);
	ck_assert_int_eq(events_of(&J, RELM_EV_DEVICE_SYNCED, NULL), 1);
	if (refused)
		ck_assert_int_gt(events_of(&J, RELM_EV_SIBLING_REFUSED, NULL), 0);
	else
		ck_assert_int_eq(events_of(&J, RELM_EV_SIBLING_REFUSED, NULL), 0);
}

/* ---- a device mailbox apart from every other (devices.md §1) ------------- */

enum { MBOX_MAX = 32, RUN = 4 };

struct mbox_list {
	uint8_t id[MBOX_MAX][32];
	int n;
};

static int mbox_cb(void *ctx, const uint8_t id[32], uint64_t cursor)
{
	struct mbox_list *l = ctx;
	(void)cursor;
	ck_assert_int_lt(l->n, MBOX_MAX);
	memcpy(l->id[l->n++], id, 32);
	return 0;
}

static int mbox_in(const struct mbox_list *l, const uint8_t id[32])
{
	int n = 0;
	for (int i = 0; i < l->n; i++)
		n += memcmp(l->id[i], id, 32) == 0;
	return n;
}

/* 1 if a and b (32 bytes each) have RUN bytes in a row in common, at any
 * offsets: more than chance (p < 2^-22 for independent random bytes). */
static int common_run(const uint8_t a[32], const uint8_t b[32])
{
	for (int i = 0; i + RUN <= 32; i++)
		for (int j = 0; j + RUN <= 32; j++)
			if (!memcmp(a + i, b + j, RUN))
				return 1;
	return 0;
}

/* d's device mailbox of alice: one of the mailboxes d reads (all into
 * l), and its key pair shares nothing with any other of them — no id,
 * read key or seed has a run of RUN bytes of another's id or read key.
 * Its id into dev. */
static void device_mailbox_apart(struct tu_daemon *d, struct mbox_list *l, uint8_t dev[32])
{
	struct relm_store_device_keys k;
	uint8_t realm[32], mine[3][32], theirs[2][32];

	memset(l, 0, sizeof *l);
	ck_assert_int_eq(relm_core_mailboxes(d->core, mbox_cb, l), 0);
	ck_assert_int_eq(relm_store_device_keys_get(d->st, pa, &k), 0);
	ck_assert_int_eq(mbox_in(l, k.mailbox_id), 1);
	memset(realm, 0x5a, sizeof realm);
	memcpy(mine[0], k.mailbox_id, 32);
	memcpy(mine[1], k.mailbox_sk, 32);           /* the seed */
	ck_assert_int_eq(relm_core_mailbox_read_key(d->core, k.mailbox_id, realm, mine[2]), 0);
	for (int i = 0; i < l->n; i++) {
		if (!memcmp(l->id[i], k.mailbox_id, 32))
			continue;
		memcpy(theirs[0], l->id[i], 32);
		ck_assert_int_eq(relm_core_mailbox_read_key(d->core, l->id[i], realm, theirs[1]), 0);
		for (int a = 0; a < 3; a++)
			for (int b = 0; b < 2; b++)
				ck_assert_msg(!common_run(mine[a], theirs[b]), "device mailbox material %d and mailbox %d's %d", a, i, b);
	}
	memcpy(dev, k.mailbox_id, 32);
	sodium_memzero(mine, sizeof mine);
	sodium_memzero(theirs, sizeof theirs);
	relm_store_device_keys_clear(&k);
}

/* A and J read the same relationship mailboxes, each its own device
 * mailbox, and nothing of a device mailbox is in another mailbox's keys
 * or in the other device's. */
static void device_mailboxes_apart(int rels)
{
	struct mbox_list *la = calloc(1, sizeof *la), *lj = calloc(1, sizeof *lj);
	uint8_t da[32], dj[32], v[4][16];

	ck_assert(la && lj);
	device_mailbox_apart(&A, la, da);
	device_mailbox_apart(&J, lj, dj);
	ck_assert_int_eq(mbox_in(lj, da), 0);
	ck_assert_int_eq(mbox_in(la, dj), 0);
	ck_assert(!common_run(da, dj));
	ck_assert_int_eq(rels_of(&A, pa, v), rels);
	for (int i = 0; i < rels; i++) {
		struct relm_store_rel r;
		ck_assert_int_eq(relm_store_rel_get(A.st, v[i], &r, 0), 0);
		ck_assert_int_eq(mbox_in(la, r.mailbox_id), 1);
		ck_assert_int_eq(mbox_in(lj, r.mailbox_id), 1);
		relm_store_rel_clear(&r);
	}
	free(la);
	free(lj);
}

START_TEST(test_bulk)
{
	char code[RELM_PAIR_CODE_MAX];
	uint8_t pid[16], proton[16];
	uint64_t expires = 0;

	two_friends();
	ck_assert_int_eq(relm_core_pair_begin(A.core, pa, code, sizeof code, &expires), 0);
	ck_assert_int_eq(relm_core_pair_join(J.core, code, strlen(code), "tablet", pid, proton), RELM_EPENDING);
	settle_all();
	ck_assert_int_eq(relm_core_pair_status(J.core, pid, proton), 0);
	check_synced_and_live(0);
	/* J reads the invite's mailbox too: carol accepting the invite alice
	 * made before the pairing makes the relationship on J as on A */
	{
		uint8_t ipk[32], pc[16], rcar[16], v[4][16];
		struct tu_daemon C;
		tu_daemon_mkdir(&C, "carol");
		ck_assert_int_eq(tu_daemon_open(&C, &clock_ms, 5, "127.0.0.1:7427"), 0);
		ck_assert_int_eq(relm_core_proton_create(C.core, "carol", pc, ipk), 0);
		ck_assert_int_eq(relm_core_invite_accept(C.core, pc, inv_open, strlen(inv_open), "alice", rcar), 0);
		ck_assert_int_eq(tu_pump(&C, &net), 0);
		ck_assert_int_eq(tu_deliver(&J, &net), 0);
		ck_assert_int_eq(rels_of(&J, pa, v), 3);
		ck_assert_int_eq(relm_store_rel_get(J.st, rcar, &(struct relm_store_rel){ 0 }, 0), 0);
		tu_daemon_close(&C);
		tu_daemon_rmdir(&C);
	}
	device_mailboxes_apart(2);      /* carol's is on J only: A has not read her hello yet */
}
END_TEST

/* J's daemon stops in the middle of the bulk state (it had read the
 * WELCOME and the first few frames): what it kept in memory is lost, the
 * count at `synced` falls short, J asks again, and ends as if nothing had
 * happened — synced once. */
START_TEST(test_bulk_interrupted)
{
	char code[RELM_PAIR_CODE_MAX];
	uint8_t pid[16], proton[16], v[4][16];
	uint64_t expires = 0;
	struct tu_daemon *ae[1] = { &A };
	size_t all, cut;
	int extra;

	two_friends();
	ck_assert_int_eq(relm_core_pair_begin(A.core, pa, code, sizeof code, &expires), 0);
	ck_assert_int_eq(relm_core_pair_join(J.core, code, strlen(code), "tablet", pid, proton), RELM_EPENDING);
	ck_assert_int_eq(tu_pump(&J, &net), 0);
	tu_settle(ae, 1, &net, 1, 10);             /* A welcomes J: the WELCOME and the bulk are posted */
	all = net.n;
	/* J sees the mailboxes only up to a cut: the WELCOME, then two more
	 * envelopes (the session's first frames: a `rel` whose state has not
	 * come) */
	for (cut = 1, extra = -1; cut <= all && extra < 2; cut++) {
		net.n = cut;
		ck_assert_int_eq(tu_deliver(&J, &net), 0);
		net.n = all;
		if (extra >= 0)
			extra++;
		else if (relm_core_pair_status(J.core, pid, proton) == 0)
			extra = 0;
	}
	ck_assert_int_eq(relm_core_pair_status(J.core, pid, proton), 0);
	ck_assert_int_lt(rels_of(&J, pa, v), 2);
	tu_daemon_close(&J);                       /* killed mid-bulk */
	ck_assert_int_eq(tu_daemon_open(&J, &clock_ms, 2, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(events_of(&J, RELM_EV_DEVICE_SYNCED, NULL), 0);
	settle_all();
	/* what the restart lost was refused when it came (a state and a
	 * history of a relationship J did not know), then asked for again */
	check_synced_and_live(1);
}
END_TEST

static int inv_count_cb(void *ctx, const struct relm_store_invite *inv)
{
	(void)inv;
	(*(int *)ctx)++;
	return 0;
}

static int invites_of(struct tu_daemon *d)
{
	int n = 0;
	ck_assert_int_eq(relm_store_invite_list(d->st, pa, clock_ms, inv_count_cb, &n), 0);
	return n;
}

/* Bulk-state frames from a sibling (x, a device of alice's circle that the
 * test plays) to A, which is not joining: what is bad is refused and
 * nothing of it kept; what is good adds only what A lacks; a `synced`
 * changes nothing. */
START_TEST(test_bulk_frames)
{
	struct tu_xdev x;
	struct relm_sib_invite v;
	struct relm_sib_hmsg h;
	struct relm_sib_rel r;
	struct relm_sib_state st;
	struct relm_sib_synced sy = { 99, 999 };
	struct relm_rel *rel = NULL;
	struct relm_store_msg m;
	uint8_t *frame = NULL, *blob = NULL, unknown[16], nid[16];
	size_t flen = 0, blen = 0;
	uint8_t v4[4][16];
	int codes[16] = { 0 }, inv0, hist0;

	two_friends();
	tu_xdev_make(&x, 0x3c, "phone");
	ck_assert_int_eq(relm_core_device_add(A.core, pa, &x.cd, NULL), 0);
	tu_xdev_open(&x, &A, pa, &B.env, &net);
	ck_assert_int_eq(tu_deliver(&A, &net), 0);
	inv0 = invites_of(&A);
	hist0 = tu_history_count(&A, rb, 0) + tu_history_count(&A, rb, 1);

	/* an invite whose mailbox key is not a key pair: malformed */
	memset(&v, 0, sizeof v);
	v.spk_id = 4242;
	randombytes_buf(v.spk_priv, 32);
	randombytes_buf(v.mailbox_sk, 64);
	v.expires = clock_ms + 3600000;
	ck_assert_int_eq(relm_sib_invites_encode(&frame, &flen, &v, 1), 0);
	tu_xdev_send(&x, &A, &B.env, &net, frame, flen);
	relm_sib_buf_free(frame, flen);
	ck_assert_int_eq(invites_of(&A), inv0);

	/* history of a relationship A does not hold: not_found */
	randombytes_buf(unknown, 16);
	memset(&h, 0, sizeof h);
	randombytes_buf(nid, 16);
	memcpy(h.id, nid, 16);
	h.origin = RELM_ORIGIN_SELF;
	h.status = RELM_STATUS_DELIVERED;
	snprintf(h.kind, sizeof h.kind, "text");
	h.body = (const uint8_t *)"from x";
	h.body_len = 6;
	h.ts = clock_ms;
	ck_assert_int_eq(relm_sib_history_new(&frame, &flen, unknown), 0);
	ck_assert_int_eq(relm_sib_history_append(&frame, &flen, &h), 0);
	tu_xdev_send(&x, &A, &B.env, &net, frame, flen);
	relm_sib_buf_free(frame, flen);

	/* a rel A does not hold, and a state under its id that is another
	 * relationship's (bob's): invalid_argument, no relationship made */
	memset(&r, 0, sizeof r);
	memcpy(r.rel, unknown, 16);
	r.created = clock_ms;
	ck_assert_int_eq(relm_sib_rel_encode(&frame, &flen, &r), 0);
	tu_xdev_send(&x, &A, &B.env, &net, frame, flen);
	relm_sib_buf_free(frame, flen);
	ck_assert_int_eq(relm_core_rel_load(A.core, rb, &rel), 0);
	ck_assert_int_eq(relm_rel_encode(rel, &blob, &blen), 0);
	memset(&st, 0, sizeof st);
	memcpy(st.rel, unknown, 16);
	randombytes_buf(st.xfer, 16);
	st.parts = 1;
	st.total = (uint32_t)blen;
	st.chunk = blob;
	st.chunk_len = blen;
	ck_assert_int_eq(relm_sib_state_encode(&frame, &flen, &st), 0);
	tu_xdev_send(&x, &A, &B.env, &net, frame, flen);
	relm_sib_buf_free(frame, flen);
	relm_rel_blob_free(blob, blen);
	relm_rel_free(rel);
	ck_assert_int_eq(rels_of(&A, pa, v4), 2);

	/* history of bob's relationship: one message A lacks (kept, x's send
	 * is A's sibling's) and one it holds (kept once) */
	{
		struct hist_list *l = calloc(1, sizeof *l);
		history_of(&A, rb, l);
		ck_assert_int_eq(relm_sib_history_new(&frame, &flen, rb), 0);
		ck_assert_int_eq(relm_sib_history_append(&frame, &flen, &h), 0);
		memcpy(h.id, l->v[0].id, 16);
		ck_assert_int_eq(relm_sib_history_append(&frame, &flen, &h), 0);
		tu_xdev_send(&x, &A, &B.env, &net, frame, flen);
		relm_sib_buf_free(frame, flen);
		free(l);
	}
	ck_assert_int_eq(tu_history_count(&A, rb, 0) + tu_history_count(&A, rb, 1), hist0 + 1);
	ck_assert_int_eq(relm_store_msg_get(A.st, rb, nid, &m), 0);
	ck_assert_int_eq(m.origin, RELM_ORIGIN_SIBLING);
	ck_assert_int_eq(m.status, RELM_STATUS_DELIVERED);

	/* synced on a device that is not joining: nothing */
	ck_assert_int_eq(relm_sib_synced_encode(&frame, &flen, &sy), 0);
	tu_xdev_send(&x, &A, &B.env, &net, frame, flen);
	relm_sib_buf_free(frame, flen);
	ck_assert_int_eq(events_of(&A, RELM_EV_DEVICE_SYNCED, NULL), 0);

	ck_assert_int_eq(tu_refused_codes(&A, codes + 1, 15), 3);
	ck_assert_int_eq(codes[1], RELM_EMALFORMED);
	ck_assert_int_eq(codes[2], RELM_ENOTFOUND);
	ck_assert_int_eq(codes[3], RELM_EINVAL);
	tu_xdev_clear(&x);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("core_pairing");
	TCase *tc = tcase_create("pairing");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_pair);
	tcase_add_test(tc, test_bad_codes);
	tcase_add_test(tc, test_resume);
	suite_add_tcase(s, tc);
	tc = tcase_create("bulk");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_bulk);
	tcase_add_test(tc, test_bulk_interrupted);
	tcase_add_test(tc, test_bulk_frames);
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

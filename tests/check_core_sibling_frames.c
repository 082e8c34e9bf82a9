/*
 * check_core_sibling_frames.c — what siblings say of the proton in lib/core
 * (proto/devices.md §4, §12.7): a circle from a sibling is accepted, its
 * rows follow; frames that fail (junk, truncated, another proton's circle,
 * an older circle, a state_req for no relationship, a bad bundle) are
 * refused with the circle unchanged; a sibling's state repairs a
 * relationship, and a state_req is answered at most once per
 * RELM_REPAIR_GAP_MS.  Alice on two devices (A, A2) and bob (B) as whole
 * daemons (util_devices.h); a device of the circle the test plays itself
 * (util_xdev.h).
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_rand.h"
#include "util_world.h"
#include "util_xdev.h"
#include "util_devices.h"
#include "core/core.h"
#include "engine/effects.h"
#include "engine/rel.h"
#include "engine/rel_state.h"
#include "wire/bundle.h"
#include "wire/circle.h"
#include "wire/invite.h"
#include "wire/sibling.h"
#include "error.h"

static uint64_t clock_ms;
static struct tu_daemon A, B, A2;     /* A2: a second device of alice's */
static struct tu_net net;
static uint8_t pa[16], pb[16], ipk_a[32];

static void setup(void)
{
	tu_devices_open(&A, &B, &A2, &net, &clock_ms, pa, pb, ipk_a);
}

static void teardown(void)
{
	tu_devices_close(&A, &B, &A2, &net);
}

/* A2: a second device of alice's with a copy of relationship rb
 * (util_devices.h). */
static void make_a2(const uint8_t rb[16])
{
	tu_make_second_device(&A, &A2, pa, &clock_ms, rb);
}

/* A device the test plays itself (util_xdev.h), sending to A2. */
static void xdev_open(struct tu_xdev *x)
{
	tu_xdev_open(x, &A2, pa, &B.env, &net);
}

static void xdev_send(struct tu_xdev *x, const uint8_t *frame, size_t len)
{
	tu_xdev_send(x, &A2, &B.env, &net, frame, len);
}

/* x reads what A2 posted on its session: the state frames' reassembled
 * state of relationship rel (malloc'd; NULL if none came), and how many
 * transfers came. */
static uint8_t *xdev_read_state(struct tu_xdev *x, const uint8_t rel[16], size_t *len, int *transfers,
                                size_t *from)
{
	uint8_t *st = NULL;

	ck_assert_int_eq(tu_pump(&A2, &net), 0);
	for (; *from < net.n; (*from)++) {
		struct relm_effects fx;
		if (memcmp(net.v[*from].mailbox, x->sess->mbox_pk, 32) != 0)
			continue;
		relm_effects_init(&fx);
		ck_assert_int_eq(relm_rel_receive(x->sess, &B.env, net.v[*from].buf, net.v[*from].len, &fx), 0);
		for (size_t i = 0; i < fx.n; i++) {
			struct relm_sib_msg m;
			if (fx.v[i].type != RELM_FX_SIBLING)
				continue;
			ck_assert_int_eq(relm_sib_decode(&m, fx.v[i].data, fx.v[i].len), 0);
			ck_assert_int_eq(m.type, RELM_SIB_STATE);
			ck_assert_int_eq(memcmp(m.u.state.rel, rel, 16), 0);
			if (m.u.state.part == 0) {
				(*transfers)++;
				free(st);
				st = malloc(m.u.state.total);
				*len = m.u.state.total;
			}
			memcpy(st + (size_t)m.u.state.part * RELM_SIB_STATE_CHUNK, m.u.state.chunk, m.u.state.chunk_len);
		}
		relm_effects_clear(&fx);
	}
	return st;
}

static int rows_of(struct tu_daemon *d)
{
	int n = 0;
	ck_assert_int_eq(relm_store_device_list(d->st, pa, tu_count_devices_cb, &n), 0);
	return n;
}

static uint64_t epoch_of(struct tu_daemon *d)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t epoch = 0;
	ck_assert_int_eq(relm_store_circle_get(d->st, pa, &epoch, &buf, &len), 0);
	free(buf);
	return epoch;
}

/* A device added on A (devices.md §12.7): A signs epoch 3 and sends it to
 * A2 on their session; A2 accepts it, its rows follow and it raises
 * device.added.  Then a device of the circle (x) sends A2 frames that
 * fail: junk, a truncated state_req, a circle signed by another proton, an
 * older circle again, a state_req for a relationship A2 does not hold —
 * each reported as sibling.refused (or, the older circle, ignored) with
 * the circle and rows unchanged. */
START_TEST(test_circle_frames)
{
	char inv[RELM_INVITE_TEXT_MAX];
	struct tu_daemon *ds[3] = { &A, &B, &A2 };
	struct tu_xdev x;
	uint8_t rb[16], *frame = NULL, *old = NULL;
	size_t flen = 0, olen = 0;
	uint64_t epoch = 0, e;
	int codes[16] = { 0 };

	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 0, 0, inv, sizeof inv, NULL), 0);
	ck_assert_int_eq(relm_core_invite_accept(B.core, pb, inv, strlen(inv), "alice", rb), 0);
	tu_settle(ds, 2, &net, 5, 3000);
	make_a2(rb);
	ck_assert_int_eq(relm_store_circle_get(A2.st, pa, &e, &old, &olen), 0);
	tu_xdev_make(&x, 0x3c, "phone");
	ck_assert_int_eq(relm_core_device_add(A.core, pa, &x.cd, &epoch), 0);
	ck_assert_uint_eq(epoch, 3);
	/* the same device again, or its key under another id: exists */
	ck_assert_int_eq(relm_core_device_add(A.core, pa, &x.cd, NULL), RELM_EEXIST);
	ck_assert_int_eq(rows_of(&A), 3);
	ck_assert_int_eq(tu_count_events(&A, RELM_EV_DEVICE_ADDED), 1);
	ck_assert_int_eq(rows_of(&A2), 2);
	tu_settle(ds, 3, &net, 10, 1000);
	ck_assert_uint_eq(epoch_of(&A2), 3);
	ck_assert_int_eq(rows_of(&A2), 3);
	ck_assert_int_eq(tu_count_events(&A2, RELM_EV_DEVICE_ADDED), 1);
	ck_assert_int_eq(tu_count_events(&A2, RELM_EV_SIBLING_REFUSED), 0);

	/* x, now in A2's circle, opens a session and sends bad frames */
	xdev_open(&x);
	ck_assert_int_eq(tu_deliver(&A2, &net), 0);
	xdev_send(&x, (const uint8_t *)"\x02junk", 5);                       /* circle: bad_version */
	xdev_send(&x, (const uint8_t *)"\x03\x01\x02\x03\x04", 5);            /* state_req: truncated */
	{
		struct relm_circle *c = calloc(1, sizeof *c);
		struct relm_store_proton bob;
		uint8_t *out = malloc(RELM_CIRCLE_MAX);
		int n;
		ck_assert_int_eq(relm_circle_decode(c, old, olen), 0);
		ck_assert_int_eq(relm_store_proton_get(B.st, pb, &bob, RELM_STORE_WITH_SECRETS), 0);
		memcpy(c->ipk, bob.ipk, 32);                                  /* another proton's circle */
		c->epoch = 9;
		n = relm_circle_sign(out, RELM_CIRCLE_MAX, c, bob.isk);
		ck_assert_int_gt(n, 0);
		ck_assert_int_eq(relm_sib_circle_encode(&frame, &flen, out, (size_t)n), 0);
		xdev_send(&x, frame, flen);
		relm_sib_buf_free(frame, flen);
		relm_store_proton_clear(&bob);
		free(out);
		free(c);
	}
	ck_assert_int_eq(relm_sib_circle_encode(&frame, &flen, old, olen), 0);   /* epoch 2 again */
	xdev_send(&x, frame, flen);
	relm_sib_buf_free(frame, flen);
	ck_assert_int_eq(relm_sib_state_req_encode(&frame, &flen, pb), 0);     /* no such relationship */
	xdev_send(&x, frame, flen);
	relm_sib_buf_free(frame, flen);
	/* a bundle (§4.5): each message judged alone; a bad bundle once */
	{
		const uint8_t *two[2] = { (const uint8_t *)"\x02junk", (const uint8_t *)"\x03\x01\x02" };
		const size_t lens[2] = { 5, 3 };
		ck_assert_int_eq(relm_sib_bundle_encode(&frame, &flen, two, lens, 2), 0);
		xdev_send(&x, frame, flen);
		relm_sib_buf_free(frame, flen);
		xdev_send(&x, (const uint8_t *)"\x0d\x00\x01\x00\x00\x00\x01\x03", 8);   /* one message */
	}
	ck_assert_int_eq(tu_refused_codes(&A2, codes + 1, 15), 7);
	ck_assert_int_eq(codes[1], RELM_EVERSION);
	ck_assert_int_eq(codes[2], RELM_ETRUNCATED);
	ck_assert_int_eq(codes[3], RELM_EAUTH);
	ck_assert_int_eq(codes[4], RELM_ENOTFOUND);
	ck_assert_int_eq(codes[5], RELM_EVERSION);
	ck_assert_int_eq(codes[6], RELM_ETRUNCATED);
	ck_assert_int_eq(codes[7], RELM_EMALFORMED);
	ck_assert_uint_eq(epoch_of(&A2), 3);
	ck_assert_int_eq(rows_of(&A2), 3);
	ck_assert_int_eq(tu_count_events(&A2, RELM_EV_DEVICE_ADDED), 1);
	ck_assert_int_eq(tu_count_events(&A2, RELM_EV_DEVICE_REMOVED), 0);
	free(old);
	tu_xdev_clear(&x);
	tu_daemon_close(&A2);
	tu_daemon_rmdir(&A2);
}
END_TEST

static int node_count(struct tu_daemon *d, const uint8_t rb[16])
{
	struct relm_rel *rel = NULL;
	struct relm_rel_info info;
	int n;

	ck_assert_int_eq(relm_core_rel_load(d->core, rb, &rel), 0);
	relm_rel_describe(rel, &info);
	n = (int)info.nnodes;
	relm_rel_free(rel);
	return n;
}

/* Repair (devices.md §4.3, §4.4, §5.6): A sends while A2 hears nothing of
 * it; a sibling's state of the relationship (A's) merged into A2 brings A's
 * new node.  A2 answers a state_req with its state, at most once per
 * RELM_REPAIR_GAP_MS for one sibling and relationship. */
START_TEST(test_state_repair)
{
	char inv[RELM_INVITE_TEXT_MAX];
	struct tu_daemon *ds[3] = { &A, &B, &A2 };
	struct relm_store_rel r;
	struct relm_sib_state s;
	struct tu_xdev x;
	uint8_t rb[16], id[16], n1[16], n2[16], *frame = NULL, *st;
	size_t flen = 0, slen = 0, from = 0;
	int was_new = 0, transfers = 0, codes[16] = { 0 };

	ck_assert_int_eq(relm_core_invite_create(A.core, pa, 0, 0, inv, sizeof inv, NULL), 0);
	ck_assert_int_eq(relm_core_invite_accept(B.core, pb, inv, strlen(inv), "alice", rb), 0);
	tu_settle(ds, 2, &net, 5, 3000);
	make_a2(rb);
	tu_xdev_make(&x, 0x3c, "phone");
	ck_assert_int_eq(relm_core_device_add(A.core, pa, &x.cd, NULL), 0);
	tu_settle(ds, 3, &net, 10, 1000);
	xdev_open(&x);
	ck_assert_int_eq(tu_deliver(&A2, &net), 0);

	/* bob speaks, so that A's next send makes a node; A sends, and nothing
	 * of it is posted yet (its outbox holds the copy) */
	ck_assert_int_eq(relm_core_message_send(B.core, rb, "b", 1, NULL, id, &was_new), 0);
	tu_settle(ds, 3, &net, 10, 1000);
	ck_assert_int_eq(relm_core_message_send(A.core, rb, "m", 1, NULL, id, &was_new), 0);
	ck_assert_int_gt(node_count(&A, rb), node_count(&A2, rb));
	ck_assert_int_eq(relm_store_rel_get(A.st, rb, &r, RELM_STORE_WITH_STATE | RELM_STORE_WITH_SECRETS), 0);
	ck_assert_uint_le(r.state_len, RELM_SIB_STATE_CHUNK);
	memset(&s, 0, sizeof s);
	memcpy(s.rel, rb, 16);
	randombytes_buf(s.xfer, 16);
	s.parts = 1;
	s.total = (uint32_t)r.state_len;
	s.chunk = r.state;
	s.chunk_len = r.state_len;
	ck_assert_int_eq(relm_sib_state_encode(&frame, &flen, &s), 0);
	xdev_send(&x, frame, flen);
	relm_sib_buf_free(frame, flen);
	relm_store_rel_clear(&r);
	ck_assert_int_eq(node_count(&A2, rb), node_count(&A, rb));
	ck_assert_int_ge(tu_chosen_node(&A, rb, n1), 0);
	ck_assert_int_ge(tu_chosen_node(&A2, rb, n2), 0);
	ck_assert_int_eq(memcmp(n1, n2, 16), 0);

	/* state_req: answered once, not again within the gap, then again */
	ck_assert_int_eq(relm_sib_state_req_encode(&frame, &flen, rb), 0);
	xdev_send(&x, frame, flen);
	st = xdev_read_state(&x, rb, &slen, &transfers, &from);
	ck_assert_int_eq(transfers, 1);
	ck_assert_ptr_nonnull(st);
	{
		struct relm_rel *got = NULL;
		ck_assert_int_eq(relm_rel_decode(&got, st, slen), 0);
		ck_assert_int_eq(memcmp(got->id, rb, 16), 0);
		ck_assert_int_eq(got->sibling_session, 0);
		relm_rel_free(got);
	}
	sodium_memzero(st, slen);
	free(st);
	xdev_send(&x, frame, flen);
	free(xdev_read_state(&x, rb, &slen, &transfers, &from));
	ck_assert_int_eq(transfers, 1);
	clock_ms += RELM_REPAIR_GAP_MS + 1;
	xdev_send(&x, frame, flen);
	st = xdev_read_state(&x, rb, &slen, &transfers, &from);
	ck_assert_int_eq(transfers, 2);
	sodium_memzero(st, slen);
	free(st);
	relm_sib_buf_free(frame, flen);

	/* a state that is not a relationship's: refused, nothing changes */
	{
		int before = node_count(&A2, rb);
		memset(&s, 0, sizeof s);
		memcpy(s.rel, rb, 16);
		randombytes_buf(s.xfer, 16);
		s.parts = 1;
		s.total = 5;
		s.chunk = (const uint8_t *)"RLS\x05x";
		s.chunk_len = 5;
		ck_assert_int_eq(relm_sib_state_encode(&frame, &flen, &s), 0);
		xdev_send(&x, frame, flen);
		relm_sib_buf_free(frame, flen);
		ck_assert_int_eq(node_count(&A2, rb), before);
		ck_assert_int_eq(tu_refused_codes(&A2, codes + 1, 15), 1);
		ck_assert_int_eq(codes[1], RELM_EMALFORMED);
	}
	/* and the relationship goes on: A's send reaches bob, A2 follows */
	tu_settle(ds, 3, &net, 20, 3000);
	ck_assert_int_eq(tu_history_count(&B, rb, 1), 1);
	ck_assert_int_eq(tu_history_count(&A2, rb, 0), 1);
	ck_assert_int_eq(tu_history_count(&A2, rb, 1), 1);
	tu_xdev_clear(&x);
	tu_daemon_close(&A2);
	tu_daemon_rmdir(&A2);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("core_sibling_frames");
	TCase *tc = tcase_create("frames");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_circle_frames);
	tcase_add_test(tc, test_state_repair);
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

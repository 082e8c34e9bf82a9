/*
 * util_devices.c — alice on two devices and bob, as whole daemons
 * (util_devices.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_world.h"
#include "util_devices.h"
#include "core/core.h"
#include "engine/rel.h"
#include "crypto/crypto.h"
#include "wire/circle.h"
#include "error.h"

void tu_devices_open(struct tu_daemon *a, struct tu_daemon *b, struct tu_daemon *a2, struct tu_net *net,
                     uint64_t *clock_ms, uint8_t pa[16], uint8_t pb[16], uint8_t ipk_a[32])
{
	uint8_t ipk[32];
	*clock_ms = 1700000000000ull;
	memset(net, 0, sizeof *net);
	tu_daemon_mkdir(a, "alice");
	tu_daemon_mkdir(b, "bob");
	tu_daemon_mkdir(a2, "alice2");
	ck_assert_int_eq(tu_daemon_open(a, clock_ms, 1, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(tu_daemon_open(b, clock_ms, 2, "127.0.0.2:7427"), 0);
	ck_assert_int_eq(relm_core_proton_create(a->core, "alice", pa, ipk_a), 0);
	ck_assert_int_eq(relm_core_proton_create(b->core, "bob", pb, ipk), 0);
}

void tu_devices_close(struct tu_daemon *a, struct tu_daemon *b, struct tu_daemon *a2, struct tu_net *net)
{
	tu_daemon_close(a);
	tu_daemon_close(b);
	tu_daemon_rmdir(a);
	tu_daemon_rmdir(b);
	tu_daemon_rmdir(a2);
	tu_net_free(net);
}

int tu_count_devices_cb(void *ctx, const struct relm_store_device *d)
{
	(void)d;
	(*(int *)ctx)++;
	return 0;
}

struct relm_circle *tu_held_circle(struct tu_daemon *d, const uint8_t proton[16])
{
	struct relm_circle *c = calloc(1, sizeof *c);
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t epoch = 0;

	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(relm_store_circle_get(d->st, proton, &epoch, &buf, &len), 0);
	ck_assert_int_eq(relm_circle_decode(c, buf, len), 0);
	ck_assert_uint_eq(c->epoch, epoch);          /* the row's epoch is the circle's */
	free(buf);
	return c;
}

static int count_type_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	int *n = ctx;
	(void)seq;
	(void)ts;
	if (ev->type == n[1])
		n[0]++;
	return 0;
}

int tu_count_events(struct tu_daemon *d, int type)
{
	int n[2] = { 0, type };
	ck_assert_int_eq(relm_store_event_list(d->st, 0, 0, count_type_cb, n), 0);
	return n[0];
}

void tu_make_second_device(struct tu_daemon *a, struct tu_daemon *a2, const uint8_t pa[16], uint64_t *clock_ms,
                           const uint8_t rb[16])
{
	struct relm_store_proton p;
	struct relm_store_device d1, d2, row;
	struct relm_store_rel r;
	struct relm_circle *c1 = tu_held_circle(a, pa), *c2 = calloc(1, sizeof *c2);
	uint8_t seed[32], *buf = NULL, *out = malloc(RELM_CIRCLE_MAX);
	uint64_t epoch, cursor = 0;
	size_t len;
	int n;

	ck_assert_int_eq(tu_daemon_open(a2, clock_ms, 3, "127.0.0.1:7427"), 0);
	ck_assert_int_eq(relm_store_proton_get(a->st, pa, &p, RELM_STORE_WITH_SECRETS), 0);
	memset(&d2, 0, sizeof d2);
	memcpy(d2.proton, pa, 16);
	memset(d2.device, 0xd2, 16);
	snprintf(d2.label, sizeof d2.label, "tablet");
	d2.self = 1;
	randombytes_buf(seed, sizeof seed);
	relm_sign_keypair_from_seed(d2.pk, d2.sk, seed);
	d2.has_sk = 1;
	d2.epoch = 2;
	d2.added = *clock_ms;
	ck_assert_int_eq(relm_store_begin(a2->st), 0);
	ck_assert_int_eq(relm_store_proton_put(a2->st, &p), 0);
	ck_assert_int_eq(relm_store_device_put(a2->st, &d2), 0);
	ck_assert_int_eq(relm_store_commit(a2->st), 0);
	/* its device keys and a circle of its own, which epoch 2 replaces */
	ck_assert_int_eq(relm_core_devices_upgrade(a2->core), 0);
	ck_assert_int_eq(relm_store_circle_get(a2->st, pa, &epoch, &buf, &len), 0);
	ck_assert_int_eq(relm_circle_decode(c2, buf, len), 0);
	free(buf);
	ck_assert_uint_eq(c1->count, 1);
	c1->dev[1] = c2->dev[0];
	c1->dev[1].added = 2;
	c1->count = 2;
	c1->epoch = 2;
	n = relm_circle_sign(out, RELM_CIRCLE_MAX, c1, p.isk);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(relm_store_device_get_self(a->st, pa, &d1), 0);
	for (int i = 0; i < 2; i++) {
		struct tu_daemon *d = i ? a2 : a;
		row = i ? d1 : d2;           /* the other device, as a sibling row */
		row.self = 0;
		row.has_sk = 0;
		memset(row.sk, 0, sizeof row.sk);
		ck_assert_int_eq(relm_store_begin(d->st), 0);
		ck_assert_int_eq(relm_store_circle_put(d->st, pa, 2, out, (size_t)n), 0);
		ck_assert_int_eq(relm_store_device_put(d->st, &row), 0);
		ck_assert_int_eq(relm_store_commit(d->st), 0);
	}
	/* the relationship, as a holds it */
	ck_assert_int_eq(relm_store_rel_get(a->st, rb, &r, RELM_STORE_WITH_STATE | RELM_STORE_WITH_SECRETS), 0);
	ck_assert_int_eq(relm_store_cursor_get(a->st, r.mailbox_id, &cursor), 0);
	ck_assert_int_eq(relm_store_begin(a2->st), 0);
	ck_assert_int_eq(relm_store_rel_put(a2->st, &r), 0);
	ck_assert_int_eq(relm_store_cursor_set(a2->st, r.mailbox_id, cursor), 0);
	ck_assert_int_eq(relm_store_commit(a2->st), 0);
	relm_store_rel_clear(&r);
	relm_store_proton_clear(&p);
	relm_store_device_clear(&d1);
	relm_store_device_clear(&d2);
	sodium_memzero(seed, sizeof seed);
	free(out);
	free(c1);
	free(c2);
}

int tu_chosen_node(struct tu_daemon *d, const uint8_t rb[16], uint8_t node[16])
{
	struct relm_rel *rel = NULL;
	struct relm_rel_info info;
	int i;

	ck_assert_int_eq(relm_core_rel_load(d->core, rb, &rel), 0);
	relm_rel_describe(rel, &info);
	i = info.chosen;
	if (i >= 0)
		memcpy(node, info.nodes[i].id, 16);
	relm_rel_free(rel);
	return i;
}

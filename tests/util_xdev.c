/* util_xdev.c — see util_xdev.h. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_xdev.h"
#include "core/core.h"
#include "crypto/crypto.h"
#include "engine/rel.h"
#include "engine/rel_state.h"
#include "wire/addr.h"
#include "wire/invite.h"

void tu_xdev_make(struct tu_xdev *x, uint8_t fill, const char *label)
{
	uint8_t spk_priv[32], mb_pk[32], mb_sk[64];
	struct relm_addr a;

	memset(x, 0, sizeof *x);
	memset(x->cd.id, fill, 16);
	crypto_sign_keypair(x->cd.dpk, x->sk);
	snprintf(x->cd.label, sizeof x->cd.label, "%s", label);
	x->cd.invite.version = RELM_WIRE_VERSION;
	x->cd.invite.flags = RELM_INVITE_F_MULTI;
	memcpy(x->cd.invite.ipk, x->cd.dpk, 32);
	x->cd.invite.spk_id = 77;
	randombytes_buf(spk_priv, sizeof spk_priv);
	relm_x25519_public(x->cd.invite.spk, spk_priv);
	crypto_sign_keypair(mb_pk, mb_sk);
	ck_assert_int_eq(relm_addr_parse(&a, "127.0.0.1:7427", 14), 0);
	memcpy(a.id, mb_pk, 32);
	a.has_id = 1;
	ck_assert_int_gt(relm_addr_format(x->cd.invite.mailbox, sizeof x->cd.invite.mailbox, &a), 0);
	ck_assert_int_eq(relm_invite_sign(&x->cd.invite, x->sk), 0);
	sodium_memzero(spk_priv, sizeof spk_priv);
	sodium_memzero(mb_sk, sizeof mb_sk);
}

void tu_net_post(struct tu_net *net, const char *to, const uint8_t *buf, size_t len)
{
	struct relm_addr a;
	uint64_t seq = 0;
	struct tu_mail *m;

	ck_assert_int_eq(relm_addr_parse(&a, to, strlen(to)), 0);
	for (size_t i = 0; i < net->n; i++)
		if (!memcmp(net->v[i].mailbox, a.id, 32) && net->v[i].seq > seq)
			seq = net->v[i].seq;
	if (net->n == net->cap) {
		net->cap = net->cap ? 2 * net->cap : 64;
		net->v = realloc(net->v, net->cap * sizeof *net->v);
		ck_assert_ptr_nonnull(net->v);
	}
	m = &net->v[net->n++];
	memcpy(m->mailbox, a.id, 32);
	m->seq = seq + 1;
	m->buf = malloc(len);
	ck_assert_ptr_nonnull(m->buf);
	memcpy(m->buf, buf, len);
	m->len = len;
}

void tu_net_post_effects(struct tu_net *net, struct relm_effects *fx)
{
	for (size_t i = 0; i < fx->n; i++)
		if (fx->v[i].type == RELM_FX_POST)
			tu_net_post(net, fx->v[i].to, fx->v[i].data, fx->v[i].len);
	relm_effects_clear(fx);
}

void tu_xdev_open(struct tu_xdev *x, struct tu_daemon *to, const uint8_t proton[16],
                  const struct relm_env *env, struct tu_net *net)
{
	struct relm_store_device_keys k;
	struct relm_circle *c = calloc(1, sizeof *c);
	struct relm_effects fx;
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t epoch;
	int i;

	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(relm_store_circle_get(to->st, proton, &epoch, &buf, &len), 0);
	ck_assert_int_eq(relm_circle_decode(c, buf, len), 0);
	ck_assert_int_eq(relm_store_device_keys_get(to->st, proton, &k), 0);
	for (i = 0; i < (int)c->count; i++)
		if (c->dev[i].invite.spk_id == k.spk_id)
			break;
	ck_assert_int_lt(i, (int)c->count);
	relm_effects_init(&fx);
	ck_assert_int_eq(relm_rel_accept(&x->sess, env, RELM_MODE_STRICT, x->sk, &c->dev[i].invite,
	                                 "127.0.0.1:7427", &fx), 0);
	x->sess->sibling_session = 1;        /* as relmd keeps its sessions */
	tu_net_post_effects(net, &fx);
	relm_store_device_keys_clear(&k);
	free(buf);
	free(c);
}

void tu_xdev_send(struct tu_xdev *x, struct tu_daemon *to, const struct relm_env *env,
                  struct tu_net *net, const uint8_t *frame, size_t len)
{
	struct relm_effects fx;

	relm_effects_init(&fx);
	ck_assert_int_eq(relm_rel_send_sibling(x->sess, env, frame, len, &fx), 0);
	tu_net_post_effects(net, &fx);
	ck_assert_int_eq(tu_deliver(to, net), 0);
}

void tu_xdev_clear(struct tu_xdev *x)
{
	relm_rel_free(x->sess);
	x->sess = NULL;
	sodium_memzero(x->sk, sizeof x->sk);
}

struct refused {
	int *codes, cap, n;
};

static int refused_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	struct refused *r = ctx;
	(void)seq;
	(void)ts;
	if (ev->type == RELM_EV_SIBLING_REFUSED) {
		if (r->n < r->cap)
			r->codes[r->n] = ev->code;
		r->n++;
	}
	return 0;
}

int tu_refused_codes(struct tu_daemon *d, int *codes, int cap)
{
	struct refused r = { codes, cap, 0 };
	ck_assert_int_eq(relm_store_event_list(d->st, 0, 0, refused_cb, &r), 0);
	return r.n;
}

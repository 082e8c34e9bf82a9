/*
 * check_rules.c — rules of relationship set-up and retransmission that the
 * engine did not enforce (issue 13's engine defects), through rel.h:
 *
 *   - an initial envelope names the invite's one-time prekey, and names
 *     none exactly when the invite has none (proto/ratchet.md §8.3 step 5);
 *   - the hello's `mailbox` is a mailbox host the inviter can post to, and
 *     the accepter refuses a host that leaves no room for the id (§8.3
 *     step 7);
 *   - a retransmission that cannot be sent fails its message instead of
 *     failing every tick of the relationship (§6.4).
 *
 * Each refusal leaves the inviter without a relationship and changes
 * nothing else.
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_rand.h"
#include "util_engine.h"
#include "engine/rel.h"
#include "wire/invite.h"
#include "crypto/crypto.h"
#include "error.h"

static uint64_t clock_ms;
static struct tu_party a, b;

static void setup(void)
{
	clock_ms = 1700000000000ull;
	tu_party_init(&a, &clock_ms, 1);
	tu_party_init(&b, &clock_ms, 2);
}

static void teardown(void)
{
	tu_party_free(&a);
	tu_party_free(&b);
}

/* a's invite (with a one-time prekey if opk) and the secrets a keeps. */
static void make_invite(struct relm_invite *inv, struct relm_invite_secrets *sec, int opk)
{
	memset(inv, 0, sizeof *inv);
	memset(sec, 0, sizeof *sec);
	inv->version = RELM_WIRE_VERSION;
	memcpy(inv->ipk, a.ipk_pk, RELM_SIGN_PK_LEN);
	inv->spk_id = 7;
	a.env.random(a.env.ctx, sec->spk_priv, RELM_KEY_LEN);
	relm_x25519_public(inv->spk, sec->spk_priv);
	if (opk) {
		inv->flags |= RELM_INVITE_F_OPK;
		inv->opk_id = 9;
		a.env.random(a.env.ctx, sec->opk_priv, RELM_KEY_LEN);
		relm_x25519_public(inv->opk, sec->opk_priv);
		sec->has_opk = 1;
	}
	inv->expires_ms = clock_ms + 86400000;
	snprintf(inv->mailbox, sizeof inv->mailbox, "127.0.0.1:7427/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	ck_assert_int_eq(relm_invite_sign(inv, a.ipk_sk), 0);
	memcpy(sec->ipk_sk, a.ipk_sk, RELM_SIGN_SK_LEN);
	snprintf(sec->mailbox_host, sizeof sec->mailbox_host, "127.0.0.1:7427");
}

/* b accepts inv; its hello (the first envelope) into *init. */
static void accept(const struct relm_invite *inv, struct tu_blob *init)
{
	struct relm_effects fx;
	relm_effects_init(&fx);
	ck_assert_int_eq(relm_rel_accept(&b.rel, &b.env, RELM_MODE_TREE, b.ipk_sk, inv, "127.0.0.2:7427", &fx), 0);
	tu_apply(&b, &fx);
	relm_effects_clear(&fx);
	ck_assert_uint_eq(b.nout, 1);
	*init = tu_take(&b, 0);
}

/* a opens an initial envelope: the engine's code; no relationship and no
 * effect unless it is 0. */
static int open_initial(const struct relm_invite_secrets *sec, const struct tu_blob *e)
{
	struct relm_effects fx;
	int rc;

	relm_effects_init(&fx);
	rc = relm_rel_open_initial(&a.rel, &a.env, RELM_MODE_TREE, sec, e->buf, e->len, &fx);
	if (rc != 0) {
		ck_assert_ptr_null(a.rel);
		ck_assert_uint_eq(fx.n, 0);
	} else {
		tu_apply(&a, &fx);
	}
	relm_effects_clear(&fx);
	return rc;
}

/* ---- the one-time prekey ------------------------------------------------- */

/* The invite carries a one-time prekey; an accepter answers an altered
 * copy of it without one (re-signed by a, as a careless or hostile client
 * of a's own could) — X3DH without DH4.  a refuses it: the prekey's
 * forward secrecy and single use are what the invite promised. */
START_TEST(test_initial_without_the_invites_opk)
{
	struct relm_invite inv, bare;
	struct relm_invite_secrets sec, sec_bare;
	struct tu_blob init;

	make_invite(&inv, &sec, 1);
	bare = inv;
	bare.flags &= (uint8_t)~RELM_INVITE_F_OPK;
	bare.opk_id = 0;
	memset(bare.opk, 0, sizeof bare.opk);
	ck_assert_int_eq(relm_invite_sign(&bare, a.ipk_sk), 0);
	accept(&bare, &init);
	ck_assert_int_eq(open_initial(&sec, &init), RELM_ENOTFOUND);
	/* the same envelope is fine for an invite without one */
	sec_bare = sec;
	sec_bare.has_opk = 0;
	ck_assert_int_eq(open_initial(&sec_bare, &init), 0);
	tu_blob_free(&init);
	sodium_memzero(&sec, sizeof sec);
	sodium_memzero(&sec_bare, sizeof sec_bare);
}
END_TEST

/* And the other way: an envelope that names a one-time prekey for an
 * invite that has none. */
START_TEST(test_opk_for_an_invite_without_one)
{
	struct relm_invite inv;
	struct relm_invite_secrets sec;
	struct tu_blob init;

	make_invite(&inv, &sec, 1);
	accept(&inv, &init);
	sec.has_opk = 0;
	ck_assert_int_eq(open_initial(&sec, &init), RELM_ENOTFOUND);
	sec.has_opk = 1;
	ck_assert_int_eq(open_initial(&sec, &init), 0);
	tu_blob_free(&init);
	sodium_memzero(&sec, sizeof sec);
}
END_TEST

/* ---- the hello's mailbox ---------------------------------------------------- */

static const char *const bad_mailboxes[] = {
	"not-an-address",
	"127.0.0.1",                                                         /* no port */
	"127.0.0.1:0",
	"127.0.0.1:99999",
	"127.0.0.1:7427/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",         /* an id of its own */
	"[::1:7427",
	/* a name so long that host:port/<id> is over 255 bytes */
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
	"aaaaaaaaaaaaaaaaaaaa:7427",
};

/* b's hello carries, where its `mailbox` goes, what relm's accepter never
 * writes: its retransmission is rebuilt from the queued record, whose
 * text the test replaces.  a refuses each (`malformed`): before, it made
 * the relationship with garbage for the remote's address, and every
 * envelope to b was dropped as having a bad destination. */
START_TEST(test_hello_mailbox_is_an_address)
{
	const char *bad = bad_mailboxes[_i];
	struct relm_invite inv;
	struct relm_invite_secrets sec;
	struct tu_blob init;
	struct relm_outgoing *o;

	make_invite(&inv, &sec, 0);
	accept(&inv, &init);
	ck_assert_uint_eq(b.rel->nout, 1);                  /* the hello, queued */
	o = &b.rel->out[0];
	sodium_memzero(o->body, o->body_len);
	free(o->body);
	o->body = malloc(strlen(bad) + 1);
	memcpy(o->body, bad, strlen(bad) + 1);
	o->body_len = (uint32_t)strlen(bad);
	clock_ms += RELM_RETX_BASE_MS;
	tu_tick(&b);
	ck_assert_uint_eq(b.nout, 1);
	{
		struct tu_blob again = tu_take(&b, 0);
		ck_assert_int_eq(open_initial(&sec, &again), RELM_EMALFORMED);
		tu_blob_free(&again);
	}
	/* the first copy, with the accepter's real host, still makes it */
	ck_assert_int_eq(open_initial(&sec, &init), 0);
	ck_assert_int_eq(strncmp(a.rel->remote_mailbox, "127.0.0.2:7427/", 15), 0);
	tu_blob_free(&init);
	sodium_memzero(&sec, sizeof sec);
}
END_TEST

/* The accepter refuses to name a host the inviter could not append the
 * mailbox id to. */
START_TEST(test_accept_needs_room_for_the_id)
{
	struct relm_invite inv;
	struct relm_invite_secrets sec;
	struct relm_effects fx;

	make_invite(&inv, &sec, 0);
	relm_effects_init(&fx);
	ck_assert_int_eq(relm_rel_accept(&b.rel, &b.env, RELM_MODE_TREE, b.ipk_sk, &inv,
	                                 bad_mailboxes[6], &fx), RELM_EINVAL);
	ck_assert_ptr_null(b.rel);
	ck_assert_uint_eq(fx.n, 0);
	relm_effects_clear(&fx);
	sodium_memzero(&sec, sizeof sec);
}
END_TEST

/* ---- a retry that cannot be sent ---------------------------------------------- */

/* A queued message whose text cannot be sent (here its body is not UTF-8,
 * as a damaged store row would give) is `failed` at its retry; the tick
 * succeeds and the relationship's other messages are retransmitted.
 * Before, the tick failed for ever, and with it every timer of the
 * relationship (relmd stopped on it). */
START_TEST(test_unsendable_retry_fails_alone)
{
	struct relm_invite inv;
	struct relm_invite_secrets sec;
	struct tu_blob init;
	uint8_t id1[RELM_ID_LEN], id2[RELM_ID_LEN];

	make_invite(&inv, &sec, 1);
	accept(&inv, &init);
	ck_assert_int_eq(open_initial(&sec, &init), 0);
	tu_blob_free(&init);
	while (a.nout) {
		struct tu_blob e = tu_take(&a, 0);
		tu_recv(&b, e.buf, e.len);
		tu_blob_free(&e);
	}
	clock_ms += 3000;
	tu_tick(&a);
	while (a.nout) {                                   /* a's receipt: b may send */
		struct tu_blob e = tu_take(&a, 0);
		tu_recv(&b, e.buf, e.len);
		tu_blob_free(&e);
	}
	tu_send(&b, "damaged in the store", id1);
	tu_send(&b, "intact", id2);
	while (b.nout) {                                   /* both lost */
		struct tu_blob e = tu_take(&b, 0);
		tu_blob_free(&e);
	}
	for (uint32_t i = 0; i < b.rel->nout; i++)
		if (memcmp(b.rel->out[i].id, id1, RELM_ID_LEN) == 0)
			b.rel->out[i].body[3] = (char)0xff;
	size_t failed = b.failed;
	clock_ms += RELM_RETX_BASE_MS;
	tu_tick(&b);                                       /* asserts the tick succeeds */
	ck_assert_uint_eq(b.failed, failed + 1);
	ck_assert_uint_eq(b.rel->nout, 1);
	ck_assert(memcmp(b.rel->out[0].id, id2, RELM_ID_LEN) == 0);
	ck_assert_uint_eq(b.nout, 1);                      /* "intact" went again */
	{
		struct tu_blob e = tu_take(&b, 0);
		ck_assert_int_eq(tu_recv(&a, e.buf, e.len), 0);
		ck_assert(tu_hist_has(&a, id2, 1));
		ck_assert(!tu_hist_has(&a, id1, 1));
		tu_blob_free(&e);
	}
	sodium_memzero(&sec, sizeof sec);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("rules");
	TCase *tc = tcase_create("opk");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_initial_without_the_invites_opk);
	tcase_add_test(tc, test_opk_for_an_invite_without_one);
	suite_add_tcase(s, tc);
	tc = tcase_create("hello_mailbox");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_hello_mailbox_is_an_address, 0,
	                    (int)(sizeof bad_mailboxes / sizeof bad_mailboxes[0]));
	tcase_add_test(tc, test_accept_needs_room_for_the_id);
	suite_add_tcase(s, tc);
	tc = tcase_create("retransmission");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_unsendable_retry_fails_alone);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	tu_seed_from_env();
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

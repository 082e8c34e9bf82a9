/*
 * rel_setup.c — making a relationship (proto/ratchet.md §8): the accepter runs X3DH
 * against an invite and sends the initial envelope (a `hello`); the inviter
 * opens it.  The tree starts from the genesis node: the invite's signed
 * prekey SPK_a as a node of side 'a' with root key SK, exactly Signal's
 * initial state (Bob's ratchet key is his SPK), so a strict peer and a tree
 * peer start identically.
 *
 *   genesis  = { pub: SPK_a, rk: SK, side a, no chain }, id = node_id(0, SPK_a)
 *   b1       = { pub: fresh, parent: genesis, rk,ck = KDF_RK(SK, DH(b1, SPK_a)) }
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sodium.h>
#include "engine/rel_state.h"
#include "engine/ratchet.h"
#include "wire/payload.h"
#include "wire/addr.h"
#include "crypto/crypto.h"
#include "error.h"

static const uint8_t zero_id[RELM_ID_LEN];

static struct relm_rel *rel_alloc(void)
{
	struct relm_rel *rel = malloc(sizeof *rel);
	if (rel)
		memset(rel, 0, sizeof *rel);
	return rel;
}

static void genesis(struct relm_node *g, const uint8_t spk[RELM_KEY_LEN],
                    const uint8_t sk[RELM_KEY_LEN], uint64_t now)
{
	memset(g, 0, sizeof *g);
	memcpy(g->pub, spk, RELM_KEY_LEN);
	memcpy(g->rk, sk, RELM_KEY_LEN);
	relm_node_id(g->id, zero_id, spk);
	g->created_ms = now;
}

/* "host:port" of addr s + "/" + base64url(pk) */
static int mailbox_with_id(char out[RELM_MAILBOX_ADDR_MAX + 1], const char *hostport,
                           const uint8_t pk[RELM_SIGN_PK_LEN])
{
	struct relm_addr a;
	if (relm_addr_parse(&a, hostport, strlen(hostport)) != 0)
		return RELM_EMALFORMED;
	memcpy(a.id, pk, RELM_SIGN_PK_LEN);
	a.has_id = 1;
	return relm_addr_format(out, RELM_MAILBOX_ADDR_MAX + 1, &a) < 0 ? RELM_EINVAL : 0;
}

/* Is s exactly the mailbox address of `pk` (proto/wire.md §7): it parses,
 * names that id, and is spelt the one way the codec writes it?  A hello's
 * `mailbox` (host:port) becomes the inviter's remote address with the id
 * appended; garbage, an address with an id of its own, or one too long to
 * hold the id all fail here. */
static int is_mailbox_of(const char *s, const uint8_t pk[RELM_SIGN_PK_LEN])
{
	struct relm_addr a;
	char canon[RELM_MAILBOX_ADDR_MAX + 1];

	return relm_addr_parse(&a, s, strlen(s)) == 0 && a.has_id &&
	       memcmp(a.id, pk, RELM_SIGN_PK_LEN) == 0 &&
	       relm_addr_format(canon, sizeof canon, &a) >= 0 && strcmp(canon, s) == 0;
}

int relm_rel_accept(struct relm_rel **out, const struct relm_env *env, enum relm_mode mode,
                    const uint8_t ipk_sk[RELM_SIGN_SK_LEN], const struct relm_invite *inv,
                    const char *my_mailbox_host, struct relm_effects *fx)
{
	struct relm_rel *rel = NULL;
	uint8_t ek[RELM_KEY_LEN], ek_pub[RELM_KEY_LEN], sk[RELM_KEY_LEN];
	uint8_t mpk[RELM_SIGN_PK_LEN], msk[RELM_SIGN_SK_LEN];
	const uint8_t *ipk_b = ipk_sk + 32;   /* libsodium layout: seed ‖ pk */
	struct relm_node g, b1;
	struct relm_payload p;
	struct relm_addr chk;
	size_t mark = fx->n;
	int rc;

	memset(&g, 0, sizeof g);
	memset(&b1, 0, sizeof b1);
	if (mode != RELM_MODE_TREE && mode != RELM_MODE_STRICT)
		return RELM_EINVAL;
	if (!my_mailbox_host || relm_addr_parse(&chk, my_mailbox_host, strlen(my_mailbox_host)) != 0 ||
	    chk.has_id)
		return RELM_EINVAL;
	{
		/* the inviter appends "/<id>" to it: there must be room */
		char full[RELM_MAILBOX_ADDR_MAX + 1];
		uint8_t any[RELM_SIGN_PK_LEN] = { 0 };
		if (mailbox_with_id(full, my_mailbox_host, any) != 0)
			return RELM_EINVAL;
	}
	if (inv->expires_ms && inv->expires_ms <= relm__now(env))
		return RELM_EEXPIRED;
	if (memcmp(inv->ipk, ipk_b, RELM_SIGN_PK_LEN) == 0)
		return RELM_EINVAL;            /* accepting one's own invite */
	if (!(rel = rel_alloc()))
		return RELM_ENOMEM;
	relm__random(env, ek, sizeof ek);
	relm_x25519_public(ek_pub, ek);
	if ((rc = relm_x3dh_initiator(sk, ipk_sk, ek, inv)) != 0)
		goto fail;

	rel->mode = (uint8_t)mode;
	rel->side = 'b';
	relm_rel_id(rel->id, inv->ipk, ipk_b, ek_pub);
	relm_rel_ad(rel->ad, inv->ipk, ipk_b);
	memcpy(rel->ipk_self, ipk_b, RELM_SIGN_PK_LEN);
	memcpy(rel->ipk_remote, inv->ipk, RELM_SIGN_PK_LEN);
	relm_mailbox_keypair(rel->mbox_pk, rel->mbox_sk, sk, 'b');
	relm_mailbox_keypair(mpk, msk, sk, 'a');
	memcpy(rel->remote_mbox_pk, mpk, RELM_SIGN_PK_LEN);
	relm_gate_key(rel->gate_key, sk);
	rel->has_gate = 1;
	{
		/* 'a' reads its relationship mailbox on the invite's server. */
		struct relm_addr ia;
		char hp[300];
		if (relm_addr_parse(&ia, inv->mailbox, strlen(inv->mailbox)) != 0) {
			rc = RELM_EMALFORMED;
			goto fail;
		}
		ia.has_id = 0;
		if (relm_addr_format(hp, sizeof hp, &ia) < 0 ||
		    (rc = mailbox_with_id(rel->remote_mailbox, hp, mpk)) != 0) {
			rc = RELM_EMALFORMED;
			goto fail;
		}
	}
	snprintf(rel->invite_mailbox, sizeof rel->invite_mailbox, "%s", inv->mailbox);
	rel->initial_pending = 1;
	memcpy(rel->initial.ipk, ipk_b, RELM_SIGN_PK_LEN);
	memcpy(rel->initial.ek, ek_pub, RELM_KEY_LEN);
	rel->initial.spk_id = inv->spk_id;
	rel->initial.opk_id = (inv->flags & RELM_INVITE_F_OPK) ? inv->opk_id : 0;

	genesis(&g, inv->spk, sk, relm__now(env));
	relm_tree_add(&rel->tree, &g);
	if ((rc = relm__make_ours_node(rel, env, 0, &b1)) != 0)
		goto fail;
	relm_tree_add(&rel->tree, &b1);

	/* The hello: carries our mailbox host; retransmitted until receipted. */
	memset(&p, 0, sizeof p);
	p.ts = relm__now(env);
	relm__new_id(env, p.ts, p.id);
	p.kind = RELM_KIND_HELLO;
	snprintf(p.kind_str, sizeof p.kind_str, "hello");
	{
		uint8_t on[RELM_ID_LEN];
		char host[RELM_MAILBOX_ADDR_MAX + 1];
		snprintf(host, sizeof host, "%s", my_mailbox_host);
		p.mailbox = host;
		/* relm__send_hello lives in rel.c: it seals, posts, and tracks */
		if ((rc = relm__rel_send_tracked(rel, env, &p, host, strlen(host), 0, on, fx)) != 0)
			goto fail;
	}
	*out = rel;
	rc = 0;
	goto out;
fail:
	relm__fx_truncate(fx, mark);
	relm_rel_free(rel);
out:
	sodium_memzero(ek, sizeof ek);
	sodium_memzero(sk, sizeof sk);
	sodium_memzero(msk, sizeof msk);
	sodium_memzero(&g, sizeof g);
	sodium_memzero(&b1, sizeof b1);
	return rc;
}

int relm_rel_open_initial(struct relm_rel **out, const struct relm_env *env, enum relm_mode mode,
                          const struct relm_invite_secrets *sec,
                          const uint8_t *buf, size_t len, struct relm_effects *fx)
{
	struct relm_rel *rel = NULL;
	struct relm_envelope e;
	uint8_t sk[RELM_KEY_LEN], spk_pub[RELM_KEY_LEN];
	uint8_t mpk[RELM_SIGN_PK_LEN], msk[RELM_SIGN_SK_LEN];
	const uint8_t *ipk_a = sec->ipk_sk + 32;
	struct relm_node g;
	size_t mark = fx->n;
	int rc;

	memset(&g, 0, sizeof g);
	if (mode != RELM_MODE_TREE && mode != RELM_MODE_STRICT)
		return RELM_EINVAL;
	if ((rc = relm_envelope_decode(&e, buf, len)) != 0)
		return rc;
	if (!(e.h.flags & RELM_ENV_F_INITIAL))
		return RELM_EMALFORMED;
	/* opk_id names the invite's one-time prekey, and is 0 exactly when
	 * the invite has none (ratchet.md §8.3 step 5): an initial envelope
	 * without it for an invite that carried one would make a relationship
	 * without DH4, the one-time prekey's forward secrecy and single use */
	if ((e.ext.opk_id != 0) != (sec->has_opk != 0))
		return RELM_ENOTFOUND;
	if (memcmp(e.ext.ipk, ipk_a, RELM_SIGN_PK_LEN) == 0)
		return RELM_EINVAL;
	if (!(rel = rel_alloc()))
		return RELM_ENOMEM;
	if ((rc = relm_x3dh_responder(sk, sec->ipk_sk, sec->spk_priv,
	                              e.ext.opk_id ? sec->opk_priv : NULL,
	                              e.ext.ipk, e.ext.ek)) != 0)
		goto fail;
	rel->mode = (uint8_t)mode;
	rel->side = 'a';
	relm_rel_id(rel->id, ipk_a, e.ext.ipk, e.ext.ek);
	relm_rel_ad(rel->ad, ipk_a, e.ext.ipk);
	memcpy(rel->ipk_self, ipk_a, RELM_SIGN_PK_LEN);
	memcpy(rel->ipk_remote, e.ext.ipk, RELM_SIGN_PK_LEN);
	relm_mailbox_keypair(rel->mbox_pk, rel->mbox_sk, sk, 'a');
	relm_mailbox_keypair(mpk, msk, sk, 'b');
	memcpy(rel->remote_mbox_pk, mpk, RELM_SIGN_PK_LEN);
	relm_gate_key(rel->gate_key, sk);
	rel->has_gate = 1;

	relm_x25519_public(spk_pub, sec->spk_priv);
	genesis(&g, spk_pub, sk, relm__now(env));
	g.flags = RELM_NODE_OURS | RELM_NODE_PRIV;
	memcpy(g.priv, sec->spk_priv, RELM_KEY_LEN);
	relm_tree_add(&rel->tree, &g);

	rc = relm_rel_receive(rel, env, buf, len, fx);
	if (rc != 0) {
		rc = rc == RELM_EPENDING || rc == RELM_EREJECTED ? RELM_EAUTH : rc;
		goto fail;
	}
	/* the first message must be the hello, and its mailbox an address:
	 * it is where every envelope to b goes (ratchet.md §8.3 step 7) */
	if (!rel->remote_mailbox[0] || !is_mailbox_of(rel->remote_mailbox, rel->remote_mbox_pk)) {
		rc = RELM_EMALFORMED;
		goto fail;
	}
	*out = rel;
	rc = 0;
	goto out;
fail:
	relm__fx_truncate(fx, mark);
	relm_rel_free(rel);
out:
	sodium_memzero(sk, sizeof sk);
	sodium_memzero(msk, sizeof msk);
	sodium_memzero(&g, sizeof g);
	return rc;
}

/*
 * ratchet.c — message keys on the tree (proto/ratchet.md §2, §5.3, §7): symmetric chains,
 * skipped keys with MAX_SKIP and a total cap, trial decryption of unknown
 * remote keys against the retained ours nodes, and the strict single-state
 * ratchet.  Nothing here changes a relationship except relm__ratchet_commit.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "engine/ratchet.h"
#include "crypto/crypto.h"
#include "error.h"

static const uint8_t zero_id[RELM_ID_LEN];

/* Advance ck (at counter from) to counter to: mk = key of message `to`,
 * ck_out = chain key after it. */
static void chain_to(uint8_t mk[RELM_KEY_LEN], uint8_t ck_out[RELM_KEY_LEN],
                     const uint8_t ck[RELM_KEY_LEN], uint32_t from, uint32_t to)
{
	uint8_t c[RELM_KEY_LEN], m[RELM_KEY_LEN];

	memcpy(c, ck, RELM_KEY_LEN);
	for (uint32_t i = from; i <= to; i++)
		relm_kdf_ck(m, c, c);
	memcpy(mk, m, RELM_KEY_LEN);
	memcpy(ck_out, c, RELM_KEY_LEN);
	sodium_memzero(c, sizeof c);
	sodium_memzero(m, sizeof m);
}

void relm__chain_advance(struct relm_node *node, uint32_t to)
{
	uint8_t mk[RELM_KEY_LEN];

	if (to <= node->n)
		return;
	chain_to(mk, node->ck, node->ck, node->n, to - 1);
	node->n = to;
	sodium_memzero(mk, sizeof mk);
}

static int decrypt_with(const struct relm_rel *rel, const struct relm_envelope *e,
                        const uint8_t mk[RELM_KEY_LEN], uint8_t **pt, size_t *ptlen)
{
	uint8_t ad[RELM_AD_LEN + RELM_HEADER_LEN + RELM_INITIAL_EXT_LEN];
	size_t len = e->ctlen - RELM_TAG_LEN;
	uint8_t *p = malloc(len ? len : 1);

	if (!p)
		return RELM_ENOMEM;
	memcpy(ad, rel->ad, RELM_AD_LEN);
	memcpy(ad + RELM_AD_LEN, e->hdr, e->hdrlen);
	if (relm_aead_open(p, e->ct, e->ctlen, ad, RELM_AD_LEN + e->hdrlen,
	                   e->h.nonce, mk) != 0) {
		free(p);
		return RELM_EAUTH;
	}
	*pt = p;
	*ptlen = len;
	return 0;
}

int relm__strict_dhs(const struct relm_rel *rel)
{
	int best = -1;
	for (uint32_t i = 0; i < rel->tree.count; i++) {
		const struct relm_node *n = &rel->tree.nodes[i];
		if ((n->flags & RELM_NODE_OURS) && (best < 0 || n->depth > rel->tree.nodes[best].depth))
			best = (int)i;
	}
	return best;
}

int relm__strict_dhr(const struct relm_rel *rel)
{
	int best = -1;
	for (uint32_t i = 0; i < rel->tree.count; i++) {
		const struct relm_node *n = &rel->tree.nodes[i];
		if (!(n->flags & RELM_NODE_OURS) && (best < 0 || n->depth > rel->tree.nodes[best].depth))
			best = (int)i;
	}
	return best;
}

/* try_skipped_message_keys */
static int find_skipped(const struct relm_rel *rel, const uint8_t dh[RELM_KEY_LEN], uint32_t n)
{
	for (uint32_t i = 0; i < rel->nskipped; i++)
		if (rel->skipped[i].n == n && memcmp(rel->skipped[i].dh, dh, RELM_KEY_LEN) == 0)
			return (int)i;
	return -1;
}

static uint32_t count_unused(const struct relm_rel *rel)
{
	uint32_t c = 0;
	for (uint32_t i = 0; i < rel->nskipped; i++)
		c += !rel->skipped[i].used;
	return c;
}

/* A chain starting at (ck, from) to message n: limits, then decrypt. */
static int open_on_chain(const struct relm_rel *rel, const struct relm_env *env,
                         const struct relm_envelope *e, const uint8_t ck[RELM_KEY_LEN],
                         uint32_t from, uint32_t extra_skips, struct relm__opened *o)
{
	uint8_t mk[RELM_KEY_LEN];
	uint32_t n = e->h.n;
	int rc;

	if (n < from)
		return RELM_EDUP;
	if (n - from > env->params.max_skip)
		return RELM_EMAXSKIP;
	if ((uint64_t)count_unused(rel) + (n - from) + extra_skips > env->params.max_skipped)
		return RELM_ESKIPCAP;
	chain_to(mk, o->ck_after, ck, from, n);
	rc = decrypt_with(rel, e, mk, &o->pt, &o->ptlen);
	if (rc == 0) {
		o->n = n;
		memcpy(o->mk, mk, RELM_KEY_LEN);
	}
	sodium_memzero(mk, sizeof mk);
	return rc;
}

/* dh_ratchet (receiving half, lazy): the node a remote key makes under our
 * node p — a deterministic function of shared state. */
static int derive_theirs(const struct relm_rel *rel, int p, const uint8_t pub[RELM_KEY_LEN],
                         const struct relm_env *env, struct relm_node *t)
{
	const struct relm_node *par = &rel->tree.nodes[p];
	uint8_t dh[RELM_KEY_LEN];

	if (relm_dh(dh, par->priv, pub) != 0)
		return RELM_EBADKEY;
	memset(t, 0, sizeof *t);
	relm_kdf_rk(t->rk, t->ck, par->rk, dh);
	sodium_memzero(dh, sizeof dh);
	memcpy(t->pub, pub, RELM_KEY_LEN);
	memcpy(t->parent, par->id, RELM_ID_LEN);
	relm_node_id(t->id, par->id, pub);
	t->depth = par->depth + 1;
	t->flags = RELM_NODE_CHAIN;
	t->created_ms = relm__now(env);
	return 0;
}

static int open_strict(const struct relm_rel *rel, const struct relm_env *env,
                       const struct relm_envelope *e, struct relm__opened *o)
{
	int dhr = relm__strict_dhr(rel), dhs = relm__strict_dhs(rel), rc;
	const struct relm_node *r;
	uint32_t skip_prev = 0;

	if (dhr >= 0 && memcmp(rel->tree.nodes[dhr].pub, e->h.dh_pub, RELM_KEY_LEN) == 0) {
		r = &rel->tree.nodes[dhr];
		if (!(r->flags & RELM_NODE_CHAIN))
			return RELM_EREJECTED;
		o->how = RELM__OPEN_CHAIN;
		o->node = dhr;
		rc = open_on_chain(rel, env, e, r->ck, r->n, 0, o);
		return rc == RELM_EAUTH ? RELM_EREJECTED : rc;
	}
	if (dhs < 0 || !(rel->tree.nodes[dhs].flags & RELM_NODE_PRIV))
		return RELM_EREJECTED;
	/* skip_message_keys(pn) on the current receiving chain, then dh_ratchet */
	if (dhr >= 0 && (rel->tree.nodes[dhr].flags & RELM_NODE_CHAIN) &&
	    e->h.pn > rel->tree.nodes[dhr].n) {
		skip_prev = e->h.pn - rel->tree.nodes[dhr].n;
		if (skip_prev > env->params.max_skip)
			return RELM_EMAXSKIP;
	}
	if (derive_theirs(rel, dhs, e->h.dh_pub, env, &o->fresh) != 0)
		return RELM_EREJECTED;
	o->how = RELM__OPEN_NEW;
	o->node = dhs;
	rc = open_on_chain(rel, env, e, o->fresh.ck, 0, skip_prev, o);
	if (rc == 0 && skip_prev) {
		o->strict_prev = dhr;
		o->strict_pn = e->h.pn;
	}
	return rc == RELM_EAUTH ? RELM_EREJECTED : rc;
}

int relm__ratchet_open(const struct relm_rel *rel, const struct relm_env *env,
                       const struct relm_envelope *e, struct relm__opened *o)
{
	int i, rc;

	memset(o, 0, sizeof *o);
	o->strict_prev = -1;
	o->skipped = -1;

	/* 1. try_skipped_message_keys */
	if ((i = find_skipped(rel, e->h.dh_pub, e->h.n)) >= 0) {
		rc = decrypt_with(rel, e, rel->skipped[i].mk, &o->pt, &o->ptlen);
		if (rc != 0)
			return rc;
		o->how = RELM__OPEN_SKIPPED;
		o->skipped = i;
		o->n = e->h.n;
		memcpy(o->mk, rel->skipped[i].mk, RELM_KEY_LEN);
		return 0;
	}
	/* A key of our own side coming back is never a valid message to us. */
	if (relm_tree_find_pub(&rel->tree, e->h.dh_pub, 1) >= 0)
		return RELM_EAUTH;
	if (rel->mode == RELM_MODE_STRICT)
		return open_strict(rel, env, e, o);

	/* 2. a known theirs node: its chain */
	if ((i = relm_tree_find_pub(&rel->tree, e->h.dh_pub, 0)) >= 0) {
		const struct relm_node *t = &rel->tree.nodes[i];
		if (!(t->flags & RELM_NODE_CHAIN))
			return RELM_EAUTH;
		o->how = RELM__OPEN_CHAIN;
		o->node = i;
		return open_on_chain(rel, env, e, t->ck, t->n, 0, o);
	}
	/* 3. trial decryption: each retained ours node with its private key,
	 * deepest first, at most RELM_MAX_TRIAL of them. */
	if (e->h.n > env->params.max_skip)
		return RELM_EMAXSKIP;
	if ((uint64_t)count_unused(rel) + e->h.n > env->params.max_skipped)
		return RELM_ESKIPCAP;
	if (rel->tree.count >= RELM_MAX_NODES)
		return RELM_ELIMIT;
	{
		int order[RELM_MAX_NODES], k = 0;
		for (uint32_t j = 0; j < rel->tree.count; j++) {
			const struct relm_node *p = &rel->tree.nodes[j];
			if (!(p->flags & RELM_NODE_OURS) || !(p->flags & RELM_NODE_PRIV))
				continue;
			int m = k++;
			while (m > 0 && rel->tree.nodes[order[m - 1]].depth < p->depth) {
				order[m] = order[m - 1];
				m--;
			}
			order[m] = (int)j;
		}
		if (k > RELM_MAX_TRIAL)
			k = RELM_MAX_TRIAL;
		for (int m = 0; m < k; m++) {
			if (derive_theirs(rel, order[m], e->h.dh_pub, env, &o->fresh) != 0)
				continue;
			rc = open_on_chain(rel, env, e, o->fresh.ck, 0, 0, o);
			if (rc == 0) {
				o->how = RELM__OPEN_NEW;
				o->node = order[m];
				return 0;
			}
			sodium_memzero(&o->fresh, sizeof o->fresh);
			if (rc != RELM_EAUTH)
				return rc;
		}
	}
	return RELM_EPENDING;
}

/* skip_message_keys: store the keys of counters [from, to) of chain ck. */
static void store_skipped(struct relm_rel *rel, const struct relm_env *env,
                          const uint8_t dh[RELM_KEY_LEN], const uint8_t ck[RELM_KEY_LEN],
                          uint32_t from, uint32_t to)
{
	uint8_t c[RELM_KEY_LEN];
	uint64_t now = relm__now(env);

	memcpy(c, ck, RELM_KEY_LEN);
	for (uint32_t i = from; i < to; i++) {
		struct relm_skipped *s = &rel->skipped[rel->nskipped++];
		relm_kdf_ck(s->mk, c, c);
		memcpy(s->dh, dh, RELM_KEY_LEN);
		s->n = i;
		s->t_ms = now;
		s->used = 0;
	}
	sodium_memzero(c, sizeof c);
}

/* At most RELM_MAX_USED_KEYS used keys: the oldest goes first. */
static void limit_used(struct relm_rel *rel)
{
	for (;;) {
		uint32_t count = 0, oldest = 0;
		for (uint32_t i = 0; i < rel->nskipped; i++) {
			if (!rel->skipped[i].used)
				continue;
			if (count == 0 || rel->skipped[i].t_ms < rel->skipped[oldest].t_ms)
				oldest = i;
			count++;
		}
		if (count <= RELM_MAX_USED_KEYS)
			return;
		sodium_memzero(&rel->skipped[oldest], sizeof rel->skipped[0]);
		rel->skipped[oldest] = rel->skipped[--rel->nskipped];
		sodium_memzero(&rel->skipped[rel->nskipped], sizeof rel->skipped[0]);
	}
}

static int reserve_skipped(struct relm_rel *rel, uint32_t more)
{
	uint32_t need = rel->nskipped + more;
	if (need <= rel->capskipped)
		return 0;
	uint32_t cap = rel->capskipped ? rel->capskipped : 48;
	while (cap < need)
		cap *= 2;
	/* Not realloc: the old block holds message keys and must be wiped. */
	struct relm_skipped *v = malloc(cap * sizeof *v);
	if (!v)
		return RELM_ENOMEM;
	if (rel->nskipped)
		memcpy(v, rel->skipped, rel->nskipped * sizeof *v);
	if (rel->skipped) {
		sodium_memzero(rel->skipped, rel->capskipped * sizeof *v);
		free(rel->skipped);
	}
	rel->skipped = v;
	rel->capskipped = cap;
	return 0;
}

int relm__ratchet_reserve(struct relm_rel *rel, const struct relm__opened *o,
                          const struct relm_envelope *e)
{
	uint32_t more = 1;                          /* the used key */

	if (o->how == RELM__OPEN_CHAIN && e->h.n > rel->tree.nodes[o->node].n)
		more += e->h.n - rel->tree.nodes[o->node].n;
	else if (o->how == RELM__OPEN_NEW)
		more += e->h.n;
	if (o->strict_prev >= 0)
		more += o->strict_pn - rel->tree.nodes[o->strict_prev].n;
	return reserve_skipped(rel, more);
}

int relm__ratchet_commit(struct relm_rel *rel, const struct relm_env *env,
                         struct relm__opened *o, const struct relm_envelope *e)
{
	struct relm_node *t;
	int idx = -1;
	uint32_t from = 0;
	uint8_t ck0[RELM_KEY_LEN];

	switch (o->how) {
	case RELM__OPEN_SKIPPED: {
		struct relm_skipped *s = &rel->skipped[o->skipped];
		idx = relm_tree_find_pub(&rel->tree, s->dh, 0);
		if (s->used)
			return idx;        /* a collision on a used key: it stays until it expires */
		if (rel->mode == RELM_MODE_TREE) {
			s->used = 1;       /* kept for a sibling's colliding message */
			s->t_ms = relm__now(env);
			limit_used(rel);
			return idx;
		}
		sodium_memzero(s, sizeof *s);
		rel->skipped[o->skipped] = rel->skipped[--rel->nskipped];
		sodium_memzero(&rel->skipped[rel->nskipped], sizeof *s);
		return idx;
	}
	case RELM__OPEN_CHAIN:
		idx = o->node;
		t = &rel->tree.nodes[idx];
		from = t->n;
		memcpy(ck0, t->ck, RELM_KEY_LEN);
		break;
	case RELM__OPEN_NEW:
		if (o->strict_prev >= 0) {
			struct relm_node *prev = &rel->tree.nodes[o->strict_prev];
			if (reserve_skipped(rel, o->strict_pn - prev->n) == 0)
				store_skipped(rel, env, prev->pub, prev->ck, prev->n, o->strict_pn);
		}
		idx = relm_tree_add(&rel->tree, &o->fresh);
		if (idx < 0)
			return -1;   /* open checked capacity; unreachable */
		t = &rel->tree.nodes[idx];
		from = 0;
		memcpy(ck0, o->fresh.ck, RELM_KEY_LEN);
		break;
	default:
		return -1;
	}
	if (e->h.n > from && reserve_skipped(rel, e->h.n - from + 1) == 0)
		store_skipped(rel, env, t->pub, ck0, from, e->h.n);
	memcpy(t->ck, o->ck_after, RELM_KEY_LEN);
	t->n = e->h.n + 1;
	if (rel->mode == RELM_MODE_TREE && reserve_skipped(rel, 1) == 0) {
		/* keep the used key briefly: a sibling of the sender may have sent
		 * another message with this counter (proto/ratchet.md §4.5, §5.3) */
		struct relm_skipped *s = &rel->skipped[rel->nskipped++];
		memcpy(s->dh, t->pub, RELM_KEY_LEN);
		s->n = e->h.n;
		memcpy(s->mk, o->mk, RELM_KEY_LEN);
		s->t_ms = relm__now(env);
		s->used = 1;
		limit_used(rel);
	}
	sodium_memzero(ck0, sizeof ck0);
	return idx;
}

void relm__opened_wipe(struct relm__opened *o)
{
	if (o->pt) {
		sodium_memzero(o->pt, o->ptlen);
		free(o->pt);
	}
	sodium_memzero(o, sizeof *o);
}

int relm__make_ours_node(const struct relm_rel *rel, const struct relm_env *env,
                         int parent, struct relm_node *out)
{
	const struct relm_node *par = &rel->tree.nodes[parent];
	struct relm_node n;
	uint8_t dh[RELM_KEY_LEN];
	int rc = RELM_EBADKEY;

	memset(&n, 0, sizeof n);
	relm__random(env, n.priv, RELM_KEY_LEN);
	relm_x25519_public(n.pub, n.priv);
	if (relm_dh(dh, n.priv, par->pub) != 0)
		goto out;
	relm_kdf_rk(n.rk, n.ck, par->rk, dh);
	memcpy(n.parent, par->id, RELM_ID_LEN);
	relm_node_id(n.id, par->id, n.pub);
	n.depth = par->depth + 1;
	n.flags = RELM_NODE_OURS | RELM_NODE_PRIV | RELM_NODE_OWN | RELM_NODE_CHAIN;
	n.created_ms = relm__now(env);
	{
		/* pn: the length of our previous sending chain (the grandparent). */
		int gp = relm_tree_parent(&rel->tree, parent);
		n.pn = gp >= 0 ? rel->tree.nodes[gp].n : 0;
	}
	*out = n;
	rc = 0;
out:
	sodium_memzero(dh, sizeof dh);
	sodium_memzero(&n, sizeof n);
	return rc;
}

int relm__ratchet_seal(const struct relm_rel *rel, const struct relm_env *env,
                       const struct relm_node *node, const uint8_t *pt, size_t ptlen,
                       uint8_t **out, size_t *outlen, uint8_t ck_next[RELM_KEY_LEN])
{
	struct relm_header h;
	uint8_t mk[RELM_KEY_LEN];
	uint8_t ad[RELM_AD_LEN + RELM_HEADER_LEN + RELM_INITIAL_EXT_LEN];
	size_t hl, total;
	uint8_t *buf;
	int gp = -1, p;

	memset(&h, 0, sizeof h);
	h.version = RELM_WIRE_VERSION;
	h.flags = (uint8_t)((rel->initial_pending ? RELM_ENV_F_INITIAL : 0) |
	                    (rel->has_gate ? RELM_ENV_F_GATE : 0));
	memcpy(h.dh_pub, node->pub, RELM_KEY_LEN);
	h.n = node->n;
	/* pn: count of our previous sending chain, if we still hold it. */
	if (memcmp(node->parent, zero_id, RELM_ID_LEN) != 0 &&
	    (p = relm_tree_find(&rel->tree, node->parent)) >= 0)
		gp = relm_tree_parent(&rel->tree, p);
	h.pn = gp >= 0 && (rel->tree.nodes[gp].flags & RELM_NODE_OURS) ? rel->tree.nodes[gp].n : node->pn;
	relm__random(env, h.nonce, RELM_NONCE_LEN);

	total = RELM_HEADER_LEN + (rel->initial_pending ? RELM_INITIAL_EXT_LEN : 0) + ptlen +
	        RELM_TAG_LEN + (rel->has_gate ? RELM_GATE_LEN : 0);
	if (total > RELM_ENVELOPE_MAX)
		return RELM_ETOOBIG;
	buf = malloc(total);
	if (!buf)
		return RELM_ENOMEM;
	hl = relm_header_encode(buf, &h, rel->initial_pending ? &rel->initial : NULL);
	memcpy(ad, rel->ad, RELM_AD_LEN);
	memcpy(ad + RELM_AD_LEN, buf, hl);
	chain_to(mk, ck_next, node->ck, node->n, node->n);
	relm_aead_seal(buf + hl, pt, ptlen, ad, RELM_AD_LEN + hl, h.nonce, mk);
	sodium_memzero(mk, sizeof mk);
	if (rel->has_gate)
		relm_gate_tag(buf + hl + ptlen + RELM_TAG_LEN, rel->gate_key, buf, hl + ptlen + RELM_TAG_LEN);
	*out = buf;
	*outlen = total;
	return 0;
}

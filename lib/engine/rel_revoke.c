/*
 * rel_revoke.c — what a relationship does about revocation
 * (proto/revocation.md): the heal after a device left the circle, the
 * identity roll a remote announces with a successor statement, and the
 * clone rule.  Internal hooks are in rel_int.h; the entry points in rel.h.
 */
#include <string.h>
#include <sodium.h>
#include "engine/rel_int.h"
#include "engine/ratchet.h"
#include "crypto/crypto.h"
#include "wire/successor.h"
#include "error.h"

/* ---- heal (§2) --------------------------------------------------------------- */

/* Every node a heal of this revocation went on is fresh: made by a
 * remaining device after the removal, never copied to the removed one.
 * Several go when sibling delays end before the first copy arrives, and a
 * round repeats when the remote replies elsewhere; the remote's reply on
 * any of them heals, so each is kept (heal_node, and the others oldest
 * first, the oldest dropped when full: a heal more, never a heal less). */
static int is_heal_node(const struct relm_rel *rel, const uint8_t id[RELM_ID_LEN])
{
	if (sodium_is_zero(id, RELM_ID_LEN))
		return 0;
	if (memcmp(rel->heal_node, id, RELM_ID_LEN) == 0)
		return 1;
	for (uint8_t i = 0; i < rel->nheal_others; i++)
		if (memcmp(rel->heal_others[i], id, RELM_ID_LEN) == 0)
			return 1;
	return 0;
}

static void heal_remember(struct relm_rel *rel, const uint8_t id[RELM_ID_LEN])
{
	if (sodium_is_zero(id, RELM_ID_LEN) || is_heal_node(rel, id))
		return;
	if (rel->nheal_others == RELM_HEAL_OTHERS) {
		memmove(rel->heal_others[0], rel->heal_others[1],
		        (size_t)(RELM_HEAL_OTHERS - 1) * RELM_ID_LEN);
		rel->nheal_others--;
	}
	memcpy(rel->heal_others[rel->nheal_others++], id, RELM_ID_LEN);
}

static void heal_forget(struct relm_rel *rel)
{
	memset(rel->heal_node, 0, RELM_ID_LEN);
	memset(rel->heal_others, 0, sizeof rel->heal_others);
	rel->nheal_others = 0;
}

/* Armed: the heal goes at a random moment; the node of the round before
 * (if any) stays a heal node. */
static void heal_draw(struct relm_rel *rel, const struct relm_env *env)
{
	rel->heal_state = RELM_HEAL_ARMED;
	rel->heal_due_ms = relm__now(env) +
	                   relm__random_between(env, env->params.heal_min_ms, env->params.heal_max_ms);
	heal_remember(rel, rel->heal_node);
	memset(rel->heal_node, 0, RELM_ID_LEN);
}

/* Cannot go now: try again later, never in a loop of due timers. */
static void heal_later(struct relm_rel *rel, const struct relm_env *env)
{
	uint32_t gap = env->params.heal_min_ms > 1000 ? env->params.heal_min_ms : 1000;
	rel->heal_due_ms = relm__now(env) + gap;
}

int relm_rel_heal_arm(struct relm_rel *rel, const struct relm_env *env, uint64_t epoch)
{
	if (rel->sibling_session || rel->mode != RELM_MODE_TREE || epoch == 0)
		return RELM_EINVAL;
	if (epoch <= rel->heal_epoch)
		return 0;                  /* that revocation (or a later one) is in hand */
	rel->heal_epoch = epoch;
	/* a new revocation: the heal nodes of the last one may be known to
	 * the device removed now (it held their copies) */
	heal_forget(rel);
	heal_draw(rel, env);
	return 0;
}

int relm__heal_tick(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx)
{
	struct relm_payload p;
	uint8_t on[RELM_ID_LEN];
	int rc;

	if (rel->heal_state != RELM_HEAL_ARMED || relm__now(env) < rel->heal_due_ms)
		return 0;
	if (rel->nout >= RELM_MAX_OUTGOING) {
		heal_later(rel, env);
		return 0;
	}
	memset(&p, 0, sizeof p);
	p.ts = relm__now(env);
	relm__new_id(env, p.ts, p.id);
	p.kind = RELM_KIND_HEAL;
	snprintf(p.kind_str, sizeof p.kind_str, "heal");
	p.body = (char *)"";
	rc = relm__rel_send_tracked(rel, env, &p, "", 0, 1, on, fx);
	if (rc == RELM_ENOSEND || rc == RELM_ELIMIT) {
		heal_later(rel, env);      /* nothing to build on yet */
		return 0;
	}
	if (rc != 0)
		return rc;
	rel->heal_state = RELM_HEAL_SENT;
	rel->heal_due_ms = 0;
	memcpy(rel->heal_node, on, RELM_ID_LEN);
	return 0;
}

uint64_t relm__heal_deadline(const struct relm_rel *rel)
{
	return rel->heal_state == RELM_HEAL_ARMED ? rel->heal_due_ms : 0;
}

void relm__heal_on_node(struct relm_rel *rel, const struct relm_env *env, int node)
{
	const struct relm_node *n;
	int h;

	if (rel->heal_state == RELM_HEAL_NONE || node < 0)
		return;
	n = &rel->tree.nodes[node];
	if (n->flags & RELM_NODE_OURS)
		return;
	if (is_heal_node(rel, n->parent)) {
		/* the remote built on a heal's node (this device's, a sibling's,
		 * or a round's before): healed */
		rel->heal_state = RELM_HEAL_NONE;
		rel->heal_due_ms = 0;
		heal_forget(rel);
		return;
	}
	if (rel->heal_state != RELM_HEAL_SENT)
		return;                    /* armed: the next heal builds on this reply */
	/* The remote replied on another branch, as deep as the heal's or
	 * deeper (it chose a node older than the revocation): heal again, on
	 * a node built on this reply. */
	h = relm_tree_find(&rel->tree, rel->heal_node);
	if (h < 0 || n->depth > rel->tree.nodes[h].depth)
		heal_draw(rel, env);
}

/* While the heal waits for the remote's reply, a message goes on a heal
 * node, never on an ours sibling of one, which the removed device may
 * hold: the fork rule picks such a sibling when it is valid (this proton
 * spoke last and the remote acknowledged it) or first in node_id order,
 * and rotation (ratchet.md §6.3) moves a retry onto it.  Only the heal's
 * own retries rotate: a strict remote that refused the heal's node is
 * reached on the older one, and the heal goes again on its reply (§2). */
int relm__heal_steer(const struct relm_rel *rel, int idx, int kind, int retry)
{
	const struct relm_tree *t = &rel->tree;
	int best = -1;

	if (rel->heal_state != RELM_HEAL_SENT || idx < 0 || !(t->nodes[idx].flags & RELM_NODE_OURS) ||
	    is_heal_node(rel, t->nodes[idx].id) || (kind == RELM_KIND_HEAL && retry))
		return idx;
	for (uint32_t i = 0; i < t->count; i++) {
		const struct relm_node *n = &t->nodes[i];
		if ((n->flags & RELM_NODE_OURS) && (n->flags & RELM_NODE_CHAIN) &&
		    memcmp(n->parent, t->nodes[idx].parent, RELM_ID_LEN) == 0 && is_heal_node(rel, n->id) &&
		    (best < 0 || memcmp(n->id, t->nodes[best].id, RELM_ID_LEN) < 0))
			best = (int)i;
	}
	return best >= 0 ? best : idx;
}

void relm__heal_sibling(struct relm_rel *rel, const uint8_t node[RELM_ID_LEN])
{
	if (rel->heal_state == RELM_HEAL_NONE)
		return;
	if (rel->heal_state == RELM_HEAL_SENT) {
		/* this device's heal raced a sibling's: both are heal nodes, and
		 * the remote may reply on either */
		heal_remember(rel, node);
		return;
	}
	/* a sibling healed: its node is as fresh as ours would be */
	rel->heal_state = RELM_HEAL_SENT;
	rel->heal_due_ms = 0;
	memcpy(rel->heal_node, node, RELM_ID_LEN);
}

/* ---- identity roll (§3) ---------------------------------------------------------- */

static void emit_identity(struct relm_effects *fx, const struct relm_rel *rel, int type,
                          const uint8_t ipk[RELM_SIGN_PK_LEN], int code)
{
	struct relm_fx *f = relm__emit_rel_event(fx, rel, type);

	if (!f)
		return;
	if (ipk) {
		memcpy(f->ev.ipk, ipk, RELM_SIGN_PK_LEN);
		f->ev.has |= RELM_EVF_IPK;
	}
	if (code) {
		f->ev.code = code;
		f->ev.has |= RELM_EVF_CODE;
	}
}

static int is_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* The rule of §3.2 for a verified statement s. */
static void identity_apply(struct relm_rel *rel, const struct relm_successor *s,
                           struct relm_effects *fx)
{
	int cur_old = !memcmp(s->old_ipk, rel->ipk_remote, RELM_SIGN_PK_LEN);
	int prev_old = !is_zero(rel->ipk_prev, RELM_SIGN_PK_LEN) &&
	               !memcmp(s->old_ipk, rel->ipk_prev, RELM_SIGN_PK_LEN);

	if (rel->ipk_conflict) {
		/* undecided: the pin stays; a statement of another successor of
		 * the pinned key is another conflict report */
		if (cur_old && s->seq == rel->ipk_seq + 1 &&
		    memcmp(s->new_ipk, rel->ipk_cand[0], RELM_SIGN_PK_LEN) &&
		    memcmp(s->new_ipk, rel->ipk_cand[1], RELM_SIGN_PK_LEN))
			emit_identity(fx, rel, RELM_EV_IDENTITY_CONFLICT, s->new_ipk, 0);
		else
			emit_identity(fx, rel, RELM_EV_IDENTITY_REJECTED, s->new_ipk, RELM_EREPLAY);
		return;
	}
	if (cur_old && s->seq == rel->ipk_seq + 1) {
		memcpy(rel->ipk_prev, rel->ipk_remote, RELM_SIGN_PK_LEN);
		memcpy(rel->ipk_remote, s->new_ipk, RELM_SIGN_PK_LEN);
		rel->ipk_seq = s->seq;
		emit_identity(fx, rel, RELM_EV_IDENTITY_ROTATED, s->new_ipk, 0);
		return;
	}
	if (prev_old && s->seq == rel->ipk_seq) {
		if (!memcmp(s->new_ipk, rel->ipk_remote, RELM_SIGN_PK_LEN)) {
			emit_identity(fx, rel, RELM_EV_IDENTITY_REJECTED, s->new_ipk, RELM_EREPLAY);
			return;
		}
		/* a second successor of the key we rolled from: back to it until
		 * the person decides (relm_rel_identity_accept) */
		memcpy(rel->ipk_cand[0], rel->ipk_remote, RELM_SIGN_PK_LEN);
		memcpy(rel->ipk_cand[1], s->new_ipk, RELM_SIGN_PK_LEN);
		memcpy(rel->ipk_remote, rel->ipk_prev, RELM_SIGN_PK_LEN);
		memset(rel->ipk_prev, 0, RELM_SIGN_PK_LEN);
		rel->ipk_seq--;
		rel->ipk_conflict = 1;
		emit_identity(fx, rel, RELM_EV_IDENTITY_CONFLICT, s->new_ipk, 0);
		return;
	}
	/* an older roll again, or one whose old key this relationship never
	 * pinned */
	emit_identity(fx, rel, RELM_EV_IDENTITY_REJECTED, s->new_ipk,
	              cur_old || prev_old || s->seq <= rel->ipk_seq ? RELM_EREPLAY : RELM_ENOTFOUND);
}

void relm__identity_received(struct relm_rel *rel, const struct relm_payload *p,
                             struct relm_effects *fx)
{
	uint8_t st[RELM_SUCCESSOR_LEN];
	struct relm_successor s;
	int rc;

	if (!p->body || p->body_len != RELM_SUCCESSOR_HEX)
		rc = RELM_EMALFORMED;
	else if ((rc = relm_unhex(st, sizeof st, p->body, p->body_len)) == 0)
		rc = relm_successor_decode(&s, st, sizeof st);
	if (rc != 0) {
		emit_identity(fx, rel, RELM_EV_IDENTITY_REJECTED, NULL, rc);
		return;
	}
	identity_apply(rel, &s, fx);
}

int relm_rel_send_identity(struct relm_rel *rel, const struct relm_env *env,
                           const uint8_t *stmt, size_t len, uint8_t id_out[RELM_ID_LEN],
                           struct relm_effects *fx)
{
	struct relm_successor s;
	struct relm_payload p;
	char hex[RELM_SUCCESSOR_HEX + 1];
	uint8_t on[RELM_ID_LEN];
	int rc;

	if (rel->sibling_session)
		return RELM_EINVAL;
	if ((rc = relm_successor_decode(&s, stmt, len)) != 0)
		return rc;
	if (memcmp(s.old_ipk, rel->ipk_self, RELM_SIGN_PK_LEN) != 0)
		return RELM_EINVAL;
	if (rel->nout >= RELM_MAX_OUTGOING)
		return RELM_ELIMIT;
	relm_hex(hex, stmt, len);
	memset(&p, 0, sizeof p);
	p.ts = relm__now(env);
	relm__new_id(env, p.ts, p.id);
	p.kind = RELM_KIND_IDENTITY;
	snprintf(p.kind_str, sizeof p.kind_str, "identity");
	p.body = hex;
	p.body_len = RELM_SUCCESSOR_HEX;
	if ((rc = relm__rel_send_tracked(rel, env, &p, hex, RELM_SUCCESSOR_HEX, 0, on, fx)) != 0)
		return rc;
	memcpy(rel->ipk_self, s.new_ipk, RELM_SIGN_PK_LEN);
	memcpy(id_out, p.id, RELM_ID_LEN);
	return 0;
}

int relm_rel_identity_accept(struct relm_rel *rel, const uint8_t ipk[RELM_SIGN_PK_LEN],
                             struct relm_effects *fx)
{
	int k;

	if (!rel->ipk_conflict)
		return RELM_EINVAL;
	if (!memcmp(ipk, rel->ipk_cand[0], RELM_SIGN_PK_LEN))
		k = 0;
	else if (!memcmp(ipk, rel->ipk_cand[1], RELM_SIGN_PK_LEN))
		k = 1;
	else
		return RELM_ENOTFOUND;
	if (!relm__emit_rel_event(fx, rel, RELM_EV_IDENTITY_ROTATED))
		return RELM_ENOMEM;
	memcpy(fx->v[fx->n - 1].ev.ipk, ipk, RELM_SIGN_PK_LEN);
	fx->v[fx->n - 1].ev.has |= RELM_EVF_IPK;
	memcpy(rel->ipk_prev, rel->ipk_remote, RELM_SIGN_PK_LEN);
	memcpy(rel->ipk_remote, rel->ipk_cand[k], RELM_SIGN_PK_LEN);
	rel->ipk_seq++;
	rel->ipk_conflict = 0;
	memset(rel->ipk_cand, 0, sizeof rel->ipk_cand);
	return 0;
}

/* ---- clone rule (§4) -------------------------------------------------------------- */

/* Does something this device knows explain an acknowledgement of (id, dh):
 * an ours node of the tree or a sibling's pending copy on that key, or the
 * message in this device's record (outgoing, de-duplication ring,
 * history)? */
static int explained(const struct relm_rel *rel, const struct relm_env *env,
                     const uint8_t id[RELM_ID_LEN], const uint8_t dh[RELM_KEY_LEN])
{
	if (relm_tree_find_pub(&rel->tree, dh, 1) >= 0)
		return 1;
	for (uint32_t i = 0; i < rel->npcopies; i++)
		if (!memcmp(rel->pcopies[i].pub, dh, RELM_KEY_LEN))
			return 1;
	if (relm__find_outgoing(rel, id) >= 0 || relm__seen_recent(rel, id))
		return 1;
	return env->history_has && env->history_has(env->history_ctx, rel->id, id) == 1;
}

/* Watch the acknowledgement of (id, dh) from since, unless one is watched
 * already or this device can judge it now (it explains it, or cannot tell
 * its own messages). */
static void clone_watch(struct relm_rel *rel, const struct relm_env *env,
                        const uint8_t id[RELM_ID_LEN], const uint8_t dh[RELM_KEY_LEN], uint64_t since)
{
	if (rel->clone_since_ms || rel->sibling_session || rel->mode != RELM_MODE_TREE ||
	    (rel->out_partial && !env->history_has) || explained(rel, env, id, dh))
		return;
	rel->clone_since_ms = since;
	memcpy(rel->clone_id, id, RELM_ID_LEN);
	memcpy(rel->clone_dh, dh, RELM_KEY_LEN);
}

void relm__clone_on_ack(struct relm_rel *rel, const struct relm_env *env,
                        const uint8_t id[RELM_ID_LEN], const uint8_t dh[RELM_KEY_LEN])
{
	clone_watch(rel, env, id, dh, relm__now(env));
}

uint64_t relm__clone_deadline(const struct relm_rel *rel, const struct relm_env *env)
{
	return rel->clone_since_ms ? rel->clone_since_ms + env->params.clone_window_ms : 0;
}

void relm__clone_tick(struct relm_rel *rel, const struct relm_env *env, struct relm_effects *fx)
{
	struct relm_fx *f;

	if (!rel->clone_since_ms || relm__now(env) < relm__clone_deadline(rel, env))
		return;
	if (!explained(rel, env, rel->clone_id, rel->clone_dh) &&
	    (f = relm__emit_rel_event(fx, rel, RELM_EV_CLONE_SUSPECTED)) != NULL) {
		/* the node's parent is not known here: the node is named by its
		 * ratchet key, BLAKE2b-128(dh) (proto/revocation.md §4) */
		crypto_generichash(f->ev.node, RELM_ID_LEN, rel->clone_dh, RELM_KEY_LEN, NULL, 0);
		f->ev.has |= RELM_EVF_NODE;
	}
	rel->clone_since_ms = 0;
	memset(rel->clone_id, 0, RELM_ID_LEN);
	memset(rel->clone_dh, 0, RELM_KEY_LEN);
}

/* ---- a sibling's state merged (§5) ------------------------------------------------ */

static int key_eq(const uint8_t a[RELM_SIGN_PK_LEN], const uint8_t b[RELM_SIGN_PK_LEN])
{
	return memcmp(a, b, RELM_SIGN_PK_LEN) == 0;
}

int relm__identity_merge(struct relm_rel *rel, const struct relm_rel *o, struct relm_effects *fx)
{
	uint8_t remote[RELM_SIGN_PK_LEN], prev[RELM_SIGN_PK_LEN], cand[2][RELM_SIGN_PK_LEN];
	const uint8_t *news;               /* the event's key: the one new here */
	uint64_t seq;
	int type;

	memset(cand, 0, sizeof cand);
	if (o->ipk_conflict) {
		/* a conflict there is one here, on the older pin of the two */
		if (rel->ipk_conflict && rel->ipk_seq <= o->ipk_seq)
			return 0;
		type = RELM_EV_IDENTITY_CONFLICT;
		memcpy(remote, o->ipk_remote, RELM_SIGN_PK_LEN);
		memcpy(prev, o->ipk_prev, RELM_SIGN_PK_LEN);
		memcpy(cand, o->ipk_cand, sizeof cand);
		seq = o->ipk_seq;
		news = key_eq(cand[1], rel->ipk_remote) ? o->ipk_cand[0] : o->ipk_cand[1];
	} else if (rel->ipk_conflict) {
		return 0;                  /* the sibling saw only one of the two */
	} else if (o->ipk_seq > rel->ipk_seq &&
	           (o->ipk_seq > rel->ipk_seq + 1 || key_eq(o->ipk_prev, rel->ipk_remote))) {
		/* a later roll, from the key pinned here when it is the next one */
		type = RELM_EV_IDENTITY_ROTATED;
		memcpy(remote, o->ipk_remote, RELM_SIGN_PK_LEN);
		memcpy(prev, o->ipk_prev, RELM_SIGN_PK_LEN);
		seq = o->ipk_seq;
		news = o->ipk_remote;
	} else if (o->ipk_seq == rel->ipk_seq && !is_zero(rel->ipk_prev, RELM_SIGN_PK_LEN) &&
	           !key_eq(o->ipk_remote, rel->ipk_remote) && key_eq(o->ipk_prev, rel->ipk_prev)) {
		/* each device accepted another successor of one key: the rule of
		 * §3.2 had it seen both — back to the old pin until the person
		 * decides */
		type = RELM_EV_IDENTITY_CONFLICT;
		memcpy(remote, rel->ipk_prev, RELM_SIGN_PK_LEN);
		memset(prev, 0, RELM_SIGN_PK_LEN);
		memcpy(cand[0], rel->ipk_remote, RELM_SIGN_PK_LEN);
		memcpy(cand[1], o->ipk_remote, RELM_SIGN_PK_LEN);
		seq = rel->ipk_seq - 1;
		news = o->ipk_remote;
	} else {
		/* the same pin, an older one, or a chain that cannot be placed
		 * against this one (a roll from a key never pinned here): kept */
		return 0;
	}
	if (!relm__emit_rel_event(fx, rel, type))
		return RELM_ENOMEM;
	memcpy(fx->v[fx->n - 1].ev.ipk, news, RELM_SIGN_PK_LEN);
	fx->v[fx->n - 1].ev.has |= RELM_EVF_IPK;
	memcpy(rel->ipk_remote, remote, RELM_SIGN_PK_LEN);
	memcpy(rel->ipk_prev, prev, RELM_SIGN_PK_LEN);
	rel->ipk_seq = seq;
	rel->ipk_conflict = type == RELM_EV_IDENTITY_CONFLICT;
	memcpy(rel->ipk_cand, cand, sizeof rel->ipk_cand);
	return 0;
}

/* The heal (§2): the newest revocation wins, heal nodes of one are all
 * kept, healed on either side is healed. */
static void heal_merge(struct relm_rel *rel, const struct relm_env *env, const struct relm_rel *o)
{
	if (o->heal_epoch == 0 || o->heal_epoch < rel->heal_epoch)
		return;                    /* the sibling's heal is for an older revocation */
	if (o->heal_epoch > rel->heal_epoch) {
		/* a revocation this device has not armed (its circle is late):
		 * its heal nodes, of an older one, may be known to the device
		 * removed now */
		rel->heal_epoch = o->heal_epoch;
		heal_forget(rel);
		rel->heal_state = o->heal_state;
		rel->heal_due_ms = 0;
		if (o->heal_state == RELM_HEAL_NONE)
			return;                /* healed there */
		if (o->heal_state == RELM_HEAL_ARMED)
			heal_draw(rel, env);   /* its own delay, as relm_rel_heal_arm */
		else
			memcpy(rel->heal_node, o->heal_node, RELM_ID_LEN);
	} else if (rel->heal_state == RELM_HEAL_NONE) {
		return;                    /* healed here */
	} else if (o->heal_state == RELM_HEAL_NONE) {
		/* healed there: the remote replied on a heal node of this
		 * revocation, which the merged tree now holds */
		rel->heal_state = RELM_HEAL_NONE;
		rel->heal_due_ms = 0;
		heal_forget(rel);
		return;
	} else if (o->heal_state == RELM_HEAL_SENT) {
		relm__heal_sibling(rel, o->heal_node);
	}
	for (uint8_t i = 0; i < o->nheal_others && i < RELM_HEAL_OTHERS; i++)
		heal_remember(rel, o->heal_others[i]);
}

void relm__revoke_merge(struct relm_rel *rel, const struct relm_env *env, const struct relm_rel *o)
{
	heal_merge(rel, env, o);
	/* an acknowledgement the sibling watches and this device does not: as
	 * if it had read the receipt then (it reads the same receipts) —
	 * judged by what this device knows, the merged tree included */
	if (o->clone_since_ms)
		clone_watch(rel, env, o->clone_id, o->clone_dh, o->clone_since_ms);
}

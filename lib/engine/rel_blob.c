/*
 * rel_blob.c — the relationship's ratchet state as one versioned blob, for
 * the store (one row per relationship, loaded lazily) and for the sibling
 * `state` message later.  Everything but the pending set, the
 * retransmission queue and the acknowledgements waiting for the receipt
 * timer (rows of their own).  Layout of version 8 (proto/devices.md §8):
 *
 *   "RLS" version(1)=8
 *   id(16) mode(1) side(1) present(2, big-endian)
 *   [P_AD: ad(64)] ipk_self(32) ipk_remote(32) mbox_sk(64)
 *   [P_MBOX_PK: mbox_pk(32)] [P_REMOTE_PK: remote_mbox_pk(32)]
 *   has_gate(1) [P_GATE: gate_key(32)]
 *   str remote_mailbox, initial_pending(1), [P_INITIAL: initial ext(72)],
 *   str invite_mailbox
 *   v nodes   × { id(16) parent_ref(1) [0xff: parent(16)] v depth flags(1)
 *                 pub(32) [priv(32)] [rk(32)] [ck(32)] v n  v pn  v created }
 *   v skipped × { dh(32) v n  mk(32) v t  used(1) }
 *   v receipt_due, u8 k × recent id(16) (oldest first, none all-zero)
 *   [P_STATS: 5 × v stats]
 *   u8 k × pending copy { from(16) node(16) v n  parent(16) pub(32) priv(32) v pn  v t }
 *   u8 k × pruned id(16), u8 k × acked { id(16) dh(32) }
 *   [P_BATCH: batch_first(16) v repair_ms] sibling_session(1)
 *   [P_REVOKE: v ipk_seq  ipk_prev(32) ipk_conflict(1) ipk_cand(2×32)
 *    heal_state(1) v heal_epoch  v heal_due  heal_node(16) v clone_since
 *    clone_id(16) clone_dh(32)]
 *   [P_HEALS: u8 k × heal node id(16)] (k 1..RELM_HEAL_OTHERS, none all-zero)
 *   str = u16 length (big-endian) + bytes (no NUL)
 *   v = varint: 7 bits a byte, least significant first, shortest form
 *
 * A field in [brackets] is written only when it holds something the
 * decoder could not know without it, and `present` (or, for a node's
 * keys, high bits of its flags byte) says which are there:
 *   P_AD        ad is not ipk_a ‖ ipk_b of the current ipks (x3dh.h: an
 *               identity roll changes an ipk, never the ad)
 *   P_MBOX_PK   mbox_pk is not the last half of mbox_sk (an Ed25519
 *               secret key is seed ‖ public key)
 *   P_REMOTE_PK remote_mbox_pk is not the id in remote_mailbox
 *   P_GATE, P_INITIAL, P_STATS, P_BATCH, P_REVOKE: not all zero
 *   P_HEALS     (0x100, version 8 only) the heal's other nodes are not
 *               none (proto/revocation.md §2, §5)
 *   node flag bits 0x80 priv, 0x40 rk, 0x20 ck: not all zero
 * parent_ref is the parent's index in the node list (the first node with
 * its id), 0xfe for the all-zero parent, 0xff with the id when no node of
 * the list has it.  Version 7 is version 8 with every v a fixed-width
 * big-endian integer (u32, or u64 for times, epochs and ipk_seq) and
 * parent(16) in place of parent_ref.
 *
 * An idle relationship (hello, one message each way) is 1,708 bytes in
 * version 6, 1,200 in 7, 1,061 in 8: three rows to a 4 KB store page
 * instead of two (bench_scale prints the store's bytes per relationship).
 * Absent fields decode to the derived value or zero, and anything the
 * encoder would have written otherwise (a field present that could have
 * been left out, an index where an id was due, a long varint) is
 * malformed: one state, one encoding (fuzz_rel_blob re-encodes every
 * current blob).
 *
 * Versions 1 to 7 are still decoded (relm_rel_encode_version writes 6 and 7):
 *
 *   "RLS" version(1)
 *   id(16) mode(1) side(1) ad(64) ipk_self(32) ipk_remote(32)
 *   mbox_pk(32) mbox_sk(64) remote_mbox_pk(32)
 *   [v5: has_gate(1) gate_key(32) — v1–v4 relationships have no gate key]
 *   str remote_mailbox, initial_pending(1), initial ext(72), str invite_mailbox
 *   u32 nodes   × { id(16) parent(16) depth(4) flags(1) pub(32) priv(32) rk(32) ck(32) n(4) pn(4) created(8) }
 *   u32 skipped × { dh(32) n(4) mk(32) t(8) used(1) }
 *   [v1 only: u32 out × { id(16) kind(1) ts(8) tries(4) next(8) last(16) u32 len, body }
 *    — v2 keeps the retransmission queue in the store's `outgoing` table]
 *   [v1–v3 only: u32 acks × { id(16) dh(32) n(4) }
 *    — v4 keeps them in the store's `acks` table]
 *   receipt_due(8)
 *   v3: u8 k, then the k ids of the recent ring that are in use, oldest
 *       first, none all-zero (the mark of an unused slot) (v1, v2: the
 *       whole ring, 64×16, and recent_next(4))
 *   stats(5×4)
 *   [v5: the multi-device tail (proto/devices.md §8):
 *        u8 k × pending copy { from(16) node(16) n(4) parent(16) pub(32) priv(32) pn(4) t(8) }
 *        u8 k × pruned id(16), u8 k × receipted id(16), batch_first(16), repair_ms(8),
 *        sibling_session(1)]
 *   [v6: the revocation tail (proto/revocation.md), as in v7 but always there]
 *
 * Decoding never trusts a count: every one is range-checked against the
 * limits before anything is allocated, and a malformed blob is RELM_ESTATE.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "engine/rel_state.h"
#include "crypto/ct.h"
#include "crypto/x3dh.h"
#include "wire/addr.h"
#include "error.h"

/* 2: no retransmission queue; 3: only the used part of the recent-id ring
 * (it was half of a typical blob); 4: no acknowledgements waiting for the
 * receipt timer (a busy relationship held up to 4,096 of them, 52 bytes
 * each, decoded and re-encoded at every step); 5: the gate key (proto/wire.md
 * §5.1); 6: the revocation tail (proto/revocation.md).  1 to 4 still
 * decode, without a gate key; 1 to 5 without the revocation tail (all zero);
 * 7: fields left out when derivable or all zero; 8: integers as varints
 * and a node's parent by its index in the tree (the layout above). */
enum { BLOB_VERSION = 8, BLOB_VERSION_FULL = 6, BLOB_VERSION_PRESENT = 7 };

/* v7 `present` bits, and a node's high flag bits (above RELM_NODE_KNOWN_FLAGS) */
enum {
	P_AD = 0x01, P_MBOX_PK = 0x02, P_REMOTE_PK = 0x04, P_GATE = 0x08,
	P_INITIAL = 0x10, P_STATS = 0x20, P_BATCH = 0x40, P_REVOKE = 0x80,
	P_KNOWN = 0xff,
	P_HEALS = 0x100, P_KNOWN_V8 = 0x1ff,       /* v8 only */
	N_PRIV = 0x80, N_RK = 0x40, N_CK = 0x20,
	/* v8 parent reference: an index into the tree's nodes, or one of these */
	PARENT_ZERO = 0xfe, PARENT_ID = 0xff,
};
_Static_assert((int)RELM_MAX_NODES < (int)PARENT_ZERO, "a node index must fit below the parent markers");

/* Encoded sizes of the repeated records (layout above). */
enum {
	BLOB_NODE_LEN    = 16 + 16 + 4 + 1 + 4 * 32 + 4 + 4 + 8,
	BLOB_SKIPPED_LEN = 32 + 4 + 32 + 8 + 1,
	BLOB_ACK_LEN     = 16 + 32 + 4,
	BLOB_PCOPY_LEN   = 16 + 16 + 4 + 16 + 32 + 32 + 4 + 8,
	BLOB_REVOKE_LEN  = 8 + 32 + 1 + 2 * 32 + 1 + 8 + 8 + 16 + 8 + 16 + 32,
};

struct wbuf {
	uint8_t *p;
	size_t n, cap;
	int err;
	int var;             /* v8: integer fields as varints */
};

static void w_put(struct wbuf *w, const void *d, size_t len)
{
	if (w->err)
		return;
	if (w->n + len > w->cap) {
		size_t cap = w->cap ? w->cap : 1024;
		while (cap < w->n + len)
			cap *= 2;
		uint8_t *np = malloc(cap);
		if (!np) {
			w->err = 1;
			return;
		}
		if (w->n)
			memcpy(np, w->p, w->n);
		if (w->p) {
			sodium_memzero(w->p, w->n);
			free(w->p);
		}
		w->p = np;
		w->cap = cap;
	}
	memcpy(w->p + w->n, d, len);
	w->n += len;
}

static void w_u8(struct wbuf *w, uint8_t v) { w_put(w, &v, 1); }
static void w_u16(struct wbuf *w, uint16_t v) { uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v }; w_put(w, b, 2); }
static void w_u32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	w_put(w, b, 4);
}
static void w_u64(struct wbuf *w, uint64_t v) { w_u32(w, (uint32_t)(v >> 32)); w_u32(w, (uint32_t)v); }
static void w_str(struct wbuf *w, const char *s) { size_t l = strlen(s); w_u16(w, (uint16_t)l); w_put(w, s, l); }
/* v8: LEB128, 7 bits a byte, least significant first, shortest form */
static void w_var(struct wbuf *w, uint64_t v)
{
	uint8_t b[10];
	size_t n = 0;
	do {
		b[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		b[n++] |= v ? 0x80 : 0;
	} while (v);
	w_put(w, b, n);
}
/* An integer field: fixed width before v8, a varint from v8 on. */
static void w_i32(struct wbuf *w, uint32_t v) { if (w->var) w_var(w, v); else w_u32(w, v); }
static void w_i64(struct wbuf *w, uint64_t v) { if (w->var) w_var(w, v); else w_u64(w, v); }

_Static_assert((RELM_NODE_KNOWN_FLAGS & (N_PRIV | N_RK | N_CK)) == 0,
               "a node's stored-key bits must not be node flags");

/* ---- what version 7 leaves out (the layout above) -------------------- */

/* The ad a relationship starts with: ipk_a ‖ ipk_b (x3dh.h). */
static void derived_ad(const struct relm_rel *rel, uint8_t ad[RELM_AD_LEN])
{
	if (rel->side == 'a')
		relm_rel_ad(ad, rel->ipk_self, rel->ipk_remote);
	else
		relm_rel_ad(ad, rel->ipk_remote, rel->ipk_self);
}

/* The id in the remote mailbox address: 0, or -1 when it has none. */
static int derived_remote_pk(const char *mailbox, uint8_t pk[RELM_SIGN_PK_LEN])
{
	struct relm_addr a;
	if (relm_addr_parse(&a, mailbox, strlen(mailbox)) != 0 || !a.has_id)
		return -1;
	memcpy(pk, a.id, RELM_SIGN_PK_LEN);
	return 0;
}

static int stats_zero(const struct relm_rel *rel)
{
	return !(rel->stats.forks | rel->stats.pruned | rel->stats.retx | rel->stats.dups | rel->stats.trials);
}

static int revoke_zero(const struct relm_rel *rel)
{
	return !rel->ipk_seq && !rel->ipk_conflict && !rel->heal_state && !rel->heal_epoch &&
	       !rel->heal_due_ms && !rel->clone_since_ms &&
	       relm_ct_is_zero(rel->ipk_prev, sizeof rel->ipk_prev) &&
	       relm_ct_is_zero((const uint8_t *)rel->ipk_cand, sizeof rel->ipk_cand) &&
	       relm_ct_is_zero(rel->heal_node, sizeof rel->heal_node) &&
	       relm_ct_is_zero(rel->clone_id, sizeof rel->clone_id) &&
	       relm_ct_is_zero(rel->clone_dh, sizeof rel->clone_dh);
}

/* The `present` bits of rel: which fields version 7 must write. */
static unsigned present_of(const struct relm_rel *rel)
{
	uint8_t d[RELM_AD_LEN];
	unsigned p = 0;

	derived_ad(rel, d);
	if (memcmp(d, rel->ad, RELM_AD_LEN) != 0)
		p |= P_AD;
	if (memcmp(rel->mbox_sk + 32, rel->mbox_pk, RELM_SIGN_PK_LEN) != 0)
		p |= P_MBOX_PK;
	if (derived_remote_pk(rel->remote_mailbox, d) != 0 ||
	    memcmp(d, rel->remote_mbox_pk, RELM_SIGN_PK_LEN) != 0)
		p |= P_REMOTE_PK;
	if (!relm_ct_is_zero(rel->gate_key, sizeof rel->gate_key))
		p |= P_GATE;
	if (!relm_ct_is_zero(rel->initial.ipk, 32) || !relm_ct_is_zero(rel->initial.ek, 32) ||
	    rel->initial.spk_id || rel->initial.opk_id)
		p |= P_INITIAL;
	if (!stats_zero(rel))
		p |= P_STATS;
	if (!relm_ct_is_zero(rel->batch_first, RELM_ID_LEN) || rel->repair_ms)
		p |= P_BATCH;
	if (!revoke_zero(rel))
		p |= P_REVOKE;
	if (rel->nheal_others)
		p |= P_HEALS;
	return p;
}

/* A node's stored-key bits (version 7). */
static uint8_t node_keys_of(const struct relm_node *n)
{
	return (uint8_t)((relm_ct_is_zero(n->priv, 32) ? 0 : N_PRIV) | (relm_ct_is_zero(n->rk, 32) ? 0 : N_RK) |
	                 (relm_ct_is_zero(n->ck, 32) ? 0 : N_CK));
}

/* ---- encoding ---------------------------------------------------------- */

static void w_revoke_tail(struct wbuf *w, const struct relm_rel *rel)
{
	w_i64(w, rel->ipk_seq);
	w_put(w, rel->ipk_prev, RELM_SIGN_PK_LEN);
	w_u8(w, rel->ipk_conflict);
	w_put(w, rel->ipk_cand, sizeof rel->ipk_cand);
	w_u8(w, rel->heal_state);
	w_i64(w, rel->heal_epoch);
	w_i64(w, rel->heal_due_ms);
	w_put(w, rel->heal_node, RELM_ID_LEN);
	w_i64(w, rel->clone_since_ms);
	w_put(w, rel->clone_id, RELM_ID_LEN);
	w_put(w, rel->clone_dh, RELM_KEY_LEN);
}

int relm_rel_encode(const struct relm_rel *rel, uint8_t **out, size_t *outlen)
{
	return relm_rel_encode_version(rel, BLOB_VERSION, out, outlen);
}

int relm_rel_encode_version(const struct relm_rel *rel, unsigned version, uint8_t **out, size_t *outlen)
{
	struct wbuf w = { 0 };
	uint8_t ext[RELM_INITIAL_EXT_LEN];
	const int full = version == BLOB_VERSION_FULL;
	/* versions 6 and 7 cannot hold the other heal nodes: they are left
	 * out (only tests write those versions) */
	const unsigned present = full ? P_KNOWN : present_of(rel) & (version >= 8 ? P_KNOWN_V8 : P_KNOWN);

	assert(version == BLOB_VERSION || version == BLOB_VERSION_PRESENT || version == BLOB_VERSION_FULL);
	w.var = version >= 8;
	/* One allocation of the largest size this state can encode to: growing
	 * by doubling meant three copies, each wiped, per engine step. */
	w.cap = 4 + RELM_ID_LEN + 2 + 2 + RELM_AD_LEN + 4 * 32 + 64 + 1 + 32 + 2 + strlen(rel->remote_mailbox) +
	        1 + RELM_INITIAL_EXT_LEN + 2 + strlen(rel->invite_mailbox) +
	        4 + (size_t)rel->tree.count * BLOB_NODE_LEN +
	        4 + (size_t)rel->nskipped * BLOB_SKIPPED_LEN +
	        8 +
	        1 + (size_t)RELM_RECENT_IDS * RELM_ID_LEN + 5 * 4 +
	        1 + (size_t)rel->npcopies * BLOB_PCOPY_LEN + 2 + (size_t)rel->npruned * 16 + (size_t)rel->nacked * 48 +
	        16 + 8 + 1 + BLOB_REVOKE_LEN + 1 + (size_t)RELM_HEAL_OTHERS * RELM_ID_LEN +
	        /* v8: a varint is up to a byte longer than a u32 (5 bytes) and
	         * two longer than a u64 (10); a parent_ref adds one before an id */
	        (size_t)rel->tree.count * (1 + 1 + 1 + 1 + 2) + (size_t)rel->nskipped * (1 + 2) +
	        (size_t)rel->npcopies * (1 + 1 + 2) + 2 + 5 + 2 + 5 * 2 + 4 * 2;
	const size_t cap0 = w.cap;
	if (!(w.p = malloc(w.cap)))
		return RELM_ENOMEM;
	w_put(&w, "RLS", 3);
	w_u8(&w, (uint8_t)version);
	w_put(&w, rel->id, RELM_ID_LEN);
	w_u8(&w, rel->mode);
	w_u8(&w, rel->side);
	if (!full)
		w_u16(&w, (uint16_t)present);
	if (present & P_AD)
		w_put(&w, rel->ad, RELM_AD_LEN);
	w_put(&w, rel->ipk_self, 32);
	w_put(&w, rel->ipk_remote, 32);
	if (full) {
		w_put(&w, rel->mbox_pk, 32);
		w_put(&w, rel->mbox_sk, 64);
	} else {
		w_put(&w, rel->mbox_sk, 64);
		if (present & P_MBOX_PK)
			w_put(&w, rel->mbox_pk, 32);
	}
	if (present & P_REMOTE_PK)
		w_put(&w, rel->remote_mbox_pk, 32);
	w_u8(&w, rel->has_gate);
	if (present & P_GATE)
		w_put(&w, rel->gate_key, 32);
	w_str(&w, rel->remote_mailbox);
	w_u8(&w, rel->initial_pending);
	if (present & P_INITIAL) {
		memcpy(ext, rel->initial.ipk, 32);
		memcpy(ext + 32, rel->initial.ek, 32);
		ext[64] = (uint8_t)(rel->initial.spk_id >> 24); ext[65] = (uint8_t)(rel->initial.spk_id >> 16);
		ext[66] = (uint8_t)(rel->initial.spk_id >> 8);  ext[67] = (uint8_t)rel->initial.spk_id;
		ext[68] = (uint8_t)(rel->initial.opk_id >> 24); ext[69] = (uint8_t)(rel->initial.opk_id >> 16);
		ext[70] = (uint8_t)(rel->initial.opk_id >> 8);  ext[71] = (uint8_t)rel->initial.opk_id;
		w_put(&w, ext, sizeof ext);
		sodium_memzero(ext, sizeof ext);
	}
	w_str(&w, rel->invite_mailbox);

	w_i32(&w, rel->tree.count);
	for (uint32_t i = 0; i < rel->tree.count; i++) {
		const struct relm_node *n = &rel->tree.nodes[i];
		const uint8_t keys = full ? (N_PRIV | N_RK | N_CK) : node_keys_of(n);
		w_put(&w, n->id, 16);
		if (version >= 8) {
			int at = relm_tree_find(&rel->tree, n->parent);
			if (relm_ct_is_zero(n->parent, RELM_ID_LEN)) {
				w_u8(&w, PARENT_ZERO);
			} else if (at >= 0) {
				w_u8(&w, (uint8_t)at);
			} else {
				w_u8(&w, PARENT_ID);
				w_put(&w, n->parent, 16);
			}
		} else {
			w_put(&w, n->parent, 16);
		}
		w_i32(&w, n->depth);
		w_u8(&w, (uint8_t)(n->flags | (full ? 0 : keys)));
		w_put(&w, n->pub, 32);
		if (keys & N_PRIV)
			w_put(&w, n->priv, 32);
		if (keys & N_RK)
			w_put(&w, n->rk, 32);
		if (keys & N_CK)
			w_put(&w, n->ck, 32);
		w_i32(&w, n->n);
		w_i32(&w, n->pn);
		w_i64(&w, n->created_ms);
	}
	w_i32(&w, rel->nskipped);
	for (uint32_t i = 0; i < rel->nskipped; i++) {
		w_put(&w, rel->skipped[i].dh, 32);
		w_i32(&w, rel->skipped[i].n);
		w_put(&w, rel->skipped[i].mk, 32);
		w_i64(&w, rel->skipped[i].t_ms);
		w_u8(&w, rel->skipped[i].used);
	}
	w_i64(&w, rel->receipt_due_ms);
	{
		static const uint8_t zero[RELM_ID_LEN];
		uint8_t k = 0;
		for (uint32_t i = 0; i < RELM_RECENT_IDS; i++)
			k += memcmp(rel->recent[i], zero, RELM_ID_LEN) != 0;
		w_u8(&w, k);
		/* oldest first: the ring from recent_next around */
		for (uint32_t i = 0; i < RELM_RECENT_IDS; i++) {
			const uint8_t *id = rel->recent[(rel->recent_next + i) % RELM_RECENT_IDS];
			if (memcmp(id, zero, RELM_ID_LEN) != 0)
				w_put(&w, id, RELM_ID_LEN);
		}
	}
	if (present & P_STATS) {
		w_i32(&w, rel->stats.forks);
		w_i32(&w, rel->stats.pruned);
		w_i32(&w, rel->stats.retx);
		w_i32(&w, rel->stats.dups);
		w_i32(&w, rel->stats.trials);
	}
	w_u8(&w, (uint8_t)rel->npcopies);
	for (uint32_t i = 0; i < rel->npcopies; i++) {
		const struct relm_pcopy *pc = &rel->pcopies[i];
		w_put(&w, pc->from, 16);
		w_put(&w, pc->node, 16);
		w_i32(&w, pc->n);
		w_put(&w, pc->parent, 16);
		w_put(&w, pc->pub, 32);
		w_put(&w, pc->priv, 32);
		w_i32(&w, pc->pn);
		w_i64(&w, pc->t_ms);
	}
	w_u8(&w, (uint8_t)rel->npruned);
	w_put(&w, rel->pruned, (size_t)rel->npruned * RELM_ID_LEN);
	w_u8(&w, (uint8_t)rel->nacked);
	for (uint32_t i = 0; i < rel->nacked; i++) {
		w_put(&w, rel->acked[i].id, RELM_ID_LEN);
		w_put(&w, rel->acked[i].dh, RELM_KEY_LEN);
	}
	if (present & P_BATCH) {
		w_put(&w, rel->batch_first, RELM_ID_LEN);
		w_i64(&w, rel->repair_ms);
	}
	w_u8(&w, rel->sibling_session);
	if (present & P_REVOKE)
		w_revoke_tail(&w, rel);
	if (present & P_HEALS) {
		w_u8(&w, rel->nheal_others);
		w_put(&w, rel->heal_others, (size_t)rel->nheal_others * RELM_ID_LEN);
	}
	if (w.err) {
		relm_rel_blob_free(w.p, w.cap);
		return RELM_ENOMEM;
	}
	assert(w.cap == cap0);          /* the bound above held: no regrowth */
	*out = w.p;
	*outlen = w.n;
	return 0;
}

void relm_rel_blob_free(uint8_t *buf, size_t len)
{
	if (!buf)
		return;
	sodium_memzero(buf, len);
	free(buf);
}

struct rbuf {
	const uint8_t *p;
	size_t n, off;
	int err;
	int var;             /* v8: integer fields as varints */
};

static void r_get(struct rbuf *r, void *d, size_t len)
{
	if (r->err || r->n - r->off < len) {
		r->err = 1;
		memset(d, 0, len);
		return;
	}
	memcpy(d, r->p + r->off, len);
	r->off += len;
}
static uint8_t r_u8(struct rbuf *r) { uint8_t v; r_get(r, &v, 1); return v; }
static uint16_t r_u16(struct rbuf *r) { uint8_t b[2]; r_get(r, b, 2); return (uint16_t)(b[0] << 8 | b[1]); }
static uint32_t r_u32(struct rbuf *r)
{
	uint8_t b[4];
	r_get(r, b, 4);
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}
static uint64_t r_u64(struct rbuf *r) { uint64_t h = r_u32(r); return h << 32 | r_u32(r); }
/* A varint no larger than max, in its shortest form (one value, one
 * encoding); anything else is an error. */
static uint64_t r_var(struct rbuf *r, uint64_t max)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t b = r_u8(r);
		if (r->err || (shift == 63 && b > 1))
			break;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			if ((b == 0 && shift) || v > max)
				break;
			return v;
		}
	}
	r->err = 1;
	return 0;
}
static uint32_t r_i32(struct rbuf *r) { return r->var ? (uint32_t)r_var(r, UINT32_MAX) : r_u32(r); }
static uint64_t r_i64(struct rbuf *r) { return r->var ? r_var(r, UINT64_MAX) : r_u64(r); }

static void r_str(struct rbuf *r, char *out, size_t cap)
{
	uint16_t l = r_u16(r);
	if (l >= cap) {
		r->err = 1;
		out[0] = 0;
		return;
	}
	r_get(r, out, l);
	out[l] = 0;
	if (memchr(out, 0, l))
		r->err = 1;
}

/* A blob's head, every version: up to and with the mailbox's key pair.
 * One reader for relm_rel_decode and relm_rel_blob_mailbox_key, so the
 * two cannot read a head differently.  mbox_sk is secret. */
struct blob_head {
	uint8_t version, mode, side;
	unsigned present;
	uint8_t id[RELM_ID_LEN];
	uint8_t ad[RELM_AD_LEN];               /* when P_AD */
	uint8_t ipk_self[32], ipk_remote[32];
	uint8_t mbox_sk[64], mbox_pk[32];
};

/* 0, RELM_ESTATE (a malformed or short head) or RELM_EVERSION; r is left
 * after the key pair, its integer form set by the version.  h is wiped by
 * the caller. */
static int read_head(struct rbuf *r, struct blob_head *h)
{
	uint8_t magic[3];

	memset(h, 0, sizeof *h);
	h->present = P_KNOWN;                  /* versions 1 to 6 write every field */
	r_get(r, magic, 3);
	if (r->err || memcmp(magic, "RLS", 3) != 0)
		return RELM_ESTATE;
	h->version = r_u8(r);
	if (r->err)
		return RELM_ESTATE;
	if (h->version < 1 || h->version > BLOB_VERSION)
		return RELM_EVERSION;
	r->var = h->version >= 8;
	r_get(r, h->id, RELM_ID_LEN);
	h->mode = r_u8(r);
	h->side = r_u8(r);
	if (h->version >= 7)
		h->present = r_u16(r);
	if (r->err || (h->mode != RELM_MODE_TREE && h->mode != RELM_MODE_STRICT) ||
	    (h->side != 'a' && h->side != 'b') ||
	    (h->version >= 7 && (h->present & ~(unsigned)(h->version >= 8 ? P_KNOWN_V8 : P_KNOWN))))
		return RELM_ESTATE;
	if (h->present & P_AD)
		r_get(r, h->ad, RELM_AD_LEN);
	r_get(r, h->ipk_self, 32);
	r_get(r, h->ipk_remote, 32);
	if (h->version >= 7) {
		r_get(r, h->mbox_sk, 64);
		if (h->present & P_MBOX_PK)
			r_get(r, h->mbox_pk, 32);
		else
			memcpy(h->mbox_pk, h->mbox_sk + 32, RELM_SIGN_PK_LEN);
	} else {
		r_get(r, h->mbox_pk, 32);
		r_get(r, h->mbox_sk, 64);
	}
	return r->err ? RELM_ESTATE : 0;
}

int relm_rel_blob_mailbox_key(const uint8_t *buf, size_t len, uint8_t sk[64], uint8_t pk[32])
{
	struct rbuf r = { buf, len, 0, 0, 0 };
	struct blob_head h;
	int rc = read_head(&r, &h);

	if (rc == 0) {
		memcpy(sk, h.mbox_sk, 64);
		memcpy(pk, h.mbox_pk, 32);
	}
	sodium_memzero(&h, sizeof h);
	return rc;
}

int relm_rel_decode(struct relm_rel **out, const uint8_t *buf, size_t len)
{
	struct rbuf r = { buf, len, 0, 0, 0 };
	struct relm_rel *rel;
	struct blob_head h;
	uint8_t ext[RELM_INITIAL_EXT_LEN];
	uint32_t cnt;
	uint8_t parent_ref[RELM_MAX_NODES];
	unsigned present;
	uint8_t version;
	int rc;

	if ((rc = read_head(&r, &h)) != 0) {
		sodium_memzero(&h, sizeof h);
		return rc;
	}
	rc = RELM_ESTATE;
	version = h.version;
	present = h.present;
	rel = malloc(sizeof *rel);
	if (!rel) {
		sodium_memzero(&h, sizeof h);
		return RELM_ENOMEM;
	}
	memset(rel, 0, sizeof *rel);
	memcpy(rel->id, h.id, RELM_ID_LEN);
	rel->mode = h.mode;
	rel->side = h.side;
	memcpy(rel->ad, h.ad, RELM_AD_LEN);
	memcpy(rel->ipk_self, h.ipk_self, 32);
	memcpy(rel->ipk_remote, h.ipk_remote, 32);
	memcpy(rel->mbox_sk, h.mbox_sk, 64);
	memcpy(rel->mbox_pk, h.mbox_pk, 32);
	sodium_memzero(&h, sizeof h);
	if (present & P_REMOTE_PK)
		r_get(&r, rel->remote_mbox_pk, 32);
	if (version >= 5) {
		rel->has_gate = r_u8(&r);
		if (present & P_GATE)
			r_get(&r, rel->gate_key, 32);
		if (rel->has_gate > 1)
			goto fail;
	}
	r_str(&r, rel->remote_mailbox, sizeof rel->remote_mailbox);
	rel->initial_pending = r_u8(&r);
	if (present & P_INITIAL) {
		r_get(&r, ext, sizeof ext);
		memcpy(rel->initial.ipk, ext, 32);
		memcpy(rel->initial.ek, ext + 32, 32);
		rel->initial.spk_id = (uint32_t)ext[64] << 24 | (uint32_t)ext[65] << 16 | (uint32_t)ext[66] << 8 | ext[67];
		rel->initial.opk_id = (uint32_t)ext[68] << 24 | (uint32_t)ext[69] << 16 | (uint32_t)ext[70] << 8 | ext[71];
		sodium_memzero(ext, sizeof ext);
	}
	r_str(&r, rel->invite_mailbox, sizeof rel->invite_mailbox);
	if (rel->initial_pending > 1 || r.err)
		goto fail;
	if (!(present & P_AD))
		derived_ad(rel, rel->ad);
	if (!(present & P_REMOTE_PK) && derived_remote_pk(rel->remote_mailbox, rel->remote_mbox_pk) != 0)
		goto fail;

	cnt = r_i32(&r);
	if (r.err || cnt > RELM_MAX_NODES)
		goto fail;
	for (uint32_t i = 0; i < cnt; i++) {
		struct relm_node *n = &rel->tree.nodes[i];
		r_get(&r, n->id, 16);
		parent_ref[i] = version >= 8 ? r_u8(&r) : PARENT_ID;
		if (parent_ref[i] == PARENT_ID)
			r_get(&r, n->parent, 16);
		else if (parent_ref[i] != PARENT_ZERO && parent_ref[i] >= cnt)
			goto fail;
		n->depth = r_i32(&r);
		n->flags = r_u8(&r);
		uint8_t keys = version >= 7 ? n->flags & (N_PRIV | N_RK | N_CK) : (N_PRIV | N_RK | N_CK);
		n->flags &= (uint8_t)~keys;
		r_get(&r, n->pub, 32);
		if (keys & N_PRIV)
			r_get(&r, n->priv, 32);
		if (keys & N_RK)
			r_get(&r, n->rk, 32);
		if (keys & N_CK)
			r_get(&r, n->ck, 32);
		n->n = r_i32(&r);
		n->pn = r_i32(&r);
		n->created_ms = r_i64(&r);
		if (n->flags & ~RELM_NODE_KNOWN_FLAGS)
			goto fail;
		/* v7: a key written is not all zero (one state, one encoding) */
		if (version >= 7 && !r.err && node_keys_of(n) != keys)
			goto fail;
	}
	rel->tree.count = cnt;
	/* v8: parents by index, and each reference the one the encoder makes
	 * (the first node with that id; an id written only when no node has
	 * it; zero by its marker) */
	for (uint32_t i = 0; i < cnt && version >= 8; i++) {
		struct relm_node *n = &rel->tree.nodes[i];
		if (parent_ref[i] < PARENT_ZERO)
			memcpy(n->parent, rel->tree.nodes[parent_ref[i]].id, RELM_ID_LEN);
		int at = relm_tree_find(&rel->tree, n->parent), zero = relm_ct_is_zero(n->parent, RELM_ID_LEN);
		if (parent_ref[i] == PARENT_ID ? zero || at >= 0
		                               : parent_ref[i] < PARENT_ZERO && (zero || at != parent_ref[i]))
			goto fail;
	}

	cnt = r_i32(&r);
	if (r.err || cnt > RELM_MAX_SKIPPED + RELM_MAX_USED_KEYS ||
	    (size_t)cnt * (r.var ? 32 + 1 + 32 + 1 + 1 : BLOB_SKIPPED_LEN) > len - r.off)
		goto fail;
	if (cnt) {
		rel->skipped = malloc(cnt * sizeof *rel->skipped);
		if (!rel->skipped) {
			rc = RELM_ENOMEM;
			goto fail;
		}
		rel->capskipped = cnt;
		for (uint32_t i = 0; i < cnt; i++) {
			r_get(&r, rel->skipped[i].dh, 32);
			rel->skipped[i].n = r_i32(&r);
			r_get(&r, rel->skipped[i].mk, 32);
			rel->skipped[i].t_ms = r_i64(&r);
			rel->skipped[i].used = r_u8(&r);
			if (rel->skipped[i].used > 1)
				r.err = 1;
		}
		rel->nskipped = cnt;
	}

	cnt = version == 1 ? r_i32(&r) : 0;
	if (r.err || cnt > RELM_MAX_OUTGOING || (size_t)cnt * 57 > len - r.off)
		goto fail;
	rel->out_unsaved = cnt > 0;     /* a v1 blob: the caller moves them to the store */
	if (cnt) {
		rel->out = calloc(cnt, sizeof *rel->out);
		if (!rel->out) {
			rc = RELM_ENOMEM;
			goto fail;
		}
		rel->capout = cnt;
		for (uint32_t i = 0; i < cnt && !r.err; i++) {
			struct relm_outgoing *o = &rel->out[i];
			r_get(&r, o->id, 16);
			o->kind = r_u8(&r);
			o->ts = r_i64(&r);
			o->tries = r_i32(&r);
			o->next_ms = r_i64(&r);
			r_get(&r, o->last_node, 16);
			o->body_len = r_i32(&r);
			if (r.err || o->body_len > RELM_BODY_MAX || o->body_len > len - r.off) {
				r.err = 1;
				break;
			}
			o->body = malloc(o->body_len + 1);
			if (!o->body) {
				rc = RELM_ENOMEM;
				goto fail;
			}
			rel->nout = i + 1;
			r_get(&r, o->body, o->body_len);
			o->body[o->body_len] = 0;
		}
		if (r.err)
			goto fail;
	}

	cnt = version <= 3 ? r_i32(&r) : 0;
	if (r.err || cnt > RELM_MAX_OUTGOING || (size_t)cnt * BLOB_ACK_LEN > len - r.off)
		goto fail;
	rel->acks_unsaved = cnt > 0;    /* v1–v3: the caller moves them to the store */
	if (cnt) {
		rel->acks_due = calloc(cnt, sizeof *rel->acks_due);
		if (!rel->acks_due) {
			rc = RELM_ENOMEM;
			goto fail;
		}
		rel->capacks = cnt;
		for (uint32_t i = 0; i < cnt; i++) {
			r_get(&r, rel->acks_due[i].id, 16);
			r_get(&r, rel->acks_due[i].dh, 32);
			rel->acks_due[i].n = r_i32(&r);
		}
		rel->nacks_due = cnt;
	}
	rel->receipt_due_ms = r_i64(&r);
	if (version >= 3) {
		uint8_t k = r_u8(&r);
		if (k > RELM_RECENT_IDS)
			goto fail;
		static const uint8_t zero[RELM_ID_LEN];
		for (uint32_t i = 0; i < k; i++) {
			r_get(&r, rel->recent[i], RELM_ID_LEN);
			/* an unused slot is not stored, so a zero id is not one
			 * (found by fuzz_rel_blob: it would not re-encode) */
			if (!r.err && memcmp(rel->recent[i], zero, RELM_ID_LEN) == 0)
				goto fail;
		}
		rel->recent_next = k % RELM_RECENT_IDS;
	} else {
		r_get(&r, rel->recent, sizeof rel->recent);
		rel->recent_next = r_i32(&r);
	}
	if (present & P_STATS) {
		rel->stats.forks = r_i32(&r);
		rel->stats.pruned = r_i32(&r);
		rel->stats.retx = r_i32(&r);
		rel->stats.dups = r_i32(&r);
		rel->stats.trials = r_i32(&r);
	}
	if (version >= 5) {
		uint8_t k = r_u8(&r);
		if (k > RELM_MAX_PENDING_COPIES)
			goto fail;
		for (uint32_t i = 0; i < k; i++) {
			struct relm_pcopy *pc = &rel->pcopies[i];
			r_get(&r, pc->from, 16);
			r_get(&r, pc->node, 16);
			pc->n = r_i32(&r);
			r_get(&r, pc->parent, 16);
			r_get(&r, pc->pub, 32);
			r_get(&r, pc->priv, 32);
			pc->pn = r_i32(&r);
			pc->t_ms = r_i64(&r);
		}
		rel->npcopies = k;
		if ((k = r_u8(&r)) > RELM_PRUNED_RING)
			goto fail;
		r_get(&r, rel->pruned, (size_t)k * RELM_ID_LEN);
		rel->npruned = k;
		if ((k = r_u8(&r)) > RELM_ACKED_RING)
			goto fail;
		for (uint32_t i = 0; i < k; i++) {
			r_get(&r, rel->acked[i].id, RELM_ID_LEN);
			r_get(&r, rel->acked[i].dh, RELM_KEY_LEN);
		}
		rel->nacked = k;
		if (present & P_BATCH) {
			r_get(&r, rel->batch_first, RELM_ID_LEN);
			rel->repair_ms = r_i64(&r);
		}
		if ((rel->sibling_session = r_u8(&r)) > 1)
			goto fail;
	}
	if (version >= 6 && (present & P_REVOKE)) {
		rel->ipk_seq = r_i64(&r);
		r_get(&r, rel->ipk_prev, RELM_SIGN_PK_LEN);
		if ((rel->ipk_conflict = r_u8(&r)) > 1)
			goto fail;
		r_get(&r, rel->ipk_cand, sizeof rel->ipk_cand);
		if ((rel->heal_state = r_u8(&r)) > RELM_HEAL_SENT)
			goto fail;
		rel->heal_epoch = r_i64(&r);
		rel->heal_due_ms = r_i64(&r);
		r_get(&r, rel->heal_node, RELM_ID_LEN);
		rel->clone_since_ms = r_i64(&r);
		r_get(&r, rel->clone_id, RELM_ID_LEN);
		r_get(&r, rel->clone_dh, RELM_KEY_LEN);
	}
	if (present & P_HEALS) {
		uint8_t k = r_u8(&r);
		if (k == 0 || k > RELM_HEAL_OTHERS)
			goto fail;
		r_get(&r, rel->heal_others, (size_t)k * RELM_ID_LEN);
		rel->nheal_others = k;
		for (uint8_t i = 0; i < k; i++)
			if (relm_ct_is_zero(rel->heal_others[i], RELM_ID_LEN))
				goto fail;
	}
	if (r.err || r.off != len || rel->recent_next >= RELM_RECENT_IDS)
		goto fail;
	/* v7: a field written is one that could not be left out */
	if (version >= 7 && present_of(rel) != present)
		goto fail;
	*out = rel;
	return 0;
fail:
	relm_rel_free(rel);
	return rc;
}

/*
 * check.c — what the simulator asserts (proto/invariants.md) and measures.
 *
 * During the run, every envelope a side posts to the remote passes
 * sim_record_remote with the plaintext its sealer saw: that is everything
 * the remote party learns, and the privacy checks look only there —
 * padded sizes, no device id in any form, no (key, counter) used for two
 * different envelopes, one acknowledgement per message whatever the
 * number of devices, timestamps that carry no device's clock error.
 *
 * After the world is quiet, sim_check asks: is every message typed on
 * any device in the history of every device of both protons (no loss),
 * at most once (no duplicates), acknowledged (nothing left to send), and
 * do both sides' devices choose one chain (convergence)?
 */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sodium.h>
#include "world.h"
#include "wire/envelope.h"
#include "wire/payload.h"
#include "crypto/crypto.h"
#include "error.h"

static int contains(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
	if (m == 0 || n < m)
		return 0;
	for (size_t i = 0; i + m <= n; i++)
		if (hay[i] == *(const uint8_t *)needle && memcmp(hay + i, needle, m) == 0)
			return 1;
	return 0;
}

/* Does buf hold a device id of side s, as bytes, hex or base64 (any variant)? */
static int names_a_device(const struct sim_world *w, int s, const uint8_t *buf, size_t len)
{
	for (int i = 0; i < w->cfg.n[s]; i++) {
		const uint8_t *id = w->dev[s][i].devs.self;
		char hex[2 * RELM_ID_LEN + 1], b64[64];
		static const int variants[] = { sodium_base64_VARIANT_ORIGINAL,
		                                sodium_base64_VARIANT_URLSAFE_NO_PADDING };

		if (contains(buf, len, id, RELM_ID_LEN))
			return 1;
		sodium_bin2hex(hex, sizeof hex, id, RELM_ID_LEN);
		if (contains(buf, len, hex, 2 * RELM_ID_LEN))
			return 1;
		for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
			sodium_bin2base64(b64, sizeof b64, id, RELM_ID_LEN, variants[v]);
			/* the first 20 characters: 15 whole bytes, whatever follows */
			if (contains(buf, len, b64, 20))
				return 1;
		}
	}
	return 0;
}

static const struct sim_sent *sent_find(const struct sim_world *w, const uint8_t id[RELM_ID_LEN])
{
	for (size_t i = 0; i < w->nsent; i++)
		if (memcmp(w->sent_ids[i].id, id, RELM_ID_LEN) == 0)
			return &w->sent_ids[i];
	return NULL;
}

static void count_ack(struct sim_remote *r, const uint8_t id[RELM_ID_LEN])
{
	for (size_t i = 0; i < r->nacked; i++)
		if (memcmp(r->acked[i].id, id, RELM_ID_LEN) == 0) {
			r->acked[i].count++;
			return;
		}
	GROW(r->acked, r->nacked, r->capacked);
	memcpy(r->acked[r->nacked].id, id, RELM_ID_LEN);
	r->acked[r->nacked++].count = 1;
}

void sim_record_remote(struct sim_world *w, const struct sim_dev *d, const uint8_t *env, size_t len,
                       const uint8_t *pt, size_t ptlen, uint64_t sealed_at)
{
	struct sim_remote *r = &w->remote[d->side];
	struct relm_envelope e;
	struct relm_payload p;
	uint8_t h[32];

	(void)sealed_at;
	crypto_generichash(h, sizeof h, env, len, NULL, 0);
	if (relm_envelope_decode(&e, env, len) != 0) {
		sim_fail(w, "%s posted an envelope that does not decode", d->name);
		return;
	}
	/* The same (key, counter) for two different envelopes: two siblings
	 * sent on one chain at once (proto/ratchet.md §5.3) — the message
	 * key is used twice, which is safe only because each envelope's
	 * nonce is random: the same nonce again would be a defect. */
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].n == e.h.n && memcmp(r->v[i].dh, e.h.dh_pub, RELM_KEY_LEN) == 0) {
			if (memcmp(r->v[i].hash, h, sizeof h) == 0)
				return;              /* the same bytes again: nothing new */
			if (memcmp(r->v[i].nonce, e.h.nonce, RELM_NONCE_LEN) == 0)
				sim_fail(w, "%s sealed two envelopes with one key and one nonce", d->name);
			w->res->counter_repeats[d->side]++;
			sim_trace(w, d, "repeated counter %s/%u (first sent by %s)", sim_short(e.h.dh_pub), e.h.n,
			          w->dev[d->side][r->v[i].dev].name);
		}
	GROW(r->v, r->n, r->cap);
	memcpy(r->v[r->n].dh, e.h.dh_pub, RELM_KEY_LEN);
	memcpy(r->v[r->n].nonce, e.h.nonce, RELM_NONCE_LEN);
	r->v[r->n].n = e.h.n;
	r->v[r->n].dev = d->idx;
	memcpy(r->v[r->n++].hash, h, sizeof h);

	if (ptlen % RELM_PAD_BLOCK != 0)
		r->bad_size++;
	if (names_a_device(w, d->side, env, len) || names_a_device(w, d->side, pt, ptlen))
		r->id_leak++;
	if (relm_payload_decode(&p, pt, ptlen) != 0) {
		sim_fail(w, "%s sealed a payload that does not decode", d->name);
		return;
	}
	if (p.kind == RELM_KIND_RECEIPT) {
		for (size_t i = 0; i < p.nacks; i++)
			count_ack(r, p.acks[i].id);
	} else if (p.kind == RELM_KIND_TEXT && !w->crashy) {
		const struct sim_sent *s = sent_find(w, p.id);
		if (s) {
			double err = (double)p.ts - (double)s->t;
			if (err < 0)
				err = -err;
			if (err > w->res->max_ts_error_ms)
				w->res->max_ts_error_ms = err;
		}
	}
	relm_payload_clear(&p);
}

void sim_remote_free(struct sim_world *w)
{
	for (int s = 0; s < SIM_SIDES; s++) {
		free(w->remote[s].v);
		free(w->remote[s].acked);
		memset(&w->remote[s], 0, sizeof w->remote[s]);
	}
}

/* ---- convergence --------------------------------------------------------------- */

static const uint8_t *chosen_id(const struct sim_dev *d)
{
	int c;

	if (!d->rel)
		return NULL;
	c = relm_rel_chosen(d->rel);
	return c >= 0 ? d->rel->tree.nodes[c].id : NULL;
}

/* Is `anc` the node `id` or one of its ancestors in d's tree? */
static int on_path(const struct sim_dev *d, const uint8_t *id, const uint8_t *anc)
{
	int i = relm_tree_find(&d->rel->tree, id);

	while (i >= 0) {
		if (memcmp(d->rel->tree.nodes[i].id, anc, RELM_ID_LEN) == 0)
			return 1;
		i = relm_tree_parent(&d->rel->tree, i);
	}
	return 0;
}

/* A device of side s that holds state (the first). */
static const struct sim_dev *holding(const struct sim_world *w, int s)
{
	for (int i = 0; i < w->cfg.n[s]; i++)
		if (w->dev[s][i].rel)
			return &w->dev[s][i];
	return &w->dev[s][0];
}

/* 1 when every device of each side chooses one node and both sides'
 * choices lie on one chain; else 0 with why. */
int sim_converged(struct sim_world *w, char *why, size_t n)
{
	const uint8_t *c[SIM_SIDES];

	for (int s = 0; s < SIM_SIDES; s++) {
		int first = 0;
		/* devices without state (fanout) choose nothing: the others agree */
		while (first + 1 < w->cfg.n[s] && !w->dev[s][first].rel)
			first++;
		c[s] = chosen_id(&w->dev[s][first]);
		if (!c[s]) {
			snprintf(why, n, "%s chooses no node", w->dev[s][first].name);
			return 0;
		}
		for (int i = first + 1; i < w->cfg.n[s]; i++) {
			const uint8_t *o = chosen_id(&w->dev[s][i]);
			if (!w->dev[s][i].rel)
				continue;
			if (!o || memcmp(o, c[s], RELM_ID_LEN) != 0) {
				snprintf(why, n, "%s chooses %s, %s chooses %s", w->dev[s][first].name,
				         sim_short(c[s]), w->dev[s][i].name, o ? sim_short(o) : "nothing");
				return 0;
			}
		}
	}
	if (memcmp(c[0], c[1], RELM_ID_LEN) == 0 || on_path(holding(w, 1), c[1], c[0]) ||
	    on_path(holding(w, 0), c[0], c[1]))
		return 1;
	snprintf(why, n, "A chooses %s and B chooses %s, on different chains", sim_short(c[0]),
	         sim_short(c[1]));
	return 0;
}

/* ---- the invariants ------------------------------------------------------------ */

static void check_histories(struct sim_world *w)
{
	for (size_t k = 0; k < w->nsent; k++) {
		const struct sim_sent *m = &w->sent_ids[k];

		/* typed on the device that left: no promise (its copies and
		 * retransmissions may have gone with it) */
		if (m->side == 0 && m->dev == w->removed)
			continue;
		for (int s = 0; s < SIM_SIDES; s++)
			for (int i = 0; i < w->cfg.n[s]; i++) {
				struct sim_dev *d = &w->dev[s][i];
				struct sim_msg *h = sim_hist_find(d, m->id);
				if (!h) {
					sim_fail(w, "%s: %s (typed on side %c) is not in %s's history",
					         s == m->side ? "lost-sibling" : "lost-remote", sim_short(m->id),
					         m->side ? 'B' : 'A', d->name);
					return;
				}
				if (h->in != (s != m->side)) {
					sim_fail(w, "%s holds %s in the wrong direction", d->name, sim_short(m->id));
					return;
				}
				if (h->failed) {
					sim_fail(w, "failed: %s marked failed on %s", sim_short(m->id), d->name);
					return;
				}
				/* every device of the sender's side shows it delivered,
				 * its own and its siblings' (a status a person sees on
				 * each of them) */
				if (s == m->side && !h->delivered) {
					sim_fail(w, "undelivered: %s does not show %s (typed on side %c) acknowledged",
					         d->name, sim_short(m->id), m->side ? 'B' : 'A');
					return;
				}
			}
	}
}

static void check_devices(struct sim_world *w)
{
	for (int s = 0; s < SIM_SIDES; s++)
		for (int i = 0; i < w->cfg.n[s]; i++) {
			const struct sim_dev *d = &w->dev[s][i];
			if (d->dup_deliveries)
				sim_fail(w, "duplicate: %s delivered a message twice", d->name);
			if (d->nout)
				sim_fail(w, "%s still has %zu message(s) unacknowledged", d->name, d->nout);
		}
}

static int holds(const uint8_t *buf, size_t n, const uint8_t key[RELM_KEY_LEN])
{
	return contains(buf, n, key, RELM_KEY_LEN);
}

/* Forward secrecy: a private key the tree no longer holds is gone from the
 * committed state (the store) and the live one. */
static void check_wiped(struct sim_world *w)
{
	for (int s = 0; s < SIM_SIDES; s++)
		for (int i = 0; i < w->cfg.n[s]; i++) {
			struct sim_dev *d = &w->dev[s][i];
			uint8_t *blob = NULL;
			size_t len = 0;
			if (d->rel && relm_rel_encode(d->rel, &blob, &len) != 0)
				abort();
			for (size_t k = 0; k < d->nkeys; k++)
				if (!d->keys[k].held && (holds(d->saved, d->saved_len, d->keys[k].priv) ||
				                         holds(blob, len, d->keys[k].priv))) {
					sim_fail(w, "forward secrecy: %s still holds the private key of %s, "
					         "deleted from its tree", d->name, sim_short(d->keys[k].pub));
					break;
				}
			relm_rel_blob_free(blob, len);
		}
}

static void check_privacy(struct sim_world *w)
{
	for (int s = 0; s < SIM_SIDES; s++) {
		const struct sim_remote *r = &w->remote[s];
		if (r->id_leak)
			sim_fail(w, "privacy: side %c showed the remote a device id (%llu envelopes)",
			         s ? 'B' : 'A', (unsigned long long)r->id_leak);
		if (r->bad_size)
			sim_fail(w, "privacy: side %c sent %llu plaintexts not padded to %d",
			         s ? 'B' : 'A', (unsigned long long)r->bad_size, RELM_PAD_BLOCK);
		w->res->keys_seen[s] = r->n;
		for (size_t i = 0; i < r->nacked; i++) {
			w->res->acks[s] += r->acked[i].count;
			w->res->dup_acks[s] += r->acked[i].count - 1;
		}
	}
	/* Devices' clocks are corrected to the mailbox server's (within 50 ms):
	 * what the remote sees must not carry their skew.  (With crashes a
	 * message may be typed again after the restart, later: not measured.) */
	if (!w->crashy && w->res->max_ts_error_ms > 60)
		sim_fail(w, "privacy: a timestamp is %.0f ms off the time it was typed",
		         w->res->max_ts_error_ms);
}

void sim_check(struct sim_world *w)
{
	check_devices(w);
	check_histories(w);
	check_privacy(w);
	check_wiped(w);
	sim_check_revoke(w);
	sim_check_strat(w);
}

/*
 * mbc_subs.c — the mailbox client's subscriptions (see mailbox_client.h and
 * internal.h): an array found through an open-addressing index by mailbox
 * (a daemon with 100,000 relationships subscribes 100,000 mailboxes, and
 * every DELIVER looks one up), and the two ways of sending them:
 *  - to a version 1 server, and for subscriptions whose read key is not
 *    to be had (a sign callback without cbs.read_key), one signed SUBSCRIBE
 *    each, at once;
 *  - to a version 2 server, SUBSCRIBE_BATCH frames (proto/mailbox.md §5.7):
 *    each subscription waits in a queue, MAC entries are built from the
 *    read key (derived once per realm and kept), up to 1024 per frame, paced
 *    by the server's token bucket; an entry answered `unknown_key` or
 *    `bad_signature` is registered once on that connection (REGISTER
 *    entries, signed, the read key sealed under an X25519 exchange with the
 *    connection's key).
 *
 * The connection (mailbox_client.c) calls in here; this file reaches the
 * connection only through c->owner (send, pace, drop), never by name.
 */
#include "mailbox_client/internal.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "error.h"
#include "log.h"

enum {
	REG_PER_FRAME = 256,       /* REGISTER entries per frame: 256 × 136 bytes fit one */
};

/* ---- the index ---- */

static size_t slot_of(const struct relm_mbox_client *c, const uint8_t mb[RELM_MBOX_ID_LEN])
{
	uint64_t v;

	/* Fibonacci hashing: the top bits of the product mix every input bit */
	memcpy(&v, mb, sizeof(v));
	v ^= c->index_seed;
	v *= 0x9e3779b97f4a7c15ull;
	return (size_t)(v >> c->index_shift);
}

struct csub *mbc_sub_find(const struct relm_mbox_client *c, const uint8_t mb[RELM_MBOX_ID_LEN],
                          size_t *idx)
{
	if (!c->index)
		return NULL;
	for (size_t k = slot_of(c, mb);; k = (k + 1) & c->index_mask) {
		uint32_t v = c->index[k];

		if (!v)
			return NULL;
		if (memcmp(c->subs[v - 1].mailbox, mb, RELM_MBOX_ID_LEN) == 0) {
			if (idx)
				*idx = v - 1;
			return &c->subs[v - 1];
		}
	}
}

static void index_put(struct relm_mbox_client *c, size_t i)
{
	size_t k = slot_of(c, c->subs[i].mailbox);

	while (c->index[k])
		k = (k + 1) & c->index_mask;
	c->index[k] = (uint32_t)i + 1;
}

/* Room for one more: at most half full.  0 or RELM_ENOMEM. */
static int index_reserve(struct relm_mbox_client *c)
{
	size_t want = c->index ? c->index_mask + 1 : 16;
	uint32_t *ni;

	while ((c->nsubs + 1) * 2 > want)
		want *= 2;
	if (c->index && want == c->index_mask + 1)
		return 0;
	ni = calloc(want, sizeof(*ni));
	if (!ni)
		return RELM_ENOMEM;
	free(c->index);
	c->index = ni;
	c->index_mask = want - 1;
	c->index_shift = 64;
	for (size_t w = want; w > 1; w >>= 1)
		c->index_shift--;
	if (!c->index_seed)
		randombytes_buf(&c->index_seed, sizeof(c->index_seed));
	for (size_t i = 0; i < c->nsubs; i++)
		index_put(c, i);
	return 0;
}

/* Take slot k out, moving later entries of its run back (linear probing). */
static void index_del(struct relm_mbox_client *c, size_t k)
{
	size_t j = k;

	c->index[k] = 0;
	for (;;) {
		size_t home;

		j = (j + 1) & c->index_mask;
		if (!c->index[j])
			return;
		home = slot_of(c, c->subs[c->index[j] - 1].mailbox);
		/* j's entry may fill k if its home is not in (k, j] (cyclically) */
		if ((j > k && (home <= k || home > j)) || (j < k && home <= k && home > j)) {
			c->index[k] = c->index[j];
			c->index[j] = 0;
			k = j;
		}
	}
}

static size_t index_slot_of(const struct relm_mbox_client *c, size_t i)
{
	size_t k = slot_of(c, c->subs[i].mailbox);

	while (c->index[k] != i + 1)
		k = (k + 1) & c->index_mask;
	return k;
}

static void sub_remove(struct relm_mbox_client *c, size_t i)
{
	size_t last = c->nsubs - 1;

	index_del(c, index_slot_of(c, i));
	if (c->subs[i].sk)
		sodium_free(c->subs[i].sk);
	sodium_memzero(c->subs[i].rkey, sizeof(c->subs[i].rkey));
	if (i != last) {
		/* the last one moves into i's place */
		c->index[index_slot_of(c, last)] = (uint32_t)i + 1;
		c->subs[i] = c->subs[last];
	}
	sodium_memzero(&c->subs[last], sizeof(c->subs[last]));
	c->nsubs--;
}

/* Refuse subscription i for good: remove it, then tell the caller. */
static void sub_refused(struct relm_mbox_client *c, size_t i, int err)
{
	uint8_t mb[RELM_MBOX_ID_LEN];

	memcpy(mb, c->subs[i].mailbox, RELM_MBOX_ID_LEN);
	sub_remove(c, i);
	if (c->cbs.subscribed)
		c->cbs.subscribed(c->cbs.arg, mb, err, 0, 0);
}

/* ---- queues ---- */

static int queue_push(struct cqueue *q, const uint8_t mb[RELM_MBOX_ID_LEN])
{
	if (q->head + q->n == q->cap) {
		if (q->head) {
			memmove(q->mb, q->mb + q->head, q->n * sizeof(*q->mb));
			q->head = 0;
		} else {
			size_t ncap = q->cap ? 2 * q->cap : 64;
			void *nm = realloc(q->mb, ncap * sizeof(*q->mb));

			if (!nm)
				return RELM_ENOMEM;
			q->mb = nm;
			q->cap = ncap;
		}
	}
	memcpy(q->mb[q->head + q->n++], mb, RELM_MBOX_ID_LEN);
	return 0;
}

static void queue_clear(struct cqueue *q)
{
	q->head = q->n = 0;
}

static void queue_free(struct cqueue *q)
{
	free(q->mb);
	memset(q, 0, sizeof(*q));
}

/* ---- version 1: one signed SUBSCRIBE ---- */

static int send_subscribe(struct relm_mbox_client *c, size_t i)
{
	struct csub *sb = &c->subs[i];
	struct relm_mbox_frame f;
	uint8_t m[RELM_MBOX_SUB_SIG_INPUT_LEN];
	size_t n;
	int rc;

	mbc_frame_init(c, &f, RELM_MBOX_SUBSCRIBE);
	f.u.subscribe.tag = sb->tag = mbc_new_tag(c);
	memcpy(f.u.subscribe.mailbox, sb->mailbox, RELM_MBOX_ID_LEN);
	f.u.subscribe.cursor = sb->cursor;
	sb->active = 0;
	n = relm_mbox_sub_sig_input(m, c->nonce, sb->mailbox, sb->cursor);
	rc = mbc_sign(f.u.subscribe.sig, sb->sk, sb->sign, sb->sign_arg, m, n);
	if (rc)
		return rc;
	return c->owner->send(c, &f);
}

/* The read key of sb for this connection's realm: 0, or non-zero when it
 * cannot be had (then sb goes as a version 1 SUBSCRIBE). */
static int rkey_get(struct relm_mbox_client *c, struct csub *sb)
{
	if (sb->has_rkey)
		return 0;
	if (sb->sk) {
		relm_mbox_read_key(sb->rkey, sb->sk, c->realm);
	} else if (!c->cbs.read_key ||
	           c->cbs.read_key(c->cbs.arg, sb->mailbox, c->realm, sb->rkey) != 0) {
		sodium_memzero(sb->rkey, sizeof(sb->rkey));
		return -1;
	}
	sb->has_rkey = 1;
	return 0;
}

/* Send subscription i now: queued for a batch (version 2), or a SUBSCRIBE. */
static void sub_send(struct relm_mbox_client *c, size_t i)
{
	struct csub *sb = &c->subs[i];
	int rc;

	sb->active = 0;
	sb->tag = 0;
	if (c->version >= RELM_MBOX_VERSION_2 && rkey_get(c, sb) == 0) {
		if (sb->queued != SQ_MAC) {
			if (queue_push(&c->q_mac, sb->mailbox) != 0) {
				sub_refused(c, i, RELM_ENOMEM);
				return;
			}
			sb->queued = SQ_MAC;
		}
		return;
	}
	sb->queued = SQ_NONE;
	rc = send_subscribe(c, i);
	if (rc && c->state == CS_READY)
		sub_refused(c, i, rc);
}

void mbc_subs_ready(struct relm_mbox_client *c)
{
	for (size_t i = c->nsubs; i-- > 0 && c->state == CS_READY;)
		sub_send(c, i);
	mbc_flush_subs(c);
}

void mbc_subs_dropped(struct relm_mbox_client *c)
{
	struct cbatch *b;

	for (size_t i = 0; i < c->nsubs; i++) {
		c->subs[i].active = 0;
		c->subs[i].tag = 0;
		c->subs[i].queued = SQ_NONE;
		c->subs[i].reg_tried = 0;
	}
	queue_clear(&c->q_mac);
	queue_clear(&c->q_reg);
	while ((b = c->batches)) {
		c->batches = b->next;
		free(b->mb);
		free(b);
	}
	c->batches_tail = &c->batches;
}

/* ---- version 2: batches ---- */

/* This connection's X25519 key and sealing key, made on first need. */
static int kx_ready(struct relm_mbox_client *c)
{
	if (c->have_kx)
		return 0;
	randombytes_buf(c->kx_sk, sizeof(c->kx_sk));
	crypto_scalarmult_base(c->kx_pk, c->kx_sk);
	if (relm_mbox_seal_key(c->seal_k, c->kx_sk, c->kx_server, c->kx_server, c->kx_pk) != 0)
		return RELM_EBADKEY;   /* the server's key is a low-order point */
	c->have_kx = 1;
	return 0;
}

/* One REGISTER entry for sb at dst.  0 or a negative code. */
static int put_register(struct relm_mbox_client *c, struct csub *sb, uint8_t *dst)
{
	uint8_t sealed[RELM_MBOX_READ_KEY_LEN], sig[RELM_SIG_LEN], m[RELM_MBOX_REG_SIG_INPUT_LEN];
	size_t n;
	int rc;

	relm_mbox_seal(sealed, c->seal_k, sb->mailbox, sb->rkey);
	n = relm_mbox_reg_sig_input(m, c->nonce, c->kx_server, c->kx_pk, sb->mailbox, sb->cursor, sealed);
	rc = mbc_sign(sig, sb->sk, sb->sign, sb->sign_arg, m, n);
	if (rc == 0)
		relm_mbox_batch_put_reg(dst, sb->mailbox, sb->cursor, sealed, sig);
	return rc;
}

/* Build and send one batch of kind from q; 0 when sent or nothing was
 * left, 1 when the bucket is short (the timer will call again). */
static int flush_one(struct relm_mbox_client *c, struct cqueue *q, uint8_t kind)
{
	size_t max = kind == RELM_MBOX_BATCH_MAC ? RELM_MBOX_BATCH_MAX : REG_PER_FRAME;
	size_t esz = kind == RELM_MBOX_BATCH_MAC ? RELM_MBOX_BATCH_MAC_ENTRY : RELM_MBOX_BATCH_REG_ENTRY;
	size_t take = q->n < max ? q->n : max, n = 0;
	struct relm_mbox_frame f;
	struct cbatch *b;
	uint8_t *ent;
	uint32_t tag;

	if (!take)
		return 0;
	/* pace: what a frame of `take` entries costs */
	if (!c->owner->take_tokens(c, relm_mbox_cost(RELM_MBOX_HDR_LEN + 37 + take * esz)))
		return 1;
	if (kind == RELM_MBOX_BATCH_REGISTER && kx_ready(c) != 0) {
		c->owner->drop(c, RELM_EPROTO);
		return 0;
	}
	ent = malloc(take * esz);
	b = calloc(1, sizeof(*b));
	if (b)
		b->mb = malloc(take * sizeof(*b->mb));
	if (!ent || !b || !b->mb) {
		free(ent);
		if (b)
			free(b->mb);
		free(b);
		c->owner->drop(c, RELM_ENOMEM);
		return 0;
	}
	tag = mbc_new_tag(c);
	for (size_t k = 0; k < take; k++) {
		const uint8_t *mb = q->mb[q->head + k];
		size_t i;
		struct csub *sb = mbc_sub_find(c, mb, &i);
		int rc = 0;

		if (!sb || sb->queued != (kind == RELM_MBOX_BATCH_MAC ? SQ_MAC : SQ_REGISTER))
			continue;   /* gone or resent meanwhile */
		sb->queued = SQ_NONE;
		if (kind == RELM_MBOX_BATCH_MAC) {
			uint8_t mac[RELM_MBOX_MAC_LEN];

			relm_mbox_sub_mac(mac, sb->rkey, c->nonce, sb->mailbox, sb->cursor);
			relm_mbox_batch_put_mac(ent + n * esz, sb->mailbox, sb->cursor, mac);
		} else if ((rc = put_register(c, sb, ent + n * esz)) != 0) {
			sub_refused(c, i, rc);
			continue;
		}
		sb->tag = tag;
		memcpy(b->mb[n++], sb->mailbox, RELM_MBOX_ID_LEN);
	}
	q->head += take;
	q->n -= take;
	if (!q->n)
		q->head = 0;
	if (n) {
		mbc_frame_init(c, &f, RELM_MBOX_SUBSCRIBE_BATCH);
		f.u.sub_batch.tag = tag;
		f.u.sub_batch.kind = kind;
		if (kind == RELM_MBOX_BATCH_REGISTER)
			memcpy(f.u.sub_batch.kx, c->kx_pk, RELM_MBOX_KX_LEN);
		f.u.sub_batch.entries = ent;
		f.u.sub_batch.count = n;
		b->tag = tag;
		b->kind = kind;
		b->n = n;
		b->next = NULL;
		if (!c->batches_tail)
			c->batches_tail = &c->batches;
		*c->batches_tail = b;
		c->batches_tail = &b->next;
		b = NULL;
		c->owner->send(c, &f);
	}
	free(ent);
	if (b) {
		free(b->mb);
		free(b);
	}
	return 0;
}

void mbc_flush_subs(struct relm_mbox_client *c)
{
	while (c->state == CS_READY && (c->q_reg.n || c->q_mac.n)) {
		if (flush_one(c, c->q_reg.n ? &c->q_reg : &c->q_mac,
		              c->q_reg.n ? RELM_MBOX_BATCH_REGISTER : RELM_MBOX_BATCH_MAC))
			return;
	}
}

static struct cbatch *batch_take(struct relm_mbox_client *c, uint32_t tag)
{
	for (struct cbatch **pp = &c->batches; *pp; pp = &(*pp)->next) {
		struct cbatch *b = *pp;

		if (b->tag == tag) {
			*pp = b->next;
			if (c->batches_tail == &b->next)
				c->batches_tail = pp;
			return b;
		}
	}
	return NULL;
}

/* One entry's answer (code 0: subscribed). */
static void entry_answer(struct relm_mbox_client *c, const struct cbatch *b,
                         const uint8_t mb[RELM_MBOX_ID_LEN], unsigned code,
                         uint64_t head, uint64_t oldest)
{
	size_t i;
	struct csub *sb = mbc_sub_find(c, mb, &i);

	if (!sb || sb->tag != b->tag || c->state != CS_READY)
		return;    /* unsubscribed or re-subscribed meanwhile */
	if (code == 0) {
		sb->active = 1;
		if (c->cbs.subscribed)
			c->cbs.subscribed(c->cbs.arg, mb, 0, head, oldest);
		return;
	}
	if (code == RELM_MBOX_E_RATE_LIMITED || code == RELM_MBOX_E_STORE) {
		c->owner->drop(c, relm_mbox_err_to_relm(code));   /* transient: again after reconnecting */
		return;
	}
	/* no key there yet, or another one: register ours, once per connection */
	if (b->kind == RELM_MBOX_BATCH_MAC && !sb->reg_tried &&
	    (code == RELM_MBOX_E_UNKNOWN_KEY || code == RELM_MBOX_E_BAD_SIGNATURE)) {
		sb->reg_tried = 1;
		sb->tag = 0;
		if (queue_push(&c->q_reg, mb) == 0) {
			sb->queued = SQ_REGISTER;
			return;
		}
	}
	sub_refused(c, i, relm_mbox_err_to_relm(code));
}

void mbc_on_subed_batch(struct relm_mbox_client *c, const struct relm_mbox_subed_batch *a)
{
	struct cbatch *b = batch_take(c, a->tag);

	if (!b)
		return;
	if (a->count != b->n) {
		free(b->mb);
		free(b);
		c->owner->drop(c, RELM_EPROTO);
		return;
	}
	for (size_t i = 0; i < b->n && c->state == CS_READY; i++) {
		unsigned code;
		uint64_t head, oldest;

		relm_mbox_subed_entry(a, i, &code, &head, &oldest);
		entry_answer(c, b, b->mb[i], code, head, oldest);
	}
	free(b->mb);
	free(b);
	mbc_flush_subs(c);
}

void mbc_on_subscribed(struct relm_mbox_client *c, const struct relm_mbox_subscribed *s)
{
	struct csub *sb = mbc_sub_find(c, s->mailbox, NULL);

	if (!sb || sb->tag != s->tag)
		return;   /* unsubscribed or re-subscribed meanwhile */
	sb->active = 1;
	if (c->cbs.subscribed)
		c->cbs.subscribed(c->cbs.arg, s->mailbox, 0, s->head, s->oldest);
}

int mbc_subs_error(struct relm_mbox_client *c, const struct relm_mbox_error *e)
{
	int err = relm_mbox_err_to_relm(e->code);
	struct cbatch *b;

	if (!e->tag)
		return 0;
	if ((b = batch_take(c, e->tag))) {
		/* the whole frame refused */
		for (size_t i = 0; i < b->n && c->state == CS_READY; i++)
			entry_answer(c, b, b->mb[i], e->code, 0, 0);
		free(b->mb);
		free(b);
		return 1;
	}
	for (size_t i = 0; i < c->nsubs; i++) {
		if (c->subs[i].tag != e->tag)
			continue;
		if (e->code == RELM_MBOX_E_RATE_LIMITED || e->code == RELM_MBOX_E_STORE) {
			c->owner->drop(c, err);   /* transient: resubscribed after reconnect */
			return 1;
		}
		sub_refused(c, i, err);
		return 1;
	}
	return 0;
}

void mbc_subs_free(struct relm_mbox_client *c)
{
	mbc_subs_dropped(c);
	while (c->nsubs)
		sub_remove(c, c->nsubs - 1);
	free(c->subs);
	free(c->index);
	c->subs = NULL;
	c->index = NULL;
	c->subs_cap = 0;
	queue_free(&c->q_mac);
	queue_free(&c->q_reg);
}

/* ---- public API ---- */

int relm_mbox_client_subscribe(struct relm_mbox_client *c, const uint8_t mailbox[RELM_MBOX_ID_LEN],
                               uint64_t cursor, const uint8_t sk[RELM_SIGN_SK_LEN],
                               relm_mbox_sign_fn sign, void *sign_arg)
{
	struct csub *sb;
	size_t idx;
	uint8_t *key = NULL;

	if (c->closing || (!sk == !sign))
		return RELM_EINVAL;
	if (sk) {
		key = sodium_malloc(RELM_SIGN_SK_LEN);
		if (!key)
			return RELM_ENOMEM;
		memcpy(key, sk, RELM_SIGN_SK_LEN);
	}
	sb = mbc_sub_find(c, mailbox, &idx);
	if (!sb) {
		if (c->nsubs == c->subs_cap) {
			size_t ncap = c->subs_cap ? 2 * c->subs_cap : 8;
			struct csub *ns = realloc(c->subs, ncap * sizeof(*ns));
			if (!ns) {
				if (key)
					sodium_free(key);
				return RELM_ENOMEM;
			}
			c->subs = ns;
			c->subs_cap = ncap;
		}
		if (index_reserve(c) != 0) {
			if (key)
				sodium_free(key);
			return RELM_ENOMEM;
		}
		idx = c->nsubs++;
		sb = &c->subs[idx];
		memset(sb, 0, sizeof(*sb));
		memcpy(sb->mailbox, mailbox, RELM_MBOX_ID_LEN);
		index_put(c, idx);
	}
	if (sb->sk)
		sodium_free(sb->sk);
	if (sb->has_rkey && !!key != !!sb->sk)
		sb->has_rkey = 0;   /* another signer: derive again */
	sb->sk = key;
	sb->sign = sign;
	sb->sign_arg = sign_arg;
	sb->cursor = cursor;
	sb->active = 0;
	sb->tag = 0;
	if (c->state == CS_READY) {
		sub_send(c, idx);
		/* corked, the caller is subscribing many: they go in full
		 * batches at the uncork */
		if (!c->corked)
			mbc_flush_subs(c);
	}
	return 0;
}

int relm_mbox_client_unsubscribe(struct relm_mbox_client *c, const uint8_t mailbox[RELM_MBOX_ID_LEN])
{
	size_t idx;
	struct relm_mbox_frame f;

	if (!mbc_sub_find(c, mailbox, &idx))
		return RELM_ENOTFOUND;
	sub_remove(c, idx);
	if (c->state == CS_READY) {
		mbc_frame_init(c, &f, RELM_MBOX_UNSUBSCRIBE);
		f.u.unsub.tag = mbc_new_tag(c);
		memcpy(f.u.unsub.mailbox, mailbox, RELM_MBOX_ID_LEN);
		c->owner->send(c, &f);
	}
	return 0;
}

int relm_mbox_client_cursor(const struct relm_mbox_client *c,
                            const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t *cursor)
{
	const struct csub *sb = mbc_sub_find(c, mailbox, NULL);

	if (!sb)
		return RELM_ENOTFOUND;
	*cursor = sb->cursor;
	return 0;
}

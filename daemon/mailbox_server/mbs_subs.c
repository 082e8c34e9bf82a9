/*
 * mbs_subs.c — subscriptions of the mailbox server: the server-wide table,
 * SUBSCRIBE (version 1) and SUBSCRIBE_BATCH (version 2, proto/mailbox.md
 * §5.7), UNSUBSCRIBE, and delivery.
 *
 * A subscription is `clean` while the store holds nothing above `sent`
 * that it has not been given, `dirty` otherwise.  Delivery goes two ways:
 *  - live, from a commit of ours (mbs_fanout_commit): a clean subscription
 *    whose mailbox's first new seq follows `sent` gets the committed
 *    envelopes straight from the batch in memory — the very rows the store
 *    would return, in the same order;
 *  - pumped (mbs_pump): a dirty subscription is read from the store, one
 *    batch at a time, round-robin over the connection's dirty ones, only
 *    while the connection's output queue is short, so a huge backlog never
 *    sits in memory.  Catch-up always goes this way, and so do commits of
 *    other instances (mbs_fanout_notify marks their subscriptions dirty).
 * A live envelope that meets a full queue, or a gap (another instance
 * committed seqs in between), marks the subscription dirty instead.
 *
 * Races with an answer that comes later (PostgreSQL): `wake` is bumped
 * whenever the store may have gained something for a subscription, and a
 * fetch that began before the bump does not make it clean; `gen` changes
 * on resubscription, so a fetch for the old subscription is dropped; and a
 * lookup notes the commits that arrive while it is in flight (the server's
 * note ring), which the subscriptions it creates then replay.
 *
 * Layering: the server (mailbox_server.c) calls in here — the requests,
 * the commits, what other instances committed — and this file calls the
 * connections (mbs_conn.h), never the server: what it needs of the server
 * is its data (the table, the store, the limits), reached with mbs_srv().
 */
#include "mailbox_server/internal.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "error.h"
#include "log.h"

/* ---- the table ---- */

static size_t bucket_of(const struct mbs_subtab *t, const uint8_t mb[RELM_MBOX_ID_LEN])
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v = 0;

	crypto_shorthash(h, mb, RELM_MBOX_ID_LEN, t->key);
	for (int i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return (size_t)v & t->mask;
}

int mbs_subtab_init(struct mbs_subtab *t)
{
	memset(t, 0, sizeof(*t));
	t->mask = 1023;
	t->b = calloc(t->mask + 1, sizeof(*t->b));
	if (!t->b)
		return RELM_ENOMEM;
	randombytes_buf(t->key, sizeof(t->key));
	return 0;
}

void mbs_subtab_free(struct mbs_subtab *t)
{
	free(t->b);
	t->b = NULL;
}

/* Double the buckets when they hold more than one entry on average.  A
 * failed allocation only leaves the chains longer. */
static void tab_grow(struct mbs_subtab *t)
{
	size_t nmask = t->mask * 2 + 1;
	struct mbs_sub **nb = calloc(nmask + 1, sizeof(*nb));
	struct mbs_subtab nt = *t;

	if (!nb)
		return;
	nt.b = nb;
	nt.mask = nmask;
	for (size_t i = 0; i <= t->mask; i++) {
		struct mbs_sub *sb = t->b[i], *next;

		for (; sb; sb = next) {
			size_t k = bucket_of(&nt, sb->mailbox);

			next = sb->hnext;
			sb->hnext = nb[k];
			nb[k] = sb;
		}
	}
	free(t->b);
	t->b = nb;
	t->mask = nmask;
}

static struct mbs_sub *tab_find(const struct mbs_subtab *t, const struct mbs_conn *c,
                                const uint8_t mb[RELM_MBOX_ID_LEN])
{
	struct mbs_sub *sb = t->b[bucket_of(t, mb)];

	for (; sb; sb = sb->hnext)
		if (sb->conn == c && memcmp(sb->mailbox, mb, RELM_MBOX_ID_LEN) == 0)
			return sb;
	return NULL;
}

/* ---- commits seen while lookups are in flight ---- */

/* Remember that mailbox's seqs up to seq are committed (for lookups in
 * flight: replay_notes). */
static void note(struct relm_mbox_server *s, const uint8_t mb[RELM_MBOX_ID_LEN], uint64_t seq)
{
	if (!s->lookups)
		return;    /* nobody to tell */
	memcpy(s->note[s->notes % MBS_NOTE_RING].mailbox, mb, RELM_MBOX_ID_LEN);
	s->note[s->notes % MBS_NOTE_RING].seq = seq;
	s->notes++;
}

/* ---- a connection's pump queue ---- */

static void queue_push(struct mbs_conn *c, struct mbs_sub *sb)
{
	if (sb->queued)
		return;
	sb->queued = 1;
	sb->qnext = NULL;
	sb->qprev = c->q_tail;
	if (c->q_tail)
		c->q_tail->qnext = sb;
	else
		c->q_head = sb;
	c->q_tail = sb;
}

static void queue_del(struct mbs_conn *c, struct mbs_sub *sb)
{
	if (!sb->queued)
		return;
	if (sb->qprev)
		sb->qprev->qnext = sb->qnext;
	else
		c->q_head = sb->qnext;
	if (sb->qnext)
		sb->qnext->qprev = sb->qprev;
	else
		c->q_tail = sb->qprev;
	sb->queued = 0;
	sb->qprev = sb->qnext = NULL;
}

/* The store may hold more for sb than it has been given. */
static void mark_dirty(struct mbs_sub *sb)
{
	sb->dirty = 1;
	sb->wake++;
	queue_push(sb->conn, sb);
}

/* ---- subscriptions ---- */

static struct mbs_sub *sub_new(struct mbs_conn *c, const uint8_t mb[RELM_MBOX_ID_LEN])
{
	struct relm_mbox_server *s = mbs_srv(c);
	struct mbs_subtab *t = &s->subs;
	struct mbs_sub *sb = calloc(1, sizeof(*sb));
	size_t k;

	if (!sb)
		return NULL;
	memcpy(sb->mailbox, mb, RELM_MBOX_ID_LEN);
	sb->conn = c;
	if (t->n > t->mask)
		tab_grow(t);
	k = bucket_of(t, mb);
	sb->hnext = t->b[k];
	t->b[k] = sb;
	t->n++;
	sb->cnext = c->subs;
	if (c->subs)
		c->subs->cprev = sb;
	c->subs = sb;
	c->nsubs++;
	return sb;
}

static void sub_free(struct mbs_sub *sb)
{
	struct mbs_conn *c = sb->conn;
	struct mbs_subtab *t = &mbs_srv(c)->subs;
	struct mbs_sub **pp = &t->b[bucket_of(t, sb->mailbox)];

	while (*pp != sb)
		pp = &(*pp)->hnext;
	*pp = sb->hnext;
	t->n--;
	if (sb->cprev)
		sb->cprev->cnext = sb->cnext;
	else
		c->subs = sb->cnext;
	if (sb->cnext)
		sb->cnext->cprev = sb->cprev;
	c->nsubs--;
	queue_del(c, sb);
	if (c->fetching == sb)
		c->fetching = NULL;   /* its fetch's rows are dropped */
	free(sb);
}

void mbs_subs_drop_all(struct mbs_conn *c)
{
	while (c->subs)
		sub_free(c->subs);
}

/* Subscribe c to mb from cursor, or restart its subscription there, given
 * the mailbox's head.  0 or a wire error code (too_many_subs). */
static unsigned sub_install(struct mbs_conn *c, const uint8_t mb[RELM_MBOX_ID_LEN],
                            uint64_t cursor, uint64_t head)
{
	struct relm_mbox_server *s = mbs_srv(c);
	struct mbs_sub *sb = tab_find(&s->subs, c, mb);

	if (!sb) {
		if (c->nsubs >= s->cfg.max_subs || s->subs.n >= s->cfg.max_subs_total)
			return RELM_MBOX_E_TOO_MANY_SUBS;
		sb = sub_new(c, mb);
		if (!sb)
			return RELM_MBOX_E_STORE;
	}
	/* A second subscription to the same mailbox restarts it from its cursor. */
	sb->sent = cursor;
	sb->gen++;
	sb->dirty = 0;
	queue_del(c, sb);
	if (cursor < head)
		mark_dirty(sb);
	return 0;
}

/* ---- delivery ---- */

/* One DELIVER on sb; sent advances even if the connection is going. */
static int deliver(struct mbs_conn *c, struct mbs_sub *sb, uint64_t seq, const uint8_t *env, size_t len)
{
	struct relm_mbox_frame f;
	int rc;

	mbs_frame_init(c, &f, RELM_MBOX_DELIVER);
	memcpy(f.u.deliver.mailbox, sb->mailbox, RELM_MBOX_ID_LEN);
	f.u.deliver.seq = seq;
	f.u.deliver.env = env;
	f.u.deliver.env_len = len;
	sb->sent = seq;
	rc = mbs_conn_send(c, &f);
	if (rc == 0)
		mbs_srv(c)->stats.delivered++;
	return rc;
}

static void on_fetch_row(void *ctx, uint64_t seq, const uint8_t *env, size_t len)
{
	struct mbs_conn *c = ctx;
	struct mbs_sub *sb = c->fetching;

	/* the rows of one answer leave in one write (released when done) */
	if (c->fetch_rows++ == 0)
		mbs_hold(c->owner);
	if (!sb || sb->gen != c->fetch_gen || seq <= sb->sent || !mbs_conn_live(c))
		return;
	deliver(c, sb, seq, env, len);
}

static void on_fetch_done(void *ctx, int rc)
{
	struct mbs_conn *c = ctx;
	struct relm_mbox_server *s = mbs_srv(c);
	struct mbs_sub *sb = c->fetching;
	unsigned rows = c->fetch_rows;   /* the next fetch resets it */

	mbs_hold(&s->owner);
	c->in_fetch = 0;
	c->fetching = NULL;
	if (rc && mbs_conn_live(c)) {
		log_err("mailbox store: fetch failed");
		mbs_conn_error(c, 0, RELM_MBOX_E_STORE, 1, "store read failed");
	} else if (sb && sb->gen == c->fetch_gen) {
		/* all there was, and nothing new meanwhile: clean */
		if (rows < RELM_MBOX_DELIVER_BATCH && sb->wake == c->fetch_wake)
			sb->dirty = 0;
		else
			queue_push(c, sb);
	}
	if (!c->in_pump && mbs_conn_live(c))
		mbs_pump(c);    /* answered later (PostgreSQL): carry on */
	if (rows)
		mbs_release(&s->owner);   /* on_fetch_row's */
	mbs_release(&s->owner);
	mbs_conn_unref(c);
}

/* Deliver stored envelopes to dirty subscriptions while the output queue
 * is short.  Round-robin over the dirty ones, one batch each, so one huge
 * mailbox does not starve the others. */
void mbs_pump(struct mbs_conn *c)
{
	struct relm_mbox_server *s = mbs_srv(c);
	struct mbs_sub *sb;

	if (c->in_pump || c->in_fetch)
		return;
	c->in_pump = 1;
	while (mbs_conn_live(c) && !c->in_fetch && c->outq < RELM_MBOX_OUTQ_LOW &&
	       (sb = c->q_head)) {
		queue_del(c, sb);
		if (!sb->dirty)
			continue;
		c->in_fetch = 1;
		c->fetching = sb;
		c->fetch_gen = sb->gen;
		c->fetch_wake = sb->wake;
		c->fetch_rows = 0;
		mbs_conn_ref(c);
		s->store->ops->fetch(s->store, sb->mailbox, sb->sent, RELM_MBOX_DELIVER_BATCH,
		                     on_fetch_row, on_fetch_done, c);
	}
	c->in_pump = 0;
}

/* A group of posts to one mailbox, committed by us: v[0..n), seqs
 * consecutive. */
static void fanout_group(struct relm_mbox_server *s, struct mbs_post **v, size_t n)
{
	const uint8_t *mb = v[0]->mailbox;
	uint64_t first = v[0]->seq, last = v[n - 1]->seq;
	struct mbs_sub *sb = s->subs.b[bucket_of(&s->subs, mb)], *next;

	note(s, mb, last);
	for (; sb; sb = next) {
		struct mbs_conn *c = sb->conn;
		size_t i;

		next = sb->hnext;
		if (memcmp(sb->mailbox, mb, RELM_MBOX_ID_LEN) != 0 || !mbs_conn_live(c) ||
		    last <= sb->sent)
			continue;
		/* Clean and nothing between sent and this commit: from memory. */
		for (i = 0; !sb->dirty && first <= sb->sent + 1 && i < n; i++) {
			if (v[i]->seq <= sb->sent)
				continue;
			if (c->outq >= RELM_MBOX_OUTQ_LOW ||
			    deliver(c, sb, v[i]->seq, v[i]->env, v[i]->len) != 0)
				break;
		}
		if (last > sb->sent) {
			mark_dirty(sb);
			mbs_pump(c);
		}
	}
}

void mbs_fanout_commit(struct relm_mbox_server *s, struct mbs_post **v, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && memcmp(v[j]->mailbox, v[i]->mailbox, RELM_MBOX_ID_LEN) == 0; j++)
			;
		fanout_group(s, v + i, j - i);
	}
}

void mbs_fanout_notify(struct relm_mbox_server *s, const uint8_t mb[RELM_MBOX_ID_LEN], uint64_t seq)
{
	struct mbs_sub *sb = s->subs.b[bucket_of(&s->subs, mb)], *next;

	note(s, mb, seq);
	for (; sb; sb = next) {
		next = sb->hnext;
		if (memcmp(sb->mailbox, mb, RELM_MBOX_ID_LEN) != 0 || !mbs_conn_live(sb->conn) ||
		    seq <= sb->sent)
			continue;
		mark_dirty(sb);
		mbs_pump(sb->conn);
	}
}

void mbs_wake_all(struct relm_mbox_server *s)
{
	for (struct mbs_conn *c = s->owner.conns; c; c = c->next) {
		if (!mbs_conn_live(c))
			continue;
		for (struct mbs_sub *sb = c->subs; sb; sb = sb->cnext)
			mark_dirty(sb);
		mbs_pump(c);
	}
}

/* ---- SUBSCRIBE and SUBSCRIBE_BATCH ---- */

/* One subscription request in flight: a SUBSCRIBE (n = 1) or a batch. */
struct sub_op {
	struct mbs_conn *conn;
	uint32_t tag;
	int batch;                 /* SUBSCRIBE_BATCH (else SUBSCRIBE) */
	uint8_t kind;              /* the batch's kind */
	uint64_t notes0;           /* s->notes when the lookup began */
	size_t n;                  /* entries */
	size_t nlk;                /* lookups sent to the store: lk[k] is entry map[k] */
	struct {
		uint64_t cursor;
		unsigned code;     /* 0, or why the entry is refused */
		uint8_t mac[RELM_MBOX_MAC_LEN];
	} *e;
	size_t *map;
	struct mbs_lookup *lk;
};

static void op_free(struct sub_op *op)
{
	if (op->lk)
		sodium_memzero(op->lk, op->n * sizeof(*op->lk));   /* read keys */
	free(op->lk);
	free(op->map);
	free(op->e);
	free(op);
}

static struct sub_op *op_new(struct mbs_conn *c, uint32_t tag, int batch, size_t n)
{
	struct sub_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->conn = c;
	op->tag = tag;
	op->batch = batch;
	op->n = n;
	op->e = calloc(n, sizeof(*op->e));
	op->map = calloc(n, sizeof(*op->map));
	op->lk = calloc(n, sizeof(*op->lk));
	if (!op->e || !op->map || !op->lk) {
		op_free(op);
		return NULL;
	}
	return op;
}

/* Commits noted while the lookup was in flight reach the subscriptions it
 * created (the lookup's heads may predate them). */
static void replay_notes(struct sub_op *op)
{
	struct mbs_conn *c = op->conn;
	struct relm_mbox_server *s = mbs_srv(c);

	if (s->notes - op->notes0 > MBS_NOTE_RING) {
		/* too many to tell: every subscription of this request reads */
		for (size_t k = 0; k < op->nlk; k++) {
			struct mbs_sub *sb = tab_find(&s->subs, c, op->lk[k].mailbox);
			if (sb)
				mark_dirty(sb);
		}
		return;
	}
	for (uint64_t k = op->notes0; k < s->notes; k++) {
		const uint8_t *mb = s->note[k % MBS_NOTE_RING].mailbox;
		struct mbs_sub *sb = tab_find(&s->subs, c, mb);

		if (sb && s->note[k % MBS_NOTE_RING].seq > sb->sent)
			mark_dirty(sb);
	}
}

static void answer_single(struct sub_op *op)
{
	struct mbs_conn *c = op->conn;
	const struct mbs_lookup *l = &op->lk[0];
	struct relm_mbox_frame f;

	if (op->e[0].code) {
		mbs_conn_error(c, op->tag, op->e[0].code, 0,
		               op->e[0].code == RELM_MBOX_E_TOO_MANY_SUBS ? "subscription limit reached" :
		               "store read failed");
		return;
	}
	mbs_frame_init(c, &f, RELM_MBOX_SUBSCRIBED);
	f.u.subscribed.tag = op->tag;
	memcpy(f.u.subscribed.mailbox, l->mailbox, RELM_MBOX_ID_LEN);
	f.u.subscribed.head = l->head;
	f.u.subscribed.oldest = l->oldest;
	mbs_conn_send(c, &f);
}

static void answer_batch(struct sub_op *op)
{
	struct mbs_conn *c = op->conn;
	struct relm_mbox_frame f;
	uint8_t *out = malloc(op->n * RELM_MBOX_BATCHED_ENTRY);
	size_t k = 0;

	if (!out) {
		mbs_conn_error(c, op->tag, RELM_MBOX_E_STORE, 0, "out of memory");
		return;
	}
	for (size_t i = 0; i < op->n; i++) {
		uint64_t head = 0, oldest = 0;

		if (k < op->nlk && op->map[k] == i) {
			if (!op->e[i].code) {
				head = op->lk[k].head;
				oldest = op->lk[k].oldest;
			}
			k++;
		}
		relm_mbox_subed_put(out + i * RELM_MBOX_BATCHED_ENTRY, op->e[i].code, head, oldest);
	}
	mbs_frame_init(c, &f, RELM_MBOX_SUBSCRIBED_BATCH);
	f.u.subed_batch.tag = op->tag;
	f.u.subed_batch.entries = out;
	f.u.subed_batch.count = op->n;
	mbs_conn_send(c, &f);
	free(out);
}

static void on_looked_up(void *ctx, int rc)
{
	struct sub_op *op = ctx;
	struct mbs_conn *c = op->conn;
	struct relm_mbox_server *s = mbs_srv(c);

	mbs_hold(&s->owner);
	s->lookups--;
	if (!rc && op->batch && op->kind == RELM_MBOX_BATCH_REGISTER)
		s->stats.registered += op->nlk;
	if (mbs_conn_live(c)) {
		for (size_t k = 0; k < op->nlk; k++) {
			struct mbs_lookup *l = &op->lk[k];
			size_t i = op->map[k];

			if (rc) {
				op->e[i].code = RELM_MBOX_E_STORE;
				continue;
			}
			if (op->batch && op->kind == RELM_MBOX_BATCH_MAC) {
				if (!l->has_key)
					op->e[i].code = RELM_MBOX_E_UNKNOWN_KEY;
				else if (relm_mbox_sub_mac_verify(op->e[i].mac, l->read_key, c->nonce,
				                                  l->mailbox, op->e[i].cursor) != 0)
					op->e[i].code = RELM_MBOX_E_BAD_SIGNATURE;
			}
			if (!op->e[i].code)
				op->e[i].code = sub_install(c, l->mailbox, op->e[i].cursor, l->head);
		}
		if (op->batch)
			answer_batch(op);
		else
			answer_single(op);
		replay_notes(op);
		mbs_pump(c);
	}
	op_free(op);
	mbs_conn_unblock(c);
	mbs_release(&s->owner);
	mbs_conn_unref(c);
}

/* Hand op's lookups to the store; its answer comes before any later frame's. */
static void op_submit(struct sub_op *op, int set_keys)
{
	struct mbs_conn *c = op->conn;
	struct relm_mbox_server *s = mbs_srv(c);

	mbs_conn_ref(c);
	mbs_conn_block(c);
	s->lookups++;
	op->notes0 = s->notes;
	if (set_keys)
		s->store->ops->set_keys(s->store, op->lk, op->nlk, on_looked_up, op);
	else
		s->store->ops->lookup(s->store, op->lk, op->nlk, on_looked_up, op);
}

void mbs_handle_subscribe(struct mbs_conn *c, const struct relm_mbox_subscribe *r)
{
	struct sub_op *op;
	int rc;

	rc = relm_mbox_sub_verify(r->sig, c->nonce, r->mailbox, r->cursor);
	if (rc == RELM_EBADKEY) {
		mbs_conn_error(c, r->tag, RELM_MBOX_E_BAD_MAILBOX, 0, "mailbox id is not an Ed25519 key");
		return;
	}
	if (rc) {
		mbs_conn_error(c, r->tag, RELM_MBOX_E_BAD_SIGNATURE, 0,
		               "subscription not signed by the mailbox key over this connection's nonce");
		return;
	}
	if (!(op = op_new(c, r->tag, 0, 1))) {
		mbs_conn_error(c, r->tag, RELM_MBOX_E_STORE, 0, "out of memory");
		return;
	}
	op->e[0].cursor = r->cursor;
	memcpy(op->lk[0].mailbox, r->mailbox, RELM_MBOX_ID_LEN);
	op->nlk = 1;
	op_submit(op, 0);
}

void mbs_handle_sub_batch(struct mbs_conn *c, const struct relm_mbox_sub_batch *b)
{
	struct sub_op *op = op_new(c, b->tag, 1, b->count);
	uint8_t k[32];
	int bad_kx = 0;

	if (!op) {
		mbs_conn_error(c, b->tag, RELM_MBOX_E_STORE, 0, "out of memory");
		return;
	}
	op->kind = b->kind;
	if (b->kind == RELM_MBOX_BATCH_REGISTER)
		bad_kx = relm_mbox_seal_key(k, c->kx_sk, b->kx, c->kx_pk, b->kx) != 0;
	for (size_t i = 0; i < b->count; i++) {
		struct relm_mbox_batch_entry e;

		relm_mbox_batch_entry(b, i, &e);
		op->e[i].cursor = e.cursor;
		if (b->kind == RELM_MBOX_BATCH_MAC) {
			/* the MAC is checked against the stored read key when it comes */
			memcpy(op->e[i].mac, e.mac, RELM_MBOX_MAC_LEN);
		} else {
			int rc = bad_kx ? RELM_EBADSIG :
			         relm_mbox_reg_verify(e.sig, c->nonce, c->kx_pk, b->kx, e.mailbox,
			                              e.cursor, e.sealed);
			if (rc) {
				op->e[i].code = rc == RELM_EBADKEY ? RELM_MBOX_E_BAD_MAILBOX :
				                                     RELM_MBOX_E_BAD_SIGNATURE;
				continue;
			}
			relm_mbox_seal(op->lk[op->nlk].read_key, k, e.mailbox, e.sealed);
		}
		memcpy(op->lk[op->nlk].mailbox, e.mailbox, RELM_MBOX_ID_LEN);
		op->map[op->nlk++] = i;
	}
	sodium_memzero(k, sizeof(k));
	if (!op->nlk) {
		/* every entry refused already: answer without the store */
		mbs_conn_ref(c);
		mbs_conn_block(c);
		mbs_srv(c)->lookups++;
		op->notes0 = mbs_srv(c)->notes;
		on_looked_up(op, 0);
		return;
	}
	op_submit(op, b->kind == RELM_MBOX_BATCH_REGISTER);
}

void mbs_handle_unsubscribe(struct mbs_conn *c, const struct relm_mbox_unsub *r)
{
	struct relm_mbox_frame f;
	struct mbs_sub *sb = tab_find(&mbs_srv(c)->subs, c, r->mailbox);

	if (!sb) {
		mbs_conn_error(c, r->tag, RELM_MBOX_E_NOT_SUBSCRIBED, 0, "not subscribed");
		return;
	}
	sub_free(sb);
	mbs_frame_init(c, &f, RELM_MBOX_UNSUBSCRIBED);
	f.u.unsub = *r;
	mbs_conn_send(c, &f);
}

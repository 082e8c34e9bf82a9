/*
 * child.c — check_crash's child: runs both daemons through lib/core/core.h
 * as relmd does (sends, pumps, deliveries, ticks, batches, purges,
 * reopens, in a seeded random mix) until the parent kills it, and tells
 * the parent over a pipe only what a call that returned 0 (and, in a
 * batch, relm_store_batch_commit) made durable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "wire/addr.h"
#include "core/core.h"
#include "store/store.h"
#include "error.h"
#include "util_rand.h"
#include "crash/crash.h"

struct kid {
	struct tu_daemon d[SIDES];
	struct netlog *log;
	int ackfd;
	uint64_t incarnation, rng;
	unsigned opens;
	int64_t last_in[SIDES];          /* last history seq reported as received */
	int has_rel[SIDES];
	int batched;                     /* side in a batch, or -1 */
	struct rec held[256];            /* REC_SENT held until the batch commits */
	int nheld;
};

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd(struct kid *k)
{
	return splitmix(&k->rng);
}

static uint64_t rnd_below(uint64_t *x, uint64_t n)
{
	return n ? splitmix(x) % n : 0;
}

static void emit(struct kid *k, const struct rec *r)
{
	if (write(k->ackfd, r, sizeof *r) != (ssize_t)sizeof *r)
		_exit(3);
}

static void kstat(struct kid *k, enum stat_code c)
{
	struct rec r = { .type = REC_STAT, .aux = c };
	emit(k, &r);
}

static void kfail(struct kid *k, int line, int rc, const char *what)
{
	struct rec r = { .type = REC_ERROR, .aux = (uint32_t)line, .rc = rc };
	fprintf(stderr, "check_crash child %llu, crash/child.c line %d: %s: %d (%s) (" TU_SEED_FMT ")\n",
	        (unsigned long long)k->incarnation, line, what, rc,
	        rc < 0 ? relm_strerror(rc) : "-", TU_SEED_ARG);
	emit(k, &r);
	_exit(10);
}

#define KCHECK(k, call) do { int rc_ = (call); if (rc_ != 0) kfail((k), __LINE__, rc_, #call); } while (0)
#define KASSERT(k, cond) do { if (!(cond)) kfail((k), __LINE__, 0, #cond); } while (0)

/* Random valid UTF-8 (printable ASCII with quotes and backslashes, control
 * characters JSON must escape, 2/3/4-byte characters), 0..BODY_MAX bytes.
 * A pure function of *x: client-id bodies are derived from the id, so a
 * retry after a crash sends the same body. */
static size_t gen_body(uint64_t *x, char *out)
{
	static const char *const multi[] = { "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\n", "\t",
	                                     "\"", "\\", "\x01", "\x7f" };
	uint64_t r = rnd_below(x, 100);
	size_t want = r < 3 ? 0 : r < 75 ? 1 + rnd_below(x, 120) : r < 95 ? 120 + rnd_below(x, 1400)
	              : 1500 + rnd_below(x, BODY_MAX - 1500);
	size_t n = 0;

	while (n < want) {
		if (rnd_below(x, 8) == 0) {
			const char *m = multi[rnd_below(x, sizeof multi / sizeof multi[0])];
			memcpy(out + n, m, strlen(m));
			n += strlen(m);
		} else {
			out[n++] = (char)(0x20 + rnd_below(x, 95));
		}
	}
	return n;
}

size_t crash_body_of_id(const uint8_t id[RELM_ID_LEN], char *out)
{
	uint64_t x = 0;
	for (int i = 0; i < 8; i++)
		x |= (uint64_t)id[i] << (8 * i);
	return gen_body(&x, out);
}

/* After a call returned 0: nothing may be left open, and (outside a batch)
 * every incoming text row the daemon's connection now shows is reported. */
static int report_received(struct kid *k, int s)
{
	sqlite3_stmt *q;
	int n = 0;

	if (k->batched == s)
		return 0;
	KASSERT(k, !relm_store_in_txn(k->d[s].st));
	KASSERT(k, sqlite3_prepare_v2(relm__store_db(k->d[s].st),
	        "SELECT seq, id, body FROM messages WHERE direction='in' AND kind='text' AND seq>?1 "
	        "ORDER BY seq", -1, &q, NULL) == SQLITE_OK);
	sqlite3_bind_int64(q, 1, k->last_in[s]);
	while (sqlite3_step(q) == SQLITE_ROW) {
		struct rec r = { .type = REC_RECV, .side = (uint8_t)s };
		k->last_in[s] = sqlite3_column_int64(q, 0);
		KASSERT(k, sqlite3_column_bytes(q, 1) == RELM_ID_LEN);
		memcpy(r.id, sqlite3_column_blob(q, 1), RELM_ID_LEN);
		body_hash(r.h, sqlite3_column_blob(q, 2), (size_t)sqlite3_column_bytes(q, 2));
		emit(k, &r);
		n++;
	}
	sqlite3_finalize(q);
	return n;
}

static void flush_held(struct kid *k)
{
	for (int i = 0; i < k->nheld; i++)
		emit(k, &k->held[i]);
	k->nheld = 0;
}

static int has_rel(struct kid *k, int s)
{
	struct relm_store_rel r;
	if (!k->has_rel[s]) {
		memset(&r, 0, sizeof r);
		if (relm_store_rel_get(k->d[s].st, g_rel, &r, 0) == 0)
			k->has_rel[s] = 1;
		relm_store_rel_clear(&r);
	}
	return k->has_rel[s];
}

/* mode 0: engine-chosen id; 1: fresh client id; 2: re-send an acknowledged
 * client id (must be a no-op); 3: retry an intent of a killed child. */
static void op_send(struct kid *k, int s, int mode, const uint8_t *cid)
{
	static char body[BODY_MAX + 8];
	uint8_t id[RELM_ID_LEN], got[RELM_ID_LEN];
	struct rec r = { .type = REC_SENT, .side = (uint8_t)s };
	size_t len;
	int was_new = -1;

	if (!has_rel(k, s))
		return;
	if (mode == 0) {
		len = gen_body(&k->rng, body);
	} else {
		if (mode == 1) {
			struct rec in = { .type = REC_INTENT, .side = (uint8_t)s };
			for (int i = 0; i < RELM_ID_LEN; i += 8) {
				uint64_t v = rnd(k);
				memcpy(id + i, &v, 8);
			}
			memcpy(in.id, id, RELM_ID_LEN);
			emit(k, &in);            /* before the call: a kill inside it is retried */
		} else {
			memcpy(id, cid, RELM_ID_LEN);
		}
		len = crash_body_of_id(id, body);
		r.flags = REC_F_CLIENT;
	}
	KCHECK(k, relm_core_message_send(k->d[s].core, g_rel, body, len, mode ? id : NULL, got, &was_new));
	KASSERT(k, !mode || memcmp(got, id, RELM_ID_LEN) == 0);
	if (mode == 1)
		KASSERT(k, was_new == 1);
	if (mode == 2 && was_new != 0)
		kfail(k, __LINE__, was_new, "an acknowledged client id was sent again: lost from history");
	if (mode == 0 || mode == 1)
		kstat(k, mode ? ST_SEND_CLIENT : ST_SEND);
	else
		kstat(k, mode == 2 ? ST_RESEND_ACKED : was_new ? ST_RETRY_NEW : ST_RETRY_OLD);
	memcpy(r.id, got, RELM_ID_LEN);
	body_hash(r.h, body, len);
	if (k->batched == s) {
		KASSERT(k, k->nheld < (int)(sizeof k->held / sizeof k->held[0]));
		k->held[k->nheld++] = r;
	} else {
		KASSERT(k, !relm_store_in_txn(k->d[s].st));
		emit(k, &r);
	}
}

struct mb_list {
	uint8_t id[8][32];
	uint64_t cursor[8];
	size_t n;
};

static int mb_cb(void *ctx, const uint8_t id[32], uint64_t cursor)
{
	struct mb_list *l = ctx;
	if (l->n == 8)
		return RELM_ELIMIT;
	memcpy(l->id[l->n], id, 32);
	l->cursor[l->n++] = cursor;
	return 0;
}

/* Feed a random prefix of each mailbox past its cursor (max: cap on the
 * count, 0 = none); sometimes an old position again. */
static void op_deliver(struct kid *k, int s, size_t max)
{
	struct mb_list l = { .n = 0 };
	struct tu_daemon *d = &k->d[s];

	KCHECK(k, relm_core_mailboxes(d->core, mb_cb, &l));
	for (size_t j = 0; j < l.n; j++) {
		struct mbx *b = crash_mbx_find(k->log, l.id[j], 0);
		size_t have = b ? b->n : 0, pend, take;
		uint64_t cur = l.cursor[j];

		KASSERT(k, cur <= have);   /* the cursor never passes what the mailbox holds */
		pend = have - cur;
		take = rnd(k) % 3 == 0 ? pend : (size_t)rnd_below(&k->rng, pend + 1);
		if (max && take > max)
			take = max;
		for (size_t i = 0; i < take; i++) {
			const struct tu_mail *m = &k->log->net.v[b->idx[cur + i]];
			KCHECK(k, relm_core_envelope(d->core, l.id[j], cur + i + 1, m->buf, m->len));
			kstat(k, ST_DELIVER);
			report_received(k, s);
		}
		if (cur > 0 && rnd(k) % 8 == 0) {
			/* redelivery of a position already read, with its bytes or
			 * another record's: ignored, whatever it holds */
			uint64_t seq = 1 + rnd_below(&k->rng, cur);
			const struct tu_mail *m = &k->log->net.v[rnd(k) % 2 ? b->idx[seq - 1]
			                                             : rnd_below(&k->rng, k->log->net.n)];
			KCHECK(k, relm_core_envelope(d->core, l.id[j], seq, m->buf, m->len));
			kstat(k, ST_REDELIVER);
			if (report_received(k, s) != 0)
				kfail(k, __LINE__, 0, "a redelivered position made a new message");
		}
	}
}

struct orow {
	int64_t seq;
	uint8_t rel[RELM_ID_LEN], msg[RELM_ID_LEN];
	int has_rel, has_msg;
	uint8_t mailbox[32];
	uint8_t *buf;
	size_t len;
	int ok;
};

struct orows {
	struct orow v[512];
	size_t n;
};

static int orow_cb(void *ctx, const struct relm_store_outbox *o)
{
	struct orows *p = ctx;
	struct orow *r;
	struct relm_addr a;

	if (p->n == sizeof p->v / sizeof p->v[0])
		return 1;                /* enough for one pump */
	r = &p->v[p->n++];
	r->seq = o->seq;
	memcpy(r->rel, o->rel, RELM_ID_LEN);
	memcpy(r->msg, o->msg_id, RELM_ID_LEN);
	r->has_rel = o->has_rel;
	r->has_msg = o->has_msg;
	r->ok = relm_addr_parse(&a, o->dest, strlen(o->dest)) == 0 && a.has_id;
	memcpy(r->mailbox, a.id, 32);
	if (!(r->buf = malloc(o->len)))
		abort();
	memcpy(r->buf, o->bytes, o->len);
	r->len = o->len;
	return 0;
}

/* Post a random subset of the committed, unposted rows in a random order:
 * each durably in the log first, then relm_core_outbox_posted. */
static void op_pump(struct kid *k, int s)
{
	static struct orows p;
	size_t order[512], n = 0;
	int all = rnd(k) % 2, group, rc;

	p.n = 0;
	rc = relm_store_outbox_next(k->d[s].st, 0, 0, orow_cb, &p);
	KASSERT(k, rc == 0 || rc == 1);
	for (size_t i = 0; i < p.n; i++)
		if (all || rnd(k) % 4 != 0)
			order[n++] = i;
	if (rnd(k) % 2)
		for (size_t i = n; i > 1; i--) {
			size_t j = rnd_below(&k->rng, i), t = order[i - 1];
			order[i - 1] = order[j];
			order[j] = t;
		}
	/* one envelope at a time (write, fsync, posted), or a group: every
	 * write, one fsync, then the posted marks in one batch — as relmd
	 * gathers a loop turn's acks into one commit */
	group = n > 1 && rnd(k) % 2;
	for (size_t i = 0; i < n; i++) {
		struct orow *r = &p.v[order[i]];
		int copies = rnd(k) % 20 == 0 ? 2 : 1;
		KASSERT(k, r->ok);
		for (int c = 0; c < copies; c++) {
			KCHECK(k, group ? crash_log_write(k->log, r->mailbox, r->buf, r->len)
			                : crash_log_append(k->log, r->mailbox, r->buf, r->len));
			crash_net_push(&k->log->net, r->mailbox, r->buf, r->len);
			crash_log_index(k->log, k->log->net.n - 1);
		}
		if (copies == 2)
			kstat(k, ST_POST_DUP);
		if (!group) {
			KCHECK(k, relm_core_outbox_posted(k->d[s].core, r->seq, r->msg, r->rel,
			                                  r->has_msg && r->has_rel));
			KASSERT(k, !relm_store_in_txn(k->d[s].st));
		}
		kstat(k, ST_POST);
	}
	if (group) {
		KASSERT(k, fsync(k->log->fd) == 0);   /* the mailbox holds them: now it acks */
		KCHECK(k, relm_store_batch_begin(k->d[s].st));
		for (size_t i = 0; i < n; i++) {
			struct orow *r = &p.v[order[i]];
			KCHECK(k, relm_core_outbox_posted(k->d[s].core, r->seq, r->msg, r->rel,
			                                  r->has_msg && r->has_rel));
		}
		KCHECK(k, relm_store_batch_commit(k->d[s].st));
		KASSERT(k, !relm_store_in_txn(k->d[s].st));
		kstat(k, ST_POST_GROUP);
	}
	for (size_t i = 0; i < p.n; i++)
		free(p.v[i].buf);
}

static void op_tick(struct kid *k, int s)
{
	uint64_t next = 0;
	KCHECK(k, relm_core_tick(k->d[s].core, &next));
	kstat(k, ST_TICK);
	report_received(k, s);
}

static int64_t max_seq(struct relm_store *st)
{
	sqlite3_stmt *q;
	int64_t v = 0;
	if (sqlite3_prepare_v2(relm__store_db(st), "SELECT coalesce(max(seq),0) FROM messages", -1, &q,
	                       NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return v;
}

static void kid_open(struct kid *k, int s)
{
	/* a fresh random stream for every open: a restarted daemon that
	 * replayed its randomness would reuse nonces (check 3) */
	uint64_t stream = 1000 + k->incarnation * 4096 + (uint64_t)k->opens++ * 2 + (uint64_t)s;
	KCHECK(k, tu_daemon_open(&k->d[s], &g_clock, stream, host_of[s]));
	k->last_in[s] = max_seq(k->d[s].st);
	KASSERT(k, k->last_in[s] >= 0);
	k->has_rel[s] = 0;
}

static void op_reopen(struct kid *k, int s)
{
	tu_daemon_close(&k->d[s]);
	kid_open(k, s);
	kstat(k, ST_REOPEN);
}

/* Drop posted outbox rows, as a daemon must now and then (nothing in
 * lib/core/core.c does it yet): keeps the stores, and the checks, small. */
static void op_purge(struct kid *k, int s)
{
	int rc;
	KCHECK(k, relm_store_begin(k->d[s].st));
	rc = relm_store_outbox_purge_posted(k->d[s].st, 0);
	KASSERT(k, rc >= 0);
	KCHECK(k, relm_store_commit(k->d[s].st));
	kstat(k, ST_PURGE);
}

static void op_batch(struct kid *k, int s)
{
	int n = 2 + (int)rnd_below(&k->rng, 7);
	KCHECK(k, relm_store_batch_begin(k->d[s].st));
	k->batched = s;
	for (int i = 0; i < n; i++) {
		uint64_t r = rnd(k) % 10;
		if (r < 5)
			op_send(k, s, r == 0, NULL);
		else if (r < 8)
			op_deliver(k, s, 2);
		else
			op_tick(k, s);
	}
	KCHECK(k, relm_store_batch_commit(k->d[s].st));
	k->batched = -1;
	KASSERT(k, !relm_store_in_txn(k->d[s].st));
	flush_held(k);                   /* durable now: acknowledge */
	report_received(k, s);
	kstat(k, ST_BATCH);
}

void crash_child_main(uint64_t incarnation, int ackfd, struct netlog *log)
{
	struct kid k;

	memset(&k, 0, sizeof k);
	k.incarnation = incarnation;
	k.ackfd = ackfd;
	k.log = log;
	k.batched = -1;
	{
		/* splitmix64 streams are one cycle: start each child at a hashed
		 * point, not at nearby ones (overlapping streams repeat ids) */
		uint64_t in[2] = { tu_seed(), incarnation };
		crypto_generichash((uint8_t *)&k.rng, sizeof k.rng, (const uint8_t *)in, sizeof in, NULL, 0);
	}
	memcpy(k.d, g_d, sizeof k.d);
	kstat(&k, ST_START);
	KCHECK(&k, crash_clock_load());
	/* The parent read every whole record: anything past it is a torn tail. */
	if ((log->fd = open(g_logpath, O_WRONLY | O_APPEND | O_CLOEXEC)) < 0 ||
	    ftruncate(log->fd, log->off) != 0)
		kfail(&k, __LINE__, -errno, "log open");
	for (int s = 0; s < SIDES; s++)
		kid_open(&k, s);
	/* the client of a killed daemon retries what it was not told about */
	for (size_t i = 0; i < g_intents.n; i++)
		op_send(&k, g_intents.v[i].side, 3, g_intents.v[i].id);
	for (;;) {
		uint64_t r = rnd(&k) % 100;
		int s = (int)(rnd(&k) % SIDES);
		KCHECK(&k, crash_clock_advance(rnd(&k) % 50 == 0 ? 5000 + rnd_below(&k.rng, 25000)
		                                            : rnd_below(&k.rng, 300)));
		if (r < 20)
			op_send(&k, s, 0, NULL);
		else if (r < 27)
			op_send(&k, s, 1, NULL);
		else if (r < 30 && g_client_acked.n) {
			const struct idrec *a = &g_client_acked.v[rnd_below(&k.rng, g_client_acked.n)];
			op_send(&k, a->side, 2, a->id);
		}
		else if (r < 52)
			op_pump(&k, s);
		else if (r < 78)
			op_deliver(&k, s, 0);
		else if (r < 87)
			op_tick(&k, s);
		else if (r < 97)
			op_batch(&k, s);
		else if (r < 98)
			op_purge(&k, s);
		else
			op_reopen(&k, s);
	}
}

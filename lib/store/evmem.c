/*
 * evmem.c — the events of this handle's transactions, kept in memory from
 * their append until the daemon has published them (relm_store_event_drain).
 *
 * relmd publishes after every commit what the commit added to the event
 * log.  It read it back with a SELECT over the log and decoded every row
 * into a record it had itself built a moment before: a statement per
 * commit and a row's decoding per event (5 % of a sending relmd's
 * instructions per message).  Now each record appended is also copied
 * here, and the drain hands them over from memory — exactly as the SQL
 * would have: each copy is what a read of its row gives back (`as_read`).
 *
 * The copies follow the transaction: a batched step rolled back drops
 * those it appended (their seqs will be given again), a transaction rolled
 * back drops all of its own, a commit makes them deliverable.  Memory
 * covers every committed event with seq > `covered` as long as nothing was
 * dropped for room: one handle is the store's only writer (relmd holds the
 * state lock), so every event is appended through it.  When memory cannot
 * answer — the first drain after opening, a caller further behind than
 * `covered`, more than RELM__EVMEM_MAX events between two drains (the log
 * may also have trimmed some of them) — the drain reads the log as before.
 *
 * Records hold no secrets (events carry ids, hashes and reason texts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/store_int.h"

/* The record exactly as read_event (events.c) rebuilds it from its row:
 * only the fields carried, each through the column it is stored in. */
static void as_read(struct relm__evrec *r, const struct relm_event *ev)
{
	struct relm_event *o = &r->ev;
	const char *code;

	relm_event_init(o, ev->type);
	o->has = ev->has;
#define X(bit, f) if (ev->has & (bit)) memcpy(o->f, ev->f, sizeof o->f);
	X(RELM_EVF_REL, rel) X(RELM_EVF_MSG, msg) X(RELM_EVF_NODE, node)
	X(RELM_EVF_PROTON, proton) X(RELM_EVF_DEVICE, device) X(RELM_EVF_IPK, ipk)
	X(RELM_EVF_MAILBOX, mailbox) X(RELM_EVF_ENVELOPE, envelope)
#undef X
	/* integers go in as SQLite's int64 and come back only when >= 0 */
	if ((ev->has & RELM_EVF_MBOX_SEQ) && ev->mailbox_seq <= INT64_MAX)
		o->mailbox_seq = ev->mailbox_seq;
	else
		o->has &= ~(unsigned)RELM_EVF_MBOX_SEQ;
	if ((ev->has & RELM_EVF_EPOCH) && ev->epoch <= INT64_MAX)
		o->epoch = ev->epoch;
	else
		o->has &= ~(unsigned)RELM_EVF_EPOCH;
	if (ev->has & RELM_EVF_PRUNED)
		o->pruned = ev->pruned;
	if (ev->has & RELM_EVF_STATUS)
		o->status = ev->status;
	if (ev->has & RELM_EVF_ROW)
		o->row = ev->row;
	/* code by its name: a code without one is not carried */
	if ((ev->has & RELM_EVF_CODE) && (code = relm_errname(ev->code)) && relm_errcode(code) != 0)
		o->code = relm_errcode(code);
	else
		o->has &= ~(unsigned)RELM_EVF_CODE;
	if (ev->has & RELM_EVF_REASON) {
		snprintf(r->reason, sizeof r->reason, "%s", ev->reason);
		o->reason = r->reason;
	}
	if (ev->has & RELM_EVF_TABLE) {
		snprintf(r->table, sizeof r->table, "%s", ev->table);
		o->table = r->table;
	}
}

void relm__evmem_append(struct relm_store *st, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	struct relm__evmem *m = &st->evmem;
	struct relm__evrec *v;

	if (m->lost)
		return;
	/* More than the log keeps between two drains: the log may trim some
	 * of them before they are drained, and memory must not deliver what
	 * the log would not.  (Memory holds seqs covered+1 … covered+n: with
	 * n <= keep, every one is among the newest `keep`.) */
	if (m->n >= RELM__EVMEM_MAX || m->n >= st->event_keep) {
		m->lost = 1;                   /* the drain reads the log instead */
		return;
	}
	if (m->n == m->cap) {
		uint32_t cap = m->cap ? 2 * m->cap : 64;
		if (!(v = realloc(m->v, cap * sizeof *v))) {
			m->lost = 1;
			return;
		}
		m->v = v;
		m->cap = cap;
	}
	v = &m->v[m->n++];
	v->seq = seq;
	v->ts = ts;
	as_read(v, ev);
	/* reason and table point into the record: fixed up when read */
}

void relm__evmem_step_begin(struct relm__evmem *m)
{
	m->mark = m->n;
}

void relm__evmem_step_undo(struct relm__evmem *m)
{
	m->n = m->mark;
}

void relm__evmem_commit(struct relm__evmem *m)
{
	m->ncommitted = m->n;
}

void relm__evmem_rollback(struct relm__evmem *m)
{
	m->n = m->ncommitted;
	m->mark = m->n;
}

void relm__evmem_free(struct relm__evmem *m)
{
	free(m->v);
	memset(m, 0, sizeof *m);
}

/* Drop the first k committed records (delivered). */
static void consume(struct relm__evmem *m, uint32_t k)
{
	if (k < m->n)
		memmove(m->v, m->v + k, (m->n - k) * sizeof *m->v);
	m->n -= k;
	m->ncommitted -= k;
	m->mark = m->mark >= k ? m->mark - k : 0;
	/* a burst does not keep its array for ever */
	if (m->n == 0 && m->cap > 1024) {
		free(m->v);
		m->v = NULL;
		m->cap = 0;
	}
}

struct sql_drain {
	int (*cb)(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev);
	void *ctx;
	int64_t last;
};

static int sql_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	struct sql_drain *d = ctx;
	d->last = seq;
	return d->cb(d->ctx, seq, ts, ev);
}

int relm_store_event_drain(struct relm_store *st, int64_t since,
                           int (*cb)(void *ctx, int64_t seq, uint64_t ts,
                                     const struct relm_event *ev), void *ctx)
{
	struct relm__evmem *m = &st->evmem;
	struct sql_drain d = { cb, ctx, since };
	uint32_t k = 0;
	int rc = 0;

	CHECK_USABLE(st);
	if (relm_store_in_txn(st) || m->lost || !m->valid || since < m->covered) {
		/* from the log, up to what this handle committed last */
		rc = relm_store_event_list(st, since, 0, sql_cb, &d);
		if (rc < 0)
			return rc;
		if (rc == 0 && !relm_store_in_txn(st)) {
			/* everything committed is delivered: memory covers from here */
			consume(m, m->ncommitted);
			m->lost = 0;
			m->valid = 1;
			m->covered = d.last;
		}
		return rc;
	}
	for (; k < m->ncommitted && rc == 0; k++) {
		struct relm__evrec *r = &m->v[k];
		if (r->seq <= since)
			continue;
		/* the pointers into the record, wherever the array moved */
		r->ev.reason = (r->ev.has & RELM_EVF_REASON) ? r->reason : NULL;
		r->ev.table = (r->ev.has & RELM_EVF_TABLE) ? r->table : NULL;
		m->covered = r->seq;
		rc = cb(ctx, r->seq, r->ts, &r->ev);
	}
	consume(m, k);
	return rc;
}

/*
 * outgoing.c — the retransmission queue (messages sent and not yet covered
 * by the remote's receipt; schema v2, counted per relationship since v3)
 * and the acknowledgements waiting for the receipt timer (schema v4).
 */
#include <stdio.h>
#include <string.h>
#include "store/store_int.h"

/* Every write knows whether it added or removed rows, and tells the
 * relationship's count (outgoing_count, staged per transaction: stage.c):
 * an insert is tried first and, where the row is there, the update of
 * the same parameters follows — an UPSERT could not say which it did. */
RELM__SQL(OUT_ADD, "INSERT INTO outgoing(rel,id,kind,ts,body,tries,next_ms,last_node) VALUES(?1,?2,?3,?4,?5,?6,?7,?8) ON CONFLICT(rel,id) DO NOTHING");
RELM__SQL(OUT_PUT, "UPDATE outgoing SET kind=?3, ts=?4, body=?5, tries=?6, next_ms=?7, last_node=?8 WHERE rel=?1 AND id=?2");
/* a sibling's try of a message whose row is here: one more try, the
 * takeover no earlier, the node of this try (ratchet.md §6.4) */
RELM__SQL(OUT_TRY, "UPDATE outgoing SET tries=tries+1, next_ms=max(next_ms,?7), last_node=?8 WHERE rel=?1 AND id=?2");
RELM__SQL(OUT_DEL, "DELETE FROM outgoing WHERE rel=?1 AND id=?2");
RELM__SQL(OUT_DEL_MANY, "DELETE FROM outgoing WHERE rel=?1 AND id IN (?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29,?30,?31,?32,?33)");
RELM__SQL(OUT_DUE, "SELECT id,kind,ts,body,tries,next_ms,last_node FROM outgoing WHERE rel=?1 AND next_ms<=?2 ORDER BY next_ms LIMIT ?3");
RELM__SQL(OUT_NEXT, "SELECT min(next_ms) FROM outgoing WHERE rel=?1");
RELM__SQL(OUT_COUNT, "SELECT n FROM outgoing_count WHERE rel=?1");
RELM__SQL(OUT_COUNT_SCAN, "SELECT r.id, coalesce(c.n,0), (SELECT count(*) FROM outgoing o WHERE o.rel=r.id) AS k"
                          " FROM relationships r LEFT JOIN outgoing_count c ON c.rel=r.id WHERE coalesce(c.n,0) != k");
RELM__SQL(ACK_PUT, "INSERT OR IGNORE INTO acks(rel,dh,n,id) VALUES(?1,?2,?3,?4)");
RELM__SQL(ACK_DEL, "DELETE FROM acks WHERE rel=?1 AND dh=?2 AND n=?3 AND id=?4");
RELM__SQL(ACK_LIST, "SELECT dh,n,id FROM acks WHERE rel=?1 ORDER BY dh,n,id");

/* ---- outgoing ---------------------------------------------------------- */

/* One writer for the three: the row inserted if it is not there (and
 * counted); else, with `update` (OUT_PUT or OUT_TRY, the same
 * parameters), updated.  0 or an error. */
static int outgoing_write(struct relm_store *st, const struct relm__sql *update,
                          const struct relm_store_outgoing *o)
{
	const struct relm__arg a[] = {
		A_ID(o->rel), A_ID(o->id), A_INT(o->kind), A_INT(o->ts), A_BLOB(o->body, o->body_len),
		A_INT(o->tries), A_INT(o->next_ms), A_ID(o->last_node),
	};
	int n;

	CHECK_WRITABLE(st);
	if (o->body_len > RELM_ENVELOPE_MAX || o->ts > INT64_MAX || o->next_ms > INT64_MAX)
		return RELM_EINVAL;
	if ((n = q_run(st, &sql_OUT_ADD, a, sizeof a / sizeof a[0], 2)) < 0)
		return n;
	if (n > 0)
		return relm__stage_outgoing(st, o->rel, 1, 0);
	return update ? q_run(st, update, a, sizeof a / sizeof a[0], 1) : 0;
}

int relm_store_outgoing_put(struct relm_store *st, const struct relm_store_outgoing *o)
{
	return outgoing_write(st, &sql_OUT_PUT, o);
}

int relm_store_outgoing_add_try(struct relm_store *st, const struct relm_store_outgoing *o)
{
	return outgoing_write(st, &sql_OUT_TRY, o);
}

int relm_store_outgoing_add(struct relm_store *st, const struct relm_store_outgoing *o)
{
	return outgoing_write(st, NULL, o);
}

int relm_store_outgoing_del(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                            const uint8_t id[RELM_ID_LEN])
{
	int rc;

	CHECK_WRITABLE(st);
	if ((rc = Q_EXEC_ONE(st, OUT_DEL, A_ID(rel), A_ID(id))) != 0)
		return rc;
	return relm__stage_outgoing(st, rel, -1, 0);
}

int relm_store_outgoing_del_many(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                                 const uint8_t (*ids)[RELM_ID_LEN], size_t n)
{
	struct relm__arg a[1 + RELM_STORE_MANY];
	int rc, err;

	CHECK_WRITABLE(st);
	if (n > RELM_STORE_MANY)
		return RELM_EINVAL;
	memset(a, 0, sizeof a);                       /* unused ids: NULL, matching nothing */
	a[0] = (struct relm__arg)A_ID(rel);
	for (size_t i = 0; i < n; i++)
		a[1 + i] = (struct relm__arg)A_ID(ids[i]);
	if ((rc = q_run(st, &sql_OUT_DEL_MANY, a, sizeof a / sizeof a[0], 2)) <= 0)
		return rc;
	err = relm__stage_outgoing(st, rel, -(int64_t)rc, 0);
	return err ? err : rc;
}

int relm_store_outgoing_due(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                            uint64_t now_ms, unsigned limit,
                            int (*cb)(void *ctx, const struct relm_store_outgoing *o), void *ctx)
{
	struct relm_store_outgoing o;
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, OUT_DUE, A_ID(rel), A_INT(now_ms > INT64_MAX ? INT64_MAX : now_ms),
	       A_INT(limit ? (int64_t)limit : -1));
	while ((rc = q_step(&q)) > 0) {
		memset(&o, 0, sizeof o);
		memcpy(o.rel, rel, RELM_ID_LEN);
		if (q_fixed(&q, 0, o.id, RELM_ID_LEN) || q_fixed(&q, 6, o.last_node, RELM_ID_LEN)) {
			rc = RELM_ESTATE;
			break;
		}
		o.kind = (int)q_i64(&q, 1);
		o.ts = q_col_u64(&q, 2);
		o.body = q_blobv(&q, 3, &o.body_len);
		o.tries = (uint32_t)q_i64(&q, 4);
		o.next_ms = q_col_u64(&q, 5);
		if ((rc = cb(ctx, &o)) != 0)
			break;
	}
	return q_end(&q, rc);
}

/* One number for rel: a row's column 0 (NULL reads as 0), 0 if no row. */
static int scalar(struct relm_store *st, const struct relm__sql *sql,
                  const uint8_t rel[RELM_ID_LEN], uint64_t *out)
{
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	q_begin_(&q, st, sql);
	q_args(&q, Q_ARGS(A_ID(rel)));
	if ((rc = q_step(&q)) >= 0) {
		*out = rc ? q_col_u64(&q, 0) : 0;   /* outgoing_count: no row yet */
		rc = 0;
	}
	return q_end(&q, rc);
}

int relm_store_outgoing_next(struct relm_store *st, const uint8_t rel[RELM_ID_LEN], uint64_t *next)
{
	return scalar(st, &sql_OUT_NEXT, rel, next);
}

int relm_store_outgoing_count(struct relm_store *st, const uint8_t rel[RELM_ID_LEN], uint64_t *n)
{
	uint64_t held = 0;
	int64_t v;
	int rc;

	if ((rc = scalar(st, &sql_OUT_COUNT, rel, &held)) != 0)
		return rc;
	v = held > INT64_MAX ? INT64_MAX : (int64_t)held;
	relm__stage_outgoing_count(&st->stage, rel, &v);
	*n = v > 0 ? (uint64_t)v : 0;
	return 0;
}

/* Since v13 no trigger keeps the count: a writer that forgot to tell it
 * would make message.send refuse too soon or too late, for good.  The
 * check says so (store.check); the file is not changed. */
int relm__outcount_scan(struct relm_store *st)
{
	struct relm__q q;
	int rc;

	q_begin(&q, st, OUT_COUNT_SCAN);
	while ((rc = q_step(&q)) > 0) {
		uint8_t rel[RELM_ID_LEN];
		int64_t held = q_i64(&q, 1), rows = q_i64(&q, 2);
		char why[96];

		if (q_fixed(&q, 0, rel, RELM_ID_LEN))
			continue;                    /* the relationships scan reports the row */
		relm__stage_outgoing_count(&st->stage, rel, &held);
		if (held == rows)
			continue;                    /* staged, not yet written */
		snprintf(why, sizeof why, "counts %lld retransmission rows, outgoing holds %lld",
		         (long long)held, (long long)rows);
		relm__store_bad_row(st, "outgoing_count", 0, why, rel, NULL, NULL, NULL);
	}
	return q_end(&q, rc);
}

/* ---- acks ------------------------------------------------------------------ */

/* The key of a row, the parameters of ACK_PUT and ACK_DEL. */
#define ACK_KEY(rel, id, dh, n) A_ID(rel), A_BLOB(dh, RELM_KEY_LEN), A_INT(n), A_ID(id)

int relm_store_ack_put(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                       const uint8_t id[RELM_ID_LEN], const uint8_t dh[RELM_KEY_LEN], uint32_t n)
{
	CHECK_WRITABLE(st);
	return Q_EXEC(st, ACK_PUT, ACK_KEY(rel, id, dh, n));   /* an ignored duplicate: fine */
}

int relm_store_ack_del(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                       const uint8_t id[RELM_ID_LEN], const uint8_t dh[RELM_KEY_LEN], uint32_t n)
{
	CHECK_WRITABLE(st);
	return Q_EXEC_ONE(st, ACK_DEL, ACK_KEY(rel, id, dh, n));
}

int relm_store_ack_list(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                        int (*cb)(void *ctx, const uint8_t id[RELM_ID_LEN],
                                  const uint8_t dh[RELM_KEY_LEN], uint32_t n),
                        void *ctx)
{
	uint8_t dh[RELM_KEY_LEN], id[RELM_ID_LEN];
	struct relm__q q;
	int64_t n;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, ACK_LIST, A_ID(rel));
	while ((rc = q_step(&q)) > 0) {
		n = q_i64(&q, 1);
		if (q_fixed(&q, 0, dh, RELM_KEY_LEN) || q_fixed(&q, 2, id, RELM_ID_LEN) ||
		    n < 0 || n > UINT32_MAX) {
			rc = RELM_ESTATE;
			break;
		}
		if ((rc = cb(ctx, id, dh, (uint32_t)n)) != 0)
			break;
	}
	return q_end(&q, rc);
}

/*
 * messages.c — the message history: de-duplicated by (relationship, id),
 * paginated by local seq, with the forward-only status of our messages.
 *
 * Statuses and origins are stored by name (engine/event.h's table), so the
 * file reads plainly and renumbering an enum cannot change what a row means.
 */
#include <stdlib.h>
#include <string.h>
#include "store/store_int.h"
#include "text.h"

RELM__SQL(MSG_INS, "INSERT OR IGNORE INTO messages(rel,id,direction,origin,kind,body,ts,status,reason,created,updated) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?10)");
RELM__SQL(MSG_LIST, "SELECT seq,rel,id,direction,origin,kind,body,ts,status,reason,created,updated FROM messages WHERE rel=?1 AND seq<?2 ORDER BY seq DESC LIMIT ?3");
RELM__SQL(MSG_LIST_ASC, "SELECT seq,rel,id,direction,origin,kind,body,ts,status,reason,created,updated FROM messages WHERE rel=?1 AND seq>?2 ORDER BY seq LIMIT ?3");
RELM__SQL(MSG_GET, "SELECT seq,rel,id,direction,origin,kind,NULL,ts,status,reason,created,updated FROM messages WHERE rel=?1 AND id=?2");
RELM__SQL(MSG_GET_BODY, "SELECT seq,rel,id,direction,origin,kind,body,ts,status,reason,created,updated FROM messages WHERE rel=?1 AND id=?2");
RELM__SQL(MSG_STATUS, "UPDATE messages SET status=?3, reason=?4, updated=?5 WHERE rel=?1 AND id=?2");
/* the forward-only rule of relm_store_msg_advance in the WHERE clause:
 * one probe instead of a read and then an update */
RELM__SQL(MSG_ADVANCE, "UPDATE messages SET status=?3, reason=?4, updated=?5 WHERE rel=?1 AND id=?2"
          " AND direction='out' AND status<>?3 AND status<>'delivered' AND status<>'failed'"
          " AND (?3<>'posted' OR status='queued')");
/* MSG_ADVANCE for up to RELM_STORE_MANY ids at once (?5 … ?36, NULL when
 * unused), telling which moved */
RELM__SQL(MSG_ADVANCE_MANY, "UPDATE messages SET status=?3, reason=NULL, updated=?4 WHERE rel=?1"
          " AND id IN (?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29,?30,?31,?32,?33,?34,?35,?36)"
          " AND direction='out' AND status<>?3 AND status<>'delivered' AND status<>'failed'"
          " AND (?3<>'posted' OR status='queued') RETURNING id");
RELM__SQL(MSG_HAS, "SELECT 1 FROM messages WHERE rel=?1 AND id=?2");
RELM__SQL(MSG_ALL, "SELECT seq,rel,id,direction,origin,kind,body,ts,status,reason,created,updated FROM messages");

int relm_store_msg_insert(struct relm_store *st, const struct relm_store_msg *m)
{
	const char *status = relm_status_name(m->status), *origin = relm_origin_name(m->origin);
	int rc;

	CHECK_WRITABLE(st);
	if (!status || !origin || !relm__store_text_ok(m->kind, RELM_STORE_KIND_MAX) ||
	    !relm__store_text_ok(m->reason, RELM_STORE_REASON_MAX) || m->body_len > INT32_MAX)
		return RELM_EINVAL;
	rc = Q_CHANGES(st, MSG_INS, A_ID(m->rel), A_ID(m->id), A_TEXT(m->direction_in ? "in" : "out"),
	               A_TEXT(origin), A_TEXT(m->kind[0] ? m->kind : "text"),
	               A_BLOB_IF(m->body != NULL, m->body, m->body_len), A_INT(m->ts), A_TEXT(status),
	               A_TEXT(m->reason[0] ? m->reason : NULL), A_INT(m->created));
	return rc < 0 ? rc : rc == 1;
}

/* One row of MSG_LIST / MSG_GET(_BODY) / MSG_ALL, checked as the API
 * checks what it takes in (check.c): 0, or RELM_EBADROW (reported). */
static int read_msg(const struct relm__q *q, struct relm_store_msg *m, int with_body)
{
	const char *dir = q_str(q, 3), *why = NULL;
	int o, s, rel_ok, id_ok;

	memset(m, 0, sizeof *m);
	m->seq = q_i64(q, 0);
	rel_ok = q_fixed(q, 1, m->rel, RELM_ID_LEN) == 0;
	id_ok = q_fixed(q, 2, m->id, RELM_ID_LEN) == 0;
	o = relm_origin_from_name(q_str(q, 4));
	s = relm_status_from_name(q_str(q, 8));
	if (!rel_ok || !id_ok)
		why = "an id is not 16 bytes";
	else if (!dir || (strcmp(dir, "in") != 0 && strcmp(dir, "out") != 0))
		why = "direction is neither in nor out";
	else if (o < 0)
		why = "origin is not an origin";
	else if (s < 0)
		why = "status is not a status";
	else if (!relm__col_text_ok(q, 5, RELM_STORE_KIND_MAX, 0) || !sqlite3_column_bytes(q->s, 5))
		why = "kind is not 1-31 bytes of UTF-8";
	else if (with_body && !q_isnull(q, 6) &&
	         (sqlite3_column_type(q->s, 6) != SQLITE_BLOB ||
	          (size_t)sqlite3_column_bytes(q->s, 6) > RELM_BODY_MAX ||
	          !relm_text_ok(sqlite3_column_blob(q->s, 6), (size_t)sqlite3_column_bytes(q->s, 6))))
		why = "body is not UTF-8 text within the limit";
	else if (!relm__col_text_ok(q, 9, RELM_STORE_REASON_MAX, 1))
		why = "reason is not UTF-8 text within the limit";
	else if (!relm__col_int_ok(q, 0) || !relm__col_int_ok(q, 7) || !relm__col_int_ok(q, 10) ||
	         !relm__col_int_ok(q, 11))
		why = "a time or number is not an integer";
	if (why)
		return relm__store_bad_row(q->st, "messages", m->seq, why, rel_ok ? m->rel : NULL,
		                           rel_ok && id_ok ? m->id : NULL, NULL, NULL);
	m->direction_in = strcmp(dir, "in") == 0;
	m->origin = o;
	m->status = s;
	q_textcpy(q, 5, m->kind, sizeof m->kind);
	if (with_body)
		m->body = q_blobv(q, 6, &m->body_len);
	m->ts = q_col_u64(q, 7);
	q_textcpy(q, 9, m->reason, sizeof m->reason);
	m->created = q_col_u64(q, 10);
	m->updated = q_col_u64(q, 11);
	return 0;
}

static int msg_walk(struct relm__q *q, int (*cb)(void *ctx, const struct relm_store_msg *m), void *ctx);

int relm_store_msg_list(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                        int64_t before, unsigned limit,
                        int (*cb)(void *ctx, const struct relm_store_msg *m), void *ctx)
{
	struct relm__q q;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, MSG_LIST, A_ID(rel), A_INT(before > 0 ? before : INT64_MAX),
	       A_INT(limit ? (int64_t)limit : -1));
	return msg_walk(&q, cb, ctx);
}

int relm_store_msg_list_after(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                              int64_t after, unsigned limit,
                              int (*cb)(void *ctx, const struct relm_store_msg *m), void *ctx)
{
	struct relm__q q;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, MSG_LIST_ASC, A_ID(rel), A_INT(after), A_INT(limit ? (int64_t)limit : -1));
	return msg_walk(&q, cb, ctx);
}

/* Rows of an open MSG_LIST(_ASC) to cb; damaged ones reported and left out. */
static int msg_walk(struct relm__q *q, int (*cb)(void *ctx, const struct relm_store_msg *m), void *ctx)
{
	struct relm_store_msg m;
	int rc;

	while ((rc = q_step(q)) > 0) {
		if ((rc = read_msg(q, &m, 1)) == RELM_EBADROW)
			continue;                      /* reported, and left out */
		if ((rc = cb(ctx, &m)) != 0)
			break;
	}
	return q_end(q, rc);
}

int relm__msg_scan(struct relm_store *st)
{
	struct relm_store_msg m;
	struct relm__q q;
	int rc;

	q_begin(&q, st, MSG_ALL);
	while ((rc = q_step(&q)) > 0)
		read_msg(&q, &m, 1);
	return q_end(&q, rc);
}

/* With body: *body is a copy with a NUL after it; the caller wipes it
 * (relm_store_buf_free). */
static int msg_get(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                   const uint8_t id[RELM_ID_LEN], struct relm_store_msg *out,
                   uint8_t **body, size_t *body_len)
{
	struct relm_store_msg m;
	struct relm__q q;
	uint8_t *b;
	int rc;

	CHECK_USABLE(st);
	if (body)
		Q_OPEN(&q, st, MSG_GET_BODY, A_ID(rel), A_ID(id));
	else
		Q_OPEN(&q, st, MSG_GET, A_ID(rel), A_ID(id));
	if ((rc = q_row(&q)) == 0)
		rc = read_msg(&q, &m, body != NULL);
	if (rc == 0 && body) {
		if (!(b = malloc(m.body_len + 1))) {
			rc = RELM_ENOMEM;
		} else {
			if (m.body_len)
				memcpy(b, m.body, m.body_len);
			b[m.body_len] = 0;
			*body = b;
			*body_len = m.body_len;
		}
	}
	if ((rc = q_end(&q, rc)) == 0) {
		m.body = NULL;
		m.body_len = 0;
		*out = m;
	}
	return rc;
}

int relm_store_msg_get(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                       const uint8_t id[RELM_ID_LEN], struct relm_store_msg *out)
{
	return msg_get(st, rel, id, out, NULL, NULL);
}

int relm_store_msg_get_body(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                            const uint8_t id[RELM_ID_LEN], struct relm_store_msg *out,
                            uint8_t **body, size_t *body_len)
{
	return msg_get(st, rel, id, out, body, body_len);
}

/* MSG_STATUS or MSG_ADVANCE, run with (rel, id, status, reason, now): the
 * rows changed, or an error (RELM_EINVAL for a status or reason out of
 * range). */
static int set_status(struct relm_store *st, const struct relm__sql *sql,
                      const uint8_t rel[RELM_ID_LEN], const uint8_t id[RELM_ID_LEN],
                      int status, const char *reason, uint64_t now_ms)
{
	const char *name = relm_status_name(status);

	CHECK_WRITABLE(st);
	if (!name || (reason && !relm__store_text_ok(reason, RELM_STORE_REASON_MAX)))
		return RELM_EINVAL;
	return q_run(st, sql, Q_ARGS(A_ID(rel), A_ID(id), A_TEXT(name),
	                             A_TEXT(reason && reason[0] ? reason : NULL), A_INT(now_ms)), 2);
}

int relm_store_msg_set_status(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                              const uint8_t id[RELM_ID_LEN], int status,
                              const char *reason, uint64_t now_ms)
{
	int rc = set_status(st, &sql_MSG_STATUS, rel, id, status, reason, now_ms);
	return rc == 0 ? RELM_ENOTFOUND : rc < 0 ? rc : 0;
}

int relm_store_msg_advance(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                           const uint8_t id[RELM_ID_LEN], int status, const char *reason,
                           uint64_t now_ms)
{
	int rc = set_status(st, &sql_MSG_ADVANCE, rel, id, status, reason, now_ms);
	return rc < 0 ? rc : rc == 1;
}

int relm_store_msg_advance_many(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                                const uint8_t (*ids)[RELM_ID_LEN], size_t n, int status,
                                uint64_t now_ms, uint8_t *moved)
{
	const char *name = relm_status_name(status);
	struct relm__arg a[4 + RELM_STORE_MANY];
	struct relm__q q;
	int rc;

	CHECK_WRITABLE(st);
	if (!name || n > RELM_STORE_MANY)
		return RELM_EINVAL;
	memset(moved, 0, n);
	memset(a, 0, sizeof a);                       /* unused ids: NULL, matching nothing */
	a[0] = (struct relm__arg)A_ID(rel);
	a[1] = (struct relm__arg)A_NULL;              /* ?2 unused: the same numbering as MSG_ADVANCE */
	a[2] = (struct relm__arg)A_TEXT(name);
	a[3] = (struct relm__arg)A_INT(now_ms);
	for (size_t i = 0; i < n; i++)
		a[4 + i] = (struct relm__arg)A_ID(ids[i]);
	q_begin(&q, st, MSG_ADVANCE_MANY);
	q_args(&q, a, sizeof a / sizeof a[0]);
	while ((rc = q_step(&q)) > 0) {
		size_t len;
		const uint8_t *id = q_blobv(&q, 0, &len);
		for (size_t i = 0; id && len == RELM_ID_LEN && i < n; i++)
			if (memcmp(ids[i], id, RELM_ID_LEN) == 0)
				moved[i] = 1;
	}
	return q_end(&q, rc);
}

int relm_store_history_has(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                           const uint8_t id[RELM_ID_LEN])
{
	struct relm__q q;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, MSG_HAS, A_ID(rel), A_ID(id));
	return q_end(&q, q_step(&q));        /* 1 a row, 0 none, or an error */
}

int relm_store_history_has_cb(void *ctx, const uint8_t rel[16], const uint8_t msg_id[16])
{
	return relm_store_history_has(ctx, rel, msg_id);
}

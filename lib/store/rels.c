/*
 * rels.c — relationships (the row, its staged columns, the timers) and the
 * envelopes kept pending for them.
 *
 * A relationship's state blob, last_activity, deadline and unread are
 * staged during a transaction (stage.c): the setters here write
 * the staging entry, and every reader overlays it, so the file's stale
 * values are never seen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "store/store_int.h"

/* Schema v12: the mailbox secret key and the remote's mailbox address are
 * only in the state blob (the engine's mbox_sk and remote_mailbox), which
 * the store does not read; lib/core takes them from there. */
RELM__SQL(REL_PUT, "INSERT INTO relationships(id,proton,label,remote_ipk,mode,mailbox_id,created,last_activity,unread,state) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)");
RELM__SQL(REL_GET, "SELECT id,proton,label,remote_ipk,mode,mailbox_id,created,last_activity,unread,rowid FROM relationships WHERE id=?1");
/* the state by its own statement: a plain get never reads the state's
 * overflow pages or copies a secret it was not asked for */
RELM__SQL(REL_GET_STATE, "SELECT state FROM relationships WHERE id=?1");
RELM__SQL(REL_BY_MBOX, "SELECT id FROM relationships WHERE mailbox_id=?1");
RELM__SQL(REL_STATE_BY_MBOX, "SELECT id, state FROM relationships WHERE mailbox_id=?1");
/* relationships_by_remote holds the key's first 8 bytes (v12): the term on
 * substr() picks the index, the others check the row */
RELM__SQL(REL_BY_REMOTE, "SELECT id FROM relationships WHERE substr(remote_ipk,1,8)=substr(?2,1,8)"
                         " AND proton=?1 AND remote_ipk=?2"
                         " AND id NOT IN (SELECT rel FROM sibling_sessions) LIMIT 1");
RELM__SQL(REL_LIST, "SELECT id,proton,label,remote_ipk,mode,mailbox_id,created,last_activity,unread,rowid FROM relationships WHERE proton=?1 AND id>?2"
                    " AND id NOT IN (SELECT rel FROM sibling_sessions) ORDER BY proton,id LIMIT ?3");
RELM__SQL(REL_ALL, "SELECT id,proton,label,remote_ipk,mode,mailbox_id,created,last_activity,unread,rowid FROM relationships");
RELM__SQL(REL_DUE, "SELECT id,deadline FROM relationships WHERE deadline>0 AND deadline<=?1 ORDER BY deadline LIMIT ?2");
RELM__SQL(REL_NEXT_DEADLINE, "SELECT min(deadline) FROM relationships WHERE deadline>0");
RELM__SQL(REL_DEADLINES, "SELECT id,deadline FROM relationships WHERE deadline>0 ORDER BY deadline");
RELM__SQL(REL_DEL, "DELETE FROM relationships WHERE id=?1");
RELM__SQL(REL_REMOTE_IPK, "UPDATE relationships SET remote_ipk=?2 WHERE id=?1");
RELM__SQL(PENDING_ADD, "INSERT OR IGNORE INTO pending(rel,hash,bytes,received_ms) VALUES(?1,?2,?3,?4)");
RELM__SQL(PENDING_DEL, "DELETE FROM pending WHERE rel=?1 AND hash=?2");
RELM__SQL(PENDING_LIST, "SELECT hash,bytes,received_ms FROM pending WHERE rel=?1 ORDER BY received_ms,hash");

/* ---- the row ---------------------------------------------------------- */

int relm_store_rel_put(struct relm_store *st, const struct relm_store_rel *r)
{
	CHECK_WRITABLE(st);
	if (!relm__store_text_ok(r->label, RELM_STORE_LABEL_MAX) || r->state_len > INT32_MAX)
		return RELM_EINVAL;
	return Q_EXEC(st, REL_PUT, A_ID(r->id), A_ID(r->proton), A_TEXT(r->label),
	              A_BLOB(r->remote_ipk, RELM_SIGN_PK_LEN), A_INT(r->mode),
	              A_BLOB(r->mailbox_id, RELM_SIGN_PK_LEN), A_INT(r->created), A_INT(r->last_activity),
	              A_INT(r->unread), A_BLOB(r->state, r->state_len));
}

/* The columns of REL_GET / REL_LIST / REL_ALL, checked (check.c), with
 * the staged ones over them: 0 or RELM_EBADROW (reported). */
static int read_rel(struct relm_store *st, const struct relm__q *q, struct relm_store_rel *r)
{
	const char *why = NULL;
	int id_ok, proton_ok;

	memset(r, 0, sizeof *r);
	id_ok = q_fixed(q, 0, r->id, RELM_ID_LEN) == 0;
	proton_ok = q_fixed(q, 1, r->proton, RELM_ID_LEN) == 0;
	if (!id_ok || !proton_ok || q_fixed(q, 3, r->remote_ipk, RELM_SIGN_PK_LEN) ||
	    q_fixed(q, 5, r->mailbox_id, RELM_SIGN_PK_LEN))
		why = "an id or key is not of its size";
	else if (!relm__col_text_ok(q, 2, RELM_STORE_LABEL_MAX, 0))
		why = "label is not UTF-8 text within the limit";
	else if (!relm__col_int_ok(q, 4) || !relm__col_int_ok(q, 6) || !relm__col_int_ok(q, 7) ||
	         !relm__col_int_ok(q, 8))
		why = "a number is not an integer";
	if (why)
		return relm__store_bad_row(st, "relationships", q_i64(q, 9), why, id_ok ? r->id : NULL,
		                           NULL, proton_ok ? r->proton : NULL, NULL);
	q_textcpy(q, 2, r->label, sizeof r->label);
	r->mode = (int)q_i64(q, 4);
	r->created = q_col_u64(q, 6);
	r->last_activity = q_col_u64(q, 7);
	r->unread = (uint32_t)q_col_u64(q, 8);
	relm__stage_overlay(&st->stage, r);
	return 0;
}

int relm__rel_scan(struct relm_store *st)
{
	struct relm_store_rel r;
	struct relm__q q;
	int rc;

	q_begin(&q, st, REL_ALL);
	while ((rc = q_step(&q)) > 0)
		read_rel(st, &q, &r);
	sodium_memzero(&r, sizeof r);
	return q_end(&q, rc);
}

/* *out = a malloc'd copy of n bytes at p (at least one byte allocated). */
static int dup_blob(const uint8_t *p, size_t n, uint8_t **out, size_t *len)
{
	if (!(*out = malloc(n ? n : 1)))
		return RELM_ENOMEM;
	if (n)
		memcpy(*out, p, n);
	*len = n;
	return 0;
}

static int get_state(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                     uint8_t **state, size_t *len)
{
	const struct relm__stage_ent *e = relm__stage_find(&st->stage, id);
	const uint8_t *p;
	struct relm__q q;
	size_t n;
	int rc;

	if (e && (e->mask & RELM__STAGE_STATE))   /* staged in this transaction: the file's is stale */
		return dup_blob(e->state, e->state_len, state, len);
	Q_OPEN(&q, st, REL_GET_STATE, A_ID(id));
	if ((rc = q_row(&q)) == 0) {
		p = q_blobv(&q, 0, &n);
		rc = dup_blob(p, n, state, len);
	}
	return q_end(&q, rc);
}

int relm_store_rel_get(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                       struct relm_store_rel *out, unsigned flags)
{
	struct relm_store_rel r;
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, REL_GET, A_ID(id));
	if ((rc = q_row(&q)) == 0)
		rc = read_rel(st, &q, &r);
	if ((rc = q_end(&q, rc)) != 0)
		return rc;
	if (flags & RELM_STORE_WITH_STATE)
		rc = get_state(st, id, &r.state, &r.state_len);
	if (rc) {
		relm_store_rel_clear(&r);
		return rc;
	}
	*out = r;
	sodium_memzero(&r, sizeof r);
	return 0;
}

int relm_store_rel_by_mailbox(struct relm_store *st, const uint8_t mailbox_id[RELM_SIGN_PK_LEN],
                              uint8_t rel[RELM_ID_LEN])
{
	uint8_t id[RELM_ID_LEN];
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, REL_BY_MBOX, A_BLOB(mailbox_id, RELM_SIGN_PK_LEN));
	if ((rc = q_row(&q)) == 0 && (rc = q_fixed(&q, 0, id, RELM_ID_LEN)) == 0)
		memcpy(rel, id, RELM_ID_LEN);
	return q_end(&q, rc);
}

int relm_store_rel_state_by_mailbox(struct relm_store *st, const uint8_t mailbox_id[RELM_SIGN_PK_LEN],
                                    uint8_t rel[RELM_ID_LEN], uint8_t **state, size_t *len)
{
	const struct relm__stage_ent *e;
	const uint8_t *p;
	uint8_t id[RELM_ID_LEN];
	struct relm__q q;
	size_t n;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, REL_STATE_BY_MBOX, A_BLOB(mailbox_id, RELM_SIGN_PK_LEN));
	if ((rc = q_row(&q)) == 0 && (rc = q_fixed(&q, 0, id, RELM_ID_LEN)) == 0) {
		e = relm__stage_find(&st->stage, id);
		if (e && (e->mask & RELM__STAGE_STATE)) {   /* staged: the file's is stale */
			rc = dup_blob(e->state, e->state_len, state, len);
		} else {
			p = q_blobv(&q, 1, &n);
			rc = dup_blob(p, n, state, len);
		}
		if (rc == 0)
			memcpy(rel, id, RELM_ID_LEN);
	}
	return q_end(&q, rc);
}

int relm_store_rel_by_remote(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                             const uint8_t remote_ipk[RELM_SIGN_PK_LEN], uint8_t rel[RELM_ID_LEN])
{
	uint8_t id[RELM_ID_LEN];
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, REL_BY_REMOTE, A_ID(proton), A_BLOB(remote_ipk, RELM_SIGN_PK_LEN));
	if ((rc = q_row(&q)) == 0 && (rc = q_fixed(&q, 0, id, RELM_ID_LEN)) == 0)
		memcpy(rel, id, RELM_ID_LEN);
	return q_end(&q, rc);
}

int relm_store_rel_list(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                        const uint8_t after[RELM_ID_LEN], unsigned limit,
                        int (*cb)(void *ctx, const struct relm_store_rel *r), void *ctx)
{
	struct relm_store_rel r;
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	/* an empty BLOB sorts before every id */
	Q_OPEN(&q, st, REL_LIST, A_ID(proton), A_BLOB(after, after ? RELM_ID_LEN : 0),
	       A_INT(limit ? (int64_t)limit : -1));
	while ((rc = q_step(&q)) > 0) {
		if ((rc = read_rel(st, &q, &r)) == RELM_EBADROW)
			continue;                      /* reported, and left out */
		if ((rc = cb(ctx, &r)) != 0)
			break;
	}
	return q_end(&q, rc);
}

void relm_store_rel_clear(struct relm_store_rel *r)
{
	if (!r)
		return;
	relm_store_buf_free(r->state, r->state_len);
	sodium_memzero(r, sizeof *r);
}

/* ---- the staged columns -------------------------------------------------- */

/* Nothing is written until the transaction commits, and every reader sees
 * the staged values. */
int relm_store_rel_set_state(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                             const uint8_t *state, size_t len, uint64_t last_activity)
{
	struct relm__stage_ent *e;
	int err;

	CHECK_WRITABLE(st);
	/* refused now rather than at the write-back, where any failure is
	 * the sticky end of the whole transaction (the row's other columns
	 * take well under 4 KiB) */
	if (len > INT32_MAX || len + 4096 > (size_t)sqlite3_limit(st->db, SQLITE_LIMIT_LENGTH, -1))
		return RELM_EINVAL;
	if ((err = relm__stage_touch(st, id, &e)) != 0 ||
	    (err = relm__stage_set_state(e, state, len)) != 0)
		return err;
	e->last_activity = last_activity;
	e->mask |= RELM__STAGE_STATE;
	return 0;
}

int relm_store_rel_delete(struct relm_store *st, const uint8_t id[RELM_ID_LEN])
{
	struct relm__stage_ent *e;
	int err;

	CHECK_WRITABLE(st);
	/* Nothing staged for a row that is gone may be written back or seen
	 * by a reader (a due deadline): the entry is cleared, through the
	 * undo log, so a rolled-back step gets it back. */
	if (relm__stage_find(&st->stage, id)) {
		if ((err = relm__stage_touch(st, id, &e)) != 0)
			return err;
		e->mask = 0;
		e->unread_add = 0;
		e->out_add = 0;
	}
	return Q_EXEC_ONE(st, REL_DEL, A_ID(id));
}

int relm_store_rel_set_remote_ipk(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                                  const uint8_t ipk[RELM_SIGN_PK_LEN])
{
	CHECK_WRITABLE(st);
	return Q_EXEC_ONE(st, REL_REMOTE_IPK, A_ID(id), A_BLOB(ipk, RELM_SIGN_PK_LEN));
}

int relm_store_rel_set_unread(struct relm_store *st, const uint8_t id[RELM_ID_LEN], uint32_t unread)
{
	struct relm__stage_ent *e;
	int err;

	CHECK_WRITABLE(st);
	if ((err = relm__stage_touch(st, id, &e)) != 0)
		return err;
	e->unread = unread;
	e->unread_add = 0;
	e->mask |= RELM__STAGE_UNREAD;
	return 0;
}

int relm_store_rel_inc_unread(struct relm_store *st, const uint8_t id[RELM_ID_LEN])
{
	struct relm__stage_ent *e;
	int err;

	CHECK_WRITABLE(st);
	if ((err = relm__stage_touch(st, id, &e)) != 0)
		return err;
	e->unread_add++;
	return 0;
}

int relm_store_rel_set_deadline(struct relm_store *st, const uint8_t id[RELM_ID_LEN], uint64_t deadline_ms)
{
	struct relm__stage_ent *e;
	int err;

	CHECK_WRITABLE(st);
	if (deadline_ms > INT64_MAX)
		return RELM_EINVAL;
	if ((err = relm__stage_touch(st, id, &e)) != 0)
		return err;
	e->deadline = deadline_ms;
	e->mask |= RELM__STAGE_DL;
	return 0;
}

/* ---- timers ------------------------------------------------------------- */

/* Deadline queries merge the file's partial index with the staged
 * deadlines (whose rows' file values are stale and skipped): exact inside
 * an open step too, and nothing is written early. */

/* The next row (id, deadline) of q whose deadline is not staged: 1, 0 at
 * the end, or a negative error. */
static int due_row(struct relm_store *st, struct relm__q *q, int skip_staged,
                   uint8_t id[RELM_ID_LEN], uint64_t *dl)
{
	const struct relm__stage_ent *e;
	int rc;

	while ((rc = q_step(q)) > 0) {
		if (q_fixed(q, 0, id, RELM_ID_LEN) != 0)
			return RELM_ESTATE;
		*dl = q_col_u64(q, 1);
		if (!skip_staged || !(e = relm__stage_find(&st->stage, id)) || !(e->mask & RELM__STAGE_DL))
			return 1;
	}
	return rc;
}

int relm_store_rel_due(struct relm_store *st, uint64_t now_ms, unsigned limit,
                       int (*cb)(void *ctx, const uint8_t id[RELM_ID_LEN]), void *ctx)
{
	struct relm__dl_item *sd;
	struct relm__q q;
	uint8_t id[RELM_ID_LEN];
	uint64_t dl = 0, now = now_ms > INT64_MAX ? INT64_MAX : now_ms;
	size_t nsd, i = 0;
	unsigned emitted = 0;
	int err = 0, any, have;

	CHECK_USABLE(st);
	if ((err = relm__stage_deadlines(&st->stage, now, &sd, &nsd, &any)) != 0)
		return err;
	/* skipped stale rows would count against a LIMIT in SQL */
	Q_OPEN(&q, st, REL_DUE, A_INT(now), A_INT(limit && !any ? (int64_t)limit : -1));
	have = due_row(st, &q, any, id, &dl);
	while (have >= 0 && (!limit || emitted < limit)) {
		if (have == 1 && (i == nsd || dl <= sd[i].dl)) {
			if ((err = cb(ctx, id)) != 0)
				break;
			have = due_row(st, &q, any, id, &dl);
		} else if (i < nsd) {
			if ((err = cb(ctx, sd[i++].id)) != 0)
				break;
		} else {
			break;
		}
		emitted++;
	}
	if (!err && have < 0)
		err = have;
	free(sd);
	return q_end(&q, err);
}

int relm_store_next_deadline(struct relm_store *st, uint64_t *next)
{
	const struct relm__stage *sg = &st->stage;
	struct relm__q q;
	uint8_t id[RELM_ID_LEN];
	uint64_t staged = 0, dl = 0;
	int rc, any = 0;

	CHECK_USABLE(st);
	for (uint32_t i = 0; i < sg->n; i++) {
		const struct relm__stage_ent *e = &sg->ents[i];
		if (!(e->mask & RELM__STAGE_DL))
			continue;
		any = 1;
		if (e->deadline && (!staged || e->deadline < staged))
			staged = e->deadline;
	}
	if (any) {
		/* the earliest row whose deadline is not staged, against the staged */
		q_begin(&q, st, REL_DEADLINES);
		if ((rc = q_end(&q, due_row(st, &q, 1, id, &dl))) < 0)
			return rc;
		*next = rc == 0 || (staged && staged < dl) ? staged : dl;
		return 0;
	}
	q_begin(&q, st, REL_NEXT_DEADLINE);
	if ((rc = q_row(&q)) == 0)
		*next = q_col_u64(&q, 0);   /* NULL reads as 0: none */
	return q_end(&q, rc);
}

/* ---- pending envelopes ----------------------------------------------------- */

int relm_store_pending_add(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                           const uint8_t hash[RELM_ID_LEN], const uint8_t *bytes, size_t len,
                           uint64_t received_ms)
{
	int rc;

	CHECK_WRITABLE(st);
	if (len > RELM_ENVELOPE_MAX)
		return RELM_ETOOBIG;
	rc = Q_CHANGES(st, PENDING_ADD, A_ID(rel), A_ID(hash), A_BLOB(bytes, len), A_INT(received_ms));
	return rc == 0 ? RELM_EDUP : rc < 0 ? rc : 0;         /* ignored: already pending */
}

int relm_store_pending_del(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                           const uint8_t hash[RELM_ID_LEN])
{
	CHECK_WRITABLE(st);
	return Q_EXEC_ONE(st, PENDING_DEL, A_ID(rel), A_ID(hash));
}

int relm_store_pending_list(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                            int (*cb)(void *ctx, const uint8_t hash[RELM_ID_LEN],
                                      const uint8_t *bytes, size_t len, uint64_t received_ms),
                            void *ctx)
{
	uint8_t h[RELM_ID_LEN];
	const uint8_t *b;
	struct relm__q q;
	size_t n;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, PENDING_LIST, A_ID(rel));
	while ((rc = q_step(&q)) > 0) {
		b = q_blobv(&q, 1, &n);
		if ((rc = q_fixed(&q, 0, h, RELM_ID_LEN)) != 0 ||
		    (rc = cb(ctx, h, b, n, q_col_u64(&q, 2))) != 0)
			break;
	}
	return q_end(&q, rc);
}

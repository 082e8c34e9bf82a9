/*
 * outbox.c — envelopes waiting to be posted (in commit order), the cursor
 * of every mailbox we read, and the list of those mailboxes with the
 * secret keys that sign their subscriptions.
 */
#include <string.h>
#include <sodium.h>
#include "store/store_int.h"

RELM__SQL(OUTBOX_ADD, "INSERT INTO outbox(rel,dest,bytes,msg_id,state,created) VALUES(?1,?2,?3,?4,'queued',?5)");
RELM__SQL(OUTBOX_NEXT, "SELECT seq,rel,dest,bytes,msg_id,created FROM outbox WHERE state='queued' AND seq>?1 ORDER BY seq LIMIT ?2");
RELM__SQL(OUTBOX_POSTED, "UPDATE outbox SET state='posted', posted=coalesce(posted,?2) WHERE seq=?1");
RELM__SQL(OUTBOX_PURGE, "DELETE FROM outbox WHERE state='posted'");
/* the oldest first: rows are posted in about the order they were queued,
 * so the scan in seq order meets posted rows before the queued ones */
RELM__SQL(OUTBOX_PURGE_SOME, "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE state='posted' ORDER BY seq LIMIT ?1)");
RELM__SQL(CURSOR_GET, "SELECT cursor FROM cursors WHERE mailbox=?1");
RELM__SQL(CURSOR_SET, "INSERT INTO cursors(mailbox,cursor) VALUES(?1,?2) ON CONFLICT(mailbox) DO UPDATE SET cursor=excluded.cursor");
/* the mailboxes of relationships (but those held without state: a fanout
 * non-hub reads none, devices.md §11.4), of invites not expired, this device's
 * device mailboxes (proto/devices.md §3) and the pairing mailboxes of
 * pairings that still wait for something (§12.8: not J once joined).  The
 * relationships' part reads the mailbox_id index alone (covering): the
 * stateless ones are excluded by their mailbox ids, a list made once,
 * not by a probe per row with its id, which read every row of the table
 * (2.7 s instead of 0.35 s of start-up at a million relationships). */
RELM__SQL(MBOX_LIST, "SELECT r.mailbox_id, coalesce(c.cursor,0) FROM relationships r LEFT JOIN cursors c ON c.mailbox=r.mailbox_id"
                     " WHERE r.mailbox_id NOT IN (SELECT r2.mailbox_id FROM stateless s JOIN relationships r2 ON r2.id=s.rel)"
                     " UNION ALL SELECT i.mailbox_id, coalesce(c.cursor,0) FROM invites i LEFT JOIN cursors c ON c.mailbox=i.mailbox_id WHERE i.expires>=?1"
                     " UNION ALL SELECT k.mailbox_id, coalesce(c.cursor,0) FROM device_keys k LEFT JOIN cursors c ON c.mailbox=k.mailbox_id"
                     " UNION ALL SELECT p.mailbox, coalesce(c.cursor,0) FROM pairings p LEFT JOIN cursors c ON c.mailbox=p.mailbox"
                     " WHERE p.state='offered' OR p.state='welcomed' OR p.state='joining'");
RELM__SQL(MBOX_SECRET, "SELECT mailbox_sk FROM invites WHERE mailbox_id=?1"
                       " UNION ALL SELECT mailbox_sk FROM device_keys WHERE mailbox_id=?1"
                       " UNION ALL SELECT mailbox_sk FROM pairings WHERE mailbox=?1 LIMIT 1");

/* ---- outbox ------------------------------------------------------------ */

int relm_store_outbox_add(struct relm_store *st, const struct relm_store_outbox *o, int64_t *seq_out)
{
	int rc;

	CHECK_WRITABLE(st);
	if (!relm__store_text_ok(o->dest, RELM_MAILBOX_ADDR_MAX) || !o->dest[0] || o->len > RELM_ENVELOPE_MAX)
		return RELM_EINVAL;
	rc = Q_EXEC(st, OUTBOX_ADD, A_BLOB_IF(o->has_rel, o->rel, RELM_ID_LEN), A_TEXT(o->dest),
	            A_BLOB(o->bytes, o->len), A_BLOB_IF(o->has_msg, o->msg_id, RELM_ID_LEN), A_INT(o->created));
	if (rc == 0 && seq_out)
		*seq_out = sqlite3_last_insert_rowid(st->db);
	return rc;
}

static int read_outbox(const struct relm__q *q, struct relm_store_outbox *o)
{
	memset(o, 0, sizeof *o);
	o->seq = q_i64(q, 0);
	if (!q_isnull(q, 1)) {
		if (q_fixed(q, 1, o->rel, RELM_ID_LEN) != 0)
			return RELM_ESTATE;
		o->has_rel = 1;
	}
	q_textcpy(q, 2, o->dest, sizeof o->dest);
	o->bytes = q_blobv(q, 3, &o->len);
	if (!q_isnull(q, 4)) {
		if (q_fixed(q, 4, o->msg_id, RELM_ID_LEN) != 0)
			return RELM_ESTATE;
		o->has_msg = 1;
	}
	o->created = q_col_u64(q, 5);
	return 0;
}

int relm_store_outbox_next(struct relm_store *st, int64_t after, unsigned limit,
                           int (*cb)(void *ctx, const struct relm_store_outbox *o), void *ctx)
{
	struct relm_store_outbox o;
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, OUTBOX_NEXT, A_INT(after), A_INT(limit ? (int64_t)limit : -1));
	while ((rc = q_step(&q)) > 0)
		if ((rc = read_outbox(&q, &o)) != 0 || (rc = cb(ctx, &o)) != 0)
			break;
	return q_end(&q, rc);
}

int relm_store_outbox_mark_posted(struct relm_store *st, int64_t seq, uint64_t now_ms)
{
	CHECK_WRITABLE(st);
	return Q_EXEC_ONE(st, OUTBOX_POSTED, A_INT(seq), A_INT(now_ms));
}

int relm_store_outbox_purge_posted(struct relm_store *st, unsigned limit)
{
	CHECK_WRITABLE(st);
	if (limit)
		return Q_CHANGES(st, OUTBOX_PURGE_SOME, A_INT(limit));
	return q_run(st, &sql_OUTBOX_PURGE, NULL, 0, 2);
}

/* ---- cursors ------------------------------------------------------------- */

int relm_store_cursor_get(struct relm_store *st, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                          uint64_t *cursor)
{
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, CURSOR_GET, A_BLOB(mailbox, RELM_SIGN_PK_LEN));
	if ((rc = q_step(&q)) >= 0) {
		*cursor = rc ? q_col_u64(&q, 0) : 0;
		rc = 0;
	}
	return q_end(&q, rc);
}

int relm_store_cursor_set(struct relm_store *st, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                          uint64_t cursor)
{
	CHECK_WRITABLE(st);
	return Q_EXEC(st, CURSOR_SET, A_BLOB(mailbox, RELM_SIGN_PK_LEN), A_INT(cursor));
}

/* ---- the mailboxes we read ------------------------------------------------- */

int relm_store_mailbox_list(struct relm_store *st, uint64_t now_ms,
                            int (*cb)(void *ctx, const uint8_t id[RELM_SIGN_PK_LEN], uint64_t cursor),
                            void *ctx)
{
	uint8_t id[RELM_SIGN_PK_LEN];
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, MBOX_LIST, A_INT(now_ms > INT64_MAX ? INT64_MAX : now_ms));
	while ((rc = q_step(&q)) > 0)
		if ((rc = q_fixed(&q, 0, id, sizeof id)) != 0 || (rc = cb(ctx, id, q_col_u64(&q, 1))) != 0)
			break;
	return q_end(&q, rc);
}

int relm_store_mailbox_secret(struct relm_store *st, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                              uint8_t sk[RELM_SIGN_SK_LEN])
{
	uint8_t k[RELM_SIGN_SK_LEN];
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, MBOX_SECRET, A_BLOB(mailbox, RELM_SIGN_PK_LEN));
	if ((rc = q_row(&q)) == 0)
		rc = q_fixed(&q, 0, k, sizeof k);
	if ((rc = q_end(&q, rc)) == 0)
		memcpy(sk, k, sizeof k);
	sodium_memzero(k, sizeof k);
	return rc;
}

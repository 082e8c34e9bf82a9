/*
 * events.c — the event log that `subscribe {since}` replays: typed records
 * (engine/event.h), numbered by an AUTOINCREMENT seq that is never reused,
 * trimmed to a count.
 *
 * Each field of struct relm_event has a column, NULL when the record does
 * not carry it.  The shape is checked before the insert (relm_event_check),
 * so a row holds exactly what its type allows.  Reading is lenient: a
 * column that does not hold what its field needs (a damaged file, or a row
 * migrated from v5 whose JSON said something else) is left out of the
 * record rather than failing the whole replay.
 */
#include <string.h>
#include "store/store_int.h"

RELM__SQL(EVENT_ADD, "INSERT INTO events(type,ts,rel,msg,node,proton,device,ipk,mailbox,mailbox_seq,envelope,epoch,pruned,status,code,reason,tbl,row) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18)");
RELM__SQL(EVENT_TRIM, "DELETE FROM events WHERE seq<=?1");
RELM__SQL(EVENT_TRIM_KEEP, "DELETE FROM events WHERE seq<=(SELECT max(seq) FROM events)-?1");
RELM__SQL(EVENT_LIST, "SELECT seq,type,ts,rel,msg,node,proton,device,ipk,mailbox,mailbox_seq,envelope,epoch,pruned,status,code,reason,tbl,row FROM events WHERE seq>?1 ORDER BY seq LIMIT ?2");
RELM__SQL(EVENT_BOUNDS, "SELECT (SELECT min(seq) FROM events), (SELECT seq FROM sqlite_sequence WHERE name='events')");

/* The id- and key-sized fields, in column order from `rel` on (EVENT_ADD
 * parameter 3, EVENT_LIST column 3). */
#define EV_BLOBS(X) \
	X(RELM_EVF_REL, rel) X(RELM_EVF_MSG, msg) X(RELM_EVF_NODE, node) \
	X(RELM_EVF_PROTON, proton) X(RELM_EVF_DEVICE, device) X(RELM_EVF_IPK, ipk) \
	X(RELM_EVF_MAILBOX, mailbox)

/* Field f of ev as a parameter, or NULL when ev does not carry it. */
#define EV_BLOB(bit, f) A_BLOB_IF(ev->has & (bit), ev->f, sizeof ev->f)
#define EV_INT(bit, f)  { .kind = ev->has & (bit) ? RELM__A_INT : RELM__A_NULL, .v = (int64_t)ev->f }
#define EV_TEXT(bit, s) A_TEXT(ev->has & (bit) ? (s) : NULL)

int relm_store_event_append(struct relm_store *st, const struct relm_event *ev,
                            uint64_t ts, int64_t *seq_out)
{
	int64_t seq;
	int rc;

	CHECK_WRITABLE(st);
	if (relm_event_check(ev) != 0 || ((ev->has & RELM_EVF_ROW) && ev->row > INT64_MAX))
		return RELM_EINVAL;
	rc = Q_EXEC(st, EVENT_ADD, A_TEXT(relm_event_name(ev->type)), A_INT(ts),
	            EV_BLOB(RELM_EVF_REL, rel), EV_BLOB(RELM_EVF_MSG, msg), EV_BLOB(RELM_EVF_NODE, node),
	            EV_BLOB(RELM_EVF_PROTON, proton), EV_BLOB(RELM_EVF_DEVICE, device),
	            EV_BLOB(RELM_EVF_IPK, ipk), EV_BLOB(RELM_EVF_MAILBOX, mailbox),
	            EV_INT(RELM_EVF_MBOX_SEQ, mailbox_seq), EV_BLOB(RELM_EVF_ENVELOPE, envelope),
	            EV_INT(RELM_EVF_EPOCH, epoch), EV_INT(RELM_EVF_PRUNED, pruned),
	            EV_TEXT(RELM_EVF_STATUS, relm_status_name(ev->status)),
	            EV_TEXT(RELM_EVF_CODE, relm_errname(ev->code)), EV_TEXT(RELM_EVF_REASON, ev->reason),
	            EV_TEXT(RELM_EVF_TABLE, ev->table), EV_INT(RELM_EVF_ROW, row));
	if (rc != 0)
		return rc;
	seq = sqlite3_last_insert_rowid(st->db);
	relm__evmem_append(st, seq, ts, ev);
	/* Retention by count, once per transaction, just before its COMMIT
	 * (relm__event_trim_flush): a DELETE per event was a statement, its
	 * page writes and secure_delete's zeroing for every event of a busy
	 * daemon, three per message sent.  Other connections never see more
	 * than `keep`; this one may, inside its own transaction. */
	if (seq > (int64_t)st->event_keep)
		st->event_trim_due = 1;
	if (seq_out)
		*seq_out = seq;
	return 0;
}

int relm__event_trim_flush(struct relm_store *st)
{
	if (!st->event_trim_due)
		return 0;
	/* seq is dense (AUTOINCREMENT, never reused), so the newest `keep`
	 * events are exactly seq > max(seq) - keep; a step rolled back since
	 * the flag was set took its events with it, and max(seq) says so */
	st->event_trim_due = 0;
	return Q_EXEC(st, EVENT_TRIM_KEEP, A_INT(st->event_keep));
}

/* An integer column into *v (>= 0) and its bit into has. */
static void read_uint(const struct relm__q *q, int col, unsigned bit, uint64_t *v, unsigned *has)
{
	if (sqlite3_column_type(q->s, col) == SQLITE_INTEGER && q_i64(q, col) >= 0) {
		*v = q_col_u64(q, col);
		*has |= bit;
	}
}

static void read_event(const struct relm__q *q, struct relm_event *ev)
{
	unsigned need, may;
	uint64_t v = 0;
	int i;

	relm_event_init(ev, relm_event_type(q_str(q, 1)));
	if (ev->type < 0)
		ev->type = RELM_EV_NONE;        /* a type this build does not know */
	i = 3;
#define X(bit, f) if (q_fixed(q, i++, ev->f, sizeof ev->f) == 0) ev->has |= bit;
	EV_BLOBS(X)
#undef X
	read_uint(q, 10, RELM_EVF_MBOX_SEQ, &ev->mailbox_seq, &ev->has);
	if (q_fixed(q, 11, ev->envelope, sizeof ev->envelope) == 0)
		ev->has |= RELM_EVF_ENVELOPE;
	read_uint(q, 12, RELM_EVF_EPOCH, &ev->epoch, &ev->has);
	read_uint(q, 13, RELM_EVF_PRUNED, &v, &ev->has);
	ev->pruned = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
	if ((ev->status = relm_status_from_name(q_str(q, 14))) >= 0)
		ev->has |= RELM_EVF_STATUS;
	else
		ev->status = 0;
	if ((ev->code = relm_errcode(q_str(q, 15))) != 0)
		ev->has |= RELM_EVF_CODE;
	if ((ev->reason = q_str(q, 16)) != NULL)
		ev->has |= RELM_EVF_REASON;
	if ((ev->table = q_str(q, 17)) != NULL)
		ev->has |= RELM_EVF_TABLE;
	read_uint(q, 18, RELM_EVF_ROW, &ev->row, &ev->has);
	/* only what the type may carry, whatever the row holds */
	relm_event_fields(ev->type, &need, &may);
	ev->has &= need | may;
}

int relm_store_event_list(struct relm_store *st, int64_t since, unsigned limit,
                          int (*cb)(void *ctx, int64_t seq, uint64_t ts,
                                    const struct relm_event *ev), void *ctx)
{
	struct relm_event ev;
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, EVENT_LIST, A_INT(since), A_INT(limit ? (int64_t)limit : -1));
	while ((rc = q_step(&q)) > 0) {
		read_event(&q, &ev);
		if ((rc = cb(ctx, q_i64(&q, 0), q_col_u64(&q, 2), &ev)) != 0)
			break;
	}
	return q_end(&q, rc);
}

int relm_store_event_bounds(struct relm_store *st, int64_t *oldest, int64_t *last)
{
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	q_begin(&q, st, EVENT_BOUNDS);
	if ((rc = q_row(&q)) == 0) {
		*oldest = q_i64(&q, 0);
		*last = q_i64(&q, 1);
	}
	return q_end(&q, rc);
}

int relm_store_event_trim(struct relm_store *st, uint32_t keep)
{
	int64_t oldest = 0, last = 0;
	int rc;

	CHECK_WRITABLE(st);
	if ((rc = relm_store_event_bounds(st, &oldest, &last)) != 0)
		return rc;
	if (last <= (int64_t)keep)
		return 0;
	return Q_CHANGES(st, EVENT_TRIM, A_INT(last - (int64_t)keep));
}

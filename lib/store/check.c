/*
 * check.c — what the store reads back is checked like input (proto/store.md
 * §5.1), and the check a daemon runs on demand (relm_store_check).
 *
 * A flipped bit in a row is not always damage SQLite can see: the page is
 * sound, the record decodes, and a text reads "t\x9axt".  Served as is, it
 * would reach a client as invalid UTF-8, an unknown status, a label cut at
 * a NUL.  So each reader (messages.c, protons.c, rels.c) checks every
 * value it returns with the helpers below, and a row that fails goes to
 * the listeners as a store.corrupt_row record and is kept out of what the
 * caller gets.  The file itself is never changed here: repairing is a
 * person's decision.
 */
#include <stdio.h>
#include <string.h>
#include "store/store_int.h"
#include "text.h"

int relm__col_text_ok(const struct relm__q *q, int col, size_t max, int may_null)
{
	int t = sqlite3_column_type(q->s, col);
	size_t n;

	if (t == SQLITE_NULL)
		return may_null;
	if (t != SQLITE_TEXT)
		return 0;
	n = (size_t)sqlite3_column_bytes(q->s, col);
	return n <= max && relm_text_ok(sqlite3_column_text(q->s, col), n);
}

int relm__col_int_ok(const struct relm__q *q, int col)
{
	return sqlite3_column_type(q->s, col) == SQLITE_INTEGER;
}

int relm__store_bad_row(struct relm_store *st, const char *table, int64_t row, const char *why,
                        const uint8_t *rel, const uint8_t *msg, const uint8_t *proton,
                        const uint8_t *device)
{
	struct relm_event ev;

	relm_event_init(&ev, RELM_EV_STORE_CORRUPT_ROW);
	ev.has = RELM_EVF_TABLE | RELM_EVF_REASON;
	ev.table = table;
	ev.reason = why;
	if (row > 0) {
		ev.row = (uint64_t)row;
		ev.has |= RELM_EVF_ROW;
	}
#define ID(f, bit) if (f) { memcpy(ev.f, f, RELM_ID_LEN); ev.has |= bit; }
	ID(rel, RELM_EVF_REL) ID(msg, RELM_EVF_MSG) ID(proton, RELM_EVF_PROTON) ID(device, RELM_EVF_DEVICE)
#undef ID
	if (st->bad_row)
		st->bad_row(st->bad_row_ctx, &ev);
	if (st->check_sink)
		st->check_sink(st->check_ctx, &ev);
	return RELM_EBADROW;
}

void relm_store_on_bad_row(struct relm_store *st, relm_store_bad_row_fn fn, void *ctx)
{
	st->bad_row = fn;
	st->bad_row_ctx = ctx;
}

int relm_store_check(struct relm_store *st, int quick,
                     void (*integrity)(void *ctx, const char *line), relm_store_bad_row_fn bad,
                     void *ctx)
{
	sqlite3_stmt *s = NULL;
	int rc, problems = 0;

	CHECK_USABLE(st);
	rc = sqlite3_prepare_v2(st->db, quick ? "PRAGMA quick_check(100)" : "PRAGMA integrity_check(100)",
	                        -1, &s, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *line = (const char *)sqlite3_column_text(s, 0);
		rc = SQLITE_OK;
		if (line && strcmp(line, "ok") != 0) {
			problems++;
			if (integrity)
				integrity(ctx, line);
		}
	}
	sqlite3_finalize(s);
	/* a page SQLite cannot read is an answer of the check, not a failure
	 * of it; anything else (I/O, memory) is */
	if (rc != SQLITE_DONE && rc != SQLITE_OK) {
		if ((rc & 0xff) != SQLITE_CORRUPT && (rc & 0xff) != SQLITE_NOTADB)
			return relm__store_fail(st, rc, "check");
		if (integrity)
			integrity(ctx, sqlite3_errstr(rc));
		return 0;                     /* the rows cannot be walked either */
	}
	/* A damaged structure is not walked: a reader meeting a bad page puts
	 * the handle in its sticky error state, and the answer is already no. */
	if (problems)
		return 0;
	st->check_sink = bad;
	st->check_ctx = ctx;
	if ((rc = relm__msg_scan(st)) == 0 && (rc = relm__proton_scan(st)) == 0 &&
	    (rc = relm__device_scan(st)) == 0 && (rc = relm__rel_scan(st)) == 0)
		rc = relm__outcount_scan(st);
	st->check_sink = NULL;
	st->check_ctx = NULL;
	return rc;
}

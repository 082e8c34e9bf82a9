/*
 * requests.c — pending requests (schema v11; proto/devices.md §11.5): the
 * sends a device that does not send to the remote asked of the device
 * that does, kept until it sees the message sent.
 */
#include <string.h>
#include "store/store_int.h"

RELM__SQL(REQ_PUT, "INSERT INTO requests(rel,id,data,dev,next_ms) VALUES(?1,?2,?3,?4,?5) ON CONFLICT(rel,id) DO UPDATE SET data=excluded.data, dev=excluded.dev, next_ms=excluded.next_ms");
RELM__SQL(REQ_DEL, "DELETE FROM requests WHERE rel=?1 AND id=?2");
RELM__SQL(REQ_LIST, "SELECT q.rel,q.id,q.data,q.dev,q.next_ms FROM relationships r JOIN requests q ON q.rel=r.id WHERE r.proton=?1 ORDER BY q.rel,q.id");
RELM__SQL(REQ_HAS, "SELECT 1 FROM requests WHERE rel=?1 AND id=?2");
RELM__SQL(REQ_COUNT, "SELECT count(*) FROM relationships r JOIN requests q ON q.rel=r.id WHERE r.proton=?1");

int relm_store_request_put(struct relm_store *st, const struct relm_store_request *r)
{
	CHECK_WRITABLE(st);
	if (!r->data || r->len == 0 || r->len > RELM_ENVELOPE_MAX || r->next_ms > INT64_MAX)
		return RELM_EINVAL;
	return Q_EXEC_ONE(st, REQ_PUT, A_ID(r->rel), A_ID(r->id), A_BLOB(r->data, r->len),
	                  A_ID(r->dev), A_INT(r->next_ms));
}

int relm_store_request_del(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                           const uint8_t id[RELM_ID_LEN])
{
	CHECK_WRITABLE(st);
	return Q_EXEC_ONE(st, REQ_DEL, A_ID(rel), A_ID(id));
}

int relm_store_request_list(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                            int (*cb)(void *ctx, const struct relm_store_request *r), void *ctx)
{
	struct relm_store_request r;
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, REQ_LIST, A_ID(proton));
	while ((rc = q_step(&q)) > 0) {
		memset(&r, 0, sizeof r);
		if (q_fixed(&q, 0, r.rel, RELM_ID_LEN) || q_fixed(&q, 1, r.id, RELM_ID_LEN) ||
		    q_fixed(&q, 3, r.dev, RELM_ID_LEN) || !(r.data = q_blobv(&q, 2, &r.len)) || !r.len) {
			rc = RELM_ESTATE;
			break;
		}
		r.next_ms = q_col_u64(&q, 4);
		if ((rc = cb(ctx, &r)) != 0)
			break;
	}
	return q_end(&q, rc);
}

int relm_store_request_count(struct relm_store *st, const uint8_t proton[RELM_ID_LEN], uint64_t *n)
{
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, REQ_COUNT, A_ID(proton));
	if ((rc = q_row(&q)) == 0)
		*n = q_col_u64(&q, 0);
	return q_end(&q, rc);
}

int relm_store_request_has(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                           const uint8_t id[RELM_ID_LEN])
{
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, REQ_HAS, A_ID(rel), A_ID(id));
	rc = q_row(&q);
	return q_end(&q, rc == 0 ? 1 : rc == RELM_ENOTFOUND ? 0 : rc);
}

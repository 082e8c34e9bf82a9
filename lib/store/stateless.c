/*
 * stateless.c — relationships a device holds without their state (schema
 * v11; proto/devices.md §11.4): a fanout non-hub keeps the row, its
 * history and its requests, while the hub alone holds the ratchet.  The
 * state blob is then empty (relm_store_rel_set_state with length 0, so
 * a load sees it without a lookup here), the mailbox is out of the
 * mailbox list, and what only state needs is gone: the retransmission
 * records, the acknowledgements owed and the pending envelopes.
 */
#include <string.h>
#include "store/store_int.h"

RELM__SQL(SL_PUT, "INSERT INTO stateless(rel,src) VALUES(?1,?2) ON CONFLICT(rel) DO UPDATE SET src=excluded.src");
RELM__SQL(SL_DEL, "DELETE FROM stateless WHERE rel=?1");
RELM__SQL(SL_SRC, "SELECT src FROM stateless WHERE rel=?1");
RELM__SQL(SL_LIST, "SELECT s.rel,s.src FROM relationships r JOIN stateless s ON s.rel=r.id WHERE r.proton=?1 ORDER BY s.rel");
RELM__SQL(SL_OUT, "DELETE FROM outgoing WHERE rel=?1");
RELM__SQL(SL_ACKS, "DELETE FROM acks WHERE rel=?1");
RELM__SQL(SL_PENDING, "DELETE FROM pending WHERE rel=?1");

int relm_store_rel_wipe(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                        const uint8_t src[RELM_ID_LEN], uint64_t now_ms)
{
	static const uint8_t none[1];
	int rc;

	CHECK_WRITABLE(st);
	if ((rc = Q_EXEC(st, SL_OUT, A_ID(rel))) != 0 ||
	    (rc = relm__stage_outgoing(st, rel, 0, 1)) != 0 || (rc = Q_EXEC(st, SL_ACKS, A_ID(rel))) != 0 ||
	    (rc = Q_EXEC(st, SL_PENDING, A_ID(rel))) != 0 ||
	    (rc = Q_EXEC(st, SL_PUT, A_ID(rel), A_ID(src))) != 0 ||
	    (rc = relm_store_rel_set_deadline(st, rel, 0)) != 0)
		return rc;
	return relm_store_rel_set_state(st, rel, none, 0, now_ms);
}

int relm_store_rel_held(struct relm_store *st, const uint8_t rel[RELM_ID_LEN])
{
	CHECK_WRITABLE(st);
	return Q_EXEC(st, SL_DEL, A_ID(rel));
}

int relm_store_stateless_src(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                             uint8_t src[RELM_ID_LEN])
{
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, SL_SRC, A_ID(rel));
	if ((rc = q_row(&q)) == 0 && q_fixed(&q, 0, src, RELM_ID_LEN))
		rc = RELM_ESTATE;
	return q_end(&q, rc);
}

int relm_store_stateless_list(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                              int (*cb)(void *ctx, const uint8_t rel[RELM_ID_LEN],
                                        const uint8_t src[RELM_ID_LEN]),
                              void *ctx)
{
	uint8_t rel[RELM_ID_LEN], src[RELM_ID_LEN];
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, SL_LIST, A_ID(proton));
	while ((rc = q_step(&q)) > 0) {
		if (q_fixed(&q, 0, rel, RELM_ID_LEN) || q_fixed(&q, 1, src, RELM_ID_LEN)) {
			rc = RELM_ESTATE;
			break;
		}
		if ((rc = cb(ctx, rel, src)) != 0)
			break;
	}
	return q_end(&q, rc);
}

/*
 * invites.c — invites with their prekeys and mailbox, and the replay guard
 * that keeps one initial envelope from making two relationships.
 */
#include <string.h>
#include <sodium.h>
#include "store/store_int.h"

RELM__SQL(INVITE_PUT, "INSERT INTO invites(proton,spk_id,spk_priv,opk_id,opk_priv,multi_use,expires,mailbox_id,mailbox_sk,used,created) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?11,?10)");
RELM__SQL(INVITE_GET, "SELECT proton,spk_id,opk_id,multi_use,expires,mailbox_id,used,created,spk_priv,opk_priv,mailbox_sk FROM invites WHERE proton=?1 AND spk_id=?2");
RELM__SQL(INVITE_LIST, "SELECT proton,spk_id,opk_id,multi_use,expires,mailbox_id,used,created,spk_priv,opk_priv,mailbox_sk FROM invites WHERE proton=?1 AND expires>?2 ORDER BY spk_id");
RELM__SQL(INVITE_BY_MBOX, "SELECT proton,spk_id FROM invites WHERE mailbox_id=?1");
/* secure_delete zeroes the one-time prekey's private half in the file */
RELM__SQL(INVITE_USED, "UPDATE invites SET used=used+1, opk_priv=NULL WHERE proton=?1 AND spk_id=?2");
RELM__SQL(INVITE_EXPIRE, "DELETE FROM invites WHERE expires<=?1");
RELM__SQL(INVITE_EXPIRED, "SELECT mailbox_id FROM invites WHERE expires<=?1");
/* the mailbox cursor of an invite that goes: nobody reads that mailbox again */
RELM__SQL(INVITE_CURSORS, "DELETE FROM cursors WHERE mailbox IN (SELECT mailbox_id FROM invites WHERE expires<=?1)");
RELM__SQL(REPLAY_INS, "INSERT OR IGNORE INTO replay_guard(proton,spk_id,ek,rel,seen) VALUES(?1,?5,?2,?3,?4)");

int relm_store_invite_put(struct relm_store *st, const struct relm_store_invite *inv)
{
	CHECK_WRITABLE(st);
	return Q_EXEC(st, INVITE_PUT, A_ID(inv->proton), A_INT(inv->spk_id), A_BLOB(inv->spk_priv, RELM_KEY_LEN),
	              A_INT(inv->opk_id), A_BLOB_IF(inv->opk_id != 0, inv->opk_priv, RELM_KEY_LEN),
	              A_INT(!!inv->multi_use), A_INT(inv->expires), A_BLOB(inv->mailbox_id, RELM_SIGN_PK_LEN),
	              A_BLOB(inv->mailbox_sk, RELM_SIGN_SK_LEN), A_INT(inv->created), A_INT(inv->used));
}

static int read_invite(const struct relm__q *q, struct relm_store_invite *inv)
{
	memset(inv, 0, sizeof *inv);
	inv->spk_id = (uint32_t)q_i64(q, 1);
	inv->opk_id = (uint32_t)q_i64(q, 2);
	inv->multi_use = (int)q_i64(q, 3);
	inv->expires = q_col_u64(q, 4);
	inv->used = (uint32_t)q_i64(q, 6);
	inv->created = q_col_u64(q, 7);
	if (q_fixed(q, 0, inv->proton, RELM_ID_LEN) ||
	    q_fixed(q, 5, inv->mailbox_id, RELM_SIGN_PK_LEN) ||
	    q_fixed(q, 8, inv->spk_priv, RELM_KEY_LEN) ||
	    q_fixed(q, 10, inv->mailbox_sk, RELM_SIGN_SK_LEN) ||
	    (!q_isnull(q, 9) && q_fixed(q, 9, inv->opk_priv, RELM_KEY_LEN)))
		return RELM_ESTATE;
	return 0;
}

int relm_store_invite_get(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                          uint32_t spk_id, struct relm_store_invite *out)
{
	struct relm_store_invite inv;
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, INVITE_GET, A_ID(proton), A_INT(spk_id));
	if ((rc = q_row(&q)) == 0)
		rc = read_invite(&q, &inv);
	if ((rc = q_end(&q, rc)) == 0)
		*out = inv;
	sodium_memzero(&inv, sizeof inv);
	return rc;
}

int relm_store_invite_list(struct relm_store *st, const uint8_t proton[RELM_ID_LEN], uint64_t now_ms,
                           int (*cb)(void *ctx, const struct relm_store_invite *inv), void *ctx)
{
	struct relm_store_invite inv;
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, INVITE_LIST, A_ID(proton), A_INT(now_ms));
	while ((rc = q_step(&q)) > 0) {
		if ((rc = read_invite(&q, &inv)) != 0 || (rc = cb(ctx, &inv)) != 0)
			break;
	}
	sodium_memzero(&inv, sizeof inv);
	return q_end(&q, rc);
}

int relm_store_invite_by_mailbox(struct relm_store *st, const uint8_t mailbox_id[RELM_SIGN_PK_LEN],
                                 uint8_t proton[RELM_ID_LEN], uint32_t *spk_id)
{
	uint8_t p[RELM_ID_LEN];
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, INVITE_BY_MBOX, A_BLOB(mailbox_id, RELM_SIGN_PK_LEN));
	if ((rc = q_row(&q)) == 0 && (rc = q_fixed(&q, 0, p, RELM_ID_LEN)) == 0) {
		memcpy(proton, p, RELM_ID_LEN);
		*spk_id = (uint32_t)q_i64(&q, 1);
	}
	return q_end(&q, rc);
}

int relm_store_invite_mark_used(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                                uint32_t spk_id)
{
	CHECK_WRITABLE(st);
	return Q_EXEC_ONE(st, INVITE_USED, A_ID(proton), A_INT(spk_id));
}

int relm_store_invite_expire(struct relm_store *st, uint64_t now_ms,
                             int (*cb)(void *ctx, const uint8_t mailbox_id[RELM_SIGN_PK_LEN]),
                             void *ctx)
{
	struct relm__q q;
	uint8_t id[RELM_SIGN_PK_LEN];
	int rc;

	CHECK_WRITABLE(st);
	if (cb) {
		Q_OPEN(&q, st, INVITE_EXPIRED, A_INT(now_ms));
		while ((rc = q_step(&q)) > 0)
			if ((rc = q_fixed(&q, 0, id, sizeof id)) != 0 || (rc = cb(ctx, id)) != 0)
				break;
		if ((rc = q_end(&q, rc)) != 0)
			return rc;
	}
	if ((rc = Q_EXEC(st, INVITE_CURSORS, A_INT(now_ms))) != 0)
		return rc;
	return Q_CHANGES(st, INVITE_EXPIRE, A_INT(now_ms));
}

void relm_store_invite_clear(struct relm_store_invite *inv)
{
	if (inv)
		sodium_memzero(inv, sizeof *inv);
}

/* ---- replay guard ----------------------------------------------------------- */

int relm_store_replay_check_insert(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                                   uint32_t spk_id, const uint8_t ek[RELM_KEY_LEN],
                                   const uint8_t rel[RELM_ID_LEN], uint64_t now_ms)
{
	int rc;

	CHECK_WRITABLE(st);
	rc = Q_CHANGES(st, REPLAY_INS, A_ID(proton), A_BLOB(ek, RELM_KEY_LEN),
	               A_BLOB_IF(rel != NULL, rel, RELM_ID_LEN), A_INT(now_ms), A_INT(spk_id));
	return rc == 0 ? RELM_EREPLAY : rc < 0 ? rc : 0;       /* ignored: seen before */
}

/*
 * pairings.c — pairings in progress (proto/devices.md §12.8; schema v10):
 * one row per pairing, on the existing device (role E) or the joiner
 * (role J), moved only by lib/core's transition function.  The row holds
 * the pairing secret S and, on J, its ephemeral secret and device keys
 * until it has joined [S]; `mailbox` (with its secret key [S]) is the pairing mailbox this side
 * reads (M_E on E, M_J on J), in the mailbox list while the row lives.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "store/store_int.h"

RELM__SQL(PAIRING_PUT, "INSERT INTO pairings(id,role,state,secret,eph,expires,proton,host,mailbox,join_hash,message,keys,label,created,mailbox_sk)"
                       " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15) ON CONFLICT(id) DO UPDATE SET"
                       " state=excluded.state,eph=excluded.eph,expires=excluded.expires,proton=excluded.proton,"
                       "join_hash=excluded.join_hash,message=excluded.message,keys=excluded.keys,label=excluded.label");
RELM__SQL(PAIRING_GET, "SELECT id,role,state,secret,eph,expires,proton,host,mailbox,join_hash,message,keys,label,created,mailbox_sk FROM pairings WHERE id=?1");
RELM__SQL(PAIRING_BY_MBOX, "SELECT id FROM pairings WHERE mailbox=?1");
RELM__SQL(PAIRING_DEL, "DELETE FROM pairings WHERE id=?1");
RELM__SQL(PAIRING_IDS, "SELECT id FROM pairings ORDER BY id");

static const char *const roles[] = { NULL, "e", "j" };
static const char *const states[] = { NULL, "offered", "welcomed", "joining", "joined", "synced" };

static int name_index(const char *const *names, int n, const char *s)
{
	for (int i = 1; s && i < n; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return 0;
}

int relm_store_pairing_put(struct relm_store *st, const struct relm_store_pairing *p)
{
	CHECK_WRITABLE(st);
	if (p->role < RELM_PAIR_ROLE_E || p->role > RELM_PAIR_ROLE_J ||
	    p->state < RELM_PAIR_OFFERED || p->state > RELM_PAIR_SYNCED ||
	    !relm__store_text_ok(p->host, RELM_STORE_LABEL_MAX) ||
	    !relm__store_text_ok(p->label, RELM_STORE_LABEL_MAX))
		return RELM_EINVAL;
	return Q_EXEC(st, PAIRING_PUT, A_ID(p->id), A_TEXT(roles[p->role]), A_TEXT(states[p->state]),
	              A_BLOB(p->secret, 32), A_BLOB_IF(p->has_eph, p->eph, 32), A_INT(p->expires),
	              A_BLOB_IF(p->has_proton, p->proton, RELM_ID_LEN), A_TEXT(p->host),
	              A_BLOB(p->mailbox, RELM_SIGN_PK_LEN), A_BLOB_IF(p->has_join_hash, p->join_hash, 32),
	              A_BLOB_IF(p->message_len > 0, p->message, p->message_len),
	              A_BLOB_IF(p->keys_len > 0, p->keys, p->keys_len), A_TEXT(p->label), A_INT(p->created),
	              A_BLOB(p->mailbox_sk, RELM_SIGN_SK_LEN));
}

/* A copy of a blob column (NULL → NULL, 0). */
static int dup_col(const struct relm__q *q, int col, uint8_t **out, size_t *len)
{
	const uint8_t *v;
	size_t n = 0;

	*out = NULL;
	*len = 0;
	if (q_isnull(q, col))
		return 0;
	v = q_blobv(q, col, &n);
	if (n == 0)
		return 0;
	if (!(*out = malloc(n)))
		return RELM_ENOMEM;
	memcpy(*out, v, n);
	*len = n;
	return 0;
}

/* One row, checked as it is read (proto/store.md §5.1): RELM_EBADROW. */
static int read_pairing(const struct relm__q *q, struct relm_store_pairing *p)
{
	memset(p, 0, sizeof *p);
	p->role = name_index(roles, 3, q_str(q, 1));
	p->state = name_index(states, 6, q_str(q, 2));
	p->expires = q_col_u64(q, 5);
	p->created = q_col_u64(q, 13);
	p->has_eph = !q_isnull(q, 4);
	p->has_proton = !q_isnull(q, 6);
	p->has_join_hash = !q_isnull(q, 9);
	q_textcpy(q, 7, p->host, sizeof p->host);
	q_textcpy(q, 12, p->label, sizeof p->label);
	if (!p->role || !p->state || q_fixed(q, 0, p->id, RELM_ID_LEN) || q_fixed(q, 3, p->secret, 32) ||
	    (p->has_eph && q_fixed(q, 4, p->eph, 32)) ||
	    (p->has_proton && q_fixed(q, 6, p->proton, RELM_ID_LEN)) ||
	    q_fixed(q, 8, p->mailbox, RELM_SIGN_PK_LEN) || q_fixed(q, 14, p->mailbox_sk, RELM_SIGN_SK_LEN) ||
	    (p->has_join_hash && q_fixed(q, 9, p->join_hash, 32)))
		return RELM_EBADROW;
	if (dup_col(q, 10, &p->message, &p->message_len) || dup_col(q, 11, &p->keys, &p->keys_len)) {
		relm_store_pairing_clear(p);
		return RELM_ENOMEM;
	}
	return 0;
}

int relm_store_pairing_get(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                           struct relm_store_pairing *out)
{
	struct relm_store_pairing p;
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	memset(&p, 0, sizeof p);
	Q_OPEN(&q, st, PAIRING_GET, A_ID(id));
	if ((rc = q_row(&q)) == 0)
		rc = read_pairing(&q, &p);
	if ((rc = q_end(&q, rc)) == 0)
		*out = p;
	else
		relm_store_pairing_clear(&p);
	sodium_memzero(&p, sizeof p);
	return rc;
}

int relm_store_pairing_by_mailbox(struct relm_store *st, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                                  uint8_t id[RELM_ID_LEN])
{
	uint8_t v[RELM_ID_LEN];
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, PAIRING_BY_MBOX, A_BLOB(mailbox, RELM_SIGN_PK_LEN));
	if ((rc = q_row(&q)) == 0)
		rc = q_fixed(&q, 0, v, sizeof v);
	if ((rc = q_end(&q, rc)) == 0)
		memcpy(id, v, sizeof v);
	return rc;
}

int relm_store_pairing_delete(struct relm_store *st, const uint8_t id[RELM_ID_LEN])
{
	CHECK_WRITABLE(st);
	return Q_EXEC(st, PAIRING_DEL, A_ID(id));
}

int relm_store_pairing_ids(struct relm_store *st,
                           int (*cb)(void *ctx, const uint8_t id[RELM_ID_LEN]), void *ctx)
{
	uint8_t id[RELM_ID_LEN];
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	q_begin(&q, st, PAIRING_IDS);
	while ((rc = q_step(&q)) > 0)
		if ((rc = q_fixed(&q, 0, id, sizeof id)) != 0 || (rc = cb(ctx, id)) != 0)
			break;
	return q_end(&q, rc);
}

void relm_store_pairing_clear(struct relm_store_pairing *p)
{
	if (p->message)
		sodium_memzero(p->message, p->message_len);
	free(p->message);
	if (p->keys)
		sodium_memzero(p->keys, p->keys_len);
	free(p->keys);
	sodium_memzero(p, sizeof *p);
}

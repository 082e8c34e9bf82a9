/*
 * devices.c — a proton's devices (proto/devices.md §1–§3): the rows of the
 * circle this device holds, this device's own keys (its DPK / DSK in the
 * devices row, its device prekey and device mailbox in device_keys), and
 * the signed circles themselves.
 *
 * The devices rows mirror the newest accepted circle, plus what only this
 * device knows about each (which one is itself, when it learnt of it); the
 * circle's bytes are kept as signed, so that they can be handed on to a
 * sibling or a new device unchanged.  Deciding which circle to accept is
 * lib/wire/circle.c's rule and lib/core's call: the store keeps what it is
 * given.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "store/store_int.h"

RELM__SQL(DEVICE_PUT, "INSERT OR REPLACE INTO devices(proton,device,label,self,pk,sk,epoch,added) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)");
RELM__SQL(DEVICE_LIST, "SELECT proton,device,label,self,pk,epoch,added FROM devices WHERE proton=?1 ORDER BY device");
RELM__SQL(DEVICE_SELF, "SELECT proton,device,label,self,pk,epoch,added,sk FROM devices WHERE proton=?1 AND self=1");
RELM__SQL(DEVICE_DEL, "DELETE FROM devices WHERE proton=?1 AND device=?2 AND self=0");
RELM__SQL(DEVICE_ALL, "SELECT proton,device,label,self,pk,epoch,added FROM devices");
/* an UPSERT: OR REPLACE would also delete another proton's row that held
 * the same mailbox, where this must be refused */
RELM__SQL(DEVKEYS_PUT, "INSERT INTO device_keys(proton,spk_id,spk_priv,mailbox_id,mailbox_sk) VALUES(?1,?2,?3,?4,?5)"
                       " ON CONFLICT(proton) DO UPDATE SET spk_id=excluded.spk_id,spk_priv=excluded.spk_priv,"
                       "mailbox_id=excluded.mailbox_id,mailbox_sk=excluded.mailbox_sk");
RELM__SQL(DEVKEYS_GET, "SELECT spk_id,spk_priv,mailbox_id,mailbox_sk FROM device_keys WHERE proton=?1");
RELM__SQL(DEVKEYS_BY_MBOX, "SELECT proton FROM device_keys WHERE mailbox_id=?1");
RELM__SQL(SIB_PUT, "INSERT INTO sibling_sessions(rel,proton,device) VALUES(?1,?2,?3)");
RELM__SQL(SIB_FIND, "SELECT rel FROM sibling_sessions WHERE proton=?1 AND device=?2 ORDER BY rel LIMIT 1");
RELM__SQL(SIB_GET, "SELECT proton,device FROM sibling_sessions WHERE rel=?1");
RELM__SQL(CIRCLE_PUT, "INSERT OR REPLACE INTO circles(proton,epoch,signed) VALUES(?1,?2,?3)");
RELM__SQL(CIRCLE_GET, "SELECT epoch,signed FROM circles WHERE proton=?1 ORDER BY epoch DESC LIMIT 1");

/* ---- devices ------------------------------------------------------------- */

uint64_t relm_store_devices_gen(const struct relm_store *st)
{
	return st->devices_gen;
}

int relm_store_device_put(struct relm_store *st, const struct relm_store_device *d)
{
	CHECK_WRITABLE(st);
	if (!relm__store_text_ok(d->label, RELM_STORE_LABEL_MAX))
		return RELM_EINVAL;
	st->devices_gen++;
	return Q_EXEC(st, DEVICE_PUT, A_ID(d->proton), A_ID(d->device), A_TEXT(d->label), A_INT(!!d->self),
	              A_BLOB(d->pk, RELM_SIGN_PK_LEN), A_BLOB_IF(d->has_sk, d->sk, RELM_SIGN_SK_LEN),
	              A_INT(d->epoch), A_INT(d->added));
}

int relm_store_device_delete(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                             const uint8_t device[RELM_ID_LEN])
{
	CHECK_WRITABLE(st);
	st->devices_gen++;
	return Q_EXEC(st, DEVICE_DEL, A_ID(proton), A_ID(device));
}

/* One row of DEVICE_LIST / DEVICE_SELF / DEVICE_ALL, checked: 0 or
 * RELM_EBADROW (reported; devices has no row numbers). */
static int read_device(const struct relm__q *q, struct relm_store_device *d)
{
	const char *why = NULL;
	int ids_ok;

	memset(d, 0, sizeof *d);
	ids_ok = q_fixed(q, 0, d->proton, RELM_ID_LEN) == 0 && q_fixed(q, 1, d->device, RELM_ID_LEN) == 0;
	if (!ids_ok || q_fixed(q, 4, d->pk, RELM_SIGN_PK_LEN))
		why = "an id or key is not of its size";
	else if (!relm__col_text_ok(q, 2, RELM_STORE_LABEL_MAX, 0))
		why = "label is not UTF-8 text within the limit";
	else if (!relm__col_int_ok(q, 3) || !relm__col_int_ok(q, 5) || !relm__col_int_ok(q, 6))
		why = "a number is not an integer";
	if (why)
		return relm__store_bad_row(q->st, "devices", 0, why, NULL, NULL,
		                           ids_ok ? d->proton : NULL, ids_ok ? d->device : NULL);
	q_textcpy(q, 2, d->label, sizeof d->label);
	d->self = (int)q_i64(q, 3);
	d->epoch = q_col_u64(q, 5);
	d->added = q_col_u64(q, 6);
	return 0;
}

int relm__device_scan(struct relm_store *st)
{
	struct relm_store_device d;
	struct relm__q q;
	int rc;

	q_begin(&q, st, DEVICE_ALL);
	while ((rc = q_step(&q)) > 0)
		read_device(&q, &d);
	return q_end(&q, rc);
}

int relm_store_device_list(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                           int (*cb)(void *ctx, const struct relm_store_device *d), void *ctx)
{
	struct relm_store_device d;
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, DEVICE_LIST, A_ID(proton));
	while ((rc = q_step(&q)) > 0) {
		if ((rc = read_device(&q, &d)) == RELM_EBADROW)
			continue;                      /* reported, and left out */
		if ((rc = cb(ctx, &d)) != 0)
			break;
	}
	return q_end(&q, rc);
}

int relm_store_device_get_self(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                               struct relm_store_device *out)
{
	struct relm_store_device d;
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, DEVICE_SELF, A_ID(proton));
	if ((rc = q_row(&q)) == 0 && (rc = read_device(&q, &d)) == 0 && !q_isnull(&q, 7)) {
		rc = q_fixed(&q, 7, d.sk, RELM_SIGN_SK_LEN);
		d.has_sk = 1;
	}
	if ((rc = q_end(&q, rc)) == 0)
		*out = d;
	sodium_memzero(&d, sizeof d);
	return rc;
}

void relm_store_device_clear(struct relm_store_device *d)
{
	if (d)
		sodium_memzero(d, sizeof *d);
}

/* ---- this device's invite keys -------------------------------------------- */

int relm_store_device_keys_put(struct relm_store *st, const struct relm_store_device_keys *k)
{
	CHECK_WRITABLE(st);
	if (k->spk_id == 0)
		return RELM_EINVAL;
	return Q_EXEC(st, DEVKEYS_PUT, A_ID(k->proton), A_INT(k->spk_id), A_BLOB(k->spk_priv, RELM_KEY_LEN),
	              A_BLOB(k->mailbox_id, RELM_SIGN_PK_LEN), A_BLOB(k->mailbox_sk, RELM_SIGN_SK_LEN));
}

int relm_store_device_keys_get(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                               struct relm_store_device_keys *out)
{
	struct relm_store_device_keys k;
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	memset(&k, 0, sizeof k);
	memcpy(k.proton, proton, RELM_ID_LEN);
	Q_OPEN(&q, st, DEVKEYS_GET, A_ID(proton));
	if ((rc = q_row(&q)) == 0) {
		k.spk_id = (uint32_t)q_i64(&q, 0);
		if (q_fixed(&q, 1, k.spk_priv, RELM_KEY_LEN) ||
		    q_fixed(&q, 2, k.mailbox_id, RELM_SIGN_PK_LEN) ||
		    q_fixed(&q, 3, k.mailbox_sk, RELM_SIGN_SK_LEN))
			rc = RELM_ESTATE;
	}
	if ((rc = q_end(&q, rc)) == 0)
		*out = k;
	sodium_memzero(&k, sizeof k);
	return rc;
}

int relm_store_device_keys_by_mailbox(struct relm_store *st, const uint8_t mailbox_id[RELM_SIGN_PK_LEN],
                                      uint8_t proton[RELM_ID_LEN])
{
	uint8_t p[RELM_ID_LEN];
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, DEVKEYS_BY_MBOX, A_BLOB(mailbox_id, RELM_SIGN_PK_LEN));
	if ((rc = q_row(&q)) == 0 && (rc = q_fixed(&q, 0, p, RELM_ID_LEN)) == 0)
		memcpy(proton, p, RELM_ID_LEN);
	return q_end(&q, rc);
}

void relm_store_device_keys_clear(struct relm_store_device_keys *k)
{
	if (k)
		sodium_memzero(k, sizeof *k);
}

/* ---- circles --------------------------------------------------------------- */

int relm_store_circle_put(struct relm_store *st, const uint8_t proton[RELM_ID_LEN], uint64_t epoch,
                          const uint8_t *buf, size_t len)
{
	CHECK_WRITABLE(st);
	if (epoch == 0 || epoch > INT64_MAX || len == 0)
		return RELM_EINVAL;
	return Q_EXEC(st, CIRCLE_PUT, A_ID(proton), A_INT(epoch), A_BLOB(buf, len));
}

int relm_store_circle_get(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                          uint64_t *epoch, uint8_t **buf, size_t *len)
{
	struct relm__q q;
	const uint8_t *p;
	uint8_t *copy = NULL;
	size_t n = 0;
	uint64_t e = 0;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, CIRCLE_GET, A_ID(proton));
	if ((rc = q_row(&q)) == 0) {
		e = q_col_u64(&q, 0);
		p = q_blobv(&q, 1, &n);
		if (!p || n == 0)
			rc = RELM_ESTATE;
		else if (!(copy = malloc(n)))
			rc = RELM_ENOMEM;
		else
			memcpy(copy, p, n);
	}
	if ((rc = q_end(&q, rc)) != 0)
		return rc;
	*epoch = e;
	*buf = copy;
	*len = n;
	return 0;
}

/* ---- sibling sessions ------------------------------------------------------ */

int relm_store_sibling_session_put(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                                   const uint8_t proton[RELM_ID_LEN], const uint8_t device[RELM_ID_LEN])
{
	CHECK_WRITABLE(st);
	return Q_EXEC(st, SIB_PUT, A_ID(rel), A_ID(proton), A_ID(device));
}

int relm_store_sibling_session_find(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                                    const uint8_t device[RELM_ID_LEN], uint8_t rel[RELM_ID_LEN])
{
	uint8_t r[RELM_ID_LEN];
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, SIB_FIND, A_ID(proton), A_ID(device));
	if ((rc = q_row(&q)) == 0 && (rc = q_fixed(&q, 0, r, RELM_ID_LEN)) == 0)
		memcpy(rel, r, RELM_ID_LEN);
	return q_end(&q, rc);
}

int relm_store_sibling_session_get(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                                   uint8_t proton[RELM_ID_LEN], uint8_t device[RELM_ID_LEN])
{
	uint8_t p[RELM_ID_LEN], d[RELM_ID_LEN];
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, SIB_GET, A_ID(rel));
	if ((rc = q_row(&q)) == 0 && (q_fixed(&q, 0, p, RELM_ID_LEN) || q_fixed(&q, 1, d, RELM_ID_LEN)))
		rc = RELM_ESTATE;
	if ((rc = q_end(&q, rc)) == 0) {
		memcpy(proton, p, RELM_ID_LEN);
		memcpy(device, d, RELM_ID_LEN);
	}
	return rc;
}

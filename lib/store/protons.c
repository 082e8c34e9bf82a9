/*
 * protons.c — protons (the contextual identities).  Their devices and
 * circles are in devices.c.
 */
#include <string.h>
#include <sodium.h>
#include "store/store_int.h"

RELM__SQL(PROTON_PUT, "INSERT INTO protons(id,label,ipk,isk,strategy,created) VALUES(?1,?2,?3,?4,?5,?6)");
RELM__SQL(PROTON_GET, "SELECT id,label,ipk,strategy,created,rowid,leader,strategy_seq,strategy_by,isk FROM protons WHERE id=?1");
RELM__SQL(PROTON_LIST, "SELECT id,label,ipk,strategy,created,rowid,leader,strategy_seq,strategy_by FROM protons ORDER BY id");
RELM__SQL(PROTON_STRATEGY, "UPDATE protons SET strategy=?2, leader=?3, strategy_seq=?4, strategy_by=?5 WHERE id=?1");
RELM__SQL(PROTON_IDENTITY, "UPDATE protons SET ipk=?2, isk=?3 WHERE id=?1");

/* ---- protons ---------------------------------------------------------- */

int relm_store_proton_put(struct relm_store *st, const struct relm_store_proton *p)
{
	CHECK_WRITABLE(st);
	if (!relm__store_text_ok(p->label, RELM_STORE_LABEL_MAX) ||
	    !relm__store_text_ok(p->strategy, RELM_STORE_STRATEGY_MAX))
		return RELM_EINVAL;
	st->devices_gen++;
	return Q_EXEC(st, PROTON_PUT, A_ID(p->id), A_TEXT(p->label), A_BLOB(p->ipk, RELM_SIGN_PK_LEN),
	              A_BLOB(p->isk, RELM_SIGN_SK_LEN), A_TEXT(p->strategy[0] ? p->strategy : "leaderless"),
	              A_INT(p->created));
}

/* A strategy's name (proto/api.md, proton.set_strategy). */
static int strategy_ok(const char *s)
{
	return s && (!strcmp(s, "leaderless") || !strcmp(s, "leader") || !strcmp(s, "fanout"));
}

/* One row of PROTON_GET / PROTON_LIST, checked (check.c): 0 or
 * RELM_EBADROW (reported). */
static int read_proton(const struct relm__q *q, struct relm_store_proton *p)
{
	const char *why = NULL;
	int id_ok;

	memset(p, 0, sizeof *p);
	id_ok = q_fixed(q, 0, p->id, RELM_ID_LEN) == 0;
	if (!id_ok || q_fixed(q, 2, p->ipk, RELM_SIGN_PK_LEN))
		why = "an id or key is not of its size";
	else if (!relm__col_text_ok(q, 1, RELM_STORE_LABEL_MAX, 0))
		why = "label is not UTF-8 text within the limit";
	else if (!strategy_ok(q_str(q, 3)))
		why = "strategy is not a strategy";
	else if (!relm__col_int_ok(q, 4) || !relm__col_int_ok(q, 7))
		why = "a time or sequence number is not an integer";
	else if ((!q_isnull(q, 6) && q_fixed(q, 6, p->pinned, RELM_ID_LEN)) ||
	         (!q_isnull(q, 8) && q_fixed(q, 8, p->strategy_by, RELM_ID_LEN)))
		why = "leader or strategy_by is not a device id";
	if (why)
		return relm__store_bad_row(q->st, "protons", q_i64(q, 5), why, NULL, NULL,
		                           id_ok ? p->id : NULL, NULL);
	q_textcpy(q, 1, p->label, sizeof p->label);
	q_textcpy(q, 3, p->strategy, sizeof p->strategy);
	p->created = q_col_u64(q, 4);
	p->strategy_seq = q_col_u64(q, 7);
	return 0;
}

int relm__proton_scan(struct relm_store *st)
{
	struct relm_store_proton p;
	struct relm__q q;
	int rc;

	q_begin(&q, st, PROTON_LIST);
	while ((rc = q_step(&q)) > 0)
		read_proton(&q, &p);
	sodium_memzero(&p, sizeof p);
	return q_end(&q, rc);
}

int relm_store_proton_get(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                          struct relm_store_proton *out, unsigned flags)
{
	struct relm_store_proton p;
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	Q_OPEN(&q, st, PROTON_GET, A_ID(id));
	if ((rc = q_row(&q)) == 0 && (rc = read_proton(&q, &p)) == 0 &&
	    (flags & RELM_STORE_WITH_SECRETS))
		rc = q_fixed(&q, 9, p.isk, RELM_SIGN_SK_LEN);
	if ((rc = q_end(&q, rc)) == 0)
		*out = p;
	sodium_memzero(&p, sizeof p);
	return rc;
}

int relm_store_proton_set_strategy(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                                   const char *strategy, const uint8_t *pinned, uint64_t seq,
                                   const uint8_t by[RELM_ID_LEN])
{
	int has_pin = pinned && !sodium_is_zero(pinned, RELM_ID_LEN);

	CHECK_WRITABLE(st);
	if (!strategy_ok(strategy) || seq > INT64_MAX)
		return RELM_EINVAL;
	st->devices_gen++;
	return Q_EXEC_ONE(st, PROTON_STRATEGY, A_ID(id), A_TEXT(strategy),
	                  A_BLOB_IF(has_pin, pinned, RELM_ID_LEN), A_INT(seq),
	                  A_BLOB_IF(!sodium_is_zero(by, RELM_ID_LEN), by, RELM_ID_LEN));
}

int relm_store_proton_set_identity(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                                   const uint8_t ipk[RELM_SIGN_PK_LEN],
                                   const uint8_t isk[RELM_SIGN_SK_LEN])
{
	CHECK_WRITABLE(st);
	st->devices_gen++;
	return Q_EXEC_ONE(st, PROTON_IDENTITY, A_ID(id), A_BLOB(ipk, RELM_SIGN_PK_LEN),
	                  A_BLOB(isk, RELM_SIGN_SK_LEN));
}

int relm_store_proton_list(struct relm_store *st,
                           int (*cb)(void *ctx, const struct relm_store_proton *p), void *ctx)
{
	struct relm_store_proton p;
	struct relm__q q;
	int rc;

	CHECK_USABLE(st);
	q_begin(&q, st, PROTON_LIST);
	while ((rc = q_step(&q)) > 0) {
		if ((rc = read_proton(&q, &p)) == RELM_EBADROW)
			continue;                      /* reported, and left out */
		if ((rc = cb(ctx, &p)) != 0)
			break;
	}
	return q_end(&q, rc);
}

void relm_store_proton_clear(struct relm_store_proton *p)
{
	if (p)
		sodium_memzero(p, sizeof *p);
}

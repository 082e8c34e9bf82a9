/*
 * store_pg_sql.c — the PostgreSQL store's SQL (proto/mailbox.md §9.2): the
 * schema and its creation, the prepared statements, and for each
 * operation its parameters and the reading of its answer, both in libpq's
 * binary format (no text escaping of envelopes; bytea[] parameters carry
 * a whole group of posts or lookups in one statement).  The connections
 * that carry them are store_pg.c's.
 */
#include "mailbox_server/store_pg.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "error.h"
#include "log.h"

/* ---- SQL ---- */

static const char schema_sql[] =
	"CREATE TABLE mailbox (id bytea PRIMARY KEY, last_seq bigint NOT NULL, read_key bytea);"
	"CREATE TABLE envelope (mailbox bytea NOT NULL, seq bigint NOT NULL,"
	" received_at bigint NOT NULL, body bytea NOT NULL, PRIMARY KEY (mailbox, seq));"
	/* envelopes are ciphertext: do not try to compress them */
	"ALTER TABLE envelope ALTER COLUMN body SET STORAGE EXTERNAL;"
	"CREATE INDEX envelope_received ON envelope (received_at);"
	"CREATE TABLE lease (mailbox bytea NOT NULL, name bytea NOT NULL, holder bytea NOT NULL,"
	" expires_at bigint NOT NULL, PRIMARY KEY (mailbox, name));"
	"CREATE TABLE mailbox_meta (version integer NOT NULL, realm bytea NOT NULL);"
	/* The lease compare-and-set of proto/mailbox.md §5.6 in one
	 * transaction, serialised per (mailbox, name) by an advisory lock, on
	 * the database's clock (instances' clocks may differ). */
	"CREATE FUNCTION relm_mailbox_lease(p_mailbox bytea, p_name bytea, p_expected bytea,"
	"  p_holder bytea, p_ttl bigint, OUT o_granted boolean, OUT o_holder bytea,"
	"  OUT o_remaining bigint) LANGUAGE plpgsql AS $f$\n"
	"DECLARE\n"
	"  now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;\n"
	"  zero bytea := '\\x00000000000000000000000000000000'::bytea;\n"
	"  h bytea; e bigint; live bytea := zero; left_ms bigint := 0;\n"
	"BEGIN\n"
	"  PERFORM pg_advisory_xact_lock(hashtextextended(encode(p_mailbox, 'hex') || ':' ||\n"
	"                                                 encode(p_name, 'hex'), 7427));\n"
	"  SELECT l.holder, l.expires_at INTO h, e FROM lease l\n"
	"   WHERE l.mailbox = p_mailbox AND l.name = p_name;\n"
	"  IF FOUND AND e > now_ms THEN live := h; left_ms := e - now_ms; END IF;\n"
	"  IF live <> p_expected THEN\n"
	"    o_granted := false; o_holder := live; o_remaining := left_ms; RETURN;\n"
	"  END IF;\n"
	"  IF p_holder = zero THEN\n"
	"    DELETE FROM lease l WHERE l.mailbox = p_mailbox AND l.name = p_name;\n"
	"    o_granted := true; o_holder := zero; o_remaining := 0; RETURN;\n"
	"  END IF;\n"
	"  INSERT INTO lease AS l (mailbox, name, holder, expires_at)\n"
	"    VALUES (p_mailbox, p_name, p_holder, now_ms + p_ttl)\n"
	"    ON CONFLICT (mailbox, name) DO UPDATE\n"
	"      SET holder = excluded.holder, expires_at = excluded.expires_at;\n"
	"  o_granted := true; o_holder := p_holder; o_remaining := p_ttl;\n"
	"END $f$;";

const struct mbspg_stmt mbspg_stmts[S_COUNT] = {
	/* Each mailbox's counter goes up by its number of posts, its row
	 * locked until the commit (rows locked in mailbox order: no deadlock
	 * between instances), and the envelopes take the seqs reserved, in
	 * arrival order.  One notification per mailbox, sent at the commit. */
	[S_COMMIT] = { "relm_commit", 3, { OID_BYTEA_ARRAY, OID_BYTEA_ARRAY, OID_INT8 },
		"WITH p AS (SELECT m, b, o FROM unnest($1::bytea[], $2::bytea[])"
		"           WITH ORDINALITY AS t(m, b, o)),"
		" c AS (SELECT m, count(*) AS n FROM p GROUP BY m),"
		" up AS (INSERT INTO mailbox AS x (id, last_seq) SELECT m, n FROM c ORDER BY m"
		"        ON CONFLICT (id) DO UPDATE SET last_seq = x.last_seq + excluded.last_seq"
		"        RETURNING x.id, x.last_seq),"
		" ins AS (INSERT INTO envelope (mailbox, seq, received_at, body)"
		"         SELECT p.m, up.last_seq - c.n + row_number() OVER (PARTITION BY p.m ORDER BY p.o),"
		"                $3, p.b"
		"         FROM p JOIN c ON c.m = p.m JOIN up ON up.id = p.m)"
		" SELECT up.id, up.last_seq FROM up"
		" CROSS JOIN LATERAL pg_notify('" CHANNEL "', encode(up.id, 'hex') || ' ' || up.last_seq) AS n" },
	[S_LOOKUP] = { "relm_lookup", 1, { OID_BYTEA_ARRAY },
		"SELECT t.o, x.last_seq, x.read_key,"
		" (SELECT min(e.seq) FROM envelope e WHERE e.mailbox = t.m)"
		" FROM unnest($1::bytea[]) WITH ORDINALITY AS t(m, o) LEFT JOIN mailbox x ON x.id = t.m" },
	/* the last key given for a mailbox wins (ON CONFLICT may touch a row once) */
	[S_SETKEYS] = { "relm_setkeys", 2, { OID_BYTEA_ARRAY, OID_BYTEA_ARRAY },
		"WITH u AS (SELECT m, k, o FROM unnest($1::bytea[], $2::bytea[])"
		"           WITH ORDINALITY AS t(m, k, o)),"
		" d AS (SELECT DISTINCT ON (m) m, k FROM u ORDER BY m, o DESC),"
		" w AS (INSERT INTO mailbox AS x (id, last_seq, read_key) SELECT m, 0, k FROM d ORDER BY m"
		"       ON CONFLICT (id) DO UPDATE SET read_key = excluded.read_key"
		"       RETURNING x.id, x.last_seq)"
		" SELECT u.o, w.last_seq, (SELECT min(e.seq) FROM envelope e WHERE e.mailbox = u.m)"
		" FROM u JOIN w ON w.id = u.m" },
	[S_FETCH] = { "relm_fetch", 3, { OID_BYTEA, OID_INT8, OID_INT4 },
		"SELECT seq, body FROM envelope WHERE mailbox = $1 AND seq > $2 ORDER BY seq LIMIT $3" },
	[S_LEASE] = { "relm_lease", 5, { OID_BYTEA, OID_BYTEA, OID_BYTEA, OID_BYTEA, OID_INT8 },
		"SELECT o_granted, o_holder, o_remaining FROM relm_mailbox_lease($1, $2, $3, $4, $5)" },
	/* expired leases on the database's clock, like the lease function */
	[S_SWEEP] = { "relm_sweep", 2, { OID_INT8, OID_INT4 },
		"WITH d AS (DELETE FROM envelope WHERE ctid = ANY (ARRAY("
		"           SELECT ctid FROM envelope WHERE received_at < $1 ORDER BY received_at LIMIT $2))"
		"           RETURNING 1),"
		" l AS (DELETE FROM lease"
		"       WHERE expires_at <= (extract(epoch FROM clock_timestamp()) * 1000)::bigint"
		"       RETURNING 1)"
		" SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM l)" },
};


/* ---- parameters and results (binary format) ---- */

static uint8_t *put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
	return p + 4;
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
	return put32(put32(p, (uint32_t)(v >> 32)), (uint32_t)v);
}

static uint64_t get64(const char *s)
{
	const uint8_t *p = (const uint8_t *)s;
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* A one-dimensional bytea[] in PostgreSQL's binary array format: header
 * (ndim, has-null flag, element type, length, lower bound), then each
 * element as its length and bytes. */
static size_t array_size(size_t n, size_t total_bytes)
{
	return 20 + 4 * n + total_bytes;
}

static uint8_t *array_begin(uint8_t *p, size_t n)
{
	p = put32(p, 1);
	p = put32(p, 0);
	p = put32(p, OID_BYTEA);
	p = put32(p, (uint32_t)n);
	return put32(p, 1);
}

static uint8_t *array_elem(uint8_t *p, const void *data, size_t len)
{
	p = put32(p, (uint32_t)len);
	memcpy(p, data, len);
	return p + len;
}

static void op_param(struct pg_op *op, int i, const uint8_t *p, size_t len)
{
	op->values[i] = (const char *)p;
	op->lengths[i] = (int)len;
	op->formats[i] = 1;
}

struct pg_op *mbspg_op_new(enum op_kind kind, int stmt, size_t bufsize, mbs_done_fn done, void *ctx)
{
	struct pg_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	if (bufsize && !(op->buf = malloc(bufsize))) {
		free(op);
		return NULL;
	}
	op->kind = kind;
	op->stmt = stmt;
	op->nparams = stmt >= 0 ? mbspg_stmts[stmt].nparams : 0;
	op->done = done;
	op->ctx = ctx;
	return op;
}

void mbspg_op_free(struct pg_op *op)
{
	if (op->res)
		PQclear(op->res);
	free(op->buf);
	free(op);
}

/* ---- completing operations ---- */

static int parse_commit(struct pg_op *op)
{
	struct mbs_post **v = op->u.commit.v;
	size_t n = op->u.commit.n;
	PGresult *r = op->res;
	int rows = PQntuples(r);

	for (int i = 0; i < rows; i++) {
		const char *id = PQgetvalue(r, i, 0);
		uint64_t last;
		size_t lo = 0, hi = n, first, end;

		if (PQgetlength(r, i, 0) != RELM_MBOX_ID_LEN || PQgetlength(r, i, 1) != 8)
			return RELM_ESTORE;
		last = get64(PQgetvalue(r, i, 1));
		/* v is sorted by mailbox: the group of this one */
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (memcmp(v[mid]->mailbox, id, RELM_MBOX_ID_LEN) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		first = lo;
		for (end = first; end < n && memcmp(v[end]->mailbox, id, RELM_MBOX_ID_LEN) == 0; end++)
			;
		if (end == first || last < end - first)
			return RELM_ESTORE;
		for (size_t k = first; k < end; k++)
			v[k]->seq = last - (end - first) + (k - first) + 1;
	}
	for (size_t k = 0; k < n; k++)
		if (!v[k]->seq)
			return RELM_ESTORE;
	return 0;
}

/* Rows (o, last_seq, [read_key,] oldest) into the lookups, by ordinality. */
static int parse_lookup(struct pg_op *op, int has_key_col)
{
	struct mbs_lookup *v = op->u.lookup.v;
	PGresult *r = op->res;
	int rows = PQntuples(r), oc = has_key_col ? 3 : 2;

	for (size_t i = 0; i < op->u.lookup.n; i++) {
		v[i].head = v[i].oldest = 0;
		if (has_key_col)
			v[i].has_key = 0;
	}
	for (int i = 0; i < rows; i++) {
		uint64_t o;
		struct mbs_lookup *l;

		if (PQgetlength(r, i, 0) != 8)
			return RELM_ESTORE;
		o = get64(PQgetvalue(r, i, 0));
		if (o < 1 || o > op->u.lookup.n)
			return RELM_ESTORE;
		l = &v[o - 1];
		if (!PQgetisnull(r, i, 1))
			l->head = get64(PQgetvalue(r, i, 1));
		if (has_key_col && !PQgetisnull(r, i, 2) &&
		    PQgetlength(r, i, 2) == RELM_MBOX_READ_KEY_LEN) {
			memcpy(l->read_key, PQgetvalue(r, i, 2), RELM_MBOX_READ_KEY_LEN);
			l->has_key = 1;
		}
		if (!PQgetisnull(r, i, oc))
			l->oldest = get64(PQgetvalue(r, i, oc));
	}
	return 0;
}

static int parse_lease(struct pg_op *op)
{
	struct mbs_lease_req *l = op->u.lease;
	PGresult *r = op->res;

	if (PQntuples(r) != 1 || PQgetlength(r, 0, 0) != 1 ||
	    PQgetlength(r, 0, 1) != RELM_MBOX_TOKEN_LEN || PQgetlength(r, 0, 2) != 8)
		return RELM_ESTORE;
	memset(&l->res, 0, sizeof(l->res));
	l->res.tag = l->tag;
	l->res.granted = PQgetvalue(r, 0, 0)[0] ? 1 : 0;
	memcpy(l->res.holder, PQgetvalue(r, 0, 1), RELM_MBOX_TOKEN_LEN);
	{
		uint64_t rem = get64(PQgetvalue(r, 0, 2));
		l->res.remaining_ms = rem > UINT32_MAX ? UINT32_MAX : (uint32_t)rem;
	}
	return 0;
}

static int sweep_more(struct pg_store *st, struct pg_op *op);

int mbspg_op_parse(struct pg_store *st, struct pg_op *op, int *rcp)
{
	int rc = 0;

	switch (op->kind) {
	case OP_PREPARE: break;
	case OP_COMMIT:  rc = parse_commit(op); break;
	case OP_LOOKUP:  rc = parse_lookup(op, 1); break;
	case OP_SETKEYS: rc = parse_lookup(op, 0); break;
	case OP_LEASE:   rc = parse_lease(op); break;
	case OP_FETCH:
		for (int i = 0; i < PQntuples(op->res); i++) {
			if (PQgetlength(op->res, i, 0) != 8) {
				rc = RELM_ESTORE;
				break;
			}
			op->u.fetch.row(op->ctx, get64(PQgetvalue(op->res, i, 0)),
			                (const uint8_t *)PQgetvalue(op->res, i, 1),
			                (size_t)PQgetlength(op->res, i, 1));
		}
		break;
	case OP_SWEEP:
		if (sweep_more(st, op))
			return 1;   /* the next chunk is on its way */
		rc = op->u.sweep.total;
		break;
	}
	*rcp = rc;
	return 0;
}

/* ---- the schema (blocking, at open) ---- */

int mbspg_exec_ok(PGconn *c, const char *sql, ExecStatusType want)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == want;

	if (!ok)
		log_err("mailbox store: postgresql: %s", PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

/* Create the schema, or check and migrate it, under an advisory lock so
 * that instances starting together do it once.  Reads the realm. */
int mbspg_schema_open(struct pg_store *st, PGconn *c)
{
	PGresult *r = NULL;
	int rc = RELM_ESTORE;

	if (!mbspg_exec_ok(c, "SELECT pg_advisory_lock(" PG_LOCK_KEY ")", PGRES_TUPLES_OK))
		return RELM_ESTORE;
	r = PQexec(c, "SELECT to_regclass('mailbox_meta') IS NOT NULL");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		goto out;
	if (PQgetvalue(r, 0, 0)[0] != 't') {
		const char *vals[1];
		int lens[1] = { RELM_MBOX_REALM_LEN }, fmts[1] = { 1 };

		PQclear(r);
		r = NULL;
		randombytes_buf(st->base.realm, RELM_MBOX_REALM_LEN);
		vals[0] = (const char *)st->base.realm;
		if (!mbspg_exec_ok(c, "BEGIN", PGRES_COMMAND_OK))
			goto out;
		if (!mbspg_exec_ok(c, schema_sql, PGRES_COMMAND_OK)) {
			mbspg_exec_ok(c, "ROLLBACK", PGRES_COMMAND_OK);
			goto out;
		}
		r = PQexecParams(c, "INSERT INTO mailbox_meta (version, realm) VALUES (3, $1)", 1, NULL,
		                 vals, lens, fmts, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			log_err("mailbox store: postgresql: %s", PQresultErrorMessage(r));
			mbspg_exec_ok(c, "ROLLBACK", PGRES_COMMAND_OK);
			goto out;
		}
		if (!mbspg_exec_ok(c, "COMMIT", PGRES_COMMAND_OK))
			goto out;
		log_info("mailbox store: created the schema (version %d)", PG_VERSION);
		rc = 0;
		goto out;
	}
	PQclear(r);
	r = PQexecParams(c, "SELECT version, realm FROM mailbox_meta", 0, NULL, NULL, NULL, NULL, 1);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
	    PQgetlength(r, 0, 0) != 4 || PQgetlength(r, 0, 1) != RELM_MBOX_REALM_LEN) {
		rc = RELM_ECORRUPT;
		goto out;
	}
	{
		const uint8_t *v = (const uint8_t *)PQgetvalue(r, 0, 0);
		uint32_t version = (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];

		if (version > PG_VERSION) {
			rc = RELM_ESTORE_NEWER;
			goto out;
		}
		/* Versions below 3 never existed in PostgreSQL; a later version
		 * migrates here, in one transaction, like the SQLite file. */
	}
	memcpy(st->base.realm, PQgetvalue(r, 0, 1), RELM_MBOX_REALM_LEN);
	rc = 0;
out:
	PQclear(r);
	mbspg_exec_ok(c, "SELECT pg_advisory_unlock(" PG_LOCK_KEY ")", PGRES_TUPLES_OK);
	return rc;
}

/* ---- operations: each builds its statement's parameters ---- */

struct pg_op *mbspg_commit_op(struct mbs_post **v, size_t n, uint64_t now,
                      mbs_done_fn done, void *ctx)
{
	size_t total = 0;
	struct pg_op *op;
	uint8_t *p, *a;

	for (size_t i = 0; i < n; i++)
		total += v[i]->len;
	op = mbspg_op_new(OP_COMMIT, S_COMMIT, array_size(n, n * RELM_MBOX_ID_LEN) + array_size(n, total) + 8,
	            done, ctx);
	if (!op) {
		done(ctx, RELM_ENOMEM);
		return NULL;
	}
	p = a = op->buf;
	p = array_begin(p, n);
	for (size_t i = 0; i < n; i++)
		p = array_elem(p, v[i]->mailbox, RELM_MBOX_ID_LEN);
	op_param(op, 0, a, (size_t)(p - a));
	a = p;
	p = array_begin(p, n);
	for (size_t i = 0; i < n; i++)
		p = array_elem(p, v[i]->env, v[i]->len);
	op_param(op, 1, a, (size_t)(p - a));
	a = p;
	p = put64(p, now);
	op_param(op, 2, a, 8);
	for (size_t i = 0; i < n; i++)
		v[i]->seq = 0;
	op->u.commit.v = v;
	op->u.commit.n = n;
	return op;
}

static struct pg_op *lookup_op(struct mbs_lookup *v, size_t n, int set_keys,
                      mbs_done_fn done, void *ctx)
{
	size_t size = array_size(n, n * RELM_MBOX_ID_LEN) +
	              (set_keys ? array_size(n, n * RELM_MBOX_READ_KEY_LEN) : 0);
	struct pg_op *op = mbspg_op_new(set_keys ? OP_SETKEYS : OP_LOOKUP, set_keys ? S_SETKEYS : S_LOOKUP,
	                          size, done, ctx);
	uint8_t *p, *a;

	if (!op) {
		done(ctx, RELM_ENOMEM);
		return NULL;
	}
	p = a = op->buf;
	p = array_begin(p, n);
	for (size_t i = 0; i < n; i++)
		p = array_elem(p, v[i].mailbox, RELM_MBOX_ID_LEN);
	op_param(op, 0, a, (size_t)(p - a));
	if (set_keys) {
		a = p;
		p = array_begin(p, n);
		for (size_t i = 0; i < n; i++)
			p = array_elem(p, v[i].read_key, RELM_MBOX_READ_KEY_LEN);
		op_param(op, 1, a, (size_t)(p - a));
	}
	op->u.lookup.v = v;
	op->u.lookup.n = n;
	return op;
}

struct pg_op *mbspg_lookup_op(struct mbs_lookup *v, size_t n, mbs_done_fn done, void *ctx)
{
	return lookup_op(v, n, 0, done, ctx);
}

struct pg_op *mbspg_set_keys_op(struct mbs_lookup *v, size_t n, mbs_done_fn done, void *ctx)
{
	return lookup_op(v, n, 1, done, ctx);
}

struct pg_op *mbspg_fetch_op(const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t after,
                     unsigned limit, mbs_row_fn row, mbs_done_fn done, void *ctx)
{
	struct pg_op *op = mbspg_op_new(OP_FETCH, S_FETCH, RELM_MBOX_ID_LEN + 8 + 4, done, ctx);

	if (!op) {
		done(ctx, RELM_ENOMEM);
		return NULL;
	}
	memcpy(op->buf, mailbox, RELM_MBOX_ID_LEN);
	op_param(op, 0, op->buf, RELM_MBOX_ID_LEN);
	put64(op->buf + RELM_MBOX_ID_LEN, after);
	op_param(op, 1, op->buf + RELM_MBOX_ID_LEN, 8);
	put32(op->buf + RELM_MBOX_ID_LEN + 8, limit);
	op_param(op, 2, op->buf + RELM_MBOX_ID_LEN + 8, 4);
	op->u.fetch.row = row;
	return op;
}

struct pg_op *mbspg_lease_op(struct mbs_lease_req *l, mbs_done_fn done, void *ctx)
{
	struct pg_op *op = mbspg_op_new(OP_LEASE, S_LEASE, 8, done, ctx);

	if (!op) {
		done(ctx, RELM_ENOMEM);
		return NULL;
	}
	op_param(op, 0, l->mailbox, RELM_MBOX_ID_LEN);
	op_param(op, 1, l->name, l->name_len);
	op_param(op, 2, l->expected, RELM_MBOX_TOKEN_LEN);
	op_param(op, 3, l->holder, RELM_MBOX_TOKEN_LEN);
	put64(op->buf, l->ttl_ms);
	op_param(op, 4, op->buf, 8);
	op->u.lease = l;
	return op;
}

/* One chunk of a sweep answered: 1 to send op again for the next chunk
 * (while chunks come back full), else 0. */
static int sweep_more(struct pg_store *st, struct pg_op *op)
{
	PGresult *r = op->res;
	uint64_t n = 0;

	if (PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 8)
		n = get64(PQgetvalue(r, 0, 0));
	op->u.sweep.total += (int)n;
	if (n < SWEEP_CHUNK || ++op->u.sweep.chunks >= SWEEP_CHUNKS_MAX || st->closing ||
	    st->cmd.state != L_UP)
		return 0;
	PQclear(op->res);
	op->res = NULL;
	return 1;
}

struct pg_op *mbspg_sweep_op(uint64_t cutoff, uint64_t now, mbs_done_fn done, void *ctx)
{
	struct pg_op *op = mbspg_op_new(OP_SWEEP, S_SWEEP, 12, done, ctx);

	(void)now;   /* leases expire on the database's clock */
	if (!op) {
		done(ctx, RELM_ENOMEM);
		return NULL;
	}
	put64(op->buf, cutoff);
	op_param(op, 0, op->buf, 8);
	put32(op->buf + 8, SWEEP_CHUNK);
	op_param(op, 1, op->buf + 8, 4);
	op->u.sweep.cutoff = cutoff;
	return op;
}


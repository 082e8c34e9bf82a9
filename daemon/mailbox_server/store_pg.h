/*
 * store_pg.h — what the two files of the PostgreSQL store share:
 * store_pg.c (the connections on the event loop, the queue of operations,
 * opening and closing) and store_pg_sql.c (the schema, the statements,
 * and each operation's parameters and answer in libpq's binary format).
 * Names shared between them begin with mbspg_.
 */
#ifndef RELM_MBOX_STORE_PG_H
#define RELM_MBOX_STORE_PG_H

#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>
#include <uv.h>

#include "mailbox_server/store.h"

enum {
	PG_VERSION = 3,            /* mailbox_meta.version (same numbering as SQLite) */
	OID_BYTEA = 17,
	OID_INT4 = 23,
	OID_INT8 = 20,
	OID_BYTEA_ARRAY = 1001,
	RETRY_MIN_MS = 100,        /* reconnect backoff, doubling */
	RETRY_MAX_MS = 5000,
	SWEEP_CHUNK = 10000,       /* envelopes per sweep statement */
	SWEEP_CHUNKS_MAX = 100,    /* per sweep run; the next run continues */
	DEADLOCK_RETRIES = 5,      /* a commit chosen as a deadlock victim is sent again */
};

#define CHANNEL "relm_mailbox"
/* the advisory lock held while the schema is created or migrated */
#define PG_LOCK_KEY "74270003"

enum stmt_id { S_COMMIT, S_LOOKUP, S_SETKEYS, S_FETCH, S_LEASE, S_SWEEP, S_COUNT };

struct mbspg_stmt {
	const char *name;
	int nparams;
	Oid types[5];
	const char *sql;
};
extern const struct mbspg_stmt mbspg_stmts[S_COUNT];

struct pg_store;

enum link_state { L_DOWN = 0, L_CONNECTING, L_UP };

struct pg_poll {                /* a poll handle, freed in its close callback */
	uv_poll_t h;
	struct pg_link *link;
};

struct pg_link {
	struct pg_store *st;
	const char *what;          /* "cmd", "listen" (logs) */
	PGconn *conn;
	struct pg_poll *poll;
	int fd;                    /* what poll watches */
	int events;
	enum link_state state;
	int listening;             /* lst: LISTEN sent, its answer pending */
	uv_timer_t retry;
	uint32_t backoff_ms;
};

enum op_kind { OP_PREPARE, OP_COMMIT, OP_LOOKUP, OP_SETKEYS, OP_FETCH, OP_LEASE, OP_SWEEP };

struct pg_op {
	struct pg_op *next;
	enum op_kind kind;
	int stmt;
	int nparams;
	const char *values[5];
	int lengths[5];
	int formats[5];
	uint8_t *buf;              /* owns the parameters' bytes */
	PGresult *res;             /* the statement's result (first one) */
	int retries;
	mbs_done_fn done;
	void *ctx;
	union {
		struct { struct mbs_post **v; size_t n; } commit;
		struct { struct mbs_lookup *v; size_t n; } lookup;
		struct { mbs_row_fn row; } fetch;
		struct mbs_lease_req *lease;
		struct { uint64_t cutoff; int total, chunks; } sweep;
	} u;
};

struct pg_store {
	struct mbs_store base;     /* first: the server holds a struct mbs_store * */
	uv_loop_t *loop;
	char *conninfo;
	struct mbs_store_events ev;
	struct pg_link cmd, lst;
	struct pg_op *sent, **sent_tail;   /* cmd: sent, answer pending, in order */
	int cmd_pid;               /* cmd's backend: its notifications are ours */
	int closing;
	/* Answers libpq has read already (PQflush reads too, so the socket
	 * need not become readable again for them) are handled from here on
	 * the next loop turn. */
	uv_timer_t kick;
	unsigned handles;          /* uv handles not yet closed */
	void (*close_cb)(void *);
	void *close_arg;
};

/* ---- store_pg_sql.c ---- */
/* Create or check (and migrate) the schema on c, blocking; reads the realm. */
int mbspg_schema_open(struct pg_store *st, PGconn *c);
int mbspg_exec_ok(PGconn *c, const char *sql, ExecStatusType want);
struct pg_op *mbspg_op_new(enum op_kind kind, int stmt, size_t bufsize, mbs_done_fn done, void *ctx);
void mbspg_op_free(struct pg_op *op);
/* Read op's answer into its caller's buffers and its result into *rc (0,
 * a count, or a negative code); returns 0, or 1 when op is not complete
 * and must be sent again (a sweep's next chunk). */
int mbspg_op_parse(struct pg_store *st, struct pg_op *op, int *rc);
/* The operations, built: op with its parameters, or NULL after done was
 * called with RELM_ENOMEM.  store_pg.c sends them. */
struct pg_op *mbspg_commit_op(struct mbs_post **v, size_t n, uint64_t now, mbs_done_fn done, void *ctx);
struct pg_op *mbspg_lookup_op(struct mbs_lookup *v, size_t n, mbs_done_fn done, void *ctx);
struct pg_op *mbspg_set_keys_op(struct mbs_lookup *v, size_t n, mbs_done_fn done, void *ctx);
struct pg_op *mbspg_fetch_op(const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t after,
                             unsigned limit, mbs_row_fn row, mbs_done_fn done, void *ctx);
struct pg_op *mbspg_lease_op(struct mbs_lease_req *l, mbs_done_fn done, void *ctx);
struct pg_op *mbspg_sweep_op(uint64_t cutoff, uint64_t now, mbs_done_fn done, void *ctx);

/* ---- store_pg.c ---- */
/* Send op on the command connection (it must be up). */
void mbspg_op_send(struct pg_store *st, struct pg_op *op);
/* Send op, or fail it at once when the database is unreachable. */
void mbspg_op_submit(struct pg_store *st, struct pg_op *op);

#endif

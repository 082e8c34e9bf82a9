/*
 * store_pg.c — the mailbox store in PostgreSQL (proto/mailbox.md §9.2),
 * behind store.h, for several relm-mailbox instances over one database.
 *
 * Two libpq connections per instance, both non-blocking and driven by the
 * server's libuv loop through a uv_poll_t on their sockets — nothing waits
 * on the database inside the loop:
 *  - `cmd` runs every operation.  It is in pipeline mode: each operation
 *    is one prepared statement followed by a sync point (so it is its own
 *    transaction, committed at the sync), sent at once, behind whatever is
 *    in flight; answers come back in order and complete the operations in
 *    order (`sent`, a FIFO).  An operation completes at its sync, i.e.
 *    after its commit.
 *  - `lst` LISTENs on `relm_mailbox`.  Each commit notifies
 *    "<hex mailbox> <last seq>" per mailbox it touched; notifications
 *    that came from our own `cmd` are dropped (the server has served those
 *    commits itself), the others go to the server (events.notify).
 * Either connection, when lost, is reconnected with backoff (PQconnectStart
 * / PQconnectPoll on the loop).  Operations in flight on a lost `cmd` fail
 * with RELM_ESTORE (a POST then gets `store` and its client resends: at
 * least once), and so do operations submitted while it is down.  When
 * `lst` is back, events.lost tells the server to look at everything again.
 *
 * Opening (connect, create or migrate the schema, LISTEN) blocks: the
 * server is starting and has nothing else to do.
 */
#include "mailbox_server/store_pg.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "error.h"
#include "log.h"

static void link_fail(struct pg_link *l, const char *why);
static void link_connect(struct pg_link *l);
static void poll_update(struct pg_link *l);

/* op's answer is complete (its sync arrived): parse it and call back. */
static void op_complete(struct pg_store *st, struct pg_op *op)
{
	ExecStatusType es = op->res ? PQresultStatus(op->res) : PGRES_FATAL_ERROR;
	int rc;

	if (es != PGRES_TUPLES_OK && es != PGRES_COMMAND_OK) {
		const char *state = op->res ? PQresultErrorField(op->res, PG_DIAG_SQLSTATE) : NULL;

		/* a deadlock victim or serialization failure: send it again */
		if (state && (!strcmp(state, "40P01") || !strcmp(state, "40001")) &&
		    op->retries++ < DEADLOCK_RETRIES && !st->closing && st->cmd.state == L_UP) {
			PQclear(op->res);
			op->res = NULL;
			mbspg_op_send(st, op);
			return;
		}
		log_err("mailbox store: postgresql %s: %s", mbspg_stmts[op->stmt].name,
		        op->res ? PQresultErrorMessage(op->res) : "no answer");
		if (op->kind == OP_PREPARE) {
			mbspg_op_free(op);
			link_fail(&st->cmd, "a statement could not be prepared");
			return;
		}
		rc = RELM_ESTORE;
	} else if (mbspg_op_parse(st, op, &rc)) {
		mbspg_op_send(st, op);   /* the next chunk */
		return;
	}
	if (op->done)
		op->done(op->ctx, rc);
	mbspg_op_free(op);
}

/* ---- the cmd connection ---- */

void mbspg_op_send(struct pg_store *st, struct pg_op *op)
{
	struct pg_link *l = &st->cmd;
	int ok;

	if (op->kind == OP_PREPARE)
		ok = PQsendPrepare(l->conn, mbspg_stmts[op->stmt].name, mbspg_stmts[op->stmt].sql,
		                   mbspg_stmts[op->stmt].nparams, mbspg_stmts[op->stmt].types);
	else
		ok = PQsendQueryPrepared(l->conn, mbspg_stmts[op->stmt].name, op->nparams, op->values,
		                         op->lengths, op->formats, 1);
	if (!ok || !PQpipelineSync(l->conn)) {
		/* the connection is broken: fail this one and everything in flight */
		log_err("mailbox store: postgresql: %s", PQerrorMessage(l->conn));
		if (op->done)
			op->done(op->ctx, RELM_ESTORE);
		mbspg_op_free(op);
		link_fail(l, "sending failed");
		return;
	}
	op->next = NULL;
	*st->sent_tail = op;
	st->sent_tail = &op->next;
	poll_update(l);
}

/* Hand op to the database, or fail it at once when it is unreachable. */
void mbspg_op_submit(struct pg_store *st, struct pg_op *op)
{
	if (st->closing || st->cmd.state != L_UP) {
		if (op->done)
			op->done(op->ctx, st->closing ? RELM_ECLOSED : RELM_ESTORE);
		mbspg_op_free(op);
		return;
	}
	mbspg_op_send(st, op);
}

/* Fail every operation in flight (the connection is gone or closing). */
static void fail_sent(struct pg_store *st, int rc)
{
	struct pg_op *op;

	while ((op = st->sent)) {
		st->sent = op->next;
		if (!st->sent)
			st->sent_tail = &st->sent;
		if (op->done)
			op->done(op->ctx, rc);
		mbspg_op_free(op);
	}
}

static void cmd_read(struct pg_store *st)
{
	struct pg_link *l = &st->cmd;
	PGnotify *n;

	int nulls = 0;

	while (st->sent && l->state == L_UP && !st->closing && !PQisBusy(l->conn)) {
		struct pg_op *op = st->sent;
		PGresult *res = PQgetResult(l->conn);

		if (!res) {
			if (++nulls > 1)
				break;   /* nothing more to read now */
			continue;    /* the end of op's statement: its sync follows */
		}
		nulls = 0;
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			st->sent = op->next;
			if (!st->sent)
				st->sent_tail = &st->sent;
			op_complete(st, op);
			continue;
		}
		if (!op->res)
			op->res = res;
		else
			PQclear(res);
	}
	while (l->conn && (n = PQnotifies(l->conn)))
		PQfreemem(n);
}

/* ---- the listening connection ---- */

static int unhex(uint8_t *out, const char *s, size_t n)
{
	size_t bin_len;

	return sodium_hex2bin(out, n, s, 2 * n, NULL, &bin_len, NULL) == 0 && bin_len == n ? 0 : -1;
}

static void lst_read(struct pg_store *st)
{
	struct pg_link *l = &st->lst;
	PGnotify *n;

	if (l->listening) {
		/* LISTEN's answer: from here on nothing is missed */
		while (!PQisBusy(l->conn)) {
			PGresult *res = PQgetResult(l->conn);

			if (!res) {
				l->listening = 0;
				log_info("mailbox store: listening again");
				if (st->ev.lost)
					st->ev.lost(st->ev.ctx);
				break;
			}
			if (PQresultStatus(res) != PGRES_COMMAND_OK) {
				PQclear(res);
				link_fail(l, "LISTEN failed");
				return;
			}
			PQclear(res);
		}
	}
	while (l->state == L_UP && !st->closing && (n = PQnotifies(l->conn))) {
		uint8_t mb[RELM_MBOX_ID_LEN];
		const char *x = n->extra;
		char *end;
		unsigned long long seq;

		if (n->be_pid != st->cmd_pid && strlen(x) > 2 * RELM_MBOX_ID_LEN + 1 &&
		    x[2 * RELM_MBOX_ID_LEN] == ' ' && unhex(mb, x, RELM_MBOX_ID_LEN) == 0) {
			seq = strtoull(x + 2 * RELM_MBOX_ID_LEN + 1, &end, 10);
			if (*end == '\0' && st->ev.notify)
				st->ev.notify(st->ev.ctx, mb, (uint64_t)seq);
		}
		PQfreemem(n);
	}
}

/* ---- links: polling, failing, reconnecting ---- */

static void store_maybe_freed(struct pg_store *st)
{
	void (*cb)(void *);
	void *arg;

	if (!st->closing || st->handles)
		return;
	cb = st->close_cb;
	arg = st->close_arg;
	free(st->conninfo);
	sodium_memzero(st, sizeof(*st));
	free(st);
	if (cb)
		cb(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct pg_store *st = h->data;

	if (h->type == UV_POLL)
		free(h);   /* struct pg_poll begins with its handle */
	st->handles--;
	store_maybe_freed(st);
}

static void poll_close(struct pg_link *l)
{
	if (!l->poll)
		return;
	l->poll->h.data = l->st;
	uv_close((uv_handle_t *)&l->poll->h, on_handle_closed);
	l->poll = NULL;
	l->fd = -1;
	l->events = 0;
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Watch fd for ev; a new handle when libpq's socket changed. */
static int link_watch(struct pg_link *l, int fd, int ev)
{
	struct pg_store *st = l->st;

	if (l->poll && l->fd != fd)
		poll_close(l);
	if (!l->poll) {
		struct pg_poll *pp = calloc(1, sizeof(*pp));

		if (!pp)
			return -1;
		if (uv_poll_init(st->loop, &pp->h, fd) != 0) {
			free(pp);
			return -1;
		}
		pp->link = l;
		st->handles++;
		l->poll = pp;
		l->fd = fd;
		l->events = 0;
	}
	if (ev != l->events) {
		if (uv_poll_start(&l->poll->h, ev, on_poll) != 0)
			return -1;
		l->events = ev;
	}
	return 0;
}

static void on_kick(uv_timer_t *t)
{
	struct pg_store *st = t->data;

	if (st->closing || st->cmd.state != L_UP)
		return;
	cmd_read(st);
	if (!st->closing && st->cmd.state == L_UP)
		poll_update(&st->cmd);
}

static void poll_update(struct pg_link *l)
{
	struct pg_store *st = l->st;
	int ev = UV_READABLE;

	if (l->state != L_UP)
		return;
	/* libpq closes its socket itself when the connection breaks: stop
	 * polling it at once */
	if (PQstatus(l->conn) == CONNECTION_BAD || PQsocket(l->conn) < 0) {
		link_fail(l, "the connection was lost");
		return;
	}
	if (PQflush(l->conn) == 1)
		ev |= UV_WRITABLE;   /* more to send: say when the socket takes it */
	/* answers already read into libpq's buffer wake no poll: go and get them */
	if (l == &st->cmd && st->sent && !PQisBusy(l->conn) && !uv_is_active((uv_handle_t *)&st->kick))
		uv_timer_start(&st->kick, on_kick, 0, 0);
	if (link_watch(l, PQsocket(l->conn), ev) != 0)
		link_fail(l, "cannot poll its socket");
}

static void on_retry(uv_timer_t *t)
{
	link_connect(t->data);
}

static void link_fail(struct pg_link *l, const char *why)
{
	struct pg_store *st = l->st;

	if (l->state == L_DOWN)
		return;
	if (!st->closing)
		log_warn("mailbox store: postgresql %s connection: %s%s%s; reconnecting", l->what, why,
		         l->conn ? ": " : "", l->conn ? PQerrorMessage(l->conn) : "");
	poll_close(l);       /* before PQfinish closes the socket under it */
	if (l->conn)
		PQfinish(l->conn);
	l->conn = NULL;
	l->state = L_DOWN;
	l->listening = 0;
	if (l == &st->cmd) {
		st->cmd_pid = 0;
		fail_sent(st, st->closing ? RELM_ECLOSED : RELM_ESTORE);
	}
	if (!st->closing) {
		uv_timer_start(&l->retry, on_retry, l->backoff_ms, 0);
		l->backoff_ms = l->backoff_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : l->backoff_ms * 2;
	}
}

/* A connection is up: non-blocking; cmd in pipeline mode with every
 * statement prepared (pipelined: operations may follow at once); lst
 * LISTENing (unless opening did it already). */
static int link_ready(struct pg_link *l, int listen_sent)
{
	struct pg_store *st = l->st;

	if (PQsetnonblocking(l->conn, 1) != 0)
		return -1;
	l->state = L_UP;
	l->backoff_ms = RETRY_MIN_MS;
	if (l == &st->cmd) {
		if (!PQenterPipelineMode(l->conn))
			return -1;
		st->cmd_pid = PQbackendPID(l->conn);
		for (int i = 0; i < S_COUNT && l->state == L_UP; i++) {
			struct pg_op *op = mbspg_op_new(OP_PREPARE, i, 0, NULL, NULL);

			if (!op)
				return -1;
			mbspg_op_send(st, op);
		}
	} else if (!listen_sent) {
		if (!PQsendQuery(l->conn, "LISTEN " CHANNEL))
			return -1;
		l->listening = 1;
	}
	if (l->state != L_UP)
		return -1;
	poll_update(l);
	return 0;
}

static void connect_step(struct pg_link *l)
{
	switch (PQconnectPoll(l->conn)) {
	case PGRES_POLLING_READING:
		if (link_watch(l, PQsocket(l->conn), UV_READABLE) != 0)
			link_fail(l, "cannot poll its socket");
		return;
	case PGRES_POLLING_WRITING:
		if (link_watch(l, PQsocket(l->conn), UV_WRITABLE) != 0)
			link_fail(l, "cannot poll its socket");
		return;
	case PGRES_POLLING_OK:
		if (link_ready(l, 0) != 0)
			link_fail(l, "setting it up failed");
		else
			log_info("mailbox store: postgresql %s connection is back", l->what);
		return;
	default:
		link_fail(l, "connecting failed");
		return;
	}
}

/* Start connecting without blocking (PQconnectStart: the first wait is for
 * the socket to be writable). */
static void link_connect(struct pg_link *l)
{
	struct pg_store *st = l->st;

	if (st->closing || l->state != L_DOWN)
		return;
	l->state = L_CONNECTING;
	l->conn = PQconnectStart(st->conninfo);
	if (!l->conn || PQstatus(l->conn) == CONNECTION_BAD || PQsocket(l->conn) < 0 ||
	    link_watch(l, PQsocket(l->conn), UV_WRITABLE) != 0)
		link_fail(l, "cannot start connecting");
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct pg_link *l = ((struct pg_poll *)h)->link;
	struct pg_store *st = l->st;

	if (st->closing)
		return;
	if (l->state == L_CONNECTING) {
		connect_step(l);
		return;
	}
	if (status < 0) {
		link_fail(l, uv_strerror(status));
		return;
	}
	if ((events & UV_WRITABLE) && PQflush(l->conn) < 0) {
		link_fail(l, "sending failed");
		return;
	}
	if ((events & UV_READABLE) && !PQconsumeInput(l->conn)) {
		link_fail(l, "the connection was lost");
		return;
	}
	if (l == &st->cmd)
		cmd_read(st);
	else
		lst_read(st);
	if (!st->closing && l->state == L_UP)
		poll_update(l);
}

static PGconn *connect_blocking(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);

	if (!c || PQstatus(c) != CONNECTION_OK) {
		log_err("mailbox store: cannot connect to postgresql: %s",
		        c ? PQerrorMessage(c) : "out of memory");
		PQfinish(c);
		return NULL;
	}
	/* notices (e.g. "relation exists") are not ours to print */
	PQsetNoticeProcessor(c, NULL, NULL);
	return c;
}

static void link_close(struct pg_link *l)
{
	poll_close(l);
	if (l->conn)
		PQfinish(l->conn);
	l->conn = NULL;
	l->state = L_DOWN;
	uv_timer_stop(&l->retry);
	l->retry.data = l->st;   /* was the link, for on_retry */
	uv_close((uv_handle_t *)&l->retry, on_handle_closed);
}

static void pg_close(struct mbs_store *base, void (*cb)(void *arg), void *arg)
{
	struct pg_store *st = (struct pg_store *)base;

	st->closing = 1;
	st->close_cb = cb;
	st->close_arg = arg;
	fail_sent(st, RELM_ECLOSED);
	link_close(&st->cmd);
	link_close(&st->lst);
	uv_timer_stop(&st->kick);
	uv_close((uv_handle_t *)&st->kick, on_handle_closed);
	store_maybe_freed(st);
}

/* The store's operations: built by store_pg_sql.c, sent here. */
static void pg_send(struct mbs_store *base, struct pg_op *op)
{
	if (op)
		mbspg_op_submit((struct pg_store *)base, op);
}

static void pg_commit(struct mbs_store *base, struct mbs_post **v, size_t n, uint64_t now,
                      mbs_done_fn done, void *ctx)
{
	pg_send(base, mbspg_commit_op(v, n, now, done, ctx));
}

static void pg_lookup(struct mbs_store *base, struct mbs_lookup *v, size_t n, mbs_done_fn done, void *ctx)
{
	pg_send(base, mbspg_lookup_op(v, n, done, ctx));
}

static void pg_set_keys(struct mbs_store *base, struct mbs_lookup *v, size_t n, mbs_done_fn done, void *ctx)
{
	pg_send(base, mbspg_set_keys_op(v, n, done, ctx));
}

static void pg_fetch(struct mbs_store *base, const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t after,
                     unsigned limit, mbs_row_fn row, mbs_done_fn done, void *ctx)
{
	pg_send(base, mbspg_fetch_op(mailbox, after, limit, row, done, ctx));
}

static void pg_lease(struct mbs_store *base, struct mbs_lease_req *l, mbs_done_fn done, void *ctx)
{
	pg_send(base, mbspg_lease_op(l, done, ctx));
}

static void pg_sweep(struct mbs_store *base, uint64_t cutoff, uint64_t now, mbs_done_fn done, void *ctx)
{
	pg_send(base, mbspg_sweep_op(cutoff, now, done, ctx));
}

static const struct mbs_store_ops pg_ops = {
	.name = "postgresql",
	.commit = pg_commit,
	.lookup = pg_lookup,
	.set_keys = pg_set_keys,
	.fetch = pg_fetch,
	.lease = pg_lease,
	.sweep = pg_sweep,
	.close = pg_close,
};

static void link_init(struct pg_store *st, struct pg_link *l, const char *what)
{
	l->st = st;
	l->what = what;
	l->fd = -1;
	l->backoff_ms = RETRY_MIN_MS;
	uv_timer_init(st->loop, &l->retry);
	l->retry.data = l;
	st->handles++;
}

int mbs_store_pg_open(struct mbs_store **out, uv_loop_t *loop, const char *conninfo,
                      const struct mbs_store_events *ev)
{
	struct pg_store *st = calloc(1, sizeof(*st));
	int rc = RELM_ESTORE;

	if (!st || !(st->conninfo = strdup(conninfo))) {
		free(st);
		return RELM_ENOMEM;
	}
	st->base.ops = &pg_ops;
	st->loop = loop;
	st->ev = *ev;
	st->sent_tail = &st->sent;
	if (!(st->cmd.conn = connect_blocking(conninfo)) ||
	    (rc = mbspg_schema_open(st, st->cmd.conn)) != 0 ||
	    !(st->lst.conn = connect_blocking(conninfo)) ||
	    !mbspg_exec_ok(st->lst.conn, "LISTEN " CHANNEL, PGRES_COMMAND_OK)) {
		PQfinish(st->cmd.conn);
		PQfinish(st->lst.conn);
		free(st->conninfo);
		free(st);
		return rc ? rc : RELM_ESTORE;
	}
	link_init(st, &st->cmd, "command");
	link_init(st, &st->lst, "listening");
	uv_timer_init(loop, &st->kick);
	st->kick.data = st;
	st->handles++;
	/* from here on, failures are handled on the loop (reconnecting) */
	st->cmd.state = st->lst.state = L_CONNECTING;
	if (link_ready(&st->cmd, 0) != 0)
		link_fail(&st->cmd, "setting it up failed");
	if (link_ready(&st->lst, 1) != 0)
		link_fail(&st->lst, "setting it up failed");
	*out = &st->base;
	return 0;
}

int mbs_store_is_pg(const char *spec)
{
	return !strncmp(spec, "postgresql://", 13) || !strncmp(spec, "postgres://", 11) ||
	       strchr(spec, '=') != NULL;
}


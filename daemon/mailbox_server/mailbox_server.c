/*
 * mailbox_server.c — the mailbox protocol server (proto/mailbox.md) on
 * libuv and SQLite.  See mailbox_server.h for the contract.
 *
 * Shape:
 *  - One struct conn per TCP connection, its uv_tcp_t embedded; freed in
 *    the close callback only.  A connection is in one of three states:
 *
 *        CONN_HELLO --HELLO ok--> CONN_READY --fatal error / EOF--> CONN_CLOSING
 *            \______________ fatal error / EOF / timeout ______________/
 *
 *    CONN_HELLO: nothing but HELLO is accepted; no nonce has been sent.
 *    CONN_READY: nonce sent; requests are rate-limited and served.
 *    CONN_CLOSING: reads stopped; queued output (the final ERROR) drains,
 *    then uv_close.  Nothing new is queued.
 *  - Reading: a per-connection buffer grown up to one maximal frame; the
 *    declared length is bounded (relm_mbox_frame_peek) before the buffer
 *    grows, so a hostile length costs nothing.  When queued output passes
 *    outq_max the connection's reads pause (TCP backpressure) until it
 *    drains to half.
 *  - POSTs are gathered into a pending list and committed together in a
 *    uv_prepare_t callback (seqs assigned per mailbox, one counter read
 *    and write per mailbox per commit); only then are POSTED acks written
 *    and the mailbox's subscribers served.  A subscription that was caught
 *    up (not `dirty`: the store held nothing above `sent`) gets the
 *    committed envelopes straight from the batch in memory — the very
 *    rows the store would return, in the same seq order.  Anything else is
 *    served by "pumping": fetching the next batch with seq > sent from the
 *    store while the connection's output queue is below
 *    RELM_MBOX_OUTQ_LOW; catch-up goes only this way, so a huge backlog
 *    never sits in memory, and a live envelope that meets a full queue
 *    marks its subscription dirty and is left to the pump.
 *  - Subscriptions live only as long as their connection.  Nothing about
 *    readers is stored, so the server cannot count them; retention is by
 *    time only.
 *  - One periodic tick enforces the timeouts (HELLO, stalled half-frame,
 *    stalled writes, idle, closing).
 *  - Output is coalesced per connection per callback: frames are encoded
 *    into the connection's open buffer (`wout`) and every buffer filled
 *    during one of our libuv callbacks (a read, a write completion, the
 *    group commit, the tick) is handed to libuv in one uv_write when that
 *    callback ends (server_hold/server_release).  The group commit of 200
 *    posts thus costs one write of 200 POSTED to each poster and one of
 *    the DELIVERs to each subscriber, not 400.  `outq` counts the open
 *    buffer too, so the read pause, the pump's OUTQ_LOW and the write
 *    stall timeout see exactly the bytes they saw before.
 */
#include "mailbox_server/mailbox_server.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "crypto/crypto.h"
#include "error.h"
#include "log.h"
#include "wire/mailbox_proto.h"

#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#endif

enum conn_state {
	CONN_NONE = 0,
	CONN_HELLO,
	CONN_READY,
	CONN_CLOSING,
};

enum {
	RBUF_INITIAL = 4096,
	CLOSING_GRACE_MS = 2000,   /* a closing peer gets this long to take its ERROR */
	SWEEP_CHUNK = 10000,       /* rows looked at per statement: short write transactions */
	STORE_VERSION = 2,         /* PRAGMA user_version of mailbox.sqlite (store_open) */
	SWEEP_CHUNKS_MAX = 100,    /* per sweep run; the next run continues */
	VALID_IDS = 1024,          /* mailbox ids remembered as valid keys: 32 KiB */
};

struct sub {
	uint8_t mailbox[RELM_MBOX_ID_LEN];
	uint64_t sent;             /* highest seq delivered (or the cursor) */
	int dirty;                 /* the store may hold seq > sent */
};

struct conn {
	uv_tcp_t tcp;
	uv_shutdown_t shutdown_req;
	struct relm_mbox_server *srv;
	struct conn *prev, *next;
	enum conn_state state;
	uint8_t nonce[RELM_MBOX_NONCE_LEN];
	uint8_t *rbuf;
	size_t rcap, rlen;
	int reading;
	uint64_t accepted_at, last_rx, frame_started, write_progress, closing_since;
	double tokens;
	uint64_t tokens_at;
	size_t outq;
	struct sub *subs;
	unsigned nsubs;
	unsigned rr;               /* round-robin start for the pump */
	int in_pump;
	struct wreq *wout;         /* frames queued in this callback, not yet written */
	struct conn *dirty_next;   /* on srv->dirty (flushed when the callback ends) */
	int dirty;
	uint8_t addr[16];          /* the peer's address as counted by the per-address cap */
};

struct pending_post {
	struct pending_post *next;
	struct conn *conn;         /* NULL once the poster has gone */
	size_t ord;                /* position in its batch (commit_batch's sort) */
	uint32_t tag;
	uint64_t seq;
	uint8_t mailbox[RELM_MBOX_ID_LEN];
	size_t len;
	uint8_t env[];
};

struct wreq {
	uv_write_t req;
	struct conn *conn;
	size_t len, cap;
	uint8_t data[];
};

enum stmt_id {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
	ST_SET_SEQ, ST_INSERT, ST_FETCH, ST_HEAD, ST_OLDEST,
	ST_LEASE_GET, ST_LEASE_PUT, ST_LEASE_DEL,
	ST_SWEEP, ST_SWEEP_LEASES,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN]    = "BEGIN IMMEDIATE",
	[ST_COMMIT]   = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	/* No RETURNING: SQLite gathers RETURNING rows in an ephemeral table,
	 * opened and closed per execution, which cost more than the insert. */
	[ST_SET_SEQ]  = "INSERT INTO mailbox(id, last_seq) VALUES(?1, ?2) "
	                "ON CONFLICT(id) DO UPDATE SET last_seq = excluded.last_seq",
	[ST_INSERT]   = "INSERT INTO envelope(mailbox, seq, received_at, body) VALUES(?1, ?2, ?3, ?4)",
	[ST_FETCH]    = "SELECT seq, body FROM envelope WHERE mailbox = ?1 AND seq > ?2 "
	                "ORDER BY seq LIMIT ?3",
	[ST_HEAD]     = "SELECT last_seq FROM mailbox WHERE id = ?1",
	[ST_OLDEST]   = "SELECT min(seq) FROM envelope WHERE mailbox = ?1",
	[ST_LEASE_GET]= "SELECT holder, expires_at FROM lease WHERE mailbox = ?1 AND name = ?2",
	[ST_LEASE_PUT]= "INSERT OR REPLACE INTO lease(mailbox, name, holder, expires_at) "
	                "VALUES(?1, ?2, ?3, ?4)",
	[ST_LEASE_DEL]= "DELETE FROM lease WHERE mailbox = ?1 AND name = ?2",
	/* Envelopes in rowid order are in commit order, so in received_at
	 * order as long as the wall clock does not step back: the sweep looks
	 * at the oldest rows only and needs no index on received_at (which
	 * cost a quarter of a POST's instructions).  See store_open. */
	[ST_SWEEP]    = "DELETE FROM envelope WHERE rowid IN "
	                "(SELECT rowid FROM envelope ORDER BY rowid LIMIT ?2) AND received_at < ?1",
	[ST_SWEEP_LEASES] = "DELETE FROM lease WHERE expires_at <= ?1",
};

struct relm_mbox_server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	uv_timer_t tick;
	uv_timer_t sweep;
	uv_prepare_t commit;
	struct relm_mbox_server_config cfg;
	uint16_t port;
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	struct conn *conns;
	struct conn *dirty;        /* connections with a wout to write at release */
	unsigned hold;             /* inside one of our callbacks: output waits for its end */
	struct pending_post *pend_head, **pend_tail;
	struct pending_post **sorted;   /* commit_batch's scratch array */
	size_t sorted_cap;
	int closing;
	unsigned open_handles;     /* server-owned handles not yet closed */
	void (*close_cb)(void *arg);
	void *close_arg;
	struct relm_mbox_server_stats stats;
	/* Mailbox ids that passed relm_ed25519_is_valid, direct-mapped by their
	 * first bytes.  The check (decompression and a multiplication by the
	 * group order) was ~90 % of the server's instructions per POST, and a
	 * relmd posts to the same few mailboxes over and over.  Validity is a
	 * function of the 32 bytes alone, so a hit needs no check; a colliding
	 * id only evicts. */
	struct {
		uint8_t id[RELM_MBOX_ID_LEN];
		uint8_t used;      /* the all-zero id must not match an empty slot */
	} valid_ids[VALID_IDS];
};

static void conn_pump(struct conn *c);
static void conn_close(struct conn *c);
static void conn_resume(struct conn *c);
static void server_hold(struct relm_mbox_server *s);
static void server_release(struct relm_mbox_server *s);
static void server_maybe_done(struct relm_mbox_server *s);
static void on_commit(uv_prepare_t *h);

/* ---- clock ---- */

static uint64_t real_now_ms(void *ctx)
{
	struct timeval tv;

	(void)ctx;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static uint64_t wall_ms(const struct relm_mbox_server *s)
{
	return s->cfg.now_ms(s->cfg.clock_ctx);
}

void relm_mbox_server_config_default(struct relm_mbox_server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->retention_ms = (uint64_t)RELM_MBOX_RETENTION_DAYS * 86400000u;
	cfg->sweep_ms = RELM_MBOX_SWEEP_MS;
	cfg->max_conns = RELM_MBOX_MAX_CONNS;
	cfg->max_conns_per_addr = RELM_MBOX_MAX_CONNS_PER_ADDR;
	cfg->max_subs = RELM_MBOX_MAX_SUBS;
	cfg->rate = RELM_MBOX_RATE;
	cfg->burst = RELM_MBOX_BURST;
	cfg->outq_max = RELM_MBOX_OUTQ_MAX;
	cfg->hello_timeout_ms = RELM_MBOX_HELLO_TIMEOUT_MS;
	cfg->frame_timeout_ms = RELM_MBOX_FRAME_TIMEOUT_MS;
	cfg->write_timeout_ms = RELM_MBOX_WRITE_TIMEOUT_MS;
	cfg->idle_timeout_ms = RELM_MBOX_IDLE_TIMEOUT_MS;
	cfg->now_ms = real_now_ms;
}

/* ---- store ---- */

static int db_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_err("mailbox store: %s: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return RELM_ESTORE;
	}
	return 0;
}

/* Run a statement that returns no rows we need. */
static int st_run(struct relm_mbox_server *s, enum stmt_id id)
{
	sqlite3_stmt *st = s->st[id];
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_err("mailbox store: %s", sqlite3_errmsg(s->db));
		return RELM_ESTORE;
	}
	return 0;
}

static void st_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* mkdir -p with 0700 for what we create; the state folder itself is
 * forced to 0700 (it holds who posts to whom and when). */
static int ensure_dir(const char *dir)
{
	char tmp[4096];
	struct stat sb;
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, dir, n + 1);
	for (size_t i = 1; i < n; i++) {
		if (tmp[i] != '/')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return -errno;
		tmp[i] = '/';
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -errno;
	if (stat(dir, &sb) != 0)
		return -errno;
	if (!S_ISDIR(sb.st_mode))
		return -ENOTDIR;
	if ((sb.st_mode & 077) && chmod(dir, 0700) != 0)
		return -errno;
	return 0;
}

static int store_open(struct relm_mbox_server *s, const char *dir)
{
	char path[4096];
	sqlite3_stmt *st = NULL;
	int rc, fd, version;

	rc = ensure_dir(dir);
	if (rc)
		return rc;
	if ((size_t)snprintf(path, sizeof(path), "%s/mailbox.sqlite", dir) >= sizeof(path))
		return -ENAMETOOLONG;
	/* Create the file ourselves so it is 0600 whatever the umask; SQLite
	 * gives the -wal and -shm files the same mode. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	close(fd);

	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		log_err("mailbox store: open %s: %s", path, sqlite3_errstr(rc));
		return RELM_ESTORE;
	}
	sqlite3_busy_timeout(s->db, RELM_MBOX_BUSY_TIMEOUT_MS);
	if ((rc = db_exec(s->db, "PRAGMA journal_mode=WAL")) ||
	    (rc = db_exec(s->db, "PRAGMA synchronous=FULL")))
		return rc;

	if ((rc = db_exec(s->db, "BEGIN IMMEDIATE")))
		return rc;
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		db_exec(s->db, "ROLLBACK");
		return RELM_ECORRUPT;
	}
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > STORE_VERSION) {
		db_exec(s->db, "ROLLBACK");
		return RELM_ESTORE_NEWER;
	}
	/* Version 2 dropped version 1's index on envelope(received_at).  New
	 * rows get rowid = largest + 1 (no AUTOINCREMENT needed: the sweep
	 * deletes from the low end, so the largest stays), hence rowid order
	 * is commit order and the sweep walks it (ST_SWEEP).  A wall clock
	 * stepped back by D delays the deletion of rows behind it by at most
	 * D; nothing is ever deleted before its time. */
	if (version == 1) {
		rc = db_exec(s->db, "DROP INDEX IF EXISTS envelope_received;"
		                    "PRAGMA user_version=2;");
		if (rc) {
			db_exec(s->db, "ROLLBACK");
			return rc;
		}
	}
	if (version == 0) {
		/* mailbox.last_seq is kept even when retention has deleted every
		 * envelope, so a mailbox's sequence numbers never go back and no
		 * client cursor is ever re-used. */
		rc = db_exec(s->db,
		    "CREATE TABLE mailbox(id BLOB PRIMARY KEY, last_seq INTEGER NOT NULL) WITHOUT ROWID;"
		    "CREATE TABLE envelope(mailbox BLOB NOT NULL, seq INTEGER NOT NULL,"
		    " received_at INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY(mailbox, seq));"
		    "CREATE TABLE lease(mailbox BLOB NOT NULL, name BLOB NOT NULL,"
		    " holder BLOB NOT NULL, expires_at INTEGER NOT NULL,"
		    " PRIMARY KEY(mailbox, name)) WITHOUT ROWID;"
		    "PRAGMA user_version=2;");
		if (rc) {
			db_exec(s->db, "ROLLBACK");
			return rc;
		}
	}
	if ((rc = db_exec(s->db, "COMMIT")))
		return rc;

	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                       &s->st[i], NULL) != SQLITE_OK) {
			log_err("mailbox store: prepare: %s", sqlite3_errmsg(s->db));
			return RELM_ESTORE;
		}
	}
	return 0;
}

static void store_close(struct relm_mbox_server *s)
{
	for (int i = 0; i < ST_COUNT; i++) {
		sqlite3_finalize(s->st[i]);
		s->st[i] = NULL;
	}
	if (s->db)
		sqlite3_close(s->db);
	s->db = NULL;
}

/* head = last seq ever assigned, oldest = lowest stored (0 when none). */
static int store_head(struct relm_mbox_server *s, const uint8_t mb[RELM_MBOX_ID_LEN],
                      uint64_t *head, uint64_t *oldest)
{
	sqlite3_stmt *st = s->st[ST_HEAD];
	int rc;

	*head = *oldest = 0;
	sqlite3_bind_blob(st, 1, mb, RELM_MBOX_ID_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*head = (uint64_t)sqlite3_column_int64(st, 0);
	st_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return RELM_ESTORE;
	st = s->st[ST_OLDEST];
	sqlite3_bind_blob(st, 1, mb, RELM_MBOX_ID_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*oldest = (uint64_t)sqlite3_column_int64(st, 0);
	st_done(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : RELM_ESTORE;
}

/* ---- output ---- */

static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = container_of(req, struct wreq, req);
	struct conn *c = w->conn;
	struct relm_mbox_server *s = c->srv;

	c->outq -= w->len;
	c->write_progress = uv_now(s->loop);
	free(w);
	if (status < 0) {
		conn_close(c);
		return;
	}
	if (c->state == CONN_CLOSING || uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	server_hold(s);
	if (!c->reading && c->outq <= s->cfg.outq_max / 2)
		conn_resume(c);
	if (c->state == CONN_READY)
		conn_pump(c);
	server_release(s);
}

/* Hand the connection's open buffer to libuv.  0, or a negative code
 * (the connection is then being closed). */
static int conn_flush(struct conn *c)
{
	struct wreq *w = c->wout;
	uv_buf_t b;
	int rc;

	if (!w)
		return 0;
	c->wout = NULL;
	if (uv_is_closing((uv_handle_t *)&c->tcp)) {
		c->outq -= w->len;
		free(w);
		return RELM_ECLOSED;
	}
	w->conn = c;
	b = uv_buf_init((char *)w->data, (unsigned)w->len);
	rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	if (rc) {
		c->outq -= w->len;
		free(w);
		conn_close(c);
		return rc;
	}
	return 0;
}

/* Our callbacks hold the output while they run and release it when they
 * end: every connection that got frames meanwhile is written once. */
static void server_hold(struct relm_mbox_server *s)
{
	s->hold++;
}

static void server_release(struct relm_mbox_server *s)
{
	struct conn *c;

	if (--s->hold)
		return;
	while ((c = s->dirty)) {
		s->dirty = c->dirty_next;
		c->dirty_next = NULL;
		c->dirty = 0;
		conn_flush(c);
	}
}

/* Queue one frame behind those of this callback.  Returns 0 or a negative
 * code (the connection is then being closed). */
static int conn_send(struct conn *c, const struct relm_mbox_frame *f)
{
	struct relm_mbox_server *s = c->srv;
	size_t n = relm_mbox_frame_size(f);
	struct wreq *w = c->wout;

	if (uv_is_closing((uv_handle_t *)&c->tcp))
		return RELM_ECLOSED;
	if (!n)
		return RELM_EINVAL;   /* our own bug; never reached with valid frames */
	if (!w || w->cap - w->len < n) {
		size_t cap = w ? w->cap : 0, need = (w ? w->len : 0) + n;
		struct wreq *nw;

		if (cap < RBUF_INITIAL)
			cap = RBUF_INITIAL;
		while (cap < need)
			cap *= 2;
		nw = realloc(w, sizeof(*nw) + cap);
		if (!nw) {
			conn_close(c);
			return RELM_ENOMEM;
		}
		if (!w)
			nw->len = 0;
		nw->cap = cap;
		c->wout = w = nw;
	}
	relm_mbox_frame_encode(w->data + w->len, n, f);
	w->len += n;
	if (c->outq == 0)
		c->write_progress = uv_now(s->loop);
	c->outq += n;
	if (!s->hold)
		return conn_flush(c);
	if (!c->dirty) {
		c->dirty = 1;
		c->dirty_next = s->dirty;
		s->dirty = c;
	}
	return 0;
}

static void conn_error(struct conn *c, uint32_t tag, unsigned code, int fatal, const char *text);

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = container_of(req, struct conn, shutdown_req);

	(void)status;
	conn_close(c);
}

/* Send ERROR; if fatal, stop reading and close once it has drained. */
static void conn_error(struct conn *c, uint32_t tag, unsigned code, int fatal, const char *text)
{
	struct relm_mbox_frame f;

	if (c->state == CONN_CLOSING || uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	memset(&f, 0, sizeof(f));
	f.version = RELM_MBOX_VERSION;
	f.type = RELM_MBOX_ERROR;
	f.u.error.tag = tag;
	f.u.error.code = (uint16_t)code;
	f.u.error.flags = fatal ? RELM_MBOX_ERRF_FATAL : 0;
	f.u.error.text = text;
	f.u.error.text_len = text ? strlen(text) : 0;
	if (f.u.error.text_len > RELM_MBOX_ERROR_TEXT_MAX)
		f.u.error.text_len = RELM_MBOX_ERROR_TEXT_MAX;
	c->srv->stats.errors++;
	log_debug("mailbox: conn %p: error %s%s", (void *)c, relm_mbox_errname(code),
	          fatal ? " (closing)" : "");
	if (conn_send(c, &f) != 0 || !fatal)
		return;
	/* uv_shutdown waits for the writes libuv has, not for our buffer */
	if (conn_flush(c) != 0)
		return;
	c->state = CONN_CLOSING;
	c->closing_since = uv_now(c->srv->loop);
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = 0;
	}
	if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
		conn_close(c);
}

/* ---- connections ---- */

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *c = container_of((uv_tcp_t *)h, struct conn, tcp);
	struct relm_mbox_server *s = c->srv;

	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->stats.connections--;
	free(c->rbuf);
	free(c->subs);
	free(c);
	server_maybe_done(s);
}

static void conn_close(struct conn *c)
{
	struct pending_post *p;

	if (uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	for (p = c->srv->pend_head; p; p = p->next)
		if (p->conn == c)
			p->conn = NULL;
	if (c->wout) {
		/* never handed to libuv: nothing to cancel (it may stay on
		 * srv->dirty until the release; the flush skips it) */
		c->outq -= c->wout->len;
		free(c->wout);
		c->wout = NULL;
	}
	c->state = CONN_CLOSING;
	c->reading = 0;
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static struct sub *sub_find(struct conn *c, const uint8_t mb[RELM_MBOX_ID_LEN])
{
	for (unsigned i = 0; i < c->nsubs; i++)
		if (memcmp(c->subs[i].mailbox, mb, RELM_MBOX_ID_LEN) == 0)
			return &c->subs[i];
	return NULL;
}

/* One DELIVER on sb; sent advances even if the connection is going. */
static int deliver(struct conn *c, struct sub *sb, uint64_t seq, const uint8_t *env, size_t len)
{
	struct relm_mbox_frame f;
	int rc;

	memset(&f, 0, sizeof(f));
	f.version = RELM_MBOX_VERSION;
	f.type = RELM_MBOX_DELIVER;
	memcpy(f.u.deliver.mailbox, sb->mailbox, RELM_MBOX_ID_LEN);
	f.u.deliver.seq = seq;
	f.u.deliver.env = env;
	f.u.deliver.env_len = len;
	sb->sent = seq;
	rc = conn_send(c, &f);
	if (rc == 0)
		c->srv->stats.delivered++;
	return rc;
}

/* Deliver stored envelopes to dirty subscriptions while the output queue
 * is short.  Round-robin over subscriptions, one batch each, so one huge
 * mailbox does not starve the others. */
static void conn_pump(struct conn *c)
{
	struct relm_mbox_server *s = c->srv;
	sqlite3_stmt *st = s->st[ST_FETCH];
	unsigned idle = 0;

	if (c->in_pump)
		return;
	c->in_pump = 1;
	while (c->state == CONN_READY && c->nsubs && c->outq < RELM_MBOX_OUTQ_LOW &&
	       idle < c->nsubs) {
		struct sub *sb = &c->subs[c->rr % c->nsubs];
		int rows = 0, rc;

		c->rr = (c->rr + 1) % c->nsubs;
		if (!sb->dirty) {
			idle++;
			continue;
		}
		idle = 0;
		sqlite3_bind_blob(st, 1, sb->mailbox, RELM_MBOX_ID_LEN, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)sb->sent);
		sqlite3_bind_int(st, 3, RELM_MBOX_DELIVER_BATCH);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			int n = sqlite3_column_bytes(st, 1);

			rows++;
			if (deliver(c, sb, (uint64_t)sqlite3_column_int64(st, 0),
			            sqlite3_column_blob(st, 1), n > 0 ? (size_t)n : 0) != 0)
				break;
		}
		st_done(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			log_err("mailbox store: fetch: %s", sqlite3_errmsg(s->db));
			conn_error(c, 0, RELM_MBOX_E_STORE, 1, "store read failed");
			break;
		}
		if (rows < RELM_MBOX_DELIVER_BATCH)
			sb->dirty = 0;
	}
	c->in_pump = 0;
}

/* Token bucket: refill by elapsed loop time, then take cost if there. */
static int conn_take_tokens(struct conn *c, uint32_t cost)
{
	struct relm_mbox_server *s = c->srv;
	uint64_t now = uv_now(s->loop);

	c->tokens += (double)(now - c->tokens_at) * s->cfg.rate / 1000.0;
	if (c->tokens > s->cfg.burst)
		c->tokens = s->cfg.burst;
	c->tokens_at = now;
	if (c->tokens < cost)
		return 0;
	c->tokens -= cost;
	return 1;
}

/* The first four body bytes of every request are its tag; used to label
 * errors for frames we could not decode. */
static uint32_t guess_tag(const uint8_t *buf, size_t len)
{
	if (len < RELM_MBOX_HDR_LEN + 4)
		return 0;
	buf += RELM_MBOX_HDR_LEN;
	return (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
}

static void commit_schedule(struct relm_mbox_server *s);

static void handle_hello(struct conn *c, const struct relm_mbox_hello *h)
{
	struct relm_mbox_server *s = c->srv;
	struct relm_mbox_frame f;

	if (h->flags != 0) {
		conn_error(c, 0, RELM_MBOX_E_BAD_REQUEST, 1, "unknown HELLO flags");
		return;
	}
	if (h->min_version > RELM_MBOX_VERSION || h->max_version < RELM_MBOX_VERSION) {
		conn_error(c, 0, RELM_MBOX_E_VERSION, 1, "this server speaks version 1 only");
		return;
	}
	randombytes_buf(c->nonce, sizeof(c->nonce));
	memset(&f, 0, sizeof(f));
	f.version = RELM_MBOX_VERSION;
	f.type = RELM_MBOX_CHALLENGE;
	f.u.challenge.version = RELM_MBOX_VERSION;
	memcpy(f.u.challenge.nonce, c->nonce, sizeof(c->nonce));
	f.u.challenge.max_envelope = RELM_MBOX_ENVELOPE_MAX;
	f.u.challenge.max_subs = s->cfg.max_subs;
	f.u.challenge.rate = s->cfg.rate;
	f.u.challenge.burst = s->cfg.burst;
	f.u.challenge.retention_s = (uint32_t)(s->cfg.retention_ms / 1000u > UINT32_MAX ?
	                                       UINT32_MAX : s->cfg.retention_ms / 1000u);
	c->state = CONN_READY;
	c->tokens = s->cfg.burst;
	c->tokens_at = uv_now(s->loop);
	conn_send(c, &f);
}

/* relm_ed25519_is_valid through the server's cache of valid ids. */
static int mailbox_is_valid(struct relm_mbox_server *s, const uint8_t mb[RELM_MBOX_ID_LEN])
{
	unsigned i = (mb[0] | (unsigned)mb[1] << 8) % VALID_IDS;

	if (s->valid_ids[i].used && memcmp(s->valid_ids[i].id, mb, RELM_MBOX_ID_LEN) == 0)
		return 1;
	if (!relm_ed25519_is_valid(mb))
		return 0;
	memcpy(s->valid_ids[i].id, mb, RELM_MBOX_ID_LEN);
	s->valid_ids[i].used = 1;
	return 1;
}

static void handle_post(struct conn *c, const struct relm_mbox_post *p)
{
	struct relm_mbox_server *s = c->srv;
	struct pending_post *pp;

	if (!mailbox_is_valid(s, p->mailbox)) {
		conn_error(c, p->tag, RELM_MBOX_E_BAD_MAILBOX, 0, "mailbox id is not an Ed25519 key");
		return;
	}
	pp = malloc(sizeof(*pp) + p->env_len);
	if (!pp) {
		conn_error(c, p->tag, RELM_MBOX_E_STORE, 0, "out of memory");
		return;
	}
	pp->next = NULL;
	pp->conn = c;
	pp->tag = p->tag;
	pp->seq = 0;
	memcpy(pp->mailbox, p->mailbox, RELM_MBOX_ID_LEN);
	pp->len = p->env_len;
	memcpy(pp->env, p->env, p->env_len);
	*s->pend_tail = pp;
	s->pend_tail = &pp->next;
	commit_schedule(s);
}

static void handle_subscribe(struct conn *c, const struct relm_mbox_subscribe *r)
{
	struct relm_mbox_server *s = c->srv;
	struct relm_mbox_frame f;
	struct sub *sb;
	uint64_t head, oldest;
	int rc;

	rc = relm_mbox_sub_verify(r->sig, c->nonce, r->mailbox, r->cursor);
	if (rc == RELM_EBADKEY) {
		conn_error(c, r->tag, RELM_MBOX_E_BAD_MAILBOX, 0, "mailbox id is not an Ed25519 key");
		return;
	}
	if (rc) {
		conn_error(c, r->tag, RELM_MBOX_E_BAD_SIGNATURE, 0,
		           "subscription not signed by the mailbox key over this connection's nonce");
		return;
	}
	if (store_head(s, r->mailbox, &head, &oldest) != 0) {
		conn_error(c, r->tag, RELM_MBOX_E_STORE, 0, "store read failed");
		return;
	}
	sb = sub_find(c, r->mailbox);
	if (!sb) {
		if (c->nsubs >= s->cfg.max_subs) {
			conn_error(c, r->tag, RELM_MBOX_E_TOO_MANY_SUBS, 0, "subscription limit reached");
			return;
		}
		if (!c->subs) {
			c->subs = calloc(s->cfg.max_subs, sizeof(*c->subs));
			if (!c->subs) {
				conn_error(c, r->tag, RELM_MBOX_E_STORE, 0, "out of memory");
				return;
			}
		}
		sb = &c->subs[c->nsubs++];
		memcpy(sb->mailbox, r->mailbox, RELM_MBOX_ID_LEN);
	}
	/* A second SUBSCRIBE to the same mailbox restarts it from its cursor. */
	sb->sent = r->cursor;
	sb->dirty = 1;

	memset(&f, 0, sizeof(f));
	f.version = RELM_MBOX_VERSION;
	f.type = RELM_MBOX_SUBSCRIBED;
	f.u.subscribed.tag = r->tag;
	memcpy(f.u.subscribed.mailbox, r->mailbox, RELM_MBOX_ID_LEN);
	f.u.subscribed.head = head;
	f.u.subscribed.oldest = oldest;
	if (conn_send(c, &f) == 0)
		conn_pump(c);
}

static void handle_unsubscribe(struct conn *c, const struct relm_mbox_unsub *r)
{
	struct relm_mbox_frame f;
	struct sub *sb = sub_find(c, r->mailbox);

	if (!sb) {
		conn_error(c, r->tag, RELM_MBOX_E_NOT_SUBSCRIBED, 0, "not subscribed");
		return;
	}
	*sb = c->subs[--c->nsubs];
	memset(&f, 0, sizeof(f));
	f.version = RELM_MBOX_VERSION;
	f.type = RELM_MBOX_UNSUBSCRIBED;
	f.u.unsub = *r;
	conn_send(c, &f);
}

static int is_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* Compare-and-set with TTL (proto/mailbox.md §5.6), one transaction. */
static int lease_cas(struct relm_mbox_server *s, const struct relm_mbox_lease *l,
                     struct relm_mbox_lease_result *res)
{
	uint8_t live[RELM_MBOX_TOKEN_LEN] = { 0 };
	uint64_t now = wall_ms(s), expires = 0;
	sqlite3_stmt *st;
	int rc;

	if ((rc = st_run(s, ST_BEGIN)))
		return rc;
	st = s->st[ST_LEASE_GET];
	sqlite3_bind_blob(st, 1, l->mailbox, RELM_MBOX_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, l->name, (int)l->name_len, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == RELM_MBOX_TOKEN_LEN) {
		expires = (uint64_t)sqlite3_column_int64(st, 1);
		if (expires > now)
			memcpy(live, sqlite3_column_blob(st, 0), RELM_MBOX_TOKEN_LEN);
		else
			expires = 0;
	}
	st_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto fail;

	memset(res, 0, sizeof(*res));
	res->tag = l->tag;
	if (memcmp(live, l->expected, RELM_MBOX_TOKEN_LEN) != 0) {
		res->granted = 0;
		memcpy(res->holder, live, RELM_MBOX_TOKEN_LEN);
		res->remaining_ms = expires > now ? (uint32_t)(expires - now) : 0;
		st_run(s, ST_ROLLBACK);
		return 0;
	}
	if (is_zero(l->holder, RELM_MBOX_TOKEN_LEN)) {
		st = s->st[ST_LEASE_DEL];
		sqlite3_bind_blob(st, 1, l->mailbox, RELM_MBOX_ID_LEN, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, l->name, (int)l->name_len, SQLITE_STATIC);
		if (st_run(s, ST_LEASE_DEL))
			goto fail;
	} else {
		st = s->st[ST_LEASE_PUT];
		sqlite3_bind_blob(st, 1, l->mailbox, RELM_MBOX_ID_LEN, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, l->name, (int)l->name_len, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, l->holder, RELM_MBOX_TOKEN_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)(now + l->ttl_ms));
		if (st_run(s, ST_LEASE_PUT))
			goto fail;
		memcpy(res->holder, l->holder, RELM_MBOX_TOKEN_LEN);
		res->remaining_ms = l->ttl_ms;
	}
	if (st_run(s, ST_COMMIT))
		goto fail;
	res->granted = 1;
	return 0;
fail:
	st_run(s, ST_ROLLBACK);
	return RELM_ESTORE;
}

static void handle_lease(struct conn *c, const struct relm_mbox_lease *l)
{
	struct relm_mbox_frame f;
	int release = is_zero(l->holder, RELM_MBOX_TOKEN_LEN);
	int rc;

	if (release ? l->ttl_ms != 0 : (l->ttl_ms < 1 || l->ttl_ms > RELM_MBOX_LEASE_TTL_MAX_MS)) {
		conn_error(c, l->tag, RELM_MBOX_E_BAD_REQUEST, 0,
		           "ttl_ms must be 1..600000 to hold, 0 to release");
		return;
	}
	rc = relm_mbox_lease_verify(l, c->nonce);
	if (rc == RELM_EBADKEY) {
		conn_error(c, l->tag, RELM_MBOX_E_BAD_MAILBOX, 0, "mailbox id is not an Ed25519 key");
		return;
	}
	if (rc) {
		conn_error(c, l->tag, RELM_MBOX_E_BAD_SIGNATURE, 0,
		           "lease not signed by the mailbox key over this connection's nonce");
		return;
	}
	memset(&f, 0, sizeof(f));
	f.version = RELM_MBOX_VERSION;
	f.type = RELM_MBOX_LEASE_RESULT;
	if (lease_cas(c->srv, l, &f.u.lease_result) != 0) {
		conn_error(c, l->tag, RELM_MBOX_E_STORE, 0, "store write failed");
		return;
	}
	conn_send(c, &f);
}

static void handle_frame(struct conn *c, const uint8_t *buf, size_t len)
{
	struct relm_mbox_frame f;
	int rc = relm_mbox_frame_decode(&f, buf, len);

	if (c->state == CONN_HELLO) {
		if (rc == RELM_EVERSION)
			conn_error(c, 0, RELM_MBOX_E_VERSION, 1, "frame version must be 1");
		else if (rc == 0 && f.type == RELM_MBOX_HELLO)
			handle_hello(c, &f.u.hello);
		else if (rc == RELM_EMALFORMED && f.type == RELM_MBOX_HELLO)
			conn_error(c, 0, RELM_MBOX_E_MALFORMED, 1, "malformed HELLO");
		else
			conn_error(c, 0, RELM_MBOX_E_BAD_STATE, 1, "HELLO must come first");
		return;
	}

	if (!conn_take_tokens(c, relm_mbox_cost(len))) {
		conn_error(c, guess_tag(buf, len), RELM_MBOX_E_RATE_LIMITED, 0,
		           "rate limit: request dropped");
		return;
	}
	if (rc == 0 && f.version != RELM_MBOX_VERSION)
		rc = RELM_EVERSION;
	switch (rc) {
	case 0:
		break;
	case RELM_EVERSION:
		conn_error(c, 0, RELM_MBOX_E_VERSION, 1, "frame version differs from the negotiated one");
		return;
	case RELM_ENOTFOUND:
		conn_error(c, guess_tag(buf, len), RELM_MBOX_E_UNKNOWN_TYPE, 0, "unknown frame type");
		return;
	case RELM_ETOOBIG:
		conn_error(c, guess_tag(buf, len), RELM_MBOX_E_TOO_BIG, 0, "envelope above 65536 bytes");
		return;
	default:
		conn_error(c, guess_tag(buf, len), RELM_MBOX_E_MALFORMED, 0, "malformed frame body");
		return;
	}

	switch (f.type) {
	case RELM_MBOX_POST:        handle_post(c, &f.u.post); break;
	case RELM_MBOX_SUBSCRIBE:   handle_subscribe(c, &f.u.subscribe); break;
	case RELM_MBOX_UNSUBSCRIBE: handle_unsubscribe(c, &f.u.unsub); break;
	case RELM_MBOX_LEASE:       handle_lease(c, &f.u.lease); break;
	case RELM_MBOX_PING: {
		struct relm_mbox_frame pong;

		memset(&pong, 0, sizeof(pong));
		pong.version = RELM_MBOX_VERSION;
		pong.type = RELM_MBOX_PONG;
		pong.u.ping.tag = f.u.ping.tag;
		conn_send(c, &pong);
		break;
	}
	case RELM_MBOX_HELLO:
		conn_error(c, 0, RELM_MBOX_E_BAD_STATE, 1, "HELLO twice");
		break;
	default:
		/* a server-to-client type sent to the server */
		conn_error(c, guess_tag(buf, len), RELM_MBOX_E_BAD_STATE, 0,
		           "frame type not accepted by a server");
		break;
	}
}

/* Handle every complete frame in the read buffer, then compact it. */
static void conn_process(struct conn *c)
{
	struct relm_mbox_server *s = c->srv;
	size_t pos = 0, flen;
	int rc;

	while ((c->state == CONN_HELLO || c->state == CONN_READY) &&
	       c->outq <= s->cfg.outq_max) {
		rc = relm_mbox_frame_peek(&flen, c->rbuf + pos, c->rlen - pos);
		if (rc == RELM_ETRUNCATED)
			break;
		if (rc == RELM_ETOOBIG) {
			conn_error(c, 0, RELM_MBOX_E_TOO_BIG, 1, "frame length above 65582 bytes");
			break;
		}
		if (rc) {
			conn_error(c, 0, RELM_MBOX_E_MALFORMED, 1, "frame length below 2");
			break;
		}
		handle_frame(c, c->rbuf + pos, flen);
		pos += flen;
	}
	if (pos) {
		memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
		c->rlen -= pos;
	}
	/* The frame deadline counts from a frame's first byte: a new partial
	 * frame starts the clock, more bytes of the same one do not (a frame
	 * trickled a byte at a time must not hold the connection for ever). */
	if (!c->rlen)
		c->frame_started = 0;
	else if (pos || !c->frame_started)
		c->frame_started = uv_now(s->loop);
	if (c->outq > s->cfg.outq_max && c->reading && c->state != CONN_CLOSING) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = 0;
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = container_of((uv_tcp_t *)h, struct conn, tcp);
	size_t need = RBUF_INITIAL, flen;

	(void)suggested;
	/* Grow to the declared frame size (already bounded by peek) or, before
	 * the header is complete, keep a small buffer. */
	if (c->rlen >= 4 && relm_mbox_frame_peek(&flen, c->rbuf, c->rlen) == RELM_ETRUNCATED &&
	    c->rlen >= 4) {
		uint32_t l = (uint32_t)c->rbuf[0] << 24 | (uint32_t)c->rbuf[1] << 16 |
		             (uint32_t)c->rbuf[2] << 8 | c->rbuf[3];
		if (l <= RELM_MBOX_FRAME_MAX)
			need = 4 + (size_t)l;
	}
	if (need < c->rlen + 1)
		need = c->rlen + 1;
	if (need > RELM_MBOX_FRAME_TOTAL_MAX)
		need = RELM_MBOX_FRAME_TOTAL_MAX;
	if (need > c->rcap) {
		uint8_t *nb = realloc(c->rbuf, need);
		if (nb) {
			c->rbuf = nb;
			c->rcap = need;
		}
	}
	*buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = container_of((uv_tcp_t *)stream, struct conn, tcp);

	(void)buf;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (nread == 0)
		return;
	c->rlen += (size_t)nread;
	c->last_rx = uv_now(c->srv->loop);
	server_hold(c->srv);
	conn_process(c);
	server_release(c->srv);
}

/* Reads were paused for a full output queue: handle what was buffered
 * before the pause, then read again. */
static void conn_resume(struct conn *c)
{
	if (c->reading || c->state == CONN_CLOSING)
		return;
	conn_process(c);     /* frames buffered before the pause */
	if (c->outq > c->srv->cfg.outq_max || c->state == CONN_CLOSING)
		return;
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
		c->reading = 1;
	else
		conn_close(c);
}

/* The key the per-address cap counts by: an IPv4 address as ::ffff:a.b.c.d,
 * an IPv6 address by its /64 (one subscriber usually holds a whole /64,
 * so per /128 would cap nothing). */
static void peer_key(uv_tcp_t *tcp, uint8_t key[16])
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	memset(key, 0, 16);
	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	} else if (ss.ss_family == AF_INET6) {
		const uint8_t *a = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
		static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

		memcpy(key, a, memcmp(a, v4mapped, 12) == 0 ? 16 : 8);
	}
}

/* Open connections from c's address, c included.  A walk of the list:
 * at most max_conns entries, once per accepted connection. */
static uint32_t conns_from(const struct relm_mbox_server *s, const struct conn *c)
{
	uint32_t n = 0;

	for (const struct conn *o = s->conns; o; o = o->next)
		if (!uv_is_closing((const uv_handle_t *)&o->tcp) && memcmp(o->addr, c->addr, 16) == 0)
			n++;
	return n;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct relm_mbox_server *s = container_of((uv_tcp_t *)server, struct relm_mbox_server, listener);
	struct conn *c;
	uint64_t now = uv_now(s->loop);

	if (status < 0 || s->closing)
		return;
	c = calloc(1, sizeof(*c));
	if (!c)
		return;   /* the pending connection stays in the backlog; retried on the next event */
	c->srv = s;
	uv_tcp_init(s->loop, &c->tcp);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->stats.connections++;
	s->stats.accepted++;
	c->state = CONN_HELLO;
	c->accepted_at = c->last_rx = c->write_progress = now;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	if (s->stats.connections > s->cfg.max_conns) {
		conn_error(c, 0, RELM_MBOX_E_OVERLOADED, 1, "too many connections");   /* flushed: fatal */
		return;
	}
	peer_key(&c->tcp, c->addr);
	if (s->cfg.max_conns_per_addr && conns_from(s, c) > s->cfg.max_conns_per_addr) {
		conn_error(c, 0, RELM_MBOX_E_OVERLOADED, 1, "too many connections from this address");
		return;
	}
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
		conn_close(c);
		return;
	}
	c->reading = 1;
}

/* ---- group commit ---- */

static void commit_schedule(struct relm_mbox_server *s)
{
	if (!uv_is_active((uv_handle_t *)&s->commit))
		uv_prepare_start(&s->commit, on_commit);
}

/* Batch order by mailbox, then by arrival: one mailbox's posts are
 * contiguous and keep the order they were read in. */
static int post_cmp(const void *a, const void *b)
{
	const struct pending_post *x = *(const struct pending_post *const *)a;
	const struct pending_post *y = *(const struct pending_post *const *)b;
	int d = memcmp(x->mailbox, y->mailbox, RELM_MBOX_ID_LEN);

	if (d)
		return d;
	return x->ord < y->ord ? -1 : x->ord > y->ord;
}

/* Store the batch in one transaction.  Seqs are assigned here, per mailbox
 * in arrival order: each mailbox in the batch costs one read of its
 * counter and one write of the new value, each post one insert. */
static int commit_batch(struct relm_mbox_server *s, struct pending_post *batch)
{
	uint64_t now = wall_ms(s);
	struct pending_post *p, **v;
	sqlite3_stmt *st;
	size_t n = 0, i, j;
	int rc;

	for (p = batch; p; p = p->next)
		p->ord = n++;
	if (n > s->sorted_cap) {
		v = realloc(s->sorted, n * sizeof(*v));
		if (!v)
			return RELM_ENOMEM;
		s->sorted = v;
		s->sorted_cap = n;
	}
	v = s->sorted;
	for (p = batch; p; p = p->next)
		v[p->ord] = p;
	if (n > 1)
		qsort(v, n, sizeof(*v), post_cmp);

	if ((rc = st_run(s, ST_BEGIN)))
		return rc;
	for (i = 0; i < n; i = j) {
		uint64_t last = 0;

		st = s->st[ST_HEAD];
		sqlite3_bind_blob(st, 1, v[i]->mailbox, RELM_MBOX_ID_LEN, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			last = (uint64_t)sqlite3_column_int64(st, 0);
		st_done(st);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			goto fail;
		for (j = i; j < n && (j == i || memcmp(v[j]->mailbox, v[i]->mailbox,
		                                       RELM_MBOX_ID_LEN) == 0); j++) {
			p = v[j];
			p->seq = ++last;
			st = s->st[ST_INSERT];
			sqlite3_bind_blob(st, 1, p->mailbox, RELM_MBOX_ID_LEN, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)p->seq);
			sqlite3_bind_int64(st, 3, (sqlite3_int64)now);
			sqlite3_bind_blob(st, 4, p->env, (int)p->len, SQLITE_STATIC);
			if (st_run(s, ST_INSERT))
				goto fail;
		}
		st = s->st[ST_SET_SEQ];
		sqlite3_bind_blob(st, 1, v[i]->mailbox, RELM_MBOX_ID_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)last);
		if (st_run(s, ST_SET_SEQ))
			goto fail;
	}
	if (st_run(s, ST_COMMIT))
		goto fail;
	return 0;
fail:
	log_err("mailbox store: commit failed: %s", sqlite3_errmsg(s->db));
	st_run(s, ST_ROLLBACK);
	return RELM_ESTORE;
}

static void on_commit(uv_prepare_t *h)
{
	struct relm_mbox_server *s = container_of(h, struct relm_mbox_server, commit);
	struct pending_post *batch = s->pend_head, *p, *next;
	struct conn *c;
	int rc;

	uv_prepare_stop(h);
	s->pend_head = NULL;
	s->pend_tail = &s->pend_head;
	if (!batch)
		return;
	rc = commit_batch(s, batch);
	server_hold(s);   /* each poster's acks and each subscriber's DELIVERs: one write */

	/* Acks strictly after the commit (the durability rule). */
	for (p = batch; p; p = p->next) {
		if (!p->conn)
			continue;
		if (rc) {
			conn_error(p->conn, p->tag, RELM_MBOX_E_STORE, 0, "store write failed; retry");
		} else {
			struct relm_mbox_frame f;

			memset(&f, 0, sizeof(f));
			f.version = RELM_MBOX_VERSION;
			f.type = RELM_MBOX_POSTED;
			f.u.posted.tag = p->tag;
			f.u.posted.seq = p->seq;
			conn_send(p->conn, &f);
		}
	}
	if (!rc) {
		/* The batch's envelopes to the subscribers of their mailboxes.  A
		 * clean subscription (the store held nothing above `sent` before
		 * this commit) is served from the batch in memory, in seq order —
		 * exactly what the pump would read back.  A dirty one, or a full
		 * output queue, leaves the rest to the pump. */
		for (c = s->conns; c; c = c->next) {
			int woke = 0;

			if (c->state != CONN_READY)
				continue;
			for (unsigned i = 0; i < c->nsubs; i++) {
				struct sub *sb = &c->subs[i];

				for (p = batch; p; p = p->next) {
					if (p->seq <= sb->sent ||
					    memcmp(sb->mailbox, p->mailbox, RELM_MBOX_ID_LEN) != 0)
						continue;
					if (!sb->dirty && c->outq < RELM_MBOX_OUTQ_LOW &&
					    deliver(c, sb, p->seq, p->env, p->len) == 0)
						continue;
					sb->dirty = woke = 1;
					break;
				}
			}
			if (woke)
				conn_pump(c);
		}
	}
	server_release(s);
	for (p = batch; p; p = next) {
		next = p->next;
		if (!rc)
			s->stats.posts++;
		sodium_memzero(p->env, p->len);   /* not secret, but not ours to keep */
		free(p);
	}
}

/* ---- timers ---- */

static void on_tick(uv_timer_t *t)
{
	struct relm_mbox_server *s = container_of(t, struct relm_mbox_server, tick);
	uint64_t now = uv_now(s->loop);
	struct conn *c, *next;

	server_hold(s);
	for (c = s->conns; c; c = next) {
		next = c->next;
		if (uv_is_closing((uv_handle_t *)&c->tcp))
			continue;
		if (c->state == CONN_CLOSING) {
			if (now - c->closing_since > CLOSING_GRACE_MS)
				conn_close(c);
			continue;
		}
		if (c->outq && now - c->write_progress > s->cfg.write_timeout_ms) {
			log_info("mailbox: dropping a connection that reads nothing");
			conn_close(c);
		} else if (c->state == CONN_HELLO && now - c->accepted_at > s->cfg.hello_timeout_ms) {
			conn_error(c, 0, RELM_MBOX_E_TIMEOUT, 1, "no HELLO in time");
		} else if (c->reading && c->frame_started &&
		           now - c->frame_started > s->cfg.frame_timeout_ms) {
			conn_error(c, 0, RELM_MBOX_E_TIMEOUT, 1, "frame incomplete for too long");
		} else if (c->reading && now - c->last_rx > s->cfg.idle_timeout_ms) {
			conn_error(c, 0, RELM_MBOX_E_TIMEOUT, 1, "idle for too long");
		}
	}
	server_release(s);
}

int relm_mbox_server_sweep(struct relm_mbox_server *s)
{
	uint64_t now = wall_ms(s);
	uint64_t cutoff = now > s->cfg.retention_ms ? now - s->cfg.retention_ms : 0;
	int total = 0, n;

	for (int i = 0; i < SWEEP_CHUNKS_MAX; i++) {
		sqlite3_stmt *st = s->st[ST_SWEEP];

		if (st_run(s, ST_BEGIN))
			return RELM_ESTORE;
		sqlite3_bind_int64(st, 1, (sqlite3_int64)cutoff);
		sqlite3_bind_int(st, 2, SWEEP_CHUNK);
		if (st_run(s, ST_SWEEP)) {
			st_run(s, ST_ROLLBACK);
			return RELM_ESTORE;
		}
		n = sqlite3_changes(s->db);
		sqlite3_bind_int64(s->st[ST_SWEEP_LEASES], 1, (sqlite3_int64)now);
		if (st_run(s, ST_SWEEP_LEASES) || st_run(s, ST_COMMIT)) {
			st_run(s, ST_ROLLBACK);
			return RELM_ESTORE;
		}
		total += n;
		if (n < SWEEP_CHUNK)
			break;
	}
	s->stats.swept += (uint64_t)total;
	if (total)
		log_info("mailbox: retention removed %d envelope(s)", total);
	return total;
}

static void on_sweep(uv_timer_t *t)
{
	struct relm_mbox_server *s = container_of(t, struct relm_mbox_server, sweep);

	relm_mbox_server_sweep(s);
}

/* ---- lifecycle ---- */

/* The last step of relm_mbox_server_close: once every handle and
 * connection has closed, close the store, free, and tell the caller. */
static void server_maybe_done(struct relm_mbox_server *s)
{
	void (*cb)(void *);
	void *arg;

	if (!s->closing || s->open_handles || s->conns)
		return;
	store_close(s);
	free(s->sorted);
	cb = s->close_cb;
	arg = s->close_arg;
	free(s);
	if (cb)
		cb(arg);
}

static void on_server_handle_closed(uv_handle_t *h)
{
	struct relm_mbox_server *s = h->data;

	s->open_handles--;
	server_maybe_done(s);
}

static int parse_host(struct sockaddr_storage *ss, const char *host, uint16_t port)
{
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	return RELM_EINVAL;
}

int relm_mbox_server_start(struct relm_mbox_server **out, uv_loop_t *loop,
                           const char *host, uint16_t port, const char *state_dir,
                           const struct relm_mbox_server_config *cfg)
{
	struct relm_mbox_server *s;
	struct sockaddr_storage ss;
	int namelen = sizeof(ss);
	int rc;

	if (relm_crypto_init() != 0)
		return RELM_EINVAL;
	memset(&ss, 0, sizeof(ss));
	if (parse_host(&ss, host, port) != 0)
		return RELM_EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return RELM_ENOMEM;
	s->loop = loop;
	if (cfg)
		s->cfg = *cfg;
	else
		relm_mbox_server_config_default(&s->cfg);
	if (!s->cfg.now_ms)
		s->cfg.now_ms = real_now_ms;
	if (!s->cfg.rate || !s->cfg.burst || !s->cfg.max_subs || !s->cfg.outq_max || !s->cfg.sweep_ms) {
		free(s);
		return RELM_EINVAL;
	}
	s->pend_tail = &s->pend_head;

	rc = store_open(s, state_dir);
	if (rc) {
		store_close(s);
		free(s);
		return rc;
	}

	uv_tcp_init(loop, &s->listener);
	uv_timer_init(loop, &s->tick);
	uv_timer_init(loop, &s->sweep);
	uv_prepare_init(loop, &s->commit);
	s->listener.data = s->tick.data = s->sweep.data = s->commit.data = s;
	s->open_handles = 4;

	rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
	if (!rc)
		rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
	if (!rc)
		rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &namelen);
	if (rc) {
		/* Undo: close the handles; s is freed once they are closed, which
		 * happens on the caller's next loop run. */
		s->closing = 1;
		uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
		uv_close((uv_handle_t *)&s->tick, on_server_handle_closed);
		uv_close((uv_handle_t *)&s->sweep, on_server_handle_closed);
		uv_close((uv_handle_t *)&s->commit, on_server_handle_closed);
		return rc;
	}
	s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                         : ((struct sockaddr_in *)&ss)->sin_port);
	{
		uint32_t t = s->cfg.frame_timeout_ms < s->cfg.hello_timeout_ms ?
		             s->cfg.frame_timeout_ms : s->cfg.hello_timeout_ms;
		t /= 4;
		if (t < 10)
			t = 10;
		if (t > 1000)
			t = 1000;
		uv_timer_start(&s->tick, on_tick, t, t);
	}
	uv_timer_start(&s->sweep, on_sweep, 0, s->cfg.sweep_ms);
	log_info("mailbox: serving on %s:%u, state in %s", host, (unsigned)s->port, state_dir);
	*out = s;
	return 0;
}

uint16_t relm_mbox_server_port(const struct relm_mbox_server *s)
{
	return s->port;
}

void relm_mbox_server_get_stats(const struct relm_mbox_server *s,
                                struct relm_mbox_server_stats *out)
{
	*out = s->stats;
}

void relm_mbox_server_close(struct relm_mbox_server *s, void (*cb)(void *arg), void *arg)
{
	struct pending_post *p, *next;
	struct conn *c, *cn;

	if (s->closing)
		return;
	s->closing = 1;
	s->close_cb = cb;
	s->close_arg = arg;
	/* Uncommitted posts were never acknowledged: dropping them is safe,
	 * their clients resend. */
	for (p = s->pend_head; p; p = next) {
		next = p->next;
		free(p);
	}
	s->pend_head = NULL;
	s->pend_tail = &s->pend_head;
	for (c = s->conns; c; c = cn) {
		cn = c->next;
		conn_close(c);
	}
	uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
	uv_close((uv_handle_t *)&s->tick, on_server_handle_closed);
	uv_close((uv_handle_t *)&s->sweep, on_server_handle_closed);
	uv_close((uv_handle_t *)&s->commit, on_server_handle_closed);
}

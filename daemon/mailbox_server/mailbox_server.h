/*
 * mailbox_server.h — relm-mailbox as a library: a libuv TCP server for the
 * mailbox protocol (proto/mailbox.md, versions 1 and 2) keeping its
 * mailboxes in its own SQLite file or in a PostgreSQL database that
 * several instances share (store.h; proto/mailbox.md §9).
 *
 * It runs inside a loop the caller owns, so relm-mailbox (daemon/
 * relm-mailbox.c) and relmd (--serve-mailbox) embed the same code.  The
 * server keeps no per-reader state beyond a connection's life: cursors are
 * the clients', so it cannot count how many devices read a mailbox.
 *
 * Durability: a POST is acknowledged (POSTED) only after the transaction
 * holding it has committed (SQLite: synchronous=FULL); posts read during one
 * loop turn are committed together (group commit, uv_prepare_t), and what
 * that commit answers to one connection (its POSTEDs, its DELIVERs) goes
 * out in one write.
 */
#ifndef RELM_MAILBOX_SERVER_H
#define RELM_MAILBOX_SERVER_H

#include <stdint.h>
#include <uv.h>

struct relm_mbox_server;

/* Policy knobs; relm_mbox_server_config_default() fills the defaults of
 * lib/wire/mailbox_proto.h (enum relm_mbox_limits).  Tests shorten the timers. */
struct relm_mbox_server_config {
	uint64_t retention_ms;      /* envelopes older than this are deleted (time only, never on read) */
	uint32_t sweep_ms;          /* retention sweep period */
	uint32_t max_conns;
	uint32_t max_conns_per_addr; /* per client address (IPv6: per /64); 0: no cap */
	uint32_t max_subs;          /* per connection, ≤ what CHALLENGE advertises */
	uint32_t max_subs_total;    /* per server */
	uint32_t rate, burst;       /* token bucket per connection, cost units (relm_mbox_cost) */
	uint32_t outq_max;          /* queued output bytes before the connection's reads pause */
	uint32_t hello_timeout_ms;
	uint32_t frame_timeout_ms;  /* a started frame must complete within this */
	uint32_t write_timeout_ms;  /* output pending with no progress this long: drop */
	uint32_t idle_timeout_ms;   /* nothing received this long: drop */
	/* PostgreSQL database (a postgresql:// URI or a libpq connection
	 * string; proto/mailbox.md §9.2); NULL: SQLite in state_dir.  Copied. */
	const char *db;
	/* Wall clock in ms since the epoch, for received_at and lease expiry
	 * (both must survive a restart, so not uv_now).  NULL: the real clock. */
	uint64_t (*now_ms)(void *ctx);
	void *clock_ctx;
};

void relm_mbox_server_config_default(struct relm_mbox_server_config *cfg);

/* Open the store — with cfg->db, that PostgreSQL database (connecting,
 * creating or migrating its schema; state_dir unused and may be NULL);
 * else state_dir (created, mode 0700) and its mailbox.sqlite (0600) — bind
 * host:port (an IPv4 or IPv6 literal; port 0 picks an
 * ephemeral port, see relm_mbox_server_port) and start serving on loop.
 * cfg may be NULL for the defaults; it is copied.
 * Returns 0 and *out, or a negative code (-errno from libuv or the system,
 * RELM_ESTORE / RELM_ESTORE_NEWER for the database, RELM_EINVAL for a bad
 * host); on failure *out is untouched and nothing is left open once the
 * loop has run (a failed bind closes its handles asynchronously).  Close
 * with relm_mbox_server_close(); the loop cannot be closed before that
 * completes.  The process must ignore SIGPIPE (relm-mailbox does): a peer
 * that resets its connection would otherwise kill it on write. */
int relm_mbox_server_start(struct relm_mbox_server **out, uv_loop_t *loop,
                           const char *host, uint16_t port, const char *state_dir,
                           const struct relm_mbox_server_config *cfg);

/* The port actually bound (useful after port 0). */
uint16_t relm_mbox_server_port(const struct relm_mbox_server *s);

/* Stop accepting, drop every connection (posts not yet committed are
 * dropped unacknowledged: the client resends them), close the database,
 * then call cb(arg) (cb may be NULL) and free s.  Call once. */
void relm_mbox_server_close(struct relm_mbox_server *s, void (*cb)(void *arg), void *arg);

struct relm_mbox_server_stats {
	uint64_t accepted;          /* connections accepted since start */
	uint32_t connections;       /* open now */
	uint64_t posts;             /* envelopes committed */
	uint64_t delivered;         /* DELIVER frames sent */
	uint64_t errors;            /* ERROR frames sent */
	uint64_t swept;             /* envelopes deleted by retention */
	uint64_t registered;        /* read keys stored by registrations (version 2) */
};
void relm_mbox_server_get_stats(const struct relm_mbox_server *s,
                                struct relm_mbox_server_stats *out);

/* Run the retention sweep now (also runs on its timer).  With SQLite it
 * completes before returning: the number of envelopes deleted or a
 * negative code.  With PostgreSQL it runs in the background and 0 is
 * returned; stats.swept counts what either deleted. */
int relm_mbox_server_sweep(struct relm_mbox_server *s);

#endif

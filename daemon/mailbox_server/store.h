/*
 * store.h — the mailbox server's storage interface (proto/mailbox.md §9):
 * what the protocol needs from a database, as a small table of functions,
 * with two backends behind it: SQLite (store_sqlite.c, one file, the
 * default) and PostgreSQL (store_pg.c, one database under several
 * instances).
 *
 * Every operation reports through a callback, exactly once.  SQLite
 * answers before the call returns (the server's fast path is unchanged:
 * one indirect call per operation); PostgreSQL answers from the event loop
 * later.  So a caller must be ready for either: it may not touch what the
 * callback frees after the call, and it keeps every buffer it passed
 * (posts, lookup arrays, lease request) alive until the callback ran.
 *
 * Error codes: 0, RELM_ESTORE (the database failed or is unreachable:
 * the client retries later), RELM_ECLOSED (the store is closing and
 * dropped the request), RELM_ENOMEM.
 */
#ifndef RELM_MBOX_STORE_H
#define RELM_MBOX_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "wire/mailbox_proto.h"

struct mbs_conn;

/* A POST waiting for its commit: the server's record, passed to commit()
 * sorted by (mailbox, arrival).  commit() writes seq. */
struct mbs_post {
	struct mbs_post *next;
	struct mbs_conn *conn;     /* the poster; NULL once it has gone */
	size_t ord;                /* position in its batch */
	uint32_t tag;
	uint64_t seq;              /* assigned by the commit */
	uint8_t mailbox[RELM_MBOX_ID_LEN];
	size_t len;
	uint8_t env[];
};

/* One mailbox of a lookup or a key registration. */
struct mbs_lookup {
	uint8_t mailbox[RELM_MBOX_ID_LEN];
	uint8_t read_key[RELM_MBOX_READ_KEY_LEN];  /* lookup: out; set_keys: in */
	uint8_t has_key;           /* lookup: out (0: none registered) */
	uint64_t head, oldest;     /* out: last seq ever assigned, lowest stored (0: none) */
};

/* A lease compare-and-set (proto/mailbox.md §5.6), copied out of its frame. */
struct mbs_lease_req {
	uint32_t tag;
	uint8_t mailbox[RELM_MBOX_ID_LEN];
	uint8_t name[RELM_MBOX_LEASE_NAME_MAX];
	size_t name_len;
	uint8_t expected[RELM_MBOX_TOKEN_LEN];
	uint8_t holder[RELM_MBOX_TOKEN_LEN];
	uint32_t ttl_ms;
	uint64_t now;              /* the server's wall clock (SQLite; PostgreSQL uses its own) */
	struct relm_mbox_lease_result res;   /* out */
};

typedef void (*mbs_done_fn)(void *ctx, int rc);
typedef void (*mbs_row_fn)(void *ctx, uint64_t seq, const uint8_t *env, size_t len);

/* What a store tells the server on its own (PostgreSQL only). */
struct mbs_store_events {
	void *ctx;
	/* Another instance committed posts to mailbox, the last with seq. */
	void (*notify)(void *ctx, const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t seq);
	/* Notifications may have been missed (the listening connection was
	 * lost and is back): every subscription must look again. */
	void (*lost)(void *ctx);
};

struct mbs_store;

struct mbs_store_ops {
	const char *name;          /* "sqlite", "postgresql" */
	/* Assign each post of v[0..n) (sorted by mailbox, then arrival) its
	 * mailbox's next seq and store them durably, all or none, received_at
	 * = now.  The callback comes after the commit. */
	void (*commit)(struct mbs_store *st, struct mbs_post **v, size_t n, uint64_t now,
	               mbs_done_fn done, void *ctx);
	/* head, oldest and the read key of each of v[0..n). */
	void (*lookup)(struct mbs_store *st, struct mbs_lookup *v, size_t n,
	               mbs_done_fn done, void *ctx);
	/* Store v[i].read_key as each mailbox's read key (creating its row),
	 * then fill head and oldest as lookup does. */
	void (*set_keys)(struct mbs_store *st, struct mbs_lookup *v, size_t n,
	                 mbs_done_fn done, void *ctx);
	/* Envelopes of mailbox with seq > after, in seq order, at most limit:
	 * row() for each (env valid during the call), then done(). */
	void (*fetch)(struct mbs_store *st, const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t after,
	              unsigned limit, mbs_row_fn row, mbs_done_fn done, void *ctx);
	/* The compare-and-set of l, in one transaction; l->res on success. */
	void (*lease)(struct mbs_store *st, struct mbs_lease_req *l, mbs_done_fn done, void *ctx);
	/* Delete envelopes received before cutoff and expired leases; done's
	 * rc is the number of envelopes deleted, or a negative code. */
	void (*sweep)(struct mbs_store *st, uint64_t cutoff, uint64_t now, mbs_done_fn done, void *ctx);
	/* Drop what is queued (each callback runs with RELM_ECLOSED), close the
	 * database, free st, then cb(arg). */
	void (*close)(struct mbs_store *st, void (*cb)(void *arg), void *arg);
};

/* Every backend's struct begins with this. */
struct mbs_store {
	const struct mbs_store_ops *ops;
	uint8_t realm[RELM_MBOX_REALM_LEN];   /* created with the database */
};

/* Open (creating and migrating) STATE_DIR/mailbox.sqlite.  0, or -errno,
 * RELM_ESTORE, RELM_ESTORE_NEWER (written by a newer server), RELM_ECORRUPT. */
int mbs_store_sqlite_open(struct mbs_store **out, const char *state_dir);

/* Connect to PostgreSQL (conninfo: a postgresql:// URI or a libpq
 * connection string; "postgresql://" alone takes everything from the PG*
 * environment), create or migrate the schema, LISTEN, and serve on loop.
 * Connecting and migrating block (the server is starting); afterwards
 * nothing blocks the loop.  0, or RELM_ESTORE, RELM_ESTORE_NEWER. */
int mbs_store_pg_open(struct mbs_store **out, uv_loop_t *loop, const char *conninfo,
                      const struct mbs_store_events *ev);

/* 1 if spec names a PostgreSQL database (a postgres:// or postgresql://
 * URI, or a libpq "key=value" string). */
int mbs_store_is_pg(const char *spec);

#endif

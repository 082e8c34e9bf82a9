/*
 * store.h — relmd's one SQLite file (proto/store.md: the schema, the
 * durability rule and the reasons for both).
 *
 * This header is the whole contract; lib/store/store_int.h says how the
 * files behind it divide the work.
 *
 * Everything a daemon must not lose lives here: protons and their keys, the
 * circle, invites and their prekeys, the replay guard, relationships (the
 * engine's ratchet state as an opaque versioned BLOB — the store never looks
 * inside it, so the chain tree, receiving chains and skipped keys are
 * wherever lib/engine/rel.c puts them in its encoding), pending envelopes, message
 * history, the outbox, mailbox cursors and the event log.
 *
 * Durability.  WAL, synchronous=FULL, foreign keys on, BEGIN IMMEDIATE for
 * every writing transaction.  ONE transaction per engine step holds the new
 * state, the outbox rows it produced and the mailbox cursor advance; nothing
 * reaches the network before it commits.  Group commit (the batch API) is
 * how it gets fast — never weaker sync.
 *
 * Transactions — a state machine in the manner of SQLite's pager.c.  Every
 * change of state goes through one checked function (db.c, enter_state);
 * a call made in a state that does not allow it (begin inside a step,
 * batch_commit inside a step, a write outside a step) is a programmer
 * error and aborts.
 *
 *            relm_store_open
 *                  |
 *                  v        begin (BEGIN IMMEDIATE)
 *   +---------->  IDLE  -------------------------------->  STEP
 *   |              |  ^  <--------------------------------   |
 *   |  batch_begin |  |        commit (COMMIT) / rollback    |
 *   |  (BEGIN      |  |                                      |
 *   |  IMMEDIATE)  v  | batch_commit / batch_rollback        |
 *   |            BATCH                                       |
 *   |              |  ^                                      |
 *   |        begin |  | commit (RELEASE) /                   |
 *   |  (SAVEPOINT) v  | rollback (ROLLBACK TO + RELEASE)     |
 *   |          BATCH_STEP                                    |
 *   |                                                        |
 *   |   IDLE, STEP, BATCH, BATCH_STEP --- sticky failure ---> ERROR --close--> (gone)
 *
 *   IDLE        no transaction is open; reads run in their own implicit
 *               read transaction; nothing is staged.
 *   STEP        a step that is its own BEGIN IMMEDIATE transaction: we hold
 *               the write lock; typed writes are allowed; commit makes it
 *               durable.
 *   BATCH       BEGIN IMMEDIATE done, no step open: we hold the write lock;
 *               writes are refused (they belong in a step); what released
 *               steps staged is the batch's.
 *   BATCH_STEP  a step inside a batch, SAVEPOINT "step": writes allowed; a
 *               failed step rolls back alone (its staged values too) and
 *               the batch goes on; its changes are durable only when the
 *               batch commits.
 *   ERROR  sticky.  Entered on SQLITE_IOERR*, SQLITE_FULL, SQLITE_CORRUPT,
 *          SQLITE_NOTADB, SQLITE_NOMEM, SQLITE_READONLY*, SQLITE_CANTOPEN,
 *          SQLITE_PROTOCOL from any statement, and on any failed COMMIT.
 *          Every later call (reads too)
 *          returns the code that caused it (RELM_EDISKFULL for a full disk,
 *          RELM_ECORRUPT, RELM_ESTORE otherwise) until relm_store_close;
 *          the caller reopens.  Why sticky rather than "retry": SQLite has
 *          rolled back (all of the batch, not only the failing step), so the
 *          engine's in-memory state is now AHEAD of the file; the only safe
 *          continuation is to reload relationships from the store after a
 *          reopen.  A failed COMMIT is ambiguous (a failed fsync of the WAL
 *          may still leave the frames in the OS cache): after reopen the
 *          store holds the old state or the new one, never a mix — and since
 *          nothing was posted before the commit returned 0, both are safe.
 *
 * Staging.  The relationship columns an engine step changes — state and
 * last_activity (rel_set_state), deadline, unread — are kept
 * in the handle's memory while the transaction is open and written by ONE
 * UPDATE per relationship just before its COMMIT (batch_commit, or commit
 * of a standalone step), inside the same transaction: the durability rule
 * is unchanged, only the number of row rewrites drops (a state blob of a
 * few KB on overflow pages used to be rewritten 3–4 times per step, every
 * step of a batch).  Staged values follow the steps exactly: a rolled-back
 * step's are dropped, a released step's become the batch's, batch_rollback
 * and the ERROR state drop everything (blobs wiped).  Every reader sees the
 * staged values: rel_get (with or without the state), rel_list, rel_due,
 * next_deadline.  A write-back that fails at commit ends like a failed
 * COMMIT: ERROR, nothing of the transaction in the file.
 *
 * Errors: 0 or a negative code from error.h.  RELM_ENOTFOUND for a missing
 * row, RELM_EEXIST for a duplicate key on insert, RELM_EINVAL for arguments
 * out of range (labels, sizes), RELM_EBUSY when another process holds the
 * write lock past busy_timeout (not sticky), RELM_EPERM for permissions and
 * read-only folders, RELM_ECORRUPT, RELM_ESTORE_NEWER, RELM_EDISKFULL, RELM_ENOTSTORE,
 * RELM_ESTORE for any other SQLite failure.  relm_store_errmsg() says more.
 *
 * Secrets (identity keys, device keys, prekeys, mailbox keys, ratchet state)
 * are never logged: the store does not log at all and its error messages
 * never contain row data.  Structs that carry secrets read from the file
 * have a wiping clear function; call it on every path.  secure_delete is on,
 * so deleted or overwritten secrets are zeroed in the database file (the
 * WAL keeps old page images until the next checkpoint; doubts: SQLite's page
 * cache and statement buffers are not wiped — they are freed memory of this
 * process only).
 *
 * Lazy loading: nothing is read at open beyond the schema and the integrity
 * check (see RELM_STORE_F_*).  Every per-message lookup is an index probe;
 * lists are paginated or callback-driven.
 *
 * --------------------------------------------------------------- schema v12
 * (RELM_STORE_SCHEMA_VERSION; PRAGMA user_version.  proto/store.md has the
 * same text with the reasons; tests/fixtures/store-v<N>.sql one per version.)
 * Ids are 16-byte BLOBs, public keys 32, Ed25519 secret keys 64 (libsodium
 * layout), times are ms since the epoch.  [S] marks a secret column.
 *
 *   meta(key TEXT PK, value)                      free-form store metadata
 *   protons(id PK, label, ipk UNIQUE, isk[S], strategy, leader (the pinned
 *           leader or the hub), created, strategy_seq, strategy_by [v11])
 *   devices(proton→protons, device, label, self, pk, sk[S] (self only),
 *           session[S] (sibling ratchet session, later), epoch, added;
 *           PK(proton, device))                   this device and siblings
 *   circles(proton→protons, epoch, signed; PK(proton, epoch))
 *   device_keys(proton PK→protons, spk_id, spk_priv[S], mailbox_id UNIQUE,
 *           mailbox_sk[S]) [v8]                   this device's device invite
 *   pairings(id PK, role, state, secret[S], eph[S], expires, proton, host,
 *           mailbox UNIQUE, mailbox_sk[S], join_hash, message, keys[S],
 *           label, created) [v10]
 *                                                 pairings in progress
 *   sibling_sessions(rel PK→relationships, proton→protons, device) [v9]
 *           index (proton, device, rel)           relationships that are
 *           sibling sessions: never listed as the proton's
 *   invites(proton→protons, spk_id, spk_priv[S], opk_id, opk_priv[S] (NULL
 *           once used), multi_use, expires, mailbox_id UNIQUE,
 *           mailbox_sk[S], used, created; PK(proton, spk_id))
 *   replay_guard(proton, spk_id, ek, rel, seen; PK(proton, spk_id, ek),
 *           (proton, spk_id)→invites ON DELETE CASCADE) [v14]   an initial
 *           envelope whose EK was seen never creates a second relationship
 *           while its invite lives (after that, none can)
 *   relationships(id PK, proton→protons, label, remote_ipk, mode,
 *           mailbox_id UNIQUE, created, last_activity, unread,
 *           deadline (engine timer, 0 = none),
 *           state[S] BLOB — last, so that reading the other columns never
 *           touches its overflow pages; v12 dropped mailbox_sk and
 *           remote_addr, which the blob holds)
 *           index (proton, id) for pagination, (substr(remote_ipk,1,8))
 *           [v12; (proton, remote_ipk) before],
 *           partial index (deadline) WHERE deadline > 0 for timers
 *   pending(rel→relationships, hash, bytes, received_ms; PK(rel, hash))
 *   messages(seq INTEGER PK, rel→relationships, id, direction 'in'|'out',
 *           origin 'self'|'sibling'|'remote', kind, body, ts, status
 *           'none'|'queued'|'posted'|'delivered'|'failed', reason, created,
 *           updated; UNIQUE(rel, id) = de-duplication by message id)
 *           index (rel, seq) for message.list pagination; the origin and
 *           status CHECKs are `=` comparisons joined by OR [v5], not IN
 *           lists, which SQLite built an ephemeral table for at every
 *           insert and status update
 *   outbox(seq INTEGER PK AUTOINCREMENT, rel→relationships (NULL for
 *           sibling/device traffic), dest, bytes, msg_id, state
 *           'queued'|'posted', created, posted)  seq = commit order since
 *           writers are serialised; partial index on unposted rows
 *   cursors(mailbox PK, cursor)                   mailbox id → last seq read
 *   outgoing(rel→relationships, id, kind, ts, body[S], tries, next_ms,
 *           last_node; PK(rel, id)) [v2]      sent, not yet receipted: the
 *           retransmission queue (was inside the state blob in v1); written
 *           by outgoing.c alone (no triggers since v13), which counts its
 *           rows per relationship in outgoing_count
 *   outgoing_count(rel→relationships PK, n) [v3]  count(*) of outgoing per
 *           relationship, so message.send checks RELM_MAX_OUTGOING with one
 *           probe; v3–v12 kept it by a trigger per row inserted or deleted,
 *           v13 by the staged difference of each transaction, written once
 *           per relationship before COMMIT (stage.c)
 *   requests(rel→relationships, id, data, dev, next_ms; PK(rel, id)) [v11]
 *           pending requests of a device that does not send (devices.md
 *           §11.5): the request message, the device it went to last
 *   stateless(rel PK→relationships, src) [v11]  relationships a fanout
 *           non-hub holds without state (its blob empty), and the hub
 *   acks(rel→relationships, dh, n, id; PK(rel, dh, n, id)) [v4]
 *           acknowledgements waiting for the receipt timer (were inside
 *           the state blob until v3, which every step rewrites)
 *   events(seq INTEGER PK AUTOINCREMENT, type, ts, rel, msg, node, proton,
 *           device, ipk, mailbox, mailbox_seq, envelope, epoch, pruned,
 *           status, code, reason [v6], tbl, row [v7])  one typed column per field of a
 *           struct relm_event (NULL = not carried; v5 had a json column);
 *           seq never reused, so subscribe{since} is exact; trimmed to a
 *           retention count
 * All child tables cascade on delete of their relationship / proton.
 */
#ifndef RELM_STORE_H
#define RELM_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"
#include "engine/effects.h"
#include "engine/event.h"

enum relm_store_consts {
	RELM_STORE_SCHEMA_VERSION = 14,       /* PRAGMA user_version written by this build */
	RELM_STORE_LABEL_MAX      = 255,     /* proton / relationship / device labels, bytes */
	RELM_STORE_STRATEGY_MAX   = 15,      /* "leaderless", "leader", "fanout" */
	RELM_STORE_KIND_MAX       = 31,      /* message kind name */
	RELM_STORE_REASON_MAX     = RELM_EVENT_REASON_MAX, /* failure reason (as relm_fx.detail) */
	RELM_STORE_EVENT_KEEP     = 10000,   /* events kept for subscribe{since}; TODO move to limits.h */
	RELM_STORE_MANY           = 32,      /* ids per statement of the *_many calls (a receipt's messages) */
	RELM_STORE_BUSY_MS        = 5000,    /* busy_timeout: a second process (relmctl repair) waits */
	RELM_STORE_CHECK_ALWAYS_BYTES = 64 << 20, /* smaller stores get quick_check at every open (< 0.2 s);
	                                       * bigger ones only after an unclean close */
	RELM_STORE_APPLICATION_ID = 0x72656c6d, /* PRAGMA application_id of a relm store: "relm" */
};

/* relm_store_opts.flags */
enum relm_store_flags {
	RELM_STORE_F_INTEGRITY = 1u << 0,    /* PRAGMA integrity_check at open instead of quick_check */
	RELM_STORE_F_NOCHECK   = 1u << 1,    /* skip the check at open (tests measuring lazy loading) */
	RELM_STORE_F_KNOWN     = 0x3u,
};

/* relm_store_rel_get flags */
enum relm_store_get_flags {
	RELM_STORE_WITH_STATE   = 1u << 0,   /* also read the state BLOB (secret) */
	RELM_STORE_WITH_SECRETS = 1u << 1,   /* also read isk / sk (secret); a relationship has
	                                      * no secret column (v12): rel_get ignores it */
};

struct relm_store;

struct relm_store_opts {
	const char *vfs;          /* SQLite VFS name; NULL = the default ("unix") */
	unsigned flags;           /* RELM_STORE_F_*; unknown bits → RELM_EINVAL */
	int busy_timeout_ms;      /* 0 = RELM_STORE_BUSY_MS */
	uint32_t event_keep;      /* 0 = RELM_STORE_EVENT_KEEP */
	uint64_t check_always_bytes; /* 0 = RELM_STORE_CHECK_ALWAYS_BYTES (tests lower it) */
	char *errbuf;             /* optional: a sentence explaining a failed open */
	size_t errlen;
};

/* ---- lifecycle ------------------------------------------------------- */

/* Open or create the store file `path`.  Its folder is created with mode
 * 0700 if missing (only the last component).  A store is created only
 * where no file exists, whole: made as `<path>.new` (0600), then linked to
 * `path` (proto/store.md §1).  An existing file that is empty or another
 * program's SQLite database gives RELM_ENOTSTORE, untouched.  A
 * folder or file that is group/world accessible, owned by another uid, a
 * symlink, or not a folder/regular file is refused with RELM_EPERM and
 * nothing is touched.  An existing non-empty file is first opened
 * read-only: a user_version newer than RELM_STORE_SCHEMA_VERSION gives
 * RELM_ESTORE_NEWER, a failed quick_check (or integrity_check, see flags;
 * a store over RELM_STORE_CHECK_ALWAYS_BYTES that was closed cleanly is
 * not checked — proto/store.md says why)
 * or a file that is not a database gives RELM_ECORRUPT — in both cases the
 * file, its WAL and its journal mode are left byte for byte as they were.
 * Only then is it opened read-write, switched to WAL and migrated forward
 * (each migration in one transaction).  A read-only folder or file gives
 * RELM_EPERM.  opts may be NULL.  On success *out is a handle in IDLE;
 * on failure *out is NULL and opts->errbuf (if given) explains.  A handle
 * may move between threads but is used by one at a time: its connection
 * is opened without SQLite's per-connection mutex (SQLITE_OPEN_NOMUTEX). */
int relm_store_open(struct relm_store **out, const char *path,
                    const struct relm_store_opts *opts);
/* Roll back anything open and close.  NULL is a no-op. */
void relm_store_close(struct relm_store *st);
/* The sticky error (0 if none) and the last error message (never NULL,
 * never containing row data). */
int relm_store_error(const struct relm_store *st);
const char *relm_store_errmsg(const struct relm_store *st);

/* ---- transactions (see the state diagram above) ----------------------- */

/* IDLE → STEP (BEGIN IMMEDIATE) or BATCH → STEP (SAVEPOINT).
 * Returns 0, RELM_EBUSY (state unchanged), or the sticky error. */
int relm_store_begin(struct relm_store *st);
/* STEP → IDLE (COMMIT: durable when it returns 0) or STEP → BATCH (RELEASE:
 * durable only when the batch commits).  On failure the store is in ERROR
 * (COMMIT) — see "A failed COMMIT is ambiguous" above. */
int relm_store_commit(struct relm_store *st);
/* STEP → IDLE / BATCH, undoing only the step.  Always leaves the step;
 * returns 0 or the sticky error. */
int relm_store_rollback(struct relm_store *st);
/* IDLE → BATCH; BATCH → IDLE.  Everything committed by the steps inside a
 * batch becomes durable together at relm_store_batch_commit. */
int relm_store_batch_begin(struct relm_store *st);
int relm_store_batch_commit(struct relm_store *st);
int relm_store_batch_rollback(struct relm_store *st);
/* 1 while a step or batch is open. */
int relm_store_in_txn(const struct relm_store *st);
/* 1 inside a step of an open batch (BATCH_STEP). */
int relm_store_in_batch_step(const struct relm_store *st);

/* Listeners to the transaction's life, for what the caller keeps beside
 * the store and must commit or undo with it (lib/core's held sibling
 * frames).  Any may be NULL.
 *   step_begin    a step began (standalone or in a batch);
 *   step_undo     the step of a batch that began last was rolled back;
 *   txn_end       the transaction ended: committed (1) or not (0) — a
 *                 standalone step, a batch, or a sticky failure;
 *   before_commit a batch is about to commit (state BATCH): it may run
 *                 steps of its own; an error rolls the whole batch back
 *                 and relm_store_batch_commit returns it. */
struct relm_store_hooks {
	void (*step_begin)(void *ctx);
	void (*step_undo)(void *ctx);
	void (*txn_end)(void *ctx, int committed);
	int (*before_commit)(void *ctx);
};
void relm_store_set_hooks(struct relm_store *st, const struct relm_store_hooks *h, void *ctx);
/* A write of one small row (meta 'probe' = now_ms) in a transaction of
 * its own (IDLE only): does the file take writes again (after a full
 * disk)?  0, or the error (a failure is sticky like any other). */
int relm_store_probe_write(struct relm_store *st, uint64_t now_ms);

/* ---- protons ---------------------------------------------------------- */

struct relm_store_proton {
	uint8_t id[RELM_ID_LEN];
	char label[RELM_STORE_LABEL_MAX + 1];
	uint8_t ipk[RELM_SIGN_PK_LEN];
	uint8_t isk[RELM_SIGN_SK_LEN];          /* secret; zero unless asked for */
	char strategy[RELM_STORE_STRATEGY_MAX + 1];
	uint64_t created;
	/* the strategy as adopted (devices.md §11.1; v11): the pinned leader
	 * or the hub (all zero: none), and the (seq, by) of the strategy
	 * message it came from (0 and all zero: never changed) */
	uint8_t pinned[RELM_ID_LEN];
	uint64_t strategy_seq;
	uint8_t strategy_by[RELM_ID_LEN];
};
/* Insert.  RELM_EEXIST if the id or IPK exists, RELM_EINVAL for a label /
 * strategy too long. */
int relm_store_proton_put(struct relm_store *st, const struct relm_store_proton *p);
/* Read one (flags: RELM_STORE_WITH_SECRETS for isk).  RELM_ENOTFOUND. */
int relm_store_proton_get(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                          struct relm_store_proton *out, unsigned flags);
/* The strategy adopted: its name, pinned (NULL or all zero: none) and the
 * (seq, by) of its strategy message.  RELM_ENOTFOUND, RELM_EINVAL. */
int relm_store_proton_set_strategy(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                                   const char *strategy, const uint8_t *pinned, uint64_t seq,
                                   const uint8_t by[RELM_ID_LEN]);
/* The proton's identity key pair replaced (an identity roll,
 * proto/revocation.md §3).  RELM_ENOTFOUND, RELM_EEXIST (another proton's
 * IPK). */
int relm_store_proton_set_identity(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                                   const uint8_t ipk[RELM_SIGN_PK_LEN],
                                   const uint8_t isk[RELM_SIGN_SK_LEN]);
/* Calls cb for every proton in id order, without secrets.  A nonzero
 * return from cb stops the walk and is returned. */
int relm_store_proton_list(struct relm_store *st,
                           int (*cb)(void *ctx, const struct relm_store_proton *p), void *ctx);
void relm_store_proton_clear(struct relm_store_proton *p);   /* wipes */

/* ---- devices and circles (devices.c; proto/devices.md §1–§3) --------- */

struct relm_store_device {
	uint8_t proton[RELM_ID_LEN];
	uint8_t device[RELM_ID_LEN];
	char label[RELM_STORE_LABEL_MAX + 1];
	int self;                               /* 1 = this device */
	uint8_t pk[RELM_SIGN_PK_LEN];
	uint8_t sk[RELM_SIGN_SK_LEN];           /* secret, this device only; zero unless asked */
	int has_sk;
	uint64_t epoch;                         /* circle epoch it was added in */
	uint64_t added;
};
/* Insert or replace. */
int relm_store_device_put(struct relm_store *st, const struct relm_store_device *d);
/* Delete a sibling's row (never this device's own: a no-op then). */
int relm_store_device_delete(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                             const uint8_t device[RELM_ID_LEN]);
/* A number that moves whenever what the devices and protons tables hold
 * may have changed through this handle: every write to either (a device
 * added or deleted; a proton added, its strategy or identity set) and
 * every rollback, of a step or of a transaction.  While it stands still,
 * a caller may keep what it read of those tables (lib/core keeps a
 * proton's device list and strategy row between steps). */
uint64_t relm_store_devices_gen(const struct relm_store *st);
/* Calls cb for every device of a proton (no secrets). */
int relm_store_device_list(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                           int (*cb)(void *ctx, const struct relm_store_device *d), void *ctx);
/* This device of the proton, with its secret key.  RELM_ENOTFOUND. */
int relm_store_device_get_self(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                               struct relm_store_device *out);
void relm_store_device_clear(struct relm_store_device *d);   /* wipes */

/* This device's keys behind its device invite (devices.md §3): the device
 * prekey (X25519) and the device mailbox, one row per proton. */
struct relm_store_device_keys {
	uint8_t proton[RELM_ID_LEN];
	uint32_t spk_id;                        /* nonzero */
	uint8_t spk_priv[RELM_KEY_LEN];         /* secret */
	uint8_t mailbox_id[RELM_SIGN_PK_LEN];
	uint8_t mailbox_sk[RELM_SIGN_SK_LEN];   /* secret */
};
/* Insert or replace.  RELM_EINVAL for spk_id 0; RELM_EEXIST if the mailbox
 * is another proton's. */
int relm_store_device_keys_put(struct relm_store *st, const struct relm_store_device_keys *k);
/* With the secrets.  RELM_ENOTFOUND (a proton made before schema v8 has
 * none until lib/core makes them). */
int relm_store_device_keys_get(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                               struct relm_store_device_keys *out);
/* The proton whose device mailbox mailbox_id is.  RELM_ENOTFOUND. */
int relm_store_device_keys_by_mailbox(struct relm_store *st, const uint8_t mailbox_id[RELM_SIGN_PK_LEN],
                                      uint8_t proton[RELM_ID_LEN]);
void relm_store_device_keys_clear(struct relm_store_device_keys *k);   /* wipes */

/* Relationship rel is a sibling session with device of proton
 * (devices.md §3).  RELM_EEXIST if it is already one. */
int relm_store_sibling_session_put(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                                   const uint8_t proton[RELM_ID_LEN], const uint8_t device[RELM_ID_LEN]);
/* The session to send to device on: the one with the smallest id when
 * there are two (§3).  RELM_ENOTFOUND if none. */
int relm_store_sibling_session_find(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                                    const uint8_t device[RELM_ID_LEN], uint8_t rel[RELM_ID_LEN]);
/* Whose session rel is (proton, device).  RELM_ENOTFOUND: not a session. */
int relm_store_sibling_session_get(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                                   uint8_t proton[RELM_ID_LEN], uint8_t device[RELM_ID_LEN]);

/* Keep a signed circle (bytes as signed, lib/wire/circle.h) of epoch ≥ 1;
 * a circle of the same epoch is replaced (the winner of a conflict,
 * devices.md §2).  The store does not judge circles: lib/core accepts. */
int relm_store_circle_put(struct relm_store *st, const uint8_t proton[RELM_ID_LEN], uint64_t epoch,
                          const uint8_t *buf, size_t len);
/* The newest circle: *buf malloc'd (free it), *len, *epoch.  RELM_ENOTFOUND
 * if the proton has none. */
int relm_store_circle_get(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                          uint64_t *epoch, uint8_t **buf, size_t *len);

/* ---- pairings (pairings.c; proto/devices.md §12.8; schema v10) -------- */

enum relm_pair_role { RELM_PAIR_ROLE_E = 1, RELM_PAIR_ROLE_J = 2 };
enum relm_pair_state {
	RELM_PAIR_OFFERED = 1, RELM_PAIR_WELCOMED, RELM_PAIR_JOINING, RELM_PAIR_JOINED, RELM_PAIR_SYNCED,
};
struct relm_store_pairing {
	uint8_t id[RELM_ID_LEN];                /* derived from S */
	int role;                               /* enum relm_pair_role */
	int state;                              /* enum relm_pair_state */
	uint8_t secret[32];                     /* S, secret */
	uint8_t eph[32];                        /* J: e_J until joined, secret */
	int has_eph;
	uint64_t expires;
	uint8_t proton[RELM_ID_LEN];            /* E: the proton offered; J: once joined */
	int has_proton;
	char host[RELM_STORE_LABEL_MAX + 1];    /* the mailbox server, "host:port" */
	uint8_t mailbox[RELM_SIGN_PK_LEN];      /* the pairing mailbox this side reads */
	uint8_t mailbox_sk[RELM_SIGN_SK_LEN];   /* its secret key (signs subscriptions), secret */
	uint8_t join_hash[32];
	int has_join_hash;
	uint8_t *message;                       /* E: the WELCOME sent; J: its JOIN (owned) */
	size_t message_len;
	uint8_t *keys;                          /* J: its device keys until joined (owned, secret) */
	size_t keys_len;
	char label[RELM_STORE_LABEL_MAX + 1];   /* J: the label it asked for */
	uint64_t created;
};
/* Insert, or update the row of the same id (role, secret, host, mailbox
 * and created stay as first written).  RELM_EINVAL for a role or state
 * out of range or bad text; RELM_EEXIST if the mailbox is another's. */
int relm_store_pairing_put(struct relm_store *st, const struct relm_store_pairing *p);
/* With the secrets and owned copies (relm_store_pairing_clear).
 * RELM_ENOTFOUND, RELM_EBADROW (a damaged row). */
int relm_store_pairing_get(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                           struct relm_store_pairing *out);
/* The pairing whose mailbox this is.  RELM_ENOTFOUND. */
int relm_store_pairing_by_mailbox(struct relm_store *st, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                                  uint8_t id[RELM_ID_LEN]);
int relm_store_pairing_delete(struct relm_store *st, const uint8_t id[RELM_ID_LEN]);
/* Every pairing's id, in id order. */
int relm_store_pairing_ids(struct relm_store *st,
                           int (*cb)(void *ctx, const uint8_t id[RELM_ID_LEN]), void *ctx);
void relm_store_pairing_clear(struct relm_store_pairing *p);   /* wipes, frees */

/* ---- invites and their prekeys ---------------------------------------- */

struct relm_store_invite {
	uint8_t proton[RELM_ID_LEN];
	uint32_t spk_id;
	uint8_t spk_priv[RELM_KEY_LEN];         /* secret */
	uint32_t opk_id;                        /* 0 = no one-time prekey (as on the wire) */
	uint8_t opk_priv[RELM_KEY_LEN];         /* secret; zero when opk_id == 0 or used */
	int multi_use;
	uint64_t expires;
	uint8_t mailbox_id[RELM_SIGN_PK_LEN];
	uint8_t mailbox_sk[RELM_SIGN_SK_LEN];   /* secret */
	uint32_t used;                          /* times accepted */
	uint64_t created;
};
/* Insert (used as given: 0 for a new invite).  RELM_EEXIST for a
 * duplicate (proton, spk_id) or mailbox id. */
int relm_store_invite_put(struct relm_store *st, const struct relm_store_invite *inv);
/* proton's invites not expired at now_ms, by spk_id, with secrets (inv is
 * wiped after each cb; a nonzero return stops and is returned). */
int relm_store_invite_list(struct relm_store *st, const uint8_t proton[RELM_ID_LEN], uint64_t now_ms,
                           int (*cb)(void *ctx, const struct relm_store_invite *inv), void *ctx);
/* With secrets.  RELM_ENOTFOUND.  Wipe with relm_store_invite_clear. */
int relm_store_invite_get(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                          uint32_t spk_id, struct relm_store_invite *out);
/* Which invite owns a mailbox (an initial envelope arrived there).
 * Writes proton and spk_id only.  RELM_ENOTFOUND. */
int relm_store_invite_by_mailbox(struct relm_store *st, const uint8_t mailbox_id[RELM_SIGN_PK_LEN],
                                 uint8_t proton[RELM_ID_LEN], uint32_t *spk_id);
/* used += 1 and the one-time prekey's private half is deleted (secure_delete
 * zeroes it in the file).  RELM_ENOTFOUND. */
int relm_store_invite_mark_used(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                                uint32_t spk_id);
/* Delete the invites expired at now_ms (expires <= now_ms: the moment
 * they stop working) with every secret of theirs (secure_delete zeroes
 * them in the file); cb (may be NULL) is first told each one's mailbox id,
 * which nobody needs to read any more (a nonzero return stops and is
 * returned, nothing deleted).  Their replay-guard rows (cascade) and
 * their mailboxes' cursors go with them.  Returns how many were deleted
 * (≥ 0). */
int relm_store_invite_expire(struct relm_store *st, uint64_t now_ms,
                             int (*cb)(void *ctx, const uint8_t mailbox_id[RELM_SIGN_PK_LEN]),
                             void *ctx);
void relm_store_invite_clear(struct relm_store_invite *inv);   /* wipes */

/* ---- replay guard ------------------------------------------------------ */

/* Records (proton, invite spk_id, EK) → rel.  Returns 0 if it was new,
 * RELM_EREPLAY if this EK was seen before on this invite (nothing changes
 * then).  The invite must exist (a foreign key): its row goes with the
 * invite when that is deleted (relm_store_invite_expire), since an initial
 * envelope for an invite that is gone is refused before the guard is
 * asked (proto/ratchet.md §8.3). */
int relm_store_replay_check_insert(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                                   uint32_t spk_id, const uint8_t ek[RELM_KEY_LEN],
                                   const uint8_t rel[RELM_ID_LEN], uint64_t now_ms);

/* ---- relationships ---------------------------------------------------- */

struct relm_store_rel {
	uint8_t id[RELM_ID_LEN];
	uint8_t proton[RELM_ID_LEN];
	char label[RELM_STORE_LABEL_MAX + 1];
	uint8_t remote_ipk[RELM_SIGN_PK_LEN];
	int mode;                               /* the engine's mode (tree / strict), opaque here */
	uint8_t mailbox_id[RELM_SIGN_PK_LEN];   /* our mailbox for this relationship */
	/* v12: no mailbox secret key and no remote mailbox address here: both
	 * are in the state blob only (lib/core reads them from there) */
	uint64_t created;
	uint64_t last_activity;
	uint32_t unread;
	uint8_t *state;                         /* secret, malloc'd (WITH_STATE) or the caller's (put) */
	size_t state_len;
};
/* Insert (state, state_len taken from r; the caller keeps ownership).
 * RELM_EEXIST, RELM_EINVAL (label/addr too long), RELM_ESTORE (unknown proton:
 * foreign key). */
int relm_store_rel_put(struct relm_store *st, const struct relm_store_rel *r);
/* One row by id — one index probe, nothing else read.  flags:
 * RELM_STORE_WITH_STATE, RELM_STORE_WITH_SECRETS.  RELM_ENOTFOUND.  Release
 * with relm_store_rel_clear (wipes secrets, wipes and frees state). */
int relm_store_rel_get(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                       struct relm_store_rel *out, unsigned flags);
/* Which relationship owns our mailbox `mailbox_id`.  RELM_ENOTFOUND. */
int relm_store_rel_by_mailbox(struct relm_store *st, const uint8_t mailbox_id[RELM_SIGN_PK_LEN],
                              uint8_t rel[RELM_ID_LEN]);
/* The relationship that owns our mailbox `mailbox_id` and its state blob
 * (with what this transaction staged over it), in one index probe: for
 * lib/core, which signs the mailbox's subscriptions with the key inside
 * the blob (schema v12).  *state is malloc'd, secret: the caller wipes
 * and frees it with relm_store_buf_free.  RELM_ENOTFOUND. */
int relm_store_rel_state_by_mailbox(struct relm_store *st, const uint8_t mailbox_id[RELM_SIGN_PK_LEN],
                                    uint8_t rel[RELM_ID_LEN], uint8_t **state, size_t *len);
/* A relationship of proton with the remote identity key remote_ipk (one
 * index probe: relationships_by_remote).  RELM_ENOTFOUND. */
int relm_store_rel_by_remote(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                             const uint8_t remote_ipk[RELM_SIGN_PK_LEN], uint8_t rel[RELM_ID_LEN]);
/* Relationships of a proton in id order, starting after `after` (NULL =
 * from the start), at most `limit` rows (0 = no limit), without secrets or
 * state.  A nonzero return from cb stops the walk and is returned. */
int relm_store_rel_list(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                        const uint8_t after[RELM_ID_LEN], unsigned limit,
                        int (*cb)(void *ctx, const struct relm_store_rel *r), void *ctx);
/* Delete a relationship and everything of it (its pending, history,
 * outbox, outgoing, acks and sibling_sessions rows cascade); what was
 * staged for it in the open transaction is dropped.  Used for the sibling
 * sessions of a removed device (proto/revocation.md §1).  0 or
 * RELM_ENOTFOUND. */
int relm_store_rel_delete(struct relm_store *st, const uint8_t id[RELM_ID_LEN]);
/* The remote's pinned identity key changed (an identity roll accepted, or
 * a conflict back on the old pin: proto/revocation.md §3.2).
 * RELM_ENOTFOUND. */
int relm_store_rel_set_remote_ipk(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                                  const uint8_t ipk[RELM_SIGN_PK_LEN]);
/* Replace the state blob and set last_activity.  RELM_ENOTFOUND.  This and
 * the setters below stage (see "Staging" above): the file changes at
 * commit. */
int relm_store_rel_set_state(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                             const uint8_t *state, size_t len, uint64_t last_activity);
int relm_store_rel_set_unread(struct relm_store *st, const uint8_t id[RELM_ID_LEN], uint32_t unread);
/* unread += 1 (a message received), staged the same way. */
int relm_store_rel_inc_unread(struct relm_store *st, const uint8_t id[RELM_ID_LEN]);
/* Timers: the engine's next deadline for this relationship (relm_rel_deadline;
 * 0 = none).  RELM_ENOTFOUND. */
int relm_store_rel_set_deadline(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                                uint64_t deadline_ms);
/* Relationships whose deadline is due (0 < deadline <= now), earliest first,
 * at most limit (0 = all). */
int relm_store_rel_due(struct relm_store *st, uint64_t now_ms, unsigned limit,
                       int (*cb)(void *ctx, const uint8_t id[RELM_ID_LEN]), void *ctx);
/* *next = the earliest deadline of any relationship, 0 if none. */
int relm_store_next_deadline(struct relm_store *st, uint64_t *next);
void relm_store_rel_clear(struct relm_store_rel *r);   /* wipes, frees state */
/* Wipe and free a buffer the store handed out (len bytes).  NULL is a no-op. */
void relm_store_buf_free(uint8_t *buf, size_t len);

/* ---- pending envelopes (a parent node not known yet) ------------------ */

/* Returns 0 when added, RELM_EDUP when (rel, hash) is already pending. */
int relm_store_pending_add(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                           const uint8_t hash[RELM_ID_LEN], const uint8_t *bytes, size_t len,
                           uint64_t received_ms);
/* Returns 0, or RELM_ENOTFOUND. */
int relm_store_pending_del(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                           const uint8_t hash[RELM_ID_LEN]);
/* Pending envelopes of a relationship, oldest first; bytes valid during cb. */
int relm_store_pending_list(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                            int (*cb)(void *ctx, const uint8_t hash[RELM_ID_LEN],
                                      const uint8_t *bytes, size_t len, uint64_t received_ms),
                            void *ctx);

/* ---- message history -------------------------------------------------- */

struct relm_store_msg {
	int64_t seq;                            /* local order (out: set by the store) */
	uint8_t rel[RELM_ID_LEN];
	uint8_t id[RELM_ID_LEN];
	int direction_in;                       /* 1 received, 0 sent */
	int origin;                             /* enum relm_origin */
	char kind[RELM_STORE_KIND_MAX + 1];
	const uint8_t *body;                    /* view: the caller's (insert) or valid during cb */
	size_t body_len;
	uint64_t ts;                            /* sender's clock */
	int status;                             /* enum relm_msg_status */
	char reason[RELM_STORE_REASON_MAX + 1];
	uint64_t created, updated;              /* local clock */
};
/* Insert unless (rel, id) exists: returns 1 if inserted, 0 if it was a
 * duplicate (nothing changed), or a negative error. */
int relm_store_msg_insert(struct relm_store *st, const struct relm_store_msg *m);
/* Newest first, seq < before (0 = from the newest), at most limit (0 = all). */
int relm_store_msg_list(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                        int64_t before, unsigned limit,
                        int (*cb)(void *ctx, const struct relm_store_msg *m), void *ctx);
/* Oldest first, seq > after, at most limit (0 = all): how a sibling's
 * bulk state carries a history (proto/devices.md §12.6). */
int relm_store_msg_list_after(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                              int64_t after, unsigned limit,
                              int (*cb)(void *ctx, const struct relm_store_msg *m), void *ctx);
/* One message into *out (body not returned).  RELM_ENOTFOUND. */
int relm_store_msg_get(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                       const uint8_t id[RELM_ID_LEN], struct relm_store_msg *out);
/* The same with the body: *body is a malloc'd copy with a NUL after
 * body_len bytes (secret: release with relm_store_buf_free(*body, *body_len)). */
int relm_store_msg_get_body(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                            const uint8_t id[RELM_ID_LEN], struct relm_store_msg *out,
                            uint8_t **body, size_t *body_len);
/* Set status (+ reason, may be NULL) and updated.  RELM_ENOTFOUND. */
int relm_store_msg_set_status(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                              const uint8_t id[RELM_ID_LEN], int status,
                              const char *reason, uint64_t now_ms);
/* The forward-only status change of one of our messages (a STATUS effect):
 * the row moves only if it is ours ('out'), its status is not already
 * `status`, not delivered and not failed, and — to become posted — it is
 * queued.  A receipt naming an id we received, or naming one twice, or an
 * id with no history row (automated messages have none) changes nothing.
 * Returns 1 if the row changed, 0 if not, or an error (RELM_EINVAL for a
 * status or reason out of range). */
int relm_store_msg_advance(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                           const uint8_t id[RELM_ID_LEN], int status, const char *reason,
                           uint64_t now_ms);
/* relm_store_msg_advance (no reason) of ids[0..n) at once, n at most
 * RELM_STORE_MANY: one statement instead of n (a receipt covers hundreds
 * of messages).  moved[i] = 1 if the row of ids[i] changed (an id given
 * twice: both, though it moved once).  0 or an error (RELM_EINVAL: a
 * status out of range, n too big). */
int relm_store_msg_advance_many(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                                const uint8_t (*ids)[RELM_ID_LEN], size_t n, int status,
                                uint64_t now_ms, uint8_t *moved);
/* 1 if the history of rel has message id, 0 if not, or a negative error. */
int relm_store_history_has(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                           const uint8_t id[RELM_ID_LEN]);
/* The same, shaped for struct relm_env.history_has (ctx = the store). */
int relm_store_history_has_cb(void *ctx, const uint8_t rel[16], const uint8_t msg_id[16]);

/* ---- outbox ------------------------------------------------------------ */

struct relm_store_outbox {
	int64_t seq;                            /* commit order (out) */
	uint8_t rel[RELM_ID_LEN];
	int has_rel;                            /* 0 for sibling/device traffic */
	char dest[RELM_MAILBOX_ADDR_MAX + 1];   /* mailbox address to POST to */
	const uint8_t *bytes;                   /* view */
	size_t len;
	uint8_t msg_id[RELM_ID_LEN];
	int has_msg;
	int posted;
	uint64_t created;
};
/* Append; *seq_out (may be NULL) gets its sequence number. */
int relm_store_outbox_add(struct relm_store *st, const struct relm_store_outbox *o, int64_t *seq_out);
/* Unposted rows with seq > after, in commit order, at most limit (0 = all). */
int relm_store_outbox_next(struct relm_store *st, int64_t after, unsigned limit,
                           int (*cb)(void *ctx, const struct relm_store_outbox *o), void *ctx);
/* Mark posted (idempotent).  RELM_ENOTFOUND for an unknown seq. */
int relm_store_outbox_mark_posted(struct relm_store *st, int64_t seq, uint64_t now_ms);
/* Delete posted rows, the oldest first, at most limit (0 = all): a daemon
 * deletes them a slice at a time, so that no loop turn deletes a minute's
 * worth.  Returns how many. */
int relm_store_outbox_purge_posted(struct relm_store *st, unsigned limit);

/* ---- mailbox cursors --------------------------------------------------- */

/* *cursor = last position read from that mailbox, 0 if never read. */
int relm_store_cursor_get(struct relm_store *st, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                          uint64_t *cursor);
int relm_store_cursor_set(struct relm_store *st, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                          uint64_t cursor);

/* Every mailbox this daemon reads — relationships' own mailboxes, the
 * mailboxes of invites not expired at now_ms, this device's device
 * mailboxes and the pairing mailboxes of pairings that still wait (E
 * offered or welcomed, J joining) — with its cursor (0 if none). */
int relm_store_mailbox_list(struct relm_store *st, uint64_t now_ms,
                            int (*cb)(void *ctx, const uint8_t id[RELM_SIGN_PK_LEN], uint64_t cursor),
                            void *ctx);
/* The secret key of one of those mailboxes (to sign subscriptions) that is
 * not a relationship's: an invite's, a device mailbox's or a pairing's.  A
 * relationship's is in its state blob only (schema v12): relm_core reads it
 * from there.  RELM_ENOTFOUND.  The caller wipes sk. */
int relm_store_mailbox_secret(struct relm_store *st, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                              uint8_t sk[RELM_SIGN_SK_LEN]);

/* ---- event log (subscribe {since}) ------------------------------------ */

/* Append a typed record (engine/event.h; reason is copied, no secrets) at
 * time ts; *seq_out may be NULL.  RELM_EINVAL if relm_event_check refuses
 * it.  Trims the log to the retention count in the same transaction. */
int relm_store_event_append(struct relm_store *st, const struct relm_event *ev,
                            uint64_t ts, int64_t *seq_out);
/* Events with seq > since, oldest first, at most limit (0 = all).  ev is
 * valid during cb (ev->reason points into the row); its type is
 * RELM_EV_NONE for a type this build does not know, and it carries only
 * fields its type allows (a column that cannot be read is left out). */
int relm_store_event_list(struct relm_store *st, int64_t since, unsigned limit,
                          int (*cb)(void *ctx, int64_t seq, uint64_t ts,
                                    const struct relm_event *ev), void *ctx);
/* What the commits since the last drain added to the log: the events
 * with seq > since, oldest first, as relm_store_event_list gives them —
 * from memory when this handle appended them all since its last drain,
 * else from the log (lib/store/evmem.c).  Called between transactions
 * (the daemon: after each commit), it delivers each committed event once
 * to a caller that passes the last seq it was given; inside one it reads
 * the log.  cb returning nonzero stops the drain (that event counts as
 * delivered) and is returned; else 0 or an error of the log. */
int relm_store_event_drain(struct relm_store *st, int64_t since,
                           int (*cb)(void *ctx, int64_t seq, uint64_t ts,
                                     const struct relm_event *ev), void *ctx);
/* Oldest retained seq and the last seq ever given (0, 0 when empty): a
 * subscriber with since < oldest - 1 missed events that were trimmed. */
int relm_store_event_bounds(struct relm_store *st, int64_t *oldest, int64_t *last);
/* Keep only the newest `keep` events; returns how many were deleted. */
int relm_store_event_trim(struct relm_store *st, uint32_t keep);

/* ---- requests: sends asked of the device that sends (schema v11) -------- */

/* A pending request (devices.md §11.5): data is the request message
 * (type byte included), dev the device it was last sent to (all zero:
 * none), next_ms when it goes again. */
struct relm_store_request {
	uint8_t rel[RELM_ID_LEN], id[RELM_ID_LEN], dev[RELM_ID_LEN];
	const uint8_t *data;           /* valid during the callback only */
	size_t len;
	uint64_t next_ms;
};
/* Insert or replace.  RELM_EINVAL (too big), RELM_ENOTFOUND (no such
 * relationship: the foreign key). */
int relm_store_request_put(struct relm_store *st, const struct relm_store_request *r);
/* RELM_ENOTFOUND when there was none. */
int relm_store_request_del(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                           const uint8_t id[RELM_ID_LEN]);
/* Every pending request of proton's relationships, in (rel, id) order;
 * cb's nonzero return stops the walk and is returned. */
int relm_store_request_list(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                            int (*cb)(void *ctx, const struct relm_store_request *r), void *ctx);
/* 1 if (rel, id) is a pending request, 0 if not, or an error. */
int relm_store_request_has(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                           const uint8_t id[RELM_ID_LEN]);
/* How many proton has (for daemon.status). */
int relm_store_request_count(struct relm_store *st, const uint8_t proton[RELM_ID_LEN], uint64_t *n);

/* ---- relationships held without state (schema v11) ------------------- */

/* A fanout non-hub wipes rel's state (devices.md §11.4), in the open
 * transaction: its retransmission records, acknowledgements owed and
 * pending envelopes deleted, its timer off, its state blob empty (a
 * relationship row whose state is empty is held without state), its
 * mailbox out of the mailbox list; src is the hub it wiped it under. */
int relm_store_rel_wipe(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                        const uint8_t src[RELM_ID_LEN], uint64_t now_ms);
/* rel is held with state again (the caller writes the state). */
int relm_store_rel_held(struct relm_store *st, const uint8_t rel[RELM_ID_LEN]);
/* The hub rel was wiped under.  RELM_ENOTFOUND: rel holds its state. */
int relm_store_stateless_src(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                             uint8_t src[RELM_ID_LEN]);
/* Every relationship of proton held without state, in id order. */
int relm_store_stateless_list(struct relm_store *st, const uint8_t proton[RELM_ID_LEN],
                              int (*cb)(void *ctx, const uint8_t rel[RELM_ID_LEN],
                                        const uint8_t src[RELM_ID_LEN]),
                              void *ctx);

/* ---- outgoing: the retransmission queue (schema v2) -------------------- */

/* A message sent and not yet covered by the remote's receipt: what a
 * retransmission rebuilds its payload from, and when it is due. */
struct relm_store_outgoing {
	uint8_t rel[RELM_ID_LEN];
	uint8_t id[RELM_ID_LEN];
	int kind;                               /* enum relm_kind */
	uint64_t ts;
	const uint8_t *body;                    /* view (secret); valid during cb */
	size_t body_len;
	uint32_t tries;
	uint64_t next_ms;
	uint8_t last_node[RELM_ID_LEN];
};
/* Insert, or update the row (rel, id) if it exists. */
int relm_store_outgoing_put(struct relm_store *st, const struct relm_store_outgoing *o);
/* Insert unless (rel, id) has a row (then nothing changes). */
int relm_store_outgoing_add(struct relm_store *st, const struct relm_store_outgoing *o);
/* A sibling's try of message (rel, id) (proto/ratchet.md §6.4): insert o
 * if there is no row; else count one more try on the row (tries + 1),
 * move next_ms to o->next_ms if that is later, and take o->last_node —
 * kind, ts, body and the count so far stay. */
int relm_store_outgoing_add_try(struct relm_store *st, const struct relm_store_outgoing *o);
/* 0 or RELM_ENOTFOUND. */
int relm_store_outgoing_del(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                            const uint8_t id[RELM_ID_LEN]);
/* Delete the rows of ids[0..n) (n at most RELM_STORE_MANY) in one
 * statement; those that do not exist are no error.  The rows deleted, or
 * an error. */
int relm_store_outgoing_del_many(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                                 const uint8_t (*ids)[RELM_ID_LEN], size_t n);
/* Rows of rel with next_ms <= now_ms, earliest first, at most limit (0 = all). */
int relm_store_outgoing_due(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                            uint64_t now_ms, unsigned limit,
                            int (*cb)(void *ctx, const struct relm_store_outgoing *o), void *ctx);
/* Earliest next_ms of rel (0 if none) / how many rows rel has (one probe
 * of outgoing_count, plus what the open transaction staged). */
int relm_store_outgoing_next(struct relm_store *st, const uint8_t rel[RELM_ID_LEN], uint64_t *next);
int relm_store_outgoing_count(struct relm_store *st, const uint8_t rel[RELM_ID_LEN], uint64_t *n);

/* ---- acks: acknowledgements waiting for the receipt timer (schema v4) --- */

/* Keep one: the message id, the ratchet key (dh) and counter (n) of the
 * envelope that brought it.  A row already there is left as it is (0). */
int relm_store_ack_put(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                       const uint8_t id[RELM_ID_LEN], const uint8_t dh[RELM_KEY_LEN], uint32_t n);
/* The acknowledgement went out in a receipt.  0 or RELM_ENOTFOUND. */
int relm_store_ack_del(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                       const uint8_t id[RELM_ID_LEN], const uint8_t dh[RELM_KEY_LEN], uint32_t n);
/* Every row of rel, in key order (dh, n, id).  A nonzero return from cb
 * stops the walk and is returned. */
int relm_store_ack_list(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                        int (*cb)(void *ctx, const uint8_t id[RELM_ID_LEN],
                                  const uint8_t dh[RELM_KEY_LEN], uint32_t n),
                        void *ctx);

/* ---- checking what is read back (proto/store.md §5.1) ------------------- */

/* Every reader of history, protons, devices and relationships checks the
 * values it is about to return as input is checked — text is strict UTF-8
 * without NUL and within its length, names are of their enumerations, ids
 * and keys of their size, numbers integers.  A row that fails is left out
 * of lists and refused by getters (RELM_EBADROW), and reported: fn is
 * called with a store.corrupt_row record (engine/event.h: table, row when
 * the table has row numbers, reason, and the ids that could be read),
 * valid during the call.  It may be called from any reader, inside or
 * outside a transaction, and must not call the store.  NULL: not told. */
typedef void (*relm_store_bad_row_fn)(void *ctx, const struct relm_event *ev);
void relm_store_on_bad_row(struct relm_store *st, relm_store_bad_row_fn fn, void *ctx);

/* On-demand check: PRAGMA integrity_check (or quick_check when quick),
 * then every row of the tables above through its reader.  integrity(ctx,
 * line) is called for each problem SQLite names (at most 100; none when
 * the file is sound); bad(ctx, ev) for each row that fails (the hook of
 * relm_store_on_bad_row is told too).  Either may be NULL.  Reads only
 * (a whole pass over the file: seconds on a big store).  0, or an error
 * of the store (the sticky one included). */
int relm_store_check(struct relm_store *st, int quick,
                     void (*integrity)(void *ctx, const char *line), relm_store_bad_row_fn bad,
                     void *ctx);

/* ---- internals for tests ---------------------------------------------- */
struct sqlite3;
/* The connection (tests run PRAGMA integrity_check and count rows). */
struct sqlite3 *relm__store_db(struct relm_store *st);
/* Sum of SQLITE_STMTSTATUS_VM_STEP over the cached statements since the
 * last reset (a row-touch counter for the lazy-loading test). */
uint64_t relm__store_vm_steps(struct relm_store *st, int reset);

#endif

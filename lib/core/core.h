/*
 * core.h — the engine bound to the store: every operation of the daemon's
 * API that changes state is one engine step inside one store step (the
 * durability rule: lib/core/durability.c, proto/store.md): load the
 * relationship (lazily, one row),
 * run the step, write the new state, the effects (outbox rows, history,
 * events, pending rows) and the mailbox cursor, commit.  Nothing is sent
 * here: the daemon posts outbox rows only after the commit.
 *
 * No network, no clock and no randomness of its own: the store handle and
 * struct relm_env come from the caller, like every other part of lib/.
 * Wrap several calls in relm_store_batch_begin/commit for group commit.
 *
 * Every function returns 0 or a negative RELM_E* / -errno code; on error
 * the store is as it was before the call (the step was rolled back).
 */
#ifndef RELM_CORE_H
#define RELM_CORE_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"
#include "engine/env.h"
#include "store/store.h"
#include "engine/rel.h"

struct relm_core;

enum relm_core_limits {
	RELM_INVITE_TTL_DEFAULT_S = 7 * 86400,   /* an invite is good for a week */
	RELM_INVITE_TTL_MAX_S     = 365 * 86400, /* and never more than a year */
};

/* mailbox_host: "host:port" of the mailbox server where this daemon's
 * mailboxes live (the embedded one by default).  mode: RELM_MODE_TREE for
 * the product; RELM_MODE_STRICT makes this daemon a plain single-device
 * Double Ratchet peer (tests).  The core keeps a pointer to st and a copy
 * of *env (which it never modifies: env->ctx, random and now_ms are used
 * as given; env->params are read once, here). */
int relm_core_new(struct relm_core **out, struct relm_store *st, const struct relm_env *env,
                  const char *mailbox_host, enum relm_mode mode);
void relm_core_free(struct relm_core *c);
const char *relm_core_mailbox_host(const struct relm_core *c);

/* proton.create: fresh identity key, this device's keys (DPK, device
 * prekey, device mailbox) and circle epoch 1 naming this device, signed
 * by the IPK. */
int relm_core_proton_create(struct relm_core *c, const char *label,
                            uint8_t id[RELM_ID_LEN], uint8_t ipk[RELM_SIGN_PK_LEN]);

/* Make what the protons of a store older than schema v7 lack: this
 * device's device keys and a circle naming it (proto/devices.md §2, §3).
 * One store step; protons that have both are left alone.  The daemon
 * calls it once at start. */
int relm_core_devices_upgrade(struct relm_core *c);

/* Add a device to proton's circle (proto/devices.md §2, §12.4, §12.7):
 * the next epoch, the held circle plus dev (its `added` set to the new
 * epoch; dev->invite must be signed by dev->dpk), signed by the IPK and
 * stored, the devices rows following it (device.added), and the circle
 * sent to every other sibling on its session — one store step.  *epoch
 * (may be NULL) receives the new epoch.  RELM_EEXIST (its id or DPK is in
 * the circle already), RELM_ELIMIT (RELM_MAX_DEVICES), RELM_EINVAL (a
 * field out of range, an invite not signed by its device). */
struct relm_circle_device;
int relm_core_device_add(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                         const struct relm_circle_device *dev, uint64_t *epoch);

/* Revocation (proto/revocation.md §1, §2): remove device from proton's
 * circle in one store step — the next circle without it, signed by the
 * IPK and stored (device.removed), sent to every remaining sibling and
 * once to the removed device on its session (so it can learn it was
 * removed); its sibling sessions deleted; the heal armed on every
 * relationship of the proton (each sent by relm_core_tick after its own
 * random delay in [heal_min_ms, heal_max_ms] of env->params).  With
 * rotate_identity, relm_core_identity_rotate's roll follows in the same
 * step (ipk, may be NULL, gets the new key).  *epoch (may be NULL): the
 * circle's epoch at the end.  RELM_EINVAL (this device itself; the last
 * device), RELM_ENOTFOUND (not in the circle), RELM_EREADONLY (this
 * device was removed), and relm_core_identity_rotate's errors. */
int relm_core_device_revoke(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            const uint8_t device[RELM_ID_LEN], int rotate_identity,
                            uint64_t *epoch, uint8_t ipk[RELM_SIGN_PK_LEN]);

/* The identity roll (proto/revocation.md §3), one store step: a new IPK
 * (ipk, may be NULL, gets it); every relationship of the proton sends a
 * successor statement (identity message, non-automated); the proton row
 * holds the new key pair; the circle is re-signed by it at the next epoch
 * and sent, with the new secret key, to every other device of the circle
 * (sibling message `identity`); identity.rotated (proton, ipk).  Errors of
 * relm_rel_send_identity for any relationship (RELM_ELIMIT: one whose
 * remote is not receipting) leave everything as it was; RELM_EREADONLY. */
int relm_core_identity_rotate(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                              uint8_t ipk[RELM_SIGN_PK_LEN]);

/* identity.conflict decided: relationship rel pins ipk, one of the two
 * successors reported (identity.rotated; the row's remote_ipk follows).
 * RELM_EINVAL (no conflict), RELM_ENOTFOUND (not one of the two, or no
 * such relationship). */
int relm_core_identity_accept(struct relm_core *c, const uint8_t rel[RELM_ID_LEN],
                              const uint8_t ipk[RELM_SIGN_PK_LEN]);

/* 1 if this device was removed from proton's circle (it verified a circle
 * that does not name it: the proton is read-only here — message.send,
 * invites, pairing and revocation fail with RELM_EREADONLY), 0 if not, or
 * a store error. */
int relm_core_proton_read_only(struct relm_core *c, const uint8_t proton[RELM_ID_LEN]);

/* ---- strategies (proto/devices.md §11) ---------------------------------- */

/* Strategy numbers are enum relm_strategy (engine/rel_strategy.h): 0
 * leaderless, 1 leader, 2 fanout; names as proton.set_strategy's. */
const char *relm_core_strategy_name(int strategy);          /* NULL: not one */
int relm_core_strategy_parse(const char *name);              /* -1: not one */

/* proton.set_strategy: the next strategy message (seq one above the held
 * one, by this device) adopted here and sent to every sibling.  pinned:
 * `leader`'s pinned holder (NULL: the lease decides) or `fanout`'s hub;
 * it must be a device of the circle (RELM_ENOTFOUND).  RELM_EINVAL (pinned
 * with leaderless), RELM_ENOTIMPL (fanout: not served by relmd yet),
 * RELM_EREADONLY.  *seq gets the strategy's seq. */
int relm_core_strategy_set(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], int strategy,
                           const uint8_t *pinned, uint64_t *seq);

/* What daemon.status says of a proton's strategy on this device. */
struct relm_core_strategy {
	int strategy;
	uint64_t seq;
	uint8_t pinned[RELM_ID_LEN];       /* all zero: none */
	uint8_t holder[RELM_ID_LEN];       /* the device that sends as this one sees it (zero: none known) */
	uint32_t devices;
	int sends;                         /* this device sends to the remotes now */
	uint64_t pending_requests;         /* this device's requests not yet seen sent */
	uint64_t stateless;                /* relationships it holds without state (fanout) */
};
int relm_core_strategy_get(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                           struct relm_core_strategy *out);

/* The send lease (§11.2), performed by the caller on the mailbox server
 * (mailbox.md §5.6).  relm_core_leases calls cb for each LEASE to send
 * now: for every proton whose strategy is `leader` without a pinned
 * holder (take or renew: expected = its own token when it believes it
 * holds the lease, else zero — free —; holder = its own token, ttl_ms), for one that left `leader` holding it (release:
 * expected = its own token, holder zero, ttl 0) and, with stopping set,
 * only releases of every lease it holds.  l holds the lease mailbox's
 * secret key: wiped after cb.  Call every TTL / 3
 * (relm_core_lease_ttl; default RELM_LEASE_TTL_MS). */
struct relm_core_lease {
	uint8_t proton[RELM_ID_LEN];
	uint8_t mailbox[RELM_SIGN_PK_LEN];
	uint8_t sk[RELM_SIGN_SK_LEN];      /* secret */
	uint8_t expected[RELM_ID_LEN], holder[RELM_ID_LEN];
	uint32_t ttl_ms;
	int release;
	uint64_t sent_ms;                  /* this clock now: hand it back with the answer */
};
int relm_core_leases(struct relm_core *c, int stopping,
                     int (*cb)(void *ctx, const struct relm_core_lease *l), void *ctx);
/* The server's answer to l (granted, and the live holder's token when
 * not): the view follows, and a device that now sends takes over every
 * relationship and serves its pending requests; requests go to the new
 * holder.  One store step.  Returns 1 when this device believed it held
 * the lease and the server found it free (it ran out while the device
 * was paused): call relm_core_leases again now, to take it back before
 * another device does.  No answer (a closed connection): do not call —
 * the holder stops sending when its time passes. */
int relm_core_lease_result(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], uint64_t sent_ms,
                           int granted, int release, const uint8_t token[RELM_ID_LEN]);
/* At least every TTL / 3: for every proton not leaderless (or leaderless
 * with requests still pending or relationships still held without state,
 * after a switch), the view as time has moved it (a lease that ran out),
 * its pending requests sent again when due (RELM_REQUEST_RESEND_MS), to a
 * new holder, or served here, and the state a device lacks asked for. */
int relm_core_strategy_tick(struct relm_core *c);
/* The lease TTL asked for (2 s … 120 s; 0: RELM_LEASE_TTL_MS). */
void relm_core_lease_ttl(struct relm_core *c, uint32_t ttl_ms);

/* Pairing (proto/devices.md §12).  pair_begin, on a device of proton:
 * a fresh code (text into code, cap ≥ RELM_PAIR_CODE_MAX) good until
 * *expires, for this daemon's mailbox server; the pairing mailbox M_E is
 * now in the mailbox list.  pair_join, on the joiner: the code checked
 * (malformed, truncated, bad_version, expired; invalid_argument for
 * another mailbox server than this daemon's), J's device keys made and
 * its JOIN posted — or, for a code already joining, the stored JOIN
 * posted again.  *pairing gets the pairing's id.  Returns 0 with *proton
 * once joined, RELM_EPENDING while the WELCOME is awaited.
 * pair_status: 0 (joined, *proton), RELM_EPENDING, RELM_EEXPIRED, the
 * code of a REFUSE (exists, limit, expired, replay, bad_signature), or
 * RELM_ENOTFOUND.  pairings_expire deletes every pairing past its code's
 * expiry (relmd: every minute). */
int relm_core_pair_begin(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                         char *code, size_t cap, uint64_t *expires);
int relm_core_pair_join(struct relm_core *c, const char *code, size_t len, const char *label,
                        uint8_t pairing[RELM_ID_LEN], uint8_t proton[RELM_ID_LEN]);
int relm_core_pair_status(struct relm_core *c, const uint8_t pairing[RELM_ID_LEN],
                          uint8_t proton[RELM_ID_LEN]);
int relm_core_pairings_expire(struct relm_core *c);

/* invite.create: ttl_s 0 = default.  text receives "relm:..." (cap ≥
 * RELM_INVITE_TEXT_MAX).  mailbox_id (may be NULL): the invite's mailbox,
 * which the daemon must now read. */
int relm_core_invite_create(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            int multi_use, uint64_t ttl_s, char *text, size_t cap,
                            uint8_t mailbox_id[RELM_SIGN_PK_LEN]);

/* invite.accept: a new relationship; its initial envelope is in the outbox. */
int relm_core_invite_accept(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            const char *invite, size_t len, const char *label,
                            uint8_t rel[RELM_ID_LEN]);

/* message.send.  id: client-chosen id or NULL.  An id already sent in this
 * relationship returns 0 with *was_new = 0 (idempotent; nothing sent). */
int relm_core_message_send(struct relm_core *c, const uint8_t rel[RELM_ID_LEN],
                           const char *body, size_t len, const uint8_t *id,
                           uint8_t id_out[RELM_ID_LEN], int *was_new);

/* An envelope read from one of our mailboxes at position seq.  Redelivered
 * positions (seq ≤ the stored cursor) are ignored.  A bad envelope advances
 * the cursor and is reported (envelope.undecryptable); only store failures
 * return an error (then nothing advanced, and redelivery retries). */
int relm_core_envelope(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                       uint64_t seq, const uint8_t *buf, size_t len);
/* The same, knowing when the envelope reached the mailbox (arrived_ms, ms
 * since the epoch; 0 = not known, as relm_core_envelope): an invite's
 * expiry is judged at that time when it is earlier than now
 * (proto/ratchet.md §8.3 step 3). */
int relm_core_envelope_at(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                          uint64_t seq, const uint8_t *buf, size_t len, uint64_t arrived_ms);

/* Delete every invite that has expired (expires <= now), secrets and all,
 * in one step; cb (may be NULL) is told each one's mailbox id first, to
 * stop reading it.  Returns how many (>= 0) or an error (nothing deleted). */
int relm_core_invites_expire(struct relm_core *c,
                             int (*cb)(void *ctx, const uint8_t mailbox[RELM_SIGN_PK_LEN]), void *ctx);

/* Run the relationship timers that are due (receipts, retransmissions,
 * expiry), in bounded slices: at most RELM_RECEIPTS_PER_STEP receipts and
 * RELM_RETX_PER_STEP retransmissions per relationship, and it stops once
 * about RELM_TICK_POSTS envelopes are posted.  What is left stays due:
 * *next (may be NULL) gets the next deadline, 0 if none — not later than
 * now while anything is left, so the caller ticks again (relmd: next loop
 * turn). */
int relm_core_tick(struct relm_core *c, uint64_t *next);

/* The outbox row seq was accepted by its mailbox server: the row is done
 * and its message (if any, and still queued) becomes `posted`.  A row no
 * longer there (its relationship was deleted meanwhile: a revoked
 * device's sibling session) is nothing to record: 0. */
int relm_core_outbox_posted(struct relm_core *c, int64_t seq, const uint8_t msg_id[RELM_ID_LEN],
                            const uint8_t rel[RELM_ID_LEN], int has_msg);
/* The server refused the row for good (reason < 0: too big, bad mailbox):
 * the row is done; its message becomes `failed` with the reason and is no
 * longer retransmitted. */
int relm_core_outbox_refused(struct relm_core *c, int64_t seq, const uint8_t msg_id[RELM_ID_LEN],
                             const uint8_t rel[RELM_ID_LEN], int has_msg, int reason);

/* Bundling (proto/devices.md §4.5): with on = 1, while a batch is open
 * (relm_store_batch_begin) the sibling frames its steps make — copies,
 * mostly — are held and sent per sibling as bundles (as few sibling
 * envelopes as fit RELM_SIBLING_MAX) by one step that runs just before the
 * batch commits, inside it: the durability rule holds as without bundling.
 * A step rolled back takes its frames with it.  The core sets the store's
 * hooks (relm_store_set_hooks) for this; on = 0 takes them away.  relmd
 * turns it on; without it every frame is sent in the step that made it. */
int relm_core_bundle(struct relm_core *c, int on);

/* Many acknowledgements at once, in ONE step: what relm_core_outbox_posted
 * (reason 0) or relm_core_outbox_refused (reason < 0) does for each, in
 * order.  A daemon acknowledged hundreds of posts per turn, each its own
 * step (a savepoint, its release, and a copy of every page it touched);
 * the effect on the store is the same as n single steps.  On failure
 * nothing of the n happened (the step is rolled back whole): the caller
 * may take them one at a time, so that a damaged row holds back only its
 * own.  0 or an error. */
struct relm_core_ack {
	int64_t seq;
	uint8_t msg[RELM_ID_LEN], rel[RELM_ID_LEN];
	int has_msg;                  /* msg and rel are set */
	int reason;                   /* 0: posted; < 0: refused for good */
};
int relm_core_outbox_done_many(struct relm_core *c, const struct relm_core_ack *v, size_t n);

/* Every mailbox this daemon reads, with its cursor: cb(ctx, id, cursor). */
int relm_core_mailboxes(struct relm_core *c,
                        int (*cb)(void *ctx, const uint8_t id[RELM_SIGN_PK_LEN], uint64_t cursor),
                        void *ctx);
/* 1 if a step since the last call made mailboxes to read that no API
 * call announced (relationships and invites from a sibling's bulk state,
 * a joined device's device mailbox), or deleted some (a removed device's
 * sibling sessions, proto/revocation.md §1), then 0 until the next: the
 * daemon calls relm_core_mailboxes again and reads the ones it does not
 * read yet, from their stored cursors, and stops reading those that are
 * no longer ours.  May say 1 for a step rolled back. */
int relm_core_mailboxes_changed(struct relm_core *c);
/* Sign data with the secret key of one of our mailboxes (subscription
 * challenge).  RELM_ENOTFOUND for a mailbox that is not ours. */
int relm_core_mailbox_sign(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                           const uint8_t *data, size_t len, uint8_t sig[RELM_SIG_LEN]);
/* The read key of one of our mailboxes for a server's realm (batched
 * subscription, proto/mailbox.md §5.7: relm_mbox_read_key of its secret
 * key, which never leaves lib/core; a relationship's is in its state blob
 * since store schema v12).  RELM_ENOTFOUND for a mailbox that is not ours. */
int relm_core_mailbox_read_key(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                               const uint8_t realm[32], uint8_t key[32]);
/* 0 if mailbox is still one of ours (one index probe per table, no blob
 * decoded), RELM_ENOTFOUND if not. */
int relm_core_mailbox_ours(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN]);

/* Read access for relationship.show: the decoded relationship (free with
 * relm_rel_free). */
int relm_core_rel_load(struct relm_core *c, const uint8_t rel[RELM_ID_LEN], struct relm_rel **out);

#endif

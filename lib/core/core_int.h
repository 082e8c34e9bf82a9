/*
 * core_int.h — what the files of lib/core share (core.h is the contract).
 *
 *   core.c        the handle, protons, invites, relationships being made
 *                 (both ends: invite.accept and the inviter's first envelope)
 *   durability.c  the durability rule: one engine step in one store step
 *   apply.c       an engine step's effects written into that store step
 *   devices.c     this device in its proton's circle, env->devices
 *   siblings.c    sibling sessions, and routing between the devices
 *   pairing.c     adding a device (both sides of devices.md §12)
 *   sibling_state.c  what siblings say of the proton: state_req / state
 *                 (repair) and circle frames
 *   revoke.c      removing a device, the heal, the identity roll, read-only
 *   bulk.c        the bulk state a new device receives (devices.md §12.6)
 *   strategy.c    the proton's strategy: the view, requests, the lease (§11)
 */
#ifndef RELM_CORE_INT_H
#define RELM_CORE_INT_H

#include "core/core.h"
#include "engine/rel_state.h"
#include "wire/sibling.h"
#include "error.h"

enum {
	RELM__XFERS    = 8,       /* state transfers being reassembled at once */
	RELM__ANSWERED = 32,      /* state answers remembered for RELM_REPAIR_GAP_MS */
	RELM__BULK_RELS = 8,      /* bulk `rel`s whose state is still arriving */
	RELM__VIEWS    = 16,      /* protons whose lease view is remembered */
};

/* What this device knows of a proton's send lease (strategy.c; in memory
 * only, devices.md §11.2). */
struct relm__view {
	uint8_t proton[RELM_ID_LEN];
	int used;
	uint8_t holder[RELM_ID_LEN];  /* the live holder last read (zero: none known) */
	uint64_t until;               /* this device the holder: it sends until then */
	uint64_t lease_read;          /* when the last answer's LEASE was sent */
	int sender;                   /* it sent for the proton at the last view change (-1: not known) */
	int release;                  /* it left `leader` holding the lease: give it back */
	uint64_t asked_ms;            /* fanout.c: when it last asked for the states it lacks */
	/* fanout.c: the relationships the current hub has shown it holds (a
	 * deliver from it since this strategy was adopted): only those are
	 * wiped here — two devices that each made the other the hub at once
	 * must not both wipe */
	uint8_t (*heard)[RELM_ID_LEN];
	size_t nheard, capheard;
	/* fanout.c: the hub has shown it adopted the strategy held (its
	 * `strategy` message of it, read from the hub): only delivers read
	 * since count as heard — one it sent before, when it was the hub of
	 * an older strategy, shows nothing of what it holds now */
	int hub_adopted;
	uint64_t pinged_ms;           /* when it last sent the hub the strategy held, to be shown */
	uint64_t stamp;               /* least recently used goes first */
};

/* A relationship a sibling's bulk state announced (`rel`), kept until its
 * `state` is whole (bulk.c).  In memory only: a restart loses it, and the
 * count at `synced` asks for the bulk again. */
struct relm__bulk_rel {
	uint8_t device[RELM_ID_LEN];
	struct relm_sib_rel r;
	uint64_t t_ms;                /* 0 = slot free */
};

/* A frame for a sibling session that is being stepped: sent once that
 * step has saved the session (sibling_state.c). */
struct relm__deferred {
	uint8_t proton[RELM_ID_LEN], device[RELM_ID_LEN];
	uint8_t *buf;                 /* may hold secrets: wiped when freed */
	size_t len;
};

/* A sibling frame held for the batch's bundle (bundle.c). */
struct relm__held {
	uint8_t proton[RELM_ID_LEN], device[RELM_ID_LEN];
	uint8_t *buf;                 /* may hold secrets: wiped when freed */
	size_t len;
	int sent;                     /* sent already, in this batch */
	int step_sent;                /* … by the step now open (undone with it) */
};

/* A state transfer (devices.md §4.4) whose parts are arriving. */
struct relm__xfer {
	uint8_t device[RELM_ID_LEN], rel[RELM_ID_LEN], xfer[RELM_ID_LEN];
	uint16_t parts;
	uint32_t total;
	uint64_t got;                 /* bit i: part i arrived */
	uint64_t t_ms;                /* first part */
	uint8_t *buf;                 /* total bytes, secret; NULL = slot free */
};

/* A state this device sent (device, relationship, when). */
struct relm__answered {
	uint8_t device[RELM_ID_LEN], rel[RELM_ID_LEN];
	uint64_t t_ms;
};

struct relm_core {
	struct relm_store *st;
	/* The caller's environment, copied: the engine never writes into what
	 * it is given (several simulated devices may share one), and the copy
	 * adds de-duplication through the store's history. */
	struct relm_env env_own;
	const struct relm_env *env;
	enum relm_mode mode;
	char mailbox_host[RELM_MAILBOX_ADDR_MAX + 1];
	/* The devices of the proton of the relationship being stepped
	 * (env_own.devices points here, or is NULL): relm__core_devices_load. */
	struct relm_devices devs;
	uint8_t devs_proton[RELM_ID_LEN];
	/* What the store held for one proton — its device rows and its
	 * strategy row — while relm_store_devices_gen still reads `gen`: a
	 * step on a proton of several devices read both every time (two
	 * queries per message on a sending relmd).  `ok` bits: 1 the list,
	 * 2 the strategy row. */
	struct {
		unsigned ok;
		uint64_t gen;
		uint8_t proton[RELM_ID_LEN];
		struct relm_devices list;
		struct relm_sib_strategy held;
	} devs_cache;
	/* The sibling session being stepped (busy): frames for it wait in
	 * defer until the step has saved it. */
	uint8_t busy_sess[RELM_ID_LEN];
	int busy;
	struct relm__deferred *defer;
	size_t ndefer, capdefer;
	/* In memory only: a restart loses a partial transfer (the repair asks
	 * again) and the answers' rate limit. */
	struct relm__xfer xfers[RELM__XFERS];
	struct relm__answered answered[RELM__ANSWERED];
	unsigned answered_next;
	/* The last pairing that ended without joining (a REFUSE, or expiry) and
	 * why, for relm_core_pair_status: its row is gone. */
	uint8_t refused_pairing[RELM_ID_LEN];
	int refused_code;
	struct relm__bulk_rel bulk[RELM__BULK_RELS];
	/* A step made mailboxes to read (relm_core_mailboxes_changed). */
	int mailboxes_new;
	/* Bundling (relm_core_bundle, bundle.c): the open batch's frames to
	 * siblings, sent at its end; held_mark = the first of the open step. */
	int bundling, flushing;
	struct relm__held *held;
	size_t nheld, capheld, held_mark, held_bytes;
	/* relm__core_removed's answer for the circle last judged (its
	 * proton and BLAKE2b-128 of its bytes): a send does not verify the
	 * circle's signatures again. */
	uint8_t ro_proton[RELM_ID_LEN], ro_hash[16];
	int ro_valid, ro_removed;
	/* strategy.c */
	struct relm__view views[RELM__VIEWS];
	uint64_t view_clock;
	uint32_t lease_ttl_ms;
};

static inline uint64_t relm__core_now(const struct relm_core *c)
{
	return relm__now(c->env);
}

/* RELM_ENOSTATE (a relationship held without state, fanout: devices.md
 * §11.4) as nothing to do, for the steps that only a state holder takes. */
static inline int relm__no_state_ok(int rc)
{
	return rc == RELM_ENOSTATE ? 0 : rc;
}

/* A growing list of ids (free v after); devices.c. */
struct relm__ids {
	uint8_t (*v)[RELM_ID_LEN];
	size_t n, cap;
};
/* Append id: 0 or RELM_ENOMEM (the list is as it was). */
int relm__ids_push(struct relm__ids *ids, const uint8_t id[RELM_ID_LEN]);

/* durability.c */
/* envelope.undecryptable for bytes refused at (mailbox, seq), with the
 * relationship (may be NULL), in the open step. */
int relm__core_report_bad(struct relm_core *c, const uint8_t mailbox[RELM_SIGN_PK_LEN], uint64_t seq,
                          const uint8_t *rel, const uint8_t *buf, size_t len, int why);
/* One relationship, decoded for a step (with its pending envelopes; the
 * retransmission queue and acks stay in the store), env->devices set to
 * its proton's.  Free with relm_rel_free. */
int relm__core_load(struct relm_core *c, const uint8_t id[RELM_ID_LEN], struct relm_rel **out);
/* Write rel's state, deadline and remote address back (inside the step). */
int relm__core_save(struct relm_core *c, struct relm_rel *rel);
/* Commit the open step if rc is 0, else roll it back; the result. */
int relm__core_finish(struct relm_core *c, int rc);
/* A received envelope on an existing relationship, inside the open step:
 * load, engine step, effects, save.  0 (also for a duplicate or an envelope
 * kept pending) or an error. */
int relm__core_receive_on(struct relm_core *c, const uint8_t rel_id[RELM_ID_LEN],
                          const uint8_t *buf, size_t len);

/* core.c */
/* The inviter's side: an initial envelope at invite (proton, spk_id)'s
 * mailbox makes the relationship, inside the open step.  arrived_ms: when
 * it reached the mailbox, 0 if not known. */
int relm__core_open_initial(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            uint32_t spk_id, const uint8_t *buf, size_t len, uint64_t arrived_ms);

/* devices.c */
/* Make what this device of proton lacks, inside the open step: its device
 * keys, and a circle (epoch 1, or the next) naming it with its device
 * invite.  0 when both already exist (nothing written), or an error. */
int relm__core_circle_ensure(struct relm_core *c, const uint8_t proton[RELM_ID_LEN]);
/* Point env->devices at proton's devices (the rows of the circle held)
 * for the next engine step.  0 or a store error. */
int relm__core_devices_load(struct relm_core *c, const uint8_t proton[RELM_ID_LEN]);
/* An envelope at proton's device mailbox, inside the open step: a hello
 * that opens a sibling session (devices.md §3).  RELM_EAUTH unless its
 * sender's key is a sibling's DPK in the circle held; RELM_ENOTFOUND for
 * another device prekey; decoding errors as relm_envelope_decode. */
int relm__core_device_initial(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                              const uint8_t *buf, size_t len);

/* siblings.c */
/* The effects of an engine step on rel, inside the open step: for a
 * relationship, its copies and state requests sent to the siblings on
 * their sessions (opened when missing), then relm_core_apply; for a
 * sibling session, its posts and timers, no history or message events,
 * and the sibling frames it delivered dispatched.  0 or an error. */
int relm__core_step_apply(struct relm_core *c, const struct relm_rel *rel, struct relm_effects *fx);
/* Route the COPY, SIB_TO and STATE_REQ effects of a step on rel_id (of the proton
 * whose devices c->devs holds) and mark them done. */
int relm__core_route(struct relm_core *c, const uint8_t rel_id[RELM_ID_LEN], struct relm_effects *fx);
/* A sibling's hello at proton's device mailbox (the sender's DPK checked
 * against the circle rows: device is whose): make the session. */
int relm__core_session_initial(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                               const uint8_t device[RELM_ID_LEN], const uint8_t *buf, size_t len);
/* Send one binary sibling message to device of proton on its session
 * (opened when missing); deferred while that session is being stepped. */
int relm__core_send_frame(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                          const uint8_t device[RELM_ID_LEN], const uint8_t *frame, size_t len);
/* Bundling (bundle.c): frame for device held for the batch's bundle
 * (1), or to be sent now (0: not bundling, or a frame that goes alone —
 * the device's held frames were sent first, to keep their order); < 0
 * an error. */
int relm__core_hold(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                    const uint8_t device[RELM_ID_LEN], const uint8_t *frame, size_t len);
void relm__core_held_free(struct relm_core *c);
/* Frames held for device of proton and not yet sent are not sent: the
 * device left the circle in the open step (revocation.md §1).  Undone
 * with the step, like a send. */
void relm__core_held_forget(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            const uint8_t device[RELM_ID_LEN]);

/* Send the frames deferred during a session's step (after it saved). */
int relm__core_flush_deferred(struct relm_core *c);

/* sibling_state.c — each inside the open step, from sibling device of
 * proton.  0, a refusal (the frame is bad or not for this device:
 * relm__core_sib_refusal says so; nothing was kept) or a store error. */
int relm__core_sib_state_req(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                             const uint8_t device[RELM_ID_LEN], const uint8_t rel_id[RELM_ID_LEN]);
int relm__core_sib_state(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                         const uint8_t device[RELM_ID_LEN], const struct relm_sib_state *s);
int relm__core_sib_circle(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                          const uint8_t device[RELM_ID_LEN], const uint8_t *buf, size_t len);
/* The devices rows of proton made to follow an accepted circle `next`
 * (this device's own row kept): rows added with device.added, dropped
 * with device.removed. */
struct relm_circle;
int relm__core_circle_follow(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                             const struct relm_circle *next);
/* relm_core_device_add inside the open step (c->devs loaded for
 * proton); *circle (may be NULL; malloc'd) receives the signed bytes. */
int relm__core_device_add(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                          const struct relm_circle_device *dev, uint8_t **circle, size_t *clen,
                          uint64_t *epoch_out);
/* 1 if rc is a verdict on a sibling's frame (reported as sibling.refused
 * and passed over), 0 if it is this device's own failure. */
int relm__core_sib_refusal(int rc);
/* rel_id is a relationship of proton (not a session): 0, or
 * RELM_ENOTFOUND / RELM_EAUTH. */
int relm__core_proton_rel(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                          const uint8_t rel_id[RELM_ID_LEN]);
/* rel's whole state to sibling device, in parts (devices.md §4.4). */
int relm__core_send_state(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                          const uint8_t device[RELM_ID_LEN], const uint8_t rel_id[RELM_ID_LEN]);

/* bulk.c (devices.md §12.6), inside the open step.  bulk_send: the whole
 * bulk state of proton to sibling device on its session.  The others
 * take the frames from sibling device: 0, a refusal, or a store error.
 * bulk_pending: 1 if device announced rel (a `rel` whose state has not
 * come); bulk_adopt makes it a relationship from its whole state. */
int relm__core_bulk_send(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                         const uint8_t device[RELM_ID_LEN]);
int relm__core_bulk_rel(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                        const uint8_t device[RELM_ID_LEN], const struct relm_sib_rel *r);
int relm__core_bulk_pending(struct relm_core *c, const uint8_t device[RELM_ID_LEN],
                            const uint8_t rel[RELM_ID_LEN]);
/* A sibling's whole state taken as this device's own (bulk adoption, a
 * state back after fanout): this device made none of its nodes and has
 * asked for no repair yet. */
void relm__core_state_taken(struct relm_rel *rel);
/* The cursor device's `rel` announced for rel (its slot freed), when the
 * relationship is held here without state.  0 or RELM_ENOTFOUND. */
int relm__core_bulk_cursor(struct relm_core *c, const uint8_t device[RELM_ID_LEN],
                           const uint8_t rel[RELM_ID_LEN], uint64_t *cursor);
int relm__core_bulk_adopt(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                          const uint8_t device[RELM_ID_LEN], const uint8_t rel[RELM_ID_LEN],
                          const uint8_t *blob, size_t len);
int relm__core_bulk_history(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            const struct relm_sib_history *h);
int relm__core_bulk_invites(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            const struct relm_sib_invites *v);
int relm__core_bulk_synced(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                           const uint8_t device[RELM_ID_LEN], const struct relm_sib_synced *s);

/* pairing.c: J's pairing of proton that is JOINED: 1 if there is one
 * (moved to SYNCED when synced is set), 0 if none, or a store error. */
int relm__core_pair_joined(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], int synced);
/* pairing.c: bytes at the pairing mailbox of pairing id, inside the open
 * step (a JOIN on E; a WELCOME or REFUSE on J).  0 or a verdict. */
int relm__core_pair_envelope(struct relm_core *c, const uint8_t id[RELM_ID_LEN],
                             const uint8_t mailbox[RELM_SIGN_PK_LEN], uint64_t seq,
                             const uint8_t *buf, size_t len);
/* revoke.c */
/* 1 if this device is not in proton's held circle (removed), 0, or an
 * error; relm__core_writable: RELM_EREADONLY for 1. */
int relm__core_removed(struct relm_core *c, const uint8_t proton[RELM_ID_LEN]);
int relm__core_writable(struct relm_core *c, const uint8_t proton[RELM_ID_LEN]);
/* An `identity` sibling message (wire/sib_identity.h) from device of
 * proton, inside the open step: 0 (applied, or already in hand), a
 * refusal, or a store error. */
int relm__core_sib_identity(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            const uint8_t device[RELM_ID_LEN], const uint8_t *buf, size_t len);
/* Every sibling session with device of proton deleted (rows and
 * sibling_sessions; there may be two, one opened from each side): the
 * device left the circle.  The session being stepped, if it is one of
 * them, stays (its step saves it). */
int relm__core_drop_sessions(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                             const uint8_t device[RELM_ID_LEN]);
/* The heal of every tree-mode relationship of proton (revocation.md §2)
 * armed for circle epoch: each sent by relm_rel_tick after its own random
 * delay, by whichever device of the circle comes first. */
int relm__core_heal_all(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], uint64_t epoch);
/* After a step on rel (c->devs loaded for its proton): the row's
 * remote_ipk follows the engine's pin when fx holds identity.rotated or
 * identity.conflict; a clone.suspected of fx gets the proton. */
int relm__core_pin_follow(struct relm_core *c, const struct relm_rel *rel,
                          struct relm_effects *fx);
/* strategy.c */
/* proton's lease view, made when missing (NULL: never — a slot is
 * reused). */
struct relm__view *relm__core_view(struct relm_core *c, const uint8_t proton[RELM_ID_LEN]);
/* ds->strategy and ds->holder from proton's row and the lease view (ds's
 * other fields filled).  0 or a store error. */
int relm__core_view_fill(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], struct relm_devices *ds);
/* Does c->devs_cache hold proton's rows of bits `want` (1 the device
 * list, 2 the strategy row) as the store holds them now?  Empties the
 * cache first if the store's generation moved or it is another proton's. */
unsigned relm__core_devs_cached(struct relm_core *c, const uint8_t proton[RELM_ID_LEN], unsigned want);
/* proton.created for proton, in the open step that stores it. */
int relm__core_proton_created(struct relm_core *c, const uint8_t proton[RELM_ID_LEN]);
/* A sibling's `strategy`, `request` or `deliver` (type byte included),
 * inside the open step: 0, a refusal, or a store error. */
int relm__core_sib_strategy(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                            const uint8_t device[RELM_ID_LEN], const uint8_t *buf, size_t len);
int relm__core_sib_request(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                           const uint8_t *buf, size_t len);
int relm__core_sib_deliver(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                           const uint8_t device[RELM_ID_LEN], const uint8_t *buf, size_t len);
/* The strategy held, to a new device (nothing when it never changed). */
int relm__core_strategy_send(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                             const uint8_t device[RELM_ID_LEN]);
/* fanout.c */
/* relm__core_load's answer for rel_id held without state: c->devs shows
 * the view of a requester of the hub it was wiped under (fanout, holder
 * the hub); RELM_ENOSTATE, or a store error. */
int relm__core_stateless_view(struct relm_core *c, const uint8_t rel_id[RELM_ID_LEN]);
/* The effects of a step taken without state on rel_id (a request made,
 * a deliver applied): routed and applied, inside the open step. */
int relm__core_apply_id(struct relm_core *c, const uint8_t rel_id[RELM_ID_LEN], struct relm_effects *fx);
/* Inside the open step, at every view change of proton (strategy.c):
 * a non-hub of fanout wipes every relationship it holds (its requests
 * went to the hub first); a device that must hold state again asks for
 * it; a hub that adopts fanout sends its history, one that leaves it
 * its states. was, now: the strategy before and after (-1: no change). */
int relm__core_fanout_view(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                           const struct relm_sib_strategy *was, const struct relm_sib_strategy *now);
/* A deliver from sibling device for rel_id, inside the open step: when
 * device is the hub and has shown it adopted the strategy held
 * (relm__core_hub_shown), it shows the hub holds rel_id, which this
 * device then wipes (it is not the hub).  0 or a store error. */
int relm__core_hub_heard(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                         const uint8_t device[RELM_ID_LEN], const uint8_t rel_id[RELM_ID_LEN]);
/* A `strategy` message s of fanout from sibling device, the one held
 * (adopted now, or asked: held already), inside the open step: from the
 * hub, it shows the hub adopted it (its delivers count from now on);
 * asked of this device, the hub, it is answered with it.  0 or an error. */
int relm__core_hub_shown(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                         const uint8_t device[RELM_ID_LEN], const struct relm_sib_strategy *s, int asked);
/* A whole state from sibling device for rel_id held without state: it
 * is held again from it (the first sibling's answer; the others' merge
 * as usual), reading its mailbox from the cursor device's bulk `rel`
 * announced with it (what came before is in the history that follows). */
int relm__core_state_back(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                          const uint8_t device[RELM_ID_LEN], const uint8_t rel_id[RELM_ID_LEN],
                          struct relm_rel *state);
/* What relm_core_free frees of the above. */
void relm__core_siblings_free(struct relm_core *c);

#endif

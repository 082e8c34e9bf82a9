/*
 * core_int.h — what the files of lib/core share (core.h is the contract).
 *
 *   core.c        the handle, protons, invites, relationships being made
 *                 (both ends: invite.accept and the inviter's first envelope)
 *   durability.c  the durability rule: one engine step in one store step
 *   apply.c       an engine step's effects written into that store step
 *   devices.c     this device in its proton's circle, env->devices
 *   siblings.c    sibling sessions, and routing between the devices
 */
#ifndef RELM_CORE_INT_H
#define RELM_CORE_INT_H

#include "core/core.h"
#include "engine/rel_state.h"

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
};

static inline uint64_t relm__core_now(const struct relm_core *c)
{
	return relm__now(c->env);
}

/* A growing list of ids (free v after); devices.c. */
struct relm__ids {
	uint8_t (*v)[RELM_ID_LEN];
	size_t n, cap;
};
/* Append id: 0 or RELM_ENOMEM (the list is as it was). */
int relm__ids_push(struct relm__ids *ids, const uint8_t id[RELM_ID_LEN]);

/* durability.c */
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
/* Route the COPY and STATE_REQ effects of a step on rel_id (of the proton
 * whose devices c->devs holds) and mark them done. */
int relm__core_route(struct relm_core *c, const uint8_t rel_id[RELM_ID_LEN], struct relm_effects *fx);
/* A sibling's hello at proton's device mailbox (the sender's DPK checked
 * against the circle rows: device is whose): make the session. */
int relm__core_session_initial(struct relm_core *c, const uint8_t proton[RELM_ID_LEN],
                               const uint8_t device[RELM_ID_LEN], const uint8_t *buf, size_t len);

#endif

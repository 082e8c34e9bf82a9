/*
 * util_engine.h — two (or more) parties of one relationship in one process,
 * for engine tests: key set-up, invite, accept, and effect routing through
 * the public engine API only.  Each party has its own seeded env stream and
 * a history (the message ids it holds, either direction) that answers
 * env->history_has.
 */
#ifndef RELM_TESTS_UTIL_ENGINE_H
#define RELM_TESTS_UTIL_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include "engine/rel_state.h"
#include "wire/invite.h"
#include "wire/successor.h"

struct tu_blob {
	uint8_t *buf;
	size_t len;
};

struct tu_party {
	struct relm_env env;
	struct relm_rel *rel;
	uint8_t ipk_pk[RELM_SIGN_PK_LEN];
	uint8_t ipk_sk[RELM_SIGN_SK_LEN];
	/* history: ids held (in and out) */
	uint8_t (*hist)[RELM_ID_LEN];
	uint8_t *hist_in;
	size_t nhist, caphist;
	size_t dup_deliveries;        /* DELIVER of an id already held: must stay 0 */
	/* outgoing envelopes (POST effects), in order */
	struct tu_blob *outq;
	size_t nout, capout;
	/* statuses seen */
	size_t delivered, failed, queued;
	size_t forks, resolved, undecryptable, pending_adds;
	/* several devices: this device's view of the circle (env.devices
	 * points here once tu_devices set it), the copies it made (COPY
	 * effects, in order) and the state requests it asked */
	struct relm_devices devs;
	struct tu_blob *copyq;
	size_t ncopy, capcopy;
	size_t state_reqs;
	uint8_t state_req_dev[RELM_ID_LEN];
	size_t sibling_deliveries;     /* DELIVER with origin sibling */
	/* every EVENT effect: a count per type and the last record of each */
	size_t events[RELM_EV_COUNT];
	struct relm_event last_event[RELM_EV_COUNT];
};

/* A party whose env draws from stream `stream` and reads *clock. */
void tu_party_init(struct tu_party *p, uint64_t *clock, uint64_t stream);
void tu_party_free(struct tu_party *p);

/* Make proton keys for a and b, an invite from a (with a one-time prekey
 * if with_opk), b accepts, a opens the initial envelope.  Asserts success. */
void tu_pair(struct tu_party *a, struct tu_party *b, enum relm_mode ma, enum relm_mode mb,
             int with_opk);

/* Route effects into p: POST → p->outq, DELIVER → history, STATUS/EVENT counts. */
void tu_apply(struct tu_party *p, struct relm_effects *fx);

/* Take the oldest/any outgoing envelope of p (caller frees buf). */
struct tu_blob tu_take(struct tu_party *p, size_t i);

/* Receive one envelope into p; returns the engine's code. */
int tu_recv(struct tu_party *p, const uint8_t *buf, size_t len);
/* Send text from p; asserts success; returns nothing (id into id_out if non-NULL). */
void tu_send(struct tu_party *p, const char *text, uint8_t *id_out);
/* Tick p's timers. */
void tu_tick(struct tu_party *p);
/* rounds times: deliver everything in flight both ways (whatever each
 * receive returns), then move *clock 3 s (past the receipt delay) and tick
 * both. */
void tu_exchange(struct tu_party *a, struct tu_party *b, uint64_t *clock, int rounds);

int tu_hist_has(const struct tu_party *p, const uint8_t id[RELM_ID_LEN], int in);
/* The retransmission record of id in rel, or -1. */
int tu_outgoing_index(const struct relm_rel *rel, const uint8_t id[RELM_ID_LEN]);

/* The encoded state of p's relationship (for byte-for-byte comparisons). */
struct tu_blob tu_state(const struct tu_party *p);
int tu_blob_eq(struct tu_blob x, struct tu_blob y);
void tu_blob_free(struct tu_blob *b);

/* Make parties[0..n) devices of one proton: device ids 1, 2, ... (first
 * byte), every party's env.devices names them all. */
void tu_devices(struct tu_party **parties, size_t n);
/* Apply a copy (or carry) made by device `from` to p; returns the engine's code. */
int tu_copy_in(struct tu_party *p, const struct tu_party *from, const uint8_t *buf, size_t len);
/* Take p's oldest copy (caller frees). */
struct tu_blob tu_take_copy(struct tu_party *p);
/* Deliver every copy p made to each of its siblings (in order). */
void tu_copies_to(struct tu_party *p, struct tu_party **sibs, size_t n);

/* A deep copy of p's relationship (a second device holding the same state)
 * into q, which gets stream `stream`. */
void tu_clone(struct tu_party *q, const struct tu_party *p, uint64_t *clock, uint64_t stream);

/* A circle device (wire/circle.h) with a random id whose first byte is
 * first, a fresh device key and a device invite signed by it. */
struct relm_circle_device;
void tu_circle_device(struct relm_circle_device *d, uint8_t first, uint64_t added, const char *label);

/* ---- revocation (proto/revocation.md §3) ---------------------------------- */

/* An Ed25519 key pair from the seeded test stream (RELM_SEED). */
void tu_sign_keypair(uint8_t pk[RELM_SIGN_PK_LEN], uint8_t sk[RELM_SIGN_SK_LEN]);
/* p sends successor statement st (wire/successor.h) as an identity
 * message, presenting its old key first (the effects applied to p). */
void tu_send_identity(struct tu_party *p, const uint8_t *st);

/* The forged successor statements a remote must refuse after a genuine
 * statement g (binary) it accepted, k in [0, TU_FORGERIES): 0 two valid
 * signatures over an old key never pinned, 1 g with sig_old flipped, 2 g
 * with sig_new flipped, 3 g cut short by one byte, 4 g again (a replay).
 * hex receives it in hex (NUL-terminated); returns the hex length; *code:
 * the identity.rejected code it must meet. */
enum { TU_FORGERIES = 5 };
size_t tu_forged_statement(int k, const uint8_t g[RELM_SUCCESSOR_LEN], char hex[RELM_SUCCESSOR_HEX + 1],
                           int *code);
/* Send hex (len characters, not checked: relm_rel_send_identity refuses a
 * statement that does not verify) as an identity message of rel, tracked
 * like relm_rel_send_identity's.  0 or the engine's error. */
int tu_send_forged_identity(struct relm_rel *rel, const struct relm_env *env, char *hex, size_t len,
                            struct relm_effects *fx);

#endif

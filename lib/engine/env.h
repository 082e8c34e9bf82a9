/*
 * env.h — everything the pure engine needs from the outside world.
 *
 * lib/ never reads the clock, draws randomness or touches the network on
 * its own: the caller passes one struct relm_env into every engine step.
 * relmd fills it with randombytes_buf and the real clock; tests/sim fills it
 * with a seeded PRNG and a virtual clock, so a whole multi-device schedule
 * replays bit for bit from its seed.
 */
#ifndef RELM_ENV_H
#define RELM_ENV_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"

/* Tunables with defaults in limits.h; the simulator shortens them. */
struct relm_params {
	uint32_t max_skip;           /* RELM_MAX_SKIP */
	uint32_t max_skipped;        /* RELM_MAX_SKIPPED */
	uint32_t prune_w;            /* RELM_PRUNE_W */
	uint32_t retain_r;           /* RELM_RETAIN_R */
	uint32_t receipt_delay_min_ms;
	uint32_t receipt_delay_max_ms;
	uint32_t retx_base_ms;
	uint32_t retx_cap_ms;
	uint32_t retx_max_tries;
	uint32_t pending_ttl_ms;
	uint64_t skipped_ttl_ms;
	uint32_t used_key_ttl_ms;     /* RELM_USED_KEY_TTL_MS */
	uint32_t receipt_stagger_ms;  /* RELM_RECEIPT_STAGGER_MS */
	uint32_t retx_takeover_ms;    /* RELM_RETX_TAKEOVER_MS */
	uint32_t repair_after_ms;     /* RELM_REPAIR_AFTER_MS */
	uint32_t repair_gap_ms;       /* RELM_REPAIR_GAP_MS */
	uint32_t heal_min_ms;         /* RELM_HEAL_MIN_MS (proto/revocation.md §2) */
	uint32_t heal_max_ms;         /* RELM_HEAL_MAX_MS */
	uint32_t clone_window_ms;     /* RELM_CLONE_WINDOW_MS (proto/revocation.md §4) */
};

/* The devices of this proton as the engine needs them (proto/devices.md
 * §5): this device's id and the ids of the current circle, sorted.  With
 * count ≤ 1 the engine behaves as the only device (no copies). */
struct relm_devices {
	uint8_t self[RELM_ID_LEN];
	uint32_t count;
	uint8_t ids[RELM_MAX_DEVICES][RELM_ID_LEN];
	/* The proton's strategy as this device sees it (proto/devices.md §11;
	 * enum relm_strategy of engine/rel_strategy.h, 0 = leaderless) and the
	 * device it believes sends for the proton: the lease holder, the
	 * pinned leader or the hub (all zero: none known).  The engine never
	 * decides them: the caller reads the lease and the strategy messages. */
	uint8_t strategy;
	uint8_t holder[RELM_ID_LEN];
};

struct relm_env {
	void *ctx;
	/* Fill buf with len bytes of cryptographically secure randomness. */
	void (*random)(void *ctx, uint8_t *buf, size_t len);
	/* Milliseconds since the Unix epoch (or the simulator's virtual clock). */
	uint64_t (*now_ms)(void *ctx);
	/* Optional: has this relationship's history got message `id`?  Lets
	 * de-duplication reach past what the engine keeps in memory (the store
	 * answers from its history table).  NULL: the engine's own record only. */
	int (*history_has)(void *history_ctx, const uint8_t rel_id[16], const uint8_t msg_id[16]);
	/* Optional: message `id` of the relationship's history — its kind
	 * (enum relm_kind), the sender's ts and its body (*body malloc'd, the
	 * caller wipes and frees it; NULL with *len 0 for an empty one).
	 * Returns 0 or RELM_ENOTFOUND.  With it a device shares with its
	 * siblings the messages its receipts acknowledge (proto/devices.md
	 * §5.4); NULL: it shares nothing. */
	int (*history_get)(void *history_ctx, const uint8_t rel_id[16], const uint8_t msg_id[16],
	                   int *kind, uint64_t *ts, uint8_t **body, size_t *len);
	void *history_ctx;
	/* The circle (NULL: a single device).  Read, never written. */
	const struct relm_devices *devices;
	/* Optional observer of what crosses the wire (tests/sim measures
	 * privacy with it): called with every envelope this device seals and
	 * its padded plaintext (the header holds the key and counter).  It
	 * must not keep the plaintext.  NULL in relmd. */
	void (*observe_sent)(void *observe_ctx, const uint8_t *envelope, size_t len,
	                     const uint8_t *pt, size_t ptlen);
	void *observe_ctx;
	struct relm_params params;
};

/* Defaults from limits.h. */
void relm_params_default(struct relm_params *p);

/* Helpers the engine uses. */
uint64_t relm__now(const struct relm_env *env);
void relm__random(const struct relm_env *env, uint8_t *buf, size_t len);
/* A new payload id (proto/wire.md §5): ts, the payload's own time (read
 * once, so that the id and the ts agree to the millisecond), in its first
 * 6 bytes, big-endian, and 10 random bytes. */
void relm__new_id(const struct relm_env *env, uint64_t ts, uint8_t id[RELM_ID_LEN]);
/* Uniform in [lo, hi] from env randomness. */
uint32_t relm__random_between(const struct relm_env *env, uint32_t lo, uint32_t hi);

#endif

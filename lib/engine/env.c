/* env.c — the engine's defaults and its only doors to the outside world:
 * every clock reading and every random byte of lib/ goes through the
 * functions at the bottom, which call what the caller put in struct
 * relm_env.  The system clock and randomness live in daemon/system_env.c. */
#include <string.h>
#include "engine/env.h"
#include "limits.h"

void relm_params_default(struct relm_params *p)
{
	p->max_skip = RELM_MAX_SKIP;
	p->max_skipped = RELM_MAX_SKIPPED;
	p->prune_w = RELM_PRUNE_W;
	p->retain_r = RELM_RETAIN_R;
	p->receipt_delay_min_ms = RELM_RECEIPT_DELAY_MIN_MS;
	p->receipt_delay_max_ms = RELM_RECEIPT_DELAY_MAX_MS;
	p->retx_base_ms = RELM_RETX_BASE_MS;
	p->retx_cap_ms = RELM_RETX_CAP_MS;
	p->retx_max_tries = RELM_RETX_MAX_TRIES;
	p->pending_ttl_ms = RELM_PENDING_TTL_MS;
	p->skipped_ttl_ms = RELM_SKIPPED_TTL_MS;
	p->used_key_ttl_ms = RELM_USED_KEY_TTL_MS;
	p->receipt_stagger_ms = RELM_RECEIPT_STAGGER_MS;
	p->retx_takeover_ms = RELM_RETX_TAKEOVER_MS;
	p->repair_after_ms = RELM_REPAIR_AFTER_MS;
	p->repair_gap_ms = RELM_REPAIR_GAP_MS;
	p->heal_min_ms = RELM_HEAL_MIN_MS;
	p->heal_max_ms = RELM_HEAL_MAX_MS;
	p->clone_window_ms = RELM_CLONE_WINDOW_MS;
}

uint64_t relm__now(const struct relm_env *env)
{
	return env->now_ms(env->ctx);
}

void relm__random(const struct relm_env *env, uint8_t *buf, size_t len)
{
	env->random(env->ctx, buf, len);
}

/* Ids in time order keep every index on (relationship, id) — the history's
 * de-duplication, the retransmission queue, on every device and on the
 * remote's side — appending at its end instead of touching a random leaf
 * page per message: bench_daemon's saturation, 1 device 64 -> 54 us of
 * the sending relmd's CPU per message, a 3-device proton 137 -> 100 us.
 * The time is the payload's ts, which the remote reads anyway; 80 random
 * bits keep an id unguessable. */
void relm__new_id(const struct relm_env *env, uint64_t ts, uint8_t id[RELM_ID_LEN])
{
	for (int i = 0; i < 6; i++)
		id[i] = (uint8_t)(ts >> (40 - 8 * i));
	relm__random(env, id + 6, RELM_ID_LEN - 6);
}

uint32_t relm__random_between(const struct relm_env *env, uint32_t lo, uint32_t hi)
{
	uint8_t b[8];
	uint64_t x = 0;

	if (hi <= lo)
		return lo;
	relm__random(env, b, sizeof b);
	for (int i = 0; i < 8; i++)
		x = (x << 8) | b[i];
	return lo + (uint32_t)(x % ((uint64_t)hi - lo + 1));
}

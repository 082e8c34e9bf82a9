/* env.c — defaults and the system environment (relmd's). The only file of
 * lib/ that names the real clock and randombytes_buf, and only to offer
 * them to the caller; engine code reaches them only through struct relm_env. */
#include <time.h>
#include <sodium.h>
#include "env.h"
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
}

static void sys_random(void *ctx, uint8_t *buf, size_t len)
{
	(void)ctx;
	randombytes_buf(buf, len);
}

static uint64_t sys_now(void *ctx)
{
	struct timespec ts;
	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void relm_env_init_system(struct relm_env *env)
{
	env->ctx = NULL;
	env->random = sys_random;
	env->now_ms = sys_now;
	env->history_has = NULL;
	env->history_ctx = NULL;
	relm_params_default(&env->params);
}

uint64_t relm__now(const struct relm_env *env)
{
	return env->now_ms(env->ctx);
}

void relm__random(const struct relm_env *env, uint8_t *buf, size_t len)
{
	env->random(env->ctx, buf, len);
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

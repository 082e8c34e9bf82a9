/*
 * app_lease.c — the `leader` strategy's send lease on relmd's mailbox
 * server, and the strategy timer (proto/devices.md §11.2, §11.5).
 *
 * Every TTL / 3 the core says which LEASEs to send (take, renew, give
 * back); each answer goes back to the core in the turn's batch, which
 * moves the proton's view (a device that took the lease takes over; the
 * requests go to the new holder).  The same timer runs the core's
 * strategy tick: a lease that ran out, requests due again.  A LEASE whose
 * connection drops gets no answer and is not retried: the next period
 * asks again with the core's best guess, and a holder that hears nothing
 * stops sending when its time passes.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "relmd/app_int.h"
#include "core/core.h"
#include "mailbox_client/mailbox_client.h"
#include "wire/lease.h"
#include "error.h"
#include "log.h"

struct lease_op {
	struct relmd_app *app;
	uint8_t proton[RELM_ID_LEN];
	uint64_t sent_ms;
	int release;
};

static int send_lease(void *ctx, const struct relm_core_lease *l);

static void on_lease(void *arg, int err, int granted, const uint8_t holder[RELM_MBOX_TOKEN_LEN],
                     uint32_t remaining_ms)
{
	struct lease_op *op = arg;
	struct relmd_app *app = op->app;
	int rc;

	(void)remaining_ms;
	if (err) {
		log_debug("lease: no answer (%s); asked again at the next period", relm_strerror(err));
	} else if (!app->closing) {
		if ((rc = app->txn(app)) != 0 ||
		    (rc = relm_core_lease_result(app->core, op->proton, op->sent_ms, granted, op->release,
		                                 holder)) < 0)
			app->step_failed(app, "the send lease's answer", rc);
		else if (rc == 1 && app->home && app->home->connected &&
		         (rc = relm_core_leases(app->core, 0, send_lease, app)) != 0)
			log_warn("lease: %s", relm_strerror(rc));     /* it ran out: take it back now */
	}
	free(op);
}

static int send_lease(void *ctx, const struct relm_core_lease *l)
{
	struct relmd_app *app = ctx;
	struct lease_op *op;
	int rc;

	if (!(op = calloc(1, sizeof *op)))
		return RELM_ENOMEM;
	op->app = app;
	memcpy(op->proton, l->proton, RELM_ID_LEN);
	op->sent_ms = l->sent_ms;
	op->release = l->release;
	rc = relm_mbox_client_lease(app->home->c, l->mailbox, RELM_LEASE_NAME, strlen(RELM_LEASE_NAME),
	                            l->expected, l->holder, l->ttl_ms, l->sk, NULL, NULL, on_lease, op);
	if (rc != 0) {
		free(op);
		log_debug("lease: not sent (%s)", relm_strerror(rc));
	}
	return 0;                        /* the others still go */
}

static void on_lease_timer(uv_timer_t *t)
{
	struct relmd_app *app = t->data;
	int rc;

	if (app->closing || relmd__store_writable(app) != 0)
		return;
	if (app->home && app->home->connected &&
	    (rc = relm_core_leases(app->core, 0, send_lease, app)) != 0)
		log_warn("lease: %s", relm_strerror(rc));
	if ((rc = app->txn(app)) != 0 || (rc = relm_core_strategy_tick(app->core)) != 0)
		app->step_failed(app, "the strategy timer", rc);
}

void relmd__lease_start(struct relmd_app *app)
{
	uint32_t ttl = app->cfg.lease_ttl_ms ? app->cfg.lease_ttl_ms : RELM_LEASE_TTL_MS;

	relm_core_lease_ttl(app->core, ttl);
	uv_timer_init(&app->d->loop, &app->lease_timer);
	app->lease_timer.data = app;
	app->lease_init = 1;
	uv_timer_start(&app->lease_timer, on_lease_timer, ttl / 3, ttl / 3);
}

void relmd__lease_stop(struct relmd_app *app, uv_close_cb closed)
{
	/* leases this device holds are given back, when the connection is
	 * up to carry them; else they run out within a TTL */
	if (app->home && app->home->connected && relmd__store_writable(app) == 0)
		relm_core_leases(app->core, 1, send_lease, app);
	uv_close((uv_handle_t *)&app->lease_timer, closed);
}

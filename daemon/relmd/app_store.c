/*
 * app_store.c — the store's health in relmd (see app_int.h for the state
 * diagram): opening and reopening the store, a full disk, damaged rows.
 *
 * A full disk used to stop relmd ("withholding replies and stopping"), and
 * under systemd that became a restart loop for as long as the disk stayed
 * full.  Now the turn whose commit failed is lost — SQLite rolled it back,
 * its success replies are withdrawn (server.h) and nothing of it was
 * posted — and relmd stays up: the handle, in its sticky error state, is
 * closed and the store reopened (that writes nothing: proto/store.md §1),
 * so reads are served from what is committed; writes are refused with
 * `disk_full` before they start; a probe write is tried after 1 s, then
 * with the delay doubling up to a minute, and when the disk takes it relmd
 * goes on by itself.  What the lost turn and the FULL time did not do is
 * done again from where it is kept: envelopes from the mailbox (the stored
 * cursors did not move), posts (the outbox rows are still unposted),
 * timers (their deadlines are stored), requests (clients were told
 * `disk_full`; message.send with its id is idempotent).  Nothing
 * acknowledged is lost.
 *
 * A damaged row (lib/store/check.c) is logged and recorded as a
 * store.corrupt_row event once per row per run; the readers keep it out
 * of every reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relmd/app_int.h"
#include "core/core.h"
#include "crypto/crypto.h"
#include "error.h"
#include "log.h"
#include "store/store.h"
#include "system_env.h"

/* ---- damaged rows ---------------------------------------------------------- */

/* The identity of a report: table and row, or the ids for a table without
 * row numbers. */
static void bad_key(struct bad_row *k, const struct relm_event *ev)
{
	memset(k, 0, sizeof *k);
	snprintf(k->table, sizeof k->table, "%s", ev->table);
	if (ev->has & RELM_EVF_ROW)
		k->row = ev->row;
	else {
		if (ev->has & RELM_EVF_PROTON)
			memcpy(k->a, ev->proton, RELM_ID_LEN);
		else if (ev->has & RELM_EVF_REL)         /* outgoing_count: its relationship */
			memcpy(k->a, ev->rel, RELM_ID_LEN);
		if (ev->has & RELM_EVF_DEVICE)
			memcpy(k->b, ev->device, RELM_ID_LEN);
	}
}

/* A table's name of our own, for a record that outlives the call. */
static const char *table_name(const char *t)
{
	static const char *const tables[] = { "messages", "protons", "relationships", "devices",
	                                      "outgoing_count" };

	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
		if (!strcmp(t, tables[i]))
			return tables[i];
	return "unknown";
}

/* Told by every reader of the store (any time, even inside a statement):
 * log and queue the record, the first time this run. */
static void on_bad_row(void *ctx, const struct relm_event *ev)
{
	struct relmd_app *app = ctx;
	struct bad_row k;
	char id[2 * RELM_ID_LEN + 1] = "";

	bad_key(&k, ev);
	for (size_t i = 0; i < app->nbad; i++)
		if (memcmp(&app->bad[i], &k, sizeof k) == 0)
			return;
	if (app->nbad < APP_BAD_ROWS_MAX) {
		if (app->nbad == app->capbad) {
			size_t cap = app->capbad ? 2 * app->capbad : 16;
			void *v = realloc(app->bad, cap * sizeof *app->bad);
			if (!v)
				return;
			app->bad = v;
			app->capbad = cap;
		}
		app->bad[app->nbad++] = k;
	}
	app->bad_total++;
	if (ev->has & RELM_EVF_REL)
		relm_hex(id, ev->rel, RELM_ID_LEN);
	log_err("store: %s row %llu%s%s fails its check (%s): left out of every reply; "
		"`relmctl check` lists what is damaged", ev->table, (unsigned long long)ev->row,
		id[0] ? " of relationship " : "", id, ev->reason);
	if (app->nqueue == app->capqueue) {
		size_t cap = app->capqueue ? 2 * app->capqueue : 8;
		void *e = realloc(app->bad_queue, cap * sizeof *app->bad_queue);
		if (e)
			app->bad_queue = e;
		void *r = e ? realloc(app->bad_reason, cap * sizeof *app->bad_reason) : NULL;
		if (r)
			app->bad_reason = r;
		if (!e || !r)
			return;                  /* logged; the event is lost with the memory */
		app->capqueue = cap;
	}
	app->bad_queue[app->nqueue] = *ev;
	snprintf(app->bad_reason[app->nqueue], sizeof app->bad_reason[0], "%s", ev->reason);
	app->bad_queue[app->nqueue].reason = app->bad_reason[app->nqueue];
	app->bad_queue[app->nqueue].table = table_name(ev->table);
	app->nqueue++;
	app->dirty = 1;
}

int relmd__store_report_rows(struct relmd_app *app)
{
	int rc;

	if (!app->nqueue || app->store_state != APP_STORE_OK)
		return 0;
	if ((rc = relm_store_begin(app->st)) != 0)
		return rc;
	for (size_t i = 0; i < app->nqueue && rc == 0; i++)
		rc = relm_store_event_append(app->st, &app->bad_queue[i], relm__now(&app->env), NULL);
	if (rc == 0)
		rc = relm_store_commit(app->st);
	else
		relm_store_rollback(app->st);
	if (rc == 0)
		app->nqueue = 0;
	return rc;
}

/* ---- open, close ------------------------------------------------------------ */

/* Open the store and the engine bound to it, and only then put them in
 * place of the old ones (closed): a failed reopen leaves the old handle,
 * whose every call returns its sticky error.  flags: RELM_STORE_F_NOCHECK
 * for a reopen (the file was checked at start, and a big store's check
 * takes seconds). */
static int store_open(struct relmd_app *app, unsigned flags)
{
	char errbuf[256] = "";
	struct relm_store_opts opts = { .errbuf = errbuf, .errlen = sizeof errbuf,
	                                .vfs = app->cfg.store_vfs, .flags = flags };
	struct relm_store *st = NULL;
	struct relm_core *core = NULL;
	int rc;

	if ((rc = relm_store_open(&st, app->cfg.store_path, &opts)) != 0) {
		/* the store's sentence names the file and what to do */
		if (errbuf[0])
			log_err("store: %s", errbuf);
		else
			log_err("store %s: %s", app->cfg.store_path, relm_strerror(rc));
		return rc;
	}
	if ((rc = relm_core_new(&core, st, &app->env, app->mailbox_host, RELM_MODE_TREE)) != 0) {
		relm_store_close(st);
		return rc;
	}
	/* protons of a store from before schema v8 get their circle now (at
	 * start; a reopen finds them made) */
	if (!(flags & RELM_STORE_F_NOCHECK) && (rc = relm_core_devices_upgrade(core)) != 0) {
		log_err("store %s: making the device circles: %s", app->cfg.store_path, relm_strerror(rc));
		relm_core_free(core);
		relm_store_close(st);
		return rc;
	}
	/* a turn's copies to siblings leave as one bundle per sibling */
	relm_core_bundle(core, 1);
	relm_store_on_bad_row(st, on_bad_row, app);
	relmd__store_close(app);
	app->st = st;
	app->core = core;
	app->api.core = core;
	app->api.store = st;
	return 0;
}

int relmd__store_open(struct relmd_app *app)
{
	return store_open(app, 0);
}

void relmd__store_close(struct relmd_app *app)
{
	relm_core_free(app->core);
	relm_store_close(app->st);
	app->core = NULL;
	app->st = NULL;
}

/* ---- the full disk ------------------------------------------------------------ */

int relmd__store_writable(const struct relmd_app *app)
{
	return app->store_state == APP_STORE_OK ? 0 : RELM_EDISKFULL;
}

static void on_retry(uv_timer_t *t);

static void arm_retry(struct relmd_app *app)
{
	if (!app->retry_init || app->closing)
		return;
	app->retry_at = relmd_now_ms() + app->retry_ms;
	uv_timer_start(&app->retry, on_retry, app->retry_ms, 0);
}

/* The handle is in its sticky error state (or was never good again):
 * reopen it, so reads are served from what is committed.  A reopen that
 * fails leaves no store: reads fail too, until a retry reopens it. */
static void reopen(struct relmd_app *app)
{
	if (store_open(app, RELM_STORE_F_NOCHECK) != 0)
		log_err("store %s: cannot reopen it; reads fail until the next retry",
			app->cfg.store_path);
}

int relmd__store_failed(struct relmd_app *app, int rc, const char *what)
{
	int sticky = relm_store_error(app->st);

	if (rc != RELM_EDISKFULL && sticky != RELM_EDISKFULL)
		return rc;
	app->batch = 0;
	app->nwatch = 0;                /* the lost turn's new mailboxes do not exist */
	if (app->turn_posted_min && (!app->repump_from || app->turn_posted_min < app->repump_from))
		app->repump_from = app->turn_posted_min;
	app->turn_posted_min = 0;
	app->rewind = 1;                /* the lost turn may have read envelopes */
	if (app->store_state == APP_STORE_OK) {
		app->store_state = APP_STORE_FULL;
		app->full_since = relmd_now_ms();
		app->retry_ms = app->cfg.store_retry_ms ? app->cfg.store_retry_ms : APP_RETRY_MIN_MS;
		log_err("%s: the store's disk is full (%s): this turn's work is not stored and no "
			"client was told it was; refusing writes (disk_full), serving reads, retrying "
			"in %u ms", what, relm_store_errmsg(app->st), app->retry_ms);
	} else if (app->retry_ms < APP_RETRY_MAX_MS) {
		app->retry_ms = app->retry_ms * 2 < APP_RETRY_MAX_MS ? app->retry_ms * 2 : APP_RETRY_MAX_MS;
	}
	reopen(app);
	arm_retry(app);
	return RELM_EDISKFULL;
}

static void on_retry(uv_timer_t *t)
{
	struct relmd_app *app = t->data;
	int rc;

	if (app->store_state != APP_STORE_FULL || app->closing)
		return;
	if (relm_store_error(app->st))
		reopen(app);
	rc = relm_store_error(app->st);
	if (!rc)
		rc = relm_store_probe_write(app->st, relm__now(&app->env));
	if (rc != 0) {
		if (rc == RELM_EDISKFULL || relm_store_error(app->st) == RELM_EDISKFULL) {
			relmd__store_failed(app, RELM_EDISKFULL, "retrying a write");
			log_warn("the store's disk is still full; next try in %u ms", app->retry_ms);
			return;
		}
		/* another failure: as any failed write would, it stops relmd */
		log_err("store: %s (%s) — stopping", relm_strerror(rc), relm_store_errmsg(app->st));
		relmd_stop(app->d, 1);
		return;
	}
	app->store_state = APP_STORE_OK;
	app->full_since = 0;
	app->retry_at = 0;
	log_info("the store takes writes again: back to normal (reading the mailboxes from the "
		 "stored cursors, posting what is not recorded as posted)");
	app->resume(app);
}

static void retry_closed(uv_handle_t *h)
{
	(void)h;
}

void relmd__store_start(struct relmd_app *app)
{
	uv_timer_init(&app->d->loop, &app->retry);
	app->retry.data = app;
	app->retry_init = 1;
}

void relmd__store_stop(struct relmd_app *app, uv_close_cb closed)
{
	if (!app->retry_init)
		return;
	app->retry_init = 0;
	uv_close((uv_handle_t *)&app->retry, closed ? closed : retry_closed);
}

void relmd__store_status(void *ctx, struct relmd_store_status *out)
{
	struct relmd_app *app = ctx;

	out->state = app->store_state == APP_STORE_OK ? "ok" : relm_errname(RELM_EDISKFULL);
	out->since_ms = app->full_since;
	out->retry_ms = app->store_state == APP_STORE_OK ? 0 : app->retry_at;
	out->corrupt_rows = app->bad_total;
}

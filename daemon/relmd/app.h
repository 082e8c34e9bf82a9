/*
 * app.h — relmd's application: the store, the engine bound to it (lib/core),
 * the mailbox clients and the embedded mailbox server, plugged into the
 * daemon shell (server.h) through struct relmd_hooks.
 *
 * Turn model (the durability rule and group commit, proto/store.md §2, §3):
 *
 *   loop turn N: requests, mailbox deliveries, acks and timers each run one
 *                engine step as a step of one open store batch
 *   prepare of turn N+1 (hooks.commit): commit the batch, then — and only
 *                then — publish its events, post its outbox rows, subscribe
 *                to mailboxes it created, re-arm the timer; the shell writes
 *                the turn's replies after this returns.
 *
 * So nothing reaches a client or the network before the transaction that
 * produced it is durable, and a kill -9 at any instant loses nothing that
 * was acknowledged.  A commit that fails for a full disk loses the turn
 * (its success replies are withdrawn) and the daemon stays up, refusing
 * writes until the disk takes them again (app_store.c); any other failed
 * commit stops the daemon (exit 1): the store is in its sticky error state
 * and the in-memory view may be ahead of it.
 */
#ifndef RELMD_APP_H
#define RELMD_APP_H

#include "api/server.h"

struct relmd_app;

/* Open the store of cfg->store_path and fill hooks.  0 or a negative code
 * (logged).  The app lives until relmd_app_free, after relmd_clear. */
int relmd_app_setup(struct relmd_app **out, const struct relmd_config *cfg,
                    struct relmd_hooks *hooks);
/* Bind the engine-backed API handlers (api/handlers.h) into d, with this
 * app as their backend (after relmd_init).  0 or RELM_ENOTFOUND. */
int relmd_app_bind(struct relmd_app *app, struct relmd *d);
void relmd_app_free(struct relmd_app *app);

#endif

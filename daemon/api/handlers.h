/*
 * handlers.h — the engine-backed methods of the socket API (proto/api.md
 * §4), and the one interface through which they reach the application.
 *
 * Dependency direction: the application (relmd/app.c) implements struct
 * relmd_api_backend and binds the handlers with it; the handlers know that
 * interface, the engine bound to the store (lib/core) and the store
 * (lib/store) — never the application itself.
 */
#ifndef RELMD_HANDLERS_H
#define RELMD_HANDLERS_H

#include <stdint.h>

#include "api/methods.h"

struct relm_core;
struct relm_store;

/* What the handlers need from the application.  It must outlive the
 * daemon the handlers are bound into. */
struct relmd_api_backend {
	struct relm_core *core;      /* the engine bound to the store */
	struct relm_store *store;    /* for the reads the engine does not wrap */
	void *ctx;                   /* passed back to the functions below */
	/* Open the turn's store batch before a write (idempotent): 0 or a
	 * negative code.  The handler's reply is written only after the batch
	 * commits. */
	int (*txn)(void *ctx);
	/* Start reading mailbox `id` once the turn has committed (invite.create
	 * made it). */
	void (*watch_mailbox)(void *ctx, const uint8_t id[32]);
};

/* Bind every engine-backed handler (`message.send` → api_message_send ...)
 * into ms, each reaching the application through b.  0, or RELM_ENOTFOUND
 * if the method table lacks one of them. */
int relmd_api_bind(struct relmd_methods *ms, struct relmd_api_backend *b);

#endif

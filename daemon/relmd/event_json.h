/*
 * event_json.h — an event of the store's log, a typed record
 * (lib/engine/event.h), as the notification line its subscribers get
 * (proto/api.md §6).  The one place where events become JSON.
 *
 * Live publishing and replays both build lines here, from the same store
 * rows, so a replayed line is byte for byte the line a live subscriber got.
 */
#ifndef RELMD_EVENT_JSON_H
#define RELMD_EVENT_JSON_H

#include <stddef.h>
#include <stdint.h>
#include "engine/event.h"
#include "store/store.h"

/* The line of event seq (its type: ev->type, not RELM_EV_NONE) at ts:
 *
 *   {"jsonrpc":"2.0","method":"event","params":{"seq":..,"type":..,"ts":..,
 *    <each field ev carries, under its API name>, <what the daemon adds>}}
 *
 * Added from the store: body, kind, sent_ts and origin for message.received
 * and message.sent; proton, remote_ipk and label for relationship.created
 * (nothing is added when the row is gone).  Malloc'd, without a newline,
 * *len set; NULL when out of memory. */
char *relmd_event_json(struct relm_store *st, int64_t seq, uint64_t ts,
                       const struct relm_event *ev, size_t *len);

#endif

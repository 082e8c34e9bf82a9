/*
 * event.h — what relm tells its subscribers, as typed records, and the one
 * table of the names that the socket API, the store and relmctl spell:
 * event types, message statuses and message origins.
 *
 * An event is a struct relm_event: a type and the fields that type carries
 * (the relationship, a message, a node, ...), each field a fixed-size value,
 * never text to parse.  The engine emits them as RELM_FX_EVENT effects,
 * lib/core turns other effects into them (message.received, .sent,
 * .status), the store keeps them in typed columns (proto/store.md), and the
 * daemon alone writes them as JSON (proto/api.md §6 has every type's
 * fields and their JSON names).
 *
 * Which fields a type may carry is part of the table below: `need` must all
 * be present, `may` may be; relm_event_check() refuses anything else, so
 * every record that reaches the store has exactly a documented shape.
 */
#ifndef RELM_EVENT_H
#define RELM_EVENT_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"

/* The fields of a record; `has` says which are set. */
enum relm_event_field {
	RELM_EVF_REL      = 1u << 0,    /* rel: the relationship */
	RELM_EVF_MSG      = 1u << 1,    /* msg: a message id */
	RELM_EVF_STATUS   = 1u << 2,    /* status: enum relm_msg_status */
	RELM_EVF_REASON   = 1u << 3,    /* reason: why a message failed (text) */
	RELM_EVF_NODE     = 1u << 4,    /* node: a chain-tree node id */
	RELM_EVF_PRUNED   = 1u << 5,    /* pruned: branches deleted */
	RELM_EVF_PROTON   = 1u << 6,    /* proton: a proton id */
	RELM_EVF_DEVICE   = 1u << 7,    /* device: a device id */
	RELM_EVF_EPOCH    = 1u << 8,    /* epoch: a circle epoch */
	RELM_EVF_IPK      = 1u << 9,    /* ipk: an identity public key */
	RELM_EVF_MAILBOX  = 1u << 10,   /* mailbox: the mailbox an envelope was read from */
	RELM_EVF_MBOX_SEQ = 1u << 11,   /* mailbox_seq: its position there */
	RELM_EVF_ENVELOPE = 1u << 12,   /* envelope: BLAKE2b-128 of the envelope's bytes */
	RELM_EVF_CODE     = 1u << 13,   /* code: why, as an error.h code (its name is stable) */
	RELM_EVF_TABLE    = 1u << 14,   /* table: a store table's name (text) */
	RELM_EVF_ROW      = 1u << 15,   /* row: a row of that table (its rowid) */
};

enum {
	RELM_EVENT_REASON_MAX = 159,            /* bytes of reason text (a failure's reason in history too) */
	RELM_EVENT_TABLE_MAX  = 31,             /* bytes of a table name: [a-z_], the store's own names */
};

#define RELM__EV_MSG  (RELM_EVF_REL | RELM_EVF_MSG)
#define RELM__EV_DEV  (RELM_EVF_PROTON | RELM_EVF_DEVICE | RELM_EVF_EPOCH)

/* X(ID, name, need, may).  The order is the API's type filter order and
 * never changes: append.  Six (device.*, identity.*, clone.suspected) are
 * emitted by multi-device work. */
#define RELM_EVENT_TYPES(X)                                                              \
	X(MESSAGE_RECEIVED,       "message.received",       RELM__EV_MSG, 0)                 \
	X(MESSAGE_SENT,           "message.sent",           RELM__EV_MSG, 0)                 \
	X(MESSAGE_STATUS,         "message.status",         RELM__EV_MSG | RELM_EVF_STATUS,  \
	                                                    RELM_EVF_REASON)                 \
	X(RELATIONSHIP_CREATED,   "relationship.created",   RELM_EVF_REL, 0)                 \
	X(FORK_DETECTED,          "fork.detected",          RELM_EVF_REL | RELM_EVF_NODE, 0) \
	X(FORK_RESOLVED,          "fork.resolved",          RELM_EVF_REL | RELM_EVF_PRUNED, 0) \
	X(DEVICE_ADDED,           "device.added",           RELM__EV_DEV, 0)                 \
	X(DEVICE_REMOVED,         "device.removed",         RELM__EV_DEV, 0)                 \
	/* a remote's roll names the relationship; the proton's own, the proton */ \
	X(IDENTITY_ROTATED,       "identity.rotated",       RELM_EVF_IPK,                    \
	                                                    RELM_EVF_PROTON | RELM_EVF_REL)  \
	X(IDENTITY_CONFLICT,      "identity.conflict",      RELM_EVF_REL | RELM_EVF_IPK, 0)  \
	/* envelope and code are absent only on rows migrated from a v5 store */ \
	X(ENVELOPE_UNDECRYPTABLE, "envelope.undecryptable", 0,                               \
	  RELM_EVF_REL | RELM_EVF_MAILBOX | RELM_EVF_MBOX_SEQ | RELM_EVF_ENVELOPE | RELM_EVF_CODE) \
	X(CLONE_SUSPECTED,        "clone.suspected",        RELM_EVF_REL | RELM_EVF_NODE,    \
	                                                    RELM_EVF_PROTON)                 \
	/* a stored row failed its check as it was read: left out (proto/store.md §5.1) */ \
	X(STORE_CORRUPT_ROW,      "store.corrupt_row",      RELM_EVF_TABLE | RELM_EVF_REASON, \
	  RELM_EVF_ROW | RELM_EVF_REL | RELM_EVF_MSG | RELM_EVF_PROTON | RELM_EVF_DEVICE) \
	/* a successor statement refused: code says why (proto/revocation.md §3.2) */ \
	X(IDENTITY_REJECTED,      "identity.rejected",      RELM_EVF_REL | RELM_EVF_CODE,    \
	                                                    RELM_EVF_IPK) \
	/* a sibling's frame that failed to decode or was refused: passed over, nothing kept */ \
	X(SIBLING_REFUSED,        "sibling.refused",        RELM_EVF_PROTON | RELM_EVF_DEVICE | \
	                                                    RELM_EVF_CODE, RELM_EVF_REL) \
	/* a new device holds what its siblings hold (proto/devices.md §12.6) */ \
	X(DEVICE_SYNCED,          "device.synced",          RELM_EVF_PROTON, 0)                \
	/* a proton made here (proton.create) or joined (device.pair.join) */    \
	X(PROTON_CREATED,         "proton.created",         RELM_EVF_PROTON, 0)

enum relm_event_type {
	RELM_EV_NONE = 0,          /* no event (a zeroed record; a type this build does not know) */
#define X(id, name, need, may) RELM_EV_##id,
	RELM_EVENT_TYPES(X)
#undef X
	RELM_EV_COUNT              /* 1 + the number of types */
};

/* X(ID, name).  Stored as these names (proto/store.md) and shown so by the
 * API: never rename one. */
#define RELM_MSG_STATUSES(X)                                                    \
	X(NONE,      "none")       /* a received message */                      \
	X(QUEUED,    "queued")     /* accepted from the user, envelope produced */ \
	X(POSTED,    "posted")     /* the mailbox acknowledged the envelope */   \
	X(DELIVERED, "delivered")  /* the remote's receipt covers it */          \
	X(FAILED,    "failed")     /* retry limit reached or refused; reason says why */

enum relm_msg_status {
#define X(id, name) RELM_STATUS_##id,
	RELM_MSG_STATUSES(X)
#undef X
	RELM_STATUS_COUNT
};

#define RELM_ORIGINS(X)                                                    \
	X(SELF,    "self")      /* sent by this device */                     \
	X(SIBLING, "sibling")   /* sent by another device of the same proton */ \
	X(REMOTE,  "remote")    /* received from the other party */

enum relm_origin {
	RELM_ORIGIN_NONE = 0,      /* not given: received → remote, sent → self */
#define X(id, name) RELM_ORIGIN_##id,
	RELM_ORIGINS(X)
#undef X
	RELM_ORIGIN_COUNT
};

struct relm_event {
	int type;                               /* enum relm_event_type */
	unsigned has;                           /* RELM_EVF_* of the fields below that are set */
	uint8_t rel[RELM_ID_LEN];
	uint8_t msg[RELM_ID_LEN];
	uint8_t node[RELM_ID_LEN];
	uint8_t proton[RELM_ID_LEN];
	uint8_t device[RELM_ID_LEN];
	uint8_t envelope[RELM_ID_LEN];
	uint8_t ipk[RELM_SIGN_PK_LEN];
	uint8_t mailbox[RELM_SIGN_PK_LEN];
	uint64_t mailbox_seq;
	uint64_t epoch;
	uint32_t pruned;
	int status;                             /* enum relm_msg_status */
	int code;                               /* RELM_E* (error.h) */
	const char *reason;                     /* a view, not owned; no secrets */
	const char *table;                      /* a view, not owned */
	uint64_t row;
};

/* A record of `type` with no field set. */
void relm_event_init(struct relm_event *ev, int type);
/* 0 if ev's type is known and its fields are exactly allowed (every `need`
 * set, nothing beyond `need | may`, status / code / reason in range);
 * RELM_EINVAL otherwise. */
int relm_event_check(const struct relm_event *ev);
/* The fields a type must carry and may carry (0, 0 for an unknown type). */
void relm_event_fields(int type, unsigned *need, unsigned *may);

/* Names: the string, or NULL for a value out of range (RELM_EV_NONE and
 * RELM_ORIGIN_NONE included).  The reverse lookups return the value, or -1
 * for a name that is not in the table (NULL included). */
const char *relm_event_name(int type);
int relm_event_type(const char *name);
const char *relm_status_name(int status);
int relm_status_from_name(const char *name);
const char *relm_origin_name(int origin);
int relm_origin_from_name(const char *name);

#endif

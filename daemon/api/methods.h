/*
 * methods.h — the one method table of the socket API (proto/api.md §4).
 *
 * Every method is declared once here: name, parameter shape, one-line
 * help and relmctl's positional argument order.  The
 * dispatcher (relmd_methods_call) validates params against the shape
 * *before* any handler runs, so a handler only ever sees an object whose
 * fields have the declared types and ranges and no unknown members.
 * relmctl builds its subcommands, option parsing and --help from the same
 * table, so the CLI cannot drift from the API.
 *
 * Binding: every handler is bound at run time, per daemon, with
 * relmd_methods_bind(): the shell binds the methods it serves itself
 * (daemon.status, subscribe: server.c), the application binds the
 * engine-backed ones (api/handlers.h), tests bind fakes.  An unbound
 * method is validated, then answered with -32000 data.code
 * "not_implemented".  So this file depends on no handler: the table is
 * data, and the layers above plug into it.
 */
#ifndef RELMD_METHODS_H
#define RELMD_METHODS_H

#include <stdint.h>
#include <cjson/cJSON.h>

#include "api/jsonrpc.h"
#include "limits.h"

struct relmd;
struct relmd_conn;

/* The parameter limits of the method table (the protocol-wide ones are in
 * lib/limits.h). */
enum relmd_param_limits {
	RELMD_LABEL_MAX        = 128,      /* bytes of a label (proton, relationship, device): a name, not a document */
	RELMD_INVITE_MAX       = 4096,     /* bytes of an invite text: relm: + base64url of well under 1 KiB */
	RELMD_PAIR_CODE_MAX    = 1024,     /* bytes of a pairing code (mailbox address + 32-byte secret, encoded) */
	RELMD_HEXID_LEN        = 2 * RELM_ID_LEN, /* ids in the API: 16 bytes as lowercase hex */
	RELMD_MESSAGE_LIST_MAX = 1000,     /* message.list limit: one reply stays well under RELMD_OUT_SOFT per KiB body */
	RELMD_INVITE_TTL_MAX   = 31536000, /* invite.create ttl_s: one year at most */
	RELMD_SUBSCRIBE_TYPES_MAX = 32,    /* subscribe.events items */
};
#define RELMD_SEQ_MAX 9007199254740992LL  /* 2^53: the largest seq a JSON double carries exactly */

enum relmd_ptype {
	RELMD_T_NONE = 0,
	RELMD_T_STRING,     /* UTF-8, byte length in [min, max], optional choices */
	RELMD_T_HEXID,      /* lowercase hex, length in [min, max] characters */
	RELMD_T_INT,        /* integral JSON number in [min, max] (|v| <= 2^53) */
	RELMD_T_BOOL,
	RELMD_T_OBJECT,
	RELMD_T_ARRAY,      /* of strings; item count <= max, items from choices if set */
};

enum relmd_pflags {
	RELMD_P_REQUIRED = 1u << 0,
};

struct relmd_param {
	const char *name;
	enum relmd_ptype type;
	unsigned flags;              /* enum relmd_pflags */
	int64_t min, max;            /* see the type */
	const char *const *choices;  /* NULL-terminated, or NULL */
	const char *help;            /* one line, for relmctl --help */
};

/* What a handler gets: who is calling, and the context it was bound with. */
struct relmd_call {
	struct relmd *d;             /* the daemon (NULL in unit tests) */
	struct relmd_conn *conn;     /* the calling connection (NULL in unit tests) */
	void *app;                   /* the ctx given to relmd_methods_bind() with this handler */
	const struct relmd_method *method;
	int notification;            /* no response will be sent */
};

/* A handler: `params` is a validated object (never NULL).  Return 0 with
 * *result = an owned cJSON object (NULL means {}), or a negative error
 * (RELM_E* or -errno) which becomes -32000 with data.code =
 * relm_errname(err) and message = relm_strerror(err).  Handlers run on the
 * loop thread and must not block. */
typedef int (*relmd_handler_fn)(struct relmd_call *call, const cJSON *params,
				cJSON **result);

enum relmd_mflags {
	RELMD_M_STREAM = 1u << 0,    /* the connection then receives events */
};

struct relmd_method {
	const char *name;
	const struct relmd_param *params;   /* terminated by {NULL} */
	const char *args;            /* relmctl positional order, e.g. "relationship body" */
	const char *help;            /* one line */
	unsigned flags;              /* enum relmd_mflags */
};

extern const struct relmd_method relmd_method_table[];
extern const unsigned relmd_method_count;

/* Per-daemon handler bindings (index = position in relmd_method_table),
 * each with the context its handler gets as relmd_call.app. */
enum { RELMD_METHODS_MAX = 32 };
struct relmd_methods {
	relmd_handler_fn fn[RELMD_METHODS_MAX];
	void *ctx[RELMD_METHODS_MAX];
};

const struct relmd_method *relmd_method_find(const char *name);
/* Index of a param in m->params or -1. */
int relmd_method_param_index(const struct relmd_method *m, const char *name);

/* Every method unbound. */
void relmd_methods_init(struct relmd_methods *ms);
/* Bind (or with fn NULL unbind) a handler and the context it gets as
 * relmd_call.app (may be NULL): 0, or RELM_ENOTFOUND. */
int relmd_methods_bind(struct relmd_methods *ms, const char *name, relmd_handler_fn fn,
		       void *ctx);

/* Validate params against m's shape.  `params` may be NULL (= {}), an
 * object, or an array (mapped onto the params in table order).  Returns
 * 0 and *norm = a new normalised object (caller frees), or -1 with
 * err = -32602 "invalid params: <field>: <reason>" and data
 * {"code":"invalid_argument","field":<field>}. */
int relmd_params_validate(const struct relmd_method *m, const cJSON *params,
			  cJSON **norm, struct jsonrpc_error *err);

/* A jsonrpc_handler_fn: `ctx` is a struct relmd_call_ctx. */
struct relmd_call_ctx {
	const struct relmd_methods *methods;
	struct relmd_call base;      /* d, conn: copied into each call */
};
int relmd_methods_call(void *ctx, const char *method, const cJSON *params,
		       int notification, cJSON **result, struct jsonrpc_error *err);

#endif

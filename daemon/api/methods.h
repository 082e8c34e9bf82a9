/*
 * methods.h — the one method table of the socket API (DESIGN §8).
 *
 * Every method is declared once here: name, parameter shape, one-line
 * help, relmctl's positional argument order, and the handler.  The
 * dispatcher (relmd_methods_call) validates params against the shape
 * *before* any handler runs, so a handler only ever sees an object whose
 * fields have the declared types and ranges and no unknown members.
 * relmctl builds its subcommands, option parsing and --help from the same
 * table, so the CLI cannot drift from the API.
 *
 * Binding: the table's handler for methods that need the engine or the
 * store is NULL; the dispatcher answers those with -32000
 * data.code "not_implemented".  The lead binds real handlers either by
 * filling the table's `handler` field (methods.c) or at run time per daemon
 * with relmd_methods_bind() (what the tests do).
 */
#ifndef RELMD_METHODS_H
#define RELMD_METHODS_H

#include <stdint.h>
#include <cjson/cJSON.h>

#include "api/jsonrpc.h"

struct relmd;
struct relmd_conn;

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

/* What a handler gets: who is calling, and the daemon's hooks context. */
struct relmd_call {
	struct relmd *d;             /* the daemon (NULL in unit tests) */
	struct relmd_conn *conn;     /* the calling connection (NULL in unit tests) */
	void *app;                   /* relmd_hooks.ctx: the lead's engine+store */
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
	relmd_handler_fn handler;    /* NULL: not served yet */
	unsigned flags;              /* enum relmd_mflags */
};

extern const struct relmd_method relmd_method_table[];
extern const unsigned relmd_method_count;

/* Per-daemon handler bindings, initialised from the table. */
enum { RELMD_METHODS_MAX = 32 };
struct relmd_methods {
	relmd_handler_fn fn[RELMD_METHODS_MAX];
};

const struct relmd_method *relmd_method_find(const char *name);
/* Index of a param in m->params or -1. */
int relmd_method_param_index(const struct relmd_method *m, const char *name);

void relmd_methods_init(struct relmd_methods *ms);
/* Bind (or with fn NULL unbind) a handler: 0, or RELM_ENOTFOUND. */
int relmd_methods_bind(struct relmd_methods *ms, const char *name, relmd_handler_fn fn);

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
	struct relmd_call base;      /* d, conn, app: copied into each call */
};
int relmd_methods_call(void *ctx, const char *method, const cJSON *params,
		       int notification, cJSON **result, struct jsonrpc_error *err);

/* Handlers served by the shell itself. */
int relmd_api_daemon_status(struct relmd_call *call, const cJSON *params, cJSON **result);
int relmd_api_subscribe(struct relmd_call *call, const cJSON *params, cJSON **result);

#endif

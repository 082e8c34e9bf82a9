/*
 * jsonrpc.h — JSON-RPC 2.0 framing and classification, one line at a time.
 *
 * Pure: no sockets, no libuv.  jsonrpc_process() takes one request line
 * (a single request or a batch), classifies it the way the spec says, calls
 * a handler for every well-formed call, and returns the response line:
 *
 *   not JSON / trailing garbage      -32700 Parse error, id null
 *   not UTF-8, raw control bytes     -32700 Parse error, id null
 *   not a request object             -32600 Invalid Request (id echoed when
 *                                    it was readable, else null)
 *   U+0000 in the id                 -32600, id null
 *   U+0000 in another member         -32600 (id echoed)
 *   U+0000 in params                 -32602 naming the parameter (the handler
 *                                    never sees text cJSON would cut short)
 *   handler: unknown method          -32601 (the handler says so)
 *   handler: bad params              -32602
 *   handler: engine error            -32000 with data.code
 *   notification (no "id")           handler runs, no response at all,
 *                                    even if it failed
 *   batch []                         one -32600 (not an array)
 *   batch of N                       array of the non-notification replies,
 *                                    nothing if all were notifications
 *
 * Ids may be strings, numbers or null and are echoed as given (numbers
 * are re-printed by cJSON, so integers beyond 2^53 lose precision: use
 * strings for big ids).
 *
 * Every response line is valid UTF-8: a response whose result or error
 * (as a handler built it) holds a string that is not becomes -32603 with
 * data.code "bad_state" for that call.
 */
#ifndef RELMD_JSONRPC_H
#define RELMD_JSONRPC_H

#include <stddef.h>
#include <cjson/cJSON.h>

enum jsonrpc_code {
	JSONRPC_PARSE_ERROR      = -32700,
	JSONRPC_INVALID_REQUEST  = -32600,
	JSONRPC_METHOD_NOT_FOUND = -32601,
	JSONRPC_INVALID_PARAMS   = -32602,
	JSONRPC_INTERNAL_ERROR   = -32603,
	JSONRPC_ENGINE_ERROR     = -32000,   /* with data.code = relm_errname() */
};

enum {
	JSONRPC_BATCH_MAX = 256,   /* calls per batch: one line must not buy unbounded work in one loop turn */
	JSONRPC_MSG_MAX   = 256,   /* error message bytes (they name a field, nothing more) */
};

/* An error a handler reports.  `data` (owned, may be NULL) becomes
 * error.data; jsonrpc_error_set() fills the usual {"code": name} shape. */
struct jsonrpc_error {
	int code;
	char message[JSONRPC_MSG_MAX];
	cJSON *data;
};

/* Fill *err with code, a printf message and, if data_code is non-NULL,
 * data = {"code": data_code}.  Returns -1 so handlers can `return` it. */
int jsonrpc_error_set(struct jsonrpc_error *err, int code, const char *data_code,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Called once per well-formed call.  `params` is the request's params
 * (object or array) or NULL when absent.  Return 0 with *result set (an
 * owned cJSON, NULL means {}), or -1 with *err set.  `notification` is
 * non-zero when no response will be sent. */
typedef int (*jsonrpc_handler_fn)(void *ctx, const char *method, const cJSON *params,
				  int notification, cJSON **result, struct jsonrpc_error *err);

/* Process one line (without its '\n'; need not be NUL-terminated).
 * Returns 0 with *out = the response line (malloc'd, no newline) or NULL
 * when nothing must be sent; or RELM_ENOMEM (then *out is NULL). */
int jsonrpc_process(const char *line, size_t len, jsonrpc_handler_fn h, void *ctx,
		    char **out);

/* A complete error response line (malloc'd, no newline) for errors found
 * outside a request (line too long, peer refused...).  id may be NULL
 * (printed as null), data_code NULL for no data.  NULL on ENOMEM. */
char *jsonrpc_error_line(const cJSON *id, int code, const char *message,
			 const char *data_code);

/* A response line whose success replies must be withdrawn (its turn was
 * lost: server.h, hooks.commit): *out = the line with every success
 * response — alone, or in a batch — replaced by an error response of
 * code, message and data {"code": data_code}, keeping its id; *out NULL
 * when nothing changes (an event, an error response).  0 or RELM_ENOMEM. */
int jsonrpc_retract(const char *line, size_t len, int code, const char *message,
		    const char *data_code, char **out);

#endif

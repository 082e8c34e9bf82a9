/*
 * jsonrpc.c — see jsonrpc.h.  Follows https://www.jsonrpc.org/specification
 * section by section: 4 (request/notification), 5 (response), 5.1 (error
 * codes), 6 (batch).
 *
 * Text: a line is checked before cJSON sees it (line_ok: well-formed
 * UTF-8, no raw control byte), because cJSON takes invalid bytes and raw
 * control characters inside strings and would hand them on — to be echoed
 * in an id, a method name or an error message.  And every response is
 * checked before it is printed (tree_utf8_ok), because a handler's result
 * may carry bytes from elsewhere (the store): one that is not valid UTF-8
 * is replaced by an internal error rather than written.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "api/jsonrpc.h"
#include "api/utf8.h"

int jsonrpc_error_set(struct jsonrpc_error *err, int code, const char *data_code,
		      const char *fmt, ...)
{
	va_list ap;
	err->code = code;
	va_start(ap, fmt);
	int w = vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	if (w >= (int)sizeof err->message) {
		/* Cut by the buffer: drop a character left incomplete. */
		size_t n = strlen(err->message), k = n;
		while (k > 0 && ((unsigned char)err->message[k - 1] & 0xc0) == 0x80)
			k--;
		if (k > 0 && !relmd_utf8_valid(err->message + k - 1, n - k + 1))
			err->message[k - 1] = '\0';
	}
	cJSON_Delete(err->data);
	err->data = NULL;
	if (data_code) {
		err->data = cJSON_CreateObject();
		if (err->data)
			cJSON_AddStringToObject(err->data, "code", data_code);
	}
	return -1;
}

/* {"jsonrpc":"2.0","id":<id>, ...}; id NULL → null. */
static cJSON *response_new(const cJSON *id)
{
	cJSON *r = cJSON_CreateObject();
	if (!r)
		return NULL;
	cJSON *idc = id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull();
	if (!cJSON_AddStringToObject(r, "jsonrpc", "2.0") || !idc) {
		cJSON_Delete(idc);
		cJSON_Delete(r);
		return NULL;
	}
	cJSON_AddItemToObject(r, "id", idc);
	return r;
}

/* Consumes data. */
static cJSON *error_response(const cJSON *id, int code, const char *message, cJSON *data)
{
	cJSON *r = response_new(id);
	cJSON *e = cJSON_CreateObject();
	if (!r || !e || !cJSON_AddNumberToObject(e, "code", code) ||
	    !cJSON_AddStringToObject(e, "message", message)) {
		cJSON_Delete(r);
		cJSON_Delete(e);
		cJSON_Delete(data);
		return NULL;
	}
	if (data)
		cJSON_AddItemToObject(e, "data", data);
	cJSON_AddItemToObject(r, "error", e);
	return r;
}

static cJSON *invalid_request(const cJSON *id, const char *why)
{
	char msg[JSONRPC_MSG_MAX];
	snprintf(msg, sizeof msg, "invalid request: %s", why);
	return error_response(id, JSONRPC_INVALID_REQUEST, msg, NULL);
}

/* Every member name and string of v and its siblings and children is
 * well-formed UTF-8 (numbers, literals and punctuation print as ASCII). */
static int tree_utf8_ok(const cJSON *v)
{
	for (; v; v = v->next) {
		if (v->string && !relmd_utf8_valid(v->string, strlen(v->string)))
			return 0;
		if ((cJSON_IsString(v) || cJSON_IsRaw(v)) && v->valuestring &&
		    !relmd_utf8_valid(v->valuestring, strlen(v->valuestring)))
			return 0;
		if (v->child && !tree_utf8_ok(v->child))
			return 0;
	}
	return 1;
}

/* One call.  Returns the response object, or NULL with *nomem clear for a
 * notification, or NULL with *nomem set on allocation failure. */
static cJSON *process_one(const cJSON *req, jsonrpc_handler_fn h, void *ctx, int *nomem)
{
	cJSON *resp = NULL;
	*nomem = 0;
	if (!cJSON_IsObject(req)) {
		resp = invalid_request(NULL, "not an object");
		goto out;
	}
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(req, "jsonrpc");
	const cJSON *method = cJSON_GetObjectItemCaseSensitive(req, "method");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(req, "params");
	if (id && !cJSON_IsString(id) && !cJSON_IsNumber(id) && !cJSON_IsNull(id)) {
		resp = invalid_request(NULL, "id must be a string, a number or null");
		goto out;
	}
	if (!cJSON_IsString(ver) || strcmp(ver->valuestring, "2.0") != 0) {
		resp = invalid_request(id, "jsonrpc must be \"2.0\"");
		goto out;
	}
	if (!cJSON_IsString(method)) {
		resp = invalid_request(id, "method must be a string");
		goto out;
	}
	if (params && !cJSON_IsObject(params) && !cJSON_IsArray(params)) {
		resp = invalid_request(id, "params must be an object or an array");
		goto out;
	}

	struct jsonrpc_error err = { 0 };
	cJSON *result = NULL;
	int notification = id == NULL;
	int r = h(ctx, method->valuestring, params, notification, &result, &err);
	if (notification) {
		cJSON_Delete(result);
		cJSON_Delete(err.data);
		return NULL;
	}
	if (r == 0) {
		if (!result)
			result = cJSON_CreateObject();
		resp = response_new(id);
		if (!resp || !result) {
			cJSON_Delete(result);
			cJSON_Delete(resp);
			resp = NULL;
		} else {
			cJSON_AddItemToObject(resp, "result", result);
		}
	} else {
		cJSON_Delete(result);
		resp = error_response(id, err.code, err.message, err.data);
	}
	if (resp && !tree_utf8_ok(resp)) {
		/* The id is from a checked line: only what the handler added can
		 * be at fault (a stored value that is not UTF-8). */
		cJSON_Delete(resp);
		cJSON *data = cJSON_CreateObject();
		if (data && !cJSON_AddStringToObject(data, "code", relm_errname(RELM_ESTATE))) {
			cJSON_Delete(data);
			data = NULL;
		}
		resp = data ? error_response(id, JSONRPC_INTERNAL_ERROR,
					     "internal error: the reply would not be valid UTF-8", data)
			    : NULL;
	}
out:
	if (!resp)
		*nomem = 1;
	return resp;
}

static int print_out(cJSON *resp, char **out)
{
	*out = cJSON_PrintUnformatted(resp);
	cJSON_Delete(resp);
	return *out ? 0 : RELM_ENOMEM;
}

/* May cJSON parse this line?  It must be well-formed UTF-8, with no raw
 * control byte (U+0000-U+001F) inside a string — JSON wants them escaped;
 * cJSON would take them, and a raw NUL cuts a string short — and none
 * between tokens but the white space JSON allows (cJSON would skip any
 * byte up to 0x20).  What else makes the line invalid JSON is cJSON's to
 * find. */
static int line_ok(const char *line, size_t len)
{
	int in_str = 0, esc = 0;
	if (!relmd_utf8_valid(line, len))
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20) {
			if (in_str || (c != '\t' && c != '\n' && c != '\r'))
				return 0;
		} else if (esc) {
			esc = 0;
		} else if (c == '\\') {
			esc = in_str;
		} else if (c == '"') {
			in_str = !in_str;
		}
	}
	return 1;
}

int jsonrpc_process(const char *line, size_t len, jsonrpc_handler_fn h, void *ctx,
		    char **out)
{
	*out = NULL;
	const char *end = NULL;
	cJSON *req = line_ok(line, len) ? cJSON_ParseWithLengthOpts(line, len, &end, 0) : NULL;
	if (req) {
		/* cJSON stops after the first value: anything but white space
		 * after it makes the line unparseable as one JSON text. */
		for (const char *p = end; p < line + len; p++)
			if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
				cJSON_Delete(req);
				req = NULL;
				break;
			}
	}
	if (!req) {
		cJSON *e = error_response(NULL, JSONRPC_PARSE_ERROR, "parse error: not valid JSON", NULL);
		return e ? print_out(e, out) : RELM_ENOMEM;
	}

	int nomem = 0;
	if (!cJSON_IsArray(req)) {
		cJSON *resp = process_one(req, h, ctx, &nomem);
		cJSON_Delete(req);
		if (nomem)
			return RELM_ENOMEM;
		return resp ? print_out(resp, out) : 0;
	}

	/* Batch (spec §6). */
	int n = cJSON_GetArraySize(req);
	cJSON *resp = NULL;
	if (n == 0) {
		resp = invalid_request(NULL, "empty batch");
		cJSON_Delete(req);
		return resp ? print_out(resp, out) : RELM_ENOMEM;
	}
	if (n > JSONRPC_BATCH_MAX) {
		char why[64];
		snprintf(why, sizeof why, "batch of more than %d calls", JSONRPC_BATCH_MAX);
		resp = invalid_request(NULL, why);
		cJSON_Delete(req);
		return resp ? print_out(resp, out) : RELM_ENOMEM;
	}
	cJSON *arr = cJSON_CreateArray();
	if (!arr) {
		cJSON_Delete(req);
		return RELM_ENOMEM;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, req) {
		cJSON *one = process_one(it, h, ctx, &nomem);
		if (nomem) {
			/* Calls already ran; their replies are lost with this
			 * one.  Only reachable when malloc fails. */
			cJSON_Delete(arr);
			cJSON_Delete(req);
			return RELM_ENOMEM;
		}
		if (one)
			cJSON_AddItemToArray(arr, one);
	}
	cJSON_Delete(req);
	if (cJSON_GetArraySize(arr) == 0) {
		cJSON_Delete(arr);
		return 0;
	}
	return print_out(arr, out);
}

char *jsonrpc_error_line(const cJSON *id, int code, const char *message,
			 const char *data_code)
{
	cJSON *data = NULL;
	if (data_code) {
		data = cJSON_CreateObject();
		if (!data || !cJSON_AddStringToObject(data, "code", data_code)) {
			cJSON_Delete(data);
			return NULL;
		}
	}
	cJSON *e = error_response(id, code, message, data);
	char *s = NULL;
	if (e && print_out(e, &s) == 0)
		return s;
	return NULL;
}

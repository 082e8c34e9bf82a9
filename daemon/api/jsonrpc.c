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

/* ---- strings holding U+0000 --------------------------------------------- */

/* cJSON decodes "\u0000" to a NUL byte, which ends its C string: the text
 * after it would silently go.  relmd refuses such text instead of using
 * what is left.  The line scan numbers the line's strings in the order
 * they appear — member names and values alike — and notes which hold a
 * "\u0000"; cJSON keeps that order (members and items in document order,
 * a member's name before its value), so a walk of the parsed tree counts
 * the same strings and finds them again. */
struct nuls {
	size_t *ord;             /* ordinals of the strings holding U+0000, ascending */
	size_t n, cap;
	size_t next;             /* walk: the ordinal of the next string */
	size_t k;                /* walk: the first entry of ord not passed yet */
};

static int nuls_add(struct nuls *nz, size_t ord)
{
	if (nz->n == nz->cap) {
		size_t cap = nz->cap ? 2 * nz->cap : 8;
		size_t *o = realloc(nz->ord, cap * sizeof *o);
		if (!o)
			return RELM_ENOMEM;
		nz->ord = o;
		nz->cap = cap;
	}
	nz->ord[nz->n++] = ord;
	return 0;
}

/* Does the next string of the walk hold U+0000? */
static int nul_next(struct nuls *nz)
{
	size_t ord = nz->next++;
	while (nz->k < nz->n && nz->ord[nz->k] < ord)
		nz->k++;
	return nz->k < nz->n && nz->ord[nz->k] == ord;
}

/* Walk v's strings (its members' names included, not its own name); 1 if
 * one holds U+0000.  The whole subtree is walked, to keep the count. */
static int nul_walk(const cJSON *v, struct nuls *nz)
{
	int hit = 0;
	if (cJSON_IsString(v))
		return nul_next(nz);
	for (const cJSON *c = (cJSON_IsObject(v) || cJSON_IsArray(v)) ? v->child : NULL; c; c = c->next) {
		if (cJSON_IsObject(v))
			hit |= nul_next(nz);
		hit |= nul_walk(c, nz);
	}
	return hit;
}

enum nul_where {
	NUL_NONE = 0,
	NUL_UNTRUSTED,           /* in the id (or in the name of what cJSON takes for it): no id to echo */
	NUL_MEMBER,              /* in jsonrpc, method or another member (name or value) */
	NUL_PARAMS,              /* in params: -32602 naming the parameter */
};

struct nul_at {
	enum nul_where where;
	const char *member;      /* NUL_MEMBER: which (as cJSON cut its name) */
	int in_name;             /* in the member's or parameter's name, not its value */
	char field[80];          /* NUL_PARAMS: the parameter, or params[i] */
};

/* Walk one element of the line (a request, or anything a batch holds) and
 * say where its first string holding U+0000 is. */
static void nul_find(const cJSON *req, struct nuls *nz, struct nul_at *at)
{
	memset(at, 0, sizeof *at);
	if (nz->n == 0)
		return;                  /* the usual line: nothing to walk */
	if (!cJSON_IsObject(req)) {
		if (nul_walk(req, nz))
			at->where = NUL_UNTRUSTED;
		return;
	}
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
	const cJSON *params = cJSON_GetObjectItemCaseSensitive(req, "params");
	for (const cJSON *m = req->child; m; m = m->next) {
		int in_name = nul_next(nz);
		if (m == params && !in_name && (cJSON_IsObject(m) || cJSON_IsArray(m))) {
			int i = 0;
			for (const cJSON *p = m->child; p; p = p->next, i++) {
				int pn = cJSON_IsObject(m) && nul_next(nz);
				int pv = nul_walk(p, nz);
				if (!(pn || pv) || at->where != NUL_NONE)
					continue;
				at->where = NUL_PARAMS;
				at->in_name = pn;
				if (cJSON_IsObject(m))
					snprintf(at->field, sizeof at->field, "%.*s",
						 relmd_utf8_cut(p->string, 64), p->string);
				else
					snprintf(at->field, sizeof at->field, "params[%d]", i);
			}
			continue;
		}
		int in_value = nul_walk(m, nz);
		if (!(in_name || in_value))
			continue;
		if (m == id) {
			at->where = NUL_UNTRUSTED;       /* over any other find */
		} else if (at->where == NUL_NONE || at->where == NUL_PARAMS) {
			at->where = NUL_MEMBER;
			at->member = m->string;
			at->in_name = in_name;
		}
	}
}

/* -32602 for U+0000 in a parameter. */
static cJSON *nul_in_params(const cJSON *id, const struct nul_at *at)
{
	char msg[JSONRPC_MSG_MAX];
	cJSON *data = cJSON_CreateObject();
	if (!data || !cJSON_AddStringToObject(data, "code", relm_errname(RELM_EINVAL)) ||
	    !cJSON_AddStringToObject(data, "field", at->field)) {
		cJSON_Delete(data);
		return NULL;
	}
	snprintf(msg, sizeof msg, "invalid params: %s: %s U+0000, which relmd does not accept "
		 "(text cannot carry it)", at->field, at->in_name ? "the name contains" : "contains");
	return error_response(id, JSONRPC_INVALID_PARAMS, msg, data);
}

/* ---- one call ---------------------------------------------------------------- */

/* One call.  Returns the response object, or NULL with *nomem clear for a
 * notification, or NULL with *nomem set on allocation failure. */
static cJSON *process_one(const cJSON *req, const struct nul_at *nul, jsonrpc_handler_fn h,
			  void *ctx, int *nomem)
{
	cJSON *resp = NULL;
	*nomem = 0;
	if (!cJSON_IsObject(req)) {
		resp = invalid_request(NULL, "not an object");
		goto out;
	}
	if (nul->where == NUL_UNTRUSTED) {
		resp = invalid_request(NULL, "the id contains U+0000");
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
	if (nul->where == NUL_MEMBER) {
		char why[96];
		if (nul->in_name)
			snprintf(why, sizeof why, "a member name contains U+0000");
		else
			snprintf(why, sizeof why, "%.*s contains U+0000",
				 relmd_utf8_cut(nul->member, 32), nul->member);
		resp = invalid_request(id, why);
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
	if (nul->where == NUL_PARAMS) {
		if (!id)
			return NULL;     /* a notification: nothing runs, nothing is said */
		resp = nul_in_params(id, nul);
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
 * find.  Strings holding a "\u0000" escape go into nz.  1 yes, 0 no, or
 * RELM_ENOMEM. */
#define C4  1, 1, 1, 1
#define C32 C4, C4, C4, C4, C4, C4, C4, C4
/* The bytes that can change the scan's state: control bytes, '"', '\\'.
 * Runs of others are skipped a table lookup at a time (a word-at-a-time
 * test measured slower: JSON's strings are short). */
static const unsigned char scan_special[256] = { C32, ['"'] = 1, ['\\'] = 1 };
#undef C32
#undef C4

static int line_scan(const char *line, size_t len, struct nuls *nz)
{
	int in_str = 0, esc = 0, hex = 0, marked = 0;
	unsigned val = 0;
	size_t ord = 0;                  /* strings closed so far */
	if (!relmd_utf8_valid(line, len))
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (!esc && !hex) {
			while (i < len && !scan_special[(unsigned char)line[i]])
				i++;
			if (i == len)
				break;
		}
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20) {
			if (in_str || (c != '\t' && c != '\n' && c != '\r'))
				return 0;
		} else if (!in_str) {
			if (c == '"') {
				in_str = 1;
				marked = 0;
			}
		} else if (hex) {                /* the digits of \uXXXX */
			int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
				c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
			if (d < 0)
				return 0;
			val = val << 4 | (unsigned)d;
			if (--hex == 0 && val == 0 && !marked) {
				if (nuls_add(nz, ord) < 0)
					return RELM_ENOMEM;
				marked = 1;
			}
		} else if (esc) {
			esc = 0;
			if (c == 'u') {
				hex = 4;
				val = 0;
			}
		} else if (c == '\\') {
			esc = 1;
		} else if (c == '"') {
			in_str = 0;
			ord++;
		}
	}
	return 1;
}

int jsonrpc_process(const char *line, size_t len, jsonrpc_handler_fn h, void *ctx,
		    char **out)
{
	struct nuls nz = { 0 };
	struct nul_at at;
	cJSON *req = NULL, *resp = NULL;
	int nomem = 0, rc = 0;

	*out = NULL;
	int ok = line_scan(line, len, &nz);
	if (ok < 0) {
		rc = ok;
		goto done;
	}
	const char *end = NULL;
	req = ok ? cJSON_ParseWithLengthOpts(line, len, &end, 0) : NULL;
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
		resp = error_response(NULL, JSONRPC_PARSE_ERROR,
				      ok ? "parse error: not valid JSON"
					 : "parse error: not valid UTF-8, or a raw control character", NULL);
		nomem = !resp;
		goto done;
	}

	if (!cJSON_IsArray(req)) {
		nul_find(req, &nz, &at);
		resp = process_one(req, &at, h, ctx, &nomem);
		goto done;
	}

	/* Batch (JSON-RPC 2.0 specification §6, proto/api.md §2). */
	int n = cJSON_GetArraySize(req);
	if (n == 0 || n > JSONRPC_BATCH_MAX) {
		char why[64];
		if (n == 0)
			snprintf(why, sizeof why, "empty batch");
		else
			snprintf(why, sizeof why, "batch of more than %d calls", JSONRPC_BATCH_MAX);
		resp = invalid_request(NULL, why);
		nomem = !resp;
		goto done;
	}
	if (!(resp = cJSON_CreateArray())) {
		nomem = 1;
		goto done;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, req) {
		nul_find(it, &nz, &at);
		cJSON *one = process_one(it, &at, h, ctx, &nomem);
		if (nomem)
			break;   /* calls already ran: their replies are lost with this one (malloc failed) */
		if (one)
			cJSON_AddItemToArray(resp, one);
	}
	if (!nomem && cJSON_GetArraySize(resp) == 0) {
		cJSON_Delete(resp);      /* all notifications: nothing at all */
		resp = NULL;
	}
done:
	cJSON_Delete(req);
	free(nz.ord);
	if (nomem) {
		cJSON_Delete(resp);
		return RELM_ENOMEM;
	}
	return resp ? print_out(resp, out) : rc;
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

/* A success response of this line's as an error response; NULL for
 * anything else (events, errors), which stays. */
static cJSON *retract_one(const cJSON *r, int code, const char *message, const char *data_code)
{
	cJSON *data;

	if (!cJSON_IsObject(r) || !cJSON_GetObjectItemCaseSensitive(r, "result"))
		return NULL;
	if (!(data = cJSON_CreateObject()) || !cJSON_AddStringToObject(data, "code", data_code)) {
		cJSON_Delete(data);
		return NULL;
	}
	return error_response(cJSON_GetObjectItemCaseSensitive(r, "id"), code, message, data);
}

int jsonrpc_retract(const char *line, size_t len, int code, const char *message,
		    const char *data_code, char **out)
{
	cJSON *v = cJSON_ParseWithLength(line, len), *e;
	int changed = 0;

	*out = NULL;
	if (!v)
		return 0;                 /* not a line of ours: leave it */
	if (cJSON_IsArray(v)) {
		for (int i = 0; i < cJSON_GetArraySize(v); i++) {
			if (!(e = retract_one(cJSON_GetArrayItem(v, i), code, message, data_code)))
				continue;
			if (!cJSON_ReplaceItemInArray(v, i, e)) {
				cJSON_Delete(e);
				cJSON_Delete(v);
				return RELM_ENOMEM;
			}
			changed = 1;
		}
		if (!changed) {
			cJSON_Delete(v);
			return 0;
		}
		return print_out(v, out);
	}
	e = retract_one(v, code, message, data_code);
	cJSON_Delete(v);
	return e ? print_out(e, out) : 0;
}

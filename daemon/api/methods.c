/*
 * methods.c — the method table (proto/api.md §4), parameter validation and the
 * dispatcher.  See methods.h.
 *
 * Validation rules, each with its reason:
 *  - unknown members are rejected, so a typo ("lable") is an error rather
 *    than a silently ignored option;
 *  - duplicate members are rejected (cJSON keeps both, and which one a
 *    handler would read is an accident);
 *  - numbers are read from valuedouble (valueint saturates) and must be
 *    integral and within the declared range;
 *  - strings must be valid UTF-8 (bodies and labels reach other devices
 *    and other people), and ids lowercase hex of the declared length.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "api/events.h"
#include "limits.h"
#include "log.h"
#include "api/methods.h"
#include "api/utf8.h"

#define HEXID(n, fl, h)  { n, RELMD_T_HEXID, fl, RELMD_HEXID_LEN, RELMD_HEXID_LEN, NULL, h }
#define END              { NULL, RELMD_T_NONE, 0, 0, 0, NULL, NULL }

static const char *const strategies[] = { "leaderless", "leader", "fanout", NULL };
static const char *const event_names[] = {
#define X(id, name, need, may) name,
	RELM_EVENT_TYPES(X)
#undef X
	NULL
};

static const struct relmd_param p_none[] = { END };
static const struct relmd_param p_proton_create[] = {
	{ "label", RELMD_T_STRING, RELMD_P_REQUIRED, 1, RELMD_LABEL_MAX, NULL, "a name for this identity, shown only to you" },
	END
};
static const struct relmd_param p_daemon_status[] = {
	{ "reset_loop", RELMD_T_BOOL, 0, 0, 0, NULL, "start counting the loop's turns afresh after this answer" },
	END
};
static const struct relmd_param p_store_check[] = {
	{ "quick", RELMD_T_BOOL, 0, 0, 0, NULL, "SQLite's quick_check instead of integrity_check" },
	END
};
static const struct relmd_param p_proton_only[] = {
	HEXID("proton", RELMD_P_REQUIRED, "proton id"),
	END
};
static const struct relmd_param p_set_strategy[] = {
	HEXID("proton", RELMD_P_REQUIRED, "proton id"),
	{ "strategy", RELMD_T_STRING, RELMD_P_REQUIRED, 1, 16, strategies, "leaderless, leader or fanout" },
	HEXID("leader", 0, "device id of the leader/hub (leader and fanout)"),
	END
};
static const struct relmd_param p_invite_create[] = {
	HEXID("proton", RELMD_P_REQUIRED, "proton id"),
	{ "multi_use", RELMD_T_BOOL, 0, 0, 0, NULL, "the invite may be accepted more than once" },
	{ "ttl_s", RELMD_T_INT, 0, 1, RELMD_INVITE_TTL_MAX, NULL, "lifetime in seconds" },
	END
};
static const struct relmd_param p_invite_accept[] = {
	HEXID("proton", RELMD_P_REQUIRED, "proton id that accepts"),
	{ "invite", RELMD_T_STRING, RELMD_P_REQUIRED, 1, RELMD_INVITE_MAX, NULL, "the relm:... invite text" },
	{ "label", RELMD_T_STRING, 0, 0, RELMD_LABEL_MAX, NULL, "a name for the relationship" },
	END
};
static const struct relmd_param p_rel_only[] = {
	HEXID("relationship", RELMD_P_REQUIRED, "relationship id"),
	END
};
static const struct relmd_param p_message_send[] = {
	HEXID("relationship", RELMD_P_REQUIRED, "relationship id"),
	{ "body", RELMD_T_STRING, RELMD_P_REQUIRED, 1, RELM_BODY_MAX, NULL, "message text (UTF-8)" },
	HEXID("id", 0, "client-chosen message id: makes the send idempotent"),
	END
};
static const struct relmd_param p_message_list[] = {
	HEXID("relationship", RELMD_P_REQUIRED, "relationship id"),
	HEXID("before", 0, "only messages older than this message id"),
	{ "limit", RELMD_T_INT, 0, 1, RELMD_MESSAGE_LIST_MAX, NULL, "at most this many messages" },
	END
};
static const struct relmd_param p_subscribe[] = {
	{ "events", RELMD_T_ARRAY, 0, 0, RELMD_SUBSCRIBE_TYPES_MAX, event_names, "event types to receive (default: all)" },
	{ "since", RELMD_T_INT, 0, 0, RELMD_SEQ_MAX, NULL, "replay events with seq greater than this" },
	END
};
static const struct relmd_param p_pair_join[] = {
	{ "code", RELMD_T_STRING, RELMD_P_REQUIRED, 1, RELMD_PAIR_CODE_MAX, NULL, "pairing code from device.pair.begin" },
	{ "label", RELMD_T_STRING, 0, 0, RELMD_LABEL_MAX, NULL, "a name for this device" },
	END
};
static const struct relmd_param p_revoke[] = {
	HEXID("proton", RELMD_P_REQUIRED, "proton id"),
	HEXID("device", RELMD_P_REQUIRED, "device id to remove"),
	{ "rotate_identity", RELMD_T_BOOL, 0, 0, 0, NULL, "also replace the identity key" },
	END
};

static const struct relmd_param p_identity_accept[] = {
	HEXID("relationship", RELMD_P_REQUIRED, "relationship id"),
	{ "ipk", RELMD_T_HEXID, RELMD_P_REQUIRED, 64, 64, NULL,
	  "the identity key to pin: one of the two identity.conflict reported" },
	END
};

const struct relmd_method relmd_method_table[] = {
	{ "daemon.status", p_daemon_status, "", "show the daemon's version, uptime, store and mailbox", 0 },
	{ "store.check", p_store_check, "", "check the store: SQLite's integrity check, then every row (relmctl check)", 0 },
	{ "proton.create", p_proton_create, "label", "create a proton (a contextual identity)", 0 },
	{ "proton.list", p_none, "", "list protons", 0 },
	{ "proton.set_strategy", p_set_strategy, "proton strategy leader",
	  "choose how a proton's devices share sending", 0 },
	{ "invite.create", p_invite_create, "proton", "make an invite for a proton", 0 },
	{ "invite.accept", p_invite_accept, "proton invite label",
	  "accept an invite: start a relationship", 0 },
	{ "relationship.list", p_proton_only, "proton", "list a proton's relationships", 0 },
	{ "relationship.show", p_rel_only, "relationship",
	  "show a relationship with its chain tree", 0 },
	{ "message.send", p_message_send, "relationship body", "send a message", 0 },
	{ "message.list", p_message_list, "relationship", "list messages, newest first", 0 },
	{ "subscribe", p_subscribe, "", "receive events on this connection (relmctl listen)",
	  RELMD_M_STREAM },
	{ "device.list", p_proton_only, "proton", "list a proton's devices", 0 },
	{ "device.pair.begin", p_proton_only, "proton", "start pairing a new device: prints a code", 0 },
	{ "device.pair.join", p_pair_join, "code label", "join a proton with a pairing code", 0 },
	{ "device.revoke", p_revoke, "proton device", "remove a device from a proton", 0 },
	{ "identity.rotate", p_proton_only, "proton", "replace a proton's identity key", 0 },
	{ "identity.accept", p_identity_accept, "relationship ipk",
	  "after identity.conflict: pin the remote's key you trust", 0 },
};
const unsigned relmd_method_count = sizeof relmd_method_table / sizeof relmd_method_table[0];

_Static_assert(sizeof relmd_method_table / sizeof relmd_method_table[0] <= RELMD_METHODS_MAX,
	       "raise RELMD_METHODS_MAX");

const struct relmd_method *relmd_method_find(const char *name)
{
	for (unsigned i = 0; name && i < relmd_method_count; i++)
		if (strcmp(relmd_method_table[i].name, name) == 0)
			return &relmd_method_table[i];
	return NULL;
}

int relmd_method_param_index(const struct relmd_method *m, const char *name)
{
	for (int i = 0; m->params[i].name; i++)
		if (strcmp(m->params[i].name, name) == 0)
			return i;
	return -1;
}

void relmd_methods_init(struct relmd_methods *ms)
{
	memset(ms, 0, sizeof *ms);
}

int relmd_methods_bind(struct relmd_methods *ms, const char *name, relmd_handler_fn fn,
		       void *ctx)
{
	const struct relmd_method *m = relmd_method_find(name);
	if (!m)
		return RELM_ENOTFOUND;
	ms->fn[m - relmd_method_table] = fn;
	ms->ctx[m - relmd_method_table] = fn ? ctx : NULL;
	return 0;
}

/* ---- validation ---------------------------------------------------------- */

static int bad(struct jsonrpc_error *err, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad(struct jsonrpc_error *err, const char *field, const char *fmt, ...)
{
	char why[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	jsonrpc_error_set(err, JSONRPC_INVALID_PARAMS, "invalid_argument",
			  "invalid params: %.*s: %s", relmd_utf8_cut(field, 64), field, why);
	if (err->data)
		cJSON_AddStringToObject(err->data, "field", field);
	return -1;
}

static int in_choices(const char *const *choices, const char *s)
{
	for (; *choices; choices++)
		if (strcmp(*choices, s) == 0)
			return 1;
	return 0;
}

static int check_value(const struct relmd_param *p, const cJSON *v, struct jsonrpc_error *err)
{
	switch (p->type) {
	case RELMD_T_STRING: {
		if (!cJSON_IsString(v))
			return bad(err, p->name, "must be a string");
		size_t n = strlen(v->valuestring);
		if ((int64_t)n < p->min)
			return bad(err, p->name, p->min == 1 ? "must not be empty" :
				   "must be at least %lld bytes", (long long)p->min);
		if ((int64_t)n > p->max)
			return bad(err, p->name, "longer than %lld bytes", (long long)p->max);
		if (!relmd_utf8_valid(v->valuestring, n))
			return bad(err, p->name, "not valid UTF-8");
		if (p->choices && !in_choices(p->choices, v->valuestring))
			return bad(err, p->name, "unknown value \"%.*s\"",
				   relmd_utf8_cut(v->valuestring, 32), v->valuestring);
		return 0;
	}
	case RELMD_T_HEXID: {
		if (!cJSON_IsString(v))
			return bad(err, p->name, "must be a hex string");
		size_t n = strlen(v->valuestring);
		for (size_t i = 0; i < n; i++) {
			char c = v->valuestring[i];
			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
				return bad(err, p->name, "must be lowercase hex");
		}
		if ((int64_t)n < p->min || (int64_t)n > p->max) {
			if (p->min == p->max)
				return bad(err, p->name, "must be %lld hex characters", (long long)p->min);
			return bad(err, p->name, "must be %lld to %lld hex characters",
				   (long long)p->min, (long long)p->max);
		}
		return 0;
	}
	case RELMD_T_INT: {
		if (!cJSON_IsNumber(v))
			return bad(err, p->name, "must be an integer");
		double d = v->valuedouble;
		if (!isfinite(d) || floor(d) != d)
			return bad(err, p->name, "must be an integer");
		if (d < (double)p->min || d > (double)p->max)
			return bad(err, p->name, "must be between %lld and %lld",
				   (long long)p->min, (long long)p->max);
		return 0;
	}
	case RELMD_T_BOOL:
		return cJSON_IsBool(v) ? 0 : bad(err, p->name, "must be true or false");
	case RELMD_T_OBJECT:
		return cJSON_IsObject(v) ? 0 : bad(err, p->name, "must be an object");
	case RELMD_T_ARRAY: {
		if (!cJSON_IsArray(v))
			return bad(err, p->name, "must be an array");
		if (cJSON_GetArraySize(v) > p->max)
			return bad(err, p->name, "more than %lld items", (long long)p->max);
		const cJSON *it;
		int i = 0;
		cJSON_ArrayForEach(it, v) {
			if (!cJSON_IsString(it))
				return bad(err, p->name, "item %d must be a string", i);
			if (p->choices && !in_choices(p->choices, it->valuestring))
				return bad(err, p->name, "item %d: unknown value \"%.*s\"", i,
					   relmd_utf8_cut(it->valuestring, 32), it->valuestring);
			i++;
		}
		return 0;
	}
	case RELMD_T_NONE:
		break;
	}
	return bad(err, p->name, "cannot be validated");
}

int relmd_params_validate(const struct relmd_method *m, const cJSON *params,
			  cJSON **norm, struct jsonrpc_error *err)
{
	*norm = NULL;
	cJSON *obj = NULL;
	if (!params || cJSON_IsObject(params)) {
		obj = params ? cJSON_Duplicate(params, 1) : cJSON_CreateObject();
	} else if (cJSON_IsArray(params)) {
		/* By position, in table order. */
		obj = cJSON_CreateObject();
		int i = 0;
		const cJSON *it;
		cJSON_ArrayForEach(it, params) {
			if (!m->params[i].name) {
				cJSON_Delete(obj);
				char f[24];
				snprintf(f, sizeof f, "params[%d]", i);
				return bad(err, f, "%s takes at most %d parameters", m->name, i);
			}
			if (obj) {
				cJSON *c = cJSON_Duplicate(it, 1);
				if (!c) {
					cJSON_Delete(obj);
					obj = NULL;
				} else {
					cJSON_AddItemToObject(obj, m->params[i].name, c);
				}
			}
			i++;
		}
	} else {
		return bad(err, "params", "must be an object or an array");
	}
	if (!obj) {
		jsonrpc_error_set(err, JSONRPC_INTERNAL_ERROR, relm_errname(RELM_ENOMEM),
				  "internal error: out of memory");
		return -1;
	}

	/* Unknown and duplicate members. */
	const cJSON *it;
	cJSON_ArrayForEach(it, obj) {
		if (relmd_method_param_index(m, it->string) < 0) {
			char f[72];
			snprintf(f, sizeof f, "%.*s", relmd_utf8_cut(it->string, 64), it->string);
			cJSON_Delete(obj);
			return bad(err, f, "unknown parameter for %s", m->name);
		}
		for (const cJSON *o = it->next; o; o = o->next)
			if (strcmp(o->string, it->string) == 0) {
				char f[72];
				snprintf(f, sizeof f, "%.*s", relmd_utf8_cut(it->string, 64), it->string);
				cJSON_Delete(obj);
				return bad(err, f, "given twice");
			}
	}
	for (int i = 0; m->params[i].name; i++) {
		const struct relmd_param *p = &m->params[i];
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, p->name);
		if (!v) {
			if (p->flags & RELMD_P_REQUIRED) {
				cJSON_Delete(obj);
				return bad(err, p->name, "required");
			}
			continue;
		}
		if (check_value(p, v, err) < 0) {
			cJSON_Delete(obj);
			return -1;
		}
	}
	*norm = obj;
	return 0;
}

/* ---- dispatch ------------------------------------------------------------ */

int relmd_methods_call(void *ctx, const char *method, const cJSON *params,
		       int notification, cJSON **result, struct jsonrpc_error *err)
{
	struct relmd_call_ctx *cc = ctx;
	const struct relmd_method *m = relmd_method_find(method);
	if (!m)
		return jsonrpc_error_set(err, JSONRPC_METHOD_NOT_FOUND, NULL,
					 "method not found: %.*s", relmd_utf8_cut(method, 64), method);
	cJSON *norm = NULL;
	if (relmd_params_validate(m, params, &norm, err) < 0)
		return -1;
	relmd_handler_fn fn = cc->methods->fn[m - relmd_method_table];
	if (!fn) {
		cJSON_Delete(norm);
		return jsonrpc_error_set(err, JSONRPC_ENGINE_ERROR, relm_errname(RELM_ENOTIMPL),
					 "%s", relm_strerror(RELM_ENOTIMPL));
	}
	struct relmd_call call = cc->base;
	call.app = cc->methods->ctx[m - relmd_method_table];
	call.method = m;
	call.notification = notification;
	cJSON *res = NULL;
	int r = fn(&call, norm, &res);
	cJSON_Delete(norm);
	if (r < 0) {
		cJSON_Delete(res);
		log_debug("%s: %s", m->name, relm_errname(r));
		/* `pending` names an engine condition (an envelope waiting for
		 * its node); from device.pair.join it means something else */
		const char *text = r == RELM_EPENDING && !strcmp(m->name, "device.pair.join")
			? "waiting for the paired device's answer: call again with the same code"
			: relm_strerror(r);
		return jsonrpc_error_set(err, JSONRPC_ENGINE_ERROR, relm_errname(r), "%s", text);
	}
	*result = res;
	return 0;
}

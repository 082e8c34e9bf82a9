/*
 * check_jsonrpc.c — unit tests of the API's pure layers: JSON-RPC 2.0
 * classification (jsonrpc.c), the method table and its parameter
 * validation (methods.c), and the event bus ring (events.c).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "api/events.h"
#include "api/jsonrpc.h"
#include "api/methods.h"
#include "api/server.h"
#include "util_rand.h"
#include "util_text.h"

/* ---- a toy handler for the framing tests ---- */

static int calls;

static int toy(void *ctx, const char *method, const cJSON *params, int notification,
	       cJSON **result, struct jsonrpc_error *err)
{
	(void)ctx;
	(void)notification;
	calls++;
	if (!strcmp(method, "echo")) {
		*result = params ? cJSON_Duplicate(params, 1) : NULL;
		return 0;
	}
	if (!strcmp(method, "fail"))
		return jsonrpc_error_set(err, JSONRPC_ENGINE_ERROR, "busy", "busy");
	if (!strcmp(method, "badutf8")) {        /* as a corrupt store row would */
		*result = cJSON_CreateObject();
		cJSON_AddStringToObject(*result, "kind", "t\x9axt");
		return 0;
	}
	if (!strcmp(method, "badmsg"))           /* an error naming a corrupt value */
		return jsonrpc_error_set(err, JSONRPC_ENGINE_ERROR, "busy", "no such kind: %s",
					 "t\x9axt");
	return jsonrpc_error_set(err, JSONRPC_METHOD_NOT_FOUND, NULL, "method not found: %s", method);
}

/* Process a line with `h`, return the parsed response (NULL if none). */
static cJSON *run_h(jsonrpc_handler_fn h, void *ctx, const char *line)
{
	char *out = (char *)1;
	ck_assert_int_eq(jsonrpc_process(line, strlen(line), h, ctx, &out), 0);
	if (!out)
		return NULL;
	ck_assert_ptr_null(strchr(out, '\n'));
	cJSON *j = cJSON_Parse(out);
	ck_assert_msg(j != NULL, "response is not JSON: %s", out);
	cJSON_free(out);
	return j;
}

static cJSON *run(const char *line) { return run_h(toy, NULL, line); }

static int err_code(const cJSON *resp)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(resp, "error");
	ck_assert_ptr_nonnull(e);
	return (int)cJSON_GetObjectItemCaseSensitive(e, "code")->valuedouble;
}

static const char *err_msg(const cJSON *resp)
{
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(resp, "error"),
						"message")->valuestring;
}

static const char *err_data(const cJSON *resp, const char *k)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(resp, "error"), "data");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int id_is_null(const cJSON *resp)
{
	return cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(resp, "id"));
}

START_TEST(parse_error)
{
	const char *bad[] = { "nope", "{", "{\"jsonrpc\":\"2.0\",}", "{} x", "[1,", "\"unterminated",
			      "{\"a\":1}{\"b\":2}" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cJSON *r = run(bad[i]);
		ck_assert_msg(r && err_code(r) == JSONRPC_PARSE_ERROR, "%s", bad[i]);
		ck_assert(id_is_null(r));
		ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(r, "jsonrpc")->valuestring, "2.0");
		cJSON_Delete(r);
	}
	/* trailing white space is fine */
	cJSON *r = run("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}  \r\t");
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r, "result"));
	cJSON_Delete(r);
}
END_TEST

START_TEST(invalid_request)
{
	static const struct { const char *line; int id_null; } cases[] = {
		{ "1", 1 }, { "\"x\"", 1 }, { "null", 1 }, { "true", 1 },
		{ "{\"id\":1,\"method\":\"echo\"}", 0 },                       /* no jsonrpc */
		{ "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"echo\"}", 0 },   /* wrong version */
		{ "{\"jsonrpc\":2.0,\"id\":1,\"method\":\"echo\"}", 0 },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1}", 0 },                       /* no method */
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":1}", 0 },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":\"x\"}", 0 },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":null}", 0 },
		{ "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"echo\"}", 1 },  /* bad id type */
		{ "{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"echo\"}", 1 },
		{ "{\"jsonrpc\":\"2.0\",\"method\":1}", 1 },                   /* no id, still answered */
	};
	calls = 0;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cJSON *r = run(cases[i].line);
		ck_assert_msg(r && err_code(r) == JSONRPC_INVALID_REQUEST, "%s", cases[i].line);
		ck_assert_msg(id_is_null(r) == cases[i].id_null, "%s", cases[i].line);
		cJSON_Delete(r);
	}
	ck_assert_int_eq(calls, 0);     /* no handler ran */
}
END_TEST

START_TEST(method_not_found_and_ids)
{
	cJSON *r = run("{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"nosuch\"}");
	ck_assert_int_eq(err_code(r), JSONRPC_METHOD_NOT_FOUND);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(r, "id")->valuestring, "abc");
	cJSON_Delete(r);
	r = run("{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"echo\",\"params\":[1]}");
	ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(r, "id")->valuedouble, 42);
	ck_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(r, "result")));
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r, "error"));
	cJSON_Delete(r);
	r = run("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"echo\"}");
	ck_assert(id_is_null(r));
	ck_assert(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(r, "result")));   /* NULL → {} */
	cJSON_Delete(r);
	r = run("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"fail\"}");
	ck_assert_int_eq(err_code(r), JSONRPC_ENGINE_ERROR);
	ck_assert_str_eq(err_data(r, "code"), "busy");
	cJSON_Delete(r);
}
END_TEST

START_TEST(notifications)
{
	calls = 0;
	ck_assert_ptr_null(run("{\"jsonrpc\":\"2.0\",\"method\":\"echo\"}"));
	ck_assert_ptr_null(run("{\"jsonrpc\":\"2.0\",\"method\":\"nosuch\"}"));
	ck_assert_ptr_null(run("{\"jsonrpc\":\"2.0\",\"method\":\"fail\",\"params\":{}}"));
	ck_assert_int_eq(calls, 3);
}
END_TEST

START_TEST(batches)
{
	cJSON *r = run("[]");
	ck_assert(cJSON_IsObject(r));
	ck_assert_int_eq(err_code(r), JSONRPC_INVALID_REQUEST);
	cJSON_Delete(r);

	r = run("[1,2,3]");
	ck_assert(cJSON_IsArray(r));
	ck_assert_int_eq(cJSON_GetArraySize(r), 3);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(err_code(cJSON_GetArrayItem(r, i)), JSONRPC_INVALID_REQUEST);
	cJSON_Delete(r);

	/* the spec's mixed example */
	r = run("[{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[1,2,4],\"id\":\"1\"},"
		"{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[7]},"
		"{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"params\":[42,23],\"id\":\"2\"},"
		"{\"foo\":\"boo\"},"
		"{\"jsonrpc\":\"2.0\",\"method\":\"foo.get\",\"params\":{\"name\":\"myself\"},\"id\":\"5\"},"
		"{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":\"9\"}]");
	ck_assert_int_eq(cJSON_GetArraySize(r), 5);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r, 0), "id")->valuestring, "1");
	ck_assert_int_eq(err_code(cJSON_GetArrayItem(r, 2)), JSONRPC_INVALID_REQUEST);
	ck_assert_int_eq(err_code(cJSON_GetArrayItem(r, 3)), JSONRPC_METHOD_NOT_FOUND);
	cJSON_Delete(r);

	/* all notifications: nothing at all */
	ck_assert_ptr_null(run("[{\"jsonrpc\":\"2.0\",\"method\":\"echo\"},"
			       "{\"jsonrpc\":\"2.0\",\"method\":\"nosuch\"}]"));

	/* too many calls in one batch */
	size_t n = JSONRPC_BATCH_MAX + 1;
	char *big = malloc(n * 4 + 8);
	char *p = big;
	*p++ = '[';
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s1", i ? "," : "");
	strcpy(p, "]");
	r = run(big);
	ck_assert(cJSON_IsObject(r));
	ck_assert_int_eq(err_code(r), JSONRPC_INVALID_REQUEST);
	cJSON_Delete(r);
	free(big);
}
END_TEST

/* ---- the method table ---- */

static struct relmd_methods ms;
static struct relmd_call_ctx cc;
static int bound_calls;
static char last_label[256];

static int fake_proton_create(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	ck_assert_str_eq(call->method->name, "proton.create");
	ck_assert_ptr_eq(call->app, &bound_calls);      /* the ctx it was bound with */
	bound_calls++;
	snprintf(last_label, sizeof last_label, "%s",
		 cJSON_GetObjectItemCaseSensitive(params, "label")->valuestring);
	*result = cJSON_CreateObject();
	cJSON_AddStringToObject(*result, "proton", "00112233445566778899aabbccddeeff");
	return 0;
}

static int fake_not_found(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	(void)call; (void)params; (void)result;
	return RELM_ENOTFOUND;
}

static void table_setup(void)
{
	relmd_methods_init(&ms);
	ck_assert_int_eq(relmd_methods_bind(&ms, "proton.create", fake_proton_create, &bound_calls), 0);
	ck_assert_int_eq(relmd_methods_bind(&ms, "relationship.show", fake_not_found, NULL), 0);
	ck_assert_int_eq(relmd_methods_bind(&ms, "no.such", fake_not_found, NULL), RELM_ENOTFOUND);
	cc.methods = &ms;
	bound_calls = 0;
}

static cJSON *callm(const char *method, const char *params)
{
	char line[8192];
	snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\"%s%s}", method,
		 params ? ",\"params\":" : "", params ? params : "");
	return run_h(relmd_methods_call, &cc, line);
}

/* Expect -32602 naming `field`. */
static void expect_bad(const char *method, const char *params, const char *field)
{
	cJSON *r = callm(method, params);
	ck_assert_msg(err_code(r) == JSONRPC_INVALID_PARAMS, "%s %s", method, params);
	char want[128];
	snprintf(want, sizeof want, "invalid params: %s: ", field);
	ck_assert_msg(strncmp(err_msg(r), want, strlen(want)) == 0, "%s: %s", params, err_msg(r));
	ck_assert_str_eq(err_data(r, "field"), field);
	ck_assert_str_eq(err_data(r, "code"), "invalid_argument");
	cJSON_Delete(r);
}

START_TEST(table_complete)
{
	static const char *design[] = {
		"daemon.status", "store.check", "proton.create", "proton.list", "proton.set_strategy",
		"invite.create", "invite.accept", "relationship.list", "relationship.show",
		"message.send", "message.list", "subscribe", "device.list", "device.pair.begin",
		"device.pair.join", "device.revoke", "identity.rotate", "identity.accept",
	};
	ck_assert_uint_eq(relmd_method_count, sizeof design / sizeof design[0]);
	for (size_t i = 0; i < sizeof design / sizeof design[0]; i++) {
		const struct relmd_method *m = relmd_method_find(design[i]);
		ck_assert_msg(m != NULL, "%s missing", design[i]);
		ck_assert(m->help && *m->help);
		/* every positional name is a declared param */
		char buf[128];
		snprintf(buf, sizeof buf, "%s", m->args);
		for (char *t = strtok(buf, " "); t; t = strtok(NULL, " "))
			ck_assert_msg(relmd_method_param_index(m, t) >= 0, "%s: %s", m->name, t);
		for (int k = 0; m->params[k].name; k++)
			ck_assert(m->params[k].type != RELMD_T_NONE && m->params[k].help);
	}
	ck_assert_ptr_null(relmd_method_find("nosuch"));
	ck_assert_ptr_null(relmd_method_find(NULL));
}
END_TEST

START_TEST(dispatch_classes)
{
	cJSON *r = callm("nosuch.method", NULL);
	ck_assert_int_eq(err_code(r), JSONRPC_METHOD_NOT_FOUND);
	cJSON_Delete(r);
	/* unbound → not_implemented, after validation */
	r = callm("proton.list", NULL);
	ck_assert_int_eq(err_code(r), JSONRPC_ENGINE_ERROR);
	ck_assert_str_eq(err_data(r, "code"), "not_implemented");
	ck_assert_str_eq(err_msg(r), relm_strerror(RELM_ENOTIMPL));
	cJSON_Delete(r);
	expect_bad("message.send", "{}", "relationship");
	/* engine error → -32000 with the stable name */
	r = callm("relationship.show", "{\"relationship\":\"00112233445566778899aabbccddeeff\"}");
	ck_assert_int_eq(err_code(r), JSONRPC_ENGINE_ERROR);
	ck_assert_str_eq(err_data(r, "code"), "not_found");
	ck_assert_str_eq(err_msg(r), "not found");
	cJSON_Delete(r);
	/* bound handler sees validated params */
	r = callm("proton.create", "{\"label\":\"work\"}");
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "result"),
							  "proton")->valuestring,
			 "00112233445566778899aabbccddeeff");
	ck_assert_str_eq(last_label, "work");
	cJSON_Delete(r);
	/* by position */
	r = callm("proton.create", "[\"home\"]");
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r, "result"));
	ck_assert_str_eq(last_label, "home");
	cJSON_Delete(r);
	expect_bad("proton.create", "[\"a\",\"b\"]", "params[1]");
	ck_assert_int_eq(bound_calls, 2);
	/* a notification with bad params: no reply, no call */
	ck_assert_ptr_null(run_h(relmd_methods_call, &cc,
				 "{\"jsonrpc\":\"2.0\",\"method\":\"proton.create\",\"params\":{}}"));
	ck_assert_int_eq(bound_calls, 2);
}
END_TEST

START_TEST(param_validation)
{
	static const char *id = "00112233445566778899aabbccddeeff";
	char p[8192];
	expect_bad("proton.create", "{}", "label");
	expect_bad("proton.create", "{\"label\":\"\"}", "label");
	expect_bad("proton.create", "{\"label\":5}", "label");
	expect_bad("proton.create", "{\"lable\":\"x\"}", "lable");               /* typo: unknown */
	expect_bad("proton.create", "{\"label\":\"x\",\"label\":\"y\"}", "label");   /* duplicate */
	expect_bad("proton.create", "{\"Label\":\"x\"}", "Label");                /* case-sensitive */
	cJSON *ls = callm("proton.create", "{\"label\":\"\\udc00\"}");   /* lone surrogate: cJSON refuses */
	ck_assert_int_eq(err_code(ls), JSONRPC_PARSE_ERROR);
	cJSON_Delete(ls);
	/* not UTF-8, overlong: the whole line is refused before parsing */
	ls = callm("proton.create", "{\"label\":\"\xff\xfe\"}");
	ck_assert_int_eq(err_code(ls), JSONRPC_PARSE_ERROR);
	cJSON_Delete(ls);
	ls = callm("proton.create", "{\"label\":\"\xc0\xaf\"}");
	ck_assert_int_eq(err_code(ls), JSONRPC_PARSE_ERROR);
	cJSON_Delete(ls);
	memset(p, 0, sizeof p);
	strcpy(p, "{\"label\":\"");
	memset(p + strlen(p), 'x', RELMD_LABEL_MAX + 1);
	strcat(p, "\"}");
	expect_bad("proton.create", p, "label");
	expect_bad("relationship.show", "{\"relationship\":\"00112233445566778899AABBCCDDEEFF\"}",
		   "relationship");                                              /* uppercase */
	expect_bad("relationship.show", "{\"relationship\":\"0011\"}", "relationship");
	expect_bad("relationship.show", "{\"relationship\":\"0011223344556677889\xc3\xa9""aabbccddeeff\"}",
		   "relationship");
	snprintf(p, sizeof p, "{\"proton\":\"%s\",\"ttl_s\":1.5}", id);
	expect_bad("invite.create", p, "ttl_s");
	snprintf(p, sizeof p, "{\"proton\":\"%s\",\"ttl_s\":0}", id);
	expect_bad("invite.create", p, "ttl_s");
	snprintf(p, sizeof p, "{\"proton\":\"%s\",\"ttl_s\":1e300}", id);           /* valueint would saturate */
	expect_bad("invite.create", p, "ttl_s");
	snprintf(p, sizeof p, "{\"proton\":\"%s\",\"ttl_s\":\"60\"}", id);
	expect_bad("invite.create", p, "ttl_s");
	snprintf(p, sizeof p, "{\"proton\":\"%s\",\"multi_use\":1}", id);
	expect_bad("invite.create", p, "multi_use");
	snprintf(p, sizeof p, "{\"proton\":\"%s\",\"strategy\":\"chaos\"}", id);
	expect_bad("proton.set_strategy", p, "strategy");
	expect_bad("subscribe", "{\"events\":[\"message.sent\",\"nope\"]}", "events");
	expect_bad("subscribe", "{\"events\":\"message.sent\"}", "events");
	expect_bad("subscribe", "{\"since\":-1}", "since");
	expect_bad("subscribe", "{\"since\":1e16}", "since");
	snprintf(p, sizeof p, "{\"relationship\":\"%s\",\"limit\":1001}", id);
	expect_bad("message.list", p, "limit");
	snprintf(p, sizeof p, "{\"relationship\":\"%s\",\"body\":\"hi\",\"id\":\"xyz\"}", id);
	expect_bad("message.send", p, "id");
	expect_bad("daemon.status", "{\"verbose\":true}", "verbose");

	/* valid shapes pass validation (then hit not_implemented) */
	static const char *ok[][2] = {
		{ "invite.create", "{\"proton\":\"00112233445566778899aabbccddeeff\",\"multi_use\":true,\"ttl_s\":3600}" },
		{ "proton.set_strategy", "{\"proton\":\"00112233445566778899aabbccddeeff\",\"strategy\":\"leader\",\"leader\":\"ffeeddccbbaa99887766554433221100\"}" },
		{ "message.send", "{\"relationship\":\"00112233445566778899aabbccddeeff\",\"body\":\"h\xc3\xa9llo \xf0\x9f\x98\x80\"}" },
		{ "message.list", "{\"relationship\":\"00112233445566778899aabbccddeeff\",\"limit\":1000}" },
		{ "device.revoke", "[\"00112233445566778899aabbccddeeff\",\"ffeeddccbbaa99887766554433221100\",true]" },
		{ "device.pair.join", "{\"code\":\"abc\"}" },
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		cJSON *r = callm(ok[i][0], ok[i][1]);
		ck_assert_msg(err_code(r) == JSONRPC_ENGINE_ERROR, "%s %s: %s", ok[i][0], ok[i][1],
			      err_msg(r));
		cJSON_Delete(r);
	}
	/* subscribe validates, then (the daemon shell serves it; unbound
	 * here) not_implemented */
	cJSON *r = callm("subscribe", "{\"events\":[\"message.sent\"],\"since\":9007199254740992}");
	ck_assert_int_eq(err_code(r), JSONRPC_ENGINE_ERROR);
	ck_assert_str_eq(err_data(r, "code"), "not_implemented");
	cJSON_Delete(r);
}
END_TEST

/* ---- the event bus ---- */

START_TEST(event_ring)
{
	struct relmd_events ev;
	ck_assert_int_eq(relmd_events_init(&ev, 4, NULL), 0);
	ck_assert_uint_eq(relmd_events_oldest(&ev), 1);
	for (int i = 1; i <= 10; i++) {
		cJSON *f = cJSON_CreateObject();
		cJSON_AddNumberToObject(f, "n", i);
		const struct relmd_event *e;
		ck_assert_int_eq(relmd_events_emit(&ev, i % 2 ? "message.sent" : "fork.detected", f, 1000, &e), 0);
		ck_assert_uint_eq(e->seq, (uint64_t)i);
		cJSON *j = cJSON_Parse(e->line);
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "params");
		ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(j, "method")->valuestring, "event");
		ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(p, "seq")->valuedouble, i);
		ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(p, "n")->valuedouble, i);
		ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(p, "ts")->valuedouble, 1000);
		cJSON_Delete(j);
	}
	ck_assert_uint_eq(relmd_events_oldest(&ev), 7);
	const char *line;
	size_t len;
	int type, owned;
	ck_assert_int_eq(relmd_events_get(&ev, 6, &line, &len, &type, &owned), RELM_ENOTFOUND);
	ck_assert_int_eq(relmd_events_get(&ev, 7, &line, &len, &type, &owned), 0);
	ck_assert_int_eq(type, RELM_EV_MESSAGE_SENT);
	ck_assert(!owned && strstr(line, "\"seq\":7"));
	ck_assert_int_eq(relmd_event_type_index("clone.suspected"), RELM_EV_CLONE_SUSPECTED);
	ck_assert_int_eq(relmd_event_type_index("x"), -1);
	relmd_events_clear(&ev);
}
END_TEST

/* A persistence hook continues numbering and serves old events. */
static uint64_t saved_last;
static int st_save(void *ctx, uint64_t seq, int type, const char *line, size_t len)
{
	(void)ctx; (void)type; (void)line; (void)len;
	saved_last = seq;
	return 0;
}
static int st_load(void *ctx, uint64_t seq, char **line, size_t *len, int *type)
{
	(void)ctx;
	if (seq < 50)
		return RELM_ENOTFOUND;
	char buf[64];
	snprintf(buf, sizeof buf, "{\"old\":%llu}", (unsigned long long)seq);
	*line = strdup(buf);
	*len = strlen(buf);
	*type = RELM_EV_MESSAGE_RECEIVED;
	return 0;
}
static uint64_t st_last(void *ctx) { (void)ctx; return 100; }

START_TEST(event_store_hook)
{
	struct relmd_event_store st = { NULL, st_save, st_load, st_last };
	struct relmd_events ev;
	ck_assert_int_eq(relmd_events_init(&ev, 2, &st), 0);
	ck_assert_uint_eq(ev.last_seq, 100);
	ck_assert_int_eq(relmd_events_emit(&ev, "device.added", NULL, 0, NULL), 0);
	ck_assert_uint_eq(ev.last_seq, 101);
	ck_assert_uint_eq(saved_last, 101);
	const char *line;
	size_t len;
	int type, owned;
	ck_assert_int_eq(relmd_events_get(&ev, 101, &line, &len, &type, &owned), 0);
	ck_assert_int_eq(owned, 0);
	ck_assert_int_eq(relmd_events_get(&ev, 60, &line, &len, &type, &owned), 0);
	ck_assert_int_eq(owned, 1);
	ck_assert_str_eq(line, "{\"old\":60}");
	free((char *)(uintptr_t)line);
	ck_assert_int_eq(relmd_events_get(&ev, 10, &line, &len, &type, &owned), RELM_ENOTFOUND);
	relmd_events_clear(&ev);
}
END_TEST

/* The direct writer prints what cJSON prints: every byte value in strings,
 * integers up to 10^15 - 1; it refuses (NULL) what cJSON would print its
 * own way. */
START_TEST(event_writer_matches_cjson)
{
	static const uint64_t nums[] = { 0, 1, 9, 10, 2147483647ull, 2147483648ull,
					 1764172800000ull, 999999999999999ull };
	uint64_t rs = 0x5eed;
	for (int round = 0; round < 300; round++) {
		char s1[64], s2[300];
		size_t n1 = (size_t)(round % 40), n2 = (size_t)(round * 7 % 290);
		for (size_t i = 0; i < n1; i++) {
			rs = rs * 6364136223846793005ull + 1442695040888963407ull;
			s1[i] = (char)(1 + (rs >> 33) % 255);        /* every byte but NUL */
		}
		s1[n1] = 0;
		for (size_t i = 0; i < n2; i++)
			s2[i] = (char)(1 + (i + (size_t)round) % 255);
		s2[n2] = 0;
		uint64_t seq = nums[round % 8], ts = nums[(round / 8) % 8], v = nums[(round / 3) % 8];
		int t = 1 + round % (RELM_EV_COUNT - 1);

		cJSON *f = cJSON_CreateObject();
		cJSON_AddStringToObject(f, "relationship", s1);
		cJSON_AddStringToObject(f, "body", s2);
		cJSON_AddNumberToObject(f, "sent_ts", (double)v);
		cJSON_AddStringToObject(f, "origin", "remote");
		char *want = relmd_event_line(seq, t, ts, f);
		cJSON_Delete(f);

		struct relmd_evline w;
		size_t len = 0;
		relmd_evline_begin(&w, seq, t, ts);
		relmd_evline_str(&w, "relationship", s1);
		relmd_evline_str(&w, "body", s2);
		relmd_evline_uint(&w, "sent_ts", v);
		relmd_evline_str(&w, "origin", "remote");
		char *got = relmd_evline_end(&w, &len);
		ck_assert_ptr_nonnull(want);
		ck_assert_ptr_nonnull(got);
		ck_assert_msg(!strcmp(want, got), "round %d:\n%s\n%s", round, want, got);
		ck_assert_uint_eq(len, strlen(want));
		free(want);
		free(got);
	}
	/* 10^15 and above: cJSON's float format, not ours */
	struct relmd_evline w;
	size_t len;
	relmd_evline_begin(&w, 1, RELM_EV_MESSAGE_RECEIVED, 1000000000000000ull);
	ck_assert_ptr_null(relmd_evline_end(&w, &len));
	relmd_evline_begin(&w, 1, RELM_EV_MESSAGE_RECEIVED, 5);
	relmd_evline_uint(&w, "sent_ts", UINT64_MAX);
	ck_assert_ptr_null(relmd_evline_end(&w, &len));
}
END_TEST

/* Events kept without their line are built once, through load, when a
 * replay asks; a filter can skip them by type without building them. */
static int lazy_loads;
static int lz_load(void *ctx, uint64_t seq, char **line, size_t *len, int *type)
{
	(void)ctx;
	lazy_loads++;
	char buf[64];
	snprintf(buf, sizeof buf, "{\"built\":%llu}", (unsigned long long)seq);
	*line = strdup(buf);
	*len = strlen(buf);
	*type = seq % 2 ? RELM_EV_MESSAGE_SENT : RELM_EV_MESSAGE_STATUS;
	return 0;
}
static uint64_t lz_last(void *ctx) { (void)ctx; return 10; }

START_TEST(event_lazy_lines)
{
	struct relmd_event_store st = { NULL, NULL, lz_load, lz_last };
	struct relmd_events ev;
	const char *line;
	size_t len;
	int type, owned;

	ck_assert_int_eq(relmd_events_init(&ev, 4, &st), 0);
	ck_assert(relmd_events_lazy(&ev));
	for (uint64_t seq = 11; seq <= 14; seq++)
		ck_assert_int_eq(relmd_events_put(&ev, seq, seq % 2 ? RELM_EV_MESSAGE_SENT
							  : RELM_EV_MESSAGE_STATUS, 7, NULL, 0), 0);
	ck_assert_int_eq(relmd_events_put(&ev, 14, RELM_EV_MESSAGE_SENT, 7, NULL, 0), RELM_EINVAL);
	ck_assert_int_eq(relmd_events_type(&ev, 12), RELM_EV_MESSAGE_STATUS);
	ck_assert_int_eq(relmd_events_type(&ev, 10), -1);   /* before the ring: unknown */
	ck_assert_int_eq(lazy_loads, 0);
	for (int k = 0; k < 2; k++) {
		ck_assert_int_eq(relmd_events_get(&ev, 13, &line, &len, &type, &owned), 0);
		ck_assert_str_eq(line, "{\"built\":13}");
		ck_assert_int_eq(owned, 0);                 /* cached in the ring */
		ck_assert_int_eq(type, RELM_EV_MESSAGE_SENT);
	}
	ck_assert_int_eq(lazy_loads, 1);
	/* a built line put directly is served as is */
	ck_assert_int_eq(relmd_events_put(&ev, 15, RELM_EV_MESSAGE_SENT, 7, strdup("{\"x\":1}"), 7), 0);
	ck_assert_int_eq(relmd_events_get(&ev, 15, &line, &len, &type, &owned), 0);
	ck_assert_str_eq(line, "{\"x\":1}");
	ck_assert_int_eq(lazy_loads, 1);
	relmd_events_clear(&ev);

	/* without a load hook, or with a save hook wanting the line: never lazy */
	struct relmd_event_store st2 = { NULL, st_save, lz_load, NULL };
	ck_assert_int_eq(relmd_events_init(&ev, 4, NULL), 0);
	ck_assert(!relmd_events_lazy(&ev));
	ck_assert_int_eq(relmd_events_put(&ev, 1, RELM_EV_MESSAGE_RECEIVED, 7, NULL, 0), RELM_EINVAL);
	relmd_events_clear(&ev);
	ck_assert_int_eq(relmd_events_init(&ev, 4, &st2), 0);
	ck_assert(!relmd_events_lazy(&ev));
	ck_assert_int_eq(relmd_events_put(&ev, 1, RELM_EV_MESSAGE_RECEIVED, 7, NULL, 0), RELM_EINVAL);
	relmd_events_clear(&ev);
}
END_TEST

START_TEST(addr_parse)
{
	char host[300];
	int port;
	ck_assert_int_eq(relmd_addr_parse("127.0.0.1:7427", host, sizeof host, &port), 0);
	ck_assert_str_eq(host, "127.0.0.1");
	ck_assert_int_eq(port, 7427);
	ck_assert_int_eq(relmd_addr_parse("[::1]:80", host, sizeof host, &port), 0);
	ck_assert_str_eq(host, "::1");
	ck_assert_int_eq(relmd_addr_parse("mail.example.org:65535", NULL, 0, NULL), 0);
	const char *bad[] = { "", "host", ":80", "host:", "host:0", "host:65536", "host:8x",
			      "::1:80", "[::1]80", "ho st:80", "host:123456" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(relmd_addr_parse(bad[i], NULL, 0, NULL) < 0, "%s", bad[i]);
}
END_TEST

/* ---- text: every reply is valid UTF-8 JSON ---- */

/* Lines that are not valid UTF-8, or hold a raw control character (in a
 * string or between tokens): -32700, id null, no handler runs — even where
 * the bad bytes sit in the id, the method, a parameter name or a value
 * that an error message would echo. */
START_TEST(bad_lines)
{
	static const struct { const char *line; size_t len; } bad[] = {
#define L(s) { s, sizeof s - 1 }
		L("{\"jsonrpc\":\"2.0\",\"id\":\"\xff\xfe\",\"method\":\"echo\"}"),           /* not UTF-8 at all */
		L("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ec\xc0\xafho\"}"),              /* overlong '/' */
		L("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":{\"\xed\xa0\x80\":1}}"),  /* surrogate D800 */
		L("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"\xf4\x90\x80\x80\"]}"), /* U+110000 */
		L("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"\xf5\x80\x80\x80\"]}"),
		L("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"\xe0\x80\xaf\"]}"),     /* overlong, 3 bytes */
		L("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"\xf0\x80\x80\xaf\"]}"), /* overlong, 4 bytes */
		L("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"\xc1\xbf\"]}"),
		L("{\"jsonrpc\":\"2.0\",\"id\":\"a\xe2\x82\",\"method\":\"echo\"}"),          /* cut sequence */
		L("{\"jsonrpc\":\"2.0\",\"id\":\"\x80\",\"method\":\"echo\"}"),                /* lone continuation */
		L("{\"jsonrpc\":\"2.0\",\"id\":\"a\x01\",\"method\":\"echo\"}"),               /* raw control chars */
		L("{\"jsonrpc\":\"2.0\",\"id\":\"a\x1f\",\"method\":\"echo\"}"),
		L("{\"jsonrpc\":\"2.0\",\"id\":\"a\tb\",\"method\":\"echo\"}"),
		L("{\"jsonrpc\":\"2.0\",\"id\":\"a\rb\",\"method\":\"echo\"}"),
		L("{\"jsonrpc\":\"2.0\",\"id\":\"a\0b\",\"method\":\"echo\"}"),                /* raw NUL */
		L("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[\"x\0\"]}"),
		L("{\x01\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}"),                   /* between tokens */
		L("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"}\x0b"),
		L("\xef\xbb"),                                                                 /* half a BOM */
#undef L
	};
	calls = 0;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *out = NULL;
		ck_assert_int_eq(jsonrpc_process(bad[i].line, bad[i].len, toy, NULL, &out), 0);
		ck_assert_msg(out != NULL, "case %zu: no reply", i);
		ck_assert_msg(tu_json_line_ok(out, strlen(out)), "case %zu: reply not UTF-8 JSON", i);
		cJSON *r = cJSON_Parse(out);
		ck_assert_msg(err_code(r) == JSONRPC_PARSE_ERROR, "case %zu: %s", i, out);
		ck_assert(id_is_null(r));
		cJSON_Delete(r);
		cJSON_free(out);
	}
	ck_assert_int_eq(calls, 0);
	/* good UTF-8 everywhere is served, and echoed exactly */
	cJSON *r = run("{\"jsonrpc\":\"2.0\",\"id\":\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\","
		       "\"method\":\"echo\",\"params\":[\"\xef\xbf\xbf\\u0001\\t\"]}");
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(r, "id")->valuestring,
			 "h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf");
	ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "result"), 0)->valuestring,
			 "\xef\xbf\xbf\x01\t");
	cJSON_Delete(r);
}
END_TEST

/* What a handler returns is checked before it is written: a result (or an
 * error message) holding invalid UTF-8 — a corrupt store row — becomes
 * -32603 "bad_state" for that call, with its id; the rest of a batch is
 * unaffected. */
START_TEST(reply_writer_refuses)
{
	char *out = NULL;
	const char *line = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"badutf8\"},"
			   "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\",\"params\":[\"ok\"]},"
			   "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"badmsg\"}]";
	ck_assert_int_eq(jsonrpc_process(line, strlen(line), toy, NULL, &out), 0);
	ck_assert_msg(tu_json_line_ok(out, strlen(out)), "reply not UTF-8 JSON: %s", out);
	cJSON *r = cJSON_Parse(out);
	ck_assert_int_eq(cJSON_GetArraySize(r), 3);
	const cJSON *a = cJSON_GetArrayItem(r, 0), *b = cJSON_GetArrayItem(r, 1),
		    *c = cJSON_GetArrayItem(r, 2);
	ck_assert_int_eq(err_code(a), JSONRPC_INTERNAL_ERROR);
	ck_assert_str_eq(err_data(a, "code"), "bad_state");
	ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(a, "id")->valuedouble, 1);
	ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(b, "result"), 0)->valuestring,
			 "ok");
	ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(c, "id")->valuedouble, 3);
	ck_assert_int_ne(err_code(c), 0);
	cJSON_Delete(r);
	cJSON_free(out);
}
END_TEST

/* Error messages name a field or echo a value cut to a length: the cut
 * must fall between characters, never inside one. */
START_TEST(messages_cut_whole_characters)
{
	char p[512], name[80];
	/* 63 ASCII bytes, then a 2-byte é across the 64-byte cut */
	memset(name, 'x', 63);
	strcpy(name + 63, "\xc3\xa9yz");
	snprintf(p, sizeof p, "{\"%s\":\"w\"}", name);
	cJSON *r = callm("proton.create", p);
	ck_assert_int_eq(err_code(r), JSONRPC_INVALID_PARAMS);
	ck_assert_msg(tu_utf8_valid(err_msg(r), strlen(err_msg(r))), "message cut inside a character");
	cJSON_Delete(r);
	/* an enum value echoed with %.32s: 31 ASCII bytes, then a 3-byte € */
	memset(name, 'y', 31);
	strcpy(name + 31, "\xe2\x82\xac");
	snprintf(p, sizeof p, "{\"proton\":\"00112233445566778899aabbccddeeff\",\"strategy\":\"%s\"}", name);
	r = callm("proton.set_strategy", p);
	ck_assert_int_eq(err_code(r), JSONRPC_INVALID_PARAMS);
	ck_assert_msg(tu_utf8_valid(err_msg(r), strlen(err_msg(r))), "message cut inside a character");
	cJSON_Delete(r);
	/* a method name echoed with %.64s */
	memset(name, 'm', 63);
	strcpy(name + 63, "\xf0\x9f\x98\x80");
	r = callm(name, NULL);
	ck_assert_int_eq(err_code(r), JSONRPC_METHOD_NOT_FOUND);
	ck_assert_msg(tu_utf8_valid(err_msg(r), strlen(err_msg(r))), "message cut inside a character");
	cJSON_Delete(r);
}
END_TEST

/* U+0000 (a "\u0000" escape; raw NULs are -32700) is refused wherever it
 * is — cJSON would cut the string there — and the handler never runs: in
 * a parameter (value, name, nested item; by name or by position) -32602
 * naming the parameter; in the id (then id null), the method, "jsonrpc" or
 * a member name -32600. */
START_TEST(nul_refused)
{
	static const struct { const char *params; const char *field; } in_params[] = {
		{ "{\"label\":\"be\\u0000fore\"}", "label" },
		{ "{\"label\":\"\\u0000\"}", "label" },
		{ "{\"label\":\"x\\u0000\"}", "label" },
		{ "{\"lab\\u0000el\":\"x\"}", "lab" },                   /* the cut name */
		{ "[\"a\\u0000b\"]", "params[0]" },
		{ "{\"label\":\"ok\",\"x\":{\"y\":[1,\"\\u0000\"]}}", "x" },   /* deep inside */
	};
	for (size_t i = 0; i < sizeof in_params / sizeof in_params[0]; i++) {
		cJSON *r = callm("proton.create", in_params[i].params);
		ck_assert_msg(err_code(r) == JSONRPC_INVALID_PARAMS, "%s", in_params[i].params);
		ck_assert_str_eq(err_data(r, "field"), in_params[i].field);
		ck_assert_str_eq(err_data(r, "code"), "invalid_argument");
		ck_assert_ptr_nonnull(strstr(err_msg(r), "U+0000"));
		cJSON_Delete(r);
	}
	cJSON *r = callm("subscribe", "{\"events\":[\"message.sent\\u0000x\"]}");
	ck_assert_int_eq(err_code(r), JSONRPC_INVALID_PARAMS);
	ck_assert_str_eq(err_data(r, "field"), "events");
	cJSON_Delete(r);
	static const struct { const char *line; int id_null; } elsewhere[] = {
		{ "{\"jsonrpc\":\"2.0\",\"id\":\"a\\u0000b\",\"method\":\"proton.create\",\"params\":[\"w\"]}", 1 },
		{ "{\"jsonrpc\":\"1.0\",\"id\":\"a\\u0000b\",\"method\":\"proton.create\"}", 1 },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"proton.create\\u0000x\",\"params\":[\"w\"]}", 0 },
		{ "{\"jsonrpc\":\"2.0\\u0000\",\"id\":1,\"method\":\"proton.create\",\"params\":[\"w\"]}", 0 },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"proton.create\",\"params\":[\"w\"],\"x\\u0000\":1}", 0 },
		{ "{\"jsonrpc\":\"2.0\",\"id\\u0000\":\"fake\",\"id\":1,\"method\":\"proton.create\",\"params\":[\"w\"]}", 1 },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"params\\u0000\":[\"w\"],\"method\":\"proton.create\"}", 0 },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"proton.create\",\"params\":[\"w\"],\"note\":\"\\u0000\"}", 0 },
	};
	for (size_t i = 0; i < sizeof elsewhere / sizeof elsewhere[0]; i++) {
		r = run_h(relmd_methods_call, &cc, elsewhere[i].line);
		ck_assert_msg(err_code(r) == JSONRPC_INVALID_REQUEST, "%s", elsewhere[i].line);
		ck_assert_msg(id_is_null(r) == elsewhere[i].id_null, "%s", elsewhere[i].line);
		if (!elsewhere[i].id_null)
			ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(r, "id")->valuedouble, 1);
		cJSON_Delete(r);
	}
	ck_assert_int_eq(bound_calls, 0);
	/* a notification: no reply and no call */
	ck_assert_ptr_null(run_h(relmd_methods_call, &cc, "{\"jsonrpc\":\"2.0\",\"method\":\"proton.create\","
				 "\"params\":[\"a\\u0000\"]}"));
	ck_assert_int_eq(bound_calls, 0);
	/* a batch: the refusal is that call's alone, counted across the calls
	 * before it */
	r = run_h(relmd_methods_call, &cc,
		  "[{\"jsonrpc\":\"2.0\",\"id\":\"p\\u00e9\",\"method\":\"proton.create\",\"params\":{\"label\":\"one\"}},"
		  "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"proton.create\",\"params\":{\"label\":\"t\\u0000wo\"}},"
		  "\"\\u0000\","
		  "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"proton.create\",\"params\":{\"label\":\"three\"}}]");
	ck_assert_int_eq(cJSON_GetArraySize(r), 4);
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r, 0), "result"));
	ck_assert_int_eq(err_code(cJSON_GetArrayItem(r, 1)), JSONRPC_INVALID_PARAMS);
	ck_assert_int_eq(err_code(cJSON_GetArrayItem(r, 2)), JSONRPC_INVALID_REQUEST);
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r, 3), "result"));
	ck_assert_str_eq(last_label, "three");
	ck_assert_int_eq(bound_calls, 2);
	cJSON_Delete(r);
	/* not U+0000: an escaped backslash before "u0000", and U+0001 */
	r = callm("proton.create", "{\"label\":\"a\\\\u0000b\"}");
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r, "result"));
	ck_assert_str_eq(last_label, "a\\u0000b");
	cJSON_Delete(r);
	r = callm("proton.create", "{\"label\":\"a\\u0001\\u00000\"}");
	ck_assert_int_eq(err_code(r), JSONRPC_INVALID_PARAMS);           /* the U+0000 before '0' */
	cJSON_Delete(r);
	r = callm("proton.create", "{\"label\":\"a\\u0001b\"}");
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r, "result"));
	ck_assert_str_eq(last_label, "a\x01" "b");
	cJSON_Delete(r);
}
END_TEST

/* Randomised (RELM_SEED): requests whose params hold strings with every
 * kind of escape around (\", \\, \\u0000 spelled with an escaped
 * backslash, \u00e9), nested at random, with at most one real U+0000 —
 * in a value, an item or a nested member's name of one parameter.  The
 * refusal names exactly that parameter; without one the call runs. */
START_TEST(nul_field_random)
{
	static const char *const pool[] = {
		"plain", "a\\\"b", "\\\\u0000", "\\u00e9t\\u00e9", "x\\\\", "\\\\", "\\\"", "",
		"\\u0001", "\\ud83d\\ude00",
	};
	enum { POOL = sizeof pool / sizeof pool[0] };
	static const struct { const char *raw, *decoded; } suffix[] = {
		{ "", "" }, { "\\u00e9", "\xc3\xa9" }, { "\\\"q", "\"q" }, { "\\\\u0000", "\\u0000" },
	};
	char line[8192], want[64];
	for (int iter = 0; iter < 3000; iter++) {
		int np = 1 + (int)tu_rand_below(6);
		int target = tu_rand_below(10) < 7 ? (int)tu_rand_below((uint64_t)np) : -1;
		size_t n = (size_t)snprintf(line, sizeof line,
					    "{\"jsonrpc\":\"2.0\",\"id\":\"i\\\\u0000-%d\",\"method\":\"echo\","
					    "\"params\":{", iter);
		for (int k = 0; k < np; k++) {
			int sx = (int)tu_rand_below(4);
			n += (size_t)snprintf(line + n, sizeof line - n, "%s\"p%d%s\":", k ? "," : "", k,
					      suffix[sx].raw);
			if (k == target)
				snprintf(want, sizeof want, "p%d%s", k, suffix[sx].decoded);
			/* the value: a string, an array of strings, or an object */
			int shape = (int)tu_rand_below(3);
			int items = shape == 0 ? 1 : 1 + (int)tu_rand_below(4);
			int nul_at = k == target ? (int)tu_rand_below((uint64_t)items) : -1;
			int nul_in_name = shape == 2 && tu_rand_below(2);
			n += (size_t)snprintf(line + n, sizeof line - n, "%s", shape == 1 ? "[" : shape == 2 ? "{" : "");
			for (int j = 0; j < items; j++) {
				const char *v = pool[tu_rand_below(POOL)];
				int nul = j == nul_at;
				if (shape == 2)
					n += (size_t)snprintf(line + n, sizeof line - n, "%s\"k%d%s%s\":", j ? "," : "",
							      j, pool[tu_rand_below(POOL)],
							      nul && nul_in_name ? "\\u0000" : "");
				else if (j)
					line[n++] = ',';
				n += (size_t)snprintf(line + n, sizeof line - n, "\"%s%s\"", v,
						      nul && !nul_in_name ? "z\\u0000z" : "");
			}
			n += (size_t)snprintf(line + n, sizeof line - n, "%s", shape == 1 ? "]" : shape == 2 ? "}" : "");
		}
		n += (size_t)snprintf(line + n, sizeof line - n, "}}");
		ck_assert_uint_lt(n, sizeof line);
		calls = 0;
		cJSON *r = run(line);
		if (target < 0) {
			ck_assert_msg(cJSON_GetObjectItemCaseSensitive(r, "result") != NULL,
				      "%s (" TU_SEED_FMT ")", line, TU_SEED_ARG);
			ck_assert_int_eq(calls, 1);
		} else {
			ck_assert_msg(cJSON_GetObjectItemCaseSensitive(r, "error") &&
				      err_code(r) == JSONRPC_INVALID_PARAMS, "%s (" TU_SEED_FMT ")", line,
				      TU_SEED_ARG);
			ck_assert_msg(!strcmp(err_data(r, "field"), want), "%s: field %s, want %s ("
				      TU_SEED_FMT ")", line, err_data(r, "field"), want, TU_SEED_ARG);
			ck_assert_int_eq(calls, 0);
		}
		char id[32];
		snprintf(id, sizeof id, "i\\u0000-%d", iter);
		ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(r, "id")->valuestring, id);
		cJSON_Delete(r);
	}
}
END_TEST

static const char *const fuzz_templates[] = {
	"{\"jsonrpc\":\"2.0\",\"id\":\"r\xc3\xa9q-1\",\"method\":\"daemon.status\"}",
	"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"proton.create\",\"params\":{\"label\":\"w\xc3\xb6rk\"}}",
	"{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"proton.set_strategy\",\"params\":{\"proton\":\"00112233445566778899aabbccddeeff\",\"strategy\":\"leaderless\"}}",
	"{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"message.send\",\"params\":{\"relationship\":\"00112233445566778899aabbccddeeff\",\"body\":\"h\xc3\xa9llo \xf0\x9f\x98\x80\"}}",
	"{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"subscribe\",\"params\":{\"events\":[\"message.sent\",\"message.received\"],\"since\":3}}",
	"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"invite.accept\",\"params\":[\"00112233445566778899aabbccddeeff\",\"relm:abc\",\"\xe2\x82\xac\"]}",
	"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"relationship.show\",\"params\":{\"relationship\":\"00\"}},{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"no.such\"}]",
};

/* Randomised (RELM_SEED): damaged requests through the real dispatcher and
 * method table; every reply line is valid UTF-8 JSON. */
START_TEST(fuzz_replies_are_utf8_json)
{
	char buf[1024];
	int replies = 0;
	for (int i = 0; i < 20000; i++) {
		const char *t = fuzz_templates[tu_rand_below(sizeof fuzz_templates / sizeof fuzz_templates[0])];
		size_t len = strlen(t);
		memcpy(buf, t, len);
		len = tu_json_mutate(buf, len, sizeof buf);
		char *out = NULL;
		ck_assert_int_eq(jsonrpc_process(buf, len, relmd_methods_call, &cc, &out), 0);
		if (!out)
			continue;        /* a notification */
		replies++;
		ck_assert_msg(tu_json_line_ok(out, strlen(out)), "iteration %d (" TU_SEED_FMT "): "
			      "request %.*s got a reply that is not UTF-8 JSON: %s", i, TU_SEED_ARG,
			      (int)len, buf, out);
		cJSON_free(out);
	}
	ck_assert_int_gt(replies, 10000);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("jsonrpc");
	TCase *tc = tcase_create("framing");
	tcase_add_test(tc, parse_error);
	tcase_add_test(tc, invalid_request);
	tcase_add_test(tc, method_not_found_and_ids);
	tcase_add_test(tc, notifications);
	tcase_add_test(tc, batches);
	suite_add_tcase(s, tc);
	tc = tcase_create("methods");
	tcase_add_checked_fixture(tc, table_setup, NULL);
	tcase_add_test(tc, table_complete);
	tcase_add_test(tc, dispatch_classes);
	tcase_add_test(tc, param_validation);
	suite_add_tcase(s, tc);
	tc = tcase_create("events");
	tcase_add_test(tc, event_ring);
	tcase_add_test(tc, event_store_hook);
	tcase_add_test(tc, event_writer_matches_cjson);
	tcase_add_test(tc, event_lazy_lines);
	suite_add_tcase(s, tc);
	tc = tcase_create("text");
	tcase_add_checked_fixture(tc, table_setup, NULL);
	tcase_add_test(tc, bad_lines);
	tcase_add_test(tc, reply_writer_refuses);
	tcase_add_test(tc, messages_cut_whole_characters);
	tcase_add_test(tc, nul_refused);
	tcase_add_test(tc, nul_field_random);
	tcase_add_test(tc, fuzz_replies_are_utf8_json);
	suite_add_tcase(s, tc);
	tc = tcase_create("config");
	tcase_add_test(tc, addr_parse);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	tu_seed_from_env();
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

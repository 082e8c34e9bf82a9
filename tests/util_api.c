/*
 * util_api.c — the world of check_api and check_api_events (util_api.h).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "util_daemon.h"
#include "util_api.h"

struct ta_world ta_w;

void ta_setup(void) { memset(&ta_w, 0, sizeof ta_w); }
void ta_teardown(void) { td_kill_all(); }

int ta_is_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

const cJSON *ta_get(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	ck_assert_msg(v != NULL, "no member \"%s\"", name);
	return v;
}

double ta_num(const cJSON *o, const char *name)
{
	const cJSON *v = ta_get(o, name);
	ck_assert_msg(cJSON_IsNumber(v), "\"%s\" is not a number", name);
	return v->valuedouble;
}

const char *ta_str(const cJSON *o, const char *name)
{
	const cJSON *v = ta_get(o, name);
	ck_assert_msg(cJSON_IsString(v), "\"%s\" is not a string", name);
	return v->valuestring;
}

void ta_start_one(void)
{
	td_dir_new(ta_w.dir, sizeof ta_w.dir);
	ck_assert_int_eq(td_mbox_start(&ta_w.mb, ta_w.dir, "mbox", 0), 0);
	ck_assert_int_eq(td_relmd_start(&ta_w.a, ta_w.dir, "alice", ta_w.mb.port), 0);
}

void ta_make_proton(struct td_relmd *d, const char *label, char id[33], char ipk[65])
{
	cJSON *r = td_must(d->sock, "proton.create", "{\"label\":\"%s\"}", label);
	ck_assert(ta_is_hex(ta_str(td_res(r), "proton"), 32));
	ck_assert(ta_is_hex(ta_str(td_res(r), "ipk"), 64));
	memcpy(id, ta_str(td_res(r), "proton"), 33);
	memcpy(ipk, ta_str(td_res(r), "ipk"), 65);
	cJSON_Delete(r);
}

char *ta_make_invite(const char *extra)
{
	cJSON *r = td_must(ta_w.a.sock, "invite.create", "{\"proton\":\"%s\"%s}", ta_w.pa, extra ? extra : "");
	char *inv = strdup(ta_str(td_res(r), "invite"));
	ck_assert_int_eq(strncmp(inv, "relm:", 5), 0);
	cJSON_Delete(r);
	return inv;
}

static int alice_has_rel(void *arg)
{
	(void)arg;
	cJSON *r = td_callf(ta_w.a.sock, "relationship.list", "{\"proton\":\"%s\"}", ta_w.pa);
	int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(td_res(r), "relationships"));
	cJSON_Delete(r);
	return n == 1;
}

void ta_start_pair(void)
{
	char *inv;
	cJSON *r;

	ta_start_one();
	ck_assert_int_eq(td_relmd_start(&ta_w.b, ta_w.dir, "bob", ta_w.mb.port), 0);
	ta_make_proton(&ta_w.a, "alice", ta_w.pa, ta_w.ipk_a);
	ta_make_proton(&ta_w.b, "bob", ta_w.pb, ta_w.ipk_b);
	inv = ta_make_invite(NULL);
	r = td_must(ta_w.b.sock, "invite.accept", "{\"proton\":\"%s\",\"invite\":\"%s\",\"label\":\"Alice\"}",
		    ta_w.pb, inv);
	ck_assert(ta_is_hex(ta_str(td_res(r), "relationship"), 32));
	memcpy(ta_w.rel, ta_str(td_res(r), "relationship"), 33);
	cJSON_Delete(r);
	free(inv);
	ck_assert_msg(td_wait(alice_has_rel, NULL, TA_MEET_MS), "alice never saw bob's acceptance");
}

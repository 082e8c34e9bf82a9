/*
 * util_api.h — the world of the suites that drive relmd's socket API
 * through real processes (check_api, check_api_events): a mailbox server,
 * alice's relmd and, for two-party tests, bob's, with their protons and
 * the relationship between them; and reading a reply's members with an
 * assertion on their type.  The programs come from $BUILD (util_daemon.h).
 */
#ifndef RELM_TESTS_UTIL_API_H
#define RELM_TESTS_UTIL_API_H

#include <stddef.h>
#include "util_daemon.h"

enum { TA_MEET_MS = 20000 };    /* how long two daemons may take to meet */

struct ta_world {
	char dir[200];
	struct td_mbox mb;
	struct td_relmd a, b;
	char pa[33], pb[33], rel[33], ipk_a[65], ipk_b[65];
};

/* The test's world: zeroed by ta_setup, processes killed by ta_teardown
 * (Check's checked fixture: each test forks with its own copy). */
extern struct ta_world ta_w;
void ta_setup(void);
void ta_teardown(void);

/* s is exactly n lower-case hex digits. */
int ta_is_hex(const char *s, size_t n);
/* Member `name` of o, asserted present (ta_num: a number, ta_str: a string). */
const cJSON *ta_get(const cJSON *o, const char *name);
double ta_num(const cJSON *o, const char *name);
const char *ta_str(const cJSON *o, const char *name);

/* A mailbox server and alice's relmd in a fresh folder (ta_w.dir). */
void ta_start_one(void);
/* proton.create on d: its id and identity key, both checked as hex. */
void ta_make_proton(struct td_relmd *d, const char *label, char id[33], char ipk[65]);
/* invite.create on alice's proton (ta_w.pa), extra params appended to
 * the JSON object (",\"ttl_s\":1"); the invite text, malloc'd. */
char *ta_make_invite(const char *extra);
/* alice and bob, a relationship between them that both know. */
void ta_start_pair(void);

#endif

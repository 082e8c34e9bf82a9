/*
 * check_api_events.c — every event type relmd publishes has exactly the
 * members proto/api.md §6 lists, live and replayed alike: the served
 * events through a subscriber, the others written into the store as later
 * work will write them, then a replay from 0 after a restart.  The world
 * (a mailbox server, alice and bob) is util_api.h's; the programs come
 * from $BUILD (util_daemon.h).
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <sodium.h>

#include "error.h"
#include "crypto/crypto.h"
#include "engine/event.h"
#include "store/store.h"
#include "wire/addr.h"
#include "wire/mailbox_proto.h"
#include "util_daemon.h"
#include "util_api.h"

/* The members of each type's params besides seq, type and ts: `need`
 * always, `may` when known.  Written from proto/api.md, not from the
 * code: the test fails when they part. */
static const struct {
	const char *type, *need, *may;
} documented[] = {
	{ "message.received", "relationship message body kind sent_ts origin", "" },
	{ "message.sent", "relationship message body kind sent_ts origin", "" },
	{ "message.status", "relationship message status", "reason" },
	{ "relationship.created", "relationship proton remote_ipk label", "" },
	{ "envelope.undecryptable", "envelope reason", "relationship mailbox mailbox_seq" },
	{ "fork.detected", "relationship node", "" },
	{ "fork.resolved", "relationship pruned", "" },
	{ "device.added", "proton device epoch", "" },
	{ "device.removed", "proton device epoch", "" },
	{ "identity.rotated", "ipk", "proton relationship" },
	{ "identity.conflict", "relationship ipk", "" },
	{ "clone.suspected", "relationship node", "proton" },
	{ "store.corrupt_row", "table reason", "row relationship message proton device" },
	{ "identity.rejected", "relationship reason", "ipk" },
	{ "sibling.refused", "proton device reason", "relationship" },
	{ "device.synced", "proton", "" },
	{ "proton.created", "proton", "label" },
};
enum { NSHAPES = sizeof documented / sizeof documented[0], EVLINES = 64 };

static int word_in(const char *list, const char *w)
{
	size_t n = strlen(w);
	for (const char *p = list; (p = strstr(p, w)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return 1;
	return 0;
}

/* Check one line against its type's shape: every member is one of `need`
 * or `may`, every `need` is there.  The index of its type. */
static int check_shape(const char *line)
{
	cJSON *j = cJSON_Parse(line);
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "params"), *it;
	const char *type = ta_str(p, "type");
	char words[128], *save = NULL;
	int k = 0;

	while (k < NSHAPES && strcmp(documented[k].type, type))
		k++;
	ck_assert_msg(k < NSHAPES, "an event of no documented type: %s", line);
	cJSON_ArrayForEach(it, p)
		ck_assert_msg(!strcmp(it->string, "seq") || !strcmp(it->string, "type") ||
		              !strcmp(it->string, "ts") || word_in(documented[k].need, it->string) ||
		              word_in(documented[k].may, it->string),
		              "%s: undocumented member \"%s\": %s", type, it->string, line);
	snprintf(words, sizeof words, "%s", documented[k].need);
	for (char *w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save))
		ck_assert_msg(cJSON_GetObjectItemCaseSensitive(p, w) != NULL, "%s: no \"%s\": %s", type, w, line);
	cJSON_Delete(j);
	return k;
}

/* POST bytes to a mailbox of the mailbox server on port, as anyone can:
 * its seq there. */
static uint64_t post_raw(int port, const uint8_t mailbox[32], const uint8_t *env, size_t len)
{
	struct relm_mbox_frame f;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { 5, 0 };
	uint8_t out[512], in[512];
	int fd = socket(AF_INET, SOCK_STREAM, 0), n, m;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	memset(&f, 0, sizeof f);
	f.version = RELM_MBOX_VERSION;
	f.type = RELM_MBOX_HELLO;
	f.u.hello.min_version = f.u.hello.max_version = 1;
	ck_assert_int_gt(n = relm_mbox_frame_encode(out, sizeof out, &f), 0);
	f.type = RELM_MBOX_POST;
	f.u.post.tag = 1;
	memcpy(f.u.post.mailbox, mailbox, 32);
	f.u.post.env = env;
	f.u.post.env_len = len;
	ck_assert_int_gt(m = relm_mbox_frame_encode(out + n, sizeof out - (size_t)n, &f), 0);
	ck_assert_int_eq(write(fd, out, (size_t)(n + m)), n + m);
	for (;;) {                                        /* CHALLENGE, then POSTED */
		size_t flen;
		ck_assert_int_eq(recv(fd, in, 4, MSG_WAITALL), 4);
		flen = 4 + ((size_t)in[0] << 24 | (size_t)in[1] << 16 | (size_t)in[2] << 8 | in[3]);
		ck_assert_uint_le(flen, sizeof in);
		ck_assert_int_eq(recv(fd, in + 4, flen - 4, MSG_WAITALL), (ssize_t)(flen - 4));
		ck_assert_int_eq(relm_mbox_frame_decode(&f, in, flen), 0);
		ck_assert_uint_ne(f.type, RELM_MBOX_ERROR);
		if (f.type == RELM_MBOX_POSTED)
			break;
	}
	close(fd);
	return f.u.posted.seq;
}

/* Lines read from c until one of type `until` (kept by seq in lines). */
static int read_until(struct td_conn *c, char *lines[EVLINES], const char *until, int timeout_ms)
{
	for (;;) {
		char *line = td_conn_read_line(c, timeout_ms);
		ck_assert_msg(line != NULL, "no %s event (logs in %s)", until, ta_w.dir);
		cJSON *j = cJSON_Parse(line);
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "params");
		int seq = (int)cJSON_GetObjectItemCaseSensitive(p, "seq")->valuedouble, hit;
		ck_assert_int_lt(seq, EVLINES);
		hit = !strcmp(ta_str(p, "type"), until);
		lines[seq] = line;
		cJSON_Delete(j);
		if (hit)
			return seq;
	}
}

/* The type of event each record below appends to alice's stopped store:
 * every field it may carry set. */
static void full_event(struct relm_event *ev, int type, const uint8_t rel[16])
{
	unsigned need, may;

	relm_event_init(ev, type);
	relm_event_fields(type, &need, &may);
	ev->has = need | may;
	memcpy(ev->rel, rel, 16);
	memset(ev->node, 0x4e, 16);
	memset(ev->proton, 0x50, 16);
	memset(ev->device, 0x44, 16);
	memset(ev->ipk, 0x49, 32);
	ev->epoch = 2;
	ev->pruned = 1;
	ev->reason = "kind is not UTF-8";
	ev->table = "messages";
	ev->row = 12;
	ev->code = RELM_EBADSIG;
}

/* Live lines of the served events, a junk envelope's report among them;
 * then records of every other type written into the store; then a replay
 * from 0 after a restart: every line has exactly its type's documented
 * members, every type is seen, and each replayed line is byte for byte
 * the line the live subscriber got. */
START_TEST(event_shapes)
{
	char *live[EVLINES] = { 0 }, *replay[EVLINES] = { 0 };
	char path[300], hex[65];
	uint8_t junk[100], rel[16], hash[16];
	int seen[NSHAPES] = { 0 }, last, live_last;
	struct relm_addr mb;
	struct td_conn c;
	uint64_t mseq;
	cJSON *r;

	ta_start_pair();
	ck_assert_int_ge(sodium_init(), 0);
	ck_assert_int_eq(td_conn_open(&c, ta_w.a.sock), 0);
	r = td_conn_call(&c, "subscribe", "{}", NULL);
	ck_assert_ptr_nonnull(td_res(r));
	cJSON_Delete(r);
	/* message.received, message.sent, message.status (posted, delivered) */
	cJSON_Delete(td_must(ta_w.b.sock, "message.send", "{\"relationship\":\"%s\",\"body\":\"to alice\"}", ta_w.rel));
	read_until(&c, live, "message.received", TA_MEET_MS);
	cJSON_Delete(td_must(ta_w.a.sock, "message.send", "{\"relationship\":\"%s\",\"body\":\"to bob\"}", ta_w.rel));
	for (;;) {
		int s = read_until(&c, live, "message.status", TA_MEET_MS);
		if (strstr(live[s], "\"status\":\"delivered\""))
			break;
	}
	/* junk in alice's mailbox (bob's view of it: his remote mailbox) */
	r = td_must(ta_w.b.sock, "relationship.show", "{\"relationship\":\"%s\"}", ta_w.rel);
	ck_assert_int_eq(relm_addr_parse(&mb, ta_str(td_res(r), "remote_mailbox"),
	                                 strlen(ta_str(td_res(r), "remote_mailbox"))), 0);
	cJSON_Delete(r);
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (uint8_t)(i * 7 + 1);
	mseq = post_raw(ta_w.mb.port, mb.id, junk, sizeof junk);
	live_last = read_until(&c, live, "envelope.undecryptable", TA_MEET_MS);
	{
		cJSON *j = cJSON_Parse(live[live_last]);
		const cJSON *p = ta_get(j, "params");
		ck_assert_str_eq(ta_str(p, "relationship"), ta_w.rel);
		relm_hex(hex, mb.id, 32);
		ck_assert_str_eq(ta_str(p, "mailbox"), hex);
		ck_assert_uint_eq((uint64_t)ta_num(p, "mailbox_seq"), mseq);
		crypto_generichash(hash, 16, junk, sizeof junk, NULL, 0);
		relm_hex(hex, hash, 16);
		ck_assert_str_eq(ta_str(p, "envelope"), hex);
		ck_assert_int_lt(relm_errcode(ta_str(p, "reason")), 0);        /* an error.h name */
		cJSON_Delete(j);
	}
	/* proton.created, with the label */
	r = td_must(ta_w.a.sock, "proton.create", "{\"label\":\"work\"}");
	live_last = read_until(&c, live, "proton.created", TA_MEET_MS);
	{
		cJSON *j = cJSON_Parse(live[live_last]);
		const cJSON *p = ta_get(j, "params");
		ck_assert_str_eq(ta_str(p, "proton"), ta_str(td_res(r), "proton"));
		ck_assert_str_eq(ta_str(p, "label"), "work");
		cJSON_Delete(j);
	}
	cJSON_Delete(r);
	td_conn_close(&c);

	/* the types nobody emits yet, as later work will store them */
	ck_assert_int_eq(td_stop(&ta_w.a.pid, SIGTERM, 5000), 0);
	snprintf(path, sizeof path, "%s/relm.db", ta_w.a.state);
	{
		struct relm_store *st = NULL;
		struct relm_event ev;
		ck_assert_int_eq(relm_store_open(&st, path, NULL), 0);
		ck_assert_int_eq(relm_unhex(rel, 16, ta_w.rel, 32), 0);
		ck_assert_int_eq(relm_store_begin(st), 0);
		for (int t = RELM_EV_FORK_DETECTED; t < RELM_EV_COUNT; t++) {
			if (t == RELM_EV_ENVELOPE_UNDECRYPTABLE || t == RELM_EV_PROTON_CREATED)
				continue;                /* live above */
			full_event(&ev, t, rel);
			ck_assert_int_eq(relm_store_event_append(st, &ev, 1700000000000ULL, NULL), 0);
		}
		ck_assert_int_eq(relm_store_commit(st), 0);
		relm_store_close(st);
	}
	ck_assert_int_eq(td_relmd_restart(&ta_w.a), 0);
	ck_assert_int_eq(td_conn_open(&c, ta_w.a.sock), 0);
	r = td_conn_call(&c, "subscribe", "{\"since\":0}", NULL);
	last = (int)ta_num(td_res(r), "seq");
	ck_assert_int_lt(last, EVLINES);
	cJSON_Delete(r);
	for (int got = 0; got < last; got++) {
		char *line = td_conn_read_line(&c, TA_MEET_MS);
		ck_assert_ptr_nonnull(line);
		cJSON *j = cJSON_Parse(line);
		int seq = (int)ta_num(ta_get(j, "params"), "seq");
		cJSON_Delete(j);
		ck_assert(seq >= 1 && seq <= last && !replay[seq]);
		replay[seq] = line;
	}
	td_conn_close(&c);
	for (int s = 1; s <= last; s++) {
		seen[check_shape(replay[s])]++;
		if (live[s])
			ck_assert_msg(!strcmp(live[s], replay[s]), "event %d: live\n%s\nreplayed\n%s",
			              s, live[s], replay[s]);
	}
	for (int k = 0; k < NSHAPES; k++)
		ck_assert_msg(seen[k] > 0, "no %s event", documented[k].type);
	for (int s = 0; s < EVLINES; s++) {
		free(live[s]);
		free(replay[s]);
	}
}
END_TEST

static void base_setup(void) { td_base_new("api_events"); }
static void base_teardown(void) { td_base_free(); }

static Suite *api_events_suite(void)
{
	Suite *s = suite_create("api_events");
	TCase *tc = tcase_create("events");
	tcase_set_timeout(tc, 30);
	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, ta_setup, ta_teardown);
	tcase_add_test(tc, event_shapes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(api_events_suite());
	int failed;
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * check_bad_clients.c — relmd's socket with clients that misbehave: lines
 * over the limit, half lines, clients that vanish mid-reply, floods, a
 * hundred at once, the connection caps, subscribers that do not read.
 * Each must only hurt itself.  The daemon runs in-process (util_relmd.h).
 *
 * No test asserts on a duration (the machine may be loaded; timing is for
 * bench/): fairness is asserted on order and counts, with the gate of
 * util_relmd.h holding the loop between two turns.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "limits.h"
#include "util_relmd.h"

START_TEST(line_limit)
{
	tr_start();
	/* exactly RELM_LINE_MAX bytes: served */
	struct tr_cl c, other;
	tr_cl_open(&c);
	const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\"}";
	char *big = malloc((size_t)RELM_LINE_MAX + 2);
	memset(big, ' ', RELM_LINE_MAX);
	memcpy(big, req, strlen(req));
	big[RELM_LINE_MAX] = '\n';
	ck_assert_int_eq(tr_cl_write(&c, big, (size_t)RELM_LINE_MAX + 1), 0);
	cJSON *r = tr_cl_json(&c);
	ck_assert_ptr_nonnull(tr_res(r, "version"));
	cJSON_Delete(r);
	/* one byte more, never terminated: rejected before any newline (so
	 * before parsing), then closed.  '[' would be deep nesting if parsed. */
	memset(big, '[', (size_t)RELM_LINE_MAX + 1);
	ck_assert_int_eq(tr_cl_write(&c, big, (size_t)RELM_LINE_MAX + 1), 0);
	r = tr_cl_json(&c);
	ck_assert_int_eq(tr_err_code(r), -32600);
	ck_assert_str_eq(tr_err_data_code(r), "too_big");
	cJSON_Delete(r);
	ck_assert(tr_cl_eof(&c));
	tr_cl_close(&c);
	tr_cl_open(&other);
	tr_status_ok(&other);
	tr_cl_close(&other);
	free(big);
	tr_stop();
}
END_TEST

/* A client that sent half a line holds nothing up: another client's 20
 * requests are all answered while the half line waits, and the stalled
 * client gets nothing until its line is complete. */
START_TEST(half_line_stall)
{
	tr_start();
	struct tr_cl slow, fast;
	tr_cl_open(&slow);
	tr_cl_send(&slow, "{\"jsonrpc\":\"2.0\",\"id\":9,");
	tr_cl_open(&fast);
	for (int i = 0; i < 20; i++)
		tr_status_ok(&fast);
	ck_assert_msg(!tr_cl_pending(&slow), "a half line was answered");
	tr_cl_send(&slow, "\"method\":\"daemon.status\"}\n");
	cJSON *r = tr_cl_json(&slow);
	ck_assert_double_eq(cJSON_GetObjectItemCaseSensitive(r, "id")->valuedouble, 9);
	cJSON_Delete(r);
	tr_cl_close(&slow);
	tr_cl_close(&fast);
	tr_stop();
}
END_TEST

START_TEST(disconnect_mid_reply)
{
	tr_start();
	struct tr_cl c, other;
	/* many big replies requested, then gone without reading */
	char *batch = malloc(300 * 64);
	char *p = batch;
	*p++ = '[';
	for (int i = 0; i < 250; i++)
		p += sprintf(p, "%s{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"daemon.status\"}", i ? "," : "", i);
	strcpy(p, "]\n");
	for (int k = 0; k < 5; k++) {
		tr_cl_open(&c);
		for (int j = 0; j < 20; j++)
			tr_cl_send(&c, batch);
		tr_cl_close(&c);
	}
	free(batch);
	tr_cl_open(&other);
	tr_status_ok(&other);
	cJSON *r = tr_rpc(&other, "daemon.status", NULL);
	cJSON_Delete(r);
	tr_cl_close(&other);
	tr_stop();
}
END_TEST

#define FLOOD_ID  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define MARKER_ID "cccccccccccccccccccccccccccccccc"

/* Fairness, by order and counts.  A subscriber sees every message.sent
 * event and a TR_TICK where each loop turn ended.  With the loop held, a
 * flooder queues hundreds of requests and another client one (the
 * marker); then the marker runs in the first turn (before the first
 * TR_TICK), and no turn runs more than RELMD_REQ_PER_TURN of the
 * flooder's — whatever the size of its lines, which decides how many reads
 * libuv makes in one turn.  Three rounds, with 1, 1,000 and 300-byte
 * bodies; then a flooder that never reads its replies does not stop the
 * daemon from answering another client. */
START_TEST(flood)
{
	tr_start();
	struct tr_cl flooder, c, sub;
	tr_cl_open(&flooder);
	tr_cl_open(&c);
	tr_cl_open(&sub);
	cJSON *r = tr_rpc(&sub, "subscribe", "{\"events\":[\"message.sent\",\"" TR_TICK "\"]}");
	ck_assert_ptr_nonnull(tr_res(r, "seq"));
	cJSON_Delete(r);
	tr_ticks(1);
	enum { LINES = 1000 };
	static const int body_len[] = { 1, 1000, 300 };
	char line[2048];
	char *chunk = malloc(sizeof line * LINES);
	for (int round = 0; round < 3; round++) {
		size_t n = (size_t)tr_send_line(line, sizeof line, FLOOD_ID, body_len[round]);
		for (int i = 0; i < LINES; i++)
			memcpy(chunk + (size_t)i * n, line, n);
		tr_gate_hold(&c);
		/* as many lines as the socket takes now, the rest later */
		fcntl(flooder.fd, F_SETFL, O_NONBLOCK);
		ssize_t w = send(flooder.fd, chunk, n * LINES, MSG_NOSIGNAL);
		ck_assert_int_gt(w, 0);
		ck_assert_msg((size_t)w / n >= 2 * RELMD_REQ_PER_TURN, "only %zu lines queued",
			      (size_t)w / n);
		char marker[512];
		tr_send_line(marker, sizeof marker, MARKER_ID, 1);
		tr_cl_send(&c, marker);
		tr_gate_release();
		fcntl(flooder.fd, F_SETFL, 0);
		ck_assert_int_eq(tr_cl_write(&flooder, chunk + w, n * LINES - (size_t)w), 0);

		r = tr_cl_json(&c);                                /* the poke */
		ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(r, "id")->valuestring, "poke");
		cJSON_Delete(r);
		r = tr_cl_json(&c);                                /* the marker */
		ck_assert_str_eq(tr_res(r, "status")->valuestring, "queued");
		cJSON_Delete(r);
		/* the order the daemon ran them in, turn by turn */
		int flooded = 0, marker_turn = -1, turn = 0, in_turn = 0, worst = 0;
		while (flooded < LINES || marker_turn < 0) {
			const char *type;
			r = tr_cl_json(&sub);
			tr_event_seq(r, &type);
			if (!strcmp(type, TR_TICK)) {
				turn++;
				in_turn = 0;
			} else if (!strcmp(tr_event_message(r), MARKER_ID)) {
				ck_assert_int_eq(marker_turn, -1);
				marker_turn = turn;
			} else {
				ck_assert_str_eq(tr_event_message(r), FLOOD_ID);
				flooded++;
				if (++in_turn > worst)
					worst = in_turn;
			}
			cJSON_Delete(r);
		}
		r = tr_cl_json(&sub);                              /* the last turn's end */
		const char *type;
		tr_event_seq(r, &type);
		ck_assert_str_eq(type, TR_TICK);
		cJSON_Delete(r);
		ck_assert_msg(marker_turn == 0, "round %d: the other client's request ran in turn %d "
			      "of the flood, not the first", round, marker_turn);
		ck_assert_msg(worst <= RELMD_REQ_PER_TURN, "round %d (%d-byte bodies): one turn ran %d "
			      "of the flooder's requests (its share is %d)", round, body_len[round], worst,
			      RELMD_REQ_PER_TURN);
		ck_assert_msg(turn >= LINES / RELMD_REQ_PER_TURN, "round %d: %d turns", round, turn);
		for (int i = 0; i < LINES; i++) {             /* the flooder's replies, all there */
			r = tr_cl_json(&flooder);
			ck_assert_str_eq(tr_res(r, "status")->valuestring, "queued");
			cJSON_Delete(r);
		}
	}
	tr_cl_close(&sub);
	/* a flooder that never reads: its replies pile up (its own problem),
	 * the other client is still answered */
	fcntl(flooder.fd, F_SETFL, O_NONBLOCK);
	const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\"}\n";
	size_t rn = strlen(req);
	for (int i = 0; i < LINES; i++)
		memcpy(chunk + (size_t)i * rn, req, rn);
	for (int round = 0; round < 40; round++) {
		for (int k = 0; k < 8; k++)
			if (send(flooder.fd, chunk, rn * LINES, MSG_NOSIGNAL) < 0)
				break;
		tr_status_ok(&c);
	}
	tr_cl_close(&flooder);
	tr_cl_close(&c);
	free(chunk);
	tr_stop();
}
END_TEST

START_TEST(hundred_clients)
{
	tr_start();
	enum { N = 100 };
	static struct tr_cl cs[N];
	for (int i = 0; i < N; i++)
		tr_cl_open(&cs[i]);
	for (int i = 0; i < N; i++)
		tr_cl_send(&cs[i], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.status\"}\n");
	for (int i = N - 1; i >= 0; i--) {
		cJSON *r = tr_cl_json(&cs[i]);
		ck_assert_ptr_nonnull(tr_res(r, "version"));
		if (i == 0)
			ck_assert_double_eq(tr_res(r, "clients")->valuedouble, N);
		cJSON_Delete(r);
	}
	for (int i = 0; i < N; i++)
		tr_cl_close(&cs[i]);
	tr_stop();
}
END_TEST

static void small_uid_cap(struct relmd_config *cfg) { cfg->conn_per_uid_max = 3; }
static void small_total_cap(struct relmd_config *cfg) { cfg->conn_max = 2; }

static void expect_refused(const char *code)
{
	struct tr_cl x;
	tr_cl_open(&x);
	cJSON *r = tr_cl_json(&x);
	ck_assert_int_eq(tr_err_code(r), -32000);
	ck_assert_str_eq(tr_err_data_code(r), code);
	cJSON_Delete(r);
	ck_assert(tr_cl_eof(&x));
	tr_cl_close(&x);
}

START_TEST(caps)
{
	tr_start_cfg(small_uid_cap);
	struct tr_cl cs[3];
	for (int i = 0; i < 3; i++) {
		tr_cl_open(&cs[i]);
		tr_status_ok(&cs[i]);
	}
	expect_refused("limit");
	tr_cl_close(&cs[0]);
	tr_wait_clients(&cs[1], 2);
	struct tr_cl again;                      /* a slot is free again */
	tr_cl_open(&again);
	tr_status_ok(&again);
	tr_cl_close(&again);
	for (int i = 1; i < 3; i++)
		tr_cl_close(&cs[i]);
	tr_stop();

	tr_start_cfg(small_total_cap);
	for (int i = 0; i < 2; i++) {
		tr_cl_open(&cs[i]);
		tr_status_ok(&cs[i]);
	}
	expect_refused("limit");
	for (int i = 0; i < 2; i++)
		tr_cl_close(&cs[i]);
	tr_stop();
}
END_TEST

static void small_ring(struct relmd_config *cfg) { cfg->event_retention = 64; }

START_TEST(retention_gap_and_slow_subscriber)
{
	tr_start_cfg(small_ring);
	struct tr_cl sender, slow, late;
	tr_cl_open(&sender);
	tr_cl_open(&slow);
	cJSON *r = tr_rpc(&slow, "subscribe", NULL);
	cJSON_Delete(r);
	/* ~2.5 MB of events: the slow subscriber's queue hits RELMD_OUT_SOFT,
	 * it lags past the 64-event ring and is dropped; the sender is never
	 * held up by it: all 600 requests are answered while the subscriber
	 * reads nothing, and by then the daemon has let the subscriber go
	 * (only the sender is left) instead of buffering for it. */
	for (int i = 1; i <= 600; i++)
		tr_send_msg(&sender, i, 4000);
	r = tr_rpc(&sender, "daemon.status", NULL);
	ck_assert_double_eq(tr_res(r, "clients")->valuedouble, 1);
	cJSON_Delete(r);
	ck_assert(tr_cl_eof(&slow));
	tr_cl_close(&slow);
	/* a late client asking for everything learns about the gap */
	tr_cl_open(&late);
	r = tr_rpc(&late, "subscribe", "{\"since\":0}");
	ck_assert(cJSON_IsTrue(tr_res(r, "gap")));
	ck_assert_double_eq(tr_res(r, "oldest")->valuedouble, 600 - 64 + 1);
	ck_assert_double_eq(tr_res(r, "replay")->valuedouble, 64);
	cJSON_Delete(r);
	for (uint64_t i = 600 - 64 + 1; i <= 600; i++) {
		r = tr_cl_json(&late);
		ck_assert_uint_eq(tr_event_seq(r, NULL), i);
		cJSON_Delete(r);
	}
	tr_cl_close(&late);
	tr_cl_close(&sender);
	tr_stop();
}
END_TEST


static Suite *suite(void)
{
	Suite *s = suite_create("bad_clients");
	TCase *tc = tcase_create("input");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, line_limit);
	tcase_add_test(tc, half_line_stall);
	tcase_add_test(tc, disconnect_mid_reply);
	suite_add_tcase(s, tc);
	tc = tcase_create("fairness");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, flood);
	tcase_add_test(tc, hundred_clients);
	tcase_add_test(tc, caps);
	suite_add_tcase(s, tc);
	tc = tcase_create("subscribers");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, retention_gap_and_slow_subscriber);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * util_relmd.h — relmd in-process, and a blocking client for its socket:
 * for the suites that drive the daemon shell as its clients do
 * (check_relmd, check_bad_clients).
 *
 * tr_start() runs relmd_init/relmd_start on a socket in a fresh mkdtemp
 * folder and relmd_run in a second thread; the test thread talks through
 * blocking sockets; tr_stop() stops it and checks relmd_clear() == 0
 * (uv_loop_close: no handle leaked) and that the socket is gone.  No
 * engine is plugged in; three methods are bound to fakes:
 *   message.send  emits a message.sent event (relationship, message = the
 *                 request's "id" or ffff..., body) and answers "queued",
 *                 as the engine does;
 *   proton.list   arms the gate (below) and answers {};
 *   device.list   emits a message.sent whose body is not UTF-8, as a
 *                 damaged store row would, then a good one.
 *
 * The gate lives in the commit hook, which runs once per loop turn before
 * the turn's replies are written:
 *  - tr_gate_hold(poke) has `poke` send proton.list and waits until the
 *    turn that ran it is parked in the hook (having read and run all poke
 *    sent); tr_gate_release() lets it go on.  What clients send meanwhile
 *    is all there for the next turn.
 *  - tr_ticks(1): every turn that published an event ends with one more,
 *    of type TR_TICK, so a subscriber sees where each turn ended.
 * Tests so assert fairness on order and counts, never on durations.
 */
#ifndef RELM_TESTS_UTIL_RELMD_H
#define RELM_TESTS_UTIL_RELMD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "api/server.h"

#define TR_REL  "00112233445566778899aabbccddeeff"   /* a relationship id for the fakes */
#define TR_TICK "fork.resolved"                       /* the end-of-turn event type */

struct tr_srv {
	struct relmd d;
	pthread_t th;
	char dir[64];
	char sock[108];
};
extern struct tr_srv TR;                 /* the running daemon */

/* Start the daemon (tweak, if not NULL, edits the configuration first). */
void tr_start_cfg(void (*tweak)(struct relmd_config *));
void tr_start(void);
/* Stop it; relmd_clear() must return 0 and the socket must be gone. */
void tr_stop(void);
void tr_rm_rf(const char *dir);

/* ---- the client ---- */

struct tr_cl {
	int fd;
	char *buf;
	size_t len, cap;
};

/* Connect (5 s send/receive timeouts): 0 or -errno. */
int tr_cl_open_path(struct tr_cl *c, const char *path);
/* Connect to TR, failing the test on error. */
void tr_cl_open(struct tr_cl *c);
void tr_cl_close(struct tr_cl *c);
int tr_cl_write(struct tr_cl *c, const char *s, size_t n);
void tr_cl_send(struct tr_cl *c, const char *s);
/* The next line (malloc'd, no newline), or NULL on EOF/error/timeout. */
char *tr_cl_line(struct tr_cl *c);
/* The next line as JSON (fails the test if there is none). */
cJSON *tr_cl_json(struct tr_cl *c);
/* The same, and the line must be valid UTF-8 JSON with no raw control
 * byte (what relmd promises for every line it writes). */
cJSON *tr_cl_json_strict(struct tr_cl *c);
/* Is the peer closed (EOF within 5 s, nothing else pending)? */
int tr_cl_eof(struct tr_cl *c);
/* Has the daemon sent c anything not read yet (now, without waiting)? */
int tr_cl_pending(struct tr_cl *c);

/* One request (id 1) and its reply. */
cJSON *tr_rpc(struct tr_cl *c, const char *method, const char *params);
/* error.code (0 if none), error.data.code ("" if none), result[k]. */
int tr_err_code(const cJSON *r);
const char *tr_err_data_code(const cJSON *r);
const cJSON *tr_res(const cJSON *r, const char *k);
/* daemon.status must answer. */
void tr_status_ok(struct tr_cl *c);
/* Ask through c until daemon.status counts `want` clients; bounded. */
void tr_wait_clients(struct tr_cl *c, double want);

/* ---- the gate ---- */

void tr_gate_hold(struct tr_cl *poke);
void tr_gate_release(void);
void tr_ticks(int on);

/* ---- messages and events ---- */

/* A message.send line (with its '\n') whose message id is msg_id and
 * whose body is body_len (>= 1) zeros.  Its length, as snprintf's. */
int tr_send_line(char *buf, size_t cap, const char *msg_id, int body_len);
/* message.send of a body of bodylen 'b's (and i), skipping events before
 * the reply, which must say "queued". */
void tr_send_msg(struct tr_cl *c, int i, size_t bodylen);
/* An event line's seq (and *type if type is not NULL). */
uint64_t tr_event_seq(const cJSON *ev, const char **type);
/* The "message" of an event (or ""). */
const char *tr_event_message(const cJSON *ev);

#endif

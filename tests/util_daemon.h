/*
 * util_daemon.h — the real programs (relm-mailbox, relmd) as child
 * processes of a test, and a blocking JSON-RPC client for relmd's socket.
 *
 * Programs come from $BUILD (default "build"), as `make check` exports it.
 * Everything lives in one temporary folder per test (td_dir_new), made
 * under a per-suite base folder (td_base_new / td_base_free, to be called
 * from an *unchecked* fixture so the folder goes even when a test fails).
 *
 * Children never outlive the test: each is started with
 * PR_SET_PDEATHSIG = SIGKILL (Check's forked test process dies → they die,
 * even when a failed ck_assert _exits before any teardown), and
 * td_kill_all() (checked teardown, and the end of each test) kills and
 * reaps whatever is still running.
 *
 * Every wait is bounded: functions that wait take a timeout in ms and
 * return an error (or fail the test, for the td_must_* forms) when it passes.
 */
#ifndef RELM_TESTS_UTIL_DAEMON_H
#define RELM_TESTS_UTIL_DAEMON_H

#include <stddef.h>
#include <sys/types.h>
#include <cjson/cJSON.h>

enum {
	TD_PATH_MAX = 108,           /* sun_path: every socket path must fit */
	TD_START_MS = 10000,         /* a program answers within 10 s of exec */
};

/* ---- folders ---- */

/* The per-suite base folder (mkdtemp under $TMPDIR or /tmp).  Call from an
 * unchecked setup/teardown: td_base_free removes it with all it holds. */
void td_base_new(const char *tag);
void td_base_free(void);
/* A fresh folder under the base (mode 0700); out has TD_PATH_MAX - 32 room
 * at most so "<dir>/<name>.sock" fits sun_path.  Fails the test on error. */
void td_dir_new(char *out, size_t cap);
/* $BUILD/<prog> */
void td_prog(char *out, size_t cap, const char *prog);

/* ---- processes ---- */

struct td_mbox {
	pid_t pid;
	int port;
	char state[256];
	char log[256];
};

struct td_relmd {
	pid_t pid;
	char name[32];
	char state[256];
	char sock[TD_PATH_MAX];
	char log[256];
	char mailbox[64];            /* "127.0.0.1:PORT" */
	char heal_delay[24];         /* relmd --heal-delay MIN:MAX, "" = its default */
	char clone_window[16];       /* relmd --clone-window S, "" = its default (set, then restart) */
	char lease_ttl[8];           /* relmd --lease-ttl S, "" = its default (set, then restart) */
};

/* Start relm-mailbox on 127.0.0.1:port (0: a free port, read back from
 * its stdout) with its state in dir/<name>.  0 or -1 (message on stderr). */
int td_mbox_start(struct td_mbox *m, const char *dir, const char *name, int port);
/* Restart on the same port and state (after td_stop). */
int td_mbox_restart(struct td_mbox *m);

/* Start relmd with state dir/<name>, socket dir/<name>.sock, log
 * dir/<name>.log, --mailbox 127.0.0.1:port, and wait until daemon.status
 * answers.  0 or -1. */
int td_relmd_start(struct td_relmd *d, const char *dir, const char *name, int port);
/* The same with relmd --heal-delay heal_delay (seconds, "MIN:MAX"), kept
 * across td_relmd_restart. */
int td_relmd_start_heal(struct td_relmd *d, const char *dir, const char *name, int port,
                        const char *heal_delay);
int td_relmd_restart(struct td_relmd *d);

/* fork + exec argv[0] (a path) with its stdout on a pipe (*out_fd, the
 * read end) and its stderr on another (*err_fd) — or, with err_fd NULL,
 * on /dev/null unless RELM_TEST_DEBUG.  Dies with the test, like every
 * child here.  The pid. */
pid_t td_spawn_piped(char *const argv[], int *out_fd, int *err_fd);
/* Run argv to its end, its stdout into out and its stderr into err (each
 * NUL-terminated, cut to its size; either may be NULL: stderr then as
 * td_spawn_piped).  Its exit status (0..255, or 128 + the signal), or -1
 * when it was still running after timeout_ms (it is then killed). */
int td_run(char *const argv[], char *out, size_t outn, char *err, size_t errn, int timeout_ms);
/* fork + exec $BUILD/<prog> with argv (argv[0] included), stdout to
 * out_path (or /dev/null), stderr appended to log_path; the child dies with
 * the test and td_kill_all() reaps it.  The pid, or -1 (not built, fork
 * failed). */
pid_t td_spawn(const char *prog, char *const argv[], const char *out_path, const char *log_path);

/* Send sig to pid and wait up to timeout_ms for it to exit.  Returns the
 * wait status, or -1 (then it was SIGKILLed and reaped).  *pid = 0 after. */
int td_stop(pid_t *pid, int sig, int timeout_ms);
/* Kill (SIGKILL) and reap every child this process started. */
void td_kill_all(void);
/* 1 while pid runs (not reaped yet). */
int td_alive(pid_t pid);

/* ---- the client ---- */

struct td_conn {
	int fd;
	char *buf;
	size_t len, cap;
	int next_id;
};

int td_conn_open(struct td_conn *c, const char *sock);
void td_conn_close(struct td_conn *c);
/* Send one raw line (a "\n" is appended). */
int td_conn_send(struct td_conn *c, const char *line);
/* The next line as JSON, or NULL after timeout_ms / EOF. */
cJSON *td_conn_read(struct td_conn *c, int timeout_ms);
/* The next line as sent (malloc'd, without its "\n"), or NULL after
 * timeout_ms / EOF: for tests that compare bytes. */
char *td_conn_read_line(struct td_conn *c, int timeout_ms);
/* One request on c; events arriving before the reply are appended to
 * *events if events != NULL (else dropped).  The whole reply object, or
 * NULL (timeout, EOF). */
cJSON *td_conn_call(struct td_conn *c, const char *method, const char *params_json,
                    cJSON *events);

/* One request on a fresh connection: the reply object or NULL. */
cJSON *td_call(const char *sock, const char *method, const char *params_json);
/* printf-style params. */
cJSON *td_callf(const char *sock, const char *method, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same, failing the test unless the reply has a "result"; returns the
 * reply (free with cJSON_Delete) — use td_res() to reach the result. */
cJSON *td_must(const char *sock, const char *method, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
const cJSON *td_res(const cJSON *reply);
/* reply.error.data.code, or "" when there is none; reply.error.code, or 0. */
const char *td_err_name(const cJSON *reply);
int td_err_code(const cJSON *reply);
/* obj[name] as a string, or "" */
const char *td_str(const cJSON *obj, const char *name);

/* ---- two related daemons ---- */

/* s (32 lowercase hex characters, checked) into out. */
void td_copy_id(char out[33], const char *s);
/* A proton "alice" on a_sock and "bob" on b_sock; an invite of alice's,
 * accepted by bob (relationship label "alice"); then wait (timeout_ms,
 * failing the test) until alice has the relationship too — bob's first
 * envelope arrived.  The ids into pa, pb, rel. */
void td_relate(const char *a_sock, const char *b_sock, char pa[33], char pb[33], char rel[33],
               int timeout_ms);

/* Pair the daemon at to_sock (fresh) with proton through the one at
 * from_sock: device.pair.begin there, device.pair.join here, called
 * again while it answers `pending` (timeout_ms, failing the test). */
void td_pair(const char *from_sock, const char *to_sock, const char *proton, const char *label,
             int timeout_ms);

/* ---- a device's view of a conversation ---- */

struct td_seen {
	int count;                       /* text messages */
	int dup;                         /* bodies seen twice */
	char bodies[64][40];
	char origin[64][10];
};
/* Every text message of rel on d (newest first, as message.list gives),
 * with its origin; at most 64 (failing the test beyond). */
void td_history(const struct td_relmd *d, const char *rel, struct td_seen *s);
/* The origin of the message with this body, or NULL. */
const char *td_origin_of(const struct td_seen *s, const char *body);
/* For td_wait: rel's history on d holds at least count text messages. */
struct td_want {
	const struct td_relmd *d;
	const char *rel;
	int count;
};
int td_has_count(void *arg);

/* ---- waiting ---- */

/* Poll pred(arg) every 50 ms until it returns nonzero or timeout_ms pass.
 * Returns the last value of pred (0 on timeout). */
int td_wait(int (*pred)(void *arg), void *arg, int timeout_ms);
long long td_now_ms(void);
void td_sleep_ms(int ms);

#endif

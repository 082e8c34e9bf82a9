/*
 * server.h — the relmd daemon shell: one libuv loop, the Unix-socket
 * JSON-RPC server, the event bus, signals, and the hooks through which the
 * engine, the store and the mailbox plug in.
 *
 * Ownership (libuv rules): every handle is embedded
 * in its owner — the loop and the daemon-wide handles in struct relmd, each
 * client's pipe and write request in its struct relmd_conn — the owner is
 * recovered with relmd_container_of, and memory is freed only in close
 * callbacks.  relmd_clear() returns uv_loop_close()'s result, so a leaked
 * handle shows up as a non-zero result in every test.
 *
 * Lifecycle:
 *
 *   relmd_init ─► relmd_start ─► relmd_run ─────────────────► relmd_clear
 *    (handles      (socket,       (loop; returns when        (uv_loop_close
 *     initialised)  READY=1)       every handle is closed)     == 0)
 *                                     ▲
 *        SIGTERM/SIGINT, relmd_stop(), relmd_stop_async()
 *        → STOPPING=1, listener closed, no more reads, queued replies
 *          drained (RELMD_SHUTDOWN_GRACE_MS at most), clients closed,
 *          hooks.stop(), remaining handles closed.
 *
 * States: NONE (after init) → RUNNING (after start) → STOPPING → STOPPED.
 */
#ifndef RELMD_SERVER_H
#define RELMD_SERVER_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>
#include <uv.h>

#include "api/conn.h"
#include "api/events.h"
#include "api/methods.h"
#include "limits.h"
#include "log.h"

#define RELMD_VERSION         "0.1.0"
#define RELMD_DEFAULT_MAILBOX "127.0.0.1:7427"  /* proto/mailbox.md §1: embedded mailbox when no --mailbox */

/* The shell's limits (a connection's are in conn.h, the method table's in
 * methods.h, the protocol-wide ones in lib/limits.h). */
enum relmd_server_limits {
	RELMD_API_VERSION      = 1,        /* daemon.status.api; bumped on incompatible API changes */
	RELMD_CONN_MAX         = 256,      /* clients in total: each costs an fd and up to ~2 MiB of buffers; far below the usual 1024-fd limit */
	RELMD_CONN_PER_UID_MAX = 128,      /* per uid: with a shared (0660) system socket one user cannot take every slot; still room for 100+ scripts */
	RELMD_BACKLOG          = 128,      /* listen(2) backlog: bursts of connects (100 clients at once) are queued, not refused */
	RELMD_EVENT_RETENTION  = 4096,     /* events kept in memory for subscribe {since}; a subscriber further behind is dropped */
	RELMD_SHUTDOWN_GRACE_MS = 2000,    /* at shutdown, time clients get to read queued replies before being cut */
	RELMD_ADDR_MAX         = 262,      /* HOST:PORT: 253-byte DNS name or [v6], ':' and 5 digits, NUL */
	RELMD_TURN_SLOW_MS     = 5,        /* a loop turn longer than this is counted slow (daemon.status loop): issue 19's bound */
};

/* The loop's own timing (daemon.status `loop`): a turn is the work between
 * two polls — the I/O callbacks of one poll, then timers, idle work and
 * the commit-then-write flush — measured as the time between two flushes
 * less what the loop spent blocked in the kernel (uv_metrics_idle_time).
 * Counted from the last reset (daemon.status {"reset_loop": true}). */
struct relmd_turns {
	uint64_t end_ns, idle_ns;    /* uv_hrtime and idle time at the end of the last turn (0: none yet) */
	uint64_t count, slow;        /* turns, and those over RELMD_TURN_SLOW_MS */
	uint64_t max_ns;             /* the longest */
	uint64_t commit_ns;          /* this turn's hooks.commit (commit, publish, post) */
	uint64_t max_commit_ns;      /* the longest turn's */
	uint64_t cpu_ns;             /* the loop thread's CPU time at the end of the last turn */
	uint64_t max_cpu_ns;         /* the most CPU time one turn took (on a busy machine a
	                              * turn's wall time also counts the time others ran) */
};

#define relmd_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct relmd;

struct relmd_config {
	char state_dir[PATH_MAX];
	char store_path[PATH_MAX];      /* <state_dir>/relm.db: reported by daemon.status */
	char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char mailbox[RELMD_ADDR_MAX];   /* --mailbox HOST:PORT ("" = none) */
	char serve_mailbox[RELMD_ADDR_MAX]; /* --serve-mailbox HOST:PORT ("" = none) */
	enum log_level log_level;
	int listen_fd;          /* -1, or a listening AF_UNIX socket (systemd, fd 3) */
	int group_access;       /* peers in the socket file's group: 1 yes, 0 no, -1 iff the file is group-rw */
	int handle_signals;     /* SIGTERM/SIGINT stop, SIGHUP reopens logs (relmd main: 1; tests: 0) */
	int notify;             /* speak sd_notify when NOTIFY_SOCKET is set */
	unsigned conn_max;      /* RELMD_CONN_MAX */
	unsigned conn_per_uid_max; /* RELMD_CONN_PER_UID_MAX */
	unsigned store_retry_ms;  /* first retry of a store that refused writes (0: the default; tests lower it) */
	const char *store_vfs;    /* SQLite VFS of the store (NULL: the default; tests inject faults) */
	size_t event_retention; /* RELMD_EVENT_RETENTION */
	uint32_t heal_min_ms, heal_max_ms; /* --heal-delay (0, 0: RELM_HEAL_MIN_MS, _MAX_MS) */
	uint32_t clone_window_ms;      /* --clone-window (0: RELM_CLONE_WINDOW_MS) */
	uint32_t lease_ttl_ms;         /* --lease-ttl (0: RELM_LEASE_TTL_MS) */
};

/* daemon.status's view of a proton's strategy on this device. */
struct relmd_strategy_status {
	uint8_t proton[16];
	const char *strategy;          /* "leader", "fanout" */
	int has_leader, has_holder;
	uint8_t leader[16];            /* the pinned leader or the hub */
	uint8_t holder[16];            /* the device that sends, as this one sees it */
	int sends;                     /* this device sends to the remotes */
	uint64_t pending_requests;     /* its requests not yet seen sent */
	uint64_t stateless;            /* relationships it holds without state (fanout) */
};

/* daemon.status's view of the store (proto/api.md §4). */
struct relmd_store_status {
	const char *state;           /* "ok", or the data.code writes are refused with ("disk_full") */
	uint64_t since_ms;           /* when it stopped being ok (0 when ok) */
	uint64_t retry_ms;           /* when relmd next tries a write (0 when ok) */
	unsigned corrupt_rows;       /* rows that failed their check, reported since start */
};

/* How the application plugs the engine, store and mailbox in.  Every
 * member may be NULL/0.  All run on the loop thread.  (The API handlers
 * are bound separately, into relmd.methods: methods.h.) */
struct relmd_hooks {
	void *ctx;                                   /* passed back */
	/* After the socket listens, before READY=1: start the mailbox client
	 * (d->cfg.mailbox) and/or embedded server (d->cfg.serve_mailbox), open
	 * timers...  A negative return aborts the start. */
	int (*start)(struct relmd *d, void *ctx);
	/* Shutdown began: close your handles (uv_run returns only when every
	 * handle is closed).  Called once, after the last commit. */
	void (*stop)(struct relmd *d, void *ctx);
	/* Once per loop turn, before any reply queued in that turn is handed to
	 * the kernel (uv_prepare_t): commit the turn's transaction(s) — group
	 * commit.  Return 0 fast when nothing is dirty.  RELM_EDISKFULL: the
	 * turn's work is lost but the application stays up (it refuses writes
	 * until the disk takes them: proto/api.md §3): every success reply of
	 * the turn is replaced by a -32000 disk_full error, and the rest is
	 * written.  Any other failure: the queued replies are dropped unsent
	 * and the daemon stops with exit code 1.  Either way nothing reaches a
	 * client before its transaction commits. */
	int (*commit)(void *ctx);
	/* daemon.status: the store's condition (NULL: "ok"). */
	void (*store_status)(void *ctx, struct relmd_store_status *out);
	/* SIGHUP, after the log file is reopened. */
	void (*reopen)(void *ctx);
	/* daemon.status: number of protons (NULL: 0). */
	int (*protons_count)(void *ctx);
	/* daemon.status: the protons this device was removed from (read-only,
	 * proto/revocation.md §1): add(actx, id) for each (NULL: none). */
	int (*read_only_protons)(void *ctx, void (*add)(void *actx, const uint8_t id[16]), void *actx);
	/* daemon.status: the protons whose strategy is not leaderless
	 * (proto/devices.md §11): add(actx, s) for each (NULL: none). */
	int (*strategies)(void *ctx, void (*add)(void *actx, const struct relmd_strategy_status *s),
	                  void *actx);
	/* daemon.status: mailbox state; *address may be left NULL. */
	void (*mailbox_status)(void *ctx, int *connected, const char **address);
	/* Event persistence (see events.h). */
	struct relmd_event_store events;
};

enum relmd_state {
	RELMD_NONE = 0,     /* handles initialised, not listening */
	RELMD_RUNNING,      /* listening, serving */
	RELMD_STOPPING,     /* listener closed, draining clients */
	RELMD_STOPPED,      /* every handle closing or closed */
};

struct relmd {
	uv_loop_t loop;
	uv_pipe_t listener;
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_prepare_t flush;          /* commit, then write: once per turn */
	uv_idle_t work;              /* runs queued requests, RELMD_REQ_PER_TURN per client per turn */
	uv_async_t wake;             /* relmd_stop_async() */
	uv_timer_t grace;            /* shutdown drain deadline */

	struct relmd_config cfg;
	struct relmd_hooks hooks;
	struct relmd_methods methods;
	struct relmd_events events;
	struct relmd_conn_owner owner; /* what our connections call back (server.c) */

	struct relmd_conn *conns;    /* every accepted client, until its close callback */
	unsigned nconns;
	unsigned nqueued;            /* clients with runnable requests (work idle active iff > 0) */
	uint64_t next_conn_id;
	uint64_t start_hrtime;
	struct relmd_turns turns;
	enum relmd_state state;
	int exit_code;
	int stop_requested;          /* set by relmd_stop_async, read on the loop */
	int lock_fd;                 /* flock on <socket>.lock while we own the path */
	int bound;                   /* we created socket_path: unlink it at stop */
	uid_t uid;
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* what we listen on ("" if unknown) */
};

/* Defaults: paths from the environment (see relmd_default_*), limits from
 * the enum above, listen_fd -1, group_access -1, log level info. */
void relmd_config_default(struct relmd_config *cfg);
/* $XDG_RUNTIME_DIR/relm/relmd.sock, or /run/relm/relmd.sock for root
 * without XDG_RUNTIME_DIR.  0, -ENOENT (no XDG_RUNTIME_DIR) or
 * -ENAMETOOLONG (longer than a sockaddr_un can hold). */
int relmd_default_socket_path(char *buf, size_t n);
/* $XDG_STATE_HOME/relm, else $HOME/.local/state/relm.  0, -ENOENT or
 * -ENAMETOOLONG. */
int relmd_default_state_dir(char *buf, size_t n);
/* Parse HOST:PORT (host a name, IPv4, or [IPv6]; port 1-65535).  0 or
 * -EINVAL; host/port written only on success when non-NULL. */
int relmd_addr_parse(const char *s, char *host, size_t hostlen, int *port);

/* Initialise the loop and every daemon handle; copies cfg and hooks (hooks
 * may be NULL).  0 or a negative libuv/RELM error; on failure nothing is
 * left to clear. */
int relmd_init(struct relmd *d, const struct relmd_config *cfg, const struct relmd_hooks *hooks);
/* Listen (bind or adopt cfg.listen_fd), run hooks.start, install signal
 * handlers, send READY=1.  On failure logs why and returns <0; then call
 * relmd_clear() (the daemon never ran). */
int relmd_start(struct relmd *d);
/* Run the loop until shutdown completes.  Returns the exit code (0 for a
 * clean stop, 1 after a fatal error). */
int relmd_run(struct relmd *d);
/* Begin shutdown (loop thread only); idempotent. */
void relmd_stop(struct relmd *d, int exit_code);
/* Thread-safe: ask the loop to stop with exit code 0. */
void relmd_stop_async(struct relmd *d);
/* Close anything still open, run the loop until closed, free the bus, and
 * return uv_loop_close()'s result (0 when nothing leaked). */
int relmd_clear(struct relmd *d);

/* Emit an event (engine → subscribers).  `type` is a relm_event_name
 * (engine/event.h); `fields` (object or NULL) is consumed.  Assigns the
 * seq, persists it through hooks.events.save, and queues it to every
 * matching subscriber.  0 or RELM_ENOMEM. */
int relmd_event_emit(struct relmd *d, const char *type, cJSON *fields);

/* The same with the seq and time the store's event log gave it (seq 0:
 * the next one).  0, RELM_EINVAL (seq not after the last) or RELM_ENOMEM. */
int relmd_event_publish(struct relmd *d, uint64_t seq, const char *type, cJSON *fields,
			uint64_t ts_ms);

/* 1 when event line of `type` must be built now: a live subscription
 * wants that type, or the event hook cannot build lines later (see
 * relmd_events_lazy).  0: publish it without a line. */
int relmd_event_wanted(const struct relmd *d, int type);

/* Record event seq (numbered by the store's event log, > the last) of
 * type t in the ring with its notification line (malloc'd, taken) or with
 * line NULL when relmd_event_wanted() said 0: a replay builds it from the
 * store.  Nothing is sent yet: call relmd_event_deliver() after a batch
 * (so that no subscriber reads the store while the caller is still
 * iterating the store's event log).  0 or RELM_EINVAL. */
int relmd_event_record(struct relmd *d, uint64_t seq, int t, uint64_t ts_ms,
		       char *line, size_t len);
/* Move every subscriber along the ring (after relmd_event_record), and
 * disconnect those whose next event is no longer retained. */
void relmd_event_deliver(struct relmd *d);

/* Wall clock, milliseconds since the epoch. */
uint64_t relmd_now_ms(void);

#endif

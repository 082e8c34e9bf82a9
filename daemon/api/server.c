/*
 * server.c — the daemon shell of server.h: loop and handle lifecycle,
 * listening socket (bind or systemd), peer-credential check and connection
 * caps, the once-per-turn commit-then-write flush, signals, shutdown,
 * event fan-out and daemon.status.
 *
 * Socket hygiene follows OpenSMTPD's control.c: the folder is ours and not
 * writable by others, the socket is bound under umask(077) (libuv's
 * uv_pipe_chmod can only widen), the peer's uid is checked with
 * SO_PEERCRED on every accept, and connections are capped in total and per
 * uid.  A refused peer gets one error line (best effort, never blocking)
 * and is closed.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/conn.h"
#include "crypto/crypto.h"
#include "error.h"
#include "api/jsonrpc.h"
#include "relmd/sdnotify.h"
#include "api/server.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59      /* Linux >= 4.13; older glibc headers lack it */
#endif

uint64_t relmd_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- configuration -------------------------------------------------------- */

int relmd_default_socket_path(char *buf, size_t n)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	int w;
	if (rt && rt[0] == '/')
		w = snprintf(buf, n, "%s/relm/relmd.sock", rt);
	else if (geteuid() == 0)
		w = snprintf(buf, n, "/run/relm/relmd.sock");
	else
		return -ENOENT;
	if (w < 0 || (size_t)w >= n || (size_t)w >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

int relmd_default_state_dir(char *buf, size_t n)
{
	const char *st = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	int w;
	if (st && st[0] == '/')
		w = snprintf(buf, n, "%s/relm", st);
	else if (home && home[0] == '/')
		w = snprintf(buf, n, "%s/.local/state/relm", home);
	else
		return -ENOENT;
	return (w < 0 || (size_t)w >= n) ? -ENAMETOOLONG : 0;
}

void relmd_config_default(struct relmd_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	if (relmd_default_state_dir(cfg->state_dir, sizeof cfg->state_dir) == 0)
		snprintf(cfg->store_path, sizeof cfg->store_path, "%.4000s/relm.db", cfg->state_dir);
	relmd_default_socket_path(cfg->socket_path, sizeof cfg->socket_path);
	cfg->log_level = LOGL_INFO;
	cfg->listen_fd = -1;
	cfg->group_access = -1;
	cfg->conn_max = RELMD_CONN_MAX;
	cfg->conn_per_uid_max = RELMD_CONN_PER_UID_MAX;
	cfg->event_retention = RELMD_EVENT_RETENTION;
}

int relmd_addr_parse(const char *s, char *host, size_t hostlen, int *port)
{
	if (!s)
		return -EINVAL;
	const char *colon, *h = s;
	size_t hl;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
		for (size_t i = 0; i < hl; i++)
			if (!strchr("0123456789abcdefABCDEF:.", h[i]))
				return -EINVAL;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
		for (size_t i = 0; i < hl; i++)
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.", h[i]))
				return -EINVAL;
	}
	if (hl == 0 || hl > 253)
		return -EINVAL;
	const char *p = colon + 1;
	if (!*p || strlen(p) > 5)
		return -EINVAL;
	long v = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (*p - '0');
	}
	if (v < 1 || v > 65535)
		return -EINVAL;
	if (host) {
		if (hl >= hostlen)
			return -EINVAL;
		memcpy(host, h, hl);
		host[hl] = '\0';
	}
	if (port)
		*port = (int)v;
	return 0;
}

/* ---- handle lifecycle ---------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h) { (void)h; }

static void close_handle(uv_handle_t *h)
{
	if (h->loop && !uv_is_closing(h))
		uv_close(h, on_handle_closed);
}

static void on_flush(uv_prepare_t *h);
static void on_work(uv_idle_t *h);
static void on_wake(uv_async_t *h);
static int conn_request(struct relmd_conn_owner *o, struct relmd_conn *c, const char *line,
			size_t len, char **reply);
static void conn_runnable(struct relmd_conn_owner *o, struct relmd_conn *c, int runnable);
static void conn_closed(struct relmd_conn_owner *o, struct relmd_conn *c);
static int api_daemon_status(struct relmd_call *call, const cJSON *params, cJSON **result);
static int api_subscribe(struct relmd_call *call, const cJSON *params, cJSON **result);

int relmd_init(struct relmd *d, const struct relmd_config *cfg, const struct relmd_hooks *hooks)
{
	memset(d, 0, sizeof *d);
	d->cfg = *cfg;
	if (hooks)
		d->hooks = *hooks;
	d->lock_fd = -1;
	d->uid = geteuid();
	d->owner.loop = &d->loop;
	d->owner.events = &d->events;
	d->owner.request = conn_request;
	d->owner.runnable = conn_runnable;
	d->owner.closed = conn_closed;
	relmd_methods_init(&d->methods);
	relmd_methods_bind(&d->methods, "daemon.status", api_daemon_status, NULL);
	relmd_methods_bind(&d->methods, "subscribe", api_subscribe, NULL);
	int r = relmd_events_init(&d->events, cfg->event_retention ? cfg->event_retention
								 : RELMD_EVENT_RETENTION,
				  &d->hooks.events);
	if (r < 0)
		return r;
	r = uv_loop_init(&d->loop);
	if (r < 0) {
		relmd_events_clear(&d->events);
		return r;
	}
	/* the time blocked in epoll, so a turn's own time can be told from
	 * waiting (relmd_turns); only fails on an unknown option */
	uv_loop_configure(&d->loop, UV_METRICS_IDLE_TIME);
	/* These inits cannot fail on Linux for a valid loop (they allocate
	 * nothing); uv_async_init can (eventfd): checked. */
	uv_pipe_init(&d->loop, &d->listener, 0);
	uv_signal_init(&d->loop, &d->sig_term);
	uv_signal_init(&d->loop, &d->sig_int);
	uv_signal_init(&d->loop, &d->sig_hup);
	uv_prepare_init(&d->loop, &d->flush);
	uv_idle_init(&d->loop, &d->work);
	uv_timer_init(&d->loop, &d->grace);
	r = uv_async_init(&d->loop, &d->wake, on_wake);
	if (r < 0) {
		relmd_clear(d);
		return r;
	}
	d->start_hrtime = uv_hrtime();
	/* A client vanishing mid-write must be an EPIPE, not a dead daemon.
	 * Process-wide, but every program that links this wants it. */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static void close_all(struct relmd *d)
{
	close_handle((uv_handle_t *)&d->listener);
	close_handle((uv_handle_t *)&d->sig_term);
	close_handle((uv_handle_t *)&d->sig_int);
	close_handle((uv_handle_t *)&d->sig_hup);
	close_handle((uv_handle_t *)&d->flush);
	close_handle((uv_handle_t *)&d->work);
	close_handle((uv_handle_t *)&d->wake);
	close_handle((uv_handle_t *)&d->grace);
}

static void release_path(struct relmd *d)
{
	if (d->bound && d->cfg.socket_path[0]) {
		unlink(d->cfg.socket_path);
		d->bound = 0;
	}
	if (d->lock_fd >= 0) {
		close(d->lock_fd);    /* drops the flock */
		d->lock_fd = -1;
	}
}

int relmd_clear(struct relmd *d)
{
	for (struct relmd_conn *c = d->conns; c; c = c->next)
		relmd_conn_close(c);
	close_all(d);
	release_path(d);
	uv_run(&d->loop, UV_RUN_DEFAULT);    /* close callbacks */
	int r = uv_loop_close(&d->loop);
	if (r != 0)
		log_err("uv_loop_close: %s (a handle was leaked)", uv_strerror(r));
	relmd_events_clear(&d->events);
	return r;
}

/* ---- accept ---------------------------------------------------------------------- */

/* Is the peer a member of gid (primary or supplementary, as of connect)? */
static int peer_in_group(int fd, const struct ucred *cr, gid_t gid)
{
	if (cr->gid == gid)
		return 1;
	gid_t groups[256];
	socklen_t len = sizeof groups;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return 0;
	for (size_t i = 0; i < len / sizeof groups[0]; i++)
		if (groups[i] == gid)
			return 1;
	return 0;
}

static int peer_allowed(struct relmd *d, int fd, const struct ucred *cr)
{
	if (cr->uid == d->uid)
		return 1;
	if (d->cfg.group_access == 0 || !d->sock_path[0])
		return 0;
	struct stat st;
	if (stat(d->sock_path, &st) < 0)
		return 0;
	if (d->cfg.group_access < 0 && (st.st_mode & 0060) != 0060)
		return 0;
	return peer_in_group(fd, cr, st.st_gid);
}

static void refuse(struct relmd_conn *c, int err, const char *why)
{
	char *e = jsonrpc_error_line(NULL, JSONRPC_ENGINE_ERROR, why, relm_errname(err));
	if (e) {
		relmd_conn_refuse(c, e);
		cJSON_free(e);
	} else {
		relmd_conn_close(c);
	}
}

static void on_connection(uv_stream_t *server, int status)
{
	struct relmd *d = relmd_container_of(server, struct relmd, listener);
	if (status < 0) {
		log_warn("accept: %s", uv_strerror(status));
		return;
	}
	struct relmd_conn *c = relmd_conn_new(&d->owner, ++d->next_conn_id);
	if (!c) {
		log_err("accept: out of memory");
		return;
	}
	int r = uv_accept(server, (uv_stream_t *)&c->pipe);
	if (r < 0) {
		log_warn("accept: %s", uv_strerror(r));
		relmd_conn_close(c);
		return;
	}
	uv_os_fd_t fd;
	struct ucred cr;
	socklen_t crlen = sizeof cr;
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 || crlen != sizeof cr) {
		log_warn("client %llu: no peer credentials: closing", (unsigned long long)c->id);
		relmd_conn_close(c);
		return;
	}
	c->uid = cr.uid;
	c->gid = cr.gid;
	c->pid = cr.pid;
	if (d->state != RELMD_RUNNING) {
		refuse(c, RELM_ECLOSED, "relmd is shutting down");
		return;
	}
	if (!peer_allowed(d, fd, &cr)) {
		log_warn("client %llu: refused peer uid %u (pid %d): not our uid%s",
			 (unsigned long long)c->id, (unsigned)cr.uid, (int)cr.pid,
			 d->cfg.group_access ? " nor the socket's group" : "");
		refuse(c, RELM_EPERM, "permission denied");
		return;
	}
	if (d->nconns >= d->cfg.conn_max) {
		log_warn("client %llu: refused: %u connections (the limit)",
			 (unsigned long long)c->id, d->nconns);
		refuse(c, RELM_ELIMIT, "too many connections");
		return;
	}
	unsigned same = 0;
	for (struct relmd_conn *o = d->conns; o; o = o->next)
		same += o->uid == cr.uid;
	if (same >= d->cfg.conn_per_uid_max) {
		log_warn("client %llu: refused: uid %u has %u connections (the limit)",
			 (unsigned long long)c->id, (unsigned)cr.uid, same);
		refuse(c, RELM_ELIMIT, "too many connections for this user");
		return;
	}
	c->linked = 1;
	c->next = d->conns;
	if (d->conns)
		d->conns->prev = c;
	d->conns = c;
	d->nconns++;
	log_debug("client %llu: connected (uid %u, pid %d)", (unsigned long long)c->id,
		  (unsigned)cr.uid, (int)cr.pid);
	relmd_conn_start(c);
}

/* ---- per-turn work ----------------------------------------------------------------- */

/* ---- what connections call back ---------------------------------------------------- */

static int conn_request(struct relmd_conn_owner *o, struct relmd_conn *c, const char *line,
			size_t len, char **reply)
{
	struct relmd *d = relmd_container_of(o, struct relmd, owner);
	struct relmd_call_ctx cc = {
		.methods = &d->methods,
		.base = { .d = d, .conn = c },
	};
	return jsonrpc_process(line, len, relmd_methods_call, &cc, reply);
}

/* The work idle runs while any client has runnable requests. */
static void conn_runnable(struct relmd_conn_owner *o, struct relmd_conn *c, int want)
{
	struct relmd *d = relmd_container_of(o, struct relmd, owner);
	(void)c;
	if (want) {
		if (d->nqueued++ == 0)
			uv_idle_start(&d->work, on_work);
	} else {
		assert(d->nqueued > 0);
		if (--d->nqueued == 0)
			uv_idle_stop(&d->work);
	}
}

/* Idle: every client with runnable requests gets one more slice.  A
 * client's slice may close it (unlinking happens in the close callback, so
 * the list stays walkable). */
static void on_work(uv_idle_t *h)
{
	struct relmd *d = relmd_container_of(h, struct relmd, work);
	for (struct relmd_conn *c = d->conns; c; c = c->next)
		if (c->runnable)
			relmd_conn_process(c);
}

/* The end of a loop turn (the flush is the last thing before the poll):
 * its time is the time since the end of the previous one, less the time
 * the loop spent waiting in the kernel meanwhile. */
static void turn_end(struct relmd_turns *t, uv_loop_t *loop)
{
	uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(loop), cpu = 0;
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
		cpu = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	if (t->cpu_ns && cpu > t->cpu_ns && cpu - t->cpu_ns > t->max_cpu_ns)
		t->max_cpu_ns = cpu - t->cpu_ns;
	t->cpu_ns = cpu;

	if (t->end_ns) {
		uint64_t span = now - t->end_ns, waited = idle - t->idle_ns;
		uint64_t busy = span > waited ? span - waited : 0;
		t->count++;
		t->slow += busy > (uint64_t)RELMD_TURN_SLOW_MS * 1000000u;
		if (busy > t->max_ns) {
			t->max_ns = busy;
			t->max_commit_ns = t->commit_ns;
		}
	}
	t->commit_ns = 0;
	t->end_ns = now;
	t->idle_ns = idle;
}

/* Prepare (just before the loop polls): commit, then write.  Every reply
 * queued during this turn — by requests, timers, the mailbox — leaves only
 * after hooks.commit succeeded: persist before send, and batch (the
 * durability rule and group commit, proto/store.md §2, §3). */
static void on_flush(uv_prepare_t *h)
{
	struct relmd *d = relmd_container_of(h, struct relmd, flush);
	if (d->hooks.commit) {
		uint64_t t0 = uv_hrtime();
		int r = d->hooks.commit(d->hooks.ctx);
		d->turns.commit_ns = uv_hrtime() - t0;
		if (r == RELM_EDISKFULL) {
			/* The turn is lost, the daemon goes on (a full disk: the
			 * application refuses writes until it takes them again).
			 * No client is told that anything of it happened. */
			for (struct relmd_conn *c = d->conns; c; c = c->next)
				relmd_conn_retract_turn(c, "the store's disk is full: nothing of this was stored; "
							"retry when daemon.status says the store is ok",
							relm_errname(RELM_EDISKFULL));
		} else if (r < 0) {
			log_err("commit failed: %s; withholding replies and stopping",
				relm_strerror(r));
			for (struct relmd_conn *c = d->conns; c; c = c->next)
				relmd_conn_close(c);     /* queued replies are dropped unsent */
			relmd_stop(d, 1);
			return;
		}
	}
	for (struct relmd_conn *c = d->conns; c; c = c->next)
		relmd_conn_flush(c);
	turn_end(&d->turns, &d->loop);
}

/* ---- events ----------------------------------------------------------------------- */

int relmd_event_emit(struct relmd *d, const char *type, cJSON *fields)
{
	return relmd_event_publish(d, 0, type, fields, relmd_now_ms());
}

int relmd_event_publish(struct relmd *d, uint64_t seq, const char *type, cJSON *fields,
			uint64_t ts_ms)
{
	int r = seq ? relmd_events_emit_at(&d->events, seq, type, fields, ts_ms, NULL)
		    : relmd_events_emit(&d->events, type, fields, ts_ms, NULL);
	if (r < 0) {
		log_err("event %s dropped: %s", type, relm_strerror(r));
		return r;
	}
	relmd_event_deliver(d);
	return 0;
}

int relmd_event_wanted(const struct relmd *d, int type)
{
	if (!relmd_events_lazy(&d->events))
		return 1;
	for (const struct relmd_conn *c = d->conns; c; c = c->next)
		if (relmd_conn_wants(c, type))
			return 1;
	return 0;
}

int relmd_event_record(struct relmd *d, uint64_t seq, int type, uint64_t ts_ms,
		       char *line, size_t len)
{
	int r = relmd_events_put(&d->events, seq, type, ts_ms, line, len);
	if (r < 0)
		log_err("event %s dropped: %s", relm_event_name(type), relm_strerror(r));
	return r;
}

void relmd_event_deliver(struct relmd *d)
{
	/* A pump may close its subscriber; unlinking waits for the close
	 * callback, so the list stays walkable. */
	for (struct relmd_conn *c = d->conns; c; c = c->next)
		relmd_conn_pump(c);
}

/* ---- the methods the shell serves ------------------------------------------------------ */

static void read_only_add(void *actx, const uint8_t id[16])
{
	char hex[33];
	cJSON *s;

	relm_hex(hex, id, 16);
	if ((s = cJSON_CreateString(hex)) != NULL)
		cJSON_AddItemToArray(actx, s);
}

static int add_id(cJSON *o, const char *name, const uint8_t id[16])
{
	char hex[33];

	relm_hex(hex, id, 16);
	return cJSON_AddStringToObject(o, name, hex) != NULL;
}

static void strategy_add(void *actx, const struct relmd_strategy_status *s)
{
	cJSON *o = cJSON_CreateObject();

	if (!o || !add_id(o, "proton", s->proton) ||
	    !cJSON_AddStringToObject(o, "strategy", s->strategy) ||
	    (s->has_leader && !add_id(o, "leader", s->leader)) ||
	    (s->has_holder ? !add_id(o, "holder", s->holder) : !cJSON_AddNullToObject(o, "holder")) ||
	    !cJSON_AddBoolToObject(o, "sends", s->sends) ||
	    !cJSON_AddNumberToObject(o, "pending_requests", (double)s->pending_requests) ||
	    !cJSON_AddNumberToObject(o, "stateless_relationships", (double)s->stateless)) {
		cJSON_Delete(o);
		return;
	}
	cJSON_AddItemToArray(actx, o);
}

/* daemon.status `loop`, and a new window when asked (reset_loop). */
static int status_loop(struct relmd *d, const cJSON *params, cJSON *r)
{
	cJSON *lp = cJSON_AddObjectToObject(r, "loop");

	if (!lp || !cJSON_AddNumberToObject(lp, "turns", (double)d->turns.count) ||
	    !cJSON_AddNumberToObject(lp, "slow_turns", (double)d->turns.slow) ||
	    !cJSON_AddNumberToObject(lp, "max_turn_ms", (double)(d->turns.max_ns / 1000u) / 1e3) ||
	    !cJSON_AddNumberToObject(lp, "max_turn_commit_ms", (double)(d->turns.max_commit_ns / 1000u) / 1e3) ||
	    !cJSON_AddNumberToObject(lp, "max_turn_cpu_ms", (double)(d->turns.max_cpu_ns / 1000u) / 1e3))
		return RELM_ENOMEM;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(params, "reset_loop"))) {
		d->turns.count = d->turns.slow = d->turns.max_ns = d->turns.max_commit_ns = 0;
		d->turns.max_cpu_ns = 0;
	}
	return 0;
}

static int api_daemon_status(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct relmd *d = call->d;
	if (!d)
		return RELM_EINVAL;
	int protons = d->hooks.protons_count ? d->hooks.protons_count(d->hooks.ctx) : 0;
	int connected = 0;
	const char *addr = NULL;
	if (d->hooks.mailbox_status)
		d->hooks.mailbox_status(d->hooks.ctx, &connected, &addr);
	else
		addr = d->cfg.mailbox[0] ? d->cfg.mailbox :
		       d->cfg.serve_mailbox[0] ? d->cfg.serve_mailbox : NULL;
	cJSON *r = cJSON_CreateObject();
	cJSON *mb = cJSON_CreateObject();
	if (!r || !mb)
		goto nomem;
	cJSON_AddBoolToObject(mb, "connected", connected);
	if (addr)
		cJSON_AddStringToObject(mb, "address", addr);
	else
		cJSON_AddNullToObject(mb, "address");
	if (d->cfg.serve_mailbox[0])
		cJSON_AddStringToObject(mb, "serving", d->cfg.serve_mailbox);
	if (!cJSON_AddStringToObject(r, "version", RELMD_VERSION) ||
	    !cJSON_AddNumberToObject(r, "api", RELMD_API_VERSION) ||
	    !cJSON_AddNumberToObject(r, "protons", protons < 0 ? 0 : protons))
		goto nomem;
	cJSON_AddItemToObject(r, "mailbox", mb);
	mb = NULL;
	{
		cJSON *ro = cJSON_AddArrayToObject(r, "read_only_protons");
		if (!ro)
			goto nomem;
		if (d->hooks.read_only_protons)
			d->hooks.read_only_protons(d->hooks.ctx, read_only_add, ro);
	}
	{
		cJSON *sa = cJSON_AddArrayToObject(r, "strategies");
		if (!sa)
			goto nomem;
		if (d->hooks.strategies)
			d->hooks.strategies(d->hooks.ctx, strategy_add, sa);
	}
	{
		struct relmd_store_status ss = { "ok", 0, 0, 0 };
		if (d->hooks.store_status)
			d->hooks.store_status(d->hooks.ctx, &ss);
		if (!cJSON_AddStringToObject(r, "store_state", ss.state) ||
		    (ss.since_ms && !cJSON_AddNumberToObject(r, "store_state_since", (double)ss.since_ms)) ||
		    (ss.retry_ms && !cJSON_AddNumberToObject(r, "store_retry_at", (double)ss.retry_ms)) ||
		    !cJSON_AddNumberToObject(r, "corrupt_rows", ss.corrupt_rows))
			goto nomem;
	}
	if (!cJSON_AddNumberToObject(r, "uptime_s",
				     (double)((uv_hrtime() - d->start_hrtime) / 1000000000u)) ||
	    !cJSON_AddStringToObject(r, "store", d->cfg.store_path) ||
	    !cJSON_AddStringToObject(r, "socket", d->sock_path) ||
	    !cJSON_AddNumberToObject(r, "clients", d->nconns) ||
	    !cJSON_AddNumberToObject(r, "event_seq", (double)d->events.last_seq) ||
	    !cJSON_AddNumberToObject(r, "pid", (double)getpid()) ||
	    status_loop(d, params, r) != 0)
		goto nomem;
	*result = r;
	return 0;
nomem:
	cJSON_Delete(mb);
	cJSON_Delete(r);
	return RELM_ENOMEM;
}

static int api_subscribe(struct relmd_call *call, const cJSON *params, cJSON **result)
{
	struct relmd_conn *c = call->conn;
	if (!c || !call->d)
		return RELM_EINVAL;
	struct relmd_events *ev = &call->d->events;
	uint32_t mask = RELMD_EV_ALL;
	const cJSON *types = cJSON_GetObjectItemCaseSensitive(params, "events");
	if (types) {
		const cJSON *it;
		mask = 0;
		cJSON_ArrayForEach(it, types)
			mask |= 1u << relmd_event_type_index(it->valuestring);  /* validated */
	}
	const cJSON *since = cJSON_GetObjectItemCaseSensitive(params, "since");
	uint64_t oldest = relmd_events_oldest(ev);
	int gap = 0;
	uint64_t next = ev->last_seq + 1;
	if (since) {
		uint64_t s = (uint64_t)since->valuedouble;   /* validated: integer in [0, 2^53] */
		if (s > ev->last_seq) {
			/* The client saw seqs we never issued: this daemon's
			 * numbering restarted (no persistence).  Say so. */
			gap = 1;
		} else if (s + 1 < oldest) {
			gap = 1;
			next = oldest;
		} else {
			next = s + 1;
		}
	}
	cJSON *res = cJSON_CreateObject();
	if (!res || !cJSON_AddNumberToObject(res, "seq", (double)ev->last_seq) ||
	    !cJSON_AddNumberToObject(res, "oldest", (double)oldest) ||
	    !cJSON_AddNumberToObject(res, "replay", (double)(ev->last_seq + 1 - next)) ||
	    !cJSON_AddBoolToObject(res, "gap", gap)) {
		cJSON_Delete(res);
		return RELM_ENOMEM;
	}
	relmd_conn_subscribe(c, mask, next);
	/* The replay starts after this reply is queued (the connection pumps
	 * after each reply). */
	*result = res;
	return 0;
}

/* ---- listening ----------------------------------------------------------------------- */

/* Another relmd answering on path?  1 yes, 0 no (stale or absent), <0 on
 * an error that makes the path unusable. */
static int probe_socket(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		log_err("%s exists and is not a socket: refusing to replace it", path);
		return -EEXIST;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	int e = errno;
	close(fd);
	if (r == 0 || e == EAGAIN || e == EINPROGRESS)
		return 1;     /* a listener (EAGAIN: one with a full backlog) */
	if (e == ECONNREFUSED || e == ENOENT)
		return 0;
	return -e;
}

static int prepare_dir(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return 0;               /* relative, in the cwd */
	if (slash == dir)
		return 0;               /* in / */
	*slash = '\0';
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		int e = errno;
		log_err("cannot create socket folder %s: %s", dir, strerror(e));
		return -e;
	}
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_err("socket folder %s is not a directory", dir);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		log_err("socket folder %s belongs to uid %u, not to us", dir, (unsigned)st.st_uid);
		return -EPERM;
	}
	if ((st.st_mode & 0022) && !(st.st_mode & S_ISVTX)) {
		log_err("socket folder %s is writable by others (mode %03o)", dir,
			(unsigned)(st.st_mode & 0777));
		return -EPERM;
	}
	return 0;
}

static int listen_bind(struct relmd *d)
{
	const char *path = d->cfg.socket_path;
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
	if (!path[0]) {
		log_err("no socket path: XDG_RUNTIME_DIR is not set; pass --socket PATH");
		return -ENOENT;
	}
	if (strlen(path) >= max) {
		log_err("socket path is %zu bytes, longer than the %zu a Unix socket allows: %s",
			strlen(path), max - 1, path);
		return -ENAMETOOLONG;
	}
	int r = prepare_dir(path);
	if (r < 0)
		return r;

	/* The lock orders two relmd starting at once; the probe catches a
	 * live daemon that holds no lock (another version, another tool). */
	char lock[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	snprintf(lock, sizeof lock, "%s.lock", path);
	d->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (d->lock_fd < 0) {
		r = -errno;
		log_err("cannot open %s: %s", lock, strerror(-r));
		return r;
	}
	if (flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		close(d->lock_fd);
		d->lock_fd = -1;
		if (r == -EWOULDBLOCK) {
			log_err("another relmd is running on %s (%s is locked)", path, lock);
			return -EADDRINUSE;
		}
		log_err("cannot lock %s: %s", lock, strerror(-r));
		return r;
	}
	r = probe_socket(path);
	if (r == 1) {
		log_err("another relmd answers on %s: not starting", path);
		return -EADDRINUSE;
	}
	if (r < 0) {
		if (r != -EEXIST)
			log_err("cannot use %s: %s", path, strerror(-r));
		return r;
	}
	if (unlink(path) == 0)
		log_info("removed stale socket %s", path);

	mode_t old = umask(077);
	r = uv_pipe_bind(&d->listener, path);
	umask(old);
	if (r < 0) {
		log_err("cannot bind %s: %s", path, uv_strerror(r));
		return r;
	}
	d->bound = 1;
	snprintf(d->sock_path, sizeof d->sock_path, "%s", path);
	return 0;
}

static int listen_adopt(struct relmd *d)
{
	int fd = d->cfg.listen_fd, v = 0;
	socklen_t len = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0 || v != AF_UNIX) {
		log_err("socket fd %d from systemd is not an AF_UNIX socket", fd);
		return -EINVAL;
	}
	len = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0 || v != SOCK_STREAM) {
		log_err("socket fd %d from systemd is not a stream socket (ListenStream=)", fd);
		return -EINVAL;
	}
	int r = uv_pipe_open(&d->listener, fd);
	if (r < 0) {
		log_err("uv_pipe_open(%d): %s", fd, uv_strerror(r));
		return r;
	}
	size_t n = sizeof d->sock_path;
	if (uv_pipe_getsockname(&d->listener, d->sock_path, &n) < 0 || d->sock_path[0] == '\0')
		d->sock_path[0] = '\0';   /* abstract or unnamed: no group check */
	return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct relmd *d = h->data;
	if (signum == SIGHUP) {
		int r = log_reopen();
		if (r < 0)
			log_err("SIGHUP: reopening the log failed: %s", strerror(-r));
		else
			log_info("SIGHUP: logs reopened");
		if (d->hooks.reopen)
			d->hooks.reopen(d->hooks.ctx);
		return;
	}
	log_info("%s: shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	relmd_stop(d, 0);
}

int relmd_start(struct relmd *d)
{
	assert(d->state == RELMD_NONE);
	int r = d->cfg.listen_fd >= 0 ? listen_adopt(d) : listen_bind(d);
	if (r < 0)
		return r;
	r = uv_listen((uv_stream_t *)&d->listener, RELMD_BACKLOG, on_connection);
	if (r < 0) {
		log_err("listen on %s: %s", d->sock_path, uv_strerror(r));
		return r;
	}
	if (d->cfg.handle_signals) {
		d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
		if ((r = uv_signal_start(&d->sig_term, on_signal, SIGTERM)) < 0 ||
		    (r = uv_signal_start(&d->sig_int, on_signal, SIGINT)) < 0 ||
		    (r = uv_signal_start(&d->sig_hup, on_signal, SIGHUP)) < 0) {
			log_err("signals: %s", uv_strerror(r));
			return r;
		}
	}
	uv_prepare_start(&d->flush, on_flush);
	d->state = RELMD_RUNNING;
	if (d->hooks.start && (r = d->hooks.start(d, d->hooks.ctx)) < 0) {
		log_err("start hook failed: %s", relm_strerror(r));
		d->state = RELMD_NONE;
		return r;
	}
	log_info("relmd %s listening on %s%s", RELMD_VERSION,
		 d->sock_path[0] ? d->sock_path : "(systemd socket)",
		 d->cfg.listen_fd >= 0 ? " (socket activation)" : "");
	if (d->cfg.notify) {
		r = relmd_sd_notify("READY=1");
		if (r < 0)
			log_warn("sd_notify READY=1: %s", strerror(-r));
	}
	return 0;
}

/* ---- shutdown -------------------------------------------------------------------------- */

static void finish(struct relmd *d)
{
	if (d->state != RELMD_STOPPING || d->nconns)
		return;
	d->state = RELMD_STOPPED;
	if (d->hooks.commit && d->hooks.commit(d->hooks.ctx) < 0) {
		log_err("final commit failed");
		d->exit_code = 1;
	}
	if (d->hooks.stop)
		d->hooks.stop(d, d->hooks.ctx);
	close_all(d);
	log_info("stopped");
}

static void on_grace(uv_timer_t *h)
{
	struct relmd *d = relmd_container_of(h, struct relmd, grace);
	if (d->nconns)
		log_warn("%u clients did not read their last replies in %d ms: closing them",
			 d->nconns, RELMD_SHUTDOWN_GRACE_MS);
	for (struct relmd_conn *c = d->conns; c; c = c->next)
		relmd_conn_close(c);
}

static void conn_closed(struct relmd_conn_owner *o, struct relmd_conn *c)
{
	struct relmd *d = relmd_container_of(o, struct relmd, owner);
	if (c->linked) {
		if (c->prev)
			c->prev->next = c->next;
		else
			d->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		c->linked = 0;
		d->nconns--;
		log_debug("client %llu: closed", (unsigned long long)c->id);
	}
	finish(d);
}

void relmd_stop(struct relmd *d, int exit_code)
{
	if (d->state != RELMD_RUNNING && d->state != RELMD_NONE)
		return;
	if (d->state == RELMD_NONE) {
		d->exit_code = exit_code;
		close_all(d);
		d->state = RELMD_STOPPED;
		return;
	}
	d->state = RELMD_STOPPING;
	d->exit_code = exit_code;
	if (d->cfg.notify)
		relmd_sd_notify("STOPPING=1");
	close_handle((uv_handle_t *)&d->listener);
	release_path(d);
	/* Requests already running finished (handlers are synchronous);
	 * queued input is dropped, queued replies get the grace period. */
	for (struct relmd_conn *c = d->conns; c; c = c->next)
		relmd_conn_drain(c);
	if (d->nconns) {
		uv_timer_start(&d->grace, on_grace, RELMD_SHUTDOWN_GRACE_MS, 0);
	}
	finish(d);
}

static void on_wake(uv_async_t *h)
{
	struct relmd *d = relmd_container_of(h, struct relmd, wake);
	if (__atomic_load_n(&d->stop_requested, __ATOMIC_ACQUIRE))
		relmd_stop(d, 0);
}

void relmd_stop_async(struct relmd *d)
{
	__atomic_store_n(&d->stop_requested, 1, __ATOMIC_RELEASE);
	uv_async_send(&d->wake);
}

int relmd_run(struct relmd *d)
{
	uv_run(&d->loop, UV_RUN_DEFAULT);
	return d->exit_code;
}

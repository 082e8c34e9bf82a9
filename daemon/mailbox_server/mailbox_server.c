/*
 * mailbox_server.c — the mailbox protocol server (proto/mailbox.md) on
 * libuv: its lifecycle, the listener and its caps, the owner of the
 * connections (the requests they hand up: POST and LEASE here, the
 * subscriptions to mbs_subs.c), the group commit, what other instances
 * tell us through the store, and the timers.  See mailbox_server.h for the
 * contract and internal.h for how the files divide the work.
 *
 * Group commit: POSTs are gathered into a pending list and committed
 * together in a uv_prepare_t callback — at most one commit in the store at
 * a time, so a connection's acks keep its order — sorted by mailbox, so
 * seqs are assigned per mailbox in arrival order; only when the store says
 * the commit is durable are the POSTED acks queued and the mailboxes'
 * subscribers served (mbs_subs.c).  What one commit answers to one connection
 * (its POSTEDs, its DELIVERs) goes out in one write.
 */
#include "mailbox_server/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <sodium.h>

#include "crypto/crypto.h"
#include "error.h"
#include "log.h"

static void on_commit(uv_prepare_t *h);
static void maybe_done(struct relm_mbox_server *s);

/* ---- clock ---- */

static uint64_t real_now_ms(void *ctx)
{
	struct timeval tv;

	(void)ctx;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static uint64_t wall_ms(const struct relm_mbox_server *s)
{
	return s->cfg.now_ms(s->cfg.clock_ctx);
}

void relm_mbox_server_config_default(struct relm_mbox_server_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->retention_ms = (uint64_t)RELM_MBOX_RETENTION_DAYS * 86400000u;
	cfg->sweep_ms = RELM_MBOX_SWEEP_MS;
	cfg->max_conns = RELM_MBOX_MAX_CONNS;
	cfg->max_conns_per_addr = RELM_MBOX_MAX_CONNS_PER_ADDR;
	cfg->max_subs = RELM_MBOX_MAX_SUBS;
	cfg->max_subs_total = RELM_MBOX_MAX_SUBS_TOTAL;
	cfg->rate = RELM_MBOX_RATE;
	cfg->burst = RELM_MBOX_BURST;
	cfg->outq_max = RELM_MBOX_OUTQ_MAX;
	cfg->hello_timeout_ms = RELM_MBOX_HELLO_TIMEOUT_MS;
	cfg->frame_timeout_ms = RELM_MBOX_FRAME_TIMEOUT_MS;
	cfg->write_timeout_ms = RELM_MBOX_WRITE_TIMEOUT_MS;
	cfg->idle_timeout_ms = RELM_MBOX_IDLE_TIMEOUT_MS;
	cfg->now_ms = real_now_ms;
}

/* ---- mailbox ids ---- */

/* relm_ed25519_is_valid through the server's cache of valid ids. */
static int mailbox_is_valid(struct relm_mbox_server *s, const uint8_t mb[RELM_MBOX_ID_LEN])
{
	unsigned i = (mb[0] | (unsigned)mb[1] << 8) % MBS_VALID_IDS;

	if (s->valid_ids[i].used && memcmp(s->valid_ids[i].id, mb, RELM_MBOX_ID_LEN) == 0)
		return 1;
	if (!relm_ed25519_is_valid(mb))
		return 0;
	memcpy(s->valid_ids[i].id, mb, RELM_MBOX_ID_LEN);
	s->valid_ids[i].used = 1;
	return 1;
}

/* ---- group commit ---- */

static void commit_schedule(struct relm_mbox_server *s)
{
	if (!s->closing && !uv_is_active((uv_handle_t *)&s->commit))
		uv_prepare_start(&s->commit, on_commit);
}

/* Batch order by mailbox, then by arrival: one mailbox's posts are
 * contiguous and keep the order they were read in. */
static int post_cmp(const void *a, const void *b)
{
	const struct mbs_post *x = *(const struct mbs_post *const *)a;
	const struct mbs_post *y = *(const struct mbs_post *const *)b;
	int d = memcmp(x->mailbox, y->mailbox, RELM_MBOX_ID_LEN);

	if (d)
		return d;
	return x->ord < y->ord ? -1 : x->ord > y->ord;
}

static void on_committed(void *ctx, int rc)
{
	struct relm_mbox_server *s = ctx;
	struct mbs_post *batch = s->in_commit, *p, *next;
	size_t n = 0;

	mbs_hold(&s->owner);   /* each poster's acks and each subscriber's DELIVERs: one write */
	/* Acks strictly after the commit (the durability rule). */
	for (p = batch; p; p = p->next) {
		n++;
		if (!p->conn)
			continue;
		if (rc) {
			mbs_conn_error(p->conn, p->tag, RELM_MBOX_E_STORE, 0, "store write failed; retry");
		} else {
			struct relm_mbox_frame f;

			mbs_frame_init(p->conn, &f, RELM_MBOX_POSTED);
			f.u.posted.tag = p->tag;
			f.u.posted.seq = p->seq;
			mbs_conn_send(p->conn, &f);
		}
	}
	if (!rc) {
		s->stats.posts += n;
		mbs_fanout_commit(s, s->sorted, n);
	}
	mbs_release(&s->owner);
	s->in_commit = NULL;
	for (p = batch; p; p = next) {
		next = p->next;
		sodium_memzero(p->env, p->len);   /* not secret, but not ours to keep */
		free(p);
	}
	if (s->pend_head)
		commit_schedule(s);
	maybe_done(s);
}

static void on_commit(uv_prepare_t *h)
{
	struct relm_mbox_server *s = container_of(h, struct relm_mbox_server, commit);
	struct mbs_post *batch = s->pend_head, *p, **v;
	size_t n = 0;

	uv_prepare_stop(h);
	if (!batch || s->in_commit)
		return;    /* the store's answer schedules the next one */
	for (p = batch; p; p = p->next)
		p->ord = n++;
	if (n > s->sorted_cap) {
		v = realloc(s->sorted, n * sizeof(*v));
		if (!v) {
			commit_schedule(s);   /* try again next turn */
			return;
		}
		s->sorted = v;
		s->sorted_cap = n;
	}
	s->pend_head = NULL;
	s->pend_tail = &s->pend_head;
	s->in_commit = batch;
	v = s->sorted;
	for (p = batch; p; p = p->next)
		v[p->ord] = p;
	if (n > 1)
		qsort(v, n, sizeof(*v), post_cmp);
	s->store->ops->commit(s->store, v, n, wall_ms(s), on_committed, s);
}

/* ---- requests ---- */

static void handle_post(struct mbs_conn *c, const struct relm_mbox_post *p)
{
	struct relm_mbox_server *s = mbs_srv(c);
	struct mbs_post *pp;

	if (!mailbox_is_valid(s, p->mailbox)) {
		mbs_conn_error(c, p->tag, RELM_MBOX_E_BAD_MAILBOX, 0, "mailbox id is not an Ed25519 key");
		return;
	}
	pp = malloc(sizeof(*pp) + p->env_len);
	if (!pp) {
		mbs_conn_error(c, p->tag, RELM_MBOX_E_STORE, 0, "out of memory");
		return;
	}
	pp->next = NULL;
	pp->conn = c;
	pp->tag = p->tag;
	pp->seq = 0;
	memcpy(pp->mailbox, p->mailbox, RELM_MBOX_ID_LEN);
	pp->len = p->env_len;
	memcpy(pp->env, p->env, p->env_len);
	*s->pend_tail = pp;
	s->pend_tail = &pp->next;
	commit_schedule(s);
}

struct lease_op {
	struct mbs_conn *conn;
	struct mbs_lease_req req;
};

static void on_leased(void *ctx, int rc)
{
	struct lease_op *op = ctx;
	struct mbs_conn *c = op->conn;
	struct relm_mbox_server *s = mbs_srv(c);

	mbs_hold(&s->owner);
	if (!mbs_conn_live(c)) {
		/* gone meanwhile (it was READY when it asked): nothing to answer */
	} else if (rc) {
		mbs_conn_error(c, op->req.tag, RELM_MBOX_E_STORE, 0, "store write failed");
	} else {
		struct relm_mbox_frame f;

		mbs_frame_init(c, &f, RELM_MBOX_LEASE_RESULT);
		f.u.lease_result = op->req.res;
		mbs_conn_send(c, &f);
	}
	free(op);
	mbs_conn_unblock(c);
	mbs_conn_unref(c);
	mbs_release(&s->owner);
}

static void handle_lease(struct mbs_conn *c, const struct relm_mbox_lease *l)
{
	struct relm_mbox_server *s = mbs_srv(c);
	int release = sodium_is_zero(l->holder, RELM_MBOX_TOKEN_LEN);
	struct lease_op *op;
	int rc;

	if (release ? l->ttl_ms != 0 : (l->ttl_ms < 1 || l->ttl_ms > RELM_MBOX_LEASE_TTL_MAX_MS)) {
		mbs_conn_error(c, l->tag, RELM_MBOX_E_BAD_REQUEST, 0,
		               "ttl_ms must be 1..600000 to hold, 0 to release");
		return;
	}
	rc = relm_mbox_lease_verify(l, c->nonce);
	if (rc == RELM_EBADKEY) {
		mbs_conn_error(c, l->tag, RELM_MBOX_E_BAD_MAILBOX, 0, "mailbox id is not an Ed25519 key");
		return;
	}
	if (rc) {
		mbs_conn_error(c, l->tag, RELM_MBOX_E_BAD_SIGNATURE, 0,
		               "lease not signed by the mailbox key over this connection's nonce");
		return;
	}
	op = calloc(1, sizeof(*op));
	if (!op) {
		mbs_conn_error(c, l->tag, RELM_MBOX_E_STORE, 0, "out of memory");
		return;
	}
	op->conn = c;
	op->req.tag = l->tag;
	memcpy(op->req.mailbox, l->mailbox, RELM_MBOX_ID_LEN);
	memcpy(op->req.name, l->name, l->name_len);
	op->req.name_len = l->name_len;
	memcpy(op->req.expected, l->expected, RELM_MBOX_TOKEN_LEN);
	memcpy(op->req.holder, l->holder, RELM_MBOX_TOKEN_LEN);
	op->req.ttl_ms = l->ttl_ms;
	op->req.now = wall_ms(s);
	/* the answer comes before any later frame's */
	mbs_conn_ref(c);
	mbs_conn_block(c);
	s->store->ops->lease(s->store, &op->req, on_leased, op);
}

/* ---- what other instances committed ---- */

static void on_store_notify(void *ctx, const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t seq)
{
	struct relm_mbox_server *s = ctx;

	if (s->closing)
		return;
	mbs_hold(&s->owner);
	mbs_fanout_notify(s, mailbox, seq);
	mbs_release(&s->owner);
}

static void on_store_lost(void *ctx)
{
	struct relm_mbox_server *s = ctx;

	if (s->closing)
		return;
	mbs_hold(&s->owner);
	mbs_wake_all(s);
	mbs_release(&s->owner);
}

/* ---- connections: what they tell their owner (mbs_conn.h) ---- */

static void conn_request(struct mbs_conn_owner *o, struct mbs_conn *c, const struct relm_mbox_frame *f)
{
	(void)o;
	switch (f->type) {
	case RELM_MBOX_POST:            handle_post(c, &f->u.post); break;
	case RELM_MBOX_SUBSCRIBE:       mbs_handle_subscribe(c, &f->u.subscribe); break;
	case RELM_MBOX_SUBSCRIBE_BATCH: mbs_handle_sub_batch(c, &f->u.sub_batch); break;
	case RELM_MBOX_UNSUBSCRIBE:     mbs_handle_unsubscribe(c, &f->u.unsub); break;
	case RELM_MBOX_LEASE:           handle_lease(c, &f->u.lease); break;
	default:
		log_err("mailbox: a connection handed up frame type %u", (unsigned)f->type);
		abort();   /* mbs_conn.c hands up exactly the types above */
	}
}

static void conn_written(struct mbs_conn_owner *o, struct mbs_conn *c)
{
	(void)o;
	mbs_pump(c);
}

/* Its posts waiting for a commit are acknowledged to nobody. */
static void conn_closing(struct mbs_conn_owner *o, struct mbs_conn *c)
{
	struct relm_mbox_server *s = container_of(o, struct relm_mbox_server, owner);
	struct mbs_post *p;

	for (p = s->pend_head; p; p = p->next)
		if (p->conn == c)
			p->conn = NULL;
	for (p = s->in_commit; p; p = p->next)
		if (p->conn == c)
			p->conn = NULL;
}

static void conn_closed(struct mbs_conn_owner *o, struct mbs_conn *c)
{
	struct relm_mbox_server *s = container_of(o, struct relm_mbox_server, owner);

	mbs_subs_drop_all(c);
	s->stats.connections--;
}

static void conn_gone(struct mbs_conn_owner *o)
{
	maybe_done(container_of(o, struct relm_mbox_server, owner));
}


/* The key the per-address cap counts by: an IPv4 address as ::ffff:a.b.c.d,
 * an IPv6 address by its /64 (one subscriber usually holds a whole /64,
 * so per /128 would cap nothing). */
static void peer_key(uv_tcp_t *tcp, uint8_t key[16])
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	memset(key, 0, 16);
	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
	} else if (ss.ss_family == AF_INET6) {
		const uint8_t *a = ((struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
		static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

		memcpy(key, a, memcmp(a, v4mapped, 12) == 0 ? 16 : 8);
	}
}

/* Open connections from c's address, c included.  A walk of the list:
 * at most max_conns entries, once per accepted connection. */
static uint32_t conns_from(const struct relm_mbox_server *s, const struct mbs_conn *c)
{
	uint32_t n = 0;

	for (const struct mbs_conn *o = s->owner.conns; o; o = o->next)
		if (o->state != MBS_CONN_CLOSED && memcmp(o->addr, c->addr, 16) == 0)
			n++;
	return n;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct relm_mbox_server *s = container_of((uv_tcp_t *)server, struct relm_mbox_server, listener);
	struct mbs_conn *c;

	if (status < 0 || s->closing)
		return;
	c = mbs_conn_new(&s->owner);
	if (!c)
		return;   /* the pending connection stays in the backlog; retried on the next event */
	s->stats.connections++;
	s->stats.accepted++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		mbs_conn_close(c);
		return;
	}
	mbs_conn_accepted(c);
	uv_tcp_nodelay(&c->tcp, 1);
	if (s->stats.connections > s->cfg.max_conns) {
		mbs_conn_error(c, 0, RELM_MBOX_E_OVERLOADED, 1, "too many connections");   /* flushed: fatal */
		return;
	}
	peer_key(&c->tcp, c->addr);
	if (s->cfg.max_conns_per_addr && conns_from(s, c) > s->cfg.max_conns_per_addr) {
		mbs_conn_error(c, 0, RELM_MBOX_E_OVERLOADED, 1, "too many connections from this address");
		return;
	}
	if (mbs_conn_start(c) != 0)
		mbs_conn_close(c);
}

/* ---- timers ---- */

static void on_tick(uv_timer_t *t)
{
	struct relm_mbox_server *s = container_of(t, struct relm_mbox_server, tick);
	uint64_t now = uv_now(s->loop);
	struct mbs_conn *c, *next;

	mbs_hold(&s->owner);
	for (c = s->owner.conns; c; c = next) {
		next = c->next;
		if (c->state == MBS_CONN_CLOSED)
			continue;
		if (c->state == MBS_CONN_CLOSING) {
			if (now - c->closing_since > MBS_CLOSING_GRACE_MS)
				mbs_conn_close(c);
			continue;
		}
		if (c->outq && now - c->write_progress > s->cfg.write_timeout_ms) {
			log_info("mailbox: dropping a connection that reads nothing");
			mbs_conn_close(c);
		} else if (c->state == MBS_CONN_HELLO && now - c->accepted_at > s->cfg.hello_timeout_ms) {
			mbs_conn_error(c, 0, RELM_MBOX_E_TIMEOUT, 1, "no HELLO in time");
		} else if (c->reading && c->frame_started &&
		           now - c->frame_started > s->cfg.frame_timeout_ms) {
			mbs_conn_error(c, 0, RELM_MBOX_E_TIMEOUT, 1, "frame incomplete for too long");
		} else if (c->reading && now - c->last_rx > s->cfg.idle_timeout_ms) {
			mbs_conn_error(c, 0, RELM_MBOX_E_TIMEOUT, 1, "idle for too long");
		}
	}
	mbs_release(&s->owner);
}

static void on_swept(void *ctx, int rc)
{
	struct relm_mbox_server *s = ctx;

	s->sweeping = 0;
	s->sweep_rc = rc;
	log_debug("mailbox: sweep answered %d", rc);
	if (rc > 0) {
		s->stats.swept += (uint64_t)rc;
		log_info("mailbox: retention removed %d envelope(s)", rc);
	}
	maybe_done(s);
}

int relm_mbox_server_sweep(struct relm_mbox_server *s)
{
	uint64_t now = wall_ms(s);
	uint64_t cutoff = now > s->cfg.retention_ms ? now - s->cfg.retention_ms : 0;

	if (s->sweeping || s->closing)
		return 0;
	s->sweeping = 1;
	s->sweep_rc = 0;
	s->store->ops->sweep(s->store, cutoff, now, on_swept, s);
	return s->sweeping ? 0 : s->sweep_rc;
}

static void on_sweep(uv_timer_t *t)
{
	struct relm_mbox_server *s = container_of(t, struct relm_mbox_server, sweep);

	relm_mbox_server_sweep(s);
}

/* ---- lifecycle ---- */

static void on_store_closed(void *arg)
{
	struct relm_mbox_server *s = arg;

	s->store = NULL;
	s->store_closed = 1;
	maybe_done(s);
}

/* The last steps of relm_mbox_server_close: once every handle and every
 * connection has closed, close the store (which answers what it still
 * holds: the last connections go with those answers), then free s and
 * tell the caller. */
static void maybe_done(struct relm_mbox_server *s)
{
	void (*cb)(void *);
	void *arg;

	if (!s->closing || s->open_handles || s->stats.connections)
		return;
	if (s->store && !s->store_closing) {
		s->store_closing = 1;
		s->store->ops->close(s->store, on_store_closed, s);
		return;    /* s may be gone */
	}
	if (!s->store_closed || s->owner.conns || s->in_commit || s->sweeping)
		return;
	mbs_subtab_free(&s->subs);
	free(s->sorted);
	free(s->db);
	cb = s->close_cb;
	arg = s->close_arg;
	sodium_memzero(s, sizeof(*s));
	free(s);
	if (cb)
		cb(arg);
}

static void on_server_handle_closed(uv_handle_t *h)
{
	struct relm_mbox_server *s = h->data;

	s->open_handles--;
	maybe_done(s);
}

static int parse_host(struct sockaddr_storage *ss, const char *host, uint16_t port)
{
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	return RELM_EINVAL;
}

static void close_handles(struct relm_mbox_server *s)
{
	uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
	uv_close((uv_handle_t *)&s->tick, on_server_handle_closed);
	uv_close((uv_handle_t *)&s->sweep, on_server_handle_closed);
	uv_close((uv_handle_t *)&s->commit, on_server_handle_closed);
}

static int store_open(struct relm_mbox_server *s, const char *state_dir)
{
	struct mbs_store_events ev;

	if (!s->cfg.db) {
		if (!state_dir)
			return RELM_EINVAL;
		return mbs_store_sqlite_open(&s->store, state_dir);
	}
	if (!(s->db = strdup(s->cfg.db)))
		return RELM_ENOMEM;
	s->cfg.db = s->db;
	memset(&ev, 0, sizeof(ev));
	ev.ctx = s;
	ev.notify = on_store_notify;
	ev.lost = on_store_lost;
	return mbs_store_pg_open(&s->store, s->loop, s->db, &ev);
}

int relm_mbox_server_start(struct relm_mbox_server **out, uv_loop_t *loop,
                           const char *host, uint16_t port, const char *state_dir,
                           const struct relm_mbox_server_config *cfg)
{
	struct relm_mbox_server *s;
	struct sockaddr_storage ss;
	int namelen = sizeof(ss);
	int rc;

	if (relm_crypto_init() != 0)
		return RELM_EINVAL;
	memset(&ss, 0, sizeof(ss));
	if (parse_host(&ss, host, port) != 0)
		return RELM_EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return RELM_ENOMEM;
	s->loop = loop;
	if (cfg)
		s->cfg = *cfg;
	else
		relm_mbox_server_config_default(&s->cfg);
	if (!s->cfg.now_ms)
		s->cfg.now_ms = real_now_ms;
	if (!s->cfg.max_subs_total)
		s->cfg.max_subs_total = RELM_MBOX_MAX_SUBS_TOTAL;
	if (!s->cfg.rate || !s->cfg.burst || !s->cfg.max_subs || !s->cfg.outq_max ||
	    !s->cfg.sweep_ms || mbs_subtab_init(&s->subs) != 0) {
		mbs_subtab_free(&s->subs);
		free(s);
		return RELM_EINVAL;
	}
	s->pend_tail = &s->pend_head;

	rc = store_open(s, state_dir);
	if (rc) {
		mbs_subtab_free(&s->subs);
		free(s->db);
		free(s);
		return rc;
	}
	s->owner.loop = loop;
	s->owner.cfg = &s->cfg;
	memcpy(s->owner.realm, s->store->realm, RELM_MBOX_REALM_LEN);
	s->owner.stats = &s->stats;
	s->owner.request = conn_request;
	s->owner.written = conn_written;
	s->owner.closing = conn_closing;
	s->owner.closed = conn_closed;
	s->owner.gone = conn_gone;

	uv_tcp_init(loop, &s->listener);
	uv_timer_init(loop, &s->tick);
	uv_timer_init(loop, &s->sweep);
	uv_prepare_init(loop, &s->commit);
	s->listener.data = s->tick.data = s->sweep.data = s->commit.data = s;
	s->open_handles = 4;

	rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
	if (!rc)
		rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
	if (!rc)
		rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &namelen);
	if (rc) {
		/* Undo: close the handles, then the store; s is freed once they
		 * are closed, which happens on the caller's next loop run. */
		s->closing = 1;
		close_handles(s);
		return rc;
	}
	s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                         : ((struct sockaddr_in *)&ss)->sin_port);
	{
		uint32_t t = s->cfg.frame_timeout_ms < s->cfg.hello_timeout_ms ?
		             s->cfg.frame_timeout_ms : s->cfg.hello_timeout_ms;
		t /= 4;
		if (t < 10)
			t = 10;
		if (t > 1000)
			t = 1000;
		uv_timer_start(&s->tick, on_tick, t, t);
	}
	uv_timer_start(&s->sweep, on_sweep, 0, s->cfg.sweep_ms);
	log_info("mailbox: serving on %s:%u, %s store%s%s", host, (unsigned)s->port,
	         s->store->ops->name, s->cfg.db ? "" : " in ", s->cfg.db ? "" : state_dir);
	*out = s;
	return 0;
}

uint16_t relm_mbox_server_port(const struct relm_mbox_server *s)
{
	return s->port;
}

void relm_mbox_server_get_stats(const struct relm_mbox_server *s,
                                struct relm_mbox_server_stats *out)
{
	*out = s->stats;
}

void relm_mbox_server_close(struct relm_mbox_server *s, void (*cb)(void *arg), void *arg)
{
	struct mbs_post *p, *next;
	struct mbs_conn *c, *cn;

	if (s->closing)
		return;
	s->closing = 1;
	s->close_cb = cb;
	s->close_arg = arg;
	/* Uncommitted posts were never acknowledged: dropping them is safe,
	 * their clients resend. */
	for (p = s->pend_head; p; p = next) {
		next = p->next;
		free(p);
	}
	s->pend_head = NULL;
	s->pend_tail = &s->pend_head;
	for (c = s->owner.conns; c; c = cn) {
		cn = c->next;
		mbs_conn_close(c);
	}
	close_handles(s);
}

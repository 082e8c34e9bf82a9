/*
 * app.c — relmd's application (see app.h for the turn model): the store and
 * the engine bound to it, the mailbox clients (one per mailbox server we
 * post to or read from: federation), the embedded mailbox server, the
 * engine's timer, the outbox pump and the event publisher.  The store's
 * health (a full disk, damaged rows) is app_store.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>

#include "relmd/app_int.h"
#include "relmd/event_json.h"
#include "api/handlers.h"
#include "wire/addr.h"
#include "core/core.h"
#include "crypto/crypto.h"
#include "error.h"
#include "log.h"
#include "mailbox_client/mailbox_client.h"
#include "mailbox_server/mailbox_server.h"
#include "store/store.h"
#include "system_env.h"

static void app_fatal(struct relmd_app *app, const char *what, int rc)
{
	log_err("%s: %s — stopping (the store is unchanged since the last commit)",
		what, relm_strerror(rc));
	if (app->d)
		relmd_stop(app->d, 1);
}

/* A step of the turn failed.  A full disk is the commit's to handle (the
 * whole turn is lost: hook_commit); a damaged row of ours keeps that one
 * step from running, and is reported by the store; anything else stops. */
static void step_failed(struct relmd_app *app, const char *what, int rc)
{
	if (rc == RELM_EDISKFULL || (app->st && relm_store_error(app->st) == RELM_EDISKFULL)) {
		app->dirty = 1;
		return;
	}
	if (rc == RELM_EBADROW) {
		log_warn("%s: a row it needs is damaged; left for a repair", what);
		return;
	}
	app_fatal(app, what, rc);
}

/* Open the turn's batch before a write (idempotent): 0, RELM_EDISKFULL
 * while the disk is full, or the store's error. */
static int app_txn(struct relmd_app *app)
{
	int rc;
	if ((rc = relmd__store_writable(app)) != 0)
		return rc;
	if (app->batch)
		return 0;
	if ((rc = relm_store_batch_begin(app->st)) != 0)
		return rc;
	app->batch = 1;
	return 0;
}

/* Read mailbox id after the commit (our new ones: invites, relationships). */
static void relmd_app_watch_mailbox(struct relmd_app *app, const uint8_t id[32])
{
	if (app->nwatch == app->capwatch) {
		size_t cap = app->capwatch ? 2 * app->capwatch : 8;
		void *v = realloc(app->watch, cap * sizeof *app->watch);
		if (!v) {
			log_err("out of memory: mailbox not watched until restart");
			return;
		}
		app->watch = v;
		app->capwatch = cap;
	}
	memcpy(app->watch[app->nwatch++], id, 32);
	app->dirty = 1;
}

/* ---- mailbox clients --------------------------------------------------- */

static void on_state(void *arg, int connected, int reason)
{
	struct peer *p = arg;
	p->connected = connected;
	if (connected)
		log_info("mailbox %s: connected", p->hostport);
	else
		log_warn("mailbox %s: disconnected (%s); reconnecting", p->hostport, relm_strerror(reason));
}

static struct inflight *infl_at(struct peer *p, size_t i)
{
	return &p->q[(p->head + i) % p->cap];
}

static struct inflight *infl_push(struct peer *p)
{
	if (p->len == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 64;
		struct inflight *q = malloc(cap * sizeof *q);
		if (!q)
			return NULL;
		for (size_t i = 0; i < p->len; i++)
			q[i] = *infl_at(p, i);
		free(p->q);
		p->q = q;
		p->cap = cap;
		p->head = 0;
	}
	return &p->q[(p->head + p->len++) % p->cap];
}

/* Take the entry of post_id out of p's ring into *out.  0 or RELM_ENOTFOUND. */
static int infl_take(struct peer *p, uint64_t post_id, struct inflight *out)
{
	size_t lo = 0, hi = p->len;
	struct inflight *f;

	/* ids increase along the ring (taken ones keep their place as 0) */
	if (p->len && infl_at(p, 0)->post_id == post_id) {
		lo = 0;
	} else {
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2, j = mid;
			while (j < hi && !infl_at(p, j)->post_id)
				j++;
			if (j == hi) {
				hi = mid;
			} else if (infl_at(p, j)->post_id < post_id) {
				lo = j + 1;
			} else if (infl_at(p, j)->post_id > post_id) {
				hi = mid;
			} else {
				lo = j;
				break;
			}
		}
		if (lo >= p->len || infl_at(p, lo)->post_id != post_id)
			return RELM_ENOTFOUND;
	}
	f = infl_at(p, lo);
	*out = *f;
	f->post_id = 0;
	while (p->len && !infl_at(p, 0)->post_id) {
		p->head = (p->head + 1) % p->cap;
		p->len--;
	}
	return 0;
}

/* A post's seq is not recorded as posted (the disk is full, or the turn
 * is lost): it is posted again when the disk takes writes (at least once,
 * mailbox.md §5.1). */
static void repump(struct relmd_app *app, int64_t seq)
{
	if (!app->repump_from || seq < app->repump_from)
		app->repump_from = seq;
}

static void posted_recorded(struct relmd_app *app, int64_t seq)
{
	if (!app->turn_posted_min || seq < app->turn_posted_min)
		app->turn_posted_min = seq;
}

/* The acknowledgements gathered since the last flush, recorded as ONE
 * step of the turn's batch (relm_core_outbox_done_many): at saturation
 * the mailbox acknowledges hundreds of posts per turn, and a step each
 * cost a savepoint, its release and a copy of every page it touched.
 * Called before anything else of the turn writes after them — an
 * envelope (a receipt must find its message posted, as when each ack
 * was a step of its own), the timers — and before the commit.  If the
 * step fails for a reason of one row (a damaged one), they are recorded
 * one step each, so that the row holds back only its own. */
static void acks_flush(struct relmd_app *app)
{
	size_t n = app->nacks;
	int rc;

	if (!n)
		return;
	app->nacks = 0;
	if ((rc = app_txn(app)) == 0)
		rc = relm_core_outbox_done_many(app->core, app->acks, n);
	if (rc == 0) {
		for (size_t i = 0; i < n; i++)
			posted_recorded(app, app->acks[i].seq);
		return;
	}
	if (rc == RELM_EDISKFULL || relmd__store_writable(app) != 0 || relm_store_error(app->st)) {
		for (size_t i = 0; i < n; i++)
			repump(app, app->acks[i].seq);
		step_failed(app, "recording posted envelopes", rc);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct relm_core_ack *k = &app->acks[i];
		if ((rc = relm_core_outbox_done_many(app->core, k, 1)) != 0) {
			repump(app, k->seq);
			step_failed(app, "recording a posted envelope", rc);
			continue;
		}
		posted_recorded(app, k->seq);
	}
}

static void on_posted(void *arg, uint64_t post_id, const uint8_t mailbox[32], uint64_t seq, int err)
{
	struct peer *p = arg;
	struct relmd_app *app = p->app;
	struct relm_core_ack *k;
	struct inflight f;

	(void)mailbox;
	(void)seq;
	if (infl_take(p, post_id, &f) != 0)
		return;
	app->ninfl--;
	app->dirty = 1;   /* room in the window: pump more after the commit */
	if (relmd__store_writable(app) != 0) {
		repump(app, f.seq);       /* not recorded */
		return;
	}
	if (err)
		log_warn("mailbox %s refused outbox row %lld: %s (its message is marked failed)", p->hostport,
			 (long long)f.seq, relm_strerror(err));
	if (app->nacks == app->capacks) {
		size_t cap = app->capacks ? 2 * app->capacks : 64;
		void *v = realloc(app->acks, cap * sizeof *app->acks);
		if (!v) {
			/* no room for more: record those gathered, and reuse
			 * their room (none at all: posted again later) */
			acks_flush(app);
			if (!app->capacks) {
				repump(app, f.seq);
				return;
			}
		} else {
			app->acks = v;
			app->capacks = cap;
		}
	}
	k = &app->acks[app->nacks++];
	memset(k, 0, sizeof *k);
	k->seq = f.seq;
	memcpy(k->msg, f.msg, RELM_ID_LEN);
	memcpy(k->rel, f.rel, RELM_ID_LEN);
	k->has_msg = f.has_msg && f.has_rel;
	k->reason = err ? (err < 0 ? err : RELM_EPROTO) : 0;
}

static void on_deliver(void *arg, const uint8_t mailbox[32], uint64_t seq,
                       const uint8_t *env, size_t len)
{
	struct peer *p = arg;
	struct relmd_app *app = p->app;
	int rc;

	if (relmd__store_writable(app) != 0) {
		app->rewind = 1;          /* dropped unread: the mailbox delivers it again */
		return;
	}
	acks_flush(app);
	if ((rc = app_txn(app)) != 0 ||
	    (rc = relm_core_envelope(app->core, mailbox, seq, env, len)) != 0)
		step_failed(app, "processing an envelope", rc);
}

static void on_subscribed(void *arg, const uint8_t mailbox[32], int err, uint64_t head,
                          uint64_t oldest)
{
	struct peer *p = arg;
	char hex[65];
	(void)head;
	(void)oldest;
	if (err) {
		relm_hex(hex, mailbox, 32);
		log_warn("mailbox %s refused subscription to %.16s…: %s", p->hostport, hex,
			 relm_strerror(err));
	}
}

/* A mailbox's read key for a version 2 server (batched subscription,
 * proto/mailbox.md §5.7): from the mailbox's secret key, wiped at once. */
static int on_read_key(void *arg, const uint8_t mailbox[32], const uint8_t realm[RELM_MBOX_REALM_LEN],
                       uint8_t key[RELM_MBOX_READ_KEY_LEN])
{
	struct peer *p = arg;

	return relm_core_mailbox_read_key(p->app->core, mailbox, realm, key);
}

static struct peer *peer_get(struct relmd_app *app, const char *host, uint16_t port)
{
	char hp[RELMD_ADDR_MAX];
	struct relm_mbox_client_cbs cbs;
	struct relm_mbox_client_config cfg;
	struct peer *p;

	if (strchr(host, ':'))
		snprintf(hp, sizeof hp, "[%s]:%u", host, port);
	else
		snprintf(hp, sizeof hp, "%s:%u", host, port);
	for (size_t i = 0; i < app->npeers; i++)
		if (strcmp(app->peers[i]->hostport, hp) == 0)
			return app->peers[i];
	if (app->npeers == APP_PEERS_MAX || app->closing)
		return NULL;
	if (!(p = calloc(1, sizeof *p)))
		return NULL;
	p->app = app;
	snprintf(p->hostport, sizeof p->hostport, "%s", hp);
	memset(&cbs, 0, sizeof cbs);
	cbs.arg = p;
	cbs.state = on_state;
	cbs.posted = on_posted;
	cbs.deliver = on_deliver;
	cbs.subscribed = on_subscribed;
	cbs.read_key = on_read_key;
	relm_mbox_client_config_default(&cfg);
	cfg.turn_shared_ns = &app->mbox_turn_ns;     /* one frame budget a turn, all servers together */
	if (relm_mbox_client_new(&p->c, &app->d->loop, host, port, &cbs, &cfg) != 0) {
		free(p);
		return NULL;
	}
	app->peers[app->npeers++] = p;
	return p;
}

static int sub_sign(void *arg, uint8_t sig[RELM_SIG_LEN], const uint8_t *msg, size_t len)
{
	struct sub *s = arg;
	return relm_core_mailbox_sign(s->app->core, s->id, msg, len, sig);
}

static int subscribe(struct relmd_app *app, const uint8_t id[32], uint64_t cursor)
{
	uint64_t have;
	struct sub *s;

	if (!app->home)
		return RELM_ECLOSED;
	if (relm_mbox_client_cursor(app->home->c, id, &have) == 0)
		return 0;                  /* already reading it: never rewind */
	if (!(s = calloc(1, sizeof *s)))
		return RELM_ENOMEM;
	s->app = app;
	memcpy(s->id, id, 32);
	s->next = app->subs;
	app->subs = s;
	return relm_mbox_client_subscribe(app->home->c, id, cursor, NULL, sub_sign, s);
}

static int subscribe_cb(void *ctx, const uint8_t id[32], uint64_t cursor)
{
	int rc = subscribe(ctx, id, cursor);
	if (rc)
		log_warn("cannot read a mailbox: %s", relm_strerror(rc));
	return 0;
}

/* ---- after each commit --------------------------------------------------- */

struct pump_ctx {
	struct relmd_app *app;
	int stop;
};

static int pump_cb(void *ctx, const struct relm_store_outbox *o)
{
	struct pump_ctx *pc = ctx;
	struct relmd_app *app = pc->app;
	struct relm_addr a;
	struct peer *p;
	uint64_t post_id = 0;

	if (app->ninfl >= APP_INFLIGHT_MAX) {
		pc->stop = 1;
		return 1;
	}
	if (relm_addr_parse(&a, o->dest, strlen(o->dest)) != 0 || !a.has_id) {
		log_err("outbox row %lld has a bad destination; dropped", (long long)o->seq);
		app->outbox_after = o->seq;
		return 0;
	}
	if (!(p = peer_get(app, a.host, a.port))) {
		pc->stop = 1;
		return 1;
	}
	/* the slot first: a post the client has cannot be left untracked */
	struct inflight *f = infl_push(p);
	if (!f) {
		pc->stop = 1;
		return 1;
	}
	if (relm_mbox_client_post(p->c, a.id, o->bytes, o->len, &post_id) != 0) {
		p->len--;
		pc->stop = 1;
		return 1;
	}
	app->ninfl++;
	memset(f, 0, sizeof *f);
	f->post_id = post_id;
	f->seq = o->seq;
	memcpy(f->rel, o->rel, RELM_ID_LEN);
	memcpy(f->msg, o->msg_id, RELM_ID_LEN);
	f->has_rel = o->has_rel;
	f->has_msg = o->has_msg;
	app->outbox_after = o->seq;
	return 0;
}

static void pump(struct relmd_app *app)
{
	struct pump_ctx pc = { app, 0 };
	int rc;
	while (!pc.stop && app->ninfl < APP_INFLIGHT_MAX) {
		int64_t before = app->outbox_after;
		rc = relm_store_outbox_next(app->st, app->outbox_after, APP_PUMP_BATCH, pump_cb, &pc);
		if (rc < 0) {
			step_failed(app, "reading the outbox", rc);
			return;
		}
		if (app->outbox_after == before)
			break;
	}
}

/* Stop reading the mailboxes that are no longer ours (a removed device's
 * sibling sessions): whatever still arrives there is nobody's. */
static void unsubscribe_gone(struct relmd_app *app)
{
	uint64_t have;

	if (!app->home)
		return;
	for (struct sub *s = app->subs; s; s = s->next) {
		if (relm_mbox_client_cursor(app->home->c, s->id, &have) != 0)
			continue;                  /* not being read */
		if (relm_core_mailbox_ours(app->core, s->id) == RELM_ENOTFOUND)
			relm_mbox_client_unsubscribe(app->home->c, s->id);
	}
}

static int publish_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	struct relmd_app *app = ctx;
	char *line = NULL;
	size_t len = 0;

	app->events_last = seq;
	if (ev->type == RELM_EV_NONE)
		return 0;                   /* a type this build does not know */
	if (ev->type == RELM_EV_RELATIONSHIP_CREATED && (ev->has & RELM_EVF_REL)) {
		struct relm_store_rel sr;
		memset(&sr, 0, sizeof sr);
		if (relm_store_rel_get(app->st, ev->rel, &sr, 0) == 0)
			relmd_app_watch_mailbox(app, sr.mailbox_id);
		relm_store_rel_clear(&sr);
	}
	/* Nobody listening: keep seq/type/ts only; a later `subscribe {since}`
	 * builds the line through ev_load, from the same store rows (so does a
	 * subscriber's pump if building it here ran out of memory). */
	if (relmd_event_wanted(app->d, ev->type))
		line = relmd_event_json(app->st, seq, ts, ev, &len);
	relmd_event_record(app->d, (uint64_t)seq, ev->type, ts, line, len);
	app->published++;
	return 0;
}

static void on_timer(uv_timer_t *t);

static void arm_timer(struct relmd_app *app)
{
	uint64_t next = 0, now = relm__now(&app->env), delay = APP_TIMER_MAX_MS;
	if (app->closing || !app->timer_init)
		return;
	if (relm_store_next_deadline(app->st, &next) == 0 && next)
		delay = next > now ? next - now : 0;
	if (delay > APP_TIMER_MAX_MS)
		delay = APP_TIMER_MAX_MS;
	if (app->purge_more && delay > APP_PURGE_GAP_MS)
		delay = APP_PURGE_GAP_MS;           /* the outbox's next slice */
	uv_timer_start(&app->timer, on_timer, delay, 0);
}

static int hook_commit(void *ctx)
{
	struct relmd_app *app = ctx;
	size_t npeers;
	int rc;

	if (!app->batch && !app->dirty)
		return 0;
	if (relmd__store_writable(app) == 0) {
		acks_flush(app);
		/* rows found damaged this turn: their events join it */
		if (app->nqueue && ((rc = app_txn(app)) != 0 ||
		                    (rc = relmd__store_report_rows(app)) != 0) && relm_store_error(app->st))
			return relmd__store_failed(app, rc, "recording damaged rows");
		/* a step failed on a full disk with no batch to commit (its
		 * begin, or a read, met it) */
		if ((rc = relm_store_error(app->st)) != 0 && !app->batch)
			return relmd__store_failed(app, rc, "a step");
	}
	if (app->batch) {
		app->batch = 0;
		if ((rc = relm_store_batch_commit(app->st)) != 0) {
			log_err("commit failed: %s (%s)", relm_strerror(rc), relm_store_errmsg(app->st));
			return relmd__store_failed(app, rc, "commit");
		}
	}
	app->turn_posted_min = 0;
	app->dirty = 0;
	/* Durable now: tell subscribers, read new mailboxes, post, re-arm.
	 * The subscriptions and posts of this commit leave in one write per
	 * mailbox server (a client created meanwhile is not connected yet). */
	app->published = 0;
	if ((rc = relm_store_event_drain(app->st, app->events_last, publish_cb, app)) < 0)
		log_err("reading events: %s", relm_strerror(rc));
	/* Subscribers move only now: a replay may read the event log (ev_load),
	 * which must not happen inside the iteration above (one statement). */
	if (app->published)
		relmd_event_deliver(app->d);
	npeers = app->npeers;
	for (size_t i = 0; i < npeers; i++)
		relm_mbox_client_cork(app->peers[i]->c);
	/* A step made mailboxes no API call announced (a joined device's
	 * device mailbox, relationships and invites from a sibling's bulk
	 * state): read the ones not read yet, from their stored cursors. */
	if (relm_core_mailboxes_changed(app->core)) {
		if ((rc = relm_core_mailboxes(app->core, subscribe_cb, app)) != 0)
			log_warn("listing the mailboxes to read: %s (until a restart)", relm_strerror(rc));
		unsubscribe_gone(app);
	}
	for (size_t i = 0; i < app->nwatch; i++)
		subscribe(app, app->watch[i], 0);
	app->nwatch = 0;
	if (relmd__store_writable(app) == 0)
		pump(app);          /* while the disk is full, an ack could not be recorded */
	for (size_t i = 0; i < npeers; i++)
		relm_mbox_client_uncork(app->peers[i]->c);
	arm_timer(app);
	return 0;
}

/* An expired invite's mailbox: nobody reads it any more. */
static int unwatch_cb(void *ctx, const uint8_t id[32])
{
	struct relmd_app *app = ctx;
	if (app->home)
		relm_mbox_client_unsubscribe(app->home->c, id);
	return 0;
}

/* Once a minute: expired invites go, their secrets with them, and their
 * mailboxes are no longer read; so do pairing codes past their expiry
 * (proto/devices.md §12.8; their mailboxes leave the list at the next
 * restart).  0, or the failure (reported). */
static int expire_minutely(struct relmd_app *app)
{
	int n;

	if ((n = relm_core_invites_expire(app->core, unwatch_cb, app)) < 0) {
		step_failed(app, "deleting expired invites", n);
		return n;
	}
	if (n > 0)
		log_info("%d expired invite%s deleted", n, n == 1 ? "" : "s");
	if ((n = relm_core_pairings_expire(app->core)) < 0) {
		step_failed(app, "deleting expired pairings", n);
		return n;
	}
	return 0;
}

static void on_timer(uv_timer_t *t)
{
	struct relmd_app *app = t->data;
	uint64_t next = 0;
	int rc, n, minute;

	if (relmd__store_writable(app) != 0) {
		/* the deadlines are stored: app_resume runs them */
		uv_timer_start(&app->timer, on_timer, APP_TIMER_MAX_MS, 0);
		return;
	}
	acks_flush(app);
	if ((rc = app_txn(app)) != 0 || (rc = relm_core_tick(app->core, &next)) != 0) {
		step_failed(app, "running timers", rc);
		uv_timer_start(&app->timer, on_timer, APP_TIMER_MAX_MS, 0);
		return;
	}
	/* Posted outbox rows are done (the mailbox has them): they go once a
	 * minute (the first time at start), so the outbox does not grow for
	 * ever — a slice of APP_PURGE_SLICE per turn, every APP_PURGE_GAP_MS
	 * while rows remain: a minute's rows at once (60,000 at 1,000
	 * messages/s) made one loop turn of a tenth of a second, every reply
	 * and event waiting behind it. */
	minute = uv_now(&app->d->loop) >= app->purge_at;
	if (minute || app->purge_more) {
		if (minute)
			app->purge_at = uv_now(&app->d->loop) + APP_TIMER_MAX_MS;
		if ((rc = relm_store_begin(app->st)) != 0 ||
		    (n = relm_store_outbox_purge_posted(app->st, APP_PURGE_SLICE)) < 0 ||
		    (rc = relm_store_commit(app->st)) != 0) {
			if (!rc)
				relm_store_rollback(app->st);
			step_failed(app, "purging the outbox", rc ? rc : n);
			return;
		}
		app->purge_more = n == APP_PURGE_SLICE;
	}
	if (minute && expire_minutely(app) != 0)
		return;
	app->dirty = 1;
	/* the commit hook re-arms (the prepare handle runs next turn) */
	uv_timer_start(&app->timer, on_timer, app->purge_more ? APP_PURGE_GAP_MS : APP_TIMER_MAX_MS, 0);
}


/* A mailbox whose deliveries were dropped (or processed in a lost turn):
 * the client's cursor is past the stored one; subscribing again from the
 * stored cursor restarts it there (mailbox.md §5.2: deliveries of the
 * superseded subscription are ignored).  Few mailboxes move while the
 * disk is full, so the signer is a new one (the old stays on the list). */
static int rewind_cb(void *ctx, const uint8_t id[32], uint64_t cursor)
{
	struct relmd_app *app = ctx;
	uint64_t have = 0;
	struct sub *s;

	if (!app->home || relm_mbox_client_cursor(app->home->c, id, &have) != 0 || have <= cursor)
		return 0;
	if (!(s = calloc(1, sizeof *s)))
		return 0;                 /* read again after a restart */
	s->app = app;
	memcpy(s->id, id, 32);
	s->next = app->subs;
	app->subs = s;
	if (relm_mbox_client_subscribe(app->home->c, id, cursor, NULL, sub_sign, s) != 0)
		log_warn("cannot read a mailbox again from its stored cursor (until a restart)");
	return 0;
}

/* The store stopped refusing writes (app_store.c calls it): mailboxes
 * that were read meanwhile are read again from the stored cursors, posts
 * whose acknowledgement was not recorded are posted again, the timers
 * run. */
static void app_resume(struct relmd_app *app)
{
	int rc;

	if (app->rewind) {
		app->rewind = 0;
		if ((rc = relm_core_mailboxes(app->core, rewind_cb, app)) != 0)
			log_warn("rereading the mailboxes: %s (until a restart)", relm_strerror(rc));
	}
	if (app->repump_from && app->repump_from - 1 < app->outbox_after)
		app->outbox_after = app->repump_from - 1;
	app->repump_from = 0;
	if (app->timer_init)
		uv_timer_start(&app->timer, on_timer, 0, 0);
	app->dirty = 1;
}

/* ---- hooks --------------------------------------------------------------- */

static int hook_start(struct relmd *d, void *ctx)
{
	struct relmd_app *app = ctx;
	char host[256], dir[PATH_MAX + 16];
	int port, rc;

	app->d = d;
	if (app->cfg.serve_mailbox[0]) {
		if (relmd_addr_parse(app->cfg.serve_mailbox, host, sizeof host, &port) != 0)
			return RELM_EINVAL;
		snprintf(dir, sizeof dir, "%s/mailbox", app->cfg.state_dir);
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			log_err("mailbox folder %s: %s", dir, strerror(errno));
			return -errno;
		}
		if ((rc = relm_mbox_server_start(&app->server, &d->loop, host, (uint16_t)port, dir,
						 NULL)) != 0) {
			log_err("cannot serve the mailbox on %s: %s", app->cfg.serve_mailbox,
				relm_strerror(rc));
			return rc;
		}
		log_info("serving the mailbox on %s", app->cfg.serve_mailbox);
	}
	if (relmd_addr_parse(app->cfg.mailbox, host, sizeof host, &port) != 0)
		return RELM_EINVAL;
	if (!(app->home = peer_get(app, host, (uint16_t)port)))
		return RELM_ENOMEM;
	if ((rc = relm_core_mailboxes(app->core, subscribe_cb, app)) != 0)
		return rc;
	uv_timer_init(&d->loop, &app->timer);
	app->timer.data = app;
	app->timer_init = 1;
	relmd__store_start(app);
	relmd__lease_start(app);
	uv_timer_start(&app->timer, on_timer, 0, 0);   /* catch up on missed deadlines */
	{
		int64_t oldest = 0;
		relm_store_event_bounds(app->st, &oldest, &app->events_last);
	}
	pump(app);                                      /* committed before a crash, not posted */
	return 0;
}

static void closed_one(void *arg)
{
	struct relmd_app *app = arg;
	app->closes--;
}

static void timer_closed(uv_handle_t *h)
{
	closed_one(h->data);
}

static void hook_stop(struct relmd *d, void *ctx)
{
	struct relmd_app *app = ctx;
	(void)d;
	app->closing = 1;
	if (relmd__store_writable(app) == 0)
		acks_flush(app);
	if (app->batch) {
		int rc;
		app->batch = 0;
		if ((rc = relm_store_batch_commit(app->st)) != 0)
			log_err("final commit failed: %s", relm_strerror(rc));
	}
	if (app->timer_init) {
		app->closes++;
		uv_close((uv_handle_t *)&app->timer, timer_closed);
	}
	if (app->retry_init) {
		app->closes++;
		relmd__store_stop(app, timer_closed);
	}
	if (app->lease_init) {
		app->closes++;
		relmd__lease_stop(app, timer_closed);
	}
	for (size_t i = 0; i < app->npeers; i++) {
		app->closes++;
		relm_mbox_client_close(app->peers[i]->c, closed_one, app);
	}
	if (app->server) {
		app->closes++;
		relm_mbox_server_close(app->server, closed_one, app);
		app->server = NULL;
	}
}

static int count_cb(void *c, const struct relm_store_proton *pp)
{
	(void)pp;
	(*(int *)c)++;
	return 0;
}

struct ro_walk {
	struct relmd_app *app;
	void (*add)(void *actx, const uint8_t id[16]);
	void *actx;
};

static int ro_cb(void *ctx, const struct relm_store_proton *p)
{
	struct ro_walk *w = ctx;

	if (relm_core_proton_read_only(w->app->core, p->id) == 1)
		w->add(w->actx, p->id);
	return 0;
}

static int hook_read_only_protons(void *ctx, void (*add)(void *actx, const uint8_t id[16]), void *actx)
{
	struct ro_walk w = { ctx, add, actx };

	return relm_store_proton_list(w.app->st, ro_cb, &w);
}

struct strat_walk {
	struct relmd_app *app;
	void (*add)(void *actx, const struct relmd_strategy_status *s);
	void *actx;
};

static int strat_cb(void *ctx, const struct relm_store_proton *p)
{
	struct strat_walk *w = ctx;
	struct relmd_strategy_status s;
	struct relm_core_strategy cs;

	if (strcmp(p->strategy, "leaderless") == 0 ||
	    relm_core_strategy_get(w->app->core, p->id, &cs) != 0)
		return 0;
	memset(&s, 0, sizeof s);
	memcpy(s.proton, p->id, 16);
	s.strategy = relm_core_strategy_name(cs.strategy);
	s.has_leader = !sodium_is_zero(cs.pinned, 16);
	memcpy(s.leader, cs.pinned, 16);
	s.has_holder = !sodium_is_zero(cs.holder, 16);
	memcpy(s.holder, cs.holder, 16);
	s.sends = cs.sends;
	s.pending_requests = cs.pending_requests;
	s.stateless = cs.stateless;
	if (s.strategy)
		w->add(w->actx, &s);
	return 0;
}

static int hook_strategies(void *ctx, void (*add)(void *actx, const struct relmd_strategy_status *s),
                           void *actx)
{
	struct strat_walk w = { ctx, add, actx };

	return relm_store_proton_list(w.app->st, strat_cb, &w);
}

static int hook_protons_count(void *ctx)
{
	struct relmd_app *app = ctx;
	int n = 0;
	relm_store_proton_list(app->st, count_cb, &n);
	return n;
}

static void hook_mailbox_status(void *ctx, int *connected, const char **address)
{
	struct relmd_app *app = ctx;
	*connected = app->home && app->home->connected;
	*address = app->cfg.mailbox;
}

/* Events: the store's log numbers them (in the transaction that made them);
 * the shell's ring only caches.  Replays older than the ring come from here. */
static uint64_t ev_last_seq(void *ctx)
{
	struct relmd_app *app = ctx;
	int64_t oldest = 0, last = 0;
	relm_store_event_bounds(app->st, &oldest, &last);
	return last > 0 ? (uint64_t)last : 0;
}

struct ev_load {
	struct relmd_app *app;
	int64_t want;
	char *line;
	size_t len;
	int type;
};

static int ev_load_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	struct ev_load *l = ctx;
	if (seq != l->want)
		return 1;
	l->type = ev->type == RELM_EV_NONE ? -1 : ev->type;
	if (l->type >= 0)
		l->line = relmd_event_json(l->app->st, seq, ts, ev, &l->len);
	return 1;
}

static int ev_load(void *ctx, uint64_t seq, char **line, size_t *len, int *type)
{
	struct ev_load l = { ctx, (int64_t)seq, NULL, 0, -1 };
	int rc = relm_store_event_list(((struct relmd_app *)ctx)->st, (int64_t)seq - 1, 1, ev_load_cb, &l);
	if (rc < 0)
		return rc;
	if (!l.line)
		return RELM_ENOTFOUND;
	*line = l.line;
	*len = l.len;
	*type = l.type;
	return 0;
}

/* ---- the API handlers' backend (api/handlers.h) ---------------------------- */

static int api_txn(void *ctx)
{
	return app_txn(ctx);
}

static void api_watch_mailbox(void *ctx, const uint8_t id[32])
{
	relmd_app_watch_mailbox(ctx, id);
}

/* ---- life cycle ------------------------------------------------------------ */

int relmd_app_setup(struct relmd_app **out, const struct relmd_config *cfg,
                    struct relmd_hooks *hooks)
{
	struct relmd_app *app;
	struct relm_addr a;
	int rc;

	if ((rc = relm_crypto_init()) != 0)
		return rc;
	if (!(app = calloc(1, sizeof *app)))
		return RELM_ENOMEM;
	app->cfg = *cfg;
	app->resume = app_resume;
	app->txn = app_txn;
	app->step_failed = step_failed;
	relm_env_init_system(&app->env);
	if (cfg->clone_window_ms)
		app->env.params.clone_window_ms = cfg->clone_window_ms;
	if (cfg->heal_min_ms) {
		app->env.params.heal_min_ms = cfg->heal_min_ms;
		app->env.params.heal_max_ms = cfg->heal_max_ms;
	}
	/* Our mailboxes live on cfg->mailbox; normalise it as lib/wire/addr.h spells it. */
	if (relm_addr_parse(&a, cfg->mailbox, strlen(cfg->mailbox)) != 0 || a.has_id ||
	    relm_addr_format(app->mailbox_host, sizeof app->mailbox_host, &a) < 0) {
		log_err("--mailbox %s: not HOST:PORT", cfg->mailbox);
		free(app);
		return RELM_EINVAL;
	}
	if ((rc = relmd__store_open(app)) != 0) {
		free(app);
		return rc;
	}
	app->api.ctx = app;
	app->api.txn = api_txn;
	app->api.watch_mailbox = api_watch_mailbox;
	hooks->ctx = app;
	hooks->start = hook_start;
	hooks->stop = hook_stop;
	hooks->commit = hook_commit;
	hooks->protons_count = hook_protons_count;
	hooks->read_only_protons = hook_read_only_protons;
	hooks->strategies = hook_strategies;
	hooks->mailbox_status = hook_mailbox_status;
	hooks->store_status = relmd__store_status;
	hooks->events.ctx = app;
	hooks->events.save = NULL;          /* the store's log already has it */
	hooks->events.load = ev_load;
	hooks->events.last_seq = ev_last_seq;
	*out = app;
	return 0;
}

int relmd_app_bind(struct relmd_app *app, struct relmd *d)
{
	app->d = d;
	return relmd_api_bind(&d->methods, &app->api);
}

void relmd_app_free(struct relmd_app *app)
{
	if (!app)
		return;
	if (app->closes)
		log_warn("%d mailbox handles were still closing", app->closes);
	for (size_t i = 0; i < app->npeers; i++) {
		free(app->peers[i]->q);
		free(app->peers[i]);
	}
	while (app->subs) {
		struct sub *s = app->subs;
		app->subs = s->next;
		free(s);
	}
	free(app->watch);
	free(app->acks);
	free(app->bad);
	free(app->bad_queue);
	free(app->bad_reason);
	relmd__store_close(app);
	sodium_memzero(app, sizeof *app);
	free(app);
}

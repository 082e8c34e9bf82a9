/*
 * world.c — relm-sim-core's world (world.h): devices as relmd runs them,
 * the mailbox network, set-up and quiescence.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>
#include <sqlite3.h>
#include "util_rand.h"
#include "util_faultvfs.h"
#include "core/core.h"
#include "store/store.h"
#include "engine/rel.h"
#include "engine/rel_state.h"
#include "crypto/crypto.h"
#include "wire/addr.h"
#include "wire/circle.h"
#include "wire/invite.h"
#include "error.h"

#include "world.h"

/* ---- randomness and tracing ----------------------------------------------------------- */

uint64_t rnd(struct world *w)
{
	uint64_t x = w->rng;            /* xorshift64*: the schedule's own stream */
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	w->rng = x;
	return x * 0x2545f4914f6cdd1dull;
}

unsigned below(struct world *w, unsigned n)
{
	return n ? (unsigned)(rnd(w) % n) : 0;
}

void trace(struct world *w, const char *fmt, ...)
{
	va_list ap;

	if (!w->trace)
		return;
	printf("%10.3f ", (double)(w->clock - 1700000000000ull) / 1000.0);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* A violation: the first one is kept (with the schedule's seed, printed by main). */
int fail(struct world *w, const char *fmt, ...)
{
	va_list ap;

	if (w->why[0] || w->crashing)
		return -1;
	va_start(ap, fmt);
	vsnprintf(w->why, sizeof w->why, fmt, ap);
	va_end(ap);
	return -1;
}


const char *hex8(const uint8_t *id)
{
	static char ring[4][17];
	static int k;
	char *s = ring[k++ % 4];
	sodium_bin2hex(s, 17, id, 8);
	return s;
}

/* ---- devices: open, restart, remove ----------------------------------------------------- */

static const char *tmp_root(void)
{
	const char *t = getenv("TMPDIR");
	if (t && *t)
		return t;
	return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

int dev_open(struct world *w, struct dev *d)
{
	char errbuf[256] = "";
	struct relm_store_opts o = { .errbuf = errbuf, .errlen = sizeof errbuf, .vfs = TU_FAULTVFS_NAME };
	int rc;

	/* a restarted device draws from a fresh stream: the system's
	 * randomness never repeats, and a replayed stream would reuse ids,
	 * keys and nonces */
	tu_env_init_stream(&d->env, &w->clock, d->stream + d->restarts * 0x100000);
	if ((rc = relm_store_open(&d->st, d->path, &o)) != 0) {
		tu_env_free(&d->env);
		return fail(w, "%s: store open: %s (%s)", d->name, relm_strerror(rc), errbuf);
	}
	if ((rc = relm_core_new(&d->core, d->st, &d->env, "127.0.0.1:7427", RELM_MODE_TREE)) != 0) {
		relm_store_close(d->st);
		d->st = NULL;
		tu_env_free(&d->env);
		return fail(w, "%s: core: %s", d->name, relm_strerror(rc));
	}
	/* as relmd: a turn's copies leave as one bundle per sibling */
	if ((rc = relm_core_bundle(d->core, 1)) != 0)
		return fail(w, "%s: bundle: %s", d->name, relm_strerror(rc));
	d->outbox_after = 0;
	return 0;
}

void dev_close(struct dev *d)
{
	if (!d->st)
		return;
	relm_core_free(d->core);
	relm_store_close(d->st);
	tu_env_free(&d->env);
	d->core = NULL;
	d->st = NULL;
}

static int dev_make(struct world *w, struct dev *d, int side, int idx)
{
	memset(d, 0, sizeof *d);
	snprintf(d->name, sizeof d->name, "%c%d", side ? 'B' : 'A', idx + 1);
	snprintf(d->dir, sizeof d->dir, "%s/relm-sim-core-%s-XXXXXX", tmp_root(), d->name);
	if (!mkdtemp(d->dir))
		return fail(w, "mkdtemp %s failed", d->dir);
	snprintf(d->path, sizeof d->path, "%s/state/relm.db", d->dir);
	d->stream = w->seed * 16 + (uint64_t)(side * MAX_DEV + idx);
	return dev_open(w, d);
}

void dev_remove(struct dev *d)
{
	char cmd[320];

	dev_close(d);
	if (!d->dir[0])
		return;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "relm-sim-core: could not remove %s\n", d->dir);
	d->dir[0] = 0;
}

/* ---- the mailbox network: one append-only log per mailbox ------------------------------- */

static uint64_t last_seq(const struct world *w, const uint8_t mailbox[32])
{
	uint64_t s = 0;
	for (size_t i = 0; i < w->nmail; i++)
		if (memcmp(w->mail[i].mailbox, mailbox, 32) == 0 && w->mail[i].seq > s)
			s = w->mail[i].seq;
	return s;
}

struct row {
	int64_t seq;
	uint8_t rel[RELM_ID_LEN], msg[RELM_ID_LEN];
	int has_msg;
	struct relm_addr to;
	uint8_t *buf;
	size_t len;
};

struct rows {
	struct row *v;
	size_t n, cap;
};

static int row_cb(void *ctx, const struct relm_store_outbox *o)
{
	struct rows *r = ctx;
	struct row *x;

	if (r->n == r->cap) {
		void *v = realloc(r->v, (r->cap = r->cap ? 2 * r->cap : 32) * sizeof *r->v);
		if (!v)
			return RELM_ENOMEM;
		r->v = v;
	}
	x = &r->v[r->n];
	memset(x, 0, sizeof *x);
	if (relm_addr_parse(&x->to, o->dest, strlen(o->dest)) != 0 || !x->to.has_id)
		return RELM_EMALFORMED;
	if (!(x->buf = malloc(o->len ? o->len : 1)))
		return RELM_ENOMEM;
	memcpy(x->buf, o->bytes, o->len);
	x->len = o->len;
	x->seq = o->seq;
	memcpy(x->rel, o->rel, RELM_ID_LEN);
	memcpy(x->msg, o->msg_id, RELM_ID_LEN);
	x->has_msg = o->has_msg && o->has_rel;
	r->n++;
	return 0;
}

/* Post d's committed outbox rows: each lands in its mailbox's log with the
 * next seq, then the row is marked posted (a mailbox acks what it holds). */
int pump(struct world *w, struct dev *d)
{
	struct rows r = { 0 };
	int rc;

	if (d->away_until > w->clock)
		return 0;                        /* off line (strategy.c) */
	rc = relm_store_outbox_next(d->st, d->outbox_after, 0, row_cb, &r);

	for (size_t i = 0; rc == 0 && i < r.n; i++) {
		struct mail *m;
		if (w->nmail == w->capmail) {
			void *v = realloc(w->mail, (w->capmail = w->capmail ? 2 * w->capmail : 256) * sizeof *w->mail);
			if (!v) {
				rc = RELM_ENOMEM;
				break;
			}
			w->mail = v;
		}
		m = &w->mail[w->nmail];
		memcpy(m->mailbox, r.v[i].to.id, 32);
		m->seq = last_seq(w, m->mailbox) + 1;
		w->nmail++;
		m->buf = r.v[i].buf;
		m->len = r.v[i].len;
		r.v[i].buf = NULL;
		trace(w, "%s posts %zu bytes to %s #%llu", d->name, m->len, hex8(m->mailbox),
		      (unsigned long long)m->seq);
		rc = relm_core_outbox_posted(d->core, r.v[i].seq, r.v[i].msg, r.v[i].rel, r.v[i].has_msg);
		d->outbox_after = r.v[i].seq;
	}
	for (size_t i = 0; i < r.n; i++)
		free(r.v[i].buf);
	free(r.v);
	return rc == 0 ? 0 : fail(w, "%s: pump: %s", d->name, relm_strerror(rc));
}

struct hcount {
	size_t n;
};

static int hcount_cb(void *ctx, const struct relm_store_msg *m)
{
	struct hcount *h = ctx;
	h->n += strcmp(m->kind, "text") == 0;
	return 0;
}

/* --trace: the relationship's history and pending set on d after a step */
static void trace_rel(struct world *w, struct dev *d)
{
	struct relm_rel *rel = NULL;
	struct relm_rel_info *info = calloc(1, sizeof *info);
	struct hcount h = { 0 };

	if (info && relm_core_rel_load(d->core, w->rel, &rel) == 0) {
		relm_rel_describe(rel, info);
		relm_store_msg_list(d->st, w->rel, 0, 0, hcount_cb, &h);
		trace(w, "    %s: %zu messages, %u nodes, %u pending", d->name, h.n, info->nnodes, info->pending);
	}
	relm_rel_free(rel);
	free(info);
}

struct mboxes {
	uint8_t id[64][32];
	uint64_t cursor[64];
	size_t n;
};

static int mbox_cb(void *ctx, const uint8_t id[32], uint64_t cursor)
{
	struct mboxes *m = ctx;
	if (m->n == 64)
		return RELM_ELIMIT;
	memcpy(m->id[m->n], id, 32);
	m->cursor[m->n++] = cursor;
	return 0;
}

/* Read up to max envelopes (0: all) of d's mailboxes past their cursors,
 * mailbox by mailbox in seq order; only_one: one mailbox chosen at random.
 * Returns how many were read, or -1. */
int deliver(struct world *w, struct dev *d, size_t max, int only_one)
{
	struct mboxes mb;
	size_t k0 = 0, k1, got = 0;
	int rc;

	mb.n = 0;
	if (d->away_until > w->clock)
		return 0;                        /* off line (strategy.c) */
	if ((rc = relm_core_mailboxes(d->core, mbox_cb, &mb)) != 0)
		return fail(w, "%s: mailboxes: %s", d->name, relm_strerror(rc));
	k1 = mb.n;
	if (only_one && mb.n) {
		k0 = below(w, (unsigned)mb.n);
		k1 = k0 + 1;
	}
	for (size_t k = k0; k < k1; k++)
		for (uint64_t seq = mb.cursor[k] + 1;; seq++) {
			const struct mail *m = NULL;
			for (size_t i = 0; i < w->nmail && !m; i++)
				if (w->mail[i].seq == seq && memcmp(w->mail[i].mailbox, mb.id[k], 32) == 0)
					m = &w->mail[i];
			if (!m || (max && got == max))
				break;
			trace(w, "%s reads %s #%llu", d->name, hex8(m->mailbox), (unsigned long long)seq);
			if ((rc = relm_core_envelope(d->core, mb.id[k], seq, m->buf, m->len)) != 0)
				return fail(w, "%s: envelope %s #%llu: %s", d->name, hex8(m->mailbox),
				            (unsigned long long)seq, relm_strerror(rc));
			if (w->trace)
				trace_rel(w, d);
			got++;
		}
	return (int)got;
}

int tick(struct world *w, struct dev *d)
{
	uint64_t next = 0;
	int rc = relm_core_tick(d->core, &next);
	return rc == 0 ? 0 : fail(w, "%s: tick: %s", d->name, relm_strerror(rc));
}

/* ---- set-up: a relationship, then each side's other devices ------------------------------- */

/* Side s's devices 2…n: the first device's proton (with its IPK secret),
 * each with keys of its own; a circle at epoch 2 naming every device,
 * signed by the IPK, and the others as sibling rows on each; the
 * relationship and its mailbox cursor as the first device holds them. */
static int add_siblings(struct world *w, int s)
{
	struct dev *first = &w->dev[s][0];
	struct relm_store_proton p;
	struct relm_store_rel r;
	struct relm_store_device self[MAX_DEV];
	struct relm_circle *c = calloc(2, sizeof *c);
	uint8_t *buf = NULL, *signed_c = malloc(RELM_CIRCLE_MAX);
	uint64_t epoch = 0, cursor = 0;
	size_t len = 0;
	int n, rc = -1;

	if (!c || !signed_c)
		goto out;
	memset(&r, 0, sizeof r);
	if (relm_store_proton_get(first->st, w->proton[s], &p, RELM_STORE_WITH_SECRETS) != 0 ||
	    relm_store_circle_get(first->st, w->proton[s], &epoch, &buf, &len) != 0 ||
	    relm_circle_decode(&c[0], buf, len) != 0) {
		fail(w, "side %d: the first device's proton or circle cannot be read", s);
		goto out;
	}
	free(buf);
	buf = NULL;
	if (relm_store_device_get_self(first->st, w->proton[s], &self[0]) != 0) {
		fail(w, "side %d: no device row of its own", s);
		goto out;
	}
	for (int i = 1; i < w->n[s]; i++) {
		struct dev *d = &w->dev[s][i];
		uint8_t seed[32];

		if (dev_make(w, d, s, i) != 0)
			goto out;
		memset(&self[i], 0, sizeof self[i]);
		memcpy(self[i].proton, w->proton[s], RELM_ID_LEN);
		w->dev[s][i].env.random(w->dev[s][i].env.ctx, self[i].device, RELM_ID_LEN);
		snprintf(self[i].label, sizeof self[i].label, "%s", d->name);
		self[i].self = 1;
		w->dev[s][i].env.random(w->dev[s][i].env.ctx, seed, sizeof seed);
		relm_sign_keypair_from_seed(self[i].pk, self[i].sk, seed);
		sodium_memzero(seed, sizeof seed);
		self[i].has_sk = 1;
		self[i].epoch = 2;
		self[i].added = w->clock;
		if (relm_store_begin(d->st) != 0 || relm_store_proton_put(d->st, &p) != 0 ||
		    relm_store_device_put(d->st, &self[i]) != 0 || relm_store_commit(d->st) != 0 ||
		    relm_core_devices_upgrade(d->core) != 0 ||
		    relm_store_circle_get(d->st, w->proton[s], &epoch, &buf, &len) != 0 ||
		    relm_circle_decode(&c[1], buf, len) != 0) {
			fail(w, "%s: cannot make its device keys", d->name);
			goto out;
		}
		free(buf);
		buf = NULL;
		c[0].dev[i] = c[1].dev[0];
		c[0].dev[i].added = 2;
	}
	c[0].count = (uint32_t)w->n[s];
	c[0].epoch = 2;
	if ((n = relm_circle_sign(signed_c, RELM_CIRCLE_MAX, &c[0], p.isk)) <= 0) {
		fail(w, "side %d: the circle cannot be signed", s);
		goto out;
	}
	if (relm_store_rel_get(first->st, w->rel, &r, RELM_STORE_WITH_STATE | RELM_STORE_WITH_SECRETS) != 0 ||
	    relm_store_cursor_get(first->st, r.mailbox_id, &cursor) != 0) {
		fail(w, "side %d: the relationship cannot be read", s);
		goto out;
	}
	for (int i = 0; i < w->n[s]; i++) {
		struct dev *d = &w->dev[s][i];
		int ok = relm_store_begin(d->st) == 0 &&
		         relm_store_circle_put(d->st, w->proton[s], 2, signed_c, (size_t)n) == 0;
		for (int j = 0; ok && j < w->n[s]; j++) {
			struct relm_store_device row = self[j];
			if (j == i)
				continue;
			row.self = 0;
			row.has_sk = 0;
			memset(row.sk, 0, sizeof row.sk);
			ok = relm_store_device_put(d->st, &row) == 0;
			sodium_memzero(&row, sizeof row);
		}
		if (ok && i > 0)
			ok = relm_store_rel_put(d->st, &r) == 0 && relm_store_cursor_set(d->st, r.mailbox_id, cursor) == 0;
		if (!ok || relm_store_commit(d->st) != 0) {
			relm_store_rollback(d->st);
			fail(w, "%s: cannot take the circle and the relationship", d->name);
			goto out;
		}
	}
	rc = 0;
out:
	relm_store_rel_clear(&r);
	relm_store_proton_clear(&p);
	for (int i = 0; i < w->n[s] && i < MAX_DEV; i++)
		sodium_memzero(&self[i], sizeof self[i]);
	free(buf);
	free(signed_c);
	free(c);
	return rc;
}

/* Which ours private keys d holds on the relationship now (lib/core's
 * committed state, loaded as a step would). */
int note_keys(struct world *w, struct dev *d)
{
	struct relm_rel *rel = NULL;

	if (relm_core_rel_load(d->core, w->rel, &rel) != 0)
		return 0;                       /* not made yet (set-up) */
	for (size_t k = 0; k < d->nkeys; k++)
		d->keys[k].held = 0;
	for (uint32_t i = 0; i < rel->tree.count; i++) {
		const struct relm_node *n = &rel->tree.nodes[i];
		size_t k;
		if (!(n->flags & RELM_NODE_PRIV))
			continue;
		for (k = 0; k < d->nkeys; k++)
			if (memcmp(d->keys[k].pub, n->pub, RELM_KEY_LEN) == 0)
				break;
		if (k == d->nkeys) {
			if (d->nkeys == d->capkeys) {
				void *v = realloc(d->keys, (d->capkeys = d->capkeys ? 2 * d->capkeys : 16) * sizeof *d->keys);
				if (!v)
					abort();
				d->keys = v;
			}
			memcpy(d->keys[k].pub, n->pub, RELM_KEY_LEN);
			d->nkeys++;
		}
		memcpy(d->keys[k].priv, n->priv, RELM_KEY_LEN);
		d->keys[k].held = 1;
	}
	relm_rel_free(rel);
	return 0;
}

/* The signed prekeys of d's invites still held: the inviter's first
 * ratchet key is its invite's SPK, whose private half stays while the
 * invite lives (proto/ratchet.md §8.4), so it is not one the step wiped. */
int invite_keys(struct dev *d)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(relm__store_db(d->st), "SELECT spk_priv FROM invites", -1, &q, NULL);

	while (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) {
		const void *priv = sqlite3_column_blob(q, 0);
		if (!priv || sqlite3_column_bytes(q, 0) != RELM_KEY_LEN)
			continue;
		for (size_t k = 0; k < d->nkeys; k++)
			if (!d->keys[k].held && sodium_memcmp(d->keys[k].priv, priv, RELM_KEY_LEN) == 0)
				d->keys[k].held = 2;           /* kept by its invite */
	}
	sqlite3_finalize(q);
	return rc == SQLITE_OK ? 0 : -1;
}

/* After the device closed (SQLite checkpoints and removes the WAL): no
 * private key it no longer holds is anywhere in its store file. */
int check_wiped(struct world *w, struct dev *d)
{
	FILE *f = fopen(d->path, "rb");
	uint8_t *buf = NULL;
	long len = 0;
	int rc = 0;

	if (!f)
		return fail(w, "%s: cannot read %s", d->name, d->path);
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
	    !(buf = malloc((size_t)len + 1)) || fread(buf, 1, (size_t)len, f) != (size_t)len)
		rc = fail(w, "%s: cannot read %s", d->name, d->path);
	fclose(f);
	for (size_t k = 0; rc == 0 && k < d->nkeys; k++) {
		const uint8_t *at;
		if (!d->keys[k].held && (at = memmem(buf, (size_t)len, d->keys[k].priv, RELM_KEY_LEN)))
			rc = fail(w, "forward secrecy: %s's store file still holds the private key of %s, "
			          "which its state no longer does (offset %ld of %s)", d->name, hex8(d->keys[k].pub),
			          (long)(at - buf), d->path);
	}
	if (buf)
		sodium_memzero(buf, (size_t)len);       /* the file holds the device's live keys */
	free(buf);
	return rc;
}

/* Everything posted, read and ticked until nothing moves: rounds of pump /
 * deliver on every device, the clock moving step_ms between rounds. */
int settle(struct world *w, int rounds, uint64_t step_ms)
{
	for (int k = 0; k < rounds; k++) {
		for (int inner = 0; inner < 30; inner++) {
			size_t before = w->nmail;
			int got = 0;
			for (int s = 0; s < 2; s++)
				for (int i = 0; i < w->n[s] && w->dev[s][i].st; i++)
					if (pump(w, &w->dev[s][i]) != 0)
						return -1;
			for (int s = 0; s < 2; s++)
				for (int i = 0; i < w->n[s] && w->dev[s][i].st; i++) {
					int g = deliver(w, &w->dev[s][i], 0, 0);
					if (g < 0 || note_keys(w, &w->dev[s][i]) != 0)
						return -1;
					got += g;
				}
			if (w->nmail == before && !got)
				break;
		}
		w->clock += step_ms;
		for (int s = 0; s < 2; s++)
			for (int i = 0; i < w->n[s] && w->dev[s][i].st; i++)
				if (tick(w, &w->dev[s][i]) != 0 || strat_period(w, s, i) != 0 ||
				    note_keys(w, &w->dev[s][i]) != 0)
					return -1;
	}
	return 0;
}

/* --trace: a device's events other than the message ones */
int ev_cb(void *ctx, int64_t seq, uint64_t ts, const struct relm_event *ev)
{
	(void)ctx;
	(void)ts;
	if (ev->type != RELM_EV_MESSAGE_RECEIVED && ev->type != RELM_EV_MESSAGE_SENT &&
	    ev->type != RELM_EV_MESSAGE_STATUS)
		printf("  event %lld %s code %s reason %s\n", (long long)seq, relm_event_name(ev->type),
		       relm_errname(ev->code), ev->reason ? ev->reason : "");
	return 0;
}

/* Each device's outgoing_count is count(*) of its outgoing rows, per
 * relationship (lib/store keeps it through every write, rollback and
 * crash; store.md §4): 0, or fail. */
static int counts_exact(struct world *w)
{
	static const char sql[] =
		"SELECT (SELECT count(*) FROM relationships r LEFT JOIN outgoing_count c ON c.rel=r.id"
		"  WHERE coalesce(c.n,0) != (SELECT count(*) FROM outgoing o WHERE o.rel=r.id))"
		" + (SELECT count(*) FROM outgoing_count c WHERE NOT EXISTS"
		"  (SELECT 1 FROM relationships r WHERE r.id=c.rel))";

	for (int s = 0; s < 2; s++)
		for (int i = 0; i < w->n[s]; i++) {
			sqlite3_stmt *q = NULL;
			int bad = -1;
			if (sqlite3_prepare_v2(relm__store_db(w->dev[s][i].st), sql, -1, &q, NULL) == SQLITE_OK &&
			    sqlite3_step(q) == SQLITE_ROW)
				bad = sqlite3_column_int(q, 0);
			sqlite3_finalize(q);
			if (bad != 0)
				return fail(w, "%s: outgoing_count differs from its rows (%d relationships)",
				            w->dev[s][i].name, bad);
		}
	return 0;
}

/* Settle until nothing is in flight: no device holds an unreceipted
 * message (its outgoing rows) and a round moves no mail — at most about
 * six hours of virtual time, in growing steps, so retransmission and
 * takeover timers (minutes) run out as they would. */
int quiesce(struct world *w)
{
	strat_all_back(w);
	for (int k = 0; k < 60; k++) {
		uint64_t left = 0;
		size_t before = w->nmail;
		if (settle(w, 5, k < 10 ? 3000 : 60000) != 0)
			return -1;
		for (int s = 0; s < 2; s++)
			for (int i = 0; i < w->n[s]; i++) {
				uint64_t n = 0, pend = 0;
				if (relm_store_outgoing_count(w->dev[s][i].st, w->rel, &n) != 0 ||
				    relm_store_request_count(w->dev[s][i].st, w->proton[s], &pend) != 0)
					return fail(w, "%s: outgoing count", w->dev[s][i].name);
				left += n + pend;
			}
		if (!left && w->nmail == before)
			return counts_exact(w);
	}
	return counts_exact(w);  /* the checks say what did not settle */
}

int setup(struct world *w)
{
	char inv[RELM_INVITE_TEXT_MAX];
	uint8_t ipk[32], rel_a[RELM_ID_LEN];
	struct relm_rel *rel = NULL;

	for (int s = 0; s < 2; s++) {
		if (dev_make(w, &w->dev[s][0], s, 0) != 0)
			return -1;
		TRY(w, relm_core_proton_create(w->dev[s][0].core, s ? "B" : "A", w->proton[s], ipk));
	}
	TRY(w, relm_core_invite_create(w->dev[0][0].core, w->proton[0], 0, 0, inv, sizeof inv, NULL));
	TRY(w, relm_core_invite_accept(w->dev[1][0].core, w->proton[1], inv, strlen(inv), "A", w->rel));
	if (settle(w, 6, 3000) != 0)
		return -1;
	/* both ends name the relationship alike */
	memcpy(rel_a, w->rel, RELM_ID_LEN);
	if (relm_core_rel_load(w->dev[0][0].core, rel_a, &rel) != 0) {
		if (w->trace)
			relm_store_event_list(w->dev[0][0].st, 0, 0, ev_cb, NULL);
		return fail(w, "%s never made the relationship its invite's hello opens", w->dev[0][0].name);
	}
	relm_rel_free(rel);
	for (int s = 0; s < 2; s++)
		if (w->n[s] > 1 && add_siblings(w, s) != 0)
			return -1;
	return w->strategy ? strat_start(w) : 0;
}

/* ---- what the schedule does ------------------------------------------------------------ */

int user_send(struct world *w, int s, int i)
{
	struct sent *x;
	char body[48];
	int was_new = 0;

	if (w->nsent == MAX_SENT)
		return 0;
	x = &w->sent[w->nsent];
	snprintf(body, sizeof body, "%s says %zu", w->dev[s][i].name, w->nsent);
	TRY(w, relm_core_message_send(w->dev[s][i].core, w->rel, body, strlen(body), NULL, x->id, &was_new));
	x->side = s;
	x->dev = i;
	w->nsent++;
	trace(w, "%s: user sends %s", w->dev[s][i].name, hex8(x->id));
	return 0;
}

int restart(struct world *w, struct dev *d)
{
	trace(w, "%s restarts from its store", d->name);
	dev_close(d);
	d->restarts++;
	return dev_open(w, d);
}


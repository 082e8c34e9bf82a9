/*
 * scale_pair.c — bench_scale's two daemons and the mailbox network between
 * them (scale_pair.h): what both the build of the stores (scale_build.c)
 * and the measurements (bench_scale.c) drive.  No mailbox server: an
 * outbox row of one daemon is handed to the other's core at the next
 * position of its mailbox, as a server would.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <sodium.h>
#include "wire/addr.h"
#include "core/core.h"
#include "engine/env.h"
#include "error.h"
#include "store/store.h"
#include "scale_pair.h"

/* ---- small helpers ------------------------------------------------------- */

uint64_t g_clock = 1700000000000ull;
unsigned g_open_flags;

void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "bench_scale: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void env_random(void *ctx, uint8_t *buf, size_t len)
{
	(void)ctx;
	randombytes_buf(buf, len);
}

uint64_t env_now(void *ctx)
{
	(void)ctx;
	return g_clock;
}

void mkdir_p(const char *path, mode_t last_mode)
{
	char p[4096];
	snprintf(p, sizeof p, "%s", path);
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			if (mkdir(p, 0755) != 0 && errno != EEXIST)
				die("mkdir %s: %s", p, strerror(errno));
			*s = '/';
		}
	if (mkdir(p, last_mode) != 0 && errno != EEXIST)
		die("mkdir %s: %s", p, strerror(errno));
	chmod(p, last_mode);
}

/* ---- a daemon: store + core + env ------------------------------------------ */

static int first_proton_cb(void *ctx, const struct relm_store_proton *p)
{
	memcpy(ctx, p->id, RELM_ID_LEN);
	return 1;
}

void daemon_open(struct daemon *d)
{
	char errbuf[256] = "";
	struct relm_store_opts o = { .errbuf = errbuf, .errlen = sizeof errbuf };
	int rc;

	memset(&d->env, 0, sizeof d->env);
	d->env.random = env_random;
	d->env.now_ms = env_now;
	relm_params_default(&d->env.params);
	if ((rc = relm_store_open(&d->st, d->path, &o)) != 0)
		die("open %s: %s (%s)", d->path, relm_strerror(rc), errbuf);
	CHECK(relm_core_new(&d->core, d->st, &d->env, d->host, RELM_MODE_TREE));
	memset(d->proton, 0, sizeof d->proton);
	rc = relm_store_proton_list(d->st, first_proton_cb, d->proton);
	if (rc < 0)
		die("proton list: %s", relm_strerror(rc));
}

void daemon_close(struct daemon *d)
{
	relm_core_free(d->core);
	relm_store_close(d->st);
	d->core = NULL;
	d->st = NULL;
}

void daemon_init(struct daemon *d, const char *base, const char *name, const char *host)
{
	memset(d, 0, sizeof *d);
	snprintf(d->dir, sizeof d->dir, "%s/%s", base, name);
	snprintf(d->path, sizeof d->path, "%s/relm.db", d->dir);
	d->host = host;
}

/* ---- the mailbox network: outbox rows of one daemon into the other ------- */

int orow_cb(void *ctx, const struct relm_store_outbox *o)
{
	struct orows *l = ctx;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		if (!(l->v = realloc(l->v, l->cap * sizeof *l->v)))
			die("out of memory");
	}
	struct orow *r = &l->v[l->n++];
	r->seq = o->seq;
	memcpy(r->rel, o->rel, RELM_ID_LEN);
	memcpy(r->msg, o->msg_id, RELM_ID_LEN);
	r->has_rel = o->has_rel;
	r->has_msg = o->has_msg;
	snprintf(r->dest, sizeof r->dest, "%s", o->dest);
	if (!(r->buf = malloc(o->len ? o->len : 1)))
		die("out of memory");
	memcpy(r->buf, o->bytes, o->len);
	r->len = o->len;
	return 0;
}

void orows_free(struct orows *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].buf);
	free(l->v);
	memset(l, 0, sizeof *l);
}

/* Deliver one envelope to `to` on `mailbox` at the next position, as a
 * mailbox server would (positions per mailbox, past the stored cursor). */
void deliver(struct daemon *to, const uint8_t mailbox[RELM_SIGN_PK_LEN],
                    const uint8_t *buf, size_t len)
{
	uint64_t cursor = 0;
	CHECK(relm_store_cursor_get(to->st, mailbox, &cursor));
	CHECK(relm_core_envelope(to->core, mailbox, cursor + 1, buf, len));
}

/* Post every queued outbox row of `from` to `to`.  Returns how many. */
size_t pump(struct daemon *from, struct daemon *to)
{
	struct orows l = { 0 };
	CHECK(relm_store_outbox_next(from->st, 0, 0, orow_cb, &l));
	for (size_t i = 0; i < l.n; i++) {
		struct orow *r = &l.v[i];
		struct relm_addr a;
		if (relm_addr_parse(&a, r->dest, strlen(r->dest)) != 0 || !a.has_id)
			die("outbox row with a bad destination: %s", r->dest);
		deliver(to, a.id, r->buf, r->len);
		CHECK(relm_core_outbox_posted(from->core, r->seq, r->msg, r->rel, r->has_msg && r->has_rel));
	}
	size_t n = l.n;
	orows_free(&l);
	return n;
}

/* Run every timer due now (relm_core_tick handles up to 256 per call). */
void tick_all(struct daemon *d)
{
	uint64_t next = 0;
	do
		CHECK(relm_core_tick(d->core, &next));
	while (next && next <= g_clock);
}

/* Delete posted outbox rows, as relmd does. */
void purge(struct daemon *d)
{
	CHECK(relm_store_begin(d->st));
	int n = relm_store_outbox_purge_posted(d->st, 0);
	if (n < 0)
		die("outbox purge: %s", relm_strerror(n));
	CHECK(relm_store_commit(d->st));
}

void batch_begin(struct daemon *a, struct daemon *b)
{
	CHECK(relm_store_batch_begin(a->st));
	CHECK(relm_store_batch_begin(b->st));
}

void batch_commit(struct daemon *a, struct daemon *b)
{
	CHECK(relm_store_batch_commit(a->st));
	CHECK(relm_store_batch_commit(b->st));
}

/* Pump both ways, moving the clock so receipts fire, until three clock
 * steps in a row move nothing.  Group-committed per round. */
void settle(struct daemon *a, struct daemon *b)
{
	for (int quiet = 0; quiet < 3;) {
		batch_begin(a, b);
		size_t moved = 0, m;
		do {
			m = pump(a, b) + pump(b, a);
			moved += m;
		} while (m);
		if (!moved) {
			g_clock += TICK_STEP_MS;
			tick_all(a);
			tick_all(b);
			if (pump(a, b) + pump(b, a) == 0)
				quiet++;
			else
				quiet = 0;
		}
		batch_commit(a, b);
	}
}

/* ---- relationship ids ---------------------------------------------------------- */

void idlist_push(struct idlist *l, const uint8_t id[RELM_ID_LEN])
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 1024;
		if (!(l->id = realloc(l->id, l->cap * RELM_ID_LEN)))
			die("out of memory");
	}
	memcpy(l->id[l->n++], id, RELM_ID_LEN);
}

int rel_list_cb(void *ctx, const struct relm_store_rel *r)
{
	idlist_push(ctx, r->id);
	return 0;
}
/* util_world.c — see util_world.h. */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <check.h>
#include "util_world.h"
#include "util_rand.h"
#include "wire/addr.h"
#include "crypto/crypto.h"
#include "error.h"

void tu_daemon_mkdir(struct tu_daemon *d, const char *name)
{
	const char *tmp = getenv("TMPDIR");
	memset(d, 0, sizeof *d);
	snprintf(d->dir, sizeof d->dir, "%s/relm-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	snprintf(d->path, sizeof d->path, "%s/state/relm.db", d->dir);
}

int tu_daemon_open(struct tu_daemon *d, uint64_t *clock, uint64_t stream, const char *host)
{
	int rc;
	char errbuf[256] = "";
	struct relm_store_opts o = { .errbuf = errbuf, .errlen = sizeof errbuf };

	d->clock = clock;
	d->stream = stream;
	snprintf(d->host, sizeof d->host, "%s", host);
	tu_env_init_stream(&d->env, clock, stream);
	if ((rc = relm_store_open(&d->st, d->path, &o)) != 0) {
		fprintf(stderr, "store open %s: %s (%s)\n", d->path, relm_strerror(rc), errbuf);
		tu_env_free(&d->env);
		return rc;
	}
	if ((rc = relm_core_new(&d->core, d->st, &d->env, host, RELM_MODE_TREE)) != 0) {
		relm_store_close(d->st);
		d->st = NULL;
		tu_env_free(&d->env);
		return rc;
	}
	d->outbox_after = 0;
	return 0;
}

void tu_daemon_close(struct tu_daemon *d)
{
	relm_core_free(d->core);
	relm_store_close(d->st);
	if (d->st)
		tu_env_free(&d->env);
	d->core = NULL;
	d->st = NULL;
}

void tu_daemon_rmdir(struct tu_daemon *d)
{
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", d->dir);
}

struct pump_row {
	int64_t seq;
	uint8_t rel[RELM_ID_LEN], msg[RELM_ID_LEN];
	int has_rel, has_msg;
	char dest[RELM_MAILBOX_ADDR_MAX + 1];
	uint8_t *buf;
	size_t len;
};

struct pump_ctx {
	struct pump_row *v;
	size_t n, cap;
};

static int pump_cb(void *ctx, const struct relm_store_outbox *o)
{
	struct pump_ctx *p = ctx;
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 32;
		p->v = realloc(p->v, p->cap * sizeof *p->v);
		ck_assert_ptr_nonnull(p->v);
	}
	struct pump_row *r = &p->v[p->n++];
	r->seq = o->seq;
	memcpy(r->rel, o->rel, RELM_ID_LEN);
	memcpy(r->msg, o->msg_id, RELM_ID_LEN);
	r->has_rel = o->has_rel;
	r->has_msg = o->has_msg;
	snprintf(r->dest, sizeof r->dest, "%s", o->dest);
	r->buf = malloc(o->len);
	ck_assert_ptr_nonnull(r->buf);
	memcpy(r->buf, o->bytes, o->len);
	r->len = o->len;
	return 0;
}

static uint64_t net_last_seq(const struct tu_net *net, const uint8_t mailbox[32])
{
	uint64_t s = 0;
	for (size_t i = 0; i < net->n; i++)
		if (memcmp(net->v[i].mailbox, mailbox, 32) == 0 && net->v[i].seq > s)
			s = net->v[i].seq;
	return s;
}

int tu_pump(struct tu_daemon *d, struct tu_net *net)
{
	struct pump_ctx p = { 0 };
	int rc = relm_store_outbox_next(d->st, d->outbox_after, 0, pump_cb, &p);
	for (size_t i = 0; rc == 0 && i < p.n; i++) {
		struct pump_row *r = &p.v[i];
		struct relm_addr a;
		ck_assert_int_eq(relm_addr_parse(&a, r->dest, strlen(r->dest)), 0);
		ck_assert(a.has_id);
		if (net->drop_next) {
			net->drop_next--;            /* lost on the way (and acked: at-least-once fails) */
		} else {
			if (net->n == net->cap) {
				net->cap = net->cap ? 2 * net->cap : 64;
				net->v = realloc(net->v, net->cap * sizeof *net->v);
				ck_assert_ptr_nonnull(net->v);
			}
			struct tu_mail *m = &net->v[net->n];
			memcpy(m->mailbox, a.id, 32);
			m->seq = net_last_seq(net, a.id) + 1;
			m->buf = r->buf;
			m->len = r->len;
			r->buf = NULL;
			net->n++;
			if (net->on_post && (rc = net->on_post(net->post_ctx, m)) != 0)
				break;
		}
		rc = relm_core_outbox_posted(d->core, r->seq, r->msg, r->rel, r->has_msg && r->has_rel);
		d->outbox_after = r->seq;
	}
	for (size_t i = 0; i < p.n; i++)
		free(p.v[i].buf);
	free(p.v);
	return rc;
}

struct mb_list {
	uint8_t (*id)[32];
	uint64_t *cursor;
	size_t n, cap;
};

static int mb_cb(void *ctx, const uint8_t id[32], uint64_t cursor)
{
	struct mb_list *l = ctx;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->id = realloc(l->id, l->cap * 32);
		l->cursor = realloc(l->cursor, l->cap * sizeof *l->cursor);
		ck_assert(l->id && l->cursor);
	}
	memcpy(l->id[l->n], id, 32);
	l->cursor[l->n++] = cursor;
	return 0;
}

int tu_deliver(struct tu_daemon *d, struct tu_net *net)
{
	struct mb_list l = { 0 };
	int rc = relm_core_mailboxes(d->core, mb_cb, &l);
	for (size_t k = 0; rc == 0 && k < l.n; k++)
		for (size_t i = 0; rc == 0 && i < net->n; i++)
			if (memcmp(net->v[i].mailbox, l.id[k], 32) == 0 && net->v[i].seq > l.cursor[k])
				rc = relm_core_envelope(d->core, l.id[k], net->v[i].seq, net->v[i].buf,
				                        net->v[i].len);
	free(l.id);
	free(l.cursor);
	return rc;
}

void tu_settle(struct tu_daemon **ds, size_t n, struct tu_net *net, int rounds, uint64_t step_ms)
{
	for (int r = 0; r < rounds; r++) {
		for (int inner = 0; inner < 20; inner++) {
			size_t before = net->n;
			for (size_t i = 0; i < n; i++)
				ck_assert_int_eq(tu_pump(ds[i], net), 0);
			for (size_t i = 0; i < n; i++)
				ck_assert_int_eq(tu_deliver(ds[i], net), 0);
			for (size_t i = 0; i < n; i++)
				ck_assert_int_eq(tu_pump(ds[i], net), 0);
			if (net->n == before)
				break;
		}
		*ds[0]->clock += step_ms;
		for (size_t i = 0; i < n; i++) {
			uint64_t next = 0;
			ck_assert_int_eq(relm_core_tick(ds[i]->core, &next), 0);
		}
	}
}

void tu_net_free(struct tu_net *net)
{
	for (size_t i = 0; i < net->n; i++)
		free(net->v[i].buf);
	free(net->v);
	memset(net, 0, sizeof *net);
}

static int count_cb(void *ctx, const struct relm_store_msg *m)
{
	int *c = ctx;
	if (m->direction_in == c[1] && strcmp(m->kind, "text") == 0)
		c[0]++;
	return 0;
}

int tu_history_count(struct tu_daemon *d, const uint8_t rel[RELM_ID_LEN], int in)
{
	int c[2] = { 0, in };
	ck_assert_int_eq(relm_store_msg_list(d->st, rel, 0, 0, count_cb, c), 0);
	return c[0];
}

struct stmt_find {
	char hex[RELM_SUCCESSOR_HEX + 1];
};

static int stmt_cb(void *ctx, const struct relm_store_msg *m)
{
	struct stmt_find *f = ctx;
	if (!m->direction_in && !strcmp(m->kind, "identity") && m->body_len == RELM_SUCCESSOR_HEX)
		memcpy(f->hex, m->body, RELM_SUCCESSOR_HEX);
	return 0;
}

void tu_sent_statement(struct relm_store *st, const uint8_t rel[RELM_ID_LEN],
                       uint8_t out[RELM_SUCCESSOR_LEN])
{
	struct stmt_find g;

	memset(&g, 0, sizeof g);
	ck_assert_int_eq(relm_store_msg_list(st, rel, 0, 0, stmt_cb, &g), 0);
	ck_assert_uint_eq(strlen(g.hex), RELM_SUCCESSOR_HEX);
	ck_assert_int_eq(relm_unhex(out, RELM_SUCCESSOR_LEN, g.hex, RELM_SUCCESSOR_HEX), 0);
}

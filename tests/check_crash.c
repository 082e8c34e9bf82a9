/*
 * check_crash.c — kill -9 at random instants (DESIGN §8 durability rule,
 * §9 invariant 6), SQLite test6.c in spirit but with real process death.
 *
 * One store holds both ends of one conversation: relationship A (proton
 * PA) and relationship B (proton PB).  A child process runs the daemon's
 * loop — engine step → one transaction holding the new state, the outbox
 * rows and the cursor advance → commit → only then act: post outbox rows
 * to the "mailbox server" (a second SQLite file, durable on its own) and
 * write acknowledgements to a pipe.  The parent kills it with SIGKILL after
 * a seeded random delay, reopens everything and checks:
 *
 *   1. PRAGMA integrity_check is ok;
 *   2. every message the child acknowledged (sent: after its commit;
 *      received: after the commit that stored it) is in the history, with
 *      the body it acknowledged;
 *   3. no two different envelopes were ever posted under one (ratchet key
 *      dh, counter n, nonce) — i.e. under one (message key, nonce): the
 *      check reads only the mailbox, the network's own record;
 *   4. at the end, after quiescence, every message either side holds as
 *      sent is in the other side's history (nothing lost), and the
 *      conversation continues (one more message each way).
 *
 * The engine is behind `struct crash_engine` (state blob in → state blob
 * out + effects).  Today it is a row-level stand-in (`fake_*`: one sending
 * and one receiving KDF chain per side, the real header layout, real AEAD,
 * real struct relm_effects); plugging lib/rel.h in is replacing fake_send /
 * fake_receive with relm_rel_decode + relm_rel_send / relm_rel_receive +
 * relm_rel_encode (and a tick step).  Each child incarnation draws from its
 * own seeded stream (stream = incarnation): a restarted process that
 * replayed its randomness would reuse nonces, and check 3 would catch it.
 *
 * RELM_SEED picks the schedule; RELM_CRASH_POINTS the number of kills
 * (default 250, about 10–20 s).  SIGKILL loses no OS-cached write: this is
 * process death, not power loss (see proto/store.md).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>
#include <sodium.h>
#include "crypto.h"
#include "effects.h"
#include "env.h"
#include "error.h"
#include "store.h"
#include "util_rand.h"

static char tmpdir[256], storepath[512], mboxpath[512];

/* ---- the engine interface --------------------------------------------------- */

struct crash_engine {
	/* The user sends body.  On success *out, *outlen is the new state blob
	 * (malloc'd) and fx holds POST + DELIVER. */
	int (*send)(const uint8_t *st, size_t len, const struct relm_env *env,
	            const char *body, size_t blen, uint8_t **out, size_t *outlen,
	            struct relm_effects *fx);
	/* An envelope arrived.  0 accepted (fx holds DELIVER), RELM_EDUP, or an
	 * error with the state unchanged. */
	int (*receive)(const uint8_t *st, size_t len, const struct relm_env *env,
	               const uint8_t *buf, size_t blen, uint8_t **out, size_t *outlen,
	               struct relm_effects *fx);
};

/* ---- the stand-in engine ------------------------------------------------------ */

struct fake_state {
	char magic[8];                 /* "FAKE1" */
	uint8_t dh_s[RELM_KEY_LEN];    /* our sending chain's "ratchet key" */
	uint8_t ck_s[RELM_KEY_LEN];
	uint32_t n_s;
	uint8_t dh_r[RELM_KEY_LEN];
	uint8_t ck_r[RELM_KEY_LEN];
	uint32_t n_r;
};

static int fake_load(struct fake_state *f, const uint8_t *st, size_t len)
{
	if (len != sizeof *f)
		return RELM_ESTATE;
	memcpy(f, st, sizeof *f);
	return memcmp(f->magic, "FAKE1", 6) == 0 ? 0 : RELM_ESTATE;
}

static int fake_save(const struct fake_state *f, uint8_t **out, size_t *outlen)
{
	*out = malloc(sizeof *f);
	if (!*out)
		return RELM_ENOMEM;
	memcpy(*out, f, sizeof *f);
	*outlen = sizeof *f;
	return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int fake_send(const uint8_t *st, size_t len, const struct relm_env *env,
                     const char *body, size_t blen, uint8_t **out, size_t *outlen,
                     struct relm_effects *fx)
{
	struct fake_state f;
	uint8_t mk[RELM_KEY_LEN], nonce[RELM_NONCE_LEN], *pt = NULL, *envl = NULL;
	struct relm_fx *p, *d;
	size_t ptlen = RELM_ID_LEN + blen, elen = RELM_HEADER_LEN + ptlen + RELM_TAG_LEN;
	int err;

	if ((err = fake_load(&f, st, len)) != 0)
		return err;
	pt = malloc(ptlen);
	envl = malloc(elen);
	if (!pt || !envl) {
		err = RELM_ENOMEM;
		goto out;
	}
	relm__random(env, pt, RELM_ID_LEN);            /* message id */
	memcpy(pt + RELM_ID_LEN, body, blen);
	relm__random(env, nonce, sizeof nonce);        /* random nonce (DESIGN §3) */
	relm_kdf_ck(mk, f.ck_s, f.ck_s);
	/* header = version flags dh pn n nonce (proto/wire.md) */
	envl[0] = RELM_WIRE_VERSION;
	envl[1] = 0;
	memcpy(envl + 2, f.dh_s, RELM_KEY_LEN);
	put32(envl + 34, 0);
	put32(envl + 38, f.n_s);
	memcpy(envl + 42, nonce, RELM_NONCE_LEN);
	relm_aead_seal(envl + RELM_HEADER_LEN, pt, ptlen, envl, RELM_HEADER_LEN, nonce, mk);
	f.n_s++;
	if (!(p = relm__fx_push(fx, RELM_FX_POST)) || !(d = relm__fx_push(fx, RELM_FX_DELIVER))) {
		err = RELM_ENOMEM;
		goto out;
	}
	memcpy(p->msg_id, pt, RELM_ID_LEN);
	p->data = envl;
	p->len = elen;
	envl = NULL;
	memcpy(d->msg_id, pt, RELM_ID_LEN);
	d->data = malloc(blen ? blen : 1);
	if (!d->data) {
		err = RELM_ENOMEM;
		goto out;
	}
	memcpy(d->data, body, blen);
	d->len = blen;
	d->kind = 1;
	d->direction_in = 0;
	d->origin = RELM_ORIGIN_SELF;
	d->ts = relm__now(env);
	err = fake_save(&f, out, outlen);
out:
	sodium_memzero(mk, sizeof mk);
	sodium_memzero(&f, sizeof f);
	free(pt);
	free(envl);
	return err;
}

static int fake_receive(const uint8_t *st, size_t len, const struct relm_env *env,
                        const uint8_t *buf, size_t blen, uint8_t **out, size_t *outlen,
                        struct relm_effects *fx)
{
	struct fake_state f;
	uint8_t mk[RELM_KEY_LEN], ck[RELM_KEY_LEN], *pt = NULL;
	struct relm_fx *d;
	size_t ptlen;
	uint32_t n;
	int err;

	(void)env;
	if (blen < RELM_HEADER_LEN + RELM_ID_LEN + RELM_TAG_LEN)
		return RELM_ETRUNCATED;
	if ((err = fake_load(&f, st, len)) != 0)
		return err;
	if (memcmp(buf + 2, f.dh_r, RELM_KEY_LEN) != 0) {
		err = RELM_EAUTH;
		goto out;
	}
	n = get32(buf + 38);
	if (n < f.n_r) {
		err = RELM_EDUP;         /* its key was used: a re-post of an accepted envelope */
		goto out;
	}
	if (n > f.n_r) {
		err = RELM_EMAXSKIP;     /* the mailbox is ordered: cannot happen */
		goto out;
	}
	relm_kdf_ck(mk, ck, f.ck_r);
	ptlen = blen - RELM_HEADER_LEN - RELM_TAG_LEN;
	pt = malloc(ptlen);
	if (!pt) {
		err = RELM_ENOMEM;
		goto out;
	}
	if ((err = relm_aead_open(pt, buf + RELM_HEADER_LEN, blen - RELM_HEADER_LEN,
	                          buf, RELM_HEADER_LEN, buf + 42, mk)) != 0)
		goto out;
	memcpy(f.ck_r, ck, sizeof ck);
	f.n_r++;
	if (!(d = relm__fx_push(fx, RELM_FX_DELIVER))) {
		err = RELM_ENOMEM;
		goto out;
	}
	memcpy(d->msg_id, pt, RELM_ID_LEN);
	d->len = ptlen - RELM_ID_LEN;
	d->data = malloc(d->len ? d->len : 1);
	if (!d->data) {
		err = RELM_ENOMEM;
		goto out;
	}
	memcpy(d->data, pt + RELM_ID_LEN, d->len);
	d->kind = 1;
	d->direction_in = 1;
	d->origin = RELM_ORIGIN_REMOTE;
	err = fake_save(&f, out, outlen);
out:
	sodium_memzero(mk, sizeof mk);
	sodium_memzero(ck, sizeof ck);
	sodium_memzero(&f, sizeof f);
	free(pt);
	return err;
}

static const struct crash_engine fake_engine = { fake_send, fake_receive };
static const struct crash_engine *engine = &fake_engine;

/* ---- the world: two relationships, two mailboxes ------------------------------------- */

enum { SIDES = 2 };
static const char *const dest_of[SIDES] = { "mbox:1/B", "mbox:1/A" };   /* where each side posts */
static const char *const mbox_of[SIDES] = { "mbox:1/A", "mbox:1/B" };   /* what each side reads */

static void rel_id(uint8_t id[16], int side)
{
	memset(id, 0xa0 + side, 16);
}

static void mbox_id(uint8_t id[32], int side)
{
	memset(id, 0xb0 + side, 32);
}

static void world_create(void)
{
	struct relm_store *st = NULL;
	struct fake_state f[SIDES];
	sqlite3 *mb;

	ck_assert_int_eq(relm_store_open(&st, storepath, NULL), 0);
	ck_assert_int_eq(relm_store_begin(st), 0);
	for (int s = 0; s < SIDES; s++) {
		struct relm_store_proton p;
		struct relm_store_rel r;
		memset(&p, 0, sizeof p);
		memset(p.id, 0x10 + s, 16);
		memset(p.ipk, 0x20 + s, 32);
		snprintf(p.label, sizeof p.label, "%c", 'A' + s);
		ck_assert_int_eq(relm_store_proton_put(st, &p), 0);
		memset(&f[s], 0, sizeof f[s]);
		memcpy(f[s].magic, "FAKE1", 6);
		memset(f[s].dh_s, 0x30 + s, 32);
		memset(f[s].ck_s, 0x40 + s, 32);
		memset(f[s].dh_r, 0x30 + (1 - s), 32);
		memset(f[s].ck_r, 0x40 + (1 - s), 32);
		memset(&r, 0, sizeof r);
		rel_id(r.id, s);
		memcpy(r.proton, p.id, 16);
		mbox_id(r.mailbox_id, s);
		memset(r.remote_ipk, 0x20 + (1 - s), 32);
		snprintf(r.remote_addr, sizeof r.remote_addr, "%s", dest_of[s]);
		r.state = (uint8_t *)&f[s];
		r.state_len = sizeof f[s];
		ck_assert_int_eq(relm_store_rel_put(st, &r), 0);
	}
	ck_assert_int_eq(relm_store_commit(st), 0);
	relm_store_close(st);
	ck_assert_int_eq(sqlite3_open(mboxpath, &mb), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(mb, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	                              "CREATE TABLE mbox(seq INTEGER PRIMARY KEY, mailbox TEXT NOT NULL, bytes BLOB NOT NULL)",
	                              NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(mb);
}

/* ---- the daemon loop (child) ------------------------------------------------------- */

enum { ACK_SENT = 1, ACK_RECV = 2 };
struct ack {
	uint8_t type, side;
	uint8_t id[RELM_ID_LEN];
	uint8_t h[RELM_ID_LEN];      /* BLAKE2b-128 of the body */
};

struct daemon {
	struct relm_store *st;
	sqlite3 *mb;
	sqlite3_stmt *post, *fetch;
	struct relm_env env;
	uint64_t clock;
	int ackfd;                   /* -1: no acks (quiescence in the parent) */
	struct ack pend[64];         /* acks held until the batch commits */
	int npend;
	int batched;
	uint64_t msgno;
};

static void body_hash(uint8_t h[16], const uint8_t *b, size_t n)
{
	crypto_generichash(h, 16, b, n, NULL, 0);
}

static void ack_flush(struct daemon *d)
{
	if (d->ackfd >= 0 && d->npend)
		if (write(d->ackfd, d->pend, (size_t)d->npend * sizeof d->pend[0]) < 0)
			_exit(3);
	d->npend = 0;
}

static void ack_push(struct daemon *d, int type, int side, const struct relm_effects *fx)
{
	for (size_t i = 0; i < fx->n; i++) {
		struct ack *a;
		if (fx->v[i].type != RELM_FX_DELIVER)
			continue;
		if (d->npend == (int)(sizeof d->pend / sizeof d->pend[0]))
			ack_flush(d);   /* only reached outside batches: see step_any */
		a = &d->pend[d->npend++];
		a->type = (uint8_t)type;
		a->side = (uint8_t)side;
		memcpy(a->id, fx->v[i].msg_id, 16);
		body_hash(a->h, fx->v[i].data, fx->v[i].len);
	}
}

/* Commit a step; acknowledge only once it (or its batch) is durable. */
static int step_commit(struct daemon *d)
{
	int err = relm_store_commit(d->st);
	if (!err && !d->batched)
		ack_flush(d);
	return err;
}

static int do_send(struct daemon *d, int side)
{
	struct relm_store_rel r;
	struct relm_effects fx;
	uint8_t rid[16], *ns = NULL;
	size_t nlen = 0;
	char body[96];
	int err;

	rel_id(rid, side);
	relm_effects_init(&fx);
	snprintf(body, sizeof body, "message %llu from %c", (unsigned long long)++d->msgno, 'A' + side);
	if ((err = relm_store_begin(d->st)) != 0)
		return err;
	if ((err = relm_store_rel_get(d->st, rid, &r, RELM_STORE_WITH_STATE)) != 0)
		goto fail;
	err = engine->send(r.state, r.state_len, &d->env, body, strlen(body), &ns, &nlen, &fx);
	if (!err)
		err = relm_store_apply_effects(d->st, rid, NULL, &fx, d->clock);
	if (!err)
		err = relm_store_rel_set_state(d->st, rid, ns, nlen, d->clock);
	relm_store_rel_clear(&r);
	relm_store_buf_free(ns, nlen);
	if (err)
		goto fail;
	ack_push(d, ACK_SENT, side, &fx);
	relm_effects_clear(&fx);
	return step_commit(d);
fail:
	relm_effects_clear(&fx);
	relm_store_rollback(d->st);
	return err;
}

struct pump { struct daemon *d; int64_t seq[8]; int n; int err; };

static int pump_cb(void *ctx, const struct relm_store_outbox *o)
{
	struct pump *p = ctx;
	sqlite3_stmt *s = p->d->post;
	/* The network: the mailbox server stores it durably (its own commit). */
	sqlite3_bind_text(s, 1, o->dest, -1, SQLITE_TRANSIENT);
	sqlite3_bind_blob(s, 2, o->bytes, (int)o->len, SQLITE_TRANSIENT);
	if (sqlite3_step(s) != SQLITE_DONE)
		p->err = RELM_ESTORE;
	sqlite3_reset(s);
	p->seq[p->n++] = o->seq;
	return p->err;
}

/* Post everything queued (any side), then mark it posted.  A crash in
 * between re-posts after restart: the receiver de-duplicates. */
static int do_pump(struct daemon *d)
{
	struct pump p = { d, { 0 }, 0, 0 };
	int err = relm_store_outbox_next(d->st, 0, 8, pump_cb, &p);
	if (err || p.err || !p.n)
		return err ? err : p.err;
	if ((err = relm_store_begin(d->st)) != 0)
		return err;
	for (int i = 0; i < p.n && !err; i++)
		err = relm_store_outbox_mark_posted(d->st, p.seq[i], d->clock);
	if (err) {
		relm_store_rollback(d->st);
		return err;
	}
	return step_commit(d);
}

/* Receive the next envelope of side's mailbox; 1 if there was none. */
static int do_receive(struct daemon *d, int side)
{
	struct relm_store_rel r;
	struct relm_effects fx;
	uint8_t rid[16], mid[32], *ns = NULL, *buf = NULL;
	size_t nlen = 0, blen = 0;
	uint64_t cursor, seq;
	int err, rc;

	rel_id(rid, side);
	mbox_id(mid, side);
	if ((err = relm_store_cursor_get(d->st, mid, &cursor)) != 0)
		return err;
	sqlite3_bind_text(d->fetch, 1, mbox_of[side], -1, SQLITE_STATIC);
	sqlite3_bind_int64(d->fetch, 2, (sqlite3_int64)cursor);
	rc = sqlite3_step(d->fetch);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(d->fetch);
		return rc == SQLITE_DONE ? 1 : RELM_ESTORE;
	}
	seq = (uint64_t)sqlite3_column_int64(d->fetch, 0);
	blen = (size_t)sqlite3_column_bytes(d->fetch, 1);
	buf = malloc(blen);
	memcpy(buf, sqlite3_column_blob(d->fetch, 1), blen);
	sqlite3_reset(d->fetch);

	relm_effects_init(&fx);
	if ((err = relm_store_begin(d->st)) != 0)
		goto out;
	if ((err = relm_store_rel_get(d->st, rid, &r, RELM_STORE_WITH_STATE)) != 0)
		goto fail;
	err = engine->receive(r.state, r.state_len, &d->env, buf, blen, &ns, &nlen, &fx);
	relm_store_rel_clear(&r);
	if (err == 0) {
		if ((err = relm_store_apply_effects(d->st, rid, NULL, &fx, d->clock)) == 0)
			err = relm_store_rel_set_state(d->st, rid, ns, nlen, d->clock);
	} else if (err == RELM_EDUP) {
		err = 0;                 /* a re-post: only the cursor moves */
	}
	/* The cursor advance is in the same transaction as the state. */
	if (!err)
		err = relm_store_cursor_set(d->st, mid, seq);
	if (err)
		goto fail;
	ack_push(d, ACK_RECV, side, &fx);
	err = step_commit(d);
	goto out;
fail:
	relm_store_rollback(d->st);
out:
	relm_store_buf_free(ns, nlen);
	relm_effects_clear(&fx);
	free(buf);
	return err;
}

static int daemon_open(struct daemon *d, uint64_t stream, int ackfd)
{
	memset(d, 0, sizeof *d);
	d->ackfd = ackfd;
	if (relm_store_open(&d->st, storepath, NULL) != 0)
		return -1;
	if (sqlite3_open(mboxpath, &d->mb) != SQLITE_OK ||
	    sqlite3_exec(d->mb, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(d->mb, 5000) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->mb, "INSERT INTO mbox(mailbox,bytes) VALUES(?1,?2)", -1, &d->post, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(d->mb, "SELECT seq,bytes FROM mbox WHERE mailbox=?1 AND seq>?2 ORDER BY seq LIMIT 1", -1, &d->fetch, NULL) != SQLITE_OK)
		return -1;
	d->clock = 1700000000000ULL + stream * 1000;
	tu_env_init_stream(&d->env, &d->clock, 1000 + stream);
	return 0;
}

static void daemon_close(struct daemon *d)
{
	sqlite3_finalize(d->post);
	sqlite3_finalize(d->fetch);
	sqlite3_close(d->mb);
	relm_store_close(d->st);
	tu_env_free(&d->env);
}

static int step_any(struct daemon *d, uint64_t r)
{
	int side = (int)(r >> 8) & 1, k = (int)(r % 10);
	d->clock += 7;
	if (k < 4)
		return do_send(d, side);
	/* Never post inside a batch: its rows are not durable until the batch
	 * commits (DESIGN §8: nothing reaches the network before its commit). */
	if (k < 7 && !d->batched)
		return do_pump(d);
	{
		int e = do_receive(d, side);
		return e == 1 ? 0 : e;
	}
}

/* The child: run until killed. */
static void child_main(uint64_t incarnation, int ackfd)
{
	struct daemon d;

	if (daemon_open(&d, incarnation, ackfd) != 0)
		_exit(2);
	for (;;) {
		uint64_t r;
		int err = 0;
		d.env.random(d.env.ctx, (uint8_t *)&r, sizeof r);
		if (r % 5 == 0) {
			/* group commit: 2–6 steps, one durable commit, then the acks */
			int n = 2 + (int)((r >> 16) % 5);
			if (relm_store_batch_begin(d.st) != 0)
				_exit(4);
			d.batched = 1;
			for (int i = 0; i < n && !err; i++) {
				d.env.random(d.env.ctx, (uint8_t *)&r, sizeof r);
				err = step_any(&d, r);
			}
			d.batched = 0;
			if (err || relm_store_batch_commit(d.st) != 0)
				_exit(5);
			ack_flush(&d);
		} else if (step_any(&d, r) != 0) {
			_exit(6);
		}
	}
}

/* ---- the parent's checks ------------------------------------------------------------ */

struct acks { struct ack *v; size_t n, cap, checked; };

static void read_acks(int fd, struct acks *a)
{
	struct ack buf[256];
	ssize_t n;
	size_t carry = 0;
	uint8_t *p = (uint8_t *)buf;

	while ((n = read(fd, p + carry, sizeof buf - carry)) > 0) {
		size_t tot = carry + (size_t)n, whole = tot / sizeof buf[0];
		for (size_t i = 0; i < whole; i++) {
			if (a->n == a->cap) {
				a->cap = a->cap ? 2 * a->cap : 1024;
				a->v = realloc(a->v, a->cap * sizeof *a->v);
				ck_assert_ptr_nonnull(a->v);
			}
			a->v[a->n++] = buf[i];
		}
		carry = tot - whole * sizeof buf[0];
		memmove(p, p + whole * sizeof buf[0], carry);
	}
	ck_assert_uint_eq(carry, 0);   /* acks are written whole (≤ PIPE_BUF) */
}

static int64_t q_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v = -1;
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

static int has_body(struct relm_store *st, int side, const uint8_t id[16], const uint8_t h[16], int in)
{
	sqlite3_stmt *s;
	uint8_t rid[16], got[16];
	int ok = 0;

	rel_id(rid, side);
	ck_assert_int_eq(sqlite3_prepare_v2(relm__store_db(st),
	                 "SELECT body, direction FROM messages WHERE rel=?1 AND id=?2", -1, &s, NULL), SQLITE_OK);
	sqlite3_bind_blob(s, 1, rid, 16, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, id, 16, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW) {
		body_hash(got, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
		ok = memcmp(got, h, 16) == 0 &&
		     strcmp((const char *)sqlite3_column_text(s, 1), in ? "in" : "out") == 0;
	}
	sqlite3_finalize(s);
	return ok;
}

/* Check 1–3 (and 2 only for acks not yet checked unless all). */
static void verify(struct acks *a, int all, int kill_no)
{
	struct relm_store *st = NULL;
	struct relm_store_opts o = { .flags = RELM_STORE_F_INTEGRITY };
	sqlite3 *mb;
	int r = relm_store_open(&st, storepath, &o);

	ck_assert_msg(r == 0, "kill %d: reopen: %s (" TU_SEED_FMT ")", kill_no, relm_strerror(r), TU_SEED_ARG);
	ck_assert_msg(q_int(relm__store_db(st), "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check='ok'") == 1,
	              "kill %d: integrity_check (" TU_SEED_FMT ")", kill_no, TU_SEED_ARG);
	for (size_t i = all ? 0 : a->checked; i < a->n; i++) {
		const struct ack *k = &a->v[i];
		/* sent by side s: in s's history as out; received by side s: in as in */
		ck_assert_msg(has_body(st, k->side, k->id, k->h, k->type == ACK_RECV),
		              "kill %d: acknowledged %s message %s of side %c is missing (" TU_SEED_FMT ")",
		              kill_no, k->type == ACK_RECV ? "received" : "sent", tu_hex(k->id, 16),
		              'A' + k->side, TU_SEED_ARG);
	}
	a->checked = a->n;
	relm_store_close(st);

	ck_assert_int_eq(sqlite3_open_v2(mboxpath, &mb, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	/* (dh, n, nonce) determines (message key, nonce): one envelope each. */
	ck_assert_msg(q_int(mb, "SELECT count(*) FROM (SELECT 1 FROM mbox GROUP BY substr(bytes,3,32), "
	                    "substr(bytes,39,4), substr(bytes,43,24) HAVING count(DISTINCT bytes) > 1)") == 0,
	              "kill %d: two different envelopes under one (key, nonce) (" TU_SEED_FMT ")",
	              kill_no, TU_SEED_ARG);
	sqlite3_close(mb);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

START_TEST(test_kill9)
{
	const char *e = getenv("RELM_CRASH_POINTS");
	int points = e && *e ? atoi(e) : 250;
	struct acks acks = { 0 };
	struct daemon d;
	int sent_count;

	snprintf(tmpdir, sizeof tmpdir, "/tmp/relm-crash-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(storepath, sizeof storepath, "%s/state/relm.db", tmpdir);
	snprintf(mboxpath, sizeof mboxpath, "%s/mailbox.db", tmpdir);
	world_create();

	for (int k = 0; k < points; k++) {
		int pfd[2], status;
		pid_t pid;
		struct timespec ts;
		uint64_t delay_us = 2000 + tu_rand_below(70000);

		ck_assert_int_eq(pipe(pfd), 0);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			close(pfd[0]);
			child_main((uint64_t)k, pfd[1]);
			_exit(0);
		}
		close(pfd[1]);
		ts.tv_sec = 0;
		ts.tv_nsec = (long)delay_us * 1000;
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		read_acks(pfd[0], &acks);
		close(pfd[0]);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		              "kill %d: child exited on its own (status 0x%x) (" TU_SEED_FMT ")",
		              k, status, TU_SEED_ARG);
		verify(&acks, 0, k);
	}

	/* Quiescence: pump and receive until nothing moves, then the whole
	 * conversation must be on both sides. */
	ck_assert_int_eq(daemon_open(&d, (uint64_t)points, -1), 0);
	for (int round = 0; round < 100000; round++) {
		int moved = 0, r;
		ck_assert_int_eq(do_pump(&d), 0);
		for (int s = 0; s < SIDES; s++) {
			r = do_receive(&d, s);
			ck_assert_int_ge(r, 0);
			moved |= r == 0;
		}
		if (!moved && q_int(relm__store_db(d.st), "SELECT count(*) FROM outbox WHERE state='queued'") == 0)
			break;
	}
	ck_assert_int_eq(q_int(relm__store_db(d.st), "SELECT count(*) FROM outbox WHERE state='queued'"), 0);
	/* no loss: every message one side sent is in the other's history */
	ck_assert_msg(q_int(relm__store_db(d.st),
	              "SELECT count(*) FROM messages o WHERE o.direction='out' AND NOT EXISTS "
	              "(SELECT 1 FROM messages i WHERE i.direction='in' AND i.id=o.id AND i.rel<>o.rel AND i.body=o.body)") == 0,
	              "a committed sent message never arrived (" TU_SEED_FMT ")", TU_SEED_ARG);
	sent_count = (int)q_int(relm__store_db(d.st), "SELECT count(*) FROM messages WHERE direction='out'");
	ck_assert_int_eq(q_int(relm__store_db(d.st), "SELECT count(*) FROM messages WHERE direction='in'"), sent_count);
	/* the conversation continues */
	ck_assert_int_eq(do_send(&d, 0), 0);
	ck_assert_int_eq(do_send(&d, 1), 0);
	ck_assert_int_eq(do_pump(&d), 0);
	ck_assert_int_eq(do_receive(&d, 0), 0);
	ck_assert_int_eq(do_receive(&d, 1), 0);
	ck_assert_int_eq(q_int(relm__store_db(d.st), "SELECT count(*) FROM messages WHERE direction='in'"), sent_count + 2);
	{
		sqlite3 *mb;
		int64_t env_n, reuse;
		ck_assert_int_eq(sqlite3_open(mboxpath, &mb), SQLITE_OK);
		env_n = q_int(mb, "SELECT count(*) FROM mbox");
		/* same (dh, n) posted with different nonces: a step re-done after
		 * a crash before its commit — the random nonce makes it safe */
		reuse = q_int(mb, "SELECT count(*) FROM (SELECT 1 FROM mbox GROUP BY substr(bytes,3,32), "
		              "substr(bytes,39,4) HAVING count(DISTINCT bytes) > 1)");
		sqlite3_close(mb);
		fprintf(stderr, "  crash: %d kills, %zu acks checked, %d messages each way in total, "
		        "%lld envelopes posted, %lld message keys re-used with a fresh nonce\n",
		        points, acks.n, sent_count, (long long)env_n, (long long)reuse);
	}
	daemon_close(&d);
	verify(&acks, 1, points);
	free(acks.v);
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("crash");
	TCase *tc = tcase_create("kill9");
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_kill9);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed)
		fprintf(stderr, "check_crash: " TU_SEED_FMT "\n", TU_SEED_ARG);
	return failed ? 1 : 0;
}

/*
 * check_crash.c — kill -9 at random instants on the real product path
 * (the durability rule, proto/store.md §2; proto/invariants.md §1, §2, §6).
 *
 * Two daemons, alice (A, the inviter) and bob (B, the accepter), each with
 * its own store file, driven only through lib/core/core.h as relmd drives it
 * (tests/util_world.h gives the daemon handles).  The parent makes the
 * protons, the invite and bob's acceptance (bob's hello is committed but not
 * posted: the relationship's setup happens under fire too), then forks a
 * child that runs both daemons until the parent kills it with SIGKILL after
 * a seeded random delay, ≥ 200 times per run.  The child, in a loop:
 *
 *   - sends on both sides: random UTF-8 bodies (empty to a few kB), some
 *     with client-chosen ids — announced to the parent *before* the call
 *     (INTENT), so the next child retries every unacknowledged one like a
 *     client whose daemon died (idempotency across crashes), and re-sends
 *     acknowledged ones, which must come back with was_new = 0;
 *   - pumps outboxes: a random subset of the committed, unposted rows, in a
 *     random order (reordering), a few posted twice (duplication); one row
 *     at a time, or a group (all written, one fsync, the posted marks in
 *     one batch);
 *   - delivers: a random prefix of each mailbox past its stored cursor, and
 *     now and then an old position again (redelivery must change nothing);
 *   - ticks with a virtual clock (small steps, sometimes 5–30 s jumps that
 *     fire retransmissions);
 *   - groups a few calls of one daemon in a batch (group commit);
 *   - purges posted outbox rows (as a daemon must; nothing in lib/ does);
 *   - closes and reopens a daemon.
 *
 * Acknowledgements go to the parent over a pipe ONLY after the call that
 * made them returned 0 (and, in a batch, after relm_store_batch_commit):
 * "id X accepted for sending by A/B" after relm_core_message_send; "id X
 * received by A/B" for every new incoming history row the daemon's own
 * connection shows after relm_core_envelope / relm_core_tick — exactly what
 * relmd may tell its clients.  (Reading on the daemon's own connection also
 * sees uncommitted rows: a core call that returned with a transaction still
 * open would be caught; the child also asserts !relm_store_in_txn.)
 *
 * The network is an append-only file, the mailbox log, that outlives the
 * child: records "RLM1" ‖ len (LE32) ‖ mailbox id (32) ‖ BLAKE2b-128(bytes)
 * ‖ bytes, written with one write() on an O_APPEND descriptor and fsync'd
 * BEFORE relm_core_outbox_posted — a real mailbox acknowledges only what it
 * holds durably.  A mailbox's positions (seq 1, 2, …) are its records in
 * file order, as relm-mailbox numbers them.  A record torn by the kill was
 * never acknowledged nor delivered; the next process truncates it, as a
 * mailbox server drops a torn tail on recovery.  (The parent keeping the
 * network and serving the child over pipes was the other choice; the file
 * is simpler and it is the network's own record, so check 3 trusts nothing
 * the child says.)
 *
 * The virtual clock is monotone across kills: the file `clock` holds a
 * reservation R ≥ every clock value any process has used; before the clock
 * passes R, R = clock + CLOCK_CHUNK_MS is written.  A new process starts at
 * R (a jump of at most CLOCK_CHUNK_MS, as after a real restart).
 *
 * After each kill the parent opens both stores (a plain read-only SQLite
 * connection: it neither checkpoints nor removes the WAL, so the next child
 * recovers each store through relm_store_open as the kill left it, and may
 * be killed while doing so) and checks:
 *   1. PRAGMA integrity_check is ok on both files;
 *   2. every acknowledged send is in the sender's history (out), every
 *      acknowledged receive in the receiver's (in), with the acknowledged
 *      body, exactly once; no (rel, id) appears twice in either history;
 *   3. in the mailbox log, no two different envelopes share (dh_pub, n):
 *      a single-device sender never reuses a counter on one ratchet key
 *      (if it did with the same nonce, that is key+nonce reuse; with another
 *      nonce, a step was sent but not committed and redone after restart).
 *      The same bytes twice is a re-post (at-least-once) and is fine.
 * At the end the parent opens both daemons itself and settles (pump,
 * deliver, tick) until every text message either side holds as sent is in
 * the other's history with the same body, no outbox row is queued, and no
 * message is `failed` (invariant 1); then one more message each way must
 * arrive (the conversation continues).
 *
 * Also counted and printed: kills that left committed but unposted outbox
 * rows (re-posted after restart: tu_pump/our pump start from the oldest
 * unposted row), kills between the mailbox's durable write and
 * relm_core_outbox_posted, and torn log tails.
 *
 * RELM_SEED picks the schedule (the child's choices, the delays); the kill
 * instants are wall-clock, so a failing seed reproduces the schedule, not
 * always the exact kill.  RELM_CRASH_POINTS sets the number of kills
 * (default 250, about 25–35 s on 2 cores).  SIGKILL is process death, not
 * power loss: the OS keeps what was written (see proto/store.md) — so the
 * files go to /dev/shm when it is usable (about 5 times more steps per kill
 * than on a disk, where most kills land in fsync waits); RELM_CRASH_DIR
 * picks another folder.  A failed run leaves its relm-crash-* folder there
 * for inspection.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
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
#include "wire/addr.h"
#include "core/core.h"
#include "error.h"
#include "wire/invite.h"
#include "store/store.h"
#include "util_rand.h"
#include "util_world.h"

enum {
	SIDES           = 2,
	CLOCK_CHUNK_MS  = 2000,      /* clock reservation step (max jump at restart) */
	BODY_MAX        = 6000,      /* random bodies: 0 .. BODY_MAX bytes (+ one UTF-8 char) */
	POINTS_DEFAULT  = 250,
	SETTLE_ROUNDS   = 600,       /* final quiescence: rounds of tu_settle */
	SETTLE_STEP_MS  = 3000,
};

static const char *const name_of[SIDES] = { "A", "B" };
static const char *const host_of[SIDES] = { "127.0.0.1:7427", "127.0.0.2:7427" };

/* ---- the world (set up by the parent, inherited by each child) ----------- */

static char g_dir[200], g_logpath[512], g_clockpath[512];
static struct tu_daemon g_d[SIDES];          /* folders and paths */
static uint8_t g_rel[RELM_ID_LEN];           /* the relationship: same id on both sides */

static void body_hash(uint8_t h[16], const void *b, size_t n)
{
	crypto_generichash(h, 16, b, n, NULL, 0);
}

/* ---- the virtual clock, monotone across kills ---------------------------- */

static uint64_t g_clock, g_clock_reserved;
static int g_clockfd = -1;

static int clock_load(void)
{
	uint8_t b[8];
	if ((g_clockfd = open(g_clockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return -errno;
	if (pread(g_clockfd, b, 8, 0) != 8)
		return -EIO;
	g_clock = 0;
	for (int i = 0; i < 8; i++)
		g_clock |= (uint64_t)b[i] << (8 * i);
	g_clock_reserved = g_clock;
	return 0;
}

static int clock_store(uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return pwrite(g_clockfd, b, 8, 0) == 8 ? 0 : -EIO;
}

/* Move the clock forward; the reservation is written before the new value
 * can be used by anything. */
static int clock_advance(uint64_t ms)
{
	g_clock += ms;
	if (g_clock > g_clock_reserved) {
		g_clock_reserved = g_clock + CLOCK_CHUNK_MS;
		return clock_store(g_clock_reserved);
	}
	return 0;
}

/* ---- the mailbox log --------------------------------------------------------- */

enum { LOG_HDR = 4 + 4 + 32 + 16 };

/* A mailbox's positions: indexes into net->v, in order (seq = i + 1). */
struct mbx {
	uint8_t id[32];
	size_t *idx;
	size_t n, cap;
};

struct netlog {
	struct tu_net net;           /* every record, in file order, with its seq */
	struct mbx *mb;
	size_t nmb;
	off_t off;                   /* end of the last whole record */
	int fd;                      /* -1 unless this process appends */
};

static struct mbx *mbx_find(struct netlog *l, const uint8_t id[32], int add)
{
	for (size_t i = 0; i < l->nmb; i++)
		if (memcmp(l->mb[i].id, id, 32) == 0)
			return &l->mb[i];
	if (!add)
		return NULL;
	l->mb = realloc(l->mb, (l->nmb + 1) * sizeof *l->mb);
	if (!l->mb)
		abort();
	memset(&l->mb[l->nmb], 0, sizeof l->mb[0]);
	memcpy(l->mb[l->nmb].id, id, 32);
	return &l->mb[l->nmb++];
}

/* Index a mail already in net->v at position i (its seq is set here). */
static void log_index(struct netlog *l, size_t i)
{
	struct tu_mail *m = &l->net.v[i];
	struct mbx *b = mbx_find(l, m->mailbox, 1);
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 64;
		if (!(b->idx = realloc(b->idx, b->cap * sizeof *b->idx)))
			abort();
	}
	b->idx[b->n++] = i;
	m->seq = b->n;
}

static void net_push(struct tu_net *net, const uint8_t mailbox[32], const uint8_t *buf, size_t len)
{
	struct tu_mail *m;
	if (net->n == net->cap) {
		net->cap = net->cap ? 2 * net->cap : 256;
		if (!(net->v = realloc(net->v, net->cap * sizeof *net->v)))
			abort();
	}
	m = &net->v[net->n++];
	memcpy(m->mailbox, mailbox, 32);
	m->seq = 0;
	if (!(m->buf = malloc(len ? len : 1)))
		abort();
	memcpy(m->buf, buf, len);
	m->len = len;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Read whole records past l->off; returns how many bytes follow the last
 * whole record (a torn tail), or -errno. */
static long log_scan(struct netlog *l)
{
	struct stat sb;
	uint8_t *all;
	size_t size, p = 0;
	int fd = open(g_logpath, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &sb) != 0)
		return -errno;
	size = (size_t)(sb.st_size - l->off);
	if (!(all = malloc(size ? size : 1)))
		abort();
	if (pread(fd, all, size, l->off) != (ssize_t)size) {
		close(fd);
		free(all);
		return -EIO;
	}
	close(fd);
	while (size - p >= LOG_HDR) {
		const uint8_t *r = all + p;
		uint32_t len = le32(r + 4);
		uint8_t h[16];
		if (memcmp(r, "RLM1", 4) != 0 || len > RELM_ENVELOPE_MAX || size - p - LOG_HDR < len)
			break;
		body_hash(h, r + LOG_HDR, len);
		if (memcmp(h, r + 40, 16) != 0)
			break;
		net_push(&l->net, r + 8, r + LOG_HDR, len);
		log_index(l, l->net.n - 1);
		p += LOG_HDR + len;
	}
	l->off += (off_t)p;
	free(all);
	return (long)(size - p);
}

/* Append one record with one write() (a kill may tear it). */
static int log_write(struct netlog *l, const uint8_t mailbox[32], const uint8_t *buf, size_t len)
{
	uint8_t *rec = malloc(LOG_HDR + len);
	ssize_t w;

	if (!rec)
		abort();
	memcpy(rec, "RLM1", 4);
	for (int i = 0; i < 4; i++)
		rec[4 + i] = (uint8_t)(len >> (8 * i));
	memcpy(rec + 8, mailbox, 32);
	body_hash(rec + 40, buf, len);
	memcpy(rec + LOG_HDR, buf, len);
	w = write(l->fd, rec, LOG_HDR + len);
	free(rec);
	if (w != (ssize_t)(LOG_HDR + len))
		return -EIO;
	l->off += (off_t)(LOG_HDR + len);
	return 0;
}

/* The mailbox server's POST: durable (write + fsync) before it returns. */
static int log_append(struct netlog *l, const uint8_t mailbox[32], const uint8_t *buf, size_t len)
{
	int rc = log_write(l, mailbox, buf, len);
	return rc ? rc : fsync(l->fd) == 0 ? 0 : -errno;
}

/* tu_net.on_post for the parent's final settle (tu_pump has put m in v). */
static int log_on_post(void *ctx, const struct tu_mail *m)
{
	struct netlog *l = ctx;
	int rc = log_append(l, m->mailbox, m->buf, m->len);
	if (rc == 0)
		log_index(l, l->net.n - 1);   /* gives it the seq tu_pump gave it */
	return rc;
}

/* ---- messages between child and parent ------------------------------------ */

enum rec_type { REC_INTENT = 1, REC_SENT, REC_RECV, REC_STAT, REC_ERROR };
enum { REC_F_CLIENT = 1 };           /* REC_SENT: a client-chosen id */
enum stat_code {
	ST_SEND, ST_SEND_CLIENT, ST_RESEND_ACKED, ST_RETRY_NEW, ST_RETRY_OLD, ST_POST,
	ST_POST_DUP, ST_POST_GROUP, ST_DELIVER, ST_REDELIVER, ST_TICK, ST_BATCH, ST_REOPEN, ST_PURGE, ST_START, ST__N
};
static const char *const stat_name[ST__N] = {
	"sends", "client-id sends", "idempotent re-sends", "retried intents (new)",
	"retried intents (already committed)", "posts", "duplicate posts", "grouped pumps", "envelopes fed",
	"redeliveries", "ticks", "batches", "reopens", "outbox purges", "child starts",
};

struct rec {
	uint8_t type, side, flags, pad;
	uint32_t aux;                    /* STAT: code; ERROR: line */
	int32_t rc;                      /* ERROR */
	uint8_t id[RELM_ID_LEN];
	uint8_t h[16];                   /* body hash */
};

/* ---- the parent's record of what was acknowledged --------------------------- */

struct idrec {
	uint8_t side;
	uint8_t id[RELM_ID_LEN];
	uint8_t h[16];
	uint8_t in;
};

struct idvec {
	struct idrec *v;
	size_t n, cap;
};

static void idvec_push(struct idvec *a, int side, const uint8_t *id, const uint8_t *h, int in)
{
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 1024;
		if (!(a->v = realloc(a->v, a->cap * sizeof *a->v)))
			abort();
	}
	a->v[a->n].side = (uint8_t)side;
	memcpy(a->v[a->n].id, id, RELM_ID_LEN);
	if (h)
		memcpy(a->v[a->n].h, h, 16);
	a->v[a->n].in = (uint8_t)in;
	a->n++;
}

static struct idvec g_acks;          /* every REC_SENT / REC_RECV */
static struct idvec g_intents;       /* client ids announced, not acknowledged yet */
static struct idvec g_client_acked;  /* client ids acknowledged (for re-sends) */
static size_t g_acks_checked;
static uint64_t g_stats[ST__N];

/* ---- the child ------------------------------------------------------------- */

struct kid {
	struct tu_daemon d[SIDES];
	struct netlog *log;
	int ackfd;
	uint64_t incarnation, rng;
	unsigned opens;
	int64_t last_in[SIDES];          /* last history seq reported as received */
	int has_rel[SIDES];
	int batched;                     /* side in a batch, or -1 */
	struct rec held[256];            /* REC_SENT held until the batch commits */
	int nheld;
};

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd(struct kid *k)
{
	return splitmix(&k->rng);
}

static uint64_t rnd_below(uint64_t *x, uint64_t n)
{
	return n ? splitmix(x) % n : 0;
}

static void emit(struct kid *k, const struct rec *r)
{
	if (write(k->ackfd, r, sizeof *r) != (ssize_t)sizeof *r)
		_exit(3);
}

static void kstat(struct kid *k, enum stat_code c)
{
	struct rec r = { .type = REC_STAT, .aux = c };
	emit(k, &r);
}

static void kfail(struct kid *k, int line, int rc, const char *what)
{
	struct rec r = { .type = REC_ERROR, .aux = (uint32_t)line, .rc = rc };
	fprintf(stderr, "check_crash child %llu, line %d: %s: %d (%s) (" TU_SEED_FMT ")\n",
	        (unsigned long long)k->incarnation, line, what, rc,
	        rc < 0 ? relm_strerror(rc) : "-", TU_SEED_ARG);
	emit(k, &r);
	_exit(10);
}

#define KCHECK(k, call) do { int rc_ = (call); if (rc_ != 0) kfail((k), __LINE__, rc_, #call); } while (0)
#define KASSERT(k, cond) do { if (!(cond)) kfail((k), __LINE__, 0, #cond); } while (0)

/* Random valid UTF-8 (printable ASCII with quotes and backslashes, control
 * characters JSON must escape, 2/3/4-byte characters), 0..BODY_MAX bytes.
 * A pure function of *x: client-id bodies are derived from the id, so a
 * retry after a crash sends the same body. */
static size_t gen_body(uint64_t *x, char *out)
{
	static const char *const multi[] = { "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\n", "\t",
	                                     "\"", "\\", "\x01", "\x7f" };
	uint64_t r = rnd_below(x, 100);
	size_t want = r < 3 ? 0 : r < 75 ? 1 + rnd_below(x, 120) : r < 95 ? 120 + rnd_below(x, 1400)
	              : 1500 + rnd_below(x, BODY_MAX - 1500);
	size_t n = 0;

	while (n < want) {
		if (rnd_below(x, 8) == 0) {
			const char *m = multi[rnd_below(x, sizeof multi / sizeof multi[0])];
			memcpy(out + n, m, strlen(m));
			n += strlen(m);
		} else {
			out[n++] = (char)(0x20 + rnd_below(x, 95));
		}
	}
	return n;
}

static size_t body_of_id(const uint8_t id[RELM_ID_LEN], char *out)
{
	uint64_t x = 0;
	for (int i = 0; i < 8; i++)
		x |= (uint64_t)id[i] << (8 * i);
	return gen_body(&x, out);
}

/* After a call returned 0: nothing may be left open, and (outside a batch)
 * every incoming text row the daemon's connection now shows is reported. */
static int report_received(struct kid *k, int s)
{
	sqlite3_stmt *q;
	int n = 0;

	if (k->batched == s)
		return 0;
	KASSERT(k, !relm_store_in_txn(k->d[s].st));
	KASSERT(k, sqlite3_prepare_v2(relm__store_db(k->d[s].st),
	        "SELECT seq, id, body FROM messages WHERE direction='in' AND kind='text' AND seq>?1 "
	        "ORDER BY seq", -1, &q, NULL) == SQLITE_OK);
	sqlite3_bind_int64(q, 1, k->last_in[s]);
	while (sqlite3_step(q) == SQLITE_ROW) {
		struct rec r = { .type = REC_RECV, .side = (uint8_t)s };
		k->last_in[s] = sqlite3_column_int64(q, 0);
		KASSERT(k, sqlite3_column_bytes(q, 1) == RELM_ID_LEN);
		memcpy(r.id, sqlite3_column_blob(q, 1), RELM_ID_LEN);
		body_hash(r.h, sqlite3_column_blob(q, 2), (size_t)sqlite3_column_bytes(q, 2));
		emit(k, &r);
		n++;
	}
	sqlite3_finalize(q);
	return n;
}

static void flush_held(struct kid *k)
{
	for (int i = 0; i < k->nheld; i++)
		emit(k, &k->held[i]);
	k->nheld = 0;
}

static int has_rel(struct kid *k, int s)
{
	struct relm_store_rel r;
	if (!k->has_rel[s]) {
		memset(&r, 0, sizeof r);
		if (relm_store_rel_get(k->d[s].st, g_rel, &r, 0) == 0)
			k->has_rel[s] = 1;
		relm_store_rel_clear(&r);
	}
	return k->has_rel[s];
}

/* mode 0: engine-chosen id; 1: fresh client id; 2: re-send an acknowledged
 * client id (must be a no-op); 3: retry an intent of a killed child. */
static void op_send(struct kid *k, int s, int mode, const uint8_t *cid)
{
	static char body[BODY_MAX + 8];
	uint8_t id[RELM_ID_LEN], got[RELM_ID_LEN];
	struct rec r = { .type = REC_SENT, .side = (uint8_t)s };
	size_t len;
	int was_new = -1;

	if (!has_rel(k, s))
		return;
	if (mode == 0) {
		len = gen_body(&k->rng, body);
	} else {
		if (mode == 1) {
			struct rec in = { .type = REC_INTENT, .side = (uint8_t)s };
			for (int i = 0; i < RELM_ID_LEN; i += 8) {
				uint64_t v = rnd(k);
				memcpy(id + i, &v, 8);
			}
			memcpy(in.id, id, RELM_ID_LEN);
			emit(k, &in);            /* before the call: a kill inside it is retried */
		} else {
			memcpy(id, cid, RELM_ID_LEN);
		}
		len = body_of_id(id, body);
		r.flags = REC_F_CLIENT;
	}
	KCHECK(k, relm_core_message_send(k->d[s].core, g_rel, body, len, mode ? id : NULL, got, &was_new));
	KASSERT(k, !mode || memcmp(got, id, RELM_ID_LEN) == 0);
	if (mode == 1)
		KASSERT(k, was_new == 1);
	if (mode == 2 && was_new != 0)
		kfail(k, __LINE__, was_new, "an acknowledged client id was sent again: lost from history");
	if (mode == 0 || mode == 1)
		kstat(k, mode ? ST_SEND_CLIENT : ST_SEND);
	else
		kstat(k, mode == 2 ? ST_RESEND_ACKED : was_new ? ST_RETRY_NEW : ST_RETRY_OLD);
	memcpy(r.id, got, RELM_ID_LEN);
	body_hash(r.h, body, len);
	if (k->batched == s) {
		KASSERT(k, k->nheld < (int)(sizeof k->held / sizeof k->held[0]));
		k->held[k->nheld++] = r;
	} else {
		KASSERT(k, !relm_store_in_txn(k->d[s].st));
		emit(k, &r);
	}
}

struct mb_list {
	uint8_t id[8][32];
	uint64_t cursor[8];
	size_t n;
};

static int mb_cb(void *ctx, const uint8_t id[32], uint64_t cursor)
{
	struct mb_list *l = ctx;
	if (l->n == 8)
		return RELM_ELIMIT;
	memcpy(l->id[l->n], id, 32);
	l->cursor[l->n++] = cursor;
	return 0;
}

/* Feed a random prefix of each mailbox past its cursor (max: cap on the
 * count, 0 = none); sometimes an old position again. */
static void op_deliver(struct kid *k, int s, size_t max)
{
	struct mb_list l = { .n = 0 };
	struct tu_daemon *d = &k->d[s];

	KCHECK(k, relm_core_mailboxes(d->core, mb_cb, &l));
	for (size_t j = 0; j < l.n; j++) {
		struct mbx *b = mbx_find(k->log, l.id[j], 0);
		size_t have = b ? b->n : 0, pend, take;
		uint64_t cur = l.cursor[j];

		KASSERT(k, cur <= have);   /* the cursor never passes what the mailbox holds */
		pend = have - cur;
		take = rnd(k) % 3 == 0 ? pend : (size_t)rnd_below(&k->rng, pend + 1);
		if (max && take > max)
			take = max;
		for (size_t i = 0; i < take; i++) {
			const struct tu_mail *m = &k->log->net.v[b->idx[cur + i]];
			KCHECK(k, relm_core_envelope(d->core, l.id[j], cur + i + 1, m->buf, m->len));
			kstat(k, ST_DELIVER);
			report_received(k, s);
		}
		if (cur > 0 && rnd(k) % 8 == 0) {
			/* redelivery of a position already read, with its bytes or
			 * another record's: ignored, whatever it holds */
			uint64_t seq = 1 + rnd_below(&k->rng, cur);
			const struct tu_mail *m = &k->log->net.v[rnd(k) % 2 ? b->idx[seq - 1]
			                                             : rnd_below(&k->rng, k->log->net.n)];
			KCHECK(k, relm_core_envelope(d->core, l.id[j], seq, m->buf, m->len));
			kstat(k, ST_REDELIVER);
			if (report_received(k, s) != 0)
				kfail(k, __LINE__, 0, "a redelivered position made a new message");
		}
	}
}

struct orow {
	int64_t seq;
	uint8_t rel[RELM_ID_LEN], msg[RELM_ID_LEN];
	int has_rel, has_msg;
	uint8_t mailbox[32];
	uint8_t *buf;
	size_t len;
	int ok;
};

struct orows {
	struct orow v[512];
	size_t n;
};

static int orow_cb(void *ctx, const struct relm_store_outbox *o)
{
	struct orows *p = ctx;
	struct orow *r;
	struct relm_addr a;

	if (p->n == sizeof p->v / sizeof p->v[0])
		return 1;                /* enough for one pump */
	r = &p->v[p->n++];
	r->seq = o->seq;
	memcpy(r->rel, o->rel, RELM_ID_LEN);
	memcpy(r->msg, o->msg_id, RELM_ID_LEN);
	r->has_rel = o->has_rel;
	r->has_msg = o->has_msg;
	r->ok = relm_addr_parse(&a, o->dest, strlen(o->dest)) == 0 && a.has_id;
	memcpy(r->mailbox, a.id, 32);
	if (!(r->buf = malloc(o->len)))
		abort();
	memcpy(r->buf, o->bytes, o->len);
	r->len = o->len;
	return 0;
}

/* Post a random subset of the committed, unposted rows in a random order:
 * each durably in the log first, then relm_core_outbox_posted. */
static void op_pump(struct kid *k, int s)
{
	static struct orows p;
	size_t order[512], n = 0;
	int all = rnd(k) % 2, group, rc;

	p.n = 0;
	rc = relm_store_outbox_next(k->d[s].st, 0, 0, orow_cb, &p);
	KASSERT(k, rc == 0 || rc == 1);
	for (size_t i = 0; i < p.n; i++)
		if (all || rnd(k) % 4 != 0)
			order[n++] = i;
	if (rnd(k) % 2)
		for (size_t i = n; i > 1; i--) {
			size_t j = rnd_below(&k->rng, i), t = order[i - 1];
			order[i - 1] = order[j];
			order[j] = t;
		}
	/* one envelope at a time (write, fsync, posted), or a group: every
	 * write, one fsync, then the posted marks in one batch — as relmd
	 * gathers a loop turn's acks into one commit */
	group = n > 1 && rnd(k) % 2;
	for (size_t i = 0; i < n; i++) {
		struct orow *r = &p.v[order[i]];
		int copies = rnd(k) % 20 == 0 ? 2 : 1;
		KASSERT(k, r->ok);
		for (int c = 0; c < copies; c++) {
			KCHECK(k, group ? log_write(k->log, r->mailbox, r->buf, r->len)
			                : log_append(k->log, r->mailbox, r->buf, r->len));
			net_push(&k->log->net, r->mailbox, r->buf, r->len);
			log_index(k->log, k->log->net.n - 1);
		}
		if (copies == 2)
			kstat(k, ST_POST_DUP);
		if (!group) {
			KCHECK(k, relm_core_outbox_posted(k->d[s].core, r->seq, r->msg, r->rel,
			                                  r->has_msg && r->has_rel));
			KASSERT(k, !relm_store_in_txn(k->d[s].st));
		}
		kstat(k, ST_POST);
	}
	if (group) {
		KASSERT(k, fsync(k->log->fd) == 0);   /* the mailbox holds them: now it acks */
		KCHECK(k, relm_store_batch_begin(k->d[s].st));
		for (size_t i = 0; i < n; i++) {
			struct orow *r = &p.v[order[i]];
			KCHECK(k, relm_core_outbox_posted(k->d[s].core, r->seq, r->msg, r->rel,
			                                  r->has_msg && r->has_rel));
		}
		KCHECK(k, relm_store_batch_commit(k->d[s].st));
		KASSERT(k, !relm_store_in_txn(k->d[s].st));
		kstat(k, ST_POST_GROUP);
	}
	for (size_t i = 0; i < p.n; i++)
		free(p.v[i].buf);
}

static void op_tick(struct kid *k, int s)
{
	uint64_t next = 0;
	KCHECK(k, relm_core_tick(k->d[s].core, &next));
	kstat(k, ST_TICK);
	report_received(k, s);
}

static int64_t max_seq(struct relm_store *st)
{
	sqlite3_stmt *q;
	int64_t v = 0;
	if (sqlite3_prepare_v2(relm__store_db(st), "SELECT coalesce(max(seq),0) FROM messages", -1, &q,
	                       NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return v;
}

static void kid_open(struct kid *k, int s)
{
	/* a fresh random stream for every open: a restarted daemon that
	 * replayed its randomness would reuse nonces (check 3) */
	uint64_t stream = 1000 + k->incarnation * 4096 + (uint64_t)k->opens++ * 2 + (uint64_t)s;
	KCHECK(k, tu_daemon_open(&k->d[s], &g_clock, stream, host_of[s]));
	k->last_in[s] = max_seq(k->d[s].st);
	KASSERT(k, k->last_in[s] >= 0);
	k->has_rel[s] = 0;
}

static void op_reopen(struct kid *k, int s)
{
	tu_daemon_close(&k->d[s]);
	kid_open(k, s);
	kstat(k, ST_REOPEN);
}

/* Drop posted outbox rows, as a daemon must now and then (nothing in
 * lib/core/core.c does it yet): keeps the stores, and the checks, small. */
static void op_purge(struct kid *k, int s)
{
	int rc;
	KCHECK(k, relm_store_begin(k->d[s].st));
	rc = relm_store_outbox_purge_posted(k->d[s].st, 0);
	KASSERT(k, rc >= 0);
	KCHECK(k, relm_store_commit(k->d[s].st));
	kstat(k, ST_PURGE);
}

static void op_batch(struct kid *k, int s)
{
	int n = 2 + (int)rnd_below(&k->rng, 7);
	KCHECK(k, relm_store_batch_begin(k->d[s].st));
	k->batched = s;
	for (int i = 0; i < n; i++) {
		uint64_t r = rnd(k) % 10;
		if (r < 5)
			op_send(k, s, r == 0, NULL);
		else if (r < 8)
			op_deliver(k, s, 2);
		else
			op_tick(k, s);
	}
	KCHECK(k, relm_store_batch_commit(k->d[s].st));
	k->batched = -1;
	KASSERT(k, !relm_store_in_txn(k->d[s].st));
	flush_held(k);                   /* durable now: acknowledge */
	report_received(k, s);
	kstat(k, ST_BATCH);
}

static void child_main(uint64_t incarnation, int ackfd, struct netlog *log)
{
	struct kid k;

	memset(&k, 0, sizeof k);
	k.incarnation = incarnation;
	k.ackfd = ackfd;
	k.log = log;
	k.batched = -1;
	{
		/* splitmix64 streams are one cycle: start each child at a hashed
		 * point, not at nearby ones (overlapping streams repeat ids) */
		uint64_t in[2] = { tu_seed(), incarnation };
		crypto_generichash((uint8_t *)&k.rng, sizeof k.rng, (const uint8_t *)in, sizeof in, NULL, 0);
	}
	memcpy(k.d, g_d, sizeof k.d);
	kstat(&k, ST_START);
	KCHECK(&k, clock_load());
	/* The parent read every whole record: anything past it is a torn tail. */
	if ((log->fd = open(g_logpath, O_WRONLY | O_APPEND | O_CLOEXEC)) < 0 ||
	    ftruncate(log->fd, log->off) != 0)
		kfail(&k, __LINE__, -errno, "log open");
	for (int s = 0; s < SIDES; s++)
		kid_open(&k, s);
	/* the client of a killed daemon retries what it was not told about */
	for (size_t i = 0; i < g_intents.n; i++)
		op_send(&k, g_intents.v[i].side, 3, g_intents.v[i].id);
	for (;;) {
		uint64_t r = rnd(&k) % 100;
		int s = (int)(rnd(&k) % SIDES);
		KCHECK(&k, clock_advance(rnd(&k) % 50 == 0 ? 5000 + rnd_below(&k.rng, 25000)
		                                            : rnd_below(&k.rng, 300)));
		if (r < 20)
			op_send(&k, s, 0, NULL);
		else if (r < 27)
			op_send(&k, s, 1, NULL);
		else if (r < 30 && g_client_acked.n) {
			const struct idrec *a = &g_client_acked.v[rnd_below(&k.rng, g_client_acked.n)];
			op_send(&k, a->side, 2, a->id);
		}
		else if (r < 52)
			op_pump(&k, s);
		else if (r < 78)
			op_deliver(&k, s, 0);
		else if (r < 87)
			op_tick(&k, s);
		else if (r < 97)
			op_batch(&k, s);
		else if (r < 98)
			op_purge(&k, s);
		else
			op_reopen(&k, s);
	}
}

/* ---- the parent's checks ------------------------------------------------------- */

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

/* How many history rows of db hold (g_rel, id) in that direction with that
 * body hash (h NULL: any body); -1 if a row has the id with another
 * direction or body. */
static int msg_count(sqlite3 *db, const uint8_t id[16], int in, const uint8_t *h)
{
	sqlite3_stmt *s;
	int n = 0;
	ck_assert_int_eq(sqlite3_prepare_v2(db,
	                 "SELECT body, direction, kind FROM messages WHERE rel=?1 AND id=?2", -1, &s, NULL),
	                 SQLITE_OK);
	sqlite3_bind_blob(s, 1, g_rel, RELM_ID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, id, RELM_ID_LEN, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint8_t got[16];
		body_hash(got, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
		if ((h && memcmp(got, h, 16) != 0) ||
		    strcmp((const char *)sqlite3_column_text(s, 1), in ? "in" : "out") != 0 ||
		    strcmp((const char *)sqlite3_column_text(s, 2), "text") != 0) {
			n = -1;
			break;
		}
		n++;
	}
	sqlite3_finalize(s);
	return n;
}

/* Check 3 over the log: (dh_pub, n) → the one envelope made under it. */
struct keyent {
	uint8_t key[36];             /* dh_pub ‖ n */
	uint8_t nonce[24];
	uint8_t h[16];
	uint8_t used;
};

static struct {
	struct keyent *v;
	size_t cap, n;
	size_t checked;              /* records of g_log.net checked so far */
	size_t reposts;              /* the same envelope in the log more than once */
} g_keys;

static uint64_t key_hash(const uint8_t *k)
{
	uint64_t h = 0;
	memcpy(&h, k, 8);            /* dh_pub is a random public key */
	return h ^ ((uint64_t)le32(k + 32) * 0x9e3779b97f4a7c15ull);
}

static struct keyent *key_slot(const uint8_t key[36])
{
	size_t i = (size_t)key_hash(key) & (g_keys.cap - 1);
	while (g_keys.v[i].used && memcmp(g_keys.v[i].key, key, 36) != 0)
		i = (i + 1) & (g_keys.cap - 1);
	return &g_keys.v[i];
}

static void keys_grow(void)
{
	struct keyent *old = g_keys.v;
	size_t ocap = g_keys.cap;
	g_keys.cap = ocap ? 2 * ocap : 4096;
	g_keys.v = calloc(g_keys.cap, sizeof *g_keys.v);
	ck_assert_ptr_nonnull(g_keys.v);
	for (size_t i = 0; i < ocap; i++)
		if (old[i].used)
			*key_slot(old[i].key) = old[i];
	free(old);
}

static void check_envelopes(const struct tu_net *net, int kill_no)
{
	for (; g_keys.checked < net->n; g_keys.checked++) {
		const struct tu_mail *m = &net->v[g_keys.checked];
		uint8_t key[36], h[16];
		struct keyent *e;

		ck_assert_msg(m->len >= RELM_HEADER_LEN, "kill %d: short envelope in the log (" TU_SEED_FMT ")",
		              kill_no, TU_SEED_ARG);
		memcpy(key, m->buf + 2, 32);         /* dh_pub */
		memcpy(key + 32, m->buf + 38, 4);    /* n */
		body_hash(h, m->buf, m->len);
		if (2 * (g_keys.n + 1) > g_keys.cap)
			keys_grow();
		e = key_slot(key);
		if (!e->used) {
			memcpy(e->key, key, 36);
			memcpy(e->nonce, m->buf + 42, 24);
			memcpy(e->h, h, 16);
			e->used = 1;
			g_keys.n++;
			continue;
		}
		if (memcmp(e->h, h, 16) == 0) {
			g_keys.reposts++;
			continue;
		}
		ck_assert_msg(memcmp(e->nonce, m->buf + 42, 24) != 0,
		              "kill %d: two different envelopes under one (message key, nonce): dh %s n %u "
		              "(" TU_SEED_FMT ")", kill_no, tu_hex(key, 32), (unsigned)be32(key + 32), TU_SEED_ARG);
		ck_abort_msg("kill %d: two different envelopes under one (ratchet key, counter) from a "
		             "single-device sender: dh %s n %u — a step was posted but not committed, then "
		             "redone (" TU_SEED_FMT ")", kill_no, tu_hex(key, 32), (unsigned)be32(key + 32),
		             TU_SEED_ARG);
	}
}

/* Is this outbox row's envelope already in the log (the kill fell between
 * the mailbox's durable write and relm_core_outbox_posted)? */
static int in_log(const uint8_t *buf, size_t len)
{
	uint8_t key[36], h[16];
	struct keyent *e;
	if (len < RELM_HEADER_LEN || !g_keys.cap)
		return 0;
	memcpy(key, buf + 2, 32);
	memcpy(key + 32, buf + 38, 4);
	body_hash(h, buf, len);
	e = key_slot(key);
	return e->used && memcmp(e->h, h, 16) == 0;
}

static struct netlog g_log = { .fd = -1 };

static struct {
	int kills, unposted, posted_unmarked, torn;
	double t0, t_verify, t_child;
} g_run;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The parent looks with a plain read-only connection: it neither checkpoints
 * nor removes the WAL, so the next child recovers the store as the kill left
 * it (and may be killed while it does).  The product's reopen path
 * (relm_store_open) runs at every child start and in quiesce(). */
static sqlite3 *open_ro(int s, int kill_no)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(g_d[s].path, &db, SQLITE_OPEN_READONLY, NULL);
	ck_assert_msg(rc == SQLITE_OK, "kill %d: open %s: %s (" TU_SEED_FMT ")", kill_no, name_of[s],
	              sqlite3_errstr(rc), TU_SEED_ARG);
	sqlite3_busy_timeout(db, 5000);
	ck_assert_msg(q_int(db, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check<>'ok'") == 0,
	              "kill %d: integrity_check of %s (" TU_SEED_FMT ")", kill_no, name_of[s], TU_SEED_ARG);
	return db;
}

/* Checks 1–3 after a kill (all: every acknowledgement, not only new ones). */
static void verify(int kill_no, int all)
{
	sqlite3 *db[SIDES];
	int unposted = 0, posted = 0;
	long torn;

	torn = log_scan(&g_log);
	ck_assert_msg(torn >= 0, "kill %d: mailbox log: %ld", kill_no, torn);
	g_run.torn += torn > 0;
	check_envelopes(&g_log.net, kill_no);
	for (int s = 0; s < SIDES; s++) {
		sqlite3_stmt *q;
		db[s] = open_ro(s, kill_no);
		ck_assert_msg(q_int(db[s], "SELECT count(*) FROM (SELECT 1 FROM messages "
		                    "GROUP BY rel, id HAVING count(*) > 1)") == 0,
		              "kill %d: duplicate history rows in %s (" TU_SEED_FMT ")", kill_no, name_of[s],
		              TU_SEED_ARG);
		ck_assert_int_eq(sqlite3_prepare_v2(db[s], "SELECT bytes FROM outbox WHERE state='queued'",
		                                    -1, &q, NULL), SQLITE_OK);
		while (sqlite3_step(q) == SQLITE_ROW) {
			unposted++;
			posted += in_log(sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0));
		}
		sqlite3_finalize(q);
	}
	g_run.unposted += unposted > 0;
	g_run.posted_unmarked += posted > 0;
	for (size_t i = all ? 0 : g_acks_checked; i < g_acks.n; i++) {
		const struct idrec *a = &g_acks.v[i];
		int n = msg_count(db[a->side], a->id, a->in, a->h);
		ck_assert_msg(n == 1, "kill %d: message %s acknowledged as %s by %s: %d matching history "
		              "rows (" TU_SEED_FMT ")", kill_no, tu_hex(a->id, 16),
		              a->in ? "received" : "accepted for sending", name_of[a->side], n, TU_SEED_ARG);
	}
	g_acks_checked = g_acks.n;
	for (int s = 0; s < SIDES; s++)
		ck_assert_int_eq(sqlite3_close(db[s]), SQLITE_OK);
}

static void take(const struct rec *r, int *err_line, int *err_rc)
{
	switch (r->type) {
	case REC_INTENT:
		idvec_push(&g_intents, r->side, r->id, NULL, 0);
		break;
	case REC_SENT:
	case REC_RECV:
		idvec_push(&g_acks, r->side, r->id, r->h, r->type == REC_RECV);
		if (r->type == REC_SENT && (r->flags & REC_F_CLIENT)) {
			int known = 0;
			for (size_t i = 0; i < g_intents.n; i++)
				if (memcmp(g_intents.v[i].id, r->id, 16) == 0) {
					g_intents.v[i] = g_intents.v[--g_intents.n];
					break;
				}
			for (size_t i = g_client_acked.n; i-- > 0 && i + 64 > g_client_acked.n;)
				known |= memcmp(g_client_acked.v[i].id, r->id, 16) == 0;
			if (!known)
				idvec_push(&g_client_acked, r->side, r->id, r->h, 0);
		}
		break;
	case REC_STAT:
		if (r->aux < ST__N)
			g_stats[r->aux]++;
		break;
	case REC_ERROR:
		*err_line = (int)r->aux;
		*err_rc = r->rc;
		break;
	default:
		ck_abort_msg("bad record from the child");
	}
}

/* Read the child's records until the deadline (or EOF); returns 1 at EOF. */
static int read_recs(int fd, double deadline, int *err_line, int *err_rc)
{
	static uint8_t buf[64 * sizeof(struct rec)];
	static size_t carry;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double left = deadline - now_s();
		struct timespec ts;
		ssize_t n;
		size_t whole;

		if (deadline > 0) {
			if (left <= 0)
				return 0;
			ts.tv_sec = (time_t)left;
			ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
			if (ppoll(&p, 1, &ts, NULL) <= 0)
				continue;
		}
		n = read(fd, buf + carry, sizeof buf - carry);
		if (n < 0 && errno == EINTR)
			continue;
		ck_assert_int_ge(n, 0);
		if (n == 0) {
			ck_assert_uint_eq(carry, 0);   /* records are written whole (< PIPE_BUF) */
			return 1;
		}
		carry += (size_t)n;
		whole = carry / sizeof(struct rec);
		for (size_t i = 0; i < whole; i++) {
			struct rec r;
			memcpy(&r, buf + i * sizeof r, sizeof r);
			take(&r, err_line, err_rc);
		}
		memmove(buf, buf + whole * sizeof(struct rec), carry - whole * sizeof(struct rec));
		carry -= whole * sizeof(struct rec);
	}
}

/* ---- setup and the final quiescence -------------------------------------------- */

/* Where the stores and the log live: $RELM_CRASH_DIR, else /dev/shm when
 * usable, else $TMPDIR or /tmp.  SIGKILL is process death: the page cache
 * survives, so a RAM file system loses nothing the test could observe, and
 * without fsync waits the child makes about 5 times more steps per kill.
 * RELM_CRASH_DIR=/tmp puts the kills into real fsync waits instead. */
static const char *base_dir(void)
{
	const char *e = getenv("RELM_CRASH_DIR");
	struct stat sb;
	if (e && *e)
		return e;
	if (stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK | X_OK) == 0)
		return "/dev/shm";
	e = getenv("TMPDIR");
	return e && *e ? e : "/tmp";
}

static void world_create(void)
{
	uint8_t pa[16], pb[16], ipk[32];
	char inv[RELM_INVITE_TEXT_MAX];
	int fd;

	snprintf(g_dir, sizeof g_dir, "%s/relm-crash-XXXXXX", base_dir());
	ck_assert_ptr_nonnull(mkdtemp(g_dir));
	snprintf(g_logpath, sizeof g_logpath, "%s/mailbox.log", g_dir);
	snprintf(g_clockpath, sizeof g_clockpath, "%s/clock", g_dir);
	ck_assert_int_ge(fd = open(g_logpath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), 0);
	close(fd);
	ck_assert_int_eq(clock_load(), -EIO);   /* empty */
	g_clock = g_clock_reserved = 1700000000000ull;
	ck_assert_int_eq(clock_store(g_clock), 0);
	close(g_clockfd);

	for (int s = 0; s < SIDES; s++) {
		memset(&g_d[s], 0, sizeof g_d[s]);
		const char *who = s ? "bob" : "alice";
		snprintf(g_d[s].dir, sizeof g_d[s].dir, "%s/%s", g_dir, who);
		ck_assert_int_eq(mkdir(g_d[s].dir, 0700), 0);
		snprintf(g_d[s].path, sizeof g_d[s].path, "%s/%s/state/relm.db", g_dir, who);
	}
	ck_assert_int_eq(tu_daemon_open(&g_d[0], &g_clock, 1, host_of[0]), 0);
	ck_assert_int_eq(tu_daemon_open(&g_d[1], &g_clock, 2, host_of[1]), 0);
	ck_assert_int_eq(relm_core_proton_create(g_d[0].core, "alice", pa, ipk), 0);
	ck_assert_int_eq(relm_core_proton_create(g_d[1].core, "bob", pb, ipk), 0);
	ck_assert_int_eq(relm_core_invite_create(g_d[0].core, pa, 0, 0, inv, sizeof inv, NULL), 0);
	/* bob's hello is committed, not posted: the children post it */
	ck_assert_int_eq(relm_core_invite_accept(g_d[1].core, pb, inv, strlen(inv), "alice", g_rel), 0);
	tu_daemon_close(&g_d[0]);
	tu_daemon_close(&g_d[1]);
}

/* Every text message s holds as sent is in the other's history with the
 * same body; nothing queued, nothing failed.  why: the first reason not. */
static int converged(struct tu_daemon *d, char *why, size_t cap, int *sent)
{
	for (int s = 0; s < SIDES; s++) {
		sqlite3 *db = relm__store_db(d[s].st);
		sqlite3_stmt *q;
		int64_t v;

		if ((v = q_int(db, "SELECT count(*) FROM outbox WHERE state='queued'")) != 0) {
			snprintf(why, cap, "%s has %lld queued outbox rows", name_of[s], (long long)v);
			return 0;
		}
		if ((v = q_int(db, "SELECT count(*) FROM messages WHERE status='failed'")) != 0) {
			snprintf(why, cap, "%s has %lld failed messages", name_of[s], (long long)v);
			return 0;
		}
		sent[s] = 0;
		ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT id, body FROM messages WHERE direction='out' "
		                 "AND kind='text'", -1, &q, NULL), SQLITE_OK);
		while (sqlite3_step(q) == SQLITE_ROW) {
			uint8_t h[16];
			body_hash(h, sqlite3_column_blob(q, 1), (size_t)sqlite3_column_bytes(q, 1));
			if (msg_count(relm__store_db(d[1 - s].st), sqlite3_column_blob(q, 0), 1, h) != 1) {
				snprintf(why, cap, "message %s sent by %s is not in %s's history",
				         tu_hex(sqlite3_column_blob(q, 0), 16), name_of[s], name_of[1 - s]);
				sqlite3_finalize(q);
				return 0;
			}
			sent[s]++;
		}
		sqlite3_finalize(q);
	}
	return 1;
}

static int settle(struct tu_daemon *d, char *why, size_t cap, int *sent, int *rounds)
{
	struct tu_daemon *ds[SIDES] = { &d[0], &d[1] };
	for (*rounds = 0; *rounds < SETTLE_ROUNDS; (*rounds)++) {
		if (converged(d, why, cap, sent))
			return 1;
		tu_settle(ds, SIDES, &g_log.net, 1, SETTLE_STEP_MS);
	}
	return converged(d, why, cap, sent);
}

static void quiesce(int points)
{
	struct tu_daemon d[SIDES];
	char why[200] = "";
	int sent[SIDES], sent2[SIDES], rounds, rounds2, was_new;
	uint8_t id[SIDES][16];

	ck_assert_int_eq(clock_load(), 0);
	memcpy(d, g_d, sizeof d);
	g_log.fd = open(g_logpath, O_WRONLY | O_APPEND | O_CLOEXEC);
	ck_assert_int_ge(g_log.fd, 0);
	ck_assert_int_eq(ftruncate(g_log.fd, g_log.off), 0);   /* a torn tail of the last child */
	g_log.net.on_post = log_on_post;
	g_log.net.post_ctx = &g_log;
	for (int s = 0; s < SIDES; s++)
		ck_assert_int_eq(tu_daemon_open(&d[s], &g_clock, 900 + (uint64_t)s, host_of[s]), 0);
	/* the client retries what a killed daemon never confirmed */
	for (size_t i = 0; i < g_intents.n; i++) {
		static char body[BODY_MAX + 8];
		size_t len = body_of_id(g_intents.v[i].id, body);
		uint8_t got[16];
		int s = g_intents.v[i].side;
		ck_assert_int_eq(relm_core_message_send(d[s].core, g_rel, body, len, g_intents.v[i].id,
		                                        got, &was_new), 0);
	}
	ck_assert_msg(settle(d, why, sizeof why, sent, &rounds),
	              "no quiescence after %d rounds of %d ms: %s (" TU_SEED_FMT ")", rounds, SETTLE_STEP_MS,
	              why, TU_SEED_ARG);
	/* the conversation continues */
	for (int s = 0; s < SIDES; s++) {
		ck_assert_int_eq(relm_core_message_send(d[s].core, g_rel, "after the storm", 15, NULL, id[s],
		                                        &was_new), 0);
		ck_assert_int_eq(was_new, 1);
	}
	ck_assert_msg(settle(d, why, sizeof why, sent2, &rounds2), "no quiescence after the last "
	              "messages: %s (" TU_SEED_FMT ")", why, TU_SEED_ARG);
	for (int s = 0; s < SIDES; s++) {
		ck_assert_int_eq(sent2[s], sent[s] + 1);
		ck_assert_int_eq(msg_count(relm__store_db(d[1 - s].st), id[s], 1, NULL), 1);
	}
	for (int s = 0; s < SIDES; s++)
		tu_daemon_close(&d[s]);
	close(g_log.fd);
	g_log.fd = -1;
	close(g_clockfd);
	check_envelopes(&g_log.net, points);
	verify(points, 1);

	fprintf(stderr, "  crash: %d kills in %.1f s (children %.1f s, checks after kills %.1f s)\n",
	        g_run.kills, now_s() - g_run.t0, g_run.t_child, g_run.t_verify);
	fprintf(stderr, "  crash: %zu acknowledgements checked after every kill; in the end %d messages "
	        "A→B and %d B→A, all delivered (quiescence in %d rounds, +%d for the last two)\n",
	        g_acks.n, sent[0], sent[1], rounds, rounds2);
	fprintf(stderr, "  crash: %zu envelopes in the mailbox log, %zu distinct (ratchet key, counter), "
	        "%zu re-posted copies, 0 reused\n", g_log.net.n, g_keys.n, g_keys.reposts);
	fprintf(stderr, "  crash: kills with committed-unposted outbox rows %d, between the mailbox's "
	        "write and outbox_posted %d, torn log tails %d; virtual time %.0f s\n",
	        g_run.unposted, g_run.posted_unmarked, g_run.torn,
	        (double)(g_clock - 1700000000000ull) / 1000);
	fprintf(stderr, "  crash:");
	for (int i = 0; i < ST__N; i++)
		fprintf(stderr, " %s %llu%s", stat_name[i], (unsigned long long)g_stats[i],
		        i + 1 < ST__N ? "," : "\n");
}

START_TEST(test_kill9)
{
	const char *e = getenv("RELM_CRASH_POINTS");
	int points = e && *e ? atoi(e) : POINTS_DEFAULT;

	g_run.t0 = now_s();
	world_create();
	for (int k = 0; k < points; k++) {
		int pfd[2], status, err_line = 0, err_rc = 0, eof;
		pid_t pid;
		/* most kills anywhere in the loop, some during startup/recovery */
		uint64_t r = tu_rand_below(100);
		uint64_t delay_us = r < 10 ? tu_rand_below(5000) : 5000 + tu_rand_below(r < 75 ? 80000 : 160000);

		double t = now_s();
		ck_assert_int_eq(pipe(pfd), 0);
		fflush(stderr);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			close(pfd[0]);
			signal(SIGPIPE, SIG_DFL);
			child_main((uint64_t)k, pfd[1], &g_log);
			_exit(0);
		}
		close(pfd[1]);
		eof = read_recs(pfd[0], now_s() + (double)delay_us / 1e6, &err_line, &err_rc);
		kill(pid, SIGKILL);
		if (!eof)
			read_recs(pfd[0], 0, &err_line, &err_rc);
		close(pfd[0]);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		g_run.t_child += now_s() - t;
		ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		              "kill %d: the child ended on its own (status 0x%x, failed at check_crash.c:%d "
		              "with %d %s) (" TU_SEED_FMT ")", k, status, err_line, err_rc,
		              err_rc < 0 ? relm_strerror(err_rc) : "", TU_SEED_ARG);
		g_run.kills++;
		t = now_s();
		verify(k, 0);
		g_run.t_verify += now_s() - t;
	}
	quiesce(points);
	{
		char cmd[600];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
		ck_assert_int_eq(system(cmd), 0);
	}
	tu_net_free(&g_log.net);
	for (size_t i = 0; i < g_log.nmb; i++)
		free(g_log.mb[i].idx);
	free(g_log.mb);
	free(g_keys.v);
	free(g_acks.v);
	free(g_intents.v);
	free(g_client_acked.v);
}
END_TEST

int main(void)
{
	const char *e = getenv("RELM_CRASH_POINTS");
	int points = e && *e ? atoi(e) : POINTS_DEFAULT;
	Suite *s = suite_create("crash");
	TCase *tc = tcase_create("kill9");
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	/* ~0.1 s per kill point plus the final settle; generous for sanitizers */
	tcase_set_timeout(tc, 120 + points * 0.5);
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

/*
 * scale_build.c — building bench_scale's stores (scale_build.h).
 *
 * The stores (two daemons A and B, each with one proton, N relationships
 * between them) are cached in DIR/<N>/ and rebuilt when missing or when
 * the schema version or this program's build recipe changed (DIR/<N>/stamp).
 *
 * Building.  A relationship made through the core (invite.create on A,
 * invite.accept on B, A opens the hello, receipts, then one message each
 * way with their receipts: X3DH, two DH ratchet steps per side, ~6 history
 * rows; then the clock moves past the used keys' lifetime and the timers
 * run, so the relationships are idle as after ten quiet minutes) costs
 * what the "real ms/rel" line says.  When N of them would take
 * over two minutes (or with --clone) we build TEMPLATES of them for real
 * and fill the rest with clones: each clone copies one template's row on
 * both sides — state blob, history rows, mailbox cursor, A's replay-guard
 * row, on one of the templates' invites — with a fresh relationship id (the same on both sides, as real ids
 * are), fresh mailbox key pairs on both sides, and the blob made to
 * match: decoded, its id, mbox_pk/mbox_sk, remote_mbox_pk and remote
 * mailbox address set, encoded again (so any blob version works).  A clone's ratchet keys are its template's (until its first
 * message, after which its chains diverge).  This changes nothing the
 * benchmark measures: every row, blob and index entry has the size and
 * shape of a real one, every key column (ids, mailbox ids, replay EKs) is
 * random as in real data, and the store never looks inside the blob; only
 * the secret values repeat.  Each patched blob is decoded again with
 * relm_rel_decode and checked before it is stored.  --real forces a full
 * build through the core (for comparison).
 *
 * Last, the invites expire and are deleted, as relmd's sweep does once
 * their lifetime (a week by default) is over, and their replay-guard rows
 * with them (store v14): a relationship idle for longer than that holds
 * no invite and no replay-guard row of its own.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sodium.h>
#include "wire/addr.h"
#include "core/core.h"
#include "engine/env.h"
#include "error.h"
#include "wire/invite.h"
#include "engine/rel_state.h"
#include "store/store.h"
#include "scale_build.h"

enum {
	RECIPE_VERSION = 6,         /* bump when the build below changes (5: idle relationships;
	                               6: the invites expired, store v14) */
	TEMPLATES      = 256,       /* real relationships cloned from */
	REAL_BUDGET_S  = 120,       /* build for real when it fits in this */
	BATCH          = 1000,      /* rows per group commit while building */
};

/* `count` relationships through the core, `chunk` at a time: invite on A,
 * accept on B, settle (hello, receipts), one message A→B and one B→A,
 * settle.  The new ids are appended to out. */
static void build_real(struct daemon *a, struct daemon *b, size_t count, struct idlist *out)
{
	const size_t chunk = 500;
	char inv[RELM_INVITE_TEXT_MAX];
	uint8_t msg[RELM_ID_LEN];
	int was_new;

	for (size_t done = 0; done < count;) {
		size_t k = count - done < chunk ? count - done : chunk, first = out->n;
		batch_begin(a, b);
		for (size_t i = 0; i < k; i++) {
			uint8_t rel[RELM_ID_LEN], peer[RELM_ID_LEN], ipk[RELM_SIGN_PK_LEN];
			/* one relationship per pair of protons (core refuses a second):
			 * every relationship gets a peer proton of its own on B */
			CHECK(relm_core_proton_create(b->core, "peer", peer, ipk));
			CHECK(relm_core_invite_create(a->core, a->proton, 0, 0, inv, sizeof inv, NULL));
			CHECK(relm_core_invite_accept(b->core, peer, inv, strlen(inv), "peer", rel));
			idlist_push(out, rel);
		}
		batch_commit(a, b);
		settle(a, b);
		batch_begin(a, b);
		for (size_t i = first; i < out->n; i++)
			CHECK(relm_core_message_send(a->core, out->id[i], "hello from a", 12, NULL, msg, &was_new));
		batch_commit(a, b);
		settle(a, b);
		batch_begin(a, b);
		for (size_t i = first; i < out->n; i++)
			CHECK(relm_core_message_send(b->core, out->id[i], "hello from b", 12, NULL, msg, &was_new));
		batch_commit(a, b);
		settle(a, b);
		done += k;
	}
	purge(a);
	purge(b);
}

/* Leave every relationship idle, as relmd would after ten quiet minutes:
 * the clock moves past the used-key lifetime (the keys kept for a
 * sibling's colliding message, RELM_USED_KEY_TTL_MS) and the timers run,
 * so what the store holds is what an idle relationship holds. */
static void go_idle(struct daemon *a, struct daemon *b)
{
	g_clock += a->env.params.used_key_ttl_ms + TICK_STEP_MS;
	batch_begin(a, b);
	tick_all(a);
	tick_all(b);
	batch_commit(a, b);
	settle(a, b);
	purge(a);
	purge(b);
}

/* One side of a template, read once. */
struct side_tpl {
	struct relm_store_rel row;                 /* with state and secrets */
	uint64_t cursor;
	struct relm_store_msg *msgs;               /* oldest first; bodies owned */
	size_t nmsgs;
	struct relm_rel *rel;                      /* the decoded state */
	struct relm_addr remote;                   /* parsed rel->remote_mailbox */
};

static int msg_copy_cb(void *ctx, const struct relm_store_msg *m)
{
	struct side_tpl *s = ctx;
	if (!(s->msgs = realloc(s->msgs, (s->nmsgs + 1) * sizeof *s->msgs)))
		die("out of memory");
	struct relm_store_msg *c = &s->msgs[s->nmsgs++];
	*c = *m;
	uint8_t *b = malloc(m->body_len ? m->body_len : 1);
	if (!b)
		die("out of memory");
	if (m->body_len)
		memcpy(b, m->body, m->body_len);
	c->body = b;
	return 0;
}

static void side_tpl_load(struct side_tpl *s, struct daemon *d, const uint8_t id[RELM_ID_LEN])
{
	memset(s, 0, sizeof *s);
	CHECK(relm_store_rel_get(d->st, id, &s->row, RELM_STORE_WITH_STATE | RELM_STORE_WITH_SECRETS));
	CHECK(relm_store_cursor_get(d->st, s->row.mailbox_id, &s->cursor));
	CHECK(relm_store_msg_list(d->st, id, 0, 0, msg_copy_cb, s));
	{
		/* quiescent: nothing waits for a receipt (the queue is not cloned) */
		uint64_t n = 0;
		CHECK(relm_store_outgoing_count(d->st, id, &n));
		if (n != 0)
			die("template relationship has %llu unreceipted messages", (unsigned long long)n);
	}
	for (size_t i = 0; i < s->nmsgs / 2; i++) {      /* newest first → oldest first */
		struct relm_store_msg t = s->msgs[i];
		s->msgs[i] = s->msgs[s->nmsgs - 1 - i];
		s->msgs[s->nmsgs - 1 - i] = t;
	}
	CHECK(relm_rel_decode(&s->rel, s->row.state, s->row.state_len));
	if (relm_addr_parse(&s->remote, s->rel->remote_mailbox, strlen(s->rel->remote_mailbox)) != 0 ||
	    !s->remote.has_id)
		die("template without a remote mailbox address");
}

static void side_tpl_free(struct side_tpl *s)
{
	for (size_t i = 0; i < s->nmsgs; i++)
		free((void *)(uintptr_t)s->msgs[i].body);
	free(s->msgs);
	relm_rel_free(s->rel);
	relm_store_rel_clear(&s->row);
}

/* A copy of template blob `t` with the clone's identity: decoded, the
 * clone's id, mailbox key pair, remote mailbox key and address set, encoded
 * again (so any blob version the engine writes works here), and decoded
 * once more to check.  The clones keep the template's gate key: both
 * sides' templates share it, as both sides of one relationship do.
 * *deadline gets the engine's next timer. */
static uint8_t *patch_blob(const struct side_tpl *t, const uint8_t id[RELM_ID_LEN],
                           const uint8_t mpk[RELM_SIGN_PK_LEN], const uint8_t msk[RELM_SIGN_SK_LEN],
                           const uint8_t rpk[RELM_SIGN_PK_LEN], const char *raddr,
                           size_t *outlen, uint64_t *deadline, const struct relm_env *env)
{
	struct relm_rel *rel = NULL;
	uint8_t *o = NULL;

	CHECK(relm_rel_decode(&rel, t->row.state, t->row.state_len));
	/* every field we overwrite must hold what the row says it holds */
	if (memcmp(rel->id, t->row.id, RELM_ID_LEN) != 0 ||
	    memcmp(rel->mbox_pk, t->row.mailbox_id, RELM_SIGN_PK_LEN) != 0 ||
	    memcmp(rel->remote_mbox_pk, t->remote.id, RELM_SIGN_PK_LEN) != 0)
		die("template blob does not match its row");
	if (strlen(raddr) >= sizeof rel->remote_mailbox)
		die("remote address too long");
	memcpy(rel->id, id, RELM_ID_LEN);
	memcpy(rel->mbox_pk, mpk, RELM_SIGN_PK_LEN);
	memcpy(rel->mbox_sk, msk, RELM_SIGN_SK_LEN);
	memcpy(rel->remote_mbox_pk, rpk, RELM_SIGN_PK_LEN);
	snprintf(rel->remote_mailbox, sizeof rel->remote_mailbox, "%s", raddr);
	CHECK(relm_rel_encode(rel, &o, outlen));
	relm_rel_free(rel);

	CHECK(relm_rel_decode(&rel, o, *outlen));
	if (memcmp(rel->id, id, RELM_ID_LEN) != 0 || memcmp(rel->mbox_pk, mpk, RELM_SIGN_PK_LEN) != 0 ||
	    memcmp(rel->mbox_sk, msk, RELM_SIGN_SK_LEN) != 0 ||
	    memcmp(rel->remote_mbox_pk, rpk, RELM_SIGN_PK_LEN) != 0 || strcmp(rel->remote_mailbox, raddr) != 0)
		die("patched blob does not decode to the clone");
	*deadline = relm_rel_deadline(rel, env);
	relm_rel_free(rel);
	return o;
}

/* Store one side of a clone. */
static void clone_side(struct daemon *d, const struct side_tpl *t, const uint8_t id[RELM_ID_LEN],
                       const uint8_t mpk[32], const uint8_t msk[64], const uint8_t rpk[32])
{
	struct relm_store_rel r = t->row;
	struct relm_addr ra = t->remote;
	char raddr[RELM_MAILBOX_ADDR_MAX + 1];
	uint64_t deadline = 0;
	size_t blen;

	memcpy(ra.id, rpk, RELM_SIGN_PK_LEN);
	if (relm_addr_format(raddr, sizeof raddr, &ra) < 0)
		die("addr format");
	uint8_t *blob = patch_blob(t, id, mpk, msk, rpk, raddr, &blen, &deadline, &d->env);
	memcpy(r.id, id, RELM_ID_LEN);
	memcpy(r.mailbox_id, mpk, RELM_SIGN_PK_LEN);
	r.state = blob;
	r.state_len = blen;
	CHECK(relm_store_rel_put(d->st, &r));
	if (deadline)
		CHECK(relm_store_rel_set_deadline(d->st, id, deadline));
	if (t->cursor)
		CHECK(relm_store_cursor_set(d->st, mpk, t->cursor));
	for (size_t i = 0; i < t->nmsgs; i++) {
		struct relm_store_msg m = t->msgs[i];
		memcpy(m.rel, id, RELM_ID_LEN);
		if (relm_store_msg_insert(d->st, &m) != 1)
			die("clone: history insert failed");
	}
	relm_rel_blob_free(blob, blen);
	sodium_memzero(&r, sizeof r);
}

struct spks {
	uint32_t id[TEMPLATES];
	size_t n;
};

static int spk_cb(void *ctx, const struct relm_store_invite *inv)
{
	struct spks *s = ctx;
	if (s->n < TEMPLATES)
		s->id[s->n++] = inv->spk_id;
	return 0;
}

static void build_clones(struct daemon *a, struct daemon *b, const struct idlist *tpl, size_t count,
                         struct idlist *out)
{
	struct spks spk = { .n = 0 };
	CHECK(relm_store_invite_list(a->st, a->proton, 0, spk_cb, &spk));
	if (spk.n == 0)
		die("clone: the templates left no invite");
	const size_t nt = tpl->n;         /* out may be tpl: it grows below */
	struct side_tpl *ta = calloc(nt, sizeof *ta), *tb = calloc(nt, sizeof *tb);
	if (!ta || !tb)
		die("out of memory");
	for (size_t i = 0; i < nt; i++) {
		side_tpl_load(&ta[i], a, tpl->id[i]);
		side_tpl_load(&tb[i], b, tpl->id[i]);
	}
	for (size_t k = 0; k < count; k++) {
		size_t t = k % nt;
		uint8_t id[RELM_ID_LEN], apk[32], ask[64], bpk[32], bsk[64], ek[32];
		if (k % BATCH == 0)
			batch_begin(a, b);
		CHECK(relm_store_begin(a->st));
		CHECK(relm_store_begin(b->st));
		randombytes_buf(id, sizeof id);
		crypto_sign_keypair(apk, ask);
		crypto_sign_keypair(bpk, bsk);
		clone_side(a, &ta[t], id, apk, ask, bpk);
		clone_side(b, &tb[t], id, bpk, bsk, apk);
		/* A (the inviter) remembers the accepter's EK of every relationship */
		randombytes_buf(ek, sizeof ek);
		CHECK(relm_store_replay_check_insert(a->st, a->proton, spk.id[k % spk.n], ek, id, g_clock));
		CHECK(relm_store_commit(a->st));
		CHECK(relm_store_commit(b->st));
		sodium_memzero(ask, sizeof ask);
		sodium_memzero(bsk, sizeof bsk);
		idlist_push(out, id);
		if (k % BATCH == BATCH - 1 || k == count - 1) {
			batch_commit(a, b);
			fprintf(stderr, "\r  cloned %zu/%zu", k + 1, count);
		}
	}
	fprintf(stderr, "\n");
	for (size_t i = 0; i < nt; i++) {
		side_tpl_free(&ta[i]);
		side_tpl_free(&tb[i]);
	}
	free(ta);
	free(tb);
}

static int read_stamp(const char *base, size_t n, struct build_info *bi)
{
	char p[4200], want[128], line[256];
	FILE *f;
	int ok = 0;
	snprintf(p, sizeof p, "%s/stamp", base);
	snprintf(want, sizeof want, "relm-bench-scale recipe=%d schema=%d n=%zu ",
	         RECIPE_VERSION, RELM_STORE_SCHEMA_VERSION, n);
	if (!(f = fopen(p, "r")))
		return 0;
	if (fgets(line, sizeof line, f) && strncmp(line, want, strlen(want)) == 0 &&
	    sscanf(line + strlen(want), "cloned=%d real_ms_per_rel=%lf build_s=%lf",
	           &bi->cloned, &bi->real_ms_per_rel, &bi->build_s) == 3)
		ok = 1;
	fclose(f);
	return ok;
}

static void write_stamp(const char *base, size_t n, const struct build_info *bi)
{
	char p[4200];
	FILE *f;
	snprintf(p, sizeof p, "%s/stamp", base);
	if (!(f = fopen(p, "w")))
		die("write %s: %s", p, strerror(errno));
	fprintf(f, "relm-bench-scale recipe=%d schema=%d n=%zu cloned=%d real_ms_per_rel=%.4f build_s=%.2f\n",
	        RECIPE_VERSION, RELM_STORE_SCHEMA_VERSION, n, bi->cloned, bi->real_ms_per_rel, bi->build_s);
	fclose(f);
}

static void rm_store(const struct daemon *d)
{
	char p[4300];
	unlink(d->path);
	snprintf(p, sizeof p, "%s-wal", d->path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", d->path);
	unlink(p);
}

static void build_stores(const char *base, size_t n, int force, struct daemon *a, struct daemon *b,
                         struct build_info *bi)
{
	fprintf(stderr, "bench_scale: building %zu relationships in %s\n", n, base);
	mkdir_p(base, 0755);
	mkdir_p(a->dir, 0700);
	mkdir_p(b->dir, 0700);
	rm_store(a);
	rm_store(b);
	daemon_open(a);
	daemon_open(b);
	uint8_t ipk[RELM_SIGN_PK_LEN];
	CHECK(relm_core_proton_create(a->core, "a", a->proton, ipk));
	CHECK(relm_core_proton_create(b->core, "b", b->proton, ipk));

	struct idlist ids = { 0 };
	double t0 = now_s();
	size_t first = n < TEMPLATES ? n : TEMPLATES;
	build_real(a, b, first, &ids);
	go_idle(a, b);
	double t1 = now_s();
	bi->real_ms_per_rel = (t1 - t0) * 1000.0 / (double)first;
	double est = bi->real_ms_per_rel * (double)n / 1000.0;
	fprintf(stderr, "  %zu real relationships: %.2f ms each; all %zu for real: ~%.0f s\n",
	        first, bi->real_ms_per_rel, n, est);
	bi->cloned = force == 2 || (force == 0 && est > REAL_BUDGET_S);
	if (n > first) {
		if (bi->cloned) {
			build_clones(a, b, &ids, n - first, &ids);
		} else {
			size_t step = 5000;
			for (size_t d = first; d < n; d += step) {
				build_real(a, b, n - d < step ? n - d : step, &ids);
				fprintf(stderr, "\r  real %zu/%zu", ids.n, n);
			}
			go_idle(a, b);
			fprintf(stderr, "\n");
			bi->real_ms_per_rel = (now_s() - t0) * 1000.0 / (double)n;
		}
	}
	free(ids.id);
	/* the invites' lifetime (the default: the build asks for no other)
	 * passes, and relmd's sweep — the core's call — deletes them, the
	 * replay guard's rows and the mailboxes' cursors with them */
	g_clock += (uint64_t)RELM_INVITE_TTL_DEFAULT_S * 1000u + 1;
	int expired = relm_core_invites_expire(a->core, NULL, NULL);
	if (expired < 0)
		die("invite expiry: %s", relm_strerror(expired));
	if ((size_t)expired != first)
		die("invite expiry: %d invites deleted, %zu made", expired, first);
	/* leave the WAL checkpointed so every run starts from the same file */
	daemon_close(a);
	daemon_close(b);
	bi->build_s = now_s() - t0;
	write_stamp(base, n, bi);
	fprintf(stderr, "  built in %.1f s (%s)\n", bi->build_s, bi->cloned ? "templates + clones" : "all real");
}

/* Make (or reuse) DIR/<n>/{a,b}/relm.db.  force: 0 auto, 1 real, 2 clone. */
void ensure_stores(const char *dir, size_t n, int force, int rebuild,
                   struct daemon *a, struct daemon *b, struct build_info *bi)
{
	char base[4096];
	snprintf(base, sizeof base, "%s/%zu", dir, n);
	daemon_init(a, base, "a", "127.0.0.1:7427");
	daemon_init(b, base, "b", "127.0.0.2:7427");
	if (!rebuild && read_stamp(base, n, bi) && access(a->path, F_OK) == 0 &&
	    access(b->path, F_OK) == 0 && (force == 0 || (force == 2) == bi->cloned))
		return;

	/* Build in a child process: its malloc is tuned never to give memory
	 * back (on this VM every brk() shrink is a cross-CPU TLB shootdown,
	 * 5× the build time), and nothing of the build stays in the process
	 * that measures. */
	pid_t pid = fork();
	int status = 0;
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		mallopt(M_TRIM_THRESHOLD, 1 << 30);
		mallopt(M_TOP_PAD, 64 << 20);
		build_stores(base, n, force, a, b, bi);
		fflush(NULL);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("building the %zu store failed", n);
	if (!read_stamp(base, n, bi))
		die("no stamp after building %s", base);
}
/*
 * stage.c — relationship columns staged in memory while a transaction is
 * open, and written back by one UPDATE per relationship at its commit.
 *
 * An engine step used to rewrite its relationship's row three or four times
 * (state, deadline, remote address, unread), and the row carries the state
 * blob on overflow pages: with secure_delete every rewrite freed, zeroed
 * and reallocated those pages, and each rewrite cost an UPDATE with its
 * blob copies (bench_daemon's sender: about 8 WAL frames per group commit
 * for that one row, now under 2; the store's CPU per step roughly halved).
 * Now those columns are staged here, keyed by relationship id, and written
 * by ONE UPDATE per relationship just before the transaction's COMMIT
 * (relm__stage_flush).  The durability rule is untouched: the UPDATE is
 * inside the same transaction as the step's outbox rows and cursor, and
 * nothing is staged across a commit.  Every reader of these columns
 * overlays the staged values (rels.c).
 *
 * Steps inside a batch are savepoints, so staging has them too: the first
 * time a step touches an entry, a copy of the entry goes to the undo log;
 * rolling the step back restores the copies, releasing it drops them.  The
 * undo copy owns the state blob it saved; the live entry then points at
 * the same blob with `owned` clear until it is replaced or the step ends.
 *
 * An entry with staged columns (mask, unread_add or out_add nonzero)
 * implies its row exists at that level of the transaction (checked when
 * first staged; the undo log keeps the two in step), so later stagings
 * skip the check.
 *
 * The relationship's count of retransmission rows (outgoing_count) is
 * staged here too, as the difference the transaction made (out_add), and
 * written by one UPSERT per relationship at the same moment: it was kept
 * by a trigger on every row inserted or deleted, about 15,000
 * instructions each, twice per message on a device that keeps a row for
 * each of its siblings' messages (schema v13 dropped the triggers).
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "store/store_int.h"

/* ---- memory ----------------------------------------------------------- */

/* Ids are mostly hashes, but not always (tests, fixtures): mix all 16 bytes. */
static uint32_t stage_hash(const uint8_t id[RELM_ID_LEN])
{
	uint64_t a, b;

	memcpy(&a, id, 8);
	memcpy(&b, id + 8, 8);
	a ^= b << 29 | b >> 35;
	a ^= a >> 33;
	a *= 0xff51afd7ed558ccdULL;
	a ^= a >> 33;
	return (uint32_t)a;
}

struct relm__stage_ent *relm__stage_find(const struct relm__stage *sg, const uint8_t id[RELM_ID_LEN])
{
	uint32_t m = sg->nslots - 1;

	if (!sg->n)
		return NULL;
	for (uint32_t i = stage_hash(id) & m;; i = (i + 1) & m) {
		uint32_t v = sg->slots[i];
		if (!v)
			return NULL;
		if (memcmp(sg->ents[v - 1].id, id, RELM_ID_LEN) == 0)
			return &sg->ents[v - 1];
	}
}

static void slot_put(struct relm__stage *sg, uint32_t idx)
{
	uint32_t m = sg->nslots - 1, i = stage_hash(sg->ents[idx].id) & m;

	while (sg->slots[i])
		i = (i + 1) & m;
	sg->slots[i] = idx + 1;
}

/* Array p (n used of *cap elements) with room for one more, doubling
 * from `first`: p or its new place, or NULL when out of memory (p is
 * untouched then).  Plain realloc: the arrays hold pointers to secrets,
 * not secrets. */
static void *grow(void *p, uint32_t n, uint32_t *cap, size_t elem, uint32_t first)
{
	uint32_t c = *cap ? 2 * *cap : first;
	void *q;

	if (n < *cap)
		return p;
	if (c > UINT32_MAX / 4 || !(q = realloc(p, c * elem)))
		return NULL;
	*cap = c;
	return q;
}

/* A new entry, nothing staged.  Entries and slots grow by doubling; the
 * load factor stays at most 1/2 so probes stay short and always end. */
static int stage_add(struct relm__stage *sg, const uint8_t id[RELM_ID_LEN],
                     struct relm__stage_ent **out)
{
	struct relm__stage_ent *e, *ents = grow(sg->ents, sg->n, &sg->cap, sizeof *sg->ents, 16);

	if (!ents)
		return RELM_ENOMEM;
	sg->ents = ents;
	if (2 * (sg->n + 1) > sg->nslots) {
		uint32_t ns = sg->nslots ? 2 * sg->nslots : 32;
		uint32_t *v = calloc(ns, sizeof *v);
		if (!v)
			return RELM_ENOMEM;
		free(sg->slots);
		sg->slots = v;
		sg->nslots = ns;
		for (uint32_t i = 0; i < sg->n; i++)
			slot_put(sg, i);
	}
	e = &sg->ents[sg->n];
	memset(e, 0, sizeof *e);
	memcpy(e->id, id, RELM_ID_LEN);
	e->owned = 1;
	slot_put(sg, sg->n++);
	*out = e;
	return 0;
}

static void drop_state(struct relm__stage_ent *e)
{
	if (e->state && e->owned)
		relm_store_buf_free(e->state, e->state_len);
	e->state = NULL;
	e->state_len = 0;
	e->owned = 1;
}

int relm__stage_set_state(struct relm__stage_ent *e, const uint8_t *state, size_t len)
{
	uint8_t *copy;

	if (e->state && e->owned && e->state_len == len) {
		/* the usual case: a blob of the same size, rewritten in place */
		if (len)
			memcpy(e->state, state, len);
		return 0;
	}
	if (!(copy = malloc(len ? len : 1)))
		return RELM_ENOMEM;
	if (len)
		memcpy(copy, state, len);
	drop_state(e);
	e->state = copy;
	e->state_len = len;
	return 0;
}

/* First touch of an entry in a batched step: remember it as it was. */
static int stage_save(struct relm__stage *sg, uint32_t idx)
{
	struct relm__stage_ent *e = &sg->ents[idx];
	struct relm__stage_undo *undo = grow(sg->undo, sg->nundo, &sg->capundo, sizeof *sg->undo, 8);

	if (!undo)
		return RELM_ENOMEM;
	sg->undo = undo;
	sg->undo[sg->nundo].idx = idx;
	sg->undo[sg->nundo].saved = *e;
	sg->nundo++;
	e->owned = 0;              /* the undo copy owns the blob now */
	e->gen = sg->gen;
	return 0;
}

void relm__stage_release(struct relm__stage *sg)
{
	for (uint32_t i = 0; i < sg->nundo; i++) {
		struct relm__stage_undo *u = &sg->undo[i];
		struct relm__stage_ent *e = &sg->ents[u->idx];
		if (!u->saved.state)
			continue;
		if (e->state == u->saved.state)
			e->owned = 1;      /* not replaced: back to the entry */
		else
			relm_store_buf_free(u->saved.state, u->saved.state_len);
	}
	sg->nundo = 0;
}

void relm__stage_undo(struct relm__stage *sg)
{
	for (uint32_t i = sg->nundo; i-- > 0;) {
		struct relm__stage_undo *u = &sg->undo[i];
		struct relm__stage_ent *e = &sg->ents[u->idx];
		if (e->state && e->owned)
			relm_store_buf_free(e->state, e->state_len);
		*e = u->saved;
		e->owned = 1;
	}
	sodium_memzero(sg->undo, sg->nundo * sizeof *sg->undo);
	sg->nundo = 0;
}

void relm__stage_reset(struct relm__stage *sg)
{
	for (uint32_t i = 0; i < sg->nundo; i++)
		relm_store_buf_free(sg->undo[i].saved.state, sg->undo[i].saved.state_len);
	for (uint32_t i = 0; i < sg->n; i++)
		drop_state(&sg->ents[i]);
	if (sg->nundo)
		sodium_memzero(sg->undo, sg->nundo * sizeof *sg->undo);
	if (sg->n)
		memset(sg->slots, 0, sg->nslots * sizeof *sg->slots);
	sg->n = 0;
	sg->nundo = 0;
	/* a batch that touched many relationships (a tick after a long
	 * sleep) does not keep its tables for ever */
	if (sg->cap > 1024) {
		free(sg->ents);
		free(sg->slots);
		free(sg->undo);
		sg->ents = NULL;
		sg->slots = NULL;
		sg->undo = NULL;
		sg->cap = sg->nslots = sg->capundo = 0;
	}
}

void relm__stage_destroy(struct relm__stage *sg)
{
	relm__stage_reset(sg);
	free(sg->ents);
	free(sg->slots);
	free(sg->undo);
	memset(sg, 0, sizeof *sg);
}

/* ---- SQL ---------------------------------------------------------------- */

RELM__SQL(REL_EXISTS, "SELECT 1 FROM relationships WHERE id=?1");
/* the write-back: one UPDATE per relationship per transaction; ?4, ?5
 * NULL = keep the column */
RELM__SQL(REL_FLUSH_STATE, "UPDATE relationships SET state=?2, last_activity=?3, deadline=coalesce(?4,deadline), unread=coalesce(?5,unread)+?6 WHERE id=?1");
RELM__SQL(REL_FLUSH, "UPDATE relationships SET deadline=coalesce(?4,deadline), unread=coalesce(?5,unread)+?6 WHERE id=?1");
/* ?2 NULL = add to the count there is; 0 = the rows were all deleted */
RELM__SQL(REL_FLUSH_OUT, "INSERT INTO outgoing_count(rel,n) SELECT ?1,coalesce(?2,0)+?3 WHERE EXISTS(SELECT 1 FROM relationships WHERE id=?1) ON CONFLICT(rel) DO UPDATE SET n=coalesce(?2,n)+?3");

static int rel_exists(struct relm_store *st, const uint8_t id[RELM_ID_LEN])
{
	struct relm__q q;

	Q_OPEN(&q, st, REL_EXISTS, A_ID(id));
	return q_end(&q, q_row(&q));
}

static int stage_dirty(const struct relm__stage_ent *e)
{
	return e->mask || e->unread_add || e->out_add;
}

/* Created if need be (after checking that the row exists — an entry with
 * staged columns stands for an existing row, so only then), and saved to
 * the undo log on its first touch in a batched step.  Nothing changed on
 * failure. */
int relm__stage_touch(struct relm_store *st, const uint8_t id[RELM_ID_LEN],
                      struct relm__stage_ent **out)
{
	struct relm__stage *sg = &st->stage;
	struct relm__stage_ent *e = relm__stage_find(sg, id);
	int err;

	if (!e || !stage_dirty(e)) {
		if ((err = rel_exists(st, id)) != 0)
			return err;
		if (!e && (err = stage_add(sg, id, &e)) != 0)
			return err;
	}
	if (st->state == RELM__ST_BATCH_STEP && e->gen != sg->gen &&
	    (err = stage_save(sg, (uint32_t)(e - sg->ents))) != 0)
		return err;
	*out = e;
	return 0;
}

int relm__stage_outgoing(struct relm_store *st, const uint8_t rel[RELM_ID_LEN], int64_t add, int zero)
{
	struct relm__stage_ent *e;
	int err;

	if (!add && !zero)
		return 0;
	if ((err = relm__stage_touch(st, rel, &e)) != 0)
		return err;
	if (zero) {
		e->mask |= RELM__STAGE_OUT;
		e->out_add = 0;
	}
	e->out_add += add;
	return 0;
}

int relm__stage_outgoing_count(const struct relm__stage *sg, const uint8_t rel[RELM_ID_LEN], int64_t *n)
{
	const struct relm__stage_ent *e = relm__stage_find(sg, rel);

	if (!e)
		return 0;
	if (e->mask & RELM__STAGE_OUT)
		*n = 0;
	*n += e->out_add;
	return 0;
}

/* One UPDATE for everything staged on one relationship's row, and one
 * UPSERT for its count of retransmission rows.  A row deleted meanwhile
 * (its proton went) is not an error: there is nothing to keep (and
 * relm_store_rel_delete clears what a deleted row had staged, whose count
 * row would otherwise name a relationship that is gone). */
static int flush_ent(struct relm_store *st, const struct relm__stage_ent *e)
{
	if ((e->mask & RELM__STAGE_OUT) || e->out_add) {
		const struct relm__arg o[] = {
			A_ID(e->id),
			{ .kind = e->mask & RELM__STAGE_OUT ? RELM__A_INT : RELM__A_NULL, .v = 0 },
			A_INT(e->out_add),
		};
		int err = q_run(st, &sql_REL_FLUSH_OUT, o, sizeof o / sizeof o[0], 0);
		if (err)
			return err;
	}
	if (!(e->mask & ~RELM__STAGE_OUT) && !e->unread_add)
		return 0;
	const struct relm__arg a[] = {
		A_ID(e->id),
		A_BLOB(e->state, e->state_len),      /* ?2, ?3: REL_FLUSH_STATE only */
		A_INT(e->last_activity),
		{ .kind = e->mask & RELM__STAGE_DL ? RELM__A_INT : RELM__A_NULL, .v = (int64_t)e->deadline },
		{ .kind = e->mask & RELM__STAGE_UNREAD ? RELM__A_INT : RELM__A_NULL, .v = e->unread },
		A_INT(e->unread_add),
	};

	return q_run(st, e->mask & RELM__STAGE_STATE ? &sql_REL_FLUSH_STATE : &sql_REL_FLUSH,
	             a, sizeof a / sizeof a[0], 0);
}

int relm__stage_flush(struct relm_store *st)
{
	struct relm__stage *sg = &st->stage;
	int err;

	for (uint32_t i = 0; i < sg->n; i++) {
		if (!stage_dirty(&sg->ents[i]))
			continue;
		if ((err = flush_ent(st, &sg->ents[i])) != 0)
			return err;
	}
	return 0;
}

void relm__stage_overlay(const struct relm__stage *sg, struct relm_store_rel *r)
{
	const struct relm__stage_ent *e = relm__stage_find(sg, r->id);

	if (!e)
		return;
	if (e->mask & RELM__STAGE_STATE)
		r->last_activity = e->last_activity;
	if (e->mask & RELM__STAGE_UNREAD)
		r->unread = e->unread;
	r->unread += e->unread_add;
}

/* ---- staged deadlines ---------------------------------------------------- */

static int dl_cmp(const void *a, const void *b)
{
	const struct relm__dl_item *x = a, *y = b;
	return x->dl < y->dl ? -1 : x->dl > y->dl;
}

int relm__stage_deadlines(const struct relm__stage *sg, uint64_t upto,
                          struct relm__dl_item **out, size_t *n, int *any)
{
	struct relm__dl_item *v = NULL;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	*any = 0;
	for (uint32_t i = 0; i < sg->n; i++) {
		const struct relm__stage_ent *e = &sg->ents[i];
		if (!(e->mask & RELM__STAGE_DL))
			continue;
		*any = 1;
		if (!e->deadline || e->deadline > upto)
			continue;
		if (!v && !(v = malloc(sg->n * sizeof *v)))
			return RELM_ENOMEM;
		v[k].dl = e->deadline;
		memcpy(v[k].id, e->id, RELM_ID_LEN);
		k++;
	}
	if (k > 1)
		qsort(v, k, sizeof *v, dl_cmp);
	*out = v;
	*n = k;
	return 0;
}

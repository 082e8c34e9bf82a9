/*
 * util_store.h — what the store's test programs share (check_store.c: the
 * typed functions; check_store_txn.c: transactions, staging, faults;
 * check_store_files.c: files, corruption, lazy loading;
 * check_store_migrate.c: fixtures and migrations).
 *
 * Every test runs in a fresh mkdtemp folder (ts_setup / ts_teardown as a
 * checked fixture); the store lives at ts_dbpath, in a "state" folder that
 * the store creates.  Randomised tests draw from ts_prng, seeded from
 * RELM_SEED (default 0x5eed5eed), which ts_run prints on failure.
 */
#ifndef RELM_TESTS_UTIL_STORE_H
#define RELM_TESTS_UTIL_STORE_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>
#include "store/store.h"

extern unsigned long long ts_seed;
extern char ts_tmpdir[256];
extern char ts_dbpath[512];

void ts_setup(void);
void ts_teardown(void);
/* splitmix64 from ts_seed */
uint64_t ts_prng(void);
double ts_now_s(void);

/* Open (failing the test on error) / expect a failure (the store stays
 * closed); flags are RELM_STORE_F_*, vfs NULL for the default. */
struct relm_store *ts_open_ok(const char *path, unsigned flags, const char *vfs);
int ts_open_err(const char *path, char *err, size_t errlen);

/* p[i] = v + i */
void ts_fill(uint8_t *p, size_t n, uint8_t v);
/* Proton v (id fill(v), label "proton v"); relationship i of a proton (id
 * ee..i, mailbox id[31] = 0x77, label "rel i", mode 1) with the caller's
 * state. */
void ts_mk_proton(struct relm_store_proton *p, uint8_t v);
void ts_mk_rel(struct relm_store_rel *r, const uint8_t proton[16], uint32_t i,
               uint8_t *state, size_t len);
/* The first column of the first row of sql on the handle's connection (-1: none). */
int ts_exec_int(struct relm_store *st, const char *sql);

uint8_t *ts_read_file(const char *p, size_t *len);     /* malloc'd, one byte spare */
void ts_write_file(const char *p, const uint8_t *b, size_t n);
int ts_file_exists(const char *p);

/* A store with one proton (1), two relationships (0, 1) with 20 messages
 * each and one event. */
void ts_populate(struct relm_store *st);
/* A digest of every row of every table: the "logical state". */
void ts_digest(struct relm_store *st, uint8_t out[32]);
/* ts_populate + 190 relationships with 3,000-byte states, closed cleanly
 * (the WAL checkpointed away). */
void ts_make_closed_store(void);
/* tests/fixtures/store-v<version>.sql (or $RELM_FIXTURES) loaded into a
 * fresh ts_dbpath; the raw connection, for extra rows. */
sqlite3 *ts_fixture_db(int version);

/* relm_store_rel_list callback: counts rows, checks id order, no state or
 * secret. */
struct ts_list_acc { int n; uint8_t last[16]; };
int ts_rel_cb(void *ctx, const struct relm_store_rel *r);
/* relm_store_rel_due callback: ++*(int *)ctx */
int ts_due_cb(void *ctx, const uint8_t id[16]);
/* outgoing_count of rel (through the API); rows of outgoing_count that
 * disagree with count(*) of outgoing (a missing row counts as 0). */
uint64_t ts_out_count(struct relm_store *st, const uint8_t rel[16]);
int ts_count_mismatches(struct relm_store *st);

/* A typed event record of `type` about relationship rel (0 fields else). */
void ts_event(struct relm_event *ev, int type, const uint8_t rel[16]);
/* a and b have the same type and fields, field for field (the texts
 * reason and table are the caller's to compare). */
void ts_same_fields(const struct relm_event *a, const struct relm_event *b);
/* Some valid record (an envelope.undecryptable with no field), for tests
 * that need an event row and not what it says. */
const struct relm_event *ts_any_event(void);
/* Append one (in its own step): the seq. */
int64_t ts_event_add(struct relm_store *st, const struct relm_event *ev, uint64_t ts);

/* One test per row, each in a TCase named for the concept it belongs to
 * (tests of one concept share a TCase and its timeout, the largest). */
struct ts_test {
	const char *tcase;
	const TTest *t;
	int timeout;
	int signal;                  /* expected signal (0: none) */
	int loops;                   /* run for _i = 0 .. loops-1 (0: once) */
};
/* Run the rows as suite `name`; the exit status for main. */
int ts_run(const char *name, const struct ts_test *tests, size_t n);

#endif

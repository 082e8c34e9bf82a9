/*
 * util_pg.h — a private PostgreSQL for one test binary: initdb into a
 * fresh temporary folder and `postgres` listening on a Unix socket there
 * only (no TCP, no system service).  initdb and postgres refuse to run as
 * root, so under root they run as the unprivileged user `nobody`.
 *
 * Start it once per test binary (main, before the suite runs: Check forks
 * every test, and the children share it), give each test a database of its
 * own (upg_new_db), stop it at the end.  The server dies with the process
 * that started it (PR_SET_PDEATHSIG), so a crashed test binary leaves no
 * server behind.  fsync is off: these tests kill relm-mailbox instances,
 * never PostgreSQL, and its durability is not what they test.
 */
#ifndef RELM_TESTS_UTIL_PG_H
#define RELM_TESTS_UTIL_PG_H

#include <stddef.h>

/* Start the server.  0, or -1 with the reason in why (why[0] == '\0' is
 * never left: callers print it when they skip).  fsync: 1 to keep
 * PostgreSQL's own durability (benchmarks), 0 for speed (tests). */
int upg_start(char *why, size_t whylen, int fsync);
/* Stop it and remove its folder (idempotent). */
void upg_stop(void);
/* 1 while it runs. */
int upg_running(void);
/* Create database name (letters, digits, _) and write its connection
 * string into conninfo.  0 or -1. */
int upg_new_db(const char *name, char *conninfo, size_t cap);
/* The server's socket folder (host=). */
const char *upg_host(void);

#endif

/*
 * util_faultvfs.h — a fault-injecting SQLite VFS for tests (SQLite's own
 * test6.c / test_malloc.c idea, kept small).
 *
 * "relm-fault" wraps the default VFS ("unix") and passes everything through,
 * counting every xWrite, xSync and xTruncate on every file (database, WAL,
 * journal) as one "write op".  After tu_faultvfs_fail_after(n, err) the n-th
 * write op from then on, and every later one, fails with err (SQLITE_FULL,
 * or SQLITE_IOERR which is reported as the op's extended IOERR code): a disk
 * that died or filled up and stays so.  It also counts xRead calls, which
 * the lazy-loading test uses as a page-touch counter.
 *
 * The counters are atomic: one thread may arm or clear the fault while
 * another's store writes (check_diskfull arms it under a running relmd).
 */
#ifndef TU_FAULTVFS_H
#define TU_FAULTVFS_H

#define TU_FAULTVFS_NAME "relm-fault"

/* Register the VFS (idempotent; not made the default).  Returns an SQLite
 * result code. */
int tu_faultvfs_register(void);
/* Fail the nth write op from now (1 = the next one) and all after it with
 * err; nth <= 0 turns injection off.  Resets the op counter either way. */
void tu_faultvfs_fail_after(int nth_write, int err);
/* Write ops counted since the last tu_faultvfs_fail_after. */
long tu_faultvfs_ops(void);
/* Number of write ops that were failed since the last fail_after. */
long tu_faultvfs_failures(void);
/* xRead calls since the last reset (reset != 0 zeroes it after reading). */
long tu_faultvfs_reads(int reset);

#endif

/* util_faultvfs.c — see util_faultvfs.h. */
#include <string.h>
#include <sqlite3.h>
#include "util_faultvfs.h"

struct fault_file {
	sqlite3_file base;
	sqlite3_file *real;       /* points just past this struct */
};

static sqlite3_vfs fault_vfs;
static sqlite3_vfs *parent;
/* Atomic: a test arms and clears the fault while a daemon's thread writes
 * (tests/check_diskfull.c). */
static _Atomic int fail_at;   /* 0: off */
static _Atomic int fail_err;
static _Atomic long ops, failures, reads;

static int inject(int ioerr_code)
{
	ops++;
	if (fail_at > 0 && ops >= fail_at) {
		failures++;
		return fail_err == SQLITE_IOERR ? ioerr_code : fail_err;
	}
	return SQLITE_OK;
}

#define REAL(f) (((struct fault_file *)(f))->real)

static int f_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}
static int f_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	reads++;
	return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}
static int f_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
	int rc = inject(SQLITE_IOERR_WRITE);
	return rc ? rc : REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	int rc = inject(SQLITE_IOERR_TRUNCATE);
	return rc ? rc : REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int f_sync(sqlite3_file *f, int flags)
{
	int rc = inject(SQLITE_IOERR_FSYNC);
	return rc ? rc : REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int f_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int f_lock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int f_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int f_check_lock(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int f_fcntl(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int f_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int f_devchar(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int f_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}
static int f_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void f_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int f_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	/* No memory-mapped reads: every page goes through xRead (counted). */
	(void)f; (void)off; (void)amt;
	*pp = NULL;
	return SQLITE_OK;
}
static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	(void)f; (void)off; (void)p;
	return SQLITE_OK;
}

static const sqlite3_io_methods fault_io = {
	3, f_close, f_read, f_write, f_truncate, f_sync, f_size, f_lock, f_unlock,
	f_check_lock, f_fcntl, f_sector, f_devchar, f_shm_map, f_shm_lock,
	f_shm_barrier, f_shm_unmap, f_fetch, f_unfetch,
};

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
	struct fault_file *ff = (struct fault_file *)file;
	int rc;

	(void)vfs;
	ff->real = (sqlite3_file *)(ff + 1);
	memset(ff->real, 0, (size_t)parent->szOsFile);
	rc = parent->xOpen(parent, name, ff->real, flags, out);
	ff->base.pMethods = ff->real->pMethods ? &fault_io : NULL;
	return rc;
}
static int v_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
	(void)vfs;
	return parent->xDelete(parent, name, sync);
}
static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return parent->xAccess(parent, name, flags, out);
}
static int v_fullpath(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return parent->xFullPathname(parent, name, n, out);
}
static int v_random(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return parent->xRandomness(parent, n, out);
}
static int v_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return parent->xSleep(parent, us);
}
static int v_time(sqlite3_vfs *vfs, double *t)
{
	(void)vfs;
	return parent->xCurrentTime(parent, t);
}
static int v_lasterr(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return parent->xGetLastError(parent, n, out);
}
static int v_time64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
	(void)vfs;
	return parent->xCurrentTimeInt64(parent, t);
}

int tu_faultvfs_register(void)
{
	if (parent)
		return SQLITE_OK;
	parent = sqlite3_vfs_find("unix");
	if (!parent)
		return SQLITE_ERROR;
	memset(&fault_vfs, 0, sizeof fault_vfs);
	fault_vfs.iVersion = 2;
	fault_vfs.szOsFile = (int)sizeof(struct fault_file) + parent->szOsFile;
	fault_vfs.mxPathname = parent->mxPathname;
	fault_vfs.zName = TU_FAULTVFS_NAME;
	fault_vfs.xOpen = v_open;
	fault_vfs.xDelete = v_delete;
	fault_vfs.xAccess = v_access;
	fault_vfs.xFullPathname = v_fullpath;
	fault_vfs.xRandomness = v_random;
	fault_vfs.xSleep = v_sleep;
	fault_vfs.xCurrentTime = v_time;
	fault_vfs.xGetLastError = v_lasterr;
	fault_vfs.xCurrentTimeInt64 = v_time64;
	return sqlite3_vfs_register(&fault_vfs, 0);
}

void tu_faultvfs_fail_after(int nth_write, int err)
{
	fail_at = nth_write > 0 ? nth_write : 0;
	fail_err = err;
	ops = 0;
	failures = 0;
}

long tu_faultvfs_ops(void)
{
	return ops;
}

long tu_faultvfs_failures(void)
{
	return failures;
}

long tu_faultvfs_reads(int reset)
{
	long r = reads;
	if (reset)
		reads = 0;
	return r;
}

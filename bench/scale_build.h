/*
 * scale_build.h — bench_scale's stores: two daemons A and B, each with one
 * proton, N relationships between them, built through the core or as
 * templates and clones (scale_build.c says how), cached in DIR/<N>/.
 */
#ifndef RELM_BENCH_SCALE_BUILD_H
#define RELM_BENCH_SCALE_BUILD_H

#include <stddef.h>
#include "scale_pair.h"

struct build_info {
	int cloned;
	double real_ms_per_rel;     /* measured on the real part of the build */
	double build_s;
};

/* Make (or reuse) DIR/<n>/{a,b}/relm.db and name them in *a and *b (closed);
 * *bi describes the build (read back from DIR/<n>/stamp).  force: 0 auto,
 * 1 real, 2 clone; rebuild: build even when the stamp matches.  The build
 * runs in a child process; any failure is fatal. */
void ensure_stores(const char *dir, size_t n, int force, int rebuild,
                   struct daemon *a, struct daemon *b, struct build_info *bi);

#endif

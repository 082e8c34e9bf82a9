/*
 * bench_engine.h — what bench_engine.c shares with its libolm side
 * (engine_olm.c): the message body both engines carry, the fatal error,
 * the clock, the allocator and the randomness both draw from.
 */
#ifndef RELM_BENCH_ENGINE_H
#define RELM_BENCH_ENGINE_H

#include <stddef.h>
#include <stdint.h>

enum {
	BODY_LEN = 100,
};

/* The 100-byte body of every timed message. */
extern const char body[BODY_LEN + 1];

struct msg_info {
	size_t envlen;      /* bytes on the wire of the last timed message */
};

/* Print "bench_engine: " and the message to stderr, exit(1). */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
uint64_t now_ns(void);                       /* monotonic nanoseconds */
void *xmalloc(size_t n);                     /* malloc or die */
/* len random bytes: randombytes_buf, or the buffered generator (--rng buffered). */
void bench_random(uint8_t *out, size_t len);

#endif

/*
 * clock.c — check_crash's virtual clock, monotone across kills: the file
 * `clock` holds a reservation R ≥ every clock value any process has used;
 * before the clock passes R, R = clock + CLOCK_CHUNK_MS is written, and a
 * new process starts at R (a jump of at most CLOCK_CHUNK_MS, as after a
 * real restart).
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include "crash/crash.h"

uint64_t g_clock, g_clock_reserved;
int g_clockfd = -1;

int crash_clock_load(void)
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

int crash_clock_store(uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	return pwrite(g_clockfd, b, 8, 0) == 8 ? 0 : -EIO;
}

int crash_clock_advance(uint64_t ms)
{
	g_clock += ms;
	if (g_clock > g_clock_reserved) {
		g_clock_reserved = g_clock + CLOCK_CHUNK_MS;
		return crash_clock_store(g_clock_reserved);
	}
	return 0;
}

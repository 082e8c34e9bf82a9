/*
 * state_lock.h — one relmd per state folder.
 *
 * Two relmd on one state folder would both open the store and both read
 * the same mailboxes: each would take envelopes the other then never
 * sees, and both would speak as the same devices.  The socket's lock
 * (server.c) cannot catch this when they listen on different sockets, so
 * relmd also locks the state folder, for its whole life, before it opens
 * the store: an exclusive, non-blocking POSIX record lock (fcntl F_SETLK)
 * on <state>/relmd.lock, which also holds its pid as text.
 *
 * The kernel drops the lock when the process ends, however it ends (kill
 * -9 included), so a lock file left behind never blocks a start.  fcntl
 * rather than flock because F_GETLK names the process that holds a lock:
 * the refusal can say which relmd is in the way.  (A POSIX lock goes when
 * the process closes any descriptor of the file: nothing else in relmd
 * opens relmd.lock.)
 */
#ifndef RELMD_STATE_LOCK_H
#define RELMD_STATE_LOCK_H

#include <sys/types.h>

#define RELMD_STATE_LOCK_FILE "relmd.lock"

/* Lock the state folder dir (which exists).  0 with *fd the open, locked
 * file (keep it open; relmd_state_unlock at exit); -EWOULDBLOCK when
 * another process holds the lock, with *holder its pid (0 if it cannot be
 * told); another -errno when the file cannot be opened or locked.  Logs
 * nothing: the caller says what it means. */
int relmd_state_lock(const char *dir, int *fd, pid_t *holder);

/* Release (close) a lock taken by relmd_state_lock; fd < 0 is a no-op. */
void relmd_state_unlock(int fd);

#endif

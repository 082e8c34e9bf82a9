/*
 * sdnotify.h — the two pieces of the systemd protocol relmd speaks, by hand
 * (no libsystemd dependency): sd_notify(3) readiness messages and
 * sd_listen_fds(3) socket activation.
 */
#ifndef RELMD_SDNOTIFY_H
#define RELMD_SDNOTIFY_H

/* Send `state` (e.g. "READY=1", "STOPPING=1") to $NOTIFY_SOCKET — a path,
 * or an abstract socket when it starts with '@'.  0 when sent or when
 * NOTIFY_SOCKET is unset; -errno otherwise. */
int relmd_sd_notify(const char *state);

/* Sockets passed by systemd: if $LISTEN_PID is our pid, the number of fds
 * from 3 given in $LISTEN_FDS (each set close-on-exec), else 0.  Unsets
 * LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES so children do not inherit them.
 * -EINVAL if the variables are malformed. */
int relmd_sd_listen_fds(void);

enum { RELMD_SD_LISTEN_FDS_START = 3 };

#endif

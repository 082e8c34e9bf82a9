/*
 * error.h — every error relm can return, in one X-macro table.
 *
 * Functions return 0 or a negative code: -errno for system failures, or a
 * RELM_E* code below for protocol and engine failures.  The table yields
 * the enum, relm_strerror() and relm_errname(); the stable name is what the
 * JSON-RPC API carries in `data.code`, so names never change once shipped.
 * RELM_E* codes live below -1000 so they never collide with -errno.
 */
#ifndef RELM_ERROR_H
#define RELM_ERROR_H

#define RELM_ERRORS(X)                                                          \
	X(EMALFORMED,   -1001, "malformed",          "malformed input")                      \
	X(EVERSION,     -1002, "bad_version",        "unsupported version")                  \
	X(ETRUNCATED,   -1003, "truncated",          "input is truncated")                   \
	X(ETOOBIG,      -1004, "too_big",            "input exceeds the size limit")         \
	X(EAUTH,        -1005, "auth_failed",        "authentication failed")                \
	X(EBADKEY,      -1006, "bad_key",            "invalid or non-canonical public key")  \
	X(EBADSIG,      -1007, "bad_signature",      "signature does not verify")            \
	X(EEXPIRED,     -1008, "expired",            "expired")                              \
	X(EDUP,         -1009, "duplicate",          "duplicate (already received)")        \
	X(EMAXSKIP,     -1010, "max_skip",           "message is too far ahead in its chain (MAX_SKIP)") \
	X(ESKIPCAP,     -1011, "skip_cap",           "too many skipped message keys stored")  \
	X(EPENDING,     -1012, "pending",            "kept pending: its parent node is not known yet") \
	X(EREJECTED,    -1013, "rejected",           "rejected by the strict ratchet")       \
	X(ENOTFOUND,    -1014, "not_found",          "not found")                            \
	X(EEXIST,       -1015, "exists",             "already exists")                       \
	X(ENOSEND,      -1016, "cannot_send",        "no chain to send on yet")              \
	X(ELIMIT,       -1017, "limit",              "a configured limit was reached")       \
	X(EINVAL,       -1018, "invalid_argument",   "invalid argument")                     \
	X(ESTATE,       -1019, "bad_state",          "stored state is inconsistent")         \
	X(ENOMEM,       -1020, "no_memory",          "out of memory")                        \
	X(EREPLAY,      -1021, "replay",             "replayed initial envelope")            \
	X(ESTORE,       -1022, "store",              "store error")                          \
	X(ESTORE_NEWER, -1023, "store_newer",        "store was written by a newer relm")    \
	X(ECORRUPT,     -1024, "store_corrupt",      "store file is corrupt")                \
	X(EPERM,        -1025, "permission",         "permission denied")                    \
	X(EBUSY,        -1026, "busy",               "busy")                                 \
	X(ECLOSED,      -1027, "closed",             "closed")                               \
	X(EPROTO,       -1028, "protocol",           "protocol error")                       \
	X(ETIMEOUT,     -1029, "timeout",            "timed out")                            \
	X(EUNKNOWN_KIND,-1030, "unknown_kind",       "unknown payload kind")                 \
	X(ENOTIMPL,     -1040, "not_implemented",    "not implemented yet")                  \
	X(ESAMEDAEMON, -1041, "same_daemon",    "the invite is from a proton of this same daemon") \
	X(EPENDING_EXPIRED, -1042, "pending_expired", "kept pending until it expired: the node it builds on never came") \
	X(EPENDING_FULL, -1043, "pending_full",  "dropped from the pending set, which was full") \
	X(EFULL,        -1031, "full",               "queue or disk full")                   \
	X(ENOTSTORE,    -1050, "not_a_store",        "not a relm store (an empty file, or another program's)") \
	X(EDISKFULL,    -1051, "disk_full",          "the store's disk is full: nothing was stored") \
	X(EBADROW,      -1052, "corrupt_row",        "a stored row fails its check (reported; left out)") \
	X(EREADONLY,    -1053, "read_only",          "this device was removed from the proton's circle: the proton is read-only here") \
	X(ENOSTATE,     -1054, "no_state",           "this device holds no state of the relationship: the fanout strategy's hub does")

enum relm_error {
	RELM_OK = 0,
#define X(name, val, str, msg) RELM_##name = (val),
	RELM_ERRORS(X)
#undef X
};

/* Human-readable message for any code (RELM_E* or -errno); never NULL. */
const char *relm_strerror(int err);
/* Stable snake_case name for the API's data.code ("errno_<n>" for -errno,
 * "ok" for 0); never NULL. */
const char *relm_errname(int err);
/* The RELM_E* code of a stable name (relm_errname's inverse for those),
 * or 0 for a name that is not one. */
int relm_errcode(const char *name);

#endif

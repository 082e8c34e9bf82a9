/*
 * mailbox_proto.h — the mailbox protocol's frames (proto/mailbox.md), as
 * pure encode/decode with no I/O, plus the byte strings the mailbox key
 * signs.  relm-mailbox (daemon/mailbox_server/mailbox_server.c) and relmd's client
 * (daemon/mailbox_client/mailbox_client.c) both speak through this file only, so the
 * document, the server and the client cannot drift apart.
 *
 * Wire layout of every frame (all integers big-endian):
 *
 *     u32 length      bytes that follow: 2 + body length
 *     u8  version     RELM_MBOX_VERSION (the version HELLO negotiated)
 *     u8  type        enum relm_mbox_type
 *     ... body        fixed per type; see proto/mailbox.md §3
 *
 * Decoders never trust a length: relm_mbox_frame_peek() bounds the declared
 * length before anything is buffered, and relm_mbox_frame_decode() checks
 * the body is exactly the size its type requires.  Variable parts
 * (envelopes, names, error text) are returned as pointers into the input
 * buffer: they are valid only as long as that buffer is.
 */
#ifndef RELM_MAILBOX_PROTO_H
#define RELM_MAILBOX_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include "limits.h"

/* Every mailbox protocol limit and default, each with its reason.  Those
 * marked "wire" are part of proto/mailbox.md; the others are server or
 * client policy that CHALLENGE advertises or that a deployment may tune.
 * (They live here rather than in limits.h only to keep this change inside
 * the files of one module; moving them is a pure refactor.) */
enum relm_mbox_limits {
	RELM_MBOX_VERSION        = 1,      /* wire: version 1; HELLO is always sent with this version byte */
	RELM_MBOX_VERSION_2      = 2,      /* wire: version 2 adds batched subscription (SUBSCRIBE_BATCH) */
	RELM_MBOX_VERSION_MAX    = 2,      /* wire: the highest version this code speaks */
	RELM_MBOX_ID_LEN         = 32,     /* wire: mailbox id = Ed25519 public key */
	RELM_MBOX_NONCE_LEN      = 32,     /* wire: per-connection challenge, 256 bits never repeat */
	RELM_MBOX_TOKEN_LEN      = 16,     /* wire: lease holder token, random 128 bits */
	RELM_MBOX_ENVELOPE_MAX   = RELM_ENVELOPE_MAX, /* wire: 64 KiB, proto/wire.md §8, proto/mailbox.md §7 */
	RELM_MBOX_LEASE_NAME_MAX = 64,     /* wire: lease names are short labels ("leader") */
	RELM_MBOX_ERROR_TEXT_MAX = 255,    /* wire: one length byte; text is for humans only */
	RELM_MBOX_HDR_LEN        = 6,      /* wire: u32 length + u8 version + u8 type */
	RELM_MBOX_REALM_LEN      = 32,     /* wire v2: the server's realm id (random per database) */
	RELM_MBOX_KX_LEN         = 32,     /* wire v2: X25519 public keys of the key registration */
	RELM_MBOX_READ_KEY_LEN   = 32,     /* wire v2: a mailbox's read key (relm_mbox_read_key) */
	RELM_MBOX_MAC_LEN        = 16,     /* wire v2: subscription MAC, 128 bits */
	RELM_MBOX_BATCH_MAX      = 1024,   /* wire v2: entries per SUBSCRIBE_BATCH (a MAC batch is 57 KiB) */
	RELM_MBOX_BATCH_MAC_ENTRY = 32 + 8 + 16,       /* wire v2: mailbox, cursor, mac */
	RELM_MBOX_BATCH_REG_ENTRY = 32 + 8 + 32 + 64,  /* wire v2: mailbox, cursor, sealed key, sig */
	RELM_MBOX_BATCHED_ENTRY  = 2 + 8 + 8,          /* wire v2: code, head, oldest */
	/* wire: largest body is DELIVER: mailbox(32) seq(8) envelope */
	RELM_MBOX_BODY_MAX       = 40 + RELM_MBOX_ENVELOPE_MAX,
	/* wire: largest value of the length field (version + type + body) */
	RELM_MBOX_FRAME_MAX      = 2 + RELM_MBOX_BODY_MAX,
	/* the largest whole frame, length field included: a buffer of this size
	 * always holds one complete frame */
	RELM_MBOX_FRAME_TOTAL_MAX = 4 + RELM_MBOX_FRAME_MAX,
	RELM_MBOX_COST_UNIT      = 1024,   /* wire: rate cost = 1 + frame bytes / 1 KiB, so bytes and frames both count */

	RELM_MBOX_DEFAULT_PORT   = 7427,   /* proto/mailbox.md §1: zero-configuration default on 127.0.0.1 */
	RELM_MBOX_RETENTION_DAYS = 14,     /* time-based retention: a device offline two weeks still catches up */
	RELM_MBOX_SWEEP_MS       = 600000, /* retention sweep every 10 min: deletion is not urgent */
	RELM_MBOX_MAX_SUBS       = 1 << 20,/* per connection: one relmd reads all its relationships' mailboxes on one connection */
	RELM_MBOX_MAX_SUBS_TOTAL = 1 << 22,/* per server: ~100 bytes each, so at most ~400 MB of subscriptions */
	RELM_MBOX_MAX_CONNS      = 1024,   /* per server: bounds memory (each connection may buffer one 64 KiB frame) */
	RELM_MBOX_MAX_CONNS_PER_ADDR = 64, /* per client address (IPv6: per /64): one address cannot hold the server full */
	RELM_MBOX_RATE           = 16000,  /* cost units/s per connection: ~16 MB/s or 16000 small frames/s.
	                                    * One connection carries a whole daemon (every proton and
	                                    * relationship), so this sits above one relmd's durable
	                                    * throughput; proto/mailbox.md §7 has the reasons */
	RELM_MBOX_BURST          = 32000,  /* bucket size: an outbox flush after a reconnect fits */
	RELM_MBOX_RATE_MAX       = 1000000,/* --rate / --burst ceiling of relm-mailbox */
	RELM_MBOX_TURN_BUDGET_US = 2000,   /* client: frames handled per loop turn stop after 2 ms (mailbox_client.h) */
	RELM_MBOX_OUTQ_MAX       = 1 << 20,/* queued output bytes per connection before we stop reading it */
	RELM_MBOX_OUTQ_LOW       = 256 << 10, /* deliveries are fetched from the store only below this */
	RELM_MBOX_DELIVER_BATCH  = 32,     /* envelopes fetched per store query while catching up */
	RELM_MBOX_HELLO_TIMEOUT_MS = 10000,/* a connection must say HELLO within 10 s */
	RELM_MBOX_FRAME_TIMEOUT_MS = 30000,/* a frame begun must be complete within 30 s (stalled half-frame) */
	RELM_MBOX_WRITE_TIMEOUT_MS = 60000,/* a peer that reads nothing for 60 s while we have output is dropped */
	RELM_MBOX_IDLE_TIMEOUT_MS  = 300000,/* no frame at all for 5 min: clients ping every 30 s */
	RELM_MBOX_LEASE_TTL_MAX_MS = 600000,/* leases are renewed; 10 min bounds a dead leader's hold */
	RELM_MBOX_BUSY_TIMEOUT_MS  = 5000, /* SQLite busy_timeout: only a second process would contend */

	/* client policy */
	RELM_MBOX_BACKOFF_MIN_MS = 100,    /* first reconnect after 0.1 s (jittered) */
	RELM_MBOX_BACKOFF_MAX_MS = 30000,  /* backoff doubles up to 30 s */
	RELM_MBOX_PING_MS        = 30000,  /* keepalive; 2 missed answers = dead connection */
	RELM_MBOX_POST_WINDOW    = 256,    /* posts in flight (sent, not acked) per connection */
};

/* Frame types (wire).  c→s: client to server; s→c: server to client. */
enum relm_mbox_type {
	RELM_MBOX_NONE         = 0x00, /* never on the wire */
	RELM_MBOX_HELLO        = 0x01, /* c→s  version range */
	RELM_MBOX_CHALLENGE    = 0x02, /* s→c  chosen version, nonce, limits */
	RELM_MBOX_POST         = 0x03, /* c→s  tag, mailbox, envelope */
	RELM_MBOX_POSTED       = 0x04, /* s→c  tag, seq (sent after commit) */
	RELM_MBOX_SUBSCRIBE    = 0x05, /* c→s  tag, mailbox, cursor, sig */
	RELM_MBOX_SUBSCRIBED   = 0x06, /* s→c  tag, mailbox, head, oldest */
	RELM_MBOX_DELIVER      = 0x07, /* s→c  mailbox, seq, envelope */
	RELM_MBOX_UNSUBSCRIBE  = 0x08, /* c→s  tag, mailbox */
	RELM_MBOX_UNSUBSCRIBED = 0x09, /* s→c  tag, mailbox */
	RELM_MBOX_LEASE        = 0x0a, /* c→s  tag, mailbox, name, expected, holder, ttl, sig */
	RELM_MBOX_LEASE_RESULT = 0x0b, /* s→c  tag, granted, holder, remaining */
	RELM_MBOX_PING         = 0x0c, /* c→s  tag */
	RELM_MBOX_PONG         = 0x0d, /* s→c  tag */
	RELM_MBOX_ERROR        = 0x0e, /* s→c  tag, code, flags, text */
	RELM_MBOX_TYPE_MAX_V1  = 0x0e,
	RELM_MBOX_SUBSCRIBE_BATCH  = 0x0f, /* c→s  v2: tag, kind, kx, entries */
	RELM_MBOX_SUBSCRIBED_BATCH = 0x10, /* s→c  v2: tag, one answer per entry */
	RELM_MBOX_TYPE_MAX     = 0x10,
};

/* SUBSCRIBE_BATCH kinds (wire v2). */
enum relm_mbox_batch_kind {
	RELM_MBOX_BATCH_MAC = 0,       /* entries proven with the read key's MAC */
	RELM_MBOX_BATCH_REGISTER = 1,  /* entries signed, registering the read key */
};

/* Wire error codes carried by ERROR frames (u16).  Local functions return
 * RELM_E* codes from error.h; relm_mbox_err_to_relm() maps between them. */
#define RELM_MBOX_ERRORS(X)                                                           \
	X(MALFORMED,      1, "malformed",      "frame body does not parse for its type")      \
	X(VERSION,        2, "version",        "no common protocol version / wrong frame version") \
	X(UNKNOWN_TYPE,   3, "unknown_type",   "unknown frame type")                           \
	X(TOO_BIG,        4, "too_big",        "frame length above the limit")                 \
	X(BAD_STATE,      5, "bad_state",      "frame not allowed now (before HELLO, HELLO twice)") \
	X(BAD_SIGNATURE,  6, "bad_signature",  "signature by the mailbox key does not verify") \
	X(BAD_MAILBOX,    7, "bad_mailbox",    "mailbox id is not a valid Ed25519 public key") \
	X(RATE_LIMITED,   8, "rate_limited",   "request dropped: connection over its rate")    \
	X(TOO_MANY_SUBS,  9, "too_many_subs",  "subscription limit of this connection reached") \
	X(BAD_REQUEST,   10, "bad_request",    "a field is out of range")                      \
	X(TIMEOUT,       11, "timeout",        "frame incomplete or connection silent too long") \
	X(STORE,         12, "store",          "server storage failed; retry later")           \
	X(OVERLOADED,    13, "overloaded",     "server has too many connections")              \
	X(NOT_SUBSCRIBED,14, "not_subscribed", "no such subscription on this connection")      \
	X(SHUTDOWN,      15, "shutdown",       "server is shutting down")                      \
	X(UNKNOWN_KEY,   16, "unknown_key",    "no read key registered for this mailbox")

enum relm_mbox_err {
#define X(name, val, str, msg) RELM_MBOX_E_##name = (val),
	RELM_MBOX_ERRORS(X)
#undef X
};

enum relm_mbox_error_flags {
	RELM_MBOX_ERRF_FATAL = 0x01, /* the server closes the connection after this frame */
};

/* Stable name of a wire error code ("unknown" for others); never NULL. */
const char *relm_mbox_errname(unsigned code);
/* Maps a wire code to the closest RELM_E* code (RELM_EPROTO by default). */
int relm_mbox_err_to_relm(unsigned code);

struct relm_mbox_hello {
	uint8_t min_version, max_version;
	uint32_t flags;                        /* 0; unknown bits are rejected */
};

struct relm_mbox_challenge {
	uint8_t version;                       /* chosen, in the client's range */
	uint32_t flags;                        /* 0 */
	uint8_t nonce[RELM_MBOX_NONCE_LEN];
	uint32_t max_envelope;                 /* server policy, ≤ RELM_MBOX_ENVELOPE_MAX */
	uint32_t max_subs;
	uint32_t rate;                         /* cost units per second */
	uint32_t burst;                        /* token bucket size */
	uint32_t retention_s;
	/* version 2 only (zero in version 1) */
	uint8_t realm[RELM_MBOX_REALM_LEN];    /* the server's realm: read keys are per realm */
	uint8_t kx[RELM_MBOX_KX_LEN];          /* this connection's X25519 key for registrations */
};

struct relm_mbox_post {
	uint32_t tag;
	uint8_t mailbox[RELM_MBOX_ID_LEN];
	const uint8_t *env;                    /* 1..RELM_MBOX_ENVELOPE_MAX bytes */
	size_t env_len;
};

struct relm_mbox_posted {
	uint32_t tag;
	uint64_t seq;
};

struct relm_mbox_subscribe {
	uint32_t tag;
	uint8_t mailbox[RELM_MBOX_ID_LEN];
	uint64_t cursor;                       /* deliver seq > cursor; 0 = everything */
	uint8_t sig[RELM_SIG_LEN];
};

struct relm_mbox_subscribed {
	uint32_t tag;
	uint8_t mailbox[RELM_MBOX_ID_LEN];
	uint64_t head;                         /* highest seq ever assigned (0: none) */
	uint64_t oldest;                       /* lowest seq still stored (0: none) */
};

struct relm_mbox_deliver {
	uint8_t mailbox[RELM_MBOX_ID_LEN];
	uint64_t seq;
	const uint8_t *env;
	size_t env_len;
};

/* UNSUBSCRIBE and UNSUBSCRIBED */
struct relm_mbox_unsub {
	uint32_t tag;
	uint8_t mailbox[RELM_MBOX_ID_LEN];
};

struct relm_mbox_lease {
	uint32_t tag;
	uint8_t mailbox[RELM_MBOX_ID_LEN];
	const uint8_t *name;                   /* 1..RELM_MBOX_LEASE_NAME_MAX bytes */
	size_t name_len;
	uint8_t expected[RELM_MBOX_TOKEN_LEN]; /* all zero: "expect no live holder" */
	uint8_t holder[RELM_MBOX_TOKEN_LEN];   /* all zero: release */
	uint32_t ttl_ms;
	uint8_t sig[RELM_SIG_LEN];
};

struct relm_mbox_lease_result {
	uint32_t tag;
	uint8_t granted;                       /* 1: the swap happened; 0: conflict */
	uint8_t holder[RELM_MBOX_TOKEN_LEN];   /* live holder after the operation (zero: free) */
	uint32_t remaining_ms;                 /* its remaining time (0 when free) */
};

/* SUBSCRIBE_BATCH (v2): count entries of one kind, back to back; read them
 * with relm_mbox_batch_entry(), write them with relm_mbox_batch_put_*(). */
struct relm_mbox_sub_batch {
	uint32_t tag;
	uint8_t kind;                          /* enum relm_mbox_batch_kind */
	uint8_t kx[RELM_MBOX_KX_LEN];          /* REGISTER: the client's X25519 key; MAC: zero */
	const uint8_t *entries;
	size_t count;                          /* 1..RELM_MBOX_BATCH_MAX */
};

/* One entry of a SUBSCRIBE_BATCH, pointers into the frame. */
struct relm_mbox_batch_entry {
	const uint8_t *mailbox;                /* 32 bytes */
	uint64_t cursor;
	const uint8_t *mac;                    /* MAC: 16 bytes; REGISTER: NULL */
	const uint8_t *sealed;                 /* REGISTER: 32 bytes; MAC: NULL */
	const uint8_t *sig;                    /* REGISTER: 64 bytes; MAC: NULL */
};

/* SUBSCRIBED_BATCH (v2): one answer per entry of the request, in its order. */
struct relm_mbox_subed_batch {
	uint32_t tag;
	const uint8_t *entries;                /* count × (u16 code, u64 head, u64 oldest) */
	size_t count;
};

/* PING and PONG */
struct relm_mbox_ping {
	uint32_t tag;
};

struct relm_mbox_error {
	uint32_t tag;                          /* the request's tag; 0 if none */
	uint16_t code;                         /* enum relm_mbox_err (unknown codes allowed) */
	uint8_t flags;                         /* enum relm_mbox_error_flags */
	const char *text;                      /* not NUL-terminated; 0..255 bytes */
	size_t text_len;
};

struct relm_mbox_frame {
	uint8_t version;
	uint8_t type;                          /* enum relm_mbox_type: selects the union member */
	union {
		struct relm_mbox_hello hello;
		struct relm_mbox_challenge challenge;
		struct relm_mbox_post post;
		struct relm_mbox_posted posted;
		struct relm_mbox_subscribe subscribe;
		struct relm_mbox_subscribed subscribed;
		struct relm_mbox_deliver deliver;
		struct relm_mbox_unsub unsub;      /* UNSUBSCRIBE, UNSUBSCRIBED */
		struct relm_mbox_lease lease;
		struct relm_mbox_lease_result lease_result;
		struct relm_mbox_ping ping;        /* PING, PONG */
		struct relm_mbox_error error;
		struct relm_mbox_sub_batch sub_batch;
		struct relm_mbox_subed_batch subed_batch;
	} u;
};

/* Framing: how long is the frame at the start of buf?
 * Returns 0 and *frame_len (whole frame, length field included) when
 * buf holds at least one complete frame; RELM_ETRUNCATED when more bytes
 * are needed (fewer than 4, or the frame is incomplete); RELM_ETOOBIG when
 * the declared length exceeds RELM_MBOX_FRAME_MAX; RELM_EMALFORMED when it
 * is below 2.  The last two mean the stream cannot be resynchronised.
 * *frame_len is written only on success. */
int relm_mbox_frame_peek(size_t *frame_len, const uint8_t *buf, size_t len);

/* Decode exactly one whole frame (length field included; len must equal
 * the declared length + 4).  Any version this code speaks (1..
 * RELM_MBOX_VERSION_MAX) decodes, by that version's layouts; the caller
 * checks out->version against the version it negotiated.  Returns 0, or
 *   RELM_ETRUNCATED  len < 6 or shorter than declared,
 *   RELM_ETOOBIG     declared length above the limit (stream lost), or a
 *                    POST/DELIVER envelope above RELM_MBOX_ENVELOPE_MAX in a
 *                    well-framed frame (stream intact),
 *   RELM_EMALFORMED  trailing bytes, wrong body size, field out of range,
 *   RELM_EVERSION    version byte is 0 or above RELM_MBOX_VERSION_MAX,
 *   RELM_ENOTFOUND   unknown type in that version (out->version/type are
 *                    still set, so the caller can answer UNKNOWN_TYPE).
 * Pure: reads only buf; pointers in *out alias buf.  On error *out holds
 * no pointers into buf except as noted. */
int relm_mbox_frame_decode(struct relm_mbox_frame *out, const uint8_t *buf, size_t len);

/* Exact encoded size of f (length field included), or 0 when f cannot be
 * encoded (unknown type, a variable part out of range). */
size_t relm_mbox_frame_size(const struct relm_mbox_frame *f);

/* Encode f into out (cap bytes).  f->version is written as given and
 * selects the layout (the negotiated version; HELLO always 1).  Returns the number of bytes written, RELM_EINVAL if
 * f cannot be encoded (see relm_mbox_frame_size), or RELM_ETOOBIG if cap is
 * smaller than relm_mbox_frame_size(f).  out is untouched on error. */
int relm_mbox_frame_encode(uint8_t *out, size_t cap, const struct relm_mbox_frame *f);

/* Rate-limiter cost of a frame of frame_len bytes (whole frame). */
uint32_t relm_mbox_cost(size_t frame_len);

/* ---- what the mailbox key signs (proto/mailbox.md §4) ---- */

#define RELM_MBOX_SUB_CONTEXT   "relm/v1/mailbox-sub"
#define RELM_MBOX_LEASE_CONTEXT "relm/v1/mailbox-lease"
enum {
	RELM_MBOX_SUB_SIG_INPUT_LEN = 19 + RELM_MBOX_NONCE_LEN + RELM_MBOX_ID_LEN + 8,
	RELM_MBOX_LEASE_SIG_INPUT_MAX = 21 + RELM_MBOX_NONCE_LEN + RELM_MBOX_ID_LEN + 1 +
	                                RELM_MBOX_LEASE_NAME_MAX + 2 * RELM_MBOX_TOKEN_LEN + 4,
};

/* "relm/v1/mailbox-sub" ‖ nonce ‖ mailbox ‖ u64be cursor.  Returns its
 * length (RELM_MBOX_SUB_SIG_INPUT_LEN). */
size_t relm_mbox_sub_sig_input(uint8_t out[RELM_MBOX_SUB_SIG_INPUT_LEN],
                               const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                               const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t cursor);

/* "relm/v1/mailbox-lease" ‖ nonce ‖ mailbox ‖ u8 name_len ‖ name ‖
 * expected ‖ holder ‖ u32be ttl_ms, taken from a LEASE frame's fields
 * (tag and sig are not signed).  Returns the length, or 0 if the name
 * length is out of range. */
size_t relm_mbox_lease_sig_input(uint8_t out[RELM_MBOX_LEASE_SIG_INPUT_MAX],
                                 const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                                 const struct relm_mbox_lease *l);

/* Sign / verify those inputs with the mailbox key (Ed25519, deterministic:
 * no randomness, so they may live in lib/).  Verify returns 0, RELM_EBADKEY
 * (mailbox is not a valid Ed25519 point) or RELM_EBADSIG. */
void relm_mbox_sub_sign(uint8_t sig[RELM_SIG_LEN], const uint8_t sk[RELM_SIGN_SK_LEN],
                        const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                        const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t cursor);
int relm_mbox_sub_verify(const uint8_t sig[RELM_SIG_LEN],
                         const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                         const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t cursor);
/* Fills l->sig.  Returns 0 or RELM_EINVAL (name length out of range). */
int relm_mbox_lease_sign(struct relm_mbox_lease *l, const uint8_t sk[RELM_SIGN_SK_LEN],
                         const uint8_t nonce[RELM_MBOX_NONCE_LEN]);
int relm_mbox_lease_verify(const struct relm_mbox_lease *l,
                           const uint8_t nonce[RELM_MBOX_NONCE_LEN]);

/* ---- batched subscription (version 2, proto/mailbox.md §5.7) ---- */

/* Entry i (< b->count) of a decoded SUBSCRIBE_BATCH into *e (pointers
 * into the frame). */
void relm_mbox_batch_entry(const struct relm_mbox_sub_batch *b, size_t i,
                           struct relm_mbox_batch_entry *e);
/* Write one entry at dst (RELM_MBOX_BATCH_MAC_ENTRY / _REG_ENTRY bytes). */
void relm_mbox_batch_put_mac(uint8_t *dst, const uint8_t mailbox[RELM_MBOX_ID_LEN],
                             uint64_t cursor, const uint8_t mac[RELM_MBOX_MAC_LEN]);
void relm_mbox_batch_put_reg(uint8_t *dst, const uint8_t mailbox[RELM_MBOX_ID_LEN],
                             uint64_t cursor, const uint8_t sealed[RELM_MBOX_READ_KEY_LEN],
                             const uint8_t sig[RELM_SIG_LEN]);
/* Answer i of a SUBSCRIBED_BATCH; put writes one (RELM_MBOX_BATCHED_ENTRY bytes). */
void relm_mbox_subed_entry(const struct relm_mbox_subed_batch *b, size_t i,
                           unsigned *code, uint64_t *head, uint64_t *oldest);
void relm_mbox_subed_put(uint8_t *dst, unsigned code, uint64_t head, uint64_t oldest);

#define RELM_MBOX_READ_KEY_CONTEXT "relm/v2/mailbox-read-key"
#define RELM_MBOX_MAC_CONTEXT      "relm/v2/mailbox-sub"
#define RELM_MBOX_REG_CONTEXT      "relm/v2/mailbox-register"
#define RELM_MBOX_SEAL_CONTEXT     "relm/v2/mailbox-seal"
enum {
	RELM_MBOX_MAC_INPUT_LEN = 19 + RELM_MBOX_NONCE_LEN + RELM_MBOX_ID_LEN + 8,
	RELM_MBOX_REG_SIG_INPUT_LEN = 24 + RELM_MBOX_NONCE_LEN + 2 * RELM_MBOX_KX_LEN +
	                              RELM_MBOX_ID_LEN + 8 + RELM_MBOX_READ_KEY_LEN,
};

/* The read key of a mailbox in a realm: BLAKE2b-256 keyed with the
 * Ed25519 seed (the first 32 bytes of sk) over "relm/v2/mailbox-read-key"
 * ‖ realm.  Every holder of the mailbox key derives the same one. */
void relm_mbox_read_key(uint8_t key[RELM_MBOX_READ_KEY_LEN], const uint8_t sk[RELM_SIGN_SK_LEN],
                        const uint8_t realm[RELM_MBOX_REALM_LEN]);

/* A subscription's MAC: BLAKE2b-128 keyed with the read key over
 * "relm/v2/mailbox-sub" ‖ nonce ‖ mailbox ‖ u64be cursor.  Verify returns
 * 0 or RELM_EBADSIG (constant-time comparison). */
void relm_mbox_sub_mac(uint8_t mac[RELM_MBOX_MAC_LEN], const uint8_t key[RELM_MBOX_READ_KEY_LEN],
                       const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                       const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t cursor);
int relm_mbox_sub_mac_verify(const uint8_t mac[RELM_MBOX_MAC_LEN],
                             const uint8_t key[RELM_MBOX_READ_KEY_LEN],
                             const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                             const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t cursor);

/* The registration's sealing key: BLAKE2b-256 of X25519(my_sk, their_kx)
 * ‖ kx_server ‖ kx_client.  my_sk is either side's X25519 secret, their_kx
 * the other side's public key.  Returns 0, or RELM_EBADKEY when the DH
 * output is all zero (a low-order point). */
int relm_mbox_seal_key(uint8_t k[32], const uint8_t my_sk[32], const uint8_t their_kx[32],
                       const uint8_t kx_server[RELM_MBOX_KX_LEN],
                       const uint8_t kx_client[RELM_MBOX_KX_LEN]);
/* out = in XOR BLAKE2b-256(key = k, "relm/v2/mailbox-seal" ‖ mailbox):
 * seals a read key for one mailbox, and opens it again. */
void relm_mbox_seal(uint8_t out[RELM_MBOX_READ_KEY_LEN], const uint8_t k[32],
                    const uint8_t mailbox[RELM_MBOX_ID_LEN],
                    const uint8_t in[RELM_MBOX_READ_KEY_LEN]);
/* "relm/v2/mailbox-register" ‖ nonce ‖ kx_server ‖ kx_client ‖ mailbox ‖
 * u64be cursor ‖ sealed: what a REGISTER entry's signature covers. */
size_t relm_mbox_reg_sig_input(uint8_t out[RELM_MBOX_REG_SIG_INPUT_LEN],
                               const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                               const uint8_t kx_server[RELM_MBOX_KX_LEN],
                               const uint8_t kx_client[RELM_MBOX_KX_LEN],
                               const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t cursor,
                               const uint8_t sealed[RELM_MBOX_READ_KEY_LEN]);
/* Verify a REGISTER entry's signature: 0, RELM_EBADKEY or RELM_EBADSIG. */
int relm_mbox_reg_verify(const uint8_t sig[RELM_SIG_LEN],
                         const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                         const uint8_t kx_server[RELM_MBOX_KX_LEN],
                         const uint8_t kx_client[RELM_MBOX_KX_LEN],
                         const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t cursor,
                         const uint8_t sealed[RELM_MBOX_READ_KEY_LEN]);

#endif

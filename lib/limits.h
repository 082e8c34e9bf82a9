/*
 * limits.h — every protocol limit and default in one place, each with the
 * reason it has the value it has (proto/wire.md §2, §8; proto/ratchet.md).  Wire-visible limits are
 * part of proto/wire.md; changing one is a protocol change.
 */
#ifndef RELM_LIMITS_H
#define RELM_LIMITS_H

enum relm_limits {
	/* --- sizes fixed by the primitives (proto/wire.md §2) --- */
	RELM_KEY_LEN        = 32,   /* X25519 keys, root/chain/message keys */
	RELM_SIGN_PK_LEN    = 32,   /* Ed25519 public key (IPK, mailbox key) */
	RELM_SIGN_SK_LEN    = 64,   /* Ed25519 secret key (libsodium layout: seed||pk) */
	RELM_SIG_LEN        = 64,   /* Ed25519 signature */
	RELM_NONCE_LEN      = 24,   /* XChaCha20-Poly1305: random nonce, safe to draw */
	RELM_TAG_LEN        = 16,   /* Poly1305 tag */
	RELM_ID_LEN         = 16,   /* node ids, message ids, relationship ids: BLAKE2b-128 / random */

	/* --- envelope (proto/wire.md) --- */
	RELM_WIRE_VERSION   = 1,    /* first byte of every envelope and invite */
	RELM_HEADER_LEN     = 66,   /* version(1) flags(1) dh_pub(32) pn(4) n(4) nonce(24) */
	RELM_INITIAL_EXT_LEN = 72,  /* ipk_b(32) ek_b(32) spk_id(4) opk_id(4) */
	RELM_GATE_LEN       = 16,   /* gate tag ending an envelope: junk is refused before it is kept */
	RELM_PAD_BLOCK      = 64,   /* payloads padded to a multiple of this: sizes reveal little */
	RELM_ENVELOPE_MAX   = 65536,/* mailbox limit; also bounds payloads */
	RELM_PAYLOAD_MAX    = RELM_ENVELOPE_MAX - RELM_HEADER_LEN - RELM_INITIAL_EXT_LEN - RELM_TAG_LEN - RELM_GATE_LEN,
	RELM_BODY_MAX       = 60000,/* a text body must fit one envelope with its JSON wrapping */
	RELM_MAILBOX_ADDR_MAX = 255,/* host:port/id, length-prefixed by one byte in invites */

	/* --- ratchet (proto/ratchet.md §2–§5) --- */
	RELM_MAX_SKIP       = 1000, /* message keys skipped in one chain: Signal's order of magnitude */
	RELM_MAX_SKIPPED    = 2000, /* total stored skipped keys per relationship (memory / store bound) */
	RELM_MAX_TRIAL      = 16,   /* ours nodes tried for an unknown remote key: bounds CPU per envelope */
	RELM_MAX_PENDING    = 256,  /* pending envelopes per relationship; the oldest is reported beyond */
	RELM_MAX_NODES      = 64,   /* retained nodes per relationship; pruning keeps far fewer */
	RELM_PRUNE_W        = 2,    /* losing branch deleted once its deepest node is > W behind the chosen leaf */
	RELM_RETAIN_R       = 4,    /* ours private keys kept at most R steps behind the chosen leaf */
	RELM_KEEP_BACK      = 8,    /* single-child ancestors kept this far behind the chosen leaf (late messages) */
	RELM_MAX_USED_KEYS  = 32,   /* used message keys kept for counter collisions (tree mode) */
	RELM_MAX_ACKS       = 64,   /* acks per receipt: keeps receipts one or two pad blocks */
	RELM_RECEIPTS_PER_STEP = 8, /* receipts one timer step sends; the rest go in the next (a loop turn each) */
	RELM_RETX_PER_STEP  = 256,  /* retransmissions one timer step loads and sends; the rest stay due */
	RELM_TICK_POSTS     = 64,   /* envelopes one relm_core_tick posts before it stops: the rest are due at once */
	RELM_MAX_OUTGOING   = 4096, /* unacknowledged outgoing messages per relationship */

	/* --- devices of one proton (proto/devices.md) --- */
	RELM_MAX_DEVICES    = 16,   /* devices in a circle: a person's phones, laptops, tablets */
	RELM_SIBLING_MAX    = 65200,/* binary sibling message: fits a sibling envelope with its framing */
	RELM_COPY_PAYLOAD_MAX = RELM_SIBLING_MAX - 126, /* a payload must fit a copy (devices.md §4.2) */
	RELM_MAX_PENDING_COPIES = 32, /* sibling nodes waiting for their parent; beyond, repair by state */
	RELM_PRUNED_RING    = 32,   /* ids of pruned nodes remembered: a sibling on one triggers repair */
	RELM_HEAL_OTHERS    = RELM_MAX_DEVICES, /* other heal nodes of a revocation a device remembers: one per sibling whose heal raced its own (revocation.md §2) */

	/* --- timers, milliseconds (proto/ratchet.md §2.2, §4.4, §5.3, §6.2; proto/devices.md §5) --- */
	RELM_RECEIPT_DELAY_MIN_MS = 200,   /* automated replies wait 0.2–2 s: one device answers, */
	RELM_RECEIPT_DELAY_MAX_MS = 2000,  /* and timing does not reveal how many there are */
	RELM_RETX_BASE_MS   = 10000,       /* first retransmission after 10 s without a receipt */
	RELM_RETX_CAP_MS    = 3600000,     /* backoff doubles up to one hour */
	RELM_RETX_MAX_TRIES = 24,          /* then `failed` with a reason (about 16 hours of backoff) */
	RELM_RETX_MAX_AGE_MS = 86400000,   /* and never tried 24 h after it was first sent, by any device (a sibling's takeover included) */
	RELM_PENDING_TTL_MS = 1800000,     /* pending envelopes reported undecryptable after 30 min */
	RELM_SKIPPED_TTL_MS = 604800000,   /* skipped message keys expire after 7 days */
	RELM_USED_KEY_TTL_MS = 600000,     /* a used key decrypts a sibling's collision for 10 min, then goes (FS) */
	RELM_RECEIPT_STAGGER_MS = 3000,    /* a sibling of rank k answers k × 3 s after the first would have */
	RELM_RETX_TAKEOVER_MS = 600000,    /* a sibling's unreceipted message: another device retransmits after 10 min */
	RELM_REPAIR_AFTER_MS = 60000,      /* a sibling's node unplaced this long: ask it for its state */
	RELM_REPAIR_GAP_MS  = 30000,       /* at most one state request per sibling and relationship this often */
	RELM_HEAL_MIN_MS    = 60000,       /* a relationship's heal after a revocation: at the earliest */
	RELM_HEAL_MAX_MS    = 3600000,     /* and at the latest (uniform between, per relationship) */
	RELM_CLONE_WINDOW_MS = 600000,     /* an acknowledged ours node nothing explains this long: clone.suspected */

	/* --- strategies (proto/devices.md §11) --- */
	RELM_LEASE_TTL_MS   = 20000,       /* the send lease: a silent leader is replaced within 20 s */
	RELM_LEASE_MARGIN_MS = 2000,       /* a holder stops sending 2 s before its lease could expire */
	RELM_REQUEST_RESEND_MS = 60000,    /* a pending request goes again to the current holder */
	RELM_REQUEST_BODY_MAX = RELM_BODY_MAX, /* a request or delivery carries a whole text body */

	/* --- daemon / API (proto/api.md §1) --- */
	RELM_LINE_MAX       = 1 << 20, /* JSON-RPC line limit, enforced while reading */
};

#endif

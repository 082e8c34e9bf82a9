/*
 * mailbox_proto.c — frames of proto/mailbox.md, encoded and decoded with
 * no I/O.  Each type's body is written and read by one table-like pair of
 * switch arms so the two stay mirror images; a reader (struct rd) that
 * refuses to move past its end makes every truncation an error rather than
 * an over-read, and decode finally insists the body was consumed exactly.
 */
#include "wire/mailbox_proto.h"

#include <string.h>
#include <sodium.h>

#include "error.h"

const char *relm_mbox_errname(unsigned code)
{
	switch (code) {
#define X(name, val, str, msg) case val: return str;
	RELM_MBOX_ERRORS(X)
#undef X
	default: return "unknown";
	}
}

int relm_mbox_err_to_relm(unsigned code)
{
	switch (code) {
	case RELM_MBOX_E_MALFORMED:     return RELM_EMALFORMED;
	case RELM_MBOX_E_VERSION:       return RELM_EVERSION;
	case RELM_MBOX_E_TOO_BIG:       return RELM_ETOOBIG;
	case RELM_MBOX_E_BAD_SIGNATURE: return RELM_EBADSIG;
	case RELM_MBOX_E_BAD_MAILBOX:   return RELM_EBADKEY;
	case RELM_MBOX_E_RATE_LIMITED:  return RELM_EBUSY;
	case RELM_MBOX_E_TOO_MANY_SUBS: return RELM_ELIMIT;
	case RELM_MBOX_E_BAD_REQUEST:   return RELM_EINVAL;
	case RELM_MBOX_E_TIMEOUT:       return RELM_ETIMEOUT;
	case RELM_MBOX_E_STORE:         return RELM_ESTORE;
	case RELM_MBOX_E_OVERLOADED:    return RELM_EBUSY;
	case RELM_MBOX_E_NOT_SUBSCRIBED:return RELM_ENOTFOUND;
	case RELM_MBOX_E_SHUTDOWN:      return RELM_ECLOSED;
	case RELM_MBOX_E_UNKNOWN_KEY:   return RELM_ENOTFOUND;
	default:                        return RELM_EPROTO;
	}
}

/* ---- bounded reader / writer ---- */

struct rd {
	const uint8_t *p;
	size_t left;
	int bad;            /* sticky: a read past the end happened */
};

static const uint8_t *rd_take(struct rd *r, size_t n)
{
	const uint8_t *p;

	if (r->bad || n > r->left) {
		r->bad = 1;
		return NULL;
	}
	p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

static uint8_t rd_u8(struct rd *r)
{
	const uint8_t *p = rd_take(r, 1);
	return p ? p[0] : 0;
}

static uint16_t rd_u16(struct rd *r)
{
	const uint8_t *p = rd_take(r, 2);
	return p ? (uint16_t)((unsigned)p[0] << 8 | p[1]) : 0;
}

static uint32_t rd_u32(struct rd *r)
{
	const uint8_t *p = rd_take(r, 4);
	return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

static uint64_t rd_u64(struct rd *r)
{
	uint64_t hi = rd_u32(r);
	return hi << 32 | rd_u32(r);
}

static void rd_copy(struct rd *r, uint8_t *dst, size_t n)
{
	const uint8_t *p = rd_take(r, n);
	if (p)
		memcpy(dst, p, n);
	else
		memset(dst, 0, n);
}

/* The writer is only ever given a buffer of relm_mbox_frame_size() bytes,
 * so it does not check; the assert documents that. */
struct wr {
	uint8_t *p;
};

static void wr_u8(struct wr *w, uint8_t v) { *w->p++ = v; }
static void wr_u16(struct wr *w, uint16_t v) { wr_u8(w, (uint8_t)(v >> 8)); wr_u8(w, (uint8_t)v); }
static void wr_u32(struct wr *w, uint32_t v)
{
	wr_u8(w, (uint8_t)(v >> 24)); wr_u8(w, (uint8_t)(v >> 16));
	wr_u8(w, (uint8_t)(v >> 8)); wr_u8(w, (uint8_t)v);
}
static void wr_u64(struct wr *w, uint64_t v) { wr_u32(w, (uint32_t)(v >> 32)); wr_u32(w, (uint32_t)v); }
static void wr_bytes(struct wr *w, const void *src, size_t n)
{
	if (n)
		memcpy(w->p, src, n);
	w->p += n;
}

/* ---- sizes ---- */

static size_t batch_entry_size(uint8_t kind)
{
	return kind == RELM_MBOX_BATCH_MAC ? RELM_MBOX_BATCH_MAC_ENTRY :
	       kind == RELM_MBOX_BATCH_REGISTER ? RELM_MBOX_BATCH_REG_ENTRY : 0;
}

/* Body size of f, or 0 if it cannot be encoded. */
static size_t body_size(const struct relm_mbox_frame *f)
{
	if (f->version < 1 || f->version > RELM_MBOX_VERSION_MAX)
		return 0;
	if (f->version == RELM_MBOX_VERSION && f->type > RELM_MBOX_TYPE_MAX_V1)
		return 0;
	switch (f->type) {
	case RELM_MBOX_HELLO:        return 6;
	case RELM_MBOX_CHALLENGE:
		return 1 + 4 + RELM_MBOX_NONCE_LEN + 5 * 4 +
		       (f->version >= RELM_MBOX_VERSION_2 ? RELM_MBOX_REALM_LEN + RELM_MBOX_KX_LEN : 0);
	case RELM_MBOX_POST:
		if (f->u.post.env_len < 1 || f->u.post.env_len > RELM_MBOX_ENVELOPE_MAX ||
		    !f->u.post.env)
			return 0;
		return 4 + RELM_MBOX_ID_LEN + f->u.post.env_len;
	case RELM_MBOX_POSTED:       return 4 + 8;
	case RELM_MBOX_SUBSCRIBE:    return 4 + RELM_MBOX_ID_LEN + 8 + RELM_SIG_LEN;
	case RELM_MBOX_SUBSCRIBED:   return 4 + RELM_MBOX_ID_LEN + 8 + 8;
	case RELM_MBOX_DELIVER:
		if (f->u.deliver.env_len < 1 || f->u.deliver.env_len > RELM_MBOX_ENVELOPE_MAX ||
		    !f->u.deliver.env)
			return 0;
		return RELM_MBOX_ID_LEN + 8 + f->u.deliver.env_len;
	case RELM_MBOX_UNSUBSCRIBE:
	case RELM_MBOX_UNSUBSCRIBED: return 4 + RELM_MBOX_ID_LEN;
	case RELM_MBOX_LEASE:
		if (f->u.lease.name_len < 1 || f->u.lease.name_len > RELM_MBOX_LEASE_NAME_MAX ||
		    !f->u.lease.name)
			return 0;
		return 4 + RELM_MBOX_ID_LEN + 1 + f->u.lease.name_len +
		       2 * RELM_MBOX_TOKEN_LEN + 4 + RELM_SIG_LEN;
	case RELM_MBOX_LEASE_RESULT: return 4 + 1 + RELM_MBOX_TOKEN_LEN + 4;
	case RELM_MBOX_PING:
	case RELM_MBOX_PONG:         return 4;
	case RELM_MBOX_ERROR:
		if (f->u.error.text_len > RELM_MBOX_ERROR_TEXT_MAX ||
		    (f->u.error.text_len && !f->u.error.text))
			return 0;
		return 4 + 2 + 1 + 1 + f->u.error.text_len;
	case RELM_MBOX_SUBSCRIBE_BATCH: {
		size_t es = batch_entry_size(f->u.sub_batch.kind);
		if (!es || f->u.sub_batch.count < 1 || f->u.sub_batch.count > RELM_MBOX_BATCH_MAX ||
		    !f->u.sub_batch.entries)
			return 0;
		if (4 + 1 + RELM_MBOX_KX_LEN + es * f->u.sub_batch.count > RELM_MBOX_BODY_MAX)
			return 0;
		return 4 + 1 + RELM_MBOX_KX_LEN + es * f->u.sub_batch.count;
	}
	case RELM_MBOX_SUBSCRIBED_BATCH:
		if (f->u.subed_batch.count < 1 || f->u.subed_batch.count > RELM_MBOX_BATCH_MAX ||
		    !f->u.subed_batch.entries)
			return 0;
		return 4 + RELM_MBOX_BATCHED_ENTRY * f->u.subed_batch.count;
	default:
		return 0;
	}
}

size_t relm_mbox_frame_size(const struct relm_mbox_frame *f)
{
	size_t b = body_size(f);
	return b ? RELM_MBOX_HDR_LEN + b : 0;
}

uint32_t relm_mbox_cost(size_t frame_len)
{
	return 1 + (uint32_t)(frame_len / RELM_MBOX_COST_UNIT);
}

/* ---- encode ---- */

int relm_mbox_frame_encode(uint8_t *out, size_t cap, const struct relm_mbox_frame *f)
{
	size_t total = relm_mbox_frame_size(f);
	struct wr w = { out };

	if (!total)
		return RELM_EINVAL;
	if (cap < total)
		return RELM_ETOOBIG;

	wr_u32(&w, (uint32_t)(total - 4));
	wr_u8(&w, f->version);
	wr_u8(&w, f->type);
	switch (f->type) {
	case RELM_MBOX_HELLO:
		wr_u8(&w, f->u.hello.min_version);
		wr_u8(&w, f->u.hello.max_version);
		wr_u32(&w, f->u.hello.flags);
		break;
	case RELM_MBOX_CHALLENGE:
		wr_u8(&w, f->u.challenge.version);
		wr_u32(&w, f->u.challenge.flags);
		wr_bytes(&w, f->u.challenge.nonce, RELM_MBOX_NONCE_LEN);
		wr_u32(&w, f->u.challenge.max_envelope);
		wr_u32(&w, f->u.challenge.max_subs);
		wr_u32(&w, f->u.challenge.rate);
		wr_u32(&w, f->u.challenge.burst);
		wr_u32(&w, f->u.challenge.retention_s);
		if (f->version >= RELM_MBOX_VERSION_2) {
			wr_bytes(&w, f->u.challenge.realm, RELM_MBOX_REALM_LEN);
			wr_bytes(&w, f->u.challenge.kx, RELM_MBOX_KX_LEN);
		}
		break;
	case RELM_MBOX_POST:
		wr_u32(&w, f->u.post.tag);
		wr_bytes(&w, f->u.post.mailbox, RELM_MBOX_ID_LEN);
		wr_bytes(&w, f->u.post.env, f->u.post.env_len);
		break;
	case RELM_MBOX_POSTED:
		wr_u32(&w, f->u.posted.tag);
		wr_u64(&w, f->u.posted.seq);
		break;
	case RELM_MBOX_SUBSCRIBE:
		wr_u32(&w, f->u.subscribe.tag);
		wr_bytes(&w, f->u.subscribe.mailbox, RELM_MBOX_ID_LEN);
		wr_u64(&w, f->u.subscribe.cursor);
		wr_bytes(&w, f->u.subscribe.sig, RELM_SIG_LEN);
		break;
	case RELM_MBOX_SUBSCRIBED:
		wr_u32(&w, f->u.subscribed.tag);
		wr_bytes(&w, f->u.subscribed.mailbox, RELM_MBOX_ID_LEN);
		wr_u64(&w, f->u.subscribed.head);
		wr_u64(&w, f->u.subscribed.oldest);
		break;
	case RELM_MBOX_DELIVER:
		wr_bytes(&w, f->u.deliver.mailbox, RELM_MBOX_ID_LEN);
		wr_u64(&w, f->u.deliver.seq);
		wr_bytes(&w, f->u.deliver.env, f->u.deliver.env_len);
		break;
	case RELM_MBOX_UNSUBSCRIBE:
	case RELM_MBOX_UNSUBSCRIBED:
		wr_u32(&w, f->u.unsub.tag);
		wr_bytes(&w, f->u.unsub.mailbox, RELM_MBOX_ID_LEN);
		break;
	case RELM_MBOX_LEASE:
		wr_u32(&w, f->u.lease.tag);
		wr_bytes(&w, f->u.lease.mailbox, RELM_MBOX_ID_LEN);
		wr_u8(&w, (uint8_t)f->u.lease.name_len);
		wr_bytes(&w, f->u.lease.name, f->u.lease.name_len);
		wr_bytes(&w, f->u.lease.expected, RELM_MBOX_TOKEN_LEN);
		wr_bytes(&w, f->u.lease.holder, RELM_MBOX_TOKEN_LEN);
		wr_u32(&w, f->u.lease.ttl_ms);
		wr_bytes(&w, f->u.lease.sig, RELM_SIG_LEN);
		break;
	case RELM_MBOX_LEASE_RESULT:
		wr_u32(&w, f->u.lease_result.tag);
		wr_u8(&w, f->u.lease_result.granted);
		wr_bytes(&w, f->u.lease_result.holder, RELM_MBOX_TOKEN_LEN);
		wr_u32(&w, f->u.lease_result.remaining_ms);
		break;
	case RELM_MBOX_PING:
	case RELM_MBOX_PONG:
		wr_u32(&w, f->u.ping.tag);
		break;
	case RELM_MBOX_ERROR:
		wr_u32(&w, f->u.error.tag);
		wr_u16(&w, f->u.error.code);
		wr_u8(&w, f->u.error.flags);
		wr_u8(&w, (uint8_t)f->u.error.text_len);
		wr_bytes(&w, f->u.error.text, f->u.error.text_len);
		break;
	case RELM_MBOX_SUBSCRIBE_BATCH:
		wr_u32(&w, f->u.sub_batch.tag);
		wr_u8(&w, f->u.sub_batch.kind);
		wr_bytes(&w, f->u.sub_batch.kx, RELM_MBOX_KX_LEN);
		wr_bytes(&w, f->u.sub_batch.entries,
		         batch_entry_size(f->u.sub_batch.kind) * f->u.sub_batch.count);
		break;
	case RELM_MBOX_SUBSCRIBED_BATCH:
		wr_u32(&w, f->u.subed_batch.tag);
		wr_bytes(&w, f->u.subed_batch.entries, RELM_MBOX_BATCHED_ENTRY * f->u.subed_batch.count);
		break;
	}
	return (int)total;
}

/* ---- framing and decode ---- */

int relm_mbox_frame_peek(size_t *frame_len, const uint8_t *buf, size_t len)
{
	uint32_t l;

	if (len < 4)
		return RELM_ETRUNCATED;
	l = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
	if (l > RELM_MBOX_FRAME_MAX)
		return RELM_ETOOBIG;
	if (l < 2)
		return RELM_EMALFORMED;
	if (len - 4 < l)
		return RELM_ETRUNCATED;
	*frame_len = 4 + (size_t)l;
	return 0;
}

int relm_mbox_frame_decode(struct relm_mbox_frame *out, const uint8_t *buf, size_t len)
{
	struct relm_mbox_frame f;
	struct rd r;
	size_t flen, n;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len < RELM_MBOX_HDR_LEN)
		return len >= 4 && relm_mbox_frame_peek(&flen, buf, len) == RELM_ETOOBIG ?
		       RELM_ETOOBIG : RELM_ETRUNCATED;
	rc = relm_mbox_frame_peek(&flen, buf, len);
	if (rc)
		return rc;
	if (flen != len)
		return RELM_EMALFORMED;  /* trailing bytes after the frame */

	memset(&f, 0, sizeof(f));
	f.version = buf[4];
	f.type = buf[5];
	out->version = f.version;
	out->type = f.type;
	if (f.version < 1 || f.version > RELM_MBOX_VERSION_MAX)
		return RELM_EVERSION;
	if (f.version == RELM_MBOX_VERSION && f.type > RELM_MBOX_TYPE_MAX_V1)
		return RELM_ENOTFOUND;
	r.p = buf + RELM_MBOX_HDR_LEN;
	r.left = len - RELM_MBOX_HDR_LEN;
	r.bad = 0;

	switch (f.type) {
	case RELM_MBOX_HELLO:
		f.u.hello.min_version = rd_u8(&r);
		f.u.hello.max_version = rd_u8(&r);
		f.u.hello.flags = rd_u32(&r);
		if (f.u.hello.min_version > f.u.hello.max_version || f.u.hello.min_version == 0)
			return RELM_EMALFORMED;
		break;
	case RELM_MBOX_CHALLENGE:
		f.u.challenge.version = rd_u8(&r);
		f.u.challenge.flags = rd_u32(&r);
		rd_copy(&r, f.u.challenge.nonce, RELM_MBOX_NONCE_LEN);
		f.u.challenge.max_envelope = rd_u32(&r);
		f.u.challenge.max_subs = rd_u32(&r);
		f.u.challenge.rate = rd_u32(&r);
		f.u.challenge.burst = rd_u32(&r);
		f.u.challenge.retention_s = rd_u32(&r);
		if (f.version >= RELM_MBOX_VERSION_2) {
			rd_copy(&r, f.u.challenge.realm, RELM_MBOX_REALM_LEN);
			rd_copy(&r, f.u.challenge.kx, RELM_MBOX_KX_LEN);
		}
		break;
	case RELM_MBOX_POST:
		f.u.post.tag = rd_u32(&r);
		rd_copy(&r, f.u.post.mailbox, RELM_MBOX_ID_LEN);
		n = r.bad ? 0 : r.left;
		if (n > RELM_MBOX_ENVELOPE_MAX)
			return RELM_ETOOBIG;   /* framing intact: the peer may go on */
		if (n < 1)
			return RELM_EMALFORMED;
		f.u.post.env = rd_take(&r, n);
		f.u.post.env_len = n;
		break;
	case RELM_MBOX_POSTED:
		f.u.posted.tag = rd_u32(&r);
		f.u.posted.seq = rd_u64(&r);
		break;
	case RELM_MBOX_SUBSCRIBE:
		f.u.subscribe.tag = rd_u32(&r);
		rd_copy(&r, f.u.subscribe.mailbox, RELM_MBOX_ID_LEN);
		f.u.subscribe.cursor = rd_u64(&r);
		rd_copy(&r, f.u.subscribe.sig, RELM_SIG_LEN);
		break;
	case RELM_MBOX_SUBSCRIBED:
		f.u.subscribed.tag = rd_u32(&r);
		rd_copy(&r, f.u.subscribed.mailbox, RELM_MBOX_ID_LEN);
		f.u.subscribed.head = rd_u64(&r);
		f.u.subscribed.oldest = rd_u64(&r);
		break;
	case RELM_MBOX_DELIVER:
		rd_copy(&r, f.u.deliver.mailbox, RELM_MBOX_ID_LEN);
		f.u.deliver.seq = rd_u64(&r);
		n = r.bad ? 0 : r.left;
		if (n > RELM_MBOX_ENVELOPE_MAX)
			return RELM_ETOOBIG;   /* framing intact: the peer may go on */
		if (n < 1)
			return RELM_EMALFORMED;
		f.u.deliver.env = rd_take(&r, n);
		f.u.deliver.env_len = n;
		break;
	case RELM_MBOX_UNSUBSCRIBE:
	case RELM_MBOX_UNSUBSCRIBED:
		f.u.unsub.tag = rd_u32(&r);
		rd_copy(&r, f.u.unsub.mailbox, RELM_MBOX_ID_LEN);
		break;
	case RELM_MBOX_LEASE:
		f.u.lease.tag = rd_u32(&r);
		rd_copy(&r, f.u.lease.mailbox, RELM_MBOX_ID_LEN);
		n = rd_u8(&r);
		if (r.bad || n < 1 || n > RELM_MBOX_LEASE_NAME_MAX)
			return RELM_EMALFORMED;
		f.u.lease.name = rd_take(&r, n);
		f.u.lease.name_len = n;
		rd_copy(&r, f.u.lease.expected, RELM_MBOX_TOKEN_LEN);
		rd_copy(&r, f.u.lease.holder, RELM_MBOX_TOKEN_LEN);
		f.u.lease.ttl_ms = rd_u32(&r);
		rd_copy(&r, f.u.lease.sig, RELM_SIG_LEN);
		break;
	case RELM_MBOX_LEASE_RESULT:
		f.u.lease_result.tag = rd_u32(&r);
		f.u.lease_result.granted = rd_u8(&r);
		rd_copy(&r, f.u.lease_result.holder, RELM_MBOX_TOKEN_LEN);
		f.u.lease_result.remaining_ms = rd_u32(&r);
		if (f.u.lease_result.granted > 1)
			return RELM_EMALFORMED;
		break;
	case RELM_MBOX_PING:
	case RELM_MBOX_PONG:
		f.u.ping.tag = rd_u32(&r);
		break;
	case RELM_MBOX_ERROR:
		f.u.error.tag = rd_u32(&r);
		f.u.error.code = rd_u16(&r);
		f.u.error.flags = rd_u8(&r);
		n = rd_u8(&r);
		if (r.bad)
			return RELM_EMALFORMED;
		f.u.error.text = (const char *)rd_take(&r, n);
		f.u.error.text_len = n;
		break;
	case RELM_MBOX_SUBSCRIBE_BATCH: {
		size_t es;

		f.u.sub_batch.tag = rd_u32(&r);
		f.u.sub_batch.kind = rd_u8(&r);
		rd_copy(&r, f.u.sub_batch.kx, RELM_MBOX_KX_LEN);
		es = batch_entry_size(f.u.sub_batch.kind);
		if (r.bad || !es || r.left % es != 0 || r.left / es < 1 ||
		    r.left / es > RELM_MBOX_BATCH_MAX)
			return RELM_EMALFORMED;
		/* a MAC batch carries no key: the field must be zero */
		if (f.u.sub_batch.kind == RELM_MBOX_BATCH_MAC &&
		    !sodium_is_zero(f.u.sub_batch.kx, RELM_MBOX_KX_LEN))
			return RELM_EMALFORMED;
		f.u.sub_batch.count = r.left / es;
		f.u.sub_batch.entries = rd_take(&r, r.left);
		break;
	}
	case RELM_MBOX_SUBSCRIBED_BATCH:
		f.u.subed_batch.tag = rd_u32(&r);
		if (r.bad || r.left % RELM_MBOX_BATCHED_ENTRY != 0 ||
		    r.left / RELM_MBOX_BATCHED_ENTRY < 1 ||
		    r.left / RELM_MBOX_BATCHED_ENTRY > RELM_MBOX_BATCH_MAX)
			return RELM_EMALFORMED;
		f.u.subed_batch.count = r.left / RELM_MBOX_BATCHED_ENTRY;
		f.u.subed_batch.entries = rd_take(&r, r.left);
		break;
	default:
		return RELM_ENOTFOUND;
	}
	if (r.bad || r.left != 0)
		return RELM_EMALFORMED;
	*out = f;
	return 0;
}

/* ---- signature inputs ---- */

/* context ‖ nonce ‖ mailbox ‖ u64be cursor: what a subscription's
 * signature (v1) and MAC (v2) cover, each under its own context. */
static size_t sub_input(uint8_t *out, const char *ctx, size_t ctx_len,
                        const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                        const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t cursor)
{
	struct wr w = { out };

	wr_bytes(&w, ctx, ctx_len);
	wr_bytes(&w, nonce, RELM_MBOX_NONCE_LEN);
	wr_bytes(&w, mailbox, RELM_MBOX_ID_LEN);
	wr_u64(&w, cursor);
	return (size_t)(w.p - out);
}

size_t relm_mbox_sub_sig_input(uint8_t out[RELM_MBOX_SUB_SIG_INPUT_LEN],
                               const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                               const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t cursor)
{
	return sub_input(out, RELM_MBOX_SUB_CONTEXT, sizeof(RELM_MBOX_SUB_CONTEXT) - 1,
	                 nonce, mailbox, cursor);
}

size_t relm_mbox_lease_sig_input(uint8_t out[RELM_MBOX_LEASE_SIG_INPUT_MAX],
                                 const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                                 const struct relm_mbox_lease *l)
{
	struct wr w = { out };

	if (l->name_len < 1 || l->name_len > RELM_MBOX_LEASE_NAME_MAX || !l->name)
		return 0;
	wr_bytes(&w, RELM_MBOX_LEASE_CONTEXT, sizeof(RELM_MBOX_LEASE_CONTEXT) - 1);
	wr_bytes(&w, nonce, RELM_MBOX_NONCE_LEN);
	wr_bytes(&w, l->mailbox, RELM_MBOX_ID_LEN);
	wr_u8(&w, (uint8_t)l->name_len);
	wr_bytes(&w, l->name, l->name_len);
	wr_bytes(&w, l->expected, RELM_MBOX_TOKEN_LEN);
	wr_bytes(&w, l->holder, RELM_MBOX_TOKEN_LEN);
	wr_u32(&w, l->ttl_ms);
	return (size_t)(w.p - out);
}

void relm_mbox_sub_sign(uint8_t sig[RELM_SIG_LEN], const uint8_t sk[RELM_SIGN_SK_LEN],
                        const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                        const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t cursor)
{
	uint8_t m[RELM_MBOX_SUB_SIG_INPUT_LEN];
	size_t n = relm_mbox_sub_sig_input(m, nonce, mailbox, cursor);

	crypto_sign_detached(sig, NULL, m, n, sk);
}

static int verify(const uint8_t sig[RELM_SIG_LEN], const uint8_t *m, size_t n,
                  const uint8_t pk[RELM_MBOX_ID_LEN])
{
	/* is_valid_point rejects small-order and non-canonical keys, which
	 * crypto_sign_verify_detached would also refuse; checking first gives
	 * the caller a distinct "bad mailbox" answer. */
	if (crypto_core_ed25519_is_valid_point(pk) != 1)
		return RELM_EBADKEY;
	return crypto_sign_verify_detached(sig, m, n, pk) == 0 ? 0 : RELM_EBADSIG;
}

int relm_mbox_sub_verify(const uint8_t sig[RELM_SIG_LEN],
                         const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                         const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t cursor)
{
	uint8_t m[RELM_MBOX_SUB_SIG_INPUT_LEN];
	size_t n = relm_mbox_sub_sig_input(m, nonce, mailbox, cursor);

	return verify(sig, m, n, mailbox);
}

int relm_mbox_lease_sign(struct relm_mbox_lease *l, const uint8_t sk[RELM_SIGN_SK_LEN],
                         const uint8_t nonce[RELM_MBOX_NONCE_LEN])
{
	uint8_t m[RELM_MBOX_LEASE_SIG_INPUT_MAX];
	size_t n = relm_mbox_lease_sig_input(m, nonce, l);

	if (!n)
		return RELM_EINVAL;
	crypto_sign_detached(l->sig, NULL, m, n, sk);
	return 0;
}

int relm_mbox_lease_verify(const struct relm_mbox_lease *l,
                           const uint8_t nonce[RELM_MBOX_NONCE_LEN])
{
	uint8_t m[RELM_MBOX_LEASE_SIG_INPUT_MAX];
	size_t n = relm_mbox_lease_sig_input(m, nonce, l);

	if (!n)
		return RELM_EBADSIG;
	return verify(l->sig, m, n, l->mailbox);
}

/* ---- batched subscription (version 2) ---- */

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

void relm_mbox_batch_entry(const struct relm_mbox_sub_batch *b, size_t i,
                           struct relm_mbox_batch_entry *e)
{
	const uint8_t *p = b->entries + i * batch_entry_size(b->kind);

	memset(e, 0, sizeof(*e));
	e->mailbox = p;
	e->cursor = be64(p + RELM_MBOX_ID_LEN);
	p += RELM_MBOX_ID_LEN + 8;
	if (b->kind == RELM_MBOX_BATCH_MAC) {
		e->mac = p;
	} else {
		e->sealed = p;
		e->sig = p + RELM_MBOX_READ_KEY_LEN;
	}
}

void relm_mbox_batch_put_mac(uint8_t *dst, const uint8_t mailbox[RELM_MBOX_ID_LEN],
                             uint64_t cursor, const uint8_t mac[RELM_MBOX_MAC_LEN])
{
	struct wr w = { dst };

	wr_bytes(&w, mailbox, RELM_MBOX_ID_LEN);
	wr_u64(&w, cursor);
	wr_bytes(&w, mac, RELM_MBOX_MAC_LEN);
}

void relm_mbox_batch_put_reg(uint8_t *dst, const uint8_t mailbox[RELM_MBOX_ID_LEN],
                             uint64_t cursor, const uint8_t sealed[RELM_MBOX_READ_KEY_LEN],
                             const uint8_t sig[RELM_SIG_LEN])
{
	struct wr w = { dst };

	wr_bytes(&w, mailbox, RELM_MBOX_ID_LEN);
	wr_u64(&w, cursor);
	wr_bytes(&w, sealed, RELM_MBOX_READ_KEY_LEN);
	wr_bytes(&w, sig, RELM_SIG_LEN);
}

void relm_mbox_subed_entry(const struct relm_mbox_subed_batch *b, size_t i,
                           unsigned *code, uint64_t *head, uint64_t *oldest)
{
	const uint8_t *p = b->entries + i * RELM_MBOX_BATCHED_ENTRY;

	*code = (unsigned)p[0] << 8 | p[1];
	*head = be64(p + 2);
	*oldest = be64(p + 10);
}

void relm_mbox_subed_put(uint8_t *dst, unsigned code, uint64_t head, uint64_t oldest)
{
	struct wr w = { dst };

	wr_u16(&w, (uint16_t)code);
	wr_u64(&w, head);
	wr_u64(&w, oldest);
}

void relm_mbox_read_key(uint8_t key[RELM_MBOX_READ_KEY_LEN], const uint8_t sk[RELM_SIGN_SK_LEN],
                        const uint8_t realm[RELM_MBOX_REALM_LEN])
{
	crypto_generichash_state st;

	/* sk[0..32) is the Ed25519 seed (libsodium's layout: seed ‖ pk) */
	crypto_generichash_init(&st, sk, 32, RELM_MBOX_READ_KEY_LEN);
	crypto_generichash_update(&st, (const uint8_t *)RELM_MBOX_READ_KEY_CONTEXT,
	                          sizeof(RELM_MBOX_READ_KEY_CONTEXT) - 1);
	crypto_generichash_update(&st, realm, RELM_MBOX_REALM_LEN);
	crypto_generichash_final(&st, key, RELM_MBOX_READ_KEY_LEN);
	sodium_memzero(&st, sizeof(st));
}

void relm_mbox_sub_mac(uint8_t mac[RELM_MBOX_MAC_LEN], const uint8_t key[RELM_MBOX_READ_KEY_LEN],
                       const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                       const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t cursor)
{
	uint8_t m[RELM_MBOX_MAC_INPUT_LEN];

	sub_input(m, RELM_MBOX_MAC_CONTEXT, sizeof(RELM_MBOX_MAC_CONTEXT) - 1, nonce, mailbox, cursor);
	crypto_generichash(mac, RELM_MBOX_MAC_LEN, m, sizeof(m), key, RELM_MBOX_READ_KEY_LEN);
}

int relm_mbox_sub_mac_verify(const uint8_t mac[RELM_MBOX_MAC_LEN],
                             const uint8_t key[RELM_MBOX_READ_KEY_LEN],
                             const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                             const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t cursor)
{
	uint8_t want[RELM_MBOX_MAC_LEN];
	int ok;

	relm_mbox_sub_mac(want, key, nonce, mailbox, cursor);
	ok = sodium_memcmp(want, mac, RELM_MBOX_MAC_LEN) == 0;
	sodium_memzero(want, sizeof(want));
	return ok ? 0 : RELM_EBADSIG;
}

int relm_mbox_seal_key(uint8_t k[32], const uint8_t my_sk[32], const uint8_t their_kx[32],
                       const uint8_t kx_server[RELM_MBOX_KX_LEN],
                       const uint8_t kx_client[RELM_MBOX_KX_LEN])
{
	uint8_t dh[32];
	crypto_generichash_state st;
	int rc = 0;

	/* crypto_scalarmult fails on an all-zero output (a low-order point) */
	if (crypto_scalarmult(dh, my_sk, their_kx) != 0) {
		rc = RELM_EBADKEY;
		goto out;
	}
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, dh, sizeof(dh));
	crypto_generichash_update(&st, kx_server, RELM_MBOX_KX_LEN);
	crypto_generichash_update(&st, kx_client, RELM_MBOX_KX_LEN);
	crypto_generichash_final(&st, k, 32);
	sodium_memzero(&st, sizeof(st));
out:
	sodium_memzero(dh, sizeof(dh));
	return rc;
}

void relm_mbox_seal(uint8_t out[RELM_MBOX_READ_KEY_LEN], const uint8_t k[32],
                    const uint8_t mailbox[RELM_MBOX_ID_LEN],
                    const uint8_t in[RELM_MBOX_READ_KEY_LEN])
{
	uint8_t m[sizeof(RELM_MBOX_SEAL_CONTEXT) - 1 + RELM_MBOX_ID_LEN], pad[RELM_MBOX_READ_KEY_LEN];

	memcpy(m, RELM_MBOX_SEAL_CONTEXT, sizeof(RELM_MBOX_SEAL_CONTEXT) - 1);
	memcpy(m + sizeof(RELM_MBOX_SEAL_CONTEXT) - 1, mailbox, RELM_MBOX_ID_LEN);
	crypto_generichash(pad, sizeof(pad), m, sizeof(m), k, 32);
	for (size_t i = 0; i < RELM_MBOX_READ_KEY_LEN; i++)
		out[i] = in[i] ^ pad[i];
	sodium_memzero(pad, sizeof(pad));
}

size_t relm_mbox_reg_sig_input(uint8_t out[RELM_MBOX_REG_SIG_INPUT_LEN],
                               const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                               const uint8_t kx_server[RELM_MBOX_KX_LEN],
                               const uint8_t kx_client[RELM_MBOX_KX_LEN],
                               const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t cursor,
                               const uint8_t sealed[RELM_MBOX_READ_KEY_LEN])
{
	struct wr w = { out };

	wr_bytes(&w, RELM_MBOX_REG_CONTEXT, sizeof(RELM_MBOX_REG_CONTEXT) - 1);
	wr_bytes(&w, nonce, RELM_MBOX_NONCE_LEN);
	wr_bytes(&w, kx_server, RELM_MBOX_KX_LEN);
	wr_bytes(&w, kx_client, RELM_MBOX_KX_LEN);
	wr_bytes(&w, mailbox, RELM_MBOX_ID_LEN);
	wr_u64(&w, cursor);
	wr_bytes(&w, sealed, RELM_MBOX_READ_KEY_LEN);
	return (size_t)(w.p - out);
}

int relm_mbox_reg_verify(const uint8_t sig[RELM_SIG_LEN],
                         const uint8_t nonce[RELM_MBOX_NONCE_LEN],
                         const uint8_t kx_server[RELM_MBOX_KX_LEN],
                         const uint8_t kx_client[RELM_MBOX_KX_LEN],
                         const uint8_t mailbox[RELM_MBOX_ID_LEN], uint64_t cursor,
                         const uint8_t sealed[RELM_MBOX_READ_KEY_LEN])
{
	uint8_t m[RELM_MBOX_REG_SIG_INPUT_LEN];
	size_t n = relm_mbox_reg_sig_input(m, nonce, kx_server, kx_client, mailbox, cursor, sealed);

	return verify(sig, m, n, mailbox);
}

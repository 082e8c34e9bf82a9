/*
 * sibling.c — the sibling message codec (sibling.h, proto/devices.md §4).
 *
 * Decoding reads in wire order with a cursor that refuses to run past the
 * end, checks every count and length before use, and writes *out only
 * when everything passed.  Encoders size their buffer exactly first.
 */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "wire/sibling.h"
#include "crypto/crypto.h"
#include "text.h"
#include "error.h"
#include "text.h"

struct rd {
	const uint8_t *p;
	size_t len, off;
	int err;
};

static const uint8_t *take(struct rd *r, size_t n)
{
	const uint8_t *q;

	if (r->err || r->len - r->off < n) {
		r->err = 1;
		return NULL;
	}
	q = r->p + r->off;
	r->off += n;
	return q;
}

static void get(struct rd *r, void *out, size_t n)
{
	const uint8_t *q = take(r, n);
	if (q)
		memcpy(out, q, n);
	else
		memset(out, 0, n);
}

static uint32_t get32(struct rd *r)
{
	const uint8_t *q = take(r, 4);
	return q ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3] : 0;
}

static uint16_t get16(struct rd *r)
{
	const uint8_t *q = take(r, 2);
	return q ? (uint16_t)(q[0] << 8 | q[1]) : 0;
}

static uint64_t get64(struct rd *r)
{
	uint64_t hi = get32(r);
	return hi << 32 | get32(r);
}

static uint8_t get8(struct rd *r)
{
	const uint8_t *q = take(r, 1);
	return q ? q[0] : 0;
}

static uint8_t *put(uint8_t *p, const void *d, size_t n)
{
	memcpy(p, d, n);
	return p + n;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
	return put32(put32(p, (uint32_t)(v >> 32)), (uint32_t)v);
}

static uint8_t *put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static int is_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* ---- decoding ------------------------------------------------------------ */

static int decode_copy(struct relm_sib_copy *c, struct rd *r)
{
	memset(c, 0, sizeof *c);
	get(r, c->rel, RELM_ID_LEN);
	c->flags = take(r, 1) ? r->p[r->off - 1] : 0;
	get(r, c->node, RELM_ID_LEN);
	c->n = get32(r);
	if (r->err)
		return RELM_ETRUNCATED;
	if (c->flags & ~(unsigned)RELM_SIB_F_KNOWN)
		return RELM_EMALFORMED;
	if (c->flags & RELM_SIB_F_CREATED) {
		uint8_t want[RELM_ID_LEN];
		get(r, c->parent, RELM_ID_LEN);
		get(r, c->pub, RELM_KEY_LEN);
		get(r, c->priv, RELM_KEY_LEN);
		c->pn = get32(r);
		if (r->err)
			return RELM_ETRUNCATED;
		if (!relm_x25519_is_canonical(c->pub))
			return RELM_EBADKEY;
		relm_node_id(want, c->parent, c->pub);
		if (memcmp(want, c->node, RELM_ID_LEN) != 0)
			return RELM_EMALFORMED;
	}
	c->payload_len = get32(r);
	if (r->err)
		return RELM_ETRUNCATED;
	if (c->payload_len == 0 || c->payload_len > RELM_PAYLOAD_MAX)
		return RELM_EMALFORMED;
	if (!(c->payload = take(r, c->payload_len)))
		return RELM_ETRUNCATED;
	return r->off == r->len ? 0 : RELM_EMALFORMED;
}

static int decode_carry(struct relm_sib_carry *c, struct rd *r)
{
	memset(c, 0, sizeof *c);
	get(r, c->rel, RELM_ID_LEN);
	c->count = get16(r);
	if (r->err)
		return RELM_ETRUNCATED;
	if (c->count > RELM_MAX_ACKS)
		return RELM_EMALFORMED;
	c->list = r->p + r->off;
	for (uint16_t i = 0; i < c->count; i++) {
		uint32_t l = get32(r);
		if (r->err)
			return RELM_ETRUNCATED;
		if (l == 0 || l > RELM_PAYLOAD_MAX)
			return RELM_EMALFORMED;
		if (!take(r, l))
			return RELM_ETRUNCATED;
	}
	c->list_len = (size_t)(r->p + r->off - c->list);
	return r->off == r->len ? 0 : RELM_EMALFORMED;
}

static int decode_state(struct relm_sib_state *s, struct rd *r)
{
	memset(s, 0, sizeof *s);
	get(r, s->rel, RELM_ID_LEN);
	get(r, s->xfer, RELM_ID_LEN);
	s->part = get16(r);
	s->parts = get16(r);
	s->total = get32(r);
	if (r->err)
		return RELM_ETRUNCATED;
	if (s->parts == 0 || s->parts > RELM_SIB_STATE_PARTS || s->part >= s->parts ||
	    s->total == 0 || s->total > (uint32_t)s->parts * RELM_SIB_STATE_CHUNK ||
	    s->total <= (uint32_t)(s->parts - 1) * RELM_SIB_STATE_CHUNK)
		return RELM_EMALFORMED;
	s->chunk_len = s->part + 1 < s->parts ? RELM_SIB_STATE_CHUNK
	                                      : s->total - (size_t)s->part * RELM_SIB_STATE_CHUNK;
	if (!(s->chunk = take(r, s->chunk_len)))
		return RELM_ETRUNCATED;
	return r->off == r->len ? 0 : RELM_EMALFORMED;
}

/* A length-prefixed text (one byte) into dst (cap > 255): UTF-8, no NUL. */
static int get_text(struct rd *r, char *dst, size_t cap)
{
	size_t n = get8(r);
	const uint8_t *q = take(r, n);

	if (!q)
		return RELM_ETRUNCATED;
	if (n >= cap || !relm_text_ok(q, n))
		return RELM_EMALFORMED;
	memcpy(dst, q, n);
	dst[n] = '\0';
	return 0;
}

static int decode_rel(struct relm_sib_rel *m, struct rd *r)
{
	int rc;

	memset(m, 0, sizeof *m);
	get(r, m->rel, RELM_ID_LEN);
	m->created = get64(r);
	m->cursor = get64(r);
	if (r->err)
		return RELM_ETRUNCATED;
	if ((rc = get_text(r, m->label, sizeof m->label)) != 0 ||
	    (rc = get_text(r, m->addr, sizeof m->addr)) != 0)
		return rc;
	if (is_zero(m->rel, RELM_ID_LEN))
		return RELM_EMALFORMED;
	return r->off == r->len ? 0 : RELM_EMALFORMED;
}

/* One history entry at the cursor, checked; body a view. */
static int read_hmsg(struct rd *r, struct relm_sib_hmsg *m)
{
	size_t kl;
	const uint8_t *k;

	memset(m, 0, sizeof *m);
	get(r, m->id, RELM_ID_LEN);
	m->direction_in = get8(r);
	m->origin = get8(r);
	kl = get8(r);
	if (r->err)
		return RELM_ETRUNCATED;
	if (!(k = take(r, kl)))
		return RELM_ETRUNCATED;
	m->ts = get64(r);
	m->status = get8(r);
	m->body_len = get32(r);
	if (r->err)
		return RELM_ETRUNCATED;
	if (m->direction_in > 1 || m->origin < RELM_SIB_ORIGIN_MIN || m->origin > RELM_SIB_ORIGIN_MAX ||
	    m->status > RELM_SIB_STATUS_MAX || kl == 0 || kl > RELM_SIB_KIND_MAX || !relm_text_ok(k, kl) ||
	    m->body_len > RELM_PAYLOAD_MAX)
		return RELM_EMALFORMED;
	memcpy(m->kind, k, kl);
	m->kind[kl] = '\0';
	if (!(m->body = take(r, m->body_len)))
		return RELM_ETRUNCATED;
	return 0;
}

static int decode_history(struct relm_sib_history *h, struct rd *r)
{
	struct relm_sib_hmsg m;
	int rc;

	memset(h, 0, sizeof *h);
	get(r, h->rel, RELM_ID_LEN);
	h->count = get16(r);
	if (r->err)
		return RELM_ETRUNCATED;
	if (is_zero(h->rel, RELM_ID_LEN))
		return RELM_EMALFORMED;
	h->list = r->p + r->off;
	for (uint16_t i = 0; i < h->count; i++)
		if ((rc = read_hmsg(r, &m)) != 0)
			return rc;
	h->list_len = (size_t)(r->p + r->off - h->list);
	return r->off == r->len ? 0 : RELM_EMALFORMED;
}

static void read_invite(struct rd *r, struct relm_sib_invite *v)
{
	v->spk_id = get32(r);
	get(r, v->spk_priv, RELM_KEY_LEN);
	v->opk_id = get32(r);
	get(r, v->opk_priv, RELM_KEY_LEN);
	v->multi_use = get8(r);
	v->expires = get64(r);
	get(r, v->mailbox_sk, RELM_SIGN_SK_LEN);
	v->used = get32(r);
	v->cursor = get64(r);
}

static int invite_ok(const struct relm_sib_invite *v)
{
	return v->spk_id != 0 && v->multi_use <= 1 && (v->opk_id != 0 || is_zero(v->opk_priv, RELM_KEY_LEN));
}

static int decode_invites(struct relm_sib_invites *v, struct rd *r)
{
	struct relm_sib_invite inv;
	int rc = 0;

	memset(v, 0, sizeof *v);
	v->count = get8(r);
	if (r->err)
		return RELM_ETRUNCATED;
	v->list = r->p + r->off;
	for (unsigned i = 0; i < v->count && rc == 0; i++) {
		read_invite(r, &inv);
		if (r->err)
			rc = RELM_ETRUNCATED;
		else if (!invite_ok(&inv))
			rc = RELM_EMALFORMED;
	}
	sodium_memzero(&inv, sizeof inv);
	if (rc)
		return rc;
	return r->off == r->len ? 0 : RELM_EMALFORMED;
}

int relm_sib_decode(struct relm_sib_msg *out, const uint8_t *buf, size_t len)
{
	struct relm_sib_msg m;
	struct rd r = { buf, len, 1, 0 };
	int rc = 0;

	if (len > RELM_SIBLING_MAX)
		return RELM_ETOOBIG;
	if (len < 1)
		return RELM_ETRUNCATED;
	memset(&m, 0, sizeof m);
	m.type = (enum relm_sib_type)buf[0];
	switch (m.type) {
	case RELM_SIB_COPY:
		rc = decode_copy(&m.u.copy, &r);
		break;
	case RELM_SIB_CARRY:
		rc = decode_carry(&m.u.carry, &r);
		break;
	case RELM_SIB_STATE:
		rc = decode_state(&m.u.state, &r);
		break;
	case RELM_SIB_REL:
		rc = decode_rel(&m.u.rel, &r);
		break;
	case RELM_SIB_HISTORY:
		rc = decode_history(&m.u.history, &r);
		break;
	case RELM_SIB_INVITES:
		rc = decode_invites(&m.u.invites, &r);
		break;
	case RELM_SIB_SYNCED:
		m.u.synced.rels = get32(&r);
		m.u.synced.messages = get64(&r);
		rc = r.err ? RELM_ETRUNCATED : r.off == len ? 0 : RELM_EMALFORMED;
		break;
	case RELM_SIB_STATE_REQ:
		get(&r, m.u.state_req.rel, RELM_ID_LEN);
		rc = r.err ? RELM_ETRUNCATED : r.off == len ? 0 : RELM_EMALFORMED;
		break;
	case RELM_SIB_CIRCLE:
		if (len < 2)
			return RELM_ETRUNCATED;
		m.u.circle.buf = buf + 1;
		m.u.circle.len = len - 1;
		break;
	default:
		m.u.raw.buf = buf + 1;
		m.u.raw.len = len - 1;
		break;
	}
	if (rc == 0 && m.type == RELM_SIB_COPY && is_zero(m.u.copy.rel, RELM_ID_LEN))
		rc = RELM_EMALFORMED;
	if (rc != 0) {
		sodium_memzero(&m, sizeof m);
		return rc;
	}
	*out = m;
	sodium_memzero(&m, sizeof m);
	return 0;
}

/* ---- encoding ------------------------------------------------------------ */

static int alloc(uint8_t **out, size_t *outlen, size_t n)
{
	if (n > RELM_SIBLING_MAX)
		return RELM_ETOOBIG;
	if (!(*out = malloc(n)))
		return RELM_ENOMEM;
	*outlen = n;
	return 0;
}

int relm_sib_copy_encode(uint8_t **out, size_t *outlen, const struct relm_sib_copy *c)
{
	int created = (c->flags & RELM_SIB_F_CREATED) != 0;
	size_t n = 1 + 16 + 1 + 16 + 4 + (created ? 16 + 32 + 32 + 4 : 0) + 4 + c->payload_len;
	uint8_t *p;
	int rc;

	if (c->payload_len == 0 || c->payload_len > RELM_PAYLOAD_MAX ||
	    (c->flags & ~(unsigned)RELM_SIB_F_KNOWN))
		return RELM_EINVAL;
	if ((rc = alloc(out, outlen, n)) != 0)
		return rc;
	p = *out;
	*p++ = RELM_SIB_COPY;
	p = put(p, c->rel, RELM_ID_LEN);
	*p++ = c->flags;
	p = put(p, c->node, RELM_ID_LEN);
	p = put32(p, c->n);
	if (created) {
		p = put(p, c->parent, RELM_ID_LEN);
		p = put(p, c->pub, RELM_KEY_LEN);
		p = put(p, c->priv, RELM_KEY_LEN);
		p = put32(p, c->pn);
	}
	p = put32(p, (uint32_t)c->payload_len);
	put(p, c->payload, c->payload_len);
	return 0;
}

/* carry and history: type(1) rel(16) count(2), then the entries */
enum { LIST_HDR = 1 + RELM_ID_LEN + 2, CARRY_HDR = LIST_HDR, HISTORY_HDR = LIST_HDR };

static int list_new(uint8_t **out, size_t *outlen, uint8_t type, const uint8_t rel[RELM_ID_LEN])
{
	int rc = alloc(out, outlen, LIST_HDR);
	if (rc)
		return rc;
	(*out)[0] = type;
	memcpy(*out + 1, rel, RELM_ID_LEN);
	put16(*out + 1 + RELM_ID_LEN, 0);
	return 0;
}

int relm_sib_carry_new(uint8_t **out, size_t *outlen, const uint8_t rel[RELM_ID_LEN])
{
	return list_new(out, outlen, RELM_SIB_CARRY, rel);
}

int relm_sib_carry_append(uint8_t **buf, size_t *len, const uint8_t *payload, size_t plen)
{
	uint8_t *nb;
	uint16_t count;

	if (*len < CARRY_HDR || (*buf)[0] != RELM_SIB_CARRY || plen == 0 || plen > RELM_PAYLOAD_MAX)
		return RELM_EINVAL;
	count = (uint16_t)((*buf)[1 + RELM_ID_LEN] << 8 | (*buf)[2 + RELM_ID_LEN]);
	if (count >= RELM_MAX_ACKS || *len + 4 + plen > RELM_SIBLING_MAX)
		return RELM_ETOOBIG;
	if (!(nb = malloc(*len + 4 + plen)))
		return RELM_ENOMEM;
	memcpy(nb, *buf, *len);
	put(put32(nb + *len, (uint32_t)plen), payload, plen);
	put16(nb + 1 + RELM_ID_LEN, (uint16_t)(count + 1));
	relm_sib_buf_free(*buf, *len);
	*buf = nb;
	*len += 4 + plen;
	return 0;
}

int relm_sib_carry_next(const struct relm_sib_carry *c, size_t *it,
                        const uint8_t **p, size_t *plen)
{
	const uint8_t *q;
	uint32_t l;

	/* the framing was checked by relm_sib_decode */
	if (*it + 4 > c->list_len)
		return 0;
	q = c->list + *it;
	l = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3];
	*p = q + 4;
	*plen = l;
	*it += 4 + (size_t)l;
	return 1;
}

int relm_sib_state_req_encode(uint8_t **out, size_t *outlen, const uint8_t rel[RELM_ID_LEN])
{
	int rc = alloc(out, outlen, 1 + RELM_ID_LEN);
	if (rc)
		return rc;
	(*out)[0] = RELM_SIB_STATE_REQ;
	memcpy(*out + 1, rel, RELM_ID_LEN);
	return 0;
}

int relm_sib_state_encode(uint8_t **out, size_t *outlen, const struct relm_sib_state *s)
{
	uint8_t *p;
	size_t want;
	int rc;

	if (s->parts == 0 || s->parts > RELM_SIB_STATE_PARTS || s->part >= s->parts ||
	    s->total == 0 || s->total > (uint32_t)s->parts * RELM_SIB_STATE_CHUNK ||
	    s->total <= (uint32_t)(s->parts - 1) * RELM_SIB_STATE_CHUNK)
		return RELM_EINVAL;
	want = s->part + 1 < s->parts ? RELM_SIB_STATE_CHUNK
	                              : s->total - (size_t)s->part * RELM_SIB_STATE_CHUNK;
	if (s->chunk_len != want)
		return RELM_EINVAL;
	if ((rc = alloc(out, outlen, 1 + 16 + 16 + 2 + 2 + 4 + want)) != 0)
		return rc;
	p = *out;
	*p++ = RELM_SIB_STATE;
	p = put(p, s->rel, RELM_ID_LEN);
	p = put(p, s->xfer, RELM_ID_LEN);
	p = put16(p, s->part);
	p = put16(p, s->parts);
	p = put32(p, s->total);
	put(p, s->chunk, want);
	return 0;
}

int relm_sib_circle_encode(uint8_t **out, size_t *outlen, const uint8_t *circle, size_t len)
{
	int rc;

	if (len == 0)
		return RELM_EINVAL;
	if ((rc = alloc(out, outlen, 1 + len)) != 0)
		return rc;
	(*out)[0] = RELM_SIB_CIRCLE;
	memcpy(*out + 1, circle, len);
	return 0;
}

/* ---- the bulk state ------------------------------------------------------ */

int relm_sib_rel_encode(uint8_t **out, size_t *outlen, const struct relm_sib_rel *m)
{
	size_t ll = strnlen(m->label, sizeof m->label), al = strnlen(m->addr, sizeof m->addr);
	uint8_t *p;
	int rc;

	if (ll > 255 || al > 255 || !relm_text_ok(m->label, ll) || !relm_text_ok(m->addr, al) ||
	    is_zero(m->rel, RELM_ID_LEN))
		return RELM_EINVAL;
	if ((rc = alloc(out, outlen, 1 + 16 + 8 + 8 + 1 + ll + 1 + al)) != 0)
		return rc;
	p = *out;
	*p++ = RELM_SIB_REL;
	p = put(p, m->rel, RELM_ID_LEN);
	p = put64(p, m->created);
	p = put64(p, m->cursor);
	*p++ = (uint8_t)ll;
	p = put(p, m->label, ll);
	*p++ = (uint8_t)al;
	put(p, m->addr, al);
	return 0;
}

int relm_sib_history_new(uint8_t **out, size_t *outlen, const uint8_t rel[RELM_ID_LEN])
{
	return list_new(out, outlen, RELM_SIB_HISTORY, rel);
}

int relm_sib_history_append(uint8_t **buf, size_t *len, const struct relm_sib_hmsg *m)
{
	size_t kl = strnlen(m->kind, sizeof m->kind), add = 16 + 1 + 1 + 1 + kl + 8 + 1 + 4 + m->body_len;
	uint8_t *nb, *p;
	uint16_t count;

	if (*len < HISTORY_HDR || (*buf)[0] != RELM_SIB_HISTORY || m->direction_in > 1 ||
	    m->origin < RELM_SIB_ORIGIN_MIN || m->origin > RELM_SIB_ORIGIN_MAX ||
	    m->status > RELM_SIB_STATUS_MAX || kl == 0 || kl > RELM_SIB_KIND_MAX ||
	    !relm_text_ok(m->kind, kl) || m->body_len > RELM_PAYLOAD_MAX)
		return RELM_EINVAL;
	count = (uint16_t)((*buf)[1 + RELM_ID_LEN] << 8 | (*buf)[2 + RELM_ID_LEN]);
	if (count == UINT16_MAX || *len + add > RELM_SIBLING_MAX)
		return RELM_ETOOBIG;
	if (!(nb = malloc(*len + add)))
		return RELM_ENOMEM;
	memcpy(nb, *buf, *len);
	p = put(nb + *len, m->id, RELM_ID_LEN);
	*p++ = m->direction_in;
	*p++ = m->origin;
	*p++ = (uint8_t)kl;
	p = put(p, m->kind, kl);
	p = put64(p, m->ts);
	*p++ = m->status;
	p = put32(p, (uint32_t)m->body_len);
	if (m->body_len)
		put(p, m->body, m->body_len);
	put16(nb + 1 + RELM_ID_LEN, (uint16_t)(count + 1));
	relm_sib_buf_free(*buf, *len);
	*buf = nb;
	*len += add;
	return 0;
}

int relm_sib_history_next(const struct relm_sib_history *h, size_t *it, struct relm_sib_hmsg *m)
{
	struct rd r = { h->list, h->list_len, *it, 0 };

	if (*it >= h->list_len || read_hmsg(&r, m) != 0)
		return 0;
	*it = r.off;
	return 1;
}

int relm_sib_invites_encode(uint8_t **out, size_t *outlen, const struct relm_sib_invite *v, size_t n)
{
	uint8_t *p;
	int rc;

	if (n > RELM_SIB_INVITES_MAX)
		return RELM_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!invite_ok(&v[i]))
			return RELM_EINVAL;
	if ((rc = alloc(out, outlen, 2 + n * RELM_SIB_INVITE_LEN)) != 0)
		return rc;
	p = *out;
	*p++ = RELM_SIB_INVITES;
	*p++ = (uint8_t)n;
	for (size_t i = 0; i < n; i++) {
		p = put32(p, v[i].spk_id);
		p = put(p, v[i].spk_priv, RELM_KEY_LEN);
		p = put32(p, v[i].opk_id);
		p = put(p, v[i].opk_priv, RELM_KEY_LEN);
		*p++ = v[i].multi_use;
		p = put64(p, v[i].expires);
		p = put(p, v[i].mailbox_sk, RELM_SIGN_SK_LEN);
		p = put32(p, v[i].used);
		p = put64(p, v[i].cursor);
	}
	return 0;
}

int relm_sib_invites_next(const struct relm_sib_invites *v, size_t *it, struct relm_sib_invite *inv)
{
	struct rd r = { v->list, (size_t)v->count * RELM_SIB_INVITE_LEN, *it * RELM_SIB_INVITE_LEN, 0 };

	if (*it >= v->count)
		return 0;
	read_invite(&r, inv);
	(*it)++;
	return 1;
}

int relm_sib_synced_encode(uint8_t **out, size_t *outlen, const struct relm_sib_synced *s)
{
	int rc = alloc(out, outlen, 1 + 4 + 8);
	if (rc)
		return rc;
	(*out)[0] = RELM_SIB_SYNCED;
	put64(put32(*out + 1, s->rels), s->messages);
	return 0;
}

void relm_sib_buf_free(uint8_t *buf, size_t len)
{
	if (!buf)
		return;
	sodium_memzero(buf, len);
	free(buf);
}

/* ---- the strategies' messages (devices.md §11.1) ----------------------------
 * request, deliver and strategy share the entry fields of §12.6's history:
 * kind_len(1) kind, ts(8), u32 body_len body.  Kept in one section of their
 * own; relm_sib_decode leaves these types raw. */

/* kind: 1 … RELM_SIB_KIND_MAX printable ASCII bytes (0 allowed with empty_ok). */
static int kind_ok(const char *k, size_t n, int empty_ok)
{
	if (n == 0)
		return empty_ok;
	if (n > RELM_SIB_KIND_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (k[i] <= 0x20 || k[i] >= 0x7f)
			return 0;
	return 1;
}

/* The entry fields: kind, ts, body.  0 or an error (r->err: truncated). */
static int get_entry(struct rd *r, char kind[RELM_SIB_KIND_MAX + 1], int empty_kind_ok,
                     uint64_t *ts, const uint8_t **body, size_t *body_len)
{
	const uint8_t *q = take(r, 1);
	size_t kl = q ? *q : 0;
	const uint8_t *k;

	if (!q)
		return RELM_ETRUNCATED;
	if (kl > RELM_SIB_KIND_MAX)
		return RELM_EMALFORMED;
	if (!(k = take(r, kl)))
		return RELM_ETRUNCATED;
	memcpy(kind, k, kl);
	kind[kl] = '\0';
	if (!kind_ok(kind, kl, empty_kind_ok))
		return RELM_EMALFORMED;
	*ts = get64(r);
	*body_len = get32(r);
	if (r->err)
		return RELM_ETRUNCATED;
	if (*body_len > RELM_REQUEST_BODY_MAX)
		return RELM_EMALFORMED;
	if (!(*body = take(r, *body_len)))
		return RELM_ETRUNCATED;
	if (!relm_text_ok(*body, *body_len))
		return RELM_EMALFORMED;
	return r->off == r->len ? 0 : RELM_EMALFORMED;
}

static size_t entry_len(const char *kind, size_t body_len)
{
	return 1 + strlen(kind) + 8 + 4 + body_len;
}

static uint8_t *put_entry(uint8_t *p, const char *kind, uint64_t ts, const uint8_t *body, size_t blen)
{
	size_t kl = strlen(kind);

	*p++ = (uint8_t)kl;
	p = put(p, kind, kl);
	p = put64(p, ts);
	p = put32(p, (uint32_t)blen);
	if (blen)
		p = put(p, body, blen);
	return p;
}

static int entry_args_ok(const char *kind, int empty_kind_ok, const uint8_t *body, size_t blen)
{
	size_t kl = strnlen(kind, RELM_SIB_KIND_MAX + 1);
	return kind_ok(kind, kl, empty_kind_ok) && blen <= RELM_REQUEST_BODY_MAX &&
	       (blen == 0 || body) && relm_text_ok(body, blen);
}

/* The head of a request or deliver: the type byte, rel, id, and nfs bytes
 * into fs (request: flags; deliver: flags, status).  0 or an error. */
static int get_head(struct rd *r, int type, uint8_t rel[RELM_ID_LEN], uint8_t id[RELM_ID_LEN],
                    uint8_t *fs, size_t nfs)
{
	const uint8_t *t;

	if (r->len > RELM_SIBLING_MAX)
		return RELM_ETOOBIG;
	if (!(t = take(r, 1)))
		return RELM_ETRUNCATED;
	if (*t != type)
		return RELM_EMALFORMED;
	get(r, rel, RELM_ID_LEN);
	get(r, id, RELM_ID_LEN);
	get(r, fs, nfs);
	return r->err ? RELM_ETRUNCATED : 0;
}

int relm_sib_request_decode(struct relm_sib_request *out, const uint8_t *buf, size_t len)
{
	struct relm_sib_request q;
	struct rd r = { buf, len, 0, 0 };
	int rc;

	memset(&q, 0, sizeof q);
	if ((rc = get_head(&r, RELM_SIB_REQUEST, q.rel, q.id, &q.flags, 1)) != 0)
		return rc;
	if (q.flags & ~(unsigned)RELM_SIB_R_KNOWN)
		return RELM_EMALFORMED;
	if ((rc = get_entry(&r, q.kind, 0, &q.ts, &q.body, &q.body_len)) != 0)
		return rc;
	if (is_zero(q.rel, RELM_ID_LEN) || is_zero(q.id, RELM_ID_LEN))
		return RELM_EMALFORMED;
	*out = q;
	return 0;
}

int relm_sib_request_encode(uint8_t **out, size_t *outlen, const struct relm_sib_request *q)
{
	uint8_t *p;
	int rc;

	if (is_zero(q->rel, RELM_ID_LEN) || is_zero(q->id, RELM_ID_LEN) ||
	    (q->flags & ~(unsigned)RELM_SIB_R_KNOWN) || !entry_args_ok(q->kind, 0, q->body, q->body_len))
		return RELM_EINVAL;
	if ((rc = alloc(out, outlen, 1 + 2 * RELM_ID_LEN + 1 + entry_len(q->kind, q->body_len))) != 0)
		return rc;
	p = *out;
	*p++ = RELM_SIB_REQUEST;
	p = put(p, q->rel, RELM_ID_LEN);
	p = put(p, q->id, RELM_ID_LEN);
	*p++ = q->flags;
	put_entry(p, q->kind, q->ts, q->body, q->body_len);
	return 0;
}

/* deliver's rules beyond the framing: flags, status, and STATUS entries empty. */
static int deliver_ok(const struct relm_sib_deliver *d)
{
	int in = (d->flags & RELM_SIB_D_IN) != 0, st = (d->flags & RELM_SIB_D_STATUS) != 0;

	if ((d->flags & ~(unsigned)RELM_SIB_D_KNOWN) || d->status > 4 || in != (d->status == 0))
		return 0;
	if (st && (d->kind[0] || d->ts || d->body_len))
		return 0;
	if (!st && !d->kind[0])
		return 0;
	return !is_zero(d->rel, RELM_ID_LEN) && !is_zero(d->id, RELM_ID_LEN);
}

int relm_sib_deliver_decode(struct relm_sib_deliver *out, const uint8_t *buf, size_t len)
{
	struct relm_sib_deliver d;
	struct rd r = { buf, len, 0, 0 };
	uint8_t fs[2];
	int rc;

	memset(&d, 0, sizeof d);
	if ((rc = get_head(&r, RELM_SIB_DELIVER, d.rel, d.id, fs, 2)) != 0)
		return rc;
	d.flags = fs[0];
	d.status = fs[1];
	if ((rc = get_entry(&r, d.kind, 1, &d.ts, &d.body, &d.body_len)) != 0)
		return rc;
	if (!deliver_ok(&d))
		return RELM_EMALFORMED;
	*out = d;
	return 0;
}

int relm_sib_deliver_encode(uint8_t **out, size_t *outlen, const struct relm_sib_deliver *d)
{
	uint8_t *p;
	int rc;

	if (!entry_args_ok(d->kind, 1, d->body, d->body_len) || !deliver_ok(d))
		return RELM_EINVAL;
	if ((rc = alloc(out, outlen, 1 + 2 * RELM_ID_LEN + 2 + entry_len(d->kind, d->body_len))) != 0)
		return rc;
	p = *out;
	*p++ = RELM_SIB_DELIVER;
	p = put(p, d->rel, RELM_ID_LEN);
	p = put(p, d->id, RELM_ID_LEN);
	*p++ = d->flags;
	*p++ = d->status;
	put_entry(p, d->kind, d->ts, d->body, d->body_len);
	return 0;
}

enum { STRATEGY_LEN = 1 + 8 + 1 + 2 * RELM_ID_LEN };

/* strategy's rules: seq ≥ 1, a known strategy with its pinned device. */
static int strategy_ok(const struct relm_sib_strategy *s)
{
	if (s->seq == 0 || s->strategy > 2 || is_zero(s->by, RELM_ID_LEN))
		return 0;
	if (s->strategy == 0)
		return is_zero(s->pinned, RELM_ID_LEN);
	if (s->strategy == 2)
		return !is_zero(s->pinned, RELM_ID_LEN);
	return 1;
}

int relm_sib_strategy_decode(struct relm_sib_strategy *out, const uint8_t *buf, size_t len)
{
	struct relm_sib_strategy s;
	struct rd r = { buf, len, 0, 0 };
	const uint8_t *t;

	if (!(t = take(&r, 1)))
		return RELM_ETRUNCATED;
	if (*t != RELM_SIB_STRATEGY)
		return RELM_EMALFORMED;
	memset(&s, 0, sizeof s);
	s.seq = get64(&r);
	get(&r, &s.strategy, 1);
	get(&r, s.pinned, RELM_ID_LEN);
	get(&r, s.by, RELM_ID_LEN);
	if (r.err)
		return RELM_ETRUNCATED;
	if (r.off != len || !strategy_ok(&s))
		return RELM_EMALFORMED;
	*out = s;
	return 0;
}

int relm_sib_strategy_encode(uint8_t **out, size_t *outlen, const struct relm_sib_strategy *s)
{
	uint8_t *p;
	int rc;

	if (!strategy_ok(s))
		return RELM_EINVAL;
	if ((rc = alloc(out, outlen, STRATEGY_LEN)) != 0)
		return rc;
	p = *out;
	*p++ = RELM_SIB_STRATEGY;
	p = put64(p, s->seq);
	*p++ = s->strategy;
	p = put(p, s->pinned, RELM_ID_LEN);
	put(p, s->by, RELM_ID_LEN);
	return 0;
}

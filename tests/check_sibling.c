/*
 * check_sibling.c — the sibling message codec (wire/sibling.h) and the
 * circle (wire/circle.h), proto/devices.md §2 and §4: round trips, every
 * truncation refused, flipped bytes refused where the format can tell,
 * limits, and the circle's acceptance rule (epochs, conflicts).
 */
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <sodium.h>
#include "util_rand.h"
#include "util_engine.h"
#include "wire/sibling.h"
#include "wire/circle.h"
#include "wire/invite.h"
#include "crypto/crypto.h"
#include "error.h"

/* ---- copy ----------------------------------------------------------------- */

static void sample_copy(struct relm_sib_copy *c, int created, const uint8_t *payload, size_t plen)
{
	memset(c, 0, sizeof *c);
	tu_rand_bytes(c->rel, RELM_ID_LEN);
	c->n = (uint32_t)tu_rand64();
	if (created) {
		c->flags = RELM_SIB_F_CREATED;
		tu_rand_bytes(c->parent, RELM_ID_LEN);
		tu_rand_bytes(c->priv, RELM_KEY_LEN);
		relm_x25519_public(c->pub, c->priv);
		relm_node_id(c->node, c->parent, c->pub);
		c->pn = 7;
	} else {
		tu_rand_bytes(c->node, RELM_ID_LEN);
	}
	c->payload = payload;
	c->payload_len = plen;
}

START_TEST(test_copy_round_trip)
{
	static const uint8_t pl[] = "{\"id\":\"00112233445566778899aabbccddeeff\",\"kind\":\"text\",\"ts\":1,\"body\":\"x\"}";
	struct relm_sib_copy c;
	struct relm_sib_msg m;
	uint8_t *buf;
	size_t len;

	sample_copy(&c, _i, pl, sizeof pl - 1);
	ck_assert_int_eq(relm_sib_copy_encode(&buf, &len, &c), 0);
	ck_assert_uint_eq(len, 1 + 16 + 1 + 16 + 4 + (_i ? 84 : 0) + 4 + sizeof pl - 1);
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), 0);
	ck_assert_int_eq(m.type, RELM_SIB_COPY);
	ck_assert(memcmp(m.u.copy.rel, c.rel, 16) == 0);
	ck_assert(memcmp(m.u.copy.node, c.node, 16) == 0);
	ck_assert_uint_eq(m.u.copy.n, c.n);
	ck_assert_uint_eq(m.u.copy.flags, c.flags);
	if (_i) {
		ck_assert(memcmp(m.u.copy.priv, c.priv, 32) == 0);
		ck_assert(memcmp(m.u.copy.pub, c.pub, 32) == 0);
		ck_assert(memcmp(m.u.copy.parent, c.parent, 16) == 0);
		ck_assert_uint_eq(m.u.copy.pn, 7);
	}
	ck_assert_uint_eq(m.u.copy.payload_len, sizeof pl - 1);
	ck_assert(memcmp(m.u.copy.payload, pl, sizeof pl - 1) == 0);
	/* every truncation is refused */
	for (size_t cut = 0; cut < len; cut++)
		ck_assert_int_ne(relm_sib_decode(&m, buf, cut), 0);
	/* a trailing byte too */
	{
		uint8_t *longer = malloc(len + 1);
		memcpy(longer, buf, len);
		longer[len] = 0;
		ck_assert_int_eq(relm_sib_decode(&m, longer, len + 1), RELM_EMALFORMED);
		free(longer);
	}
	relm_sib_buf_free(buf, len);
}
END_TEST

/* Flipping any bit of the fixed part of a CREATED copy's node, parent or
 * public key breaks node = node_id(parent, pub): refused.  Unknown flags
 * are refused.  Flips elsewhere (the counter, the payload, the private
 * key) decode, with exactly that field changed; a flipped type byte is
 * another type. */
START_TEST(test_copy_bitflips)
{
	static const uint8_t pl[] = "{}";
	struct relm_sib_copy c;
	struct relm_sib_msg m;
	uint8_t *buf;
	size_t len;
	enum { NODE = 18, N = 34, PARENT = 38, PUB = 54, PRIV = 86, PN = 118, PLEN = 122 };

	sample_copy(&c, 1, pl, 2);
	ck_assert_int_eq(relm_sib_copy_encode(&buf, &len, &c), 0);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			int rc;
			buf[i] ^= (uint8_t)(1u << bit);
			rc = relm_sib_decode(&m, buf, len);
			if (i == 0)
				/* another type: refused, or not a copy any more */
				ck_assert(rc != 0 || m.type != RELM_SIB_COPY);
			else if (i == 17 || (i >= NODE && i < N) || (i >= PARENT && i < PRIV) ||
			    (i >= PLEN && i < PLEN + 4))
				ck_assert_msg(rc != 0, "flip of byte %zu bit %d accepted", i, bit);
			else if (i >= 1 && i < 17)
				/* the relationship id: any non-zero one decodes */
				ck_assert_int_eq(rc, 0);
			else
				ck_assert_msg(rc == 0, "flip of byte %zu bit %d refused", i, bit);
			buf[i] ^= (uint8_t)(1u << bit);
		}
	}
	relm_sib_buf_free(buf, len);
}
END_TEST

START_TEST(test_copy_limits)
{
	static uint8_t big[RELM_SIBLING_MAX];
	struct relm_sib_copy c;
	struct relm_sib_msg m;
	uint8_t *buf;
	size_t len;

	memset(big, 'a', sizeof big);
	sample_copy(&c, 1, big, RELM_COPY_PAYLOAD_MAX);
	ck_assert_int_eq(relm_sib_copy_encode(&buf, &len, &c), 0);
	ck_assert_uint_eq(len, RELM_SIBLING_MAX);
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), 0);
	relm_sib_buf_free(buf, len);
	sample_copy(&c, 1, big, RELM_COPY_PAYLOAD_MAX + 1);
	ck_assert_int_eq(relm_sib_copy_encode(&buf, &len, &c), RELM_ETOOBIG);
	sample_copy(&c, 0, big, 0);
	ck_assert_int_eq(relm_sib_copy_encode(&buf, &len, &c), RELM_EINVAL);
	/* a zero relationship id is not one */
	sample_copy(&c, 0, big, 2);
	memset(c.rel, 0, 16);
	ck_assert_int_eq(relm_sib_copy_encode(&buf, &len, &c), 0);
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), RELM_EMALFORMED);
	relm_sib_buf_free(buf, len);
	ck_assert_int_eq(relm_sib_decode(&m, big, RELM_SIBLING_MAX + 1), RELM_ETOOBIG);
}
END_TEST

/* ---- carry, state, state_req, unknown types -------------------------------------- */

START_TEST(test_carry)
{
	uint8_t rel[16], *buf = NULL, p1[] = "{\"a\":1}", p2[300];
	struct relm_sib_msg m;
	const uint8_t *p;
	size_t len, it = 0, plen;

	tu_rand_bytes(rel, sizeof rel);
	memset(p2, 'x', sizeof p2);
	ck_assert_int_eq(relm_sib_carry_new(&buf, &len, rel), 0);
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), 0);
	ck_assert_uint_eq(m.u.carry.count, 0);
	ck_assert_int_eq(relm_sib_carry_append(&buf, &len, p1, sizeof p1 - 1), 0);
	ck_assert_int_eq(relm_sib_carry_append(&buf, &len, p2, sizeof p2), 0);
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), 0);
	ck_assert_int_eq(m.type, RELM_SIB_CARRY);
	ck_assert_uint_eq(m.u.carry.count, 2);
	ck_assert(relm_sib_carry_next(&m.u.carry, &it, &p, &plen));
	ck_assert_uint_eq(plen, sizeof p1 - 1);
	ck_assert(memcmp(p, p1, plen) == 0);
	ck_assert(relm_sib_carry_next(&m.u.carry, &it, &p, &plen));
	ck_assert_uint_eq(plen, sizeof p2);
	ck_assert(!relm_sib_carry_next(&m.u.carry, &it, &p, &plen));
	for (size_t cut = 0; cut < len; cut++)
		ck_assert_int_ne(relm_sib_decode(&m, buf, cut), 0);
	/* a count that claims one more payload than there is */
	buf[18]++;
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), RELM_ETRUNCATED);
	buf[18]--;
	/* at most RELM_MAX_ACKS payloads */
	for (int i = 2; i < RELM_MAX_ACKS; i++)
		ck_assert_int_eq(relm_sib_carry_append(&buf, &len, p1, sizeof p1 - 1), 0);
	ck_assert_int_eq(relm_sib_carry_append(&buf, &len, p1, sizeof p1 - 1), RELM_ETOOBIG);
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), 0);
	ck_assert_uint_eq(m.u.carry.count, RELM_MAX_ACKS);
	relm_sib_buf_free(buf, len);
}
END_TEST

START_TEST(test_state_parts)
{
	static uint8_t state[2 * RELM_SIB_STATE_CHUNK + 1000];
	struct relm_sib_state s;
	struct relm_sib_msg m;
	uint8_t *buf;
	size_t len;

	tu_rand_bytes(state, sizeof state);
	memset(&s, 0, sizeof s);
	tu_rand_bytes(s.rel, 16);
	tu_rand_bytes(s.xfer, 16);
	s.parts = 3;
	s.total = sizeof state;
	for (uint16_t part = 0; part < 3; part++) {
		s.part = part;
		s.chunk = state + (size_t)part * RELM_SIB_STATE_CHUNK;
		s.chunk_len = part < 2 ? RELM_SIB_STATE_CHUNK : 1000;
		ck_assert_int_eq(relm_sib_state_encode(&buf, &len, &s), 0);
		ck_assert_int_eq(relm_sib_decode(&m, buf, len), 0);
		ck_assert_int_eq(m.type, RELM_SIB_STATE);
		ck_assert_uint_eq(m.u.state.part, part);
		ck_assert_uint_eq(m.u.state.chunk_len, s.chunk_len);
		ck_assert(memcmp(m.u.state.chunk, s.chunk, s.chunk_len) == 0);
		ck_assert_int_eq(relm_sib_decode(&m, buf, len - 1), RELM_ETRUNCATED);
		relm_sib_buf_free(buf, len);
	}
	/* wrong chunk length, part past parts, a total the parts cannot hold */
	s.part = 0;
	s.chunk_len = 10;
	ck_assert_int_eq(relm_sib_state_encode(&buf, &len, &s), RELM_EINVAL);
	s.part = 3;
	ck_assert_int_eq(relm_sib_state_encode(&buf, &len, &s), RELM_EINVAL);
	s.part = 0;
	s.parts = 1;
	s.chunk_len = RELM_SIB_STATE_CHUNK;
	ck_assert_int_eq(relm_sib_state_encode(&buf, &len, &s), RELM_EINVAL);
}
END_TEST

START_TEST(test_state_req_and_unknown)
{
	uint8_t rel[16], *buf, unknown[] = { 99, 1, 2, 3 };
	struct relm_sib_msg m;
	size_t len;

	tu_rand_bytes(rel, sizeof rel);
	ck_assert_int_eq(relm_sib_state_req_encode(&buf, &len, rel), 0);
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), 0);
	ck_assert_int_eq(m.type, RELM_SIB_STATE_REQ);
	ck_assert(memcmp(m.u.state_req.rel, rel, 16) == 0);
	ck_assert_int_eq(relm_sib_decode(&m, buf, len - 1), RELM_ETRUNCATED);
	relm_sib_buf_free(buf, len);
	/* unknown types decode, so that later versions can add them */
	ck_assert_int_eq(relm_sib_decode(&m, unknown, sizeof unknown), 0);
	ck_assert_int_eq(m.type, 99);
	ck_assert_uint_eq(m.u.raw.len, 3);
	ck_assert_int_eq(relm_sib_decode(&m, unknown, 0), RELM_ETRUNCATED);
}
END_TEST

/* ---- the strategies' messages: request, deliver, strategy (devices.md §11.1) ---------- */

/* A random relationship id and message id, neither all zero. */
static void sample_ids(uint8_t rel[RELM_ID_LEN], uint8_t id[RELM_ID_LEN])
{
	tu_rand_bytes(rel, RELM_ID_LEN);
	tu_rand_bytes(id, RELM_ID_LEN);
	rel[0] |= 1;
	id[0] |= 1;
}

static void sample_request(struct relm_sib_request *q, uint8_t *body, size_t blen)
{
	memset(q, 0, sizeof *q);
	sample_ids(q->rel, q->id);
	strcpy(q->kind, "text");
	q->ts = tu_rand64();
	for (size_t i = 0; i < blen; i++)
		body[i] = (uint8_t)('a' + tu_rand64() % 26);
	q->body = body;
	q->body_len = blen;
}

/* Every proper prefix of buf is refused as truncated, one more byte as
 * malformed; decode is the type's decoder (through a wrapper). */
static void refuse_prefixes_and_tail(int (*decode)(const uint8_t *, size_t), const uint8_t *buf, size_t len)
{
	uint8_t *longer = malloc(len + 1);

	ck_assert_ptr_nonnull(longer);
	for (size_t k = 0; k < len; k++)
		ck_assert_msg(decode(buf, k) == RELM_ETRUNCATED, "prefix %zu of %zu", k, len);
	memcpy(longer, buf, len);
	longer[len] = 0;
	ck_assert_int_eq(decode(longer, len + 1), RELM_EMALFORMED);
	free(longer);
}

static int dec_request(const uint8_t *b, size_t n)
{
	struct relm_sib_request q;
	return relm_sib_request_decode(&q, b, n);
}

static int dec_deliver(const uint8_t *b, size_t n)
{
	struct relm_sib_deliver d;
	return relm_sib_deliver_decode(&d, b, n);
}

static int dec_strategy(const uint8_t *b, size_t n)
{
	struct relm_sib_strategy s;
	return relm_sib_strategy_decode(&s, b, n);
}

START_TEST(test_request_round_trip)
{
	static uint8_t body[300];
	size_t blen = (size_t)(tu_rand64() % sizeof body);
	struct relm_sib_request q, got;
	struct relm_sib_msg m;
	uint8_t *buf;
	size_t len;

	sample_request(&q, body, _i ? blen : 0);
	q.flags = _i ? RELM_SIB_R_AGAIN : 0;
	ck_assert_int_eq(relm_sib_request_encode(&buf, &len, &q), 0);
	ck_assert_uint_eq(len, 1 + 16 + 16 + 1 + 1 + 4 + 8 + 4 + q.body_len);
	ck_assert_uint_eq(buf[0], RELM_SIB_REQUEST);
	ck_assert_int_eq(relm_sib_request_decode(&got, buf, len), 0);
	ck_assert(memcmp(got.rel, q.rel, 16) == 0);
	ck_assert(memcmp(got.id, q.id, 16) == 0);
	ck_assert_uint_eq(got.flags, q.flags);
	ck_assert_str_eq(got.kind, "text");
	ck_assert(got.ts == q.ts);
	ck_assert_uint_eq(got.body_len, q.body_len);
	ck_assert(q.body_len == 0 || memcmp(got.body, body, q.body_len) == 0);
	/* relm_sib_decode leaves it raw, as the reserved type it is */
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), 0);
	ck_assert_int_eq(m.type, RELM_SIB_REQUEST);
	ck_assert_uint_eq(m.u.raw.len, len - 1);
	refuse_prefixes_and_tail(dec_request, buf, len);
	/* another type byte is not a request */
	buf[0] = RELM_SIB_DELIVER;
	ck_assert_int_eq(relm_sib_request_decode(&got, buf, len), RELM_EMALFORMED);
	relm_sib_buf_free(buf, len);
}
END_TEST

START_TEST(test_request_refuses_bad_fields)
{
	static uint8_t body[8];
	struct relm_sib_request q, got;
	uint8_t *buf;
	size_t len;

	sample_request(&q, body, sizeof body);
	/* encoder: the decoder's rules */
	memset(q.rel, 0, 16);
	ck_assert_int_eq(relm_sib_request_encode(&buf, &len, &q), RELM_EINVAL);
	sample_request(&q, body, sizeof body);
	memset(q.id, 0, 16);
	ck_assert_int_eq(relm_sib_request_encode(&buf, &len, &q), RELM_EINVAL);
	sample_request(&q, body, sizeof body);
	q.kind[0] = '\0';
	ck_assert_int_eq(relm_sib_request_encode(&buf, &len, &q), RELM_EINVAL);
	strcpy(q.kind, "te xt");
	ck_assert_int_eq(relm_sib_request_encode(&buf, &len, &q), RELM_EINVAL);
	strcpy(q.kind, "text");
	body[3] = 0xff;                         /* not UTF-8 */
	ck_assert_int_eq(relm_sib_request_encode(&buf, &len, &q), RELM_EINVAL);
	body[3] = 0;                            /* a NUL */
	ck_assert_int_eq(relm_sib_request_encode(&buf, &len, &q), RELM_EINVAL);
	body[3] = 'x';
	q.flags = 0x02;                         /* an unknown flag */
	ck_assert_int_eq(relm_sib_request_encode(&buf, &len, &q), RELM_EINVAL);
	q.flags = 0;
	q.body_len = RELM_REQUEST_BODY_MAX + 1;
	ck_assert_int_eq(relm_sib_request_encode(&buf, &len, &q), RELM_EINVAL);
	q.body_len = sizeof body;
	/* decoder: the same fields broken in the bytes */
	ck_assert_int_eq(relm_sib_request_encode(&buf, &len, &q), 0);
	buf[33] = 0x80;                         /* an unknown flag */
	ck_assert_int_eq(relm_sib_request_decode(&got, buf, len), RELM_EMALFORMED);
	buf[33] = RELM_SIB_R_AGAIN;
	ck_assert_int_eq(relm_sib_request_decode(&got, buf, len), 0);
	buf[34] = RELM_SIB_KIND_MAX + 1;        /* kind_len over the limit */
	ck_assert_int_eq(relm_sib_request_decode(&got, buf, len), RELM_EMALFORMED);
	buf[34] = 4;
	buf[35] = 0x01;                         /* a control byte in the kind */
	ck_assert_int_eq(relm_sib_request_decode(&got, buf, len), RELM_EMALFORMED);
	buf[35] = 't';
	buf[len - 1] = 0x80;                    /* a lone continuation byte */
	ck_assert_int_eq(relm_sib_request_decode(&got, buf, len), RELM_EMALFORMED);
	buf[len - 1] = 'x';
	memset(buf + 1, 0, 16);                 /* zero rel */
	ck_assert_int_eq(relm_sib_request_decode(&got, buf, len), RELM_EMALFORMED);
	relm_sib_buf_free(buf, len);
	ck_assert_int_eq(relm_sib_request_decode(&got, (const uint8_t *)"", 0), RELM_ETRUNCATED);
}
END_TEST

START_TEST(test_deliver_round_trip)
{
	/* _i: 0 a sent message, 1 a received one, 2 a status change */
	static const uint8_t body[] = "caf\xc3\xa9 au lait";
	struct relm_sib_deliver d, got;
	uint8_t *buf;
	size_t len;

	memset(&d, 0, sizeof d);
	sample_ids(d.rel, d.id);
	if (_i == 2) {
		d.flags = RELM_SIB_D_STATUS;
		d.status = 3;
	} else {
		d.flags = _i ? RELM_SIB_D_IN : 0;
		d.status = _i ? 0 : 1;
		strcpy(d.kind, "text");
		d.ts = tu_rand64();
		d.body = body;
		d.body_len = sizeof body - 1;
	}
	ck_assert_int_eq(relm_sib_deliver_encode(&buf, &len, &d), 0);
	ck_assert_uint_eq(buf[0], RELM_SIB_DELIVER);
	ck_assert_int_eq(relm_sib_deliver_decode(&got, buf, len), 0);
	ck_assert(memcmp(got.rel, d.rel, 16) == 0 && memcmp(got.id, d.id, 16) == 0);
	ck_assert_uint_eq(got.flags, d.flags);
	ck_assert_uint_eq(got.status, d.status);
	ck_assert_str_eq(got.kind, d.kind);
	ck_assert(got.ts == d.ts);
	ck_assert_uint_eq(got.body_len, d.body_len);
	ck_assert(d.body_len == 0 || memcmp(got.body, body, d.body_len) == 0);
	refuse_prefixes_and_tail(dec_deliver, buf, len);
	relm_sib_buf_free(buf, len);
}
END_TEST

START_TEST(test_deliver_refuses_bad_fields)
{
	static const uint8_t body[] = "hi";
	struct relm_sib_deliver d, bad, got;
	uint8_t *buf;
	size_t len;

	memset(&d, 0, sizeof d);
	sample_ids(d.rel, d.id);
	d.status = 3;
	strcpy(d.kind, "text");
	d.ts = 5;
	d.body = body;
	d.body_len = 2;
	bad = d;
	bad.flags = 0x04;                       /* an unknown flag */
	ck_assert_int_eq(relm_sib_deliver_encode(&buf, &len, &bad), RELM_EINVAL);
	bad = d;
	bad.status = 5;
	ck_assert_int_eq(relm_sib_deliver_encode(&buf, &len, &bad), RELM_EINVAL);
	bad = d;
	bad.flags = RELM_SIB_D_IN;              /* received with a status */
	ck_assert_int_eq(relm_sib_deliver_encode(&buf, &len, &bad), RELM_EINVAL);
	bad = d;
	bad.status = 0;                         /* sent without one */
	ck_assert_int_eq(relm_sib_deliver_encode(&buf, &len, &bad), RELM_EINVAL);
	bad = d;
	bad.flags = RELM_SIB_D_STATUS;          /* a status change with a body */
	ck_assert_int_eq(relm_sib_deliver_encode(&buf, &len, &bad), RELM_EINVAL);
	bad = d;
	bad.kind[0] = '\0';                     /* an entry without a kind */
	ck_assert_int_eq(relm_sib_deliver_encode(&buf, &len, &bad), RELM_EINVAL);
	/* the same in the bytes: flags at 33, status at 34 */
	ck_assert_int_eq(relm_sib_deliver_encode(&buf, &len, &d), 0);
	buf[33] = 0x04;
	ck_assert_int_eq(relm_sib_deliver_decode(&got, buf, len), RELM_EMALFORMED);
	buf[33] = RELM_SIB_D_IN;
	ck_assert_int_eq(relm_sib_deliver_decode(&got, buf, len), RELM_EMALFORMED);
	buf[34] = 0;
	ck_assert_int_eq(relm_sib_deliver_decode(&got, buf, len), 0);
	ck_assert_uint_eq(got.flags, RELM_SIB_D_IN);
	buf[33] = RELM_SIB_D_STATUS;
	buf[34] = 3;
	ck_assert_int_eq(relm_sib_deliver_decode(&got, buf, len), RELM_EMALFORMED);
	relm_sib_buf_free(buf, len);
}
END_TEST

/* ---- the bulk state (devices.md §12.6) ------------------------------------ */

/* Every cut of a message short of its end is refused. */
static void all_cuts_refused(const uint8_t *buf, size_t len)
{
	struct relm_sib_msg m;
	for (size_t cut = 0; cut < len; cut++)
		ck_assert_int_ne(relm_sib_decode(&m, buf, cut), 0);
}

START_TEST(test_bulk_rel)
{
	struct relm_sib_rel r, bad;
	struct relm_sib_msg m;
	uint8_t *buf, *longer;
	size_t len;

	memset(&r, 0, sizeof r);
	tu_rand_bytes(r.rel, 16);
	r.created = 0x0102030405060708ull;
	r.cursor = tu_rand64();
	snprintf(r.label, sizeof r.label, "bob ✓");
	snprintf(r.addr, sizeof r.addr, "127.0.0.1:7427/%064d", 7);
	ck_assert_int_eq(relm_sib_rel_encode(&buf, &len, &r), 0);
	ck_assert_uint_eq(len, 1 + 16 + 8 + 8 + 1 + strlen(r.label) + 1 + strlen(r.addr));
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), 0);
	ck_assert_int_eq(m.type, RELM_SIB_REL);
	ck_assert(memcmp(m.u.rel.rel, r.rel, 16) == 0);
	ck_assert_uint_eq(m.u.rel.created, r.created);
	ck_assert_uint_eq(m.u.rel.cursor, r.cursor);
	ck_assert_str_eq(m.u.rel.label, r.label);
	ck_assert_str_eq(m.u.rel.addr, r.addr);
	all_cuts_refused(buf, len);
	/* a byte past the end; a label length past the message; bad UTF-8 */
	longer = malloc(len + 1);
	memcpy(longer, buf, len);
	longer[len] = 0;
	ck_assert_int_eq(relm_sib_decode(&m, longer, len + 1), RELM_EMALFORMED);
	free(longer);
	buf[33] = 255;
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), RELM_ETRUNCATED);
	buf[33] = (uint8_t)strlen(r.label);
	buf[34] = 0xff;
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), RELM_EMALFORMED);
	relm_sib_buf_free(buf, len);
	/* the zero id and bad text are not encoded */
	bad = r;
	memset(bad.rel, 0, 16);
	ck_assert_int_eq(relm_sib_rel_encode(&buf, &len, &bad), RELM_EINVAL);
	bad = r;
	bad.label[0] = (char)0xc3;
	bad.label[1] = 0;
	ck_assert_int_eq(relm_sib_rel_encode(&buf, &len, &bad), RELM_EINVAL);
}
END_TEST

START_TEST(test_bulk_history)
{
	static uint8_t big[RELM_SIBLING_MAX / 2];
	struct relm_sib_hmsg h[3], got;
	struct relm_sib_msg m;
	uint8_t rel[16], *buf = NULL;
	size_t len, it = 0;

	tu_rand_bytes(rel, 16);
	memset(big, 'b', sizeof big);
	memset(h, 0, sizeof h);
	for (int i = 0; i < 3; i++) {
		tu_rand_bytes(h[i].id, 16);
		h[i].direction_in = (uint8_t)(i & 1);
		h[i].origin = (uint8_t)(1 + i);
		h[i].status = (uint8_t)(i + 2);
		h[i].ts = tu_rand64();
		snprintf(h[i].kind, sizeof h[i].kind, i ? "text" : "reaction");
	}
	h[0].body = (const uint8_t *)"hello";
	h[0].body_len = 5;
	h[2].body = big;
	h[2].body_len = 1000;                /* h[1]: an empty body */
	ck_assert_int_eq(relm_sib_history_new(&buf, &len, rel), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(relm_sib_history_append(&buf, &len, &h[i]), 0);
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), 0);
	ck_assert_int_eq(m.type, RELM_SIB_HISTORY);
	ck_assert(memcmp(m.u.history.rel, rel, 16) == 0);
	ck_assert_uint_eq(m.u.history.count, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert(relm_sib_history_next(&m.u.history, &it, &got));
		ck_assert(memcmp(got.id, h[i].id, 16) == 0);
		ck_assert_uint_eq(got.direction_in, h[i].direction_in);
		ck_assert_uint_eq(got.origin, h[i].origin);
		ck_assert_uint_eq(got.status, h[i].status);
		ck_assert_uint_eq(got.ts, h[i].ts);
		ck_assert_str_eq(got.kind, h[i].kind);
		ck_assert_uint_eq(got.body_len, h[i].body_len);
		ck_assert(got.body_len == 0 || memcmp(got.body, h[i].body, got.body_len) == 0);
	}
	ck_assert(!relm_sib_history_next(&m.u.history, &it, &got));
	all_cuts_refused(buf, len);
	/* a count that claims one more message than there is */
	buf[18]++;
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), RELM_ETRUNCATED);
	buf[18]--;
	/* an origin, a status, a direction out of range */
	buf[19 + 17] = 4;
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), RELM_EMALFORMED);
	buf[19 + 17] = 1;
	buf[19 + 16] = 2;
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), RELM_EMALFORMED);
	buf[19 + 16] = 0;
	buf[19 + 19 + 8 + 8] = 5;            /* after id, dir, origin, kind_len, "reaction", ts */
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), RELM_EMALFORMED);
	buf[19 + 19 + 8 + 8] = 2;
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), 0);
	/* no message past RELM_SIBLING_MAX: the one that does not fit is refused */
	h[2].body_len = sizeof big;
	ck_assert_int_eq(relm_sib_history_append(&buf, &len, &h[2]), 0);
	ck_assert_int_eq(relm_sib_history_append(&buf, &len, &h[2]), RELM_ETOOBIG);
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), 0);
	ck_assert_uint_eq(m.u.history.count, 4);
	/* fields out of range are not encoded */
	h[0].origin = 0;
	ck_assert_int_eq(relm_sib_history_append(&buf, &len, &h[0]), RELM_EINVAL);
	h[0].origin = 1;
	h[0].kind[0] = 0;
	ck_assert_int_eq(relm_sib_history_append(&buf, &len, &h[0]), RELM_EINVAL);
	relm_sib_buf_free(buf, len);
}
END_TEST

START_TEST(test_bulk_invites)
{
	static struct relm_sib_invite v[RELM_SIB_INVITES_MAX + 1];
	struct relm_sib_invite got;
	struct relm_sib_msg m;
	uint8_t *buf;
	size_t len, it = 0;

	memset(v, 0, sizeof v);
	for (size_t i = 0; i <= RELM_SIB_INVITES_MAX; i++) {
		v[i].spk_id = (uint32_t)i + 1;
		tu_rand_bytes(v[i].spk_priv, 32);
		if (i & 1) {
			v[i].opk_id = 9;
			tu_rand_bytes(v[i].opk_priv, 32);
		}
		v[i].multi_use = (uint8_t)(i % 3 == 0);
		v[i].expires = tu_rand64();
		tu_rand_bytes(v[i].mailbox_sk, 64);
		v[i].used = (uint32_t)i;
		v[i].cursor = tu_rand64();
	}
	ck_assert_int_eq(relm_sib_invites_encode(&buf, &len, v, 3), 0);
	ck_assert_uint_eq(len, 2 + 3 * RELM_SIB_INVITE_LEN);
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), 0);
	ck_assert_int_eq(m.type, RELM_SIB_INVITES);
	ck_assert_uint_eq(m.u.invites.count, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert(relm_sib_invites_next(&m.u.invites, &it, &got));
		ck_assert(memcmp(&got, &v[i], sizeof got) == 0);
	}
	ck_assert(!relm_sib_invites_next(&m.u.invites, &it, &got));
	all_cuts_refused(buf, len);
	/* an over-long count; spk_id 0; a private one-time prekey without an id */
	buf[1] = 4;
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), RELM_ETRUNCATED);
	buf[1] = 2;
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), RELM_EMALFORMED);
	buf[1] = 3;
	memset(buf + 2, 0, 4);
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), RELM_EMALFORMED);
	relm_sib_buf_free(buf, len);
	v[0].opk_priv[5] = 1;
	ck_assert_int_eq(relm_sib_invites_encode(&buf, &len, v, 1), RELM_EINVAL);
	v[0].opk_priv[5] = 0;
	/* 255 in one message, not 256; none is a message too */
	ck_assert_int_eq(relm_sib_invites_encode(&buf, &len, v, RELM_SIB_INVITES_MAX + 1), RELM_EINVAL);
	ck_assert_int_eq(relm_sib_invites_encode(&buf, &len, v, RELM_SIB_INVITES_MAX), 0);
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), 0);
	ck_assert_uint_eq(m.u.invites.count, RELM_SIB_INVITES_MAX);
	relm_sib_buf_free(buf, len);
	ck_assert_int_eq(relm_sib_invites_encode(&buf, &len, v, 0), 0);
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), 0);
	ck_assert_uint_eq(m.u.invites.count, 0);
	relm_sib_buf_free(buf, len);
	sodium_memzero(v, sizeof v);
}
END_TEST

START_TEST(test_bulk_synced)
{
	struct relm_sib_synced s = { 0xdeadbeefu, 0x0123456789abcdefull };
	struct relm_sib_msg m;
	uint8_t *buf, longer[14];
	size_t len;

	ck_assert_int_eq(relm_sib_synced_encode(&buf, &len, &s), 0);
	ck_assert_uint_eq(len, 13);
	ck_assert_int_eq(relm_sib_decode(&m, buf, len), 0);
	ck_assert_int_eq(m.type, RELM_SIB_SYNCED);
	ck_assert_uint_eq(m.u.synced.rels, s.rels);
	ck_assert_uint_eq(m.u.synced.messages, s.messages);
	all_cuts_refused(buf, len);
	memcpy(longer, buf, len);
	longer[13] = 0;
	ck_assert_int_eq(relm_sib_decode(&m, longer, sizeof longer), RELM_EMALFORMED);
	relm_sib_buf_free(buf, len);
}
END_TEST

START_TEST(test_strategy_message)
{
	struct relm_sib_strategy s, got, bad;
	uint8_t *buf;
	size_t len;

	memset(&s, 0, sizeof s);
	s.seq = 0x0102030405060708ull;
	s.strategy = 2;
	sample_ids(s.pinned, s.by);
	ck_assert_int_eq(relm_sib_strategy_encode(&buf, &len, &s), 0);
	ck_assert_uint_eq(len, 1 + 8 + 1 + 16 + 16);
	ck_assert_uint_eq(buf[0], RELM_SIB_STRATEGY);
	ck_assert_uint_eq(buf[1], 0x01);        /* big-endian */
	ck_assert_uint_eq(buf[8], 0x08);
	ck_assert_int_eq(relm_sib_strategy_decode(&got, buf, len), 0);
	ck_assert(got.seq == s.seq && got.strategy == 2);
	ck_assert(memcmp(got.pinned, s.pinned, 16) == 0 && memcmp(got.by, s.by, 16) == 0);
	refuse_prefixes_and_tail(dec_strategy, buf, len);
	buf[9] = 3;                             /* no such strategy */
	ck_assert_int_eq(relm_sib_strategy_decode(&got, buf, len), RELM_EMALFORMED);
	buf[9] = 0;                             /* leaderless names no device */
	ck_assert_int_eq(relm_sib_strategy_decode(&got, buf, len), RELM_EMALFORMED);
	buf[9] = 1;                             /* leader: pinned or not */
	ck_assert_int_eq(relm_sib_strategy_decode(&got, buf, len), 0);
	relm_sib_buf_free(buf, len);
	bad = s;
	bad.seq = 0;
	ck_assert_int_eq(relm_sib_strategy_encode(&buf, &len, &bad), RELM_EINVAL);
	bad = s;
	memset(bad.pinned, 0, 16);              /* fanout without a hub */
	ck_assert_int_eq(relm_sib_strategy_encode(&buf, &len, &bad), RELM_EINVAL);
	bad.strategy = 1;                       /* leader by lease */
	ck_assert_int_eq(relm_sib_strategy_encode(&buf, &len, &bad), 0);
	relm_sib_buf_free(buf, len);
	bad.strategy = 0;
	ck_assert_int_eq(relm_sib_strategy_encode(&buf, &len, &bad), 0);
	relm_sib_buf_free(buf, len);
	memset(bad.by, 0, 16);
	ck_assert_int_eq(relm_sib_strategy_encode(&buf, &len, &bad), RELM_EINVAL);
}
END_TEST

/* ---- the circle -------------------------------------------------------------------- */

static uint8_t ipk_pk[32], ipk_sk[64];

static void circle_setup(void)
{
	uint8_t seed[32];
	tu_rand_bytes(seed, 32);
	relm_sign_keypair_from_seed(ipk_pk, ipk_sk, seed);
}

START_TEST(test_circle_round_trip)
{
	static struct relm_circle c, d;
	uint8_t buf[RELM_CIRCLE_MAX];
	int len;

	memset(&c, 0, sizeof c);
	memcpy(c.ipk, ipk_pk, 32);
	c.epoch = 3;
	c.count = 3;
	tu_circle_device(&c.dev[0], 0xc0, 3, "tablet");
	tu_circle_device(&c.dev[1], 0x10, 1, "phone");
	tu_circle_device(&c.dev[2], 0x80, 2, "laptop \xc3\xa9t\xc3\xa9");
	len = relm_circle_sign(buf, sizeof buf, &c, ipk_sk);
	ck_assert_int_gt(len, 0);
	ck_assert_int_eq(relm_circle_decode(&d, buf, (size_t)len), 0);
	ck_assert_uint_eq(d.count, 3);
	ck_assert_uint_eq(d.epoch, 3);
	/* sorted by device id */
	ck_assert_str_eq(d.dev[0].label, "phone");
	ck_assert_str_eq(d.dev[1].label, "laptop \xc3\xa9t\xc3\xa9");
	ck_assert_str_eq(d.dev[2].label, "tablet");
	ck_assert_int_eq(relm_circle_find(&d, c.dev[1].id), 1);
	for (int cut = 0; cut < len; cut++)
		ck_assert_int_ne(relm_circle_decode(&d, buf, (size_t)cut), 0);
	/* every flipped byte is refused (the signature covers all) */
	for (int i = 0; i < len; i++) {
		buf[i] ^= 0x40;
		ck_assert_msg(relm_circle_decode(&d, buf, (size_t)len) != 0, "flip at %d accepted", i);
		buf[i] ^= 0x40;
	}
}
END_TEST

START_TEST(test_circle_refuses_bad_fields)
{
	static struct relm_circle c;
	uint8_t buf[RELM_CIRCLE_MAX], other_pk[32], other_sk[64], seed[32];

	memset(&c, 0, sizeof c);
	memcpy(c.ipk, ipk_pk, 32);
	c.epoch = 1;
	c.count = 2;
	tu_circle_device(&c.dev[0], 1, 1, "a");
	tu_circle_device(&c.dev[1], 2, 1, "b");
	/* a duplicate id */
	memcpy(c.dev[1].id, c.dev[0].id, 16);
	ck_assert_int_eq(relm_circle_sign(buf, sizeof buf, &c, ipk_sk), RELM_EINVAL);
	c.dev[1].id[0] = 2;
	/* a label with a control character */
	strcpy(c.dev[1].label, "tab\there");
	ck_assert_int_eq(relm_circle_sign(buf, sizeof buf, &c, ipk_sk), RELM_EINVAL);
	strcpy(c.dev[1].label, "b");
	/* added after the circle's epoch */
	c.dev[1].added = 2;
	ck_assert_int_eq(relm_circle_sign(buf, sizeof buf, &c, ipk_sk), RELM_EINVAL);
	c.dev[1].added = 1;
	/* an invite that is not the device's own */
	memcpy(c.dev[1].invite.ipk, c.dev[0].dpk, 32);
	ck_assert_int_eq(relm_circle_sign(buf, sizeof buf, &c, ipk_sk), RELM_EINVAL);
	memcpy(c.dev[1].invite.ipk, c.dev[1].dpk, 32);
	/* the wrong signer */
	tu_rand_bytes(seed, 32);
	relm_sign_keypair_from_seed(other_pk, other_sk, seed);
	ck_assert_int_eq(relm_circle_sign(buf, sizeof buf, &c, other_sk), RELM_EINVAL);
	ck_assert_int_gt(relm_circle_sign(buf, sizeof buf, &c, ipk_sk), 0);
}
END_TEST

START_TEST(test_circle_acceptance)
{
	static struct relm_circle c1, c2, c2b, d1, d2, d2b;
	uint8_t b1[RELM_CIRCLE_MAX], b2[RELM_CIRCLE_MAX], b2b[RELM_CIRCLE_MAX];
	int l1, l2, l2b;

	memset(&c1, 0, sizeof c1);
	memcpy(c1.ipk, ipk_pk, 32);
	c1.epoch = 1;
	c1.count = 1;
	tu_circle_device(&c1.dev[0], 1, 1, "one");
	c2 = c1;
	c2.epoch = 2;
	c2.count = 2;
	tu_circle_device(&c2.dev[1], 2, 2, "two");
	c2b = c1;                       /* a concurrent epoch 2 with another device */
	c2b.epoch = 2;
	c2b.count = 2;
	tu_circle_device(&c2b.dev[1], 3, 2, "three");
	ck_assert_int_gt(l1 = relm_circle_sign(b1, sizeof b1, &c1, ipk_sk), 0);
	ck_assert_int_gt(l2 = relm_circle_sign(b2, sizeof b2, &c2, ipk_sk), 0);
	ck_assert_int_gt(l2b = relm_circle_sign(b2b, sizeof b2b, &c2b, ipk_sk), 0);
	ck_assert_int_eq(relm_circle_decode(&d1, b1, (size_t)l1), 0);
	ck_assert_int_eq(relm_circle_decode(&d2, b2, (size_t)l2), 0);
	ck_assert_int_eq(relm_circle_decode(&d2b, b2b, (size_t)l2b), 0);
	/* nothing held: accept; newer: accept; older or the same: not */
	ck_assert_int_eq(relm_circle_accept(NULL, NULL, 0, &d1, b1, (size_t)l1, ipk_pk), 1);
	ck_assert_int_eq(relm_circle_accept(&d1, b1, (size_t)l1, &d2, b2, (size_t)l2, ipk_pk), 1);
	ck_assert_int_eq(relm_circle_accept(&d2, b2, (size_t)l2, &d1, b1, (size_t)l1, ipk_pk), 0);
	ck_assert_int_eq(relm_circle_accept(&d2, b2, (size_t)l2, &d2, b2, (size_t)l2, ipk_pk), 0);
	/* a conflict: exactly one of the two wins, whichever is held */
	ck_assert_int_eq(relm_circle_accept(&d2, b2, (size_t)l2, &d2b, b2b, (size_t)l2b, ipk_pk) +
	                 relm_circle_accept(&d2b, b2b, (size_t)l2b, &d2, b2, (size_t)l2, ipk_pk), 1);
	/* another proton's circle */
	{
		uint8_t other[32];
		tu_rand_bytes(other, 32);
		ck_assert_int_eq(relm_circle_accept(NULL, NULL, 0, &d1, b1, (size_t)l1, other), RELM_EINVAL);
	}
}
END_TEST

static Suite *sibling_suite(void)
{
	Suite *s = suite_create("sibling");
	TCase *tc;

	tc = tcase_create("copy");
	tcase_add_loop_test(tc, test_copy_round_trip, 0, 2);
	tcase_add_test(tc, test_copy_bitflips);
	tcase_add_test(tc, test_copy_limits);
	suite_add_tcase(s, tc);

	tc = tcase_create("others");
	tcase_add_test(tc, test_carry);
	tcase_add_test(tc, test_state_parts);
	tcase_add_test(tc, test_state_req_and_unknown);
	suite_add_tcase(s, tc);

	tc = tcase_create("strategies");
	tcase_add_loop_test(tc, test_request_round_trip, 0, 2);
	tcase_add_test(tc, test_request_refuses_bad_fields);
	tcase_add_loop_test(tc, test_deliver_round_trip, 0, 3);
	tcase_add_test(tc, test_deliver_refuses_bad_fields);
	tcase_add_test(tc, test_strategy_message);
	suite_add_tcase(s, tc);

	tc = tcase_create("bulk");
	tcase_add_test(tc, test_bulk_rel);
	tcase_add_test(tc, test_bulk_history);
	tcase_add_test(tc, test_bulk_invites);
	tcase_add_test(tc, test_bulk_synced);
	suite_add_tcase(s, tc);

	tc = tcase_create("circle");
	tcase_add_checked_fixture(tc, circle_setup, NULL);
	tcase_add_test(tc, test_circle_round_trip);
	tcase_add_test(tc, test_circle_refuses_bad_fields);
	tcase_add_test(tc, test_circle_acceptance);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(sibling_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * hostile.c — check_mailbox_proto's hostile input: every truncation and
 * random garbage is an error or decodes to something that re-encodes to
 * exactly the input (the encoding is canonical), never a crash; every
 * single-bit flip of every frame is refused — by the decoder with the
 * exact error its field calls for, or by the check that comes next
 * (signature, MAC, direction) — except in the fields listed as free by
 * design, each with its reason (test_every_bitflip).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "error.h"
#include "mailbox_proto/sample.h"

START_TEST(test_every_truncation)
{
	for (uint8_t t = 1; t <= RELM_MBOX_TYPE_MAX; t++) {
		struct relm_mbox_frame f, g;
		size_t len, flen;
		uint8_t *b;

		mp_sample(&f, t, 300);
		b = mp_encode_new(&f, &len);
		for (size_t cut = 0; cut < len; cut++) {
			uint8_t *c = malloc(cut ? cut : 1);
			int rc;

			memcpy(c, b, cut);
			/* as received: the length field promises more */
			ck_seed(relm_mbox_frame_decode(&g, c, cut) != 0);
			ck_seed(relm_mbox_frame_peek(&flen, c, cut) == RELM_ETRUNCATED);
			/* relabelled: length field says cut, body is short */
			if (cut >= 6) {
				uint32_t l = (uint32_t)(cut - 4);
				c[0] = (uint8_t)(l >> 24); c[1] = (uint8_t)(l >> 16);
				c[2] = (uint8_t)(l >> 8); c[3] = (uint8_t)l;
				rc = mp_decode_canonical(c, cut);
				/* only a shorter variable tail may still be valid */
				if (rc == 0)
					ck_seed(t == RELM_MBOX_POST || t == RELM_MBOX_DELIVER ||
					        t == RELM_MBOX_ERROR || t == RELM_MBOX_SUBSCRIBE_BATCH ||
					        t == RELM_MBOX_SUBSCRIBED_BATCH);
			}
			free(c);
		}
		/* one byte too many */
		{
			uint8_t *c = malloc(len + 1);
			memcpy(c, b, len);
			c[len] = 0;
			ck_assert_int_eq(relm_mbox_frame_decode(&g, c, len + 1), RELM_EMALFORMED);
			ck_assert_int_eq(relm_mbox_frame_peek(&flen, c, len + 1), 0);
			ck_assert_uint_eq(flen, len);
			free(c);
		}
		free(b);
	}
}
END_TEST

/* Every single-bit flip of every frame, with the outcome asserted per
 * field.  A frame has no checksum (TCP carries it; TLS, where deployed,
 * protects it), so a flip is refused where the layout constrains a field,
 * and otherwise by what checks the field next:
 *   F_LEN       the length field: the frame no longer matches its length —
 *               ETOOBIG above the limit, EMALFORMED below 2 or with bytes
 *               left over, ETRUNCATED when more are promised;
 *   F_VER       no single flip turns a version this code speaks into another
 *               (1 = 01b, 2 = 10b): EVERSION;
 *   F_TYPE      unknown types: ENOTFOUND; a known type whose layout does not
 *               fit the body: EMALFORMED; a body that fits the other type is
 *               always a frame of the other direction (PING/PONG, POST/
 *               DELIVER, ...), which the receiver refuses (bad_state at the
 *               server, a protocol error at the client);
 *   F_SIZE      a length byte inside the body (lease name, error text):
 *               the body no longer adds up: EMALFORMED;
 *   F_HELLO_VER min_version 0 or above max_version: EMALFORMED, else a
 *               range the server answers with its choice (or `version`);
 *   F_FLAGS     HELLO flags: decodes, non-zero, and the server refuses
 *               unknown flags (bad_request);
 *   F_GRANTED   0/1 only: EMALFORMED above 1;
 *   F_KIND      batch kind: the entries no longer divide (EMALFORMED) —
 *               the samples use counts for which they never do;
 *   F_KX_ZERO   a MAC batch's key field must be zero: EMALFORMED;
 *   F_SIGNED    decodes, and the signature or MAC over it no longer
 *               verifies: the server refuses it (bad_signature);
 *   F_FREE      decodes to the same frame with exactly this bit changed —
 *               by design, and the test asserts the re-encoding is the
 *               flipped input: a request's tag (it only labels the answer),
 *               a POST's mailbox and envelope (anyone may post anything to
 *               any mailbox; the envelope is authenticated end to end), and
 *               every field of the server's frames (the client trusts its
 *               server as far as the transport does; envelopes are
 *               authenticated end to end, seqs are checked against the
 *               cursor). */
enum fclass {
	F_LEN = 1, F_VER, F_TYPE, F_SIZE, F_HELLO_VER, F_FLAGS, F_GRANTED, F_KIND, F_KX_ZERO,
	F_SIGNED, F_FREE,
};

/* The class of each byte of the encoded frame f (len bytes). */
static void layout(const struct relm_mbox_frame *f, size_t len, uint8_t *cls)
{
	size_t o = 6;

#define SPAN(n, c) do { memset(cls + o, (c), (n)); o += (n); } while (0)
	memset(cls, 0, len);
	memset(cls, F_LEN, 4);
	cls[4] = F_VER;
	cls[5] = F_TYPE;
	switch (f->type) {
	case RELM_MBOX_HELLO:
		SPAN(2, F_HELLO_VER);
		SPAN(4, F_FLAGS);
		break;
	case RELM_MBOX_SUBSCRIBE:
		SPAN(4, F_FREE);
		SPAN(32 + 8 + 64, F_SIGNED);
		break;
	case RELM_MBOX_LEASE:
		SPAN(4, F_FREE);
		SPAN(32, F_SIGNED);
		SPAN(1, F_SIZE);
		SPAN(f->u.lease.name_len + 16 + 16 + 4 + 64, F_SIGNED);
		break;
	case RELM_MBOX_LEASE_RESULT:
		SPAN(4, F_FREE);
		SPAN(1, F_GRANTED);
		SPAN(16 + 4, F_FREE);
		break;
	case RELM_MBOX_ERROR:
		SPAN(4 + 2 + 1, F_FREE);
		SPAN(1, F_SIZE);
		SPAN(f->u.error.text_len, F_FREE);
		break;
	case RELM_MBOX_SUBSCRIBE_BATCH:
		SPAN(4, F_FREE);
		SPAN(1, F_KIND);
		SPAN(32, f->u.sub_batch.kind == RELM_MBOX_BATCH_MAC ? F_KX_ZERO : F_SIGNED);
		SPAN(len - o, F_SIGNED);
		break;
	default:   /* POST, and every server-to-client frame */
		SPAN(len - o, F_FREE);
		break;
	}
#undef SPAN
	ck_assert_uint_eq(o, len);
}

/* 1 when the signed part of g still verifies with the sample keys. */
static int signed_ok(const struct relm_mbox_frame *g)
{
	switch (g->type) {
	case RELM_MBOX_SUBSCRIBE:
		return relm_mbox_sub_verify(g->u.subscribe.sig, mp_nonce, g->u.subscribe.mailbox,
		                            g->u.subscribe.cursor) == 0;
	case RELM_MBOX_LEASE:
		return relm_mbox_lease_verify(&g->u.lease, mp_nonce) == 0;
	case RELM_MBOX_SUBSCRIBE_BATCH:
		/* the server answers per entry: all must still pass */
		for (size_t i = 0; i < g->u.sub_batch.count; i++) {
			struct relm_mbox_batch_entry e;
			const uint8_t *rkey = NULL;

			relm_mbox_batch_entry(&g->u.sub_batch, i, &e);
			for (int k = 0; k < SAMPLE_KEYS; k++)
				if (memcmp(mp_key[k].pk, e.mailbox, 32) == 0)
					rkey = mp_key[k].rkey;
			if (g->u.sub_batch.kind == RELM_MBOX_BATCH_MAC) {
				/* an unknown mailbox has no read key: unknown_key */
				if (!rkey || relm_mbox_sub_mac_verify(e.mac, rkey, mp_nonce, e.mailbox,
				                                      e.cursor) != 0)
					return 0;
			} else if (relm_mbox_reg_verify(e.sig, mp_nonce, mp_kx_server, g->u.sub_batch.kx,
			                                e.mailbox, e.cursor, e.sealed) != 0) {
				return 0;
			}
		}
		return 1;
	default:
		ck_abort_msg("type %u has no signed part", g->type);
		return 0;
	}
}

/* Which side sends a type: 0 client, 1 server. */
static int from_server(uint8_t t)
{
	switch (t) {
	case RELM_MBOX_CHALLENGE: case RELM_MBOX_POSTED: case RELM_MBOX_SUBSCRIBED:
	case RELM_MBOX_DELIVER: case RELM_MBOX_UNSUBSCRIBED: case RELM_MBOX_LEASE_RESULT:
	case RELM_MBOX_PONG: case RELM_MBOX_ERROR: case RELM_MBOX_SUBSCRIBED_BATCH:
		return 1;
	default:
		return 0;
	}
}

/* The error a frame whose length field now reads l must get (len real bytes). */
static int len_error(uint32_t l, size_t len)
{
	if (l > RELM_MBOX_FRAME_MAX)
		return RELM_ETOOBIG;
	if (l < 2)
		return RELM_EMALFORMED;
	if ((size_t)l + 4 > len)
		return RELM_ETRUNCATED;
	return RELM_EMALFORMED;   /* bytes left after the frame */
}

static void flip_one(const struct relm_mbox_frame *f, uint8_t *b, size_t len, size_t i, int bit,
                     const uint8_t *cls, uint32_t *type_pairs)
{
	struct relm_mbox_frame g;
	int rc;

	b[i] ^= (uint8_t)(1u << bit);
	rc = relm_mbox_frame_decode(&g, b, len);
	switch (cls[i]) {
	case F_LEN:
		ck_seed(rc == len_error((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
		                        (uint32_t)b[2] << 8 | b[3], len));
		break;
	case F_VER:
		ck_seed(rc == RELM_EVERSION);
		break;
	case F_TYPE: {
		uint8_t t = b[5];
		uint8_t max = f->version == RELM_MBOX_VERSION ? RELM_MBOX_TYPE_MAX_V1 : RELM_MBOX_TYPE_MAX;

		if (t == 0 || t > max) {
			ck_seed(rc == RELM_ENOTFOUND);
		} else if (rc == 0) {
			/* the other direction: refused by whoever receives it */
			ck_seed(mp_decode_canonical(b, len) == 0);
			type_pairs[f->type] |= 1u << t;
		} else {
			ck_seed(rc == RELM_EMALFORMED);
		}
		break;
	}
	case F_SIZE:
	case F_KX_ZERO:
		ck_seed(rc == RELM_EMALFORMED);
		break;
	case F_KIND:
		ck_seed(rc == RELM_EMALFORMED);
		break;
	case F_HELLO_VER: {
		uint8_t mn = b[6], mx = b[7];

		ck_seed(rc == (mn == 0 || mn > mx ? RELM_EMALFORMED : 0));
		break;
	}
	case F_FLAGS:
		ck_seed(rc == 0 && g.u.hello.flags != 0);
		break;
	case F_GRANTED:
		ck_seed(rc == (b[i] <= 1 ? 0 : RELM_EMALFORMED));
		break;
	case F_SIGNED:
		ck_seed(rc == 0);
		ck_seed(!signed_ok(&g));
		break;
	case F_FREE:
		ck_seed(rc == 0);
		ck_seed(mp_decode_canonical(b, len) == 0);   /* exactly the flipped bytes */
		break;
	default:
		ck_abort_msg("byte %zu of type %u has no class", i, f->type);
	}
	b[i] ^= (uint8_t)(1u << bit);
}

START_TEST(test_every_bitflip)
{
	/* (type, version) pairs: every type, CHALLENGE in both layouts, both batch kinds */
	struct { uint8_t type, version; size_t varlen; } cases[RELM_MBOX_TYPE_MAX + 4];
	size_t ncases = 0;
	uint32_t type_pairs[RELM_MBOX_TYPE_MAX + 1] = { 0 }, want[RELM_MBOX_TYPE_MAX + 1] = { 0 };

	for (uint8_t t = 1; t <= RELM_MBOX_TYPE_MAX; t++) {
		cases[ncases].type = t;
		cases[ncases].version = 0;
		cases[ncases++].varlen = 40;
	}
	cases[ncases].type = RELM_MBOX_CHALLENGE;
	cases[ncases].version = RELM_MBOX_VERSION_2;
	cases[ncases++].varlen = 40;
	cases[ncases].type = RELM_MBOX_SUBSCRIBE_BATCH;   /* varlen odd: REGISTER */
	cases[ncases].version = 0;
	cases[ncases++].varlen = 41;

	for (size_t c = 0; c < ncases; c++) {
		struct relm_mbox_frame f, g;
		size_t len;
		uint8_t *b, *cls;

		mp_sample(&f, cases[c].type, cases[c].varlen);
		if (cases[c].version)
			f.version = cases[c].version;
		b = mp_encode_new(&f, &len);
		cls = malloc(len);
		ck_assert_ptr_nonnull(cls);
		layout(&f, len, cls);
		/* unflipped, the signed samples verify */
		ck_assert_int_eq(relm_mbox_frame_decode(&g, b, len), 0);
		if (f.type == RELM_MBOX_SUBSCRIBE || f.type == RELM_MBOX_LEASE ||
		    f.type == RELM_MBOX_SUBSCRIBE_BATCH)
			ck_assert(signed_ok(&g));
		for (size_t i = 0; i < len; i++)
			for (int bit = 0; bit < 8; bit++)
				flip_one(&f, b, len, i, bit, cls, type_pairs);
		free(cls);
		free(b);
	}
	/* The type flips that land on another valid frame, exactly.  Each but
	 * one turns a frame into one of the other direction, which its
	 * receiver refuses (the server answers bad_state, the client drops the
	 * connection); SUBSCRIBED -> DELIVER stays a server frame, trusted as
	 * far as the transport is, and names a "mailbox" made of the tag and
	 * the first 28 id bytes, which the client is not subscribed to and
	 * ignores. */
	want[RELM_MBOX_CHALLENGE] = 1u << RELM_MBOX_POST;          /* bit 0: 0x02 -> 0x03 */
	want[RELM_MBOX_POST] = 1u << RELM_MBOX_DELIVER;            /* bit 2: 0x03 -> 0x07 */
	want[RELM_MBOX_SUBSCRIBE] = 1u << RELM_MBOX_DELIVER;       /* bit 1: 0x05 -> 0x07 */
	want[RELM_MBOX_SUBSCRIBED] = 1u << RELM_MBOX_DELIVER;      /* bit 0: 0x06 -> 0x07 */
	want[RELM_MBOX_DELIVER] = 1u << RELM_MBOX_POST;            /* bit 2: 0x07 -> 0x03 */
	want[RELM_MBOX_UNSUBSCRIBE] = 1u << RELM_MBOX_UNSUBSCRIBED;/* same layout */
	want[RELM_MBOX_UNSUBSCRIBED] = 1u << RELM_MBOX_UNSUBSCRIBE;
	want[RELM_MBOX_PING] = 1u << RELM_MBOX_PONG;               /* same layout */
	want[RELM_MBOX_PONG] = 1u << RELM_MBOX_PING;
	want[RELM_MBOX_SUBSCRIBE_BATCH] = 1u << RELM_MBOX_DELIVER; /* bit 3: 0x0f -> 0x07 */
	for (uint8_t t = 1; t <= RELM_MBOX_TYPE_MAX; t++) {
		ck_assert_msg(type_pairs[t] == want[t], "type %u: flips to types %#x decode, want %#x",
		              t, type_pairs[t], want[t]);
		for (uint8_t u = 1; u <= RELM_MBOX_TYPE_MAX; u++)
			if (type_pairs[t] & (1u << u))
				ck_assert(from_server(u) != from_server(t) ||
				          (t == RELM_MBOX_SUBSCRIBED && u == RELM_MBOX_DELIVER));
	}
}
END_TEST

START_TEST(test_garbage)
{
	static uint8_t buf[RELM_MBOX_FRAME_TOTAL_MAX + 8];
	size_t flen;

	for (int i = 0; i < 20000; i++) {
		size_t len = (size_t)(mp_rng() % 160);
		if (i % 100 == 0)
			len = (size_t)(mp_rng() % sizeof(buf));
		mp_rng_bytes(buf, len);
		if (len >= 6 && (mp_rng() & 1)) {
			/* plausible header: right length, version 1, a known type */
			uint32_t l = (uint32_t)(len - 4);
			buf[0] = (uint8_t)(l >> 24); buf[1] = (uint8_t)(l >> 16);
			buf[2] = (uint8_t)(l >> 8); buf[3] = (uint8_t)l;
			buf[4] = 1;
			buf[5] = (uint8_t)(mp_rng() % (RELM_MBOX_TYPE_MAX + 2));
		}
		(void)mp_decode_canonical(buf, len);
		(void)relm_mbox_frame_peek(&flen, buf, len);
	}
}
END_TEST

TCase *mp_hostile_tcase(void)
{
	TCase *tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, mp_seed_setup, NULL);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_every_truncation);
	tcase_add_test(tc, test_every_bitflip);
	tcase_add_test(tc, test_garbage);
	return tc;
}

/*
 * check_mailbox_proto.c — lib/wire/mailbox_proto: every frame round-trips;
 * every truncation and random garbage is an error or decodes to something
 * that re-encodes to exactly the input (the encoding is canonical), never
 * a crash; every single-bit flip of every frame is refused — by the
 * decoder with the exact error its field calls for, or by the check that
 * comes next (signature, MAC, direction) — except in the fields listed as
 * free by design, each with its reason (test_every_bitflip); limits at
 * their edges; signature and MAC inputs.
 *
 * Randomised tests read RELM_SEED (default fixed) and print it on failure.
 *
 * This file holds the round trips and the limits; the shared PRNG and
 * sample frames, the hostile input and the signature inputs are its parts
 * in tests/mailbox_proto/ (sample.h).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "error.h"
#include "wire/mailbox_proto.h"
#include "mailbox_proto/sample.h"

/* ---- round trips ---- */

START_TEST(test_roundtrip_every_type)
{
	for (uint8_t t = 1; t <= RELM_MBOX_TYPE_MAX; t++) {
		for (size_t v = 0; v < MP_NVARLENS; v++) {
			struct relm_mbox_frame f, g;
			size_t len;
			uint8_t *b;

			mp_sample(&f, t, mp_varlens[v]);
			b = mp_encode_new(&f, &len);
			ck_assert_int_eq(relm_mbox_frame_decode(&g, b, len), 0);
			ck_assert_uint_eq(g.type, t);
			ck_assert_uint_eq(g.version, f.version);
			ck_assert_int_eq(mp_decode_canonical(b, len), 0);
			/* spot-check fields through the union */
			switch (t) {
			case RELM_MBOX_POST:
				ck_assert_uint_eq(g.u.post.env_len, mp_varlens[v]);
				ck_assert_mem_eq(g.u.post.env, mp_envbuf, mp_varlens[v]);
				ck_assert_mem_eq(g.u.post.mailbox, f.u.post.mailbox, 32);
				ck_assert_uint_eq(g.u.post.tag, f.u.post.tag);
				break;
			case RELM_MBOX_SUBSCRIBE:
				ck_assert_uint_eq(g.u.subscribe.cursor, f.u.subscribe.cursor);
				ck_assert_mem_eq(g.u.subscribe.sig, f.u.subscribe.sig, 64);
				break;
			case RELM_MBOX_DELIVER:
				ck_assert_uint_eq(g.u.deliver.seq, f.u.deliver.seq);
				ck_assert_uint_eq(g.u.deliver.env_len, mp_varlens[v]);
				break;
			case RELM_MBOX_LEASE:
				ck_assert_uint_eq(g.u.lease.name_len, f.u.lease.name_len);
				ck_assert_mem_eq(g.u.lease.name, mp_namebuf, f.u.lease.name_len);
				ck_assert_uint_eq(g.u.lease.ttl_ms, f.u.lease.ttl_ms);
				ck_assert_mem_eq(g.u.lease.expected, f.u.lease.expected, 16);
				ck_assert_mem_eq(g.u.lease.holder, f.u.lease.holder, 16);
				break;
			case RELM_MBOX_ERROR:
				ck_assert_uint_eq(g.u.error.code, f.u.error.code);
				ck_assert_uint_eq(g.u.error.text_len, f.u.error.text_len);
				break;
			case RELM_MBOX_CHALLENGE:
				ck_assert_mem_eq(g.u.challenge.nonce, f.u.challenge.nonce, 32);
				ck_assert_uint_eq(g.u.challenge.burst, f.u.challenge.burst);
				break;
			case RELM_MBOX_SUBSCRIBE_BATCH:
				ck_assert_uint_eq(g.u.sub_batch.count, f.u.sub_batch.count);
				ck_assert_uint_eq(g.u.sub_batch.kind, f.u.sub_batch.kind);
				ck_assert_mem_eq(g.u.sub_batch.kx, f.u.sub_batch.kx, 32);
				break;
			case RELM_MBOX_SUBSCRIBED_BATCH:
				ck_assert_uint_eq(g.u.subed_batch.count, f.u.subed_batch.count);
				break;
			}
			free(b);
		}
	}
}
END_TEST

START_TEST(test_known_bytes)
{
	/* HELLO 1..1: the exact bytes proto/mailbox.md shows */
	static const uint8_t hello[] = { 0, 0, 0, 8, 1, 1, 1, 1, 0, 0, 0, 0 };
	static const uint8_t ping[] = { 0, 0, 0, 6, 1, 0x0c, 0xde, 0xad, 0xbe, 0xef };
	struct relm_mbox_frame f;
	uint8_t out[32];

	ck_assert_int_eq(relm_mbox_frame_decode(&f, hello, sizeof(hello)), 0);
	ck_assert_uint_eq(f.type, RELM_MBOX_HELLO);
	ck_assert_uint_eq(f.u.hello.min_version, 1);
	ck_assert_uint_eq(f.u.hello.max_version, 1);
	ck_assert_int_eq(relm_mbox_frame_decode(&f, ping, sizeof(ping)), 0);
	ck_assert_uint_eq(f.u.ping.tag, 0xdeadbeef);
	f.type = RELM_MBOX_PONG;
	ck_assert_int_eq(relm_mbox_frame_encode(out, sizeof(out), &f), 10);
	ck_assert_uint_eq(out[5], 0x0d);
	ck_assert_mem_eq(out + 6, ping + 6, 4);
}
END_TEST

/* ---- limits ---- */

static void put_hdr(uint8_t *b, size_t total, uint8_t version, uint8_t type)
{
	uint32_t l = (uint32_t)(total - 4);
	b[0] = (uint8_t)(l >> 24); b[1] = (uint8_t)(l >> 16);
	b[2] = (uint8_t)(l >> 8); b[3] = (uint8_t)l;
	b[4] = version;
	b[5] = type;
}

START_TEST(test_limits)
{
	static uint8_t b[RELM_MBOX_FRAME_TOTAL_MAX + 64];
	struct relm_mbox_frame f, g;
	size_t flen;

	/* envelope exactly at the limit encodes and decodes */
	mp_sample(&f, RELM_MBOX_POST, RELM_MBOX_ENVELOPE_MAX);
	ck_assert_int_eq(relm_mbox_frame_encode(b, sizeof(b), &f), 6 + 36 + RELM_MBOX_ENVELOPE_MAX);
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 6 + 36 + RELM_MBOX_ENVELOPE_MAX), 0);
	/* the largest frame (DELIVER, 64 KiB) is exactly FRAME_TOTAL_MAX */
	mp_sample(&f, RELM_MBOX_DELIVER, RELM_MBOX_ENVELOPE_MAX);
	ck_assert_uint_eq(relm_mbox_frame_size(&f), RELM_MBOX_FRAME_TOTAL_MAX);
	/* one byte more cannot be encoded */
	f.u.deliver.env_len = RELM_MBOX_ENVELOPE_MAX + 1;
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 0);
	ck_assert_int_eq(relm_mbox_frame_encode(b, sizeof(b), &f), RELM_EINVAL);
	/* nor an empty envelope */
	f.u.deliver.env_len = 0;
	ck_assert_int_eq(relm_mbox_frame_encode(b, sizeof(b), &f), RELM_EINVAL);
	/* small output buffer */
	mp_sample(&f, RELM_MBOX_PING, 0);
	ck_assert_int_eq(relm_mbox_frame_encode(b, 9, &f), RELM_ETOOBIG);

	/* a well-framed POST with a 65537-byte envelope: ETOOBIG, stream intact */
	memset(b, 0, sizeof(b));
	put_hdr(b, 6 + 36 + RELM_MBOX_ENVELOPE_MAX + 1, 1, RELM_MBOX_POST);
	ck_assert_int_eq(relm_mbox_frame_peek(&flen, b, 6 + 36 + RELM_MBOX_ENVELOPE_MAX + 1), 0);
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 6 + 36 + RELM_MBOX_ENVELOPE_MAX + 1),
	                 RELM_ETOOBIG);
	/* a POST with no envelope */
	put_hdr(b, 6 + 36, 1, RELM_MBOX_POST);
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 6 + 36), RELM_EMALFORMED);
	/* declared length above FRAME_MAX: ETOOBIG from the header alone */
	put_hdr(b, RELM_MBOX_FRAME_TOTAL_MAX + 1, 1, RELM_MBOX_POST);
	ck_assert_int_eq(relm_mbox_frame_peek(&flen, b, 4), RELM_ETOOBIG);
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 4), RELM_ETOOBIG);
	b[0] = 0xff;
	ck_assert_int_eq(relm_mbox_frame_peek(&flen, b, 6), RELM_ETOOBIG);
	/* declared length below 2 */
	memset(b, 0, 8);
	b[3] = 1;
	ck_assert_int_eq(relm_mbox_frame_peek(&flen, b, 8), RELM_EMALFORMED);
	/* version and type */
	mp_sample(&f, RELM_MBOX_PING, 0);
	relm_mbox_frame_encode(b, sizeof(b), &f);
	b[4] = RELM_MBOX_VERSION_MAX + 1;
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 10), RELM_EVERSION);
	b[4] = 0;
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 10), RELM_EVERSION);
	b[4] = RELM_MBOX_VERSION_2;   /* PING is the same in version 2 */
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 10), 0);
	ck_assert_uint_eq(g.version, RELM_MBOX_VERSION_2);
	b[4] = 1;
	b[5] = 0x7f;
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 10), RELM_ENOTFOUND);
	ck_assert_uint_eq(g.type, 0x7f);
	b[5] = 0;
	ck_assert_int_eq(relm_mbox_frame_decode(&g, b, 10), RELM_ENOTFOUND);
	/* HELLO range */
	{
		uint8_t h[] = { 0, 0, 0, 8, 1, 1, 2, 1, 0, 0, 0, 0 };
		ck_assert_int_eq(relm_mbox_frame_decode(&g, h, sizeof(h)), RELM_EMALFORMED);
		h[6] = 0;
		ck_assert_int_eq(relm_mbox_frame_decode(&g, h, sizeof(h)), RELM_EMALFORMED);
	}
	/* lease name 0 and 65 */
	mp_sample(&f, RELM_MBOX_LEASE, 5);
	f.u.lease.name_len = 0;
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 0);
	f.u.lease.name_len = RELM_MBOX_LEASE_NAME_MAX + 1;
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 0);
	f.u.lease.name_len = RELM_MBOX_LEASE_NAME_MAX;
	ck_assert_uint_gt(relm_mbox_frame_size(&f), 0);
	{
		int n = relm_mbox_frame_encode(b, sizeof(b), &f);
		ck_assert_int_gt(n, 0);
		b[6 + 4 + 32] = 0;   /* name_len byte */
		ck_assert_int_eq(relm_mbox_frame_decode(&g, b, (size_t)n), RELM_EMALFORMED);
		b[6 + 4 + 32] = RELM_MBOX_LEASE_NAME_MAX + 1;
		ck_assert_int_eq(relm_mbox_frame_decode(&g, b, (size_t)n), RELM_EMALFORMED);
	}
	/* error text above 255 cannot be encoded */
	mp_sample(&f, RELM_MBOX_ERROR, 10);
	f.u.error.text_len = 256;
	ck_assert_uint_eq(relm_mbox_frame_size(&f), 0);
	/* lease result granted must be 0/1 */
	mp_sample(&f, RELM_MBOX_LEASE_RESULT, 0);
	f.u.lease_result.granted = 1;
	{
		int n = relm_mbox_frame_encode(b, sizeof(b), &f);
		b[10] = 2;
		ck_assert_int_eq(relm_mbox_frame_decode(&g, b, (size_t)n), RELM_EMALFORMED);
	}
	/* cost */
	ck_assert_uint_eq(relm_mbox_cost(10), 1);
	ck_assert_uint_eq(relm_mbox_cost(1024), 2);
	ck_assert_uint_eq(relm_mbox_cost(RELM_MBOX_FRAME_TOTAL_MAX), 1 + RELM_MBOX_FRAME_TOTAL_MAX / 1024);
}
END_TEST

START_TEST(test_errnames)
{
	ck_assert_str_eq(relm_mbox_errname(RELM_MBOX_E_BAD_SIGNATURE), "bad_signature");
	ck_assert_str_eq(relm_mbox_errname(RELM_MBOX_E_RATE_LIMITED), "rate_limited");
	ck_assert_str_eq(relm_mbox_errname(999), "unknown");
	ck_assert_int_eq(relm_mbox_err_to_relm(RELM_MBOX_E_BAD_SIGNATURE), RELM_EBADSIG);
	ck_assert_int_eq(relm_mbox_err_to_relm(999), RELM_EPROTO);
}
END_TEST

static Suite *mailbox_proto_suite(void)
{
	Suite *s = suite_create("mailbox_proto");
	TCase *tc;

	tc = tcase_create("roundtrip");
	tcase_add_checked_fixture(tc, mp_seed_setup, NULL);
	tcase_add_test(tc, test_roundtrip_every_type);
	tcase_add_test(tc, test_known_bytes);
	suite_add_tcase(s, tc);

	suite_add_tcase(s, mp_hostile_tcase());

	tc = tcase_create("limits");
	tcase_add_checked_fixture(tc, mp_seed_setup, NULL);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_errnames);
	suite_add_tcase(s, tc);

	suite_add_tcase(s, mp_signatures_tcase());
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(mailbox_proto_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * check_payload.c — the payload codec (lib/wire/payload.h): exact encodings,
 * round trips per kind, padding, each rejection rule, every truncation and
 * random garbage.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "wire/payload.h"
#include "error.h"
#include "util_rand.h"

/* Pad hand-written JSON the way relm_payload_encode does. */
static size_t pad_json(uint8_t *out, size_t cap, const char *json, size_t len)
{
	size_t padded = 0;

	ck_assert_uint_lt(len, cap);
	memcpy(out, json, len);
	ck_assert_int_eq(sodium_pad(&padded, out, len, RELM_PAD_BLOCK, cap), 0);
	return padded;
}

static int decode_json_len(struct relm_payload *p, const char *json, size_t len)
{
	static uint8_t buf[RELM_PAYLOAD_MAX + 128];
	size_t n = pad_json(buf, sizeof buf, json, len);
	struct relm_payload zero;
	int err = relm_payload_decode(p, buf, n);

	memset(&zero, 0, sizeof zero);
	if (err != 0)
		ck_assert_msg(memcmp(p, &zero, sizeof zero) == 0, "out not zeroed on error");
	return err;
}

static int decode_json(struct relm_payload *p, const char *json)
{
	return decode_json_len(p, json, strlen(json));
}

/* Unpadded JSON of an encoding, NUL-terminated, into a static buffer. */
static const char *unpadded(const uint8_t *buf, size_t len)
{
	static char out[RELM_PAYLOAD_MAX + 1];
	size_t n = 0;

	ck_assert_int_eq(sodium_unpad(&n, buf, len, RELM_PAD_BLOCK), 0);
	memcpy(out, buf, n);
	out[n] = '\0';
	return out;
}

static void set_id(uint8_t id[16])
{
	for (int i = 0; i < 16; i++)
		id[i] = (uint8_t)(0x10 * (i & 15) + i);
}

/* ---- exact encodings ------------------------------------------------------ */

START_TEST(encode_exact_text)
{
	struct relm_payload p;
	uint8_t *buf = NULL;
	size_t len = 0;

	memset(&p, 0, sizeof p);
	set_id(p.id);
	p.kind = RELM_KIND_TEXT;
	p.ts = UINT64_C(1767225600000);
	/* UTF-8 is written raw; only " \ and control bytes are escaped. */
	p.body = (char *)"h\xc3\xa9? \"q\" \\ \n\t\x01\x1f\x7f";
	p.body_len = strlen(p.body);
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), 0);
	ck_assert_str_eq(unpadded(buf, len),
	                 "{\"id\":\"00112233445566778899aabbccddeeff\",\"kind\":\"text\","
	                 "\"ts\":1767225600000,\"body\":\"h\xc3\xa9? \\\"q\\\" \\\\ \\n\\t\\u0001\\u001f\x7f\"}");
	ck_assert_uint_eq(len % RELM_PAD_BLOCK, 0);
	/* ISO/IEC 7816-4: 0x80 then zeros */
	{
		size_t j = strlen(unpadded(buf, len));
		ck_assert_uint_eq(buf[j], 0x80);
		for (size_t k = j + 1; k < len; k++)
			ck_assert_uint_eq(buf[k], 0);
	}
	relm_payload_buf_free(buf, len);
}
END_TEST

START_TEST(encode_exact_receipt_hello)
{
	struct relm_payload p;
	struct relm_ack acks[2];
	uint8_t *buf = NULL;
	size_t len = 0;

	memset(&p, 0, sizeof p);
	memset(acks, 0, sizeof acks);
	set_id(p.id);
	p.kind = RELM_KIND_RECEIPT;
	p.ts = 0;
	memset(acks[0].id, 0xab, 16);
	memset(acks[0].dh, 0x01, 32);
	acks[0].n = 0;
	memset(acks[1].id, 0xcd, 16);
	memset(acks[1].dh, 0xfe, 32);
	acks[1].n = 4294967295u;
	p.acks = acks;
	p.nacks = 2;
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), 0);
	ck_assert_str_eq(unpadded(buf, len),
	                 "{\"id\":\"00112233445566778899aabbccddeeff\",\"kind\":\"receipt\",\"ts\":0,"
	                 "\"acks\":[{\"id\":\"abababababababababababababababab\","
	                 "\"dh\":\"0101010101010101010101010101010101010101010101010101010101010101\",\"n\":0},"
	                 "{\"id\":\"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd\","
	                 "\"dh\":\"fefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefe\",\"n\":4294967295}]}");
	relm_payload_buf_free(buf, len);

	p.nacks = 0;
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), 0);
	ck_assert_str_eq(unpadded(buf, len),
	                 "{\"id\":\"00112233445566778899aabbccddeeff\",\"kind\":\"receipt\",\"ts\":0,\"acks\":[]}");
	relm_payload_buf_free(buf, len);

	memset(&p, 0, sizeof p);
	set_id(p.id);
	p.kind = RELM_KIND_HELLO;
	p.ts = UINT64_C(9007199254740992);
	p.mailbox = (char *)"example.org:7427";
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), 0);
	ck_assert_str_eq(unpadded(buf, len),
	                 "{\"id\":\"00112233445566778899aabbccddeeff\",\"kind\":\"hello\","
	                 "\"ts\":9007199254740992,\"mailbox\":\"example.org:7427\"}");
	ck_assert_uint_eq(len, 128);
	relm_payload_buf_free(buf, len);
}
END_TEST

START_TEST(padding_sizes)
{
	/* The padded size is the JSON length rounded up to the next multiple of
	 * 64 strictly above it (sodium_pad always adds at least 0x80). */
	struct relm_payload p, back;
	static char body[300];
	uint8_t *buf = NULL;
	size_t len = 0, base;

	memset(&p, 0, sizeof p);
	p.kind = RELM_KIND_TEXT;
	p.body = body;
	memset(body, 'x', sizeof body);
	/* length of {"id":"<32>","kind":"text","ts":0,"body":""} */
	base = strlen("{\"id\":\"00000000000000000000000000000000\",\"kind\":\"text\",\"ts\":0,\"body\":\"\"}");
	for (size_t n = 0; n < sizeof body; n++) {
		p.body_len = n;
		ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), 0);
		ck_assert_uint_eq(len, ((base + n) / 64 + 1) * 64);
		ck_assert_int_eq(relm_payload_decode(&back, buf, len), 0);
		ck_assert_uint_eq(back.body_len, n);
		relm_payload_clear(&back);
		relm_payload_buf_free(buf, len);
	}
}
END_TEST

/* ---- round trips ----------------------------------------------------------- */

static void rand_utf8(char *out, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t left = len - i;
		uint64_t r = tu_rand64();
		uint32_t cp;

		switch (r % 4) {
		case 0: cp = (uint32_t)(1 + (r >> 8) % 0x7f); break;
		case 1: cp = (uint32_t)(0x80 + (r >> 8) % (0x800 - 0x80)); break;
		case 2: cp = (uint32_t)(0x800 + (r >> 8) % (0x10000 - 0x800)); break;
		default: cp = (uint32_t)(0x10000 + (r >> 8) % (0x110000 - 0x10000)); break;
		}
		if (cp >= 0xd800 && cp <= 0xdfff)
			cp = 'z';
		if (cp < 0x80) {
			out[i++] = (char)cp;
		} else if (cp < 0x800 && left >= 2) {
			out[i++] = (char)(0xc0 | cp >> 6);
			out[i++] = (char)(0x80 | (cp & 0x3f));
		} else if (cp < 0x10000 && left >= 3) {
			out[i++] = (char)(0xe0 | cp >> 12);
			out[i++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			out[i++] = (char)(0x80 | (cp & 0x3f));
		} else if (cp >= 0x10000 && left >= 4) {
			out[i++] = (char)(0xf0 | cp >> 18);
			out[i++] = (char)(0x80 | ((cp >> 12) & 0x3f));
			out[i++] = (char)(0x80 | ((cp >> 6) & 0x3f));
			out[i++] = (char)(0x80 | (cp & 0x3f));
		} else {
			out[i++] = 'a';
		}
	}
}

START_TEST(round_trip_bodies)
{
	static const enum relm_kind kinds[] = { RELM_KIND_TEXT, RELM_KIND_HEAL, RELM_KIND_IDENTITY };
	static char body[2000];

	for (int i = 0; i < 300; i++) {
		struct relm_payload p, back;
		uint8_t *buf = NULL;
		size_t len = 0, n = tu_rand_below(sizeof body);

		memset(&p, 0, sizeof p);
		tu_rand_bytes(p.id, 16);
		p.kind = kinds[i % 3];
		p.ts = tu_rand64() >> 11;
		rand_utf8(body, n);
		p.body = body;
		p.body_len = n;
		ck_assert_msg(relm_payload_encode(&buf, &len, &p) == 0, "encode %d (" TU_SEED_FMT ")",
		              i, TU_SEED_ARG);
		ck_assert_msg(relm_payload_decode(&back, buf, len) == 0, "decode %d (" TU_SEED_FMT ")",
		              i, TU_SEED_ARG);
		ck_assert_mem_eq(back.id, p.id, 16);
		ck_assert_int_eq(back.kind, p.kind);
		ck_assert_str_eq(back.kind_str, relm_kind_name(p.kind));
		ck_assert_uint_eq(back.ts, p.ts);
		ck_assert_uint_eq(back.body_len, n);
		ck_assert_mem_eq(back.body, body, n);
		ck_assert_uint_eq((uint8_t)back.body[n], 0);
		ck_assert_ptr_null(back.acks);
		ck_assert_ptr_null(back.mailbox);
		ck_assert_ptr_nonnull(back.raw);
		ck_assert_str_eq(back.raw, unpadded(buf, len));
		relm_payload_clear(&back);
		relm_payload_buf_free(buf, len);
	}
}
END_TEST

/* The writer's eight-byte path: ASCII bodies of every length up to 40 with
 * one byte JSON escapes (or a multi-byte character) at every offset come
 * back byte for byte, so none was copied raw. */
START_TEST(round_trip_escapes_at_every_offset)
{
	static const char *const in[] = { "\"", "\\", "\x01", "\x1f", "\n", "\x7f", "\xc3\xa9", " " };
	char body[48];

	for (size_t n = 0; n <= 40; n++)
		for (size_t at = 0; at < n; at++)
			for (size_t k = 0; k < sizeof in / sizeof in[0]; k++) {
				struct relm_payload p = { .kind = RELM_KIND_TEXT, .ts = 1 }, back;
				size_t l = strlen(in[k]), len = 0;
				uint8_t *buf = NULL;

				if (at + l > n)
					continue;
				memset(body, 'q', sizeof body);
				memcpy(body + at, in[k], l);
				p.body = body;
				p.body_len = n;
				ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), 0);
				ck_assert_msg(relm_payload_decode(&back, buf, len) == 0, "length %zu, %zu at %zu", n, k, at);
				ck_assert_uint_eq(back.body_len, n);
				ck_assert_mem_eq(back.body, body, n);
				relm_payload_clear(&back);
				relm_payload_buf_free(buf, len);
			}
}
END_TEST

START_TEST(round_trip_receipt)
{
	struct relm_ack acks[RELM_MAX_ACKS];

	for (int i = 0; i < 50; i++) {
		struct relm_payload p, back;
		uint8_t *buf = NULL;
		size_t len = 0, n = tu_rand_below(RELM_MAX_ACKS + 1);

		memset(&p, 0, sizeof p);
		tu_rand_bytes(p.id, 16);
		p.kind = RELM_KIND_RECEIPT;
		p.ts = tu_rand64() >> 11;
		tu_rand_bytes((uint8_t *)acks, sizeof acks);
		p.acks = acks;
		p.nacks = n;
		ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), 0);
		ck_assert_int_eq(relm_payload_decode(&back, buf, len), 0);
		ck_assert_int_eq(back.kind, RELM_KIND_RECEIPT);
		ck_assert_uint_eq(back.nacks, n);
		for (size_t k = 0; k < n; k++) {
			ck_assert_mem_eq(back.acks[k].id, acks[k].id, 16);
			ck_assert_mem_eq(back.acks[k].dh, acks[k].dh, 32);
			ck_assert_uint_eq(back.acks[k].n, acks[k].n);
		}
		relm_payload_clear(&back);
		ck_assert_ptr_null(back.acks);
		relm_payload_buf_free(buf, len);
	}
	/* a full receipt still fits in a few blocks */
	{
		struct relm_payload p;
		uint8_t *buf = NULL;
		size_t len = 0;
		memset(&p, 0, sizeof p);
		p.kind = RELM_KIND_RECEIPT;
		p.acks = acks;
		p.nacks = RELM_MAX_ACKS + 1;
		ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), RELM_EINVAL);
		ck_assert_ptr_null(buf);
	}
}
END_TEST

START_TEST(round_trip_hello)
{
	struct relm_payload p, back;
	uint8_t *buf = NULL;
	size_t len = 0;
	char mb[RELM_MAILBOX_ADDR_MAX + 1];

	memset(mb, 'm', RELM_MAILBOX_ADDR_MAX);
	mb[RELM_MAILBOX_ADDR_MAX] = '\0';
	memset(&p, 0, sizeof p);
	p.kind = RELM_KIND_HELLO;
	p.mailbox = mb;
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), 0);
	ck_assert_int_eq(relm_payload_decode(&back, buf, len), 0);
	ck_assert_str_eq(back.mailbox, mb);
	relm_payload_clear(&back);
	relm_payload_buf_free(buf, len);
	/* one byte too long, or empty, or with a space */
	mb[RELM_MAILBOX_ADDR_MAX] = 'm';
	{
		char big[RELM_MAILBOX_ADDR_MAX + 2];
		memcpy(big, mb, RELM_MAILBOX_ADDR_MAX + 1);
		big[RELM_MAILBOX_ADDR_MAX + 1] = '\0';
		p.mailbox = big;
		ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), RELM_EINVAL);
	}
	p.mailbox = (char *)"";
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), RELM_EINVAL);
	p.mailbox = (char *)"a b:1";
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), RELM_EINVAL);
	p.mailbox = NULL;
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), RELM_EINVAL);
}
END_TEST

START_TEST(unknown_kind_kept)
{
	struct relm_payload p;
	const char *json = "{\"id\":\"00112233445566778899aabbccddeeff\",\"kind\":\"poll\","
	                   "\"ts\":5,\"question\":{\"q\":[1,2,3]}}";

	ck_assert_int_eq(decode_json(&p, json), 0);
	ck_assert_int_eq(p.kind, RELM_KIND_UNKNOWN);
	ck_assert_str_eq(p.kind_str, "poll");
	ck_assert_uint_eq(p.ts, 5);
	ck_assert_str_eq(p.raw, json);
	ck_assert_uint_eq(p.raw_len, strlen(json));
	ck_assert_ptr_null(p.body);
	relm_payload_clear(&p);
	/* unknown kinds cannot be encoded */
	memset(&p, 0, sizeof p);
	p.kind = RELM_KIND_UNKNOWN;
	{
		uint8_t *buf = NULL;
		size_t len = 0;
		ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), RELM_EINVAL);
	}
	/* names */
	ck_assert_str_eq(relm_kind_name(RELM_KIND_IDENTITY), "identity");
	ck_assert_int_eq(relm_kind_from_name("heal"), RELM_KIND_HEAL);
	ck_assert_int_eq(relm_kind_from_name("Text"), RELM_KIND_UNKNOWN);
	/* unknown extra fields of a known kind are ignored; whitespace and
	 * another key order are accepted on input */
	ck_assert_int_eq(decode_json(&p, "{ \"body\" : \"hi\", \"x\":[null,true], \"ts\":1e3,"
	                                 "\"kind\":\"text\",\"id\":\"00112233445566778899aabbccddeeff\" }"), 0);
	ck_assert_str_eq(p.body, "hi");
	ck_assert_uint_eq(p.ts, 1000);
	relm_payload_clear(&p);
}
END_TEST

/* ---- limits -------------------------------------------------------------- */

START_TEST(body_limits)
{
	static char body[RELM_BODY_MAX + 1];
	struct relm_payload p, back;
	uint8_t *buf = NULL;
	size_t len = 0;

	memset(body, 'a', sizeof body);
	memset(&p, 0, sizeof p);
	p.kind = RELM_KIND_TEXT;
	p.body = body;
	p.body_len = RELM_BODY_MAX;
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), 0);
	ck_assert_uint_le(len, RELM_PAYLOAD_MAX);
	ck_assert_int_eq(relm_payload_decode(&back, buf, len), 0);
	ck_assert_uint_eq(back.body_len, RELM_BODY_MAX);
	relm_payload_clear(&back);
	relm_payload_buf_free(buf, len);
	p.body_len = RELM_BODY_MAX + 1;
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), RELM_ETOOBIG);
	/* escaping can blow a legal body past the envelope */
	memset(body, 0x01, RELM_BODY_MAX);
	p.body_len = RELM_BODY_MAX;
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), RELM_ETOOBIG);
	/* a body over the limit on input (written with escapes to fit) */
	{
		static char json[RELM_PAYLOAD_MAX];
		int n = snprintf(json, sizeof json,
		                 "{\"id\":\"00112233445566778899aabbccddeeff\",\"kind\":\"text\",\"ts\":0,\"body\":\"");
		memset(json + n, 'b', RELM_BODY_MAX + 1);
		memcpy(json + n + RELM_BODY_MAX + 1, "\"}", 3);
		ck_assert_int_eq(decode_json(&back, json), RELM_EMALFORMED);
		json[n + RELM_BODY_MAX] = '"';
		json[n + RELM_BODY_MAX + 1] = '}';
		json[n + RELM_BODY_MAX + 2] = '\0';
		ck_assert_int_eq(decode_json(&back, json), 0);
		relm_payload_clear(&back);
	}
	/* encode rejections */
	p.body = (char *)"bad \xc3\x28 utf8";
	p.body_len = strlen(p.body);
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), RELM_EINVAL);
	p.body = (char *)"nul\0inside";
	p.body_len = 10;
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), RELM_EINVAL);
	p.body = NULL;
	p.body_len = 0;
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), RELM_EINVAL);
	p.body = (char *)"";
	p.ts = (UINT64_C(1) << 53) + 1;
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), RELM_EINVAL);
	p.ts = UINT64_C(1) << 53;
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), 0);
	relm_payload_buf_free(buf, len);
}
END_TEST

START_TEST(decode_size_rules)
{
	struct relm_payload p;
	uint8_t buf[256];
	size_t n;

	static const char j[] = "{\"id\":\"00112233445566778899aabbccddeeff\",\"kind\":\"x\",\"ts\":0}";
	const size_t jl = sizeof j - 1;

	n = pad_json(buf, sizeof buf, j, jl);
	ck_assert_uint_eq(n, 64);
	ck_assert_int_eq(relm_payload_decode(&p, buf, n), 0);
	relm_payload_clear(&p);
	/* not a multiple of the block, or empty */
	ck_assert_int_eq(relm_payload_decode(&p, buf, 63), RELM_EMALFORMED);
	ck_assert_int_eq(relm_payload_decode(&p, buf, 0), RELM_EMALFORMED);
	/* bad padding: no 0x80, or non-zero after it */
	buf[jl] = 0x00;
	ck_assert_int_eq(relm_payload_decode(&p, buf, 64), RELM_EMALFORMED);
	buf[jl] = 0x80;
	buf[63] = 0x01;
	ck_assert_int_eq(relm_payload_decode(&p, buf, 64), RELM_EMALFORMED);
	buf[63] = 0x00;
	ck_assert_int_eq(relm_payload_decode(&p, buf, 64), 0);
	relm_payload_clear(&p);
	/* padding only: empty JSON */
	memset(buf, 0, 64);
	buf[0] = 0x80;
	ck_assert_int_eq(relm_payload_decode(&p, buf, 64), RELM_EMALFORMED);
	/* over the payload cap */
	{
		static uint8_t big[RELM_PAYLOAD_MAX + 64];
		ck_assert_int_eq(relm_payload_decode(&p, big, (RELM_PAYLOAD_MAX / 64 + 1) * 64), RELM_ETOOBIG);
	}
}
END_TEST

/* ---- malformed JSON, table-driven ---------------------------------------- */

#define ID "\"id\":\"00112233445566778899aabbccddeeff\""
#define ACK_DH "\"dh\":\"0101010101010101010101010101010101010101010101010101010101010101\""

static const char *const bad_json[] = {
	/* not an object */
	"[]", "\"text\"", "1", "null", "{", "}", "",
	/* trailing garbage, trailing whitespace, two values */
	"{" ID ",\"kind\":\"x\",\"ts\":0}x",
	"{" ID ",\"kind\":\"x\",\"ts\":0} ",
	"{" ID ",\"kind\":\"x\",\"ts\":0}{}",
	/* id */
	"{\"kind\":\"x\",\"ts\":0}",
	"{\"id\":\"00112233445566778899AABBCCDDEEFF\",\"kind\":\"x\",\"ts\":0}",
	"{\"id\":\"00112233445566778899aabbccddeef\",\"kind\":\"x\",\"ts\":0}",
	"{\"id\":\"00112233445566778899aabbccddeeff0\",\"kind\":\"x\",\"ts\":0}",
	"{\"id\":\"0011223344556677889gaabbccddeeff\",\"kind\":\"x\",\"ts\":0}",
	"{\"id\":7,\"kind\":\"x\",\"ts\":0}",
	"{" ID "," ID ",\"kind\":\"x\",\"ts\":0}",
	/* kind */
	"{" ID ",\"ts\":0}",
	"{" ID ",\"kind\":\"\",\"ts\":0}",
	"{" ID ",\"kind\":\"abcdefghijabcdefghijabcdefghijab\",\"ts\":0}",
	"{" ID ",\"kind\":1,\"ts\":0}",
	"{" ID ",\"kind\":\"text\",\"kind\":\"x\",\"ts\":0,\"body\":\"\"}",
	/* ts */
	"{" ID ",\"kind\":\"x\"}",
	"{" ID ",\"kind\":\"x\",\"ts\":-1}",
	"{" ID ",\"kind\":\"x\",\"ts\":1.5}",
	"{" ID ",\"kind\":\"x\",\"ts\":\"5\"}",
	"{" ID ",\"kind\":\"x\",\"ts\":9007199254740994}",
	"{" ID ",\"kind\":\"x\",\"ts\":1e300}",
	"{" ID ",\"kind\":\"x\",\"ts\":true}",
	"{" ID ",\"kind\":\"x\",\"ts\":null}",
	/* body */
	"{" ID ",\"kind\":\"text\",\"ts\":0}",
	"{" ID ",\"kind\":\"heal\",\"ts\":0,\"body\":5}",
	"{" ID ",\"kind\":\"identity\",\"ts\":0,\"body\":null}",
	"{" ID ",\"kind\":\"text\",\"ts\":0,\"body\":\"a\\u0000b\"}",
	"{" ID ",\"kind\":\"text\",\"ts\":0,\"body\":\"a\\ud800b\"}",
	"{" ID ",\"kind\":\"text\",\"ts\":0,\"body\":\"a\\udc00b\"}",
	"{" ID ",\"kind\":\"text\",\"ts\":0,\"body\":\"bad\xc3\x28\"}",
	"{" ID ",\"kind\":\"text\",\"ts\":0,\"body\":\"overlong\xc0\xaf\"}",
	"{" ID ",\"kind\":\"text\",\"ts\":0,\"body\":\"surrogate\xed\xa0\x80\"}",
	"{" ID ",\"kind\":\"text\",\"ts\":0,\"body\":\"big\xf4\x90\x80\x80\"}",
	"{" ID ",\"kind\":\"text\",\"ts\":0,\"body\":\"a\",\"body\":\"b\"}",
	"{" ID ",\"kind\":\"text\",\"ts\":0,\"body\":\"unterminated}",
	"{" ID ",\"kind\":\"text\",\"ts\":0,\"body\":\"bad escape \\q\"}",
	/* acks */
	"{" ID ",\"kind\":\"receipt\",\"ts\":0}",
	"{" ID ",\"kind\":\"receipt\",\"ts\":0,\"acks\":{}}",
	"{" ID ",\"kind\":\"receipt\",\"ts\":0,\"acks\":[1]}",
	"{" ID ",\"kind\":\"receipt\",\"ts\":0,\"acks\":[{" ID "," ACK_DH "}]}",
	"{" ID ",\"kind\":\"receipt\",\"ts\":0,\"acks\":[{" ID "," ACK_DH ",\"n\":-1}]}",
	"{" ID ",\"kind\":\"receipt\",\"ts\":0,\"acks\":[{" ID "," ACK_DH ",\"n\":4294967296}]}",
	"{" ID ",\"kind\":\"receipt\",\"ts\":0,\"acks\":[{" ID "," ACK_DH ",\"n\":0.5}]}",
	"{" ID ",\"kind\":\"receipt\",\"ts\":0,\"acks\":[{" ID ",\"dh\":\"01\",\"n\":0}]}",
	"{" ID ",\"kind\":\"receipt\",\"ts\":0,\"acks\":[{\"id\":\"00\"," ACK_DH ",\"n\":0}]}",
	"{" ID ",\"kind\":\"receipt\",\"ts\":0,\"acks\":[{" ID "," ACK_DH ",\"n\":0,\"n\":1}]}",
	/* mailbox */
	"{" ID ",\"kind\":\"hello\",\"ts\":0}",
	"{" ID ",\"kind\":\"hello\",\"ts\":0,\"mailbox\":\"\"}",
	"{" ID ",\"kind\":\"hello\",\"ts\":0,\"mailbox\":\"a b:1\"}",
	"{" ID ",\"kind\":\"hello\",\"ts\":0,\"mailbox\":\"a\\tb:1\"}",
	"{" ID ",\"kind\":\"hello\",\"ts\":0,\"mailbox\":[]}",
};

START_TEST(rejects_bad_json)
{
	struct relm_payload p;

	for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++)
		ck_assert_msg(decode_json(&p, bad_json[i]) == RELM_EMALFORMED,
		              "accepted #%zu: %s", i, bad_json[i]);
}
END_TEST

START_TEST(rejects_embedded_nul_and_deep_nesting)
{
	struct relm_payload p;
	static const char j[] = "{" ID ",\"kind\":\"x\",\"ts\":0}";
	char with_nul[sizeof j + 1];
	static char deep[4200];
	size_t n = 0;

	ck_assert_int_eq(decode_json_len(&p, j, sizeof j - 1), 0);
	relm_payload_clear(&p);
	/* a NUL byte after a complete object, and inside a string */
	memcpy(with_nul, j, sizeof j);            /* includes the NUL */
	ck_assert_int_eq(decode_json_len(&p, with_nul, sizeof j), RELM_EMALFORMED);
	memcpy(with_nul, j, sizeof j);
	with_nul[3] = '\0';
	ck_assert_int_eq(decode_json_len(&p, with_nul, sizeof j - 1), RELM_EMALFORMED);
	/* nesting beyond cJSON's limit fails cleanly */
	n += (size_t)snprintf(deep, sizeof deep, "{" ID ",\"kind\":\"x\",\"ts\":0,\"d\":");
	for (int i = 0; i < 2000; i++)
		deep[n++] = '[';
	for (int i = 0; i < 2000; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	ck_assert_int_eq(decode_json_len(&p, deep, n), RELM_EMALFORMED);
	/* an escaped backslash before u0000 is not a NUL escape */
	ck_assert_int_eq(decode_json(&p, "{" ID ",\"kind\":\"text\",\"ts\":0,\"body\":\"\\\\u0000\"}"), 0);
	ck_assert_str_eq(p.body, "\\u0000");
	relm_payload_clear(&p);
	/* too many acks */
	{
		static char big[RELM_PAYLOAD_MAX];
		const char *ack = "{" ID "," ACK_DH ",\"n\":1}";
		n = (size_t)snprintf(big, sizeof big, "{" ID ",\"kind\":\"receipt\",\"ts\":0,\"acks\":[");
		for (int i = 0; i < RELM_MAX_ACKS + 1; i++)
			n += (size_t)snprintf(big + n, sizeof big - n, "%s%s", i ? "," : "", ack);
		n += (size_t)snprintf(big + n, sizeof big - n, "]}");
		ck_assert_int_eq(decode_json(&p, big), RELM_EMALFORMED);
	}
}
END_TEST

/* ---- hostile input ------------------------------------------------------- */

START_TEST(every_truncation)
{
	struct relm_payload p, back;
	struct relm_ack acks[3];
	uint8_t *buf = NULL;
	size_t len = 0;

	memset(&p, 0, sizeof p);
	tu_rand_bytes(p.id, 16);
	tu_rand_bytes((uint8_t *)acks, sizeof acks);
	p.kind = RELM_KIND_RECEIPT;
	p.acks = acks;
	p.nacks = 3;
	ck_assert_int_eq(relm_payload_encode(&buf, &len, &p), 0);
	for (size_t n = 0; n < len; n++)
		ck_assert_msg(relm_payload_decode(&back, buf, n) < 0, "prefix %zu accepted", n);
	/* and every prefix of the JSON, re-padded */
	{
		const char *json = unpadded(buf, len);
		size_t jl = strlen(json);
		for (size_t n = 0; n < jl; n++)
			ck_assert_msg(decode_json_len(&back, json, n) == RELM_EMALFORMED,
			              "JSON prefix %zu accepted (" TU_SEED_FMT ")", n, TU_SEED_ARG);
	}
	relm_payload_buf_free(buf, len);
}
END_TEST

START_TEST(random_garbage)
{
	static uint8_t g[1024 + 64];
	struct relm_payload p;
	static const char alphabet[] = "{}[]\":,0123456789.eE-+ \\u tfnrl\"idkndstbymacsh";

	for (size_t len = 0; len <= 1024; len++) {
		int err;

		/* raw bytes */
		tu_rand_bytes(g, len);
		err = relm_payload_decode(&p, g, len);
		if (err == 0)
			relm_payload_clear(&p);
		else
			ck_assert_int_lt(err, 0);
		/* JSON-ish bytes, properly padded */
		if (len < 900) {
			char j[900];
			for (size_t i = 0; i < len; i++)
				j[i] = alphabet[tu_rand_below(sizeof alphabet - 1)];
			err = decode_json_len(&p, j, len);
			ck_assert_msg(err == RELM_EMALFORMED || err == 0, "len %zu: %d (" TU_SEED_FMT ")",
			              len, err, TU_SEED_ARG);
			if (err == 0)
				relm_payload_clear(&p);
		}
	}
}
END_TEST

START_TEST(clear_is_safe)
{
	struct relm_payload p;

	relm_payload_clear(NULL);
	memset(&p, 0, sizeof p);
	relm_payload_clear(&p);
	relm_payload_buf_free(NULL, 0);
	ck_assert_int_eq(decode_json(&p, "{" ID ",\"kind\":\"text\",\"ts\":0,\"body\":\"secret\"}"), 0);
	relm_payload_clear(&p);
	ck_assert_ptr_null(p.body);
	ck_assert_ptr_null(p.raw);
	ck_assert_uint_eq(p.body_len, 0);
	ck_assert_uint_eq(p.ts, 0);
}
END_TEST

static Suite *payload_suite(void)
{
	Suite *s = suite_create("payload");
	TCase *tc;

	tc = tcase_create("encoding");
	tcase_add_test(tc, encode_exact_text);
	tcase_add_test(tc, encode_exact_receipt_hello);
	tcase_add_test(tc, padding_sizes);
	suite_add_tcase(s, tc);

	tc = tcase_create("round_trip");
	tcase_add_test(tc, round_trip_bodies);
	tcase_add_test(tc, round_trip_escapes_at_every_offset);
	tcase_add_test(tc, round_trip_receipt);
	tcase_add_test(tc, round_trip_hello);
	tcase_add_test(tc, unknown_kind_kept);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_test(tc, body_limits);
	tcase_add_test(tc, decode_size_rules);
	suite_add_tcase(s, tc);

	tc = tcase_create("validation");
	tcase_add_test(tc, rejects_bad_json);
	tcase_add_test(tc, rejects_embedded_nul_and_deep_nesting);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_test(tc, every_truncation);
	tcase_add_test(tc, random_garbage);
	tcase_add_test(tc, clear_is_safe);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_seed_from_env();
	sr = srunner_create(payload_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

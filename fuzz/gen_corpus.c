/*
 * gen_corpus.c — writes the seed corpora under fuzz/corpus/<name>/: a few
 * valid encodings per decoder, from fixed keys, so every run of this
 * program writes the same files.
 *
 *   cc -Ilib fuzz/gen_corpus.c $(find lib -name '*.c') $(pkg-config --cflags --libs libsodium libcjson sqlite3) \
 *      -o /tmp/gen_corpus && /tmp/gen_corpus fuzz/corpus
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>
#include "wire/addr.h"
#include "crypto/crypto.h"
#include "wire/envelope.h"
#include "wire/invite.h"
#include "wire/payload.h"
#include "wire/sibling.h"

static const char *root;

static void put(const char *dir, const char *name, const void *buf, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", root, dir);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/%s/%s", root, dir, name);
	if ((f = fopen(path, "wb")) == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static void fill(uint8_t *b, size_t n, uint8_t start)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(start + 7 * i);
}

static void invites(void)
{
	struct relm_invite inv;
	uint8_t seed[32], sk[64], priv[32];
	char text[RELM_INVITE_TEXT_MAX], name[16];
	int n;

	for (int v = 0; v < 3; v++) {
		memset(&inv, 0, sizeof inv);
		inv.version = 1;
		inv.flags = (uint8_t)v;      /* none, opk, multi */
		fill(seed, 32, (uint8_t)v);
		relm_sign_keypair_from_seed(inv.ipk, sk, seed);
		inv.spk_id = 1;
		fill(priv, 32, 0x20);
		relm_x25519_public(inv.spk, priv);
		inv.opk_id = 2;
		fill(priv, 32, 0x40);
		relm_x25519_public(inv.opk, priv);
		inv.expires_ms = UINT64_C(1767225600000);
		strcpy(inv.mailbox, v == 2 ? "[::1]:7427" : "127.0.0.1:7427/F0VTtFbd38aQjsqxwQH-arIeK6oGF3lbfUOmNIKZP9U");
		if (relm_invite_sign(&inv, sk) != 0 || (n = relm_invite_encode(text, sizeof text, &inv)) < 0)
			exit(1);
		snprintf(name, sizeof name, "valid%d", v);
		put("invite", name, text, (size_t)n);
	}
}

static void envelopes(void)
{
	struct relm_header h;
	struct relm_initial_ext ext;
	uint8_t buf[RELM_HEADER_LEN + RELM_INITIAL_EXT_LEN + 3 * 64 + 16], seed[32], sk[64], priv[32];
	size_t n;

	memset(&h, 0, sizeof h);
	memset(&ext, 0, sizeof ext);
	h.version = 1;
	fill(priv, 32, 1);
	relm_x25519_public(h.dh_pub, priv);
	h.pn = 3;
	h.n = 17;
	fill(h.nonce, 24, 9);
	n = relm_header_encode(buf, &h, NULL);
	fill(buf + n, 64 + 16, 0x33);
	put("envelope", "plain", buf, n + 64 + 16);

	h.flags = RELM_ENV_F_INITIAL;
	fill(seed, 32, 5);
	relm_sign_keypair_from_seed(ext.ipk, sk, seed);
	fill(priv, 32, 6);
	relm_x25519_public(ext.ek, priv);
	ext.spk_id = 1;
	ext.opk_id = 2;
	n = relm_header_encode(buf, &h, &ext);
	fill(buf + n, 3 * 64 + 16, 0x44);
	put("envelope", "initial", buf, n + 3 * 64 + 16);
}

static void payloads(void)
{
	struct relm_payload p;
	struct relm_ack acks[2];
	uint8_t *buf;
	size_t len;

	memset(&p, 0, sizeof p);
	fill(p.id, 16, 1);
	p.ts = UINT64_C(1767225600000);
	p.kind = RELM_KIND_TEXT;
	p.body = (char *)"hello, \"world\" \xc3\xa9\n";
	p.body_len = strlen(p.body);
	if (relm_payload_encode(&buf, &len, &p) != 0)
		exit(1);
	put("payload", "text", buf, len);
	relm_payload_buf_free(buf, len);

	memset(acks, 0, sizeof acks);
	fill(acks[0].id, 16, 2);
	fill(acks[0].dh, 32, 3);
	acks[0].n = 5;
	fill(acks[1].id, 16, 4);
	fill(acks[1].dh, 32, 5);
	acks[1].n = 4294967295u;
	p.kind = RELM_KIND_RECEIPT;
	p.acks = acks;
	p.nacks = 2;
	if (relm_payload_encode(&buf, &len, &p) != 0)
		exit(1);
	put("payload", "receipt", buf, len);
	relm_payload_buf_free(buf, len);

	p.kind = RELM_KIND_HELLO;
	p.mailbox = (char *)"example.org:7427";
	if (relm_payload_encode(&buf, &len, &p) != 0)
		exit(1);
	put("payload", "hello", buf, len);
	relm_payload_buf_free(buf, len);

	{
		static const char unk[] = "{\"id\":\"00112233445566778899aabbccddeeff\",\"kind\":\"poll\","
		                          "\"ts\":1,\"q\":[1,\"a\",{\"b\":null}]}";
		uint8_t pad[128];
		size_t padded = 0;
		memcpy(pad, unk, sizeof unk - 1);
		if (sodium_pad(&padded, pad, sizeof unk - 1, RELM_PAD_BLOCK, sizeof pad) != 0)
			exit(1);
		put("payload", "unknown", pad, padded);
	}
}

static void addrs(void)
{
	static const char *const a[] = {
		"127.0.0.1:7427", "[2001:db8::1]:443/F0VTtFbd38aQjsqxwQH-arIeK6oGF3lbfUOmNIKZP9U",
		"mail.example.org:65535/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	};
	char name[16];

	for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) {
		snprintf(name, sizeof name, "valid%zu", i);
		put("addr", name, a[i], strlen(a[i]));
	}
}

/* The bulk state's messages (devices.md §12.6), one of each. */
static void bulk(const uint8_t rel[16])
{
	struct relm_sib_rel r;
	struct relm_sib_hmsg h;
	struct relm_sib_invite v;
	struct relm_sib_synced sy = { 2, 7 };
	uint8_t *buf;
	size_t len;

	memset(&r, 0, sizeof r);
	memcpy(r.rel, rel, 16);
	r.created = 1700000000000ull;
	r.cursor = 5;
	snprintf(r.label, sizeof r.label, "bob");
	snprintf(r.addr, sizeof r.addr, "127.0.0.1:7427/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	if (relm_sib_rel_encode(&buf, &len, &r) == 0) {
		put("sibling", "rel", buf, len);
		relm_sib_buf_free(buf, len);
	}
	memset(&h, 0, sizeof h);
	fill(h.id, 16, 4);
	h.origin = 1;
	h.status = 3;
	h.ts = 1700000000000ull;
	snprintf(h.kind, sizeof h.kind, "text");
	h.body = (const uint8_t *)"hi";
	h.body_len = 2;
	if (relm_sib_history_new(&buf, &len, rel) == 0 && relm_sib_history_append(&buf, &len, &h) == 0) {
		put("sibling", "history", buf, len);
		relm_sib_buf_free(buf, len);
	}
	memset(&v, 0, sizeof v);
	v.spk_id = 9;
	fill(v.spk_priv, 32, 5);
	fill(v.mailbox_sk, 64, 6);
	v.expires = 1800000000000ull;
	if (relm_sib_invites_encode(&buf, &len, &v, 1) == 0) {
		put("sibling", "invites", buf, len);
		relm_sib_buf_free(buf, len);
	}
	if (relm_sib_synced_encode(&buf, &len, &sy) == 0) {
		put("sibling", "synced", buf, len);
		relm_sib_buf_free(buf, len);
	}
}

static void siblings(void)
{
	static const char pl[] = "{\"id\":\"00112233445566778899aabbccddeeff\",\"kind\":\"text\",\"ts\":1,\"body\":\"hi\"}";
	struct relm_sib_copy c;
	uint8_t *buf;
	size_t len;

	memset(&c, 0, sizeof c);
	fill(c.rel, 16, 1);
	fill(c.parent, 16, 2);
	fill(c.priv, 32, 3);
	relm_x25519_public(c.pub, c.priv);
	relm_node_id(c.node, c.parent, c.pub);
	c.flags = RELM_SIB_F_CREATED;
	c.n = 3;
	c.payload = (const uint8_t *)pl;
	c.payload_len = sizeof pl - 1;
	if (relm_sib_copy_encode(&buf, &len, &c) == 0) {
		put("sibling", "copy_created", buf, len);
		relm_sib_buf_free(buf, len);
	}
	if (relm_sib_carry_new(&buf, &len, c.rel) == 0 &&
	    relm_sib_carry_append(&buf, &len, (const uint8_t *)pl, sizeof pl - 1) == 0) {
		put("sibling", "carry", buf, len);
		relm_sib_buf_free(buf, len);
	}
	if (relm_sib_state_req_encode(&buf, &len, c.rel) == 0) {
		put("sibling", "state_req", buf, len);
		relm_sib_buf_free(buf, len);
	}
	bulk(c.rel);
}

int main(int argc, char **argv)
{
	if (argc != 2 || relm_crypto_init() != 0) {
		fprintf(stderr, "usage: gen_corpus DIR\n");
		return 2;
	}
	root = argv[1];
	mkdir(root, 0755);
	invites();
	envelopes();
	payloads();
	addrs();
	siblings();
	return 0;
}

/*
 * ct_check.c — `make ct`: do MAC comparison, key decoding and the chain
 * step branch on secrets?  ctgrind-style, with valgrind memcheck: secret
 * bytes are marked undefined (VALGRIND_MAKE_MEM_UNDEFINED), the code runs,
 * and memcheck reports every conditional jump ("Conditional jump or move
 * depends on uninitialised value(s)") and every memory address ("Use of
 * uninitialised value of size N": a secret-indexed table lookup) computed
 * from them.  Arithmetic on secrets is silent; only control flow and
 * addressing are reported — exactly the timing channels we care about.
 *
 * Run: valgrind -q --error-exitcode=1 --suppressions=tests/ct.supp
 * build/ct_check (make ct).  Not under valgrind the marks are no-ops and
 * nothing is checked: the program says so and fails, so it is never
 * mistaken for a pass.  It prints, per check, whether memcheck reported
 * anything while that check ran; any report fails.  `--selftest` runs only
 * a canary that does branch on secrets (a chain key of a marked state, and
 * libsodium's branching sodium_hex2bin on a secret key) and passes only if
 * memcheck catches it: proof that the marks reach the code.
 *
 * A result the protocol legitimately branches on is declassified
 * (VALGRIND_MAKE_MEM_DEFINED) first: whether an AEAD open succeeded,
 * whether a decode was well-formed.  Inside lib/ the places that branch on
 * such a public value derived from secret inputs say so with RELM_CT_PUBLIC
 * (lib/crypto/ct.h; a no-op unless built with -DRELM_CT_VALGRIND, as this program
 * is): relm_aead_open (tag verified or not; and the plaintext it returns —
 * message content, not key material, which the payload parser must branch
 * on) and relm_dh (all-zero output, i.e. a small-order public key).
 *
 * Checked, with these inputs secret:
 *   aead    relm_aead_open on a tampered and on an intact ciphertext (key
 *           and tag secret; a tampered tag, too); relm_aead_seal (key and
 *           plaintext) — the Poly1305 tag comparison lives here.
 *   memcmp  sodium_memcmp on two secret 32-byte strings, equal and unequal.
 *   hex     relm_unhex on a secret hex key, valid (lower and upper case) and
 *           invalid; relm_hex (encoding) of a secret key.
 *   kdf     relm_kdf_ck (ck), relm_kdf_rk (rk, dh), relm_hkdf (salt, ikm;
 *           1, 32, 64 and 100 output bytes).
 *   dh      relm_dh with a secret private key (public key public),
 *           relm_x25519_public, relm_ed25519_sk_to_x25519,
 *           relm_sign_keypair_from_seed and relm_invite_sign (Ed25519
 *           signing, and its sodium_memcmp) with a secret seed.
 *   blob    relm_rel_decode of a relationship blob whose secret fields
 *           (mailbox secret key, every node's priv/rk/ck, every skipped
 *           message key) are secret: the state loader copies secrets and
 *           never looks at them; then relm_rel_encode of that state.
 *   ratchet a full engine step: alice's state (every key in it) is secret,
 *           relm_rel_send then bob's relm_rel_receive with bob's state
 *           secret — chain step, message key, DH step and AEAD together.
 *
 * Not checked, and why:
 *   - base64url decoding (lib/wire/addr.c, lib/wire/invite.c: an alphabet check, then
 *     sodium_base642bin) branches on every character (both ours and
 *     libsodium's loop) — and may: it only ever decodes public data
 *     (mailbox ids are Ed25519 public keys, invites carry public keys).  No
 *     secret is decoded from base64 today, and none from hex either (hex
 *     carries ids and public DH keys); relm_unhex is nevertheless constant
 *     time so the pairing secret and any future key in hex can use it.  A
 *     secret in base64 would need a constant-time decoder first.
 *   - X3DH set-up as a whole (relm_rel_accept / relm_rel_open_initial): it
 *     runs in the clear here; its pieces (relm_dh, relm_hkdf, Ed25519
 *     signing, the Ed25519 → X25519 conversion) are checked above.
 *   - The SQLite store: secrets are blob columns copied with memcpy (see
 *     blob above for the parsing); SQLite itself is not secret-aware.
 *   - libsodium internals beyond what the calls above run; its own branch
 *     on the Poly1305 verdict (crypto_aead_chacha20poly1305_ietf_decrypt_
 *     detached: "if (ret != 0)", after the constant-time crypto_verify_16)
 *     is the one report suppressed, in tests/ct.supp: that verdict is public.
 *   - Timing from the cache or the CPU (variable-latency instructions):
 *     memcheck sees control flow and addresses only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <valgrind/memcheck.h>
#include <check.h>

#include "crypto/crypto.h"
#include "engine/env.h"
#include "error.h"
#include "wire/invite.h"
#include "engine/rel.h"
#include "util_engine.h"

#define SECRET(p, n) VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
#define PUBLIC(p, n) VALGRIND_MAKE_MEM_DEFINED((p), (n))

static unsigned failed;

/* Errors memcheck has reported so far (not counting suppressed ones). */
static unsigned long errors_now(void)
{
	return (unsigned long)VALGRIND_COUNT_ERRORS;
}

static void report(const char *name, unsigned long before)
{
	unsigned long n = errors_now() - before;
	printf("ct: %-8s %s", name, n ? "reported" : "ok");
	if (n)
		printf(" (%lu reports above)", n);
	printf("\n");
	fflush(stdout);
	if (n)
		failed++;
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + 31 * i + (i >> 3));
}

/* ---- aead: the MAC comparison ---- */

static void check_aead(void)
{
	uint8_t key[RELM_KEY_LEN], nonce[RELM_NONCE_LEN], ad[40];
	uint8_t pt[100], ct[100 + RELM_TAG_LEN], out[100];
	int r;

	fill(key, sizeof key, 1);
	fill(nonce, sizeof nonce, 2);
	fill(ad, sizeof ad, 3);
	fill(pt, sizeof pt, 4);

	SECRET(key, sizeof key);
	SECRET(pt, sizeof pt);
	relm_aead_seal(ct, pt, sizeof pt, ad, sizeof ad, nonce, key);
	/* the ciphertext body goes on the wire; the tag is the secret we test */
	PUBLIC(ct, sizeof pt);
	SECRET(ct + sizeof pt, RELM_TAG_LEN);

	/* intact: opens; the verdict is public, the plaintext is not */
	r = relm_aead_open(out, ct, sizeof ct, ad, sizeof ad, nonce, key);
	PUBLIC(&r, sizeof r);
	if (r != 0) {
		printf("ct: aead: intact ciphertext did not open\n");
		failed++;
	}
	/* tampered body */
	ct[7] ^= 0x20;
	r = relm_aead_open(out, ct, sizeof ct, ad, sizeof ad, nonce, key);
	PUBLIC(&r, sizeof r);
	if (r != RELM_EAUTH) {
		printf("ct: aead: tampered ciphertext opened\n");
		failed++;
	}
	ct[7] ^= 0x20;
	/* tampered tag (still secret): the comparison must not exit early */
	ct[sizeof pt + 15] ^= 0x01;
	r = relm_aead_open(out, ct, sizeof ct, ad, sizeof ad, nonce, key);
	PUBLIC(&r, sizeof r);
	if (r != RELM_EAUTH) {
		printf("ct: aead: tampered tag opened\n");
		failed++;
	}
	sodium_memzero(key, sizeof key);
	sodium_memzero(out, sizeof out);
}

/* ---- memcmp: sodium_memcmp as our code uses it ---- */

static void check_memcmp(void)
{
	uint8_t a[32], b[32];
	int r;

	fill(a, sizeof a, 9);
	memcpy(b, a, sizeof b);
	SECRET(a, sizeof a);
	SECRET(b, sizeof b);
	r = sodium_memcmp(a, b, sizeof a);
	PUBLIC(&r, sizeof r);
	if (r != 0) {
		printf("ct: memcmp: equal strings differ\n");
		failed++;
	}
	b[31] ^= 1;
	r = sodium_memcmp(a, b, sizeof a);
	PUBLIC(&r, sizeof r);
	if (r == 0) {
		printf("ct: memcmp: unequal strings equal\n");
		failed++;
	}
}

/* ---- hex: key decoding ---- */

static void check_hex(void)
{
	uint8_t key[RELM_KEY_LEN], back[RELM_KEY_LEN];
	char hex[2 * RELM_KEY_LEN + 1];
	int r;

	fill(key, sizeof key, 17);
	SECRET(key, sizeof key);
	relm_hex(hex, key, sizeof key);
	/* hex is secret now (it came from the key) */
	r = relm_unhex(back, sizeof back, hex, 2 * RELM_KEY_LEN);
	PUBLIC(&r, sizeof r);
	if (r != 0) {
		printf("ct: hex: round trip failed\n");
		failed++;
	}
	/* upper case is accepted too */
	PUBLIC(hex, sizeof hex);
	for (size_t i = 0; i < 2 * RELM_KEY_LEN; i++)
		if (hex[i] >= 'a' && hex[i] <= 'f')
			hex[i] = (char)(hex[i] - 'a' + 'A');
	SECRET(hex, 2 * RELM_KEY_LEN);
	r = relm_unhex(back, sizeof back, hex, 2 * RELM_KEY_LEN);
	PUBLIC(&r, sizeof r);
	PUBLIC(back, sizeof back);
	PUBLIC(key, sizeof key);
	if (r != 0 || memcmp(back, key, sizeof key) != 0) {
		printf("ct: hex: upper-case round trip failed\n");
		failed++;
	}
	/* a bad character in a secret string: rejected, no early exit */
	PUBLIC(hex, sizeof hex);
	hex[40] = 'g';
	SECRET(hex, 2 * RELM_KEY_LEN);
	r = relm_unhex(back, sizeof back, hex, 2 * RELM_KEY_LEN);
	PUBLIC(&r, sizeof r);
	if (r != RELM_EMALFORMED) {
		printf("ct: hex: bad character accepted\n");
		failed++;
	}
	sodium_memzero(back, sizeof back);
	sodium_memzero(hex, sizeof hex);
}

/* ---- kdf: the chain step and the root step ---- */

static void check_kdf(void)
{
	uint8_t ck[RELM_KEY_LEN], mk[RELM_KEY_LEN], rk[RELM_KEY_LEN], dh[RELM_KEY_LEN];
	uint8_t okm[100], salt[RELM_KEY_LEN];
	static const uint8_t info[] = "relm/ct";
	static const size_t lens[] = { 1, 32, 64, 100 };

	fill(ck, sizeof ck, 21);
	fill(rk, sizeof rk, 22);
	fill(dh, sizeof dh, 23);
	fill(salt, sizeof salt, 24);
	SECRET(ck, sizeof ck);
	SECRET(rk, sizeof rk);
	SECRET(dh, sizeof dh);
	SECRET(salt, sizeof salt);
	for (int i = 0; i < 3; i++)
		relm_kdf_ck(mk, ck, ck);                  /* in place, as the engine does */
	relm_kdf_rk(rk, ck, rk, dh);
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		int r = relm_hkdf(okm, lens[i], salt, sizeof salt, dh, sizeof dh,
		                  info, sizeof info - 1);
		if (r != 0) {
			printf("ct: kdf: hkdf(%zu) failed\n", lens[i]);
			failed++;
		}
	}
	(void)relm_hkdf(okm, 32, NULL, 0, dh, sizeof dh, info, sizeof info - 1);
	sodium_memzero(ck, sizeof ck);
	sodium_memzero(mk, sizeof mk);
	sodium_memzero(rk, sizeof rk);
	sodium_memzero(okm, sizeof okm);
}

/* ---- dh: X25519 and Ed25519 with secret scalars ---- */

static void check_dh(void)
{
	uint8_t a_priv[RELM_KEY_LEN], b_priv[RELM_KEY_LEN], a_pub[RELM_KEY_LEN], b_pub[RELM_KEY_LEN];
	uint8_t s1[RELM_KEY_LEN], s2[RELM_KEY_LEN], seed[32];
	uint8_t pk[RELM_SIGN_PK_LEN], sk[RELM_SIGN_SK_LEN], xsk[RELM_KEY_LEN];
	struct relm_invite inv;
	int r;

	fill(a_priv, sizeof a_priv, 31);
	fill(b_priv, sizeof b_priv, 32);
	SECRET(a_priv, sizeof a_priv);
	SECRET(b_priv, sizeof b_priv);
	relm_x25519_public(a_pub, a_priv);
	relm_x25519_public(b_pub, b_priv);
	PUBLIC(a_pub, sizeof a_pub);                      /* public keys are sent */
	PUBLIC(b_pub, sizeof b_pub);
	r = relm_dh(s1, a_priv, b_pub);
	PUBLIC(&r, sizeof r);
	if (r != 0) {
		printf("ct: dh: relm_dh failed\n");
		failed++;
	}
	r = relm_dh(s2, b_priv, a_pub);
	PUBLIC(&r, sizeof r);
	r = sodium_memcmp(s1, s2, sizeof s1);
	PUBLIC(&r, sizeof r);
	if (r != 0) {
		printf("ct: dh: shared secrets differ\n");
		failed++;
	}

	fill(seed, sizeof seed, 33);
	SECRET(seed, sizeof seed);
	relm_sign_keypair_from_seed(pk, sk, seed);
	PUBLIC(pk, sizeof pk);
	PUBLIC(sk + 32, 32);                              /* libsodium's sk = seed ‖ pk */
	r = relm_ed25519_sk_to_x25519(xsk, sk);
	PUBLIC(&r, sizeof r);
	memset(&inv, 0, sizeof inv);
	inv.version = 1;
	memcpy(inv.ipk, pk, sizeof pk);
	fill(inv.spk, sizeof inv.spk, 34);
	inv.spk[31] &= 0x7f;
	inv.expires_ms = 1;
	strcpy(inv.mailbox, "127.0.0.1:1");
	r = relm_invite_sign(&inv, sk);
	PUBLIC(&r, sizeof r);
	if (r != 0) {
		printf("ct: dh: invite_sign failed (%d)\n", r);
		failed++;
	}
	sodium_memzero(a_priv, sizeof a_priv);
	sodium_memzero(b_priv, sizeof b_priv);
	sodium_memzero(s1, sizeof s1);
	sodium_memzero(s2, sizeof s2);
	sodium_memzero(sk, sizeof sk);
	sodium_memzero(xsk, sizeof xsk);
}

/* ---- blob and ratchet: the engine with every key in its state secret ---- */

static void mark_rel(struct relm_rel *rel, int secret)
{
#define MARK(p, n) do { if (secret) SECRET((p), (n)); else PUBLIC((p), (n)); } while (0)
	MARK(rel->mbox_sk, 32);                      /* the seed half; the rest is the pk */
	for (uint32_t i = 0; i < rel->tree.count; i++) {
		MARK(rel->tree.nodes[i].priv, RELM_KEY_LEN);
		MARK(rel->tree.nodes[i].rk, RELM_KEY_LEN);
		MARK(rel->tree.nodes[i].ck, RELM_KEY_LEN);
	}
	for (uint32_t i = 0; i < rel->nskipped; i++)
		MARK(rel->skipped[i].mk, RELM_KEY_LEN);
#undef MARK
}

static uint64_t clock_ms = 1700000000000ull;

static void check_blob(void)
{
	struct tu_party a, b;
	struct relm_rel *back = NULL;
	uint8_t *blob = NULL;
	size_t len = 0;
	int r;

	/* set-up in the clear (X3DH is out of scope here), then a few messages
	 * so that b holds skipped keys and both have several nodes */
	tu_party_init(&a, &clock_ms, 1);
	tu_party_init(&b, &clock_ms, 2);
	tu_pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE, 1);
	for (int i = 0; i < 3; i++)
		tu_send(&a, "one of three", NULL);
	{
		struct tu_blob e = tu_take(&a, a.nout - 1);     /* only the last arrives */
		tu_recv(&b, e.buf, e.len);
		tu_blob_free(&e);
	}
	if (b.rel->nskipped == 0) {
		printf("ct: blob: no skipped keys to test with\n");
		failed++;
	}

	mark_rel(b.rel, 1);
	r = relm_rel_encode(b.rel, &blob, &len);
	PUBLIC(&r, sizeof r);
	if (r != 0) {
		printf("ct: blob: encode failed\n");
		failed++;
		goto out;
	}
	/* the blob now carries the secrets, undefined where they sit */
	r = relm_rel_decode(&back, blob, len);
	PUBLIC(&r, sizeof r);
	if (r != 0) {
		printf("ct: blob: decode failed (%d)\n", r);
		failed++;
		goto out;
	}
	mark_rel(b.rel, 0);
out:
	relm_rel_free(back);
	relm_rel_blob_free(blob, len);
	tu_party_free(&a);
	tu_party_free(&b);
}

static void check_ratchet(void)
{
	struct tu_party a, b;

	tu_party_init(&a, &clock_ms, 3);
	tu_party_init(&b, &clock_ms, 4);
	tu_pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE, 1);
	/* ping-pong: every message a DH step, then a stream: chain steps */
	for (int i = 0; i < 6; i++) {
		struct tu_party *s = i % 2 ? &b : &a, *d = i % 2 ? &a : &b;
		int n = i < 4 ? 1 : 3;
		for (int k = 0; k < n; k++) {
			mark_rel(s->rel, 1);
			tu_send(s, "hello, constant time", NULL);
			mark_rel(s->rel, 0);
		}
		while (s->nout) {
			struct tu_blob e = tu_take(s, 0);
			int r;
			/* an envelope is public: it goes on the wire */
			PUBLIC(e.buf, e.len);
			mark_rel(d->rel, 1);
			r = tu_recv(d, e.buf, e.len);
			PUBLIC(&r, sizeof r);
			mark_rel(d->rel, 0);
			if (r != 0) {
				printf("ct: ratchet: receive failed (%d)\n", r);
				failed++;
			}
			tu_blob_free(&e);
		}
	}
	tu_party_free(&a);
	tu_party_free(&b);
}

/* The canary (--selftest): code that does branch on secrets, so that a
 * silent run above means "no findings", not "nothing marked".  It branches
 * on a chain key of a marked relationship state and decodes a secret hex
 * key with libsodium's sodium_hex2bin (which checks every character with a
 * branch, as relm_unhex once did). */
static void check_canary(void)
{
	struct tu_party a, b;
	uint8_t key[RELM_KEY_LEN], back[RELM_KEY_LEN];
	char hex[2 * RELM_KEY_LEN + 1];
	volatile int sink = 0;

	tu_party_init(&a, &clock_ms, 5);
	tu_party_init(&b, &clock_ms, 6);
	tu_pair(&a, &b, RELM_MODE_TREE, RELM_MODE_TREE, 1);
	mark_rel(a.rel, 1);
	if (a.rel->tree.nodes[a.rel->tree.count - 1].ck[0] & 1)
		sink++;
	mark_rel(a.rel, 0);
	tu_party_free(&a);
	tu_party_free(&b);

	fill(key, sizeof key, 41);
	SECRET(key, sizeof key);
	relm_hex(hex, key, sizeof key);
	(void)sodium_hex2bin(back, sizeof back, hex, 2 * RELM_KEY_LEN, NULL, NULL, NULL);
	(void)sink;
}

/* util_engine asserts with Check, so the checks run as Check tests — in
 * one process (CK_NOFORK), so that memcheck's error count covers them. */
#define CT_TEST(fn) \
	START_TEST(t_##fn) { unsigned long t0 = errors_now(); fn(); report(#fn + 6, t0); } END_TEST
CT_TEST(check_aead)
CT_TEST(check_memcmp)
CT_TEST(check_hex)
CT_TEST(check_kdf)
CT_TEST(check_dh)
CT_TEST(check_blob)
CT_TEST(check_ratchet)
CT_TEST(check_canary)

int main(int argc, char **argv)
{
	int selftest = argc > 1 && strcmp(argv[1], "--selftest") == 0;
	Suite *su;
	TCase *tc;
	SRunner *sr;

	if (!RUNNING_ON_VALGRIND) {
		fprintf(stderr, "ct_check: not running under valgrind, nothing is checked "
		        "(run: valgrind --error-exitcode=1 ct_check, or make ct)\n");
		return 2;
	}
	if (relm_crypto_init() != 0)
		return 2;
	su = suite_create("ct");
	tc = tcase_create("ct");
	if (selftest) {
		tcase_add_test(tc, t_check_canary);
	} else {
		tcase_add_test(tc, t_check_aead);
		tcase_add_test(tc, t_check_memcmp);
		tcase_add_test(tc, t_check_hex);
		tcase_add_test(tc, t_check_kdf);
		tcase_add_test(tc, t_check_dh);
		tcase_add_test(tc, t_check_blob);
		tcase_add_test(tc, t_check_ratchet);
	}
	suite_add_tcase(su, tc);
	sr = srunner_create(su);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_SILENT);
	if (srunner_ntests_failed(sr))
		failed++;
	srunner_free(sr);
	if (selftest) {
		/* the canary must be caught: its findings are the pass */
		printf("ct: selftest %s\n", failed ? "ok: the canary was caught"
		                                    : "FAILED: memcheck saw nothing");
		return failed ? 0 : 1;
	}
	printf("ct: %s\n", failed ? "FAILED" : "all checks clean");
	return failed ? 1 : 0;
}

/*
 * sample.c — what the parts of check_mailbox_proto share: the seeded PRNG
 * (splitmix64 from RELM_SEED) and a sample frame of every type, the
 * signed ones (SUBSCRIBE, LEASE, SUBSCRIBE_BATCH) signed for real over
 * mp_nonce so that a flip is shown refused by the signature or MAC check.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "mailbox_proto/sample.h"

/* ---- seeded PRNG (splitmix64) ---- */

static uint64_t rng_state;
uint64_t mp_seed_used;

uint64_t mp_rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void mp_rng_bytes(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)mp_rng();
}

uint8_t mp_envbuf[RELM_MBOX_ENVELOPE_MAX + 16];
uint8_t mp_namebuf[RELM_MBOX_LEASE_NAME_MAX];
char mp_textbuf[RELM_MBOX_ERROR_TEXT_MAX];

/* Signed samples (SUBSCRIBE, LEASE, SUBSCRIBE_BATCH) are signed for real,
 * over this nonce, so that test_every_bitflip can show a flip is refused
 * by the signature or MAC check. */
uint8_t mp_nonce[32], mp_kx_server[32], mp_kx_client_sk[32];
struct mp_sample_key mp_key[SAMPLE_KEYS];
uint8_t mp_realm[32];
static uint8_t batchbuf[RELM_MBOX_BATCH_MAX * RELM_MBOX_BATCH_REG_ENTRY];

static void sample_keys(void)
{
	for (int i = 0; i < SAMPLE_KEYS; i++) {
		uint8_t seed[32];
		mp_rng_bytes(seed, 32);
		crypto_sign_seed_keypair(mp_key[i].pk, mp_key[i].sk, seed);
	}
	mp_rng_bytes(mp_nonce, 32);
	mp_rng_bytes(mp_realm, 32);
	mp_rng_bytes(mp_kx_client_sk, 32);
	{
		uint8_t sk[32];
		mp_rng_bytes(sk, 32);
		crypto_scalarmult_base(mp_kx_server, sk);
	}
	for (int i = 0; i < SAMPLE_KEYS; i++)
		relm_mbox_read_key(mp_key[i].rkey, mp_key[i].sk, mp_realm);
}

void mp_seed_setup(void)
{
	const char *s = getenv("RELM_SEED");
	mp_seed_used = s ? strtoull(s, NULL, 0) : 0x5eed0001ull;
	rng_state = mp_seed_used;
	ck_assert(sodium_init() >= 0);
	sample_keys();
}

/* A batch of n entries; entry i is mailbox mp_key[i % SAMPLE_KEYS]. */
static void sample_batch(struct relm_mbox_frame *f, uint8_t kind, size_t n)
{
	f->u.sub_batch.tag = (uint32_t)mp_rng();
	f->u.sub_batch.kind = kind;
	if (kind == RELM_MBOX_BATCH_REGISTER)
		crypto_scalarmult_base(f->u.sub_batch.kx, mp_kx_client_sk);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *pk = mp_key[i % SAMPLE_KEYS].pk;
		uint64_t cursor = mp_rng() % 1000;

		if (kind == RELM_MBOX_BATCH_MAC) {
			uint8_t mac[16];
			relm_mbox_sub_mac(mac, mp_key[i % SAMPLE_KEYS].rkey, mp_nonce, pk, cursor);
			relm_mbox_batch_put_mac(batchbuf + i * RELM_MBOX_BATCH_MAC_ENTRY, pk, cursor, mac);
		} else {
			uint8_t k[32], sealed[32], sig[64], m[RELM_MBOX_REG_SIG_INPUT_LEN];
			ck_assert_int_eq(relm_mbox_seal_key(k, mp_kx_client_sk, mp_kx_server, mp_kx_server,
			                                    f->u.sub_batch.kx), 0);
			relm_mbox_seal(sealed, k, pk, mp_key[i % SAMPLE_KEYS].rkey);
			relm_mbox_reg_sig_input(m, mp_nonce, mp_kx_server, f->u.sub_batch.kx, pk, cursor, sealed);
			crypto_sign_detached(sig, NULL, m, sizeof(m), mp_key[i % SAMPLE_KEYS].sk);
			relm_mbox_batch_put_reg(batchbuf + i * RELM_MBOX_BATCH_REG_ENTRY, pk, cursor, sealed, sig);
		}
	}
	f->u.sub_batch.entries = batchbuf;
	f->u.sub_batch.count = n;
}

void mp_sample(struct relm_mbox_frame *f, uint8_t type, size_t varlen)
{
	memset(f, 0, sizeof(*f));
	f->version = type > RELM_MBOX_TYPE_MAX_V1 ? RELM_MBOX_VERSION_2 : RELM_MBOX_VERSION;
	f->type = type;
	switch (type) {
	case RELM_MBOX_HELLO:
		f->u.hello.min_version = 1;
		f->u.hello.max_version = (uint8_t)(1 + mp_rng() % 5);
		f->u.hello.flags = (uint32_t)mp_rng();
		break;
	case RELM_MBOX_CHALLENGE:
		f->u.challenge.version = (uint8_t)mp_rng();
		f->u.challenge.flags = (uint32_t)mp_rng();
		mp_rng_bytes(f->u.challenge.nonce, sizeof(f->u.challenge.nonce));
		f->u.challenge.max_envelope = (uint32_t)mp_rng();
		f->u.challenge.max_subs = (uint32_t)mp_rng();
		f->u.challenge.rate = (uint32_t)mp_rng();
		f->u.challenge.burst = (uint32_t)mp_rng();
		f->u.challenge.retention_s = (uint32_t)mp_rng();
		break;
	case RELM_MBOX_POST:
		f->u.post.tag = (uint32_t)mp_rng();
		mp_rng_bytes(f->u.post.mailbox, 32);
		mp_rng_bytes(mp_envbuf, varlen);
		f->u.post.env = mp_envbuf;
		f->u.post.env_len = varlen;
		break;
	case RELM_MBOX_POSTED:
		f->u.posted.tag = (uint32_t)mp_rng();
		f->u.posted.seq = mp_rng();
		break;
	case RELM_MBOX_SUBSCRIBE:
		f->u.subscribe.tag = (uint32_t)mp_rng();
		memcpy(f->u.subscribe.mailbox, mp_key[0].pk, 32);
		f->u.subscribe.cursor = mp_rng();
		relm_mbox_sub_sign(f->u.subscribe.sig, mp_key[0].sk, mp_nonce, mp_key[0].pk,
		                   f->u.subscribe.cursor);
		break;
	case RELM_MBOX_SUBSCRIBED:
		f->u.subscribed.tag = (uint32_t)mp_rng();
		mp_rng_bytes(f->u.subscribed.mailbox, 32);
		f->u.subscribed.head = mp_rng();
		f->u.subscribed.oldest = mp_rng();
		break;
	case RELM_MBOX_DELIVER:
		mp_rng_bytes(f->u.deliver.mailbox, 32);
		f->u.deliver.seq = mp_rng();
		mp_rng_bytes(mp_envbuf, varlen);
		f->u.deliver.env = mp_envbuf;
		f->u.deliver.env_len = varlen;
		break;
	case RELM_MBOX_UNSUBSCRIBE:
	case RELM_MBOX_UNSUBSCRIBED:
		f->u.unsub.tag = (uint32_t)mp_rng();
		mp_rng_bytes(f->u.unsub.mailbox, 32);
		break;
	case RELM_MBOX_LEASE:
		f->u.lease.tag = (uint32_t)mp_rng();
		memcpy(f->u.lease.mailbox, mp_key[1].pk, 32);
		mp_rng_bytes(mp_namebuf, sizeof(mp_namebuf));
		f->u.lease.name = mp_namebuf;
		f->u.lease.name_len = 1 + varlen % RELM_MBOX_LEASE_NAME_MAX;
		mp_rng_bytes(f->u.lease.expected, 16);
		mp_rng_bytes(f->u.lease.holder, 16);
		f->u.lease.ttl_ms = (uint32_t)mp_rng();
		ck_assert_int_eq(relm_mbox_lease_sign(&f->u.lease, mp_key[1].sk, mp_nonce), 0);
		break;
	case RELM_MBOX_LEASE_RESULT:
		f->u.lease_result.tag = (uint32_t)mp_rng();
		f->u.lease_result.granted = (uint8_t)(mp_rng() & 1);
		mp_rng_bytes(f->u.lease_result.holder, 16);
		f->u.lease_result.remaining_ms = (uint32_t)mp_rng();
		break;
	case RELM_MBOX_PING:
	case RELM_MBOX_PONG:
		f->u.ping.tag = (uint32_t)mp_rng();
		break;
	case RELM_MBOX_ERROR:
		f->u.error.tag = (uint32_t)mp_rng();
		f->u.error.code = (uint16_t)mp_rng();
		f->u.error.flags = (uint8_t)mp_rng();
		for (size_t i = 0; i < sizeof(mp_textbuf); i++)
			mp_textbuf[i] = (char)('a' + mp_rng() % 26);
		f->u.error.text = mp_textbuf;
		f->u.error.text_len = varlen % (RELM_MBOX_ERROR_TEXT_MAX + 1);
		break;
	case RELM_MBOX_SUBSCRIBE_BATCH:
		/* counts that no other kind's entry size divides (see F_KIND) */
		sample_batch(f, varlen & 1 ? RELM_MBOX_BATCH_REGISTER : RELM_MBOX_BATCH_MAC,
		             varlen & 1 ? 3 : 5);
		break;
	case RELM_MBOX_SUBSCRIBED_BATCH: {
		size_t n = 1 + varlen % 40;
		f->u.subed_batch.tag = (uint32_t)mp_rng();
		for (size_t i = 0; i < n; i++)
			relm_mbox_subed_put(batchbuf + i * RELM_MBOX_BATCHED_ENTRY,
			                    (unsigned)(mp_rng() % 17), mp_rng(), mp_rng());
		f->u.subed_batch.entries = batchbuf;
		f->u.subed_batch.count = n;
		break;
	}
	}
}

uint8_t *mp_encode_new(const struct relm_mbox_frame *f, size_t *len)
{
	size_t n = relm_mbox_frame_size(f);
	uint8_t *b;

	ck_assert_uint_gt(n, 0);
	b = malloc(n);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(relm_mbox_frame_encode(b, n, f), (int)n);
	*len = n;
	return b;
}

/* If buf decodes, it must re-encode to exactly buf. */
int mp_decode_canonical(const uint8_t *buf, size_t len)
{
	struct relm_mbox_frame f;
	int rc = relm_mbox_frame_decode(&f, buf, len);

	if (rc == 0) {
		size_t n = relm_mbox_frame_size(&f);
		uint8_t *b2;

		ck_seed(n == len);
		b2 = malloc(n);
		ck_assert_ptr_nonnull(b2);
		ck_seed(relm_mbox_frame_encode(b2, n, &f) == (int)n);
		ck_seed(memcmp(b2, buf, n) == 0);
		free(b2);
	}
	return rc;
}

const size_t mp_varlens[MP_NVARLENS] = { 1, 2, 63, 64, 1000, RELM_MBOX_ENVELOPE_MAX };

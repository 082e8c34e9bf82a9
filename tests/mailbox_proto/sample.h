/*
 * sample.h — the seeded PRNG and the sample frames the parts of
 * check_mailbox_proto share (sample.c), and the test cases each part adds
 * to its suite: hostile input (hostile.c: truncations, bit flips,
 * garbage) and signature and MAC inputs (signatures.c).
 */
#ifndef RELM_TESTS_MAILBOX_PROTO_SAMPLE_H
#define RELM_TESTS_MAILBOX_PROTO_SAMPLE_H

#include <stddef.h>
#include <stdint.h>
#include <check.h>
#include "wire/mailbox_proto.h"

/* The seed (RELM_SEED, default fixed) and the stream it starts; every
 * test case's fixture calls mp_seed_setup, which also draws the keys. */
extern uint64_t mp_seed_used;
uint64_t mp_rng(void);
void mp_rng_bytes(uint8_t *p, size_t n);
void mp_seed_setup(void);

#define ck_seed(cond) ck_assert_msg((cond), "failed with RELM_SEED=%llu: %s", \
                                    (unsigned long long)mp_seed_used, #cond)

/* The buffers a sample's variable parts point into. */
extern uint8_t mp_envbuf[RELM_MBOX_ENVELOPE_MAX + 16];
extern uint8_t mp_namebuf[RELM_MBOX_LEASE_NAME_MAX];
extern char mp_textbuf[RELM_MBOX_ERROR_TEXT_MAX];

/* Signed samples (SUBSCRIBE, LEASE, SUBSCRIBE_BATCH) are signed for real,
 * over mp_nonce, with these keys. */
enum { SAMPLE_KEYS = 8 };
struct mp_sample_key {
	uint8_t pk[32], sk[64], rkey[32];
};
extern uint8_t mp_nonce[32], mp_kx_server[32], mp_kx_client_sk[32];
extern struct mp_sample_key mp_key[SAMPLE_KEYS];
extern uint8_t mp_realm[32];

/* A frame of the given type, its variable part varlen long (where it has
 * one). */
void mp_sample(struct relm_mbox_frame *f, uint8_t type, size_t varlen);
/* f encoded into a new buffer (*len bytes; the caller frees it). */
uint8_t *mp_encode_new(const struct relm_mbox_frame *f, size_t *len);
/* If buf decodes, it must re-encode to exactly buf.  The decoder's code. */
int mp_decode_canonical(const uint8_t *buf, size_t len);

enum { MP_NVARLENS = 6 };
extern const size_t mp_varlens[MP_NVARLENS];

TCase *mp_hostile_tcase(void);
TCase *mp_signatures_tcase(void);

#endif

/*
 * lease.c — the send lease's derivations (lease.h, proto/devices.md §11.2).
 */
#include <string.h>
#include <sodium.h>
#include "wire/lease.h"
#include "crypto/crypto.h"

static const char seed_label[] = "relm/v1/lease-mailbox";
static const char token_label[] = "relm/v1/lease-holder";

void relm_lease_derive(struct relm_lease_keys *k, const uint8_t ipk_sk[RELM_SIGN_SK_LEN])
{
	/* the IPK's seed is the first half of libsodium's secret key */
	(void)relm_hkdf(k->seed, sizeof k->seed, NULL, 0, ipk_sk, 32,
	                (const uint8_t *)seed_label, sizeof seed_label - 1);
	relm_sign_keypair_from_seed(k->mbox_pk, k->mbox_sk, k->seed);
}

void relm_lease_keys_clear(struct relm_lease_keys *k)
{
	sodium_memzero(k, sizeof *k);
}

void relm_lease_token(uint8_t token[RELM_ID_LEN], const struct relm_lease_keys *k,
                      const uint8_t device_id[RELM_ID_LEN])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, k->seed, sizeof k->seed, RELM_ID_LEN);
	crypto_generichash_update(&st, (const uint8_t *)token_label, sizeof token_label - 1);
	crypto_generichash_update(&st, device_id, RELM_ID_LEN);
	crypto_generichash_final(&st, token, RELM_ID_LEN);
	sodium_memzero(&st, sizeof st);
}

int relm_lease_holder(const struct relm_lease_keys *k, const uint8_t token[RELM_ID_LEN],
                      const uint8_t (*ids)[RELM_ID_LEN], size_t count)
{
	uint8_t t[RELM_ID_LEN];
	int found = -1;

	if (sodium_is_zero(token, RELM_ID_LEN))
		return -1;
	for (size_t i = 0; i < count; i++) {
		relm_lease_token(t, k, ids[i]);
		if (sodium_memcmp(t, token, RELM_ID_LEN) == 0 && found < 0)
			found = (int)i;
	}
	return found;
}

/* fuzz_rel_blob.c — libFuzzer harness for relm_rel_decode (the state blob
 * the store hands back).  A current-version blob that decodes must re-encode to itself,
 * and its head must give the decoded mailbox key (relm_rel_blob_mailbox_key). */
#include <stdlib.h>
#include <string.h>
#include "engine/rel.h"
#include "engine/rel_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relm_rel *rel = NULL;
	uint8_t *out = NULL, sk[64], pk[32];
	size_t len = 0;
	int head = relm_rel_blob_mailbox_key(data, size, sk, pk);

	if (relm_rel_decode(&rel, data, size) != 0)
		return 0;
	if (head != 0 || memcmp(sk, rel->mbox_sk, 64) != 0 || memcmp(pk, rel->mbox_pk, 32) != 0)
		abort();                         /* what decodes has a head that does */
	if (size > 3 && data[3] == 8) {      /* the current version (rel_blob.c) */
		if (relm_rel_encode(rel, &out, &len) != 0 || len != size || memcmp(out, data, size) != 0)
			abort();
		relm_rel_blob_free(out, len);
	}
	relm_rel_free(rel);
	return 0;
}

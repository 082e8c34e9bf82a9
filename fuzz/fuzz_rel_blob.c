/* fuzz_rel_blob.c — libFuzzer harness for relm_rel_decode (the state blob
 * the store hands back).  A current-version blob that decodes must re-encode to itself. */
#include <stdlib.h>
#include <string.h>
#include "engine/rel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relm_rel *rel = NULL;
	uint8_t *out = NULL;
	size_t len = 0;

	if (relm_rel_decode(&rel, data, size) != 0)
		return 0;
	if (size > 3 && data[3] == 8) {      /* the current version (rel_blob.c) */
		if (relm_rel_encode(rel, &out, &len) != 0 || len != size || memcmp(out, data, size) != 0)
			abort();
		relm_rel_blob_free(out, len);
	}
	relm_rel_free(rel);
	return 0;
}

/* fuzz_sibling_strategy.c — libFuzzer harness for the strategies' sibling
 * messages (wire/sibling.h: request, deliver, strategy; devices.md §11.1).
 * What decodes re-encodes to the same bytes. */
#include <stdlib.h>
#include <string.h>
#include "wire/sibling.h"

static void same(int rc, uint8_t *out, size_t len, const uint8_t *data, size_t size)
{
	if (rc != 0 || len != size || memcmp(out, data, size) != 0)
		abort();
	relm_sib_buf_free(out, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relm_sib_request q;
	struct relm_sib_deliver d;
	struct relm_sib_strategy s;
	uint8_t *out = NULL;
	size_t len = 0;

	int rc;

	/* (the encoder runs before out is read: one statement each) */
	if (relm_sib_request_decode(&q, data, size) == 0) {
		rc = relm_sib_request_encode(&out, &len, &q);
		same(rc, out, len, data, size);
	}
	if (relm_sib_deliver_decode(&d, data, size) == 0) {
		rc = relm_sib_deliver_encode(&out, &len, &d);
		same(rc, out, len, data, size);
	}
	if (relm_sib_strategy_decode(&s, data, size) == 0) {
		rc = relm_sib_strategy_encode(&out, &len, &s);
		same(rc, out, len, data, size);
	}
	return 0;
}

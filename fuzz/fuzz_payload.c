/* fuzz_payload.c — libFuzzer harness for relm_payload_decode.  A decoded
 * known kind must re-encode and decode to the same fields. */
#include <stdlib.h>
#include <string.h>
#include "wire/payload.h"
#include "error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relm_payload a, b;
	uint8_t *buf = NULL;
	size_t len = 0;
	int n;

	if (relm_payload_decode(&a, data, size) != 0)
		return 0;
	/* Re-encoding may outgrow the cap only if the input used shorter
	 * spellings (e.g. "ts":1e15): that is ETOOBIG, not a bug. */
	if (a.kind != RELM_KIND_UNKNOWN && (n = relm_payload_encode(&buf, &len, &a)) != RELM_ETOOBIG) {
		if (n != 0 || relm_payload_decode(&b, buf, len) != 0 ||
		    b.kind != a.kind || b.ts != a.ts || memcmp(b.id, a.id, sizeof a.id) != 0 ||
		    b.body_len != a.body_len || (a.body && memcmp(a.body, b.body, a.body_len) != 0) ||
		    b.nacks != a.nacks || (a.nacks && memcmp(a.acks, b.acks, a.nacks * sizeof *a.acks) != 0) ||
		    (a.mailbox && strcmp(a.mailbox, b.mailbox) != 0))
			abort();
		relm_payload_clear(&b);
		relm_payload_buf_free(buf, len);
	}
	relm_payload_clear(&a);
	return 0;
}

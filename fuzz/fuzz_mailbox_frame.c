/* libFuzzer harness for the mailbox frame decoder (lib/wire/mailbox_proto.c):
 * decode must never crash, and whatever decodes must re-encode to the
 * same bytes.  Build: clang -fsanitize=fuzzer,address -Ilib ... */
#include <stdlib.h>
#include <string.h>
#include "wire/mailbox_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[RELM_MBOX_FRAME_TOTAL_MAX];
	struct relm_mbox_frame f;
	size_t flen;

	(void)relm_mbox_frame_peek(&flen, data, size);
	if (relm_mbox_frame_decode(&f, data, size) == 0 &&
	    (relm_mbox_frame_encode(out, sizeof(out), &f) != (int)size || memcmp(out, data, size) != 0))
		abort();
	return 0;
}

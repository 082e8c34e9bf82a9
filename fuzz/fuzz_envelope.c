/* fuzz_envelope.c — libFuzzer harness for relm_envelope_decode.  Whatever
 * decodes must re-encode to the same header bytes. */
#include <stdlib.h>
#include <string.h>
#include "wire/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relm_envelope e;
	uint8_t hdr[RELM_HEADER_LEN + RELM_INITIAL_EXT_LEN];

	if (relm_envelope_decode(&e, data, size) == 0 &&
	    (relm_header_encode(hdr, &e.h, &e.ext) != e.hdrlen || memcmp(hdr, e.hdr, e.hdrlen) != 0 ||
	     e.hdrlen + e.ctlen != size))
		abort();
	return 0;
}

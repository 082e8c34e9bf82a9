/* fuzz_sib_identity.c — libFuzzer harness for the `identity` sibling
 * message (wire/sib_identity.h): what decodes lies within the input, and
 * re-encodes to the same bytes. */
#include <stdlib.h>
#include <string.h>
#include "wire/sib_identity.h"
#include "wire/sibling.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relm_sib_identity m;
	uint8_t *out;
	size_t len;

	if (relm_sib_identity_decode(&m, data, size) != 0)
		return 0;
	if (m.circle < data || m.circle + m.circle_len != data + size)
		abort();
	if (relm_sib_identity_encode(&out, &len, m.isk, m.stmt, m.circle, m.circle_len) != 0 ||
	    len != size || memcmp(out, data, size) != 0)
		abort();
	relm_sib_buf_free(out, len);
	return 0;
}

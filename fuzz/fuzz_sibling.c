/* fuzz_sibling.c — libFuzzer harness for the sibling message and circle
 * decoders (wire/sibling.h, wire/circle.h).  What decodes must be
 * consistent: a copy that decodes re-encodes to the same bytes; a carry's
 * payloads walk exactly to its end; a circle stays within its limits. */
#include <stdlib.h>
#include <string.h>
#include "wire/sibling.h"
#include "wire/circle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relm_sib_msg m;
	struct relm_circle c;

	if (relm_circle_decode(&c, data, size) == 0 && (c.count == 0 || c.count > RELM_MAX_DEVICES))
		abort();
	if (relm_sib_decode(&m, data, size) != 0)
		return 0;
	if (m.type == RELM_SIB_COPY) {
		uint8_t *out;
		size_t len;
		if (relm_sib_copy_encode(&out, &len, &m.u.copy) != 0 || len != size ||
		    memcmp(out, data, size) != 0)
			abort();
		relm_sib_buf_free(out, len);
	} else if (m.type == RELM_SIB_CARRY) {
		const uint8_t *p;
		size_t it = 0, plen, k = 0;
		while (relm_sib_carry_next(&m.u.carry, &it, &p, &plen))
			k++;
		if (k != m.u.carry.count || it != m.u.carry.list_len)
			abort();
	}
	return 0;
}

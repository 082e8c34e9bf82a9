/* fuzz_addr.c — libFuzzer harness for relm_addr_parse.  The grammar has
 * one spelling per address: whatever parses must format back to the input. */
#include <stdlib.h>
#include <string.h>
#include "wire/addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relm_addr a;
	char out[400];
	int n;

	if (relm_addr_parse(&a, (const char *)data, size) != 0)
		return 0;
	n = relm_addr_format(out, sizeof out, &a);
	if (n < 0 || (size_t)n != size || memcmp(out, data, size) != 0)
		abort();
	return 0;
}

/* fuzz_invite.c — libFuzzer harness for relm_invite_decode.  Whatever
 * decodes must re-encode and decode to the same invite. */
#include <stdlib.h>
#include <string.h>
#include "wire/invite.h"
#include "crypto/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct relm_invite a, b;
	char text[RELM_INVITE_TEXT_MAX];
	int n;

	if (relm_crypto_init() != 0)
		abort();
	if (relm_invite_decode(&a, (const char *)data, size) != 0)
		return 0;
	if ((n = relm_invite_encode(text, sizeof text, &a)) < 0 ||
	    relm_invite_decode(&b, text, (size_t)n) != 0 || memcmp(&a, &b, sizeof a) != 0)
		abort();
	return 0;
}

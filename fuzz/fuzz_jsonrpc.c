/* fuzz_jsonrpc.c — libFuzzer harness for one JSON-RPC line as relmd reads
 * it: jsonrpc_process with a handler that validates params against the
 * method table (relmd_params_validate), as the dispatcher does before any
 * handler runs.  Every line must produce a response or nothing, never a
 * crash, and every response must be valid UTF-8 with no raw control byte
 * (proto/api.md §1): the harness aborts on one that is not. */
#include <stdlib.h>
#include <string.h>
#include "api/jsonrpc.h"
#include "api/methods.h"
#include "api/utf8.h"

static int handler(void *ctx, const char *method, const cJSON *params, int notification,
                   cJSON **result, struct jsonrpc_error *err)
{
	const struct relmd_method *m = relmd_method_find(method);
	cJSON *norm = NULL;
	(void)ctx;
	(void)notification;
	if (!m) {
		jsonrpc_error_set(err, JSONRPC_METHOD_NOT_FOUND, NULL, "method not found");
		return -1;
	}
	if (relmd_params_validate(m, params, &norm, err) < 0)
		return -1;
	*result = norm;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *out = NULL;
	jsonrpc_process((const char *)data, size, handler, NULL, &out);
	if (out) {
		size_t n = strlen(out);
		if (!relmd_utf8_valid(out, n))
			abort();
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)out[i] < 0x20)
				abort();
	}
	free(out);
	return 0;
}

/*
 * pair.c — `relmctl device pair PROTON` (the code as text and as a QR code
 * for a phone camera) and `relmctl device join CODE` (waits for the
 * WELCOME).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relmctl/relmctl.h"

/* device.pair.join never waits in relmd: while the WELCOME is awaited it
 * fails with `pending`, and calling again with the same code resumes.
 * Call until it answers otherwise, for at most RELM_PAIR_WAIT_MS (the
 * environment may shorten it), then report `timeout`. */
cJSON *call_join(struct client *cl, cJSON *params)
{
	const char *env = getenv("RELM_PAIR_WAIT_MS");
	long wait_ms = env && *env ? atol(env) : 60000;
	for (long waited = 0;; waited += 200) {
		cJSON *reply = call(cl, "device.pair.join", params);
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(reply, "error");
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(err, "data"), "code");
		if (!reply || !cJSON_IsString(code) || strcmp(code->valuestring, "pending") != 0)
			return reply;
		cJSON_Delete(reply);
		if (waited >= wait_ms) {
			fprintf(stderr, "%s: device.pair.join: no answer from the paired device (timeout): "
			        "check that the code was copied whole (a mistyped code reaches nobody) and "
			        "that the device that made it is running, or make a new code there; "
			        "the same command resumes\n", prog);
			return NULL;
		}
		usleep(200 * 1000);
	}
}


int pair_report(const cJSON *reply)
{
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(reply, "result");
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(res, "code");
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(res, "expires_at");
	if (opt_json || !cJSON_IsString(code) || !cJSON_IsNumber(exp))
		return report("device.pair.begin", reply);
	time_t t = (time_t)(exp->valuedouble / 1000);
	char when[64] = "";
	struct tm tm;
	if (localtime_r(&t, &tm))
		strftime(when, sizeof when, "%H:%M:%S", &tm);
	printf("code: %s\nexpires_at: %.0f (%s)\n\n", code->valuestring, exp->valuedouble, when);
	if (qr_text(stdout, code->valuestring, isatty(STDOUT_FILENO)) < 0)
		fprintf(stderr, "%s: the code does not fit a QR code; type it instead\n", prog);
	printf("\nOn the new device: %s device join %s\n", prog, code->valuestring);
	return 0;
}

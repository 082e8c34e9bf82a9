/*
 * listen.c — `relmctl listen [--since N] [--events T,...]`: subscribe and
 * print each event's params as one JSON line until relmd closes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/event.h"
#include "relmctl/relmctl.h"

int cmd_listen(struct client *cl, int argc, char **argv)
{
	const struct relmd_method *m = relmd_method_find("subscribe");
	cJSON *params = cJSON_CreateObject();
	int help = 0;
	if (build_params(m, argc, argv, params, &help) < 0) {
		cJSON_Delete(params);
		return EXIT_USAGE;
	}
	if (help) {
		printf("usage: %s listen [--since N] [--events TYPE,...]\n\n"
		       "Subscribe and print each event's params as one JSON line until relmd\n"
		       "closes the connection.  --since N first replays events after seq N.\n"
		       "Types:", prog);
		for (int t = RELM_EV_NONE + 1; t < RELM_EV_COUNT; t++)
			printf(" %s", relm_event_name(t));
		printf("\n");
		cJSON_Delete(params);
		return 0;
	}
	cJSON *norm = NULL;
	struct jsonrpc_error err = { 0 };
	if (relmd_params_validate(m, params, &norm, &err) < 0) {
		fprintf(stderr, "%s: listen: %s\n", prog, err.message);
		cJSON_Delete(err.data);
		cJSON_Delete(params);
		return EXIT_USAGE;
	}
	cJSON_Delete(norm);
	cJSON *reply = call(cl, "subscribe", params);
	cJSON_Delete(params);
	if (!reply)
		return EXIT_CONNECT;
	if (cJSON_GetObjectItemCaseSensitive(reply, "error")) {
		int r = report("subscribe", reply);
		cJSON_Delete(reply);
		return r;
	}
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(reply, "result");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "gap")))
		fprintf(stderr, "%s: some events since %s are no longer retained\n", prog,
			"the given seq");
	cJSON_Delete(reply);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		cJSON *j = client_read(cl);
		if (!j)
			return 0;       /* relmd closed: the stream ended */
		const cJSON *meth = cJSON_GetObjectItemCaseSensitive(j, "method");
		if (cJSON_IsString(meth) && !strcmp(meth->valuestring, "event")) {
			char *s = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "params"));
			if (s)
				printf("%s\n", s);
			cJSON_free(s);
		}
		cJSON_Delete(j);
	}
}
